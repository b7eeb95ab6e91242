/* zlines.c - z frames in a stream of JSON lines: `{"type":"z","len":N}\n` and N bytes of
 * one zstd frame (RFC 8878) holding whole lines (docs/ARCHITECTURE.md, "Netmap"). The
 * writer packs with one context per thread; the reader gathers a frame's bytes per
 * stream and unpacks it only once whole, with one decompression context per thread, so
 * a process holding thousands of streams (tests/tools/nodesim) pays for one window, not
 * one per stream. The writer's window is 2^ZLINES_WINDOW_LOG; a frame that says its
 * content's size (ours do) is unpacked in one go into a buffer of that size, within the
 * reader's bound; one that does not is streamed through at most such a window. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "meshvpn/http.h"
#include "meshvpn/zlines.h"

#define HEAD_PREFIX "{\"type\":\"z\""
#define HEAD_LEN_KEY ",\"len\":"
#define FRAME_FIRST 4096       /* the first allocation of a frame's bytes */
#define OUT_FIRST 65536        /* of unpacked content whose size the frame does not say */
#define LAST_MAX 65536         /* the longest input whose packing is kept for the next call */

/* ---- writer ---- */

static _Thread_local ZSTD_CCtx *cctx;
static _Thread_local ZSTD_DCtx *dctx;

/* The last input packed and its result: coord writes one change (a DNS policy) to every
 * watcher in turn, and packs it once instead of once per watcher. Compared by content,
 * never by address: a freed line's address comes back with other text. */
static _Thread_local struct {
	uint8_t *in, *out;
	size_t in_len, out_len;
} last;

static int last_take(const void *lines, size_t len, uint8_t **out, size_t *out_len)
{
	uint8_t *buf;

	if (!last.in || last.in_len != len || memcmp(last.in, lines, len))
		return 0;
	buf = malloc(last.out_len);
	if (!buf)
		return 0;
	memcpy(buf, last.out, last.out_len);
	*out = buf;
	*out_len = last.out_len;
	return 1;
}

static void last_keep(const void *lines, size_t len, const uint8_t *packed, size_t packed_len)
{
	free(last.in);
	free(last.out);
	last.in = len <= LAST_MAX ? malloc(len) : NULL;
	last.out = last.in ? malloc(packed_len) : NULL;
	if (!last.out) {
		free(last.in);
		last.in = NULL;
		return;
	}
	memcpy(last.in, lines, len);
	memcpy(last.out, packed, packed_len);
	last.in_len = len;
	last.out_len = packed_len;
}

static ZSTD_CCtx *pack_ctx(void)
{
	if (cctx)
		return cctx;
	cctx = ZSTD_createCCtx();
	if (!cctx)
		return NULL;
	/* A netmap repeats itself within a few peers: a small window loses little, and it
	 * bounds the encoder's memory and what every reader must hold. */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, ZLINES_LEVEL)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, ZLINES_WINDOW_LOG))) {
		ZSTD_freeCCtx(cctx);
		cctx = NULL;
	}
	return cctx;
}

int zlines_pack(const void *lines, size_t len, uint8_t **out, size_t *out_len)
{
	ZSTD_CCtx *c = pack_ctx();
	char head[ZLINES_HEADER_MAX];
	size_t bound, n;
	uint8_t *buf;
	int hl;

	if (!len || ((const uint8_t *)lines)[len - 1] != '\n')
		return -EINVAL;
	if (last_take(lines, len, out, out_len))
		return 0;
	if (!c)
		return -ENOMEM;
	bound = ZSTD_compressBound(len);
	if (ZSTD_isError(bound) || !bound)
		return -EINVAL;
	buf = malloc(ZLINES_HEADER_MAX + bound);
	if (!buf)
		return -ENOMEM;
	/* The frame first, behind room for the header, whose length depends on its size. */
	n = ZSTD_compress2(c, buf + ZLINES_HEADER_MAX, bound, lines, len);
	if (ZSTD_isError(n)) {
		ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
		free(buf);
		return -EIO;
	}
	hl = snprintf(head, sizeof(head), HEAD_PREFIX HEAD_LEN_KEY "%zu}\n", n);
	memcpy(buf, head, (size_t)hl);
	memmove(buf + hl, buf + ZLINES_HEADER_MAX, n);
	*out = buf;
	*out_len = (size_t)hl + n;
	last_keep(lines, len, buf, *out_len);
	return 0;
}

