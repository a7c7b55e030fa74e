/* media.c: the relay policy and the offer/answer of relayed calls through rtpengine (ng protocol). */
#include "media/media_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/khash.h"

/* A relayed call with no SDP exchange for this long is forgotten (and deleted in
 * rtpengine), like an idle dialog (dialog.h): a phone that vanished never sends its BYE. */
#define MEDIA_IDLE_MS (12ull * 3600 * 1000)
#define MEDIA_MIN_BUCKETS 64
/* Room for one ng command: the SDP plus the keys around it. */
#define NG_CMD_MAX (SDP_MAX_LEN + 2048)

enum leg { CALLER = 0, CALLEE = 1 };

/* A relayed call, by Call-ID. */
struct mcall {
	struct mcall *next; /* bucket chain */
	struct media *md;
	uint64_t hash;
	int ng;               /* the rtpengine it sticks to */
	bool webrtc[2];       /* each leg's kind: WebRTC (ICE, DTLS-SRTP) or plain RTP */
	uint32_t invite_cseq; /* the INVITE that opened the call: its forks' answers carry via-branch */
	uint32_t offer_cseq;  /* the request whose offer went through rtpengine last */
	enum leg offer_side;  /* who sent that request */
	bool late;            /* its offer came in the response: the answer comes in the ACK */
	uint64_t held;        /* the message being rewritten now: its retransmissions wait */
	const char *why;      /* why it is relayed (media_wanted), for the log */
	uint64_t last_in;     /* the last message rewritten, and rtpengine's SDP for it: */
	char *last_sdp;       /* a retransmission gets the same without asking again */
	size_t last_sdp_len;
	struct timer life;
	struct str call_id, caller_tag; /* views into text */
	char text[];
};

/* One ng command in flight. OP_DROP is a delete whose figures nobody wants (the forks of
 * a call whose other offers failed). */
enum op_kind { OP_OFFER, OP_HELD, OP_DELETE, OP_DROP };
struct op {
	struct op *prev, *next;
	bool linked; /* in md->ops: its reply is awaited */
	struct media *md;
	enum op_kind kind;
	uint64_t handle;
	struct offer *grp;   /* OP_OFFER: the call's offers, which own the op */
	unsigned fork;       /* OP_OFFER: which of them */
	uint64_t cb_tag;     /* OP_DELETE, OP_DROP: the instance */
	uint64_t in;         /* OP_HELD: the message's hash (mcall.held) */
	bool offer, in_resp; /* OP_HELD: an offer (else an answer); the SDP is in a response */
	enum leg sender;
	struct tp_source src; /* OP_HELD: where the message came from */
	struct str call_id;   /* views into text */
	size_t len;           /* OP_HELD: the message; OP_OFFER: the command (tried again on
				 another rtpengine when one fails) */
	char text[];
};

/* The offers of a new call, one per fork, answered to the router together. */
struct offer {
	struct offer *prev, *next; /* md->offers */
	media_offer_h *cb;
	void *cb_arg;
	uint64_t cb_tag;
	unsigned n, left; /* forks; replies still awaited */
	int err;          /* the first failure: -errno (no answer, refused), 1 an error answered */
	char why[200];
	struct op *fork[MEDIA_MAX_FORKS];
	struct str sdp[MEDIA_MAX_FORKS]; /* rtpengine's SDP for each fork (malloc'd) */
	struct str call_id;              /* view into text */
	char text[];
};

struct media {
	struct media_env env;
	struct ng *ng; /* NULL: no rtpengine was ever configured */
	bool active;   /* new calls may be relayed: media is not never and an rtpengine is in
			* [media] (a reload may turn it off while relayed calls go on) */
	struct khash hk;
	struct mcall **bucket;
	size_t nbucket;
	struct op *ops;
	struct offer *offers;
	struct media_stats stats;
	struct timer_wheel *w;
	char cmd[NG_CMD_MAX];  /* scratch: the command being built */
	char out[SIP_MAX_MSG]; /* scratch: a message with its new SDP */
};

/* ---- life ----------------------------------------------------------------------------------- */

/* Every --rtpengine of c parsed into t; 0 or -EINVAL with err naming the problem. */
static int targets(const struct media_cfg *c, struct ng_target *t, char *err, size_t errlen)
{
	for (unsigned i = 0; i < c->nrtpengine; i++)
		if (ng_target_parse(c->rtpengine[i], &t[i], err, errlen) < 0)
			return -EINVAL;
	return 0;
}

/* The ng client for t[0..n) on md's loop; 0 or -errno with err saying why. */
static int open_ng(struct media *md, const struct ng_target *t, unsigned n, char *err, size_t errlen)
{
	struct ng_env ne = { .loop = md->env.loop, .lg = md->env.lg, .timeout_ms = md->env.cfg->timeout_ms };
	int e = ng_new(&md->ng, &ne, t, n);
	if (e < 0)
		snprintf(err, errlen, "rtpengine control socket: %s", strerror(-e));
	return e;
}

