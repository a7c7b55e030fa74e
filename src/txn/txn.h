/* txn.h: SIP transactions (RFC 3261 §17, RFC 6026 Accepted): server and client machines. */
#ifndef PARLEY_TXN_H
#define PARLEY_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/str.h"
#include "core/timer.h"
#include "sip/sip.h"
#include "transport/transport.h"

/*
 * The layer sits between the parser and the router. The server's receive pipeline hands it
 * every parsed request (txn_recv_request) and response (txn_recv_response). Requests that
 * start a transaction, ACKs for 2xx and CANCELs go on up through txn_tu.on_request (to the
 * router); everything else (retransmissions, ACK for a non-2xx final) is absorbed here.
 *
 * The layer never touches a socket: every byte leaves through the send callback, to a
 * struct tp_source used as a destination (listener, peer address, proto, connection).
 *
 * Lifetime: the layer owns every transaction and frees it once it is terminated, always
 * from a timer handler (txn_recv_* and the TU's own calls never free the transaction they
 * act on, so a pointer stays valid for the rest of the call that produced it). Just
 * before freeing, it tells the owner: txn_tu.on_server_free for server transactions,
 * txn_client_ops.on_free for client transactions. After that callback the pointer is gone.
 * A terminated transaction therefore lives until the next timer_advance().
 */

struct txn_layer;
struct txn_server;
struct txn_client;

/* Timer base values in ms (RFC 3261 §17.1.1.1); 0 takes the default 500 / 4000 / 5000. */
struct txn_cfg {
	unsigned t1, t2, t4; /* ms: --t1 --t2 --t4, [server] t1 t2 t4 */
};
extern const struct cfg_key txn_cfg_keys[];
extern const size_t txn_cfg_nkeys;
void txn_cfg_defaults(struct txn_cfg *c);                      /* 500, 4000, 5000 (RFC 3261 §17.1.1.1) */
int txn_cfg_check(const void *base, char *err, size_t errlen); /* t1 <= t2 */

enum txn_state {
	TXN_TRYING = 0, /* non-INVITE: nothing received (client) / sent (server) yet */
	TXN_CALLING,    /* INVITE client: waiting for any response */
	TXN_PROCEEDING, /* a provisional was received / sent; an INVITE server starts here */
	TXN_COMPLETED,  /* a final (non-2xx for INVITE) was received / sent */
	TXN_CONFIRMED,  /* INVITE server: the ACK for its non-2xx final arrived */
	TXN_ACCEPTED,   /* INVITE, 2xx sent / received (RFC 6026): 2xx may still pass */
	TXN_TERMINATED, /* finished; freed at the next timer_advance */
};

const char *txn_state_name(enum txn_state s); /* "Trying", "Calling", ... */

/* Sends len bytes to dst; returns 0 or -errno. dst->lis, dst->addr, dst->proto and, for
 * streams, dst->conn_id say where. Called only from inside txn_* functions. */
typedef int(txn_send_h)(void *arg, const struct tp_source *dst, const char *buf, size_t len);

/* What the transaction user (the router) is told about server transactions. All are
 * called with the arg given to txn_layer_new. */
struct txn_tu {
	/* A request for the TU. st is the new server transaction that must be answered
	 * (txn_server_reply/_send) or dropped (txn_server_drop); for CANCEL it is the
	 * CANCEL's own transaction (use txn_server_find_invite to find what it cancels). st
	 * is NULL for an ACK that matched no transaction (the ACK for a 2xx): forward it or
	 * absorb it. msg and src are the caller's and valid only during the call; the
	 * transaction keeps its own copy (txn_server_request). */
	void (*on_request)(void *arg, struct txn_server *st, const struct sip_msg *msg, const struct tp_source *src);
	/* The INVITE server transaction sent a 3xx-6xx final and no ACK came within 64*T1
	 * (timer H). Optional. The transaction is freed right after. */
	void (*on_server_timeout)(void *arg, struct txn_server *st);
	/* st is about to be freed: drop every pointer to it. Optional. */
	void (*on_server_free)(void *arg, struct txn_server *st);
};

/* What the owner of one client transaction is told; tu is the slot given to
 * txn_client_new. Every member is optional. */
