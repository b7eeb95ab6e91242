/* nodesim.c - a stand-in node for tests and benchmarks: registers with coord over TLS
 * (the real signed-challenge protocol), holds netmap streams, posts endpoints, and in
 * `bench` mode simulates thousands of nodes to time how fast a change reaches them all.
 * bench takes `--coord URL1,URL2,...` (several instances on one database): node i
 * registers with and streams from URL[i % n], every change is posted to the first, and
 * the time until the nodes of each instance have it is kept per instance. With
 * `--compress` the streams ask for z frames (lib/zlines.c) and read them unpacked. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "meshvpn/args.h"
#include "meshvpn/coord_proto.h"
#include "meshvpn/coord_urls.h"
#include "meshvpn/http.h"
#include "meshvpn/json.h"
#include "meshvpn/keys.h"
#include "meshvpn/log.h"
#include "meshvpn/tls.h"
#include "meshvpn/zlines.h"

static const char *coord_url, *pin, *auth_key, *hostname = "sim", *state_dir;
static int compress;   /* --compress: ask for z frames */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- blocking calls (register, endpoints, logout) --- */

static int post_json(const char *path, const char *token, json_t *body, int *status, json_t **out)
{
	char auth[160], *resp = NULL, *b;
	const char *headers[3] = { "Content-Type: application/json", NULL, NULL };
	size_t len = 0, blen = 0;
	int rc;

	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		headers[1] = auth;
	}
	b = json_dump_compact(body, &blen);
	rc = http_fetch(coord_url, pin, "POST", path, headers, b, blen, status, &resp, &len, 30000);
	free(b);
	if (rc) {
		fprintf(stderr, "nodesim: %s: %s\n", path, strerror(-rc));
		free(resp);
		return rc;
	}
	*out = resp ? json_loadb(resp, len, 0, NULL) : NULL;
	free(resp);
	return 0;
}

static int do_register(const char *dir, const char *host, const char *key, char *token, size_t tsize,
		       int print)
{
	struct node_keys k;
	json_t *ans = NULL, *body;
	const char *ch, *tok;
	int status = 0, rc;

	if (node_keys_load(dir, 1, &k)) {
		fprintf(stderr, "nodesim: cannot load or create keys in %s\n", dir);
		return 1;
	}
	body = json_object();
	rc = post_json(COORD_PATH_CHALLENGE, NULL, body, &status, &ans);
	json_decref(body);
	if (rc || status != 200 || json_get_str(ans, "challenge", &ch)) {
		fprintf(stderr, "nodesim: challenge failed (HTTP %d)\n", status);
		json_decref(ans);
		node_keys_wipe(&k);
		return 1;
	}
	body = coord_register_body(&k, ch, host, "linux", key);
	json_decref(ans);
	node_keys_wipe(&k);
	if (getenv("NODESIM_REPLAY")) {
		/* For tests: keep the signed request so it can be sent a second time. */
		FILE *f = fopen(getenv("NODESIM_REPLAY"), "w");
		char *s = json_dumps(body, JSON_COMPACT);
		if (f && s)
			fputs(s, f);
		if (f)
			fclose(f);
		free(s);
	}
	rc = post_json(COORD_PATH_REGISTER, NULL, body, &status, &ans);
	json_decref(body);
	if (rc)
		return 1;
	if (print) {
		char *s = ans ? json_dumps(ans, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		printf("%d %s\n", status, s ? s : "");
		free(s);
	}
	if (status != 200 || json_get_str(ans, "token", &tok)) {
		if (!print)
			fprintf(stderr, "nodesim: %s: registration refused (HTTP %d)\n", host, status);
		json_decref(ans);
		return 1;
	}
	snprintf(token, tsize, "%s", tok);
	json_decref(ans);
	return 0;
}

static int save_token(const char *dir, const char *token)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/token", dir);
	f = fopen(path, "w");
	if (!f)
		return 1;
	fprintf(f, "%s\n", token);
	fclose(f);
	chmod(path, 0600);
	return 0;
}

static int load_token(const char *dir, char *token, size_t size)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/token", dir);
	f = fopen(path, "r");
	if (!f || !fgets(token, (int)size, f)) {
		if (f)
			fclose(f);
		fprintf(stderr, "nodesim: no token in %s (register first)\n", dir);
		return 1;
	}
	fclose(f);
	token[strcspn(token, "\n")] = 0;
	return 0;
}

