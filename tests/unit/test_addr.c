/* test_addr.c - lib/addr.c: host:port splitting, endpoint parse/format round trips,
 * zones, port 0, sockaddr conversion. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "meshvpn/addr.h"

static void test_addr_split_hostport(void **state)
{
	char host[64];
	uint16_t port;

	(void)state;
	assert_int_equal(addr_split_hostport("[::1]:8443", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 8443);
	assert_int_equal(addr_split_hostport("127.0.0.1:8443", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8443);
	assert_int_equal(addr_split_hostport(":8443", host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(port, 8443);
	assert_int_equal(addr_split_hostport("0.0.0.0:0", host, sizeof(host), &port), 0);
	assert_int_equal(port, 0);
	assert_int_equal(addr_split_hostport("coord.example:65535", host, sizeof(host), &port), 0);
	assert_string_equal(host, "coord.example");
	assert_int_equal(port, 65535);

	assert_int_equal(addr_split_hostport("127.0.0.1", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(addr_split_hostport("127.0.0.1:", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(addr_split_hostport("127.0.0.1:65536", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(addr_split_hostport("127.0.0.1:-1", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(addr_split_hostport("127.0.0.1:80x", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(addr_split_hostport("::1:8443", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(addr_split_hostport("[::1]8443", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(addr_split_hostport("[::1:8443", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(addr_split_hostport("[]:8443", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(addr_split_hostport("[1.2.3.4]:8443", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(addr_split_hostport("a b:80", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(addr_split_hostport("", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(addr_split_hostport("averyveryverylonghostname:80", host, 8, &port),
			 -ENAMETOOLONG);
}

static void test_addr_parse_format(void **state)
{
	static const char *const good[] = {
		"192.0.2.1:41641", "[2001:db8::1]:41641", "198.51.100.7:1", "[::ffff:192.0.2.1]:65535",
	};
	static const char *const bad[] = {
		"", ":", "192.0.2.1", "192.0.2.1:", "192.0.2.1:0", "192.0.2.1:65536", "192.0.2.1:-1",
		"192.0.2.1:+5", "192.0.2.1:5x", "2001:db8::1:41641", "[2001:db8::1]", "[2001:db8::1:41641",
		"[192.0.2.1]:41641", "host.example:41641", "[]:1", "1.2.3.4.5:1", " 192.0.2.1:1",
		"[fe80::1%2]:41641", ":41641",
	};
	struct addr_port a, zero;
	char out[ADDR_TEXT_LEN];

	(void)state;
	memset(&zero, 0, sizeof(zero));
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(addr_parse(good[i], strlen(good[i]), 0, &a), 0);
		assert_int_equal(addr_format(&a, out, sizeof(out)), 0);
		assert_string_equal(out, good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (addr_parse(bad[i], strlen(bad[i]), 0, &a) != -EINVAL)
			fail_msg("accepted endpoint '%s'", bad[i]);
		assert_memory_equal(&a, &zero, sizeof(a));
	}
	/* len bounds the text: the rest is not read */
	assert_int_equal(addr_parse("192.0.2.1:41641trailing", 15, 0, &a), 0);
	assert_int_equal(a.port, 41641);
	assert_int_equal(addr_parse("192.0.2.1:4\0" "1", 13, 0, &a), -EINVAL);
	assert_int_equal(addr_parse("192.0.2.1:41641", 15, 0, &a), 0);
	assert_int_equal(addr_format(&a, out, 8), -ENOSPC);
	memset(&a, 0, sizeof(a));
	assert_int_equal(addr_format(&a, out, sizeof(out)), -EINVAL);
	assert_string_equal(out, "");
}

static void test_addr_flags(void **state)
{
	struct addr_port a, b;
	char out[ADDR_TEXT_LEN];

	(void)state;
	assert_int_equal(addr_parse("[fe80::1%7]:51820", 17, ADDR_ZONE, &a), 0);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(a.scope_id, 7);
	assert_int_equal(addr_format(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "[fe80::1%7]:51820");
	assert_int_equal(addr_parse("[fe80::1%lo]:51820", 18, ADDR_ZONE, &a), 0);
	assert_int_equal(a.scope_id, 1);           /* loopback is index 1 */
	assert_int_equal(addr_parse("[fe80::1%]:51820", 16, ADDR_ZONE, &a), -EINVAL);
	assert_int_equal(addr_parse("[fe80::1%99999999999]:1", 23, ADDR_ZONE, &a), -EINVAL);
	assert_int_equal(addr_parse("192.0.2.1:0", 11, 0, &a), -EINVAL);
	assert_int_equal(addr_parse("192.0.2.1:0", 11, ADDR_PORT0, &a), 0);
	assert_int_equal(a.port, 0);

	assert_int_equal(addr_parse("[2001:db8::1]:5", 15, 0, &a), 0);
	b = a;
	assert_true(addr_equal(&a, &b));
	b.port = 6;
	assert_false(addr_equal(&a, &b));
	assert_int_equal(addr_parse("192.0.2.1:5", 11, 0, &b), 0);
	assert_false(addr_equal(&a, &b));
}

static void test_addr_sockaddr(void **state)
{
	static const char *const texts[] = { "192.0.2.1:41641", "[2001:db8::1]:41641" };
	struct sockaddr_storage ss;
	struct addr_port a, b;

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(addr_parse(texts[i], strlen(texts[i]), 0, &a), 0);
		addr_to_sockaddr(&a, &ss);
		assert_int_equal(ss.ss_family, a.family);
		assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss, &b), 0);
		assert_memory_equal(&a, &b, sizeof(a));
	}
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss, &b), -EAFNOSUPPORT);
	assert_int_equal(b.family, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_split_hostport),
		cmocka_unit_test(test_addr_parse_format),
		cmocka_unit_test(test_addr_flags),
		cmocka_unit_test(test_addr_sockaddr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
