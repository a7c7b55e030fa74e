/* test_txn.c: unit tests of the transaction layer, driven by hand-written messages and a simulated clock. */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>

#include "txn/txn.h"

#define T1 500
#define T2 4000
#define T4 5000
#define MAXSENT 512

/* Everything one test observes: the clock, what was sent and what the TU was told. */
struct fx {
	struct timer_wheel w;
	uint64_t now;
	struct txn_layer *l;
	struct txn_tu tu;
	struct txn_client_ops cops;
	struct tp_source src;  /* where test requests come from */
	struct tp_source peer; /* where client transactions send to */
	char *sent[MAXSENT];
	size_t sent_len[MAXSENT];
	struct tp_source sent_dst[MAXSENT];
	unsigned nsent;
	int send_err; /* what the next sends return */
	/* server side */
	unsigned nreq, nack_up;
	struct txn_server *st; /* the last one handed up */
	char method[16];
	unsigned server_timeouts, server_frees;
	struct txn_server *freed_st;
	/* client side */
	unsigned nresp, last_status, client_timeouts, client_frees;
	int timeout_err;
	struct txn_client *freed_ct;
};

static int on_send(void *arg, const struct tp_source *dst, const char *buf, size_t len)
{
	struct fx *f = arg;
	if (f->nsent < MAXSENT) {
		f->sent[f->nsent] = malloc(len + 1);
		memcpy(f->sent[f->nsent], buf, len);
		f->sent[f->nsent][len] = '\0';
		f->sent_len[f->nsent] = len;
		f->sent_dst[f->nsent] = *dst;
	}
	f->nsent++;
	return f->send_err;
}

static void on_request(void *arg, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src)
{
	struct fx *f = arg;
	if (!st)
		f->nack_up++;
	else
		f->nreq++;
	f->st = st;
	str_to_cbuf(m->method, f->method, sizeof(f->method));
}

static void on_server_timeout(void *arg, struct txn_server *st)
{
	struct fx *f = arg;
	f->server_timeouts++;
}

static void on_server_free(void *arg, struct txn_server *st)
{
	struct fx *f = arg;
	f->server_frees++;
	f->freed_st = st;
}

static void on_response(void *tu, struct txn_client *ct, const struct sip_msg *m, const struct tp_source *src)
{
	struct fx *f = tu;
	f->nresp++;
	f->last_status = m->status;
}

static void on_ctimeout(void *tu, struct txn_client *ct, int err)
{
	struct fx *f = tu;
	f->client_timeouts++;
	f->timeout_err = err;
}

static void on_cfree(void *tu, struct txn_client *ct)
{
	struct fx *f = tu;
	f->client_frees++;
	f->freed_ct = ct;
}

static void addr4(struct tp_addr *a, const char *ip, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	a->len = sizeof(*sin);
}

static uint16_t port_of(const struct tp_source *s)
{
	return ntohs(((const struct sockaddr_in *)&s->addr.ss)->sin_port);
}

static struct fx *fx_new(enum tp_proto proto)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->now = 1000000;
	timer_wheel_init(&f->w, f->now);
	f->tu = (struct txn_tu){ on_request, on_server_timeout, on_server_free };
	f->cops = (struct txn_client_ops){ on_response, on_ctimeout, on_cfree };
	struct txn_cfg cfg = { T1, T2, T4 };
	CHECK_INT(txn_layer_new(&f->l, &cfg, &f->w, on_send, f, &f->tu, f), 0);
	f->src.proto = proto;
	f->src.conn_id = proto == TP_UDP ? 0 : 7;
	addr4(&f->src.addr, "192.0.2.10", 40000);
	f->peer.proto = proto;
	addr4(&f->peer.addr, "198.51.100.7", 5060);
	return f;
}

static void fx_free(struct fx *f)
{
	txn_layer_free(f->l);
	for (unsigned i = 0; i < f->nsent && i < MAXSENT; i++)
		free(f->sent[i]);
	free(f);
}

/* Moves the simulated clock ms forward one millisecond at a time, so every timer fires at
 * its exact time and timers it re-arms fire in order. */
static void run(struct fx *f, uint64_t ms)
{
	for (uint64_t i = 0; i < ms; i++)
		timer_advance(&f->w, ++f->now);
	if (ms == 0)
		timer_advance(&f->w, f->now);
}

/* Text of send i, and whether it starts with / contains a string. */
static const char *sent(struct fx *f, unsigned i)
{
	return i < f->nsent && i < MAXSENT ? f->sent[i] : "";
}

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Parses text written with bare LF line ends (turned into CRLF) and hands it to the
 * layer as if the router received it from f->src. */
static int feed(struct fx *f, const char *text)
{
	char buf[4096];
	size_t n = 0;
	for (const char *p = text; *p && n < sizeof(buf) - 2; p++) {
		if (*p == '\n')
			buf[n++] = '\r';
		buf[n++] = *p;
	}
	struct sip_msg m_, *m = &m_;
	struct sip_hdr hdr[SIP_MAX_HEADERS];
	struct sip_parse_err err;
	int rc = -1000;
	if (sip_msg_parse(m, hdr, SIP_MAX_HEADERS, buf, n, true, &err) != SIP_PARSE_OK) {
		fprintf(stderr, "test message does not parse: %s\n", err.reason);
		unit_failures++;
	} else {
		rc = m->request ? txn_recv_request(f->l, m, &f->src) : txn_recv_response(f->l, m, &f->src);
	}
	return rc;
}

/* A request from 192.0.2.10 to bob; via_params e.g. ";branch=z9hG4bK1", to_params e.g.
 * ";tag=x". */
static int req(struct fx *f, const char *method, const char *via_params, const char *to_params, unsigned cseq,
	       const char *cseq_method)
{
	char text[2048];
	snprintf(text, sizeof(text),
		 "%s sip:bob@example.com SIP/2.0\n"
		 "Via: SIP/2.0/UDP 192.0.2.10:5070%s\n"
		 "Max-Forwards: 70\n"
		 "From: Alice <sip:alice@example.com>;tag=a1\n"
		 "To: Bob <sip:bob@example.com>%s\n"
		 "Call-ID: call-1@192.0.2.10\n"
		 "CSeq: %u %s\n"
		 "Content-Length: 0\n\n",
		 method, via_params, to_params, cseq, cseq_method);
	return feed(f, text);
}

/* A response to one of our client transactions. */
static int resp(struct fx *f, unsigned status, const char *branch, const char *to_params, const char *cseq_method)
{
	char text[2048];
	snprintf(text, sizeof(text),
		 "SIP/2.0 %u Whatever\n"
		 "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=%s\n"
		 "From: <sip:alice@example.com>;tag=a1\n"
		 "To: <sip:bob@example.com>%s\n"
		 "Call-ID: out-1\n"
		 "CSeq: 5 %s\n"
		 "Content-Length: 0\n\n",
		 status, branch, to_params, cseq_method);
	return feed(f, text);
}

/* Whether raw CRLF text parses, so that a test refusing it knows the refusal is not a
 * parse error (the parser is stricter than when these tests were first written). */
static bool parses(const char *text)
{
	struct sip_msg m_, *m = &m_;
	struct sip_hdr hdr[SIP_MAX_HEADERS];
	struct sip_parse_err err;
	bool ok = sip_msg_parse(m, hdr, SIP_MAX_HEADERS, text, strlen(text), true, &err) == SIP_PARSE_OK;
	if (!ok)
		fprintf(stderr, "does not parse: %s\n", err.reason);
	return ok;
}

/* Starts a client transaction for method with branch; returns it (NULL on error). */
static struct txn_client *client(struct fx *f, const char *method, const char *branch)
{
	char text[2048];
	int n = snprintf(text, sizeof(text),
			 "%s sip:bob@198.51.100.7 SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=%s\r\n"
			 "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKup;received=192.0.2.10\r\n"
			 "Route: <sip:edge.example.net;lr>\r\n"
			 "Route: <sip:core.example.net;lr>\r\n"
			 "Max-Forwards: 69\r\n"
			 "From: <sip:alice@example.com>;tag=a1\r\n"
			 "To: <sip:bob@example.com>\r\n"
			 "Call-ID: out-1\r\n"
			 "CSeq: 5 %s\r\n"
			 "Content-Type: application/sdp\r\n"
			 "Content-Length: 4\r\n\r\nv=0\n",
			 method, branch, method);
	struct txn_client *ct = NULL;
	int err = txn_client_new(&ct, f->l, text, (size_t)n, &f->peer, &f->cops, f);
	CHECK_INT(err, 0);
	return err ? NULL : ct;
}

/* ---- memory of finished transactions ------------------------------------------------------ */

/* A finished transaction drops its request once the layer is next entered: it still
 * matches retransmissions (branch, sent-by and method were copied) and resends the same
 * final, but has no request to build anything new from. */
