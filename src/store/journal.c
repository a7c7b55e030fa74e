/* journal.c: DB.journal, where queued changes wait, synced, while the database cannot be written. */
#include "store/store_be.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The file: MAGIC, then the generation (8 bytes), then records of
 *   u32 length of the payload, u32 CRC-32C of the payload, payload
 * in the machine's byte order (a journal never leaves the machine that wrote it). A payload
 * is one queued change: its kind (1 byte), then its fields, numbers fixed-size and strings
 * as a u32 length and the bytes. */
#define MAGIC "PRLYJNL1"
#define HEAD_LEN 16
#define REC_HEAD 8
#define REC_MAX ((uint32_t)1 << 24) /* far above any change; a longer length is damage */

void store__journal_init(struct store__journal *j, const char *db_path)
{
	memset(j, 0, sizeof(*j));
	j->fd = -1;
	snprintf(j->path, sizeof(j->path), "%s.journal", db_path);
	/* CRC-32C (Castagnoli), reflected, one table entry per byte value. */
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		j->crc_table[i] = c;
	}
}

static uint32_t crc32c(const struct store__journal *j, const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--)
		c = j->crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

void store__journal_close(struct store__journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
}

/* ---- encoding ---------------------------------------------------------------------------- */

struct buf {
	unsigned char *p;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const void *v, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		unsigned char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, v, n);
	b->len += n;
}

static void put_u8(struct buf *b, uint8_t v)
{
	put(b, &v, 1);
}
static void put_u32(struct buf *b, uint32_t v)
{
	put(b, &v, 4);
}
static void put_u64(struct buf *b, uint64_t v)
{
	put(b, &v, 8);
}

static void put_str(struct buf *b, struct str s)
{
	put_u32(b, (uint32_t)s.l);
	if (s.l)
		put(b, s.p, s.l);
}

static void encode(struct buf *b, const struct store__qent *e)
{
	put_u8(b, (uint8_t)e->kind);
	switch (e->kind) {
	case Q_BINDING_PUT:
		put_str(b, e->u.b.aor);
		put_str(b, e->u.b.contact);
		put_str(b, e->u.b.src_addr);
		put_u32(b, e->u.b.src_port);
		put_str(b, e->u.b.transport);
		put_str(b, e->u.b.path);
		put_str(b, e->u.b.call_id);
		put_u32(b, e->u.b.cseq);
		put_u32(b, e->u.b.q);
		put_u64(b, (uint64_t)e->u.b.expires_at);
		put_str(b, e->u.b.user_agent);
		put_str(b, e->u.b.instance);
		put_u32(b, e->u.b.reg_id);
		put_str(b, e->u.b.params);
		put_u8(b, e->u.b.flags);
		put_u64(b, e->u.b.conn_id); /* last: a journal written before it reads on */
		break;
	case Q_BINDING_DEL:
		put_str(b, e->u.b.aor);
		put_str(b, e->u.b.contact);
		if (e->u.b.reg_id) { /* last: a journal written before flows reads on */
			put_str(b, e->u.b.instance);
			put_u32(b, e->u.b.reg_id);
		}
		break;
	case Q_CALL:
		put_str(b, e->u.c.id);
		put_str(b, e->u.c.call_id);
		put_str(b, e->u.c.caller);
		put_str(b, e->u.c.callee);
		put_u64(b, e->u.c.start_ms);
		put_u64(b, e->u.c.answer_ms);
		put_u64(b, e->u.c.end_ms);
		put_u32(b, e->u.c.status);
		put_str(b, e->u.c.reason);
		put_u64(b, e->u.c.duration_ms);
		put_str(b, e->u.c.media); /* last: a journal written before it reads on */
		break;
	case Q_BAN_PUT:
	case Q_BAN_DEL:
		put_str(b, e->u.ban.source);
		put_u64(b, (uint64_t)e->u.ban.until);
		put_str(b, e->u.ban.reason);
		put_u64(b, (uint64_t)e->u.ban.created);
		break;
	case Q_CALLS_PRUNE:
	case Q_BANS_PRUNE:
		put_u64(b, (uint64_t)e->u.before);
		break;
	}
}

/* ---- decoding ----------------------------------------------------------------------------- */

struct rd {
	const unsigned char *p, *end;
	bool bad;
};

static void get(struct rd *r, void *v, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		memset(v, 0, n);
		return;
	}
	memcpy(v, r->p, n);
	r->p += n;
}

static uint8_t get_u8(struct rd *r)
{
	uint8_t v;
	get(r, &v, 1);
	return v;
}
static uint32_t get_u32(struct rd *r)
{
	uint32_t v;
	get(r, &v, 4);
	return v;
}
static uint64_t get_u64(struct rd *r)
{
	uint64_t v;
	get(r, &v, 8);
	return v;
}

