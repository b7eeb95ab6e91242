/* test_store_pg.c - the store on PostgreSQL (a real server: MESHVPN_TEST_PG is its libpq
 * URI, started by tests/e2e/ha.sh; skipped without it): schema creation, exact round
 * trips, unique columns, a stale write refused, the change feed gapless and in commit
 * order with writers in several processes, once-only leases, a serialisation failure
 * (SERIALIZABLE, as CockroachDB runs) retried until it commits, and a blocklist copy
 * stored by one instance and read by another. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "store_db.h"

static const char *uri(void)
{
	return getenv("MESHVPN_TEST_PG");
}

/* Every test starts from an empty schema. */
static int setup(void **state)
{
	struct store *st;
	char cmd[1024];

	(void)state;
	if (!uri())
		return 0;
	snprintf(cmd, sizeof(cmd), "psql -q -X '%s' -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;'"
		 " >/dev/null 2>&1", uri());
	if (system(cmd))
		return -1;
	if (store_open(uri(), &st))
		return -1;
	store_close(st);
	return 0;
}

static struct store *open_as(const char *instance)
{
	struct store *st = NULL;

	assert_int_equal(store_open(uri(), &st), 0);
	store_set_instance(st, instance);
	return st;
}

static void fill_node(struct node_rec *n, int i)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "node%d", i);
	snprintf(n->hostname, sizeof(n->hostname), "host-%d", i);
	snprintf(n->os, sizeof(n->os), "linux");
	memset(n->node_key, i, KEY_LEN);
	memset(n->disco_key, i + 100, KEY_LEN);
	memset(n->machine_key, i + 50, KEY_LEN);
	memset(n->token_hash, 0xee, HASH_LEN);
	n->ipv4 = 0x64400000u + (uint32_t)i;
	n->ipv6[0] = 0xfd;
	n->ipv6[15] = (uint8_t)i;
	n->state = NODE_APPROVED;
	snprintf(n->tags, sizeof(n->tags), "tag:a,tag:b");
	n->created = 1700000000 + i;
	n->key_expiry = 1800000000;
	n->last_seen = 1700000100;
	snprintf(n->endpoints, sizeof(n->endpoints), "192.0.2.%d:41641", i);
}

static void test_pg_schema_and_round_trip(void **state)
{
	struct store *st;
	struct node_rec a, b, got;

	(void)state;
	if (!uri())
		skip();
	st = open_as("i1");
	assert_string_equal(store_engine_name(st), "postgresql");
	assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
	fill_node(&a, 1);
	assert_int_equal(store_node_insert(st, &a), 0);
	assert_true(a.id > 0);
	assert_int_equal(store_node_get(st, a.id, &got), 0);
	assert_memory_equal(&got, &a, sizeof(a));
	/* A pending node: no name, no addresses (NULL), any number of them. */
	fill_node(&b, 2);
	memset(b.name, 0, sizeof(b.name));
	b.ipv4 = 0;
	memset(b.ipv6, 0, 16);
	assert_int_equal(store_node_insert(st, &b), 0);
	assert_int_equal(store_node_get(st, b.id, &got), 0);
	assert_memory_equal(&got, &b, sizeof(b));
	/* Unique columns hold in the database. */
	fill_node(&b, 3);
	snprintf(b.name, sizeof(b.name), "node1");
	assert_int_equal(store_node_insert(st, &b), -EEXIST);
	store_close(st);
	/* Reopened: the schema is not made again, the rows are all there. */
	st = open_as("i1");
	assert_int_equal(store_node_get(st, a.id, &got), 0);
	assert_string_equal(got.name, "node1");
	assert_int_equal(store_node_delete(st, a.id, NULL), 0);
	assert_int_equal(store_node_get(st, a.id, &got), -ENOENT);
	store_close(st);
}

/* Two instances: a write from a copy read before the other's change is refused. */
static void test_pg_stale_write_refused(void **state)
{
	struct store *s1, *s2;
	struct node_rec a, copy1, copy2;

	(void)state;
	if (!uri())
		skip();
	s1 = open_as("i1");
	s2 = open_as("i2");
	fill_node(&a, 1);
	assert_int_equal(store_node_insert(s1, &a), 0);
	assert_int_equal(store_node_get(s1, a.id, &copy1), 0);
	assert_int_equal(store_node_get(s2, a.id, &copy2), 0);
	copy2.state = NODE_REJECTED;
	assert_int_equal(store_node_update(s2, &copy2), 0);
	snprintf(copy1.tags, sizeof(copy1.tags), "tag:x");
	assert_int_equal(store_node_update(s1, &copy1), -ESTALE);
	/* The live fields are the node's own: written whatever the rev. */
	snprintf(copy1.endpoints, sizeof(copy1.endpoints), "198.51.100.1:1");
	assert_int_equal(store_node_live(s1, &copy1), 0);
	assert_int_equal(store_node_get(s2, a.id, &copy2), 0);
	assert_int_equal(copy2.state, NODE_REJECTED);
	assert_string_equal(copy2.endpoints, "198.51.100.1:1");
	store_close(s1);
	store_close(s2);
}

