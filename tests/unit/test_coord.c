/* test_coord.c - unit tests for coord's model: IP allocation, names,
 * registration (auth keys, challenges, signatures), approval, expiry, deletion, relays
 * and their STUN addresses, and that everything survives a reopen of the store. Netmap streams are covered end to
 * end in tests/e2e/coord.sh; the key map has test_keymap.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "coord.h"
#include "meshvpn/coord_proto.h"
#include "meshvpn/json.h"
#include "meshvpn/log.h"

struct fixture {
	char dir[64];
	uv_loop_t loop;
	struct coord co;
	struct coord_opts opts;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_coord.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	uv_loop_init(&f->loop);
	f->opts.state_dir = f->dir;
	f->opts.key_expiry = 3600;
	f->opts.ephemeral_timeout = 0;
	f->opts.keepalive = 30;
	if (coord_open(&f->co, &f->loop, &f->opts))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	coord_close(&f->co);
	uv_loop_close(&f->loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd))
		return -1;
	free(f);
	return 0;
}

/* Registers k as hostname; returns the HTTP status it is answered with (0 = ok) and the
 * answer. */
static int reg(struct fixture *f, struct node_keys *k, const char *host, const char *auth,
	       json_t **ans)
{
	uint8_t ch[32];
	char hex[65], err[200];
	json_t *body;
	int rc;

	assert_int_equal(coord_challenge_new(&f->co, ch), 0);
	hex_encode(ch, 32, hex);
	body = coord_register_body(k, hex, host, "linux", auth);
	*ans = NULL;
	rc = coord_register(&f->co, body, ans, err, sizeof(err));
	json_decref(body);
	return rc ? api_status(rc) : 0;
}

static const char *ans_str(json_t *a, const char *k)
{
	return json_string_value(json_object_get(a, k));
}

/* Two instances walk next-fit from the same place; the one that lost an address to the
 * other jumps ahead so that its retry does not pick the other's next one again. */
static void test_ipalloc_scatter(void **state)
{
	struct fixture *f = *state;
	uint32_t a, b;

	for (int i = 0; i < 50; i++) {
		assert_int_equal(ipalloc_take(&f->co, &a), 0);
		ipalloc_scatter(&f->co);
		assert_int_equal(ipalloc_take(&f->co, &b), 0);
		/* not a + 1, the address the other instance takes next */
		assert_true(b > a + 1 && b <= a + 1025);
		assert_true(b < 0x64800000u);
	}
}

static void test_ipalloc_unique_and_reserved(void **state)
{
	struct fixture *f = *state;
	uint32_t a, b;
	uint8_t v6[16];
	char text[64];

	assert_int_equal(ipalloc_take(&f->co, &a), 0);
	assert_int_equal(ipalloc_take(&f->co, &b), 0);
	assert_true(a != b);
	assert_true(a >= 0x64400001u && a < 0x64800000u);
	assert_int_equal(ipalloc_mark(&f->co, a), -EEXIST);
	assert_int_equal(ipalloc_mark(&f->co, 0x64646464u), -EINVAL);  /* the DNS resolver */
	assert_int_equal(ipalloc_mark(&f->co, 0x0a000001u), -EINVAL);
	ipalloc_release(&f->co, a);
	assert_int_equal(ipalloc_mark(&f->co, a), 0);
	ipalloc_v6(&f->co, 0x64400001u, v6);
	assert_int_equal(v6[0], 0xfd);
	assert_int_equal(v6[15], 1);
	ip4_to_text(0x64400001u, text, sizeof(text));
	assert_string_equal(text, "100.64.0.1");
}

static void test_sanitize_label(void **state)
{
	char out[64];

	(void)state;
	coord_sanitize_label("My Laptop", out, sizeof(out));
	assert_string_equal(out, "my-laptop");
	coord_sanitize_label("host.example.com", out, sizeof(out));
	assert_string_equal(out, "host");
	coord_sanitize_label("--x__y--", out, sizeof(out));
	assert_string_equal(out, "x-y");
	coord_sanitize_label("", out, sizeof(out));
	assert_string_equal(out, "node");
	coord_sanitize_label("\xff\xfe", out, sizeof(out));
	assert_string_equal(out, "node");
}

/* The state names are the JSON and metrics text: they must not change. */
static void test_coord_node_state_names(void **state)
{
	static const char *const names[] = { "needs-approval", "running", "expired", "rejected" };

	(void)state;
	for (int i = 0; i < 4; i++) {
		assert_string_equal(node_status_name(NODE_STATUS_NEEDS_APPROVAL + i), names[i]);
		assert_int_equal(node_status_parse(names[i]), NODE_STATUS_NEEDS_APPROVAL + i);
	}
	assert_int_equal(node_status_parse("approved"), NODE_STATUS_UNKNOWN);
	assert_int_equal(node_status_parse(""), NODE_STATUS_UNKNOWN);
	assert_int_equal(node_status_parse(NULL), NODE_STATUS_UNKNOWN);
	assert_string_equal(node_status_name(NODE_STATUS_UNKNOWN), "");
	assert_string_equal(node_status_name((enum node_status)99), "");
}

static void test_coord_register_with_key_runs(void **state)
{
	struct fixture *f = *state;
	char key[COORD_TOKEN_MAX];
	struct node_keys k;
	json_t *a;
	struct authkey *ak;

	assert_int_equal(coord_authkey_create(&f->co, 0, 0, 0, "", key, sizeof(key), &ak), 0);
	node_keys_generate(&k);
	assert_int_equal(reg(f, &k, "Web One", key, &a), 0);
	assert_string_equal(ans_str(a, "state"), "running");
	assert_string_equal(ans_str(a, "name"), "web-one");
	struct node *n = coord_node_by_token(&f->co, ans_str(a, "token"));
	assert_non_null(n);
	assert_true(coord_node_visible(n));
	assert_true(n->rec.key_expiry > coord_now());
	assert_int_equal(ak->rec.uses, 1);
	json_decref(a);

	/* Single use: a second node is refused. */
	struct node_keys k2;
	node_keys_generate(&k2);
	assert_int_equal(reg(f, &k2, "two", key, &a), 401);
	assert_int_equal(coord_authkey_revoke(&f->co, ak), 0);
}

