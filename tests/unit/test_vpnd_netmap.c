/* test_vpnd_netmap.c - netmap ingestion (vpnd/netmap.c): a full map then deltas, the
 * previous peers handed back on a new full for diffing, malformed lines rejected without
 * changing the map, a delta before any full refused (-EPROTO), a 10,000-peer full. The
 * line shapes are coord's (coord/netmap.c), captured from a real coord. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "meshvpn/keys.h"
#include "vpnd/netmap.h"

/* A full netmap as coord sent it (captured from GET /v1/map). */
static const char real_full[] =
	"{\"type\":\"full\",\"self\":{\"id\":2,\"name\":\"alpha\",\"fqdn\":\"alpha.meshvpn.internal\""
	",\"ips\":[\"100.64.0.1\",\"fd88:3389:80f6::6440:1\"],\"endpoints\":[],\"home_relay\":\""
	"\",\"online\":true,\"os\":\"linux\",\"tags\":[],\"last_seen\":1795571857,\"node_key\":\"oz"
	"SkuKAIuH2DgbD9jtNebjAhgyYlcN6pd4OI2KEenxI=\",\"disco_key\":\"xlxjkfiHxfZiu6HDO6s"
	"JelSlV6VNgZe3EBc75AAcAG4=\",\"state\":\"running\",\"hostname\":\"alpha\",\"key_expiry\""
	":1811123857,\"ephemeral\":false},\"relays\":[],\"dns\":{\"domain\":\"meshvpn.internal"
	"\",\"resolver\":\"100.100.100.100\"},\"domain\":\"meshvpn.internal\",\"peers\":[{\"id\":3"
	",\"name\":\"beta\",\"fqdn\":\"beta.meshvpn.internal\",\"ips\":[\"100.64.0.2\",\"fd88:3389"
	":80f6::6440:2\"],\"endpoints\":[\"198.51.100.2:41641\",\"[2001:db8::2]:41641\"],\"ho"
	"me_relay\":\"\",\"online\":false,\"os\":\"linux\",\"tags\":[],\"last_seen\":1795571857,\"n"
	"ode_key\":\"g8RUi6TzdUE6a03iD7DLoGzib8Fc53YzQ75H3lKtinc=\",\"disco_key\":\"o6OAMzE"
	"KZUZcIedcS3i2yX73IhJkKO/nU0xDA9nZBAo=\"}]}";

static void key_b64(uint8_t seed, uint32_t n, char out[KEY_B64_LEN])
{
	uint8_t k[KEY_LEN];

	for (unsigned i = 0; i < KEY_LEN; i++)
		k[i] = (uint8_t)(seed + i);
	memcpy(k, &n, sizeof(n));
	key_to_base64(k, out);
}

/* One peer entry as coord writes it. */
static int peer_json(char *out, size_t size, int64_t id, const char *name, uint8_t seed,
		     const char *endpoint)
{
	char nk[KEY_B64_LEN], dk[KEY_B64_LEN];

	key_b64(seed, (uint32_t)id, nk);
	key_b64((uint8_t)(seed + 100), (uint32_t)id, dk);
	return snprintf(out, size,
		"{\"id\":%lld,\"name\":\"%s\",\"fqdn\":\"%s.ts.test\",\"ips\":[\"100.64.%d.%d\","
		"\"fd7a:115c:a1e0::6440:%x\"],\"endpoints\":[%s%s%s],\"home_relay\":\"\","
		"\"online\":true,\"os\":\"linux\",\"tags\":[],\"last_seen\":1700000000,"
		"\"node_key\":\"%s\",\"disco_key\":\"%s\"}",
		(long long)id, name, name, (int)(id >> 8) & 0xff, (int)id & 0xff, (unsigned)id,
		endpoint ? "\"" : "", endpoint ? endpoint : "", endpoint ? "\"" : "", nk, dk);
}

static char *full_json(int n_peers, const char *state)
{
	size_t cap = 1024 + (size_t)n_peers * 512, len;
	char *buf = malloc(cap);

	assert_non_null(buf);
	len = (size_t)snprintf(buf, cap,
		"{\"type\":\"full\",\"self\":{\"id\":1,\"name\":\"me\",\"fqdn\":\"me.ts.test\","
		"\"ips\":[\"100.64.0.1\",\"fd7a:115c:a1e0::6440:1\"],\"endpoints\":[],\"home_relay\":\"\","
		"\"online\":true,\"os\":\"linux\",\"tags\":[],\"last_seen\":0,"
		"\"node_key\":\"s64MP7OtcMQ8iuj9xAnCyuFUw7d5JJ+hVDvojnAHpW8=\","
		"\"disco_key\":\"zpNKyCQLVpxuGBBHwuUiws495yBpjfhotQT/sIqaISk=\",\"state\":\"%s\","
		"\"hostname\":\"me\",\"key_expiry\":0,\"ephemeral\":false},\"relays\":[{\"id\":1,"
		"\"name\":\"fra\",\"url\":\"https://relay.test:443\",\"pin\":\"\"}],"
		"\"dns\":{\"domain\":\"ts.test\",\"resolver\":\"100.100.100.100\"},"
		"\"domain\":\"ts.test\",\"peers\":[", state);
	for (int i = 0; i < n_peers; i++) {
		char name[32], ep[32];

		snprintf(name, sizeof(name), "n%d", i + 2);
		snprintf(ep, sizeof(ep), "192.0.2.%d:41641", (i % 250) + 1);
		if (i)
			buf[len++] = ',';
		len += (size_t)peer_json(buf + len, cap - len, i + 2, name, 7, ep);
		assert_true(len < cap);
	}
	len += (size_t)snprintf(buf + len, cap - len, "]}");
	return buf;
}

