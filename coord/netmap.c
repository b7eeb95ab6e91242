/* netmap.c - what every node is told, as JSON lines on a chunked stream: one "full"
 * netmap, then deltas. A change is serialised once and written to the watchers that see
 * it: O(watchers), never a recompute of the whole tailnet. Each node's peer entry is
 * cached as text, so a full netmap is a concatenation. Also the stream plumbing that
 * relay_stream.c shares: writes with the slow-reader cut, and the deferred free. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "meshvpn/json.h"
#include "meshvpn/log.h"
#include "meshvpn/zlines.h"

/* Online: its stream is open here, or (several instances) at another live instance. */
int netmap_node_online(const struct node *n)
{
	return (n->watcher && !n->watcher->dead && n->watcher->stream) || n->remote_online ||
	       (n->grace_until && coord_now() < n->grace_until);
}

char *netmap_line_versioned(struct coord *co, const char *line, size_t len, size_t *out_len)
{
	char tail[40];
	int tl = snprintf(tail, sizeof(tail), ",\"v\":%lld}", (long long)netmap_version(co));
	size_t end = len;
	char *out;

	/* Before the object's closing brace, so that a line still starts with its type. */
	while (end && line[end - 1] != '}')
		end--;
	if (!end || !(out = malloc(len + (size_t)tl)))
		return NULL;
	memcpy(out, line, end - 1);
	memcpy(out + end - 1, tail, (size_t)tl);
	memcpy(out + end - 1 + tl, line + end, len - end);
	*out_len = len - 1 + (size_t)tl;
	return out;
}

void netmap_invalidate(struct node *n)
{
	free(n->peer_json);
	n->peer_json = NULL;
	n->peer_json_len = 0;
}

static json_t *tags_json(const char *tags)
{
	json_t *a = json_array();
	char buf[STORE_TAGS_LEN], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", tags);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		json_array_append_new(a, json_string(t));
	return a;
}

/* A node without a name yet (pending) shows the label it asked for, "requested_name" too,
 * no fqdn, and the unspecified addresses 0.0.0.0 and ::, which vpnd never configures. */
json_t *netmap_node_json(struct coord *co, const struct node *n, int self)
{
	char v4[16], v6[48], fqdn[STORE_NAME_LEN + 70], label[STORE_NAME_LEN];
	const char *name = coord_node_label(n, label);
	json_t *o, *eps = json_array();

	ip4_to_text(n->rec.ipv4, v4, sizeof(v4));
	ip6_to_text(n->rec.ipv6, v6, sizeof(v6));
	if (n->rec.name[0])
		snprintf(fqdn, sizeof(fqdn), "%s.%s", n->rec.name, co->domain);
	else
		fqdn[0] = 0;
	for (int i = 0; i < n->n_endpoints; i++)
		json_array_append_new(eps, json_string(n->endpoints[i]));
	o = json_pack("{s:I, s:s, s:s, s:[s,s], s:o, s:s, s:b, s:s, s:o, s:I}",
		      "id", (json_int_t)n->rec.id, "name", name, "fqdn", fqdn,
		      "ips", v4, v6, "endpoints", eps, "home_relay", n->home_relay,
		      "online", netmap_node_online(n), "os", n->rec.os,
		      "tags", tags_json(n->rec.tags), "last_seen", (json_int_t)n->rec.last_seen);
	if (!o)
		return NULL;
	json_set_key(o, "node_key", n->rec.node_key);
	json_set_key(o, "disco_key", n->rec.disco_key);
	if (!n->rec.name[0])
		json_object_set_new(o, "requested_name", json_string(name));
	if (self) {
		json_object_set_new(o, "state", json_string(node_status_name(coord_node_state(n))));
		json_object_set_new(o, "hostname", json_string(n->rec.hostname));
		json_object_set_new(o, "key_expiry", json_integer(n->rec.key_expiry));
		json_object_set_new(o, "ephemeral", json_boolean(n->rec.ephemeral));
	}
	return o;
}

