/* test_vpnd_path.c - vpnd/path.c with a fake clock and a fake world: hosts that answer
 * pings after a round trip (or not), a log of every ping and call-me-maybe, and an event
 * loop that runs the state machine as the daemon will (tick when path_next_ms says, pongs
 * delivered when they arrive). Checks the rules in path.h: relay first, direct at the
 * first pong, LAN first, hysteresis, heartbeat, fallback and upgrade, learned candidates,
 * the action limit, netmap changes, index fix-ups. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vpnd/path.h"

#define T0 100000           /* the fake clock's start: 0 means "never" in path.h */
#define MAX_LOG 4096
#define MAX_HOSTS 8
#define MAX_PEND 256

struct sent_ping {
	uint8_t txid[DISCO_TXID_LEN];
	struct addr_port to;
	uint64_t at;
};

struct host {
	struct addr_port ap;
	int rtt_ms;
	int up;
};

struct pend {
	int ping;                 /* index in the log */
	uint64_t at;
};

struct sim {
	struct path_peer pp;
	uint64_t now;
	int max;                  /* actions per tick */
	struct sent_ping log[MAX_LOG];
	int n_log;
	int n_cmm;
	uint64_t last_cmm_at;
	uint64_t last_change_at;
	int n_changes;
	struct host hosts[MAX_HOSTS];
	int n_hosts;
	struct pend pend[MAX_PEND];
	int n_pend;
};

static struct addr_port ap(const char *s)
{
	struct addr_port a;

	assert_int_equal(addr_parse(s, strlen(s), 0, &a), 0);
	return a;
}

static void host_add(struct sim *s, const char *addr, int rtt_ms)
{
	assert_true(s->n_hosts < MAX_HOSTS);
	s->hosts[s->n_hosts++] = (struct host){ .ap = ap(addr), .rtt_ms = rtt_ms, .up = 1 };
}

static struct host *host_find(struct sim *s, const struct addr_port *a)
{
	for (int i = 0; i < s->n_hosts; i++)
		if (addr_equal(&s->hosts[i].ap, a))
			return &s->hosts[i];
	return NULL;
}