/* --- streams --- */

struct sim;

#define SIM_INST_MAX COORD_URLS_MAX
#define SIM_LINE_MAX (64u << 20)   /* vpnd's CC_MAX_LINE */

struct simnode {
	struct sim *sim;
	int idx;
	int inst;               /* the instance (index into sim's URLs) it streams from */
	int seen_seq;           /* the last change it received (each is counted once) */
	char token[COORD_TOKEN_MAX];
	struct http_client *cl;
	int status;
	int got_full;
	/* Line scanner: only the start of each line is kept, and whole short lines. */
	char line[512];
	size_t line_len;
	int line_overflow;
	struct simz *z;         /* --compress: whole lines, and the frame being gathered */
	uint64_t lines;
	int done;
};

struct sim {
	uv_loop_t *loop;
	struct tls_config *tls;
	struct coord_urls urls; /* bench: one or more instances; else the one --coord */
	int n_inst;
	struct simnode *nodes;
	int n;
	int opened, full_count, failed;
	/* bench: streams whose connection failed before the full netmap are opened again,
	 * as a real node would (coord may be too busy to finish a handshake in time) */
	int retry;
	int *reopen, n_reopen, retries;
	/* single-stream mode */
	int print;
	long max_lines;
	const char *until;
	/* bench */
	int change_seq;          /* port number carried by the current change */
	int change_seen;
	double change_t0;
	double *latencies;
	int n_changes, changes_done;
	int changer;
	/* per instance: watchers, how many have the current change, time until all had each */
	int inst_nodes[SIM_INST_MAX], inst_seen[SIM_INST_MAX];
	double *inst_lat[SIM_INST_MAX];
	uv_timer_t timer;
};

static void stream_open(struct simnode *sn);

static void handle_line(struct simnode *sn, const char *line, size_t len, int truncated)
{
	struct sim *s = sn->sim;

	sn->lines++;
	if (!strncmp(line, "{\"type\":\"full\"", 14) && !sn->got_full) {
		sn->got_full = 1;
		s->full_count++;
	}
	if (s->until && strstr(line, s->until))
		uv_stop(s->loop);
	if (s->max_lines && (long)sn->lines >= s->max_lines)
		uv_stop(s->loop);
	if (s->change_seq && !truncated && !strncmp(line, "{\"type\":\"endpoints\"", 19) &&
	    sn->idx != s->changer && sn->seen_seq != s->change_seq) {
		char marker[32];
		snprintf(marker, sizeof(marker), ":%d\"", s->change_seq);
		if (!strstr(line, marker))
			return;
		sn->seen_seq = s->change_seq;
		/* the changer's own instance has one watcher fewer */
		if (++s->inst_seen[sn->inst] ==
		    s->inst_nodes[sn->inst] - (s->nodes[s->changer].inst == sn->inst))
			s->inst_lat[sn->inst][s->changes_done] = now_s() - s->change_t0;
		if (++s->change_seen == s->n - 1) {
			s->latencies[s->changes_done++] = now_s() - s->change_t0;
			s->change_seq = 0;
			uv_stop(s->loop);
		}
	}
}

/* --compress: lines are whole (a frame's are only known once it is), as in vpnd. A
 * frame's memory is freed once read, so thousands of streams hold only small lines. */
struct simz {
	struct zlines_reader zr;
	struct line_buf lb;
};

static int on_zline(const char *line, size_t len, void *arg)
{
	struct simnode *sn = arg;

	if (sn->sim->print) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	}
	handle_line(sn, line, len, 0);
	return 0;
}

static void on_zbody(struct simnode *sn, const uint8_t *p, size_t len)
{
	int rc = zlines_feed(&sn->z->zr, &sn->z->lb, p, len, on_zline, sn);

	if (rc >= 0)
		return;
	fprintf(stderr, "nodesim: stream unreadable: %s\n", strerror(-rc));
	sn->sim->failed++;
	sn->done = 1;
	http_client_cancel(sn->cl);
	sn->cl = NULL;
	if (sn->sim->print)
		uv_stop(sn->sim->loop);
}

