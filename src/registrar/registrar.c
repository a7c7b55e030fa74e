/* registrar.c: REGISTER processing (RFC 3261 §10.3 steps 6–8) and binding expiry. */
#include "registrar/registrar_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/clock.h"

#define REG_MAX_CONTACTS 32 /* Contact values read from one REGISTER */

/* One Contact value of the request, checked and with its expiry settled. */
struct contact_in {
	struct sip_addr a;
	struct str params; /* contact params without expires */
	uint32_t expires;  /* seconds, after clamping */
	uint16_t q;
	struct str instance;     /* +sip.instance as sip_param_get gives it; empty if none */
	struct str regid;        /* reg-id; empty if none, or when outbound does not apply */
	bool flow;               /* an Outbound flow (RFC 5626): instance and reg-id, and the
				    phone supports outbound */
	struct loc_binding *old; /* the binding it replaces (loc_find_binding) */
};

struct registrar {
	struct reg_env env;
	struct contact_in cin[REG_MAX_CONTACTS]; /* scratch for one REGISTER, kept off the stack */
	/* The Date header line of the current second: formatted once a second, not once per
	 * REGISTER (strftime costs more than the rest of the 200's text). */
	int64_t date_sec;
	size_t date_len;
	char date[64];
	struct reg_ping *ping; /* NAT keepalive (ping.c) */
	/* GRUU keys, random per start (registrar.h "GRUU"): temp-gruus are sealed with one,
	 * instances and Call-IDs hashed into them with the other. */
	unsigned char seal_key[crypto_aead_chacha20poly1305_ietf_KEYBYTES];
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
};

int reg_new(struct registrar **rp, const struct reg_env *env)
{
	struct registrar *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->env = *env;
	if (sodium_init() < 0) {
		free(r);
		return -EIO;
	}
	crypto_aead_chacha20poly1305_ietf_keygen(r->seal_key);
	crypto_shorthash_keygen(r->hash_key);
	if (reg__ping_new(&r->ping, &r->env) < 0) {
		free(r);
		return -ENOMEM;
	}
	*rp = r;
	return 0;
}

void reg_free(struct registrar *r)
{
	if (!r)
		return;
	reg__ping_free(r->ping);
	sodium_memzero(r->seal_key, sizeof r->seal_key);
	free(r);
}

void reg_ping(struct registrar *r, unsigned tick_ms)
{
	reg__ping_tick(r->ping, tick_ms);
}

const struct reg_ping_stats *reg_ping_stats(const struct registrar *r)
{
	return reg__ping_stats(r->ping);
}

/* A private address (tp_addr_is_private) or loopback; or a name (or an IPv6 address
 * without its brackets, which a URI may not hold): we cannot know where it points, so the
 * source address is trusted. */
static bool is_private_host(struct str host)
{
	struct tp_addr a;
	if ((host.l && host.p[0] != '[' && str_chr(host, ':') >= 0) || tp_addr_from_host(&a, host, 0) != 0)
		return true;
	if (tp_addr_is_private(&a))
		return true;
	return a.ss.ss_family == AF_INET ? (ntohl(a.ss.in.sin_addr.s_addr) >> 24) == 127
					 : IN6_IS_ADDR_LOOPBACK(&a.ss.in6.sin6_addr);
}

/* The NAT rule (README "Phones behind NAT"): a phone is reached at the address its
 * REGISTER came from when its Via asked for rport (RFC 3581), or when its Contact names a
 * private address or a host name that differs from where the packet really came from. */
static bool use_source(const struct sip_msg *m, const struct sip_uri *uri, const struct tp_source *src)
{
	/* The same rule on streams: a phone that asks for rport or is behind NAT is reached
	 * over its own connection (it may not listen at all); one whose Contact names the
	 * host it connected from, on a port it listens on, gets a connection to that port. */
	if (m->via.has_rport)
		return true;
	/* A WebSocket phone (a browser) cannot be connected to: only its own connection
	 * reaches it, whatever its Contact says (RFC 7118 §5: "abc.invalid"). */
	if (src->proto == TP_WS || src->proto == TP_WSS)
		return true;
	char shost[64];
	tp_addr_host(&src->addr, shost, sizeof shost);
	struct str h = uri->host;
	if (h.l > 2 && h.p[0] == '[')
		h = (struct str){ h.p + 1, h.l - 2 };
	/* Same host: the contact port is the phone's listening port, whatever port it sent from. */
	if (str_caseeq(h, str_from_cstr(shost)))
		return false;
	return is_private_host(uri->host);
}

/* The address the first Path value of b names (RFC 3327: the proxy requests go through),
 * when its host is numeric; -ENOENT otherwise. */
static int path_addr(const struct loc_binding *b, struct tp_addr *a)
{
	struct str rest = loc_b_field(b, LOC_PATH), first;
	struct sip_addr pa;
	if (!sip_list_next(&rest, &first) || sip_addr_parse(&pa, str_trim(first)) < 0)
		return -ENOENT;
	struct str host = pa.uri.maddr.l ? pa.uri.maddr : pa.uri.host;
	return tp_addr_from_host(a, host, pa.uri.port ? pa.uri.port : 5060) == 0 ? 0 : -ENOENT;
}

