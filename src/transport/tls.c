/* tls.c: TLS on stream connections: contexts, certificates (given or self-signed) and each connection's OpenSSL state over memory BIOs. */
#include "transport/transport.h"
#include "transport/tp_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define NAMES 64                                    /* host names remembered for outbound verification */
#define PEND_MAX (512 * 1024)                       /* plaintext waiting for a handshake (as tcp.c's WQ_MAX) */
#define CERT_DAYS (10L * 365)                       /* a self-signed certificate's validity */
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20" /* forward secrecy, AEAD only */
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"

/* The name a destination was reached by, for checking its certificate (tp_tls_name). */
struct tls_name {
	struct tp_addr addr;
	char host[256];
};

struct tls {
	SSL_CTX *srv; /* what listeners present */
	SSL_CTX *cli; /* what outbound connections verify with */
	struct tls_name names[NAMES];
	unsigned nnames, next; /* used entries; the next one replaced when full */
	/* Connections reach their ciphertext through a BIO of this method (see "the BIO"
	 * below): it keeps no buffer per connection. */
	BIO_METHOD *meth;
	/* Ciphertext made by one connection and not queued yet: one buffer for all, since
	 * tcp.c queues what a call made before it makes another (tp__tls_out). */
	char *obuf;
	size_t olen, ocap;
	const struct tls_conn *oown; /* whose bytes obuf holds; NULL: nobody's */
	char err[240];               /* why the last call failed (read at once by tcp.c) */
};

struct tls_conn {
	struct transport *tp;
	SSL *ssl;
	uint64_t id;                /* the connection, for logs */
	const struct tp_addr *peer; /* the connection's (it outlives this state) */
	bool client;
	bool done;         /* handshake finished */
	bool more;         /* the last read filled its buffer: plaintext may wait in ssl */
	char *pend;        /* plaintext written before the handshake finished */
	size_t plen, pcap; /* bytes in pend, its size */
	uint64_t start_ms; /* when the handshake began */
	/* Ciphertext received and not yet decrypted: a view into tcp.c's shared read buffer
	 * while a read runs, else into keep (what a full read left; NULL mostly). */
	const char *iv;
	size_t ilen;
	char *keep;
};

/* ---- the BIO -------------------------------------------------------------------------------
 * A memory BIO pair would keep two buffers per connection, each as large as the largest
 * flight it ever carried, for the connection's life, and most connections are idle phones.
 * This BIO reads from a view of the ciphertext tcp.c just received and writes into the
 * one shared output buffer (struct tls), so an idle connection holds neither. */

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int bio_write(BIO *b, const char *buf, int len)
{
	struct tls_conn *tc = BIO_get_data(b);
	struct tls *t = tc->tp->tls;
	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (t->oown != tc) {
		/* Bytes of another connection left there were dropped with it: never sent here. */
		t->olen = 0;
		t->oown = tc;
	}
	if (t->olen + (size_t)len > t->ocap) {
		size_t cap = t->ocap ? t->ocap : 16384;
		while (cap < t->olen + (size_t)len)
			cap *= 2;
		char *p = realloc(t->obuf, cap);
		if (!p)
			return -1;
		t->obuf = p;
		t->ocap = cap;
	}
	memcpy(t->obuf + t->olen, buf, (size_t)len);
	t->olen += (size_t)len;
	return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
	struct tls_conn *tc = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (tc->ilen == 0) {
		BIO_set_retry_read(b); /* "wait for more", not the end of the stream */
		return -1;
	}
	size_t n = len > 0 && (size_t)len < tc->ilen ? (size_t)len : tc->ilen;
	memcpy(buf, tc->iv, n);
	tc->iv += n;
	tc->ilen -= n;
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)num;
	(void)ptr;
	struct tls_conn *tc = BIO_get_data(b);
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1; /* written bytes are in obuf already */
	case BIO_CTRL_PENDING:
		return tc ? (long)tc->ilen : 0;
	default:
		return 0;
	}
}

