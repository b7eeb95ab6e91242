/* fuzz_rawsock.c - vpnd/rawsock.c's parsers on arbitrary bytes, each input read both as
 * an IPv4 packet (rawsock_parse_ip4) and as what an IPv6 raw socket delivers
 * (rawsock_parse_udp6), for port 41641 and for the port the input itself names. Refusals
 * are -EBADMSG or -ENOMSG with *out zeroed; what parses points inside the input, names
 * the asked port, and passes the socket's BPF filter (run by tests/bpf_classic.h: a
 * filter that dropped what the parser takes would lose packets); its UDP header built
 * again from the parse reads the same. ASan catches any read past the input. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/bpf_classic.h"
#include "vpnd/rawsock.h"

#define PORT 41641

static void check_refused(int rc, const struct rawsock_pkt *pkt)
{
	static const struct rawsock_pkt zero;

	if ((rc != -EBADMSG && rc != -ENOMSG) || memcmp(pkt, &zero, sizeof(zero)))
		abort();
}

/* p..len is the packet, udp where its UDP header starts. */
static void check_taken(int family, const uint8_t *p, size_t len, const uint8_t *udp,
			uint16_t port, const struct rawsock_pkt *pkt)
{
	struct sock_filter f[64];
	uint8_t again[8 + 1];
	int n = rawsock_filter(family, port, f, 64);

	if (n <= 0 || pkt->payload != udp + 8 || pkt->payload + pkt->len != p + len ||
	    (pkt->kind != RAWSOCK_STUN && pkt->kind != RAWSOCK_DISCO) ||
	    pkt->src.family != family || pkt->dst.family != family || pkt->dst.port != port)
		abort();
	if (bpf_run(f, (size_t)n, p, len) <= 0)
		abort();
	if (rawsock_build_udp(pkt->src.port, &pkt->dst, NULL, NULL, 0, again, sizeof(again)) != 8 ||
	    memcmp(again, udp, 4))
		abort();
}

static void one_ip4(const uint8_t *p, size_t len, uint16_t port)
{
	struct rawsock_pkt pkt;
	int rc = rawsock_parse_ip4(p, len, port, &pkt);

	if (rc)
		check_refused(rc, &pkt);
	else
		check_taken(AF_INET, p, len, p + (p[0] & 0xf) * 4, port, &pkt);
}

static void one_udp6(const uint8_t *p, size_t len, uint16_t port)
{
	struct addr_port src = { .family = AF_INET6, .scope_id = 2 };
	struct rawsock_pkt pkt;
	int rc = rawsock_parse_udp6(p, len, &src, port, &pkt);

	if (rc) {
		check_refused(rc, &pkt);
		return;
	}
	check_taken(AF_INET6, p, len, p, port, &pkt);
	if (pkt.src.scope_id != 2)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);      /* exactly size: ASan sees overreads */
	size_t ihl;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	one_ip4(buf, size, PORT);
	one_udp6(buf, size, PORT);
	/* the ports the input names, so the fuzzer reaches the payload checks */
	ihl = size ? (size_t)(buf[0] & 0xf) * 4 : 0;
	if (ihl + 4 <= size)
		one_ip4(buf, size, (uint16_t)(buf[ihl + 2] << 8 | buf[ihl + 3]));
	if (size >= 4)
		one_udp6(buf, size, (uint16_t)(buf[2] << 8 | buf[3]));
	free(buf);
	return 0;
}