int media_new(struct media **mp, const struct media_env *env, char *err, size_t errlen)
{
	struct media *md = calloc(1, sizeof(*md));
	if (!md) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	md->env = *env;
	md->w = env->loop ? loop_timers(env->loop) : NULL;
	md->bucket = calloc(MEDIA_MIN_BUCKETS, sizeof(*md->bucket));
	if (!md->bucket || khash_init(&md->hk) < 0) {
		free(md->bucket);
		free(md);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	md->nbucket = MEDIA_MIN_BUCKETS;
	const struct media_cfg *c = env->cfg;
	if (c && c->nrtpengine && c->mode != MEDIA_NEVER && env->loop) {
		struct ng_target t[MEDIA_MAX_NG];
		int e = targets(c, t, err, errlen);
		if (!e)
			e = open_ng(md, t, c->nrtpengine, err, errlen);
		if (e < 0) {
			media_free(md);
			return e;
		}
		md->active = true;
	}
	*mp = md;
	return 0;
}

/* Calls in progress that use instance idx. */
static unsigned calls_on(const struct media *md, int idx)
{
	unsigned n = 0;
	for (size_t i = 0; i < md->nbucket; i++)
		for (const struct mcall *k = md->bucket[i]; k; k = k->next)
			n += k->ng == idx;
	return n;
}

int media_reload(struct media *md, char *err, size_t errlen)
{
	const struct media_cfg *c = md->env.cfg;
	struct ng_target t[MEDIA_MAX_NG];
	int e = targets(c, t, err, errlen);
	if (e < 0)
		return e;
	if (!md->ng && c->nrtpengine && md->env.loop) {
		e = open_ng(md, t, c->nrtpengine, err, errlen);
		if (e < 0)
			return e;
		for (unsigned i = 0; i < c->nrtpengine; i++)
			log_info(md->env.lg, "media", "rtpengine %s: added (weight %u)", t[i].name, t[i].weight);
	} else if (md->ng) {
		ng_set_timeout(md->ng, c->timeout_ms);
		/* Those no longer listed first: their calls keep them, new calls go elsewhere. */
		for (int idx = 0; (unsigned)idx < ng_count(md->ng); idx++) {
			if (ng_retired(md->ng, idx))
				continue;
			bool listed = false;
			for (unsigned i = 0; i < c->nrtpengine && !listed; i++)
				listed = ng_find(md->ng, &t[i].addr) == idx;
			if (!listed) {
				ng_retire(md->ng, idx);
				log_info(md->env.lg, "media",
					 "rtpengine %s: removed; its %u relayed calls keep it until they end",
					 ng_name(md->ng, idx), calls_on(md, idx));
			}
		}
		for (unsigned i = 0; i < c->nrtpengine; i++) {
			int idx = ng_find(md->ng, &t[i].addr);
			if (idx >= 0) {
				ng_set_weight(md->ng, idx, t[i].weight);
				continue;
			}
			idx = ng_add(md->ng, &t[i]);
			if (idx < 0) {
				snprintf(err, errlen, "rtpengine %s: %s", t[i].name,
					 idx == -ENOSPC ? "too many rtpengines added since start (restart parley)"
							: strerror(-idx));
				return idx;
			}
			log_info(md->env.lg, "media", "rtpengine %s: added (weight %u)", t[i].name, t[i].weight);
		}
	}
	md->active = md->ng && c->nrtpengine && c->mode != MEDIA_NEVER;
	return 0;
}

static void call_free(struct mcall *k)
{
	timer_stop(k->md->w, &k->life);
	free(k->last_sdp);
	free(k);
}

static void offer_free(struct media *md, struct offer *g);

void media_free(struct media *md)
{
	if (!md)
		return;
	ng_free(md->ng); /* drops the pending commands without their callbacks */
	md->ng = NULL;
	while (md->offers)
		offer_free(md, md->offers); /* and their ops */
	while (md->ops) {
		struct op *o = md->ops;
		md->ops = o->next;
		free(o);
	}
	for (size_t i = 0; md->bucket && i < md->nbucket; i++) {
		while (md->bucket[i]) {
			struct mcall *k = md->bucket[i];
			md->bucket[i] = k->next;
			call_free(k);
		}
	}
	free(md->bucket);
	free(md);
}

bool media_on(const struct media *md)
{
	/* Not md->active: relayed calls still in progress need their SDP handled after a reload
	 * turned the relay off for new ones (intercept costs nothing without relayed calls). */
	return md && md->ng;
}

const struct media_stats *media_stats(const struct media *md)
{
	return &md->stats;
}

/* ---- the table of relayed calls -------------------------------------------------------------- */

static struct mcall *find(const struct media *md, struct str call_id)
{
	uint64_t h = khash(&md->hk, call_id.p, call_id.l);
	struct mcall *k = md->bucket[h & (md->nbucket - 1)];
	while (k && !(k->hash == h && str_eq(k->call_id, call_id)))
		k = k->next;
	return k;
}

static void unlink_call(struct media *md, struct mcall *k)
{
	struct mcall **pp = &md->bucket[k->hash & (md->nbucket - 1)];
	while (*pp && *pp != k)
		pp = &(*pp)->next;
	if (*pp)
		*pp = k->next;
	md->stats.calls--;
}

static void grow(struct media *md)
{
	if (md->stats.calls < 2 * md->nbucket)
		return;
	size_t nb = md->nbucket * 2;
	struct mcall **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < md->nbucket; i++) {
		while (md->bucket[i]) {
			struct mcall *k = md->bucket[i];
			md->bucket[i] = k->next;
			k->next = b[k->hash & (nb - 1)];
			b[k->hash & (nb - 1)] = k;
		}
	}
	free(md->bucket);
	md->bucket = b;
	md->nbucket = nb;
}

