/* tls.c - TLS 1.2 (RFC 5246, mbedtls) over a plain conn; peers checked by CA chain + name (RFC 5280, 6125) or SPKI pin;
 * session resumption with tickets (RFC 5077). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_time.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include "meshvpn/keys.h"
#include "meshvpn/log.h"
#include "meshvpn/tls.h"

#define DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
#define HANDSHAKE_TIMEOUT_MS 15000
#define PLAIN_CHUNK 16384   /* one record's plaintext at most */
#define EARLY_MAX (1 << 20) /* plaintext queued during the handshake */
/* Tickets are accepted for this long after the full handshake that made the session
 * (resumptions keep its start time); the server's ticket keys rotate at the same pace
 * and live twice as long. The client holds a session no longer either, so a
 * verification is reused for an hour at most. */
#define TICKET_LIFETIME_S 3600
#define SESSION_CACHE_SIZE 16
#define SESSION_HOST_MAX 256

#if !defined(MBEDTLS_SSL_SESSION_TICKETS) || !defined(MBEDTLS_SSL_TICKET_C) || \
	!defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE) || !defined(MBEDTLS_HAVE_TIME)
/* Without the kept peer certificate a resumed session could not be pinned. */
#error "mbedtls needs SSL_SESSION_TICKETS, SSL_TICKET_C, SSL_KEEP_PEER_CERTIFICATE and HAVE_TIME"
#endif

/* ECDHE only (forward secrecy); ECDSA first since our own certificates are P-256,
 * RSA after for certificates from public CAs. */
static const int ciphersuites[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	0
};

struct tls_config {
	atomic_int refs;            /* the owner's plus one per connection */
	int is_server;
	int has_pin;
	uint8_t pin[32];
	/* Client: what the peer was checked against (the pin, or a hash of the CA chain):
	 * part of the session cache key, so a session is reused only under the same trust. */
	uint8_t trust[32];
	mbedtls_ssl_config conf;
	mbedtls_ssl_ticket_context ticket;  /* server */
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt certs;     /* server: own chain; client: CA bundle */
	mbedtls_pk_context key;
};

enum tls_state { TLS_HANDSHAKE, TLS_OPEN, TLS_ENDED };

struct tls_conn;

/* Timers live apart from the connection so it can be freed at once on close. */
struct tls_timer {
	uv_timer_t timer;
	struct tls_conn *t;
	void (*fn)(struct tls_conn *t);
	struct tls_timer **slot;
};

struct tls_conn {
	struct conn base;
	struct tls_config *cfg;
	struct conn *lower;
	mbedtls_ssl_context ssl;
	enum tls_state state;
	/* Ciphertext not yet given to mbedtls: the lower read buffer while a read is
	 * processed, and a heap copy of what is left when reading pauses. */
	const uint8_t *chunk;
	size_t chunk_len;
	uint8_t *in;
	size_t in_off, in_len;
	uint8_t *early;             /* plaintext written before the handshake completed */
	size_t early_len;
	int lower_end;              /* the lower conn ended with this status (0: not) */
	unsigned depth;             /* nesting of pump() on the stack */
	unsigned reading : 1;
	unsigned closed : 1;
	unsigned broken : 1;
	unsigned is_client : 1;
	unsigned saw_cert : 1;      /* the handshake went through a Certificate: not resumed */
	unsigned done : 1;          /* the handshake completed */
	unsigned offered : 1;       /* client: a cached session was offered */
	struct session_key *key;    /* client: its entry in the session cache */
	conn_connect_cb connect_cb;
	void *connect_arg;
	struct conn_connect connecting;  /* client: the owner's handle until connect_cb */
	struct conn_connect *tcp;   /* client: the TCP connect under it, until it completes */
	struct tls_timer *hs_timer;
	struct tls_timer *kick;
};

#define tls_of(c) ((struct tls_conn *)(void *)(c))
#define tls_of_connecting(cc) \
	((struct tls_conn *)(void *)((char *)(cc) - offsetof(struct tls_conn, connecting)))

static void pump(struct tls_conn *t);
static void tls_free(struct tls_conn *t);

static void config_unref(struct tls_config *cfg)
{
	if (atomic_fetch_sub(&cfg->refs, 1) != 1)
		return;
	mbedtls_ssl_config_free(&cfg->conf);
	mbedtls_ssl_ticket_free(&cfg->ticket);
	mbedtls_x509_crt_free(&cfg->certs);
	mbedtls_pk_free(&cfg->key);
	mbedtls_ctr_drbg_free(&cfg->drbg);
	mbedtls_entropy_free(&cfg->entropy);
	free(cfg);
}

