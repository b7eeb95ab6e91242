/* tls.c - TLS 1.2 (RFC 5246, mbedtls) as a struct conn over a plain one: handshake, records (mbedtls', or libsodium's after the handshake for AEAD suites it has), flow control; the SPKI pin check after the handshake. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <sodium.h>

#include "meshvpn/keys.h"
#include "meshvpn/log.h"
#include "tls_int.h"
#include "tls_record.h"

#define HANDSHAKE_TIMEOUT_MS 15000
#define PLAIN_CHUNK 16384   /* one record's plaintext at most */
#define EARLY_MAX (1 << 20) /* plaintext queued during the handshake */

#define tls_of(c) ((struct tls_conn *)(void *)(c))
#define tls_of_connecting(cc) \
	((struct tls_conn *)(void *)((char *)(cc) - offsetof(struct tls_conn, connecting)))

static void pump(struct tls_conn *t);

const char *tls_mbed_err(int err, char *buf, size_t size)
{
	char msg[128], *p;

	mbedtls_strerror(err, msg, sizeof(msg));
	for (p = msg; *p; p++)
		if (*p == '"')
			*p = '\'';
	snprintf(buf, size, "\"%s (-0x%04x)\"", msg, (unsigned)-err);
	return buf;
}

/* -- timers -- */

static void timer_free_cb(uv_handle_t *h)
{
	free(h->data);
}

static void timer_drop(struct tls_timer **slot)
{
	struct tls_timer *tm = *slot;

	if (!tm)
		return;
	*slot = NULL;
	tm->t = NULL;
	uv_timer_stop(&tm->timer);
	uv_close((uv_handle_t *)&tm->timer, timer_free_cb);
}

static void timer_fire(uv_timer_t *h)
{
	struct tls_timer *tm = h->data;
	struct tls_conn *t = tm->t;
	void (*fn)(struct tls_conn *) = tm->fn;

	timer_drop(tm->slot);
	if (!t)
		return;
	t->depth++;
	fn(t);
	t->depth--;
	if (TLS_FREEABLE(t))
		tls_free(t);
}

static int timer_start(struct tls_conn *t, struct tls_timer **slot, uint64_t ms,
		       void (*fn)(struct tls_conn *))
{
	struct tls_timer *tm;

	if (*slot)
		return 0;
	tm = calloc(1, sizeof(*tm));
	if (!tm)
		return -ENOMEM;
	if (uv_timer_init(t->base.loop, &tm->timer) < 0) {
		free(tm);
		return -ENOMEM;
	}
	tm->timer.data = tm;
	tm->t = t;
	tm->fn = fn;
	tm->slot = slot;
	*slot = tm;
	uv_timer_start(&tm->timer, timer_fire, ms, 0);
	return 0;
}

/* -- the connection -- */

void tls_free(struct tls_conn *t)
{
	timer_drop(&t->hs_timer);
	timer_drop(&t->kick);
	timer_drop(&t->linger);
	if (t->lower)
		conn_close(t->lower);
	mbedtls_ssl_free(&t->ssl);
	tls_outq_free(t);
	if (t->kb) {
		sodium_memzero(t->kb, sizeof(*t->kb));
		free(t->kb);
	}
	tls_offload_free(t);
	free(t->in);
	free(t->early);
	free(t->key);
	tls_config_unref(t->cfg);
	free(t);
}

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct tls_conn *t = ctx;

	if (!t->lower || t->broken || conn_write(t->lower, buf, len) < 0) {
		t->broken = 1;
		return MBEDTLS_ERR_NET_SEND_FAILED;
	}
	return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct tls_conn *t = ctx;
	size_t n;

	if (t->in_off < t->in_len) {
		n = t->in_len - t->in_off < len ? t->in_len - t->in_off : len;
		memcpy(buf, t->in + t->in_off, n);
		t->in_off += n;
		if (t->in_off == t->in_len) {
			free(t->in);
			t->in = NULL;
			t->in_off = t->in_len = 0;
		}
		return (int)n;
	}
	if (t->chunk_len) {
		n = t->chunk_len < len ? t->chunk_len : len;
		memcpy(buf, t->chunk, n);
		t->chunk += n;
		t->chunk_len -= n;
		return (int)n;
	}
	return MBEDTLS_ERR_SSL_WANT_READ;
}

