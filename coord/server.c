/* server.c - `coord serve`: the event loop, the TLS listener for nodes and relays,
 * the admin socket (0600) for the CLI, Prometheus metrics, timers and signals. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sodium.h>

#include "coord.h"
#include "meshvpn/addr.h"
#include "meshvpn/args.h"
#include "meshvpn/file.h"
#include "meshvpn/log.h"
#include "meshvpn/metrics.h"

/* What one anonymous client may hold or ask for, unless told otherwise. */
#define DEFAULT_MAX_CONNS 16384
#define DEFAULT_MAX_CONNS_PER_IP 256
#define DEFAULT_MAX_PENDING 1000
#define DEFAULT_CHALLENGE_RATE 60       /* a minute, per source; also the burst */
#define DEFAULT_REGISTER_RATE 30
/* Stream requests are shed (503, Retry-After) while this much is unsent to clients: 80
 * full netmaps in flight at 10,000 nodes, and memory coord holds for them. */
#define DEFAULT_SHED_UNSENT_MIB 256
#define DEFAULT_SHED_RETRY_AFTER 5      /* seconds; clients add 0..S/2 of jitter */
#define NOFILE_MARGIN 256               /* admin connections, the store, listeners */

struct server {
	uv_loop_t *loop;
	struct coord co;
	struct tls_config *tls;
	struct http_server *pub, *admin;
	struct metrics_server *metrics;
	uv_tcp_t tcp;
	uv_pipe_t admin_pipe;
	uv_timer_t tick, keepalive;
	uv_signal_t sigint, sigterm;
	int have_tcp, have_admin;
	int lock_fd;
};

static void on_public(struct http_request *req, void *arg)
{
	struct server *s = arg;

	api_handle(&s->co, req, 0);
}

static void on_admin(struct http_request *req, void *arg)
{
	struct server *s = arg;

	api_handle(&s->co, req, 1);
}

/* What hostile clients cost: refusals and cuts at the HTTP edge, rate limits, caps. */
static void fill_guard_metrics(struct metrics_text *t, struct server *s)
{
	const struct coord_guard *g = &s->co.guard;
	struct http_server_stats h;

	http_server_get_stats(s->pub, &h);
	metrics_printf(t,
		"# HELP coord_http_rejected_total Requests refused while being read (malformed, too large, slow).\n"
		"# TYPE coord_http_rejected_total counter\ncoord_http_rejected_total %llu\n"
		"# HELP coord_http_connections_refused_total Connections over --max-conns or --max-conns-per-ip.\n"
		"# TYPE coord_http_connections_refused_total counter\ncoord_http_connections_refused_total %llu\n"
		"# HELP coord_http_stalls_total Clients no longer read because their answers were not.\n"
		"# TYPE coord_http_stalls_total counter\ncoord_http_stalls_total %llu\n"
		"# TYPE coord_http_drain_closed_total counter\ncoord_http_drain_closed_total %llu\n"
		"# HELP coord_rate_limited_total Requests answered 429.\n"
		"# TYPE coord_rate_limited_total counter\n"
		"coord_rate_limited_total{endpoint=\"challenge\"} %llu\n"
		"coord_rate_limited_total{endpoint=\"register\"} %llu\n"
		"# HELP coord_pending_cap_hits_total Registrations refused: --max-pending nodes wait already.\n"
		"# TYPE coord_pending_cap_hits_total counter\ncoord_pending_cap_hits_total %llu\n"
		"# TYPE coord_challenges_issued_total counter\ncoord_challenges_issued_total %llu\n"
		"# TYPE coord_challenges_used_full_total counter\ncoord_challenges_used_full_total %llu\n"
		"# HELP coord_shed_total Stream requests answered 503 with Retry-After: coord overloaded.\n"
		"# TYPE coord_shed_total counter\n"
		"coord_shed_total{endpoint=\"map\"} %llu\n"
		"coord_shed_total{endpoint=\"relay_stream\"} %llu\n"
		"# HELP coord_unsent_bytes Bytes written to clients, not yet handed to the kernel (what --shed-unsent-mib bounds).\n"
		"# TYPE coord_unsent_bytes gauge\ncoord_unsent_bytes %zu\n"
		"# HELP coord_log_lines_suppressed_total Log lines left out by the bounded-rate logger.\n"
		"# TYPE coord_log_lines_suppressed_total counter\ncoord_log_lines_suppressed_total %llu\n",
		(unsigned long long)h.rejected, (unsigned long long)h.conns_refused,
		(unsigned long long)h.stalls, (unsigned long long)h.drain_closed,
		(unsigned long long)g->limited_challenge, (unsigned long long)g->limited_register,
		(unsigned long long)g->pending_full, (unsigned long long)g->issued,
		(unsigned long long)g->used_full, (unsigned long long)g->shed_map,
		(unsigned long long)g->shed_relay, conn_unsent_total(), log_suppressed_total());
}

