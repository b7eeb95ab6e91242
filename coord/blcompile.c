/* blcompile.c - one compiled blocklist per distinct tag combination of the running
 * nodes (dns.c's view key: a node gets the untagged sources and rules and those of its
 * tags). A combination is compiled again only when its inputs (bl_fingerprint: its
 * sources' sums and its allow / block rules) changed; the compile runs in libuv's
 * threadpool and its blob is swapped in on the loop, with a serial that only grows
 * (STATE/blocklists/serial; with several instances one derived from the inputs, the same
 * on each), kept in memory and in STATE/blocklists/combo-*.blob so a restart serves the
 * same versions. A new version goes out as a dns delta; nodes fetch
 * it with GET /v1/dns/blocklist?v=THEIRS (304 when it is theirs). Manual allow and block
 * rules mean the domain and every name under it; exceptions win (blocklist.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium.h>

#include "blocklists.h"
#include "meshvpn/file.h"
#include "meshvpn/log.h"
#include "meshvpn/metrics.h"

#define READ_CHUNK 65536
#define COMBO_MAGIC "MVBLCOMB"

int bl_applies(const char *key, const char *tag)
{
	return !tag[0] || coord_dns_tag_in(key, tag);
}

struct fp_walk {
	struct coord_blocklists *b;
	const char *key;
	crypto_generichash_state *h;
	char kind;
	/* with a job: what to compile */
	struct bl_job *job;
};

struct bl_job {
	char key[STORE_TAGS_LEN];
	uint8_t inputs[BL_SUM_LEN];
	uint64_t serial;
	char **paths;
	size_t n_paths;
	char **rules;            /* flags byte, then the name */
	size_t n_rules;
	char blob_path[4200];
	/* out */
	uint8_t *blob;
	size_t len;
	int rc, truncated;
	double ms;
};

static int strv_add(char ***v, size_t *n, const char *s, char first)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));
	size_t len = strlen(s);

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = malloc(len + 2);
	if (!nv[*n])
		return -ENOMEM;
	nv[*n][0] = first;
	memcpy(nv[*n] + 1, s, len + 1);
	(*n)++;
	return 0;
}

static int fp_source(const struct coord_dns_entry *e, void *arg)
{
	struct fp_walk *w = arg;
	struct bl_source *s = bl_source_find(w->b, e->id);
	char path[4200];

	if (!s || !s->meta.version || !bl_applies(w->key, e->tag))
		return 0;
	crypto_generichash_update(w->h, (const uint8_t *)&e->id, sizeof(e->id));
	crypto_generichash_update(w->h, s->meta.sum, sizeof(s->meta.sum));
	if (!w->job)
		return 0;
	bl_source_path(w->b, e->id, "raw", path, sizeof(path));
	return strv_add(&w->job->paths, &w->job->n_paths, path, 0) ? -ENOMEM : 0;
}

static int fp_rule(const struct coord_dns_entry *e, void *arg)
{
	struct fp_walk *w = arg;
	char flags = (char)(BLOCKLIST_SUBDOMAINS | (w->kind == 'a' ? BLOCKLIST_EXCEPTION : 0));

	if (!bl_applies(w->key, e->tag))
		return 0;
	crypto_generichash_update(w->h, (const uint8_t *)&w->kind, 1);
	crypto_generichash_update(w->h, (const uint8_t *)e->name, strlen(e->name) + 1);
	return w->job ? strv_add(&w->job->rules, &w->job->n_rules, e->name, flags) : 0;
}

/* The inputs' sum and, with job, the lists of what to compile. */
static int fingerprint(struct coord_blocklists *b, const char *key, uint8_t out[BL_SUM_LEN],
		       struct bl_job *job)
{
	crypto_generichash_state h;
	struct fp_walk w = { b, key, &h, 'b', job };
	int rc;

	crypto_generichash_init(&h, NULL, 0, BL_SUM_LEN);
	crypto_generichash_update(&h, (const uint8_t *)"mvbl1", 5);
	rc = coord_dns_foreach(b->co, COORD_DNS_BLOCKLIST, fp_source, &w);
	if (!rc)
		rc = coord_dns_foreach(b->co, COORD_DNS_BLOCK, fp_rule, &w);
	w.kind = 'a';
	if (!rc)
		rc = coord_dns_foreach(b->co, COORD_DNS_ALLOW, fp_rule, &w);
	crypto_generichash_final(&h, out, BL_SUM_LEN);
	return rc;
}

