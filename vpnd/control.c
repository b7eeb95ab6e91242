/* control.c - vpnd's control socket for vpnctl: HTTP/1.1 with JSON bodies on a Unix
 * socket (0600, so only root and the daemon's own user get in). Routes and bodies are
 * listed in vpnd.h; every request body is checked here before the daemon sees it. The
 * daemon answers with -errno and events; this file alone turns them into HTTP statuses,
 * and holds the `up` requests that wait for an outcome (30 s at most). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/json.h"
#include "meshvpn/log.h"
#include "vpnd.h"

#define CTL_MAX_BODY 4096

void up_request_wipe(struct up_request *r)
{
	sodium_memzero(r->auth_key, sizeof(r->auth_key));
}

static int printable(const char *s, int allow_space)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (!allow_space && *p == ' '))
			return 0;
	return 1;
}

static int take_str(const json_t *o, const char *key, char *out, size_t size, const char **val,
		    char *err, size_t errlen)
{
	int rc = json_get_str(o, key, val);

	out[0] = 0;
	if (rc == -ENOENT) {
		*val = NULL;
		return 0;
	}
	if (rc) {
		snprintf(err, errlen, "'%s' must be a string", key);
		return -EINVAL;
	}
	if (!**val) {
		snprintf(err, errlen, "'%s' is empty", key);
		return -EINVAL;
	}
	if (strlen(*val) >= size) {
		snprintf(err, errlen, "'%s' is too long (at most %zu characters)", key, size - 1);
		return -EINVAL;
	}
	memcpy(out, *val, strlen(*val) + 1);
	return 0;
}

int control_parse_up(const void *body, size_t len, struct up_request *out, char *err,
		     size_t errlen)
{
	static const char *const known[] = { "coord", "pin", "hostname", "auth_key", "accept_dns",
					     NULL };
	struct up_request r;
	uint8_t pin[32];
	const char *key, *v;
	json_t *o, *val;
	int rc = -EINVAL;

	memset(&r, 0, sizeof(r));
	r.accept_dns = -1;
	if (len > CTL_MAX_BODY) {
		snprintf(err, errlen, "request too large");
		return -EINVAL;
	}
	o = json_parse_object(body, len, err, errlen);
	if (!o)
		return -EINVAL;
	json_object_foreach(o, key, val) {
		int found = 0;

		for (int i = 0; known[i]; i++)
			found |= !strcmp(key, known[i]);
		if (!found) {
			snprintf(err, errlen, "unknown field '%.40s'", key);
			goto out;
		}
	}
	if (take_str(o, "coord", r.coord, sizeof(r.coord), &v, err, errlen))
		goto out;
	if (v) {
		char canon[sizeof(r.coord)] = { 0 };

		if (coord_urls_canon(r.coord, canon, sizeof(canon), err, errlen))
			goto out;
		memcpy(r.coord, canon, sizeof(canon));   /* kept and compared in one spelling */
	}
	if (take_str(o, "pin", r.pin, sizeof(r.pin), &v, err, errlen))
		goto out;
	if (v && tls_pin_parse(r.pin, pin)) {
		snprintf(err, errlen, "pin must be sha256: and 64 hex digits (as `coord pin` prints it)");
		goto out;
	}
	if (take_str(o, "hostname", r.hostname, sizeof(r.hostname), &v, err, errlen))
		goto out;
	if (v && !printable(r.hostname, 1)) {
		snprintf(err, errlen, "hostname holds control characters");
		goto out;
	}
	if (take_str(o, "auth_key", r.auth_key, sizeof(r.auth_key), &v, err, errlen))
		goto out;
	if (v && !printable(r.auth_key, 0)) {
		snprintf(err, errlen, "auth key holds spaces or control characters");
		goto out;
	}
	val = json_object_get(o, "accept_dns");
	if (val && !json_is_boolean(val)) {
		snprintf(err, errlen, "'accept_dns' must be true or false");
		goto out;
	}
	if (val)
		r.accept_dns = json_is_true(val);
	*out = r;
	rc = 0;
