/* wg_uapi.c - userspace WireGuard: wireguard-go as a child process, configured over its
 * UAPI socket with the cross-platform text protocol (wireguard.com/xplatform: "set=1" /
 * "get=1", key=value lines, a blank line, "errno=N"). The text builder and parsers are
 * pure; the socket, the process and the thread that logs its output sit at the end. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/log.h"
#include "netif.h"
#include "wg.h"

#define START_TIMEOUT_MS 5000     /* wireguard-go up to its socket accepting */
#define STOP_TIMEOUT_MS 3000      /* SIGTERM to exit, then SIGKILL */
#define IO_TIMEOUT_MS 10000       /* one request and its answer */

extern char **environ;

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

static int format_endpoint(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		if (!inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip)))
			return -EINVAL;
		snprintf(out, size, "%s:%u", ip, ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		if (!inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip)))
			return -EINVAL;
		/* A link-local endpoint needs its interface; wireguard-go takes its index. */
		if (s6->sin6_scope_id)
			snprintf(out, size, "[%s%%%" PRIu32 "]:%u", ip, s6->sin6_scope_id,
				 ntohs(s6->sin6_port));
		else
			snprintf(out, size, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else {
		return -EINVAL;
	}
	return 0;
}

int wg_uapi_build_set(const struct wg_device *dev, char **out, size_t *len)
{
	struct text t = { 0 };
	char buf[INET6_ADDRSTRLEN + 32];

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

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_key(const char *s, size_t n, uint8_t key[WG_KEY_LEN])
{
	if (n != WG_KEY_LEN * 2)
		return -EBADMSG;
	for (size_t i = 0; i < WG_KEY_LEN; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EBADMSG;
		key[i] = (uint8_t)(hi << 4 | lo);
	}
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

/* "1.2.3.4:51820" or "[2001:db8::1]:51820" (or "[fe80::1%eth0]:51820"). */
static int parse_endpoint(const char *s, size_t n, struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + IFNAMSIZ + 2];
	const char *colon;
	uint64_t port;
	size_t hlen;

	colon = n ? memrchr(s, ':', n) : NULL;
	if (!colon || parse_uint(colon + 1, n - (size_t)(colon - s) - 1, 65535, &port))
		return -EBADMSG;
	hlen = (size_t)(colon - s);
	memset(ss, 0, sizeof(*ss));
	if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		char *zone;

		if (cstr(s + 1, hlen - 2, host, sizeof(host)))
			return -EBADMSG;
		zone = strchr(host, '%');
		if (zone) {
			uint64_t idx;

			*zone++ = 0;
			if (!parse_uint(zone, strlen(zone), UINT32_MAX, &idx))
				s6->sin6_scope_id = (uint32_t)idx;
			else
				s6->sin6_scope_id = if_nametoindex(zone);
		}
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return -EBADMSG;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		if (cstr(s, hlen, host, sizeof(host)) ||
		    inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -EBADMSG;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
	}
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

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int n;

	for (;;) {
		left = deadline - now_ms();
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

static int uapi_connect(const char *path)
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
	int64_t deadline = now_ms() + timeout_ms;
	struct text t = { 0 };
	size_t sent = 0;
	ssize_t n;
	int fd, rc = 0;

	fd = uapi_connect(path);
	if (fd < 0)
		return fd;
	while (sent < req_len) {
		rc = wait_fd(fd, POLLOUT, deadline);
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
		rc = wait_fd(fd, POLLIN, deadline);
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

/* ---- wireguard-go's output ---- */

/* wireguard-go logs "LEVEL: (IFNAME) 2006/01/02 15:04:05 text" lines (Go's log package)
 * on stdout, and the Go runtime writes plain lines on stderr when it panics. Both come
 * to us through one pipe; a thread of ours reads it and re-emits each line through
 * log.h. A thread rather than a uv_pipe: the backend is not given the loop (wg_open has
 * none; wg_node and the tests run without one), and a thread never stalls the daemon's
 * loop, whatever and however much wireguard-go writes. Lines are bounded, repeats are
 * counted instead of shown, and a flood is cut down to a rate, but the last lines before
 * wireguard-go exits are always shown: they say why it failed. */

#define OUT_LINE_MAX 512        /* longer lines are cut (log.c quotes msg into 512 bytes) */
#define OUT_SEEN 32             /* distinct recent lines remembered to count repeats */
#define OUT_REPEAT_MS 60000     /* a line shows once per this, then with its count */
#define OUT_BURST 200           /* lines shown at once before the rate applies */
#define OUT_RATE 50             /* lines per second shown in a flood; the rest dropped */
#define OUT_TAIL 8              /* last dropped lines, shown later with the count */
#define OUT_CALM_MS 1000        /* no drops for this long: the flood has ended */
#define OUT_READS 16            /* reads of 4 KiB per wakeup: a flood cannot starve stop */
#define OUT_DRAIN_READS 256     /* after stop: what the dead child left in the pipe */
#define OUT_EXIT_WAIT_MS 1000   /* its output closed: how long to wait for its status */

struct out_line {
	enum log_level level;
	int cut;                       /* longer than OUT_LINE_MAX: the rest was dropped */
	char peer[24];                 /* its "peer(ab+/…wxyz) - " in front of msg */
	char msg[OUT_LINE_MAX + 1];
};

struct out_seen {
	struct out_line line;
	uint64_t hash;
	int64_t since, last;           /* window start, last occurrence (0: a free slot) */
	unsigned repeats;              /* occurrences not shown since the window began */
};

struct wg_uapi_out {
	pthread_t thread;
	int rfd, stopfd;
	/* Written by the loop thread before ready is set (release), read by ours after. */
	pid_t pid;
	int pidfd;
	atomic_int ready;              /* its socket is up: its errors are no longer fatal */
	atomic_int stopping;           /* we stop it: its exit is no news */
	atomic_int closefd;            /* an fd slow to close (inotify) for us to close, or -1 */
	char ifname[IFNAMSIZ * 2 + 3]; /* quoted for logfmt */
	char buf[OUT_LINE_MAX + 1];    /* the line being read */
	size_t len;
	int skipping;                  /* in the rest of a cut line */
	struct out_seen seen[OUT_SEEN];
	int64_t tokens, refilled;      /* the rate: thousandths of a line, and since when */
	unsigned dropped;
	int64_t drop_last;
	struct out_line tail[OUT_TAIL];
	unsigned n_tail, tail_next;
};

static const struct {
	const char *prefix;
	enum log_level level;
} out_levels[] = {
	{ "DEBUG: ", LOG_DEBUG },
	{ "INFO: ", LOG_INFO },        /* wireguard-go before 2021 */
	{ "ERROR: ", LOG_ERROR },
};

/* "2006/01/02 15:04:05 " (log.Ldate | log.Ltime, maybe log.Lmicroseconds): its length,
 * 0 when s does not start with one. */
static size_t stamp_len(const char *s, size_t n)
{
	static const char pat[] = "dddd/dd/dd dd:dd:dd";
	size_t i;

	for (i = 0; pat[i]; i++)
		if (i >= n || (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i]))
			return 0;
	if (i < n && s[i] == '.')
		for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
	if (i == n)
		return i;
	return s[i] == ' ' ? i + 1 : 0;
}

/* n cut back to the last whole UTF-8 character, so that a cut line stays valid text. */
static size_t utf8_whole(const char *s, size_t n)
{
	size_t i = n, k = 0, need;
	unsigned char c;

	while (i > 0 && k < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) {
		i--;
		k++;
	}
	if (!i)
		return n;
	c = (unsigned char)s[i - 1];
	if (c < 0xc0)
		return n;
	need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	return need > k + 1 ? i - 1 : n;
}

/* One line into l: the level from its prefix, then "(IFNAME) ", the time stamp and
 * "peer(...) - " taken off. ERROR lines and plain ones (the Go runtime's) are errors while
 * it starts, when any of them is fatal, and warnings once it runs, when they mostly say
 * that a peer is out of reach ("Failed to send handshake initiation"). */
static void out_parse(const struct wg_uapi_out *o, const char *s, size_t n, int cut,
		      struct out_line *l)
{
	const char *end;
	size_t k;
	int prefixed = 0;

	l->level = LOG_ERROR;
	for (size_t i = 0; i < sizeof(out_levels) / sizeof(out_levels[0]); i++) {
		k = strlen(out_levels[i].prefix);
		if (n >= k && !memcmp(s, out_levels[i].prefix, k)) {
			l->level = out_levels[i].level;
			s += k;
			n -= k;
			prefixed = 1;
			break;
		}
	}
	if (l->level == LOG_ERROR && atomic_load_explicit(&o->ready, memory_order_relaxed))
		l->level = LOG_WARN;
	if (prefixed && n > 2 && s[0] == '(') {
		end = memchr(s, ')', n < IFNAMSIZ + 1 ? n : IFNAMSIZ + 1);
		if (end && (size_t)(end - s) + 1 < n && end[1] == ' ') {
			n -= (size_t)(end - s) + 2;
			s = end + 2;
		}
	}
	if (prefixed) {
		k = stamp_len(s, n);
		s += k;
		n -= k;
	}
	l->peer[0] = 0;
	if (n > 5 && !memcmp(s, "peer(", 5)) {
		k = n - 5 < sizeof(l->peer) + 4 ? n - 5 : sizeof(l->peer) + 4;
		end = memmem(s + 5, k, ") - ", 4);
		if (end && (size_t)(end - s) - 5 < sizeof(l->peer)) {
			memcpy(l->peer, s + 5, (size_t)(end - s) - 5);
			l->peer[end - s - 5] = 0;
			n -= (size_t)(end - s) + 4;
			s = end + 4;
		}
	}
	memcpy(l->msg, s, n);
	l->msg[n] = 0;
	for (size_t i = 0; i < n; i++)
		if (!l->msg[i])
			l->msg[i] = '?';
	l->cut = cut;
}

static uint64_t out_hash(const struct out_line *l)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)l->level;

	for (const char *p = l->peer; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	h = (h ^ 0xff) * 0x100000001b3ULL;
	for (const char *p = l->msg; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	return h;
}

static int out_same(const struct out_line *a, const struct out_line *b)
{
	return a->level == b->level && !strcmp(a->peer, b->peer) && !strcmp(a->msg, b->msg);
}

static void out_show(const struct wg_uapi_out *o, const struct out_line *l, unsigned repeats)
{
	char qpeer[sizeof(l->peer) * 2 + 3], peer[sizeof(qpeer) + 8] = "", more[32] = "";

	if (l->peer[0])
		snprintf(peer, sizeof(peer), " peer=%s", log_quote(l->peer, qpeer, sizeof(qpeer)));
	if (repeats)
		snprintf(more, sizeof(more), " repeated=%u", repeats);
	log_write(l->level, l->msg, "source=wireguard-go ifname=%s%s%s%s", o->ifname, peer,
		  l->cut ? " cut=true" : "", more);
}

/* How many lines were dropped, then the last of them. */
static void out_flush_drops(struct wg_uapi_out *o)
{
	if (!o->dropped)
		return;
	if (o->dropped > o->n_tail)
		log_warn("wireguard-go log lines dropped", "source=wireguard-go ifname=%s dropped=%u",
			 o->ifname, o->dropped - o->n_tail);
	for (unsigned i = 0; i < o->n_tail; i++)
		out_show(o, &o->tail[(o->tail_next + OUT_TAIL - o->n_tail + i) % OUT_TAIL], 0);
	o->dropped = 0;
	o->n_tail = 0;
}

/* Shows l within the rate (a token bucket), else drops it, keeping the last few dropped
 * for later. After drops, l waits for tokens enough for those too: then the count, the
 * last dropped and l go out together, in their order. */
static void out_pass(struct wg_uapi_out *o, const struct out_line *l, int64_t now)
{
	int64_t need = (o->dropped ? o->n_tail + 1 : 1) * 1000;

	o->tokens += (now - o->refilled) * OUT_RATE;
	if (o->tokens > OUT_BURST * 1000)
		o->tokens = OUT_BURST * 1000;
	o->refilled = now;
	if (o->tokens >= need) {
		o->tokens -= need;
		out_flush_drops(o);
		out_show(o, l, 0);
		return;
	}
	o->dropped++;
	o->drop_last = now;
	o->tail[o->tail_next] = *l;
	o->tail_next = (o->tail_next + 1) % OUT_TAIL;
	if (o->n_tail < OUT_TAIL)
		o->n_tail++;
}

/* A line seen within OUT_REPEAT_MS is counted, not shown; the count shows at the end of
 * the window (out_tick). The least recently seen line makes room for a new one. */
static void out_take(struct wg_uapi_out *o, const struct out_line *l, int64_t now)
{
	struct out_seen *s, *victim = &o->seen[0];
	uint64_t h = out_hash(l);

	for (size_t i = 0; i < OUT_SEEN; i++) {
		s = &o->seen[i];
		if (s->last && s->hash == h && out_same(&s->line, l)) {
			s->last = now;
			if (now - s->since < OUT_REPEAT_MS) {
				s->repeats++;
				return;
			}
			if (s->repeats)
				out_show(o, &s->line, s->repeats);
			s->repeats = 0;
			s->since = now;
			out_pass(o, l, now);
			return;
		}
		if (s->last < victim->last)
			victim = s;
	}
	if (victim->repeats)
		out_show(o, &victim->line, victim->repeats);
	victim->line = *l;
	victim->hash = h;
	victim->since = victim->last = now;
	victim->repeats = 0;
	out_pass(o, l, now);
}

static void out_text(struct wg_uapi_out *o, const char *s, size_t n, int cut)
{
	struct out_line l;

	while (n && s[n - 1] == '\r')
		n--;
	if (!n)
		return;
	out_parse(o, s, n, cut, &l);
	if (l.level > log_get_level())
		return;
	out_take(o, &l, now_ms());
}

/* Splits what was read into lines of at most OUT_LINE_MAX bytes. */
static void out_feed(struct wg_uapi_out *o, const char *p, size_t n)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) : n;

		if (!o->skipping) {
			size_t room = OUT_LINE_MAX - o->len, take = k < room ? k : room;

			memcpy(o->buf + o->len, p, take);
			o->len += take;
			if (take < k) {
				out_text(o, o->buf, utf8_whole(o->buf, o->len), 1);
				o->len = 0;
				o->skipping = 1;
			}
		}
		if (!nl)
			return;
		if (!o->skipping)
			out_text(o, o->buf, o->len, 0);
		o->len = 0;
		o->skipping = 0;
		p = nl + 1;
		n -= k + 1;
	}
}

