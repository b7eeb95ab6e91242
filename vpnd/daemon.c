/* daemon.c - vpnd's lifecycle: the node's state machine (stopped / needs-approval /
 * running / expired), registration with coord, the netmap stream (each line applied to
 * the node's copy, then to WireGuard through wgsync and to the netmap cache), up, down,
 * logout and the tick. It returns -errno and emits events (vpnd.h); control.c speaks
 * HTTP. DESIGN.md flows 1-3. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/json.h"
#include "meshvpn/log.h"
#include "meshvpn/metrics.h"
#include "meshvpn/tls.h"
#include "netif.h"
#include "vpnd.h"
#include "wg.h"

#define TICK_MS 1000
#define IFACE_RETRY_TICKS 10

static const char *const state_names[] = {
	[VPND_STOPPED] = "stopped",
	[VPND_NEEDS_APPROVAL] = "needs-approval",
	[VPND_RUNNING] = "running",
	[VPND_EXPIRED] = "expired",
};

const char *vpnd_state_name(enum vpnd_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "stopped";
}

static void save_prefs(struct vpnd *d)
{
	int rc = prefs_save(d->opts.state_dir, &d->prefs);

	if (rc)
		log_error("cannot save prefs", "dir=%s error=\"%s\"", d->opts.state_dir, strerror(-rc));
}

static void set_state(struct vpnd *d, enum vpnd_state st, const char *reason)
{
	if (st != d->state)
		log_info("state changed", "from=%s to=%s", vpnd_state_name(d->state),
			 vpnd_state_name(st));
	d->state = st;
	if (reason != d->reason)
		snprintf(d->reason, sizeof(d->reason), "%s", reason ? reason : "");
}

/* Tells the control front; it answers whoever waits. */
static void emit(struct vpnd *d, enum vpnd_event_kind kind, int err, const char *msg, int told)
{
	struct vpnd_event ev = { .kind = kind, .err = err, .msg = msg, .coord_notified = told };

	if (d->on_event)
		d->on_event(d, &ev, d->event_arg);
}

static void up_done(struct vpnd *d, int err, const char *msg)
{
	emit(d, VPND_EV_UP_DONE, err, msg, 0);
}

/* ---- the netmap stream ---- */

static void forget_node(struct vpnd *d)
{
	sodium_memzero(d->prefs.token, sizeof(d->prefs.token));
	d->prefs.want_up = 0;
	d->prefs.node_state = NODE_STATUS_UNKNOWN;
	d->prefs.name[0] = 0;
	d->prefs.ip4[0] = 0;
	d->prefs.ip6[0] = 0;
}

static void reset_netmap(struct vpnd *d)
{
	netmap_free(&d->nm);
	netmap_init(&d->nm);
	d->nm_from_cache = 0;
}

static void cache_remove(struct vpnd *d)
{
	int rc = nmcache_remove(&d->cache);

	if (rc)
		log_error("cannot delete the netmap cache", "path=%s error=\"%s\"", d->cache.path,
			  strerror(-rc));
}

/* Only a running node's netmap is worth keeping: pending, expired or anything else
 * deletes it. */
static void cache_full(struct vpnd *d, const char *line, size_t len)
{
	int rc;

	if (d->nm.self.state != NODE_STATUS_RUNNING) {
		cache_remove(d);
		return;
	}
	rc = nmcache_write_full(&d->cache, line, len);
	if (rc)
		log_error("cannot write the netmap cache", "path=%s error=\"%s\"", d->cache.path,
			  strerror(-rc));
}

static void cache_delta(struct vpnd *d, const char *line, size_t len)
{
	int rc = nmcache_append(&d->cache, line, len);

	if (rc == -EFBIG) {
		log_info("netmap cache dropped until the next full map", "reason=\"too many deltas\"");
		d->nm.resync = 1;   /* the next connect brings a full, which starts it again */
	}
	else if (rc && rc != -EBADF)
		log_error("cannot append to the netmap cache, dropped", "path=%s error=\"%s\"",
			  d->cache.path, strerror(-rc));
}