static const char *mbed_err(int err, char *buf, size_t size)
{
	char msg[128], *p;

	mbedtls_strerror(err, msg, sizeof(msg));
	for (p = msg; *p; p++)
		if (*p == '"')
			*p = '\'';
	snprintf(buf, size, "\"%s (-0x%04x)\"", msg, (unsigned)-err);
	return buf;
}

/* -- client session cache -- */

/* Per process, not per config: http_fetch makes a config per call, in threadpool threads,
 * hence the lock. The key holds the trust the session was verified under (pin, or CA
 * chain and host name), so it is never offered to a config that would not have accepted
 * the full handshake. */
struct session_key {
	char host[SESSION_HOST_MAX];
	uint16_t port;
	uint8_t has_pin;
	uint8_t trust[32];
};

struct session_entry {
	struct session_key key;
	uint64_t used;              /* LRU stamp; 0: a free slot */
	mbedtls_ssl_session session;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session_entry cache[SESSION_CACHE_SIZE];
static uint64_t cache_clock;

static int key_equal(const struct session_key *a, const struct session_key *b)
{
	return a->port == b->port && a->has_pin == b->has_pin && !strcmp(a->host, b->host) &&
	       !memcmp(a->trust, b->trust, sizeof(a->trust));
}

/* Called with cache_lock held. */
static struct session_entry *cache_find(const struct session_key *key)
{
	for (int i = 0; i < SESSION_CACHE_SIZE; i++)
		if (cache[i].used && key_equal(&cache[i].key, key))
			return &cache[i];
	return NULL;
}

/* Called with cache_lock held. mbedtls wipes the master secret. */
static void entry_clear(struct session_entry *e)
{
	mbedtls_ssl_session_free(&e->session);
	memset(e, 0, sizeof(*e));
}

static int session_fresh(const mbedtls_ssl_session *s)
{
	mbedtls_time_t now = mbedtls_time(NULL);

	return s->start <= now && now - s->start < TICKET_LIFETIME_S;
}

/* Offers the session saved under the connection's key. A server that does not take it
 * (restarted, other ticket key, expired ticket) answers with a full handshake. */
static int session_offer(struct tls_conn *t)
{
	struct session_entry *e;
	int r = 0;

	pthread_mutex_lock(&cache_lock);
	e = cache_find(t->key);
	if (e && !session_fresh(&e->session)) {
		entry_clear(e);
		e = NULL;
	}
	if (e) {
		r = mbedtls_ssl_set_session(&t->ssl, &e->session);
		if (r == 0) {
			e->used = ++cache_clock;
			t->offered = 1;
		} else if (t->ssl.session_negotiate &&
			   t->ssl.session_negotiate->ticket == e->session.ticket) {
			/* A copy that failed half-way may share the ticket buffer. */
			t->ssl.session_negotiate->ticket = NULL;
			t->ssl.session_negotiate->ticket_len = 0;
		}
	}
	pthread_mutex_unlock(&cache_lock);
	return r ? -ENOMEM : 0;
}

static void session_forget(const struct session_key *key)
{
	struct session_entry *e;

	pthread_mutex_lock(&cache_lock);
	e = cache_find(key);
	if (e)
		entry_clear(e);
	pthread_mutex_unlock(&cache_lock);
}

/* After a verified handshake: keeps its session for the next connection to the same
 * key, in the least recently used slot. */
static void session_save(struct tls_conn *t, int resumed)
{
	const mbedtls_ssl_session *cur = mbedtls_ssl_get_session_pointer(&t->ssl);
	struct session_entry *e, *slot;
	mbedtls_ssl_session s, old;

	if (!cur || (!cur->ticket_len && !cur->id_len))
		return;                 /* nothing a server could resume */
	mbedtls_ssl_session_init(&s);
	mbedtls_ssl_session_init(&old);
	if (mbedtls_ssl_get_session(&t->ssl, &s) != 0) {
		if (s.ticket == cur->ticket)
			s.ticket = NULL;   /* as in session_offer */
		mbedtls_ssl_session_free(&s);
		return;
	}
	pthread_mutex_lock(&cache_lock);
	e = cache_find(t->key);
	/* A full handshake without a NewSessionTicket leaves the ticket offered with the
	 * old master secret beside the new one: useless, drop both. */
	if (!resumed && e && s.ticket_len && e->session.ticket_len == s.ticket_len &&
	    !memcmp(e->session.ticket, s.ticket, s.ticket_len)) {
		entry_clear(e);
		pthread_mutex_unlock(&cache_lock);
		mbedtls_ssl_session_free(&s);
		return;
	}
	slot = e;
	if (!slot) {
		slot = &cache[0];
		for (int i = 1; i < SESSION_CACHE_SIZE; i++)
			if (cache[i].used < slot->used)   /* a free slot (0) first */
				slot = &cache[i];
	}
	old = slot->session;        /* freed outside the lock */
	memset(slot, 0, sizeof(*slot));
	slot->key = *t->key;
	slot->session = s;          /* the entry owns its buffers now */
	slot->used = ++cache_clock;
	pthread_mutex_unlock(&cache_lock);
	mbedtls_ssl_session_free(&old);
}

void tls_session_cache_clear(void)
{
	pthread_mutex_lock(&cache_lock);
	for (int i = 0; i < SESSION_CACHE_SIZE; i++)
		entry_clear(&cache[i]);
	pthread_mutex_unlock(&cache_lock);
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
	if (t->closed && !t->depth)
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

static void tls_free(struct tls_conn *t)
{
	timer_drop(&t->hs_timer);
	timer_drop(&t->kick);
	if (t->lower)
		conn_close(t->lower);
	mbedtls_ssl_free(&t->ssl);
	free(t->in);
	free(t->early);
	free(t->key);
	config_unref(t->cfg);
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
	return t->in_len > t->in_off || mbedtls_ssl_check_pending(&t->ssl) ||
	       mbedtls_ssl_get_bytes_avail(&t->ssl);
}

static void end(struct tls_conn *t, int status)
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
	log_info("tls handshake failed", "peer=%s side=%s err=%s", t->base.peer,
		 t->is_client ? "client" : "server", why);
	/* Whatever went wrong, the next attempt starts afresh. */
	if (t->offered)
		session_forget(t->key);
	if (t->is_client)
		connect_fail(t, status);
	else
		end(t, status);
}

static int spki_pin(const mbedtls_x509_crt *crt, uint8_t out[32])
{
	unsigned char der[2048];   /* an RSA-8192 key's SPKI is ~1.1 KB */
	int n;

	/* mbedtls writes the DER at the end of the buffer. */
	n = mbedtls_pk_write_pubkey_der((mbedtls_pk_context *)&crt->pk, der, sizeof(der));
	if (n <= 0)
		return -EINVAL;
	if (mbedtls_sha256_ret(der + sizeof(der) - n, (size_t)n, out, 0))
		return -EIO;
	return 0;
}

static int verify_peer(struct tls_conn *t)
{
	const mbedtls_x509_crt *crt;
	uint8_t got[32];
	char hex[65];

	if (!t->cfg->has_pin)
		return 0;               /* authmode REQUIRED: mbedtls checked chain and name */
	crt = mbedtls_ssl_get_peer_cert(&t->ssl);
	if (!crt || spki_pin(crt, got) < 0) {
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

static int write_all(struct tls_conn *t, const unsigned char *p, size_t len)
{
	char why[160];
	int r;

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
				 mbed_err(r, why, sizeof(why)));
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
		r = mbedtls_ssl_handshake_step(&t->ssl);
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
			mbed_err(r, why, sizeof(why));
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
				session_forget(t->key);
			connect_fail(t, r);
			return;
		}
		if (t->key)
			session_save(t, !t->saw_cert);
	}
	t->state = TLS_OPEN;
	if (t->early_len) {
		write_all(t, t->early, t->early_len);   /* a failure shows on the next write */
		free(t->early);
		t->early = NULL;
		t->early_len = 0;
	}
	log_debug("tls established", "peer=%s side=%s suite=%s resumed=%d", t->base.peer,
		  t->is_client ? "client" : "server", mbedtls_ssl_get_ciphersuite(&t->ssl),
		  !t->saw_cert);
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
			end(t, UV_EOF);
			break;
		}
		log_info("tls read failed", "peer=%s err=%s", t->base.peer, mbed_err(r, why, sizeof(why)));
		t->broken = 1;
		end(t, map_mbed_err(r));
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
			end(t, t->lower_end);
		}
	}
	if (!t->closed && t->state != TLS_ENDED && save_chunk(t) < 0) {
		t->broken = 1;
		end(t, -ENOMEM);
	}
	t->chunk = NULL;
	t->chunk_len = 0;
	t->depth--;
	if (t->closed && !t->depth)
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

	t->lower_end = status ? status : UV_EOF;
	if (status != UV_EOF)
		t->broken = 1;
	pump(t);
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
		return write_all(t, buf, len);
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