static void idle(void *arg)
{
	struct mcall *k = arg;
	struct media *md = k->md;
	log_info(md->env.lg, "media", "relayed call %.*s idle for 12 hours: deleted", STR_FMT(k->call_id));
	media_end(md, k->call_id);
}

static struct mcall *add_call(struct media *md, const struct sip_msg *m, int ng)
{
	struct mcall *k = find(md, m->call_id);
	if (k)
		return k; /* the INVITE again, with credentials after a challenge */
	k = calloc(1, sizeof(*k) + m->call_id.l + m->from.tag.l + 1);
	if (!k)
		return NULL;
	k->md = md;
	k->ng = ng;
	memcpy(k->text, m->call_id.p, m->call_id.l);
	memcpy(k->text + m->call_id.l, m->from.tag.p, m->from.tag.l);
	k->call_id = (struct str){ k->text, m->call_id.l };
	k->caller_tag = (struct str){ k->text + m->call_id.l, m->from.tag.l };
	k->hash = khash(&md->hk, m->call_id.p, m->call_id.l);
	md->stats.calls++;
	grow(md);
	struct mcall **head = &md->bucket[k->hash & (md->nbucket - 1)];
	k->next = *head;
	*head = k;
	timer_start(md->w, &k->life, MEDIA_IDLE_MS, idle, k);
	return k;
}

const char *media_relay_of(const struct media *md, struct str call_id)
{
	const struct mcall *k = md && md->ng ? find(md, call_id) : NULL;
	return k ? ng_name(md->ng, k->ng) : NULL;
}

/* ---- policy ------------------------------------------------------------------------------ */

static bool is_ws(const struct tp_source *src)
{
	return src->proto == TP_WS || src->proto == TP_WSS;
}

/* A numeric address that is not the one the message came from: the sender wrote where it
 * is on its own network, behind a NAT. 0.0.0.0 (hold) and names say nothing. */
static bool elsewhere(struct str host, const struct tp_source *src)
{
	struct tp_addr a;
	if (!host.l || tp_addr_from_host(&a, host, 0) != 0)
		return false;
	if (str_eq(host, STR("0.0.0.0")) || str_eq(host, STR("::")))
		return false;
	return !tp_addr_same_host(&a, &src->addr);
}

/* README "Phones behind NAT": a caller is behind NAT when its Contact or an SDP address
 * names an address other than the one its INVITE came from. */
static bool caller_natted(const struct sip_msg *m, const struct tp_source *src, const struct sdp *s)
{
	const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_CONTACT);
	struct str rest = h ? h->value : STR_NULL, it;
	struct sip_addr ca;
	if (h && sip_list_next(&rest, &it) && sip_addr_parse(&ca, it) == 0 && !ca.star && elsewhere(ca.uri.host, src))
		return true;
	for (unsigned i = 0; s && i < s->nmedia; i++)
		if (s->m[i].port && elsewhere(s->m[i].addr, src))
			return true;
	return false;
}

bool media_wanted(const struct media *md, const struct sip_msg *m, const struct tp_source *src,
		  const struct media_leg *leg, unsigned n, const char **why)
{
	*why = "";
	if (!md || !md->active)
		return false;
	if (md->env.cfg->mode == MEDIA_ALWAYS) {
		*why = "media = always";
		return true;
	}
	struct sdp s;
	const char *bad;
	bool have = sip_msg_has_sdp(m) && sdp_parse(&s, m->body, &bad) == 0;
	bool caller_webrtc = is_ws(src) || (have && sdp_is_webrtc(&s));
	if (caller_natted(m, src, have ? &s : NULL)) {
		*why = "caller behind NAT";
		return true;
	}
	for (unsigned i = 0; i < n; i++) {
		if (leg[i].relay) {
			*why = "relay peer";
			return true;
		}
		if (leg[i].nat) {
			*why = "callee behind NAT";
			return true;
		}
		if (leg[i].webrtc != caller_webrtc) {
			*why = "WebRTC and plain RTP";
			return true;
		}
	}
	return false;
}

/* ---- ng commands ------------------------------------------------------------------------- */

/* The options that shape the SDP rtpengine gives to a leg of kind webrtc, when the other
 * leg (from_webrtc) differs: the conversion of README "Phones behind NAT". Both plain: the
 * transport is left as the phone wrote it (an SRTP phone keeps SDES). */
static void leg_options(struct bn_out *o, bool to_webrtc, bool from_webrtc)
{
	bn_key(o, "replace");
	bn_list(o);
	bn_cstr(o, "origin");
	bn_cstr(o, "session-connection");
	bn_end(o);
	if (to_webrtc) {
		bn_kv_cstr(o, "ICE", "force");
		bn_kv_cstr(o, "transport-protocol", "UDP/TLS/RTP/SAVPF");
		bn_key(o, "rtcp-mux");
		bn_list(o);
		bn_cstr(o, "offer");
		bn_cstr(o, "accept");
		bn_end(o);
		bn_kv_cstr(o, "SDES", "off");
	} else {
		bn_kv_cstr(o, "ICE", "remove");
		if (from_webrtc) {
			bn_kv_cstr(o, "transport-protocol", "RTP/AVP");
			bn_kv_cstr(o, "DTLS", "off");
			bn_key(o, "rtcp-mux");
			bn_list(o);
			bn_cstr(o, "demux");
			bn_end(o);
		}
	}
}

/* Builds the command into md->cmd: offer or answer for call_id with the two tags, SDP and
 * the options toward the receiving leg. Returns its length, 0 when it does not fit. */
