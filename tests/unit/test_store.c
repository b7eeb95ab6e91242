/* test_store.c - unit tests for coord's SQLite store: the file it creates (0600, WAL,
 * schema version), exact round trips across a reopen, ids, unique columns, transactions,
 * migration of an older file, newer schemas, corrupt rows and pages, files that are not
 * databases, and what survives a process that dies without store_close. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "meshvpn/log.h"
#include "store.h"
#include "store_db.h"

#define MAX_ROWS 8
#define PATH_MAX_LEN 128

struct fixture {
	char dir[64];
	char path[PATH_MAX_LEN];
	struct store *st;
};

enum table { T_NODES, T_AUTHKEYS, T_APIKEYS, T_RELAYS };

/* What one foreach delivered. The stop_at-th callback (1-based) returns stop_rc. */
struct rows {
	int n;
	int stop_at;
	int stop_rc;
	int64_t ids[MAX_ROWS];
	struct node_rec nodes[MAX_ROWS];
	struct authkey_rec authkeys[MAX_ROWS];
	struct apikey_rec apikeys[MAX_ROWS];
	struct relay_rec relays[MAX_ROWS];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/coord.db", f->dir);
	if (store_open(f->path, &f->st))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	store_close(f->st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd))
		return -1;
	free(f);
	return 0;
}

static void close_store(struct fixture *f)
{
	store_close(f->st);
	f->st = NULL;
}

static void reopen(struct fixture *f)
{
	close_store(f);
	assert_int_equal(store_open(f->path, &f->st), 0);
}

/* The database path with a suffix: "-wal", "-shm". */
static void side_path(const struct fixture *f, const char *suffix, char out[PATH_MAX_LEN])
{
	snprintf(out, PATH_MAX_LEN, "%.100s%s", f->path, suffix);
}

/* Starts over with an empty database. */
static void fresh(struct fixture *f)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	char p[PATH_MAX_LEN];

	close_store(f);
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		side_path(f, suffixes[i], p);
		unlink(p);
	}
	assert_int_equal(store_open(f->path, &f->st), 0);
}

/* --- records with every field distinct and at its limits --- */

/* Full-length text, so truncation shows: prefix, the index, then letters to size - 1. */
static void fill_text(char *buf, size_t size, const char *prefix, int i)
{
	int n = snprintf(buf, size, "%s%d-", prefix, i);

	for (size_t j = (size_t)n; j + 1 < size; j++)
		buf[j] = (char)('a' + j % 26);
	buf[size - 1] = 0;
}

/* Bytes that differ per seed, with a NUL inside and a high byte at the end, so a text
 * binding or a sign slip would show. */
static void fill_bytes(uint8_t *p, size_t len, int seed)
{
	for (size_t j = 0; j < len; j++)
		p[j] = (uint8_t)(seed * 37 + (int)j * 11);
	p[0] = (uint8_t)seed;
	p[len / 2] = 0;
	p[len - 1] = 0xff;
}

static void fill_node(struct node_rec *n, int i)
{
	memset(n, 0, sizeof(*n));
	fill_text(n->name, sizeof(n->name), "node", i);
	fill_text(n->hostname, sizeof(n->hostname), "Host \"Name\" ", i);
	fill_text(n->os, sizeof(n->os), "linux ", i);
	fill_bytes(n->node_key, KEY_LEN, 8 * i + 1);
	fill_bytes(n->disco_key, KEY_LEN, 8 * i + 2);
	fill_bytes(n->machine_key, KEY_LEN, 8 * i + 3);
	fill_bytes(n->token_hash, HASH_LEN, 8 * i + 4);
	fill_bytes(n->ipv6, sizeof(n->ipv6), 8 * i + 5);
	n->ipv4 = 0x647ffffeu - (uint32_t)i;   /* 100.127.255.254 down */
	n->state = i % 3;
	n->ephemeral = i & 1;
	fill_text(n->tags, sizeof(n->tags), "tag:\xc3\xa9t\xc3\xa9,tag:b ", i);
	n->auth_key_id = i ? 1000 + i : 0;
	n->created = 1700000000 + i;
	n->key_expiry = i ? INT64_MAX - i : 0;
	n->last_seen = 1800000000 + i;
}

static void fill_authkey(struct authkey_rec *k, int i)
{
	memset(k, 0, sizeof(*k));
	fill_bytes(k->hash, HASH_LEN, 100 + i);
	fill_text(k->prefix, sizeof(k->prefix), "mvpn-auth-", i);
	k->reusable = !(i & 1);
	k->ephemeral = i & 1;
	fill_text(k->tags, sizeof(k->tags), "tag:ci,tag:x ", i);
	k->created = 1700000000 + i;
	k->expiry = i ? INT64_MAX - i : 0;
	k->uses = 3 * i;
	k->revoked = i & 1;
}

static void fill_apikey(struct apikey_rec *k, int i)
{
	memset(k, 0, sizeof(*k));
	fill_bytes(k->hash, HASH_LEN, 150 + i);
	fill_text(k->prefix, sizeof(k->prefix), "mvpn-api-", i);
	k->created = 1700000000 + i;
	k->expiry = i ? INT64_MAX - i : 0;
	k->revoked = i & 1;
}

static void fill_relay(struct relay_rec *r, int i)
{
	memset(r, 0, sizeof(*r));
	fill_text(r->name, sizeof(r->name), "relay", i);
	fill_text(r->url, sizeof(r->url), "https://relay.example.test/", i);
	fill_bytes(r->token_hash, HASH_LEN, 200 + i);
	if (i & 1) {   /* "" until the relay reports its pin (and 0 until its STUN port) */
		fill_text(r->pin, sizeof(r->pin), "sha256/", i);
		r->stun_port = 65535 - i;
	} else {       /* "" when the relay map derives it from the URL */
		fill_text(r->stun, sizeof(r->stun), "[2001:db8::", i);
	}
	r->created = 1700000000 + i;
}

