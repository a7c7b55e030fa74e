/* test_pool.c: unit tests of the size-class chunk pool, chunks forced on even under ASan. */
#define POOL_CHUNKS_ALWAYS 1
#include "../../src/core/pool.c"

#include "unit.h"

#include <stdint.h>

/* Objects are aligned, distinct, writable in full, and reused after a free. */
static void t_alloc_free(void)
{
	struct pool *p = NULL;
	CHECK_INT(pool_new(&p), 0);
	enum { N = 1000 };
	static char *obj[N];
	for (int i = 0; i < N; i++) {
		size_t size = 1 + (size_t)i * 7 % POOL_MAX;
		obj[i] = pool_alloc(p, size);
		CHECK(obj[i] != NULL);
		CHECK_INT((uintptr_t)obj[i] % 16, 0);
		memset(obj[i], i & 0xff, size);
	}
	for (int i = 0; i < N; i++) {
		size_t size = 1 + (size_t)i * 7 % POOL_MAX;
		CHECK_INT((unsigned char)obj[i][0], i & 0xff);
		CHECK_INT((unsigned char)obj[i][size - 1], i & 0xff);
	}
	CHECK_INT(pool_stats(p)->objects, N);
	/* A freed object is the next one of its class. */
	char *a = pool_alloc(p, 100);
	pool_free(p, a, 100);
	CHECK(pool_alloc(p, 128) == a);
	pool_free(p, a, 128);
	for (int i = 0; i < N; i++)
		pool_free(p, obj[i], 1 + (size_t)i * 7 % POOL_MAX);
	CHECK_INT(pool_stats(p)->objects, 0);
	pool_destroy(p);
}

/* Empty chunks become spares (at most half of them, SPARE_MIN at least), which pool_trim gives back to the
 * system once they stay unused, but for a few kept for the next burst. */
static void t_release(void)
{
	struct pool *p = NULL;
	CHECK_INT(pool_new(&p), 0);
	enum { N = 100000 }; /* 100000 x 512 B: 25 chunks of 2 MiB, half of them more than SPARE_MIN */
	static void *obj[N];
	for (int i = 0; i < N; i++)
		obj[i] = pool_alloc(p, 512);
	size_t full = pool_stats(p)->chunks;
	CHECK(full >= 2 * SPARE_MIN);
	for (int i = 0; i < N; i++)
		pool_free(p, obj[i], 512);
	CHECK(pool_stats(p)->chunks > KEEP_EMPTY);
	CHECK(pool_stats(p)->chunks <= (full + 1) / 2 + 1);
	/* Spares serve the next burst, of any size, without new chunks. */
	size_t spare = pool_stats(p)->chunks;
	for (int i = 0; i < N / 10; i++)
		obj[i] = pool_alloc(p, 1024);
	CHECK_INT(pool_stats(p)->chunks, spare);
	for (int i = 0; i < N / 10; i++)
		pool_free(p, obj[i], 1024);
	spare = pool_stats(p)->chunks;
	CHECK(spare > KEEP_EMPTY);
	/* The first trim marks them, the second gives back all but KEEP_EMPTY. */
	pool_trim(p);
	CHECK_INT(pool_stats(p)->chunks, spare);
	pool_trim(p);
	CHECK_INT(pool_stats(p)->chunks, KEEP_EMPTY);
	/* The kept chunks serve the next burst without new ones. */
	for (int i = 0; i < 3000; i++)
		obj[i] = pool_alloc(p, 512);
	CHECK_INT(pool_stats(p)->chunks, KEEP_EMPTY);
	for (int i = 0; i < 3000; i++)
		pool_free(p, obj[i], 512);
	pool_destroy(p);
}

/* A small pool whose objects all come and go many times a second (transactions over TCP
 * end with their answer) swings across a chunk boundary: the chunk that empties is kept
 * as a spare and serves the next swing, instead of being unmapped and mapped (zeroed by
 * the kernel) again each time. */
static void t_swing(void)
{
	struct pool *p = NULL;
	CHECK_INT(pool_new(&p), 0);
	enum { N = 5000 }; /* 5000 x 512 B: a chunk and a fifth */
	static void *obj[N];
	size_t first = 0;
	for (int round = 0; round < 10; round++) {
		for (int i = 0; i < N; i++)
			obj[i] = pool_alloc(p, 512);
		for (int i = 0; i < N; i++)
			pool_free(p, obj[i], 512);
		if (round == 0)
			first = pool_stats(p)->maps;
	}
	CHECK_INT(first, 2);
	CHECK_INT(pool_stats(p)->maps, first);
	pool_destroy(p);
}

/* Large objects come from malloc; realloc keeps contents across classes. */
static void t_large_realloc(void)
{
	struct pool *p = NULL;
	CHECK_INT(pool_new(&p), 0);
	char *big = pool_alloc(p, POOL_MAX + 1);
	CHECK(big != NULL);
	CHECK_INT(pool_stats(p)->objects, 0);
	pool_free(p, big, POOL_MAX + 1);

	char *s = pool_alloc(p, 10);
	memcpy(s, "abcdefghij", 10);
	char *same = pool_realloc(p, s, 10, 60);
	CHECK(same == s);
	char *grown = pool_realloc(p, same, 60, 3000);
	CHECK(grown != NULL);
	CHECK(memcmp(grown, "abcdefghij", 10) == 0);
	char *huge = pool_realloc(p, grown, 3000, 10000);
	CHECK(memcmp(huge, "abcdefghij", 10) == 0);
	char *back = pool_realloc(p, huge, 10000, 20);
	CHECK(memcmp(back, "abcdefghij", 10) == 0);
	pool_free(p, back, 20);
	CHECK_INT(pool_stats(p)->objects, 0);
	pool_destroy(p);
}

/* Big tables: zeroed, writable, freed by size; small ones through calloc. */
static void t_big(void)
{
	size_t sizes[] = { 100, CHUNK - 1, CHUNK, 3 * CHUNK + 5 };
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *b = pool_big_calloc(sizes[i]);
		CHECK(b != NULL);
		if (!b)
			continue;
		CHECK_INT(b[0] | b[sizes[i] / 2] | b[sizes[i] - 1], 0);
		memset(b, 0xab, sizes[i]);
		if (sizes[i] >= CHUNK)
			CHECK_INT((uintptr_t)b % CHUNK, 0);
		pool_big_free(b, sizes[i]);
	}
}

static const struct unit_case cases[] = {
	{ "big", t_big },     { "alloc_free", t_alloc_free },       { "release", t_release },
	{ "swing", t_swing }, { "large_realloc", t_large_realloc },
};
UNIT_MAIN(cases)