static size_t build(struct media *md, const char *command, struct str call_id, struct str from_tag, struct str to_tag,
		    struct str via_branch, struct str sdp, bool to_webrtc, bool from_webrtc)
{
	struct bn_out o;
	bn_init(&o, md->cmd, sizeof md->cmd);
	bn_dict(&o);
	bn_kv_cstr(&o, "command", command);
	bn_kv_str(&o, "call-id", call_id);
	bn_kv_str(&o, "from-tag", from_tag);
	if (to_tag.l)
		bn_kv_str(&o, "to-tag", to_tag);
	if (via_branch.l)
		bn_kv_str(&o, "via-branch", via_branch);
	bn_kv_str(&o, "sdp", sdp);
	leg_options(&o, to_webrtc, from_webrtc);
	bn_end(&o);
	return o.overflow ? 0 : o.len;
}

static struct op *new_op(struct media *md, enum op_kind kind, struct str call_id, size_t extra)
{
	struct op *o = calloc(1, sizeof(*o) + call_id.l + extra + 1);
	if (!o)
		return NULL;
	o->md = md;
	o->kind = kind;
	memcpy(o->text, call_id.p, call_id.l);
	o->call_id = (struct str){ o->text, call_id.l };
	return o;
}

static void link_op(struct media *md, struct op *o)
{
	o->linked = true;
	o->prev = NULL;
	o->next = md->ops;
	if (md->ops)
		md->ops->prev = o;
	md->ops = o;
}

static void unlink_op(struct media *md, struct op *o)
{
	if (!o->linked)
		return;
	o->linked = false;
	if (o->prev)
		o->prev->next = o->next;
	else
		md->ops = o->next;
	if (o->next)
		o->next->prev = o->prev;
}

static void on_reply(void *arg, int err, struct str reply);

/* Sends the command in md->cmd (len bytes) for o to instance idx; links o. */
static int send_op(struct media *md, struct op *o, int idx, size_t len)
{
	int err = ng_send(md->ng, idx, (struct str){ md->cmd, len }, on_reply, o, &o->handle);
	if (err == 0)
		link_op(md, o);
	return err;
}

/* The SDP of a successful offer or answer reply; false (and *why) otherwise. */
static bool reply_sdp(int err, struct str reply, struct str *sdp, char *why, size_t n)
{
	struct str v, res = STR_NULL, reason = STR_NULL;
	if (err) {
		snprintf(why, n, "%s", err == -ETIMEDOUT ? "no answer" : strerror(-err));
		return false;
	}
	if (bn_dict_get(reply, "result", &v))
		bn_as_str(v, &res);
	if (!str_eq(res, STR("ok"))) {
		if (bn_dict_get(reply, "error-reason", &v))
			bn_as_str(v, &reason);
		snprintf(why, n, "error: %.*s", reason.l ? (int)reason.l : 7, reason.l ? reason.p : "unknown");
		return false;
	}
	if (!bn_dict_get(reply, "sdp", &v) || !bn_as_str(v, sdp) || !sdp->l) {
		snprintf(why, n, "answer without SDP");
		return false;
	}
	return true;
}

/* ---- the INVITE's offers ------------------------------------------------------------------ */

/* Sends a delete for the call to instance idx: OP_DELETE reports the figures, OP_DROP
 * does not. */
static void send_delete(struct media *md, struct str call_id, struct str caller_tag, int idx, enum op_kind kind)
{
	struct bn_out b;
	bn_init(&b, md->cmd, sizeof md->cmd);
	bn_dict(&b);
	bn_kv_cstr(&b, "command", "delete");
	bn_kv_str(&b, "call-id", call_id);
	bn_kv_str(&b, "from-tag", caller_tag);
	bn_end(&b);
	/* The op keeps the caller's tag after the Call-ID (o->len its length), and the
	 * instance for the figures. */
	struct op *o = b.overflow ? NULL : new_op(md, kind, call_id, caller_tag.l);
	if (!o)
		return;
	memcpy(o->text + call_id.l, caller_tag.p, caller_tag.l);
	o->len = caller_tag.l;
	o->cb_tag = (uint64_t)idx;
	if (send_op(md, o, idx, b.len) < 0)
		free(o);
	else if (kind == OP_DELETE)
		md->stats.deletes++;
}

/* Sends every fork's offer of g to instance idx. On failure none is left pending. */
static int send_offers(struct media *md, struct offer *g, int idx)
{
	g->left = g->n;
	g->err = 0;
	for (unsigned i = 0; i < g->n; i++) {
		struct op *o = g->fork[i];
		memcpy(md->cmd, o->text + o->call_id.l, o->len);
		int err = send_op(md, o, idx, o->len);
		if (err < 0) {
			for (unsigned j = 0; j < i; j++) {
				ng_cancel(md->ng, g->fork[j]->handle);
				unlink_op(md, g->fork[j]);
			}
			return err;
		}
	}
	return 0;
}

static void offer_free(struct media *md, struct offer *g)
{
	for (unsigned i = 0; i < g->n; i++) {
		if (g->fork[i]->linked) {
			if (md->ng)
				ng_cancel(md->ng, g->fork[i]->handle);
			unlink_op(md, g->fork[i]);
		}
		free(g->fork[i]);
		free((char *)g->sdp[i].p);
	}
	if (g->prev)
		g->prev->next = g->next;
	else if (md->offers == g)
		md->offers = g->next;
	if (g->next)
		g->next->prev = g->prev;
	free(g);
}

