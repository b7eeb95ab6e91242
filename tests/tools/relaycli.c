/* relaycli.c - a relay client for tests and benchmarks on lib/relay_client.c: `listen`
 * (print and optionally echo what arrives), `send` (N packets to a key, count the echoes)
 * and `bench` (as fast as the relay takes, for T seconds, against an echoing peer). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/args.h"
#include "meshvpn/keys.h"
#include "meshvpn/log.h"
#include "meshvpn/relay_client.h"
#include "meshvpn/relay_frame.h"

#define EXIT_REFUSED 3
#define DRAIN_MS 1000            /* after sending: how long echoes may still come */

struct cli {
	uv_loop_t *loop;
	struct relay_client *rc;
	int (*on_up)(struct cli *c);  /* the mode's start, once connected */
	const char *mode;
	uint8_t pub[KEY_LEN], priv[KEY_LEN], to[KEY_LEN];
	int have_to, echo, quiet, exit_on_refused, up_once, exit_code, done;
	uint64_t count, size, rate, seconds;
	uint64_t sent, received, rx_bytes, gone, echoed, echo_dropped, blocked;
	uint64_t window_rx, window_rx_bytes;   /* bench: echoes inside the sending window */
	uint64_t t0_ms, sent_at_ms;
	int sending;
	uint8_t *payload;
	uv_timer_t timer, deadline;
	uv_check_t pump;
	uv_signal_t sigint, sigterm;
};

static void finish(struct cli *c, int code)
{
	if (c->done)
		return;
	c->done = 1;
	c->exit_code = code;
	relay_client_stop(c->rc);
	uv_stop(c->loop);
}

static void print_key(const char *what, const uint8_t key[KEY_LEN])
{
	char b64[KEY_B64_LEN];

	key_to_base64(key, b64);
	printf("%s %s\n", what, b64);
	fflush(stdout);
}

/* ---- callbacks ---- */

static void on_packet(struct relay_client *rc, const uint8_t src[KEY_LEN], const uint8_t *data,
		      size_t len, void *arg)
{
	struct cli *c = arg;
	char b64[KEY_B64_LEN];

	c->received++;
	c->rx_bytes += len;
	if (c->sending) {
		c->window_rx++;
		c->window_rx_bytes += len;
	}
	if (!c->quiet) {
		key_to_base64(src, b64);
		printf("packet from=%s len=%zu\n", b64, len);
		fflush(stdout);
	}
	if (c->echo) {
		if (relay_client_send(rc, src, data, len))
			c->echo_dropped++;
		else
			c->echoed++;
	}
	if (!strcmp(c->mode, "send") && c->received >= c->count && c->sent >= c->count)
		finish(c, 0);
}

static void on_peer_gone(struct relay_client *rc, const uint8_t key[KEY_LEN], int reason,
			 void *arg)
{
	struct cli *c = arg;
	char b64[KEY_B64_LEN];

	/* Once per packet the relay could not deliver: print the first only. */
	if (!c->gone++ && !c->quiet) {
		key_to_base64(key, b64);
		printf("peer_gone key=%s reason=%d\n", b64, reason);
		fflush(stdout);
	}
}

static void on_state(struct relay_client *rc, enum relay_client_state st, int detail, void *arg)
{
	struct cli *c = arg;

	if (st == RELAY_CLIENT_CONNECTED) {
		print_key("connected relay_key", relay_client_relay_key(rc));
		if (!c->up_once++ && c->on_up(c))
			finish(c, 1);
	} else if (st == RELAY_CLIENT_LOST) {
		fprintf(stderr, "relaycli: connection lost: %s\n",
			detail == -EACCES ? "refused by the relay (our key is not admitted)"
			: detail == -EPERM ? "the relay's certificate does not match the pin"
			: strerror(-detail));
		if (detail == -EACCES && c->exit_on_refused)
			finish(c, EXIT_REFUSED);
	}
}

/* ---- modes ---- */

static void on_drained(uv_timer_t *t);

