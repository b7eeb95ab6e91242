/* wg_node.c - one WireGuard node for tests/e2e/wg_userspace.sh, configured only through
 * vpnd's wg.h and netif.h: creates the interface, sets MTU, addresses, routes and one
 * peer, checks the readback and incremental peer changes, prints "ready", then on
 * SIGUSR1 prints the peer's counters and on SIGTERM tears everything down.
 *
 *   wg_node genkey
 *   wg_node stress --ifname N [--backend B]     (1000 peers, one with 3000 allowed IPs)
 *   wg_node run --ifname N --key PRIV --port P --ip4 A --ip6 A
 *               --peer PUB --endpoint IP:PORT --peer-ip4 A --peer-ip6 A [--backend B]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/args.h"
#include "meshvpn/keys.h"
#include "meshvpn/log.h"
#include "vpnd/netif.h"
#include "vpnd/wg.h"

#define LIFETIME_SEC 90   /* bounded even when the script dies without stopping us */

static const uint8_t cgnat[4] = { 100, 64, 0, 0 };
static const uint8_t ula48[16] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0 };

#define CHECK(expr) do { \
	int rc_ = (expr); \
	if (rc_ < 0) { \
		fprintf(stderr, "wg_node: %s: %s\n", #expr, strerror(-rc_)); \
		goto out; \
	} \
} while (0)

#define EXPECT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "wg_node: expected %s\n", #cond); \
		goto out; \
	} \
} while (0)

static int parse_endpoint(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	memset(ss, 0, sizeof(*ss));
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -EINVAL;
}

static void print_stats(struct wg *wg)
{
	struct wg_device *dev = NULL;
	int rc = wg_get_device(wg, &dev);

	if (rc) {
		printf("stats error=%d\n", rc);
	} else {
		for (size_t i = 0; i < dev->n_peers; i++)
			printf("stats peer=%zu rx=%llu tx=%llu handshake=%lld\n", i,
			       (unsigned long long)dev->peers[i].rx_bytes,
			       (unsigned long long)dev->peers[i].tx_bytes,
			       (long long)dev->peers[i].last_handshake_sec);
		wg_device_free(dev);
	}
	fflush(stdout);
}

