/* relayc.c - the relayed data path: loopback UDP ports as relayed peers' WireGuard
 * endpoints, carried over relay connections (lib/relay_client.c). See relayc.h. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/disco.h"
#include "meshvpn/log.h"
#include "meshvpn/relay_frame.h"
#include "relayc.h"

#define RELAYC_BUF 2048   /* WireGuard's packets fit an MTU; relay packets are bounded too */

struct relayc_qpkt {
	struct relayc_qpkt *next;
	uint8_t key[KEY_LEN];
	uint64_t at_ms;
	size_t len;
	uint8_t data[];
};

static struct relayc_conn *conn_find(const struct relayc *r, const char *name)
{
	for (int i = 0; i < r->n_conns; i++)
		if (!strcmp(r->conns[i]->name, name))
			return r->conns[i];
	return NULL;
}

const struct relayc_conn *relayc_conn_find(const struct relayc *r, const char *name)
{
	return conn_find(r, name);
}

static void deliver(struct relayc *r, struct relayc_peer *p, const uint8_t *data, size_t len)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(r->wg_port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);

	if (uv_udp_try_send(&p->udp, &b, 1, (const struct sockaddr *)&to) < 0) {
		r->stats.dropped_send++;
		return;
	}
	p->rx_packets++;
	p->last_used_ms = uv_now(r->loop);
	r->stats.from_relay++;
}

static void on_packet(struct relay_client *rc, const uint8_t src[KEY_LEN], const uint8_t *data,
		      size_t len, void *arg)
{
	struct relayc_conn *c = arg;
	struct relayc *r = c->owner;
	struct relayc_peer *p;

	(void)rc;
	c->last_used_ms = uv_now(r->loop);
	if (disco_is(data, len)) {
		r->stats.disco_in++;
		if (r->cbs.on_disco)
			r->cbs.on_disco(r->arg, src, data, len, c->name);
		return;
	}
	p = keymap_get(&r->peers, src);
	if (!p && r->cbs.on_unknown) {
		r->cbs.on_unknown(r->arg, src);
		p = keymap_get(&r->peers, src);
	}
	if (!p) {
		r->stats.dropped_unknown++;
		return;
	}
	deliver(r, p, data, len);
}

static void queue_clear(struct relayc_conn *c)
{
	struct relayc_qpkt *q = c->q_head, *next;

	for (; q; q = next) {
		next = q->next;
		free(q);
	}
	c->q_head = c->q_tail = NULL;
	c->q_len = 0;
}

/* A packet for a connection that is still coming up: kept (bounded) until it is. */
static int queue_add(struct relayc *r, struct relayc_conn *c, const uint8_t key[KEY_LEN],
		     const void *data, size_t len)
{
	struct relayc_qpkt *q;

	if (c->q_len >= RELAYC_QUEUE_MAX || !(q = malloc(sizeof(*q) + len)))
		return -ENOBUFS;
	q->next = NULL;
	memcpy(q->key, key, KEY_LEN);
	q->at_ms = uv_now(r->loop);
	q->len = len;
	memcpy(q->data, data, len);
	if (c->q_tail)
		c->q_tail->next = q;
	else
		c->q_head = q;
	c->q_tail = q;
	c->q_len++;
	r->stats.queued++;
	return 0;
}

static void queue_flush(struct relayc *r, struct relayc_conn *c)
{
	uint64_t now = uv_now(r->loop);
	struct relayc_qpkt *q = c->q_head, *next;

	c->q_head = c->q_tail = NULL;
	c->q_len = 0;
	for (; q; q = next) {
		next = q->next;
		if (now - q->at_ms <= RELAYC_QUEUE_MS && !relay_client_send(c->rc, q->key, q->data, q->len))
			r->stats.to_relay++;
		else
			r->stats.dropped_send++;
		free(q);
	}
}

/* Sends through c now, or queues while it connects. */
static int conn_send(struct relayc *r, struct relayc_conn *c, const uint8_t key[KEY_LEN],
		     const void *data, size_t len)
{
	int rc;

	c->last_used_ms = uv_now(r->loop);
	if (!c->connected) {
		rc = queue_add(r, c, key, data, len);
		if (rc)
			r->stats.dropped_no_relay++;
		return rc;
	}
	rc = relay_client_send(c->rc, key, data, len);
	if (rc)
		r->stats.dropped_send++;
	return rc;
}