int zlines_requested(const char *target)
{
	char v[8];

	/* The one query parser of the request target (http_query.c). */
	return !http_query_get(target, "compress", v, sizeof(v)) && !strcmp(v, "zstd");
}

/* ---- reader ---- */

size_t zlines_frame_max(size_t max_line)
{
	size_t b = max_line < SIZE_MAX - 1 ? ZSTD_compressBound(max_line + 1) : 0;

	return ZSTD_isError(b) ? 0 : b;
}

void zlines_reader_init(struct zlines_reader *zr, size_t max_line)
{
	memset(zr, 0, sizeof(*zr));
	zr->max_line = max_line;
}

void zlines_reader_reset(struct zlines_reader *zr)
{
	free(zr->frame);
	zr->frame = NULL;
	zr->frame_len = zr->frame_cap = 0;
	zr->need = 0;
}

void zlines_reader_free(struct zlines_reader *zr)
{
	zlines_reader_reset(zr);
}

/* 1 and N for a z header, 0 for another line, -EBADMSG for a z header we cannot read
 * (the type says z but the rest is not `,"len":DIGITS}`). Only the writer's exact form
 * is taken: it is ours, and a strict form is one less parser to trust. */
static int parse_header(const char *line, size_t len, size_t *n)
{
	size_t pl = strlen(HEAD_PREFIX), kl = strlen(HEAD_LEN_KEY), i, v = 0;

	if (len <= pl || memcmp(line, HEAD_PREFIX, pl) || (line[pl] != ',' && line[pl] != '}'))
		return 0;
	if (len < pl + kl + 2 || memcmp(line + pl, HEAD_LEN_KEY, kl) || line[len - 1] != '}')
		return -EBADMSG;
	for (i = pl + kl; i < len - 1; i++) {
		if (line[i] < '0' || line[i] > '9' || v > (SIZE_MAX - 9) / 10)
			return -EBADMSG;
		v = v * 10 + (size_t)(line[i] - '0');
	}
	if (i == pl + kl)
		return -EBADMSG;
	*n = v;
	return 1;
}

static int unpack_ctx(ZSTD_DCtx **out)
{
	if (!dctx) {
		dctx = ZSTD_createDCtx();
		if (!dctx)
			return -ENOMEM;
		/* A frame asking for a larger window is refused, not given the memory. */
		if (ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, ZLINES_WINDOW_LOG))) {
			ZSTD_freeDCtx(dctx);
			dctx = NULL;
			return -ENOMEM;
		}
	}
	ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
	*out = dctx;
	return 0;
}

static int grow(uint8_t **buf, size_t *cap, size_t want)
{
	uint8_t *nb = realloc(*buf, want);

	if (!nb)
		return -ENOMEM;
	*buf = nb;
	*cap = want;
	return 0;
}

/* Unpacks the whole frame in frame[0..len) into *out (malloc'd, *out_len bytes, ending in
 * '\n'), at most limit bytes of it. */
