/* path.h - one peer's path (DESIGN.md flow 4): which of its candidate addresses, if any,
 * WireGuard should send to, or the relay. A pure state machine: time is given in
 * milliseconds of a monotonic clock, nothing is sent from here; path_tick says what to
 * send and the caller (vpnd/traversal.c) sends it and reports back. Unit-tested in
 * tests/unit/test_vpnd_path.c.
 *
 * The rules: the relay first, so the first packet never waits for a probe; a direct
 * candidate is chosen as soon as a pong proves it; LAN candidates (RFC 1918, RFC 6598 is
 * NOT LAN, fc00::/7, fe80::/10) beat the others, then the lowest smoothed round trip, with
 * hysteresis (another path of the same class wins only when its round trip is under
 * PATH_SWITCH_PCT percent of the current one's and at least PATH_SWITCH_MIN_US less); the
 * chosen path is pinged every PATH_HEARTBEAT_MS and dropped (back to the relay) when no
 * pong came for PATH_TRUST_MS; while relayed every candidate is probed every
 * PATH_PROBE_MS and a call-me-maybe asked for, so a path that comes back is taken again;
 * while direct the others are probed every PATH_PROBE_DIRECT_MS (a better one may
 * appear). Falling back to the relay starts a probe round at once.
 *
 * Time: `now` is never 0 (0 stands for "never" in the timestamps below). Round trips
 * have the clock's resolution (ms); a pong within the same ms counts as 1 us. Indices in
 * path_tick's actions stay valid until the next call that changes the candidates
 * (path_set_endpoints, path_add_learned, path_tick). */
#ifndef VPND_PATH_H
#define VPND_PATH_H

#include <stdint.h>

#include "meshvpn/addr.h"
#include "meshvpn/disco.h"

#define PATH_MAX_CANDS 24            /* netmap endpoints (16) and learned ones */
#define PATH_MAX_OUTSTANDING 32      /* pings awaiting a pong, per peer */
#define PATH_HEARTBEAT_MS 1000
#define PATH_TRUST_MS 2500
#define PATH_PROBE_MS 4000
#define PATH_PROBE_DIRECT_MS 30000
#define PATH_PING_TIMEOUT_MS 5000    /* an unanswered ping is forgotten */
#define PATH_LEARNED_MS 60000        /* a learned candidate that never answered is forgotten */
#define PATH_SWITCH_PCT 80
#define PATH_SWITCH_MIN_US 1000

enum path_cand_src {
	PATH_SRC_NETMAP = 1U << 0,   /* the peer published it through coord */
	PATH_SRC_LEARNED = 1U << 1,  /* from its call-me-maybe, or the source of its ping */
};

struct path_cand {
	struct addr_port ap;
	unsigned src;                /* enum path_cand_src */
	int lan;
	uint64_t added_ms;           /* added, or learned again */
	uint64_t last_ping_ms;       /* 0: never pinged */
	uint64_t last_pong_ms;       /* 0: never answered */
	uint32_t rtt_us;             /* smoothed (7/8 old + 1/8 new); the first pong, or the
				      * first after PATH_TRUST_MS of silence, sets it */
	uint32_t last_rtt_us;
	int probe_due;               /* to be pinged at the next tick */
};

struct path_ping {
	uint8_t txid[DISCO_TXID_LEN];
	int cand;                    /* index in cands; -1: free slot */
	uint64_t sent_ms;
};

struct path_peer {
	struct path_cand cands[PATH_MAX_CANDS];
	int n_cands;
	int best;                    /* index of the chosen direct candidate, -1: the relay */
	uint64_t best_since_ms;
	struct path_ping pings[PATH_MAX_OUTSTANDING];
	uint64_t next_probe_ms;      /* every candidate is pinged at this time */
	uint64_t next_heartbeat_ms;
	uint64_t last_cmm_ms;        /* when the last call-me-maybe became due */
	int cmm_due;                 /* a call-me-maybe at the next tick */
	uint64_t changes;            /* times the chosen path changed */
};

enum path_action_kind {
	PATH_ACT_PING,               /* ping cands[cand]: the caller makes a txid, sends, then
				      * calls path_ping_sent */
	PATH_ACT_CALL_ME_MAYBE,      /* send our candidates through the relay */
};

struct path_action {
	enum path_action_kind kind;
	int cand;
};

/* A peer that has just appeared: relay chosen, probes due at now. */
void path_init(struct path_peer *pp, uint64_t now);
/* The candidates the netmap gives for the peer now (replacing the previous netmap ones;
 * learned ones stay, and the chosen candidate stays as a learned one: path_tick drops it
 * when it stops answering). Only the new ones are probed, at the next tick. Beyond
 * PATH_MAX_CANDS (when no learned one can make room) the rest are left out. */
void path_set_endpoints(struct path_peer *pp, const struct addr_port *eps, int n, uint64_t now);
/* A candidate learned from a call-me-maybe or a ping's source. A new one is probed at
 * the next tick, and so is a known one not pinged for PATH_HEARTBEAT_MS (a call-me-maybe
 * means "punch now"; the bound keeps a peer's pings from driving ours). When full, the
 * learned-only candidate heard from longest ago that is neither chosen nor answering
 * goes. A learned-only candidate not heard from (learned again or a pong) for
 * PATH_LEARNED_MS is forgotten. 0, -EINVAL (no address), or -ENOSPC when nothing could
 * make room. */
int path_add_learned(struct path_peer *pp, const struct addr_port *ap, uint64_t now);
/* We sent a ping to cands[cand] with txid. With PATH_MAX_OUTSTANDING pings awaiting a
 * pong, the oldest is forgotten. */
void path_ping_sent(struct path_peer *pp, int cand, const uint8_t txid[DISCO_TXID_LEN],
		    uint64_t now);
/* A pong with txid arrived from `from`. 1 when it changed the chosen path, 0 when not,
 * -ENOENT when no ping we sent in the last PATH_PING_TIMEOUT_MS has this txid (or it came
 * from an address other than the one we pinged: that ping then stays outstanding). */
int path_pong(struct path_peer *pp, const uint8_t txid[DISCO_TXID_LEN],
	      const struct addr_port *from, uint64_t now);
/* Timers: expiries (a chosen path without pongs for PATH_TRUST_MS goes, to the best
 * other answering candidate or the relay: *changed = 1; changed may be NULL), then what
 * is due (heartbeat, probes, call-me-maybe), at most max actions (the rest stays due for
 * the next tick). Count. */
int path_tick(struct path_peer *pp, uint64_t now, struct path_action *acts, int max,
	      int *changed);
/* Our network changed (addresses, links, resume): probe everything and ask for a
 * call-me-maybe at the next tick. */
void path_network_changed(struct path_peer *pp, uint64_t now);
/* When path_tick has something to do next (for the caller's timer): the next probe
 * round, heartbeat or trust deadline of the chosen path; a time <= now (0 when work is
 * waiting: a probe or a call-me-maybe that did not fit) means at once. Expiries of pings
 * and learned candidates do not count: they are done at whatever tick comes. */
uint64_t path_next_ms(const struct path_peer *pp);
/* The chosen direct address, or NULL for the relay. */
const struct addr_port *path_chosen(const struct path_peer *pp);
/* 1 for the LAN class above. */
int path_is_lan(const struct addr_port *ap);

#endif
