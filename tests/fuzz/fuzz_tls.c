/* fuzz_tls.c: libFuzzer target for tls.c's connections (OpenSSL over memory BIOs): a real client's bytes reach a server-side tls_conn cut, corrupted or mixed with the input's own, plaintext going both ways. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/loop.h"
#include "transport/tp_int.h"
#include "transport/transport.h"

/* Set up once (a handshake per input is the cost; a certificate per input would be 10x):
 * the transport whose server context tls.c made, and a client context. */
struct env {
	struct loop *loop;
	struct transport *tp;
	SSL_CTX *cli;
	char dir[64]; /* the self-signed certificate and key, removed at exit */
};
static struct env *E;

static void on_recv(const struct tp_source *src, char *buf, size_t len, void *arg)
{
	(void)src;
	(void)buf;
	(void)len;
	(void)arg;
}

static void cleanup(void)
{
	char p[128];
	snprintf(p, sizeof p, "%s/db-tls.crt", E->dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/db-tls.key", E->dir);
	unlink(p);
	rmdir(E->dir);
}

static void init(void)
{
	if (E)
		return;
	E = calloc(1, sizeof(*E));
	if (!E)
		abort();
	snprintf(E->dir, sizeof E->dir, "/tmp/parley-fuzz-tls-XXXXXX");
	if (!mkdtemp(E->dir) || loop_new(&E->loop) || tp_new(&E->tp, E->loop, on_recv, NULL))
		abort();
	atexit(cleanup);
	char base[128], err[600];
	snprintf(base, sizeof base, "%s/db", E->dir);
	tp_tls_base(E->tp, base);
	if (tp__tls_init(E->tp, err, sizeof err)) {
		fprintf(stderr, "fuzz_tls: %s\n", err);
		abort();
	}
	E->cli = SSL_CTX_new(TLS_client_method());
	if (!E->cli)
		abort();
	SSL_CTX_set_verify(E->cli, SSL_VERIFY_NONE, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	init();
	return 0;
}

/* The plaintext streams are known by position, so nothing needs keeping to check them:
 * byte k the client writes, byte k the server puts. */
static uint8_t c_byte(size_t k)
{
	return (uint8_t)(k * 31 + 7);
}

static uint8_t s_byte(size_t k)
{
	return (uint8_t)(k * 17 + 1);
}

#define STREAM_MAX 65536 /* plaintext each way at most, per input */

/* One run: the state of both ends. */
struct run {
	struct tls_conn *srv;
	SSL *cli;
	BIO *cin, *cout;      /* the client's ciphertext in, out */
	size_t c_sent, s_got; /* client plaintext written; of it, read by the server */
	size_t s_put, c_got;  /* server plaintext put; of it, read by the client */
	bool s_over;          /* the server failed or saw the end: tcp.c would close */
	bool c_over;          /* the client failed or shut down */
};

/* The client runs: its handshake, then what it can read (checked against the server's
 * stream: decryption never makes up bytes, whatever was corrupted on the way). */
static void client_step(struct run *r)
{
	if (r->c_over)
		return;
	if (!SSL_is_init_finished(r->cli)) {
		int rc = SSL_do_handshake(r->cli);
		if (rc <= 0 && SSL_get_error(r->cli, rc) != SSL_ERROR_WANT_READ)
			r->c_over = true;
		ERR_clear_error();
		return;
	}
	uint8_t b[512];
	for (;;) {
		int n = SSL_read(r->cli, b, sizeof b);
		if (n <= 0) {
			if (SSL_get_error(r->cli, n) != SSL_ERROR_WANT_READ)
				r->c_over = true;
			ERR_clear_error();
			return;
		}
		for (int k = 0; k < n; k++)
			if (b[k] != s_byte(r->c_got + (size_t)k) || r->c_got + (size_t)k >= r->s_put)
				abort(); /* the client read what the server never put */
		r->c_got += (size_t)n;
	}
}

/* The server runs as tcp.c runs it: advance and decrypt into room bytes, then its output
 * goes to the client. */
static void server_step(struct run *r, size_t room)
{
	if (r->s_over)
		return;
	char buf[256];
	size_t got = 99999;
	enum tp_tls_rd rd = tp__tls_read(r->srv, buf, room, &got);
	if (got > room || (rd == TLS_RD_FULL) != (got == room && tp__tls_more(r->srv)))
		abort();
	if (rd == TLS_RD_FAIL && !tp__tls_error(r->srv)[0])
		abort(); /* a failure always says why (the close's log line) */
	for (size_t k = 0; k < got; k++)
		if ((uint8_t)buf[k] != c_byte(r->s_got + k) || r->s_got + k >= r->c_sent)
			abort(); /* the server read what the client never wrote */
	r->s_got += got;
	if (rd == TLS_RD_FAIL || rd == TLS_RD_EOF)
		r->s_over = true;
}

static void server_out(struct run *r)
{
	const char *p;
	size_t n = tp__tls_out(r->srv, &p);
	if (n && BIO_write(r->cin, p, (int)n) != (int)n)
		abort();
	tp__tls_out_done(r->srv);
	if (tp__tls_out(r->srv, &p) != 0)
		abort(); /* done means empty */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	struct tp_addr peer = { .len = sizeof(struct sockaddr_in) };
	peer.ss.in.sin_family = AF_INET;
	peer.ss.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct run r = { 0 };
	if (tp__tls_conn_new(E->tp, false, 1, &peer, &r.srv))
		return 0;
	r.cli = SSL_new(E->cli);
	r.cin = BIO_new(BIO_s_mem());
	r.cout = BIO_new(BIO_s_mem());
	if (!r.cli || !r.cin || !r.cout)
		abort();
	BIO_set_mem_eof_return(r.cin, -1);
	SSL_set_bio(r.cli, r.cin, r.cout);
	SSL_set_connect_state(r.cli);
	/* Two bytes a step: what to do, and how much or which. */
	for (size_t i = 0; i + 1 < size; i += 2) {
		uint8_t op = data[i], arg = data[i + 1];
		char piece[256];
		switch (op & 7) {
		case 0:
			client_step(&r);
			break;
		case 1: { /* arg + 1 bytes of the client's ciphertext to the server, maybe one flipped */
			int n = BIO_read(r.cout, piece, arg + 1);
			if (n <= 0)
				break;
			if (op & 0x80)
				piece[(op >> 3) % n] ^= (char)(arg | 1);
			if (!r.s_over && tp__tls_in(r.srv, piece, (size_t)n) != 0)
				abort();
			break;
		}
		case 2:
			server_step(&r, (size_t)arg % sizeof piece + 1);
			break;
		case 3:
			server_out(&r);
			break;
		case 4: /* the client writes arg + 1 bytes (after a key update, when op says) */
			if (r.c_over || !SSL_is_init_finished(r.cli) || r.c_sent + arg + 1 > STREAM_MAX)
				break;
			if ((op & 0x80) && SSL_version(r.cli) == TLS1_3_VERSION)
				SSL_key_update(r.cli, SSL_KEY_UPDATE_REQUESTED);
			for (int k = 0; k <= arg; k++)
				piece[k] = (char)c_byte(r.c_sent + (size_t)k);
			if (SSL_write(r.cli, piece, arg + 1) == arg + 1)
				r.c_sent += (size_t)arg + 1;
			else
				r.c_over = true;
			ERR_clear_error();
			break;
		case 5: /* the server puts arg + 1 bytes: before the handshake ends they wait */
			if (r.s_over || r.s_put + arg + 1 > STREAM_MAX)
				break;
			for (int k = 0; k <= arg; k++)
				piece[k] = (char)s_byte(r.s_put + (size_t)k);
			if (tp__tls_put(r.srv, piece, (size_t)arg + 1) == 0)
				r.s_put += (size_t)arg + 1;
			else
				r.s_over = true; /* tcp.c closes on a failed put */
			break;
		case 6: { /* the input's own bytes to the server, as if from the client */
			size_t n = (size_t)arg % 64 + 1;
			if (n > size - i - 2)
				n = size - i - 2;
			if (n && !r.s_over && tp__tls_in(r.srv, (const char *)data + i + 2, n) != 0)
				abort();
			i += n;
			break;
		}
		case 7: /* the client closes its side (close_notify) */
			if (!r.c_over && SSL_is_init_finished(r.cli))
				SSL_shutdown(r.cli);
			r.c_over = true;
			ERR_clear_error();
			break;
		}
	}
	/* FUZZ_TLS_DEBUG=1 fuzz_tls_replay DIR shows how far each seed got. */
	if (getenv("FUZZ_TLS_DEBUG"))
		fprintf(stderr, "done %d srv_got %zu/%zu cli_got %zu/%zu s_over %d err %s\n", tp__tls_done(r.srv),
			r.s_got, r.c_sent, r.c_got, r.s_put, r.s_over, tp__tls_error(r.srv));
	/* What tcp.c does last: the alert or close a failure left is sent. */
	server_out(&r);
	SSL_free(r.cli);
	tp__tls_conn_free(r.srv);
	ERR_clear_error();
	return 0;
}
