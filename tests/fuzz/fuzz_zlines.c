/* fuzz_zlines.c - the z frame reader of lib/zlines.c (zlines_feed) on arbitrary bytes.
 * Input: a mode byte, a piece-size byte, then the stream. Fed whole and fed in pieces it
 * must give the same lines (compared by count and hash) and the same result, every line non-empty, NUL-terminated,
 * without '\n' and within the bound. Mode bit 0 packs the stream first (zlines_pack, a
 * '\n' added) and wraps it in plain lines: the lines must then come back exactly as a
 * plain split of the content gives them. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/zlines.h"

/* The lines seen, as a count and an FNV-1a hash over each line and its '\n'. */
struct record {
	uint64_t hash;
	size_t n, max;
};

static void hash(struct record *r, const void *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		r->hash = (r->hash ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
}

static int on_line(const char *line, size_t len, void *arg)
{
	struct record *r = arg;

	if (!len || len > r->max || line[len] || memchr(line, '\n', len))
		abort();
	hash(r, line, len);
	hash(r, "\n", 1);
	r->n++;
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
	if (a->n != b->n || a->hash != b->hash)
		abort();
}

/* "a\n" + the packed content + "b\n": exactly the content's non-empty lines between. */
static void round_trip(const uint8_t *p, size_t len, size_t piece)
{
	uint8_t *content = malloc(len + 1), *z, *stream;
	struct record got = { 0 }, want = { 0 };   /* the same starting hash */
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
	return 0;
}
