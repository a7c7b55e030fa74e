/* flood.c: the "under attack" load of bench/attack.sh. Loopback only, bounded.
 *
 *   flood --target 127.0.0.1:PORT --domain D [--src 127.0.1.1] [--nsrc 16]
 *         (--duration S | --count N) [--invite-pct 50]
 *       "flood" mode: as fast as one core can (sendmmsg, 64 datagrams per call, the sockets
 *       taken in turn), a mix of (a) junk: random bytes of random length, 1-byte datagrams,
 *       SIP INVITEs cut at a random length; (b) complete INVITEs to unknown users of D
 *       (nobody-<n>@D), from a foreign domain (evil.example), unique Call-ID/branch/tag,
 *       no credentials. --invite-pct is the share of (b).
 *
 *   flood --calls --to USER --target 127.0.0.1:PORT --domain D --rate R --count N
 *         [--phone PORT] [--src 127.0.2.1] [--nsrc 64]
 *       "calls" mode: N complete INVITEs to sip:USER@D at a fixed R per second (paced from
 *       a monotonic clock), foreign From domain, no credentials. With --phone, a UDP socket
 *       bound to 127.0.0.1:PORT is held open and never read for the whole run (register
 *       USER's contact there first: the phone that never answers).
 *
 * Sources: --nsrc sockets bound to --src, --src+1, ... (each on its own ephemeral port);
 * every address must lie in 127.0.0.0/8 and so must the target. Answers from the server
 * are never read (the sockets' receive buffers fill and the kernel drops the rest).
 * Stops after --duration seconds or --count datagrams, whichever comes first (at least one
 * is required), or on SIGINT/SIGTERM; then prints one line of key=value (flushed at once),
 * and with --hold S keeps its sockets (the phone's too) open S seconds more before exiting:
 *   flood: mode=flood sent=N invites=I junk=J errors=E secs=S rate=R/s sources=K
 * Build: cc -O2 -o flood flood.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAXSRC 256
#define MSGMAX 1400
#define POOL (1 << 20)

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static inline uint64_t rnd(void) /* xorshift64* */
{
	rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: flood --target 127.0.0.1:PORT --domain D [--src 127.0.1.1] [--nsrc 16]\n"
		"             (--duration S | --count N) [--invite-pct 50]\n"
		"       flood --calls --to USER --target 127.0.0.1:PORT --domain D --rate R --count N\n"
		"             [--phone PORT] [--src 127.0.2.1] [--nsrc 64] [--duration S]\n"
		"       both: [--hold S] keep the sockets open S s after the last send\n");
	exit(2);
}

static int loopback(struct in_addr a) { return (ntohl(a.s_addr) >> 24) == 127; }

/* One source socket and its INVITE template: the fields that change per message are runs
 * of 16 'X' or 'Y' (a counter in hex) patched in place. */
struct src {
	int fd;
	char tpl[MSGMAX];
	size_t len;
	size_t off[8], uoff[2]; /* X runs: per-message ids; Y runs: the unknown user */
	int noff, nuser;
};

static const char HEX[] = "0123456789abcdef";
static inline void put_hex(char *p, uint64_t v)
{
	for (int i = 15; i >= 0; i--, v >>= 4) p[i] = HEX[v & 15];
}

static void make_template(struct src *s, const char *srcip, unsigned sport, const char *target,
	const char *domain, const char *to_user)
{
	char ruser[96];
	if (to_user) snprintf(ruser, sizeof ruser, "%s", to_user);
	else snprintf(ruser, sizeof ruser, "nobody-YYYYYYYYYYYYYYYY"); /* same in R-URI and To */
	static const char sdp[] =
		"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
		"m=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n";
	int n = snprintf(s->tpl, sizeof s->tpl,
		"INVITE sip:%s@%s SIP/2.0\r\n"
		"Via: SIP/2.0/UDP %s:%u;branch=z9hG4bK-XXXXXXXXXXXXXXXX;rport\r\n"
		"Max-Forwards: 70\r\n"
		"From: \"Mallory\" <sip:m-XXXXXXXXXXXXXXXX@evil.example>;tag=XXXXXXXXXXXXXXXX\r\n"
		"To: <sip:%s@%s>\r\n"
		"Call-ID: XXXXXXXXXXXXXXXX@evil.example\r\n"
		"CSeq: 1 INVITE\r\n"
		"Contact: <sip:m@%s:%u>\r\n"
		"User-Agent: parley-bench-flood\r\n"
		"Content-Type: application/sdp\r\n"
		"Content-Length: %zu\r\n\r\n%s",
		ruser, domain, srcip, sport, ruser, domain, srcip, sport, sizeof sdp - 1, sdp);
	(void)target;
	s->len = (size_t)n;
	s->noff = 0;
	for (char *p = s->tpl; (p = strstr(p, "XXXXXXXXXXXXXXXX")) && s->noff < 8; p += 16)
		s->off[s->noff++] = (size_t)(p - s->tpl);
	s->nuser = 0;
	for (char *p = s->tpl; (p = strstr(p, "YYYYYYYYYYYYYYYY")) && s->nuser < 2; p += 16)
		s->uoff[s->nuser++] = (size_t)(p - s->tpl);
}

