/* ipalloc.c - node addresses: IPv4 from 100.64.0.0/10 (RFC 6598, as Tailscale), IPv6
 * from the tailnet's ULA /48 (RFC 4193) with the IPv4 in the low 32 bits, so both are
 * stable for a node's life and unique by construction; and the names next to them: the
 * DNS label a hostname becomes, and hostnames cut on whole UTF-8 characters. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "coord.h"

#define CGNAT_BASE 0x64400000u   /* 100.64.0.0 */
#define CGNAT_SIZE (1u << 22)

static int is_reserved(uint32_t off)
{
	/* .0 network, the last address, and 100.100.100.100 (the in-VPN DNS resolver). */
	return off == 0 || off == CGNAT_SIZE - 1 || CGNAT_BASE + off == 0x64646464u;
}

int ipalloc_init(struct coord *co)
{
	co->ip_used = calloc(CGNAT_SIZE / 8, 1);
	co->ip_next = 1;
	return co->ip_used ? 0 : -ENOMEM;
}

static int used(const struct coord *co, uint32_t off)
{
	return co->ip_used[off >> 3] & (1u << (off & 7));
}

int ipalloc_mark(struct coord *co, uint32_t ip)
{
	uint32_t off = ip - CGNAT_BASE;

	if (ip < CGNAT_BASE || off >= CGNAT_SIZE || is_reserved(off))
		return -EINVAL;
	if (used(co, off))
		return -EEXIST;
	co->ip_used[off >> 3] |= (uint8_t)(1u << (off & 7));
	return 0;
}

int ipalloc_take(struct coord *co, uint32_t *ip)
{
	/* Next-fit: addresses of deleted nodes are not handed out again soon, so a stale
	 * peer config does not point at someone new. (Two instances taking the same next one
	 * at once: the loser's retry moves on, ipalloc_scatter.) */
	for (uint32_t i = 0; i < CGNAT_SIZE; i++) {
		uint32_t off = (co->ip_next + i) & (CGNAT_SIZE - 1);
		if (is_reserved(off) || used(co, off))
			continue;
		co->ip_used[off >> 3] |= (uint8_t)(1u << (off & 7));
		co->ip_next = off + 1;
		*ip = CGNAT_BASE + off;
		return 0;
	}
	return -ENOSPC;
}

/* Another instance took the address we picked a moment ago. Both walk next-fit from
 * the same place, so under a stream of registrations on both they keep picking the same
 * next address and the loser loses again; a random stride ahead breaks the step. */
void ipalloc_scatter(struct coord *co)
{
	co->ip_next = (co->ip_next + 1 + randombytes_uniform(1024)) & (CGNAT_SIZE - 1);
}

void ipalloc_release(struct coord *co, uint32_t ip)
{
	uint32_t off = ip - CGNAT_BASE;

	if (ip >= CGNAT_BASE && off < CGNAT_SIZE)
		co->ip_used[off >> 3] &= (uint8_t)~(1u << (off & 7));
}

void ipalloc_v6(const struct coord *co, uint32_t ipv4, uint8_t out[16])
{
	memset(out, 0, 16);
	memcpy(out, co->ula, 6);
	out[12] = (uint8_t)(ipv4 >> 24);
	out[13] = (uint8_t)(ipv4 >> 16);
	out[14] = (uint8_t)(ipv4 >> 8);
	out[15] = (uint8_t)ipv4;
}

void ip4_to_text(uint32_t ip, char *out, size_t size)
{
	snprintf(out, size, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

void ip6_to_text(const uint8_t ip[16], char *out, size_t size)
{
	char buf[INET6_ADDRSTRLEN];

	if (!inet_ntop(AF_INET6, ip, buf, sizeof(buf)))
		buf[0] = 0;
	snprintf(out, size, "%s", buf);
}

void coord_sanitize_label(const char *in, char *out, size_t size)
{
	size_t o = 0, max = size - 1 < 63 ? size - 1 : 63;

	for (const char *p = in; *p && o < max; p++) {
		char ch = *p;
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
			out[o++] = ch;
		else if (o && out[o - 1] != '-')
			out[o++] = '-';   /* '.', '_', ' ' and the rest become one '-' */
		if (ch == '.')
			break;            /* "laptop.example.com" → "laptop" */
	}
	while (o && out[o - 1] == '-')
		o--;
	out[o] = 0;
	if (!o) {
		snprintf(out, size, "node");
	} else if (strspn(out, "0123456789") == o) {
		/* "1" would read as node id 1 in every admin command. */
		char digits[64];
		snprintf(digits, sizeof(digits), "%s", out);
		snprintf(out, size, "node-%.*s", (int)(max > 5 ? max - 5 : 0), digits);
	}
}

/* Bytes of the UTF-8 character at p (RFC 3629: no overlongs, surrogates, or beyond
 * U+10FFFF), or 0 if it is not a whole valid one within n bytes. */
static size_t utf8_char_len(const unsigned char *p, size_t n)
{
	size_t len;
	unsigned min;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, min = 0x80;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, min = 0x800;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	unsigned cp = p[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void coord_clip_utf8(const char *in, size_t max, char *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t n = strlen(in), o = 0, len;

	while (o < n && (len = utf8_char_len(p + o, n - o)) && o + len <= max)
		o += len;
	memmove(out, in, o);
	out[o] = 0;
}