static void t_server_request_dropped(void)
{
	struct fx *f = fx_new(TP_UDP);
	CHECK_INT(req(f, "MESSAGE", ";branch=z9hG4bKd1", "", 1, "MESSAGE"), 0);
	struct txn_server *st = f->st;
	CHECK(txn_server_request(st) != NULL);
	CHECK_INT(txn_server_reply(st, 202, NULL, NULL), 0);
	/* Still there for the rest of the TU's call. */
	CHECK_STR(txn_server_request(st)->method, "MESSAGE");
	/* Entering the layer again drops it; the retransmission is still matched and answered
	 * with the same bytes. */
	CHECK_INT(req(f, "MESSAGE", ";branch=z9hG4bKd1", "", 1, "MESSAGE"), 0);
	CHECK_INT(f->nreq, 1);
	CHECK_INT(f->nsent, 2);
	CHECK_INT(strcmp(sent(f, 0), sent(f, 1)), 0);
	CHECK(txn_server_request(st) == NULL);
	CHECK_INT(txn_server_reply(st, 500, NULL, NULL), -EALREADY);
	/* Same branch, other sent-by or other method: a new transaction. */
	char text[512];
	snprintf(text, sizeof text,
		 "MESSAGE sip:bob@example.com SIP/2.0\n"
		 "Via: SIP/2.0/UDP 192.0.2.11:5070;branch=z9hG4bKd1\n"
		 "From: <sip:alice@example.com>;tag=a1\nTo: <sip:bob@example.com>\n"
		 "Call-ID: call-1@192.0.2.10\nCSeq: 1 MESSAGE\nContent-Length: 0\n\n");
	CHECK_INT(feed(f, text), 0);
	CHECK_INT(f->nreq, 2);
	CHECK_INT(txn_server_reply(f->st, 202, NULL, NULL), 0);
	CHECK_INT(req(f, "OPTIONS", ";branch=z9hG4bKd1", "", 2, "OPTIONS"), 0);
	CHECK_INT(f->nreq, 3);
	CHECK_INT(txn_server_reply(f->st, 200, NULL, NULL), 0);
	/* Timer J still ends it. */
	run(f, 64 * T1);
	CHECK_INT(f->server_frees, 3);
	fx_free(f);
}

/* A branch too long to copy keeps the request for the transaction's life; matching and
 * the INVITE's ACK and 2xx paths work the same. */
static void t_server_long_branch(void)
{
	struct fx *f = fx_new(TP_UDP);
	char via[300] = ";branch=z9hG4bK";
	for (int i = 0; i < 200; i++)
		strcat(via, "x");
	CHECK_INT(req(f, "INVITE", via, "", 1, "INVITE"), 0);
	struct txn_server *st = f->st;
	CHECK_INT(txn_server_reply(st, 486, NULL, NULL), 0);
	CHECK_INT(req(f, "INVITE", via, "", 1, "INVITE"), 0);
	CHECK_INT(f->nreq, 1);
	CHECK_INT(f->nsent, 2);
	CHECK(txn_server_request(st) != NULL);
	char tag[64] = ";tag=";
	const char *t = strstr(sent(f, 0), "tag=");
	CHECK(t != NULL);
	if (t)
		sscanf(t + 4, "%40[^;\r]", tag + 5);
	CHECK_INT(req(f, "ACK", via, tag, 1, "ACK"), 0);
	CHECK_INT(f->nack_up, 0);
	CHECK_INT(txn_server_state(st), TXN_CONFIRMED);
	fx_free(f);
}

/* An INVITE answered 2xx drops its request and its kept provisional; the ACK for the 2xx
 * still goes up to the TU, and a retransmitted INVITE is absorbed. */
static void t_server_2xx_dropped(void)
{
	struct fx *f = fx_new(TP_UDP);
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKd2", "", 1, "INVITE"), 0);
	struct txn_server *st = f->st;
	CHECK_INT(txn_server_trying(st), 0);
	CHECK_INT(txn_server_reply(st, 200, NULL, NULL), 0);
	CHECK_INT(txn_server_state(st), TXN_ACCEPTED);
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKd2", "", 1, "INVITE"), 0);
	CHECK_INT(f->nreq, 1);
	CHECK_INT(f->nsent, 2);
	CHECK(txn_server_request(st) == NULL);
	CHECK_INT(txn_server_reply(st, 486, NULL, NULL), -EINVAL);
	/* A 2xx from another fork still passes as bytes. */
	CHECK_INT(txn_server_send(st, "SIP/2.0 200 OK\r\n\r\n", 19, 200), 0);
	CHECK_INT(f->nsent, 3);
	CHECK_INT(req(f, "ACK", ";branch=z9hG4bKd3", ";tag=x", 1, "ACK"), 0);
	CHECK_INT(f->nack_up, 1);
	fx_free(f);
}

/* A client transaction drops its request at the final response; txn_client_start takes
 * the branch and method from its caller. */