out:
	up_request_wipe(&r);
	json_decref(o);
	return rc;
}

/* The daemon's outcomes as HTTP statuses: the one place that picks them. */
static int status_of(int err)
{
	switch (err) {
	case 0:
		return 200;
	case -EDESTADDRREQ:
		return 400;
	case -EACCES:
		return 403;
	case -ENOENT:
		return 404;
	case -EBUSY:
	case -ECANCELED:
		return 409;
	case -EREMOTEIO:
		return 502;
	case -ESHUTDOWN:
	case -ENETDOWN:
		return 503;
	case -ETIMEDOUT:
		return 504;
	default:
		return 500;
	}
}

/* {"state","name","ips","reason","approve_command"?} from the daemon's state, or an
 * error for a failed outcome. */
static void answer_up(struct vpnd *d, struct http_request *req, int err, const char *msg)
{
	json_t *o, *ips;
	char cmd[NM_NAME_LEN + 32];

	if (err) {
		http_respond_error(req, status_of(err), msg);
		return;
	}
	ips = json_array();
	if (d->prefs.ip4[0])
		json_array_append_new(ips, json_string(d->prefs.ip4));
	if (d->prefs.ip6[0])
		json_array_append_new(ips, json_string(d->prefs.ip6));
	o = json_pack("{s:s, s:s, s:o, s:s}", "state", vpnd_state_name(d->state), "name",
		      d->prefs.name, "ips", ips, "reason", d->reason);
	if (o && d->state == VPND_NEEDS_APPROVAL) {
		snprintf(cmd, sizeof(cmd), "coord nodes approve %s", d->prefs.name);
		json_object_set_new(o, "approve_command", json_string(cmd));
	}
	http_respond_json(req, 200, o);
}

/* ---- `up` requests waiting for the outcome ---- */

struct pending_up {
	struct pending_up *next;
	struct http_request *req;
	uint64_t deadline;
};

static void ups_add(struct vpnd *d, struct http_request *req)
{
	struct pending_up *u = calloc(1, sizeof(*u));

	if (!u) {
		http_respond_error(req, 500, "out of memory");
		return;
	}
	u->req = req;
	u->deadline = uv_now(d->loop) + VPND_UP_TIMEOUT_MS;
	u->next = d->ctl.ups;
	d->ctl.ups = u;
}

static void ups_settle(struct vpnd *d, int err, const char *msg)
{
	struct pending_up *u = d->ctl.ups, *next;

	d->ctl.ups = NULL;
	for (; u; u = next) {
		next = u->next;
		answer_up(d, u->req, err, msg);
		free(u);
	}
}

static void ups_expire(uv_timer_t *t)
{
	struct vpnd *d = t->data;
	struct pending_up **pp = &d->ctl.ups, *u;
	uint64_t now = uv_now(d->loop);
	char msg[VPND_REASON_LEN + 120];

	while ((u = *pp)) {
		if (u->deadline > now) {
			pp = &u->next;
			continue;
		}
		*pp = u->next;
		snprintf(msg, sizeof(msg), "%s within %d s%s%s; vpnd keeps trying (see vpnctl status)",
			 d->reg ? "coord did not answer the registration" : "no netmap from coord",
			 VPND_UP_TIMEOUT_MS / 1000, d->coord_error[0] ? ": " : "", d->coord_error);
		http_respond_error(u->req, status_of(-ETIMEDOUT), msg);
		free(u);
	}
}

static void on_event(struct vpnd *d, const struct vpnd_event *ev, void *arg)
{
	struct http_request *req = d->ctl.logout_req;

	(void)arg;
	switch (ev->kind) {
	case VPND_EV_UP_DONE:
		ups_settle(d, ev->err, ev->msg);
		break;
	case VPND_EV_LOGOUT_DONE:
		d->ctl.logout_req = NULL;
		if (req)
			http_respond_json(req, 200, json_pack("{s:b, s:b}", "ok", 1, "coord_notified",
							 ev->coord_notified));
		break;
	}
}