static void on_state(struct relay_client *rc, enum relay_client_state st, int detail, void *arg)
{
	struct relayc_conn *c = arg;
	struct relayc *r = c->owner;

	(void)rc;
	if (st == RELAY_CLIENT_CONNECTED) {
		c->connected = 1;
		c->last_error = 0;
		c->connected_ms = uv_now(r->loop);
		log_info("relay connected", "relay=%s home=%s", c->name, c->home ? "yes" : "no");
		queue_flush(r, c);
	} else if (st == RELAY_CLIENT_LOST) {
		if (c->connected || !c->lost_ms)
			log_info("relay connection lost", "relay=%s error=\"%s\"", c->name,
				 strerror(-detail));
		if (c->connected || !c->lost_ms)
			c->lost_ms = uv_now(r->loop);
		c->connected = 0;
		c->last_error = detail;
	} else {
		return;
	}
	if (c->home && r->cbs.on_home)
		r->cbs.on_home(r->arg, c->connected, c->connected ? 0 : detail);
}

/* The relay could not deliver to key: when it was the handshake we hold (the peer's
 * connection to that relay not up yet, typically), it goes again a little later. */
static void on_peer_gone(struct relay_client *rc, const uint8_t key[KEY_LEN], int reason, void *arg)
{
	struct relayc_conn *c = arg;
	struct relayc *r = c->owner;
	struct relayc_peer *p = keymap_get(&r->peers, key);
	uint64_t now = uv_now(r->loop);

	(void)rc;
	(void)reason;
	if (!p || !p->held_len || now - p->held_ms > RELAYC_HOLD_MS || p->resend_ms ||
	    p->resends >= RELAYC_RESENDS)
		return;
	p->resend_ms = now + RELAYC_RESEND_MS;
	r->n_resend++;
}

static void conn_free(struct relayc_conn *c)
{
	queue_clear(c);
	relay_client_free(c->rc);
	free(c);
}

static int conn_start(struct relayc *r, struct relayc_conn *c)
{
	struct relay_client_opts o = {
		.url = c->url, .pin = c->pin[0] ? c->pin : NULL,
		.node_pub = r->keys->node_pub, .node_priv = r->keys->node_priv,
		.flags = c->home ? RELAY_HELLO_PREFERRED : 0, .fast_start = 1,
		.backoff_min_ms = 250, .backoff_max_ms = 5000,
	};
	struct relay_client_cbs cbs = { on_packet, on_peer_gone, on_state };
	int rc;

	relay_client_free(c->rc);
	c->rc = NULL;
	c->connected = 0;
	rc = relay_client_new(r->loop, &o, &cbs, c, &c->rc);
	if (!rc)
		rc = relay_client_start(c->rc);
	if (rc)
		log_warn("cannot start a relay connection", "relay=%s error=\"%s\"", c->name,
			 strerror(-rc));
	c->last_used_ms = uv_now(r->loop);
	return rc;
}

/* The connection to relay `name` (made and started now if needed), or NULL when the map
 * has no such relay. */
static struct relayc_conn *conn_get(struct relayc *r, const char *name)
{
	struct relayc_conn *c = conn_find(r, name);

	if (c)
		return c->rc ? c : (conn_start(r, c) ? NULL : c);
	return NULL;
}

void relayc_init(struct relayc *r, uv_loop_t *loop, const struct node_keys *keys,
		 const struct relayc_cbs *cbs, void *arg)
{
	memset(r, 0, sizeof(*r));
	r->loop = loop;
	r->keys = keys;
	r->cbs = *cbs;
	r->arg = arg;
	keymap_init(&r->peers);
}

void relayc_set_wg_port(struct relayc *r, uint16_t port)
{
	r->wg_port = port;
}

void relayc_set_relays(struct relayc *r, const struct nm_relay *relays, int n)
{
	struct relayc_conn *keep[NM_MAX_RELAYS];
	int nk = 0;

	for (int i = 0; i < n && i < NM_MAX_RELAYS; i++) {
		struct relayc_conn *c = conn_find(r, relays[i].name);

		if (c && (strcmp(c->url, relays[i].url) || strcmp(c->pin, relays[i].pin))) {
			log_info("relay changed its address or pin", "relay=%s", c->name);
			relay_client_free(c->rc);
			c->rc = NULL;
			c->connected = 0;
		}
		if (!c) {
			c = calloc(1, sizeof(*c));
			if (!c)
				continue;
			c->owner = r;
			snprintf(c->name, sizeof(c->name), "%s", relays[i].name);
		}
		snprintf(c->url, sizeof(c->url), "%s", relays[i].url);
		snprintf(c->pin, sizeof(c->pin), "%s", relays[i].pin);
		keep[nk++] = c;
	}
	for (int i = 0; i < r->n_conns; i++) {
		int kept = 0;
		for (int j = 0; j < nk; j++)
			kept |= keep[j] == r->conns[i];
		if (!kept)
			conn_free(r->conns[i]);
	}
	memcpy(r->conns, keep, sizeof(keep[0]) * (size_t)nk);
	r->n_conns = nk;
	if (r->home[0] && !conn_find(r, r->home))
		r->home[0] = 0;
	else if (r->home[0])
		conn_get(r, r->home);   /* a changed home relay reconnects */
}

