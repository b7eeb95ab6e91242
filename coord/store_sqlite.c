/* store_sqlite.c - the SQLite engine of the store (store_db.h): one file, WAL,
 * synchronous=NORMAL (durable against a process crash), the schema version in PRAGMA
 * user_version. coord's default: no server to run. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "meshvpn/log.h"
#include "store_db.h"

static int fail(sqlite3 *db, const char *op, int rc)
{
	log_error("store error", "op=%s err=\"%s\"", op, sqlite3_errmsg(db));
	return (rc & 0xff) == SQLITE_CONSTRAINT ? -EEXIST : -EIO;
}

static int sq_script(void *impl, const char *op, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(impl, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_error("store error", "op=%s err=\"%s\"", op, msg ? msg : "?");
		sqlite3_free(msg);
		return (rc & 0xff) == SQLITE_CONSTRAINT ? -EEXIST : -EIO;
	}
	return 0;
}

static int bind(sqlite3_stmt *s, const struct store_val *p, int n)
{
	int rc = SQLITE_OK;

	for (int i = 0; i < n && rc == SQLITE_OK; i++) {
		switch (p[i].type) {
		case SV_INT: rc = sqlite3_bind_int64(s, i + 1, p[i].i); break;
		case SV_TEXT: rc = sqlite3_bind_text(s, i + 1, p[i].p, (int)p[i].len, SQLITE_TRANSIENT); break;
		case SV_BLOB: rc = sqlite3_bind_blob(s, i + 1, p[i].p, (int)p[i].len, SQLITE_TRANSIENT); break;
		default: rc = sqlite3_bind_null(s, i + 1); break;
		}
	}
	return rc;
}

static void read_row(sqlite3_stmt *s, struct store_row *row)
{
	row->n = sqlite3_column_count(s);
	if (row->n > STORE_MAX_COLS)
		row->n = STORE_MAX_COLS;
	for (int i = 0; i < row->n; i++) {
		struct store_val *v = &row->c[i];

		memset(v, 0, sizeof(*v));
		switch (sqlite3_column_type(s, i)) {
		case SQLITE_INTEGER:
			v->type = SV_INT;
			v->i = sqlite3_column_int64(s, i);
			break;
		case SQLITE_TEXT:
			v->type = SV_TEXT;
			v->p = sqlite3_column_text(s, i);
			v->len = (size_t)sqlite3_column_bytes(s, i);
			break;
		case SQLITE_BLOB:
			v->type = SV_BLOB;
			v->p = sqlite3_column_blob(s, i);
			v->len = (size_t)sqlite3_column_bytes(s, i);
			break;
		default:
			v->type = SV_NULL;
			break;
		}
	}
}

/* A step that stopped on an error (a damaged page, I/O) is that error, not the end of
 * the rows: coord would otherwise load a shortened table as if whole. */
/* Prepared statements kept for reuse, by their text: parsing one again for every write
 * was a tenth of coord's time while ten thousand nodes reconnected. */
#define STMT_CACHE 64

static struct {
	sqlite3 *db;
	sqlite3_stmt *s;
	uint64_t used;
} stmts[STMT_CACHE];
static uint64_t stmt_clock;

/* A statement for sql: a kept one not in use (a rows callback may run another query),
 * or a new one, kept in place of the least recently used. *kept: reset it, not finalize. */
static sqlite3_stmt *stmt_get(sqlite3 *db, const char *sql, int *kept)
{
	sqlite3_stmt *s;
	int lru = 0;

	*kept = 0;
	for (int i = 0; i < STMT_CACHE; i++) {
		if (stmts[i].db == db && stmts[i].s && !sqlite3_stmt_busy(stmts[i].s) &&
		    !strcmp(sqlite3_sql(stmts[i].s), sql)) {
			stmts[i].used = ++stmt_clock;
			*kept = 1;
			return stmts[i].s;
		}
		if (stmts[i].used < stmts[lru].used)
			lru = i;
	}
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return NULL;
	if (stmts[lru].s && sqlite3_stmt_busy(stmts[lru].s))
		return s;   /* in use further up: this one is not kept */
	if (stmts[lru].s)
		sqlite3_finalize(stmts[lru].s);
	stmts[lru].db = db;
	stmts[lru].s = s;
	stmts[lru].used = ++stmt_clock;
	*kept = 1;
	return s;
}

