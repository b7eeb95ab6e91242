/* fuzz_coord_json.c - every JSON message coord accepts from a node or relay, through the
 * same code the API runs: registration, endpoint posts, relay pins and STUN addresses,
 * renames. The first byte picks the message; the rest is the body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coord.h"
#include "meshvpn/coord_proto.h"
#include "meshvpn/json.h"
#include "meshvpn/log.h"

static struct coord co;
static uv_loop_t loop;
static struct node *victim;
static struct relay *relay;
static char dir[64];

static void cleanup(void)
{
	char cmd[128];

	coord_close(&co);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		return;
}

static int init(void)
{
	struct coord_opts opts = { .key_expiry = 3600, .ephemeral_timeout = 60, .keepalive = 30 };
	struct node_keys k;
	uint8_t ch[32];
	char hex[65], err[200], key[COORD_TOKEN_MAX], tok[COORD_TOKEN_MAX];
	json_t *body, *ans = NULL;

	keys_init();
	log_set_level(LOG_ERROR);
	snprintf(dir, sizeof(dir), "/tmp/fuzz_coord.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	opts.state_dir = dir;
	uv_loop_init(&loop);
	if (coord_open(&co, &loop, &opts))
		abort();
	atexit(cleanup);
	/* One approved node and one relay for the messages that need a sender. */
	if (coord_authkey_create(&co, 1, 0, 0, "", key, sizeof(key), NULL))
		abort();
	node_keys_generate(&k);
	coord_challenge_new(&co, ch);
	hex_encode(ch, 32, hex);
	body = coord_register_body(&k, hex, "victim", "linux", key);
	if (coord_register(&co, body, &ans, err, sizeof(err)))
		abort();
	json_decref(body);
	json_decref(ans);
	victim = coord_node_find(&co, "victim");
	if (coord_relay_add(&co, "r", "https://relay.test", NULL, tok, sizeof(tok), err, sizeof(err)))
		abort();
	relay = coord_relay_by_token(&co, tok);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char err[200], tok[COORD_TOKEN_MAX];
	json_t *msg, *ans = NULL;
	const char *s;

	if (!ready)
		ready = !init();
	if (size < 1)
		return 0;
	msg = json_parse_object(data + 1, size - 1, err, sizeof(err));
	if (!msg)
		return 0;
	switch (data[0] % 4) {
	case 0:
		/* Registration: a real challenge so the parser gets past it; the signature
		 * will not verify unless the input is a valid one, which is also fine. */
		if (json_get_str(msg, "challenge", &s) == 0) {
			uint8_t ch[32];
			char hex[65];
			coord_challenge_new(&co, ch);
			hex_encode(ch, 32, hex);
			json_object_set_new(msg, "challenge", json_string(hex));
		}
		if (coord_register(&co, msg, &ans, err, sizeof(err)) == 0) {
			struct node *n = coord_node_by_token(&co, json_string_value(json_object_get(ans, "token")));
			if (n && n != victim)
				coord_node_delete(&co, n);
		}
		json_decref(ans);
		break;
	case 1:
		coord_node_set_endpoints(&co, victim, msg, err, sizeof(err));
		break;
	case 2:
		coord_relay_report(&co, relay, msg, err, sizeof(err));
		/* An admin's relay with a STUN address: the relay map must stay bounded. */
		if (json_get_str(msg, "stun", &s) == 0 &&
		    coord_relay_add(&co, "s", "https://[2001:db8::1]:8443", s, tok, sizeof(tok), err,
				    sizeof(err)) == 0) {
			json_decref(netmap_relays_json(&co));
			coord_relay_remove(&co, "s");
		}
		break;
	case 3:
		if (json_get_str(msg, "name", &s) == 0 &&
		    coord_node_rename(&co, victim, s, err, sizeof(err)) == 0)
			coord_node_rename(&co, victim, "victim", err, sizeof(err));
		break;
	}
	json_decref(msg);
	return 0;
}