static void test_coord_pending_then_approved(void **state)
{
	struct fixture *f = *state;
	struct node_keys k;
	json_t *a;
	struct node *n;

	node_keys_generate(&k);
	assert_int_equal(reg(f, &k, "home", NULL, &a), 0);
	assert_string_equal(ans_str(a, "state"), "needs-approval");
	assert_string_equal(ans_str(a, "approve_command"), "coord nodes approve home");
	n = coord_node_find(&f->co, "home");
	assert_non_null(n);
	assert_false(coord_node_visible(n));
	assert_int_equal(coord_node_approve(&f->co, n), 0);
	assert_true(coord_node_visible(n));
	assert_int_equal(coord_node_state(n), NODE_STATUS_RUNNING);
	assert_string_equal(node_status_name(coord_node_state(n)), "running");
	json_decref(a);
}

static void test_coord_challenge_is_single_use(void **state)
{
	struct fixture *f = *state;
	struct node_keys k;
	uint8_t ch[32];
	char hex[65], err[200];
	json_t *body, *a = NULL;

	node_keys_generate(&k);
	assert_int_equal(coord_challenge_new(&f->co, ch), 0);
	hex_encode(ch, 32, hex);
	body = coord_register_body(&k, hex, "replay", "linux", NULL);
	assert_int_equal(coord_register(&f->co, body, &a, err, sizeof(err)), 0);
	json_decref(a);
	a = NULL;
	assert_int_equal(api_status(coord_register(&f->co, body, &a, err, sizeof(err))), 401);
	assert_null(a);
	/* An unknown challenge, validly signed, is refused too. */
	json_decref(body);
	body = coord_register_body(&k, "0000000000000000000000000000000000000000000000000000000000000000",
				   "replay", "linux", NULL);
	assert_int_equal(api_status(coord_register(&f->co, body, &a, err, sizeof(err))), 401);
	json_decref(body);
}

static void test_coord_bad_signature_refused(void **state)
{
	struct fixture *f = *state;
	struct node_keys k, other;
	uint8_t ch[32];
	char hex[65], err[200], b64[KEY_B64_LEN];
	json_t *body, *a = NULL;

	node_keys_generate(&k);
	node_keys_generate(&other);
	assert_int_equal(coord_challenge_new(&f->co, ch), 0);
	hex_encode(ch, 32, hex);
	body = coord_register_body(&k, hex, "sig", "linux", NULL);
	/* Claim someone else's machine key. */
	key_to_base64(other.machine_pub, b64);
	json_object_set_new(body, "machine_key", json_string(b64));
	assert_int_equal(api_status(coord_register(&f->co, body, &a, err, sizeof(err))), 401);
	json_decref(body);
	/* Malformed fields are a 400. */
	body = json_pack("{s:s}", "challenge", "zz");
	assert_int_equal(api_status(coord_register(&f->co, body, &a, err, sizeof(err))), 400);
	json_decref(body);
}

/* A fresh challenge's hex and a body for k signed over it. */
static json_t *signed_body(struct fixture *f, const struct node_keys *k, const char *host)
{
	uint8_t ch[32];
	char hex[65];

	assert_int_equal(coord_challenge_new(&f->co, ch), 0);
	hex_encode(ch, 32, hex);
	return coord_register_body(k, hex, host, "linux", NULL);
}

