/* test_wg_netlink.c - the kernel backend's pure halves without a kernel: WG_CMD_SET_DEVICE
 * split across messages and read back through the GET_DEVICE dump parser; malformed
 * dumps rejected; the front's input checks and device helpers. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/wireguard.h>

#include "meshvpn/log.h"
#include "vpnd/wg_netlink.h"

#define FAMILY 0x1d
#define MSG_SIZE 4096

/* -- a device of n peers with k allowed IPs each, all fields varying -- */

static void fill_key(uint8_t key[WG_KEY_LEN], unsigned seed)
{
	for (unsigned i = 0; i < WG_KEY_LEN; i++)
		key[i] = (uint8_t)(seed * 31 + i * 7 + (seed >> 8));
	key[0] = (uint8_t)seed;
	key[1] = (uint8_t)(seed >> 8);
}

static void fill_aip(struct wg_allowedip *a, unsigned peer, unsigned j)
{
	memset(a, 0, sizeof(*a));
	if (j % 2 == 0) {
		a->family = AF_INET;
		a->ip4.s_addr = htonl(0x64400000U + peer * 16 + j);
		a->cidr = (uint8_t)(32 - j % 8);
	} else {
		a->family = AF_INET6;
		a->ip6.s6_addr[0] = 0xfd;
		a->ip6.s6_addr[14] = (uint8_t)(peer >> 8);
		a->ip6.s6_addr[15] = (uint8_t)peer;
		a->ip6.s6_addr[13] = (uint8_t)j;
		a->cidr = (uint8_t)(128 - j % 16);
	}
}

static struct wg_device *make_device(unsigned n, unsigned k)
{
	struct wg_device *dev = wg_device_new();

	assert_non_null(dev);
	fill_key(dev->private_key, 0xabcd);
	dev->listen_port = 41641;
	dev->flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_REPLACE_PEERS;
	for (unsigned i = 0; i < n; i++) {
		struct wg_peer *p;
		struct wg_allowedip a;

		assert_int_equal(wg_device_add_peer(dev, &p), 0);
		fill_key(p->public_key, i + 1);
		p->flags = WG_PEER_REPLACE_ALLOWEDIPS | WG_PEER_HAS_KEEPALIVE;
		p->persistent_keepalive = (uint16_t)(i % 30);
		if (i % 3 == 0) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&p->endpoint;

			s4->sin_family = AF_INET;
			s4->sin_addr.s_addr = htonl(0xc0000200U + i % 256);
			s4->sin_port = htons((uint16_t)(1000 + i));
			p->flags |= WG_PEER_HAS_ENDPOINT;
		} else if (i % 3 == 1) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&p->endpoint;

			s6->sin6_family = AF_INET6;
			s6->sin6_addr.s6_addr[0] = 0x20;
			s6->sin6_addr.s6_addr[1] = 0x01;
			s6->sin6_addr.s6_addr[15] = (uint8_t)i;
			s6->sin6_port = htons((uint16_t)(2000 + i));
			p->flags |= WG_PEER_HAS_ENDPOINT;
		}
		for (unsigned j = 0; j < k; j++) {
			fill_aip(&a, i, j);
			assert_int_equal(wg_peer_add_allowedip(p, &a), 0);
		}
	}
	assert_int_equal(wg_device_check(dev), 0);
	return dev;
}

/* -- turning SET_DEVICE requests into what a GET_DEVICE dump looks like -- */

struct msgs {
	uint8_t *buf;       /* messages back to back, each aligned */
	size_t len;
	size_t off[4096];
	size_t n;
};