int reg_binding_dest(const struct loc_binding *b, struct tp_source *dst)
{
	memset(dst, 0, sizeof(*dst));
	dst->proto = (enum tp_proto)b->src.proto;
	/* With a Path, requests go to the proxy it names first (the one the REGISTER came
	 * from, as a rule: then over the same connection), never straight to the contact. */
	if (b->len[LOC_PATH]) {
		struct tp_addr s;
		loc_src_to_addr(&b->src, &s);
		if (path_addr(b, &dst->addr) != 0 || tp_addr_equal(&dst->addr, &s)) {
			dst->addr = s;
			dst->conn_id = b->src.conn_id;
		}
		return 0;
	}
	if (b->flags & LOC_F_USE_SRC) {
		loc_src_to_addr(&b->src, &dst->addr);
		dst->conn_id = b->src.conn_id;
		/* A binding made over a stream is reachable only over its connection (the
		 * phone does not listen on the port it connected from). One loaded from the
		 * store after a restart has none: unusable until the phone registers again. */
		if (dst->proto != TP_UDP && !dst->conn_id)
			return -ENOTCONN;
		return 0;
	}
	int err = reg__contact_addr(b, &dst->addr);
	if (err == -ENOENT) /* a name we cannot resolve here: the source address is the best we know */
		loc_src_to_addr(&b->src, &dst->addr);
	return err == -EINVAL ? err : 0;
}

bool reg_binding_natted(const struct loc_binding *b)
{
	/* Not LOC_F_USE_SRC alone: every phone that asks for rport gets it, NAT or not. */
	struct tp_addr c, s;
	if (reg__contact_addr(b, &c) != 0)
		return false; /* a name: the phone says where it is */
	loc_src_to_addr(&b->src, &s);
	return !tp_addr_same_host(&c, &s) || tp_addr_is_private(&c) != tp_addr_is_private(&s);
}

int reg__contact_addr(const struct loc_binding *b, struct tp_addr *a)
{
	struct sip_uri u;
	if (sip_uri_parse(&u, loc_b_field(b, LOC_URI)) < 0 || u.scheme == SIP_SCHEME_TEL)
		return -EINVAL;
	struct str host = u.maddr.l ? u.maddr : u.host;
	return tp_addr_from_host(a, host, u.port ? u.port : 5060) == 0 ? 0 : -ENOENT;
}

static void reply(struct txn_server *st, unsigned code, const char *reason, struct str extra)
{
	struct sip_resp_opts o = { 0 };
	o.extra = extra;
	txn_server_reply(st, code, reason, &o);
}

/* Copies params without the expires parameter (the 200 states the remaining time), nor
 * GRUUs a phone should not have sent back (the 200 gives its own). */
static struct str strip_expires(struct str params, char *buf, size_t cap)
{
	size_t n = 0, i = 0;
	while (i < params.l) {
		size_t j = i + 1;
		bool q = false;
		while (j < params.l && (q || params.p[j] != ';')) {
			if (params.p[j] == '"')
				q = !q;
			j++;
		}
		struct str one = { params.p + i, j - i }; /* ";name=value" */
		struct str name = { one.p + 1, one.l - 1 };
		long eq = str_chr(name, '=');
		if (eq >= 0)
			name.l = (size_t)eq;
		name = str_trim(name);
		if (!str_caseeq_cstr(name, "expires") && !str_caseeq_cstr(name, "pub-gruu") &&
		    !str_caseeq_cstr(name, "temp-gruu") && n + one.l <= cap) {
			memcpy(buf + n, one.p, one.l);
			n += one.l;
		}
		i = j;
	}
	return (struct str){ buf, n };
}

static uint16_t parse_q(struct str params)
{
	struct str v;
	if (!sip_param_get(params, STR("q"), &v) || v.l == 0)
		return 1000;
	/* q = "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ] */
	unsigned whole = v.p[0] == '1' ? 1000 : 0, frac = 0, scale = 100;
	for (size_t i = 2; i < v.l && i < 5; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			break;
		frac += (unsigned)(v.p[i] - '0') * scale;
		scale /= 10;
	}
	unsigned q = whole ? 1000 : frac;
	return (uint16_t)(q > 1000 ? 1000 : q);
}

/* The reg-id of a flow binding as a number (0: not a flow); read_flow checked it. */
static uint32_t reg_id_of(const struct loc_binding *b)
{
	uint64_t v = 0;
	if (!loc_is_flow(b) || !str_to_u64(loc_b_field(b, LOC_REGID), UINT32_MAX, &v))
		return 0;
	return (uint32_t)v;
}

static void queue_put(struct registrar *r, struct str aor, const struct loc_binding *b)
{
	if (!r->env.store)
		return;
	char host[64];
	struct tp_addr a;
	loc_src_to_addr(&b->src, &a);
	tp_addr_host(&a, host, sizeof host);
	struct store_binding sb = {
		.aor = aor,
		.contact = loc_b_field(b, LOC_URI),
		.src_addr = str_from_cstr(host),
		.src_port = b->src.port,
		.transport = str_from_cstr(tp_proto_name((enum tp_proto)b->src.proto)),
		.path = loc_b_field(b, LOC_PATH),
		.call_id = loc_b_field(b, LOC_CALLID),
		.cseq = b->cseq,
		.q = b->q,
		.expires_at = b->expires_at,
		.user_agent = loc_b_field(b, LOC_UA),
		.instance = loc_b_field(b, LOC_INSTANCE),
		.reg_id = reg_id_of(b),
		.conn_id = b->src.proto != TP_UDP ? b->src.conn_id : 0,
		.params = loc_b_field(b, LOC_PARAMS),
		.flags = b->flags,
	};
	int err = store_binding_put(r->env.store, &sb);
	if (err < 0)
		log_error(r->env.lg, "store", "binding %.*s not queued: %s", STR_FMT(aor), store_errmsg(r->env.store));
}