/* Reads at most reads times: 0 drained, 1 end of the output (or an error), 2 more. */
static int out_read(struct wg_uapi_out *o, int reads)
{
	char chunk[4096];
	ssize_t n;

	for (int i = 0; i < reads; i++) {
		n = read(o->rfd, chunk, sizeof(chunk));
		if (n > 0)
			out_feed(o, chunk, (size_t)n);
		else if (n < 0 && errno == EAGAIN)
			return 0;
		else if (!(n < 0 && errno == EINTR))
			return 1;
	}
	return 2;
}

/* Shows what is due: repeat counts whose window ended, a flood that ended. Returns the
 * ms to the next due work, -1 for none. */
static int out_tick(struct wg_uapi_out *o, int64_t now)
{
	int64_t next = -1, due;

	for (size_t i = 0; i < OUT_SEEN; i++) {
		struct out_seen *s = &o->seen[i];

		if (!s->repeats)
			continue;
		due = s->since + OUT_REPEAT_MS;
		if (due <= now) {
			out_show(o, &s->line, s->repeats);
			s->repeats = 0;
			s->since = now;
		} else if (next < 0 || due < next) {
			next = due;
		}
	}
	if (o->dropped) {
		due = o->drop_last + OUT_CALM_MS;
		if (due <= now)
			out_flush_drops(o);
		else if (next < 0 || due < next)
			next = due;
	}
	return next < 0 ? -1 : (int)(next - now);
}

