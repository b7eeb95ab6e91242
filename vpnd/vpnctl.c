/* vpnctl.c - the node CLI: talks to vpnd over its control socket (HTTP/1.1 + JSON on a
 * Unix socket; routes in vpnd.h). Options may stand before or after the subcommand.
 * Exit codes: 0 ok (also `up` waiting for approval), 1 runtime failure, 2 bad usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meshvpn/args.h"
#include "meshvpn/http.h"
#include "meshvpn/json.h"
#include <unistd.h>

#include "meshvpn/log.h"
#include "meshvpn/table.h"
#include "vpnd.h"

#define CTL_TIMEOUT_MS 10000
#define UP_TIMEOUT_MS (VPND_UP_TIMEOUT_MS + 15000)

static const char *sock_path = VPND_DEFAULT_SOCKET;
static const char *opt_coord, *opt_auth_key, *opt_hostname, *opt_pin, *opt_count;
static const char *opt_accept_dns, *opt_lines, *opt_enable;
static int opt_follow, opt_disable;
static const char *arg_peer;
static int opt_json, opt_4, opt_6, opt_help;

struct cmd {
	const char *name;
	int (*fn)(void);
	const char *help;
	const char *opts;   /* the options it takes besides --socket, space-separated */
};

static int cmd_up(void);
static int cmd_down(void);
static int cmd_logout(void);
static int cmd_status(void);
static int cmd_ip(void);
static int cmd_ping(void);
static int cmd_netcheck(void);
static int cmd_dns(void);
static int cmd_dns_log(void);

static const struct cmd cmds[] = {
	{ "up", cmd_up, "Joins the network: --coord URL[,URL...] [--auth-key K] [--hostname H] "
	  "[--pin sha256:HEX] [--accept-dns[=false]]; without --coord, rejoins the last one",
	  "coord auth-key hostname pin accept-dns" },
	{ "down", cmd_down, "Removes the interface; keys and registration stay (up rejoins)", "" },
	{ "logout", cmd_logout, "Leaves the network: tells coord, deletes this node's keys", "" },
	{ "status", cmd_status, "Shows this node and its peers [--json]", "json" },
	{ "ip", cmd_ip, "Prints this node's addresses, one per line [-4|-6]", "4 6" },
	{ "ping", cmd_ping, "PEER [-c N]: disco pings to a peer (name or address): the path and "
	  "round trip of each reply", "count" },
	{ "netcheck", cmd_netcheck, "What the network allows: UDP, reflexive addresses, hard NAT, "
	  "relay latencies [--json]", "json" },
	{ "dns", cmd_dns, "stats: the resolver's counters on 100.100.100.100 [--json]; log "
	  "[-n N] [--follow] [--json]: recent queries (log --enable N / --disable)", "json" },
	{ NULL, NULL, NULL, NULL },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vpnctl [--socket PATH] COMMAND [options]\n\ncommands:\n");
	for (const struct cmd *c = cmds; c->name; c++)
		fprintf(f, "  %-8s %s\n", c->name, c->help);
	fprintf(f, "\n--socket defaults to %s\n", VPND_DEFAULT_SOCKET);
}

/* One request to vpnd. 0 with *status and *out (parsed body, may be NULL), or 1 after
 * saying what went wrong. */
static int ctl(const char *method, const char *path, const char *body, uint64_t timeout_ms,
	       int *status, json_t **out)
{
	char url[300], *resp = NULL, err[128];
	const char *headers[] = { "Content-Type: application/json", NULL };
	size_t len = 0;
	int rc;

	*out = NULL;
	snprintf(url, sizeof(url), "unix:%s", sock_path);
	rc = http_fetch(url, NULL, method, path, headers, body, body ? strlen(body) : 0, status, &resp,
			&len, timeout_ms);
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		fprintf(stderr, "vpnctl: vpnd is not running (nothing answers on %s).\n"
			"Start it as root: vpnd [--state DIR] [--socket PATH] (or: systemctl start vpnd)\n",
			sock_path);
		return 1;
	}
	if (rc == -EACCES || rc == -EPERM) {
		fprintf(stderr, "vpnctl: permission denied on %s: run vpnctl as root\n", sock_path);
		return 1;
	}
	if (rc == -ETIMEDOUT) {
		fprintf(stderr, "vpnctl: vpnd did not answer in time on %s\n", sock_path);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "vpnctl: cannot talk to vpnd on %s: %s\n", sock_path, strerror(-rc));
		return 1;
	}
	if (resp && len)
		*out = json_parse_object(resp, len, err, sizeof(err));
	free(resp);
	if (!*out && *status == 200) {
		fprintf(stderr, "vpnctl: vpnd's answer is not JSON\n");
		return 1;
	}
	return 0;
}