static void t_client_request_dropped(void)
{
	struct fx *f = fx_new(TP_UDP);
	static const char text[] = "MESSAGE sip:bob@198.51.100.7 SIP/2.0\r\n"
				   "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKs1\r\n"
				   "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
				   "Call-ID: out-1\r\nCSeq: 5 MESSAGE\r\nContent-Length: 0\r\n\r\n";
	struct txn_client *ct = NULL;
	CHECK_INT(txn_client_start(&ct, f->l, text, sizeof text - 1, STR("z9hG4bKs1"), SIP_MESSAGE, STR("MESSAGE"),
				   &f->peer, &f->cops, f),
		  0);
	CHECK_INT(txn_client_start(NULL, f->l, text, sizeof text - 1, STR("z9hG4bKs1"), SIP_MESSAGE, STR("MESSAGE"),
				   &f->peer, &f->cops, f),
		  -EEXIST);
	CHECK_INT(txn_client_start(NULL, f->l, text, sizeof text - 1, STR("nocookie"), SIP_MESSAGE, STR("MESSAGE"),
				   &f->peer, &f->cops, f),
		  -EINVAL);
	CHECK_INT(txn_client_bytes(ct).l, sizeof text - 1);
	CHECK_STR(txn_client_branch(ct), "z9hG4bKs1");
	/* Timer E resends the same bytes. */
	run(f, T1);
	CHECK_INT(f->nsent, 2);
	CHECK_INT(strcmp(sent(f, 0), sent(f, 1)), 0);
	CHECK_INT(resp(f, 200, "z9hG4bKs1", ";tag=b1", "MESSAGE"), 0);
	CHECK_INT(f->nresp, 1);
	CHECK(txn_client_bytes(ct).p == NULL);
	/* Retransmitted finals are absorbed by the finished transaction; no more sends. */
	CHECK_INT(resp(f, 200, "z9hG4bKs1", ";tag=b1", "MESSAGE"), 0);
	CHECK_INT(f->nresp, 1);
	run(f, 10 * T1);
	CHECK_INT(f->nsent, 2);
	fx_free(f);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void t_branch(void)
{
	struct fx *f = fx_new(TP_UDP);
	char a[TXN_BRANCH_SIZE], b[TXN_BRANCH_SIZE], tag[TXN_TAG_SIZE];
	CHECK_INT(txn_make_branch(f->l, a), 23);
	CHECK(starts(a, "z9hG4bK"));
	CHECK_INT(strlen(a), 23);
	txn_make_branch(f->l, b);
	CHECK(strcmp(a, b) != 0);
	CHECK_INT(txn_make_tag(f->l, tag), 16);
	CHECK_INT(strlen(tag), 16);
	CHECK_STR(str_from_cstr(txn_state_name(TXN_CONFIRMED)), "Confirmed");
	CHECK_STR(str_from_cstr(txn_state_name(TXN_ACCEPTED)), "Accepted");
	fx_free(f);
}

static void t_response_dest(void)
{
	struct fx *f = fx_new(TP_UDP);
	/* Without rport the response goes to the sent-by port, with rport to the source port. */
	CHECK_INT(req(f, "OPTIONS", ";branch=z9hG4bKd1", "", 1, "OPTIONS"), 0);
	CHECK_INT(port_of(txn_server_dest(f->st)), 5070);
	CHECK_INT(port_of(txn_server_source(f->st)), 40000);
	CHECK_INT(req(f, "OPTIONS", ";rport;branch=z9hG4bKd2", "", 2, "OPTIONS"), 0);
	CHECK_INT(port_of(txn_server_dest(f->st)), 40000);
	CHECK_INT(txn_server_reply(f->st, 200, NULL, NULL), 0);
	CHECK(strstr(sent(f, 0), ";rport=40000") != NULL);
	/* sent-by is the source address, yet rport asks for received= (RFC 3581 §4). */
	CHECK(strstr(sent(f, 0), ";received=") != NULL);
	CHECK_INT(port_of(&f->sent_dst[0]), 40000);

	/* IPv6: the bracketed sent-by equals the source address, so no received=. */
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&f->src.addr.ss;
	memset(&f->src.addr, 0, sizeof(f->src.addr));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(40000);
	inet_pton(AF_INET6, "2001:db8::1", &sin6->sin6_addr);
	f->src.addr.len = sizeof(*sin6);
	CHECK_INT(feed(f, "OPTIONS sip:bob@example.com SIP/2.0\n"
			  "Via: SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKd6\n"
			  "From: <sip:alice@example.com>;tag=a1\n"
			  "To: <sip:bob@example.com>\n"
			  "Call-ID: v6\n"
			  "CSeq: 1 OPTIONS\n"
			  "Content-Length: 0\n\n"),
		  0);
	CHECK_INT(ntohs(((const struct sockaddr_in6 *)&txn_server_dest(f->st)->addr.ss)->sin6_port), 5070);
	CHECK_INT(txn_server_reply(f->st, 200, NULL, NULL), 0);
	CHECK(strstr(sent(f, 1), "received=") == NULL);
	CHECK(strstr(sent(f, 1), "rport") == NULL);
	fx_free(f);

	/* A layer made without a configuration takes the RFC defaults. */
	struct timer_wheel *w = malloc(sizeof(*w));
	struct txn_layer *l = NULL;
	struct txn_tu tu = { on_request, NULL, NULL };
	timer_wheel_init(w, 0);
	CHECK_INT(txn_layer_new(&l, NULL, w, on_send, NULL, &tu, NULL), 0);
	CHECK_INT(txn_layer_cfg(l)->t1, 500);
	CHECK_INT(txn_layer_cfg(l)->t2, 4000);
	CHECK_INT(txn_layer_cfg(l)->t4, 5000);
	txn_layer_free(l);
	free(w);
}

static void t_big_response(void)
{
	struct fx *f = fx_new(TP_UDP);
	CHECK_INT(req(f, "OPTIONS", ";branch=z9hG4bKbig", "", 1, "OPTIONS"), 0);
	/* Too big for the first buffer: built again on the heap. */
	char *body = malloc(20000);
	memset(body, 'x', 20000);
	struct sip_resp_opts o = { .body = { body, 20000 },
				   .content_type = STR("text/plain"),
				   .extra = STR("Allow: INVITE, ACK\r\n") };
	CHECK_INT(txn_server_reply(f->st, 200, NULL, &o), 0);
	CHECK(f->sent_len[0] > 20000);
	CHECK(strstr(sent(f, 0), "Content-Length: 20000\r\n") != NULL);
	CHECK(strstr(sent(f, 0), "Allow: INVITE, ACK\r\n") != NULL);
	/* The retransmission answer is the same big response. */
	CHECK_INT(req(f, "OPTIONS", ";branch=z9hG4bKbig", "", 1, "OPTIONS"), 0);
	CHECK_INT(f->sent_len[1], f->sent_len[0]);
	/* Too big for any message. */
	CHECK_INT(req(f, "OPTIONS", ";branch=z9hG4bKbig2", "", 1, "OPTIONS"), 0);
	char *huge = malloc(SIP_MAX_MSG);
	memset(huge, 'y', SIP_MAX_MSG);
	o.body = (struct str){ huge, SIP_MAX_MSG };
	CHECK_INT(txn_server_reply(f->st, 200, NULL, &o), -ENOBUFS);
	CHECK_INT(txn_server_state(f->st), TXN_TRYING);
	CHECK_INT(txn_server_reply(f->st, 0, NULL, NULL), -EINVAL);
	CHECK_INT(txn_server_send(f->st, "x", 1, 700), -EINVAL);
	free(huge);
	free(body);
	fx_free(f);
}

/* ---- non-INVITE server ---------------------------------------------------------------------- */

static void t_server_nict_udp(void)
{
	struct fx *f = fx_new(TP_UDP);
	CHECK_INT(req(f, "OPTIONS", ";branch=z9hG4bKo1", "", 1, "OPTIONS"), 0);
	CHECK_INT(f->nreq, 1);
	CHECK_STR(str_from_cstr(f->method), "OPTIONS");
	struct txn_server *st = f->st;
	CHECK(st != NULL);
	CHECK_INT(txn_server_state(st), TXN_TRYING);
	CHECK_INT(txn_layer_stats(f->l)->servers, 1);
	CHECK_STR(txn_server_request(st)->method, "OPTIONS");

	/* Trying: a retransmission is absorbed and nothing is sent. */
	CHECK_INT(req(f, "OPTIONS", ";branch=z9hG4bKo1", "", 1, "OPTIONS"), 0);
	CHECK_INT(f->nreq, 1);
	CHECK_INT(f->nsent, 0);

	/* Proceeding: the provisional is resent for each retransmission. */
	CHECK_INT(txn_server_reply(st, 100, NULL, NULL), 0);
	CHECK_INT(txn_server_state(st), TXN_PROCEEDING);
	CHECK_INT(f->nsent, 1);
	CHECK(starts(sent(f, 0), "SIP/2.0 100 Trying\r\n"));
	CHECK(strstr(sent(f, 0), "tag=") == NULL || strstr(sent(f, 0), "tag=a1") != NULL);
	CHECK_INT(req(f, "OPTIONS", ";branch=z9hG4bKo1", "", 1, "OPTIONS"), 0);
	CHECK_INT(f->nsent, 2);
	CHECK(starts(sent(f, 1), "SIP/2.0 100 "));

	/* Completed: the final is resent, no second final, and timer J ends it. */
	CHECK_INT(txn_server_reply(st, 200, "OK", NULL), 0);
	CHECK_INT(txn_server_state(st), TXN_COMPLETED);
	CHECK_INT(txn_server_status(st), 200);
	CHECK(starts(sent(f, 2), "SIP/2.0 200 OK\r\n"));
	CHECK(strstr(sent(f, 2), "To: Bob <sip:bob@example.com>;tag=") != NULL);
	CHECK(strstr(sent(f, 2), "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKo1\r\n") != NULL);
	CHECK_INT(txn_server_reply(st, 404, NULL, NULL), -EALREADY);
	CHECK_INT(req(f, "OPTIONS", ";branch=z9hG4bKo1", "", 1, "OPTIONS"), 0);
	CHECK_INT(f->nsent, 4);
	CHECK_INT(strcmp(sent(f, 2), sent(f, 3)), 0);
	CHECK_INT(f->nreq, 1);
	CHECK_INT(txn_layer_stats(f->l)->absorbed, 3);

	run(f, 64 * T1 - 1);
	CHECK_INT(f->server_frees, 0);
	run(f, 1);
	CHECK_INT(f->server_frees, 1);
	CHECK(f->freed_st == st);
	CHECK_INT(txn_layer_stats(f->l)->servers, 0);
	CHECK_INT(f->nsent, 4); /* no retransmissions of non-INVITE responses */

	/* Once gone, the same request is new again. */
	CHECK_INT(req(f, "OPTIONS", ";branch=z9hG4bKo1", "", 1, "OPTIONS"), 0);
	CHECK_INT(f->nreq, 2);
	fx_free(f);
}

static void t_server_nict_tcp(void)
{
	struct fx *f = fx_new(TP_TCP);
	CHECK_INT(req(f, "REGISTER", ";branch=z9hG4bKr1", "", 1, "REGISTER"), 0);
	struct txn_server *st = f->st;
	CHECK_INT(port_of(txn_server_dest(st)), 40000); /* same connection */
	CHECK_INT(txn_server_dest(st)->conn_id, 7);
	CHECK_INT(txn_server_reply(st, 200, NULL, NULL), 0);
	/* Timer J is zero on streams, but st lives until the next timer run. */
	CHECK_INT(txn_server_state(st), TXN_TERMINATED);
	CHECK_INT(f->server_frees, 0);
	run(f, 0);
	CHECK_INT(f->server_frees, 1);
	fx_free(f);
}

static void t_server_via_received(void)
{
	struct fx *f = fx_new(TP_UDP);
	CHECK_INT(feed(f, "MESSAGE sip:bob@example.com SIP/2.0\n"
			  "Via: SIP/2.0/UDP pc33.example.com;rport;branch=z9hG4bKm1\n"
			  "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKm0\n"
			  "From: <sip:alice@example.com>;tag=a1\n"
			  "To: <sip:bob@example.com>;tag=b2\n"
			  "Call-ID: m1\n"
			  "CSeq: 3 MESSAGE\n"
			  "Content-Length: 0\n\n"),
		  0);
	CHECK_INT(txn_server_reply(f->st, 202, NULL, NULL), 0);
	const char *r = sent(f, 0);
	CHECK(strstr(r, "received=192.0.2.10") != NULL);
	CHECK(strstr(r, "rport=40000") != NULL);
	CHECK(strstr(r, "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKm0\r\n") != NULL);
	CHECK(strstr(r, "To: <sip:bob@example.com>;tag=b2\r\n") != NULL); /* tag kept, none added */
	CHECK_INT(port_of(&f->sent_dst[0]), 40000);
	fx_free(f);
}

/* ---- INVITE server ------------------------------------------------------------------------- */

static void t_server_ist_non2xx(void)
{
	struct fx *f = fx_new(TP_UDP);
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKi1", "", 1, "INVITE"), 0);
	struct txn_server *st = f->st;
	CHECK_INT(txn_server_state(st), TXN_PROCEEDING);

	/* Proceeding before any response: absorbed silently. */
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKi1", "", 1, "INVITE"), 0);
	CHECK_INT(f->nsent, 0);
	CHECK_INT(txn_server_trying(st), 0);
	CHECK(starts(sent(f, 0), "SIP/2.0 100 Trying\r\n"));
	CHECK(strstr(sent(f, 0), "\r\nTo: Bob <sip:bob@example.com>\r\n") != NULL); /* no tag on 100 */
	CHECK_INT(txn_server_reply(st, 180, NULL, NULL), 0);
	CHECK(starts(sent(f, 1), "SIP/2.0 180 Ringing\r\n"));
	/* The last provisional answers a retransmission. */
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKi1", "", 1, "INVITE"), 0);
	CHECK_INT(f->nsent, 3);
	CHECK(starts(sent(f, 2), "SIP/2.0 180 "));
	CHECK_INT(f->nreq, 1);

	CHECK_INT(txn_server_reply(st, 486, NULL, NULL), 0);
	CHECK_INT(txn_server_state(st), TXN_COMPLETED);
	CHECK(starts(sent(f, 3), "SIP/2.0 486 Busy Here\r\n"));
	CHECK_INT(txn_server_reply(st, 200, NULL, NULL), -EALREADY);
	/* Timer G: T1, then doubling up to T2. */
	run(f, T1 - 1);
	CHECK_INT(f->nsent, 4);
	run(f, 1);
	CHECK_INT(f->nsent, 5);
	run(f, 2 * T1);
	CHECK_INT(f->nsent, 6);
	run(f, 4 * T1);
	CHECK_INT(f->nsent, 7);
	run(f, T2 - 1);
	CHECK_INT(f->nsent, 7);
	run(f, 1);
	CHECK_INT(f->nsent, 8);
	CHECK_INT(strcmp(sent(f, 3), sent(f, 7)), 0);
	/* A retransmitted INVITE gets the final too. */
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKi1", "", 1, "INVITE"), 0);
	CHECK_INT(f->nsent, 9);

	/* The ACK (same branch) is absorbed and confirms. */
	CHECK_INT(req(f, "ACK", ";branch=z9hG4bKi1", "", 1, "ACK"), 0);
	CHECK_INT(txn_server_state(st), TXN_CONFIRMED);
	CHECK_INT(f->nack_up, 0);
	run(f, T2);
	CHECK_INT(f->nsent, 9); /* no more G */
	/* Confirmed absorbs ACK and INVITE copies without answering. */
	CHECK_INT(req(f, "ACK", ";branch=z9hG4bKi1", "", 1, "ACK"), 0);
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKi1", "", 1, "INVITE"), 0);
	CHECK_INT(f->nsent, 9);
	CHECK_INT(f->nack_up, 0);
	CHECK_INT(f->nreq, 1);
	/* Timer I = T4 from the ACK. */
	CHECK_INT(f->server_frees, 0);
	run(f, T4 - T2 - 1);
	CHECK_INT(f->server_frees, 0);
	run(f, 1);
	CHECK_INT(f->server_frees, 1);
	CHECK_INT(f->server_timeouts, 0);
	fx_free(f);
}

static void t_server_ist_timer_h(void)
{
	struct fx *f = fx_new(TP_UDP);
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKh1", "", 1, "INVITE"), 0);
	struct txn_server *st = f->st;
	txn_server_set_tu(st, f);
	CHECK(txn_server_tu(st) == f);
	CHECK_INT(txn_server_reply(st, 603, "Decline", NULL), 0);
	/* G fires at 0.5 1.5 3.5 7.5 11.5 ... 31.5 s: ten resends before H at 32 s. */
	run(f, 64 * T1 - 1);
	CHECK_INT(f->nsent, 11);
	CHECK_INT(f->server_timeouts, 0);
	run(f, 1);
	CHECK_INT(f->server_timeouts, 1);
	CHECK_INT(f->server_frees, 1);
	CHECK_INT(txn_layer_stats(f->l)->timeouts, 1);
	CHECK_INT(txn_layer_stats(f->l)->retransmits, 10);
	run(f, 10000);
	CHECK_INT(f->nsent, 11);
	fx_free(f);
}

static void t_server_ist_2xx(void)
{
	struct fx *f = fx_new(TP_UDP);
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKa1", "", 1, "INVITE"), 0);
	struct txn_server *st = f->st;
	CHECK_INT(txn_server_reply(st, 200, NULL, NULL), 0);
	CHECK_INT(txn_server_state(st), TXN_ACCEPTED);
	CHECK_INT(f->nsent, 1);
	/* RFC 6026 Accepted: INVITE copies absorbed silently, the TU's 2xx copies pass. */
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKa1", "", 1, "INVITE"), 0);
	CHECK_INT(f->nsent, 1);
	CHECK_INT(f->nreq, 1);
	CHECK_INT(txn_server_send(st, sent(f, 0), f->sent_len[0], 200), 0);
	CHECK_INT(f->nsent, 2);
	CHECK_INT(txn_server_reply(st, 486, NULL, NULL), -EINVAL);
	/* No retransmissions of our own. */
	run(f, 10 * T1);
	CHECK_INT(f->nsent, 2);
	/* The ACK for a 2xx goes to the TU with no transaction, new branch or not. */
	CHECK_INT(req(f, "ACK", ";branch=z9hG4bKa2", ";tag=x", 1, "ACK"), 0);
	CHECK_INT(f->nack_up, 1);
	CHECK(f->st == NULL);
	CHECK_INT(req(f, "ACK", ";branch=z9hG4bKa1", ";tag=x", 1, "ACK"), 0);
	CHECK_INT(f->nack_up, 2);
	/* Timer L = 64*T1 from the 2xx. */
	run(f, 64 * T1 - 10 * T1 - 1);
	CHECK_INT(f->server_frees, 0);
	run(f, 1);
	CHECK_INT(f->server_frees, 1);
	fx_free(f);
}

static void t_server_ist_tcp(void)
{
	struct fx *f = fx_new(TP_TCP);
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKt1", "", 1, "INVITE"), 0);
	struct txn_server *st = f->st;
	CHECK_INT(txn_server_reply(st, 404, NULL, NULL), 0);
	run(f, 10 * T1);
	CHECK_INT(f->nsent, 1); /* no timer G on streams */
	CHECK_INT(req(f, "ACK", ";branch=z9hG4bKt1", "", 1, "ACK"), 0);
	CHECK_INT(txn_server_state(st), TXN_CONFIRMED);
	run(f, 0); /* timer I is zero */
	CHECK_INT(f->server_frees, 1);
	fx_free(f);
}

static void t_server_drop(void)
{
	struct fx *f = fx_new(TP_UDP);
	CHECK_INT(req(f, "SUBSCRIBE", ";branch=z9hG4bKs1", "", 1, "SUBSCRIBE"), 0);
	txn_server_drop(f->st);
	CHECK_INT(f->server_frees, 0);
	run(f, 0);
	CHECK_INT(f->server_frees, 1);
	CHECK_INT(f->nsent, 0);
	fx_free(f);
}

/* ---- matching ------------------------------------------------------------------------------ */

static void t_match_sent_by_method(void)
{
	struct fx *f = fx_new(TP_UDP);
	CHECK_INT(req(f, "BYE", ";branch=z9hG4bKx1", ";tag=b", 2, "BYE"), 0);
	/* Same branch from another sent-by is another transaction. */
	CHECK_INT(feed(f, "BYE sip:bob@example.com SIP/2.0\n"
			  "Via: SIP/2.0/UDP 192.0.2.99:5070;branch=z9hG4bKx1\n"
			  "From: <sip:alice@example.com>;tag=a1\n"
			  "To: <sip:bob@example.com>;tag=b\n"
			  "Call-ID: call-1@192.0.2.10\n"
			  "CSeq: 2 BYE\n"
			  "Content-Length: 0\n\n"),
		  0);
	CHECK_INT(f->nreq, 2);
	/* Same branch and sent-by with another method too (only ACK maps to INVITE). */
	CHECK_INT(req(f, "INFO", ";branch=z9hG4bKx1", ";tag=b", 3, "INFO"), 0);
	CHECK_INT(f->nreq, 3);
	CHECK_INT(req(f, "BYE", ";branch=z9hG4bKx1", ";tag=b", 2, "BYE"), 0);
	CHECK_INT(f->nreq, 3);
	/* Extension methods match by text. */
	CHECK_INT(req(f, "FOO", ";branch=z9hG4bKx2", "", 1, "FOO"), 0);
	CHECK_INT(req(f, "FOO", ";branch=z9hG4bKx2", "", 1, "FOO"), 0);
	CHECK_INT(req(f, "BAR", ";branch=z9hG4bKx2", "", 1, "BAR"), 0);
	CHECK_INT(f->nreq, 5);
	CHECK_INT(txn_layer_stats(f->l)->servers, 5);
	fx_free(f);
}

static void t_cancel_match(void)
{
	struct fx *f = fx_new(TP_UDP);
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKc1", "", 1, "INVITE"), 0);
	struct txn_server *inv = f->st;
	CHECK_INT(txn_server_trying(inv), 0);
	/* The CANCEL is a transaction of its own, handed up. */
	CHECK_INT(req(f, "CANCEL", ";branch=z9hG4bKc1", "", 1, "CANCEL"), 0);
	CHECK_INT(f->nreq, 2);
	CHECK_STR(str_from_cstr(f->method), "CANCEL");
	struct txn_server *can = f->st;
	CHECK(can != inv);
	CHECK(txn_server_find_invite(f->l, txn_server_request(can)) == inv);
	CHECK_INT(txn_server_reply(can, 200, NULL, NULL), 0);
	CHECK_INT(txn_server_reply(inv, 487, NULL, NULL), 0);
	CHECK(starts(sent(f, 2), "SIP/2.0 487 Request Terminated\r\n"));
	CHECK(strstr(sent(f, 2), "CSeq: 1 INVITE\r\n") != NULL);
	/* A CANCEL retransmission gets the 200 again, not the 487. */
	CHECK_INT(req(f, "CANCEL", ";branch=z9hG4bKc1", "", 1, "CANCEL"), 0);
	CHECK(starts(sent(f, 3), "SIP/2.0 200 "));
	CHECK(strstr(sent(f, 3), "CSeq: 1 CANCEL\r\n") != NULL);
	CHECK_INT(req(f, "ACK", ";branch=z9hG4bKc1", "", 1, "ACK"), 0);
	CHECK_INT(txn_server_state(inv), TXN_CONFIRMED);
	/* A CANCEL for an unknown INVITE finds nothing. */
	CHECK_INT(req(f, "CANCEL", ";branch=z9hG4bKzz", "", 1, "CANCEL"), 0);
	CHECK(txn_server_find_invite(f->l, txn_server_request(f->st)) == NULL);
	fx_free(f);
}

static void t_rfc2543(void)
{
	struct fx *f = fx_new(TP_UDP);
	/* No cookie: matched on R-URI, tags, Call-ID, CSeq and the top Via. */
	CHECK_INT(req(f, "INVITE", ";branch=1234", "", 1, "INVITE"), 0);
	struct txn_server *inv = f->st;
	CHECK_INT(req(f, "INVITE", ";branch=1234", "", 1, "INVITE"), 0);
	CHECK_INT(f->nreq, 1);
	CHECK_INT(req(f, "INVITE", "", "", 1, "INVITE"), 0); /* another top Via */
	CHECK_INT(f->nreq, 2);
	CHECK_INT(req(f, "INVITE", ";branch=1234", "", 2, "INVITE"), 0); /* another CSeq */
	CHECK_INT(f->nreq, 3);
	/* CANCEL finds its INVITE the old way too. */
	CHECK_INT(req(f, "CANCEL", ";branch=1234", "", 1, "CANCEL"), 0);
	CHECK_INT(f->nreq, 4);
	CHECK(txn_server_find_invite(f->l, txn_server_request(f->st)) == inv);
	/* The Request-URI compares by the URI rules (host case), not as text. */
	CHECK_INT(feed(f, "CANCEL sip:bob@EXAMPLE.com SIP/2.0\n"
			  "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=1234\n"
			  "From: Alice <sip:alice@example.com>;tag=a1\n"
			  "To: Bob <sip:bob@example.com>\n"
			  "Call-ID: call-1@192.0.2.10\n"
			  "CSeq: 1 CANCEL\n"
			  "Content-Length: 0\n\n"),
		  0);
	CHECK_INT(f->nreq, 4); /* a retransmission of the CANCEL */
	CHECK_INT(feed(f, "OPTIONS sip:bob@EXAMPLE.com SIP/2.0\n"
			  "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=1234\n"
			  "From: Alice <sip:alice@example.com>;tag=a1\n"
			  "To: Bob <sip:bob@example.com>\n"
			  "Call-ID: call-1@192.0.2.10\n"
			  "CSeq: 1 CANCEL\n"
			  "Content-Length: 0\n\n"),
		  0);
	CHECK_INT(f->nreq, 5); /* another method: another transaction */

	CHECK_INT(txn_server_reply(inv, 486, NULL, NULL), 0);
	const char *r = sent(f, f->nsent - 1);
	const char *tag = strstr(r, "To: Bob <sip:bob@example.com>;tag=");
	CHECK(tag != NULL);
	char totag[64] = ";tag=";
	if (tag) {
		tag += strlen("To: Bob <sip:bob@example.com>;tag=");
		size_t n = strcspn(tag, "\r");
		memcpy(totag + 5, tag, n < 50 ? n : 50);
	}
	/* An ACK with the wrong To tag is not ours; with our tag it is absorbed. */
	CHECK_INT(req(f, "ACK", ";branch=1234", ";tag=other", 1, "ACK"), 0);
	CHECK_INT(f->nack_up, 1);
	CHECK_INT(txn_server_state(inv), TXN_COMPLETED);
	CHECK_INT(req(f, "ACK", ";branch=1234", totag, 1, "ACK"), 0);
	CHECK_INT(f->nack_up, 1);
	CHECK_INT(txn_server_state(inv), TXN_CONFIRMED);
	fx_free(f);
}

/* The transaction's own request: the caller's buffer and parse are gone (feed frees them),
 * yet every field reads as in a parse of the same bytes, before and after responses. */
static void t_server_request_copy(void)
{
	static const char text[] = "MESSAGE sip:bob:pw@example.com:5062;transport=udp;lr?h=1 SIP/2.0\n"
				   "Via: SIP/2.0/UDP host.example.com:5070;rport;maddr=10.9.9.9;branch=z9hG4bKc1\n"
				   "v: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKc0\n"
				   "Max-Forwards: 12\n"
				   "From: \"Al\" <sip:alice@example.com>;tag=a1;x\n"
				   "To: <sip:bob@example.com>\n"
				   "Call-ID: copy-1@example.com\n"
				   "CSeq: 77 MESSAGE\n"
				   "X-Folded: one\n"
				   " two\n"
				   "Expires: 30\n"
				   "Content-Type: text/plain\n"
				   "Content-Length: 5\n"
				   "\n"
				   "hello";
	char buf[2048];
	size_t n = 0;
	for (const char *p = text; *p; p++) {
		if (*p == '\n')
			buf[n++] = '\r';
		buf[n++] = *p;
	}
	struct sip_msg ref_, *ref = &ref_;
	struct sip_hdr ref_hdr[SIP_MAX_HEADERS];
	struct sip_parse_err err;
	CHECK_INT(sip_msg_parse(ref, ref_hdr, SIP_MAX_HEADERS, buf, n, true, &err), SIP_PARSE_OK);

	for (int round = 0; round < 2; round++) {
		struct fx *f = fx_new(TP_UDP);
		CHECK_INT(feed(f, text), 0);
		struct txn_server *st = f->st;
		/* Round 1 replies before the TU first asks for the request. */
		if (round == 1)
			CHECK_INT(txn_server_reply(st, 202, NULL, NULL), 0);
		const struct sip_msg *m = txn_server_request(st);
		CHECK(m == txn_server_request(st));
		CHECK_INT(m->len, ref->len);
		CHECK(memcmp(m->buf, ref->buf, ref->len) == 0);
		/* Every view at the same offset with the same length as in ref. */
#define SAMEV(fld)                      \
	CHECK(m->fld.l == ref->fld.l && \
	      (m->fld.p ? m->fld.p - m->buf : -1) == (ref->fld.p ? ref->fld.p - ref->buf : -1))
		SAMEV(method);
		SAMEV(ruri_str);
		SAMEV(ruri.user);
		SAMEV(ruri.password);
		SAMEV(ruri.host);
		SAMEV(ruri.params);
		SAMEV(ruri.headers);
		SAMEV(ruri.transport);
		SAMEV(ruri.raw);
		SAMEV(version);
		SAMEV(via.host);
		SAMEV(via.branch);
		SAMEV(via.maddr);
		SAMEV(via.params);
		SAMEV(via.raw);
		SAMEV(from.display);
		SAMEV(from.uri.user);
		SAMEV(from.tag);
		SAMEV(from.params);
		SAMEV(to.uri_str);
		SAMEV(to.tag);
		SAMEV(call_id);
		SAMEV(cseq_method_str);
		SAMEV(body);
		CHECK_INT(m->nhdr, ref->nhdr);
		for (unsigned i = 0; i < m->nhdr && i < ref->nhdr; i++) {
			CHECK_INT(m->hdr[i].id, ref->hdr[i].id);
			SAMEV(hdr[i].name);
			SAMEV(hdr[i].value);
			SAMEV(hdr[i].line);
		}
#undef SAMEV
		CHECK(memcmp(m->first, ref->first, sizeof(ref->first)) == 0);
		CHECK(memcmp(m->count, ref->count, sizeof(ref->count)) == 0);
		CHECK_INT(m->mid, SIP_MESSAGE);
		CHECK_INT(m->ruri.port, 5062);
		CHECK(m->ruri.lr);
		CHECK_INT(m->via.port, 5070);
		CHECK(m->via.has_rport);
		CHECK_INT(m->cseq, 77);
		CHECK_INT(m->max_forwards, 12);
		CHECK_INT(m->expires, 30);
		CHECK_STR(m->body, "hello");
		CHECK_STR(sip_msg_hdr_by_name(m, STR("x-folded"))->value, "one\r\n two");
		if (round == 0)
			CHECK_INT(txn_server_reply(st, 202, NULL, NULL), 0);
		const char *r = sent(f, 0);
		CHECK(starts(r,
			     "SIP/2.0 202 Accepted\r\n"
			     "Via: SIP/2.0/UDP "
			     "host.example.com:5070;maddr=10.9.9.9;branch=z9hG4bKc1;received=192.0.2.10;rport=40000\r\n"
			     "v: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKc0\r\n"
			     "From: \"Al\" <sip:alice@example.com>;tag=a1;x\r\n"
			     "To: <sip:bob@example.com>;tag="));
		CHECK(strstr(r, "\r\nCall-ID: copy-1@example.com\r\nCSeq: 77 MESSAGE\r\n") != NULL);
		/* A retransmission matches the stored copy. */
		CHECK_INT(feed(f, text), 0);
		CHECK_INT(f->nreq, 1);
		CHECK_INT(f->nsent, 2);
		CHECK(strcmp(sent(f, 1), r) == 0);
		fx_free(f);
	}
}

/* received= is added exactly when the sent-by host is not the source address as text,
 * and always when the Via asks for rport (RFC 3581 §4). */
static void t_via_received_text(void)
{
	static const struct {
		const char *host, *src;
		const char *received; /* NULL: none */
	} cases[] = {
		{ "192.0.2.10", "192.0.2.10", NULL },
		{ "0.0.0.0", "0.0.0.0", NULL },
		{ "255.255.255.255", "255.255.255.255", NULL },
		{ "10.200.3.4", "10.200.3.4", NULL },
		{ "192.0.2.1", "192.0.2.10", "192.0.2.10" },
		{ "192.0.2.100", "192.0.2.10", "192.0.2.10" },
		{ "192.0.2.010", "192.0.2.10", "192.0.2.10" },
		{ "192.0.02.10", "192.0.2.10", "192.0.2.10" },
		{ "192.0.2", "192.0.2.10", "192.0.2.10" },
		{ "host.example.com", "198.51.100.255", "198.51.100.255" },
		{ "192.0.2.10", "0.0.0.0", "0.0.0.0" },
		{ "[2001:db8::1]", "2001:db8::1", NULL },
		{ "[2001:DB8::1]", "2001:db8::1", NULL },
		{ "[2001:db8::2]", "2001:db8::1", "2001:db8::1" },
		{ "192.0.2.10", "::ffff:192.0.2.10", "::ffff:192.0.2.10" },
	};
	for (size_t kk = 0; kk < 2 * sizeof(cases) / sizeof(cases[0]); kk++) {
		size_t k = kk / 2;
		bool rport = kk % 2;
		char text[1024];
		int n = snprintf(text, sizeof(text),
				 "OPTIONS sip:bob@example.com SIP/2.0\r\n"
				 "Via: SIP/2.0/UDP %s:5070%s;branch=z9hG4bKr%zu\r\n"
				 "From: <sip:alice@example.com>;tag=a1\r\n"
				 "To: <sip:bob@example.com>\r\n"
				 "Call-ID: r%zu\r\n"
				 "CSeq: 1 OPTIONS\r\n"
				 "Content-Length: 0\r\n\r\n",
				 cases[k].host, rport ? ";rport" : "", k, k);
		struct sip_msg m_, *m = &m_;
		struct sip_hdr hdr[SIP_MAX_HEADERS];
		struct sip_parse_err err;
		if (sip_msg_parse(m, hdr, SIP_MAX_HEADERS, text, (size_t)n, true, &err) != SIP_PARSE_OK) {
			fprintf(stderr, "sent-by %s does not parse\n", cases[k].host);
			unit_failures++;
			continue;
		}
		struct tp_source src = { .proto = TP_UDP };
		if (strchr(cases[k].src, ':')) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&src.addr.ss;
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons(61000);
			inet_pton(AF_INET6, cases[k].src, &sin6->sin6_addr);
			src.addr.len = sizeof(*sin6);
		} else {
			addr4(&src.addr, cases[k].src, 61000);
		}
		struct sip_resp_opts o = { 0 };
		struct txn_via_text vt;
		txn_response_via(&o, &vt, m, &src);
		if (cases[k].received)
			CHECK_STR(o.via_received, cases[k].received);
		else if (rport) /* the source as text, whether or not sent-by says the same */
			CHECK_STR(o.via_received, cases[k].src);
		else
			CHECK_INT(o.via_received.l, 0);
		if (rport)
			CHECK_STR(o.via_rport, "61000");
		else
			CHECK_INT(o.via_rport.l, 0);
		/* Values the caller set are kept. */
		o = (struct sip_resp_opts){ .via_received = STR("x"), .via_rport = STR("1") };
		txn_response_via(&o, &vt, m, &src);
		CHECK_STR(o.via_received, "x");
		CHECK_STR(o.via_rport, "1");
	}
}

