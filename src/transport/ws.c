/* ws.c: SIP over WebSocket (RFC 7118): the HTTP/1.1 upgrade (RFC 6455 §4.2), then frames through wslay. */
#include "transport/transport.h"
#include "transport/tp_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

/* Fragments one message may come in. wslay allocates each fragment on its own (a chunk,
 * its data, a queue entry: about 100 bytes even for a 1-byte fragment sent in 7 bytes), so
 * with no cap a 64 KB message in 1-byte fragments held over 5 MB. Browsers send a message
 * in one frame; other clients in a few. */
#define WS_MAX_FRAGMENTS 64

/* One WebSocket connection. Before the upgrade only the scan offset is used: a connection
 * that never upgrades costs these few bytes, not a wslay context. */
struct tp_ws {
	const struct tp_ws_io *io;
	void *conn;                  /* handed back to io */
	struct log *lg;              /* debug lines; NULL: none */
	char peer[64];               /* for log lines */
	size_t scan;                 /* upgrade request bytes already searched for its end */
	wslay_event_context_ptr ctx; /* NULL until the upgrade is accepted */
	const char *in;              /* bytes tp__ws_input hands wslay: [in, in + inlen) */
	size_t inlen;
	int depth;       /* inside wslay_event_recv: sends are queued, written after it */
	unsigned frags;  /* frames of the message being received so far */
	bool fragmented; /* it passed WS_MAX_FRAGMENTS: close 1009 queued, reading stopped */
	bool failed;     /* a write failed: the connection is gone, nothing more is written */
	bool closed;     /* io->close was called */
};

/* ---- the upgrade request ------------------------------------------------------------- */

static bool ows(char c)
{
	return c == ' ' || c == '\t';
}

/* The line starting at p (before e): its end without CR or LF in *le, the start of the
 * next line returned. NULL when there is no LF before e. */
static const char *line_end(const char *p, const char *e, const char **le)
{
	const char *lf = memchr(p, '\n', (size_t)(e - p));
	if (!lf)
		return NULL;
	*le = lf > p && lf[-1] == '\r' ? lf - 1 : lf;
	return lf + 1;
}