/* Keeps the unread rest of the current lower read for later. */
static int save_chunk(struct tls_conn *t)
{
	size_t have = t->in_len - t->in_off;
	uint8_t *p;

	if (!t->chunk_len)
		return 0;
	p = malloc(have + t->chunk_len);
	if (!p)
		return -ENOMEM;
	if (have)
		memcpy(p, t->in + t->in_off, have);
	memcpy(p + have, t->chunk, t->chunk_len);
	free(t->in);
	t->in = p;
	t->in_off = 0;
	t->in_len = have + t->chunk_len;
	t->chunk = NULL;
	t->chunk_len = 0;
	return 0;
}

static int buffered(struct tls_conn *t)
{
	if (t->off)
		return t->in_len > t->in_off;
	return t->in_len > t->in_off || mbedtls_ssl_check_pending(&t->ssl) ||
	       mbedtls_ssl_get_bytes_avail(&t->ssl);
}

void tls_conn_end(struct tls_conn *t, int status)
{
	if (t->state == TLS_ENDED)
		return;
	t->state = TLS_ENDED;
	timer_drop(&t->hs_timer);
	if (t->lower)
		conn_read_stop(t->lower);
	if (t->base.on_end)
		t->base.on_end(&t->base, status, t->base.arg);
}

static int map_mbed_err(int err)
{
	switch (err) {
	case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
		return -EPERM;
	case MBEDTLS_ERR_SSL_ALLOC_FAILED:
		return -ENOMEM;
	case MBEDTLS_ERR_NET_SEND_FAILED:
		return -EPIPE;
	default:
		return -EPROTO;
	}
}

/* Client only: the connection fails before the owner ever saw it. */
static void connect_fail(struct tls_conn *t, int status)
{
	conn_connect_cb cb = t->connect_cb;
	void *arg = t->connect_arg;

	t->connect_cb = NULL;
	t->state = TLS_ENDED;
	t->closed = 1;                  /* freed when pump() unwinds */
	timer_drop(&t->hs_timer);
	if (t->lower) {
		conn_close(t->lower);
		t->lower = NULL;
	}
	if (cb)
		cb(NULL, status, arg);
}

static void handshake_fail(struct tls_conn *t, int status, const char *why)
{
	static struct log_limit lim = LOG_LIMIT_INIT("tls_handshake_failed", 10);

	/* Anyone can make a server's handshake fail, as often as they like. */
	if (t->is_client || log_limit_allow(&lim))
		log_info("tls handshake failed", "peer=%s side=%s err=%s", t->base.peer,
			 t->is_client ? "client" : "server", why);
	/* Whatever went wrong, the next attempt starts afresh. */
	if (t->offered)
		tls_session_forget(t->key);
	if (t->is_client) {
		connect_fail(t, status);
	} else {
		atomic_fetch_add(&t->cfg->handshake_failures, 1);
		tls_conn_end(t, status);
	}
}

static int verify_peer(struct tls_conn *t)
{
	const mbedtls_x509_crt *crt;
	uint8_t got[32];
	char hex[65];

	if (!t->cfg->has_pin)
		return 0;               /* authmode REQUIRED: mbedtls checked chain and name */
	crt = mbedtls_ssl_get_peer_cert(&t->ssl);
	if (!crt || tls_cert_spki_hash(crt, got) < 0) {
		log_warn("tls peer has no usable certificate", "peer=%s", t->base.peer);
		return -EPERM;
	}
	if (keys_equal_ct(got, t->cfg->pin, sizeof(got)) != 0) {
		hex_encode(got, sizeof(got), hex);
		log_warn("tls pin mismatch", "peer=%s got=sha256:%s", t->base.peer, hex);
		return -EPERM;
	}
	return 0;
}

int tls_write_now(struct tls_conn *t, const unsigned char *p, size_t len)
{
	char why[160];
	int r;

	if (t->off)
		return len ? tls_offload_write(t, p, len) : 0;

	while (len) {
		r = mbedtls_ssl_write(&t->ssl, p, len);
		if (r > 0) {
			p += r;
			len -= (size_t)r;
			continue;
		}
		/* Our bio queues everything it is given, so WANT_WRITE cannot happen. */
		if (r != MBEDTLS_ERR_NET_SEND_FAILED)
			log_info("tls write failed", "peer=%s err=%s", t->base.peer,
				 tls_mbed_err(r, why, sizeof(why)));
		t->broken = 1;
		return -EPIPE;
	}
	return 0;
}

