/* fuzz_wg_uapi.c - the wireguard-go UAPI answer parsers (get and errno) on arbitrary
 * text. A device it accepts must build into "set=1" text that parses back to the same
 * peers and allowed IPs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "vpnd/wg_uapi.h"

static void roundtrip(const struct wg_device *dev)
{
	struct wg_device *again = wg_device_new();
	char *text = NULL, *answer = NULL;
	size_t len = 0, alen;

	if (!again)
		return;
	if (wg_uapi_build_set(dev, &text, &len))
		abort();
	/* "set=1\n" off, "errno=0\n" before the blank line: a get answer. */
	answer = malloc(len + 16);
	if (!answer)
		goto out;
	memcpy(answer, text + 6, len - 7);
	alen = len - 7 + (size_t)sprintf(answer + len - 7, "errno=0\n\n");
	if (wg_uapi_parse_get(answer, alen, again))
		abort();
	if (again->n_peers != dev->n_peers)
		abort();
	for (size_t i = 0; i < dev->n_peers; i++)
		if (again->peers[i].n_allowedips != dev->peers[i].n_allowedips ||
		    memcmp(again->peers[i].public_key, dev->peers[i].public_key, WG_KEY_LEN))
			abort();
out:
	if (text) {
		sodium_memzero(text, len);
		free(text);
	}
	free(answer);
	wg_device_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wg_device *dev = wg_device_new();

	if (!dev)
		return 0;
	wg_uapi_parse_errno((const char *)data, size);
	if (!wg_uapi_parse_get((const char *)data, size, dev))
		roundtrip(dev);
	wg_device_free(dev);
	return 0;
}
