/* test_vpnd_control.c - vpnd's pure pieces: the control API's `up` request checks (URL,
 * pin, hostname, auth key, types, unknown fields), prefs parse/save/load (0600, atomic),
 * endpoint text <-> sockaddr, the tailnet /48, local endpoint candidates, and the
 * netmap stream's reconnect backoff (1 s doubling to 30 s, with jitter). */
#include <arpa/inet.h>
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

#include "meshvpn/keys.h"
#include "meshvpn/log.h"
#include "vpnd/vpnd.h"

#define PIN "sha256:51f9de1d9e5e2b2a04fa5b1f733460b73845e7d1acc396d50c488eb5f0e1094c"

static int parse(const char *body, struct up_request *r, char *err, size_t errlen)
{
	memset(r, 0x5a, sizeof(*r));
	err[0] = 0;
	return control_parse_up(body, strlen(body), r, err, errlen);
}

static void expect_bad(const char *body, const char *needle)
{
	struct up_request r;
	char err[200];

	if (parse(body, &r, err, sizeof(err)) != -EINVAL)
		fail_msg("accepted: %s", body);
	if (needle && !strstr(err, needle))
		fail_msg("error for %s is '%s', wanted '%s'", body, err, needle);
}

static void test_vpnd_control_up_valid(void **state)
{
	struct up_request r;
	char err[200];

	(void)state;
	assert_int_equal(parse("{\"coord\":\"https://coord.example.net:8443\",\"pin\":\"" PIN "\","
			       "\"hostname\":\"My Laptop\",\"auth_key\":\"mvpn-auth-0123\"}",
			       &r, err, sizeof(err)), 0);
	assert_string_equal(r.coord, "https://coord.example.net:8443");
	assert_string_equal(r.pin, PIN);
	assert_string_equal(r.hostname, "My Laptop");
	assert_string_equal(r.auth_key, "mvpn-auth-0123");
	up_request_wipe(&r);
	assert_int_equal(r.auth_key[0], 0);

	/* Everything is optional: `vpnctl up` alone rejoins. */
	assert_int_equal(parse("{}", &r, err, sizeof(err)), 0);
	assert_string_equal(r.coord, "");
	assert_string_equal(r.pin, "");
	assert_string_equal(r.hostname, "");
	assert_string_equal(r.auth_key, "");
	assert_int_equal(r.accept_dns, -1);   /* as in prefs */

	/* --accept-dns and --accept-dns=false */
	assert_int_equal(parse("{\"accept_dns\":true}", &r, err, sizeof(err)), 0);
	assert_int_equal(r.accept_dns, 1);
	assert_int_equal(parse("{\"accept_dns\":false}", &r, err, sizeof(err)), 0);
	assert_int_equal(r.accept_dns, 0);

	/* IPv6 literal, default port, trailing slash, upper-case scheme. */
	assert_int_equal(parse("{\"coord\":\"https://[2001:db8::1]:8443\"}", &r, err, sizeof(err)), 0);
	assert_int_equal(parse("{\"coord\":\"https://198.51.100.1/\"}", &r, err, sizeof(err)), 0);
	assert_int_equal(parse("{\"coord\":\"HTTPS://coord\"}", &r, err, sizeof(err)), 0);
	/* The instances of one coord: a comma list, kept as written. */
	assert_int_equal(parse("{\"coord\":\"https://a:8443,https://b:8443\"}", &r, err, sizeof(err)),
			 0);
	assert_string_equal(r.coord, "https://a:8443,https://b:8443");
}

