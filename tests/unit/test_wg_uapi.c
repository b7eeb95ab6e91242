/* test_wg_uapi.c - the userspace backend without wireguard-go: the UAPI text built and
 * parsed back, errno=N answers, malformed answers rejected, the socket exchange against
 * a fake server on a temporary Unix socket, child start failures, and wireguard-go's
 * output logged as logfmt (a fake wireguard-go: this program run again by the backend). */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "meshvpn/log.h"
#include "vpnd/wg_uapi.h"

static void fill_key(uint8_t key[WG_KEY_LEN], uint8_t base)
{
	for (unsigned i = 0; i < WG_KEY_LEN; i++)
		key[i] = (uint8_t)(base + i);
}

static void set_v4(struct wg_allowedip *a, const char *ip, uint8_t cidr)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &a->ip4), 1);
	a->cidr = cidr;
}

static void set_v6(struct wg_allowedip *a, const char *ip, uint8_t cidr)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, ip, &a->ip6), 1);
	a->cidr = cidr;
}

/* The set text with "set=1" dropped and "errno=0" added: what a get would answer. */
static char *as_get_answer(const char *set, size_t len, size_t *out_len)
{
	char *out;

	assert_true(len > 8 && !memcmp(set, "set=1\n", 6) && set[len - 1] == '\n');
	out = malloc(len + 16);
	assert_non_null(out);
	memcpy(out, set + 6, len - 7);
	*out_len = len - 7;
	*out_len += (size_t)sprintf(out + *out_len, "errno=0\n\n");
	return out;
}

static void test_wg_uapi_build_golden(void **state)
{
	struct wg_allowedip aips[2];
	struct wg_peer peers[2];
	struct wg_device dev;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&peers[0].endpoint;
	char *text, want[2048], hex[3][65];
	size_t len;

	memset(&dev, 0, sizeof(dev));
	memset(peers, 0, sizeof(peers));
	fill_key(dev.private_key, 1);
	fill_key(peers[0].public_key, 0x40);
	fill_key(peers[1].public_key, 0x80);
	dev.listen_port = 41641;
	dev.flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_REPLACE_PEERS;
	dev.peers = peers;
	dev.n_peers = 2;
	s4->sin_family = AF_INET;
	s4->sin_port = htons(51820);
	inet_pton(AF_INET, "192.0.2.1", &s4->sin_addr);
	peers[0].persistent_keepalive = 25;
	peers[0].flags = WG_PEER_HAS_ENDPOINT | WG_PEER_HAS_KEEPALIVE | WG_PEER_REPLACE_ALLOWEDIPS;
	set_v4(&aips[0], "100.64.0.2", 32);
	set_v6(&aips[1], "fd7a:115c:a1e0::2", 128);
	peers[0].allowedips = aips;
	peers[0].n_allowedips = 2;
	peers[1].flags = WG_PEER_REMOVE | WG_PEER_HAS_ENDPOINT;   /* remove wins */
	sodium_bin2hex(hex[0], 65, dev.private_key, 32);
	sodium_bin2hex(hex[1], 65, peers[0].public_key, 32);
	sodium_bin2hex(hex[2], 65, peers[1].public_key, 32);
	snprintf(want, sizeof(want),
		 "set=1\nprivate_key=%s\nlisten_port=41641\nreplace_peers=true\n"
		 "public_key=%s\nendpoint=192.0.2.1:51820\npersistent_keepalive_interval=25\n"
		 "replace_allowed_ips=true\nallowed_ip=100.64.0.2/32\n"
		 "allowed_ip=fd7a:115c:a1e0::2/128\npublic_key=%s\nremove=true\n\n",
		 hex[0], hex[1], hex[2]);
	assert_int_equal(wg_uapi_build_set(&dev, &text, &len), 0);
	assert_string_equal(text, want);
	assert_int_equal(len, strlen(want));
	free(text);

	/* IPv6 endpoints in brackets. */
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&peers[0].endpoint;

	memset(s6, 0, sizeof(*s6));
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(7);
	inet_pton(AF_INET6, "2001:db8::1", &s6->sin6_addr);
	dev.n_peers = 1;
	assert_int_equal(wg_uapi_build_set(&dev, &text, &len), 0);
	assert_non_null(strstr(text, "\nendpoint=[2001:db8::1]:7\n"));
	free(text);
	/* Link-local: the scope goes along as an interface index. */
	inet_pton(AF_INET6, "fe80::1", &s6->sin6_addr);
	s6->sin6_scope_id = 3;
	assert_int_equal(wg_uapi_build_set(&dev, &text, &len), 0);
	assert_non_null(strstr(text, "\nendpoint=[fe80::1%3]:7\n"));
	free(text);
}