/* parse checks form only, in a fixed order, and says what is wrong. */
static void test_coord_register_parse(void **state)
{
	struct fixture *f = *state;
	struct coord_reg g;
	struct node_keys k;
	char err[200];
	json_t *body;

	node_keys_generate(&k);
	body = signed_body(f, &k, "parsed");
	assert_int_equal(coord_register_parse(body, &g, err, sizeof(err)), 0);
	assert_string_equal(g.hostname, "parsed");
	assert_string_equal(g.os, "linux");
	assert_null(g.auth_key);
	assert_memory_equal(g.node_key, k.node_pub, KEY_LEN);
	assert_memory_equal(g.machine_key, k.machine_pub, KEY_LEN);
	assert_null(g.node);
	assert_null(g.ak);

	json_object_set_new(body, "os", json_string("an os name far longer than thirty-one chars"));
	assert_int_equal(coord_register_parse(body, &g, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "os and auth_key must be short strings");
	json_object_set_new(body, "os", json_integer(1));
	assert_int_equal(coord_register_parse(body, &g, err, sizeof(err)), -EINVAL);
	json_object_del(body, "os");
	assert_int_equal(coord_register_parse(body, &g, err, sizeof(err)), 0);
	assert_string_equal(g.os, "");

	json_object_set_new(body, "disco_key", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
	assert_int_equal(coord_register_parse(body, &g, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "all-zero keys are not accepted");
	json_object_del(body, "signature");
	assert_int_equal(coord_register_parse(body, &g, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "registration needs challenge"));
	json_decref(body);
}

/* verify: the challenge is used up even when a later check fails; a taken node key and
 * a rejected machine have their own errors. */
static void test_coord_register_verify(void **state)
{
	struct fixture *f = *state;
	struct node_keys k1, k2;
	struct coord_reg g;
	char err[200];
	json_t *body, *a;
	struct node *n;

	node_keys_generate(&k1);
	node_keys_generate(&k2);
	assert_int_equal(reg(f, &k1, "first", NULL, &a), 0);
	json_decref(a);
	n = coord_node_find(&f->co, "first");

	body = signed_body(f, &k1, "first");
	assert_int_equal(coord_register_parse(body, &g, err, sizeof(err)), 0);
	assert_int_equal(coord_register_verify(&f->co, &g, err, sizeof(err)), 0);
	assert_ptr_equal(g.node, n);
	assert_int_equal(coord_register_verify(&f->co, &g, err, sizeof(err)), -EACCES);
	assert_string_equal(err, "unknown or already used challenge: ask for a new one");
	json_decref(body);

	/* Another machine claiming first's node key. */
	memcpy(k2.node_pub, k1.node_pub, KEY_LEN);
	body = signed_body(f, &k2, "second");
	assert_int_equal(coord_register_parse(body, &g, err, sizeof(err)), 0);
	assert_int_equal(coord_register_verify(&f->co, &g, err, sizeof(err)), -EEXIST);
	assert_string_equal(err, "node key already belongs to another node");
	json_decref(body);

	assert_int_equal(coord_node_reject(&f->co, n), 0);
	body = signed_body(f, &k1, "first");
	assert_int_equal(coord_register_parse(body, &g, err, sizeof(err)), 0);
	assert_int_equal(coord_register_verify(&f->co, &g, err, sizeof(err)), -EPERM);
	assert_string_equal(err, "this machine was rejected by an admin");
	assert_int_equal(api_status(coord_register_verify(&f->co, &g, err, sizeof(err))), 401);
	json_decref(body);
	assert_int_equal(api_status(-EPERM), 403);
	assert_int_equal(api_status(-EEXIST), 409);
	assert_int_equal(api_status(-ENOSPC), 503);
	assert_int_equal(api_status(-EIO), 500);
}

/* Approves the node of k and returns its entry as an admin sees it. */
static json_t *approved_json(struct fixture *f, const struct node_keys *k)
{
	struct node *n = keymap_get(&f->co.by_machine_key, k->machine_pub);

	assert_non_null(n);
	assert_int_equal(coord_node_approve(&f->co, n), 0);
	return netmap_node_json(&f->co, n, 1);
}

static void test_coord_names_are_unique(void **state)
{
	struct fixture *f = *state;
	struct node_keys k1, k2, k3;
	json_t *a1, *a2, *a3;

	node_keys_generate(&k1);
	node_keys_generate(&k2);
	node_keys_generate(&k3);
	assert_int_equal(reg(f, &k1, "box", NULL, &a1), 0);
	assert_int_equal(reg(f, &k2, "box", NULL, &a2), 0);
	assert_int_equal(reg(f, &k3, "BOX", NULL, &a3), 0);
	/* Pending nodes get their names (and addresses) when approved, in that order; the
	 * answers are those of the approved nodes, as an admin sees them. */
	json_decref(a1);
	json_decref(a2);
	json_decref(a3);
	a1 = approved_json(f, &k1);
	a2 = approved_json(f, &k2);
	a3 = approved_json(f, &k3);
	assert_string_equal(ans_str(a1, "name"), "box");
	assert_string_equal(ans_str(a2, "name"), "box-2");
	assert_string_equal(ans_str(a3, "name"), "box-3");
	/* Different addresses too. */
	assert_string_not_equal(json_string_value(json_array_get(json_object_get(a1, "ips"), 0)),
				json_string_value(json_array_get(json_object_get(a2, "ips"), 0)));
	json_decref(a1);
	json_decref(a2);
	json_decref(a3);
}

static void test_coord_expire_and_reauth(void **state)
{
	struct fixture *f = *state;
	char key[COORD_TOKEN_MAX];
	struct node_keys k;
	json_t *a;
	struct node *n;
	char ip[16];

	assert_int_equal(coord_authkey_create(&f->co, 1, 0, 0, "", key, sizeof(key), NULL), 0);
	node_keys_generate(&k);
	assert_int_equal(reg(f, &k, "exp", key, &a), 0);
	snprintf(ip, sizeof(ip), "%s", json_string_value(json_array_get(json_object_get(a, "ips"), 0)));
	json_decref(a);
	n = coord_node_find(&f->co, "exp");
	assert_int_equal(coord_node_expire(&f->co, n), 0);
	assert_int_equal(coord_node_state(n), NODE_STATUS_EXPIRED);
	assert_string_equal(node_status_name(coord_node_state(n)), "expired");
	assert_false(coord_node_visible(n));
	/* Back with a fresh node key and no auth key: an admin must approve again. */
	node_keys_rotate(f->dir, &k);
	assert_int_equal(reg(f, &k, "exp", NULL, &a), 0);
	assert_string_equal(ans_str(a, "state"), "needs-approval");
	json_decref(a);
	/* With an auth key it runs at once, same name and address. */
	assert_int_equal(reg(f, &k, "exp", key, &a), 0);
	assert_string_equal(ans_str(a, "state"), "running");
	assert_string_equal(ans_str(a, "name"), "exp");
	assert_string_equal(json_string_value(json_array_get(json_object_get(a, "ips"), 0)), ip);
	json_decref(a);
}

static void test_coord_delete_invalidates_token(void **state)
{
	struct fixture *f = *state;
	struct node_keys k;
	json_t *a;
	char token[COORD_TOKEN_MAX];

	node_keys_generate(&k);
	assert_int_equal(reg(f, &k, "gone", NULL, &a), 0);
	snprintf(token, sizeof(token), "%s", ans_str(a, "token"));
	json_decref(a);
	assert_non_null(coord_node_by_token(&f->co, token));
	assert_int_equal(coord_node_delete(&f->co, coord_node_find(&f->co, "gone")), 0);
	assert_null(coord_node_by_token(&f->co, token));
	assert_null(coord_node_find(&f->co, "gone"));
}

static void test_coord_state_survives_reopen(void **state)
{
	struct fixture *f = *state;
	char key[COORD_TOKEN_MAX], token[COORD_TOKEN_MAX];
	struct node_keys k;
	json_t *a;
	uint32_t ip;
	uint8_t ula[6];

	assert_int_equal(coord_authkey_create(&f->co, 0, 0, 0, "tag:web", key, sizeof(key), NULL), 0);
	node_keys_generate(&k);
	assert_int_equal(reg(f, &k, "keep", key, &a), 0);
	snprintf(token, sizeof(token), "%s", ans_str(a, "token"));
	json_decref(a);
	ip = coord_node_find(&f->co, "keep")->rec.ipv4;
	memcpy(ula, f->co.ula, 6);
	coord_close(&f->co);
	assert_int_equal(coord_open(&f->co, &f->loop, &f->opts), 0);
	struct node *n = coord_node_by_token(&f->co, token);
	assert_non_null(n);
	assert_string_equal(n->rec.name, "keep");
	assert_int_equal(n->rec.ipv4, ip);
	assert_string_equal(n->rec.tags, "tag:web");
	assert_memory_equal(f->co.ula, ula, 6);
	assert_true(coord_node_visible(n));
	/* The used single-use key stays used. */
	struct node_keys k2;
	node_keys_generate(&k2);
	assert_int_equal(reg(f, &k2, "again", key, &a), 401);
}

static int dns_edit(struct fixture *f, const char *kind, int add, json_t *body, char *err)
{
	int rc = coord_dns_edit(&f->co, kind, add, body, NULL, err, 200);

	json_decref(body);
	return rc;
}

/* The DNS policy: canonical entries, duplicates, caps, tag-scoped rules in a node's view,
 * and everything back after a reopen. */
static void test_coord_dns_policy(void **state)
{
	struct fixture *f = *state;
	char key[COORD_TOKEN_MAX], err[200];
	struct node_keys kk, ka;
	struct node *kid, *adult;
	json_t *a, *v;

	assert_int_equal(dns_edit(f, "upstreams", 1, json_pack("{s:s}", "upstream", "192.0.2.1"), err), 0);
	assert_int_equal(dns_edit(f, "upstreams", 1, json_pack("{s:s}", "upstream", "192.0.2.1:53"), err),
			 -EEXIST);
	assert_int_equal(dns_edit(f, "upstreams", 1, json_pack("{s:s}", "upstream", "2001:db8::1"), err),
			 -EINVAL);
	assert_non_null(strstr(err, "in brackets"));
	assert_int_equal(dns_edit(f, "upstreams", 1, json_pack("{s:s}", "upstream",
				  "tls://[2001:db8::2]#dns.example"), err), 0);
	assert_int_equal(dns_edit(f, "routes", 1, json_pack("{s:s, s:s}", "domain", "service.consul",
				  "server", "127.0.0.1:8600"), err), 0);
	assert_int_equal(dns_edit(f, "routes", 1, json_pack("{s:s, s:s}", "domain", "service.consul",
				  "server", "127.0.0.2:8600"), err), 0);
	assert_int_equal(dns_edit(f, "blocklists", 1, json_pack("{s:s, s:s}", "source",
				  "https://lists.example/ads.txt", "tag", "tag:kids"), err), 0);
	assert_int_equal(dns_edit(f, "blocklists", 1, json_pack("{s:s}", "source", "lists/rel"), err),
			 -EINVAL);
	assert_int_equal(dns_edit(f, "block", 1, json_pack("{s:s, s:s}", "domain", "games.example",
				  "tag", "tag:kids"), err), 0);
	assert_int_equal(dns_edit(f, "block", 1, json_pack("{s:s}", "domain", "ads.example"), err), 0);
	assert_int_equal(dns_edit(f, "allow", 1, json_pack("{s:s, s:s}", "domain", "x.example", "tag",
				  "kids"), err), -EINVAL);
	assert_int_equal(dns_edit(f, "records", 1, json_pack("{s:s, s:s, s:s}", "name", "nas.home",
				  "type", "a", "value", "192.0.2.9"), err), 0);
	assert_int_equal(dns_edit(f, "records", 1, json_pack("{s:s, s:s, s:s}", "name", "nas.home",
				  "type", "MX", "value", "x"), err), -EINVAL);
	assert_int_equal(dns_edit(f, "records", 0, json_pack("{s:s, s:s, s:s}", "name", "nas.home",
				  "type", "A", "value", "192.0.2.8"), err), -ENOENT);
	assert_int_equal(coord_dns_set_mode(&f->co, "nxdomain", err, sizeof(err)), 0);
	assert_int_equal(coord_dns_set_mode(&f->co, "refused", err, sizeof(err)), -EINVAL);
	assert_int_equal(coord_dns_set_domain(&f->co, "Corp.Example", err, sizeof(err)), 0);
	assert_int_equal(coord_dns_set_domain(&f->co, "no spaces", err, sizeof(err)), -EINVAL);
	assert_string_equal(f->co.domain, "corp.example");
	/* caps */
	for (int i = 2; i < COORD_DNS_MAX_UPSTREAMS; i++) {
		char up[32];
		snprintf(up, sizeof(up), "198.51.100.%d", i);
		assert_int_equal(dns_edit(f, "upstreams", 1, json_pack("{s:s}", "upstream", up), err), 0);
	}
	assert_int_equal(dns_edit(f, "upstreams", 1, json_pack("{s:s}", "upstream", "203.0.113.1"), err),
			 -E2BIG);
	assert_int_equal(api_status(-E2BIG), 400);
	assert_non_null(strstr(err, "64 upstreams"));

	/* a node's view: its tags' rules and the untagged ones */
	assert_int_equal(coord_authkey_create(&f->co, 1, 0, 0, "tag:kids", key, sizeof(key), NULL), 0);
	node_keys_generate(&kk);
	assert_int_equal(reg(f, &kk, "kid", key, &a), 0);
	json_decref(a);
	assert_int_equal(coord_authkey_create(&f->co, 1, 0, 0, "", key, sizeof(key), NULL), 0);
	node_keys_generate(&ka);
	assert_int_equal(reg(f, &ka, "adult", key, &a), 0);
	json_decref(a);
	kid = coord_node_find(&f->co, "kid");
	adult = coord_node_find(&f->co, "adult");
	v = coord_dns_node_json(&f->co, kid);
	assert_int_equal(json_array_size(json_object_get(v, "block")), 2);
	assert_string_equal(json_string_value(json_object_get(v, "blocking_mode")), "nxdomain");
	assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(v, "routes"), 0),
						      "servers")), 2);
	json_decref(v);
	v = coord_dns_node_json(&f->co, adult);
	assert_int_equal(json_array_size(json_object_get(v, "block")), 1);
	assert_int_equal(json_array_size(json_object_get(v, "upstreams")), COORD_DNS_MAX_UPSTREAMS);
	json_decref(v);

	/* everything survives a reopen */
	v = coord_dns_json(&f->co);
	coord_close(&f->co);
	assert_int_equal(coord_open(&f->co, &f->loop, &f->opts), 0);
	a = coord_dns_json(&f->co);
	assert_true(json_equal(a, v));
	json_decref(a);
	json_decref(v);
	assert_int_equal(dns_edit(f, "block", 0, json_pack("{s:s, s:s}", "domain", "games.example",
				  "tag", "tag:kids"), err), 0);
	v = coord_dns_node_json(&f->co, coord_node_find(&f->co, "kid"));
	assert_int_equal(json_array_size(json_object_get(v, "block")), 1);
	json_decref(v);
}

