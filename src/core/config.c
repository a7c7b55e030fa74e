/* config.c: the settings machinery: table-driven keys from defaults, an INI file (libinih) and flags. */
#include "core/config.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/str.h"

/* Where a list's entries came from: with CFG_F_REPLACE a later source replaces the list of
 * an earlier one (the file's domains replace the default, a --domain flag the file's);
 * within one source repeated keys add entries. */
enum source { SRC_DEFAULT = 0, SRC_FILE, SRC_FLAG };

/* The parts and the source of each list while parsing. */
#define MAX_LISTS 16
struct parse {
	const struct cfg_part *parts;
	size_t nparts;
	const struct cfg_key *list_key[MAX_LISTS];
	enum source list_src[MAX_LISTS];
	unsigned nlists;
	/* file parsing: the first error only, reported with the line inih gives back */
	char ferr[300];
	FILE *ef; /* where errors are printed: stderr, or a reload's message buffer */
};

static void *at(const struct cfg_part *part, size_t off)
{
	return (char *)part->base + off;
}

static unsigned *count_of(const struct cfg_part *part, const struct cfg_key *k)
{
	return at(part, k->count_off);
}

/* The key a flag names, and its part. */
static const struct cfg_key *find_flag(const struct parse *p, const char *name, size_t len,
				       const struct cfg_part **part)
{
	for (size_t i = 0; i < p->nparts; i++)
		for (size_t k = 0; k < p->parts[i].nkeys; k++) {
			const struct cfg_key *key = &p->parts[i].keys[k];
			if (key->flag && strlen(key->flag) == len && memcmp(key->flag, name, len) == 0) {
				*part = &p->parts[i];
				return key;
			}
		}
	return NULL;
}

static int copy(char *dst, size_t n, const char *v, char *err, size_t errlen)
{
	size_t len = strlen(v);
	if (len >= n) {
		snprintf(err, errlen, "value too long (at most %zu characters)", n - 1);
		return -1;
	}
	memcpy(dst, v, len + 1);
	return 0;
}

static enum source *list_source(struct parse *p, const struct cfg_key *k)
{
	for (unsigned i = 0; i < p->nlists; i++)
		if (p->list_key[i] == k)
			return &p->list_src[i];
	if (p->nlists == MAX_LISTS)
		return NULL;
	p->list_key[p->nlists] = k;
	p->list_src[p->nlists] = SRC_DEFAULT;
	return &p->list_src[p->nlists++];
}

static int set_list(struct parse *p, const struct cfg_part *part, const struct cfg_key *k, const char *v,
		    enum source src, char *err, size_t errlen)
{
	unsigned *n = count_of(part, k);
	enum source *have = list_source(p, k);
	if (have && (k->flags & CFG_F_REPLACE) && *have < src) {
		*n = 0;
		*have = src;
	}
	if (*n == k->max) {
		snprintf(err, errlen, "too many entries (at most %u)", k->max);
		return -1;
	}
	if (!*v) {
		snprintf(err, errlen, "empty value");
		return -1;
	}
	if (copy((char *)at(part, k->off) + (size_t)*n * k->size, k->size, v, err, errlen))
		return -1;
	(*n)++;
	return 0;
}

static int set_map(const struct cfg_part *part, const struct cfg_key *k, const char *name, size_t nlen,
		   const char *value, char *err, size_t errlen)
{
	struct str d = str_trim((struct str){ name, nlen });
	struct str u = str_trim(str_from_cstr(value));
	if (d.l == 0 || u.l == 0) {
		snprintf(err, errlen, "expected %s", k->what);
		return -1;
	}
	if (d.l >= k->name_size || u.l >= k->vsize) {
		snprintf(err, errlen, "value too long");
		return -1;
	}
	/* A name given twice keeps the later value: a flag can redirect an entry of the file. */
	unsigned *n = count_of(part, k);
	char *base = at(part, k->off);
	unsigned i;
	for (i = 0; i < *n; i++)
		if (str_caseeq_cstr(d, base + (size_t)i * k->size))
			break;
	if (i == *n) {
		if (*n == k->max) {
			snprintf(err, errlen, "too many entries (at most %u)", k->max);
			return -1;
		}
		(*n)++;
	}
	str_to_cbuf(d, base + (size_t)i * k->size, k->name_size);
	str_to_cbuf(u, base + (size_t)i * k->size + k->voff, k->vsize);
	return 0;
}

