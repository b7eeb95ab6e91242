/* test_storm_stats.c - tests/tools/storm_stats (nodesim's storm phase): when a node is
 * judged to have had each change, from deltas and from full/resume lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../tools/storm_stats.h"

/* Two nodes; node 0 posts (not timed). */
static void setup2(struct storm_stats *st)
{
	assert_int_equal(storm_stats_init(st, 2, 0), 0);
}

static void test_storm_deltas(void **state)
{
	struct storm_stats st;

	(void)state;
	setup2(&st);
	assert_int_equal(storm_stats_post(&st, 1.0), 0);
	storm_stats_answered(&st, 0, 1, 1.01);
	storm_stats_delta(&st, 1, 0, 1.2);
	storm_stats_delta(&st, 0, 0, 1.1);   /* the poster's own: no sample */
	storm_stats_finish(&st);
	assert_int_equal(st.samples, 1);
	assert_true(storm_stats_quantile(&st, 0.99) >= 199 && storm_stats_quantile(&st, 0.99) <= 200);
	assert_int_equal(storm_stats_undelivered(&st), 0);
	storm_stats_free(&st);
}

/* A change answered before the GET left is in the full line; the newest ones posted
 * before the line came are in it unless a delta for them follows. */
static void test_storm_full_holds_changes(void **state)
{
	struct storm_stats st;

	(void)state;
	setup2(&st);
	storm_stats_post(&st, 1.0);
	storm_stats_answered(&st, 0, 1, 1.1);
	storm_stats_post(&st, 2.0);      /* posted before the GET, answered after it */
	storm_stats_snapshot(&st, 1, 1.5, 3.0);
	assert_int_equal(st.samples, 1); /* change 0: 3.0 - 1.0 */
	assert_int_equal(st.nodes[1].level, 0);
	storm_stats_answered(&st, 1, 1, 2.5);
	storm_stats_post(&st, 4.0);
	storm_stats_answered(&st, 2, 1, 4.1);
	/* The first delta after the full is change 2: change 1 was in the full. */
	storm_stats_delta(&st, 1, 2, 4.5);
	assert_int_equal(st.samples, 3);
	assert_int_equal(st.nodes[1].level, 2);
	assert_true(st.max_s > 1.99 && st.max_s < 2.01);   /* change 0 */
	assert_true(storm_stats_quantile(&st, 0.5) >= 999 && storm_stats_quantile(&st, 0.5) <= 1000);
	storm_stats_free(&st);
}

static void test_storm_delta_after_full_is_not_in_it(void **state)
{
	struct storm_stats st;

	(void)state;
	setup2(&st);
	storm_stats_post(&st, 1.0);
	storm_stats_snapshot(&st, 1, 0.9, 1.05);   /* the GET left before the post */
	storm_stats_answered(&st, 0, 1, 1.1);
	storm_stats_delta(&st, 1, 0, 1.3);          /* so it came as a delta */
	storm_stats_finish(&st);
	assert_int_equal(st.samples, 1);
	assert_true(st.max_s > 0.29 && st.max_s < 0.31);
	storm_stats_free(&st);
}

/* No delta ever followed the line: it held every change answered; a failed post is not
 * timed; a change a node never had is counted. */
static void test_storm_finish_and_failed(void **state)
{
	struct storm_stats st;

	(void)state;
	assert_int_equal(storm_stats_init(&st, 3, -1), 0);
	storm_stats_post(&st, 1.0);
	storm_stats_answered(&st, 0, 0, 1.0);   /* coord down */
	storm_stats_post(&st, 2.0);
	storm_stats_snapshot(&st, 1, 1.9, 2.5);
	storm_stats_answered(&st, 1, 1, 2.6);
	storm_stats_finish(&st);
	assert_int_equal(st.samples, 1);         /* node 1, change 1 at 2.5 */
	assert_true(st.max_s > 0.49 && st.max_s < 0.51);
	assert_int_equal(storm_stats_ok_posts(&st), 1);
	assert_int_equal(storm_stats_undelivered(&st), 2);   /* nodes 0 and 2 never had change 1 */
	assert_true(storm_stats_quantile(&st, 0.5) >= 0);
	storm_stats_free(&st);
	assert_int_equal(storm_stats_init(&st, 1, -1), 0);
	assert_true(storm_stats_quantile(&st, 0.5) < 0);   /* no sample */
	storm_stats_free(&st);
}

static void test_storm_line_version(void **state)
{
	char epoch[17] = "x";
	long long v = -1;

	(void)state;
	assert_int_equal(storm_line_version("{\"type\":\"keepalive\",\"v\":42}", NULL, &v, epoch),
			 STORM_LINE_V);
	assert_int_equal(v, 42);
	assert_string_equal(epoch, "x");   /* only a full or resume sets the epoch */
	assert_int_equal(storm_line_version("{\"type\":\"full\",\"v\":7,\"epoch\":\"0123456789abcdef\",\"self\":{",
					    NULL, &v, epoch), STORM_LINE_V | STORM_LINE_EPOCH);
	assert_int_equal(v, 7);
	assert_string_equal(epoch, "0123456789abcdef");
	/* A long line: the version at its end. */
	assert_int_equal(storm_line_version("{\"type\":\"resume\",\"self\":{", "]],\"v\":9,\"epoch\":\"00000000000000ff\"}",
					    &v, epoch), STORM_LINE_V | STORM_LINE_EPOCH);
	assert_int_equal(v, 9);
	assert_string_equal(epoch, "00000000000000ff");
	/* Today's coord: no version; a bad epoch or "v" is not taken. */
	assert_int_equal(storm_line_version("{\"type\":\"full\",\"self\":{}}", NULL, &v, epoch), STORM_LINE_EPOCH);
	assert_string_equal(epoch, "");
	assert_int_equal(storm_line_version("{\"type\":\"full\",\"v\":\"a\",\"epoch\":\"0123\"}", NULL, &v, epoch),
			 STORM_LINE_EPOCH);
	assert_int_equal(v, 9);
	assert_string_equal(epoch, "");
	assert_int_equal(storm_line_version("{\"type\":\"online\",\"dev\":3}", NULL, &v, epoch), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_storm_deltas),
		cmocka_unit_test(test_storm_full_holds_changes),
		cmocka_unit_test(test_storm_delta_after_full_is_not_in_it),
		cmocka_unit_test(test_storm_finish_and_failed),
		cmocka_unit_test(test_storm_line_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
