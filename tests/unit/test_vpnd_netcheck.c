/* test_vpnd_netcheck.c - vpnd/netcheck.c with a fake clock and a fake network: STUN
 * servers that answer what the test says (a mapped address, or nothing), requests caught
 * by the send callback. Checks: the servers of a relay's `stun` list, a round that ends
 * when all answered or at the timeout, resends, answers from elsewhere or with an unknown
 * txid ignored, the report (UDP, reflexive v4/v6, varies by destination, relay round
 * trips, the preferred relay). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "meshvpn/keys.h"
#include "vpnd/netcheck.h"

#define MAX_SENT 64

struct sent {
	struct addr_port to;
	uint8_t buf[128];
	size_t len;
};

static struct sent sent[MAX_SENT];
static int n_sent;

static int fake_send(void *arg, const struct addr_port *to, const void *buf, size_t len)
{
	(void)arg;
	if (n_sent < MAX_SENT && len <= sizeof(sent[0].buf)) {
		sent[n_sent].to = *to;
		memcpy(sent[n_sent].buf, buf, len);
		sent[n_sent].len = len;
		n_sent++;
	}
	return 0;
}

static struct addr_port ap(const char *s)
{
	struct addr_port a;

	assert_int_equal(addr_parse(s, strlen(s), 0, &a), 0);
	return a;
}

static struct nm_relay relay(const char *name, const char *stun)
{
	struct nm_relay r;

	memset(&r, 0, sizeof(r));
	snprintf(r.name, sizeof(r.name), "%s", name);
	snprintf(r.stun, sizeof(r.stun), "%s", stun);
	return r;
}

/* The answer the server at `to` gives to the request sent[i], saying `mapped`. */
static int answer_flip(struct netcheck *nc, int i, const char *from, const char *mapped,
		       uint64_t now, int flip)
{
	struct stun_msg req;
	struct addr_port m = ap(mapped), f = ap(from);
	uint8_t buf[STUN_RESPONSE_MAX];
	int len;

	assert_int_equal(stun_parse(sent[i].buf, sent[i].len, &req), 0);
	if (flip)
		req.id[8] ^= 0xff;
	len = stun_build_binding_response(&req, &m, buf, sizeof(buf));
	assert_true(len > 0);
	return netcheck_input(nc, &f, buf, (size_t)len, now);
}

static int answer(struct netcheck *nc, int i, const char *from, const char *mapped, uint64_t now)
{
	return answer_flip(nc, i, from, mapped, now, 0);
}

static int sent_to(const char *s)
{
	struct addr_port a = ap(s);

	for (int i = n_sent - 1; i >= 0; i--)
		if (addr_equal(&sent[i].to, &a))
			return i;
	fail_msg("nothing sent to %s", s);
	return -1;
}

static void setup_round(struct netcheck *nc, struct nm_relay *r, int n)
{
	n_sent = 0;
	netcheck_init(nc, fake_send, NULL);
	assert_true(netcheck_start(nc, r, n, 1000) > 0);
}

static void test_servers_from_list(void **state)
{
	struct nm_relay r = relay("r1", "192.0.2.1:3478,[2001:db8::1]:3478,stun.example:3478,junk");
	struct addr_port out[4];

	(void)state;
	/* host names are skipped (no resolver here), junk ignored */
	assert_int_equal(netcheck_relay_servers(&r, out, 4), 2);
	assert_int_equal(out[0].family, AF_INET);
	assert_int_equal(out[1].family, AF_INET6);
	assert_int_equal(out[1].port, 3478);
	r = relay("r2", "");
	assert_int_equal(netcheck_relay_servers(&r, out, 4), 0);
}

static void test_easy_nat(void **state)
{
	struct nm_relay r[2] = { relay("r1", "192.0.2.1:3478,[2001:db8::1]:3478"),
				 relay("r2", "192.0.2.2:3478") };
	struct netcheck nc;

	(void)state;
	setup_round(&nc, r, 2);
	assert_int_equal(n_sent, 3);
	assert_int_equal(answer(&nc, sent_to("192.0.2.1:3478"), "192.0.2.1:3478", "198.51.100.20:41641", 1004), 0);
	assert_int_equal(answer(&nc, sent_to("[2001:db8::1]:3478"), "[2001:db8::1]:3478",
				"[2001:db8::11]:41641", 1005), 0);
	/* the last answer completes the round */
	assert_int_equal(answer(&nc, sent_to("192.0.2.2:3478"), "192.0.2.2:3478", "198.51.100.20:41641", 1010), 1);
	assert_true(nc.last.done);
	assert_true(nc.last.udp);
	assert_false(nc.last.v4_varies);
	assert_true(addr_equal(&nc.last.v4, &(struct addr_port){ 0 }) == 0);
	assert_int_equal(nc.last.v4.port, 41641);
	assert_int_equal(nc.last.v6.family, AF_INET6);
	assert_int_equal(nc.last.n_relays, 2);
	assert_int_equal(nc.last.relays[0].rtt_us, 4000);
	assert_int_equal(nc.last.relays[1].rtt_us, 10000);
	assert_string_equal(nc.last.preferred, "r1");
	assert_int_equal(nc.responses, 3);
}

