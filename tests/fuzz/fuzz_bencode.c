/* fuzz_bencode.c: libFuzzer target for the bencode checker and readers: every view in bounds, every walk ends. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "media/media_int.h"

static const char *base;
static size_t size_;

static void inside(struct str s)
{
	if (s.l && (s.p < base || s.p + s.l > base + size_))
		abort();
}

/* Visits every value under v; each reader must agree with what bn_check accepted. */
static void walk(struct str v, unsigned depth)
{
	struct str cur, a, b, s;
	int64_t i;
	inside(v);
	if (depth > 64 || v.l == 0)
		abort();
	if (bn_list_begin(v, &cur)) {
		while (bn_list_next(&cur, &a))
			walk(a, depth + 1);
		if (cur.l)
			abort(); /* a checked list is read to its end */
	} else if (bn_dict_begin(v, &cur)) {
		while (bn_dict_next(&cur, &a, &b)) {
			inside(a);
			walk(b, depth + 1);
			struct str again;
			char key[64];
			if (a.l < sizeof(key) && !memchr(a.p, '\0', a.l)) {
				memcpy(key, a.p, a.l);
				key[a.l] = '\0';
				if (!bn_dict_get(v, key, &again))
					abort();
			}
		}
		if (cur.l)
			abort();
	} else if (bn_as_str(v, &s)) {
		inside(s);
	} else if (v.p[0] == 'i') {
		(void)bn_as_int(v, &i); /* may overflow int64 and say so */
	} else {
		abort();
	}
}

/* The readers as the ng client uses them, on a value nobody checked (a reply goes to them
 * after a look at its first and last bytes only): any of them may fail, none may hand out
 * a view outside the input, and every iteration ends. Nested values are read the same way,
 * as far as the iteration gets. */
static void read_unchecked(struct str v, unsigned depth)
{
	struct str cur, k, x, s;
	int64_t i;
	inside(v);
	if (depth > 64)
		return;
	(void)bn_as_int(v, &i);
	if (bn_as_str(v, &s))
		inside(s);
	if (bn_dict_get(v, "result", &x))
		inside(x);
	if (bn_dict_get_str(v, "sdp", &s))
		inside(s);
	if (bn_list_begin(v, &cur)) {
		inside(cur);
		while (bn_list_next(&cur, &x))
			read_unchecked(x, depth + 1);
	}
	if (bn_dict_begin(v, &cur)) {
		inside(cur);
		while (bn_dict_next(&cur, &k, &x)) {
			inside(k);
			read_unchecked(x, depth + 1);
		}
	}
}

/* bn_walk's visitor: every view it hands out lies inside the input, and a checked input is
 * walked to its end. */
static bool visit(void *arg, const struct str *path, unsigned depth, struct str val)
{
	(void)arg;
	inside(val);
	for (unsigned j = 0; j < depth; j++)
		if (path[j].l)
			inside(path[j]);
	return true;
}

/* bn_walk_some's choices: every container, none, or those whose key has an even length
 * (list items, with no key, are gone into). */
static bool enter_all(void *arg, const struct str *path, unsigned depth)
{
	(void)arg;
	(void)path;
	(void)depth;
	return true;
}

static bool enter_none(void *arg, const struct str *path, unsigned depth)
{
	(void)arg;
	(void)path;
	(void)depth;
	return false;
}

static bool enter_even(void *arg, const struct str *path, unsigned depth)
{
	(void)arg;
	for (unsigned j = 0; j < depth; j++)
		if (path[j].l)
			inside(path[j]);
	return depth == 0 || path[depth - 1].l % 2 == 0;
}

static bool count(void *arg, const struct str *path, unsigned depth, struct str val)
{
	visit(NULL, path, depth, val);
	(*(unsigned *)arg)++;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str in = { (const char *)data, size };
	base = in.p;
	size_ = size;
	/* Any input: the walk may stop early but stays inside it; a checked one walks whole. */
	unsigned all = 0, some = 0, none = 0, again = 0;
	bool walked = bn_walk(in, count, &all);
	if (bn_check(in, BN_MAX_DEPTH) == 0 && !walked)
		abort();
	/* Pruned walks check what they pass over as the whole walk does: the same answer on
	 * any input, and no more visits (as many when nothing is pruned). */
	if (bn_walk_some(in, enter_all, count, &again) != walked || again != all)
		abort();
	if (bn_walk_some(in, enter_even, count, &some) != walked || some > all)
		abort();
	if (bn_walk_some(in, enter_none, count, &none) != walked || none > all || (size && in.p[0] == 'd' && none))
		abort();
	if (bn_check(in, 32) == 0) {
		walk(in, 0);
	} else {
		/* Unchecked input: the readers may fail but never read outside it. */
		read_unchecked(in, 0);
	}
	/* The writer round trip: a string written and read back is the same bytes. */
	char out[256];
	struct bn_out o;
	bn_init(&o, out, sizeof(out));
	bn_dict(&o);
	bn_kv_str(&o, "k", (struct str){ in.p, size < 200 ? size : 200 });
	bn_end(&o);
	struct str got;
	if (o.overflow || bn_check(bn_view(&o), 2) || !bn_dict_get_str(bn_view(&o), "k", &got) ||
	    got.l != (size < 200 ? size : 200) || (got.l && memcmp(got.p, in.p, got.l)))
		abort();
	return 0;
}
