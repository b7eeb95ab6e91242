/* relay_client.c - a node's connection to one relay (DESIGN.md flow 5, frames in
 * relay_frame.h): TCP, or TLS with a pin or CA trust; `GET /relay` with Upgrade, the
 * response head read here (bounded); the hello proving the node key; packets both ways;
 * keepalives and a silence timeout; reconnects with backoff and jitter (backoff.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/backoff.h"
#include "meshvpn/http.h"
#include "meshvpn/log.h"
#include "meshvpn/relay_client.h"
#include "meshvpn/relay_frame.h"
#include "meshvpn/tls.h"

#define HEAD_MAX 8192                    /* the 101 response head */
#define URL_MAX 512
#define DEFAULT_BACKOFF_MIN_MS 500
#define DEFAULT_BACKOFF_MAX_MS 30000
#define DEFAULT_MAX_PENDING ((size_t)4 << 20)
#define PACKET_HDR (RELAY_HDR_LEN + KEY_LEN)

/* Where a connection is; what the relay may send depends on it. */
enum phase {
	PH_IDLE,        /* nothing open (waiting to retry, or stopped) */
	PH_CONNECTING,  /* TCP connect and TLS handshake */
	PH_HEAD,        /* request sent, reading the response head */
	PH_HELLO,       /* upgraded, waiting for SERVER_HELLO */
	PH_INFO,        /* CLIENT_HELLO sent, waiting for SERVER_INFO (admission) */
	PH_UP,          /* admitted */
};

struct relay_client {
	uv_loop_t *loop;
	struct relay_client_opts o;          /* url and pin point at the copies below */
	char url[URL_MAX], pin[TLS_PIN_LEN];
	struct http_url u;
	char host_header[300];
	struct tls_config *tls;              /* https only */
	uint8_t node_pub[KEY_LEN], node_priv[KEY_LEN];   /* node_priv: secret */
	uint8_t relay_key[KEY_LEN];
	struct relay_client_cbs cbs;
	void *arg;
	int active;                          /* started: keep a connection */
	int freeing;
	enum phase ph;
	unsigned gen;                        /* bumps on every drop: callbacks check it */
	struct conn_connect *attempt;
	struct conn *c;
	char *head;                          /* HEAD_MAX while reading the head */
	size_t head_len;
	struct relay_reader rd;
	uv_timer_t retry, tick;
	int open_handles;
	uint64_t backoff_ms, last_rx_ms, last_tx_ms, keepalive_ms;
	uint64_t restart_in_ms;              /* the relay's RESTARTING: the next retry */
	int restart_pending;
	struct relay_client_stats st;
};

/* One frame being built at a time per loop thread: a client needs no 64 KiB of its own. */
static _Thread_local uint8_t send_buf[RELAY_HDR_LEN + RELAY_MAX_PAYLOAD];

static void rc_schedule(struct relay_client *rc);
static void tick_arm(struct relay_client *rc);

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void report(struct relay_client *rc, enum relay_client_state st, int detail)
{
	if (rc->cbs.on_state)
		rc->cbs.on_state(rc, st, detail, rc->arg);
}

/* Closes whatever is open or in flight; stale callbacks see the new generation. */
static void rc_drop(struct relay_client *rc)
{
	rc->gen++;
	if (rc->attempt) {
		conn_connect_cancel(rc->attempt);   /* its callback will not run */
		rc->attempt = NULL;
	}
	if (rc->c) {
		conn_close(rc->c);   /* what was sent is still flushed */
		rc->c = NULL;
	}
	free(rc->head);
	rc->head = NULL;
	rc->head_len = 0;
	rc->rd.len = 0;   /* a partial frame; the feed that may be running stops (gen) */
	rc->ph = PH_IDLE;
	uv_timer_stop(&rc->tick);
}

static const char *why(int err)
{
	switch (err) {
	case -EPERM:
		return "certificate does not match the pin";
	case -EACCES:
		return "the relay refused our key";
	case -ECONNRESET:
		return "closed by the relay";
	case -EPROTO:
		return "protocol error";
	default:
		return strerror(-err);
	}
}

/* The connection ended or could not start: tell the owner, retry unless stopped. */
static void rc_lost(struct relay_client *rc, int err)
{
	rc_drop(rc);
	rc->st.losses++;
	log_warn("relay connection lost", "relay=%s port=%u error=\"%s\"", rc->u.host,
		 rc->u.port, why(err));
	report(rc, RELAY_CLIENT_LOST, err);
	if (rc->active && !rc->freeing && !uv_is_active((uv_handle_t *)&rc->retry) &&
	    rc->ph == PH_IDLE)
		rc_schedule(rc);
}

