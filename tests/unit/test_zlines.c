/* test_zlines.c - lib/zlines.c: z frames packed and read back among plain lines (whole
 * and a byte at a time), several lines in one frame, the content bound, a frame asking
 * for a window past the limit, truncated frames, garbage after the header and after the
 * frame, N too large, malformed headers, a callback that stops, the last packing kept,
 * the query check. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zstd.h>

#include "meshvpn/zlines.h"

#define MAX_SEEN 16
#define LINE48 "0123456789abcdef0123456789abcdef0123456789abcdef"

struct seen {
	char *lines[MAX_SEEN];   /* the first ones */
	int n, stop_at;
};

static int on_line(const char *line, size_t len, void *arg)
{
	struct seen *s = arg;

	assert_int_equal(strlen(line), len);
	assert_true(len > 0);
	if (s->n < MAX_SEEN)
		s->lines[s->n] = strdup(line);
	return ++s->n == s->stop_at;
}

static void seen_free(struct seen *s)
{
	for (int i = 0; i < s->n && i < MAX_SEEN; i++)
		free(s->lines[i]);
	memset(s, 0, sizeof(*s));
}

/* Feeds p whole (piece 0) or in pieces; the first nonzero result. */
static int feed(size_t max_line, const uint8_t *p, size_t len, size_t piece, struct seen *s)
{
	struct zlines_reader zr;
	struct line_buf lb = { .max = max_line };
	int rc = 0;

	zlines_reader_init(&zr, max_line);
	for (size_t off = 0; off < len && !rc; off += piece ? piece : len) {
		size_t n = piece && len - off > piece ? piece : len - off;

		rc = zlines_feed(&zr, &lb, p + off, n, on_line, s);
	}
	zlines_reader_free(&zr);
	line_buf_free(&lb);
	return rc;
}

/* A stream: plain text, then lines packed, then plain text. */
static size_t stream(uint8_t *out, size_t size, const char *before, const char *packed,
		     const char *after)
{
	uint8_t *z;
	size_t zl, bl = strlen(before), al = strlen(after);

	assert_int_equal(zlines_pack(packed, strlen(packed), &z, &zl), 0);
	assert_true(bl + zl + al <= size);
	memcpy(out, before, bl);
	memcpy(out + bl, z, zl);
	memcpy(out + bl + zl, after, al);
	free(z);
	return bl + zl + al;
}

/* A header and the given frame bytes. */
static size_t framed(uint8_t *out, size_t size, size_t n, const void *frame, size_t len)
{
	int hl = snprintf((char *)out, size, "{\"type\":\"z\",\"len\":%zu}\n", n);

	assert_true((size_t)hl + len <= size);
	memcpy(out + hl, frame, len);
	return (size_t)hl + len;
}

/* A frame of len bytes at buf + 64 gets its header in front, at buf. */
static size_t with_header(uint8_t *buf, size_t len)
{
	uint8_t head[64];
	size_t hl = framed(head, sizeof(head), len, "", 0);

	memmove(buf + hl, buf + 64, len);
	memcpy(buf, head, hl);
	return hl + len;
}

/* A stream in buf of another writer's frame: a window of 2^log, no content size. */
static size_t foreign(ZSTD_CCtx *c, int log, const char *text, size_t n, uint8_t *buf, size_t cap)
{
	size_t len;

	ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, log);
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
	len = ZSTD_compress2(c, buf + 64, cap - 64, text, n);
	assert_false(ZSTD_isError(len));
	return with_header(buf, len);
}

static void test_zlines_round_trip(void **state)
{
	char big[4000];
	uint8_t buf[8192];
	struct seen s = { 0 };
	size_t len;

	for (size_t i = 0; i < sizeof(big) - 2; i++)
		big[i] = "{\"peer\":\"abcdef\"},"[i % 18];
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = 0;
	len = stream(buf, sizeof(buf), "{\"type\":\"a\"}\n", big, "{\"type\":\"b\"}\n");
	assert_true(len < 1000);   /* it did compress */
	assert_memory_equal(buf + 13, "{\"type\":\"z\",\"len\":", 18);
	for (size_t piece = 0; piece <= 1; piece++) {
		assert_int_equal(feed(4096, buf, len, piece, &s), 0);
		assert_int_equal(s.n, 3);
		assert_string_equal(s.lines[0], "{\"type\":\"a\"}");
		assert_int_equal(strlen(s.lines[1]), sizeof(big) - 2);
		assert_memory_equal(s.lines[1], big, sizeof(big) - 2);
		assert_string_equal(s.lines[2], "{\"type\":\"b\"}");
		seen_free(&s);
	}
}