static void build_all(const struct wg_device *dev, size_t size, struct msgs *m)
{
	struct wg_nl_set_iter it;
	uint8_t *msg = malloc(size);
	int len;

	memset(m, 0, sizeof(*m));
	assert_non_null(msg);
	wg_nl_set_iter_init(&it, dev, "wg-test", FAMILY, 100);
	while ((len = wg_nl_set_next(&it, msg, size)) > 0) {
		struct nlmsghdr *nlh = (struct nlmsghdr *)msg;

		assert_true((size_t)len <= size);
		assert_int_equal(nlh->nlmsg_len, len);
		assert_int_equal(nlh->nlmsg_type, FAMILY);
		assert_int_equal(nlh->nlmsg_seq, 100 + m->n);
		assert_true(m->n < sizeof(m->off) / sizeof(m->off[0]));
		m->buf = realloc(m->buf, m->len + MNL_ALIGN(len));
		assert_non_null(m->buf);
		memset(m->buf + m->len, 0, MNL_ALIGN(len));
		memcpy(m->buf + m->len, msg, (size_t)len);
		m->off[m->n++] = m->len;
		m->len += MNL_ALIGN(len);
	}
	assert_int_equal(len, 0);
	/* Finished iterators stay finished. */
	assert_int_equal(wg_nl_set_next(&it, msg, size), 0);
	free(msg);
}

static void as_dump_reply(struct msgs *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct nlmsghdr *nlh = (struct nlmsghdr *)(m->buf + m->off[i]);
		struct genlmsghdr *genl = mnl_nlmsg_get_payload(nlh);

		assert_int_equal(genl->cmd, WG_CMD_SET_DEVICE);
		genl->cmd = WG_CMD_GET_DEVICE;
		nlh->nlmsg_flags = NLM_F_MULTI;
		nlh->nlmsg_seq = 7;
	}
}

static size_t put_done(uint8_t *buf, int status)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = NLMSG_DONE;
	nlh->nlmsg_flags = NLM_F_MULTI;
	nlh->nlmsg_seq = 7;
	memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(status)), &status, sizeof(status));
	return nlh->nlmsg_len;
}

/* Feeds the dump in datagrams of per messages each, then NLMSG_DONE. */
static struct wg_device *parse_all(const struct msgs *m, size_t per)
{
	struct wg_device *got = wg_device_new();
	uint8_t done[64];

	assert_non_null(got);
	for (size_t i = 0; i < m->n; i += per) {
		size_t end = i + per < m->n ? m->off[i + per] : m->len;

		assert_int_equal(wg_nl_parse_dump(m->buf + m->off[i], end - m->off[i], FAMILY, 7, 0,
						  got), 1);
	}
	assert_int_equal(wg_nl_parse_dump(done, put_done(done, 0), FAMILY, 7, 0, got), 0);
	return got;
}

static void assert_same_peers(const struct wg_device *want, const struct wg_device *got)
{
	assert_int_equal(got->n_peers, want->n_peers);
	for (size_t i = 0; i < want->n_peers; i++) {
		const struct wg_peer *a = &want->peers[i], *b = &got->peers[i];
		size_t elen = a->endpoint.ss_family == AF_INET ? sizeof(struct sockaddr_in)
							       : sizeof(struct sockaddr_in6);

		assert_memory_equal(a->public_key, b->public_key, WG_KEY_LEN);
		assert_int_equal(a->persistent_keepalive, b->persistent_keepalive);
		assert_int_equal(a->flags & WG_PEER_HAS_ENDPOINT, b->flags & WG_PEER_HAS_ENDPOINT);
		if (a->flags & WG_PEER_HAS_ENDPOINT)
			assert_memory_equal(&a->endpoint, &b->endpoint, elen);
		assert_int_equal(a->n_allowedips, b->n_allowedips);
		for (size_t j = 0; j < a->n_allowedips; j++) {
			const struct wg_allowedip *x = &a->allowedips[j], *y = &b->allowedips[j];

			assert_int_equal(x->family, y->family);
			assert_int_equal(x->cidr, y->cidr);
			assert_memory_equal(&x->ip6, &y->ip6, x->family == AF_INET ? 4 : 16);
		}
	}
}

/* Counts the attributes of type t directly inside a nest or a message payload. */
struct count {
	uint16_t type;
	int n;
};

static int count_cb(const struct nlattr *a, void *data)
{
	struct count *c = data;

	if (mnl_attr_get_type(a) == c->type)
		c->n++;
	return MNL_CB_OK;
}

static int count_device_attr(const uint8_t *msg, uint16_t type)
{
	struct count c = { .type = type };

	mnl_attr_parse((const struct nlmsghdr *)msg, sizeof(struct genlmsghdr), count_cb, &c);
	return c.n;
}