/* The call's entry goes: its offers failed, or were never sent. */
static void drop_call(struct media *md, struct mcall *k)
{
	unlink_call(md, k);
	call_free(k);
}

int media_offer(struct media *md, const struct sip_msg *m, const struct tp_source *src, const struct media_fork *fork,
		unsigned n, const char *reason, media_offer_h *cb, void *arg, uint64_t tag, const char **why)
{
	*why = "";
	if (!md || !md->active || n == 0 || n > MEDIA_MAX_FORKS)
		return 0;
	bool has = sip_msg_has_sdp(m);
	struct sdp s;
	if (has && sdp_parse(&s, m->body, why) < 0)
		return m->body.l > SDP_MAX_LEN ? 488 : 400;
	bool required = md->env.cfg->required;
	int idx = ng_pick(md->ng);
	if (idx < 0) {
		md->stats.failures++;
		log_warn(md->env.lg, "media", "no rtpengine answers: call %.*s %s", STR_FMT(m->call_id),
			 required ? "refused (503, media-required)" : "goes on unrelayed");
		*why = "Media Relay Unavailable";
		return required ? 503 : 0;
	}
	struct mcall *k = add_call(md, m, idx);
	if (!k)
		return required ? 503 : 0;
	k->webrtc[CALLER] = is_ws(src) || (has && sdp_is_webrtc(&s));
	k->webrtc[CALLEE] = false;
	for (unsigned i = 0; i < n; i++)
		k->webrtc[CALLEE] |= fork[i].webrtc;
	k->invite_cseq = m->cseq;
	k->offer_cseq = m->cseq;
	k->offer_side = CALLER;
	/* Without SDP here the offer comes in a response: marked as if one were pending there,
	 * so that the response's SDP is taken as the offer it is. */
	k->late = !has;
	k->why = reason;
	if (!has)
		return 0; /* a late offer: it comes in the 2xx (media_intercept) */
	struct offer *g = calloc(1, sizeof(*g) + m->call_id.l + 1);
	if (!g) {
		drop_call(md, k);
		return required ? 503 : 0;
	}
	memcpy(g->text, m->call_id.p, m->call_id.l);
	g->call_id = (struct str){ g->text, m->call_id.l };
	g->cb = cb;
	g->cb_arg = arg;
	g->cb_tag = tag;
	/* One offer per fork, each for the Via branch its INVITE carries and shaped for its
	 * phone (a browser or not): with several early dialogs, each fork has ports of its
	 * own, and the answer of the one that answers (with its branch) gets the caller's
	 * media, whichever fork spoke last. */
	for (unsigned i = 0; i < n; i++) {
		size_t len = build(md, "offer", m->call_id, m->from.tag, STR_NULL, fork[i].branch, m->body,
				   fork[i].webrtc, k->webrtc[CALLER]);
		struct op *o = len ? new_op(md, OP_OFFER, m->call_id, len) : NULL;
		if (!o) {
			offer_free(md, g);
			drop_call(md, k);
			*why = len ? "Server Internal Error" : "SDP Too Large";
			return len ? 500 : 488;
		}
		memcpy(o->text + m->call_id.l, md->cmd, len);
		o->len = len;
		o->grp = g;
		o->fork = i;
		g->fork[g->n++] = o;
	}
	if (send_offers(md, g, idx) < 0) {
		offer_free(md, g);
		drop_call(md, k);
		return required ? 503 : 0;
	}
	g->next = md->offers;
	if (md->offers)
		md->offers->prev = g;
	md->offers = g;
	md->stats.offers += n;
	return 1;
}

/* Every fork's offer is answered (or failed). */
static void offers_done(struct media *md, struct offer *g)
{
	struct mcall *k = find(md, g->call_id);
	if (k && !g->err) {
		log_info(md->env.lg, "media", "call %.*s relayed through %s (%s%s)", STR_FMT(g->call_id),
			 ng_name(md->ng, k->ng), k->why ? k->why : "", g->n > 1 ? "; one offer per fork" : "");
		g->cb(g->cb_arg, g->cb_tag, 0, g->sdp, g->n, ng_name(md->ng, k->ng));
		offer_free(md, g);
		return;
	}
	/* Forks whose offer went through are held in rtpengine: it lets them go. */
	bool some = false;
	for (unsigned i = 0; i < g->n; i++) {
		some |= g->sdp[i].l > 0;
		free((char *)g->sdp[i].p);
		g->sdp[i] = STR_NULL;
	}
	if (k && some)
		send_delete(md, k->call_id, k->caller_tag, k->ng, OP_DROP);
	/* An rtpengine that does not answer (or refuses) is out of rotation now: the call
	 * goes to the next live one, if any. An error it answered would be the same there. */
	int next = k && g->err < 0 ? ng_pick(md->ng) : -1;
	if (next >= 0 && next != k->ng) {
		log_warn(md->env.lg, "media", "rtpengine %s: offer for call %.*s failed (%s): trying %s",
			 ng_name(md->ng, k->ng), STR_FMT(g->call_id), g->why, ng_name(md->ng, next));
		k->ng = next;
		if (send_offers(md, g, next) == 0)
			return;
	}
	if (!k)
		snprintf(g->why, sizeof g->why, "call gone");
	md->stats.failures++;
	bool required = md->env.cfg->required;
	log_warn(md->env.lg, "media", "rtpengine %s: offer for call %.*s failed (%s): %s",
		 k ? ng_name(md->ng, k->ng) : "-", STR_FMT(g->call_id), g->why,
		 required ? "refused (503, media-required)" : "the call goes on unrelayed");
	if (k)
		drop_call(md, k);
	g->cb(g->cb_arg, g->cb_tag, required ? 503 : 0, NULL, 0, NULL);
	offer_free(md, g);
}