/* A non-200 answer: its {"error"} to stderr; 2 for a request vpnd found malformed. */
static int fail(int status, json_t *o)
{
	const char *msg = NULL;

	if (!o || json_get_str(o, "error", &msg))
		msg = NULL;
	fprintf(stderr, "vpnctl: %s\n", msg ? msg : "vpnd answered with an error");
	if (!msg)
		fprintf(stderr, "(HTTP %d)\n", status);
	json_decref(o);
	return status == 400 ? 2 : 1;
}

/* --json: the object as vpnd sent it, indented; consumes o. 0, or 1 without memory. */
static int print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(o);
	return s ? 0 : 1;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s;

	return o && !json_get_str(o, key, &s) ? s : "";
}

/* "coord URL", or with several instances the one in use, the address dialled when its
 * name has several, and the list. */
static void print_coord(const json_t *self)
{
	const json_t *urls = json_object_get(self, "coord_urls"), *u;
	size_t i;

	if (json_array_size(urls) < 2 || !*str(self, "coord_current")) {
		printf("coord %s", str(self, "coord"));
		return;
	}
	printf("coord %s", str(self, "coord_current"));
	if (*str(self, "coord_address"))
		printf(" at %s", str(self, "coord_address"));
	printf(" (instances:");
	json_array_foreach(urls, i, u)
		printf("%s %s", i ? "," : "", json_string_value(u));
	printf("; failovers %lld)", (long long)json_integer_value(json_object_get(self,
										"coord_failovers")));
}

static void print_ips(const json_t *ips, FILE *f, const char *sep)
{
	size_t i;
	json_t *v;
	int first = 1;

	json_array_foreach(ips, i, v) {
		if (!json_is_string(v))
			continue;
		fprintf(f, "%s%s", first ? "" : sep, json_string_value(v));
		first = 0;
	}
}

static int cmd_up(void)
{
	struct up_request check;
	json_t *body = json_object(), *o = NULL;
	char *text, err[200];
	const char *state;
	int status = 0, rc;

	if (opt_coord)
		json_object_set_new(body, "coord", json_string(opt_coord));
	if (opt_pin)
		json_object_set_new(body, "pin", json_string(opt_pin));
	if (opt_hostname)
		json_object_set_new(body, "hostname", json_string(opt_hostname));
	if (opt_auth_key)
		json_object_set_new(body, "auth_key", json_string(opt_auth_key));
	if (opt_accept_dns) {
		int on = !strcmp(opt_accept_dns, "true") || !strcmp(opt_accept_dns, "yes") ||
			 !strcmp(opt_accept_dns, "1");

		if (!on && strcmp(opt_accept_dns, "false") && strcmp(opt_accept_dns, "no") &&
		    strcmp(opt_accept_dns, "0")) {
			fprintf(stderr, "vpnctl up: --accept-dns is true or false\n");
			json_decref(body);
			return 2;
		}
		json_object_set_new(body, "accept_dns", json_boolean(on));
	}
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!text)
		return 1;
	/* The daemon checks the same way; saying it here names the option. */
	if (control_parse_up(text, strlen(text), &check, err, sizeof(err))) {
		fprintf(stderr, "vpnctl up: %s\n", err);
		free(text);
		return 2;
	}
	up_request_wipe(&check);
	rc = ctl("POST", VPND_CTL_UP, text, UP_TIMEOUT_MS, &status, &o);
	free(text);
	if (rc)
		return rc;
	if (status != 200)
		return fail(status, o);
	state = str(o, "state");
	if (!strcmp(state, "running")) {
		printf("Running as %s (", str(o, "name"));
		print_ips(json_object_get(o, "ips"), stdout, ", ");
		printf(").\n");
		rc = 0;
	} else if (!strcmp(state, "needs-approval")) {
		const char *cmd = str(o, "approve_command");
		printf("Waiting for approval. An admin must run:\n\n    %s\n\n"
		       "This node joins as soon as that is done; no other command is needed.\n",
		       *cmd ? cmd : "coord nodes approve <name>");
		rc = 0;
	} else if (!strcmp(state, "expired")) {
		fprintf(stderr, "vpnctl: the node key of %s expired: run vpnctl up --auth-key KEY, or ask "
			"an admin to approve it again\n", str(o, "name"));
		rc = 1;
	} else {
		fprintf(stderr, "vpnctl: the node is %s: %s\n", state, str(o, "reason"));
		rc = 1;
	}
	json_decref(o);
	return rc;
}

