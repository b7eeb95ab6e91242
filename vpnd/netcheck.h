/* netcheck.h - what the network lets this node do (issue 9 items 2 and 6): STUN Binding
 * requests from WireGuard's port (sent through the raw socket by the caller) to every
 * relay's STUN servers, IPv4 and IPv6; the answers give the reflexive candidates, whether
 * UDP works at all, whether the NAT maps each destination to another port (a hard NAT),
 * and the round trip to every relay, from which the preferred (home) relay is picked.
 * Pure: time is given, sending is the caller's callback. */
#ifndef VPND_NETCHECK_H
#define VPND_NETCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "meshvpn/addr.h"
#include "meshvpn/stun.h"
#include "netmap.h"

#define NETCHECK_MAX_SERVERS (NM_MAX_RELAYS * 2)
#define NETCHECK_TIMEOUT_MS 1500    /* a round ends this long after it started */
#define NETCHECK_RESEND_MS 400      /* unanswered requests are sent again (UDP loses) */
#define NETCHECK_INTERVAL_MS 30000  /* a new round this often (and on network changes) */

struct netcheck_server {
	char relay[NM_NAME_LEN];
	struct addr_port ap;
	uint8_t txid[STUN_TXID_LEN];
	uint64_t sent_ms;             /* first send of this round */
	uint64_t sent_us;             /* the same on the fine clock */
	uint64_t resent_ms;
	int answered;
	uint32_t rtt_us;
	struct addr_port mapped;
};

struct netcheck_relay {
	char name[NM_NAME_LEN];
	uint32_t rtt_us;              /* best over its servers; 0: no answer */
};

struct netcheck_report {
	int done;                     /* a round has completed */
	int udp;                      /* some STUN server answered */
	struct addr_port v4, v6;      /* reflexive addresses (family 0: none) */
	int v4_varies;                /* two servers saw different IPv4 mappings: hard NAT */
	int v6_varies;
	struct netcheck_relay relays[NM_MAX_RELAYS];
	int n_relays;
	char preferred[NM_NAME_LEN];  /* lowest round trip; "" without answers */
	uint64_t finished_ms;
};

/* Sends one STUN request (the caller's raw socket): 0 or -errno. */
typedef int (*netcheck_send_fn)(void *arg, const struct addr_port *to, const void *buf, size_t len);

struct netcheck {
	struct netcheck_server s[NETCHECK_MAX_SERVERS];
	int n;
	int running;
	uint64_t started_ms;
	uint64_t next_ms;             /* the next round */
	struct netcheck_report last;  /* of the last completed round */
	uint64_t requests, responses, bad; /* counters */
	netcheck_send_fn send;
	void *arg;
	/* A microsecond clock for round trips (relays a LAN apart differ by less than a
	 * millisecond); NULL: the ms time given, times 1000. */
	uint64_t (*clock_us)(void);
};

void netcheck_init(struct netcheck *nc, netcheck_send_fn send, void *arg);
/* The STUN servers of a relay map entry: its `stun` text, one or more "host:port"
 * separated by commas (IP literals; host names are skipped). Count into out. */
int netcheck_relay_servers(const struct nm_relay *r, struct addr_port *out, int max);
/* Starts a round towards every relay's servers now. Count of servers. */
int netcheck_start(struct netcheck *nc, const struct nm_relay *relays, int n, uint64_t now);
/* A STUN message that came to WireGuard's port from `from`. 1 when it completed the round
 * (every server answered), 0 when taken or ignored. */
int netcheck_input(struct netcheck *nc, const struct addr_port *from, const uint8_t *p,
		   size_t len, uint64_t now);
/* Resends and the round's end. 1 when the round ended now (nc->last is new). */
int netcheck_tick(struct netcheck *nc, uint64_t now);

#endif
