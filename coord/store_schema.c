/* store_schema.c - coord's tables, described once; each engine's DDL is made from the
 * description: a new database is created at the current version, an older one moves up
 * one step at a time (a step creates the tables and adds the columns of its version).
 * Steps 2-4 predate the description and only ever meet SQLite files: their SQL is kept
 * as it was run then. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "meshvpn/log.h"
#include "store.h"
#include "store_db.h"

enum col_type { C_ID, C_INT, C_TEXT, C_BLOB };
enum { NN = 1, UNIQ = 2, PK = 4 };

struct col {
	const char *name;
	int type, flags;
	int since;          /* the version that added it (1 for the first tables) */
	const char *def;    /* DEFAULT, for a NOT NULL column added to an existing table */
};

struct table {
	const char *name;
	int since;
	const char *unique;          /* a multi-column UNIQUE, or NULL */
	const char *pk;              /* a multi-column PRIMARY KEY, or NULL */
	struct col cols[24];
};

static const struct table tables[] = {
	{ "meta", 1, NULL, NULL, {
		{ "key", C_TEXT, PK, 1, NULL }, { "value", C_TEXT, NN, 1, NULL } } },
	{ "nodes", 1, NULL, NULL, {
		{ "id", C_ID, PK, 1, NULL },
		{ "name", C_TEXT, UNIQ, 1, NULL },         /* NULL while pending (version 3) */
		{ "hostname", C_TEXT, NN, 1, NULL }, { "os", C_TEXT, NN, 1, NULL },
		{ "node_key", C_BLOB, NN | UNIQ, 1, NULL }, { "disco_key", C_BLOB, NN, 1, NULL },
		{ "machine_key", C_BLOB, NN | UNIQ, 1, NULL }, { "token_hash", C_BLOB, NN, 1, NULL },
		{ "ipv4", C_INT, UNIQ, 1, NULL }, { "ipv6", C_BLOB, UNIQ, 1, NULL },
		{ "state", C_INT, NN, 1, NULL }, { "ephemeral", C_INT, NN, 1, NULL },
		{ "tags", C_TEXT, NN, 1, NULL }, { "auth_key_id", C_INT, NN, 1, NULL },
		{ "created", C_INT, NN, 1, NULL }, { "key_expiry", C_INT, NN, 1, NULL },
		{ "last_seen", C_INT, NN, 1, NULL },
		/* 5: an admin change bumps rev (a write from a stale copy is refused); what the
		 * node reports and which instance holds its stream, for every instance to see */
		{ "rev", C_INT, NN, 5, "0" }, { "endpoints", C_TEXT, NN, 5, "''" },
		{ "home_relay", C_TEXT, NN, 5, "''" }, { "online", C_TEXT, NN, 5, "''" },
		{ "disconnected_at", C_INT, NN, 5, "0" } } },
	{ "authkeys", 1, NULL, NULL, {
		{ "id", C_ID, PK, 1, NULL }, { "hash", C_BLOB, NN | UNIQ, 1, NULL },
		{ "prefix", C_TEXT, NN, 1, NULL }, { "reusable", C_INT, NN, 1, NULL },
		{ "ephemeral", C_INT, NN, 1, NULL }, { "tags", C_TEXT, NN, 1, NULL },
		{ "created", C_INT, NN, 1, NULL }, { "expiry", C_INT, NN, 1, NULL },
		{ "uses", C_INT, NN, 1, NULL }, { "revoked", C_INT, NN, 1, NULL } } },
	{ "apikeys", 1, NULL, NULL, {
		{ "id", C_ID, PK, 1, NULL }, { "hash", C_BLOB, NN | UNIQ, 1, NULL },
		{ "prefix", C_TEXT, NN, 1, NULL }, { "created", C_INT, NN, 1, NULL },
		{ "expiry", C_INT, NN, 1, NULL }, { "revoked", C_INT, NN, 1, NULL } } },
	{ "relays", 1, NULL, NULL, {
		{ "id", C_ID, PK, 1, NULL }, { "name", C_TEXT, NN | UNIQ, 1, NULL },
		{ "url", C_TEXT, NN, 1, NULL }, { "token_hash", C_BLOB, NN | UNIQ, 1, NULL },
		{ "pin", C_TEXT, NN, 1, NULL }, { "created", C_INT, NN, 1, NULL },
		{ "stun", C_TEXT, NN, 2, "''" }, { "stun_port", C_INT, NN, 2, "0" } } },
	{ "dns_upstreams", 4, NULL, NULL, {
		{ "id", C_ID, PK, 4, NULL }, { "spec", C_TEXT, NN | UNIQ, 4, NULL } } },
	{ "dns_routes", 4, "domain, server", NULL, {
		{ "id", C_ID, PK, 4, NULL }, { "domain", C_TEXT, NN, 4, NULL },
		{ "server", C_TEXT, NN, 4, NULL } } },
	{ "dns_blocklists", 4, "source, tag", NULL, {
		{ "id", C_ID, PK, 4, NULL }, { "source", C_TEXT, NN, 4, NULL },
		{ "tag", C_TEXT, NN, 4, NULL }, { "fetched", C_INT, NN, 4, "0" },
		{ "version", C_INT, NN, 4, "0" }, { "lines", C_INT, NN, 4, "0" },
		{ "unusable", C_INT, NN, 4, "0" } } },
	{ "dns_rules", 4, "domain, allow, tag", NULL, {
		{ "id", C_ID, PK, 4, NULL }, { "domain", C_TEXT, NN, 4, NULL },
		{ "allow", C_INT, NN, 4, NULL }, { "tag", C_TEXT, NN, 4, NULL } } },
	{ "dns_records", 4, "name, type, value", NULL, {
		{ "id", C_ID, PK, 4, NULL }, { "name", C_TEXT, NN, 4, NULL },
		{ "type", C_INT, NN, 4, NULL }, { "value", C_TEXT, NN, 4, NULL } } },
	/* 5: the change feed (store.c): every write transaction takes the next number from
	 * feed_head's one row, whose lock it holds until it commits, so numbers are handed
	 * out in commit order with no gaps; its changes are rows (seq, idx). */
	{ "feed_head", 5, NULL, NULL, {
		{ "id", C_INT, PK, 5, NULL }, { "seq", C_INT, NN, 5, NULL } } },
	{ "changes", 5, NULL, "seq, idx", {
		{ "seq", C_INT, NN, 5, NULL }, { "idx", C_INT, NN, 5, NULL },
		{ "kind", C_INT, NN, 5, NULL }, { "ref", C_INT, NN, 5, NULL },
		{ "key", C_TEXT, NN, 5, NULL }, { "instance", C_TEXT, NN, 5, NULL },
		{ "at", C_INT, NN, 5, NULL } } },
	/* 5: jobs that run once whichever instance runs them, and the instances seen */
	{ "leases", 5, NULL, NULL, {
		{ "job", C_TEXT, PK, 5, NULL }, { "holder", C_TEXT, NN, 5, NULL },
		{ "expires", C_INT, NN, 5, NULL } } },
	{ "instances", 5, NULL, NULL, {
		{ "name", C_TEXT, PK, 5, NULL }, { "url", C_TEXT, NN, 5, NULL },
		{ "started", C_INT, NN, 5, NULL }, { "seen", C_INT, NN, 5, NULL },
		{ "feed_seq", C_INT, NN, 5, NULL }, { "jobs", C_TEXT, NN, 5, NULL } } },
	/* 6: the last good copy of each blocklist source (id: its dns_blocklists row), fetched
	 * once by the jobs holder and taken from here by the other instances; meta is the
	 * fetcher's JSON (ETag, Last-Modified, counts) so a new holder fetches on from it */
	{ "dns_blocklist_copies", 6, NULL, NULL, {
		{ "id", C_INT, PK, 6, NULL }, { "version", C_INT, NN, 6, NULL },
		{ "sum", C_BLOB, NN, 6, NULL }, { "meta", C_TEXT, NN, 6, NULL },
		{ "body", C_BLOB, NN, 6, NULL } } },
};
#define N_TABLES (sizeof(tables) / sizeof(tables[0]))

