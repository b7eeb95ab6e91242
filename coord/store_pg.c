/* store_pg.c - the PostgreSQL engine of the store (store_db.h), on libpq; CockroachDB
 * speaks the same protocol. Statements are parameterised (typed parameters, binary
 * results); a transaction that fails with a serialisation error (SQLSTATE 40001, or a
 * deadlock 40P01) is rolled back and replayed from its recorded statements with backoff,
 * as CockroachDB asks of its clients; a lost connection is re-made on the next call, at
 * most once a second, so a coord whose database is gone answers at once instead of
 * waiting on it. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "meshvpn/log.h"
#include "store_db.h"

#define PG_RETRIES 6
#define PG_RECONNECT_MS 1000
#define PG_SQL_MAX 2048
/* exec_one's "serialisation failure: retry the transaction" (not an errno, and not what
 * a row callback returns to stop early). */
#define PG_RETRY (-10000)

enum { OID_BOOL = 16, OID_BYTEA = 17, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_TEXT = 25 };

/* A statement of the open transaction, kept to replay it after a serialisation failure. */
struct pg_stmt {
	char *sql;
	int n;
	struct store_val p[STORE_MAX_PARAMS];
	void *copies[STORE_MAX_PARAMS];
	int64_t changes;      /* what it did the first time: a replay must do the same */
	struct pg_stmt *next;
};

struct pg {
	PGconn *conn;
	char *spec;
	int in_txn;
	struct pg_stmt *log, **log_tail;
	uint64_t last_connect_ms;
	uint64_t retries;     /* serialisation failures retried */
	uint64_t unsure_commits;   /* the connection died in COMMIT */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ignore_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;   /* "relation already exists, skipping" and the like */
}

static int connect_db(struct pg *pg)
{
	/* Keepalives and a TCP user timeout: a partitioned server must not hold a call on
	 * coord's loop for TCP's quarter of an hour (the URI may say otherwise). */
	const char *keys[] = { "connect_timeout", "application_name", "keepalives",
			       "keepalives_idle", "keepalives_interval", "keepalives_count",
			       "tcp_user_timeout", "dbname", NULL };
	const char *vals[] = { "3", "coord", "1", "5", "2", "3", "10000", pg->spec, NULL };
	PGresult *res;

	if (pg->conn)
		PQfinish(pg->conn);
	pg->conn = PQconnectdbParams(keys, vals, 1);
	pg->last_connect_ms = now_ms();   /* after: a slow failure is not tried again at once */
	if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK) {
		log_error("cannot connect to the database", "err=\"%s\"",
			  pg->conn ? PQerrorMessage(pg->conn) : "out of memory");
		return -EIO;
	}
	PQsetNoticeProcessor(pg->conn, ignore_notice, NULL);
	/* A database that stops answering must not hold coord's loop for long. */
	res = PQexec(pg->conn, "SET statement_timeout = 10000");
	PQclear(res);
	return 0;
}

/* A working connection, or -EIO at once while the database is away. */
static int ensure(struct pg *pg)
{
	if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
		return 0;
	if (pg->in_txn)
		return -ENOTCONN;     /* the transaction died with the connection */
	if (now_ms() - pg->last_connect_ms < PG_RECONNECT_MS)
		return -ENOTCONN;
	if (connect_db(pg))
		return -ENOTCONN;
	log_info("database connection restored", "engine=postgresql");
	return 0;
}

/* "... ? ... ?" -> "... $1 ... $2" (our SQL has no '?' inside literals). */
static int number_params(const char *in, char *out, size_t size)
{
	size_t at = 0;
	int k = 0;

	for (; *in; in++) {
		int n = *in == '?' ? snprintf(out + at, size - at, "$%d", ++k)
				   : snprintf(out + at, size - at, "%c", *in);

		if (n < 0 || (size_t)n >= size - at)
			return -ENAMETOOLONG;
		at += (size_t)n;
	}
	return 0;
}

static int64_t be_int(const char *p, int len)
{
	const unsigned char *u = (const unsigned char *)p;
	uint64_t v = 0;

	for (int i = 0; i < len; i++)
		v = v << 8 | u[i];
	if (len > 0 && len < 8 && (u[0] & 0x80))
		v |= ~(uint64_t)0 << (len * 8);   /* sign-extend int2 / int4 */
	return (int64_t)v;
}

