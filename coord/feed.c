/* feed.c - several coord instances on one PostgreSQL database. Each keeps the whole
 * tailnet in memory, writes through the store (which records every change in the feed,
 * numbered in commit order), and follows the feed: every 100 ms it reads the changes
 * after the last one it applied, re-reads each changed row and fans it out to its own
 * watchers as if the change had been made here. Its own changes it applied when it made
 * them. Instances beat in the instances table; the once-only jobs (ephemeral removal,
 * feed pruning, clearing the online marks of a dead instance, fetching blocklists) go to
 * the holder of a lease. With SQLite there is one instance and none of this runs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "coord.h"
#include "meshvpn/file.h"
#include "meshvpn/log.h"
#include "meshvpn/metrics.h"
#include "meshvpn/tls.h"

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int64_t feed_keep(const struct coord *co)
{
	return co->opts.feed_keep > 0 ? co->opts.feed_keep : COORD_FEED_KEEP;
}

/* ---- the instances seen ---- */

static int instance_seen(const struct store_instance *in, void *arg)
{
	struct coord *co = arg;
	struct coord_feed *f = &co->feed;

	if (f->n_inst < COORD_MAX_INSTANCES) {
		snprintf(f->inst[f->n_inst].name, sizeof(f->inst[0].name), "%s", in->name);
		f->inst[f->n_inst].seen = in->seen;
		f->n_inst++;
	}
	return 0;
}

int coord_instances_load(struct coord *co)
{
	co->feed.n_inst = 0;
	return store_instance_foreach(co->st, coord_now() - COORD_INSTANCE_DEAD, instance_seen, co);
}

int coord_instance_alive(const struct coord *co, const char *name)
{
	int64_t since = coord_now() - COORD_INSTANCE_DEAD;

	if (!co->remote)
		return 0;   /* SQLite: one instance, which is us */
	for (size_t i = 0; i < co->feed.n_inst; i++)
		if (!strcmp(co->feed.inst[i].name, name))
			return co->feed.inst[i].seen >= since;
	return 0;
}

int coord_jobs_mine(struct coord *co)
{
	return !co->remote || co->feed.jobs;
}

/* After the instances table was read: a node whose row names another instance is
 * online while that instance beats. An instance that stopped beating (killed, cut off)
 * takes its nodes offline for everyone until they reconnect elsewhere; one that beats
 * again brings back those still marked with it. The holder of the jobs clears the marks
 * of a dead instance in the store (only where the row still names it). */
static void instances_changed(struct coord *co, int judge)
{
	int64_t now = coord_now();

	for (struct node *n = co->nodes_head; n; n = n->next) {
		int was, is;

		if (!n->rec.online[0] || !strcmp(n->rec.online, co->instance))
			continue;
		was = netmap_node_online(n);
		is = coord_instance_alive(co, n->rec.online);
		if (!is && !judge)
			continue;   /* no verdict on the others while our own beats were failing */
		if (!is && n->remote_online)
			log_info("node offline: its instance stopped beating", "id=%lld instance=%s",
				 (long long)n->rec.id, n->rec.online);
		n->remote_online = is;
		if (!is && coord_jobs_mine(co))
			store_node_offline_if(co->st, n->rec.id, n->rec.online, now);
		if (!is) {
			n->rec.online[0] = 0;
			n->disconnected_at = now;
		}
		netmap_invalidate(n);
		if (coord_node_visible(n) && was != netmap_node_online(n))
			netmap_online_changed(co, n);
	}
}

/* The instances we count alive: one that drops out is said dead once (in the log), when
 * we may judge; until then they are kept, and new ones added. */
