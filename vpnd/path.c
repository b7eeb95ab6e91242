/* path.c - one peer's path state machine (DESIGN.md flow 4; the rules are in path.h).
 * Pure: no I/O, no clock, no randomness. Work that path_tick could not hand out for lack
 * of room stays marked (a candidate's probe_due, the peer's cmm_due, a heartbeat time
 * not moved on) and goes out at the next tick, so nothing is lost. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "path.h"

int path_is_lan(const struct addr_port *ap)
{
	if (ap->family == AF_INET) {
		const uint8_t *b = (const uint8_t *)&ap->v4.s_addr;

		return b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
		       (b[0] == 192 && b[1] == 168);
	}
	if (ap->family == AF_INET6) {
		const uint8_t *b = ap->v6.s6_addr;

		return (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80);
	}
	return 0;
}

/* Proven recently enough to carry traffic. */
static int cand_live(const struct path_cand *c, uint64_t now)
{
	return c->last_pong_ms && now - c->last_pong_ms <= PATH_TRUST_MS;
}

static uint64_t cand_heard_ms(const struct path_cand *c)
{
	return c->last_pong_ms > c->added_ms ? c->last_pong_ms : c->added_ms;
}

/* Plain order among challengers: LAN first, then the lower round trip. */
static int cand_ranks_above(const struct path_cand *a, const struct path_cand *b)
{
	if (a->lan != b->lan)
		return a->lan > b->lan;
	return a->rtt_us < b->rtt_us;
}

/* Hysteresis: within a class the current path keeps its place unless beaten clearly, so
 * two paths of similar latency do not make WireGuard's endpoint flap. */
static int cand_beats_current(const struct path_cand *a, const struct path_cand *cur)
{
	if (a->lan != cur->lan)
		return a->lan > cur->lan;
	return (uint64_t)a->rtt_us * 100 < (uint64_t)cur->rtt_us * PATH_SWITCH_PCT &&
	       (uint64_t)a->rtt_us + PATH_SWITCH_MIN_US <= cur->rtt_us;
}

/* The candidate that should be chosen now, -1 for the relay. */
static int path_choose(const struct path_peer *pp, uint64_t now)
{
	int cur = pp->best >= 0 && cand_live(&pp->cands[pp->best], now) ? pp->best : -1;
	int top = -1;

	for (int i = 0; i < pp->n_cands; i++) {
		if (i == cur || !cand_live(&pp->cands[i], now))
			continue;
		if (top < 0 || cand_ranks_above(&pp->cands[i], &pp->cands[top]))
			top = i;
	}
	if (cur < 0 || (top >= 0 && cand_beats_current(&pp->cands[top], &pp->cands[cur])))
		return top;
	return cur;
}

/* 1 when the choice changed. */
static int path_set_best(struct path_peer *pp, int best, uint64_t now)
{
	if (best == pp->best)
		return 0;
	pp->best = best;
	pp->best_since_ms = now;
	pp->changes++;
	if (best >= 0)
		pp->next_heartbeat_ms = now + PATH_HEARTBEAT_MS;
	else if (pp->next_probe_ms > now)
		pp->next_probe_ms = now;  /* back on the relay: look for a way out at once */
	return 1;
}

static int cand_find(const struct path_peer *pp, const struct addr_port *ap)
{
	for (int i = 0; i < pp->n_cands; i++)
		if (addr_equal(&pp->cands[i].ap, ap))
			return i;
	return -1;
}

/* Keeps the order, and best and the outstanding pings pointing at the same candidates.
 * Callers never remove the chosen one. */
static void cand_remove(struct path_peer *pp, int i)
{
	memmove(&pp->cands[i], &pp->cands[i + 1],
		(size_t)(pp->n_cands - i - 1) * sizeof(pp->cands[0]));
	pp->n_cands--;
	if (pp->best > i)
		pp->best--;
	for (int k = 0; k < PATH_MAX_OUTSTANDING; k++) {
		if (pp->pings[k].cand == i)
			pp->pings[k].cand = -1;
		else if (pp->pings[k].cand > i)
			pp->pings[k].cand--;
	}
}

/* A free slot, or the learned-only candidate heard from longest ago that is neither
 * chosen nor answering goes. 0 or -ENOSPC. */