struct feed_seen {
	int n;
	int64_t seq[4096];
	char instance[4096][STORE_NAME_LEN];
};

static int collect(const struct store_change *c, void *arg)
{
	struct feed_seen *f = arg;

	if (f->n < 4096) {
		f->seq[f->n] = c->seq;
		snprintf(f->instance[f->n], sizeof(f->instance[0]), "%s", c->instance);
		f->n++;
	}
	return 0;
}

/* Writers in four processes: one feed number per transaction, gapless, in order. */
static void test_pg_feed_gapless_with_concurrent_writers(void **state)
{
	enum { PROCS = 4, EACH = 40 };
	static struct feed_seen f;
	struct store *st;
	int64_t head;

	(void)state;
	if (!uri())
		skip();
	for (int p = 0; p < PROCS; p++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			char name[8], key[32];
			struct store *c;

			snprintf(name, sizeof(name), "w%d", p);
			if (store_open(uri(), &c))
				_exit(1);
			store_set_instance(c, name);
			for (int i = 0; i < EACH; i++) {
				snprintf(key, sizeof(key), "k%d", i % 3);   /* contended rows too */
				if (store_meta_set(c, key, name))
					_exit(2);
			}
			store_close(c);
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++) {
		int status;

		assert_true(wait(&status) > 0);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	st = open_as("reader");
	memset(&f, 0, sizeof(f));
	assert_int_equal(store_feed_read(st, 0, 10000, collect, &f), 0);
	assert_int_equal(store_feed_head(st, &head), 0);
	assert_int_equal(f.n, PROCS * EACH);
	assert_int_equal(head, PROCS * EACH);
	for (int i = 0; i < f.n; i++)
		assert_int_equal(f.seq[i], i + 1);
	/* Reading from the middle gives exactly the rest. */
	memset(&f, 0, sizeof(f));
	assert_int_equal(store_feed_read(st, 100, 10000, collect, &f), 0);
	assert_int_equal(f.n, PROCS * EACH - 100);
	assert_int_equal(f.seq[0], 101);
	store_close(st);
}

static void test_pg_lease_once(void **state)
{
	struct store *s1, *s2;

	(void)state;
	if (!uri())
		skip();
	s1 = open_as("i1");
	s2 = open_as("i2");
	assert_int_equal(store_lease_claim(s1, "expiry", 1000, 15), 1);
	assert_int_equal(store_lease_claim(s2, "expiry", 1001, 15), 0);
	assert_int_equal(store_lease_claim(s1, "expiry", 1005, 15), 1);   /* renewed */
	assert_int_equal(store_lease_claim(s2, "expiry", 1019, 15), 0);
	assert_int_equal(store_lease_claim(s2, "expiry", 1021, 15), 1);   /* ran out: taken */
	assert_int_equal(store_lease_claim(s1, "expiry", 1022, 15), 0);
	assert_int_equal(store_lease_release(s2, "expiry"), 0);
	assert_int_equal(store_lease_claim(s1, "expiry", 1023, 15), 1);
	store_close(s1);
	store_close(s2);
}

/* Until one session waits on a lock (b behind a's feed head), at most 10 s. */
static int wait_for_lock_waiter(void)
{
	char cmd[1200], out[16];

	snprintf(cmd, sizeof(cmd), "psql -X -tA '%s' -c \"SELECT count(*) FROM pg_stat_activity"
		 " WHERE wait_event_type = 'Lock'\"", uri());
	for (int i = 0; i < 1000; i++) {
		FILE *p = popen(cmd, "r");
		int got = p && fgets(out, sizeof(out), p) && atoi(out) > 0;

		if (p)
			pclose(p);
		if (got)
			return 1;
		usleep(10000);
	}
	return 0;
}

/* Under SERIALIZABLE (CockroachDB's only level) two transactions on the same rows: the
 * one that waits fails with 40001 and the store replays it until it commits. */
static void test_pg_serialisation_failure_retried(void **state)
{
	char spec[1024];
	struct store *a, *check;
	int status, fd[2];
	char v[32];
	pid_t pid;

	(void)state;
	if (!uri())
		skip();
	snprintf(spec, sizeof(spec), "%s&options=-c%%20default_transaction_isolation%%3Dserializable", uri());
	assert_int_equal(store_open(spec, &a), 0);
	store_set_instance(a, "a");
	assert_int_equal(pipe(fd), 0);
	assert_int_equal(store_begin(a), 0);
	assert_int_equal(store_meta_set(a, "shared", "from-a"), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *b;

		close(fd[0]);
		if (store_open(spec, &b))
			_exit(1);
		store_set_instance(b, "b");
		if (write(fd[1], "x", 1) != 1)
			_exit(2);
		/* Waits for a's lock on the feed head, then fails to serialise: replayed. */
		if (store_meta_set(b, "shared", "from-b"))
			_exit(3);
		store_close(b);
		_exit(0);
	}
	close(fd[1]);
	assert_int_equal(read(fd[0], v, 1), 1);
	assert_true(wait_for_lock_waiter());
	assert_int_equal(store_commit(a), 0);
	assert_true(waitpid(pid, &status, 0) == pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	check = open_as("check");
	assert_int_equal(store_meta_get(check, "shared", v, sizeof(v)), 0);
	assert_string_equal(v, "from-b");
	int64_t head = 0;
	assert_int_equal(store_feed_head(check, &head), 0);
	assert_int_equal(head, 2);
	store_close(check);
	store_close(a);
	close(fd[0]);
}

struct pg_copy {
	int n;
	int64_t version;
	size_t len;
	int same;          /* the body is the 4 MB pattern */
	char meta[32];
};

static void pattern(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + (i >> 12));
}

static int pg_copy_seen(const struct store_bl_copy *c, void *arg)
{
	struct pg_copy *g = arg;
	uint8_t *want;

	g->n++;
	g->version = c->version;
	g->len = c->len;
	snprintf(g->meta, sizeof(g->meta), "%s", c->meta);
	if (c->body && (want = malloc(c->len))) {
		pattern(want, c->len);
		g->same = !memcmp(want, c->body, c->len);
		free(want);
	}
	return 0;
}

static int pg_change_seen(const struct store_change *c, void *arg)
{
	struct store_change *last = arg;

	*last = *c;
	return 0;
}

/* The jobs holder stores a 4 MB copy with the source's status; another instance sees
 * one feed change from it and reads the same bytes; the copy goes with its source. */
static void test_pg_blocklist_copy_shared(void **state)
{
	enum { LEN = 4 << 20 };
	struct store *a, *b;
	struct dns_rec src = { .table = STORE_DNS_BLOCKLISTS, .name = "https://lists.example/x",
			       .value = "", .tag = "" };
	struct dns_rec stat = { .fetched = 1700000000, .version = 3, .lines = 9 };
	struct store_bl_copy c = { .version = 3, .meta = "{\"version\":3}", .len = LEN };
	struct store_change last = { 0 };
	struct pg_copy g = { 0 };
	uint8_t *body;
	int64_t head = 0;

	(void)state;
	if (!uri())
		skip();
	body = malloc(LEN);
	assert_non_null(body);
	pattern(body, LEN);
	c.body = body;
	memset(c.sum, 0x5a, sizeof(c.sum));
	a = open_as("holder");
	b = open_as("other");
	assert_int_equal(store_dns_insert(a, &src), 0);
	assert_int_equal(store_feed_head(b, &head), 0);
	stat.id = c.id = src.id;
	assert_int_equal(store_dns_blocklist_copy_put(a, &stat, &c), 0);
	assert_int_equal(store_feed_read(b, head, 100, pg_change_seen, &last), 0);
	assert_int_equal(last.seq, head + 1);
	assert_int_equal(last.kind, STORE_CH_DNS + STORE_DNS_BLOCKLISTS);
	assert_int_equal(last.ref, src.id);
	assert_string_equal(last.instance, "holder");
	assert_int_equal(store_dns_blocklist_copy_heads(b, pg_copy_seen, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.len, LEN);
	assert_int_equal(g.same, 0);   /* heads carry no body */
	memset(&g, 0, sizeof(g));
	assert_int_equal(store_dns_blocklist_copy_get(b, src.id, pg_copy_seen, &g), 0);
	assert_int_equal(g.version, 3);
	assert_int_equal(g.len, LEN);
	assert_int_equal(g.same, 1);
	assert_string_equal(g.meta, "{\"version\":3}");
	/* A refetch of the same bytes: only the meta, the body kept. */
	c.body = NULL;
	c.meta = "{\"refetched\":1}";
	assert_int_equal(store_dns_blocklist_copy_put(a, &stat, &c), 0);
	memset(&g, 0, sizeof(g));
	assert_int_equal(store_dns_blocklist_copy_get(b, src.id, pg_copy_seen, &g), 0);
	assert_string_equal(g.meta, "{\"refetched\":1}");
	assert_int_equal(g.same, 1);
	assert_int_equal(store_dns_delete(b, STORE_DNS_BLOCKLISTS, src.id), 0);
	assert_int_equal(store_dns_blocklist_copy_get(a, src.id, pg_copy_seen, &g), -ENOENT);
	store_close(a);
	store_close(b);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_pg_schema_and_round_trip, setup),
		cmocka_unit_test_setup(test_pg_stale_write_refused, setup),
		cmocka_unit_test_setup(test_pg_feed_gapless_with_concurrent_writers, setup),
		cmocka_unit_test_setup(test_pg_lease_once, setup),
		cmocka_unit_test_setup(test_pg_serialisation_failure_retried, setup),
		cmocka_unit_test_setup(test_pg_blocklist_copy_shared, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
