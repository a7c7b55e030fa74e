/* dialog.h: the dialogs this proxy helped set up, so that a request inside a dialog goes only where that dialog leads. */
#ifndef PARLEY_DIALOG_H
#define PARLEY_DIALOG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/str.h"
#include "transport/transport.h"

/*
 * A request with a To tag names a dialog, and a proxy on its route forwards it along the
 * Route header, that is wherever its sender says. Were that all, anyone could write a To
 * tag and a Route through us to anywhere (an open relay). So the proxy remembers each
 * dialog it record-routed: its Call-ID and the caller's tag (the key), and for each side
 * the addresses requests for that side may go to (where its requests came from, where its
 * responses came from, the hosts of its Contacts, the next hops we sent to). A request
 * inside a dialog is forwarded only when its dialog is known and its next hop is one of the
 * other side's addresses.
 *
 * Entries are opened when an initial INVITE, SUBSCRIBE or REFER is forwarded (so that a
 * NOTIFY racing the 2xx of its SUBSCRIBE finds its dialog), learn the callee side from
 * responses, are closed by a BYE's answer or when the request fails, and otherwise expire
 * when idle. The table is bounded: when it is full, no dialog is opened (the caller
 * answers 503).
 */

struct dlg_table;

struct dlg_conf {
	unsigned max;     /* dialogs at most (0: 100000) */
	uint32_t idle_s;  /* a confirmed dialog with no request this long is forgotten
			   * (0: 12 hours) */
	uint32_t early_s; /* an unanswered one is forgotten after this (0: 10 minutes) */
};
/* The [security] max-dialogs key of struct dlg_conf. */
extern const struct cfg_key dlg_cfg_keys[];
extern const size_t dlg_cfg_nkeys;
void dlg_cfg_defaults(struct dlg_conf *c); /* 100000 dialogs, default lifetimes */

enum dlg_side { DLG_CALLER = 0, DLG_CALLEE = 1 };

int dlg_table_new(struct dlg_table **tp, const struct dlg_conf *c);
void dlg_table_free(struct dlg_table *t);
unsigned dlg_count(const struct dlg_table *t);
/* The most dialogs the table keeps (dlg_open refuses more). */
unsigned dlg_capacity(const struct dlg_table *t);

/* Opens the dialog (call_id, caller_tag) for an initial request being forwarded, or finds
 * it when it exists (a retransmission, a second branch). Returns 0, -ENOSPC when the
 * table is full, -EINVAL for an empty Call-ID or tag or ones too long (over 255 bytes),
 * -ENOMEM. */
int dlg_open(struct dlg_table *t, struct str call_id, struct str caller_tag, uint32_t now);

/* Adds an address requests for side may be sent to (nothing when the dialog is unknown).
 * Each side keeps the latest few. */
void dlg_learn(struct dlg_table *t, struct str call_id, struct str caller_tag, enum dlg_side side,
	       const struct tp_addr *a);
/* A message of side came from a: where that side really is, behind any NAT (its flow;
 * learned as one of its addresses too). The latest wins, except that an early message (a
 * provisional response: early) does not move the flow of a confirmed dialog. */
void dlg_set_flow(struct dlg_table *t, struct str call_id, struct str caller_tag, enum dlg_side side,
		  const struct tp_addr *a, bool early);
/* A 2xx established the dialog: from now on it lives while used (idle_s). */
void dlg_confirm(struct dlg_table *t, struct str call_id, struct str caller_tag, uint32_t now);
/* Forgets the dialog (its BYE was answered, or the initial request failed). */
void dlg_close(struct dlg_table *t, struct str call_id, struct str caller_tag);

/* The dialog an in-dialog request belongs to, by its Call-ID and the tags of its From and
 * To (the caller's tag is the From tag of the caller's requests and the To tag of the
 * callee's). */
struct dlg_ref {
	struct str call_id;
	struct str caller_tag; /* the tag that keys the dialog */
	enum dlg_side from;    /* which side sent the request */
};
/* Finds the dialog of a request; returns false when there is none. Marks it used. */
bool dlg_find(struct dlg_table *t, struct str call_id, struct str from_tag, struct str to_tag, uint32_t now,
	      struct dlg_ref *out);
/* Whether a request from ref->from may be sent to dst: dst is one of the other side's
 * addresses (the IP address and the port must both match). */
bool dlg_allows(struct dlg_table *t, const struct dlg_ref *ref, const struct tp_addr *dst);

/* The flow of side in ref's dialog (where its messages came from: the caller's initial
 * request, the callee's answer); false when none was seen. */
bool dlg_flow(struct dlg_table *t, const struct dlg_ref *ref, enum dlg_side side, struct tp_addr *out);
/* Forgets dialogs whose time is up; looks at no more than max entries. */
void dlg_sweep(struct dlg_table *t, uint32_t now, unsigned max);

#endif