static int run(int argc, char **argv)
{
	const char *ifname = NULL, *key = NULL, *port = NULL, *ip4s = NULL, *ip6s = NULL,
		   *peer = NULL, *endpoint = NULL, *pip4s = NULL, *pip6s = NULL,
		   *backend = "userspace";
	const struct arg_opt opts[] = {
		{ "ifname", &ifname }, { "key", &key }, { "port", &port }, { "ip4", &ip4s },
		{ "ip6", &ip6s }, { "peer", &peer }, { "endpoint", &endpoint },
		{ "peer-ip4", &pip4s }, { "peer-ip6", &pip6s }, { "backend", &backend },
		{ NULL },
	};
	char err[200] = "", *pos[2];
	struct wg *wg = NULL, *dup = NULL;
	struct netif *nif = NULL;
	struct wg_device dev, *got = NULL;
	struct wg_peer p, extra;
	struct wg_allowedip aips[2], extra_aip;
	struct in_addr ip4;
	struct in6_addr ip6;
	sigset_t set;
	int ifindex = 0, sig, status = 1;

	if (args_parse(argc, argv, opts, pos, 2, err, sizeof(err)) < 0 || !ifname || !key ||
	    !port || !ip4s || !ip6s || !peer || !endpoint || !pip4s || !pip6s) {
		fprintf(stderr, "wg_node run: missing or bad options %s\n", err);
		return 2;
	}
	memset(&dev, 0, sizeof(dev));
	memset(&p, 0, sizeof(p));
	memset(aips, 0, sizeof(aips));
	if (key_from_base64(key, dev.private_key) || key_from_base64(peer, p.public_key) ||
	    parse_endpoint(endpoint, &p.endpoint) || inet_pton(AF_INET, ip4s, &ip4) != 1 ||
	    inet_pton(AF_INET6, ip6s, &ip6) != 1 || inet_pton(AF_INET, pip4s, &aips[0].ip4) != 1 ||
	    inet_pton(AF_INET6, pip6s, &aips[1].ip6) != 1) {
		fprintf(stderr, "wg_node run: bad key or address\n");
		return 2;
	}
	/* Signals arrive through sigwait only. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGALRM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	alarm(LIFETIME_SEC);

	CHECK(wg_open(backend, ifname, NULL, &wg));
	printf("backend=%s\n", wg_backend_name(wg));
	/* The name is taken now, here and (userspace) in every namespace. */
	EXPECT(wg_open(backend, ifname, NULL, &dup) == -EEXIST);

	CHECK(netif_open(&nif));
	CHECK(ifindex = netif_index(nif, ifname));
	CHECK(netif_set_mtu(nif, ifindex, NETIF_DEFAULT_MTU));
	CHECK(netif_set_up(nif, ifindex, 1));
	CHECK(netif_addr_add(nif, ifindex, AF_INET, &ip4, 32));
	CHECK(netif_addr_add(nif, ifindex, AF_INET6, &ip6, 128));
	CHECK(netif_addr_add(nif, ifindex, AF_INET, &ip4, 32));      /* idempotent */
	CHECK(netif_route_add(nif, ifindex, AF_INET, cgnat, 10));
	CHECK(netif_route_add(nif, ifindex, AF_INET6, ula48, 48));
	CHECK(netif_route_add(nif, ifindex, AF_INET, cgnat, 10));    /* idempotent */

	dev.listen_port = (uint16_t)atoi(port);
	dev.flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_REPLACE_PEERS;
	aips[0].family = AF_INET;
	aips[0].cidr = 32;
	aips[1].family = AF_INET6;
	aips[1].cidr = 128;
	p.allowedips = aips;
	p.n_allowedips = 2;
	p.persistent_keepalive = 25;
	p.flags = WG_PEER_HAS_ENDPOINT | WG_PEER_HAS_KEEPALIVE | WG_PEER_REPLACE_ALLOWEDIPS;
	dev.peers = &p;
	dev.n_peers = 1;
	CHECK(wg_set_device(wg, &dev));

	/* Read back what we set. */
	CHECK(wg_get_device(wg, &got));
	EXPECT(got->listen_port == dev.listen_port);
	EXPECT(got->flags & WG_DEVICE_HAS_PUBLIC_KEY);
	EXPECT(got->n_peers == 1);
	EXPECT(!memcmp(got->peers[0].public_key, p.public_key, WG_KEY_LEN));
	EXPECT(got->peers[0].n_allowedips == 2);
	EXPECT(got->peers[0].persistent_keepalive == 25);
	EXPECT(!memcmp(&got->peers[0].endpoint, &p.endpoint, sizeof(struct sockaddr_in)));
	wg_device_free(got);
	got = NULL;

	/* Incremental: another peer comes and goes, the first one stays. */
	memset(&extra, 0, sizeof(extra));
	memset(&extra_aip, 0, sizeof(extra_aip));
	memset(extra.public_key, 0x42, WG_KEY_LEN);
	extra_aip.family = AF_INET;
	extra_aip.ip4.s_addr = htonl(0x64400063);
	extra_aip.cidr = 32;
	extra.allowedips = &extra_aip;
	extra.n_allowedips = 1;
	dev.flags = 0;
	dev.peers = &extra;
	CHECK(wg_set_device(wg, &dev));
	CHECK(wg_get_device(wg, &got));
	EXPECT(got->n_peers == 2);
	wg_device_free(got);
	got = NULL;
	extra.flags = WG_PEER_REMOVE;
	CHECK(wg_set_device(wg, &dev));
	CHECK(wg_get_device(wg, &got));
	EXPECT(got->n_peers == 1 && !memcmp(got->peers[0].public_key, p.public_key, WG_KEY_LEN));
	wg_device_free(got);
	got = NULL;

	printf("ready pid=%d\n", (int)getpid());
	fflush(stdout);
	for (;;) {
		if (sigwait(&set, &sig))
			break;
		if (sig == SIGUSR1) {
			print_stats(wg);
			continue;
		}
		if (sig == SIGALRM)
			fprintf(stderr, "wg_node: lifetime over, stopping\n");
		break;
	}
	CHECK(netif_route_del(nif, ifindex, AF_INET, cgnat, 10));
	CHECK(netif_route_del(nif, ifindex, AF_INET6, ula48, 48));
	CHECK(netif_addr_del(nif, ifindex, AF_INET, &ip4, 32));
	CHECK(netif_addr_del(nif, ifindex, AF_INET6, &ip6, 128));
	CHECK(netif_set_up(nif, ifindex, 0));
	status = 0;
out:
	wg_device_free(got);
	wg_close(dup);
	wg_close(wg);
	if (wg && nif && netif_index(nif, ifname) != -ENODEV) {
		fprintf(stderr, "wg_node: %s still exists after close\n", ifname);
		status = 1;
	}
	netif_close(nif);
	sodium_memzero(dev.private_key, sizeof(dev.private_key));
	printf("exit status=%d\n", status);
	return status;
}

/* Many peers, one with thousands of allowed IPs: the kernel backend's requests and its
 * dump both span many netlink messages. Everything must read back as it was set. */
