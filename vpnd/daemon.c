/* daemon.c - vpnd's core: prefs and keys in the state dir, the node's state machine
 * (stopped / needs-approval / running / expired), and the netmap turned into WireGuard
 * configuration incrementally through wg.h (one peer per delta; a full map is diffed
 * against what WireGuard holds, so unchanged peers and their sessions are never touched)
 * and into the interface's addresses and routes through netif.h. DESIGN.md flows 1-3. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/file.h"
#include "meshvpn/json.h"
#include "meshvpn/log.h"
#include "meshvpn/metrics.h"
#include "meshvpn/tls.h"
#include "netif.h"
#include "vpnd.h"
#include "wg.h"

#define PREFS_FILE "prefs"
#define PREFS_MAX 65536
#define TICK_MS 1000
#define ENDPOINT_CHECK_TICKS 60   /* a safety net: linkmon reports changes as they happen */
#define ENDPOINT_RETRY_TICKS 30   /* after a failed post: as often as before */
#define IFACE_RETRY_TICKS 10

struct pending_up {
	struct pending_up *next;
	struct http_request *req;
	uint64_t deadline;
};

static const char *const state_names[] = {
	[VPND_STOPPED] = "stopped",
	[VPND_NEEDS_APPROVAL] = "needs-approval",
	[VPND_RUNNING] = "running",
	[VPND_EXPIRED] = "expired",
};

const char *vpnd_state_name(enum vpnd_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "stopped";
}

/* ---- prefs ---- */

static int prefs_str(const json_t *o, const char *key, char *out, size_t size)
{
	const char *s;
	int rc = json_get_str(o, key, &s);

	if (rc == -ENOENT) {
		out[0] = 0;
		return 0;
	}
	if (rc || strlen(s) >= size)
		return -EINVAL;
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

int prefs_parse(const char *text, size_t len, struct vpnd_prefs *p)
{
	struct vpnd_prefs n;
	char err[128];
	json_t *o;
	int rc = -EINVAL, up = 0;

	memset(&n, 0, sizeof(n));
	o = json_parse_object(text, len, err, sizeof(err));
	if (!o)
		return -EINVAL;
	if (prefs_str(o, "coord", n.coord, sizeof(n.coord)) ||
	    prefs_str(o, "pin", n.pin, sizeof(n.pin)) ||
	    prefs_str(o, "hostname", n.hostname, sizeof(n.hostname)) ||
	    prefs_str(o, "token", n.token, sizeof(n.token)) ||
	    prefs_str(o, "node_state", n.node_state, sizeof(n.node_state)) ||
	    prefs_str(o, "name", n.name, sizeof(n.name)) ||
	    prefs_str(o, "ip4", n.ip4, sizeof(n.ip4)) ||
	    prefs_str(o, "ip6", n.ip6, sizeof(n.ip6)) ||
	    json_get_bool(o, "want_up", &up) == -EINVAL)
		goto out;
	n.want_up = up;
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

	o = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:s}", "coord", p->coord, "pin",
		      p->pin, "hostname", p->hostname, "want_up", p->want_up, "token", p->token,
		      "node_state", p->node_state, "name", p->name, "ip4", p->ip4, "ip6", p->ip6);
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

static void save_prefs(struct vpnd *d)
{
	int rc = prefs_save(d->opts.state_dir, &d->prefs);

	if (rc)
		log_error("cannot save prefs", "dir=%s error=\"%s\"", d->opts.state_dir, strerror(-rc));
}

/* ---- endpoints and addresses ---- */

int vpnd_parse_endpoint(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	char host[INET6_ADDRSTRLEN];
	const char *colon, *h = s;
	size_t hlen;
	char *end;
	unsigned long port;

	memset(ss, 0, sizeof(*ss));
	colon = strrchr(s, ':');
	if (!colon || !colon[1])
		return -EINVAL;
	hlen = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hlen < 2 || s[hlen - 1] != ']')
			return -EINVAL;
		h = s + 1;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = 0;
	if (colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port == 0 || port > 65535)
		return -EINVAL;
	if (s[0] != '[' && inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (s[0] == '[' && inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	memset(ss, 0, sizeof(*ss));
	return -EINVAL;
}

int vpnd_format_endpoint(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char host[INET6_ADDRSTRLEN];
	int n;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		n = snprintf(out, size, "%s:%u", host, ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		n = snprintf(out, size, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		if (size)
			out[0] = 0;
		return -EINVAL;
	}
	return n < 0 || (size_t)n >= size ? -ENOSPC : 0;
}

void vpnd_ula48(const struct in6_addr *ip6, struct in6_addr *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->s6_addr, ip6->s6_addr, 6);
}

static int skip_v4(const struct in_addr *a, const struct in_addr *self4)
{
	uint32_t h = ntohl(a->s_addr);

	/* 100.64.0.0/10 is the tailnet's (an address there on another interface is another
	 * tailnet node's, or a carrier NAT's that no peer can reach). */
	return (h >> 24) == 127 || (h >> 16) == 0xa9fe /* 169.254/16 */ || h == 0 ||
	       (h & 0xffc00000u) == 0x64400000u || (self4 && a->s_addr == self4->s_addr);
}

static int skip_v6(const struct in6_addr *a, const struct in6_addr *self6)
{
	if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_UNSPECIFIED(a) ||
	    IN6_IS_ADDR_MULTICAST(a))
		return 1;
	/* the tailnet's own /48 */
	return self6 && !IN6_IS_ADDR_UNSPECIFIED(self6) && !memcmp(a->s6_addr, self6->s6_addr, 6);
}

int vpnd_local_endpoints(const char *skip_ifname, const struct in_addr *self4,
			 const struct in6_addr *self6, uint16_t port,
			 char out[][NM_ENDPOINT_LEN], int max)
{
	struct ifaddrs *ifa, *i;
	int n = 0;

	if (getifaddrs(&ifa))
		return -errno;
	for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		for (i = ifa; i && n < max; i = i->ifa_next) {
			struct sockaddr_storage ss;
			char text[NM_ENDPOINT_LEN];
			int dup = 0;

			if (!i->ifa_addr || i->ifa_addr->sa_family != family ||
			    !(i->ifa_flags & IFF_UP) || !(i->ifa_flags & IFF_RUNNING) ||
			    (i->ifa_flags & IFF_LOOPBACK) ||
			    (skip_ifname && !strcmp(i->ifa_name, skip_ifname)))
				continue;
			memset(&ss, 0, sizeof(ss));
			if (family == AF_INET) {
				struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
				*s4 = *(const struct sockaddr_in *)i->ifa_addr;
				if (skip_v4(&s4->sin_addr, self4))
					continue;
				s4->sin_port = htons(port);
			} else {
				struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
				*s6 = *(const struct sockaddr_in6 *)i->ifa_addr;
				if (skip_v6(&s6->sin6_addr, self6))
					continue;
				s6->sin6_port = htons(port);
				s6->sin6_scope_id = 0;
			}
			if (vpnd_format_endpoint(&ss, text, sizeof(text)))
				continue;
			for (int k = 0; k < n; k++)
				dup |= !strcmp(out[k], text);
			if (!dup)
				memcpy(out[n++], text, sizeof(text));
		}
	}
	freeifaddrs(ifa);
	return n;
}

/* ---- pending `up` requests: answered once the outcome is known ---- */

