/* test_vpnd_linkmon.c - vpnd's rtnetlink watch: the pure filter on built and captured
 * messages (relevant or not, vpnd's own interface, several messages in one datagram,
 * truncated and malformed input, garbage), and the watch itself in a private network
 * namespace: bursts debounced into one report, a steady stream still reported, an
 * overrun (ENOBUFS) survived, a socket that breaks reopened, no callback after close. */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "meshvpn/log.h"
#include "vpnd/linkmon.h"
#include "vpnd/netif.h"

#define OWN "meshvpn0"

static uint32_t words[16384];           /* aligned, as a receive buffer is */
#define BUF ((uint8_t *)words)

/* -- message builders (libmnl), appended at `at`; each returns its aligned length -- */

static size_t put_addr(uint8_t *at, uint16_t type, uint8_t family, uint8_t scope,
		       uint32_t ifindex, const char *label)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(at);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));

	nlh->nlmsg_type = type;
	ifa->ifa_family = family;
	ifa->ifa_scope = scope;
	ifa->ifa_index = ifindex;
	if (family == AF_INET) {
		struct in_addr a;
		inet_pton(AF_INET, "198.51.100.111", &a);
		ifa->ifa_prefixlen = 24;
		mnl_attr_put(nlh, IFA_LOCAL, sizeof(a), &a);
		mnl_attr_put(nlh, IFA_ADDRESS, sizeof(a), &a);
	} else if (family == AF_INET6) {
		struct in6_addr a;
		inet_pton(AF_INET6, scope == RT_SCOPE_LINK ? "fe80::1" : "2001:db8::11", &a);
		ifa->ifa_prefixlen = 64;
		mnl_attr_put(nlh, IFA_ADDRESS, sizeof(a), &a);
	}
	if (label)
		mnl_attr_put_strz(nlh, IFA_LABEL, label);
	return MNL_ALIGN(nlh->nlmsg_len);
}

static size_t put_link(uint8_t *at, uint16_t type, int ifindex, unsigned flags, const char *name,
		       int wireless)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(at);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));

	nlh->nlmsg_type = type;
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_flags = flags;
	if (name)
		mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	mnl_attr_put_u32(nlh, IFLA_MTU, 1500);
	if (wireless)
		mnl_attr_put(nlh, IFLA_WIRELESS, 4, "\x08\x00\x01\x8b");
	return MNL_ALIGN(nlh->nlmsg_len);
}

static size_t put_bare(uint8_t *at, uint16_t type)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(at);

	nlh->nlmsg_type = type;
	if (type == NLMSG_ERROR) {
		struct nlmsgerr *e = mnl_nlmsg_put_extra_header(nlh, sizeof(*e));
		e->error = -EEXIST;
	}
	return MNL_ALIGN(nlh->nlmsg_len);
}

static int parse(size_t len)
{
	struct linkmon_skip skip = { .ifname = OWN };

	return linkmon_parse(BUF, len, &skip);
}

/* -- the filter -- */

static void test_vpnd_linkmon_relevant(void **state)
{
	assert_int_equal(parse(put_addr(BUF, RTM_NEWADDR, AF_INET, RT_SCOPE_UNIVERSE, 3, "eth0")), 1);
	assert_int_equal(parse(put_addr(BUF, RTM_DELADDR, AF_INET, RT_SCOPE_UNIVERSE, 3, "eth0")), 1);
	assert_int_equal(parse(put_addr(BUF, RTM_NEWADDR, AF_INET6, RT_SCOPE_UNIVERSE, 3, NULL)), 1);
	assert_int_equal(parse(put_addr(BUF, RTM_DELADDR, AF_INET6, RT_SCOPE_SITE, 3, NULL)), 1);
	/* An alias label is still the machine's interface. */
	assert_int_equal(parse(put_addr(BUF, RTM_NEWADDR, AF_INET, RT_SCOPE_UNIVERSE, 3, "eth0:1")), 1);
	assert_int_equal(parse(put_link(BUF, RTM_NEWLINK, 3, IFF_UP | IFF_RUNNING, "eth0", 0)), 1);
	assert_int_equal(parse(put_link(BUF, RTM_DELLINK, 3, 0, "eth0", 0)), 1);
	assert_int_equal(parse(put_bare(BUF, NLMSG_OVERRUN)), 1);
}

