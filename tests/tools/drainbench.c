/* drainbench.c - what a bulk write costs the other clients of an HTTPS server (lib/http
 * over lib/tls, one loop): connection A asks for a stream that is answered with one
 * SIZE-byte chunk; as soon as the server has begun that write, B sends a small request
 * on a connection already open and C opens a new connection (a full handshake) and
 * sends one. Prints,
 * for each round, the milliseconds until B's and C's answers and until A had it all.
 * The chunk is written with http_stream_write (copied), or with "ref" as the third
 * argument with http_stream_write_ref (kept as it is until encrypted).
 * usage: drainbench [MIB] [ROUNDS] [copy|ref]   (default 32 MiB, 10 rounds, copy) */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "meshvpn/http.h"
#include "meshvpn/log.h"
#include "meshvpn/tls.h"

static size_t big_size;
static uint8_t *big;
static uint16_t port;
static char pin[TLS_PIN_LEN];
static uv_async_t stop_async;
static _Atomic uint64_t big_at;   /* when the server began the big write */
static double handler_ms;   /* the big write's call, on the server's loop (read after the round) */

/* -- the server (main thread) -- */

struct server {
	uv_tcp_t tcp;
	struct tls_config *cfg;
	struct http_server *http;
};

static void stream_closed(struct http_stream *s, void *arg)
{
}

static int ref;   /* "ref": http_stream_write_ref, the buffer not copied */

static void no_release(void *ctx)
{
}

static void handler(struct http_request *req, void *arg)
{
	struct http_stream *s;

	if (!strcmp(req->path, "/big")) {
		if (http_stream_start(req, 200, "application/octet-stream", stream_closed, NULL, &s))
			return;
		uint64_t t = uv_hrtime();

		atomic_store(&big_at, t);
		if (ref ? http_stream_write_ref(s, big, big_size, no_release, NULL) :
			  http_stream_write(s, big, big_size))
			fprintf(stderr, "drainbench: big write failed\n");
		handler_ms = (double)(uv_hrtime() - t) / 1e6;
		return;
	}
	http_respond(req, 200, "text/plain", NULL, "ok", 2);
}

static void on_accept(uv_stream_t *l, int status)
{
	struct server *sv = l->data;
	struct conn *c;

	if (status == 0 && tls_accept(sv->cfg, l, &c) == 0)
		http_server_add_conn(sv->http, c);
}

static void on_stop(uv_async_t *a)
{
	struct server *sv = a->data;

	http_server_free(sv->http);
	uv_close((uv_handle_t *)&sv->tcp, NULL);
	uv_close((uv_handle_t *)a, NULL);
}

/* -- the stream's reader (a thread of its own, so that decrypting it does not delay B
 * and C on the client side) -- */

static sem_t go, a_finished;
static double ms_a;
static size_t got_a;

static int a_body(const uint8_t *p, size_t len, void *arg)
{
	got_a += len;
	return got_a >= big_size;   /* all of it: stop */
}

static void *reader(void *arg)
{
	int rounds = *(int *)arg, status;
	const struct http_fetch_sink sink = { NULL, a_body, NULL };
	char url[64];
	uint64_t t;

	snprintf(url, sizeof(url), "https://127.0.0.1:%u/big", port);
	for (int i = 0; i < rounds; i++) {
		sem_wait(&go);
		got_a = 0;
		t = uv_hrtime();
		if (http_fetch_stream(url, pin, NULL, &sink, &status, 60000) != 1) {
			fprintf(stderr, "drainbench: stream failed\n");
			exit(1);
		}
		ms_a = (double)(uv_hrtime() - t) / 1e6;
		sem_post(&a_finished);
	}
	return NULL;
}

/* -- B and C (another thread and loop) -- */

struct round {
	struct conn *b;
	uint64_t t0;
	double ms_b, ms_c;
	int done;
};

static double since(struct round *r)
{
	return (double)(uv_hrtime() - r->t0) / 1e6;
}

static void b_done(int status, void *arg)
{
	struct round *r = arg;

	r->ms_b = since(r);
	r->done++;
}

static void c_done(int status, void *arg)
{
	struct round *r = arg;

	r->ms_c = since(r);
	r->done++;
}

static void nothing(const struct http_response *resp, void *arg)
{
}

