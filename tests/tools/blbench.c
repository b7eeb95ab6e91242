/* blbench.c - lib/blocklist.c on a generated list: N domains (default 1,000,000; half
 * `0.0.0.0 d` hosts lines, half `||d^` rules, deterministic), then compile time, blob size,
 * load time, the loaded list's memory (its own count and the resident growth of loading a
 * fresh copy of the blob) and lookups per second for blocked names (hosts names exactly,
 * subdomains under the `||d^` ones) and for names not in the list. With --write FILE the
 * generated source is written out too, for other resolvers in scripts/bench. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "meshvpn/args.h"
#include "meshvpn/blocklist.h"

struct rng {
	uint64_t s;
};

/* splitmix64: the same list on every run and machine. */
static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A name like the lists' own: one or two labels of 4-14 letters and digits under one of a
 * few TLDs. The index makes names from one seed distinct. */
static int gen_name(struct rng *r, uint64_t i, char *out, size_t size)
{
	static const char *const tld[] = { "com", "net", "org", "io", "de", "info", "xyz" };
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	char label[2][16];
	int labels = 1 + (int)(rng_next(r) % 2);

	for (int l = 0; l < labels; l++) {
		int len = 4 + (int)(rng_next(r) % 11);

		for (int k = 0; k < len; k++)
			label[l][k] = alnum[rng_next(r) % 36];
		label[l][len] = '\0';
	}
	if (labels == 2)
		return snprintf(out, size, "%s.%s%" PRIu64 ".%s", label[0], label[1], i,
				tld[rng_next(r) % 7]);
	return snprintf(out, size, "%s%" PRIu64 ".%s", label[0], i, tld[rng_next(r) % 7]);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * sysconf(_SC_PAGESIZE);
}

/* The source text: even lines hosts entries, odd ones `||d^`. */
static char *gen_source(uint64_t n, size_t *len)
{
	size_t cap = (size_t)n * 48 + 64, o = 0;
	char *text = malloc(cap), name[96];
	struct rng r = { 1 };

	if (!text)
		return NULL;
	o += (size_t)snprintf(text, cap, "# blbench %" PRIu64 " domains\n", n);
	for (uint64_t i = 0; i < n; i++) {
		gen_name(&r, i, name, sizeof(name));
		o += (size_t)snprintf(text + o, cap - o, i % 2 ? "||%s^\n" : "0.0.0.0 %s\n", name);
	}
	*len = o;
	return text;
}

/* Queries: blocked ones regenerate the list's names (a subdomain for the `||d^` half),
 * the others come from another seed. */
static char **gen_queries(uint64_t n, uint64_t count, int blocked)
{
	char **q = calloc((size_t)count, sizeof(*q)), name[96], full[128];
	struct rng r = { blocked ? 1 : 2 };

	if (!q)
		return NULL;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t idx = blocked ? i % n : n + i;

		if (blocked && idx == 0)
			r.s = 1;   /* the list again from its start */
		gen_name(&r, idx, name, sizeof(name));
		/* .nx: no listed name ends so, so none of the others can be blocked */
		snprintf(full, sizeof(full), !blocked ? "%s.nx" : idx % 2 ? "www.%s" : "%s", name);
		q[i] = strdup(full);
		if (!q[i])
			exit(1);
	}
	return q;
}

static double lookups(const struct blocklist *bl, char **q, uint64_t count, int want,
		      uint64_t *wrong)
{
	double t0 = now_s();

	*wrong = 0;
	for (uint64_t i = 0; i < count; i++)
		if ((blocklist_match(bl, q[i], strlen(q[i])) == BLOCKLIST_BLOCKED) != want)
			(*wrong)++;
	return (double)count / (now_s() - t0);
}

static void free_queries(char **q, uint64_t count)
{
	for (uint64_t i = 0; q && i < count; i++)
		free(q[i]);
	free(q);
}