static void offer_reply(struct media *md, struct op *o, int err, struct str reply)
{
	struct offer *g = o->grp;
	struct str sdp;
	char why[200];
	if (reply_sdp(err, reply, &sdp, why, sizeof why)) {
		char *copy = malloc(sdp.l);
		if (copy) {
			memcpy(copy, sdp.p, sdp.l);
			g->sdp[o->fork] = (struct str){ copy, sdp.l };
		} else if (!g->err) {
			g->err = 1;
			snprintf(g->why, sizeof g->why, "out of memory");
		}
	} else if (!g->err) {
		g->err = err < 0 ? err : 1;
		snprintf(g->why, sizeof g->why, "%s", why);
	}
	if (--g->left == 0)
		offers_done(md, g);
}

/* ---- SDP inside a relayed call ----------------------------------------------------------------- */

static enum leg side_of(const struct mcall *k, struct str tag)
{
	return str_eq(tag, k->caller_tag) ? CALLER : CALLEE;
}

/* Whether the header line p[0..l) is Content-Length (long or compact form). */
static bool is_clen(const char *p, size_t l)
{
	size_t k = 0;
	if (l >= 14 && strncasecmp(p, "content-length", 14) == 0)
		k = 14;
	else if (l >= 1 && (p[0] == 'l' || p[0] == 'L'))
		k = 1;
	else
		return false;
	while (k < l && (p[k] == ' ' || p[k] == '\t'))
		k++;
	return k < l && p[k] == ':';
}

/* buf (len bytes, a message that parsed) with sdp as its body into md->out: its lines as
 * they came but Content-Length, which follows the new body. Done on the text, without a
 * parse: the message parsed when it came and is parsed again when put back. The headers
 * end at the first CRLF CRLF: the first line that is a bare CRLF after one that ends in
 * CRLF, found in the same walk over the lines that copies them (a memmem for it first
 * read the headers twice). Returns the length, 0 when it does not fit or has no CRLF CRLF
 * (then the parser's rebody is used). */
static size_t rebody(struct media *md, const char *buf, size_t len, struct str sdp)
{
	struct sip_out o;
	sip_out_init(&o, md->out, sizeof md->out);
	const char *p = buf, *end = buf + len;
	for (;;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			return 0;
		size_t l = (size_t)(eol - p) + 1;
		if (l == 2 && p[0] == '\r' && p - buf >= 2 && p[-2] == '\r')
			break;
		if (p == buf || !is_clen(p, l))
			sip_out_str(&o, (struct str){ p, l });
		p += l;
	}
	sip_out_cstr(&o, "Content-Length: ");
	sip_out_u64(&o, sdp.l);
	sip_out_cstr(&o, "\r\n\r\n");
	sip_out_str(&o, sdp);
	return o.overflow ? 0 : o.len;
}

/* Puts buf (len bytes, a message as it came from src) back with sdp as its body. */
static void put_back(struct media *md, const char *buf, size_t len, const struct tp_source *src, struct str sdp)
{
	if (sdp.l) {
		size_t n = rebody(md, buf, len, sdp);
		if (n) {
			md->env.reinject(md->env.arg, md->out, n, src);
			return;
		}
		struct sip_hdr hdrs[SIP_MAX_HEADERS];
		struct sip_msg m;
		struct sip_parse_err pe;
		struct sip_out out;
		sip_out_init(&out, md->out, sizeof md->out);
		if (sip_msg_parse(&m, hdrs, SIP_MAX_HEADERS, buf, len, true, &pe) == SIP_PARSE_OK &&
		    sip_print_rebody(&out, &m, STR_NULL, sdp) == 0 && !out.overflow) {
			md->env.reinject(md->env.arg, out.p, out.len, src);
			return;
		}
		log_warn(md->env.lg, "media", "a message with rtpengine's SDP does not fit: sent as it came");
	}
	md->env.reinject(md->env.arg, buf, len, src);
}

