/* table.h: a text table for the CLI, its columns as wide as their widest cell. */
#ifndef PARLEY_CLI_TABLE_H
#define PARLEY_CLI_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#define CLI_TABLE_MAXCOL 8

/* Rows are gathered first, since a column's width is known only once every row is in. */
struct cli_table {
	unsigned ncol;
	char **cell; /* n rows of ncol copied strings */
	size_t n, cap;
	size_t width[CLI_TABLE_MAXCOL];
	bool oom;       /* a row could not be stored */
	bool text_last; /* the last column is text (left-aligned, unpadded) */
};

void cli_table_init(struct cli_table *t, unsigned ncol);
/* Copies one row of ncol strings; returns 0 or -ENOMEM (and sets oom). */
int cli_table_add(struct cli_table *t, const char *const *cells);
/* Prints the head line and every row: left-aligned, the last column right-aligned (a
 * number) unless text_last is set. */
void cli_table_print(struct cli_table *t, const char *const *head);
void cli_table_free(struct cli_table *t);

#endif
