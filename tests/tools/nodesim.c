/* nodesim.c - a stand-in node for tests and benchmarks: registers with coord over TLS
 * (the real signed-challenge protocol), holds netmap streams, posts endpoints, and in
 * `bench` mode simulates thousands of nodes to time how fast a change reaches them all.
 * bench takes `--coord URL1,URL2,...` (several instances on one database): node i
 * registers with and streams from URL[i % n], every change is posted to the first, and
 * the time until the nodes of each instance have it is kept per instance. `--storm I`
 * then kills instance I with SIGKILL while every node holds its stream and times the
 * reconnect storm: the nodes come back as vpnd would (the next instance at once, else
 * jittered backoff, a 503's Retry-After) and resume with the last "v" and "epoch" they
 * saw unless --no-resume; see bench_storm. With `--compress`
 * the streams ask for z frames (lib/zlines.c) and read them unpacked. */
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

#include <sodium.h>

#include "meshvpn/args.h"
#include "meshvpn/backoff.h"
#include "meshvpn/coord_proto.h"
#include "meshvpn/coord_urls.h"
#include "meshvpn/http.h"
#include "meshvpn/json.h"
#include "meshvpn/keys.h"
#include "meshvpn/log.h"
#include "meshvpn/tls.h"
#include "storm_stats.h"
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
	/* Line scanner: only the start of each line is kept, and whole short lines; line_len
	 * counts the whole line, and the tail keeps the end of a long one. */
	char line[1024];
	size_t line_len;
	int line_overflow;
	char tail[64];
	struct simz *z;         /* --compress: whole lines, and the frame being gathered */
	uint64_t lines;
	int done;
	size_t full_len;        /* bytes of the first full netmap it received */
	/* Resume: the last "v" seen on any line, the epoch of the last full or resume. */
	long long v;
	int have_v;
	char epoch[17];
	/* Storm: vpnd's reconnecting (see storm_schedule) and whether it is current. */
	double get_t;           /* when this stream's GET was sent */
	int synced;             /* this stream brought its full or resume */
	int current, lost;
	int first_map;          /* the first map after the kill: 1 full, 2 resume */
	uint64_t backoff_ms;
	unsigned failed_mask;   /* instances failed since the last whole line */
	int retry_after_s;
	uv_timer_t retry;
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
	/* storm (bench_storm) */
	int storm, no_resume, storm_over;
	int n_current, n_lost, n_full, n_resume, nodes_full, nodes_resume;
	int conn_refused, hs_failed, ended_early, http_503, http_other, posts_failed;
	int poster, post_busy;
	double t_kill, t_all;
	struct storm_stats st;
	uv_timer_t post_timer, grace_timer, deadline_timer;
};

static void stream_open(struct simnode *sn);
static void storm_line(struct simnode *sn, const char *line, int truncated);
static void storm_stream_lost(struct simnode *sn);

/* Remembers the line's "v" and, on a full or resume, its "epoch" (what a reconnect
 * resumes from); a long line's end is in the tail ring. */
static void note_version(struct simnode *sn, const char *line, size_t len, int truncated)
{
	size_t head = sizeof(sn->line) - 1, n = 0;
	char tail[sizeof(sn->tail) + 1];

	if (truncated && len > head) {
		n = len - head < sizeof(sn->tail) ? len - head : sizeof(sn->tail);
		for (size_t i = 0; i < n; i++)
			tail[i] = sn->tail[(len - n + i) % sizeof(sn->tail)];
	}
	tail[n] = 0;
	if (storm_line_version(line, n ? tail : NULL, &sn->v, sn->epoch) & STORM_LINE_V)
		sn->have_v = 1;
}

static void handle_line(struct simnode *sn, const char *line, size_t len, int truncated)
{
	struct sim *s = sn->sim;

	sn->lines++;
	note_version(sn, line, len, truncated);
	if (s->storm)
		storm_line(sn, line, truncated);
	if (!strncmp(line, "{\"type\":\"full\"", 14) && !sn->got_full) {
		sn->got_full = 1;
		sn->full_len = len;
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
		if (sn->line_len < sizeof(sn->line) - 1) {
			sn->line[sn->line_len] = (char)p[i];
		} else {
			sn->line_overflow = 1;
			sn->tail[sn->line_len % sizeof(sn->tail)] = (char)p[i];
		}
		sn->line_len++;
	}
}

