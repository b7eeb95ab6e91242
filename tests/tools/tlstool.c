/* tlstool.c - lib/tls.c against stock TLS peers and on its own: `serve` (echo, or an HTTP
 * response of N bytes), `get` (send N bytes, read until EOF, print checksums) and `bench`
 * (N bytes through one loopback connection, two processes, MB/s and CPU seconds). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/log.h"
#include "meshvpn/tls.h"

#define CHUNK (256 * 1024)
#define PENDING_MAX (4u << 20)    /* bytes queued before the writer waits */

struct opts {
	const char *mode, *cert, *key, *host, *pin, *suites, *path;
	uint16_t port;
	uint64_t bytes, expect;
	int echo, http;
	int nohash;                 /* bench: the checksum would cost more than TLS */
};

/* A byte stream both ends can regenerate: the sender's data is checked by checksum. */
struct source {
	uint8_t buf[CHUNK];
	uint64_t left;
	crypto_hash_sha256_state sent;
};

struct session {
	struct opts *o;
	uv_loop_t *loop;
	struct conn *c;
	struct source src;
	crypto_hash_sha256_state got;
	uint64_t received, body_at;   /* body_at: where the HTTP body starts (get --http) */
	uint64_t echoed;
	char head[4096];
	size_t head_len;
	int status, ended;
	uv_prepare_t writer;
	struct session *next;
};

static uv_tcp_t listener;
static struct tls_config *cfg;
static struct opts opt;
static uv_signal_t sig;

static void hex32(const uint8_t h[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void source_init(struct source *s, uint64_t len)
{
	randombytes_buf(s->buf, sizeof(s->buf));
	s->left = len;
	crypto_hash_sha256_init(&s->sent);
}

/* Writes while the queue is short; the prepare handle comes back each loop turn. */
static void writer_cb(uv_prepare_t *h)
{
	struct session *s = h->data;
	size_t n;

	while (s->src.left && conn_pending(s->c) < PENDING_MAX) {
		/* Vary the sizes: records are cut from whatever the caller wrote. */
		n = 1 + randombytes_uniform(CHUNK);
		if (n > s->src.left)
			n = (size_t)s->src.left;
		if (!s->o->nohash)
			crypto_hash_sha256_update(&s->src.sent, s->src.buf, n);
		if (conn_write(s->c, s->src.buf, n) < 0) {
			s->src.left = 0;
			break;
		}
		s->src.left -= n;
		s->src.buf[n % CHUNK] ^= (uint8_t)n;   /* so repeated chunks differ */
	}
	if (!s->src.left)
		uv_prepare_stop(h);
}

static void print_digest(const char *what, crypto_hash_sha256_state *st, uint64_t n)
{
	uint8_t h[32];
	char x[65];

	crypto_hash_sha256_final(st, h);
	hex32(h, x);
	printf("%s bytes=%" PRIu64 " sha256=%s\n", what, n, x);
	fflush(stdout);
}

static void send_http(struct session *s)
{
	char hdr[160];
	int n;

	n = snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %" PRIu64
		     "\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
		     s->o->bytes);
	conn_write(s->c, hdr, (size_t)n);
	source_init(&s->src, s->o->bytes);
	uv_prepare_start(&s->writer, writer_cb);
}

/* -- serve -- */

static void close_cb(uv_handle_t *h)
{
	free(h->data);
}

static void session_done(struct session *s)
{
	if (s->o->http && s->src.left == 0 && s->head_len)
		print_digest("served", &s->src.sent, s->o->bytes);
	conn_close(s->c);
	uv_prepare_stop(&s->writer);
	uv_close((uv_handle_t *)&s->writer, close_cb);
}

static void serve_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct session *s = arg;

	s->received += len;
	if (!s->o->echo && !s->o->http && s->o->bytes && s->received >= s->o->bytes) {
		session_done(s);        /* bench: all arrived, the close tells the sender */
		return;
	}
	if (s->o->echo) {
		conn_write(c, buf, len);
		s->echoed += len;
		if (s->o->bytes && s->echoed >= s->o->bytes)
			session_done(s);
		return;
	}
	if (s->o->http && !s->head_len) {
		/* The request line and headers: only their end matters. */
		static char tail[4];
		for (size_t i = 0; i < len; i++) {
			memmove(tail, tail + 1, 3);
			tail[3] = (char)buf[i];
			if (!memcmp(tail, "\r\n\r\n", 4)) {
				s->head_len = 1;
				memset(tail, 0, 4);
				send_http(s);
				break;
			}
		}
	}
}

static void serve_end(struct conn *c, int status, void *arg)
{
	struct session *s = arg;

	fprintf(stderr, "tlstool: peer ended status=%d received=%" PRIu64 "\n", status,
		s->received);
	session_done(s);
}