int relayc_set_home(struct relayc *r, const char *name)
{
	struct relayc_conn *c = name[0] ? conn_find(r, name) : NULL, *old;

	if (name[0] && !c)
		return -ENOENT;
	if (!strcmp(r->home, name))
		return c && !c->rc ? conn_start(r, c) : 0;
	old = r->home[0] ? conn_find(r, r->home) : NULL;
	if (old) {
		/* It stays open as an ordinary connection: peers that have not heard of the
		 * move still reach us there, and it closes when idle. (Its hello said
		 * "preferred"; only the relay's metrics read that.) */
		old->home = 0;
	}
	snprintf(r->home, sizeof(r->home), "%s", name);
	if (!c)
		return 0;
	c->home = 1;
	return conn_start(r, c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char scratch[RELAYC_BUF];   /* the loop is single-threaded; read then sent */

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(scratch, sizeof(scratch));
}

/* WireGuard sent a packet to a relayed peer's port: over the relay with it. */
static void on_wg_packet(uv_udp_t *u, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
			 unsigned flags)
{
	struct relayc_peer *p = u->data;
	struct relayc *r = p->owner;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)from;
	struct relayc_conn *c;
	int rc;

	if (n <= 0 || !from || (flags & UV_UDP_PARTIAL))
		return;
	/* Only WireGuard's own socket may use the relay: anything else on this machine that
	 * finds the port is not let through. */
	if (from->sa_family != AF_INET || sin->sin_addr.s_addr != htonl(INADDR_LOOPBACK) ||
	    ntohs(sin->sin_port) != r->wg_port) {
		r->stats.dropped_foreign++;
		return;
	}
	if ((size_t)n <= sizeof(p->held)) {
		memcpy(p->held, buf->base, (size_t)n);
		p->held_len = (uint16_t)n;
		p->held_ms = uv_now(r->loop);
		p->resends = 0;
	}
	c = conn_get(r, p->relay[0] ? p->relay : r->home);
	if (!c) {
		r->stats.dropped_no_relay++;
		return;
	}
	rc = conn_send(r, c, p->node_key, buf->base, (size_t)n);
	if (rc)
		return;
	p->last_used_ms = uv_now(r->loop);
	p->tx_packets++;
	if (c->connected)
		r->stats.to_relay++;
}

static void peer_closed(uv_handle_t *h)
{
	free(h->data);
}

static void peer_close(struct relayc_peer *p)
{
	uv_udp_recv_stop(&p->udp);
	uv_close((uv_handle_t *)&p->udp, peer_closed);
}

