/* stun.c - STUN Binding codec (RFC 8489 / RFC 5389, RFC 3489 classic requests; see stun.h). */
#include "meshvpn/stun.h"

#include <errno.h>
#include <string.h>

#define FINGERPRINT_XOR 0x5354554Eu
#define ATTR_HDR 4
#define FAMILY_V4 0x01
#define FAMILY_V6 0x02

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static size_t pad4(size_t n) { return (n + 3) & ~(size_t)3; }

uint32_t stun_crc32(const uint8_t *p, size_t len)
{
	/* Reflected 0xEDB88320, a nibble at a time: a 64-byte table, no init step. */
	static const uint32_t t[16] = {
		0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
		0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
		0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
	};
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		crc = (crc >> 4) ^ t[crc & 15];
		crc = (crc >> 4) ^ t[crc & 15];
	}
	return ~crc;
}

/* Comprehension-required attributes we understand (or may safely ignore for Binding).
 * RESPONSE-ADDRESS (0x0002) and RESPONSE-PORT (0x0027) ask for the answer to go
 * elsewhere, which a public server must not do: they stay unknown. */
static int attr_known(uint16_t type)
{
	switch (type) {
	case 0x0001: case 0x0004: case 0x0005: case 0x0006: case 0x0007: case 0x0008:
	case 0x0009: case 0x000A: case 0x000B:                 /* RFC 3489 / 5389 */
	case 0x0014: case 0x0015:                              /* REALM, NONCE */
	case 0x001C: case 0x001D: case 0x001E:                 /* RFC 8489 auth */
	case 0x0020:                                           /* XOR-MAPPED-ADDRESS */
	case 0x0024: case 0x0025:                              /* ICE PRIORITY, USE-CANDIDATE */
		return 1;
	default:
		return 0;
	}
}

/* An address attribute; xor is the 16 header bytes after the length (cookie + txid). */
static int parse_address(const uint8_t *v, size_t len, const uint8_t *xor,
			 struct addr_port *out)
{
	uint16_t port;

	if (len < 4)
		return -EBADMSG;
	port = get16(v + 2);
	memset(out, 0, sizeof(*out));
	if (v[1] == FAMILY_V4 && len == 8) {
		uint8_t *a = (uint8_t *)&out->v4;

		out->family = AF_INET;
		memcpy(a, v + 4, 4);
		for (int i = 0; xor && i < 4; i++)
			a[i] ^= xor[i];
	} else if (v[1] == FAMILY_V6 && len == 20) {
		out->family = AF_INET6;
		memcpy(out->v6.s6_addr, v + 4, 16);
		for (int i = 0; xor && i < 16; i++)
			out->v6.s6_addr[i] ^= xor[i];
	} else {
		return -EBADMSG;
	}
	out->port = xor ? (uint16_t)(port ^ get16(xor)) : port;
	return 0;
}

static void note_unknown(struct stun_msg *m, uint16_t type)
{
	for (unsigned i = 0; i < m->n_unknown; i++)
		if (m->unknown[i] == type)
			return;
	if (m->n_unknown < STUN_MAX_UNKNOWN)
		m->unknown[m->n_unknown++] = type;
}

