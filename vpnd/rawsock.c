/* rawsock.c - sharing WireGuard's UDP port through raw sockets (see rawsock.h): the pure
 * parsers and BPF filter builder, and the IPv4/IPv6 raw sockets on a libuv loop.
 *
 * What the kernel hands a SOCK_RAW IPPROTO_UDP socket, checked here in a namespace:
 * AF_INET delivers (and its filter sees from offset 0) the IPv4 header; AF_INET6 delivers,
 * and its filter sees from offset 0, the UDP header (a filter reading the IPv6 header's
 * next-header byte at 6 matched nothing, one reading the UDP destination port at 2
 * matched), and recvfrom's sin6_port is 0. Both see packets after reassembly, so the
 * IPv4 fragment check is belt and braces. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "meshvpn/disco.h"
#include "meshvpn/log.h"
#include "meshvpn/stun.h"
#include "rawsock.h"

#define UDP_HDR 8
#define IP4_MIN_HDR 20
#define RAWSOCK_BUF 2048
#define RAWSOCK_BURST 64             /* datagrams per readable event: the loop stays fair */
#define FILTER_MAX 32
#define DISCO_MIN (DISCO_HEADER_LEN + DISCO_MAC_LEN)
/* "MVDISC" as a big-endian word and half-word, as the filter loads them */
#define DISCO_W0 0x4D564449u         /* "MVDI" */
#define DISCO_H1 0x5343u             /* "SC" */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The payload's kind: STUN (two zero bits, the cookie, a whole header) or disco (the
 * magic, room for header and MAC), else -ENOMSG. */
static int payload_kind(const uint8_t *p, size_t len, enum rawsock_kind *kind)
{
	if (len >= STUN_HEADER_LEN && !(p[0] & 0xc0) && rd32(p + 4) == STUN_MAGIC_COOKIE) {
		*kind = RAWSOCK_STUN;
		return 0;
	}
	if (len >= DISCO_MIN && !memcmp(p, DISCO_MAGIC, DISCO_MAGIC_LEN)) {
		*kind = RAWSOCK_DISCO;
		return 0;
	}
	return -ENOMSG;
}

/* From the UDP header on (len bytes, exactly the datagram): length, port, payload. */
static int parse_udp(const uint8_t *u, size_t len, uint16_t port, struct rawsock_pkt *out)
{
	if (len < UDP_HDR || rd16(u + 4) != len)
		return -EBADMSG;
	if (rd16(u + 2) != port)
		return -ENOMSG;
	if (payload_kind(u + UDP_HDR, len - UDP_HDR, &out->kind))
		return -ENOMSG;
	out->src.port = rd16(u);
	out->dst.port = port;
	out->payload = u + UDP_HDR;
	out->len = len - UDP_HDR;
	return 0;
}

int rawsock_parse_ip4(const uint8_t *p, size_t len, uint16_t port, struct rawsock_pkt *out)
{
	size_t ihl, total;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len < IP4_MIN_HDR || (p[0] >> 4) != 4)
		return -EBADMSG;
	ihl = (size_t)(p[0] & 0xf) * 4;
	total = rd16(p + 2);
	/* The kernel trims link-layer padding, so a datagram is exactly its total length. */
	if (ihl < IP4_MIN_HDR || ihl > len || total != len || total < ihl)
		return -EBADMSG;
	if (p[9] != IPPROTO_UDP || (rd16(p + 6) & 0x3fff))
		return -ENOMSG;                  /* not UDP, or a fragment (MF or an offset) */
	rc = parse_udp(p + ihl, total - ihl, port, out);
	if (rc) {
		memset(out, 0, sizeof(*out));
		return rc;
	}
	out->src.family = AF_INET;
	memcpy(&out->src.v4, p + 12, 4);
	out->dst.family = AF_INET;
	memcpy(&out->dst.v4, p + 16, 4);
	return 0;
}

int rawsock_parse_udp6(const uint8_t *p, size_t len, const struct addr_port *src,
		       uint16_t port, struct rawsock_pkt *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (!src || src->family != AF_INET6)
		return -EBADMSG;
	rc = parse_udp(p, len, port, out);
	if (rc) {
		memset(out, 0, sizeof(*out));
		return rc;
	}
	out->src.family = AF_INET6;
	out->src.scope_id = src->scope_id;
	out->src.v6 = src->v6;
	out->dst.family = AF_INET6;
	return 0;
}

/* A tiny assembler: jumps name ACCEPT or DROP (the program's last two instructions) or
 * fall through (0); filter_end resolves them once the body's length is known. */