/* mbedtls_ssl_handshake() step by step, to see which way it went: only a full handshake
 * passes the server's Certificate; an abbreviated one (RFC 5077 3.1) goes from
 * ServerHello to ChangeCipherSpec. */
static int handshake_run(struct tls_conn *t)
{
	int r = 0;

	while (t->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
		tls_hs_current = t;
		r = mbedtls_ssl_handshake_step(&t->ssl);
		tls_hs_current = NULL;
		if (t->ssl.state == MBEDTLS_SSL_SERVER_CERTIFICATE)
			t->saw_cert = 1;
		if (r)
			break;
	}
	return r;
}

static void handshake_step(struct tls_conn *t)
{
	char why[200];
	uint32_t flags;
	int r;

	r = handshake_run(t);
	if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
		return;
	if (r != 0) {
		if (r == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED &&
		    (flags = mbedtls_ssl_get_verify_result(&t->ssl)) != 0) {
			char info[160], *p;
			mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
			for (p = info; *p; p++)
				if (*p == '\n' || *p == '"')
					*p = *p == '\n' ? ';' : '\'';
			snprintf(why, sizeof(why), "\"certificate not trusted: %s\"", info);
		} else {
			tls_mbed_err(r, why, sizeof(why));
		}
		handshake_fail(t, map_mbed_err(r), why);
		return;
	}
	timer_drop(&t->hs_timer);
	t->done = 1;
	if (t->is_client) {
		/* A resumed session carries the peer's certificate: the pin is checked
		 * against it as after a full handshake. */
		r = verify_peer(t);
		if (r < 0) {
			if (t->offered)
				tls_session_forget(t->key);
			connect_fail(t, r);
			return;
		}
		if (t->key)
			tls_session_save(&t->ssl, t->key, !t->saw_cert);
	}
	if (!t->is_client)
		atomic_fetch_add(t->saw_cert ? &t->cfg->handshakes_full : &t->cfg->handshakes_resumed, 1);
	t->suite = mbedtls_ssl_get_ciphersuite(&t->ssl);
	tls_offload_start(t);
	t->state = TLS_OPEN;
	if (t->early_len) {
		/* A failure shows on the next write. */
		tls_outq_write(t, t->early, t->early_len);
		free(t->early);
		t->early = NULL;
		t->early_len = 0;
	}
	log_debug("tls established", "peer=%s side=%s suite=%s resumed=%d offload=%d",
		  t->base.peer, t->is_client ? "client" : "server", t->suite, !t->saw_cert,
		  t->off != NULL);
	if (!t->reading && t->lower)
		conn_read_stop(t->lower);
	if (t->is_client) {
		conn_connect_cb cb = t->connect_cb;
		t->connect_cb = NULL;
		cb(&t->base, 0, t->connect_arg);
	}
}

static void read_records(struct tls_conn *t)
{
	uint8_t buf[PLAIN_CHUNK];
	char why[160];
	int r;

	if (t->off) {
		tls_offload_read(t);
		return;
	}

	while (t->state == TLS_OPEN && t->reading && !t->closed) {
		r = mbedtls_ssl_read(&t->ssl, buf, sizeof(buf));
		if (r > 0) {
			if (t->base.on_read)
				t->base.on_read(&t->base, buf, (size_t)r, t->base.arg);
			continue;
		}
		if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
			break;
		if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
			tls_conn_end(t, UV_EOF);
			break;
		}
		log_info("tls read failed", "peer=%s err=%s", t->base.peer,
			 tls_mbed_err(r, why, sizeof(why)));
		t->broken = 1;
		tls_conn_end(t, map_mbed_err(r));
	}
}

static void pump(struct tls_conn *t)
{
	t->depth++;
	if (t->state == TLS_HANDSHAKE && !t->closed)
		handshake_step(t);
	if (t->state == TLS_OPEN && !t->closed)
		read_records(t);
	if (t->lower_end && !t->closed) {
		if (t->state == TLS_HANDSHAKE) {
			handshake_fail(t, t->lower_end == UV_EOF ? -ECONNRESET : t->lower_end,
				       "\"connection closed during handshake\"");
		} else if (t->state == TLS_OPEN && t->reading) {
			/* read_records() consumed everything it could; a partial record left
			 * is a truncation. TCP closed without close_notify: the owner's
			 * framing decides whether that cut anything short. */
			tls_conn_end(t, t->lower_end);
		}
	}
	if (!t->closed && t->state != TLS_ENDED && save_chunk(t) < 0) {
		t->broken = 1;
		tls_conn_end(t, -ENOMEM);
	}
	t->chunk = NULL;
	t->chunk_len = 0;
	t->depth--;
	if (TLS_FREEABLE(t))
		tls_free(t);
}