/* Closes the session once everything queued has gone (HTTP: Connection: close). */
static void serve_flush_cb(uv_prepare_t *h)
{
	struct session *s = h->data;

	writer_cb(h);
	if (!s->src.left && s->head_len == 1 && !conn_pending(s->c)) {
		s->head_len = 2;
		session_done(s);
	}
}

static void on_accept(uv_stream_t *server, int status)
{
	struct session *s;
	struct conn *c;
	if (status < 0 || tls_accept(cfg, server, &c) < 0)
		return;
	s = calloc(1, sizeof(*s));
	if (!s) {
		conn_close(c);
		return;
	}
	s->o = &opt;
	s->c = c;
	s->loop = server->loop;
	uv_prepare_init(server->loop, &s->writer);
	s->writer.data = s;
	conn_set_callbacks(c, serve_read, serve_end, s);
	if (opt.http)
		uv_prepare_start(&s->writer, serve_flush_cb);
}

static void on_signal(uv_signal_t *h, int signum)
{
	uv_close((uv_handle_t *)&listener, NULL);
	uv_close((uv_handle_t *)h, NULL);
	uv_stop(h->loop);
}

static int do_serve(uv_loop_t *loop)
{
	char hp[64];
	int r;

	r = tls_config_server_new(opt.cert, opt.key, &cfg);
	if (r < 0)
		return r;
	if (opt.suites && (r = tls_config_set_ciphersuites(cfg, opt.suites)) < 0)
		return r;
	snprintf(hp, sizeof(hp), "%s:%u", opt.host ? opt.host : "127.0.0.1", opt.port);
	r = conn_listen_tcp(loop, hp, &listener, on_accept);
	if (r < 0)
		return r;
	uv_signal_init(loop, &sig);
	uv_signal_start(&sig, on_signal, SIGTERM);
	{
		struct sockaddr_storage ss;
		int len = sizeof(ss);
		uv_tcp_getsockname(&listener, (struct sockaddr *)&ss, &len);
		printf("listening port=%u\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
	}
	fflush(stdout);
	uv_run(loop, UV_RUN_DEFAULT);
	return 0;
}

/* -- get -- */

static void get_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct session *s = arg;
	size_t skip = 0;

	if (s->o->http && !s->body_at) {
		/* Hash only the body: find the blank line ending the headers. */
		for (; skip < len && !s->body_at; skip++) {
			if (s->head_len < sizeof(s->head))
				s->head[s->head_len++] = (char)buf[skip];
			if (s->head_len >= 4 && !memcmp(s->head + s->head_len - 4, "\r\n\r\n", 4))
				s->body_at = s->received + skip + 1;
		}
		if (!s->body_at && s->head_len >= sizeof(s->head)) {
			s->status = -EPROTO;
			conn_close(c);
			uv_stop(s->loop);
			return;
		}
	}
	s->received += len;
	if (!s->o->http || s->body_at)
		crypto_hash_sha256_update(&s->got, buf + skip, len - skip);
	if (s->o->expect && s->received - (s->o->http ? s->body_at : 0) >= s->o->expect) {
		conn_close(c);          /* sends close_notify */
		s->c = NULL;
		s->ended = 1;
		uv_stop(s->loop);
	}
}

static void get_end(struct conn *c, int status, void *arg)
{
	struct session *s = arg;

	s->status = status == UV_EOF ? 0 : status;
	s->ended = 1;
	conn_close(c);
	s->c = NULL;
	uv_stop(s->loop);
}

static void get_connected(struct conn *c, int status, void *arg)
{
	struct session *s = arg;
	const char *suite;
	int off = 0;

	if (status < 0) {
		s->status = status;
		s->ended = 1;
		uv_stop(s->loop);
		return;
	}
	s->c = c;
	suite = tls_conn_suite(c, &off);
	printf("suite=%s offload=%d resumed=%d\n", suite, off, tls_conn_resumed(c));
	fflush(stdout);
	conn_set_callbacks(c, get_read, get_end, s);
	if (s->o->http) {
		char req[512];
		int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n",
				 s->o->path, s->o->host);
		conn_write(c, req, (size_t)n);
	}
	uv_prepare_start(&s->writer, writer_cb);
}