static void alive_update(struct coord *co, int judge)
{
	struct coord_feed *f = &co->feed;
	size_t keep = 0;

	for (size_t i = 0; i < f->n_alive; i++) {
		if (!judge || coord_instance_alive(co, f->alive[i])) {
			memmove(f->alive[keep++], f->alive[i], sizeof(f->alive[0]));
			continue;
		}
		log_warn("coord instance stopped beating: its nodes are offline until they reconnect",
			 "instance=%s", f->alive[i]);
	}
	f->n_alive = keep;
	for (size_t i = 0; i < f->n_inst; i++) {
		size_t j;

		if (!strcmp(f->inst[i].name, co->instance) || !coord_instance_alive(co, f->inst[i].name))
			continue;
		for (j = 0; j < f->n_alive && strcmp(f->alive[j], f->inst[i].name); j++)
			;
		if (j == f->n_alive && f->n_alive < COORD_MAX_INSTANCES)
			snprintf(f->alive[f->n_alive++], sizeof(f->alive[0]), "%s", f->inst[i].name);
	}
}

static void beat(struct coord *co)
{
	struct coord_feed *f = &co->feed;
	struct store_instance me = { 0 };
	int64_t now = coord_now();
	int jobs, judge;

	jobs = store_lease_claim(co->st, "jobs", now, COORD_LEASE_TTL);
	if (jobs >= 0 && jobs != f->jobs)
		log_info(jobs ? "this instance runs the once-only jobs" : "another instance runs the once-only jobs",
			 "instance=%s", co->instance);
	if (jobs >= 0)
		f->jobs = jobs;
	snprintf(me.url, sizeof(me.url), "%s", co->opts.url ? co->opts.url : "");
	me.started = f->started;
	me.seen = now;
	me.feed_seq = f->seq;
	snprintf(me.jobs, sizeof(me.jobs), "%s", f->jobs ? "expiry,ephemeral,feed-prune,blocklists" : "");
	if (store_instance_beat(co->st, &me) || coord_instances_load(co)) {
		f->beating_since = 0;
		return;
	}
	f->last_beat = now;
	if (!f->beating_since)
		f->beating_since = now;
	/* Only an instance that has itself beaten for a dead period may call another dead:
	 * after our own outage everyone's last beat looks old. */
	judge = now - f->beating_since >= COORD_INSTANCE_DEAD;
	alive_update(co, judge);
	instances_changed(co, judge);
	if (f->jobs && f->head > feed_keep(co))
		store_feed_prune(co->st, f->head - feed_keep(co));
}

/* ---- applying what another instance changed ---- */

/* Each apply re-reads the row as it is now (it may already hold later changes, which
 * their own entries then find done). 0, or -errno when the store could not be read: the
 * change is then tried again at the next poll. */
static int apply_node(struct coord *co, int64_t id, int live_only)
{
	struct node *n = coord_node_by_id(co, id);
	struct node_rec r;
	int rc = store_node_get(co->st, id, &r);

	if (rc == -ENOENT) {
		if (n) {
			log_info("node deleted on another instance", "id=%lld name=%s", (long long)id,
				 n->rec.name);
			coord_node_forget(co, n);
		}
		return 0;
	}
	if (rc)
		return rc;
	if (!n) {
		n = coord_node_adopt(co, &r);
		if (n && coord_node_visible(n))
			netmap_peer_added(co, n);
		return n ? 0 : -ENOMEM;
	}
	if ((live_only || r.rev == n->rec.rev) && !n->index_partial)
		coord_node_apply_live(co, n, &r);
	else
		coord_node_apply(co, n, &r);
	return 0;
}

static int apply_authkey(struct coord *co, int64_t id)
{
	struct authkey_rec r;
	struct authkey *k;
	int rc = store_authkey_get(co->st, id, &r);

	if (rc)
		return rc == -ENOENT ? 0 : rc;
	for (k = co->authkeys; k && k->rec.id != id; k = k->next)
		;
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k)
			return -ENOMEM;
		k->next = co->authkeys;
		co->authkeys = k;
	}
	k->rec = r;
	return 0;
}

static int apply_apikey(struct coord *co, int64_t id)
{
	struct apikey_rec r;
	struct apikey *k;
	int rc = store_apikey_get(co->st, id, &r);

	if (rc)
		return rc == -ENOENT ? 0 : rc;
	for (k = co->apikeys; k && k->rec.id != id; k = k->next)
		;
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k)
			return -ENOMEM;
		k->next = co->apikeys;
		co->apikeys = k;
	}
	k->rec = r;
	return 0;
}