static void lower_read(struct conn *lower, const uint8_t *buf, size_t len, void *arg)
{
	struct tls_conn *t = arg;

	t->chunk = buf;
	t->chunk_len = len;
	pump(t);
}

static void lower_end(struct conn *lower, int status, void *arg)
{
	struct tls_conn *t = arg;

	if (t->lingering) {
		/* The peer went: nobody is left to send the rest to. */
		t->broken = 1;
		tls_linger_end(t);
		if (TLS_FREEABLE(t))
			tls_free(t);
		return;
	}
	t->lower_end = status ? status : UV_EOF;
	if (status != UV_EOF)
		t->broken = 1;
	pump(t);
}

/* The lower conn sent all it had: the next slice of a queued write. */
static void lower_drain(struct conn *lower, void *arg)
{
	tls_outq_kick(arg);
}

static void handshake_timeout(struct tls_conn *t)
{
	handshake_fail(t, -ETIMEDOUT, "timeout");
}

static void kick_fire(struct tls_conn *t)
{
	pump(t);
}

static int tls_write(struct conn *c, const void *buf, size_t len)
{
	struct tls_conn *t = tls_of(c);
	uint8_t *p;

	if (t->closed || t->broken || t->state == TLS_ENDED || !t->lower)
		return -EPIPE;
	if (t->state == TLS_OPEN)
		return tls_outq_write(t, buf, len);
	/* A server may speak first (a greeting frame): hold it until the handshake is done. */
	if (len > EARLY_MAX - t->early_len)
		return -ENOBUFS;
	if (!len)
		return 0;
	p = realloc(t->early, t->early_len + len);
	if (!p)
		return -ENOMEM;
	memcpy(p + t->early_len, buf, len);
	t->early = p;
	t->early_len += len;
	return 0;
}

static int tls_write_ref(struct conn *c, const void *buf, size_t len, conn_release_cb release,
			 void *ctx)
{
	struct tls_conn *t = tls_of(c);
	int r;

	if (t->state == TLS_OPEN && !t->closed && !t->broken && t->lower)
		return tls_outq_write_ref(t, buf, len, release, ctx);
	r = tls_write(c, buf, len);
	release(ctx);
	return r;
}

static size_t tls_pending(const struct conn *c)
{
	const struct tls_conn *t = tls_of(c);

	return t->early_len + t->outq.len + (t->off ? t->off->cork_len : 0) +
	       (t->lower ? conn_pending(t->lower) : 0);
}

#define LINGER_MS 5000   /* as the plain conn's flush at close */

static void linger_timeout(struct tls_conn *t)
{
	log_debug("tls close timed out sealing", "peer=%s unsealed=%zu", t->base.peer,
		  t->outq.len);
	tls_linger_end(t);
}

void tls_linger_end(struct tls_conn *t)
{
	if (!t->lingering)
		return;
	t->lingering = 0;
	timer_drop(&t->linger);
	/* A close_notify only after everything: else the peer would take the end for whole. */
	if (!t->broken && !t->outq.len && t->off)
		tls_offload_alert(t, TLS_ALERT_WARNING, TLS_ALERT_CLOSE_NOTIFY);
	else if (!t->broken && !t->outq.len)
		mbedtls_ssl_close_notify(&t->ssl);
	if (t->lower) {
		conn_close(t->lower);   /* flushes what was sealed */
		t->lower = NULL;
	}
}