static void test_coord_ephemeral_removed_by_tick(void **state)
{
	struct fixture *f = *state;
	char key[COORD_TOKEN_MAX];
	struct node_keys k;
	json_t *a;
	struct node *n;

	assert_int_equal(coord_authkey_create(&f->co, 0, 1, 0, "", key, sizeof(key), NULL), 0);
	node_keys_generate(&k);
	assert_int_equal(reg(f, &k, "eph", key, &a), 0);
	json_decref(a);
	n = coord_node_find(&f->co, "eph");
	assert_true(n->rec.ephemeral);
	n->disconnected_at = coord_now() - 1;
	coord_tick(&f->co);
	assert_null(coord_node_find(&f->co, "eph"));
}

static void test_coord_relay_tokens(void **state)
{
	struct fixture *f = *state;
	char tok[COORD_TOKEN_MAX], err[200];

	assert_int_equal(coord_relay_add(&f->co, "fra", "https://relay.example.test", NULL, tok,
					 sizeof(tok), err, sizeof(err)), 0);
	assert_non_null(coord_relay_by_token(&f->co, tok));
	assert_null(coord_relay_by_token(&f->co, "mvpn-relay-00"));
	assert_int_equal(coord_relay_add(&f->co, "fra", "https://x.test", NULL, tok, sizeof(tok),
					 err, sizeof(err)), -EEXIST);
	assert_int_equal(coord_relay_add(&f->co, "Bad Name", "https://x.test", NULL, tok,
					 sizeof(tok), err, sizeof(err)), -EINVAL);
	assert_int_equal(coord_relay_remove(&f->co, "fra"), 0);
	assert_int_equal(coord_relay_remove(&f->co, "fra"), -ENOENT);
}

