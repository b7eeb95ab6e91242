/* blocklists.c - coord's blocklist sources: each URL fetched (HTTP/HTTPS, conditional on
 * the last good copy's ETag / Last-Modified) or file read in libuv's threadpool, never on
 * the loop, on the refresh interval and at once when added. The bytes are parsed as they
 * arrive, for the counts `coord dns show` gives, and written to STATE/blocklists/src-ID.raw
 * (with src-ID.json, struct bl_meta) only when the whole source came: a failure keeps the
 * last good copy and records the error, a restart refetches nothing it has. A source over
 * BL_MAX_BYTES or BL_MAX_LINES is cut there and kept so, reported as cut. A new content
 * (by its BLAKE2b sum) asks blcompile.c for new lists. With several instances only the
 * jobs holder fetches, and blshare.c hands what it got to the others. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "blocklists.h"
#include "meshvpn/file.h"
#include "meshvpn/json.h"
#include "meshvpn/log.h"

#define READ_CHUNK 65536

/* --- the meta file --- */

static void hex(const uint8_t *p, size_t len, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * len] = 0;
}

static int unhex(const char *s, uint8_t *out, size_t len)
{
	if (strlen(s) != 2 * len)
		return -EINVAL;
	for (size_t i = 0; i < 2 * len; i++) {
		int c = s[i], v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return -EINVAL;
		out[i / 2] = (uint8_t)(i & 1 ? out[i / 2] | v : v << 4);
	}
	return 0;
}

static const struct { const char *name; size_t off; } stat_fields[] = {
	{ "lines", offsetof(struct blocklist_stats, lines) },
	{ "domains", offsetof(struct blocklist_stats, domains) },
	{ "exceptions", offsetof(struct blocklist_stats, exceptions) },
	{ "unusable", offsetof(struct blocklist_stats, unusable) },
	{ "too_long", offsetof(struct blocklist_stats, too_long) },
	{ "invalid", offsetof(struct blocklist_stats, invalid) },
};
#define N_STATS (sizeof(stat_fields) / sizeof(stat_fields[0]))

static uint64_t *stat_at(struct blocklist_stats *st, size_t i)
{
	return (uint64_t *)((char *)st + stat_fields[i].off);
}

static void stats_json(json_t *o, const struct blocklist_stats *st)
{
	for (size_t i = 0; i < N_STATS; i++)
		json_object_set_new(o, stat_fields[i].name,
				    json_integer((json_int_t)*stat_at((struct blocklist_stats *)st, i)));
}

int bl_meta_parse(const char *text, size_t len, const char *source, struct bl_meta *out)
{
	json_t *o = json_parse_object(text, len, NULL, 0);
	const char *src = NULL, *sum = NULL;
	int64_t v;
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (!o)
		return -EINVAL;
	if (json_get_str(o, "source", &src) || strcmp(src, source) || json_get_str(o, "sum", &sum) ||
	    unhex(sum, out->sum, sizeof(out->sum)) ||
	    json_copy_str(o, "etag", out->etag, sizeof(out->etag), 0) ||
	    json_copy_str(o, "last_modified", out->last_modified, sizeof(out->last_modified), 0) ||
	    json_get_int(o, "fetched", &out->fetched) || json_get_int(o, "version", &out->version) ||
	    out->version < 1 || json_get_bool(o, "cut", &out->cut))
		goto out;
	for (size_t i = 0; i < N_STATS; i++) {
		if (json_get_int(o, stat_fields[i].name, &v) || v < 0)
			goto out;
		*stat_at(&out->st, i) = (uint64_t)v;
	}
	rc = 0;
out:
	if (rc)
		memset(out, 0, sizeof(*out));
	json_decref(o);
	return rc;
}

char *bl_meta_format(const struct bl_meta *m, const char *source)
{
	char sum[2 * BL_SUM_LEN + 1];
	json_t *o;
	char *s;

	hex(m->sum, sizeof(m->sum), sum);
	o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:b}", "source", source, "sum", sum, "etag",
		      m->etag, "last_modified", m->last_modified, "fetched", (json_int_t)m->fetched,
		      "version", (json_int_t)m->version, "cut", m->cut);
	if (!o)
		return NULL;
	stats_json(o, &m->st);
	s = json_dump_compact(o, NULL);
	json_decref(o);
	return s;
}

