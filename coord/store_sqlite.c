/* store_sqlite.c - coord's durable state in one SQLite file (WAL, synchronous=NORMAL:
 * durable against a process crash), schema versioned with PRAGMA user_version. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "meshvpn/log.h"
#include "store.h"

struct store {
	sqlite3 *db;
};

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE nodes (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
	" hostname TEXT NOT NULL, os TEXT NOT NULL, node_key BLOB NOT NULL UNIQUE,"
	" disco_key BLOB NOT NULL, machine_key BLOB NOT NULL UNIQUE, token_hash BLOB NOT NULL,"
	" ipv4 INTEGER NOT NULL UNIQUE, ipv6 BLOB NOT NULL UNIQUE, state INTEGER NOT NULL,"
	" ephemeral INTEGER NOT NULL, tags TEXT NOT NULL, auth_key_id INTEGER NOT NULL,"
	" created INTEGER NOT NULL, key_expiry INTEGER NOT NULL, last_seen INTEGER NOT NULL);"
	"CREATE TABLE authkeys (id INTEGER PRIMARY KEY AUTOINCREMENT, hash BLOB NOT NULL UNIQUE,"
	" prefix TEXT NOT NULL, reusable INTEGER NOT NULL, ephemeral INTEGER NOT NULL,"
	" tags TEXT NOT NULL, created INTEGER NOT NULL, expiry INTEGER NOT NULL,"
	" uses INTEGER NOT NULL, revoked INTEGER NOT NULL);"
	"CREATE TABLE apikeys (id INTEGER PRIMARY KEY AUTOINCREMENT, hash BLOB NOT NULL UNIQUE,"
	" prefix TEXT NOT NULL, created INTEGER NOT NULL, expiry INTEGER NOT NULL,"
	" revoked INTEGER NOT NULL);"
	"CREATE TABLE relays (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
	" url TEXT NOT NULL, token_hash BLOB NOT NULL UNIQUE, pin TEXT NOT NULL,"
	" created INTEGER NOT NULL);",
	/* 2: the relay's STUN address as the admin gave it, and the port the relay reports */
	"ALTER TABLE relays ADD COLUMN stun TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE relays ADD COLUMN stun_port INTEGER NOT NULL DEFAULT 0;",
	/* 3: a node waiting for its first approval holds no name and no address (NULL; UNIQUE
	 * allows many). SQLite cannot drop a NOT NULL, so the table is rebuilt, keeping the
	 * AUTOINCREMENT high-water mark: a deleted node's id is never handed out again. Nodes
	 * an older coord left pending keep what it gave them (an admin may delete them). */
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
	"ALTER TABLE nodes_new RENAME TO nodes;",
	/* 4: the DNS policy (coord/dns.c; IF NOT EXISTS: a file put back to an older version
	 * by hand keeps them); the tailnet domain and the blocking mode are in
	 * meta. Rows in id order are the admin's order (upstreams are tried in it). A
	 * blocklist's fetched/version/lines/unusable are the fetcher's. */
	"CREATE TABLE IF NOT EXISTS dns_upstreams (id INTEGER PRIMARY KEY AUTOINCREMENT, spec TEXT NOT NULL UNIQUE);"
	"CREATE TABLE IF NOT EXISTS dns_routes (id INTEGER PRIMARY KEY AUTOINCREMENT, domain TEXT NOT NULL,"
	" server TEXT NOT NULL, UNIQUE(domain, server));"
	"CREATE TABLE IF NOT EXISTS dns_blocklists (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL,"
	" tag TEXT NOT NULL, fetched INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL DEFAULT 0,"
	" lines INTEGER NOT NULL DEFAULT 0, unusable INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE(source, tag));"
	"CREATE TABLE IF NOT EXISTS dns_rules (id INTEGER PRIMARY KEY AUTOINCREMENT, domain TEXT NOT NULL,"
	" allow INTEGER NOT NULL, tag TEXT NOT NULL, UNIQUE(domain, allow, tag));"
	"CREATE TABLE IF NOT EXISTS dns_records (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,"
	" type INTEGER NOT NULL, value TEXT NOT NULL, UNIQUE(name, type, value));",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

static int fail(struct store *st, const char *op, int rc)
{
	log_error("store error", "op=%s err=\"%s\"", op, sqlite3_errmsg(st->db));
	if (rc == SQLITE_CONSTRAINT)
		return -EEXIST;
	return -EIO;
}

