/* feed.c - several coord instances on one PostgreSQL database. Each keeps the whole
 * tailnet in memory, writes through the store (which records every change in the feed,
 * numbered in commit order), and follows the feed: every 100 ms it reads the changes
 * after the last one it applied, re-reads each changed row and fans it out to its own
 * watchers as if the change had been made here. Its own changes it applied when it made
 * them. Instances beat in the instances table; the once-only jobs (ephemeral removal,
 * feed pruning, clearing the online marks of a dead instance) go to the holder of a
 * lease. With SQLite there is one instance and none of this runs. */
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

/* Nodes another instance held the streams of, now that it has stopped beating: offline
 * for our watchers; the job holder also clears the mark in the store. */
static void instance_died(struct coord *co, const char *name)
{
	log_warn("coord instance stopped beating: its nodes are offline until they reconnect",
		 "instance=%s", name);
	for (struct node *n = co->nodes_head; n; n = n->next) {
		if (strcmp(n->rec.online, name))
			continue;
		n->remote_online = 0;
		/* Only while the row still names it: the node may have moved to another
		 * instance that recorded it a moment ago (after the database was away, say)
		 * and whose change this instance has not read yet. */
		if (coord_jobs_mine(co) &&
		    !store_node_offline_if(co->st, n->rec.id, name, n->disconnected_at)) {
			n->rec.online[0] = 0;
			n->rec.disconnected_at = n->disconnected_at;
		}
		netmap_invalidate(n);
		if (coord_node_visible(n) && !netmap_node_online(n))
			netmap_online_changed(co, n);
	}
}

static void beat(struct coord *co)
{
	struct coord_feed *f = &co->feed;
	struct coord_instance_seen before[COORD_MAX_INSTANCES];
	size_t n_before = f->n_inst;
	struct store_instance me = { 0 };
	int64_t now = coord_now();
	int jobs;

	memcpy(before, f->inst, sizeof(before));
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
	snprintf(me.jobs, sizeof(me.jobs), "%s", f->jobs ? "expiry,ephemeral,feed-prune" : "");
	if (store_instance_beat(co->st, &me) || coord_instances_load(co))
		return;
	f->last_beat = now;
	for (size_t i = 0; i < n_before; i++)
		if (before[i].seen >= now - COORD_INSTANCE_DEAD - COORD_INSTANCE_BEAT &&
		    strcmp(before[i].name, co->instance) && !coord_instance_alive(co, before[i].name))
			instance_died(co, before[i].name);
	if (f->jobs && f->head > COORD_FEED_KEEP)
		store_feed_prune(co->st, f->head - COORD_FEED_KEEP);
}

/* ---- applying what another instance changed ---- */

static void apply_node(struct coord *co, int64_t id, int live_only)
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
		return;
	}
	if (rc)
		return;
	if (!n) {
		n = coord_node_adopt(co, &r);
		if (n && coord_node_visible(n))
			netmap_peer_added(co, n);
		return;
	}
	if (live_only || r.rev == n->rec.rev)
		coord_node_apply_live(co, n, &r);
	else
		coord_node_apply(co, n, &r);
}

static void apply_authkey(struct coord *co, int64_t id)
{
	struct authkey_rec r;
	struct authkey *k;

	if (store_authkey_get(co->st, id, &r))
		return;
	for (k = co->authkeys; k && k->rec.id != id; k = k->next)
		;
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k)
			return;
		k->next = co->authkeys;
		co->authkeys = k;
	}
	k->rec = r;
}

static void apply_apikey(struct coord *co, int64_t id)
{
	struct apikey_rec r;
	struct apikey *k;

	if (store_apikey_get(co->st, id, &r))
		return;
	for (k = co->apikeys; k && k->rec.id != id; k = k->next)
		;
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k)
			return;
		k->next = co->apikeys;
		co->apikeys = k;
	}
	k->rec = r;
}

static void apply_relay(struct coord *co, int64_t id)
{
	struct relay_rec r;
	struct relay **p, *rl;
	int rc = store_relay_get(co->st, id, &r);

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
			return;
		rl->rec = r;
		*p = rl;   /* at the end: the relay map keeps the order they were added in */
	}
}

