/* nmcache.c - the netmap cache (nmcache.h): written as coord's stream arrives, read back
 * line by line through netmap_apply_line at start. Format: JSON lines, the full first. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meshvpn/file.h"
#include "meshvpn/json.h"
#include "nmcache.h"

void nmcache_init(struct nmcache *c, const char *dir)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	snprintf(c->path, sizeof(c->path), "%s/%s", dir, NMCACHE_FILE);
}

/* A line as coord sent it, without its end. */
static size_t trim(const char *line, size_t len)
{
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	return len;
}

int nmcache_write_full(struct nmcache *c, const char *line, size_t len)
{
	struct iovec iov[2];
	int fd, rc = 0;

	nmcache_close(c);
	len = trim(line, len);
	if (!len || len > NMCACHE_MAX_FULL || memchr(line, '\n', len)) {
		rc = -EINVAL;
		goto err;
	}
	iov[0] = (struct iovec){ .iov_base = (void *)line, .iov_len = len };
	iov[1] = (struct iovec){ .iov_base = "\n", .iov_len = 1 };
	rc = file_replace(c->path, iov, 2, 0600, &fd);
	if (rc)
		goto err;
	/* The open file is the cache now: deltas go on at its end. */
	c->fd = fd;
	c->full_len = len + 1;
	c->delta_len = 0;
	c->dirty = 0;
	return 0;
err:
	nmcache_remove(c);
	return rc;
}

static size_t delta_limit(const struct nmcache *c)
{
	size_t lim = c->full_len > NMCACHE_MAX_DELTAS / NMCACHE_GROWTH ? NMCACHE_MAX_DELTAS
								       : c->full_len * NMCACHE_GROWTH;

	return lim < NMCACHE_MIN_DELTAS ? NMCACHE_MIN_DELTAS : lim;
}

int nmcache_append(struct nmcache *c, const char *line, size_t len)
{
	int rc;

	if (c->fd < 0)
		return -EBADF;
	len = trim(line, len);
	if (!len || memchr(line, '\n', len))
		return -EINVAL;
	if (c->delta_len + len + 1 > delta_limit(c)) {
		nmcache_remove(c);
		return -EFBIG;
	}
	rc = file_write_all(c->fd, line, len);
	if (!rc)
		rc = file_write_all(c->fd, "\n", 1);
	if (rc) {
		/* A torn line would swallow the next one: no cache rather than a wrong one. */
		nmcache_remove(c);
		return rc;
	}
	c->delta_len += len + 1;
	c->dirty = 1;
	return 0;
}

int nmcache_sync(struct nmcache *c)
{
	if (c->fd < 0 || !c->dirty)
		return 0;
	c->dirty = 0;
	return fdatasync(c->fd) ? -errno : 0;
}

void nmcache_close(struct nmcache *c)
{
	if (c->fd < 0)
		return;
	nmcache_sync(c);
	close(c->fd);
	c->fd = -1;
	c->full_len = c->delta_len = 0;
	c->dirty = 0;
}

int nmcache_remove(struct nmcache *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	c->full_len = c->delta_len = 0;
	c->dirty = 0;
	if (unlink(c->path) && errno != ENOENT)
		return -errno;
	return 0;
}

int nmcache_reopen(struct nmcache *c, const struct nmcache_info *info)
{
	int fd;

	nmcache_close(c);
	if (!info->whole || !info->full_bytes)
		return -EBADF;
	fd = open(c->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	c->fd = fd;
	c->full_len = info->full_bytes;
	c->delta_len = info->delta_bytes;
	c->dirty = 0;
	return 0;
}

static int read_file(const char *path, int64_t now, char **out, size_t *len, int64_t *age)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > (uint64_t)NMCACHE_MAX_FULL + 1 + NMCACHE_MAX_DELTAS) {
		rc = -EINVAL;
		goto out;
	}
	*age = now > (int64_t)st.st_mtime ? now - (int64_t)st.st_mtime : 0;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = 0;
	*out = buf;
	*len = got;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

/* The node key in the full's self (netmap.c does not keep it). */
static int self_key(const char *line, size_t len, uint8_t key[KEY_LEN])
{
	char err[64];
	json_t *o = json_parse_object(line, len, err, sizeof(err));
	int rc = -EINVAL;

	if (o && !json_get_key(json_object_get(o, "self"), "node_key", key))
		rc = 0;
	json_decref(o);
	return rc;
}

static int refuse(struct nmcache_info *info, int rc, const char *why)
{
	snprintf(info->why, sizeof(info->why), "%s", why);
	return rc;
}

int nmcache_load(const char *dir, const uint8_t node_key[KEY_LEN], int64_t now,
		 struct netmap *m, struct nmcache_info *info)
{
	char path[4096], *buf = NULL, *p, *end, *nl, *nl0;
	uint8_t key[KEY_LEN];
	struct nm_change chg;
	struct netmap tmp;
	size_t len = 0, n;
	int rc;

	memset(info, 0, sizeof(*info));
	netmap_free(m);
	netmap_init(&tmp);
	snprintf(path, sizeof(path), "%s/%s", dir, NMCACHE_FILE);
	rc = read_file(path, now, &buf, &len, &info->age_s);
	if (rc == -ENOENT)
		return rc;
	if (rc) {
		snprintf(info->why, sizeof(info->why), "%s", rc == -EINVAL
			 ? "not a regular file of a sane size" : strerror(-rc));
		rc = rc == -ENOMEM ? rc : -EINVAL;
		goto out;
	}
	if (info->age_s > NMCACHE_MAX_AGE_S) {
		rc = refuse(info, -ESTALE, "older than the limit");
		goto out;
	}
	p = buf;
	end = buf + len;
	nl0 = nl = memchr(p, '\n', (size_t)(end - p));
	n = nl ? (size_t)(nl - p) : (size_t)(end - p);
	rc = netmap_apply_line(&tmp, p, n, &chg);
	if (rc || chg.kind != NM_FULL || chg.resumed) {
		nm_change_clear(&chg);
		rc = refuse(info, -EINVAL, "the full map is refused");
		goto out;
	}
	nm_change_clear(&chg);
	if (self_key(p, n, key)) {
		rc = refuse(info, -EINVAL, "the full map has no node key");
		goto out;
	}
	if (memcmp(key, node_key, KEY_LEN)) {
		rc = refuse(info, -EKEYREJECTED, "another node key");
		goto out;
	}
	if (tmp.self.state != NODE_STATUS_RUNNING) {
		rc = refuse(info, -EACCES, "the node was not running");
		goto out;
	}
	if (tmp.self.key_expiry > 0 && now >= tmp.self.key_expiry) {
		rc = refuse(info, -ESTALE, "the node key expired");
		goto out;
	}
	for (p = nl ? nl + 1 : end; p < end; p = nl ? nl + 1 : end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (!n)
			continue;
		rc = netmap_apply_line(&tmp, p, n, &chg);
		if (!rc && chg.kind == NM_FULL && !chg.resumed) {
			/* never written after the first line: the file is not what we wrote */
			nm_change_clear(&chg);
			rc = refuse(info, -EINVAL, "a second full map");
			goto out;
		}
		if (rc || chg.kind == NM_GONE)
			info->bad_lines++;
		else
			info->lines++;
		nm_change_clear(&chg);
	}
	info->full_bytes = nl0 ? (size_t)(nl0 - buf) + 1 : len;
	info->delta_bytes = len - info->full_bytes;
	info->whole = len && buf[len - 1] == '\n';
	*m = tmp;
	netmap_init(&tmp);
	rc = 0;
out:
	netmap_free(&tmp);
	free(buf);
	return rc;
}
