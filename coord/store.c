/* store.c - coord's durable state over either engine (store_db.h): the typed rows of
 * store.h as parameterised SQL written once, and the change feed. Every write is in a
 * transaction (the caller's, or one of its own) that also takes the next feed number and
 * records what it changed, so another coord instance on the same database can follow. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meshvpn/log.h"
#include "store.h"
#include "store_db.h"

struct store {
	const struct store_engine *e;
	void *impl;
	int in_txn;          /* store_begin was called */
	int txn_bumped;      /* this transaction holds the feed number */
	int64_t txn_seq;     /* ... which is this (as the first run of it read it) */
	uint64_t txn_retries; /* the engine's retry count when it began */
	int64_t last_commit; /* the feed number of our last committed write (store_last_commit) */
	int64_t txn_idx;     /* changes recorded in it */
	char instance[STORE_NAME_LEN];
	uint64_t calls, us, errors;
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int64_t store_now(void)
{
	return (int64_t)time(NULL);
}

static int is_pg_spec(const char *spec)
{
	return !strncmp(spec, "postgresql://", 13) || !strncmp(spec, "postgres://", 11);
}

int store_spec_is_remote(const char *spec)
{
	return is_pg_spec(spec);
}

/* ---- values ---- */

static struct store_val vi(int64_t i) { return (struct store_val){ .type = SV_INT, .i = i }; }
static struct store_val vt(const char *t) { return (struct store_val){ .type = SV_TEXT, .p = t, .len = strlen(t) }; }
static struct store_val vb(const void *b, size_t len) { return (struct store_val){ .type = SV_BLOB, .p = b, .len = len }; }
static struct store_val vnull(void) { return (struct store_val){ .type = SV_NULL }; }
/* The name and addresses a pending node does not have yet are NULL (UNIQUE allows many). */
static struct store_val vi_or_null(int64_t i) { return i ? vi(i) : vnull(); }
static struct store_val vt_or_null(const char *t) { return *t ? vt(t) : vnull(); }
static struct store_val vb16_or_null(const uint8_t *b)
{
	static const uint8_t zero[16];

	return memcmp(b, zero, 16) ? vb(b, 16) : vnull();
}

int64_t store_col_int(const struct store_row *r, int i)
{
	return i < r->n && r->c[i].type == SV_INT ? r->c[i].i : 0;
}

void store_col_text(const struct store_row *r, int i, char *out, size_t size)
{
	const char *t = i < r->n && r->c[i].type == SV_TEXT ? r->c[i].p : "";

	snprintf(out, size, "%s", t);
}

/* A blob of exactly len bytes; NULL reads as all zero when null_ok. */
static int col_blob(const struct store_row *r, int i, void *out, size_t len, int null_ok)
{
	if (i < r->n && r->c[i].type == SV_NULL && null_ok) {
		memset(out, 0, len);
		return 0;
	}
	if (i >= r->n || r->c[i].type != SV_BLOB || r->c[i].len != len)
		return -EIO;
	memcpy(out, r->c[i].p, len);
	return 0;
}

static int corrupt(const char *table, int64_t id)
{
	log_error("store holds a corrupt row", "table=%s id=%lld", table, (long long)id);
	return -EIO;
}

static int run(struct store *st, const char *op, const char *sql, const struct store_val *p, int n,
	       store_row_cb rows, void *arg, int64_t *changes)
{
	uint64_t t0 = mono_us();
	int rc = st->e->run(st->impl, op, sql, p, n, rows, arg, changes);

	st->calls++;
	st->us += mono_us() - t0;
	st->errors += rc < 0;
	return rc;
}

void store_get_stats(const struct store *st, struct store_stats *out)
{
	out->calls = st->calls;
	out->us = st->us;
	out->errors = st->errors;
	out->retries = st->e->retries ? st->e->retries(st->impl) : 0;
	out->unsure_commits = st->e->unsure_commits ? st->e->unsure_commits(st->impl) : 0;
}

/* ---- open, transactions ---- */

static int migrate(struct store *st)
{
	int v = st->e->get_version(st->impl), rc;

	if (v < 0)
		return -EIO;
	if (v > STORE_SCHEMA_VERSION) {
		log_error("store is from a newer coord", "engine=%s version=%d known=%d", st->e->name,
			  v, STORE_SCHEMA_VERSION);
		return -EPROTO;
	}
	if (v == STORE_SCHEMA_VERSION)
		return 0;
	rc = st->e->begin(st->impl);
	if (rc)
		return rc;
	/* Another instance may be creating it at the same moment: re-read inside. */
	v = st->e->get_version(st->impl);
	if (v == 0)
		rc = store_schema_create(st->e, st->impl);
	for (; !rc && v > 0 && v < STORE_SCHEMA_VERSION; v++)
		rc = store_schema_step(st->e, st->impl, v);
	if (!rc)
		rc = st->e->set_version(st->impl, STORE_SCHEMA_VERSION);
	if (!rc)
		rc = st->e->commit(st->impl);
	if (rc) {
		st->e->rollback(st->impl);
		log_error("store migration failed", "engine=%s error=%d", st->e->name, rc);
	}
	return rc;
}

int store_open(const char *spec, struct store **out)
{
	struct store *st = calloc(1, sizeof(*st));
	int rc;

	if (!st)
		return -ENOMEM;
	st->e = is_pg_spec(spec) ? &store_engine_pg : &store_engine_sqlite;
	snprintf(st->instance, sizeof(st->instance), "local");
	rc = st->e->open(spec, &st->impl);
	/* Two instances creating the schema at once: the loser's CREATE fails on the
	 * catalogue's unique index; it looks again once the winner has committed. */
	for (int i = 0; !rc && (rc = migrate(st)) == -EEXIST && i < 10; i++) {
		struct timespec ts = { 0, 100000000L * (i + 1) };

		log_info("store schema being created by another instance: waiting", "try=%d", i + 1);
		nanosleep(&ts, NULL);
		rc = 0;
	}
	if (rc) {
		if (st->impl)
			st->e->close(st->impl);
		free(st);
		return rc;
	}
	*out = st;
	return 0;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	st->e->close(st->impl);
	free(st);
}

