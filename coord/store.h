/* store.h - coord's durable state in one SQLite file (WAL): nodes, auth keys, API keys,
 * relays, tailnet settings, the DNS policy. coord keeps a working copy in memory and writes through
 * here before it answers, so kill -9 at any moment loses nothing that was acknowledged. */
#ifndef COORD_STORE_H
#define COORD_STORE_H

#include <stdint.h>
#include "meshvpn/keys.h"

#define STORE_NAME_LEN 64
#define STORE_TAGS_LEN 256

enum node_state {
	NODE_PENDING = 0,   /* registered, waiting for `coord nodes approve` */
	NODE_APPROVED = 1,
	NODE_REJECTED = 2,
};

struct node_rec {
	int64_t id;                       /* assigned by store_node_insert */
	char name[STORE_NAME_LEN];        /* unique DNS label; "" until first approved */
	char hostname[STORE_NAME_LEN];    /* as the node reported it (whole UTF-8 characters) */
	char os[32];
	uint8_t node_key[KEY_LEN];
	uint8_t disco_key[KEY_LEN];
	uint8_t machine_key[KEY_LEN];
	uint8_t token_hash[HASH_LEN];     /* SHA-256 of the node's API token */
	uint32_t ipv4;                    /* host order, in 100.64.0.0/10; 0 until first approved */
	uint8_t ipv6[16];                 /* all zero until first approved */
	int state;                        /* enum node_state */
	int ephemeral;
	char tags[STORE_TAGS_LEN];        /* comma-separated "tag:x" */
	int64_t auth_key_id;              /* 0 when approved by an admin */
	int64_t created;                  /* unix seconds */
	int64_t key_expiry;               /* unix seconds; 0 = never */
	int64_t last_seen;                /* unix seconds */
};

struct authkey_rec {
	int64_t id;
	uint8_t hash[HASH_LEN];           /* SHA-256 of the key text; the key itself is never stored */
	char prefix[16];                  /* first characters, shown in `keys list` */
	int reusable;
	int ephemeral;
	char tags[STORE_TAGS_LEN];
	int64_t created;
	int64_t expiry;                   /* 0 = never */
	int64_t uses;
	int revoked;
};

struct apikey_rec {
	int64_t id;
	uint8_t hash[HASH_LEN];
	char prefix[16];
	int64_t created;
	int64_t expiry;
	int revoked;
};

struct relay_rec {
	int64_t id;
	char name[STORE_NAME_LEN];
	char url[256];
	uint8_t token_hash[HASH_LEN];
	char pin[80];                     /* reported by the relay; "" until then */
	int64_t created;
	char stun[264];                   /* the admin's "host:port" ("[v6]:port"); "" = from url */
	int stun_port;                    /* reported with the pin; 0 until then (3478 assumed) */
};

struct store;

/* Opens the database file PATH (created 0600 when absent; coord uses STATE/coord.db),
 * sets WAL, applies migrations up to the current schema version. -errno, -EPROTO for a
 * file from a newer coord, or -EIO with a logged SQLite message. */
int store_open(const char *path, struct store **out);
void store_close(struct store *st);
int store_schema_version(struct store *st);

/* Transactions for multi-step changes (nested calls are not supported). */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* Key/value settings: "tailnet_ula" (hex), "tailnet_domain", "key_expiry_days", ... */
int store_meta_get(struct store *st, const char *key, char *out, size_t size); /* -ENOENT */
int store_meta_set(struct store *st, const char *key, const char *value);

int store_node_insert(struct store *st, struct node_rec *n);       /* sets n->id */
int store_node_update(struct store *st, const struct node_rec *n); /* by id; -ENOENT */
int store_node_delete(struct store *st, int64_t id);               /* -ENOENT */
/* Calls cb for every node in id order; a non-zero return from cb stops and is returned. */
int store_node_foreach(struct store *st, int (*cb)(const struct node_rec *n, void *arg), void *arg);

int store_authkey_insert(struct store *st, struct authkey_rec *k);
int store_authkey_update(struct store *st, const struct authkey_rec *k);
int store_authkey_foreach(struct store *st, int (*cb)(const struct authkey_rec *k, void *arg), void *arg);

int store_apikey_insert(struct store *st, struct apikey_rec *k);
int store_apikey_update(struct store *st, const struct apikey_rec *k);
int store_apikey_foreach(struct store *st, int (*cb)(const struct apikey_rec *k, void *arg), void *arg);

int store_relay_insert(struct store *st, struct relay_rec *r);
int store_relay_update(struct store *st, const struct relay_rec *r);
int store_relay_delete(struct store *st, int64_t id);
int store_relay_foreach(struct store *st, int (*cb)(const struct relay_rec *r, void *arg), void *arg);

/* The DNS policy's tables (schema version 4), one row shape for all five. */
enum store_dns_table {
	STORE_DNS_UPSTREAMS,   /* name: "ADDR:PORT" / "tls://ADDR:PORT#NAME" */
	STORE_DNS_ROUTES,      /* name: domain, value: server */
	STORE_DNS_BLOCKLISTS,  /* name: URL or file, tag; fetched, version, lines, unusable */
	STORE_DNS_RULES,       /* name: domain, type: 1 allow / 0 block, tag */
	STORE_DNS_RECORDS,     /* name, type (enum dnspol_rr), value */
	STORE_DNS_TABLES,
};

struct dns_rec {
	int64_t id;                       /* assigned by store_dns_insert */
	int table;                        /* enum store_dns_table */
	const char *name, *value, *tag;   /* "" where a table has none; never NULL */
	int type;
	int64_t fetched, version, lines, unusable;   /* blocklists: what the fetcher found */
};

/* -EEXIST for a row that is there already (the tables' UNIQUE constraints). */
int store_dns_insert(struct store *st, struct dns_rec *r);
int store_dns_delete(struct store *st, int table, int64_t id);          /* -ENOENT */
int store_dns_blocklist_status(struct store *st, const struct dns_rec *r); /* by id */
/* In id order; the strings live until cb returns. */
int store_dns_foreach(struct store *st, int table, int (*cb)(const struct dns_rec *r, void *arg),
		      void *arg);

#endif
