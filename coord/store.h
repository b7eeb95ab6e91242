/* store.h - coord's durable state: nodes, auth keys, API keys, relays, tailnet settings,
 * the DNS policy, and the change feed that lets several coord instances share one
 * database. In one SQLite file (WAL) by default, or in PostgreSQL / CockroachDB
 * (store_db.h has the engines). coord keeps a working copy in memory and writes through
 * here before it answers, so kill -9 at any moment loses nothing that was acknowledged. */
#ifndef COORD_STORE_H
#define COORD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "meshvpn/keys.h"

#define STORE_NAME_LEN 64
#define STORE_TAGS_LEN 256
#define STORE_ENDPOINTS_LEN 1024

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
	int64_t rev;                      /* bumped by every store_node_update */
	/* What the node reports and where it is connected (store_node_live; no rev): */
	char endpoints[STORE_ENDPOINTS_LEN]; /* "ip:port,ip:port" */
	char home_relay[STORE_NAME_LEN];
	char online[STORE_NAME_LEN];      /* the instance holding its stream; "" = offline */
	int64_t disconnected_at;          /* unix seconds its last stream closed; 0 = never */
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

/* Opens SPEC: a postgresql:// (or postgres://) libpq URI, else the path of an SQLite file
 * (created 0600 when absent; coord uses STATE/coord.db, WAL). Creates or migrates the
 * schema to the current version. -errno, -EPROTO for a database from a newer coord,
 * -EIO (unreachable, or a logged engine message). */
int store_open(const char *spec, struct store **out);
void store_close(struct store *st);
int store_schema_version(struct store *st);
int store_spec_is_remote(const char *spec);   /* a PostgreSQL URI */
const char *store_engine_name(const struct store *st);
/* The name this coord instance writes into the feed, leases and the instances table. */
void store_set_instance(struct store *st, const char *name);
int store_healthy(struct store *st);          /* 1 while the database answers */
struct store_stats {
	uint64_t calls, us, errors;   /* statements, their time, the failed */
	uint64_t retries;             /* serialisation failures retried (PostgreSQL) */
	uint64_t unsure_commits;      /* the connection died in COMMIT: done or not, unknown */
};
void store_get_stats(const struct store *st, struct store_stats *out);

/* Transactions for multi-step changes (nested calls are not supported). */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* Key/value settings: "tailnet_ula" (hex), "tailnet_domain", "key_expiry_days", ... */
int store_meta_get(struct store *st, const char *key, char *out, size_t size); /* -ENOENT */
int store_meta_set(struct store *st, const char *key, const char *value);
/* Sets key to value unless it has one (another instance's first start may race ours),
 * and reads back what it holds now. */
int store_meta_init(struct store *st, const char *key, const char *value, char *out, size_t size);

/* Every write below is recorded in the change feed in the same transaction (the
 * caller's, or its own). -EEXIST: a unique column (name, address, key) is taken. */
int store_node_insert(struct store *st, struct node_rec *n);       /* sets n->id */
/* By id, if n->rev is still the stored one (then n->rev is bumped); -ENOENT, or -ESTALE
 * when another instance changed the node since n was read. Not the live fields. */
int store_node_update(struct store *st, struct node_rec *n);
/* The live fields and last_seen, whatever the rev. */
int store_node_live(struct store *st, const struct node_rec *n);
/* Its stream at instance `was` (NULL: this one) ended: offline (online '', disconnected_at
 * and last_seen at), only while the row still names `was`: -ENOENT when it names another
 * by now (the node moved there; its stream beat our noticing the old one's end). */
int store_node_offline_if(struct store *st, int64_t id, const char *was, int64_t at);
/* key_b64 (may be NULL): the node key it had, kept in the feed entry (a relay resuming
 * its key list after the delete learns which key to drop). -ENOENT. */
int store_node_delete(struct store *st, int64_t id, const char *key_b64);
/* Calls cb for every node in id order; a non-zero return from cb stops and is returned. */
int store_node_foreach(struct store *st, int (*cb)(const struct node_rec *n, void *arg), void *arg);
int store_node_get(struct store *st, int64_t id, struct node_rec *out);   /* -ENOENT */

int store_authkey_insert(struct store *st, struct authkey_rec *k);
int store_authkey_update(struct store *st, const struct authkey_rec *k);
int store_authkey_foreach(struct store *st, int (*cb)(const struct authkey_rec *k, void *arg), void *arg);
int store_authkey_get(struct store *st, int64_t id, struct authkey_rec *out);
/* Counts one use in the database; -EACCES when revoked or (not reusable) used already. */
int store_authkey_use(struct store *st, int64_t id, int reusable);

