/* api.c - coord's HTTP API: the node protocol (challenge, register, netmap stream,
 * endpoints, logout), routes to the relay admission stream (relay_stream.c), and the
 * admin API that the CLI uses over the admin socket (or over HTTPS with an API key).
 * Bodies are JSON; coord_* results (-errno) become HTTP statuses here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "meshvpn/coord_proto.h"
#include "meshvpn/json.h"
#include "meshvpn/log.h"

#define MAX_SEGS 6
#define RETRY_AFTER "Retry-After: 10\r\n"

static struct log_limit lim_refused = LOG_LIMIT_INIT("registration_refused", 10);

int api_status(int rc)
{
	switch (rc) {
	case 0:
		return 200;
	case -EINVAL:
	case -ERANGE:
	case -E2BIG:
		return 400;
	case -EACCES:
		return 401;
	case -EPERM:
		return 403;
	case -ENOENT:
		return 404;
	case -EEXIST:
	case -ENOTUNIQ:
	case -ESTALE:      /* changed on another instance meanwhile */
		return 409;
	case -ENOSPC:
	case -ENOTCONN:    /* the database is unreachable */
	case -EAGAIN:      /* it kept failing to serialise the change */
		return 503;
	default:
		return 500;
	}
}

const char *api_bearer(const struct http_request *req)
{
	const char *h = http_request_header(req, "Authorization");

	if (!h || strncasecmp(h, "Bearer ", 7))
		return NULL;
	return h + 7;
}

json_t *api_body_json(struct coord *co, struct http_request *req)
{
	char err[160];
	json_t *b;

	if (!req->body_len)
		return json_object();
	b = json_parse_object(req->body, req->body_len, err, sizeof(err));
	if (!b) {
		co->stats.bad_requests++;
		http_respond_error(req, 400, err);
	}
	return b;
}

static void respond_ok(struct http_request *req)
{
	http_respond_json(req, 200, json_pack("{s:b}", "ok", 1));
}

/* The answer to a lookup or change that failed: err for the lookup's own errors
 * (-ENOENT, -ENOTUNIQ, -EINVAL, ...), a generic line for the store's. */
static void respond_failed(struct http_request *req, int rc, const char *err)
{
	int status = api_status(rc);

	if (rc == -ENOTCONN)
		err = "the database is unreachable: coord takes no changes until it is back";
	http_respond_error(req, status, status == 500 ? "could not store the change" : err);
}

/* --- node protocol --- */

/* 429 with a hint when to come back: the source asked more than its share. */
static int rate_limited(struct coord *co, struct ratelimit *rl, struct http_request *req,
			uint64_t *count)
{
	static const char body[] = "{\"error\":\"too many requests from this address; retry later\"}";

	if (!coord_guard_allow(co, rl, req->peer, count))
		return 0;
	http_respond(req, 429, "application/json", RETRY_AFTER, body, sizeof(body) - 1);
	return 1;
}

static void on_challenge(struct coord *co, struct http_request *req)
{
	uint8_t ch[32];
	char hex[COORD_CHALLENGE_HEX + 1];

	if (rate_limited(co, co->guard.challenge, req, &co->guard.limited_challenge))
		return;
	if (coord_challenge_new(co, ch)) {
		http_respond_error(req, 503, "too many registrations in flight; retry shortly");
		return;
	}
	hex_encode(ch, sizeof(ch), hex);
	http_respond_json(req, 200, json_pack("{s:s, s:i}", "challenge", hex, "expires_in",
					      COORD_CHALLENGE_TTL));
}

static void on_register(struct coord *co, struct http_request *req)
{
	json_t *b, *resp = NULL;
	char err[200];
	int rc, status;

	if (rate_limited(co, co->guard.reg, req, &co->guard.limited_register))
		return;
	if (!(b = api_body_json(co, req)))
		return;
	if (coord_guard_pending_full(co, b, req->peer)) {
		json_decref(b);
		http_respond_error(req, 503, "too many nodes wait for approval; use an auth key, or ask an admin");
		return;
	}
	rc = coord_register(co, b, &resp, err, sizeof(err));
	json_decref(b);
	if (rc) {
		status = api_status(rc);
		log_limited(&lim_refused, LOG_INFO, "registration refused", "peer=%s status=%d reason=\"%s\"",
			    req->peer, status, err);
		http_respond_error(req, status, err);
		return;
	}
	http_respond_json(req, 200, resp);
}

static struct node *node_auth(struct coord *co, struct http_request *req)
{
	struct node *n = coord_node_by_token(co, api_bearer(req));

