/* fuzz_retry_after.c - line_stream_retry_after (lib/line_stream.c), the Retry-After value
 * of a 503 / 429 answer, on arbitrary bytes (as a NUL-terminated header value): never past
 * LINE_STREAM_RETRY_AFTER_MAX, and what a plain reference reads (optional blanks, digits,
 * optional blanks, nothing else; capped). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/line_stream.h"

static unsigned reference(const char *s)
{
	const char *p = s;
	unsigned long v = 0;
	int digits = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	for (; *p >= '0' && *p <= '9'; p++, digits++)
		if ((v = v * 10 + (unsigned long)(*p - '0')) > LINE_STREAM_RETRY_AFTER_MAX)
			v = LINE_STREAM_RETRY_AFTER_MAX;
	while (*p == ' ' || *p == '\t')
		p++;
	return digits && !*p ? (unsigned)v : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	unsigned got;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	got = line_stream_retry_after(s);
	if (got > LINE_STREAM_RETRY_AFTER_MAX || got != reference(s))
		abort();
	free(s);
	return 0;
}