static int apply(struct netmap *m, const char *line, struct nm_change *c)
{
	return netmap_apply_line(m, line, strlen(line), c);
}

static void apply_ok(struct netmap *m, const char *line, enum nm_change_kind kind)
{
	struct nm_change c;
	int rc = apply(m, line, &c);

	if (rc)
		fail_msg("rc %d for %.120s", rc, line);
	assert_int_equal(c.kind, kind);
	nm_change_clear(&c);
}

/* The whole visible state, for "nothing changed" checks. */
struct snap {
	int have_full;
	struct nm_self self;
	struct nm_peer *peers;
	size_t n;
	struct nm_relay relays[NM_MAX_RELAYS];
	int n_relays;
	char domain[64];
};

static void snap_take(const struct netmap *m, struct snap *s)
{
	s->have_full = m->have_full;
	s->self = m->self;
	s->n = m->n_peers;
	s->peers = malloc((m->n_peers ? m->n_peers : 1) * sizeof(*m->peers));
	assert_non_null(s->peers);
	if (m->n_peers)
		memcpy(s->peers, m->peers, m->n_peers * sizeof(*m->peers));
	memcpy(s->relays, m->relays, sizeof(s->relays));
	s->n_relays = m->n_relays;
	memcpy(s->domain, m->domain, sizeof(s->domain));
}

static void snap_same(const struct netmap *m, const struct snap *s, const char *line)
{
	if (m->have_full != s->have_full || m->n_peers != s->n ||
	    memcmp(&m->self, &s->self, sizeof(s->self)) ||
	    (s->n && memcmp(m->peers, s->peers, s->n * sizeof(*s->peers))) ||
	    m->n_relays != s->n_relays || memcmp(m->relays, s->relays, sizeof(s->relays)) ||
	    memcmp(m->domain, s->domain, sizeof(s->domain)))
		fail_msg("the map changed after: %.160s", line);
}

/* An endpoint as coord's text, for comparing. */
static const char *ep_text(const struct addr_port *a)
{
	static char text[ADDR_TEXT_LEN];

	if (addr_format(a, text, sizeof(text)))
		return "(none)";
	return text;
}

static void test_vpnd_netmap_real_coord_full(void **state)
{
	struct netmap m;
	struct nm_change c;
	const struct nm_peer *p;
	char a[INET6_ADDRSTRLEN];

	(void)state;
	netmap_init(&m);
	assert_int_equal(apply(&m, real_full, &c), 0);
	assert_int_equal(c.kind, NM_FULL);
	assert_int_equal(c.n_old, 0);
	nm_change_clear(&c);
	assert_true(m.have_full);
	assert_string_equal(m.self.name, "alpha");
	assert_int_equal(m.self.state, NODE_STATUS_RUNNING);
	assert_string_equal(m.self.fqdn, "alpha.meshvpn.internal");
	assert_int_equal(m.self.key_expiry, 1811123857);
	inet_ntop(AF_INET, &m.self.ip4, a, sizeof(a));
	assert_string_equal(a, "100.64.0.1");
	assert_string_equal(m.domain, "meshvpn.internal");
	assert_int_equal(m.n_peers, 1);
	p = netmap_find_id(&m, 3);
	assert_non_null(p);
	assert_string_equal(p->name, "beta");
	assert_int_equal(p->n_endpoints, 2);
	assert_string_equal(ep_text(&p->endpoints[0]), "198.51.100.2:41641");
	assert_string_equal(ep_text(&p->endpoints[1]), "[2001:db8::2]:41641");
	assert_false(p->online);
	assert_int_equal(p->last_seen, 1795571857);
	inet_ntop(AF_INET6, &p->ip6, a, sizeof(a));
	assert_string_equal(a, "fd88:3389:80f6::6440:2");
	assert_ptr_equal(netmap_find_key(&m, p->node_key), p);
	assert_null(netmap_find_id(&m, 2));   /* self is not a peer */
	netmap_free(&m);
}