static void test_vpnd_control_up_bad_url(void **state)
{
	char body[600], longhost[400];

	(void)state;
	expect_bad("{\"coord\":\"http://coord.example.net\"}", "https://");
	expect_bad("{\"coord\":\"ftp://coord\"}", "https://");
	expect_bad("{\"coord\":\"coord.example.net:8443\"}", "https://");
	expect_bad("{\"coord\":\"https://\"}", "https://");
	expect_bad("{\"coord\":\"https://coord:0\"}", "https://");
	expect_bad("{\"coord\":\"https://coord:65536\"}", "https://");
	expect_bad("{\"coord\":\"https://coord:84x3\"}", "https://");
	expect_bad("{\"coord\":\"https://co rd\"}", "https://");
	expect_bad("{\"coord\":\"https://[2001:db8::1\"}", "https://");
	expect_bad("{\"coord\":\"unix:/run/coord.sock\"}", "https://");
	expect_bad("{\"coord\":\"https://coord/api\"}", "no path");
	expect_bad("{\"coord\":\"\"}", "empty");
	expect_bad("{\"coord\":\"https://a,,https://b\"}", "empty");
	expect_bad("{\"coord\":\"https://a,http://b\"}", "https://");
	memset(longhost, 'a', 300);
	longhost[300] = 0;
	snprintf(body, sizeof(body), "{\"coord\":\"https://%s\"}", longhost);
	expect_bad(body, "too long");
}

static void test_vpnd_control_up_bad_pin(void **state)
{
	(void)state;
	expect_bad("{\"pin\":\"sha256:51f9\"}", "pin");
	expect_bad("{\"pin\":\"md5:51f9de1d9e5e2b2a04fa5b1f733460b73845e7d1acc396d50c488eb5f0e1094c\"}", "pin");
	expect_bad("{\"pin\":\"sha256:zzf9de1d9e5e2b2a04fa5b1f733460b73845e7d1acc396d50c488eb5f0e1094c\"}", "pin");
	expect_bad("{\"pin\":\"51f9de1d9e5e2b2a04fa5b1f733460b73845e7d1acc396d50c488eb5f0e1094c\"}", "pin");
	expect_bad("{\"pin\":\"" PIN "00\"}", NULL);
	expect_bad("{\"pin\":42}", "string");
}

static void test_vpnd_control_up_hostname_too_long(void **state)
{
	struct up_request r;
	char body[200], name[80], err[200];

	(void)state;
	memset(name, 'h', 63);
	name[63] = 0;
	snprintf(body, sizeof(body), "{\"hostname\":\"%s\"}", name);
	assert_int_equal(parse(body, &r, err, sizeof(err)), 0);
	assert_int_equal(strlen(r.hostname), 63);
	name[63] = 'h';
	name[64] = 0;
	snprintf(body, sizeof(body), "{\"hostname\":\"%s\"}", name);
	expect_bad(body, "too long");
	expect_bad("{\"hostname\":\"a\\nb\"}", "control");
	expect_bad("{\"hostname\":\"a\\u0000b\"}", "JSON");
	expect_bad("{\"hostname\":\"\"}", "empty");
}

static void test_vpnd_control_up_bad_shapes(void **state)
{
	char body[400], key[200];

	(void)state;
	expect_bad("", "JSON");
	expect_bad("{", "JSON");
	expect_bad("[]", "object");
	expect_bad("\"up\"", NULL);
	expect_bad("{\"coord\":\"https://a\",\"coord\":\"https://b\"}", NULL);   /* duplicate key */
	expect_bad("{\"coord\":1}", "string");
	expect_bad("{\"coord\":null,\"bogus\":1}", "unknown field");
	expect_bad("{\"authkey\":\"x\"}", "unknown field");
	expect_bad("{\"auth_key\":\"has space\"}", "spaces");
	expect_bad("{\"auth_key\":\"tab\\there\"}", "spaces");
	expect_bad("{\"auth_key\":true}", "string");
	expect_bad("{\"accept_dns\":\"yes\"}", "true or false");
	expect_bad("{\"accept_dns\":1}", "true or false");
	memset(key, 'k', 129);
	key[129] = 0;
	snprintf(body, sizeof(body), "{\"auth_key\":\"%s\"}", key);
	expect_bad(body, "too long");
	/* A body bigger than the server takes. */
	{
		char *big = malloc(10000);
		struct up_request r;
		char err[200];

		assert_non_null(big);
		memset(big, ' ', 9999);
		big[0] = '{';
		big[9998] = '}';
		big[9999] = 0;
		assert_int_equal(control_parse_up(big, 9999, &r, err, sizeof(err)), -EINVAL);
		free(big);
	}
}