static int apply_relay(struct coord *co, int64_t id)
{
	struct relay_rec r;
	struct relay **p, *rl;
	int rc = store_relay_get(co->st, id, &r);

	if (rc && rc != -ENOENT)
		return rc;
	for (p = &co->relays; *p && (*p)->rec.id != id; p = &(*p)->next)
		;
	rl = *p;
	if (rc == -ENOENT && rl) {
		*p = rl->next;
		relay_stream_detach(co, rl);
		free(rl);
	} else if (!rc && rl) {
		rl->rec = r;
	} else if (!rc) {
		rl = calloc(1, sizeof(*rl));
		if (!rl)
			return -ENOMEM;
		rl->rec = r;
		*p = rl;   /* at the end: the relay map keeps the order they were added in */
	}
	return 0;
}

/* The DNS policy and settings are small: read again whole, fanned out once a batch. A
 * policy that cannot be read is tried again at the next poll, and nothing is sent. */
static void reload_dns(struct coord *co)
{
	char buf[128], old[sizeof(co->domain)];

	snprintf(old, sizeof(old), "%s", co->domain);
	if (!store_meta_get(co->st, "tailnet_domain", buf, sizeof(buf)))
		snprintf(co->domain, sizeof(co->domain), "%.63s", buf);
	coord_dns_free(co);
	if (coord_dns_load(co)) {
		log_error("could not reload the DNS policy from the store: trying again",
			  "instance=%s", co->instance);
		co->feed.dns_retry = 1;
		return;
	}
	co->feed.dns_retry = 0;
	if (strcmp(old, co->domain))
		for (struct node *n = co->nodes_head; n; n = n->next)
			netmap_invalidate(n);   /* peer entries name their fqdn */
	coord_dns_changed(co);
	if (co->bl)
		coord_blocklists_changed(co);
}

/* Everything again from the tables: when this instance is further behind than the
 * feed reaches back (pruned while it was cut off). Nodes are applied one by one (the
 * same fan-out), the lists of keys and relays replaced. */
static int reload_node(const struct node_rec *r, void *arg)
{
	struct coord *co = arg;
	struct node *n = coord_node_by_id(co, r->id);

	if (n)
		n->reload_mark = co->feed.reloads;
	if (!n) {
		n = coord_node_adopt(co, r);
		if (!n)
			return 0;
		n->reload_mark = co->feed.reloads;
		if (coord_node_visible(n))
			netmap_peer_added(co, n);
	} else if (r->rev != n->rec.rev || n->index_partial) {
		coord_node_apply(co, n, r);
	} else {
		coord_node_apply_live(co, n, r);
	}
	return 0;
}

static int reload_key_ids(const struct authkey_rec *r, void *arg)
{
	return apply_authkey(arg, r->id);
}

static int reload_apikey_ids(const struct apikey_rec *r, void *arg)
{
	return apply_apikey(arg, r->id);
}

static int reload_relay_ids(const struct relay_rec *r, void *arg)
{
	return apply_relay(arg, r->id);
}

static int reload_all(struct coord *co, int64_t head)
{
	struct node *n, *nn;
	int rc;

	co->feed.reloads++;
	log_warn("behind the kept change feed: reloading the whole tailnet", "instance=%s seq=%lld"
		 " head=%lld", co->instance, (long long)co->feed.seq, (long long)head);
	rc = store_node_foreach(co->st, reload_node, co);
	if (!rc)
		rc = store_authkey_foreach(co->st, reload_key_ids, co);
	if (!rc)
		rc = store_apikey_foreach(co->st, reload_apikey_ids, co);
	if (!rc)
		rc = store_relay_foreach(co->st, reload_relay_ids, co);
	if (rc)
		return rc;
	for (n = co->nodes_head; n; n = nn) {
		nn = n->next;
		if (n->reload_mark != co->feed.reloads)
			coord_node_forget(co, n);   /* deleted meanwhile */
	}
	/* Relays and keys deleted meanwhile: relays by a second pass over ours. */
	for (struct relay *r = co->relays, *rn; r; r = rn) {
		rn = r->next;
		apply_relay(co, r->rec.id);
	}
	netmap_relays_changed(co);
	reload_dns(co);
	co->feed.seq = head;
	return 0;
}

