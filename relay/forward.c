/* forward.c - send-packet to recv-packet: the destination found by key among the admitted
 * connections, the frame written to it in one piece with the sender's proven key as its
 * source; a peer-gone back for an absent destination (rate-limited); drops instead of
 * growth for a full destination.
 *
 * Fair share: libuv reads each ready socket in turn, and a read callback forwards what
 * that one read gave, so no sender gets more than its turn. A destination over
 * queue_max bytes queued loses the packet (counted) and its sender stops reading for
 * pause_ms: its own TCP window then pushes back on it instead of the relay buffering
 * for it, and the readers of everyone else go on. */
#include <string.h>

#include "meshvpn/log.h"
#include "relay.h"

static void on_resume(uv_timer_t *t)
{
	relay_forward_resume(t->data);
}

static void pause_sender(struct relay_client *cl)
{
	struct relay_server *s = cl->srv;

	if (cl->paused)
		return;
	cl->paused = 1;
	cl->pprev = NULL;
	cl->pnext = s->paused;
	if (s->paused)
		s->paused->pprev = cl;
	s->paused = cl;
	s->stats.pauses++;
	conn_read_stop(cl->c);
	if (!uv_is_active((uv_handle_t *)&s->resume))
		uv_timer_start(&s->resume, on_resume, s->o.pause_ms, 0);
}

void relay_forward_unpause(struct relay_client *cl)
{
	struct relay_server *s = cl->srv;

	if (!cl->paused)
		return;
	cl->paused = 0;
	if (cl->pprev)
		cl->pprev->pnext = cl->pnext;
	else
		s->paused = cl->pnext;
	if (cl->pnext)
		cl->pnext->pprev = cl->pprev;
	cl->pprev = cl->pnext = NULL;
}

void relay_forward_resume(struct relay_server *s)
{
	while (s->paused) {
		struct relay_client *cl = s->paused;

		relay_forward_unpause(cl);
		conn_read_start(cl->c);
	}
}

/* At most RELAY_GONE_PER_S a second, and one a second per destination among the last
 * few: a sender cannot turn unknown destinations into a flood of answers. */
static int gone_allowed(struct relay_client *cl, const uint8_t dst[KEY_LEN], uint64_t now)
{
	const size_t n = sizeof(cl->gone) / sizeof(cl->gone[0]);

	if (now - cl->gone_window_ms >= 1000) {
		cl->gone_window_ms = now;
		cl->gone_count = 0;
	}
	if (cl->gone_count >= RELAY_GONE_PER_S)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (cl->gone[i].ms && now - cl->gone[i].ms < 1000 &&
		    !memcmp(cl->gone[i].key, dst, KEY_LEN))
			return 0;
	memcpy(cl->gone[cl->gone_next].key, dst, KEY_LEN);
	cl->gone[cl->gone_next].ms = now ? now : 1;
	cl->gone_next = (cl->gone_next + 1) % n;
	cl->gone_count++;
	return 1;
}

static void not_here(struct relay_client *from, const uint8_t dst[KEY_LEN])
{
	uint8_t frame[RELAY_HDR_LEN + KEY_LEN + 1];

	from->srv->stats.drops[DROP_UNKNOWN_DST]++;
	if (!gone_allowed(from, dst, uv_now(from->srv->loop)))
		return;
	relay_frame_header(frame, RELAY_PEER_GONE, KEY_LEN + 1);
	memcpy(frame + RELAY_HDR_LEN, dst, KEY_LEN);
	frame[RELAY_HDR_LEN + KEY_LEN] = RELAY_GONE_NOT_HERE;
	relay_client_send(from, frame, sizeof(frame));
}

void relay_forward(struct relay_client *from, const struct relay_frame *f)
{
	struct relay_server *s = from->srv;
	const uint8_t *dst_key, *data;
	struct relay_client *dst;
	size_t len;

	relay_packet_parse(f, &dst_key, &data, &len);
	dst = keymap_get(&s->by_key, dst_key);
	if (!dst) {
		not_here(from, dst_key);
		return;
	}
	if (conn_pending(dst->c) > s->o.queue_max) {
		s->stats.drops[DROP_QUEUE_FULL]++;
		pause_sender(from);
		return;
	}
	/* One buffer, one write: with an empty queue that is one syscall (or one record).
	 * (A frame cannot carry more than RELAY_MAX_PACKET; the check stays for the codec.) */
	if (relay_packet_header(s->scratch, RELAY_RECV_PACKET, from->key, len)) {
		s->stats.drops[DROP_OVERSIZE]++;
		return;
	}
	memcpy(s->scratch + RELAY_HDR_LEN + KEY_LEN, data, len);
	if (relay_client_send(dst, s->scratch, RELAY_HDR_LEN + KEY_LEN + len))
		return;
	s->stats.packets++;
	s->stats.bytes += len;
}