const char *store_engine_name(const struct store *st)
{
	return st->e->name;
}

void store_set_instance(struct store *st, const char *name)
{
	snprintf(st->instance, sizeof(st->instance), "%s", name);
}

int store_healthy(struct store *st)
{
	return st->e->healthy(st->impl);
}

int store_schema_version(struct store *st)
{
	return st->e->get_version(st->impl);
}

int store_begin(struct store *st)
{
	int rc = st->e->begin(st->impl);

	if (!rc) {
		st->in_txn = 1;
		st->txn_bumped = 0;
		st->txn_idx = 0;
		st->txn_retries = st->e->retries ? st->e->retries(st->impl) : 0;
	}
	return rc;
}

int store_commit(struct store *st)
{
	int rc = st->e->commit(st->impl);
	int64_t head;

	st->in_txn = 0;
	if (rc || !st->txn_bumped)
		return rc;
	/* A transaction the engine replayed took a later number than its first run read:
	 * the head now is at or past it (a bound is all store_last_commit promises). */
	if (st->e->retries && st->e->retries(st->impl) != st->txn_retries &&
	    !store_feed_head(st, &head) && head > st->txn_seq)
		st->txn_seq = head;
	if (st->txn_seq > st->last_commit)
		st->last_commit = st->txn_seq;
	return 0;
}

int64_t store_last_commit(const struct store *st)
{
	return st->last_commit;
}

void store_rollback(struct store *st)
{
	st->e->rollback(st->impl);
	st->in_txn = 0;
}

/* ---- the change feed ---- */

static int one_int(const struct store_row *r, void *arg)
{
	*(int64_t *)arg = store_col_int(r, 0);
	return 0;
}


/* Records one change of the current transaction: the first takes the next feed number
 * (feed_head's row stays locked until the commit, so numbers follow commit order). The
 * number is read inside the INSERT, so a transaction the engine retries stays right. */
/* The transaction's feed number, taken before its first write: every writer locks
 * feed_head first, so writers queue there and never deadlock on the rows after it. */
static int feed_bump(struct store *st)
{
	int rc;

	if (st->txn_bumped)
		return 0;
	rc = run(st, "feed", "UPDATE feed_head SET seq = seq + 1 WHERE id = 1 RETURNING seq", NULL, 0,
		 one_int, &st->txn_seq, NULL);
	if (!rc)
		st->txn_bumped = 1;
	return rc;
}

static int feed_note(struct store *st, int kind, int64_t ref, const char *key)
{
	struct store_val p[6];
	int rc = feed_bump(st);

	if (rc)
		return rc;
	p[0] = vi(st->txn_idx++);
	p[1] = vi(kind);
	p[2] = vi(ref);
	p[3] = vt(key ? key : "");
	p[4] = vt(st->instance);
	p[5] = vi(store_now());
	return run(st, "feed", "INSERT INTO changes(seq, idx, kind, ref, key, instance, at)"
		   " SELECT seq, ?, ?, ?, ?, ?, ? FROM feed_head WHERE id = 1", p, 6, NULL, NULL, NULL);
}

/* A write: in the caller's transaction, or in one of its own. */
struct wr {
	int own;
};

static int wr_begin(struct store *st, struct wr *w)
{
	int rc;

	w->own = !st->in_txn;
	rc = w->own ? store_begin(st) : 0;
	if (!rc)
		rc = feed_bump(st);
	if (rc && w->own)
		store_rollback(st);
	return rc;
}

static int wr_end(struct store *st, struct wr *w, int rc, int kind, int64_t ref, const char *key)
{
	if (!rc)
		rc = feed_note(st, kind, ref, key);
	if (!w->own || !st->in_txn)
		return rc;
	if (!rc)
		return store_commit(st);
	store_rollback(st);
	return rc;
}

static int feed_row(const struct store_row *r, void *arg)
{
	struct {
		int (*cb)(const struct store_change *c, void *arg);
		void *arg;
	} *f = arg;
	struct store_change c = { 0 };

	c.seq = store_col_int(r, 0);
	c.idx = store_col_int(r, 1);
	c.kind = (int)store_col_int(r, 2);
	c.ref = store_col_int(r, 3);
	store_col_text(r, 4, c.key, sizeof(c.key));
	store_col_text(r, 5, c.instance, sizeof(c.instance));
	c.at = store_col_int(r, 6);
	return f->cb(&c, f->arg);
}

int store_feed_read(struct store *st, int64_t after, int limit,
		    int (*cb)(const struct store_change *c, void *arg), void *arg)
{
	struct {
		int (*cb)(const struct store_change *c, void *arg);
		void *arg;
	} f = { cb, arg };
	struct store_val p[2] = { vi(after), vi(limit) };

	return run(st, "feed_read", "SELECT seq, idx, kind, ref, key, instance, at FROM changes"
		   " WHERE seq > ? ORDER BY seq, idx LIMIT ?", p, 2, feed_row, &f, NULL);
}

int store_feed_head(struct store *st, int64_t *seq)
{
	*seq = -1;
	int rc = run(st, "feed_head", "SELECT seq FROM feed_head WHERE id = 1", NULL, 0, one_int, seq,
		     NULL);

	return rc ? rc : *seq < 0 ? -EIO : 0;
}

int store_feed_oldest(struct store *st, int64_t *seq)
{
	*seq = 0;
	return run(st, "feed_oldest", "SELECT MIN(seq) FROM changes", NULL, 0, one_int, seq, NULL);
}

int store_feed_prune(struct store *st, int64_t before)
{
	struct store_val p = vi(before);

	return run(st, "feed_prune", "DELETE FROM changes WHERE seq < ?", &p, 1, NULL, NULL, NULL);
}

/* ---- once-only jobs and the instances seen ---- */