	if (!n) {
		http_respond_error(req, 401, "unknown node token: register again");
		return NULL;
	}
	if (n->rec.state == NODE_REJECTED) {
		http_respond_error(req, 403, "this node was rejected by an admin");
		return NULL;
	}
	return n;
}

static void on_map(struct coord *co, struct http_request *req)
{
	struct node *n;

	int64_t since;
	int resume;

	if (coord_guard_shed(co, req, COORD_SHED_MAP))
		return;
	/* Before the lookup: a version ahead of us catches up on the feed, which may free
	 * nodes. */
	resume = !netmap_resume_point(co, req, &since);
	n = node_auth(co, req);
	if (n)
		netmap_attach(co, n, req, resume ? &since : NULL);
}

static void on_endpoints(struct coord *co, struct http_request *req)
{
	struct node *n = node_auth(co, req);
	char err[160];
	json_t *b;
	int rc;

	if (!n || !(b = api_body_json(co, req)))
		return;
	rc = coord_node_set_endpoints(co, n, b, err, sizeof(err));
	if (rc)
		http_respond_error(req, api_status(rc), err);
	else
		respond_ok(req);
	json_decref(b);
}

static void on_blocklist(struct coord *co, struct http_request *req)
{
	struct node *n = node_auth(co, req);

	if (n)
		coord_blocklists_serve(co, req, n);
}

static void on_logout(struct coord *co, struct http_request *req)
{
	struct node *n = node_auth(co, req);

	if (!n)
		return;
	if (coord_node_delete(co, n))
		http_respond_error(req, 500, "could not delete the node");
	else
		respond_ok(req);
}

/* --- admin --- */

static json_t *admin_node_json(struct coord *co, struct node *n)
{
	json_t *o = netmap_node_json(co, n, 1);

	json_object_set_new(o, "created", json_integer(n->rec.created));
	json_object_set_new(o, "auth_key_id", json_integer(n->rec.auth_key_id));
	return o;
}

static void admin_nodes(struct coord *co, struct http_request *req, char **seg, int nseg)
{
	struct node *n = NULL;
	char err[480];
	int rc;

	if (nseg == 3 && !strcmp(req->method, "GET")) {
		json_t *a = json_array();
		for (n = co->nodes_head; n; n = n->next)
			json_array_append_new(a, admin_node_json(co, n));
		http_respond_json(req, 200, json_pack("{s:o}", "nodes", a));
		return;
	}
	if (nseg < 4) {
		http_respond_error(req, 404, "no such route");
		return;
	}
	rc = coord_node_resolve(co, seg[3], &n, err, sizeof(err));
	if (rc) {
		if (rc == -ENOENT)
			snprintf(err, sizeof(err), "no such node: %s (give its name or id; see `coord nodes list`)",
				 seg[3]);
		http_respond_error(req, api_status(rc), err);
		return;
	}
	if (nseg == 4 && !strcmp(req->method, "GET")) {
		http_respond_json(req, 200, admin_node_json(co, n));
		return;
	}
	if (nseg == 4 && !strcmp(req->method, "DELETE")) {
		rc = coord_node_delete(co, n);
		if (rc)
			respond_failed(req, rc, "could not delete the node");
		else
			respond_ok(req);
		return;
	}
	if (nseg != 5 || strcmp(req->method, "POST")) {
		http_respond_error(req, 404, "no such route");
		return;
	}
	if (!strcmp(seg[4], "approve")) {
		if (n->rec.state == NODE_REJECTED) {
			http_respond_error(req, 409, "node was rejected; delete it and let it register again");
			return;
		}
		rc = coord_node_approve(co, n);
	} else if (!strcmp(seg[4], "reject")) {
		rc = coord_node_reject(co, n);
	} else if (!strcmp(seg[4], "expire")) {
		rc = coord_node_expire(co, n);
	} else if (!strcmp(seg[4], "rename")) {
		json_t *b = api_body_json(co, req);
		const char *name;
		if (!b)
			return;
		if (json_get_str(b, "name", &name)) {
			json_decref(b);
			http_respond_error(req, 400, "rename needs {\"name\": ...}");
			return;
		}
		rc = coord_node_rename(co, n, name, err, sizeof(err));
		json_decref(b);
		if (rc) {
			respond_failed(req, rc, err);
			return;
		}
	} else {
		http_respond_error(req, 404, "no such node action (approve, reject, expire, rename)");
		return;
	}
	if (rc == -ENOSPC)
		http_respond_error(req, 503, "no free addresses left in 100.64.0.0/10");
	else if (rc)
		respond_failed(req, rc, rc == -ESTALE ? "the node was changed on another coord instance"
			       " meanwhile; try again" : "could not store the change");
	else
		http_respond_json(req, 200, admin_node_json(co, n));
}