static int setup(void **state)
{
	struct sim *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->now = T0;
	s->max = 16;
	path_init(&s->pp, s->now);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

/* Sends a ping as vpnd would: a fresh txid, the log, path_ping_sent, and a pong queued
 * when the host answers. */
static void sim_ping(struct sim *s, int cand)
{
	struct sent_ping *p = &s->log[s->n_log];
	struct host *h = host_find(s, &s->pp.cands[cand].ap);

	assert_true(s->n_log < MAX_LOG);
	memset(p, 0, sizeof(*p));
	memcpy(p->txid, &s->n_log, sizeof(s->n_log));
	p->txid[DISCO_TXID_LEN - 1] = 0xa5;
	p->to = s->pp.cands[cand].ap;
	p->at = s->now;
	path_ping_sent(&s->pp, cand, p->txid, s->now);
	if (h && h->up) {
		assert_true(s->n_pend < MAX_PEND);
		s->pend[s->n_pend++] = (struct pend){ .ping = s->n_log, .at = s->now + h->rtt_ms };
	}
	s->n_log++;
}

static void sim_changed(struct sim *s)
{
	s->n_changes++;
	s->last_change_at = s->now;
}

static int sim_tick(struct sim *s)
{
	struct path_action acts[32];
	int changed = -1;
	int n = path_tick(&s->pp, s->now, acts, s->max, &changed);

	assert_true(n >= 0 && n <= s->max);
	assert_true(changed == 0 || changed == 1);
	if (changed)
		sim_changed(s);
	for (int i = 0; i < n; i++) {
		if (acts[i].kind == PATH_ACT_PING) {
			assert_true(acts[i].cand >= 0 && acts[i].cand < s->pp.n_cands);
			sim_ping(s, acts[i].cand);
		} else {
			assert_int_equal(acts[i].kind, PATH_ACT_CALL_ME_MAYBE);
			s->n_cmm++;
			s->last_cmm_at = s->now;
		}
	}
	return n;
}

/* The pong for log[ping], from its address (or `from`), arriving now. */
static int sim_pong_from(struct sim *s, int ping, const struct addr_port *from)
{
	int rc = path_pong(&s->pp, s->log[ping].txid, from ? from : &s->log[ping].to, s->now);

	if (rc == 1)
		sim_changed(s);
	return rc;
}

static int last_ping_to(const struct sim *s, const char *addr)
{
	struct addr_port a = ap(addr);

	for (int i = s->n_log - 1; i >= 0; i--)
		if (addr_equal(&s->log[i].to, &a))
			return i;
	return -1;
}

static int pings_to_since(const struct sim *s, const char *addr, uint64_t since)
{
	struct addr_port a = ap(addr);
	int n = 0;

	for (int i = 0; i < s->n_log; i++)
		n += s->log[i].at >= since && addr_equal(&s->log[i].to, &a);
	return n;
}

/* Runs the world until `until`: pongs when they arrive, ticks when path_next_ms says. */
static void sim_run(struct sim *s, uint64_t until)
{
	for (int guard = 0; guard < 100000; guard++) {
		uint64_t next = path_next_ms(&s->pp);
		int first = -1;

		if (next < s->now)
			next = s->now;
		for (int i = 0; i < s->n_pend; i++)
			if (first < 0 || s->pend[i].at < s->pend[first].at)
				first = i;
		if (first >= 0 && s->pend[first].at < next)
			next = s->pend[first].at;
		if (next > until) {
			s->now = until;
			return;
		}
		s->now = next;
		if (first >= 0 && s->pend[first].at == s->now) {
			int ping = s->pend[first].ping;

			s->pend[first] = s->pend[--s->n_pend];
			(void)sim_pong_from(s, ping, NULL);
			continue;
		}
		sim_tick(s);
	}
	fail_msg("the state machine never went idle");
}

static void chosen_is(const struct sim *s, const char *addr)
{
	const struct addr_port *c = path_chosen(&s->pp);

	if (!addr) {
		assert_null(c);
		assert_int_equal(s->pp.best, -1);
		return;
	}
	assert_non_null(c);
	struct addr_port a = ap(addr);

	assert_true(addr_equal(c, &a));
}

static void set_eps(struct sim *s, const char *const *addrs, int n)
{
	struct addr_port eps[PATH_MAX_CANDS + 4];

	for (int i = 0; i < n; i++)
		eps[i] = ap(addrs[i]);
	path_set_endpoints(&s->pp, eps, n, s->now);
}

static void learn(struct sim *s, const char *addr)
{
	struct addr_port a = ap(addr);

	assert_int_equal(path_add_learned(&s->pp, &a, s->now), 0);
}

static const char *const three[] = { "198.51.100.1:41641", "192.0.2.7:41641", "[2001:db8::7]:41641" };

static void test_vpnd_path_relay_first(void **state)
{
	struct sim *s = *state;

	set_eps(s, three, 3);
	chosen_is(s, NULL);
	assert_true(path_next_ms(&s->pp) <= s->now);
	assert_int_equal(sim_tick(s), 4);           /* every candidate, and a call-me-maybe */
	assert_int_equal(s->n_log, 3);
	assert_int_equal(s->n_cmm, 1);
	assert_int_equal(path_next_ms(&s->pp), T0 + PATH_PROBE_MS);
	assert_int_equal(sim_tick(s), 0);
	assert_int_equal(path_is_lan(&s->pp.cands[0].ap), 0);
}

static void test_vpnd_path_pong_goes_direct(void **state)
{
	struct sim *s = *state;

	set_eps(s, three, 3);
	sim_tick(s);
	s->now += 12;
	assert_int_equal(sim_pong_from(s, last_ping_to(s, "192.0.2.7:41641"), NULL), 1);
	chosen_is(s, "192.0.2.7:41641");
	assert_int_equal(s->pp.cands[1].rtt_us, 12000);
	assert_int_equal(s->pp.changes, 1);
	assert_int_equal(s->pp.best_since_ms, s->now);
	assert_int_equal(path_next_ms(&s->pp), s->now + PATH_HEARTBEAT_MS);
}

static void test_vpnd_path_bad_pongs(void **state)
{
	struct sim *s = *state;
	uint8_t other[DISCO_TXID_LEN] = { 9, 9, 9 };
	struct addr_port wrong = ap("198.51.100.1:41642");
	int p;

	set_eps(s, three, 3);
	sim_tick(s);
	p = last_ping_to(s, "198.51.100.1:41641");
	s->now += 5;
	assert_int_equal(path_pong(&s->pp, other, &s->log[p].to, s->now), -ENOENT);
	assert_int_equal(sim_pong_from(s, p, &wrong), -ENOENT);
	/* another candidate's address is no better */
	assert_int_equal(sim_pong_from(s, p, &s->pp.cands[1].ap), -ENOENT);
	chosen_is(s, NULL);
	/* the real pong still counts, once */
	assert_int_equal(sim_pong_from(s, p, NULL), 1);
	assert_int_equal(sim_pong_from(s, p, NULL), -ENOENT);
	/* too late, even before a tick freed it */
	p = last_ping_to(s, "192.0.2.7:41641");
	s->now = s->log[p].at + PATH_PING_TIMEOUT_MS + 1;
	assert_int_equal(sim_pong_from(s, p, NULL), -ENOENT);
	assert_int_equal(s->pp.cands[1].last_pong_ms, 0);
}

static void test_vpnd_path_lan_first(void **state)
{
	struct sim *s = *state;
	const char *const eps[] = { "198.51.100.1:41641", "192.168.1.20:41641" };

	set_eps(s, eps, 2);
	assert_int_equal(s->pp.cands[1].lan, 1);
	sim_tick(s);
	s->now += 3;
	assert_int_equal(sim_pong_from(s, last_ping_to(s, eps[0]), NULL), 1);
	s->now += 20;                               /* slower, but LAN */
	assert_int_equal(sim_pong_from(s, last_ping_to(s, eps[1]), NULL), 1);
	chosen_is(s, eps[1]);
	/* the public path being faster again does not take it back */
	s->now += 1000;
	sim_ping(s, 0);
	s->now += 1;
	assert_int_equal(sim_pong_from(s, last_ping_to(s, eps[0]), NULL), 0);
	chosen_is(s, eps[1]);
}

static void test_vpnd_path_lan_classes(void **state)
{
	static const struct {
		const char *a;
		int lan;
	} t[] = {
		{ "10.1.2.3:1", 1 }, { "172.16.0.1:1", 1 }, { "172.31.255.1:1", 1 },
		{ "172.32.0.1:1", 0 }, { "192.168.0.1:1", 1 }, { "100.64.0.1:1", 0 },
		{ "[fd00::1]:1", 1 }, { "[fc00::1]:1", 1 }, { "[fe80::1]:1", 1 },
		{ "[fec0::1]:1", 0 }, { "[2001:db8::1]:1", 0 }, { "203.0.113.1:1", 0 },
	};
	struct addr_port none = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct addr_port a = ap(t[i].a);

		assert_int_equal(path_is_lan(&a), t[i].lan);
	}
	assert_int_equal(path_is_lan(&none), 0);
}

