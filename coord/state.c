/* state.c - the tailnet as coord holds it: nodes and their registration (auth and API
 * keys are in authkeys.c, relays in relays.c). Every change is written through to the
 * store before anyone is told, then fanned out by netmap.c to just the watchers it
 * concerns. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "coord.h"
#include "meshvpn/addr.h"
#include "meshvpn/coord_proto.h"
#include "meshvpn/json.h"
#include "meshvpn/log.h"

#define TOKEN_NODE "mvpn-node-"

int64_t coord_now(void)
{
	return (int64_t)time(NULL);
}

static int node_expired(const struct node *n)
{
	return n->rec.key_expiry && coord_now() >= n->rec.key_expiry;
}

int coord_node_visible(const struct node *n)
{
	return n->rec.state == NODE_APPROVED && !node_expired(n);
}

enum node_status coord_node_state(const struct node *n)
{
	if (n->rec.state == NODE_REJECTED)
		return NODE_STATUS_REJECTED;
	if (n->rec.state == NODE_PENDING)
		return NODE_STATUS_NEEDS_APPROVAL;
	if (node_expired(n))
		return NODE_STATUS_EXPIRED;
	return NODE_STATUS_RUNNING;
}

static void name_hash(const char *name, uint8_t out[HASH_LEN])
{
	keys_hash(name, strlen(name), out);
}

static struct node *node_by_name(struct coord *co, const char *name)
{
	uint8_t h[HASH_LEN];

	name_hash(name, h);
	return keymap_get(&co->by_name, h);
}

const char *coord_node_label(const struct node *n, char buf[STORE_NAME_LEN])
{
	if (n->rec.name[0])
		return n->rec.name;
	coord_sanitize_label(n->rec.hostname, buf, STORE_NAME_LEN);
	return buf;
}

int coord_expiry_at(int64_t from, int64_t secs, int64_t *out)
{
	if (secs < 0 || secs > COORD_MAX_DURATION || from < 0 || from > INT64_MAX - secs)
		return -ERANGE;
	*out = secs ? from + secs : 0;
	return 0;
}

/* A node's key expiry from now on, coord's --key-expiry (checked by coord_open). */
static int64_t key_expiry_from_now(struct coord *co)
{
	int64_t at = 0;

	coord_expiry_at(coord_now(), co->opts.key_expiry, &at);
	return at;
}

/* Maps point into the node's record, so they are updated around every key change. A
 * node without a name yet (pending) is not in by_name: it holds no name. */
static void id_key(int64_t id, uint8_t out[HASH_LEN])
{
	uint64_t x = (uint64_t)id + 0x9e3779b97f4a7c15ull;

	/* keymap hashes by the first bytes: mix them (splitmix64), keep the id after. */
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	memset(out, 0, HASH_LEN);
	memcpy(out, &x, sizeof(x));
	memcpy(out + 8, &id, sizeof(id));
}

struct node *coord_node_by_id(struct coord *co, int64_t id)
{
	uint8_t k[HASH_LEN];

	id_key(id, k);
	return keymap_get(&co->by_id, k);
}

static int index_node(struct coord *co, struct node *n)
{
	id_key(n->rec.id, n->id_key);
	if (keymap_put(&co->by_id, n->id_key, n))
		return -EEXIST;
	memset(n->name_hash, 0, sizeof(n->name_hash));
	if (n->rec.name[0]) {
		name_hash(n->rec.name, n->name_hash);
		if (keymap_put(&co->by_name, n->name_hash, n))
			goto err_id;
	}
	if (keymap_put(&co->by_node_key, n->rec.node_key, n))
		goto err_name;
	if (keymap_put(&co->by_machine_key, n->rec.machine_key, n))
		goto err_node_key;
	if (!key_is_zero(n->rec.token_hash) && keymap_put(&co->by_token, n->rec.token_hash, n))
		goto err_machine;
	n->index_partial = 0;
	return 0;
err_machine:
	keymap_del(&co->by_machine_key, n->rec.machine_key);
err_node_key:
	keymap_del(&co->by_node_key, n->rec.node_key);
err_name:
	if (n->rec.name[0])
		keymap_del(&co->by_name, n->name_hash);
err_id:
	keymap_del(&co->by_id, n->id_key);
	return -EEXIST;
}

/* A record read back from the store while another node in memory still holds one of
 * its keys or its name (rows read as they are now, ahead of the entries that moved the
 * name or key away): each map that is free takes it; the node is marked, and fully
 * re-indexed at its next change (feed.c). */
static void index_node_partly(struct coord *co, struct node *n)
{
	if (!index_node(co, n))
		return;
	n->index_partial = 1;
	log_warn("node clashes in memory with another (re-indexed at its next change)", "id=%lld"
		 " name=%s", (long long)n->rec.id, n->rec.name);
	id_key(n->rec.id, n->id_key);
	keymap_put(&co->by_id, n->id_key, n);
	memset(n->name_hash, 0, sizeof(n->name_hash));
	if (n->rec.name[0]) {
		name_hash(n->rec.name, n->name_hash);
		keymap_put(&co->by_name, n->name_hash, n);
	}
	keymap_put(&co->by_node_key, n->rec.node_key, n);
	keymap_put(&co->by_machine_key, n->rec.machine_key, n);
	if (!key_is_zero(n->rec.token_hash))
		keymap_put(&co->by_token, n->rec.token_hash, n);
}

static void unindex_node(struct coord *co, struct node *n)
{
	/* Only the entries that are this node's (a partly indexed one holds not all). */
	if (keymap_get(&co->by_id, n->id_key) == n)
		keymap_del(&co->by_id, n->id_key);
	if (n->rec.name[0] && keymap_get(&co->by_name, n->name_hash) == n)
		keymap_del(&co->by_name, n->name_hash);
	if (keymap_get(&co->by_node_key, n->rec.node_key) == n)
		keymap_del(&co->by_node_key, n->rec.node_key);
	if (keymap_get(&co->by_machine_key, n->rec.machine_key) == n)
		keymap_del(&co->by_machine_key, n->rec.machine_key);
	if (keymap_get(&co->by_token, n->rec.token_hash) == n)
		keymap_del(&co->by_token, n->rec.token_hash);
}

