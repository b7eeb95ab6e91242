/* test_vpnd_wgsync.c - vpnd/wgsync.c against a fake WireGuard: a model of the device that
 * applies each wg_device as the backends do (replace_peers, remove, replace_allowed_ips,
 * endpoint, keepalive) and records every message. Checks that what runs equals what the
 * netmap wants, and that each change is the smallest one: unchanged peers are never in a
 * message, an endpoint or keepalive change leaves allowed IPs (and the session) alone. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vpnd/wgsync.h"

#define MAX_FAKE 64

struct fake_peer {
	uint8_t key[WG_KEY_LEN];
	struct sockaddr_storage endpoint;
	uint16_t keepalive;
	struct wg_allowedip aips[4];
	size_t n_aips;
	unsigned sets_of_aips;            /* times allowed IPs were replaced (a "reconfig") */
};

struct fake_wg {
	struct fake_peer peers[MAX_FAKE];
	size_t n;
	unsigned calls;
	size_t last_entries;              /* peer entries in the last message */
	unsigned last_flags[MAX_FAKE];    /* their flags */
	int fail_next;                    /* -errno for the next call */
};

static struct fake_peer *fake_find(struct fake_wg *f, const uint8_t key[WG_KEY_LEN])
{
	for (size_t i = 0; i < f->n; i++)
		if (!memcmp(f->peers[i].key, key, WG_KEY_LEN))
			return &f->peers[i];
	return NULL;
}

static int fake_set(void *arg, const struct wg_device *dev)
{
	struct fake_wg *f = arg;

	f->calls++;
	if (f->fail_next) {
		int rc = f->fail_next;

		f->fail_next = 0;
		return rc;
	}
	assert_int_equal(wg_device_check(dev), 0);
	if (dev->flags & WG_DEVICE_REPLACE_PEERS)
		f->n = 0;
	f->last_entries = dev->n_peers;
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct wg_peer *p = &dev->peers[i];
		struct fake_peer *fp = fake_find(f, p->public_key);

		f->last_flags[i] = p->flags;
		if (p->flags & WG_PEER_REMOVE) {
			if (fp)
				*fp = f->peers[--f->n];
			continue;
		}
		if (!fp) {
			assert_true(f->n < MAX_FAKE);
			fp = &f->peers[f->n++];
			memset(fp, 0, sizeof(*fp));
			memcpy(fp->key, p->public_key, WG_KEY_LEN);
		}
		if (p->flags & WG_PEER_HAS_ENDPOINT)
			fp->endpoint = p->endpoint;
		if (p->flags & WG_PEER_HAS_KEEPALIVE)
			fp->keepalive = p->persistent_keepalive;
		if (p->flags & WG_PEER_REPLACE_ALLOWEDIPS) {
			fp->n_aips = 0;
			fp->sets_of_aips++;
		}
		for (size_t j = 0; j < p->n_allowedips; j++) {
			assert_true(fp->n_aips < 4);
			fp->aips[fp->n_aips++] = p->allowedips[j];
		}
	}
	return 0;
}

static struct nm_peer mkpeer(int64_t id, uint8_t keyseed, const char *ep, int online)
{
	struct nm_peer p;

	memset(&p, 0, sizeof(p));
	p.id = id;
	snprintf(p.name, sizeof(p.name), "n%lld", (long long)id);
	memset(p.node_key, keyseed, KEY_LEN);
	p.ip4.s_addr = htonl(0x64400000u + (uint32_t)id);
	p.ip6.s6_addr[0] = 0xfd;
	p.ip6.s6_addr[15] = (uint8_t)id;
	if (ep) {
		assert_int_equal(addr_parse(ep, strlen(ep), 0, &p.endpoints[0]), 0);
		p.n_endpoints = 1;
	}
	p.online = online;
	return p;
}