static int peer_text(struct coord *co, struct node *n)
{
	json_t *o;

	if (n->peer_json)
		return 0;
	o = netmap_node_json(co, n, 0);
	if (!o)
		return -ENOMEM;
	n->peer_json = json_dump_compact(o, &n->peer_json_len);
	json_decref(o);
	return n->peer_json ? 0 : -ENOMEM;
}

json_t *netmap_relays_json(struct coord *co)
{
	json_t *a = json_array();
	char stun[COORD_STUN_TEXT_MAX];

	for (struct relay *r = co->relays; r; r = r->next) {
		coord_relay_stun(&r->rec, stun, sizeof(stun));
		json_array_append_new(a, json_pack("{s:I, s:s, s:s, s:s, s:s}", "id",
						   (json_int_t)r->rec.id, "name", r->rec.name,
						   "url", r->rec.url, "pin", r->rec.pin, "stun", stun));
	}
	return a;
}

/* --- watcher lifetime: never freed while a fan-out iterates --- */

void watcher_list_remove(struct watcher **head, struct watcher *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		*head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
}

void watcher_list_add(struct watcher **head, struct watcher *w)
{
	w->prev = NULL;
	w->next = *head;
	if (*head)
		(*head)->prev = w;
	*head = w;
}

/* A node's stream is over: from now on it is offline. */
static void watcher_finish(struct coord *co, struct watcher *w)
{
	struct node *n = w->node;

	if (w->stream) {
		http_stream_end(w->stream);
		w->stream = NULL;
	}
	watcher_list_remove(&co->node_watchers, w);
	co->n_watchers--;
	n->watcher = NULL;
	n->grace_until = 0;
	n->disconnected_at = coord_now();
	n->rec.last_seen = coord_now();
	if (!strcmp(n->rec.online, co->instance)) {
		n->rec.online[0] = 0;
		/* A deleted node has no row left to write; a write the database was away for
		 * is made again once it is back (coord_nodes_live_resave). */
		if (!w->quiet && store_node_offline_if(co->st, n->rec.id, NULL, n->disconnected_at) ==
				 -ENOTCONN)
			n->live_unsaved = co->live_unsaved = 1;
	}
	netmap_invalidate(n);
	if (!w->quiet && coord_node_visible(n))
		netmap_online_changed(co, n);
	free(w);
}

/* Frees the dead watchers, unless a fan-out is iterating the lists. */
void netmap_reap(struct coord *co)
{
	struct watcher *w;

	if (co->broadcasting || !co->dead_pending)
		return;
	co->dead_pending = 0;
again:
	for (w = co->node_watchers; w; w = w->next) {
		if (w->dead) {
			watcher_finish(co, w);
			goto again;   /* finishing fans out, which may change the list */
		}
	}
	relay_stream_reap(co);
}

void netmap_stream_kill(struct coord *co, struct watcher *w)
{
	w->dead = 1;
	co->dead_pending = 1;
}

static void on_stream_close(struct http_stream *s, void *arg)
{
	struct watcher *w = arg;

	(void)s;
	w->stream = NULL;   /* the server frees it */
	netmap_stream_kill(w->co, w);
	netmap_reap(w->co);
}

static void release_packed(void *ctx)
{
	free(ctx);
}

int netmap_stream_send(struct coord *co, struct watcher *w, const char *line, size_t len)
{
	uint8_t *packed = NULL;
	size_t sent = len;
	int rc;

	if (w->dead || !w->stream)
		return -EPIPE;
	/* Big lines (full, resume, DNS) packed for a reader that asked; when packing fails
	 * the plain line is as good. */
	if (w->zstd && len >= ZLINES_MIN && zlines_pack(line, len, &packed, &sent))
		sent = len;
	/* A packed frame is this watcher's alone: handed over, not copied. */
	rc = packed ? http_stream_write_ref(w->stream, packed, sent, release_packed, packed)
		    : http_stream_write(w->stream, line, sent);
	if (rc) {
		netmap_stream_kill(co, w);
		return -EPIPE;
	}
	co->stats.deltas_sent++;
	co->stats.bytes_sent += sent;
	co->stats.bytes_uncompressed += len;
	if (http_stream_pending(w->stream) > COORD_STREAM_MAX_PENDING + sent) {
		/* It reconnects and gets a fresh full netmap; holding megabytes for one slow
		 * reader would let it exhaust our memory. The line just written does not count:
		 * one big line (a full map with a large DNS policy) is not falling behind. */
		co->stats.slow_watchers_cut++;
		log_warn("slow netmap reader cut off", "node=%s pending=%zu",
			 w->node ? w->node->rec.name : "relay", http_stream_pending(w->stream));
		netmap_stream_kill(co, w);
		return -ENOBUFS;
	}
	return 0;
}

