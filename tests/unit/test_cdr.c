/* test_cdr.c: unit tests of call records: cdr over a store (in memory or a temp file), and the proxy's result words. */
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

#include "cdr/cdr.h"
#include "proxy/proxy.h"

#define T0 1700000000000ull /* wall clock of the tests, ms */

/* ---- reading the records back -------------------------------------------------------------- */

#define MAXROWS 400

struct row {
	char id[128], call_id[128], caller[64], callee[64], reason[32], media[160];
	uint64_t start_ms, answer_ms, end_ms, duration_ms;
	unsigned status;
};

struct rows {
	struct row r[MAXROWS];
	unsigned n;
};

static int take_row(const struct store_call *c, void *arg)
{
	struct rows *rs = arg;
	if (rs->n == MAXROWS)
		return 0;
	struct row *r = &rs->r[rs->n++];
	str_to_cbuf(c->id, r->id, sizeof r->id);
	str_to_cbuf(c->call_id, r->call_id, sizeof r->call_id);
	str_to_cbuf(c->caller, r->caller, sizeof r->caller);
	str_to_cbuf(c->callee, r->callee, sizeof r->callee);
	str_to_cbuf(c->reason, r->reason, sizeof r->reason);
	str_to_cbuf(c->media, r->media, sizeof r->media);
	r->start_ms = c->start_ms;
	r->answer_ms = c->answer_ms;
	r->end_ms = c->end_ms;
	r->duration_ms = c->duration_ms;
	r->status = c->status;
	return 0;
}

/* Writes out what is queued and reads every record, newest start first. */
static struct rows *rows_of(struct store *st)
{
	struct rows *rs = calloc(1, sizeof(*rs));
	CHECK_INT(store_flush(st), 0);
	CHECK_INT(store_calls_list(st, 0, take_row, rs), 0);
	return rs;
}

static const struct row *find(const struct rows *rs, const char *id)
{
	for (unsigned i = 0; i < rs->n; i++)
		if (strcmp(rs->r[i].id, id) == 0)
			return &rs->r[i];
	return NULL;
}

static struct store *mem_store(void)
{
	struct store *st = NULL;
	struct store_conf sc = { .path = ":memory:" };
	CHECK_INT(store_open(&st, &sc), 0);
	return st;
}

static struct cdr_attempt attempt(const char *id, const char *call_id, uint64_t start_ms)
{
	return (struct cdr_attempt){
		.id = str_from_cstr(id),
		.call_id = str_from_cstr(call_id),
		.caller = STR("alice@a.test"),
		.callee = STR("bob@a.test"),
		.start_ms = start_ms,
	};
}

/* ---- cdr over a store ---------------------------------------------------------------------- */

static void t_start_row(void)
{
	struct store *st = mem_store();
	struct timer_wheel w;
	timer_wheel_init(&w, 0);
	struct cdr *c;
	CHECK_INT(cdr_new(&c, st, &w), 0);
	struct cdr_attempt a = attempt("k1;t1;1", "k1@x", T0);
	cdr_start(c, &a);
	struct rows *rs = rows_of(st);
	CHECK_INT(rs->n, 1);
	const struct row *r = find(rs, "k1;t1;1");
	CHECK(r != NULL);
	if (r) {
		CHECK(strcmp(r->call_id, "k1@x") == 0);
		CHECK(strcmp(r->caller, "alice@a.test") == 0);
		CHECK(strcmp(r->callee, "bob@a.test") == 0);
		CHECK_INT(r->start_ms, T0);
		CHECK_INT(r->status, 0); /* in progress */
		CHECK(strcmp(r->reason, "") == 0);
		CHECK_INT(r->answer_ms, 0);
		CHECK_INT(r->end_ms, 0);
		CHECK_INT(r->duration_ms, 0);
	}
	CHECK_INT(cdr_active(c), 0);
	free(rs);
	cdr_free(c);
	store_close(st);
}