/* Four public candidates answering in order with the given round trips (ms). */
static void race(struct sim *s, const int rtt[4], const int want[4])
{
	const char *const eps[] = { "203.0.113.1:1", "203.0.113.2:1", "203.0.113.3:1",
				    "203.0.113.4:1" };
	uint64_t start = s->now;

	set_eps(s, eps, 4);
	sim_tick(s);
	for (int i = 0; i < 4; i++) {
		s->now = start + 100 * (uint64_t)(i + 1);
		sim_ping(s, i);
		s->now += (uint64_t)rtt[i];
		assert_int_equal(sim_pong_from(s, last_ping_to(s, eps[i]), NULL), want[i]);
	}
}

static void test_vpnd_path_hysteresis(void **state)
{
	struct sim *s = *state;
	/* 10 ms chosen; 9 ms is not clearly better; 7 ms (< 80 %, 3 ms less) is; 6 ms is
	 * not clearly better than 7 */
	const int rtt[4] = { 10, 9, 7, 6 }, want[4] = { 1, 0, 1, 0 };

	race(s, rtt, want);
	chosen_is(s, "203.0.113.3:1");
	assert_int_equal(s->pp.changes, 2);
}

static void test_vpnd_path_hysteresis_min(void **state)
{
	struct sim *s = *state;
	/* 1 ms chosen; a same-ms pong (1 us) is under 80 % but not PATH_SWITCH_MIN_US less;
	 * from 3 ms, 1 ms is both */
	const int rtt[4] = { 1, 0, 0, 0 }, want[4] = { 1, 0, 0, 0 };
	const int rtt2[4] = { 3, 1, 1, 0 }, want2[4] = { 1, 1, 0, 0 };

	race(s, rtt, want);
	chosen_is(s, "203.0.113.1:1");
	path_init(&s->pp, s->now);
	race(s, rtt2, want2);
	chosen_is(s, "203.0.113.2:1");
}

