/* transport.h: moving SIP bytes over sockets: UDP datagrams, TCP, TLS and WebSocket connections (same table). */
#ifndef PARLEY_TRANSPORT_H
#define PARLEY_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/str.h"

enum tp_proto { TP_UDP = 0, TP_TCP, TP_TLS, TP_WS, TP_WSS };

const char *tp_proto_name(enum tp_proto p);             /* "UDP", "TCP", ... as in Via */
bool tp_proto_from_str(struct str s, enum tp_proto *p); /* case-insensitive */

/* An IPv4 or IPv6 socket address. Not a sockaddr_storage (128 bytes): every transaction,
 * binding and branch holds addresses, and the 100 unused bytes of each would be most of
 * their memory. ss_family aliases the family field that every sockaddr starts with. */
union tp_sockaddr {
	sa_family_t ss_family;
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* A socket address with its length; what the kernel gave or what we resolved. */
struct tp_addr {
	union tp_sockaddr ss;
	socklen_t len;
};

/* Parses "1.2.3.4", "[::1]", "::1" + port into addr (numeric only, no DNS). */
int tp_addr_from_host(struct tp_addr *a, struct str host, uint16_t port);
/* "1.2.3.4:5060" or "[::1]:5060" into buf; returns buf. */
char *tp_addr_str(const struct tp_addr *a, char *buf, size_t n);
/* Host part only, no brackets for IPv6 ("::1"); returns buf. */
char *tp_addr_host(const struct tp_addr *a, char *buf, size_t n);
uint16_t tp_addr_port(const struct tp_addr *a);
bool tp_addr_equal(const struct tp_addr *a, const struct tp_addr *b);
/* Same IP address, whatever the ports. */
bool tp_addr_same_host(const struct tp_addr *a, const struct tp_addr *b);
/* Whether a is a private address nobody outside its network can reach: IPv4 10/8,
 * 172.16/12, 192.168/16, 100.64/10 (carrier-grade NAT), 169.254/16; IPv6 fc00::/7 and
 * fe80::/10. Loopback is not: it is this machine. */
bool tp_addr_is_private(const struct tp_addr *a);

/* ---- settings ([server] listen) ---------------------------------------------------------- */

#define TP_MAX_LISTEN 16

struct tp_cfg {
	char listen[TP_MAX_LISTEN][300]; /* --listen udp:|tcp:|tls:|ws:|wss:HOST:PORT */
	unsigned nlisten;
	unsigned tcp_max_conns;      /* --tcp-max-connections 10000: open TCP connections at most */
	unsigned tcp_max_per_source; /* --tcp-max-per-source 500: accepted from one IP address */
	unsigned tcp_idle_timeout;   /* --tcp-idle-timeout 300 s with no traffic before a close */
	char tls_cert[256];          /* --tls-cert, [tls] tls-cert: PEM chain; empty: self-signed */
	char tls_key[256];           /* --tls-key: its PEM private key */
	char tls_ca[256];            /* --tls-ca: CAs outbound TLS trusts; empty: the system's */
};
extern const struct cfg_key tp_cfg_keys[];
extern const size_t tp_cfg_nkeys;
/* udp:0.0.0.0:5060 and tcp:0.0.0.0:5060, TCP limits as above */
void tp_cfg_defaults(struct tp_cfg *c);
/* Every address parses and is given once; the TLS files load (cfg_part). */
int tp_cfg_check(const void *base, char *err, size_t errlen);

/* A listen URI split into its parts: "udp:[::1]:5060" -> "udp", "::1", 5060, v6. */
struct tp_listen_spec {
	char scheme[8]; /* lower case: udp, tcp, tls, ws, wss */
	char host[64];  /* numeric address, without brackets */
	uint16_t port;  /* 5060 when the URI has none; 0 asks the kernel for one */
	bool v6;
};
/* Parses a listen URI (syntax only: the scheme is any of udp|tcp|tls|ws|wss). Returns 0,
 * or -EINVAL with the reason in err. */
int tp_listen_parse(const char *uri, struct tp_listen_spec *out, char *err, size_t errlen);

struct tp_listener;

/* Where a message came from: what a response goes back to. */
struct tp_source {
	enum tp_proto proto;
	struct tp_listener *lis; /* the socket it arrived on */
	struct tp_addr addr;     /* the peer */
	uint64_t conn_id;        /* stream transports: the connection; 0 for UDP */
};

/* Called for each datagram (or, on streams, each framed message). buf is valid only during
 * the call. */
typedef void(tp_recv_h)(const struct tp_source *src, char *buf, size_t len, void *arg);

/* Called when a stream destination became unreachable with err (connect refused or timed
 * out, connection reset or closed while requests sent over it in the last 32 s may await
 * answers): dst names the connection (conn_id) and its peer. Called from a timer, never
 * from inside tp_send. */
typedef void(tp_lost_h)(const struct tp_source *dst, int err, void *arg);

/* What one kind of transport offers (UDP now; TCP, TLS, WS fill the same table). */
struct tp_ops {
	enum tp_proto proto;
	int (*send)(struct tp_listener *lis, const struct tp_addr *to, uint64_t conn_id, const char *buf, size_t len);
	void (*close)(struct tp_listener *lis);
};

struct tp_listener {
	const struct tp_ops *ops;
	enum tp_proto proto;
	int fd;
	struct tp_addr local; /* bound address (real port after bind to port 0) */
	char host[64];        /* our host as written in Via/Record-Route: "127.0.0.1", "[::1]" */
	uint16_t port;
	struct transport *tp;
};

struct transport;

int tp_new(struct transport **tpp, struct loop *loop, tp_recv_h *recv, void *arg);
/* TCP limits and the log for connection events; before the first tp_listen. Without it
 * TCP runs with tp_cfg_defaults' limits and logs nothing. c is copied. */
void tp_configure(struct transport *tp, const struct tp_cfg *c, struct log *lg);
/* Where the self-signed TLS certificate is kept: db_path + "-tls.crt" and "-tls.key"
 * (beside the database). Before the first tp_listen. */
void tp_tls_base(struct transport *tp, const char *db_path);
/* Outbound TLS to addr checks that the peer's certificate names host (a host name; an
 * address is checked against the certificate's IP entries without this). The router
 * calls it with what it resolved; the last 64 are kept. No-op without TLS. */
void tp_tls_name(struct transport *tp, const struct tp_addr *addr, const char *host);
/* Who is told of unreachable destinations (with tp_new's arg). */
void tp_on_lost(struct transport *tp, tp_lost_h *h);
/* Asked (with tp_new's arg) before a STUN datagram from 'from' is answered: false drops it
 * (a banned or over-rate source; an answer would make the server a reflector). Without
 * one, every well-formed STUN request is answered. */
typedef bool(tp_admit_h)(const struct tp_addr *from, void *arg);
void tp_on_stun(struct transport *tp, tp_admit_h *h);
void tp_free(struct transport *tp);
/* Opens a listener for "udp:HOST:PORT", "tcp:", "tls:", "ws:" or "wss:" (IPv6 as
 * "udp:[::1]:5060"). On failure returns -errno and writes a message naming the address
 * to err. */
int tp_listen(struct transport *tp, const char *uri, char *err, size_t errlen);
unsigned tp_listener_count(const struct transport *tp);
struct tp_listener *tp_listener_at(struct transport *tp, unsigned i);
/* The listener to send to addr with proto from: same address family, preferring 'hint'. */
struct tp_listener *tp_pick(struct transport *tp, enum tp_proto proto, const struct tp_addr *to,
			    struct tp_listener *hint);
/* Sends buf to a destination; 0 or -errno. Counts bytes and errors. On TCP a conn_id
 * sends over that connection, and -ENOTCONN says it is gone; conn_id 0 uses an open
 * connection to 'to' or opens one (queued until it connects; a refusal the kernel reports
 * at once is returned at once, a later failure only logged). -ENOBUFS: the peer does not
 * read and its connection was closed. */
int tp_send(struct tp_listener *lis, const struct tp_addr *to, uint64_t conn_id, const char *buf, size_t len);
/* Keeps TCP connection conn_id open for at least seconds more, idle or not: a phone
 * registered over it is reached over it (the registrar calls this for each binding). No-op
 * for an unknown id. */
void tp_conn_hold(struct transport *tp, uint64_t conn_id, uint32_t seconds);
/* The open WebSocket (WS or WSS) connection from peer as a destination (proto, listener,
 * address, conn_id): how a browser phone, which cannot be connected to, is reached inside
 * a dialog. false when there is none. */
bool tp_ws_find(struct transport *tp, const struct tp_addr *peer, struct tp_source *out);
/* Whether TCP connection conn_id is open and can carry a new message. */
bool tp_conn_alive(const struct transport *tp, uint64_t conn_id);

struct tp_stats {
	uint64_t rx_msgs, tx_msgs, rx_bytes, tx_bytes, tx_errors;
	uint64_t stun_answered, stun_dropped;                       /* STUN keepalives on UDP; malformed ones */
	uint64_t stun_refused;                                      /* STUN from sources tp_on_stun refused */
	uint64_t tcp_accepted, tcp_refused, tcp_dialed, tcp_closed; /* connections */
	unsigned tcp_open;                                          /* open now */
	/* The same by the transport of the connection's listener (enum tp_proto: TCP, TLS, WS,
	 * WSS; UDP stays 0), for /metrics. */
	unsigned open_by[TP_WSS + 1];
	uint64_t accepted_by[TP_WSS + 1], refused_by[TP_WSS + 1];
	uint64_t tls_handshakes, tls_failed, tls_timeouts; /* TLS handshakes done, failed, timed out */
};
const struct tp_stats *tp_stats(const struct transport *tp);

/* ---- STUN keepalives on the UDP SIP port (RFC 5626 §4.4.2, RFC 5389) ---------------------- */

/* The longest answer tp_stun_answer writes. */
#define TP_STUN_MAX_RESP 128
enum tp_stun {
	TP_STUN_NOT, /* SIP (a letter) or a CRLF keepalive: for the SIP parser */
	TP_STUN_YES, /* a first byte of 0 to 3 (RFC 7983 §7): STUN, or nothing */
};
/* Which of the two a datagram of len bytes starting at in is. */
enum tp_stun tp_stun_classify(const unsigned char *in, size_t len);
/* Answers the STUN message in (len bytes) that came from 'from': for a Binding Request,
 * writes into out (cap >= TP_STUN_MAX_RESP) a Binding Success Response with the
 * XOR-MAPPED-ADDRESS of from (IPv4 or IPv6; with FINGERPRINT when the request had one),
 * or a 420 error naming the comprehension-required attributes it does not know, and
 * returns its length; 0 for a Binding Indication (a keepalive that wants no answer);
 * -EBADMSG for anything else (bad length, cookie, attributes or FINGERPRINT, a response,
 * another method): drop it. Reads only in[0..len). */
int tp_stun_answer(const unsigned char *in, size_t len, const struct tp_addr *from, unsigned char *out, size_t cap);

/* ---- stream framing (RFC 3261 §18.3) --------------------------------------------------- */

/* The largest message on a stream; equals SIP_MAX_MSG (transport knows no SIP headers). */
#define TP_MAX_MSG 65535

enum tp_frame {
	TP_FRAME_MORE,       /* no whole message yet: read more */
	TP_FRAME_MSG,        /* a message of msg_len bytes starts after skip bytes */
	TP_FRAME_PING,       /* a CRLFCRLF keep-alive (RFC 5626 §4.4.1) ends at skip: answer CRLF */
	TP_FRAME_NO_LENGTH,  /* headers (msg_len bytes after skip) without Content-Length */
	TP_FRAME_BAD_LENGTH, /* headers whose Content-Length is not one number */
	TP_FRAME_TOO_BIG,    /* over max: msg_len is the header section when it is complete, else 0 */
};
/* What the framer remembers between calls on one message, so that a message arriving in
 * small pieces is scanned once. Zero it for a new stream; tp_frame keeps it. */
struct tp_frame_state {
	size_t scan; /* bytes after the message start already searched for the empty line */
};
/* Looks for one message at the start of buf (len bytes): leading CRs and LFs are skipped
 * (*skip says how many bytes to drop, in every outcome), the header section ends at an
 * empty line and the body is Content-Length (or "l") bytes. A message over max bytes, or
 * max bytes with no end of headers, is TOO_BIG. The three errors leave the stream's framing
 * unknown: answer what can be answered and close. Never reads past buf + len. */
enum tp_frame tp_frame(const char *buf, size_t len, size_t max, struct tp_frame_state *st, size_t *skip,
		       size_t *msg_len);

/* ---- is this us ----------------------------------------------------------------------- */

/* Whether host (as in a URI or Via: a listener's host as written, or a numeric address,
 * IPv6 with or without brackets) is an address a listener answers on: its own, or any of
 * the machine's when it listens on 0.0.0.0 or ::. */
bool tp_has_host(const struct transport *tp, struct str host);
/* The same for host:port, a port of 0 meaning the default 5060: a Route, Request-URI or
 * Via that names one of our listeners. */
bool tp_is_me(const struct transport *tp, struct str host, uint16_t port);

#endif