static void link_node(struct coord *co, struct node *n)
{
	n->prev = co->nodes_tail;
	n->next = NULL;
	if (co->nodes_tail)
		co->nodes_tail->next = n;
	else
		co->nodes_head = n;
	co->nodes_tail = n;
	co->n_nodes++;
}

static void unlink_node(struct coord *co, struct node *n)
{
	netmap_untouch(co, n);
	if (n->prev)
		n->prev->next = n->next;
	else
		co->nodes_head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		co->nodes_tail = n->prev;
	co->n_nodes--;
}

static void node_free(struct node *n)
{
	if (!n)
		return;
	free(n->peer_json);
	sodium_memzero(n, sizeof(*n));
	free(n);
}

/* The live fields as the store has them: endpoints, home relay, and whether another
 * instance holds the node's stream (ours it cannot be: we hold no stream of it yet, or
 * the row says so because we wrote it). */
static void live_from_rec(struct coord *co, struct node *n)
{
	char buf[STORE_ENDPOINTS_LEN], *save = NULL, *tok;

	n->n_endpoints = 0;
	snprintf(buf, sizeof(buf), "%s", n->rec.endpoints);
	for (tok = strtok_r(buf, ",", &save); tok && n->n_endpoints < COORD_MAX_ENDPOINTS;
	     tok = strtok_r(NULL, ",", &save))
		snprintf(n->endpoints[n->n_endpoints++], COORD_ENDPOINT_LEN, "%s", tok);
	snprintf(n->home_relay, sizeof(n->home_relay), "%s", n->rec.home_relay);
	n->remote_online = n->rec.online[0] && strcmp(n->rec.online, co->instance) &&
			   coord_instance_alive(co, n->rec.online);
}

static void live_to_rec(struct node *n)
{
	size_t at = 0;

	n->rec.endpoints[0] = 0;
	for (int i = 0; i < n->n_endpoints && at < sizeof(n->rec.endpoints); i++)
		at += (size_t)snprintf(n->rec.endpoints + at, sizeof(n->rec.endpoints) - at, "%s%s",
				       i ? "," : "", n->endpoints[i]);
	snprintf(n->rec.home_relay, sizeof(n->rec.home_relay), "%s", n->home_relay);
}

int coord_node_live_save(struct coord *co, struct node *n)
{
	int rc;

	live_to_rec(n);
	n->rec.disconnected_at = n->disconnected_at;
	rc = store_node_live(co->st, &n->rec);
	/* Remembered: a stream taken over while the database was away must still be
	 * recorded here, or the other instances count the node offline once the instance
	 * the row names stops beating. */
	n->live_unsaved = rc == -ENOTCONN;
	co->live_unsaved |= n->live_unsaved;
	return rc;
}

void coord_nodes_live_resave(struct coord *co)
{
	struct node_rec r;
	int rc;

	if (!co->live_unsaved)
		return;
	co->live_unsaved = 0;
	for (struct node *n = co->nodes_head; n; n = n->next) {
		if (!n->live_unsaved)
			continue;
		/* A stream that ended here meanwhile: cleared only while the row still names
		 * us, since another instance may hold the node's stream by now. */
		if (!n->watcher) {
			rc = store_node_get(co->st, n->rec.id, &r);
			if (rc == -ENOTCONN) {
				co->live_unsaved = 1;
				continue;
			}
			if (rc || strcmp(r.online, co->instance)) {
				n->live_unsaved = 0;
				continue;
			}
		}
		coord_node_live_save(co, n);
	}
}

struct node *coord_node_adopt(struct coord *co, const struct node_rec *r)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->rec = *r;
	/* An older coord cut hostnames at 63 bytes, maybe inside a character. */
	coord_clip_utf8(r->hostname, sizeof(n->rec.hostname) - 1, n->rec.hostname);
	/* Ephemeral nodes get their grace period anew at a load; one that another instance
	 * saw go carries the time it went. */
	n->disconnected_at = co->feed.started && r->disconnected_at ? r->disconnected_at : coord_now();
	n->expired_notified = node_expired(n);
	live_from_rec(co, n);
	if (co->feed.started) {
		/* From the feed: rows are read as they are now, ahead of their entries. */
		index_node_partly(co, n);
		if (r->ipv4 && ipalloc_mark(co, r->ipv4))
			log_warn("node's address is marked taken already", "id=%lld", (long long)r->id);
		link_node(co, n);
		return n;
	}
	if (index_node(co, n) || (r->ipv4 && ipalloc_mark(co, r->ipv4))) {
		log_error("store holds a conflicting node", "id=%lld name=%s", (long long)r->id, r->name);
		unindex_node(co, n);
		node_free(n);
		return NULL;
	}
	link_node(co, n);
	return n;
}

static int load_node(const struct node_rec *r, void *arg)
{
	return coord_node_adopt(arg, r) ? 0 : -EIO;
}