static BIO_METHOD *bio_method(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "parley-conn");
	if (m && (BIO_meth_set_create(m, bio_create) != 1 || BIO_meth_set_write(m, bio_write) != 1 ||
		  BIO_meth_set_read(m, bio_read) != 1 || BIO_meth_set_ctrl(m, bio_ctrl) != 1)) {
		BIO_meth_free(m);
		return NULL;
	}
	return m;
}

/* The reason for the last OpenSSL failure, the error queue emptied. */
static void ssl_reason(char *buf, size_t n, const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	snprintf(buf, n, "%s", r ? r : fallback);
	ERR_clear_error();
}

/* ---- settings checks --------------------------------------------------------------------- */

static EVP_PKEY *read_key(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return pk;
}

/* Whether FILE holds a certificate (chain) and key that go together; -1 with a message
 * naming the flag and the file otherwise. */
static int check_pair(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *pk = NULL;
	char why[160];
	int rc = -1;
	if (!c) {
		snprintf(err, errlen, "--tls-cert: cannot set up TLS (out of memory)");
		return -1;
	}
	if (access(cert, R_OK) != 0)
		snprintf(err, errlen, "--tls-cert %s: cannot read: %s", cert, strerror(errno));
	else if (access(key, R_OK) != 0)
		snprintf(err, errlen, "--tls-key %s: cannot read: %s", key, strerror(errno));
	else if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
		ssl_reason(why, sizeof why, "no certificate");
		snprintf(err, errlen, "--tls-cert %s: not a PEM certificate (%s)", cert, why);
	} else if (!(pk = read_key(key))) {
		ssl_reason(why, sizeof why, "no key");
		snprintf(err, errlen, "--tls-key %s: not a PEM private key (%s)", key, why);
	} else if (SSL_CTX_use_PrivateKey(c, pk) != 1 || SSL_CTX_check_private_key(c) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "--tls-key %s: does not match the certificate in %s", key, cert);
	} else
		rc = 0;
	EVP_PKEY_free(pk);
	SSL_CTX_free(c);
	return rc;
}

int tp__tls_cfg_check(const struct tp_cfg *c, char *err, size_t errlen)
{
	if (!c->tls_cert[0] != !c->tls_key[0]) {
		snprintf(err, errlen, "%s: needs %s as well", c->tls_cert[0] ? "--tls-cert" : "--tls-key",
			 c->tls_cert[0] ? "--tls-key" : "--tls-cert");
		return -1;
	}
	if (c->tls_cert[0] && check_pair(c->tls_cert, c->tls_key, err, errlen))
		return -1;
	if (c->tls_ca[0]) {
		X509_STORE *s = X509_STORE_new();
		int ok = s && access(c->tls_ca, R_OK) == 0 && X509_STORE_load_file(s, c->tls_ca) == 1;
		X509_STORE_free(s);
		if (!ok) {
			char why[160];
			if (access(c->tls_ca, R_OK) != 0)
				snprintf(why, sizeof why, "%s", strerror(errno));
			else
				ssl_reason(why, sizeof why, "no certificates");
			ERR_clear_error();
			snprintf(err, errlen, "--tls-ca %s: cannot load CA certificates (%s)", c->tls_ca, why);
			return -1;
		}
	}
	return 0;
}

/* ---- the self-signed certificate ---------------------------------------------------------- */

/* Appends the listen hosts of tls: and wss: listeners to the subjectAltName list san. */
static void san_listeners(const struct tp_cfg *c, char *san, size_t n)
{
	for (unsigned i = 0; i < c->nlisten; i++) {
		struct tp_listen_spec l;
		char why[128];
		if (tp_listen_parse(c->listen[i], &l, why, sizeof why) ||
		    (strcmp(l.scheme, "tls") && strcmp(l.scheme, "wss")))
			continue;
		if (!strcmp(l.host, "0.0.0.0") || !strcmp(l.host, "::") || !strcmp(l.host, "127.0.0.1") ||
		    !strcmp(l.host, "::1"))
			continue; /* wildcards name no host; loopback is always in */
		char item[80];
		snprintf(item, sizeof item, ",IP:%s", l.host);
		if (!strstr(san, item) && strlen(san) + strlen(item) < n)
			strcat(san, item);
	}
}