static struct str get_str(struct rd *r)
{
	uint32_t n = get_u32(r);
	struct str s;

	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return STR_NULL;
	}
	s = (struct str){ (const char *)r->p, n };
	r->p += n;
	return s;
}

/* Queues the change of one record on q; -EINVAL if the payload does not make one. */
static int decode(struct store *st, struct store__queue *q, struct rd *r)
{
	enum store__qkind kind = (enum store__qkind)get_u8(r);
	struct store_binding b = { .aor = STR_NULL };
	struct store_call c = { .id = STR_NULL };
	struct store_ban bn = { .source = STR_NULL };
	int64_t before;

	switch (kind) {
	case Q_BINDING_PUT:
		b.aor = get_str(r);
		b.contact = get_str(r);
		b.src_addr = get_str(r);
		b.src_port = (uint16_t)get_u32(r);
		b.transport = get_str(r);
		b.path = get_str(r);
		b.call_id = get_str(r);
		b.cseq = get_u32(r);
		b.q = (uint16_t)get_u32(r);
		b.expires_at = (int64_t)get_u64(r);
		b.user_agent = get_str(r);
		b.instance = get_str(r);
		b.reg_id = get_u32(r);
		b.params = get_str(r);
		b.flags = get_u8(r);
		if (r->p < r->end)
			b.conn_id = get_u64(r);
		return r->bad ? -EINVAL : store__queue_binding(st, q, kind, &b, false);
	case Q_BINDING_DEL:
		b.aor = get_str(r);
		b.contact = get_str(r);
		if (r->p < r->end) {
			b.instance = get_str(r);
			b.reg_id = get_u32(r);
		}
		return r->bad ? -EINVAL : store__queue_binding(st, q, kind, &b, false);
	case Q_CALL:
		c.id = get_str(r);
		c.call_id = get_str(r);
		c.caller = get_str(r);
		c.callee = get_str(r);
		c.start_ms = get_u64(r);
		c.answer_ms = get_u64(r);
		c.end_ms = get_u64(r);
		c.status = get_u32(r);
		c.reason = get_str(r);
		c.duration_ms = get_u64(r);
		c.media = r->p < r->end ? get_str(r) : STR_NULL;
		return r->bad || c.id.l == 0 ? -EINVAL : store__queue_call(st, q, &c, false);
	case Q_BAN_PUT:
	case Q_BAN_DEL:
		bn.source = get_str(r);
		bn.until = (int64_t)get_u64(r);
		bn.reason = get_str(r);
		bn.created = (int64_t)get_u64(r);
		return r->bad ? -EINVAL : store__queue_ban(st, q, kind, &bn, false);
	case Q_CALLS_PRUNE:
	case Q_BANS_PRUNE:
		before = (int64_t)get_u64(r);
		return r->bad ? -EINVAL : store__queue_prune(st, q, kind, before, false);
	}
	return -EINVAL;
}

/* ---- the file ----------------------------------------------------------------------------- */

