/* addr.h - addresses with a port, as text and parsed: "192.0.2.1:41641",
 * "[2001:db8::1]:41641", "[fe80::1%eth0]:51820", "host:port" for listeners. One parser
 * and one formatter for every program (coord, vpnd, relay). Pure, no I/O (a zone given as
 * an interface name is looked up with if_nametoindex). */
#ifndef MESHVPN_ADDR_H
#define MESHVPN_ADDR_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* "[" IPv6 "%" zone "]:" port, NUL: 45 + 2 + 1 + 10 + 1 + 5 + 1 */
#define ADDR_TEXT_LEN 72

/* An IP address and port kept parsed: what a netmap's endpoint, a path candidate or a
 * relay client's source is. Compare with addr_equal (the padding is zeroed by every
 * function here, so memcmp works too). */
struct addr_port {
	uint16_t family;                  /* AF_INET or AF_INET6; 0 = none */
	uint16_t port;                    /* host byte order */
	uint32_t scope_id;                /* IPv6 zone (interface index), 0 = none */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

enum addr_flags {
	ADDR_ZONE = 1U << 0,              /* accept "[fe80::1%eth0]" / "%3" */
	ADDR_PORT0 = 1U << 1,             /* accept port 0 */
};

/* Splits "host:port", "[v6]:port" or ":port" (host "" = every address) without resolving
 * the host: brackets only around something with a colon, no unbracketed IPv6, a port of
 * 1-5 digits up to 65535 (0 allowed), no spaces or controls. 0, -EINVAL, or -ENAMETOOLONG
 * when host_size cannot hold the host. */
int addr_split_hostport(const char *s, char *host, size_t host_size, uint16_t *port);
/* Parses an IP literal with a port: IPv4 bare, IPv6 in brackets; len bytes of s (no NUL
 * needed). Port 0 and a zone only with the flags. 0 or -EINVAL (*out zeroed). */
int addr_parse(const char *s, size_t len, unsigned flags, struct addr_port *out);
/* "192.0.2.1:41641" / "[2001:db8::1]:41641" / "[fe80::1%3]:41641". 0, -EINVAL for family
 * 0, -ENOSPC when size is too small (out is then "" or cut). */
int addr_format(const struct addr_port *a, char *out, size_t size);
/* Same family, address, port and zone. */
int addr_equal(const struct addr_port *a, const struct addr_port *b);
void addr_to_sockaddr(const struct addr_port *a, struct sockaddr_storage *ss);
/* From a sockaddr_in / sockaddr_in6: 0, or -EAFNOSUPPORT (*a zeroed). */
int addr_from_sockaddr(const struct sockaddr *sa, struct addr_port *a);

#endif