void bl_fingerprint(struct coord *co, const char *key, uint8_t out[BL_SUM_LEN])
{
	if (co->bl)
		fingerprint(co->bl, key, out, NULL);
	else
		memset(out, 0, BL_SUM_LEN);
}

/* --- the compile, in the threadpool --- */

static int add_file(struct blocklist_builder *bld, const char *path, uint8_t *buf)
{
	struct blocklist_parser ps;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return 0;   /* removed meanwhile: the next compile is on its way */
	blocklist_parser_init(&ps, blocklist_builder_rule, bld);
	while (!rc && (n = read(fd, buf, READ_CHUNK)) > 0)
		rc = blocklist_parser_feed(&ps, buf, (size_t)n);
	if (!rc)
		rc = blocklist_parser_end(&ps);
	close(fd);
	return rc;
}

static void job_compile(struct bl_job *j)
{
	uint8_t key[BLOCKLIST_KEY_LEN], *buf = malloc(READ_CHUNK);
	struct blocklist_builder *bld;
	uint64_t t0 = uv_hrtime();
	int rc = 0;

	randombytes_buf(key, sizeof(key));
	bld = buf ? blocklist_builder_new(key, 0) : NULL;
	if (!bld) {
		free(buf);
		j->rc = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < j->n_rules && !rc; i++)
		rc = blocklist_builder_add(bld, j->rules[i] + 1, strlen(j->rules[i] + 1),
					   (unsigned char)j->rules[i][0]);
	for (size_t i = 0; i < j->n_paths && !rc; i++)
		rc = add_file(bld, j->paths[i] + 1, buf);
	if (rc == -E2BIG || rc == -EINVAL) {
		j->truncated = rc == -E2BIG;   /* what fitted is taken */
		rc = 0;
	}
	if (!rc)
		rc = blocklist_builder_compile(bld, j->serial, &j->blob, &j->len);
	blocklist_builder_free(bld);
	free(buf);
	j->ms = (double)(uv_hrtime() - t0) / 1e6;
	j->rc = rc;
}

/* The blob on disk: magic, the inputs, the key's length and the key, then the blob. */
static void job_save(struct bl_job *j)
{
	uint32_t klen = (uint32_t)strlen(j->key);
	struct iovec iov[4] = {
		{ COMBO_MAGIC, 8 }, { j->inputs, BL_SUM_LEN }, { &klen, 4 }, { j->key, klen },
	};
	struct iovec all[5] = { iov[0], iov[1], iov[2], iov[3], { j->blob, j->len } };

	if (file_replace(j->blob_path, all, 5, 0600, NULL))
		log_warn("compiled blocklist not saved", "path=%s", j->blob_path);
}

struct bl_compile {
	uv_work_t work;
	struct coord_blocklists *b;
	struct bl_job *jobs;
	size_t n;
	char serial_path[4200];
	uint64_t serial;
};

static void compile_work(uv_work_t *w)
{
	struct bl_compile *c = w->data;
	char text[32];
	struct iovec iov = { text, 0 };

	for (size_t i = 0; i < c->n && !c->b->stopping; i++) {
		job_compile(&c->jobs[i]);
		if (!c->jobs[i].rc)
			job_save(&c->jobs[i]);
	}
	iov.iov_len = (size_t)snprintf(text, sizeof(text), "%" PRIu64 "\n", c->serial);
	if (file_replace(c->serial_path, &iov, 1, 0600, NULL))
		log_warn("blocklist serial not saved", "path=%s", c->serial_path);
}

static void job_free(struct bl_job *j)
{
	for (size_t i = 0; i < j->n_paths; i++)
		free(j->paths[i]);
	for (size_t i = 0; i < j->n_rules; i++)
		free(j->rules[i]);
	free(j->paths);
	free(j->rules);
	free(j->blob);
}

static struct bl_combo *combo_find(struct coord_blocklists *b, const char *key)
{
	for (struct bl_combo *c = b->combos; c; c = c->next)
		if (!strcmp(c->key, key))
			return c;
	return NULL;
}