/* A netmap holding a copy of peers (sorted by id by the caller). */
static void mkmap(struct netmap *m, const struct nm_peer *peers, size_t n)
{
	netmap_free(m);
	netmap_init(m);
	m->have_full = 1;
	m->peers = calloc(n ? n : 1, sizeof(*peers));
	assert_non_null(m->peers);
	memcpy(m->peers, peers, n * sizeof(*peers));
	m->n_peers = m->cap = n;
}

static void endpoint_is(const struct fake_peer *fp, const char *want)
{
	struct addr_port a;
	char text[ADDR_TEXT_LEN] = "";

	if (fp->endpoint.ss_family)
		assert_int_equal(addr_from_sockaddr((const struct sockaddr *)&fp->endpoint, &a), 0);
	if (fp->endpoint.ss_family)
		addr_format(&a, text, sizeof(text));
	assert_string_equal(text, want ? want : "");
}

/* What runs is exactly what m wants: every peer with its key, /32 + /128, keepalive by
 * online, and the first endpoint. */
static void runs(struct fake_wg *f, const struct netmap *m)
{
	assert_int_equal(f->n, m->n_peers);
	for (size_t i = 0; i < m->n_peers; i++) {
		const struct nm_peer *p = &m->peers[i];
		struct fake_peer *fp = fake_find(f, p->node_key);
		char ep[ADDR_TEXT_LEN];

		assert_non_null(fp);
		assert_int_equal(fp->keepalive, p->online ? WGSYNC_KEEPALIVE : 0);
		assert_int_equal(fp->n_aips, 2);
		assert_int_equal(fp->aips[0].family, AF_INET);
		assert_int_equal(fp->aips[0].cidr, 32);
		assert_int_equal(fp->aips[0].ip4.s_addr, p->ip4.s_addr);
		assert_int_equal(fp->aips[1].family, AF_INET6);
		assert_int_equal(fp->aips[1].cidr, 128);
		assert_memory_equal(&fp->aips[1].ip6, &p->ip6, 16);
		if (p->n_endpoints) {
			addr_format(&p->endpoints[0], ep, sizeof(ep));
			endpoint_is(fp, ep);
		}
	}
}

struct ctx {
	struct fake_wg f;
	struct wgsync s;
	struct netmap m;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	wgsync_init(&c->s, "test0");
	wgsync_attach(&c->s, fake_set, &c->f);
	netmap_init(&c->m);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	wgsync_free(&c->s);
	netmap_free(&c->m);
	free(c);
	return 0;
}

static void test_vpnd_wgsync_full_then_same(void **state)
{
	struct ctx *c = *state;
	struct nm_peer p[3] = { mkpeer(1, 0xa1, "198.51.100.1:41641", 1),
				mkpeer(2, 0xa2, "[2001:db8::2]:41641", 0), mkpeer(5, 0xa5, NULL, 1) };

	mkmap(&c->m, p, 3);
	wgsync_full(&c->s, &c->m);
	assert_int_equal(c->f.calls, 1);
	assert_int_equal(c->f.last_entries, 3);
	runs(&c->f, &c->m);
	assert_int_equal(c->s.n, 3);
	assert_false(c->s.dirty);

	/* The same map again: nothing is sent at all. */
	wgsync_full(&c->s, &c->m);
	assert_int_equal(c->f.calls, 1);
	runs(&c->f, &c->m);
}

