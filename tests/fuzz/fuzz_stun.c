/* fuzz_stun.c - lib/stun.c on arbitrary bytes. What parses must make sense (bounded
 * counts, flags that fit the type), a request's answer (success or 420) must parse back
 * with its id, fingerprint choice and address, and a response's address must survive
 * being built again. ASan catches any read past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/stun.h"

static void check_request(const struct stun_msg *q)
{
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	uint8_t out[STUN_RESPONSE_MAX];
	struct addr_port a, got;
	struct stun_msg r;
	int n;

	memset(&a, 0, sizeof(a));
	a.family = q->id[0] & 1 ? AF_INET6 : AF_INET;
	a.port = (uint16_t)(q->id[1] << 8 | q->id[2]);
	if (a.family == AF_INET)
		memcpy(&a.v4, q->id + 3, 4);
	else
		memcpy(a.v6.s6_addr, v6, 16);
	n = stun_build_binding_response(q, &a, out, sizeof(out));
	if (n < 0 || n > (int)sizeof(out))
		abort();
	if (q->flags & STUN_CLASSIC) {
		/* No cookie, so not ours to parse: the clear MAPPED-ADDRESS leads. */
		if (memcmp(out + 4, q->id, STUN_ID_LEN) || out[20] != 0 || out[21] != 1 ||
		    ((out[26] << 8) | out[27]) != a.port)
			abort();
	} else {
		if (stun_parse(out, (size_t)n, &r) || memcmp(r.id, q->id, STUN_ID_LEN) ||
		    (r.flags & STUN_HAS_FINGERPRINT) != (q->flags & STUN_HAS_FINGERPRINT) ||
		    stun_response_mapped(&r, &got) || memcmp(&got, &a, sizeof(a)))
			abort();
	}
	if (q->n_unknown && !(q->flags & STUN_CLASSIC)) {
		n = stun_build_unknown_response(q, out, sizeof(out));
		if (n < 0 || stun_parse(out, (size_t)n, &r) || r.type != STUN_BINDING_ERROR ||
		    r.error_code != 420 || memcmp(r.id, q->id, STUN_ID_LEN))
			abort();
	}
}

/* A response's address, built again into a response with the same id, reads the same. */
static void check_response(const struct stun_msg *m)
{
	uint8_t out[STUN_RESPONSE_MAX];
	struct addr_port a, again;
	struct stun_msg q, r;
	int n;

	if (stun_response_mapped(m, &a))
		return;
	if ((a.family != AF_INET && a.family != AF_INET6) || a.scope_id)
		abort();
	memset(&q, 0, sizeof(q));
	q.type = STUN_BINDING_REQUEST;
	memcpy(q.id, m->id, STUN_ID_LEN);
	q.flags = m->flags & STUN_HAS_FINGERPRINT;
	n = stun_build_binding_response(&q, &a, out, sizeof(out));
	if (n < 0 || stun_parse(out, (size_t)n, &r) || stun_response_mapped(&r, &again) ||
	    memcmp(&a, &again, sizeof(a)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stun_msg m;

	if (stun_parse(data, size, &m)) {
		if (m.flags || m.type || m.n_attrs)
			abort();
		return 0;
	}
	if (m.n_attrs > STUN_MAX_ATTRS || m.n_unknown > STUN_MAX_UNKNOWN ||
	    (size_t)m.length + STUN_HEADER_LEN != size ||
	    ((m.flags & STUN_CLASSIC) && m.type != STUN_BINDING_REQUEST))
		abort();
	if (m.type == STUN_BINDING_REQUEST)
		check_request(&m);
	else if (m.type == STUN_BINDING_SUCCESS)
		check_response(&m);
	return 0;
}