static void test_zlines_several_lines(void **state)
{
	uint8_t buf[1024];
	struct seen s = { 0 };
	size_t len = stream(buf, sizeof(buf), "", "one\n\ntwo\nthree\n", "four\n");

	assert_int_equal(feed(64, buf, len, 0, &s), 0);
	assert_int_equal(s.n, 4);   /* the empty line is skipped, as in plain lines */
	assert_string_equal(s.lines[0], "one");
	assert_string_equal(s.lines[1], "two");
	assert_string_equal(s.lines[2], "three");
	assert_string_equal(s.lines[3], "four");
	seen_free(&s);
	/* A callback that stops gets no further line, from the frame or after it. */
	s.stop_at = 2;
	assert_int_equal(feed(64, buf, len, 0, &s), 1);
	assert_int_equal(s.n, 2);
	seen_free(&s);
}

static void test_zlines_over_bound(void **state)
{
	uint8_t buf[1024];
	struct seen s = { 0 };
	/* 49 bytes of content: a 48-byte line and its newline fit, one byte more does not. */
	size_t len = stream(buf, sizeof(buf), "", LINE48 "\n", "");

	assert_int_equal(feed(48, buf, len, 0, &s), 0);
	assert_int_equal(s.n, 1);
	seen_free(&s);
	assert_int_equal(feed(47, buf, len, 0, &s), -EMSGSIZE);
	assert_int_equal(feed(47, buf, len, 1, &s), -EMSGSIZE);
	/* Two short lines that together pass the bound count as one content. */
	len = stream(buf, sizeof(buf), "", "0123456789abcdef0123\n0123456789abcdef0123456789abcd\n", "");
	assert_int_equal(feed(48, buf, len, 0, &s), -EMSGSIZE);
	assert_int_equal(s.n, 0);
}

static void test_zlines_window_too_large(void **state)
{
	size_t n = (size_t)3 << 20, cap = ZSTD_compressBound(n) + 64, len;
	char *text = malloc(n);
	uint8_t *buf = malloc(cap), *z;
	ZSTD_CCtx *c = ZSTD_createCCtx();
	struct seen s = { 0 };

	assert_non_null(text);
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++)
		text[i] = i % 1000 == 999 ? '\n' : (char)('a' + (i * 7 + i / 1000) % 26);
	text[n - 1] = '\n';
	/* Ours, in a 1 MiB window, reads back under a bound that takes it. */
	assert_int_equal(zlines_pack(text, n, &z, &len), 0);
	assert_int_equal(feed(4u << 20, z, len, 0, &s), 0);
	assert_int_equal(s.n, (int)(n / 1000) + 1);
	free(z);
	seen_free(&s);
	/* One that does not say the content's size, in a 1 MiB window: the output grows. */
	len = foreign(c, 20, text, n, buf, cap);
	assert_int_equal(feed(4u << 20, buf, len, 0, &s), 0);
	assert_int_equal(s.n, (int)(n / 1000) + 1);
	seen_free(&s);
	/* A writer with an 8 MiB window that does not say the content's size (so that it
	 * cannot be unpacked in one go into a buffer of that size): refused, though the
	 * bound would take its content. */
	len = foreign(c, 23, text, n, buf, cap);
	assert_int_equal(feed(4u << 20, buf, len, 0, &s), -EMSGSIZE);
	assert_int_equal(s.n, 0);
	ZSTD_freeCCtx(c);
	free(buf);
	free(text);
}

static void test_zlines_truncated(void **state)
{
	uint8_t buf[1024], out[1024];
	struct seen s = { 0 };
	size_t len = stream(buf, sizeof(buf), "", "some line or other\n", ""), hl;

	hl = (size_t)((uint8_t *)memchr(buf, '\n', len) - buf) + 1;
	/* N says 4 fewer bytes than the frame has: the frame does not end within N. */
	len = framed(out, sizeof(out), len - hl - 4, buf + hl, len - hl - 4);
	assert_int_equal(feed(64, out, len, 0, &s), -EBADMSG);
	/* The stream ends inside a frame: nothing comes out, and a reset reader is between
	 * lines again. */
	{
		struct zlines_reader zr;
		struct line_buf lb = { .max = 64 };

		zlines_reader_init(&zr, 64);
		assert_int_equal(zlines_feed(&zr, &lb, buf, len - 3, on_line, &s), 0);
		assert_true(zr.need > 0);
		zlines_reader_reset(&zr);
		line_buf_reset(&lb);
		assert_int_equal(zlines_feed(&zr, &lb, (const uint8_t *)"x\n", 2, on_line, &s), 0);
		zlines_reader_free(&zr);
		line_buf_free(&lb);
	}
	assert_int_equal(s.n, 1);
	assert_string_equal(s.lines[0], "x");
	seen_free(&s);
}

