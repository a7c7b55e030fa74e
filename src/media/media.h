/* media.h: the media relay: which calls go through rtpengine, and their SDP offers and answers over its ng protocol. */
#ifndef PARLEY_MEDIA_H
#define PARLEY_MEDIA_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/str.h"
#include "sip/sip.h"
#include "transport/transport.h"

struct media;

/* ---- settings: [media] rtpengine, media, media-required, rtpengine-timeout ------------------ */

#define MEDIA_MAX_NG 8
enum media_mode { MEDIA_AUTO = 0, MEDIA_ALWAYS, MEDIA_NEVER };

struct media_cfg {
	char rtpengine[MEDIA_MAX_NG][128]; /* --rtpengine udp:HOST:PORT[;weight=N], repeatable */
	unsigned nrtpengine;
	unsigned mode;       /* --media auto|always|never (enum media_mode) */
	bool required;       /* --media-required: a call whose relay fails gets 503 */
	unsigned timeout_ms; /* --rtpengine-timeout: how long one ng command may take */
};
extern const struct cfg_key media_cfg_keys[];
extern const size_t media_cfg_nkeys;
void media_cfg_defaults(struct media_cfg *c); /* no rtpengine, auto, not required, 2000 ms */
/* Every --rtpengine parses. */
int media_cfg_check(const void *base, char *err, size_t errlen);

/* ---- the relay ------------------------------------------------------------------------------ */

struct media_env {
	const struct media_cfg *cfg;
	struct loop *loop;
	struct log *lg;
	/* Puts a message the relay held (an SDP of a relayed call, in a dialog or a response)
	 * back into the receive pipeline after the transaction layer's intake, as if it had
	 * arrived from src: with rtpengine's SDP, or unchanged when rtpengine failed. */
	void (*reinject)(void *arg, const char *buf, size_t len, const struct tp_source *src);
	/* The relay's figures for an ended call ("relay udp:127.0.0.1:2223 512/508 pkts, 0.4%
	 * loss"), from the answer to its delete. May be NULL. */
	void (*figures)(void *arg, struct str call_id, const char *text);
	void *arg;
};

/* Creates the relay; with no rtpengine configured (or media = never) it relays nothing and
 * costs nothing. Returns 0, or -errno with err saying why. */
int media_new(struct media **mp, const struct media_env *env, char *err, size_t errlen);
/* Pending ng commands are dropped: call it before the loop is freed. */
void media_free(struct media *md);
/* Whether messages must go through media_intercept: an rtpengine is (or was, before a
 * reload) configured and media was not never at start. Whether a new call may be relayed
 * is media_wanted's to say. */
bool media_on(const struct media *md);
/* A reload changed env->cfg (SIGHUP): media, media-required and rtpengine-timeout apply to
 * the next call and command; an rtpengine no longer listed takes no new calls and keeps
 * those it has until they end; a new one is added (each change logged). 0, or -errno with
 * err saying why (the instances changed so far stay). */
int media_reload(struct media *md, char *err, size_t errlen);

/* What the proxy knows about where a new call goes, for the relay decision. */
struct media_leg {
	bool nat;    /* the callee's phone is behind NAT (reg_binding_natted) */
	bool webrtc; /* it registered over WebSocket: a browser (ICE, DTLS-SRTP) */
	bool relay;  /* it is a peer marked relay in [peers] */
};

/* Whether a new INVITE m from src to the callee legs leg[0..n) is relayed (README "Phones
 * behind NAT": media = always; or auto and a phone is behind NAT, the legs differ in kind,
 * or a relay peer is on the call). *why names the reason for the log. */
bool media_wanted(const struct media *md, const struct sip_msg *m, const struct tp_source *src,
		  const struct media_leg *leg, unsigned n, const char **why);

/* One fork of a new call: the Via branch its INVITE will carry (rtpengine's via-branch,
 * which ties the fork's answer to its own offer) and whether its phone is a browser. */
#define MEDIA_MAX_FORKS 16
struct media_fork {
	struct str branch;
	bool webrtc;
};

/* The outcome of the offers: status 0 with sdp[i] the SDP to forward to fork i (n forks)
 * and relay the rtpengine that gave them (n 0, relay NULL: forward the INVITE as it is,
 * unrelayed), or a status to answer with (503 when the relay is required and failed). */
typedef void(media_offer_h)(void *arg, uint64_t tag, unsigned status, const struct str *sdp, unsigned n,
			    const char *relay);
/* Starts relaying the call of INVITE m (the router decided, media_wanted, for reason, a
 * static phrase for the log) to fork[0..n): registers it, and when m has SDP asks
 * rtpengine for one offer per fork, calling cb(arg, tag, ...) once all are answered (never
 * from inside this call). Returns 1 when cb will be called; 0 when there is nothing to wait
 * for (no SDP: the offer comes in a response; or no rtpengine answers and the relay is not
 * required: the INVITE goes on as it is); or a status to answer with at once, *why naming
 * the problem (400/488 for an SDP that does not parse or is too large, 503 when the relay
 * is required and no rtpengine answers). */
int media_offer(struct media *md, const struct sip_msg *m, const struct tp_source *src, const struct media_fork *fork,
		unsigned n, const char *reason, media_offer_h *cb, void *arg, uint64_t tag, const char **why);

/* Called for every message off the wire before the transaction layer, when media_on: an
 * SDP inside a relayed call (an answer in a response, a re-INVITE or UPDATE offer, a late
 * offer in a 2xx and its answer in the ACK) is held and true returned; the message comes
 * back through env->reinject once rtpengine has answered. */
bool media_intercept(struct media *md, const struct sip_msg *m, const struct tp_source *src);

/* The call is over (BYE answered, failed, cancelled, timed out): rtpengine is told to
 * delete it, and its figures go to env->figures. Nothing happens for an unrelayed call. */
void media_end(struct media *md, struct str call_id);
/* The rtpengine a relayed call uses ("udp:127.0.0.1:2223"), or NULL. */
const char *media_relay_of(const struct media *md, struct str call_id);

/* Counters. */
struct media_stats {
	uint64_t offers, answers, deletes, failures, held;
	unsigned calls; /* relayed calls now */
};
const struct media_stats *media_stats(const struct media *md);

#endif
