/* relay_stream.c - what relays are told: GET /v1/relay/stream with a relay token is a
 * chunked stream of JSON lines naming the node keys a relay may carry (one "full", then
 * "add" / "remove" as nodes become visible or stop being so); POST /v1/relay/pin records
 * the relay's certificate pin and STUN port. Owns co->relay_watchers; the stream
 * plumbing (writes, slow-reader cut, deferred free) is netmap.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "meshvpn/json.h"
#include "meshvpn/log.h"

static struct relay *relay_auth(struct coord *co, struct http_request *req)
{
	struct relay *r = coord_relay_by_token(co, api_bearer(req));

	if (!r)
		http_respond_error(req, 401, "unknown relay token");
	return r;
}

/* {"type":"full","nodes":["<node key>",...]}: every visible node. */
static char *full_text(struct coord *co, size_t *out_len)
{
	char b64[KEY_B64_LEN];
	size_t len = 0, cap = 64;
	char *buf;

	for (struct node *n = co->nodes_head; n; n = n->next)
		cap += KEY_B64_LEN + 3;
	buf = malloc(cap);
	if (!buf)
		return NULL;
	len = (size_t)snprintf(buf, cap, "{\"type\":\"full\",\"nodes\":[");
	for (struct node *n = co->nodes_head; n; n = n->next) {
		if (!coord_node_visible(n))
			continue;
		key_to_base64(n->rec.node_key, b64);
		len += (size_t)snprintf(buf + len, cap - len, "%s\"%s\"",
					buf[len - 1] == '[' ? "" : ",", b64);
	}
	len += (size_t)snprintf(buf + len, cap - len, "]}\n");
	*out_len = len;
	return buf;
}

void relay_stream_on_stream(struct coord *co, struct http_request *req)
{
	struct relay *r;
	struct watcher *w;
	size_t len = 0;
	char *buf;

	if (coord_guard_shed(co, req, COORD_SHED_RELAY))
		return;
	r = relay_auth(co, req);
	if (!r || !(w = netmap_stream_start(co, req)))
		return;
	w->relay = r;
	watcher_list_add(&co->relay_watchers, w);
	buf = full_text(co, &len);
	if (!buf) {
		netmap_stream_kill(co, w);
		netmap_reap(co);
		return;
	}
	co->broadcasting++;
	netmap_stream_send(co, w, buf, len);
	co->broadcasting--;
	free(buf);
	netmap_reap(co);
	log_info("relay connected", "name=%s", r->rec.name);
}

void relay_stream_on_pin(struct coord *co, struct http_request *req)
{
	struct relay *r = relay_auth(co, req);
	char err[80];
	json_t *b;
	int rc;

	if (!r || !(b = api_body_json(co, req)))
		return;
	rc = coord_relay_report(co, r, b, err, sizeof(err));
	if (rc)
		http_respond_error(req, api_status(rc), err);
	else
		http_respond_json(req, 200, json_pack("{s:b}", "ok", 1));
	json_decref(b);
}

static void key_line(struct coord *co, const char *type, const uint8_t key[KEY_LEN])
{
	char b64[KEY_B64_LEN], line[128];
	int n;

	key_to_base64(key, b64);
	n = snprintf(line, sizeof(line), "{\"type\":\"%s\",\"node_key\":\"%s\"}\n", type, b64);
	netmap_stream_send_all(co, co->relay_watchers, line, (size_t)n);
}

void relay_stream_key_added(struct coord *co, const uint8_t key[KEY_LEN])
{
	key_line(co, "add", key);
}

void relay_stream_key_removed(struct coord *co, const uint8_t key[KEY_LEN])
{
	key_line(co, "remove", key);
}

void relay_stream_keepalive(struct coord *co)
{
	netmap_stream_send_all(co, co->relay_watchers, COORD_KEEPALIVE_LINE,
			       sizeof(COORD_KEEPALIVE_LINE) - 1);
}

int relay_stream_connected(struct coord *co, int64_t relay_id)
{
	for (struct watcher *w = co->relay_watchers; w; w = w->next)
		if (w->relay && !w->dead && w->relay->rec.id == relay_id)
			return 1;
	return 0;
}

void relay_stream_detach(struct coord *co, struct relay *r)
{
	for (struct watcher *w = co->relay_watchers; w; w = w->next)
		if (w->relay == r)
			netmap_stream_kill(co, w);
	netmap_reap(co);
}

void relay_stream_close_all(struct coord *co)
{
	for (struct watcher *w = co->relay_watchers; w; w = w->next)
		netmap_stream_kill(co, w);
	netmap_reap(co);
}

void relay_stream_reap(struct coord *co)
{
	struct watcher *w, *next;

	for (w = co->relay_watchers; w; w = next) {
		next = w->next;
		if (!w->dead)
			continue;
		if (w->stream) {
			http_stream_end(w->stream);
			w->stream = NULL;
		}
		watcher_list_remove(&co->relay_watchers, w);
		free(w);
	}
}
