/* pool.c: size-class chunks of 2 MiB, aligned so that a chunk is found from any object in it. */
#include "core/pool.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels refuse it, which is harmless */
#endif

/* Under AddressSanitizer objects come from malloc, so that it checks each one; its unit
 * test defines POOL_CHUNKS_ALWAYS to test the chunks themselves. */
#ifndef POOL_CHUNKS_ALWAYS
#if defined(__SANITIZE_ADDRESS__)
#define POOL_PASSTHROUGH 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_PASSTHROUGH 1
#endif
#endif
#endif

#define CHUNK ((size_t)2 << 20) /* one x86-64 huge page */
#define GRAIN 64                /* class width: objects are a multiple of it */
#define NCLASS (POOL_MAX / GRAIN)
#define KEEP_EMPTY \
	1 /* spare chunks pool_trim keeps for the next burst: one,
	   * so that the resident size comes back after a flood */
#define SPARE_MIN \
	8 /* spare chunks kept between two trims however few chunks \
	   * there are: see pool_free */

/* At the start of each chunk. Objects follow, from HEAD_SIZE on. */
struct chunk {
	struct chunk *next, *prev; /* in its class's list of chunks with room */
	void *free;                /* freed objects, linked through their first word */
	char *bump;                /* never-used space from here to end */
	char *end;
	unsigned live; /* objects handed out and not freed */
	unsigned cls;
	bool listed;  /* in avail[cls] */
	unsigned gen; /* spare: the pool_trim generation it became spare in */
};

#define HEAD_SIZE ((sizeof(struct chunk) + GRAIN - 1) / GRAIN * GRAIN)

struct pool {
	struct chunk *avail[NCLASS]; /* chunks with room, per class */
	/* Chunks with no live object, newest first: the next chunk any class needs is one of
	 * these, already mapped and faulted in; pool_trim unmaps those that stay unused. */
	struct chunk *spare;
	size_t nspare;
	unsigned gen;
	struct chunk **all; /* every chunk, for pool_destroy */
	size_t nall, capall;
	struct pool_stats stats;
};

int pool_new(struct pool **pp)
{
	struct pool *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	*pp = p;
	return 0;
}

void pool_destroy(struct pool *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nall; i++)
		munmap(p->all[i], CHUNK);
	free(p->all);
	free(p);
}

const struct pool_stats *pool_stats(const struct pool *p)
{
	return &p->stats;
}

/* size rounded up to whole chunks, or 0 when it is small enough for calloc. */
static size_t big_span(size_t size)
{
#ifdef POOL_PASSTHROUGH
	(void)size;
	return 0;
#else
	return size < CHUNK ? 0 : (size + CHUNK - 1) / CHUNK * CHUNK;
#endif
}