static void test_vpnd_path_heartbeat(void **state)
{
	struct sim *s = *state;
	const char *const eps[] = { "203.0.113.9:41641" };
	uint64_t direct_at, prev = 0;
	int beats = 0;

	host_add(s, eps[0], 15);
	set_eps(s, eps, 1);
	sim_run(s, T0 + 100);
	chosen_is(s, eps[0]);
	direct_at = s->last_change_at;
	assert_int_equal(direct_at, T0 + 15);
	sim_run(s, T0 + 20000);
	chosen_is(s, eps[0]);
	assert_int_equal(s->n_changes, 1);
	for (int i = 0; i < s->n_log; i++) {
		if (s->log[i].at <= direct_at)
			continue;
		/* the probe round at T0 + PATH_PROBE_MS counts as a heartbeat */
		if (prev)
			assert_true(s->log[i].at - prev > 0 && s->log[i].at - prev <= PATH_HEARTBEAT_MS);
		prev = s->log[i].at;
		beats++;
	}
	assert_true(beats >= 19 && beats <= 20);
	assert_true(s->now - prev <= PATH_HEARTBEAT_MS);
	assert_int_equal(s->n_cmm, 1);              /* direct: no more call-me-maybes */
}

static void test_vpnd_path_fallback_and_upgrade(void **state)
{
	struct sim *s = *state;
	const char *const eps[] = { "203.0.113.9:41641" };
	uint64_t last_pong, back;

	host_add(s, eps[0], 15);
	set_eps(s, eps, 1);
	sim_run(s, T0 + 5000);
	chosen_is(s, eps[0]);
	s->hosts[0].up = 0;                         /* nft drops the pair's UDP */
	sim_run(s, T0 + 5000 + 50);                 /* the pong in flight still comes */
	last_pong = s->pp.cands[0].last_pong_ms;
	sim_run(s, last_pong + PATH_TRUST_MS);
	chosen_is(s, eps[0]);
	sim_run(s, last_pong + PATH_TRUST_MS + 1);
	chosen_is(s, NULL);
	assert_int_equal(s->last_change_at, last_pong + PATH_TRUST_MS + 1);
	/* relayed: probed at once and every PATH_PROBE_MS, with call-me-maybes */
	assert_int_equal(s->log[s->n_log - 1].at, s->now);
	assert_int_equal(s->last_cmm_at, s->now);
	sim_run(s, s->now + 3 * PATH_PROBE_MS);
	assert_int_equal(pings_to_since(s, eps[0], last_pong + PATH_TRUST_MS + 1), 4);
	assert_int_equal(s->n_cmm, 5);
	chosen_is(s, NULL);
	back = s->now + 1;
	s->hosts[0].up = 1;
	sim_run(s, back + PATH_PROBE_MS + 15);
	chosen_is(s, eps[0]);
	assert_true(s->last_change_at <= back + PATH_PROBE_MS + 15);
	assert_int_equal(s->n_changes, 3);
}

static void test_vpnd_path_failover(void **state)
{
	struct sim *s = *state;
	const char *const eps[] = { "192.168.1.5:41641", "203.0.113.9:41641" };
	uint64_t lan_last;

	host_add(s, eps[0], 1);
	host_add(s, eps[1], 20);
	set_eps(s, eps, 2);
	sim_run(s, T0 + 2000);
	chosen_is(s, eps[0]);
	s->hosts[0].up = 0;
	lan_last = s->pp.cands[0].last_pong_ms;
	/* the public candidate answered a moment ago (it told us again, say) */
	learn(s, eps[1]);
	sim_run(s, lan_last + PATH_TRUST_MS + 1);
	assert_true(s->pp.cands[1].last_pong_ms > lan_last);
	chosen_is(s, eps[1]);
	assert_int_equal(s->last_change_at, lan_last + PATH_TRUST_MS + 1);
	assert_int_equal(s->n_cmm, 1);              /* never relayed */
}

static void test_vpnd_path_learned_hard_nat(void **state)
{
	struct sim *s = *state;
	/* the peer behind a hard NAT: its published mapping is for the STUN server only;
	 * its ping reaches us from another port, and that one answers */
	const char *const eps[] = { "198.51.100.7:1234" };
	const char *prflx = "198.51.100.7:60123", *stale = "198.51.100.7:60999";

	host_add(s, prflx, 30);
	set_eps(s, eps, 1);
	sim_run(s, T0 + 3000);
	chosen_is(s, NULL);
	learn(s, prflx);
	learn(s, stale);
	assert_int_equal(s->pp.n_cands, 3);
	assert_int_equal(s->pp.cands[1].src, PATH_SRC_LEARNED);
	sim_run(s, T0 + 3000 + 30);
	chosen_is(s, prflx);
	assert_int_equal(s->last_change_at, T0 + 3030);
	/* the one that never answered is forgotten; the live one and the netmap one stay */
	sim_run(s, T0 + 3000 + PATH_LEARNED_MS);
	assert_int_equal(s->pp.n_cands, 3);
	sim_run(s, T0 + 3000 + PATH_LEARNED_MS + PATH_HEARTBEAT_MS + 1);
	assert_int_equal(s->pp.n_cands, 2);
	chosen_is(s, prflx);
	assert_int_equal(s->pp.best, 1);
	assert_int_equal(s->pp.cands[0].src, PATH_SRC_NETMAP);
}

