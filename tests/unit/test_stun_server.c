/* test_stun_server.c - relay/stun_server.c on loopback (IPv4, IPv6, dual-stack): the
 * reflexive address comes back, classic and 420 answers, malformed and non-request
 * datagrams dropped and counted, the per-source rate limit; and relay/stun_limit.c as a
 * pure table with injected time (spoofed sources cannot be made on loopback). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "meshvpn/stun.h"
#include "relay/stun_limit.h"
#include "relay/stun_server.h"
#include "support.h"

static const uint8_t txid[STUN_TXID_LEN] = "0123456789a";

/* A UDP socket bound to ip:0 and connected to ip:port; -1 when the family is missing. */
static int client(const char *ip, const char *server_ip, uint16_t port, struct addr_port *local)
{
	char text[ADDR_TEXT_LEN];
	struct sockaddr_storage ss;
	struct addr_port a;
	socklen_t sl = sizeof(ss);
	int fd;

	snprintf(text, sizeof(text), strchr(ip, ':') ? "[%s]:0" : "%s:0", ip);
	assert_int_equal(addr_parse(text, strlen(text), ADDR_PORT0, &a), 0);
	addr_to_sockaddr(&a, &ss);
	fd = socket(a.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&ss, a.family == AF_INET ? sizeof(struct sockaddr_in) :
		 sizeof(struct sockaddr_in6)) < 0) {
		close(fd);
		return -1;
	}
	snprintf(text, sizeof(text), strchr(server_ip, ':') ? "[%s]:%u" : "%s:%u", server_ip, port);
	assert_int_equal(addr_parse(text, strlen(text), 0, &a), 0);
	addr_to_sockaddr(&a, &ss);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, a.family == AF_INET ?
				 sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss, local), 0);
	return fd;
}

static int got_reply(int fd, uint8_t *buf, size_t size, ssize_t *n)
{
	*n = recv(fd, buf, size, MSG_DONTWAIT);
	return *n >= 0;
}

/* Sends a request, runs the loop until the answer is there, parses it. */
static void exchange(uv_loop_t *loop, int fd, int fp, struct stun_msg *resp)
{
	uint8_t buf[256];
	ssize_t n = 0;
	int len = stun_build_binding_request(txid, fp, buf, sizeof(buf));

	assert_int_equal(send(fd, buf, (size_t)len, 0), len);
	SUPPORT_WAIT_FOR(loop, got_reply(fd, buf, sizeof(buf), &n), 2000);
	assert_int_equal(stun_parse(buf, (size_t)n, resp), 0);
	assert_memory_equal(stun_txid(resp), txid, STUN_TXID_LEN);
}

static void expect_mapped(uv_loop_t *loop, int fd, const struct addr_port *local)
{
	struct addr_port got;
	struct stun_msg r;

	exchange(loop, fd, 1, &r);
	assert_true(r.flags & STUN_HAS_FINGERPRINT);
	assert_int_equal(stun_response_mapped(&r, &got), 0);
	assert_memory_equal(&got, local, sizeof(got));
	exchange(loop, fd, 0, &r);
	assert_false(r.flags & STUN_HAS_FINGERPRINT);
}

/* A server on listen and a client socket from ip to it. */
struct fx {
	uv_loop_t loop;
	struct stun_server *s;
	int fd;
	struct addr_port local;
};

/* 0, or -1 when this host cannot (no IPv6): the caller skips. */
static int fx_start(struct fx *f, const char *listen, const char *ip)
{
	uv_loop_init(&f->loop);
	if (stun_server_start(&f->loop, listen, &f->s)) {
		uv_loop_close(&f->loop);
		return -1;
	}
	assert_int_not_equal(stun_server_port(f->s), 0);
	f->fd = client(ip, ip, stun_server_port(f->s), &f->local);
	assert_true(f->fd >= 0);
	return 0;
}

static void fx_end(struct fx *f)
{
	close(f->fd);
	stun_server_stop(f->s);
	loop_finish(&f->loop);
}

static void test_stun_server_ipv4(void **state)
{
	struct fx f;

	(void)state;
	assert_int_equal(fx_start(&f, "127.0.0.1:0", "127.0.0.1"), 0);
	expect_mapped(&f.loop, f.fd, &f.local);
	assert_int_equal(stun_server_stats(f.s)->requests, 2);
	assert_int_equal(stun_server_stats(f.s)->responses, 2);
	fx_end(&f);
}

static void test_stun_server_ipv6(void **state)
{
	struct fx f;

	(void)state;
	if (fx_start(&f, "[::1]:0", "::1"))
		skip();                        /* no IPv6 loopback here */
	expect_mapped(&f.loop, f.fd, &f.local);
	fx_end(&f);
}

