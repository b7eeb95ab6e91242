/* httpflood.c - a hostile HTTP client for tests/e2e/coord_hostile.sh: from a chosen
 * source address, holds many idle connections (--idle), or pipelines one request many
 * times on one TLS connection, reading the answers (--read) or never (then it stops
 * when the server stops taking requests and holds the connection). Blocking sockets
 * and mbedtls directly: nothing of lib/ (the code under test) is in the way.
 *   httpflood --connect HOST:PORT [--source IP] --idle N [--hold SECS]
 *   httpflood --connect HOST:PORT [--source IP] --count N --request 'POST /x HTTP/1.1\r\n...'
 *             [--read] [--hold SECS]
 * Prints one line: "open=N closed=N" or "sent=N answers=N s200=N s429=N s503=N other=N". */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>

#include "meshvpn/args.h"
#include "meshvpn/file.h"

#define BATCH 64                /* requests per write */

static int dial(const char *ip, int port, const char *source)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in src = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		goto err;
	if (source && (inet_pton(AF_INET, source, &src.sin_addr) != 1 ||
		       bind(fd, (struct sockaddr *)&src, sizeof(src))))
		goto err;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		goto err;
	return fd;
err:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* N connections that send nothing; how many the server still holds after hold s. */
static int idle_main(const char *ip, int port, const char *source, long n, long hold)
{
	int *fds = calloc((size_t)n, sizeof(int));
	long open_n = 0, closed = 0;
	char b;

	for (long i = 0; fds && i < n; i++)
		fds[i] = dial(ip, port, source);
	sleep((unsigned)hold);
	for (long i = 0; fds && i < n; i++) {
		struct pollfd p = { .fd = fds[i], .events = POLLIN };
		if (fds[i] < 0 || (poll(&p, 1, 0) == 1 && recv(fds[i], &b, 1, MSG_DONTWAIT) <= 0))
			closed++;
		else
			open_n++;
	}
	printf("open=%ld closed=%ld\n", open_n, closed);
	fflush(stdout);
	return 0;
}

