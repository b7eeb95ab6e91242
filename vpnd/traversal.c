/* traversal.c - the peers' paths: disco over the raw socket and the relays, the path
 * state machines, STUN rounds, the home relay, and the endpoint each peer's WireGuard
 * configuration gets. See traversal.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "meshvpn/log.h"
#include "vpnd.h"

#define TV_MAX_ACTIONS 32

/* A vpnctl request waiting: a ping (txid) or a netcheck. */
struct tv_wait {
	struct tv_wait *next;
	int netcheck;
	int64_t peer_id;
	uint8_t txid[DISCO_TXID_LEN];
	enum tv_mode path;
	struct addr_port to;
	char relay[NM_NAME_LEN];
	uint64_t sent_ns;
	uint64_t deadline_ms;
	tv_ping_cb ping_cb;
	tv_netcheck_cb nc_cb;
	void *arg;
};

static uint64_t now_ms(const struct traversal *tv)
{
	return uv_now(tv->d->loop);
}

/* How long the machine has been suspended since boot (CLOCK_BOOTTIME counts a suspend,
 * CLOCK_MONOTONIC, libuv's clock, does not), in ms. */
static uint64_t suspended_ms(void)
{
	struct timespec b, m;

	clock_gettime(CLOCK_BOOTTIME, &b);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return (uint64_t)((b.tv_sec - m.tv_sec) * 1000 + (b.tv_nsec - m.tv_nsec) / 1000000);
}

