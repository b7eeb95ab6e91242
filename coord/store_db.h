/* store_db.h - what store.c needs of a database engine: run one parameterised statement,
 * iterate the rows of a query, transactions, the next id of a table. One small front, one
 * file per engine (store_sqlite.c, store_pg.c), as wireguard-tools' ipc.h. The SQL is
 * written once, in store.c and store_schema.c, in the subset SQLite, PostgreSQL and
 * CockroachDB all run; '?' placeholders (the PostgreSQL engine numbers them). */
#ifndef COORD_STORE_DB_H
#define COORD_STORE_DB_H

#include <stddef.h>
#include <stdint.h>

#define STORE_MAX_PARAMS 24
#define STORE_MAX_COLS 24

enum store_vtype { SV_NULL, SV_INT, SV_TEXT, SV_BLOB };

struct store_val {
	int type;                  /* enum store_vtype */
	int64_t i;
	const void *p;             /* SV_TEXT: NUL-terminated; SV_BLOB: len bytes */
	size_t len;
};

/* One row as the engine delivered it; pointers valid until the callback returns. */
struct store_row {
	int n;
	struct store_val c[STORE_MAX_COLS];
};

typedef int (*store_row_cb)(const struct store_row *row, void *arg);

struct store;

enum store_engine_kind { STORE_ENGINE_SQLITE, STORE_ENGINE_PG };

struct store_engine {
	const char *name;                 /* "sqlite", "postgresql" */
	int kind;                         /* enum store_engine_kind: DDL dialect */
	/* Opens the database; *impl is the engine's handle. */
	int (*open)(const char *spec, void **impl);
	void (*close)(void *impl);
	/* A statement; rows (may be NULL) gets each result row; *changes the affected rows.
	 * -EEXIST for a unique or primary key violation, -EAGAIN for a serialisation failure
	 * the engine could not retry away, -ENOTCONN while the database is unreachable,
	 * -EIO otherwise (the engine logs the message). */
	int (*run)(void *impl, const char *op, const char *sql, const struct store_val *p, int n,
		   store_row_cb rows, void *arg, int64_t *changes);
	/* Statements separated by ';' without parameters (DDL). */
	int (*script)(void *impl, const char *op, const char *sql);
	int (*begin)(void *impl);
	int (*commit)(void *impl);
	void (*rollback)(void *impl);
	/* The id the next row of table gets: 0 lets the engine assign it on insert (SQLite's
	 * AUTOINCREMENT); PostgreSQL takes it from the table's sequence first, so a retried
	 * transaction inserts the same id again. */
	int (*next_id)(void *impl, const char *table, int64_t *id);
	/* After rows were inserted with explicit ids (migrate): the next id is above them. */
	int (*bump_ids)(void *impl, const char *table);
	/* The schema version the database is at (0: empty), and setting it (inside the
	 * step's transaction). SQLite keeps it in PRAGMA user_version, PostgreSQL in meta. */
	int (*get_version)(void *impl);
	int (*set_version)(void *impl, int v);
	/* 1 while the engine's connection works (PostgreSQL reconnects on demand). */
	int (*healthy)(void *impl);
	uint64_t (*retries)(void *impl);   /* serialisation failures retried; may be NULL */
	uint64_t (*unsure_commits)(void *impl);   /* COMMITs cut off unanswered; may be NULL */
};

extern const struct store_engine store_engine_sqlite;
extern const struct store_engine store_engine_pg;

/* store_schema.c: the tables, described once; the DDL of each dialect is made from it. */
#define STORE_SCHEMA_VERSION 6
/* Creates every table at the current version in an empty database. */
int store_schema_create(const struct store_engine *e, void *impl);
/* Takes a database at version `from` (>= 1) to the current one, one step at a time; the
 * caller runs each in a transaction and sets the version after it. */
int store_schema_step(const struct store_engine *e, void *impl, int from);
/* Table names in copy order (migrate, checksums). */
extern const char *const store_schema_tables[];

#endif
