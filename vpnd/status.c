/* status.c - what `vpnctl status --json` shows (and --metrics reads): the node's own
 * state (with the netmap's relays) and, while running, every peer of the netmap with
 * what WireGuard reports for it (endpoint, last handshake, traffic). DESIGN.md, the
 * CLI/JSON contract. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meshvpn/log.h"
#include "vpnd.h"
#include "wg.h"

/* The coord instances: the list, the one in use (and the address dialled when its name
 * resolved to several) and how often the stream moved. */
static void coord_json(const struct vpnd *d, json_t *self)
{
	const struct coord_urls *l = &d->cc.ls.urls;
	struct coord_urls *saved = malloc(sizeof(*saved));   /* ~10 KiB */
	char cur[COORD_URLS_ORDERED_MAX + 1] = "";
	json_t *urls = json_array();

	/* The list in prefs (the stream's may be an older one while stopped). */
	if (saved && !coord_urls_parse(d->prefs.coord, saved, NULL, 0))
		for (size_t i = 0; i < saved->n_urls; i++)
			json_array_append_new(urls, json_string(saved->base[i]));
	free(saved);
	if (d->cc.active)
		coordc_current(&d->cc, d->prefs.coord, 0, cur, sizeof(cur));
	json_object_set_new(self, "coord_urls", urls);
	json_object_set_new(self, "coord_current", json_string(cur));
	json_object_set_new(self, "coord_address",
			    json_string(d->cc.active && l->n_cand ? coord_urls_current(l)->addr : ""));
	json_object_set_new(self, "coord_failovers", json_integer((json_int_t)l->moves));
}

static int cmp_wg_peer(const void *a, const void *b)
{
	return memcmp(((const struct wg_peer *)a)->public_key, ((const struct wg_peer *)b)->public_key,
		      WG_KEY_LEN);
}

/* The relay map as the netmap gave it: where the node can be reached through, later. */
static json_t *relays_json(const struct netmap *m)
{
	json_t *a = json_array();

	for (int i = 0; a && i < m->n_relays; i++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "name", m->relays[i].name,
						   "url", m->relays[i].url, "stun", m->relays[i].stun));
	return a;
}

/* What WireGuard really uses (it roams to where authenticated packets come from): one of
 * our loopback ports is the relay, another endpoint is direct once a handshake is
 * recent or path selection chose it. */
static const char *peer_path(struct vpnd *d, const struct nm_peer *p, const struct addr_port *wep,
			     int64_t hs, int64_t now, const char **relay)
{
	const struct tv_peer *tp = traversal_find(&d->tv, p->id);

	*relay = "";
	if (!wep)
		return "none";
	if (tp && traversal_is_relay_ep(&d->tv, tp, wep)) {
		*relay = tp->relay[0] ? tp->relay : traversal_home(&d->tv);
		return "relay";
	}
	if ((tp && tp->applied == TV_DIRECT) || (hs && now - hs < VPND_DIRECT_WINDOW))
		return "direct";
	return "none";
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
	if (self) {
		json_object_set_new(self, "accept_dns", json_boolean(d->prefs.accept_dns));
		coord_json(d, self);
	}
	if (self && d->nm.have_full && d->nm.self.fqdn[0])
		json_object_set_new(self, "fqdn", json_string(d->nm.self.fqdn));
	if (self)
		json_object_set_new(self, "relays", relays_json(&d->nm));
	if (self)
		json_object_set_new(self, "home_relay", json_string(traversal_home(&d->tv)));
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
		char a4[INET_ADDRSTRLEN], a6[INET6_ADDRSTRLEN], ep[ADDR_TEXT_LEN] = "";
		struct addr_port wep;
		const char *path, *relay;
		int64_t hs = 0;

		if (dev && dev->n_peers) {
			struct wg_peer key;
			memcpy(key.public_key, p->node_key, WG_KEY_LEN);
			wp = bsearch(&key, dev->peers, dev->n_peers, sizeof(*dev->peers), cmp_wg_peer);
		}
		if (wp && (wp->flags & WG_PEER_HAS_ENDPOINT) &&
		    !addr_from_sockaddr((const struct sockaddr *)&wp->endpoint, &wep))
			addr_format(&wep, ep, sizeof(ep));
		if (wp)
			hs = wp->last_handshake_sec;
		path = peer_path(d, p, ep[0] ? &wep : NULL, hs, now, &relay);
		inet_ntop(AF_INET, &p->ip4, a4, sizeof(a4));
		inet_ntop(AF_INET6, &p->ip6, a6, sizeof(a6));
		o = json_pack("{s:s, s:[s,s], s:b, s:s, s:s, s:s, s:I, s:I, s:I}", "name", p->name,
			      "ips", a4, a6, "online", p->online,
			      "path", path, "endpoint", ep, "relay", relay,
			      "last_handshake", (json_int_t)hs,
			      "rx_bytes", (json_int_t)(wp ? wp->rx_bytes : 0),
			      "tx_bytes", (json_int_t)(wp ? wp->tx_bytes : 0));
		if (o)
			json_array_append_new(peers, o);
	}
	wg_device_free(dev);
	return json_pack("{s:o, s:o}", "self", self ? self : json_object(), "peers", peers);
}
