/* relays.c - the relays coord knows: added by an admin with a token (stored hashed),
 * the pin and STUN port each reports, and the relay map every node gets. Their streams
 * are relay_stream.c's. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "coord.h"
#include "meshvpn/addr.h"
#include "meshvpn/json.h"
#include "meshvpn/log.h"

#define TOKEN_RELAY "mvpn-relay-"

_Static_assert(sizeof(((struct relay_rec *)0)->stun) == COORD_STUN_TEXT_MAX,
	       "the store keeps what the relay map sends");

/* One STUN address nodes can send to: "host:port" with a host name or IPv4 address, or
 * "[v6]:port"; no zone (it would name an interface of coord's machine), no port 0. */
static int stun_one_valid(const char *s, size_t len)
{
	char one[COORD_STUN_TEXT_MAX], host[256];
	struct in6_addr a6;
	uint16_t port;

	if (!len || len >= sizeof(one))
		return 0;
	memcpy(one, s, len);
	one[len] = 0;
	if (addr_split_hostport(one, host, sizeof(host), &port) || !host[0] || !port)
		return 0;
	if (strchr(host, ':'))
		return inet_pton(AF_INET6, host, &a6) == 1;
	for (const char *p = host; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '-' || *p == '_'))
			return 0;
	return 1;
}

/* One address, or up to COORD_STUN_MAX_ADDRS separated by commas (a relay's IPv4 and
 * IPv6 STUN addresses, so nodes learn both reflexive addresses). */
static int stun_valid(const char *s)
{
	int n = 0;

	if (strlen(s) >= COORD_STUN_TEXT_MAX)
		return 0;
	for (;;) {
		size_t len = strcspn(s, ",");

		if (!stun_one_valid(s, len) || ++n > COORD_STUN_MAX_ADDRS)
			return 0;
		if (!s[len])
			return 1;
		s += len + 1;
	}
}

void coord_relay_stun(const struct relay_rec *r, char *out, size_t size)
{
	struct http_url u;
	int port = r->stun_port ? r->stun_port : COORD_STUN_PORT;

	if (r->stun[0]) {
		snprintf(out, size, "%s", r->stun);
		return;
	}
	if (http_url_parse(r->url, &u)) {   /* checked when added: only a damaged store row */
		if (size)
			out[0] = 0;
		return;
	}
	/* http_url keeps an IPv6 literal without its brackets. */
	snprintf(out, size, strchr(u.host, ':') ? "[%s]:%d" : "%s:%d", u.host, port);
}