/* An exit as a shell shows it: the code, or 128 + the signal. */
static int exit_status(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Its output ended while it was meant to run: it died. Says how, without reaping it
 * (stop_child does that). */
static void out_exited(struct wg_uapi_out *o)
{
	struct pollfd pfd[2] = { { .fd = o->pidfd, .events = POLLIN },
				 { .fd = o->stopfd, .events = POLLIN } };
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	while (poll(pfd, 2, OUT_EXIT_WAIT_MS) < 0 && errno == EINTR)
		;
	if (atomic_load(&o->stopping))
		return;
	if (waitid(o->pidfd >= 0 ? P_PIDFD : P_PID, o->pidfd >= 0 ? (id_t)o->pidfd : (id_t)o->pid,
		   &si, WEXITED | WNOHANG | WNOWAIT))
		si.si_pid = 0;
	if (si.si_pid)
		log_error("wireguard-go exited", "ifname=%s pid=%d status=%d", o->ifname, (int)o->pid,
			  si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status);
	else
		log_error("wireguard-go closed its output", "ifname=%s pid=%d", o->ifname,
			  (int)o->pid);
}

static void out_close_fd(struct wg_uapi_out *o)
{
	int fd = atomic_exchange(&o->closefd, -1);

	if (fd >= 0)
		close(fd);
}

static void *out_main(void *arg)
{
	struct wg_uapi_out *o = arg;
	struct pollfd pfd[2] = { { .fd = o->rfd, .events = POLLIN },
				 { .fd = o->stopfd, .events = POLLIN } };
	int end = 0, n;

	for (;;) {
		n = poll(pfd, 2, out_tick(o, now_ms()));
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (pfd[0].revents && out_read(o, OUT_READS) == 1) {
			end = 1;
			break;
		}
		if (pfd[1].revents & POLLIN) {
			uint64_t v;

			if (read(o->stopfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
			out_close_fd(o);
			if (!atomic_load(&o->stopping))
				continue;
			/* The child is gone: what it wrote is in the pipe, up to its end (unless
			 * something of its own still holds the pipe open). */
			for (int i = 0; i < OUT_DRAIN_READS / OUT_READS; i++)
				if (out_read(o, OUT_READS) != 2)
					break;
			break;
		}
	}
	out_close_fd(o);
	if (!o->skipping && o->len)
		out_text(o, o->buf, o->len, 0);
	for (size_t i = 0; i < OUT_SEEN; i++)
		if (o->seen[i].repeats)
			out_show(o, &o->seen[i].line, o->seen[i].repeats);
	out_flush_drops(o);
	if (end && atomic_load_explicit(&o->ready, memory_order_acquire) &&
	    !atomic_load(&o->stopping))
		out_exited(o);
	return NULL;
}

/* Starts the thread that logs what is written to *wfd (the child's stdout and stderr). */
static int out_start(struct wg *wg, int *wfd)
{
	struct wg_uapi_out *o;
	sigset_t all, old;
	int p[2], rc;

	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->pidfd = -1;
	atomic_init(&o->closefd, -1);
	o->tokens = OUT_BURST * 1000;
	o->refilled = now_ms();
	log_quote(wg->ifname, o->ifname, sizeof(o->ifname));
	if (pipe2(p, O_CLOEXEC)) {
		rc = -errno;
		goto err_pipe;
	}
	o->rfd = p[0];
	if (fcntl(o->rfd, F_SETFL, O_NONBLOCK)) {
		rc = -errno;
		goto err_event;
	}
	o->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (o->stopfd < 0) {
		rc = -errno;
		goto err_event;
	}
	/* Signals stay with the daemon's own threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&o->thread, NULL, out_main, o);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		goto err_thread;
	wg->out = o;
	*wfd = p[1];
	return 0;

err_thread:
	close(o->stopfd);
err_event:
	close(p[0]);
	close(p[1]);
err_pipe:
	free(o);
	return rc;
}

/* Closes fd on our thread: closing an inotify descriptor that had a watch waits for an
 * RCU grace period in the kernel (8-16 ms here), which the loop thread must not. */
static void out_close_later(struct wg *wg, int fd)
{
	uint64_t one = 1;

	if (fd < 0)
		return;
	if (!wg->out) {
		close(fd);
		return;
	}
	atomic_store(&wg->out->closefd, fd);
	if (write(wg->out->stopfd, &one, sizeof(one)) < 0)
		log_debug("cannot wake the wireguard-go log reader", "ifname=%s error=\"%s\"",
			  wg->out->ifname, strerror(errno));
}

/* Ends the thread once the child is gone: it logs what is left, then exits. */
static void out_stop(struct wg *wg)
{
	struct wg_uapi_out *o = wg->out;
	uint64_t one = 1;

	if (!o)
		return;
	atomic_store(&o->stopping, 1);
	if (write(o->stopfd, &one, sizeof(one)) < 0)
		log_warn("cannot stop the wireguard-go log reader", "ifname=%s error=\"%s\"",
			 o->ifname, strerror(errno));
	pthread_join(o->thread, NULL);
	out_close_fd(o);                  /* handed over after the thread had ended */
	close(o->rfd);
	close(o->stopfd);
	free(o);
	wg->out = NULL;
}

/* ---- wireguard-go ---- */

/* The program to run: $MESHVPN_WIREGUARD_GO, else wireguard-go from $PATH. */
static int find_program(char *out, size_t size)
{
	const char *name = getenv("MESHVPN_WIREGUARD_GO"), *path, *p;

	if (!name || !*name)
		name = "wireguard-go";
	if (strchr(name, '/')) {
		if (strlen(name) >= size)
			return -ENAMETOOLONG;
		memcpy(out, name, strlen(name) + 1);
		return access(out, X_OK) ? -errno : 0;
	}
	path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (p = path; *p;) {
		size_t n = strcspn(p, ":");

		if (n && snprintf(out, size, "%.*s/%s", (int)n, p, name) < (int)size &&
		    !access(out, X_OK))
			return 0;
		p += n;
		if (*p == ':')
			p++;
	}
	return -ENOENT;
}

/* environ with WG_PROCESS_FOREGROUND=1 (wireguard-go stays our child, quietly) and, when
 * we log at debug and nobody set LOG_LEVEL, LOG_LEVEL=verbose (its DEBUG lines). */
static char **child_env(void)
{
	size_t n = 0, j = 0;
	int has_level = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = calloc(n + 3, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(environ[i], "LOG_LEVEL=", 10))
			has_level = 1;
		if (strncmp(environ[i], "WG_PROCESS_FOREGROUND=", 22))
			env[j++] = environ[i];
	}
	env[j++] = "WG_PROCESS_FOREGROUND=1";
	if (!has_level && log_get_level() >= LOG_DEBUG)
		env[j++] = "LOG_LEVEL=verbose";
	env[j] = NULL;
	return env;
}

/* Only async-signal-safe calls between fork and exec. */
static void child_exec(const char *prog, char *const argv[], char *const envp[], pid_t parent,
		       int errfd, int outfd)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD };
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	int err, fd;

	/* wireguard-go goes when we go, even when we die without wg_close. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != parent)
		_exit(126);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		dup2(fd, 0);
	/* Its stdout and stderr go to our log reader (wg_uapi_out). */
	for (int t = 1; t <= 2; t++) {
		if (outfd != t)
			dup2(outfd, t);
		else
			fcntl(t, F_SETFD, 0);
	}
	execve(prog, argv, envp);
	err = errno;
	if (write(errfd, &err, sizeof(err)) < 0)
		_exit(127);
	_exit(127);
}

/* A pidfd turns readable the moment its process exits (Linux 5.3); -1 without. */
static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	return -1;
#endif
}