void reg__queue_del(const struct reg_env *env, const struct loc_binding *b)
{
	struct str aor = loc_aor_key(b->aor);
	if (env->store &&
	    store_flow_del(env->store, aor, loc_b_field(b, LOC_URI), loc_b_field(b, LOC_INSTANCE), reg_id_of(b)) < 0)
		log_error(env->lg, "store", "binding removal %.*s not queued: %s", STR_FMT(aor),
			  store_errmsg(env->store));
}

static void queue_del(struct registrar *r, const struct loc_binding *b)
{
	reg__queue_del(&r->env, b);
}

unsigned reg_unbind(struct registrar *r, struct str aor, struct str contact)
{
	struct loc_aor *a = loc_find(r->env.loc, aor);
	unsigned n = 0;
	struct loc_binding *b = a ? a->first : NULL;
	while (b) {
		struct loc_binding *next = b->next;
		bool last = next == NULL;
		if (str_eq(loc_b_field(b, LOC_URI), contact)) {
			queue_del(r, b);
			loc_del(r->env.loc, b); /* frees the AOR with its last binding */
			n++;
		}
		if (last)
			break;
		b = next;
	}
	if (n)
		log_info(r->env.lg, "register", "unregistered %.*s contact %.*s: removed by an admin (HTTP API)",
			 STR_FMT(aor), STR_FMT(contact));
	return n;
}

/* ---- GRUU ---------------------------------------------------------------------------------- */

#define TGR_PREFIX "tgr-"
#define TGR_HASHES 16 /* instance and Call-ID hashes before the AOR in a temp-gruu */

static uint64_t hash64(const struct registrar *r, struct str s)
{
	unsigned char h[crypto_shorthash_BYTES];
	crypto_shorthash(h, (const unsigned char *)s.p, s.l, r->hash_key);
	uint64_t v;
	memcpy(&v, h, sizeof v);
	return v;
}

/* The instance URN without the quotes and angle brackets it is written in. */
static struct str urn_of(struct str inst)
{
	if (inst.l >= 2 && inst.p[0] == '"' && inst.p[inst.l - 1] == '"')
		inst = (struct str){ inst.p + 1, inst.l - 2 };
	if (inst.l >= 2 && inst.p[0] == '<' && inst.p[inst.l - 1] == '>')
		inst = (struct str){ inst.p + 1, inst.l - 2 };
	return inst;
}

/* Writes ;pub-gruu="..." and a new ;temp-gruu="..." for binding b of aor (RFC 5627 §5.4):
 * the temp-gruu seals (instance hash, Call-ID hash, AOR) under a fresh random nonce. */
static void out_gruus(const struct registrar *r, struct sip_out *o, struct str aor, const struct loc_binding *b)
{
	struct str urn = urn_of(loc_b_field(b, LOC_INSTANCE));
	long at = str_chr(aor, '@');
	if (!urn.l || at < 0 || aor.l > 200)
		return;
	sip_out_cstr(o, ";pub-gruu=\"sip:");
	sip_out_str(o, aor);
	sip_out_cstr(o, ";gr=");
	sip_out_str(o, urn);
	sip_out_cstr(o, "\"");
	enum { NL = crypto_aead_chacha20poly1305_ietf_NPUBBYTES, TL = crypto_aead_chacha20poly1305_ietf_ABYTES };
	unsigned char plain[TGR_HASHES + 200], sealed[NL + sizeof plain + TL];
	uint64_t ih = hash64(r, loc_b_field(b, LOC_INSTANCE)), ch = hash64(r, loc_b_field(b, LOC_CALLID));
	memcpy(plain, &ih, 8);
	memcpy(plain + 8, &ch, 8);
	memcpy(plain + TGR_HASHES, aor.p, aor.l);
	randombytes_buf(sealed, NL);
	unsigned long long sl;
	crypto_aead_chacha20poly1305_ietf_encrypt(sealed + NL, &sl, plain, TGR_HASHES + aor.l, NULL, 0, NULL, sealed,
						  r->seal_key);
	char hex[2 * sizeof sealed + 1];
	sodium_bin2hex(hex, sizeof hex, sealed, NL + (size_t)sl);
	sip_out_cstr(o, ";temp-gruu=\"sip:" TGR_PREFIX);
	sip_out_cstr(o, hex);
	sip_out_cstr(o, "@");
	sip_out_str(o, (struct str){ aor.p + at + 1, aor.l - (size_t)at - 1 });
	sip_out_cstr(o, ";gr\"");
}