/* Deleted or rejected by an admin (or the token is unknown): nothing is left to run. */
static void node_gone(struct vpnd *d, const char *why)
{
	char msg[VPND_REASON_LEN];

	log_warn("removed from the network", "reason=%s", why);
	coordc_stop(&d->cc);
	d->cc_connected = 0;
	iface_down(d);
	reset_netmap(d);
	cache_remove(d);
	forget_node(d);
	save_prefs(d);
	snprintf(msg, sizeof(msg), "%s by an admin of the coordination server", why);
	set_state(d, VPND_STOPPED, msg);
	up_done(d, -EACCES, msg);
}

static void remember_self(struct vpnd *d)
{
	const struct nm_self *s = &d->nm.self;
	char a4[INET_ADDRSTRLEN], a6[INET6_ADDRSTRLEN];

	/* A pending node holds no address yet (coord says 0.0.0.0 and ::): none to show. */
	a4[0] = a6[0] = 0;
	if (s->ip4.s_addr)
		inet_ntop(AF_INET, &s->ip4, a4, sizeof(a4));
	if (!IN6_IS_ADDR_UNSPECIFIED(&s->ip6))
		inet_ntop(AF_INET6, &s->ip6, a6, sizeof(a6));
	if (strcmp(d->prefs.name, s->name) || strcmp(d->prefs.ip4, a4) || strcmp(d->prefs.ip6, a6) ||
	    d->prefs.node_state != s->state) {
		snprintf(d->prefs.name, sizeof(d->prefs.name), "%s", s->name);
		snprintf(d->prefs.ip4, sizeof(d->prefs.ip4), "%s", a4);
		snprintf(d->prefs.ip6, sizeof(d->prefs.ip6), "%s", a6);
		d->prefs.node_state = s->state;
		save_prefs(d);
	}
}

/* The resolver with the node: on 100.100.100.100:53 once the interface is up, and with
 * --dns-listen on the node's tailnet IPv4 for its peers. A failure (port 53 taken) is
 * logged; the node runs without it. */
static void resolver_run(struct vpnd *d)
{
	struct addr_port a[RS_LISTEN_MAX] = { { .family = AF_INET, .port = RS_PORT } };
	int n = 1;

	inet_pton(AF_INET, RS_ADDR, &a[0].v4);
	if (d->opts.dns_listen && d->nm.self.ip4.s_addr) {
		a[1] = (struct addr_port){ .family = AF_INET, .port = RS_PORT, .v4 = d->nm.self.ip4 };
		n = 2;
	}
	if (!d->rs.started)
		resolver_start(&d->rs, a, n);
	if (d->rs.started)
		resolver_update(&d->rs, &d->nm);
}

void vpnd_dns_follow(struct vpnd *d)
{
	struct dnsconf_want w;

	if (d->prefs.accept_dns && d->state == VPND_RUNNING && d->wg && d->rs.started) {
		dnsconf_want_of(d->nm.dns, &w);
		dnsconf_apply(&d->dnsconf, &w);
	} else if (d->dnsconf.mode != DNSCONF_NONE || d->dnsconf.lost || d->dnsconf.failed) {
		dnsconf_restore(&d->dnsconf);
	}
}

/* The compiled blocklist the netmap names (fetched by dnsbl.c when its version moves). */
static void blocklist_follow(struct vpnd *d)
{
	char base[COORD_URLS_ORDERED_MAX + 1];

	if (d->state == VPND_RUNNING && d->nm.dns) {
		/* From the instance the netmap came from: the version it named is there. */
		coordc_current(&d->cc, d->prefs.coord, d->prefs.pin[0] != 0, base, sizeof(base));
		dnsbl_update(&d->dnsbl, d->nm.dns->blocklist_version, d->nm.dns->blocklist_url,
			     base, d->prefs.pin, d->prefs.token);
	}
}

static void on_blocklist(void *arg, struct blocklist *bl)
{
	struct vpnd *d = arg;

	resolver_set_blocklist(&d->rs, bl);
}

/* A delta: the names and the policy again (a resolver that could not start stays off
 * until the next full map). */
static void resolver_changed(struct vpnd *d)
{
	if (d->rs.started)
		resolver_update(&d->rs, &d->nm);
}