static size_t tls_pending(const struct conn *c)
{
	const struct tls_conn *t = tls_of(c);

	return t->early_len + (t->lower ? conn_pending(t->lower) : 0);
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
	if (t->state == TLS_OPEN && !t->broken)
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
	.pending = tls_pending,
	.close = tls_close,
	.read_stop = tls_read_stop,
	.read_start = tls_read_start,
};

int tls_conn_resumed(const struct conn *c)
{
	const struct tls_conn *t = (const struct tls_conn *)(const void *)c;

	if (!c || c->ops != &tls_ops)
		return -EINVAL;
	if (!t->done)
		return -EAGAIN;
	return !t->saw_cert;
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
	atomic_fetch_add(&cfg->refs, 1);
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
	conn_set_callbacks(lower, lower_read, lower_end, t);
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
	conn_set_callbacks(lower, lower_read, lower_end, t);
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
	struct tls_conn *t;
	int r = 0;

	if (!cfg || cfg->is_server || !host || !*host || !cb)
		return -EINVAL;
	t = tls_new(loop, cfg, &r);
	if (!t)
		return r;
	t->is_client = 1;
	t->connect_cb = cb;
	t->connect_arg = arg;
	t->connecting.cancel = tls_connect_cancel;
	snprintf(t->base.peer, sizeof(t->base.peer), "%s:%u", host, port);
	/* With a pin the name is only SNI; without one mbedtls checks it against the
	 * certificate (DNS names and CN; mbedtls 2.28 does not match IP SANs). */
	if (!cfg->has_pin || !is_ip_literal(host))
		r = mbedtls_ssl_set_hostname(&t->ssl, host);
	if (r) {
		r = -EINVAL;
		goto err_free;
	}
	if (strlen(host) < SESSION_HOST_MAX) {
		t->key = calloc(1, sizeof(*t->key));
		if (!t->key) {
			r = -ENOMEM;
			goto err_free;
		}
		memcpy(t->key->host, host, strlen(host) + 1);
		t->key->port = port;
		t->key->has_pin = (uint8_t)cfg->has_pin;
		memcpy(t->key->trust, cfg->trust, sizeof(t->key->trust));
		r = session_offer(t);
		if (r < 0)
			goto err_free;
	}
	r = conn_tcp_connect(loop, host, port, client_connected, t, &t->tcp);
	if (r < 0)
		goto err_free;
	if (out)
		*out = &t->connecting;
	return 0;

err_free:
	tls_free(t);
	return r;
}

