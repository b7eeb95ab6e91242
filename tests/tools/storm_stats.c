/* storm_stats.c - when each simulated node first had each change posted during a storm
 * (see storm_stats.h for how a full or resume line is judged to include a change), and
 * what a line says to resume from. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storm_stats.h"

int storm_stats_init(struct storm_stats *st, int n_nodes, int skip)
{
	memset(st, 0, sizeof(*st));
	st->n_nodes = n_nodes;
	st->skip = skip;
	st->nodes = calloc((size_t)n_nodes, sizeof(*st->nodes));
	st->post_t = calloc(STORM_CHANGES_MAX, sizeof(double));
	st->ans_t = calloc(STORM_CHANGES_MAX, sizeof(double));
	st->state = calloc(STORM_CHANGES_MAX, 1);
	st->hist = calloc(STORM_HIST_MS + 1, sizeof(uint32_t));
	st->hist_live = calloc(STORM_HIST_MS + 1, sizeof(uint32_t));
	if (!st->nodes || !st->post_t || !st->ans_t || !st->state || !st->hist || !st->hist_live) {
		storm_stats_free(st);
		return -ENOMEM;
	}
	for (int i = 0; i < n_nodes; i++) {
		st->nodes[i].level = -1;
		st->nodes[i].cand = -1;
		st->nodes[i].current_since = -1;
	}
	return 0;
}

void storm_stats_free(struct storm_stats *st)
{
	free(st->nodes);
	free(st->post_t);
	free(st->ans_t);
	free(st->state);
	free(st->hist);
	free(st->hist_live);
	memset(st, 0, sizeof(*st));
}

int storm_stats_post(struct storm_stats *st, double t)
{
	if (st->n_posts >= STORM_CHANGES_MAX)
		return -ENOSPC;
	st->post_t[st->n_posts] = t;
	st->state[st->n_posts] = STORM_POST_PENDING;
	return st->n_posts++;
}

void storm_stats_answered(struct storm_stats *st, int k, int ok, double t)
{
	if (k < 0 || k >= st->n_posts || st->state[k] != STORM_POST_PENDING)
		return;
	st->state[k] = ok ? STORM_POST_OK : STORM_POST_FAILED;
	st->ans_t[k] = t;
}

/* Node i has every change up to lv since t: one sample per change it did not have yet
 * (a failed post changed nothing and is not timed). */
static void raise_level(struct storm_stats *st, int i, int lv, double t)
{
	struct storm_node *n = &st->nodes[i];

	if (lv >= st->n_posts)
		lv = st->n_posts - 1;
	for (int c = n->level + 1; c <= lv; c++) {
		double d = t - st->post_t[c];
		long ms;
		if (i == st->skip || st->state[c] == STORM_POST_FAILED)
			continue;
		if (d < 0)
			d = 0;
		ms = (long)(d * 1000);
		st->hist[ms < STORM_HIST_MS ? ms : STORM_HIST_MS]++;
		st->samples++;
		if (n->current_since >= 0 && n->current_since <= st->post_t[c]) {
			st->hist_live[ms < STORM_HIST_MS ? ms : STORM_HIST_MS]++;
			st->samples_live++;
		}
		if (d > st->max_s)
			st->max_s = d;
	}
	if (lv > n->level)
		n->level = lv;
}

void storm_stats_snapshot(struct storm_stats *st, int i, double get_t, double t)
{
	struct storm_node *n = &st->nodes[i];
	int sure = -1;

	if (i < 0 || i >= st->n_nodes)
		return;
	/* Posts go one after the other: the last one answered before the GET left. */
	for (int c = st->n_posts - 1; c >= 0; c--)
		if (st->state[c] == STORM_POST_OK && st->ans_t[c] < get_t) {
			sure = c;
			break;
		}
	raise_level(st, i, sure, t);
	n->delta_since = 0;
	n->cand = st->n_posts - 1 > n->level ? st->n_posts - 1 : -1;
	n->cand_t = t;
}

void storm_stats_delta(struct storm_stats *st, int i, int k, double t)
{
	struct storm_node *n = &st->nodes[i];

	if (i < 0 || i >= st->n_nodes || k < 0 || k >= st->n_posts)
		return;
	if (n->cand >= 0 && !n->delta_since)
		/* The first delta after the line is k: every change before k was applied
		 * before the stream began, so the line held it. */
		raise_level(st, i, k - 1 < n->cand ? k - 1 : n->cand, n->cand_t);
	n->cand = -1;
	n->delta_since = 1;
	raise_level(st, i, k, t);
}

void storm_stats_finish(struct storm_stats *st)
{
	int last_ok = -1;

	for (int c = st->n_posts - 1; c >= 0 && last_ok < 0; c--)
		if (st->state[c] == STORM_POST_OK)
			last_ok = c;
	for (int i = 0; i < st->n_nodes; i++) {
		struct storm_node *n = &st->nodes[i];
		if (n->cand >= 0 && !n->delta_since)
			raise_level(st, i, n->cand < last_ok ? n->cand : last_ok, n->cand_t);
		n->cand = -1;
	}
}

void storm_stats_current(struct storm_stats *st, int i, int current, double t)
{
	if (i < 0 || i >= st->n_nodes)
		return;
	if (!current)
		st->nodes[i].current_since = -1;
	else if (st->nodes[i].current_since < 0)
		st->nodes[i].current_since = t;
}

static double quantile(const uint32_t *hist, uint64_t samples, double q)
{
	uint64_t want, seen = 0;

	if (!samples)
		return -1;
	want = (uint64_t)(q * (double)samples + 0.999999);
	if (want < 1)
		want = 1;
	for (long ms = 0; ms <= STORM_HIST_MS; ms++) {
		seen += hist[ms];
		if (seen >= want)
			return (double)ms;
	}
	return STORM_HIST_MS;
}

double storm_stats_quantile(const struct storm_stats *st, double q)
{
	return quantile(st->hist, st->samples, q);
}

double storm_stats_quantile_live(const struct storm_stats *st, double q)
{
	return quantile(st->hist_live, st->samples_live, q);
}

int storm_stats_ok_posts(const struct storm_stats *st)
{
	int ok = 0;

	for (int c = 0; c < st->n_posts; c++)
		ok += st->state[c] == STORM_POST_OK;
	return ok;
}

uint64_t storm_stats_undelivered(const struct storm_stats *st)
{
	uint64_t missing = 0;

	for (int i = 0; i < st->n_nodes; i++)
		for (int c = st->nodes[i].level + 1; i != st->skip && c < st->n_posts; c++)
			missing += st->state[c] == STORM_POST_OK;
	return missing;
}

static const char *find2(const char *head, const char *tail, const char *key)
{
	const char *p = strstr(head, key);

	return p || !tail ? p : strstr(tail, key);
}

int storm_line_version(const char *head, const char *tail, long long *v, char epoch[17])
{
	const char *p = find2(head, tail, "\"v\":");
	char *end;
	int got = 0;
	long long n;

	if (p) {
		n = strtoll(p + 4, &end, 10);
		if (end != p + 4 && n >= 0) {
			*v = n;
			got |= STORM_LINE_V;
		}
	}
	if (strncmp(head, "{\"type\":\"full\"", 14) && strncmp(head, "{\"type\":\"resume\"", 16))
		return got;
	epoch[0] = 0;
	got |= STORM_LINE_EPOCH;
	p = find2(head, tail, "\"epoch\":\"");
	if (p && strspn(p + 9, "0123456789abcdef") == 16 && p[25] == '"')
		snprintf(epoch, 17, "%.16s", p + 9);
	return got;
}