static void on_full(struct vpnd *d)
{
	const struct nm_self *s = &d->nm.self;
	char msg[VPND_REASON_LEN];

	remember_self(d);
	switch (s->state) {
	case NODE_STATUS_RUNNING:
		if (iface_up(d)) {
			d->wg_failures++;
			d->stats.wg_errors++;
			log_error("cannot bring the interface up", "reason=\"%s\"", d->reason);
			set_state(d, VPND_STOPPED, d->reason);
			if (!d->reg)
				up_done(d, -EIO, d->reason);
			return;
		}
		traversal_start(&d->tv, d->opts.port);
		traversal_full(&d->tv, &d->nm);
		wgsync_full(&d->sync, &d->nm);
		resolver_run(d);
		set_state(d, VPND_RUNNING, "");
		vpnd_dns_follow(d);
		endpoints_post(d);
		break;
	case NODE_STATUS_NEEDS_APPROVAL:
		wgsync_clear(&d->sync);
		traversal_stop(&d->tv);
		resolver_stop(&d->rs);
		snprintf(msg, sizeof(msg), "waiting for approval: coord nodes approve %s", s->name);
		set_state(d, VPND_NEEDS_APPROVAL, msg);
		break;
	case NODE_STATUS_EXPIRED:
		wgsync_clear(&d->sync);
		traversal_stop(&d->tv);
		resolver_stop(&d->rs);
		set_state(d, VPND_EXPIRED, "the node key expired: run vpnctl up (with --auth-key, or "
			  "an admin approves it again)");
		break;
	default:
		wgsync_clear(&d->sync);
		traversal_stop(&d->tv);
		resolver_stop(&d->rs);
		snprintf(msg, sizeof(msg), "coord reports the state '%s'",
			 s->state ? node_status_name(s->state) : "unknown");
		set_state(d, VPND_STOPPED, msg);
	}
	if (!d->reg)
		up_done(d, 0, NULL);
}

static void on_line(struct coordc *cc, const char *line, size_t len, void *arg)
{
	struct vpnd *d = arg;
	struct nm_change chg;
	int rc, running;

	rc = netmap_apply_line(&d->nm, line, len, &chg);
	if (rc == -EPROTO) {
		log_warn("netmap delta before the full map, skipped", "bytes=%zu", len);
		d->stats.netmap_bad_lines++;
		return;
	}
	if (rc) {
		log_warn("bad netmap line skipped", "bytes=%zu error=\"%s\"", len, strerror(-rc));
		d->stats.netmap_bad_lines++;
		/* The map may now lack what the line said: netmap.c marks it (resync), and
		 * the next connect asks for a full rather than resuming. */
		return;
	}
	d->stats.netmap_lines++;
	running = d->state == VPND_RUNNING && d->wg;
	switch (chg.kind) {
	case NM_FULL:
		log_debug("full netmap", "peers=%zu state=%s", d->nm.n_peers,
			  node_status_name(d->nm.self.state));
		d->nm_from_cache = 0;
		on_full(d);
		blocklist_follow(d);
		if (chg.resumed) {
			log_info("netmap resumed", "version=%lld peers=%zu was=%zu", (long long)d->nm.version,
				 d->nm.n_peers, chg.n_old);
			d->stats.netmap_resumes++;
			cache_delta(d, line, len);   /* on top of the full it continues */
		} else {
			cache_full(d, line, len);
		}
		break;
	case NM_PEER_ADDED:
	case NM_PEER_CHANGED:
		if (running) {
			traversal_peer(&d->tv, chg.peer);
			wgsync_peer(&d->sync, chg.peer);
			resolver_changed(d);
		}
		cache_delta(d, line, len);
		break;
	case NM_PEER_REMOVED:
		if (running) {
			traversal_removed(&d->tv, &chg.removed);
			wgsync_removed(&d->sync, &chg.removed);
			resolver_changed(d);
		}
		cache_delta(d, line, len);
		break;
	case NM_GONE:
		node_gone(d, chg.reason[0] ? chg.reason : "removed");
		break;
	case NM_RELAYS:
		log_debug("relay map changed", "relays=%d", d->nm.n_relays);
		if (running)
			traversal_relays(&d->tv, &d->nm);
		cache_delta(d, line, len);
		break;
	case NM_DNS:
		if (running)
			resolver_changed(d);
		vpnd_dns_follow(d);   /* the domain or the routes may have moved */
		blocklist_follow(d);
		log_debug("dns policy changed", "domain=%s upstreams=%d routes=%zu records=%zu rules=%zu",
			  d->nm.dns->domain, d->nm.dns->n_upstreams, d->nm.dns->n_routes,
			  d->nm.dns->n_records, d->nm.dns->n_rules);
		cache_delta(d, line, len);
		break;
	case NM_KEEPALIVE:
	case NM_NONE:
		break;
	}
	nm_change_clear(&chg);
}