static void tls_close(struct conn *c)
{
	struct tls_conn *t = tls_of(c);

	if (t->closed)
		return;
	t->closed = 1;
	t->base.on_read = NULL;
	t->base.on_end = NULL;
	timer_drop(&t->hs_timer);
	timer_drop(&t->kick);
	/* What is queued still goes, as from a plain send queue, and still a slice at a time
	 * as the socket drains (a blocklist blob answered with Connection: close): the
	 * connection lingers for it, LINGER_MS at most. */
	if (t->state == TLS_OPEN && !t->broken && t->outq.len && t->lower &&
	    timer_start(t, &t->linger, LINGER_MS, linger_timeout) == 0) {
		t->lingering = 1;
		return;
	}
	if (t->state == TLS_OPEN && !t->broken)
		tls_outq_flush_all(t);   /* no timer: sealed now */
	if (t->state == TLS_OPEN && !t->broken && t->off)
		tls_offload_alert(t, TLS_ALERT_WARNING, TLS_ALERT_CLOSE_NOTIFY);
	else if (t->state == TLS_OPEN && !t->broken)
		mbedtls_ssl_close_notify(&t->ssl);   /* queued; the lower close flushes it */
	if (t->lower) {
		conn_close(t->lower);
		t->lower = NULL;
	}
	if (!t->depth)
		tls_free(t);
}

static void tls_read_stop(struct conn *c)
{
	struct tls_conn *t = tls_of(c);

	t->reading = 0;
	timer_drop(&t->kick);
	/* The handshake keeps reading; it stops the lower conn when it is done. */
	if (t->state != TLS_HANDSHAKE && t->lower)
		conn_read_stop(t->lower);
}

static void tls_read_start(struct conn *c)
{
	struct tls_conn *t = tls_of(c);

	if (t->reading || t->closed)
		return;
	t->reading = 1;
	if (t->state != TLS_OPEN)
		return;
	if (t->lower)
		conn_read_start(t->lower);
	/* Records that arrived before the pause are delivered on the next loop turn, not
	 * from inside this call, so owners never see on_read nested in their own code. */
	if ((buffered(t) || t->lower_end) && !t->depth &&
	    timer_start(t, &t->kick, 0, kick_fire) < 0)
		log_warn("tls read start failed", "peer=%s err=ENOMEM", t->base.peer);
}

static const struct conn_ops tls_ops = {
	.write = tls_write,
	.write_ref = tls_write_ref,
	.pending = tls_pending,
	.close = tls_close,
	.read_stop = tls_read_stop,
	.read_start = tls_read_start,
};

size_t tls_conn_unsealed(const struct conn *c)
{
	const struct tls_conn *t = (const struct tls_conn *)(const void *)c;

	return c && c->ops == &tls_ops ? t->outq.len : 0;
}

int tls_conn_resumed(const struct conn *c)
{
	const struct tls_conn *t = (const struct tls_conn *)(const void *)c;

	if (!c || c->ops != &tls_ops)
		return -EINVAL;
	if (!t->done)
		return -EAGAIN;
	return !t->saw_cert;
}

const char *tls_conn_suite(const struct conn *c, int *offloaded)
{
	const struct tls_conn *t = (const struct tls_conn *)(const void *)c;

	if (!c || c->ops != &tls_ops || !t->done)
		return NULL;
	if (offloaded)
		*offloaded = t->off != NULL;
	return t->suite;
}

static struct tls_conn *tls_new(uv_loop_t *loop, struct tls_config *cfg, int *err)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	int r;

	if (!t) {
		*err = -ENOMEM;
		return NULL;
	}
	t->base.ops = &tls_ops;
	t->base.loop = loop;
	t->reading = 1;
	t->state = TLS_HANDSHAKE;
	mbedtls_ssl_init(&t->ssl);
	r = mbedtls_ssl_setup(&t->ssl, &cfg->conf);
	if (r) {
		mbedtls_ssl_free(&t->ssl);
		free(t);
		*err = r == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : -EINVAL;
		return NULL;
	}
	mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
	tls_config_ref(cfg);
	t->cfg = cfg;
	return t;
}

int tls_accept(struct tls_config *cfg, uv_stream_t *server, struct conn **out)
{
	struct tls_conn *t;
	struct conn *lower;
	int r;

	if (!cfg || !cfg->is_server)
		return -EINVAL;
	r = conn_plain_accept(server, &lower);
	if (r < 0)
		return r;
	t = tls_new(server->loop, cfg, &r);
	if (!t) {
		conn_close(lower);
		return r;
	}
	t->lower = lower;
	memcpy(t->base.peer, lower->peer, sizeof(t->base.peer));
	t->base.local = lower->local;
	conn_set_callbacks(lower, lower_read, lower_end, t);
	conn_set_drain_cb(lower, lower_drain);
	r = timer_start(t, &t->hs_timer, HANDSHAKE_TIMEOUT_MS, handshake_timeout);
	if (r < 0) {
		tls_free(t);
		return r;
	}
	*out = &t->base;
	return 0;
}

