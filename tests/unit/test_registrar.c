/* test_registrar.c: unit tests of REGISTER processing over a real transaction layer, an in-memory location table and store, with captured responses. */
#include "unit.h"

#include <stdlib.h>

#include "core/loop.h"
#include "registrar/registrar.h"

#define MAXSENT 64
#define NOW 1700000000u

/* One test's world: configuration, location table, store, layer and what was sent. */
struct fx {
	struct timer_wheel w;
	struct reg_cfg cfg;
	struct location *loc;
	struct store *st;
	struct registrar *r;
	struct txn_layer *l;
	struct txn_tu tu;
	struct tp_source src;      /* where the REGISTERs come from */
	struct txn_server *server; /* the last server transaction handed up */
	unsigned branch;           /* makes every REGISTER a new transaction */
	char *sent[MAXSENT];
	unsigned nsent;
};

static int on_send(void *arg, const struct tp_source *dst, const char *buf, size_t len)
{
	struct fx *f = arg;
	if (f->nsent < MAXSENT) {
		f->sent[f->nsent] = malloc(len + 1);
		memcpy(f->sent[f->nsent], buf, len);
		f->sent[f->nsent][len] = '\0';
		f->nsent++;
	}
	return 0;
}

static void on_request(void *arg, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src)
{
	struct fx *f = arg;
	f->server = st;
}

/* with_store: an in-memory database behind the table, else none (store NULL). */
static struct fx *setup(bool with_store)
{
	struct fx *f = calloc(1, sizeof(*f));
	timer_wheel_init(&f->w, 0);
	reg_cfg_defaults(&f->cfg);
	CHECK_INT(loc_new(&f->loc), 0);
	if (with_store) {
		struct store_conf sc = { .path = ":memory:" };
		CHECK_INT(store_open(&f->st, &sc), 0);
	}
	struct reg_env env = { .cfg = &f->cfg, .lg = NULL, .loc = f->loc, .store = f->st };
	CHECK_INT(reg_new(&f->r, &env), 0);
	f->tu.on_request = on_request;
	struct txn_cfg tc = { 500, 4000, 5000 };
	CHECK_INT(txn_layer_new(&f->l, &tc, &f->w, on_send, f, &f->tu, f), 0);
	f->src.proto = TP_UDP;
	tp_addr_from_host(&f->src.addr, STR("203.0.113.9"), 40000);
	return f;
}

static void teardown(struct fx *f)
{
	txn_layer_free(f->l);
	reg_free(f->r);
	loc_free(f->loc);
	if (f->st)
		store_close(f->st);
	for (unsigned i = 0; i < f->nsent; i++)
		free(f->sent[i]);
	free(f);
}

/* Sends a REGISTER for alice@a.test through the layer to the registrar at time now and
 * returns the response it got (NULL when none). headers: the Contact/Expires lines, each
 * ending in CRLF. via_params: appended to the Via (";rport" or ""). */
static const char *reg_via(struct fx *f, const char *callid, unsigned cseq, const char *via_params, const char *headers,
			   uint32_t now)
{
	size_t cap = strlen(headers) + 1024;
	char *text = malloc(cap);
	unsigned k = ++f->branch;
	int n = snprintf(text, cap,
			 "REGISTER sip:a.test SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 203.0.113.9:40000;branch=z9hG4bKreg%u%s\r\n"
			 "From: <sip:alice@a.test>;tag=f%u\r\n"
			 "To: <sip:alice@a.test>\r\n"
			 "Call-ID: %s\r\n"
			 "CSeq: %u REGISTER\r\n"
			 "Max-Forwards: 70\r\n"
			 "User-Agent: unit\r\n"
			 "%s"
			 "Content-Length: 0\r\n\r\n",
			 k, via_params, k, callid, cseq, headers);
	struct sip_msg m_, *m = &m_;
	struct sip_hdr hdr[SIP_MAX_HEADERS];
	struct sip_parse_err perr;
	const char *resp = NULL;
	CHECK(n > 0 && (size_t)n < cap);
	CHECK(sip_msg_parse(m, hdr, SIP_MAX_HEADERS, text, (size_t)n, true, &perr) == SIP_PARSE_OK);
	f->server = NULL;
	CHECK_INT(txn_recv_request(f->l, m, &f->src), 0);
	CHECK(f->server != NULL);
	if (f->server) {
		unsigned before = f->nsent;
		reg_handle(f->r, f->server, m, &f->src, STR("alice@a.test"), now);
		CHECK_INT(f->nsent, before + 1); /* exactly one answer */
		if (f->nsent > before)
			resp = f->sent[f->nsent - 1];
	}
	free(text);
	return resp ? resp : "";
}