/* The relay map entry i's "stun". */
static const char *map_stun(struct fixture *f, size_t i, char *out, size_t size)
{
	json_t *a = netmap_relays_json(&f->co);

	snprintf(out, size, "%s", json_string_value(json_object_get(json_array_get(a, i), "stun")));
	json_decref(a);
	return out;
}

static void test_coord_relay_stun(void **state)
{
	struct fixture *f = *state;
	char tok[COORD_TOKEN_MAX], err[200], stun[COORD_STUN_TEXT_MAX];
	static const char pin[] = "sha256:00000000000000000000000000000000"
				  "00000000000000000000000000000000";
	static const char *const bad[] = { "relay.test", "relay.test:0", ":3478", "2001:db8::1:3478",
					   "[relay.test]:3478", "[fe80::1%eth0]:3478",
					   "relay test:3478", "relay.test:65536", "relay/x:1" };
	json_t *b;

	assert_int_equal(coord_relay_add(&f->co, "fra", "https://relay.example.test:8443", NULL,
					 tok, sizeof(tok), err, sizeof(err)), 0);
	assert_string_equal(map_stun(f, 0, stun, sizeof(stun)), "relay.example.test:3478");
	assert_int_equal(coord_relay_add(&f->co, "ams", "https://[2001:db8::5]", "", tok,
					 sizeof(tok), err, sizeof(err)), 0);
	assert_string_equal(map_stun(f, 1, stun, sizeof(stun)), "[2001:db8::5]:3478");
	assert_int_equal(coord_relay_add(&f->co, "nyc", "https://nyc.example.test",
					 "stun.example.test:3479", tok, sizeof(tok), err,
					 sizeof(err)), 0);
	assert_string_equal(map_stun(f, 2, stun, sizeof(stun)), "stun.example.test:3479");
	assert_int_equal(coord_relay_add(&f->co, "sin", "https://sin.example.test",
					 "[2001:db8::9]:3478", tok, sizeof(tok), err, sizeof(err)), 0);
	assert_string_equal(map_stun(f, 3, stun, sizeof(stun)), "[2001:db8::9]:3478");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(coord_relay_add(&f->co, "bad", "https://bad.test", bad[i], tok,
						 sizeof(tok), err, sizeof(err)), -EINVAL);
	assert_null(coord_relay_by_token(&f->co, "mvpn-relay-00"));

	/* A relay reporting its STUN port moves a derived address, not an explicit one. */
	b = json_pack("{s:s, s:i}", "pin", pin, "stun_port", 3480);
	assert_int_equal(coord_relay_report(&f->co, f->co.relays, b, err, sizeof(err)), 0);
	assert_int_equal(coord_relay_report(&f->co, f->co.relays->next->next, b, err, sizeof(err)), 0);
	json_decref(b);
	assert_string_equal(map_stun(f, 0, stun, sizeof(stun)), "relay.example.test:3480");
	assert_string_equal(f->co.relays->rec.pin, pin);
	assert_string_equal(map_stun(f, 2, stun, sizeof(stun)), "stun.example.test:3479");
	/* A pin alone keeps the port it reported. */
	b = json_pack("{s:s}", "pin", pin);
	assert_int_equal(coord_relay_report(&f->co, f->co.relays, b, err, sizeof(err)), 0);
	json_decref(b);
	assert_string_equal(map_stun(f, 0, stun, sizeof(stun)), "relay.example.test:3480");
	b = json_pack("{s:s, s:i}", "pin", pin, "stun_port", 0);
	assert_int_equal(coord_relay_report(&f->co, f->co.relays, b, err, sizeof(err)), -EINVAL);
	json_decref(b);
	b = json_pack("{s:s, s:s}", "pin", pin, "stun_port", "3478");
	assert_int_equal(coord_relay_report(&f->co, f->co.relays, b, err, sizeof(err)), -EINVAL);
	json_decref(b);
	b = json_pack("{s:s, s:i}", "pin", "nope", "stun_port", 3481);
	assert_int_equal(coord_relay_report(&f->co, f->co.relays, b, err, sizeof(err)), -EINVAL);
	json_decref(b);
	assert_string_equal(map_stun(f, 0, stun, sizeof(stun)), "relay.example.test:3480");

	/* All of it is the store's: a reopened coord sends the same relay map. */
	coord_close(&f->co);
	assert_int_equal(coord_open(&f->co, &f->loop, &f->opts), 0);
	assert_string_equal(map_stun(f, 0, stun, sizeof(stun)), "relay.example.test:3480");
	assert_string_equal(map_stun(f, 1, stun, sizeof(stun)), "[2001:db8::5]:3478");
	assert_string_equal(map_stun(f, 2, stun, sizeof(stun)), "stun.example.test:3479");
	assert_string_equal(f->co.relays->rec.pin, pin);
}

/* --- issue 12: an admin's argument hits what it names; pending nodes hold nothing --- */

static struct node *node_of(struct fixture *f, const struct node_keys *k)
{
	return keymap_get(&f->co.by_machine_key, k->machine_pub);
}