static int listen_up(struct cli *c)
{
	if (c->seconds)
		uv_timer_start(&c->deadline, on_drained, c->seconds * 1000, 0);
	return 0;
}

static void on_drained(uv_timer_t *t)
{
	finish(t->data, 0);
}

static void sending_end(struct cli *c)
{
	c->sending = 0;
	uv_check_stop(&c->pump);
	uv_timer_stop(&c->timer);
	uv_timer_start(&c->deadline, on_drained, DRAIN_MS, 0);
}

/* Sends what the pacing allows (everything without --rate) until the relay pushes back;
 * the pump calls it again after the loop has flushed some. */
static void send_some(struct cli *c)
{
	uint64_t allowed = c->count, now = uv_now(c->loop);

	if (!c->sending)
		return;
	if (c->rate)
		allowed = (now - c->t0_ms) * c->rate / 1000 + 1;
	if (allowed > c->count)
		allowed = c->count;
	while (c->sent < allowed) {
		memcpy(c->payload, &c->sent, c->size < 8 ? c->size : 8);
		if (relay_client_send(c->rc, c->to, c->payload, c->size)) {
			c->blocked++;
			return;
		}
		c->sent++;
	}
	if (c->sent >= c->count)
		sending_end(c);
}

static void on_pump(uv_check_t *h)
{
	send_some(h->data);
}

static void on_pace(uv_timer_t *t)
{
	send_some(t->data);
}

static int sending_start(struct cli *c)
{
	c->t0_ms = uv_now(c->loop);
	c->sending = 1;
	uv_check_start(&c->pump, on_pump);
	/* Wakes the loop for the pacing (and for a relay that frees its queue quietly). */
	uv_timer_start(&c->timer, on_pace, 1, 1);
	send_some(c);
	return 0;
}

static void on_bench_end(uv_timer_t *t)
{
	sending_end(t->data);
}

static int bench_up(struct cli *c)
{
	c->count = UINT64_MAX;
	sending_start(c);
	uv_timer_start(&c->deadline, on_bench_end, c->seconds * 1000, 0);
	return 0;
}

static void report(struct cli *c)
{
	struct relay_client_stats st;

	relay_client_get_stats(c->rc, &st);
	if (!strcmp(c->mode, "send")) {
		printf("sent=%" PRIu64 " acked=%" PRIu64 " gone=%" PRIu64 "\n", c->sent, c->received,
		       c->gone);
	} else if (!strcmp(c->mode, "bench")) {
		double secs = (double)c->seconds;

		printf("bench seconds=%" PRIu64 " size=%" PRIu64 " sent=%" PRIu64 " received=%" PRIu64
		       " gone=%" PRIu64 " sent_mbit_s=%.1f mbit_s=%.1f pps=%.0f\n", c->seconds,
		       c->size, c->sent, c->window_rx, c->gone,
		       (double)c->sent * (double)c->size * 8 / secs / 1e6,
		       (double)c->window_rx_bytes * 8 / secs / 1e6, (double)c->window_rx / secs);
	} else {
		printf("received=%" PRIu64 " bytes=%" PRIu64 " echoed=%" PRIu64 " echo_dropped=%"
		       PRIu64 " connects=%" PRIu64 "\n", c->received, c->rx_bytes, c->echoed,
		       c->echo_dropped, st.connects);
	}
	fflush(stdout);
}

/* ---- keys ---- */

/* A private key as 44 base64 characters or 64 hex digits. */
static int parse_priv(const char *s, uint8_t priv[KEY_LEN])
{
	if (strlen(s) == 64)
		return hex_decode(s, priv, KEY_LEN);
	return key_from_base64(s, priv);
}

static int key_file_read(const char *path, uint8_t priv[KEY_LEN])
{
	char buf[128] = { 0 };
	FILE *f = fopen(path, "r");
	size_t n;
	int r;

	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = 0;
	r = parse_priv(buf, priv);
	sodium_memzero(buf, sizeof(buf));
	return r ? -EINVAL : 0;
}

