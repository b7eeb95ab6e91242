/* vpnd_metrics.c - what vpnd's --metrics HOST:PORT serves: the status vpnctl shows, as
 * Prometheus gauges and counters (names prefixed vpnd_, peers labelled by name). */
#include <string.h>

#include "meshvpn/metrics.h"
#include "vpnd.h"

static const char *str_of(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static long long int_of(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static void peer_metrics(struct metrics_text *t, const json_t *peers)
{
	static const struct {
		const char *name, *type, *help, *key;
	} per_peer[] = {
		{ "vpnd_peer_online", "gauge", "1 when coord says the peer holds its stream.", "online" },
		{ "vpnd_peer_direct", "gauge", "1 when the path to the peer is direct.", NULL },
		{ "vpnd_peer_relayed", "gauge", "1 when the peer is reached through a relay.", "" },
		{ "vpnd_peer_last_handshake_seconds", "gauge",
		  "Unix time of the last WireGuard handshake with the peer (0: never).", "last_handshake" },
		{ "vpnd_peer_receive_bytes_total", "counter", "Bytes received from the peer.", "rx_bytes" },
		{ "vpnd_peer_transmit_bytes_total", "counter", "Bytes sent to the peer.", "tx_bytes" },
	};
	char name[2 * NM_NAME_LEN];
	size_t i;
	json_t *p;

	for (size_t m = 0; m < sizeof(per_peer) / sizeof(per_peer[0]); m++) {
		metrics_head(t, per_peer[m].name, per_peer[m].type, per_peer[m].help);
		json_array_foreach(peers, i, p) {
			long long v;

			if (!per_peer[m].key)
				v = !strcmp(str_of(p, "path"), "direct");
			else if (!per_peer[m].key[0])
				v = !strcmp(str_of(p, "path"), "relay");
			else if (json_is_boolean(json_object_get(p, per_peer[m].key)))
				v = json_is_true(json_object_get(p, per_peer[m].key));
			else
				v = int_of(p, per_peer[m].key);
			metrics_printf(t, "%s{peer=\"%s\"} %lld\n", per_peer[m].name,
				       metrics_label(str_of(p, "name"), name, sizeof(name)), v);
		}
	}
}

static uint64_t up_errors(const struct rs_upstream *u)
{
	return u->timeouts + u->servfails + u->bad + u->conn_errors;
}

static uint64_t up_verify_failures(const struct rs_upstream *u)
{
	return u->verify_failures;
}

static uint64_t up_answers(const struct rs_upstream *u)
{
	return u->answers;
}

static uint64_t up_answer_ms(const struct rs_upstream *u)
{
	return u->latency_sum_ms;
}

/* One counter per upstream, labelled with its name (the tls:// text for DNS over TLS);
 * dot_only: DNS-over-TLS upstreams alone. */
static void upstream_counter(struct metrics_text *t, const struct resolver *r, const char *name,
			     const char *help, uint64_t (*value)(const struct rs_upstream *),
			     int dot_only)
{
	char a[DNSPOL_SERVER_TEXT];

	metrics_head(t, name, "counter", help);
	for (size_t i = 0; i < r->n_health; i++) {
		if (dot_only && !r->health[i].dot)
			continue;
		resolver_upstream_label(r, &r->health[i], a, sizeof(a));
		metrics_printf(t, "%s{upstream=\"%s\"} %llu\n", name, a,
			       (unsigned long long)value(&r->health[i]));
	}
}

/* The resolver's counters: queries by type, answers by source, upstream errors and the
 * latency histogram of upstream answers. */
static void resolver_metrics(struct metrics_text *t, const struct resolver *r)
{
	static const char *const le[RS_HIST_BUCKETS + 1] = { "1", "5", "10", "25", "50", "100",
							     "250", "500", "1000", "+Inf" };
	const struct resolver_stats *s = &r->stats;
	const struct {
		const char *name, *help;
		uint64_t v;
	} one[] = {
		{ "vpnd_dns_local_total", "Queries answered from the netmap (node names, records).",
		  s->local },
		{ "vpnd_dns_blocked_total", "Queries answered as blocked.", s->blocked },
		{ "vpnd_dns_cached_total", "Queries answered from the cache.", s->cached },
		{ "vpnd_dns_forwarded_total", "Queries sent to an upstream (each try).", s->forwarded },
		{ "vpnd_dns_stale_total", "Stale answers served while no upstream answered.", s->stale },
		{ "vpnd_dns_servfail_total", "SERVFAILs given: no upstream could answer.", s->servfail },
		{ "vpnd_dns_malformed_total", "Malformed queries (answered FORMERR or dropped).",
		  s->formerr + s->dropped },
		{ "vpnd_dns_bad_answers_total",
		  "Upstream messages ignored: junk, wrong id or question, unasked source.",
		  s->bad_answers },
	};
	uint64_t cum = 0;

	metrics_head(t, "vpnd_dns_queries_total", "counter", "DNS queries by type.");
	metrics_printf(t, "vpnd_dns_queries_total{type=\"A\"} %llu\n", (unsigned long long)s->q_a);
	metrics_printf(t, "vpnd_dns_queries_total{type=\"AAAA\"} %llu\n",
		       (unsigned long long)s->q_aaaa);
	metrics_printf(t, "vpnd_dns_queries_total{type=\"PTR\"} %llu\n", (unsigned long long)s->q_ptr);
	metrics_printf(t, "vpnd_dns_queries_total{type=\"other\"} %llu\n",
		       (unsigned long long)s->q_other);
	for (size_t k = 0; k < sizeof(one) / sizeof(one[0]); k++) {
		metrics_head(t, one[k].name, "counter", one[k].help);
		metrics_printf(t, "%s %llu\n", one[k].name, (unsigned long long)one[k].v);
	}
	upstream_counter(t, r, "vpnd_dns_upstream_errors_total",
			 "Upstream failures (timeouts, SERVFAIL/REFUSED, ignored answers, "
			 "DNS-over-TLS connections that failed) by upstream.", up_errors, 0);
	upstream_counter(t, r, "vpnd_dns_upstream_tls_verify_failures_total",
			 "DNS-over-TLS upstreams whose certificate did not verify for their name.",
			 up_verify_failures, 1);
	upstream_counter(t, r, "vpnd_dns_upstream_answers_total", "Answers by upstream.",
			 up_answers, 0);
	upstream_counter(t, r, "vpnd_dns_upstream_answer_ms_total",
			 "Milliseconds to those answers, summed, by upstream (per-upstream latency).",
			 up_answer_ms, 0);
	metrics_head(t, "vpnd_dns_upstream_latency_ms", "histogram",
		     "Time to an upstream's answer, in milliseconds.");
	for (int b = 0; b <= RS_HIST_BUCKETS; b++) {
		cum += s->hist[b];
		metrics_printf(t, "vpnd_dns_upstream_latency_ms_bucket{le=\"%s\"} %llu\n", le[b],
			       (unsigned long long)cum);
	}
	metrics_printf(t, "vpnd_dns_upstream_latency_ms_sum %llu\n",
		       (unsigned long long)s->latency_sum_ms);
	metrics_printf(t, "vpnd_dns_upstream_latency_ms_count %llu\n",
		       (unsigned long long)s->latency_n);
}

void vpnd_metrics_fill(struct metrics_text *t, void *arg)
{
	static const char *const states[] = { "running", "needs-approval", "stopped", "expired" };
	struct vpnd *d = arg;
	json_t *st = vpnd_status_json(d);
	const json_t *self = json_object_get(st, "self"), *peers = json_object_get(st, "peers");
	size_t online = 0, direct = 0, relayed = 0, i;
	const struct traversal_stats *ts = &d->tv.stats;
	const struct relayc_stats *rs = &d->tv.relayc.stats;
	struct rawsock_stats raw = { 0 };
	json_t *p;

	metrics_head(t, "vpnd_state", "gauge", "1 for the node's current state.");
	for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++)
		metrics_printf(t, "vpnd_state{state=\"%s\"} %d\n", states[k],
			       !strcmp(str_of(self, "state"), states[k]));
	json_array_foreach(peers, i, p) {
		online += json_is_true(json_object_get(p, "online"));
		direct += !strcmp(str_of(p, "path"), "direct");
		relayed += !strcmp(str_of(p, "path"), "relay");
	}
	if (d->tv.rs)
		rawsock_get_stats(d->tv.rs, &raw);
	{
		const struct {
			const char *name, *type, *help;
			unsigned long long v;
		} one[] = {
			{ "vpnd_coord_connected", "gauge", "1 while the netmap stream to coord is up.",
			  json_is_true(json_object_get(self, "coord_connected")) },
			{ "vpnd_peers", "gauge", "Peers in the netmap.", json_array_size(peers) },
			{ "vpnd_peers_online", "gauge", "Peers coord reports online.", online },
			{ "vpnd_peers_direct", "gauge", "Peers reached on a direct path.", direct },
			{ "vpnd_peers_relayed", "gauge", "Peers reached through a relay.", relayed },
			{ "vpnd_disco_received_total", "counter", "Disco packets received (both ways in).",
			  ts->disco_rx },
			{ "vpnd_disco_sent_total", "counter", "Disco packets sent.", ts->disco_tx },
			{ "vpnd_disco_unknown_key_total", "counter",
			  "Disco packets dropped: the sender's key is no peer's.", ts->disco_unknown_key },
			{ "vpnd_disco_bad_box_total", "counter",
			  "Disco packets dropped: the box did not open.", ts->disco_bad_box },
			{ "vpnd_disco_replayed_total", "counter", "Disco packets dropped as replays.",
			  ts->disco_replayed },
			{ "vpnd_disco_malformed_total", "counter", "Disco packets dropped as malformed.",
			  ts->disco_malformed },
			{ "vpnd_disco_wrong_node_total", "counter",
			  "Disco packets dropped: they name another node than their key's.",
			  ts->disco_wrong_node },
			{ "vpnd_disco_pings_received_total", "counter", "Disco pings answered.", ts->pings_rx },
			{ "vpnd_disco_pongs_received_total", "counter", "Disco pongs received.", ts->pongs_rx },
			{ "vpnd_disco_call_me_maybe_received_total", "counter", "Call-me-maybes received.",
			  ts->cmm_rx },
			{ "vpnd_disco_pings_sent_total", "counter", "Disco pings sent.", ts->pings_tx },
			{ "vpnd_path_changes_total", "counter", "Times a peer's path changed.",
			  ts->path_changes },
			{ "vpnd_home_relay_moves_total", "counter", "Times the home relay was chosen anew.",
			  ts->home_moves },
			{ "vpnd_stun_requests_total", "counter", "STUN requests sent.", d->tv.nc.requests },
			{ "vpnd_stun_responses_total", "counter", "STUN answers taken.", d->tv.nc.responses },
			{ "vpnd_stun_bad_total", "counter",
			  "STUN messages on WireGuard's port that were ignored (malformed, unasked, "
			  "from elsewhere).", d->tv.nc.bad },
			{ "vpnd_rawsock_bad_total", "counter",
			  "Datagrams past the raw socket's filter that its parser refused.", raw.bad },
			{ "vpnd_relay_packets_sent_total", "counter", "Data packets sent through relays.",
			  rs->to_relay },
			{ "vpnd_relay_packets_received_total", "counter",
			  "Data packets received through relays.", rs->from_relay },
			{ "vpnd_relay_packets_dropped_total", "counter",
			  "Data packets dropped on the relay path (no connection, refused, unknown sender).",
			  rs->dropped_no_relay + rs->dropped_send + rs->dropped_unknown + rs->dropped_foreign },
			{ "vpnd_netmap_lines_total", "counter", "Netmap lines applied.",
			  d->stats.netmap_lines },
			{ "vpnd_netmap_resumes_total", "counter",
			  "Netmap streams that continued the map from its version.", d->stats.netmap_resumes },
			{ "vpnd_netmap_bad_lines_total", "counter", "Netmap lines refused and skipped.",
			  d->stats.netmap_bad_lines },
			{ "vpnd_wireguard_errors_total", "counter", "WireGuard configuration failures.",
			  d->stats.wg_errors + d->sync.errors },
			{ "vpnd_coord_stream_lost_total", "counter",
			  "Times the netmap stream ended or could not start.", d->stats.coord_stream_lost },
			{ "vpnd_coord_failovers_total", "counter",
			  "Times the netmap stream came up on another coord instance than before.",
			  d->cc.ls.urls.moves },
			{ "vpnd_endpoint_posts_total", "counter", "Endpoint sets coord accepted.",
			  d->stats.endpoint_posts },
			{ "vpnd_link_events_total", "counter",
			  "Link and address changes seen on rtnetlink (vpnd's own interface aside).",
			  d->linkmon.events },
			{ "vpnd_link_overruns_total", "counter",
			  "rtnetlink overruns or unreadable datagrams (each answered by a fresh look).",
			  d->linkmon.overruns },
		};

		for (size_t k = 0; k < sizeof(one) / sizeof(one[0]); k++) {
			metrics_head(t, one[k].name, one[k].type, one[k].help);
			metrics_printf(t, "%s %llu\n", one[k].name, one[k].v);
		}
	}
	if (*str_of(self, "coord_current")) {
		char url[COORD_URLS_ORDERED_MAX + 1];

		metrics_head(t, "vpnd_coord_instance", "gauge",
			     "1 for the coord instance the netmap stream uses or tries.");
		metrics_printf(t, "vpnd_coord_instance{url=\"%s\"} 1\n",
			       metrics_label(str_of(self, "coord_current"), url, sizeof(url)));
	}
	peer_metrics(t, peers);
	resolver_metrics(t, &d->rs);
	json_decref(st);
}