static void on_cc_event(struct coordc *cc, enum cc_event ev, int detail, void *arg)
{
	struct vpnd *d = arg;
	char msg[VPND_URL_MAX + VPND_REASON_LEN + 64];

	switch (ev) {
	case CC_CONNECTED:
		d->cc_connected = 1;
		d->coord_error[0] = 0;
		endpoints_stream_started(d);
		break;
	case CC_LOST:
		d->cc_connected = 0;
		d->stats.coord_stream_lost++;
		nmcache_sync(&d->cache);   /* the next stream resumes it, or a full replaces it */
		snprintf(d->coord_error, sizeof(d->coord_error), "%s",
			 detail == -EPERM ? "the coordination server's certificate does not match the pin"
					  : strerror(-detail));
		/* Another instance is tried at once: an up waiting for the stream waits for it. */
		if (!d->reg && coord_urls_others_failed(&d->cc.ls.urls)) {
			snprintf(msg, sizeof(msg), "cannot reach coord at %s: %s; vpnd keeps trying",
				 d->prefs.coord, d->coord_error);
			up_done(d, -EREMOTEIO, msg);
		}
		break;
	case CC_REFUSED:
		d->cc_connected = 0;
		if (detail == 401) {
			node_gone(d, "deleted");
		} else if (detail == 403) {
			node_gone(d, "rejected");
		} else {
			snprintf(d->coord_error, sizeof(d->coord_error), "coord answered HTTP %d", detail);
		}
		break;
	}
}

static void start_stream(struct vpnd *d)
{
	int rc;

	reset_netmap(d);
	nmcache_close(&d->cache);
	d->cc_connected = 0;
	rc = coordc_start(&d->cc, d->prefs.coord, d->prefs.pin, d->prefs.token);
	if (rc) {
		snprintf(d->coord_error, sizeof(d->coord_error), "cannot start the netmap stream: %s",
			 strerror(-rc));
		log_error("cannot start the netmap stream", "coord=%s error=\"%s\"", d->prefs.coord,
			  strerror(-rc));
		up_done(d, -EIO, d->coord_error);
	}
}

/* ---- registration ---- */

static void register_done(struct coord_call *call, void *arg)
{
	struct vpnd *d = arg;
	char err[VPND_REASON_LEN], emsg[64];
	const char *token, *name, *state, *a4, *a6;
	json_t *o = NULL, *ips;

	d->jobs--;
	d->reg = NULL;
	if (d->closing)
		goto out;
	if (call->rc || call->status != 200) {
		coord_call_error(call, err, sizeof(err));
		log_warn("registration failed", "coord=%s error=\"%s\"", call->url, err);
		if (d->state != VPND_RUNNING)
			set_state(d, d->state, err);
		up_done(d, -EREMOTEIO, err);
		goto out;
	}
	o = json_parse_object(call->resp, call->resp_len, emsg, sizeof(emsg));
	ips = o ? json_object_get(o, "ips") : NULL;
	if (!o || json_get_str(o, "token", &token) || json_get_str(o, "name", &name) ||
	    json_get_str(o, "state", &state) || strlen(token) >= sizeof(d->prefs.token) ||
	    strlen(name) >= sizeof(d->prefs.name) || !json_is_array(ips) ||
	    !(a4 = json_string_value(json_array_get(ips, 0))) ||
	    !(a6 = json_string_value(json_array_get(ips, 1))) ||
	    strlen(a4) >= sizeof(d->prefs.ip4) || strlen(a6) >= sizeof(d->prefs.ip6)) {
		log_error("registration answer malformed", "coord=%s", call->url);
		up_done(d, -EREMOTEIO, "coord's registration answer is malformed");
		goto out;
	}
	snprintf(d->prefs.token, sizeof(d->prefs.token), "%s", token);
	snprintf(d->prefs.name, sizeof(d->prefs.name), "%s", name);
	d->prefs.node_state = node_status_parse(state);
	snprintf(d->prefs.ip4, sizeof(d->prefs.ip4), "%s", a4);
	snprintf(d->prefs.ip6, sizeof(d->prefs.ip6), "%s", a6);
	save_prefs(d);
	log_info("registered", "name=%s state=%s ip4=%s", name, state, a4);
	if (!d->prefs.want_up) {
		/* `down` came while registering: keep the registration, stay down. */
		up_done(d, -ECANCELED, "vpnd was told to go down meanwhile");
		goto out;
	}
	/* The new token streams from now on; the interface stays as it is. */
	start_stream(d);
	if (d->prefs.node_state == NODE_STATUS_NEEDS_APPROVAL) {
		snprintf(err, sizeof(err), "waiting for approval: coord nodes approve %s", name);
		set_state(d, VPND_NEEDS_APPROVAL, err);
		up_done(d, 0, NULL);
	}
out:
	json_decref(o);
	coord_call_free(call);
}