int store_apikey_insert(struct store *st, struct apikey_rec *k);
int store_apikey_update(struct store *st, const struct apikey_rec *k);
int store_apikey_foreach(struct store *st, int (*cb)(const struct apikey_rec *k, void *arg), void *arg);
int store_apikey_get(struct store *st, int64_t id, struct apikey_rec *out);

int store_relay_insert(struct store *st, struct relay_rec *r);
int store_relay_update(struct store *st, const struct relay_rec *r);
int store_relay_delete(struct store *st, int64_t id);
int store_relay_foreach(struct store *st, int (*cb)(const struct relay_rec *r, void *arg), void *arg);
int store_relay_get(struct store *st, int64_t id, struct relay_rec *out);

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
/* The last good copy of a blocklist source (schema version 6), for several instances:
 * the jobs holder stores what it fetched, the others take it from here. */
struct store_bl_copy {
	int64_t id, version;             /* the dns_blocklists row; the fetcher's version */
	uint8_t sum[32];                 /* BLAKE2b-256 of body */
	const char *meta;                /* the fetcher's JSON: ETag, Last-Modified, counts */
	const uint8_t *body;             /* NULL: only the meta changed (same sum) */
	size_t len;
};
/* The row's status (as store_dns_blocklist_status) and its copy, in one transaction with
 * one feed change. A NULL body updates the meta of a copy with this sum only. */
int store_dns_blocklist_copy_put(struct store *st, const struct dns_rec *status,
				 const struct store_bl_copy *c);
/* Every copy in id order without its body (body NULL, len its size); the meta lives
 * until cb returns. */
int store_dns_blocklist_copy_heads(struct store *st,
				   int (*cb)(const struct store_bl_copy *c, void *arg), void *arg);
/* One copy with its body (valid until cb returns); -ENOENT when there is none. */
int store_dns_blocklist_copy_get(struct store *st, int64_t id,
				 int (*cb)(const struct store_bl_copy *c, void *arg), void *arg);
/* In id order; the strings live until cb returns. */
int store_dns_foreach(struct store *st, int table, int (*cb)(const struct dns_rec *r, void *arg),
		      void *arg);
/* cb once if the row is there; 0 either way. */
int store_dns_get(struct store *st, int table, int64_t id,
		  int (*cb)(const struct dns_rec *r, void *arg), void *arg);

/* The change feed: what each committed write changed, numbered in commit order. */
enum store_change_kind {
	STORE_CH_META = 1,       /* key: the setting */
	STORE_CH_NODE,           /* ref: node id (gone when it no longer reads) */
	STORE_CH_NODE_LIVE,      /* ref: node id; only its live fields changed */
	STORE_CH_AUTHKEY,
	STORE_CH_APIKEY,
	STORE_CH_RELAY,
	STORE_CH_DNS,            /* + enum store_dns_table; ref: the row's id */
};

struct store_change {
	int64_t seq, idx;        /* the transaction's number, the change's place in it */
	int kind;
	int64_t ref;
	char key[64];
	char instance[STORE_NAME_LEN];   /* which coord wrote it */
	int64_t at;
};

/* Changes after seq `after`, in order, at most limit rows. */
int store_feed_read(struct store *st, int64_t after, int limit,
		    int (*cb)(const struct store_change *c, void *arg), void *arg);
int store_feed_head(struct store *st, int64_t *seq);     /* the newest committed number */
/* The feed number of this process's last committed write, or one past it (a replayed
 * transaction's is bounded by the head after its commit); 0 before the first. */
int64_t store_last_commit(const struct store *st);
int store_feed_oldest(struct store *st, int64_t *seq);   /* 0 when the feed is empty */
int store_feed_prune(struct store *st, int64_t before);

/* A once-only job: 1 when this instance holds it until now + ttl (it had it, or the
 * holder's lease ran out), 0 when another holds it. */
int store_lease_claim(struct store *st, const char *job, int64_t now, int64_t ttl);
int store_lease_release(struct store *st, const char *job);

struct store_instance {
	char name[STORE_NAME_LEN];
	char url[256];
	int64_t started, seen, feed_seq;
	char jobs[128];
};
int store_instance_beat(struct store *st, const struct store_instance *in);  /* name: ours */
int store_instance_foreach(struct store *st, int64_t seen_since,
			   int (*cb)(const struct store_instance *in, void *arg), void *arg);

/* Whole tables, for `coord migrate` (store_db.h's rows). */
struct store_row;
const char *store_table_columns(const char *table);       /* "a, b, c" in order */
int store_table_foreach(struct store *st, const char *table,
			int (*cb)(const struct store_row *row, void *arg), void *arg);
int store_table_count(struct store *st, const char *table, int64_t *count);
int store_row_copy(struct store *st, const char *table, const struct store_row *row);
int store_table_bump_ids(struct store *st, const char *table);
int64_t store_col_int(const struct store_row *r, int i);
void store_col_text(const struct store_row *r, int i, char *out, size_t size);

#endif
