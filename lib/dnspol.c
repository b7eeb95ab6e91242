/* dnspol.c - the DNS policy's syntax (meshvpn/dnspol.h): names, servers, records and
 * tags, checked the same way where coord takes them from an admin and where vpnd takes
 * them from coord. Pure, no I/O. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "meshvpn/dnspol.h"

static int label_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int dnspol_name_canon(const char *in, char *out, size_t size)
{
	size_t len = strlen(in), label = 0;

	if (len && in[len - 1] == '.')
		len--;
	if (!len || len > DNSPOL_NAME_MAX || len >= size)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c == '.') {
			/* empty label, or one ending in '-' */
			if (!label || out[i - 1] == '-')
				return -EINVAL;
			label = 0;
		} else {
			if (!label_char(c) || (!label && c == '-') || ++label > 63)
				return -EINVAL;
		}
		out[i] = c;
	}
	if (!label || out[len - 1] == '-')   /* "a.b..": an empty last label */
		return -EINVAL;
	out[len] = 0;
	return 0;
}

/* The address part: "192.0.2.1", "192.0.2.1:53", "[2001:db8::1]", "[2001:db8::1]:53",
 * len bytes of s, parsed by lib/addr.c with def_port added when there is none. */
static int parse_addr(const char *s, size_t len, uint16_t def_port, struct addr_port *a)
{
	char buf[ADDR_TEXT_LEN + 8];
	int has_port;

	if (!len || len >= ADDR_TEXT_LEN)
		return -EINVAL;
	if (s[0] == '[')
		has_port = s[len - 1] != ']';
	else
		has_port = memchr(s, ':', len) != NULL;
	snprintf(buf, sizeof(buf), "%.*s", (int)len, s);
	if (!has_port)
		snprintf(buf + len, sizeof(buf) - len, ":%u", def_port);
	return addr_parse(buf, strlen(buf), 0, a);
}

int dnspol_server_parse(const char *in, int allow_tls, struct dnspol_server *out, char *canon,
			size_t size)
{
	const char *s = in, *hash = NULL;
	char addr[ADDR_TEXT_LEN];
	size_t len;

	memset(out, 0, sizeof(*out));
	if (!strncmp(s, "tls://", 6)) {
		if (!allow_tls)
			return -EINVAL;
		s += 6;
		out->tls = 1;
		hash = strchr(s, '#');
		if (!hash || dnspol_name_canon(hash + 1, out->tls_name, sizeof(out->tls_name)))
			goto bad;
	}
	len = hash ? (size_t)(hash - s) : strlen(s);
	if (parse_addr(s, len, out->tls ? DNSPOL_TLS_PORT : DNSPOL_PORT, &out->addr))
		goto bad;
	if (canon) {
		if (addr_format(&out->addr, addr, sizeof(addr)))
			goto bad;
		if ((size_t)snprintf(canon, size, "%s%s%s%s", out->tls ? "tls://" : "", addr,
				     out->tls ? "#" : "", out->tls_name) >= size)
			goto bad;
	}
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

static const struct { int type; const char *name; } rr_names[] = {
	{ DNSPOL_RR_A, "A" }, { DNSPOL_RR_AAAA, "AAAA" }, { DNSPOL_RR_CNAME, "CNAME" },
	{ DNSPOL_RR_TXT, "TXT" },
};

int dnspol_rr_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(rr_names) / sizeof(rr_names[0]); i++)
		if (!strcasecmp(s, rr_names[i].name))
			return rr_names[i].type;
	return 0;
}

const char *dnspol_rr_name(int type)
{
	for (size_t i = 0; i < sizeof(rr_names) / sizeof(rr_names[0]); i++)
		if (rr_names[i].type == type)
			return rr_names[i].name;
	return "";
}

int dnspol_value_canon(int type, const char *in, char *out, size_t size)
{
	unsigned char ip[16];
	size_t len = strlen(in);

	switch (type) {
	case DNSPOL_RR_A:
		if (inet_pton(AF_INET, in, ip) != 1 || !inet_ntop(AF_INET, ip, out, (socklen_t)size))
			return -EINVAL;
		return 0;
	case DNSPOL_RR_AAAA:
		if (inet_pton(AF_INET6, in, ip) != 1 || !inet_ntop(AF_INET6, ip, out, (socklen_t)size))
			return -EINVAL;
		return 0;
	case DNSPOL_RR_CNAME:
		return dnspol_name_canon(in, out, size);
	case DNSPOL_RR_TXT:
		if (!len || len > DNSPOL_TXT_MAX || len >= size)
			return -EINVAL;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)in[i] < 0x20 || (unsigned char)in[i] > 0x7e)
				return -EINVAL;
		memcpy(out, in, len + 1);
		return 0;
	default:
		return -EINVAL;
	}
}

int dnspol_tag_valid(const char *s)
{
	size_t len = strlen(s);

	if (len <= 4 || len > DNSPOL_TAG_MAX || strncmp(s, "tag:", 4))
		return 0;
	for (const char *p = s + 4; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return 0;
	return 1;
}
