/* wg_uapi.c - userspace WireGuard: wireguard-go (run by wg_go.c) configured over its
 * UAPI socket with the cross-platform text protocol (wireguard.com/xplatform: "set=1" /
 * "get=1", key=value lines, a blank line, "errno=N"). The text builder and parsers are
 * pure; the socket exchange and the backend's operations follow them. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/addr.h"
#include "meshvpn/keys.h"
#include "meshvpn/log.h"
#include "netif.h"
#include "wg_backend.h"
#include "wg_go.h"
#include "wg_uapi.h"

#define IO_TIMEOUT_MS 10000       /* one request and its answer */

/* ---- text builder ---- */

/* A growing text buffer that never leaves a copy of its contents (keys) behind in
 * freed memory: growth copies and wipes instead of realloc. */
struct text {
	char *p;
	size_t len, cap;
	int err;
};

static void text_reserve(struct text *t, size_t more)
{
	size_t cap;
	char *p;

	if (t->err || t->len + more + 1 <= t->cap)
		return;
	cap = t->cap ? t->cap : 256;
	while (cap < t->len + more + 1) {
		if (cap > SIZE_MAX / 2) {
			t->err = -ENOMEM;
			return;
		}
		cap *= 2;
	}
	p = malloc(cap);
	if (!p) {
		t->err = -ENOMEM;
		return;
	}
	if (t->p) {
		memcpy(p, t->p, t->len + 1);
		sodium_memzero(t->p, t->cap);
		free(t->p);
	}
	t->p = p;
	t->cap = cap;
}

__attribute__((format(printf, 2, 3)))
static void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->err = -EINVAL;
		return;
	}
	text_reserve(t, (size_t)n);
	if (t->err)
		return;
	va_start(ap, fmt);
	vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

static void text_key(struct text *t, const char *name, const uint8_t key[WG_KEY_LEN])
{
	char hex[WG_KEY_LEN * 2 + 1];

	sodium_bin2hex(hex, sizeof(hex), key, WG_KEY_LEN);
	text_add(t, "%s=%s\n", name, hex);
	sodium_memzero(hex, sizeof(hex));
}

/* A link-local endpoint needs its interface; wireguard-go takes its index ("%3"). */
static int format_endpoint(const struct sockaddr_storage *ss, char *out, size_t size)
{
	struct addr_port a;

	if (addr_from_sockaddr((const struct sockaddr *)ss, &a))
		return -EINVAL;
	return addr_format(&a, out, size);
}

int wg_uapi_build_set(const struct wg_device *dev, char **out, size_t *len)
{
	struct text t = { 0 };
	char buf[ADDR_TEXT_LEN];

	text_add(&t, "set=1\n");
	if (dev->flags & WG_DEVICE_HAS_PRIVATE_KEY)
		text_key(&t, "private_key", dev->private_key);
	if (dev->flags & WG_DEVICE_HAS_LISTEN_PORT)
		text_add(&t, "listen_port=%u\n", dev->listen_port);
	if (dev->flags & WG_DEVICE_HAS_FWMARK)
		text_add(&t, "fwmark=%" PRIu32 "\n", dev->fwmark);
	if (dev->flags & WG_DEVICE_REPLACE_PEERS)
		text_add(&t, "replace_peers=true\n");
	for (size_t i = 0; i < dev->n_peers && !t.err; i++) {
		const struct wg_peer *p = &dev->peers[i];

		text_key(&t, "public_key", p->public_key);
		if (p->flags & WG_PEER_REMOVE) {
			text_add(&t, "remove=true\n");
			continue;
		}
		if (p->flags & WG_PEER_HAS_ENDPOINT) {
			if (format_endpoint(&p->endpoint, buf, sizeof(buf))) {
				t.err = -EINVAL;
				break;
			}
			text_add(&t, "endpoint=%s\n", buf);
		}
		if (p->flags & WG_PEER_HAS_KEEPALIVE)
			text_add(&t, "persistent_keepalive_interval=%u\n", p->persistent_keepalive);
		if (p->flags & WG_PEER_REPLACE_ALLOWEDIPS)
			text_add(&t, "replace_allowed_ips=true\n");
		for (size_t j = 0; j < p->n_allowedips; j++) {
			const struct wg_allowedip *a = &p->allowedips[j];

			if ((a->family != AF_INET && a->family != AF_INET6) ||
			    !inet_ntop(a->family, &a->ip6, buf, sizeof(buf))) {
				t.err = -EINVAL;
				break;
			}
			text_add(&t, "allowed_ip=%s/%u\n", buf, a->cidr);
		}
	}
	text_add(&t, "\n");
	if (t.err) {
		if (t.p) {
			sodium_memzero(t.p, t.cap);
			free(t.p);
		}
		return t.err;
	}
	*out = t.p;
	*len = t.len;
	return 0;
}