static void assert_node_equal(const struct node_rec *a, const struct node_rec *b)
{
	assert_int_equal(a->id, b->id);
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->hostname, b->hostname);
	assert_string_equal(a->os, b->os);
	assert_memory_equal(a->node_key, b->node_key, KEY_LEN);
	assert_memory_equal(a->disco_key, b->disco_key, KEY_LEN);
	assert_memory_equal(a->machine_key, b->machine_key, KEY_LEN);
	assert_memory_equal(a->token_hash, b->token_hash, HASH_LEN);
	assert_int_equal(a->ipv4, b->ipv4);
	assert_memory_equal(a->ipv6, b->ipv6, sizeof(a->ipv6));
	assert_int_equal(a->state, b->state);
	assert_int_equal(a->ephemeral, b->ephemeral);
	assert_string_equal(a->tags, b->tags);
	assert_int_equal(a->auth_key_id, b->auth_key_id);
	assert_int_equal(a->created, b->created);
	assert_int_equal(a->key_expiry, b->key_expiry);
	assert_int_equal(a->last_seen, b->last_seen);
}

static void assert_authkey_equal(const struct authkey_rec *a, const struct authkey_rec *b)
{
	assert_int_equal(a->id, b->id);
	assert_memory_equal(a->hash, b->hash, HASH_LEN);
	assert_string_equal(a->prefix, b->prefix);
	assert_int_equal(a->reusable, b->reusable);
	assert_int_equal(a->ephemeral, b->ephemeral);
	assert_string_equal(a->tags, b->tags);
	assert_int_equal(a->created, b->created);
	assert_int_equal(a->expiry, b->expiry);
	assert_int_equal(a->uses, b->uses);
	assert_int_equal(a->revoked, b->revoked);
}

static void assert_apikey_equal(const struct apikey_rec *a, const struct apikey_rec *b)
{
	assert_int_equal(a->id, b->id);
	assert_memory_equal(a->hash, b->hash, HASH_LEN);
	assert_string_equal(a->prefix, b->prefix);
	assert_int_equal(a->created, b->created);
	assert_int_equal(a->expiry, b->expiry);
	assert_int_equal(a->revoked, b->revoked);
}

static void assert_relay_equal(const struct relay_rec *a, const struct relay_rec *b)
{
	assert_int_equal(a->id, b->id);
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->url, b->url);
	assert_memory_equal(a->token_hash, b->token_hash, HASH_LEN);
	assert_string_equal(a->pin, b->pin);
	assert_int_equal(a->created, b->created);
	assert_string_equal(a->stun, b->stun);
	assert_int_equal(a->stun_port, b->stun_port);
}

/* --- foreach into struct rows, one table at a time --- */

static int seen(struct rows *r, int64_t id)
{
	if (r->n == MAX_ROWS)
		return -E2BIG;
	r->ids[r->n++] = id;
	return r->n == r->stop_at ? r->stop_rc : 0;
}

static int on_node(const struct node_rec *n, void *arg)
{
	struct rows *r = arg;

	if (r->n < MAX_ROWS)
		r->nodes[r->n] = *n;
	return seen(r, n->id);
}

static int on_authkey(const struct authkey_rec *k, void *arg)
{
	struct rows *r = arg;

	if (r->n < MAX_ROWS)
		r->authkeys[r->n] = *k;
	return seen(r, k->id);
}

static int on_apikey(const struct apikey_rec *k, void *arg)
{
	struct rows *r = arg;

	if (r->n < MAX_ROWS)
		r->apikeys[r->n] = *k;
	return seen(r, k->id);
}

static int on_relay(const struct relay_rec *rr, void *arg)
{
	struct rows *r = arg;

	if (r->n < MAX_ROWS)
		r->relays[r->n] = *rr;
	return seen(r, rr->id);
}

/* Runs table t's foreach into r (which the caller zeroed); returns what it returned. */
static int list(struct store *st, enum table t, struct rows *r)
{
	switch (t) {
	case T_NODES: return store_node_foreach(st, on_node, r);
	case T_AUTHKEYS: return store_authkey_foreach(st, on_authkey, r);
	case T_APIKEYS: return store_apikey_foreach(st, on_apikey, r);
	case T_RELAYS: return store_relay_foreach(st, on_relay, r);
	}
	return -EINVAL;
}

static int count(struct store *st, enum table t)
{
	struct rows r = { 0 };

	assert_int_equal(list(st, t, &r), 0);
	return r.n;
}

/* Inserts record i of table t; returns its id. */
static int64_t add_row(struct store *st, enum table t, int i)
{
	struct node_rec n;
	struct authkey_rec ak;
	struct apikey_rec pk;
	struct relay_rec r;

	switch (t) {
	case T_NODES:
		fill_node(&n, i);
		assert_int_equal(store_node_insert(st, &n), 0);
		return n.id;
	case T_AUTHKEYS:
		fill_authkey(&ak, i);
		assert_int_equal(store_authkey_insert(st, &ak), 0);
		return ak.id;
	case T_APIKEYS:
		fill_apikey(&pk, i);
		assert_int_equal(store_apikey_insert(st, &pk), 0);
		return pk.id;
	case T_RELAYS:
		fill_relay(&r, i);
		assert_int_equal(store_relay_insert(st, &r), 0);
		return r.id;
	}
	return -1;
}

/* --- the file seen from outside the store --- */

/* Runs SQL on the file directly, as another program would. */
static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	char *err = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err ? err : "?");
	sqlite3_close(db);
}

/* The first column of the first row of sql, as text. */
static void raw_text(const char *path, const char *sql, char *out, size_t size)
{
	sqlite3 *db;
	sqlite3_stmt *s;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	snprintf(out, size, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
}

static long long raw_int(const char *path, const char *sql)
{
	char v[32];

	raw_text(path, sql, v, sizeof(v));
	return strtoll(v, NULL, 10);
}

static void assert_mode(const char *path, mode_t mode)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, mode);
}

/* Log lines go to stderr with one write(2) each; this sends them to a file meanwhile. */
struct capture {
	FILE *f;
	int saved;
};

static void capture_begin(struct capture *c)
{
	c->f = tmpfile();
	assert_non_null(c->f);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(c->f), STDERR_FILENO) >= 0);
}

static void capture_end(struct capture *c, char *out, size_t size)
{
	size_t n;

	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	rewind(c->f);
	n = fread(out, 1, size - 1, c->f);
	out[n] = 0;
	fclose(c->f);
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("\"%s\" not in \"%s\"", needle, haystack);
}

/* --- tests --- */