struct batch {
	struct store_change *c;
	int n, cap;
};

static int collect(const struct store_change *c, void *arg)
{
	struct batch *b = arg;

	if (b->n == b->cap)
		return -ENOSPC;
	b->c[b->n++] = *c;
	return 0;
}

struct dirty {
	int relays, dns;
};

/* A change written by an instance proves it alive then (its beat may not have been
 * read yet: it may have started after our last look at the instances table). */
static void instance_touch(struct coord *co, const char *name, int64_t at)
{
	struct coord_feed *f = &co->feed;
	size_t i;

	for (i = 0; i < f->n_inst && strcmp(f->inst[i].name, name); i++)
		;
	if (i == f->n_inst) {
		if (f->n_inst == COORD_MAX_INSTANCES)
			return;
		snprintf(f->inst[i].name, sizeof(f->inst[i].name), "%s", name);
		f->inst[i].seen = 0;
		f->n_inst++;
	}
	if (f->inst[i].seen < at)
		f->inst[i].seen = at;
}

static int is_node_kind(int kind)
{
	return kind == STORE_CH_NODE || kind == STORE_CH_NODE_LIVE;
}

/* A node changed several times in a batch is read once, at its last entry (the row is
 * read as it is now anyway), as a full change if any of them was one. O(n^2) on at
 * most COORD_FEED_BATCH entries. */
static int skipped_as_own(const struct coord *co, const struct store_change *c)
{
	return !strcmp(c->instance, co->instance) && !co->feed.apply_own;
}

static void batch_dedupe(struct coord *co, struct batch *b, int end)
{
	for (int i = 0; i < end; i++) {
		if (!is_node_kind(b->c[i].kind) || skipped_as_own(co, &b->c[i]))
			continue;
		for (int j = i + 1; j < end; j++) {
			if (!is_node_kind(b->c[j].kind) || b->c[j].ref != b->c[i].ref ||
			    skipped_as_own(co, &b->c[j]))
				continue;
			if (b->c[i].kind == STORE_CH_NODE)
				b->c[j].kind = STORE_CH_NODE;
			b->c[i].kind = 0;   /* read at j */
			break;
		}
	}
}

static int apply(struct coord *co, const struct store_change *c, struct dirty *d)
{
	if (skipped_as_own(co, c)) {
		co->feed.own_skipped++;   /* applied when it was made */
		return 0;
	}
	instance_touch(co, c->instance, c->at);
	co->feed.applied++;
	switch (c->kind) {
	case 0: return 0;   /* deduplicated */
	case STORE_CH_NODE: return apply_node(co, c->ref, 0);
	case STORE_CH_NODE_LIVE: return apply_node(co, c->ref, 1);
	case STORE_CH_AUTHKEY: return apply_authkey(co, c->ref);
	case STORE_CH_APIKEY: return apply_apikey(co, c->ref);
	case STORE_CH_RELAY: d->relays = 1; return apply_relay(co, c->ref);
	case STORE_CH_META: d->dns = 1; return 0;
	default:
		if (c->kind >= STORE_CH_DNS && c->kind < STORE_CH_DNS + STORE_DNS_TABLES)
			d->dns = 1;
		return 0;
	}
}

/* One batch: the number of changes read, or -errno. A batch that ends inside a
 * transaction's changes stops before that transaction (it is read whole next time); a
 * change that cannot be applied stops the batch there (it is tried again). */
