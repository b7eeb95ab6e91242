/* fuzz_vpnd_netmap.c - vpnd's netmap ingestion (vpnd/netmap.c) on arbitrary streams: the
 * input is split at '\n' into lines applied in order to one map, as coord's chunked
 * stream would deliver them. After every line the map must be well-formed (peers sorted
 * by unique positive ids, counts and strings in bounds, relay names, URLs, pins and
 * STUN addresses too, the DNS policy's counts and strings), a refused line must leave it
 * exactly as it was, and a change must point into the map. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vpnd/netmap.h"

#define MAX_LINES 256

static void check_str(const char *s, size_t size)
{
	if (!memchr(s, 0, size))
		abort();
}

static void check_map(const struct netmap *m)
{
	if (m->n_peers > NM_MAX_PEERS || (m->n_peers && !m->peers) || m->n_peers > m->cap)
		abort();
	if (m->n_relays < 0 || m->n_relays > NM_MAX_RELAYS)
		abort();
	if (!m->have_full && m->n_peers)
		abort();
	check_str(m->self.name, sizeof(m->self.name));
	if ((unsigned)m->self.state > NODE_STATUS_REJECTED)
		abort();
	check_str(m->domain, sizeof(m->domain));
	for (size_t i = 0; i < m->n_peers; i++) {
		const struct nm_peer *p = &m->peers[i];

		if (p->id <= 0 || (i && m->peers[i - 1].id >= p->id))
			abort();
		if (p->n_endpoints < 0 || p->n_endpoints > NM_MAX_ENDPOINTS)
			abort();
		for (int e = 0; e < p->n_endpoints; e++)
			if (p->endpoints[e].family != AF_INET && p->endpoints[e].family != AF_INET6)
				abort();
		check_str(p->name, sizeof(p->name));
		check_str(p->home_relay, sizeof(p->home_relay));
		if (netmap_find_id(m, p->id) != p)
			abort();
	}
	if (m->dns) {
		const struct nm_dns *d = m->dns;
		if (d->n_upstreams < 0 || d->n_upstreams > NM_DNS_MAX_UPSTREAMS ||
		    d->n_routes > NM_DNS_MAX_ROUTES || d->n_records > NM_DNS_MAX_RECORDS ||
		    d->n_rules > NM_DNS_MAX_RULES || d->blocklist_version < 0)
			abort();
		check_str(d->domain, sizeof(d->domain));
		check_str(d->blocklist_url, sizeof(d->blocklist_url));
		for (size_t i = 0; i < d->n_routes; i++)
			if (d->routes[i].n_servers < 1 || d->routes[i].n_servers > NM_DNS_ROUTE_SERVERS)
				abort();
		for (size_t i = 0; i < d->n_records; i++)
			if (!d->records[i].type || !memchr(d->records[i].value, 0, sizeof(d->records[i].value)))
				abort();
		for (size_t i = 0; i < d->n_rules; i++)
			check_str(d->rules[i].domain, sizeof(d->rules[i].domain));
	}
	for (int r = 0; r < m->n_relays; r++) {
		check_str(m->relays[r].name, sizeof(m->relays[r].name));
		check_str(m->relays[r].url, sizeof(m->relays[r].url));
		check_str(m->relays[r].pin, sizeof(m->relays[r].pin));
		check_str(m->relays[r].stun, sizeof(m->relays[r].stun));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct netmap m;
	struct nm_change chg;
	const char *p = (const char *)data, *end = p + size;
	int lines = 0;

	netmap_init(&m);
	while (p < end && lines++ < MAX_LINES) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct nm_peer *before = NULL;
		size_t n_before = m.n_peers;
		struct nm_self self_before = m.self;
		const struct nm_dns *dns_before = m.dns;
		struct nm_relay relays_before[NM_MAX_RELAYS];
		int had_full = m.have_full, n_relays = m.n_relays, rc;

		if (n_before) {
			before = malloc(n_before * sizeof(*before));
			if (!before)
				abort();
			memcpy(before, m.peers, n_before * sizeof(*before));
		}
		memcpy(relays_before, m.relays, sizeof(relays_before));
		rc = netmap_apply_line(&m, p, len, &chg);
		if (rc) {
			if (rc != -EINVAL && rc != -EPROTO && rc != -ENOMEM && rc != -E2BIG)
				abort();
			if (rc == -EPROTO && had_full)
				abort();
			/* Refused: nothing moved. */
			if (m.n_peers != n_before || m.have_full != had_full || m.n_relays != n_relays ||
			    memcmp(&m.self, &self_before, sizeof(self_before)) ||
			    memcmp(m.relays, relays_before, sizeof(relays_before)) || m.dns != dns_before ||
			    (n_before && memcmp(m.peers, before, n_before * sizeof(*before))) ||
			    chg.old_peers)
				abort();
		} else {
			switch (chg.kind) {
			case NM_FULL:
				if (chg.n_old != n_before || (n_before && !chg.old_peers) || !m.have_full)
					abort();
				for (size_t i = 0; i < chg.n_old; i++)
					if (memcmp(&chg.old_peers[i], &before[i], sizeof(before[i])))
						abort();
				break;
			case NM_PEER_ADDED:
			case NM_PEER_CHANGED:
				if (chg.peer < m.peers || chg.peer >= m.peers + m.n_peers)
					abort();
				if (netmap_find_key(&m, chg.peer->node_key) == NULL)
					abort();
				if (chg.kind == NM_PEER_ADDED && m.n_peers != n_before + 1 &&
				    m.n_peers != n_before)
					abort();
				break;
			case NM_PEER_REMOVED:
				if (m.n_peers + 1 != n_before || netmap_find_id(&m, chg.removed.id))
					abort();
				break;
			case NM_GONE:
				check_str(chg.reason, sizeof(chg.reason));
				break;
			case NM_DNS:
				if (!m.dns)
					abort();
				break;
			default:
				break;
			}
		}
		nm_change_clear(&chg);
		free(before);
		check_map(&m);
		if (!nl)
			break;
		p = nl + 1;
	}
	netmap_free(&m);
	return 0;
}