const char *const store_schema_tables[] = {
	"meta", "nodes", "authkeys", "apikeys", "relays", "dns_upstreams", "dns_routes",
	"dns_blocklists", "dns_rules", "dns_records", "feed_head", "changes", "leases",
	"instances", "dns_blocklist_copies", NULL,
};

/* The one step from before the description that it cannot say, as SQLite ran it. */
static const char legacy_3[] =
	/* 3: a node waiting for its first approval holds no name and no address (NULL; UNIQUE
	 * allows many). SQLite cannot drop a NOT NULL, so the table is rebuilt, keeping the
	 * AUTOINCREMENT high-water mark: a deleted node's id is never handed out again. */
	"CREATE TABLE nodes_new (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE,"
	" hostname TEXT NOT NULL, os TEXT NOT NULL, node_key BLOB NOT NULL UNIQUE,"
	" disco_key BLOB NOT NULL, machine_key BLOB NOT NULL UNIQUE, token_hash BLOB NOT NULL,"
	" ipv4 INTEGER UNIQUE, ipv6 BLOB UNIQUE, state INTEGER NOT NULL,"
	" ephemeral INTEGER NOT NULL, tags TEXT NOT NULL, auth_key_id INTEGER NOT NULL,"
	" created INTEGER NOT NULL, key_expiry INTEGER NOT NULL, last_seen INTEGER NOT NULL);"
	"INSERT INTO nodes_new SELECT id, name, hostname, os, node_key, disco_key, machine_key,"
	" token_hash, ipv4, ipv6, state, ephemeral, tags, auth_key_id, created, key_expiry,"
	" last_seen FROM nodes;"
	"DELETE FROM sqlite_sequence WHERE name='nodes_new';"
	"INSERT INTO sqlite_sequence(name, seq) SELECT 'nodes_new', seq FROM sqlite_sequence"
	" WHERE name='nodes';"
	"DROP TABLE nodes;"
	"ALTER TABLE nodes_new RENAME TO nodes;";