static void t_many(void)
{
	struct fx *f = fx_new(TP_UDP);
	/* Enough to grow the table several times, then free in an order unlike insertion so
	 * that backward-shift deletion is exercised. */
	enum { N = 3000 };
	struct txn_server **sts = calloc(N, sizeof(*sts));
	char via[64];
	for (int i = 0; i < N; i++) {
		snprintf(via, sizeof(via), ";branch=z9hG4bKmany%d", i);
		CHECK_INT(req(f, "OPTIONS", via, "", 1, "OPTIONS"), 0);
		sts[i] = f->st;
	}
	CHECK_INT(f->nreq, N);
	CHECK_INT(txn_layer_stats(f->l)->servers, N);
	for (int i = 0; i < N; i += 2)
		txn_server_drop(sts[i]);
	run(f, 0);
	CHECK_INT(txn_layer_stats(f->l)->servers, N / 2);
	for (int i = 1; i < N; i += 2) {
		snprintf(via, sizeof(via), ";branch=z9hG4bKmany%d", i);
		CHECK_INT(req(f, "OPTIONS", via, "", 1, "OPTIONS"), 0);
	}
	CHECK_INT(f->nreq, N); /* every survivor still found */
	CHECK_INT(txn_layer_stats(f->l)->servers_total, N);
	free(sts);
	fx_free(f);
}