static const struct nlattr *device_attr(const uint8_t *msg, uint16_t type)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)msg;
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr))
		if (mnl_attr_get_type(a) == type)
			return a;
	return NULL;
}

/* -- the cases -- */

static void test_wg_netlink_split_roundtrip(void **state)
{
	struct wg_device *dev = make_device(1000, 5), *got;
	struct msgs m;

	build_all(dev, MSG_SIZE, &m);
	assert_true(m.n > 10);
	/* Device attributes go once: REPLACE_PEERS in a later message would drop the
	 * peers the earlier ones added. */
	assert_int_equal(count_device_attr(m.buf + m.off[0], WGDEVICE_A_PRIVATE_KEY), 1);
	assert_int_equal(count_device_attr(m.buf + m.off[0], WGDEVICE_A_FLAGS), 1);
	for (size_t i = 1; i < m.n; i++) {
		assert_int_equal(count_device_attr(m.buf + m.off[i], WGDEVICE_A_PRIVATE_KEY), 0);
		assert_int_equal(count_device_attr(m.buf + m.off[i], WGDEVICE_A_FLAGS), 0);
		assert_int_equal(count_device_attr(m.buf + m.off[i], WGDEVICE_A_LISTEN_PORT), 0);
		assert_int_equal(count_device_attr(m.buf + m.off[i], WGDEVICE_A_IFNAME), 1);
	}
	as_dump_reply(&m);
	/* One message per datagram, then several per datagram: same result. */
	got = parse_all(&m, 1);
	assert_same_peers(dev, got);
	assert_true(got->flags & WG_DEVICE_HAS_PRIVATE_KEY);
	assert_memory_equal(got->private_key, dev->private_key, WG_KEY_LEN);
	assert_int_equal(got->listen_port, 41641);
	assert_string_equal(got->ifname, "wg-test");
	wg_device_free(got);
	got = parse_all(&m, 7);
	assert_same_peers(dev, got);
	wg_device_free(got);
	free(m.buf);
	wg_device_free(dev);
}

static void test_wg_netlink_peer_spans_messages(void **state)
{
	struct wg_device *dev = make_device(3, 0), *got;
	struct wg_allowedip a;
	struct msgs m;
	int spans = 0;

	/* The middle peer has far more allowed IPs than one message holds. */
	for (unsigned j = 0; j < 700; j++) {
		fill_aip(&a, 1, j);
		assert_int_equal(wg_peer_add_allowedip(&dev->peers[1], &a), 0);
	}
	build_all(dev, MSG_SIZE, &m);
	assert_true(m.n >= 3);
	for (size_t i = 1; i < m.n; i++) {
		/* A continuation repeats the key but not the flags: REPLACE_ALLOWEDIPS again
		 * would drop what the previous message added. */
		const struct nlattr *peers = device_attr(m.buf + m.off[i], WGDEVICE_A_PEERS);
		const struct nlattr *first;
		struct count flags = { .type = WGPEER_A_FLAGS }, ep = { .type = WGPEER_A_ENDPOINT };

		assert_non_null(peers);
		first = mnl_attr_get_payload(peers);
		mnl_attr_parse_nested(first, count_cb, &flags);
		mnl_attr_parse_nested(first, count_cb, &ep);
		if (!memcmp((const uint8_t *)mnl_attr_get_payload(first) + 4, dev->peers[1].public_key,
			    WG_KEY_LEN)) {
			spans++;
			assert_int_equal(flags.n, 0);
			assert_int_equal(ep.n, 0);
		}
	}
	assert_true(spans >= 1);
	as_dump_reply(&m);
	got = parse_all(&m, 1);
	assert_same_peers(dev, got);
	assert_int_equal(got->peers[1].n_allowedips, 700);
	wg_device_free(got);
	/* The same peer split across two datagrams. */
	got = parse_all(&m, 2);
	assert_same_peers(dev, got);
	wg_device_free(got);
	free(m.buf);
	wg_device_free(dev);
}