static void test_vpnd_netmap_full_then_deltas(void **state)
{
	struct netmap m;
	struct nm_change c;
	char line[2048], peer[1024];
	const struct nm_peer *p;
	char *full = full_json(3, "running");
	uint8_t key5[KEY_LEN];

	(void)state;
	netmap_init(&m);
	apply_ok(&m, full, NM_FULL);
	free(full);
	assert_int_equal(m.n_peers, 3);
	assert_int_equal(m.n_relays, 1);
	assert_string_equal(m.relays[0].name, "fra");

	/* peer_added, kept sorted by id */
	peer_json(peer, sizeof(peer), 5, "five", 7, NULL);
	snprintf(line, sizeof(line), "{\"type\":\"peer_added\",\"peer\":%s}", peer);
	assert_int_equal(apply(&m, line, &c), 0);
	assert_int_equal(c.kind, NM_PEER_ADDED);
	assert_string_equal(c.peer->name, "five");
	assert_int_equal(c.peer->n_endpoints, 0);
	memcpy(key5, c.peer->node_key, KEY_LEN);
	nm_change_clear(&c);
	assert_int_equal(m.n_peers, 4);
	for (size_t i = 1; i < m.n_peers; i++)
		assert_true(m.peers[i - 1].id < m.peers[i].id);

	/* endpoints for it */
	apply_ok(&m, "{\"type\":\"endpoints\",\"id\":5,\"endpoints\":[\"198.51.100.5:41641\"],"
		 "\"home_relay\":\"fra\"}", NM_PEER_CHANGED);
	p = netmap_find_id(&m, 5);
	assert_int_equal(p->n_endpoints, 1);
	assert_string_equal(ep_text(&p->endpoints[0]), "198.51.100.5:41641");
	assert_string_equal(p->home_relay, "fra");

	/* online */
	apply_ok(&m, "{\"type\":\"online\",\"id\":5,\"online\":false,\"last_seen\":1700000123}",
		 NM_PEER_CHANGED);
	p = netmap_find_id(&m, 5);
	assert_false(p->online);
	assert_int_equal(p->last_seen, 1700000123);

	/* peer_changed (a rename): same key, so WireGuard-equal to before */
	{
		struct nm_peer before = *netmap_find_id(&m, 5);

		peer_json(peer, sizeof(peer), 5, "cinq", 7, "198.51.100.5:41641");
		snprintf(line, sizeof(line), "{\"type\":\"peer_changed\",\"peer\":%s}", peer);
		assert_int_equal(apply(&m, line, &c), 0);
		assert_int_equal(c.kind, NM_PEER_CHANGED);
		assert_string_equal(c.peer->name, "cinq");
		assert_memory_equal(c.peer->node_key, key5, KEY_LEN);
		/* the keepalive follows online: equal only while that is the same too */
		before.online = c.peer->online;
		assert_true(nm_peer_wg_equal(&before, c.peer));
		before.online = !c.peer->online;
		assert_false(nm_peer_wg_equal(&before, c.peer));
		nm_change_clear(&c);
	}

	/* relays */
	apply_ok(&m, "{\"type\":\"relays\",\"relays\":[{\"id\":1,\"name\":\"fra\",\"url\":\"https://r1\","
		 "\"pin\":\"\"},{\"id\":2,\"name\":\"nyc\",\"url\":\"https://r2\",\"pin\":\"\"}]}",
		 NM_RELAYS);
	assert_int_equal(m.n_relays, 2);
	assert_string_equal(m.relays[1].url, "https://r2");
	assert_string_equal(m.relays[1].stun, "");   /* absent: a coord from before STUN */
	apply_ok(&m, "{\"type\":\"relays\",\"relays\":[{\"id\":1,\"name\":\"fra\",\"url\":\"https://r1\","
		 "\"pin\":\"\",\"stun\":\"r1:3478\"},{\"id\":2,\"name\":\"nyc\",\"url\":"
		 "\"https://[2001:db8::2]\",\"pin\":\"\",\"stun\":\"[2001:db8::2]:3479\"}]}", NM_RELAYS);
	assert_int_equal(m.n_relays, 2);
	assert_string_equal(m.relays[0].stun, "r1:3478");
	assert_string_equal(m.relays[1].stun, "[2001:db8::2]:3479");
	{
		/* The longest "stun" coord sends fits; one more byte is a malformed line. */
		char host[COORD_STUN_TEXT_MAX], big[COORD_STUN_TEXT_MAX + 200];
		struct nm_relay before;

		memset(host, 'h', COORD_STUN_TEXT_MAX - 9);
		host[COORD_STUN_TEXT_MAX - 9] = 0;   /* with ":65535" and brackets: the limit - 1 */
		snprintf(big, sizeof(big), "{\"type\":\"relays\",\"relays\":[{\"name\":\"fra\","
			 "\"url\":\"https://r1\",\"stun\":\"[%s]:65535\"}]}", host);
		apply_ok(&m, big, NM_RELAYS);
		assert_int_equal(strlen(m.relays[0].stun), COORD_STUN_TEXT_MAX - 1);
		before = m.relays[0];
		snprintf(big, sizeof(big), "{\"type\":\"relays\",\"relays\":[{\"name\":\"fra\","
			 "\"url\":\"https://r1\",\"stun\":\"[%sh]:65535\"}]}", host);
		assert_int_equal(apply(&m, big, &c), -EINVAL);
		assert_int_equal(m.n_relays, 1);
		assert_memory_equal(&m.relays[0], &before, sizeof(before));
	}

	/* keepalive */
	apply_ok(&m, "{\"type\":\"keepalive\"}", NM_KEEPALIVE);

	/* peer_removed: the change holds the peer as it was */
	assert_int_equal(apply(&m, "{\"type\":\"peer_removed\",\"id\":5,\"node_key\":\"x\"}", &c), 0);
	assert_int_equal(c.kind, NM_PEER_REMOVED);
	assert_string_equal(c.removed.name, "cinq");
	assert_memory_equal(c.removed.node_key, key5, KEY_LEN);
	nm_change_clear(&c);
	assert_null(netmap_find_id(&m, 5));
	assert_int_equal(m.n_peers, 3);

	/* ...twice, or of a peer never seen: nothing to undo */
	apply_ok(&m, "{\"type\":\"peer_removed\",\"id\":5}", NM_NONE);
	apply_ok(&m, "{\"type\":\"endpoints\",\"id\":99,\"endpoints\":[]}", NM_NONE);
	apply_ok(&m, "{\"type\":\"online\",\"id\":99,\"online\":true}", NM_NONE);
	/* a newer coord's message type */
	apply_ok(&m, "{\"type\":\"dns_blocklist\",\"version\":3}", NM_NONE);
	assert_int_equal(m.n_peers, 3);

	/* gone */
	assert_int_equal(apply(&m, "{\"type\":\"gone\",\"reason\":\"deleted\"}", &c), 0);
	assert_int_equal(c.kind, NM_GONE);
	assert_string_equal(c.reason, "deleted");
	nm_change_clear(&c);
	netmap_free(&m);
}