static void test_wg_uapi_roundtrip(void **state)
{
	struct wg_device *dev = wg_device_new(), *got = wg_device_new();
	char *text, *answer;
	size_t len, alen;
	uint8_t pub[WG_KEY_LEN];

	assert_non_null(dev);
	fill_key(dev->private_key, 9);
	dev->listen_port = 1;
	dev->fwmark = 0xca6c;
	dev->flags = WG_DEVICE_HAS_PRIVATE_KEY | WG_DEVICE_HAS_LISTEN_PORT | WG_DEVICE_HAS_FWMARK;
	for (unsigned i = 0; i < 1000; i++) {
		struct wg_peer *p;
		struct wg_allowedip a;
		char ip[64];

		assert_int_equal(wg_device_add_peer(dev, &p), 0);
		fill_key(p->public_key, (uint8_t)i);
		p->public_key[31] = (uint8_t)(i >> 8);
		p->flags = WG_PEER_HAS_KEEPALIVE;
		p->persistent_keepalive = (uint16_t)(i % 5);
		if (i % 2) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&p->endpoint;

			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)(i + 1));
			s6->sin6_addr.s6_addr[0] = 0x20;
			s6->sin6_addr.s6_addr[15] = (uint8_t)i;
			p->flags |= WG_PEER_HAS_ENDPOINT;
		}
		snprintf(ip, sizeof(ip), "100.%u.%u.1", 64 + i / 256, i % 256);
		set_v4(&a, ip, 32);
		assert_int_equal(wg_peer_add_allowedip(p, &a), 0);
		snprintf(ip, sizeof(ip), "fd7a:115c:a1e0::%x", i);
		set_v6(&a, ip, 128);
		assert_int_equal(wg_peer_add_allowedip(p, &a), 0);
		set_v4(&a, "10.0.0.0", (uint8_t)(i % 33));
		assert_int_equal(wg_peer_add_allowedip(p, &a), 0);
	}
	assert_int_equal(wg_uapi_build_set(dev, &text, &len), 0);
	answer = as_get_answer(text, len, &alen);
	assert_int_equal(wg_uapi_parse_get(answer, alen, got), 0);
	assert_int_equal(got->n_peers, 1000);
	assert_true(got->flags & WG_DEVICE_HAS_PRIVATE_KEY);
	assert_memory_equal(got->private_key, dev->private_key, WG_KEY_LEN);
	/* wireguard-go does not say its public key: it is derived. */
	assert_true(got->flags & WG_DEVICE_HAS_PUBLIC_KEY);
	crypto_scalarmult_curve25519_base(pub, dev->private_key);
	assert_memory_equal(got->public_key, pub, WG_KEY_LEN);
	assert_int_equal(got->listen_port, 1);
	assert_int_equal(got->fwmark, 0xca6c);
	for (size_t i = 0; i < 1000; i++) {
		const struct wg_peer *a = &dev->peers[i], *b = &got->peers[i];

		assert_memory_equal(a->public_key, b->public_key, WG_KEY_LEN);
		assert_int_equal(a->persistent_keepalive, b->persistent_keepalive);
		assert_int_equal(a->flags, b->flags);
		if (a->flags & WG_PEER_HAS_ENDPOINT)
			assert_memory_equal(&a->endpoint, &b->endpoint, sizeof(struct sockaddr_in6));
		assert_int_equal(b->n_allowedips, 3);
		for (size_t j = 0; j < 3; j++) {
			assert_int_equal(a->allowedips[j].family, b->allowedips[j].family);
			assert_int_equal(a->allowedips[j].cidr, b->allowedips[j].cidr);
			assert_memory_equal(&a->allowedips[j].ip6, &b->allowedips[j].ip6,
					    a->allowedips[j].family == AF_INET ? 4 : 16);
		}
	}
	sodium_memzero(text, len);
	free(text);
	free(answer);
	wg_device_free(got);
	wg_device_free(dev);
}