static void fill_metrics(struct metrics_text *t, void *arg)
{
	struct server *s = arg;
	struct coord *co = &s->co;
	/* the order of the metrics text as it always was */
	static const enum node_status order[] = { NODE_STATUS_RUNNING, NODE_STATUS_NEEDS_APPROVAL,
						  NODE_STATUS_EXPIRED, NODE_STATUS_REJECTED };
	size_t counts[NODE_STATUS_REJECTED + 1] = { 0 }, online = 0;
	uint64_t hs_full, hs_resumed;

	for (struct node *nd = co->nodes_head; nd; nd = nd->next) {
		counts[coord_node_state(nd)]++;
		online += netmap_node_online(nd);
	}
	metrics_printf(t, "# HELP coord_nodes Nodes by state.\n# TYPE coord_nodes gauge\n");
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		metrics_printf(t, "coord_nodes{state=\"%s\"} %zu\n", node_status_name(order[i]),
			       counts[order[i]]);
	metrics_printf(t,
		"# HELP coord_nodes_online Nodes holding a netmap stream.\n# TYPE coord_nodes_online gauge\n"
		"coord_nodes_online %zu\n"
		"# TYPE coord_watchers gauge\ncoord_watchers %zu\n"
		"# TYPE coord_registrations_total counter\ncoord_registrations_total %llu\n"
		"# HELP coord_netmap_lines_sent_total Netmap lines written to streams.\n"
		"# TYPE coord_netmap_lines_sent_total counter\ncoord_netmap_lines_sent_total %llu\n"
		"# TYPE coord_netmap_bytes_sent_total counter\ncoord_netmap_bytes_sent_total %llu\n"
		"# TYPE coord_slow_watchers_cut_total counter\ncoord_slow_watchers_cut_total %llu\n"
		"# TYPE coord_http_requests_total counter\ncoord_http_requests_total %llu\n"
		"# TYPE coord_http_bad_requests_total counter\ncoord_http_bad_requests_total %llu\n"
		"# TYPE coord_http_connections gauge\ncoord_http_connections %zu\n",
		online, co->n_watchers,
		(unsigned long long)co->stats.registrations, (unsigned long long)co->stats.deltas_sent,
		(unsigned long long)co->stats.bytes_sent, (unsigned long long)co->stats.slow_watchers_cut,
		(unsigned long long)co->stats.requests, (unsigned long long)co->stats.bad_requests,
		http_server_conn_count(s->pub));
	metrics_printf(t,
		"# HELP coord_netmap_sent_total Maps sent on a stream's start: whole, or resumed from a version.\n"
		"# TYPE coord_netmap_sent_total counter\n"
		"coord_netmap_sent_total{kind=\"full\"} %llu\ncoord_netmap_sent_total{kind=\"resume\"} %llu\n"
		"coord_netmap_sent_total{kind=\"relay_resume\"} %llu\n"
		"# HELP coord_netmap_resume_refused_total Resumes answered with a full map, by why.\n"
		"# TYPE coord_netmap_resume_refused_total counter\n"
		"coord_netmap_resume_refused_total{why=\"epoch\"} %llu\n"
		"coord_netmap_resume_refused_total{why=\"too_old\"} %llu\n"
		"coord_netmap_resume_refused_total{why=\"future\"} %llu\n"
		"# TYPE coord_netmap_version gauge\ncoord_netmap_version %lld\n",
		(unsigned long long)co->nm.fulls, (unsigned long long)co->nm.resumes,
		(unsigned long long)co->nm.relay_resumes, (unsigned long long)co->nm.refused_epoch,
		(unsigned long long)co->nm.refused_stale, (unsigned long long)co->nm.refused_future,
		(long long)netmap_version(co));
	metrics_printf(t,
		"# HELP coord_netmap_bytes_uncompressed_total What coord_netmap_bytes_sent_total would be "
		"without z frames.\n# TYPE coord_netmap_bytes_uncompressed_total counter\n"
		"coord_netmap_bytes_uncompressed_total %llu\n",
		(unsigned long long)co->stats.bytes_uncompressed);
	tls_config_handshakes(s->tls, &hs_full, &hs_resumed);
	metrics_printf(t, "# HELP coord_tls_handshakes_total TLS handshakes that went through: full, or a resumed session.\n"
		       "# TYPE coord_tls_handshakes_total counter\n"
		       "coord_tls_handshakes_total{kind=\"full\"} %llu\ncoord_tls_handshakes_total{kind=\"resumed\"} %llu\n",
		       (unsigned long long)hs_full, (unsigned long long)hs_resumed);
	fill_guard_metrics(t, s);
	coord_blocklists_metrics(co, t);
	coord_feed_metrics(co, t);
}

