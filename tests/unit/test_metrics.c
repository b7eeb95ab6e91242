/* test_metrics.c - the Prometheus text builder: growth, heads, label escaping. The
 * listener is covered end to end (tests/e2e/coord.sh, tests/vm/join.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "meshvpn/metrics.h"

static void test_metrics_text_grows(void **state)
{
	struct metrics_text t = { 0 };
	char want[64];

	(void)state;
	for (int i = 0; i < 5000; i++)
		metrics_printf(&t, "m{peer=\"p%d\"} %d\n", i, i);
	assert_false(t.oom);
	assert_true(t.len > 4096 * 16);
	assert_int_equal(strlen(t.buf), t.len);
	assert_memory_equal(t.buf, "m{peer=\"p0\"} 0\n", 15);
	snprintf(want, sizeof(want), "m{peer=\"p4999\"} 4999\n");
	assert_string_equal(t.buf + t.len - strlen(want), want);
	free(t.buf);
}

static void test_metrics_head(void **state)
{
	struct metrics_text t = { 0 };

	(void)state;
	metrics_head(&t, "x_total", "counter", "Things.");
	metrics_head(&t, "y", "gauge", NULL);
	assert_string_equal(t.buf, "# HELP x_total Things.\n# TYPE x_total counter\n# TYPE y gauge\n");
	free(t.buf);
}

static void test_metrics_label(void **state)
{
	char buf[16];

	(void)state;
	assert_string_equal(metrics_label("laptop", buf, sizeof(buf)), "laptop");
	assert_string_equal(metrics_label("a\"b\\c\nd", buf, sizeof(buf)), "a\\\"b\\\\c\\nd");
	/* cut to fit, never half an escape */
	assert_string_equal(metrics_label("aaaaaaaaaaaaaa\"zz", buf, sizeof(buf)), "aaaaaaaaaaaaaa");
	assert_string_equal(metrics_label("aaaaaaaaaaaaa\"zz", buf, sizeof(buf)), "aaaaaaaaaaaaa\\\"");
	assert_string_equal(metrics_label("", buf, sizeof(buf)), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_text_grows),
		cmocka_unit_test(test_metrics_head),
		cmocka_unit_test(test_metrics_label),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