static void test_vpnd_wgsync_full_smallest_change(void **state)
{
	struct ctx *c = *state;
	struct nm_peer p[4] = { mkpeer(1, 0xa1, "198.51.100.1:41641", 1),
				mkpeer(2, 0xa2, "198.51.100.2:41641", 1),
				mkpeer(3, 0xa3, "198.51.100.3:41641", 1),
				mkpeer(4, 0xa4, "198.51.100.4:41641", 1) };
	struct nm_peer q[4];
	unsigned reconf1;
	int removes = 0, endpoint_only = 0, keepalive_only = 0, configs = 0;

	mkmap(&c->m, p, 4);
	wgsync_full(&c->s, &c->m);
	reconf1 = fake_find(&c->f, p[0].node_key)->sets_of_aips;

	/* 1 unchanged, 2 moves, 3 goes offline, 4 is gone, 6 is new, 2's id keeps its key. */
	q[0] = p[0];
	q[1] = mkpeer(2, 0xa2, "203.0.113.2:41641", 1);
	q[2] = mkpeer(3, 0xa3, "198.51.100.3:41641", 0);
	q[3] = mkpeer(6, 0xa6, "198.51.100.6:41641", 1);
	mkmap(&c->m, q, 4);
	wgsync_full(&c->s, &c->m);
	assert_int_equal(c->f.calls, 2);
	runs(&c->f, &c->m);
	assert_null(fake_find(&c->f, p[3].node_key));
	assert_int_equal(fake_find(&c->f, p[0].node_key)->sets_of_aips, reconf1);
	for (size_t i = 0; i < c->f.last_entries; i++) {
		unsigned fl = c->f.last_flags[i];

		removes += fl == WG_PEER_REMOVE;
		endpoint_only += fl == WG_PEER_HAS_ENDPOINT;
		keepalive_only += fl == WG_PEER_HAS_KEEPALIVE;
		configs += !!(fl & WG_PEER_REPLACE_ALLOWEDIPS);
	}
	assert_int_equal(c->f.last_entries, 4);   /* peer 1 is not in the message */
	assert_int_equal(removes, 1);
	assert_int_equal(endpoint_only, 1);
	assert_int_equal(keepalive_only, 1);
	assert_int_equal(configs, 1);

	/* A key that moves to another id: the old key goes first, then the new peer. */
	q[3] = mkpeer(7, 0xa6, "198.51.100.6:41641", 1);
	mkmap(&c->m, q, 4);
	wgsync_full(&c->s, &c->m);
	runs(&c->f, &c->m);
	assert_int_equal(c->f.last_flags[0], WG_PEER_REMOVE);
}

static void test_vpnd_wgsync_deltas(void **state)
{
	struct ctx *c = *state;
	struct nm_peer p[2] = { mkpeer(1, 0xa1, "198.51.100.1:41641", 1),
				mkpeer(2, 0xa2, "198.51.100.2:41641", 1) };
	struct nm_peer n3 = mkpeer(3, 0xa3, "198.51.100.3:41641", 1);
	struct nm_peer n1b = mkpeer(1, 0xa1, "198.51.100.1:41641", 1);
	struct nm_peer rekey = mkpeer(2, 0xb2, "198.51.100.2:41641", 1);
	unsigned calls;

	mkmap(&c->m, p, 2);
	wgsync_full(&c->s, &c->m);

	wgsync_peer(&c->s, &n3);                       /* added */
	assert_non_null(fake_find(&c->f, n3.node_key));
	assert_int_equal(c->s.n, 3);
	assert_int_equal(c->s.peers[2].p.id, 3);       /* the mirror stays sorted */

	calls = c->f.calls;
	snprintf(n1b.name, sizeof(n1b.name), "renamed");
	wgsync_peer(&c->s, &n1b);                      /* a name: nothing for WireGuard */
	assert_int_equal(c->f.calls, calls);
	assert_string_equal(wgsync_find(&c->s, 1)->p.name, "renamed");

	wgsync_peer(&c->s, &rekey);                    /* a new key for id 2 */
	assert_null(fake_find(&c->f, p[1].node_key));
	assert_non_null(fake_find(&c->f, rekey.node_key));
	assert_int_equal(c->f.last_flags[0], WG_PEER_REMOVE);

	wgsync_removed(&c->s, &n3);
	assert_null(fake_find(&c->f, n3.node_key));
	assert_null(wgsync_find(&c->s, 3));
	calls = c->f.calls;
	wgsync_removed(&c->s, &n3);                    /* unknown: nothing */
	assert_int_equal(c->f.calls, calls);

	wgsync_clear(&c->s);
	assert_int_equal(c->f.n, 0);
	assert_int_equal(c->s.n, 0);
}