static void test_vpnd_path_learned_full(void **state)
{
	struct sim *s = *state;
	char addr[32];
	struct addr_port a, b = ap("192.0.2.1:2");

	for (int i = 0; i < PATH_MAX_CANDS; i++) {
		snprintf(addr, sizeof(addr), "192.0.2.1:%d", 1000 + i);
		s->now = T0 + (uint64_t)i;
		learn(s, addr);
	}
	/* re-learning the first makes it the newest */
	learn(s, "192.0.2.1:1000");
	assert_int_equal(path_add_learned(&s->pp, &b, s->now), 0);
	assert_int_equal(s->pp.n_cands, PATH_MAX_CANDS);
	a = ap("192.0.2.1:1001");
	for (int i = 0; i < s->pp.n_cands; i++)
		assert_false(addr_equal(&s->pp.cands[i].ap, &a));
	assert_true(addr_equal(&s->pp.cands[PATH_MAX_CANDS - 1].ap, &b));
	/* netmap candidates are never evicted */
	path_init(&s->pp, s->now);
	{
		const char *eps[PATH_MAX_CANDS + 1];
		static char bufs[PATH_MAX_CANDS + 1][32];

		for (int i = 0; i <= PATH_MAX_CANDS; i++) {
			snprintf(bufs[i], sizeof(bufs[i]), "192.0.2.2:%d", 2000 + i);
			eps[i] = bufs[i];
		}
		set_eps(s, eps, PATH_MAX_CANDS + 1);    /* the last one is left out */
	}
	assert_int_equal(s->pp.n_cands, PATH_MAX_CANDS);
	assert_int_equal(path_add_learned(&s->pp, &b, s->now), -ENOSPC);
	a = (struct addr_port){ 0 };
	assert_int_equal(path_add_learned(&s->pp, &a, s->now), -EINVAL);
}

static void test_vpnd_path_max_actions(void **state)
{
	struct sim *s = *state;
	const char *const eps[] = { "203.0.113.1:1", "203.0.113.2:1", "203.0.113.3:1",
				    "203.0.113.4:1", "203.0.113.5:1" };
	struct path_action acts[1];

	set_eps(s, eps, 5);
	assert_int_equal(path_tick(&s->pp, s->now, acts, 0, NULL), 0);
	assert_true(path_next_ms(&s->pp) <= s->now);
	s->max = 2;
	assert_int_equal(sim_tick(s), 2);
	assert_true(path_next_ms(&s->pp) <= s->now);
	s->now += 1;
	assert_int_equal(sim_tick(s), 2);
	s->now += 1;
	assert_int_equal(sim_tick(s), 2);            /* the last ping and the call-me-maybe */
	assert_int_equal(s->n_cmm, 1);
	assert_int_equal(path_next_ms(&s->pp), T0 + PATH_PROBE_MS);
	for (int i = 0; i < 5; i++)
		assert_int_equal(pings_to_since(s, eps[i], 0), 1);
	/* a due heartbeat waits for room too */
	s->now += 10;
	assert_int_equal(sim_pong_from(s, last_ping_to(s, eps[4]), NULL), 1);
	s->now += PATH_HEARTBEAT_MS;
	s->max = 0;
	assert_int_equal(sim_tick(s), 0);
	assert_true(path_next_ms(&s->pp) <= s->now);
	s->now += 1;
	s->max = 1;
	assert_int_equal(sim_tick(s), 1);
	assert_int_equal(last_ping_to(s, eps[4]), s->n_log - 1);
	assert_int_equal(path_next_ms(&s->pp), s->now + PATH_HEARTBEAT_MS);
}