/* Applies one setting from the file or a flag; on error writes the reason (no prefix) to
 * err and returns -1. */
static int set_value(struct parse *p, const struct cfg_part *part, const struct cfg_key *k, const char *v,
		     enum source src, char *err, size_t errlen)
{
	switch (k->kind) {
	case CFG_STR:
		/* An empty value means "unset" except where it could only fail later, far from
		 * the line that caused it (an empty database path). */
		if (!*v && (k->flags & CFG_F_NONEMPTY)) {
			snprintf(err, errlen, "empty %s", k->what ? k->what : "value");
			return -1;
		}
		return copy(at(part, k->off), k->size, v, err, errlen);
	case CFG_UINT: {
		uint64_t n;
		if (!str_to_u64(str_trim(str_from_cstr(v)), k->max, &n) || n < k->min) {
			snprintf(err, errlen, "expected a number from %u to %u, got '%s'", k->min, k->max, v);
			return -1;
		}
		*(unsigned *)at(part, k->off) = (unsigned)n;
		return 0;
	}
	case CFG_BOOL: {
		static const char *const yes[] = { "true", "yes", "on", "1" }, *const no[] = { "false", "no", "off",
											       "0" };
		for (size_t i = 0; i < 4; i++) {
			if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
				*(bool *)at(part, k->off) = strcasecmp(v, yes[i]) == 0;
				return 0;
			}
		}
		snprintf(err, errlen, "expected true|false, got '%s'", v);
		return -1;
	}
	case CFG_CHOICE: {
		char all[128] = "";
		for (unsigned i = 0; k->choices[i]; i++) {
			if (strcasecmp(v, k->choices[i]) == 0) {
				*(unsigned *)at(part, k->off) = i;
				return 0;
			}
			snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? "|" : "", k->choices[i]);
		}
		snprintf(err, errlen, "expected %s", all);
		return -1;
	}
	case CFG_LIST:
		return set_list(p, part, k, v, src, err, errlen);
	case CFG_MAP: {
		const char *eq = strchr(v, '=');
		if (!eq) {
			snprintf(err, errlen, "expected %s", k->what);
			return -1;
		}
		return set_map(part, k, v, (size_t)(eq - v), eq + 1, err, errlen);
	}
	}
	return -1;
}

static bool known_section(const struct parse *p, const char *section)
{
	for (size_t i = 0; i < p->nparts; i++)
		for (size_t k = 0; k < p->parts[i].nkeys; k++)
			if (strcasecmp(p->parts[i].keys[k].section, section) == 0)
				return true;
	return false;
}

/* inih calls this for every key; it returns 0 to make ini_parse report the line. */
static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	char why[256];
	const struct cfg_part *map_part = NULL;
	const struct cfg_key *map = NULL;
	for (size_t i = 0; i < p->nparts; i++) {
		const struct cfg_part *part = &p->parts[i];
		for (size_t k = 0; k < part->nkeys; k++) {
			const struct cfg_key *key = &part->keys[k];
			if (strcasecmp(section, key->section) != 0)
				continue;
			if (key->kind == CFG_MAP) {
				map_part = part;
				map = key;
				continue;
			}
			if (strcasecmp(name, key->name) != 0)
				continue;
			if (set_value(p, part, key, value, SRC_FILE, why, sizeof(why)) == 0)
				return 1;
			if (!p->ferr[0])
				snprintf(p->ferr, sizeof(p->ferr), "%s: %s", name, why);
			return 0;
		}
	}
	if (map) {
		if (set_map(map_part, map, name, strlen(name), value, why, sizeof(why)) == 0)
			return 1;
		if (!p->ferr[0])
			snprintf(p->ferr, sizeof(p->ferr), "%s '%s': %s", map->flag, name, why);
		return 0;
	}
	if (p->ferr[0])
		return 0;
	if (known_section(p, section))
		snprintf(p->ferr, sizeof(p->ferr), "unknown key '%s' in [%s]", name, section);
	else if (!*section)
		snprintf(p->ferr, sizeof(p->ferr), "key '%s' outside a section", name);
	else
		snprintf(p->ferr, sizeof(p->ferr), "unknown section [%s]", section);
	return 0;
}

/* A config file is small text a person wrote; anything bigger is a mistake (a log, a
 * database) and reading it would only produce a confusing error at some line. */
#define CONFIG_FILE_MAX ((size_t)1 << 20)