static int cand_make_room(struct path_peer *pp, uint64_t now)
{
	int victim = -1;

	if (pp->n_cands < PATH_MAX_CANDS)
		return 0;
	for (int i = 0; i < pp->n_cands; i++) {
		const struct path_cand *c = &pp->cands[i];

		if (c->src != PATH_SRC_LEARNED || i == pp->best || cand_live(c, now))
			continue;
		if (victim < 0 || cand_heard_ms(c) < cand_heard_ms(&pp->cands[victim]))
			victim = i;
	}
	if (victim < 0)
		return -ENOSPC;
	cand_remove(pp, victim);
	return 0;
}

/* Index of the new candidate (probed at the next tick), or -ENOSPC. */
static int cand_add(struct path_peer *pp, const struct addr_port *ap, unsigned src,
		    uint64_t now)
{
	struct path_cand *c;
	int rc = cand_make_room(pp, now);

	if (rc < 0)
		return rc;
	c = &pp->cands[pp->n_cands];
	memset(c, 0, sizeof(*c));
	c->ap = *ap;
	c->src = src;
	c->lan = path_is_lan(ap);
	c->added_ms = now;
	c->probe_due = 1;
	return pp->n_cands++;
}

static int ap_valid(const struct addr_port *ap)
{
	return ap->family == AF_INET || ap->family == AF_INET6;
}

void path_init(struct path_peer *pp, uint64_t now)
{
	memset(pp, 0, sizeof(*pp));
	pp->best = -1;
	pp->best_since_ms = now;
	for (int k = 0; k < PATH_MAX_OUTSTANDING; k++)
		pp->pings[k].cand = -1;
	pp->next_probe_ms = now;
	pp->cmm_due = 1;
	pp->last_cmm_ms = now;
}

void path_set_endpoints(struct path_peer *pp, const struct addr_port *eps, int n, uint64_t now)
{
	/* backwards, so a removal only shifts candidates already looked at */
	for (int i = pp->n_cands - 1; i >= 0; i--) {
		struct path_cand *c = &pp->cands[i];
		int listed = 0;

		for (int k = 0; k < n && !listed; k++)
			listed = addr_equal(&eps[k], &c->ap);
		if (!(c->src & PATH_SRC_NETMAP) || listed)
			continue;
		c->src &= ~(unsigned)PATH_SRC_NETMAP;
		if (i == pp->best)
			c->src = PATH_SRC_LEARNED;  /* stays while it answers */
		else if (!c->src)
			cand_remove(pp, i);
	}
	for (int k = 0; k < n; k++) {
		int i;

		if (!ap_valid(&eps[k]))
			continue;
		i = cand_find(pp, &eps[k]);
		if (i >= 0)
			pp->cands[i].src |= PATH_SRC_NETMAP;
		else
			(void)cand_add(pp, &eps[k], PATH_SRC_NETMAP, now);  /* full: left out */
	}
}

int path_add_learned(struct path_peer *pp, const struct addr_port *ap, uint64_t now)
{
	struct path_cand *c;
	int i;

	if (!ap_valid(ap))
		return -EINVAL;
	i = cand_find(pp, ap);
	if (i < 0) {
		i = cand_add(pp, ap, PATH_SRC_LEARNED, now);
		return i < 0 ? i : 0;
	}
	c = &pp->cands[i];
	c->src |= PATH_SRC_LEARNED;
	c->added_ms = now;
	if (!c->last_ping_ms || now - c->last_ping_ms >= PATH_HEARTBEAT_MS)
		c->probe_due = 1;
	return 0;
}

void path_ping_sent(struct path_peer *pp, int cand, const uint8_t txid[DISCO_TXID_LEN],
		    uint64_t now)
{
	int slot = 0;

	if (cand < 0 || cand >= pp->n_cands)
		return;
	/* a free slot, else the oldest ping gives way */
	for (int k = 0; k < PATH_MAX_OUTSTANDING; k++) {
		if (pp->pings[k].cand < 0) {
			slot = k;
			break;
		}
		if (pp->pings[k].sent_ms < pp->pings[slot].sent_ms)
			slot = k;
	}
	memcpy(pp->pings[slot].txid, txid, DISCO_TXID_LEN);
	pp->pings[slot].cand = cand;
	pp->pings[slot].sent_ms = now;
	pp->cands[cand].last_ping_ms = now;
}