static int key_file_write(const char *path, const uint8_t priv[KEY_LEN])
{
	char b64[KEY_B64_LEN];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), r = 0;

	if (fd < 0)
		return -errno;
	key_to_base64(priv, b64);
	if (dprintf(fd, "%s\n", b64) < 0)
		r = -EIO;
	sodium_memzero(b64, sizeof(b64));
	close(fd);
	return r;
}

/* --state DIR (a node's keys, as nodesim and vpnd keep them), --key, --key-file (made
 * with --gen-key when absent) or --gen-key alone (a key for this run). */
static int load_key(struct cli *c, const char *state, const char *key, const char *file,
		    int gen)
{
	struct node_keys k;
	int r = 0;

	if (state) {
		r = node_keys_load(state, gen, &k);
		if (!r) {
			memcpy(c->priv, k.node_priv, KEY_LEN);
			node_keys_wipe(&k);
		}
	} else if (key) {
		r = parse_priv(key, c->priv) ? -EINVAL : 0;
	} else if (file) {
		r = key_file_read(file, c->priv);
		if (r == -ENOENT && gen) {
			randombytes_buf(c->priv, KEY_LEN);
			r = key_file_write(file, c->priv);
		}
	} else if (gen) {
		randombytes_buf(c->priv, KEY_LEN);
	} else {
		r = -ENOKEY;
	}
	if (!r && crypto_scalarmult_base(c->pub, c->priv))
		r = -EINVAL;
	return r;
}

/* ---- main ---- */

static void on_signal(uv_signal_t *s, int signum)
{
	finish(s->data, 0);
}

static void on_connect_timeout(uv_timer_t *t)
{
	struct cli *c = t->data;

	if (c->up_once)
		return;
	fprintf(stderr, "relaycli: not connected to the relay in time\n");
	finish(c, 1);
}

static void usage(const char *err)
{
	fprintf(stderr,
		"usage: relaycli listen|send|bench --url URL [--pin sha256:HEX]\n"
		"         (--state DIR | --key-file F [--gen-key] | --key PRIV | --gen-key)\n"
		"         [--exit-on-refused] [--fast-start] [--timeout S] [--max-pending BYTES] [--quiet]\n"
		"  listen [--echo] [--seconds T]    print (and echo) each packet\n"
		"  send --to B64KEY [--count N] [--size S] [--rate PPS]\n"
		"  bench --to B64KEY [--seconds T] [--size 1280]   against an echoing peer\n%s%s",
		err ? err : "", err ? "\n" : "");
}

static void handles_init(struct cli *c)
{
	uv_timer_init(c->loop, &c->timer);
	uv_timer_init(c->loop, &c->deadline);
	uv_check_init(c->loop, &c->pump);
	uv_signal_init(c->loop, &c->sigint);
	uv_signal_init(c->loop, &c->sigterm);
	c->timer.data = c->deadline.data = c->pump.data = c;
	c->sigint.data = c->sigterm.data = c;
	uv_signal_start(&c->sigint, on_signal, SIGINT);
	uv_signal_start(&c->sigterm, on_signal, SIGTERM);
}

static void handles_close(struct cli *c)
{
	uv_close((uv_handle_t *)&c->timer, NULL);
	uv_close((uv_handle_t *)&c->deadline, NULL);
	uv_close((uv_handle_t *)&c->pump, NULL);
	uv_close((uv_handle_t *)&c->sigint, NULL);
	uv_close((uv_handle_t *)&c->sigterm, NULL);
}

static int run(struct cli *c, struct relay_client_opts *o, uint64_t timeout_s)
{
	static const struct relay_client_cbs cbs = { on_packet, on_peer_gone, on_state };
	int r;

	c->loop = uv_default_loop();
	o->node_pub = c->pub;
	o->node_priv = c->priv;
	r = relay_client_new(c->loop, o, &cbs, c, &c->rc);
	sodium_memzero(c->priv, sizeof(c->priv));   /* the client has its copy */
	if (r) {
		fprintf(stderr, "relaycli: %s: %s\n", o->url, strerror(-r));
		return 2;
	}
	handles_init(c);
	if (timeout_s)
		uv_timer_start(&c->deadline, on_connect_timeout, timeout_s * 1000, 0);
	relay_client_start(c->rc);
	uv_run(c->loop, UV_RUN_DEFAULT);
	report(c);
	relay_client_free(c->rc);
	handles_close(c);
	uv_run(c->loop, UV_RUN_DEFAULT);
	uv_loop_close(c->loop);
	free(c->payload);
	return c->exit_code;
}