static int load_authkey(const struct authkey_rec *r, void *arg)
{
	struct coord *co = arg;
	struct authkey *k = calloc(1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	k->rec = *r;
	k->next = co->authkeys;
	co->authkeys = k;
	return 0;
}

static int load_apikey(const struct apikey_rec *r, void *arg)
{
	struct coord *co = arg;
	struct apikey *k = calloc(1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	k->rec = *r;
	k->next = co->apikeys;
	co->apikeys = k;
	return 0;
}

static int load_relay(const struct relay_rec *r, void *arg)
{
	struct coord *co = arg;
	struct relay *rl = calloc(1, sizeof(*rl)), **tail = &co->relays;

	if (!rl)
		return -ENOMEM;
	rl->rec = *r;
	while (*tail)
		tail = &(*tail)->next;
	*tail = rl;   /* keep id order: the relay map lists them as added */
	return 0;
}

static void unique_name(struct coord *co, const char *hostname, const struct node *self,
			char out[STORE_NAME_LEN]);

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* An older coord gave out names like "1", which an admin's `coord nodes approve 1` could
 * not tell from node id 1. They become "node-1" (or "node-1-2", ...) in the store, with a
 * warning: ids are the only all-digit arguments from now on. */
static int rename_id_like(struct coord *co)
{
	for (struct node *n = co->nodes_head; n; n = n->next) {
		struct node_rec r = n->rec;
		int rc;

		if (!all_digits(r.name))
			continue;
		unique_name(co, r.name, n, r.name);
		rc = store_node_update(co->st, &r);
		if (rc)
			return rc;
		log_warn("node name looked like an id: renamed", "id=%lld old=%s name=%s",
			 (long long)r.id, n->rec.name, r.name);
		keymap_del(&co->by_name, n->name_hash);
		n->rec = r;
		name_hash(n->rec.name, n->name_hash);
		if (keymap_put(&co->by_name, n->name_hash, n))
			return -ENOMEM;
	}
	return 0;
}

/* The state dir holds the store, the TLS key and the admin socket: 0700 whatever it was
 * created with or loosened to. (A symlink the admin gave as --state is followed.) */
static int state_dir_private(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700)))
		rc = -errno;
	close(fd);
	if (rc)
		log_error("cannot make the state dir private", "dir=%s err=\"%s\"", dir, strerror(-rc));
	return rc;
}

/* Streams an earlier run of ours held (killed, upgraded): their nodes are counted online
 * for a while, as they reconnect, so that ten thousand nodes coming back are not ten
 * thousand offline and online changes for every peer. Those not back by then go offline
 * (coord_tick). */
static void restart_grace(struct coord *co)
{
	int64_t until = coord_now() + co->opts.reconnect_grace;

	if (co->opts.reconnect_grace <= 0)
		return;
	for (struct node *n = co->nodes_head; n; n = n->next)
		if (n->rec.online[0] && !strcmp(n->rec.online, co->instance))
			n->grace_until = until;
}

/* Counted online until now: it did not come back here (it may have at another instance,
 * whose mark then stands; only ours is cleared). */
static void grace_over(struct coord *co, struct node *n, int64_t now)
{
	n->grace_until = 0;
	if (n->watcher)
		return;
	if (!strcmp(n->rec.online, co->instance)) {
		n->rec.online[0] = 0;
		n->disconnected_at = now;
		n->rec.last_seen = now;
		if (store_node_offline_if(co->st, n->rec.id, NULL, now) == -ENOTCONN)
			n->live_unsaved = co->live_unsaved = 1;
	}
	netmap_invalidate(n);
	if (coord_node_visible(n) && !netmap_node_online(n))
		netmap_online_changed(co, n);
}

int coord_settings_load(struct coord *co)
{
	char buf[128];
	int rc;

	rc = store_meta_get(co->st, "tailnet_ula", buf, sizeof(buf));
	if (rc == -ENOENT) {
		/* RFC 4193: fd + 40-bit random global ID. */
		co->ula[0] = 0xfd;
		randombytes_buf(co->ula + 1, 5);
		hex_encode(co->ula, 6, buf);
		rc = store_meta_init(co->st, "tailnet_ula", buf, buf, sizeof(buf));
	}
	if (!rc)
		rc = hex_decode(buf, co->ula, 6);
	if (rc)
		return rc;
	rc = store_meta_get(co->st, "tailnet_domain", buf, sizeof(buf));
	if (rc == -ENOENT) {
		rc = store_meta_init(co->st, "tailnet_domain", "meshvpn.internal", buf, sizeof(buf));
	}
	if (rc)
		return rc;
	snprintf(co->domain, sizeof(co->domain), "%.63s", buf);
	return 0;
}

int coord_open(struct coord *co, uv_loop_t *loop, const struct coord_opts *opts)
{
	char path[4096];
	int rc;

	memset(co, 0, sizeof(*co));
	co->loop = loop;
	co->opts = *opts;
	keymap_init(&co->by_token);
	keymap_init(&co->by_node_key);
	keymap_init(&co->by_machine_key);
	keymap_init(&co->by_name);
	keymap_init(&co->by_challenge);
	keymap_init(&co->by_id);
	co->challenges = calloc(COORD_MAX_CHALLENGES, sizeof(*co->challenges));
	if (!co->challenges || ipalloc_init(co)) {
		rc = -ENOMEM;
		goto err;
	}
	if (opts->key_expiry < 0 || opts->key_expiry > COORD_MAX_DURATION) {
		log_error("key expiry out of range", "seconds=%lld max=%lld",
			  (long long)opts->key_expiry, (long long)COORD_MAX_DURATION);
		rc = -ERANGE;
		goto err;
	}
	rc = state_dir_private(opts->state_dir);
	if (rc)
		goto err;
	snprintf(path, sizeof(path), "%s/coord.db", opts->state_dir);
	snprintf(co->instance, sizeof(co->instance), "%s", opts->instance ? opts->instance : "local");
	co->remote = opts->store && store_spec_is_remote(opts->store);
	rc = store_open(opts->store ? opts->store : path, &co->st);
	if (rc)
		goto err;
	store_set_instance(co->st, co->instance);
	/* The feed's position before the tables are read: a change committed meanwhile is
	 * applied again by the follower, which is harmless (it reads the row as it is). */
	rc = store_feed_head(co->st, &co->feed.seq);
	if (!rc)
		rc = coord_instances_load(co);
	if (!rc)
		rc = coord_settings_load(co);
	if (!rc)
		rc = store_node_foreach(co->st, load_node, co);
	if (!rc)
		rc = store_authkey_foreach(co->st, load_authkey, co);
	if (!rc)
		rc = store_apikey_foreach(co->st, load_apikey, co);
	if (!rc)
		rc = store_relay_foreach(co->st, load_relay, co);
	if (!rc)
		rc = coord_dns_load(co);
	if (!rc)
		rc = rename_id_like(co);
	if (!rc)
		rc = netmap_versions_load(co);
	if (rc)
		goto err;
	restart_grace(co);
	log_info("tailnet loaded", "nodes=%zu domain=%s", co->n_nodes, co->domain);
	return 0;
err:
	coord_close(co);
	return rc;
}