static void ups_add(struct vpnd *d, struct http_request *req)
{
	struct pending_up *u = calloc(1, sizeof(*u));

	if (!u) {
		http_respond_error(req, 500, "out of memory");
		return;
	}
	u->req = req;
	u->deadline = uv_now(d->loop) + VPND_UP_TIMEOUT_MS;
	u->next = d->ups;
	d->ups = u;
}

/* status < 400: answered from the current state. */
static void ups_settle(struct vpnd *d, int status, const char *err)
{
	struct pending_up *u = d->ups, *next;

	d->ups = NULL;
	for (; u; u = next) {
		next = u->next;
		control_answer_up(d, u->req, status, err);
		free(u);
	}
}

static void ups_expire(struct vpnd *d)
{
	struct pending_up **pp = &d->ups, *u;
	uint64_t now = uv_now(d->loop);
	char msg[VPND_REASON_LEN + 120];

	while ((u = *pp)) {
		if (u->deadline > now) {
			pp = &u->next;
			continue;
		}
		*pp = u->next;
		snprintf(msg, sizeof(msg), "%s within %d s%s%s; vpnd keeps trying (see vpnctl status)",
			 d->reg ? "coord did not answer the registration" : "no netmap from coord",
			 VPND_UP_TIMEOUT_MS / 1000, d->coord_error[0] ? ": " : "", d->coord_error);
		http_respond_error(u->req, 504, msg);
		free(u);
	}
}

static void set_state(struct vpnd *d, enum vpnd_state st, const char *reason)
{
	if (st != d->state)
		log_info("state changed", "from=%s to=%s", vpnd_state_name(d->state),
			 vpnd_state_name(st));
	d->state = st;
	if (reason != d->reason)
		snprintf(d->reason, sizeof(d->reason), "%s", reason ? reason : "");
}

/* ---- WireGuard ---- */