static int poll_once(struct coord *co)
{
	static struct store_change buf[COORD_FEED_BATCH];
	struct batch b = { buf, 0, COORD_FEED_BATCH };
	struct coord_feed *f = &co->feed;
	struct dirty d = { .relays = 0, .dns = f->dns_retry };
	uint64_t t0 = mono_us();
	int rc = store_feed_read(co->st, f->seq, COORD_FEED_BATCH, collect, &b), end, i;

	f->db_calls++;
	f->db_us += mono_us() - t0;
	if (rc)
		return rc;
	/* The feed no longer reaches back to where we are: pruned while we were away. (A
	 * number can also be missing without pruning, a transaction that recorded nothing:
	 * then our own last number is still there.) */
	if (b.n && b.c[0].seq > f->seq + 1) {
		int64_t head, oldest;

		rc = store_feed_oldest(co->st, &oldest);
		if (!rc && oldest > f->seq) {
			rc = store_feed_head(co->st, &head);
			return rc ? rc : (rc = reload_all(co, head)) ? rc : 0;
		}
		if (rc)
			return rc;
	}
	end = b.n;
	if (b.n == COORD_FEED_BATCH && b.c[0].seq != b.c[b.n - 1].seq)
		while (end > 0 && b.c[end - 1].seq == b.c[b.n - 1].seq)
			end--;
	batch_dedupe(co, &b, end);
	for (i = 0, rc = 0; i < end && !rc; i++) {
		rc = apply(co, &b.c[i], &d);
		if (rc)
			break;
		/* The number moves past a transaction only with its last change applied. */
		if (i + 1 == end || b.c[i + 1].seq != b.c[i].seq)
			f->seq = b.c[i].seq;
		f->last_lag_s = (double)(coord_now() - b.c[i].at);
	}
	if (d.relays)
		netmap_relays_changed(co);
	if (d.dns)
		reload_dns(co);
	return rc ? rc : b.n;
}

void coord_feed_poll(struct coord *co)
{
	struct coord_feed *f = &co->feed;
	struct store_stats ss;
	int rc;

	if (!co->remote)
		return;
	/* A COMMIT cut off unanswered may have gone through: our own entries are read
	 * back too (idempotent) until the feed is caught up. */
	store_get_stats(co->st, &ss);
	if (ss.unsure_commits != f->unsure_seen) {
		f->unsure_seen = ss.unsure_commits;
		f->apply_own = 1;
	}
	for (int i = 0; i < 50; i++) {
		co->nm.applying = 1;
		rc = poll_once(co);
		co->nm.applying = 0;
		if (rc < 0) {
			if (f->db_ok)
				log_warn("cannot follow the change feed: serving from memory, refusing changes",
					 "instance=%s error=\"%s\"", co->instance, strerror(-rc));
			f->db_ok = 0;
			f->poll_errors++;
			return;
		}
		if (!f->db_ok) {
			log_info("following the change feed again", "instance=%s seq=%lld", co->instance,
				 (long long)f->seq);
			f->db_ok = 1;
		}
		if (rc < COORD_FEED_BATCH)
			break;
	}
	coord_nodes_live_resave(co);
	/* The head read after the rows: at or past every change they held. */
	if (store_feed_head(co->st, &f->head) == 0)
		netmap_stamps_settle(co, f->head);
	if (f->head == f->seq) {
		f->last_lag_s = 0;
		f->apply_own = 0;
	}
}

int coord_feed_catch_up(struct coord *co)
{
	uint64_t now = mono_us();

	/* At most every 50 ms: unknown credentials from anyone must not become a query
	 * each. */
	if (!co->remote || now - co->feed.forced_us < 50000)
		return 0;
	co->feed.forced_us = now;
	coord_feed_poll(co);
	return 1;
}

static void on_timer(uv_timer_t *t)
{
	struct coord *co = t->data;

	coord_feed_poll(co);
	if (coord_now() - co->feed.last_beat >= COORD_INSTANCE_BEAT)
		beat(co);
	netmap_reap(co);
}

/* With SQLite nobody follows the feed yet (issue 13 will resume streams from it): it is
 * kept to the last COORD_FEED_KEEP changes, pruned once a minute from coord_tick. */
void coord_feed_tick(struct coord *co)
{
	int64_t now = coord_now(), head;

	if (co->remote || now - co->feed.last_beat < 60)
		return;
	co->feed.last_beat = now;
	if (!store_feed_head(co->st, &head) && head > feed_keep(co))
		store_feed_prune(co->st, head - feed_keep(co));
}

