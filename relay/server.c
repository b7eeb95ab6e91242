/* server.c - the relay's core: TLS and plain-HTTP listeners into one HTTP server whose
 * `GET /relay` upgrade hands connections to client.c; `/` and `/healthz` for people and
 * proxies; the tick (keepalives, timeouts) and the resume timer (forward.c's pauses). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "meshvpn/addr.h"
#include "meshvpn/log.h"
#include "relay.h"

const char *const relay_refuse_names[REFUSE_N] = {
	"not_admitted", "bad_hello", "timeout", "protocol", "oversize", "left",
};
const char *const relay_close_names[CLOSE_N] = {
	"peer", "timeout", "protocol", "oversize", "replaced", "not_admitted", "stopping",
};
const char *const relay_drop_names[DROP_N] = { "queue_full", "unknown_destination", "oversize" };

void relay_opts_default(struct relay_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->keepalive_ms = RELAY_KEEPALIVE_S * 1000ULL;
	o->timeout_ms = RELAY_TIMEOUT_S * 1000ULL;
	o->hello_timeout_ms = RELAY_HELLO_TIMEOUT_MS;
	o->queue_max = RELAY_QUEUE_MAX;
	o->pause_ms = RELAY_PAUSE_MS;
	o->http.max_header_bytes = 8192;
	o->http.max_body_bytes = 1024;
	o->http.header_timeout_ms = 10000;
	o->http.idle_timeout_ms = 30000;
}

void relay_key_short(const uint8_t key[KEY_LEN], char out[RELAY_KEY_SHORT])
{
	char b64[KEY_B64_LEN];

	key_to_base64(key, b64);
	memcpy(out, b64, RELAY_KEY_SHORT - 1);
	out[RELAY_KEY_SHORT - 1] = 0;
}

static int is_upgrade(const struct http_request *req)
{
	const char *up = http_request_header(req, "Upgrade");

	return up && !strcasecmp(up, RELAY_UPGRADE);
}

static void on_request(struct http_request *req, void *arg)
{
	static const char page[] = "meshvpn relay\n\nNodes connect to /relay with "
				   "\"Upgrade: " RELAY_UPGRADE "\".\n";
	struct relay_server *s = arg;
	size_t plen = strcspn(req->path, "?");
	int get = !strcmp(req->method, "GET");

	if (get && plen == strlen(RELAY_PATH) && !strncmp(req->path, RELAY_PATH, plen)) {
		if (s->stopping)
			http_respond(req, 503, "text/plain", NULL, "stopping\n", 9);
		else if (!is_upgrade(req))
			http_respond(req, 426, "text/plain", "Upgrade: " RELAY_UPGRADE "\r\n",
				     "upgrade required\n", 17);
		else
			relay_client_accept(s, req);
	} else if (get && plen == 1 && req->path[0] == '/') {
		http_respond(req, 200, "text/plain", NULL, page, sizeof(page) - 1);
	} else if (get && plen == 8 && !strncmp(req->path, "/healthz", 8)) {
		if (s->stopping)
			http_respond(req, 503, "text/plain", NULL, "stopping\n", 9);
		else
			http_respond(req, 200, "text/plain", NULL, "ok\n", 3);
	} else {
		http_respond(req, 404, "text/plain", NULL, "not found\n", 10);
	}
}

static void on_tls_connection(uv_stream_t *listener, int status)
{
	struct relay_server *s = listener->data;
	struct conn *c;

	if (status < 0 || s->stopping)
		return;
	if (!tls_accept(s->tls, listener, &c))
		http_server_add_conn(s->http, c);
}

static void on_plain_connection(uv_stream_t *listener, int status)
{
	struct relay_server *s = listener->data;
	struct conn *c;

	if (status < 0 || s->stopping)
		return;
	if (!conn_plain_accept(listener, &c))
		http_server_add_conn(s->http, c);
}

static void on_tick(uv_timer_t *t)
{
	relay_clients_tick(t->data);
}

/* Often enough that the shortest of the deadlines is kept to within a quarter of it. */
static uint64_t tick_ms(const struct relay_opts *o)
{
	uint64_t ms = o->keepalive_ms;

	if (o->timeout_ms < ms)
		ms = o->timeout_ms;
	if (o->hello_timeout_ms < ms)
		ms = o->hello_timeout_ms;
	ms /= 4;
	if (ms > 1000)
		ms = 1000;
	return ms < 10 ? 10 : ms;
}