static int deliver_rows(PGresult *res, store_row_cb rows, void *arg)
{
	int nr = PQntuples(res), nc = PQnfields(res), rc = 0;
	struct store_row row;

	if (nc > STORE_MAX_COLS)
		nc = STORE_MAX_COLS;
	for (int r = 0; r < nr && !rc; r++) {
		row.n = nc;
		for (int c = 0; c < nc; c++) {
			struct store_val *v = &row.c[c];
			const char *val = PQgetvalue(res, r, c);
			int len = PQgetlength(res, r, c);
			Oid t = PQftype(res, c);

			memset(v, 0, sizeof(*v));
			if (PQgetisnull(res, r, c)) {
				v->type = SV_NULL;
			} else if (t == OID_INT8 || t == OID_INT4 || t == OID_INT2 || t == OID_BOOL) {
				v->type = SV_INT;
				v->i = be_int(val, len);
			} else if (t == OID_BYTEA) {
				v->type = SV_BLOB;
				v->p = val;
				v->len = (size_t)len;
			} else {
				v->type = SV_TEXT;   /* libpq ends every value with a NUL */
				v->p = val;
				v->len = (size_t)len;
			}
		}
		rc = rows(&row, arg);
	}
	return rc;
}

/* SQLSTATE -> our error, or PG_RETRY. */
static int classify(PGresult *res, PGconn *conn, const char *op)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01")))
		return PG_RETRY;
	if (state && !strcmp(state, "23505")) {
		log_debug("store: unique violation", "op=%s detail=\"%s\"", op,
			  res && PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : "");
		return -EEXIST;
	}
	log_error("store error", "op=%s sqlstate=%s err=\"%s\"", op, state ? state : "-",
		  res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	/* The server went away under the statement: unreachable, not a failed statement. */
	return PQstatus(conn) != CONNECTION_OK ? -ENOTCONN : -EIO;
}

/* One statement: 0, what a row callback stopped with, PG_RETRY, or -errno. */
static int exec_one(struct pg *pg, const char *op, const char *sql, const struct store_val *p, int n,
		    store_row_cb rows, void *arg, int64_t *changes)
{
	char numbered[PG_SQL_MAX], ints[STORE_MAX_PARAMS][24];
	const char *values[STORE_MAX_PARAMS];
	int lengths[STORE_MAX_PARAMS], formats[STORE_MAX_PARAMS];
	Oid types[STORE_MAX_PARAMS];
	PGresult *res;
	int rc = 0;

	if (n > STORE_MAX_PARAMS || number_params(sql, numbered, sizeof(numbered)))
		return -E2BIG;
	for (int i = 0; i < n; i++) {
		lengths[i] = 0;
		formats[i] = 0;
		switch (p[i].type) {
		case SV_INT:
			snprintf(ints[i], sizeof(ints[i]), "%lld", (long long)p[i].i);
			values[i] = ints[i];
			types[i] = OID_INT8;
			break;
		case SV_TEXT:
			values[i] = p[i].p;
			types[i] = OID_TEXT;
			break;
		case SV_BLOB:
			values[i] = p[i].p;
			lengths[i] = (int)p[i].len;
			formats[i] = 1;
			types[i] = OID_BYTEA;
			break;
		default:
			values[i] = NULL;
			types[i] = 0;
			break;
		}
	}
	res = PQexecParams(pg->conn, numbered, n, types, values, lengths, formats, 1);
	switch (res ? PQresultStatus(res) : PGRES_FATAL_ERROR) {
	case PGRES_TUPLES_OK:
		if (rows)
			rc = deliver_rows(res, rows, arg);
		/* fall through */
	case PGRES_COMMAND_OK:
		if (changes)
			*changes = atoll(PQcmdTuples(res));
		break;
	default:
		rc = classify(res, pg->conn, op);
		break;
	}
	PQclear(res);
	return rc;
}

static void stmt_free(struct pg_stmt *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->copies[i]);
	free(s->sql);
	free(s);
}

static void log_clear(struct pg *pg)
{
	while (pg->log) {
		struct pg_stmt *s = pg->log;

		pg->log = s->next;
		stmt_free(s);
	}
	pg->log_tail = &pg->log;
}