static void test_vpnd_prefs_round_trip(void **state)
{
	char dir[] = "/tmp/test_vpnd_prefs.XXXXXX", path[256];
	struct vpnd_prefs p, q;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(prefs_load(dir, &q), -ENOENT);
	memset(&p, 0, sizeof(p));
	strcpy(p.coord, "https://198.51.100.1:8443");
	strcpy(p.pin, PIN);
	strcpy(p.hostname, "alpha");
	strcpy(p.token, "mvpn-node-0123456789");
	p.node_state = NODE_STATUS_RUNNING;
	strcpy(p.name, "alpha");
	strcpy(p.ip4, "100.64.0.1");
	strcpy(p.ip6, "fd7a:115c:a1e0::6440:1");
	p.want_up = 1;
	p.accept_dns = 1;
	assert_int_equal(prefs_save(dir, &p), 0);
	snprintf(path, sizeof(path), "%s/prefs", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/prefs.tmp", dir);
	assert_int_not_equal(access(path, F_OK), 0);
	memset(&q, 0x77, sizeof(q));
	assert_int_equal(prefs_load(dir, &q), 0);
	assert_memory_equal(&p, &q, sizeof(p));

	/* Overwritten in place (atomically), then removed. */
	p.want_up = 0;
	p.token[0] = 0;
	assert_int_equal(prefs_save(dir, &p), 0);
	assert_int_equal(prefs_load(dir, &q), 0);
	assert_int_equal(q.want_up, 0);
	assert_string_equal(q.token, "");
	assert_int_equal(prefs_remove(dir), 0);
	assert_int_equal(prefs_remove(dir), 0);
	assert_int_equal(prefs_load(dir, &q), -ENOENT);
	rmdir(dir);
}

static void test_vpnd_prefs_parse_rejects(void **state)
{
	static const char *const bad[] = {
		"", "{", "[]", "{\"want_up\":1}", "{\"coord\":5}", "{\"token\":[\"x\"]}",
		"{\"ip4\":\"100.100.100.100.100.100\"}", "{\"accept_dns\":\"yes\"}",
		"{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
	};
	struct vpnd_prefs p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(p.coord, "unchanged");
		if (prefs_parse(bad[i], strlen(bad[i]), &p) != -EINVAL)
			fail_msg("accepted prefs: %s", bad[i]);
		assert_string_equal(p.coord, "unchanged");
	}
	{
		const char *future = "{\"future\":{\"x\":1},\"want_up\":true}";

		assert_int_equal(prefs_parse(future, strlen(future), &p), 0);
	}
	assert_int_equal(p.want_up, 1);
	assert_string_equal(p.coord, "");
}

static void test_vpnd_ula48(void **state)
{
	struct in6_addr a, net;
	char text[INET6_ADDRSTRLEN];

	(void)state;
	assert_int_equal(inet_pton(AF_INET6, "fd67:236d:88:1:2:3:6440:1", &a), 1);
	vpnd_ula48(&a, &net);
	inet_ntop(AF_INET6, &net, text, sizeof(text));
	assert_string_equal(text, "fd67:236d:88::");
}