struct txn_client_ops {
	/* A response for this transaction, not a retransmission: each provisional, the final,
	 * and for INVITE every 2xx (retransmissions and 2xx from other forks too, while the
	 * transaction is Accepted: a proxy forwards them all). For a 3xx-6xx to an INVITE the
	 * layer has already sent the ACK. msg and src are valid only during the call. */
	void (*on_response)(void *tu, struct txn_client *ct, const struct sip_msg *msg, const struct tp_source *src);
	/* No final response: timer B (INVITE, still in Calling) or timer F (non-INVITE) fired;
	 * err is -ETIMEDOUT. Treat it as a 408 (§16.7 step 6 for a proxy). Or the transport
	 * lost the destination (txn_dest_failed): err is that error, say -ECONNREFUSED; treat
	 * it as a 503 (§16.7 step 6: a transport error). The transaction is freed right after. */
	void (*on_timeout)(void *tu, struct txn_client *ct, int err);
	/* ct is about to be freed: drop every pointer to it. */
	void (*on_free)(void *tu, struct txn_client *ct);
};

/* Live counters (the server's load level reads them; so do the tests and /metrics). */
#define TXN_RT_BUCKETS 14
struct txn_stats {
	unsigned servers;       /* server transactions alive now */
	unsigned clients;       /* client transactions alive now */
	uint64_t servers_total; /* created since start */
	uint64_t clients_total;
	uint64_t absorbed;    /* retransmitted requests / responses and non-2xx ACKs absorbed */
	uint64_t retransmits; /* requests and responses we resent (timers A, E, G and on demand) */
	uint64_t timeouts;    /* timers B, F and H that fired */
	/* Response time: request in -> first final response out, for the requests handed to
	 * the TU (answered through their transaction or statelessly by the TU).
	 * rt_bucket[i] counts those at or under txn_rt_bounds_us[i] and over the bound
	 * before it; the last bucket is everything slower. */
	uint64_t rt_bucket[TXN_RT_BUCKETS + 1];
	uint64_t rt_count;
	uint64_t rt_sum_us;
};
/* The upper bounds of the response-time buckets, in microseconds, rising. */
extern const uint32_t txn_rt_bounds_us[TXN_RT_BUCKETS];

/* ---- the layer ------------------------------------------------------------------------ */

/* Creates a layer whose timers run on w (the loop's wheel; tests pass their own and
 * advance it by hand). tu and send_arg/tu_arg must outlive the layer. Returns 0, -ENOMEM,
 * or -EIO when the random key of its tables cannot be made (core/khash.h). */
int txn_layer_new(struct txn_layer **lp, const struct txn_cfg *cfg, struct timer_wheel *w, txn_send_h *send,
		  void *send_arg, const struct txn_tu *tu, void *tu_arg);
/* Sets the TU (tu_arg as its arg) of a layer made with none: the TU may need the layer to
 * exist first (the router hands requests to a proxy that sends through the layer). */
void txn_layer_set_tu(struct txn_layer *l, const struct txn_tu *tu, void *tu_arg);
/* Stops every timer and frees every transaction without calling any callback: the TU
 * frees its own contexts. */
void txn_layer_free(struct txn_layer *l);
const struct txn_stats *txn_layer_stats(const struct txn_layer *l);
const struct txn_cfg *txn_layer_cfg(const struct txn_layer *l);

/* Writes a new branch "z9hG4bK" + 16 hex digits, unique for the layer's life and
 * unpredictable across restarts; returns its length. */
#define TXN_BRANCH_SIZE 24
size_t txn_make_branch(struct txn_layer *l, char out[TXN_BRANCH_SIZE]);
/* Writes a fresh 16 hex digit tag (To/From tag); returns its length. */
#define TXN_TAG_SIZE 17
size_t txn_make_tag(struct txn_layer *l, char out[TXN_TAG_SIZE]);

/* ---- input from the router -------------------------------------------------------------- */

/* Matches a parsed request (RFC 3261 §17.2.3: branch + sent-by + method, or the RFC 2543
 * rules when the branch lacks the magic cookie). Retransmissions are absorbed and answered
 * with the last response; an ACK for a non-2xx final is absorbed; anything else goes to
 * on_request (a new server transaction first, unless it is an ACK). Returns 0, or -ENOMEM
 * when a new transaction could not be made (the router may answer 500 statelessly), or
 * -EINVAL for a response. */
int txn_recv_request(struct txn_layer *l, const struct sip_msg *msg, const struct tp_source *src);
/* Matches a parsed response to a client transaction by top Via branch and CSeq method
 * (§17.1.3) and runs it. Returns 0 when a transaction took it (delivered or absorbed), or
 * -ENOENT when none matched: a stateful proxy forwards it statelessly (§16.7 step 3 /
 * §16.11) or drops it. */
