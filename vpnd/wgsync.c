/* wgsync.c - the netmap turned into the smallest WireGuard change (see wgsync.h).
 * DESIGN.md flow 3: a peer gets its /32 and /128, one endpoint (the chosen path, else the
 * netmap's first), and persistent keepalive while it is online. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/log.h"
#include "wgsync.h"

void wgsync_init(struct wgsync *s, const char *ifname)
{
	memset(s, 0, sizeof(*s));
	s->ifname = ifname;
}

void wgsync_attach(struct wgsync *s, wgsync_set_fn set, void *arg)
{
	s->set = set;
	s->set_arg = arg;
	s->n = 0;
	s->dirty = 0;
}

void wgsync_free(struct wgsync *s)
{
	free(s->peers);
	s->peers = NULL;
	s->n = s->cap = 0;
	s->set = NULL;
}

static ssize_t find(const struct wgsync *s, int64_t id)
{
	return nm_peers_search(s->peers, s->n, sizeof(*s->peers), id);
}

const struct wgsync_peer *wgsync_find(const struct wgsync *s, int64_t id)
{
	ssize_t i = find(s, id);

	return i < 0 ? NULL : &s->peers[i];
}

static int reserve(struct wgsync *s, size_t n)
{
	void *base = s->peers;
	int rc = nm_peers_reserve(&base, &s->cap, n, sizeof(*s->peers));

	s->peers = base;
	return rc;
}

/* Persistent keepalive only towards peers that are online: an offline one would be sent
 * a handshake at once and every few seconds after, for nothing. */
static uint16_t keepalive(const struct nm_peer *p)
{
	return p->online ? WGSYNC_KEEPALIVE : 0;
}

static const struct addr_port *effective(const struct nm_peer *p, const struct addr_port *path)
{
	if (path && path->family)
		return path;
	return p->n_endpoints ? &p->endpoints[0] : NULL;
}

const struct addr_port *wgsync_endpoint(const struct wgsync_peer *wp)
{
	return effective(&wp->p, &wp->path);
}

static int same_endpoint(const struct addr_port *a, const struct addr_port *b)
{
	return a == b || (a && b && addr_equal(a, b));
}

static int same_addrs(const struct nm_peer *a, const struct nm_peer *b)
{
	return !memcmp(a->node_key, b->node_key, KEY_LEN) && a->ip4.s_addr == b->ip4.s_addr &&
	       !memcmp(&a->ip6, &b->ip6, sizeof(a->ip6));
}

/* A new peer that waits for its keepalive: online, and its key below ours. */
static int quiet_start(const struct wgsync *s, const struct nm_peer *p)
{
	return s->have_self && p->online && memcmp(s->self_key, p->node_key, KEY_LEN) > 0;
}

static int add_config(struct wg_device *dev, const struct nm_peer *p, const struct addr_port *path,
		      int quiet)
{
	struct wg_allowedip a4 = { .family = AF_INET, .cidr = 32 };
	struct wg_allowedip a6 = { .family = AF_INET6, .cidr = 128 };
	const struct addr_port *ep = effective(p, path);
	struct wg_peer *wp;

	if (wg_device_add_peer(dev, &wp))
		return -ENOMEM;
	memcpy(wp->public_key, p->node_key, KEY_LEN);
	wp->flags = WG_PEER_REPLACE_ALLOWEDIPS | WG_PEER_HAS_KEEPALIVE;
	wp->persistent_keepalive = quiet ? 0 : keepalive(p);
	if (ep) {
		addr_to_sockaddr(ep, &wp->endpoint);
		wp->flags |= WG_PEER_HAS_ENDPOINT;
	}
	a4.ip4 = p->ip4;
	a6.ip6 = p->ip6;
	if (wg_peer_add_allowedip(wp, &a4) || wg_peer_add_allowedip(wp, &a6))
		return -ENOMEM;
	return 0;
}

static int add_remove(struct wg_device *dev, const uint8_t key[KEY_LEN])
{
	struct wg_peer *wp;

	if (wg_device_add_peer(dev, &wp))
		return -ENOMEM;
	memcpy(wp->public_key, key, KEY_LEN);
	wp->flags = WG_PEER_REMOVE;
	return 0;
}

/* What WireGuard needs to go from old (NULL: nothing) to p with path: nothing (0), or one
 * peer entry in dev (1). Same key and addresses: the endpoint when it changed to a usable
 * one (WireGuard keeps the last endpoint otherwise, and sessions go on), the keepalive
 * when the peer came online or went offline. */
