/* fuzz_ws_frames.c: libFuzzer target for a WebSocket connection (ws.c with wslay): an accepted upgrade, then the input as a client's bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/tp_int.h"
#include "transport/transport.h"

/* What a connection would see: bytes written, messages delivered, whether it closed. */
struct fake {
	size_t written, delivered;
	bool closed;
	bool fail_writes; /* the connection is gone: writes fail */
	struct tp_ws *w;
};

static int w_write(void *conn, const char *buf, size_t len)
{
	struct fake *f = conn;
	(void)buf;
	if (f->fail_writes)
		return -ENOTCONN;
	f->written += len;
	return 0;
}

static void w_deliver(void *conn, char *buf, size_t len)
{
	struct fake *f = conn;
	if (len == 0 || len > TP_MAX_MSG || buf[len] != '\0')
		abort();
	buf[len] = 'x'; /* the spare byte is the callee's to use */
	f->delivered++;
	/* An answer sent while the message is handled, as the server does. */
	tp__ws_send(f->w, "SIP/2.0 200 OK\r\n\r\n", 18);
}

static void w_close(void *conn, const char *why, bool warn)
{
	struct fake *f = conn;
	(void)warn;
	if (!why || f->closed)
		abort(); /* once, with a reason */
	f->closed = true;
}

static const struct tp_ws_io io = { .write = w_write, .deliver = w_deliver, .close = w_close };

static const char upgrade[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
			      "Sec-WebSocket-Protocol: sip\r\n\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fake f = { 0 };
	if (tp__ws_new(&f.w, &io, &f, NULL, "fuzz") != 0)
		return 0;
	/* The first byte picks the piece size and whether writes fail half-way. */
	size_t chunk = size ? (size_t)data[0] % 61 + 1 : 1;
	bool fail_late = size && (data[0] & 0x80);
	size_t n = sizeof(upgrade) - 1 + size;
	char *buf = malloc(n + 1);
	if (!buf) {
		tp__ws_free(f.w);
		return 0;
	}
	memcpy(buf, upgrade, sizeof(upgrade) - 1);
	memcpy(buf + sizeof(upgrade) - 1, data, size);
	/* Fed as tcp.c does: each piece with what was left unused before it. */
	size_t pos = 0, kept = 0;
	while (pos < n && !f.closed) {
		size_t end = pos + chunk < n ? pos + chunk : n;
		size_t have = end - pos + kept;
		char *piece = malloc(have + 1);
		if (!piece)
			break;
		memcpy(piece, buf + pos - kept, have);
		size_t used = tp__ws_input(f.w, piece, have);
		free(piece);
		if (used > have)
			abort();
		kept = have - used;
		pos = end;
		if (fail_late && pos > n / 2)
			f.fail_writes = true;
		tp__ws_send(f.w, "OPTIONS sip:x SIP/2.0\r\n\r\n", 25);
	}
	free(buf);
	tp__ws_free(f.w);
	return 0;
}
