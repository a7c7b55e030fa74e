/* sip.h: the SIP message model, parser and printer (RFC 3261 §7, §20, §25); no state, no I/O. */
#ifndef PARLEY_SIP_H
#define PARLEY_SIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

/* ---- methods ---------------------------------------------------------------------------- */

enum sip_method {
	SIP_METHOD_OTHER = 0, /* an extension method: compare msg->method by text */
	SIP_INVITE,
	SIP_ACK,
	SIP_BYE,
	SIP_CANCEL,
	SIP_REGISTER,
	SIP_OPTIONS,
	SIP_INFO,
	SIP_UPDATE,
	SIP_PRACK,
	SIP_SUBSCRIBE,
	SIP_NOTIFY,
	SIP_REFER,
	SIP_MESSAGE,
	SIP_PUBLISH,
};

/* Method names are case-sensitive (RFC 3261 §7.1): "invite" is an extension method. */
enum sip_method sip_method_from_str(struct str s);
const char *sip_method_name(enum sip_method m); /* "" for SIP_METHOD_OTHER */

/* ---- header ids: names (long and compact, any case) map to ids once, at parse time ---- */

enum sip_hdr_id {
	SIP_HDR_OTHER = 0,
	SIP_HDR_ACCEPT,
	SIP_HDR_ALLOW,
	SIP_HDR_AUTHORIZATION,
	SIP_HDR_CALL_ID,          /* i */
	SIP_HDR_CONTACT,          /* m */
	SIP_HDR_CONTENT_ENCODING, /* e */
	SIP_HDR_CONTENT_LENGTH,   /* l */
	SIP_HDR_CONTENT_TYPE,     /* c */
	SIP_HDR_CSEQ,
	SIP_HDR_DATE,
	SIP_HDR_EXPIRES,
	SIP_HDR_FROM, /* f */
	SIP_HDR_MAX_FORWARDS,
	SIP_HDR_MIN_EXPIRES,
	SIP_HDR_PATH,
	SIP_HDR_PROXY_AUTHENTICATE,
	SIP_HDR_PROXY_AUTHORIZATION,
	SIP_HDR_PROXY_REQUIRE,
	SIP_HDR_RECORD_ROUTE,
	SIP_HDR_REQUIRE,
	SIP_HDR_ROUTE,
	SIP_HDR_SERVER,
	SIP_HDR_SUBJECT,   /* s */
	SIP_HDR_SUPPORTED, /* k */
	SIP_HDR_TO,        /* t */
	SIP_HDR_UNSUPPORTED,
	SIP_HDR_USER_AGENT,
	SIP_HDR_VIA, /* v */
	SIP_HDR_WWW_AUTHENTICATE,
	SIP_HDR_EVENT,                /* o */
	SIP_HDR_REFER_TO,             /* r */
	SIP_HDR_ALLOW_EVENTS,         /* u */
	SIP_HDR_P_ASSERTED_IDENTITY,  /* RFC 3325 */
	SIP_HDR_P_PREFERRED_IDENTITY, /* RFC 3325 */
	SIP_HDR_REMOTE_PARTY_ID,      /* draft-ietf-sip-privacy, still sent by desk phones */
	SIP_HDR_RETRY_AFTER,
	SIP_HDR_COUNT
};

enum sip_hdr_id sip_hdr_id_from_name(struct str name);
const char *sip_hdr_name(enum sip_hdr_id id); /* canonical long name; "" for OTHER */

/* One header line as received. A header that lists several comma-separated values
 * (Via: a, b) is still one sip_hdr; walk its values with sip_list_next(). */
struct sip_hdr {
	enum sip_hdr_id id;
	struct str name;  /* as written */
	struct str value; /* trimmed; may contain folded line breaks (CRLF + WSP) */
	struct str line;  /* the whole line(s) from name to the last CRLF included */
};

/* ---- URIs (RFC 3261 §19.1, RFC 3966 tel) ------------------------------------------------ */

enum sip_scheme { SIP_SCHEME_OTHER = 0, SIP_SCHEME_SIP, SIP_SCHEME_SIPS, SIP_SCHEME_TEL };

struct sip_uri {
	enum sip_scheme scheme;
	struct str scheme_str;
	struct str user; /* still %-escaped; empty if none */
	struct str password;
	struct str host;    /* IPv6 references keep their brackets: "[::1]" */
	uint16_t port;      /* 0 when absent */
	struct str params;  /* ";a=b;lr" including the first ';', empty if none */
	struct str headers; /* "?x=y" including '?', empty if none */
	struct str raw;     /* the whole URI */
	/* common parameters picked out of params */
	struct str transport;
	struct str maddr;
	struct str user_param; /* user=phone */
	bool lr;
};