/* ---- text parser ---- */

/* Strict decimal: digits only, no sign, no leading junk, <= max. */
static int parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!n || n > 20)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -EBADMSG;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EBADMSG;
		v = v * 10 + d;
	}
	if (v > max)
		return -EBADMSG;
	*out = v;
	return 0;
}

/* Copies s[0..n) into out as a C string; -EBADMSG when it does not fit. */
static int cstr(const char *s, size_t n, char *out, size_t size)
{
	if (n >= size)
		return -EBADMSG;
	memcpy(out, s, n);
	out[n] = 0;
	return 0;
}

/* 64 hex digits, either case. */
static int parse_key(const char *s, size_t n, uint8_t key[WG_KEY_LEN])
{
	char hex[WG_KEY_LEN * 2 + 1];
	int rc;

	if (cstr(s, n, hex, sizeof(hex)))
		return -EBADMSG;
	rc = hex_decode(hex, key, WG_KEY_LEN) ? -EBADMSG : 0;
	sodium_memzero(hex, sizeof(hex));
	return rc;
}

/* "1.2.3.4:51820" or "[2001:db8::1]:51820" (or "[fe80::1%eth0]:51820"). */
static int parse_endpoint(const char *s, size_t n, struct sockaddr_storage *ss)
{
	struct addr_port a;

	if (addr_parse(s, n, ADDR_ZONE | ADDR_PORT0, &a))
		return -EBADMSG;
	addr_to_sockaddr(&a, ss);
	return 0;
}

/* "100.64.0.1/32" or "fd7a:115c:a1e0::1/128". */
static int parse_allowedip(const char *s, size_t n, struct wg_allowedip *a)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = n ? memchr(s, '/', n) : NULL;
	uint64_t cidr;

	if (!slash || cstr(s, (size_t)(slash - s), host, sizeof(host)))
		return -EBADMSG;
	memset(a, 0, sizeof(*a));
	a->family = strchr(host, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(a->family, host, &a->ip6) != 1 ||
	    parse_uint(slash + 1, n - (size_t)(slash - s) - 1, a->family == AF_INET ? 32 : 128,
		       &cidr))
		return -EBADMSG;
	a->cidr = (uint8_t)cidr;
	return 0;
}

static int key_is(const char *k, size_t kn, const char *name)
{
	return strlen(name) == kn && !memcmp(k, name, kn);
}

static const char *const peer_keys[] = {
	"preshared_key", "endpoint", "persistent_keepalive_interval", "last_handshake_time_sec",
	"last_handshake_time_nsec", "rx_bytes", "tx_bytes", "allowed_ip", "protocol_version",
};

/* One "key=value" line of a get answer. peer is the peer being filled (NULL before the
 * first public_key). */
static int parse_line(const char *k, size_t kn, const char *v, size_t vn,
		      struct wg_device *dev, struct wg_peer **peer)
{
	struct wg_peer *p = *peer;
	struct wg_allowedip aip;
	uint64_t u;
	int rc;