/* Whether the comma-separated list v holds token t (case-insensitive, spaces around). */
static bool list_has(struct str v, struct str t)
{
	size_t i = 0;
	while (i <= v.l) {
		size_t j = i;
		while (j < v.l && v.p[j] != ',')
			j++;
		if (str_caseeq(str_trim((struct str){ v.p + i, j - i }), t))
			return true;
		i = j + 1;
	}
	return false;
}

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* RFC 6455 §4.1: the key is 16 random bytes in base64: 22 characters and "==". */
static bool key_ok(struct str k)
{
	if (k.l != 24 || k.p[22] != '=' || k.p[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++)
		if (!is_b64(k.p[i]))
			return false;
	return true;
}

static enum tp_ws_parse refuse(struct tp_ws_req *r, int status, const char *why)
{
	r->status = status;
	r->why = why;
	return TP_WS_DONE;
}

enum tp_ws_parse tp__ws_parse(const char *buf, size_t len, size_t *scan, struct tp_ws_req *r)
{
	memset(r, 0, sizeof(*r));
	/* The end of the header section: an empty line. The search resumes where the last
	 * call stopped, so a request trickling in byte by byte is scanned once. */
	size_t lim = len < TP_WS_REQ_MAX ? len : TP_WS_REQ_MAX;
	size_t i = *scan > 2 ? *scan - 2 : 0, end = 0;
	for (; i < lim; i++) {
		const char *lf = memchr(buf + i, '\n', lim - i);
		if (!lf)
			break;
		i = (size_t)(lf - buf);
		if (i + 1 < lim && buf[i + 1] == '\n') {
			end = i + 2;
			break;
		}
		if (i + 2 < lim && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
			end = i + 3;
			break;
		}
	}
	if (!end) {
		*scan = lim;
		if (len < TP_WS_REQ_MAX)
			return TP_WS_MORE;
		r->len = lim; /* what was read of it; the connection closes after the answer */
		return refuse(r, 400, "request header over 8192 bytes");
	}
	*scan = 0;
	r->len = end;
	const char *p = buf, *e = buf + end, *le = buf;
	/* Request line: GET SP target SP HTTP/1.1. Every line up to e ends in LF (e is just
	 * past the empty line's), so line_end finds one each time. */
	const char *next = line_end(p, e, &le);
	if (!next)
		return refuse(r, 400, "bad request line");
	const char *sp1 = memchr(p, ' ', (size_t)(le - p));
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || sp2 == sp1 + 1)
		return refuse(r, 400, "bad request line");
	struct str method = { p, (size_t)(sp1 - p) }, version = { sp2 + 1, (size_t)(le - sp2 - 1) };
	r->path = (struct str){ sp1 + 1, (size_t)(sp2 - sp1 - 1) };
	if (!(version.l == 8 && memcmp(version.p, "HTTP/1.", 7) == 0 && version.p[7] >= '1' && version.p[7] <= '9'))
		return refuse(r, 400, "HTTP/1.1 or later needed for a WebSocket upgrade");
	if (!(method.l == 3 && memcmp(method.p, "GET", 3) == 0))
		return refuse(r, 400, "only GET upgrades to a WebSocket");
	bool upgrade = false, conn_upgrade = false, version13 = false, have_version = false, sip = false;
	for (p = next; p < e; p = next) {
		if (!(next = line_end(p, e, &le)) || le == p)
			break; /* the empty line */
		if (ows(*p))
			return refuse(r, 400, "folded header line");
		const char *colon = memchr(p, ':', (size_t)(le - p));
		if (!colon || colon == p)
			return refuse(r, 400, "header line without a name");
		struct str name = { p, (size_t)(colon - p) };
		struct str val = str_trim((struct str){ colon + 1, (size_t)(le - colon - 1) });
		if (str_caseeq(name, STR("Host")))
			r->host = val;
		else if (str_caseeq(name, STR("Origin")))
			r->origin = val;
		else if (str_caseeq(name, STR("Upgrade")))
			upgrade = upgrade || list_has(val, STR("websocket"));
		else if (str_caseeq(name, STR("Connection")))
			conn_upgrade = conn_upgrade || list_has(val, STR("upgrade"));
		else if (str_caseeq(name, STR("Sec-WebSocket-Key")))
			r->key = val;
		else if (str_caseeq(name, STR("Sec-WebSocket-Version"))) {
			have_version = true;
			version13 = str_caseeq(val, STR("13"));
		} else if (str_caseeq(name, STR("Sec-WebSocket-Protocol")))
			/* The header may come more than once: any of them may offer sip. */
			sip = sip || list_has(val, STR("sip"));
	}
	if (!upgrade)
		return refuse(r, 426, "this is a SIP WebSocket endpoint (RFC 7118): send a WebSocket upgrade");
	if (!conn_upgrade)
		return refuse(r, 400, "Connection header without upgrade");
	if (!have_version || !version13) {
		r->want_version = true;
		return refuse(r, 426, "Sec-WebSocket-Version 13 needed");
	}
	if (!key_ok(r->key))
		return refuse(r, 400, "missing or bad Sec-WebSocket-Key");
	if (!r->host.l)
		return refuse(r, 400, "missing Host header");
	if (!sip)
		return refuse(r, 400, "Sec-WebSocket-Protocol must offer sip (RFC 7118)");
	return TP_WS_DONE;
}