void bl_source_path(const struct coord_blocklists *b, int64_t id, const char *ext, char *out,
		    size_t size)
{
	snprintf(out, size, "%s/src-%lld.%s", b->dir, (long long)id, ext);
}

/* The meta of a copy on disk, when both files are there and agree with the source. */
static void source_load(struct coord_blocklists *b, struct bl_source *s)
{
	char path[4200], buf[4096];
	struct stat sb;
	ssize_t n;
	int fd;

	bl_source_path(b, s->id, "err", path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, s->error, sizeof(s->error) - 1);
		s->error[n > 0 ? n : 0] = 0;
		close(fd);
	}
	bl_source_path(b, s->id, "json", path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0 || bl_meta_parse(buf, (size_t)n, s->name, &s->meta))
		return;
	bl_source_path(b, s->id, "raw", path, sizeof(path));
	if (stat(path, &sb))
		memset(&s->meta, 0, sizeof(s->meta));
}

/* --- fetching, in the threadpool --- */

struct bl_fetch {
	uv_work_t work;
	struct coord_blocklists *b;
	int64_t id;
	char source[COORD_DNS_SOURCE_MAX + 1];
	char raw[4200], tmp[4200], meta_path[4200];
	struct bl_meta old, meta;      /* in: the last good copy's (version 0: none); out */
	/* the stream */
	int fd, status, changed, not_modified;
	uint64_t bytes;
	struct blocklist_parser ps;
	crypto_generichash_state h;
	int rc;
	char error[BL_ERROR_MAX];
	/* several instances: the sum the database holds (has_copy), and the bytes to store */
	int share, has_copy;
	uint8_t copy_sum[BL_SUM_LEN];
	uint8_t *body;
	size_t body_len;
};

static int count_rule(const char *name, size_t len, unsigned flags, void *arg)
{
	return 0;   /* the parser counts; blcompile.c takes the rules */
}

/* A piece of the source: bounded, parsed, summed and written. -EFBIG once cut. */
static int fetch_take(struct bl_fetch *f, const uint8_t *p, size_t len)
{
	int cut = 0, rc;

	if (len > BL_MAX_BYTES - f->bytes) {
		len = (size_t)(BL_MAX_BYTES - f->bytes);
		cut = 1;
	}
	f->bytes += len;
	blocklist_parser_feed(&f->ps, p, len);
	crypto_generichash_update(&f->h, p, len);
	rc = file_write_all(f->fd, p, len);
	if (rc)
		return rc;
	if (cut || f->ps.st.lines >= BL_MAX_LINES) {
		f->meta.cut = 1;
		return -EFBIG;
	}
	return 0;
}

static void fetch_on_response(const struct http_response *resp, void *arg)
{
	struct bl_fetch *f = arg;
	const char *etag = http_response_header(resp, "ETag");
	const char *lm = http_response_header(resp, "Last-Modified");

	f->status = resp->status;
	snprintf(f->meta.etag, sizeof(f->meta.etag), "%s", etag ? etag : "");
	snprintf(f->meta.last_modified, sizeof(f->meta.last_modified), "%s", lm ? lm : "");
}

static int fetch_on_body(const uint8_t *p, size_t len, void *arg)
{
	struct bl_fetch *f = arg;

	if (f->b->stopping)
		return -ECANCELED;
	return f->status == 200 ? fetch_take(f, p, len) : 0;
}

static int fetch_url(struct bl_fetch *f)
{
	char inm[BL_ETAG_MAX + 32], ims[96];
	const char *headers[3] = { NULL, NULL, NULL };
	struct http_fetch_sink sink = { fetch_on_response, fetch_on_body, f };
	int n = 0, rc;

	if (f->old.version && f->old.etag[0]) {
		snprintf(inm, sizeof(inm), "If-None-Match: %s", f->old.etag);
		headers[n++] = inm;
	}
	if (f->old.version && f->old.last_modified[0]) {
		snprintf(ims, sizeof(ims), "If-Modified-Since: %s", f->old.last_modified);
		headers[n++] = ims;
	}
	rc = http_fetch_stream(f->source, NULL, headers, &sink, &f->status, BL_FETCH_TIMEOUT_MS);
	if (rc == -EFBIG && f->meta.cut)
		rc = 0;
	if (rc)
		snprintf(f->error, sizeof(f->error), "fetch failed: %s", strerror(-rc));
	else if (f->status == 304 && f->old.version)
		f->not_modified = 1;
	else if (f->status != 200) {
		snprintf(f->error, sizeof(f->error), "HTTP status %d", f->status);
		rc = -EIO;
	}
	return rc;
}