static void on_tls_connection(uv_stream_t *listener, int status)
{
	struct server *s = listener->data;
	struct conn *c;

	if (status < 0)
		return;
	if (!tls_accept(s->tls, listener, &c))
		http_server_add_conn(s->pub, c);
}

static void on_admin_connection(uv_stream_t *listener, int status)
{
	struct server *s = listener->data;
	struct conn *c;

	if (status < 0)
		return;
	if (!conn_plain_accept(listener, &c))
		http_server_add_conn(s->admin, c);
}

static void on_tick(uv_timer_t *t)
{
	struct server *s = t->data;

	coord_tick(&s->co);
	log_limit_flush_all();
}

static void on_keepalive(uv_timer_t *t)
{
	struct server *s = t->data;

	netmap_keepalive(&s->co);
	relay_stream_keepalive(&s->co);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct server *s = sig->data;

	log_info("shutting down", "signal=%d", signum);
	uv_stop(s->loop);
}

/* The session ticket secret, one per database (made by whichever instance starts first):
 * a restarted coord and the other instances resume the TLS sessions one issued, so a
 * fleet reconnecting at once does not cost a full handshake each. */
static int ticket_key(struct server *s)
{
	uint8_t raw[32];
	char hex[65], fresh[65];
	int rc = store_meta_get(s->co.st, "tls_ticket_key", hex, sizeof(hex));

	if (rc == -ENOENT) {
		randombytes_buf(raw, sizeof(raw));
		hex_encode(raw, sizeof(raw), fresh);
		rc = store_meta_init(s->co.st, "tls_ticket_key", fresh, hex, sizeof(hex));
		sodium_memzero(fresh, sizeof(fresh));
	}
	if (!rc)
		rc = hex_decode(hex, raw, sizeof(raw));
	if (!rc)
		rc = tls_config_set_ticket_key(s->tls, raw);
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(hex, sizeof(hex));
	return rc;
}

static int setup_tls(struct server *s, const char *dir, const char *cert, const char *key)
{
	char pin[TLS_PIN_LEN];
	int self, rc;

	if (!cert != !key) {
		fprintf(stderr, "coord: --tls-cert and --tls-key go together\n");
		return -EINVAL;
	}
	rc = tls_server_setup("coord", dir, cert, key, &s->tls, pin, &self);
	if (!rc && (rc = ticket_key(s)))
		fprintf(stderr, "coord: cannot read or make the session ticket key: %s\n", strerror(-rc));
	return rc;
}

static void start_timers(struct server *s, int64_t keepalive_s)
{
	uv_timer_init(s->loop, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, on_tick, 1000, 1000);
	uv_timer_init(s->loop, &s->keepalive);
	s->keepalive.data = s;
	uv_timer_start(&s->keepalive, on_keepalive, (uint64_t)keepalive_s * 1000,
		       (uint64_t)keepalive_s * 1000);
	uv_signal_init(s->loop, &s->sigint);
	s->sigint.data = s;
	uv_signal_start(&s->sigint, on_signal, SIGINT);
	uv_signal_init(s->loop, &s->sigterm);
	s->sigterm.data = s;
	uv_signal_start(&s->sigterm, on_signal, SIGTERM);
}

/* The bound address, so that --listen 127.0.0.1:0 (tests) says its port. */
static void print_listening(struct server *s, const char *sock)
{
	struct sockaddr_storage ss;
	struct addr_port a = { 0 };
	int len = sizeof(ss);
	char text[ADDR_TEXT_LEN] = "?:0";

	if (!uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len) &&
	    !addr_from_sockaddr((struct sockaddr *)&ss, &a))
		addr_format(&a, text, sizeof(text));
	printf("coord: listening on %s, admin socket %s\n", text, sock);
}