int tp__ws_accept_key(struct str key, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	unsigned char in[64], md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	if (key.l + sizeof(guid) - 1 > sizeof(in))
		return -EINVAL;
	memcpy(in, key.p, key.l);
	memcpy(in + key.l, guid, sizeof(guid) - 1);
	if (!EVP_Digest(in, key.l + sizeof(guid) - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
		return -EIO;
	/* 20 bytes make 28 base64 characters and a NUL. */
	EVP_EncodeBlock((unsigned char *)out, md, 20);
	return 0;
}

/* ---- frames through wslay ------------------------------------------------------------- */

/* wslay asks for bytes: those tp__ws_input was handed, then "would block". */
static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *arg)
{
	(void)flags;
	struct tp_ws *w = arg;
	if (w->inlen == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	size_t n = len < w->inlen ? len : w->inlen;
	memcpy(buf, w->in, n);
	w->in += n;
	w->inlen -= n;
	return (ssize_t)n;
}

/* wslay has frame bytes to send: the connection queues all it is given, or fails. */
static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *arg)
{
	(void)flags;
	struct tp_ws *w = arg;
	if (w->failed || w->io->write(w->conn, (const char *)data, len) != 0) {
		w->failed = true;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

/* A frame begins: a message's frames are counted, and past WS_MAX_FRAGMENTS the message is
 * refused with close 1009 before wslay stores more of them (it reads no further frame). */
static void on_frame_start(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *f, void *arg)
{
	struct tp_ws *w = arg;
	if (f->opcode == WSLAY_TEXT_FRAME || f->opcode == WSLAY_BINARY_FRAME)
		w->frags = 1;
	else if (f->opcode == WSLAY_CONTINUATION_FRAME && ++w->frags > WS_MAX_FRAGMENTS && !w->fragmented) {
		w->fragmented = true;
		wslay_event_queue_close(ctx, WSLAY_CODE_MESSAGE_TOO_BIG, NULL, 0);
		wslay_event_shutdown_read(ctx);
	}
}

/* A whole message (wslay joined its fragments): text and binary ones each carry one SIP
 * message (RFC 7118 §5); control frames are wslay's to answer. */
static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m, void *arg)
{
	(void)ctx;
	struct tp_ws *w = arg;
	if ((m->opcode != WSLAY_TEXT_FRAME && m->opcode != WSLAY_BINARY_FRAME) || m->msg_length == 0 || w->failed ||
	    w->closed || w->fragmented)
		return;
	/* wslay's buffer is read-only and has no byte after the message for the parser's
	 * NUL: one copy, of at most TP_MAX_MSG bytes. */
	char *b = malloc(m->msg_length + 1);
	if (!b) {
		log_warn(w->lg, "ws", "WebSocket from %s: message of %zu bytes dropped: out of memory", w->peer,
			 m->msg_length);
		return;
	}
	memcpy(b, m->msg, m->msg_length);
	b[m->msg_length] = '\0';
	w->io->deliver(w->conn, b, m->msg_length);
	free(b);
}

static const struct wslay_event_callbacks callbacks = {
	.recv_callback = on_recv,
	.send_callback = on_send,
	.on_frame_recv_start_callback = on_frame_start,
	.on_msg_recv_callback = on_msg,
};

int tp__ws_new(struct tp_ws **out, const struct tp_ws_io *io, void *conn, struct log *lg, const char *peer)
{
	struct tp_ws *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->io = io;
	w->conn = conn;
	w->lg = lg;
	snprintf(w->peer, sizeof w->peer, "%s", peer);
	*out = w;
	return 0;
}

bool tp__ws_upgraded(const struct tp_ws *w)
{
	return w->ctx != NULL;
}

void tp__ws_free(struct tp_ws *w)
{
	if (!w)
		return;
	if (w->ctx)
		wslay_event_context_free(w->ctx);
	free(w);
}

static void close_conn(struct tp_ws *w, const char *why, bool warn)
{
	if (w->closed)
		return;
	w->closed = true;
	w->io->close(w->conn, why, warn);
}

/* Answers a refused upgrade with its status and why, then closes. */
static void refuse_upgrade(struct tp_ws *w, const struct tp_ws_req *r)
{
	const char *reason = r->status == 426 ? "Upgrade Required" : "Bad Request";
	char a[512];
	int n = snprintf(
		a, sizeof a,
		"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n%s%s"
		"\r\n%s\n",
		r->status, reason, strlen(r->why) + 1, r->status == 426 ? "Upgrade: websocket\r\n" : "",
		r->want_version ? "Sec-WebSocket-Version: 13\r\n" : "", r->why);
	log_debug(w->lg, "ws", "WebSocket upgrade from %s refused: %d %s", w->peer, r->status, r->why);
	if (w->io->write(w->conn, a, (size_t)n) != 0)
		w->failed = true;
	char why[160];
	snprintf(why, sizeof why, "WebSocket upgrade refused: %s", r->why);
	close_conn(w, why, false);
}

/* s for a log line: at most n - 1 bytes, control bytes as '?' (a peer wrote them). */
static const char *printable(struct str s, char *buf, size_t n)
{
	size_t k = 0;
	for (; k < s.l && k + 1 < n; k++)
		buf[k] = (unsigned char)s.p[k] < 0x20 || s.p[k] == 0x7f ? '?' : s.p[k];
	buf[k] = '\0';
	return buf;
}

/* Accepts the upgrade: 101 with sip chosen, and a wslay context for the frames that follow.
 * Returns 0, or -1 after closing the connection. */
static int accept_upgrade(struct tp_ws *w, const struct tp_ws_req *r)
{
	char acc[29];
	if (tp__ws_accept_key(r->key, acc) != 0) {
		close_conn(w, "WebSocket upgrade failed: no SHA-1", true);
		return -1;
	}
	if (wslay_event_context_server_init(&w->ctx, &callbacks, w) != 0) {
		w->ctx = NULL;
		close_conn(w, "WebSocket upgrade failed: out of memory", true);
		return -1;
	}
	/* Over it wslay sends close 1009 and stops reading (RFC 6455 §7.4.1). */
	wslay_event_config_set_max_recv_msg_length(w->ctx, TP_MAX_MSG);
	char a[256];
	int n = snprintf(a, sizeof a,
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
			 acc);
	if (w->io->write(w->conn, a, (size_t)n) != 0) {
		w->failed = true;
		return -1;
	}
	char path[128], origin[128];
	log_debug(w->lg, "ws", "WebSocket upgrade from %s accepted (path %s%s%s)", w->peer,
		  printable(r->path, path, sizeof path), r->origin.l ? ", origin " : "",
		  printable(r->origin, origin, sizeof origin));
	return 0;
}

/* After wslay ran: a close frame sent (ours, or the answer to the peer's) ends the
 * connection once it is written; a failed wslay call ends it at once. */
static void after(struct tp_ws *w, int rv)
{
	if (w->failed || w->closed)
		return;
	char why[128];
	if (wslay_event_get_close_sent(w->ctx)) {
		unsigned code = wslay_event_get_status_code_sent(w->ctx);
		if (wslay_event_get_close_received(w->ctx))
			snprintf(why, sizeof why, "WebSocket closed by the peer (code %u)",
				 wslay_event_get_status_code_received(w->ctx));
		else if (code == WSLAY_CODE_MESSAGE_TOO_BIG && w->fragmented)
			snprintf(why, sizeof why, "WebSocket message in over %d fragments: close 1009",
				 WS_MAX_FRAGMENTS);
		else if (code == WSLAY_CODE_MESSAGE_TOO_BIG)
			snprintf(why, sizeof why, "WebSocket message over %d bytes: close 1009", TP_MAX_MSG);
		else if (code == WSLAY_CODE_PROTOCOL_ERROR)
			snprintf(why, sizeof why,
				 "WebSocket protocol error (an unmasked frame, a bad opcode or "
				 "length): close 1002");
		else if (code == WSLAY_CODE_NO_STATUS_RCVD && rv != 0)
			/* wslay's frame reader refuses these with an empty close frame. */
			snprintf(why, sizeof why,
				 "WebSocket protocol error in a frame's header (a control frame over 125 bytes "
				 "or fragmented, or a bad length): closed");
		else
			snprintf(why, sizeof why, "WebSocket closed with code %u", code);
		close_conn(w, why, code == WSLAY_CODE_MESSAGE_TOO_BIG);
	} else if (rv != 0) {
		snprintf(why, sizeof why, "WebSocket failed: wslay error %d", rv);
		close_conn(w, why, true);
	}
}

size_t tp__ws_input(struct tp_ws *w, char *buf, size_t len)
{
	if (w->closed || w->failed)
		return len;
	size_t used = 0;
	if (!w->ctx) {
		struct tp_ws_req r;
		if (tp__ws_parse(buf, len, &w->scan, &r) == TP_WS_MORE)
			return 0;
		if (r.status) {
			refuse_upgrade(w, &r);
			return len;
		}
		if (accept_upgrade(w, &r) != 0)
			return len;
		used = r.len;
	}
	w->in = buf + used;
	w->inlen = len - used;
	w->depth++;
	int rv = wslay_event_recv(w->ctx);
	w->depth--;
	/* Pongs, the close answer and messages sent while receiving (answers to what came in)
	 * leave here. */
	int sv = w->failed ? 0 : wslay_event_send(w->ctx);
	after(w, rv ? rv : sv);
	w->inlen = 0;
	return len;
}

int tp__ws_send(struct tp_ws *w, const char *buf, size_t len)
{
	if (!w->ctx || w->failed || w->closed || wslay_event_get_close_sent(w->ctx))
		return -ENOTCONN;
	/* Parley's messages go out as text frames (RFC 7118 §5: SIP is UTF-8 text; JsSIP and
	 * SIP.js read both). */
	struct wslay_event_msg m = { .opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)buf, .msg_length = len };
	int rv = wslay_event_queue_msg(w->ctx, &m);
	if (rv == WSLAY_ERR_NOMEM)
		return -ENOMEM;
	if (rv != 0)
		return -ENOTCONN;
	if (w->depth)
		return 0; /* tp__ws_input writes it when wslay_event_recv returns */
	rv = wslay_event_send(w->ctx);
	if (w->failed)
		return -ENOTCONN;
	after(w, rv);
	return rv ? -EIO : 0;
}