static int exec(struct store *st, const char *sql, const char *op)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_error("store error", "op=%s err=\"%s\"", op, msg ? msg : "?");
		sqlite3_free(msg);
		return rc == SQLITE_CONSTRAINT ? -EEXIST : -EIO;
	}
	return 0;
}

int store_schema_version(struct store *st)
{
	sqlite3_stmt *s;
	int v = -1;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

int store_open(const char *path, struct store **out)
{
	struct store *st = calloc(1, sizeof(*st));
	int fd, v, rc;
	char sql[64];

	if (!st)
		return -ENOMEM;
	/* Create the file 0600 before SQLite does (it would use the umask). */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = -errno;
		free(st);
		return rc;
	}
	if (fchmod(fd, 0600)) {
		rc = -errno;
		close(fd);
		free(st);
		return rc;
	}
	close(fd);
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		log_error("store error", "op=open path=%s err=\"%s\"", path, sqlite3_errmsg(st->db));
		sqlite3_close(st->db);
		free(st);
		return -EIO;
	}
	sqlite3_busy_timeout(st->db, 5000);
	rc = exec(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
		  "pragma");
	if (rc)
		goto err;
	v = store_schema_version(st);
	if (v < 0) {
		log_error("store error", "op=schema_version path=%s err=\"%s\"", path,
			  sqlite3_errmsg(st->db));
		rc = -EIO;
		goto err;
	}
	if (v > SCHEMA_VERSION) {
		log_error("store is from a newer coord", "path=%s version=%d known=%d", path, v,
			  SCHEMA_VERSION);
		rc = -EPROTO;
		goto err;
	}
	for (; v < SCHEMA_VERSION; v++) {
		rc = exec(st, "BEGIN IMMEDIATE", "migrate");
		if (!rc)
			rc = exec(st, migrations[v], "migrate");
		snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v + 1);
		if (!rc)
			rc = exec(st, sql, "migrate");
		if (!rc)
			rc = exec(st, "COMMIT", "migrate");
		if (rc) {
			exec(st, "ROLLBACK", "migrate");
			goto err;
		}
	}
	*out = st;
	return 0;
err:
	sqlite3_close(st->db);
	free(st);
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	sqlite3_close(st->db);
	free(st);
}

int store_begin(struct store *st)
{
	return exec(st, "BEGIN IMMEDIATE", "begin");
}

int store_commit(struct store *st)
{
	return exec(st, "COMMIT", "commit");
}

void store_rollback(struct store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		exec(st, "ROLLBACK", "rollback");
}

/* --- a small binding helper: "i" int64, "t" text, "b" 32-byte blob, "6" 16-byte blob;
 * "I", "T", "S" are "i", "t", "6" that bind NULL for 0, "" and all-zero (the name and
 * addresses a pending node does not have yet) --- */

static int bind(sqlite3_stmt *s, const char *fmt, va_list ap)
{
	int i = 1, rc = SQLITE_OK;

	for (const char *f = fmt; *f && rc == SQLITE_OK; f++, i++) {
		switch (*f) {
		case 'i': rc = sqlite3_bind_int64(s, i, va_arg(ap, int64_t)); break;
		case 't': rc = sqlite3_bind_text(s, i, va_arg(ap, const char *), -1, SQLITE_TRANSIENT); break;
		case 'b': rc = sqlite3_bind_blob(s, i, va_arg(ap, const void *), 32, SQLITE_TRANSIENT); break;
		case '6': rc = sqlite3_bind_blob(s, i, va_arg(ap, const void *), 16, SQLITE_TRANSIENT); break;
		case 'I': {
			int64_t v = va_arg(ap, int64_t);
			rc = v ? sqlite3_bind_int64(s, i, v) : sqlite3_bind_null(s, i);
			break;
		}
		case 'T': {
			const char *t = va_arg(ap, const char *);
			rc = *t ? sqlite3_bind_text(s, i, t, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);
			break;
		}
		case 'S': {
			const uint8_t *b = va_arg(ap, const uint8_t *);
			static const uint8_t zero[16];
			rc = memcmp(b, zero, 16) ? sqlite3_bind_blob(s, i, b, 16, SQLITE_TRANSIENT)
						 : sqlite3_bind_null(s, i);
			break;
		}
		}
	}
	return rc;
}


