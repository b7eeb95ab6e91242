/* cli.c - the admin CLI (`coord nodes|keys|relays|apikeys|dns|pin ...`): talks to the running
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
	int json, reusable, ephemeral, insecure;
	const char *expiry, *tags, *stun, *tag;
	char base[4200];
};

/* One subcommand: `coord GROUP VERB ARG...`. path and done are for the handlers that
 * share one shape: the admin route and what success prints, "%s" being arg[0]. */
struct cli_cmd {
	const char *group, *verb;
	int nargs;
	int (*fn)(struct cli *c, const struct cli_cmd *cmd, char **arg);
	const char *path, *done;
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

/* GET for a table: 1 on failure; with --json the answer is printed and *out is NULL. */
static int list_get(struct cli *c, const char *path, json_t **out)
{
	*out = NULL;
	if (call(c, "GET", path, NULL, out))
		return 1;
	if (c->json) {
		print_json(*out);
		json_decref(*out);
		*out = NULL;
	}
	return 0;
}

static int table_done(struct table *t, json_t *v)
{
	table_print(t, stdout);
	table_free(t);
	json_decref(v);
	return 0;
}

/* The admin route of cmd for arg: 0, or 1 when arg would leave its path segment. */
static int route(const struct cli_cmd *cmd, const char *arg, char *path, size_t size)
{
	if (strchr(arg, '/'))
		return 1;
	snprintf(path, size, cmd->path, arg);
	return 0;
}

/* A pending node has no address yet: coord sends the unspecified ones. */
static const char *ip_or_dash(const json_t *ip)
{
	const char *s = json_string_value(ip);

	return !s || !strcmp(s, "0.0.0.0") || !strcmp(s, "::") ? "-" : s;
}

static int nodes_list(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	json_t *v, *n;
	struct table t;
	size_t i;
	char seen[32], exp[40], id[24];

	if (list_get(c, "/v1/admin/nodes", &v))
		return 1;
	if (!v)
		return 0;   /* printed as JSON */
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
		table_add(&t, id, str(n, "name"), ip_or_dash(json_array_get(ips, 0)),
			  ip_or_dash(json_array_get(ips, 1)), str(n, "state"),
			  json_is_true(json_object_get(n, "online")) ? "yes" : "no",
			  json_is_true(json_object_get(n, "online")) ? "now" :
			  ago(json_integer_value(json_object_get(n, "last_seen")), seen, sizeof(seen)),
			  exp);
	}
	return table_done(&t, v);
}

/* approve, reject, expire, rename, delete, show, netmap: one node by name or id. */
static int nodes_action(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	static const struct { const char *verb, *method; } methods[] = {
		{ "delete", "DELETE" }, { "show", "GET" }, { "netmap", "GET" },
	};
	const char *node = arg[0], *method = "POST";
	json_t *v, *body = NULL;
	char path[256];

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (!strcmp(cmd->verb, methods[i].verb))
			method = methods[i].method;
	snprintf(path, sizeof(path), cmd->path, node);
	if (cmd->nargs == 2)
		body = json_pack("{s:s}", "name", arg[1]);
	if (strchr(node, '/') || strchr(node, '?')) {
		fprintf(stderr, "coord: '%s' is not a node name or id\n", node);
		json_decref(body);
		return 2;
	}
	if (call(c, method, path, body, &v))
		return 1;
	if (c->json || !strcmp(method, "GET"))
		print_json(v);
	else if (cmd->done)
		printf(cmd->done, node);
	else
		printf("node %s: %s\n", str(v, "name"), str(v, "state"));
	json_decref(v);
	return 0;
}

/* DELETE of one thing by id, name or prefix; success prints cmd->done with what the
 * server says it removed (the answer's "name", else its "id"), never the argument. */
static int delete_one(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	char path[160], id[24];
	const char *what;
	json_t *v;

	if (route(cmd, arg[0], path, sizeof(path)) || call(c, "DELETE", path, NULL, &v))
		return 1;
	snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(v, "id")));
	what = json_is_string(json_object_get(v, "name")) ? str(v, "name") : id;
	printf(cmd->done, what);
	json_decref(v);
	return 0;
}