bool reg_gruu_parse(const struct registrar *r, const struct sip_uri *u, struct str domain, struct reg_gruu *g)
{
	struct str gr;
	memset(g, 0, sizeof(*g));
	if (!sip_param_get(u->params, STR("gr"), &gr))
		return false;
	size_t pl = sizeof TGR_PREFIX - 1;
	if (gr.l) { /* pub-gruu: the AOR and the instance, in the clear */
		if (u->user.l + 1 + domain.l > sizeof g->aor)
			return false;
		memcpy(g->aor, u->user.p, u->user.l);
		g->aor[u->user.l] = '@';
		memcpy(g->aor + u->user.l + 1, domain.p, domain.l);
		g->aor_l = u->user.l + 1 + domain.l;
		g->urn = gr;
		return true;
	}
	enum { NL = crypto_aead_chacha20poly1305_ietf_NPUBBYTES, TL = crypto_aead_chacha20poly1305_ietf_ABYTES };
	unsigned char sealed[NL + TGR_HASHES + sizeof g->aor + TL], plain[TGR_HASHES + sizeof g->aor];
	size_t sl;
	if (u->user.l <= pl || !str_caseeq(STR(TGR_PREFIX), (struct str){ u->user.p, pl }) ||
	    (u->user.l - pl) / 2 > sizeof sealed ||
	    sodium_hex2bin(sealed, sizeof sealed, u->user.p + pl, u->user.l - pl, NULL, &sl, NULL) != 0 ||
	    sl < NL + TGR_HASHES + TL)
		return false;
	unsigned long long n;
	if (crypto_aead_chacha20poly1305_ietf_decrypt(plain, &n, NULL, sealed + NL, sl - NL, NULL, 0, sealed,
						      r->seal_key) != 0 ||
	    n <= TGR_HASHES)
		return false;
	memcpy(&g->inst_hash, plain, 8);
	memcpy(&g->callid_hash, plain + 8, 8);
	g->aor_l = (size_t)n - TGR_HASHES;
	memcpy(g->aor, plain + TGR_HASHES, g->aor_l);
	g->temp = true;
	return true;
}

bool reg_gruu_phone(const struct registrar *r, const struct reg_gruu *g, const struct loc_binding *b)
{
	struct str inst = loc_b_field(b, LOC_INSTANCE);
	if (!inst.l)
		return false;
	return g->temp ? hash64(r, inst) == g->inst_hash : str_caseeq(urn_of(inst), g->urn);
}

bool reg_gruu_valid(const struct registrar *r, const struct reg_gruu *g, const struct loc_aor *a, uint32_t now)
{
	for (const struct loc_binding *b = a ? a->first : NULL; b; b = b->next)
		if (b->expires_at > now && reg_gruu_phone(r, g, b) &&
		    (!g->temp || hash64(r, loc_b_field(b, LOC_CALLID)) == g->callid_hash))
			return true;
	return false;
}

/* Writes the 200's Contact lines: every live binding with its remaining time, and its
 * GRUUs when the phone asked for them (gruu). */
static void list_bindings(const struct registrar *r, struct sip_out *o, struct loc_aor *a, uint32_t now, bool gruu)
{
	for (struct loc_binding *b = a ? a->first : NULL; b; b = b->next) {
		if (b->expires_at <= now)
			continue;
		sip_out_cstr(o, "Contact: <");
		sip_out_str(o, loc_b_field(b, LOC_URI));
		sip_out_cstr(o, ">");
		sip_out_str(o, loc_b_field(b, LOC_PARAMS));
		if (gruu && b->len[LOC_INSTANCE])
			out_gruus(r, o, loc_aor_key(a), b);
		sip_out_cstr(o, ";expires=");
		sip_out_u64(o, b->expires_at - now);
		sip_out_cstr(o, "\r\n");
	}
}

static unsigned live_count(const struct loc_aor *a, uint32_t now)
{
	unsigned n = 0;
	for (const struct loc_binding *b = a ? a->first : NULL; b; b = b->next)
		n += b->expires_at > now;
	return n;
}

/* The longest contact (URI and parameters) a phone may register, and what the list of
 * bindings in a 200 may take: "Contact: <", ">", ";expires=" and its digits and CRLF per
 * binding, and room for the Date line. */
#define CONTACT_MAX 1024u
#define LIST_MAX 16384u
#define LIST_PER_BINDING 36u
#define LIST_SLACK 64u
/* What a binding's pub-gruu and temp-gruu add: the AOR three times (twice hex-encoded),
 * the instance, and the rest of their text (out_gruus). */
#define GRUU_LEN(aor_l, inst_l) (3 * (aor_l) + (inst_l) + 160u)

/* The Path values (RFC 3327) a binding keeps, joined: room enough for a few proxies. */
#define PATH_MAX_LEN 1024u
/* Flow-Timer (RFC 5626 §4.4): how often a phone should send its keepalive, in seconds.
 * README "Outbound": under the shortest NAT UDP timeouts seen in practice (30 s) for
 * datagrams, and well under tcp-idle-timeout (300 s) and NAT TCP timeouts for streams. */
#define FLOW_TIMER_UDP 25u
#define FLOW_TIMER_STREAM 120u

/* One REGISTER on its way through the steps below: what they read and what they leave for
 * the next one. It lives on reg_handle's stack; the Contact values are in r->cin. */
struct reg_req {
	struct registrar *r;
	struct txn_server *st;
	const struct sip_msg *m;
	const struct tp_source *src;
	struct str aor;
	uint32_t now;
	unsigned nc;                        /* Contact values read into r->cin */
	bool star;                          /* one of them is '*' */
	struct loc_aor *a;                  /* the AOR's bindings; NULL when it has none */
	unsigned added, refreshed, removed; /* what apply did, for the log line */
	bool outbound;                      /* Supported: outbound */
	bool gruu;                          /* Supported: gruu (RFC 5627) */
	unsigned flows;                     /* Outbound flows registered (not removed) */
	struct str path;                    /* the Path values, joined with ", " */
	char path_buf[PATH_MAX_LEN];
	uint32_t shown_exp; /* expiry of the last contact written, for the log line */
	char src_buf[80];   /* the source address as text, once src_txt made it */
};