static int cmd_down(void)
{
	json_t *o = NULL;
	int status = 0, rc = ctl("POST", VPND_CTL_DOWN, "{}", CTL_TIMEOUT_MS, &status, &o);

	if (rc)
		return rc;
	if (status != 200)
		return fail(status, o);
	printf("Stopped. Keys and registration are kept: `vpnctl up` rejoins.\n");
	json_decref(o);
	return 0;
}

static int cmd_logout(void)
{
	json_t *o = NULL, *told;
	int status = 0, rc = ctl("POST", VPND_CTL_LOGOUT, "{}", 30000, &status, &o);

	if (rc)
		return rc;
	if (status != 200)
		return fail(status, o);
	told = json_object_get(o, "coord_notified");
	printf("Logged out; this node's keys are deleted.\n");
	if (!json_is_true(told))
		printf("The coordination server could not be told: an admin may delete the node there.\n");
	json_decref(o);
	return 0;
}

static int get_status(json_t **out)
{
	int status = 0, rc = ctl("GET", VPND_CTL_STATUS, NULL, CTL_TIMEOUT_MS, &status, out);

	if (rc)
		return rc;
	if (status != 200)
		return fail(status, *out);
	if (!json_is_object(json_object_get(*out, "self"))) {
		fprintf(stderr, "vpnctl: vpnd's status has no \"self\"\n");
		json_decref(*out);
		return 1;
	}
	return 0;
}

static void human_bytes(json_int_t v, char *out, size_t size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double x = (double)v;
	int u = 0;

	while (x >= 1024 && u < 4) {
		x /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, size, "%lld B", (long long)v);
	else
		snprintf(out, size, "%.1f %s", x, units[u]);
}

static void human_ago(json_int_t t, char *out, size_t size)
{
	long long d = (long long)time(NULL) - (long long)t;

	if (!t)
		snprintf(out, size, "never");
	else if (d < 0)
		snprintf(out, size, "now");
	else if (d < 120)
		snprintf(out, size, "%llds ago", d);
	else if (d < 7200)
		snprintf(out, size, "%lldm ago", d / 60);
	else
		snprintf(out, size, "%lldh ago", d / 3600);
}

static json_int_t num(const json_t *o, const char *key)
{
	int64_t v = 0;

	return json_get_int(o, key, &v) ? 0 : (json_int_t)v;
}

