/* test_vpnd_rawsock.c - vpnd's raw-socket port sharer: the IPv4 and IPv6 parsers on built
 * packets (STUN and disco, IP options, fragments, another port, every truncation, bad
 * lengths and versions, other payloads), the BPF programs (shape, and run through
 * tests/bpf_classic.h: they pass what the parser takes and drop what it must not see),
 * the UDP builder against a checksum computed elsewhere, and the sockets themselves on
 * loopback in a private network namespace (skipped without the privilege). */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "../bpf_classic.h"
#include "meshvpn/disco.h"
#include "meshvpn/stun.h"
#include "vpnd/rawsock.h"

#define PORT 41641
#define DISCO_MIN (DISCO_HEADER_LEN + DISCO_MAC_LEN)

static const uint8_t txid[STUN_TXID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

static size_t stun_payload(uint8_t *p)
{
	int n = stun_build_binding_request(txid, 0, p, 64);

	assert_int_equal(n, STUN_HEADER_LEN);
	return (size_t)n;
}

static size_t disco_payload(uint8_t *p, size_t len)
{
	memset(p, 0xa5, len);
	memcpy(p, DISCO_MAGIC, DISCO_MAGIC_LEN);
	return len;
}

/* An IPv4 packet 192.0.2.1:sport -> 198.51.100.7:dport with ihl 32-bit words (options
 * filled with NOPs), the flags/fragment field frag, and payload. Its length. */
static size_t ip4(uint8_t *b, unsigned ihl, uint16_t frag, uint16_t sport, uint16_t dport,
		  const uint8_t *payload, size_t plen)
{
	struct addr_port dst = { .family = AF_INET, .port = dport };
	size_t hl = ihl * 4, total;
	struct in_addr src;
	int n;

	inet_pton(AF_INET, "192.0.2.1", &src);
	inet_pton(AF_INET, "198.51.100.7", &dst.v4);
	memset(b, 0, hl);
	memset(b + 20, 1, hl > 20 ? hl - 20 : 0);
	b[0] = (uint8_t)(0x40 | ihl);
	b[6] = (uint8_t)(frag >> 8);
	b[7] = (uint8_t)frag;
	b[8] = 64;
	b[9] = IPPROTO_UDP;
	memcpy(b + 12, &src, 4);
	memcpy(b + 16, &dst.v4, 4);
	n = rawsock_build_udp(sport, &dst, &src, payload, plen, b + hl, 2048 - hl);
	assert_true(n > 0);
	total = hl + (size_t)n;
	b[2] = (uint8_t)(total >> 8);
	b[3] = (uint8_t)total;
	return total;
}

static void assert_src_dst4(const struct rawsock_pkt *pkt, uint16_t sport)
{
	char s[ADDR_TEXT_LEN], want[ADDR_TEXT_LEN];

	snprintf(want, sizeof(want), "192.0.2.1:%u", sport);
	assert_int_equal(addr_format(&pkt->src, s, sizeof(s)), 0);
	assert_string_equal(s, want);
	assert_int_equal(addr_format(&pkt->dst, s, sizeof(s)), 0);
	assert_string_equal(s, "198.51.100.7:41641");
}

/* Parses a copy in a buffer of exactly len bytes: ASan sees any read past it. */
static int parse4(const uint8_t *b, size_t len, struct rawsock_pkt *pkt)
{
	uint8_t *c = malloc(len ? len : 1);
	int rc;

	assert_non_null(c);
	memcpy(c, b, len);
	rc = rawsock_parse_ip4(c, len, PORT, pkt);
	if (!rc)
		pkt->payload = b + (pkt->payload - c);    /* as if parsed in place */
	free(c);
	return rc;
}

static void test_vpnd_rawsock_ip4_good(void **state)
{
	uint8_t b[2048], p[128];
	struct rawsock_pkt pkt;
	size_t n, plen;

	(void)state;
	plen = stun_payload(p);
	n = ip4(b, 5, 0x4000 /* DF: not a fragment */, 3478, PORT, p, plen);
	assert_int_equal(parse4(b, n, &pkt), 0);
	assert_int_equal(pkt.kind, RAWSOCK_STUN);
	assert_ptr_equal(pkt.payload, b + 28);
	assert_int_equal(pkt.len, plen);
	assert_src_dst4(&pkt, 3478);

	/* IP options: IHL 7 puts UDP at 28, the payload at 36 */
	plen = disco_payload(p, DISCO_MIN);
	n = ip4(b, 7, 0, 3478, PORT, p, plen);
	assert_int_equal(parse4(b, n, &pkt), 0);
	assert_int_equal(pkt.kind, RAWSOCK_DISCO);
	assert_ptr_equal(pkt.payload, b + 36);
	assert_int_equal(pkt.len, DISCO_MIN);
	assert_src_dst4(&pkt, 3478);
	n = ip4(b, 15, 0, 3478, PORT, p, plen);         /* the most options there can be */
	assert_int_equal(parse4(b, n, &pkt), 0);
	assert_ptr_equal(pkt.payload, b + 68);
}

static void test_vpnd_rawsock_ip4_refused(void **state)
{
	uint8_t b[2048], p[128];
	struct rawsock_pkt pkt;
	size_t n, i, plen = stun_payload(p);

	(void)state;
	/* fragments: MF, an offset, both */
	n = ip4(b, 5, 0x2000, 3478, PORT, p, plen);
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
	n = ip4(b, 5, 0x0001, 3478, PORT, p, plen);
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
	n = ip4(b, 5, 0x3fff, 3478, PORT, p, plen);
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
	/* another port, another protocol */
	n = ip4(b, 5, 0, 3478, PORT + 1, p, plen);
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
	n = ip4(b, 5, 0, 3478, PORT, p, plen);
	b[9] = IPPROTO_TCP;
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
	/* every truncation of a good packet, down to nothing */
	n = ip4(b, 6, 0, 3478, PORT, p, plen);
	for (i = 0; i < n; i++)
		assert_int_equal(parse4(b, i, &pkt), -EBADMSG);
	assert_int_equal(parse4(b, n, &pkt), 0);
	/* bad version, IHL, total and UDP lengths */
	b[0] = 0x66;
	assert_int_equal(parse4(b, n, &pkt), -EBADMSG);
	b[0] = 0x44;
	assert_int_equal(parse4(b, n, &pkt), -EBADMSG);
	b[0] = 0x4f;                                      /* 60 bytes of header: past UDP */
	assert_int_equal(parse4(b, 40, &pkt), -EBADMSG);
	b[0] = 0x46;
	b[3]++;                                           /* total one more than we have */
	assert_int_equal(parse4(b, n, &pkt), -EBADMSG);
	b[3] -= 2;                                        /* one less: trailing bytes */
	assert_int_equal(parse4(b, n, &pkt), -EBADMSG);
	b[3]++;
	b[24 + 5]++;                                      /* UDP length too long */
	assert_int_equal(parse4(b, n, &pkt), -EBADMSG);
	b[24 + 5] -= 2;                                   /* too short */
	assert_int_equal(parse4(b, n, &pkt), -EBADMSG);
	b[24 + 4] = 0;
	b[24 + 5] = 4;                                    /* shorter than its header */
	assert_int_equal(parse4(b, n, &pkt), -EBADMSG);
	for (i = 0; i < sizeof(pkt); i++)                 /* a refusal leaves *out zeroed */
		assert_int_equal(((uint8_t *)&pkt)[i], 0);
}

static void test_vpnd_rawsock_other_payloads(void **state)
{
	uint8_t b[2048], p[128];
	struct rawsock_pkt pkt;
	size_t n, plen = stun_payload(p);

	(void)state;
	n = ip4(b, 5, 0, 3478, PORT, (const uint8_t *)"just a datagram, nothing more", 29);
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
	n = ip4(b, 5, 0, 3478, PORT, NULL, 0);            /* empty */
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
	p[0] |= 0x80;                                     /* STUN's top bits must be zero */
	n = ip4(b, 5, 0, 3478, PORT, p, plen);
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
	p[0] &= 0x3f;
	p[5] ^= 1;                                        /* no cookie */
	n = ip4(b, 5, 0, 3478, PORT, p, plen);
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
	p[5] ^= 1;
	n = ip4(b, 5, 0, 3478, PORT, p, STUN_HEADER_LEN - 1);   /* cookie, but no whole header */
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
	plen = disco_payload(p, DISCO_MIN - 1);           /* magic, no room for header + MAC */
	n = ip4(b, 5, 0, 3478, PORT, p, plen);
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
	plen = disco_payload(p, DISCO_MIN);
	p[5] = 'Z';                                       /* "MVDISZ" */
	n = ip4(b, 5, 0, 3478, PORT, p, plen);
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
	/* a WireGuard handshake initiation (type 1) of its real size */
	memset(p, 0, 128);
	p[0] = 1;
	n = ip4(b, 5, 0, 51820, PORT, p, 128);
	assert_int_equal(parse4(b, n, &pkt), -ENOMSG);
}

/* An IPv6 raw socket's view: the UDP header first. */
static size_t udp6(uint8_t *b, uint16_t sport, uint16_t dport, const uint8_t *payload, size_t plen)
{
	struct addr_port dst = { .family = AF_INET6, .port = dport };
	int n = rawsock_build_udp(sport, &dst, NULL, payload, plen, b, 2048);

	assert_true(n > 0);
	return (size_t)n;
}

static void test_vpnd_rawsock_udp6(void **state)
{
	struct addr_port src = { .family = AF_INET6, .port = 0, .scope_id = 3 };
	uint8_t b[2048], p[128];
	struct rawsock_pkt pkt;
	char s[ADDR_TEXT_LEN];
	size_t n, i, plen = stun_payload(p);

	(void)state;
	inet_pton(AF_INET6, "fe80::1", &src.v6);
	n = udp6(b, 3478, PORT, p, plen);
	assert_int_equal(rawsock_parse_udp6(b, n, &src, PORT, &pkt), 0);
	assert_int_equal(pkt.kind, RAWSOCK_STUN);
	assert_ptr_equal(pkt.payload, b + 8);
	assert_int_equal(pkt.len, plen);
	assert_int_equal(addr_format(&pkt.src, s, sizeof(s)), 0);
	assert_string_equal(s, "[fe80::1%3]:3478");       /* the port from the UDP header */
	assert_int_equal(pkt.dst.family, AF_INET6);
	assert_int_equal(pkt.dst.port, PORT);

	plen = disco_payload(p, DISCO_MIN);
	n = udp6(b, 41000, PORT, p, plen);
	assert_int_equal(rawsock_parse_udp6(b, n, &src, PORT, &pkt), 0);
	assert_int_equal(pkt.kind, RAWSOCK_DISCO);
	assert_int_equal(pkt.src.port, 41000);

	assert_int_equal(rawsock_parse_udp6(b, n, &src, PORT + 1, &pkt), -ENOMSG);
	for (i = 0; i < n; i++)
		assert_int_equal(rawsock_parse_udp6(b, i, &src, PORT, &pkt), -EBADMSG);
	b[5]++;
	assert_int_equal(rawsock_parse_udp6(b, n, &src, PORT, &pkt), -EBADMSG);
	b[5]--;
	src.family = AF_INET;
	assert_int_equal(rawsock_parse_udp6(b, n, &src, PORT, &pkt), -EBADMSG);
	assert_int_equal(rawsock_parse_udp6(b, n, NULL, PORT, &pkt), -EBADMSG);
	src.family = AF_INET6;
	n = udp6(b, 3478, PORT, (const uint8_t *)"plain", 5);
	assert_int_equal(rawsock_parse_udp6(b, n, &src, PORT, &pkt), -ENOMSG);
}

static void assert_shape(const struct sock_filter *f, int n)
{
	int i;

	assert_true(n >= 2);
	assert_int_equal(f[n - 1].code, BPF_RET | BPF_K);
	assert_int_equal(f[n - 1].k, 0);
	assert_int_equal(f[n - 2].code, BPF_RET | BPF_K);
	assert_true(f[n - 2].k >= 2048);
	for (i = 0; i < n; i++)                             /* every jump lands inside */
		if (BPF_CLASS(f[i].code) == BPF_JMP)
			assert_true(i + 1 + f[i].jt < n && i + 1 + f[i].jf < n);
}

static void test_vpnd_rawsock_filter_shape(void **state)
{
	struct sock_filter f[64];
	int n;

	(void)state;
	n = rawsock_filter(AF_INET, PORT, f, 64);
	assert_int_equal(n, 17);
	assert_shape(f, n);
	assert_int_equal(f[4].code, BPF_LDX | BPF_B | BPF_MSH);   /* the real header length */
	assert_int_equal(rawsock_filter(AF_INET, PORT, f, 17), 17);
	assert_int_equal(rawsock_filter(AF_INET, PORT, f, 16), -ENOSPC);
	n = rawsock_filter(AF_INET6, PORT, f, 64);
	assert_int_equal(n, 13);
	assert_shape(f, n);
	assert_int_equal(rawsock_filter(AF_INET6, PORT, f, 12), -ENOSPC);
	assert_int_equal(rawsock_filter(AF_UNIX, PORT, f, 64), -EAFNOSUPPORT);
}

/* The filter (interpreted) agrees with the parser: what the parser takes passes, what
 * is not ours is dropped (bad lengths may pass the filter: the parser is the truth). */
static void test_vpnd_rawsock_filter_runs(void **state)
{
	struct sock_filter f4[32], f6[32];
	uint8_t b[2048], p[128];
	size_t n, plen;
	int n4 = rawsock_filter(AF_INET, PORT, f4, 32), n6 = rawsock_filter(AF_INET6, PORT, f6, 32);

	(void)state;
	plen = stun_payload(p);
	assert_true(bpf_run(f4, (size_t)n4, b, ip4(b, 5, 0, 3478, PORT, p, plen)) > 0);
	assert_true(bpf_run(f4, (size_t)n4, b, ip4(b, 9, 0, 3478, PORT, p, plen)) > 0);
	assert_int_equal(bpf_run(f4, (size_t)n4, b, ip4(b, 5, 0, 3478, PORT + 1, p, plen)), 0);
	assert_int_equal(bpf_run(f4, (size_t)n4, b, ip4(b, 5, 0x2000, 3478, PORT, p, plen)), 0);
	assert_int_equal(bpf_run(f4, (size_t)n4, b, ip4(b, 5, 0x0008, 3478, PORT, p, plen)), 0);
	n = ip4(b, 5, 0, 3478, PORT, p, plen);
	b[9] = IPPROTO_TCP;
	assert_int_equal(bpf_run(f4, (size_t)n4, b, n), 0);
	assert_int_equal(bpf_run(f4, (size_t)n4, b, 30), 0);          /* short: loads fail */
	assert_true(bpf_run(f6, (size_t)n6, b, udp6(b, 3478, PORT, p, plen)) > 0);
	assert_int_equal(bpf_run(f6, (size_t)n6, b, udp6(b, 3478, PORT - 1, p, plen)), 0);
	p[0] = 0x40;
	assert_int_equal(bpf_run(f4, (size_t)n4, b, ip4(b, 5, 0, 3478, PORT, p, plen)), 0);
	plen = disco_payload(p, DISCO_MIN);
	assert_true(bpf_run(f4, (size_t)n4, b, ip4(b, 6, 0, 3478, PORT, p, plen)) > 0);
	assert_true(bpf_run(f6, (size_t)n6, b, udp6(b, 3478, PORT, p, plen)) > 0);
	p[4] = 'X';                                                   /* "MVDIXC" */
	assert_int_equal(bpf_run(f4, (size_t)n4, b, ip4(b, 6, 0, 3478, PORT, p, plen)), 0);
	assert_int_equal(bpf_run(f6, (size_t)n6, b, udp6(b, 3478, PORT, p, plen)), 0);
	p[4] = 'S';
	p[2] = 'X';                                                   /* "MVXISC" */
	assert_int_equal(bpf_run(f6, (size_t)n6, b, udp6(b, 3478, PORT, p, plen)), 0);
	assert_int_equal(bpf_run(f6, (size_t)n6, b, udp6(b, 3478, PORT, (const uint8_t *)"hi", 2)), 0);
}

static void test_vpnd_rawsock_build_udp(void **state)
{
	/* 192.0.2.1:41641 -> 198.51.100.7:3478 "hello": checksum 0x1f86, computed with a
	 * separate implementation (Python, RFC 768 pseudo-header) */
	static const uint8_t want[] = { 0xa2, 0xa9, 0x0d, 0x96, 0x00, 0x0d, 0x1f, 0x86,
					'h', 'e', 'l', 'l', 'o' };
	struct addr_port dst = { .family = AF_INET, .port = 3478 };
	struct in_addr src;
	uint8_t out[64];

	(void)state;
	inet_pton(AF_INET, "192.0.2.1", &src);
	inet_pton(AF_INET, "198.51.100.7", &dst.v4);
	assert_int_equal(rawsock_build_udp(41641, &dst, &src, "hello", 5, out, sizeof(out)), 13);
	assert_memory_equal(out, want, sizeof(want));
	/* no source: checksum 0, which IPv4 allows */
	assert_int_equal(rawsock_build_udp(41641, &dst, NULL, "hello", 5, out, sizeof(out)), 13);
	assert_int_equal(out[6] | out[7], 0);
	assert_memory_equal(out + 8, "hello", 5);
	/* IPv6: 0, filled by the kernel (IPV6_CHECKSUM) */
	dst.family = AF_INET6;
	assert_int_equal(rawsock_build_udp(41641, &dst, &src, "hello", 5, out, sizeof(out)), 13);
	assert_int_equal(out[6] | out[7], 0);
	assert_int_equal(rawsock_build_udp(41641, &dst, NULL, "hello", 5, out, 12), -ENOSPC);
	assert_int_equal(rawsock_build_udp(41641, &dst, NULL, out, 65528, out, 64), -ENOSPC);
	assert_int_equal(rawsock_build_udp(41641, &dst, NULL, NULL, 0, out, 8), 8);
	dst.family = AF_UNIX;
	assert_int_equal(rawsock_build_udp(41641, &dst, NULL, "hello", 5, out, sizeof(out)),
			 -EAFNOSUPPORT);
}

/* -- the sockets, on loopback in a private network namespace -- */

struct loop_ctx {
	uv_loop_t loop;
	int got4, got6, other, timed_out;
	struct addr_port dst6;
};

static void on_raw(struct rawsock *rs, const struct rawsock_pkt *pkt, void *arg)
{
	struct loop_ctx *c = arg;

	(void)rs;
	if (pkt->kind == RAWSOCK_STUN && pkt->src.family == AF_INET && pkt->src.port == PORT) {
		c->got4++;
	} else if (pkt->kind == RAWSOCK_DISCO && pkt->src.family == AF_INET6 &&
		   pkt->src.port == PORT) {
		c->got6++;
		c->dst6 = pkt->dst;
	} else {
		c->other++;
	}
	if (c->got4 && c->got6)
		uv_stop(&c->loop);
}

static void on_deadline(uv_timer_t *t)
{
	((struct loop_ctx *)t->data)->timed_out = 1;
	uv_stop(t->loop);
}

static int loopback_netns(void)
{
	struct ifreq ifr;
	int fd, ok;

	if (unshare(CLONE_NEWNET))
		return 0;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	ok = fd >= 0 && !ioctl(fd, SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags |= IFF_UP;
	ok = ok && !ioctl(fd, SIOCSIFFLAGS, &ifr);
	if (fd >= 0)
		close(fd);
	return ok;
}

static void test_vpnd_rawsock_loopback(void **state)
{
	struct addr_port to4 = { .family = AF_INET, .port = PORT };
	struct addr_port to6 = { .family = AF_INET6, .port = PORT };
	struct sockaddr_in6 any = { .sin6_family = AF_INET6, .sin6_port = htons(PORT) };
	struct loop_ctx c = { .got4 = 0 };
	struct rawsock_stats st;
	struct rawsock *rs;
	uv_timer_t deadline;
	uint8_t p[128];
	int wg, rc;

	(void)state;
	if (!loopback_netns())
		skip();
	/* the stand-in WireGuard socket, so the port is taken as it will be */
	wg = socket(AF_INET6, SOCK_DGRAM, 0);
	assert_true(wg >= 0);
	assert_int_equal(bind(wg, (struct sockaddr *)&any, sizeof(any)), 0);
	uv_loop_init(&c.loop);
	rc = rawsock_open(&c.loop, PORT, on_raw, &c, &rs);
	if (rc == -EPERM) {
		close(wg);
		uv_loop_close(&c.loop);
		skip();
	}
	assert_int_equal(rc, 0);
	inet_pton(AF_INET, "127.0.0.1", &to4.v4);
	to6.v6 = in6addr_loopback;
	/* plain datagrams first: the filter must keep them from the callback */
	assert_int_equal(rawsock_send(rs, &to4, "plain", 5), 0);
	assert_int_equal(rawsock_send(rs, &to6, "plain", 5), 0);
	assert_int_equal(rawsock_send(rs, &to4, p, stun_payload(p)), 0);
	assert_int_equal(rawsock_send(rs, &to6, p, disco_payload(p, DISCO_MIN)), 0);
	to4.family = AF_UNIX;
	assert_int_equal(rawsock_send(rs, &to4, p, 10), -EAFNOSUPPORT);
	uv_timer_init(&c.loop, &deadline);
	deadline.data = &c;
	uv_timer_start(&deadline, on_deadline, 5000, 0);
	uv_run(&c.loop, UV_RUN_DEFAULT);
	assert_false(c.timed_out);
	assert_int_equal(c.got4, 1);
	assert_int_equal(c.got6, 1);
	assert_int_equal(c.other, 0);
	assert_int_equal(c.dst6.port, PORT);
	assert_memory_equal(&c.dst6.v6, &in6addr_loopback, 16);   /* from IPV6_PKTINFO */
	rawsock_get_stats(rs, &st);
	assert_int_equal(st.received, 2);
	assert_int_equal(st.bad, 0);
	assert_int_equal(st.sent, 4);
	rawsock_close(rs);
	uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(&c.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&c.loop), 0);
	close(wg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vpnd_rawsock_ip4_good),
		cmocka_unit_test(test_vpnd_rawsock_ip4_refused),
		cmocka_unit_test(test_vpnd_rawsock_other_payloads),
		cmocka_unit_test(test_vpnd_rawsock_udp6),
		cmocka_unit_test(test_vpnd_rawsock_filter_shape),
		cmocka_unit_test(test_vpnd_rawsock_filter_runs),
		cmocka_unit_test(test_vpnd_rawsock_build_udp),
		cmocka_unit_test(test_vpnd_rawsock_loopback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