int store_lease_claim(struct store *st, const char *job, int64_t now, int64_t ttl)
{
	struct store_val p[5] = { vt(job), vt(st->instance), vi(now + ttl), vi(now), vt(st->instance) };
	int64_t changes = 0;
	int rc = run(st, "lease", "INSERT INTO leases(job, holder, expires) VALUES(?, ?, ?)"
		     " ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires = excluded.expires"
		     " WHERE leases.expires < ? OR leases.holder = ?", p, 5, NULL, NULL, &changes);

	return rc ? rc : changes ? 1 : 0;
}

int store_lease_release(struct store *st, const char *job)
{
	struct store_val p[2] = { vt(job), vt(st->instance) };

	return run(st, "lease", "DELETE FROM leases WHERE job = ? AND holder = ?", p, 2, NULL, NULL, NULL);
}

int store_instance_beat(struct store *st, const struct store_instance *in)
{
	struct store_val p[6] = { vt(st->instance), vt(in->url), vi(in->started), vi(in->seen),
				  vi(in->feed_seq), vt(in->jobs) };

	return run(st, "instance", "INSERT INTO instances(name, url, started, seen, feed_seq, jobs)"
		   " VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET url = excluded.url,"
		   " started = excluded.started, seen = excluded.seen, feed_seq = excluded.feed_seq,"
		   " jobs = excluded.jobs", p, 6, NULL, NULL, NULL);
}

static int instance_row(const struct store_row *r, void *arg)
{
	struct {
		int (*cb)(const struct store_instance *in, void *arg);
		void *arg;
	} *f = arg;
	struct store_instance in;

	memset(&in, 0, sizeof(in));
	store_col_text(r, 0, in.name, sizeof(in.name));
	store_col_text(r, 1, in.url, sizeof(in.url));
	in.started = store_col_int(r, 2);
	in.seen = store_col_int(r, 3);
	in.feed_seq = store_col_int(r, 4);
	store_col_text(r, 5, in.jobs, sizeof(in.jobs));
	return f->cb(&in, f->arg);
}

int store_instance_foreach(struct store *st, int64_t seen_since,
			   int (*cb)(const struct store_instance *in, void *arg), void *arg)
{
	struct {
		int (*cb)(const struct store_instance *in, void *arg);
		void *arg;
	} f = { cb, arg };
	struct store_val p = vi(seen_since);

	return run(st, "instances", "SELECT name, url, started, seen, feed_seq, jobs FROM instances"
		   " WHERE seen >= ? ORDER BY name", &p, 1, instance_row, &f, NULL);
}

/* ---- settings ---- */

struct text_out {
	char *out;
	size_t size;
	int found;
};

static int text_row(const struct store_row *r, void *arg)
{
	struct text_out *t = arg;

	store_col_text(r, 0, t->out, t->size);
	t->found = 1;
	return 0;
}

int store_meta_get(struct store *st, const char *key, char *out, size_t size)
{
	struct text_out t = { out, size, 0 };
	struct store_val p = vt(key);
	int rc = run(st, "meta_get", "SELECT value FROM meta WHERE key = ?", &p, 1, text_row, &t, NULL);

	/* Unreadable is not absent: coord would replace a setting it could not read. */
	return rc ? rc : t.found ? 0 : -ENOENT;
}

int store_meta_set(struct store *st, const char *key, const char *value)
{
	struct store_val p[2] = { vt(key), vt(value) };
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = run(st, "meta_set", "INSERT INTO meta(key, value) VALUES(?, ?)"
			 " ON CONFLICT (key) DO UPDATE SET value = excluded.value", p, 2, NULL, NULL, NULL);
	return wr_end(st, &w, rc, STORE_CH_META, 0, key);
}

int store_meta_init(struct store *st, const char *key, const char *value, char *out, size_t size)
{
	struct store_val p[2] = { vt(key), vt(value) };
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = run(st, "meta_init", "INSERT INTO meta(key, value) VALUES(?, ?)"
			 " ON CONFLICT (key) DO NOTHING", p, 2, NULL, NULL, NULL);
	rc = wr_end(st, &w, rc, STORE_CH_META, 0, key);
	return rc ? rc : store_meta_get(st, key, out, size);
}

/* An insert's id: the engine's next (PostgreSQL) or the one it assigns (SQLite). A row
 * that already has one (migrate) keeps it. */
static int insert_id(struct store *st, const char *table, int64_t *id)
{
	return *id ? 0 : st->e->next_id(st->impl, table, id);
}

static int insert_returning(struct store *st, const char *op, const char *sql,
			    const struct store_val *p, int n, int64_t *id)
{
	int64_t got = 0;
	int rc = run(st, op, sql, p, n, one_int, &got, NULL);

	if (!rc)
		*id = got;
	return rc;
}

/* ---- nodes ---- */

#define NODE_COLS "name, hostname, os, node_key, disco_key, machine_key, token_hash, ipv4, ipv6," \
	" state, ephemeral, tags, auth_key_id, created, key_expiry, last_seen"
#define LIVE_COLS "endpoints, home_relay, online, disconnected_at"

static int node_vals(const struct node_rec *n, struct store_val *p)
{
	int k = 0;

	p[k++] = vt_or_null(n->name);
	p[k++] = vt(n->hostname);
	p[k++] = vt(n->os);
	p[k++] = vb(n->node_key, KEY_LEN);
	p[k++] = vb(n->disco_key, KEY_LEN);
	p[k++] = vb(n->machine_key, KEY_LEN);
	p[k++] = vb(n->token_hash, HASH_LEN);
	p[k++] = vi_or_null(n->ipv4);
	p[k++] = vb16_or_null(n->ipv6);
	p[k++] = vi(n->state);
	p[k++] = vi(n->ephemeral);
	p[k++] = vt(n->tags);
	p[k++] = vi(n->auth_key_id);
	p[k++] = vi(n->created);
	p[k++] = vi(n->key_expiry);
	p[k++] = vi(n->last_seen);
	return k;
}

static int live_vals(const struct node_rec *n, struct store_val *p)
{
	p[0] = vt(n->endpoints);
	p[1] = vt(n->home_relay);
	p[2] = vt(n->online);
	p[3] = vi(n->disconnected_at);
	return 4;
}