static int cmd_status(void)
{
	json_t *o = NULL, *self, *peers, *p;
	struct table t;
	size_t i;
	int rc = get_status(&o);

	if (rc)
		return rc;
	if (opt_json)
		return print_json(o);
	self = json_object_get(o, "self");
	peers = json_object_get(o, "peers");
	printf("%s", *str(self, "name") ? str(self, "name") : "(no name)");
	if (json_array_size(json_object_get(self, "ips"))) {
		printf(" (");
		print_ips(json_object_get(self, "ips"), stdout, ", ");
		printf(")");
	}
	printf(": %s", str(self, "state"));
	if (*str(self, "reason"))
		printf(" - %s", str(self, "reason"));
	printf("\n");
	if (*str(self, "coord")) {
		print_coord(self);
		printf(": %s",
		       json_is_true(json_object_get(self, "coord_connected")) ? "connected" : "not connected");
		if (*str(self, "coord_error"))
			printf(" (%s)", str(self, "coord_error"));
		printf("\n");
	}
	if (!json_array_size(peers)) {
		if (!strcmp(str(self, "state"), "running"))
			printf("no peers yet\n");
		json_decref(o);
		return 0;
	}
	printf("\n");
	table_init(&t, 8);
	table_add(&t, "PEER", "IP", "ONLINE", "PATH", "ENDPOINT/RELAY", "HANDSHAKE", "RX", "TX");
	json_array_foreach(peers, i, p) {
		char hs[32], rx[32], tx[32];
		const char *ip = json_string_value(json_array_get(json_object_get(p, "ips"), 0));

		human_ago(num(p, "last_handshake"), hs, sizeof(hs));
		human_bytes(num(p, "rx_bytes"), rx, sizeof(rx));
		human_bytes(num(p, "tx_bytes"), tx, sizeof(tx));
		table_add(&t, str(p, "name"), ip ? ip : "",
			  json_is_true(json_object_get(p, "online")) ? "yes" : "no", str(p, "path"),
			  !strcmp(str(p, "path"), "relay") ? str(p, "relay") : str(p, "endpoint"), hs,
			  rx, tx);
	}
	table_print(&t, stdout);
	table_free(&t);
	json_decref(o);
	return 0;
}

static int cmd_ip(void)
{
	json_t *o = NULL, *ips, *v;
	size_t i;
	int rc, printed = 0;

	if (opt_4 && opt_6) {
		fprintf(stderr, "vpnctl ip: give -4 or -6, not both\n");
		return 2;
	}
	rc = get_status(&o);
	if (rc)
		return rc;
	ips = json_object_get(json_object_get(o, "self"), "ips");
	json_array_foreach(ips, i, v) {
		const char *s = json_string_value(v);
		int v6 = s && strchr(s, ':');

		if (!s || (opt_4 && v6) || (opt_6 && !v6))
			continue;
		printf("%s\n", s);
		printed++;
	}
	if (!printed) {
		fprintf(stderr, "vpnctl: this node has no %saddress yet: %s\n",
			opt_4 ? "IPv4 " : opt_6 ? "IPv6 " : "",
			!strcmp(str(json_object_get(o, "self"), "state"), "needs-approval")
				? "coord gives it one when an admin approves it"
				: "join with vpnctl up --coord URL");
		json_decref(o);
		return 1;
	}
	json_decref(o);
	return 0;
}

static double real(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : 0;
}

/* One line per reply; says when the path changes (relay -> direct is the upgrade). */
static int cmd_ping(void)
{
	char body[300], *end;
	const char *last = "";
	char last_buf[16] = "";
	long count = 4;
	int ok = 0;

	if (opt_count) {
		count = strtol(opt_count, &end, 10);
		if (*end || count < 1 || count > 100000) {
			fprintf(stderr, "vpnctl ping: -c takes a count from 1 to 100000\n");
			return 2;
		}
	}
	if (strlen(arg_peer) > 200 || strpbrk(arg_peer, "\"\\")) {
		fprintf(stderr, "vpnctl ping: '%s' is not a peer name or address\n", arg_peer);
		return 2;
	}
	snprintf(body, sizeof(body), "{\"peer\":\"%s\"}", arg_peer);
	for (long i = 0; i < count; i++) {
		json_t *o;
		int status, rc = ctl("POST", VPND_CTL_PING, body, CTL_TIMEOUT_MS, &status, &o);
		const char *path;

		if (rc)
			return rc;
		if (status == 504) {
			printf("no reply from %s within 3 s\n", arg_peer);
			json_decref(o);
			continue;
		}
		if (status != 200)
			return fail(status, o);
		path = str(o, "path");
		if (!strcmp(path, "direct"))
			printf("pong from %s via %s in %.2f ms\n", arg_peer, str(o, "endpoint"),
			       real(o, "rtt_ms"));
		else
			printf("pong from %s via relay %s in %.2f ms\n", arg_peer, str(o, "relay"),
			       real(o, "rtt_ms"));
		if (last[0] && strcmp(last, path))
			printf("path changed: %s -> %s%s\n", last, path,
			       !strcmp(path, "direct") ? " (upgraded)" : "");
		snprintf(last_buf, sizeof(last_buf), "%s", path);
		last = last_buf;
		ok++;
		json_decref(o);
		if (i + 1 < count)
			usleep(1000 * 1000);   /* pacing between pings, as ping(8) */
	}
	return ok ? 0 : 1;
}