/* The beat of an instance with our name, 0 when none. */
static int64_t beat_of_name(struct coord *co)
{
	if (coord_instances_load(co))
		return 0;
	for (size_t i = 0; i < co->feed.n_inst; i++)
		if (!strcmp(co->feed.inst[i].name, co->instance))
			return co->feed.inst[i].seen;
	return 0;
}

/* Two instances under one name would each skip the other's changes as their own. One
 * that beat a moment ago may be us before a crash: wait two beats and look again. */
static int name_free(struct coord *co)
{
	int64_t seen = beat_of_name(co);
	struct timespec ts = { 2 * COORD_INSTANCE_BEAT + 1, 0 };

	if (!seen || seen < coord_now() - 2 * COORD_INSTANCE_BEAT)
		return 1;
	log_info("an instance of this name beat a moment ago: waiting to see whether it still runs",
		 "instance=%s", co->instance);
	nanosleep(&ts, NULL);
	return beat_of_name(co) == seen;
}

int coord_feed_start(struct coord *co)
{
	if (!co->remote)
		return 0;
	if (!name_free(co)) {
		log_error("another coord instance runs under this name: give each its own --instance",
			  "instance=%s", co->instance);
		return -EADDRINUSE;
	}
	co->feed.started = coord_now();
	co->feed.db_ok = 1;
	/* Marks an earlier run of ours left stay while their nodes reconnect (coord_open's
	 * grace; coord_tick clears those that did not). */
	beat(co);
	uv_timer_init(co->loop, &co->feed.timer);
	co->feed.timer.data = co;
	co->feed.timer_on = 1;
	return uv_timer_start(&co->feed.timer, on_timer, COORD_FEED_POLL_MS, COORD_FEED_POLL_MS) ? -EIO : 0;
}

void coord_feed_stop(struct coord *co)
{
	if (!co->feed.timer_on)
		return;
	uv_timer_stop(&co->feed.timer);
	uv_close((uv_handle_t *)&co->feed.timer, NULL);
	co->feed.timer_on = 0;
	if (co->feed.jobs)
		store_lease_release(co->st, "jobs");
}

static int instance_json(const struct store_instance *in, void *arg)
{
	json_array_append_new(arg, json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "name", in->name, "url",
					     in->url, "started", (json_int_t)in->started, "seen",
					     (json_int_t)in->seen, "feed_seq", (json_int_t)in->feed_seq,
					     "jobs", in->jobs));
	return 0;
}

json_t *coord_status_json(struct coord *co)
{
	json_t *inst = json_array();
	int64_t head = co->feed.seq;

	if (co->remote) {
		store_feed_head(co->st, &head);
		store_instance_foreach(co->st, coord_now() - 60, instance_json, inst);
	}
	return json_pack("{s:s, s:s, s:b, s:b, s:I, s:I, s:f, s:o, s:I}", "instance", co->instance,
			 "store", store_engine_name(co->st), "database_ok",
			 co->remote ? co->feed.db_ok : 1, "jobs", coord_jobs_mine(co), "feed_seq",
			 (json_int_t)co->feed.seq, "feed_head", (json_int_t)head, "feed_lag_seconds",
			 co->feed.last_lag_s, "instances", inst, "nodes", (json_int_t)co->n_nodes);
}

/* ---- one TLS identity for every instance ---- */

static int read_small(const char *path, char *out, size_t size, size_t *len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(out, 1, size - 1, f);
	fclose(f);
	if (n == size - 1)
		return -EFBIG;
	out[n] = 0;
	*len = n;
	return 0;
}

static int write_small(const char *path, const char *p, size_t len)
{
	struct iovec iov = { (void *)p, len };

	return file_replace(path, &iov, 1, 0600, NULL);
}

/* The self-signed certificate nodes pin must be the same on every instance: the first
 * instance's (created here when the state dir has none) goes into the store, and every
 * instance writes the stored one into its state dir before it loads it. Certificate
 * and key are one value, so two first starts cannot pair one's key with the other's. */