/* To every node that sees `about` (visible nodes other than itself), with the version. */
static void broadcast(struct coord *co, const char *line, size_t len, const struct node *about)
{
	size_t vl;
	char *v = netmap_line_versioned(co, line, len, &vl);

	if (!v)
		return;
	co->broadcasting++;
	for (struct watcher *w = co->node_watchers; w; w = w->next)
		if (w->node != about && !w->dead && coord_node_visible(w->node))
			netmap_stream_send(co, w, v, vl);
	co->broadcasting--;
	free(v);
	netmap_reap(co);
}

static void broadcast_json(struct coord *co, json_t *msg, const struct node *about)
{
	size_t len;
	char *s;

	if (!msg)
		return;
	s = json_dump_compact(msg, &len);
	json_decref(msg);
	if (!s)
		return;
	s = realloc(s, len + 2);
	if (s) {
		s[len] = '\n';
		broadcast(co, s, len + 1, about);
	}
	free(s);
}

/* A peer entry wrapped as {"type":T,"peer":{...}}. */
static void broadcast_peer(struct coord *co, struct node *n, const char *type)
{
	char head[48];
	size_t hl, len;
	char *line;

	if (peer_text(co, n))
		return;
	hl = (size_t)snprintf(head, sizeof(head), "{\"type\":\"%s\",\"peer\":", type);
	len = hl + n->peer_json_len + 2;
	line = malloc(len);
	if (!line)
		return;
	memcpy(line, head, hl);
	memcpy(line + hl, n->peer_json, n->peer_json_len);
	line[len - 2] = '}';
	line[len - 1] = '\n';
	broadcast(co, line, len, n);
	free(line);
}

void netmap_peer_added(struct coord *co, struct node *n)
{
	netmap_touch(co, n, netmap_stamp(co), 1);
	broadcast_peer(co, n, "peer_added");
	relay_stream_key_added(co, n->rec.node_key);
}

void netmap_peer_changed(struct coord *co, struct node *n)
{
	netmap_touch(co, n, netmap_stamp(co), 1);
	broadcast_peer(co, n, "peer_changed");
}

void netmap_peer_removed(struct coord *co, struct node *n)
{
	char b64[KEY_B64_LEN], line[160];
	int len;

	/* Under the key it has now: a rekey removes the old one first. */
	netmap_touch(co, n, netmap_stamp(co), 1);
	nmlog_add(&co->nm.log, n->nm_ver, n->rec.id, n->rec.node_key);
	key_to_base64(n->rec.node_key, b64);
	len = snprintf(line, sizeof(line), "{\"type\":\"peer_removed\",\"id\":%lld,\"node_key\":\"%s\"}\n",
		       (long long)n->rec.id, b64);
	broadcast(co, line, (size_t)len, n);
	relay_stream_key_removed(co, n->rec.node_key);
}

void netmap_endpoints_changed(struct coord *co, struct node *n)
{
	json_t *eps = json_array();

	netmap_touch(co, n, netmap_stamp(co), 0);
	for (int i = 0; i < n->n_endpoints; i++)
		json_array_append_new(eps, json_string(n->endpoints[i]));
	broadcast_json(co, json_pack("{s:s, s:I, s:o, s:s}", "type", "endpoints",
				     "id", (json_int_t)n->rec.id, "endpoints", eps,
				     "home_relay", n->home_relay), n);
}