/* ---- routes ---- */

static void route_up(struct vpnd *d, struct http_request *req)
{
	struct up_request r;
	char err[VPND_REASON_LEN];
	int rc;

	if (control_parse_up(req->body_len ? (const void *)req->body : "{}",
			     req->body_len ? req->body_len : 2, &r, err, sizeof(err))) {
		http_respond_error(req, 400, err);
		return;
	}
	rc = vpnd_up(d, &r, err, sizeof(err));
	up_request_wipe(&r);
	if (rc == -EINPROGRESS)
		ups_add(d, req);
	else
		answer_up(d, req, rc, err);
}

static void route_logout(struct vpnd *d, struct http_request *req)
{
	char err[VPND_REASON_LEN];
	int rc = vpnd_logout(d, err, sizeof(err));

	if (rc == -EINPROGRESS)
		d->ctl.logout_req = req;
	else if (rc)
		http_respond_error(req, status_of(rc), err);
	else
		http_respond_json(req, 200, json_pack("{s:b, s:b}", "ok", 1, "coord_notified", 0));
}

/* ---- ping and netcheck (traversal.c answers later) ---- */

/* A peer by name, FQDN or tailnet address. */
static const struct nm_peer *peer_by_arg(const struct vpnd *d, const char *s)
{
	struct addr_port ip;
	char buf[INET6_ADDRSTRLEN + 8];

	snprintf(buf, sizeof(buf), strchr(s, ':') ? "[%s]:1" : "%s:1", s);
	if (addr_parse(buf, strlen(buf), 0, &ip))
		ip.family = 0;
	for (size_t i = 0; i < d->nm.n_peers; i++) {
		const struct nm_peer *p = &d->nm.peers[i];

		if (!strcmp(p->name, s) || !strcmp(p->fqdn, s) ||
		    (ip.family == AF_INET && !memcmp(&ip.v4, &p->ip4, sizeof(p->ip4))) ||
		    (ip.family == AF_INET6 && !memcmp(&ip.v6, &p->ip6, sizeof(p->ip6))))
			return p;
	}
	return NULL;
}

static void ping_done(const struct tv_ping_result *r, void *arg)
{
	struct http_request *req = arg;
	char ep[ADDR_TEXT_LEN] = "";

	if (r->err) {
		http_respond_error(req, status_of(r->err), r->err == -ETIMEDOUT ? "no pong within 3 s"
							     : "the interface went down");
		return;
	}
	if (r->path == TV_DIRECT)
		addr_format(&r->endpoint, ep, sizeof(ep));
	http_respond_json(req, 200, json_pack("{s:s, s:s, s:s, s:f}", "path",
					       r->path == TV_DIRECT ? "direct" : "relay", "endpoint", ep,
					       "relay", r->relay, "rtt_ms", r->rtt_us / 1000.0));
}

static void route_ping(struct vpnd *d, struct http_request *req)
{
	char err[160];
	const char *name;
	const struct nm_peer *p;
	json_t *o = json_parse_object(req->body_len ? (const void *)req->body : "{}",
				      req->body_len ? req->body_len : 2, err, sizeof(err));
	int rc;

	if (!o || json_get_str(o, "peer", &name) || !name[0]) {
		json_decref(o);
		http_respond_error(req, 400, o ? "'peer' must be a peer's name or address" : err);
		return;
	}
	p = d->state == VPND_RUNNING ? peer_by_arg(d, name) : NULL;
	if (!p) {
		snprintf(err, sizeof(err), "no peer '%.60s' in the netmap (see vpnctl status)", name);
		json_decref(o);
		http_respond_error(req, d->state == VPND_RUNNING ? 404 : 409,
				   d->state == VPND_RUNNING ? err : "the node is not running");
		return;
	}
	json_decref(o);
	rc = traversal_ping(&d->tv, p->id, ping_done, req);
	if (rc)
		http_respond_error(req, status_of(rc), "cannot ping: the node's paths are not running");
}