static int start_register(struct vpnd *d, const char *auth_key)
{
	struct coord_call *call;
	int rc, rotate = d->state == VPND_EXPIRED || d->prefs.node_state == NODE_STATUS_EXPIRED;

	if (!d->have_keys) {
		rc = node_keys_load(d->opts.state_dir, 1, &d->keys);
		if (rc)
			return rc;
		d->have_keys = 1;
		log_info("node keys created", "dir=%s", d->opts.state_dir);
	} else if (rotate) {
		/* coord takes the same machine key with a new node key (and an auth key or an
		 * admin's approval) back under the same name and addresses. */
		rc = node_keys_rotate(d->opts.state_dir, &d->keys);
		if (rc)
			return rc;
		log_info("node key rotated", "reason=expired");
	}
	call = vpnd_call_new(d, CALL_REGISTER);
	if (!call)
		return -ENOMEM;
	call->keys = d->keys;
	snprintf(call->hostname, sizeof(call->hostname), "%s", d->prefs.hostname);
	snprintf(call->auth_key, sizeof(call->auth_key), "%s", auth_key ? auth_key : "");
	rc = coord_call_start(d->loop, call, register_done, d);
	if (rc) {
		coord_call_free(call);
		return rc;
	}
	d->reg = call;
	d->jobs++;
	log_info("registering", "coord=%s hostname=%s auth_key=%s", d->prefs.coord,
		 d->prefs.hostname, auth_key && *auth_key ? "yes" : "no");
	return 0;
}

struct coord_call *vpnd_call_new(struct vpnd *d, enum coord_call_kind kind)
{
	char to[COORD_URLS_ORDERED_MAX + 1];

	coordc_targets(&d->cc, d->prefs.coord, d->prefs.pin, to, sizeof(to));
	return coord_call_new(kind, to, d->prefs.pin);
}

/* ---- control actions ---- */

static void use_cache(struct vpnd *d);

/* What a changed coord URL leaves of the old network: nothing. */
static void leave_coord(struct vpnd *d, const char *coord)
{
	if (d->prefs.coord[0])
		log_info("coordination server changed", "from=%s to=%s", d->prefs.coord, coord);
	coordc_stop(&d->cc);
	iface_down(d);
	reset_netmap(d);
	cache_remove(d);
	forget_node(d);
	snprintf(d->prefs.coord, sizeof(d->prefs.coord), "%s", coord);
	d->prefs.pin[0] = 0;
	set_state(d, VPND_STOPPED, "");
}

/* A list sharing an instance with the old one names the same network (instances added,
 * removed or reordered): the node stays; a running stream starts over on the new list. */
static void relist_coord(struct vpnd *d, const char *coord)
{
	log_info("coordination server list changed", "from=%s to=%s", d->prefs.coord, coord);
	snprintf(d->prefs.coord, sizeof(d->prefs.coord), "%s", coord);
	if (d->cc.active && d->prefs.token[0])
		coordc_start(&d->cc, d->prefs.coord, d->prefs.pin, d->prefs.token);
}