static void test_hard_nat_varies(void **state)
{
	struct nm_relay r[2] = { relay("r1", "192.0.2.1:3478"), relay("r2", "192.0.2.2:3478") };
	struct netcheck nc;

	(void)state;
	setup_round(&nc, r, 2);
	answer(&nc, sent_to("192.0.2.1:3478"), "192.0.2.1:3478", "198.51.100.21:50410", 1020);
	assert_int_equal(answer(&nc, sent_to("192.0.2.2:3478"), "192.0.2.2:3478", "198.51.100.21:4397", 1003), 1);
	assert_true(nc.last.v4_varies);
	assert_string_equal(nc.last.preferred, "r2");
}

static void test_no_udp_timeout_and_resend(void **state)
{
	struct nm_relay r[1] = { relay("r1", "192.0.2.1:3478") };
	struct netcheck nc;

	(void)state;
	setup_round(&nc, r, 1);
	assert_int_equal(n_sent, 1);
	assert_int_equal(netcheck_tick(&nc, 1000 + NETCHECK_RESEND_MS - 1), 0);
	assert_int_equal(n_sent, 1);
	assert_int_equal(netcheck_tick(&nc, 1000 + NETCHECK_RESEND_MS), 0);
	assert_int_equal(n_sent, 2);
	/* the resend carries the same transaction id */
	assert_memory_equal(sent[0].buf + 8, sent[1].buf + 8, STUN_TXID_LEN);
	assert_int_equal(netcheck_tick(&nc, 1000 + NETCHECK_TIMEOUT_MS), 1);
	assert_true(nc.last.done);
	assert_false(nc.last.udp);
	assert_string_equal(nc.last.preferred, "");
	assert_int_equal(nc.last.relays[0].rtt_us, 0);
	/* nothing more once the round is over */
	assert_int_equal(netcheck_tick(&nc, 1000 + NETCHECK_TIMEOUT_MS + 10000), 0);
}

static void test_foreign_answers_ignored(void **state)
{
	struct nm_relay r[1] = { relay("r1", "192.0.2.1:3478") };
	struct netcheck nc;
	uint8_t junk[40] = { 0x01, 0x01 };

	(void)state;
	setup_round(&nc, r, 1);
	/* right txid, wrong source: anyone can send to WireGuard's port */
	assert_int_equal(answer(&nc, 0, "203.0.113.9:3478", "198.51.100.66:1", 1001), 0);
	assert_int_equal(nc.responses, 0);
	assert_int_equal(nc.bad, 1);
	/* garbage */
	assert_int_equal(netcheck_input(&nc, &sent[0].to, junk, sizeof(junk), 1001), 0);
	assert_int_equal(nc.bad, 2);
	/* an answer to a request we did not send */
	assert_int_equal(answer_flip(&nc, 0, "192.0.2.1:3478", "198.51.100.66:1", 1001, 1), 0);
	assert_int_equal(nc.bad, 3);
	/* the real one is still taken */
	assert_int_equal(answer(&nc, 0, "192.0.2.1:3478", "198.51.100.20:41641", 1002), 1);
	assert_int_equal(nc.last.v4.port, 41641);
	/* and a duplicate afterwards changes nothing */
	assert_int_equal(answer(&nc, 0, "192.0.2.1:3478", "198.51.100.66:1", 1003), 0);
	assert_int_equal(nc.last.v4.port, 41641);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_servers_from_list),
		cmocka_unit_test(test_easy_nat),
		cmocka_unit_test(test_hard_nat_varies),
		cmocka_unit_test(test_no_udp_timeout_and_resend),
		cmocka_unit_test(test_foreign_answers_ignored),
	};

	keys_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