/* Returns the source address as text, made only when a log line wants it. */
static const char *src_txt(struct reg_req *q)
{
	if (q->src_buf[0])
		return q->src_buf;
	tp_addr_str(&q->src->addr, q->src_buf, sizeof q->src_buf);
	/* The transport too when it is a stream: a phone on TCP or TLS is reached over it. */
	size_t l = strlen(q->src_buf);
	if (q->src->proto != TP_UDP)
		snprintf(q->src_buf + l, sizeof q->src_buf - l, " over %s", tp_proto_name(q->src->proto));
	return q->src_buf;
}

/* Whether a Supported (or Require) header of m lists option tag. */
static bool has_option(const struct sip_msg *m, enum sip_hdr_id id, const char *tag)
{
	for (const struct sip_hdr *h = sip_msg_hdr(m, id); h; h = sip_msg_hdr_next(m, h)) {
		struct str rest = h->value, it;
		while (sip_list_next(&rest, &it))
			if (str_caseeq_cstr(str_trim(it), tag))
				return true;
	}
	return false;
}

/* Reads the +sip.instance and reg-id of contact c (RFC 5626 §6): a flow when the phone
 * supports outbound and gives both; reg-id must be 1 to 2^31-1, and one REGISTER may name
 * each flow once. Returns 0, or -1 when it has answered. */
static int read_flow(struct reg_req *q, struct contact_in *c)
{
	struct str inst, regid;
	if (sip_param_get(c->a.params, STR("+sip.instance"), &inst) && inst.l)
		c->instance = inst;
	if (!sip_param_get(c->a.params, STR("reg-id"), &regid))
		return 0;
	uint64_t v;
	if (!str_to_u64(regid, 2147483647u, &v) || v == 0) {
		reply(q->st, 400, "Bad reg-id", STR_NULL);
		return -1;
	}
	if (!q->outbound || !c->instance.l)
		return 0; /* RFC 5626 §6: without both, the contact is an ordinary one */
	c->regid = regid;
	c->flow = true;
	for (unsigned k = 0; k < q->nc; k++)
		if (q->r->cin[k].flow && str_eq(q->r->cin[k].instance, c->instance) &&
		    str_eq(q->r->cin[k].regid, regid)) {
			reply(q->st, 400, "Flow Registered Twice", STR_NULL);
			return -1;
		}
	return 0;
}

/* Step 6: parses every Contact value into r->cin and settles its expiry, so that the
 * steps after it work on checked values only. Returns 0, or -1 when it has answered. */
static int read_contacts(struct reg_req *q)
{
	struct registrar *r = q->r;
	const struct reg_cfg *cfg = r->env.cfg;
	const struct sip_msg *m = q->m;
	struct txn_server *st = q->st;
	struct contact_in *cin = r->cin;
	int64_t hdr_exp = m->expires;

	for (const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_CONTACT); h; h = sip_msg_hdr_next(m, h)) {
		struct str rest = h->value, item;
		while (sip_list_next(&rest, &item)) {
			if (q->nc == REG_MAX_CONTACTS) {
				reply(st, 403, "Too Many Contacts", STR_NULL);
				return -1;
			}
			struct contact_in *c = &cin[q->nc];
			memset(c, 0, sizeof(*c));
			if (sip_addr_parse(&c->a, item) < 0) {
				reply(st, 400, "Bad Contact", STR_NULL);
				return -1;
			}
			if (c->a.star) {
				q->star = true;
				q->nc++;
				continue;
			}
			if (c->a.uri.scheme != SIP_SCHEME_SIP && c->a.uri.scheme != SIP_SCHEME_SIPS) {
				reply(st, 400, "Contact Must Be a SIP URI", STR_NULL);
				return -1;
			}
			if (c->a.uri_str.l + c->a.params.l > CONTACT_MAX) {
				log_info(r->env.lg, "register",
					 "refused %.*s from %s: a contact of %zu bytes (at most %u)", STR_FMT(q->aor),
					 src_txt(q), c->a.uri_str.l + c->a.params.l, CONTACT_MAX);
				reply(st, 400, "Contact Too Long", STR_NULL);
				return -1;
			}
			struct str ev;
			int64_t exp;
			uint64_t v;
			/* A number too large for us is still this contact's expiry, cut to
			 * max-expires below, not a reason to fall back to the header. */
			if (sip_param_get(c->a.params, STR("expires"), &ev) && str_to_u64(ev, UINT64_MAX, &v))
				exp = v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
			else if (hdr_exp >= 0)
				exp = hdr_exp;
			else
				exp = cfg->default_expires;
			if (exp > 0 && exp < (int64_t)cfg->min_expires) {
				char extra[64];
				int n = snprintf(extra, sizeof extra, "Min-Expires: %u\r\n", cfg->min_expires);
				log_info(r->env.lg, "register", "refused %.*s from %s: expiry %lld below %u",
					 STR_FMT(q->aor), src_txt(q), (long long)exp, cfg->min_expires);
				reply(st, 423, "Interval Too Brief", (struct str){ extra, (size_t)n });
				return -1;
			}
			if (exp > (int64_t)cfg->max_expires)
				exp = cfg->max_expires;
			c->expires = (uint32_t)exp;
			c->q = parse_q(c->a.params);
			if (read_flow(q, c) < 0)
				return -1;
			q->nc++;
		}
	}
	return 0;
}

/* Joins the Path values (RFC 3327 §5.3: kept with the bindings, in order) into q->path.
 * Returns 0, or -1 when it has answered. */