static void test_sanitize_label_never_an_id(void **state)
{
	char out[64], digits[80];

	(void)state;
	coord_sanitize_label("1", out, sizeof(out));
	assert_string_equal(out, "node-1");
	coord_sanitize_label("007.example.com", out, sizeof(out));
	assert_string_equal(out, "node-007");
	coord_sanitize_label("1a", out, sizeof(out));
	assert_string_equal(out, "1a");
	memset(digits, '9', 70);
	digits[70] = 0;
	coord_sanitize_label(digits, out, sizeof(out));
	assert_int_equal(strlen(out), 63);
	assert_memory_equal(out, "node-999", 8);
}

/* A pending node registered as "1" (no key needed) must not capture `approve 1`. */
static void test_coord_id_like_hostname(void **state)
{
	struct fixture *f = *state;
	struct node_keys real, evil;
	char err[200];
	struct node *n;
	json_t *a;

	node_keys_generate(&real);
	node_keys_generate(&evil);
	assert_int_equal(reg(f, &real, "real", NULL, &a), 0);
	assert_int_equal(json_integer_value(json_object_get(a, "id")), 1);
	json_decref(a);
	assert_int_equal(reg(f, &evil, "1", NULL, &a), 0);
	assert_string_equal(ans_str(a, "name"), "node-1");   /* what it asked for, as a label */
	json_decref(a);
	assert_int_equal(coord_node_resolve(&f->co, "1", &n, err, sizeof(err)), 0);
	assert_ptr_equal(n, node_of(f, &real));
	assert_int_equal(coord_node_approve(&f->co, n), 0);
	assert_int_equal(coord_node_state(node_of(f, &evil)), NODE_STATUS_NEEDS_APPROVAL);
	assert_int_equal(coord_node_resolve(&f->co, "3", &n, err, sizeof(err)), -ENOENT);
	assert_int_equal(api_status(-ENOENT), 404);
	/* An admin cannot give out an id-like name either. */
	assert_int_equal(coord_node_rename(&f->co, node_of(f, &real), "2", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "node id"));
}

/* A store from an older coord may hold names like "5": they become "node-5". */
static void test_coord_id_like_names_in_old_store(void **state)
{
	struct fixture *f = *state;
	char key[COORD_TOKEN_MAX];
	struct node_keys k;
	struct node_rec r;
	json_t *a;
	int64_t id;

	assert_int_equal(coord_authkey_create(&f->co, 1, 0, 0, "", key, sizeof(key), NULL), 0);
	node_keys_generate(&k);
	assert_int_equal(reg(f, &k, "web", key, &a), 0);
	json_decref(a);
	r = node_of(f, &k)->rec;
	id = r.id;
	snprintf(r.name, sizeof(r.name), "5");
	assert_int_equal(store_node_update(f->co.st, &r), 0);
	coord_close(&f->co);
	assert_int_equal(coord_open(&f->co, &f->loop, &f->opts), 0);
	assert_string_equal(node_of(f, &k)->rec.name, "node-5");
	assert_null(coord_node_find(&f->co, "5"));
	assert_ptr_equal(coord_node_find(&f->co, "node-5"), node_of(f, &k));
	coord_close(&f->co);
	assert_int_equal(coord_open(&f->co, &f->loop, &f->opts), 0);   /* it was stored */
	assert_string_equal(node_of(f, &k)->rec.name, "node-5");
	assert_int_equal(node_of(f, &k)->rec.id, id);
}

/* Pending nodes take no address and no name: the real "laptop" keeps its name. */
static void test_coord_pending_holds_no_name_or_address(void **state)
{
	struct fixture *f = *state;
	char key[COORD_TOKEN_MAX], err[400];
	struct node_keys s1, s2, real;
	struct node *n;
	json_t *a;

	assert_int_equal(coord_authkey_create(&f->co, 1, 0, 0, "", key, sizeof(key), NULL), 0);
	node_keys_generate(&s1);
	node_keys_generate(&s2);
	node_keys_generate(&real);
	assert_int_equal(reg(f, &s1, "laptop", NULL, &a), 0);
	assert_string_equal(ans_str(a, "name"), "laptop");
	assert_string_equal(json_string_value(json_array_get(json_object_get(a, "ips"), 0)), "0.0.0.0");
	assert_string_equal(json_string_value(json_array_get(json_object_get(a, "ips"), 1)), "::");
	json_decref(a);
	assert_int_equal(reg(f, &s2, "laptop", NULL, &a), 0);
	/* Two pending nodes asked for "laptop": the command names the id. */
	assert_string_equal(ans_str(a, "approve_command"), "coord nodes approve 2");
	json_decref(a);
	assert_int_equal(node_of(f, &s1)->rec.ipv4, 0);
	assert_string_equal(node_of(f, &s1)->rec.name, "");
	assert_int_equal(coord_node_resolve(&f->co, "laptop", &n, err, sizeof(err)), -ENOTUNIQ);
	assert_null(n);
	assert_non_null(strstr(err, "id 1 (needs-approval"));
	assert_non_null(strstr(err, "id 2 (needs-approval"));
	assert_int_equal(api_status(-ENOTUNIQ), 409);

	assert_int_equal(reg(f, &real, "laptop", key, &a), 0);
	assert_string_equal(ans_str(a, "name"), "laptop");
	assert_string_equal(json_string_value(json_array_get(json_object_get(a, "ips"), 0)), "100.64.0.1");
	json_decref(a);
	/* The holder of the name outranks what pending nodes asked for. */
	assert_ptr_equal(coord_node_find(&f->co, "laptop"), node_of(f, &real));
	assert_int_equal(coord_node_approve(&f->co, node_of(f, &s1)), 0);
	assert_string_equal(node_of(f, &s1)->rec.name, "laptop-2");
	assert_int_equal(node_of(f, &s1)->rec.ipv4, 0x64400002u);
	assert_non_null(coord_node_find(&f->co, "laptop-2"));
	/* Renaming waits for the name; deleting frees nothing it does not hold. */
	assert_int_equal(coord_node_rename(&f->co, node_of(f, &s2), "mine", err, sizeof(err)), -EINVAL);
	assert_int_equal(coord_node_delete(&f->co, node_of(f, &s2)), 0);
	/* All of it survives a reopen. */
	coord_close(&f->co);
	assert_int_equal(coord_open(&f->co, &f->loop, &f->opts), 0);
	assert_string_equal(node_of(f, &real)->rec.name, "laptop");
	assert_string_equal(node_of(f, &s1)->rec.name, "laptop-2");
}