static void test_vpnd_linkmon_irrelevant(void **state)
{
	assert_int_equal(parse(0), 0);
	/* link-local and host scope: never candidates */
	assert_int_equal(parse(put_addr(BUF, RTM_NEWADDR, AF_INET6, RT_SCOPE_LINK, 3, NULL)), 0);
	assert_int_equal(parse(put_addr(BUF, RTM_NEWADDR, AF_INET, RT_SCOPE_HOST, 1, "lo")), 0);
	assert_int_equal(parse(put_addr(BUF, RTM_DELADDR, AF_INET6, RT_SCOPE_HOST, 1, NULL)), 0);
	assert_int_equal(parse(put_addr(BUF, RTM_NEWADDR, AF_PACKET, RT_SCOPE_UNIVERSE, 3, NULL)), 0);
	assert_int_equal(parse(put_link(BUF, RTM_NEWLINK, 1, IFF_UP | IFF_LOOPBACK, "lo", 0)), 0);
	assert_int_equal(parse(put_link(BUF, RTM_NEWLINK, 4, IFF_UP, "wlan0", 1)), 0);
	assert_int_equal(parse(put_bare(BUF, NLMSG_NOOP)), 0);
	assert_int_equal(parse(put_bare(BUF, NLMSG_DONE)), 0);
	assert_int_equal(parse(put_bare(BUF, NLMSG_ERROR)), 0);
	assert_int_equal(parse(put_bare(BUF, RTM_NEWROUTE)), 0);
	assert_int_equal(parse(put_bare(BUF, 0x7fff)), 0);
}

static void test_vpnd_linkmon_own_interface(void **state)
{
	struct linkmon_skip skip = { .ifname = OWN };
	size_t n;

	/* Before its index is known, the IPv4 label tells. */
	n = put_addr(BUF, RTM_NEWADDR, AF_INET, RT_SCOPE_UNIVERSE, 7, OWN);
	assert_int_equal(linkmon_parse(BUF, n, &skip), 0);
	n = put_addr(BUF, RTM_NEWADDR, AF_INET6, RT_SCOPE_UNIVERSE, 7, NULL);
	assert_int_equal(linkmon_parse(BUF, n, &skip), 1);
	/* Its link message teaches the index; then its IPv6 addresses do not count either. */
	n = put_link(BUF, RTM_NEWLINK, 7, IFF_UP, OWN, 0);
	assert_int_equal(linkmon_parse(BUF, n, &skip), 0);
	assert_int_equal(skip.ifindex, 7);
	n = put_addr(BUF, RTM_NEWADDR, AF_INET6, RT_SCOPE_UNIVERSE, 7, NULL);
	assert_int_equal(linkmon_parse(BUF, n, &skip), 0);
	n = put_addr(BUF, RTM_DELADDR, AF_INET, RT_SCOPE_UNIVERSE, 7, NULL);
	assert_int_equal(linkmon_parse(BUF, n, &skip), 0);
	/* Deleted: its addresses go after it, still not counted. */
	n = put_link(BUF, RTM_DELLINK, 7, 0, OWN, 0);
	assert_int_equal(linkmon_parse(BUF, n, &skip), 0);
	assert_int_equal(skip.ifindex, 7);
	n = put_addr(BUF, RTM_DELADDR, AF_INET6, RT_SCOPE_UNIVERSE, 7, NULL);
	assert_int_equal(linkmon_parse(BUF, n, &skip), 0);
	/* Another interface still counts. */
	n = put_addr(BUF, RTM_NEWADDR, AF_INET6, RT_SCOPE_UNIVERSE, 3, NULL);
	assert_int_equal(linkmon_parse(BUF, n, &skip), 1);
	/* Recreated with a new index: learned again. */
	n = put_link(BUF, RTM_NEWLINK, 9, IFF_UP, OWN, 0);
	assert_int_equal(linkmon_parse(BUF, n, &skip), 0);
	assert_int_equal(skip.ifindex, 9);
	/* Renamed away: that index is the machine's now. */
	n = put_link(BUF, RTM_NEWLINK, 9, IFF_UP, "eth9", 0);
	assert_int_equal(linkmon_parse(BUF, n, &skip), 1);
	assert_int_equal(skip.ifindex, 0);
	/* Without a name to skip, everything counts and nothing is learned. */
	memset(&skip, 0, sizeof(skip));
	n = put_link(BUF, RTM_NEWLINK, 7, IFF_UP, OWN, 0);
	assert_int_equal(linkmon_parse(BUF, n, &skip), 1);
	assert_int_equal(skip.ifindex, 0);
}