static void test_wg_netlink_no_peers_one_message(void **state)
{
	struct wg_device dev = { .flags = WG_DEVICE_HAS_LISTEN_PORT, .listen_port = 5 };
	struct msgs m;

	build_all(&dev, MSG_SIZE, &m);
	assert_int_equal(m.n, 1);
	assert_int_equal(count_device_attr(m.buf, WGDEVICE_A_PEERS), 0);
	assert_int_equal(count_device_attr(m.buf, WGDEVICE_A_LISTEN_PORT), 1);
	free(m.buf);

	/* Removing a peer: just its key and the flag. */
	struct wg_peer p = { .flags = WG_PEER_REMOVE };
	struct wg_device rm = { .peers = &p, .n_peers = 1 };

	fill_key(p.public_key, 9);
	build_all(&rm, MSG_SIZE, &m);
	assert_int_equal(m.n, 1);
	free(m.buf);
}

static void test_wg_netlink_small_buffer(void **state)
{
	struct wg_device *dev = make_device(2, 2);
	struct wg_nl_set_iter it;
	uint8_t buf[256];

	/* Not even the header and name. */
	wg_nl_set_iter_init(&it, dev, "wg-test", FAMILY, 1);
	assert_int_equal(wg_nl_set_next(&it, buf, 16), -EMSGSIZE);
	/* Device attributes fit, a peer never does. */
	wg_nl_set_iter_init(&it, dev, "wg-test", FAMILY, 1);
	assert_true(wg_nl_set_next(&it, buf, 100) > 0);
	assert_int_equal(wg_nl_set_next(&it, buf, 100), -EMSGSIZE);
	/* A peer with one allowed IP per message still goes through. */
	struct msgs m;

	build_all(dev, 160, &m);
	assert_true(m.n >= 4);
	as_dump_reply(&m);
	struct wg_device *got = parse_all(&m, 1);

	assert_same_peers(dev, got);
	wg_device_free(got);
	free(m.buf);
	/* Bad names. */
	wg_nl_set_iter_init(&it, dev, "", FAMILY, 1);
	assert_int_equal(wg_nl_set_next(&it, buf, sizeof(buf)), -EINVAL);
	wg_nl_set_iter_init(&it, dev, "0123456789abcdef", FAMILY, 1);
	assert_int_equal(wg_nl_set_next(&it, buf, sizeof(buf)), -EINVAL);
	wg_device_free(dev);
}

/* -- hand-made dump messages for the rejection cases -- */

static struct nlmsghdr *reply_begin(uint8_t *buf)
{
	struct nlmsghdr *nlh;
	struct genlmsghdr *genl;

	memset(buf, 0, MSG_SIZE);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = FAMILY;
	nlh->nlmsg_flags = NLM_F_MULTI;
	nlh->nlmsg_seq = 7;
	genl = mnl_nlmsg_put_extra_header(nlh, sizeof(*genl));
	genl->cmd = WG_CMD_GET_DEVICE;
	genl->version = WG_GENL_VERSION;
	return nlh;
}

static int parse_one(const void *buf, size_t len)
{
	struct wg_device *dev = wg_device_new();
	int rc = wg_nl_parse_dump(buf, len, FAMILY, 7, 0, dev);

	wg_device_free(dev);
	return rc;
}

/* A reply with one peer; the callback may add or spoil attributes inside it. */
typedef void (*peer_fn)(struct nlmsghdr *nlh);

static size_t reply_with_peer(uint8_t *buf, peer_fn extra)
{
	struct nlmsghdr *nlh = reply_begin(buf);
	struct nlattr *peers, *peer;
	uint8_t key[WG_KEY_LEN];

	fill_key(key, 1);
	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, "wg0");
	peers = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
	peer = mnl_attr_nest_start(nlh, 0);
	mnl_attr_put(nlh, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, key);
	if (extra)
		extra(nlh);
	mnl_attr_nest_end(nlh, peer);
	mnl_attr_nest_end(nlh, peers);
	return nlh->nlmsg_len;
}