/* span bytes aligned to CHUNK: twice the size is mapped and the ends trimmed. */
static char *map_aligned(size_t span)
{
	char *m = mmap(NULL, span + CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	char *base = (char *)(((uintptr_t)m + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
	if (base > m)
		munmap(m, (size_t)(base - m));
	if (base + span < m + span + CHUNK)
		munmap(base + span, (size_t)(m + span + CHUNK - (base + span)));
	madvise(base, span, MADV_HUGEPAGE);
	return base;
}

void *pool_big_calloc(size_t size)
{
	size_t span = big_span(size);
	return span ? map_aligned(span) : calloc(1, size ? size : 1);
}

void pool_big_free(void *ptr, size_t size)
{
	size_t span = big_span(size);
	if (!ptr)
		return;
	if (span)
		munmap(ptr, span);
	else
		free(ptr);
}

#ifndef POOL_PASSTHROUGH
static void unmap_chunk(struct pool *p, struct chunk *c)
{
	for (size_t i = 0; i < p->nall; i++)
		if (p->all[i] == c) {
			p->all[i] = p->all[--p->nall];
			break;
		}
	munmap(c, CHUNK);
	p->stats.chunks--;
}

static void link_avail(struct pool *p, struct chunk *c)
{
	struct chunk **head = &p->avail[c->cls];
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
	c->listed = true;
}

static void unlink_avail(struct pool *p, struct chunk *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		p->avail[c->cls] = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->listed = false;
}

/* (Re)starts chunk base empty, for objects of class cls, in the class's list. */
static struct chunk *init_chunk(struct pool *p, char *base, unsigned cls)
{
	struct chunk *c = (struct chunk *)base;
	c->free = NULL;
	c->bump = base + HEAD_SIZE;
	c->end = base + HEAD_SIZE + (CHUNK - HEAD_SIZE) / ((cls + 1) * GRAIN) * ((cls + 1) * GRAIN);
	c->live = 0;
	c->cls = cls;
	c->listed = false;
	link_avail(p, c);
	return c;
}

/* A chunk for class cls: a spare one (whatever class it had), else a new one, aligned to
 * its size: twice the size is mapped and the ends trimmed. */
static struct chunk *new_chunk(struct pool *p, unsigned cls)
{
	if (p->spare) {
		/* Mapping a chunk makes the kernel zero 2 MiB, a few hundred microseconds and
		 * more in a virtual machine: under steady load chunks empty and fill all the
		 * time, and one that emptied a moment ago does the job for free. */
		struct chunk *c = p->spare;
		p->spare = c->next;
		p->nspare--;
		return init_chunk(p, (char *)c, cls);
	}
	if (p->nall == p->capall) {
		size_t cap = p->capall ? p->capall * 2 : 16;
		struct chunk **a = realloc(p->all, cap * sizeof(*a));
		if (!a)
			return NULL;
		p->all = a;
		p->capall = cap;
	}
	char *base = map_aligned(CHUNK);
	if (!base)
		return NULL;
	/* One huge page where the kernel has one (transparent huge pages set to "madvise"
	 * or "always", advised by map_aligned), and every page mapped now in one call rather
	 * than faulted in one by one; both are only advice, and the chunk works without. */
	madvise(base, CHUNK, MADV_POPULATE_WRITE);
	p->all[p->nall++] = (struct chunk *)base;
	p->stats.chunks++;
	p->stats.maps++;
	return init_chunk(p, base, cls);
}

#endif

void *pool_alloc(struct pool *p, size_t size)
{
#ifdef POOL_PASSTHROUGH
	(void)p;
	return malloc(size ? size : 1);
#else
	if (size > POOL_MAX)
		return malloc(size);
	unsigned cls = size ? (unsigned)((size - 1) / GRAIN) : 0;
	struct chunk *c = p->avail[cls];
	if (!c && !(c = new_chunk(p, cls)))
		return NULL;
	void *r;
	if (c->free) {
		r = c->free;
		memcpy(&c->free, r, sizeof(void *));
	} else {
		r = c->bump;
		c->bump += (cls + 1) * GRAIN;
	}
	c->live++;
	if (!c->free && c->bump == c->end)
		unlink_avail(p, c);
	p->stats.objects++;
	return r;
#endif
}

void pool_free(struct pool *p, void *ptr, size_t size)
{
#ifdef POOL_PASSTHROUGH
	(void)p;
	(void)size;
	free(ptr);
#else
	if (!ptr)
		return;
	if (size > POOL_MAX) {
		free(ptr);
		return;
	}
	struct chunk *c = (struct chunk *)((uintptr_t)ptr & ~(uintptr_t)(CHUNK - 1));
	memcpy(ptr, &c->free, sizeof(void *));
	c->free = ptr;
	p->stats.objects--;
	if (!c->listed)
		link_avail(p, c);
	if (--c->live == 0) {
		/* Spare now, for any class. After a burst its chunks empty out in the order
		 * they filled; pool_trim gives back what stays unused, so that the resident
		 * size follows what is held. Half of the chunks at most (SPARE_MIN at least)
		 * are spare between two trims: the rest go back at once. Not fewer: short-lived
		 * objects (transactions over TCP end with their answer) can keep a small pool
		 * swinging across a chunk boundary many times a second, and a chunk unmapped
		 * at once was mapped, and zeroed by the kernel, again a moment later. */
		unlink_avail(p, c);
		if (p->nspare + 1 > (p->stats.chunks + 1) / 2 && p->nspare >= SPARE_MIN) {
			unmap_chunk(p, c);
		} else {
			c->gen = p->gen;
			c->next = p->spare;
			p->spare = c;
			p->nspare++;
		}
	}
#endif
}

void pool_trim(struct pool *p)
{
#ifndef POOL_PASSTHROUGH
	/* What was spare already at the last trim, and still is, goes; the newest KEEP_EMPTY
	 * stay for the next burst. */
	struct chunk **pp = &p->spare;
	size_t kept = 0;
	while (*pp) {
		struct chunk *c = *pp;
		if (kept < KEEP_EMPTY || c->gen == p->gen) {
			kept++;
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		p->nspare--;
		unmap_chunk(p, c);
	}
	p->gen++;
#else
	(void)p;
#endif
}

void *pool_realloc(struct pool *p, void *ptr, size_t old, size_t size)
{
#ifndef POOL_PASSTHROUGH
	/* The same class (or both on the heap, handled by realloc below): nothing moves. */
	if (ptr && old <= POOL_MAX && size <= POOL_MAX && old && size && (old - 1) / GRAIN == (size - 1) / GRAIN)
		return ptr;
	if (ptr && old > POOL_MAX && size > POOL_MAX)
		return realloc(ptr, size);
#endif
	void *n = pool_alloc(p, size);
	if (!n)
		return NULL;
	if (ptr) {
		memcpy(n, ptr, old < size ? old : size);
		pool_free(p, ptr, old);
	}
	return n;
}