/* ---- non-INVITE client -------------------------------------------------------------------- */

static void t_client_nict(void)
{
	struct fx *f = fx_new(TP_UDP);
	struct txn_client *ct = client(f, "OPTIONS", "z9hG4bKn1");
	CHECK_INT(f->nsent, 1);
	CHECK(starts(sent(f, 0), "OPTIONS sip:bob@198.51.100.7 SIP/2.0\r\n"));
	CHECK_INT(port_of(&f->sent_dst[0]), 5060);
	CHECK_INT(txn_client_state(ct), TXN_TRYING);
	CHECK_STR(txn_client_branch(ct), "z9hG4bKn1");
	CHECK_INT(txn_client_method(ct), SIP_OPTIONS);
	CHECK(txn_client_tu(ct) == f);
	/* Timer E: 0.5, 1.5, 3.5 s. */
	run(f, T1);
	CHECK_INT(f->nsent, 2);
	run(f, 2 * T1);
	CHECK_INT(f->nsent, 3);
	CHECK_INT(strcmp(sent(f, 0), sent(f, 2)), 0);
	/* A provisional: Proceeding, retransmissions now every T2. */
	CHECK_INT(resp(f, 100, "z9hG4bKn1", "", "OPTIONS"), 0);
	CHECK_INT(f->nresp, 1);
	CHECK_INT(txn_client_state(ct), TXN_PROCEEDING);
	CHECK(txn_client_got_provisional(ct));
	run(f, 4 * T1);
	CHECK_INT(f->nsent, 4); /* the one due at 3.5 s */
	run(f, T2 - 1);
	CHECK_INT(f->nsent, 4);
	run(f, 1);
	CHECK_INT(f->nsent, 5);
	/* Wrong branch or wrong CSeq method: not ours. */
	CHECK_INT(resp(f, 200, "z9hG4bKnX", "", "OPTIONS"), -ENOENT);
	CHECK_INT(resp(f, 200, "z9hG4bKn1", "", "INVITE"), -ENOENT);
	CHECK_INT(resp(f, 200, "z9hG4bKn1", ";tag=b", "OPTIONS"), 0);
	CHECK_INT(f->nresp, 2);
	CHECK_INT(f->last_status, 200);
	CHECK_INT(txn_client_state(ct), TXN_COMPLETED);
	CHECK_INT(txn_client_status(ct), 200);
	/* Completed: copies of the final are absorbed, no more retransmissions, K = T4. */
	CHECK_INT(resp(f, 200, "z9hG4bKn1", ";tag=b", "OPTIONS"), 0);
	CHECK_INT(f->nresp, 2);
	run(f, T4 - 1);
	CHECK_INT(f->nsent, 5);
	CHECK_INT(f->client_frees, 0);
	run(f, 1);
	CHECK_INT(f->client_frees, 1);
	CHECK(f->freed_ct == ct);
	CHECK_INT(f->client_timeouts, 0);
	CHECK_INT(txn_layer_stats(f->l)->clients, 0);
	CHECK_INT(resp(f, 200, "z9hG4bKn1", ";tag=b", "OPTIONS"), -ENOENT);
	fx_free(f);
}