static int add_update(struct wg_device *dev, const struct wgsync_peer *old,
		      const struct nm_peer *p, const struct addr_port *path, int quiet)
{
	const struct addr_port *ep = effective(p, path);
	struct wg_peer *wp;
	unsigned flags = 0;

	if (!old || !same_addrs(&old->p, p))
		return add_config(dev, p, path, quiet) ? -ENOMEM : 1;
	if (ep && !same_endpoint(wgsync_endpoint(old), ep))
		flags |= WG_PEER_HAS_ENDPOINT;
	/* A delayed keepalive stays delayed (wgsync_tick sets it). */
	if (!old->ka_wait && keepalive(&old->p) != keepalive(p))
		flags |= WG_PEER_HAS_KEEPALIVE;
	if (!flags)
		return 0;
	if (wg_device_add_peer(dev, &wp))
		return -ENOMEM;
	memcpy(wp->public_key, p->node_key, KEY_LEN);
	wp->flags = flags;
	if (ep)
		addr_to_sockaddr(ep, &wp->endpoint);
	wp->persistent_keepalive = old->ka_wait ? 0 : keepalive(p);
	return 1;
}

/* Sends dev (when it holds anything) and frees it. */
static int apply(struct wgsync *s, struct wg_device *dev)
{
	int rc = dev->n_peers || (dev->flags & WG_DEVICE_REPLACE_PEERS) ? s->set(s->set_arg, dev) : 0;

	wg_device_free(dev);
	if (rc) {
		log_error("wireguard configuration failed, will resync", "ifname=%s error=\"%s\"",
			  s->ifname, strerror(-rc));
		s->dirty = 1;
		s->errors++;
	}
	return rc;
}

static void initial_path(struct wgsync *s, const struct nm_peer *p, struct addr_port *path)
{
	memset(path, 0, sizeof(*path));
	if (s->initial && s->initial(s->initial_arg, p, path) != 1)
		memset(path, 0, sizeof(*path));
}

void wgsync_set_initial(struct wgsync *s, wgsync_path_fn fn, void *arg)
{
	s->initial = fn;
	s->initial_arg = arg;
}

/* The mirror becomes nm's peers, keeping the chosen path of a peer whose id and key stay. */
static int mirror_all(struct wgsync *s, const struct netmap *nm, struct wgsync_peer **out)
{
	struct wgsync_peer *np = calloc(nm->n_peers ? nm->n_peers : 1, sizeof(*np));

	if (!np)
		return -ENOMEM;
	for (size_t i = 0; i < nm->n_peers; i++) {
		const struct wgsync_peer *old = wgsync_find(s, nm->peers[i].id);

		np[i].p = nm->peers[i];
		if (old && !memcmp(old->p.node_key, nm->peers[i].node_key, KEY_LEN)) {
			np[i].path = old->path;
			np[i].ka_wait = old->ka_wait;
		} else {
			initial_path(s, &np[i].p, &np[i].path);
			np[i].ka_wait = quiet_start(s, &np[i].p) ? WGSYNC_QUIET_TICKS : 0;
		}
	}
	*out = np;
	return 0;
}

static void mirror_swap(struct wgsync *s, struct wgsync_peer *np, size_t n)
{
	free(s->peers);
	s->peers = np;
	s->n = n;
	s->cap = n ? n : 1;
}

void wgsync_resync(struct wgsync *s, const struct netmap *nm)
{
	struct wg_device *dev = NULL;
	struct wgsync_peer *np = NULL;

	if (!s->set || mirror_all(s, nm, &np) || !(dev = wg_device_new()))
		goto err;
	dev->flags = WG_DEVICE_REPLACE_PEERS;
	for (size_t i = 0; i < nm->n_peers; i++)
		if (add_config(dev, &np[i].p, &np[i].path, np[i].ka_wait > 0))
			goto err;
	s->dirty = 0;
	if (apply(s, dev)) {
		free(np);
		return;
	}
	mirror_swap(s, np, nm->n_peers);
	log_info("wireguard peers resynced", "peers=%zu", s->n);
	return;
err:
	wg_device_free(dev);
	free(np);
	s->dirty = 1;
}