static int read_path(struct reg_req *q)
{
	struct sip_out o;
	sip_out_init(&o, q->path_buf, sizeof q->path_buf);
	for (const struct sip_hdr *h = sip_msg_hdr(q->m, SIP_HDR_PATH); h; h = sip_msg_hdr_next(q->m, h)) {
		struct str rest = h->value, it;
		while (sip_list_next(&rest, &it)) {
			struct sip_addr pa;
			if (sip_addr_parse(&pa, str_trim(it)) < 0 || pa.star ||
			    (pa.uri.scheme != SIP_SCHEME_SIP && pa.uri.scheme != SIP_SCHEME_SIPS)) {
				reply(q->st, 400, "Bad Path", STR_NULL);
				return -1;
			}
			if (o.len)
				sip_out_cstr(&o, ", ");
			sip_out_str(&o, str_trim(it));
		}
	}
	if (o.overflow) {
		log_info(q->r->env.lg, "register", "refused %.*s from %s: Path longer than %u bytes", STR_FMT(q->aor),
			 src_txt(q), PATH_MAX_LEN);
		reply(q->st, 400, "Path Too Long", STR_NULL);
		return -1;
	}
	q->path = (struct str){ o.p, o.len };
	return 0;
}

/* RFC 5626 §6: flows are only kept when the first hop (the edge that holds the phone's
 * connection) supports outbound: that is us when the REGISTER came straight from the
 * phone (one Via), else the proxy whose Path comes first and carries ;ob. Returns 0, or
 * -1 when it has answered 439. */
static int check_first_hop(struct reg_req *q)
{
	bool flow = false;
	for (unsigned i = 0; i < q->nc; i++)
		flow |= q->r->cin[i].flow && q->r->cin[i].expires > 0;
	if (!flow)
		return 0;
	unsigned vias = 0;
	for (const struct sip_hdr *h = sip_msg_hdr(q->m, SIP_HDR_VIA); h; h = sip_msg_hdr_next(q->m, h)) {
		struct str rest = h->value, it;
		while (sip_list_next(&rest, &it))
			vias++;
	}
	if (vias <= 1)
		return 0;
	struct str rest = q->path, first;
	struct sip_addr pa;
	if (sip_list_next(&rest, &first) && sip_addr_parse(&pa, str_trim(first)) == 0 &&
	    sip_param_get(pa.uri.params, STR("ob"), &(struct str){ 0 }))
		return 0;
	log_info(q->r->env.lg, "register", "refused %.*s from %s: a flow through a first hop without outbound",
		 STR_FMT(q->aor), src_txt(q));
	reply(q->st, 439, "First Hop Lacks Outbound Support", STR_NULL);
	return -1;
}

/* Step 6 for '*': removes every binding of the AOR and answers, because Contact: * with
 * Expires: 0 means "unregister all" and nothing else may come with it. Always answers. */
static void do_wildcard(struct reg_req *q)
{
	struct registrar *r = q->r;
	struct location *loc = r->env.loc;
	const struct sip_msg *m = q->m;
	struct loc_aor *a = q->a;

	if (q->nc != 1 || m->expires != 0) {
		reply(q->st, 400, "Invalid Wildcard Contact", STR_NULL);
		return;
	}
	/* Every binding goes, unless one was written later by the same phone (same Call-ID,
	 * higher or equal CSeq), in which case nothing changes. */
	for (struct loc_binding *b = a ? a->first : NULL; b; b = b->next)
		if (b->expires_at > q->now && str_eq(loc_b_field(b, LOC_CALLID), m->call_id) && m->cseq <= b->cseq) {
			log_info(r->env.lg, "register", "refused %.*s from %s: CSeq %u not above %u", STR_FMT(q->aor),
				 src_txt(q), m->cseq, b->cseq);
			reply(q->st, 500, "Out of Order Request", STR_NULL);
			return;
		}
	unsigned removed = 0;
	while (a && a->first) {
		struct loc_binding *b = a->first;
		bool last = b->next == NULL;
		queue_del(r, b);
		loc_del(loc, b);
		removed++;
		if (last)
			break;
	}
	log_info(r->env.lg, "register", "unregistered %.*s from %s: all %u bindings removed", STR_FMT(q->aor),
		 src_txt(q), removed);
	reply(q->st, 200, "OK", STR_NULL);
}

/* Step 7's checks: the Call-ID/CSeq rule for each contact, max-contacts, and whether the
 * 200 could list the result, all before anything changes, so that the update is all or
 * nothing. Sets each contact's old binding. Returns 0, or -1 when it has answered. */