static void aip_v4_cidr33(struct nlmsghdr *nlh)
{
	struct nlattr *aips = mnl_attr_nest_start(nlh, WGPEER_A_ALLOWEDIPS);
	struct nlattr *a = mnl_attr_nest_start(nlh, 0);
	struct in_addr ip = { htonl(0x64400001) };

	mnl_attr_put_u16(nlh, WGALLOWEDIP_A_FAMILY, AF_INET);
	mnl_attr_put(nlh, WGALLOWEDIP_A_IPADDR, sizeof(ip), &ip);
	mnl_attr_put_u8(nlh, WGALLOWEDIP_A_CIDR_MASK, 33);
	mnl_attr_nest_end(nlh, a);
	mnl_attr_nest_end(nlh, aips);
}

static void aip_v4_with_v6_addr(struct nlmsghdr *nlh)
{
	struct nlattr *aips = mnl_attr_nest_start(nlh, WGPEER_A_ALLOWEDIPS);
	struct nlattr *a = mnl_attr_nest_start(nlh, 0);
	struct in6_addr ip = IN6ADDR_LOOPBACK_INIT;

	mnl_attr_put_u16(nlh, WGALLOWEDIP_A_FAMILY, AF_INET);
	mnl_attr_put(nlh, WGALLOWEDIP_A_IPADDR, sizeof(ip), &ip);
	mnl_attr_put_u8(nlh, WGALLOWEDIP_A_CIDR_MASK, 32);
	mnl_attr_nest_end(nlh, a);
	mnl_attr_nest_end(nlh, aips);
}

static void aip_without_family(struct nlmsghdr *nlh)
{
	struct nlattr *aips = mnl_attr_nest_start(nlh, WGPEER_A_ALLOWEDIPS);
	struct nlattr *a = mnl_attr_nest_start(nlh, 0);
	struct in_addr ip = { htonl(0x64400001) };

	mnl_attr_put(nlh, WGALLOWEDIP_A_IPADDR, sizeof(ip), &ip);
	mnl_attr_put_u8(nlh, WGALLOWEDIP_A_CIDR_MASK, 32);
	mnl_attr_nest_end(nlh, a);
	mnl_attr_nest_end(nlh, aips);
}

static void aip_good_v6(struct nlmsghdr *nlh)
{
	struct nlattr *aips = mnl_attr_nest_start(nlh, WGPEER_A_ALLOWEDIPS);
	struct nlattr *a = mnl_attr_nest_start(nlh, 0);
	struct in6_addr ip = IN6ADDR_LOOPBACK_INIT;

	mnl_attr_put_u8(nlh, WGALLOWEDIP_A_CIDR_MASK, 128);
	mnl_attr_put(nlh, WGALLOWEDIP_A_IPADDR, sizeof(ip), &ip);
	mnl_attr_put_u16(nlh, WGALLOWEDIP_A_FAMILY, AF_INET6);
	mnl_attr_put_u32(nlh, 77, 0);     /* unknown: skipped */
	mnl_attr_nest_end(nlh, a);
	mnl_attr_nest_end(nlh, aips);
}

static void endpoint_short(struct nlmsghdr *nlh)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };

	mnl_attr_put(nlh, WGPEER_A_ENDPOINT, sizeof(struct sockaddr_in), &s6);
}

static void endpoint_family_mismatch(struct nlmsghdr *nlh)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET };

	mnl_attr_put(nlh, WGPEER_A_ENDPOINT, sizeof(s6), &s6);
}

static void keepalive_u32(struct nlmsghdr *nlh)
{
	mnl_attr_put_u32(nlh, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 25);
}

static void rx_bytes_u32(struct nlmsghdr *nlh)
{
	mnl_attr_put_u32(nlh, WGPEER_A_RX_BYTES, 25);
}

static void handshake_short(struct nlmsghdr *nlh)
{
	mnl_attr_put_u64(nlh, WGPEER_A_LAST_HANDSHAKE_TIME, 25);
}

static void second_key_33(struct nlmsghdr *nlh)
{
	uint8_t key[33] = { 0 };

	mnl_attr_put(nlh, WGPEER_A_PUBLIC_KEY, sizeof(key), key);
}