int path_pong(struct path_peer *pp, const uint8_t txid[DISCO_TXID_LEN],
	      const struct addr_port *from, uint64_t now)
{
	for (int k = 0; k < PATH_MAX_OUTSTANDING; k++) {
		struct path_ping *p = &pp->pings[k];
		struct path_cand *c;
		uint64_t rtt;

		if (p->cand < 0 || memcmp(p->txid, txid, DISCO_TXID_LEN))
			continue;
		c = &pp->cands[p->cand];
		/* a pong from elsewhere proves nothing about the address we pinged: the
		 * ping stays outstanding for the real pong */
		if (now - p->sent_ms > PATH_PING_TIMEOUT_MS || !addr_equal(from, &c->ap))
			return -ENOENT;
		p->cand = -1;
		rtt = (now - p->sent_ms) * 1000;
		if (!rtt)
			rtt = 1;
		c->rtt_us = cand_live(c, now) ? (uint32_t)((c->rtt_us * UINT64_C(7) + rtt) / 8)
					      : (uint32_t)rtt;
		c->last_rtt_us = (uint32_t)rtt;
		c->last_pong_ms = now;
		return path_set_best(pp, path_choose(pp, now), now);
	}
	return -ENOENT;
}

static void path_expire(struct path_peer *pp, uint64_t now)
{
	for (int k = 0; k < PATH_MAX_OUTSTANDING; k++)
		if (pp->pings[k].cand >= 0 && now - pp->pings[k].sent_ms > PATH_PING_TIMEOUT_MS)
			pp->pings[k].cand = -1;
	for (int i = pp->n_cands - 1; i >= 0; i--) {
		const struct path_cand *c = &pp->cands[i];

		if (c->src == PATH_SRC_LEARNED && i != pp->best &&
		    now - cand_heard_ms(c) > PATH_LEARNED_MS)
			cand_remove(pp, i);
	}
}

/* A probe round: every candidate, and while relayed a call-me-maybe so the peer punches
 * towards us at the same time. Only marks: path_tick hands the work out. */
static void path_start_round(struct path_peer *pp, uint64_t now)
{
	for (int i = 0; i < pp->n_cands; i++)
		pp->cands[i].probe_due = 1;
	pp->next_probe_ms = now + (pp->best < 0 ? PATH_PROBE_MS : PATH_PROBE_DIRECT_MS);
	if (pp->best < 0 && now - pp->last_cmm_ms >= PATH_PROBE_MS) {
		pp->cmm_due = 1;
		pp->last_cmm_ms = now;
	}
}

static void act_ping(struct path_peer *pp, struct path_action *a, int cand, uint64_t now)
{
	a->kind = PATH_ACT_PING;
	a->cand = cand;
	pp->cands[cand].probe_due = 0;
	if (cand == pp->best)  /* a probe of the chosen path is its heartbeat too */
		pp->next_heartbeat_ms = now + PATH_HEARTBEAT_MS;
}

int path_tick(struct path_peer *pp, uint64_t now, struct path_action *acts, int max,
	      int *changed)
{
	int n = 0;

	if (changed)
		*changed = 0;
	path_expire(pp, now);
	if (pp->best >= 0 && !cand_live(&pp->cands[pp->best], now) &&
	    path_set_best(pp, path_choose(pp, now), now) && changed)
		*changed = 1;
	if (now >= pp->next_probe_ms)
		path_start_round(pp, now);
	if (pp->best >= 0 && now >= pp->next_heartbeat_ms && n < max)
		act_ping(pp, &acts[n++], pp->best, now);
	for (int i = 0; i < pp->n_cands && n < max; i++)
		if (pp->cands[i].probe_due)
			act_ping(pp, &acts[n++], i, now);
	if (pp->cmm_due && n < max) {
		acts[n].kind = PATH_ACT_CALL_ME_MAYBE;
		acts[n++].cand = -1;
		pp->cmm_due = 0;
	}
	return n;
}

void path_network_changed(struct path_peer *pp, uint64_t now)
{
	pp->next_probe_ms = now;
	pp->cmm_due = 1;
	pp->last_cmm_ms = now;
}

uint64_t path_next_ms(const struct path_peer *pp)
{
	uint64_t next = pp->next_probe_ms;

	if (pp->cmm_due)
		return 0;
	for (int i = 0; i < pp->n_cands; i++)
		if (pp->cands[i].probe_due)
			return 0;
	if (pp->best >= 0) {
		uint64_t trust = pp->cands[pp->best].last_pong_ms + PATH_TRUST_MS + 1;

		if (pp->next_heartbeat_ms < next)
			next = pp->next_heartbeat_ms;
		if (trust < next)
			next = trust;
	}
	return next;
}

const struct addr_port *path_chosen(const struct path_peer *pp)
{
	return pp->best >= 0 ? &pp->cands[pp->best].ap : NULL;
}