static int check_update(struct reg_req *q)
{
	struct registrar *r = q->r;
	const struct reg_cfg *cfg = r->env.cfg;
	const struct sip_msg *m = q->m;
	struct contact_in *cin = r->cin;
	struct loc_aor *a = q->a;
	uint32_t now = q->now;
	unsigned nc = q->nc;

	unsigned adds = 0, dels = 0, live = live_count(a, now);
	for (unsigned i = 0; i < nc; i++) {
		struct contact_in *c = &cin[i];
		c->old = loc_find_binding(a, c->a.uri_str, c->instance, c->regid);
		if (c->old && c->old->expires_at > now && str_eq(loc_b_field(c->old, LOC_CALLID), m->call_id) &&
		    m->cseq <= c->old->cseq) {
			log_info(r->env.lg, "register", "refused %.*s from %s: CSeq %u not above %u", STR_FMT(q->aor),
				 src_txt(q), m->cseq, c->old->cseq);
			reply(q->st, 500, "Out of Order Request", STR_NULL);
			return -1;
		}
		bool alive = c->old && c->old->expires_at > now;
		if (c->expires == 0 && alive)
			dels++;
		else if (c->expires > 0 && !alive)
			adds++;
	}
	if (live + adds - dels > cfg->max_contacts) {
		log_info(r->env.lg, "register", "refused %.*s from %s: more than %u contacts", STR_FMT(q->aor),
			 src_txt(q), cfg->max_contacts);
		reply(q->st, 403, "Too Many Contacts", STR_NULL);
		return -1;
	}
	/* The 200 must list every binding: when the list would not fit, refuse now, before
	 * anything is changed, rather than after (the update is all or nothing). */
	size_t need = LIST_SLACK;
	for (const struct loc_binding *b = a ? a->first : NULL; b; b = b->next) {
		if (b->expires_at <= now)
			continue;
		bool replaced = false;
		for (unsigned i = 0; i < nc && !replaced; i++)
			replaced = cin[i].old == b;
		if (!replaced)
			need += loc_b_field(b, LOC_URI).l + loc_b_field(b, LOC_PARAMS).l + LIST_PER_BINDING +
				(q->gruu && b->len[LOC_INSTANCE] ? GRUU_LEN(q->aor.l, b->len[LOC_INSTANCE]) : 0);
	}
	for (unsigned i = 0; i < nc; i++)
		if (cin[i].expires > 0)
			need += cin[i].a.uri_str.l + cin[i].a.params.l + LIST_PER_BINDING +
				(q->gruu && cin[i].instance.l ? GRUU_LEN(q->aor.l, cin[i].instance.l) : 0);
	need += q->path.l + LIST_SLACK; /* Path, Require and Flow-Timer lines */
	if (need > LIST_MAX) {
		log_info(r->env.lg, "register",
			 "refused %.*s from %s: the bindings would need %zu bytes to list (at most %u)",
			 STR_FMT(q->aor), src_txt(q), need, LIST_MAX);
		reply(q->st, 403, "Too Many Bindings to List", STR_NULL);
		return -1;
	}
	return 0;
}

/* Step 7's update: writes each contact to the location table (expiry 0 removes it) and
 * queues it for the store, so that memory answers at once and the disk follows behind.
 * Counts what it did in q. Returns 0, or -1 when it has answered. */
static int apply(struct reg_req *q)
{
	struct registrar *r = q->r;
	struct location *loc = r->env.loc;
	const struct sip_msg *m = q->m;
	const struct tp_source *src = q->src;
	struct contact_in *cin = r->cin;
	struct str aor = q->aor;
	uint32_t now = q->now;
	unsigned nc = q->nc;

	const struct sip_hdr *ua = sip_msg_hdr(m, SIP_HDR_USER_AGENT);
	struct str path = q->path;
	for (unsigned i = 0; i < nc; i++) {
		struct contact_in *c = &cin[i];
		if (c->expires == 0) {
			if (c->old) {
				queue_del(r, c->old);
				loc_del(loc, c->old);
				q->a = loc_find(loc, aor);
				/* Other contact_in entries may point at bindings of a; they are
				 * looked up again below by URI. */
				for (unsigned k = i + 1; k < nc; k++)
					cin[k].old =
						loc_find_binding(q->a, cin[k].a.uri_str, cin[k].instance, cin[k].regid);
				q->removed++;
			}
			continue;
		}
		char pbuf[1024];
		struct loc_contact lc = { 0 };
		lc.field[LOC_URI] = c->a.uri_str;
		lc.field[LOC_PARAMS] = strip_expires(c->a.params, pbuf, sizeof pbuf);
		lc.field[LOC_CALLID] = m->call_id;
		lc.field[LOC_UA] = ua ? ua->value : STR_NULL;
		lc.field[LOC_PATH] = path;
		lc.field[LOC_INSTANCE] = c->instance;
		lc.field[LOC_REGID] = c->regid;
		lc.expires_at = now + c->expires;
		lc.cseq = m->cseq;
		lc.q = c->q;
		loc_src_from_addr(&lc.src, &src->addr, src->proto);
		lc.src.conn_id = src->conn_id;
		lc.flags = use_source(m, &c->a.uri, src) ? LOC_F_USE_SRC : 0;
		/* A flow is reached over the connection (or from the address) it came on,
		 * whatever its Contact says (RFC 5626 §5.3). */
		if (c->flow) {
			lc.flags |= LOC_F_USE_SRC | LOC_F_OUTBOUND;
			q->flows++;
		}
		/* The connection stays open as long as the binding may be used. */
		if (src->conn_id)
			tp_conn_hold(r->env.tp, src->conn_id, c->expires);
		bool was = c->old && c->old->expires_at > now;
		struct loc_binding *nb;
		if (loc_put(loc, aor, &lc, &nb) < 0) {
			reply(q->st, 500, "Out of Memory", STR_NULL);
			return -1;
		}
		q->a = nb->aor;
		for (unsigned k = i + 1; k < nc; k++)
			cin[k].old = loc_find_binding(q->a, cin[k].a.uri_str, cin[k].instance, cin[k].regid);
		queue_put(r, aor, nb);
		if (was)
			q->refreshed++;
		else
			q->added++;
		q->shown_exp = c->expires;
	}
	return 0;
}

/* Step 8: logs the outcome and answers 200 listing every binding with its remaining time
 * and a Date, because the phone learns its bindings only from this answer. */