static void stats(struct nlmsghdr *nlh)
{
	int64_t ts[2] = { 1700000000, 5 };

	mnl_attr_put(nlh, WGPEER_A_LAST_HANDSHAKE_TIME, sizeof(ts), ts);
	mnl_attr_put_u64(nlh, WGPEER_A_RX_BYTES, 1234);
	mnl_attr_put_u64(nlh, WGPEER_A_TX_BYTES, 5678);
	mnl_attr_put_u32(nlh, WGPEER_A_PROTOCOL_VERSION, 1);
}

static void test_wg_netlink_attribute_validation(void **state)
{
	static const struct {
		peer_fn fn;
		int rc;
	} cases[] = {
		{ NULL, 1 },
		{ aip_good_v6, 1 },
		{ stats, 1 },
		{ aip_v4_cidr33, -EBADMSG },
		{ aip_v4_with_v6_addr, -EBADMSG },
		{ aip_without_family, -EBADMSG },
		{ endpoint_short, -EBADMSG },
		{ endpoint_family_mismatch, -EBADMSG },
		{ keepalive_u32, -EBADMSG },
		{ rx_bytes_u32, -EBADMSG },
		{ handshake_short, -EBADMSG },
		{ second_key_33, -EBADMSG },
	};
	uint8_t buf[MSG_SIZE];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = reply_with_peer(buf, cases[i].fn);

		assert_int_equal(parse_one(buf, len), cases[i].rc);
	}

	struct wg_device *dev = wg_device_new();
	size_t len = reply_with_peer(buf, stats);

	assert_int_equal(wg_nl_parse_dump(buf, len, FAMILY, 7, 0, dev), 1);
	assert_int_equal(dev->n_peers, 1);
	assert_int_equal(dev->peers[0].last_handshake_sec, 1700000000);
	assert_int_equal(dev->peers[0].rx_bytes, 1234);
	assert_int_equal(dev->peers[0].tx_bytes, 5678);
	wg_device_free(dev);
}

static void test_wg_netlink_truncated(void **state)
{
	uint8_t buf[MSG_SIZE];
	struct nlmsghdr *nlh;
	struct nlattr *a;
	size_t len = reply_with_peer(buf, aip_good_v6);

	assert_int_equal(parse_one(buf, len), 1);
	/* The buffer ends before the message does. */
	for (size_t cut = 0; cut < len; cut += 3)
		assert_true(parse_one(buf, cut) < 0);
	/* An attribute claims more than its message holds. */
	nlh = (struct nlmsghdr *)buf;
	a = (struct nlattr *)((uint8_t *)nlh + MNL_NLMSG_HDRLEN + GENL_HDRLEN);
	assert_int_equal(mnl_attr_get_type(a), WGDEVICE_A_IFNAME);
	a->nla_len = (uint16_t)(len + 4);
	assert_int_equal(parse_one(buf, len), -EBADMSG);
	/* ... or less than its own header. */
	a->nla_len = 2;
	assert_int_equal(parse_one(buf, len), -EBADMSG);
	/* A nest longer than its parent. */
	len = reply_with_peer(buf, NULL);
	a = (struct nlattr *)mnl_nlmsg_get_payload_offset(nlh, GENL_HDRLEN);
	a = mnl_attr_next(a);                             /* PEERS */
	assert_int_equal(mnl_attr_get_type(a), WGDEVICE_A_PEERS);
	((struct nlattr *)mnl_attr_get_payload(a))->nla_len += 8;
	assert_int_equal(parse_one(buf, len), -EBADMSG);
	/* Stray bytes after the last attribute: too few for a header, or a header whose
	 * length runs past the end. */
	len = reply_with_peer(buf, NULL);
	memset(buf + len, 0xee, 4);
	nlh->nlmsg_len += 3;
	assert_int_equal(parse_one(buf, len + 3), -EBADMSG);
	nlh->nlmsg_len += 1;
	assert_int_equal(parse_one(buf, len + 4), -EBADMSG);
	/* nlmsg_len past the buffer, and below a header. */
	len = reply_with_peer(buf, NULL);
	nlh->nlmsg_len = (uint32_t)len + 100;
	assert_int_equal(parse_one(buf, len), -EBADMSG);
	nlh->nlmsg_len = 8;
	assert_int_equal(parse_one(buf, len), -EBADMSG);
	/* No genl header. */
	nlh->nlmsg_len = MNL_NLMSG_HDRLEN + 2;
	assert_int_equal(parse_one(buf, MNL_NLMSG_HDRLEN + 2), -EBADMSG);
	assert_int_equal(parse_one(buf, 0), -EBADMSG);
}

