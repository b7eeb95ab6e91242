/* test_dnspol.c - the DNS policy's syntax (lib/dnspol.c): names, servers (plain and
 * tls://, default ports, IPv6 only in brackets), record types and values, tags. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "meshvpn/dnspol.h"

static void test_dnspol_names(void **state)
{
	char out[DNSPOL_NAME_MAX + 1], long_label[80], long_name[400];

	(void)state;
	assert_int_equal(dnspol_name_canon("Service.Consul.", out, sizeof(out)), 0);
	assert_string_equal(out, "service.consul");
	assert_int_equal(dnspol_name_canon("_sip._tcp.example", out, sizeof(out)), 0);
	assert_int_equal(dnspol_name_canon("lan", out, sizeof(out)), 0);
	static const char *bad[] = { "", ".", "a..b", ".a", "-a.b", "a-.b", "a b", "a/b", "a*.b",
				     "a.b..", "x\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dnspol_name_canon(bad[i], out, sizeof(out)), -EINVAL);
	memset(long_label, 'a', 64);
	long_label[64] = 0;
	assert_int_equal(dnspol_name_canon(long_label, out, sizeof(out)), -EINVAL);
	long_label[63] = 0;
	assert_int_equal(dnspol_name_canon(long_label, out, sizeof(out)), 0);
	snprintf(long_name, sizeof(long_name), "%s.%s.%s.%s", long_label, long_label, long_label,
		 long_label);   /* 255 bytes */
	assert_int_equal(dnspol_name_canon(long_name, out, sizeof(out)), -EINVAL);
}

static void test_dnspol_servers(void **state)
{
	struct dnspol_server s;
	char c[DNSPOL_SERVER_TEXT];

	(void)state;
	assert_int_equal(dnspol_server_parse("192.0.2.1", 1, &s, c, sizeof(c)), 0);
	assert_string_equal(c, "192.0.2.1:53");
	assert_int_equal(s.addr.port, 53);
	assert_false(s.tls);
	assert_int_equal(dnspol_server_parse("[2001:db8::1]:5353", 0, &s, c, sizeof(c)), 0);
	assert_string_equal(c, "[2001:db8::1]:5353");
	assert_int_equal(dnspol_server_parse("tls://192.0.2.2#Dns.Example", 1, &s, c, sizeof(c)), 0);
	assert_string_equal(c, "tls://192.0.2.2:853#dns.example");
	assert_true(s.tls);
	assert_string_equal(s.tls_name, "dns.example");
	assert_int_equal(dnspol_server_parse("tls://[2001:db8::2]:8853#d.example", 1, &s, NULL, 0), 0);
	assert_int_equal(s.addr.port, 8853);
	static const char *bad[] = { "", "2001:db8::1", "192.0.2.1:0", "192.0.2.1:65536",
				     "host.example:53", "tls://192.0.2.2", "tls://192.0.2.2#",
				     "tls://192.0.2.2#bad name", "[fe80::1%1]:53", "192.0.2.1:53 ",
				     "udp://192.0.2.1", "[2001:db8::1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dnspol_server_parse(bad[i], 1, &s, c, sizeof(c)), -EINVAL);
	/* routes take no TLS */
	assert_int_equal(dnspol_server_parse("tls://192.0.2.2#d.example", 0, &s, c, sizeof(c)), -EINVAL);
}

static void test_dnspol_records(void **state)
{
	char v[DNSPOL_TXT_MAX + 1], txt[300];

	(void)state;
	assert_int_equal(dnspol_rr_parse("aaaa"), DNSPOL_RR_AAAA);
	assert_int_equal(dnspol_rr_parse("MX"), 0);
	assert_string_equal(dnspol_rr_name(DNSPOL_RR_CNAME), "CNAME");
	assert_int_equal(dnspol_value_canon(DNSPOL_RR_A, "192.0.2.5", v, sizeof(v)), 0);
	assert_int_equal(dnspol_value_canon(DNSPOL_RR_A, "2001:db8::5", v, sizeof(v)), -EINVAL);
	assert_int_equal(dnspol_value_canon(DNSPOL_RR_AAAA, "2001:DB8:0::5", v, sizeof(v)), 0);
	assert_string_equal(v, "2001:db8::5");
	assert_int_equal(dnspol_value_canon(DNSPOL_RR_CNAME, "Target.Example.", v, sizeof(v)), 0);
	assert_string_equal(v, "target.example");
	assert_int_equal(dnspol_value_canon(DNSPOL_RR_TXT, "v=spf1 -all", v, sizeof(v)), 0);
	assert_int_equal(dnspol_value_canon(DNSPOL_RR_TXT, "", v, sizeof(v)), -EINVAL);
	assert_int_equal(dnspol_value_canon(DNSPOL_RR_TXT, "a\tb", v, sizeof(v)), -EINVAL);
	memset(txt, 'x', 256);
	txt[256] = 0;
	assert_int_equal(dnspol_value_canon(DNSPOL_RR_TXT, txt, v, sizeof(v)), -EINVAL);
	txt[255] = 0;
	assert_int_equal(dnspol_value_canon(DNSPOL_RR_TXT, txt, v, sizeof(v)), 0);
	assert_true(dnspol_tag_valid("tag:kids"));
	assert_false(dnspol_tag_valid("tag:"));
	assert_false(dnspol_tag_valid("kids"));
	assert_false(dnspol_tag_valid("tag:Kids"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dnspol_names),
		cmocka_unit_test(test_dnspol_servers),
		cmocka_unit_test(test_dnspol_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