void netmap_online_changed(struct coord *co, struct node *n)
{
	char line[128];
	int len = snprintf(line, sizeof(line), "{\"type\":\"online\",\"id\":%lld,\"online\":%s,\"last_seen\":%lld}\n",
			   (long long)n->rec.id, netmap_node_online(n) ? "true" : "false",
			   (long long)n->rec.last_seen);

	netmap_touch(co, n, netmap_stamp(co), 0);
	broadcast(co, line, (size_t)len, n);
}

void netmap_relays_changed(struct coord *co)
{
	co->nm.relays_ver = netmap_stamp(co);
	broadcast_json(co, json_pack("{s:s, s:o}", "type", "relays", "relays", netmap_relays_json(co)),
		       NULL);
}

/* Each running node's "dns" depends on its tags: the line is built once per distinct
 * set of relevant tags (dns.c keeps them) and written to every watcher that has it. */
void netmap_dns_changed(struct coord *co)
{
	co->nm.dns_ver = netmap_stamp(co);
	co->broadcasting++;
	for (struct watcher *w = co->node_watchers; w; w = w->next) {
		const char *line;
		size_t len, vl;
		char *v;

		if (w->dead || !coord_node_visible(w->node))
			continue;
		line = coord_dns_node_line(co, w->node, &len);
		if (line && (v = netmap_line_versioned(co, line, len, &vl))) {
			netmap_stream_send(co, w, v, vl);
			free(v);
		}
	}
	co->broadcasting--;
	netmap_reap(co);
}

json_t *netmap_full_head(struct coord *co, const struct node *n)
{
	json_t *o;

	if (!coord_node_visible(n))
		o = json_pack("{s:s, s:o}", "type", "full", "self", netmap_node_json(co, n, 1));
	else
		o = json_pack("{s:s, s:o, s:o, s:o, s:s}", "type", "full",
			      "self", netmap_node_json(co, n, 1), "relays", netmap_relays_json(co),
			      "dns", coord_dns_node_json(co, n), "domain", co->domain);
	if (o) {
		json_object_set_new(o, "v", json_integer(netmap_version(co)));
		json_object_set_new(o, "epoch", json_string(co->nm.log.epoch));
	}
	return o;
}

/* What a map line holds of the peers: all of them (a full), or what changed after
 * since (a resume). */
struct map_pick {
	int resume;
	int64_t since;
};

/* The version test first: a resume passes over most nodes, and whether a node is
 * visible asks the clock (its key expiry). */
static int peer_wanted(const struct map_pick *pk, const struct node *n, const struct node *p)
{
	return (!pk->resume || p->nm_ver > pk->since) && p != n && coord_node_visible(p);
}

/* A walk over the nodes a map line may hold: for a resume the nodes stamped after since,
 * newest first (the stamp order, netmap_touch), so that ten thousand resumes do not each
 * pass over ten thousand nodes; else, or while that order does not hold, all of them. */
static int walk_changed(const struct coord *co, const struct map_pick *pk)
{
	return pk->resume && netmap_touch_ordered(co);
}

static struct node *walk_first(struct coord *co, const struct map_pick *pk)
{
	struct node *p = walk_changed(co, pk) ? co->nm.ch_tail : co->nodes_head;

	return p && walk_changed(co, pk) && p->nm_ver <= pk->since ? NULL : p;
}

static struct node *walk_next(const struct coord *co, const struct map_pick *pk, struct node *p)
{
	if (!walk_changed(co, pk))
		return p->next;
	p = p->ch_prev;
	return p && p->nm_ver > pk->since ? p : NULL;
}

/* The head object of n's line: a full's, or for a resume the same with only what
 * changed (the relay map, n's DNS policy: its tags are n's record). */
static json_t *map_head(struct coord *co, const struct node *n, const struct map_pick *pk)
{
	json_t *o = netmap_full_head(co, n);

	if (!o || !pk->resume)
		return o;
	json_object_set_new(o, "type", json_string("resume"));
	if (co->nm.relays_ver <= pk->since)
		json_object_del(o, "relays");
	if (co->nm.dns_ver <= pk->since && n->nm_ver <= pk->since)
		json_object_del(o, "dns");
	return o;
}