static void t_client_timer_f(void)
{
	struct fx *f = fx_new(TP_UDP);
	client(f, "REGISTER", "z9hG4bKf1");
	/* E at 0.5 1.5 3.5 7.5 11.5 ... 31.5 s: ten retransmissions, then F at 32 s. */
	run(f, 64 * T1 - 1);
	CHECK_INT(f->nsent, 11);
	CHECK_INT(f->client_timeouts, 0);
	run(f, 1);
	CHECK_INT(f->client_timeouts, 1);
	CHECK_INT(f->timeout_err, -ETIMEDOUT);
	CHECK_INT(f->client_frees, 1);
	CHECK_INT(f->nresp, 0);
	fx_free(f);
}

static void t_client_nict_tcp(void)
{
	struct fx *f = fx_new(TP_TCP);
	client(f, "BYE", "z9hG4bKtc");
	run(f, 10 * T1);
	CHECK_INT(f->nsent, 1);
	CHECK_INT(resp(f, 200, "z9hG4bKtc", ";tag=b", "BYE"), 0);
	run(f, 0); /* K is zero */
	CHECK_INT(f->client_frees, 1);
	fx_free(f);
}

/* A lost connection ends the transactions sent over it, and only those, at once. */
static void t_client_dest_failed(void)
{
	struct fx *f = fx_new(TP_TCP);
	f->peer.conn_id = 9;
	client(f, "INVITE", "z9hG4bKlost1");
	client(f, "OPTIONS", "z9hG4bKlost2");
	struct tp_source other = f->peer;
	other.conn_id = 10;
	CHECK_INT(txn_dest_failed(f->l, &other, -ECONNRESET), 0);
	f->peer.conn_id = 0; /* the next one is sent without naming a connection */
	addr4(&f->peer.addr, "198.51.100.8", 5060);
	client(f, "MESSAGE", "z9hG4bKlost3");
	other.conn_id = 9;
	CHECK_INT(txn_dest_failed(f->l, &other, -ECONNRESET), 2);
	CHECK_INT(f->client_timeouts, 2);
	CHECK_INT(f->timeout_err, -ECONNRESET);
	CHECK_INT(f->client_frees, 2);
	/* By address for the one sent without a connection; UDP to that address is another
	 * destination. */
	struct tp_source by_addr = { .proto = TP_UDP, .addr = f->peer.addr };
	CHECK_INT(txn_dest_failed(f->l, &by_addr, -ECONNREFUSED), 0);
	by_addr.proto = TP_TCP;
	by_addr.conn_id = 42;
	CHECK_INT(txn_dest_failed(f->l, &by_addr, -ECONNREFUSED), 1);
	CHECK_INT(f->timeout_err, -ECONNREFUSED);
	CHECK_INT(f->client_frees, 3);
	run(f, 64 * T1);
	CHECK_INT(f->client_timeouts, 3); /* no timer B/F afterwards */
	fx_free(f);
}

