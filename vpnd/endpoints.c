/* endpoints.c - the node's endpoint candidates (its addresses on links that are up, with
 * WireGuard's port) and their posting to coord: after a link or address change (linkmon),
 * when a stream starts, every minute as a safety net, and again soon after a failure.
 * Only a set that differs from the last accepted one is sent. DESIGN.md flow 4; the
 * STUN-reflexive candidates of NAT traversal join the list here. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "meshvpn/json.h"
#include "meshvpn/log.h"
#include "vpnd.h"

#define ENDPOINT_CHECK_TICKS 60   /* a safety net: linkmon reports changes as they happen */
#define ENDPOINT_RETRY_TICKS 30   /* after a failed post: as often as before */

static int skip_v4(const struct in_addr *a, const struct in_addr *self4)
{
	uint32_t h = ntohl(a->s_addr);

	/* 100.64.0.0/10 is the tailnet's (an address there on another interface is another
	 * tailnet node's, or a carrier NAT's that no peer can reach). */
	return (h >> 24) == 127 || (h >> 16) == 0xa9fe /* 169.254/16 */ || h == 0 ||
	       (h & 0xffc00000u) == 0x64400000u || (self4 && a->s_addr == self4->s_addr);
}

static int skip_v6(const struct in6_addr *a, const struct in6_addr *self6)
{
	if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_UNSPECIFIED(a) ||
	    IN6_IS_ADDR_MULTICAST(a))
		return 1;
	/* the tailnet's own /48 */
	return self6 && !IN6_IS_ADDR_UNSPECIFIED(self6) && !memcmp(a->s6_addr, self6->s6_addr, 6);
}

/* The candidate of one interface address, or 1 when it is not one. */
static int candidate(const struct ifaddrs *i, int family, const char *skip_ifname,
		     const struct in_addr *self4, const struct in6_addr *self6, uint16_t port,
		     struct addr_port *out)
{
	if (!i->ifa_addr || i->ifa_addr->sa_family != family || !(i->ifa_flags & IFF_UP) ||
	    !(i->ifa_flags & IFF_RUNNING) || (i->ifa_flags & IFF_LOOPBACK) ||
	    (skip_ifname && !strcmp(i->ifa_name, skip_ifname)))
		return 1;
	if (addr_from_sockaddr(i->ifa_addr, out))
		return 1;
	if (family == AF_INET ? skip_v4(&out->v4, self4) : skip_v6(&out->v6, self6))
		return 1;
	out->port = port;
	out->scope_id = 0;
	return 0;
}

int vpnd_local_endpoints(const char *skip_ifname, const struct in_addr *self4,
			 const struct in6_addr *self6, uint16_t port, struct addr_port *out, int max)
{
	struct ifaddrs *ifa, *i;
	int n = 0;

	if (getifaddrs(&ifa))
		return -errno;
	for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		for (i = ifa; i && n < max; i = i->ifa_next) {
			struct addr_port a;
			int dup = 0;

			if (candidate(i, family, skip_ifname, self4, self6, port, &a))
				continue;
			for (int k = 0; k < n; k++)
				dup |= addr_equal(&out[k], &a);
			if (!dup)
				out[n++] = a;
		}
	}
	freeifaddrs(ifa);
	return n;
}

static void post_done(struct coord_call *call, void *arg)
{
	struct vpnd *d = arg;
	struct vpnd_endpoints *e = &d->eps;
	char err[200], first[ADDR_TEXT_LEN] = "none";

	d->jobs--;
	e->call = NULL;
	if (d->closing) {
		coord_call_free(call);
		return;
	}
	if (!call->rc && call->status == 200) {
		memcpy(e->posted, e->posting, sizeof(e->posted));
		e->n_posted = e->n_posting;
		memcpy(e->home_posted, e->home_posting, sizeof(e->home_posted));
		e->posted_ok = 1;
		d->stats.endpoint_posts++;
		if (e->n_posted)
			addr_format(&e->posted[0], first, sizeof(first));
		log_info("endpoints posted", "count=%d first=%s", e->n_posted, first);
		endpoints_post(d);   /* the addresses may have changed while this was in flight */
	} else {
		coord_call_error(call, err, sizeof(err));
		log_warn("cannot post endpoints", "error=\"%s\"", err);
		e->posted_ok = 0;
		/* Re-registered (a new token) or a new stream while this was in flight: the
		 * refusal is stale, post again now rather than at the next periodic retry. */
		if (strcmp(call->token, d->prefs.token) || e->fresh) {
			coord_call_free(call);
			endpoints_post(d);
			return;
		}
	}
	coord_call_free(call);
}