static void on_body(const uint8_t *p, size_t len, void *arg)
{
	struct simnode *sn = arg;

	if (sn->z) {
		on_zbody(sn, p, len);
		return;
	}
	if (sn->sim->print) {
		/* Whole lines, however long (a full netmap is one line). */
		fwrite(p, 1, len, stdout);
		fflush(stdout);
	}
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n') {
			sn->line[sn->line_len < sizeof(sn->line) ? sn->line_len : sizeof(sn->line) - 1] = 0;
			handle_line(sn, sn->line, sn->line_len, sn->line_overflow);
			sn->line_len = 0;
			sn->line_overflow = 0;
			continue;
		}
		if (sn->line_len < sizeof(sn->line) - 1)
			sn->line[sn->line_len++] = (char)p[i];
		else
			sn->line_overflow = 1;
	}
}

static void on_response(const struct http_response *resp, void *arg)
{
	struct simnode *sn = arg;

	sn->status = resp->status;
	if (resp->status != 200) {
		fprintf(stderr, "nodesim: stream refused with HTTP %d\n", resp->status);
		sn->sim->failed++;
	}
}

static void on_done(int status, void *arg)
{
	struct simnode *sn = arg;

	sn->cl = NULL;
	if (sn->sim->retry && !sn->got_full && status) {
		sn->sim->reopen[sn->sim->n_reopen++] = sn->idx;
		sn->sim->retries++;
		return;
	}
	sn->done = 1;
	if (sn->sim->print) {
		printf("{\"type\":\"nodesim-stream-ended\",\"status\":%d}\n", status);
		fflush(stdout);
		uv_stop(sn->sim->loop);
	}
}

static void on_connected(struct conn *c, int status, void *arg)
{
	struct simnode *sn = arg;
	static const struct http_client_cbs cbs = { on_response, on_body, on_done };
	char auth[160];
	const char *headers[2] = { auth, NULL };

	if ((status < 0 || !c) && sn->sim->retry) {
		sn->sim->reopen[sn->sim->n_reopen++] = sn->idx;
		sn->sim->retries++;
		return;
	}
	if (status < 0 || !c) {
		fprintf(stderr, "nodesim: connect failed: %s\n", strerror(-status));
		sn->sim->failed++;
		sn->done = 1;
		if (sn->sim->print)
			uv_stop(sn->sim->loop);
		return;
	}
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", sn->token);
	if (http_client_start(c, "GET", sn->sim->urls.urls[sn->inst].host,
			      sn->z ? COORD_PATH_MAP "?" ZLINES_QUERY : COORD_PATH_MAP, headers,
			      NULL, 0, &cbs, sn, &sn->cl)) {
		sn->sim->failed++;
		sn->done = 1;
	}
}

static void stream_open(struct simnode *sn)
{
	struct sim *s = sn->sim;

	s->opened++;
	sn->line_len = 0;
	sn->line_overflow = 0;
	if (compress && !sn->z && (sn->z = calloc(1, sizeof(*sn->z)))) {
		sn->z->lb.max = SIM_LINE_MAX;
		zlines_reader_init(&sn->z->zr, SIM_LINE_MAX);
	}
	if (sn->z) {
		zlines_reader_reset(&sn->z->zr);
		line_buf_reset(&sn->z->lb);
	}
	if (tls_connect(s->loop, s->tls, s->urls.urls[sn->inst].host, s->urls.urls[sn->inst].port,
			on_connected, sn, NULL)) {
		s->failed++;
		sn->done = 1;
	}
}

static int sim_init(struct sim *s, int n, int bench)
{
	memset(s, 0, sizeof(*s));
	s->loop = uv_default_loop();
	if (coord_urls_parse(coord_url, &s->urls, NULL, 0) ||
	    (s->urls.n_urls > 1 && (!bench || s->urls.n_urls > SIM_INST_MAX))) {
		fprintf(stderr, "nodesim: --coord takes https://HOST:PORT (bench: a comma list)\n");
		return 1;
	}
	s->n_inst = (int)s->urls.n_urls;
	if (tls_config_client_new(NULL, pin, &s->tls)) {
		fprintf(stderr, "nodesim: bad --pin\n");
		return 1;
	}
	s->nodes = calloc((size_t)n, sizeof(*s->nodes));
	if (!s->nodes)
		return 1;
	s->n = n;
	for (int i = 0; i < n; i++) {
		s->nodes[i].sim = s;
		s->nodes[i].idx = i;
		s->nodes[i].inst = i % s->n_inst;
		s->inst_nodes[i % s->n_inst]++;
	}
	return 0;
}