static int cmd_netcheck(void)
{
	json_t *o, *relays, *r;
	int status, rc = ctl("GET", VPND_CTL_NETCHECK, NULL, CTL_TIMEOUT_MS, &status, &o);
	size_t i;

	if (rc)
		return rc;
	if (status != 200)
		return fail(status, o);
	if (opt_json)
		return print_json(o);
	printf("UDP: %s\n", json_is_true(json_object_get(o, "udp")) ? "yes" : "no");
	printf("IPv4: %s\n", *str(o, "ipv4") ? str(o, "ipv4") : "(none)");
	printf("IPv6: %s\n", *str(o, "ipv6") ? str(o, "ipv6") : "(none)");
	printf("mapping varies by destination (hard NAT): %s\n",
	       json_is_true(json_object_get(o, "mapping_varies_by_dest")) ? "yes" : "no");
	printf("preferred relay: %s\n", *str(o, "preferred_relay") ? str(o, "preferred_relay") : "(none)");
	relays = json_object_get(o, "relays");
	json_array_foreach(relays, i, r) {
		if (json_is_number(json_object_get(r, "latency_ms")))
			printf("  %s: %.2f ms\n", str(r, "name"), real(r, "latency_ms"));
		else
			printf("  %s: no answer\n", str(r, "name"));
	}
	json_decref(o);
	return 0;
}

/* The entries of a log answer, one line each; the last seq seen into *last. */
static void print_log(const json_t *o, uint64_t *last)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(o, "entries"), i, e) {
		const char *up = str(e, "upstream");

		printf("%s %-22s %-40s %-5s %-9s %s", str(e, "time"), str(e, "client"),
		       str(e, "name"), str(e, "type"), str(e, "outcome"), *up ? up : "-");
		if (*up)
			printf(" %lld ms", (long long)num(e, "latency_ms"));
		printf("\n");
		*last = (uint64_t)num(e, "seq");
	}
	fflush(stdout);
}