int store_node_insert(struct store *st, struct node_rec *n)
{
	struct store_val p[STORE_MAX_PARAMS];
	int64_t id = n->id;
	struct wr w;
	int k = 0, rc = wr_begin(st, &w);

	if (!rc)
		rc = insert_id(st, "nodes", &id);
	if (!rc) {
		p[k++] = vi_or_null(id);
		k += node_vals(n, p + k);
		p[k++] = vi(n->rev);
		k += live_vals(n, p + k);
		rc = insert_returning(st, "node_insert", "INSERT INTO nodes(id, " NODE_COLS ", rev, "
				      LIVE_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
				      " RETURNING id", p, k, &id);
	}
	rc = wr_end(st, &w, rc, STORE_CH_NODE, id, NULL);
	if (!rc)
		n->id = id;
	return rc;
}

/* 0, or -ENOENT (gone) / -ESTALE (another instance changed it since n was read). */
static int node_missing_or_stale(struct store *st, int64_t id)
{
	struct store_val p = vi(id);
	int64_t found = 0;
	int rc = run(st, "node_check", "SELECT 1 FROM nodes WHERE id = ?", &p, 1, one_int, &found, NULL);

	return rc ? rc : found ? -ESTALE : -ENOENT;
}

int store_node_update(struct store *st, struct node_rec *n)
{
	struct store_val p[STORE_MAX_PARAMS];
	int64_t changes = 0;
	struct wr w;
	int k = node_vals(n, p), rc = wr_begin(st, &w);

	p[k++] = vi(n->id);
	p[k++] = vi(n->rev);
	if (!rc)
		rc = run(st, "node_update", "UPDATE nodes SET name=?, hostname=?, os=?, node_key=?,"
			 " disco_key=?, machine_key=?, token_hash=?, ipv4=?, ipv6=?, state=?, ephemeral=?,"
			 " tags=?, auth_key_id=?, created=?, key_expiry=?, last_seen=?, rev = rev + 1"
			 " WHERE id=? AND rev=?", p, k, NULL, NULL, &changes);
	if (!rc && !changes)
		rc = node_missing_or_stale(st, n->id);
	rc = wr_end(st, &w, rc, STORE_CH_NODE, n->id, NULL);
	if (!rc)
		n->rev++;
	return rc;
}

int store_node_live(struct store *st, const struct node_rec *n)
{
	struct store_val p[8];
	int64_t changes = 0;
	struct wr w;
	int k = live_vals(n, p), rc = wr_begin(st, &w);

	p[k++] = vi(n->last_seen);
	p[k++] = vi(n->id);
	if (!rc)
		rc = run(st, "node_live", "UPDATE nodes SET endpoints=?, home_relay=?, online=?,"
			 " disconnected_at=?, last_seen=? WHERE id=?", p, k, NULL, NULL, &changes);
	if (!rc && !changes)
		rc = -ENOENT;
	return wr_end(st, &w, rc, STORE_CH_NODE_LIVE, n->id, NULL);
}

int store_node_offline_if(struct store *st, int64_t id, const char *was, int64_t at)
{
	struct store_val p[4] = { vi(at), vi(at), vi(id), vt(was ? was : st->instance) };
	int64_t changes = 0;
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = run(st, "node_offline", "UPDATE nodes SET online='', disconnected_at=?, last_seen=?"
			 " WHERE id=? AND online=?", p, 4, NULL, NULL, &changes);
	if (!rc && !changes) {
		/* Another instance holds its stream now (or it is gone): nothing to say. */
		if (w.own)
			store_rollback(st);
		return -ENOENT;
	}
	return wr_end(st, &w, rc, STORE_CH_NODE_LIVE, id, NULL);
}

int store_node_delete(struct store *st, int64_t id, const char *key_b64)
{
	struct store_val p = vi(id);
	int64_t changes = 0;
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = run(st, "node_delete", "DELETE FROM nodes WHERE id=?", &p, 1, NULL, NULL, &changes);
	if (!rc && !changes)
		rc = -ENOENT;
	return wr_end(st, &w, rc, STORE_CH_NODE, id, key_b64);
}

struct node_cb {
	int (*cb)(const struct node_rec *n, void *arg);
	void *arg;
};

static int node_row(const struct store_row *r, void *arg)
{
	struct node_cb *f = arg;
	struct node_rec n;

	memset(&n, 0, sizeof(n));
	n.id = store_col_int(r, 0);
	store_col_text(r, 1, n.name, sizeof(n.name));
	store_col_text(r, 2, n.hostname, sizeof(n.hostname));
	store_col_text(r, 3, n.os, sizeof(n.os));
	if (col_blob(r, 4, n.node_key, KEY_LEN, 0) || col_blob(r, 5, n.disco_key, KEY_LEN, 0) ||
	    col_blob(r, 6, n.machine_key, KEY_LEN, 0) || col_blob(r, 7, n.token_hash, HASH_LEN, 0) ||
	    col_blob(r, 9, n.ipv6, 16, 1) || store_col_int(r, 8) < 0 || store_col_int(r, 8) > UINT32_MAX)
		return corrupt("nodes", n.id);
	n.ipv4 = (uint32_t)store_col_int(r, 8);
	n.state = (int)store_col_int(r, 10);
	n.ephemeral = (int)store_col_int(r, 11);
	store_col_text(r, 12, n.tags, sizeof(n.tags));
	n.auth_key_id = store_col_int(r, 13);
	n.created = store_col_int(r, 14);
	n.key_expiry = store_col_int(r, 15);
	n.last_seen = store_col_int(r, 16);
	n.rev = store_col_int(r, 17);
	store_col_text(r, 18, n.endpoints, sizeof(n.endpoints));
	store_col_text(r, 19, n.home_relay, sizeof(n.home_relay));
	store_col_text(r, 20, n.online, sizeof(n.online));
	n.disconnected_at = store_col_int(r, 21);
	return f->cb(&n, f->arg);
}

