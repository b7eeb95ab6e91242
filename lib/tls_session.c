/* tls_session.c - the per-process client session cache for TLS session resumption with tickets (RFC 5077). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <mbedtls/platform_time.h>
#include <mbedtls/ssl.h>

#include "tls_int.h"

#define SESSION_CACHE_SIZE 16

/* Per process, not per config: http_fetch makes a config per call, in threadpool threads,
 * hence the lock. */
struct session_entry {
	struct tls_session_key key;
	uint64_t used;              /* LRU stamp; 0: a free slot */
	mbedtls_ssl_session session;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session_entry cache[SESSION_CACHE_SIZE];
static uint64_t cache_clock;

static int key_equal(const struct tls_session_key *a, const struct tls_session_key *b)
{
	return a->port == b->port && a->has_pin == b->has_pin && !strcmp(a->host, b->host) &&
	       !memcmp(a->trust, b->trust, sizeof(a->trust));
}

/* Called with cache_lock held. */
static struct session_entry *cache_find(const struct tls_session_key *key)
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

	return s->start <= now && now - s->start < TLS_TICKET_LIFETIME_S;
}

/* A server that does not take the session offered (restarted, other ticket key, expired
 * ticket) answers with a full handshake. */
int tls_session_offer(mbedtls_ssl_context *ssl, const struct tls_session_key *key)
{
	struct session_entry *e;
	int r = 0, offered = 0;

	pthread_mutex_lock(&cache_lock);
	e = cache_find(key);
	if (e && !session_fresh(&e->session)) {
		entry_clear(e);
		e = NULL;
	}
	if (e) {
		r = mbedtls_ssl_set_session(ssl, &e->session);
		if (r == 0) {
			e->used = ++cache_clock;
			offered = 1;
		} else if (ssl->session_negotiate &&
			   ssl->session_negotiate->ticket == e->session.ticket) {
			/* A copy that failed half-way may share the ticket buffer. */
			ssl->session_negotiate->ticket = NULL;
			ssl->session_negotiate->ticket_len = 0;
		}
	}
	pthread_mutex_unlock(&cache_lock);
	return r ? -ENOMEM : offered;
}

void tls_session_forget(const struct tls_session_key *key)
{
	struct session_entry *e;

	pthread_mutex_lock(&cache_lock);
	e = cache_find(key);
	if (e)
		entry_clear(e);
	pthread_mutex_unlock(&cache_lock);
}

/* Saved in the key's slot, else the least recently used one. */
void tls_session_save(mbedtls_ssl_context *ssl, const struct tls_session_key *key, int resumed)
{
	const mbedtls_ssl_session *cur = mbedtls_ssl_get_session_pointer(ssl);
	struct session_entry *e, *slot;
	mbedtls_ssl_session s, old;

	if (!cur || (!cur->ticket_len && !cur->id_len))
		return;                 /* nothing a server could resume */
	mbedtls_ssl_session_init(&s);
	mbedtls_ssl_session_init(&old);
	if (mbedtls_ssl_get_session(ssl, &s) != 0) {
		if (s.ticket == cur->ticket)
			s.ticket = NULL;   /* as in tls_session_offer */
		mbedtls_ssl_session_free(&s);
		return;
	}
	pthread_mutex_lock(&cache_lock);
	e = cache_find(key);
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
	slot->key = *key;
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