static void client_connected(struct conn *lower, int status, void *arg)
{
	struct tls_conn *t = arg;

	t->tcp = NULL;
	if (status < 0) {
		t->depth++;
		connect_fail(t, status);
		t->depth--;
		tls_free(t);
		return;
	}
	t->lower = lower;
	memcpy(t->base.peer, lower->peer, sizeof(t->base.peer));
	t->base.local = lower->local;
	conn_set_callbacks(lower, lower_read, lower_end, t);
	conn_set_drain_cb(lower, lower_drain);
	if (timer_start(t, &t->hs_timer, HANDSHAKE_TIMEOUT_MS, handshake_timeout) < 0) {
		t->depth++;
		connect_fail(t, -ENOMEM);
		t->depth--;
		tls_free(t);
		return;
	}
	pump(t);                        /* sends the ClientHello */
}

static int is_ip_literal(const char *host)
{
	unsigned char a[16];

	return uv_inet_pton(AF_INET, host, a) == 0 || uv_inet_pton(AF_INET6, host, a) == 0;
}

/* Before connect_cb: the TCP connect under it goes first (its callback never comes),
 * then the connection closes as if the owner had it (no callback after that either).
 * The session offered stays cached: giving up says nothing against it. */
static void tls_connect_cancel(struct conn_connect *cc)
{
	struct tls_conn *t = tls_of_connecting(cc);

	t->connect_cb = NULL;
	conn_connect_cancel(t->tcp);
	t->tcp = NULL;
	tls_close(&t->base);
}

int tls_connect(uv_loop_t *loop, struct tls_config *cfg, const char *host, uint16_t port,
		conn_connect_cb cb, void *arg, struct conn_connect **out)
{
	return tls_connect_to(loop, cfg, host, host, port, cb, arg, out);
}

int tls_connect_name(uv_loop_t *loop, struct tls_config *cfg, const char *host, uint16_t port,
		     const char *name, conn_connect_cb cb, void *arg, struct conn_connect **out)
{
	return tls_connect_to(loop, cfg, name, host, port, cb, arg, out);
}

int tls_connect_to(uv_loop_t *loop, struct tls_config *cfg, const char *host, const char *addr,
		   uint16_t port, conn_connect_cb cb, void *arg, struct conn_connect **out)
{
	char key[TLS_SESSION_HOST_MAX];
	struct tls_conn *t;
	int r = 0, n;

	if (!cfg || cfg->is_server || !host || !*host || !addr || !*addr || !cb)
		return -EINVAL;
	t = tls_new(loop, cfg, &r);
	if (!t)
		return r;
	t->is_client = 1;
	t->connect_cb = cb;
	t->connect_arg = arg;
	t->connecting.cancel = tls_connect_cancel;
	snprintf(t->base.peer, sizeof(t->base.peer), "%s:%u", addr, port);
	/* With a pin the name is only SNI; without one mbedtls checks it against the
	 * certificate (DNS names and CN; mbedtls 2.28 does not match IP SANs). */
	if (!cfg->has_pin || !is_ip_literal(host))
		r = mbedtls_ssl_set_hostname(&t->ssl, host);
	if (r) {
		r = -EINVAL;
		goto err_free;
	}
	/* Sessions are keyed by the address dialled (each instance behind a name has its
	 * own) and, when it differs, the name verified: a session checked for one name is
	 * never offered to another at the same place. */
	n = !strcmp(addr, host) ? snprintf(key, sizeof(key), "%s", addr)
				: snprintf(key, sizeof(key), "%s#%s", addr, host);
	if (n > 0 && (size_t)n < sizeof(key)) {
		t->key = calloc(1, sizeof(*t->key));
		if (!t->key) {
			r = -ENOMEM;
			goto err_free;
		}
		memcpy(t->key->host, key, (size_t)n + 1);
		t->key->port = port;
		t->key->has_pin = (uint8_t)cfg->has_pin;
		memcpy(t->key->trust, cfg->trust, sizeof(t->key->trust));
		r = tls_session_offer(&t->ssl, t->key);
		if (r < 0)
			goto err_free;
		t->offered = r == 1;
	}
	r = conn_tcp_connect(loop, addr, port, client_connected, t, &t->tcp);
	if (r < 0)
		goto err_free;
	if (out)
		*out = &t->connecting;
	return 0;

err_free:
	tls_free(t);
	return r;
}