static ssize_t wgp_find(const struct vpnd *d, int64_t id)
{
	size_t lo = 0, hi = d->n_wgp;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (d->wgp[mid].id == id)
			return (ssize_t)mid;
		if (d->wgp[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(ssize_t)lo - 1;
}

static int wgp_reserve(struct vpnd *d, size_t n)
{
	struct nm_peer *np;
	size_t cap;

	if (n <= d->cap_wgp)
		return 0;
	cap = d->cap_wgp ? d->cap_wgp : 16;
	while (cap < n)
		cap *= 2;
	np = realloc(d->wgp, cap * sizeof(*np));
	if (!np)
		return -ENOMEM;
	d->wgp = np;
	d->cap_wgp = cap;
	return 0;
}

static int wgp_copy_all(struct vpnd *d)
{
	if (wgp_reserve(d, d->nm.n_peers))
		return -ENOMEM;
	if (d->nm.n_peers)
		memcpy(d->wgp, d->nm.peers, d->nm.n_peers * sizeof(*d->wgp));
	d->n_wgp = d->nm.n_peers;
	return 0;
}

static void wgp_put(struct vpnd *d, const struct nm_peer *p)
{
	ssize_t i = wgp_find(d, p->id);
	size_t at;

	if (i >= 0) {
		d->wgp[i] = *p;
		return;
	}
	if (wgp_reserve(d, d->n_wgp + 1)) {
		d->wg_dirty = 1;
		return;
	}
	at = (size_t)(-i - 1);
	memmove(&d->wgp[at + 1], &d->wgp[at], (d->n_wgp - at) * sizeof(*d->wgp));
	d->wgp[at] = *p;
	d->n_wgp++;
}

static void wgp_del(struct vpnd *d, int64_t id)
{
	ssize_t i = wgp_find(d, id);

	if (i < 0)
		return;
	memmove(&d->wgp[i], &d->wgp[i + 1], (d->n_wgp - (size_t)i - 1) * sizeof(*d->wgp));
	d->n_wgp--;
}

/* Persistent keepalive only towards peers that are online: an offline one would be sent
 * a handshake at once and every few seconds after, for nothing. */
static uint16_t peer_keepalive(const struct nm_peer *p)
{
	return p->online ? VPND_KEEPALIVE : 0;
}

/* A peer as DESIGN.md flow 3 configures it: its /32 and /128, the first endpoint (NAT
 * traversal picks better ones later), keepalive 25 s while it is online. */
static int add_peer_config(struct wg_device *dev, const struct nm_peer *p)
{
	struct wg_allowedip a4 = { .family = AF_INET, .cidr = 32 };
	struct wg_allowedip a6 = { .family = AF_INET6, .cidr = 128 };
	struct wg_peer *wp;

	if (wg_device_add_peer(dev, &wp))
		return -ENOMEM;
	memcpy(wp->public_key, p->node_key, KEY_LEN);
	wp->flags = WG_PEER_REPLACE_ALLOWEDIPS | WG_PEER_HAS_KEEPALIVE;
	wp->persistent_keepalive = peer_keepalive(p);
	if (p->n_endpoints && !vpnd_parse_endpoint(p->endpoints[0], &wp->endpoint))
		wp->flags |= WG_PEER_HAS_ENDPOINT;
	a4.ip4 = p->ip4;
	a6.ip6 = p->ip6;
	if (wg_peer_add_allowedip(wp, &a4) || wg_peer_add_allowedip(wp, &a6))
		return -ENOMEM;
	return 0;
}

static int add_peer_remove(struct wg_device *dev, const uint8_t key[KEY_LEN])
{
	struct wg_peer *wp;

	if (wg_device_add_peer(dev, &wp))
		return -ENOMEM;
	memcpy(wp->public_key, key, KEY_LEN);
	wp->flags = WG_PEER_REMOVE;
	return 0;
}

static int same_addrs(const struct nm_peer *a, const struct nm_peer *b)
{
	return !memcmp(a->node_key, b->node_key, KEY_LEN) && a->ip4.s_addr == b->ip4.s_addr &&
	       !memcmp(&a->ip6, &b->ip6, sizeof(a->ip6));
}

static int wg_apply(struct vpnd *d, struct wg_device *dev)
{
	int rc = dev->n_peers || (dev->flags & WG_DEVICE_REPLACE_PEERS) ? wg_set_device(d->wg, dev) : 0;

	wg_device_free(dev);
	if (rc) {
		log_error("wireguard configuration failed, will resync", "ifname=%s error=\"%s\"",
			  d->opts.ifname, strerror(-rc));
		d->wg_dirty = 1;
		d->stats.wg_errors++;
	}
	return rc;
}

/* Every peer the netmap has, replacing whatever WireGuard holds (errors only: sessions
 * of unchanged peers restart in the kernel backend). */
static void wg_resync(struct vpnd *d)
{
	struct wg_device *dev = wg_device_new();

	if (!dev || !d->wg)
		goto err;
	dev->flags = WG_DEVICE_REPLACE_PEERS;
	for (size_t i = 0; i < d->nm.n_peers; i++)
		if (add_peer_config(dev, &d->nm.peers[i]))
			goto err;
	d->wg_dirty = 0;
	if (!wg_apply(d, dev) && !wgp_copy_all(d))
		log_info("wireguard peers resynced", "peers=%zu", d->n_wgp);
	return;
err:
	wg_device_free(dev);
	d->wg_dirty = 1;
}

static int same_first_endpoint(const struct nm_peer *a, const struct nm_peer *b)
{
	return a->n_endpoints == b->n_endpoints &&
	       (!a->n_endpoints || !strcmp(a->endpoints[0], b->endpoints[0]));
}

/* What WireGuard needs to go from old (NULL: nothing) to p: nothing (0), or one peer
 * entry in dev (1). Same key and addresses: the endpoint when it changed to a usable one
 * (WireGuard keeps the last endpoint otherwise, and sessions go on), the keepalive when
 * the peer came online or went offline. */
static int add_peer_update(struct wg_device *dev, const struct nm_peer *old, const struct nm_peer *p)
{
	struct sockaddr_storage ep = { 0 };
	struct wg_peer *wp;
	unsigned flags = 0;

	if (old && nm_peer_wg_equal(old, p))
		return 0;
	if (!old || !same_addrs(old, p))
		return add_peer_config(dev, p) ? -ENOMEM : 1;
	if (!same_first_endpoint(old, p) && p->n_endpoints &&
	    !vpnd_parse_endpoint(p->endpoints[0], &ep))
		flags |= WG_PEER_HAS_ENDPOINT;
	if (peer_keepalive(old) != peer_keepalive(p))
		flags |= WG_PEER_HAS_KEEPALIVE;
	if (!flags)
		return 0;
	if (wg_device_add_peer(dev, &wp))
		return -ENOMEM;
	memcpy(wp->public_key, p->node_key, KEY_LEN);
	wp->flags = flags;
	wp->endpoint = ep;
	wp->persistent_keepalive = peer_keepalive(p);
	return 1;
}

/* A full netmap: removals first (a key can move to a new id), then what is new or
 * different; unchanged peers are not in the message at all. */
static void wg_sync_full(struct vpnd *d)
{
	struct wg_device *dev = wg_device_new();
	size_t added = 0, changed = 0, removed = 0;

	if (!dev)
		goto err;
	for (size_t i = 0; i < d->n_wgp; i++) {
		const struct nm_peer *p = netmap_find_id(&d->nm, d->wgp[i].id);

		if (!p || memcmp(p->node_key, d->wgp[i].node_key, KEY_LEN)) {
			if (add_peer_remove(dev, d->wgp[i].node_key))
				goto err;
			removed++;
		}
	}
	for (size_t j = 0; j < d->nm.n_peers; j++) {
		const struct nm_peer *p = &d->nm.peers[j];
		ssize_t i = wgp_find(d, p->id);
		const struct nm_peer *old = i >= 0 && !memcmp(d->wgp[i].node_key, p->node_key, KEY_LEN)
					    ? &d->wgp[i] : NULL;
		int rc = add_peer_update(dev, old, p);

		if (rc < 0)
			goto err;
		if (rc)
			(*(old ? &changed : &added))++;
	}
	if (wg_apply(d, dev))
		return;
	if (wgp_copy_all(d)) {
		d->wg_dirty = 1;
		return;
	}
	log_info("netmap applied", "peers=%zu added=%zu changed=%zu removed=%zu unchanged=%zu",
		 d->nm.n_peers, added, changed, removed, d->nm.n_peers - added - changed);
	return;
err:
	wg_device_free(dev);
	d->wg_dirty = 1;
}

static void wg_apply_peer(struct vpnd *d, const struct nm_peer *p)
{
	struct wg_device *dev;
	ssize_t i = wgp_find(d, p->id);
	const struct nm_peer *old = i >= 0 ? &d->wgp[i] : NULL;
	char ep[NM_ENDPOINT_LEN + 16] = "none", ip[INET_ADDRSTRLEN];
	int rekey = old && memcmp(old->node_key, p->node_key, KEY_LEN), rc;

	dev = wg_device_new();
	if (!dev)
		goto err;
	if (rekey && add_peer_remove(dev, old->node_key))
		goto err;
	rc = add_peer_update(dev, rekey ? NULL : old, p);
	if (rc < 0)
		goto err;
	if (p->n_endpoints)
		snprintf(ep, sizeof(ep), "%s", p->endpoints[0]);
	inet_ntop(AF_INET, &p->ip4, ip, sizeof(ip));
	if (!dev->n_peers) {
		wg_device_free(dev);   /* a name, or no usable endpoint: nothing for WireGuard */
	} else if (wg_apply(d, dev)) {
		return;
	} else if (!old) {
		log_info("peer added", "peer=%s ip=%s endpoint=%s", p->name, ip, ep);
	} else if (!rekey && same_addrs(old, p)) {
		log_info("peer endpoint changed", "peer=%s endpoint=%s", p->name, ep);
	} else {
		log_info("peer changed", "peer=%s ip=%s endpoint=%s rekeyed=%s", p->name, ip, ep,
			 rekey ? "yes" : "no");
	}
	wgp_put(d, p);
	return;
err:
	wg_device_free(dev);
	d->wg_dirty = 1;
}

static void wg_apply_removed(struct vpnd *d, const struct nm_peer *p)
{
	ssize_t i = wgp_find(d, p->id);
	struct wg_device *dev;

	if (i < 0)
		return;
	dev = wg_device_new();
	if (!dev || add_peer_remove(dev, d->wgp[i].node_key)) {
		wg_device_free(dev);
		d->wg_dirty = 1;
		return;
	}
	if (!wg_apply(d, dev)) {
		log_info("peer removed", "peer=%s", p->name);
		wgp_del(d, p->id);
	}
}

static void wg_clear_peers(struct vpnd *d)
{
	struct wg_device *dev;

	if (!d->wg || !d->n_wgp)
		return;
	dev = wg_device_new();
	if (!dev) {
		d->wg_dirty = 1;
		return;
	}
	dev->flags = WG_DEVICE_REPLACE_PEERS;
	if (!wg_apply(d, dev)) {
		log_info("all peers removed", "peers=%zu", d->n_wgp);
		d->n_wgp = 0;
	}
}

static void iface_down(struct vpnd *d)
{
	if (!d->wg)
		return;
	wg_close(d->wg);
	d->wg = NULL;
	d->ifindex = 0;
	d->have_addrs = 0;
	d->n_wgp = 0;
	d->wg_dirty = 0;
	memset(d->wg_pub, 0, sizeof(d->wg_pub));
	log_info("interface removed", "ifname=%s", d->opts.ifname);
}

static int set_addrs(struct vpnd *d, const struct in_addr *ip4, const struct in6_addr *ip6)
{
	static const uint8_t cgnat[4] = { 100, 64, 0, 0 };
	struct in6_addr ula;
	char a4[INET_ADDRSTRLEN], a6[INET6_ADDRSTRLEN];
	int rc;

	if (d->have_addrs && d->if_ip4.s_addr == ip4->s_addr &&
	    !memcmp(&d->if_ip6, ip6, sizeof(*ip6)))
		return 0;
	if (d->have_addrs) {
		netif_addr_del(d->nif, d->ifindex, AF_INET, &d->if_ip4, 32);
		netif_addr_del(d->nif, d->ifindex, AF_INET6, &d->if_ip6, 128);
		d->have_addrs = 0;
	}
	inet_ntop(AF_INET, ip4, a4, sizeof(a4));
	inet_ntop(AF_INET6, ip6, a6, sizeof(a6));
	rc = netif_addr_add(d->nif, d->ifindex, AF_INET, ip4, 32);
	if (rc) {
		log_error("cannot set address", "ifname=%s addr=%s/32 error=\"%s\"", d->opts.ifname,
			  a4, strerror(-rc));
		return rc;
	}
	rc = netif_route_add(d->nif, d->ifindex, AF_INET, cgnat, 10);
	if (rc) {
		log_error("cannot add route", "ifname=%s dst=100.64.0.0/10 error=\"%s\"",
			  d->opts.ifname, strerror(-rc));
		return rc;
	}
	/* IPv6 may be off in this namespace or kernel: IPv4 still works then. */
	vpnd_ula48(ip6, &ula);
	rc = netif_addr_add(d->nif, d->ifindex, AF_INET6, ip6, 128);
	if (!rc)
		rc = netif_route_add(d->nif, d->ifindex, AF_INET6, &ula, 48);
	if (rc)
		log_warn("cannot set IPv6 address or route", "ifname=%s addr=%s/128 error=\"%s\"",
			 d->opts.ifname, a6, strerror(-rc));
	d->if_ip4 = *ip4;
	d->if_ip6 = *ip6;
	d->have_addrs = 1;
	log_info("interface addresses set", "ifname=%s ip4=%s ip6=%s", d->opts.ifname, a4, a6);
	return 0;
}

/* The interface with the node key, port, MTU and the node's addresses and routes. */
static int iface_up(struct vpnd *d)
{
	struct wg_device dev;
	int rc;

	if (!d->have_keys)
		return -ENOKEY;
	if (!d->nif) {
		rc = netif_open(&d->nif);
		if (rc) {
			snprintf(d->reason, sizeof(d->reason), "cannot open rtnetlink: %s", strerror(-rc));
			return rc;
		}
	}
	memset(&dev, 0, sizeof(dev));
	if (!d->wg) {
		/* With our key: a link a vpnd killed with -9 left behind is taken back. */
		rc = wg_open(d->opts.backend, d->opts.ifname, d->keys.node_pub, &d->wg);
		if (rc) {
			snprintf(d->reason, sizeof(d->reason), "cannot create WireGuard interface %s: %s",
				 d->opts.ifname, rc == -ENOENT ? "wireguard-go is not installed"
					 : rc == -EEXIST ? "the name is taken (another vpnd or a leftover link?)"
					 : strerror(-rc));
			return rc;
		}
		d->n_wgp = 0;
		d->have_addrs = 0;
		memcpy(dev.private_key, d->keys.node_priv, KEY_LEN);
		dev.listen_port = d->opts.port;
		dev.flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_REPLACE_PEERS;
		rc = wg_set_device(d->wg, &dev);
		sodium_memzero(dev.private_key, sizeof(dev.private_key));
		if (rc) {
			snprintf(d->reason, sizeof(d->reason), "cannot configure %s: %s", d->opts.ifname,
				 strerror(-rc));
			goto err;
		}
		memcpy(d->wg_pub, d->keys.node_pub, KEY_LEN);
		rc = netif_index(d->nif, d->opts.ifname);
		if (rc < 0) {
			snprintf(d->reason, sizeof(d->reason), "interface %s vanished", d->opts.ifname);
			goto err;
		}
		d->ifindex = rc;
		rc = netif_set_mtu(d->nif, d->ifindex, NETIF_DEFAULT_MTU);
		if (!rc)
			rc = netif_set_up(d->nif, d->ifindex, 1);
		if (rc) {
			snprintf(d->reason, sizeof(d->reason), "cannot bring %s up: %s", d->opts.ifname,
				 strerror(-rc));
			goto err;
		}
		log_info("interface up", "ifname=%s backend=%s port=%u mtu=%d", d->opts.ifname,
			 wg_backend_name(d->wg), d->opts.port, NETIF_DEFAULT_MTU);
	} else if (memcmp(d->wg_pub, d->keys.node_pub, KEY_LEN)) {
		/* Re-registered after expiry with a new node key. */
		memcpy(dev.private_key, d->keys.node_priv, KEY_LEN);
		dev.flags = WG_DEVICE_HAS_PRIVATE_KEY;
		rc = wg_set_device(d->wg, &dev);
		sodium_memzero(dev.private_key, sizeof(dev.private_key));
		if (rc) {
			snprintf(d->reason, sizeof(d->reason), "cannot set the new node key: %s",
				 strerror(-rc));
			goto err;
		}
		memcpy(d->wg_pub, d->keys.node_pub, KEY_LEN);
		log_info("interface key changed", "ifname=%s", d->opts.ifname);
	}
	rc = set_addrs(d, &d->nm.self.ip4, &d->nm.self.ip6);
	if (rc) {
		snprintf(d->reason, sizeof(d->reason), "cannot set the addresses of %s: %s",
			 d->opts.ifname, strerror(-rc));
		goto err;
	}
	d->wg_failures = 0;
	return 0;
err:
	iface_down(d);
	return rc;
}

/* ---- endpoints posted to coord ---- */

static void post_endpoints(struct vpnd *d);

static void endpoints_done(struct coord_call *call, void *arg)
{
	struct vpnd *d = arg;
	char err[200];

	d->jobs--;
	d->ep_call = NULL;
	if (d->closing) {
		coord_call_free(call);
		return;
	}
	if (!call->rc && call->status == 200) {
		memcpy(d->ep_posted, d->ep_posting, sizeof(d->ep_posted));
		d->n_ep_posted = d->n_ep_posting;
		d->ep_posted_ok = 1;
		d->stats.endpoint_posts++;
		log_info("endpoints posted", "count=%d first=%s", d->n_ep_posted,
			 d->n_ep_posted ? d->ep_posted[0] : "none");
		post_endpoints(d);   /* the addresses may have changed while this was in flight */
	} else {
		coord_call_error(call, err, sizeof(err));
		log_warn("cannot post endpoints", "error=\"%s\"", err);
		d->ep_posted_ok = 0;
		/* Re-registered (a new token) or a new stream while this was in flight: the
		 * refusal is stale, post again now rather than at the next periodic retry. */
		if (strcmp(call->token, d->prefs.token) || d->ep_fresh) {
			coord_call_free(call);
			post_endpoints(d);
			return;
		}
	}
	coord_call_free(call);
}

static void post_endpoints(struct vpnd *d)
{
	char eps[NM_MAX_ENDPOINTS][NM_ENDPOINT_LEN];
	struct coord_call *call;
	json_t *body, *a;
	int n, same;

	if (d->ep_call || !d->wg || d->state != VPND_RUNNING || !d->prefs.token[0] || d->closing)
		return;
	n = vpnd_local_endpoints(d->opts.ifname, &d->nm.self.ip4, &d->nm.self.ip6, d->opts.port,
				 eps, NM_MAX_ENDPOINTS);
	if (n < 0) {
		log_warn("cannot list local addresses", "error=\"%s\"", strerror(-n));
		return;
	}
	same = d->ep_posted_ok && n == d->n_ep_posted;
	for (int i = 0; same && i < n; i++)
		same = !strcmp(eps[i], d->ep_posted[i]);
	if (same && !d->ep_fresh)
		return;
	a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_string(eps[i]));
	body = json_pack("{s:o, s:s}", "endpoints", a, "home_relay", "");
	call = coord_call_new(CALL_ENDPOINTS, d->prefs.coord, d->prefs.pin);
	if (!body || !call || !(call->body = json_dump_compact(body, &call->body_len))) {
		json_decref(body);
		coord_call_free(call);
		return;
	}
	json_decref(body);
	snprintf(call->token, sizeof(call->token), "%s", d->prefs.token);
	memcpy(d->ep_posting, eps, sizeof(eps));
	d->n_ep_posting = n;
	if (coord_call_start(d->loop, call, endpoints_done, d)) {
		coord_call_free(call);
		return;
	}
	d->ep_fresh = 0;
	d->ep_call = call;
	d->jobs++;
}

static void on_links_changed(struct linkmon *lm, void *arg)
{
	struct vpnd *d = arg;

	log_debug("links or addresses changed", "events=%lu overruns=%lu", lm->events, lm->overruns);
	post_endpoints(d);
}

/* ---- the netmap stream ---- */

static void forget_node(struct vpnd *d)
{
	sodium_memzero(d->prefs.token, sizeof(d->prefs.token));
	d->prefs.want_up = 0;
	d->prefs.node_state[0] = 0;
	d->prefs.name[0] = 0;
	d->prefs.ip4[0] = 0;
	d->prefs.ip6[0] = 0;
}

static void reset_netmap(struct vpnd *d)
{
	netmap_free(&d->nm);
	netmap_init(&d->nm);
	d->nm_from_cache = 0;
}

static void cache_remove(struct vpnd *d)
{
	int rc = nmcache_remove(&d->cache);

	if (rc)
		log_error("cannot delete the netmap cache", "path=%s error=\"%s\"", d->cache.path,
			  strerror(-rc));
}

/* Only a running node's netmap is worth keeping: pending, expired or anything else
 * deletes it. */
static void cache_full(struct vpnd *d, const char *line, size_t len)
{
	int rc;

	if (strcmp(d->nm.self.state, "running")) {
		cache_remove(d);
		return;
	}
	rc = nmcache_write_full(&d->cache, line, len);
	if (rc)
		log_error("cannot write the netmap cache", "path=%s error=\"%s\"", d->cache.path,
			  strerror(-rc));
}

static void cache_delta(struct vpnd *d, const char *line, size_t len)
{
	int rc = nmcache_append(&d->cache, line, len);

	if (rc == -EFBIG)
		log_info("netmap cache dropped until the next full map", "reason=\"too many deltas\"");
	else if (rc && rc != -EBADF)
		log_error("cannot append to the netmap cache, dropped", "path=%s error=\"%s\"",
			  d->cache.path, strerror(-rc));
}

/* Deleted or rejected by an admin (or the token is unknown): nothing is left to run. */
static void node_gone(struct vpnd *d, const char *why)
{
	char msg[VPND_REASON_LEN];

	log_warn("removed from the network", "reason=%s", why);
	coordc_stop(&d->cc);
	d->cc_connected = 0;
	iface_down(d);
	reset_netmap(d);
	cache_remove(d);
	forget_node(d);
	save_prefs(d);
	snprintf(msg, sizeof(msg), "%s by an admin of the coordination server", why);
	set_state(d, VPND_STOPPED, msg);
	ups_settle(d, 403, msg);
}

static void remember_self(struct vpnd *d)
{
	const struct nm_self *s = &d->nm.self;
	char a4[INET_ADDRSTRLEN], a6[INET6_ADDRSTRLEN];

	inet_ntop(AF_INET, &s->ip4, a4, sizeof(a4));
	inet_ntop(AF_INET6, &s->ip6, a6, sizeof(a6));
	if (strcmp(d->prefs.name, s->name) || strcmp(d->prefs.ip4, a4) || strcmp(d->prefs.ip6, a6) ||
	    strcmp(d->prefs.node_state, s->state)) {
		snprintf(d->prefs.name, sizeof(d->prefs.name), "%s", s->name);
		snprintf(d->prefs.ip4, sizeof(d->prefs.ip4), "%s", a4);
		snprintf(d->prefs.ip6, sizeof(d->prefs.ip6), "%s", a6);
		snprintf(d->prefs.node_state, sizeof(d->prefs.node_state), "%s", s->state);
		save_prefs(d);
	}
}

static void on_full(struct vpnd *d)
{
	const struct nm_self *s = &d->nm.self;
	char msg[VPND_REASON_LEN];

	remember_self(d);
	if (!strcmp(s->state, "running")) {
		if (iface_up(d)) {
			d->wg_failures++;
			d->stats.wg_errors++;
			log_error("cannot bring the interface up", "reason=\"%s\"", d->reason);
			set_state(d, VPND_STOPPED, d->reason);
			if (!d->reg)
				ups_settle(d, 500, d->reason);
			return;
		}
		wg_sync_full(d);
		set_state(d, VPND_RUNNING, "");
		post_endpoints(d);
	} else if (!strcmp(s->state, "needs-approval")) {
		wg_clear_peers(d);
		snprintf(msg, sizeof(msg), "waiting for approval: coord nodes approve %s", s->name);
		set_state(d, VPND_NEEDS_APPROVAL, msg);
	} else if (!strcmp(s->state, "expired")) {
		wg_clear_peers(d);
		set_state(d, VPND_EXPIRED, "the node key expired: run vpnctl up (with --auth-key, or "
			  "an admin approves it again)");
	} else {
		wg_clear_peers(d);
		snprintf(msg, sizeof(msg), "coord reports the state '%s'", s->state);
		set_state(d, VPND_STOPPED, msg);
	}
	if (!d->reg)
		ups_settle(d, 200, NULL);
}

static void on_line(struct coordc *cc, const char *line, size_t len, void *arg)
{
	struct vpnd *d = arg;
	struct nm_change chg;
	int rc, running;

	rc = netmap_apply_line(&d->nm, line, len, &chg);
	if (rc == -EPROTO) {
		log_warn("netmap delta before the full map, skipped", "bytes=%zu", len);
		d->stats.netmap_bad_lines++;
		return;
	}
	if (rc) {
		log_warn("bad netmap line skipped", "bytes=%zu error=\"%s\"", len, strerror(-rc));
		d->stats.netmap_bad_lines++;
		return;
	}
	d->stats.netmap_lines++;
	running = d->state == VPND_RUNNING && d->wg;
	switch (chg.kind) {
	case NM_FULL:
		log_debug("full netmap", "peers=%zu state=%s", d->nm.n_peers, d->nm.self.state);
		d->nm_from_cache = 0;
		on_full(d);
		cache_full(d, line, len);
		break;
	case NM_PEER_ADDED:
	case NM_PEER_CHANGED:
		if (running)
			wg_apply_peer(d, chg.peer);
		cache_delta(d, line, len);
		break;
	case NM_PEER_REMOVED:
		if (running)
			wg_apply_removed(d, &chg.removed);
		cache_delta(d, line, len);
		break;
	case NM_GONE:
		node_gone(d, chg.reason[0] ? chg.reason : "removed");
		break;
	case NM_RELAYS:
		log_debug("relay map changed", "relays=%d", d->nm.n_relays);
		cache_delta(d, line, len);
		break;
	case NM_KEEPALIVE:
	case NM_NONE:
		break;
	}
	nm_change_clear(&chg);
}

static void on_cc_event(struct coordc *cc, enum cc_event ev, int detail, void *arg)
{
	struct vpnd *d = arg;
	char msg[VPND_URL_MAX + VPND_REASON_LEN + 64];

	switch (ev) {
	case CC_CONNECTED:
		d->cc_connected = 1;
		d->coord_error[0] = 0;
		d->ep_fresh = 1;   /* coord may have restarted and forgotten them */
		break;
	case CC_LOST:
		d->cc_connected = 0;
		d->stats.coord_stream_lost++;
		nmcache_close(&d->cache);   /* the next stream starts with a full */
		snprintf(d->coord_error, sizeof(d->coord_error), "%s",
			 detail == -EPERM ? "the coordination server's certificate does not match the pin"
					  : strerror(-detail));
		if (d->ups && !d->reg) {
			snprintf(msg, sizeof(msg), "cannot reach coord at %s: %s; vpnd keeps trying",
				 d->prefs.coord, d->coord_error);
			ups_settle(d, 502, msg);
		}
		break;
	case CC_REFUSED:
		d->cc_connected = 0;
		if (detail == 401) {
			node_gone(d, "deleted");
		} else if (detail == 403) {
			node_gone(d, "rejected");
		} else {
			snprintf(d->coord_error, sizeof(d->coord_error), "coord answered HTTP %d", detail);
		}
		break;
	}
}

static void start_stream(struct vpnd *d)
{
	int rc;

	reset_netmap(d);
	nmcache_close(&d->cache);
	d->cc_connected = 0;
	rc = coordc_start(&d->cc, d->prefs.coord, d->prefs.pin, d->prefs.token);
	if (rc) {
		snprintf(d->coord_error, sizeof(d->coord_error), "cannot start the netmap stream: %s",
			 strerror(-rc));
		log_error("cannot start the netmap stream", "coord=%s error=\"%s\"", d->prefs.coord,
			  strerror(-rc));
		ups_settle(d, 500, d->coord_error);
	}
}

/* ---- registration ---- */

static void register_done(struct coord_call *call, void *arg)
{
	struct vpnd *d = arg;
	char err[VPND_REASON_LEN], emsg[64];
	const char *token, *name, *state, *a4, *a6;
	json_t *o = NULL, *ips;

	d->jobs--;
	d->reg = NULL;
	if (d->closing)
		goto out;
	if (call->rc || call->status != 200) {
		coord_call_error(call, err, sizeof(err));
		log_warn("registration failed", "coord=%s error=\"%s\"", call->url, err);
		if (d->state != VPND_RUNNING)
			set_state(d, d->state, err);
		ups_settle(d, 502, err);
		goto out;
	}
	o = json_parse_object(call->resp, call->resp_len, emsg, sizeof(emsg));
	ips = o ? json_object_get(o, "ips") : NULL;
	if (!o || json_get_str(o, "token", &token) || json_get_str(o, "name", &name) ||
	    json_get_str(o, "state", &state) || strlen(token) >= sizeof(d->prefs.token) ||
	    strlen(name) >= sizeof(d->prefs.name) || !json_is_array(ips) ||
	    !(a4 = json_string_value(json_array_get(ips, 0))) ||
	    !(a6 = json_string_value(json_array_get(ips, 1))) ||
	    strlen(a4) >= sizeof(d->prefs.ip4) || strlen(a6) >= sizeof(d->prefs.ip6)) {
		log_error("registration answer malformed", "coord=%s", call->url);
		ups_settle(d, 502, "coord's registration answer is malformed");
		goto out;
	}
	snprintf(d->prefs.token, sizeof(d->prefs.token), "%s", token);
	snprintf(d->prefs.name, sizeof(d->prefs.name), "%s", name);
	snprintf(d->prefs.node_state, sizeof(d->prefs.node_state), "%s", state);
	snprintf(d->prefs.ip4, sizeof(d->prefs.ip4), "%s", a4);
	snprintf(d->prefs.ip6, sizeof(d->prefs.ip6), "%s", a6);
	save_prefs(d);
	log_info("registered", "name=%s state=%s ip4=%s", name, state, a4);
	if (!d->prefs.want_up) {
		/* `down` came while registering: keep the registration, stay down. */
		ups_settle(d, 409, "vpnd was told to go down meanwhile");
		goto out;
	}
	/* The new token streams from now on; the interface stays as it is. */
	start_stream(d);
	if (!strcmp(state, "needs-approval")) {
		snprintf(err, sizeof(err), "waiting for approval: coord nodes approve %s", name);
		set_state(d, VPND_NEEDS_APPROVAL, err);
		ups_settle(d, 200, NULL);
	}
out:
	json_decref(o);
	coord_call_free(call);
}

static int start_register(struct vpnd *d, const char *auth_key)
{
	struct coord_call *call;
	int rc, rotate = d->state == VPND_EXPIRED || !strcmp(d->prefs.node_state, "expired");

	if (!d->have_keys) {
		rc = node_keys_load(d->opts.state_dir, 1, &d->keys);
		if (rc)
			return rc;
		d->have_keys = 1;
		log_info("node keys created", "dir=%s", d->opts.state_dir);
	} else if (rotate) {
		/* coord takes the same machine key with a new node key (and an auth key or an
		 * admin's approval) back under the same name and addresses. */
		rc = node_keys_rotate(d->opts.state_dir, &d->keys);
		if (rc)
			return rc;
		log_info("node key rotated", "reason=expired");
	}
	call = coord_call_new(CALL_REGISTER, d->prefs.coord, d->prefs.pin);
	if (!call)
		return -ENOMEM;
	call->keys = d->keys;
	snprintf(call->hostname, sizeof(call->hostname), "%s", d->prefs.hostname);
	snprintf(call->auth_key, sizeof(call->auth_key), "%s", auth_key ? auth_key : "");
	rc = coord_call_start(d->loop, call, register_done, d);
	if (rc) {
		coord_call_free(call);
		return rc;
	}
	d->reg = call;
	d->jobs++;
	log_info("registering", "coord=%s hostname=%s auth_key=%s", d->prefs.coord,
		 d->prefs.hostname, auth_key && *auth_key ? "yes" : "no");
	return 0;
}

/* ---- control actions ---- */

static void use_cache(struct vpnd *d);

void vpnd_up(struct vpnd *d, struct up_request *r, struct http_request *req)
{
	int coord_changed, need_register, pin_changed = 0, rc;
	char msg[VPND_REASON_LEN];

	if (d->reg || d->logout_call) {
		http_respond_error(req, 409, "a registration or logout is in progress; try again in a moment");
		return;
	}
	if (!r->coord[0] && !d->prefs.coord[0]) {
		http_respond_error(req, 400, "this node has not joined a network yet: give --coord URL");
		return;
	}
	coord_changed = r->coord[0] && strcmp(r->coord, d->prefs.coord);
	if (coord_changed) {
		if (d->prefs.coord[0])
			log_info("coordination server changed", "from=%s to=%s", d->prefs.coord, r->coord);
		coordc_stop(&d->cc);
		iface_down(d);
		reset_netmap(d);
		cache_remove(d);
		forget_node(d);
		snprintf(d->prefs.coord, sizeof(d->prefs.coord), "%s", r->coord);
		d->prefs.pin[0] = 0;
		set_state(d, VPND_STOPPED, "");
	}
	if (r->pin[0] && strcmp(r->pin, d->prefs.pin)) {
		/* A new pin: the stream must verify coord with it from now on. */
		snprintf(d->prefs.pin, sizeof(d->prefs.pin), "%s", r->pin);
		pin_changed = 1;
	}
	if (r->hostname[0])
		snprintf(d->prefs.hostname, sizeof(d->prefs.hostname), "%s", r->hostname);
	if (!d->prefs.hostname[0] && gethostname(d->prefs.hostname, sizeof(d->prefs.hostname) - 1))
		snprintf(d->prefs.hostname, sizeof(d->prefs.hostname), "node");
	d->prefs.want_up = 1;
	save_prefs(d);

	need_register = !d->prefs.token[0] || !d->have_keys || d->state == VPND_EXPIRED ||
			!strcmp(d->prefs.node_state, "expired") ||
			(r->auth_key[0] && d->state != VPND_RUNNING &&
			 strcmp(d->prefs.node_state, "running"));
	if (need_register) {
		rc = start_register(d, r->auth_key);
		if (rc) {
			snprintf(msg, sizeof(msg), "cannot register: %s", strerror(-rc));
			http_respond_error(req, 500, msg);
			return;
		}
		ups_add(d, req);
		return;
	}
	if (pin_changed && d->cc.active) {
		log_info("coord pin changed, reconnecting", "coord=%s", d->prefs.coord);
		start_stream(d);
		ups_add(d, req);
		return;
	}
	if (d->cc.active && d->nm.have_full &&
	    (d->state == VPND_RUNNING || d->state == VPND_NEEDS_APPROVAL)) {
		control_answer_up(d, req, 200, NULL);
		return;
	}
	if (d->state == VPND_RUNNING && d->wg) {
		/* Running on the last netmap while coord is away. */
		control_answer_up(d, req, 200, NULL);
		return;
	}
	log_info("joining", "coord=%s", d->prefs.coord);
	if (!d->cc.active) {
		start_stream(d);
		use_cache(d);   /* back up at once even while coord is away */
		if (d->state == VPND_RUNNING && d->wg) {
			control_answer_up(d, req, 200, NULL);
			return;
		}
	}
	ups_add(d, req);
}

void vpnd_down(struct vpnd *d, struct http_request *req)
{
	d->prefs.want_up = 0;
	save_prefs(d);
	coordc_stop(&d->cc);
	d->cc_connected = 0;
	iface_down(d);
	reset_netmap(d);
	nmcache_close(&d->cache);   /* kept: the next up or start may use it */
	set_state(d, VPND_STOPPED, "stopped by vpnctl down");
	ups_settle(d, 409, "vpnd was told to go down");
	log_info("down", "ifname=%s", d->opts.ifname);
	control_respond_json(req, 200, json_pack("{s:s}", "state", "stopped"));
}

static void drop_identity(struct vpnd *d)
{
	int rc;

	forget_node(d);
	cache_remove(d);
	d->prefs.coord[0] = 0;
	d->prefs.pin[0] = 0;
	d->prefs.hostname[0] = 0;
	rc = prefs_remove(d->opts.state_dir);
	if (!rc)
		rc = node_keys_remove(d->opts.state_dir);
	if (rc)
		log_error("cannot delete keys or prefs", "dir=%s error=\"%s\"", d->opts.state_dir,
			  strerror(-rc));
	node_keys_wipe(&d->keys);
	d->have_keys = 0;
	tls_session_cache_clear();   /* nothing of the old identity's sessions stays in memory */
	memset(d->ep_posted, 0, sizeof(d->ep_posted));
	d->n_ep_posted = 0;
	d->ep_posted_ok = 0;
}

static void logout_done(struct coord_call *call, void *arg)
{
	struct vpnd *d = arg;
	struct http_request *req = d->logout_req;
	char err[VPND_REASON_LEN];
	int told = !call->rc && (call->status == 200 || call->status == 401);

	d->jobs--;
	d->logout_call = NULL;
	d->logout_req = NULL;
	if (d->closing) {
		coord_call_free(call);
		return;
	}
	if (!told) {
		coord_call_error(call, err, sizeof(err));
		log_warn("coord was not told about the logout", "error=\"%s\"", err);
	}
	drop_identity(d);
	set_state(d, VPND_STOPPED, "logged out");
	log_info("logged out", "coord_notified=%s", told ? "yes" : "no");
	if (req)
		control_respond_json(req, 200, json_pack("{s:b, s:b}", "ok", 1, "coord_notified", told));
	coord_call_free(call);
}

void vpnd_logout(struct vpnd *d, struct http_request *req)
{
	struct coord_call *call;

	if (d->reg || d->logout_call) {
		http_respond_error(req, 409, "a registration or logout is in progress; try again in a moment");
		return;
	}
	coordc_stop(&d->cc);
	d->cc_connected = 0;
	iface_down(d);
	reset_netmap(d);
	ups_settle(d, 409, "vpnd is logging out");
	d->prefs.want_up = 0;
	if (d->prefs.token[0] && d->prefs.coord[0]) {
		call = coord_call_new(CALL_LOGOUT, d->prefs.coord, d->prefs.pin);
		if (call) {
			snprintf(call->token, sizeof(call->token), "%s", d->prefs.token);
			if (!coord_call_start(d->loop, call, logout_done, d)) {
				d->logout_call = call;
				d->logout_req = req;
				d->jobs++;
				return;
			}
			coord_call_free(call);
		}
	}
	drop_identity(d);
	set_state(d, VPND_STOPPED, "logged out");
	log_info("logged out", "coord_notified=no");
	control_respond_json(req, 200, json_pack("{s:b, s:b}", "ok", 1, "coord_notified", 0));
}

static int cmp_wg_peer(const void *a, const void *b)
{
	return memcmp(((const struct wg_peer *)a)->public_key, ((const struct wg_peer *)b)->public_key,
		      WG_KEY_LEN);
}

json_t *vpnd_status_json(struct vpnd *d)
{
	struct wg_device *dev = NULL;
	json_t *self, *peers = json_array(), *ips = json_array(), *o;
	int64_t now = (int64_t)time(NULL);
	char pub[KEY_B64_LEN] = "";
	int rc;

	if (d->prefs.ip4[0])
		json_array_append_new(ips, json_string(d->prefs.ip4));
	if (d->prefs.ip6[0])
		json_array_append_new(ips, json_string(d->prefs.ip6));
	if (d->have_keys)
		key_to_base64(d->keys.node_pub, pub);
	self = json_pack("{s:s, s:s, s:o, s:s, s:s, s:b, s:s, s:s, s:s, s:i, s:s}",
			 "name", d->prefs.name, "state", vpnd_state_name(d->state), "ips", ips,
			 "reason", d->reason, "coord", d->prefs.coord, "coord_connected",
			 d->cc_connected, "coord_error", d->coord_error, "ifname",
			 d->wg ? d->opts.ifname : "", "backend", d->wg ? wg_backend_name(d->wg) : "",
			 "port", (int)d->opts.port, "node_key", pub);
	if (self)
		json_object_set_new(self, "netmap_from_cache", json_boolean(d->nm_from_cache));
	if (self && d->nm.have_full && d->nm.self.fqdn[0])
		json_object_set_new(self, "fqdn", json_string(d->nm.self.fqdn));
	if (d->wg) {
		rc = wg_get_device(d->wg, &dev);
		if (rc)
			log_warn("cannot read the interface", "ifname=%s error=\"%s\"", d->opts.ifname,
				 strerror(-rc));
		else if (dev->n_peers)
			qsort(dev->peers, dev->n_peers, sizeof(*dev->peers), cmp_wg_peer);
	}
	for (size_t i = 0; d->state == VPND_RUNNING && i < d->nm.n_peers; i++) {
		const struct nm_peer *p = &d->nm.peers[i];
		const struct wg_peer *wp = NULL;
		char a4[INET_ADDRSTRLEN], a6[INET6_ADDRSTRLEN], ep[NM_ENDPOINT_LEN + 16] = "";
		int64_t hs = 0;

		if (dev && dev->n_peers) {
			struct wg_peer key;
			memcpy(key.public_key, p->node_key, WG_KEY_LEN);
			wp = bsearch(&key, dev->peers, dev->n_peers, sizeof(*dev->peers), cmp_wg_peer);
		}
		if (wp && (wp->flags & WG_PEER_HAS_ENDPOINT))
			vpnd_format_endpoint(&wp->endpoint, ep, sizeof(ep));
		if (wp)
			hs = wp->last_handshake_sec;
		inet_ntop(AF_INET, &p->ip4, a4, sizeof(a4));
		inet_ntop(AF_INET6, &p->ip6, a6, sizeof(a6));
		o = json_pack("{s:s, s:[s,s], s:b, s:s, s:s, s:s, s:I, s:I, s:I}", "name", p->name,
			      "ips", a4, a6, "online", p->online,
			      "path", ep[0] && hs && now - hs < VPND_DIRECT_WINDOW ? "direct" : "none",
			      "endpoint", ep, "relay", "", "last_handshake", (json_int_t)hs,
			      "rx_bytes", (json_int_t)(wp ? wp->rx_bytes : 0),
			      "tx_bytes", (json_int_t)(wp ? wp->tx_bytes : 0));
		if (o)
			json_array_append_new(peers, o);
	}
	wg_device_free(dev);
	return json_pack("{s:o, s:o}", "self", self ? self : json_object(), "peers", peers);
}

/* ---- lifecycle ---- */

static void on_tick(uv_timer_t *t)
{
	struct vpnd *d = t->data;

	d->ticks++;
	/* Deltas are written as they come and made durable here, at most once a second: an
	 * fsync per online flip would stall the loop on a busy tailnet. */
	if (nmcache_sync(&d->cache))
		log_warn("cannot sync the netmap cache", "path=%s", d->cache.path);
	if (d->ups)
		ups_expire(d);
	if (d->state == VPND_RUNNING && d->wg && d->wg_dirty)
		wg_resync(d);
	if (d->state == VPND_RUNNING && (d->ticks % ENDPOINT_CHECK_TICKS == 0 ||
					  (!d->ep_posted_ok && d->ticks % ENDPOINT_RETRY_TICKS == 0)))
		post_endpoints(d);
	/* The netmap says run but the interface failed: try again now and then. */
	if (d->state == VPND_STOPPED && !d->wg && d->nm.have_full && d->cc.active &&
	    !strcmp(d->nm.self.state, "running") && d->ticks % IFACE_RETRY_TICKS == 0)
		on_full(d);
}

/* A start while coord is away: the last netmap on disk brings the interface and the peers
 * up at once; coord's own full, when it comes, goes through wg_sync_full like any other
 * and touches only what differs. */
static void use_cache(struct vpnd *d)
{
	struct nmcache_info info;
	int rc;

	rc = nmcache_load(d->opts.state_dir, d->keys.node_pub, (int64_t)time(NULL), &d->nm, &info);
	if (rc == -ENOENT)
		return;
	if (rc) {
		log_warn("netmap cache ignored", "path=%s reason=\"%s\" age_s=%lld", d->cache.path,
			 info.why, (long long)info.age_s);
		if (rc != -ENOMEM)
			cache_remove(d);   /* the next full writes a new one */
		return;
	}
	if (info.bad_lines)
		log_warn("netmap cache lines refused", "path=%s bad_lines=%zu", d->cache.path,
			 info.bad_lines);
	log_info("netmap from cache", "peers=%zu age_s=%lld deltas=%zu", d->nm.n_peers,
		 (long long)info.age_s, info.lines);
	d->nm_from_cache = 1;
	on_full(d);
	if (d->state == VPND_RUNNING)
		set_state(d, VPND_RUNNING, "on the cached netmap until coord answers");
}

int vpnd_init(struct vpnd *d, uv_loop_t *loop, const struct vpnd_opts *opts)
{
	int rc;

	memset(d, 0, sizeof(*d));
	d->loop = loop;
	d->opts = *opts;
	netmap_init(&d->nm);
	nmcache_init(&d->cache, opts->state_dir);
	rc = prefs_load(opts->state_dir, &d->prefs);
	if (rc && rc != -ENOENT) {
		log_error("cannot read prefs", "dir=%s error=\"%s\"", opts->state_dir, strerror(-rc));
		return rc;
	}
	rc = node_keys_load(opts->state_dir, 0, &d->keys);
	if (!rc)
		d->have_keys = 1;
	else if (rc != -ENOENT) {
		log_error("cannot read node keys", "dir=%s error=\"%s\"", opts->state_dir, strerror(-rc));
		return rc;
	}
	coordc_init(&d->cc, loop, on_line, on_cc_event, d);
	rc = control_listen(d);
	if (rc) {
		log_error("cannot listen on the control socket", "path=%s error=\"%s\"", opts->socket,
			  strerror(-rc));
		coordc_close(&d->cc);
		return rc;
	}
	if (opts->metrics) {
		rc = metrics_server_start(loop, opts->metrics, vpnd_metrics_fill, d, &d->metrics);
		if (rc) {
			log_error("cannot listen for metrics", "addr=%s error=\"%s\"", opts->metrics,
				  strerror(-rc));
			control_close(d);
			coordc_close(&d->cc);
			return rc;
		}
	}
	rc = linkmon_init(&d->linkmon, loop, opts->ifname, on_links_changed, d);
	if (rc)
		log_warn("cannot watch address changes, checking every minute", "error=\"%s\"",
			 strerror(-rc));
	uv_timer_init(loop, &d->tick);
	d->tick.data = d;
	uv_timer_start(&d->tick, on_tick, TICK_MS, TICK_MS);
	set_state(d, VPND_STOPPED, "not joined: run vpnctl up --coord URL");
	if (d->prefs.want_up && d->prefs.token[0] && d->prefs.coord[0] && d->have_keys) {
		log_info("rejoining", "coord=%s name=%s", d->prefs.coord, d->prefs.name);
		set_state(d, VPND_STOPPED, "connecting to coord");
		start_stream(d);
		use_cache(d);
	} else if (d->prefs.token[0]) {
		set_state(d, VPND_STOPPED, "down: run vpnctl up");
	}
	log_info("vpnd started", "state_dir=%s socket=%s ifname=%s backend=%s port=%u",
		 opts->state_dir, opts->socket, opts->ifname, opts->backend, opts->port);
	return 0;
}

void vpnd_shutdown(struct vpnd *d)
{
	if (d->closing)
		return;
	d->closing = 1;
	ups_settle(d, 503, "vpnd is shutting down");
	if (d->logout_req) {
		http_respond_error(d->logout_req, 503, "vpnd is shutting down");
		d->logout_req = NULL;
	}
	control_close(d);
	metrics_server_free(d->metrics);
	d->metrics = NULL;
	coordc_close(&d->cc);
	linkmon_close(&d->linkmon);
	iface_down(d);
	if (d->nif) {
		netif_close(d->nif);
		d->nif = NULL;
	}
	uv_close((uv_handle_t *)&d->tick, NULL);
	reset_netmap(d);
	nmcache_close(&d->cache);
	free(d->wgp);
	d->wgp = NULL;
	d->n_wgp = d->cap_wgp = 0;
	node_keys_wipe(&d->keys);
	prefs_wipe(&d->prefs);
	log_info("vpnd stopped", "jobs_in_flight=%d", d->jobs);
}