/* vpnctl dns log: the query log (enable/disable it; the last N; follow it). */
static int cmd_dns_log(void)
{
	char path[96], body[48];
	uint64_t last = 0;
	unsigned long n = 50;
	json_t *o;
	int status, rc;

	if (opt_enable || opt_disable) {
		snprintf(body, sizeof(body), "{\"size\":%s}", opt_disable ? "0" : opt_enable);
		if (opt_enable && (strspn(opt_enable, "0123456789") != strlen(opt_enable) ||
				   !*opt_enable || strlen(opt_enable) > 9)) {
			fprintf(stderr, "vpnctl dns log: --enable takes a number of entries\n");
			return 2;
		}
		rc = ctl("POST", VPND_CTL_DNS_LOG "?n=1", body, CTL_TIMEOUT_MS, &status, &o);
		if (rc)
			return rc;
		if (status != 200)
			return fail(status, o);
		printf("query log: %s (%lld entries)\n", opt_disable ? "off" : "on",
		       (long long)num(o, "capacity"));
		json_decref(o);
		return 0;
	}
	if (opt_lines) {
		char *end;

		n = strtoul(opt_lines, &end, 10);
		if (*end || !*opt_lines || n > RL_MAX) {
			fprintf(stderr, "vpnctl dns log: -n takes 1..%d\n", RL_MAX);
			return 2;
		}
	}
	for (;;) {
		snprintf(path, sizeof(path), "%s?n=%lu&after=%llu", VPND_CTL_DNS_LOG, last ? 0 : n,
			 (unsigned long long)last);
		rc = ctl("GET", path, NULL, CTL_TIMEOUT_MS, &status, &o);
		if (rc)
			return rc;
		if (status != 200)
			return fail(status, o);
		if (!last && !json_is_true(json_object_get(o, "enabled")))
			fprintf(stderr, "vpnctl: the query log is off (vpnctl dns log --enable N, or "
				"vpnd --dns-log N)\n");
		if (opt_json && !opt_follow)
			return print_json(o);
		if (opt_json) {
			json_t *e;
			size_t i;

			json_array_foreach(json_object_get(o, "entries"), i, e) {
				char *line = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);

				if (line)
					printf("%s\n", line);
				free(line);
				last = (uint64_t)num(e, "seq");
			}
			fflush(stdout);
		} else {
			print_log(o, &last);
		}
		if (!last)
			last = (uint64_t)num(o, "total");
		json_decref(o);
		if (!opt_follow)
			return 0;
		usleep(500000);   /* a poll: the log has no push */
	}
}

/* vpnctl dns stats: the resolver's counters. */
static int cmd_dns(void)
{
	static const char *const keys[] = { "local", "blocked", "cached", "forwarded", "stale",
					    "servfail", "formerr", "dropped", "bad_answers",
					    "tcp_queries", "cache_entries", "cache_evictions",
					    "zone_records" };
	json_t *o, *q, *ups, *u, *hist, *v;
	int status, rc = ctl("GET", VPND_CTL_DNS_STATS, NULL, CTL_TIMEOUT_MS, &status, &o);
	const char *k;
	size_t i;

	if (rc)
		return rc;
	if (status != 200)
		return fail(status, o);
	if (opt_json)
		return print_json(o);
	q = json_object_get(o, "queries");
	printf("resolver: %s\n", json_is_true(json_object_get(o, "running")) ? "running" : "stopped");
	printf("queries: A %lld, AAAA %lld, PTR %lld, other %lld\n", (long long)num(q, "a"),
	       (long long)num(q, "aaaa"), (long long)num(q, "ptr"), (long long)num(q, "other"));
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		printf("%s: %lld\n", keys[i], (long long)num(o, keys[i]));
	ups = json_object_get(o, "upstreams");
	json_array_foreach(ups, i, u) {
		long long answers = (long long)num(u, "answers");

		printf("upstream %s: %s, queries %lld, answers %lld, timeouts %lld, servfails %lld, "
		       "bad %lld, avg %lld ms", str(u, "addr"),
		       json_is_true(json_object_get(u, "up")) ? "up" : "down",
		       (long long)num(u, "queries"), answers, (long long)num(u, "timeouts"),
		       (long long)num(u, "servfails"), (long long)num(u, "bad"),
		       answers ? (long long)num(u, "latency_ms_sum") / answers : 0);
		if (json_object_get(u, "conn_errors"))
			printf(", tls errors %lld (certificate %lld)", (long long)num(u, "conn_errors"),
			       (long long)num(u, "verify_failures"));
		printf("\n");
	}
	hist = json_object_get(o, "latency_ms_le");
	printf("upstream latency (answers within ms):");
	json_object_foreach(hist, k, v)
		printf(" %s:%lld", k, (long long)json_integer_value(v));
	printf("\n");
	json_decref(o);
	return 0;
}

