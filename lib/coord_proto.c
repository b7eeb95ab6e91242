/* coord_proto.c - node states as text and the signed registration message (see
 * coord_proto.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "meshvpn/coord_proto.h"
#include "meshvpn/json.h"

static const char *const state_names[] = {
	[NODE_STATUS_UNKNOWN] = "",
	[NODE_STATUS_NEEDS_APPROVAL] = "needs-approval",
	[NODE_STATUS_RUNNING] = "running",
	[NODE_STATUS_EXPIRED] = "expired",
	[NODE_STATUS_REJECTED] = "rejected",
};

const char *node_status_name(enum node_status s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "";
}

enum node_status node_status_parse(const char *s)
{
	for (unsigned i = 1; s && i < sizeof(state_names) / sizeof(state_names[0]); i++)
		if (!strcmp(s, state_names[i]))
			return (enum node_status)i;
	return NODE_STATUS_UNKNOWN;
}

int coord_register_message(const char *challenge_hex, const char *node_key_b64,
			   const char *disco_key_b64, const char *machine_key_b64,
			   const char *hostname, const char *os, const char *auth_key,
			   char *out, size_t size)
{
	uint8_t h[HASH_LEN];
	char hh[2 * HASH_LEN + 1] = "";
	int n;

	if (auth_key && *auth_key) {
		keys_hash(auth_key, strlen(auth_key), h);
		hex_encode(h, sizeof(h), hh);
	}
	/* Newline-separated; hostname and os cannot hold newlines (coord rejects them). */
	n = snprintf(out, size, "meshvpn-register-v1\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n",
		     challenge_hex, node_key_b64, disco_key_b64, machine_key_b64,
		     hostname, os ? os : "", hh);
	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	return n;
}

json_t *coord_register_body(const struct node_keys *k, const char *challenge_hex,
			    const char *hostname, const char *os, const char *auth_key)
{
	char node[KEY_B64_LEN], disco[KEY_B64_LEN], machine[KEY_B64_LEN];
	char msg[1024], sighex[2 * SIG_LEN + 1];
	uint8_t sig[SIG_LEN];
	json_t *b;
	int n;

	key_to_base64(k->node_pub, node);
	key_to_base64(k->disco_pub, disco);
	key_to_base64(k->machine_pub, machine);
	n = coord_register_message(challenge_hex, node, disco, machine, hostname, os, auth_key,
				   msg, sizeof(msg));
	if (n < 0 || keys_sign(k->machine_sec, msg, (size_t)n, sig))
		return NULL;
	hex_encode(sig, sizeof(sig), sighex);
	b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
		      "challenge", challenge_hex, "node_key", node, "disco_key", disco,
		      "machine_key", machine, "hostname", hostname, "os", os ? os : "",
		      "signature", sighex);
	if (b && auth_key && *auth_key)
		json_object_set_new(b, "auth_key", json_string(auth_key));
	return b;
}

int coord_epoch_valid(const char *e)
{
	return e && strlen(e) == COORD_EPOCH_LEN && strspn(e, "0123456789abcdef") == COORD_EPOCH_LEN;
}

void coord_resume_query(char *out, size_t size, int64_t version, const char *epoch)
{
	if (version > 0 && coord_epoch_valid(epoch))
		snprintf(out, size, "since=%lld&epoch=%s", (long long)version, epoch);
	else if (size)
		out[0] = 0;
}
