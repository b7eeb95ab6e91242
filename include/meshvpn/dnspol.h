/* dnspol.h - the syntax of the DNS policy, one set of rules for coord (which checks what
 * an admin gives) and vpnd (which parses what coord sends): DNS names, servers
 * ("ADDR[:PORT]", "tls://ADDR[:PORT]#NAME"), record types and values, tags. Pure. */
#ifndef MESHVPN_DNSPOL_H
#define MESHVPN_DNSPOL_H

#include <stddef.h>

#include "meshvpn/addr.h"

#define DNSPOL_NAME_MAX 253            /* text of a name without the trailing dot */
#define DNSPOL_TXT_MAX 255             /* one TXT character-string */
#define DNSPOL_TAG_MAX 63              /* "tag:x" */
/* "tls://" + "[v6]:port" + "#" + name, NUL */
#define DNSPOL_SERVER_TEXT (6 + ADDR_TEXT_LEN + 1 + DNSPOL_NAME_MAX + 1)
#define DNSPOL_PORT 53
#define DNSPOL_TLS_PORT 853

struct dnspol_server {
	struct addr_port addr;
	int tls;                                /* DNS over TLS to tls_name */
	char tls_name[DNSPOL_NAME_MAX + 1];
};

enum dnspol_rr {
	DNSPOL_RR_A = 1,
	DNSPOL_RR_CNAME = 5,
	DNSPOL_RR_TXT = 16,
	DNSPOL_RR_AAAA = 28,
};

/* A DNS name: dot-separated labels of 1-63 letters, digits, '_' and '-' (not first or
 * last), 253 bytes at most, one trailing dot allowed. out (DNSPOL_NAME_MAX + 1 bytes)
 * gets it lowercased without the dot. 0 or -EINVAL. */
int dnspol_name_canon(const char *in, char *out, size_t size);
/* "ADDR[:PORT]" (IPv4, or IPv6 in brackets; port 53 when absent, never 0) and, with
 * allow_tls, "tls://ADDR[:PORT]#NAME" (port 853 when absent; NAME is the certificate's
 * name). canon (DNSPOL_SERVER_TEXT bytes, may be NULL) gets the text with the port, so
 * one server has one spelling. 0 or -EINVAL. */
int dnspol_server_parse(const char *in, int allow_tls, struct dnspol_server *out, char *canon,
			size_t size);
/* "A", "AAAA", "CNAME", "TXT" (any case) -> enum dnspol_rr, or 0; and back ("" for 0). */
int dnspol_rr_parse(const char *s);
const char *dnspol_rr_name(int type);
/* A record's value for its type: an IPv4 / IPv6 address, a DNS name, or printable ASCII
 * of 1-255 bytes; canonical text in out (DNSPOL_TXT_MAX + 1 bytes hold any). 0 or
 * -EINVAL. */
int dnspol_value_canon(int type, const char *in, char *out, size_t size);
/* "tag:x": lowercase letters, digits and '-', 63 bytes at most. */
int dnspol_tag_valid(const char *s);

#endif