/* Parses one URI (no angle brackets). For sip/sips the grammar is checked; tel and other
 * schemes keep their text in user (tel) or raw. Returns 0 or -1. */
int sip_uri_parse(struct sip_uri *u, struct str s);
/* Finds a URI or generic ';name=value' parameter in a params view; found with empty value
 * for a bare flag. */
bool sip_param_get(struct str params, struct str name, struct str *value);
/* RFC 3261 §19.1.4 URI comparison (sip/sips). */
bool sip_uri_equal(const struct sip_uri *a, const struct sip_uri *b);

/* ---- name-addr / addr-spec (From, To, Contact, Route, Record-Route) ---------------------- */

struct sip_addr {
	struct str display; /* without quotes; may hold escapes; empty if none */
	struct str uri_str; /* inside <> or the addr-spec */
	struct sip_uri uri;
	struct str params; /* header params after the URI/">", from the first ';' */
	struct str tag;    /* tag= value, empty if none */
	struct str raw;    /* the whole value */
	bool bracketed;
	bool star; /* Contact: * */
};

int sip_addr_parse(struct sip_addr *a, struct str s);

/* ---- Via ---------------------------------------------------------------------------------- */

struct sip_via {
	struct str proto;     /* "SIP/2.0" (may hold LWS around '/': "SIP / 2.0") */
	struct str version;   /* "2.0" */
	struct str transport; /* "UDP", "TCP", ... */
	struct str host;      /* sent-by host, IPv6 in brackets */
	uint16_t port;        /* 0 when absent */
	struct str params;
	struct str branch;
	struct str received;
	struct str maddr;
	struct str rport; /* value if rport=N */
	bool has_rport;
	struct str raw; /* this Via value */
};

int sip_via_parse(struct sip_via *v, struct str s);

/* ---- digest credentials and challenges (RFC 2617, 7616, 8760) -------------------------- */

struct sip_auth {
	struct str scheme; /* "Digest" */
	struct str username, realm, nonce, uri, response, algorithm, cnonce, opaque, qop, nc;
	bool stale;
	struct str raw;
};

/* Parses Authorization/Proxy-Authorization/WWW-Authenticate/Proxy-Authenticate values.
 * Quoted values are returned without quotes (escapes kept). */
int sip_auth_parse(struct sip_auth *a, struct str s);

/* ---- lists ------------------------------------------------------------------------------ */

/* Takes the next comma-separated element of a header value, respecting quotes and <>.
 * *rest is advanced. Returns false when no element is left. */
bool sip_list_next(struct str *rest, struct str *item);

/* ---- the message ------------------------------------------------------------------------ */

/* The most header lines a message may have: the size of the array a caller gives
 * sip_msg_parse for a message off the wire. */
#define SIP_MAX_HEADERS 96
#define SIP_MAX_MSG 65535

/* A parse: views into the message's buffer, and header lines in an array the caller
 * provides (sip_msg_parse, sip_msg_rebase), so that the struct stays small whatever the
 * limit and a copy holds exactly the headers it has. */
struct sip_msg {
	const char *buf; /* start of the message */
	size_t len;      /* bytes of this message: headers + Content-Length body */

	bool request;
	/* request line */
	struct str method;
	enum sip_method mid;
	struct str ruri_str;
	struct sip_uri ruri;
	/* status line */
	unsigned status;
	struct str reason;

	struct str version; /* "SIP/2.0" normally */

	struct sip_hdr *hdr; /* the caller's array: hdr[0..nhdr) are the header lines */
	unsigned nhdr;
	unsigned hdr_cap;              /* entries hdr has room for */
	int16_t first[SIP_HDR_COUNT];  /* index into hdr of the first header with that id, -1 */
	uint16_t count[SIP_HDR_COUNT]; /* header lines with that id */

	/* parsed at parse time because every stage needs them */
	struct sip_via via; /* top Via value */
	struct sip_addr from, to;
	struct str call_id;
	uint32_t cseq;
	struct str cseq_method_str;
	enum sip_method cseq_method;
	int max_forwards; /* -1 if absent */
	int64_t expires;  /* Expires header, -1 if absent */
	struct str body;
};

enum sip_parse_result {
	SIP_PARSE_OK = 0,
	SIP_PARSE_AGAIN = 1,  /* incomplete (stream transports): read more */
	SIP_PARSE_ERROR = -1, /* malformed: see err */
};