/* Writes a frame of one or two parts as one write. Small frames need no gathering here:
 * lib/tls corks what one loop turn writes into full records (a 1280-byte packet per
 * record and per write(2) would cost several times the CPU). */
static int write_parts(struct relay_client *rc, const void *a, size_t alen, const void *b,
		       size_t blen)
{
	int r;

	if (b && blen) {
		memmove(send_buf, a, alen);
		memcpy(send_buf + alen, b, blen);
		a = send_buf;
	}
	r = conn_write(rc->c, a, alen + blen);
	if (!r)
		rc->last_tx_ms = uv_now(rc->loop);
	return r;
}

static int write_frame(struct relay_client *rc, const void *buf, size_t len)
{
	return write_parts(rc, buf, len, NULL, 0);
}

static int send_simple(struct relay_client *rc, uint8_t type, const void *payload, uint32_t len)
{
	int n = relay_frame_build(send_buf, sizeof(send_buf), type, payload, len);

	return n < 0 ? n : write_frame(rc, send_buf, (size_t)n);
}

/* ---- frames from the relay ---- */

static int on_server_hello(struct relay_client *rc, const struct relay_frame *f)
{
	uint8_t challenge[RELAY_CHALLENGE_LEN];
	int n;

	if (relay_server_hello_parse(f, rc->relay_key, challenge))
		return -EPROTO;
	n = relay_client_hello_build(send_buf, sizeof(send_buf), rc->node_pub, rc->node_priv,
				     rc->relay_key, challenge, rc->o.flags);
	sodium_memzero(challenge, sizeof(challenge));
	if (n < 0)
		return n;
	rc->ph = PH_INFO;
	return write_frame(rc, send_buf, (size_t)n);
}

static void on_server_info(struct relay_client *rc, const struct relay_frame *f)
{
	/* version, keepalive_s[2]: keep alive at least as often as the relay asks. */
	uint64_t ka = ((uint64_t)f->payload[1] << 8 | f->payload[2]) * 1000;

	rc->ph = PH_UP;
	rc->backoff_ms = rc->o.backoff_min_ms;
	rc->restart_pending = 0;
	rc->keepalive_ms = rc->o.timeout_ms / 3;
	if (ka && ka < rc->keepalive_ms)
		rc->keepalive_ms = ka;
	rc->st.connects++;
	log_info("relay connected", "relay=%s port=%u", rc->u.host, rc->u.port);
	tick_arm(rc);
	report(rc, RELAY_CLIENT_CONNECTED, 0);
}

static void on_restarting(struct relay_client *rc, const struct relay_frame *f)
{
	uint64_t in = get32(f->payload);

	/* A relay cannot park us for longer than our own longest backoff. */
	rc->restart_in_ms = in < rc->o.backoff_max_ms ? in : rc->o.backoff_max_ms;
	rc->restart_pending = 1;
	rc->backoff_ms = rc->o.backoff_min_ms;
	log_info("relay restarting", "relay=%s reconnect_in_ms=%llu", rc->u.host,
		 (unsigned long long)rc->restart_in_ms);
	rc_lost(rc, -ECONNRESET);
}

/* 0, or -EPROTO: a frame the relay must not send now. */
static int handle_frame(struct relay_client *rc, const struct relay_frame *f)
{
	const uint8_t *key, *data;
	size_t len;

	switch (f->type) {
	case RELAY_SERVER_HELLO:
		return rc->ph == PH_HELLO ? on_server_hello(rc, f) : -EPROTO;
	case RELAY_SERVER_INFO:
		if (rc->ph != PH_INFO)
			return -EPROTO;
		on_server_info(rc, f);
		return 0;
	case RELAY_RECV_PACKET:
		if (rc->ph != PH_UP)
			return -EPROTO;
		relay_packet_parse(f, &key, &data, &len);
		rc->st.packets_received++;
		rc->st.bytes_received += len;
		rc->cbs.on_packet(rc, key, data, len, rc->arg);
		return 0;
	case RELAY_PEER_GONE:
		if (!memcmp(f->payload, rc->node_pub, KEY_LEN) &&
		    f->payload[KEY_LEN] == RELAY_GONE_NOT_ADMITTED) {
			log_warn("relay refused our key", "relay=%s", rc->u.host);
			rc_lost(rc, -EACCES);
			return 0;
		}
		if (rc->ph != PH_UP)
			return -EPROTO;
		rc->st.peer_gone++;
		if (rc->cbs.on_peer_gone)
			rc->cbs.on_peer_gone(rc, f->payload, f->payload[KEY_LEN], rc->arg);
		return 0;
	case RELAY_PING:
		return rc->ph >= PH_INFO ? send_simple(rc, RELAY_PONG, f->payload, f->len) : -EPROTO;
	case RELAY_RESTARTING:
		on_restarting(rc, f);
		return 0;
	case RELAY_KEEPALIVE:
	case RELAY_PONG:
		return 0;
	case RELAY_HEALTH:
		if (f->len)
			log_warn("relay unhealthy", "relay=%s len=%u", rc->u.host, f->len);
		return 0;
	default:
		return -EPROTO;   /* a client's frame */
	}
}

