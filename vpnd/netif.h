/* netif.h - the node's network interface over rtnetlink (libnl-route-3): WireGuard link
 * create/delete, up/down, MTU, the node's /32 and /128 addresses, routes through it.
 * Every call acts in the network namespace the handle was opened in. */
#ifndef VPND_NETIF_H
#define VPND_NETIF_H

#include <stdint.h>

#define NETIF_DEFAULT_MTU 1280   /* as Tailscale: fits inside any path that carries IPv6 */

struct netif;

/* An rtnetlink socket in the current namespace. */
int netif_open(struct netif **out);
void netif_close(struct netif *nif);

/* A link of type wireguard. -EOPNOTSUPP when the kernel has no WireGuard, -EEXIST when
 * the name is taken. */
int netif_wg_create(struct netif *nif, const char *ifname);
/* Deletes the link. -ENODEV when there is none. */
int netif_delete(struct netif *nif, const char *ifname);
/* The interface index (> 0), or -ENODEV. */
int netif_index(struct netif *nif, const char *ifname);
int netif_set_up(struct netif *nif, int ifindex, int up);
int netif_set_mtu(struct netif *nif, int ifindex, unsigned mtu);

/* family AF_INET or AF_INET6; addr points to a struct in_addr or in6_addr. Adding is
 * idempotent (replaces); IPv6 addresses skip duplicate address detection. The node's
 * own addresses are /32 and /128: reachability comes from netif_route_add. */
int netif_addr_add(struct netif *nif, int ifindex, int family, const void *addr,
		   unsigned prefixlen);
int netif_addr_del(struct netif *nif, int ifindex, int family, const void *addr,
		   unsigned prefixlen);
/* A route to dst/prefixlen through the interface (main table, scope link), idempotent.
 * The interface must be up. */
int netif_route_add(struct netif *nif, int ifindex, int family, const void *dst,
		    unsigned prefixlen);
int netif_route_del(struct netif *nif, int ifindex, int family, const void *dst,
		    unsigned prefixlen);

/* A libnl error code (NLE_*) as a negative errno. */
int netif_errno(int nle);

#endif
