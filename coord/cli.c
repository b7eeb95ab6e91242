/* cli.c - the admin CLI (`coord nodes|keys|relays|apikeys|pin ...`): talks to the running
 * server over the admin socket in the state dir, or over HTTPS with an API key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coord.h"
#include "meshvpn/args.h"
#include "meshvpn/json.h"
#include "meshvpn/table.h"

struct cli {
	const char *state, *server, *api_key, *pin;
	int json;
	char base[4200];
};

/* Sends one admin request; prints the server's error and returns 1 on failure. */
static int call(struct cli *c, const char *method, const char *path, json_t *body, json_t **out)
{
	char auth[256], *resp = NULL, *b = NULL;
	const char *headers[3] = { NULL, NULL, NULL };
	size_t len = 0, blen = 0;
	int status = 0, rc, h = 0;
	json_t *v;

	if (c->server) {
		snprintf(c->base, sizeof(c->base), "%s", c->server);
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->api_key);
		headers[h++] = auth;
	} else {
		/* unix: URLs take absolute paths; the default state dir is relative. */
		char abs[4096];
		if (!realpath(c->state, abs))
			snprintf(abs, sizeof(abs), "%s", c->state);
		snprintf(c->base, sizeof(c->base), "unix:%s/%s", abs, COORD_ADMIN_SOCKET);
		if (access(c->base + 5, F_OK)) {
			fprintf(stderr, "coord: no server is running with state dir %s (no %s);\n"
				"start one with `coord serve --state %s`, or give --state DIR, or "
				"--server URL --api-key K\n", c->state, c->base + 5, c->state);
			json_decref(body);
			return 1;
		}
	}
	if (body) {
		b = json_dump_compact(body, &blen);
		headers[h++] = "Content-Type: application/json";
		json_decref(body);
	}
	rc = http_fetch(c->base, c->pin, method, path, headers, b, blen, &status, &resp, &len, 15000);
	free(b);
	if (rc) {
		fprintf(stderr, "coord: cannot reach the server at %s: %s\n", c->base, strerror(-rc));
		free(resp);
		return 1;
	}
	v = resp ? json_loadb(resp, len, 0, NULL) : NULL;
	free(resp);
	if (status != 200) {
		const char *msg = v ? json_string_value(json_object_get(v, "error")) : NULL;
		fprintf(stderr, "coord: %s (HTTP %d)\n", msg ? msg : "request failed", status);
		json_decref(v);
		return 1;
	}
	if (!v) {
		fprintf(stderr, "coord: the server sent an unreadable answer\n");
		return 1;
	}
	if (out)
		*out = v;
	else
		json_decref(v);
	return 0;
}

static void print_json(const json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);

	if (s)
		printf("%s\n", s);
	free(s);
}

static const char *ago(int64_t t, char *buf, size_t size)
{
	int64_t d = coord_now() - t;

	if (!t)
		return "-";
	if (d < 0)
		d = -d;
	if (d < 120)
		snprintf(buf, size, "%llds", (long long)d);
	else if (d < 7200)
		snprintf(buf, size, "%lldm", (long long)d / 60);
	else if (d < 172800)
		snprintf(buf, size, "%lldh", (long long)d / 3600);
	else
		snprintf(buf, size, "%lldd", (long long)d / 86400);
	return buf;
}

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static int nodes_list(struct cli *c)
{
	json_t *v, *n;
	struct table t;
	size_t i;
	char seen[32], exp[40], id[24];

	if (call(c, "GET", "/v1/admin/nodes", NULL, &v))
		return 1;
	if (c->json) {
		print_json(v);
		json_decref(v);
		return 0;
	}
	table_init(&t, 8);
	table_add(&t, "ID", "NAME", "IPV4", "IPV6", "STATE", "ONLINE", "LAST SEEN", "EXPIRES");
	json_array_foreach(json_object_get(v, "nodes"), i, n) {
		json_t *ips = json_object_get(n, "ips");
		int64_t e = json_integer_value(json_object_get(n, "key_expiry"));
		snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(n, "id")));
		if (!e)
			snprintf(exp, sizeof(exp), "never");
		else if (e <= coord_now())
			snprintf(exp, sizeof(exp), "expired");
		else
			ago(e, exp, sizeof(exp));
		table_add(&t, id, str(n, "name"), json_string_value(json_array_get(ips, 0)),
			  json_string_value(json_array_get(ips, 1)), str(n, "state"),
			  json_is_true(json_object_get(n, "online")) ? "yes" : "no",
			  json_is_true(json_object_get(n, "online")) ? "now" :
			  ago(json_integer_value(json_object_get(n, "last_seen")), seen, sizeof(seen)),
			  exp);
	}
	table_print(&t, stdout);
	table_free(&t);
	json_decref(v);
	return 0;
}