static void test_vpnd_path_netmap_change(void **state)
{
	struct sim *s = *state;
	const char *const a[] = { "203.0.113.1:1", "203.0.113.2:1" };
	const char *const b[] = { "203.0.113.2:1", "203.0.113.3:1" };
	const char *const c[] = { "203.0.113.3:1" };
	int n;

	host_add(s, a[0], 10);
	set_eps(s, a, 2);
	sim_run(s, T0 + 500);
	chosen_is(s, a[0]);
	n = s->n_log;
	set_eps(s, b, 2);                           /* the chosen one is no longer published */
	chosen_is(s, a[0]);
	assert_int_equal(s->pp.n_cands, 3);
	assert_int_equal(s->pp.cands[0].src, PATH_SRC_LEARNED);
	assert_int_equal(sim_tick(s), 1);           /* only the new one */
	assert_int_equal(last_ping_to(s, b[1]), n);
	/* a netmap candidate learned too keeps the learned bit */
	learn(s, b[0]);
	set_eps(s, c, 1);
	assert_int_equal(s->pp.n_cands, 3);
	assert_int_equal(s->pp.cands[1].src, PATH_SRC_LEARNED);
	assert_int_equal(s->pp.cands[2].src, PATH_SRC_NETMAP);
	sim_run(s, T0 + 5000);
	chosen_is(s, a[0]);
	assert_int_equal(s->n_changes, 1);
	/* published again: the same candidate, no change */
	set_eps(s, a, 2);
	assert_int_equal(s->pp.cands[0].src, PATH_SRC_LEARNED | PATH_SRC_NETMAP);
	chosen_is(s, a[0]);
}

static void test_vpnd_path_network_changed(void **state)
{
	struct sim *s = *state;
	const char *const eps[] = { "203.0.113.1:1", "203.0.113.2:1" };
	int n;

	host_add(s, eps[0], 10);
	set_eps(s, eps, 2);
	sim_run(s, T0 + 10000);
	chosen_is(s, eps[0]);
	assert_true(s->pp.next_probe_ms > s->now + PATH_PROBE_MS);
	n = s->n_log;
	s->now += 300;
	path_network_changed(&s->pp, s->now);
	assert_true(path_next_ms(&s->pp) <= s->now);
	assert_int_equal(sim_tick(s), 3);
	assert_int_equal(s->n_log, n + 2);
	assert_int_equal(s->n_cmm, 2);
	assert_int_equal(s->last_cmm_at, s->now);
	assert_int_equal(s->pp.next_probe_ms, s->now + PATH_PROBE_DIRECT_MS);
}

static void test_vpnd_path_index_fixups(void **state)
{
	struct sim *s = *state;
	const char *stale = "198.51.100.50:7", *live = "198.51.100.60:7";
	const char *const eps[] = { "198.51.100.70:7" };
	uint8_t txid[DISCO_TXID_LEN] = { 0xee, 1 };
	struct addr_port n_ap = ap(eps[0]), stale_ap = ap(stale);
	uint64_t expiry = T0 + PATH_LEARNED_MS + 1;

	host_add(s, live, 5);
	learn(s, stale);                            /* index 0, never answers */
	set_eps(s, eps, 1);                         /* index 1, silent */
	learn(s, live);                             /* index 2 */
	sim_run(s, expiry - 100);
	chosen_is(s, live);
	assert_int_equal(s->pp.best, 2);
	/* a ping to the netmap candidate is outstanding while the stale one goes */
	path_ping_sent(&s->pp, 1, txid, s->now);
	sim_run(s, expiry + PATH_HEARTBEAT_MS);
	assert_int_equal(s->pp.n_cands, 2);
	assert_int_equal(s->pp.best, 1);
	chosen_is(s, live);
	assert_true(addr_equal(&s->pp.cands[0].ap, &n_ap));
	assert_int_equal(path_pong(&s->pp, txid, &stale_ap, s->now), -ENOENT);
	assert_int_equal(path_pong(&s->pp, txid, &n_ap, s->now), 0);
	assert_int_equal(s->pp.cands[0].last_pong_ms, s->now);
	assert_int_equal(s->pp.cands[0].rtt_us, (PATH_HEARTBEAT_MS + 100) * 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_vpnd_path_relay_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_pong_goes_direct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_bad_pongs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_lan_first, setup, teardown),
		cmocka_unit_test(test_vpnd_path_lan_classes),
		cmocka_unit_test_setup_teardown(test_vpnd_path_hysteresis, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_hysteresis_min, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_heartbeat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_fallback_and_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_failover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_learned_hard_nat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_learned_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_max_actions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_netmap_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_network_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_path_index_fixups, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