#define TO_ACCEPT 0xff
#define TO_DROP 0xfe

struct filter_asm {
	struct sock_filter f[FILTER_MAX];
	size_t n;
};

static void fa_stmt(struct filter_asm *a, uint16_t code, uint32_t k)
{
	a->f[a->n++] = (struct sock_filter)BPF_STMT(code, k);
}

static void fa_jump(struct filter_asm *a, uint16_t code, uint32_t k, uint8_t jt, uint8_t jf)
{
	a->f[a->n++] = (struct sock_filter)BPF_JUMP(code, k, jt, jf);
}

static uint8_t fa_target(uint8_t t, size_t from, size_t accept)
{
	if (t == TO_ACCEPT)
		return (uint8_t)(accept - from - 1);
	if (t == TO_DROP)
		return (uint8_t)(accept + 1 - from - 1);
	return t;
}

/* Appends ACCEPT (the whole packet) and DROP and resolves the jumps to them. */
static void fa_end(struct filter_asm *a)
{
	size_t accept = a->n, i;

	for (i = 0; i < accept; i++) {
		if (BPF_CLASS(a->f[i].code) != BPF_JMP || BPF_OP(a->f[i].code) == BPF_JA)
			continue;
		a->f[i].jt = fa_target(a->f[i].jt, i, accept);
		a->f[i].jf = fa_target(a->f[i].jf, i, accept);
	}
	fa_stmt(a, BPF_RET | BPF_K, 0xffff);
	fa_stmt(a, BPF_RET | BPF_K, 0);
}

/* Destination port and payload, X holding the UDP header's offset. A load past the
 * packet ends a program with 0 (drop), so short packets need no test of their own. */
static void filter_udp(struct filter_asm *a, uint16_t port)
{
	fa_stmt(a, BPF_LD | BPF_H | BPF_IND, 2);
	fa_jump(a, BPF_JMP | BPF_JEQ | BPF_K, port, 0, TO_DROP);
	fa_stmt(a, BPF_LD | BPF_B | BPF_IND, UDP_HDR);
	/* STUN's first two bits are 0; the disco magic's are not */
	fa_jump(a, BPF_JMP | BPF_JSET | BPF_K, 0xc0, 2, 0);
	fa_stmt(a, BPF_LD | BPF_W | BPF_IND, UDP_HDR + 4);
	fa_jump(a, BPF_JMP | BPF_JEQ | BPF_K, STUN_MAGIC_COOKIE, TO_ACCEPT, TO_DROP);
	fa_stmt(a, BPF_LD | BPF_W | BPF_IND, UDP_HDR);
	fa_jump(a, BPF_JMP | BPF_JEQ | BPF_K, DISCO_W0, 0, TO_DROP);
	fa_stmt(a, BPF_LD | BPF_H | BPF_IND, UDP_HDR + 4);
	fa_jump(a, BPF_JMP | BPF_JEQ | BPF_K, DISCO_H1, TO_ACCEPT, TO_DROP);
}

int rawsock_filter(int family, uint16_t port, struct sock_filter *prog, size_t max)
{
	struct filter_asm a = { .n = 0 };

	if (family == AF_INET) {
		fa_stmt(&a, BPF_LD | BPF_B | BPF_ABS, 9);
		fa_jump(&a, BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, TO_DROP);
		/* MF or a fragment offset: only a first fragment has the UDP header */
		fa_stmt(&a, BPF_LD | BPF_H | BPF_ABS, 6);
		fa_jump(&a, BPF_JMP | BPF_JSET | BPF_K, 0x3fff, TO_DROP, 0);
		/* X = 4 * IHL: where UDP starts, with IP options or without */
		fa_stmt(&a, BPF_LDX | BPF_B | BPF_MSH, 0);
	} else if (family == AF_INET6) {
		/* the UDP header is at 0 (see the top of this file) */
		fa_stmt(&a, BPF_LDX | BPF_W | BPF_IMM, 0);
	} else {
		return -EAFNOSUPPORT;
	}
	filter_udp(&a, port);
	fa_end(&a);
	if (a.n > max)
		return -ENOSPC;
	memcpy(prog, a.f, a.n * sizeof(a.f[0]));
	return (int)a.n;
}