static json_t *authkey_json(const struct authkey *k)
{
	int64_t now = coord_now();
	int usable = !k->rec.revoked && !(k->rec.expiry && now >= k->rec.expiry) &&
		     (k->rec.reusable || !k->rec.uses);

	return json_pack("{s:I, s:s, s:b, s:b, s:s, s:I, s:I, s:I, s:b, s:b}",
			 "id", (json_int_t)k->rec.id, "prefix", k->rec.prefix,
			 "reusable", k->rec.reusable, "ephemeral", k->rec.ephemeral,
			 "tags", k->rec.tags, "created", (json_int_t)k->rec.created,
			 "expiry", (json_int_t)k->rec.expiry, "uses", (json_int_t)k->rec.uses,
			 "revoked", k->rec.revoked, "usable", usable);
}

static int valid_tags(const char *tags)
{
	/* "tag:web,tag:db" */
	char buf[STORE_TAGS_LEN], *save = NULL;

	if (strlen(tags) >= STORE_TAGS_LEN)
		return 0;
	if (!*tags)
		return 1;
	snprintf(buf, sizeof(buf), "%s", tags);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strncmp(t, "tag:", 4) || !t[4])
			return 0;
		for (char *p = t + 4; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
				return 0;
	}
	return 1;
}

#define EXPIRY_RANGE "expiry is too far away (at most 2^61 seconds)"

static void admin_keys(struct coord *co, struct http_request *req, char **seg, int nseg)
{
	int rc;

	if (nseg == 3 && !strcmp(req->method, "GET")) {
		json_t *a = json_array();
		for (struct authkey *k = co->authkeys; k; k = k->next)
			json_array_insert_new(a, 0, authkey_json(k));
		http_respond_json(req, 200, json_pack("{s:o}", "keys", a));
	} else if (nseg == 3 && !strcmp(req->method, "POST")) {
		json_t *b = api_body_json(co, req);
		int reusable = 0, ephemeral = 0;
		int64_t expiry = 0;
		const char *tags = "";
		char key[COORD_TOKEN_MAX];
		struct authkey *k;

		if (!b)
			return;
		if (json_get_bool(b, "reusable", &reusable) == -EINVAL ||
		    json_get_bool(b, "ephemeral", &ephemeral) == -EINVAL ||
		    json_get_int(b, "expiry", &expiry) == -EINVAL || expiry < 0 ||
		    json_get_str(b, "tags", &tags) == -EINVAL || !valid_tags(tags)) {
			json_decref(b);
			http_respond_error(req, 400, "keys: reusable/ephemeral are booleans, expiry seconds, tags \"tag:a,tag:b\"");
			return;
		}
		rc = coord_authkey_create(co, reusable, ephemeral, expiry, tags, key, sizeof(key), &k);
		if (rc) {
			json_decref(b);
			http_respond_error(req, api_status(rc), rc == -ERANGE ? EXPIRY_RANGE
					   : "could not store the key");
			return;
		}
		json_decref(b);
		json_t *o = authkey_json(k);
		json_object_set_new(o, "key", json_string(key));
		http_respond_json(req, 200, o);
	} else if (nseg == 4 && !strcmp(req->method, "DELETE")) {
		char err[480];
		struct authkey *k;
		rc = coord_authkey_resolve(co, seg[3], &k, err, sizeof(err));
		if (rc) {
			http_respond_error(req, api_status(rc), err);
			return;
		}
		if (coord_authkey_revoke(co, k))
			http_respond_error(req, 500, "could not store the change");
		else
			http_respond_json(req, 200, authkey_json(k));
	} else {
		http_respond_error(req, 404, "no such route");
	}
}