static void stmt_done(sqlite3_stmt *s, int kept)
{
	if (!kept) {
		sqlite3_finalize(s);
		return;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

static void stmts_drop(sqlite3 *db)
{
	for (int i = 0; i < STMT_CACHE; i++)
		if (stmts[i].db == db) {
			sqlite3_finalize(stmts[i].s);
			stmts[i].s = NULL;
			stmts[i].db = NULL;
			stmts[i].used = 0;
		}
}

static int sq_run(void *impl, const char *op, const char *sql, const struct store_val *p, int n,
		  store_row_cb rows, void *arg, int64_t *changes)
{
	sqlite3 *db = impl;
	sqlite3_stmt *s;
	struct store_row row;
	int rc = 0, step, kept;

	if (!(s = stmt_get(db, sql, &kept)))
		return fail(db, op, SQLITE_ERROR);
	if (bind(s, p, n) != SQLITE_OK) {
		stmt_done(s, kept);
		return fail(db, op, SQLITE_ERROR);
	}
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (!rows || rc)
			continue;   /* an UPDATE ... RETURNING must run to the end */
		read_row(s, &row);
		rc = rows(&row, arg);
	}
	if (step != SQLITE_DONE) {
		rc = fail(db, op, step);
	} else if (changes) {
		*changes = sqlite3_changes(db);
	}
	stmt_done(s, kept);
	return rc;
}

static int sq_open(const char *path, void **impl)
{
	sqlite3 *db = NULL;
	int fd, rc;

	/* Create the file 0600 before SQLite does (it would use the umask). */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600)) {
		rc = -errno;
		close(fd);
		return rc;
	}
	close(fd);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		log_error("store error", "op=open path=%s err=\"%s\"", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return -EIO;
	}
	sqlite3_busy_timeout(db, 5000);
	rc = sq_script(db, "pragma", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		       " PRAGMA foreign_keys=ON;");
	if (rc) {
		sqlite3_close(db);
		return rc;
	}
	*impl = db;
	return 0;
}

static void sq_close(void *impl)
{
	stmts_drop(impl);
	sqlite3_close(impl);
}

static int sq_begin(void *impl)
{
	return sq_script(impl, "begin", "BEGIN IMMEDIATE");
}

static int sq_commit(void *impl)
{
	return sq_script(impl, "commit", "COMMIT");
}

static void sq_rollback(void *impl)
{
	if (!sqlite3_get_autocommit(impl))
		sq_script(impl, "rollback", "ROLLBACK");
}

static int sq_next_id(void *impl, const char *table, int64_t *id)
{
	(void)impl;
	(void)table;
	*id = 0;   /* AUTOINCREMENT: the insert assigns it, never reusing a deleted one */
	return 0;
}

static int sq_bump_ids(void *impl, const char *table)
{
	(void)impl;
	(void)table;
	return 0;   /* an explicit id raises sqlite_sequence by itself */
}

static int sq_get_version(void *impl)
{
	sqlite3_stmt *s;
	int v = -1;

	if (sqlite3_prepare_v2(impl, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK) {
		log_error("store error", "op=schema_version err=\"%s\"", sqlite3_errmsg(impl));
		return -1;
	}
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	else
		log_error("store error", "op=schema_version err=\"%s\"", sqlite3_errmsg(impl));
	sqlite3_finalize(s);
	return v;
}

static int sq_set_version(void *impl, int v)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v);
	return sq_script(impl, "migrate", sql);
}

static int sq_healthy(void *impl)
{
	(void)impl;
	return 1;
}

const struct store_engine store_engine_sqlite = {
	.name = "sqlite",
	.kind = STORE_ENGINE_SQLITE,
	.open = sq_open,
	.close = sq_close,
	.run = sq_run,
	.script = sq_script,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.next_id = sq_next_id,
	.bump_ids = sq_bump_ids,
	.get_version = sq_get_version,
	.set_version = sq_set_version,
	.healthy = sq_healthy,
};