	if (key_is(k, kn, "public_key")) {
		uint8_t key[WG_KEY_LEN];

		if (parse_key(v, vn, key))
			return -EBADMSG;
		rc = wg_device_add_peer(dev, peer);
		if (rc)
			return rc;
		memcpy((*peer)->public_key, key, WG_KEY_LEN);
		return 0;
	}
	if (!p) {
		/* Device keys come before the first peer. */
		if (key_is(k, kn, "private_key")) {
			rc = parse_key(v, vn, dev->private_key);
			if (!rc)
				dev->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
			return rc;
		}
		if (key_is(k, kn, "listen_port")) {
			if (parse_uint(v, vn, UINT16_MAX, &u))
				return -EBADMSG;
			dev->listen_port = (uint16_t)u;
			dev->flags |= WG_DEVICE_HAS_LISTEN_PORT;
			return 0;
		}
		if (key_is(k, kn, "fwmark")) {
			if (parse_uint(v, vn, UINT32_MAX, &u))
				return -EBADMSG;
			dev->fwmark = (uint32_t)u;
			dev->flags |= WG_DEVICE_HAS_FWMARK;
			return 0;
		}
		for (size_t i = 0; i < sizeof(peer_keys) / sizeof(peer_keys[0]); i++)
			if (key_is(k, kn, peer_keys[i]))
				return -EBADMSG;     /* a peer's key without a peer */
		return 0;       /* keys of newer versions */
	}
	if (key_is(k, kn, "preshared_key")) {
		uint8_t psk[WG_KEY_LEN];

		rc = parse_key(v, vn, psk);
		sodium_memzero(psk, sizeof(psk));
		return rc;
	}
	if (key_is(k, kn, "endpoint")) {
		if (parse_endpoint(v, vn, &p->endpoint))
			return -EBADMSG;
		p->flags |= WG_PEER_HAS_ENDPOINT;
		return 0;
	}
	if (key_is(k, kn, "persistent_keepalive_interval")) {
		if (parse_uint(v, vn, UINT16_MAX, &u))
			return -EBADMSG;
		p->persistent_keepalive = (uint16_t)u;
		p->flags |= WG_PEER_HAS_KEEPALIVE;
		return 0;
	}
	if (key_is(k, kn, "last_handshake_time_sec")) {
		if (parse_uint(v, vn, INT64_MAX, &u))
			return -EBADMSG;
		p->last_handshake_sec = (int64_t)u;
		return 0;
	}
	if (key_is(k, kn, "last_handshake_time_nsec") || key_is(k, kn, "protocol_version"))
		return parse_uint(v, vn, UINT64_MAX, &u);
	if (key_is(k, kn, "rx_bytes"))
		return parse_uint(v, vn, UINT64_MAX, &p->rx_bytes);
	if (key_is(k, kn, "tx_bytes"))
		return parse_uint(v, vn, UINT64_MAX, &p->tx_bytes);
	if (key_is(k, kn, "allowed_ip")) {
		if (parse_allowedip(v, vn, &aip))
			return -EBADMSG;
		return wg_peer_add_allowedip(p, &aip);
	}
	return 0;
}

/* Walks the lines up to the blank one. dev NULL: only errno counts (a set answer). */
static int parse_answer(const char *buf, size_t len, struct wg_device *dev)
{
	struct wg_peer *peer = NULL;
	size_t off = 0;
	int have_errno = 0, err = 0, rc;

	for (;;) {
		const char *line = buf + off, *nl, *eq;
		size_t n;

		nl = off < len ? memchr(line, '\n', len - off) : NULL;
		if (!nl)
			return -EBADMSG;          /* cut short: no blank line */
		n = (size_t)(nl - line);
		off += n + 1;
		if (!n)
			break;
		if (memchr(line, 0, n))
			return -EBADMSG;
		eq = memchr(line, '=', n);
		if (!eq || eq == line)
			return -EBADMSG;
		if (key_is(line, (size_t)(eq - line), "errno")) {
			uint64_t u;

			if (parse_uint(eq + 1, n - (size_t)(eq - line) - 1, 4095, &u))
				return -EBADMSG;
			err = (int)u;
			have_errno = 1;
			continue;
		}
		if (!dev)
			continue;
		rc = parse_line(line, (size_t)(eq - line), eq + 1, n - (size_t)(eq - line) - 1,
				dev, &peer);
		if (rc)
			return rc;
	}
	if (!have_errno)
		return -EBADMSG;
	return -err;
}

int wg_uapi_parse_get(const char *buf, size_t len, struct wg_device *dev)
{
	int rc = parse_answer(buf, len, dev);

	if (!rc && (dev->flags & WG_DEVICE_HAS_PRIVATE_KEY) && sodium_init() >= 0 &&
	    !crypto_scalarmult_curve25519_base(dev->public_key, dev->private_key))
		dev->flags |= WG_DEVICE_HAS_PUBLIC_KEY;
	return rc;
}

int wg_uapi_parse_errno(const char *buf, size_t len)
{
	return parse_answer(buf, len, NULL);
}

/* ---- the socket ---- */

int64_t wg_uapi_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int wg_uapi_wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int n;

	for (;;) {
		left = deadline - wg_uapi_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)(left > INT_MAX ? INT_MAX : left));
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int wg_uapi_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, rc;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* The end of an answer: its first empty line. */
static int answer_complete(const char *p, size_t len, size_t from)
{
	if (len && p[0] == '\n')
		return 1;
	for (size_t i = from ? from - 1 : 0; i + 1 < len; i++)
		if (p[i] == '\n' && p[i + 1] == '\n')
			return 1;
	return 0;
}