static int log_add(struct pg *pg, const char *sql, const struct store_val *p, int n, int64_t changes)
{
	struct pg_stmt *s = calloc(1, sizeof(*s));

	if (!s || !(s->sql = strdup(sql)))
		goto nomem;
	s->n = n;
	s->changes = changes;
	for (int i = 0; i < n; i++) {
		s->p[i] = p[i];
		if (p[i].type == SV_TEXT || p[i].type == SV_BLOB) {
			s->copies[i] = malloc(p[i].len + 1);
			if (!s->copies[i])
				goto nomem;
			memcpy(s->copies[i], p[i].p, p[i].len);
			((char *)s->copies[i])[p[i].len] = 0;
			s->p[i].p = s->copies[i];
		}
	}
	*pg->log_tail = s;
	pg->log_tail = &s->next;
	return 0;
nomem:
	if (s)
		stmt_free(s);
	return -ENOMEM;
}

static void backoff(int attempt)
{
	struct timespec ts = { 0, (long)(5 + (rand() % 5)) * 1000000L << attempt };

	nanosleep(&ts, NULL);
}

/* After a serialisation failure: roll back, wait, begin again and replay what the
 * transaction did. A replay that does not do what the first run did (an UPDATE that
 * now touches other rows) fails the transaction: the caller acted on the first. */
static int replay(struct pg *pg, int attempt)
{
	PGresult *res;
	int rc = 0;

	pg->retries++;
	PQclear(PQexec(pg->conn, "ROLLBACK"));
	backoff(attempt);
	res = PQexec(pg->conn, "BEGIN");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = classify(res, pg->conn, "begin");
	PQclear(res);
	for (struct pg_stmt *s = pg->log; !rc && s; s = s->next) {
		int64_t changes = 0;

		rc = exec_one(pg, "replay", s->sql, s->p, s->n, NULL, NULL, &changes);
		if (!rc && changes != s->changes)
			rc = -EAGAIN;
	}
	return rc;
}

/* Replays until a replay goes through: 0, or -errno (-EAGAIN after PG_RETRIES). */
static int replay_until_done(struct pg *pg, int *attempt)
{
	int rc = PG_RETRY;

	while (rc == PG_RETRY) {
		if ((*attempt)++ >= PG_RETRIES)
			return -EAGAIN;
		rc = replay(pg, *attempt);
	}
	return rc;
}

static int pg_run(void *impl, const char *op, const char *sql, const struct store_val *p, int n,
		  store_row_cb rows, void *arg, int64_t *changes)
{
	struct pg *pg = impl;
	int64_t ch = 0;
	int attempt = 0, rc = ensure(pg);

	if (!rc)
		rc = exec_one(pg, op, sql, p, n, rows, arg, &ch);
	while (rc == PG_RETRY) {
		if (pg->in_txn) {
			rc = replay_until_done(pg, &attempt);
		} else if (attempt++ >= PG_RETRIES) {
			rc = -EAGAIN;
		} else {
			pg->retries++;
			backoff(attempt);
			rc = 0;
		}
		if (!rc)
			rc = exec_one(pg, op, sql, p, n, rows, arg, &ch);
	}
	if (rc < 0 && rc != -EEXIST && rc != -ENOTCONN && PQstatus(pg->conn) != CONNECTION_OK) {
		log_warn("database connection lost", "op=%s", op);
		rc = -ENOTCONN;
	}
	if (!rc && pg->in_txn)
		rc = log_add(pg, sql, p, n, ch);
	if (rc >= 0 && changes)
		*changes = ch;
	return rc;
}