static void test_vpnd_netmap_diff_on_full(void **state)
{
	struct netmap m;
	struct nm_change c;
	char *full = full_json(4, "running"), *again;
	const struct nm_peer *p;
	size_t unchanged = 0;

	(void)state;
	netmap_init(&m);
	apply_ok(&m, full, NM_FULL);
	/* After a reconnect: peer 3 moved, peer 5 left, peer 9 is new, 2 and 4 as before. */
	again = full_json(3, "running");
	{
		char *at = strstr(again, "\"peers\":[") + 9, peer9[1024], *tmp;
		size_t head = (size_t)(at - again);
		const char *p3 = "\"endpoints\":[\"192.0.2.2:41641\"]";
		char *e;

		peer_json(peer9, sizeof(peer9), 9, "nine", 7, "203.0.113.9:41641");
		tmp = malloc(strlen(again) + strlen(peer9) + 4);
		assert_non_null(tmp);
		memcpy(tmp, again, head);
		strcpy(tmp + head, peer9);
		strcat(tmp, ",");
		strcat(tmp, at);
		free(again);
		again = tmp;
		e = strstr(again, p3);
		assert_non_null(e);
		memcpy(e, "\"endpoints\":[\"192.0.2.7:41641\"]", strlen(p3));
	}
	assert_int_equal(apply(&m, again, &c), 0);
	assert_int_equal(c.kind, NM_FULL);
	assert_int_equal(c.n_old, 4);
	assert_non_null(c.old_peers);
	for (size_t i = 0; i < c.n_old; i++) {
		p = netmap_find_id(&m, c.old_peers[i].id);
		if (c.old_peers[i].id == 5) {
			assert_null(p);
			continue;
		}
		assert_non_null(p);
		if (c.old_peers[i].id == 3) {
			assert_false(nm_peer_wg_equal(&c.old_peers[i], p));
			assert_string_equal(ep_text(&p->endpoints[0]), "192.0.2.7:41641");
		} else {
			assert_true(nm_peer_wg_equal(&c.old_peers[i], p));
			unchanged++;
		}
	}
	assert_int_equal(unchanged, 2);
	assert_non_null(netmap_find_id(&m, 9));
	assert_int_equal(m.n_peers, 4);
	for (size_t i = 1; i < m.n_peers; i++)
		assert_true(m.peers[i - 1].id < m.peers[i].id);
	nm_change_clear(&c);
	assert_null(c.old_peers);

	/* An expired node's full: self says so, no peers. */
	free(full);
	full = full_json(0, "expired");
	assert_int_equal(apply(&m, full, &c), 0);
	assert_int_equal(c.n_old, 4);
	assert_int_equal(m.self.state, NODE_STATUS_EXPIRED);
	assert_int_equal(m.n_peers, 0);
	nm_change_clear(&c);
	free(full);
	free(again);
	netmap_free(&m);
}

/* peer entry for id with the node key of peer key_id (seed 7, as full_json makes them) */
static void peer_with_key_of(char *out, size_t size, int64_t id, int64_t key_id)
{
	char k[KEY_B64_LEN], name[16], *at;

	snprintf(name, sizeof(name), "n%lld", (long long)id);
	peer_json(out, size, id, name, 7, "192.0.2.9:41641");
	key_b64(7, (uint32_t)key_id, k);
	at = strstr(out, "\"node_key\":\"");
	assert_non_null(at);
	memcpy(at + 12, k, strlen(k));
}

/* WireGuard knows peers by key: a second peer with a key already in use is refused. */
static void test_vpnd_netmap_duplicate_keys(void **state)
{
	char peer[1024], peer2[1024], line[4096];
	char *full = full_json(3, "running"), *empty = full_json(0, "running");
	struct netmap m;
	struct nm_change c;
	struct snap s;
	const char *types[] = { "peer_added", "peer_changed" };

	(void)state;
	netmap_init(&m);
	apply_ok(&m, full, NM_FULL);
	snap_take(&m, &s);
	for (size_t i = 0; i < 2; i++) {
		/* a new id (9) or another existing one (3) with peer 2's key */
		peer_with_key_of(peer, sizeof(peer), i ? 3 : 9, 2);
		snprintf(line, sizeof(line), "{\"type\":\"%s\",\"peer\":%s}", types[i], peer);
		assert_int_equal(apply(&m, line, &c), -EINVAL);
		snap_same(&m, &s, line);
	}
	/* the same inside a full: two ids, one key */
	peer_with_key_of(peer, sizeof(peer), 2, 2);
	peer_with_key_of(peer2, sizeof(peer2), 9, 2);
	snprintf(line, sizeof(line), "%.*s%s,%s]}", (int)(strstr(empty, "\"peers\":[") + 9 - empty),
		 empty, peer, peer2);
	assert_int_equal(apply(&m, line, &c), -EINVAL);
	snap_same(&m, &s, line);
	/* a peer keeping its own key is no clash */
	peer_with_key_of(peer, sizeof(peer), 3, 3);
	snprintf(line, sizeof(line), "{\"type\":\"peer_changed\",\"peer\":%s}", peer);
	apply_ok(&m, line, NM_PEER_CHANGED);
	free(s.peers);
	free(full);
	free(empty);
	netmap_free(&m);
}