/* Runs a statement that returns no rows; *changes gets the affected rows. */
static int run(struct store *st, const char *op, const char *sql, int *changes, const char *fmt, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return fail(st, op, SQLITE_ERROR);
	va_start(ap, fmt);
	rc = bind(s, fmt, ap);
	va_end(ap);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return fail(st, op, rc == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_CONSTRAINT
				    ? SQLITE_CONSTRAINT : rc);
	if (changes)
		*changes = sqlite3_changes(st->db);
	return 0;
}

static int blob(sqlite3_stmt *s, int col, void *out, int len)
{
	if (sqlite3_column_bytes(s, col) != len)
		return -EIO;
	memcpy(out, sqlite3_column_blob(s, col), (size_t)len);
	return 0;
}

/* A blob that may be NULL (all zero then). */
static int blob_or_null(sqlite3_stmt *s, int col, void *out, int len)
{
	if (sqlite3_column_type(s, col) == SQLITE_NULL) {
		memset(out, 0, (size_t)len);
		return 0;
	}
	return blob(s, col, out, len);
}

static void text(sqlite3_stmt *s, int col, char *out, size_t size)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	snprintf(out, size, "%s", t ? (const char *)t : "");
}

static int corrupt(const char *table, int64_t id)
{
	log_error("store holds a corrupt row", "table=%s id=%lld", table, (long long)id);
	return -EIO;
}

/* Ends a foreach. A step that stopped on an error (a damaged page, I/O) is that error,
 * not the end of the rows: coord would otherwise load a shortened table as if whole. */
static int foreach_end(struct store *st, sqlite3_stmt *s, const char *op, int rc, int step)
{
	if (!rc && step != SQLITE_DONE)
		rc = fail(st, op, step);
	sqlite3_finalize(s);
	return rc;
}

int store_meta_get(struct store *st, const char *key, char *out, size_t size)
{
	sqlite3_stmt *s;
	int rc = -ENOENT, step;

	if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key=?", -1, &s, NULL) != SQLITE_OK)
		return fail(st, "meta_get", SQLITE_ERROR);
	sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
	step = sqlite3_step(s);
	if (step == SQLITE_ROW) {
		text(s, 0, out, size);
		rc = 0;
	} else if (step != SQLITE_DONE) {
		/* Unreadable is not absent: coord would replace a setting it could not read. */
		rc = fail(st, "meta_get", step);
	}
	sqlite3_finalize(s);
	return rc;
}

int store_meta_set(struct store *st, const char *key, const char *value)
{
	return run(st, "meta_set", "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", NULL,
		   "tt", key, value);
}

#define NODE_COLS "name, hostname, os, node_key, disco_key, machine_key, token_hash, ipv4, ipv6," \
	" state, ephemeral, tags, auth_key_id, created, key_expiry, last_seen"
#define NODE_FMT "TttbbbbISiitiiii"
#define NODE_ARGS(n) (n)->name, (n)->hostname, (n)->os, (n)->node_key, (n)->disco_key, \
	(n)->machine_key, (n)->token_hash, (int64_t)(n)->ipv4, (n)->ipv6, (int64_t)(n)->state, \
	(int64_t)(n)->ephemeral, (n)->tags, (n)->auth_key_id, (n)->created, (n)->key_expiry, \
	(n)->last_seen

int store_node_insert(struct store *st, struct node_rec *n)
{
	int rc = run(st, "node_insert", "INSERT INTO nodes(" NODE_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
		     NULL, NODE_FMT, NODE_ARGS(n));

	if (!rc)
		n->id = sqlite3_last_insert_rowid(st->db);
	return rc;
}

int store_node_update(struct store *st, const struct node_rec *n)
{
	int changes = 0;
	int rc = run(st, "node_update", "UPDATE nodes SET name=?, hostname=?, os=?, node_key=?, disco_key=?,"
		     " machine_key=?, token_hash=?, ipv4=?, ipv6=?, state=?, ephemeral=?, tags=?,"
		     " auth_key_id=?, created=?, key_expiry=?, last_seen=? WHERE id=?",
		     &changes, NODE_FMT "i", NODE_ARGS(n), n->id);

	return rc ? rc : changes ? 0 : -ENOENT;
}

int store_node_delete(struct store *st, int64_t id)
{
	int changes = 0;
	int rc = run(st, "node_delete", "DELETE FROM nodes WHERE id=?", &changes, "i", id);

	return rc ? rc : changes ? 0 : -ENOENT;
}