static int nodes_action(struct cli *c, const char *action, const char *node, const char *arg)
{
	char path[256];
	json_t *v, *body = NULL;
	const char *method = "POST";

	if (!strcmp(action, "delete")) {
		snprintf(path, sizeof(path), "/v1/admin/nodes/%s", node);
		method = "DELETE";
	} else if (!strcmp(action, "netmap")) {
		snprintf(path, sizeof(path), "/v1/admin/nodes/%s/netmap", node);
		method = "GET";
	} else if (!strcmp(action, "show")) {
		snprintf(path, sizeof(path), "/v1/admin/nodes/%s", node);
		method = "GET";
	} else {
		snprintf(path, sizeof(path), "/v1/admin/nodes/%s/%s", node, action);
	}
	if (arg)
		body = json_pack("{s:s}", "name", arg);
	if (strchr(node, '/') || strchr(node, '?')) {
		fprintf(stderr, "coord: '%s' is not a node name or id\n", node);
		json_decref(body);
		return 2;
	}
	if (call(c, method, path, body, &v))
		return 1;
	if (c->json || !strcmp(action, "netmap") || !strcmp(action, "show"))
		print_json(v);
	else if (!strcmp(action, "delete"))
		printf("node %s deleted\n", node);
	else
		printf("node %s: %s\n", str(v, "name"), str(v, "state"));
	json_decref(v);
	return 0;
}

static int keys_main(struct cli *c, char **w, int n, int reusable, int ephemeral,
		     const char *expiry, const char *tags)
{
	json_t *v, *k;
	int64_t secs = 0;
	size_t i;

	if (n == 2 && !strcmp(w[1], "create")) {
		if (expiry && args_parse_duration(expiry, &secs)) {
			fprintf(stderr, "coord: --expiry takes a duration like 90d, 12h, 30m\n");
			return 2;
		}
		if (call(c, "POST", "/v1/admin/keys", json_pack("{s:b, s:b, s:I, s:s}", "reusable",
			 reusable, "ephemeral", ephemeral, "expiry", (json_int_t)secs, "tags",
			 tags ? tags : ""), &v))
			return 1;
		if (c->json) {
			print_json(v);
		} else {
			printf("auth key %lld created (%s%s%s)\n", (long long)json_integer_value(json_object_get(v, "id")),
			       reusable ? "reusable" : "single use", ephemeral ? ", ephemeral" : "",
			       secs ? ", expires" : "");
			printf("%s\n", str(v, "key"));
		}
		json_decref(v);
		return 0;
	}
	if (n == 2 && !strcmp(w[1], "list")) {
		struct table t;
		char id[24], uses[24], created[32], exp[32];
		if (call(c, "GET", "/v1/admin/keys", NULL, &v))
			return 1;
		if (c->json) {
			print_json(v);
			json_decref(v);
			return 0;
		}
		table_init(&t, 8);
		table_add(&t, "ID", "PREFIX", "REUSABLE", "EPHEMERAL", "USES", "CREATED", "EXPIRES", "USABLE");
		json_array_foreach(json_object_get(v, "keys"), i, k) {
			int64_t e = json_integer_value(json_object_get(k, "expiry"));
			snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(k, "id")));
			snprintf(uses, sizeof(uses), "%lld", (long long)json_integer_value(json_object_get(k, "uses")));
			ago(json_integer_value(json_object_get(k, "created")), created, sizeof(created));
			if (!e)
				snprintf(exp, sizeof(exp), "never");
			else
				ago(e, exp, sizeof(exp));
			table_add(&t, id, str(k, "prefix"),
				  json_is_true(json_object_get(k, "reusable")) ? "yes" : "no",
				  json_is_true(json_object_get(k, "ephemeral")) ? "yes" : "no", uses,
				  created, exp,
				  json_is_true(json_object_get(k, "revoked")) ? "revoked" :
				  json_is_true(json_object_get(k, "usable")) ? "yes" : "no");
		}
		table_print(&t, stdout);
		table_free(&t);
		json_decref(v);
		return 0;
	}
	if (n == 3 && !strcmp(w[1], "revoke")) {
		char path[128];
		snprintf(path, sizeof(path), "/v1/admin/keys/%s", w[2]);
		if (strchr(w[2], '/') || call(c, "DELETE", path, NULL, &v))
			return 1;
		printf("auth key %lld revoked\n", (long long)json_integer_value(json_object_get(v, "id")));
		json_decref(v);
		return 0;
	}
	fprintf(stderr, "usage: coord keys create [--reusable] [--ephemeral] [--expiry DUR] [--tags tag:a,tag:b] [--json]\n"
		"       coord keys list [--json]\n       coord keys revoke ID|PREFIX\n");
	return 2;
}