/* Writes PEM text made by wr to path through a temporary file renamed into place, so that
 * a crash never leaves half a file; mode 0600 for the key. */
static int write_pem(const char *path, mode_t mode, int (*wr)(FILE *, void *), void *obj, char *err, size_t errlen)
{
	char tmp[600];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int ok = wr(f, obj);
	if (fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, ok ? strerror(errno) : "PEM encoding failed");
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int wr_key(FILE *f, void *k)
{
	return PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
}

static int wr_cert(FILE *f, void *x)
{
	return PEM_write_X509(f, x);
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v;
	X509V3_set_ctx_nodb(&v);
	X509V3_set_ctx(&v, x, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v, nid, value);
	int ok = e && X509_add_ext(x, e, -1) == 1;
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

/* Makes an EC P-256 key and a certificate for it, signed by itself, naming this machine,
 * localhost, the loopback addresses and the tls:/wss: listen hosts; writes them to key
 * and cert. */
static int make_cert(const struct tp_cfg *c, const char *cert, const char *key, char *err, size_t errlen)
{
	char host[256] = "localhost", san[1024];
	gethostname(host, sizeof host - 1);
	host[sizeof host - 1] = '\0';
	snprintf(san, sizeof san, "DNS:localhost,IP:127.0.0.1,IP:::1");
	if (strcmp(host, "localhost") && !strchr(host, ','))
		snprintf(san + strlen(san), sizeof san - strlen(san), ",DNS:%s", host);
	san_listeners(c, san, sizeof san);
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	BIGNUM *bn = BN_new();
	unsigned char serial[16];
	int rc = -1;
	if (!pk || !x || !bn || RAND_bytes(serial, sizeof serial) != 1) {
		snprintf(err, errlen, "cannot make a TLS key (out of memory or no randomness)");
		goto out;
	}
	serial[0] &= 0x7f; /* a positive serial number */
	X509_NAME *nm = X509_get_subject_name(x);
	if (!BN_bin2bn(serial, sizeof serial, bn) || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    X509_set_version(x, 2) != 1 || !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), CERT_DAYS * 86400) || X509_set_pubkey(x, pk) != 1 ||
	    X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC, (const unsigned char *)"Parley", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)host, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, nm) != 1 || add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(x, NID_key_usage, "critical,digitalSignature") ||
	    add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") || add_ext(x, NID_subject_key_identifier, "hash") ||
	    add_ext(x, NID_subject_alt_name, san) || X509_sign(x, pk, EVP_sha256()) <= 0) {
		ssl_reason(san, sizeof san, "failed");
		snprintf(err, errlen, "cannot make a self-signed certificate: %s", san);
		goto out;
	}
	/* The key first: a certificate on disk means its key is there too. */
	if (write_pem(key, 0600, wr_key, pk, err, errlen) == 0 && write_pem(cert, 0644, wr_cert, x, err, errlen) == 0)
		rc = 0;
out:
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pk);
	return rc;
}

/* "AB:CD:..." SHA-256 of the certificate ctx presents. */
static void fingerprint(SSL_CTX *ctx, char *buf, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdl = 0;
	X509 *x = SSL_CTX_get0_certificate(ctx);
	buf[0] = '\0';
	if (!x || X509_digest(x, EVP_sha256(), md, &mdl) != 1)
		return;
	size_t at = 0;
	for (unsigned i = 0; i < mdl && at + 4 <= n; i++)
		at += (size_t)snprintf(buf + at, n - at, i ? ":%02X" : "%02X", md[i]);
}

