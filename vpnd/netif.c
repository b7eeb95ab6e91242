/* netif.c - links, addresses and routes over rtnetlink (RFC 3549) with libnl-route-3:
 * the WireGuard link itself (IFLA_INFO_KIND "wireguard"), its state, MTU, the node's
 * addresses and the tailnet's routes through it. */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

#include "netif.h"

struct netif {
	struct nl_sock *sk;
};

int netif_errno(int nle)
{
	/* Inverse of libnl's nl_syserr2nlerr where it is one-to-one enough. */
	switch (nle < 0 ? -nle : nle) {
	case NLE_SUCCESS: return 0;
	case NLE_INTR: return -EINTR;
	case NLE_BAD_SOCK: return -EBADF;
	case NLE_AGAIN: return -EAGAIN;
	case NLE_NOMEM: return -ENOMEM;
	case NLE_EXIST: return -EEXIST;
	case NLE_INVAL: return -EINVAL;
	case NLE_RANGE: return -ERANGE;
	case NLE_MSGSIZE: return -EMSGSIZE;
	case NLE_OPNOTSUPP: return -EOPNOTSUPP;
	case NLE_AF_NOSUPPORT: return -EAFNOSUPPORT;
	case NLE_OBJ_NOTFOUND: return -ENOENT;
	case NLE_NOADDR: return -EADDRNOTAVAIL;
	case NLE_BUSY: return -EBUSY;
	case NLE_PROTO_MISMATCH: return -EPROTONOSUPPORT;
	case NLE_NOACCESS: return -EACCES;
	case NLE_PERM: return -EPERM;
	case NLE_NODEV: return -ENODEV;
	case NLE_DUMP_INTR: return -EINTR;
	case NLE_MSG_TRUNC: case NLE_MSG_TOOSHORT: case NLE_MSG_OVERFLOW: case NLE_ATTRSIZE:
	case NLE_PARSE_ERR:
		return -EBADMSG;
	default: return -EIO;
	}
}

int netif_open(struct netif **out)
{
	struct netif *nif;
	int rc;

	nif = calloc(1, sizeof(*nif));
	if (!nif)
		return -ENOMEM;
	nif->sk = nl_socket_alloc();
	if (!nif->sk) {
		rc = -ENOMEM;
		goto err_sock;
	}
	rc = nl_connect(nif->sk, NETLINK_ROUTE);
	if (rc < 0) {
		rc = netif_errno(rc);
		goto err_connect;
	}
	*out = nif;
	return 0;

err_connect:
	nl_socket_free(nif->sk);
err_sock:
	free(nif);
	return rc;
}

void netif_close(struct netif *nif)
{
	if (!nif)
		return;
	nl_socket_free(nif->sk);
	free(nif);
}

static int check_name(const char *ifname)
{
	size_t n = ifname ? strlen(ifname) : 0;

	return n && n < IFNAMSIZ ? 0 : -EINVAL;
}

int netif_wg_create(struct netif *nif, const char *ifname)
{
	struct rtnl_link *link;
	int rc;

	if (check_name(ifname))
		return -EINVAL;
	link = rtnl_link_alloc();
	if (!link)
		return -ENOMEM;
	rtnl_link_set_name(link, ifname);
	rc = rtnl_link_set_type(link, "wireguard");
	if (rc < 0) {
		rc = netif_errno(rc);
		goto out;
	}
	/* A kernel without WireGuard answers EOPNOTSUPP ("Unknown device type"). */
	rc = netif_errno(rtnl_link_add(nif->sk, link, NLM_F_CREATE | NLM_F_EXCL));
out:
	rtnl_link_put(link);
	return rc;
}

int netif_delete(struct netif *nif, const char *ifname)
{
	struct rtnl_link *link;
	int rc;

	if (check_name(ifname))
		return -EINVAL;
	link = rtnl_link_alloc();
	if (!link)
		return -ENOMEM;
	rtnl_link_set_name(link, ifname);
	rc = netif_errno(rtnl_link_delete(nif->sk, link));
	rtnl_link_put(link);
	return rc == -ENOENT ? -ENODEV : rc;
}

int netif_index(struct netif *nif, const char *ifname)
{
	struct rtnl_link *link = NULL;
	int rc;

	if (check_name(ifname))
		return -EINVAL;
	rc = netif_errno(rtnl_link_get_kernel(nif->sk, 0, ifname, &link));
	if (rc)
		return rc == -ENOENT ? -ENODEV : rc;
	rc = rtnl_link_get_ifindex(link);
	rtnl_link_put(link);
	return rc > 0 ? rc : -ENODEV;
}

/* Applies the attributes set in changes to link ifindex. */
static int link_change(struct netif *nif, int ifindex, struct rtnl_link *changes)
{
	struct rtnl_link *orig = NULL;
	int rc;

	rc = netif_errno(rtnl_link_get_kernel(nif->sk, ifindex, NULL, &orig));
	if (rc)
		return rc == -ENOENT ? -ENODEV : rc;
	rc = netif_errno(rtnl_link_change(nif->sk, orig, changes, 0));
	rtnl_link_put(orig);
	return rc;
}

int netif_set_up(struct netif *nif, int ifindex, int up)
{
	struct rtnl_link *changes;
	int rc;

	if (ifindex <= 0)
		return -EINVAL;
	changes = rtnl_link_alloc();
	if (!changes)
		return -ENOMEM;
	if (up)
		rtnl_link_set_flags(changes, IFF_UP);
	else
		rtnl_link_unset_flags(changes, IFF_UP);
	rc = link_change(nif, ifindex, changes);
	rtnl_link_put(changes);
	return rc;
}