int vpnd_up(struct vpnd *d, const struct up_request *r, char *err, size_t errlen)
{
	int need_register, pin_changed = 0, rc;

	if (d->reg || d->logout_call) {
		snprintf(err, errlen, "a registration or logout is in progress; try again in a moment");
		return -EBUSY;
	}
	if (!r->coord[0] && !d->prefs.coord[0]) {
		snprintf(err, errlen, "this node has not joined a network yet: give --coord URL");
		return -EDESTADDRREQ;
	}
	if (r->coord[0] && strcmp(r->coord, d->prefs.coord)) {
		if (coord_urls_overlap(r->coord, d->prefs.coord))
			relist_coord(d, r->coord);
		else
			leave_coord(d, r->coord);
	}
	if (r->pin[0] && strcmp(r->pin, d->prefs.pin)) {
		/* A new pin: the stream must verify coord with it from now on. */
		snprintf(d->prefs.pin, sizeof(d->prefs.pin), "%s", r->pin);
		pin_changed = 1;
	}
	if (r->hostname[0])
		snprintf(d->prefs.hostname, sizeof(d->prefs.hostname), "%s", r->hostname);
	if (!d->prefs.hostname[0] && gethostname(d->prefs.hostname, sizeof(d->prefs.hostname) - 1))
		snprintf(d->prefs.hostname, sizeof(d->prefs.hostname), "node");
	d->prefs.want_up = 1;
	if (r->accept_dns >= 0)
		d->prefs.accept_dns = r->accept_dns;
	save_prefs(d);
	vpnd_dns_follow(d);   /* already running: at once */

	need_register = !d->prefs.token[0] || !d->have_keys || d->state == VPND_EXPIRED ||
			d->prefs.node_state == NODE_STATUS_EXPIRED ||
			(r->auth_key[0] && d->state != VPND_RUNNING &&
			 d->prefs.node_state != NODE_STATUS_RUNNING);
	if (need_register) {
		rc = start_register(d, r->auth_key);
		if (rc) {
			snprintf(err, errlen, "cannot register: %s", strerror(-rc));
			return -EIO;
		}
		return -EINPROGRESS;
	}
	if (pin_changed && d->cc.active) {
		log_info("coord pin changed, reconnecting", "coord=%s", d->prefs.coord);
		start_stream(d);
		return -EINPROGRESS;
	}
	if (d->cc.active && d->nm.have_full &&
	    (d->state == VPND_RUNNING || d->state == VPND_NEEDS_APPROVAL))
		return 0;
	if (d->state == VPND_RUNNING && d->wg)
		return 0;   /* running on the last netmap while coord is away */
	log_info("joining", "coord=%s", d->prefs.coord);
	if (!d->cc.active) {
		start_stream(d);
		use_cache(d);   /* back up at once even while coord is away */
		if (d->state == VPND_RUNNING && d->wg)
			return 0;
	}
	return -EINPROGRESS;
}

void vpnd_down(struct vpnd *d)
{
	d->prefs.want_up = 0;
	save_prefs(d);
	coordc_stop(&d->cc);
	d->cc_connected = 0;
	iface_down(d);
	reset_netmap(d);
	nmcache_close(&d->cache);   /* kept: the next up or start may use it */
	set_state(d, VPND_STOPPED, "stopped by vpnctl down");
	vpnd_dns_follow(d);   /* put back before `down` answers */
	up_done(d, -ECANCELED, "vpnd was told to go down");
	log_info("down", "ifname=%s", d->opts.ifname);
}

static void drop_identity(struct vpnd *d)
{
	int rc;

	forget_node(d);
	cache_remove(d);
	d->prefs.coord[0] = 0;
	d->prefs.pin[0] = 0;
	d->prefs.hostname[0] = 0;
	rc = prefs_remove(d->opts.state_dir);
	if (!rc)
		rc = node_keys_remove(d->opts.state_dir);
	if (rc)
		log_error("cannot delete keys or prefs", "dir=%s error=\"%s\"", d->opts.state_dir,
			  strerror(-rc));
	node_keys_wipe(&d->keys);
	d->have_keys = 0;
	tls_session_cache_clear();   /* nothing of the old identity's sessions stays in memory */
	endpoints_forget(d);
}

static void logout_done(struct coord_call *call, void *arg)
{
	struct vpnd *d = arg;
	char err[VPND_REASON_LEN];
	int told = !call->rc && (call->status == 200 || call->status == 401);

	d->jobs--;
	d->logout_call = NULL;
	if (d->closing) {
		coord_call_free(call);
		return;
	}
	if (!told) {
		coord_call_error(call, err, sizeof(err));
		log_warn("coord was not told about the logout", "error=\"%s\"", err);
	}
	drop_identity(d);
	set_state(d, VPND_STOPPED, "logged out");
	log_info("logged out", "coord_notified=%s", told ? "yes" : "no");
	emit(d, VPND_EV_LOGOUT_DONE, 0, NULL, told);
	coord_call_free(call);
}