void coord_close(struct coord *co)
{
	struct node *n, *nn;

	for (n = co->nodes_head; n; n = nn) {
		nn = n->next;
		node_free(n);
	}
	co->nodes_head = co->nodes_tail = NULL;
	while (co->authkeys) {
		struct authkey *k = co->authkeys;
		co->authkeys = k->next;
		free(k);
	}
	while (co->apikeys) {
		struct apikey *k = co->apikeys;
		co->apikeys = k->next;
		free(k);
	}
	while (co->relays) {
		struct relay *r = co->relays;
		co->relays = r->next;
		free(r);
	}
	coord_dns_free(co);
	nmlog_free(&co->nm.log);
	keymap_free(&co->by_token);
	keymap_free(&co->by_node_key);
	keymap_free(&co->by_machine_key);
	keymap_free(&co->by_name);
	keymap_free(&co->by_challenge);
	keymap_free(&co->by_id);
	free(co->challenges);
	co->challenges = NULL;
	free(co->ip_used);
	co->ip_used = NULL;
	store_close(co->st);
	co->st = NULL;
}

/* An assigned name outranks the names pending nodes asked for: nobody can make an admin's
 * command about a running node ambiguous by registering (pending nodes hold no name). */
int coord_node_resolve(struct coord *co, const char *arg, struct node **out, char *err,
		       size_t errlen)
{
	struct coord_pick pick = { 0 };
	char label[STORE_NAME_LEN];
	struct node *n;
	int64_t id;
	void *hit;
	int rc;

	if (coord_arg_id(arg, &id)) {
		for (n = co->nodes_head; n; n = n->next)
			if (n->rec.id == id)
				coord_pick_add(&pick, n, "id %lld", (long long)id);
	} else if ((n = node_by_name(co, arg))) {
		coord_pick_add(&pick, n, "id %lld", (long long)n->rec.id);
	} else {
		for (n = co->nodes_head; n; n = n->next)
			if (!n->rec.name[0] && !strcmp(coord_node_label(n, label), arg))
				coord_pick_add(&pick, n, "id %lld (%s, asked for '%s')",
					       (long long)n->rec.id,
					       node_status_name(coord_node_state(n)), label);
	}
	rc = coord_pick_done(&pick, "node", arg, &hit, err, errlen);
	*out = hit;
	return rc;
}

struct node *coord_node_find(struct coord *co, const char *name_or_id)
{
	struct node *n = NULL;
	char err[8];

	coord_node_resolve(co, name_or_id, &n, err, sizeof(err));
	return n;
}

struct node *coord_node_by_token(struct coord *co, const char *token)
{
	uint8_t h[HASH_LEN];
	struct node *n;

	if (!token || strncmp(token, TOKEN_NODE, strlen(TOKEN_NODE)))
		return NULL;
	keys_hash(token, strlen(token), h);
	n = keymap_get(&co->by_token, h);
	if (!n && coord_feed_catch_up(co))
		n = keymap_get(&co->by_token, h);
	return n;
}

/* --- nodes --- */