int store_node_foreach(struct store *st, int (*cb)(const struct node_rec *n, void *arg), void *arg)
{
	sqlite3_stmt *s;
	struct node_rec n;
	int rc = 0, step = SQLITE_DONE;

	if (sqlite3_prepare_v2(st->db, "SELECT id, " NODE_COLS " FROM nodes ORDER BY id", -1, &s, NULL))
		return fail(st, "node_foreach", SQLITE_ERROR);
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&n, 0, sizeof(n));
		n.id = sqlite3_column_int64(s, 0);
		text(s, 1, n.name, sizeof(n.name));
		text(s, 2, n.hostname, sizeof(n.hostname));
		text(s, 3, n.os, sizeof(n.os));
		if (blob(s, 4, n.node_key, KEY_LEN) || blob(s, 5, n.disco_key, KEY_LEN) ||
		    blob(s, 6, n.machine_key, KEY_LEN) || blob(s, 7, n.token_hash, HASH_LEN) ||
		    blob_or_null(s, 9, n.ipv6, 16)) {
			rc = corrupt("nodes", n.id);
			break;
		}
		n.ipv4 = (uint32_t)sqlite3_column_int64(s, 8);
		n.state = sqlite3_column_int(s, 10);
		n.ephemeral = sqlite3_column_int(s, 11);
		text(s, 12, n.tags, sizeof(n.tags));
		n.auth_key_id = sqlite3_column_int64(s, 13);
		n.created = sqlite3_column_int64(s, 14);
		n.key_expiry = sqlite3_column_int64(s, 15);
		n.last_seen = sqlite3_column_int64(s, 16);
		rc = cb(&n, arg);
	}
	return foreach_end(st, s, "node_foreach", rc, step);
}

int store_authkey_insert(struct store *st, struct authkey_rec *k)
{
	int rc = run(st, "authkey_insert", "INSERT INTO authkeys(hash, prefix, reusable, ephemeral, tags,"
		     " created, expiry, uses, revoked) VALUES(?,?,?,?,?,?,?,?,?)", NULL, "btiitiiii",
		     k->hash, k->prefix, (int64_t)k->reusable, (int64_t)k->ephemeral, k->tags,
		     k->created, k->expiry, k->uses, (int64_t)k->revoked);

	if (!rc)
		k->id = sqlite3_last_insert_rowid(st->db);
	return rc;
}

int store_authkey_update(struct store *st, const struct authkey_rec *k)
{
	int changes = 0;
	int rc = run(st, "authkey_update", "UPDATE authkeys SET uses=?, revoked=?, expiry=? WHERE id=?",
		     &changes, "iiii", k->uses, (int64_t)k->revoked, k->expiry, k->id);

	return rc ? rc : changes ? 0 : -ENOENT;
}

int store_authkey_foreach(struct store *st, int (*cb)(const struct authkey_rec *k, void *arg), void *arg)
{
	sqlite3_stmt *s;
	struct authkey_rec k;
	int rc = 0, step = SQLITE_DONE;

	if (sqlite3_prepare_v2(st->db, "SELECT id, hash, prefix, reusable, ephemeral, tags, created,"
			       " expiry, uses, revoked FROM authkeys ORDER BY id", -1, &s, NULL))
		return fail(st, "authkey_foreach", SQLITE_ERROR);
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&k, 0, sizeof(k));
		k.id = sqlite3_column_int64(s, 0);
		if (blob(s, 1, k.hash, HASH_LEN)) {
			rc = corrupt("authkeys", k.id);
			break;
		}
		text(s, 2, k.prefix, sizeof(k.prefix));
		k.reusable = sqlite3_column_int(s, 3);
		k.ephemeral = sqlite3_column_int(s, 4);
		text(s, 5, k.tags, sizeof(k.tags));
		k.created = sqlite3_column_int64(s, 6);
		k.expiry = sqlite3_column_int64(s, 7);
		k.uses = sqlite3_column_int64(s, 8);
		k.revoked = sqlite3_column_int(s, 9);
		rc = cb(&k, arg);
	}
	return foreach_end(st, s, "authkey_foreach", rc, step);
}

int store_apikey_insert(struct store *st, struct apikey_rec *k)
{
	int rc = run(st, "apikey_insert", "INSERT INTO apikeys(hash, prefix, created, expiry, revoked)"
		     " VALUES(?,?,?,?,?)", NULL, "btiii", k->hash, k->prefix, k->created, k->expiry,
		     (int64_t)k->revoked);

	if (!rc)
		k->id = sqlite3_last_insert_rowid(st->db);
	return rc;
}