static void netcheck_done(const struct netcheck_report *r, void *arg)
{
	struct http_request *req = arg;
	char v4[ADDR_TEXT_LEN] = "", v6[ADDR_TEXT_LEN] = "";
	json_t *relays = json_array();

	if (r->v4.family)
		addr_format(&r->v4, v4, sizeof(v4));
	if (r->v6.family)
		addr_format(&r->v6, v6, sizeof(v6));
	for (int i = 0; relays && i < r->n_relays; i++) {
		json_t *lat = r->relays[i].rtt_us ? json_real(r->relays[i].rtt_us / 1000.0) : json_null();
		json_array_append_new(relays, json_pack("{s:s, s:o}", "name", r->relays[i].name,
							"latency_ms", lat));
	}
	http_respond_json(req, 200, json_pack("{s:b, s:b, s:s, s:s, s:b, s:b, s:o, s:s}", "done", r->done,
					       "udp", r->udp, "ipv4", v4, "ipv6", v6,
					       "mapping_varies_by_dest", r->v4_varies, "ipv6_varies",
					       r->v6_varies, "relays", relays, "preferred_relay",
					       r->preferred));
}

static void route_netcheck(struct vpnd *d, struct http_request *req)
{
	int rc = traversal_netcheck(&d->tv, netcheck_done, req);

	if (rc)
		http_respond_error(req, status_of(rc), "the node is not running: run vpnctl up");
}

/* ---- the query log ---- */

/* The number after "KEY=" in the query string, or def. */
static uint64_t query_num(const char *path, const char *key, uint64_t def)
{
	const char *q = strchr(path, '?');
	size_t kl = strlen(key);

	for (; q && *q; q = strchr(q, '&')) {
		q++;
		if (!strncmp(q, key, kl) && q[kl] == '=')
			return strtoull(q + kl + 1, NULL, 10);
	}
	return def;
}

/* GET: the last ?n= entries (all kept without it) after ?after=SEQ; POST {"size": N}:
 * the log resized (0 = off). */
static void route_dns_log(struct vpnd *d, struct http_request *req, int post)
{
	char err[120];
	int64_t size;
	json_t *o;
	int rc;

	if (post) {
		o = json_parse_object(req->body_len ? (const void *)req->body : "{}",
				      req->body_len ? req->body_len : 2, err, sizeof(err));
		if (!o || json_get_int(o, "size", &size) || size < 0 || size > RL_MAX) {
			json_decref(o);
			snprintf(err, sizeof(err), "'size' must be 0 (off) .. %d entries", RL_MAX);
			http_respond_error(req, 400, err);
			return;
		}
		json_decref(o);
		rc = rl_resize(&d->rs.log, (size_t)size);
		if (rc) {
			http_respond_error(req, status_of(rc), "no memory for the query log");
			return;
		}
		log_info("dns query log", "entries=%lld", (long long)size);
	}
	http_respond_json(req, 200, resolver_log_json(&d->rs.log, query_num(req->path, "n", 0),
						      query_num(req->path, "after", 0)));
}

