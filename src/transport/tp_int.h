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
	char *txbuf;            /* TX_BYTES */
	struct tp_cfg cfg;      /* TCP limits (tp_configure) */
	struct log *lg;         /* connection events; NULL: none */
	struct tcp *tcp;        /* TCP connections (tcp.c); NULL until a TCP listener opens */
	tp_lost_h *lost;        /* told of destinations that became unreachable; NULL: nobody */
	tp_admit_h *stun_admit; /* asked before a STUN answer; NULL: answer all */
	struct tls *tls;        /* TLS contexts (tls.c); NULL until a TLS listener opens */
	char tls_base[512];     /* the self-signed certificate is kept at this path + "-tls.crt" */
};

/* tcp.c: opens a TCP (proto TP_TCP), TLS (TP_TLS, after tp__tls_init) or WebSocket (TP_WS)
 * listener bound to bind_to (a message naming uri in err on failure). */
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
/* TLS state for connection id to peer (kept as a pointer: it must outlive the state): a
 * server side, or a client side whose ClientHello is ready at once (tp__tls_out). -ENOMEM
 * (or no TLS set up). */
int tp__tls_conn_new(struct transport *tp, bool client, uint64_t id, const struct tp_addr *peer, struct tls_conn **out);
void tp__tls_conn_free(struct tls_conn *tc);
bool tp__tls_done(const struct tls_conn *tc);         /* handshake finished */
uint64_t tp__tls_started(const struct tls_conn *tc);  /* loop time the handshake began */
bool tp__tls_more(const struct tls_conn *tc);         /* the last read filled its buffer */
const char *tp__tls_error(const struct tls_conn *tc); /* why the last call failed (read at once) */
/* Plaintext to send: encrypted into the output, or kept until the handshake ends. 0,
 * -ENOBUFS (too much waiting), -ENOMEM, -EPROTO. */
int tp__tls_put(struct tls_conn *tc, const char *buf, size_t len);
/* Ciphertext received from the peer, seen in place: buf must stay as it is until the next
 * tp__tls_read, which keeps a copy of what it leaves. 0 or -ENOMEM. */
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
 * tp__tls_out_done once it is queued. The buffer is shared by every connection: what a
 * call made is to be queued before another connection's TLS call (else it is dropped). */
size_t tp__tls_out(struct tls_conn *tc, const char **p);
void tp__tls_out_done(struct tls_conn *tc);

/* ---- WebSocket (ws.c): RFC 6455 connections carrying SIP (RFC 7118) ---------------------- */

#define TP_WS_REQ_MAX 8192 /* an upgrade request's header section at most */

/* What an HTTP upgrade request says; views into the request. */
struct tp_ws_req {
	size_t len;        /* the request's bytes, through its empty line */
	int status;        /* 0: an upgrade we take; else the HTTP status that refuses it */
	const char *why;   /* the refusal's reason, for the answer's body and the log */
	bool want_version; /* the refusal names the version we speak (Sec-WebSocket-Version) */
	struct str path, host, origin, key;
};
enum tp_ws_parse {
	TP_WS_MORE, /* no empty line yet and under TP_WS_REQ_MAX bytes: read more */
	TP_WS_DONE, /* r says whether to upgrade, and r->len bytes were the request */
};
/* Reads the HTTP/1.1 request at the start of buf (len bytes) that should upgrade a
 * connection to a WebSocket for SIP: GET on any path, Upgrade: websocket, Connection:
 * upgrade, Sec-WebSocket-Version 13, a well-formed Sec-WebSocket-Key, Host, and
 * Sec-WebSocket-Protocol offering sip (RFC 7118 §4). A plain GET is refused 426, other
 * faults 400 (a header section over TP_WS_REQ_MAX bytes among them). *scan is where the
 * search for the empty line resumes: zero it for a new connection. Never reads past
 * buf + len, never allocates. */
enum tp_ws_parse tp__ws_parse(const char *buf, size_t len, size_t *scan, struct tp_ws_req *r);
/* Sec-WebSocket-Accept for key: base64 of SHA-1(key + the RFC 6455 GUID), NUL-terminated.
 * Returns 0, or -errno. */
int tp__ws_accept_key(struct str key, char out[29]);

/* How a WebSocket reaches the connection under it (tcp.c; a fuzzer gives its own). */
struct tp_ws_io {
	/* Sends plaintext bytes (the 101, frames) on the connection: all queued, or -errno
	 * when the connection is gone. */
	int (*write)(void *conn, const char *buf, size_t len);
	/* One SIP message (buf[len] is a NUL the callee may overwrite). */
	void (*deliver)(void *conn, char *buf, size_t len);
	/* Ends the connection once what was written is sent; warn: worth a warning line. */
	void (*close)(void *conn, const char *why, bool warn);
};
struct tp_ws;
/* A WebSocket waiting for its upgrade on connection conn (peer: for log lines). */
int tp__ws_new(struct tp_ws **out, const struct tp_ws_io *io, void *conn, struct log *lg, const char *peer);
void tp__ws_free(struct tp_ws *w);
/* Whether the upgrade was accepted (frames flow). */
bool tp__ws_upgraded(const struct tp_ws *w);
/* Bytes read from the connection: the upgrade request first (answered 101, or refused
 * and the connection closed), then frames. Returns how many bytes were used; the rest
 * (a partial request) is to be given again with more. Messages go to io->deliver. */
size_t tp__ws_input(struct tp_ws *w, char *buf, size_t len);
/* Sends one SIP message as a text frame. 0, or -ENOTCONN before the upgrade or once
 * closing, -ENOMEM. */
int tp__ws_send(struct tp_ws *w, const char *buf, size_t len);

#endif