int store_apikey_update(struct store *st, const struct apikey_rec *k)
{
	int changes = 0;
	int rc = run(st, "apikey_update", "UPDATE apikeys SET revoked=?, expiry=? WHERE id=?", &changes,
		     "iii", (int64_t)k->revoked, k->expiry, k->id);

	return rc ? rc : changes ? 0 : -ENOENT;
}

int store_apikey_foreach(struct store *st, int (*cb)(const struct apikey_rec *k, void *arg), void *arg)
{
	sqlite3_stmt *s;
	struct apikey_rec k;
	int rc = 0, step = SQLITE_DONE;

	if (sqlite3_prepare_v2(st->db, "SELECT id, hash, prefix, created, expiry, revoked FROM apikeys"
			       " ORDER BY id", -1, &s, NULL))
		return fail(st, "apikey_foreach", SQLITE_ERROR);
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&k, 0, sizeof(k));
		k.id = sqlite3_column_int64(s, 0);
		if (blob(s, 1, k.hash, HASH_LEN)) {
			rc = corrupt("apikeys", k.id);
			break;
		}
		text(s, 2, k.prefix, sizeof(k.prefix));
		k.created = sqlite3_column_int64(s, 3);
		k.expiry = sqlite3_column_int64(s, 4);
		k.revoked = sqlite3_column_int(s, 5);
		rc = cb(&k, arg);
	}
	return foreach_end(st, s, "apikey_foreach", rc, step);
}

int store_relay_insert(struct store *st, struct relay_rec *r)
{
	int rc = run(st, "relay_insert", "INSERT INTO relays(name, url, token_hash, pin, created, stun,"
		     " stun_port) VALUES(?,?,?,?,?,?,?)", NULL, "ttbtiti", r->name, r->url, r->token_hash,
		     r->pin, r->created, r->stun, (int64_t)r->stun_port);

	if (!rc)
		r->id = sqlite3_last_insert_rowid(st->db);
	return rc;
}

int store_relay_update(struct store *st, const struct relay_rec *r)
{
	int changes = 0;
	int rc = run(st, "relay_update", "UPDATE relays SET name=?, url=?, pin=?, stun=?, stun_port=?"
		     " WHERE id=?", &changes, "ttttii", r->name, r->url, r->pin, r->stun,
		     (int64_t)r->stun_port, r->id);

	return rc ? rc : changes ? 0 : -ENOENT;
}

int store_relay_delete(struct store *st, int64_t id)
{
	int changes = 0;
	int rc = run(st, "relay_delete", "DELETE FROM relays WHERE id=?", &changes, "i", id);

	return rc ? rc : changes ? 0 : -ENOENT;
}

int store_relay_foreach(struct store *st, int (*cb)(const struct relay_rec *r, void *arg), void *arg)
{
	sqlite3_stmt *s;
	struct relay_rec r;
	int rc = 0, step = SQLITE_DONE;

	if (sqlite3_prepare_v2(st->db, "SELECT id, name, url, token_hash, pin, created, stun, stun_port"
			       " FROM relays ORDER BY id", -1, &s, NULL))
		return fail(st, "relay_foreach", SQLITE_ERROR);
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&r, 0, sizeof(r));
		r.id = sqlite3_column_int64(s, 0);
		text(s, 1, r.name, sizeof(r.name));
		text(s, 2, r.url, sizeof(r.url));
		if (blob(s, 3, r.token_hash, HASH_LEN) || sqlite3_column_int64(s, 7) < 0 ||
		    sqlite3_column_int64(s, 7) > 65535) {
			rc = corrupt("relays", r.id);
			break;
		}
		text(s, 4, r.pin, sizeof(r.pin));
		r.created = sqlite3_column_int64(s, 5);
		text(s, 6, r.stun, sizeof(r.stun));
		r.stun_port = sqlite3_column_int(s, 7);
		rc = cb(&r, arg);
	}
	return foreach_end(st, s, "relay_foreach", rc, step);
}

/* --- the DNS policy: one row shape over five tables (see struct dns_rec) --- */