static void test_vpnd_netmap_malformed_lines(void **state)
{
	char peer[1024], line[4096];
	char *full = full_json(3, "running");
	struct netmap m;
	struct nm_change c;
	struct snap s;
	/* Each is refused and leaves the map as it was. */
	static const char *const bad[] = {
		"", "{", "not json", "[]", "null", "\"full\"", "{}", "{\"type\":7}",
		"{\"type\":\"full\"}",
		"{\"type\":\"full\",\"self\":{},\"peers\":[]}",
		"{\"type\":\"full\",\"self\":{\"id\":1,\"name\":\"x\",\"state\":\"running\","
		"\"ips\":[\"100.64.0.1\"]},\"peers\":[]}",
		"{\"type\":\"full\",\"self\":{\"id\":1,\"name\":\"x\",\"state\":\"running\","
		"\"ips\":[\"100.64.0.1\",\"fd00::1\"]},\"peers\":{}}",
		"{\"type\":\"full\",\"self\":{\"id\":1,\"name\":\"x\",\"state\":\"running\","
		"\"ips\":[\"100.64.0.1\",\"not-v6\"]},\"peers\":[]}",
		"{\"type\":\"full\",\"self\":{\"id\":1,\"name\":\"x\",\"state\":\"running\","
		"\"ips\":[\"100.64.0.1\",\"fd00::1\"]},\"peers\":[{\"id\":2}]}",
		"{\"type\":\"full\",\"self\":{\"id\":1,\"name\":\"x\",\"state\":\"running\","
		"\"ips\":[\"100.64.0.1\",\"fd00::1\"]},\"peers\":[],\"relays\":7}",
		"{\"type\":\"full\",\"self\":{\"id\":1,\"name\":\"x\",\"state\":\"running\","
		"\"ips\":[\"100.64.0.1\",\"fd00::1\"],\"key_expiry\":\"soon\"},\"peers\":[]}",
		"{\"type\":\"peer_added\"}",
		"{\"type\":\"peer_added\",\"peer\":[]}",
		"{\"type\":\"peer_added\",\"peer\":{\"id\":7,\"name\":\"x\"}}",
		"{\"type\":\"peer_removed\"}",
		"{\"type\":\"peer_removed\",\"id\":\"2\"}",
		"{\"type\":\"endpoints\",\"id\":2,\"endpoints\":\"192.0.2.1:1\"}",
		"{\"type\":\"endpoints\",\"id\":2,\"endpoints\":[1]}",
		"{\"type\":\"endpoints\",\"id\":2,\"endpoints\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
		"\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}",
		"{\"type\":\"endpoints\",\"id\":2,\"endpoints\":[\"0123456789012345678901234567890123"
		"45678901234567890123456789\"]}",
		"{\"type\":\"endpoints\",\"id\":2,\"endpoints\":[],\"home_relay\":5}",
		"{\"type\":\"online\",\"id\":2}",
		"{\"type\":\"online\",\"id\":2,\"online\":\"yes\"}",
		"{\"type\":\"online\",\"id\":2,\"online\":true,\"last_seen\":\"x\"}",
		"{\"type\":\"relays\"}",
		"{\"type\":\"relays\",\"relays\":[{\"name\":\"x\"}]}",
		"{\"type\":\"relays\",\"relays\":[{\"name\":\"x\",\"url\":\"https://x\",\"stun\":3478}]}",
		"{\"type\":\"relays\",\"relays\":[{\"name\":\"x\",\"url\":\"https://x\",\"stun\":[\"x:1\"]}]}",
		"{\"type\":\"gone\",\"reason\":5}",
		"{\"type\":\"keepalive\",\"type\":\"full\"}",
		"{\"type\":\"keep\\u0000alive\"}",
	};
	/* Peer entries that must not get in, by way of a full or a delta. */
	static const char *const bad_peer_edits[][2] = {
		{ "\"id\":2,", "\"id\":0," },
		{ "\"id\":2,", "\"id\":-2," },
		{ "\"id\":2,", "\"id\":2.5," },
		{ "\"name\":\"n2\"", "\"name\":null" },
		{ "\"name\":\"n2\"", "\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"" },
		{ "\"online\":true", "\"online\":1" },
		{ "\"ips\":[\"100.64.0.2\"", "\"ips\":[\"100.64.0.256\"" },
		{ "\"node_key\":\"", "\"node_key\":\"AAAA" },
		{ "\"disco_key\":\"", "\"disco_key\":\"!" },
		{ "\"last_seen\":1700000000", "\"last_seen\":true" },
	};

	(void)state;
	netmap_init(&m);
	apply_ok(&m, full, NM_FULL);
	free(full);
	snap_take(&m, &s);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0x33, sizeof(c));
		if (apply(&m, bad[i], &c) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_null(c.old_peers);
		snap_same(&m, &s, bad[i]);
	}
	for (size_t i = 0; i < sizeof(bad_peer_edits) / sizeof(bad_peer_edits[0]); i++) {
		char *at;
		size_t off;

		peer_json(peer, sizeof(peer), 2, "n2", 7, "192.0.2.1:41641");
		at = strstr(peer, bad_peer_edits[i][0]);
		assert_non_null(at);
		off = (size_t)(at - peer);
		snprintf(line, sizeof(line), "{\"type\":\"peer_changed\",\"peer\":%.*s%s%s}", (int)off,
			 peer, bad_peer_edits[i][1], at + strlen(bad_peer_edits[i][0]));
		if (apply(&m, line, &c) != -EINVAL)
			fail_msg("accepted: %s", line);
		snap_same(&m, &s, line);
		/* the same peer inside a full */
		full = full_json(0, "running");
		at = strstr(full, "\"peers\":[") + 9;
		snprintf(line, sizeof(line), "%.*s%.*s%s%s]}", (int)(at - full), full, (int)off, peer,
			 bad_peer_edits[i][1], strstr(peer, bad_peer_edits[i][0]) +
			 strlen(bad_peer_edits[i][0]));
		free(full);
		if (apply(&m, line, &c) != -EINVAL)
			fail_msg("accepted in a full: %s", line);
		snap_same(&m, &s, line);
	}
	/* Two peers with one id in a full. */
	full = full_json(1, "running");
	{
		char *at = strstr(full, "\"peers\":[") + 9;
		peer_json(peer, sizeof(peer), 2, "again", 9, NULL);
		snprintf(line, sizeof(line), "%.*s%s,%s", (int)(at - full), full, peer, at);
	}
	free(full);
	assert_int_equal(apply(&m, line, &c), -EINVAL);
	snap_same(&m, &s, line);
	/* Embedded NUL and a cut-short line. */
	assert_int_equal(netmap_apply_line(&m, "{\"type\":\"keepalive\"}\0x", 23, &c), -EINVAL);
	snap_same(&m, &s, "NUL");
	assert_int_equal(netmap_apply_line(&m, "{\"type\":\"keepalive\"}", 10, &c), -EINVAL);
	snap_same(&m, &s, "cut");
	free(s.peers);
	netmap_free(&m);
}