/* -- configuration -- */

static int config_new(int endpoint, struct tls_config **out)
{
	static const char pers[] = "meshvpn-tls";
	struct tls_config *cfg = calloc(1, sizeof(*cfg));
	int r;

	if (!cfg)
		return -ENOMEM;
	atomic_init(&cfg->refs, 1);
	cfg->is_server = endpoint == MBEDTLS_SSL_IS_SERVER;
	mbedtls_ssl_config_init(&cfg->conf);
	mbedtls_entropy_init(&cfg->entropy);
	mbedtls_ctr_drbg_init(&cfg->drbg);
	mbedtls_ssl_ticket_init(&cfg->ticket);
	mbedtls_x509_crt_init(&cfg->certs);
	mbedtls_pk_init(&cfg->key);
	*out = cfg;
	r = mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func, &cfg->entropy,
				  (const unsigned char *)pers, sizeof(pers) - 1);
	if (r)
		return -EIO;
	r = mbedtls_ssl_config_defaults(&cfg->conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
					MBEDTLS_SSL_PRESET_DEFAULT);
	if (r)
		return -ENOMEM;
	mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(&cfg->conf, ciphersuites);
	mbedtls_ssl_conf_rng(&cfg->conf, mbedtls_ctr_drbg_random, &cfg->drbg);
	return 0;
}