int txn_recv_response(struct txn_layer *l, const struct sip_msg *msg, const struct tp_source *src);

/* ---- server transactions -------------------------------------------------------------- */

/* Sends a response built from the stored request with sip_print_response. opt may be NULL.
 * The layer fills in what opt leaves empty: the top Via's received= (when the sent-by host
 * is not the source address) and rport= (when the request asked for it), and for status >
 * 100 a To tag, the same for every response of this transaction, when the request's To
 * has none. reason NULL takes sip_reason(status). Returns 0, -EINVAL (bad status, or a
 * non-2xx after a 2xx), -EALREADY (a final was already sent), -ENOBUFS (response over
 * SIP_MAX_MSG), -ENOMEM (no memory to print a response over 4 KB), or the send error
 * (the state still advances: on UDP the retransmission machinery or the next request
 * retransmission tries again). Without memory to keep the response for retransmission
 * it is still sent once and the state advances (retransmissions of the request then go
 * unanswered). */
int txn_server_reply(struct txn_server *st, unsigned status, const char *reason, const struct sip_resp_opts *opt);
/* Sends a complete response the caller built (a proxy relaying a response whose top Via
 * it removed). status is its status code. Same rules and results as txn_server_reply. */
int txn_server_send(struct txn_server *st, const char *buf, size_t len, unsigned status);
/* Sends 100 Trying (no To tag). For INVITE the TU should do this at once when it cannot
 * answer within 200 ms (§17.2.1); a proxy always does. */
int txn_server_trying(struct txn_server *st);
/* Ends a transaction the TU will not answer (a request it drops); freed at the next
 * timer_advance, on_server_free is still called. */
void txn_server_drop(struct txn_server *st);

/* Finds the INVITE server transaction a CANCEL cancels (§9.2): the same matching as for
 * requests, with method INVITE. NULL if none (answer the CANCEL with 481). The result may
 * already have a final response (check txn_server_state / txn_server_status). */
struct txn_server *txn_server_find_invite(struct txn_layer *l, const struct sip_msg *cancel);

/* The request that created st, on st's own copy of its bytes: one block holding the parse,
 * its header lines and the bytes, made when the TU first asks while in on_request (or when
 * on_request returns without a final response). NULL when memory for that copy ran out
 * (the caller answers 500 or drops the request). Valid until st has sent its final
 * response and the layer is next entered (txn_recv_*): then the request is dropped,
 * since a finished transaction lingers only to absorb retransmissions, and this returns
 * NULL (RFC 2543 transactions, matched by the request's fields, keep it). For the same
 * reason txn_server_reply fails with -EALREADY from then on. */
const struct sip_msg *txn_server_request(const struct txn_server *st);
/* Where the request came from / where responses go (§18.2.2 and RFC 3581 rport). */
const struct tp_source *txn_server_source(const struct txn_server *st);
const struct tp_source *txn_server_dest(const struct txn_server *st);
enum txn_state txn_server_state(const struct txn_server *st);
unsigned txn_server_status(const struct txn_server *st); /* last status sent, 0 if none */
/* The owner's slot, NULL until set. */
void txn_server_set_tu(struct txn_server *st, void *tu);
void *txn_server_tu(const struct txn_server *st);

/* ---- client transactions -------------------------------------------------------------- */

/* Starts a client transaction for the complete request in buf (not an ACK), which must
 * carry a top Via whose branch has the magic cookie (txn_make_branch). The layer copies
 * the bytes, sends them to dst and runs timers A/B (INVITE) or E/F, then D / K (and M
 * after a 2xx, RFC 6026). ops (may be NULL) and tu must stay valid while the transaction
 * lives (or until txn_client_detach). On success *ctp (may be NULL) is set and 0 returned;
 * on failure no callback is ever called and the result is -EINVAL (not a request with a
 * cookie branch, or an ACK), -EEXIST (a transaction with that branch and method exists),
 * -EMSGSIZE, -ENOMEM, -ESHUTDOWN or the error of the first send. */
int txn_client_new(struct txn_client **ctp, struct txn_layer *l, const char *buf, size_t len,
		   const struct tp_source *dst, const struct txn_client_ops *ops, void *tu);
