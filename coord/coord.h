/* coord.h - the coordination server's private interface: the in-memory tailnet (nodes,
 * keys, relays, DNS policy) written through to the store, the netmap fan-out, the HTTP API. */
#ifndef COORD_COORD_H
#define COORD_COORD_H

#include <stdint.h>
#include <uv.h>
#include <jansson.h>

#include "meshvpn/http.h"
#include "meshvpn/keys.h"
#include "meshvpn/tls.h"
#include "meshvpn/keymap.h"
#include "meshvpn/coord_proto.h"
#include "meshvpn/ratelimit.h"
#include "store.h"
#include "nmlog.h"

#define COORD_MAX_ENDPOINTS 16
#define COORD_ENDPOINT_LEN 56          /* "[ffff:...:ffff]:65535" */
#define COORD_DEFAULT_PORT 8443
#define COORD_ADMIN_SOCKET "admin.sock"
#define COORD_STREAM_MAX_PENDING (8u << 20) /* a watcher further behind is cut off */
#define COORD_MAX_CHALLENGES 65536
#define COORD_CHALLENGE_TTL 60          /* seconds */

struct watcher;

struct node {
	struct node_rec rec;
	struct node *prev, *next;       /* all nodes, in id order */
	char endpoints[COORD_MAX_ENDPOINTS][COORD_ENDPOINT_LEN];
	int n_endpoints;
	char home_relay[STORE_NAME_LEN];
	struct watcher *watcher;        /* its open netmap stream, if any */
	int64_t disconnected_at;        /* for ephemeral clean-up; 0 while connected */
	int expired_notified;           /* the expiry has been fanned out */
	uint8_t name_hash[HASH_LEN];    /* key of by_name */
	char *peer_json;                /* cached peer entry as other nodes see it */
	size_t peer_json_len;
	uint8_t id_key[HASH_LEN];       /* key of by_id */
	int remote_online;              /* its stream is open at another live instance */
	int index_partial;              /* a key or name clashed in the maps (feed.c re-indexes) */
	int64_t reload_mark;            /* feed.c's full reload saw it */
	int live_unsaved;               /* its live fields could not be written (database away) */
	int64_t nm_ver;                 /* netmap_ver.c: the version it last changed at */
	int64_t vis_ver;                /* ... its record (visibility, key) last changed at */
	int64_t grace_until;            /* online until then: its stream was here before a restart */
	struct node *ch_prev, *ch_next; /* netmap_ver.c: the nodes in nm_ver order, newest last */
	int in_ch;
};

struct relay {
	struct relay_rec rec;
	struct relay *next;
};

struct authkey {
	struct authkey_rec rec;
	struct authkey *next;
};

struct apikey {
	struct apikey_rec rec;
	struct apikey *next;
};

struct challenge {
	uint8_t value[32];
	int64_t expires;
};

struct watcher {
	struct coord *co;
	struct node *node;              /* a node's netmap stream ... */
	struct relay *relay;            /* ... or a relay's admission stream */
	struct http_stream *stream;     /* NULL once the client has gone */
	int dead;                       /* to be reaped after the current fan-out */
	int quiet;                      /* its node left the tailnet: no online delta */
	int zstd;                       /* asked for z frames: big lines go packed */
	struct watcher *prev, *next;
};

struct coord_opts {
	const char *state_dir;
	const char *listen;
	const char *tls_cert, *tls_key;
	const char *metrics;
	int64_t ephemeral_timeout;      /* seconds after the last stream closed */
	int64_t reconnect_grace;        /* seconds a restart counts its nodes online; 0: none */
	int64_t key_expiry;             /* seconds; 0 = node keys never expire */
	int64_t keepalive;              /* seconds between stream keepalives */
	int64_t blocklist_refresh;      /* seconds between blocklist fetches; 0: 6 h */
	const char *store;              /* a postgresql:// URI; NULL: SQLite in state_dir */
	const char *instance;           /* this instance's name in the feed; NULL: "local" */
	const char *url;                /* where nodes reach this instance (coord status) */
	int64_t feed_keep;              /* changes kept for followers; 0: COORD_FEED_KEEP */
};