static int fetch_file(struct bl_fetch *f)
{
	uint8_t *buf = malloc(READ_CHUNK);
	int fd = open(f->source, O_RDONLY | O_CLOEXEC), rc = 0;
	ssize_t n;

	if (fd < 0 || !buf) {
		rc = fd < 0 ? -errno : -ENOMEM;
		snprintf(f->error, sizeof(f->error), "cannot read the file: %s", strerror(-rc));
		goto out;
	}
	while ((n = read(fd, buf, READ_CHUNK)) > 0 && !rc)
		rc = fetch_take(f, buf, (size_t)n);
	if (n < 0 && !rc)
		rc = -errno;
	if (rc == -EFBIG && f->meta.cut)
		rc = 0;
	if (rc)
		snprintf(f->error, sizeof(f->error), "cannot read the file: %s", strerror(-rc));
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

int bl_meta_keep(const char *path, const struct bl_meta *m, const char *source)
{
	char *text = bl_meta_format(m, source);
	struct iovec iov;
	int rc;

	if (!text)
		return -ENOMEM;
	iov.iov_base = text;
	iov.iov_len = strlen(text);
	rc = file_replace(path, &iov, 1, 0600, NULL);
	free(text);
	return rc;
}

/* The new copy replaces the last good one when it differs; the meta in any case. */
static int fetch_keep(struct bl_fetch *f)
{
	int rc = 0;

	if (f->not_modified) {
		unlink(f->tmp);
		f->meta = f->old;
	} else {
		crypto_generichash_final(&f->h, f->meta.sum, sizeof(f->meta.sum));
		f->meta.st = f->ps.st;
		f->changed = !f->old.version || memcmp(f->old.sum, f->meta.sum, sizeof(f->meta.sum));
		f->meta.version = f->old.version + f->changed;
		if (!f->changed)
			unlink(f->tmp);
		else if (fsync(f->fd) || rename(f->tmp, f->raw))
			rc = -errno;
	}
	f->meta.fetched = coord_now();
	if (!rc)
		rc = bl_meta_keep(f->meta_path, &f->meta, f->source);
	if (rc)
		snprintf(f->error, sizeof(f->error), "cannot keep the copy: %s", strerror(-rc));
	return rc;
}

/* The last attempt's error, so that a restart still shows it (src-ID.err; gone once
 * an attempt works). */
static void error_keep(struct bl_fetch *f)
{
	char path[4200];
	struct iovec iov = { f->error, strlen(f->error) };

	snprintf(path, sizeof(path), "%.*s.err", (int)(strlen(f->meta_path) - 5), f->meta_path);
	if (!f->rc)
		unlink(path);
	else if (file_replace(path, &iov, 1, 0600, NULL))
		log_warn("blocklist error not kept", "path=%s", path);
}

static void fetch_work(uv_work_t *w)
{
	struct bl_fetch *f = w->data;

	f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		f->rc = -errno;
		snprintf(f->error, sizeof(f->error), "cannot write in the state dir: %s",
			 strerror(errno));
		return;
	}
	blocklist_parser_init(&f->ps, count_rule, NULL);
	crypto_generichash_init(&f->h, NULL, 0, BL_SUM_LEN);
	f->rc = f->source[0] == '/' ? fetch_file(f) : fetch_url(f);
	if (!f->rc) {
		blocklist_parser_end(&f->ps);
		f->rc = fetch_keep(f);
	}
	/* Content the database does not hold yet goes there for the other instances. */
	if (!f->rc && f->share && (f->changed || !f->has_copy ||
				   memcmp(f->copy_sum, f->meta.sum, BL_SUM_LEN)) &&
	    bl_share_read(f->raw, &f->body, &f->body_len))
		log_warn("blocklist copy not read back for the other instances", "path=%s", f->raw);
	close(f->fd);
	if (f->rc)
		unlink(f->tmp);
	error_keep(f);
}