/* The DNS policy and settings are small: read again whole, fanned out once a batch. */
static void reload_dns(struct coord *co)
{
	char buf[128];

	if (!store_meta_get(co->st, "tailnet_domain", buf, sizeof(buf)))
		snprintf(co->domain, sizeof(co->domain), "%.63s", buf);
	coord_dns_free(co);
	if (coord_dns_load(co))
		log_error("could not reload the DNS policy from the store", "instance=%s", co->instance);
	coord_dns_changed(co);
	if (co->bl)
		coord_blocklists_changed(co);
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

static void apply(struct coord *co, const struct store_change *c, struct dirty *d)
{
	if (!strcmp(c->instance, co->instance)) {
		co->feed.own_skipped++;   /* applied when it was made */
		return;
	}
	instance_touch(co, c->instance, c->at);
	co->feed.applied++;
	switch (c->kind) {
	case STORE_CH_NODE: apply_node(co, c->ref, 0); break;
	case STORE_CH_NODE_LIVE: apply_node(co, c->ref, 1); break;
	case STORE_CH_AUTHKEY: apply_authkey(co, c->ref); break;
	case STORE_CH_APIKEY: apply_apikey(co, c->ref); break;
	case STORE_CH_RELAY: apply_relay(co, c->ref); d->relays = 1; break;
	case STORE_CH_META: d->dns = 1; break;
	default:
		if (c->kind >= STORE_CH_DNS && c->kind < STORE_CH_DNS + STORE_DNS_TABLES)
			d->dns = 1;
		break;
	}
}

/* One batch: the number of changes read, or -errno. A batch that ends inside a
 * transaction's changes stops before that transaction (it is read whole next time). */
static int poll_once(struct coord *co)
{
	static struct store_change buf[COORD_FEED_BATCH];
	struct batch b = { buf, 0, COORD_FEED_BATCH };
	struct coord_feed *f = &co->feed;
	struct dirty d = { 0 };
	uint64_t t0 = mono_us();
	int rc = store_feed_read(co->st, f->seq, COORD_FEED_BATCH, collect, &b), end;

	f->db_calls++;
	f->db_us += mono_us() - t0;
	if (rc)
		return rc;
	end = b.n;
	if (b.n == COORD_FEED_BATCH && b.c[0].seq != b.c[b.n - 1].seq)
		while (end > 0 && b.c[end - 1].seq == b.c[b.n - 1].seq)
			end--;
	for (int i = 0; i < end; i++) {
		apply(co, &b.c[i], &d);
		f->seq = b.c[i].seq;
		f->last_lag_s = (double)(coord_now() - b.c[i].at);
	}
	if (d.relays)
		netmap_relays_changed(co);
	if (d.dns)
		reload_dns(co);
	return b.n;
}

void coord_feed_poll(struct coord *co)
{
	struct coord_feed *f = &co->feed;
	int rc;

	if (!co->remote)
		return;
	for (int i = 0; i < 50; i++) {
		rc = poll_once(co);
		if (rc < 0) {
			if (f->db_ok)
				log_warn("cannot follow the change feed: serving from memory, refusing changes",
					 "instance=%s error=\"%s\"", co->instance, strerror(-rc));
			f->db_ok = 0;
			f->poll_errors++;
			return;
		}
		if (!f->db_ok)
			log_info("following the change feed again", "instance=%s seq=%lld", co->instance,
				 (long long)f->seq);
		f->db_ok = 1;
		if (rc < COORD_FEED_BATCH)
			break;
	}
	coord_nodes_live_resave(co);
	if (store_feed_head(co->st, &f->head) == 0 && f->head == f->seq)
		f->last_lag_s = 0;
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

int coord_feed_start(struct coord *co)
{
	if (!co->remote)
		return 0;
	co->feed.started = coord_now();
	co->feed.db_ok = 1;
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
	split = strstr(stored, "-----BEGIN EC PRIVATE KEY-----");
	if (!split)
		split = strstr(stored, "-----BEGIN PRIVATE KEY-----");
	if (!split)
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