/* feed.c: several instances on one database. Each follows the change feed and applies
 * what the others wrote; once-only jobs are leased; instances beat in a table. */
#define COORD_FEED_POLL_MS 100
#define COORD_FEED_BATCH 1000
#define COORD_INSTANCE_BEAT 5           /* seconds */
#define COORD_INSTANCE_DEAD 20          /* seconds without a beat: its streams are gone */
#define COORD_LEASE_TTL 15              /* seconds */
#define COORD_FEED_KEEP 100000          /* changes kept for followers that fall behind */
#define COORD_MAX_INSTANCES 64

struct coord_instance_seen {
	char name[STORE_NAME_LEN];
	int64_t seen;
};

struct coord_feed {
	int64_t seq;                    /* the last change applied */
	int64_t head;                   /* the newest committed, when last asked */
	int64_t applied, own_skipped, reloads;
	int64_t poll_errors;
	uint64_t db_calls, db_us;       /* the follower's reads, and their time */
	double last_lag_s;              /* commit of the newest change applied -> applied */
	int jobs;                       /* this instance runs the once-only jobs */
	int db_ok;                      /* the last poll reached the database */
	int64_t started, last_beat;
	int64_t beating_since;          /* our beats have gone through since then (0: failing) */
	uint64_t unsure_seen;           /* store_stats.unsure_commits when last looked at */
	int apply_own;                  /* re-read our own changes too until caught up */
	int dns_retry;                  /* the DNS policy could not be re-read: again next poll */
	struct coord_instance_seen inst[COORD_MAX_INSTANCES];
	size_t n_inst;
	char alive[COORD_MAX_INSTANCES][STORE_NAME_LEN];   /* counted alive (alive_update) */
	size_t n_alive;
	uint64_t forced_us;             /* the last coord_feed_catch_up poll */
	uv_timer_t timer;
	int timer_on;
};

/* guard.c: what anonymous clients may cost (set up by `coord serve`; none in tests). */
struct coord_guard_opts {
	unsigned challenge_per_min, register_per_min;   /* per source, also the burst */
	size_t max_pending;                             /* 0 = no cap */
	/* Load shedding (coord_guard_shed): stream requests are answered 503 with
	 * Retry-After: shed_retry_after while this loop's connections hold shed_unsent
	 * bytes or more unsent (0: every one is shed). shed_on 0: never. */
	int shed_on;
	size_t shed_unsent;
	unsigned shed_retry_after;
};
struct coord_guard {
	uint8_t key[32];                 /* challenges' MAC, per process */
	int key_set;
	struct ratelimit *challenge, *reg;
	size_t max_pending;
	int shed_on;
	size_t shed_unsent;
	unsigned shed_retry_after;
	uint64_t issued, used_full, limited_challenge, limited_register, pending_full;
	uint64_t shed_map, shed_relay;   /* stream requests answered 503 (overloaded) */
};

/* dns.c: the DNS policy. Caps keep one node's share of it (its netmap's "dns") bounded. */
#define COORD_DNS_MAX_UPSTREAMS 64
#define COORD_DNS_MAX_ROUTES 256          /* domain -> server pairs */
#define COORD_DNS_ROUTE_SERVERS 8         /* servers of one routed domain */
#define COORD_DNS_MAX_BLOCKLISTS 256
#define COORD_DNS_MAX_RULES 100000        /* allow and block rules together */
#define COORD_DNS_MAX_RECORDS 10000
#define COORD_DNS_MAX_TAGS 256            /* distinct tags among blocklists and rules */
#define COORD_DNS_SOURCE_MAX 1024         /* a blocklist's URL or path */
#define COORD_DNS_RESOLVER "100.100.100.100"
#define COORD_DNS_BLOCKLIST_PATH "/v1/dns/blocklist"

enum coord_dns_kind {
	COORD_DNS_UPSTREAM,
	COORD_DNS_ROUTE,
	COORD_DNS_BLOCKLIST,
	COORD_DNS_ALLOW,
	COORD_DNS_BLOCK,
	COORD_DNS_RECORD,
	COORD_DNS_KINDS,
};

