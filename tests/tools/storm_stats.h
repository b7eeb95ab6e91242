/* storm_stats.h - the delivery bookkeeping of nodesim's storm phase: when each simulated
 * node first had each endpoint change posted while every node reconnects. A node "has"
 * change k once its state is at least as new as k: a delta carrying k (or a later one),
 * or a full/resume line that includes it. Whether a full/resume includes a change is
 * inferred (the simulator keeps only the start of long lines): a change answered before
 * the stream's GET was sent is in it; one posted before the line arrived is in it unless
 * a delta for it follows on that stream (coord applies changes one after the other and
 * sends a watcher the deltas of every change applied after its full). Pure: no I/O. */
#ifndef NODESIM_STORM_STATS_H
#define NODESIM_STORM_STATS_H

#include <stddef.h>
#include <stdint.h>

#define STORM_CHANGES_MAX 40000          /* 2.7 hours of posts at 4 a second */
#define STORM_HIST_MS     (20 * 60 * 1000) /* 1 ms buckets up to 20 min, then one more */

enum storm_post { STORM_POST_PENDING, STORM_POST_OK, STORM_POST_FAILED };

struct storm_node {
	int level;        /* the newest change it surely has (-1: none) */
	int cand;         /* the newest change its last full/resume may include (-1: none) */
	double cand_t;    /* when that line arrived */
	int delta_since;  /* a storm delta arrived on the stream since that line */
	double current_since; /* it has had its map since then (< 0: not current) */
};

struct storm_stats {
	int n_nodes, skip;   /* skip: the poster, whose own changes are not timed */
	struct storm_node *nodes;
	int n_posts;
	double *post_t, *ans_t;
	unsigned char *state; /* enum storm_post */
	uint32_t *hist;
	uint64_t samples;
	double max_s;
	/* The same for the nodes that were current when the change was posted: how fast a
	 * change crosses the storm, apart from how long a node takes to come back. */
	uint32_t *hist_live;
	uint64_t samples_live;
};

/* 0 or -ENOMEM. skip: the node that posts (-1: none). */
int storm_stats_init(struct storm_stats *st, int n_nodes, int skip);
void storm_stats_free(struct storm_stats *st);
/* A post is being sent at t: its change number, or -ENOSPC. */
int storm_stats_post(struct storm_stats *st, double t);
/* Its answer (ok: HTTP 200) or failure came at t. */
void storm_stats_answered(struct storm_stats *st, int k, int ok, double t);
/* Node i received a full or resume line at t on a stream whose GET it sent at get_t. */
void storm_stats_snapshot(struct storm_stats *st, int i, double get_t, double t);
/* Node i received the delta carrying change k at t. */
void storm_stats_delta(struct storm_stats *st, int i, int k, double t);
/* The storm is over (every delta in flight has arrived): the full/resume lines no delta
 * followed held every change answered. */
void storm_stats_finish(struct storm_stats *st);
/* Node i is current (has its map) from t on, or (current 0) no longer. */
void storm_stats_current(struct storm_stats *st, int i, int current, double t);
/* The q-quantile (0..1) of the delivery times, in ms; -1 when there is no sample. live:
 * only to the nodes current when the change was posted. */
double storm_stats_quantile(const struct storm_stats *st, double q);
double storm_stats_quantile_live(const struct storm_stats *st, double q);
/* The changes answered 200 and the (node, change) pairs among them never had. */
int storm_stats_ok_posts(const struct storm_stats *st);
uint64_t storm_stats_undelivered(const struct storm_stats *st);

/* What a netmap line says to resume from, read from its head (NUL-terminated; the whole
 * line when short) and, for a long line, tail (its last bytes; NULL otherwise): its "v"
 * into *v (result bit 1), and on a full or resume line its "epoch" (16 lowercase hex)
 * into epoch, "" when it has none (result bit 2). */
#define STORM_LINE_V     1
#define STORM_LINE_EPOCH 2
int storm_line_version(const char *head, const char *tail, long long *v, char epoch[17]);

#endif
