/* fuzz_zlines.c - the z frame reader of lib/zlines.c (zlines_feed) on arbitrary bytes.
 * Input: a mode byte, a piece-size byte, then the stream. Fed whole and fed in pieces it
 * must give the same lines and the same result, every line non-empty, NUL-terminated,
 * without '\n' and within the bound. Mode bit 0 packs the stream first (zlines_pack, a
 * '\n' added) and wraps it in plain lines: the lines must then come back exactly as a
 * plain split of the content gives them. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/zlines.h"

struct record {
	uint8_t *out;   /* lines, each followed by '\n' */
	size_t len, cap, max;
};

static int on_line(const char *line, size_t len, void *arg)
{
	struct record *r = arg;

	if (!len || len > r->max || line[len] || memchr(line, '\n', len))
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
	return 0;
}

static int feed(const uint8_t *p, size_t len, size_t max, size_t piece, struct record *r)
{
	struct zlines_reader zr;
	struct line_buf lb = { .max = max };
	int rc = 0;

	r->max = max;
	zlines_reader_init(&zr, max);
	for (size_t off = 0; off < len && !rc; off += piece) {
		size_t n = len - off < piece ? len - off : piece;

		rc = zlines_feed(&zr, &lb, p + off, n, on_line, r);
	}
	if (rc == 1 || (rc && rc != -EMSGSIZE && rc != -EBADMSG && rc != -ENOMEM))
		abort();
	zlines_reader_free(&zr);
	line_buf_free(&lb);
	return rc;
}

static void same(const struct record *a, const struct record *b)
{
	if (a->len != b->len || (a->len && memcmp(a->out, b->out, a->len)))
		abort();
}

/* "a\n" + the packed content + "b\n": exactly the content's non-empty lines between. */
static void round_trip(const uint8_t *p, size_t len, size_t piece)
{
	uint8_t *content = malloc(len + 1), *z, *stream;
	struct record got = { 0 }, want = { 0 };
	size_t zl;

	if (!content)
		abort();
	memcpy(content, p, len);
	content[len] = '\n';
	if (zlines_pack(content, len + 1, &z, &zl))
		abort();
	stream = malloc(zl + 4);
	if (!stream)
		abort();
	memcpy(stream, "a\n", 2);
	memcpy(stream + 2, z, zl);
	memcpy(stream + 2 + zl, "b\n", 2);
	if (feed(stream, zl + 4, len + ZLINES_HEADER_MAX, piece, &got))
		abort();
	want.max = len + ZLINES_HEADER_MAX;
	on_line("a", 1, &want);
	for (size_t s = 0, i = 0; i <= len; i++)
		if (content[i] == '\n') {
			content[i] = 0;
			if (i > s)
				on_line((const char *)content + s, i - s, &want);
			s = i + 1;
		}
	on_line("b", 1, &want);
	same(&got, &want);
	free(got.out);
	free(want.out);
	free(stream);
	free(z);
	free(content);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct record whole = { 0 }, pieces = { 0 };
	size_t max, piece;
	int a, b;

	if (size < 2 || size > 1 << 16)
		return 0;
	piece = 1 + data[1] % 32;
	if (data[0] & 1) {
		round_trip(data + 2, size - 2, piece);
		return 0;
	}
	/* Small bounds, so that contents past them are common; never below a header. */
	max = data[0] < 0xf0 ? ZLINES_HEADER_MAX + data[0] % 64 : (size_t)1 << 20;
	a = feed(data + 2, size - 2, max, size - 2 ? size - 2 : 1, &whole);
	b = feed(data + 2, size - 2, max, piece, &pieces);
	if (a != b)
		abort();
	same(&whole, &pieces);
	free(whole.out);
	free(pieces.out);
	return 0;
}