static void t_failed_attempt(void)
{
	struct store *st = mem_store();
	struct timer_wheel w;
	timer_wheel_init(&w, 0);
	struct cdr *c;
	CHECK_INT(cdr_new(&c, st, &w), 0);
	struct cdr_attempt a = attempt("k1;t1;1", "k1@x", T0);
	cdr_start(c, &a);
	/* The final updates the same row; a non-2xx is not kept as a call. Even an answer
	 * time handed in with it is not recorded. */
	cdr_final(c, &a, 486, "busy", T0 + 2000);
	struct rows *rs = rows_of(st);
	CHECK_INT(rs->n, 1);
	const struct row *r = find(rs, "k1;t1;1");
	CHECK(r && r->status == 486 && strcmp(r->reason, "busy") == 0);
	CHECK(r && r->answer_ms == 0 && r->end_ms == 0 && r->duration_ms == 0);
	CHECK_INT(cdr_active(c), 0);
	char who[64] = "untouched";
	uint64_t dur = 77;
	CHECK(!cdr_end(c, STR("k1@x"), T0 + 5000, who, sizeof who, &dur));
	CHECK(strcmp(who, "untouched") == 0);
	CHECK_INT(dur, 77);
	free(rs);
	cdr_free(c);
	store_close(st);
}

static void t_answered_then_ended(void)
{
	struct store *st = mem_store();
	struct timer_wheel w;
	timer_wheel_init(&w, 0);
	struct cdr *c;
	CHECK_INT(cdr_new(&c, st, &w), 0);
	struct cdr_attempt a = attempt("k1;t1;1", "k1@x", T0);
	cdr_start(c, &a);
	cdr_final(c, &a, 200, "answered", T0 + 1500);
	CHECK_INT(cdr_active(c), 1);
	struct rows *rs = rows_of(st);
	const struct row *r = find(rs, "k1;t1;1");
	CHECK(r && r->status == 200 && strcmp(r->reason, "answered") == 0);
	CHECK(r && r->answer_ms == T0 + 1500 && r->end_ms == 0 && r->duration_ms == 0);
	free(rs);
	/* Another Call-ID ends nothing. */
	char who[64];
	uint64_t dur = 0;
	CHECK(!cdr_end(c, STR("other@x"), T0 + 9000, who, sizeof who, &dur));
	CHECK_INT(cdr_active(c), 1);
	/* The BYE: end and talk time (answer to end) written on the same row. */
	CHECK(cdr_end(c, STR("k1@x"), T0 + 64500, who, sizeof who, &dur));
	CHECK(strcmp(who, "alice@a.test -> bob@a.test") == 0);
	CHECK_INT(dur, 63000);
	CHECK_INT(cdr_active(c), 0);
	rs = rows_of(st);
	CHECK_INT(rs->n, 1);
	r = find(rs, "k1;t1;1");
	CHECK(r != NULL);
	if (r) {
		CHECK_INT(r->status, 200);
		CHECK(strcmp(r->reason, "answered") == 0);
		CHECK_INT(r->start_ms, T0);
		CHECK_INT(r->answer_ms, T0 + 1500);
		CHECK_INT(r->end_ms, T0 + 64500);
		CHECK_INT(r->duration_ms, 63000);
		CHECK(strcmp(r->call_id, "k1@x") == 0);
		CHECK(strcmp(r->caller, "alice@a.test") == 0);
	}
	free(rs);
	/* Once ended it is forgotten: a second BYE finds nothing. */
	CHECK(!cdr_end(c, STR("k1@x"), T0 + 70000, who, sizeof who, &dur));
	/* An end before the answer (clock stepped back) is a zero duration, not a wrap. */
	struct cdr_attempt b = attempt("k2;t1;1", "k2@x", T0);
	cdr_final(c, &b, 200, "answered", T0 + 5000);
	CHECK(cdr_end(c, STR("k2@x"), T0 + 4000, who, sizeof who, &dur));
	CHECK_INT(dur, 0);
	rs = rows_of(st);
	r = find(rs, "k2;t1;1");
	CHECK(r && r->duration_ms == 0 && r->end_ms == T0 + 4000);
	free(rs);
	cdr_free(c);
	store_close(st);
}