static void admin_apikeys(struct coord *co, struct http_request *req, char **seg, int nseg)
{
	int rc;

	if (nseg == 3 && !strcmp(req->method, "GET")) {
		json_t *a = json_array();
		for (struct apikey *k = co->apikeys; k; k = k->next)
			json_array_insert_new(a, 0, json_pack("{s:I, s:s, s:I, s:I, s:b}",
				"id", (json_int_t)k->rec.id, "prefix", k->rec.prefix,
				"created", (json_int_t)k->rec.created, "expiry", (json_int_t)k->rec.expiry,
				"revoked", k->rec.revoked));
		http_respond_json(req, 200, json_pack("{s:o}", "apikeys", a));
	} else if (nseg == 3 && !strcmp(req->method, "POST")) {
		json_t *b = api_body_json(co, req);
		int64_t expiry = 0;
		char key[COORD_TOKEN_MAX];

		if (!b)
			return;
		if (json_get_int(b, "expiry", &expiry) == -EINVAL || expiry < 0) {
			json_decref(b);
			http_respond_error(req, 400, "expiry must be seconds");
			return;
		}
		json_decref(b);
		rc = coord_apikey_create(co, expiry, key, sizeof(key));
		if (rc)
			http_respond_error(req, api_status(rc), rc == -ERANGE ? EXPIRY_RANGE
					   : "could not store the key");
		else
			http_respond_json(req, 200, json_pack("{s:s}", "key", key));
	} else if (nseg == 4 && !strcmp(req->method, "DELETE")) {
		char err[480];
		int64_t id = 0;
		rc = coord_apikey_revoke(co, seg[3], &id, err, sizeof(err));
		if (rc)
			respond_failed(req, rc, err);
		else
			http_respond_json(req, 200, json_pack("{s:b, s:I}", "ok", 1, "id", (json_int_t)id));
	} else {
		http_respond_error(req, 404, "no such route");
	}
}

static void admin_relays(struct coord *co, struct http_request *req, char **seg, int nseg)
{
	if (nseg == 3 && !strcmp(req->method, "GET")) {
		json_t *a = netmap_relays_json(co);
		size_t i;
		json_t *v;
		json_array_foreach(a, i, v) {
			int64_t id = json_integer_value(json_object_get(v, "id"));
			json_object_set_new(v, "connected", json_boolean(relay_stream_connected(co, id)));
		}
		http_respond_json(req, 200, json_pack("{s:o}", "relays", a));
	} else if (nseg == 3 && !strcmp(req->method, "POST")) {
		json_t *b = api_body_json(co, req);
		const char *name, *url, *stun = NULL;
		char token[COORD_TOKEN_MAX], err[200];
		int rc;

		if (!b)
			return;
		if (json_get_str(b, "name", &name) || json_get_str(b, "url", &url) ||
		    json_get_str(b, "stun", &stun) == -EINVAL) {
			json_decref(b);
			http_respond_error(req, 400, "relays need {\"name\": ..., \"url\": ..."
					   " [, \"stun\": \"host:port\"]}");
			return;
		}
		rc = coord_relay_add(co, name, url, stun, token, sizeof(token), err, sizeof(err));
		if (rc)
			http_respond_error(req, api_status(rc), err);
		else
			http_respond_json(req, 200, json_pack("{s:s, s:s}", "name", name, "token", token));
		json_decref(b);
	} else if (nseg == 4 && !strcmp(req->method, "DELETE")) {
		char err[480], name[STORE_NAME_LEN];
		struct relay *r;
		int rc = coord_relay_resolve(co, seg[3], &r, err, sizeof(err));
		if (!rc) {
			snprintf(name, sizeof(name), "%s", r->rec.name);
			rc = coord_relay_remove(co, name);
		}
		if (rc)
			respond_failed(req, rc, err);
		else
			http_respond_json(req, 200, json_pack("{s:b, s:s}", "ok", 1, "name", name));
	} else {
		http_respond_error(req, 404, "no such route");
	}
}

/* GET /v1/admin/dns; POST .../dns/domain {"domain"}, .../dns/blocking-mode {"mode"},
 * .../dns/KIND/add|remove with the entry's fields (coord_dns_edit). Values can hold '/'
 * (URLs, paths): they travel in the body, never in the path. */
static void admin_dns(struct coord *co, struct http_request *req, char **seg, int nseg)
{
	char err[480];
	const char *v;
	json_t *b, *item = NULL;
	int rc;

	if (nseg == 3 && !strcmp(req->method, "GET")) {
		http_respond_json(req, 200, coord_dns_json(co));
		return;
	}
	if (strcmp(req->method, "POST") || nseg < 4 || nseg > 5) {
		http_respond_error(req, 404, "no such route");
		return;
	}
	if (!(b = api_body_json(co, req)))
		return;
	if (nseg == 4 && (!strcmp(seg[3], "domain") || !strcmp(seg[3], "blocking-mode"))) {
		int dom = !strcmp(seg[3], "domain");
		if (json_get_str(b, dom ? "domain" : "mode", &v)) {
			snprintf(err, sizeof(err), "%s needs {\"%s\": ...}", seg[3], dom ? "domain" : "mode");
			rc = -EINVAL;
		} else {
			rc = dom ? coord_dns_set_domain(co, v, err, sizeof(err))
				 : coord_dns_set_mode(co, v, err, sizeof(err));
		}
		if (!rc)
			item = coord_dns_json(co);
	} else if (nseg == 5 && (!strcmp(seg[4], "add") || !strcmp(seg[4], "remove"))) {
		rc = coord_dns_edit(co, seg[3], !strcmp(seg[4], "add"), b, &item, err, sizeof(err));
	} else {
		snprintf(err, sizeof(err), "no such route");
		rc = -ENOENT;
	}
	json_decref(b);
	if (rc)
		respond_failed(req, rc, err);
	else
		http_respond_json(req, 200, item ? item : json_pack("{s:b}", "ok", 1));
}