struct removed_ids {
	char *buf;
	size_t len, cap;
	int any;
};

static int removed_add(struct removed_ids *r, int64_t id)
{
	char num[24];
	int l = snprintf(num, sizeof(num), "%s%lld", r->any ? "," : "", (long long)id);

	if (r->len + (size_t)l > r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		char *nb;

		while (cap < r->len + (size_t)l)
			cap *= 2;
		if (!(nb = realloc(r->buf, cap)))
			return -ENOMEM;
		r->buf = nb;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, num, (size_t)l);
	r->len += (size_t)l;
	r->any = 1;
	return 0;
}

static int removed_gone(const struct nmlog_gone *g, void *arg)
{
	return removed_add(arg, g->id);
}

/* A resume's "removed": the nodes that left after since (deleted, rekeyed, no longer
 * visible), and those not visible now that changed after since. */
static int removed_list(struct coord *co, const struct node *n, const struct map_pick *pk,
			struct removed_ids *r)
{
	int rc = nmlog_foreach_after(&co->nm.log, pk->since, removed_gone, r);

	for (struct node *p = walk_first(co, pk); p && !rc; p = walk_next(co, pk, p))
		if (p->nm_ver > pk->since && p != n && !coord_node_visible(p))
			rc = removed_add(r, p->rec.id);
	return rc;
}

/* n's map line: self, then (if n may see them) the visible peers pk picks, and for a
 * resume the ids removed. */
static char *map_text(struct coord *co, struct node *n, const struct map_pick *pk,
		      size_t *out_len)
{
	struct removed_ids rm = { 0 };
	json_t *head = map_head(co, n, pk);
	char *h, *buf = NULL;
	size_t hl, cap, len;
	int first = 1, vis = coord_node_visible(n);

	if (!head)
		return NULL;
	h = json_dump_compact(head, &hl);
	json_decref(head);
	if (!h || (pk->resume && removed_list(co, n, pk, &rm)))
		goto out;
	cap = hl + 32 + rm.len;
	if (vis)
		for (struct node *p = walk_first(co, pk); p; p = walk_next(co, pk, p))
			if (peer_wanted(pk, n, p) && !peer_text(co, p))
				cap += p->peer_json_len + 1;
	buf = malloc(cap);
	if (!buf)
		goto out;
	/* Splice ,"peers":[...] (and ,"removed":[...]) in before the head's closing brace. */
	memcpy(buf, h, hl - 1);
	len = hl - 1;
	memcpy(buf + len, ",\"peers\":[", 10);
	len += 10;
	for (struct node *p = vis ? walk_first(co, pk) : NULL; p; p = walk_next(co, pk, p)) {
		if (!peer_wanted(pk, n, p) || !p->peer_json)
			continue;
		if (!first)
			buf[len++] = ',';
		first = 0;
		memcpy(buf + len, p->peer_json, p->peer_json_len);
		len += p->peer_json_len;
	}
	buf[len++] = ']';
	if (pk->resume) {
		memcpy(buf + len, ",\"removed\":[", 12);
		len += 12;
		if (rm.len)
			memcpy(buf + len, rm.buf, rm.len);
		len += rm.len;
		buf[len++] = ']';
	}
	buf[len++] = '}';
	buf[len++] = '\n';
	*out_len = len;
out:
	free(rm.buf);
	free(h);
	return buf;
}

static void send_map(struct coord *co, struct node *n, const struct map_pick *pk)
{
	size_t len = 0;
	char *text;

	if (!n->watcher || n->watcher->dead)
		return;
	text = map_text(co, n, pk, &len);
	if (!text) {
		log_error("could not build netmap", "node=%s", n->rec.name);
		return;
	}
	if (pk->resume)
		co->nm.resumes++;
	else
		co->nm.fulls++;
	co->broadcasting++;
	netmap_stream_send(co, n->watcher, text, len);
	co->broadcasting--;
	free(text);
	netmap_reap(co);
}