static void ignore_body(const uint8_t *p, size_t len, void *arg)
{
}

static void c_connected(struct conn *c, int status, void *arg)
{
	static const struct http_client_cbs cbs = { nothing, ignore_body, c_done };
	struct http_client *cl;

	if (status < 0 || http_client_start(c, "GET", NULL, "/small", NULL, NULL, 0, &cbs, arg,
					    &cl)) {
		fprintf(stderr, "drainbench: C failed\n");
		exit(1);
	}
}

static void b_connected(struct conn *c, int status, void *arg)
{
	struct round *r = arg;

	if (status < 0) {
		fprintf(stderr, "drainbench: connect: %d\n", status);
		exit(1);
	}
	r->b = c;
}

/* B's connection is open before the stream is asked for; once the server has started
 * writing it, B sends its request and C connects. */
static void run_round(uv_loop_t *loop, struct tls_config *cfg, int i)
{
	static const struct http_client_cbs cbs_b = { nothing, ignore_body, b_done };
	struct round r = { 0 };
	struct http_client *cl_b;

	tls_connect(loop, cfg, "127.0.0.1", port, b_connected, &r, NULL);
	while (!r.b)
		uv_run(loop, UV_RUN_ONCE);
	atomic_store(&big_at, 0);
	sem_post(&go);
	while (!atomic_load(&big_at))
		usleep(50);
	r.t0 = uv_hrtime();
	http_client_start(r.b, "GET", NULL, "/small", NULL, NULL, 0, &cbs_b, &r, &cl_b);
	tls_connect(loop, cfg, "127.0.0.1", port, c_connected, &r, NULL);
	while (r.done < 2)
		uv_run(loop, UV_RUN_ONCE);
	sem_wait(&a_finished);
	printf("round %2d: small on open conn %7.2f ms, new conn + small %7.2f ms, %zu MiB stream "
	       "%7.1f ms (its write call %6.2f ms)\n", i, r.ms_b, r.ms_c, big_size >> 20, ms_a,
	       handler_ms);
}

static void *clients(void *arg)
{
	int rounds = *(int *)arg;
	struct tls_config *cfg;
	uv_loop_t loop;

	uv_loop_init(&loop);
	if (tls_config_client_new(NULL, pin, &cfg)) {
		fprintf(stderr, "drainbench: client config\n");
		exit(1);
	}
	for (int i = 0; i < rounds; i++)
		run_round(&loop, cfg, i);
	tls_config_free(cfg);
	uv_run(&loop, UV_RUN_NOWAIT);
	uv_async_send(&stop_async);
	return NULL;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/drainbench.XXXXXX", cert[64], key[64];
	struct sockaddr_in a;
	struct server sv = { 0 };
	int len = sizeof(a), rounds = argc > 2 ? atoi(argv[2]) : 10;
	pthread_t th, th_reader;

	big_size = (size_t)(argc > 1 ? atoi(argv[1]) : 32) << 20;
	ref = argc > 3 && !strcmp(argv[3], "ref");
	if (sodium_init() < 0 || !mkdtemp(dir) || !(big = malloc(big_size)))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR);
	memset(big, 'x', big_size);
	snprintf(cert, sizeof(cert), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	if (tls_selfsigned_create(cert, key, "localhost") || tls_cert_pin(cert, pin) ||
	    tls_config_server_new(cert, key, &sv.cfg))
		return 1;
	unlink(cert);
	unlink(key);
	rmdir(dir);
	if (conn_listen_tcp(uv_default_loop(), "127.0.0.1:0", &sv.tcp, on_accept) ||
	    http_server_new(uv_default_loop(), NULL, handler, NULL, &sv.http))
		return 1;
	sv.tcp.data = &sv;
	uv_tcp_getsockname(&sv.tcp, (struct sockaddr *)&a, &len);
	port = ntohs(a.sin_port);
	uv_async_init(uv_default_loop(), &stop_async, on_stop);
	stop_async.data = &sv;
	sem_init(&go, 0, 0);
	sem_init(&a_finished, 0, 0);
	pthread_create(&th_reader, NULL, reader, &rounds);
	pthread_create(&th, NULL, clients, &rounds);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	pthread_join(th_reader, NULL);
	tls_config_free(sv.cfg);
	free(big);
	return 0;
}