static void on_deadline(uv_timer_t *t)
{
	struct sim *s = t->data;

	fprintf(stderr, "nodesim: deadline reached\n");
	s->failed++;
	uv_stop(s->loop);
}

static int cmd_stream(double timeout, const char *until, long max_lines)
{
	struct sim s;

	if (sim_init(&s, 1, 0) || load_token(state_dir, s.nodes[0].token, sizeof(s.nodes[0].token)))
		return 1;
	s.print = 1;
	s.until = until;
	s.max_lines = max_lines;
	uv_timer_init(s.loop, &s.timer);
	s.timer.data = &s;
	uv_timer_start(&s.timer, on_deadline, (uint64_t)(timeout * 1000), 0);
	stream_open(&s.nodes[0]);
	uv_run(s.loop, UV_RUN_DEFAULT);
	return s.failed ? 1 : 0;
}

/* --- bench: N nodes, M endpoint changes, time until all N-1 watchers have each --- */

static int register_many(const struct coord_urls *urls, int n, char (*tokens)[COORD_TOKEN_MAX],
			 int workers)
{
	char tmpl[] = "/tmp/nodesim-XXXXXX";
	char *base = mkdtemp(tmpl);
	pid_t pids[16];

	if (!base)
		return 1;
	if (workers > 16)
		workers = 16;
	for (int w = 0; w < workers; w++) {
		pids[w] = fork();
		if (pids[w] == 0) {
			char path[4096];
			FILE *out;
			snprintf(path, sizeof(path), "%s/tokens.%d", base, w);
			out = fopen(path, "w");
			for (int i = w; i < n; i += workers) {
				char dir[4096], tok[COORD_TOKEN_MAX], host[32];
				snprintf(dir, sizeof(dir), "%s/n%d", base, i);
				snprintf(host, sizeof(host), "sim%d", i);
				mkdir(dir, 0700);
				coord_url = urls->base[(size_t)i % urls->n_urls];
				if (do_register(dir, host, auth_key, tok, sizeof(tok), 0))
					_exit(1);
				fprintf(out, "%d %s\n", i, tok);
			}
			fclose(out);
			_exit(0);
		}
	}
	int bad = 0;
	for (int w = 0; w < workers; w++) {
		int st;
		waitpid(pids[w], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	}
	for (int w = 0; w < workers && !bad; w++) {
		char path[4096], tok[COORD_TOKEN_MAX];
		int i;
		snprintf(path, sizeof(path), "%s/tokens.%d", base, w);
		FILE *f = fopen(path, "r");
		while (f && fscanf(f, "%d %95s", &i, tok) == 2)
			if (i >= 0 && i < n)
				snprintf(tokens[i], COORD_TOKEN_MAX, "%s", tok);
		if (f)
			fclose(f);
	}
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	if (system(cmd))
		bad = 1;
	return bad;
}

static double cpu_seconds(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f)) {
		char *p = strrchr(buf, ')');
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
			ut = st = 0;
	}
	fclose(f);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

struct poster {
	struct sim *s;
	char body[160];
	char auth[160];
	struct http_client *cl;
};

static void post_done(int status, void *arg)
{
	struct poster *p = arg;

	if (status)
		fprintf(stderr, "nodesim: endpoint post failed: %d\n", status);
	free(p);
}

