/* config.h: settings machinery: keys described by the modules' tables, read from defaults, an INI file and --flags (flags win). */
#ifndef PARLEY_CORE_CONFIG_H
#define PARLEY_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* How a key's value is stored in its module's settings struct. */
enum cfg_kind {
	CFG_STR,    /* a char array of size bytes */
	CFG_UINT,   /* an unsigned in [min, max] */
	CFG_BOOL,   /* a bool: true|false|yes|no|on|off|1|0 */
	CFG_CHOICE, /* an unsigned: the index of the value in choices[] (any case) */
	CFG_LIST,   /* appended to an array of at most max entries of size bytes; the count
		     * is an unsigned at count_off */
	CFG_MAP,    /* NAME=VALUE (flag) or, in the file, any key of the section not named
		     * otherwise: entries of size bytes holding NAME at 0 (name_size bytes) and
		     * VALUE at voff (vsize bytes); a NAME given again (any case) replaces its
		     * value; count at count_off, at most max */
};

enum {
	CFG_F_REPLACE = 1,  /* LIST: a later source (file, then flags) replaces the list of an
			     * earlier one instead of adding to it, so one flag overrides a file */
	CFG_F_ALL = 2,      /* every subcommand takes the flag, not only serve and check */
	CFG_F_NONEMPTY = 4, /* STR: an empty value is refused where it is given */
};

/* One setting. Its flag is --flag; in the file it is `name` in [section]. */
struct cfg_key {
	const char *flag;
	const char *section;
	const char *name; /* NULL for a CFG_MAP */
	enum cfg_kind kind;
	size_t off;
	size_t size;
	unsigned min, max;
	size_t count_off;              /* CFG_LIST, CFG_MAP */
	size_t name_size, voff, vsize; /* CFG_MAP */
	const char *const *choices;    /* CFG_CHOICE: NULL-terminated */
	unsigned flags;                /* CFG_F_* */
	const char *unset;             /* CFG_STR: what an empty value means (printed) */
	const char *what;              /* CFG_LIST, CFG_MAP: the value's form for errors */
};

/* One module's settings: its keys, its struct, and its own check of the whole. */
struct cfg_part {
	const struct cfg_key *keys;
	size_t nkeys;
	void *base;
	/* Validates the settings once every source is read: returns 0, or -1 with the
	 * reason in err (naming the flag, without "parley: "). May be NULL. */
	int (*check)(const void *base, char *err, size_t errlen);
};

/* Flags a subcommand takes besides the settings. */
struct cfg_extra {
	const char *const *flags; /* names with value, e.g. "password", "limit" */
	const char **val;         /* OUT: per flag, NULL if absent */
	unsigned nflags;
	const char *const *bools; /* names without value, e.g. "json"; may be NULL */
	bool *bval;               /* OUT: per bool flag, whether it was given */
	unsigned nbools;
};

/* Parses argv from index first over parts whose structs hold their defaults: --config FILE
 * first (its path is copied to path, pathlen bytes), then the file, then the other flags,
 * so that flags win whatever their position. all_flags: every setting is a flag (serve,
 * check); otherwise only CFG_F_ALL ones and --config, plus extra's. Positional arguments
 * are left in pos[] (npos, at most maxpos). Returns 0, or 2 after printing "parley: ..."
 * naming the bad flag or file:line to ef (stderr, or a buffer when a server reloads). */
int cfg_parse_args(const struct cfg_part *parts, size_t nparts, char *path, size_t pathlen, int argc, char **argv,
		   int first, bool all_flags, struct cfg_extra *extra, char **pos, int *npos, int maxpos, FILE *ef);
/* Runs every part's check; returns 0, or 2 after printing the first failure to ef. */
int cfg_check(const struct cfg_part *parts, size_t nparts, FILE *ef);
/* Prints the settings in INI form, section by section in the order given (NULL-ended),
 * unset strings commented out, so that the output reads back as the same settings. */
void cfg_print(const struct cfg_part *parts, size_t nparts, const char *const *sections, FILE *f);

/* Reloading: one key whose value differs between two structs of the same part, with both
 * values as text (a list's entries, a map's NAME=VALUE, joined by ", "; "(unset)",
 * "(none)" for nothing). The texts live during the call only. */
typedef void(cfg_diff_h)(void *arg, const struct cfg_key *k, const char *was, const char *now);
/* Compares parts a and b (the same tables in the same order, different structs) key by
 * key, calling h for each key that differs; returns how many did. */
unsigned cfg_diff(const struct cfg_part *a, const struct cfg_part *b, size_t nparts, cfg_diff_h *h, void *arg);
/* Copies key k's value (a list or map whole) from part from into part to, of the same table. */
void cfg_copy_key(const struct cfg_part *to, const struct cfg_part *from, const struct cfg_key *k);

/* Table entries, for a settings struct T. */
#define CFG_KEY_STR(T, fl, sec, nm, field, unset_, fls)                                             \
	{                                                                                           \
		.flag = fl, .section = sec, .name = nm, .kind = CFG_STR, .off = offsetof(T, field), \
		.size = sizeof(((T *)0)->field), .unset = unset_, .flags = fls                      \
	}
#define CFG_KEY_UINT(T, fl, sec, nm, field, lo, hi)                                                             \
	{                                                                                                       \
		.flag = fl, .section = sec, .name = nm, .kind = CFG_UINT, .off = offsetof(T, field), .min = lo, \
		.max = hi                                                                                       \
	}
#define CFG_KEY_BOOL(T, fl, sec, nm, field)                                                         \
	{                                                                                           \
		.flag = fl, .section = sec, .name = nm, .kind = CFG_BOOL, .off = offsetof(T, field) \
	}
#define CFG_KEY_LIST(T, fl, sec, nm, field, count, what_, fls)                                                   \
	{                                                                                                        \
		.flag = fl, .section = sec, .name = nm, .kind = CFG_LIST, .off = offsetof(T, field),             \
		.size = sizeof(((T *)0)->field[0]), .max = sizeof(((T *)0)->field) / sizeof(((T *)0)->field[0]), \
		.count_off = offsetof(T, count), .what = what_, .flags = fls                                     \
	}

#endif