/* One's-complement sum of len bytes, big-endian words, added to sum. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += rd16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

int rawsock_build_udp(uint16_t sport, const struct addr_port *dst, const struct in_addr *src4,
		      const void *payload, size_t len, uint8_t *out, size_t size)
{
	size_t total = UDP_HDR + len;
	uint8_t pseudo[12];
	uint16_t sum;

	if (dst->family != AF_INET && dst->family != AF_INET6)
		return -EAFNOSUPPORT;
	if (len > 0xffff - UDP_HDR || total > size)
		return -ENOSPC;
	out[0] = (uint8_t)(sport >> 8);
	out[1] = (uint8_t)sport;
	out[2] = (uint8_t)(dst->port >> 8);
	out[3] = (uint8_t)dst->port;
	out[4] = (uint8_t)(total >> 8);
	out[5] = (uint8_t)total;
	out[6] = out[7] = 0;
	if (len)
		memmove(out + UDP_HDR, payload, len);
	if (dst->family == AF_INET && src4) {
		memcpy(pseudo, src4, 4);
		memcpy(pseudo + 4, &dst->v4, 4);
		pseudo[8] = 0;
		pseudo[9] = IPPROTO_UDP;
		pseudo[10] = out[4];
		pseudo[11] = out[5];
		sum = csum_fold(csum_add(csum_add(0, pseudo, sizeof(pseudo)), out, total));
		if (!sum)
			sum = 0xffff;            /* 0 would mean "no checksum" */
		out[6] = (uint8_t)(sum >> 8);
		out[7] = (uint8_t)sum;
	}
	return (int)total;
}

/* -- the sockets -- */

struct rawsock_side {
	struct rawsock *rs;
	int fd;                          /* -1: this family is not open */
	int polled;                      /* poll is initialised: closing it closes fd */
	uv_poll_t poll;
};

struct rawsock {
	uv_loop_t *loop;
	uint16_t port;
	rawsock_cb cb;
	void *arg;
	struct rawsock_stats stats;
	struct rawsock_side v4, v6;
	int closing, open_handles;
};

static void side_deliver(struct rawsock_side *s, const uint8_t *buf, size_t n,
			 const struct sockaddr_in6 *from, const struct in6_addr *dst6)
{
	struct rawsock *rs = s->rs;
	struct rawsock_pkt pkt;
	struct addr_port src;
	int rc;

	if (s == &rs->v4) {
		rc = rawsock_parse_ip4(buf, n, rs->port, &pkt);
	} else {
		memset(&src, 0, sizeof(src));
		if (addr_from_sockaddr((const struct sockaddr *)from, &src))
			rc = -EBADMSG;
		else
			rc = rawsock_parse_udp6(buf, n, &src, rs->port, &pkt);
		if (!rc && dst6)
			pkt.dst.v6 = *dst6;
	}
	if (rc) {
		rs->stats.bad++;
		return;
	}
	rs->stats.received++;
	rs->cb(rs, &pkt, rs->arg);
}

/* The IPv6 destination address from an IPV6_PKTINFO control message, if any. */
static const struct in6_addr *pktinfo_dst(struct msghdr *msg)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c))
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo)))
			return &((const struct in6_pktinfo *)(void *)CMSG_DATA(c))->ipi6_addr;
	return NULL;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	struct rawsock_side *s = h->data;
	uint8_t buf[RAWSOCK_BUF];
	union {
		struct cmsghdr align;
		uint8_t b[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	} ctl;
	struct sockaddr_in6 from;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg;
	ssize_t n;
	int i;

	(void)events;
	if (status < 0) {
		log_warn("rawsock poll failed", "error=\"%s\"", uv_strerror(status));
		return;
	}
	for (i = 0; i < RAWSOCK_BURST && !s->rs->closing; i++) {
		memset(&msg, 0, sizeof(msg));
		msg.msg_name = &from;
		msg.msg_namelen = sizeof(from);
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.b;
		msg.msg_controllen = sizeof(ctl.b);
		n = recvmsg(s->fd, &msg, MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("rawsock recvmsg failed", "error=\"%s\"", strerror(errno));
			return;
		}
		if (msg.msg_flags & MSG_TRUNC) {
			s->rs->stats.bad++;      /* bigger than any STUN or disco message */
			continue;
		}
		side_deliver(s, buf, (size_t)n, &from, s == &s->rs->v6 ? pktinfo_dst(&msg) : NULL);
	}
}