/* One [::] socket: an IPv4 client hears its IPv4 address, not ::ffff:127.0.0.1. */
static void test_stun_server_dual_stack(void **state)
{
	uv_loop_t loop;
	struct stun_server *s;
	struct addr_port local;
	int fd;

	(void)state;
	uv_loop_init(&loop);
	assert_int_equal(stun_server_start(&loop, ":0", &s), 0);
	fd = client("127.0.0.1", "127.0.0.1", stun_server_port(s), &local);
	assert_true(fd >= 0);
	expect_mapped(&loop, fd, &local);
	close(fd);
	fd = client("::1", "::1", stun_server_port(s), &local);
	if (fd >= 0) {
		expect_mapped(&loop, fd, &local);
		close(fd);
	}
	stun_server_stop(s);
	loop_finish(&loop);
}

static void test_stun_server_bad_listen(void **state)
{
	uv_loop_t loop;
	struct stun_server *s, *s2;
	char text[32];

	(void)state;
	uv_loop_init(&loop);
	assert_int_equal(stun_server_start(&loop, "nonsense", &s), -EINVAL);
	assert_null(s);
	assert_int_equal(stun_server_start(&loop, "localhost:3478", &s), -EINVAL);
	assert_int_equal(stun_server_start(&loop, "127.0.0.1:0", &s), 0);
	snprintf(text, sizeof(text), "127.0.0.1:%u", stun_server_port(s));
	assert_int_equal(stun_server_start(&loop, text, &s2), -EADDRINUSE);
	stun_server_stop(s);
	loop_finish(&loop);
}

/* Garbage, a response and an indication get nothing; the next request is answered. */
static void test_stun_server_drops(void **state)
{
	struct fx f;
	struct stun_msg r;
	uint8_t buf[64];
	int fd, n;

	(void)state;
	assert_int_equal(fx_start(&f, "127.0.0.1:0", "127.0.0.1"), 0);
	fd = f.fd;
	assert_int_equal(send(fd, "hello", 5, 0), 5);
	assert_int_equal(send(fd, "", 0, 0), 0);
	n = stun_build_binding_request(txid, 1, buf, sizeof(buf));
	buf[n - 1] ^= 1;                       /* a bad FINGERPRINT */
	assert_int_equal(send(fd, buf, (size_t)n, 0), n);
	n = stun_build_binding_request(txid, 0, buf, sizeof(buf));
	buf[1] = 0x11;                         /* a Binding indication */
	assert_int_equal(send(fd, buf, (size_t)n, 0), n);
	buf[0] = 0x01;
	buf[1] = 0x01;                         /* a success response */
	assert_int_equal(send(fd, buf, (size_t)n, 0), n);
	exchange(&f.loop, fd, 0, &r);
	assert_int_equal(r.type, STUN_BINDING_SUCCESS);
	assert_int_equal(stun_server_stats(f.s)->malformed, 3);
	assert_int_equal(stun_server_stats(f.s)->ignored, 2);
	assert_int_equal(stun_server_stats(f.s)->requests, 1);
	assert_int_equal(stun_server_stats(f.s)->responses, 1);
	fx_end(&f);
}

/* An RFC 3489 request gets MAPPED-ADDRESS under its own id; an unknown attribute a 420. */
static void test_stun_server_classic_and_420(void **state)
{
	struct fx f;
	struct stun_msg r;
	uint8_t buf[128];
	ssize_t n = 0;
	int fd;

	(void)state;
	assert_int_equal(fx_start(&f, "127.0.0.1:0", "127.0.0.1"), 0);
	fd = f.fd;
	memcpy(buf, "\x00\x01\x00\x00" "ABCDEFGHIJKLMNOP", 20);
	assert_int_equal(send(fd, buf, 20, 0), 20);
	SUPPORT_WAIT_FOR(&f.loop, got_reply(fd, buf, sizeof(buf), &n), 2000);
	assert_int_equal(n, 44);
	assert_memory_equal(buf, "\x01\x01\x00\x18" "ABCDEFGHIJKLMNOP" "\x00\x01\x00\x08\x00\x01", 26);
	assert_int_equal(buf[26] << 8 | buf[27], f.local.port);
	assert_memory_equal(buf + 28, &f.local.v4, 4);

	n = stun_build_binding_request(txid, 0, buf, sizeof(buf));
	memcpy(buf + 20, "\x00\x02\x00\x08\x00\x01\x00\x35\x7f\x00\x00\x01", 12); /* RESPONSE-ADDRESS */
	buf[3] = 12;
	assert_int_equal(send(fd, buf, 32, 0), 32);
	SUPPORT_WAIT_FOR(&f.loop, got_reply(fd, buf, sizeof(buf), &n), 2000);
	assert_int_equal(stun_parse(buf, (size_t)n, &r), 0);
	assert_int_equal(r.type, STUN_BINDING_ERROR);
	assert_int_equal(r.error_code, 420);
	fx_end(&f);
}

static size_t drain(int fd)
{
	uint8_t buf[256];
	ssize_t n;
	size_t count = 0;

	while (got_reply(fd, buf, sizeof(buf), &n))
		count++;
	return count;
}

/* 60 requests at once from 127.0.0.1: the burst is answered, the rest not; 127.0.0.2,
 * another source, is still answered. */
