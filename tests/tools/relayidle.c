/* relayidle.c - holds N idle relay connections, each admitted under its own node key
 * (nodesim state dirs DIR/<first> .. DIR/<first+N-1>), for scripts/bench/relay's RSS per
 * idle connection: prints "ready" once every one is admitted, then holds them (the
 * client library keeps them alive) until it is killed. With --pairs P it is the bench's
 * one-process load instead (as turnload is coturn's): 2P clients, client 2i sends
 * 1,280-byte packets as fast as the relay takes them to client 2i+1 for --seconds, and it
 * prints what arrived. */
#include <errno.h>
#include <inttypes.h>
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
#include "meshvpn/relay_frame.h"

#define START_TICK_MS 20
#define START_PER_TICK 20        /* 1,000 handshakes a second at most */

struct idle {
	struct relay_client **rc;
	uint8_t (*pub)[KEY_LEN];     /* each client's node key */
	long pairs;                  /* load mode: 2 * pairs clients */
	uint64_t seconds, size, sent, received, rx_bytes;
	int running;
	uv_idle_t pump;
	uv_timer_t stop;
	uint8_t *up;                 /* admitted now, per client */
	long n, started, admitted;
	int ready;
	uv_timer_t tick;
};

static void load_start(struct idle *d);

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
		if (d->pairs)
			load_start(d);
	}
}

static void on_packet(struct relay_client *rc, const uint8_t src[KEY_LEN], const uint8_t *data,
		      size_t len, void *arg)
{
	struct idle *d = arg;

	(void)rc, (void)src, (void)data;
	if (d->running) {
		d->received++;
		d->rx_bytes += len;
	}
}

/* Every sender fills what its relay connection takes now; then the loop reads again. */
static void pump(uv_idle_t *h)
{
	static uint8_t pkt[RELAY_MAX_PACKET];
	struct idle *d = h->data;

	for (long i = 0; i < d->pairs; i++)
		for (int b = 0; b < 64; b++) {
			if (relay_client_send(d->rc[2 * i], d->pub[2 * i + 1], pkt, d->size))
				break;
			d->sent++;
		}
}

static void load_end(uv_timer_t *h)
{
	struct idle *d = h->data;
	double s = (double)d->seconds;

	d->running = 0;
	printf("RESULT pairs=%ld seconds=%" PRIu64 " size=%" PRIu64 " sent=%" PRIu64
	       " received=%" PRIu64 " mbit_s=%.1f pps=%.0f\n", d->pairs, d->seconds, d->size,
	       d->sent, d->received, (double)d->rx_bytes * 8 / s / 1e6, (double)d->received / s);
	fflush(stdout);
	exit(0);
}

static void load_start(struct idle *d)
{
	uv_idle_init(d->tick.loop, &d->pump);
	d->pump.data = d;
	uv_timer_init(d->tick.loop, &d->stop);
	d->stop.data = d;
	d->running = 1;
	uv_idle_start(&d->pump, pump);
	uv_timer_start(&d->stop, load_end, d->seconds * 1000, 0);
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
		memcpy(d->pub[d->started], k.node_pub, KEY_LEN);
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
	const char *count = NULL, *first_s = "0", *pairs = NULL, *seconds = "10", *size = "1280";
	const struct arg_opt opts[] = {
		{ "url", &url, NULL, 0 }, { "pin", &pin, NULL, 0 }, { "states", &states, NULL, 0 },
		{ "first", &first_s, NULL, 0 }, { "count", &count, NULL, 0 },
		{ "pairs", &pairs, NULL, 0 }, { "seconds", &seconds, NULL, 0 },
		{ "size", &size, NULL, 0 }, { NULL, NULL, NULL, 0 },
	};
	struct idle d = { 0 };
	char *w[2], err[200];

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR);
	if (args_parse(argc - 1, argv + 1, opts, w, 2, err, sizeof(err)) != 0 || !url || !states ||
	    (!count == !pairs) || (count && atol(count) < 1) || (pairs && atol(pairs) < 1) ||
	    atol(size) < 1 || atol(size) > RELAY_MAX_PACKET || atol(seconds) < 1 || keys_init()) {
		fprintf(stderr, "usage: relayidle --url URL [--pin sha256:HEX] --states DIR "
			"[--first I] (--count N | --pairs P [--seconds T] [--size S])\n");
		return 2;
	}
	d.pairs = pairs ? atol(pairs) : 0;
	d.seconds = (uint64_t)atol(seconds);
	d.size = (uint64_t)atol(size);
	if (pairs)
		count = NULL;
	file_raise_nofile();
	first = atol(first_s);
	d.n = d.pairs ? 2 * d.pairs : atol(count);
	d.rc = calloc((size_t)d.n, sizeof(*d.rc));
	d.up = calloc((size_t)d.n, 1);
	d.pub = calloc((size_t)d.n, KEY_LEN);
	if (!d.rc || !d.up || !d.pub)
		return 1;
	uv_timer_init(uv_default_loop(), &d.tick);
	d.tick.data = &d;
	uv_timer_start(&d.tick, tick, 0, START_TICK_MS);
	return uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}