static void fill_invite(struct src *s, char *buf, uint64_t id)
{
	memcpy(buf, s->tpl, s->len);
	for (int i = 0; i < s->noff; i++) put_hex(buf + s->off[i], id * 0x100000001b3ull + (uint64_t)i);
	for (int i = 0; i < s->nuser; i++) put_hex(buf + s->uoff[i], id);
}

int main(int argc, char **argv)
{
	const char *target = NULL, *domain = NULL, *to_user = NULL, *src = NULL;
	int nsrc = 0, calls = 0, invite_pct = 50, phone_port = 0;
	double duration = 0, rate = 0, hold = 0;
	uint64_t count = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--calls")) { calls = 1; continue; }
		if (!v) usage();
		if (!strcmp(a, "--target")) target = v;
		else if (!strcmp(a, "--domain")) domain = v;
		else if (!strcmp(a, "--to")) to_user = v;
		else if (!strcmp(a, "--src")) src = v;
		else if (!strcmp(a, "--nsrc")) nsrc = atoi(v);
		else if (!strcmp(a, "--duration")) duration = atof(v);
		else if (!strcmp(a, "--count")) count = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--rate")) rate = atof(v);
		else if (!strcmp(a, "--invite-pct")) invite_pct = atoi(v);
		else if (!strcmp(a, "--phone")) phone_port = atoi(v);
		else if (!strcmp(a, "--hold")) hold = atof(v);
		else usage();
		i++;
	}
	if (!src) src = calls ? "127.0.2.1" : "127.0.1.1";
	if (!nsrc) nsrc = calls ? 64 : 16;
	if (!target || !domain || nsrc < 1 || nsrc > MAXSRC || invite_pct < 0 || invite_pct > 100) usage();
	if (duration <= 0 && count == 0) { fprintf(stderr, "flood: --duration or --count is required\n"); usage(); }
	if (calls && (!to_user || rate <= 0 || count == 0)) { fprintf(stderr, "flood: --calls needs --to, --rate, --count\n"); usage(); }
	if (strlen(domain) > 200 || (to_user && strlen(to_user) > 64)) usage();

	struct sockaddr_in dst = { .sin_family = AF_INET };
	{
		char host[64];
		const char *c = strrchr(target, ':');
		if (!c || (size_t)(c - target) >= sizeof host) usage();
		memcpy(host, target, (size_t)(c - target));
		host[c - target] = 0;
		if (inet_pton(AF_INET, host, &dst.sin_addr) != 1 || !loopback(dst.sin_addr)) {
			fprintf(stderr, "flood: the target must be an IPv4 address in 127.0.0.0/8\n");
			return 2;
		}
		dst.sin_port = htons((uint16_t)atoi(c + 1));
	}
	struct in_addr base;
	if (inet_pton(AF_INET, src, &base) != 1) usage();
	uint32_t b = ntohl(base.s_addr);
	if ((b >> 24) != 127 || ((b + (uint32_t)nsrc - 1) >> 24) != 127) {
		fprintf(stderr, "flood: every source address must lie in 127.0.0.0/8\n");
		return 2;
	}

	static struct src S[MAXSRC];
	for (int i = 0; i < nsrc; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(b + (uint32_t)i) };
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		int small = 4096, big = 4 << 20;
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			perror("flood: socket/bind");
			return 1;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small); /* answers: never read */
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
		socklen_t sl = sizeof sa;
		getsockname(fd, (struct sockaddr *)&sa, &sl);
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
		S[i].fd = fd;
		make_template(&S[i], ip, ntohs(sa.sin_port), target, domain, calls ? to_user : NULL);
	}
	int phone = -1;
	if (phone_port) {
		struct sockaddr_in pa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)phone_port),
			.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		phone = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (phone < 0 || bind(phone, (struct sockaddr *)&pa, sizeof pa) < 0) {
			perror("flood: phone socket 127.0.0.1");
			return 1;
		}
	}

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rng ^= (uint64_t)getpid() << 32 ^ (uint64_t)(now() * 1e6);

	static unsigned char pool[POOL];
	for (size_t i = 0; i < POOL; i += 8) { uint64_t r = rnd(); memcpy(pool + i, &r, 8); }
	static char bufs[BATCH][MSGMAX];
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	memset(mm, 0, sizeof mm);
	for (int i = 0; i < BATCH; i++) {
		mm[i].msg_hdr.msg_name = &dst;
		mm[i].msg_hdr.msg_namelen = sizeof dst;
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}

	uint64_t sent = 0, invites = 0, junk = 0, errors = 0, id = rnd() & 0xffffffffull;
	double t0 = now(), t = t0, end = duration > 0 ? t0 + duration : 1e300;
	int k = 0;
	unsigned nsent_sources = 0;
	while (!stop && (count == 0 || sent < count) && t < end) {
		int n = BATCH;
		if (count && count - sent < (uint64_t)n) n = (int)(count - sent);
		if (calls) { /* paced: send what is due now, at most one batch */
			double due = (t - t0) * rate;
			if ((double)sent + 1 > due) {
				struct timespec ts = { 0, 200000 };
				nanosleep(&ts, NULL);
				t = now();
				continue;
			}
			if ((double)n > due - (double)sent) n = (int)(due - (double)sent);
			if (n < 1) n = 1;
		}
		struct src *s = &S[k];
		uint64_t ni = 0, nj = 0;
		for (int i = 0; i < n; i++) {
			uint64_t r = rnd();
			if (calls || (int)(r % 100) < invite_pct) {
				fill_invite(s, bufs[i], ++id);
				iov[i].iov_base = bufs[i];
				iov[i].iov_len = s->len;
				ni++;
				continue;
			}
			nj++;
			switch ((r >> 8) % 3) {
			case 0: { /* random bytes, 1..1400 of them */
				size_t len = 1 + (r >> 16) % MSGMAX;
				iov[i].iov_base = pool + ((r >> 32) % (POOL - MSGMAX));
				iov[i].iov_len = len;
				break;
			}
			case 1: /* one byte */
				iov[i].iov_base = pool + ((r >> 16) % POOL);
				iov[i].iov_len = 1;
				break;
			default: /* a SIP INVITE cut short */
				fill_invite(s, bufs[i], ++id);
				iov[i].iov_base = bufs[i];
				iov[i].iov_len = 1 + (r >> 16) % (s->len - 1);
				break;
			}
		}
		int m = sendmmsg(s->fd, mm, (unsigned)n, 0);
		if (m < 0) {
			errors++;
			if (errno != ECONNREFUSED && errno != EAGAIN && errno != ENOBUFS && errno != EINTR) {
				perror("flood: sendmmsg");
				break;
			}
		} else {
			sent += (uint64_t)m;
			/* a short send (m < n): attribute the kinds in proportion */
			uint64_t mi = m == n ? ni : ni * (uint64_t)m / (uint64_t)n;
			invites += mi;
			junk += (uint64_t)m - mi;
		}
		if (++k == nsrc) k = 0;
		if (nsent_sources < (unsigned)nsrc) nsent_sources++;
		t = now();
	}
	double el = now() - t0;
	printf("flood: mode=%s sent=%llu invites=%llu junk=%llu errors=%llu secs=%.2f rate=%.0f sources=%u"
	       " first_src=%s\n",
		calls ? "calls" : "flood", (unsigned long long)sent, (unsigned long long)invites,
		(unsigned long long)junk, (unsigned long long)errors, el, el > 0 ? sent / el : 0.0,
		nsent_sources, src);
	fflush(stdout);
	/* keep every socket (the phone's too) open HOLD s more, so late requests and answers
	 * of the server meet open sockets, not ICMP port-unreachable */
	for (double h = now() + hold; !stop && now() < h;) {
		struct timespec ts = { 0, 50000000 };
		nanosleep(&ts, NULL);
	}
	if (phone >= 0) { /* what the never-reading phone has queued now (proof of forwarding) */
		static char rb[65536];
		unsigned long q = 0, qi = 0;
		ssize_t r;
		while ((r = recv(phone, rb, sizeof rb, MSG_DONTWAIT)) >= 0) {
			q++;
			qi += r >= 7 && !memcmp(rb, "INVITE ", 7);
		}
		printf("flood: phone_queued=%lu phone_invites=%lu (datagrams in its receive buffer at the end)\n", q, qi);
		close(phone);
	}
	for (int i = 0; i < nsrc; i++) close(S[i].fd);
	return 0;
}
