/* relayidle.c - holds N idle relay connections, each admitted under its own node key
 * (nodesim state dirs DIR/<first> .. DIR/<first+N-1>), for scripts/bench/relay's RSS per
 * idle connection: prints "ready" once every one is admitted, then holds them (the
 * client library keeps them alive) until it is killed. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "meshvpn/args.h"
#include "meshvpn/file.h"
#include "meshvpn/keys.h"
#include "meshvpn/log.h"
#include "meshvpn/relay_client.h"

#define START_TICK_MS 20
#define START_PER_TICK 20        /* 1,000 handshakes a second at most */

struct idle {
	struct relay_client **rc;
	uint8_t *up;                 /* admitted now, per client */
	long n, started, admitted;
	int ready;
	uv_timer_t tick;
};

static void on_state(struct relay_client *rc, enum relay_client_state st, int detail, void *arg)
{
	struct idle *d = arg;
	long i = 0;

	(void)detail;
	while (i < d->started && d->rc[i] != rc)
		i++;
	if (i == d->started)
		return;
	if (st == RELAY_CLIENT_CONNECTED && !d->up[i]) {
		d->up[i] = 1;
		d->admitted++;
	} else if (st == RELAY_CLIENT_LOST && d->up[i]) {
		d->up[i] = 0;
		d->admitted--;
	}
	if (!d->ready && d->admitted == d->n) {
		d->ready = 1;
		printf("ready %ld\n", d->n);
		fflush(stdout);
	}
}

static void on_packet(struct relay_client *rc, const uint8_t src[KEY_LEN], const uint8_t *data,
		      size_t len, void *arg)
{
	(void)rc, (void)src, (void)data, (void)len, (void)arg;
}

static const char *url, *pin, *states;
static long first;

static void tick(uv_timer_t *h)
{
	static const struct relay_client_cbs cbs = { on_packet, NULL, on_state };
	struct idle *d = h->data;
	struct relay_client_opts o = { 0 };
	struct node_keys k;
	char dir[4096];
	int k_n;

	for (k_n = 0; k_n < START_PER_TICK && d->started < d->n; k_n++) {
		snprintf(dir, sizeof(dir), "%s/%ld", states, first + d->started);
		if (node_keys_load(dir, 0, &k)) {
			fprintf(stderr, "relayidle: no keys in %s\n", dir);
			exit(1);
		}
		o.url = url;
		o.pin = pin;
		o.node_pub = k.node_pub;
		o.node_priv = k.node_priv;
		if (relay_client_new(h->loop, &o, &cbs, d, &d->rc[d->started]) ||
		    relay_client_start(d->rc[d->started])) {
			fprintf(stderr, "relayidle: cannot start a client for %s\n", dir);
			exit(1);
		}
		node_keys_wipe(&k);
		d->started++;
	}
	if (d->started == d->n)
		uv_timer_stop(h);
}

int main(int argc, char **argv)
{
	const char *count = NULL, *first_s = "0";
	const struct arg_opt opts[] = {
		{ "url", &url, NULL, 0 }, { "pin", &pin, NULL, 0 }, { "states", &states, NULL, 0 },
		{ "first", &first_s, NULL, 0 }, { "count", &count, NULL, 0 },
		{ NULL, NULL, NULL, 0 },
	};
	struct idle d = { 0 };
	char *w[2], err[200];

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR);
	if (args_parse(argc - 1, argv + 1, opts, w, 2, err, sizeof(err)) != 0 || !url || !states ||
	    !count || atol(count) < 1 || keys_init()) {
		fprintf(stderr, "usage: relayidle --url URL [--pin sha256:HEX] --states DIR "
			"[--first I] --count N\n");
		return 2;
	}
	file_raise_nofile();
	first = atol(first_s);
	d.n = atol(count);
	d.rc = calloc((size_t)d.n, sizeof(*d.rc));
	d.up = calloc((size_t)d.n, 1);
	if (!d.rc || !d.up)
		return 1;
	uv_timer_init(uv_default_loop(), &d.tick);
	d.tick.data = &d;
	uv_timer_start(&d.tick, tick, 0, START_TICK_MS);
	return uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}
