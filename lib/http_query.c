/* http_query.c - one parameter of a request target's query string ("/v1/map?since=5&
 * epoch=ab"): pure, no allocation, fuzzed (tests/fuzz/fuzz_http_query.c). Values are taken
 * as they come, percent-decoded; a name may appear once (a second copy is refused, so two
 * readers of one query cannot disagree about it). */
#include <errno.h>
#include <string.h>

#include "meshvpn/http.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes p[0..len) into out: the decoded length, or -EINVAL (a bad escape or a
 * NUL), -EMSGSIZE (no room for it and its NUL). */
static int decode(const char *p, size_t len, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)p[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return -EINVAL;
			hi = hexval(p[i + 1]);
			lo = hexval(p[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = hi * 16 + lo;
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (!c)
			return -EINVAL;
		if (o + 1 >= size)
			return -EMSGSIZE;
		out[o++] = (char)c;
	}
	out[o] = 0;
	return (int)o;
}

int http_query_get(const char *target, const char *name, char *out, size_t size)
{
	const char *q = target ? strchr(target, '?') : NULL, *p, *end, *eq;
	size_t nl = strlen(name);
	int found = 0, rc;

	if (!size)
		return -EMSGSIZE;
	out[0] = 0;
	if (!q)
		return -ENOENT;
	for (p = q + 1; *p; p = *end ? end + 1 : end) {
		end = strchr(p, '&');
		if (!end)
			end = p + strlen(p);
		eq = memchr(p, '=', (size_t)(end - p));
		if ((size_t)((eq ? eq : end) - p) != nl || memcmp(p, name, nl))
			continue;
		rc = found++ ? -EINVAL : decode(eq ? eq + 1 : "", eq ? (size_t)(end - eq - 1) : 0, out,
						size);
		if (rc < 0) {
			out[0] = 0;
			return rc;
		}
	}
	return found ? 0 : -ENOENT;
}
