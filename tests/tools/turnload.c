/* turnload.c - TURN-over-TLS load client (RFC 8656) for scripts/bench/relay: P pairs of
 * allocations bound to each other by channels; A streams ChannelData to B for T seconds
 * (B may echo it back) and the tool prints Mbit/s, packets/s and loss as B saw them.
 * Its TLS is lib/tls on libuv, the same as the relay's client, so both benches pay the
 * same client-side cost per byte. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <mbedtls/md.h>
#include <mbedtls/md5.h>
#include <sodium.h>
#include <uv.h>

#include "meshvpn/addr.h"
#include "meshvpn/args.h"
#include "meshvpn/conn.h"
#include "meshvpn/log.h"
#include "meshvpn/tls.h"

#define STUN_COOKIE 0x2112A442u
#define STUN_HDR 20
#define MSG_MAX (4 + 65536 + 4)      /* a ChannelData or STUN message, padded */
#define CHANNEL 0x4000               /* each allocation has its own channel space */
#define SETUP_TIMEOUT_MS 15000
#define DRAIN_MS 500                 /* packets still in flight when A stops are counted */
#define ECHO_MAX_PENDING (4u << 20)  /* B drops echoes rather than queue more */
#define FILL_BURST 64                /* writes per connection per loop turn */

enum { M_ALLOCATE = 0x0003, M_PERMISSION = 0x0008, M_CHANNEL_BIND = 0x0009,
       CLASS_SUCCESS = 0x0100, CLASS_ERROR = 0x0110 };
enum { A_USERNAME = 0x0006, A_INTEGRITY = 0x0008, A_ERROR_CODE = 0x0009,
       A_CHANNEL_NUMBER = 0x000C, A_PEER_ADDR = 0x0012, A_REALM = 0x0014, A_NONCE = 0x0015,
       A_RELAYED_ADDR = 0x0016, A_TRANSPORT = 0x0019 };
enum phase { PH_ALLOC, PH_PERMISSION, PH_BIND, PH_RUN };

struct opts {
	const char *host, *pin, *user, *pass;
	uint16_t port;
	int pairs, threads, echo;
	double seconds, rate;             /* rate: Mbit/s of payload over all pairs, 0 = flood */
	size_t size, coalesce, window;
};

struct worker;

struct tconn {
	struct worker *w;
	struct conn *c;
	int pair, side;                      /* side 0 = A (sends), 1 = B (receives) */
	enum phase phase;
	int done, authed;
	uint8_t txid[12];
	char realm[256], nonce[256];
	uint8_t key[16];                     /* MD5(user:realm:pass) */
	struct sockaddr_in relayed;
	uint8_t rbuf[MSG_MAX];
	size_t rlen;
	uint8_t *echo;                       /* B: echoes gathered during one read */
	size_t echo_len;
	uint64_t sent, recv, recv_win, bytes_win, echo_drop, indications;
};

struct worker {
	pthread_t th;
	uv_loop_t loop;
	uv_timer_t timer;
	uv_check_t check;
	uv_idle_t idle;
	uv_timer_t pace;
	uint64_t t0;
	struct tls_config *cfg;
	struct tconn **conns;
	int n, todo, sending, idling;
};

static struct opts o;
static struct tconn *all;                /* 2 * pairs: A of pair i at 2i, B at 2i + 1 */
static pthread_barrier_t barrier;
static atomic_int failed;
static uint8_t *load_buf;                /* the same ChannelData messages, back to back */
static size_t load_len;

static void fail(struct tconn *t, const char *why)
{
	if (!atomic_exchange(&failed, 1))
		fprintf(stderr, "turnload: pair %d %s: %s\n", t->pair, t->side ? "B" : "A", why);
	uv_stop(&t->w->loop);
}

/* --- STUN messages (RFC 8489), just what a TURN client needs --- */