/* Reads the config file into a NUL-terminated buffer (free it). Only a regular file of at
 * most CONFIG_FILE_MAX bytes is read: /dev/zero or a FIFO would make a reader wait or read
 * forever. Returns NULL after printing why. */
static char *slurp(const char *path, FILE *ef)
{
	/* O_NONBLOCK so that opening a FIFO with no writer returns at once for fstat to
	 * refuse, instead of blocking in open. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat sb;
	char *buf = NULL;
	size_t len = 0;

	if (fd < 0) {
		fprintf(ef, "parley: cannot read config file %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) != 0) {
		fprintf(ef, "parley: cannot read config file %s: %s\n", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		fprintf(ef, "parley: config file %s: not a regular file\n", path);
		goto fail;
	}
	if ((uint64_t)sb.st_size > CONFIG_FILE_MAX) {
		fprintf(ef, "parley: config file %s: too large (%lld bytes, at most 1 MiB)\n", path,
			(long long)sb.st_size);
		goto fail;
	}
	/* One byte more than allowed, so that a file growing after fstat is still caught. */
	buf = malloc(CONFIG_FILE_MAX + 2);
	if (!buf) {
		fprintf(ef, "parley: config file %s: out of memory\n", path);
		goto fail;
	}
	while (len <= CONFIG_FILE_MAX) {
		ssize_t n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(ef, "parley: cannot read config file %s: %s\n", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > CONFIG_FILE_MAX) {
		fprintf(ef, "parley: config file %s: too large (at most 1 MiB)\n", path);
		goto fail;
	}
	buf[len] = '\0';
	if (strlen(buf) != len) {
		fprintf(ef, "parley: config file %s: not a text file (it holds a NUL byte)\n", path);
		goto fail;
	}
	close(fd);
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

static int read_file(struct parse *p, const char *path)
{
	char *text = slurp(path, p->ef);
	if (!text)
		return 2;
	int line = ini_parse_string(text, on_ini, p);
	free(text);
	if (line == 0)
		return 0;
	if (line < 0) {
		fprintf(p->ef, "parley: %s: cannot parse (out of memory)\n", path);
		return 2;
	}
	fprintf(p->ef, "parley: %s:%d: %s\n", path, line, p->ferr[0] ? p->ferr : "syntax error");
	return 2;
}

/* One command-line token classified: a flag (name, and value if it has one) or a
 * positional argument. */
struct tok {
	const char *name; /* after "--"; NULL for a positional argument */
	size_t nlen;
	const char *value;         /* the value, from "=VALUE" or the next argument */
	const char *arg;           /* the argument itself */
	int kind;                  /* 0 positional, 1 config key, 2 extra with value, 3 extra bool,
				    * 4 the "--" that ends the flags, -1 unknown flag, -2 missing value */
	const struct cfg_key *key; /* kind 1; NULL with kind 1: --config */
	const struct cfg_part *part;
	unsigned extra; /* index into extra flags or bools */
};

static bool extra_has(const char *const *names, unsigned n, const char *name, size_t len, unsigned *idx)
{
	for (unsigned i = 0; names && i < n; i++)
		if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0) {
			*idx = i;
			return true;
		}
	return false;
}

/* Reads the token at argv[*i] and moves *i past it (and past its value). */
static void next_tok(const struct parse *p, int argc, char **argv, int *i, bool all_flags, const struct cfg_extra *x,
		     bool *rest, struct tok *t)
{
	const char *a = argv[(*i)++];
	*t = (struct tok){ .arg = a };
	if (*rest || a[0] != '-' || a[1] == '\0')
		return;
	if (strcmp(a, "--") == 0) {
		*rest = true;
		t->kind = 4;
		return;
	}
	const char *name = a[1] == '-' ? a + 2 : a + 1;
	const char *eq = strchr(name, '=');
	t->name = name;
	t->nlen = eq ? (size_t)(eq - name) : strlen(name);
	bool takes_value;
	if (a[1] != '-') {
		t->kind = -1; /* every flag is spelled --name */
		return;
	} else if (x && extra_has(x->flags, x->nflags, name, t->nlen, &t->extra)) {
		t->kind = 2;
		takes_value = true;
	} else if (x && extra_has(x->bools, x->nbools, name, t->nlen, &t->extra)) {
		t->kind = 3;
		takes_value = false;
	} else if (t->nlen == 6 && memcmp(name, "config", 6) == 0) {
		t->kind = 1;
		takes_value = true;
	} else if ((t->key = find_flag(p, name, t->nlen, &t->part)) && (all_flags || (t->key->flags & CFG_F_ALL))) {
		t->kind = 1;
		takes_value = true;
	} else {
		t->kind = -1;
		return;
	}
	if (!takes_value) {
		if (eq)
			t->kind = -1;
		return;
	}
	if (eq) {
		t->value = eq + 1;
	} else if (*i < argc) {
		t->value = argv[(*i)++];
	} else {
		t->kind = -2;
	}
}

int cfg_parse_args(const struct cfg_part *parts, size_t nparts, char *path, size_t pathlen, int argc, char **argv,
		   int first, bool all_flags, struct cfg_extra *extra, char **pos, int *npos, int maxpos, FILE *ef)
{
	struct parse p = { .parts = parts, .nparts = nparts, .ef = ef };
	struct tok t;
	bool rest = false;
	path[0] = '\0';
	if (npos)
		*npos = 0;
	for (unsigned i = 0; extra && i < extra->nflags; i++)
		extra->val[i] = NULL;
	for (unsigned i = 0; extra && i < extra->nbools; i++)
		extra->bval[i] = false;

	/* First pass: only --config, so that the file is applied before every other flag and
	 * the flags win whatever their position. */
	for (int i = first; i < argc;) {
		next_tok(&p, argc, argv, &i, all_flags, extra, &rest, &t);
		if (t.kind == 1 && !t.key) {
			char why[256];
			if (copy(path, pathlen, t.value, why, sizeof why)) {
				fprintf(ef, "parley: --config: %s\n", why);
				return 2;
			}
		}
	}
	if (path[0] && read_file(&p, path))
		return 2;

	rest = false;
	for (int i = first; i < argc;) {
		next_tok(&p, argc, argv, &i, all_flags, extra, &rest, &t);
		char why[256];
		switch (t.kind) {
		case 0:
			if (!npos || *npos >= maxpos) {
				fprintf(ef, "parley: unexpected argument '%s'\n", t.arg);
				return 2;
			}
			pos[(*npos)++] = (char *)t.arg;
			break;
		case -1:
			fprintf(ef, "parley: unknown flag %.*s\n", (int)(t.name - t.arg + t.nlen), t.arg);
			return 2;
		case -2:
			fprintf(ef, "parley: --%.*s: missing value\n", (int)t.nlen, t.name);
			return 2;
		case 2:
			extra->val[t.extra] = t.value;
			break;
		case 3:
			extra->bval[t.extra] = true;
			break;
		case 4:
			break;
		case 1:
			if (!t.key)
				break;
			if (set_value(&p, t.part, t.key, t.value, SRC_FLAG, why, sizeof(why))) {
				fprintf(ef, "parley: --%s: %s\n", t.key->flag, why);
				return 2;
			}
			break;
		}
	}
	return 0;
}

int cfg_check(const struct cfg_part *parts, size_t nparts, FILE *ef)
{
	for (size_t i = 0; i < nparts; i++) {
		char why[512];
		if (parts[i].check && parts[i].check(parts[i].base, why, sizeof why) < 0) {
			fprintf(ef, "parley: %s\n", why);
			return 2;
		}
	}
	return 0;
}

static void print_key(const struct cfg_part *part, const struct cfg_key *k, FILE *f)
{
	switch (k->kind) {
	case CFG_STR: {
		const char *v = at(part, k->off);
		if (*v)
			fprintf(f, "%s = %s\n", k->name, v);
		else
			fprintf(f, "; %s =   (%s)\n", k->name, k->unset ? k->unset : "unset");
		break;
	}
	case CFG_UINT:
		fprintf(f, "%s = %u\n", k->name, *(unsigned *)at(part, k->off));
		break;
	case CFG_BOOL:
		fprintf(f, "%s = %s\n", k->name, *(bool *)at(part, k->off) ? "true" : "false");
		break;
	case CFG_CHOICE:
		fprintf(f, "%s = %s\n", k->name, k->choices[*(unsigned *)at(part, k->off)]);
		break;
	case CFG_LIST:
		for (unsigned i = 0; i < *count_of(part, k); i++)
			fprintf(f, "%s = %s\n", k->name, (char *)at(part, k->off) + (size_t)i * k->size);
		break;
	case CFG_MAP:
		for (unsigned i = 0; i < *count_of(part, k); i++) {
			const char *e = (char *)at(part, k->off) + (size_t)i * k->size;
			fprintf(f, "%s = %s\n", e, e + k->voff);
		}
		break;
	}
}

void cfg_print(const struct cfg_part *parts, size_t nparts, const char *const *sections, FILE *f)
{
	for (size_t s = 0; sections[s]; s++) {
		fprintf(f, "%s[%s]\n", s ? "\n" : "", sections[s]);
		for (size_t i = 0; i < nparts; i++)
			for (size_t k = 0; k < parts[i].nkeys; k++)
				if (strcasecmp(parts[i].keys[k].section, sections[s]) == 0)
					print_key(&parts[i], &parts[i].keys[k], f);
	}
}

/* Whether key k holds the same value in parts a and b (the same table, two structs). */
static bool same_value(const struct cfg_part *a, const struct cfg_part *b, const struct cfg_key *k)
{
	switch (k->kind) {
	case CFG_STR:
		return strcmp(at(a, k->off), at(b, k->off)) == 0;
	case CFG_UINT:
	case CFG_CHOICE:
		return *(unsigned *)at(a, k->off) == *(unsigned *)at(b, k->off);
	case CFG_BOOL:
		return *(bool *)at(a, k->off) == *(bool *)at(b, k->off);
	case CFG_LIST:
	case CFG_MAP:
		if (*count_of(a, k) != *count_of(b, k))
			return false;
		for (unsigned i = 0; i < *count_of(a, k); i++) {
			const char *ea = (char *)at(a, k->off) + (size_t)i * k->size;
			const char *eb = (char *)at(b, k->off) + (size_t)i * k->size;
			if (strcmp(ea, eb) != 0 || (k->kind == CFG_MAP && strcmp(ea + k->voff, eb + k->voff) != 0))
				return false;
		}
		return true;
	}
	return true;
}

/* Key k's value as one line of text: a list's entries (a map's NAME=VALUE) joined by ", ". */
static const char *value_text(const struct cfg_part *part, const struct cfg_key *k, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	switch (k->kind) {
	case CFG_STR:
		snprintf(buf, len, "%s", *(char *)at(part, k->off) ? (char *)at(part, k->off) : "(unset)");
		break;
	case CFG_UINT:
		snprintf(buf, len, "%u", *(unsigned *)at(part, k->off));
		break;
	case CFG_BOOL:
		snprintf(buf, len, "%s", *(bool *)at(part, k->off) ? "true" : "false");
		break;
	case CFG_CHOICE:
		snprintf(buf, len, "%s", k->choices[*(unsigned *)at(part, k->off)]);
		break;
	case CFG_LIST:
	case CFG_MAP:
		if (!*count_of(part, k))
			snprintf(buf, len, "(none)");
		for (unsigned i = 0; i < *count_of(part, k) && n < len; i++) {
			const char *e = (char *)at(part, k->off) + (size_t)i * k->size;
			int w = k->kind == CFG_MAP
					? snprintf(buf + n, len - n, "%s%s=%s", i ? ", " : "", e, e + k->voff)
					: snprintf(buf + n, len - n, "%s%s", i ? ", " : "", e);
			n += w > 0 ? (size_t)w : 0;
		}
		break;
	}
	return buf;
}

unsigned cfg_diff(const struct cfg_part *a, const struct cfg_part *b, size_t nparts, cfg_diff_h *h, void *arg)
{
	unsigned n = 0;
	for (size_t i = 0; i < nparts; i++)
		for (size_t k = 0; k < a[i].nkeys; k++) {
			const struct cfg_key *key = &a[i].keys[k];
			if (same_value(&a[i], &b[i], key))
				continue;
			char was[1024], now[1024];
			h(arg, key, value_text(&a[i], key, was, sizeof was), value_text(&b[i], key, now, sizeof now));
			n++;
		}
	return n;
}

void cfg_copy_key(const struct cfg_part *to, const struct cfg_part *from, const struct cfg_key *k)
{
	switch (k->kind) {
	case CFG_STR:
		memcpy(at(to, k->off), at(from, k->off), k->size);
		break;
	case CFG_UINT:
	case CFG_CHOICE:
		*(unsigned *)at(to, k->off) = *(unsigned *)at(from, k->off);
		break;
	case CFG_BOOL:
		*(bool *)at(to, k->off) = *(bool *)at(from, k->off);
		break;
	case CFG_LIST:
	case CFG_MAP:
		memcpy(at(to, k->off), at(from, k->off), (size_t)k->max * k->size);
		*count_of(to, k) = *count_of(from, k);
		break;
	}
}