static void test_vpnd_netmap_delta_before_full(void **state)
{
	struct netmap m;
	struct nm_change c;
	char peer[1024], line[2048];

	(void)state;
	netmap_init(&m);
	peer_json(peer, sizeof(peer), 2, "n2", 7, NULL);
	snprintf(line, sizeof(line), "{\"type\":\"peer_added\",\"peer\":%s}", peer);
	assert_int_equal(apply(&m, line, &c), -EPROTO);
	assert_int_equal(apply(&m, "{\"type\":\"peer_removed\",\"id\":2}", &c), -EPROTO);
	assert_int_equal(apply(&m, "{\"type\":\"endpoints\",\"id\":2,\"endpoints\":[]}", &c), -EPROTO);
	assert_int_equal(apply(&m, "{\"type\":\"online\",\"id\":2,\"online\":true}", &c), -EPROTO);
	assert_int_equal(apply(&m, "{\"type\":\"relays\",\"relays\":[]}", &c), -EPROTO);
	assert_false(m.have_full);
	assert_int_equal(m.n_peers, 0);
	/* Keepalives and gone need no map. */
	apply_ok(&m, "{\"type\":\"keepalive\"}", NM_KEEPALIVE);
	apply_ok(&m, "{\"type\":\"gone\",\"reason\":\"rejected\"}", NM_GONE);
	/* A bad line is still -EINVAL, not -EPROTO. */
	assert_int_equal(apply(&m, "{\"type\":", &c), -EINVAL);
	netmap_free(&m);
}