static void test_store_open_creates_private_wal_file(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX_LEN], mode[16];
	int v;

	assert_mode(f->path, 0600);
	/* SQLite gives the WAL and shared-memory files the database file's mode. */
	side_path(f, "-wal", p);
	assert_mode(p, 0600);
	side_path(f, "-shm", p);
	assert_mode(p, 0600);
	v = store_schema_version(f->st);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	assert_int_equal(v, 6);   /* six versions so far; bump with the next */
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), v);
	close_store(f);
	/* WAL is persistent: the header says so to any later reader. */
	raw_text(f->path, "PRAGMA journal_mode", mode, sizeof(mode));
	assert_string_equal(mode, "wal");
	/* A file someone loosened is tightened again. */
	assert_int_equal(chmod(f->path, 0644), 0);
	reopen(f);
	assert_mode(f->path, 0600);
	assert_int_equal(store_schema_version(f->st), v);
}

static void test_store_reopen_keeps_everything(void **state)
{
	struct fixture *f = *state;
	struct node_rec n[3];
	struct authkey_rec ak[2];
	struct apikey_rec pk[2];
	struct relay_rec rl[2];
	struct rows rn = { 0 }, ra = { 0 }, rp = { 0 }, rr = { 0 };
	char value[128];

	for (int i = 0; i < 3; i++) {
		fill_node(&n[i], i);
		assert_int_equal(store_node_insert(f->st, &n[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		fill_authkey(&ak[i], i);
		assert_int_equal(store_authkey_insert(f->st, &ak[i]), 0);
		fill_apikey(&pk[i], i);
		assert_int_equal(store_apikey_insert(f->st, &pk[i]), 0);
		fill_relay(&rl[i], i);
		assert_int_equal(store_relay_insert(f->st, &rl[i]), 0);
	}
	assert_int_equal(store_meta_set(f->st, "tailnet_ula", "fd0011223344"), 0);
	assert_int_equal(store_meta_set(f->st, "tailnet_domain", "corp \"x\" \xc3\xa9.internal"), 0);
	reopen(f);

	assert_int_equal(list(f->st, T_NODES, &rn), 0);
	assert_int_equal(rn.n, 3);
	for (int i = 0; i < 3; i++)
		assert_node_equal(&rn.nodes[i], &n[i]);
	assert_int_equal(list(f->st, T_AUTHKEYS, &ra), 0);
	assert_int_equal(list(f->st, T_APIKEYS, &rp), 0);
	assert_int_equal(list(f->st, T_RELAYS, &rr), 0);
	assert_int_equal(ra.n, 2);
	assert_int_equal(rp.n, 2);
	assert_int_equal(rr.n, 2);
	for (int i = 0; i < 2; i++) {
		assert_authkey_equal(&ra.authkeys[i], &ak[i]);
		assert_apikey_equal(&rp.apikeys[i], &pk[i]);
		assert_relay_equal(&rr.relays[i], &rl[i]);
	}
	assert_int_equal(store_meta_get(f->st, "tailnet_ula", value, sizeof(value)), 0);
	assert_string_equal(value, "fd0011223344");
	assert_int_equal(store_meta_get(f->st, "tailnet_domain", value, sizeof(value)), 0);
	assert_string_equal(value, "corp \"x\" \xc3\xa9.internal");
}

static void test_store_meta_get_set(void **state)
{
	struct fixture *f = *state;
	char value[64] = "untouched";

	assert_int_equal(store_meta_get(f->st, "key_expiry_days", value, sizeof(value)), -ENOENT);
	assert_string_equal(value, "untouched");
	assert_int_equal(store_meta_set(f->st, "key_expiry_days", "180"), 0);
	assert_int_equal(store_meta_set(f->st, "key_expiry_days", "90"), 0);
	assert_int_equal(store_meta_set(f->st, "empty", ""), 0);
	reopen(f);
	assert_int_equal(store_meta_get(f->st, "key_expiry_days", value, sizeof(value)), 0);
	assert_string_equal(value, "90");
	assert_int_equal(store_meta_get(f->st, "empty", value, sizeof(value)), 0);
	assert_string_equal(value, "");
}

static void test_store_ids_and_missing_rows(void **state)
{
	struct fixture *f = *state;
	struct node_rec n;
	struct authkey_rec ak;
	struct apikey_rec pk;
	struct relay_rec rl;
	int64_t a, b, c;

	a = add_row(f->st, T_NODES, 0);
	b = add_row(f->st, T_NODES, 1);
	assert_true(a > 0);
	assert_true(b > a);
	assert_int_equal(store_node_delete(f->st, b, NULL), 0);
	assert_int_equal(store_node_delete(f->st, b, NULL), -ENOENT);
	/* AUTOINCREMENT: a deleted node's id is never handed out again. */
	c = add_row(f->st, T_NODES, 2);
	assert_true(c > b);

	fill_node(&n, 3);
	n.id = b;
	assert_int_equal(store_node_update(f->st, &n), -ENOENT);
	n.id = 9999;
	assert_int_equal(store_node_update(f->st, &n), -ENOENT);
	assert_int_equal(store_node_delete(f->st, 9999, NULL), -ENOENT);
	fill_authkey(&ak, 0);
	ak.id = 9999;
	assert_int_equal(store_authkey_update(f->st, &ak), -ENOENT);
	fill_apikey(&pk, 0);
	pk.id = 9999;
	assert_int_equal(store_apikey_update(f->st, &pk), -ENOENT);
	fill_relay(&rl, 0);
	rl.id = 9999;
	assert_int_equal(store_relay_update(f->st, &rl), -ENOENT);
	assert_int_equal(store_relay_delete(f->st, 9999), -ENOENT);
	/* None of that created a row. */
	assert_int_equal(count(f->st, T_NODES), 2);
	for (enum table t = T_AUTHKEYS; t <= T_RELAYS; t++)
		assert_int_equal(count(f->st, t), 0);
}

/* A dead instance's nodes are cleared only while their rows still name it: one that
 * moved to another instance meanwhile keeps its new instance. */
static void test_store_node_offline_if_names_the_instance(void **state)
{
	struct fixture *f = *state;
	struct node_rec n, got;

	fill_node(&n, 0);
	assert_int_equal(store_node_insert(f->st, &n), 0);
	snprintf(n.online, sizeof(n.online), "c3");
	n.disconnected_at = 0;
	assert_int_equal(store_node_live(f->st, &n), 0);
	assert_int_equal(store_node_offline_if(f->st, n.id, "c2", 1234), -ENOENT);
	assert_int_equal(store_node_get(f->st, n.id, &got), 0);
	assert_string_equal(got.online, "c3");
	assert_int_equal(got.disconnected_at, 0);
	assert_int_equal(store_node_offline_if(f->st, n.id, "c3", 1234), 0);
	assert_int_equal(store_node_get(f->st, n.id, &got), 0);
	assert_string_equal(got.online, "");
	assert_int_equal(got.disconnected_at, 1234);
	assert_int_equal(store_node_offline_if(f->st, 9999, "c3", 1234), -ENOENT);
}

static void test_store_update_round_trips(void **state)
{
	struct fixture *f = *state;
	struct node_rec n;
	struct authkey_rec ak;
	struct apikey_rec pk;
	struct relay_rec rl;
	struct rows rn = { 0 }, ra = { 0 }, rp = { 0 }, rr = { 0 };

	/* A node update rewrites every field. */
	fill_node(&n, 5);
	n.id = add_row(f->st, T_NODES, 0);
	assert_int_equal(store_node_update(f->st, &n), 0);
	/* Keys change uses, revocation and expiry; relays their name, url, pin and STUN. */
	fill_authkey(&ak, 0);
	ak.id = add_row(f->st, T_AUTHKEYS, 0);
	ak.uses = 41;
	ak.revoked = 1;
	ak.expiry = 1900000000;
	assert_int_equal(store_authkey_update(f->st, &ak), 0);
	fill_apikey(&pk, 0);
	pk.id = add_row(f->st, T_APIKEYS, 0);
	pk.revoked = 1;
	pk.expiry = 1900000000;
	assert_int_equal(store_apikey_update(f->st, &pk), 0);
	fill_relay(&rl, 0);
	rl.id = add_row(f->st, T_RELAYS, 0);
	snprintf(rl.name, sizeof(rl.name), "fra");
	snprintf(rl.url, sizeof(rl.url), "https://fra.example.test");
	snprintf(rl.pin, sizeof(rl.pin), "sha256/abc");
	snprintf(rl.stun, sizeof(rl.stun), "stun.example.test:3479");
	rl.stun_port = 3480;
	assert_int_equal(store_relay_update(f->st, &rl), 0);
	reopen(f);

	assert_int_equal(list(f->st, T_NODES, &rn), 0);
	assert_int_equal(list(f->st, T_AUTHKEYS, &ra), 0);
	assert_int_equal(list(f->st, T_APIKEYS, &rp), 0);
	assert_int_equal(list(f->st, T_RELAYS, &rr), 0);
	assert_int_equal(rn.n + ra.n + rp.n + rr.n, 4);
	assert_node_equal(&rn.nodes[0], &n);
	assert_authkey_equal(&ra.authkeys[0], &ak);
	assert_apikey_equal(&rp.apikeys[0], &pk);
	assert_relay_equal(&rr.relays[0], &rl);
}

static void test_store_foreach_order_and_stop(void **state)
{
	struct fixture *f = *state;

	for (enum table t = T_NODES; t <= T_RELAYS; t++) {
		struct rows all = { 0 }, stopped = { .stop_at = 2, .stop_rc = 7 };
		struct rows failed = { .stop_at = 1, .stop_rc = -ECANCELED };

		for (int i = 0; i < 4; i++)
			add_row(f->st, t, i);
		if (t == T_NODES)
			assert_int_equal(store_node_delete(f->st, 2, NULL), 0);
		if (t == T_RELAYS)
			assert_int_equal(store_relay_delete(f->st, 2), 0);
		assert_int_equal(list(f->st, t, &all), 0);
		assert_int_equal(all.n, t == T_NODES || t == T_RELAYS ? 3 : 4);
		for (int i = 1; i < all.n; i++)
			assert_true(all.ids[i] > all.ids[i - 1]);
		/* A non-zero return stops the walk and is what foreach returns. */
		assert_int_equal(list(f->st, t, &stopped), 7);
		assert_int_equal(stopped.n, 2);
		assert_int_equal(list(f->st, t, &failed), -ECANCELED);
		assert_int_equal(failed.n, 1);
	}
}

/* Each UNIQUE column of nodes, by place in the record. */
#define NODE_FIELD(m) { #m, offsetof(struct node_rec, m), sizeof(((struct node_rec *)0)->m) }
static const struct {
	const char *name;
	size_t off, len;
} node_unique[] = {
	NODE_FIELD(name), NODE_FIELD(node_key), NODE_FIELD(machine_key), NODE_FIELD(ipv4),
	NODE_FIELD(ipv6),
};

static void test_store_node_unique_columns(void **state)
{
	struct fixture *f = *state;
	struct node_rec first, second, clash;
	struct rows r = { 0 };

	fill_node(&first, 0);
	assert_int_equal(store_node_insert(f->st, &first), 0);
	fill_node(&second, 1);
	assert_int_equal(store_node_insert(f->st, &second), 0);
	for (size_t i = 0; i < sizeof(node_unique) / sizeof(node_unique[0]); i++) {
		print_message("clash on %s\n", node_unique[i].name);
		/* A new node with that one field taken... */
		fill_node(&clash, 2);
		memcpy((char *)&clash + node_unique[i].off, (char *)&first + node_unique[i].off,
		       node_unique[i].len);
		assert_int_equal(store_node_insert(f->st, &clash), -EEXIST);
		/* ...and an existing node changed to take it. */
		clash = second;
		memcpy((char *)&clash + node_unique[i].off, (char *)&first + node_unique[i].off,
		       node_unique[i].len);
		assert_int_equal(store_node_update(f->st, &clash), -EEXIST);
	}
	/* The store still works and nothing above was written. */
	add_row(f->st, T_NODES, 2);
	reopen(f);
	assert_int_equal(list(f->st, T_NODES, &r), 0);
	assert_int_equal(r.n, 3);
	assert_node_equal(&r.nodes[1], &second);
}

static void test_store_key_and_relay_unique_columns(void **state)
{
	struct fixture *f = *state;
	struct authkey_rec ak, ak0;
	struct apikey_rec pk, pk0;
	struct relay_rec rl, other;

	for (enum table t = T_AUTHKEYS; t <= T_RELAYS; t++)
		add_row(f->st, t, 0);
	fill_authkey(&ak0, 0);
	fill_authkey(&ak, 1);
	memcpy(ak.hash, ak0.hash, HASH_LEN);
	assert_int_equal(store_authkey_insert(f->st, &ak), -EEXIST);
	fill_apikey(&pk0, 0);
	fill_apikey(&pk, 1);
	memcpy(pk.hash, pk0.hash, HASH_LEN);
	assert_int_equal(store_apikey_insert(f->st, &pk), -EEXIST);
	fill_relay(&other, 0);
	fill_relay(&rl, 1);
	memcpy(rl.name, other.name, sizeof(rl.name));
	assert_int_equal(store_relay_insert(f->st, &rl), -EEXIST);
	fill_relay(&rl, 1);
	memcpy(rl.token_hash, other.token_hash, HASH_LEN);
	assert_int_equal(store_relay_insert(f->st, &rl), -EEXIST);
	/* Renaming a relay onto another's name. */
	fill_relay(&rl, 1);
	assert_int_equal(store_relay_insert(f->st, &rl), 0);
	memcpy(rl.name, other.name, sizeof(rl.name));
	assert_int_equal(store_relay_update(f->st, &rl), -EEXIST);

	for (enum table t = T_AUTHKEYS; t <= T_APIKEYS; t++)
		add_row(f->st, t, 1);
	reopen(f);
	for (enum table t = T_AUTHKEYS; t <= T_RELAYS; t++)
		assert_int_equal(count(f->st, t), 2);
}

/* One row in each table and a setting, inside whatever transaction is open. */
static void add_one_of_each(struct store *st)
{
	for (enum table t = T_NODES; t <= T_RELAYS; t++)
		add_row(st, t, 0);
	assert_int_equal(store_meta_set(st, "tailnet_domain", "example.internal"), 0);
}

static void assert_tables_hold(struct store *st, int rows)
{
	char value[64];

	for (enum table t = T_NODES; t <= T_RELAYS; t++)
		assert_int_equal(count(st, t), rows);
	assert_int_equal(store_meta_get(st, "tailnet_domain", value, sizeof(value)),
			 rows ? 0 : -ENOENT);
}

static void test_store_rollback_leaves_nothing(void **state)
{
	struct fixture *f = *state;

	store_rollback(f->st);   /* none open: harmless */
	assert_int_equal(store_begin(f->st), 0);
	add_one_of_each(f->st);
	assert_tables_hold(f->st, 1);   /* the transaction sees its own writes */
	assert_true(store_begin(f->st) < 0);   /* nesting is refused, the outer one stays */
	store_rollback(f->st);
	assert_tables_hold(f->st, 0);
	reopen(f);
	assert_tables_hold(f->st, 0);
}

static void test_store_commit_persists(void **state)
{
	struct fixture *f = *state;
	struct node_rec dup;

	assert_int_equal(store_begin(f->st), 0);
	add_one_of_each(f->st);
	/* A constraint failure undoes its statement, not the transaction. */
	fill_node(&dup, 0);
	assert_int_equal(store_node_insert(f->st, &dup), -EEXIST);
	assert_int_equal(store_commit(f->st), 0);
	assert_true(store_commit(f->st) < 0);   /* nothing open any more */
	reopen(f);
	assert_tables_hold(f->st, 1);
}

static void test_store_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char sql[64];
	int v = store_schema_version(f->st);

	add_row(f->st, T_NODES, 0);
	close_store(f);
	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v + 1);
	raw_exec(f->path, sql);
	assert_int_equal(store_open(f->path, &st), -EPROTO);
	assert_null(st);
	/* Refusing touched nothing: the newer coord still finds its version and data. */
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), v + 1);
	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v);
	raw_exec(f->path, sql);
	reopen(f);
	assert_int_equal(count(f->st, T_NODES), 1);
}

