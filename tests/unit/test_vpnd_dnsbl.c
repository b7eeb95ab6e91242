/* test_vpnd_dnsbl.c - vpnd's blocklist fetcher against a small HTTP server on loopback
 * playing coord: a new version is fetched with the node token and handed over loaded;
 * the same version is not fetched again; a failing fetch keeps the list and retries; a
 * damaged blob is refused. And dnsbl_url. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "dnsbl.h"
#include "meshvpn/http.h"
#include "support.h"

static struct {
	uv_loop_t loop;
	uv_tcp_t listener;
	struct http_server *srv;
	char url[64];
	uint64_t serial;       /* what "coord" serves */
	int fail, damage;      /* answer 503 / a blob with a flipped byte */
	int requests, auth_ok;
	char last_path[128];
	/* the callback's */
	struct blocklist *bl;
	int handed;
} E;

static void handler(struct http_request *req, void *arg)
{
	uint8_t key[BLOCKLIST_KEY_LEN] = { 1 }, *blob;
	const char *auth = http_request_header(req, "Authorization");
	struct blocklist_builder *b;
	char v[32];
	size_t len;

	E.requests++;
	E.auth_ok = auth && !strcmp(auth, "Bearer tok-1");
	snprintf(E.last_path, sizeof(E.last_path), "%s", req->path);
	if (E.fail) {
		http_respond_error(req, 503, "not yet");
		return;
	}
	snprintf(v, sizeof(v), "v=%llu", (unsigned long long)E.serial);
	if (strstr(req->path, v)) {
		http_respond(req, 304, NULL, NULL, NULL, 0);
		return;
	}
	b = blocklist_builder_new(key, 0);
	assert_int_equal(blocklist_builder_add(b, "ads.example", 11, BLOCKLIST_SUBDOMAINS), 0);
	assert_int_equal(blocklist_builder_compile(b, E.serial, &blob, &len), 0);
	blocklist_builder_free(b);
	if (E.damage)
		blob[len / 2] ^= 1;
	http_respond(req, 200, "application/octet-stream", NULL, blob, len);
	free(blob);
}

static void on_connection(uv_stream_t *l, int status)
{
	struct conn *c;

	if (status == 0 && conn_plain_accept(l, &c) == 0)
		http_server_add_conn(E.srv, c);
}

static void on_blocklist(void *arg, struct blocklist *bl)
{
	blocklist_free(E.bl);
	E.bl = bl;
	E.handed++;
}

static int setup(void **state)
{
	struct http_server_opts o = { 0 };
	struct sockaddr_in sa;
	int n = sizeof(sa);

	memset(&E, 0, sizeof(E));
	if (sodium_init() < 0)
		return -1;
	uv_loop_init(&E.loop);
	assert_int_equal(http_server_new(&E.loop, &o, handler, NULL, &E.srv), 0);
	assert_int_equal(conn_listen_tcp(&E.loop, "127.0.0.1:0", &E.listener, on_connection), 0);
	uv_tcp_getsockname(&E.listener, (struct sockaddr *)&sa, &n);
	snprintf(E.url, sizeof(E.url), "http://127.0.0.1:%u/", ntohs(sa.sin_port));
	return 0;
}

static int teardown(void **state)
{
	blocklist_free(E.bl);
	http_server_free(E.srv);
	uv_close((uv_handle_t *)&E.listener, NULL);
	support_run_drained(&E.loop, 5000);
	return 0;
}

static void test_url(void **state)
{
	char out[64];

	assert_int_equal(dnsbl_url("https://c:8443/", "/v1/dns/blocklist", out, sizeof(out)), 0);
	assert_string_equal(out, "https://c:8443/v1/dns/blocklist");
	assert_int_equal(dnsbl_url("https://c", "v1", out, sizeof(out)), -EINVAL);
	assert_int_equal(dnsbl_url("https://c", "/v1/dns/blocklist", out, 10), -ENAMETOOLONG);
}

static void test_fetch(void **state)
{
	struct dnsbl d;
	struct blocklist_info info;

	dnsbl_init(&d, &E.loop, on_blocklist, NULL);
	dnsbl_update(&d, 0, "/v1/dns/blocklist", E.url, NULL, "tok-1");
	support_run_for(&E.loop, 50);
	assert_int_equal(E.requests, 0);   /* version 0: nothing compiled yet */
	E.serial = 7;
	dnsbl_update(&d, 7, "/v1/dns/blocklist", E.url, NULL, "tok-1");
	SUPPORT_WAIT_FOR(&E.loop, E.handed == 1, 5000);
	assert_true(E.auth_ok);
	assert_string_equal(E.last_path, "/v1/dns/blocklist?v=0");
	blocklist_get_info(E.bl, &info);
	assert_int_equal(info.serial, 7);
	assert_int_equal(blocklist_match(E.bl, "x.ads.example", 13), BLOCKLIST_BLOCKED);
	/* the same version again: no request */
	dnsbl_update(&d, 7, "/v1/dns/blocklist", E.url, NULL, "tok-1");
	support_run_for(&E.loop, 50);
	assert_int_equal(E.requests, 1);
	/* coord fails: the list stays, a retry follows */
	E.fail = 1;
	E.serial = 8;
	dnsbl_update(&d, 8, "/v1/dns/blocklist", E.url, NULL, "tok-1");
	SUPPORT_WAIT_FOR(&E.loop, d.failed >= 1, 5000);
	assert_int_equal(E.handed, 1);
	assert_int_equal(d.have, 7);
	E.fail = 0;
	E.damage = 1;   /* ... then a damaged blob: refused, still the old list */
	SUPPORT_WAIT_FOR(&E.loop, d.failed >= 2, 10000);
	assert_int_equal(E.handed, 1);
	assert_string_equal(E.last_path, "/v1/dns/blocklist?v=7");
	E.damage = 0;
	SUPPORT_WAIT_FOR(&E.loop, E.handed == 2, 15000);
	blocklist_get_info(E.bl, &info);
	assert_int_equal(info.serial, 8);
	dnsbl_close(&d);
	support_run_for(&E.loop, 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url),
		cmocka_unit_test_setup_teardown(test_fetch, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