/* ---- contexts -------------------------------------------------------------------------------- */

static SSL_CTX *ctx_new(bool server)
{
	SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!c)
		return NULL;
	/* TLS 1.2 at least; for 1.2 only ECDHE with AES-GCM or ChaCha20 (TLS 1.3's own
	 * suites are all modern). No renegotiation: a peer could make us work for nothing. */
	if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 || SSL_CTX_set_cipher_list(c, TLS12_CIPHERS) != 1) {
		SSL_CTX_free(c);
		return NULL;
	}
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	/* An idle connection gives its record buffers back (most phones are idle). */
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
	/* TLS 1.3 with AES-128-GCM first: its SHA-256 key schedule is cheaper than SHA-384's
	 * and it is what clients prefer anyway (callgrind: 3% of a new connection). */
	if (SSL_CTX_set_ciphersuites(c, TLS13_SUITES) != 1) {
		SSL_CTX_free(c);
		return NULL;
	}
	/* One session ticket, not OpenSSL's two: a phone resumes to one server, and each
	 * ticket costs 6% of a handshake (serialising and sealing the session). */
	if (server)
		SSL_CTX_set_num_tickets(c, 1);
	return c;
}

int tp__tls_init(struct transport *tp, char *err, size_t errlen)
{
	if (tp->tls)
		return 0;
	const struct tp_cfg *c = &tp->cfg;
	struct tls *t = calloc(1, sizeof(*t));
	char cert[600], key[600], why[200];
	if (!t || !(t->srv = ctx_new(true)) || !(t->cli = ctx_new(false)) || !(t->meth = bio_method())) {
		snprintf(err, errlen, "cannot set up TLS: out of memory");
		goto fail;
	}
	bool made = false, own = !c->tls_cert[0];
	if (own) {
		/* Beside the database: the one place a server is known to be able to write. */
		snprintf(cert, sizeof cert, "%s-tls.crt", tp->tls_base);
		snprintf(key, sizeof key, "%s-tls.key", tp->tls_base);
		if (access(cert, F_OK) != 0) {
			if (make_cert(c, cert, key, err, errlen))
				goto fail;
			made = true;
		}
	} else {
		snprintf(cert, sizeof cert, "%s", c->tls_cert);
		snprintf(key, sizeof key, "%s", c->tls_key);
	}
	if (check_pair(cert, key, why, sizeof why) || SSL_CTX_use_certificate_chain_file(t->srv, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(t->srv, key, SSL_FILETYPE_PEM) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "TLS certificate: %s%s", why,
			 own ? " (delete both files to have a new self-signed one made)" : "");
		goto fail;
	}
	/* Outbound, the same certificate is offered to peers that ask for one (mutual TLS). */
	if (SSL_CTX_use_certificate_chain_file(t->cli, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(t->cli, key, SSL_FILETYPE_PEM) != 1) {
		ssl_reason(why, sizeof why, "failed");
		snprintf(err, errlen, "TLS certificate %s: %s", cert, why);
		goto fail;
	}
	SSL_CTX_set_session_id_context(t->srv, (const unsigned char *)"parley", 6);
	SSL_CTX_set_verify(t->cli, SSL_VERIFY_PEER, NULL);
	if ((c->tls_ca[0] ? SSL_CTX_load_verify_locations(t->cli, c->tls_ca, NULL)
			  : SSL_CTX_set_default_verify_paths(t->cli)) != 1) {
		ssl_reason(why, sizeof why, "failed");
		snprintf(err, errlen, "TLS: cannot load %s: %s",
			 c->tls_ca[0] ? c->tls_ca : "the system's CA certificates", why);
		goto fail;
	}
	char fp[100];
	fingerprint(t->srv, fp, sizeof fp);
	log_info(tp->lg, "tls", "certificate %s (%s), SHA-256 fingerprint %s", cert,
		 !own   ? "given"
		 : made ? "self-signed, made now"
			: "self-signed, made earlier",
		 fp);
	tp->tls = t;
	return 0;
fail:
	if (t) {
		SSL_CTX_free(t->srv);
		SSL_CTX_free(t->cli);
		BIO_meth_free(t->meth);
		free(t);
	}
	return -EINVAL;
}

void tp__tls_free(struct transport *tp)
{
	if (!tp->tls)
		return;
	SSL_CTX_free(tp->tls->srv);
	SSL_CTX_free(tp->tls->cli);
	BIO_meth_free(tp->tls->meth);
	free(tp->tls->obuf);
	free(tp->tls);
	tp->tls = NULL;
}

void tp_tls_base(struct transport *tp, const char *db_path)
{
	snprintf(tp->tls_base, sizeof tp->tls_base, "%s", db_path);
}

void tp_tls_name(struct transport *tp, const struct tp_addr *addr, const char *host)
{
	struct tls *t = tp->tls;
	if (!t || !host || !host[0])
		return;
	struct tls_name *e = NULL;
	for (unsigned i = 0; i < t->nnames && !e; i++)
		if (tp_addr_equal(&t->names[i].addr, addr))
			e = &t->names[i];
	if (!e) {
		e = &t->names[t->nnames < NAMES ? t->nnames++ : t->next];
		if (t->nnames == NAMES)
			t->next = (t->next + 1) % NAMES;
	}
	e->addr = *addr;
	snprintf(e->host, sizeof e->host, "%s", host);
}

/* ---- connections ------------------------------------------------------------------------------ */

/* What the certificate of an outbound connection to peer must name: the host name it was
 * reached by (tp_tls_name), or else its address. */
static int set_peer_name(struct tls *t, SSL *ssl, const struct tp_addr *peer)
{
	for (unsigned i = 0; i < t->nnames; i++) {
		const char *h = t->names[i].host;
		unsigned char bin[16];
		if (!tp_addr_equal(&t->names[i].addr, peer) || inet_pton(AF_INET, h, bin) == 1 ||
		    inet_pton(AF_INET6, h, bin) == 1 || h[0] == '[')
			continue;
		/* SNI, and the name the certificate must carry. */
		if (SSL_set_tlsext_host_name(ssl, h) != 1 || SSL_set1_host(ssl, h) != 1)
			return -1;
		return 0;
	}
	char ip[64];
	tp_addr_host(peer, ip, sizeof ip);
	return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) == 1 ? 0 : -1;
}