#define NODE_SELECT "SELECT id, " NODE_COLS ", rev, " LIVE_COLS " FROM nodes"

int store_node_foreach(struct store *st, int (*cb)(const struct node_rec *n, void *arg), void *arg)
{
	struct node_cb f = { cb, arg };

	return run(st, "node_foreach", NODE_SELECT " ORDER BY id", NULL, 0, node_row, &f, NULL);
}

static int copy_node(const struct node_rec *n, void *arg)
{
	*(struct node_rec *)arg = *n;
	return 1;
}

int store_node_get(struct store *st, int64_t id, struct node_rec *out)
{
	struct node_cb f = { copy_node, out };
	struct store_val p = vi(id);
	int rc = run(st, "node_get", NODE_SELECT " WHERE id = ?", &p, 1, node_row, &f, NULL);

	return rc == 1 ? 0 : rc ? rc : -ENOENT;
}

/* ---- auth keys and API keys ---- */

int store_authkey_insert(struct store *st, struct authkey_rec *k)
{
	struct store_val p[10];
	int64_t id = k->id;
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = insert_id(st, "authkeys", &id);
	if (!rc) {
		p[0] = vi_or_null(id);
		p[1] = vb(k->hash, HASH_LEN);
		p[2] = vt(k->prefix);
		p[3] = vi(k->reusable);
		p[4] = vi(k->ephemeral);
		p[5] = vt(k->tags);
		p[6] = vi(k->created);
		p[7] = vi(k->expiry);
		p[8] = vi(k->uses);
		p[9] = vi(k->revoked);
		rc = insert_returning(st, "authkey_insert", "INSERT INTO authkeys(id, hash, prefix,"
				      " reusable, ephemeral, tags, created, expiry, uses, revoked)"
				      " VALUES(?,?,?,?,?,?,?,?,?,?) RETURNING id", p, 10, &id);
	}
	rc = wr_end(st, &w, rc, STORE_CH_AUTHKEY, id, NULL);
	if (!rc)
		k->id = id;
	return rc;
}

int store_authkey_update(struct store *st, const struct authkey_rec *k)
{
	/* The uses never go down: they are counted in the database (store_authkey_use),
	 * and a copy from memory must not undo another instance's. */
	struct store_val p[5] = { vi(k->uses), vi(k->uses), vi(k->revoked), vi(k->expiry), vi(k->id) };
	int64_t changes = 0;
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = run(st, "authkey_update", "UPDATE authkeys SET uses = CASE WHEN uses > ? THEN uses"
			 " ELSE ? END, revoked=?, expiry=? WHERE id=?", p, 5, NULL, NULL, &changes);
	if (!rc && !changes)
		rc = -ENOENT;
	return wr_end(st, &w, rc, STORE_CH_AUTHKEY, k->id, NULL);
}

/* A reusable key's uses, counted in the database: two instances using it at once both
 * count, and a one-off key is taken once (0 rows: used up or revoked meanwhile). */
int store_authkey_use(struct store *st, int64_t id, int reusable)
{
	struct store_val p = vi(id);
	int64_t changes = 0;
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = run(st, "authkey_use", reusable ? "UPDATE authkeys SET uses = uses + 1 WHERE id=? AND revoked = 0"
			 : "UPDATE authkeys SET uses = uses + 1 WHERE id=? AND revoked = 0 AND uses = 0",
			 &p, 1, NULL, NULL, &changes);
	if (!rc && !changes)
		rc = -EACCES;
	return wr_end(st, &w, rc, STORE_CH_AUTHKEY, id, NULL);
}

struct authkey_cb {
	int (*cb)(const struct authkey_rec *k, void *arg);
	void *arg;
};

static int authkey_row(const struct store_row *r, void *arg)
{
	struct authkey_cb *f = arg;
	struct authkey_rec k;

	memset(&k, 0, sizeof(k));
	k.id = store_col_int(r, 0);
	if (col_blob(r, 1, k.hash, HASH_LEN, 0))
		return corrupt("authkeys", k.id);
	store_col_text(r, 2, k.prefix, sizeof(k.prefix));
	k.reusable = (int)store_col_int(r, 3);
	k.ephemeral = (int)store_col_int(r, 4);
	store_col_text(r, 5, k.tags, sizeof(k.tags));
	k.created = store_col_int(r, 6);
	k.expiry = store_col_int(r, 7);
	k.uses = store_col_int(r, 8);
	k.revoked = (int)store_col_int(r, 9);
	return f->cb(&k, f->arg);
}

#define AUTHKEY_SELECT "SELECT id, hash, prefix, reusable, ephemeral, tags, created, expiry, uses," \
	" revoked FROM authkeys"

int store_authkey_foreach(struct store *st, int (*cb)(const struct authkey_rec *k, void *arg), void *arg)
{
	struct authkey_cb f = { cb, arg };

	return run(st, "authkey_foreach", AUTHKEY_SELECT " ORDER BY id", NULL, 0, authkey_row, &f, NULL);
}

static int copy_authkey(const struct authkey_rec *k, void *arg)
{
	*(struct authkey_rec *)arg = *k;
	return 1;
}

int store_authkey_get(struct store *st, int64_t id, struct authkey_rec *out)
{
	struct authkey_cb f = { copy_authkey, out };
	struct store_val p = vi(id);
	int rc = run(st, "authkey_get", AUTHKEY_SELECT " WHERE id = ?", &p, 1, authkey_row, &f, NULL);

	return rc == 1 ? 0 : rc ? rc : -ENOENT;
}

int store_apikey_insert(struct store *st, struct apikey_rec *k)
{
	struct store_val p[6];
	int64_t id = k->id;
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = insert_id(st, "apikeys", &id);
	if (!rc) {
		p[0] = vi_or_null(id);
		p[1] = vb(k->hash, HASH_LEN);
		p[2] = vt(k->prefix);
		p[3] = vi(k->created);
		p[4] = vi(k->expiry);
		p[5] = vi(k->revoked);
		rc = insert_returning(st, "apikey_insert", "INSERT INTO apikeys(id, hash, prefix, created,"
				      " expiry, revoked) VALUES(?,?,?,?,?,?) RETURNING id", p, 6, &id);
	}
	rc = wr_end(st, &w, rc, STORE_CH_APIKEY, id, NULL);
	if (!rc)
		k->id = id;
	return rc;
}

