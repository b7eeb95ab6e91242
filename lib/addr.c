/* addr.c - one parse and one format of addresses with ports (see addr.h). */
#include "meshvpn/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

int addr_split_hostport(const char *s, char *host, size_t host_size, uint16_t *port)
{
	const char *colon, *h, *p;
	size_t hlen;
	unsigned long v = 0;

	if (!s || !host || !host_size)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		if (!hlen || memchr(h, ':', hlen) == NULL)
			return -EINVAL;        /* brackets are for IPv6 literals only */
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;        /* none, or an unbracketed IPv6 address */
		h = s;
		hlen = (size_t)(colon - s);
	}
	p = colon + 1;
	if (!*p || strlen(p) > 5)
		return -EINVAL;
	for (const char *q = p; *q; q++) {
		if (*q < '0' || *q > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*q - '0');
	}
	if (v > 65535)
		return -EINVAL;
	for (size_t i = 0; i < hlen; i++)
		if ((unsigned char)h[i] <= ' ' || h[i] == '[' || h[i] == ']' || h[i] == '/')
			return -EINVAL;
	if (hlen >= host_size)
		return -ENAMETOOLONG;
	memcpy(host, h, hlen);
	host[hlen] = 0;
	*port = (uint16_t)v;
	return 0;
}

/* A zone after '%': an interface index, or a name looked up now. */
static int parse_zone(const char *z, uint32_t *scope)
{
	uint64_t v = 0;

	if (!*z || strlen(z) >= IF_NAMESIZE)
		return -EINVAL;
	if (z[0] >= '0' && z[0] <= '9') {
		for (const char *q = z; *q; q++) {
			if (*q < '0' || *q > '9' || v > UINT32_MAX / 10)
				return -EINVAL;
			v = v * 10 + (uint64_t)(*q - '0');
		}
		if (v > UINT32_MAX)
			return -EINVAL;
		*scope = (uint32_t)v;
		return 0;
	}
	*scope = if_nametoindex(z);
	return 0;
}

int addr_parse(const char *s, size_t len, unsigned flags, struct addr_port *out)
{
	char text[ADDR_TEXT_LEN], host[ADDR_TEXT_LEN];
	uint16_t port;
	char *zone;
	int bracket;

	memset(out, 0, sizeof(*out));
	if (!s || len >= sizeof(text) || memchr(s, 0, len))
		return -EINVAL;
	memcpy(text, s, len);
	text[len] = 0;
	bracket = text[0] == '[';
	if (addr_split_hostport(text, host, sizeof(host), &port) || !host[0] ||
	    (!port && !(flags & ADDR_PORT0)))
		return -EINVAL;
	if (!bracket) {
		if (inet_pton(AF_INET, host, &out->v4) != 1)
			goto bad;
		out->family = AF_INET;
		out->port = port;
		return 0;
	}
	zone = strchr(host, '%');
	if (zone) {
		*zone++ = 0;
		if (!(flags & ADDR_ZONE) || parse_zone(zone, &out->scope_id))
			goto bad;
	}
	if (inet_pton(AF_INET6, host, &out->v6) != 1)
		goto bad;
	out->family = AF_INET6;
	out->port = port;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

int addr_format(const struct addr_port *a, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN];
	int n;

	if (a->family == AF_INET) {
		inet_ntop(AF_INET, &a->v4, ip, sizeof(ip));
		n = snprintf(out, size, "%s:%u", ip, a->port);
	} else if (a->family == AF_INET6) {
		inet_ntop(AF_INET6, &a->v6, ip, sizeof(ip));
		if (a->scope_id)
			n = snprintf(out, size, "[%s%%%" PRIu32 "]:%u", ip, a->scope_id, a->port);
		else
			n = snprintf(out, size, "[%s]:%u", ip, a->port);
	} else {
		if (size)
			out[0] = 0;
		return -EINVAL;
	}
	return n < 0 || (size_t)n >= size ? -ENOSPC : 0;
}

int addr_equal(const struct addr_port *a, const struct addr_port *b)
{
	if (a->family != b->family || a->port != b->port)
		return 0;
	if (a->family == AF_INET)
		return a->v4.s_addr == b->v4.s_addr;
	if (a->family == AF_INET6)
		return a->scope_id == b->scope_id && !memcmp(&a->v6, &b->v6, sizeof(a->v6));
	return 1;
}

void addr_to_sockaddr(const struct addr_port *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(a->port);
		s4->sin_addr = a->v4;
	} else if (a->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(a->port);
		s6->sin6_addr = a->v6;
		s6->sin6_scope_id = a->scope_id;
	}
}

int addr_from_sockaddr(const struct sockaddr *sa, struct addr_port *a)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		a->family = AF_INET;
		a->port = ntohs(s4->sin_port);
		a->v4 = s4->sin_addr;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		a->family = AF_INET6;
		a->port = ntohs(s6->sin6_port);
		a->v6 = s6->sin6_addr;
		a->scope_id = s6->sin6_scope_id;
		return 0;
	}
	return -EAFNOSUPPORT;
}
