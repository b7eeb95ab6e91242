/* prefs.c - what vpnd remembers between runs in STATE/prefs: coord, pin, hostname,
 * want_up, accept_dns, the node's token (secret) and its last known identity. JSON, 0600, replaced
 * atomically (lib/file.c); parsing is pure and fuzzed (fuzz_vpnd_control). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/file.h"
#include "meshvpn/json.h"
#include "vpnd.h"

#define PREFS_FILE "prefs"
#define PREFS_MAX 65536

int prefs_parse(const char *text, size_t len, struct vpnd_prefs *p)
{
	struct vpnd_prefs n;
	char err[128], state[NODE_STATUS_TEXT_MAX];
	json_t *o;
	int rc = -EINVAL, up = 0, accept_dns = 0;

	memset(&n, 0, sizeof(n));
	o = json_parse_object(text, len, err, sizeof(err));
	if (!o)
		return -EINVAL;
	if (json_copy_str(o, "coord", n.coord, sizeof(n.coord), 0) ||
	    json_copy_str(o, "pin", n.pin, sizeof(n.pin), 0) ||
	    json_copy_str(o, "hostname", n.hostname, sizeof(n.hostname), 0) ||
	    json_copy_str(o, "token", n.token, sizeof(n.token), 0) ||
	    json_copy_str(o, "node_state", state, sizeof(state), 0) ||
	    json_copy_str(o, "name", n.name, sizeof(n.name), 0) ||
	    json_copy_str(o, "ip4", n.ip4, sizeof(n.ip4), 0) ||
	    json_copy_str(o, "ip6", n.ip6, sizeof(n.ip6), 0) ||
	    json_get_bool(o, "want_up", &up) == -EINVAL ||
	    json_get_bool(o, "accept_dns", &accept_dns) == -EINVAL)
		goto out;
	n.want_up = up;
	n.accept_dns = accept_dns;
	n.node_state = node_status_parse(state);
	*p = n;
	rc = 0;
out:
	prefs_wipe(&n);
	json_decref(o);
	return rc;
}

static void prefs_path(const char *dir, const char *name, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", dir, name);
}

int prefs_load(const char *dir, struct vpnd_prefs *p)
{
	char path[4096], *buf;
	ssize_t n;
	size_t len = 0;
	int fd, rc;

	prefs_path(dir, PREFS_FILE, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(PREFS_MAX);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (len < PREFS_MAX && (n = read(fd, buf + len, PREFS_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	rc = len >= PREFS_MAX ? -EFBIG : prefs_parse(buf, len, p);
	sodium_memzero(buf, len);
	free(buf);
	return rc;
}

int prefs_save(const char *dir, const struct vpnd_prefs *p)
{
	char path[4096], *text;
	struct iovec iov[2];
	json_t *o;
	size_t len;
	int rc;

	o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:s, s:s, s:s, s:s, s:s}", "coord", p->coord, "pin",
		      p->pin, "hostname", p->hostname, "want_up", p->want_up, "accept_dns",
		      p->accept_dns, "token", p->token,
		      "node_state", node_status_name(p->node_state), "name", p->name, "ip4", p->ip4, "ip6", p->ip6);
	if (!o)
		return -ENOMEM;
	text = json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(o);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	prefs_path(dir, PREFS_FILE, path, sizeof(path));
	iov[0] = (struct iovec){ .iov_base = text, .iov_len = len };
	iov[1] = (struct iovec){ .iov_base = "\n", .iov_len = 1 };
	rc = file_replace(path, iov, 2, 0600, NULL);
	sodium_memzero(text, len);
	free(text);
	return rc;
}

int prefs_remove(const char *dir)
{
	char path[4096];

	prefs_path(dir, PREFS_FILE, path, sizeof(path));
	if (unlink(path) && errno != ENOENT)
		return -errno;
	return 0;
}

void prefs_wipe(struct vpnd_prefs *p)
{
	sodium_memzero(p, sizeof(*p));
}
