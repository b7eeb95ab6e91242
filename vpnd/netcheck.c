/* netcheck.c - STUN rounds towards the relays' STUN servers and what they tell. See
 * netcheck.h. */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "netcheck.h"

void netcheck_init(struct netcheck *nc, netcheck_send_fn send, void *arg)
{
	memset(nc, 0, sizeof(*nc));
	nc->send = send;
	nc->arg = arg;
}

int netcheck_relay_servers(const struct nm_relay *r, struct addr_port *out, int max)
{
	const char *p = r->stun;
	int n = 0;

	while (*p && n < max) {
		size_t len = strcspn(p, ",");

		if (!addr_parse(p, len, 0, &out[n]))
			n++;
		p += len;
		if (*p == ',')
			p++;
	}
	return n;
}

static void send_one(struct netcheck *nc, struct netcheck_server *s)
{
	uint8_t buf[64];
	int len = stun_build_binding_request(s->txid, 1, buf, sizeof(buf));

	if (len > 0 && !nc->send(nc->arg, &s->ap, buf, (size_t)len))
		nc->requests++;
}

int netcheck_start(struct netcheck *nc, const struct nm_relay *relays, int n, uint64_t now)
{
	nc->n = 0;
	for (int i = 0; i < n; i++) {
		struct addr_port aps[4];
		int k = netcheck_relay_servers(&relays[i], aps, 4);

		for (int j = 0; j < k && nc->n < NETCHECK_MAX_SERVERS; j++) {
			struct netcheck_server *s = &nc->s[nc->n++];

			memset(s, 0, sizeof(*s));
			snprintf(s->relay, sizeof(s->relay), "%s", relays[i].name);
			s->ap = aps[j];
			randombytes_buf(s->txid, sizeof(s->txid));
			s->sent_ms = s->resent_ms = now;
			s->sent_us = nc->clock_us ? nc->clock_us() : now * 1000;
		}
	}
	nc->running = nc->n > 0;
	nc->started_ms = now;
	nc->next_ms = now + NETCHECK_INTERVAL_MS;
	for (int i = 0; i < nc->n; i++)
		send_one(nc, &nc->s[i]);
	return nc->n;
}

/* The round's report: reflexive addresses, mapping variance, relay round trips. */
static void finish(struct netcheck *nc, uint64_t now)
{
	struct netcheck_report r;
	uint32_t best = 0;

	memset(&r, 0, sizeof(r));
	for (int i = 0; i < nc->n; i++) {
		const struct netcheck_server *s = &nc->s[i];
		struct addr_port *seen = s->mapped.family == AF_INET ? &r.v4 : &r.v6;
		int *varies = s->mapped.family == AF_INET ? &r.v4_varies : &r.v6_varies;
		int k;

		for (k = 0; k < r.n_relays && strcmp(r.relays[k].name, s->relay); k++)
			;
		if (k == r.n_relays && k < NM_MAX_RELAYS)
			snprintf(r.relays[r.n_relays++].name, NM_NAME_LEN, "%s", s->relay);
		if (!s->answered)
			continue;
		r.udp = 1;
		if (k < NM_MAX_RELAYS && (!r.relays[k].rtt_us || s->rtt_us < r.relays[k].rtt_us))
			r.relays[k].rtt_us = s->rtt_us ? s->rtt_us : 1;
		if (!seen->family)
			*seen = s->mapped;
		else if (!addr_equal(seen, &s->mapped))
			*varies = 1;
	}
	for (int k = 0; k < r.n_relays; k++)
		if (r.relays[k].rtt_us && (!best || r.relays[k].rtt_us < best)) {
			best = r.relays[k].rtt_us;
			snprintf(r.preferred, sizeof(r.preferred), "%s", r.relays[k].name);
		}
	r.done = 1;
	r.finished_ms = now;
	nc->last = r;
	nc->running = 0;
}

int netcheck_input(struct netcheck *nc, const struct addr_port *from, const uint8_t *p,
		   size_t len, uint64_t now)
{
	struct stun_msg m;
	struct addr_port mapped;
	int all = 1;

	if (stun_parse(p, len, &m) || stun_response_mapped(&m, &mapped)) {
		nc->bad++;
		return 0;
	}
	for (int i = 0; i < nc->n; i++) {
		struct netcheck_server *s = &nc->s[i];

		if (!nc->running || s->answered || memcmp(stun_txid(&m), s->txid, STUN_TXID_LEN))
			continue;
		/* The answer must come from where we asked: anyone can send to our port. */
		if (!addr_equal(from, &s->ap)) {
			nc->bad++;
			return 0;
		}
		s->answered = 1;
		s->mapped = mapped;
		/* The first send's time: a resent request's answer may be the first one's. */
		s->rtt_us = (uint32_t)((nc->clock_us ? nc->clock_us() : now * 1000) - s->sent_us);
		nc->responses++;
		for (int j = 0; j < nc->n; j++)
			all &= nc->s[j].answered;
		if (all) {
			finish(nc, now);
			return 1;
		}
		return 0;
	}
	nc->bad++;
	return 0;
}

int netcheck_tick(struct netcheck *nc, uint64_t now)
{
	if (!nc->running)
		return 0;
	if (now - nc->started_ms >= NETCHECK_TIMEOUT_MS) {
		finish(nc, now);
		return 1;
	}
	for (int i = 0; i < nc->n; i++) {
		struct netcheck_server *s = &nc->s[i];

		if (!s->answered && now - s->resent_ms >= NETCHECK_RESEND_MS) {
			s->resent_ms = now;
			send_one(nc, s);
		}
	}
	return 0;
}