/* The nodes table of versions 1 and 2 (names and addresses NOT NULL). */
#define V1_NODES_TABLE \
	"CREATE TABLE nodes (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE," \
	" hostname TEXT NOT NULL, os TEXT NOT NULL, node_key BLOB NOT NULL UNIQUE," \
	" disco_key BLOB NOT NULL, machine_key BLOB NOT NULL UNIQUE, token_hash BLOB NOT NULL," \
	" ipv4 INTEGER NOT NULL UNIQUE, ipv6 BLOB NOT NULL UNIQUE, state INTEGER NOT NULL," \
	" ephemeral INTEGER NOT NULL, tags TEXT NOT NULL, auth_key_id INTEGER NOT NULL," \
	" created INTEGER NOT NULL, key_expiry INTEGER NOT NULL, last_seen INTEGER NOT NULL);"

/* The schema as version 1 wrote it (a frozen copy: the store's own may only grow). */
static const char v1_schema[] =
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	V1_NODES_TABLE
	"CREATE TABLE authkeys (id INTEGER PRIMARY KEY AUTOINCREMENT, hash BLOB NOT NULL UNIQUE,"
	" prefix TEXT NOT NULL, reusable INTEGER NOT NULL, ephemeral INTEGER NOT NULL,"
	" tags TEXT NOT NULL, created INTEGER NOT NULL, expiry INTEGER NOT NULL,"
	" uses INTEGER NOT NULL, revoked INTEGER NOT NULL);"
	"CREATE TABLE apikeys (id INTEGER PRIMARY KEY AUTOINCREMENT, hash BLOB NOT NULL UNIQUE,"
	" prefix TEXT NOT NULL, created INTEGER NOT NULL, expiry INTEGER NOT NULL,"
	" revoked INTEGER NOT NULL);"
	"CREATE TABLE relays (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
	" url TEXT NOT NULL, token_hash BLOB NOT NULL UNIQUE, pin TEXT NOT NULL,"
	" created INTEGER NOT NULL);"
	"INSERT INTO relays(name, url, token_hash, pin, created) VALUES('fra',"
	" 'https://fra.example.test', zeroblob(32), 'sha256:ab', 1700000000);"
	"PRAGMA user_version=1;";