static void reply_ok(struct reg_req *q)
{
	struct registrar *r = q->r;
	uint32_t now = q->now;

	char extra[LIST_MAX];
	struct sip_out o;
	sip_out_init(&o, extra, sizeof extra);
	list_bindings(r, &o, q->a, now, q->gruu);
	/* RFC 5626 §6: the phone learns that its flows were kept, and how often to keep
	 * them alive (the transport it registered over decides: datagrams need more). */
	if (q->flows) {
		sip_out_cstr(&o, "Require: outbound\r\nFlow-Timer: ");
		sip_out_u64(&o, q->src->proto == TP_UDP ? FLOW_TIMER_UDP : FLOW_TIMER_STREAM);
		sip_out_cstr(&o, "\r\n");
	}
	/* RFC 3327 §5.3: the Path stored is echoed to a phone that understands it. */
	if (q->path.l && has_option(q->m, SIP_HDR_SUPPORTED, "path")) {
		sip_out_cstr(&o, "Path: ");
		sip_out_str(&o, q->path);
		sip_out_cstr(&o, "\r\n");
	}
	if (r->date_len == 0 || r->date_sec != (int64_t)now) {
		time_t t = (time_t)now;
		struct tm tm;
		gmtime_r(&t, &tm);
		r->date_len = strftime(r->date, sizeof r->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		r->date_sec = (int64_t)now;
	}
	sip_out_str(&o, (struct str){ r->date, r->date_len });
	if (o.overflow) {
		reply(q->st, 500, "Too Many Bindings to List", STR_NULL);
		return;
	}
	unsigned total = live_count(q->a, now);
	if (q->nc == 0)
		log_info(r->env.lg, "register", "query %.*s from %s: %u bindings", STR_FMT(q->aor), src_txt(q), total);
	else if (q->added || q->refreshed)
		log_info(r->env.lg, "register",
			 "registered %.*s from %s: %u new, %u refreshed, %u removed, %u bindings, expires %u s",
			 STR_FMT(q->aor), src_txt(q), q->added, q->refreshed, q->removed, total, q->shown_exp);
	else
		log_info(r->env.lg, "register", "unregistered %.*s from %s: %u removed, %u bindings left",
			 STR_FMT(q->aor), src_txt(q), q->removed, total);
	/* Logged first, answered second: whoever sees the 200 finds the log line written. */
	reply(q->st, 200, "OK", (struct str){ o.p, o.len });
}

void reg_handle(struct registrar *r, struct txn_server *st, const struct sip_msg *m, const struct tp_source *src,
		struct str aor, uint32_t now)
{
	struct reg_req q = { .r = r, .st = st, .m = m, .src = src, .aor = aor, .now = now };
	q.outbound = has_option(m, SIP_HDR_SUPPORTED, "outbound");
	q.gruu = has_option(m, SIP_HDR_SUPPORTED, "gruu");

	if (read_path(&q) < 0 || read_contacts(&q) < 0)
		return;
	q.a = loc_find(r->env.loc, aor);
	if (q.star) {
		do_wildcard(&q);
		return;
	}
	if (check_first_hop(&q) < 0 || check_update(&q) < 0 || apply(&q) < 0)
		return;
	reply_ok(&q);
}

struct load_ctx {
	struct registrar *r;
	long n;
};

static int load_one(const struct store_binding *sb, void *arg)
{
	struct load_ctx *lc = arg;
	struct loc_contact c = { 0 };
	c.field[LOC_URI] = sb->contact;
	c.field[LOC_PARAMS] = sb->params;
	c.field[LOC_CALLID] = sb->call_id;
	c.field[LOC_UA] = sb->user_agent;
	c.field[LOC_PATH] = sb->path;
	c.field[LOC_INSTANCE] = sb->instance;
	char regid[16];
	if (sb->reg_id && sb->instance.l)
		c.field[LOC_REGID] = (struct str){ regid, (size_t)snprintf(regid, sizeof regid, "%u", sb->reg_id) };
	c.expires_at = (uint32_t)sb->expires_at;
	c.cseq = sb->cseq;
	c.q = sb->q;
	c.flags = sb->flags;
	struct tp_addr a;
	enum tp_proto proto = TP_UDP;
	tp_proto_from_str(sb->transport, &proto);
	if (tp_addr_from_host(&a, sb->src_addr, sb->src_port) == 0)
		loc_src_from_addr(&c.src, &a, proto);
	struct loc_binding *nb;
	if (loc_put(lc->r->env.loc, sb->aor, &c, &nb) == 0) {
		lc->n++;
		/* The connection of a stream binding did not survive the restart: the row
		 * says so from now on (`parley reg list`). */
		if (sb->conn_id)
			queue_put(lc->r, sb->aor, nb);
	}
	return 0;
}

long reg_load(struct registrar *r, uint32_t now)
{
	if (!r->env.store)
		return 0;
	struct load_ctx lc = { r, 0 };
	int err = store_bindings_load(r->env.store, now, load_one, &lc);
	return err < 0 ? err : lc.n;
}

static void expired(const struct loc_binding *b, void *arg)
{
	struct registrar *r = arg;
	struct str aor = loc_aor_key(b->aor);
	queue_del(r, b);
	log_info(r->env.lg, "register", "expired %.*s contact %.*s", STR_FMT(aor), STR_FMT(loc_b_field(b, LOC_URI)));
}

void reg_sweep(struct registrar *r, uint32_t now)
{
	/* A slice per call keeps each tick short; the whole table is covered every few
	 * seconds (README: expired bindings vanish within ~5 s of their expiry). */
	size_t n = loc_aor_count(r->env.loc);
	unsigned budget = (unsigned)(n / 16 + 1024);
	loc_sweep(r->env.loc, now, budget, expired, r);
}
