/* test_coord_urls.c - unit tests for lib/coord_urls.c: parse errors, duplicates dropped,
 * rotation to the next instance at once, back-off only after a whole failed round, a
 * host name expanded into its addresses, the ordered list for the other calls, and the
 * fetch that goes on to the next instance when one does not answer. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "meshvpn/coord_urls.h"

static void test_coord_urls_parse_ok(void **state)
{
	struct coord_urls l;
	char out[COORD_URLS_TEXT_MAX + 1];

	(void)state;
	assert_int_equal(coord_urls_parse("https://a:8443", &l, NULL, 0), 0);
	assert_int_equal(l.n_urls, 1);
	assert_int_equal(l.n_cand, 1);
	assert_string_equal(coord_urls_current_url(&l)->host, "a");
	assert_int_equal(coord_urls_current_url(&l)->port, 8443);
	assert_int_equal(coord_urls_parse(" https://a:8443 ,https://b, https://[::1]:9 ", &l, NULL, 0),
			 0);
	assert_int_equal(l.n_urls, 3);
	assert_string_equal(l.base[0], "https://a:8443");
	assert_string_equal(l.base[2], "https://[::1]:9");
	assert_int_equal(l.urls[1].port, 443);
	assert_int_equal(coord_urls_current_base(&l, 1, out, sizeof(out)), 0);
	assert_string_equal(out, "https://a:8443");
	assert_int_equal(coord_urls_needs_resolve(&l, &l.cand[0]), 1);
	assert_int_equal(coord_urls_needs_resolve(&l, &l.cand[2]), 0);
}

static void test_coord_urls_parse_errors(void **state)
{
	static const char *const bad[] = {
		"", ",", "https://a,", ",https://a", "https://a,,https://b", "http://a:80",
		"https://a/path", "unix:/run/x", "https://a:0", "https://a:99999", "a:8443",
		"https://a b", NULL,
	};
	struct coord_urls l;
	char err[160], big[1100];

	(void)state;
	for (int i = 0; bad[i]; i++) {
		err[0] = 0;
		assert_int_equal(coord_urls_parse(bad[i], &l, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != 0);
	}
	assert_int_equal(coord_urls_parse(NULL, &l, NULL, 0), -EINVAL);
	/* Nine distinct URLs: one too many. */
	assert_int_equal(coord_urls_parse("https://a,https://b,https://c,https://d,https://e,"
					  "https://f,https://g,https://h,https://i", &l, err,
					  sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	memcpy(big, "https://", 8);
	assert_int_equal(coord_urls_parse(big, &l, err, sizeof(err)), -EINVAL);
}

static void test_coord_urls_dedupe(void **state)
{
	struct coord_urls l;

	(void)state;
	assert_int_equal(coord_urls_parse("https://a:8443,https://A:8443,https://a:8444,"
					  "https://a:443,https://a", &l, NULL, 0), 0);
	assert_int_equal(l.n_urls, 3);
	assert_int_equal(l.n_cand, 3);
	assert_int_equal(l.urls[1].port, 8444);
	assert_int_equal(l.urls[2].port, 443);
	/* Nine written, eight distinct: fits. */
	assert_int_equal(coord_urls_parse("https://a,https://b,https://c,https://d,https://e,"
					  "https://f,https://g,https://h,https://a", &l, NULL, 0), 0);
	assert_int_equal(l.n_urls, 8);
}

static void test_coord_urls_rotation(void **state)
{
	struct coord_urls l;

	(void)state;
	assert_int_equal(coord_urls_parse("https://a,https://b,https://c", &l, NULL, 0), 0);
	/* The first instance works: it stays. */
	coord_urls_ok(&l);
	coord_urls_ok(&l);
	assert_string_equal(coord_urls_current_url(&l)->host, "a");
	assert_int_equal(l.moves, 0);
	/* a fails: b at once, then c at once; c failing too makes a whole round. */
	assert_int_equal(coord_urls_others_failed(&l), 0);
	assert_int_equal(coord_urls_fail(&l), 0);
	assert_string_equal(coord_urls_current_url(&l)->host, "b");
	assert_int_equal(coord_urls_fail(&l), 0);
	assert_string_equal(coord_urls_current_url(&l)->host, "c");
	assert_int_equal(coord_urls_others_failed(&l), 1);
	assert_int_equal(coord_urls_fail(&l), 1);
	assert_string_equal(coord_urls_current_url(&l)->host, "a");
	/* Past a whole round every further failure backs off... */
	assert_int_equal(coord_urls_fail(&l), 1);
	assert_string_equal(coord_urls_current_url(&l)->host, "b");
	/* ... until one works: that is a move, and a new round. */
	coord_urls_ok(&l);
	assert_int_equal(l.moves, 1);
	assert_int_equal(coord_urls_fail(&l), 0);
	assert_string_equal(coord_urls_current_url(&l)->host, "c");
	assert_int_equal(coord_urls_fail(&l), 0);
	assert_string_equal(coord_urls_current_url(&l)->host, "a");
	coord_urls_ok(&l);
	assert_int_equal(l.moves, 2);
	/* One instance alone: every failure is a whole round. */
	assert_int_equal(coord_urls_parse("https://a", &l, NULL, 0), 0);
	assert_int_equal(coord_urls_fail(&l), 1);
	assert_int_equal(coord_urls_fail(&l), 1);
	coord_urls_ok(&l);
	assert_int_equal(l.moves, 0);
}

static void test_coord_urls_expand(void **state)
{
	static const char addrs[4][COORD_URLS_ADDR_MAX] = { "192.0.2.1", "2001:db8::1",
							    "192.0.2.1", "192.0.2.2" };
	struct coord_urls l;
	char out[COORD_URLS_TEXT_MAX + 1];

	(void)state;
	assert_int_equal(coord_urls_parse("https://x:8443,https://y:9443", &l, NULL, 0), 0);
	assert_int_equal(coord_urls_expand(&l, 5, addrs, 1), -EINVAL);
	assert_int_equal(coord_urls_expand(&l, 0, addrs, 0), -EINVAL);
	/* x's three distinct addresses take x's place, y stays last. */
	assert_int_equal(coord_urls_expand(&l, 0, addrs, 4), 0);
	assert_int_equal(l.n_cand, 4);
	assert_string_equal(coord_urls_current(&l)->addr, "192.0.2.1");
	assert_string_equal(l.cand[1].addr, "2001:db8::1");
	assert_string_equal(l.cand[2].addr, "192.0.2.2");
	assert_int_equal(l.cand[3].url, 1);
	assert_int_equal(coord_urls_needs_resolve(&l, &l.cand[0]), 0);
	assert_int_equal(coord_urls_needs_resolve(&l, &l.cand[3]), 1);
	assert_int_equal(coord_urls_current_base(&l, 1, out, sizeof(out)), 0);
	assert_string_equal(out, "https://192.0.2.1:8443");
	assert_int_equal(coord_urls_current_base(&l, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "https://x:8443");
	/* Each address is an instance: a failure moves to the next at once. */
	assert_int_equal(coord_urls_fail(&l), 0);
	assert_int_equal(coord_urls_current_base(&l, 1, out, sizeof(out)), 0);
	assert_string_equal(out, "https://[2001:db8::1]:8443");
	assert_int_equal(coord_urls_fail(&l), 0);
	assert_int_equal(coord_urls_fail(&l), 0);
	assert_string_equal(coord_urls_current_url(&l)->host, "y");
	/* y resolving while current: the current becomes y's first address. */
	assert_int_equal(coord_urls_expand(&l, 1, addrs + 3, 1), 0);
	assert_string_equal(coord_urls_current(&l)->addr, "192.0.2.2");
	assert_int_equal(coord_urls_current(&l)->url, 1);
	assert_int_equal(coord_urls_fail(&l), 1);   /* all five failed */
	/* A whole failed round forgets the addresses: the names are resolved again. */
	assert_int_equal(l.n_cand, 2);
	assert_int_equal(coord_urls_current(&l)->url, 0);
	assert_int_equal(coord_urls_needs_resolve(&l, coord_urls_current(&l)), 1);
	assert_int_equal(coord_urls_fail(&l), 1);
	assert_int_equal(coord_urls_current(&l)->url, 1);
	/* Literal URLs stay as they are. */
	assert_int_equal(coord_urls_parse("https://192.0.2.9,https://z", &l, NULL, 0), 0);
	assert_int_equal(coord_urls_fail(&l), 0);
	assert_int_equal(coord_urls_expand(&l, 1, addrs, 2), 0);
	assert_int_equal(l.n_cand, 3);
	assert_int_equal(coord_urls_fail(&l), 0);
	assert_int_equal(coord_urls_fail(&l), 1);
	assert_int_equal(l.n_cand, 2);
	assert_int_equal(coord_urls_current(&l)->url, 0);
	assert_string_equal(coord_urls_current_url(&l)->host, "192.0.2.9");
}

/* However many addresses names have, the candidates stay within COORD_URLS_CAND_MAX and
 * every URL keeps at least its one place. */
static void test_coord_urls_expand_bounded(void **state)
{
	char addrs[COORD_URLS_CAND_MAX + 8][COORD_URLS_ADDR_MAX];
	struct coord_urls l;

	(void)state;
	for (int i = 0; i < COORD_URLS_CAND_MAX + 8; i++)
		snprintf(addrs[i], sizeof(addrs[i]), "192.0.2.%d", i + 1);
	assert_int_equal(coord_urls_parse("https://a,https://b,https://c", &l, NULL, 0), 0);
	assert_int_equal(coord_urls_expand(&l, 1, (const char (*)[COORD_URLS_ADDR_MAX])addrs,
					   COORD_URLS_CAND_MAX + 8), 0);
	assert_int_equal(l.n_cand, COORD_URLS_CAND_MAX);
	assert_int_equal(l.cand[0].url, 0);
	assert_int_equal(l.cand[COORD_URLS_CAND_MAX - 1].url, 2);
	assert_int_equal(coord_urls_expand(&l, 0, (const char (*)[COORD_URLS_ADDR_MAX])addrs, 20), 0);
	assert_int_equal(l.n_cand, COORD_URLS_CAND_MAX);
	assert_int_equal(l.cand[0].url, 0);
	assert_int_equal(l.cand[1].url, 1);   /* a had no room to grow: b holds it */
	assert_int_equal(l.cand[COORD_URLS_CAND_MAX - 1].url, 2);
	assert_string_equal(l.cand[0].addr, "192.0.2.1");
}

static void test_coord_urls_ordered(void **state)
{
	static const char addrs[1][COORD_URLS_ADDR_MAX] = { "192.0.2.7" };
	struct coord_urls l;
	char out[COORD_URLS_TEXT_MAX + 1], small[20];

	(void)state;
	assert_int_equal(coord_urls_parse("https://a:1,https://b:2,https://c:3", &l, NULL, 0), 0);
	assert_int_equal(coord_urls_ordered(&l, 1, out, sizeof(out)), 0);
	assert_string_equal(out, "https://a:1,https://b:2,https://c:3");
	coord_urls_fail(&l);
	assert_int_equal(coord_urls_ordered(&l, 1, out, sizeof(out)), 0);
	assert_string_equal(out, "https://b:2,https://a:1,https://c:3");
	/* By address: the instance in use first, its name again among the others. */
	assert_int_equal(coord_urls_expand(&l, 1, addrs, 1), 0);
	assert_int_equal(coord_urls_ordered(&l, 1, out, sizeof(out)), 0);
	assert_string_equal(out, "https://192.0.2.7:2,https://a:1,https://b:2,https://c:3");
	assert_int_equal(coord_urls_ordered(&l, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "https://b:2,https://a:1,https://c:3");
	assert_int_equal(coord_urls_ordered(&l, 0, small, sizeof(small)), -ENAMETOOLONG);
}

/* Nothing listens on the first two (a reserved port on loopback): the fetch goes on and
 * returns the last error when none answers. */
static void test_coord_urls_fetch_none(void **state)
{
	char *body = NULL;
	size_t len = 0;
	int status = -1;

	(void)state;
	assert_int_equal(coord_urls_fetch("https://127.0.0.1:1,https://127.0.0.1:2", NULL, "GET", "/",
					  NULL, NULL, 0, &status, &body, &len, 2000),
			 -ECONNREFUSED);
	assert_null(body);
	assert_int_equal(coord_urls_fetch(NULL, NULL, "GET", "/", NULL, NULL, 0, &status, &body,
					  &len, 2000), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_coord_urls_parse_ok),
		cmocka_unit_test(test_coord_urls_parse_errors),
		cmocka_unit_test(test_coord_urls_dedupe),
		cmocka_unit_test(test_coord_urls_rotation),
		cmocka_unit_test(test_coord_urls_expand),
		cmocka_unit_test(test_coord_urls_expand_bounded),
		cmocka_unit_test(test_coord_urls_ordered),
		cmocka_unit_test(test_coord_urls_fetch_none),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
