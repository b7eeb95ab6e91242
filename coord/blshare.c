/* blshare.c - blocklist sources with several coord instances on one database (issue 11).
 * Only the holder of the jobs lease fetches (blocklists.c). A fetch that brings content
 * the database does not hold stores it there (dns_blocklist_copies, with the fetcher's
 * meta: sum, version, ETag, Last-Modified, counts) in the transaction that records the
 * source's status, so the feed change and the copy land together. Every other instance
 * reloads its DNS policy on that change (feed.c), which matches the sources again and
 * lands here: a stored copy that differs from the instance's own is taken, its bytes
 * checked against the sum and written to src-ID.raw / src-ID.json in the threadpool as if
 * fetched, then compiled as usual. A new holder fetches on from the copies it took
 * (conditional on their ETag / Last-Modified). Not used with SQLite: one instance. */
#include <errno.h>
#include <fcntl.h>
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

struct bl_take {
	uv_work_t work;
	struct coord_blocklists *b;
	int64_t id;
	char source[COORD_DNS_SOURCE_MAX + 1];
	char raw[4200], meta_path[4200], err_path[4200];
	struct bl_meta meta;
	uint8_t *body;
	size_t len;
	int rc;
};

int bl_share_read(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	struct stat sb;
	uint8_t *p = NULL;
	size_t at = 0;
	ssize_t n = 0;

	*out = NULL;
	*len = 0;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb))
		rc = -errno;
	else if ((uint64_t)sb.st_size > BL_MAX_BYTES)
		rc = -EFBIG;   /* fetch_take cut it there: another writer's file */
	else if (!(p = malloc(sb.st_size ? (size_t)sb.st_size : 1)))
		rc = -ENOMEM;
	while (!rc && at < (size_t)sb.st_size && (n = read(fd, p + at, (size_t)sb.st_size - at)) > 0)
		at += (size_t)n;
	if (!rc && n < 0)
		rc = -errno;
	close(fd);
	if (rc) {
		free(p);
		return rc;
	}
	*out = p;
	*len = at;
	return 0;
}

int bl_share_store(struct coord_blocklists *b, struct bl_source *s, const struct dns_rec *status,
		   const uint8_t *body, size_t len)
{
	struct store_bl_copy c = { .id = s->id, .version = s->meta.version, .body = body, .len = len };
	char *meta = bl_meta_format(&s->meta, s->name);
	int rc;

	memcpy(c.sum, s->meta.sum, BL_SUM_LEN);
	c.meta = meta;
	rc = meta ? store_dns_blocklist_copy_put(b->co->st, status, &c) : -ENOMEM;
	free(meta);
	if (rc)
		return rc;
	if (body) {
		s->copy = s->meta;
		b->copies_stored++;
		log_info("blocklist copy stored for the other instances", "id=%lld version=%lld bytes=%zu",
			 (long long)s->id, (long long)s->meta.version, len);
	} else if (s->copy.version && !memcmp(s->copy.sum, s->meta.sum, BL_SUM_LEN)) {
		s->copy = s->meta;   /* the same bytes, looked at again */
	}
	return 0;
}

/* --- taking a stored copy --- */

static void take_work(uv_work_t *w)
{
	struct bl_take *t = w->data;
	uint8_t sum[BL_SUM_LEN];
	struct iovec iov = { t->body, t->len };

	crypto_generichash(sum, sizeof(sum), t->body, t->len, NULL, 0);
	if (memcmp(sum, t->meta.sum, BL_SUM_LEN)) {
		t->rc = -EBADMSG;   /* the row's bytes are not what its meta says */
		return;
	}
	t->rc = file_replace(t->raw, &iov, 1, 0600, NULL);
	if (!t->rc)
		t->rc = bl_meta_keep(t->meta_path, &t->meta, t->source);
	if (!t->rc)
		unlink(t->err_path);   /* the fetcher's error, if any, is its own */
}