/* One attribute; only the first of each address kind counts (RFC 8489 section 14). */
static int parse_attr(const uint8_t *msg, uint16_t type, const uint8_t *v, size_t len,
		      struct stun_msg *m)
{
	switch (type) {
	case STUN_ATTR_XOR_MAPPED_ADDRESS:
	case STUN_ATTR_XOR_MAPPED_ADDRESS_OPT:
		if (m->flags & STUN_HAS_XOR_MAPPED)
			return 0;
		m->flags |= STUN_HAS_XOR_MAPPED;
		return parse_address(v, len, msg + 4, &m->xor_mapped);
	case STUN_ATTR_MAPPED_ADDRESS:
		if (m->flags & STUN_HAS_MAPPED)
			return 0;
		m->flags |= STUN_HAS_MAPPED;
		return parse_address(v, len, NULL, &m->mapped);
	case STUN_ATTR_ERROR_CODE:
		if (len < 4 || (v[2] & 7) < 3 || (v[2] & 7) > 6 || v[3] > 99)
			return -EBADMSG;
		if (!(m->flags & STUN_HAS_ERROR_CODE))
			m->error_code = (uint16_t)((v[2] & 7) * 100 + v[3]);
		m->flags |= STUN_HAS_ERROR_CODE;
		return 0;
	case STUN_ATTR_CHANGE_REQUEST:
		if (len != 4)
			return -EBADMSG;
		if (get32(v) & 0x6)           /* change IP / change port: we have one of each */
			note_unknown(m, type);
		return 0;
	case STUN_ATTR_FINGERPRINT:
		if (len != 4 || get32(v) != (stun_crc32(msg, (size_t)(v - ATTR_HDR - msg)) ^ FINGERPRINT_XOR))
			return -EBADMSG;
		m->flags |= STUN_HAS_FINGERPRINT;
		return 0;
	default:
		if (type < 0x8000 && !attr_known(type))
			note_unknown(m, type);
		return 0;
	}
}

int stun_parse(const uint8_t *p, size_t len, struct stun_msg *out)
{
	size_t off = STUN_HEADER_LEN;
	int rc = -EBADMSG;

	memset(out, 0, sizeof(*out));
	if (!p || len < STUN_HEADER_LEN || (p[0] & 0xc0))
		goto bad;
	out->type = get16(p);
	out->length = get16(p + 2);
	if ((out->length & 3) || out->length != len - STUN_HEADER_LEN)
		goto bad;
	memcpy(out->id, p + 4, STUN_ID_LEN);
	if (get32(p + 4) != STUN_MAGIC_COOKIE) {
		if (out->type != STUN_BINDING_REQUEST)
			goto bad;     /* only a 3489 client's request is served without the cookie */
		out->flags |= STUN_CLASSIC;
	}
	while (off < len) {
		uint16_t type, alen;

		if (out->flags & STUN_HAS_FINGERPRINT)
			goto bad;     /* nothing may follow FINGERPRINT */
		if (len - off < ATTR_HDR || ++out->n_attrs > STUN_MAX_ATTRS)
			goto bad;
		type = get16(p + off);
		alen = get16(p + off + 2);
		if (pad4(alen) > len - off - ATTR_HDR)
			goto bad;
		if (parse_attr(p, type, p + off + ATTR_HDR, alen, out))
			goto bad;
		off += ATTR_HDR + pad4(alen);
	}
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return rc;
}

/* Appends an attribute header; value space (padded, zeroed) must be there already. */
static uint8_t *attr_start(uint8_t *at, uint16_t type, uint16_t len)
{
	put16(at, type);
	put16(at + 2, len);
	memset(at + ATTR_HDR, 0, pad4(len));
	return at + ATTR_HDR;
}

static size_t put_address(uint8_t *at, uint16_t type, const struct addr_port *a,
			  const uint8_t *xor)
{
	size_t alen = a->family == AF_INET ? 4 : 16;
	const uint8_t *ip = a->family == AF_INET ? (const uint8_t *)&a->v4 : a->v6.s6_addr;
	uint8_t *v = attr_start(at, type, (uint16_t)(4 + alen));

	v[1] = a->family == AF_INET ? FAMILY_V4 : FAMILY_V6;
	put16(v + 2, xor ? (uint16_t)(a->port ^ get16(xor)) : a->port);
	for (size_t i = 0; i < alen; i++)
		v[4 + i] = (uint8_t)(ip[i] ^ (xor ? xor[i] : 0));
	return ATTR_HDR + 4 + alen;
}

/* Writes the header for body_len bytes of attributes. */
static void put_header(uint8_t *buf, uint16_t type, size_t body_len, const uint8_t id[STUN_ID_LEN])
{
	put16(buf, type);
	put16(buf + 2, (uint16_t)body_len);
	memcpy(buf + 4, id, STUN_ID_LEN);
}

/* Appends FINGERPRINT to a message of len bytes whose header already counts it. */
static size_t put_fingerprint(uint8_t *buf, size_t len)
{
	uint8_t *v = attr_start(buf + len, STUN_ATTR_FINGERPRINT, 4);

	put32(v, stun_crc32(buf, len) ^ FINGERPRINT_XOR);
	return len + ATTR_HDR + 4;
}

