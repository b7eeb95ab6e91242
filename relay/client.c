/* client.c - the relay side of one node's connection after the upgrade: SERVER_HELLO with
 * a fresh challenge, the node's CLIENT_HELLO proven and admitted (or refused), then frames
 * (send-packet to forward.c, ping, keepalive); keepalives and timeouts from the tick.
 * Any protocol fault closes this connection only, counted by reason. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/log.h"
#include "relay.h"

static void client_unlink(struct relay_client *cl)
{
	struct relay_server *s = cl->srv;

	relay_forward_unpause(cl);
	if (cl->state == RC_ACTIVE) {
		if (keymap_get(&s->by_key, cl->key) == cl)
			keymap_del(&s->by_key, cl->key);
		s->n_active--;
	} else {
		s->n_hello--;
	}
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		s->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
}

static void client_free(struct relay_client *cl)
{
	client_unlink(cl);
	relay_reader_free(&cl->rd);
	if (cl->c)
		conn_close(cl->c);
	sodium_memzero(cl->challenge, sizeof(cl->challenge));
	free(cl);
}

void relay_client_close(struct relay_client *cl, enum relay_close why)
{
	cl->srv->stats.closed[why]++;
	log_info("relay client closed", "peer=%s node=%s reason=%s", cl->c->peer, cl->key_short,
		 relay_close_names[why]);
	client_free(cl);
}

void relay_client_refuse(struct relay_client *cl, enum relay_refuse why)
{
	cl->srv->stats.refused[why]++;
	log_info("relay client refused", "peer=%s node=%s reason=%s", cl->c->peer,
		 cl->key_short[0] ? cl->key_short : "-", relay_refuse_names[why]);
	client_free(cl);
}

/* A fault: refused before admission, closed after it. */
static void client_fault(struct relay_client *cl, enum relay_refuse refuse, enum relay_close close)
{
	if (cl->state == RC_ACTIVE)
		relay_client_close(cl, close);
	else
		relay_client_refuse(cl, refuse);
}

int relay_client_send(struct relay_client *cl, const void *buf, size_t len)
{
	cl->last_tx_ms = uv_now(cl->srv->loop);
	/* A broken socket ends through on_end; the caller may be another client's reader. */
	return conn_write(cl->c, buf, len);
}

static void send_gone(struct relay_client *cl, const uint8_t key[KEY_LEN], uint8_t reason)
{
	uint8_t p[KEY_LEN + 1], frame[RELAY_HDR_LEN + KEY_LEN + 1];

	memcpy(p, key, KEY_LEN);
	p[KEY_LEN] = reason;
	relay_frame_build(frame, sizeof(frame), RELAY_PEER_GONE, p, sizeof(p));
	relay_client_send(cl, frame, sizeof(frame));
}

void relay_client_kick(struct relay_client *cl)
{
	send_gone(cl, cl->key, RELAY_GONE_NOT_ADMITTED);
	if (cl->state == RC_ACTIVE)
		relay_client_close(cl, CLOSE_NOT_ADMITTED);
	else
		relay_client_refuse(cl, REFUSE_NOT_ADMITTED);
}

/* CLIENT_HELLO: 0 when admitted, 1 when cl is gone. */
static int on_hello(struct relay_client *cl, const struct relay_frame *f)
{
	struct relay_server *s = cl->srv;
	struct relay_client *old;
	uint8_t frame[RELAY_HDR_LEN + 3], info[3];
	unsigned version = 0, flags = 0;
	int rc;

	rc = relay_client_hello_open(f, s->priv, cl->challenge, cl->key, &version, &flags);
	sodium_memzero(cl->challenge, sizeof(cl->challenge));   /* one hello per challenge */
	if (rc) {
		relay_client_refuse(cl, REFUSE_BAD_HELLO);
		return 1;
	}
	relay_key_short(cl->key, cl->key_short);
	if (!relay_admitted(s, cl->key)) {
		relay_client_kick(cl);
		return 1;
	}
	old = keymap_get(&s->by_key, cl->key);
	if (old)
		relay_client_close(old, CLOSE_REPLACED);
	if (keymap_put(&s->by_key, cl->key, cl)) {
		relay_client_refuse(cl, REFUSE_PROTOCOL);   /* out of memory */
		return 1;
	}
	cl->state = RC_ACTIVE;
	s->n_hello--;
	s->n_active++;
	s->stats.accepted++;
	info[0] = RELAY_VERSION;
	info[1] = (uint8_t)((s->o.keepalive_ms / 1000) >> 8);
	info[2] = (uint8_t)(s->o.keepalive_ms / 1000);
	relay_frame_build(frame, sizeof(frame), RELAY_SERVER_INFO, info, sizeof(info));
	relay_client_send(cl, frame, sizeof(frame));
	log_info("relay client admitted", "peer=%s node=%s version=%u flags=%u", cl->c->peer,
		 cl->key_short, version, flags);
	return 0;
}

