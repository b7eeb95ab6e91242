/* linkmon.h - watches the node's links and addresses over rtnetlink (multicast groups
 * RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR; rtnetlink(7)) so that a new or
 * lost address reaches coord at once instead of at the next periodic check. Bursts are
 * debounced; events on vpnd's own WireGuard interface are not the machine's and are
 * ignored. The parser is pure and fuzzed (tests/fuzz/fuzz_vpnd_linkmon.c). */
#ifndef VPND_LINKMON_H
#define VPND_LINKMON_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define LINKMON_DEBOUNCE_MS   250    /* quiet time after the last event of a burst */
#define LINKMON_MAX_DELAY_MS  1000   /* a burst never holds the report back longer */
#define LINKMON_REOPEN_MIN_MS 1000   /* after the socket failed: reopen with backoff */
#define LINKMON_REOPEN_MAX_MS 60000
#define LINKMON_BUF           32768  /* one datagram; a longer one counts as an overrun */

/* The interface whose events do not count (vpnd's own: its addresses are not endpoints). */
struct linkmon_skip {
	char ifname[IFNAMSIZ];   /* "" = none */
	int ifindex;             /* learned from its link messages; 0 = not known */
};

/* Pure: whether a datagram read from the socket (one or more netlink messages) holds an
 * event that may change the endpoint candidates: RTM_NEWLINK/RTM_DELLINK of a link that
 * is not loopback (wireless-extension notices aside), RTM_NEWADDR/RTM_DELADDR of an IPv4
 * or IPv6 address wider than link scope; NLMSG_OVERRUN counts too. Nothing about skip's
 * interface counts; a link message naming it sets skip->ifindex. p must be 4-byte aligned,
 * as a receive buffer is. Returns the number of such messages (0: nothing relevant), or
 * -EBADMSG when a length or a header is out of bounds or an attribute malformed (what
 * was lost is unknown: the caller should look again), -EINVAL for bad arguments. Never
 * reads past len. */
int linkmon_parse(const uint8_t *p, size_t len, struct linkmon_skip *skip);

struct linkmon;
/* A burst of relevant events, an overrun, or a failure of the socket has settled:
 * whatever the caller derives from the addresses should be looked at again. */
typedef void (*linkmon_cb)(struct linkmon *lm, void *arg);

struct linkmon {
	uv_loop_t *loop;         /* NULL: never initialised (close is then a no-op) */
	linkmon_cb cb;
	void *arg;
	struct linkmon_skip skip;
	int fd;                  /* -1 while there is no socket */
	int polling;             /* poll is initialised and not closing */
	uv_poll_t poll;
	uv_timer_t debounce;
	uv_timer_t reopen;       /* after a failure of the socket */
	int pending;             /* a report is due when debounce fires */
	uint64_t burst_start;    /* loop time of the pending burst's first event */
	uint64_t reopen_ms;
	int closing;
	/* counters, for logs and tests: relevant messages; overruns, truncated or malformed
	 * datagrams; reports made (callbacks); failures of the socket */
	unsigned long events, overruns, reports, failures;
};

/* Opens a non-blocking rtnetlink socket in the current network namespace, joins the
 * three groups and polls it on loop; cb runs on the loop thread. skip_ifname may be NULL.
 * 0 or -errno (then nothing is left open and cb never runs). */
int linkmon_init(struct linkmon *lm, uv_loop_t *loop, const char *skip_ifname, linkmon_cb cb,
		 void *arg);
/* Stops and closes the socket and handles (asynchronously, as libuv's: run the loop
 * before lm goes away). No callback afterwards. Fine on a zeroed or failed lm. */
void linkmon_close(struct linkmon *lm);

#endif