static int on_frame(const struct relay_frame *f, void *arg)
{
	struct relay_client *rc = arg;
	unsigned gen = rc->gen;
	int r = relay_frame_check(f);

	if (r == -EPROTO) {
		/* A type this version does not know: a newer relay's; DERP clients skip them. */
		log_debug("relay frame of unknown type skipped", "relay=%s type=%u", rc->u.host,
			  f->type);
		return 0;
	}
	if (!r)
		r = handle_frame(rc, f);
	if (r && gen == rc->gen) {
		log_warn("relay protocol error", "relay=%s type=%u error=\"%s\"", rc->u.host,
			 f->type, strerror(-r));
		rc_lost(rc, -EPROTO);
	}
	return gen != rc->gen;   /* a callback stopped or dropped the connection */
}

/* ---- the upgrade ---- */

/* "HTTP/1.x 101 ..." -> 0; 401/403 -> -EACCES; anything else -> -EPROTO. */
static int head_status(struct relay_client *rc, const char *h)
{
	int status;

	if (strncmp(h, "HTTP/1.", 7) || (h[7] != '0' && h[7] != '1') || h[8] != ' ' ||
	    sscanf(h + 9, "%3d", &status) != 1)
		return -EPROTO;
	if (status == 101)
		return 0;
	log_warn("relay answered the upgrade with an error", "relay=%s status=%d", rc->u.host,
		 status);
	return status == 401 || status == 403 ? -EACCES : -EPROTO;
}

/* Takes response head bytes from p: how many (the rest are frames) once the head is whole
 * and says 101, 0 while it is not whole yet (*done unset), or -errno. */
static int head_take(struct relay_client *rc, const uint8_t *p, size_t len, int *done)
{
	size_t old = rc->head_len, room = HEAD_MAX - 1 - old, n = len < room ? len : room;
	size_t from = old > 3 ? old - 3 : 0;
	char *end;
	int r;

	memcpy(rc->head + old, p, n);
	rc->head_len += n;
	rc->head[rc->head_len] = 0;
	*done = 0;
	end = memmem(rc->head + from, rc->head_len - from, "\r\n\r\n", 4);
	if (!end)
		return rc->head_len == HEAD_MAX - 1 ? -EPROTO : 0;
	*end = 0;
	r = head_status(rc, rc->head);
	if (r)
		return r;
	*done = 1;
	return (int)((size_t)(end + 4 - rc->head) - old);
}

static void on_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct relay_client *rc = arg;
	int r, done;

	rc->last_rx_ms = uv_now(rc->loop);
	if (rc->ph == PH_HEAD) {
		r = head_take(rc, buf, len, &done);
		if (r < 0) {
			rc_lost(rc, r);
			return;
		}
		if (!done)
			return;
		free(rc->head);
		rc->head = NULL;
		rc->ph = PH_HELLO;
		buf += r;
		len -= (size_t)r;
	}
	if (!len)
		return;
	r = relay_reader_feed(&rc->rd, buf, len, on_frame, rc);
	if (r < 0) {
		log_warn("relay protocol error", "relay=%s error=\"%s\"", rc->u.host, strerror(-r));
		rc_lost(rc, -EPROTO);
	}
}

static void on_end(struct conn *c, int status, void *arg)
{
	rc_lost(arg, status == UV_EOF || !status ? -ECONNRESET : status);
}