static void on_request(struct http_request *req, void *arg)
{
	struct vpnd *d = arg;
	char path[64];
	size_t plen = strcspn(req->path, "?");
	int get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");

	if (plen >= sizeof(path)) {
		http_respond_error(req, 404, "no such route");
		return;
	}
	memcpy(path, req->path, plen);
	path[plen] = 0;
	if (d->closing) {
		http_respond_error(req, 503, "vpnd is shutting down");
		return;
	}
	log_debug("control request", "method=%s path=%s", req->method, path);
	if (!strcmp(path, VPND_CTL_STATUS)) {
		if (!get)
			http_respond_error(req, 405, "status takes GET");
		else
			http_respond_json(req, 200, vpnd_status_json(d));
	} else if (!strcmp(path, VPND_CTL_UP)) {
		if (!post)
			http_respond_error(req, 405, "up takes POST");
		else
			route_up(d, req);
	} else if (!strcmp(path, VPND_CTL_DOWN)) {
		if (!post) {
			http_respond_error(req, 405, "down takes POST");
		} else {
			vpnd_down(d);
			http_respond_json(req, 200, json_pack("{s:s}", "state", "stopped"));
		}
	} else if (!strcmp(path, VPND_CTL_PING)) {
		if (!post)
			http_respond_error(req, 405, "ping takes POST");
		else
			route_ping(d, req);
	} else if (!strcmp(path, VPND_CTL_NETCHECK)) {
		if (!get)
			http_respond_error(req, 405, "netcheck takes GET");
		else
			route_netcheck(d, req);
	} else if (!strcmp(path, VPND_CTL_DNS_STATS)) {
		if (!get)
			http_respond_error(req, 405, "dns stats takes GET");
		else
			http_respond_json(req, 200, resolver_stats_json(&d->rs));
	} else if (!strcmp(path, VPND_CTL_DNS_LOG)) {
		if (!get && !post)
			http_respond_error(req, 405, "dns log takes GET or POST");
		else
			route_dns_log(d, req, post);
	} else if (!strcmp(path, VPND_CTL_LOGOUT)) {
		if (!post)
			http_respond_error(req, 405, "logout takes POST");
		else
			route_logout(d, req);
	} else {
		http_respond_error(req, 404, "no such route");
	}
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct vpnd *d = listener->data;
	struct conn *c;

	if (status < 0 || d->closing)
		return;
	if (!conn_plain_accept(listener, &c))
		http_server_add_conn(d->ctl.server, c);
}

int control_listen(struct vpnd *d)
{
	struct http_server_opts o = { .max_header_bytes = 8192, .max_body_bytes = CTL_MAX_BODY,
				      .header_timeout_ms = 10000, .idle_timeout_ms = 60000 };
	int rc;

	rc = http_server_new(d->loop, &o, on_request, d, &d->ctl.server);
	if (rc)
		return rc;
	d->ctl.pipe.data = d;
	rc = conn_listen_unix(d->loop, d->opts.socket, &d->ctl.pipe, on_connection);
	if (rc) {
		http_server_free(d->ctl.server);
		d->ctl.server = NULL;
		return rc;
	}
	d->ctl.have_pipe = 1;
	uv_timer_init(d->loop, &d->ctl.expire);
	d->ctl.expire.data = d;
	uv_timer_start(&d->ctl.expire, ups_expire, 1000, 1000);
	d->ctl.have_timer = 1;
	d->on_event = on_event;
	d->event_arg = NULL;
	log_info("control socket listening", "path=%s", d->opts.socket);
	return 0;
}

void control_close(struct vpnd *d)
{
	struct http_request *req = d->ctl.logout_req;

	ups_settle(d, -ESHUTDOWN, "vpnd is shutting down");
	d->ctl.logout_req = NULL;
	if (req)
		http_respond_error(req, status_of(-ESHUTDOWN), "vpnd is shutting down");
	d->on_event = NULL;
	if (d->ctl.have_timer) {
		uv_close((uv_handle_t *)&d->ctl.expire, NULL);
		d->ctl.have_timer = 0;
	}
	if (d->ctl.have_pipe) {
		uv_close((uv_handle_t *)&d->ctl.pipe, NULL);
		unlink(d->opts.socket);
		d->ctl.have_pipe = 0;
	}
	if (d->ctl.server) {
		http_server_free(d->ctl.server);
		d->ctl.server = NULL;
	}
}
