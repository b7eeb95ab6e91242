/* tls_outq.c - a TLS connection's plaintext queue: a write larger than a slice is not
 * encrypted all at once on the loop but TLS_WRITE_SLICE at a time as the socket drains
 * (the lower conn's drain callback, or the next loop turn when the kernel took a slice
 * whole), so that one 3 MB netmap (or a 32 MB stream) never holds the loop for the whole
 * of its encryption while other connections' handshakes and small lines wait. The bytes
 * are held once, as plaintext (a copy, or the writer's own buffer with
 * conn_write_ref()), instead of as ciphertext in the lower send queue. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/log.h"
#include "tls_int.h"

#define BLK_MIN (16 * 1024)   /* small writes behind a big one share a block */
#define BLK_MAX (256 * 1024)

/* Our plaintext is wiped as the cork is (what was sealed already, as it went); a
 * writer's buffer goes back to the writer. */
static void blk_free(struct tls_outq_blk *b)
{
	if (b->release)
		b->release(b->ctx);
	else
		sodium_memzero(b->data + b->off, b->cap - b->off);
	free(b);
}

static struct tls_outq_blk *blk_new(const uint8_t *p, size_t len)
{
	size_t cap = len < BLK_MIN ? BLK_MIN : len;
	struct tls_outq_blk *b = malloc(sizeof(*b) + cap);

	if (!b)
		return NULL;
	memset(b, 0, sizeof(*b));
	b->data = b->inline_;
	b->len = len;
	b->cap = cap;
	memcpy(b->data, p, len);
	return b;
}

static void outq_link(struct tls_outq *q, struct tls_outq_blk *first, struct tls_outq_blk *last,
		      size_t len)
{
	if (q->tail)
		q->tail->next = first;
	else
		q->head = first;
	q->tail = last;
	q->len += len;
	conn_unsent_add(len);
}

/* All of p or nothing (-ENOMEM): a write half queued would corrupt the stream. Blocks
 * of BLK_MAX at most, so that small writes reuse memory malloc has used before. */
static int outq_append(struct tls_outq *q, const uint8_t *p, size_t len)
{
	struct tls_outq_blk *b = q->tail, *first = NULL, *last = NULL, *nb;
	size_t room = b && b->cap ? b->cap - b->len : 0, n = len < room ? len : room, off, k;

	for (off = n; off < len; off += k) {
		k = len - off < BLK_MAX ? len - off : BLK_MAX;
		nb = blk_new(p + off, k);
		if (!nb) {
			while (first) {
				nb = first->next;
				free(first);
				first = nb;
			}
			return -ENOMEM;
		}
		if (last)
			last->next = nb;
		else
			first = nb;
		last = nb;
	}
	if (n) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
		q->len += n;
		conn_unsent_add(n);
	}
	if (first)
		outq_link(q, first, last, len - n);
	return 0;
}

/* Seals up to max bytes from the head of the queue. */
static int outq_seal(struct tls_conn *t, size_t max)
{
	struct tls_outq *q = &t->outq;
	struct tls_outq_blk *b;
	size_t n;

	while (max && (b = q->head)) {
		n = b->len - b->off < max ? b->len - b->off : max;
		if (tls_write_now(t, b->data + b->off, n) < 0)
			return -EPIPE;
		if (!b->release)
			sodium_memzero(b->data + b->off, n);
		b->off += n;
		q->len -= n;
		conn_unsent_sub(n);
		max -= n;
		if (b->off == b->len) {
			q->head = b->next;
			if (!q->head)
				q->tail = NULL;
			blk_free(b);
		}
	}
	return 0;
}

void tls_outq_kick(struct tls_conn *t)
{
	t->depth++;
	tls_outq_drain(t);
	t->depth--;
	if (TLS_FREEABLE(t))
		tls_free(t);
}

static void next_slice(uv_idle_t *h)
{
	uv_idle_stop(h);
	if (h->data)
		tls_outq_kick(h->data);
}

static int next_turn(struct tls_conn *t)
{
	struct tls_outq *q = &t->outq;

	if (!q->next) {
		q->next = malloc(sizeof(*q->next));
		if (!q->next || uv_idle_init(t->base.loop, q->next) < 0) {
			free(q->next);
			q->next = NULL;
			return -ENOMEM;
		}
		q->next->data = t;
	}
	return uv_idle_start(q->next, next_slice);
}

void tls_outq_drain(struct tls_conn *t)
{
	if (t->lingering && (!t->outq.len || t->broken || !t->lower)) {
		tls_linger_end(t);
		return;
	}
	if (!t->outq.len || (t->closed && !t->lingering) || t->broken || t->state != TLS_OPEN ||
	    !t->lower)
		return;
	/* Bytes still wait in the lower queue: its drain callback brings us back. */
	if (conn_pending(t->lower))
		return;
	if (outq_seal(t, TLS_WRITE_SLICE) < 0 || !t->outq.len || !t->lower ||
	    conn_pending(t->lower)) {
		if (t->lingering && (!t->outq.len || t->broken))
			tls_linger_end(t);
		return;
	}
	/* The kernel took the slice whole, so no drain callback will come: go on after the
	 * loop has polled the other connections once. */
	if (next_turn(t) < 0) {
		log_warn("tls write queue stalled, sealing it whole", "peer=%s bytes=%zu",
			 t->base.peer, t->outq.len);
		tls_outq_flush_all(t);
	}
}

int tls_outq_write(struct tls_conn *t, const uint8_t *p, size_t len)
{
	int r, was_empty;

	if (!t->outq.len && len <= TLS_WRITE_SLICE)
		return tls_write_now(t, p, len);
	/* Behind what waits, or too big to seal in one go. */
	was_empty = !t->outq.len;
	r = outq_append(&t->outq, p, len);
	if (r < 0)
		return r;
	/* Only a queue that starts here takes its first slice now: behind one already
	 * draining, a burst of small lines must not seal a slice each. */
	if (was_empty)
		tls_outq_drain(t);
	return t->broken ? -EPIPE : 0;
}

int tls_outq_write_ref(struct tls_conn *t, const uint8_t *p, size_t len,
		       void (*release)(void *ctx), void *ctx)
{
	struct tls_outq_blk *b;
	int r, was_empty;

	if (!t->outq.len && len <= TLS_WRITE_SLICE) {
		r = tls_write_now(t, p, len);
		release(ctx);
		return r;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		release(ctx);
		return -ENOMEM;
	}
	b->data = (uint8_t *)(uintptr_t)p;
	b->len = len;
	b->release = release;
	b->ctx = ctx;
	was_empty = !t->outq.len;
	outq_link(&t->outq, b, b, len);
	if (was_empty)
		tls_outq_drain(t);
	return t->broken ? -EPIPE : 0;
}

void tls_outq_flush_all(struct tls_conn *t)
{
	if (t->outq.len && !t->broken && t->lower)
		outq_seal(t, t->outq.len);
}

static void idle_closed(uv_handle_t *h)
{
	free(h);
}

void tls_outq_free(struct tls_conn *t)
{
	struct tls_outq *q = &t->outq;
	struct tls_outq_blk *b;

	if (q->next) {
		q->next->data = NULL;
		uv_idle_stop(q->next);
		uv_close((uv_handle_t *)q->next, idle_closed);
		q->next = NULL;
	}

	while ((b = q->head)) {
		q->head = b->next;
		blk_free(b);
	}
	conn_unsent_sub(q->len);
	q->tail = NULL;
	q->len = 0;
}