static int stress(int argc, char **argv)
{
	const char *ifname = NULL, *backend = "userspace";
	const struct arg_opt opts[] = { { "ifname", &ifname }, { "backend", &backend }, { NULL } };
	char err[200] = "", *pos[2];
	struct wg *wg = NULL;
	struct wg_device *dev = NULL, *got = NULL;
	uint8_t pub[KEY_LEN], scratch[KEY_LEN];
	int status = 1, rc;

	if (args_parse(argc, argv, opts, pos, 2, err, sizeof(err)) < 0 || !ifname) {
		fprintf(stderr, "wg_node stress: missing or bad options %s\n", err);
		return 2;
	}
	dev = wg_device_new();
	if (!dev)
		return 1;
	key_x25519_generate(pub, dev->private_key);
	dev->listen_port = 40000;
	dev->flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_REPLACE_PEERS;
	for (unsigned i = 0; i < 1000; i++) {
		struct wg_peer *p;
		struct wg_allowedip a = { .family = AF_INET, .cidr = 32 };
		unsigned n = i == 500 ? 3000 : 4;

		CHECK(wg_device_add_peer(dev, &p));
		key_x25519_generate(p->public_key, scratch);
		for (unsigned j = 0; j < n; j++) {
			a.ip4.s_addr = htonl(0x0a000000U + i * 4096 + j);
			CHECK(wg_peer_add_allowedip(p, &a));
		}
		p->flags = WG_PEER_REPLACE_ALLOWEDIPS;
	}
	sodium_memzero(scratch, sizeof(scratch));
	CHECK(wg_open(backend, ifname, NULL, &wg));
	CHECK(wg_set_device(wg, dev));
	CHECK(wg_get_device(wg, &got));
	EXPECT(got->n_peers == dev->n_peers);
	EXPECT(!memcmp(got->public_key, pub, KEY_LEN));
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct wg_peer *a = &dev->peers[i], *b = NULL;
		size_t found = 0;

		/* Peers come back in the backend's order. */
		for (size_t k = 0; k < got->n_peers && !b; k++)
			if (!memcmp(got->peers[k].public_key, a->public_key, KEY_LEN))
				b = &got->peers[k];
		EXPECT(b && b->n_allowedips == a->n_allowedips);
		for (size_t j = 0; j < a->n_allowedips; j++)
			for (size_t k = 0; k < b->n_allowedips; k++)
				if (b->allowedips[k].ip4.s_addr == a->allowedips[j].ip4.s_addr &&
				    b->allowedips[k].cidr == 32) {
					found++;
					break;
				}
		EXPECT(found == a->n_allowedips);
	}
	wg_device_free(got);
	got = NULL;
	/* REPLACE_PEERS with a few: the rest go. */
	dev->n_peers = 10;
	rc = wg_set_device(wg, dev);
	dev->n_peers = 1000;
	CHECK(rc);
	CHECK(wg_get_device(wg, &got));
	EXPECT(got->n_peers == 10);
	wg_device_free(got);
	got = NULL;
	/* Errors come back as errno: the link gone under the kernel backend. */
	if (!strcmp(wg_backend_name(wg), "kernel")) {
		struct netif *nif;

		CHECK(netif_open(&nif));
		rc = netif_delete(nif, ifname);
		netif_close(nif);
		CHECK(rc);
		EXPECT(wg_set_device(wg, dev) == -ENODEV);
		EXPECT(wg_get_device(wg, &got) == -ENODEV);
	}
	printf("stress ok backend=%s peers=1000 allowedips=%u\n", wg_backend_name(wg), 999 * 4 + 3000);
	status = 0;
out:
	wg_device_free(got);
	wg_device_free(dev);
	wg_close(wg);
	return status;
}

int main(int argc, char **argv)
{
	if (keys_init())
		return 1;
	if (argc >= 2 && !strcmp(argv[1], "genkey")) {
		uint8_t pub[KEY_LEN], priv[KEY_LEN];
		char a[KEY_B64_LEN], b[KEY_B64_LEN];

		key_x25519_generate(pub, priv);
		key_to_base64(priv, a);
		key_to_base64(pub, b);
		printf("%s %s\n", a, b);
		sodium_memzero(priv, sizeof(priv));
		sodium_memzero(a, sizeof(a));
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return run(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "stress"))
		return stress(argc - 1, argv + 1);
	fprintf(stderr, "usage: wg_node genkey | wg_node run --ifname N --key PRIV --port P "
			"--ip4 A --ip6 A --peer PUB --endpoint IP:PORT --peer-ip4 A --peer-ip6 A "
			"[--backend auto|kernel|userspace]\n");
	return 2;
}