static void compile_after(uv_work_t *w, int status)
{
	struct bl_compile *c = w->data;
	struct coord_blocklists *b = c->b;
	int swapped = 0;

	for (size_t i = 0; i < c->n; i++) {
		struct bl_job *j = &c->jobs[i];
		struct bl_combo *cb = b->stopping ? NULL : combo_find(b, j->key);
		if (cb && !j->rc && j->blob) {
			free(cb->blob);
			cb->blob = j->blob;
			cb->len = j->len;
			cb->serial = j->serial;
			memcpy(cb->inputs, j->inputs, BL_SUM_LEN);
			j->blob = NULL;
			swapped = 1;
			b->compiles++;
			b->last_compile_ms = j->ms;
			log_info("blocklist compiled", "tags=\"%s\" version=%" PRIu64 " bytes=%zu"
				 " sources=%zu manual_rules=%zu ms=%.1f%s", j->key, j->serial, cb->len,
				 j->n_paths, j->n_rules, j->ms, j->truncated ? " truncated=1" : "");
		} else if (!b->stopping && j->rc) {
			b->compile_failures++;
			log_error("blocklist compile failed", "tags=\"%s\" err=\"%s\"", j->key,
				  strerror(-j->rc));
		}
		job_free(j);
	}
	free(c->jobs);
	free(c);
	if (!b->stopping) {
		b->compiling = 0;
		if (swapped)
			coord_dns_changed(b->co);   /* the new versions to every node */
		if (b->dirty)
			bl_compile_schedule(b);
	}
	bl_job_done(b);
}

/* --- combinations --- */

static struct bl_combo *combo_get(struct coord_blocklists *b, const char *key)
{
	struct bl_combo *c = combo_find(b, key);

	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	snprintf(c->key, sizeof(c->key), "%s", key);
	c->next = b->combos;
	b->combos = c;
	return c;
}

static void combo_path(struct coord_blocklists *b, const char *key, char *out, size_t size)
{
	uint8_t h[16];
	char x[33];
	static const char d[] = "0123456789abcdef";

	crypto_generichash(h, sizeof(h), (const uint8_t *)key, strlen(key), NULL, 0);
	for (int i = 0; i < 16; i++) {
		x[2 * i] = d[h[i] >> 4];
		x[2 * i + 1] = d[h[i] & 15];
	}
	x[32] = 0;
	snprintf(out, size, "%s/combo-%s.blob", b->dir, x);
}

/* Only the combinations some running node has, or was asked for since the last prune
 * (a view being built), and the untagged one stay. */
static void combos_prune(struct coord_blocklists *b)
{
	char key[STORE_TAGS_LEN], path[4200];

	for (struct bl_combo *c = b->combos; c; c = c->next) {
		c->used = !c->key[0] || c->asked;
		c->asked = 0;
	}
	for (struct node *n = b->co->nodes_head; n; n = n->next) {
		struct bl_combo *c;
		if (coord_node_state(n) != NODE_STATUS_RUNNING)
			continue;
		coord_dns_node_key(b->co, n, key, sizeof(key));
		c = combo_get(b, key);
		if (c)
			c->used = 1;
	}
	for (struct bl_combo **pp = &b->combos; *pp; ) {
		struct bl_combo *c = *pp;
		if (c->used) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		combo_path(b, c->key, path, sizeof(path));
		unlink(path);
		free(c->blob);
		free(c);
	}
}

/* The version of a new list. With one instance a serial that only grows; with several,
 * every instance compiles the same inputs to the same version, so a node moving to
 * another instance neither refetches an equal list nor keeps a different one under the
 * number it has: the version is then 52 bits of the inputs' sum (never 0). */
static uint64_t serial_of(const uint8_t in[BL_SUM_LEN])
{
	uint64_t v = 0;

	for (int i = 0; i < 7; i++)
		v = v << 8 | in[i];
	return (v & ((1ull << 52) - 1)) | 1ull << 52;
}

static uint64_t serial_next(struct coord_blocklists *b, const uint8_t in[BL_SUM_LEN])
{
	uint64_t v;

	if (!b->co->remote)
		return ++b->serial;
	v = serial_of(in);
	if (v > b->serial)
		b->serial = v;   /* a later switch back to one instance hands out above it */
	return v;
}

/* Compiled before from other inputs, or (several instances) under a serial of the one
 * instance scheme, as a state migrated from SQLite has. */
static int combo_stale(const struct coord_blocklists *b, const struct bl_combo *c,
		       const uint8_t in[BL_SUM_LEN])
{
	return !c->serial || memcmp(in, c->inputs, BL_SUM_LEN) ||
	       (b->co->remote && c->serial != serial_of(in));
}