bool media_intercept(struct media *md, const struct sip_msg *m, const struct tp_source *src)
{
	if (!md->stats.calls || !m->body.l)
		return false;
	struct mcall *k = find(md, m->call_id);
	if (!k || !sip_msg_has_sdp(m))
		return false;
	bool resp = !m->request;
	enum sip_method meth = resp ? m->cseq_method : m->mid;
	/* Who sent the request (the response answers it): its From tag says. */
	enum leg req_side = side_of(k, m->from.tag);
	bool offer;
	if (!resp && (meth == SIP_ACK || meth == SIP_PRACK)) {
		if (!(k->late && m->cseq == k->offer_cseq && req_side == k->offer_side))
			return false; /* an ACK repeating SDP it has no business with */
		offer = false;
	} else if (!resp && (meth == SIP_INVITE || meth == SIP_UPDATE) && m->to.tag.l) {
		offer = true;
	} else if (resp && m->status > 100 && m->status < 300 &&
		   (meth == SIP_INVITE || meth == SIP_UPDATE || meth == SIP_PRACK)) {
		offer = !(m->cseq == k->offer_cseq && req_side == k->offer_side && !k->late);
		if (offer && meth == SIP_PRACK)
			return false;
	} else {
		return false;
	}
	/* The two tags must be this call's: only its parties can steer its media. */
	if (!str_eq(m->from.tag, k->caller_tag) && !str_eq(m->to.tag, k->caller_tag))
		return false;
	struct sdp s;
	const char *bad;
	if (sdp_parse(&s, m->body, &bad) < 0) {
		log_warn(md->env.lg, "media",
			 "call %.*s: %.*s with an SDP rtpengine cannot take (%s): passed on as it is",
			 STR_FMT(m->call_id), resp ? 3 : (int)m->method.l, resp ? "a response" : m->method.p, bad);
		return false;
	}
	uint64_t h = khash(&md->hk, m->buf, m->len);
	if (h == k->held)
		return true; /* a retransmission of what rtpengine is working on: the rewrite goes */
	if (h == k->last_in && k->last_sdp) {
		put_back(md, m->buf, m->len, src, (struct str){ k->last_sdp, k->last_sdp_len });
		return true;
	}
	/* The SDP's sender: the request's sender, or for a response the other side. */
	enum leg sender = resp ? (req_side == CALLER ? CALLEE : CALLER) : req_side;
	k->webrtc[sender] = is_ws(src) || sdp_is_webrtc(&s);
	/* An answer names the offerer first (its tag as from-tag); an offer its own sender. */
	bool swap = resp == offer;
	struct str ft = swap ? m->to.tag : m->from.tag, tt = swap ? m->from.tag : m->to.tag;
	/* A fork's answer to the INVITE's offer names that fork's offer by its branch (ours, on
	 * top of the response): see media_offer. */
	struct str vb = resp && !offer && meth == SIP_INVITE && req_side == CALLER && m->cseq == k->invite_cseq
				? m->via.branch
				: STR_NULL;
	size_t len = build(md, offer ? "offer" : "answer", m->call_id, ft, tt, vb, m->body, k->webrtc[!sender],
			   k->webrtc[sender]);
	struct op *o = len ? new_op(md, OP_HELD, m->call_id, m->len) : NULL;
	if (!o)
		return false;
	o->in = h;
	o->offer = offer;
	o->in_resp = resp;
	o->sender = sender;
	o->src = *src;
	o->len = m->len;
	memcpy(o->text + m->call_id.l, m->buf, m->len);
	if (send_op(md, o, k->ng, len) < 0) {
		free(o);
		return false;
	}
	k->held = h;
	timer_stop(md->w, &k->life);
	timer_start(md->w, &k->life, MEDIA_IDLE_MS, idle, k);
	md->stats.held++;
	if (offer) {
		/* From now on a response to this request answers this offer. */
		k->offer_cseq = m->cseq;
		k->offer_side = req_side;
		k->late = resp;
	}
	return true;
}

static void held_done(struct media *md, struct op *o, int err, struct str reply)
{
	const char *msg = o->text + o->call_id.l;
	struct mcall *k = find(md, o->call_id);
	struct str sdp = STR_NULL;
	char why[200];
	if (k && k->held == o->in)
		k->held = 0;
	if (!k) {
		put_back(md, msg, o->len, &o->src, STR_NULL);
		return;
	}
	if (!reply_sdp(err, reply, &sdp, why, sizeof why)) {
		md->stats.failures++;
		log_warn(md->env.lg, "media", "rtpengine %s: %s for call %.*s failed (%s): passed on as it came",
			 ng_name(md->ng, k->ng), o->offer ? "offer" : "answer", STR_FMT(o->call_id), why);
		put_back(md, msg, o->len, &o->src, STR_NULL);
		return;
	}
	if (o->offer)
		md->stats.offers++;
	else
		md->stats.answers++;
	char *copy = malloc(sdp.l);
	if (copy) {
		memcpy(copy, sdp.p, sdp.l);
		free(k->last_sdp);
		k->last_sdp = copy;
		k->last_sdp_len = sdp.l;
		k->last_in = o->in;
	}
	put_back(md, msg, o->len, &o->src, sdp);
}

/* ---- the end ------------------------------------------------------------------------------ */

/* Sums what the delete's answer says of each leg: per tag, the packets and bytes received
 * from it, and the packets its SSRCs lost on the way (RTCP or sequence gaps). */
struct figures {
	uint64_t pkts[2], bytes[2];
	int64_t lost;
	uint64_t expected;
};

struct fig_walk {
	struct figures *f;
	struct str caller_tag;
	bool ok; /* "result": "ok" */
};

/* Length first, with the key a literal (STR): most keys of the walk differ in length from
 * the one asked for, and the walk visits every value of the reply. */
static bool key_is(const struct str *path, unsigned j, struct str k)
{
	return path[j].l == k.l && memcmp(path[j].p, k.p, k.l) == 0;
}

/* One pass over the delete's answer (bn_walk_some): result; tags/TAG/medias/[]/streams/[]/stats/
 * packets|bytes per leg; SSRC/ID/packets lost|packets for the loss. */