struct msg {
	uint8_t b[1024];
	size_t n;
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void msg_start(struct msg *m, uint16_t type, uint8_t txid[12])
{
	put16(m->b, type);
	put16(m->b + 2, 0);
	m->b[4] = STUN_COOKIE >> 24;
	m->b[5] = (uint8_t)(STUN_COOKIE >> 16);
	m->b[6] = (uint8_t)(STUN_COOKIE >> 8);
	m->b[7] = (uint8_t)STUN_COOKIE;
	randombytes_buf(txid, 12);
	memcpy(m->b + 8, txid, 12);
	m->n = STUN_HDR;
}

static void msg_attr(struct msg *m, uint16_t type, const void *v, size_t len)
{
	size_t pad = (4 - len % 4) % 4;

	if (m->n + 4 + len + pad > sizeof(m->b))
		abort();
	put16(m->b + m->n, type);
	put16(m->b + m->n + 2, (uint16_t)len);
	memcpy(m->b + m->n + 4, v, len);
	memset(m->b + m->n + 4 + len, 0, pad);
	m->n += 4 + len + pad;
	put16(m->b + 2, (uint16_t)(m->n - STUN_HDR));
}

/* XOR-PEER-ADDRESS / XOR-RELAYED-ADDRESS for IPv4. */
static void msg_xor_addr(struct msg *m, uint16_t type, const struct sockaddr_in *sa)
{
	uint8_t v[8] = { 0, 1 };
	uint32_t a = ntohl(sa->sin_addr.s_addr) ^ STUN_COOKIE;

	put16(v + 2, (uint16_t)(ntohs(sa->sin_port) ^ (STUN_COOKIE >> 16)));
	v[4] = (uint8_t)(a >> 24);
	v[5] = (uint8_t)(a >> 16);
	v[6] = (uint8_t)(a >> 8);
	v[7] = (uint8_t)a;
	msg_attr(m, type, v, sizeof(v));
}

/* USERNAME, REALM, NONCE and MESSAGE-INTEGRITY (HMAC-SHA1 over the message with its
 * length already counting the integrity attribute, RFC 8489 14.5). */
static int msg_auth(struct msg *m, const struct tconn *t)
{
	uint8_t mac[20];

	msg_attr(m, A_USERNAME, o.user, strlen(o.user));
	msg_attr(m, A_REALM, t->realm, strlen(t->realm));
	msg_attr(m, A_NONCE, t->nonce, strlen(t->nonce));
	put16(m->b + 2, (uint16_t)(m->n + 24 - STUN_HDR));
	if (mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA1), t->key, sizeof(t->key),
			    m->b, m->n, mac))
		return -EIO;
	msg_attr(m, A_INTEGRITY, mac, sizeof(mac));
	return 0;
}

/* Finds attribute type in a whole message; its value and length, or NULL. */
static const uint8_t *msg_find(const uint8_t *b, size_t n, uint16_t type, size_t *len)
{
	size_t off = STUN_HDR;

	while (off + 4 <= n) {
		uint16_t t = get16(b + off), l = get16(b + off + 2);

		if (off + 4 + l > n)
			return NULL;
		if (t == type) {
			*len = l;
			return b + off + 4;
		}
		off += 4 + l + (4 - l % 4) % 4;
	}
	return NULL;
}

static int msg_error_code(const uint8_t *b, size_t n)
{
	size_t l;
	const uint8_t *v = msg_find(b, n, A_ERROR_CODE, &l);

	return v && l >= 4 ? (v[2] & 7) * 100 + v[3] : 0;
}

static int copy_str(const uint8_t *b, size_t n, uint16_t type, char *out, size_t size)
{
	size_t l;
	const uint8_t *v = msg_find(b, n, type, &l);

	if (!v || l >= size)
		return -EINVAL;
	memcpy(out, v, l);
	out[l] = 0;
	return 0;
}

/* --- the TURN conversation: Allocate, CreatePermission, ChannelBind --- */

static const struct sockaddr_in *peer_relayed(const struct tconn *t)
{
	return &all[2 * t->pair + !t->side].relayed;
}

static void request_send(struct tconn *t)
{
	static const uint8_t udp[4] = { 17, 0, 0, 0 };
	struct msg m;
	uint8_t ch[4] = { CHANNEL >> 8, CHANNEL & 0xff, 0, 0 };

	switch (t->phase) {
	case PH_ALLOC:
		msg_start(&m, M_ALLOCATE, t->txid);
		msg_attr(&m, A_TRANSPORT, udp, sizeof(udp));
		break;
	case PH_PERMISSION:
		msg_start(&m, M_PERMISSION, t->txid);
		msg_xor_addr(&m, A_PEER_ADDR, peer_relayed(t));
		break;
	default:
		msg_start(&m, M_CHANNEL_BIND, t->txid);
		msg_attr(&m, A_CHANNEL_NUMBER, ch, sizeof(ch));
		msg_xor_addr(&m, A_PEER_ADDR, peer_relayed(t));
		break;
	}
	if ((t->authed && msg_auth(&m, t)) || conn_write(t->c, m.b, m.n))
		fail(t, "cannot send request");
}