static int jobs_add(struct bl_compile *cp, struct bl_combo *c, const uint8_t in[BL_SUM_LEN])
{
	struct coord_blocklists *b = cp->b;
	struct bl_job *nj = realloc(cp->jobs, (cp->n + 1) * sizeof(*nj)), *j;

	if (!nj)
		return -ENOMEM;
	cp->jobs = nj;
	j = &nj[cp->n++];
	memset(j, 0, sizeof(*j));
	snprintf(j->key, sizeof(j->key), "%s", c->key);
	memcpy(j->inputs, in, BL_SUM_LEN);
	j->serial = serial_next(b, in);
	combo_path(b, c->key, j->blob_path, sizeof(j->blob_path));
	return fingerprint(b, c->key, j->inputs, j);
}

static void compile_start(uv_timer_t *t)
{
	struct coord_blocklists *b = t->data;
	struct bl_compile *cp;
	uint8_t in[BL_SUM_LEN];

	if (b->compiling || b->stopping)
		return;
	b->dirty = 0;
	combos_prune(b);
	cp = calloc(1, sizeof(*cp));
	if (!cp)
		return;
	cp->b = b;
	for (struct bl_combo *c = b->combos; c; c = c->next) {
		fingerprint(b, c->key, in, NULL);
		if (combo_stale(b, c, in) && jobs_add(cp, c, in))
			log_warn("blocklist compile: out of memory", "tags=\"%s\"", c->key);
	}
	cp->serial = b->serial;
	snprintf(cp->serial_path, sizeof(cp->serial_path), "%s/serial", b->dir);
	cp->work.data = cp;
	if (!cp->n || uv_queue_work(b->co->loop, &cp->work, compile_work, compile_after)) {
		for (size_t i = 0; i < cp->n; i++)
			job_free(&cp->jobs[i]);
		free(cp->jobs);
		free(cp);
		return;
	}
	b->compiling = 1;
	b->inflight++;
}

void bl_compile_schedule(struct coord_blocklists *b)
{
	if (b->stopping)
		return;
	b->dirty = 1;
	if (!b->compiling)
		uv_timer_start(&b->timer, compile_start, BL_COMPILE_DELAY_MS, 0);
}

/* --- what was compiled before a restart --- */

static void combo_load_file(struct coord_blocklists *b, const char *name)
{
	char path[4400], key[STORE_TAGS_LEN];
	struct blocklist_info info;
	struct blocklist *bl;
	struct bl_combo *c;
	uint8_t *p = NULL;
	struct stat sb;
	uint32_t klen;
	size_t off;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", b->dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) || sb.st_size < 44 || sb.st_size > (off_t)(1u << 30) ||
	    !(p = malloc((size_t)sb.st_size)) || read(fd, p, (size_t)sb.st_size) != sb.st_size)
		goto out;
	memcpy(&klen, p + 8 + BL_SUM_LEN, 4);
	off = 12 + BL_SUM_LEN + klen;
	if (memcmp(p, COMBO_MAGIC, 8) || klen >= sizeof(key) || off > (size_t)sb.st_size ||
	    blocklist_load(p + off, (size_t)sb.st_size - off, 0, &bl))
		goto out;
	blocklist_get_info(bl, &info);
	blocklist_free(bl);
	memcpy(key, p + 12 + BL_SUM_LEN, klen);
	key[klen] = 0;
	c = combo_get(b, key);
	if (c && !c->blob) {
		memcpy(c->inputs, p + 8, BL_SUM_LEN);
		c->serial = info.serial;
		c->len = (size_t)sb.st_size - off;
		c->blob = malloc(c->len);
		if (c->blob)
			memcpy(c->blob, p + off, c->len);
		else
			c->serial = 0;
	}
out:
	if (fd >= 0)
		close(fd);
	free(p);
}

void bl_combos_load(struct coord_blocklists *b)
{
	char path[4200], text[32] = "";
	struct dirent *de;
	ssize_t n;
	DIR *d;
	int fd;

	snprintf(path, sizeof(path), "%s/serial", b->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, text, sizeof(text) - 1);
		text[n > 0 ? n : 0] = 0;
		b->serial = strtoull(text, NULL, 10);
		close(fd);
	}
	d = opendir(b->dir);
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, "combo-", 6))
			combo_load_file(b, de->d_name);
	if (d)
		closedir(d);
	for (struct bl_combo *c = b->combos; c; c = c->next)
		if (c->serial > b->serial)
			b->serial = c->serial;   /* a serial file lost: never hand one out twice */
}

