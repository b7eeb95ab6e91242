/* guard.c - what an anonymous client may cost coord. Registration challenges are not
 * stored when issued: each is an expiry time and a nonce under an HMAC with a key of
 * this process, so a flood of them costs nothing but the answers. One is single-use all
 * the same: a used one is kept (in co->challenges, a bounded ring, and by_challenge)
 * until it expires. At the HTTP edge: token buckets per source on challenge and
 * register, the cap on nodes waiting for approval, and load shedding of stream
 * requests. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "coord.h"
#include "meshvpn/json.h"
#include "meshvpn/log.h"

#define MAC_LEN 16          /* bytes 16..31 of a challenge */
#define BODY_LEN 16         /* expiry (8, big-endian) and nonce (8): what the MAC covers */
#define SOURCE_SLOTS 8192   /* sources each limiter remembers */

static struct log_limit lim_limited = LOG_LIMIT_INIT("coord_rate_limited", 10);
static struct log_limit lim_pending = LOG_LIMIT_INIT("coord_pending_cap", 10);
static struct log_limit lim_shed = LOG_LIMIT_INIT("coord_shed", 10);

static void challenge_mac(struct coord *co, const uint8_t body[BODY_LEN], uint8_t mac[MAC_LEN])
{
	uint8_t full[crypto_auth_hmacsha256_BYTES];

	if (!co->guard.key_set) {
		randombytes_buf(co->guard.key, sizeof(co->guard.key));
		co->guard.key_set = 1;
	}
	crypto_auth_hmacsha256(full, body, BODY_LEN, co->guard.key);
	memcpy(mac, full, MAC_LEN);
}

int coord_challenge_new(struct coord *co, uint8_t out[32])
{
	uint64_t exp = (uint64_t)(coord_now() + COORD_CHALLENGE_TTL);

	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(exp >> (56 - 8 * i));
	randombytes_buf(out + 8, 8);
	challenge_mac(co, out, out + BODY_LEN);
	co->guard.issued++;
	return 0;
}

/* Forgets used challenges from the ring's head while they have expired; the ring is in
 * order of use, which is nearly that of expiry (within one TTL). */
void coord_challenges_expire(struct coord *co, int64_t now)
{
	while (co->ch_count) {
		struct challenge *h = &co->challenges[co->ch_head];
		if (h->expires > now)
			break;
		if (keymap_get(&co->by_challenge, h->value) == h)
			keymap_del(&co->by_challenge, h->value);
		co->ch_head = (co->ch_head + 1) % COORD_MAX_CHALLENGES;
		co->ch_count--;
	}
}

int coord_challenge_take(struct coord *co, const uint8_t value[32])
{
	uint8_t mac[MAC_LEN];
	int64_t now = coord_now(), exp = 0;
	struct challenge *c;

	challenge_mac(co, value, mac);
	if (sodium_memcmp(mac, value + BODY_LEN, MAC_LEN))
		return -ENOENT;
	for (int i = 0; i < 8; i++)
		exp = (exp << 8) | value[i];
	if (exp <= now)
		return -ETIMEDOUT;
	if (keymap_get(&co->by_challenge, value))
		return -ENOENT;
	coord_challenges_expire(co, now);
	if (co->ch_count == COORD_MAX_CHALLENGES) {
		/* More registrations a minute than the ring holds (each needs a challenge from
		 * a rate-limited source): better refused now than replayable. */
		co->guard.used_full++;
		return -EBUSY;
	}
	c = &co->challenges[(co->ch_head + co->ch_count) % COORD_MAX_CHALLENGES];
	memcpy(c->value, value, 32);
	c->expires = exp;
	if (keymap_put(&co->by_challenge, c->value, c))
		return -EBUSY;
	co->ch_count++;
	return 0;
}

