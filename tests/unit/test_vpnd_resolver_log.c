/* test_vpnd_resolver_log.c - the resolver's query log (vpnd/resolver_log.c): off by
 * default and then records nothing, wraps keeping the newest N oldest first, names cut
 * at 255 bytes, the cap refused, a resize keeps the sequence (for --follow), and the JSON
 * (the last n, only past `after`). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vpnd/resolver_log.h"

static void query(struct dns_query *q, const char *name, uint16_t type)
{
	memset(q, 0, sizeof(*q));
	q->qname.text_len = (uint16_t)strlen(name);
	memcpy(q->qname.text, name, q->qname.text_len + 1);
	q->qtype = type;
}

static void test_rl_off_by_default(void **state)
{
	struct resolver_log l;
	struct dns_query q;
	json_t *o;

	(void)state;
	rl_init(&l);
	query(&q, "a.example", DNS_TYPE_A);
	rl_add(&l, NULL, &q, RL_FORWARDED, NULL, 3);
	assert_int_equal(l.n, 0);
	assert_int_equal(l.seq, 0);
	assert_null(l.ring);
	o = resolver_log_json(&l, 0, 0);
	assert_true(json_is_false(json_object_get(o, "enabled")));
	assert_int_equal(json_array_size(json_object_get(o, "entries")), 0);
	json_decref(o);
	assert_int_equal(rl_resize(&l, RL_MAX + 1), -EINVAL);
	assert_int_equal(l.cap, 0);
	rl_free(&l);
}

static void test_rl_wraps(void **state)
{
	struct resolver_log l;
	struct dns_query q;
	struct addr_port cl = { .family = AF_INET, .port = 5353 }, up = { .family = AF_INET, .port = 53 };
	char name[32];
	json_t *o, *e;

	(void)state;
	rl_init(&l);
	assert_int_equal(rl_resize(&l, 3), 0);
	for (int i = 1; i <= 5; i++) {
		snprintf(name, sizeof(name), "n%d.example", i);
		query(&q, name, i == 5 ? DNS_TYPE_AAAA : DNS_TYPE_A);
		rl_add(&l, &cl, &q, i == 5 ? RL_FORWARDED : RL_BLOCKED, i == 5 ? &up : NULL, 7);
	}
	assert_int_equal(l.n, 3);
	assert_string_equal(rl_get(&l, 0)->name, "n3.example");
	assert_string_equal(rl_get(&l, 2)->name, "n5.example");
	assert_int_equal(rl_get(&l, 2)->seq, 5);
	o = resolver_log_json(&l, 2, 0);
	assert_int_equal(json_array_size(json_object_get(o, "entries")), 2);
	e = json_array_get(json_object_get(o, "entries"), 1);
	assert_string_equal(json_string_value(json_object_get(e, "name")), "n5.example");
	assert_string_equal(json_string_value(json_object_get(e, "type")), "AAAA");
	assert_string_equal(json_string_value(json_object_get(e, "outcome")), "forwarded");
	assert_string_equal(json_string_value(json_object_get(e, "upstream")), "0.0.0.0:53");
	assert_string_equal(json_string_value(json_object_get(e, "client")), "0.0.0.0:5353");
	assert_int_equal(json_integer_value(json_object_get(e, "latency_ms")), 7);
	json_decref(o);
	o = resolver_log_json(&l, 0, 4);   /* --follow: only what came after seq 4 */
	assert_int_equal(json_array_size(json_object_get(o, "entries")), 1);
	json_decref(o);
	/* resized: emptied, the sequence goes on */
	assert_int_equal(rl_resize(&l, 2), 0);
	assert_int_equal(l.n, 0);
	rl_add(&l, NULL, &q, RL_LOCAL, NULL, 0);
	assert_int_equal(rl_get(&l, 0)->seq, 6);
	assert_int_equal(rl_get(&l, 0)->client.family, 0);   /* TCP */
	assert_int_equal(rl_resize(&l, 0), 0);
	assert_null(l.ring);
	rl_free(&l);
}

static void test_rl_long_name(void **state)
{
	struct resolver_log l;
	struct dns_query q;

	(void)state;
	rl_init(&l);
	assert_int_equal(rl_resize(&l, 1), 0);
	memset(&q, 0, sizeof(q));
	memset(q.qname.text, 'x', 300 < sizeof(q.qname.text) - 1 ? 300 : sizeof(q.qname.text) - 1);
	q.qname.text_len = (uint16_t)strlen(q.qname.text);
	rl_add(&l, NULL, &q, RL_SERVFAIL, NULL, 0);
	assert_true(strlen(rl_get(&l, 0)->name) <= RL_NAME_MAX);
	assert_string_equal(rl_outcome_name(rl_get(&l, 0)->outcome), "servfail");
	assert_string_equal(rl_outcome_name(99), "?");
	rl_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rl_off_by_default),
		cmocka_unit_test(test_rl_wraps),
		cmocka_unit_test(test_rl_long_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