int store_apikey_update(struct store *st, const struct apikey_rec *k)
{
	struct store_val p[3] = { vi(k->revoked), vi(k->expiry), vi(k->id) };
	int64_t changes = 0;
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = run(st, "apikey_update", "UPDATE apikeys SET revoked=?, expiry=? WHERE id=?", p, 3,
			 NULL, NULL, &changes);
	if (!rc && !changes)
		rc = -ENOENT;
	return wr_end(st, &w, rc, STORE_CH_APIKEY, k->id, NULL);
}

struct apikey_cb {
	int (*cb)(const struct apikey_rec *k, void *arg);
	void *arg;
};

static int apikey_row(const struct store_row *r, void *arg)
{
	struct apikey_cb *f = arg;
	struct apikey_rec k;

	memset(&k, 0, sizeof(k));
	k.id = store_col_int(r, 0);
	if (col_blob(r, 1, k.hash, HASH_LEN, 0))
		return corrupt("apikeys", k.id);
	store_col_text(r, 2, k.prefix, sizeof(k.prefix));
	k.created = store_col_int(r, 3);
	k.expiry = store_col_int(r, 4);
	k.revoked = (int)store_col_int(r, 5);
	return f->cb(&k, f->arg);
}

#define APIKEY_SELECT "SELECT id, hash, prefix, created, expiry, revoked FROM apikeys"

int store_apikey_foreach(struct store *st, int (*cb)(const struct apikey_rec *k, void *arg), void *arg)
{
	struct apikey_cb f = { cb, arg };

	return run(st, "apikey_foreach", APIKEY_SELECT " ORDER BY id", NULL, 0, apikey_row, &f, NULL);
}

static int copy_apikey(const struct apikey_rec *k, void *arg)
{
	*(struct apikey_rec *)arg = *k;
	return 1;
}

int store_apikey_get(struct store *st, int64_t id, struct apikey_rec *out)
{
	struct apikey_cb f = { copy_apikey, out };
	struct store_val p = vi(id);
	int rc = run(st, "apikey_get", APIKEY_SELECT " WHERE id = ?", &p, 1, apikey_row, &f, NULL);

	return rc == 1 ? 0 : rc ? rc : -ENOENT;
}

/* ---- relays ---- */

int store_relay_insert(struct store *st, struct relay_rec *r)
{
	struct store_val p[8];
	int64_t id = r->id;
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = insert_id(st, "relays", &id);
	if (!rc) {
		p[0] = vi_or_null(id);
		p[1] = vt(r->name);
		p[2] = vt(r->url);
		p[3] = vb(r->token_hash, HASH_LEN);
		p[4] = vt(r->pin);
		p[5] = vi(r->created);
		p[6] = vt(r->stun);
		p[7] = vi(r->stun_port);
		rc = insert_returning(st, "relay_insert", "INSERT INTO relays(id, name, url, token_hash,"
				      " pin, created, stun, stun_port) VALUES(?,?,?,?,?,?,?,?) RETURNING id",
				      p, 8, &id);
	}
	rc = wr_end(st, &w, rc, STORE_CH_RELAY, id, NULL);
	if (!rc)
		r->id = id;
	return rc;
}

int store_relay_update(struct store *st, const struct relay_rec *r)
{
	struct store_val p[6] = { vt(r->name), vt(r->url), vt(r->pin), vt(r->stun), vi(r->stun_port),
				  vi(r->id) };
	int64_t changes = 0;
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = run(st, "relay_update", "UPDATE relays SET name=?, url=?, pin=?, stun=?, stun_port=?"
			 " WHERE id=?", p, 6, NULL, NULL, &changes);
	if (!rc && !changes)
		rc = -ENOENT;
	return wr_end(st, &w, rc, STORE_CH_RELAY, r->id, NULL);
}

int store_relay_delete(struct store *st, int64_t id)
{
	struct store_val p = vi(id);
	int64_t changes = 0;
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = run(st, "relay_delete", "DELETE FROM relays WHERE id=?", &p, 1, NULL, NULL, &changes);
	if (!rc && !changes)
		rc = -ENOENT;
	return wr_end(st, &w, rc, STORE_CH_RELAY, id, NULL);
}

struct relay_cb {
	int (*cb)(const struct relay_rec *r, void *arg);
	void *arg;
};

static int relay_row(const struct store_row *row, void *arg)
{
	struct relay_cb *f = arg;
	struct relay_rec r;

	memset(&r, 0, sizeof(r));
	r.id = store_col_int(row, 0);
	store_col_text(row, 1, r.name, sizeof(r.name));
	store_col_text(row, 2, r.url, sizeof(r.url));
	if (col_blob(row, 3, r.token_hash, HASH_LEN, 0) || store_col_int(row, 7) < 0 ||
	    store_col_int(row, 7) > 65535)
		return corrupt("relays", r.id);
	store_col_text(row, 4, r.pin, sizeof(r.pin));
	r.created = store_col_int(row, 5);
	store_col_text(row, 6, r.stun, sizeof(r.stun));
	r.stun_port = (int)store_col_int(row, 7);
	return f->cb(&r, f->arg);
}

#define RELAY_SELECT "SELECT id, name, url, token_hash, pin, created, stun, stun_port FROM relays"

int store_relay_foreach(struct store *st, int (*cb)(const struct relay_rec *r, void *arg), void *arg)
{
	struct relay_cb f = { cb, arg };

	return run(st, "relay_foreach", RELAY_SELECT " ORDER BY id", NULL, 0, relay_row, &f, NULL);
}

static int copy_relay(const struct relay_rec *r, void *arg)
{
	*(struct relay_rec *)arg = *r;
	return 1;
}