int tp__tls_conn_new(struct transport *tp, bool client, uint64_t id, const struct tp_addr *peer, struct tls_conn **out)
{
	struct tls *t = tp->tls;
	struct tls_conn *tc = calloc(1, sizeof(*tc));
	BIO *bio = NULL;
	if (!tc || !t)
		goto fail;
	tc->tp = tp;
	tc->id = id;
	tc->peer = peer;
	tc->client = client;
	tc->start_ms = loop_now(tp->loop);
	ERR_clear_error();
	tc->ssl = SSL_new(client ? t->cli : t->srv);
	bio = BIO_new(t->meth);
	if (!tc->ssl || !bio)
		goto fail;
	BIO_set_data(bio, tc);
	SSL_set_bio(tc->ssl, bio, bio); /* one BIO both ways: ssl holds it from now on */
	bio = NULL;
	if (client) {
		if (set_peer_name(t, tc->ssl, peer))
			goto fail;
		SSL_set_connect_state(tc->ssl);
		/* The ClientHello goes out at once (queued while the TCP connect runs). */
		int r = SSL_do_handshake(tc->ssl);
		if (r != 1 && SSL_get_error(tc->ssl, r) != SSL_ERROR_WANT_READ)
			goto fail;
	} else {
		SSL_set_accept_state(tc->ssl);
	}
	*out = tc;
	return 0;
fail:
	ERR_clear_error();
	BIO_free(bio);
	if (tc) {
		SSL_free(tc->ssl); /* and the BIO it holds */
		if (t && t->oown == tc)
			t->oown = NULL;
	}
	free(tc);
	return -ENOMEM;
}