struct dns_item;
struct dns_view;

struct coord_dns {
	struct dns_item *head[COORD_DNS_KINDS], *tail[COORD_DNS_KINDS];
	size_t count[COORD_DNS_KINDS];
	struct keymap by_key;             /* SHA-256 of kind and fields: duplicates */
	char tags[COORD_DNS_MAX_TAGS][64]; /* the distinct tags items are scoped to ... */
	size_t tag_uses[COORD_DNS_MAX_TAGS]; /* ... and how many items use each */
	int nxdomain;                     /* blocking mode: NXDOMAIN, else 0.0.0.0 / :: */
	struct dns_view *views;           /* a node's "dns" per tag set, until the next change */
};

/* netmap_ver.c: the netmap's versions (change-feed numbers) and resumes. */
#define NM_STAMP_PENDING (INT64_MAX - 1)   /* stamped during a feed batch, until settled */
#define COORD_RECONNECT_GRACE 45           /* default of coord serve --reconnect-grace */
struct coord_nm {
	struct nmlog log;               /* the epoch, the floor, the nodes that left */
	int64_t start_head;             /* the feed's head when loaded */
	int64_t relays_ver, dns_ver;    /* the relay map's and the DNS policy's last change */
	int applying;                   /* feed.c applies a batch */
	int unsettled;                  /* some stamp is NM_STAMP_PENDING */
	int64_t load_pos, load_first;   /* netmap_versions_load's walk of the feed */
	int load_rows;
	void *gone;                     /* ... the gone nodes' entries it found */
	int64_t seen_written;           /* the version last noted in the state dir */
	size_t n_gone, cap_gone;
	uint64_t resumes, fulls, refused_epoch, refused_stale, refused_future;
	uint64_t relay_resumes;
	struct node *ch_head, *ch_tail; /* stamped nodes, oldest stamp first (netmap_touch) */
};

struct coord_stats {
	uint64_t registrations, deltas_sent, bytes_sent, slow_watchers_cut, requests, bad_requests;
	uint64_t bytes_uncompressed;    /* bytes_sent as it would be without z frames */
};

struct coord {
	uv_loop_t *loop;
	struct coord_opts opts;
	struct store *st;
	struct node *nodes_head, *nodes_tail;
	size_t n_nodes;
	struct keymap by_token, by_node_key, by_machine_key, by_name, by_challenge;
	struct authkey *authkeys;
	struct apikey *apikeys;
	struct relay *relays;
	struct watcher *node_watchers;  /* streams of every node, any state */
	struct watcher *relay_watchers;
	size_t n_watchers;
	struct challenge *challenges;   /* ring of used challenges until they expire (guard.c) */
	size_t ch_head, ch_count;
	uint8_t *ip_used;               /* bitmap over the 2^22 addresses of 100.64.0.0/10 */
	uint32_t ip_next;
	uint8_t ula[6];                 /* fdXX:XXXX:XXXX::/48, generated once per tailnet */
	char domain[64];
	struct coord_dns dns;
	struct coord_stats stats;
	struct coord_guard guard;
	struct coord_blocklists *bl;    /* blocklists.c; NULL unless started (serve) */
	struct keymap by_id;
	char instance[STORE_NAME_LEN];  /* this instance's name (store_set_instance) */
	int remote;                     /* on PostgreSQL: other instances may share it */
	struct coord_feed feed;
	int broadcasting;               /* a fan-out is iterating the watcher lists */
	int dead_pending;
	int live_unsaved;               /* some node's live fields wait to be written again */
	struct coord_nm nm;
};

/* state.c: the tailnet model; every change is written to the store before it returns. */
struct node *coord_node_by_id(struct coord *co, int64_t id);
/* What another instance did, read back from the store (feed.c): a node appears, changes,
 * changes only its live fields, or is gone; fanned out as a change made here would be. */
