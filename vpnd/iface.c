/* iface.c - vpnd's WireGuard interface: created through wg.h with the node key and port,
 * brought up with its MTU, the node's /32 and /128 and the tailnet's routes (netif.h), and
 * removed again. The peers on it are wgsync's. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/log.h"
#include "netif.h"
#include "vpnd.h"
#include "wg.h"

static int set_device(void *arg, const struct wg_device *dev)
{
	return wg_set_device(arg, dev);
}

void vpnd_ula48(const struct in6_addr *ip6, struct in6_addr *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->s6_addr, ip6->s6_addr, 6);
}

void iface_down(struct vpnd *d)
{
	if (!d->wg)
		return;
	traversal_stop(&d->tv);
	resolver_stop(&d->rs);   /* its address goes with the interface */
	wg_close(d->wg);
	d->wg = NULL;
	d->ifindex = 0;
	d->have_addrs = 0;
	wgsync_attach(&d->sync, NULL, NULL);
	memset(d->wg_pub, 0, sizeof(d->wg_pub));
	log_info("interface removed", "ifname=%s", d->opts.ifname);
}

static int set_addrs(struct vpnd *d, const struct in_addr *ip4, const struct in6_addr *ip6)
{
	static const uint8_t cgnat[4] = { 100, 64, 0, 0 };
	struct in6_addr ula;
	char a4[INET_ADDRSTRLEN], a6[INET6_ADDRSTRLEN];
	int rc;

	if (d->have_addrs && d->if_ip4.s_addr == ip4->s_addr &&
	    !memcmp(&d->if_ip6, ip6, sizeof(*ip6)))
		return 0;
	if (d->have_addrs) {
		netif_addr_del(d->nif, d->ifindex, AF_INET, &d->if_ip4, 32);
		netif_addr_del(d->nif, d->ifindex, AF_INET6, &d->if_ip6, 128);
		d->have_addrs = 0;
	}
	inet_ntop(AF_INET, ip4, a4, sizeof(a4));
	inet_ntop(AF_INET6, ip6, a6, sizeof(a6));
	rc = netif_addr_add(d->nif, d->ifindex, AF_INET, ip4, 32);
	if (rc) {
		log_error("cannot set address", "ifname=%s addr=%s/32 error=\"%s\"", d->opts.ifname,
			  a4, strerror(-rc));
		return rc;
	}
	rc = netif_route_add(d->nif, d->ifindex, AF_INET, cgnat, 10);
	if (rc) {
		log_error("cannot add route", "ifname=%s dst=100.64.0.0/10 error=\"%s\"",
			  d->opts.ifname, strerror(-rc));
		return rc;
	}
	/* IPv6 may be off in this namespace or kernel: IPv4 still works then. */
	vpnd_ula48(ip6, &ula);
	rc = netif_addr_add(d->nif, d->ifindex, AF_INET6, ip6, 128);
	if (!rc)
		rc = netif_route_add(d->nif, d->ifindex, AF_INET6, &ula, 48);
	if (rc)
		log_warn("cannot set IPv6 address or route", "ifname=%s addr=%s/128 error=\"%s\"",
			 d->opts.ifname, a6, strerror(-rc));
	d->if_ip4 = *ip4;
	d->if_ip6 = *ip6;
	d->have_addrs = 1;
	log_info("interface addresses set", "ifname=%s ip4=%s ip6=%s", d->opts.ifname, a4, a6);
	return 0;
}

/* The interface with the node key, port, MTU and the node's addresses and routes. */
int iface_up(struct vpnd *d)
{
	struct wg_device dev;
	int rc;

	if (!d->have_keys)
		return -ENOKEY;
	if (!d->nif) {
		rc = netif_open(&d->nif);
		if (rc) {
			snprintf(d->reason, sizeof(d->reason), "cannot open rtnetlink: %s", strerror(-rc));
			return rc;
		}
	}
	memset(&dev, 0, sizeof(dev));
	if (!d->wg) {
		/* With our key: a link a vpnd killed with -9 left behind is taken back. */
		rc = wg_open(d->opts.backend, d->opts.ifname, d->keys.node_pub, &d->wg);
		if (rc) {
			snprintf(d->reason, sizeof(d->reason), "cannot create WireGuard interface %s: %s",
				 d->opts.ifname, rc == -ENOENT ? "wireguard-go is not installed"
					 : rc == -EEXIST ? "the name is taken (another vpnd or a leftover link?)"
					 : strerror(-rc));
			return rc;
		}
		wgsync_attach(&d->sync, set_device, d->wg);
		wgsync_set_self(&d->sync, d->keys.node_pub);
		d->have_addrs = 0;
		memcpy(dev.private_key, d->keys.node_priv, KEY_LEN);
		dev.listen_port = d->opts.port;
		dev.flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_REPLACE_PEERS;
		rc = wg_set_device(d->wg, &dev);
		sodium_memzero(dev.private_key, sizeof(dev.private_key));
		if (rc) {
			snprintf(d->reason, sizeof(d->reason), "cannot configure %s: %s", d->opts.ifname,
				 strerror(-rc));
			goto err;
		}
		memcpy(d->wg_pub, d->keys.node_pub, KEY_LEN);
		rc = netif_index(d->nif, d->opts.ifname);
		if (rc < 0) {
			snprintf(d->reason, sizeof(d->reason), "interface %s vanished", d->opts.ifname);
			goto err;
		}
		d->ifindex = rc;
		rc = netif_set_mtu(d->nif, d->ifindex, NETIF_DEFAULT_MTU);
		if (!rc)
			rc = netif_set_up(d->nif, d->ifindex, 1);
		if (rc) {
			snprintf(d->reason, sizeof(d->reason), "cannot bring %s up: %s", d->opts.ifname,
				 strerror(-rc));
			goto err;
		}
		log_info("interface up", "ifname=%s backend=%s port=%u mtu=%d", d->opts.ifname,
			 wg_backend_name(d->wg), d->opts.port, NETIF_DEFAULT_MTU);
	} else if (memcmp(d->wg_pub, d->keys.node_pub, KEY_LEN)) {
		/* Re-registered after expiry with a new node key. */
		memcpy(dev.private_key, d->keys.node_priv, KEY_LEN);
		dev.flags = WG_DEVICE_HAS_PRIVATE_KEY;
		rc = wg_set_device(d->wg, &dev);
		sodium_memzero(dev.private_key, sizeof(dev.private_key));
		if (rc) {
			snprintf(d->reason, sizeof(d->reason), "cannot set the new node key: %s",
				 strerror(-rc));
			goto err;
		}
		memcpy(d->wg_pub, d->keys.node_pub, KEY_LEN);
		wgsync_set_self(&d->sync, d->keys.node_pub);
		/* Relay connections proved the old key: they start again with the new one
		 * (the daemon's next traversal_start). */
		traversal_stop(&d->tv);
		log_info("interface key changed", "ifname=%s", d->opts.ifname);
	}
	rc = set_addrs(d, &d->nm.self.ip4, &d->nm.self.ip6);
	if (rc) {
		snprintf(d->reason, sizeof(d->reason), "cannot set the addresses of %s: %s",
			 d->opts.ifname, strerror(-rc));
		goto err;
	}
	d->wg_failures = 0;
	return 0;
err:
	iface_down(d);
	return rc;
}