static void t_client_errors(void)
{
	struct fx *f = fx_new(TP_UDP);
	struct txn_client *ct = NULL;
	const char *noc = "OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=abc\r\nFrom: <sip:a@b>;tag=1\r\n"
			  "To: <sip:x@y>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
	const char *ack = "ACK sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKack\r\nFrom: <sip:a@b>;tag=1\r\n"
			  "To: <sip:x@y>\r\nCall-ID: 1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n";
	const char *rsp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKrsp\r\nFrom: <sip:a@b>;tag=1\r\n"
			  "To: <sip:x@y>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
	/* Each is refused for what it is (no cookie, an ACK, a response), not for failing to
	 * parse: -EINVAL alone would not tell these apart. */
	CHECK(parses(noc));
	CHECK(parses(ack));
	CHECK(parses(rsp));
	CHECK_INT(txn_client_new(&ct, f->l, noc, strlen(noc), &f->peer, &f->cops, f), -EINVAL);
	CHECK_INT(txn_client_new(&ct, f->l, ack, strlen(ack), &f->peer, &f->cops, f), -EINVAL);
	CHECK_INT(txn_client_new(&ct, f->l, rsp, strlen(rsp), &f->peer, &f->cops, f), -EINVAL);
	CHECK_INT(txn_client_new(&ct, f->l, noc, SIP_MAX_MSG + 1, &f->peer, &f->cops, f), -EMSGSIZE);
	CHECK_INT(f->nsent, 0);
	ct = client(f, "OPTIONS", "z9hG4bKe1");
	struct str b = txn_client_bytes(ct);
	CHECK_INT(txn_client_new(NULL, f->l, b.p, b.l, &f->peer, NULL, NULL), -EEXIST);
	/* A failed first send fails the call and no callback ever comes. */
	f->send_err = -ENETUNREACH;
	ct = NULL;
	const char *ok = "OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKfail\r\nFrom: <sip:a@b>;tag=1\r\n"
			 "To: <sip:x@y>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
	CHECK(parses(ok));
	CHECK_INT(txn_client_new(&ct, f->l, ok, strlen(ok), &f->peer, &f->cops, f), -ENETUNREACH);
	CHECK(ct == NULL);
	f->send_err = 0;
	CHECK_INT(txn_layer_stats(f->l)->clients, 1);
	/* A response is not a request for the server side either. */
	CHECK_INT(feed(f, "SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bKzz\nFrom: <sip:a@b>;tag=1\n"
			  "To: <sip:x@y>\nCall-ID: 1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"),
		  -ENOENT);
	run(f, 64 * T1);
	CHECK_INT(f->client_timeouts, 1);
	CHECK_INT(f->client_frees, 1);
	fx_free(f);
}

/* ---- INVITE client ------------------------------------------------------------------------ */

static void t_client_ict_timer_b(void)
{
	struct fx *f = fx_new(TP_UDP);
	client(f, "INVITE", "z9hG4bKb1");
	CHECK_INT(txn_layer_stats(f->l)->clients, 1);
	/* A at 0.5 1.5 3.5 7.5 15.5 31.5 s, doubling with no cap; B at 32 s. */
	run(f, 64 * T1 - 1);
	CHECK_INT(f->nsent, 7);
	CHECK_INT(f->client_timeouts, 0);
	run(f, 1);
	CHECK_INT(f->client_timeouts, 1);
	CHECK_INT(f->timeout_err, -ETIMEDOUT);
	CHECK_INT(f->client_frees, 1);
	fx_free(f);
}

static void t_client_ict_non2xx(void)
{
	struct fx *f = fx_new(TP_UDP);
	struct txn_client *ct = client(f, "INVITE", "z9hG4bKk1");
	CHECK_INT(txn_client_state(ct), TXN_CALLING);
	CHECK_INT(resp(f, 180, "z9hG4bKk1", ";tag=b1", "INVITE"), 0);
	CHECK_INT(txn_client_state(ct), TXN_PROCEEDING);
	CHECK_INT(f->nresp, 1);
	/* Proceeding: no retransmissions and no timer B, however long it rings. */
	run(f, 100 * T1);
	CHECK_INT(f->nsent, 1);
	CHECK_INT(f->client_timeouts, 0);

	CHECK_INT(resp(f, 486, "z9hG4bKk1", ";tag=b1", "INVITE"), 0);
	CHECK_INT(f->nresp, 2);
	CHECK_INT(f->last_status, 486);
	CHECK_INT(txn_client_state(ct), TXN_COMPLETED);
	CHECK_INT(f->nsent, 2);
	const char *ack = sent(f, 1);
	/* §17.1.1.3: the INVITE's R-URI, top Via only, Route, From, Call-ID, CSeq number; To
	 * from the response. */
	CHECK_STR(str_from_cstr(ack), "ACK sip:bob@198.51.100.7 SIP/2.0\r\n"
				      "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKk1\r\n"
				      "Route: <sip:edge.example.net;lr>\r\n"
				      "Route: <sip:core.example.net;lr>\r\n"
				      "From: <sip:alice@example.com>;tag=a1\r\n"
				      "To: <sip:bob@example.com>;tag=b1\r\n"
				      "Call-ID: out-1\r\n"
				      "CSeq: 5 ACK\r\n"
				      "Max-Forwards: 70\r\n"
				      "Content-Length: 0\r\n\r\n");
	/* The ACK parses. */
	struct sip_msg m;
	struct sip_hdr hdr[SIP_MAX_HEADERS];
	struct sip_parse_err perr;
	CHECK_INT(sip_msg_parse(&m, hdr, SIP_MAX_HEADERS, ack, strlen(ack), true, &perr), SIP_PARSE_OK);
	/* A retransmitted final is absorbed and ACKed again. */
	CHECK_INT(resp(f, 486, "z9hG4bKk1", ";tag=b1", "INVITE"), 0);
	CHECK_INT(f->nresp, 2);
	CHECK_INT(f->nsent, 3);
	CHECK_INT(strcmp(sent(f, 1), sent(f, 2)), 0);
	CHECK_INT(txn_client_cancel(ct, STR("")), -EALREADY);
	/* Timer D: 32 s. */
	run(f, 32000 - 1);
	CHECK_INT(f->client_frees, 0);
	run(f, 1);
	CHECK_INT(f->client_frees, 1);
	fx_free(f);
}

