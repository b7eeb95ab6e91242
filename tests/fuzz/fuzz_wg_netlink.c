/* fuzz_wg_netlink.c - the WG_CMD_GET_DEVICE dump parser on arbitrary datagrams. What it
 * accepts must be a sane device (families, prefix lengths), and must survive the
 * SET_DEVICE builder and the parser again with the same peers and allowed IPs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/wireguard.h>

#include "vpnd/wg_netlink.h"

#define FAMILY 0x1d

static void check_sane(const struct wg_device *dev)
{
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct wg_peer *p = &dev->peers[i];

		if (i && !memcmp(p->public_key, dev->peers[i - 1].public_key, WG_KEY_LEN))
			abort();   /* a continuation must have been merged */
		for (size_t j = 0; j < p->n_allowedips; j++) {
			const struct wg_allowedip *a = &p->allowedips[j];

			if (!((a->family == AF_INET && a->cidr <= 32) ||
			      (a->family == AF_INET6 && a->cidr <= 128)))
				abort();
		}
	}
}

/* SET_DEVICE messages of dev, turned into a dump and parsed again. */
static void roundtrip(const struct wg_device *dev)
{
	static uint8_t msg[4096];
	struct wg_nl_set_iter it;
	struct wg_device *again = wg_device_new();
	int len;

	if (!again)
		return;
	wg_nl_set_iter_init(&it, dev, "wg0", FAMILY, 1);
	while ((len = wg_nl_set_next(&it, msg, sizeof(msg))) > 0) {
		struct nlmsghdr *nlh = (struct nlmsghdr *)msg;
		struct genlmsghdr *genl = (struct genlmsghdr *)(msg + NLMSG_HDRLEN);

		genl->cmd = WG_CMD_GET_DEVICE;
		nlh->nlmsg_flags = NLM_F_MULTI;
		if (wg_nl_parse_dump(msg, (size_t)len, FAMILY, 0, 0, again) != 1)
			abort();
	}
	if (len < 0)
		abort();
	if (again->n_peers != dev->n_peers)
		abort();
	for (size_t i = 0; i < dev->n_peers; i++)
		if (again->peers[i].n_allowedips != dev->peers[i].n_allowedips)
			abort();
	wg_device_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wg_device *dev = wg_device_new();
	uint8_t *buf = malloc(size ? size : 1);     /* aligned, as a recv buffer is */
	int rc;

	if (!dev || !buf)
		goto out;
	memcpy(buf, data, size);
	rc = wg_nl_parse_dump(buf, size, 0, 0, 0, dev);
	if (rc >= 0) {
		check_sane(dev);
		roundtrip(dev);
	}
out:
	free(buf);
	wg_device_free(dev);
	return 0;
}