static void test_clip_utf8(void **state)
{
	char out[64];

	(void)state;
	coord_clip_utf8("ab\xc3\xa9", 3, out);
	assert_string_equal(out, "ab");
	coord_clip_utf8("ab\xc3\xa9", 4, out);
	assert_string_equal(out, "ab\xc3\xa9");
	coord_clip_utf8("a\xe2\x82\xac", 3, out);        /* a € cut inside the euro */
	assert_string_equal(out, "a");
	coord_clip_utf8("a\xf0\x9f\x98\x80" "b", 63, out);  /* a whole emoji stays */
	assert_string_equal(out, "a\xf0\x9f\x98\x80" "b");
	coord_clip_utf8("ok\xc3", 63, out);                /* cut by an older coord */
	assert_string_equal(out, "ok");
	coord_clip_utf8("x\xc0\xafy", 63, out);            /* overlong */
	assert_string_equal(out, "x");
	coord_clip_utf8("x\xed\xa0\x80", 63, out);        /* a surrogate */
	assert_string_equal(out, "x");
}

/* A 64-byte hostname ending in a 2-byte character: cut before it, not inside it, and
 * still in the node's JSON. */
static void test_coord_hostname_cut_on_characters(void **state)
{
	struct fixture *f = *state;
	char host[80];
	struct node_keys k;
	json_t *a, *o;

	memset(host, 'a', 62);
	memcpy(host + 62, "\xc3\xa9", 3);
	node_keys_generate(&k);
	assert_int_equal(reg(f, &k, host, NULL, &a), 0);
	json_decref(a);
	assert_int_equal(strlen(node_of(f, &k)->rec.hostname), 62);
	o = netmap_node_json(&f->co, node_of(f, &k), 1);
	assert_non_null(json_object_get(o, "hostname"));
	assert_int_equal(json_string_length(json_object_get(o, "hostname")), 62);
	json_decref(o);
}

static int has(json_t *o, const char *k)
{
	return json_object_get(o, k) != NULL;
}

/* Pending, expired and rejected nodes see their own state only and post no endpoints;
 * home_relay names a relay of the relay map. */
static void test_coord_not_running_gets_only_itself(void **state)
{
	struct fixture *f = *state;
	char key[COORD_TOKEN_MAX], tok[COORD_TOKEN_MAX], err[200];
	struct node_keys kp, kr;
	struct node *p, *r;
	json_t *a, *h, *b;

	assert_int_equal(coord_relay_add(&f->co, "fra", "https://relay.example.test", NULL, tok,
					 sizeof(tok), err, sizeof(err)), 0);
	assert_int_equal(coord_authkey_create(&f->co, 1, 0, 0, "", key, sizeof(key), NULL), 0);
	node_keys_generate(&kp);
	node_keys_generate(&kr);
	assert_int_equal(reg(f, &kp, "pend", NULL, &a), 0);
	json_decref(a);
	assert_int_equal(reg(f, &kr, "runs", key, &a), 0);
	json_decref(a);
	p = node_of(f, &kp);
	r = node_of(f, &kr);
	h = netmap_full_head(&f->co, p);
	assert_true(has(h, "self") && !has(h, "relays") && !has(h, "dns") && !has(h, "domain"));
	json_decref(h);
	h = netmap_full_head(&f->co, r);
	assert_true(has(h, "self") && has(h, "relays") && has(h, "dns") && has(h, "domain"));
	json_decref(h);

	b = json_pack("{s:[s], s:s}", "endpoints", "192.0.2.1:41641", "home_relay", "fra");
	assert_int_equal(coord_node_set_endpoints(&f->co, p, b, err, sizeof(err)), -EPERM);
	assert_int_equal(api_status(-EPERM), 403);
	assert_int_equal(p->n_endpoints, 0);
	assert_int_equal(coord_node_set_endpoints(&f->co, r, b, err, sizeof(err)), 0);
	assert_string_equal(r->home_relay, "fra");
	json_object_set_new(b, "home_relay", json_string("\"><x"));
	assert_int_equal(coord_node_set_endpoints(&f->co, r, b, err, sizeof(err)), -EINVAL);
	assert_string_equal(r->home_relay, "fra");
	json_object_set_new(b, "home_relay", json_string(""));
	assert_int_equal(coord_node_set_endpoints(&f->co, r, b, err, sizeof(err)), 0);
	assert_int_equal(coord_node_expire(&f->co, r), 0);
	assert_int_equal(coord_node_set_endpoints(&f->co, r, b, err, sizeof(err)), -EPERM);
	h = netmap_full_head(&f->co, r);
	assert_false(has(h, "relays"));
	json_decref(h);
	json_decref(b);
}

/* Keys are revoked by exact id or by a prefix of exactly one: "7fe9e298" is key 1's
 * prefix, not id 7 (atoll). */