/* Waits for wireguard-go to exit and reaps it: woken by its pidfd as it exits, or,
 * without one, by polling waitpid in short steps. */
static int reap(struct wg *wg, int timeout_ms, int *status)
{
	int64_t deadline = now_ms() + timeout_ms;
	int delay = 2, use_pidfd = wg->pidfd >= 0, rc;
	pid_t r;

	for (;;) {
		r = waitpid(wg->pid, status, WNOHANG);
		if (r == wg->pid || (r < 0 && errno == ECHILD))
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		if (use_pidfd) {
			rc = wait_fd(wg->pidfd, POLLIN, deadline);
			if (rc && rc != -ETIMEDOUT)
				use_pidfd = 0;
			continue;
		}
		sleep_ms(delay);
		delay = delay < 50 ? delay * 2 : 50;
	}
}

/* wireguard-go removes its socket as it stops, but not when a signal kills it first: a
 * SIGTERM that comes before it has its handler (right after it starts listening), or
 * SIGKILL. A socket nobody listens on is stale; one that accepts is not ours to take. */
static void remove_stale_socket(struct wg *wg)
{
	int fd = uapi_connect(wg->sock_path);

	if (fd >= 0)
		close(fd);
	else if (fd == -ECONNREFUSED && !unlink(wg->sock_path))
		log_debug("removed the socket wireguard-go left", "ifname=%s socket=%s", wg->ifname,
			  wg->sock_path);
}