static int relays_main(struct cli *c, char **w, int n)
{
	json_t *v, *r;
	size_t i;
	char path[160];

	if (n == 4 && !strcmp(w[1], "add")) {
		if (call(c, "POST", "/v1/admin/relays", json_pack("{s:s, s:s}", "name", w[2], "url", w[3]), &v))
			return 1;
		if (c->json) {
			print_json(v);
		} else {
			printf("relay %s added; start it with: relay --coord URL --token TOKEN\n", w[2]);
			printf("%s\n", str(v, "token"));
		}
		json_decref(v);
		return 0;
	}
	if (n == 2 && !strcmp(w[1], "list")) {
		struct table t;
		if (call(c, "GET", "/v1/admin/relays", NULL, &v))
			return 1;
		if (c->json) {
			print_json(v);
			json_decref(v);
			return 0;
		}
		table_init(&t, 4);
		table_add(&t, "NAME", "URL", "CONNECTED", "PIN");
		json_array_foreach(json_object_get(v, "relays"), i, r)
			table_add(&t, str(r, "name"), str(r, "url"),
				  json_is_true(json_object_get(r, "connected")) ? "yes" : "no", str(r, "pin"));
		table_print(&t, stdout);
		table_free(&t);
		json_decref(v);
		return 0;
	}
	if (n == 3 && !strcmp(w[1], "remove")) {
		snprintf(path, sizeof(path), "/v1/admin/relays/%s", w[2]);
		if (strchr(w[2], '/') || call(c, "DELETE", path, NULL, NULL))
			return 1;
		printf("relay %s removed\n", w[2]);
		return 0;
	}
	fprintf(stderr, "usage: coord relays add NAME https://HOST[:PORT] | list [--json] | remove NAME\n");
	return 2;
}

