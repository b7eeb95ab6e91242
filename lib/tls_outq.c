/* tls_outq.c - a TLS connection's plaintext queue: a write larger than a slice is not
 * encrypted all at once on the loop but TLS_WRITE_SLICE at a time as the socket drains
 * (the lower conn's drain callback, or the next loop turn when the kernel took a slice
 * whole), so that one 3 MB netmap (or a 32 MB stream) never holds the loop for the whole
 * of its encryption while other connections' handshakes and small lines wait. The bytes
 * are held once, as plaintext, instead of as ciphertext in the lower send queue. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/log.h"
#include "tls_int.h"

#define BLK_MIN (16 * 1024)   /* small writes behind a big one share a block */

static void blk_free(struct tls_outq_blk *b)
{
	/* Plaintext: wiped as the cork is. */
	sodium_memzero(b->data, b->cap);
	free(b);
}

/* All of p or nothing (-ENOMEM): a write half queued would corrupt the stream. */
static int outq_append(struct tls_outq *q, const uint8_t *p, size_t len)
{
	struct tls_outq_blk *b = q->tail, *nb = NULL;
	size_t room = b ? b->cap - b->len : 0, n = len < room ? len : room, cap;

	if (len > n) {
		cap = len - n < BLK_MIN ? BLK_MIN : len - n;
		nb = malloc(sizeof(*nb) + cap);
		if (!nb)
			return -ENOMEM;
		nb->next = NULL;
		nb->off = 0;
		nb->len = len - n;
		nb->cap = cap;
		memcpy(nb->data, p + n, len - n);
	}
	if (n) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
	}
	if (nb) {
		if (q->tail)
			q->tail->next = nb;
		else
			q->head = nb;
		q->tail = nb;
	}
	q->len += len;
	conn_unsent_add(len);
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

static void next_slice(uv_idle_t *h)
{
	struct tls_conn *t = h->data;

	uv_idle_stop(h);
	if (!t)
		return;
	t->depth++;
	tls_outq_drain(t);
	t->depth--;
	if (t->closed && !t->depth)
		tls_free(t);
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
	if (!t->outq.len || t->closed || t->broken || t->state != TLS_OPEN || !t->lower)
		return;
	/* Bytes still wait in the lower queue: its drain callback brings us back. */
	if (conn_pending(t->lower))
		return;
	if (outq_seal(t, TLS_WRITE_SLICE) < 0 || !t->outq.len || !t->lower ||
	    conn_pending(t->lower))
		return;
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
	int r;

	if (!t->outq.len && len <= TLS_WRITE_SLICE)
		return tls_write_now(t, p, len);
	/* Behind what waits, or too big to seal in one go. */
	r = outq_append(&t->outq, p, len);
	if (r < 0)
		return r;
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
