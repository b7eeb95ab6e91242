/* metrics.c - the relay's --metrics body: connections (current, accepted, refused and
 * closed by reason), packets and bytes forwarded, drops by reason, STUN requests, the
 * coord stream's state and instance, and the admitted keys (lib/metrics.c adds RSS and CPU). */
#include <inttypes.h>

#include "relay.h"

static void counter(struct metrics_text *t, const char *name, const char *help, uint64_t v)
{
	metrics_head(t, name, "counter", help);
	metrics_printf(t, "%s %" PRIu64 "\n", name, v);
}

static void gauge(struct metrics_text *t, const char *name, const char *help, uint64_t v)
{
	metrics_head(t, name, "gauge", help);
	metrics_printf(t, "%s %" PRIu64 "\n", name, v);
}

static void by_reason(struct metrics_text *t, const char *name, const char *help,
		      const char *const *names, const uint64_t *v, size_t n)
{
	metrics_head(t, name, "counter", help);
	for (size_t i = 0; i < n; i++)
		metrics_printf(t, "%s{reason=\"%s\"} %" PRIu64 "\n", name, names[i], v[i]);
}

void relay_metrics_fill(struct metrics_text *t, void *arg)
{
	const struct relay_metrics_src *m = arg;
	const struct relay_server *s = m->srv;
	const struct relay_stats *st = &s->stats;
	const struct stun_stats *stun = m->stun ? stun_server_stats(m->stun) : NULL;

	gauge(t, "relay_connections", "Admitted connections now.", s->n_active);
	gauge(t, "relay_connections_handshaking", "Connections waiting for their hello.", s->n_hello);
	counter(t, "relay_connections_accepted_total", "Connections admitted.", st->accepted);
	by_reason(t, "relay_connections_refused_total", "Connections refused before admission.",
		  relay_refuse_names, st->refused, REFUSE_N);
	by_reason(t, "relay_connections_closed_total", "Admitted connections ended.",
		  relay_close_names, st->closed, CLOSE_N);
	counter(t, "relay_tls_handshake_failures_total",
		"TLS handshakes that failed (garbage, a client that never finished).",
		tls_config_handshake_failures(s->tls));
	counter(t, "relay_packets_forwarded_total", "Packets forwarded.", st->packets);
	counter(t, "relay_bytes_forwarded_total", "Packet bytes forwarded.", st->bytes);
	by_reason(t, "relay_drops_total", "Packets not forwarded.", relay_drop_names, st->drops,
		  DROP_N);
	counter(t, "relay_sender_pauses_total", "Senders stopped briefly for a full destination.",
		st->pauses);
	counter(t, "relay_stun_requests_total", "STUN requests (0 without the STUN server).",
		stun ? stun->requests : 0);
	gauge(t, "relay_coord_connected", "1 while coord's relay stream is open.",
	      m->adm ? (uint64_t)m->adm->connected : 0);
	counter(t, "relay_coord_failovers_total",
		"Times the relay stream came up on another coord instance than before.",
		m->adm ? m->adm->ls.urls.moves : 0);
	if (m->adm && m->adm->ls.active && m->adm->ls.urls.n_cand) {
		char url[COORD_URLS_ORDERED_MAX + 1], label[COORD_URLS_ORDERED_MAX + 1];

		coord_urls_current_base(&m->adm->ls.urls, 0, url, sizeof(url));
		metrics_head(t, "relay_coord_instance", "gauge",
			     "1 for the coord instance the relay stream uses or tries.");
		metrics_printf(t, "relay_coord_instance{url=\"%s\"} 1\n",
			       metrics_label(url, label, sizeof(label)));
	}
	gauge(t, "relay_admitted_keys", "Node keys admitted now.",
	      s->admission_ready ? keymap_count(&s->admitted) : 0);
}