static void test_stun_server_rate_limit(void **state)
{
	const struct stun_stats *st;
	struct fx f;
	struct addr_port other;
	struct stun_msg r;
	uint8_t buf[64];
	size_t answered;
	int fd, fd2, n;

	(void)state;
	assert_int_equal(fx_start(&f, "127.0.0.1:0", "127.0.0.1"), 0);
	st = stun_server_stats(f.s);
	fd = f.fd;
	n = stun_build_binding_request(txid, 0, buf, sizeof(buf));
	for (int i = 0; i < 60; i++)
		assert_int_equal(send(fd, buf, (size_t)n, 0), n);
	SUPPORT_WAIT_FOR(&f.loop, st->requests == 60, 2000);
	answered = drain(fd);
	assert_int_equal(answered, st->responses);
	/* 20/s refills one per 50 ms: a slow machine may earn a few while it reads. */
	assert_true(answered >= STUN_SERVER_BURST && answered <= STUN_SERVER_BURST + 5);
	assert_int_equal(st->rate_limited, 60 - answered);

	fd2 = client("127.0.0.2", "127.0.0.1", stun_server_port(f.s), &other);
	if (fd2 >= 0) {
		exchange(&f.loop, fd2, 0, &r);
		close(fd2);
	}
	fx_end(&f);
}

static struct addr_port src(const char *text)
{
	struct addr_port a;

	assert_int_equal(addr_parse(text, strlen(text), 0, &a), 0);
	return a;
}

static void test_stun_limit_bucket(void **state)
{
	static struct stun_limit l;
	struct addr_port a = src("192.0.2.1:1000"), a2 = src("192.0.2.1:2000"),
		b = src("192.0.2.2:1000"), v6 = src("[2001:db8::1]:1"), v6b = src("[2001:db8::2]:1"),
		v6c = src("[2001:db8:0:1::1]:1");
	int allowed = 0;

	(void)state;
	stun_limit_init(&l, 20, 40, 1);
	for (int i = 0; i < 100; i++)
		allowed += stun_limit_allow(&l, i % 2 ? &a : &a2, 1000);  /* the port does not matter */
	assert_int_equal(allowed, 40);
	assert_int_equal(stun_limit_allow(&l, &b, 1000), 1);
	assert_int_equal(stun_limit_allow(&l, &a, 1049), 0);
	assert_int_equal(stun_limit_allow(&l, &a, 1050), 1);          /* 50 ms = one token */
	assert_int_equal(stun_limit_allow(&l, &a, 1050), 0);
	allowed = 0;
	for (int i = 0; i < 100; i++)
		allowed += stun_limit_allow(&l, &a, 1000000);             /* refilled, capped */
	assert_int_equal(allowed, 40);
	/* One IPv6 /64 is one source. */
	allowed = 0;
	for (int i = 0; i < 30; i++)
		allowed += stun_limit_allow(&l, &v6, 5000) + stun_limit_allow(&l, &v6b, 5000);
	assert_int_equal(allowed, 40);
	assert_int_equal(stun_limit_allow(&l, &v6c, 5000), 1);
	assert_int_equal(stun_limit_used(&l), 4);
}

/* A million spoofed sources: the table stays at its size; an old source is evicted and a
 * live one keeps its bucket when the flood is spread over the table. */
static void test_stun_limit_bounded(void **state)
{
	static struct stun_limit l;
	const size_t cap = STUN_LIMIT_SETS * STUN_LIMIT_WAYS;
	struct addr_port a = src("198.51.100.1:1"), x;
	uint64_t now = 1;

	(void)state;
	stun_limit_init(&l, 20, 40, 7);
	for (int i = 0; i < 40; i++)
		assert_int_equal(stun_limit_allow(&l, &a, now), 1);
	assert_int_equal(stun_limit_allow(&l, &a, now), 0);
	memset(&x, 0, sizeof(x));
	x.family = AF_INET;
	x.port = 1;
	for (uint32_t i = 0; i < 1000000; i++) {
		x.v4.s_addr = htonl(0x0a000000u + i);
		now += i % 64 == 0;
		assert_int_equal(stun_limit_allow(&l, &x, now), 1);       /* each new: a full bucket */
		assert_true(stun_limit_used(&l) <= cap);
	}
	assert_int_equal(stun_limit_used(&l), cap);
	/* a was the stalest of its set long ago: it comes back as a new source. */
	assert_int_equal(stun_limit_allow(&l, &a, now), 1);
	/* The sources of the last millisecond or so are still there, with their buckets. */
	for (int i = 0; i < 39; i++)
		stun_limit_allow(&l, &x, now);
	assert_int_equal(stun_limit_allow(&l, &x, now), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stun_server_ipv4),
		cmocka_unit_test(test_stun_server_ipv6),
		cmocka_unit_test(test_stun_server_dual_stack),
		cmocka_unit_test(test_stun_server_bad_listen),
		cmocka_unit_test(test_stun_server_drops),
		cmocka_unit_test(test_stun_server_classic_and_420),
		cmocka_unit_test(test_stun_server_rate_limit),
		cmocka_unit_test(test_stun_limit_bucket),
		cmocka_unit_test(test_stun_limit_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