static const char *reg(struct fx *f, const char *callid, unsigned cseq, const char *headers, uint32_t now)
{
	return reg_via(f, callid, cseq, "", headers, now);
}

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static unsigned count(const char *s, const char *needle)
{
	unsigned n = 0;
	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static struct loc_aor *alice(struct fx *f)
{
	return loc_find(f->loc, STR("alice@a.test"));
}

static unsigned nbind(struct fx *f)
{
	struct loc_aor *a = alice(f);
	unsigned n = 0;
	for (struct loc_binding *b = a ? a->first : NULL; b; b = b->next)
		n++;
	return n;
}

static struct loc_binding *binding(struct fx *f, const char *uri)
{
	struct loc_aor *a = alice(f);
	return a ? loc_find_contact(a, str_from_cstr(uri)) : NULL;
}

static int count_row(const struct store_binding *b, void *arg)
{
	(*(unsigned *)arg)++;
	return 0;
}

/* Rows in the database after writing out what the registrar queued. */
static unsigned nrows(struct fx *f, uint32_t now)
{
	unsigned n = 0;
	CHECK_INT(store_flush(f->st), 0);
	CHECK_INT(store_bindings_load(f->st, now, count_row, &n), 0);
	return n;
}

/* ---- cases --------------------------------------------------------------------------------- */

static void t_several_contacts(void)
{
	struct fx *f = setup(true);
	/* Two values in one header and a second Contact header: three bindings at once. */
	const char *r = reg(f, "c1@x", 1,
			    "Contact: <sip:alice@203.0.113.9:40000>, <sip:alice@203.0.113.9:40002>\r\n"
			    "Contact: <sip:alice@203.0.113.9:40004>\r\n",
			    NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(count(r, "\r\nContact: "), 3);
	CHECK_INT(nbind(f), 3);
	/* Another phone of the same AOR adds a fourth; the 200 lists all four. */
	r = reg(f, "c2@y", 1, "Contact: <sip:alice@198.51.100.4:5060>\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(count(r, "\r\nContact: "), 4);
	CHECK(strstr(r, "Contact: <sip:alice@203.0.113.9:40002>;expires=3600\r\n") != NULL);
	CHECK(strstr(r, "Contact: <sip:alice@198.51.100.4:5060>;expires=3600\r\n") != NULL);
	CHECK_INT(nbind(f), 4);
	CHECK_INT(nrows(f, NOW), 4);
	teardown(f);
}

static void t_max_contacts(void)
{
	struct fx *f = setup(true);
	f->cfg.max_contacts = 2;
	/* Three new contacts in one request: refused, none kept. */
	const char *r =
		reg(f, "c1@x", 1, "Contact: <sip:a1@203.0.113.9>, <sip:a2@203.0.113.9>, <sip:a3@203.0.113.9>\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 403 Too Many Contacts\r\n"));
	CHECK_INT(nbind(f), 0);
	CHECK_INT(nrows(f, NOW), 0);
	/* Two fit; a third from another phone does not, and the two stay. */
	r = reg(f, "c1@x", 2, "Contact: <sip:a1@203.0.113.9>, <sip:a2@203.0.113.9>\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	r = reg(f, "c2@x", 1, "Contact: <sip:a3@203.0.113.9>\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 403 Too Many Contacts\r\n"));
	CHECK_INT(nbind(f), 2);
	CHECK(binding(f, "sip:a3@203.0.113.9") == NULL);
	/* At the limit, a refresh is no new binding, and removing one while adding one fits. */
	r = reg(f, "c1@x", 3, "Contact: <sip:a1@203.0.113.9>\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	r = reg(f, "c1@x", 4, "Contact: <sip:a2@203.0.113.9>;expires=0, <sip:a3@203.0.113.9>\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK(binding(f, "sip:a2@203.0.113.9") == NULL);
	CHECK(binding(f, "sip:a3@203.0.113.9") != NULL);
	CHECK_INT(nbind(f), 2);
	CHECK_INT(nrows(f, NOW), 2);
	teardown(f);
}

static void t_expires_precedence(void)
{
	struct fx *f = setup(false);
	/* The contact's own parameter wins over the header; the header over the default. */
	const char *r = reg(f, "c1@x", 1,
			    "Contact: <sip:a1@203.0.113.9>;expires=120, <sip:a2@203.0.113.9>\r\n"
			    "Expires: 300\r\n",
			    NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK(strstr(r, "Contact: <sip:a1@203.0.113.9>;expires=120\r\n") != NULL);
	CHECK(strstr(r, "Contact: <sip:a2@203.0.113.9>;expires=300\r\n") != NULL);
	struct loc_binding *b1 = binding(f, "sip:a1@203.0.113.9"), *b2 = binding(f, "sip:a2@203.0.113.9");
	CHECK(b1 && b2);
	if (b1 && b2) {
		CHECK_INT(b1->expires_at, NOW + 120);
		CHECK_INT(b2->expires_at, NOW + 300);
	}
	/* Neither: default-expires. */
	f->cfg.default_expires = 1800;
	r = reg(f, "c1@x", 2, "Contact: <sip:a3@203.0.113.9>\r\n", NOW);
	CHECK(strstr(r, "Contact: <sip:a3@203.0.113.9>;expires=1800\r\n") != NULL);
	struct loc_binding *b3 = binding(f, "sip:a3@203.0.113.9");
	CHECK(b3 && b3->expires_at == NOW + 1800);
	teardown(f);
}

static void t_interval_too_brief(void)
{
	struct fx *f = setup(true);
	f->cfg.min_expires = 60;
	const char *r = reg(f, "c1@x", 1, "Contact: <sip:a1@203.0.113.9>\r\nExpires: 59\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 423 Interval Too Brief\r\n"));
	CHECK(strstr(r, "\r\nMin-Expires: 60\r\n") != NULL);
	CHECK_INT(nbind(f), 0);
	/* The parameter is checked too, and one brief contact refuses the whole request. */
	r = reg(f, "c1@x", 2, "Contact: <sip:a1@203.0.113.9>, <sip:a2@203.0.113.9>;expires=10\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 423 Interval Too Brief\r\n"));
	CHECK_INT(nbind(f), 0);
	CHECK_INT(nrows(f, NOW), 0);
	/* Exactly min-expires is fine, and 0 is a removal, not too brief. */
	r = reg(f, "c1@x", 3, "Contact: <sip:a1@203.0.113.9>\r\nExpires: 60\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	r = reg(f, "c1@x", 4, "Contact: <sip:a1@203.0.113.9>\r\nExpires: 0\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(nbind(f), 0);
	teardown(f);
}

static void t_max_expires(void)
{
	struct fx *f = setup(false);
	f->cfg.max_expires = 7200;
	const char *r = reg(f, "c1@x", 1, "Contact: <sip:a1@203.0.113.9>;expires=100000\r\nExpires: 50000\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK(strstr(r, "Contact: <sip:a1@203.0.113.9>;expires=7200\r\n") != NULL);
	struct loc_binding *b = binding(f, "sip:a1@203.0.113.9");
	CHECK(b && b->expires_at == NOW + 7200);
	r = reg(f, "c1@x", 2, "Contact: <sip:a2@203.0.113.9>\r\nExpires: 50000\r\n", NOW);
	CHECK(strstr(r, "Contact: <sip:a2@203.0.113.9>;expires=7200\r\n") != NULL);
	teardown(f);
}

static void t_star_removes_all(void)
{
	struct fx *f = setup(true);
	reg(f, "c1@x", 1, "Contact: <sip:a1@203.0.113.9>, <sip:a2@203.0.113.9>\r\n", NOW);
	reg(f, "c2@x", 1, "Contact: <sip:a3@198.51.100.4>\r\n", NOW);
	CHECK_INT(nbind(f), 3);
	CHECK_INT(nrows(f, NOW), 3);
	/* '*' without Expires: 0, or beside another contact, is a bad request: nothing goes. */
	const char *r = reg(f, "c1@x", 2, "Contact: *\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 400 Invalid Wildcard Contact\r\n"));
	r = reg(f, "c1@x", 3, "Contact: *\r\nExpires: 30\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 400 Invalid Wildcard Contact\r\n"));
	r = reg(f, "c1@x", 4, "Contact: *, <sip:a1@203.0.113.9>\r\nExpires: 0\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 400 Invalid Wildcard Contact\r\n"));
	CHECK_INT(nbind(f), 3);
	/* Done right, every binding of the AOR goes, from memory and from the database. */
	r = reg(f, "c1@x", 5, "Contact: *\r\nExpires: 0\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(count(r, "\r\nContact: "), 0);
	CHECK(alice(f) == NULL);
	CHECK_INT(nrows(f, NOW), 0);
	teardown(f);
}

static void t_query_lists_bindings(void)
{
	struct fx *f = setup(false);
	reg(f, "c1@x", 1, "Contact: <sip:a1@203.0.113.9>;expires=600\r\n", NOW);
	reg(f, "c2@x", 1, "Contact: <sip:a2@198.51.100.4>;expires=3600\r\n", NOW + 100);
	/* No Contact: the bindings with their remaining time, nothing changed. */
	const char *r = reg(f, "c3@x", 1, "", NOW + 250);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(count(r, "\r\nContact: "), 2);
	CHECK(strstr(r, "Contact: <sip:a1@203.0.113.9>;expires=350\r\n") != NULL);
	CHECK(strstr(r, "Contact: <sip:a2@198.51.100.4>;expires=3450\r\n") != NULL);
	CHECK(strstr(r, "\r\nDate: ") != NULL);
	CHECK_INT(nbind(f), 2);
	/* A binding past its time (not yet swept) is not listed. */
	r = reg(f, "c3@x", 2, "", NOW + 600);
	CHECK_INT(count(r, "\r\nContact: "), 1);
	CHECK(strstr(r, "sip:a1@") == NULL);
	/* An AOR with no bindings: 200 with none. */
	struct fx *g = setup(false);
	r = reg(g, "c1@x", 1, "", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(count(r, "\r\nContact: "), 0);
	teardown(g);
	teardown(f);
}

static void t_out_of_order(void)
{
	struct fx *f = setup(false);
	const char *r = reg(f, "c1@x", 5, "Contact: <sip:a1@203.0.113.9>;expires=600\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	/* Same Call-ID, CSeq not above the stored one: 500, and the binding is unchanged. */
	r = reg(f, "c1@x", 5, "Contact: <sip:a1@203.0.113.9>;expires=900\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 500 Out of Order Request\r\n"));
	r = reg(f, "c1@x", 4, "Contact: <sip:a1@203.0.113.9>;expires=0\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 500 Out of Order Request\r\n"));
	r = reg(f, "c1@x", 4, "Contact: *\r\nExpires: 0\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 500 Out of Order Request\r\n"));
	struct loc_binding *b = binding(f, "sip:a1@203.0.113.9");
	CHECK(b && b->expires_at == NOW + 600 && b->cseq == 5);
	/* A higher CSeq updates it. */
	r = reg(f, "c1@x", 6, "Contact: <sip:a1@203.0.113.9>;expires=900\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	b = binding(f, "sip:a1@203.0.113.9");
	CHECK(b && b->expires_at == NOW + 900 && b->cseq == 6);
	/* Another Call-ID (the phone restarted) may take over with any CSeq. */
	r = reg(f, "c2@x", 1, "Contact: <sip:a1@203.0.113.9>;expires=1200\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	b = binding(f, "sip:a1@203.0.113.9");
	CHECK(b && b->expires_at == NOW + 1200 && b->cseq == 1);
	if (b)
		CHECK_STR(loc_b_field(b, LOC_CALLID), "c2@x");
	CHECK_INT(nbind(f), 1);
	teardown(f);
}

static void t_bad_contact_changes_nothing(void)
{
	struct fx *f = setup(true);
	reg(f, "c1@x", 1, "Contact: <sip:a1@203.0.113.9>;expires=600\r\n", NOW);
	/* A good refresh, a good new contact and a tel: URI: 400, and neither good one counts. */
	const char *r =
		reg(f, "c1@x", 2,
		    "Contact: <sip:a1@203.0.113.9>;expires=900, <sip:a2@203.0.113.9>, <tel:+15551234>\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 400 Contact Must Be a SIP URI\r\n"));
	CHECK_INT(nbind(f), 1);
	struct loc_binding *b = binding(f, "sip:a1@203.0.113.9");
	CHECK(b && b->expires_at == NOW + 600 && b->cseq == 1);
	/* A contact that does not parse. */
	r = reg(f, "c1@x", 3, "Contact: <sip:a2@203.0.113.9>, <sip:a3@203.0.113.9\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 400 Bad Contact\r\n"));
	CHECK_INT(nbind(f), 1);
	CHECK_INT(nrows(f, NOW), 1);
	teardown(f);
}

/* A contact of exactly len bytes (URI and parameters): "<sip:a1@203.0.113.9>;x=yyyy...". */
static char *long_contact(const char *user, size_t len)
{
	char *s = malloc(len + 8);
	int n = snprintf(s, len + 8, "<sip:%s@203.0.113.9>;x=", user);
	size_t head = (size_t)n - 2; /* the brackets are not part of the length */
	CHECK(len > head);
	memset(s + n, 'y', len - head);
	s[n + (len - head)] = '\0';
	return s;
}

static void t_contact_too_long(void)
{
	struct fx *f = setup(true);
	char hdr[4096];
	/* 1024 bytes is the limit, and is accepted. */
	char *c = long_contact("a1", 1024);
	snprintf(hdr, sizeof hdr, "Contact: %s\r\n", c);
	free(c);
	const char *r = reg(f, "c1@x", 1, hdr, NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(nbind(f), 1);
	/* 1025 bytes, after a good contact: 400, and nothing of the request is stored. */
	c = long_contact("a3", 1025);
	snprintf(hdr, sizeof hdr, "Contact: <sip:a2@203.0.113.9>, %s\r\n", c);
	free(c);
	r = reg(f, "c1@x", 2, hdr, NOW);
	CHECK(starts(r, "SIP/2.0 400 Contact Too Long\r\n"));
	CHECK_INT(nbind(f), 1);
	CHECK(binding(f, "sip:a2@203.0.113.9") == NULL);
	CHECK_INT(nrows(f, NOW), 1);
	teardown(f);
}

static void t_too_many_to_list(void)
{
	struct fx *f = setup(true);
	f->cfg.max_contacts = 32;
	/* Ten contacts of 1000 bytes list in about 10 KB: accepted. */
	char *hdr = malloc(64 * 1024);
	size_t n = 0;
	char user[16];
	for (int i = 0; i < 10; i++) {
		snprintf(user, sizeof user, "a%d", i);
		char *c = long_contact(user, 1000);
		n += (size_t)sprintf(hdr + n, "Contact: %s\r\n", c);
		free(c);
	}
	const char *r = reg(f, "c1@x", 1, hdr, NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(count(r, "\r\nContact: "), 10);
	CHECK_INT(nbind(f), 10);
	/* Six more would not fit in the 200's 16 KB list: refused before anything changes. */
	n = 0;
	for (int i = 10; i < 16; i++) {
		snprintf(user, sizeof user, "a%d", i);
		char *c = long_contact(user, 1000);
		n += (size_t)sprintf(hdr + n, "Contact: %s\r\n", c);
		free(c);
	}
	r = reg(f, "c2@x", 1, hdr, NOW);
	CHECK(starts(r, "SIP/2.0 403 Too Many Bindings to List\r\n"));
	CHECK_INT(nbind(f), 10);
	CHECK(binding(f, "sip:a10@203.0.113.9") == NULL);
	CHECK_INT(nrows(f, NOW), 10);
	/* A query still lists the ten. */
	r = reg(f, "c3@x", 1, "", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(count(r, "\r\nContact: "), 10);
	free(hdr);
	teardown(f);
}

static void t_q_and_params_kept(void)
{
	struct fx *f = setup(true);
	const char *r = reg(f, "c1@x", 1,
			    "Contact: \"Alice\" <sip:a1@203.0.113.9:5062;transport=udp;ob>;q=0.7;"
			    "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000000000001>\";expires=600;reg-id=1\r\n"
			    "Contact: <sip:a2@203.0.113.9>;q=0.25\r\n"
			    "Contact: <sip:a3@203.0.113.9>\r\n",
			    NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	/* URI parameters stay in the URI, contact parameters outside it, expires restated. */
	CHECK(strstr(r, "Contact: <sip:a1@203.0.113.9:5062;transport=udp;ob>;q=0.7;"
			"+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000000000001>\";reg-id=1;expires=600\r\n") !=
	      NULL);
	CHECK(strstr(r, "Contact: <sip:a2@203.0.113.9>;q=0.25;expires=3600\r\n") != NULL);
	struct loc_binding *b = binding(f, "sip:a1@203.0.113.9:5062;transport=udp;ob");
	CHECK(b != NULL);
	if (b) {
		CHECK_INT(b->q, 700);
		CHECK_STR(loc_b_field(b, LOC_PARAMS),
			  ";q=0.7;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000000000001>\";reg-id=1");
		CHECK_STR(loc_b_field(b, LOC_INSTANCE), "<urn:uuid:00000000-0000-1000-8000-000000000001>");
		CHECK_STR(loc_b_field(b, LOC_UA), "unit");
	}
	b = binding(f, "sip:a2@203.0.113.9");
	CHECK(b && b->q == 250);
	b = binding(f, "sip:a3@203.0.113.9");
	CHECK(b && b->q == 1000);
	CHECK_INT(nrows(f, NOW), 3);
	teardown(f);
}

static void t_sweep(void)
{
	struct fx *f = setup(true);
	reg(f, "c1@x", 1, "Contact: <sip:a1@203.0.113.9>;expires=60, <sip:a2@203.0.113.9>;expires=600\r\n", NOW);
	CHECK_INT(nrows(f, NOW), 2);
	/* Not yet due: nothing goes. */
	reg_sweep(f->r, NOW + 59);
	CHECK_INT(nbind(f), 2);
	reg_sweep(f->r, NOW + 60);
	CHECK_INT(nbind(f), 1);
	CHECK(binding(f, "sip:a1@203.0.113.9") == NULL);
	CHECK(binding(f, "sip:a2@203.0.113.9") != NULL);
	/* Deleted from the database too (counted at a time when both rows would be live). */
	CHECK_INT(nrows(f, NOW), 1);
	reg_sweep(f->r, NOW + 600);
	CHECK(alice(f) == NULL);
	CHECK_INT(loc_binding_count(f->loc), 0);
	CHECK_INT(nrows(f, NOW), 0);
	teardown(f);
}

static uint16_t port_of(const struct tp_addr *a)
{
	return tp_addr_port(a);
}

static void check_dest(struct fx *f, const char *uri, const char *host, uint16_t port)
{
	struct loc_binding *b = binding(f, uri);
	CHECK(b != NULL);
	if (!b)
		return;
	struct tp_source d;
	CHECK_INT(reg_binding_dest(b, &d), 0);
	char h[64];
	tp_addr_host(&d.addr, h, sizeof h);
	if (strcmp(h, host) != 0 || port_of(&d.addr) != port) {
		fprintf(stderr, "%s: goes to %s:%u, expected %s:%u\n", uri, h, port_of(&d.addr), host, port);
		unit_failures++;
	}
	CHECK(d.lis == NULL);
	CHECK_INT(d.proto, TP_UDP);
}

static void t_binding_dest(void)
{
	struct fx *f = setup(false);
	/* Source 203.0.113.9:40000. No rport, public contact: the contact as written. */
	reg(f, "c1@x", 1, "Contact: <sip:a1@198.51.100.4:5070>\r\n", NOW);
	check_dest(f, "sip:a1@198.51.100.4:5070", "198.51.100.4", 5070);
	/* The contact names the source host: as written too (its port is the phone's). */
	reg(f, "c1@x", 2, "Contact: <sip:a2@203.0.113.9:5062>\r\n", NOW);
	check_dest(f, "sip:a2@203.0.113.9:5062", "203.0.113.9", 5062);
	/* A private or loopback contact host other than the source: the source address. */
	reg(f, "c1@x", 3, "Contact: <sip:a3@192.168.1.20:5060>, <sip:a4@10.1.2.3>, <sip:a5@127.0.0.1:5080>\r\n", NOW);
	check_dest(f, "sip:a3@192.168.1.20:5060", "203.0.113.9", 40000);
	check_dest(f, "sip:a4@10.1.2.3", "203.0.113.9", 40000);
	check_dest(f, "sip:a5@127.0.0.1:5080", "203.0.113.9", 40000);
	/* A host name: the source address. */
	reg(f, "c1@x", 4, "Contact: <sip:a6@phone.example.test:5060>\r\n", NOW);
	check_dest(f, "sip:a6@phone.example.test:5060", "203.0.113.9", 40000);
	/* rport in the Via: the source address even for a public contact. */
	reg_via(f, "c1@x", 5, ";rport", "Contact: <sip:a7@198.51.100.4:5070>\r\n", NOW);
	check_dest(f, "sip:a7@198.51.100.4:5070", "203.0.113.9", 40000);
	struct loc_binding *b = binding(f, "sip:a7@198.51.100.4:5070");
	CHECK(b && (b->flags & LOC_F_USE_SRC));
	b = binding(f, "sip:a1@198.51.100.4:5070");
	CHECK(b && !(b->flags & LOC_F_USE_SRC));
	teardown(f);
}

/* Bindings written to a database file come back into a fresh table with reg_load. */
static void t_reload(void)
{
	char dir[] = "/tmp/parley-test-reg-XXXXXX", path[128];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/reg.db", dir);
	struct reg_cfg cfg;
	reg_cfg_defaults(&cfg);
	struct store_conf sc = { .path = path };
	struct store *st;
	CHECK_INT(store_open(&st, &sc), 0);
	struct fx *f = setup(false);
	reg_free(f->r);
	struct reg_env env = { .cfg = &f->cfg, .loc = f->loc, .store = st };
	CHECK_INT(reg_new(&f->r, &env), 0);
	reg(f, "c1@x", 1, "Contact: <sip:a1@192.168.1.20:5060>;q=0.5;expires=60, <sip:a2@198.51.100.4>;expires=600\r\n",
	    NOW);
	CHECK_INT(store_flush(st), 0);
	teardown(f);
	store_close(st);

	CHECK_INT(store_open(&st, &sc), 0);
	struct location *loc;
	struct registrar *r;
	CHECK_INT(loc_new(&loc), 0);
	env = (struct reg_env){ .cfg = &cfg, .loc = loc, .store = st };
	CHECK_INT(reg_new(&r, &env), 0);
	/* At NOW + 100 the first has expired: only the second comes back. */
	CHECK_INT(reg_load(r, NOW + 100), 1);
	struct loc_aor *a = loc_find(loc, STR("alice@a.test"));
	CHECK(a && loc_find_contact(a, STR("sip:a2@198.51.100.4")) != NULL);
	reg_free(r);
	loc_free(loc);
	loc_new(&loc);
	env.loc = loc;
	store_close(st);
	CHECK_INT(store_open(&st, &sc), 0);
	env.store = st;
	CHECK_INT(reg_new(&r, &env), 0);
	CHECK_INT(reg_load(r, NOW), 1); /* the expired row was deleted by the load before */
	a = loc_find(loc, STR("alice@a.test"));
	struct loc_binding *b = a ? loc_find_contact(a, STR("sip:a2@198.51.100.4")) : NULL;
	CHECK(b && b->expires_at == NOW + 600 && b->q == 1000);
	if (b)
		CHECK_STR(loc_b_field(b, LOC_CALLID), "c1@x");
	reg_free(r);
	loc_free(loc);
	store_close(st);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	CHECK_INT(system(cmd), 0);
}

/* The last OPTIONS sent, or NULL. */
static const char *last_options(struct fx *f, unsigned from)
{
	for (unsigned i = f->nsent; i-- > from;)
		if (starts(f->sent[i], "OPTIONS "))
			return f->sent[i];
	return NULL;
}

/* Answers an OPTIONS the registrar sent, as the phone would (200, from its address). */
static void answer_options(struct fx *f, const char *options)
{
	struct sip_msg req, resp;
	struct sip_hdr rh[SIP_MAX_HEADERS], ph[SIP_MAX_HEADERS];
	struct sip_parse_err perr;
	CHECK(sip_msg_parse(&req, rh, SIP_MAX_HEADERS, options, strlen(options), true, &perr) == SIP_PARSE_OK);
	char buf[2048];
	struct sip_out o;
	sip_out_init(&o, buf, sizeof buf);
	struct sip_resp_opts opt = { .to_tag = STR("ph1") };
	CHECK_INT(sip_print_response(&o, &req, 200, "OK", &opt), 0);
	CHECK(sip_msg_parse(&resp, ph, SIP_MAX_HEADERS, o.p, o.len, true, &perr) == SIP_PARSE_OK);
	CHECK_INT(txn_recv_response(f->l, &resp, &f->src), 0);
}

/* setup(true) with a registrar that sends keepalives every second (through f's layer, from
 * a transport listening on 127.0.0.1 that nothing reads); free *loop and *tp after
 * teardown. */
static struct fx *setup_keepalive(bool remove, struct loop **loop, struct transport **tp)
{
	struct fx *f = setup(true);
	char err[128];
	CHECK_INT(loop_new(loop), 0);
	CHECK_INT(tp_new(tp, *loop, NULL, NULL), 0);
	CHECK_INT(tp_listen(*tp, "udp:127.0.0.1:0", err, sizeof err), 0);
	f->cfg.nat_ping_interval = 1;
	f->cfg.nat_ping_remove = remove;
	reg_free(f->r);
	struct reg_env env = { .cfg = &f->cfg, .loc = f->loc, .store = f->st, .txn = f->l, .tp = *tp };
	CHECK_INT(reg_new(&f->r, &env), 0);
	return f;
}

/* NAT keepalive: a phone registered with rport (behind NAT) gets an OPTIONS every
 * nat-ping-interval at its source address; an answer keeps it, three unanswered ones mark
 * it unreachable, and with nat-ping-remove its binding goes. A phone not behind NAT gets
 * none. */
static void t_nat_keepalive(void)
{
	for (int remove = 0; remove <= 1; remove++) {
		struct loop *loop;
		struct transport *tp;
		struct fx *f = setup_keepalive(remove, &loop, &tp);
		CHECK(starts(reg_via(f, "ka@x", 1, ";rport",
				     "Contact: <sip:alice@192.168.1.5:5060>\r\nExpires: 3600\r\n", NOW),
			     "SIP/2.0 200 "));
		unsigned mark = f->nsent;
		reg_ping(f->r, 1000); /* one interval: the whole table */
		const char *ping = last_options(f, mark);
		CHECK(ping != NULL);
		CHECK(ping && starts(ping, "OPTIONS sip:alice@192.168.1.5:5060 SIP/2.0\r\n"));
		CHECK_INT(reg_ping_stats(f->r)->sent, 1);
		if (ping)
			answer_options(f, ping);
		CHECK_INT(reg_ping_stats(f->r)->answered, 1);
		/* Three rounds nobody answers: each times out after 64*T1. */
		uint64_t t = 0;
		for (int round = 0; round < 3; round++) {
			reg_ping(f->r, 1000);
			for (int k = 0; k < 40; k++) {
				t += 1000;
				timer_advance(&f->w, t);
			}
		}
		CHECK_INT(reg_ping_stats(f->r)->missed, 3);
		CHECK_INT(reg_ping_stats(f->r)->unreachable, 1);
		struct loc_aor *a = loc_find(f->loc, STR("alice@a.test"));
		if (remove) {
			CHECK(a == NULL || a->first == NULL);
			CHECK_INT(reg_ping_stats(f->r)->removed, 1);
		} else {
			CHECK(a && a->first);
		}
		teardown(f);
		tp_free(tp);
		loop_free(loop);
	}
	/* Registered from where its Contact says, without rport: not behind NAT, no keepalive. */
	struct loop *loop;
	struct transport *tp;
	struct fx *f = setup_keepalive(false, &loop, &tp);
	CHECK(starts(reg(f, "ka2@x", 1, "Contact: <sip:alice@203.0.113.9:40000>\r\nExpires: 3600\r\n", NOW),
		     "SIP/2.0 200 "));
	unsigned mark = f->nsent;
	reg_ping(f->r, 1000);
	CHECK(last_options(f, mark) == NULL);
	/* With rport, but registering the very address it sends from: not behind NAT either. */
	CHECK(starts(
		reg_via(f, "ka3@x", 1, ";rport", "Contact: <sip:alice@203.0.113.9:40000>\r\nExpires: 3600\r\n", NOW),
		"SIP/2.0 200 "));
	reg_ping(f->r, 1000);
	CHECK(last_options(f, mark) == NULL);
	CHECK_INT(reg_ping_stats(f->r)->sent, 0);
	teardown(f);
	tp_free(tp);
	loop_free(loop);
}

#define OB_INST "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\""

/* RFC 5626 §6: one binding per (instance, reg-id) flow, each replacing only itself. */
static void t_outbound_flows(void)
{
	struct fx *f = setup(true);
	/* Without Supported: outbound the reg-id means nothing: the URI is the key. */
	const char *r = reg(f, "c1@x", 1, "Contact: <sip:alice@203.0.113.9:40000>;" OB_INST ";reg-id=1\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK(strstr(r, "Require: outbound") == NULL);
	CHECK(strstr(r, "Flow-Timer:") == NULL);
	r = reg(f, "c1@x", 2, "Contact: <sip:alice@203.0.113.9:40000>;" OB_INST ";reg-id=2\r\n", NOW);
	CHECK_INT(nbind(f), 1);
	struct loc_aor *a = alice(f);
	CHECK(a && !loc_is_flow(a->first));
	r = reg(f, "c1@x", 3, "Contact: <sip:alice@203.0.113.9:40000>;expires=0\r\n", NOW);
	CHECK_INT(nbind(f), 0);

	/* With it: two flows of one phone with the same contact are two bindings. */
	r = reg(f, "c2@x", 1,
		"Supported: outbound, path\r\nContact: <sip:alice@203.0.113.9:40000;ob>;" OB_INST ";reg-id=1\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK(strstr(r, "\r\nRequire: outbound\r\n") != NULL);
	CHECK(strstr(r, "\r\nFlow-Timer: 25\r\n") != NULL);
	r = reg(f, "c3@x", 1,
		"Supported: outbound\r\nContact: <sip:alice@203.0.113.9:40000;ob>;" OB_INST ";reg-id=2\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(nbind(f), 2);
	CHECK_INT(count(r, "\r\nContact: "), 2);
	a = alice(f);
	CHECK(a && loc_is_flow(a->first) && (a->first->flags & LOC_F_OUTBOUND) && (a->first->flags & LOC_F_USE_SRC));
	/* Flow 1 comes back with another contact and Call-ID: it replaces flow 1 only. */
	r = reg(f, "c4@x", 1,
		"Supported: outbound\r\nContact: <sip:alice@203.0.113.9:40002;ob>;" OB_INST ";reg-id=1\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(nbind(f), 2);
	a = alice(f);
	if (a && a->first && a->first->next) {
		CHECK_STR(loc_b_field(a->first, LOC_URI), "sip:alice@203.0.113.9:40002;ob");
		CHECK_STR(loc_b_field(a->first, LOC_REGID), "1");
		CHECK_STR(loc_b_field(a->first->next, LOC_URI), "sip:alice@203.0.113.9:40000;ob");
		CHECK_STR(loc_b_field(a->first->next, LOC_REGID), "2");
	}
	CHECK_INT(nrows(f, NOW), 2);
	/* Removing flow 2 leaves flow 1, in memory and on disk. */
	r = reg(f, "c3@x", 2,
		"Supported: outbound\r\nContact: <sip:alice@203.0.113.9:40000;ob>;" OB_INST ";reg-id=2;expires=0\r\n",
		NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(nbind(f), 1);
	CHECK_INT(nrows(f, NOW), 1);
	/* A bad reg-id, and one flow named twice, are refused. */
	r = reg(f, "c5@x", 1, "Supported: outbound\r\nContact: <sip:alice@203.0.113.9:40000>;" OB_INST ";reg-id=0\r\n",
		NOW);
	CHECK(starts(r, "SIP/2.0 400 Bad reg-id\r\n"));
	r = reg(f, "c5@x", 2,
		"Supported: outbound\r\nContact: <sip:alice@203.0.113.9:40000>;" OB_INST
		";reg-id=3, <sip:alice@203.0.113.9:40004>;" OB_INST ";reg-id=3\r\n",
		NOW);
	CHECK(starts(r, "SIP/2.0 400 Flow Registered Twice\r\n"));
	/* Through a proxy that did not say ;ob in its Path: 439; with it, kept. */
	r = reg(f, "c6@x", 1,
		"Via: SIP/2.0/UDP 192.0.2.80;branch=z9hG4bKedge1\r\nSupported: outbound\r\n"
		"Contact: <sip:alice@203.0.113.9:40000>;" OB_INST ";reg-id=5\r\n",
		NOW);
	CHECK(starts(r, "SIP/2.0 439 First Hop Lacks Outbound Support\r\n"));
	r = reg(f, "c6@x", 2,
		"Via: SIP/2.0/UDP 192.0.2.80;branch=z9hG4bKedge1\r\nPath: <sip:192.0.2.80;lr;ob>\r\n"
		"Supported: outbound\r\nContact: <sip:alice@203.0.113.9:40000>;" OB_INST ";reg-id=5\r\n",
		NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK_INT(nbind(f), 2);
	teardown(f);
}

/* RFC 3327: every Path value is kept in order, echoed to a phone that supports path,
 * and requests go to the proxy it names first. */
static void t_path(void)
{
	struct fx *f = setup(true);
	const char *r = reg(f, "c1@x", 1,
			    "Path: <sip:192.0.2.80:5070;lr>\r\nPath: <sip:edge2.test;lr>, <sip:edge3.test;lr>\r\n"
			    "Contact: <sip:alice@198.51.100.4>\r\n",
			    NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK(strstr(r, "\r\nPath:") == NULL); /* no Supported: path */
	struct loc_binding *b = binding(f, "sip:alice@198.51.100.4");
	CHECK(b != NULL);
	if (b) {
		CHECK_STR(loc_b_field(b, LOC_PATH),
			  "<sip:192.0.2.80:5070;lr>, <sip:edge2.test;lr>, <sip:edge3.test;lr>");
		struct tp_source dst;
		CHECK_INT(reg_binding_dest(b, &dst), 0);
		char txt[64];
		CHECK(strcmp(tp_addr_str(&dst.addr, txt, sizeof txt), "192.0.2.80:5070") == 0);
	}
	r = reg(f, "c1@x", 2,
		"Supported: path\r\nPath: <sip:192.0.2.80:5070;lr>\r\nContact: <sip:alice@198.51.100.4>\r\n", NOW);
	CHECK(strstr(r, "\r\nPath: <sip:192.0.2.80:5070;lr>\r\n") != NULL);
	r = reg(f, "c1@x", 3, "Path: <tel:+1234>\r\nContact: <sip:alice@198.51.100.4>\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 400 Bad Path\r\n"));
	teardown(f);
}

/* The temp-gruu of the 200 r (its first), as a URI into buf. */
static bool temp_gruu(const char *r, char *buf, size_t cap, struct sip_uri *u)
{
	const char *p = strstr(r, ";temp-gruu=\"");
	if (!p)
		return false;
	p += strlen(";temp-gruu=\"");
	const char *e = strchr(p, '"');
	if (!e || (size_t)(e - p) >= cap)
		return false;
	memcpy(buf, p, (size_t)(e - p));
	buf[e - p] = '\0';
	return sip_uri_parse(u, str_from_cstr(buf)) == 0;
}

/* RFC 5627: pub-gruu and temp-gruu for a phone with an instance that supports gruu; a
 * temp-gruu is new each time, opens only with our key, and dies with its registration. */
static void t_gruu(void)
{
	struct fx *f = setup(false);
	const char *r = reg(f, "c1@x", 1, "Contact: <sip:alice@203.0.113.9:40000>;" OB_INST "\r\n", NOW);
	CHECK(strstr(r, "gruu") == NULL); /* not asked for */
	r = reg(f, "c1@x", 2, "Supported: gruu\r\nContact: <sip:alice@203.0.113.9:40000>;" OB_INST "\r\n", NOW);
	CHECK(starts(r, "SIP/2.0 200 OK\r\n"));
	CHECK(strstr(r, ";pub-gruu=\"sip:alice@a.test;gr=urn:uuid:00000000-0000-1000-8000-000A95A0E128\"") != NULL);
	char t1[512], t2[512];
	struct sip_uri u1, u2, pub;
	CHECK(temp_gruu(r, t1, sizeof t1, &u1));
	CHECK(strstr(t1, "@a.test;gr") != NULL && strstr(t1, "alice") == NULL);
	r = reg(f, "c1@x", 3, "Supported: gruu\r\nContact: <sip:alice@203.0.113.9:40000>;" OB_INST "\r\n", NOW);
	CHECK(temp_gruu(r, t2, sizeof t2, &u2));
	CHECK(strcmp(t1, t2) != 0);
	CHECK_INT(nbind(f), 1);
	struct reg_gruu g;
	CHECK(reg_gruu_parse(f->r, &u1, STR("a.test"), &g));
	CHECK(g.temp && g.aor_l == 12 && memcmp(g.aor, "alice@a.test", 12) == 0);
	CHECK(reg_gruu_valid(f->r, &g, alice(f), NOW));
	CHECK(alice(f) && reg_gruu_phone(f->r, &g, alice(f)->first));
	/* One changed hex digit, and the key is not ours: not a GRUU. */
	t1[20] = t1[20] == '0' ? '1' : '0';
	CHECK(sip_uri_parse(&u1, str_from_cstr(t1)) == 0);
	CHECK(!reg_gruu_parse(f->r, &u1, STR("a.test"), &g));
	CHECK(sip_uri_parse(&pub, STR("sip:alice@a.test;gr=urn:uuid:00000000-0000-1000-8000-000A95A0E128")) == 0);
	struct reg_gruu gp;
	CHECK(reg_gruu_parse(f->r, &pub, STR("a.test"), &gp) && !gp.temp);
	CHECK(reg_gruu_valid(f->r, &gp, alice(f), NOW));
	/* The phone registers again with a new Call-ID (a reboot): old temp-gruus die, the
	 * pub-gruu stays. */
	r = reg(f, "c2@x", 1, "Supported: gruu\r\nContact: <sip:alice@203.0.113.9:40000>;" OB_INST "\r\n", NOW);
	CHECK(reg_gruu_parse(f->r, &u2, STR("a.test"), &g));
	CHECK(!reg_gruu_valid(f->r, &g, alice(f), NOW));
	CHECK(reg_gruu_valid(f->r, &gp, alice(f), NOW));
	/* Gone with the binding. */
	r = reg(f, "c2@x", 2, "Contact: <sip:alice@203.0.113.9:40000>;expires=0\r\n", NOW);
	CHECK(!reg_gruu_valid(f->r, &gp, alice(f), NOW));
	teardown(f);
}

static const struct unit_case cases[] = {
	{ "gruu", t_gruu },
	{ "outbound_flows", t_outbound_flows },
	{ "path", t_path },
	{ "nat_keepalive", t_nat_keepalive },
	{ "several_contacts", t_several_contacts },
	{ "max_contacts", t_max_contacts },
	{ "expires_precedence", t_expires_precedence },
	{ "interval_too_brief", t_interval_too_brief },
	{ "max_expires", t_max_expires },
	{ "star_removes_all", t_star_removes_all },
	{ "query_lists_bindings", t_query_lists_bindings },
	{ "out_of_order", t_out_of_order },
	{ "bad_contact_changes_nothing", t_bad_contact_changes_nothing },
	{ "contact_too_long", t_contact_too_long },
	{ "too_many_to_list", t_too_many_to_list },
	{ "q_and_params_kept", t_q_and_params_kept },
	{ "sweep", t_sweep },
	{ "binding_dest", t_binding_dest },
	{ "reload", t_reload },
};

UNIT_MAIN(cases)