/* As the kernel sent them (captured in a namespace; tests/fuzz/corpus has more). */
static const uint8_t newaddr_v4_eth0[] = {
	0x50, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x3f, 0x64, 0x06, 0x6b,
	0xe5, 0x32, 0x00, 0x00, 0x02, 0x18, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00,
	0x08, 0x00, 0x01, 0x00, 0xc6, 0x33, 0x64, 0x0b, 0x08, 0x00, 0x02, 0x00,
	0xc6, 0x33, 0x64, 0x0b, 0x09, 0x00, 0x03, 0x00, 0x65, 0x74, 0x68, 0x30,
	0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x08, 0x00, 0x80, 0x00, 0x00, 0x00,
	0x14, 0x00, 0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xf0, 0xe5, 0x07, 0x00, 0xf0, 0xe5, 0x07, 0x00,
};
static const uint8_t newaddr_v6_own[] = {   /* fd7a:115c:a1e0::5/128 on ifindex 5 */
	0x48, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x0a, 0x80, 0x82, 0x00, 0x05, 0x00, 0x00, 0x00,
	0x14, 0x00, 0x01, 0x00, 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x14, 0x00, 0x06, 0x00,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x9a, 0xe8, 0x07, 0x00,
	0x9a, 0xe8, 0x07, 0x00, 0x08, 0x00, 0x08, 0x00, 0x82, 0x00, 0x00, 0x00,
};

static void test_vpnd_linkmon_captured(void **state)
{
	struct linkmon_skip skip = { .ifname = OWN, .ifindex = 5 };

	memcpy(BUF, newaddr_v4_eth0, sizeof(newaddr_v4_eth0));
	assert_int_equal(linkmon_parse(BUF, sizeof(newaddr_v4_eth0), &skip), 1);
	memcpy(BUF, newaddr_v6_own, sizeof(newaddr_v6_own));
	assert_int_equal(linkmon_parse(BUF, sizeof(newaddr_v6_own), &skip), 0);
	skip.ifindex = 0;
	assert_int_equal(linkmon_parse(BUF, sizeof(newaddr_v6_own), &skip), 1);
}

static size_t build_mixed(void)
{
	size_t n = 0;

	n += put_link(BUF + n, RTM_NEWLINK, 7, IFF_UP, OWN, 0);                       /* 0, learns 7 */
	n += put_addr(BUF + n, RTM_NEWADDR, AF_INET6, RT_SCOPE_UNIVERSE, 7, NULL);    /* 0 */
	n += put_addr(BUF + n, RTM_NEWADDR, AF_INET6, RT_SCOPE_LINK, 3, NULL);        /* 0 */
	n += put_addr(BUF + n, RTM_NEWADDR, AF_INET, RT_SCOPE_UNIVERSE, 3, "eth0");   /* 1 */
	n += put_bare(BUF + n, NLMSG_NOOP);                                           /* 0 */
	n += put_link(BUF + n, RTM_NEWLINK, 3, IFF_UP, "eth0", 0);                    /* 1 */
	n += put_addr(BUF + n, RTM_DELADDR, AF_INET6, RT_SCOPE_UNIVERSE, 3, NULL);    /* 1 */
	return n;
}

