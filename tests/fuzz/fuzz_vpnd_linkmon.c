/* fuzz_vpnd_linkmon.c - vpnd's rtnetlink event filter (vpnd/linkmon.c) on arbitrary
 * datagrams. It must answer a count or -EBADMSG, at most one event per message header;
 * the same input from the same state gives the same answer; skipping an interface never
 * changes what is malformed and never adds events; a learned index is positive. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netlink.h>

#include "vpnd/linkmon.h"

#define OWN "meshvpn0"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct linkmon_skip skip = { .ifname = OWN }, again = { .ifname = OWN }, none = { 0 };
	uint8_t *buf = malloc(size ? size : 1);     /* aligned, as a recv buffer is */
	int rc, rc_again, rc_none;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	rc = linkmon_parse(buf, size, &skip);
	if (rc < 0 && rc != -EBADMSG)
		abort();
	if (rc > 0 && (size_t)rc > size / NLMSG_HDRLEN)
		abort();
	if (strcmp(skip.ifname, OWN) || skip.ifindex < 0)
		abort();
	rc_again = linkmon_parse(buf, size, &again);
	if (rc_again != rc || again.ifindex != skip.ifindex)
		abort();
	rc_none = linkmon_parse(buf, size, &none);
	if ((rc < 0) != (rc_none < 0) || (rc >= 0 && rc_none < rc) || none.ifindex != 0)
		abort();
	/* The input is never written to. */
	if (size && memcmp(buf, data, size))
		abort();
	free(buf);
	return 0;
}
