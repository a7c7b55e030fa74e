/* media_int.h: the media module's private interface: bencode views and the rtpengine ng-protocol client. */
#ifndef PARLEY_MEDIA_INT_H
#define PARLEY_MEDIA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/str.h"
#include "media/media.h"
#include "sip/sip.h"
#include "transport/transport.h"

/* ---- bencode writer: appends to a caller's buffer, never allocates ----------------------- */

/* Once a write does not fit, overflow is set and nothing more is written: the caller checks
 * the flag once at the end instead of after every call. */
struct bn_out {
	char *p;       /* the caller's buffer */
	size_t len;    /* bytes written */
	size_t cap;    /* size of p */
	bool overflow; /* a write did not fit; p[0..len) is then incomplete */
};

void bn_init(struct bn_out *o, char *buf, size_t cap);
void bn_dict(struct bn_out *o); /* "d": opens a dictionary; close it with bn_end */
void bn_list(struct bn_out *o); /* "l" */
void bn_end(struct bn_out *o);  /* "e" */
void bn_str(struct bn_out *o, struct str s);
void bn_int(struct bn_out *o, int64_t v);
/* The C-string forms are inline so that the length of a literal (every key of a command)
 * is known when compiling instead of counted by strlen on each call. */
static inline void bn_cstr(struct bn_out *o, const char *s)
{
	bn_str(o, (struct str){ s, strlen(s) });
}
/* Dictionary entries: the key, then the value. Keys go out in the order written:
 * rtpengine does not ask for sorted keys (tried on 10.5). */
static inline void bn_key(struct bn_out *o, const char *key) /* before a bn_list / bn_dict value */
{
	bn_cstr(o, key);
}
static inline void bn_kv_str(struct bn_out *o, const char *key, struct str v)
{
	bn_cstr(o, key);
	bn_str(o, v);
}
static inline void bn_kv_cstr(struct bn_out *o, const char *key, const char *v)
{
	bn_cstr(o, key);
	bn_cstr(o, v);
}
static inline void bn_kv_int(struct bn_out *o, const char *key, int64_t v)
{
	bn_cstr(o, key);
	bn_int(o, v);
}
/* The bytes written as a view (meaningful only without overflow). */
struct str bn_view(const struct bn_out *o);

/* ---- bencode reader: views into the input, never allocates -------------------------------- */

/* Whether s holds exactly one complete value: strings whose length prefix fits the rest of
 * the input, integers i-?[0-9]+e without leading zeros or "-0", lists, dictionaries whose
 * keys are strings, nested at most max_depth lists/dictionaries deep. 0 or -1. */
int bn_check(struct str s, unsigned max_depth);
/* The readers below need no bn_check first: on a malformed value they return false (or
 * stop at what is malformed) and never read outside the view nor recurse; fuzz_bencode
 * holds them to it. The ng client hands replies to them unchecked. */
/* The encoded value of key in dict (the first one, if a peer repeated it). OUT: val */
bool bn_dict_get(struct str dict, const char *key, struct str *val);
/* The contents of a string value, or the number of an integer value (false on overflow). */
bool bn_as_str(struct str val, struct str *out);
bool bn_as_int(struct str val, int64_t *out);
/* The string value of key as a view; false when missing or not a string. */
bool bn_dict_get_str(struct str dict, const char *key, struct str *out);
/* Iteration: bn_list_begin / bn_dict_begin set the cursor from a list / dictionary value
 * (false when it is not one); each _next call takes one item (or key and value) from the
 * cursor and returns false at the end. */
bool bn_list_begin(struct str list, struct str *cursor);
bool bn_list_next(struct str *cursor, struct str *item);
bool bn_dict_begin(struct str dict, struct str *cursor);
bool bn_dict_next(struct str *cursor, struct str *key, struct str *val);

/* Visits every string and integer of v in order, with the keys that lead to it: path[j] is
 * the key by which the value inside the j-th enclosing container was reached (empty for a
 * list's items), path[depth - 1] the value's own. One pass over v, no recursion: reading a
 * few fields deep inside a large reply costs one walk instead of one per field. cb returns
 * false to stop the walk. Returns false for malformed input (after visiting what came
 * before it), true otherwise. */
#define BN_MAX_DEPTH 32
typedef bool(bn_visit_h)(void *arg, const struct str *path, unsigned depth, struct str val);
bool bn_walk(struct str v, bn_visit_h *cb, void *arg);
/* bn_walk that visits only what its caller wants: before it goes into a list or dictionary
 * it asks enter, with the keys that lead to it (path[0..depth), path[depth - 1] its own;
 * depth 0 for the outermost value). On false the container is walked without visits or
 * further questions, checked as the rest; the result is bn_walk's. enter NULL: bn_walk. */