int netif_set_mtu(struct netif *nif, int ifindex, unsigned mtu)
{
	struct rtnl_link *changes;
	int rc;

	if (ifindex <= 0 || mtu < 576 || mtu > 65535)
		return -EINVAL;
	changes = rtnl_link_alloc();
	if (!changes)
		return -ENOMEM;
	rtnl_link_set_mtu(changes, mtu);
	rc = link_change(nif, ifindex, changes);
	rtnl_link_put(changes);
	return rc;
}

/* An nl_addr for addr/prefixlen; with mask, host bits are cleared (route keys). */
static int make_addr(int family, const void *addr, unsigned prefixlen, int mask,
		     struct nl_addr **out)
{
	uint8_t buf[16];
	size_t len;
	struct nl_addr *a;

	if (family == AF_INET)
		len = 4;
	else if (family == AF_INET6)
		len = 16;
	else
		return -EAFNOSUPPORT;
	if (!addr || prefixlen > len * 8)
		return -EINVAL;
	memcpy(buf, addr, len);
	if (mask) {
		for (size_t i = 0; i < len; i++) {
			unsigned bits = prefixlen > i * 8 ? prefixlen - (unsigned)i * 8 : 0;
			if (bits < 8)
				buf[i] &= (uint8_t)(0xff00U >> bits);
		}
	}
	a = nl_addr_build(family, buf, len);
	if (!a)
		return -ENOMEM;
	nl_addr_set_prefixlen(a, (int)prefixlen);
	*out = a;
	return 0;
}

static int addr_op(struct nl_sock *sk, int add, int ifindex, int family, const void *addr,
		   unsigned prefixlen)
{
	struct rtnl_addr *ra;
	struct nl_addr *local = NULL;
	int rc;

	if (ifindex <= 0)
		return -EINVAL;
	rc = make_addr(family, addr, prefixlen, 0, &local);
	if (rc)
		return rc;
	ra = rtnl_addr_alloc();
	if (!ra) {
		rc = -ENOMEM;
		goto out;
	}
	rtnl_addr_set_ifindex(ra, ifindex);
	rtnl_addr_set_family(ra, family);
	rc = netif_errno(rtnl_addr_set_local(ra, local));
	if (rc)
		goto out;
	rtnl_addr_set_prefixlen(ra, (int)prefixlen);
	if (add) {
		/* A tentative address cannot be bound to; there is nobody to collide with. */
		if (family == AF_INET6)
			rtnl_addr_set_flags(ra, IFA_F_NODAD);
		rc = netif_errno(rtnl_addr_add(sk, ra, NLM_F_REPLACE));
	} else {
		rc = netif_errno(rtnl_addr_delete(sk, ra, 0));
	}
out:
	if (ra)
		rtnl_addr_put(ra);
	nl_addr_put(local);
	return rc;
}

int netif_addr_add(struct netif *nif, int ifindex, int family, const void *addr,
		   unsigned prefixlen)
{
	return addr_op(nif->sk, 1, ifindex, family, addr, prefixlen);
}

int netif_addr_del(struct netif *nif, int ifindex, int family, const void *addr,
		   unsigned prefixlen)
{
	return addr_op(nif->sk, 0, ifindex, family, addr, prefixlen);
}

static int route_op(struct nl_sock *sk, int add, int ifindex, int family, const void *dst,
		    unsigned prefixlen)
{
	struct rtnl_route *route = NULL;
	struct rtnl_nexthop *nh;
	struct nl_addr *d = NULL;
	int rc;

	if (ifindex <= 0)
		return -EINVAL;
	rc = make_addr(family, dst, prefixlen, 1, &d);
	if (rc)
		return rc;
	route = rtnl_route_alloc();
	nh = rtnl_route_nh_alloc();
	if (!route || !nh) {
		if (nh)
			rtnl_route_nh_free(nh);
		rc = -ENOMEM;
		goto out;
	}
	rtnl_route_set_family(route, (uint8_t)family);
	rc = netif_errno(rtnl_route_set_dst(route, d));
	if (rc) {
		rtnl_route_nh_free(nh);
		goto out;
	}
	rtnl_route_set_table(route, RT_TABLE_MAIN);
	rtnl_route_set_type(route, RTN_UNICAST);
	rtnl_route_set_protocol(route, RTPROT_STATIC);
	rtnl_route_set_scope(route, family == AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE);
	rtnl_route_nh_set_ifindex(nh, ifindex);
	rtnl_route_add_nexthop(route, nh);   /* route owns nh now */
	if (add)
		rc = netif_errno(rtnl_route_add(sk, route, NLM_F_REPLACE));
	else
		rc = netif_errno(rtnl_route_delete(sk, route, 0));
out:
	if (route)
		rtnl_route_put(route);
	nl_addr_put(d);
	return rc;
}

int netif_route_add(struct netif *nif, int ifindex, int family, const void *dst,
		    unsigned prefixlen)
{
	return route_op(nif->sk, 1, ifindex, family, dst, prefixlen);
}

int netif_route_del(struct netif *nif, int ifindex, int family, const void *dst,
		    unsigned prefixlen)
{
	return route_op(nif->sk, 0, ifindex, family, dst, prefixlen);
}