static void test_vpnd_linkmon_multi(void **state)
{
	struct linkmon_skip skip = { .ifname = OWN };
	size_t n = build_mixed();

	assert_int_equal(linkmon_parse(BUF, n, &skip), 3);
	assert_int_equal(skip.ifindex, 7);
	/* Only irrelevant ones together: nothing. */
	n = 0;
	n += put_link(BUF + n, RTM_NEWLINK, 1, IFF_LOOPBACK, "lo", 0);
	n += put_addr(BUF + n, RTM_NEWADDR, AF_INET, RT_SCOPE_HOST, 1, "lo");
	n += put_addr(BUF + n, RTM_NEWADDR, AF_INET6, RT_SCOPE_LINK, 3, NULL);
	assert_int_equal(parse(n), 0);
	/* The last message may lack its padding. */
	n = put_addr(BUF, RTM_NEWADDR, AF_INET, RT_SCOPE_UNIVERSE, 3, "eth0");
	n += put_link(BUF + n, RTM_NEWLINK, 3, IFF_UP, "eth0", 0);
	((struct nlmsghdr *)BUF)->nlmsg_len -= 3;   /* label "eth0\0" has 3 bytes of padding */
	assert_int_equal(parse(n), 2);
}

static void test_vpnd_linkmon_truncated(void **state)
{
	size_t n = build_mixed(), cut;
	int rc;

	/* Every prefix: malformed, or a message boundary with fewer events. */
	for (cut = 0; cut < n; cut++) {
		struct linkmon_skip skip = { .ifname = OWN };

		rc = linkmon_parse(BUF, cut, &skip);
		assert_true(rc == -EBADMSG || (rc >= 0 && rc <= 3));
	}
	assert_int_equal(parse(10), -EBADMSG);   /* less than a header */
}

static void test_vpnd_linkmon_malformed(void **state)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)BUF;
	struct nlattr *a;
	size_t n;

	/* lengths out of bounds: past the end, shorter than a header, and 2^31 + 80 (which
	 * mnl_nlmsg_ok would let through) */
	n = put_addr(BUF, RTM_NEWADDR, AF_INET, RT_SCOPE_UNIVERSE, 3, "eth0");
	nlh->nlmsg_len = (uint32_t)n + 4;
	assert_int_equal(parse(n), -EBADMSG);
	nlh->nlmsg_len = 8;
	assert_int_equal(parse(n), -EBADMSG);
	/* (what follows would read as empty attributes all the way, should it be read) */
	for (size_t i = n / 4; i < sizeof(words) / 4; i++)
		words[i] = 4;
	nlh->nlmsg_len = 0x80000000u + (uint32_t)n;
	assert_int_equal(parse(n), -EBADMSG);
	memset(words, 0, sizeof(words));
	/* a good message, then a broken one: the whole datagram is suspect */
	n = put_addr(BUF, RTM_NEWADDR, AF_INET, RT_SCOPE_UNIVERSE, 3, "eth0");
	n += put_addr(BUF + n, RTM_NEWADDR, AF_INET, RT_SCOPE_UNIVERSE, 3, "eth0");
	assert_int_equal(parse(n - 4), -EBADMSG);
	/* payload shorter than ifaddrmsg / ifinfomsg */
	n = put_bare(BUF, RTM_NEWADDR);
	nlh->nlmsg_len += 4;
	assert_int_equal(parse(n + 4), -EBADMSG);
	n = put_bare(BUF, RTM_DELLINK);
	nlh->nlmsg_len += 12;
	assert_int_equal(parse(n + 12), -EBADMSG);
	/* an attribute running past its message */
	n = put_addr(BUF, RTM_NEWADDR, AF_INET, RT_SCOPE_UNIVERSE, 3, "eth0");
	a = (struct nlattr *)(BUF + MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct ifaddrmsg)));
	a->nla_len = 200;
	assert_int_equal(parse(n), -EBADMSG);
	a->nla_len = 2;   /* shorter than its own header */
	assert_int_equal(parse(n), -EBADMSG);
	/* bytes left over that make no attribute */
	n = put_addr(BUF, RTM_NEWADDR, AF_INET6, RT_SCOPE_UNIVERSE, 3, NULL);
	memset(BUF + n, 0, 4);
	nlh->nlmsg_len += 2;
	assert_int_equal(parse(n + 4), -EBADMSG);
	/* names: not NUL-terminated, longer than IFNAMSIZ, empty */
	n = put_link(BUF, RTM_NEWLINK, 3, IFF_UP, "eth0", 0);
	a = (struct nlattr *)(BUF + MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct ifinfomsg)));
	assert_int_equal(mnl_attr_get_type(a), IFLA_IFNAME);
	((char *)mnl_attr_get_payload(a))[4] = 'X';
	assert_int_equal(parse(n), -EBADMSG);
	n = put_link(BUF, RTM_NEWLINK, 3, IFF_UP, "a-name-longer-than-ifnamsiz", 0);
	assert_int_equal(parse(n), -EBADMSG);
	n = put_addr(BUF, RTM_NEWADDR, AF_INET, RT_SCOPE_UNIVERSE, 3, NULL);
	mnl_attr_put(nlh, IFA_LABEL, 0, "");
	assert_int_equal(parse(nlh->nlmsg_len), -EBADMSG);
}

