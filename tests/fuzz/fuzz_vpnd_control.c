/* fuzz_vpnd_control.c - the parsers behind vpnd's control socket and state dir on
 * arbitrary bytes: the `up` request body (control_parse_up, accept_dns too), the prefs file
 * (prefs_parse). What they accept must be in bounds, and must survive a round trip
 * unchanged. Endpoint text is lib/addr.c's: fuzz_addr. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "vpnd/vpnd.h"

static void bounded(const char *s, size_t size)
{
	if (!memchr(s, 0, size))
		abort();
}

static void check_up(const uint8_t *data, size_t size)
{
	struct up_request r, again;
	char err[200];
	json_t *o;
	char *text;

	if (control_parse_up(data, size, &r, err, sizeof(err))) {
		bounded(err, sizeof(err));
		return;
	}
	bounded(r.coord, sizeof(r.coord));
	bounded(r.pin, sizeof(r.pin));
	bounded(r.hostname, sizeof(r.hostname));
	bounded(r.auth_key, sizeof(r.auth_key));
	if (r.coord[0] && strncasecmp(r.coord, "https://", 8))
		abort();
	if (r.pin[0] && strlen(r.pin) != 71)
		abort();
	if (r.accept_dns < -1 || r.accept_dns > 1)
		abort();
	/* What vpnctl would send for it parses to the same request. */
	o = json_object();
	if (r.coord[0])
		json_object_set_new(o, "coord", json_string(r.coord));
	if (r.pin[0])
		json_object_set_new(o, "pin", json_string(r.pin));
	if (r.hostname[0])
		json_object_set_new(o, "hostname", json_string(r.hostname));
	if (r.auth_key[0])
		json_object_set_new(o, "auth_key", json_string(r.auth_key));
	if (r.accept_dns >= 0)
		json_object_set_new(o, "accept_dns", json_boolean(r.accept_dns));
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return;
	if (control_parse_up(text, strlen(text), &again, err, sizeof(err)) ||
	    memcmp(&r, &again, sizeof(r)))
		abort();
	free(text);
	up_request_wipe(&r);
	up_request_wipe(&again);
}

static void check_prefs(const uint8_t *data, size_t size)
{
	struct vpnd_prefs p;

	if (prefs_parse((const char *)data, size, &p))
		return;
	bounded(p.coord, sizeof(p.coord));
	bounded(p.pin, sizeof(p.pin));
	bounded(p.hostname, sizeof(p.hostname));
	bounded(p.token, sizeof(p.token));
	if ((unsigned)p.node_state > NODE_STATUS_REJECTED)
		abort();
	bounded(p.name, sizeof(p.name));
	bounded(p.ip4, sizeof(p.ip4));
	bounded(p.ip6, sizeof(p.ip6));
	if (p.want_up != 0 && p.want_up != 1)
		abort();
	if (p.accept_dns != 0 && p.accept_dns != 1)
		abort();
	prefs_wipe(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_up(data, size);
	check_prefs(data, size);
	return 0;
}