/* Options given that this subcommand does not take: bad usage. */
static int check_opts(const struct cmd *c)
{
	const struct { const char *name; int given; } given[] = {
		{ "coord", !!opt_coord }, { "auth-key", !!opt_auth_key },
		{ "hostname", !!opt_hostname }, { "pin", !!opt_pin }, { "json", opt_json },
		{ "4", opt_4 }, { "6", opt_6 }, { "count", !!opt_count },
		{ "accept-dns", !!opt_accept_dns }, { "lines", !!opt_lines },
		{ "follow", opt_follow }, { "enable", !!opt_enable }, { "disable", opt_disable },
	};

	for (size_t i = 0; i < sizeof(given) / sizeof(given[0]); i++) {
		char pat[16];
		size_t nl = strlen(given[i].name);
		const char *p = c->opts;
		int ok = 0;

		if (!given[i].given)
			continue;
		snprintf(pat, sizeof(pat), "%s", given[i].name);
		while ((p = strstr(p, pat))) {
			if ((p == c->opts || p[-1] == ' ') && (p[nl] == ' ' || !p[nl]))
				ok = 1;
			p += nl;
		}
		if (!ok) {
			fprintf(stderr, "vpnctl %s: does not take %s%s\n", c->name,
				nl == 1 ? "-" : "--", given[i].name);
			return -EINVAL;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const struct arg_opt opts[] = {
		{ "socket", &sock_path, NULL, 0 }, { "coord", &opt_coord, NULL, 0 },
		{ "auth-key", &opt_auth_key, NULL, 0 }, { "hostname", &opt_hostname, NULL, 0 },
		{ "pin", &opt_pin, NULL, 0 }, { "json", NULL, &opt_json, 0 },
		{ "ipv4", NULL, &opt_4, '4' }, { "ipv6", NULL, &opt_6, '6' },
		{ "count", &opt_count, NULL, 'c' }, { "accept-dns", &opt_accept_dns, NULL, 0 },
		{ "lines", &opt_lines, NULL, 'n' }, { "follow", NULL, &opt_follow, 'f' },
		{ "enable", &opt_enable, NULL, 0 }, { "disable", NULL, &opt_disable, 0 },
		{ "help", NULL, &opt_help, 'h' }, { NULL, NULL, NULL, 0 },
	};
	static const struct cmd dns_log_cmd = { "dns log", cmd_dns_log, "",
						"json lines follow enable disable" };
	char *words[4], err[256], accept_true[] = "--accept-dns=true";
	const struct cmd *c;
	int n;

	log_set_level(LOG_ERROR);
	/* --accept-dns alone means true; it takes =false as its only value form */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--accept-dns"))
			argv[i] = accept_true;
	n = args_parse(argc - 1, argv + 1, opts, words, 4, err, sizeof(err));
	if (n < 0) {
		fprintf(stderr, "vpnctl: %s\n", err);
		usage(stderr);
		return 2;
	}
	if (opt_help || (n == 1 && !strcmp(words[0], "help"))) {
		usage(stdout);
		return 0;
	}
	if (n == 0) {
		usage(stderr);
		return 2;
	}
	for (c = cmds; c->name; c++)
		if (!strcmp(c->name, words[0]))
			break;
	if (!c->name) {
		fprintf(stderr, "vpnctl: unknown command '%s'\n", words[0]);
		usage(stderr);
		return 2;
	}
	if (c->fn == cmd_ping && n == 2) {
		arg_peer = words[1];
	} else if (c->fn == cmd_ping) {
		fprintf(stderr, "vpnctl ping: takes one PEER (a name or tailnet address)\n");
		return 2;
	} else if (c->fn == cmd_dns) {
		if (n != 2 || (strcmp(words[1], "stats") && strcmp(words[1], "log"))) {
			fprintf(stderr, "vpnctl dns: takes 'stats' or 'log'\n");
			return 2;
		}
		if (!strcmp(words[1], "log"))
			c = &dns_log_cmd;
	} else if (n > 1) {
		fprintf(stderr, "vpnctl %s: unexpected argument '%s'\n", c->name, words[1]);
		return 2;
	}
	if (check_opts(c))
		return 2;
	if (*sock_path != '/') {
		fprintf(stderr, "vpnctl: --socket takes an absolute path\n");
		return 2;
	}
	return c->fn();
}