int main(int argc, char **argv)
{
	const char *url = NULL, *pin = NULL, *state = NULL, *key = NULL, *key_file = NULL;
	const char *to = NULL, *count = "1", *size = NULL, *rate = "0", *seconds = NULL;
	const char *timeout = NULL, *max_pending = "0";
	int gen = 0, echo = 0, quiet = 0, refused = 0, fast = 0, n, r;
	const struct arg_opt opts[] = {
		{ "url", &url, NULL, 0 }, { "pin", &pin, NULL, 0 }, { "state", &state, NULL, 0 },
		{ "key", &key, NULL, 0 }, { "key-file", &key_file, NULL, 0 },
		{ "gen-key", NULL, &gen, 0 }, { "to", &to, NULL, 0 }, { "count", &count, NULL, 0 },
		{ "size", &size, NULL, 0 }, { "rate", &rate, NULL, 0 },
		{ "seconds", &seconds, NULL, 0 }, { "timeout", &timeout, NULL, 0 },
		{ "max-pending", &max_pending, NULL, 0 }, { "echo", NULL, &echo, 0 },
		{ "quiet", NULL, &quiet, 0 }, { "exit-on-refused", NULL, &refused, 0 },
		{ "fast-start", NULL, &fast, 0 }, { NULL, NULL, NULL, 0 },
	};
	struct relay_client_opts o = { 0 };
	static struct cli c;
	char *w[4], err[200];

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_WARN);
	n = args_parse(argc - 1, argv + 1, opts, w, 4, err, sizeof(err));
	if (n != 1 || !url || keys_init()) {
		usage(n < 0 ? err : NULL);
		return 2;
	}
	c.mode = w[0];
	c.echo = echo;
	c.quiet = quiet;
	c.exit_on_refused = refused;
	c.count = strtoull(count, NULL, 10);
	c.size = strtoull(size ? size : !strcmp(c.mode, "bench") ? "1280" : "64", NULL, 10);
	c.rate = strtoull(rate, NULL, 10);
	c.seconds = strtoull(seconds ? seconds : !strcmp(c.mode, "bench") ? "10" : "0", NULL, 10);
	if (!strcmp(c.mode, "listen")) {
		c.on_up = listen_up;
	} else if (!strcmp(c.mode, "send")) {
		c.on_up = sending_start;
	} else if (!strcmp(c.mode, "bench")) {
		c.on_up = bench_up;
		c.quiet = 1;
	} else {
		usage("relaycli: unknown mode");
		return 2;
	}
	if (c.on_up != listen_up) {
		if (!to || key_from_base64(to, c.to) || !c.size || c.size > RELAY_MAX_PACKET ||
		    (c.on_up == bench_up && !c.seconds)) {
			usage("relaycli: send and bench need --to B64KEY, a --size of 1.." "65504"
			      " and bench a --seconds of at least 1");
			return 2;
		}
		c.payload = calloc(1, c.size);
		if (!c.payload)
			return 2;
		if (!timeout)
			timeout = "10";
	}
	r = load_key(&c, state, key, key_file, gen);
	if (r) {
		fprintf(stderr, "relaycli: no usable key (%s): give --state DIR, --key, --key-file"
			" or --gen-key\n", strerror(-r));
		return 2;
	}
	print_key("key", c.pub);
	o.url = url;
	o.pin = pin;
	o.fast_start = fast;
	o.max_pending = strtoull(max_pending, NULL, 10);
	return run(&c, &o, timeout ? strtoull(timeout, NULL, 10) : 0);
}