int stun_build_binding_request(const uint8_t txid[STUN_TXID_LEN], int with_fingerprint,
			       uint8_t *buf, size_t size)
{
	uint8_t id[STUN_ID_LEN];
	size_t body = with_fingerprint ? ATTR_HDR + 4 : 0;

	if (size < STUN_HEADER_LEN + body)
		return -ENOSPC;
	put32(id, STUN_MAGIC_COOKIE);
	memcpy(id + 4, txid, STUN_TXID_LEN);
	put_header(buf, STUN_BINDING_REQUEST, body, id);
	if (with_fingerprint)
		return (int)put_fingerprint(buf, STUN_HEADER_LEN);
	return STUN_HEADER_LEN;
}

int stun_build_binding_response(const struct stun_msg *req, const struct addr_port *mapped,
				uint8_t *buf, size_t size)
{
	size_t addr_len, body, len = STUN_HEADER_LEN;
	int classic = !!(req->flags & STUN_CLASSIC);
	int fp = !!(req->flags & STUN_HAS_FINGERPRINT);

	if (mapped->family != AF_INET && mapped->family != AF_INET6)
		return -EINVAL;
	addr_len = ATTR_HDR + 4 + (mapped->family == AF_INET ? 4 : 16);
	body = addr_len * (classic ? 2 : 1) + (fp ? ATTR_HDR + 4 : 0);
	if (size < STUN_HEADER_LEN + body)
		return -ENOSPC;
	put_header(buf, STUN_BINDING_SUCCESS, body, req->id);
	if (classic)
		len += put_address(buf + len, STUN_ATTR_MAPPED_ADDRESS, mapped, NULL);
	len += put_address(buf + len, classic ? STUN_ATTR_XOR_MAPPED_ADDRESS_OPT :
			   STUN_ATTR_XOR_MAPPED_ADDRESS, mapped, req->id);
	if (fp)
		len = put_fingerprint(buf, len);
	return (int)len;
}

int stun_build_unknown_response(const struct stun_msg *req, uint8_t *buf, size_t size)
{
	static const char reason[] = "Unknown Attribute";
	size_t err_len = 4 + sizeof(reason) - 1, list_len = 2 * (size_t)req->n_unknown;
	int fp = !!(req->flags & STUN_HAS_FINGERPRINT);
	size_t body = ATTR_HDR + pad4(err_len) + ATTR_HDR + pad4(list_len) + (fp ? ATTR_HDR + 4 : 0);
	size_t len = STUN_HEADER_LEN;
	uint8_t *v;

	if (req->n_unknown > STUN_MAX_UNKNOWN)
		return -EINVAL;
	if (size < STUN_HEADER_LEN + body)
		return -ENOSPC;
	put_header(buf, STUN_BINDING_ERROR, body, req->id);
	v = attr_start(buf + len, STUN_ATTR_ERROR_CODE, (uint16_t)err_len);
	v[2] = 4;
	v[3] = 20;
	memcpy(v + 4, reason, sizeof(reason) - 1);
	len += ATTR_HDR + pad4(err_len);
	v = attr_start(buf + len, STUN_ATTR_UNKNOWN_ATTRIBUTES, (uint16_t)list_len);
	for (unsigned i = 0; i < req->n_unknown; i++)
		put16(v + 2 * i, req->unknown[i]);
	len += ATTR_HDR + pad4(list_len);
	if (fp)
		len = put_fingerprint(buf, len);
	return (int)len;
}

int stun_response_mapped(const struct stun_msg *msg, struct addr_port *out)
{
	memset(out, 0, sizeof(*out));
	if (msg->type != STUN_BINDING_SUCCESS)
		return -EPROTO;
	if (msg->flags & STUN_HAS_XOR_MAPPED)
		*out = msg->xor_mapped;
	else if (msg->flags & STUN_HAS_MAPPED)
		*out = msg->mapped;
	else
		return -ENOENT;
	return 0;
}