struct sip_parse_err {
	unsigned code;      /* 400, 505, 513, ...: what to answer if a response can be built */
	const char *reason; /* static reason phrase naming the problem, e.g. "Bad CSeq" */
	bool can_respond;   /* a request whose top Via parsed: a response is routed by the
			     * Via alone and copies From, To, Call-ID, CSeq as received */
};

/* Parses one message from buf, its header lines into hdrs, which has room for cap of them
 * (SIP_MAX_HEADERS for a message off the wire; at most INT16_MAX are used); more lines
 * than that are error 400 "Too many headers". hdrs must outlive the parse, like buf.
 * On a datagram transport pass datagram=true: the body is
 * the Content-Length octets and anything after them is ignored (RFC 3261 §18.3); without
 * Content-Length the body is the rest of the datagram. On a stream Content-Length is
 * required. Never allocates; every view in *m points into buf. On error *err says why, and
 * whatever was parsed (Via, From, To, Call-ID, CSeq) is left in *m so that a 400 can be
 * built when err->can_respond.
 * Leading CRLFs (keep-alives) are skipped: m->buf is where the message starts, so a stream
 * reader consumes (m->buf - buf) + m->len bytes. Missing From/To/Call-ID/CSeq/Via are
 * parse errors ("Missing Call-ID"); repeated ones are left to sip_sanity(). A datagram
 * over SIP_MAX_MSG, or a stream message whose headers or Content-Length go past it, is
 * error 513. After an error on a stream the framing cannot be trusted: close it. */
enum sip_parse_result sip_msg_parse(struct sip_msg *m, struct sip_hdr *hdrs, unsigned cap, const char *buf, size_t len,
				    bool datagram, struct sip_parse_err *err);

/* Finds the first header line with id (not OTHER) in the message in buf without parsing
 * it: *value is its value, trimmed, folded lines included. False when there is none
 * before the empty line, or a line before it is not a header. Reads only the start line
 * and the header lines up to the one found; for a caller that needs one header of a
 * message it printed itself (a To tag), where a parse would need a header array. */
bool sip_msg_peek(const char *buf, size_t len, enum sip_hdr_id id, struct str *value);

/* The first / next header with an id (NULL when none). */
const struct sip_hdr *sip_msg_hdr(const struct sip_msg *m, enum sip_hdr_id id);
const struct sip_hdr *sip_msg_hdr_next(const struct sip_msg *m, const struct sip_hdr *h);
/* Looks up an unknown header by name, case-insensitively. */
const struct sip_hdr *sip_msg_hdr_by_name(const struct sip_msg *m, struct str name);

/* Checks a parsed message against the rules that need no configuration. Returns 0 when
 * it passes, else the status code to answer with and, in *reason, a static phrase naming
 * the problem: 505 for a version other than SIP/2.0; 400 for a missing Via or a missing or
 * repeated From, To, Call-ID, CSeq (and repeated Max-Forwards, Content-Length), or a CSeq
 * method that differs from the request method; 501 for that mismatch when the request
 * method is an extension (RFC 4475 mismatch02); 416 for a Request-URI scheme other than
 * sip, sips or tel. For a response only the version and the headers are checked.
 * Proxy-Require (420), Max-Forwards 0 (483) and authentication are for the router. */
unsigned sip_sanity(const struct sip_msg *m, const char **reason);

/* ---- printing ------------------------------------------------------------------------- */

/* A bounded output buffer; writes past cap set overflow and are dropped. */
struct sip_out {
	char *p;
	size_t len, cap;
	bool overflow;
};