static void test_zlines_garbage(void **state)
{
	uint8_t buf[1024], out[1024];
	struct seen s = { 0 };
	size_t len, hl, fl;

	/* Not a zstd frame at all. */
	len = framed(out, sizeof(out), 16, "this is no frame", 16);
	assert_int_equal(feed(64, out, len, 0, &s), -EBADMSG);
	/* A zstd magic and junk. */
	len = framed(out, sizeof(out), 12, "\x28\xb5\x2f\xfd\x20\x05junkjk", 12);
	assert_int_equal(feed(64, out, len, 0, &s), -EBADMSG);
	/* A valid frame with bytes after it inside N (a second frame is not allowed). */
	len = stream(buf, sizeof(buf), "", "line\n", "");
	hl = (size_t)((uint8_t *)memchr(buf, '\n', len) - buf) + 1;
	fl = len - hl;
	memcpy(buf + len, buf + hl, fl);
	len = framed(out, sizeof(out), 2 * fl, buf + hl, 2 * fl);
	assert_int_equal(feed(64, out, len, 0, &s), -EBADMSG);
	/* Content that does not end in '\n'. */
	fl = ZSTD_compress(buf, sizeof(buf), "no newline", 10, 1);
	assert_false(ZSTD_isError(fl));
	len = framed(out, sizeof(out), fl, buf, fl);
	assert_int_equal(feed(64, out, len, 0, &s), -EBADMSG);
	assert_int_equal(s.n, 0);
}

static void test_zlines_bad_header(void **state)
{
	static const char *const bad[] = {
		"{\"type\":\"z\",\"len\":abc}\n", "{\"type\":\"z\",\"len\":}\n",
		"{\"type\":\"z\",\"len\":-5}\n", "{\"type\":\"z\"}\n",
		"{\"type\":\"z\",\"len\":5,\"x\":1}\n", "{\"type\":\"z\",\"len\":0}\n",
		"{\"type\":\"z\",\"len\":99999999999999999999999}\n",
	};
	char n_big[64];
	struct seen s = { 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(feed(64, (const uint8_t *)bad[i], strlen(bad[i]), 0, &s), -EBADMSG);
	/* N past what the bound could pack to. */
	snprintf(n_big, sizeof(n_big), "{\"type\":\"z\",\"len\":%zu}\n", zlines_frame_max(64) + 1);
	assert_int_equal(feed(64, (const uint8_t *)n_big, strlen(n_big), 0, &s), -EMSGSIZE);
	assert_int_equal(s.n, 0);
	/* Another type that starts with z is a plain line. */
	assert_int_equal(feed(64, (const uint8_t *)"{\"type\":\"zebra\"}\n", 17, 0, &s), 0);
	assert_int_equal(s.n, 1);
	seen_free(&s);
}

static void test_zlines_pack_args(void **state)
{
	uint8_t *z = NULL;
	size_t zl = 0;

	assert_int_equal(zlines_pack("", 0, &z, &zl), -EINVAL);
	assert_int_equal(zlines_pack("no newline", 10, &z, &zl), -EINVAL);
	assert_null(z);
}

/* The last packing is kept for the same input: never for another of the same length. */
static void test_zlines_pack_repeat(void **state)
{
	const char *a = "{\"type\":\"dns\",\"x\":\"aaaa\"}\n", *b = "{\"type\":\"dns\",\"x\":\"bbbb\"}\n";
	const char *order[] = { a, a, b, a, b, b };
	uint8_t *first, *z;
	size_t first_len, zl;
	struct seen s = { 0 };

	assert_int_equal(zlines_pack(a, strlen(a), &first, &first_len), 0);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		assert_int_equal(zlines_pack(order[i], strlen(order[i]), &z, &zl), 0);
		if (order[i] == a) {
			assert_int_equal(zl, first_len);
			assert_memory_equal(z, first, zl);
		}
		assert_int_equal(feed(64, z, zl, 0, &s), 0);
		assert_int_equal(s.n, 1);
		assert_memory_equal(s.lines[0], order[i], strlen(order[i]) - 1);
		seen_free(&s);
		free(z);
	}
	free(first);
}

static void test_zlines_requested(void **state)
{
	assert_true(zlines_requested("/v1/map?compress=zstd"));
	assert_true(zlines_requested("/v1/map?since=4&epoch=00ff&compress=zstd"));
	assert_true(zlines_requested("/v1/map?compress=zstd&since=4"));
	assert_false(zlines_requested("/v1/map"));
	assert_false(zlines_requested("/v1/map?compress=zstdx"));
	assert_false(zlines_requested("/v1/map?xcompress=zstd"));
	assert_false(zlines_requested("/v1/map?compress=gzip"));
	assert_false(zlines_requested("/v1/compress=zstd"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zlines_round_trip),
		cmocka_unit_test(test_zlines_several_lines),
		cmocka_unit_test(test_zlines_over_bound),
		cmocka_unit_test(test_zlines_window_too_large),
		cmocka_unit_test(test_zlines_truncated),
		cmocka_unit_test(test_zlines_garbage),
		cmocka_unit_test(test_zlines_bad_header),
		cmocka_unit_test(test_zlines_pack_args),
		cmocka_unit_test(test_zlines_pack_repeat),
		cmocka_unit_test(test_zlines_requested),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