static void t_result_words_kept(void)
{
	struct store *st = mem_store();
	struct timer_wheel w;
	timer_wheel_init(&w, 0);
	struct cdr *c;
	CHECK_INT(cdr_new(&c, st, &w), 0);
	static const struct {
		unsigned status;
		const char *word;
	} finals[] = {
		{ 486, "busy" },      { 487, "cancelled" },      { 408, "no answer" }, { 603, "declined" },
		{ 404, "not found" }, { 480, "not registered" }, { 500, "failed" },    { 200, "answered" },
	};
	size_t n = sizeof finals / sizeof finals[0];
	char id[32], cid[32];
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof id, "id%zu", i);
		snprintf(cid, sizeof cid, "call%zu@x", i);
		struct cdr_attempt a = attempt(id, cid, T0 + i * 1000);
		cdr_start(c, &a);
		cdr_final(c, &a, finals[i].status, finals[i].word, T0 + i * 1000 + 500);
	}
	struct rows *rs = rows_of(st);
	CHECK_INT(rs->n, n);
	/* Newest start first. */
	for (size_t i = 0; i < n && i < rs->n; i++) {
		const struct row *r = &rs->r[i];
		size_t k = n - 1 - i;
		snprintf(id, sizeof id, "id%zu", k);
		CHECK(strcmp(r->id, id) == 0);
		CHECK_INT(r->status, finals[k].status);
		if (strcmp(r->reason, finals[k].word) != 0) {
			fprintf(stderr, "%s: reason \"%s\", expected \"%s\"\n", r->id, r->reason, finals[k].word);
			unit_failures++;
		}
	}
	free(rs);
	/* The limit takes the newest. */
	struct rows *two = calloc(1, sizeof(*two));
	CHECK_INT(store_calls_list(st, 2, take_row, two), 0);
	CHECK_INT(two->n, 2);
	CHECK(strcmp(two->r[0].id, "id7") == 0 && strcmp(two->r[1].id, "id6") == 0);
	free(two);
	cdr_free(c);
	store_close(st);
}

/* An answered call whose BYE never comes is forgotten after a day; its row stays answered. */
static void t_forgotten_after_a_day(void)
{
	struct store *st = mem_store();
	struct timer_wheel w;
	timer_wheel_init(&w, 0);
	struct cdr *c;
	CHECK_INT(cdr_new(&c, st, &w), 0);
	struct cdr_attempt a = attempt("k1;t1;1", "k1@x", T0);
	cdr_final(c, &a, 200, "answered", T0 + 1000);
	CHECK_INT(cdr_active(c), 1);
	timer_advance(&w, 24ull * 3600 * 1000 - 1000);
	CHECK_INT(cdr_active(c), 1);
	timer_advance(&w, 24ull * 3600 * 1000 + 1000);
	CHECK_INT(cdr_active(c), 0);
	char who[64];
	uint64_t dur;
	CHECK(!cdr_end(c, STR("k1@x"), T0 + 2000, who, sizeof who, &dur));
	struct rows *rs = rows_of(st);
	const struct row *r = find(rs, "k1;t1;1");
	CHECK(r && r->status == 200 && r->end_ms == 0 && r->duration_ms == 0);
	free(rs);
	cdr_free(c);
	store_close(st);
}

/* Many calls at once (the table grows) are each found by Call-ID; without a store they
 * are still tracked. */
static void t_many_calls_no_store(void)
{
	struct timer_wheel w;
	timer_wheel_init(&w, 0);
	struct cdr *c;
	CHECK_INT(cdr_new(&c, NULL, &w), 0);
	char id[32], cid[32];
	for (unsigned i = 0; i < 300; i++) {
		snprintf(id, sizeof id, "id%u", i);
		snprintf(cid, sizeof cid, "call%u@x", i);
		struct cdr_attempt a = attempt(id, cid, T0);
		cdr_start(c, &a);
		cdr_final(c, &a, 200, "answered", T0 + i);
	}
	CHECK_INT(cdr_active(c), 300);
	unsigned found = 0;
	for (unsigned i = 0; i < 300; i += 2) {
		snprintf(cid, sizeof cid, "call%u@x", i);
		char who[64];
		uint64_t dur = 0;
		found += cdr_end(c, str_from_cstr(cid), T0 + 10000, who, sizeof who, &dur);
		CHECK_INT(dur, 10000 - i);
	}
	CHECK_INT(found, 150);
	CHECK_INT(cdr_active(c), 150);
	/* A small who buffer is cut, not overrun. */
	char small[8];
	uint64_t dur;
	CHECK(cdr_end(c, STR("call1@x"), T0 + 10000, small, sizeof small, &dur));
	CHECK(strcmp(small, "alice@a") == 0);
	cdr_free(c); /* frees the 149 still kept */
}