static uint64_t hr_us(void)
{
	return uv_hrtime() / 1000;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- peers ---- */

static int cmp_id(const void *key, const void *elem)
{
	int64_t id = *(const int64_t *)key, o = (*(struct tv_peer *const *)elem)->id;

	return id < o ? -1 : id > o;
}

static ssize_t peer_index(const struct traversal *tv, int64_t id)
{
	size_t lo = 0, hi = tv->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = cmp_id(&id, &tv->peers[mid]);

		if (!c)
			return (ssize_t)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -(ssize_t)lo - 1;
}

const struct tv_peer *traversal_find(const struct traversal *tv, int64_t id)
{
	ssize_t i = peer_index(tv, id);

	return i >= 0 ? tv->peers[i] : NULL;
}

static void peer_free(struct traversal *tv, size_t i)
{
	struct tv_peer *p = tv->peers[i];

	keymap_del(&tv->by_disco, p->disco_key);
	keymap_del(&tv->by_node, p->node_key);
	relayc_peer_remove(&tv->relayc, p->node_key);
	sodium_memzero(p->shared, sizeof(p->shared));
	free(p);
	memmove(&tv->peers[i], &tv->peers[i + 1], (tv->n - i - 1) * sizeof(tv->peers[0]));
	tv->n--;
}

/* The endpoint WireGuard should use for p now: direct, the relay's loopback port, or
 * (no relay in the map) the netmap's own first endpoint. */
static enum tv_mode choose(struct traversal *tv, struct tv_peer *p, struct addr_port *ep)
{
	const struct addr_port *direct = path_chosen(&p->path);

	memset(ep, 0, sizeof(*ep));
	if (direct) {
		*ep = *direct;
		return TV_DIRECT;
	}
	if (tv->relayc.n_conns && !relayc_peer_ensure(&tv->relayc, p->id, p->node_key, p->relay, ep))
		return TV_RELAY;
	memset(ep, 0, sizeof(*ep));
	return TV_NETMAP;
}

/* wgsync asks where a peer new to WireGuard starts: where we would send it now. */
static int initial_path(void *arg, const struct nm_peer *np, struct addr_port *out)
{
	struct traversal *tv = arg;
	ssize_t i = peer_index(tv, np->id);
	struct tv_peer *p;

	if (!tv->started || i < 0 || memcmp(tv->peers[i]->node_key, np->node_key, KEY_LEN))
		return 0;
	p = tv->peers[i];
	p->applied = choose(tv, p, out);
	p->applied_ep = *out;
	return p->applied != TV_NETMAP;
}

static void apply(struct traversal *tv, struct tv_peer *p)
{
	struct vpnd *d = tv->d;
	struct addr_port ep;
	enum tv_mode mode = choose(tv, p, &ep);
	char text[ADDR_TEXT_LEN] = "";
	int rc;

	if (mode == p->applied && (mode == TV_NETMAP || addr_equal(&ep, &p->applied_ep)))
		return;
	rc = wgsync_set_endpoint(&d->sync, p->id, mode == TV_NETMAP ? NULL : &ep);
	if (rc) {
		if (rc != -ENOENT)
			log_warn("cannot set the peer's endpoint", "peer=%s error=\"%s\"", p->name,
				 strerror(-rc));
		return;
	}
	if (mode != TV_NETMAP)
		addr_format(&ep, text, sizeof(text));
	if (p->applied != mode || mode == TV_DIRECT) {
		tv->stats.path_changes++;
		log_info("path", "peer=%s path=%s endpoint=%s relay=%s", p->name,
			 mode == TV_DIRECT ? "direct" : mode == TV_RELAY ? "relay" : "netmap",
			 text[0] ? text : "-", mode == TV_RELAY ? (p->relay[0] ? p->relay : traversal_home(tv)) : "-");
	}
	p->applied = mode;
	p->applied_ep = ep;
}

static void peer_update(struct traversal *tv, struct tv_peer *p, const struct nm_peer *np)
{
	snprintf(p->name, sizeof(p->name), "%s", np->name);
	snprintf(p->relay, sizeof(p->relay), "%s", np->home_relay);
	path_set_endpoints(&p->path, np->endpoints, np->n_endpoints, now_ms(tv));
	p->next_ms = 0;
	if (relayc_peer_find(&tv->relayc, p->node_key))
		relayc_peer_ensure(&tv->relayc, p->id, p->node_key, p->relay, &p->applied_ep);
}

static void peer_add(struct traversal *tv, const struct nm_peer *np)
{
	ssize_t i = peer_index(tv, np->id);
	struct tv_peer *p;

	if (i >= 0) {
		p = tv->peers[i];
		if (!memcmp(p->node_key, np->node_key, KEY_LEN) &&
		    !memcmp(p->disco_key, np->disco_key, KEY_LEN)) {
			peer_update(tv, p, np);
			apply(tv, p);
			return;
		}
		peer_free(tv, (size_t)i);   /* rekeyed: a new peer as far as paths go */
		i = peer_index(tv, np->id);
	}
	if (tv->n == tv->cap) {
		size_t cap = tv->cap ? tv->cap * 2 : 16;
		struct tv_peer **np2 = realloc(tv->peers, cap * sizeof(*np2));

		if (!np2)
			return;
		tv->peers = np2;
		tv->cap = cap;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->id = np->id;
	p->added_ms = now_ms(tv);
	memcpy(p->node_key, np->node_key, KEY_LEN);
	memcpy(p->disco_key, np->disco_key, KEY_LEN);
	path_init(&p->path, now_ms(tv));
	if (keymap_put(&tv->by_node, p->node_key, p)) {
		free(p);
		return;
	}
	/* Two peers with one disco key: the second is not reachable by disco (the netmap
	 * should never say so; coord keys are per node). */
	keymap_put(&tv->by_disco, p->disco_key, p);
	i = -i - 1;
	memmove(&tv->peers[i + 1], &tv->peers[i], (tv->n - (size_t)i) * sizeof(tv->peers[0]));
	tv->peers[i] = p;
	tv->n++;
	peer_update(tv, p, np);
	apply(tv, p);
}

/* ---- disco out ---- */

static int ensure_shared(struct traversal *tv, struct tv_peer *p)
{
	if (!p->have_shared)
		p->have_shared = disco_shared(tv->d->keys.disco_priv, p->disco_key, p->shared) ? -1 : 1;
	return p->have_shared == 1 ? 0 : -EINVAL;
}

/* Seals m for p and sends it to `to` (direct) or through p's relay (to NULL). */
static int disco_send(struct traversal *tv, struct tv_peer *p, const struct disco_msg *m,
		      const struct addr_port *to)
{
	uint8_t pkt[DISCO_MAX_PACKET];
	int len, rc;

	if (ensure_shared(tv, p))
		return -EINVAL;
	len = disco_seal(m, tv->d->keys.disco_pub, p->shared, disco_next_counter(&tv->counter, wall_ns()),
			 pkt, sizeof(pkt));
	if (len < 0)
		return len;
	if (to)
		rc = tv->rs ? rawsock_send(tv->rs, to, pkt, (size_t)len) : -ENOTCONN;
	else
		rc = relayc_send(&tv->relayc, p->node_key, p->relay, pkt, (size_t)len);
	if (rc)
		tv->stats.send_errors++;
	else
		tv->stats.disco_tx++;
	return rc;
}

static int send_ping(struct traversal *tv, struct tv_peer *p, const struct addr_port *to,
		     uint8_t txid[DISCO_TXID_LEN])
{
	struct disco_msg m;

	memset(&m, 0, sizeof(m));
	m.type = DISCO_PING;
	randombytes_buf(m.txid, sizeof(m.txid));
	memcpy(m.node_key, tv->d->keys.node_pub, KEY_LEN);
	memcpy(txid, m.txid, DISCO_TXID_LEN);
	tv->stats.pings_tx++;
	return disco_send(tv, p, &m, to);
}

static void send_cmm(struct traversal *tv, struct tv_peer *p)
{
	struct disco_msg m;

	memset(&m, 0, sizeof(m));
	m.type = DISCO_CALL_ME_MAYBE;
	m.n_endpoints = tv->n_mine < DISCO_MAX_ENDPOINTS ? tv->n_mine : DISCO_MAX_ENDPOINTS;
	memcpy(m.endpoints, tv->mine, (size_t)m.n_endpoints * sizeof(m.endpoints[0]));
	if (!disco_send(tv, p, &m, NULL))
		tv->stats.cmm_tx++;
}

/* The path machine's due work for p. */
static void run_peer(struct traversal *tv, struct tv_peer *p, uint64_t now)
{
	struct path_action acts[TV_MAX_ACTIONS];
	int n, changed = 0;

	n = path_tick(&p->path, now, acts, TV_MAX_ACTIONS, &changed);
	for (int i = 0; i < n; i++) {
		if (acts[i].kind == PATH_ACT_PING) {
			uint8_t txid[DISCO_TXID_LEN];

			/* Sent or not, it counts as sent: an unreachable family is not retried
			 * faster than the machine's own cadence. */
			send_ping(tv, p, &p->path.cands[acts[i].cand].ap, txid);
			path_ping_sent(&p->path, acts[i].cand, txid, now);
		} else if (acts[i].kind == PATH_ACT_CALL_ME_MAYBE && tv->relayc.n_conns) {
			send_cmm(tv, p);
		}
	}
	if (changed)
		apply(tv, p);
	p->next_ms = path_next_ms(&p->path);
}

/* ---- disco in ---- */

static int path_has(const struct path_peer *pp, const struct addr_port *ap)
{
	for (int i = 0; i < pp->n_cands; i++)
		if (addr_equal(&pp->cands[i].ap, ap))
			return 1;
	return 0;
}

static struct tv_wait *wait_take_ping(struct traversal *tv, const uint8_t txid[DISCO_TXID_LEN])
{
	for (struct tv_wait **pw = &tv->waits, *w; (w = *pw); pw = &w->next)
		if (!w->netcheck && !memcmp(w->txid, txid, DISCO_TXID_LEN)) {
			*pw = w->next;
			return w;
		}
	return NULL;
}

static void on_pong(struct traversal *tv, struct tv_peer *p, const struct disco_msg *m,
		    const struct addr_port *src, const char *relay)
{
	struct tv_wait *w = wait_take_ping(tv, m->txid);
	int rc = -ENOENT;

	tv->stats.pongs_rx++;
	if (src)
		rc = path_pong(&p->path, m->txid, src, now_ms(tv));
	if (rc == 1)
		apply(tv, p);
	if (rc >= 0)
		p->next_ms = path_next_ms(&p->path);
	if (w) {
		struct tv_ping_result r = { .err = 0, .path = src ? TV_DIRECT : TV_RELAY };

		if (src)
			r.endpoint = *src;
		snprintf(r.relay, sizeof(r.relay), "%s", relay ? relay : "");
		r.rtt_us = (uv_hrtime() - w->sent_ns) / 1000;
		w->ping_cb(&r, w->arg);
		free(w);
	} else if (rc < 0) {
		tv->stats.pongs_unmatched++;
	}
}

static void on_ping(struct traversal *tv, struct tv_peer *p, const struct disco_msg *m,
		    const struct addr_port *src)
{
	struct disco_msg pong;

	tv->stats.pings_rx++;
	if (memcmp(m->node_key, p->node_key, KEY_LEN)) {
		tv->stats.disco_wrong_node++;
		return;
	}
	memset(&pong, 0, sizeof(pong));
	pong.type = DISCO_PONG;
	memcpy(pong.txid, m->txid, DISCO_TXID_LEN);
	if (src) {
		pong.src = *src;
	} else {
		/* Through a relay there is no source address to tell; a loopback placeholder
		 * keeps the body well formed and is never taken as a candidate. */
		pong.src.family = AF_INET;
		pong.src.port = tv->port ? tv->port : 1;
		pong.src.v4.s_addr = htonl(INADDR_LOOPBACK);
	}
	if (!disco_send(tv, p, &pong, src))
		tv->stats.pongs_tx++;
	/* A ping from an address we did not know is a candidate (peer-reflexive: how a
	 * hard NAT's fresh mapping is found). A known one is not learned again: that would
	 * probe it at every heartbeat of the peer's. */
	if (src && !path_has(&p->path, src) && !path_add_learned(&p->path, src, now_ms(tv)))
		p->next_ms = 0;
}

static void on_cmm(struct traversal *tv, struct tv_peer *p, const struct disco_msg *m)
{
	uint64_t now = now_ms(tv);

	tv->stats.cmm_rx++;
	for (int i = 0; i < m->n_endpoints; i++)
		path_add_learned(&p->path, &m->endpoints[i], now);
	/* The peer is pinging us now: ping it back at once, so both NATs open together. At
	 * most once a second: each one makes us ping every address it names. */
	if (p->cmm_rx_ms && now - p->cmm_rx_ms < TV_CMM_MIN_MS)
		return;
	p->cmm_rx_ms = now;
	p->path.next_probe_ms = now;
	run_peer(tv, p, now);
}

/* A disco packet, from src (the raw socket) or through relay `relay` from node key
 * relay_src. */
static void disco_in(struct traversal *tv, const uint8_t *data, size_t len,
		     const struct addr_port *src, const uint8_t *relay_src, const char *relay)
{
	uint8_t sender[KEY_LEN];
	struct tv_peer *p;
	struct disco_msg m;
	uint64_t counter;
	int rc;

	tv->stats.disco_rx++;
	if (disco_sender(data, len, sender)) {
		tv->stats.disco_malformed++;
		return;
	}
	p = keymap_get(&tv->by_disco, sender);
	if (!p) {
		tv->stats.disco_unknown_key++;
		return;
	}
	/* The relay proved the sender's node key: it must be this disco key's node. */
	if (relay_src && memcmp(relay_src, p->node_key, KEY_LEN)) {
		tv->stats.disco_wrong_node++;
		return;
	}
	if (ensure_shared(tv, p)) {
		tv->stats.disco_bad_box++;
		return;
	}
	rc = disco_open(data, len, p->shared, &m, &counter);
	if (rc == -EPERM) {
		tv->stats.disco_bad_box++;
		return;
	}
	if (rc) {
		tv->stats.disco_malformed++;
		return;
	}
	if (disco_replay_check(&p->replay, counter)) {
		tv->stats.disco_replayed++;
		return;
	}
	switch (m.type) {
	case DISCO_PING:
		on_ping(tv, p, &m, src);
		break;
	case DISCO_PONG:
		on_pong(tv, p, &m, src, relay);
		break;
	case DISCO_CALL_ME_MAYBE:
		on_cmm(tv, p, &m);
		break;
	}
}

static void on_raw(struct rawsock *rs, const struct rawsock_pkt *pkt, void *arg)
{
	struct traversal *tv = arg;

	(void)rs;
	if (pkt->kind == RAWSOCK_STUN) {
		if (netcheck_input(&tv->nc, &pkt->src, pkt->payload, pkt->len, now_ms(tv)) == 1)
			tv->last_second_ms = 0;   /* the report is used at the next tick */
		return;
	}
	disco_in(tv, pkt->payload, pkt->len, &pkt->src, NULL, NULL);
}

static void on_relay_disco(void *arg, const uint8_t src[KEY_LEN], const uint8_t *data, size_t len,
			   const char *relay)
{
	disco_in(arg, data, len, NULL, src, relay);
}

/* Relayed data from a peer that had no loopback port yet: one now (WireGuard then roams
 * to it; when we think the path is direct, the endpoint is put back shortly). */
static void on_relay_unknown(void *arg, const uint8_t src[KEY_LEN])
{
	struct traversal *tv = arg;
	struct tv_peer *p = keymap_get(&tv->by_node, src);
	struct addr_port ep;

	if (p)
		relayc_peer_ensure(&tv->relayc, p->id, p->node_key, p->relay, &ep);
}


static void on_home(void *arg, int connected, int err)
{
	struct traversal *tv = arg;

	(void)err;
	tv->home_lost_ms = connected ? 0 : (tv->home_lost_ms ? tv->home_lost_ms : now_ms(tv));
}

/* ---- the home relay ---- */

static int relay_rtt(const struct traversal *tv, const char *name)
{
	for (int i = 0; i < tv->nc.last.n_relays; i++)
		if (!strcmp(tv->nc.last.relays[i].name, name))
			return (int)tv->nc.last.relays[i].rtt_us;
	return 0;
}

/* The best relay other than `except`: the lowest measured round trip, else (no UDP) the
 * first in the map. */
static const char *best_relay(const struct traversal *tv, const char *except)
{
	const struct netmap *nm = &tv->d->nm;
	const char *best = NULL;
	int best_rtt = 0;

	for (int i = 0; i < nm->n_relays; i++) {
		const char *name = nm->relays[i].name;
		int rtt = relay_rtt(tv, name);

		if (except && !strcmp(name, except))
			continue;
		if (!best || (rtt && (!best_rtt || rtt < best_rtt))) {
			best = name;
			best_rtt = rtt;
		}
	}
	return best;
}

static void set_home(struct traversal *tv, const char *name, const char *why)
{
	if (!strcmp(traversal_home(tv), name))
		return;
	if (relayc_set_home(&tv->relayc, name))
		return;
	log_info("home relay", "relay=%s reason=%s", name[0] ? name : "-", why);
	tv->home_lost_ms = 0;
	tv->home_set_ms = now_ms(tv);
	tv->stats.home_moves++;
	endpoints_post(tv->d);
}



/* Once a second: the home relay (first choice, after a STUN round, moving away from a
 * dead one), idle relay connections, endpoints that were put back by WireGuard. */
static void each_second(struct traversal *tv, uint64_t now)
{
	const char *home = traversal_home(tv), *best;
	uint64_t slept = suspended_ms();

	/* Back from a suspend: the network is likely another one (a laptop's lid, a Wi-Fi
	 * switch on the way), and every path is to be proved again at once. */
	if (slept > tv->slept_ms + 1000) {
		log_info("resumed from suspend", "slept_ms=%llu", (unsigned long long)(slept - tv->slept_ms));
		tv->slept_ms = slept;
		traversal_network_changed(tv);
	}
	tv->slept_ms = slept;
	if (tv->d->nm.n_relays) {
		best = best_relay(tv, NULL);
		if (!home[0] && best)
			set_home(tv, best, "first");
		else if (best && tv->nc.last.done && now - tv->home_set_ms < 5000 &&
			 strcmp(best, home) && relay_rtt(tv, best) &&
			 (!relay_rtt(tv, home) || relay_rtt(tv, best) * 2 < relay_rtt(tv, home)))
			set_home(tv, best, "latency");
		else if (home[0] && tv->home_lost_ms && now - tv->home_lost_ms >= TV_HOME_MOVE_MS &&
			 (best = best_relay(tv, home)))
			set_home(tv, best, "unreachable");
	}
	relayc_tick(&tv->relayc);
	if (tv->rs && !tv->nc.running && now >= tv->nc.next_ms)
		netcheck_start(&tv->nc, tv->d->nm.relays, tv->d->nm.n_relays, now);
}

static void finish_netchecks(struct traversal *tv)
{
	for (struct tv_wait **pw = &tv->waits, *w; (w = *pw);) {
		if (!w->netcheck) {
			pw = &w->next;
			continue;
		}
		*pw = w->next;
		w->nc_cb(&tv->nc.last, w->arg);
		free(w);
	}
}

static void expire_waits(struct traversal *tv, uint64_t now, int all)
{
	for (struct tv_wait **pw = &tv->waits, *w; (w = *pw);) {
		if (w->netcheck || (!all && now < w->deadline_ms)) {
			pw = &w->next;
			continue;
		}
		*pw = w->next;
		struct tv_ping_result r = { .err = all ? -ENETDOWN : -ETIMEDOUT, .path = w->path };
		w->ping_cb(&r, w->arg);
		free(w);
	}
}

static void on_timer(uv_timer_t *t)
{
	struct traversal *tv = t->data;
	uint64_t now = now_ms(tv);
	int reported;

	reported = netcheck_tick(&tv->nc, now);
	if (reported || (!tv->nc.running && tv->waits)) {
		if (reported && tv->nc.last.udp)
			endpoints_post(tv->d);   /* new reflexive candidates */
		finish_netchecks(tv);
	}
	for (size_t i = 0; i < tv->n; i++) {
		if (tv->peers[i]->next_ms <= now)
			run_peer(tv, tv->peers[i], now);
		traversal_keep_direct(tv, tv->peers[i], now);
	}
	expire_waits(tv, now, 0);
	relayc_poll(&tv->relayc);
	if (now - tv->last_kick_check_ms >= 250) {
		tv->last_kick_check_ms = now;
		traversal_kick_new(tv, now);
	}
	if (now - tv->last_second_ms >= 1000 || !tv->last_second_ms) {
		tv->last_second_ms = now;
		each_second(tv, now);
	}
}

/* ---- lifecycle ---- */

static int nc_send(void *arg, const struct addr_port *to, const void *buf, size_t len)
{
	struct traversal *tv = arg;

	return tv->rs ? rawsock_send(tv->rs, to, buf, len) : -ENOTCONN;
}

void traversal_init(struct traversal *tv, struct vpnd *d)
{
	struct relayc_cbs cbs = { on_relay_disco, on_relay_unknown, on_home };

	memset(tv, 0, sizeof(*tv));
	tv->d = d;
	keymap_init(&tv->by_disco);
	keymap_init(&tv->by_node);
	relayc_init(&tv->relayc, d->loop, &d->keys, &cbs, tv);
	netcheck_init(&tv->nc, nc_send, tv);
	tv->nc.clock_us = hr_us;
	uv_timer_init(d->loop, &tv->timer);
	tv->timer.data = tv;
	wgsync_set_initial(&d->sync, initial_path, tv);
	tv->have_timer = 1;
}

int traversal_start(struct traversal *tv, uint16_t port)
{
	int rc = 0;

	if (tv->started)
		return 0;
	tv->started = 1;
	tv->port = port;
	relayc_set_wg_port(&tv->relayc, port);
	tv->slept_ms = suspended_ms();
	rc = rawsock_open(tv->d->loop, port, on_raw, tv, &tv->rs);
	if (rc) {
		log_warn("no raw socket on WireGuard's port: direct paths only from the netmap, "
			 "relays still work", "port=%u error=\"%s\"", port, strerror(-rc));
		tv->rs = NULL;
	}
	traversal_relays(tv, &tv->d->nm);
	tv->last_second_ms = 0;
	uv_timer_start(&tv->timer, on_timer, TV_TICK_MS, TV_TICK_MS);
	return rc;
}

void traversal_stop(struct traversal *tv)
{
	if (!tv->started)
		return;
	tv->started = 0;
	uv_timer_stop(&tv->timer);
	expire_waits(tv, 0, 1);
	finish_netchecks(tv);
	while (tv->n)
		peer_free(tv, tv->n - 1);
	rawsock_close(tv->rs);
	tv->rs = NULL;
	relayc_close(&tv->relayc);
	memset(&tv->nc.last, 0, sizeof(tv->nc.last));
	tv->nc.running = 0;
	tv->nc.next_ms = 0;
	tv->home_lost_ms = 0;
}

void traversal_close(struct traversal *tv)
{
	traversal_stop(tv);
	free(tv->peers);
	tv->peers = NULL;
	tv->cap = 0;
	keymap_free(&tv->by_disco);
	keymap_free(&tv->by_node);
	if (tv->have_timer)
		uv_close((uv_handle_t *)&tv->timer, NULL);
	tv->have_timer = 0;
}

/* ---- the netmap ---- */

void traversal_full(struct traversal *tv, const struct netmap *nm)
{
	size_t j = 0;

	if (!tv->started)
		return;
	traversal_relays(tv, nm);
	/* Both sorted by id: drop ours that the map no longer has, add or update the rest. */
	for (size_t i = 0; i < tv->n;) {
		while (j < nm->n_peers && nm->peers[j].id < tv->peers[i]->id)
			j++;
		if (j < nm->n_peers && nm->peers[j].id == tv->peers[i]->id)
			i++;
		else
			peer_free(tv, i);
	}
	for (size_t k = 0; k < nm->n_peers; k++)
		peer_add(tv, &nm->peers[k]);
}

void traversal_peer(struct traversal *tv, const struct nm_peer *p)
{
	if (tv->started)
		peer_add(tv, p);
}

void traversal_removed(struct traversal *tv, const struct nm_peer *p)
{
	ssize_t i = peer_index(tv, p->id);

	if (tv->started && i >= 0)
		peer_free(tv, (size_t)i);
}

void traversal_relays(struct traversal *tv, const struct netmap *nm)
{
	int had = tv->relayc.n_conns;

	if (!tv->started)
		return;
	relayc_set_relays(&tv->relayc, nm->relays, nm->n_relays);
	if (!tv->relayc.home[0] && nm->n_relays)
		set_home(tv, best_relay(tv, NULL), "first");
	else if (!nm->n_relays && traversal_home(tv)[0])
		set_home(tv, "", "no relays");
	if (tv->rs && nm->n_relays && !tv->nc.running)
		netcheck_start(&tv->nc, nm->relays, nm->n_relays, now_ms(tv));
	if (!had != !tv->relayc.n_conns)
		for (size_t i = 0; i < tv->n; i++)
			apply(tv, tv->peers[i]);
}

void traversal_network_changed(struct traversal *tv)
{
	uint64_t now = now_ms(tv);

	if (!tv->started)
		return;
	relayc_network_changed(&tv->relayc);
	if (tv->rs && tv->d->nm.n_relays && !tv->nc.running)
		netcheck_start(&tv->nc, tv->d->nm.relays, tv->d->nm.n_relays, now);
	for (size_t i = 0; i < tv->n; i++) {
		struct tv_peer *p = tv->peers[i];

		path_network_changed(&p->path, now);
		p->next_ms = 0;
		/* WireGuard remembers the source address it last sent from to each peer
		 * (wireguard-go's sticky sockets, the kernel's cached route): when that address
		 * is gone, sends to an unchanged endpoint fail until the endpoint is set again. */
		if (p->applied == TV_DIRECT)
			wgsync_reassert(&tv->d->sync, p->id);
	}
}

int traversal_reflexive(const struct traversal *tv, struct addr_port *out, int max)
{
	int n = 0;

	if (max > 0 && tv->nc.last.v4.family)
		out[n++] = tv->nc.last.v4;
	if (n < max && tv->nc.last.v6.family)
		out[n++] = tv->nc.last.v6;
	return n;
}

void traversal_set_mine(struct traversal *tv, const struct addr_port *eps, int n)
{
	tv->n_mine = n < NM_MAX_ENDPOINTS ? n : NM_MAX_ENDPOINTS;
	memcpy(tv->mine, eps, (size_t)tv->n_mine * sizeof(*eps));
}

const char *traversal_home(const struct traversal *tv)
{
	return tv->relayc.home;
}

int traversal_is_relay_ep(struct traversal *tv, const struct tv_peer *p,
			  const struct addr_port *ep)
{
	struct relayc_peer *rp = relayc_peer_find(&tv->relayc, p->node_key);

	return rp && addr_equal(&rp->ep, ep);
}

/* ---- vpnctl ---- */

int traversal_ping(struct traversal *tv, int64_t id, tv_ping_cb cb, void *arg)
{
	ssize_t i = peer_index(tv, id);
	const struct addr_port *direct;
	struct tv_peer *p;
	struct tv_wait *w;
	int rc;

	if (!tv->started)
		return -ENETDOWN;
	if (i < 0)
		return -ENOENT;
	p = tv->peers[i];
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	direct = path_chosen(&p->path);
	w->peer_id = id;
	w->path = direct ? TV_DIRECT : TV_RELAY;
	if (direct)
		w->to = *direct;
	snprintf(w->relay, sizeof(w->relay), "%s", p->relay);
	w->sent_ns = uv_hrtime();
	w->deadline_ms = now_ms(tv) + TV_PING_TIMEOUT_MS;
	w->ping_cb = cb;
	w->arg = arg;
	rc = send_ping(tv, p, direct ? &w->to : NULL, w->txid);
	if (rc && rc != -ENOTCONN && rc != -ENOENT) {
		free(w);
		return rc;
	}
	w->next = tv->waits;
	tv->waits = w;
	/* Probing the other candidates now shows an upgrade in the next replies. */
	if (!direct) {
		p->path.next_probe_ms = now_ms(tv);
		p->next_ms = 0;
	}
	return 0;
}

int traversal_netcheck(struct traversal *tv, tv_netcheck_cb cb, void *arg)
{
	struct tv_wait *w;

	if (!tv->started)
		return -ENETDOWN;
	if (!tv->nc.running && (!tv->rs || !netcheck_start(&tv->nc, tv->d->nm.relays,
							    tv->d->nm.n_relays, now_ms(tv)))) {
		cb(&tv->nc.last, arg);
		return 0;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->netcheck = 1;
	w->nc_cb = cb;
	w->arg = arg;
	w->next = tv->waits;
	tv->waits = w;
	return 0;
}