static void test_vpnd_netmap_10k_peers(void **state)
{
	struct netmap m;
	struct nm_change c;
	char *full = full_json(10000, "running");
	struct timespec t0, t1;
	double ms;

	(void)state;
	netmap_init(&m);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(apply(&m, full, &c), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	nm_change_clear(&c);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	print_message("10,000-peer full (%zu bytes) parsed in %.1f ms\n", strlen(full), ms);
	assert_int_equal(m.n_peers, 10000);
	for (size_t i = 1; i < m.n_peers; i++)
		assert_true(m.peers[i - 1].id < m.peers[i].id);
	assert_string_equal(netmap_find_id(&m, 5000)->name, "n5000");
	assert_ptr_equal(netmap_find_key(&m, m.peers[9999].node_key), &m.peers[9999]);
	/* Again (a reconnect): all 10,000 are handed back, all WireGuard-equal. */
	assert_int_equal(apply(&m, full, &c), 0);
	assert_int_equal(c.n_old, 10000);
	for (size_t i = 0; i < c.n_old; i++)
		assert_true(nm_peer_wg_equal(&c.old_peers[i], &m.peers[i]));
	nm_change_clear(&c);
	free(full);
	netmap_free(&m);
}

#define DNS_POLICY "{\"domain\":\"corp.example\",\"resolver\":\"100.100.100.100\"," \
	"\"upstreams\":[\"192.0.2.1:53\",\"tls://[2001:db8::2]:853#dns.example\"]," \
	"\"routes\":[{\"domain\":\"service.consul\",\"servers\":[\"127.0.0.1:8600\",\"127.0.0.2:8600\"]}]," \
	"\"records\":[{\"name\":\"nas.home\",\"type\":\"A\",\"value\":\"192.0.2.9\"}," \
	"{\"name\":\"t.home\",\"type\":\"TXT\",\"value\":\"v=1 x\"}]," \
	"\"blocking_mode\":\"nxdomain\",\"allow\":[\"ok.example\"],\"block\":[\"ads.example\",\"games.example\"]," \
	"\"blocklist\":{\"version\":0,\"url\":\"/v1/dns/blocklist\"},\"future\":{\"x\":1}}"

/* The dns object of a full map and the dns delta: parsed whole, the domain renames every
 * fqdn, a malformed one changes nothing, an older coord's {domain, resolver} is a policy
 * with nothing in it. */
static void test_vpnd_netmap_dns(void **state)
{
	struct netmap m;
	struct nm_change c;
	struct nm_dns *before;
	static const char *bad[] = {
		"{\"type\":\"dns\"}",
		"{\"type\":\"dns\",\"dns\":[]}",
		"{\"type\":\"dns\",\"dns\":{\"upstreams\":[\"2001:db8::1\"]}}",
		"{\"type\":\"dns\",\"dns\":{\"upstreams\":[\"tls://192.0.2.1\"]}}",
		"{\"type\":\"dns\",\"dns\":{\"routes\":[{\"domain\":\"x\",\"servers\":[]}]}}",
		"{\"type\":\"dns\",\"dns\":{\"routes\":[{\"domain\":\"x\",\"servers\":[\"tls://192.0.2.1#a\"]}]}}",
		"{\"type\":\"dns\",\"dns\":{\"records\":[{\"name\":\"a\",\"type\":\"A\",\"value\":\"::1\"}]}}",
		"{\"type\":\"dns\",\"dns\":{\"records\":[{\"name\":\"a\",\"type\":\"MX\",\"value\":\"b\"}]}}",
		"{\"type\":\"dns\",\"dns\":{\"block\":[\"bad name\"]}}",
		"{\"type\":\"dns\",\"dns\":{\"blocking_mode\":\"refused\"}}",
		"{\"type\":\"dns\",\"dns\":{\"resolver\":\"nope\"}}",
		"{\"type\":\"dns\",\"dns\":{\"domain\":\"Bad..Domain\"}}",
		"{\"type\":\"dns\",\"dns\":{\"blocklist\":{\"version\":-1}}}",
	};

	(void)state;
	netmap_init(&m);
	apply_ok(&m, real_full, NM_FULL);
	assert_non_null(m.dns);   /* {domain, resolver} from an older coord */
	assert_int_equal(m.dns->n_upstreams, 0);
	assert_string_equal(m.dns->domain, "meshvpn.internal");
	apply_ok(&m, "{\"type\":\"dns\",\"dns\":" DNS_POLICY "}", NM_DNS);
	assert_int_equal(m.dns->n_upstreams, 2);
	assert_true(m.dns->upstreams[1].tls);
	assert_int_equal(m.dns->upstreams[1].addr.port, 853);
	assert_string_equal(m.dns->upstreams[1].tls_name, "dns.example");
	assert_int_equal(m.dns->n_routes, 1);
	assert_int_equal(m.dns->routes[0].n_servers, 2);
	assert_int_equal(m.dns->routes[0].servers[1].addr.port, 8600);
	assert_int_equal(m.dns->n_records, 2);
	assert_int_equal(m.dns->records[1].type, DNSPOL_RR_TXT);
	assert_string_equal(m.dns->records[1].value, "v=1 x");
	assert_true(m.dns->nxdomain);
	assert_int_equal(m.dns->n_rules, 3);
	assert_true(m.dns->rules[0].allow);
	assert_false(m.dns->rules[2].allow);
	assert_string_equal(m.dns->blocklist_url, "/v1/dns/blocklist");
	/* the new domain renames self and peers */
	assert_string_equal(m.domain, "corp.example");
	assert_string_equal(m.self.fqdn, "alpha.corp.example");
	for (size_t i = 0; i < m.n_peers; i++)
		assert_non_null(strstr(m.peers[i].fqdn, ".corp.example"));
	before = m.dns;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(apply(&m, bad[i], &c), -EINVAL);
		nm_change_clear(&c);
		assert_ptr_equal(m.dns, before);
	}
	/* a full without dns (the node is pending again) has none */
	apply_ok(&m, "{\"type\":\"full\",\"self\":{\"id\":2,\"name\":\"alpha\",\"state\":\"needs-approval\","
		 "\"ips\":[\"0.0.0.0\",\"::\"]},\"peers\":[]}", NM_FULL);
	assert_null(m.dns);
	netmap_free(&m);
}

/* A map's head line (full or resume) with these peers (ids), in epoch E, at version v. */
static char *map_line(const char *type, int64_t v, const char *epoch, const char *domain,
		      const int64_t *ids, const char *const *names, int n, const char *extra)
{
	size_t cap = 4096 + (size_t)n * 512, len;
	char *buf = malloc(cap);

	assert_non_null(buf);
	len = (size_t)snprintf(buf, cap,
		"{\"type\":\"%s\",\"v\":%lld,\"epoch\":\"%s\",\"self\":{\"id\":1,\"name\":\"me\","
		"\"fqdn\":\"me.%s\",\"ips\":[\"100.64.0.1\",\"fd7a:115c:a1e0::6440:1\"],"
		"\"state\":\"running\",\"key_expiry\":0},\"domain\":\"%s\"%s,\"peers\":[",
		type, (long long)v, epoch, domain, domain, extra);
	for (int i = 0; i < n; i++) {
		char nm[96];

		snprintf(nm, sizeof(nm), "%s", names[i]);
		if (i)
			buf[len++] = ',';
		len += (size_t)peer_json(buf + len, cap - len, ids[i], nm, 7, "192.0.2.1:41641");
	}
	len += (size_t)snprintf(buf + len, cap - len, "]");
	return buf;
}

static void close_line(char *buf, const char *tail)
{
	strcat(buf, tail);
	strcat(buf, "}");
}

/* Everything of the map that a node acts on, compared field by field. */
static void assert_maps_equal(const struct netmap *a, const struct netmap *b)
{
	assert_int_equal(a->n_peers, b->n_peers);
	for (size_t i = 0; i < a->n_peers; i++) {
		const struct nm_peer *x = &a->peers[i], *y = &b->peers[i];

		assert_int_equal(x->id, y->id);
		assert_string_equal(x->name, y->name);
		assert_string_equal(x->fqdn, y->fqdn);
		assert_memory_equal(x->node_key, y->node_key, KEY_LEN);
		assert_memory_equal(x->disco_key, y->disco_key, KEY_LEN);
		assert_int_equal(x->ip4.s_addr, y->ip4.s_addr);
		assert_int_equal(x->n_endpoints, y->n_endpoints);
		assert_int_equal(x->online, y->online);
		assert_int_equal(x->last_seen, y->last_seen);
		assert_string_equal(x->home_relay, y->home_relay);
	}
	assert_int_equal(a->n_relays, b->n_relays);
	for (int i = 0; i < a->n_relays; i++)
		assert_string_equal(a->relays[i].name, b->relays[i].name);
	assert_string_equal(a->domain, b->domain);
	assert_string_equal(a->self.fqdn, b->self.fqdn);
	assert_int_equal(a->version, b->version);
	assert_string_equal(a->epoch, b->epoch);
}