/* Records in a database file survive closing it and are read back by a reader. */
static void t_temp_file_store(void)
{
	char dir[] = "/tmp/parley-test-cdr-XXXXXX", path[128];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/calls.db", dir);
	struct store_conf sc = { .path = path };
	struct store *st = NULL;
	CHECK_INT(store_open(&st, &sc), 0);
	struct timer_wheel w;
	timer_wheel_init(&w, 0);
	struct cdr *c;
	CHECK_INT(cdr_new(&c, st, &w), 0);
	struct cdr_attempt a = attempt("k1;t1;1", "k1@x", T0);
	cdr_start(c, &a);
	cdr_final(c, &a, 200, "answered", T0 + 1000);
	char who[64];
	uint64_t dur;
	CHECK(cdr_end(c, STR("k1@x"), T0 + 4000, who, sizeof who, &dur));
	struct cdr_attempt b = attempt("k2;t1;1", "k2@x", T0 + 10000);
	cdr_start(c, &b);
	cdr_final(c, &b, 487, "cancelled", 0);
	CHECK_INT(store_flush(st), 0);
	cdr_free(c);
	store_close(st);

	struct store_conf ro = { .path = path, .readonly = true };
	CHECK_INT(store_open(&st, &ro), 0);
	struct rows *rs = calloc(1, sizeof(*rs));
	CHECK_INT(store_calls_list(st, 0, take_row, rs), 0);
	CHECK_INT(rs->n, 2);
	if (rs->n == 2) {
		CHECK(strcmp(rs->r[0].id, "k2;t1;1") == 0 && rs->r[0].status == 487);
		CHECK(strcmp(rs->r[0].reason, "cancelled") == 0);
		CHECK(strcmp(rs->r[1].id, "k1;t1;1") == 0 && rs->r[1].duration_ms == 3000);
		CHECK_INT(rs->r[1].end_ms, T0 + 4000);
	}
	free(rs);
	store_close(st);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	CHECK_INT(system(cmd), 0);
}

/* ---- the words the proxy writes -------------------------------------------------------------- */

#define MAXSENT 64

struct px {
	struct timer_wheel w;
	uint64_t now;
	struct proxy_cfg cfg;
	struct store *st;
	struct txn_layer *l;
	struct proxy *p;
	struct cdr *cdr;
	struct txn_tu tu;
	struct tp_listener lis;
	struct tp_source caller, phone;
	struct txn_server *server;
	char *sent[MAXSENT];
	size_t sent_len[MAXSENT];
	unsigned nsent;
};

static int px_send(void *arg, const struct tp_source *dst, const char *buf, size_t len)
{
	struct px *f = arg;
	if (f->nsent < MAXSENT) {
		f->sent[f->nsent] = malloc(len + 1);
		memcpy(f->sent[f->nsent], buf, len);
		f->sent[f->nsent][len] = '\0';
		f->sent_len[f->nsent] = len;
		f->nsent++;
	}
	return 0;
}

static void px_request(void *arg, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src)
{
	struct px *f = arg;
	f->server = st;
}

static struct px *px_new(void)
{
	struct px *f = calloc(1, sizeof(*f));
	timer_wheel_init(&f->w, 0);
	proxy_cfg_defaults(&f->cfg);
	f->cfg.ring_timeout = 60;
	f->st = mem_store();
	f->tu.on_request = px_request;
	struct txn_cfg tc = { 500, 4000, 5000 };
	CHECK_INT(txn_layer_new(&f->l, &tc, &f->w, px_send, f, &f->tu, f), 0);
	f->lis.proto = TP_UDP;
	snprintf(f->lis.host, sizeof f->lis.host, "192.0.2.1");
	f->lis.port = 5060;
	tp_addr_from_host(&f->lis.local, STR("192.0.2.1"), 5060);
	f->caller.proto = f->phone.proto = TP_UDP;
	f->caller.lis = f->phone.lis = &f->lis;
	tp_addr_from_host(&f->caller.addr, STR("192.0.2.2"), 5060);
	tp_addr_from_host(&f->phone.addr, STR("192.0.2.3"), 5060);
	CHECK_INT(cdr_new(&f->cdr, f->st, &f->w), 0);
	struct proxy_env env = {
		.cfg = &f->cfg, .wheel = &f->w, .txn = f->l, .cdr = f->cdr, .send = px_send, .send_arg = f
	};
	CHECK_INT(proxy_new(&f->p, &env), 0);
	return f;
}