static void test_store_migrates_v1(void **state)
{
	struct fixture *f = *state;
	struct rows r = { 0 };
	struct relay_rec rl;
	char p[PATH_MAX_LEN];

	close_store(f);
	unlink(f->path);
	side_path(f, "-wal", p);
	unlink(p);
	side_path(f, "-shm", p);
	unlink(p);
	raw_exec(f->path, v1_schema);
	assert_int_equal(store_open(f->path, &f->st), 0);
	assert_int_equal(store_schema_version(f->st), STORE_SCHEMA_VERSION);
	/* The old relay keeps everything and has no STUN address or port of its own yet. */
	assert_int_equal(list(f->st, T_RELAYS, &r), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.relays[0].name, "fra");
	assert_string_equal(r.relays[0].url, "https://fra.example.test");
	assert_string_equal(r.relays[0].pin, "sha256:ab");
	assert_int_equal(r.relays[0].created, 1700000000);
	assert_string_equal(r.relays[0].stun, "");
	assert_int_equal(r.relays[0].stun_port, 0);
	/* The new columns are written and read like the old ones. */
	rl = r.relays[0];
	snprintf(rl.stun, sizeof(rl.stun), "[2001:db8::7]:3479");
	rl.stun_port = 3480;
	assert_int_equal(store_relay_update(f->st, &rl), 0);
	add_row(f->st, T_RELAYS, 1);
	reopen(f);
	assert_int_equal(store_schema_version(f->st), STORE_SCHEMA_VERSION);
	memset(&r, 0, sizeof(r));
	assert_int_equal(list(f->st, T_RELAYS, &r), 0);
	assert_int_equal(r.n, 2);
	assert_relay_equal(&r.relays[0], &rl);
	assert_int_equal(count(f->st, T_NODES), 0);
	add_row(f->st, T_NODES, 0);
	assert_int_equal(count(f->st, T_NODES), 1);
}