void sip_out_init(struct sip_out *o, char *buf, size_t cap);
void sip_out_str(struct sip_out *o, struct str s);
void sip_out_cstr(struct sip_out *o, const char *s);
void sip_out_u64(struct sip_out *o, uint64_t v);
void sip_out_fmt(struct sip_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Builds a response to request req: every Via as received (the top one completed with
 * received=/rport= when via_received/via_rport are non-empty), From, To (with to_tag added
 * when To has none and to_tag is non-empty), Call-ID, CSeq, then extra (preformatted
 * header lines ending in CRLF, may be empty), Server, Content-Length and body. */
struct sip_resp_opts {
	struct str to_tag;
	struct str extra;
	struct str body;
	struct str content_type;
	struct str server;
	struct str via_received;
	struct str via_rport;
};
int sip_print_response(struct sip_out *o, const struct sip_msg *req, unsigned status, const char *reason,
		       const struct sip_resp_opts *opt);

/* Builds a forwarded request (RFC 3261 §16.6): new_ruri (or the original when empty), a new
 * top Via line (via, e.g. "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK..."), the received
 * Via list (the top one completed with received/rport when given), Max-Forwards - 1 (70
 * added when absent), our own first Route removed when drop_first_route, a Record-Route
 * (rr, full header value, omitted when empty) added before the others, extra lines added,
 * headers listed in drop removed, then the body. Returns 0 or -1 on overflow. */
struct sip_fwd_opts {
	struct str new_ruri;
	struct str via;
	struct str top_via_received;
	struct str top_via_rport;
	bool drop_first_route;
	struct str record_route;
	struct str extra;
	const enum sip_hdr_id *drop;
	unsigned ndrop;
	bool new_body; /* body replaces the request's (Content-Length follows it) */
	struct str body;
};
int sip_print_request_fwd(struct sip_out *o, const struct sip_msg *req, const struct sip_fwd_opts *opt);

/* Prints m again with a new body: the start line and every header line as received,
 * except Content-Length (long or compact "l") and, when content_type is non-empty,
 * Content-Type ("c"), which are replaced by Content-Type: content_type (if given) and
 * Content-Length: body.l; then the empty line and body. For putting a media relay's
 * rewritten SDP into a request or response before it is parsed again and forwarded.
 * Returns 0 or -1 on overflow. */
int sip_print_rebody(struct sip_out *o, const struct sip_msg *m, struct str content_type, struct str body);

/* Reason phrase for a status code ("Not Found"); "Unknown" if none known. */
const char *sip_reason(unsigned status);

/* ---- SDP (RFC 4566), read only: a media relay rewrites it ------------------------------ */

#define SDP_MAX_MEDIA 16
#define SDP_MAX_LEN 16384 /* larger bodies are refused */

enum sdp_dir { SDP_SENDRECV = 0, SDP_SENDONLY, SDP_RECVONLY, SDP_INACTIVE };

/* One m= section. Views into the body given to sdp_parse. */
struct sdp_media {
	struct str type;  /* "audio" */
	uint16_t port;    /* 0: the stream is rejected or disabled (RFC 3264 §5.1) */
	struct str proto; /* "RTP/AVP", "UDP/TLS/RTP/SAVPF", ... */
	struct str addr;  /* this media's c= address, else the session's (never empty: refused) */
	bool ice;         /* a=ice-ufrag (media or session level) */
	bool dtls;        /* a=fingerprint (media or session level) */
	enum sdp_dir dir; /* media level, else session level, else sendrecv */
};

struct sdp {
	struct str origin_addr; /* o= unicast address */
	struct str addr;        /* session c= address, may be empty */
	unsigned nmedia;
	struct sdp_media m[SDP_MAX_MEDIA];
};

/* Parses body (Content-Type application/sdp) into *s without allocating: every view
 * points into body. Returns 0, or -1 with *why a static phrase naming the problem ("SDP
 * too large", "SDP: first line is not v=0", "SDP: bad m= line", "SDP: no m= line", "SDP:
 * media with no connection address", "SDP: too many m= lines", "SDP: bad c= line", ...).
 * Lines end in CRLF or a bare LF; every line is "<letter>=<value>". c= is "IN IP4 addr"
 * or "IN IP6 addr" (a /ttl suffix is dropped from the view). Reads nothing outside body. */
int sdp_parse(struct sdp *s, struct str body, const char **why);
/* Whether the SDP is a WebRTC one: some media whose proto contains "SAVPF" or starts
 * with "UDP/TLS" together with ICE (the kind that needs the relay's ICE/DTLS conversion
 * toward a plain RTP/AVP phone). */
bool sdp_is_webrtc(const struct sdp *s);

/* Whether m's body is SDP: a non-empty body with Content-Type application/sdp
 * (parameters and case ignored). A body without Content-Type is not SDP (RFC 3261 §20.15
 * requires the header for a non-empty body, so nothing can be assumed), nor is a
 * multipart one (RFC 5621): the relay is given single SDP bodies only. */
bool sip_msg_has_sdp(const struct sip_msg *m);

/* ---- copying a parsed message (msgcopy.c) ----------------------------------------------- */

/* Makes dst the parse of newbuf, a verbatim copy of src's len bytes from src->buf: every
 * view of src into its buffer is moved by the same offset, views that point elsewhere
 * (NULL, static text) are kept. Much cheaper than parsing the copy again. dst's header
 * lines go to hdrs, which must have room for src->nhdr of them (dst->hdr_cap is set to
 * exactly that); dst may be src and hdrs may be src->hdr (rebase in place). */
void sip_msg_rebase(struct sip_msg *dst, struct sip_hdr *hdrs, const struct sip_msg *src, const char *newbuf);

#endif