static void test_vpnd_linkmon_garbage(void **state)
{
	uint32_t x = 0x9e3779b9u;

	for (int round = 0; round < 20000; round++) {
		struct linkmon_skip skip = { .ifname = OWN };
		size_t len = (size_t)(round % 300);
		int rc;

		for (size_t i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			BUF[i] = (uint8_t)x;
		}
		/* a plausible header now and then, so the payload parsers see garbage too */
		if (round % 2 && len >= 16) {
			((struct nlmsghdr *)BUF)->nlmsg_len = (uint32_t)(len - round % 8);
			((struct nlmsghdr *)BUF)->nlmsg_type = (uint16_t)(RTM_NEWLINK + round % 8);
		}
		rc = linkmon_parse(BUF, len, &skip);
		assert_true(rc == -EBADMSG || (rc >= 0 && (size_t)rc <= len / 16));
		assert_true(skip.ifindex >= 0);
	}
}

static void test_vpnd_linkmon_bad_args(void **state)
{
	struct linkmon_skip skip = { .ifname = OWN };
	size_t n = put_addr(BUF, RTM_NEWADDR, AF_INET, RT_SCOPE_UNIVERSE, 3, "eth0");

	assert_int_equal(linkmon_parse(NULL, 16, &skip), -EINVAL);
	assert_int_equal(linkmon_parse(NULL, 0, &skip), 0);
	assert_int_equal(linkmon_parse(BUF, n, NULL), -EINVAL);
	memmove(BUF + 1, BUF, n);
	assert_int_equal(linkmon_parse(BUF + 1, n, &skip), -EINVAL);   /* unaligned */
	memset(skip.ifname, 'x', sizeof(skip.ifname));                 /* no NUL */
	assert_int_equal(linkmon_parse(BUF, 0, &skip), -EINVAL);
}

/* -- the watch, in a private network namespace -- */

struct watch {
	uv_loop_t loop;
	struct linkmon lm, other;
	struct netif *nif;
	unsigned next;        /* the next address to add on lo */
	int reports, other_reports;
	uint64_t first_report_ms;
	uv_timer_t stream;
	int streamed, reports_during_stream;
};

static int in_private_netns(void)
{
	static int done, ok;

	if (!done) {
		done = 1;
		ok = !unshare(CLONE_NEWNET) || !unshare(CLONE_NEWUSER | CLONE_NEWNET);
	}
	return ok;
}

static void on_report(struct linkmon *lm, void *arg)
{
	struct watch *w = arg;

	if (!w->reports++)
		w->first_report_ms = uv_now(&w->loop);
}

static void on_other_report(struct linkmon *lm, void *arg)
{
	((struct watch *)arg)->other_reports++;
}

/* 192.0.2.N/32 on lo: an address of global scope (lo is never a candidate, but the
 * filter cannot know a link's flags from an address message). */
static void add_addr(struct watch *w)
{
	struct in_addr a;
	unsigned k = w->next++;

	a.s_addr = htonl(0xc0000200u + (k & 0xff) + ((k >> 8) << 16));   /* 192.{0+}.2.x */
	assert_int_equal(netif_addr_add(w->nif, 1, AF_INET, &a, 32), 0);
}