/* One frame: 0 to go on, 1 when cl is gone (relay_reader_feed then stops). */
static int on_frame(const struct relay_frame *f, void *arg)
{
	struct relay_client *cl = arg;
	uint8_t frame[RELAY_HDR_LEN + 8];

	if (relay_frame_check(f)) {
		client_fault(cl, REFUSE_PROTOCOL, CLOSE_PROTOCOL);
		return 1;
	}
	if (cl->state == RC_HELLO) {
		if (f->type != RELAY_CLIENT_HELLO) {
			relay_client_refuse(cl, REFUSE_PROTOCOL);
			return 1;
		}
		return on_hello(cl, f);
	}
	switch (f->type) {
	case RELAY_SEND_PACKET:
		relay_forward(cl, f);
		return 0;
	case RELAY_PING:
		relay_frame_build(frame, sizeof(frame), RELAY_PONG, f->payload, 8);
		relay_client_send(cl, frame, sizeof(frame));
		return 0;
	case RELAY_KEEPALIVE:
	case RELAY_PONG:
		return 0;
	default:
		/* a second hello, or a frame only the relay sends */
		relay_client_close(cl, CLOSE_PROTOCOL);
		return 1;
	}
}

static void on_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct relay_client *cl = arg;
	int rc;

	cl->last_rx_ms = uv_now(cl->srv->loop);
	rc = relay_reader_feed(&cl->rd, buf, len, on_frame, cl);
	if (rc == -EMSGSIZE)
		client_fault(cl, REFUSE_OVERSIZE, CLOSE_OVERSIZE);
	else if (rc < 0)
		client_fault(cl, REFUSE_PROTOCOL, CLOSE_PROTOCOL);
	/* rc == 1: on_frame closed cl */
}

static void on_end(struct conn *c, int status, void *arg)
{
	client_fault(arg, REFUSE_LEFT, CLOSE_PEER);
}

void relay_client_accept(struct relay_server *s, struct http_request *req)
{
	struct relay_client *cl = calloc(1, sizeof(*cl));
	uint8_t frame[RELAY_HDR_LEN + RELAY_SERVER_HELLO_LEN];
	int rc;

	if (!cl) {
		http_respond(req, 503, "text/plain", NULL, "busy\n", 5);
		return;
	}
	rc = http_upgrade(req, RELAY_UPGRADE, on_read, on_end, cl, &cl->c);
	if (rc) {
		if (rc == -EINVAL)
			http_respond(req, 400, "text/plain", NULL, "bad upgrade\n", 12);
		free(cl);
		return;
	}
	cl->srv = s;
	cl->state = RC_HELLO;
	cl->started_ms = cl->last_rx_ms = cl->last_tx_ms = uv_now(s->loop);
	cl->next = s->clients;
	if (s->clients)
		s->clients->prev = cl;
	s->clients = cl;
	s->n_hello++;
	randombytes_buf(cl->challenge, sizeof(cl->challenge));
	relay_server_hello_build(frame, sizeof(frame), s->pub, cl->challenge);
	relay_client_send(cl, frame, sizeof(frame));
}

void relay_clients_tick(struct relay_server *s)
{
	static const uint8_t keepalive[RELAY_HDR_LEN] = { RELAY_KEEPALIVE, 0, 0, 0, 0 };
	uint64_t now = uv_now(s->loop);
	struct relay_client *cl, *next;

	for (cl = s->clients; cl; cl = next) {
		next = cl->next;
		if (cl->state == RC_HELLO) {
			if (now - cl->started_ms >= s->o.hello_timeout_ms)
				relay_client_refuse(cl, REFUSE_TIMEOUT);
			continue;
		}
		if (now - cl->last_rx_ms >= s->o.timeout_ms) {
			relay_client_close(cl, CLOSE_TIMEOUT);
			continue;
		}
		if (now - cl->last_tx_ms >= s->o.keepalive_ms)
			relay_client_send(cl, keepalive, sizeof(keepalive));
	}
}