/* 401 (and 438 stale nonce): take realm and nonce, derive the long-term key once. */
static void on_challenge(struct tconn *t, const uint8_t *b, size_t n, int code)
{
	char up[1024];

	if ((t->authed && code == 401) || copy_str(b, n, A_REALM, t->realm, sizeof(t->realm)) ||
	    copy_str(b, n, A_NONCE, t->nonce, sizeof(t->nonce))) {
		fail(t, code == 401 && t->authed ? "credentials refused (401)" : "no realm/nonce");
		return;
	}
	snprintf(up, sizeof(up), "%s:%s:%s", o.user, t->realm, o.pass);
	mbedtls_md5_ret((const uint8_t *)up, strlen(up), t->key);
	sodium_memzero(up, sizeof(up));
	t->authed = 1;
	request_send(t);
}

static void step_done(struct tconn *t)
{
	t->done = 1;
	if (--t->w->todo == 0)
		uv_stop(&t->w->loop);
}

static void on_stun(struct tconn *t, const uint8_t *b, size_t n)
{
	uint16_t type = get16(b);
	const uint8_t *v;
	size_t l;
	char why[64];
	int code;

	if ((type & 0x0110) == 0x0010) {  /* an indication (Data before the channel): count */
		t->indications++;
		return;
	}
	if (memcmp(b + 8, t->txid, 12))
		return;  /* an answer to a request we no longer wait for */
	if ((type & 0x0110) == CLASS_ERROR) {
		code = msg_error_code(b, n);
		if (code == 401 || code == 438) {
			on_challenge(t, b, n, code);
			return;
		}
		snprintf(why, sizeof(why), "request 0x%04x refused with %d", type & ~0x0110, code);
		fail(t, why);
		return;
	}
	if ((type & 0x0110) != CLASS_SUCCESS)
		return;
	if (t->phase == PH_ALLOC) {
		v = msg_find(b, n, A_RELAYED_ADDR, &l);
		if (!v || l != 8 || v[1] != 1) {
			fail(t, "no IPv4 XOR-RELAYED-ADDRESS");
			return;
		}
		t->relayed.sin_family = AF_INET;
		t->relayed.sin_port = htons((uint16_t)(get16(v + 2) ^ (STUN_COOKIE >> 16)));
		t->relayed.sin_addr.s_addr = htonl(((uint32_t)v[4] << 24 | (uint32_t)v[5] << 16 |
						    (uint32_t)v[6] << 8 | v[7]) ^ STUN_COOKIE);
		step_done(t);
	} else if (t->phase == PH_PERMISSION) {
		t->phase = PH_BIND;
		request_send(t);
	} else if (t->phase == PH_BIND) {
		step_done(t);
	}
}

/* --- data: ChannelData in, counted and maybe echoed --- */

static void echo_flush(struct tconn *t)
{
	if (!t->echo_len)
		return;
	if (conn_pending(t->c) > ECHO_MAX_PENDING)
		t->echo_drop += t->echo_len / (4 + ((o.size + 3) & ~(size_t)3));
	else if (conn_write(t->c, t->echo, t->echo_len))
		fail(t, "echo write failed");
	t->echo_len = 0;
}

static void on_channel_data(struct tconn *t, const uint8_t *b, size_t n)
{
	size_t len = get16(b + 2);

	t->recv++;
	if (t->w->sending) {
		t->recv_win++;
		t->bytes_win += len;
	}
	if (t->side == 1 && o.echo) {
		if (t->echo_len + n > MSG_MAX)
			echo_flush(t);
		memcpy(t->echo + t->echo_len, b, n);
		t->echo_len += n;
	}
}

/* A whole message's length from its first 4 bytes: STUN header + body, or ChannelData
 * padded to 4 (RFC 8656 12.5); 0 for anything else. */
