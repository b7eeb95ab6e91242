/* authkeys.c - auth keys (a node that presents one is approved at once) and API keys
 * (the admin API over HTTPS). Only their SHA-256 is kept, in memory and in the store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "coord.h"
#include "meshvpn/log.h"

#define TOKEN_AUTH "mvpn-auth-"
#define TOKEN_API "mvpn-api-"
#define PREFIX_MIN 6   /* shorter prefixes are refused, not guessed at */

/* --- auth keys --- */

static struct authkey *authkey_find(struct coord *co, const uint8_t h[HASH_LEN])
{
	for (struct authkey *k = co->authkeys; k; k = k->next)
		if (!keys_equal_ct(k->rec.hash, h, HASH_LEN))
			return k;
	return NULL;
}

struct authkey *coord_authkey_lookup(struct coord *co, const char *key)
{
	uint8_t h[HASH_LEN];
	struct authkey *k;

	keys_hash(key, strlen(key), h);
	k = authkey_find(co, h);
	/* Made on another instance a moment ago? */
	if (!k && coord_feed_catch_up(co))
		k = authkey_find(co, h);
	return k;
}

const char *coord_authkey_problem(const struct authkey *k)
{
	if (!k)
		return "invalid auth key";
	if (k->rec.revoked)
		return "auth key revoked";
	if (k->rec.expiry && coord_now() >= k->rec.expiry)
		return "auth key expired";
	if (!k->rec.reusable && k->rec.uses > 0)
		return "auth key already used (create a --reusable key for several nodes)";
	return NULL;
}

int coord_authkey_create(struct coord *co, int reusable, int ephemeral, int64_t expiry_secs,
			 const char *tags, char *key_out, size_t key_size, struct authkey **out)
{
	struct authkey *k;
	int64_t now = coord_now(), expiry;
	int rc;

	if (coord_expiry_at(now, expiry_secs, &expiry))
		return -ERANGE;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	keys_random_token(TOKEN_AUTH, key_out, key_size);
	keys_hash(key_out, strlen(key_out), k->rec.hash);
	snprintf(k->rec.prefix, sizeof(k->rec.prefix), "%.14s", key_out + strlen(TOKEN_AUTH));
	k->rec.reusable = reusable;
	k->rec.ephemeral = ephemeral;
	snprintf(k->rec.tags, sizeof(k->rec.tags), "%s", tags ? tags : "");
	k->rec.created = now;
	k->rec.expiry = expiry;
	rc = store_authkey_insert(co->st, &k->rec);
	if (rc) {
		sodium_memzero(key_out, key_size);
		free(k);
		return rc;
	}
	k->next = co->authkeys;
	co->authkeys = k;
	if (out)
		*out = k;
	log_info("auth key created", "id=%lld reusable=%d ephemeral=%d", (long long)k->rec.id,
		 reusable, ephemeral);
	return 0;
}

/* Whether arg names a key of this id and prefix: its id (all digits), or a prefix of
 * its prefix. An all-digit prefix can be both; then both candidates are listed. */
static int key_matches(const char *arg, int64_t id, const char *prefix)
{
	int64_t want;
	size_t n = strlen(arg);

	if (coord_arg_id(arg, &want) && want == id)
		return 1;
	return n >= PREFIX_MIN && !strncmp(prefix, arg, n);
}

int coord_authkey_resolve(struct coord *co, const char *arg, struct authkey **out, char *err,
			  size_t errlen)
{
	struct coord_pick pick = { 0 };
	void *hit;
	int rc;

	for (struct authkey *k = co->authkeys; k; k = k->next)
		if (key_matches(arg, k->rec.id, k->rec.prefix))
			coord_pick_add(&pick, k, "id %lld (%s)", (long long)k->rec.id, k->rec.prefix);
	rc = coord_pick_done(&pick, "auth key", arg, &hit, err, errlen);
	*out = hit;
	return rc;
}

int coord_authkey_revoke(struct coord *co, struct authkey *k)
{
	struct authkey_rec r = k->rec;
	int rc;

	r.revoked = 1;
	rc = store_authkey_update(co->st, &r);
	if (!rc) {
		k->rec = r;
		log_info("auth key revoked", "id=%lld", (long long)r.id);
	}
	return rc;
}

/* --- API keys (admin over HTTPS) --- */

int coord_apikey_create(struct coord *co, int64_t expiry_secs, char *key_out, size_t key_size)
{
	struct apikey *k;
	int64_t now = coord_now(), expiry;
	int rc;

	if (coord_expiry_at(now, expiry_secs, &expiry))
		return -ERANGE;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	keys_random_token(TOKEN_API, key_out, key_size);
	keys_hash(key_out, strlen(key_out), k->rec.hash);
	snprintf(k->rec.prefix, sizeof(k->rec.prefix), "%.14s", key_out + strlen(TOKEN_API));
	k->rec.created = now;
	k->rec.expiry = expiry;
	rc = store_apikey_insert(co->st, &k->rec);
	if (rc) {
		free(k);
		return rc;
	}
	k->next = co->apikeys;
	co->apikeys = k;
	return 0;
}

int coord_apikey_check(struct coord *co, const char *key)
{
	uint8_t h[HASH_LEN];

	if (!key || strncmp(key, TOKEN_API, strlen(TOKEN_API)))
		return -EPERM;
	keys_hash(key, strlen(key), h);
	for (int pass = 0; pass < 2; pass++) {
		for (struct apikey *k = co->apikeys; k; k = k->next)
			if (!keys_equal_ct(k->rec.hash, h, HASH_LEN))
				return k->rec.revoked || (k->rec.expiry && coord_now() >= k->rec.expiry)
					? -EPERM : 0;
		if (pass || !coord_feed_catch_up(co))
			break;
	}
	return -EPERM;
}

int coord_apikey_revoke(struct coord *co, const char *id_or_prefix, int64_t *id, char *err,
			size_t errlen)
{
	struct coord_pick pick = { 0 };
	struct apikey_rec r;
	struct apikey *k;
	void *hit;
	int rc;

	for (k = co->apikeys; k; k = k->next)
		if (key_matches(id_or_prefix, k->rec.id, k->rec.prefix))
			coord_pick_add(&pick, k, "id %lld (%s)", (long long)k->rec.id, k->rec.prefix);
	rc = coord_pick_done(&pick, "API key", id_or_prefix, &hit, err, errlen);
	if (rc)
		return rc;
	k = hit;
	r = k->rec;
	r.revoked = 1;
	rc = store_apikey_update(co->st, &r);
	if (rc) {
		snprintf(err, errlen, "could not store the change");
		return rc;
	}
	k->rec = r;
	*id = r.id;
	log_info("API key revoked", "id=%lld", (long long)r.id);
	return 0;
}