struct node *coord_node_adopt(struct coord *co, const struct node_rec *r);
void coord_node_apply(struct coord *co, struct node *n, const struct node_rec *r);
void coord_node_apply_live(struct coord *co, struct node *n, const struct node_rec *r);
void coord_node_forget(struct coord *co, struct node *n);
/* Writes n's endpoints, home relay, online instance and disconnect time to the store. */
int coord_node_live_save(struct coord *co, struct node *n);
/* Once the store answers again: writes the live fields that could not be written. */
void coord_nodes_live_resave(struct coord *co);
int coord_settings_load(struct coord *co);   /* the tailnet's ULA prefix and domain */
/* feed.c */
int coord_instances_load(struct coord *co);
int coord_instance_alive(const struct coord *co, const char *name);
void coord_feed_poll(struct coord *co);
/* A credential or node this instance does not know may have been made on another a
 * moment ago: polls the feed now (rate-limited); 1 when it did, so look again. */
int coord_feed_catch_up(struct coord *co);
int coord_feed_start(struct coord *co);
void coord_feed_tick(struct coord *co);   /* SQLite: prunes the feed now and then */
void coord_feed_stop(struct coord *co);
/* 1 when this instance may run the once-only jobs now (always with SQLite). */
int coord_jobs_mine(struct coord *co);
json_t *coord_status_json(struct coord *co);
/* With several instances: the state dir's tls.crt / tls.key become the store's one. */
int coord_tls_identity(struct coord *co, const char *dir);
struct metrics_text;
void coord_feed_metrics(struct coord *co, struct metrics_text *t);
int coord_open(struct coord *co, uv_loop_t *loop, const struct coord_opts *opts);
void coord_close(struct coord *co);
int64_t coord_now(void);
/* The node an admin's argument names: all digits is an id and nothing else; otherwise the
 * node holding that name, or else the one pending node that asked for it. 0, or -ENOENT /
 * -ENOTUNIQ (two pending nodes asked for it: the candidates are in err). */
int coord_node_resolve(struct coord *co, const char *arg, struct node **out, char *err,
		       size_t errlen);
/* coord_node_resolve without the message: NULL unless exactly one node matches. */
struct node *coord_node_find(struct coord *co, const char *name_or_id);
/* The node's name, or while it has none (pending, never approved) the label it asked for. */
const char *coord_node_label(const struct node *n, char buf[STORE_NAME_LEN]);
/* from + secs, for expiries: 0 (never) when secs is 0; -ERANGE when secs is negative or
 * beyond COORD_MAX_DURATION, which no clock reading plus it can overflow. */
#define COORD_MAX_DURATION (INT64_MAX / 4)
int coord_expiry_at(int64_t from, int64_t secs, int64_t *out);
struct node *coord_node_by_token(struct coord *co, const char *token);
int coord_node_visible(const struct node *n);   /* approved and not expired */
/* What a node is, as it and admins see it (the protocol's enum, meshvpn/coord_proto.h):
 * derived from the stored enum node_state and the key expiry. Text only at the JSON and
 * log edges (node_status_name). */
enum node_status coord_node_state(const struct node *n);
/* A registration request (POST /v1/register) as coord_register_parse leaves it: the
 * strings point into the JSON body, which must outlive it. verify fills ak and node. */
struct coord_reg {
	const char *challenge_hex, *node_b64, *disco_b64, *machine_b64;  /* as signed */
	const char *hostname, *os, *auth_key;   /* auth_key NULL when absent */
	uint8_t challenge[32];
	uint8_t node_key[KEY_LEN], disco_key[KEY_LEN], machine_key[KEY_LEN];
	uint8_t sig[SIG_LEN];
	struct authkey *ak;                     /* the auth key presented, if any */
	struct node *node;                      /* the machine's node, if it has one */
};
/* Registration: req is the JSON body; on success *resp is the JSON answer. On failure
 * a message in err and -EINVAL (malformed), -EACCES (challenge, signature or auth key),
 * -EPERM (machine rejected), -EEXIST (node key taken), -ENOSPC (no address left), or
 * -EIO / -ENOMEM. api_status() turns these into HTTP statuses. */