static size_t msg_len(const uint8_t *p)
{
	if (p[0] < 0x40)
		return STUN_HDR + get16(p + 2);
	if (p[0] < 0x80)
		return 4 + (((size_t)get16(p + 2) + 3) & ~(size_t)3);
	return 0;
}

static void handle(struct tconn *t, const uint8_t *b, size_t n)
{
	if (b[0] >= 0x40)
		on_channel_data(t, b, n);
	else
		on_stun(t, b, n);
}

static void on_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct tconn *t = arg;
	size_t need, take;

	(void)c;
	while (len) {
		if (!t->rlen) {
			need = len >= 4 ? msg_len(buf) : 4;
			if (!need)
				goto bad;
			if (need <= len) {
				handle(t, buf, need);
				buf += need;
				len -= need;
				continue;
			}
		}
		need = t->rlen >= 4 ? msg_len(t->rbuf) : 4;
		take = need - t->rlen < len ? need - t->rlen : len;
		memcpy(t->rbuf + t->rlen, buf, take);
		t->rlen += take;
		buf += take;
		len -= take;
		if (t->rlen < 4)
			continue;
		need = msg_len(t->rbuf);
		if (!need)
			goto bad;
		if (t->rlen == need) {
			handle(t, t->rbuf, need);
			t->rlen = 0;
		}
	}
	echo_flush(t);
	return;
bad:
	fail(t, "stream out of sync");
}

static void on_end(struct conn *c, int status, void *arg)
{
	struct tconn *t = arg;
	char why[80];

	(void)c;
	snprintf(why, sizeof(why), "connection ended (%s)", status == UV_EOF ? "EOF" : uv_err_name(status));
	fail(t, why);
}

static void on_connect(struct conn *c, int status, void *arg)
{
	struct tconn *t = arg;
	char why[80];

	if (status < 0) {
		snprintf(why, sizeof(why), "TLS connect failed (%s)", strerror(-status));
		fail(t, why);
		return;
	}
	t->c = c;
	conn_set_callbacks(c, on_read, on_end, t);
	request_send(t);
}

/* --- workers: one loop per thread, phases separated by a barrier --- */

static void timer_fire(uv_timer_t *h)
{
	struct worker *w = h->data;

	if (!w->sending) {
		atomic_store(&failed, 1);
		fprintf(stderr, "turnload: TURN setup timed out\n");
		uv_stop(&w->loop);
	}
}

static void phase_run(struct worker *w, enum phase ph)
{
	int i;

	w->todo = w->n;
	for (i = 0; i < w->n; i++) {
		struct tconn *t = w->conns[i];

		t->phase = ph;
		t->done = 0;
		if (ph == PH_ALLOC) {
			if (tls_connect(&w->loop, w->cfg, o.host, o.port, on_connect, t, NULL))
				fail(t, "cannot start TLS connect");
		} else {
			request_send(t);
		}
	}
	if (!w->todo || atomic_load(&failed))
		return;
	uv_timer_start(&w->timer, timer_fire, SETUP_TIMEOUT_MS, 0);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_timer_stop(&w->timer);
}

/* Keeps each A's queue topped up to the window, a bounded burst per loop turn so that
 * reads on the same loop are not starved; idles the loop only while a queue is short. */
static void fill_idle(uv_idle_t *h);

/* With --rate: 1 when this A has already sent its share up to now. */
static int paced_out(const struct worker *w, const struct tconn *t)
{
	double pps, due;

	if (o.rate <= 0)
		return 0;
	pps = o.rate * 1e6 / 8 / (double)o.size / o.pairs;
	due = pps * (double)(uv_hrtime() - w->t0) / 1e9;
	return (double)t->sent + (double)(load_len / (4 + ((o.size + 3) & ~(size_t)3))) > due;
}

static void fill(struct worker *w)
{
	int i, k, hungry = 0;

	if (!w->sending)
		return;
	for (i = 0; i < w->n; i++) {
		struct tconn *t = w->conns[i];

		if (t->side)
			continue;
		for (k = 0; k < FILL_BURST && conn_pending(t->c) < o.window && !paced_out(w, t); k++) {
			if (conn_write(t->c, load_buf, load_len)) {
				fail(t, "write failed");
				return;
			}
			t->sent += load_len / (4 + ((o.size + 3) & ~(size_t)3));
		}
		hungry |= k == FILL_BURST;
	}
	if (hungry && !w->idling)
		uv_idle_start(&w->idle, fill_idle);
	else if (!hungry && w->idling)
		uv_idle_stop(&w->idle);
	w->idling = hungry;
}