static const char *type_of(int kind, int type)
{
	static const char *const sqlite[] = { "INTEGER", "INTEGER", "TEXT", "BLOB" };
	static const char *const pg[] = { "INT8", "INT8", "TEXT", "BYTEA" };

	return (kind == STORE_ENGINE_PG ? pg : sqlite)[type];
}

__attribute__((format(printf, 4, 5)))
static int put(char *buf, size_t size, size_t *at, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *at, size - *at, fmt, ap);
	va_end(ap);

	if (n < 0 || (size_t)n >= size - *at)
		return -ENAMETOOLONG;
	*at += (size_t)n;
	return 0;
}

/* "name TYPE [PRIMARY KEY [AUTOINCREMENT]] [NOT NULL] [UNIQUE] [DEFAULT x]" */
static int col_ddl(int kind, const struct table *t, const struct col *c, char *buf, size_t size,
		   size_t *at)
{
	int rc = put(buf, size, at, "%s %s", c->name, type_of(kind, c->type));

	if (!rc && (c->flags & PK))
		rc = put(buf, size, at, " PRIMARY KEY%s",
			 c->type == C_ID && kind == STORE_ENGINE_SQLITE ? " AUTOINCREMENT" : "");
	if (!rc && c->type == C_ID && kind == STORE_ENGINE_PG)
		rc = put(buf, size, at, " DEFAULT nextval('%s_id_seq')", t->name);
	if (!rc && (c->flags & NN))
		rc = put(buf, size, at, " NOT NULL");
	if (!rc && (c->flags & UNIQ))
		rc = put(buf, size, at, " UNIQUE");
	if (!rc && c->def)
		rc = put(buf, size, at, " DEFAULT %s", c->def);
	return rc;
}