static const struct {
	const char *insert, *fmt, *select, *delete;
} dns_sql[STORE_DNS_TABLES] = {
	[STORE_DNS_UPSTREAMS] = { "INSERT INTO dns_upstreams(spec) VALUES(?)", "t",
		"SELECT id, spec, '', 0, '', 0, 0, 0, 0 FROM dns_upstreams ORDER BY id",
		"DELETE FROM dns_upstreams WHERE id=?" },
	[STORE_DNS_ROUTES] = { "INSERT INTO dns_routes(domain, server) VALUES(?, ?)", "tt",
		"SELECT id, domain, server, 0, '', 0, 0, 0, 0 FROM dns_routes ORDER BY id",
		"DELETE FROM dns_routes WHERE id=?" },
	[STORE_DNS_BLOCKLISTS] = { "INSERT INTO dns_blocklists(source, tag) VALUES(?, ?)", "tt",
		"SELECT id, source, '', 0, tag, fetched, version, lines, unusable FROM dns_blocklists"
		" ORDER BY id", "DELETE FROM dns_blocklists WHERE id=?" },
	[STORE_DNS_RULES] = { "INSERT INTO dns_rules(domain, allow, tag) VALUES(?, ?, ?)", "tit",
		"SELECT id, domain, '', allow, tag, 0, 0, 0, 0 FROM dns_rules ORDER BY id",
		"DELETE FROM dns_rules WHERE id=?" },
	[STORE_DNS_RECORDS] = { "INSERT INTO dns_records(name, type, value) VALUES(?, ?, ?)", "tit",
		"SELECT id, name, value, type, '', 0, 0, 0, 0 FROM dns_records ORDER BY id",
		"DELETE FROM dns_records WHERE id=?" },
};

int store_dns_insert(struct store *st, struct dns_rec *r)
{
	const char *fmt;
	int rc;

	if ((unsigned)r->table >= STORE_DNS_TABLES)
		return -EINVAL;
	fmt = dns_sql[r->table].fmt;
	if (!strcmp(fmt, "t"))
		rc = run(st, "dns_insert", dns_sql[r->table].insert, NULL, fmt, r->name);
	else if (!strcmp(fmt, "tt"))
		rc = run(st, "dns_insert", dns_sql[r->table].insert, NULL, fmt, r->name,
			 r->table == STORE_DNS_BLOCKLISTS ? r->tag : r->value);
	else
		rc = run(st, "dns_insert", dns_sql[r->table].insert, NULL, fmt, r->name,
			 (int64_t)r->type, r->table == STORE_DNS_RULES ? r->tag : r->value);
	if (!rc)
		r->id = sqlite3_last_insert_rowid(st->db);
	return rc;
}

int store_dns_delete(struct store *st, int table, int64_t id)
{
	int changes = 0, rc;

	if ((unsigned)table >= STORE_DNS_TABLES)
		return -EINVAL;
	rc = run(st, "dns_delete", dns_sql[table].delete, &changes, "i", id);
	return rc ? rc : changes ? 0 : -ENOENT;
}

int store_dns_blocklist_status(struct store *st, const struct dns_rec *r)
{
	int changes = 0;
	int rc = run(st, "dns_blocklist_status", "UPDATE dns_blocklists SET fetched=?, version=?,"
		     " lines=?, unusable=? WHERE id=?", &changes, "iiiii", r->fetched, r->version,
		     r->lines, r->unusable, r->id);

	return rc ? rc : changes ? 0 : -ENOENT;
}

int store_dns_foreach(struct store *st, int table, int (*cb)(const struct dns_rec *r, void *arg),
		      void *arg)
{
	sqlite3_stmt *s;
	struct dns_rec r;
	int rc = 0, step = SQLITE_DONE;

	if ((unsigned)table >= STORE_DNS_TABLES)
		return -EINVAL;
	if (sqlite3_prepare_v2(st->db, dns_sql[table].select, -1, &s, NULL))
		return fail(st, "dns_foreach", SQLITE_ERROR);
	while (!rc && (step = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&r, 0, sizeof(r));
		r.table = table;
		r.id = sqlite3_column_int64(s, 0);
		/* The text stays valid until the next step: the callback copies what it keeps. */
		r.name = (const char *)sqlite3_column_text(s, 1);
		r.value = (const char *)sqlite3_column_text(s, 2);
		r.type = sqlite3_column_int(s, 3);
		r.tag = (const char *)sqlite3_column_text(s, 4);
		r.fetched = sqlite3_column_int64(s, 5);
		r.version = sqlite3_column_int64(s, 6);
		r.lines = sqlite3_column_int64(s, 7);
		r.unusable = sqlite3_column_int64(s, 8);
		if (!r.name || !r.value || !r.tag) {
			rc = corrupt("dns", r.id);
			break;
		}
		rc = cb(&r, arg);
	}
	return foreach_end(st, s, "dns_foreach", rc, step);
}