static void fill_idle(uv_idle_t *h)
{
	fill(h->data);
}

static void fill_check(uv_check_t *h)
{
	fill(h->data);
}

static void fill_pace(uv_timer_t *h)
{
	fill(h->data);
}

static void run_stop(uv_timer_t *h)
{
	uv_stop(&((struct worker *)h->data)->loop);
}

static void run_end(uv_timer_t *h)
{
	struct worker *w = h->data;

	w->sending = 0;
	uv_timer_stop(&w->pace);
	uv_idle_stop(&w->idle);
	w->idling = 0;
	uv_timer_start(&w->timer, run_stop, DRAIN_MS, 0);
}

static void load_run(struct worker *w)
{
	w->sending = 1;
	w->t0 = uv_hrtime();
	uv_timer_start(&w->timer, run_end, (uint64_t)(o.seconds * 1000), 0);
	uv_check_start(&w->check, fill_check);
	if (o.rate > 0)
		uv_timer_start(&w->pace, fill_pace, 1, 1);
	fill(w);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_check_stop(&w->check);
	uv_timer_stop(&w->timer);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int i;

	phase_run(w, PH_ALLOC);
	pthread_barrier_wait(&barrier);
	if (!atomic_load(&failed))
		phase_run(w, PH_PERMISSION);
	pthread_barrier_wait(&barrier);
	if (!atomic_load(&failed))
		load_run(w);
	pthread_barrier_wait(&barrier);
	for (i = 0; i < w->n; i++)
		if (w->conns[i]->c)
			conn_close(w->conns[i]->c);
	uv_close((uv_handle_t *)&w->timer, NULL);
	uv_close((uv_handle_t *)&w->check, NULL);
	uv_close((uv_handle_t *)&w->idle, NULL);
	uv_close((uv_handle_t *)&w->pace, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	return NULL;
}

static int worker_init(struct worker *w, int index)
{
	int i;

	if (uv_loop_init(&w->loop) || tls_config_client_new(NULL, o.pin, &w->cfg))
		return -1;
	uv_timer_init(&w->loop, &w->timer);
	uv_check_init(&w->loop, &w->check);
	uv_idle_init(&w->loop, &w->idle);
	uv_timer_init(&w->loop, &w->pace);
	w->timer.data = w->check.data = w->idle.data = w->pace.data = w;
	w->conns = calloc((size_t)(2 * o.pairs), sizeof(*w->conns));
	if (!w->conns)
		return -1;
	/* Connection i goes to thread i mod N: with 2 threads every A on one, every B on the
	 * other, so even one pair uses both cores. */
	for (i = index; i < 2 * o.pairs; i += o.threads) {
		all[i].w = w;
		w->conns[w->n++] = &all[i];
	}
	return 0;
}

static void report(void)
{
	uint64_t sent = 0, recv = 0, recv_win = 0, bytes_win = 0, echo_win = 0, echo_drop = 0, ind = 0;
	int i;

	for (i = 0; i < o.pairs; i++) {
		struct tconn *a = &all[2 * i], *b = &all[2 * i + 1];

		sent += a->sent;
		recv += b->recv;
		recv_win += b->recv_win;
		bytes_win += b->bytes_win;
		echo_win += a->bytes_win;
		echo_drop += b->echo_drop;
		ind += a->indications + b->indications;
	}
	printf("RESULT pairs=%d seconds=%.1f size=%zu mbit_s=%.1f pps=%.0f sent=%llu recv=%llu "
	       "loss_pct=%.2f echo=%d echo_mbit_s=%.1f echo_drop=%llu indications=%llu\n",
	       o.pairs, o.seconds, o.size, bytes_win * 8 / o.seconds / 1e6, recv_win / o.seconds,
	       (unsigned long long)sent, (unsigned long long)recv,
	       sent ? 100.0 * (double)(sent - (recv < sent ? recv : sent)) / (double)sent : 0.0,
	       o.echo, echo_win * 8 / o.seconds / 1e6, (unsigned long long)echo_drop,
	       (unsigned long long)ind);
	fflush(stdout);
}

static int load_buf_make(void)
{
	size_t one = 4 + ((o.size + 3) & ~(size_t)3), k = o.coalesce / one, i;

	if (k < 1)
		k = 1;
	load_len = k * one;
	load_buf = calloc(1, load_len);
	if (!load_buf)
		return -1;
	for (i = 0; i < k; i++) {
		put16(load_buf + i * one, CHANNEL);
		put16(load_buf + i * one + 2, (uint16_t)o.size);
		memset(load_buf + i * one + 4, 0x5a, o.size);
	}
	return 0;
}

static int opts_parse(int argc, char **argv)
{
	const char *server = NULL, *pairs = "1", *seconds = "10", *size = "1280", *threads = "2";
	const char *coalesce = "16384", *window = "262144", *cred = NULL, *rate = "0";
	const char *level = "warn";
	enum log_level lv;
	const struct arg_opt opts[] = {
		{ "server", &server, NULL, 0 }, { "pin", &o.pin, NULL, 0 },
		{ "user", &cred, NULL, 0 }, { "pairs", &pairs, NULL, 0 },
		{ "seconds", &seconds, NULL, 0 }, { "size", &size, NULL, 0 },
		{ "threads", &threads, NULL, 0 }, { "coalesce", &coalesce, NULL, 0 },
		{ "window", &window, NULL, 0 }, { "echo", NULL, &o.echo, 0 },
		{ "rate", &rate, NULL, 0 }, { "log-level", &level, NULL, 0 },
		{ NULL, NULL, NULL, 0 },
	};
	static char host[256], user[256];
	char *w[2], err[200], *colon;
	uint16_t port;

	if (args_parse(argc - 1, argv + 1, opts, w, 2, err, sizeof(err)) != 0 || !server ||
	    !o.pin || !cred || !(colon = strchr(cred, ':'))) {
		fprintf(stderr, "usage: turnload --server HOST:PORT --pin sha256:HEX --user USER:PASS "
			"[--pairs P] [--seconds T] [--size BYTES] [--threads N] [--coalesce BYTES] "
			"[--window BYTES] [--rate MBIT_S] [--echo] [--log-level debug]\n");
		return -1;
	}
	if (log_parse_level(level, &lv)) {
		fprintf(stderr, "turnload: bad --log-level %s\n", level);
		return -1;
	}
	log_set_level(lv);
	snprintf(user, sizeof(user), "%.*s", (int)(colon - cred), cred);
	o.user = user;
	o.pass = colon + 1;
	if (addr_split_hostport(server, host, sizeof(host), &port) || !port) {
		fprintf(stderr, "turnload: bad --server %s\n", server);
		return -1;
	}
	o.host = host;
	o.port = port;
	o.pairs = atoi(pairs);
	o.threads = atoi(threads);
	o.seconds = atof(seconds);
	o.size = (size_t)atol(size);
	o.coalesce = (size_t)atol(coalesce);
	o.window = (size_t)atol(window);
	o.rate = atof(rate);
	if (o.pairs < 1 || o.threads < 1 || o.seconds <= 0 || o.size < 1 || o.size > 65535 ||
	    o.window < 1) {
		fprintf(stderr, "turnload: bad numbers\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct worker *ws;
	int i;

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_WARN);
	if (opts_parse(argc, argv))
		return 2;
	if (sodium_init() < 0 || load_buf_make())
		return 1;
	all = calloc((size_t)(2 * o.pairs), sizeof(*all));
	ws = calloc((size_t)o.threads, sizeof(*ws));
	if (!all || !ws)
		return 1;
	for (i = 0; i < 2 * o.pairs; i++) {
		all[i].pair = i / 2;
		all[i].side = i % 2;
		if (all[i].side && o.echo && !(all[i].echo = malloc(MSG_MAX)))
			return 1;
	}
	pthread_barrier_init(&barrier, NULL, (unsigned)o.threads);
	for (i = 0; i < o.threads; i++)
		if (worker_init(&ws[i], i)) {
			fprintf(stderr, "turnload: cannot set up (bad pin?)\n");
			return 1;
		}
	for (i = 0; i < o.threads; i++)
		pthread_create(&ws[i].th, NULL, worker_main, &ws[i]);
	for (i = 0; i < o.threads; i++)
		pthread_join(ws[i].th, NULL);
	if (atomic_load(&failed))
		return 1;
	report();
	return 0;
}