int relayc_peer_ensure(struct relayc *r, int64_t id, const uint8_t key[KEY_LEN],
		       const char *relay, struct addr_port *ep)
{
	struct relayc_peer *p = keymap_get(&r->peers, key);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_storage ss;
	int len = sizeof(ss), rc;

	if (p) {
		int moved = strcmp(p->relay, relay) != 0;

		snprintf(p->relay, sizeof(p->relay), "%s", relay);
		p->id = id;
		*ep = p->ep;
		if (moved && p->held_len && uv_now(r->loop) - p->held_ms <= RELAYC_HOLD_MS) {
			struct relayc_conn *c = conn_get(r, relay[0] ? relay : r->home);

			if (c && !conn_send(r, c, p->node_key, p->held, p->held_len))
				r->stats.resent++;
		}
		return 0;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	memcpy(p->node_key, key, KEY_LEN);
	p->owner = r;
	p->id = id;
	snprintf(p->relay, sizeof(p->relay), "%s", relay);
	rc = uv_udp_init(r->loop, &p->udp);
	if (rc) {
		free(p);
		return rc;
	}
	p->udp.data = p;
	rc = uv_udp_bind(&p->udp, (const struct sockaddr *)&sin, 0);
	if (!rc)
		rc = uv_udp_getsockname(&p->udp, (struct sockaddr *)&ss, &len);
	if (!rc)
		rc = addr_from_sockaddr((const struct sockaddr *)&ss, &p->ep);
	if (!rc)
		rc = uv_udp_recv_start(&p->udp, on_alloc, on_wg_packet);
	if (!rc)
		rc = keymap_put(&r->peers, p->node_key, p);
	if (rc) {
		uv_close((uv_handle_t *)&p->udp, peer_closed);
		return rc;
	}
	p->last_used_ms = uv_now(r->loop);
	*ep = p->ep;
	return 0;
}

struct relayc_peer *relayc_peer_find(struct relayc *r, const uint8_t key[KEY_LEN])
{
	return keymap_get(&r->peers, key);
}

void relayc_peer_remove(struct relayc *r, const uint8_t key[KEY_LEN])
{
	struct relayc_peer *p = keymap_get(&r->peers, key);

	if (!p)
		return;
	if (p->resend_ms)
		r->n_resend--;
	keymap_del(&r->peers, key);
	peer_close(p);
}

int relayc_send(struct relayc *r, const uint8_t key[KEY_LEN], const char *relay,
		const void *data, size_t len)
{
	struct relayc_conn *c = conn_get(r, relay && relay[0] ? relay : r->home);
	int rc;

	if (!c)
		return -ENOENT;
	rc = conn_send(r, c, key, data, len);
	if (!rc)
		r->stats.disco_out++;
	return rc;
}

void relayc_poll(struct relayc *r)
{
	uint64_t now;

	if (!r->n_resend)
		return;
	now = uv_now(r->loop);
	for (size_t i = 0; i < r->peers.cap; i++) {
		struct relayc_peer *p = r->peers.slots[i].key ? r->peers.slots[i].value : NULL;
		struct relayc_conn *c;

		if (!p || !p->resend_ms || now < p->resend_ms)
			continue;
		p->resend_ms = 0;
		p->resends++;
		r->n_resend--;
		c = conn_get(r, p->relay[0] ? p->relay : r->home);
		if (c && !conn_send(r, c, p->node_key, p->held, p->held_len))
			r->stats.resent++;
	}
}

/* Whether some interface still holds address a. */
static int have_address(const struct addr_port *a)
{
	struct ifaddrs *ifa, *i;
	int found = 0;

	if (getifaddrs(&ifa))
		return 1;   /* cannot tell: leave the connection alone */
	for (i = ifa; i && !found; i = i->ifa_next) {
		struct addr_port x;

		if (i->ifa_addr && !addr_from_sockaddr(i->ifa_addr, &x) && x.family == a->family)
			found = a->family == AF_INET ? !memcmp(&x.v4, &a->v4, sizeof(x.v4))
						    : !memcmp(&x.v6, &a->v6, sizeof(x.v6));
	}
	freeifaddrs(ifa);
	return found;
}

void relayc_network_changed(struct relayc *r)
{
	for (int i = 0; i < r->n_conns; i++) {
		struct relayc_conn *c = r->conns[i];
		struct addr_port local;

		if (!c->rc || relay_client_local(c->rc, &local) || have_address(&local))
			continue;
		log_info("relay connection's address is gone: reconnecting", "relay=%s", c->name);
		relay_client_stop(c->rc);
		c->connected = 0;
		relay_client_start(c->rc);
	}
}

void relayc_tick(struct relayc *r)
{
	uint64_t now = uv_now(r->loop);

	for (int i = 0; i < r->n_conns; i++) {
		struct relayc_conn *c = r->conns[i];

		if (c->rc && !c->home && now - c->last_used_ms > RELAYC_IDLE_MS) {
			log_debug("idle relay connection closed", "relay=%s", c->name);
			queue_clear(c);
			relay_client_free(c->rc);
			c->rc = NULL;
			c->connected = 0;
		}
	}
}

void relayc_close(struct relayc *r)
{
	for (int i = 0; i < r->n_conns; i++)
		conn_free(r->conns[i]);
	r->n_conns = 0;
	r->home[0] = 0;
	for (size_t i = 0; i < r->peers.cap; i++) {
		struct relayc_peer *p = r->peers.slots[i].value;
		if (r->peers.slots[i].key && p)
			peer_close(p);
	}
	keymap_free(&r->peers);
	keymap_init(&r->peers);
	r->n_resend = 0;
}
