/* pool.h: memory for many small objects of a few sizes, in 2 MiB chunks backed by huge pages. */
#ifndef PARLEY_CORE_POOL_H
#define PARLEY_CORE_POOL_H

#include <stddef.h>

/*
 * Why: a burst of SIP traffic leaves tens of thousands of finished transactions lingering
 * for RFC 3261's timers (32 s), each a few hundred bytes, so the heap grows by megabytes a
 * second. Every new 4 KiB page costs a page fault, about 10 µs in a virtual machine (the
 * hypervisor maps each page), which was a third of the CPU of a registration. A pool
 * chunk is one 2 MiB transparent huge page, mapped with one fault and populated at once,
 * and chunks that empty after a burst go back to the system (pool_trim).
 *
 * Objects are grouped by size class (multiples of 64 bytes up to POOL_MAX); each chunk
 * holds one class. Larger requests fall through to malloc. pool_free takes the size given
 * to pool_alloc. Not thread-safe: one pool per event loop. Built with AddressSanitizer,
 * every call goes to malloc/free so that the sanitizer sees each object.
 */

#define POOL_MAX 8192

struct pool;

struct pool_stats {
	size_t chunks;  /* chunks mapped now */
	size_t objects; /* objects allocated from chunks now */
	size_t maps;    /* chunks mapped since pool_new (each one zeroed by the kernel) */
};

int pool_new(struct pool **pp); /* 0 or -ENOMEM */
/* Unmaps every chunk, live objects included. */
void pool_destroy(struct pool *p);
/* size bytes, 16-byte aligned; NULL when memory runs out. */
void *pool_alloc(struct pool *p, size_t size);
void pool_free(struct pool *p, void *ptr, size_t size);
/* Memory for size bytes, from an object that was allocated with old bytes; contents up to
 * the smaller size are kept. NULL (and ptr left alone) when memory runs out. */
void *pool_realloc(struct pool *p, void *ptr, size_t old, size_t size);
const struct pool_stats *pool_stats(const struct pool *p);
/* Gives back to the system the chunks left empty since the last call, but for one kept
 * for the next burst. The owner calls it every second or so: between two calls, emptied
 * chunks serve any size class without being mapped (and zeroed) again. */
void pool_trim(struct pool *p);
#define POOL_TRIM_MS 1000 /* how often owners call pool_trim */

/* Zeroed memory for a big table (hash slots): from 2 MiB on, mapped apart on huge pages,
 * aligned, with no memset (fresh pages are zero); smaller ones from calloc. pool_big_free
 * takes the same size. */
void *pool_big_calloc(size_t size);
void pool_big_free(void *ptr, size_t size);

#endif