int coord_guard_setup(struct coord *co, const struct coord_guard_opts *o)
{
	int rc;

	co->guard.max_pending = o->max_pending;
	co->guard.shed_on = o->shed_on;
	co->guard.shed_unsent = o->shed_unsent;
	co->guard.shed_retry_after = o->shed_retry_after ? o->shed_retry_after : 1;
	rc = ratelimit_new(SOURCE_SLOTS, o->challenge_per_min, o->challenge_per_min,
			   &co->guard.challenge);
	if (!rc)
		rc = ratelimit_new(SOURCE_SLOTS, o->register_per_min, o->register_per_min,
				   &co->guard.reg);
	if (rc)
		coord_guard_free(co);
	return rc;
}

void coord_guard_free(struct coord *co)
{
	ratelimit_free(co->guard.challenge);
	ratelimit_free(co->guard.reg);
	co->guard.challenge = co->guard.reg = NULL;
}

int coord_guard_allow(struct coord *co, struct ratelimit *rl, const char *peer, uint64_t *count)
{
	uint8_t key[RATELIMIT_KEY_LEN];

	if (!rl)
		return 0;
	ratelimit_source_key(peer, key);
	if (!ratelimit_take(rl, key, uv_now(co->loop)))
		return 0;
	(*count)++;
	log_limited(&lim_limited, LOG_INFO, "request rate-limited", "peer=%s what=%s", peer,
		    rl == co->guard.reg ? "register" : "challenge");
	return -EAGAIN;
}

size_t coord_pending_count(const struct coord *co)
{
	size_t n = 0;

	for (const struct node *p = co->nodes_head; p; p = p->next)
		n += coord_node_state(p) == NODE_STATUS_NEEDS_APPROVAL;
	return n;
}

int coord_guard_pending_full(struct coord *co, const json_t *body, const char *peer)
{
	const char *mk, *ak = NULL;
	uint8_t key[KEY_LEN];
	size_t n;

	if (!co->guard.max_pending || json_get_str(body, "auth_key", &ak) == 0 ||
	    json_get_str(body, "machine_key", &mk) || key_from_base64(mk, key))
		return 0;     /* keyed (it will not wait), or malformed (register says why) */
	if (keymap_get(&co->by_machine_key, key))
		return 0;     /* a known machine: no new node */
	n = coord_pending_count(co);
	if (n < co->guard.max_pending)
		return 0;
	co->guard.pending_full++;
	log_limited(&lim_pending, LOG_WARN, "pending node cap reached", "peer=%s pending=%zu max=%zu",
		    peer, n, co->guard.max_pending);
	return 1;
}

/* The overload signal is what this loop's connections still owe their clients: bytes
 * written but not yet handed to the kernel (plain send queues and TLS plaintext waiting
 * to be encrypted, lib/conn.c's conn_unsent_total(), O(1)). A reconnect storm is exactly
 * that growing: every stream opened adds a full netmap (3.3 MB at 10,000 nodes) that
 * drains only as fast as the network and the encryption go, and it is memory we hold.
 * Loop lag is no measure any more since encryption is sliced (lib/tls_outq.c): the loop
 * stays responsive while megabytes wait. A request shed costs a token lookup less than
 * one admitted: no netmap is built, and the client comes back after Retry-After plus
 * its own jitter (lib/line_stream.c) instead of timing out a handshake. */
int coord_guard_shed(struct coord *co, struct http_request *req, enum coord_shed_what what)
{
	size_t unsent = conn_unsent_total();
	unsigned s = co->guard.shed_retry_after;
	char hdr[48], body[128];
	int n;

	if (!co->guard.shed_on || unsent < co->guard.shed_unsent)
		return 0;
	if (what == COORD_SHED_RELAY)
		co->guard.shed_relay++;
	else
		co->guard.shed_map++;
	log_limited(&lim_shed, LOG_WARN, "stream request shed: coord overloaded",
		    "peer=%s path=%s unsent=%zu budget=%zu retry_after=%u", req->peer,
		    what == COORD_SHED_RELAY ? "relay" : "map", unsent,
		    co->guard.shed_unsent, s);
	snprintf(hdr, sizeof(hdr), "Retry-After: %u\r\n", s);
	n = snprintf(body, sizeof(body), "{\"error\":\"coord is overloaded: retry after %u "
		     "seconds\",\"retry_after\":%u}", s, s);
	http_respond(req, 503, "application/json", hdr, body, (size_t)n);
	return 1;
}