static int valid_text(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static void unique_name(struct coord *co, const char *hostname, const struct node *self,
			char out[STORE_NAME_LEN])
{
	char base[STORE_NAME_LEN];
	struct node *other;

	coord_sanitize_label(hostname, base, sizeof(base));
	snprintf(out, STORE_NAME_LEN, "%s", base);
	for (int i = 2; (other = node_by_name(co, out)) && other != self; i++) {
		char suffix[16];
		int sl = snprintf(suffix, sizeof(suffix), "-%d", i);
		/* Keep the label within 63 characters. */
		snprintf(out, STORE_NAME_LEN, "%.*s%s", 63 - sl, base, suffix);
	}
}

/* A node's first approval gives it its name (unique, from its hostname) and addresses. */
static int node_assign(struct coord *co, struct node_rec *r, char *err, size_t errlen)
{
	if (r->name[0])
		return 0;
	if (ipalloc_take(co, &r->ipv4)) {
		snprintf(err, errlen, "no free addresses left in 100.64.0.0/10");
		return -ENOSPC;
	}
	ipalloc_v6(co, r->ipv4, r->ipv6);
	unique_name(co, r->hostname, NULL, r->name);
	return 0;
}

/* Undoes node_assign on r when the store refused the change. */
static void node_unassign(struct coord *co, const struct node_rec *before, struct node_rec *r)
{
	if (!before->name[0] && r->name[0]) {
		ipalloc_release(co, r->ipv4);
		r->ipv4 = 0;
		memset(r->ipv6, 0, sizeof(r->ipv6));
		r->name[0] = 0;
	}
}

static void new_token(struct node_rec *r, char *token, size_t size)
{
	keys_random_token(TOKEN_NODE, token, size);
	keys_hash(token, strlen(token), r->token_hash);
}

/* A pending node's "name" is the label it asked for and its addresses are 0.0.0.0 and ::
 * (vpnd shows both and configures nothing until it runs); approval gives it its own. */
static json_t *coord_register_answer(struct coord *co, struct node *n, const char *token)
{
	char v4[16], v6[48], label[STORE_NAME_LEN];
	const char *name = coord_node_label(n, label);

	ip4_to_text(n->rec.ipv4, v4, sizeof(v4));
	ip6_to_text(n->rec.ipv6, v6, sizeof(v6));
	json_t *a = json_pack("{s:I, s:s, s:s, s:s, s:s, s:[s,s], s:I}",
			      "id", (json_int_t)n->rec.id, "name", name,
			      "state", node_status_name(coord_node_state(n)), "token", token,
			      "domain", co->domain, "ips", v4, v6,
			      "key_expiry", (json_int_t)n->rec.key_expiry);
	char cmd[128];

	if (a && n->rec.state == NODE_PENDING) {
		/* By name while the name leads to it alone, else by id. */
		if (coord_node_find(co, name) == n)
			snprintf(cmd, sizeof(cmd), "coord nodes approve %s", name);
		else
			snprintf(cmd, sizeof(cmd), "coord nodes approve %lld", (long long)n->rec.id);
		json_object_set_new(a, "approve_command", json_string(cmd));
	}
	return a;
}

/* --- registration: parse (form only), verify (who may), apply (store, index, fan out) --- */

int coord_register_parse(const json_t *req, struct coord_reg *g, char *err, size_t errlen)
{
	const char *sighex;

	memset(g, 0, sizeof(*g));
	g->os = "";
	if (json_get_str(req, "challenge", &g->challenge_hex) ||
	    hex_decode(g->challenge_hex, g->challenge, sizeof(g->challenge)) ||
	    json_get_str(req, "node_key", &g->node_b64) || key_from_base64(g->node_b64, g->node_key) ||
	    json_get_str(req, "disco_key", &g->disco_b64) || key_from_base64(g->disco_b64, g->disco_key) ||
	    json_get_str(req, "machine_key", &g->machine_b64) ||
	    key_from_base64(g->machine_b64, g->machine_key) ||
	    json_get_str(req, "hostname", &g->hostname) || !valid_text(g->hostname, 255) ||
	    json_get_str(req, "signature", &sighex) || hex_decode(sighex, g->sig, sizeof(g->sig))) {
		snprintf(err, errlen, "registration needs challenge, node_key, disco_key, machine_key, hostname and signature, well-formed");
		return -EINVAL;
	}
	if ((json_get_str(req, "os", &g->os) == -EINVAL) || !valid_text(g->os, 31) ||
	    (json_get_str(req, "auth_key", &g->auth_key) == -EINVAL) ||
	    (g->auth_key && !valid_text(g->auth_key, 128))) {
		snprintf(err, errlen, "os and auth_key must be short strings");
		return -EINVAL;
	}
	if (key_is_zero(g->node_key) || key_is_zero(g->disco_key)) {
		snprintf(err, errlen, "all-zero keys are not accepted");
		return -EINVAL;
	}
	return 0;
}

/* The auth key and the node a verified registration is about, as this instance knows
 * them now. */
static int reg_lookup(struct coord *co, struct coord_reg *g, char *err, size_t errlen)
{
	const char *problem;
	struct node *other;

	if (g->auth_key) {
		g->ak = coord_authkey_lookup(co, g->auth_key);
		problem = coord_authkey_problem(g->ak);
		if (problem) {
			snprintf(err, errlen, "%s", problem);
			return -EACCES;
		}
	}
	g->node = keymap_get(&co->by_machine_key, g->machine_key);
	other = keymap_get(&co->by_node_key, g->node_key);
	if (other && other != g->node) {
		snprintf(err, errlen, "node key already belongs to another node");
		return -EEXIST;
	}
	if (g->node && g->node->rec.state == NODE_REJECTED) {
		snprintf(err, errlen, "this machine was rejected by an admin");
		return -EPERM;
	}
	return 0;
}

int coord_register_verify(struct coord *co, struct coord_reg *g, char *err, size_t errlen)
{
	char msg[1024];
	int m, rc;

	rc = coord_challenge_take(co, g->challenge);
	if (rc) {
		snprintf(err, errlen, rc == -ETIMEDOUT ? "challenge expired: ask for a new one"
			 : rc == -EBUSY ? "too many registrations in flight; retry shortly"
			 : "unknown or already used challenge: ask for a new one");
		return rc == -EBUSY ? -ENOSPC : -EACCES;
	}
	m = coord_register_message(g->challenge_hex, g->node_b64, g->disco_b64, g->machine_b64,
				   g->hostname, g->os, g->auth_key, msg, sizeof(msg));
	if (m < 0 || keys_verify(g->machine_key, msg, (size_t)m, g->sig)) {
		snprintf(err, errlen, "signature does not verify with the machine key");
		return -EACCES;
	}
	return reg_lookup(co, g, err, errlen);
}

/* A known machine keeps its id, name and addresses; a new or expired node key without
 * an auth key must be vouched for again. */
static int reg_record_existing(struct coord *co, const struct coord_reg *g, int key_changed,
			       struct node_rec *r, char *err, size_t errlen)
{
	*r = g->node->rec;
	memcpy(r->node_key, g->node_key, KEY_LEN);
	memcpy(r->disco_key, g->disco_key, KEY_LEN);
	coord_clip_utf8(g->hostname, sizeof(r->hostname) - 1, r->hostname);
	snprintf(r->os, sizeof(r->os), "%s", g->os);
	if (g->ak) {
		r->state = NODE_APPROVED;
		r->auth_key_id = g->ak->rec.id;
		r->key_expiry = key_expiry_from_now(co);
		return node_assign(co, r, err, errlen);
	}
	if (key_changed || node_expired(g->node)) {
		/* Back to pending, keeping the name and addresses it was approved with. */
		r->state = NODE_PENDING;
		r->key_expiry = 0;
	}
	return 0;
}

/* Without an auth key the node waits for an admin with no name and no address. */
static int reg_record_new(struct coord *co, const struct coord_reg *g, struct node_rec *r,
			  char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	memcpy(r->node_key, g->node_key, KEY_LEN);
	memcpy(r->disco_key, g->disco_key, KEY_LEN);
	memcpy(r->machine_key, g->machine_key, KEY_LEN);
	coord_clip_utf8(g->hostname, sizeof(r->hostname) - 1, r->hostname);
	snprintf(r->os, sizeof(r->os), "%s", g->os);
	r->created = coord_now();
	r->state = g->ak ? NODE_APPROVED : NODE_PENDING;
	if (!g->ak)
		return 0;
	r->auth_key_id = g->ak->rec.id;
	r->ephemeral = g->ak->rec.ephemeral;
	snprintf(r->tags, sizeof(r->tags), "%s", g->ak->rec.tags);
	r->key_expiry = key_expiry_from_now(co);
	return node_assign(co, r, err, errlen);
}

/* The node and its auth key's use count go to the store together or not at all. */
static int reg_store(struct coord *co, struct node_rec *r, int is_new, struct authkey *ak)
{
	int rc = store_begin(co->st);

	if (!rc)
		rc = is_new ? store_node_insert(co->st, r) : store_node_update(co->st, r);
	/* Counted in the database: another instance may be using the same key. */
	if (!rc && ak)
		rc = store_authkey_use(co->st, ak->rec.id, ak->rec.reusable);
	if (!rc)
		rc = store_commit(co->st);
	if (rc) {
		store_rollback(co->st);
		return rc;
	}
	if (ak)
		ak->rec.uses++;
	return 0;
}

static struct node *reg_add_node(struct coord *co, const struct node_rec *r)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n || (n->rec = *r, index_node(co, n))) {
		/* Stored but not indexable: only possible on allocation failure; a restart
		 * loads it. */
		free(n);
		return NULL;
	}
	link_node(co, n);
	co->stats.registrations++;
	log_info("node registered", "id=%lld name=%s state=%s auth_key=%lld", (long long)r->id,
		 r->name, node_status_name(coord_node_state(n)), (long long)r->auth_key_id);
	if (coord_node_visible(n))
		netmap_peer_added(co, n);
	return n;
}