int tls_config_server_new(const char *cert_file, const char *key_file, struct tls_config **out)
{
	struct tls_config *cfg = NULL;
	char why[160];
	int r;

	if (!cert_file || !key_file || !out)
		return -EINVAL;
	r = config_new(MBEDTLS_SSL_IS_SERVER, &cfg);
	if (r < 0)
		goto err;
	r = mbedtls_x509_crt_parse_file(&cfg->certs, cert_file);
	if (r) {
		log_error("cannot load certificate", "file=%s err=%s", cert_file, mbed_err(r, why, sizeof(why)));
		r = r == MBEDTLS_ERR_PK_FILE_IO_ERROR ? -ENOENT : -EINVAL;
		goto err;
	}
	r = mbedtls_pk_parse_keyfile(&cfg->key, key_file, NULL);
	if (r) {
		log_error("cannot load key", "file=%s err=%s", key_file, mbed_err(r, why, sizeof(why)));
		r = r == MBEDTLS_ERR_PK_FILE_IO_ERROR ? -ENOENT : -EINVAL;
		goto err;
	}
	if (mbedtls_pk_check_pair(&cfg->certs.pk, &cfg->key)) {
		log_error("key does not match certificate", "cert=%s key=%s", cert_file, key_file);
		r = -EINVAL;
		goto err;
	}
	if (mbedtls_ssl_conf_own_cert(&cfg->conf, &cfg->certs, &cfg->key)) {
		r = -ENOMEM;
		goto err;
	}
	/* Each config has its own random ticket key: a restarted server does not accept
	 * old tickets, and clients fall back to a full handshake. */
	if (mbedtls_ssl_ticket_setup(&cfg->ticket, mbedtls_ctr_drbg_random, &cfg->drbg,
				     MBEDTLS_CIPHER_AES_256_GCM, TICKET_LIFETIME_S)) {
		r = -EIO;
		goto err;
	}
	mbedtls_ssl_conf_session_tickets_cb(&cfg->conf, mbedtls_ssl_ticket_write,
					    mbedtls_ssl_ticket_parse, &cfg->ticket);
	*out = cfg;
	return 0;

err:
	if (cfg)
		config_unref(cfg);
	return r;
}

/* Identifies a set of trust anchors: a session verified under one bundle is not
 * offered under another. */
static int chain_hash(const mbedtls_x509_crt *crt, uint8_t out[32])
{
	mbedtls_sha256_context h;
	int r;

	mbedtls_sha256_init(&h);
	r = mbedtls_sha256_starts_ret(&h, 0);
	for (; !r && crt && crt->raw.len; crt = crt->next)
		r = mbedtls_sha256_update_ret(&h, crt->raw.p, crt->raw.len);
	if (!r)
		r = mbedtls_sha256_finish_ret(&h, out);
	mbedtls_sha256_free(&h);
	return r ? -EIO : 0;
}

int tls_config_client_new(const char *ca_file, const char *pin, struct tls_config **out)
{
	struct tls_config *cfg = NULL;
	char why[160];
	int r;

	if (!out)
		return -EINVAL;
	r = config_new(MBEDTLS_SSL_IS_CLIENT, &cfg);
	if (r < 0)
		goto err;
	if (pin) {
		r = tls_pin_parse(pin, cfg->pin);
		if (r < 0)
			goto err;
		cfg->has_pin = 1;
		memcpy(cfg->trust, cfg->pin, sizeof(cfg->trust));
		/* The chain is not checked (self-signed); the pin, checked after the
		 * handshake, is the trust. The handshake itself proves key possession. */
		mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
	} else {
		if (!ca_file)
			ca_file = DEFAULT_CA_FILE;
		r = mbedtls_x509_crt_parse_file(&cfg->certs, ca_file);
		if (r < 0 || !cfg->certs.version) {
			/* r > 0 counts certificates that failed to parse: bundles may hold a
			 * few, but at least one must load. */
			log_error("cannot load CA certificates", "file=%s err=%s", ca_file,
				  r < 0 ? mbed_err(r, why, sizeof(why)) : "\"no valid certificate\"");
			r = r == MBEDTLS_ERR_PK_FILE_IO_ERROR ? -ENOENT : -EINVAL;
			goto err;
		}
		r = chain_hash(&cfg->certs, cfg->trust);
		if (r < 0)
			goto err;
		mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->certs, NULL);
		mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	}
	mbedtls_ssl_conf_session_tickets(&cfg->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
	*out = cfg;
	return 0;

err:
	if (cfg)
		config_unref(cfg);
	return r;
}

void tls_config_free(struct tls_config *cfg)
{
	if (cfg)
		config_unref(cfg);
}
