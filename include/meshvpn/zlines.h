/* zlines.h - compressed lines in a stream of JSON lines (coord's netmap and relay streams,
 * asked for with `compress=zstd` in the query): a header line `{"type":"z","len":N}`
 * followed by exactly N bytes, one zstd frame (RFC 8878) whose content is one or more
 * whole lines, each ending in '\n'. The writer packs; the reader takes the stream's bytes,
 * turns frames back into lines and hands every line, plain or unpacked, to one callback.
 * Memory is bounded on both sides: the writer's window is 2^ZLINES_WINDOW_LOG (as is
 * the most a reader gives a frame that must be streamed), the reader's unpacked content
 * its longest line. */
#ifndef MESHVPN_ZLINES_H
#define MESHVPN_ZLINES_H

#include <stddef.h>
#include <stdint.h>

#include "meshvpn/line_stream.h"   /* struct line_buf: zlines_feed assembles lines in it */

#define ZLINES_QUERY "compress=zstd"   /* what a client adds to its request's query */
#define ZLINES_MIN 2048                /* lines shorter than this are not worth a frame (a
					 * resume: ~1 KB; packing one costs more than it saves) */
#define ZLINES_WINDOW_LOG 20           /* 1 MiB: the writer's window, the reader's limit */
#define ZLINES_HEADER_MAX 48u          /* the longest header line, '\n' included */
#define ZLINES_LEVEL 1   /* coord packs a full netmap per reconnect: level 1 packed a
			  * 1000-peer one to 26 % at ~500 MB/s; 3 no smaller at a third of
			  * the speed, -1 to 33 % at ~750 MB/s */

/* ---- writer ---- */

/* Packs len bytes of whole lines (the last byte '\n') into header + frame, in a buffer
 * of *out_len bytes that the caller frees. One compression context per thread, kept,
 * and the last result when its input was short (the same change to many streams).
 * -EINVAL for nothing or a last byte other than '\n', -ENOMEM, -EIO (zstd failed). */
int zlines_pack(const void *lines, size_t len, uint8_t **out, size_t *out_len);

/* 1 when a request target ("/v1/map?since=4&compress=zstd") asks for z frames. */
int zlines_requested(const char *target);

/* ---- reader: pure apart from allocation (fuzzed) ---- */

struct zlines_reader {
	size_t max_line;   /* a frame unpacks to at most max_line + 1 bytes */
	size_t need;       /* inside a frame: its bytes still to come; 0 between lines */
	uint8_t *frame;    /* the frame so far; freed once it is unpacked */
	size_t frame_len, frame_cap;
};

/* A frame's N past this is refused: what the longest content could pack to. */
size_t zlines_frame_max(size_t max_line);

void zlines_reader_init(struct zlines_reader *zr, size_t max_line);
/* Forgets a partial frame (a new stream starts between lines). */
void zlines_reader_reset(struct zlines_reader *zr);
void zlines_reader_free(struct zlines_reader *zr);

/* Takes a stream's bytes: lines are assembled in lb (its max should be zr's max_line, and
 * at least ZLINES_HEADER_MAX: the header is a line too),
 * z frames are gathered, unpacked and their lines passed to cb like plain ones (NUL-
 * terminated, never empty, no '\n'). 0 when all was taken, 1 when cb stopped it (zr and
 * lb are not touched afterwards), -EMSGSIZE for a line or frame content past the bound
 * or an N past zlines_frame_max, -EBADMSG for a malformed header, a frame zstd refuses or
 * does not end within N bytes, bytes after the frame within N, content not ending in
 * '\n'; -ENOMEM. After an error, reset both before reusing them. */
int zlines_feed(struct zlines_reader *zr, struct line_buf *lb, const uint8_t *p, size_t len,
		line_buf_cb cb, void *arg);

#endif