/* txn_client_new for a caller that printed the request itself and so knows its top Via
 * branch and its method: the request is not parsed again. -EMSGSIZE also when the branch
 * and method name together pass 64 bytes. */
int txn_client_start(struct txn_client **ctp, struct txn_layer *l, const char *buf, size_t len, struct str branch,
		     enum sip_method mid, struct str method, const struct tp_source *dst,
		     const struct txn_client_ops *ops, void *tu);

/* The transport found dst unreachable (a refused connect, a reset connection): every client
 * transaction sent to it (over connection dst->conn_id, or to dst->addr when sent without
 * one) that has no final response yet ends now, its owner told through on_timeout with
 * err, instead of waiting for timer B or F. Returns how many ended. */
unsigned txn_dest_failed(struct txn_layer *l, const struct tp_source *dst, int err);

/* Cancels an INVITE client transaction (§9.1): builds the CANCEL (txn_client_print_cancel
 * with extra, e.g. a Reason header line) and sends it on a client transaction of its own
 * whose responses the layer absorbs. When no provisional has arrived yet, the CANCEL waits
 * for the first one, as §9.1 requires; if a final arrives first, nothing is sent. Calling
 * again is harmless. The INVITE transaction then usually ends with a 487 through
 * on_response; when no final comes, it ends 64*T1 after the CANCEL was sent (§9.1) with
 * on_timeout. A proxy still needs its timer C to send the CANCEL at all. Returns 0, -EINVAL
 * (not an INVITE), -EALREADY (a final response was already received), -ENOMEM, or an
 * error from sending the CANCEL. */
int txn_client_cancel(struct txn_client *ct, struct str extra);
/* Prints the CANCEL for INVITE transaction ct (same Request-URI, top Via, Route, From, To,
 * Call-ID and CSeq number, §9.1), with extra header lines (ending in CRLF; may be empty),
 * for a caller that wants to send it itself. Returns 0, -EINVAL or -ENOBUFS. */
int txn_client_print_cancel(const struct txn_client *ct, struct sip_out *o, struct str extra);

/* Stops all callbacks of ct (including on_free): the transaction runs to its end on its
 * own, absorbing and ACKing responses. For an owner that goes away first. */
void txn_client_detach(struct txn_client *ct);

enum txn_state txn_client_state(const struct txn_client *ct);
unsigned txn_client_status(const struct txn_client *ct); /* last status received, 0 if none */
bool txn_client_got_provisional(const struct txn_client *ct);
struct str txn_client_branch(const struct txn_client *ct);
enum sip_method txn_client_method(const struct txn_client *ct);
/* The request as sent (the layer's copy): valid until the final response arrives, after
 * which it is dropped and this returns STR_NULL. */
struct str txn_client_bytes(const struct txn_client *ct);
void *txn_client_tu(const struct txn_client *ct);

/* ---- helpers for stateless responses -------------------------------------------------- */

/* Where a response to req, received from src, goes (§18.2.2, RFC 3581): the same
 * connection on streams; on UDP the source address, with the source port when the top Via
 * has rport and the sent-by port (default 5060) otherwise. */
void txn_response_dest(struct tp_source *dst, const struct sip_msg *req, const struct tp_source *src);

/* Fills opt->via_received / opt->via_rport (if empty) for a response to req from src,
 * with text kept in b. */
struct txn_via_text {
	char received[64];
	char rport[8];
};
void txn_response_via(struct sip_resp_opts *opt, struct txn_via_text *b, const struct sip_msg *req,
		      const struct tp_source *src);

/* Prints a response to req (received from src) that no transaction keeps: a To tag of
 * ours when the request has none, received/rport on the top Via, extra header lines (may
 * be empty). Fills *dst with where it goes and returns its length, or 0 when it does not
 * fit in cap. */
size_t txn_print_stateless(struct txn_layer *l, const struct sip_msg *req, const struct tp_source *src, unsigned code,
			   const char *reason, struct str extra, char *out, size_t cap,
			   struct tp_source *dst /* OUT */);
/* Prints such a response and sends it through the layer's send function: for requests
 * that get one answer and no state (parse and sanity errors, challenges, refusals). */
void txn_reply_stateless(struct txn_layer *l, const struct sip_msg *req, const struct tp_source *src, unsigned code,
			 const char *reason, struct str extra);
/* Sends bytes through the layer's send function (a delayed stateless answer). */
int txn_send_raw(struct txn_layer *l, const struct tp_source *dst, const char *buf, size_t len);

#endif