static void test_vpnd_wgsync_failure_resync(void **state)
{
	struct ctx *c = *state;
	struct nm_peer p[2] = { mkpeer(1, 0xa1, "198.51.100.1:41641", 1),
				mkpeer(2, 0xa2, "198.51.100.2:41641", 1) };
	struct nm_peer n3 = mkpeer(3, 0xa3, "198.51.100.3:41641", 1);

	mkmap(&c->m, p, 2);
	c->f.fail_next = -EIO;
	wgsync_full(&c->s, &c->m);
	assert_true(c->s.dirty);
	assert_int_equal(c->s.errors, 1);
	assert_int_equal(c->s.n, 0);                   /* the mirror says what runs: nothing */

	wgsync_resync(&c->s, &c->m);
	assert_false(c->s.dirty);
	runs(&c->f, &c->m);
	assert_int_equal(c->s.n, 2);

	c->f.fail_next = -ENOBUFS;
	wgsync_peer(&c->s, &n3);
	assert_true(c->s.dirty);
	assert_null(wgsync_find(&c->s, 3));
	assert_int_equal(c->s.errors, 2);
}

static void test_vpnd_wgsync_set_endpoint(void **state)
{
	struct ctx *c = *state;
	struct nm_peer p[2] = { mkpeer(1, 0xa1, "198.51.100.1:41641", 1),
				mkpeer(2, 0xa2, "198.51.100.2:41641", 1) };
	struct addr_port path;
	unsigned reconf, calls;
	char text[ADDR_TEXT_LEN];

	mkmap(&c->m, p, 2);
	wgsync_full(&c->s, &c->m);
	reconf = fake_find(&c->f, p[0].node_key)->sets_of_aips;
	assert_int_equal(addr_parse("[2001:db8::77]:5555", 19, 0, &path), 0);

	assert_int_equal(wgsync_set_endpoint(&c->s, 1, &path), 0);
	assert_int_equal(c->f.last_entries, 1);
	assert_int_equal(c->f.last_flags[0], WG_PEER_HAS_ENDPOINT);
	endpoint_is(fake_find(&c->f, p[0].node_key), "[2001:db8::77]:5555");
	assert_int_equal(fake_find(&c->f, p[0].node_key)->sets_of_aips, reconf);
	addr_format(wgsync_endpoint(wgsync_find(&c->s, 1)), text, sizeof(text));
	assert_string_equal(text, "[2001:db8::77]:5555");

	/* The same path again: nothing sent. */
	calls = c->f.calls;
	assert_int_equal(wgsync_set_endpoint(&c->s, 1, &path), 0);
	assert_int_equal(c->f.calls, calls);

	/* The netmap's endpoints change: the chosen path stays (path selection decides). */
	p[0] = mkpeer(1, 0xa1, "203.0.113.1:41641", 1);
	mkmap(&c->m, p, 2);
	wgsync_full(&c->s, &c->m);
	endpoint_is(fake_find(&c->f, p[0].node_key), "[2001:db8::77]:5555");
	wgsync_resync(&c->s, &c->m);
	endpoint_is(fake_find(&c->f, p[0].node_key), "[2001:db8::77]:5555");

	/* Back to the netmap's first endpoint. */
	assert_int_equal(wgsync_set_endpoint(&c->s, 1, NULL), 0);
	endpoint_is(fake_find(&c->f, p[0].node_key), "203.0.113.1:41641");

	/* A rekeyed peer starts without the old path. */
	assert_int_equal(wgsync_set_endpoint(&c->s, 2, &path), 0);
	p[1] = mkpeer(2, 0xb2, "198.51.100.2:41641", 1);
	wgsync_peer(&c->s, &p[1]);
	endpoint_is(fake_find(&c->f, p[1].node_key), "198.51.100.2:41641");

	assert_int_equal(wgsync_set_endpoint(&c->s, 99, &path), -ENOENT);
	c->f.fail_next = -EIO;
	assert_int_equal(wgsync_set_endpoint(&c->s, 1, &path), -EIO);
	endpoint_is(fake_find(&c->f, p[0].node_key), "203.0.113.1:41641");
}

