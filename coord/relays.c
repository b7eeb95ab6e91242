/* relays.c - the relays coord knows: added by an admin with a token (stored hashed),
 * the pin each reports, and the relay map every node gets. Their streams are
 * relay_stream.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "coord.h"
#include "meshvpn/log.h"

#define TOKEN_RELAY "mvpn-relay-"

int coord_relay_add(struct coord *co, const char *name, const char *url, char *token_out,
		    size_t token_size, char *err, size_t errlen)
{
	struct relay *r, **tail;
	char label[STORE_NAME_LEN];
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
	log_info("relay added", "name=%s url=%s", name, url);
	netmap_relays_changed(co);
	return 0;
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
	for (struct relay *r = co->relays; r; r = r->next)
		if (!keys_equal_ct(r->rec.token_hash, h, HASH_LEN))
			return r;
	return NULL;
}

int coord_relay_set_pin(struct coord *co, struct relay *r, const char *pin)
{
	struct relay_rec rec = r->rec;
	uint8_t raw[32];
	int rc;

	if (tls_pin_parse(pin, raw))
		return -EINVAL;
	if (!strcmp(rec.pin, pin))
		return 0;
	snprintf(rec.pin, sizeof(rec.pin), "%s", pin);
	rc = store_relay_update(co->st, &rec);
	if (rc)
		return rc;
	r->rec = rec;
	netmap_relays_changed(co);
	return 0;
}