static void test_wg_uapi_parse_wireguard_go(void **state)
{
	static const char answer[] =
		"private_key=e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a\n"
		"listen_port=51820\n"
		"public_key=b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33\n"
		"preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"protocol_version=1\n"
		"endpoint=[abcd:23::33%2]:51820\n"
		"last_handshake_time_sec=1700000000\n"
		"last_handshake_time_nsec=123456789\n"
		"tx_bytes=38333\n"
		"rx_bytes=2224\n"
		"persistent_keepalive_interval=0\n"
		"allowed_ip=192.168.4.4/32\n"
		"public_key=58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376\n"
		"endpoint=182.122.22.19:3233\n"
		"last_handshake_time_sec=0\n"
		"some_future_key=whatever\n"
		"allowed_ip=::/0\n"
		"errno=0\n"
		"\n";
	struct wg_device *dev = wg_device_new();
	const struct sockaddr_in *s4;
	const struct sockaddr_in6 *s6;

	assert_int_equal(wg_uapi_parse_get(answer, sizeof(answer) - 1, dev), 0);
	assert_int_equal(dev->listen_port, 51820);
	assert_int_equal(dev->n_peers, 2);
	assert_int_equal(dev->peers[0].public_key[0], 0xb8);
	assert_int_equal(dev->peers[0].last_handshake_sec, 1700000000);
	assert_int_equal(dev->peers[0].tx_bytes, 38333);
	assert_int_equal(dev->peers[0].rx_bytes, 2224);
	assert_int_equal(dev->peers[0].n_allowedips, 1);
	s6 = (const struct sockaddr_in6 *)&dev->peers[0].endpoint;
	assert_int_equal(s6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(s6->sin6_port), 51820);
	assert_int_equal(s6->sin6_scope_id, 2);
	s4 = (const struct sockaddr_in *)&dev->peers[1].endpoint;
	assert_int_equal(s4->sin_family, AF_INET);
	assert_int_equal(ntohs(s4->sin_port), 3233);
	assert_int_equal(s4->sin_addr.s_addr, inet_addr("182.122.22.19"));
	assert_int_equal(dev->peers[1].allowedips[0].family, AF_INET6);
	assert_int_equal(dev->peers[1].allowedips[0].cidr, 0);
	wg_device_free(dev);
}