/* A resume (changed and new peers, removed ids, a new relay map) leaves the map as the
 * full of the same state would; only with the epoch of its full; the version follows
 * every line, keepalives too, and is what a reconnect asks with. */
static void test_vpnd_netmap_resume(void **state)
{
	static const char E[] = "00112233445566aa";
	int64_t ids0[] = { 2, 3, 4, 5 }, ids_r[] = { 3, 9 }, ids_f[] = { 3, 5, 9 };
	const char *n0[] = { "b", "c", "d", "e" }, *n_r[] = { "c2", "j" }, *n_f[] = { "c2", "e", "j" };
	const char *relays = ",\"relays\":[{\"id\":1,\"name\":\"ams\",\"url\":\"https://ams.test\",\"pin\":\"\"}]";
	struct netmap m, f;
	struct nm_change c;
	char q[128], *full, *res, *want;

	(void)state;
	netmap_init(&m);
	netmap_init(&f);
	netmap_resume_query(&m, q, sizeof(q));
	assert_string_equal(q, "");
	res = map_line("resume", 20, E, "ts.test", ids_r, n_r, 2, relays);
	close_line(res, ",\"removed\":[2,4,77,4]");
	assert_int_equal(apply(&m, res, &c), -EPROTO);   /* nothing to continue */
	full = map_line("full", 10, E, "ts.test", ids0, n0, 4, ",\"relays\":[]");
	close_line(full, "");
	apply_ok(&m, full, NM_FULL);
	assert_int_equal(m.version, 10);
	assert_string_equal(m.epoch, E);
	apply_ok(&m, "{\"type\":\"keepalive\",\"v\":12}", NM_KEEPALIVE);
	assert_int_equal(m.version, 12);
	netmap_resume_query(&m, q, sizeof(q));
	assert_string_equal(q, "since=12&epoch=00112233445566aa");
	/* Another epoch's resume is not a continuation of this map. */
	{
		char *other = map_line("resume", 20, "ffffffffffffffff", "ts.test", ids_r, n_r, 2, "");
		close_line(other, ",\"removed\":[]");
		assert_int_equal(apply(&m, other, &c), -EINVAL);
		assert_int_equal(m.n_peers, 4);
		free(other);
	}
	assert_int_equal(apply(&m, res, &c), 0);
	assert_int_equal(c.kind, NM_FULL);
	assert_true(c.resumed);
	assert_int_equal(c.n_old, 4);   /* the peers before, for wgsync's diff */
	nm_change_clear(&c);
	want = map_line("full", 20, E, "ts.test", ids_f, n_f, 3, relays);
	close_line(want, "");
	apply_ok(&f, want, NM_FULL);
	assert_maps_equal(&m, &f);
	/* A new domain in a resume renames the peers it did not send. */
	free(res);
	res = map_line("resume", 21, E, "new.test", NULL, NULL, 0, "");
	close_line(res, ",\"removed\":[]");
	apply_ok(&m, res, NM_FULL);
	assert_string_equal(m.peers[1].fqdn, "e.new.test");
	assert_int_equal(m.n_relays, 1);   /* not sent: kept */
	/* Malformed resumes change nothing. */
	free(res);
	res = map_line("resume", 22, E, "new.test", NULL, NULL, 0, "");
	close_line(res, ",\"removed\":[0]");
	assert_int_equal(apply(&m, res, &c), -EINVAL);
	free(res);
	res = map_line("resume", 22, E, "new.test", NULL, NULL, 0, "");
	close_line(res, ",\"removed\":\"x\"");
	assert_int_equal(apply(&m, res, &c), -EINVAL);
	assert_int_equal(m.version, 21);
	assert_int_equal(m.n_peers, 3);
	/* A refused line: the map may lack it, so no resume (a full) until the next full. */
	apply_ok(&m, "{\"type\":\"keepalive\",\"v\":23}", NM_KEEPALIVE);
	netmap_resume_query(&m, q, sizeof(q));
	assert_string_equal(q, "");
	apply_ok(&m, full, NM_FULL);
	netmap_resume_query(&m, q, sizeof(q));
	assert_string_equal(q, "since=10&epoch=00112233445566aa");
	free(res);
	free(want);
	free(full);
	netmap_free(&m);
	netmap_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vpnd_netmap_real_coord_full),
		cmocka_unit_test(test_vpnd_netmap_full_then_deltas),
		cmocka_unit_test(test_vpnd_netmap_diff_on_full),
		cmocka_unit_test(test_vpnd_netmap_malformed_lines),
		cmocka_unit_test(test_vpnd_netmap_duplicate_keys),
		cmocka_unit_test(test_vpnd_netmap_delta_before_full),
		cmocka_unit_test(test_vpnd_netmap_10k_peers),
		cmocka_unit_test(test_vpnd_netmap_dns),
		cmocka_unit_test(test_vpnd_netmap_resume),
	};

	if (keys_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