static int keys_create(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	json_t *v;
	int64_t secs = 0;

	if (c->expiry && args_parse_duration(c->expiry, &secs)) {
		fprintf(stderr, "coord: --expiry takes a duration like 90d, 12h, 30m\n");
		return 2;
	}
	if (call(c, "POST", "/v1/admin/keys", json_pack("{s:b, s:b, s:I, s:s}", "reusable",
		 c->reusable, "ephemeral", c->ephemeral, "expiry", (json_int_t)secs, "tags",
		 c->tags ? c->tags : ""), &v))
		return 1;
	if (c->json) {
		print_json(v);
	} else {
		printf("auth key %lld created (%s%s%s)\n", (long long)json_integer_value(json_object_get(v, "id")),
		       c->reusable ? "reusable" : "single use", c->ephemeral ? ", ephemeral" : "",
		       secs ? ", expires" : "");
		printf("%s\n", str(v, "key"));
	}
	json_decref(v);
	return 0;
}

static int keys_list(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	struct table t;
	char id[24], uses[24], created[32], exp[32];
	json_t *v, *k;
	size_t i;

	if (list_get(c, "/v1/admin/keys", &v))
		return 1;
	if (!v)
		return 0;   /* printed as JSON */
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
	return table_done(&t, v);
}

static int keys_revoke(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	char path[128];
	json_t *v;

	if (route(cmd, arg[0], path, sizeof(path)) || call(c, "DELETE", path, NULL, &v))
		return 1;
	printf("auth key %lld revoked\n", (long long)json_integer_value(json_object_get(v, "id")));
	json_decref(v);
	return 0;
}

static int relays_add(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	json_t *body = json_pack("{s:s, s:s}", "name", arg[0], "url", arg[1]), *v;

	if (body && c->stun)
		json_object_set_new(body, "stun", json_string(c->stun));
	if (call(c, "POST", "/v1/admin/relays", body, &v))
		return 1;
	if (c->json) {
		print_json(v);
	} else {
		printf("relay %s added; start it with: relay --coord URL --token TOKEN\n", arg[0]);
		printf("%s\n", str(v, "token"));
	}
	json_decref(v);
	return 0;
}

static int relays_list(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	struct table t;
	json_t *v, *r;
	size_t i;

	if (list_get(c, "/v1/admin/relays", &v))
		return 1;
	if (!v)
		return 0;   /* printed as JSON */
	table_init(&t, 5);
	table_add(&t, "NAME", "URL", "STUN", "CONNECTED", "PIN");
	json_array_foreach(json_object_get(v, "relays"), i, r)
		table_add(&t, str(r, "name"), str(r, "url"), str(r, "stun"),
			  json_is_true(json_object_get(r, "connected")) ? "yes" : "no", str(r, "pin"));
	return table_done(&t, v);
}