int vpnd_logout(struct vpnd *d, char *err, size_t errlen)
{
	struct coord_call *call;

	if (d->reg || d->logout_call) {
		snprintf(err, errlen, "a registration or logout is in progress; try again in a moment");
		return -EBUSY;
	}
	coordc_stop(&d->cc);
	d->cc_connected = 0;
	iface_down(d);
	reset_netmap(d);
	up_done(d, -ECANCELED, "vpnd is logging out");
	d->prefs.want_up = 0;
	dnsconf_restore(&d->dnsconf);
	if (d->prefs.token[0] && d->prefs.coord[0]) {
		call = vpnd_call_new(d, CALL_LOGOUT);
		if (call) {
			snprintf(call->token, sizeof(call->token), "%s", d->prefs.token);
			if (!coord_call_start(d->loop, call, logout_done, d)) {
				d->logout_call = call;
				d->jobs++;
				return -EINPROGRESS;
			}
			coord_call_free(call);
		}
	}
	drop_identity(d);
	set_state(d, VPND_STOPPED, "logged out");
	log_info("logged out", "coord_notified=no");
	return 0;
}

/* ---- lifecycle ---- */

static void on_tick(uv_timer_t *t)
{
	struct vpnd *d = t->data;

	d->ticks++;
	/* Deltas are written as they come and made durable here, at most once a second: an
	 * fsync per online flip would stall the loop on a busy tailnet. */
	if (nmcache_sync(&d->cache))
		log_warn("cannot sync the netmap cache", "path=%s", d->cache.path);
	if (d->state == VPND_RUNNING && d->wg && d->sync.dirty)
		wgsync_resync(&d->sync, &d->nm);
	if (d->state == VPND_RUNNING && d->wg)
		wgsync_tick(&d->sync);
	vpnd_dns_follow(d);   /* the resolver started late, or the node stopped (gone, expired) */
	endpoints_tick(d, d->ticks);
	/* The netmap says run but the interface failed: try again now and then. */
	if (d->state == VPND_STOPPED && !d->wg && d->nm.have_full && d->cc.active &&
	    d->nm.self.state == NODE_STATUS_RUNNING && d->ticks % IFACE_RETRY_TICKS == 0)
		on_full(d);
}

/* A start while coord is away: the last netmap on disk brings the interface and the peers
 * up at once; coord's own full, when it comes, goes through wgsync_full like any other
 * and touches only what differs. */
static void use_cache(struct vpnd *d)
{
	struct nmcache_info info;
	int rc;

	rc = nmcache_load(d->opts.state_dir, d->keys.node_pub, (int64_t)time(NULL), &d->nm, &info);
	if (rc == -ENOENT)
		return;
	if (rc) {
		log_warn("netmap cache ignored", "path=%s reason=\"%s\" age_s=%lld", d->cache.path,
			 info.why, (long long)info.age_s);
		if (rc != -ENOMEM)
			cache_remove(d);   /* the next full writes a new one */
		return;
	}
	if (info.bad_lines)
		log_warn("netmap cache lines refused", "path=%s bad_lines=%zu", d->cache.path,
			 info.bad_lines);
	log_info("netmap from cache", "peers=%zu age_s=%lld deltas=%zu version=%lld", d->nm.n_peers,
		 (long long)info.age_s, info.lines, (long long)d->nm.version);
	/* What a resume adds could not be kept, or the cache missed lines: ask for a full. */
	if (nmcache_reopen(&d->cache, &info) || info.bad_lines)
		d->nm.resync = 1;
	d->nm_from_cache = 1;
	on_full(d);
	if (d->state == VPND_RUNNING)
		set_state(d, VPND_RUNNING, "on the cached netmap until coord answers");
}

