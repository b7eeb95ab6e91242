/* fuzz_line_stream.c - the line assembly of lib/line_stream.c (line_buf_feed) on arbitrary
 * bytes. Input: a bound byte, a piece-size byte, then the stream. Fed whole and fed in
 * pieces, it must give exactly the lines (and the error) of a plain reference split at
 * '\n': empty lines skipped, a line past the bound ends it with -EMSGSIZE; a callback
 * that stops gets no further line. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/line_stream.h"

struct record {
	uint8_t *out;       /* lines, each followed by '\n' */
	size_t len, cap;
	size_t n, stop_at;  /* stop_at: the line whose callback stops (0 = never) */
};

static int on_line(const char *line, size_t len, void *arg)
{
	struct record *r = arg;

	if (!len || line[len] || memchr(line, '\n', len))
		abort();
	if (r->len + len + 1 > r->cap) {
		r->cap = (r->len + len + 1) * 2;
		r->out = realloc(r->out, r->cap);
		if (!r->out)
			abort();
	}
	memcpy(r->out + r->len, line, len);
	r->out[r->len + len] = '\n';
	r->len += len + 1;
	return ++r->n == r->stop_at;
}

/* The reference: 0, 1 (stopped) or -EMSGSIZE, and the lines in r. */
static int reference(const uint8_t *p, size_t len, size_t max, struct record *r)
{
	char *line = malloc(len + 1);
	size_t start = 0;
	int rc = 0;

	if (!line)
		abort();
	for (size_t i = 0; i <= len && !rc; i++) {
		if (i - start > max) {
			rc = -EMSGSIZE;
		} else if (i < len && p[i] == '\n') {
			memcpy(line, p + start, i - start);
			line[i - start] = 0;
			if (i > start)
				rc = on_line(line, i - start, r);
			start = i + 1;
		}
	}
	free(line);
	return rc;
}

static int feed(const uint8_t *p, size_t len, size_t max, size_t piece, struct record *r)
{
	struct line_buf lb = { .max = max };
	int rc = 0;

	for (size_t off = 0; off < len && !rc; off += piece) {
		size_t n = len - off < piece ? len - off : piece;

		rc = line_buf_feed(&lb, p + off, n, on_line, r);
	}
	if (lb.len > max)
		abort();
	line_buf_free(&lb);
	return rc;
}

static void check(const uint8_t *p, size_t len, size_t max, size_t piece, size_t stop_at)
{
	struct record want = { .stop_at = stop_at }, got = { .stop_at = stop_at };
	int rc_want = reference(p, len, max, &want);
	int rc_got = feed(p, len, max, piece, &got);

	if (rc_got != rc_want || got.n != want.n || got.len != want.len ||
	    (got.len && memcmp(got.out, want.out, got.len)))
		abort();
	free(want.out);
	free(got.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t max, piece;

	if (size < 2)
		return 0;
	/* Small bounds, so that lines past them are common. */
	max = data[0] < 0xf0 ? data[0] % 48 : (size_t)1 << 20;
	piece = 1 + data[1] % 16;
	data += 2;
	size -= 2;
	check(data, size, max, size ? size : 1, 0);
	check(data, size, max, piece, 0);
	check(data, size, max, piece, 1 + data[-1] % 4);
	return 0;
}
