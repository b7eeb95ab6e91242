/* netmap_ver.c - the netmap's versions, so a node (or relay) that reconnects is told only
 * what changed while it was away. A version is a change-feed number (store.c: global,
 * gapless, in commit order, the same on every instance of one database), so a node may
 * resume at another instance or after a restart. Every change fanned out stamps what it
 * touched (a node's nm_ver, the relay map's, the DNS policy's) with a version at or past
 * the change's own feed number and past every version handed out so far; a resume from
 * `since` sends what is stamped after it. Nodes that left are in the nmlog ring. The
 * version handed out (netmap_version) is one up to which everything is applied here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "coord.h"
#include "meshvpn/file.h"
#include "meshvpn/log.h"

int64_t netmap_version(const struct coord *co)
{
	int64_t own = store_last_commit(co->st);

	/* Several instances: the follower's position (everything up to it applied, ours
	 * and the others'). One: our own writes are all there is. */
	if (co->remote)
		return co->feed.seq;
	return own > co->nm.start_head ? own : co->nm.start_head;
}

int64_t netmap_stamp(struct coord *co)
{
	int64_t s = netmap_version(co) + 1, own = store_last_commit(co->st);

	/* A batch of the feed: its rows are read as they are now, which may be past their
	 * entries' numbers: settled to the head read after the batch. */
	if (co->nm.applying) {
		co->nm.unsettled = 1;
		return NM_STAMP_PENDING;
	}
	return own > s ? own : s;
}

void netmap_untouch(struct coord *co, struct node *n)
{
	if (!n->in_ch)
		return;
	if (n->ch_prev)
		n->ch_prev->ch_next = n->ch_next;
	else
		co->nm.ch_head = n->ch_next;
	if (n->ch_next)
		n->ch_next->ch_prev = n->ch_prev;
	else
		co->nm.ch_tail = n->ch_prev;
	n->ch_prev = n->ch_next = NULL;
	n->in_ch = 0;
}

void netmap_touch(struct coord *co, struct node *n, int64_t ver, int vis)
{
	/* Never below the newest stamp: the list stays in order (a feed entry committed
	 * while we loaded may stamp past the version we then hand out), and a higher stamp
	 * only ever resends. */
	if (co->nm.ch_tail && co->nm.ch_tail->nm_ver > ver)
		ver = co->nm.ch_tail->nm_ver;
	n->nm_ver = ver;
	if (vis)
		n->vis_ver = ver;
	netmap_untouch(co, n);
	n->ch_prev = co->nm.ch_tail;
	if (co->nm.ch_tail)
		co->nm.ch_tail->ch_next = n;
	else
		co->nm.ch_head = n;
	co->nm.ch_tail = n;
	n->in_ch = 1;
}

int netmap_touch_ordered(const struct coord *co)
{
	/* Stamps only grow, so the list is in order, except that a batch's placeholders
	 * outrank later stamps until the head settles them. */
	return !co->nm.unsettled;
}

void netmap_stamps_settle(struct coord *co, int64_t head)
{
	if (!co->nm.unsettled)
		return;
	co->nm.unsettled = 0;
	for (struct node *n = co->nodes_head; n; n = n->next) {
		if (n->nm_ver == NM_STAMP_PENDING)
			n->nm_ver = head;
		if (n->vis_ver == NM_STAMP_PENDING)
			n->vis_ver = head;
	}
	if (co->nm.relays_ver == NM_STAMP_PENDING)
		co->nm.relays_ver = head;
	if (co->nm.dns_ver == NM_STAMP_PENDING)
		co->nm.dns_ver = head;
	nmlog_restamp(&co->nm.log, NM_STAMP_PENDING, head);
}

#define SEEN_FILE "netmap_version"   /* in the state dir: the highest version handed out */

