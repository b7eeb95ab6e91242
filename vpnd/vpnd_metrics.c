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
			else if (json_is_boolean(json_object_get(p, per_peer[m].key)))
				v = json_is_true(json_object_get(p, per_peer[m].key));
			else
				v = int_of(p, per_peer[m].key);
			metrics_printf(t, "%s{peer=\"%s\"} %lld\n", per_peer[m].name,
				       metrics_label(str_of(p, "name"), name, sizeof(name)), v);
		}
	}
}

void vpnd_metrics_fill(struct metrics_text *t, void *arg)
{
	static const char *const states[] = { "running", "needs-approval", "stopped", "expired" };
	struct vpnd *d = arg;
	json_t *st = vpnd_status_json(d);
	const json_t *self = json_object_get(st, "self"), *peers = json_object_get(st, "peers");
	size_t online = 0, direct = 0, i;
	json_t *p;

	metrics_head(t, "vpnd_state", "gauge", "1 for the node's current state.");
	for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++)
		metrics_printf(t, "vpnd_state{state=\"%s\"} %d\n", states[k],
			       !strcmp(str_of(self, "state"), states[k]));
	json_array_foreach(peers, i, p) {
		online += json_is_true(json_object_get(p, "online"));
		direct += !strcmp(str_of(p, "path"), "direct");
	}
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
			{ "vpnd_netmap_lines_total", "counter", "Netmap lines applied.",
			  d->stats.netmap_lines },
			{ "vpnd_netmap_bad_lines_total", "counter", "Netmap lines refused and skipped.",
			  d->stats.netmap_bad_lines },
			{ "vpnd_wireguard_errors_total", "counter", "WireGuard configuration failures.",
			  d->stats.wg_errors + d->sync.errors },
			{ "vpnd_coord_stream_lost_total", "counter",
			  "Times the netmap stream ended or could not start.", d->stats.coord_stream_lost },
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
	peer_metrics(t, peers);
	json_decref(st);
}