static void px_free(struct px *f)
{
	proxy_free(f->p);
	cdr_free(f->cdr);
	txn_layer_free(f->l);
	store_close(f->st);
	for (unsigned i = 0; i < f->nsent; i++)
		free(f->sent[i]);
	free(f);
}

static void px_advance(struct px *f, uint64_t ms)
{
	/* In steps, so that each timer fires in its turn. */
	for (uint64_t end = f->now + ms; f->now < end;) {
		f->now += f->now + 100 < end ? 100 : end - f->now;
		timer_advance(&f->w, f->now);
	}
}

static const char invite[] = "INVITE sip:bob@a.test SIP/2.0\r\n"
			     "Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKcaller1\r\n"
			     "From: <sip:alice@a.test>;tag=a1\r\n"
			     "To: <sip:bob@a.test>\r\n"
			     "Call-ID: words@test\r\n"
			     "CSeq: 1 INVITE\r\n"
			     "Max-Forwards: 70\r\n"
			     "Content-Length: 0\r\n\r\n";

static const char cancel[] = "CANCEL sip:bob@a.test SIP/2.0\r\n"
			     "Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKcaller1\r\n"
			     "From: <sip:alice@a.test>;tag=a1\r\n"
			     "To: <sip:bob@a.test>\r\n"
			     "Call-ID: words@test\r\n"
			     "CSeq: 1 CANCEL\r\n"
			     "Max-Forwards: 70\r\n"
			     "Content-Length: 0\r\n\r\n";

/* m's header lines go to hdr (SIP_MAX_HEADERS of them), which must live as long as m. */
static struct txn_server *px_inject(struct px *f, const char *text, struct sip_msg *m, struct sip_hdr *hdr)
{
	struct sip_parse_err perr;
	CHECK(sip_msg_parse(m, hdr, SIP_MAX_HEADERS, text, strlen(text), true, &perr) == SIP_PARSE_OK);
	f->server = NULL;
	CHECK_INT(txn_recv_request(f->l, m, &f->caller), 0);
	return f->server;
}

/* Starts the call to one phone; returns the index in sent[] of the forwarded INVITE. */
static unsigned px_call(struct px *f)
{
	struct sip_msg m;
	struct sip_hdr hdr[SIP_MAX_HEADERS];
	struct txn_server *st = px_inject(f, invite, &m, hdr);
	CHECK(st != NULL);
	struct proxy_target t = { .ruri = STR("sip:bob@192.0.2.3"), .dst = f->phone };
	struct proxy_fwd_flags fl = { 0 };
	struct proxy_call_info ci = { STR("alice@a.test"), STR("bob@a.test"), STR("direct") };
	unsigned before = f->nsent;
	CHECK_INT(proxy_forward(f->p, st, &t, 1, &fl, &ci), 0);
	CHECK_INT(f->nsent, before + 2); /* 100 Trying and the INVITE */
	return before + 1;
}

static void px_respond(struct px *f, unsigned i, unsigned status)
{
	struct sip_msg req, resp;
	struct sip_hdr rqh[SIP_MAX_HEADERS], rsh[SIP_MAX_HEADERS];
	struct sip_parse_err perr;
	CHECK(sip_msg_parse(&req, rqh, SIP_MAX_HEADERS, f->sent[i], f->sent_len[i], true, &perr) == SIP_PARSE_OK);
	char buf[4096];
	struct sip_out o;
	sip_out_init(&o, buf, sizeof buf);
	struct sip_resp_opts opt = { .to_tag = STR("b1") };
	CHECK(sip_print_response(&o, &req, status, sip_reason(status), &opt) == 0);
	CHECK(sip_msg_parse(&resp, rsh, SIP_MAX_HEADERS, o.p, o.len, true, &perr) == SIP_PARSE_OK);
	CHECK_INT(txn_recv_response(f->l, &resp, &f->phone), 0);
}

