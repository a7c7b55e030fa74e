/* stateless.c: answers that no transaction keeps (RFC 3261 §8.2.6, §16.3 refusals, §18.2.2 routing). */
#include "txn/txn_int.h"

size_t txn_print_stateless(struct txn_layer *l, const struct sip_msg *req, const struct tp_source *src, unsigned code,
			   const char *reason, struct str extra, char *out, size_t cap, struct tp_source *dst)
{
	struct sip_out o;
	struct sip_resp_opts opt = { 0 };
	struct txn_via_text vt;
	char tag[TXN_TAG_SIZE];
	opt.extra = extra;
	opt.server = STR("Parley " PARLEY_VERSION);
	if (code > 100 && req->to.tag.l == 0)
		opt.to_tag = (struct str){ tag, txn_make_tag(l, tag) };
	if (req->via.host.l)
		txn_response_via(&opt, &vt, req, src);
	sip_out_init(&o, out, cap);
	if (sip_print_response(&o, req, code, reason, &opt) < 0 || o.overflow)
		return 0;
	*dst = *src;
	if (req->via.host.l)
		txn_response_dest(dst, req, src);
	return o.len;
}

void txn_reply_stateless(struct txn_layer *l, const struct sip_msg *req, const struct tp_source *src, unsigned code,
			 const char *reason, struct str extra)
{
	char buf[SIP_MAX_MSG];
	struct tp_source dst;
	size_t len = txn_print_stateless(l, req, src, code, reason, extra, buf, sizeof buf, &dst);
	if (!len)
		return;
	/* A challenge or refusal of a request the TU is handling now (not a reply of the
	 * sanity checks, which come before any transaction) has a response time too. */
	if (code >= 200 && l->in_us)
		txn__rt_observe(l, l->in_us);
	txn__send(l, &dst, buf, len);
}

int txn_send_raw(struct txn_layer *l, const struct tp_source *dst, const char *buf, size_t len)
{
	return txn__send(l, dst, buf, len);
}
