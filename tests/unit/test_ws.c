/* test_ws.c: unit tests for the WebSocket upgrade reader and Sec-WebSocket-Accept (ws.c). */
#include <string.h>

#include "transport/tp_int.h"
#include "transport/transport.h"
#include "unit.h"

#define REQ(extra)                                                    \
	"GET /sip HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n" \
	"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" extra "\r\n"

static int parse(const char *req, struct tp_ws_req *r)
{
	size_t scan = 0;
	if (tp__ws_parse(req, strlen(req), &scan, r) == TP_WS_MORE)
		return -1;
	return r->status;
}

/* RFC 6455 §1.3's example. */
static void t_accept_key(void)
{
	char acc[29];
	CHECK_INT(tp__ws_accept_key(STR("dGhlIHNhbXBsZSBub25jZQ=="), acc), 0);
	CHECK(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
}

static void t_upgrade(void)
{
	struct tp_ws_req r;
	const char *ok = REQ("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, sip\r\nOrigin: "
			     "https://x.test\r\n");
	CHECK_INT(parse(ok, &r), 0);
	CHECK_INT(r.len, strlen(ok));
	CHECK_STR(r.path, "/sip");
	CHECK_STR(r.host, "a.test");
	CHECK_STR(r.origin, "https://x.test");
	CHECK_STR(r.key, "dGhlIHNhbXBsZSBub25jZQ==");
	/* sip in a second Sec-WebSocket-Protocol line counts too; bytes after the request are
	 * not part of it. */
	const char *two = REQ("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n"
			      "Sec-WebSocket-Protocol: SIP\r\n") "\x81\x80";
	CHECK_INT(parse(two, &r), 0);
	CHECK_INT(r.len, strlen(two) - 2);
	/* Refusals. */
	CHECK_INT(parse(REQ("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n"), &r), 400);
	CHECK(strstr(r.why, "sip") != NULL);
	CHECK_INT(parse(REQ("Sec-WebSocket-Version: 13\r\n"), &r), 400);
	CHECK_INT(parse(REQ("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: sip\r\n"), &r), 426);
	CHECK(r.want_version);
	CHECK_INT(parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 426);
	CHECK_INT(parse("POST / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 400);
	CHECK_INT(parse("GET / HTTP/1.0\r\nHost: x\r\n\r\n", &r), 400);
	CHECK_INT(parse("GET /\r\n\r\n", &r), 400);
	CHECK_INT(parse("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", &r), 400);
	CHECK_INT(
		parse("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		      "Sec-WebSocket-Key: short==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
		      &r),
		400);
	CHECK(strstr(r.why, "Key") != NULL);
}

/* A request arriving in pieces: more is asked for until the empty line, and one over
 * TP_WS_REQ_MAX bytes is refused without waiting for its end. */
static void t_pieces_and_size(void)
{
	const char *ok = REQ("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n");
	size_t n = strlen(ok), scan = 0;
	struct tp_ws_req r;
	for (size_t i = 1; i < n; i++)
		CHECK_INT(tp__ws_parse(ok, i, &scan, &r), TP_WS_MORE);
	CHECK_INT(tp__ws_parse(ok, n, &scan, &r), TP_WS_DONE);
	CHECK_INT(r.status, 0);
	CHECK_INT(r.len, n);
	static char big[TP_WS_REQ_MAX + 100];
	memset(big, 'a', sizeof big);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	scan = 0;
	CHECK_INT(tp__ws_parse(big, TP_WS_REQ_MAX - 1, &scan, &r), TP_WS_MORE);
	CHECK_INT(tp__ws_parse(big, sizeof big, &scan, &r), TP_WS_DONE);
	CHECK_INT(r.status, 400);
	CHECK(strstr(r.why, "8192") != NULL);
}

static const struct unit_case cases[] = {
	{ "accept_key", t_accept_key },
	{ "upgrade", t_upgrade },
	{ "pieces_and_size", t_pieces_and_size },
};
UNIT_MAIN(cases)