static void test_wg_netlink_oversized(void **state)
{
	uint8_t buf[MSG_SIZE];
	struct nlmsghdr *nlh;
	uint8_t key[40] = { 0 };
	char name[IFNAMSIZ + 4];

	/* A u16 with four bytes of payload. */
	nlh = reply_begin(buf);
	mnl_attr_put_u32(nlh, WGDEVICE_A_LISTEN_PORT, 51820);
	assert_int_equal(parse_one(buf, nlh->nlmsg_len), -EBADMSG);
	/* A private key of 33 bytes. */
	nlh = reply_begin(buf);
	mnl_attr_put(nlh, WGDEVICE_A_PRIVATE_KEY, 33, key);
	assert_int_equal(parse_one(buf, nlh->nlmsg_len), -EBADMSG);
	/* A name longer than IFNAMSIZ, and one without its NUL. */
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	nlh = reply_begin(buf);
	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, name);
	assert_int_equal(parse_one(buf, nlh->nlmsg_len), -EBADMSG);
	nlh = reply_begin(buf);
	mnl_attr_put(nlh, WGDEVICE_A_IFNAME, 3, "wg0");
	assert_int_equal(parse_one(buf, nlh->nlmsg_len), -EBADMSG);
	/* A peer without a public key. */
	nlh = reply_begin(buf);
	{
		struct nlattr *peers = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
		struct nlattr *peer = mnl_attr_nest_start(nlh, 0);

		mnl_attr_put_u16(nlh, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 25);
		mnl_attr_nest_end(nlh, peer);
		mnl_attr_nest_end(nlh, peers);
	}
	assert_int_equal(parse_one(buf, nlh->nlmsg_len), -EBADMSG);
	/* Unknown device attributes are skipped; known ones read. */
	nlh = reply_begin(buf);
	mnl_attr_put_u64(nlh, 200, 1);
	mnl_attr_put_u32(nlh, WGDEVICE_A_FWMARK, 0x51);
	{
		struct wg_device *dev = wg_device_new();

		assert_int_equal(wg_nl_parse_dump(buf, nlh->nlmsg_len, FAMILY, 7, 0, dev), 1);
		assert_true(dev->flags & WG_DEVICE_HAS_FWMARK);
		assert_int_equal(dev->fwmark, 0x51);
		wg_device_free(dev);
	}
}

static void test_wg_netlink_control_messages(void **state)
{
	uint8_t buf[MSG_SIZE];
	struct nlmsghdr *nlh;
	struct nlmsgerr *err;
	size_t len;

	/* DONE, with and without the dump's status. */
	assert_int_equal(parse_one(buf, put_done(buf, 0)), 0);
	assert_int_equal(parse_one(buf, put_done(buf, -EMSGSIZE)), -EMSGSIZE);
	assert_int_equal(parse_one(buf, put_done(buf, 12345)), -EBADMSG);
	nlh = (struct nlmsghdr *)buf;
	nlh->nlmsg_len = MNL_NLMSG_HDRLEN;
	assert_int_equal(parse_one(buf, MNL_NLMSG_HDRLEN), 0);
	/* NLMSG_ERROR: the kernel's errno, an ack, a short one. */
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = NLMSG_ERROR;
	nlh->nlmsg_seq = 7;
	err = mnl_nlmsg_put_extra_header(nlh, sizeof(*err));
	err->error = -ENODEV;
	assert_int_equal(parse_one(buf, nlh->nlmsg_len), -ENODEV);
	err->error = 0;
	assert_int_equal(parse_one(buf, nlh->nlmsg_len), 0);
	nlh->nlmsg_len = MNL_NLMSG_HDRLEN + 4;
	assert_int_equal(parse_one(buf, nlh->nlmsg_len), -EBADMSG);
	/* The dump was interrupted: start again. */
	len = reply_with_peer(buf, NULL);
	nlh->nlmsg_flags |= NLM_F_DUMP_INTR;
	assert_int_equal(parse_one(buf, len), -EINTR);
	/* Not ours: another sequence number, another family, another command. */
	len = reply_with_peer(buf, NULL);
	nlh->nlmsg_seq = 8;
	assert_int_equal(parse_one(buf, len), -EPROTO);
	len = reply_with_peer(buf, NULL);
	nlh->nlmsg_type = FAMILY + 1;
	assert_int_equal(parse_one(buf, len), -EBADMSG);
	len = reply_with_peer(buf, NULL);
	((struct genlmsghdr *)mnl_nlmsg_get_payload(nlh))->cmd = WG_CMD_SET_DEVICE;
	assert_int_equal(parse_one(buf, len), -EBADMSG);
	/* A lone reply without NLM_F_MULTI is the whole answer. */
	len = reply_with_peer(buf, NULL);
	nlh->nlmsg_flags = 0;
	assert_int_equal(parse_one(buf, len), 0);
	/* NOOP is skipped; a reply then DONE in one datagram ends it. */
	len = reply_with_peer(buf, NULL);
	len += put_done(buf + MNL_ALIGN(len), 0);
	assert_int_equal(parse_one(buf, len), 0);
}