static int apikeys_create(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	json_t *v;
	int64_t secs = 0;

	if (c->expiry && args_parse_duration(c->expiry, &secs)) {
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

/* The answer as JSON whatever --json says (there is no table for it). */
static int print_get(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	json_t *v;

	if (call(c, "GET", cmd->path, NULL, &v))
		return 1;
	print_json(v);
	json_decref(v);
	return 0;
}

/* --- dns: `coord dns KIND add|remove ARG...`; cmd->path is the admin API's KIND --- */

/* The body fields of each KIND's positional arguments, in order. */
static const struct { const char *kind, *fields[3]; int tagged; } dns_fields[] = {
	{ "upstreams", { "upstream" }, 0 }, { "routes", { "domain", "server" }, 0 },
	{ "blocklists", { "source" }, 1 }, { "allow", { "domain" }, 1 },
	{ "block", { "domain" }, 1 }, { "records", { "name", "type", "value" }, 0 },
};

static int dns_post(struct cli *c, const char *path, json_t *body, const char *done)
{
	json_t *v;

	if (call(c, "POST", path, body, &v))
		return 1;
	if (c->json)
		print_json(v);
	else
		printf("%s\n", done);
	json_decref(v);
	return 0;
}

/* `coord dns KIND add|remove ARG...`, and `coord dns allow|block DOMAIN` for add. */
static int dns_edit(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	const char *op = cmd->done ? cmd->done : arg[0];
	char path[96], done[1400];
	size_t i, k, len;
	json_t *body, *v;

	for (k = 0; strcmp(dns_fields[k].kind, cmd->path); k++)
		;
	if (!cmd->done) {
		arg++;
		if (strcmp(op, "add") && strcmp(op, "remove")) {
			fprintf(stderr, "coord dns %s: say add or remove, not '%s'\n", cmd->verb, op);
			return 2;
		}
	}
	if (c->tag && !dns_fields[k].tagged) {
		fprintf(stderr, "coord dns %s: --tag is for blocklists and allow/block rules\n", cmd->verb);
		return 2;
	}
	body = json_object();
	for (i = 0; i < 3 && dns_fields[k].fields[i]; i++)
		json_object_set_new(body, dns_fields[k].fields[i], json_string(arg[i]));
	if (c->tag)
		json_object_set_new(body, "tag", json_string(c->tag));
	snprintf(path, sizeof(path), "/v1/admin/dns/%s/%s", cmd->path, op);
	if (call(c, "POST", path, body, &v))
		return 1;
	if (c->json) {
		print_json(v);
		json_decref(v);
		return 0;
	}
	/* What the server kept, in its one spelling ("192.0.2.1" is "192.0.2.1:53"). */
	len = (size_t)snprintf(done, sizeof(done), "dns %s", cmd->verb);
	for (i = 0; i < 4 && len < sizeof(done); i++) {
		const char *f = i < 3 ? dns_fields[k].fields[i] : "tag";
		if (f && *str(v, f))
			len += (size_t)snprintf(done + len, sizeof(done) - len, " %s", str(v, f));
	}
	printf("%s %s\n", done, !strcmp(op, "add") ? "added" : "removed");
	json_decref(v);
	return 0;
}

/* `coord dns domain NAME`, `coord dns blocking-mode null|nxdomain` */
static int dns_set(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	char path[64], done[320];

	snprintf(path, sizeof(path), "/v1/admin/dns/%s", cmd->verb);
	snprintf(done, sizeof(done), "dns %s is %s", cmd->verb, arg[0]);
	return dns_post(c, path, json_pack("{s:s}", cmd->path, arg[0]), done);
}

#define DNS_COLS 11

static void dns_rows(struct table *t, const json_t *a, const char *const *keys, int n)
{
	size_t i;
	json_t *o;
	char num[DNS_COLS][24];

	json_array_foreach(a, i, o) {
		const char *c[DNS_COLS] = { 0 };
		for (int k = 0; k < n; k++) {
			json_t *v = json_object_get(o, keys[k]);
			if (json_is_integer(v)) {
				snprintf(num[k], sizeof(num[k]), "%lld", (long long)json_integer_value(v));
				c[k] = num[k];
			} else if (json_is_true(v)) {
				c[k] = "yes";
			} else {
				c[k] = json_string_value(v) && *json_string_value(v) ? json_string_value(v) : "-";
			}
		}
		table_add(t, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]);
	}
}

static int dns_show(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	static const struct { const char *key, *cols[DNS_COLS], *heads[DNS_COLS]; int n; } parts[] = {
		{ "upstreams", { "upstream" }, { "UPSTREAM" }, 1 },
		{ "routes", { "domain", "server" }, { "ROUTED DOMAIN", "SERVER" }, 2 },
		{ "blocklists", { "source", "tag", "last_fetch", "version", "lines", "domains",
				  "exceptions", "unusable", "too_long", "invalid", "error" },
		  { "BLOCKLIST", "TAG", "LAST FETCH", "VERSION", "LINES", "DOMAINS", "EXCEPTIONS",
		    "UNUSABLE", "TOO LONG", "INVALID", "ERROR" }, 11 },
		{ "allow", { "domain", "tag" }, { "ALLOWED", "TAG" }, 2 },
		{ "block", { "domain", "tag" }, { "BLOCKED", "TAG" }, 2 },
		{ "records", { "name", "type", "value" }, { "RECORD", "TYPE", "VALUE" }, 3 },
	};
	json_t *v;

	if (list_get(c, "/v1/admin/dns", &v))
		return 1;
	if (!v)
		return 0;   /* printed as JSON */
	printf("domain         %s\nresolver       %s\nblocking mode  %s\n", str(v, "domain"),
	       str(v, "resolver"), str(v, "blocking_mode"));
	for (size_t p = 0; p < sizeof(parts) / sizeof(parts[0]); p++) {
		json_t *a = json_object_get(v, parts[p].key);
		struct table t;
		const char *const *h = parts[p].heads;

		if (!json_array_size(a))
			continue;
		printf("\n");
		table_init(&t, parts[p].n);
		table_add(&t, h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10]);
		dns_rows(&t, a, parts[p].cols, parts[p].n);
		table_print(&t, stdout);
		table_free(&t);
	}
	json_decref(v);
	return 0;
}