static int table_ddl(int kind, const struct table *t, char *buf, size_t size)
{
	size_t at = 0;
	int rc = 0;

	if (kind == STORE_ENGINE_PG && t->cols[0].type == C_ID)
		rc = put(buf, size, &at, "CREATE SEQUENCE IF NOT EXISTS %s_id_seq;", t->name);
	if (!rc)
		rc = put(buf, size, &at, "CREATE TABLE IF NOT EXISTS %s (", t->name);
	for (const struct col *c = t->cols; !rc && c->name; c++) {
		if (c != t->cols)
			rc = put(buf, size, &at, ", ");
		if (!rc)
			rc = col_ddl(kind, t, c, buf, size, &at);
	}
	if (!rc && t->unique)
		rc = put(buf, size, &at, ", UNIQUE(%s)", t->unique);
	if (!rc && t->pk)
		rc = put(buf, size, &at, ", PRIMARY KEY(%s)", t->pk);
	if (!rc)
		rc = put(buf, size, &at, ");");
	return rc;
}

/* What a table needs once it exists: feed_head's one row. */
static int table_seed(const struct store_engine *e, void *impl, const struct table *t)
{
	if (strcmp(t->name, "feed_head"))
		return 0;
	return e->script(impl, "schema", "INSERT INTO feed_head(id, seq) VALUES(1, 0) ON CONFLICT (id) DO NOTHING");
}

static int create_table(const struct store_engine *e, void *impl, const struct table *t)
{
	char sql[2048];
	int rc = table_ddl(e->kind, t, sql, sizeof(sql));

	if (!rc)
		rc = e->script(impl, "schema", sql);
	if (!rc)
		rc = table_seed(e, impl, t);
	return rc;
}

int store_schema_create(const struct store_engine *e, void *impl)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < N_TABLES; i++)
		rc = create_table(e, impl, &tables[i]);
	return rc;
}

/* The columns of version v added to tables that existed before it. */
static int add_columns(const struct store_engine *e, void *impl, int v)
{
	char sql[512];
	int rc = 0;

	for (size_t i = 0; !rc && i < N_TABLES; i++) {
		if (tables[i].since >= v)
			continue;
		for (const struct col *c = tables[i].cols; !rc && c->name; c++) {
			size_t at = 0;

			if (c->since != v)
				continue;
			rc = put(sql, sizeof(sql), &at, "ALTER TABLE %s ADD COLUMN ", tables[i].name);
			if (!rc)
				rc = col_ddl(e->kind, &tables[i], c, sql, sizeof(sql), &at);
			if (!rc)
				rc = e->script(impl, "schema", sql);
		}
	}
	return rc;
}

int store_schema_step(const struct store_engine *e, void *impl, int from)
{
	int v = from + 1, rc = 0;

	if (from < 1 || v > STORE_SCHEMA_VERSION)
		return -EINVAL;
	if (from == 2) {
		if (e->kind != STORE_ENGINE_SQLITE)
			return -EPROTO;
		return e->script(impl, "schema", legacy_3);
	}
	rc = add_columns(e, impl, v);
	for (size_t i = 0; !rc && i < N_TABLES; i++)
		if (tables[i].since == v)
			rc = create_table(e, impl, &tables[i]);
	return rc;
}

const char *store_table_columns(const char *table)
{
	static char cols[N_TABLES][512];

	for (size_t i = 0; i < N_TABLES; i++) {
		size_t at = 0;

		if (strcmp(tables[i].name, table))
			continue;
		if (!cols[i][0])
			for (const struct col *c = tables[i].cols; c->name; c++)
				if (put(cols[i], sizeof(cols[i]), &at, "%s%s", c == tables[i].cols ? "" : ", ",
					c->name))
					return NULL;
		return cols[i];
	}
	return NULL;
}