static void test_wg_uapi_errno(void **state)
{
	static const struct {
		const char *text;
		int rc;
	} cases[] = {
		{ "errno=0\n\n", 0 },
		{ "errno=22\n\n", -22 },
		{ "errno=1\n\ntrailing", -1 },
		{ "errno=0\n", -EBADMSG },        /* cut short */
		{ "errno=0", -EBADMSG },
		{ "", -EBADMSG },
		{ "\n", -EBADMSG },               /* no errno */
		{ "errno=\n\n", -EBADMSG },
		{ "errno=-1\n\n", -EBADMSG },
		{ "errno=4096\n\n", -EBADMSG },
		{ "errno=99999999999999999999999\n\n", -EBADMSG },
		{ "errno=2x\n\n", -EBADMSG },
		{ "errno 0\n\n", -EBADMSG },
		{ "=0\nerrno=0\n\n", -EBADMSG },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(wg_uapi_parse_errno(cases[i].text, strlen(cases[i].text)),
				 cases[i].rc);
	/* A NUL inside a line. */
	assert_int_equal(wg_uapi_parse_errno("errno=0\0\n\n", 10), -EBADMSG);
	/* get answers carry errno too. */
	struct wg_device *dev = wg_device_new();

	assert_int_equal(wg_uapi_parse_get("errno=19\n\n", 10, dev), -19);
	wg_device_free(dev);
}

static void test_wg_uapi_parse_rejects(void **state)
{
	static const char *const bad[] = {
		"private_key=00\nerrno=0\n\n",
		"private_key=zz00000000000000000000000000000000000000000000000000000000000000\nerrno=0\n\n",
		"listen_port=65536\nerrno=0\n\n",
		"listen_port=+1\nerrno=0\n\n",
		"endpoint=1.2.3.4:5\nerrno=0\n\n",           /* before any peer */
		"allowed_ip=1.2.3.4/32\nerrno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"endpoint=1.2.3.4\nerrno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"endpoint=1.2.3.4:65536\nerrno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"endpoint=[::1:5\nerrno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"endpoint=::1:5\nerrno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"allowed_ip=1.2.3.4/33\nerrno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"allowed_ip=::/129\nerrno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"allowed_ip=1.2.3.4\nerrno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"allowed_ip=1.2.3.400/32\nerrno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"rx_bytes=18446744073709551616\nerrno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"last_handshake_time_sec=9223372036854775808\nerrno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"preshared_key=1\nerrno=0\n\n",
		"public_key=000000000000000000000000000000000000000000000000000000000000000\n"
		"errno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"no equals sign\nerrno=0\n\n",
		"public_key=0000000000000000000000000000000000000000000000000000000000000000\n"
		"errno=0\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct wg_device *dev = wg_device_new();

		assert_int_equal(wg_uapi_parse_get(bad[i], strlen(bad[i]), dev), -EBADMSG);
		wg_device_free(dev);
	}
}

/* -- a fake wireguard-go UAPI server on a temporary socket -- */

enum mode { ANSWER_SLOWLY, NEVER_ANSWER, HANG_UP_EARLY, BIG_ANSWER };

struct server {
	char dir[64], path[108];
	int lfd;
	enum mode mode;
	char got[256];
	pthread_t thread;
};

static void msleep(int ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = ms * 1000000L };

	nanosleep(&ts, NULL);
}

static void *serve(void *arg)
{
	struct server *s = arg;
	size_t len = 0;
	ssize_t n;
	int fd = accept(s->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	while (len + 1 < sizeof(s->got) && !strstr(s->got, "\n\n")) {
		n = read(fd, s->got + len, sizeof(s->got) - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
		s->got[len] = 0;
	}
	switch (s->mode) {
	case ANSWER_SLOWLY:
		/* In pieces, the blank line last: the reader must wait for it. */
		if (write(fd, "err", 3) < 0 || (msleep(30), write(fd, "no=0\n", 5)) < 0 ||
		    (msleep(30), write(fd, "\n", 1)) < 0)
			break;
		msleep(200);   /* keeps the connection open: the blank line ends the answer */
		break;
	case NEVER_ANSWER:
		while (read(fd, s->got, 1) > 0)
			;
		break;
	case HANG_UP_EARLY:
		if (write(fd, "errno=", 6) < 0)
			break;
		break;
	case BIG_ANSWER:
		for (int i = 0; i < 20000; i++) {
			char line[128];
			int m = snprintf(line, sizeof(line),
					 "public_key=%064x\nallowed_ip=10.%d.%d.0/24\n", i,
					 i / 256 % 256, i % 256);
			if (write(fd, line, (size_t)m) != m)
				break;
		}
		if (write(fd, "errno=0\n\n", 9) < 0)
			break;
		break;
	}
	close(fd);
	return NULL;
}

static void server_start(struct server *s, enum mode mode)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	memset(s, 0, sizeof(*s));
	s->mode = mode;
	strcpy(s->dir, "/tmp/test_wg_uapi.XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->path, sizeof(s->path), "%s/wgt0.sock", s->dir);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", s->path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
	pthread_join(s->thread, NULL);
	close(s->lfd);
	unlink(s->path);
	rmdir(s->dir);
}

static void test_wg_uapi_exchange(void **state)
{
	struct server s;
	char *resp = NULL;
	size_t len = 0;

	server_start(&s, ANSWER_SLOWLY);
	assert_int_equal(wg_uapi_exchange(s.path, "get=1\n\n", 7, 5000, &resp, &len), 0);
	assert_string_equal(s.got, "get=1\n\n");
	assert_string_equal(resp, "errno=0\n\n");
	assert_int_equal(len, 9);
	assert_int_equal(wg_uapi_parse_errno(resp, len), 0);
	free(resp);
	server_stop(&s);

	server_start(&s, NEVER_ANSWER);
	assert_int_equal(wg_uapi_exchange(s.path, "get=1\n\n", 7, 200, &resp, &len), -ETIMEDOUT);
	server_stop(&s);

	server_start(&s, HANG_UP_EARLY);
	assert_int_equal(wg_uapi_exchange(s.path, "get=1\n\n", 7, 5000, &resp, &len), 0);
	assert_int_equal(wg_uapi_parse_errno(resp, len), -EBADMSG);
	free(resp);
	server_stop(&s);

	server_start(&s, BIG_ANSWER);
	assert_int_equal(wg_uapi_exchange(s.path, "get=1\n\n", 7, 10000, &resp, &len), 0);
	struct wg_device *dev = wg_device_new();

	assert_int_equal(wg_uapi_parse_get(resp, len, dev), 0);
	assert_int_equal(dev->n_peers, 20000);
	assert_int_equal(dev->peers[19999].allowedips[0].cidr, 24);
	wg_device_free(dev);
	free(resp);
	server_stop(&s);

	/* Nobody there. */
	assert_int_equal(wg_uapi_exchange("/tmp/test_wg_uapi.none/x.sock", "get=1\n\n", 7, 100,
					  &resp, &len), -ENOENT);
}

static void test_wg_uapi_start_failures(void **state)
{
	struct wg *wg = NULL;
	char name[IFNAMSIZ];

	/* A name no other test uses, in a directory every namespace shares. */
	snprintf(name, sizeof(name), "mvu%d", (int)getpid() % 100000);
	setenv("MESHVPN_WIREGUARD_GO", "/nonexistent/wireguard-go", 1);
	assert_int_equal(wg_open("userspace", name, NULL, &wg), -ENOENT);
	/* It starts and exits at once: no hang until the deadline. */
	setenv("MESHVPN_WIREGUARD_GO", "/bin/false", 1);
	assert_int_equal(wg_open("userspace", name, NULL, &wg), -ECHILD);
	/* Something that never opens the socket: stopped at the deadline, reaped. */
	char dir[] = "/tmp/test_wg_uapi.XXXXXX", script[64];
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(script, sizeof(script), "%s/fake-wg", dir);
	f = fopen(script, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\nexec sleep 30\n", f);
	fclose(f);
	assert_int_equal(chmod(script, 0700), 0);
	setenv("MESHVPN_WIREGUARD_GO", script, 1);
	assert_int_equal(wg_open("userspace", name, NULL, &wg), -ETIMEDOUT);
	assert_null(wg);
	unlink(script);
	rmdir(dir);
	unsetenv("MESHVPN_WIREGUARD_GO");
}

/* -- a fake wireguard-go: this program again, with TEST_WG_UAPI_FAKE=exit|serve -- */

#define FAKE_ENV "TEST_WG_UAPI_FAKE"
#define STAMP "2026/11/25 03:30:01 "
#define FLOOD 3000
#define REPEATS 1000
#define EXIT_FLOOD 1000

__attribute__((format(printf, 2, 3)))
static void say(int fd, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write(fd, buf, (size_t)n) < 0)
		_exit(3);
}

/* What a busy wireguard-go says: a peer out of reach again and again, a line far too
 * long, then a flood of distinct lines. */
static void fake_spam(const char *ifname)
{
	char line[4096];
	int n;

	for (int i = 0; i < REPEATS; i++)
		say(1, "ERROR: (%s) 2026/11/25 03:%02d:%02d peer(AbC+\xe2\x80\xa6xY/z) - Failed to "
		    "send handshake initiation: write udp4 0.0.0.0:41641->192.0.2.9:41641: "
		    "sendmsg: network is unreachable\n", ifname, 30 + i / 60, i % 60);
	/* "xé" repeated, shifted by 0, 1, 2 bytes: whichever byte the cut falls on, it must
	 * not split the two bytes of an "é". */
	for (int shift = 0; shift < 3; shift++) {
		n = snprintf(line, sizeof(line), "ERROR: (%s) " STAMP "%.*s", ifname, shift, "yy");
		while (n < 3000) {
			memcpy(line + n, "x\xc3\xa9", 3);
			n += 3;
		}
		line[n++] = '\n';
		if (write(1, line, (size_t)n) != n)
			_exit(3);
	}
	say(1, "DEBUG: (%s) " STAMP "after the long line\n", ifname);
	for (int i = 0; i < FLOOD; i++)
		say(1, "DEBUG: (%s) " STAMP "flood line %d\n", ifname, i);
}

/* Serves the UAPI socket like wireguard-go: "errno=0" to anything, "spam=1" makes it
 * talk, "die=1" makes it fail; SIGTERM stops it, or with raw_term kills it as it kills a
 * wireguard-go that has not set up its handler yet: its socket stays behind. */
static int fake_serve(const char *ifname, int raw_term)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct pollfd pfd[2];
	sigset_t term;
	char req[4096];
	int lfd, sfd, c;
	size_t len;
	ssize_t n;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	if (!raw_term)
		sigprocmask(SIG_BLOCK, &term, NULL);
	sfd = signalfd(-1, &term, SFD_CLOEXEC);
	say(1, "DEBUG: (%s) " STAMP "Starting wireguard-go version 0.0.20220316\n", ifname);
	mkdir(WG_UAPI_DIR, 0755);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s.sock", WG_UAPI_DIR, ifname);
	unlink(sun.sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sfd < 0 || lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    listen(lfd, 8)) {
		say(1, "ERROR: (%s) " STAMP "UAPI listen error: %s\n", ifname, strerror(errno));
		return 1;
	}
	say(1, "DEBUG: (%s) " STAMP "UAPI listener started\n", ifname);
	pfd[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	for (;;) {
		if (poll(pfd, 2, -1) < 0)
			continue;
		if (pfd[1].revents) {
			say(1, "DEBUG: (%s) " STAMP "Shutting down\n", ifname);
			unlink(sun.sun_path);
			return 0;
		}
		c = accept(lfd, NULL, NULL);
		if (c < 0)
			continue;
		len = 0;
		req[0] = 0;
		while (len + 1 < sizeof(req) && !strstr(req, "\n\n")) {
			n = read(c, req + len, sizeof(req) - len - 1);
			if (n <= 0)
				break;
			len += (size_t)n;
			req[len] = 0;
		}
		if (!strncmp(req, "die=1\n", 6)) {
			say(2, "ERROR: (%s) " STAMP "fatal: fake crash\n", ifname);
			unlink(sun.sun_path);
			_exit(2);
		}
		if (!strncmp(req, "spam=1\n", 7))
			fake_spam(ifname);
		if (len)
			send(c, "errno=0\n\n", 9, MSG_NOSIGNAL);
		close(c);
	}
}

/* argv as the backend runs it: PROGRAM -f IFNAME. */
static int fake_main(const char *mode, int argc, char **argv)
{
	const char *ifname = argc == 3 && !strcmp(argv[1], "-f") ? argv[2] : "?";

	if (!strcmp(mode, "exit")) {
		/* What it says when it cannot start, on stdout and stderr, the last line
		 * without its newline. */
		say(1, "DEBUG: (%s) " STAMP "Starting wireguard-go version 0.0.20220316\n", ifname);
		say(1, "INFO: (%s) " STAMP "an old-style info line\n", ifname);
		for (int i = 0; i < EXIT_FLOOD; i++)
			say(1, "DEBUG: (%s) " STAMP "starting step %d\n", ifname, i);
		say(2, "ERROR: (%s) " STAMP "Failed to create TUN device: fake reason\n", ifname);
		say(2, "panic: fake");
		return 1;
	}
	return fake_serve(ifname, !strcmp(mode, "serve-raw"));
}

/* -- stderr captured into a file while the backend logs -- */

struct capture {
	char path[64];
	int saved;
};

static void capture_start(struct capture *c)
{
	int fd;

	strcpy(c->path, "/tmp/test_wg_uapi.log.XXXXXX");
	fd = mkstemp(c->path);
	assert_true(fd >= 0);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
}

static char *capture_read(const struct capture *c)
{
	FILE *f = fopen(c->path, "r");
	char *text;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = calloc(1, (size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return text;
}

/* Restores stderr; returns what was logged meanwhile. */
static char *capture_end(struct capture *c)
{
	char *text;

	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	text = capture_read(c);
	unlink(c->path);
	return text;
}

/* The next line of text holding all of the words (NULL-terminated), from *pos on. */
static const char *find_line(const char *text, const char **pos, ...)
{
	const char *p = pos && *pos ? *pos : text;

	while (*p) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char line[4096];
		const char *w;
		va_list ap;
		int all = 1;

		snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1), p);
		va_start(ap, pos);
		while ((w = va_arg(ap, const char *)))
			if (!strstr(line, w))
				all = 0;
		va_end(ap);
		if (all) {
			if (pos)
				*pos = end ? end + 1 : p + n;
			return p;
		}
		p = end ? end + 1 : p + n;
	}
	return NULL;
}

/* How many lines hold word. */
static unsigned count_lines(const char *text, const char *word)
{
	const char *pos = NULL;
	unsigned n = 0;

	while (find_line(text, &pos, word, NULL))
		n++;
	return n;
}

/* Every line is one of ours: "ts=... level=... msg=...", nothing raw of wireguard-go's. */
static void assert_all_logfmt(const char *text)
{
	for (const char *p = text; *p;) {
		const char *end = strchr(p, '\n');

		assert_non_null(end);
		assert_memory_equal(p, "ts=", 3);
		assert_non_null(strstr(p, " level="));
		p = end + 1;
	}
	assert_null(strstr(text, "DEBUG: ("));
	assert_null(strstr(text, "ERROR: ("));
	assert_null(strstr(text, "2026/11/25"));
}

/* Lines of a flood shown, lines counted as dropped, and the last line of either. */
static void flood_counts(const char *text, const char *word, unsigned *shown,
			 unsigned *dropped, const char **last)
{
	const char *pos = NULL, *line;

	*shown = *dropped = 0;
	*last = text;
	while ((line = find_line(text, &pos, word, NULL))) {
		(*shown)++;
		*last = line;
	}
	pos = NULL;
	while ((line = find_line(text, &pos, "msg=\"wireguard-go log lines dropped\"", NULL))) {
		*dropped += (unsigned)strtoul(strstr(line, "dropped=") + 8, NULL, 10);
		if (line > *last)
			*last = line;
	}
}

static void use_fake(const char *mode)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	assert_true(n > 0);
	self[n] = 0;
	setenv("MESHVPN_WIREGUARD_GO", self, 1);
	setenv(FAKE_ENV, mode, 1);
	log_set_level(LOG_DEBUG);
}

static void unuse_fake(void)
{
	unsetenv("MESHVPN_WIREGUARD_GO");
	unsetenv(FAKE_ENV);
	log_set_level(LOG_ERROR);
}

static void fake_ifname(char name[IFNAMSIZ], char tag)
{
	snprintf(name, IFNAMSIZ, "mvu%d%c", (int)getpid() % 100000, tag);
}

/* It exits at start: its lines, prefix and time stamp off, each at its own level (its
 * errors are errors then); a flood cut down, yet its last lines (the last one without
 * its newline) shown; then how it ended. */
static void test_wg_uapi_child_exit_logged(void **state)
{
	struct capture cap;
	struct wg *wg = NULL;
	char name[IFNAMSIZ], *text;
	const char *pos = NULL, *last;
	unsigned shown, dropped;

	fake_ifname(name, 'e');
	use_fake("exit");
	capture_start(&cap);
	assert_int_equal(wg_open("userspace", name, NULL, &wg), -ECHILD);
	text = capture_end(&cap);
	unuse_fake();
	assert_null(wg);
	assert_all_logfmt(text);
	assert_non_null(find_line(text, &pos, "level=debug",
				  "msg=\"Starting wireguard-go version 0.0.20220316\"",
				  "source=wireguard-go", "ifname=", name, NULL));
	assert_non_null(find_line(text, &pos, "level=info", "msg=\"an old-style info line\"",
				  "source=wireguard-go", NULL));
	flood_counts(text, "msg=\"starting step ", &shown, &dropped, &last);
	assert_true(dropped > 0);
	assert_int_equal(shown + dropped, EXIT_FLOOD);
	assert_true(last > pos);
	pos = last;
	assert_non_null(find_line(text, &pos, "level=error",
				  "msg=\"Failed to create TUN device: fake reason\"",
				  "source=wireguard-go", NULL));
	assert_non_null(find_line(text, &pos, "level=error", "msg=\"panic: fake\"",
				  "source=wireguard-go", NULL));
	assert_non_null(find_line(text, &pos, "level=error", "msg=\"wireguard-go exited\"",
				  "status=1", NULL));
	free(text);
}

/* A busy wireguard-go: a line repeated a thousand times shows once and then as a count,
 * a 3000-byte line is cut (once, on a character boundary), a flood of 3000 distinct
 * lines is cut down to a burst and a count, and its last line still shows at the end. */
static void test_wg_uapi_child_output_bounded(void **state)
{
	struct capture cap;
	struct wg *wg = NULL;
	struct wg_device *dev = NULL;
	char name[IFNAMSIZ], *text, *resp = NULL;
	const char *pos = NULL, *line, *last, *end;
	unsigned shown, dropped;
	size_t len = 0;

	if (geteuid())
		skip();                   /* the fake binds in WG_UAPI_DIR */
	fake_ifname(name, 's');
	use_fake("serve");
	capture_start(&cap);
	assert_int_equal(wg_open("userspace", name, NULL, &wg), 0);
	assert_int_equal(wg_get_device(wg, &dev), 0);
	wg_device_free(dev);
	assert_int_equal(wg_uapi_exchange(wg_uapi_socket(wg), "spam=1\n\n", 8, 10000, &resp, &len), 0);
	free(resp);
	wg_close(wg);
	text = capture_end(&cap);
	unuse_fake();

	assert_all_logfmt(text);
	assert_non_null(find_line(text, NULL, "level=debug", "msg=\"UAPI listener started\"",
				  "source=wireguard-go", NULL));
	/* Running, its errors are warnings; the peer is a key of its own. */
	assert_int_equal(count_lines(text, "Failed to send handshake initiation"), 2);
	line = find_line(text, NULL, "level=warn",
			 "msg=\"Failed to send handshake initiation: write udp4 0.0.0.0:41641->"
			 "192.0.2.9:41641: sendmsg: network is unreachable\"",
			 "source=wireguard-go", "peer=AbC+\xe2\x80\xa6xY/z", NULL);
	assert_non_null(line);
	assert_memory_equal(strchr(line, '\n') - 4, "xY/z", 4);     /* no repeated= */
	assert_non_null(find_line(text, NULL, "level=warn", "Failed to send handshake initiation",
				  "repeated=999", NULL));
	/* The long lines: each once, cut, to whole characters; their rest no line of its own. */
	assert_int_equal(count_lines(text, "x\xc3\xa9x\xc3\xa9x\xc3\xa9"), 3);
	pos = NULL;
	for (int i = 0; i < 3; i++) {
		line = find_line(text, &pos, "x\xc3\xa9x\xc3\xa9x\xc3\xa9", NULL);
		assert_non_null(line);
		assert_true(strchr(line, '\n') - line < 700);
		assert_true(find_line(line, NULL, "level=warn", "cut=true", NULL) == line);
		end = strstr(line, " source=");
		assert_true(end - strstr(line, "msg=") > 400);
		assert_true(end[-1] == 'x' || !memcmp(end - 2, "\xc3\xa9", 2));
	}
	assert_non_null(find_line(text, NULL, "msg=\"after the long line\"", NULL));
	/* The flood: a burst shown, the rest counted; its last line still shows, after all. */
	flood_counts(text, "msg=\"flood line ", &shown, &dropped, &last);
	assert_true(dropped > 0);
	assert_int_equal(shown + dropped, FLOOD);
	assert_true(shown < 400);
	pos = last;
	assert_non_null(find_line(text, &pos, "level=debug", "msg=\"Shutting down\"", NULL));
	assert_null(find_line(text, &pos, "source=wireguard-go", NULL));
	assert_true(count_lines(text, "") < 600);
	/* Stopped by us: no news of its exit. */
	assert_null(strstr(text, "wireguard-go exited"));
	assert_null(strstr(text, "did not stop"));
	free(text);
}

/* It dies while running: its last line, then how it ended, without waiting for close. */
static void test_wg_uapi_child_death_logged(void **state)
{
	struct capture cap;
	struct wg *wg = NULL;
	char name[IFNAMSIZ], *text = NULL, *resp = NULL;
	const char *pos = NULL;
	size_t len = 0;

	if (geteuid())
		skip();
	fake_ifname(name, 'd');
	use_fake("serve");
	capture_start(&cap);
	assert_int_equal(wg_open("userspace", name, NULL, &wg), 0);
	if (!wg_uapi_exchange(wg_uapi_socket(wg), "die=1\n\n", 7, 5000, &resp, &len))
		free(resp);
	for (int i = 0; i < 500; i++) {
		text = capture_read(&cap);
		if (strstr(text, "wireguard-go exited"))
			break;
		free(text);
		text = NULL;
		msleep(10);
	}
	wg_close(wg);
	free(text);
	text = capture_end(&cap);
	unuse_fake();
	assert_all_logfmt(text);
	assert_non_null(find_line(text, &pos, "level=warn", "msg=\"fatal: fake crash\"",
				  "source=wireguard-go", NULL));
	assert_non_null(find_line(text, &pos, "level=error", "msg=\"wireguard-go exited\"",
				  "status=2", NULL));
	assert_int_equal(count_lines(text, "wireguard-go exited"), 1);
	free(text);
}

/* Killed by SIGTERM before it could clean up: wg_close removes the socket it left. */
static void test_wg_uapi_child_killed_socket_removed(void **state)
{
	struct capture cap;
	struct wg *wg = NULL;
	char name[IFNAMSIZ], path[108], *text;
	struct stat st;

	if (geteuid())
		skip();
	fake_ifname(name, 'k');
	use_fake("serve-raw");
	capture_start(&cap);
	assert_int_equal(wg_open("userspace", name, NULL, &wg), 0);
	snprintf(path, sizeof(path), "%s", wg_uapi_socket(wg));
	assert_int_equal(stat(path, &st), 0);
	wg_close(wg);
	text = capture_end(&cap);
	unuse_fake();
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(find_line(text, NULL, "level=debug",
				  "msg=\"removed the socket wireguard-go left\"", NULL));
	free(text);
}

int main(int argc, char **argv)
{
	const char *fake = getenv(FAKE_ENV);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wg_uapi_build_golden),
		cmocka_unit_test(test_wg_uapi_roundtrip),
		cmocka_unit_test(test_wg_uapi_parse_wireguard_go),
		cmocka_unit_test(test_wg_uapi_errno),
		cmocka_unit_test(test_wg_uapi_parse_rejects),
		cmocka_unit_test(test_wg_uapi_exchange),
		cmocka_unit_test(test_wg_uapi_start_failures),
		cmocka_unit_test(test_wg_uapi_child_exit_logged),
		cmocka_unit_test(test_wg_uapi_child_output_bounded),
		cmocka_unit_test(test_wg_uapi_child_death_logged),
		cmocka_unit_test(test_wg_uapi_child_killed_socket_removed),
	};

	if (fake)
		return fake_main(fake, argc, argv);
	if (sodium_init() < 0)
		return 1;
	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
