/* table.c: the CLI's text tables (parley reg list, parley calls). */
#include "cli/table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_table_init(struct cli_table *t, unsigned ncol)
{
	memset(t, 0, sizeof(*t));
	t->ncol = ncol < CLI_TABLE_MAXCOL ? ncol : CLI_TABLE_MAXCOL;
}

int cli_table_add(struct cli_table *t, const char *const *cells)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **p = realloc(t->cell, cap * t->ncol * sizeof(*p));
		if (!p) {
			t->oom = true;
			return -ENOMEM;
		}
		t->cell = p;
		t->cap = cap;
	}
	char **row = t->cell + t->n * t->ncol;
	for (unsigned i = 0; i < t->ncol; i++) {
		row[i] = strdup(cells[i]);
		if (!row[i]) {
			while (i--)
				free(row[i]);
			t->oom = true;
			return -ENOMEM;
		}
		size_t l = strlen(row[i]);
		if (l > t->width[i])
			t->width[i] = l;
	}
	t->n++;
	return 0;
}

static void print_row(const struct cli_table *t, const char *const *row)
{
	for (unsigned i = 0; i < t->ncol; i++)
		if (i + 1 < t->ncol)
			printf("%-*s  ", (int)t->width[i], row[i]);
		else if (t->text_last)
			printf("%s\n", row[i]);
		else
			printf("%*s\n", (int)t->width[i], row[i]);
}

void cli_table_print(struct cli_table *t, const char *const *head)
{
	for (unsigned i = 0; i < t->ncol; i++)
		if (strlen(head[i]) > t->width[i])
			t->width[i] = strlen(head[i]);
	print_row(t, head);
	for (size_t r = 0; r < t->n; r++)
		print_row(t, (const char *const *)(t->cell + r * t->ncol));
}

void cli_table_free(struct cli_table *t)
{
	for (size_t k = 0; k < t->n * t->ncol; k++)
		free(t->cell[k]);
	free(t->cell);
	t->cell = NULL;
	t->n = t->cap = 0;
}