/* n's record was replaced (here, or by another instance): what its peers and its own
 * stream are told. */
static void node_fanout(struct coord *co, struct node *n, int was_visible, int key_changed)
{
	if (coord_node_visible(n) && (!was_visible || key_changed))
		netmap_peer_added(co, n);
	else if (was_visible && !coord_node_visible(n) && !key_changed)
		netmap_peer_removed(co, n);
	else if (coord_node_visible(n))
		netmap_peer_changed(co, n);
	netmap_send_full(co, n);
}

/* Replaces n's record, keeping the maps and the address bitmap right. */
static void node_replace(struct coord *co, struct node *n, const struct node_rec *r)
{
	uint32_t old_ip = n->rec.ipv4;

	unindex_node(co, n);
	n->rec = *r;
	if (old_ip != r->ipv4) {
		if (old_ip)
			ipalloc_release(co, old_ip);
		if (r->ipv4 && ipalloc_mark(co, r->ipv4))
			log_warn("node's address is marked taken already", "id=%lld", (long long)r->id);
	}
	n->expired_notified = node_expired(n);
	index_node_partly(co, n);
	netmap_invalidate(n);
}

static void reg_update_node(struct coord *co, struct node *n, const struct node_rec *r,
			    int was_visible, int key_changed)
{
	if (was_visible && key_changed)
		netmap_peer_removed(co, n);   /* under its old key */
	node_replace(co, n, r);
	log_info("node re-registered", "id=%lld name=%s state=%s key_changed=%d", (long long)r->id,
		 r->name, node_status_name(coord_node_state(n)), key_changed);
	node_fanout(co, n, was_visible, key_changed);
}

void coord_node_apply(struct coord *co, struct node *n, const struct node_rec *r)
{
	int was_visible = coord_node_visible(n);
	int key_changed = memcmp(n->rec.node_key, r->node_key, KEY_LEN) != 0;
	int rejected = r->state == NODE_REJECTED && n->rec.state != NODE_REJECTED;

	if (was_visible && key_changed)
		netmap_peer_removed(co, n);
	node_replace(co, n, r);
	live_from_rec(co, n);
	log_debug("node changed by another instance", "id=%lld name=%s state=%s", (long long)r->id,
		  r->name, node_status_name(coord_node_state(n)));
	if (rejected) {
		if (was_visible && !key_changed)
			netmap_peer_removed(co, n);
		netmap_node_gone(co, n, "rejected");
		return;
	}
	node_fanout(co, n, was_visible, key_changed);
}

void coord_node_apply_live(struct coord *co, struct node *n, const struct node_rec *r)
{
	int was_online = netmap_node_online(n);
	int eps_changed = strcmp(n->rec.endpoints, r->endpoints) || strcmp(n->rec.home_relay, r->home_relay);

	/* The row's word on where it streams: when it names another instance while our
	 * stream is still open, the node moved there and ours is a leftover it will drop
	 * (its end then clears nothing: store_node_offline_if). */
	snprintf(n->rec.online, sizeof(n->rec.online), "%s", r->online);
	snprintf(n->rec.endpoints, sizeof(n->rec.endpoints), "%s", r->endpoints);
	snprintf(n->rec.home_relay, sizeof(n->rec.home_relay), "%s", r->home_relay);
	n->rec.last_seen = r->last_seen;
	n->rec.disconnected_at = r->disconnected_at;
	if (!n->watcher && r->disconnected_at)
		n->disconnected_at = r->disconnected_at;
	live_from_rec(co, n);
	netmap_invalidate(n);
	if (!coord_node_visible(n))
		return;
	if (eps_changed)
		netmap_endpoints_changed(co, n);
	if (was_online != netmap_node_online(n))
		netmap_online_changed(co, n);
}