int coord_register(struct coord *co, const json_t *req, json_t **resp, char *err, size_t errlen);
/* The steps of coord_register: the form of the request (no side effects; -EINVAL) ... */
int coord_register_parse(const json_t *req, struct coord_reg *g, char *err, size_t errlen);
/* ... and whether it may register: uses up the challenge, checks the signature and the
 * auth key, finds the machine's node (-EACCES, -EEXIST, -EPERM). */
int coord_register_verify(struct coord *co, struct coord_reg *g, char *err, size_t errlen);
/* guard.c: challenges (stateless until used) ... */
int coord_challenge_new(struct coord *co, uint8_t out[32]);
/* Uses one up: 0, -ENOENT (not ours, or used), -ETIMEDOUT, -EBUSY (too many in use). */
int coord_challenge_take(struct coord *co, const uint8_t value[32]);
void coord_challenges_expire(struct coord *co, int64_t now);
/* ... and the limits at the HTTP edge. */
int coord_guard_setup(struct coord *co, const struct coord_guard_opts *o);
void coord_guard_free(struct coord *co);
/* One request of peer against limiter rl (NULL: none): 0, or -EAGAIN (counted in *count,
 * logged at a bounded rate). */
int coord_guard_allow(struct coord *co, struct ratelimit *rl, const char *peer, uint64_t *count);
/* 1 when the registration body would add a node waiting for approval and max_pending
 * of them wait already (counted, logged at a bounded rate). */
int coord_guard_pending_full(struct coord *co, const json_t *body, const char *peer);
size_t coord_pending_count(const struct coord *co);
/* At the start of a stream request (a netmap or relay stream), before anything is
 * built: 1 when coord is overloaded and the request was answered 503 with Retry-After
 * (counted, logged at a bounded rate), else 0. */
enum coord_shed_what { COORD_SHED_MAP, COORD_SHED_RELAY };
int coord_guard_shed(struct coord *co, struct http_request *req, enum coord_shed_what what);
int coord_node_approve(struct coord *co, struct node *n);
int coord_node_reject(struct coord *co, struct node *n);
int coord_node_expire(struct coord *co, struct node *n);
int coord_node_delete(struct coord *co, struct node *n);
int coord_node_rename(struct coord *co, struct node *n, const char *name, char *err, size_t errlen);
/* POST /v1/endpoints: -EPERM for a node that is not running (pending, expired, rejected),
 * -EINVAL for a malformed body or a home_relay not in the relay map. */
int coord_node_set_endpoints(struct coord *co, struct node *n, const json_t *body, char *err, size_t errlen);
/* Periodic: expiries, ephemeral clean-up, stale challenges. */
void coord_tick(struct coord *co);

/* lookup.c: an id (all digits, > 0, no sign, no overflow) or not; then the candidates
 * an argument matched, and the one it names or why not. */