/* Nodes waiting for their first approval hold no name and no address: any number of
 * them fit (the columns are NULL), they read back empty, and they get both later. */
static void test_store_pending_nodes_hold_no_name_or_address(void **state)
{
	struct fixture *f = *state;
	struct node_rec n[3];
	struct rows r = { 0 };

	for (int i = 0; i < 3; i++) {
		fill_node(&n[i], i + 1);
		n[i].name[0] = 0;
		n[i].ipv4 = 0;
		memset(n[i].ipv6, 0, sizeof(n[i].ipv6));
		assert_int_equal(store_node_insert(f->st, &n[i]), 0);
	}
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM nodes WHERE name IS NULL AND"
				 " ipv4 IS NULL AND ipv6 IS NULL"), 3);
	reopen(f);
	assert_int_equal(list(f->st, T_NODES, &r), 0);
	assert_int_equal(r.n, 3);
	for (int i = 0; i < 3; i++)
		assert_node_equal(&r.nodes[i], &n[i]);
	/* Approved: a name and addresses like any node, still unique. */
	fill_node(&n[0], 1);
	n[0].id = r.nodes[0].id;
	assert_int_equal(store_node_update(f->st, &n[0]), 0);
	fill_node(&n[1], 1);
	n[1].id = r.nodes[1].id;
	memcpy(n[1].node_key, r.nodes[1].node_key, KEY_LEN);
	memcpy(n[1].machine_key, r.nodes[1].machine_key, KEY_LEN);
	assert_int_equal(store_node_update(f->st, &n[1]), -EEXIST);   /* node 1's name, addresses */
	reopen(f);
	memset(&r, 0, sizeof(r));
	assert_int_equal(list(f->st, T_NODES, &r), 0);
	assert_node_equal(&r.nodes[0], &n[0]);
	assert_string_equal(r.nodes[1].name, "");
}

/* A version 2 file (names and addresses NOT NULL): its nodes move over whole, and the
 * id of a node deleted before the migration is not handed out again. */
static void test_store_migrates_v2_keeps_ids(void **state)
{
	struct fixture *f = *state;
	struct node_rec a, b, c;
	struct rows r = { 0 };
	int64_t ida, idb;

	fill_node(&a, 1);
	fill_node(&b, 2);
	assert_int_equal(store_node_insert(f->st, &a), 0);
	assert_int_equal(store_node_insert(f->st, &b), 0);
	ida = a.id;
	idb = b.id;
	assert_int_equal(store_node_delete(f->st, idb, NULL), 0);
	close_store(f);
	/* Back to the version 2 table, as an older coord left it. */
	raw_exec(f->path, "CREATE TABLE old AS SELECT id, name, hostname, os, node_key, disco_key,"
		 " machine_key, token_hash, ipv4, ipv6, state, ephemeral, tags, auth_key_id, created,"
		 " key_expiry, last_seen FROM nodes; DROP TABLE nodes;"
		 V1_NODES_TABLE
		 "INSERT INTO nodes SELECT * FROM old; DROP TABLE old;"
		 "UPDATE sqlite_sequence SET seq=7 WHERE name='nodes';"
		 "PRAGMA user_version=2;");
	assert_int_equal(store_open(f->path, &f->st), 0);
	assert_int_equal(store_schema_version(f->st), STORE_SCHEMA_VERSION);
	assert_int_equal(list(f->st, T_NODES, &r), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.nodes[0].id, ida);
	assert_node_equal(&r.nodes[0], &a);
	fill_node(&c, 3);
	assert_int_equal(store_node_insert(f->st, &c), 0);
	assert_int_equal(c.id, 8);
}

/* Runs table t's foreach expecting -EIO and a log line holding each of want[]. */
static void assert_foreach_eio(struct store *st, enum table t, const char *const want[])
{
	struct capture c;
	struct rows r = { 0 };
	char log[4096];
	int rc;

	capture_begin(&c);
	rc = list(st, t, &r);
	capture_end(&c, log, sizeof(log));
	assert_int_equal(rc, -EIO);
	for (int i = 0; i < r.n; i++)
		assert_int_not_equal(r.ids[i], 2);   /* the bad row never reaches the callback */
	for (; *want; want++)
		assert_contains(log, *want);
}