static void post_connected(struct conn *c, int status, void *arg)
{
	static const struct http_client_cbs cbs = { NULL, NULL, post_done };
	struct poster *p = arg;
	const char *headers[3] = { p->auth, "Content-Type: application/json", NULL };

	if (status < 0) {
		free(p);
		return;
	}
	http_client_start(c, "POST", p->s->urls.urls[0].host, COORD_PATH_ENDPOINTS, headers, p->body,
			  strlen(p->body), &cbs, p, &p->cl);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v and gives its median, 99th percentile and maximum. */
static void percentiles(double *v, int n, double *p50, double *p99, double *max)
{
	int i99 = (n * 99 + 99) / 100 - 1;

	qsort(v, (size_t)n, sizeof(double), cmp_double);
	*p50 = v[n / 2];
	*p99 = v[i99 < n ? i99 : n - 1];
	*max = v[n - 1];
}

/* The instances' processes (--coord-pid PID[,PID...]) and metrics listeners (--metrics
 * HOST:PORT[,...]), both in --coord's order; a sample is taken before and after the
 * change phase. */
static const char *const bench_metric[] = {
	"coord_store_statements_total", "coord_store_seconds_total", "coord_feed_poll_seconds_total",
	"coord_feed_applied_total", "coord_feed_lag_changes",
};
#define BENCH_METRICS (sizeof(bench_metric) / sizeof(bench_metric[0]))

struct bench_sample {
	double cpu[SIM_INST_MAX];
	long rss[SIM_INST_MAX];
	double m[SIM_INST_MAX][BENCH_METRICS];
	int have_m[SIM_INST_MAX];
};

static int split_list(const char *list, char (*out)[64], int max)
{
	int n = 0;

	while (list && *list && n < max) {
		size_t len = strcspn(list, ",");
		snprintf(out[n++], 64, "%.*s", (int)(len < 63 ? len : 63), list);
		list += len + (list[len] == ',');
	}
	return n;
}

static int metrics_fetch(const char *hostport, double *out)
{
	char base[600], *body = NULL;
	size_t len = 0;
	int status = 0;

	snprintf(base, sizeof(base), "http://%s", hostport);
	if (http_fetch(base, NULL, "GET", "/metrics", NULL, NULL, 0, &status, &body, &len, 10000) ||
	    status != 200 || !body) {
		free(body);
		return 1;
	}
	for (size_t k = 0; k < BENCH_METRICS; k++) {
		char key[80];
		const char *p;
		snprintf(key, sizeof(key), "\n%s ", bench_metric[k]);
		p = memmem(body, len, key, strlen(key));
		out[k] = p ? strtod(p + strlen(key), NULL) : 0;
	}
	free(body);
	return 0;
}

static void bench_sample_take(const char *pids, const char *metrics, struct bench_sample *b)
{
	char item[SIM_INST_MAX][64];
	int n = split_list(pids, item, SIM_INST_MAX);

	memset(b, 0, sizeof(*b));
	for (int i = 0; i < n; i++) {
		b->cpu[i] = cpu_seconds(atoi(item[i]));
		b->rss[i] = rss_kib(atoi(item[i]));
	}
	n = split_list(metrics, item, SIM_INST_MAX);
	for (int i = 0; i < n; i++)
		b->have_m[i] = !metrics_fetch(item[i], b->m[i]);
}

static double sum_cpu(const struct bench_sample *b)
{
	double t = 0;

	for (int i = 0; i < SIM_INST_MAX; i++)
		t += b->cpu[i];
	return t;
}

static long sum_rss(const struct bench_sample *b)
{
	long t = 0;

	for (int i = 0; i < SIM_INST_MAX; i++)
		t += b->rss[i];
	return t;
}

/* Registers the n nodes (each with its own instance) and opens every stream. */
static int bench_setup(struct sim *s, int n, int workers)
{
	char (*tokens)[COORD_TOKEN_MAX] = calloc((size_t)n, COORD_TOKEN_MAX);
	double t0 = now_s();
	int window = 64, next = 0;

	if (!tokens || register_many(&s->urls, n, tokens, workers)) {
		fprintf(stderr, "nodesim: registration failed\n");
		free(tokens);
		return 1;
	}
	/* The loop's clock stood still while we waited for the workers; timers armed now
	 * would otherwise expire at once. */
	uv_update_time(s->loop);
	printf("registered %d nodes in %.1f s\n", n, now_s() - t0);
	fflush(stdout);
	t0 = now_s();
	for (int i = 0; i < n; i++)
		snprintf(s->nodes[i].token, sizeof(s->nodes[i].token), "%s", tokens[i]);
	free(tokens);
	/* Open streams a window at a time: every full netmap holds all N peers. */
	s->reopen = calloc((size_t)n, sizeof(int));
	s->retry = s->reopen != NULL;
	while (s->full_count < n && !s->failed) {
		while (s->n_reopen)
			stream_open(&s->nodes[s->reopen[--s->n_reopen]]);
		while (next < n && next - s->full_count < window)
			stream_open(&s->nodes[next++]);
		uv_run(s->loop, UV_RUN_ONCE);
	}
	s->retry = 0;
	if (s->failed) {
		fprintf(stderr, "nodesim: %d streams failed\n", s->failed);
		return 1;
	}
	printf("%d streams open with full netmaps in %.1f s (%d connections retried)\n", n,
	       now_s() - t0, s->retries);
	fflush(stdout);
	return 0;
}

/* changes endpoint posts to the first instance, one after the other, each timed until
 * every other node has it (and the nodes of each instance). */
static int bench_changes(struct sim *s, int changes)
{
	s->latencies = calloc((size_t)changes, sizeof(double));
	for (int i = 0; i < s->n_inst; i++)
		s->inst_lat[i] = calloc((size_t)changes, sizeof(double));
	for (int c = 0; c < changes; c++) {
		struct poster *p = calloc(1, sizeof(*p));
		int who = (int)((unsigned)rand() % (unsigned)s->n);
		p->s = s;
		s->changer = who;
		s->change_seq = 10000 + c;
		s->change_seen = 0;
		memset(s->inst_seen, 0, sizeof(s->inst_seen));
		snprintf(p->body, sizeof(p->body), "{\"endpoints\":[\"192.0.2.%d:%d\"]}", 1 + c % 250,
			 s->change_seq);
		snprintf(p->auth, sizeof(p->auth), "Authorization: Bearer %s", s->nodes[who].token);
		s->change_t0 = now_s();
		tls_connect(s->loop, s->tls, s->urls.urls[0].host, s->urls.urls[0].port, post_connected, p,
			    NULL);
		uv_timer_init(s->loop, &s->timer);
		s->timer.data = s;
		uv_timer_start(&s->timer, on_deadline, 60000, 0);
		uv_run(s->loop, UV_RUN_DEFAULT);
		uv_timer_stop(&s->timer);
		if (s->failed)
			return 1;
	}
	return 0;
}

/* One line per instance (only with several): its nodes' times, its CPU and memory, and
 * its store and feed counters over the change phase, per change. */
static void bench_report_instances(struct sim *s, int changes, const struct bench_sample *a,
				   const struct bench_sample *b)
{
	for (int i = 0; i < s->n_inst; i++) {
		double p50, p99, max;
		percentiles(s->inst_lat[i], changes, &p50, &p99, &max);
		printf("INSTANCE i=%d url=%s nodes=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f "
		       "cpu_ms_per_change=%.2f rss_mib=%.1f", i, s->urls.base[i], s->inst_nodes[i],
		       p50 * 1000, p99 * 1000, max * 1000, (b->cpu[i] - a->cpu[i]) * 1000 / changes,
		       (double)b->rss[i] / 1024);
		if (a->have_m[i] && b->have_m[i])
			printf(" store_statements_per_change=%.1f store_ms_per_change=%.2f "
			       "feed_poll_ms_per_change=%.2f feed_applied_per_change=%.2f feed_lag_changes=%.0f",
			       (b->m[i][0] - a->m[i][0]) / changes, (b->m[i][1] - a->m[i][1]) * 1000 / changes,
			       (b->m[i][2] - a->m[i][2]) * 1000 / changes, (b->m[i][3] - a->m[i][3]) / changes,
			       b->m[i][4]);
		printf("\n");
	}
}

static int cmd_bench(int n, int changes, const char *pids, const char *metrics, int workers)
{
	struct bench_sample before, opened, after;
	struct sim s;
	struct rlimit rl;
	double p50, p99, max;

	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (sim_init(&s, n, 1))
		return 1;
	bench_sample_take(pids, NULL, &before);
	if (bench_setup(&s, n, workers))
		return 1;
	bench_sample_take(pids, metrics, &opened);
	if (bench_changes(&s, changes))
		return 1;
	bench_sample_take(pids, metrics, &after);
	percentiles(s.latencies, changes, &p50, &p99, &max);
	printf("RESULT nodes=%d changes=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f coord_cpu_ms_per_change=%.2f "
	       "coord_rss_mib=%.1f rss_kib_per_node=%.1f\n",
	       n, changes, p50 * 1000, p99 * 1000, max * 1000,
	       pids ? (sum_cpu(&after) - sum_cpu(&opened)) * 1000 / changes : 0.0,
	       (double)sum_rss(&opened) / 1024, pids ? (double)(sum_rss(&opened) - sum_rss(&before)) / n : 0.0);
	if (s.n_inst > 1)
		bench_report_instances(&s, changes, &opened, &after);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	const char *timeout = "30", *lines = NULL, *until = NULL, *nodes = "100", *changes = "20";
	const char *coord_pid = NULL, *workers = "2", *metrics = NULL;
	const struct arg_opt opts[] = {
		{ "coord", &coord_url, NULL, 0 }, { "pin", &pin, NULL, 0 },
		{ "auth-key", &auth_key, NULL, 0 }, { "hostname", &hostname, NULL, 0 },
		{ "state", &state_dir, NULL, 0 }, { "timeout", &timeout, NULL, 0 },
		{ "lines", &lines, NULL, 0 }, { "until", &until, NULL, 0 },
		{ "nodes", &nodes, NULL, 0 }, { "changes", &changes, NULL, 0 },
		{ "coord-pid", &coord_pid, NULL, 0 }, { "workers", &workers, NULL, 0 },
		{ "metrics", &metrics, NULL, 0 }, { "compress", NULL, &compress, 0 },
		{ NULL, NULL, NULL, 0 },
	};
	char *w[20], err[200], token[COORD_TOKEN_MAX];
	int n;

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_WARN);
	n = args_parse(argc - 1, argv + 1, opts, w, 20, err, sizeof(err));
	if (n < 1 || !coord_url || keys_init()) {
		fprintf(stderr, "usage: nodesim register|stream|endpoints|logout|bench --coord URL --pin PIN "
			"[--state DIR] [--auth-key K] [--hostname H] [--until TEXT] [--lines N] "
			"[--timeout S] [--compress] [--nodes N --changes M --coord-pid PID[,PID...] [--metrics HOST:PORT[,...]]]\n"
			"bench: --coord URL[,URL...] spreads the nodes over several instances\n%s\n", n < 0 ? err : "");
		return 2;
	}
	if (!strcmp(w[0], "bench"))
		return cmd_bench(atoi(nodes), atoi(changes), coord_pid, metrics, atoi(workers));
	if (!state_dir) {
		fprintf(stderr, "nodesim: --state DIR is needed\n");
		return 2;
	}
	mkdir(state_dir, 0700);
	if (!strcmp(w[0], "register")) {
		if (do_register(state_dir, hostname, auth_key, token, sizeof(token), 1))
			return 1;
		return save_token(state_dir, token);
	}
	if (!strcmp(w[0], "replay")) {
		/* Sends a saved registration body again (replay protection test). */
		FILE *f = fopen(getenv("NODESIM_REPLAY") ? getenv("NODESIM_REPLAY") : "", "r");
		char buf[4096];
		size_t len;
		json_t *body, *ans = NULL;
		int status = 0;
		if (!f)
			return 1;
		len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = 0;
		body = json_loads(buf, 0, NULL);
		if (!body || post_json(COORD_PATH_REGISTER, NULL, body, &status, &ans))
			return 1;
		printf("%d\n", status);
		json_decref(body);
		json_decref(ans);
		return 0;
	}
	if (load_token(state_dir, token, sizeof(token)))
		return 1;
	if (!strcmp(w[0], "stream"))
		return cmd_stream(atof(timeout), until, lines ? atol(lines) : 0);
	if (!strcmp(w[0], "endpoints") || !strcmp(w[0], "logout")) {
		json_t *body = json_object(), *eps = json_array(), *ans = NULL;
		int status = 0;
		for (int i = 1; i < n; i++)
			json_array_append_new(eps, json_string(w[i]));
		json_object_set_new(body, "endpoints", eps);
		if (post_json(!strcmp(w[0], "logout") ? COORD_PATH_LOGOUT : COORD_PATH_ENDPOINTS, token,
			      body, &status, &ans))
			return 1;
		json_decref(body);
		json_decref(ans);
		printf("%d\n", status);
		return status == 200 ? 0 : 1;
	}
	fprintf(stderr, "nodesim: unknown command '%s'\n", w[0]);
	return 2;
}
