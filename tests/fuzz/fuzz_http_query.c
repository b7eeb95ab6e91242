/* fuzz_http_query.c - http_query_get on arbitrary request targets: the first byte picks
 * the output size, the rest is "name\ntarget". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[256], *buf, *nl;
	size_t osize;

	if (size < 1)
		return 0;
	osize = (size_t)data[0] % sizeof(out) + 1;
	buf = malloc(size);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = 0;
	nl = strchr(buf, '\n');
	if (nl) {
		*nl = 0;
		if (http_query_get(nl + 1, buf, out, osize) == 0 && strlen(out) >= osize)
			abort();
	}
	free(buf);
	return 0;
}