int coord_relay_add(struct coord *co, const char *name, const char *url, const char *stun,
		    char *token_out, size_t token_size, char *err, size_t errlen)
{
	struct relay *r, **tail;
	char label[STORE_NAME_LEN], stun_text[COORD_STUN_TEXT_MAX];
	struct http_url u;
	int rc;

	coord_sanitize_label(name, label, sizeof(label));
	if (strcmp(label, name)) {
		snprintf(err, errlen, "relay name must be a DNS label (try '%s')", label);
		return -EINVAL;
	}
	if (http_url_parse(url, &u) || u.scheme != HTTP_SCHEME_HTTPS) {
		snprintf(err, errlen, "relay URL must look like https://host[:port]");
		return -EINVAL;
	}
	if (stun && *stun && !stun_valid(stun)) {
		snprintf(err, errlen, "relay STUN address must look like host:port or [ipv6]:port");
		return -EINVAL;
	}
	for (r = co->relays; r; r = r->next) {
		if (!strcmp(r->rec.name, name)) {
			snprintf(err, errlen, "a relay called '%s' exists already", name);
			return -EEXIST;
		}
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	snprintf(r->rec.name, sizeof(r->rec.name), "%s", name);
	snprintf(r->rec.url, sizeof(r->rec.url), "%s", url);
	snprintf(r->rec.stun, sizeof(r->rec.stun), "%s", stun ? stun : "");
	keys_random_token(TOKEN_RELAY, token_out, token_size);
	keys_hash(token_out, strlen(token_out), r->rec.token_hash);
	r->rec.created = coord_now();
	rc = store_relay_insert(co->st, &r->rec);
	if (rc) {
		snprintf(err, errlen, "could not store the relay");
		sodium_memzero(token_out, token_size);
		free(r);
		return rc;
	}
	for (tail = &co->relays; *tail; tail = &(*tail)->next)
		;
	*tail = r;
	coord_relay_stun(&r->rec, stun_text, sizeof(stun_text));
	log_info("relay added", "name=%s url=%s stun=%s", name, url, stun_text);
	netmap_relays_changed(co);
	return 0;
}

int coord_relay_resolve(struct coord *co, const char *arg, struct relay **out, char *err,
			size_t errlen)
{
	struct coord_pick pick = { 0 };
	struct relay *r;
	int64_t id = 0;
	int by_id = coord_arg_id(arg, &id);
	void *hit;
	int rc;

	for (r = co->relays; r; r = r->next)
		if (!strcmp(r->rec.name, arg) || (by_id && r->rec.id == id))
			coord_pick_add(&pick, r, "id %lld (%s)", (long long)r->rec.id, r->rec.name);
	/* A prefix only when nothing is named exactly: "fra" never means "frankfurt". */
	for (r = pick.n ? NULL : co->relays; *arg && r; r = r->next)
		if (!strncmp(r->rec.name, arg, strlen(arg)))
			coord_pick_add(&pick, r, "id %lld (%s)", (long long)r->rec.id, r->rec.name);
	rc = coord_pick_done(&pick, "relay", arg, &hit, err, errlen);
	*out = hit;
	return rc;
}

int coord_relay_remove(struct coord *co, const char *name)
{
	for (struct relay **p = &co->relays; *p; p = &(*p)->next) {
		struct relay *r = *p;
		int rc;
		if (strcmp(r->rec.name, name))
			continue;
		rc = store_relay_delete(co->st, r->rec.id);
		if (rc && rc != -ENOENT)
			return rc;
		*p = r->next;
		relay_stream_detach(co, r);   /* it is no longer one of ours */
		log_info("relay removed", "name=%s", name);
		free(r);
		netmap_relays_changed(co);
		return 0;
	}
	return -ENOENT;
}

struct relay *coord_relay_by_token(struct coord *co, const char *token)
{
	uint8_t h[HASH_LEN];

	if (!token || strncmp(token, TOKEN_RELAY, strlen(TOKEN_RELAY)))
		return NULL;
	keys_hash(token, strlen(token), h);
	for (int pass = 0; pass < 2; pass++) {
		for (struct relay *r = co->relays; r; r = r->next)
			if (!keys_equal_ct(r->rec.token_hash, h, HASH_LEN))
				return r;
		if (pass || !coord_feed_catch_up(co))
			break;
	}
	return NULL;
}

/* Records what the relay reported; stun_port 0 leaves the last reported one. */
static int relay_update(struct coord *co, struct relay *r, const char *pin, int stun_port)
{
	struct relay_rec rec = r->rec;
	uint8_t raw[32];
	int rc;

	if (tls_pin_parse(pin, raw))
		return -EINVAL;
	if (!strcmp(rec.pin, pin) && (!stun_port || rec.stun_port == stun_port))
		return 0;
	snprintf(rec.pin, sizeof(rec.pin), "%s", pin);
	if (stun_port)
		rec.stun_port = stun_port;
	rc = store_relay_update(co->st, &rec);
	if (rc)
		return rc;
	r->rec = rec;
	netmap_relays_changed(co);
	return 0;
}

int coord_relay_report(struct coord *co, struct relay *r, const json_t *body, char *err,
		       size_t errlen)
{
	const char *pin;
	int64_t port = 0;
	int rc;

	if (json_get_str(body, "pin", &pin)) {
		snprintf(err, errlen, "pin must be sha256:<64 hex digits>");
		return -EINVAL;
	}
	rc = json_get_int(body, "stun_port", &port);
	if (rc == -EINVAL || (!rc && (port < 1 || port > 65535))) {
		snprintf(err, errlen, "stun_port must be a port number (1-65535)");
		return -EINVAL;
	}
	rc = relay_update(co, r, pin, (int)port);
	if (rc == -EINVAL)
		snprintf(err, errlen, "pin must be sha256:<64 hex digits>");
	else if (rc)
		snprintf(err, errlen, "could not store the relay");
	return rc;
}
