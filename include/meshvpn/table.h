/* table.h - aligned plain-text tables for CLI output. */
#ifndef MESHVPN_TABLE_H
#define MESHVPN_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct table {
	size_t ncols, nrows, cap;
	char **cells;
};

void table_init(struct table *t, size_t ncols);
/* Adds a row of ncols strings (copied; NULL prints as "-"). */
int table_add(struct table *t, ...);
void table_print(const struct table *t, FILE *f);
void table_free(struct table *t);

#endif
