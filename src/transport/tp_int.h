/* tp_int.h: the transport module's own header: the transport object that udp.c and tcp.c share. */
#ifndef PARLEY_TRANSPORT_TP_INT_H
#define PARLEY_TRANSPORT_TP_INT_H

#include <sys/socket.h>

#include "transport/transport.h"

#define TP_MAX_LISTENERS 16
#define RX_BATCH 32                /* datagrams per recvmmsg call */
#define RX_SIZE 65536              /* larger than any UDP payload */
#define RX_ROUNDS 4                /* recvmmsg calls per wake-up before yielding */
#define SOCK_BUF (8 * 1024 * 1024) /* wanted kernel socket buffer */
#define TX_BATCH 64                /* datagrams queued while a receive batch is handled */
#define TX_BYTES (256 * 1024)      /* bytes queued at most */

struct tcp;
struct tls;

struct transport {
	struct loop *loop;
	tp_recv_h *recv;
	void *arg;
	struct tp_listener *lis[TP_MAX_LISTENERS];
	unsigned nlis;
	struct tp_stats stats;
	/* The machine's addresses, read at start: a listener on 0.0.0.0 or :: is reached
	 * through any of them (tp_is_me). */
	struct tp_addr local[16];
	unsigned nlocal;
	/* Receive batch, shared by every listener: the loop runs one handler at a time. */
	struct mmsghdr msg[RX_BATCH];
	struct iovec iov[RX_BATCH];
	struct sockaddr_storage from[RX_BATCH];
	char *buf; /* RX_BATCH buffers of RX_SIZE + 1 bytes */
	/* Send batch: while a receive batch is handled, what it sends is queued and leaves in
	 * one sendmmsg per socket afterwards, instead of one sendto per message. */
	bool batching;
	unsigned ntx;
	size_t txused;
	struct mmsghdr txmsg[TX_BATCH];
	struct iovec txiov[TX_BATCH];
	struct tp_addr txto[TX_BATCH];
	struct tp_listener *txlis[TX_BATCH];
	char *txbuf;        /* TX_BYTES */
	struct tp_cfg cfg;  /* TCP limits (tp_configure) */
	struct log *lg;     /* connection events; NULL: none */
	struct tcp *tcp;    /* TCP connections (tcp.c); NULL until a TCP listener opens */
	tp_lost_h *lost;    /* told of destinations that became unreachable; NULL: nobody */
	struct tls *tls;    /* TLS contexts (tls.c); NULL until a TLS listener opens */
	char tls_base[512]; /* the self-signed certificate is kept at this path + "-tls.crt" */
};

/* tcp.c: opens a TCP (proto TP_TCP) or TLS (TP_TLS, after tp__tls_init) listener bound to
 * bind_to (a message naming uri in err on failure). */
int tp__tcp_open(struct transport *tp, enum tp_proto proto, const char *uri, const struct tp_addr *bind_to, char *err,
		 size_t errlen);
/* tcp.c: closes every connection and frees the TCP state (tp_free). */
void tp__tcp_free(struct transport *tp);
/* Makes bound socket fd (of family, given ops) a listener: its address and Via host, ready
 * on the loop, in tp's list. On failure fd is closed and err names uri (udp.c). */
int tp__listener_add(struct transport *tp, int fd, int family, const struct tp_ops *ops, loop_fd_h *ready,
		     const char *uri, char *err, size_t errlen);

/* ---- TLS (tls.c) --------------------------------------------------------------------------- */

struct tls_conn;

/* The --tls-* files: a certificate with its key (both or neither), a CA file that loads.
 * Returns 0, or -1 with a message naming the flag and the file. */
int tp__tls_cfg_check(const struct tp_cfg *c, char *err, size_t errlen);
/* Sets up the server and client contexts once (the certificate given, or the self-signed
 * one beside the database, made if missing), logging its fingerprint. -EINVAL with err. */
int tp__tls_init(struct transport *tp, char *err, size_t errlen);
void tp__tls_free(struct transport *tp);
/* TLS state for connection id to peer: a server side, or a client side whose ClientHello
 * is ready at once (tp__tls_out). -ENOMEM (or no TLS set up). */
int tp__tls_conn_new(struct transport *tp, bool client, uint64_t id, const struct tp_addr *peer, struct tls_conn **out);
void tp__tls_conn_free(struct tls_conn *tc);
bool tp__tls_done(const struct tls_conn *tc);         /* handshake finished */
uint64_t tp__tls_started(const struct tls_conn *tc);  /* loop time the handshake began */
bool tp__tls_more(const struct tls_conn *tc);         /* the last read filled its buffer */
const char *tp__tls_error(const struct tls_conn *tc); /* why the last call failed */
/* Plaintext to send: encrypted into the output, or kept until the handshake ends. 0,
 * -ENOBUFS (too much waiting), -ENOMEM, -EPROTO. */
int tp__tls_put(struct tls_conn *tc, const char *buf, size_t len);
/* Ciphertext received from the peer; 0 or -ENOMEM. */
int tp__tls_in(struct tls_conn *tc, const char *buf, size_t len);
enum tp_tls_rd {
	TLS_RD_MORE, /* all that was received is used: read more ciphertext */
	TLS_RD_FULL, /* room is full: more plaintext may be waiting */
	TLS_RD_EOF,  /* the peer closed the TLS session */
	TLS_RD_FAIL, /* handshake or record failed (tp__tls_error) */
};
/* Advances the handshake and decrypts up to room bytes into buf (*got of them). */
enum tp_tls_rd tp__tls_read(struct tls_conn *tc, char *buf, size_t room, size_t *got);
/* Ciphertext waiting to be sent (handshake, alerts, records): *p, the count returned;
 * tp__tls_out_done once it is queued. */
size_t tp__tls_out(struct tls_conn *tc, const char **p);
void tp__tls_out_done(struct tls_conn *tc);

#endif