static void test_store_corrupt_blob_is_eio(void **state)
{
	struct fixture *f = *state;
	static const struct {
		enum table t;
		const char *table;
		const char *sql;   /* spoils row 2 */
	} cases[] = {
		{ T_NODES, "nodes", "UPDATE nodes SET node_key=x'0102' WHERE id=2" },
		{ T_NODES, "nodes", "UPDATE nodes SET ipv6=zeroblob(32) WHERE id=2" },
		{ T_NODES, "nodes", "UPDATE nodes SET token_hash='short' WHERE id=2" },
		{ T_AUTHKEYS, "authkeys", "UPDATE authkeys SET hash=x'' WHERE id=2" },
		{ T_APIKEYS, "apikeys", "UPDATE apikeys SET hash=zeroblob(31) WHERE id=2" },
		{ T_RELAYS, "relays", "UPDATE relays SET token_hash=zeroblob(33) WHERE id=2" },
		{ T_RELAYS, "relays", "UPDATE relays SET stun_port=65536 WHERE id=2" },
	};
	char table[32];
	const char *want[] = { "corrupt row", table, "id=2", NULL };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("%s\n", cases[i].sql);
		fresh(f);
		for (int j = 0; j < 3; j++)
			add_row(f->st, cases[i].t, j);
		close_store(f);
		raw_exec(f->path, cases[i].sql);
		reopen(f);
		snprintf(table, sizeof(table), "table=%s", cases[i].table);
		assert_foreach_eio(f->st, cases[i].t, want);
		/* The store keeps working after the error. */
		add_row(f->st, cases[i].t == T_NODES ? T_RELAYS : T_NODES, 0);
	}
}

/* Overwrites the b-tree page of a table with garbage, as a bad disk would. */
static void spoil_root_page(struct fixture *f, const char *table)
{
	char sql[128], junk[65536];
	long long page, size;
	int fd;

	snprintf(sql, sizeof(sql), "SELECT rootpage FROM sqlite_master WHERE name='%s'", table);
	page = raw_int(f->path, sql);
	size = raw_int(f->path, "PRAGMA page_size");
	assert_true(page > 1 && size > 0 && size <= (long long)sizeof(junk));
	memset(junk, 0xa5, sizeof(junk));
	fd = open(f->path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, junk, (size_t)size, (page - 1) * size), size);
	close(fd);
}

static void test_store_corrupt_page_is_eio(void **state)
{
	struct fixture *f = *state;
	static const char *const want[] = { "store error", "node_foreach", NULL };
	char p[PATH_MAX_LEN], value[64];
	struct capture c;
	char log[4096];
	int rc;

	for (int i = 0; i < 3; i++)
		add_row(f->st, T_NODES, i);
	add_row(f->st, T_RELAYS, 0);
	assert_int_equal(store_meta_set(f->st, "tailnet_domain", "example.internal"), 0);
	close_store(f);
	/* A clean close checkpoints into the main file, so the pages below are the live ones. */
	side_path(f, "-wal", p);
	assert_int_equal(access(p, F_OK), -1);
	spoil_root_page(f, "nodes");
	spoil_root_page(f, "meta");
	reopen(f);
	/* An unreadable table is an error, not an empty or shortened one... */
	assert_foreach_eio(f->st, T_NODES, want);
	/* ...and an unreadable setting is not a missing one (coord would make a new one). */
	capture_begin(&c);
	rc = store_meta_get(f->st, "tailnet_domain", value, sizeof(value));
	capture_end(&c, log, sizeof(log));
	assert_int_equal(rc, -EIO);
	assert_contains(log, "meta_get");
	assert_int_equal(count(f->st, T_RELAYS), 1);
}