/* Why the store refused it. -EEXIST: a name or address another instance gave out a
 * moment ago (the caller catches up on the feed and tries once more); -ESTALE: the
 * node was changed elsewhere meanwhile; -EACCES: a one-off auth key used elsewhere. */
static int reg_store_error(int rc, char *err, size_t errlen)
{
	if (rc == -EEXIST)
		snprintf(err, errlen, "a name or address was taken meanwhile; try again");
	else if (rc == -ESTALE)
		snprintf(err, errlen, "this node was changed on another coord instance meanwhile; try again");
	else if (rc == -EACCES)
		snprintf(err, errlen, "auth key was used up or revoked meanwhile");
	else if (rc == -ENOTCONN)
		snprintf(err, errlen, "the database is unreachable; try again");
	else
		snprintf(err, errlen, "could not store the node");
	return rc == -EEXIST || rc == -ESTALE || rc == -EACCES || rc == -ENOTCONN ? rc : -EIO;
}

static int reg_apply(struct coord *co, const struct coord_reg *g, json_t **resp, char *err,
		     size_t errlen)
{
	char token[COORD_TOKEN_MAX];
	struct node_rec r;
	struct node *n = g->node;
	int was_visible = n && coord_node_visible(n);
	int key_changed = n && memcmp(n->rec.node_key, g->node_key, KEY_LEN) != 0;
	int rc;

	struct node_rec before = { 0 };

	if (n)
		before = n->rec;
	rc = n ? reg_record_existing(co, g, key_changed, &r, err, errlen)
	       : reg_record_new(co, g, &r, err, errlen);
	if (rc)
		return rc;
	r.last_seen = coord_now();
	new_token(&r, token, sizeof(token));
	rc = reg_store(co, &r, !n, g->ak);
	if (rc) {
		node_unassign(co, &before, &r);
		sodium_memzero(token, sizeof(token));
		return reg_store_error(rc, err, errlen);
	}
	if (n)
		reg_update_node(co, n, &r, was_visible, key_changed);
	else
		n = reg_add_node(co, &r);
	*resp = n ? coord_register_answer(co, n, token) : NULL;
	sodium_memzero(token, sizeof(token));
	if (!*resp) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int coord_register(struct coord *co, const json_t *req, json_t **resp, char *err, size_t errlen)
{
	struct coord_reg g;
	int rc;

	rc = coord_register_parse(req, &g, err, errlen);
	if (!rc)
		rc = coord_register_verify(co, &g, err, errlen);
	if (rc)
		return rc;
	rc = reg_apply(co, &g, resp, err, errlen);
	/* The store refused what memory allowed: another instance got there first. Learn
	 * what it did, then again (what memory itself refuses is not retried). */
	for (int i = 0; (rc == -EEXIST || rc == -ESTALE) && co->remote && i < 3; i++) {
		if (rc == -EEXIST)
			ipalloc_scatter(co);
		coord_feed_poll(co);
		rc = reg_lookup(co, &g, err, errlen);
		if (rc)
			break;
		rc = reg_apply(co, &g, resp, err, errlen);
	}
	if (rc == -ESTALE)
		rc = -EAGAIN;
	return rc;
}

static int save_node(struct coord *co, struct node_rec *r, struct node *n)
{
	int rc = store_node_update(co->st, r);

	if (rc) {
		log_error("could not store node", "id=%lld err=%d", (long long)r->id, rc);
		return rc;
	}
	n->rec = *r;
	netmap_invalidate(n);
	return 0;
}

int coord_node_approve(struct coord *co, struct node *n)
{
	struct node_rec r = n->rec;
	int was_visible = coord_node_visible(n), rc;

	int named = n->rec.name[0] != 0;
	char err[80];

	if (n->rec.state == NODE_APPROVED && !node_expired(n))
		return 0;
	r.state = NODE_APPROVED;
	r.key_expiry = key_expiry_from_now(co);
	rc = node_assign(co, &r, err, sizeof(err));
	if (!rc)
		rc = save_node(co, &r, n);
	if (rc) {
		node_unassign(co, &n->rec, &r);
		return rc;
	}
	if (!named) {
		/* Its first name: from now on it holds it. */
		name_hash(n->rec.name, n->name_hash);
		if (keymap_put(&co->by_name, n->name_hash, n))
			log_error("could not index the node's name", "id=%lld", (long long)r.id);
	}
	n->expired_notified = 0;
	log_info("node approved", "id=%lld name=%s", (long long)r.id, r.name);
	if (!was_visible)
		netmap_peer_added(co, n);
	netmap_send_full(co, n);
	return 0;
}

int coord_node_reject(struct coord *co, struct node *n)
{
	struct node_rec r = n->rec;
	int was_visible = coord_node_visible(n), rc;

	r.state = NODE_REJECTED;
	rc = save_node(co, &r, n);
	if (rc)
		return rc;
	log_info("node rejected", "id=%lld name=%s", (long long)r.id, r.name);
	if (was_visible)
		netmap_peer_removed(co, n);
	netmap_node_gone(co, n, "rejected");
	return 0;
}

int coord_node_expire(struct coord *co, struct node *n)
{
	struct node_rec r = n->rec;
	int was_visible = coord_node_visible(n), rc;

	r.key_expiry = coord_now();
	rc = save_node(co, &r, n);
	if (rc)
		return rc;
	n->expired_notified = 1;
	log_info("node expired", "id=%lld name=%s", (long long)r.id, r.name);
	if (was_visible)
		netmap_peer_removed(co, n);
	netmap_send_full(co, n);
	return 0;
}

int coord_node_delete(struct coord *co, struct node *n)
{
	char b64[KEY_B64_LEN];
	int rc;

	key_to_base64(n->rec.node_key, b64);
	rc = store_node_delete(co->st, n->rec.id, b64);

	if (rc && rc != -ENOENT)
		return rc;
	log_info("node deleted", "id=%lld name=%s", (long long)n->rec.id, n->rec.name);
	coord_node_forget(co, n);
	return 0;
}

void coord_node_forget(struct coord *co, struct node *n)
{
	if (coord_node_visible(n))
		netmap_peer_removed(co, n);
	netmap_node_gone(co, n, "deleted");
	unindex_node(co, n);
	unlink_node(co, n);
	ipalloc_release(co, n->rec.ipv4);
	node_free(n);
}

int coord_node_rename(struct coord *co, struct node *n, const char *name, char *err, size_t errlen)
{
	char label[STORE_NAME_LEN];
	struct node_rec r = n->rec;
	struct node *other;
	int rc;

	if (!n->rec.name[0]) {
		snprintf(err, errlen, "node %lld gets its name when it is approved; rename it then",
			 (long long)n->rec.id);
		return -EINVAL;
	}
	coord_sanitize_label(name, label, sizeof(label));
	if (strcmp(label, name)) {
		snprintf(err, errlen, all_digits(name) ? "'%s' would read as a node id (try '%s')"
			 : "'%s' is not a DNS label (lowercase letters, digits, '-'; try '%s')",
			 name, label);
		return -EINVAL;
	}
	other = node_by_name(co, name);
	if (other && other != n) {
		snprintf(err, errlen, "another node is already called '%s'", name);
		return -EEXIST;
	}
	snprintf(r.name, sizeof(r.name), "%s", name);
	rc = store_node_update(co->st, &r);
	if (rc) {
		snprintf(err, errlen, "could not store the node");
		return rc;
	}
	keymap_del(&co->by_name, n->name_hash);
	n->rec = r;
	name_hash(n->rec.name, n->name_hash);
	keymap_put(&co->by_name, n->name_hash, n);
	netmap_invalidate(n);
	log_info("node renamed", "id=%lld name=%s", (long long)r.id, r.name);
	if (coord_node_visible(n))
		netmap_peer_changed(co, n);
	netmap_send_full(co, n);
	return 0;
}

static int valid_endpoint(const char *s)
{
	struct addr_port a;
	size_t len = strlen(s);

	return len < COORD_ENDPOINT_LEN && !addr_parse(s, len, 0, &a);
}

int coord_node_set_endpoints(struct coord *co, struct node *n, const json_t *body, char *err, size_t errlen)
{
	json_t *eps = json_object_get(body, "endpoints"), *v;
	const char *relay = "";
	struct relay *r;
	size_t i;
	int rc;

	if (!coord_node_visible(n)) {
		/* What it would post is published once it runs; until then it has no say. */
		snprintf(err, errlen, "this node is %s: it may post endpoints once it runs",
			 node_status_name(coord_node_state(n)));
		return -EPERM;
	}
	if (!json_is_array(eps) || json_array_size(eps) > COORD_MAX_ENDPOINTS) {
		snprintf(err, errlen, "endpoints must be an array of at most %d \"ip:port\" strings",
			 COORD_MAX_ENDPOINTS);
		return -EINVAL;
	}
	json_array_foreach(eps, i, v) {
		if (!json_is_string(v) || !valid_endpoint(json_string_value(v))) {
			snprintf(err, errlen, "endpoint %zu is not \"ip:port\"", i);
			return -EINVAL;
		}
	}
	if (json_get_str(body, "home_relay", &relay) == -EINVAL) {
		snprintf(err, errlen, "home_relay must be a relay name");
		return -EINVAL;
	}
	for (r = co->relays; *relay && r && strcmp(r->rec.name, relay); r = r->next)
		;
	if (*relay && !r) {
		snprintf(err, errlen, "home_relay must name a relay of the relay map (or be empty)");
		return -EINVAL;
	}
	json_array_foreach(eps, i, v)
		snprintf(n->endpoints[i], COORD_ENDPOINT_LEN, "%s", json_string_value(v));
	n->n_endpoints = (int)json_array_size(eps);
	snprintf(n->home_relay, sizeof(n->home_relay), "%s", relay);
	n->rec.last_seen = coord_now();
	netmap_invalidate(n);
	/* Through the store, for the other instances' nodes; refused while it is away
	 * (the node posts again), but this instance's own nodes hear of it regardless. */
	rc = coord_node_live_save(co, n);
	if (rc && co->remote) {
		snprintf(err, errlen, "the database is unreachable; endpoints not shared");
		if (coord_node_visible(n))
			netmap_endpoints_changed(co, n);
		return rc == -ENOTCONN ? rc : -EIO;
	}
	if (coord_node_visible(n))
		netmap_endpoints_changed(co, n);
	return 0;
}

void coord_tick(struct coord *co)
{
	int64_t now = coord_now();
	struct node *n, *nn;

	for (n = co->nodes_head; n; n = nn) {
		nn = n->next;
		if (n->grace_until && now >= n->grace_until)
			grace_over(co, n, now);
		if (n->rec.state == NODE_APPROVED && !n->expired_notified && node_expired(n)) {
			n->expired_notified = 1;
			netmap_invalidate(n);
			log_info("node key expired", "id=%lld name=%s", (long long)n->rec.id, n->rec.name);
			netmap_peer_removed(co, n);
			netmap_send_full(co, n);
		}
		if (n->rec.ephemeral && coord_jobs_mine(co) && !netmap_node_online(n) && n->disconnected_at &&
		    now - n->disconnected_at >= co->opts.ephemeral_timeout) {
			log_info("ephemeral node removed", "id=%lld name=%s", (long long)n->rec.id,
				 n->rec.name);
			coord_node_delete(co, n);
		}
	}
	coord_challenges_expire(co, now);
	netmap_versions_note(co);
	coord_blocklists_tick(co);
	coord_feed_tick(co);
}
