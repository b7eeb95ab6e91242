/* migrate.c - `coord migrate --from DIR --to postgresql://...`: copies an SQLite state
 * (coord stopped) into an empty PostgreSQL database in one transaction, ids kept, then
 * verifies it: per table the row count and a checksum of the rows as each database
 * returns them (SHA-256 of every row, sorted, hashed again: the two databases need not
 * order text alike). The state dir's certificate goes along (nodes keep their pin). The
 * feed, leases and instances are the running instances' own and start empty. Opening
 * the source brings an older SQLite file to the current schema first. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "coord.h"
#include "store_db.h"
#include "meshvpn/args.h"
#include "meshvpn/file.h"
#include "meshvpn/log.h"

static const char *const data_tables[] = {
	"meta", "nodes", "authkeys", "apikeys", "relays", "dns_upstreams", "dns_routes",
	"dns_blocklists", "dns_rules", "dns_records", NULL,
};

static int has_id(const char *table)
{
	return strcmp(table, "meta") != 0;
}

struct copy {
	struct store *to;
	const char *table;
	int64_t rows;
};

/* A meta row each store keeps its own: its schema version (in meta, where SQLite has
 * none) and its feed epoch (the target's change feed numbers start again, so versions
 * nodes hold of the source mean nothing there). */
static int meta_own(const struct store_row *row)
{
	return row->n > 0 && row->c[0].type == SV_TEXT &&
	       (!strcmp(row->c[0].p, "schema_version") || !strcmp(row->c[0].p, "feed_epoch"));
}

static int copy_row(const struct store_row *row, void *arg)
{
	struct copy *c = arg;

	if (!strcmp(c->table, "meta") && meta_own(row))
		return 0;
	c->rows++;
	return store_row_copy(c->to, c->table, row);
}

struct sum {
	uint8_t (*h)[32];
	size_t n, cap;
};

static int sum_row(const struct store_row *row, void *arg)
{
	struct sum *s = arg;
	crypto_hash_sha256_state st;

	if (meta_own(row) ||
	    (row->n > 0 && row->c[0].type == SV_TEXT && !strcmp(row->c[0].p, "tls_identity")))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		void *p = realloc(s->h, cap * 32);

		if (!p)
			return -ENOMEM;
		s->h = p;
		s->cap = cap;
	}
	crypto_hash_sha256_init(&st);
	for (int i = 0; i < row->n; i++) {
		const struct store_val *v = &row->c[i];
		uint8_t tag = (uint8_t)v->type;
		uint64_t len = v->type == SV_INT ? 8 : v->len;

		crypto_hash_sha256_update(&st, &tag, 1);
		crypto_hash_sha256_update(&st, (const uint8_t *)&len, sizeof(len));
		if (v->type == SV_INT)
			crypto_hash_sha256_update(&st, (const uint8_t *)&v->i, 8);
		else if (v->type != SV_NULL)
			crypto_hash_sha256_update(&st, v->p, v->len);
	}
	crypto_hash_sha256_final(&st, s->h[s->n++]);
	return 0;
}

static int cmp32(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

/* The table's row count and checksum, as hex. */
static int table_sum(struct store *st, const char *table, int64_t *rows, char hex[65])
{
	struct sum s = { 0 };
	uint8_t out[32];
	int rc = store_table_foreach(st, table, sum_row, &s);

	if (!rc) {
		qsort(s.h, s.n, 32, cmp32);
		crypto_hash_sha256(out, s.n ? s.h[0] : out, s.n * 32);
		sodium_bin2hex(hex, 65, out, 32);
		*rows = (int64_t)s.n;
	}
	free(s.h);
	return rc;
}

static int target_empty(struct store *to)
{
	for (int i = 0; data_tables[i]; i++) {
		int64_t n = 0;
		int rc = store_table_count(to, data_tables[i], &n);

		if (rc)
			return rc;
		if (!strcmp(data_tables[i], "meta") ? n > 1 : n > 0) {
			fprintf(stderr, "coord migrate: the target database already holds a tailnet (%s has"
				" %lld rows); migrate only into an empty one\n", data_tables[i], (long long)n);
			return -EEXIST;
		}
	}
	return 0;
}

/* The state dir's self-signed certificate, which every node pins, goes with the state:
 * whichever instance starts first then serves it (coord_tls_identity). */
static int copy_tls_identity(struct store *to, const char *dir)
{
	static char pem[65536];
	char path[4096];
	size_t at = 0;
	FILE *f;

	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, i ? "tls.key" : "tls.crt");
		f = fopen(path, "re");
		if (!f)
			return errno == ENOENT ? 0 : -errno;   /* --tls-cert users have none */
		at += fread(pem + at, 1, sizeof(pem) - 1 - at, f);
		fclose(f);
	}
	pem[at] = 0;
	printf("copied the TLS identity (%s/tls.crt): nodes keep their pin\n", dir);
	return store_meta_set(to, "tls_identity", pem);
}