void wgsync_full(struct wgsync *s, const struct netmap *nm)
{
	struct wg_device *dev = NULL;
	struct wgsync_peer *np = NULL;
	size_t added = 0, changed = 0, removed = 0;

	if (!s->set || mirror_all(s, nm, &np) || !(dev = wg_device_new()))
		goto err;
	for (size_t i = 0; i < s->n; i++) {
		const struct nm_peer *p = netmap_find_id(nm, s->peers[i].p.id);

		if (!p || memcmp(p->node_key, s->peers[i].p.node_key, KEY_LEN)) {
			if (add_remove(dev, s->peers[i].p.node_key))
				goto err;
			removed++;
		}
	}
	for (size_t j = 0; j < nm->n_peers; j++) {
		const struct nm_peer *p = &nm->peers[j];
		const struct wgsync_peer *old = wgsync_find(s, p->id);
		int rc;

		if (old && memcmp(old->p.node_key, p->node_key, KEY_LEN))
			old = NULL;
		rc = add_update(dev, old, p, &np[j].path, np[j].ka_wait > 0);
		if (rc < 0)
			goto err;
		if (rc)
			(*(old ? &changed : &added))++;
	}
	if (apply(s, dev)) {
		free(np);
		return;
	}
	mirror_swap(s, np, nm->n_peers);
	log_info("netmap applied", "peers=%zu added=%zu changed=%zu removed=%zu unchanged=%zu",
		 nm->n_peers, added, changed, removed, nm->n_peers - added - changed);
	return;
err:
	wg_device_free(dev);
	free(np);
	s->dirty = 1;
}

/* The mirror entry for p (inserted at its place when new); path kept unless rekeyed. */
static void mirror_put(struct wgsync *s, const struct nm_peer *p, const struct addr_port *path,
		       int ka_wait)
{
	ssize_t i = find(s, p->id);
	size_t at;

	if (i < 0) {
		if (reserve(s, s->n + 1)) {
			s->dirty = 1;
			return;
		}
		at = (size_t)(-i - 1);
		memmove(&s->peers[at + 1], &s->peers[at], (s->n - at) * sizeof(*s->peers));
		s->n++;
		i = (ssize_t)at;
	}
	s->peers[i].p = *p;
	s->peers[i].ka_wait = ka_wait;
	memset(&s->peers[i].path, 0, sizeof(s->peers[i].path));
	if (path)
		s->peers[i].path = *path;
}

void wgsync_set_self(struct wgsync *s, const uint8_t key[KEY_LEN])
{
	memcpy(s->self_key, key, KEY_LEN);
	s->have_self = 1;
}

void wgsync_tick(struct wgsync *s)
{
	for (size_t i = 0; s->set && i < s->n; i++) {
		struct wgsync_peer *wp = &s->peers[i];
		struct wg_device *dev;
		struct wg_peer *w;

		if (!wp->ka_wait || --wp->ka_wait || !keepalive(&wp->p))
			continue;
		dev = wg_device_new();
		if (!dev || wg_device_add_peer(dev, &w)) {
			wg_device_free(dev);
			wp->ka_wait = 1;   /* next tick */
			continue;
		}
		memcpy(w->public_key, wp->p.node_key, KEY_LEN);
		w->flags = WG_PEER_HAS_KEEPALIVE;
		w->persistent_keepalive = keepalive(&wp->p);
		if (apply(s, dev))
			wp->ka_wait = 1;
	}
}

static void mirror_del(struct wgsync *s, int64_t id)
{
	ssize_t i = find(s, id);

	if (i < 0)
		return;
	memmove(&s->peers[i], &s->peers[i + 1], (s->n - (size_t)i - 1) * sizeof(*s->peers));
	s->n--;
}

static void format_ep(const struct addr_port *ep, char *out, size_t size)
{
	if (!ep || addr_format(ep, out, size))
		snprintf(out, size, "none");
}