/* The caps on what clients may hold or ask, from the command line. */
struct serve_limits {
	const char *max_conns, *max_conns_per_ip, *max_pending, *challenge_rate, *register_rate;
	const char *shed_unsent, *shed_retry_after;
};

static int parse_count(const char *text, const char *name, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long long v;

	if (!text)
		return 0;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || v > max) {
		fprintf(stderr, "coord serve: --%s takes a number up to %lu\n", name, max);
		return -EINVAL;
	}
	*out = (unsigned long)v;
	return 0;
}

static int parse_limits(const struct serve_limits *l, struct http_server_opts *h,
			struct coord_guard_opts *g)
{
	unsigned long conns = DEFAULT_MAX_CONNS, per_ip = DEFAULT_MAX_CONNS_PER_IP;
	unsigned long pending = DEFAULT_MAX_PENDING, ch = DEFAULT_CHALLENGE_RATE;
	unsigned long reg = DEFAULT_REGISTER_RATE;
	unsigned long shed = DEFAULT_SHED_UNSENT_MIB, retry = DEFAULT_SHED_RETRY_AFTER;

	if (parse_count(l->max_conns, "max-conns", 1UL << 20, &conns) ||
	    parse_count(l->max_conns_per_ip, "max-conns-per-ip", 1UL << 20, &per_ip) ||
	    parse_count(l->max_pending, "max-pending", 1UL << 22, &pending) ||
	    parse_count(l->challenge_rate, "challenge-rate", 1UL << 20, &ch) ||
	    parse_count(l->register_rate, "register-rate", 1UL << 20, &reg) ||
	    parse_count(l->shed_unsent, "shed-unsent-mib", 1UL << 20, &shed) ||
	    parse_count(l->shed_retry_after, "shed-retry-after", 300, &retry))
		return -EINVAL;
	if (!retry) {
		fprintf(stderr, "coord serve: --shed-retry-after is 1 to 300 seconds\n");
		return -EINVAL;
	}
	if (!ch || !reg) {
		fprintf(stderr, "coord serve: --challenge-rate and --register-rate are at least 1 a minute\n");
		return -EINVAL;
	}
	h->max_conns = conns;            /* 0: no cap */
	h->max_conns_per_source = per_ip;
	g->max_pending = pending;
	g->challenge_per_min = (unsigned)ch;
	g->register_per_min = (unsigned)reg;
	g->shed_on = 1;
	g->shed_unsent = (size_t)shed << 20;   /* 0: every stream request is shed */
	g->shed_retry_after = (unsigned)retry;
	return 0;
}

/* --store, --instance, --url: which database, and this instance's name in it (default
 * the host name and the listening port: stable across restarts, so a restarted
 * instance recognises the online marks it left). */
static int serve_store_opts(struct coord_opts *o, const char *store, const char *instance,
			    const char *url, const char *listen, const char *keep, char *err,
			    size_t errlen)
{
	static char name[STORE_NAME_LEN];
	char host[64] = "coord";
	const char *port = strrchr(listen, ':');
	unsigned long k = COORD_FEED_KEEP;

	if (parse_count(keep, "feed-keep", 1UL << 30, &k) || k < 10) {
		snprintf(err, errlen, "--feed-keep takes a number of changes, at least 10");
		return -EINVAL;
	}
	o->feed_keep = (int64_t)k;

	if (store && !store_spec_is_remote(store)) {
		snprintf(err, errlen, "--store takes a postgresql:// URI (without it: SQLite in --state)");
		return -EINVAL;
	}
	if (instance && (!*instance || strlen(instance) >= sizeof(name) || strchr(instance, ','))) {
		snprintf(err, errlen, "--instance takes a name of 1-%zu characters", sizeof(name) - 1);
		return -EINVAL;
	}
	if (!instance && store) {
		gethostname(host, sizeof(host) - 1);
		snprintf(name, sizeof(name), "%.40s-%.8s", host, port ? port + 1 : "8443");
		instance = name;
	}
	o->store = store;
	o->instance = instance;
	o->url = url;
	return 0;
}

