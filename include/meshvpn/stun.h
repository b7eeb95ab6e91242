/* stun.h - STUN Binding messages (RFC 8489, which obsoletes RFC 5389; RFC 3489 "classic"
 * requests without the magic cookie for the server side): a pure codec, no I/O. The
 * relay's STUN server answers with it, vpnd's NAT traversal asks with it. */
#ifndef MESHVPN_STUN_H
#define MESHVPN_STUN_H

#include <stddef.h>
#include <stdint.h>

#include "meshvpn/addr.h"

#define STUN_HEADER_LEN 20
#define STUN_MAGIC_COOKIE 0x2112A442u
#define STUN_TXID_LEN 12                  /* RFC 5389/8489 transaction id */
#define STUN_ID_LEN 16                    /* header bytes 4..19: cookie + txid, or 3489's id */
#define STUN_MAX_ATTRS 32                 /* more is malformed: a Binding needs a handful */
#define STUN_MAX_UNKNOWN 8                /* unknown attributes reported (and listed in a 420) */
/* A response built here is at most this long (header, two addresses, fingerprint). */
#define STUN_RESPONSE_MAX 96

/* Message types: method 0x001 (Binding) in each class. */
enum stun_type {
	STUN_BINDING_REQUEST = 0x0001,
	STUN_BINDING_INDICATION = 0x0011,
	STUN_BINDING_SUCCESS = 0x0101,
	STUN_BINDING_ERROR = 0x0111,
};

enum stun_attr_type {
	STUN_ATTR_MAPPED_ADDRESS = 0x0001,
	STUN_ATTR_CHANGE_REQUEST = 0x0003,     /* RFC 3489 / 5780 */
	STUN_ATTR_USERNAME = 0x0006,
	STUN_ATTR_MESSAGE_INTEGRITY = 0x0008,
	STUN_ATTR_ERROR_CODE = 0x0009,
	STUN_ATTR_UNKNOWN_ATTRIBUTES = 0x000A,
	STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020,
	STUN_ATTR_XOR_MAPPED_ADDRESS_OPT = 0x8020, /* pre-5389 drafts' comprehension-optional code */
	STUN_ATTR_SOFTWARE = 0x8022,
	STUN_ATTR_FINGERPRINT = 0x8028,
};

enum stun_flags {
	STUN_CLASSIC = 1U << 0,           /* RFC 3489 request: no magic cookie, 16-byte id */
	STUN_HAS_FINGERPRINT = 1U << 1,   /* present and verified */
	STUN_HAS_XOR_MAPPED = 1U << 2,
	STUN_HAS_MAPPED = 1U << 3,
	STUN_HAS_ERROR_CODE = 1U << 4,
};

/* A parsed message. Addresses are kept parsed; other attributes are skipped. */
struct stun_msg {
	uint16_t type;                    /* enum stun_type, or another method/class */
	uint16_t length;                  /* of the attributes, as in the header */
	uint8_t id[STUN_ID_LEN];          /* for RFC 5389: the cookie, then the txid */
	unsigned flags;                   /* enum stun_flags */
	unsigned n_attrs;
	struct addr_port xor_mapped;      /* first XOR-MAPPED-ADDRESS (0x0020 or 0x8020) */
	struct addr_port mapped;          /* first MAPPED-ADDRESS */
	uint16_t error_code;              /* ERROR-CODE as class * 100 + number */
	/* Comprehension-required attributes (< 0x8000) this codec does not know, and a
	 * CHANGE-REQUEST that asks for another address or port (we have one of each). */
	uint16_t unknown[STUN_MAX_UNKNOWN];
	unsigned n_unknown;
};

/* The 12-byte transaction id of an RFC 5389 message. */
static inline const uint8_t *stun_txid(const struct stun_msg *m) { return m->id + 4; }

/* Parses len bytes at p: top two bits 0, length a multiple of 4 and len - 20, the magic
 * cookie (or an RFC 3489 Binding request without it: STUN_CLASSIC), attributes with their
 * padding inside the message, at most STUN_MAX_ATTRS, FINGERPRINT last and correct,
 * well-formed address attributes. 0, or -EBADMSG for anything malformed (*out zeroed). */
int stun_parse(const uint8_t *p, size_t len, struct stun_msg *out);

/* A Binding request with txid, and FINGERPRINT when asked. Length, or -ENOSPC. */
int stun_build_binding_request(const uint8_t txid[STUN_TXID_LEN], int with_fingerprint,
			       uint8_t *buf, size_t size);
/* The success response to req: XOR-MAPPED-ADDRESS of mapped; for a classic request
 * MAPPED-ADDRESS first (what RFC 3489 clients read) and the XOR address under 0x8020,
 * which they may skip; FINGERPRINT when the request had one. The response carries the
 * request's id (all 16 bytes for a classic one). Length, -EINVAL, or -ENOSPC. */
int stun_build_binding_response(const struct stun_msg *req, const struct addr_port *mapped,
				uint8_t *buf, size_t size);
/* The 420 (Unknown Attribute) error response to req, listing req->unknown. */
int stun_build_unknown_response(const struct stun_msg *req, uint8_t *buf, size_t size);

/* The client side: the mapped address of a Binding success response (XOR-MAPPED-ADDRESS,
 * else MAPPED-ADDRESS). 0, -EPROTO when msg is not a Binding success response, -ENOENT
 * when it carries no address. */
int stun_response_mapped(const struct stun_msg *msg, struct addr_port *out);

/* CRC-32 (ISO-HDLC, as zlib's) of len bytes: what FINGERPRINT is made of. */
uint32_t stun_crc32(const uint8_t *p, size_t len);

#endif