void tp__tls_conn_free(struct tls_conn *tc)
{
	if (!tc)
		return;
	struct tls *t = tc->tp->tls;
	if (t->oown == tc) {
		t->oown = NULL; /* its bytes are not for the next owner of this address */
		t->olen = 0;
	}
	SSL_free(tc->ssl);
	free(tc->pend);
	free(tc->keep);
	free(tc);
}

bool tp__tls_done(const struct tls_conn *tc)
{
	return tc->done;
}

uint64_t tp__tls_started(const struct tls_conn *tc)
{
	return tc->start_ms;
}

bool tp__tls_more(const struct tls_conn *tc)
{
	return tc->more;
}

const char *tp__tls_error(const struct tls_conn *tc)
{
	return tc->tp->tls->err;
}

/* Encrypts len bytes into the output BIO; -EPROTO on failure. */
static int encrypt(struct tls_conn *tc, const char *buf, size_t len)
{
	while (len) {
		int n = len > INT32_MAX ? INT32_MAX : (int)len;
		int r = SSL_write(tc->ssl, buf, n);
		if (r <= 0) {
			ssl_reason(tc->tp->tls->err, sizeof tc->tp->tls->err, "SSL_write failed");
			return -EPROTO;
		}
		buf += r;
		len -= (size_t)r;
	}
	return 0;
}

int tp__tls_put(struct tls_conn *tc, const char *buf, size_t len)
{
	ERR_clear_error();
	if (tc->done)
		return encrypt(tc, buf, len);
	/* Until the handshake ends, plaintext waits here (bounded like the write queue). */
	if (tc->plen + len > PEND_MAX) {
		snprintf(tc->tp->tls->err, sizeof tc->tp->tls->err, "%zu bytes wait for the TLS handshake (at most %d)",
			 tc->plen + len, PEND_MAX);
		return -ENOBUFS;
	}
	if (tc->plen + len > tc->pcap) {
		size_t cap = tc->pcap ? tc->pcap : 4096;
		while (cap < tc->plen + len)
			cap *= 2;
		char *p = realloc(tc->pend, cap);
		if (!p) {
			snprintf(tc->tp->tls->err, sizeof tc->tp->tls->err, "out of memory");
			return -ENOMEM;
		}
		tc->pend = p;
		tc->pcap = cap;
	}
	memcpy(tc->pend + tc->plen, buf, len);
	tc->plen += len;
	return 0;
}

int tp__tls_in(struct tls_conn *tc, const char *buf, size_t len)
{
	if (tc->ilen == 0) {
		free(tc->keep);
		tc->keep = NULL;
		tc->iv = buf; /* a view: tp__tls_read uses it or keeps the rest */
		tc->ilen = len;
		return 0;
	}
	char *k = malloc(tc->ilen + len);
	if (!k)
		return -ENOMEM;
	memcpy(k, tc->iv, tc->ilen);
	memcpy(k + tc->ilen, buf, len);
	free(tc->keep);
	tc->keep = k;
	tc->iv = k;
	tc->ilen += len;
	return 0;
}

/* After a read: ciphertext left in the view (a read that filled its buffer) is copied into
 * the connection's own buffer, since the view's buffer is shared; none left, none kept. */
static enum tp_tls_rd settle(struct tls_conn *tc, enum tp_tls_rd r)
{
	if (r == TLS_RD_FAIL || r == TLS_RD_EOF)
		tc->ilen = 0; /* nothing more is read from it */
	if (tc->ilen == 0) {
		free(tc->keep);
		tc->keep = NULL;
		return r;
	}
	if (tc->keep)
		return r; /* the view is in keep already: tp__tls_in put it there */
	char *k = malloc(tc->ilen);
	if (!k) {
		snprintf(tc->tp->tls->err, sizeof tc->tp->tls->err, "out of memory");
		tc->ilen = 0;
		return TLS_RD_FAIL;
	}
	memcpy(k, tc->iv, tc->ilen);
	free(tc->keep);
	tc->keep = k;
	tc->iv = k;
	return r;
}

