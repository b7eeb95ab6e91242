/* resolver_log.h - the resolver's optional query log (`vpnctl dns log`, vpnd --dns-log N):
 * a fixed ring of the last N queries (time, client, name, type, outcome, upstream,
 * latency), off by default. One allocation when it is sized; a query copies into the
 * next slot (the name truncated to 255 bytes) and costs one branch while the log is off. */
#ifndef VPND_RESOLVER_LOG_H
#define VPND_RESOLVER_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "meshvpn/addr.h"
#include "meshvpn/dns_msg.h"

#define RL_MAX 100000                 /* entries at most (about 330 bytes each) */
#define RL_NAME_MAX 255

enum rl_outcome {
	RL_LOCAL = 0, RL_BLOCKED, RL_CACHED, RL_FORWARDED, RL_STALE, RL_SERVFAIL, RL_REFUSED,
	RL_OUTCOMES
};

struct rl_entry {
	uint64_t seq;                     /* 1, 2, ... over the log's life */
	int64_t time_ms;                  /* wall clock */
	struct addr_port client;          /* family 0: over TCP */
	struct addr_port upstream;        /* family 0: none asked */
	uint32_t latency_ms;
	uint16_t qtype;
	uint8_t outcome;
	uint8_t name_len;
	char name[RL_NAME_MAX + 1];
};

struct resolver_log {
	struct rl_entry *ring;
	size_t cap, next, n;
	uint64_t seq;
};

void rl_init(struct resolver_log *l);
void rl_free(struct resolver_log *l);
/* N entries from now on (0: off), the old ones dropped. 0, -EINVAL past RL_MAX, -ENOMEM
 * (the log is then off). */
int rl_resize(struct resolver_log *l, size_t n);
/* Records one query (nothing while off). client / upstream may be NULL. */
void rl_add(struct resolver_log *l, const struct addr_port *client, const struct dns_query *q,
	    enum rl_outcome o, const struct addr_port *upstream, uint64_t latency_ms);
/* The i-th oldest of the entries kept (i < l->n). */
const struct rl_entry *rl_get(const struct resolver_log *l, size_t i);
const char *rl_outcome_name(unsigned o);
/* {"enabled","capacity","total","entries":[{"seq","time","client","name","type","outcome",
 * "upstream","latency_ms"}]}: the last `last` entries (0: all), oldest first, only those
 * with seq > after. */
json_t *resolver_log_json(const struct resolver_log *l, size_t last, uint64_t after);

#endif