static void take_after(uv_work_t *w, int status)
{
	struct bl_take *t = w->data;
	struct coord_blocklists *b = t->b;
	struct bl_source *s = b->stopping ? NULL : bl_source_find(b, t->id);

	(void)status;
	if (!s && !b->stopping)   /* removed meanwhile: what it wrote goes too */
		bl_source_unlink(b, t->id);
	if (s) {
		s->busy = 0;
		if (!t->rc) {
			s->meta = t->meta;
			s->error[0] = 0;
			s->fails = 0;
			s->next_at = s->meta.fetched + b->refresh;
			b->copies_taken++;
			log_info("blocklist copy taken from the store", "id=%lld source=\"%s\" version=%lld"
				 " lines=%llu domains=%llu", (long long)s->id, s->name,
				 (long long)s->meta.version, (unsigned long long)s->meta.st.lines,
				 (unsigned long long)s->meta.st.domains);
			bl_compile_schedule(b);
		} else {
			log_warn("blocklist copy not taken, keeping ours", "id=%lld err=\"%s\"",
				 (long long)s->id, strerror(-t->rc));
		}
		bl_share_recheck(b, s);
	}
	free(t->body);
	free(t);
	bl_job_done(b);
}

static int take_row(const struct store_bl_copy *c, void *arg)
{
	struct bl_take *t = arg;

	if (!c->body || c->len > BL_MAX_BYTES ||
	    bl_meta_parse(c->meta, strlen(c->meta), t->source, &t->meta))
		return -EIO;
	t->body = malloc(c->len ? c->len : 1);
	if (!t->body)
		return -ENOMEM;
	memcpy(t->body, c->body, c->len);
	t->len = c->len;
	return 0;
}

static void take_start(struct coord_blocklists *b, struct bl_source *s)
{
	struct bl_take *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return;
	t->b = b;
	t->id = s->id;
	snprintf(t->source, sizeof(t->source), "%s", s->name);
	rc = store_dns_blocklist_copy_get(b->co->st, s->id, take_row, t);
	if (rc) {
		if (rc != -ENOENT)
			log_warn("blocklist copy not read from the store", "id=%lld err=%d",
				 (long long)s->id, rc);
		free(t->body);
		free(t);
		return;
	}
	bl_source_path(b, s->id, "raw", t->raw, sizeof(t->raw));
	bl_source_path(b, s->id, "json", t->meta_path, sizeof(t->meta_path));
	bl_source_path(b, s->id, "err", t->err_path, sizeof(t->err_path));
	t->work.data = t;
	if (uv_queue_work(b->co->loop, &t->work, take_work, take_after)) {
		free(t->body);
		free(t);
		return;
	}
	s->busy = 1;
	b->inflight++;
}

/* --- what the database holds --- */

/* What to do about s, given the copy last read. */
static void check(struct coord_blocklists *b, struct bl_source *s)
{
	int mine = coord_jobs_mine(b->co);

	if (s->busy) {
		s->recheck = 1;
		return;
	}
	if (!s->copy.version) {
		/* None stored (a state migrated from SQLite, a store that failed): the holder's
		 * next fetch stores its own, and a conditional one is cheap, so now. */
		if (mine && s->meta.version)
			s->next_at = 0;
		return;
	}
	if (s->meta.version && !memcmp(s->copy.sum, s->meta.sum, BL_SUM_LEN)) {
		/* The same bytes: take the fetcher's later look at them (a 304, the same sum). */
		if (s->copy.fetched > s->meta.fetched) {
			s->meta = s->copy;
			s->next_at = s->meta.fetched + b->refresh;
		}
		return;
	}
	if (mine && s->meta.version > s->copy.version) {
		s->next_at = 0;   /* ours is newer: the next fetch stores it */
		return;
	}
	take_start(b, s);
}

void bl_share_recheck(struct coord_blocklists *b, struct bl_source *s)
{
	if (!b->co->remote || !s->recheck)
		return;
	s->recheck = 0;
	check(b, s);
}

static int head_seen(const struct store_bl_copy *c, void *arg)
{
	struct coord_blocklists *b = arg;
	struct bl_source *s = bl_source_find(b, c->id);

	if (!s)
		return 0;
	if (bl_meta_parse(c->meta, strlen(c->meta), s->name, &s->copy) ||
	    s->copy.version != c->version || memcmp(s->copy.sum, c->sum, BL_SUM_LEN)) {
		log_warn("blocklist copy in the store disagrees with its meta: ignored", "id=%lld",
			 (long long)c->id);
		memset(&s->copy, 0, sizeof(s->copy));
	}
	return 0;
}

void bl_share_sync(struct coord_blocklists *b)
{
	int rc;

	for (struct bl_source *s = b->sources; s; s = s->next)
		memset(&s->copy, 0, sizeof(s->copy));
	rc = store_dns_blocklist_copy_heads(b->co->st, head_seen, b);
	if (rc < 0) {
		log_warn("blocklist copies not read from the store", "err=%d", rc);
		return;
	}
	for (struct bl_source *s = b->sources; s; s = s->next)
		check(b, s);
}