static bool fig_visit(void *arg, const struct str *path, unsigned depth, struct str val)
{
	struct fig_walk *w = arg;
	int64_t x;
	struct str sv;
	if (depth == 1 && key_is(path, 0, STR("result"))) {
		w->ok = bn_as_str(val, &sv) && str_eq(sv, STR("ok"));
	} else if (depth == 8 && key_is(path, 0, STR("tags")) && key_is(path, 2, STR("medias")) &&
		   key_is(path, 4, STR("streams")) && key_is(path, 6, STR("stats")) && bn_as_int(val, &x) && x > 0) {
		enum leg l = str_eq(path[1], w->caller_tag) ? CALLER : CALLEE;
		if (key_is(path, 7, STR("packets")))
			w->f->pkts[l] += (uint64_t)x;
		else if (key_is(path, 7, STR("bytes")))
			w->f->bytes[l] += (uint64_t)x;
	} else if (depth == 3 && key_is(path, 0, STR("SSRC")) && bn_as_int(val, &x)) {
		if (key_is(path, 2, STR("packets lost")))
			w->f->lost += x;
		else if (key_is(path, 2, STR("packets")) && x > 0)
			w->f->expected += (uint64_t)x;
	}
	return true;
}

/* Which containers the walk goes into: the ones on fig_visit's paths (the reply itself,
 * SSRC/ID, tags/TAG/medias/[]/streams/[]/stats); the rest of the answer (endpoints, flags,
 * subscriptions, totals: most of its ~1.8 KB) is only checked. The keys above the newest
 * were checked when their own containers were entered. */
static bool fig_enter(void *arg, const struct str *path, unsigned depth)
{
	(void)arg;
	if (depth == 0)
		return true;
	if (key_is(path, 0, STR("SSRC")))
		return depth <= 2;
	if (!key_is(path, 0, STR("tags")))
		return false;
	switch (depth) {
	case 3:
		return key_is(path, 2, STR("medias"));
	case 5:
		return key_is(path, 4, STR("streams"));
	case 7:
		return key_is(path, 6, STR("stats"));
	default:
		return depth < 7;
	}
}

static bool read_figures(struct str caller_tag, struct str reply, struct figures *f)
{
	memset(f, 0, sizeof(*f));
	struct fig_walk w = { .f = f, .caller_tag = caller_tag };
	return bn_walk_some(reply, fig_enter, fig_visit, &w) && w.ok;
}

static void delete_done(struct media *md, struct op *o, int err, struct str reply, const char *name)
{
	char text[160];
	struct figures f;
	if (err || !read_figures((struct str){ o->text + o->call_id.l, o->len }, reply, &f)) {
		md->stats.failures++;
		log_warn(md->env.lg, "media", "rtpengine %s: delete of call %.*s failed (%s)", name,
			 STR_FMT(o->call_id), err ? (err == -ETIMEDOUT ? "no answer" : strerror(-err)) : "error");
		snprintf(text, sizeof text, "relay %s, no figures (delete failed)", name);
	} else {
		uint64_t total = f.pkts[CALLER] + f.pkts[CALLEE];
		double loss = f.expected ? 100.0 * (double)(f.lost > 0 ? f.lost : 0) / (double)f.expected : 0.0;
		/* rtpengine measures loss only from the phones' RTCP (per SSRC): without it the
		 * figure is left out rather than shown as 0. */
		char lost[32] = "";
		if (f.expected)
			snprintf(lost, sizeof lost, ", %.1f%% loss", loss);
		/* "relay NAME C/C pkts[, X% loss]" by hand: every relayed call ends here, and
		 * snprintf cost more than the rest of the figures' formatting. */
		struct sip_out t;
		sip_out_init(&t, text, sizeof text - 1);
		sip_out_cstr(&t, "relay ");
		sip_out_cstr(&t, name);
		sip_out_cstr(&t, " ");
		sip_out_u64(&t, f.pkts[CALLER]);
		sip_out_cstr(&t, "/");
		sip_out_u64(&t, f.pkts[CALLEE]);
		sip_out_cstr(&t, " pkts");
		sip_out_cstr(&t, lost);
		text[t.len] = '\0';
		log_info(md->env.lg, "media",
			 "call %.*s ended: rtpengine %s counted %llu packets from the caller, %llu from the callee%s%s",
			 STR_FMT(o->call_id), name, (unsigned long long)f.pkts[CALLER],
			 (unsigned long long)f.pkts[CALLEE], lost, total == 0 ? " (no audio at all)" : "");
	}
	if (md->env.figures)
		md->env.figures(md->env.arg, o->call_id, text);
}

void media_end(struct media *md, struct str call_id)
{
	if (!md || !md->stats.calls)
		return;
	struct mcall *k = find(md, call_id);
	if (!k)
		return;
	unlink_call(md, k);
	send_delete(md, k->call_id, k->caller_tag, k->ng, OP_DELETE);
	call_free(k);
}

static void on_reply(void *arg, int err, struct str reply)
{
	struct op *o = arg;
	struct media *md = o->md;
	unlink_op(md, o);
	switch (o->kind) {
	case OP_OFFER:
		offer_reply(md, o, err, reply);
		return; /* the call's offers own o */
	case OP_HELD:
		held_done(md, o, err, reply);
		break;
	case OP_DELETE:
		delete_done(md, o, err, reply, ng_name(md->ng, (int)o->cb_tag));
		break;
	case OP_DROP:
		if (err)
			log_debug(md->env.lg, "media", "rtpengine %s: delete of the forks of call %.*s failed",
				  ng_name(md->ng, (int)o->cb_tag), STR_FMT(o->call_id));
		break;
	}
	free(o);
}