static int write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");
	int rc = f && fwrite(text, 1, len, f) == len ? 0 : -EIO;

	if (f && fclose(f))
		rc = -EIO;
	return rc;
}

int main(int argc, char **argv)
{
	static const uint8_t key[BLOCKLIST_KEY_LEN] = "blbench-key-0001";
	const char *n_arg = NULL, *q_arg = NULL, *out_path = NULL;
	const struct arg_opt opts[] = {
		{ "domains", &n_arg, NULL, 'n' }, { "queries", &q_arg, NULL, 'q' },
		{ "write", &out_path, NULL, 0 }, { NULL, NULL, NULL, 0 },
	};
	uint64_t n = 1000000, nq = 1000000, wrong_b, wrong_n;
	struct blocklist_builder *b;
	struct blocklist_stats st;
	struct blocklist_info info;
	struct blocklist *bl;
	uint8_t *blob, *copy;
	size_t text_len, blob_len;
	char err[128], *text, **qb, **qn;
	double t0, t_compile, t_load, qps_b, qps_n;
	long rss0, rss1;

	if (args_parse(argc - 1, argv + 1, opts, NULL, 0, err, sizeof(err)) ||
	    (n_arg && !(n = strtoull(n_arg, NULL, 10))) || (q_arg && !(nq = strtoull(q_arg, NULL, 10)))) {
		fprintf(stderr, "usage: blbench [--domains N] [--queries Q] [--write FILE]\n");
		return 2;
	}
	text = gen_source(n, &text_len);
	if (!text || (out_path && write_file(out_path, text, text_len))) {
		fprintf(stderr, "blbench: cannot generate the list\n");
		return 1;
	}
	t0 = now_s();
	b = blocklist_builder_new(key, 0);
	if (!b || blocklist_builder_add_source(b, (uint8_t *)text, text_len, &st) ||
	    blocklist_builder_compile(b, 1, &blob, &blob_len)) {
		fprintf(stderr, "blbench: compile failed\n");
		return 1;
	}
	t_compile = now_s() - t0;
	blocklist_builder_free(b);
	free(text);
	malloc_trim(0);

	/* A fresh copy, as a node has after its fetch: its pages and the index are the list. */
	rss0 = rss_bytes();
	copy = malloc(blob_len);
	if (!copy)
		return 1;
	memcpy(copy, blob, blob_len);
	t0 = now_s();
	if (blocklist_load(copy, blob_len, BLOCKLIST_LOAD_OWN, &bl)) {
		fprintf(stderr, "blbench: load failed\n");
		return 1;
	}
	t_load = now_s() - t0;
	rss1 = rss_bytes();
	free(blob);
	blocklist_get_info(bl, &info);

	qb = gen_queries(n, nq, 1);
	qn = gen_queries(n, nq, 0);
	if (!qb || !qn)
		return 1;
	qps_b = lookups(bl, qb, nq, 1, &wrong_b);
	qps_n = lookups(bl, qn, nq, 0, &wrong_n);
	printf("domains: %" PRIu64 " (source %zu bytes, %" PRIu64 " lines, %" PRIu64 " taken)\n",
	       n, text_len, st.lines, st.domains);
	printf("compile: %.3f s\n", t_compile);
	printf("blob: %zu bytes (%.2f MB)\n", blob_len, (double)blob_len / 1e6);
	printf("load: %.4f s\n", t_load);
	printf("memory: %.2f MB (list's own count), %.2f MB resident growth\n",
	       (double)info.memory / 1e6, (double)(rss1 - rss0) / 1e6);
	printf("lookups blocked: %.0f/s (%" PRIu64 " not blocked)\n", qps_b, wrong_b);
	printf("lookups not listed: %.0f/s (%" PRIu64 " blocked)\n", qps_n, wrong_n);
	free_queries(qb, nq);
	free_queries(qn, nq);
	blocklist_free(bl);
	return wrong_b || wrong_n ? 1 : 0;
}