/* -- the front: input checks and device helpers -- */

static void test_wg_device_check(void **state)
{
	struct wg_allowedip a = { .family = AF_INET, .cidr = 33 };
	struct wg_peer p = { .allowedips = &a, .n_allowedips = 1 };
	struct wg_device dev = { .peers = &p, .n_peers = 1 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&p.endpoint;

	assert_int_equal(wg_device_check(&dev), -EINVAL);
	a.cidr = 32;
	assert_int_equal(wg_device_check(&dev), 0);
	a.family = AF_INET6;
	a.cidr = 129;
	assert_int_equal(wg_device_check(&dev), -EINVAL);
	a.cidr = 128;
	a.family = 99;
	assert_int_equal(wg_device_check(&dev), -EINVAL);
	a.family = AF_INET6;
	p.flags = WG_PEER_HAS_ENDPOINT;
	assert_int_equal(wg_device_check(&dev), -EINVAL);     /* family 0 */
	s4->sin_family = AF_INET;
	assert_int_equal(wg_device_check(&dev), -EINVAL);     /* port 0 */
	s4->sin_port = htons(1);
	assert_int_equal(wg_device_check(&dev), 0);
	p.flags |= 1U << 20;
	assert_int_equal(wg_device_check(&dev), -EINVAL);
	p.flags = 0;
	p.allowedips = NULL;
	assert_int_equal(wg_device_check(&dev), -EINVAL);
	dev.peers = NULL;
	assert_int_equal(wg_device_check(&dev), -EINVAL);
	assert_int_equal(wg_device_check(NULL), -EINVAL);
}

static void test_wg_open_bad_args(void **state)
{
	struct wg *wg = NULL;

	assert_int_equal(wg_open("userspace", "", NULL, &wg), -EINVAL);
	assert_int_equal(wg_open("userspace", "a/b", NULL, &wg), -EINVAL);
	assert_int_equal(wg_open("userspace", "..", NULL, &wg), -EINVAL);
	assert_int_equal(wg_open("userspace", "has space", NULL, &wg), -EINVAL);
	assert_int_equal(wg_open("userspace", "0123456789abcdef", NULL, &wg), -EINVAL);
	assert_int_equal(wg_open("bogus", "wg0", NULL, &wg), -EINVAL);
	assert_null(wg);
	wg_close(NULL);
	wg_device_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wg_netlink_split_roundtrip),
		cmocka_unit_test(test_wg_netlink_peer_spans_messages),
		cmocka_unit_test(test_wg_netlink_no_peers_one_message),
		cmocka_unit_test(test_wg_netlink_small_buffer),
		cmocka_unit_test(test_wg_netlink_attribute_validation),
		cmocka_unit_test(test_wg_netlink_truncated),
		cmocka_unit_test(test_wg_netlink_oversized),
		cmocka_unit_test(test_wg_netlink_control_messages),
		cmocka_unit_test(test_wg_device_check),
		cmocka_unit_test(test_wg_open_bad_args),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