/* The single record's status and word. */
static void check_record(struct px *f, unsigned status, const char *word)
{
	struct rows *rs = rows_of(f->st);
	CHECK_INT(rs->n, 1);
	if (rs->n >= 1) {
		const struct row *r = &rs->r[0];
		CHECK_INT(r->status, status);
		if (strcmp(r->reason, word) != 0) {
			fprintf(stderr, "status %u recorded as \"%s\", expected \"%s\"\n", status, r->reason, word);
			unit_failures++;
		}
		CHECK(strcmp(r->call_id, "words@test") == 0);
		CHECK(strcmp(r->caller, "alice@a.test") == 0 && strcmp(r->callee, "bob@a.test") == 0);
		CHECK(r->start_ms > 0);
		CHECK_INT(r->end_ms, 0);
		CHECK_INT(r->duration_ms, 0);
		if (status >= 300)
			CHECK_INT(r->answer_ms, 0);
		else
			CHECK(r->answer_ms >= r->start_ms);
	}
	free(rs);
}

static void t_proxy_words(void)
{
	static const struct {
		unsigned phone, upstream;
		const char *word;
	} cases[] = {
		{ 200, 200, "answered" },  { 486, 486, "busy" },      { 600, 600, "busy" },   { 603, 603, "declined" },
		{ 404, 404, "not found" }, { 604, 604, "not found" }, { 403, 403, "failed" }, { 503, 500, "failed" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct px *f = px_new();
		unsigned k = px_call(f);
		/* Before the answer the row exists, in progress. */
		struct rows *rs = rows_of(f->st);
		CHECK(rs->n == 1 && rs->r[0].status == 0);
		free(rs);
		px_respond(f, k, cases[i].phone);
		check_record(f, cases[i].upstream, cases[i].word);
		px_free(f);
	}
}

static void t_proxy_no_answer(void)
{
	/* The phone rings and nobody picks up: the ring timeout answers 408 "no answer". */
	struct px *f = px_new();
	unsigned k = px_call(f);
	px_respond(f, k, 180);
	px_advance(f, 59 * 1000);
	struct rows *rs = rows_of(f->st);
	CHECK(rs->n == 1 && rs->r[0].status == 0);
	free(rs);
	px_advance(f, 2 * 1000);
	bool answered = false;
	for (unsigned i = 0; i < f->nsent; i++)
		answered |= strncmp(f->sent[i], "SIP/2.0 408 No Answer\r\n", 23) == 0;
	CHECK(answered);
	check_record(f, 408, "no answer");
	px_free(f);
}

static void t_proxy_unreachable(void)
{
	/* A phone that never answers at all (timer B, 32 s) counts as a 408 branch: the call
	 * failed, it was not left unanswered. */
	struct px *f = px_new();
	px_call(f);
	px_advance(f, 33 * 1000);
	check_record(f, 408, "failed");
	px_free(f);
}

static void t_proxy_cancelled(void)
{
	struct px *f = px_new();
	unsigned k = px_call(f);
	struct sip_msg m;
	struct sip_hdr hdr[SIP_MAX_HEADERS];
	struct txn_server *cst = px_inject(f, cancel, &m, hdr);
	CHECK(cst != NULL);
	struct txn_server *ist = txn_server_find_invite(f->l, &m);
	CHECK(ist != NULL);
	proxy_cancel(f->p, cst, ist);
	/* The phone answers the CANCEL's INVITE with 487. */
	px_respond(f, k, 487);
	px_advance(f, 5000);
	check_record(f, 487, "cancelled");
	px_free(f);
}

/* The relay's figures reach the record whether they come before the BYE's answer or
 * after it; an unrelayed call says direct. */
static void t_media_figures(void)
{
	struct store *st = mem_store();
	struct timer_wheel w;
	timer_wheel_init(&w, 0);
	struct cdr *c;
	CHECK_INT(cdr_new(&c, st, &w), 0);
	char who[64];
	uint64_t dur = 0;
	struct cdr_attempt a = attempt("k1;t1;1", "k1@x", T0), b = attempt("k2;t1;1", "k2@x", T0),
			   d = attempt("k3;t1;1", "k3@x", T0);
	a.media = b.media = STR("relay udp:127.0.0.1:2223");
	d.media = STR("direct");
	cdr_final(c, &a, 200, "answered", T0 + 100);
	cdr_final(c, &b, 200, "answered", T0 + 100);
	cdr_final(c, &d, 200, "answered", T0 + 100);
	/* After the end: the ended call waits for its figures (not counted as active). */
	CHECK(cdr_end(c, STR("k1@x"), T0 + 5000, who, sizeof who, &dur));
	CHECK_INT(cdr_active(c), 2);
	/* Its end is written once, with the figures: not yet. */
	struct rows *rs0 = rows_of(st);
	const struct row *r0 = find(rs0, "k1;t1;1");
	CHECK(r0 && r0->status == 200 && r0->end_ms == 0 && strcmp(r0->media, "relay udp:127.0.0.1:2223") == 0);
	free(rs0);
	cdr_media(c, STR("k1@x"), "relay udp:127.0.0.1:2223 250/249 pkts");
	/* Before the end. */
	cdr_media(c, STR("k2@x"), "relay udp:127.0.0.1:2223 10/0 pkts");
	CHECK(cdr_end(c, STR("k2@x"), T0 + 5000, who, sizeof who, &dur));
	CHECK(cdr_end(c, STR("k3@x"), T0 + 5000, who, sizeof who, &dur));
	CHECK_INT(cdr_active(c), 0);
	struct rows *rs = rows_of(st);
	const struct row *r1 = find(rs, "k1;t1;1"), *r2 = find(rs, "k2;t1;1"), *r3 = find(rs, "k3;t1;1");
	CHECK(r1 && strcmp(r1->media, "relay udp:127.0.0.1:2223 250/249 pkts") == 0 && r1->end_ms == T0 + 5000);
	CHECK(r2 && strcmp(r2->media, "relay udp:127.0.0.1:2223 10/0 pkts") == 0 && r2->end_ms == T0 + 5000);
	CHECK(r3 && strcmp(r3->media, "direct") == 0);
	free(rs);
	/* Figures that never come: after the wait the end is written without them and the
	 * call forgotten; figures coming later change nothing. */
	struct cdr_attempt e = attempt("k4;t1;1", "k4@x", T0);
	e.media = STR("relay udp:127.0.0.1:2223");
	cdr_final(c, &e, 200, "answered", T0 + 100);
	CHECK(cdr_end(c, STR("k4@x"), T0 + 5000, who, sizeof who, &dur));
	timer_advance(&w, 9000);
	rs = rows_of(st);
	const struct row *r4 = find(rs, "k4;t1;1");
	CHECK(r4 && r4->end_ms == 0); /* still waiting */
	free(rs);
	timer_advance(&w, 60000);
	CHECK_INT(cdr_active(c), 0);
	cdr_media(c, STR("k4@x"), "late");
	rs = rows_of(st);
	r4 = find(rs, "k4;t1;1");
	CHECK(r4 && r4->status == 200 && r4->end_ms == T0 + 5000 && r4->duration_ms == 4900 &&
	      strcmp(r4->media, "relay udp:127.0.0.1:2223") == 0);
	free(rs);
	/* The server stops while an ended call waits: its end is written at cdr_free. */
	struct cdr_attempt g = attempt("k5;t1;1", "k5@x", T0);
	g.media = STR("relay udp:127.0.0.1:2223");
	cdr_final(c, &g, 200, "answered", T0 + 100);
	CHECK(cdr_end(c, STR("k5@x"), T0 + 7000, who, sizeof who, &dur));
	cdr_free(c);
	rs = rows_of(st);
	const struct row *r5 = find(rs, "k5;t1;1");
	CHECK(r5 && r5->status == 200 && r5->end_ms == T0 + 7000 && r5->duration_ms == 6900 &&
	      strcmp(r5->media, "relay udp:127.0.0.1:2223") == 0);
	free(rs);
	store_close(st);
}

static int live_seen(const struct cdr_live *l, void *arg)
{
	char *out = arg;
	snprintf(out + strlen(out), 200 - strlen(out), "%.*s:%s|", STR_FMT(l->call_id),
		 l->answer_ms ? "answered" : "ringing");
	return 0;
}

/* Calls in progress, for the API: listed from start to their final answer (ringing), then
 * until they end (answered); a failed attempt is gone at its final answer. */
static void t_live_calls(void)
{
	struct store *st = mem_store();
	struct timer_wheel w;
	timer_wheel_init(&w, 0);
	struct cdr *c;
	CHECK_INT(cdr_new(&c, st, &w), 0);
	struct cdr_attempt a = attempt("k1;t1;1", "k1@x", T0), b = attempt("k2;t2;1", "k2@x", T0 + 1);
	char out[200] = "";
	cdr_start(c, &a);
	cdr_start(c, &b);
	cdr_each_live(c, live_seen, out);
	CHECK_STR(str_from_cstr(out), "k2@x:ringing|k1@x:ringing|");
	cdr_final(c, &a, 200, "answered", T0 + 1000);
	cdr_final(c, &b, 486, "busy", T0 + 1000);
	out[0] = '\0';
	cdr_each_live(c, live_seen, out);
	CHECK_STR(str_from_cstr(out), "k1@x:answered|");
	char who[64];
	uint64_t dur;
	CHECK(cdr_end(c, STR("k1@x"), T0 + 5000, who, sizeof who, &dur));
	out[0] = '\0';
	cdr_each_live(c, live_seen, out);
	CHECK_STR(str_from_cstr(out), "");
	/* One left ringing is freed with the table. */
	cdr_start(c, &b);
	cdr_free(c);
	store_close(st);
}

/* Ringing attempts end in any order (the oldest, the newest, one in the middle) or are
 * forgotten by the ring timer; the list keeps the others, newest first. */
static void t_ringing_any_order(void)
{
	struct store *st = mem_store();
	struct timer_wheel w;
	timer_wheel_init(&w, 0);
	struct cdr *c;
	CHECK_INT(cdr_new(&c, st, &w), 0);
	struct cdr_attempt a[5];
	char ids[5][16], cids[5][16];
	for (int i = 0; i < 5; i++) {
		snprintf(ids[i], sizeof ids[i], "k%d;t;1", i);
		snprintf(cids[i], sizeof cids[i], "k%d@x", i);
		a[i] = attempt(ids[i], cids[i], T0 + (uint64_t)i);
		cdr_start(c, &a[i]);
	}
	char out[200] = "";
	cdr_final(c, &a[0], 486, "busy", 0);
	cdr_final(c, &a[4], 486, "busy", 0);
	cdr_final(c, &a[2], 200, "answered", T0 + 1000);
	cdr_each_live(c, live_seen, out);
	CHECK_STR(str_from_cstr(out), "k3@x:ringing|k1@x:ringing|k2@x:answered|");
	/* those still ringing after the ring life are forgotten; their finals find nothing */
	timer_advance(&w, 3600ull * 1000 + 10);
	cdr_final(c, &a[3], 486, "busy", 0);
	cdr_final(c, &a[1], 486, "busy", 0);
	out[0] = '\0';
	cdr_each_live(c, live_seen, out);
	CHECK_STR(str_from_cstr(out), "k2@x:answered|");
	cdr_start(c, &a[0]);
	cdr_start(c, &a[1]);
	cdr_final(c, &a[0], 486, "busy", 0);
	out[0] = '\0';
	cdr_each_live(c, live_seen, out);
	CHECK_STR(str_from_cstr(out), "k1@x:ringing|k2@x:answered|");
	cdr_free(c);
	store_close(st);
}

static const struct unit_case cases[] = {
	{ "live_calls", t_live_calls },
	{ "ringing_any_order", t_ringing_any_order },
	{ "media_figures", t_media_figures },
	{ "start_row", t_start_row },
	{ "failed_attempt", t_failed_attempt },
	{ "answered_then_ended", t_answered_then_ended },
	{ "result_words_kept", t_result_words_kept },
	{ "forgotten_after_a_day", t_forgotten_after_a_day },
	{ "many_calls_no_store", t_many_calls_no_store },
	{ "temp_file_store", t_temp_file_store },
	{ "proxy_words", t_proxy_words },
	{ "proxy_no_answer", t_proxy_no_answer },
	{ "proxy_unreachable", t_proxy_unreachable },
	{ "proxy_cancelled", t_proxy_cancelled },
};

UNIT_MAIN(cases)
