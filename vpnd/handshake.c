/* handshake.c - WireGuard's first handshakes and its roaming, looked after for
 * traversal.c: a new relayed peer whose first handshake was lost is added again at once
 * rather than after WireGuard's 5 s, and a direct peer that WireGuard roamed to the relay
 * gets its direct endpoint back. */
#include <stdlib.h>
#include <string.h>

#include "meshvpn/log.h"
#include "vpnd.h"

/* WireGuard roams to wherever an authenticated packet came from: a packet the peer sent
 * through the relay (it has not found the direct path yet, or lost it first) makes ours
 * send through the relay too, and if both roam so, neither leaves it. While we are direct
 * and relayed packets from the peer still come, the direct endpoint is set again (at most
 * every TV_REASSERT_MS). */
void traversal_keep_direct(struct traversal *tv, struct tv_peer *p, uint64_t now)
{
	const struct relayc_peer *rp;

	if (p->applied != TV_DIRECT || now < p->reassert_ms ||
	    !(rp = relayc_peer_find(&tv->relayc, p->node_key)) || rp->rx_packets == p->relay_rx_seen)
		return;
	p->relay_rx_seen = rp->rx_packets;
	p->reassert_ms = now + TV_REASSERT_MS;
	wgsync_reassert(&tv->d->sync, p->id);
}

static int cmp_wg_key(const void *a, const void *b)
{
	return memcmp(((const struct wg_peer *)a)->public_key, ((const struct wg_peer *)b)->public_key,
		      WG_KEY_LEN);
}

/* A new relayed peer's first handshake may be lost (sent before the other side knew us, or
 * before the way through the relay was up, or crossed with its own); WireGuard would wait
 * 5 s to retry. Relayed peers without a handshake, and with nothing received since the last
 * look, a second after they appeared are kicked (removed and
 * added again: a new attempt at once), a few times. A read of the device every 250 ms,
 * only while such peers exist. */
void traversal_kick_new(struct traversal *tv, uint64_t now)
{
	struct wg_device *dev = NULL;
	int due = 0;

	for (size_t i = 0; i < tv->n && !due; i++) {
		const struct tv_peer *p = tv->peers[i];

		due = !p->handshaked && p->applied == TV_RELAY && p->kicks < TV_KICKS &&
		      now - p->added_ms >= TV_KICK_AFTER_MS;
	}
	if (!due || !tv->d->wg || wg_get_device(tv->d->wg, &dev))
		return;
	qsort(dev->peers, dev->n_peers, sizeof(*dev->peers), cmp_wg_key);
	for (size_t i = 0; i < tv->n; i++) {
		struct tv_peer *p = tv->peers[i];
		struct wg_peer key, *w;

		if (p->handshaked || p->applied != TV_RELAY || p->kicks >= TV_KICKS ||
		    now - p->added_ms < TV_KICK_AFTER_MS || now - p->kick_ms < TV_KICK_EVERY_MS)
			continue;
		memcpy(key.public_key, p->node_key, WG_KEY_LEN);
		w = dev->n_peers ? bsearch(&key, dev->peers, dev->n_peers, sizeof(*dev->peers),
					   cmp_wg_key) : NULL;
		if (w && w->last_handshake_sec) {
			p->handshaked = 1;
			continue;
		}
		/* Something came from it since the last look: a handshake may be under way
		 * (a slow machine); not now. */
		if (w && w->rx_bytes != p->kick_rx) {
			p->kick_rx = w->rx_bytes;
			continue;
		}
		if (!w || !tv->d->nm.n_peers)
			continue;
		p->kicks++;
		p->kick_ms = now;
		log_debug("no handshake yet: peer added again", "peer=%s kick=%d", p->name, p->kicks);
		wgsync_kick(&tv->d->sync, p->id);
	}
	wg_device_free(dev);
}