static int pin_main(struct cli *c, const struct cli_cmd *cmd, char **arg)
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

/* `coord status`: this instance and the others on the same database. */
static int status_main(struct cli *c, const struct cli_cmd *cmd, char **arg)
{
	json_t *v, *in;
	struct table t;
	char a[32], b[32];
	size_t i;

	(void)cmd;
	(void)arg;
	if (list_get(c, "/v1/admin/status", &v) || !v)
		return c->json ? 0 : 1;
	printf("instance %s, store %s (%s), feed at %lld of %lld, lag %.0fs, %s the once-only jobs\n",
	       str(v, "instance"), str(v, "store"),
	       json_is_true(json_object_get(v, "database_ok")) ? "reachable" : "UNREACHABLE",
	       (long long)json_integer_value(json_object_get(v, "feed_seq")),
	       (long long)json_integer_value(json_object_get(v, "feed_head")),
	       json_number_value(json_object_get(v, "feed_lag_seconds")),
	       json_is_true(json_object_get(v, "jobs")) ? "runs" : "does not run");
	table_init(&t, 5);
	table_add(&t, "INSTANCE", "URL", "STARTED", "SEEN", "JOBS");
	json_array_foreach(json_object_get(v, "instances"), i, in)
		table_add(&t, str(in, "name"), *str(in, "url") ? str(in, "url") : "-",
			  ago(json_integer_value(json_object_get(in, "started")), a, sizeof(a)),
			  ago(json_integer_value(json_object_get(in, "seen")), b, sizeof(b)),
			  *str(in, "jobs") ? str(in, "jobs") : "-");
	if (json_array_size(json_object_get(v, "instances")))
		table_print(&t, stdout);
	table_free(&t);
	json_decref(v);
	return 0;
}

static const struct cli_cmd cmds[] = {
	{ "nodes", "list", 0, nodes_list, NULL, NULL },
	{ "nodes", "approve", 1, nodes_action, "/v1/admin/nodes/%s/approve", NULL },
	{ "nodes", "reject", 1, nodes_action, "/v1/admin/nodes/%s/reject", NULL },
	{ "nodes", "expire", 1, nodes_action, "/v1/admin/nodes/%s/expire", NULL },
	{ "nodes", "delete", 1, nodes_action, "/v1/admin/nodes/%s", "node %s deleted\n" },
	{ "nodes", "show", 1, nodes_action, "/v1/admin/nodes/%s", NULL },
	{ "nodes", "netmap", 1, nodes_action, "/v1/admin/nodes/%s/netmap", NULL },
	{ "nodes", "rename", 2, nodes_action, "/v1/admin/nodes/%s/rename", NULL },
	{ "keys", "create", 0, keys_create, NULL, NULL },
	{ "keys", "list", 0, keys_list, NULL, NULL },
	{ "keys", "revoke", 1, keys_revoke, "/v1/admin/keys/%s", NULL },
	{ "relays", "add", 2, relays_add, NULL, NULL },
	{ "relays", "list", 0, relays_list, NULL, NULL },
	{ "relays", "remove", 1, delete_one, "/v1/admin/relays/%s", "relay %s removed\n" },
	{ "apikeys", "create", 0, apikeys_create, NULL, NULL },
	{ "apikeys", "list", 0, print_get, "/v1/admin/apikeys", NULL },
	{ "apikeys", "revoke", 1, delete_one, "/v1/admin/apikeys/%s", "API key %s revoked\n" },
	{ "dns", "show", 0, dns_show, NULL, NULL },
	{ "dns", "domain", 1, dns_set, "domain", NULL },
	{ "dns", "blocking-mode", 1, dns_set, "mode", NULL },
	{ "dns", "upstream", 2, dns_edit, "upstreams", NULL },
	{ "dns", "route", 3, dns_edit, "routes", NULL },
	{ "dns", "blocklist", 2, dns_edit, "blocklists", NULL },
	{ "dns", "allow", 2, dns_edit, "allow", NULL },
	{ "dns", "allow", 1, dns_edit, "allow", "add" },
	{ "dns", "block", 2, dns_edit, "block", NULL },
	{ "dns", "block", 1, dns_edit, "block", "add" },
	{ "dns", "record", 4, dns_edit, "records", NULL },
	{ "pin", NULL, 0, pin_main, NULL, NULL },
	{ "status", NULL, 0, status_main, NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL, NULL },
};