static int do_get(uv_loop_t *loop)
{
	static struct session s;
	int r;

	r = tls_config_client_new(NULL, opt.pin, &cfg);
	if (r < 0)
		return r;
	if (opt.suites && (r = tls_config_set_ciphersuites(cfg, opt.suites)) < 0)
		return r;
	s.o = &opt;
	s.loop = loop;
	crypto_hash_sha256_init(&s.got);
	source_init(&s.src, opt.http ? 0 : opt.bytes);
	uv_prepare_init(loop, &s.writer);
	s.writer.data = &s;
	r = tls_connect(loop, cfg, opt.host, opt.port, get_connected, &s, NULL);
	if (r < 0)
		return r;
	uv_run(loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&s.writer, NULL);
	if (s.c)
		conn_close(s.c);
	uv_run(loop, UV_RUN_DEFAULT);
	if (!opt.http)
		print_digest("sent", &s.src.sent, opt.bytes - s.src.left);
	print_digest("received", &s.got, s.received - (opt.http ? s.body_at : 0));
	if (s.status < 0)
		fprintf(stderr, "tlstool: connection failed: %s\n", strerror(-s.status));
	return s.status;
}

/* -- bench: the client in this process, the server in a child -- */

static double cpu_s(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int do_bench(void)
{
	uv_loop_t loop_mem, *loop = &loop_mem;
	char pin[TLS_PIN_LEN], line[128];
	double t0, t1, c0, c1;
	int fds[2], status;
	pid_t pid;
	FILE *f;
	int r;

	if ((r = tls_cert_pin(opt.cert, pin)) < 0)
		return r;
	if (pipe(fds) < 0)
		return -errno;
	pid = fork();
	uv_loop_init(loop);         /* each process its own, after the fork */
	if (pid == 0) {
		/* The server echoes nothing: it counts, and closes after opt.bytes. */
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		opt.echo = 0;
		opt.http = 0;
		r = do_serve(loop);
		printf("server_cpu_s=%.2f\n", cpu_s(RUSAGE_SELF));
		fflush(stdout);
		_exit(r < 0);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	if (!f || !fgets(line, sizeof(line), f))
		return -EIO;
	opt.pin = pin;
	opt.expect = 0;
	opt.nohash = 1;
	t0 = now_s();
	c0 = cpu_s(RUSAGE_SELF);
	r = do_get(loop);
	t1 = now_s();
	c1 = cpu_s(RUSAGE_SELF);
	kill(pid, SIGTERM);
	while (fgets(line, sizeof(line), f))
		fputs(line, stdout);
	waitpid(pid, &status, 0);
	printf("offload_env=%s bytes=%" PRIu64 " seconds=%.2f MB/s=%.0f client_cpu_s=%.2f\n",
	       getenv("MESHVPN_TLS_OFFLOAD") ? getenv("MESHVPN_TLS_OFFLOAD") : "default",
	       opt.bytes, t1 - t0, opt.bytes / 1e6 / (t1 - t0), c1 - c0);
	return r;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: tlstool serve --cert F --key F --port P [--host H] [--suites S] (--echo N | --http N)\n"
		"       tlstool get --host H --port P --pin PIN [--suites S] (--send N [--expect M] | --http PATH [--expect M])\n"
		"       tlstool bench --cert F --key F --port P --bytes N [--suites S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uv_loop_t loop;
	int r = -EINVAL;

	if (argc < 2 || sodium_init() < 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	log_set_level(getenv("TLSTOOL_DEBUG") ? LOG_DEBUG : LOG_WARN);
	opt.mode = argv[1];
	for (int i = 2; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		if (!strcmp(k, "--cert"))
			opt.cert = v;
		else if (!strcmp(k, "--key"))
			opt.key = v;
		else if (!strcmp(k, "--host"))
			opt.host = v;
		else if (!strcmp(k, "--port"))
			opt.port = (uint16_t)atoi(v);
		else if (!strcmp(k, "--pin"))
			opt.pin = v;
		else if (!strcmp(k, "--suites"))
			opt.suites = v;
		else if (!strcmp(k, "--echo"))
			opt.echo = 1, opt.bytes = strtoull(v, NULL, 10);
		else if (!strcmp(k, "--http") && !strcmp(opt.mode, "serve"))
			opt.http = 1, opt.bytes = strtoull(v, NULL, 10);
		else if (!strcmp(k, "--http"))
			opt.http = 1, opt.path = v;
		else if (!strcmp(k, "--send") || !strcmp(k, "--bytes"))
			opt.bytes = strtoull(v, NULL, 10);
		else if (!strcmp(k, "--expect"))
			opt.expect = strtoull(v, NULL, 10);
		else
			usage();
	}
	if (strcmp(opt.mode, "bench"))
		uv_loop_init(&loop);
	if (!strcmp(opt.mode, "serve") && opt.cert && opt.key)
		r = do_serve(&loop);
	else if (!strcmp(opt.mode, "get") && opt.host && opt.port && opt.pin)
		r = do_get(&loop);
	else if (!strcmp(opt.mode, "bench") && opt.cert && opt.key && opt.port && opt.bytes) {
		opt.host = "127.0.0.1";
		r = do_bench();
	} else
		usage();
	if (r < 0)
		fprintf(stderr, "tlstool: %s\n", strerror(-r));
	return r < 0;
}
