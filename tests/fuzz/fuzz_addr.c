/* fuzz_addr.c - lib/addr.c on arbitrary bytes: host:port splitting and endpoint parsing
 * with every flag. What is accepted must format and parse back to the same address. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/addr.h"

static void check_parse(const uint8_t *data, size_t size, unsigned flags)
{
	struct addr_port a, again;
	char out[ADDR_TEXT_LEN];

	if (addr_parse((const char *)data, size, flags, &a)) {
		if (a.family)
			abort();
		return;
	}
	if ((a.family != AF_INET && a.family != AF_INET6) || (!a.port && !(flags & ADDR_PORT0)) ||
	    (a.scope_id && !(flags & ADDR_ZONE)))
		abort();
	if (addr_format(&a, out, sizeof(out)) ||
	    addr_parse(out, strlen(out), flags | ADDR_ZONE, &again) || !addr_equal(&a, &again) ||
	    memcmp(&a, &again, sizeof(a)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[128], host[64];
	uint16_t port;

	check_parse(data, size, 0);
	check_parse(data, size, ADDR_ZONE | ADDR_PORT0);
	if (size >= sizeof(text))
		size = sizeof(text) - 1;
	memcpy(text, data, size);
	text[size] = 0;
	if (!addr_split_hostport(text, host, sizeof(host), &port) && !memchr(host, 0, sizeof(host)))
		abort();
	return 0;
}