struct coord_pick {
	void *hit;
	int n;
	size_t len;
	char list[400];                /* "id 3 (...), id 9 (...)" */
};
int coord_arg_id(const char *s, int64_t *id);
void coord_pick_add(struct coord_pick *p, void *thing, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* 0 with *out, -ENOENT or -ENOTUNIQ with a message naming `what` and the candidates. */
int coord_pick_done(const struct coord_pick *p, const char *what, const char *arg, void **out,
		    char *err, size_t errlen);

/* authkeys.c. Expiries are seconds from now, 0 = never; -ERANGE past COORD_MAX_DURATION. */
int coord_authkey_create(struct coord *co, int reusable, int ephemeral, int64_t expiry_secs,
			 const char *tags, char *key_out, size_t key_size, struct authkey **out);
/* By exact id or by a prefix (6 characters or more) of exactly one key: 0, -ENOENT,
 * -ENOTUNIQ, with a message in err. */
int coord_authkey_resolve(struct coord *co, const char *arg, struct authkey **out, char *err,
			  size_t errlen);
int coord_authkey_revoke(struct coord *co, struct authkey *k);
/* The auth key with this text, or NULL; then why it cannot be used now, or NULL. */
struct authkey *coord_authkey_lookup(struct coord *co, const char *key);
const char *coord_authkey_problem(const struct authkey *k);
int coord_apikey_create(struct coord *co, int64_t expiry_secs, char *key_out, size_t key_size);
int coord_apikey_check(struct coord *co, const char *key);
/* The same lookup as for auth keys; the revoked key's id in *id. */
int coord_apikey_revoke(struct coord *co, const char *id_or_prefix, int64_t *id, char *err,
			size_t errlen);
/* relays.c */
#define COORD_STUN_PORT 3478   /* a relay's STUN port unless told otherwise */
/* stun: "host:port" for the relay map, or NULL / "" for the URL's host and the port the
 * relay reports (COORD_STUN_PORT until it does). */
int coord_relay_add(struct coord *co, const char *name, const char *url, const char *stun,
		    char *token_out, size_t token_size, char *err, size_t errlen);
/* By exact name, or exact id, or else a name prefix of exactly one relay: 0, -ENOENT,
 * -ENOTUNIQ with a message in err. */
int coord_relay_resolve(struct coord *co, const char *arg, struct relay **out, char *err,
			size_t errlen);
int coord_relay_remove(struct coord *co, const char *name);   /* exact name; -ENOENT */
struct relay *coord_relay_by_token(struct coord *co, const char *token);
/* POST /v1/relay/pin's body: {"pin": ..., "stun_port": N (optional)}. 0, or -EINVAL /
 * -EIO with a message in err. */
int coord_relay_report(struct coord *co, struct relay *r, const json_t *body, char *err,
		       size_t errlen);
/* The STUN address the relay map gives nodes ("host:port", "[v6]:port"). */
void coord_relay_stun(const struct relay_rec *r, char *out, size_t size);

/* dns.c. Loaded at coord_open; every change is stored, then fanned out to running
 * nodes as {"type":"dns","dns":{...}}. Errors: -EINVAL (syntax), -EEXIST, -ENOENT,
 * -E2BIG (a cap), each with a message in err; -EIO / -ENOMEM. */
int coord_dns_load(struct coord *co);
void coord_dns_free(struct coord *co);
int coord_dns_set_domain(struct coord *co, const char *name, char *err, size_t errlen);
int coord_dns_set_mode(struct coord *co, const char *mode, char *err, size_t errlen);
/* kind: "upstreams", "routes", "blocklists", "allow", "block", "records"; the body's
 * fields: upstream; domain, server; source [, tag]; domain [, tag]; name, type, value.
 * *item (may be NULL) gets the canonical entry as JSON. */
int coord_dns_edit(struct coord *co, const char *kind, int add, const json_t *body,
		   json_t **item, char *err, size_t errlen);
/* Everything, for `coord dns show` (with tags and the blocklists' fetch status). */
json_t *coord_dns_json(struct coord *co);
/* What node n is told: the policy with the rules of its tags and the untagged ones.
 * A new reference, or NULL; the same object for nodes with the same relevant tags. */
json_t *coord_dns_node_json(struct coord *co, const struct node *n);
/* The delta line for n ({"type":"dns","dns":{...}}\n), kept until the next change. */
const char *coord_dns_node_line(struct coord *co, const struct node *n, size_t *len);

/* What blocklists.c needs of the policy: its blocklist sources or allow / block rules
 * (kind), in order; cb's nonzero return stops the walk and is returned. */
struct coord_dns_entry {
	int64_t id;
	const char *name, *tag;   /* tag "" when unscoped */
};
int coord_dns_foreach(struct coord *co, enum coord_dns_kind kind,
		      int (*cb)(const struct coord_dns_entry *e, void *arg), void *arg);
/* The node's tags that some blocklist or rule is scoped to, comma-separated ("" for
 * none): nodes with the same key get the same "dns" and the same compiled list. */
void coord_dns_node_key(const struct coord *co, const struct node *n, char *out, size_t size);
/* 1 when tag is one of the comma-separated tags of list. */
int coord_dns_tag_in(const char *list, const char *tag);
/* Drops the cached views and tells every running node its "dns" again. */
void coord_dns_changed(struct coord *co);

/* blocklists.c / blcompile.c: the sources fetched on a refresh interval, one list
 * compiled per tag combination and served (blocklists.h). Started by `coord serve`
 * only; with co->bl NULL (tests) the rest does nothing and every version is 0. */
struct coord_blocklists;
struct metrics_text;
int coord_blocklists_start(struct coord *co);
void coord_blocklists_stop(struct coord *co);   /* jobs still in the pool finish on the loop */
void coord_blocklists_tick(struct coord *co);   /* due fetches */
void coord_blocklists_changed(struct coord *co);   /* sources or rules were edited */
/* The version of the key's compiled list for the netmap (0: none yet; asks for one). */
int64_t coord_blocklists_version(struct coord *co, const char *key);
/* A source's fetch status into its `coord dns show` object o. */
void coord_blocklists_source_json(struct coord *co, int64_t id, json_t *o);
/* GET /v1/dns/blocklist[?v=VERSION] for an authenticated node. */
void coord_blocklists_serve(struct coord *co, struct http_request *req, struct node *n);
void coord_blocklists_metrics(struct coord *co, struct metrics_text *t);

/* ipalloc.c */
int ipalloc_init(struct coord *co);
int ipalloc_take(struct coord *co, uint32_t *ip);
int ipalloc_mark(struct coord *co, uint32_t ip);
void ipalloc_release(struct coord *co, uint32_t ip);
void ipalloc_scatter(struct coord *co);
void ipalloc_v6(const struct coord *co, uint32_t ipv4, uint8_t out[16]);
void ip4_to_text(uint32_t ip, char *out, size_t size);
void ip6_to_text(const uint8_t ip[16], char *out, size_t size);
/* Hostname → DNS label (lowercase a-z0-9-, 1..63, no leading/trailing '-'); "node" if empty,
 * and "node-N" for all digits: a name must never read as an id. */
void coord_sanitize_label(const char *in, char *out, size_t size);
/* The longest prefix of in that has at most max bytes and ends on a whole, valid UTF-8
 * character (it stops at the first invalid sequence); out has room for max + 1. */
void coord_clip_utf8(const char *in, size_t max, char *out);

/* netmap.c: what nodes see; every fan-out costs O(watchers that see it). */
json_t *netmap_node_json(struct coord *co, const struct node *n, int self);
json_t *netmap_relays_json(struct coord *co);
/* A full netmap without its peers. A node that is not running (pending, expired, rejected)
 * gets its own state and nothing else: no relay map, no DNS, no domain. */
json_t *netmap_full_head(struct coord *co, const struct node *n);
/* netmap_ver.c */
int netmap_versions_load(struct coord *co);      /* coord_open, after the tables */
int64_t netmap_version(const struct coord *co);  /* everything up to it is applied here */
int64_t netmap_stamp(struct coord *co);          /* for a change fanned out now */
/* Notes the version handed out in the state dir (coord_tick): a database found behind
 * it at the next start (a restored backup) gets a new epoch. */
void netmap_versions_note(struct coord *co);
void netmap_stamps_settle(struct coord *co, int64_t head);   /* after a feed batch */
/* n changed at ver (vis: its record, visibility or key, too): stamped and moved to the
 * end of the nodes in stamp order, so a resume walks only the nodes changed after its
 * version; netmap_untouch takes a node that goes away off it. */
void netmap_touch(struct coord *co, struct node *n, int64_t ver, int vis);
void netmap_untouch(struct coord *co, struct node *n);
/* 1 when the stamp order holds (not while a feed batch's stamps wait to be settled). */
int netmap_touch_ordered(const struct coord *co);
/* 0 and *since when the stream request may be answered with a resume: -ENOENT (it did
 * not ask), -EINVAL / -EXDEV (malformed, another epoch), -ESTALE (before the floor),
 * -ERANGE (after our version, even once caught up). */
int netmap_resume_point(struct coord *co, const struct http_request *req, int64_t *since);
/* Splices ,"v":<version> in before line's closing brace: a new line (free it), or NULL. */
char *netmap_line_versioned(struct coord *co, const char *line, size_t len, size_t *out_len);
/* Turn the request into the node's stream and send the full netmap. */
/* n's stream starts: a resume from *since (netmap_resume_point's, taken before n was
 * looked up: a feed catch-up may change the nodes), or a full when since is NULL. */
void netmap_attach(struct coord *co, struct node *n, struct http_request *req, const int64_t *since);
void netmap_send_full(struct coord *co, struct node *n);
void netmap_peer_added(struct coord *co, struct node *n);    /* became visible */
void netmap_peer_changed(struct coord *co, struct node *n);  /* name, keys */
void netmap_peer_removed(struct coord *co, struct node *n);  /* stopped being visible */
void netmap_endpoints_changed(struct coord *co, struct node *n);
void netmap_online_changed(struct coord *co, struct node *n);
void netmap_relays_changed(struct coord *co);
void netmap_dns_changed(struct coord *co);   /* to every running node, O(watchers) */
void netmap_node_gone(struct coord *co, struct node *n, const char *reason); /* ends its stream */
void netmap_keepalive(struct coord *co);
void netmap_close_all(struct coord *co);
/* At shutdown: the streams end without offline marks or lines (the next start's grace). */
void netmap_close_all_quiet(struct coord *co);
void netmap_invalidate(struct node *n);  /* after any change to what peers see */
int netmap_node_online(const struct node *n);
/* The stream plumbing netmap.c and relay_stream.c share. A watcher is never freed while
 * a fan-out iterates (co->broadcasting > 0): kill marks it dead, reap frees the dead. */
struct watcher *netmap_stream_start(struct coord *co, struct http_request *req); /* or answered */
int netmap_stream_send(struct coord *co, struct watcher *w, const char *line, size_t len);
/* To every live watcher of the list head, then reaps. */
void netmap_stream_send_all(struct coord *co, struct watcher *head, const char *line, size_t len);
void netmap_stream_kill(struct coord *co, struct watcher *w);
void netmap_reap(struct coord *co);
void watcher_list_add(struct watcher **head, struct watcher *w);
void watcher_list_remove(struct watcher **head, struct watcher *w);

/* relay_stream.c: GET /v1/relay/stream (the visible node keys: full, then add / remove)
 * and POST /v1/relay/pin; it alone walks co->relay_watchers. */
void relay_stream_on_stream(struct coord *co, struct http_request *req);
void relay_stream_on_pin(struct coord *co, struct http_request *req);
void relay_stream_key_added(struct coord *co, const uint8_t key[KEY_LEN]);   /* node visible */
void relay_stream_key_removed(struct coord *co, const uint8_t key[KEY_LEN]); /* no longer */
int relay_stream_connected(struct coord *co, int64_t relay_id);
void relay_stream_detach(struct coord *co, struct relay *r);   /* relay removed */
void relay_stream_keepalive(struct coord *co);
void relay_stream_close_all(struct coord *co);
void relay_stream_reap(struct coord *co);   /* netmap_reap's part for relays */

/* api.c: HTTP routes. admin is set for the admin socket. */
void api_handle(struct coord *co, struct http_request *req, int admin);
/* The HTTP status for a coord_* result: 0 -> 200, -EINVAL and -ERANGE 400, -EACCES 401,
 * -EPERM 403, -ENOENT 404, -EEXIST and -ENOTUNIQ 409, -ENOSPC 503, -E2BIG 400,
 * anything else 500. */
int api_status(int rc);
/* The bearer token of the request, or NULL. */
const char *api_bearer(const struct http_request *req);
/* The JSON object body ({} when empty), or NULL after answering 400. */
json_t *api_body_json(struct coord *co, struct http_request *req);

/* server.c / cli.c */
int coord_serve_main(int argc, char **argv);
int coord_cli_main(const char *group, int argc, char **argv);
int coord_migrate_main(int argc, char **argv);   /* migrate.c */

#endif