int store_relay_get(struct store *st, int64_t id, struct relay_rec *out)
{
	struct relay_cb f = { copy_relay, out };
	struct store_val p = vi(id);
	int rc = run(st, "relay_get", RELAY_SELECT " WHERE id = ?", &p, 1, relay_row, &f, NULL);

	return rc == 1 ? 0 : rc ? rc : -ENOENT;
}

/* ---- the DNS policy: one row shape over five tables (see struct dns_rec) ---- */

static const struct {
	const char *table, *insert, *select;
	int cols;   /* 1: name; 2: name + value/tag; 3: name, type, value/tag */
} dns_sql[STORE_DNS_TABLES] = {
	[STORE_DNS_UPSTREAMS] = { "dns_upstreams", "INSERT INTO dns_upstreams(id, spec) VALUES(?, ?)"
		" RETURNING id", "SELECT id, spec, spec, 0, spec, 0, 0, 0, 0 FROM dns_upstreams", 1 },
	[STORE_DNS_ROUTES] = { "dns_routes", "INSERT INTO dns_routes(id, domain, server)"
		" VALUES(?, ?, ?) RETURNING id",
		"SELECT id, domain, server, 0, server, 0, 0, 0, 0 FROM dns_routes", 2 },
	[STORE_DNS_BLOCKLISTS] = { "dns_blocklists", "INSERT INTO dns_blocklists(id, source, tag)"
		" VALUES(?, ?, ?) RETURNING id", "SELECT id, source, tag, 0, tag, fetched, version,"
		" lines, unusable FROM dns_blocklists", 2 },
	[STORE_DNS_RULES] = { "dns_rules", "INSERT INTO dns_rules(id, domain, allow, tag)"
		" VALUES(?, ?, ?, ?) RETURNING id", "SELECT id, domain, tag, allow, tag, 0, 0, 0, 0"
		" FROM dns_rules", 3 },
	[STORE_DNS_RECORDS] = { "dns_records", "INSERT INTO dns_records(id, name, type, value)"
		" VALUES(?, ?, ?, ?) RETURNING id", "SELECT id, name, value, type, value, 0, 0, 0, 0"
		" FROM dns_records", 3 },
};

/* Which of the selected columns are real for each table (the rest read as ""). */
static int dns_has_value(int table) { return table == STORE_DNS_ROUTES || table == STORE_DNS_RECORDS; }
static int dns_has_tag(int table) { return table == STORE_DNS_BLOCKLISTS || table == STORE_DNS_RULES; }

int store_dns_insert(struct store *st, struct dns_rec *r)
{
	struct store_val p[4];
	int64_t id = r->id;
	struct wr w;
	int k = 0, rc;

	if ((unsigned)r->table >= STORE_DNS_TABLES)
		return -EINVAL;
	rc = wr_begin(st, &w);
	if (!rc)
		rc = insert_id(st, dns_sql[r->table].table, &id);
	if (!rc) {
		p[k++] = vi_or_null(id);
		p[k++] = vt(r->name);
		if (dns_sql[r->table].cols == 3)
			p[k++] = vi(r->type);
		if (dns_sql[r->table].cols >= 2)
			p[k++] = vt(dns_has_tag(r->table) ? r->tag : r->value);
		rc = insert_returning(st, "dns_insert", dns_sql[r->table].insert, p, k, &id);
	}
	rc = wr_end(st, &w, rc, STORE_CH_DNS + r->table, id, NULL);
	if (!rc)
		r->id = id;
	return rc;
}

int store_dns_delete(struct store *st, int table, int64_t id)
{
	char sql[64];
	struct store_val p = vi(id);
	int64_t changes = 0;
	struct wr w;
	int rc;

	if ((unsigned)table >= STORE_DNS_TABLES)
		return -EINVAL;
	snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id=?", dns_sql[table].table);
	rc = wr_begin(st, &w);
	if (!rc)
		rc = run(st, "dns_delete", sql, &p, 1, NULL, NULL, &changes);
	if (!rc && !changes)
		rc = -ENOENT;
	if (!rc && table == STORE_DNS_BLOCKLISTS)   /* its copy goes with it */
		rc = run(st, "dns_delete", "DELETE FROM dns_blocklist_copies WHERE id=?", &p, 1, NULL,
			 NULL, NULL);
	return wr_end(st, &w, rc, STORE_CH_DNS + table, id, NULL);
}

static int blocklist_status(struct store *st, const struct dns_rec *r)
{
	struct store_val p[5] = { vi(r->fetched), vi(r->version), vi(r->lines), vi(r->unusable), vi(r->id) };
	int64_t changes = 0;
	int rc = run(st, "dns_blocklist_status", "UPDATE dns_blocklists SET fetched=?, version=?,"
		     " lines=?, unusable=? WHERE id=?", p, 5, NULL, NULL, &changes);

	return !rc && !changes ? -ENOENT : rc;
}

int store_dns_blocklist_status(struct store *st, const struct dns_rec *r)
{
	struct wr w;
	int rc = wr_begin(st, &w);

	if (!rc)
		rc = blocklist_status(st, r);
	return wr_end(st, &w, rc, STORE_CH_DNS + STORE_DNS_BLOCKLISTS, r->id, NULL);
}

int store_dns_blocklist_copy_put(struct store *st, const struct dns_rec *status,
				 const struct store_bl_copy *c)
{
	struct store_val p[5] = { vi(c->id), vi(c->version), vb(c->sum, sizeof(c->sum)), vt(c->meta),
				  c->body ? vb(c->body, c->len) : vnull() };
	struct store_val q[3] = { vt(c->meta), vi(c->id), vb(c->sum, sizeof(c->sum)) };
	struct wr w;
	int rc;

	if (c->id != status->id)
		return -EINVAL;
	rc = wr_begin(st, &w);
	if (!rc)
		rc = blocklist_status(st, status);
	if (!rc && c->body)
		rc = run(st, "dns_blocklist_copy", "INSERT INTO dns_blocklist_copies(id, version, sum,"
			 " meta, body) VALUES(?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
			 " version = excluded.version, sum = excluded.sum, meta = excluded.meta,"
			 " body = excluded.body", p, 5, NULL, NULL, NULL);
	else if (!rc)
		rc = run(st, "dns_blocklist_copy", "UPDATE dns_blocklist_copies SET meta=? WHERE id=?"
			 " AND sum=?", q, 3, NULL, NULL, NULL);
	return wr_end(st, &w, rc, STORE_CH_DNS + STORE_DNS_BLOCKLISTS, c->id, NULL);
}

