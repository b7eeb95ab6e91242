/* test_keymap.c - unit tests for lib/keymap.c: put, get, del, growth, keys that share a
 * home slot, and a random walk checked against a plain array. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "meshvpn/keymap.h"

static void key_of(uint8_t key[KEYMAP_KEY_LEN], uint32_t i)
{
	memset(key, 0, KEYMAP_KEY_LEN);
	memcpy(key, &i, sizeof(i));
	key[31] = 0x5a;
}

static void test_keymap_put_get_del(void **state)
{
	struct keymap m;
	uint8_t a[KEYMAP_KEY_LEN], b[KEYMAP_KEY_LEN];
	int va, vb;

	(void)state;
	keymap_init(&m);
	key_of(a, 1);
	key_of(b, 2);
	assert_null(keymap_get(&m, a));           /* empty map, no table yet */
	assert_int_equal(keymap_del(&m, a), -ENOENT);
	assert_int_equal(keymap_put(&m, a, &va), 0);
	assert_int_equal(keymap_put(&m, b, &vb), 0);
	assert_int_equal(keymap_put(&m, a, &vb), -EEXIST);
	assert_ptr_equal(keymap_get(&m, a), &va); /* the refused put left the old value */
	assert_ptr_equal(keymap_get(&m, b), &vb);
	assert_int_equal(keymap_count(&m), 2);
	assert_int_equal(keymap_del(&m, a), 0);
	assert_null(keymap_get(&m, a));
	assert_ptr_equal(keymap_get(&m, b), &vb);
	assert_int_equal(keymap_del(&m, a), -ENOENT);
	assert_int_equal(keymap_count(&m), 1);
	keymap_free(&m);
	assert_null(keymap_get(&m, b));
}

static void test_keymap_grows(void **state)
{
	enum { N = 10000 };
	static uint8_t keys[N][KEYMAP_KEY_LEN];
	struct keymap m;

	(void)state;
	keymap_init(&m);
	for (uint32_t i = 0; i < N; i++) {
		key_of(keys[i], i);
		assert_int_equal(keymap_put(&m, keys[i], keys[i]), 0);
	}
	assert_int_equal(keymap_count(&m), N);
	assert_true(m.cap >= N + N / 3);   /* load stays at or below 3/4 */
	for (uint32_t i = 0; i < N; i++)
		assert_ptr_equal(keymap_get(&m, keys[i]), keys[i]);
	for (uint32_t i = 0; i < N; i += 2)
		assert_int_equal(keymap_del(&m, keys[i]), 0);
	for (uint32_t i = 0; i < N; i++)
		assert_true((keymap_get(&m, keys[i]) != NULL) == (i % 2 == 1));
	keymap_free(&m);
}

/* Keys equal in the first 8 bytes hash alike: one run, and deleting from its middle
 * must leave every later member reachable (backward shift). */
static void test_keymap_collisions(void **state)
{
	enum { N = 40 };
	static uint8_t keys[N][KEYMAP_KEY_LEN];
	struct keymap m;

	(void)state;
	keymap_init(&m);
	for (int i = 0; i < N; i++) {
		memset(keys[i], 0xab, KEYMAP_KEY_LEN);
		keys[i][20] = (uint8_t)i;
		assert_int_equal(keymap_put(&m, keys[i], keys[i]), 0);
	}
	for (int i = 0; i < N; i += 3) {
		assert_int_equal(keymap_del(&m, keys[i]), 0);
		for (int j = 0; j < N; j++)
			assert_true((keymap_get(&m, keys[j]) != NULL) == (j > i || j % 3 != 0));
	}
	keymap_free(&m);
}

static void test_keymap_matches_reference(void **state)
{
	struct keymap m;
	static uint8_t keys[2000][32];
	int present[2000] = { 0 };

	(void)state;
	keymap_init(&m);
	for (int i = 0; i < 2000; i++) {
		memset(keys[i], 0, 32);
		/* Structured keys that collide in the low bytes. */
		keys[i][0] = (uint8_t)(i % 7);
		keys[i][31] = (uint8_t)i;
		keys[i][30] = (uint8_t)(i >> 8);
	}
	srand(1);
	for (int step = 0; step < 20000; step++) {
		int i = rand() % 2000;
		if (present[i]) {
			assert_int_equal(keymap_del(&m, keys[i]), 0);
			present[i] = 0;
		} else {
			assert_int_equal(keymap_put(&m, keys[i], &present[i]), 0);
			present[i] = 1;
		}
		if (step % 1000 == 0)
			for (int j = 0; j < 2000; j++)
				assert_true((keymap_get(&m, keys[j]) != NULL) == present[j]);
	}
	for (int j = 0; j < 2000; j++)
		assert_true((keymap_get(&m, keys[j]) != NULL) == present[j]);
	keymap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keymap_put_get_del),
		cmocka_unit_test(test_keymap_grows),
		cmocka_unit_test(test_keymap_collisions),
		cmocka_unit_test(test_keymap_matches_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