static void on_response(const struct http_response *resp, void *arg)
{
	struct simnode *sn = arg;

	sn->status = resp->status;
	if (sn->sim->storm && resp->status != 200) {
		const char *ra = http_response_header(resp, "Retry-After");
		sn->sim->http_503 += resp->status == 503;
		sn->sim->http_other += resp->status != 503;
		sn->retry_after_s = resp->status == 503 && ra ? atoi(ra) : 0;
	} else if (resp->status != 200) {
		fprintf(stderr, "nodesim: stream refused with HTTP %d\n", resp->status);
		sn->sim->failed++;
	}
}

static void on_done(int status, void *arg)
{
	struct simnode *sn = arg;

	sn->cl = NULL;
	if (sn->sim->storm) {
		storm_stream_lost(sn);
		return;
	}
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
	char auth[160], path[128];
	const char *headers[2] = { auth, NULL };

	if ((status < 0 || !c) && sn->sim->storm) {
		sn->sim->conn_refused += status == -ECONNREFUSED;
		sn->sim->hs_failed += status != -ECONNREFUSED;
		storm_stream_lost(sn);
		return;
	}
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
	/* Resume from what it last saw, as vpnd does, when it has both parts. */
	if (!sn->sim->no_resume && sn->have_v && sn->epoch[0])
		snprintf(path, sizeof(path), "%s?since=%lld&epoch=%s%s", COORD_PATH_MAP, sn->v, sn->epoch,
			 sn->z ? "&" ZLINES_QUERY : "");
	else
		snprintf(path, sizeof(path), "%s%s", COORD_PATH_MAP, sn->z ? "?" ZLINES_QUERY : "");
	sn->get_t = now_s();
	if (http_client_start(c, "GET", sn->sim->urls.urls[sn->inst].host, path, headers,
			      NULL, 0, &cbs, sn, &sn->cl)) {
		if (sn->sim->storm) {
			storm_stream_lost(sn);
			return;
		}
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
	sn->synced = 0;
	sn->status = 0;
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
		if (s->storm) {
			s->hs_failed++;
			storm_stream_lost(sn);
			return;
		}
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
	"coord_feed_applied_total", "coord_feed_lag_changes", "coord_netmap_bytes_sent_total",
};
#define BENCH_BYTES_SENT 5
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

/* --- storm: an instance is killed under every node's stream --- */

#define STORM_EP_IP      "198.51.100.1:" /* the poster's endpoints during the storm */
#define STORM_PORT0      20000
#define STORM_POST_MS    250
#define STORM_GRACE_S    5.0             /* for the last deltas in flight after all are current */
#define SIM_BACKOFF_MIN_MS 1000          /* vpnd's CC_BACKOFF_MIN_MS / _MAX_MS */
#define SIM_BACKOFF_MAX_MS 30000

static void storm_all_current(struct sim *s);

/* A line on a node's stream during the storm. A node is current once the stream it
 * opened after losing the old one brought a full or resume line (one that kept its
 * stream stays current). */
static void storm_line(struct simnode *sn, const char *line, int truncated)
{
	struct sim *s = sn->sim;
	int full = !strncmp(line, "{\"type\":\"full\"", 14);
	const char *p;

	/* Something whole arrived: the instance works (vpnd: backoff and round reset). */
	sn->backoff_ms = SIM_BACKOFF_MIN_MS;
	sn->failed_mask = 0;
	if (full || !strncmp(line, "{\"type\":\"resume\"", 16)) {
		s->n_full += full;
		s->n_resume += !full;
		if (!sn->first_map) {
			sn->first_map = full ? 1 : 2;
			s->nodes_full += full;
			s->nodes_resume += !full;
		}
		sn->synced = 1;
		storm_stats_snapshot(&s->st, sn->idx, sn->get_t, now_s());
		if (!sn->current) {
			sn->current = 1;
			storm_stats_current(&s->st, sn->idx, 1, now_s());
			if (++s->n_current == s->n && !s->t_all)
				storm_all_current(s);
		}
		return;
	}
	if (!truncated && !strncmp(line, "{\"type\":\"endpoints\"", 19) &&
	    (p = strstr(line, STORM_EP_IP)) != NULL)
		storm_stats_delta(&s->st, sn->idx, atoi(p + strlen(STORM_EP_IP)) - STORM_PORT0, now_s());
}

static void storm_retry(uv_timer_t *t)
{
	struct simnode *sn = t->data;

	if (!sn->sim->storm_over)
		stream_open(sn);
}

/* When and where a node tries again, as vpnd's line_stream with lib/coord_urls.h: a 503
 * with Retry-After S: that instance after S s plus 0..S/2; else the next instance at
 * once, unless it failed too since the last whole line: then the jittered backoff. */
static void storm_schedule(struct simnode *sn)
{
	struct sim *s = sn->sim;
	uint64_t delay;

	if (sn->status == 503 && sn->retry_after_s > 0) {
		uint32_t ms = (uint32_t)sn->retry_after_s * 1000;
		delay = ms + randombytes_uniform(ms / 2 + 1);
	} else {
		sn->failed_mask |= 1u << sn->inst;
		sn->inst = (sn->inst + 1) % s->n_inst;
		delay = sn->failed_mask & (1u << sn->inst) ?
			backoff_next(&sn->backoff_ms, SIM_BACKOFF_MAX_MS) : 0;
	}
	sn->retry_after_s = 0;
	uv_timer_start(&sn->retry, storm_retry, delay, 0);
}

/* The node's stream or its attempt ended (counted by the caller when it failed early). */
static void storm_stream_lost(struct simnode *sn)
{
	struct sim *s = sn->sim;

	sn->cl = NULL;
	if (sn->status == 200 && !sn->synced)
		s->ended_early++;
	if (sn->current) {
		sn->current = 0;
		s->n_current--;
		storm_stats_current(&s->st, sn->idx, 0, now_s());
	}
	if (!sn->lost) {
		sn->lost = 1;
		s->n_lost++;
	}
	storm_schedule(sn);
}

/* The poster: one endpoint change every STORM_POST_MS, one at a time (so that coord
 * applies them in order), to the instance the poster streams from. */
struct storm_poster {
	struct sim *s;
	int k, status;
	char body[96], auth[160];
	struct http_client *cl;
};

static void storm_post_end(struct storm_poster *p, int ok)
{
	storm_stats_answered(&p->s->st, p->k, ok, now_s());
	p->s->posts_failed += !ok;
	p->s->post_busy = 0;
	free(p);
}

static void storm_post_response(const struct http_response *resp, void *arg)
{
	((struct storm_poster *)arg)->status = resp->status;
}

static void storm_post_done(int status, void *arg)
{
	struct storm_poster *p = arg;

	storm_post_end(p, !status && p->status == 200);
}

static void storm_post_connected(struct conn *c, int status, void *arg)
{
	static const struct http_client_cbs cbs = { storm_post_response, NULL, storm_post_done };
	struct storm_poster *p = arg;
	const char *headers[3] = { p->auth, "Content-Type: application/json", NULL };
	const struct simnode *sn = &p->s->nodes[p->s->poster];

	if (status < 0 || !c) {
		storm_post_end(p, 0);
		return;
	}
	if (http_client_start(c, "POST", p->s->urls.urls[sn->inst].host, COORD_PATH_ENDPOINTS, headers,
			      p->body, strlen(p->body), &cbs, p, &p->cl))
		storm_post_end(p, 0);
}

static void storm_post_tick(uv_timer_t *t)
{
	struct sim *s = t->data;
	const struct simnode *sn = &s->nodes[s->poster];
	struct storm_poster *p;

	if (s->post_busy || s->t_all)
		return;
	p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->s = s;
	p->k = storm_stats_post(&s->st, now_s());
	if (p->k < 0) {
		free(p);
		return;
	}
	snprintf(p->body, sizeof(p->body), "{\"endpoints\":[\"" STORM_EP_IP "%d\"]}", STORM_PORT0 + p->k);
	snprintf(p->auth, sizeof(p->auth), "Authorization: Bearer %s", sn->token);
	s->post_busy = 1;
	if (tls_connect(s->loop, s->tls, s->urls.urls[sn->inst].host, s->urls.urls[sn->inst].port,
			storm_post_connected, p, NULL))
		storm_post_end(p, 0);
}

/* After every node is current: no more posts; the loop ends once the last answered
 * change has reached every node by a delta or STORM_GRACE_S passed. */
static void storm_grace_tick(uv_timer_t *t)
{
	struct sim *s = t->data;
	int last = -1, behind = 0;

	for (int c = s->st.n_posts - 1; c >= 0 && last < 0; c--)
		if (s->st.state[c] == STORM_POST_OK)
			last = c;
	/* behind: it waits for a delta (a full or resume no delta followed may hold it) */
	for (int i = 0; i < s->n && last >= 0; i++) {
		const struct storm_node *n = &s->st.nodes[i];
		behind += i != s->poster && n->level < last && (n->cand < last || n->delta_since);
	}
	if ((!s->post_busy && !behind) || now_s() - s->t_all >= STORM_GRACE_S) {
		uv_timer_stop(t);
		uv_stop(s->loop);
	}
}

static void storm_all_current(struct sim *s)
{
	s->t_all = now_s();
	uv_timer_stop(&s->post_timer);
	uv_timer_start(&s->grace_timer, storm_grace_tick, 100, 100);
}

static void on_storm_deadline(uv_timer_t *t)
{
	struct sim *s = t->data;

	uv_stop(s->loop);
}

/* Kills instance kill_i and runs until every node is current again (or deadline_s). */
static int storm_run(struct sim *s, pid_t victim, int kill_i, double deadline_s)
{
	for (int i = 0; i < s->n; i++) {
		struct simnode *sn = &s->nodes[i];
		uv_timer_init(s->loop, &sn->retry);
		sn->retry.data = sn;
		sn->backoff_ms = SIM_BACKOFF_MIN_MS;
		sn->failed_mask = 0;
		sn->synced = 1;   /* the stream it holds brought its full netmap at setup */
		/* its stream is about to go: not current until a new one brings its map */
		sn->current = sn->inst != kill_i;
		s->n_current += sn->current;
		storm_stats_current(&s->st, i, sn->current, now_s());
	}
	uv_timer_init(s->loop, &s->post_timer);
	uv_timer_init(s->loop, &s->grace_timer);
	uv_timer_init(s->loop, &s->deadline_timer);
	s->post_timer.data = s->grace_timer.data = s->deadline_timer.data = s;
	s->storm = 1;
	uv_update_time(s->loop);
	if (kill(victim, SIGKILL)) {
		fprintf(stderr, "nodesim: cannot kill %d: %s\n", (int)victim, strerror(errno));
		return 1;
	}
	s->t_kill = now_s();
	printf("STORM killed instance %d (pid %d)\n", kill_i, (int)victim);
	fflush(stdout);
	uv_timer_start(&s->post_timer, storm_post_tick, 0, STORM_POST_MS);
	uv_timer_start(&s->deadline_timer, on_storm_deadline, (uint64_t)(deadline_s * 1000), 0);
	uv_run(s->loop, UV_RUN_DEFAULT);
	uv_timer_stop(&s->deadline_timer);
	uv_timer_stop(&s->post_timer);
	s->storm_over = 1;
	if (!s->t_all) {
		printf("STORM FAILED: %d of %d nodes never became current again within %g s of the kill\n",
		       s->n - s->n_current, s->n, deadline_s);
		fflush(stdout);
		return 1;
	}
	return 0;
}

/* The storm phase: the bytes coord sent meanwhile are the netmap bytes of the instances
 * alive after the kill (coord_netmap_bytes_sent_total; a restarted one counts from 0),
 * set beside what today's protocol sends: one full netmap (the mean a node received at
 * setup) for every node that lost its stream. */
static int bench_storm(struct sim *s, const char *pids, const char *metrics, int kill_i,
		       int restarted, double deadline_s)
{
	char item[SIM_INST_MAX][64];
	struct bench_sample b0, b1;
	double bytes = 0, full = 0, today, p50, p99;
	int have_bytes = 1;

	if (split_list(pids, item, SIM_INST_MAX) <= kill_i || kill_i < 0 || kill_i >= s->n_inst) {
		fprintf(stderr, "nodesim: --storm %d needs that instance's PID in --coord-pid\n", kill_i);
		return 1;
	}
	s->poster = 0;
	for (int i = 0; i < s->n && s->n_inst > 1; i++)
		if (s->nodes[i].inst != kill_i) {
			s->poster = i;   /* one that keeps its stream */
			break;
		}
	if (storm_stats_init(&s->st, s->n, s->poster))
		return 1;
	bench_sample_take(NULL, metrics, &b0);
	if (storm_run(s, (pid_t)atoi(item[kill_i]), kill_i, deadline_s))
		return 1;
	storm_stats_finish(&s->st);
	bench_sample_take(NULL, metrics, &b1);
	for (int i = 0; i < s->n_inst; i++) {
		if (i == kill_i && !restarted)
			continue;
		have_bytes &= b1.have_m[i] && (i == kill_i || b0.have_m[i]);
		bytes += b1.m[i][BENCH_BYTES_SENT] - (i == kill_i ? 0 : b0.m[i][BENCH_BYTES_SENT]);
	}
	for (int i = 0; i < s->n; i++)
		full += (double)s->nodes[i].full_len / s->n;
	today = full * s->n_lost;
	p50 = storm_stats_quantile(&s->st, 0.50);
	p99 = storm_stats_quantile(&s->st, 0.99);
	printf("STORMLIVE samples=%llu p50_ms=%.0f p99_ms=%.0f\n", (unsigned long long)s->st.samples_live,
	       storm_stats_quantile_live(&s->st, 0.50), storm_stats_quantile_live(&s->st, 0.99));
	printf("STORM nodes=%d lost=%d killed=%d restarted=%d current_s=%.1f full=%d resume=%d "
	       "nodes_full=%d nodes_resume=%d bytes=%.0f full_bytes=%.0f today_bytes=%.0f ratio_pct=%.2f posts=%d posts_ok=%d "
	       "samples=%llu p50_ms=%.0f p99_ms=%.0f max_ms=%.0f undelivered=%llu conn_refused=%d "
	       "hs_failed=%d ended_early=%d http_503=%d http_other=%d\n",
	       s->n, s->n_lost, kill_i, restarted, s->t_all - s->t_kill, s->n_full, s->n_resume,
	       s->nodes_full, s->nodes_resume,
	       have_bytes ? bytes : -1.0, full, today, have_bytes && today > 0 ? bytes * 100 / today : -1.0,
	       s->st.n_posts, storm_stats_ok_posts(&s->st), (unsigned long long)s->st.samples, p50, p99,
	       s->st.max_s * 1000, (unsigned long long)storm_stats_undelivered(&s->st), s->conn_refused,
	       s->hs_failed, s->ended_early, s->http_503, s->http_other);
	fflush(stdout);
	storm_stats_free(&s->st);
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

/* The change phase and its RESULT line (and the INSTANCE lines with several). */
static int bench_report_changes(struct sim *s, int n, int changes, const char *pids,
				const char *metrics, const struct bench_sample *before,
				const struct bench_sample *opened)
{
	struct bench_sample after;
	double p50, p99, max;

	if (bench_changes(s, changes))
		return 1;
	bench_sample_take(pids, metrics, &after);
	percentiles(s->latencies, changes, &p50, &p99, &max);
	printf("RESULT nodes=%d changes=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f coord_cpu_ms_per_change=%.2f "
	       "coord_rss_mib=%.1f rss_kib_per_node=%.1f\n",
	       n, changes, p50 * 1000, p99 * 1000, max * 1000,
	       pids ? (sum_cpu(&after) - sum_cpu(opened)) * 1000 / changes : 0.0,
	       (double)sum_rss(opened) / 1024, pids ? (double)(sum_rss(opened) - sum_rss(before)) / n : 0.0);
	if (s->n_inst > 1)
		bench_report_instances(s, changes, opened, &after);
	fflush(stdout);
	return 0;
}

/* --storm I [--storm-restart] [--storm-deadline S]: after the changes (none with
 * --changes 0), kill instance I (-1: no storm); the script restarts it when told so. */
struct storm_opts {
	int kill_i, restarted, no_resume;
	double deadline_s;
};

static int cmd_bench(int n, int changes, const char *pids, const char *metrics, int workers,
		     const struct storm_opts *so)
{
	struct bench_sample before, opened;
	struct sim s;
	struct rlimit rl;
	int rc = 0;

	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (sim_init(&s, n, 1))
		return 1;
	s.no_resume = so->no_resume;
	bench_sample_take(pids, NULL, &before);
	if (bench_setup(&s, n, workers))
		return 1;
	bench_sample_take(pids, metrics, &opened);
	if (changes > 0 && bench_report_changes(&s, n, changes, pids, metrics, &before, &opened))
		rc = 1;
	else if (so->kill_i >= 0)
		rc = bench_storm(&s, pids, metrics, so->kill_i, so->restarted, so->deadline_s);
	/* the buffers of the phases (the nodes stay referenced by the loop until exit) */
	free(s.reopen);
	free(s.latencies);
	for (int i = 0; i < s.n_inst; i++)
		free(s.inst_lat[i]);
	return rc;
}

int main(int argc, char **argv)
{
	const char *timeout = "30", *lines = NULL, *until = NULL, *nodes = "100", *changes = "20";
	const char *coord_pid = NULL, *workers = "2", *metrics = NULL, *storm = NULL;
	const char *storm_deadline = "1200";
	struct storm_opts so = { -1, 0, 0, 0 };
	const struct arg_opt opts[] = {
		{ "coord", &coord_url, NULL, 0 }, { "pin", &pin, NULL, 0 },
		{ "auth-key", &auth_key, NULL, 0 }, { "hostname", &hostname, NULL, 0 },
		{ "state", &state_dir, NULL, 0 }, { "timeout", &timeout, NULL, 0 },
		{ "lines", &lines, NULL, 0 }, { "until", &until, NULL, 0 },
		{ "nodes", &nodes, NULL, 0 }, { "changes", &changes, NULL, 0 },
		{ "coord-pid", &coord_pid, NULL, 0 }, { "workers", &workers, NULL, 0 },
		{ "metrics", &metrics, NULL, 0 }, { "storm", &storm, NULL, 0 },
		{ "storm-restart", NULL, &so.restarted, 0 }, { "no-resume", NULL, &so.no_resume, 0 },
		{ "storm-deadline", &storm_deadline, NULL, 0 }, { "compress", NULL, &compress, 0 },
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
			"[--timeout S] [--compress] [--nodes N --changes M --coord-pid PID[,PID...] [--metrics HOST:PORT[,...]]\n"
			"[--storm I [--storm-restart] [--storm-deadline S]] [--no-resume]]\n"
			"bench: --coord URL[,URL...] spreads the nodes over several instances; --storm I kills\n"
			"instance I (its PID in --coord-pid) and times the reconnect storm\n%s\n", n < 0 ? err : "");
		return 2;
	}
	if (!strcmp(w[0], "bench"))
	{
		so.kill_i = storm ? atoi(storm) : -1;
		so.deadline_s = atof(storm_deadline);
		return cmd_bench(atoi(nodes), atoi(changes), coord_pid, metrics, atoi(workers), &so);
	}
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