static void test_vpnd_wgsync_detached(void **state)
{
	struct ctx *c = *state;
	struct nm_peer p[1] = { mkpeer(1, 0xa1, "198.51.100.1:41641", 1) };

	mkmap(&c->m, p, 1);
	wgsync_full(&c->s, &c->m);
	wgsync_attach(&c->s, NULL, NULL);              /* the interface went away */
	assert_int_equal(c->s.n, 0);
	wgsync_peer(&c->s, &p[0]);
	wgsync_clear(&c->s);
	assert_int_equal(c->f.calls, 1);
	assert_int_equal(wgsync_set_endpoint(&c->s, 1, NULL), -ENOENT);
}

/* Of two nodes that learn of each other together, only the one with the lower key starts
 * the handshake at once (a keepalive on a new peer does): the other's keepalive comes
 * WGSYNC_QUIET_TICKS later. Our key is 0x50..: peer 0x40.. (lower) waits, 0x60.. not. */
static void test_vpnd_wgsync_quiet_start(void **state)
{
	struct ctx *c = *state;
	struct nm_peer peers[3] = { mkpeer(1, 0x40, "192.0.2.1:41641", 1),
				    mkpeer(2, 0x60, "192.0.2.2:41641", 1),
				    mkpeer(3, 0x30, "192.0.2.3:41641", 0) };
	uint8_t self[KEY_LEN], k[KEY_LEN];
	struct nm_peer late = mkpeer(4, 0x20, "192.0.2.4:41641", 1);

	memset(self, 0x50, sizeof(self));
	wgsync_set_self(&c->s, self);
	mkmap(&c->m, peers, 3);
	wgsync_full(&c->s, &c->m);
	memset(k, 0x40, sizeof(k));
	assert_int_equal(fake_find(&c->f, k)->keepalive, 0);
	memset(k, 0x60, sizeof(k));
	assert_int_equal(fake_find(&c->f, k)->keepalive, WGSYNC_KEEPALIVE);
	memset(k, 0x30, sizeof(k));
	assert_int_equal(fake_find(&c->f, k)->keepalive, 0);   /* offline: none anyway */
	/* a delta meanwhile does not set it early */
	peers[0].n_endpoints = 0;
	assert_int_equal(addr_parse("192.0.2.11:41641", 16, 0, &peers[0].endpoints[0]), 0);
	peers[0].n_endpoints = 1;
	wgsync_peer(&c->s, &peers[0]);
	memset(k, 0x40, sizeof(k));
	assert_int_equal(fake_find(&c->f, k)->keepalive, 0);
	wgsync_tick(&c->s);
	assert_int_equal(fake_find(&c->f, k)->keepalive, 0);
	wgsync_tick(&c->s);
	assert_int_equal(fake_find(&c->f, k)->keepalive, WGSYNC_KEEPALIVE);
	assert_int_equal(c->f.last_entries, 1);   /* that peer alone */
	assert_true(c->f.last_flags[0] == WG_PEER_HAS_KEEPALIVE);
	/* a peer added by a delta waits too; offline stays without */
	wgsync_peer(&c->s, &late);
	memset(k, 0x20, sizeof(k));
	assert_int_equal(fake_find(&c->f, k)->keepalive, 0);
	for (int i = 0; i < WGSYNC_QUIET_TICKS; i++)
		wgsync_tick(&c->s);
	assert_int_equal(fake_find(&c->f, k)->keepalive, WGSYNC_KEEPALIVE);
	memset(k, 0x30, sizeof(k));
	assert_int_equal(fake_find(&c->f, k)->keepalive, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_vpnd_wgsync_full_then_same, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_wgsync_full_smallest_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_wgsync_deltas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_wgsync_failure_resync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_wgsync_set_endpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_wgsync_detached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_wgsync_quiet_start, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