static void on_deadline(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

/* Runs the loop until *counter reaches want (counter NULL: for the whole time), or ms
 * have passed. */
static void run(struct watch *w, const int *counter, int want, unsigned ms)
{
	uv_timer_t t;
	int expired = 0;

	uv_update_time(&w->loop);
	uv_timer_init(&w->loop, &t);
	t.data = &expired;
	uv_timer_start(&t, on_deadline, ms, 0);
	while (!expired && (!counter || *counter < want))
		uv_run(&w->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&w->loop, UV_RUN_NOWAIT);
}

#define run_until(w, counter, want, ms) run((w), (counter), (want), (ms))
#define run_for(w, ms) run((w), NULL, 0, (ms))

static int watch_setup(void **state)
{
	struct watch *w;

	if (!in_private_netns())
		return 0;
	w = calloc(1, sizeof(*w));
	assert_non_null(w);
	assert_int_equal(uv_loop_init(&w->loop), 0);
	assert_int_equal(netif_open(&w->nif), 0);
	assert_int_equal(linkmon_init(&w->lm, &w->loop, OWN, on_report, w), 0);
	*state = w;
	return 0;
}

static int watch_teardown(void **state)
{
	struct watch *w = *state;

	if (!w)
		return 0;
	linkmon_close(&w->lm);
	linkmon_close(&w->other);
	/* Every handle closes: nothing of linkmon's is left on the loop. */
	assert_int_equal(uv_run(&w->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&w->loop), 0);
	netif_close(w->nif);
	free(w);
	return 0;
}

#define NEED_NETNS(w) do { if (!(w)) skip(); } while (0)

static void test_vpnd_linkmon_burst_debounced(void **state)
{
	struct watch *w = *state;
	uint64_t t0;

	NEED_NETNS(w);
	uv_update_time(&w->loop);
	t0 = uv_now(&w->loop);
	for (int i = 0; i < 50; i++)
		add_addr(w);
	run_until(w, &w->reports, 1, 5000);
	assert_int_equal(w->reports, 1);
	assert_true(w->first_report_ms - t0 >= LINKMON_DEBOUNCE_MS);
	assert_true(w->lm.events >= 50 || w->lm.overruns > 0);
	run_for(w, 2 * LINKMON_DEBOUNCE_MS);
	assert_int_equal(w->reports, 1);   /* one burst, one report */
}

static void on_stream(uv_timer_t *t)
{
	struct watch *w = t->data;

	add_addr(w);
	if (++w->streamed == 20) {
		w->reports_during_stream = w->reports;
		uv_timer_stop(t);
	}
}

static void test_vpnd_linkmon_stream_capped(void **state)
{
	struct watch *w = *state;

	NEED_NETNS(w);
	/* an event every 100 ms for 2 s: without the cap nothing would be reported until
	 * the stream stops */
	uv_timer_init(&w->loop, &w->stream);
	w->stream.data = w;
	uv_timer_start(&w->stream, on_stream, 100, 100);
	while (w->streamed < 20)
		uv_run(&w->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&w->stream, NULL);
	assert_true(w->reports_during_stream >= 1);
	/* and the stream's tail is reported once it is quiet */
	run_until(w, &w->reports, w->reports_during_stream + 1, 3000);
	assert_true(w->reports > w->reports_during_stream);
	assert_int_equal(w->lm.failures, 0);
}

static void test_vpnd_linkmon_own_ignored(void **state)
{
	struct watch *w = *state;

	NEED_NETNS(w);
	/* Two watches: one that takes lo for vpnd's own interface, one that does not. */
	linkmon_close(&w->lm);
	run_for(w, 10);
	assert_int_equal(linkmon_init(&w->lm, &w->loop, "lo", on_report, w), 0);
	assert_int_equal(w->lm.skip.ifindex, 1);   /* it exists already */
	assert_int_equal(linkmon_init(&w->other, &w->loop, NULL, on_other_report, w), 0);
	add_addr(w);
	run_until(w, &w->other_reports, 1, 5000);
	assert_int_equal(w->other_reports, 1);
	run_for(w, LINKMON_DEBOUNCE_MS);
	assert_int_equal(w->reports, 0);
	assert_int_equal(w->lm.events, 0);
}

static void test_vpnd_linkmon_overrun(void **state)
{
	struct watch *w = *state;
	int small = 1;   /* the kernel's minimum */

	NEED_NETNS(w);
	assert_int_equal(setsockopt(w->lm.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	for (int i = 0; i < 200; i++)
		add_addr(w);
	run_until(w, &w->reports, 1, 5000);
	assert_int_equal(w->reports, 1);
	assert_true(w->lm.overruns >= 1);
	assert_int_equal(w->lm.failures, 0);
	/* and the watch goes on */
	run_for(w, LINKMON_MAX_DELAY_MS);
	w->reports = 0;
	add_addr(w);
	run_until(w, &w->reports, 1, 5000);
	assert_int_equal(w->reports, 1);
}

static void test_vpnd_linkmon_socket_fails(void **state)
{
	struct watch *w = *state;
	unsigned long events;
	int p[2];

	NEED_NETNS(w);
	/* The descriptor turns into something that is not a netlink socket and is readable:
	 * the watch fails, reports (anything may have been missed), reopens, goes on. */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_true(dup2(p[0], w->lm.fd) == w->lm.fd);
	close(p[0]);
	close(p[1]);
	uv_poll_start(&w->lm.poll, UV_READABLE, w->lm.poll.poll_cb);
	run_until(w, &w->reports, 1, 5000);
	assert_int_equal(w->reports, 1);
	assert_int_equal(w->lm.failures, 1);
	assert_int_equal(w->lm.polling, 0);
	run_for(w, LINKMON_REOPEN_MIN_MS + 200);
	assert_int_equal(w->lm.polling, 1);
	run_for(w, LINKMON_MAX_DELAY_MS);   /* the reopen's own report */
	events = w->lm.events;
	w->reports = 0;
	add_addr(w);
	run_until(w, &w->reports, 1, 5000);
	assert_int_equal(w->reports, 1);
	assert_true(w->lm.events > events);
	assert_int_equal(w->lm.failures, 1);
}

static void test_vpnd_linkmon_no_callback_after_close(void **state)
{
	struct watch *w = *state;

	NEED_NETNS(w);
	add_addr(w);
	/* read the event (it arms the debounce), then close before the debounce fires */
	run_for(w, 20);
	assert_int_equal(w->lm.pending, 1);
	linkmon_close(&w->lm);
	linkmon_close(&w->lm);   /* twice is fine */
	run_for(w, LINKMON_MAX_DELAY_MS + 100);
	assert_int_equal(w->reports, 0);
}

static void test_vpnd_linkmon_init_bad_args(void **state)
{
	struct linkmon lm;
	uv_loop_t loop;

	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(linkmon_init(&lm, &loop, "a-name-longer-than-ifnamsiz", on_report, NULL),
			 -EINVAL);
	linkmon_close(&lm);   /* no-op after a failed init */
	assert_int_equal(linkmon_init(&lm, &loop, OWN, NULL, NULL), -EINVAL);
	linkmon_close(&lm);
	memset(&lm, 0, sizeof(lm));
	linkmon_close(&lm);   /* and on a zeroed one */
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vpnd_linkmon_relevant),
		cmocka_unit_test(test_vpnd_linkmon_irrelevant),
		cmocka_unit_test(test_vpnd_linkmon_own_interface),
		cmocka_unit_test(test_vpnd_linkmon_captured),
		cmocka_unit_test(test_vpnd_linkmon_multi),
		cmocka_unit_test(test_vpnd_linkmon_truncated),
		cmocka_unit_test(test_vpnd_linkmon_malformed),
		cmocka_unit_test(test_vpnd_linkmon_garbage),
		cmocka_unit_test(test_vpnd_linkmon_bad_args),
		cmocka_unit_test(test_vpnd_linkmon_init_bad_args),
		cmocka_unit_test_setup_teardown(test_vpnd_linkmon_burst_debounced, watch_setup,
						watch_teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_linkmon_stream_capped, watch_setup,
						watch_teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_linkmon_own_ignored, watch_setup,
						watch_teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_linkmon_overrun, watch_setup, watch_teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_linkmon_socket_fails, watch_setup,
						watch_teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_linkmon_no_callback_after_close, watch_setup,
						watch_teardown),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