static void t_client_ict_2xx(void)
{
	struct fx *f = fx_new(TP_UDP);
	struct txn_client *ct = client(f, "INVITE", "z9hG4bKy1");
	/* A final straight from Calling. */
	CHECK_INT(resp(f, 200, "z9hG4bKy1", ";tag=b1", "INVITE"), 0);
	CHECK_INT(txn_client_state(ct), TXN_ACCEPTED);
	CHECK_INT(f->nresp, 1);
	CHECK_INT(f->nsent, 1); /* no ACK from the layer for a 2xx */
	/* Accepted: 2xx copies and 2xx of other forks go up; others are absorbed. */
	CHECK_INT(resp(f, 200, "z9hG4bKy1", ";tag=b1", "INVITE"), 0);
	CHECK_INT(resp(f, 200, "z9hG4bKy1", ";tag=b2", "INVITE"), 0);
	CHECK_INT(f->nresp, 3);
	CHECK_INT(resp(f, 486, "z9hG4bKy1", ";tag=b3", "INVITE"), 0);
	CHECK_INT(resp(f, 180, "z9hG4bKy1", ";tag=b3", "INVITE"), 0);
	CHECK_INT(f->nresp, 3);
	run(f, 10 * T1);
	CHECK_INT(f->nsent, 1);
	/* Timer M = 64*T1. */
	run(f, 64 * T1 - 10 * T1 - 1);
	CHECK_INT(f->client_frees, 0);
	run(f, 1);
	CHECK_INT(f->client_frees, 1);
	fx_free(f);
}

static void t_client_cancel(void)
{
	struct fx *f = fx_new(TP_UDP);
	struct txn_client *ct = client(f, "INVITE", "z9hG4bKq1");
	/* §9.1: no CANCEL before a provisional. */
	CHECK_INT(txn_client_cancel(ct, STR("Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n")), 0);
	CHECK_INT(f->nsent, 1);
	CHECK_INT(txn_client_cancel(ct, STR("")), 0); /* again: harmless */
	run(f, T1);
	CHECK_INT(f->nsent, 2); /* the INVITE keeps retransmitting */
	CHECK_INT(resp(f, 100, "z9hG4bKq1", "", "INVITE"), 0);
	CHECK_INT(f->nresp, 1);
	CHECK_INT(f->nsent, 3);
	CHECK_STR(str_from_cstr(sent(f, 2)), "CANCEL sip:bob@198.51.100.7 SIP/2.0\r\n"
					     "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKq1\r\n"
					     "Route: <sip:edge.example.net;lr>\r\n"
					     "Route: <sip:core.example.net;lr>\r\n"
					     "From: <sip:alice@example.com>;tag=a1\r\n"
					     "To: <sip:bob@example.com>\r\n"
					     "Call-ID: out-1\r\n"
					     "CSeq: 5 CANCEL\r\n"
					     "Max-Forwards: 70\r\n"
					     "Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n"
					     "Content-Length: 0\r\n\r\n");
	CHECK_INT(txn_layer_stats(f->l)->clients, 2);
	/* The CANCEL is retransmitted by its own transaction (timer E). */
	run(f, T1);
	CHECK_INT(f->nsent, 4);
	CHECK(starts(sent(f, 3), "CANCEL "));
	/* Its 200 is absorbed by the CANCEL transaction, not shown to the INVITE's owner. */
	CHECK_INT(resp(f, 200, "z9hG4bKq1", ";tag=b1", "CANCEL"), 0);
	CHECK_INT(f->nresp, 1);
	CHECK_INT(resp(f, 487, "z9hG4bKq1", ";tag=b1", "INVITE"), 0);
	CHECK_INT(f->nresp, 2);
	CHECK_INT(f->last_status, 487);
	CHECK(starts(sent(f, 4), "ACK sip:bob@198.51.100.7 SIP/2.0\r\n"));
	run(f, 32000);
	CHECK_INT(txn_layer_stats(f->l)->clients, 0);
	CHECK_INT(f->client_frees, 1); /* the CANCEL transaction has no owner to tell */
	fx_free(f);
}

static void t_client_cancel_direct(void)
{
	struct fx *f = fx_new(TP_UDP);
	struct txn_client *ct = client(f, "INVITE", "z9hG4bKq2");
	CHECK_INT(resp(f, 183, "z9hG4bKq2", ";tag=b1", "INVITE"), 0);
	/* In Proceeding the CANCEL goes at once. */
	CHECK_INT(txn_client_cancel(ct, STR("")), 0);
	CHECK_INT(f->nsent, 2);
	CHECK(starts(sent(f, 1), "CANCEL sip:bob@198.51.100.7 SIP/2.0\r\n"));
	/* A hand-printed CANCEL is the same text, and sending it on a new client transaction
	 * with the same branch is refused while the layer's own is alive. */
	char buf[2048];
	struct sip_out o;
	sip_out_init(&o, buf, sizeof(buf));
	CHECK_INT(txn_client_print_cancel(ct, &o, STR("")), 0);
	CHECK_INT(o.len, f->sent_len[1]);
	CHECK(memcmp(buf, sent(f, 1), o.len) == 0);
	CHECK_INT(txn_client_new(NULL, f->l, buf, o.len, &f->peer, NULL, NULL), -EEXIST);
	/* Nothing answers: the CANCEL times out on its own (F), and 64*T1 after it the INVITE
	 * is given up too (§9.1): its owner hears of the timeout and the layer frees it. */
	run(f, 64 * T1 - 1);
	CHECK_INT(f->client_timeouts, 0);
	CHECK_INT(txn_layer_stats(f->l)->clients, 2);
	run(f, 1);
	CHECK_INT(f->client_timeouts, 1);
	CHECK_INT(txn_layer_stats(f->l)->clients, 0);
	fx_free(f);
}

static void t_client_cancel_late(void)
{
	struct fx *f = fx_new(TP_UDP);
	struct txn_client *ct = client(f, "INVITE", "z9hG4bKq3");
	struct txn_client *opt = client(f, "OPTIONS", "z9hG4bKq4");
	CHECK_INT(txn_client_cancel(opt, STR("")), -EINVAL);
	CHECK_INT(txn_client_cancel(ct, STR("X: 1\r\n")), 0);
	/* The final beats any provisional: no CANCEL is ever sent. */
	CHECK_INT(resp(f, 603, "z9hG4bKq3", ";tag=b1", "INVITE"), 0);
	CHECK(starts(sent(f, 2), "ACK "));
	CHECK_INT(f->nsent, 3);
	run(f, 64 * T1 + 1);
	for (unsigned i = 0; i < f->nsent; i++)
		CHECK(!starts(sent(f, i), "CANCEL"));
	fx_free(f);
}

static void t_layer_free_live(void)
{
	struct fx *f = fx_new(TP_UDP);
	/* Live transactions of every kind are freed with the layer, without callbacks. */
	client(f, "INVITE", "z9hG4bKl1");
	struct txn_client *ct = client(f, "INVITE", "z9hG4bKl2");
	CHECK_INT(resp(f, 180, "z9hG4bKl2", ";tag=t", "INVITE"), 0);
	CHECK_INT(txn_client_cancel(ct, STR("")), 0);
	CHECK_INT(txn_client_cancel(client(f, "INVITE", "z9hG4bKl3"), STR("Reason: x\r\n")), 0);
	CHECK_INT(req(f, "INVITE", ";branch=z9hG4bKl4", "", 1, "INVITE"), 0);
	CHECK_INT(txn_server_reply(f->st, 486, NULL, NULL), 0);
	CHECK_INT(req(f, "OPTIONS", ";branch=z9hG4bKl5", "", 1, "OPTIONS"), 0);
	CHECK_INT(txn_layer_stats(f->l)->clients, 4);
	CHECK_INT(txn_layer_stats(f->l)->servers, 2);
	run(f, T1);
	txn_layer_free(f->l);
	f->l = NULL;
	CHECK_INT(f->client_frees + f->server_frees, 0);
	fx_free(f);
}

static const struct unit_case cases[] = {
	{ "branch", t_branch },
	{ "response_dest", t_response_dest },
	{ "big_response", t_big_response },
	{ "server_nict_udp", t_server_nict_udp },
	{ "server_nict_tcp", t_server_nict_tcp },
	{ "server_via_received", t_server_via_received },
	{ "server_ist_non2xx", t_server_ist_non2xx },
	{ "server_ist_timer_h", t_server_ist_timer_h },
	{ "server_ist_2xx", t_server_ist_2xx },
	{ "server_ist_tcp", t_server_ist_tcp },
	{ "server_drop", t_server_drop },
	{ "match_sent_by_method", t_match_sent_by_method },
	{ "cancel_match", t_cancel_match },
	{ "rfc2543", t_rfc2543 },
	{ "server_request_copy", t_server_request_copy },
	{ "via_received_text", t_via_received_text },
	{ "many", t_many },
	{ "client_nict", t_client_nict },
	{ "client_timer_f", t_client_timer_f },
	{ "client_nict_tcp", t_client_nict_tcp },
	{ "client_dest_failed", t_client_dest_failed },
	{ "client_errors", t_client_errors },
	{ "client_ict_timer_b", t_client_ict_timer_b },
	{ "client_ict_non2xx", t_client_ict_non2xx },
	{ "client_ict_2xx", t_client_ict_2xx },
	{ "client_cancel", t_client_cancel },
	{ "client_cancel_direct", t_client_cancel_direct },
	{ "client_cancel_late", t_client_cancel_late },
	{ "layer_free_live", t_layer_free_live },
	{ "server_request_dropped", t_server_request_dropped },
	{ "server_long_branch", t_server_long_branch },
	{ "server_2xx_dropped", t_server_2xx_dropped },
	{ "client_request_dropped", t_client_request_dropped },
};
UNIT_MAIN(cases)