/* What the node is sent as its full netmap (without "type"). */
static void admin_netmap(struct coord *co, struct http_request *req, const char *who)
{
	struct node *n;
	json_t *peers, *o;
	char err[480];
	int rc = coord_node_resolve(co, who, &n, err, sizeof(err));

	if (rc) {
		http_respond_error(req, api_status(rc), err);
		return;
	}
	peers = json_array();
	if (coord_node_visible(n))
		for (struct node *p = co->nodes_head; p; p = p->next)
			if (p != n && coord_node_visible(p))
				json_array_append_new(peers, netmap_node_json(co, p, 0));
	o = netmap_full_head(co, n);
	if (o) {
		json_object_del(o, "type");
		json_object_set_new(o, "peers", peers);
	} else {
		json_decref(peers);
	}
	http_respond_json(req, 200, o);
}

static int split_path(char *path, char **seg, int max)
{
	int n = 0;
	char *q = strchr(path, '?'), *save = NULL;

	if (q)
		*q = 0;
	for (char *t = strtok_r(path, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (n == max)
			return -1;
		seg[n++] = t;
	}
	return n;
}

static void admin_route(struct coord *co, struct http_request *req, char **seg, int nseg)
{
	if (!strcmp(seg[2], "nodes") && nseg == 5 && !strcmp(seg[4], "netmap") &&
	    !strcmp(req->method, "GET"))
		admin_netmap(co, req, seg[3]);
	else if (!strcmp(seg[2], "nodes"))
		admin_nodes(co, req, seg, nseg);
	else if (!strcmp(seg[2], "keys"))
		admin_keys(co, req, seg, nseg);
	else if (!strcmp(seg[2], "apikeys"))
		admin_apikeys(co, req, seg, nseg);
	else if (!strcmp(seg[2], "relays"))
		admin_relays(co, req, seg, nseg);
	else if (!strcmp(seg[2], "dns"))
		admin_dns(co, req, seg, nseg);
	else if (!strcmp(seg[2], "status") && nseg == 3 && !strcmp(req->method, "GET"))
		http_respond_json(req, 200, coord_status_json(co));
	else
		http_respond_error(req, 404, "no such route");
}

void api_handle(struct coord *co, struct http_request *req, int admin)
{
	char path[512], *seg[MAX_SEGS];
	int nseg, post = !strcmp(req->method, "POST"), get = !strcmp(req->method, "GET");

	co->stats.requests++;
	snprintf(path, sizeof(path), "%s", req->path);
	nseg = split_path(path, seg, MAX_SEGS);
	if (nseg < 0 || nseg == 0 || strcmp(seg[0], "v1")) {
		if (nseg == 1 && !strcmp(seg[0], "healthz"))
			respond_ok(req);
		else
			http_respond_error(req, 404, "no such route");
		return;
	}
	if (nseg >= 3 && !strcmp(seg[1], "admin")) {
		if (!admin && coord_apikey_check(co, api_bearer(req))) {
			http_respond_error(req, 401, "admin API needs an API key (coord apikeys create)");
			return;
		}
		admin_route(co, req, seg, nseg);
		return;
	}
	if (nseg == 2 && post && !strcmp(seg[1], "challenge"))
		on_challenge(co, req);
	else if (nseg == 2 && post && !strcmp(seg[1], "register"))
		on_register(co, req);
	else if (nseg == 2 && get && !strcmp(seg[1], "map"))
		on_map(co, req);
	else if (nseg == 2 && post && !strcmp(seg[1], "endpoints"))
		on_endpoints(co, req);
	else if (nseg == 2 && post && !strcmp(seg[1], "logout"))
		on_logout(co, req);
	else if (nseg == 3 && get && !strcmp(seg[1], "dns") && !strcmp(seg[2], "blocklist"))
		on_blocklist(co, req);
	else if (nseg == 3 && get && !strcmp(seg[1], "relay") && !strcmp(seg[2], "stream"))
		relay_stream_on_stream(co, req);
	else if (nseg == 3 && post && !strcmp(seg[1], "relay") && !strcmp(seg[2], "pin"))
		relay_stream_on_pin(co, req);
	else
		http_respond_error(req, 404, "no such route");
}