struct copy_cb {
	int (*cb)(const struct store_bl_copy *c, void *arg);
	void *arg;
	int found;
};

/* id, version, sum, meta, and the body or its length */
static int copy_row(const struct store_row *r, void *arg)
{
	struct copy_cb *f = arg;
	struct store_bl_copy c = { .id = store_col_int(r, 0), .version = store_col_int(r, 1) };

	if (r->n < 5 || col_blob(r, 2, c.sum, sizeof(c.sum), 0) || r->c[3].type != SV_TEXT)
		return corrupt("dns_blocklist_copies", c.id);
	c.meta = r->c[3].p;
	if (r->c[4].type == SV_BLOB) {
		c.body = r->c[4].p;
		c.len = r->c[4].len;
	} else if (r->c[4].type == SV_INT && r->c[4].i >= 0) {
		c.len = (size_t)r->c[4].i;
	} else {
		return corrupt("dns_blocklist_copies", c.id);
	}
	f->found = 1;
	return f->cb(&c, f->arg);
}

int store_dns_blocklist_copy_heads(struct store *st,
				   int (*cb)(const struct store_bl_copy *c, void *arg), void *arg)
{
	struct copy_cb f = { cb, arg, 0 };

	return run(st, "dns_blocklist_copy_heads", "SELECT id, version, sum, meta, LENGTH(body)"
		   " FROM dns_blocklist_copies ORDER BY id", NULL, 0, copy_row, &f, NULL);
}

int store_dns_blocklist_copy_get(struct store *st, int64_t id,
				 int (*cb)(const struct store_bl_copy *c, void *arg), void *arg)
{
	struct copy_cb f = { cb, arg, 0 };
	struct store_val p = vi(id);
	int rc = run(st, "dns_blocklist_copy_get", "SELECT id, version, sum, meta, body"
		     " FROM dns_blocklist_copies WHERE id = ?", &p, 1, copy_row, &f, NULL);

	return rc ? rc : f.found ? 0 : -ENOENT;
}

struct dns_cb {
	int table;
	int (*cb)(const struct dns_rec *r, void *arg);
	void *arg;
};

static int dns_row(const struct store_row *row, void *arg)
{
	struct dns_cb *f = arg;
	struct dns_rec r;

	memset(&r, 0, sizeof(r));
	r.table = f->table;
	r.id = store_col_int(row, 0);
	if (row->n < 9 || row->c[1].type != SV_TEXT || row->c[2].type != SV_TEXT)
		return corrupt("dns", r.id);
	/* The text stays valid until the callback returns: it copies what it keeps. */
	r.name = row->c[1].p;
	r.value = dns_has_value(f->table) ? row->c[2].p : "";
	r.tag = dns_has_tag(f->table) ? row->c[2].p : "";
	r.type = (int)store_col_int(row, 3);
	r.fetched = store_col_int(row, 5);
	r.version = store_col_int(row, 6);
	r.lines = store_col_int(row, 7);
	r.unusable = store_col_int(row, 8);
	return f->cb(&r, f->arg);
}

int store_dns_foreach(struct store *st, int table, int (*cb)(const struct dns_rec *r, void *arg),
		      void *arg)
{
	struct dns_cb f = { table, cb, arg };
	char sql[256];

	if ((unsigned)table >= STORE_DNS_TABLES)
		return -EINVAL;
	snprintf(sql, sizeof(sql), "%s ORDER BY id", dns_sql[table].select);
	return run(st, "dns_foreach", sql, NULL, 0, dns_row, &f, NULL);
}

int store_dns_get(struct store *st, int table, int64_t id,
		  int (*cb)(const struct dns_rec *r, void *arg), void *arg)
{
	struct dns_cb f = { table, cb, arg };
	struct store_val p = vi(id);
	char sql[256];

	if ((unsigned)table >= STORE_DNS_TABLES)
		return -EINVAL;
	snprintf(sql, sizeof(sql), "%s WHERE id = ?", dns_sql[table].select);
	return run(st, "dns_get", sql, &p, 1, dns_row, &f, NULL);
}

/* ---- whole tables, for migrate: copy rows as they are and a checksum of each ---- */

int store_table_foreach(struct store *st, const char *table, store_row_cb cb, void *arg)
{
	const char *cols = store_table_columns(table);
	char sql[1024];

	if (!cols)
		return -EINVAL;
	/* The first column orders every table: id, key, job, name or seq. */
	snprintf(sql, sizeof(sql), "SELECT %s FROM %s ORDER BY 1", cols, table);
	return run(st, "table_foreach", sql, NULL, 0, cb, arg, NULL);
}

int store_table_count(struct store *st, const char *table, int64_t *count)
{
	char sql[128];

	*count = 0;
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
	return run(st, "table_count", sql, NULL, 0, one_int, count, NULL);
}

int store_row_copy(struct store *st, const char *table, const struct store_row *row)
{
	const char *cols = store_table_columns(table);
	char sql[1024];
	size_t at;
	int rc;

	if (!cols)
		return -EINVAL;
	at = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO %s(%s) VALUES(", table, cols);
	for (int i = 0; i < row->n && at < sizeof(sql) - 4; i++)
		at += (size_t)snprintf(sql + at, sizeof(sql) - at, "%s?", i ? "," : "");
	if (at >= sizeof(sql) - 4)
		return -ENAMETOOLONG;
	snprintf(sql + at, sizeof(sql) - at, ")");
	rc = run(st, "copy", sql, row->c, row->n, NULL, NULL, NULL);
	return rc;
}

int store_table_bump_ids(struct store *st, const char *table)
{
	return st->e->bump_ids(st->impl, table);
}