/* Writes n bytes at off, whatever the kernel takes at a time; 0 or a negative errno. */
static int pwrite_all(int fd, const unsigned char *p, size_t n, off_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -ENOSPC;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* Syncs the directory, so that a journal just created survives a power loss too. */
static void sync_dir(const char *path)
{
	char dir[sizeof(((struct store__journal *)0)->path)];
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

static uint64_t new_gen(void)
{
	uint64_t g = 0;

	if (getrandom(&g, sizeof(g), GRND_NONBLOCK) != (ssize_t)sizeof(g)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		g = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40);
	}
	return g ? g : 1; /* 0 means "no journal" */
}

int store__journal_append(struct store *st, struct store__journal *j, const struct store__queue *q)
{
	struct buf b = { 0 };
	bool created = false;
	uint64_t gen = j->gen;
	int err;

	if (q->nq == 0)
		return 0;
	if (j->stale)
		return store__err(st, -EIO, "journal %s was applied but could not be emptied or removed", j->path);
	if (j->fd < 0) {
		j->fd = open(j->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (j->fd < 0)
			return store__err(st, -errno, "cannot open journal %s: %s", j->path, strerror(errno));
		created = true;
	}
	if (j->size == 0) {
		gen = new_gen();
		put(&b, MAGIC, 8);
		put_u64(&b, gen);
	}
	for (size_t i = 0; i < q->nq; i++) {
		size_t at = b.len;
		uint32_t zero = 0, len, crc;

		put_u32(&b, zero);
		put_u32(&b, zero);
		encode(&b, q->q[i]);
		if (b.oom)
			break;
		len = (uint32_t)(b.len - at - REC_HEAD);
		crc = crc32c(j, b.p + at + REC_HEAD, len);
		memcpy(b.p + at, &len, 4);
		memcpy(b.p + at + 4, &crc, 4);
	}
	if (b.oom) {
		free(b.p);
		return store__err(st, -ENOMEM, "out of memory writing journal %s", j->path);
	}
	/* Written at the known end rather than with O_APPEND: after a failed append the file
	 * is cut back to that end, and a later append must not land after the debris. */
	err = pwrite_all(j->fd, b.p, b.len, (off_t)j->size);
	if (!err && fdatasync(j->fd) != 0)
		err = -errno;
	free(b.p);
	if (err) {
		/* Cut back what this append wrote, so that the file ends with a whole record. */
		if (ftruncate(j->fd, (off_t)j->size) != 0) {
			/* Then the torn tail is skipped when read, by its checksum. */
		}
		return store__err(st, err, "cannot write journal %s: %s", j->path, strerror(-err));
	}
	j->size += b.len;
	j->gen = gen;
	if (created)
		sync_dir(j->path);
	return 0;
}

int store__journal_read(struct store *st, struct store__journal *j, struct store__queue *q, bool *torn)
{
	int fd = open(j->path, O_RDWR | O_CLOEXEC);
	struct stat sb;
	unsigned char *data = NULL;
	size_t n = 0, off, good;
	int err = 0;

	*torn = false;
	if (fd < 0) {
		if (errno == ENOENT) {
			j->gen = 0;
			j->size = 0;
			return 0;
		}
		return store__err(st, -errno, "cannot open journal %s: %s", j->path, strerror(errno));
	}
	if (fstat(fd, &sb) != 0) {
		err = store__err(st, -errno, "cannot read journal %s: %s", j->path, strerror(errno));
		goto out;
	}
	if (sb.st_size > 0) {
		data = malloc((size_t)sb.st_size);
		if (!data) {
			err = store__err(st, -ENOMEM, "out of memory reading journal %s", j->path);
			goto out;
		}
		while (n < (size_t)sb.st_size) {
			ssize_t r = pread(fd, data + n, (size_t)sb.st_size - n, (off_t)n);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				err = store__err(st, -errno, "cannot read journal %s: %s", j->path, strerror(errno));
				goto out;
			}
			if (r == 0)
				break;
			n += (size_t)r;
		}
	}
	j->gen = 0;
	good = 0;
	if (n >= HEAD_LEN && memcmp(data, MAGIC, 8) != 0) {
		err = store__err(st, -EIO, "%s is not a parley journal (remove it if it is not needed)", j->path);
		goto out;
	}
	if (n >= HEAD_LEN) {
		memcpy(&j->gen, data + 8, 8);
		good = HEAD_LEN;
	}
	/* A header cut short is a journal whose first append never finished: nothing in it. */
	for (off = good; good > 0 && off < n;) {
		uint32_t len, crc;
		struct rd r;

		if (n - off < REC_HEAD)
			break;
		memcpy(&len, data + off, 4);
		memcpy(&crc, data + off + 4, 4);
		if (len == 0 || len > REC_MAX || n - off - REC_HEAD < len ||
		    crc32c(j, data + off + REC_HEAD, len) != crc)
			break;
		r = (struct rd){ data + off + REC_HEAD, data + off + REC_HEAD + len, false };
		err = decode(st, q, &r);
		if (err == -EINVAL)
			break; /* checksummed but not understood: treat as the end */
		if (err)
			goto out;
		off += REC_HEAD + len;
		good = off;
	}
	*torn = good != n;
	if (good == HEAD_LEN && q->nq == 0)
		good = 0, j->gen = 0;
	/* The tail that did not read is cut off, so that appends go after the last good record
	 * (a reader would stop at the debris and never see them). */
	if (good != n && ftruncate(fd, (off_t)good) != 0) {
		err = store__err(st, -errno, "cannot cut the torn end of journal %s: %s", j->path, strerror(errno));
		goto out;
	}
	j->size = good;
out:
	free(data);
	close(fd);
	return err;
}

int store__journal_reset(struct store *st, struct store__journal *j, bool unlink_it)
{
	int err = 0;

	if (unlink_it) {
		store__journal_close(j);
		if (unlink(j->path) != 0 && errno != ENOENT)
			err = store__err(st, -errno, "cannot remove journal %s: %s", j->path, strerror(errno));
	} else if (j->fd >= 0 && ftruncate(j->fd, 0) != 0) {
		err = store__err(st, -errno, "cannot empty journal %s: %s", j->path, strerror(errno));
	} else if (j->fd < 0 && truncate(j->path, 0) != 0 && errno != ENOENT) {
		err = store__err(st, -errno, "cannot empty journal %s: %s", j->path, strerror(errno));
	}
	if (err && !unlink_it && unlink(j->path) == 0) {
		store__journal_close(j);
		err = 0;
	}
	/* Its changes are in the database, which also records its generation: should the
	 * file survive a crash here, store_open sees that generation and applies nothing.
	 * A file that could be neither emptied nor removed takes no more records, which
	 * would carry that generation and be skipped. */
	if (!err) {
		j->size = 0;
		j->gen = 0;
	} else {
		j->stale = true;
	}
	return err;
}