void wgsync_peer(struct wgsync *s, const struct nm_peer *p)
{
	const struct wgsync_peer *old = wgsync_find(s, p->id);
	int rekey = old && memcmp(old->p.node_key, p->node_key, KEY_LEN), rc, ka_wait;
	struct addr_port path = { 0 };
	char ep[ADDR_TEXT_LEN], ip[INET_ADDRSTRLEN];
	struct wg_device *dev;

	if (!s->set)
		return;
	if (old && !rekey)
		path = old->path;
	else
		initial_path(s, p, &path);
	ka_wait = old && !rekey ? old->ka_wait : (quiet_start(s, p) ? WGSYNC_QUIET_TICKS : 0);
	dev = wg_device_new();
	if (!dev || (rekey && add_remove(dev, old->p.node_key)))
		goto err;
	rc = add_update(dev, rekey ? NULL : old, p, &path, ka_wait > 0);
	if (rc < 0)
		goto err;
	format_ep(effective(p, &path), ep, sizeof(ep));
	inet_ntop(AF_INET, &p->ip4, ip, sizeof(ip));
	if (!dev->n_peers) {
		wg_device_free(dev);   /* a name, or no usable endpoint: nothing for WireGuard */
	} else if (apply(s, dev)) {
		return;
	} else if (!old) {
		log_info("peer added", "peer=%s ip=%s endpoint=%s", p->name, ip, ep);
	} else if (!rekey && same_addrs(&old->p, p)) {
		log_info("peer endpoint changed", "peer=%s endpoint=%s", p->name, ep);
	} else {
		log_info("peer changed", "peer=%s ip=%s endpoint=%s rekeyed=%s", p->name, ip, ep,
			 rekey ? "yes" : "no");
	}
	mirror_put(s, p, &path, ka_wait);
	return;
err:
	wg_device_free(dev);
	s->dirty = 1;
}

void wgsync_removed(struct wgsync *s, const struct nm_peer *p)
{
	const struct wgsync_peer *old = wgsync_find(s, p->id);
	struct wg_device *dev;

	if (!old || !s->set)
		return;
	dev = wg_device_new();
	if (!dev || add_remove(dev, old->p.node_key)) {
		wg_device_free(dev);
		s->dirty = 1;
		return;
	}
	if (!apply(s, dev)) {
		log_info("peer removed", "peer=%s", p->name);
		mirror_del(s, p->id);
	}
}

void wgsync_clear(struct wgsync *s)
{
	struct wg_device *dev;

	if (!s->set || !s->n)
		return;
	dev = wg_device_new();
	if (!dev) {
		s->dirty = 1;
		return;
	}
	dev->flags = WG_DEVICE_REPLACE_PEERS;
	if (!apply(s, dev)) {
		log_info("all peers removed", "peers=%zu", s->n);
		s->n = 0;
	}
}

/* Sends endpoint `now` for wp to WireGuard. */
static int send_endpoint(struct wgsync *s, const struct wgsync_peer *wp, const struct addr_port *now)
{
	struct wg_device *dev;
	struct wg_peer *w;
	char text[ADDR_TEXT_LEN];
	int rc;

	dev = wg_device_new();
	if (!dev || wg_device_add_peer(dev, &w)) {
		wg_device_free(dev);
		return -ENOMEM;
	}
	memcpy(w->public_key, wp->p.node_key, KEY_LEN);
	w->flags = WG_PEER_HAS_ENDPOINT;
	addr_to_sockaddr(now, &w->endpoint);
	format_ep(now, text, sizeof(text));
	rc = apply(s, dev);
	if (!rc)
		log_info("peer path set", "peer=%s endpoint=%s", wp->p.name, text);
	return rc;
}

int wgsync_set_endpoint(struct wgsync *s, int64_t id, const struct addr_port *ep)
{
	ssize_t i = find(s, id);
	struct wgsync_peer *wp;
	struct addr_port path = { 0 };
	const struct addr_port *now;
	int rc;

	if (i < 0 || !s->set)
		return -ENOENT;
	wp = &s->peers[i];
	if (ep && ep->family)
		path = *ep;
	now = effective(&wp->p, &path);
	if (!now || same_endpoint(wgsync_endpoint(wp), now)) {
		wp->path = path;   /* WireGuard keeps the endpoint it has: nothing to send */
		return 0;
	}
	rc = send_endpoint(s, wp, now);
	if (!rc)
		wp->path = path;
	return rc;
}

int wgsync_kick(struct wgsync *s, int64_t id)
{
	ssize_t i = find(s, id);
	struct wg_device *dev;

	if (i < 0 || !s->set)
		return -ENOENT;
	dev = wg_device_new();
	if (!dev || add_remove(dev, s->peers[i].p.node_key) ||
	    add_config(dev, &s->peers[i].p, &s->peers[i].path, s->peers[i].ka_wait > 0)) {
		wg_device_free(dev);
		return -ENOMEM;
	}
	return apply(s, dev);
}

int wgsync_reassert(struct wgsync *s, int64_t id)
{
	ssize_t i = find(s, id);
	const struct addr_port *now;

	if (i < 0 || !s->set)
		return -ENOENT;
	now = wgsync_endpoint(&s->peers[i]);
	return now ? send_endpoint(s, &s->peers[i], now) : 0;
}