static int send_request(struct relay_client *rc)
{
	char req[512];
	int n;

	n = snprintf(req, sizeof(req),
		     "GET " RELAY_PATH " HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\n"
		     "Upgrade: " RELAY_UPGRADE "\r\n%s\r\n",
		     rc->host_header, rc->o.fast_start ? RELAY_FAST_START ": 1\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(req))
		return -EINVAL;
	return write_frame(rc, req, (size_t)n);
}

static void on_connected(struct conn *c, int status, void *arg)
{
	struct relay_client *rc = arg;
	int r;

	rc->attempt = NULL;
	if (status < 0 || !c) {
		rc_lost(rc, status < 0 ? status : -EIO);
		return;
	}
	rc->c = c;
	conn_set_callbacks(c, on_read, on_end, rc);
	rc->head = malloc(HEAD_MAX);
	if (!rc->head) {
		rc_lost(rc, -ENOMEM);
		return;
	}
	rc->ph = PH_HEAD;
	rc->last_rx_ms = uv_now(rc->loop);   /* the upgrade and hello get a timeout of their own */
	r = send_request(rc);
	if (r)
		rc_lost(rc, r);
}

static void rc_connect(struct relay_client *rc)
{
	unsigned gen = rc->gen;
	int r;

	report(rc, RELAY_CLIENT_CONNECTING, 0);
	if (!rc->active || gen != rc->gen)
		return;   /* the callback stopped us */
	rc->ph = PH_CONNECTING;
	rc->last_rx_ms = uv_now(rc->loop);   /* bounds a connect or handshake that hangs */
	if (rc->tls)
		r = tls_connect(rc->loop, rc->tls, rc->u.host, rc->u.port, on_connected, rc,
				&rc->attempt);
	else
		r = conn_tcp_connect(rc->loop, rc->u.host, rc->u.port, on_connected, rc,
				     &rc->attempt);
	if (r) {
		rc->attempt = NULL;
		rc_lost(rc, r);
		return;
	}
	tick_arm(rc);
}

static void on_retry(uv_timer_t *t)
{
	struct relay_client *rc = t->data;

	if (rc->active && rc->ph == PH_IDLE)
		rc_connect(rc);
}

static void rc_schedule(struct relay_client *rc)
{
	uint64_t delay;

	if (rc->restart_pending) {
		delay = rc->restart_in_ms;
		rc->restart_pending = 0;
	} else {
		delay = backoff_next(&rc->backoff_ms, rc->o.backoff_max_ms);
	}
	log_info("reconnecting to relay", "relay=%s in_ms=%llu", rc->u.host,
		 (unsigned long long)delay);
	uv_timer_start(&rc->retry, on_retry, delay, 0);
}

/* ---- keepalive and silence ---- */

static void on_tick(uv_timer_t *t)
{
	struct relay_client *rc = t->data;
	uint64_t now = uv_now(rc->loop);

	if (rc->ph == PH_IDLE)
		return;
	if (now - rc->last_rx_ms >= rc->o.timeout_ms) {
		log_warn("relay silent, reconnecting", "relay=%s idle_ms=%llu", rc->u.host,
			 (unsigned long long)(now - rc->last_rx_ms));
		rc_lost(rc, -ETIMEDOUT);
		return;
	}
	if (rc->ph == PH_UP && now - rc->last_tx_ms >= rc->keepalive_ms &&
	    send_simple(rc, RELAY_KEEPALIVE, "", 0)) {
		rc_lost(rc, -EPIPE);
		return;
	}
	tick_arm(rc);
}

/* One timer for both: it fires when the next of the two is due and re-checks then, so
 * reads and writes only store a time. */
static void tick_arm(struct relay_client *rc)
{
	uint64_t now = uv_now(rc->loop), due = rc->last_rx_ms + rc->o.timeout_ms;

	if (rc->ph == PH_UP && rc->last_tx_ms + rc->keepalive_ms < due)
		due = rc->last_tx_ms + rc->keepalive_ms;
	uv_timer_start(&rc->tick, on_tick, due > now ? due - now : 0, 0);
}

/* ---- the interface ---- */

static int opts_copy(struct relay_client *rc, const struct relay_client_opts *opts)
{
	uint8_t pin[32];

	if (!opts->url || !opts->node_pub || !opts->node_priv ||
	    strlen(opts->url) >= sizeof(rc->url))
		return -EINVAL;
	rc->o = *opts;
	snprintf(rc->url, sizeof(rc->url), "%s", opts->url);
	rc->o.url = rc->url;
	rc->o.pin = NULL;
	if (opts->pin && *opts->pin) {
		if (tls_pin_parse(opts->pin, pin))
			return -EINVAL;
		snprintf(rc->pin, sizeof(rc->pin), "%s", opts->pin);
		rc->o.pin = rc->pin;
	}
	if (http_url_parse(rc->url, &rc->u) ||
	    (rc->u.scheme != HTTP_SCHEME_HTTPS && rc->u.scheme != HTTP_SCHEME_HTTP))
		return -EINVAL;
	http_url_host_header(&rc->u, rc->host_header, sizeof(rc->host_header));
	memcpy(rc->node_pub, opts->node_pub, KEY_LEN);
	memcpy(rc->node_priv, opts->node_priv, KEY_LEN);
	rc->o.node_pub = rc->node_pub;
	rc->o.node_priv = rc->node_priv;
	if (!rc->o.backoff_min_ms)
		rc->o.backoff_min_ms = DEFAULT_BACKOFF_MIN_MS;
	if (!rc->o.backoff_max_ms)
		rc->o.backoff_max_ms = DEFAULT_BACKOFF_MAX_MS;
	if (!rc->o.timeout_ms)
		rc->o.timeout_ms = (uint64_t)RELAY_TIMEOUT_S * 1000;
	if (!rc->o.max_pending)
		rc->o.max_pending = DEFAULT_MAX_PENDING;
	if (rc->o.backoff_min_ms > rc->o.backoff_max_ms || rc->o.timeout_ms < 3)
		return -EINVAL;
	rc->backoff_ms = rc->o.backoff_min_ms;
	rc->keepalive_ms = rc->o.timeout_ms / 3;
	return 0;
}

int relay_client_new(uv_loop_t *loop, const struct relay_client_opts *opts,
		     const struct relay_client_cbs *cbs, void *arg, struct relay_client **out)
{
	struct relay_client *rc;
	int r;

	*out = NULL;
	if (!loop || !opts || !cbs || !cbs->on_packet || keys_init())
		return -EINVAL;
	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	r = opts_copy(rc, opts);
	if (r)
		goto err_free;
	if (rc->u.scheme == HTTP_SCHEME_HTTPS) {
		r = tls_config_client_new(NULL, rc->o.pin, &rc->tls);
		if (r)
			goto err_free;
	}
	rc->loop = loop;
	rc->cbs = *cbs;
	rc->arg = arg;
	uv_timer_init(loop, &rc->retry);
	uv_timer_init(loop, &rc->tick);
	rc->retry.data = rc;
	rc->tick.data = rc;
	*out = rc;
	return 0;
err_free:
	sodium_memzero(rc, sizeof(*rc));
	free(rc);
	return r;
}

int relay_client_start(struct relay_client *rc)
{
	if (rc->freeing)
		return -ESHUTDOWN;
	if (rc->active)
		return 0;
	rc->active = 1;
	rc->backoff_ms = rc->o.backoff_min_ms;
	/* From the loop, so that no callback runs inside this call. */
	uv_timer_start(&rc->retry, on_retry, 0, 0);
	return 0;
}

void relay_client_stop(struct relay_client *rc)
{
	if (!rc)
		return;
	rc->active = 0;
	rc->restart_pending = 0;
	rc_drop(rc);
	uv_timer_stop(&rc->retry);
}

int relay_client_send(struct relay_client *rc, const uint8_t dst[KEY_LEN], const void *data,
		      size_t len)
{
	if (len > RELAY_MAX_PACKET)
		return -EMSGSIZE;
	if (rc->ph != PH_UP)
		return -ENOTCONN;
	if (conn_pending(rc->c) > rc->o.max_pending) {
		rc->st.packets_dropped++;
		return -ENOBUFS;
	}
	uint8_t hdr[PACKET_HDR];

	relay_packet_header(hdr, RELAY_SEND_PACKET, dst, len);
	if (write_parts(rc, hdr, sizeof(hdr), data, len)) {
		rc->st.packets_dropped++;
		return -ENOTCONN;   /* breaking: on_end follows */
	}
	rc->st.packets_sent++;
	rc->st.bytes_sent += len;
	return 0;
}

int relay_client_connected(const struct relay_client *rc)
{
	return rc->ph == PH_UP;
}

size_t relay_client_pending(const struct relay_client *rc)
{
	return rc->c ? conn_pending(rc->c) : 0;
}

int relay_client_local(const struct relay_client *rc, struct addr_port *out)
{
	if (!rc->c || !rc->c->local.family)
		return -ENOTCONN;
	*out = rc->c->local;
	return 0;
}

const uint8_t *relay_client_relay_key(const struct relay_client *rc)
{
	return rc->relay_key;
}

void relay_client_get_stats(const struct relay_client *rc, struct relay_client_stats *out)
{
	*out = rc->st;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct relay_client *rc = h->data;

	if (--rc->open_handles == 0)
		free(rc);
}

void relay_client_free(struct relay_client *rc)
{
	if (!rc || rc->freeing)
		return;
	relay_client_stop(rc);
	rc->freeing = 1;
	tls_config_free(rc->tls);
	rc->tls = NULL;
	relay_reader_free(&rc->rd);
	sodium_memzero(rc->node_priv, sizeof(rc->node_priv));
	rc->open_handles = 2;
	uv_close((uv_handle_t *)&rc->retry, on_handle_closed);
	uv_close((uv_handle_t *)&rc->tick, on_handle_closed);
}