static void test_vpnd_local_endpoints(void **state)
{
	struct addr_port eps[NM_MAX_ENDPOINTS];
	struct in_addr self4;
	struct in6_addr self6;
	int n, seen6 = 0;

	(void)state;
	inet_pton(AF_INET, "100.64.0.9", &self4);
	inet_pton(AF_INET6, "fd7a:115c:a1e0::6440:9", &self6);
	n = vpnd_local_endpoints(NULL, &self4, &self6, 41641, eps, NM_MAX_ENDPOINTS);
	assert_true(n >= 0 && n <= NM_MAX_ENDPOINTS);
	for (int i = 0; i < n; i++) {
		char text[ADDR_TEXT_LEN];
		struct addr_port again;

		/* each one is what coord takes: "ip:port" that parses back */
		assert_int_equal(addr_format(&eps[i], text, sizeof(text)), 0);
		assert_int_equal(addr_parse(text, strlen(text), 0, &again), 0);
		assert_true(addr_equal(&again, &eps[i]));
		assert_int_equal(eps[i].port, 41641);
		if (eps[i].family == AF_INET) {
			uint32_t h = ntohl(eps[i].v4.s_addr);

			assert_false(seen6);   /* IPv4 first */
			assert_int_not_equal(h >> 24, 127);
			assert_int_not_equal(h & 0xffc00000u, 0x64400000u);
		} else {
			assert_int_equal(eps[i].family, AF_INET6);
			seen6 = 1;
			assert_false(IN6_IS_ADDR_LOOPBACK(&eps[i].v6));
			assert_false(IN6_IS_ADDR_LINKLOCAL(&eps[i].v6));
			assert_int_equal(eps[i].scope_id, 0);
			assert_memory_not_equal(eps[i].v6.s6_addr, self6.s6_addr, 6);
		}
		for (int j = 0; j < i; j++)
			assert_false(addr_equal(&eps[i], &eps[j]));
	}
	/* A cap of one holds. */
	assert_true(vpnd_local_endpoints(NULL, NULL, NULL, 1, eps, 1) <= 1);
}

static void test_vpnd_backoff(void **state)
{
	struct coordc cc;
	uint64_t base = CC_BACKOFF_MIN_MS, d, prev_max = 0;

	(void)state;
	coordc_init(&cc, uv_default_loop(), NULL, NULL, NULL);
	for (int i = 0; i < 12; i++) {
		d = line_stream_next_delay(&cc.ls);
		assert_true(d >= base * 3 / 4);
		assert_true(d <= base * 5 / 4);
		assert_true(d <= CC_BACKOFF_MAX_MS * 5 / 4);
		prev_max = d > prev_max ? d : prev_max;
		base = base * 2 > CC_BACKOFF_MAX_MS ? CC_BACKOFF_MAX_MS : base * 2;
	}
	assert_int_equal(cc.ls.backoff_ms, CC_BACKOFF_MAX_MS);
	assert_true(prev_max >= CC_BACKOFF_MAX_MS * 3 / 4);
	/* Not every delay the same: there is jitter. */
	{
		uint64_t first = line_stream_next_delay(&cc.ls);
		int differs = 0;

		for (int i = 0; i < 20 && !differs; i++)
			differs = line_stream_next_delay(&cc.ls) != first;
		assert_true(differs);
	}
	/* Refuses what it cannot stream to; closes cleanly. */
	assert_int_equal(coordc_start(&cc, "http://coord", NULL, "tok"), -EINVAL);
	assert_int_equal(coordc_start(&cc, "https://coord", "sha256:12", "tok"), -EINVAL);
	coordc_close(&cc);
	assert_int_equal(coordc_start(&cc, "https://coord", NULL, "tok"), -ESHUTDOWN);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(uv_default_loop()), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vpnd_control_up_valid),
		cmocka_unit_test(test_vpnd_control_up_bad_url),
		cmocka_unit_test(test_vpnd_control_up_bad_pin),
		cmocka_unit_test(test_vpnd_control_up_hostname_too_long),
		cmocka_unit_test(test_vpnd_control_up_bad_shapes),
		cmocka_unit_test(test_vpnd_prefs_round_trip),
		cmocka_unit_test(test_vpnd_prefs_parse_rejects),
		cmocka_unit_test(test_vpnd_ula48),
		cmocka_unit_test(test_vpnd_local_endpoints),
		cmocka_unit_test(test_vpnd_backoff),
	};

	log_set_level(LOG_ERROR);
	if (keys_init())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