typedef bool(bn_enter_h)(void *arg, const struct str *path, unsigned depth);
bool bn_walk_some(struct str v, bn_enter_h *enter, bn_visit_h *cb, void *arg);

/* ---- the ng client ------------------------------------------------------------------------ */

#define NG_MAX_TARGETS 16
#define NG_MAX_DGRAM 65507 /* the most a UDP datagram over IPv4 carries */

struct ng_target {
	struct tp_addr addr;
	unsigned weight; /* 1..1000 */
	char name[80];   /* "udp:127.0.0.1:2223", for logs */
};

/* Parses "udp:HOST:PORT" or "udp:HOST:PORT;weight=N" (IPv4 or [IPv6], numeric; weight
 * 1..1000, default 1). 0, or -1 with a message naming the problem in err. */
int ng_target_parse(const char *spec, struct ng_target *t, char *err, size_t errlen);

struct ng_env {
	struct loop *loop;
	struct log *lg;      /* may be NULL */
	unsigned timeout_ms; /* total per command; 0: 2000 */
	unsigned retry_ms;   /* how often a dead instance is pinged; 0: 5000 */
};

struct ng;

/* One connected non-blocking UDP socket per instance, on env->loop; every instance starts
 * alive. 0, or -errno (-EINVAL for n 0 or above NG_MAX_TARGETS). */
int ng_new(struct ng **np, const struct ng_env *env, const struct ng_target *t, unsigned n);
/* Pending commands are dropped without their callbacks. Not from inside a callback. */
void ng_free(struct ng *n);
/* A live instance chosen by smooth weighted round robin, or -1 when none is live. */
int ng_pick(struct ng *n);
const char *ng_name(const struct ng *n, int idx);
bool ng_alive(const struct ng *n, int idx);
unsigned ng_count(const struct ng *n);

/* A reload of [media] changes the instances without touching calls in progress: an index
 * once given stays that instance's. ng_add opens one more (its index, or -errno; -ENOSPC
 * past NG_MAX_TARGETS opened since start); ng_find gives the index of the instance at a,
 * not retired, or -1; ng_retire takes one out of rotation for good (its calls go on using
 * it; it is not pinged); ng_set_weight and ng_set_timeout change those settings. */
int ng_add(struct ng *n, const struct ng_target *t);
int ng_find(const struct ng *n, const struct tp_addr *a);
void ng_retire(struct ng *n, int idx);
bool ng_retired(const struct ng *n, int idx);
void ng_set_weight(struct ng *n, int idx, unsigned weight);
void ng_set_timeout(struct ng *n, unsigned timeout_ms);

/*
 * A command's end. reply is the reply's bencoded dictionary, valid during the call only.
 * err: 0; -ETIMEDOUT (no answer within timeout_ms: the instance is marked dead);
 * -ECONNREFUSED (the kernel reported the port closed: dead at once); -EPROTO (the reply is
 * truncated or not a bencoded dictionary from the outside: only its first and last bytes
 * are checked, the readers check the rest as they read). A reply "result":"error" is err
 * 0: read "error-reason".
 */
typedef void(ng_h)(void *arg, int err, struct str reply);

/* Sends dict (one complete bencoded dictionary) to instance idx under a fresh cookie and
 * retransmits it (after 500 ms, then doubling) until a reply or timeout_ms. The first
 * transmission waits for the end of the loop's turn (loop_defer), to leave with the turn's
 * other commands in one sendmmsg; a send that fails then fails the command through cb
 * (-ECONNREFUSED for a closed port, as for a refusal reported later). Returns 0 with
 * *handle set (handle may be NULL), or -errno (-EINVAL, -EMSGSIZE, -ENOMEM), in which case
 * cb is never called. Never blocks; cb is never called from inside ng_send. */
int ng_send(struct ng *n, int idx, struct str dict, ng_h *cb, void *arg, uint64_t *handle);
/* Forgets a pending command: its callback is never called. Harmless on a finished one. */
void ng_cancel(struct ng *n, uint64_t handle);
/* Commands sent with ng_send and not yet finished or cancelled. */
unsigned ng_pending(const struct ng *n);
/* Datagrams that matched no pending command (late, duplicate or foreign). */
uint64_t ng_unmatched(const struct ng *n);

#endif
