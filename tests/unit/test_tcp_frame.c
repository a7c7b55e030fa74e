/* test_tcp_frame.c: unit tests of the stream framer (tp_frame): Content-Length, pings, limits, pieces. */
#include "unit.h"

#include <stdlib.h>

#include "transport/transport.h"

struct out {
	enum tp_frame f;
	size_t skip, len;
};

/* Frames s once, from a zeroed state, with limit max. */
static struct out frame(const char *s, size_t max)
{
	struct tp_frame_state st = { 0 };
	struct out o;
	o.f = tp_frame(s, strlen(s), max, &st, &o.skip, &o.len);
	return o;
}

#define REQ "OPTIONS sip:a.test SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"

static void t_whole(void)
{
	const char *m = REQ "Content-Length: 4\r\n\r\nbodyNEXT";
	struct out o = frame(m, TP_MAX_MSG);
	CHECK_INT(o.f, TP_FRAME_MSG);
	CHECK_INT(o.skip, 0);
	CHECK_INT(o.len, strlen(m) - 4);
	/* Compact form, odd case, spaces before the colon, bare LFs. */
	o = frame(REQ "l : 0\r\n\r\n", TP_MAX_MSG);
	CHECK_INT(o.f, TP_FRAME_MSG);
	CHECK_INT(o.len, strlen(REQ "l : 0\r\n\r\n"));
	o = frame("OPTIONS sip:a SIP/2.0\ncOnTeNt-LeNgTh:2\n\nab", TP_MAX_MSG);
	CHECK_INT(o.f, TP_FRAME_MSG);
	CHECK_INT(o.len, strlen("OPTIONS sip:a SIP/2.0\ncOnTeNt-LeNgTh:2\n\nab"));
	/* A header that only starts like it is not it. */
	o = frame(REQ "Content-Length-X: 9\r\nLx: 3\r\nContent-Length: 0\r\n\r\n", TP_MAX_MSG);
	CHECK_INT(o.f, TP_FRAME_MSG);
	/* The same length twice is harmless. */
	o = frame(REQ "Content-Length: 0\r\nl: 0\r\n\r\n", TP_MAX_MSG);
	CHECK_INT(o.f, TP_FRAME_MSG);
}

static void t_keepalive(void)
{
	struct out o = frame("\r\n\r\n", TP_MAX_MSG);
	CHECK_INT(o.f, TP_FRAME_PING);
	CHECK_INT(o.skip, 4);
	/* A lone CRLF may be half a ping: wait. */
	o = frame("\r\n", TP_MAX_MSG);
	CHECK_INT(o.f, TP_FRAME_MORE);
	o = frame("\r\n\r", TP_MAX_MSG);
	CHECK_INT(o.f, TP_FRAME_MORE);
	/* CRLFs before a message are skipped. */
	o = frame("\r\n" REQ "Content-Length: 0\r\n\r\n", TP_MAX_MSG);
	CHECK_INT(o.f, TP_FRAME_MSG);
	CHECK_INT(o.skip, 2);
	CHECK_INT(o.len, strlen(REQ "Content-Length: 0\r\n\r\n"));
}

static void t_errors(void)
{
	struct out o = frame(REQ "\r\nbody", TP_MAX_MSG);
	CHECK_INT(o.f, TP_FRAME_NO_LENGTH);
	CHECK_INT(o.len, strlen(REQ "\r\n"));
	CHECK_INT(frame(REQ "Content-Length: x\r\n\r\n", TP_MAX_MSG).f, TP_FRAME_BAD_LENGTH);
	CHECK_INT(frame(REQ "Content-Length: \r\n\r\n", TP_MAX_MSG).f, TP_FRAME_BAD_LENGTH);
	CHECK_INT(frame(REQ "Content-Length: 1\r\nl: 2\r\n\r\nab", TP_MAX_MSG).f, TP_FRAME_BAD_LENGTH);
	CHECK_INT(frame(REQ "Content-Length: -1\r\n\r\n", TP_MAX_MSG).f, TP_FRAME_BAD_LENGTH);
	/* Over the limit: by Content-Length (headers known), or headers that never end. */
	o = frame(REQ "Content-Length: 99999999999999999999999\r\n\r\n", TP_MAX_MSG);
	CHECK_INT(o.f, TP_FRAME_TOO_BIG);
	CHECK(o.len > 0);
	o = frame(REQ "Content-Length: 100\r\n\r\n", 120);
	CHECK_INT(o.f, TP_FRAME_TOO_BIG);
	char *junk = malloc(2001);
	memset(junk, 'x', 2000);
	junk[2000] = '\0';
	CHECK_INT(frame(junk, 2000).f, TP_FRAME_TOO_BIG);
	CHECK_INT(frame(junk, 2001).f, TP_FRAME_MORE);
	free(junk);
}

/* The message arriving one byte at a time comes out once, whole, at its last byte; the
 * state carries the search forward. */
static void t_pieces(void)
{
	const char *m = REQ "Content-Length: 5\r\n\r\nhello";
	size_t n = strlen(m);
	struct tp_frame_state st = { 0 };
	for (size_t i = 1; i <= n; i++) {
		size_t skip, len;
		enum tp_frame f = tp_frame(m, i, TP_MAX_MSG, &st, &skip, &len);
		if (i < n) {
			CHECK_INT(f, TP_FRAME_MORE);
		} else {
			CHECK_INT(f, TP_FRAME_MSG);
			CHECK_INT(len, n);
		}
	}
	/* Headers whole, body in two pieces. */
	struct tp_frame_state s2 = { 0 };
	size_t skip, len;
	CHECK_INT(tp_frame(m, n - 3, TP_MAX_MSG, &s2, &skip, &len), TP_FRAME_MORE);
	CHECK_INT(tp_frame(m, n - 1, TP_MAX_MSG, &s2, &skip, &len), TP_FRAME_MORE);
	CHECK_INT(tp_frame(m, n, TP_MAX_MSG, &s2, &skip, &len), TP_FRAME_MSG);
	CHECK_INT(len, n);
}

static const struct unit_case cases[] = {
	{ "whole", t_whole },
	{ "keepalive", t_keepalive },
	{ "errors", t_errors },
	{ "pieces", t_pieces },
};
UNIT_MAIN(cases)