static int pg_script(void *impl, const char *op, const char *sql)
{
	struct pg *pg = impl;
	PGresult *res;
	int rc = ensure(pg);

	if (rc)
		return rc;
	res = PQexec(pg->conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = classify(res, pg->conn, op);
	if (rc == PG_RETRY)
		rc = -EAGAIN;
	PQclear(res);
	if (!rc && pg->in_txn)
		rc = log_add(pg, sql, NULL, 0, 0);
	return rc;
}

static int pg_begin(void *impl)
{
	struct pg *pg = impl;
	PGresult *res;
	int rc = ensure(pg);

	if (rc)
		return rc;
	res = PQexec(pg->conn, "BEGIN");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = classify(res, pg->conn, "begin");
	if (rc == PG_RETRY)
		rc = -EAGAIN;
	PQclear(res);
	if (!rc) {
		pg->in_txn = 1;
		log_clear(pg);
	}
	return rc;
}

static int pg_commit(void *impl)
{
	struct pg *pg = impl;
	int attempt = 0, rc = PG_RETRY;

	while (rc == PG_RETRY) {
		PGresult *res = PQexec(pg->conn, "COMMIT");

		rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : classify(res, pg->conn, "commit");
		PQclear(res);
		if (rc == PG_RETRY) {
			rc = replay_until_done(pg, &attempt);
			if (!rc)
				rc = PG_RETRY;   /* replayed: commit again */
		}
	}
	if (rc)
		PQclear(PQexec(pg->conn, "ROLLBACK"));
	if (rc == -ENOTCONN)
		pg->unsure_commits++;   /* it may have committed before the connection went */
	pg->in_txn = 0;
	log_clear(pg);
	return rc;
}

static void pg_rollback(void *impl)
{
	struct pg *pg = impl;

	if (pg->in_txn && pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
		PQclear(PQexec(pg->conn, "ROLLBACK"));
	pg->in_txn = 0;
	log_clear(pg);
}

static int int_row(const struct store_row *r, void *arg)
{
	*(int64_t *)arg = r->n > 0 && r->c[0].type == SV_INT ? r->c[0].i : 0;
	return 0;
}

static int pg_next_id(void *impl, const char *table, int64_t *id)
{
	char sql[128];

	*id = 0;
	snprintf(sql, sizeof(sql), "SELECT nextval('%s_id_seq')", table);
	int rc = pg_run(impl, "next_id", sql, NULL, 0, int_row, id, NULL);

	return rc ? rc : *id > 0 ? 0 : -EIO;
}

static int pg_bump_ids(void *impl, const char *table)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT setval('%s_id_seq', (SELECT COALESCE(MAX(id), 0) + 1 FROM %s),"
		 " false)", table, table);
	return pg_run(impl, "bump_ids", sql, NULL, 0, NULL, NULL, NULL);
}

static int pg_get_version(void *impl)
{
	struct store_val key = { .type = SV_TEXT, .p = "meta", .len = 4 };
	int64_t n = 0, v = 0;
	char sql[] = "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = ?"
		     " AND table_schema = current_schema()";
	struct store_val vk = { .type = SV_TEXT, .p = "schema_version", .len = 14 };

	if (pg_run(impl, "schema_version", sql, &key, 1, int_row, &n, NULL))
		return -1;
	if (!n)
		return 0;
	if (pg_run(impl, "schema_version", "SELECT CAST(value AS INT8) FROM meta WHERE key = ?", &vk, 1,
		   int_row, &v, NULL))
		return -1;
	return (int)v;
}

static int pg_set_version(void *impl, int v)
{
	char num[16];
	struct store_val p[2] = { { .type = SV_TEXT, .p = "schema_version", .len = 14 },
				  { .type = SV_TEXT, .p = num } };

	snprintf(num, sizeof(num), "%d", v);
	p[1].len = strlen(num);
	return pg_run(impl, "schema_version", "INSERT INTO meta(key, value) VALUES(?, ?)"
		      " ON CONFLICT (key) DO UPDATE SET value = excluded.value", p, 2, NULL, NULL, NULL);
}

static int pg_healthy(void *impl)
{
	struct pg *pg = impl;

	return !ensure(pg);
}

static uint64_t pg_retries(void *impl)
{
	return ((struct pg *)impl)->retries;
}

static uint64_t pg_unsure(void *impl)
{
	return ((struct pg *)impl)->unsure_commits;
}

static int pg_open(const char *spec, void **impl)
{
	struct pg *pg = calloc(1, sizeof(*pg));

	if (!pg || !(pg->spec = strdup(spec))) {
		free(pg);
		return -ENOMEM;
	}
	pg->log_tail = &pg->log;
	if (connect_db(pg)) {
		PQfinish(pg->conn);
		free(pg->spec);
		free(pg);
		return -EIO;
	}
	*impl = pg;
	return 0;
}

static void pg_close(void *impl)
{
	struct pg *pg = impl;

	log_clear(pg);
	PQfinish(pg->conn);
	free(pg->spec);
	free(pg);
}

const struct store_engine store_engine_pg = {
	.name = "postgresql",
	.kind = STORE_ENGINE_PG,
	.open = pg_open,
	.close = pg_close,
	.run = pg_run,
	.script = pg_script,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.next_id = pg_next_id,
	.bump_ids = pg_bump_ids,
	.get_version = pg_get_version,
	.set_version = pg_set_version,
	.healthy = pg_healthy,
	.retries = pg_retries,
	.unsure_commits = pg_unsure,
};
