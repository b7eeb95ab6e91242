/* stun_serve.c - runs the relay's STUN server alone on an address until SIGTERM or
 * SIGINT, for interop tests with stock clients: prints "stun listening port=N" once bound,
 * logs each reply (debug), and the counters when it stops.
 * Usage: stun_serve HOST:PORT */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "meshvpn/log.h"
#include "relay/stun_server.h"

static struct stun_server *server;

static void on_signal(uv_signal_t *sig, int signum)
{
	const struct stun_stats *st = stun_server_stats(server);

	printf("stun stopped requests=%llu responses=%llu malformed=%llu ignored=%llu "
	       "rate_limited=%llu send_errors=%llu\n", (unsigned long long)st->requests,
	       (unsigned long long)st->responses, (unsigned long long)st->malformed,
	       (unsigned long long)st->ignored, (unsigned long long)st->rate_limited,
	       (unsigned long long)st->send_errors);
	stun_server_stop(server);
	uv_close((uv_handle_t *)sig, NULL);
}

int main(int argc, char **argv)
{
	uv_signal_t term, intr;
	uv_loop_t *loop = uv_default_loop();
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: stun_serve HOST:PORT\n");
		return 2;
	}
	log_set_level(LOG_DEBUG);
	rc = stun_server_start(loop, argv[1], &server);
	if (rc) {
		fprintf(stderr, "stun_serve: %s: %s\n", argv[1], strerror(-rc));
		return 1;
	}
	printf("stun listening port=%u\n", stun_server_port(server));
	fflush(stdout);
	uv_signal_init(loop, &term);
	uv_signal_init(loop, &intr);
	uv_signal_start_oneshot(&term, on_signal, SIGTERM);
	uv_signal_start_oneshot(&intr, on_signal, SIGINT);
	/* Either signal stops the server; the other handle must not keep the loop alive. */
	uv_unref((uv_handle_t *)&intr);
	uv_unref((uv_handle_t *)&term);
	uv_run(loop, UV_RUN_DEFAULT);
	return 0;
}
