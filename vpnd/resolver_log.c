/* resolver_log.c - see resolver_log.h: the query log's ring and its JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "resolver_log.h"

static const char *const outcome_names[RL_OUTCOMES] = {
	[RL_LOCAL] = "local", [RL_BLOCKED] = "blocked", [RL_CACHED] = "cached",
	[RL_FORWARDED] = "forwarded", [RL_STALE] = "stale", [RL_SERVFAIL] = "servfail",
	[RL_REFUSED] = "refused",
};

const char *rl_outcome_name(unsigned o)
{
	return o < RL_OUTCOMES ? outcome_names[o] : "?";
}

void rl_init(struct resolver_log *l)
{
	memset(l, 0, sizeof(*l));
}

void rl_free(struct resolver_log *l)
{
	free(l->ring);
	rl_init(l);
}

int rl_resize(struct resolver_log *l, size_t n)
{
	uint64_t seq = l->seq;

	if (n > RL_MAX)
		return -EINVAL;
	rl_free(l);
	l->seq = seq;   /* followers keep their place */
	if (!n)
		return 0;
	l->ring = calloc(n, sizeof(*l->ring));
	if (!l->ring)
		return -ENOMEM;
	l->cap = n;
	return 0;
}

void rl_add(struct resolver_log *l, const struct addr_port *client, const struct dns_query *q,
	    enum rl_outcome o, const struct addr_port *upstream, uint64_t latency_ms)
{
	struct rl_entry *e;
	struct timespec ts;
	size_t len;

	if (!l->cap)
		return;
	e = &l->ring[l->next];
	l->next = (l->next + 1) % l->cap;
	if (l->n < l->cap)
		l->n++;
	clock_gettime(CLOCK_REALTIME, &ts);
	e->seq = ++l->seq;
	e->time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	memset(&e->client, 0, sizeof(e->client));
	memset(&e->upstream, 0, sizeof(e->upstream));
	if (client)
		e->client = *client;
	if (upstream)
		e->upstream = *upstream;
	e->latency_ms = latency_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)latency_ms;
	e->qtype = q->qtype;
	e->outcome = (uint8_t)o;
	len = q->qname.text_len < RL_NAME_MAX ? q->qname.text_len : RL_NAME_MAX;
	memcpy(e->name, q->qname.text, len);
	e->name[len] = 0;
	e->name_len = (uint8_t)len;
}

const struct rl_entry *rl_get(const struct resolver_log *l, size_t i)
{
	return &l->ring[(l->next + l->cap - l->n + i) % l->cap];
}

static const char *type_name(uint16_t t, char *buf, size_t size)
{
	static const struct { uint16_t t; const char *name; } names[] = {
		{ DNS_TYPE_A, "A" }, { DNS_TYPE_NS, "NS" }, { DNS_TYPE_CNAME, "CNAME" },
		{ DNS_TYPE_SOA, "SOA" }, { DNS_TYPE_PTR, "PTR" }, { DNS_TYPE_MX, "MX" },
		{ DNS_TYPE_TXT, "TXT" }, { DNS_TYPE_AAAA, "AAAA" }, { DNS_TYPE_SRV, "SRV" },
		{ DNS_TYPE_HTTPS, "HTTPS" }, { DNS_TYPE_ANY, "ANY" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].t == t)
			return names[i].name;
	snprintf(buf, size, "TYPE%u", t);
	return buf;
}

static json_t *entry_json(const struct rl_entry *e)
{
	char when[40], client[ADDR_TEXT_LEN] = "", up[ADDR_TEXT_LEN] = "", tbuf[16];
	time_t secs = (time_t)(e->time_ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03dZ", (int)(e->time_ms % 1000));
	if (e->client.family)
		addr_format(&e->client, client, sizeof(client));
	if (e->upstream.family)
		addr_format(&e->upstream, up, sizeof(up));
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "seq", (json_int_t)e->seq,
			 "time", when, "client", e->client.family ? client : "tcp", "name", e->name,
			 "type", type_name(e->qtype, tbuf, sizeof(tbuf)), "outcome",
			 rl_outcome_name(e->outcome), "upstream", up, "latency_ms",
			 (json_int_t)e->latency_ms);
}

json_t *resolver_log_json(const struct resolver_log *l, size_t last, uint64_t after)
{
	json_t *a = json_array();
	size_t from = last && last < l->n ? l->n - last : 0;

	for (size_t i = from; a && i < l->n; i++) {
		const struct rl_entry *e = rl_get(l, i);

		if (e->seq > after)
			json_array_append_new(a, entry_json(e));
	}
	return json_pack("{s:b, s:I, s:I, s:o}", "enabled", l->cap > 0, "capacity",
			 (json_int_t)l->cap, "total", (json_int_t)l->seq, "entries",
			 a ? a : json_array());
}
