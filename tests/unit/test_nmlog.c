/* test_nmlog.c - coord's netmap version log (coord/nmlog.c): the resume check (another
 * epoch, before the floor, from the future), the ring of nodes that left (wrap-around,
 * eviction raising the floor), placeholder stamps settled, the client's since parsed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nmlog.h"

static const char EPOCH[] = "0123456789abcdef";

struct seen {
	int64_t ids[64];
	int n;
};

static int collect(const struct nmlog_gone *g, void *arg)
{
	struct seen *s = arg;

	s->ids[s->n++] = g->id;
	return 0;
}

static void test_nmlog_check(void **state)
{
	struct nmlog l;

	(void)state;
	assert_int_equal(nmlog_init(&l, "0123", 0, 4), -EINVAL);
	assert_int_equal(nmlog_init(&l, "0123456789ABCDEF", 0, 4), -EINVAL);
	assert_int_equal(nmlog_init(&l, EPOCH, 10, 4), 0);
	assert_int_equal(nmlog_check(&l, EPOCH, 10, 20), 0);
	assert_int_equal(nmlog_check(&l, EPOCH, 20, 20), 0);
	assert_int_equal(nmlog_check(&l, EPOCH, 9, 20), -ESTALE);       /* before the floor */
	assert_int_equal(nmlog_check(&l, EPOCH, 21, 20), -ERANGE);      /* from the future */
	assert_int_equal(nmlog_check(&l, "fedcba9876543210", 15, 20), -EXDEV);   /* another tailnet */
	assert_int_equal(nmlog_check(&l, "", 15, 20), -EXDEV);
	assert_int_equal(nmlog_check(&l, NULL, 15, 20), -EXDEV);
	nmlog_raise_floor(&l, 15);
	assert_int_equal(nmlog_check(&l, EPOCH, 14, 20), -ESTALE);
	nmlog_raise_floor(&l, 12);   /* never lowered */
	assert_int_equal(l.floor, 15);
	nmlog_free(&l);
}

static void test_nmlog_ring_wraps_and_evicts(void **state)
{
	uint8_t key[KEY_LEN];
	struct seen s = { 0 };
	struct nmlog l;

	(void)state;
	memset(key, 7, sizeof(key));
	assert_int_equal(nmlog_init(&l, EPOCH, 0, 4), 0);
	for (int i = 1; i <= 4; i++)
		nmlog_add(&l, 10 * i, i, i % 2 ? key : NULL);
	assert_int_equal(l.n, 4);
	assert_int_equal(l.floor, 0);
	assert_int_equal(nmlog_foreach_after(&l, 15, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.ids[0], 2);
	assert_int_equal(s.ids[2], 4);
	/* Two more: the two oldest go, the floor moves to the newest dropped (20). */
	nmlog_add(&l, 50, 5, key);
	nmlog_add(&l, 60, 6, key);
	assert_int_equal(l.n, 4);
	assert_int_equal(l.floor, 20);
	assert_int_equal(nmlog_check(&l, EPOCH, 19, 60), -ESTALE);
	assert_int_equal(nmlog_check(&l, EPOCH, 20, 60), 0);
	s.n = 0;
	assert_int_equal(nmlog_foreach_after(&l, 20, collect, &s), 0);
	assert_int_equal(s.n, 4);   /* 3, 4, 5, 6: oldest first across the wrap */
	for (int i = 0; i < 4; i++)
		assert_int_equal(s.ids[i], 3 + i);
	/* Many times around: still the newest four, in order. */
	for (int i = 7; i <= 1000; i++)
		nmlog_add(&l, 10 * i, i, NULL);
	s.n = 0;
	nmlog_foreach_after(&l, 0, collect, &s);
	assert_int_equal(s.n, 4);
	assert_int_equal(s.ids[0], 997);
	assert_int_equal(s.ids[3], 1000);
	assert_int_equal(l.floor, 9960);
	nmlog_free(&l);
}

static int stop_at_two(const struct nmlog_gone *g, void *arg)
{
	(void)arg;
	return g->id == 2 ? -ENOKEY : 0;
}

static void test_nmlog_restamp_and_stop(void **state)
{
	struct seen s = { 0 };
	struct nmlog l;

	(void)state;
	assert_int_equal(nmlog_init(&l, EPOCH, 0, 8), 0);
	nmlog_add(&l, 5, 1, NULL);
	nmlog_add(&l, INT64_MAX - 1, 2, NULL);   /* a feed batch's placeholder */
	nmlog_add(&l, INT64_MAX - 1, 3, NULL);
	nmlog_foreach_after(&l, 100, collect, &s);
	assert_int_equal(s.n, 2);                  /* placeholders count as newest */
	nmlog_restamp(&l, INT64_MAX - 1, 42);
	s.n = 0;
	nmlog_foreach_after(&l, 41, collect, &s);
	assert_int_equal(s.n, 2);
	s.n = 0;
	nmlog_foreach_after(&l, 42, collect, &s);
	assert_int_equal(s.n, 0);
	assert_int_equal(nmlog_foreach_after(&l, 0, stop_at_two, NULL), -ENOKEY);
	nmlog_free(&l);
}

static void test_nmlog_parse_since(void **state)
{
	char e[NMLOG_EPOCH_LEN + 1];
	int64_t v = -1;

	(void)state;
	assert_int_equal(nmlog_parse_since("123", EPOCH, &v, e), 0);
	assert_int_equal(v, 123);
	assert_string_equal(e, EPOCH);
	assert_int_equal(nmlog_parse_since("0", EPOCH, &v, e), 0);
	assert_int_equal(v, 0);
	assert_int_equal(nmlog_parse_since("", EPOCH, &v, e), -EINVAL);
	assert_int_equal(nmlog_parse_since(NULL, EPOCH, &v, e), -EINVAL);
	assert_int_equal(nmlog_parse_since("-1", EPOCH, &v, e), -EINVAL);
	assert_int_equal(nmlog_parse_since("+1", EPOCH, &v, e), -EINVAL);
	assert_int_equal(nmlog_parse_since("1x", EPOCH, &v, e), -EINVAL);
	assert_int_equal(nmlog_parse_since("99999999999999999999", EPOCH, &v, e), -EINVAL);
	assert_int_equal(nmlog_parse_since("5", "0123456789abcdeg", &v, e), -EINVAL);
	assert_int_equal(nmlog_parse_since("5", "0123456789abcdef0", &v, e), -EINVAL);
	assert_int_equal(nmlog_parse_since("5", NULL, &v, e), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nmlog_check),
		cmocka_unit_test(test_nmlog_ring_wraps_and_evicts),
		cmocka_unit_test(test_nmlog_restamp_and_stop),
		cmocka_unit_test(test_nmlog_parse_since),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