int wg_uapi_exchange(const char *path, const char *req, size_t req_len, int timeout_ms,
		     char **resp, size_t *resp_len)
{
	int64_t deadline = wg_uapi_now_ms() + timeout_ms;
	struct text t = { 0 };
	size_t sent = 0;
	ssize_t n;
	int fd, rc = 0;

	fd = wg_uapi_connect(path);
	if (fd < 0)
		return fd;
	while (sent < req_len) {
		rc = wg_uapi_wait_fd(fd, POLLOUT, deadline);
		if (rc)
			goto out;
		n = send(fd, req + sent, req_len - sent, MSG_NOSIGNAL);
		if (n < 0 && errno != EINTR && errno != EAGAIN) {
			rc = -errno;
			goto out;
		}
		if (n > 0)
			sent += (size_t)n;
	}
	for (;;) {
		size_t before = t.len;

		if (t.len >= WG_UAPI_MAX_RESPONSE) {
			rc = -EMSGSIZE;
			goto out;
		}
		text_reserve(&t, 4096);
		if (t.err) {
			rc = t.err;
			goto out;
		}
		rc = wg_uapi_wait_fd(fd, POLLIN, deadline);
		if (rc)
			goto out;
		n = recv(fd, t.p + t.len, t.cap - t.len - 1, 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;                    /* EOF: the parser judges what came */
		t.len += (size_t)n;
		t.p[t.len] = 0;
		if (answer_complete(t.p, t.len, before))
			break;
	}
	if (!t.p) {
		rc = -EBADMSG;
		goto out;
	}
	t.p[t.len] = 0;
	*resp = t.p;
	*resp_len = t.len;
	t.p = NULL;
out:
	if (t.p) {
		sodium_memzero(t.p, t.cap);
		free(t.p);
	}
	close(fd);
	return rc;
}

/* ---- the backend ---- */

/* The backend's state (wg->priv). */
struct uapi {
	char sock_path[108];              /* wireguard-go's UAPI socket */
	struct wg_go *go;
};

const char *wg_uapi_socket(const struct wg *wg)
{
	const struct uapi *u = wg->priv;

	return u->sock_path;
}

/* own_public_key is not needed: a wireguard-go that died took its interface with it. */
static int uapi_open(struct wg *wg, const uint8_t own_public_key[WG_KEY_LEN])
{
	struct netif *nif;
	struct uapi *u;
	int rc, fd;

	(void)own_public_key;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	if (snprintf(u->sock_path, sizeof(u->sock_path), "%s/%s.sock", WG_UAPI_DIR,
		     wg->ifname) >= (int)sizeof(u->sock_path)) {
		rc = -ENAMETOOLONG;
		goto err;
	}
	/* The UAPI directory is shared by every network namespace: a live socket of this
	 * name belongs to another interface, maybe elsewhere, and must not be taken over. */
	fd = wg_uapi_connect(u->sock_path);
	if (fd >= 0) {
		close(fd);
		rc = -EEXIST;
		goto err;
	}
	rc = netif_open(&nif);
	if (rc)
		goto err;
	rc = netif_index(nif, wg->ifname);
	netif_close(nif);
	if (rc > 0)
		rc = -EEXIST;
	else if (rc == -ENODEV)
		rc = wg_go_start(wg->ifname, u->sock_path, &u->go);
	if (rc)
		goto err;
	wg->priv = u;
	return 0;

err:
	free(u);
	return rc;
}

static void uapi_close(struct wg *wg)
{
	struct uapi *u = wg->priv;

	wg_go_stop(u->go);
	free(u);
	wg->priv = NULL;
}

static int uapi_set_device(struct wg *wg, const struct wg_device *dev)
{
	const struct uapi *u = wg->priv;
	char *req = NULL, *resp = NULL;
	size_t req_len = 0, resp_len = 0;
	int rc;

	rc = wg_uapi_build_set(dev, &req, &req_len);
	if (rc)
		return rc;
	rc = wg_uapi_exchange(u->sock_path, req, req_len, IO_TIMEOUT_MS, &resp, &resp_len);
	if (!rc)
		rc = wg_uapi_parse_errno(resp, resp_len);
	sodium_memzero(req, req_len);
	free(req);
	free(resp);
	return rc;
}

static int uapi_get_device(struct wg *wg, struct wg_device *dev)
{
	const struct uapi *u = wg->priv;
	static const char req[] = "get=1\n\n";
	char *resp = NULL;
	size_t resp_len = 0;
	int rc;

	rc = wg_uapi_exchange(u->sock_path, req, sizeof(req) - 1, IO_TIMEOUT_MS, &resp,
			      &resp_len);
	if (rc)
		return rc;
	rc = wg_uapi_parse_get(resp, resp_len, dev);
	sodium_memzero(resp, resp_len);
	free(resp);
	return rc;
}

const struct wg_ops wg_uapi_ops = {
	.name = "userspace",
	.open = uapi_open,
	.set_device = uapi_set_device,
	.get_device = uapi_get_device,
	.close = uapi_close,
};