static int side_open(struct rawsock *rs, struct rawsock_side *s, int family)
{
	struct sock_filter prog[FILTER_MAX];
	struct sock_fprog fprog;
	int n, one = 1, off = 6, rc;

	s->rs = rs;
	s->fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	if (s->fd < 0)
		return -errno;
	n = rawsock_filter(family, rs->port, prog, FILTER_MAX);
	if (n < 0) {
		rc = n;
		goto err_close;
	}
	fprog.len = (unsigned short)n;
	fprog.filter = prog;
	if (setsockopt(s->fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)))
		goto err_errno;
	/* IPv6 makes the UDP checksum mandatory: the kernel computes it at offset 6 on send
	 * (and, RFC 3542 3.1, discards received datagrams whose checksum is wrong). */
	if (family == AF_INET6) {
		if (setsockopt(s->fd, IPPROTO_IPV6, IPV6_CHECKSUM, &off, sizeof(off)))
			goto err_errno;
		if (setsockopt(s->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)))
			log_debug("rawsock: no IPV6_RECVPKTINFO", "error=\"%s\"", strerror(errno));
	}
	rc = uv_poll_init(rs->loop, &s->poll, s->fd);
	if (rc)
		goto err_close;
	s->poll.data = s;
	s->polled = 1;
	rs->open_handles++;
	rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
	if (rc)
		return rc;                       /* the handle is closed with the rest */
	return 0;
err_errno:
	rc = -errno;
err_close:
	close(s->fd);
	s->fd = -1;
	return rc;
}

static void on_closed(uv_handle_t *h)
{
	struct rawsock_side *s = h->data;
	struct rawsock *rs = s->rs;

	close(s->fd);
	s->fd = -1;
	if (--rs->open_handles == 0)
		free(rs);
}

int rawsock_open(uv_loop_t *loop, uint16_t port, rawsock_cb cb, void *arg, struct rawsock **out)
{
	struct rawsock *rs;
	int rc;

	*out = NULL;
	if (!port || !cb)
		return -EINVAL;
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	rs->loop = loop;
	rs->port = port;
	rs->cb = cb;
	rs->arg = arg;
	rs->v4.fd = rs->v6.fd = -1;
	rc = side_open(rs, &rs->v4, AF_INET);
	if (rc)
		goto err;
	rc = side_open(rs, &rs->v6, AF_INET6);
	if (rc == -EAFNOSUPPORT) {
		log_info("rawsock: no IPv6 on this system", NULL);
	} else if (rc) {
		goto err;
	}
	*out = rs;
	return 0;
err:
	rawsock_close(rs);
	return rc;
}

int rawsock_send(struct rawsock *rs, const struct addr_port *dst, const void *payload, size_t len)
{
	struct rawsock_side *s = dst->family == AF_INET ? &rs->v4 : &rs->v6;
	struct sockaddr_storage ss;
	uint8_t buf[RAWSOCK_BUF];
	socklen_t sl;
	ssize_t n;
	int total;

	if ((dst->family != AF_INET && dst->family != AF_INET6) || s->fd < 0)
		return -EAFNOSUPPORT;
	/* The source is the route's: unknown here, so the IPv4 checksum is 0 (allowed). */
	total = rawsock_build_udp(rs->port, dst, NULL, payload, len, buf, sizeof(buf));
	if (total < 0)
		return total;
	addr_to_sockaddr(dst, &ss);
	/* The raw socket's "port" is the protocol: it must be 0 (or IPPROTO_UDP) for IPv6. */
	if (dst->family == AF_INET6) {
		((struct sockaddr_in6 *)&ss)->sin6_port = 0;
		sl = sizeof(struct sockaddr_in6);
	} else {
		((struct sockaddr_in *)&ss)->sin_port = 0;
		sl = sizeof(struct sockaddr_in);
	}
	n = sendto(s->fd, buf, (size_t)total, MSG_DONTWAIT, (struct sockaddr *)&ss, sl);
	if (n < 0) {
		rs->stats.send_errors++;
		return -errno;
	}
	rs->stats.sent++;
	return 0;
}

void rawsock_get_stats(const struct rawsock *rs, struct rawsock_stats *out)
{
	*out = rs->stats;
}

void rawsock_close(struct rawsock *rs)
{
	struct rawsock_side *sides[2];
	int i, handles;

	if (!rs || rs->closing)
		return;
	sides[0] = &rs->v4;
	sides[1] = &rs->v6;
	rs->closing = 1;
	handles = rs->open_handles;     /* on_closed may free rs once the last is closed */
	for (i = 0; i < 2; i++) {
		if (sides[i]->polled)
			uv_close((uv_handle_t *)&sides[i]->poll, on_closed);
		else if (sides[i]->fd >= 0)
			close(sides[i]->fd);
	}
	if (!handles)
		free(rs);
}