int vpnd_init(struct vpnd *d, uv_loop_t *loop, const struct vpnd_opts *opts)
{
	int rc;

	memset(d, 0, sizeof(*d));
	d->loop = loop;
	d->opts = *opts;
	netmap_init(&d->nm);
	nmcache_init(&d->cache, opts->state_dir);
	wgsync_init(&d->sync, d->opts.ifname);
	traversal_init(&d->tv, d);
	resolver_init(&d->rs, loop, d);
	if (opts->dns_log && rl_resize(&d->rs.log, opts->dns_log))
		log_warn("no memory for the dns query log, off", "entries=%u", opts->dns_log);
	dnsbl_init(&d->dnsbl, loop, on_blocklist, d);
	dnsconf_init(&d->dnsconf, opts->state_dir, opts->ifname, opts->resolv_conf, opts->resolvectl,
		     opts->resolved_dir);
	if (dnsconf_pending(&d->dnsconf)) {
		/* A crash left the system pointed at a resolver that is gone: put it back now;
		 * with accept-dns still on it is pointed again once the node runs. */
		log_info("DNS configuration left by a previous run", "backup=%s", d->dnsconf.backup);
		dnsconf_restore(&d->dnsconf);
	}
	rc = prefs_load(opts->state_dir, &d->prefs);
	if (rc && rc != -ENOENT) {
		log_error("cannot read prefs", "dir=%s error=\"%s\"", opts->state_dir, strerror(-rc));
		return rc;
	}
	rc = node_keys_load(opts->state_dir, 0, &d->keys);
	if (!rc)
		d->have_keys = 1;
	else if (rc != -ENOENT) {
		log_error("cannot read node keys", "dir=%s error=\"%s\"", opts->state_dir, strerror(-rc));
		return rc;
	}
	coordc_init(&d->cc, loop, on_line, on_cc_event, d);
	d->cc.nm = &d->nm;
	rc = control_listen(d);
	if (rc) {
		log_error("cannot listen on the control socket", "path=%s error=\"%s\"", opts->socket,
			  strerror(-rc));
		coordc_close(&d->cc);
		return rc;
	}
	if (opts->metrics) {
		rc = metrics_server_start(loop, opts->metrics, vpnd_metrics_fill, d, &d->metrics);
		if (rc) {
			log_error("cannot listen for metrics", "addr=%s error=\"%s\"", opts->metrics,
				  strerror(-rc));
			control_close(d);
			coordc_close(&d->cc);
			return rc;
		}
	}
	rc = linkmon_init(&d->linkmon, loop, opts->ifname, endpoints_links_changed, d);
	if (rc)
		log_warn("cannot watch address changes, checking every minute", "error=\"%s\"",
			 strerror(-rc));
	uv_timer_init(loop, &d->tick);
	d->tick.data = d;
	uv_timer_start(&d->tick, on_tick, TICK_MS, TICK_MS);
	set_state(d, VPND_STOPPED, "not joined: run vpnctl up --coord URL");
	if (d->prefs.want_up && d->prefs.token[0] && d->prefs.coord[0] && d->have_keys) {
		log_info("rejoining", "coord=%s name=%s", d->prefs.coord, d->prefs.name);
		set_state(d, VPND_STOPPED, "connecting to coord");
		start_stream(d);
		use_cache(d);
	} else if (d->prefs.token[0]) {
		set_state(d, VPND_STOPPED, "down: run vpnctl up");
	}
	log_info("vpnd started", "state_dir=%s socket=%s ifname=%s backend=%s port=%u",
		 opts->state_dir, opts->socket, opts->ifname, opts->backend, opts->port);
	return 0;
}

void vpnd_shutdown(struct vpnd *d)
{
	if (d->closing)
		return;
	d->closing = 1;
	traversal_stop(&d->tv);   /* answers waiting pings while the control socket is up */
	control_close(d);   /* answers what waits: 503 */
	metrics_server_free(d->metrics);
	d->metrics = NULL;
	coordc_close(&d->cc);
	linkmon_close(&d->linkmon);
	dnsconf_restore(&d->dnsconf);   /* the resolver goes with us; a restart points again */
	iface_down(d);
	traversal_close(&d->tv);
	dnsbl_close(&d->dnsbl);
	resolver_close(&d->rs);
	if (d->nif) {
		netif_close(d->nif);
		d->nif = NULL;
	}
	uv_close((uv_handle_t *)&d->tick, NULL);
	reset_netmap(d);
	nmcache_close(&d->cache);
	wgsync_free(&d->sync);
	node_keys_wipe(&d->keys);
	prefs_wipe(&d->prefs);
	log_info("vpnd stopped", "jobs_in_flight=%d", d->jobs);
}
