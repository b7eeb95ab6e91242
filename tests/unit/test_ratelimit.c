/* test_ratelimit.c - lib/ratelimit (per-source token buckets in a bounded table) and
 * lib/log's bounded-rate lines. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "meshvpn/log.h"
#include "meshvpn/ratelimit.h"

static void test_ratelimit_burst_then_refill(void **state)
{
	struct ratelimit *rl;
	uint8_t k[RATELIMIT_KEY_LEN] = { 1 }, other[RATELIMIT_KEY_LEN] = { 2 };

	(void)state;
	assert_int_equal(sodium_init() >= 0, 1);
	assert_int_equal(ratelimit_new(64, 5, 60, &rl), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ratelimit_take(rl, k, 1000), 0);
	assert_int_equal(ratelimit_take(rl, k, 1000), -EAGAIN);
	assert_int_equal(ratelimit_take(rl, other, 1000), 0);     /* its own bucket */
	/* 60 a minute: one a second, whether asked every millisecond or not. */
	for (uint64_t t = 1001; t < 1999; t++)
		assert_int_equal(ratelimit_take(rl, k, t), -EAGAIN);
	assert_int_equal(ratelimit_take(rl, k, 2000), 0);
	/* Idle long enough: the whole burst again, no more. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(ratelimit_take(rl, k, 600000), 0);
	assert_int_equal(ratelimit_take(rl, k, 600000), -EAGAIN);
	ratelimit_free(rl);
	assert_int_equal(ratelimit_new(64, 0, 60, &rl), -EINVAL);
}

/* Sources that come and go in a table big enough for them do not wash out a busy
 * source's empty bucket; far more sources than slots only cost evictions, never memory. */
static void test_ratelimit_bounded_table(void **state)
{
	struct ratelimit *rl;
	uint8_t k[RATELIMIT_KEY_LEN] = { 0 }, busy[RATELIMIT_KEY_LEN] = { 0xaa };
	int refused = 0;

	(void)state;
	assert_int_equal(ratelimit_new(4096, 1, 1, &rl), 0);
	assert_int_equal(ratelimit_take(rl, busy, 0), 0);
	for (uint32_t i = 0; i < 100000; i++) {
		uint32_t v = i % 500;
		memcpy(k, &v, sizeof(v));
		ratelimit_take(rl, k, 1);
		refused += ratelimit_take(rl, busy, 1) == -EAGAIN;
	}
	assert_int_equal(refused, 100000);
	for (uint32_t i = 0; i < 100000; i++) {
		memcpy(k, &i, sizeof(i));
		ratelimit_take(rl, k, 2);
	}
	ratelimit_free(rl);
}

static void test_ratelimit_source_key(void **state)
{
	uint8_t a[RATELIMIT_KEY_LEN], b[RATELIMIT_KEY_LEN];

	(void)state;
	assert_int_equal(ratelimit_source_key("192.0.2.7:41641", a), 0);
	assert_int_equal(ratelimit_source_key("192.0.2.7:1", b), 0);
	assert_memory_equal(a, b, sizeof(a));                 /* the port is not the source */
	assert_int_equal(ratelimit_source_key("[::ffff:192.0.2.7]:9", b), 0);
	assert_memory_equal(a, b, sizeof(a));                 /* nor the socket's family */
	assert_int_equal(ratelimit_source_key("[2001:db8:1:2:aaaa::1]:443", a), 0);
	assert_int_equal(ratelimit_source_key("[2001:db8:1:2:bbbb::9]:443", b), 0);
	assert_memory_equal(a, b, sizeof(a));                 /* one /64 */
	assert_int_equal(ratelimit_source_key("[2001:db8:1:3::1]:443", b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(ratelimit_source_key("unix", a), -EINVAL);
}

static void test_log_limit(void **state)
{
	static struct log_limit lim = LOG_LIMIT_INIT("test", 3);
	unsigned long long before = log_suppressed_total();
	int allowed = 0;

	(void)state;
	for (int i = 0; i < 1000; i++)
		allowed += log_limit_allow(&lim);
	/* Within one second 3, across a second boundary at most 6. */
	assert_true(allowed >= 3 && allowed <= 6);
	assert_int_equal(log_suppressed_total() - before, 1000 - allowed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ratelimit_burst_then_refill),
		cmocka_unit_test(test_ratelimit_bounded_table),
		cmocka_unit_test(test_ratelimit_source_key),
		cmocka_unit_test(test_log_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