static int apikeys_main(struct cli *c, char **w, int n, const char *expiry)
{
	json_t *v;
	int64_t secs = 0;
	char path[160];

	if (n == 2 && !strcmp(w[1], "create")) {
		if (expiry && args_parse_duration(expiry, &secs)) {
			fprintf(stderr, "coord: --expiry takes a duration like 90d\n");
			return 2;
		}
		if (call(c, "POST", "/v1/admin/apikeys", json_pack("{s:I}", "expiry", (json_int_t)secs), &v))
			return 1;
		if (c->json)
			print_json(v);
		else
			printf("%s\n", str(v, "key"));
		json_decref(v);
		return 0;
	}
	if (n == 2 && !strcmp(w[1], "list")) {
		if (call(c, "GET", "/v1/admin/apikeys", NULL, &v))
			return 1;
		print_json(v);
		json_decref(v);
		return 0;
	}
	if (n == 3 && !strcmp(w[1], "revoke")) {
		snprintf(path, sizeof(path), "/v1/admin/apikeys/%s", w[2]);
		if (strchr(w[2], '/') || call(c, "DELETE", path, NULL, NULL))
			return 1;
		printf("API key %s revoked\n", w[2]);
		return 0;
	}
	fprintf(stderr, "usage: coord apikeys create [--expiry DUR] | list | revoke ID|PREFIX\n");
	return 2;
}

static int pin_main(struct cli *c)
{
	char path[4096], pin[TLS_PIN_LEN];

	snprintf(path, sizeof(path), "%s/tls.crt", c->state);
	if (tls_cert_pin(path, pin)) {
		fprintf(stderr, "coord: no certificate at %s (run `coord serve --state %s` once)\n",
			path, c->state);
		return 1;
	}
	printf("%s\n", pin);
	return 0;
}

int coord_cli_main(const char *group, int argc, char **argv)
{
	struct cli c = { .state = "./coord-state" };
	const char *expiry = NULL, *tags = NULL;
	int reusable = 0, ephemeral = 0, n;
	const struct arg_opt opts[] = {
		{ "state", &c.state, NULL, 0 }, { "server", &c.server, NULL, 0 },
		{ "api-key", &c.api_key, NULL, 0 }, { "pin", &c.pin, NULL, 0 },
		{ "json", NULL, &c.json, 0 }, { "reusable", NULL, &reusable, 0 },
		{ "ephemeral", NULL, &ephemeral, 0 }, { "expiry", &expiry, NULL, 0 },
		{ "tags", &tags, NULL, 0 }, { NULL, NULL, NULL, 0 },
	};
	char *w[8], err[256];

	n = args_parse(argc, argv, opts, w, 8, err, sizeof(err));
	if (n < 0) {
		fprintf(stderr, "coord %s: %s\n", group, err);
		return 2;
	}
	if (c.server && !c.api_key) {
		fprintf(stderr, "coord: --server needs --api-key (create one with `coord apikeys create`)\n");
		return 2;
	}
	if (c.server) {
		struct http_url u;
		if (http_url_parse(c.server, &u)) {
			fprintf(stderr, "coord: --server takes https://HOST[:PORT]\n");
			return 2;
		}
	}
	if (!strcmp(group, "pin"))
		return n == 1 ? pin_main(&c) : 2;
	if (!strcmp(group, "keys"))
		return keys_main(&c, w, n, reusable, ephemeral, expiry, tags);
	if (!strcmp(group, "relays"))
		return relays_main(&c, w, n);
	if (!strcmp(group, "apikeys"))
		return apikeys_main(&c, w, n, expiry);
	/* nodes */
	if (n == 2 && !strcmp(w[1], "list"))
		return nodes_list(&c);
	if (n == 3 && (!strcmp(w[1], "approve") || !strcmp(w[1], "reject") || !strcmp(w[1], "expire") ||
		       !strcmp(w[1], "delete") || !strcmp(w[1], "netmap") || !strcmp(w[1], "show")))
		return nodes_action(&c, w[1], w[2], NULL);
	if (n == 4 && !strcmp(w[1], "rename"))
		return nodes_action(&c, w[1], w[2], w[3]);
	fprintf(stderr, "usage: coord nodes list [--json]\n"
		"       coord nodes approve|reject|expire|delete|show|netmap NODE\n"
		"       coord nodes rename NODE NEW-NAME\n"
		"NODE is a node's name or id; add --state DIR or --server URL --api-key K\n");
	return 2;
}