static void test_store_not_a_database(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char path[PATH_MAX_LEN], junk[4096], back[sizeof(junk)], log[4096];
	struct capture c;
	int fd, rc;

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = "not a database\n"[i % 15];
	snprintf(path, sizeof(path), "%s/junk.db", f->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);

	capture_begin(&c);
	rc = store_open(path, &st);
	capture_end(&c, log, sizeof(log));
	assert_int_equal(rc, -EIO);
	assert_null(st);
	assert_contains(log, "not a database");
	/* The file is left as it was. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, back, sizeof(back)), sizeof(back));
	close(fd);
	assert_memory_equal(back, junk, sizeof(junk));
}

static void test_store_open_missing_dir(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char path[PATH_MAX_LEN];

	snprintf(path, sizeof(path), "%s/absent/coord.db", f->dir);
	assert_int_equal(store_open(path, &st), -ENOENT);
	assert_null(st);
}

enum death { DIE_EXIT, DIE_SIGKILL };

/* A child process commits node 0, then begins a transaction and inserts node 1, and dies
 * without store_close. Node 0 must be there after a reopen and node 1 must not. */
static void check_crash(struct fixture *f, enum death how)
{
	struct node_rec want;
	struct rows r = { 0 };
	char p[PATH_MAX_LEN];
	pid_t pid;
	int status;

	close_store(f);   /* SQLite connections must not cross a fork */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *st;
		struct node_rec n;

		fill_node(&n, 0);
		if (store_open(f->path, &st) || store_node_insert(st, &n))
			_exit(2);
		fill_node(&n, 1);
		if (store_begin(st) || store_node_insert(st, &n))
			_exit(3);
		if (how == DIE_SIGKILL)
			raise(SIGKILL);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (how == DIE_SIGKILL)
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	else
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The child did not checkpoint: what it committed lives only in the WAL. */
	side_path(f, "-wal", p);
	assert_int_equal(access(p, F_OK), 0);

	reopen(f);
	assert_int_equal(list(f->st, T_NODES, &r), 0);
	assert_int_equal(r.n, 1);
	fill_node(&want, 0);
	want.id = r.ids[0];
	assert_true(want.id > 0);
	assert_node_equal(&r.nodes[0], &want);
}

static void test_store_survives_exit_without_close(void **state)
{
	check_crash(*state, DIE_EXIT);
}

static void test_store_survives_sigkill(void **state)
{
	check_crash(*state, DIE_SIGKILL);
}

/* --- blocklist copies (schema 6): several instances share what one fetched --- */

struct copy_got {
	int n, had_body;
	int64_t id, version;
	uint8_t sum[32];
	char meta[64];
	uint8_t body[64];
	size_t len;
};

static int copy_seen(const struct store_bl_copy *c, void *arg)
{
	struct copy_got *g = arg;

	g->n++;
	g->id = c->id;
	g->version = c->version;
	memcpy(g->sum, c->sum, sizeof(g->sum));
	snprintf(g->meta, sizeof(g->meta), "%s", c->meta);
	g->had_body = c->body != NULL;
	g->len = c->len;
	if (c->body && c->len <= sizeof(g->body))
		memcpy(g->body, c->body, c->len);
	return 0;
}

static int status_seen(const struct dns_rec *r, void *arg)
{
	*(struct dns_rec *)arg = *r;
	return 0;
}

static int count_change(const struct store_change *c, void *arg)
{
	int *n = arg;

	assert_int_equal(c->kind, STORE_CH_DNS + STORE_DNS_BLOCKLISTS);
	(*n)++;
	return 0;
}

static int feed_count(struct store *st, int64_t after)
{
	int n = 0;

	assert_int_equal(store_feed_read(st, after, 100, count_change, &n), 0);
	return n;
}

static void test_store_blocklist_copies(void **state)
{
	struct fixture *f = *state;
	struct dns_rec src = { .table = STORE_DNS_BLOCKLISTS, .name = "/lists/hosts", .value = "", .tag = "" };
	struct dns_rec stat = { 0 }, got;
	static const uint8_t body[] = "0.0.0.0 ads.example\n\0\xff";
	struct store_bl_copy c = { .version = 1, .meta = "{\"version\":1}", .body = body, .len = sizeof(body) };
	struct copy_got g = { 0 };
	int64_t head = 0;

	assert_int_equal(store_dns_insert(f->st, &src), 0);
	assert_int_equal(store_feed_head(f->st, &head), 0);
	stat.id = c.id = src.id;
	stat.fetched = 1700000000;
	stat.version = 1;
	stat.lines = 7;
	stat.unusable = 1;
	memset(c.sum, 0xab, sizeof(c.sum));
	/* The status and the copy in one transaction, one feed change. */
	assert_int_equal(store_dns_blocklist_copy_put(f->st, &stat, &c), 0);
	assert_int_equal(feed_count(f->st, head), 1);
	assert_int_equal(store_dns_get(f->st, STORE_DNS_BLOCKLISTS, src.id, status_seen, &got), 0);
	assert_int_equal(got.fetched, 1700000000);
	assert_int_equal(got.version, 1);
	assert_int_equal(got.lines, 7);
	/* Heads: no body, its length; the copy whole, byte for byte (a NUL, a high byte). */
	assert_int_equal(store_dns_blocklist_copy_heads(f->st, copy_seen, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.had_body, 0);
	assert_int_equal(g.len, sizeof(body));
	assert_int_equal(g.version, 1);
	assert_memory_equal(g.sum, c.sum, sizeof(c.sum));
	assert_string_equal(g.meta, "{\"version\":1}");
	memset(&g, 0, sizeof(g));
	assert_int_equal(store_dns_blocklist_copy_get(f->st, src.id, copy_seen, &g), 0);
	assert_int_equal(g.had_body, 1);
	assert_int_equal(g.len, sizeof(body));
	assert_memory_equal(g.body, body, sizeof(body));
	/* Without a body only the meta of a copy with that sum changes. */
	c.body = NULL;
	c.meta = "{\"other sum\":1}";
	memset(c.sum, 0xcd, sizeof(c.sum));
	assert_int_equal(store_dns_blocklist_copy_put(f->st, &stat, &c), 0);
	memset(c.sum, 0xab, sizeof(c.sum));
	c.meta = "{\"refetched\":1}";
	stat.fetched++;
	assert_int_equal(store_dns_blocklist_copy_put(f->st, &stat, &c), 0);
	memset(&g, 0, sizeof(g));
	assert_int_equal(store_dns_blocklist_copy_get(f->st, src.id, copy_seen, &g), 0);
	assert_string_equal(g.meta, "{\"refetched\":1}");
	assert_memory_equal(g.body, body, sizeof(body));
	/* A new version replaces it, and survives a reopen. */
	c.body = (const uint8_t *)"new";
	c.len = 3;
	c.version = 2;
	memset(c.sum, 0x11, sizeof(c.sum));
	assert_int_equal(store_dns_blocklist_copy_put(f->st, &stat, &c), 0);
	reopen(f);
	memset(&g, 0, sizeof(g));
	assert_int_equal(store_dns_blocklist_copy_get(f->st, src.id, copy_seen, &g), 0);
	assert_int_equal(g.version, 2);
	assert_int_equal(g.len, 3);
	assert_memory_equal(g.body, "new", 3);
	/* A source that is gone stores nothing; mismatched ids are refused. */
	stat.id = c.id = src.id + 100;
	assert_int_equal(store_dns_blocklist_copy_put(f->st, &stat, &c), -ENOENT);
	assert_int_equal(store_dns_blocklist_copy_get(f->st, src.id + 100, copy_seen, &g), -ENOENT);
	c.id = src.id;
	assert_int_equal(store_dns_blocklist_copy_put(f->st, &stat, &c), -EINVAL);
	/* Removing the source removes its copy. */
	assert_int_equal(store_dns_delete(f->st, STORE_DNS_BLOCKLISTS, src.id), 0);
	assert_int_equal(store_dns_blocklist_copy_get(f->st, src.id, copy_seen, &g), -ENOENT);
	memset(&g, 0, sizeof(g));
	assert_int_equal(store_dns_blocklist_copy_heads(f->st, copy_seen, &g), 0);
	assert_int_equal(g.n, 0);
}

#define STORE_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		STORE_TEST(test_store_open_creates_private_wal_file),
		STORE_TEST(test_store_reopen_keeps_everything),
		STORE_TEST(test_store_meta_get_set),
		STORE_TEST(test_store_ids_and_missing_rows),
		STORE_TEST(test_store_node_offline_if_names_the_instance),
		STORE_TEST(test_store_update_round_trips),
		STORE_TEST(test_store_foreach_order_and_stop),
		STORE_TEST(test_store_node_unique_columns),
		STORE_TEST(test_store_key_and_relay_unique_columns),
		STORE_TEST(test_store_rollback_leaves_nothing),
		STORE_TEST(test_store_commit_persists),
		STORE_TEST(test_store_migrates_v1),
		STORE_TEST(test_store_pending_nodes_hold_no_name_or_address),
		STORE_TEST(test_store_migrates_v2_keeps_ids),
		STORE_TEST(test_store_newer_schema_refused),
		STORE_TEST(test_store_corrupt_blob_is_eio),
		STORE_TEST(test_store_corrupt_page_is_eio),
		STORE_TEST(test_store_not_a_database),
		STORE_TEST(test_store_open_missing_dir),
		STORE_TEST(test_store_survives_exit_without_close),
		STORE_TEST(test_store_survives_sigkill),
		STORE_TEST(test_store_blocklist_copies),
	};

	/* A umask like 077 would hide a store that leaves its file world-readable. */
	umask(022);
	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
