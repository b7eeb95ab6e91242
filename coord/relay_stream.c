/* relay_stream.c - what relays are told: GET /v1/relay/stream with a relay token is a
 * chunked stream of JSON lines naming the node keys a relay may carry (one "full", then
 * "add" / "remove" as nodes become visible or stop being so; a relay that reconnects with
 * ?since=V&epoch=E gets one "resume" with only what changed, netmap_ver.c's versions);
 * POST /v1/relay/pin records
 * the relay's certificate pin and STUN port. Owns co->relay_watchers; the stream
 * plumbing (writes, slow-reader cut, deferred free) is netmap.c's. */
#include <errno.h>
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

/* A growing text of quoted keys. */
struct keylist {
	char *buf;
	size_t len, cap;
	int any;
};

static int keylist_add(struct keylist *k, const uint8_t key[KEY_LEN])
{
	char b64[KEY_B64_LEN];

	if (k->len + KEY_B64_LEN + 4 > k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 4096;
		char *nb = realloc(k->buf, cap);

		if (!nb)
			return -ENOMEM;
		k->buf = nb;
		k->cap = cap;
	}
	key_to_base64(key, b64);
	k->len += (size_t)snprintf(k->buf + k->len, k->cap - k->len, "%s\"%s\"", k->any ? "," : "",
				   b64);
	k->any = 1;
	return 0;
}

static int gone_key(const struct nmlog_gone *g, void *arg)
{
	/* An entry without the key it had (an older coord wrote it): no resume. */
	return g->has_key ? keylist_add(arg, g->key) : -ENOKEY;
}

/* {"type":"full","v":V,"epoch":E,"nodes":["<node key>",...]}: every visible node; or
 * since >= 0: {"type":"resume",...,"remove":[...],"add":[...]} (applied in that order)
 * with the keys that left after since and the visible nodes that changed after it. */
static char *stream_text(struct coord *co, int64_t since, size_t *out_len)
{
	struct keylist add = { 0 }, rm = { 0 };
	char *buf = NULL;
	size_t cap;
	int rc = 0;

	if (since >= 0)
		rc = nmlog_foreach_after(&co->nm.log, since, gone_key, &rm);
	for (struct node *n = co->nodes_head; n && !rc; n = n->next) {
		if (since >= 0 && n->nm_ver <= since)
			continue;
		if (coord_node_visible(n))
			rc = keylist_add(&add, n->rec.node_key);
		else if (since >= 0)
			rc = keylist_add(&rm, n->rec.node_key);
	}
	cap = add.len + rm.len + 128;
	if (!rc && (buf = malloc(cap))) {
		if (since < 0)
			*out_len = (size_t)snprintf(buf, cap, "{\"type\":\"full\",\"nodes\":[%.*s],"
						    "\"v\":%lld,\"epoch\":\"%s\"}\n", (int)add.len,
						    add.buf ? add.buf : "", (long long)netmap_version(co),
						    co->nm.log.epoch);
		else
			*out_len = (size_t)snprintf(buf, cap, "{\"type\":\"resume\",\"remove\":[%.*s],"
						    "\"add\":[%.*s],\"v\":%lld,\"epoch\":\"%s\"}\n",
						    (int)rm.len, rm.buf ? rm.buf : "", (int)add.len,
						    add.buf ? add.buf : "", (long long)netmap_version(co),
						    co->nm.log.epoch);
	}
	free(add.buf);
	free(rm.buf);
	if (rc == -ENOKEY && since >= 0)
		return stream_text(co, -1, out_len);
	return buf;
}

void relay_stream_on_stream(struct coord *co, struct http_request *req)
{
	struct relay *r;
	struct watcher *w;
	int64_t since = -1;
	size_t len = 0;
	char *buf;

	if (coord_guard_shed(co, req, COORD_SHED_RELAY))
		return;
	/* Before the lookup (a feed catch-up may free relays). A relay resumes only from a
	 * version of this run: the old keys of nodes rekeyed before it are not known here.
	 * Relays are few; a full key list each after a restart is cheap. */
	if (netmap_resume_point(co, req, &since) || since < co->nm.start_head)
		since = -1;
	r = relay_auth(co, req);
	if (!r)
		return;
	if (!(w = netmap_stream_start(co, req)))
		return;
	w->relay = r;
	watcher_list_add(&co->relay_watchers, w);
	buf = stream_text(co, since, &len);
	if (!buf) {
		netmap_stream_kill(co, w);
		netmap_reap(co);
		return;
	}
	if (!strncmp(buf, "{\"type\":\"resume\"", 17))
		co->nm.relay_resumes++;
	co->broadcasting++;
	netmap_stream_send(co, w, buf, len);
	co->broadcasting--;
	free(buf);
	netmap_reap(co);
	log_info("relay connected", "name=%s resumed=%d", r->rec.name, since >= 0);
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
	n = snprintf(line, sizeof(line), "{\"type\":\"%s\",\"node_key\":\"%s\",\"v\":%lld}\n", type,
		     b64, (long long)netmap_version(co));
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
	char line[64];
	int len = snprintf(line, sizeof(line), "{\"type\":\"keepalive\",\"v\":%lld}\n",
			   (long long)netmap_version(co));

	netmap_stream_send_all(co, co->relay_watchers, line, (size_t)len);
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