void bl_combos_free(struct coord_blocklists *b)
{
	while (b->combos) {
		struct bl_combo *c = b->combos;
		b->combos = c->next;
		free(c->blob);
		free(c);
	}
}

/* --- serving --- */

int64_t coord_blocklists_version(struct coord *co, const char *key)
{
	struct bl_combo *c;

	if (!co->bl)
		return 0;
	c = combo_find(co->bl, key);
	if (!c) {
		c = combo_get(co->bl, key);   /* a new combination: compiled soon */
		bl_compile_schedule(co->bl);
	}
	if (!c)
		return 0;
	c->asked = 1;
	return c->blob ? (int64_t)c->serial : 0;
}

void coord_blocklists_serve(struct coord *co, struct http_request *req, struct node *n)
{
	char key[STORE_TAGS_LEN], hdr[64];
	const char *q = strstr(req->path, "?v=");
	struct bl_combo *c;

	if (coord_node_state(n) != NODE_STATUS_RUNNING) {
		http_respond_error(req, 403, "only running nodes get the blocklist");
		return;
	}
	coord_dns_node_key(co, n, key, sizeof(key));
	c = co->bl ? combo_find(co->bl, key) : NULL;
	if (!c || !c->blob) {
		static const char msg[] = "{\"error\":\"no blocklist compiled yet\"}";
		http_respond(req, 503, "application/json", "Retry-After: 10\r\n", msg, sizeof(msg) - 1);
		if (co->bl && !c)
			coord_blocklists_version(co, key);
		return;
	}
	snprintf(hdr, sizeof(hdr), "ETag: \"%" PRIu64 "\"\r\n", c->serial);
	if (q && strtoull(q + 3, NULL, 10) == c->serial) {
		http_respond(req, 304, NULL, hdr, NULL, 0);
		return;
	}
	http_respond(req, 200, "application/octet-stream", hdr, c->blob, c->len);
}

void coord_blocklists_metrics(struct coord *co, struct metrics_text *t)
{
	struct coord_blocklists *b = co->bl;
	size_t combos = 0, bytes = 0;

	if (!b)
		return;
	for (struct bl_combo *c = b->combos; c; c = c->next) {
		combos += c->blob != NULL;
		bytes += c->len;
	}
	metrics_printf(t,
		"# HELP coord_blocklist_compiles_total Lists compiled (one per tag combination).\n"
		"# TYPE coord_blocklist_compiles_total counter\ncoord_blocklist_compiles_total %llu\n"
		"# TYPE coord_blocklist_compile_failures_total counter\n"
		"coord_blocklist_compile_failures_total %llu\n"
		"# HELP coord_blocklist_last_compile_seconds How long the last compile took.\n"
		"# TYPE coord_blocklist_last_compile_seconds gauge\n"
		"coord_blocklist_last_compile_seconds %.6f\n"
		"# TYPE coord_blocklist_fetches_total counter\ncoord_blocklist_fetches_total %llu\n"
		"# TYPE coord_blocklist_fetch_failures_total counter\n"
		"coord_blocklist_fetch_failures_total %llu\n"
		"# TYPE coord_blocklist_not_modified_total counter\n"
		"coord_blocklist_not_modified_total %llu\n"
		"# HELP coord_blocklist_copies_stored_total Fetched copies stored for the other instances.\n"
		"# TYPE coord_blocklist_copies_stored_total counter\n"
		"coord_blocklist_copies_stored_total %llu\n"
		"# HELP coord_blocklist_copies_taken_total Copies taken from the store, not fetched.\n"
		"# TYPE coord_blocklist_copies_taken_total counter\n"
		"coord_blocklist_copies_taken_total %llu\n"
		"# TYPE coord_blocklist_lists gauge\ncoord_blocklist_lists %zu\n"
		"# TYPE coord_blocklist_bytes gauge\ncoord_blocklist_bytes %zu\n"
		"# TYPE coord_blocklist_version gauge\ncoord_blocklist_version %llu\n",
		(unsigned long long)b->compiles, (unsigned long long)b->compile_failures,
		b->last_compile_ms / 1000, (unsigned long long)b->fetches,
		(unsigned long long)b->fetch_failures, (unsigned long long)b->not_modified,
		(unsigned long long)b->copies_stored, (unsigned long long)b->copies_taken, combos,
		bytes, (unsigned long long)b->serial);
}