struct bl_source *bl_source_find(struct coord_blocklists *b, int64_t id)
{
	for (struct bl_source *s = b->sources; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

/* With several instances the copy goes with the status (blshare.c). */
static void source_status(struct coord_blocklists *b, struct bl_source *s, const struct bl_fetch *f)
{
	struct dns_rec r = { .id = s->id, .table = STORE_DNS_BLOCKLISTS, .fetched = s->meta.fetched,
			     .version = s->meta.version, .lines = (int64_t)s->meta.st.lines,
			     .unusable = (int64_t)s->meta.st.unusable };

	if (f->share ? bl_share_store(b, s, &r, f->body, f->body_len) :
	    store_dns_blocklist_status(b->co->st, &r))
		log_warn("blocklist status not stored", "id=%lld", (long long)s->id);
}

static void fetch_after(uv_work_t *w, int status)
{
	struct bl_fetch *f = w->data;
	struct coord_blocklists *b = f->b;
	struct bl_source *s = b->stopping ? NULL : bl_source_find(b, f->id);
	int64_t wait;

	b->fetching--;
	if (!s && !b->stopping)   /* removed meanwhile: what it kept goes too */
		bl_source_unlink(b, f->id);
	if (s) {
		s->busy = 0;
		b->fetches++;
		if (!f->rc) {
			s->fails = 0;
			s->error[0] = 0;
			s->meta = f->meta;
			s->next_at = coord_now() + b->refresh;
			b->not_modified += f->not_modified;
			log_info("blocklist fetched", "id=%lld source=\"%s\" %s version=%lld lines=%llu"
				 " domains=%llu cut=%d", (long long)s->id, s->name, f->not_modified ?
				 "not_modified=1" : f->changed ? "changed=1" : "changed=0",
				 (long long)s->meta.version, (unsigned long long)s->meta.st.lines,
				 (unsigned long long)s->meta.st.domains, s->meta.cut);
			source_status(b, s, f);
			if (f->changed)
				bl_compile_schedule(b);
		} else {
			b->fetch_failures++;
			snprintf(s->error, sizeof(s->error), "%s", f->error);
			wait = (int64_t)BL_RETRY_MIN << (s->fails < 8 ? s->fails : 8);
			s->fails++;
			s->next_at = coord_now() + (wait < b->refresh ? wait : b->refresh);
			log_warn("blocklist fetch failed, keeping the last good copy", "id=%lld"
				 " source=\"%s\" err=\"%s\" version=%lld retry_in=%llds", (long long)s->id,
				 s->name, s->error, (long long)s->meta.version,
				 (long long)(s->next_at - coord_now()));
		}
		bl_share_recheck(b, s);
	}
	free(f->body);
	free(f);
	if (!b->stopping)
		coord_blocklists_tick(b->co);   /* the next due source may start */
	bl_job_done(b);
}

static void fetch_start(struct coord_blocklists *b, struct bl_source *s)
{
	struct bl_fetch *f = calloc(1, sizeof(*f));

	if (!f)
		return;
	f->b = b;
	f->id = s->id;
	f->old = s->meta;
	f->share = b->co->remote;
	f->has_copy = s->copy.version > 0;
	memcpy(f->copy_sum, s->copy.sum, BL_SUM_LEN);
	snprintf(f->source, sizeof(f->source), "%s", s->name);
	bl_source_path(b, s->id, "raw", f->raw, sizeof(f->raw));
	bl_source_path(b, s->id, "tmp", f->tmp, sizeof(f->tmp));
	bl_source_path(b, s->id, "json", f->meta_path, sizeof(f->meta_path));
	f->work.data = f;
	if (uv_queue_work(b->co->loop, &f->work, fetch_work, fetch_after)) {
		free(f);
		return;
	}
	s->busy = 1;
	b->fetching++;
	b->inflight++;
}

/* --- the sources of the policy --- */

static void source_free(struct bl_source *s)
{
	free(s->name);
	free(s);
}

static int sync_one(const struct coord_dns_entry *e, void *arg)
{
	struct coord_blocklists *b = arg;
	struct bl_source *s = bl_source_find(b, e->id);

	if (s) {
		s->present = 1;
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->name = strdup(e->name))) {
		free(s);
		return -ENOMEM;
	}
	s->id = e->id;
	snprintf(s->tag, sizeof(s->tag), "%s", e->tag);
	s->present = 1;
	source_load(b, s);
	/* A copy younger than the interval is good until it is due; a new source, now. */
	s->next_at = s->meta.version ? s->meta.fetched + b->refresh : 0;
	s->next = b->sources;
	b->sources = s;
	return 0;
}

void bl_source_unlink(const struct coord_blocklists *b, int64_t id)
{
	static const char *const ext[] = { "raw", "json", "err" };
	char path[4200];

	for (size_t i = 0; i < 3; i++) {
		bl_source_path(b, id, ext[i], path, sizeof(path));
		unlink(path);
	}
}

/* Matches the sources to the policy's: new ones are due at once, removed ones go with
 * their files (a fetch in flight finds its source gone and drops what it got). */
static void sources_sync(struct coord_blocklists *b)
{
	for (struct bl_source *s = b->sources; s; s = s->next)
		s->present = 0;
	if (coord_dns_foreach(b->co, COORD_DNS_BLOCKLIST, sync_one, b))
		log_warn("blocklists: out of memory", "op=%s", "sync");
	for (struct bl_source **pp = &b->sources; *pp; ) {
		struct bl_source *s = *pp;
		if (s->present) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		bl_source_unlink(b, s->id);
		source_free(s);
	}
	if (b->co->remote)
		bl_share_sync(b);
}

void bl_job_done(struct coord_blocklists *b)
{
	b->inflight--;
	if (b->stopping && !b->inflight) {
		bl_combos_free(b);
		free(b);
	}
}

void coord_blocklists_tick(struct coord *co)
{
	struct coord_blocklists *b = co->bl;
	int64_t now = coord_now();

	/* Several instances: the jobs holder fetches, the others take its copies. */
	if (!b || !coord_jobs_mine(co))
		return;
	for (struct bl_source *s = b->sources; s && b->fetching < BL_FETCHES_AT_ONCE; s = s->next)
		if (!s->busy && now >= s->next_at)
			fetch_start(b, s);
}

void coord_blocklists_changed(struct coord *co)
{
	if (!co->bl)
		return;
	sources_sync(co->bl);
	coord_blocklists_tick(co);
	bl_compile_schedule(co->bl);
}

void coord_blocklists_source_json(struct coord *co, int64_t id, json_t *o)
{
	struct bl_source *s = co->bl ? bl_source_find(co->bl, id) : NULL;

	if (!s)
		return;
	json_object_set_new(o, "last_fetch", json_integer(s->meta.fetched));
	json_object_set_new(o, "version", json_integer(s->meta.version));
	stats_json(o, &s->meta.st);
	json_object_set_new(o, "cut", json_boolean(s->meta.cut));
	json_object_set_new(o, "error", json_string(s->error));
}

int coord_blocklists_start(struct coord *co)
{
	struct coord_blocklists *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->co = co;
	b->refresh = co->opts.blocklist_refresh > 0 ? co->opts.blocklist_refresh : 6 * 3600;
	snprintf(b->dir, sizeof(b->dir), "%s/%s", co->opts.state_dir, BL_DIR);
	if (mkdir(b->dir, 0700) && errno != EEXIST) {
		int rc = -errno;
		log_error("cannot create the blocklist dir", "path=%s err=\"%s\"", b->dir, strerror(errno));
		free(b);
		return rc;
	}
	uv_timer_init(co->loop, &b->timer);
	b->timer.data = b;
	co->bl = b;
	bl_combos_load(b);
	sources_sync(b);
	coord_blocklists_tick(co);
	bl_compile_schedule(b);
	return 0;
}

static void timer_closed(uv_handle_t *h)
{
	struct coord_blocklists *b = h->data;

	bl_job_done(b);
}

void coord_blocklists_stop(struct coord *co)
{
	struct coord_blocklists *b = co->bl;

	if (!b)
		return;
	co->bl = NULL;
	b->stopping = 1;
	while (b->sources) {
		struct bl_source *s = b->sources;
		b->sources = s->next;
		source_free(s);
	}
	b->inflight++;   /* the timer's close is one more thing to wait for */
	uv_close((uv_handle_t *)&b->timer, timer_closed);
}
