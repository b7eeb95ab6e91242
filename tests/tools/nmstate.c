/* nmstate.c - what a node makes of netmap lines: feeds the lines of the files given, in
 * order, through vpnd's own parser (vpnd/netmap.c, as vpnd does with coord's stream) and
 * prints the resulting map, one canonical line per field, for tests that compare a map
 * resumed after an outage with a fresh full one (tests/e2e/resume.sh). The version is
 * printed last, on a line of its own. Lines that are refused are counted on stderr and
 * make the exit status 1. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/addr.h"
#include "meshvpn/keys.h"
#include "vpnd/netmap.h"

static void print_peer(const struct nm_peer *p)
{
	char nk[KEY_B64_LEN], dk[KEY_B64_LEN], v4[INET_ADDRSTRLEN], v6[INET6_ADDRSTRLEN];

	key_to_base64(p->node_key, nk);
	key_to_base64(p->disco_key, dk);
	inet_ntop(AF_INET, &p->ip4, v4, sizeof(v4));
	inet_ntop(AF_INET6, &p->ip6, v6, sizeof(v6));
	printf("peer %lld name=%s fqdn=%s key=%s disco=%s ips=%s,%s relay=%s online=%d seen=%lld eps=",
	       (long long)p->id, p->name, p->fqdn, nk, dk, v4, v6, p->home_relay, p->online,
	       (long long)p->last_seen);
	for (int i = 0; i < p->n_endpoints; i++) {
		char ep[ADDR_TEXT_LEN];

		addr_format(&p->endpoints[i], ep, sizeof(ep));
		printf("%s%s", i ? "," : "", ep);
	}
	printf("\n");
}

static void print_map(const struct netmap *m)
{
	char v4[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &m->self.ip4, v4, sizeof(v4));
	printf("self id=%lld name=%s fqdn=%s state=%d ip=%s expiry=%lld\n", (long long)m->self.id,
	       m->self.name, m->self.fqdn, (int)m->self.state, v4, (long long)m->self.key_expiry);
	printf("domain %s\nepoch %s\n", m->domain, m->epoch);
	for (int i = 0; i < m->n_relays; i++)
		printf("relay %s url=%s pin=%s stun=%s\n", m->relays[i].name, m->relays[i].url,
		       m->relays[i].pin, m->relays[i].stun);
	if (m->dns)
		printf("dns domain=%s upstreams=%d routes=%zu records=%zu rules=%zu nxdomain=%d "
		       "blocklist=%lld\n", m->dns->domain, m->dns->n_upstreams, m->dns->n_routes,
		       m->dns->n_records, m->dns->n_rules, m->dns->nxdomain,
		       (long long)m->dns->blocklist_version);
	for (size_t i = 0; i < m->n_peers; i++)
		print_peer(&m->peers[i]);
	printf("version %lld\n", (long long)m->version);
}

int main(int argc, char **argv)
{
	struct netmap m;
	size_t cap = 0, bad = 0;
	char *line = NULL;
	ssize_t len;

	if (argc < 2) {
		fprintf(stderr, "usage: nmstate FILE...\n");
		return 2;
	}
	netmap_init(&m);
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "r");

		if (!f) {
			perror(argv[i]);
			return 2;
		}
		while ((len = getline(&line, &cap, f)) > 0) {
			struct nm_change chg;

			while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = 0;
			if (!len)
				continue;
			if (netmap_apply_line(&m, line, (size_t)len, &chg))
				bad++;
			nm_change_clear(&chg);
		}
		fclose(f);
	}
	free(line);
	print_map(&m);
	netmap_free(&m);
	if (bad)
		fprintf(stderr, "nmstate: %zu lines refused\n", bad);
	return bad ? 1 : 0;
}