/* What a group prints when no subcommand matches ("pin" prints nothing). */
static const struct { const char *group, *text; } usages[] = {
	{ "nodes", "usage: coord nodes list [--json]\n"
	  "       coord nodes approve|reject|expire|delete|show|netmap NODE\n"
	  "       coord nodes rename NODE NEW-NAME\n"
	  "NODE is a node's id (all digits) or its name (a pending node's: the name it asked for);\n"
	  "add --state DIR or --server URL --api-key K\n" },
	{ "keys", "usage: coord keys create [--reusable] [--ephemeral] [--expiry DUR] [--tags tag:a,tag:b] [--json]\n"
	  "       coord keys list [--json]\n       coord keys revoke ID|PREFIX\n" },
	{ "relays", "usage: coord relays add NAME https://HOST[:PORT] [--stun HOST:PORT[,HOST:PORT]]\n"
	  "       coord relays list [--json] | remove NAME|ID\n"
	  "--stun defaults to the URL's host and the relay's STUN port (3478 until it reports one)\n" },
	{ "apikeys", "usage: coord apikeys create [--expiry DUR] | list | revoke ID|PREFIX\n" },
	{ "dns", "usage: coord dns show [--json]\n"
	  "       coord dns domain NAME\n"
	  "       coord dns blocking-mode null|nxdomain\n"
	  "       coord dns upstream add|remove ADDR[:PORT]|tls://ADDR[:PORT]#NAME\n"
	  "       coord dns route add|remove DOMAIN ADDR[:PORT]\n"
	  "       coord dns blocklist add|remove URL|/PATH [--tag tag:x]\n"
	  "       coord dns allow|block add|remove DOMAIN [--tag tag:x]   (allow|block DOMAIN adds)\n"
	  "       coord dns record add|remove NAME A|AAAA|CNAME|TXT VALUE\n"
	  "IPv6 addresses in brackets; ports default to 53 (853 for tls://); a PATH is on coord's machine\n" },
};

/* w[0] is the group, w[1] the verb, then the arguments. */
static int dispatch(struct cli *c, const char *group, char **w, int n)
{
	for (const struct cli_cmd *cmd = cmds; cmd->group; cmd++) {
		if (strcmp(cmd->group, group))
			continue;
		if (!cmd->verb ? n == 1 : n == 2 + cmd->nargs && !strcmp(w[1], cmd->verb))
			return cmd->fn(c, cmd, w + (cmd->verb ? 2 : 1));
	}
	for (size_t i = 0; i < sizeof(usages) / sizeof(usages[0]); i++)
		if (!strcmp(usages[i].group, group))
			fputs(usages[i].text, stderr);
	return 2;
}

int coord_cli_main(const char *group, int argc, char **argv)
{
	struct cli c = { .state = "./coord-state" };
	const struct arg_opt opts[] = {
		{ "state", &c.state, NULL, 0 }, { "server", &c.server, NULL, 0 },
		{ "api-key", &c.api_key, NULL, 0 }, { "pin", &c.pin, NULL, 0 },
		{ "json", NULL, &c.json, 0 }, { "reusable", NULL, &c.reusable, 0 },
		{ "ephemeral", NULL, &c.ephemeral, 0 }, { "expiry", &c.expiry, NULL, 0 },
		{ "tags", &c.tags, NULL, 0 }, { "stun", &c.stun, NULL, 0 },
		{ "tag", &c.tag, NULL, 0 },
		{ "insecure", NULL, &c.insecure, 0 }, { NULL, NULL, NULL, 0 },
	};
	char *w[8], err[256];
	int n;

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
		/* The API key is the admin's whole power: never in clear text by accident,
		 * not even to loopback (another user's process may listen there). */
		if (u.scheme == HTTP_SCHEME_HTTP && !c.insecure) {
			fprintf(stderr, "coord: --server %s would send the API key unencrypted; use "
				"https:// (or say --insecure if you mean it)\n", c.server);
			return 2;
		}
	}
	return dispatch(&c, group, w, n);
}
