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
	char *txbuf;       /* TX_BYTES */
	struct tp_cfg cfg; /* TCP limits (tp_configure) */
	struct log *lg;    /* connection events; NULL: none */
	struct tcp *tcp;   /* TCP connections (tcp.c); NULL until a TCP listener opens */
	tp_lost_h *lost;   /* told of destinations that became unreachable; NULL: nobody */
};

/* tcp.c: opens a TCP listener bound to bind_to (a message naming uri in err on failure). */
int tp__tcp_open(struct transport *tp, const char *uri, const struct tp_addr *bind_to, char *err, size_t errlen);
/* tcp.c: closes every connection and frees the TCP state (tp_free). */
void tp__tcp_free(struct transport *tp);
/* Makes bound socket fd (of family, given ops) a listener: its address and Via host, ready
 * on the loop, in tp's list. On failure fd is closed and err names uri (udp.c). */
int tp__listener_add(struct transport *tp, int fd, int family, const struct tp_ops *ops, loop_fd_h *ready,
		     const char *uri, char *err, size_t errlen);

#endif