static int net_send(void *ctx, const unsigned char *buf, size_t len)
{
	ssize_t r = send(*(int *)ctx, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (r >= 0)
		return (int)r;
	return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_SSL_INTERNAL_ERROR;
}

static int net_recv(void *ctx, unsigned char *buf, size_t len)
{
	ssize_t r = recv(*(int *)ctx, buf, len, MSG_DONTWAIT);

	if (r > 0)
		return (int)r;
	if (r == 0)
		return MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY;
	return errno == EAGAIN ? MBEDTLS_ERR_SSL_WANT_READ : MBEDTLS_ERR_SSL_INTERNAL_ERROR;
}

struct tally {
	long answers, s200, s429, s503, other;
	char tail[16];              /* the end of the last read: a status line may straddle */
	size_t tail_len;
};

static void count_answers(struct tally *t, const char *buf, size_t len)
{
	char *s = malloc(t->tail_len + len + 1), *p;

	if (!s)
		return;
	memcpy(s, t->tail, t->tail_len);
	memcpy(s + t->tail_len, buf, len);
	len += t->tail_len;
	s[len] = 0;
	for (p = s; (p = strstr(p, "HTTP/1.1 ")) && p + 12 <= s + len; p += 12) {
		int code = atoi(p + 9);
		t->answers++;
		if (code == 200) t->s200++;
		else if (code == 429) t->s429++;
		else if (code == 503) t->s503++;
		else t->other++;
	}
	/* Keep what could be the start of a status line cut by the read (11 bytes hold
	 * "HTTP/1.1 NN"); a status line counted ends at least 12 bytes before. */
	t->tail_len = len < 11 ? len : 11;
	memcpy(t->tail, s + len - t->tail_len, t->tail_len);
	free(s);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && (s[1] == 'r' || s[1] == 'n')) {
			*o++ = s[1] == 'r' ? '\r' : '\n';
			s++;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

/* Pipelines count requests; stops sending when no byte went out for 3 s (the server
 * stopped reading), reading answers all along with --read. */
static int flood_loop(mbedtls_ssl_context *ssl, int fd, const char *req, long count, int rd,
		      struct tally *t, long *sent)
{
	size_t rl = strlen(req), blen = 0, boff = 0;
	char *batch = malloc(rl * BATCH), in[16384];
	double last = now_s();

	if (!batch)
		return -1;
	while (*sent < count || (rd && t->answers < count)) {
		struct pollfd p = { .fd = fd, .events = (*sent < count ? POLLOUT : 0) | (rd ? POLLIN : 0) };
		int r;

		if (now_s() - last > 3.0)
			break;
		if (poll(&p, 1, 200) <= 0)
			continue;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			while ((r = mbedtls_ssl_read(ssl, (unsigned char *)in, sizeof(in))) > 0) {
				count_answers(t, in, (size_t)r);
				last = now_s();
			}
			if (r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE)
				break;
		}
		if ((p.revents & POLLOUT) && *sent < count) {
			if (boff == blen) {
				long k = count - *sent < BATCH ? count - *sent : BATCH;
				for (long i = 0; i < k; i++)
					memcpy(batch + (size_t)i * rl, req, rl);
				blen = (size_t)k * rl;
				boff = 0;
			}
			r = mbedtls_ssl_write(ssl, (unsigned char *)batch + boff, blen - boff);
			if (r > 0) {
				boff += (size_t)r;
				last = now_s();
				if (boff == blen)
					*sent += (long)(blen / rl);
			} else if (r != MBEDTLS_ERR_SSL_WANT_WRITE && r != MBEDTLS_ERR_SSL_WANT_READ) {
				break;
			}
		}
	}
	free(batch);
	return 0;
}

static int flood_main(const char *ip, int port, const char *source, long count, char *req,
		      int rd, long hold)
{
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	struct tally t = { 0 };
	long sent = 0;
	int fd, r;

	unescape(req);
	fd = dial(ip, port, source);
	if (fd < 0) {
		perror("httpflood: connect");
		return 1;
	}
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_ssl_config_init(&conf);
	mbedtls_ssl_init(&ssl);
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0) ||
	    mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
					MBEDTLS_SSL_PRESET_DEFAULT))
		return 1;
	mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);   /* a test's own coord */
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
	if (mbedtls_ssl_setup(&ssl, &conf))
		return 1;
	mbedtls_ssl_set_bio(&ssl, &fd, net_send, net_recv, NULL);
	while ((r = mbedtls_ssl_handshake(&ssl)) == MBEDTLS_ERR_SSL_WANT_READ ||
	       r == MBEDTLS_ERR_SSL_WANT_WRITE) {
		struct pollfd p = { .fd = fd, .events = r == MBEDTLS_ERR_SSL_WANT_READ ? POLLIN : POLLOUT };
		poll(&p, 1, 1000);
	}
	if (r) {
		fprintf(stderr, "httpflood: handshake failed (-0x%04x)\n", (unsigned)-r);
		return 1;
	}
	flood_loop(&ssl, fd, req, count, rd, &t, &sent);
	printf("sent=%ld answers=%ld s200=%ld s429=%ld s503=%ld other=%ld\n", sent, t.answers,
	       t.s200, t.s429, t.s503, t.other);
	fflush(stdout);
	if (hold)
		sleep((unsigned)hold);
	close(fd);
	mbedtls_ssl_free(&ssl);
	mbedtls_ssl_config_free(&conf);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	return 0;
}

int main(int argc, char **argv)
{
	const char *connect_to = NULL, *source = NULL, *idle = NULL, *count = NULL;
	const char *request = NULL, *hold = "0";
	int rd = 0;
	const struct arg_opt opts[] = {
		{ "connect", &connect_to, NULL, 0 }, { "source", &source, NULL, 0 },
		{ "idle", &idle, NULL, 0 }, { "count", &count, NULL, 0 },
		{ "request", &request, NULL, 0 }, { "read", NULL, &rd, 0 },
		{ "hold", &hold, NULL, 0 }, { NULL, NULL, NULL, 0 },
	};
	char *words[1], err[200], ip[64], *req;
	const char *colon;
	int port;

	signal(SIGPIPE, SIG_IGN);
	file_raise_nofile();   /* --idle 2000 */
	if (args_parse(argc - 1, argv + 1, opts, words, 1, err, sizeof(err)) != 0 || !connect_to ||
	    !(colon = strrchr(connect_to, ':')) || (size_t)(colon - connect_to) >= sizeof(ip) ||
	    (!idle && (!count || !request))) {
		fprintf(stderr, "usage: httpflood --connect IP:PORT [--source IP] (--idle N | --count N "
			"--request R [--read]) [--hold SECS]\n");
		return 2;
	}
	memcpy(ip, connect_to, (size_t)(colon - connect_to));
	ip[colon - connect_to] = 0;
	port = atoi(colon + 1);
	if (idle)
		return idle_main(ip, port, source, atol(idle), atol(hold));
	req = strdup(request);
	if (!req)
		return 1;
	int rc = flood_main(ip, port, source, atol(count), req, rd, atol(hold));
	free(req);
	return rc;
}