static void stop_child(struct wg *wg)
{
	int status = 0;

	if (wg->pid > 0) {
		if (wg->out)
			atomic_store(&wg->out->stopping, 1);
		kill(wg->pid, SIGTERM);
		if (reap(wg, STOP_TIMEOUT_MS, &status)) {
			log_warn("wireguard-go did not stop, killing it", "ifname=%s pid=%d",
				 wg->ifname, (int)wg->pid);
			kill(wg->pid, SIGKILL);
			while (waitpid(wg->pid, &status, 0) < 0 && errno == EINTR)
				;
		}
		wg->pid = 0;
		if (WIFSIGNALED(status))
			remove_stale_socket(wg);
	}
	out_stop(wg);
	if (wg->pidfd >= 0)
		close(wg->pidfd);
	wg->pidfd = -1;
}

/* An inotify watch on the socket directory: wait_ready wakes up as the socket appears.
 * wireguard-go would create the directory (0755); creating it first lets us watch it.
 * -1 when that cannot be: wait_ready polls then. */
static int watch_socket_dir(void)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd < 0)
		return -1;
	if (mkdir(WG_UAPI_DIR, 0755) && errno != EEXIST)
		log_debug("cannot create the wireguard-go socket directory",
			  "dir=%s error=\"%s\"", WG_UAPI_DIR, strerror(errno));
	if (inotify_add_watch(fd, WG_UAPI_DIR, IN_CREATE | IN_MOVED_TO) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Connects to the UAPI socket until it accepts, wireguard-go exits, or the deadline.
 * Woken by inotify (watch, from watch_socket_dir) as the socket appears and by the pidfd
 * as wireguard-go exits, it returns the moment either happens; it polls in short steps
 * only where those cannot tell (a socket there but not listening yet, no watch or no
 * pidfd). */
static int wait_ready(struct wg *wg, int watch)
{
	int64_t deadline = now_ms() + START_TIMEOUT_MS, left;
	struct pollfd pfd[2] = { { .fd = watch, .events = POLLIN },
				 { .fd = wg->pidfd, .events = POLLIN } };
	int delay = 1, status, fd, rc, timeout;
	char events[4096];
	pid_t r;

	for (;;) {
		fd = uapi_connect(wg->sock_path);
		if (fd >= 0) {
			close(fd);
			rc = 0;
			break;
		}
		r = waitpid(wg->pid, &status, WNOHANG);
		if (r == wg->pid) {
			wg->pid = 0;
			out_stop(wg);         /* its last lines first: they say why */
			log_error("wireguard-go exited", "ifname=%s status=%d", wg->ifname,
				  exit_status(status));
			rc = -ECHILD;
			break;
		}
		left = deadline - now_ms();
		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		timeout = (int)left;
		if (pfd[0].fd < 0 || pfd[1].fd < 0 || fd != -ENOENT) {
			if (timeout > delay)
				timeout = delay;
			delay = delay < 50 ? delay * 2 : 50;
		}
		if (poll(pfd, 2, timeout) > 0 && (pfd[0].revents & POLLIN))
			while (read(pfd[0].fd, events, sizeof(events)) > 0)
				;
	}
	return rc;
}

static int spawn(struct wg *wg)
{
	char prog[PATH_MAX];
	char *argv[] = { "wireguard-go", "-f", wg->ifname, NULL };
	char **env = NULL;
	int pipefd[2] = { -1, -1 }, outfd = -1, err = 0, status, rc;
	pid_t parent = getpid(), pid;
	ssize_t n;

	rc = find_program(prog, sizeof(prog));
	if (rc)
		return rc;
	argv[0] = prog;
	env = child_env();
	if (!env)
		return -ENOMEM;
	if (pipe2(pipefd, O_CLOEXEC)) {
		rc = -errno;
		goto out;
	}
	rc = out_start(wg, &outfd);
	if (rc)
		goto out;
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0)
		child_exec(prog, argv, env, parent, pipefd[1], outfd);
	close(pipefd[1]);
	pipefd[1] = -1;
	/* The pipe closes on a successful exec; a failed one sends its errno. */
	do
		n = read(pipefd[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	if (n == sizeof(err)) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		rc = err ? -err : -EIO;
		goto out;
	}
	wg->pid = pid;
	wg->pidfd = pidfd_of(pid);
	wg->out->pid = pid;
	wg->out->pidfd = wg->pidfd;
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (outfd >= 0)
		close(outfd);         /* the child has it: its end is our end of output */
	if (rc)
		out_stop(wg);
	free(env);
	return rc;
}

static int uapi_open(struct wg *wg)
{
	struct netif *nif;
	int rc, fd, watch;

	wg->pid = 0;
	wg->pidfd = -1;
	wg->out = NULL;
	if (snprintf(wg->sock_path, sizeof(wg->sock_path), "%s/%s.sock", WG_UAPI_DIR,
		     wg->ifname) >= (int)sizeof(wg->sock_path))
		return -ENAMETOOLONG;
	/* The UAPI directory is shared by every network namespace: a live socket of this
	 * name belongs to another interface, maybe elsewhere, and must not be taken over. */
	fd = uapi_connect(wg->sock_path);
	if (fd >= 0) {
		close(fd);
		return -EEXIST;
	}
	rc = netif_open(&nif);
	if (rc)
		return rc;
	rc = netif_index(nif, wg->ifname);
	netif_close(nif);
	if (rc > 0)
		return -EEXIST;
	if (rc != -ENODEV)
		return rc;

	/* Watching before it starts: the socket cannot appear unseen. */
	watch = watch_socket_dir();
	rc = spawn(wg);
	if (rc)
		goto err_spawn;
	rc = wait_ready(wg, watch);
	if (rc)
		goto err_ready;
	atomic_store_explicit(&wg->out->ready, 1, memory_order_release);
	out_close_later(wg, watch);
	log_debug("wireguard-go started", "ifname=%s pid=%d socket=%s", wg->ifname, (int)wg->pid,
		  wg->sock_path);
	return 0;

err_ready:
	stop_child(wg);
err_spawn:
	if (watch >= 0)
		close(watch);
	return rc;
}

static void uapi_close(struct wg *wg)
{
	stop_child(wg);
}

static int uapi_set_device(struct wg *wg, const struct wg_device *dev)
{
	char *req = NULL, *resp = NULL;
	size_t req_len = 0, resp_len = 0;
	int rc;

	rc = wg_uapi_build_set(dev, &req, &req_len);
	if (rc)
		return rc;
	rc = wg_uapi_exchange(wg->sock_path, req, req_len, IO_TIMEOUT_MS, &resp, &resp_len);
	if (!rc)
		rc = wg_uapi_parse_errno(resp, resp_len);
	sodium_memzero(req, req_len);
	free(req);
	free(resp);
	return rc;
}

static int uapi_get_device(struct wg *wg, struct wg_device *dev)
{
	static const char req[] = "get=1\n\n";
	char *resp = NULL;
	size_t resp_len = 0;
	int rc;

	rc = wg_uapi_exchange(wg->sock_path, req, sizeof(req) - 1, IO_TIMEOUT_MS, &resp,
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