static int unpack(const uint8_t *frame, size_t len, size_t limit, uint8_t **out, size_t *out_len)
{
	static const uint8_t magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };   /* ZSTD_MAGICNUMBER */
	unsigned long long size;
	ZSTD_inBuffer in = { frame, len, 0 };
	ZSTD_outBuffer o = { NULL, 0, 0 };
	uint8_t *buf = NULL;
	ZSTD_DCtx *d;
	size_t cap = 0, r;
	int rc;

	/* Only a zstd frame: no skippable frame, no legacy format with other limits. */
	if (len < sizeof(magic) || memcmp(frame, magic, sizeof(magic)))
		return -EBADMSG;
	size = ZSTD_getFrameContentSize(frame, len);
	if (size == ZSTD_CONTENTSIZE_ERROR)
		return -EBADMSG;
	if (size != ZSTD_CONTENTSIZE_UNKNOWN && size > limit)
		return -EMSGSIZE;
	rc = unpack_ctx(&d);
	if (rc)
		return rc;
	/* One byte more than it says or than the bound: a frame that lies, or content past
	 * the bound, shows as output beyond them instead of a call that cannot finish. */
	if (size == ZSTD_CONTENTSIZE_UNKNOWN)
		size = OUT_FIRST < limit ? OUT_FIRST : limit;
	rc = grow(&buf, &cap, (size_t)size + 1);
	while (!rc) {
		size_t in_was = in.pos, out_was = o.pos;

		o.dst = buf;
		o.size = cap;
		r = ZSTD_decompressStream(d, &o, &in);
		if (ZSTD_isError(r))
			rc = ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge ? -EMSGSIZE
											      : -EBADMSG;
		else if (o.pos > limit)
			rc = -EMSGSIZE;
		else if (!r)
			break;   /* the frame is complete */
		else if (o.pos == o.size)
			rc = grow(&buf, &cap, cap < limit / 2 ? cap * 2 + 1 : limit + 1);
		else if (in.pos == in.size || (in.pos == in_was && o.pos == out_was))
			rc = -EBADMSG;   /* it ends before its end */
	}
	if (!rc && (in.pos != in.size || !o.pos || buf[o.pos - 1] != '\n'))
		rc = -EBADMSG;   /* bytes after the frame, or content that is not whole lines */
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*out_len = o.pos;
	return 0;
}

/* The frame is whole: its lines go to cb. */
static int deliver(struct zlines_reader *zr, line_buf_cb cb, void *arg)
{
	uint8_t *buf, *p;
	size_t len;
	int rc = unpack(zr->frame, zr->frame_len, zr->max_line + 1, &buf, &len);

	zlines_reader_reset(zr);
	if (rc)
		return rc;
	/* buf is ours alone: cb may free zr, and the lines stay valid while it runs. */
	for (p = buf; !rc && p < buf + len;) {
		uint8_t *nl = memchr(p, '\n', (size_t)(buf + len - p));
		size_t n = (size_t)(nl - p);   /* nl exists: the content ends in '\n' */

		*nl = 0;
		if (n && cb((const char *)p, n, arg))
			rc = 1;
		p = nl + 1;
	}
	free(buf);
	return rc;
}

/* Frame bytes: as many as it still needs. */
static int gather(struct zlines_reader *zr, const uint8_t *p, size_t len, size_t *used)
{
	size_t n = len < zr->need ? len : zr->need;

	if (zr->frame_len + n > zr->frame_cap) {
		size_t want = zr->frame_cap ? zr->frame_cap : FRAME_FIRST;

		while (want < zr->frame_len + n)
			want *= 2;
		if (want > zr->frame_len + zr->need)
			want = zr->frame_len + zr->need;   /* never more than N */
		if (grow(&zr->frame, &zr->frame_cap, want))
			return -ENOMEM;
	}
	memcpy(zr->frame + zr->frame_len, p, n);
	zr->frame_len += n;
	zr->need -= n;
	*used = n;
	return 0;
}

int zlines_feed(struct zlines_reader *zr, struct line_buf *lb, const uint8_t *p, size_t len,
		line_buf_cb cb, void *arg)
{
	size_t used, n;
	int rc;

	while (len) {
		if (zr->need) {
			rc = gather(zr, p, len, &used);
			if (!rc && !zr->need)
				rc = deliver(zr, cb, arg);
			if (rc)
				return rc;
			p += used;
			len -= used;
			continue;
		}
		rc = line_buf_take(lb, p, len, &used);
		if (rc <= 0)
			return rc;
		p += used;
		len -= used;
		if (!lb->len)
			continue;
		rc = parse_header(lb->line, lb->len, &n);
		if (rc < 0)
			return rc;
		if (rc) {
			if (!n)
				return -EBADMSG;
			if (n > zlines_frame_max(zr->max_line))
				return -EMSGSIZE;
			zr->need = n;
		} else if (cb(lb->line, lb->len, arg)) {
			return 1;
		}
		lb->len = 0;
	}
	return 0;
}