int coord_tls_identity(struct coord *co, const char *dir)
{
	static char local[32768], stored[32768];
	char cpath[4096], kpath[4096], *split;
	size_t clen = 0, klen = 0;
	int rc;

	if (!co->remote)
		return 0;
	snprintf(cpath, sizeof(cpath), "%s/tls.crt", dir);
	snprintf(kpath, sizeof(kpath), "%s/tls.key", dir);
	rc = store_meta_get(co->st, "tls_identity", stored, sizeof(stored));
	if (rc == -ENOENT) {
		if (access(cpath, R_OK) || access(kpath, R_OK)) {
			rc = tls_selfsigned_create(cpath, kpath, "meshvpn-coord");
			if (rc)
				return rc;
		}
		rc = read_small(cpath, local, sizeof(local) / 2, &clen);
		if (!rc)
			rc = read_small(kpath, local + clen, sizeof(local) - clen, &klen);
		if (rc)
			return rc;
		rc = store_meta_init(co->st, "tls_identity", local, stored, sizeof(stored));
	}
	if (rc)
		return rc;
	/* The key is the block whose header says PRIVATE KEY (EC, RSA or PKCS#8). */
	split = strstr(stored, "PRIVATE KEY-----");
	while (split && split > stored && strncmp(split, "-----BEGIN", 10))
		split--;
	if (!split || split == stored || strncmp(split, "-----BEGIN", 10))
		return -EPROTO;
	rc = write_small(cpath, stored, (size_t)(split - stored));
	if (!rc)
		rc = write_small(kpath, split, strlen(split));
	if (!rc)
		log_info("TLS identity shared through the store", "instance=%s", co->instance);
	return rc;
}

void coord_feed_metrics(struct coord *co, struct metrics_text *t)
{
	struct store_stats ss;

	store_get_stats(co->st, &ss);
	metrics_printf(t,
		"# HELP coord_store_statements_total Statements run on the store.\n"
		"# TYPE coord_store_statements_total counter\ncoord_store_statements_total %llu\n"
		"# HELP coord_store_seconds_total Time spent in the store's statements.\n"
		"# TYPE coord_store_seconds_total counter\ncoord_store_seconds_total %.6f\n"
		"# TYPE coord_store_errors_total counter\ncoord_store_errors_total %llu\n"
		"# HELP coord_store_retries_total Transactions replayed after a serialisation failure.\n"
		"# TYPE coord_store_retries_total counter\ncoord_store_retries_total %llu\n",
		(unsigned long long)ss.calls, (double)ss.us / 1e6, (unsigned long long)ss.errors,
		(unsigned long long)ss.retries);
	if (!co->remote)
		return;
	metrics_printf(t,
		"# HELP coord_store_up 1 while the database answers.\n"
		"# TYPE coord_store_up gauge\ncoord_store_up %d\n"
		"# HELP coord_feed_seq The last change of the feed this instance applied.\n"
		"# TYPE coord_feed_seq gauge\ncoord_feed_seq %lld\n"
		"# HELP coord_feed_lag_changes Committed changes this instance has not applied yet.\n"
		"# TYPE coord_feed_lag_changes gauge\ncoord_feed_lag_changes %lld\n"
		"# HELP coord_feed_lag_seconds Age of the newest applied change when applied (0 when current).\n"
		"# TYPE coord_feed_lag_seconds gauge\ncoord_feed_lag_seconds %.0f\n"
		"# TYPE coord_feed_applied_total counter\ncoord_feed_applied_total %lld\n"
		"# HELP coord_feed_poll_seconds_total Time the follower spent reading the feed.\n"
		"# TYPE coord_feed_poll_seconds_total counter\ncoord_feed_poll_seconds_total %.6f\n"
		"# HELP coord_jobs_holder 1 on the instance that runs the once-only jobs.\n"
		"# TYPE coord_jobs_holder gauge\ncoord_jobs_holder{instance=\"%s\"} %d\n"
		"# TYPE coord_instances_alive gauge\ncoord_instances_alive %zu\n",
		co->feed.db_ok, (long long)co->feed.seq,
		(long long)(co->feed.head > co->feed.seq ? co->feed.head - co->feed.seq : 0),
		co->feed.last_lag_s, (long long)co->feed.applied, (double)co->feed.db_us / 1e6,
		co->instance, co->feed.jobs, co->feed.n_inst);
}