void netmap_send_full(struct coord *co, struct node *n)
{
	static const struct map_pick full = { 0, 0 };

	send_map(co, n, &full);
}

struct watcher *netmap_stream_start(struct coord *co, struct http_request *req)
{
	struct watcher *w = calloc(1, sizeof(*w));

	if (!w) {
		http_respond_error(req, 503, "out of memory");
		return NULL;
	}
	w->co = co;
	w->zstd = zlines_requested(req->path);
	if (http_stream_start(req, 200, "application/x-ndjson", on_stream_close, w, &w->stream)) {
		free(w);
		return NULL;
	}
	return w;
}

void netmap_attach(struct coord *co, struct node *n, struct http_request *req, const int64_t *since)
{
	int was_online = netmap_node_online(n);
	struct map_pick pk = { 0, 0 };
	struct watcher *w;

	/* A node that was not a peer when it last heard (pending), or whose own record
	 * changed since, starts over: what it saw of the tailnet depended on that. */
	pk.resume = since && coord_node_visible(n) && n->vis_ver <= *since;
	pk.since = since ? *since : 0;
	w = netmap_stream_start(co, req);
	if (!w)
		return;
	if (n->watcher) {
		/* A second stream from the same node replaces the first (a reconnect that
		 * beat our noticing the old one's end). */
		struct watcher *old = n->watcher;
		if (old->stream) {
			http_stream_end(old->stream);
			old->stream = NULL;
		}
		old->node = n;
		watcher_list_remove(&co->node_watchers, old);
		co->n_watchers--;
		n->watcher = NULL;
		free(old);
	}
	w->node = n;
	watcher_list_add(&co->node_watchers, w);
	co->n_watchers++;
	n->watcher = w;
	n->disconnected_at = 0;
	/* Its peers hear last_seen when it goes on- or offline; one still counted online
	 * (a restart's grace, a stream replaced) keeps what they were told. */
	if (!was_online)
		n->rec.last_seen = coord_now();
	n->grace_until = 0;
	n->remote_online = 0;
	snprintf(n->rec.online, sizeof(n->rec.online), "%s", co->instance);
	coord_node_live_save(co, n);   /* the other instances see it online here */
	netmap_invalidate(n);
	send_map(co, n, &pk);
	if (!was_online && coord_node_visible(n) && netmap_node_online(n))
		netmap_online_changed(co, n);
}

void netmap_node_gone(struct coord *co, struct node *n, const char *reason)
{
	char line[96];
	int len;

	if (!n->watcher)
		return;
	len = snprintf(line, sizeof(line), "{\"type\":\"gone\",\"reason\":\"%s\"}\n", reason);
	co->broadcasting++;
	netmap_stream_send(co, n->watcher, line, (size_t)len);
	co->broadcasting--;
	/* Its stream ends; it is no longer a peer, so nobody hears about its going offline. */
	n->watcher->quiet = 1;
	netmap_stream_kill(co, n->watcher);
	netmap_reap(co);
}

void netmap_stream_send_all(struct coord *co, struct watcher *head, const char *line, size_t len)
{
	co->broadcasting++;
	for (struct watcher *w = head; w; w = w->next)
		netmap_stream_send(co, w, line, len);
	co->broadcasting--;
	netmap_reap(co);
}

void netmap_keepalive(struct coord *co)
{
	char line[64];
	int len = snprintf(line, sizeof(line), "{\"type\":\"keepalive\",\"v\":%lld}\n",
			   (long long)netmap_version(co));

	netmap_stream_send_all(co, co->node_watchers, line, (size_t)len);
}

void netmap_close_all_quiet(struct coord *co)
{
	for (struct watcher *w = co->node_watchers; w; w = w->next)
		w->quiet = 1;
	netmap_close_all(co);
}

void netmap_close_all(struct coord *co)
{
	for (struct watcher *w = co->node_watchers; w; w = w->next)
		netmap_stream_kill(co, w);
	netmap_reap(co);
}