/* {"endpoints": [...], "home_relay": HOME}, compact, malloc'd. */
static char *post_body(const struct addr_port *eps, int n, const char *home, size_t *len)
{
	char text[ADDR_TEXT_LEN], *s = NULL;
	json_t *a = json_array(), *body;

	for (int i = 0; a && i < n; i++)
		if (!addr_format(&eps[i], text, sizeof(text)))
			json_array_append_new(a, json_string(text));
	body = a ? json_pack("{s:o, s:s}", "endpoints", a, "home_relay", home) : NULL;
	if (body)
		s = json_dump_compact(body, len);
	json_decref(body);
	return s;
}

/* The STUN-reflexive candidates after the local ones (n of them), without repeats. */
static int add_reflexive(struct vpnd *d, struct addr_port *eps, int n)
{
	struct addr_port r[2];
	int k = traversal_reflexive(&d->tv, r, 2);

	for (int i = 0; i < k && n < NM_MAX_ENDPOINTS; i++) {
		int dup = 0;

		for (int j = 0; j < n; j++)
			dup |= addr_equal(&eps[j], &r[i]);
		if (!dup)
			eps[n++] = r[i];
	}
	return n;
}

void endpoints_post(struct vpnd *d)
{
	struct vpnd_endpoints *e = &d->eps;
	struct addr_port eps[NM_MAX_ENDPOINTS];
	struct coord_call *call;
	const char *home;
	int n;

	if (e->call || !d->wg || d->state != VPND_RUNNING || !d->prefs.token[0] || d->closing)
		return;
	memset(eps, 0, sizeof(eps));
	n = vpnd_local_endpoints(d->opts.ifname, &d->nm.self.ip4, &d->nm.self.ip6, d->opts.port,
				 eps, NM_MAX_ENDPOINTS);
	if (n < 0) {
		log_warn("cannot list local addresses", "error=\"%s\"", strerror(-n));
		return;
	}
	n = add_reflexive(d, eps, n);
	traversal_set_mine(&d->tv, eps, n);
	home = traversal_home(&d->tv);
	if (e->posted_ok && n == e->n_posted && !memcmp(eps, e->posted, (size_t)n * sizeof(*eps)) &&
	    !strcmp(home, e->home_posted) && !e->fresh)
		return;
	call = vpnd_call_new(d, CALL_ENDPOINTS);
	if (!call || !(call->body = post_body(eps, n, home, &call->body_len))) {
		coord_call_free(call);
		return;
	}
	snprintf(call->token, sizeof(call->token), "%s", d->prefs.token);
	memcpy(e->posting, eps, sizeof(eps));
	e->n_posting = n;
	snprintf(e->home_posting, sizeof(e->home_posting), "%s", home);
	if (coord_call_start(d->loop, call, post_done, d)) {
		coord_call_free(call);
		return;
	}
	e->fresh = 0;
	e->call = call;
	d->jobs++;
}

void endpoints_stream_started(struct vpnd *d)
{
	d->eps.fresh = 1;   /* coord may have restarted and forgotten them */
}

void endpoints_tick(struct vpnd *d, unsigned ticks)
{
	if (d->state == VPND_RUNNING && (ticks % ENDPOINT_CHECK_TICKS == 0 ||
					  (!d->eps.posted_ok && ticks % ENDPOINT_RETRY_TICKS == 0)))
		endpoints_post(d);
}

void endpoints_forget(struct vpnd *d)
{
	memset(d->eps.posted, 0, sizeof(d->eps.posted));
	d->eps.home_posted[0] = 0;
	d->eps.n_posted = 0;
	d->eps.posted_ok = 0;
}

void endpoints_links_changed(struct linkmon *lm, void *arg)
{
	struct vpnd *d = arg;

	log_debug("links or addresses changed", "events=%lu overruns=%lu", lm->events, lm->overruns);
	traversal_network_changed(&d->tv);
	endpoints_post(d);
}