static void test_coord_key_revoke_exact(void **state)
{
	struct fixture *f = *state;
	char keys[8][COORD_TOKEN_MAX], err[480];
	struct authkey *ak;
	int64_t id = 0;

	for (int i = 0; i < 8; i++)
		assert_int_equal(coord_apikey_create(&f->co, 0, keys[i], sizeof(keys[i])), 0);
	for (struct apikey *k = f->co.apikeys; k; k = k->next) {
		if (k->rec.id == 1)
			snprintf(k->rec.prefix, sizeof(k->rec.prefix), "7fe9e298aaaaaa");
		if (k->rec.id == 2 || k->rec.id == 3)
			snprintf(k->rec.prefix, sizeof(k->rec.prefix), "abcdef%lld0000000", (long long)k->rec.id);
		if (k->rec.id == 4)
			snprintf(k->rec.prefix, sizeof(k->rec.prefix), "500000bbbbbbbb");
	}
	assert_int_equal(coord_apikey_revoke(&f->co, "7fe9e298", &id, err, sizeof(err)), 0);
	assert_int_equal(id, 1);
	assert_int_equal(coord_apikey_check(&f->co, keys[6]), 0);      /* id 7 still works */
	assert_int_equal(coord_apikey_check(&f->co, keys[0]), -EPERM);
	assert_int_equal(coord_apikey_revoke(&f->co, "abcdef", &id, err, sizeof(err)), -ENOTUNIQ);
	assert_non_null(strstr(err, "id 2 (abcdef2"));
	assert_non_null(strstr(err, "id 3 (abcdef3"));
	assert_int_equal(coord_apikey_check(&f->co, keys[1]), 0);
	assert_int_equal(coord_apikey_revoke(&f->co, "abc", &id, err, sizeof(err)), -ENOENT);
	assert_int_equal(coord_apikey_revoke(&f->co, "99", &id, err, sizeof(err)), -ENOENT);
	assert_int_equal(coord_apikey_revoke(&f->co, "-1", &id, err, sizeof(err)), -ENOENT);
	assert_int_equal(coord_apikey_revoke(&f->co, "500000", &id, err, sizeof(err)), 0);
	assert_int_equal(id, 4);   /* all digits, no such id, one prefix */
	assert_int_equal(coord_apikey_revoke(&f->co, "2", &id, err, sizeof(err)), 0);
	assert_int_equal(id, 2);

	for (int i = 0; i < 3; i++)
		assert_int_equal(coord_authkey_create(&f->co, 0, 0, 0, "", keys[i], sizeof(keys[i]),
						      NULL), 0);
	for (struct authkey *k = f->co.authkeys; k; k = k->next)
		if (k->rec.id == 1)
			snprintf(k->rec.prefix, sizeof(k->rec.prefix), "3fe9e298aaaaaa");
	assert_int_equal(coord_authkey_resolve(&f->co, "3fe9e298", &ak, err, sizeof(err)), 0);
	assert_int_equal(ak->rec.id, 1);
	assert_int_equal(coord_authkey_resolve(&f->co, "3", &ak, err, sizeof(err)), 0);
	assert_int_equal(ak->rec.id, 3);
	assert_int_equal(coord_authkey_resolve(&f->co, "nope!!", &ak, err, sizeof(err)), -ENOENT);
}

static void test_coord_relay_resolve(void **state)
{
	struct fixture *f = *state;
	char tok[COORD_TOKEN_MAX], err[480];
	struct relay *r;

	assert_int_equal(coord_relay_add(&f->co, "fra", "https://a.test", NULL, tok, sizeof(tok),
					 err, sizeof(err)), 0);
	assert_int_equal(coord_relay_add(&f->co, "frankfurt", "https://b.test", NULL, tok,
					 sizeof(tok), err, sizeof(err)), 0);
	assert_int_equal(coord_relay_add(&f->co, "ams", "https://c.test", NULL, tok, sizeof(tok),
					 err, sizeof(err)), 0);
	assert_int_equal(coord_relay_add(&f->co, "1", "https://d.test", NULL, tok, sizeof(tok),
					 err, sizeof(err)), -EINVAL);
	assert_int_equal(coord_relay_resolve(&f->co, "fra", &r, err, sizeof(err)), 0);
	assert_string_equal(r->rec.name, "fra");
	assert_int_equal(coord_relay_resolve(&f->co, "fr", &r, err, sizeof(err)), -ENOTUNIQ);
	assert_non_null(strstr(err, "(frankfurt)"));
	assert_int_equal(coord_relay_resolve(&f->co, "fran", &r, err, sizeof(err)), 0);
	assert_string_equal(r->rec.name, "frankfurt");
	assert_int_equal(coord_relay_resolve(&f->co, "3", &r, err, sizeof(err)), 0);
	assert_string_equal(r->rec.name, "ams");
	assert_int_equal(coord_relay_resolve(&f->co, "x", &r, err, sizeof(err)), -ENOENT);
}

/* Durations that would overflow created + expiry are refused, not wrapped. */
static void test_coord_expiry_overflow(void **state)
{
	struct fixture *f = *state;
	char key[COORD_TOKEN_MAX];
	int64_t at;

	assert_int_equal(coord_authkey_create(&f->co, 0, 0, INT64_MAX, "", key, sizeof(key), NULL),
			 -ERANGE);
	assert_int_equal(coord_apikey_create(&f->co, INT64_MAX - 5, key, sizeof(key)), -ERANGE);
	assert_null(f->co.authkeys);
	assert_null(f->co.apikeys);
	assert_int_equal(api_status(-ERANGE), 400);
	assert_int_equal(coord_expiry_at(1000, 0, &at), 0);
	assert_int_equal(at, 0);
	assert_int_equal(coord_expiry_at(1000, 60, &at), 0);
	assert_int_equal(at, 1060);
	assert_int_equal(coord_expiry_at(1000, COORD_MAX_DURATION, &at), 0);
	assert_int_equal(coord_expiry_at(INT64_MAX - 10, 11, &at), -ERANGE);
	assert_int_equal(coord_expiry_at(1000, -1, &at), -ERANGE);
	assert_int_equal(coord_authkey_create(&f->co, 0, 0, 86400, "", key, sizeof(key), NULL), 0);
	/* coord refuses to start with a node key expiry it cannot add to the clock. */
	coord_close(&f->co);
	f->opts.key_expiry = INT64_MAX;
	assert_int_equal(coord_open(&f->co, &f->loop, &f->opts), -ERANGE);
	f->opts.key_expiry = 3600;
	assert_int_equal(coord_open(&f->co, &f->loop, &f->opts), 0);
}

/* An existing state dir is made 0700, however loose it was. */
static void test_coord_state_dir_private(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	coord_close(&f->co);
	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(coord_open(&f->co, &f->loop, &f->opts), 0);
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ipalloc_unique_and_reserved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipalloc_scatter, setup, teardown),
		cmocka_unit_test(test_sanitize_label),
		cmocka_unit_test(test_coord_node_state_names),
		cmocka_unit_test_setup_teardown(test_coord_register_with_key_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_pending_then_approved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_challenge_is_single_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_bad_signature_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_register_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_register_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_names_are_unique, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_expire_and_reauth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_delete_invalidates_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_state_survives_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_ephemeral_removed_by_tick, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_relay_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_relay_stun, setup, teardown),
		cmocka_unit_test(test_sanitize_label_never_an_id),
		cmocka_unit_test(test_clip_utf8),
		cmocka_unit_test_setup_teardown(test_coord_id_like_hostname, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_id_like_names_in_old_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_pending_holds_no_name_or_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_hostname_cut_on_characters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_not_running_gets_only_itself, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_key_revoke_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_relay_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_expiry_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_state_dir_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coord_dns_policy, setup, teardown),
	};

	keys_init();
	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