static void fresh_epoch(char out[NMLOG_EPOCH_LEN + 1])
{
	uint8_t raw[NMLOG_EPOCH_LEN / 2];

	randombytes_buf(raw, sizeof(raw));
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* The highest version this state dir saw handed out, 0 if none. */
static int64_t seen_read(const struct coord *co)
{
	char path[4096], buf[32] = "";
	long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", co->opts.state_dir, SEEN_FILE);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f) || sscanf(buf, "%lld", &v) != 1 || v < 0)
		v = 0;
	fclose(f);
	return v;
}

void netmap_versions_note(struct coord *co)
{
	char path[4096], buf[32];
	int64_t v = netmap_version(co);
	struct iovec iov;

	if (v <= co->nm.seen_written || !co->opts.state_dir)
		return;
	snprintf(path, sizeof(path), "%s/%s", co->opts.state_dir, SEEN_FILE);
	iov.iov_base = buf;
	iov.iov_len = (size_t)snprintf(buf, sizeof(buf), "%lld\n", (long long)v);
	if (!file_replace(path, &iov, 1, 0600, NULL))
		co->nm.seen_written = v;
}

/* The epoch, once per database (coord migrate does not copy it: the numbers start
 * again). A database behind what was handed out from it (restored from a backup) gets a
 * new one: its numbers will mean other changes than the nodes' versions do. */
static int load_epoch(struct coord *co, char epoch[NMLOG_EPOCH_LEN + 1])
{
	char fresh[NMLOG_EPOCH_LEN + 1];
	int64_t seen = seen_read(co);
	int rc = store_meta_get(co->st, "feed_epoch", epoch, NMLOG_EPOCH_LEN + 1);

	fresh_epoch(fresh);
	if (rc == -ENOENT)
		return store_meta_init(co->st, "feed_epoch", fresh, epoch, NMLOG_EPOCH_LEN + 1);
	if (rc || seen <= co->feed.seq)
		return rc;
	log_warn("the database is behind the versions handed out from it (restored from a backup?):"
		 " a new epoch, every node gets a full netmap", "head=%lld seen=%lld",
		 (long long)co->feed.seq, (long long)seen);
	rc = store_meta_set(co->st, "feed_epoch", fresh);
	if (!rc)
		memcpy(epoch, fresh, sizeof(fresh));
	co->nm.seen_written = 0;
	return rc;
}

/* A node gone since, as the kept feed last names it (its delete, which keeps the key). */
struct gone_entry {
	int64_t id, ver;
	uint8_t key[KEY_LEN];
	int has_key;
};

static int gone_note(struct coord *co, const struct store_change *c)
{
	struct gone_entry *g;

	if (co->nm.n_gone == co->nm.cap_gone) {
		size_t cap = co->nm.cap_gone ? co->nm.cap_gone * 2 : 256;
		void *nb = realloc(co->nm.gone, cap * sizeof(*g));

		if (!nb)
			return -ENOMEM;
		co->nm.gone = nb;
		co->nm.cap_gone = cap;
	}
	g = &((struct gone_entry *)co->nm.gone)[co->nm.n_gone++];
	g->id = c->ref;
	g->ver = c->seq;
	g->has_key = !key_from_base64(c->key, g->key);
	return 0;
}

static int by_id_then_ver(const void *a, const void *b)
{
	const struct gone_entry *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->ver < y->ver ? -1 : x->ver > y->ver;
}

static int by_ver(const void *a, const void *b)
{
	const struct gone_entry *x = a, *y = b;

	return x->ver < y->ver ? -1 : x->ver > y->ver;
}

/* One ring entry per node gone: its last entry, in version order. */
static void gone_to_ring(struct coord *co)
{
	struct gone_entry *g = co->nm.gone;
	size_t n = 0;

	if (!g)
		return;
	qsort(g, co->nm.n_gone, sizeof(*g), by_id_then_ver);
	for (size_t i = 0; i < co->nm.n_gone; i++)
		if (i + 1 == co->nm.n_gone || g[i + 1].id != g[i].id)
			g[n++] = g[i];
	qsort(g, n, sizeof(*g), by_ver);
	for (size_t i = 0; i < n; i++)
		nmlog_add(&co->nm.log, g[i].ver, g[i].id, g[i].has_key ? g[i].key : NULL);
	free(g);
	co->nm.gone = NULL;
	co->nm.n_gone = co->nm.cap_gone = 0;
}

static int stamp_from_feed(const struct store_change *c, void *arg)
{
	struct coord *co = arg;
	struct node *n;

	if (!co->nm.load_rows++)
		co->nm.load_first = c->seq;
	co->nm.load_pos = c->seq;
	switch (c->kind) {
	case STORE_CH_NODE:
	case STORE_CH_NODE_LIVE:
		n = coord_node_by_id(co, c->ref);
		if (n) {
			netmap_touch(co, n, c->seq, c->kind == STORE_CH_NODE);
		} else if (gone_note(co, c)) {
			return -ENOMEM;
		}
		break;
	case STORE_CH_RELAY:
		co->nm.relays_ver = c->seq;
		break;
	case STORE_CH_META:
		co->nm.dns_ver = c->seq;   /* the domain, the blocking mode */
		break;
	default:
		if (c->kind >= STORE_CH_DNS)
			co->nm.dns_ver = c->seq;
		break;
	}
	return 0;
}

int netmap_versions_load(struct coord *co)
{
	char epoch[NMLOG_EPOCH_LEN + 1];
	int64_t oldest = 0, pos;
	int rc = load_epoch(co, epoch);

	co->nm.start_head = co->feed.seq;
	if (!rc)
		rc = store_feed_oldest(co->st, &oldest);
	if (!rc)
		rc = nmlog_init(&co->nm.log, epoch, oldest > 0 ? oldest - 1 : co->nm.start_head, 0);
	/* What each entity last had done to it, as far back as the feed keeps. */
	for (pos = oldest > 0 ? oldest - 1 : co->nm.start_head; !rc;) {
		co->nm.load_rows = 0;
		rc = store_feed_read(co->st, pos, COORD_FEED_BATCH, stamp_from_feed, co);
		if (rc || !co->nm.load_rows)
			break;
		/* A full batch may end inside a transaction's entries: its number is read
		 * again (stamping twice is harmless), unless the batch is all one transaction. */
		pos = co->nm.load_rows == COORD_FEED_BATCH && co->nm.load_first != co->nm.load_pos ?
			      co->nm.load_pos - 1 : co->nm.load_pos;
	}
	gone_to_ring(co);
	if (rc) {
		log_error("cannot read the change feed's versions", "error=\"%s\"", strerror(-rc));
		return rc;
	}
	/* Whatever it is not visible now may have stopped being so while nobody ran (a key
	 * expiry): every client resuming from before now is told again. */
	for (struct node *n = co->nodes_head; n; n = n->next)
		if (!coord_node_visible(n))
			netmap_touch(co, n, co->nm.start_head + 1, 0);
	log_info("netmap versions loaded", "epoch=%s head=%lld floor=%lld gone=%zu", epoch,
		 (long long)co->nm.start_head, (long long)co->nm.log.floor, co->nm.log.n);
	return 0;
}

int netmap_resume_point(struct coord *co, const struct http_request *req, int64_t *since)
{
	char s[24], e[NMLOG_EPOCH_LEN + 2], epoch[NMLOG_EPOCH_LEN + 1];
	int rs = http_query_get(req->path, "since", s, sizeof(s));
	int re = http_query_get(req->path, "epoch", e, sizeof(e)), rc;

	if (rs == -ENOENT && re == -ENOENT)
		return -ENOENT;   /* a first connect, or a client that asks for a full */
	rc = rs || re ? -EINVAL : nmlog_parse_since(s, e, since, epoch);
	if (!rc)
		rc = nmlog_check(&co->nm.log, epoch, *since, netmap_version(co));
	/* Ahead of us: another instance's version we have not followed yet. */
	if (rc == -ERANGE && coord_feed_catch_up(co))
		rc = nmlog_check(&co->nm.log, epoch, *since, netmap_version(co));
	if (rc == -EXDEV || rc == -EINVAL)
		co->nm.refused_epoch++;
	else if (rc == -ESTALE)
		co->nm.refused_stale++;
	else if (rc == -ERANGE)
		co->nm.refused_future++;
	return rc;
}
