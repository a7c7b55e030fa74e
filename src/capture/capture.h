/* capture.h: recent SIP messages per call in a bounded ring, live listeners, HEP v3 export and the trace socket. */
#ifndef PARLEY_CAPTURE_H
#define PARLEY_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/str.h"
#include "transport/transport.h"

/* ---- settings ([capture]) -------------------------------------------------------------- */

struct capture_cfg {
	char memory[32]; /* --capture-memory auto: ring size, K/M/G suffixes; 0 keeps nothing;
			  * auto: CAPTURE_AUTO_MEMORY with an HTTP endpoint (the ring's only
			  * reader), 0 without (the server resolves it before capture_new) */
	char hep[300];   /* --hep udp:HOST:PORT: HEP v3 copies of every message; empty: off */
	unsigned hep_id; /* --hep-id 2001: the capture agent id in each HEP packet */
};
extern const struct cfg_key capture_cfg_keys[];
extern const size_t capture_cfg_nkeys;
void capture_cfg_defaults(struct capture_cfg *c); /* auto, no HEP, agent 2001 */
#define CAPTURE_AUTO_MEMORY "8M"
/* The memory size parses and the HEP target is udp:HOST:PORT with a numeric host (cfg_part). */
int capture_cfg_check(const void *base, char *err, size_t errlen);
/* "8M", "512K", "64MB", "1G", "4096", "0" into bytes; case-insensitive, an optional B or
 * iB after the suffix. Returns 0, or -EINVAL. */
int capture_size_parse(const char *s, uint64_t *bytes);

/* ---- the ring --------------------------------------------------------------------------- */

struct capture;

/* One message as it went over the wire. */
struct capture_msg {
	uint64_t wall_ms;      /* wall-clock time it was received or sent, ms since the epoch */
	bool out;              /* sent by Parley; false: received */
	enum tp_proto proto;   /* transport of that hop */
	struct tp_addr local;  /* Parley's side of the hop (the listener's address) */
	struct tp_addr remote; /* the other side */
	struct str call_id;    /* view (into text, or for capture_add anywhere valid during the
				* call); empty when the message has none */
	struct str text;       /* the whole SIP message as it went on the wire */
	bool transient;        /* listeners and HEP see it, the ring does not keep it: it did
				* not parse as SIP (anyone can send junk that would evict the
				* ladders of real calls), or it is a REGISTER or OPTIONS or an
				* answer to one (a phone fleet's refreshes and keepalives would
				* push calls out, and the ladders are of calls) */
};

/* A ring of cfg's memory size (0: none; not auto) and, with cfg->hep, a non-blocking UDP socket for
 * the export. cfg must have passed capture_cfg_check. Returns 0, or -errno with the reason
 * in err. */
int capture_new(struct capture **cp, const struct capture_cfg *cfg, struct log *lg, char *err, size_t errlen);
void capture_free(struct capture *c);

/* Whether capture_add would do anything (a ring, HEP or a listener): the server skips
 * building a capture_msg when it would not. */
bool capture_on(const struct capture *c);
/* Captures m: copied into the ring (when it parsed, has a Call-ID and fits), handed to every
 * listener and sent as HEP. An empty call_id is looked for in text (a cheap scan of the
 * header lines for Call-ID or i). m's views need only live during the call. */
void capture_add(struct capture *c, const struct capture_msg *m);
/* Whether a caller may skip building a message for capture_add: true when capture is off
 * (!capture_on), and when capture_add would only count it (keep false: the ring would not
 * hold it, and no HEP target or listener is there to take it), which is done here (a
 * registration's four messages with only the ring on). One call on the per-message path. */
bool capture_skips(struct capture *c, bool keep);
/* Finds the Call-ID header's value in a SIP message's header section (long or compact
 * form, any case); empty when there is none. Reads only text. */
struct str capture_find_call_id(struct str text);

/* Calls fn for each message kept for call_id, oldest first; stops when fn returns nonzero
 * and returns that value (0 when it never did). The views in m live until the next
 * capture_add. */
int capture_each(const struct capture *c, struct str call_id, int (*fn)(const struct capture_msg *m, void *arg),
		 void *arg);
/* Live listeners: fn sees every message as it is captured (in and out, any call) until
 * capture_unlisten. Returns a handle >= 0, or -ENOMEM. Works even when the ring is off.
 * fn must not call capture_add; it may call capture_unlisten on any handle. */
int capture_listen(struct capture *c, void (*fn)(const struct capture_msg *m, void *arg), void *arg);
void capture_unlisten(struct capture *c, int handle);

struct capture_stats {
	uint64_t captured;      /* messages captured (in and out) since start */
	uint64_t kept;          /* of those, copied into the ring */
	uint64_t ring_bytes;    /* bytes of the ring that hold live messages now */
	uint64_t ring_size;     /* the ring's size (--capture-memory) */
	uint64_t calls;         /* calls with messages in the ring now */
	uint64_t calls_evicted; /* calls dropped whole to make room */
	uint64_t hep_sent;      /* HEP packets sent */
	uint64_t hep_errors;    /* HEP packets the socket refused */
	unsigned listeners;     /* live listeners now (trace clients, event streams) */
};
const struct capture_stats *capture_stats(const struct capture *c);

/* ---- the trace socket (parley trace) ----------------------------------------------------- */

/* A unix stream socket (mode 0600) over which every captured message streams to each
 * connected client, framed as: 4-byte big-endian length, then a line
 * "msg WALL_MS in|out PROTO LOCAL REMOTE\n" followed by the message, or a line
 * "dropped N\n" when N messages did not fit in a slow client's queue. */
struct capture_sock;

/* Where the server puts it: db_path + ".trace.sock" into buf (n bytes). */
char *capture_sock_path(const char *db_path, char *buf, size_t n);
/* Opens the socket at path on loop (a stale socket file is replaced; a live server's is
 * not: -EADDRINUSE). Returns 0, or -errno with the reason in err. */
int capture_sock_open(struct capture_sock **sp, struct capture *c, struct loop *loop, struct log *lg, const char *path,
		      char *err, size_t errlen);
/* Closes every client and removes the socket file. */
void capture_sock_close(struct capture_sock *s);

/* The most bytes queued for one trace client before its messages are dropped. */
#define CAPTURE_SOCK_QUEUE (1u << 20)

#endif