size_t tp__tls_out(struct tls_conn *tc, const char **p)
{
	struct tls *t = tc->tp->tls;
	*p = t->obuf;
	return t->oown == tc ? t->olen : 0;
}

void tp__tls_out_done(struct tls_conn *tc)
{
	struct tls *t = tc->tp->tls;
	if (t->oown == tc)
		t->olen = 0;
}

/* A failed handshake or record: why, with the certificate check's verdict for outbound. */
static enum tp_tls_rd failed(struct tls_conn *tc, int r)
{
	struct transport *tp = tc->tp;
	char why[160];
	int e = SSL_get_error(tc->ssl, r);
	long v = tc->client ? SSL_get_verify_result(tc->ssl) : X509_V_OK;
	if (v != X509_V_OK)
		snprintf(why, sizeof why, "certificate not accepted: %s", X509_verify_cert_error_string(v));
	else if (e == SSL_ERROR_SYSCALL && !ERR_peek_error())
		snprintf(why, sizeof why, "closed by the peer without a TLS close");
	else
		ssl_reason(why, sizeof why, "protocol error");
	ERR_clear_error();
	snprintf(tc->tp->tls->err, sizeof tc->tp->tls->err, "TLS %s failed: %s", tc->done ? "record" : "handshake",
		 why);
	if (!tc->done) {
		tp->stats.tls_failed++;
		if (tc->client) {
			/* An operator needs to hear of a peer whose certificate we refuse. */
			char a[80];
			log_warn(tp->lg, "tls", "connection to %s: %s", tp_addr_str(tc->peer, a, sizeof a),
				 tp->tls->err);
		}
	}
	return TLS_RD_FAIL;
}

static enum tp_tls_rd read_some(struct tls_conn *tc, char *buf, size_t room, size_t *got)
{
	struct transport *tp = tc->tp;
	*got = 0;
	tc->more = false;
	ERR_clear_error();
	if (!tc->done) {
		int r = SSL_do_handshake(tc->ssl);
		if (r != 1) {
			if (SSL_get_error(tc->ssl, r) == SSL_ERROR_WANT_READ)
				return TLS_RD_MORE;
			return failed(tc, r);
		}
		tc->done = true;
		tp->stats.tls_handshakes++;
		char a[80];
		log_debug(tp->lg, "tls", "connection %llx %s %s: TLS established (%s, %s)", (unsigned long long)tc->id,
			  tc->client ? "to" : "from", tp_addr_str(tc->peer, a, sizeof a), SSL_get_version(tc->ssl),
			  SSL_get_cipher_name(tc->ssl));
		if (tc->plen) {
			int err = encrypt(tc, tc->pend, tc->plen);
			free(tc->pend);
			tc->pend = NULL;
			tc->plen = tc->pcap = 0;
			if (err)
				return TLS_RD_FAIL;
		}
	}
	while (*got < room) {
		size_t n = room - *got;
		int r = SSL_read(tc->ssl, buf + *got, n > INT32_MAX ? INT32_MAX : (int)n);
		if (r > 0) {
			*got += (size_t)r;
			continue;
		}
		int e = SSL_get_error(tc->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			return TLS_RD_MORE;
		if (e == SSL_ERROR_ZERO_RETURN)
			return TLS_RD_EOF;
		return failed(tc, r);
	}
	tc->more = true;
	return TLS_RD_FULL;
}

enum tp_tls_rd tp__tls_read(struct tls_conn *tc, char *buf, size_t room, size_t *got)
{
	return settle(tc, read_some(tc, buf, room, got));
}