int relay_server_init(struct relay_server *s, uv_loop_t *loop, const struct relay_opts *o,
		      const uint8_t pub[KEY_LEN], const uint8_t priv[KEY_LEN])
{
	int rc;

	memset(s, 0, sizeof(*s));
	s->loop = loop;
	if (o)
		s->o = *o;
	else
		relay_opts_default(&s->o);
	if (!s->o.keepalive_ms || !s->o.timeout_ms || !s->o.hello_timeout_ms || !s->o.queue_max)
		return -EINVAL;
	memcpy(s->pub, pub, KEY_LEN);
	memcpy(s->priv, priv, KEY_LEN);
	keymap_init(&s->by_key);
	keymap_init(&s->admitted);
	s->scratch = malloc(RELAY_HDR_LEN + RELAY_MAX_PAYLOAD);
	if (!s->scratch)
		return -ENOMEM;
	rc = http_server_new(loop, &s->o.http, on_request, s, &s->http);
	if (rc) {
		free(s->scratch);
		s->scratch = NULL;
		return rc;
	}
	uv_timer_init(loop, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, on_tick, tick_ms(&s->o), tick_ms(&s->o));
	uv_timer_init(loop, &s->resume);
	s->resume.data = s;
	return 0;
}

int relay_server_listen_tls(struct relay_server *s, const char *hostport, struct tls_config *tls)
{
	int rc;

	s->tls = tls;
	s->tls_tcp.data = s;
	rc = conn_listen_tcp(s->loop, hostport, &s->tls_tcp, on_tls_connection);
	if (!rc)
		s->have_tls = 1;
	return rc;
}

int relay_server_listen_plain(struct relay_server *s, const char *hostport)
{
	int rc;

	s->plain_tcp.data = s;
	rc = conn_listen_tcp(s->loop, hostport, &s->plain_tcp, on_plain_connection);
	if (!rc)
		s->have_plain = 1;
	return rc;
}

uint16_t relay_server_port(struct relay_server *s, int tls)
{
	struct sockaddr_storage ss;
	struct addr_port a;
	int len = sizeof(ss);

	if (!(tls ? s->have_tls : s->have_plain) ||
	    uv_tcp_getsockname(tls ? &s->tls_tcp : &s->plain_tcp, (struct sockaddr *)&ss, &len) ||
	    addr_from_sockaddr((struct sockaddr *)&ss, &a))
		return 0;
	return a.port;
}

void relay_server_stop(struct relay_server *s, int restarting)
{
	uint8_t frame[RELAY_HDR_LEN + 8];
	/* reconnect in 1 s, keep trying for 30 s: a restart takes about that */
	const uint8_t ms[8] = { 0, 0, 0x03, 0xe8, 0, 0, 0x75, 0x30 };

	if (s->stopping)
		return;
	s->stopping = 1;
	relay_frame_build(frame, sizeof(frame), RELAY_RESTARTING, ms, sizeof(ms));
	if (s->have_tls)
		uv_close((uv_handle_t *)&s->tls_tcp, NULL);
	if (s->have_plain)
		uv_close((uv_handle_t *)&s->plain_tcp, NULL);
	s->have_tls = s->have_plain = 0;
	while (s->clients) {
		struct relay_client *cl = s->clients;

		if (cl->state == RC_ACTIVE) {
			if (restarting)
				relay_client_send(cl, frame, sizeof(frame));
			relay_client_close(cl, CLOSE_STOPPING);
		} else {
			relay_client_refuse(cl, REFUSE_LEFT);
		}
	}
	if (s->http) {
		http_server_free(s->http);
		s->http = NULL;
	}
	uv_timer_stop(&s->tick);
	uv_timer_stop(&s->resume);
	uv_close((uv_handle_t *)&s->tick, NULL);
	uv_close((uv_handle_t *)&s->resume, NULL);
	log_info("relay stopped", "restarting=%d", restarting);
}

void relay_server_close(struct relay_server *s)
{
	relay_admit_free(s);
	keymap_free(&s->by_key);
	tls_config_free(s->tls);
	s->tls = NULL;
	free(s->scratch);
	s->scratch = NULL;
	sodium_memzero(s->priv, sizeof(s->priv));
}