int coord_serve_main(int argc, char **argv)
{
	const char *state = "./coord-state", *listen = ":8443", *cert = NULL, *key = NULL;
	const char *metrics = NULL, *eph = "5m", *expiry = "180d", *keepalive = "30s";
	const char *grace = "45s";
	const char *level = NULL, *bl_refresh = "6h", *store = NULL, *instance = NULL, *url = NULL;
	const char *feed_keep = NULL;
	struct serve_limits lim = { 0 };
	const struct arg_opt opts[] = {
		{ "max-conns", &lim.max_conns, NULL, 0 },
		{ "max-conns-per-ip", &lim.max_conns_per_ip, NULL, 0 },
		{ "max-pending", &lim.max_pending, NULL, 0 },
		{ "challenge-rate", &lim.challenge_rate, NULL, 0 },
		{ "register-rate", &lim.register_rate, NULL, 0 },
		{ "shed-unsent-mib", &lim.shed_unsent, NULL, 0 },
		{ "shed-retry-after", &lim.shed_retry_after, NULL, 0 },
		{ "state", &state, NULL, 0 }, { "listen", &listen, NULL, 0 },
		{ "tls-cert", &cert, NULL, 0 }, { "tls-key", &key, NULL, 0 },
		{ "metrics", &metrics, NULL, 0 }, { "ephemeral-timeout", &eph, NULL, 0 },
		{ "key-expiry", &expiry, NULL, 0 }, { "keepalive", &keepalive, NULL, 0 },
		{ "log-level", &level, NULL, 0 }, { "blocklist-refresh", &bl_refresh, NULL, 0 },
		{ "store", &store, NULL, 0 }, { "instance", &instance, NULL, 0 },
		{ "url", &url, NULL, 0 }, { "feed-keep", &feed_keep, NULL, 0 },
		{ "reconnect-grace", &grace, NULL, 0 },
		{ NULL, NULL, NULL, 0 },
	};
	struct http_server_opts hopts = { .max_header_bytes = 16384, .max_body_bytes = 1 << 20,
					  .header_timeout_ms = 10000, .idle_timeout_ms = 120000 }, aopts;
	struct coord_opts copts = { 0 };
	struct coord_guard_opts gopts = { 0 };
	struct server s = { 0 };
	char *words[4], err[256], sock[4096];
	int64_t eph_s, exp_s, ka_s, blr_s, grace_s;
	enum log_level lvl;
	int n, rc = 1;

	n = args_parse(argc, argv, opts, words, 4, err, sizeof(err));
	if (n < 0 || n > 0) {
		fprintf(stderr, "coord serve: %s\nusage: coord serve [--state DIR] [--listen HOST:PORT] "
			"[--tls-cert F --tls-key F] [--metrics HOST:PORT]\n"
			"       [--max-conns N] [--max-conns-per-ip N] [--max-pending N]\n"
			"       [--challenge-rate PER-MIN] [--register-rate PER-MIN]\n"
			"       [--shed-unsent-mib MIB] [--shed-retry-after SECONDS]\n"
			"       [--blocklist-refresh DURATION]\n"
			"       [--store postgresql://...] [--instance NAME] [--url https://HOST:PORT]\n"
			"       [--feed-keep CHANGES] [--reconnect-grace DURATION]\n",
			n < 0 ? err : "takes no arguments");
		return 2;
	}
	if (args_parse_duration(eph, &eph_s) || args_parse_duration(expiry, &exp_s) ||
	    args_parse_duration(keepalive, &ka_s) || ka_s <= 0 ||
	    args_parse_duration(bl_refresh, &blr_s) || blr_s <= 0 ||
	    args_parse_duration(grace, &grace_s)) {
		fprintf(stderr, "coord serve: durations look like 90d, 12h, 5m, 30s\n");
		return 2;
	}
	if (level && log_parse_level(level, &lvl)) {
		fprintf(stderr, "coord serve: --log-level is error, warn, info or debug\n");
		return 2;
	}
	if (level)
		log_set_level(lvl);
	if (parse_limits(&lim, &hopts, &gopts))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	/* A descriptor per connection the cap allows, the admin's, the store's and a margin;
	 * without a cap, what the system lets us. */
	if (hopts.max_conns)
		file_raise_nofile_to(hopts.max_conns + NOFILE_MARGIN);
	else
		file_raise_nofile();
	if (keys_init()) {
		fprintf(stderr, "coord: libsodium failed to initialise\n");
		return 1;
	}
	if (mkdir(state, 0700) && errno != EEXIST) {
		fprintf(stderr, "coord: cannot create state dir %s: %s\n", state, strerror(errno));
		return 1;
	}
	s.lock_fd = file_lock_dir(state, "coord.lock");
	if (s.lock_fd < 0) {
		fprintf(stderr, "coord: %s\n", s.lock_fd == -EBUSY
			? "another coord is already serving this state dir" : strerror(-s.lock_fd));
		return 1;
	}
	s.loop = uv_default_loop();
	copts.state_dir = state;
	copts.listen = listen;
	copts.ephemeral_timeout = eph_s;
	copts.reconnect_grace = grace_s;
	copts.key_expiry = exp_s;
	copts.keepalive = ka_s;
	copts.blocklist_refresh = blr_s;
	if (serve_store_opts(&copts, store, instance, url, listen, feed_keep, err, sizeof(err))) {
		fprintf(stderr, "coord serve: %s\n", err);
		rc = 2;
		goto out_lock;
	}
	rc = coord_open(&s.co, s.loop, &copts);
	if (rc) {
		fprintf(stderr, "coord: cannot open the store %s: %s\n", store ? "(--store)" : state,
			strerror(-rc));
		rc = 1;
		goto out_lock;
	}
	rc = 1;
	if (!cert && coord_tls_identity(&s.co, state)) {
		fprintf(stderr, "coord: cannot share the TLS identity through the store\n");
		goto out_coord;
	}
	if (coord_guard_setup(&s.co, &gopts)) {
		fprintf(stderr, "coord: out of memory\n");
		goto out_coord;
	}
	if (setup_tls(&s, state, cert, key))
		goto out_coord;
	aopts = hopts;
	aopts.max_conns = aopts.max_conns_per_source = 0;   /* the 0600 socket: the admin's own */
	if (http_server_new(s.loop, &hopts, on_public, &s, &s.pub) ||
	    http_server_new(s.loop, &aopts, on_admin, &s, &s.admin))
		goto out_servers;
	s.tcp.data = &s;
	if (conn_listen_tcp(s.loop, listen, &s.tcp, on_tls_connection)) {
		fprintf(stderr, "coord: cannot listen on %s (in use, or not an address here?)\n", listen);
		goto out_servers;
	}
	s.have_tcp = 1;
	snprintf(sock, sizeof(sock), "%s/%s", state, COORD_ADMIN_SOCKET);
	s.admin_pipe.data = &s;
	if (conn_listen_unix(s.loop, sock, &s.admin_pipe, on_admin_connection)) {
		fprintf(stderr, "coord: cannot create the admin socket %s\n", sock);
		goto out_handles;
	}
	s.have_admin = 1;
	if (metrics && metrics_server_start(s.loop, metrics, fill_metrics, &s, &s.metrics)) {
		fprintf(stderr, "coord: cannot listen for metrics on %s\n", metrics);
		goto out_handles;
	}
	if (coord_blocklists_start(&s.co) || coord_feed_start(&s.co))
		goto out_handles;
	start_timers(&s, ka_s);

	print_listening(&s, sock);
	fflush(stdout);
	log_info("coord serving", "listen=%s state=%s nodes=%zu", listen, state, s.co.n_nodes);
	uv_run(s.loop, UV_RUN_DEFAULT);
	rc = 0;

	coord_blocklists_stop(&s.co);   /* its jobs end in the uv_run below */
	coord_feed_stop(&s.co);
	/* Stopping (an upgrade, a restart): the nodes' online marks stay in the store, so the
	 * next start counts them online while they come back (COORD_RECONNECT_GRACE). */
	netmap_close_all_quiet(&s.co);
	relay_stream_close_all(&s.co);
	uv_close((uv_handle_t *)&s.tick, NULL);
	uv_close((uv_handle_t *)&s.keepalive, NULL);
	uv_close((uv_handle_t *)&s.sigint, NULL);
	uv_close((uv_handle_t *)&s.sigterm, NULL);
out_handles:
	if (s.have_tcp)
		uv_close((uv_handle_t *)&s.tcp, NULL);
	if (s.have_admin) {
		uv_close((uv_handle_t *)&s.admin_pipe, NULL);
		unlink(sock);
	}
	metrics_server_free(s.metrics);
	s.metrics = NULL;
out_servers:
	if (s.pub)
		http_server_free(s.pub);
	if (s.admin)
		http_server_free(s.admin);
	uv_run(s.loop, UV_RUN_DEFAULT);
	tls_config_free(s.tls);
out_coord:
	coord_guard_free(&s.co);
	coord_close(&s.co);
out_lock:
	close(s.lock_fd);
	return rc;
}