static int copy_all(struct store *from, struct store *to, const char *dir)
{
	int rc = store_begin(to);

	for (int i = 0; !rc && data_tables[i]; i++) {
		struct copy c = { to, data_tables[i], 0 };

		rc = store_table_foreach(from, data_tables[i], copy_row, &c);
		if (!rc && has_id(data_tables[i]))
			rc = store_table_bump_ids(to, data_tables[i]);
		if (!rc)
			printf("copied %-15s %6lld rows\n", data_tables[i], (long long)c.rows);
	}
	if (!rc)
		rc = copy_tls_identity(to, dir);
	if (!rc)
		rc = store_commit(to);
	if (rc)
		store_rollback(to);
	return rc;
}

static int verify_all(struct store *from, struct store *to)
{
	int bad = 0;

	for (int i = 0; data_tables[i]; i++) {
		char a[65], b[65];
		int64_t na = 0, nb = 0;

		if (table_sum(from, data_tables[i], &na, a) || table_sum(to, data_tables[i], &nb, b))
			return -EIO;
		int same = na == nb && !strcmp(a, b);

		printf("verify %-15s rows %6lld / %6lld  sha256 %.16s / %.16s  %s\n", data_tables[i],
		       (long long)na, (long long)nb, a, b, same ? "ok" : "MISMATCH");
		bad += !same;
	}
	return bad ? -EPROTO : 0;
}

int coord_migrate_main(int argc, char **argv)
{
	const char *from_dir = NULL, *to = NULL;
	const struct arg_opt opts[] = {
		{ "from", &from_dir, NULL, 0 }, { "to", &to, NULL, 0 }, { NULL, NULL, NULL, 0 },
	};
	struct store *src = NULL, *dst = NULL;
	char *words[2], err[256], path[4096];
	int n, lock, rc;

	n = args_parse(argc, argv, opts, words, 2, err, sizeof(err));
	if (n != 0 || !from_dir || !to || !store_spec_is_remote(to)) {
		fprintf(stderr, "coord migrate: %s\nusage: coord migrate --from STATE-DIR --to postgresql://...\n",
			n < 0 ? err : "needs --from DIR and --to a postgresql:// URI");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	/* The source must not change while it is copied: no coord may serve it. */
	lock = file_lock_dir(from_dir, "coord.lock");
	if (lock < 0) {
		fprintf(stderr, "coord migrate: %s\n", lock == -EBUSY ? "a coord is serving that state"
			" dir: stop it first" : strerror(-lock));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/coord.db", from_dir);
	rc = access(path, R_OK) ? -ENOENT : store_open(path, &src);
	if (rc)
		fprintf(stderr, "coord migrate: cannot open %s: %s\n", path, strerror(-rc));
	if (!rc && (rc = store_open(to, &dst)))
		fprintf(stderr, "coord migrate: cannot open the target database: %s\n", strerror(-rc));
	if (!rc)
		rc = target_empty(dst);
	if (!rc && (rc = copy_all(src, dst, from_dir)))
		fprintf(stderr, "coord migrate: copy failed (%s); the target is left as it was\n",
			strerror(-rc));
	if (!rc && (rc = verify_all(src, dst)))
		fprintf(stderr, "coord migrate: the copy does not match the source\n");
	if (!rc)
		printf("migrated %s to the database; start coord with --store and the same URI\n", path);
	store_close(dst);
	store_close(src);
	close(lock);
	return rc ? 1 : 0;
}
