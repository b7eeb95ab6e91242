/* line_stream.c - a client that follows a chunked HTTPS response of lines (GET with a
 * bearer token, TLS 1.2 with an optional pin), reconnected with exponential backoff and
 * jitter, dropped and reconnected when silent or when a line grows past its bound. Given
 * several instances (lib/coord_urls.c; a name's addresses resolved off the loop), a
 * failure moves to the next at once; the backoff waits only after a whole failed round.
 * Used for coord's netmap stream (vpnd) and relay stream (relay): coord_proto.h. Asked
 * for, coord's z frames (lib/zlines.c) are unpacked here: callers see only lines. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/backoff.h"
#include "meshvpn/line_stream.h"
#include "meshvpn/log.h"
#include "meshvpn/tls.h"
#include "meshvpn/zlines.h"

#define WATCHDOG_EVERY_MS 5000
#define LINE_BUF_FIRST 4096

/* ---- line assembly ---- */

static int lb_append(struct line_buf *lb, const uint8_t *p, size_t n)
{
	if (n > lb->max - lb->len) {
		lb->need = lb->len + n;
		return -EMSGSIZE;
	}
	if (lb->len + n + 1 > lb->cap) {
		size_t cap = lb->cap ? lb->cap : LINE_BUF_FIRST;
		char *nl;

		while (cap < lb->len + n + 1)
			cap *= 2;
		nl = realloc(lb->line, cap);
		if (!nl) {
			lb->need = lb->len + n;
			return -ENOMEM;
		}
		lb->line = nl;
		lb->cap = cap;
	}
	memcpy(lb->line + lb->len, p, n);
	lb->len += n;
	lb->line[lb->len] = 0;
	return 0;
}

int line_buf_take(struct line_buf *lb, const uint8_t *p, size_t len, size_t *used)
{
	const uint8_t *nl = memchr(p, '\n', len);
	size_t n = nl ? (size_t)(nl - p) : len;
	int rc = lb_append(lb, p, n);

	*used = rc ? 0 : n + (nl != NULL);
	return rc ? rc : nl != NULL;
}

int line_buf_feed(struct line_buf *lb, const uint8_t *p, size_t len, line_buf_cb cb, void *arg)
{
	while (len) {
		size_t used;
		int rc = line_buf_take(lb, p, len, &used);

		if (rc <= 0)
			return rc;
		p += used;
		len -= used;
		if (lb->len && cb(lb->line, lb->len, arg))
			return 1;
		lb->len = 0;
	}
	return 0;
}

void line_buf_reset(struct line_buf *lb)
{
	lb->len = 0;
}

void line_buf_free(struct line_buf *lb)
{
	free(lb->line);
	lb->line = NULL;
	lb->cap = lb->len = 0;
}

/* ---- the stream ---- */

static void ls_schedule(struct line_stream *ls);
static void ls_connect(struct line_stream *ls);

/* A name being resolved: the stream may drop or close meanwhile (ls NULL then). */
struct ls_resolve {
	uv_getaddrinfo_t req;
	struct line_stream *ls;
};

#define RESOLVE_MAX 16   /* addresses taken from one name */

/* "<a><b>" for a log message: the caller names the stream and its server. */
static const char *words(char *buf, size_t size, const char *a, const char *b)
{
	snprintf(buf, size, "%s%s", a, b);
	return buf;
}

int line_stream_init(struct line_stream *ls, uv_loop_t *loop, const struct line_stream_opts *opts)
{
	if (!opts->path || opts->path[0] != '/' || !opts->what || !opts->peer ||
	    !opts->idle_timeout_ms || !opts->backoff_min_ms ||
	    opts->backoff_min_ms > opts->backoff_max_ms ||
	    (opts->compress && opts->max_line < ZLINES_HEADER_MAX))
		return -EINVAL;
	memset(ls, 0, sizeof(*ls));
	if (opts->compress) {
		ls->z = malloc(sizeof(*ls->z));
		if (!ls->z)
			return -ENOMEM;
		zlines_reader_init(ls->z, opts->max_line);
	}
	ls->loop = loop;
	ls->o = *opts;
	ls->buf.max = opts->max_line;
	ls->backoff_ms = opts->backoff_min_ms;
	uv_timer_init(loop, &ls->retry);
	uv_timer_init(loop, &ls->watchdog);
	ls->retry.data = ls;
	ls->watchdog.data = ls;
	return 0;
}

unsigned line_stream_retry_after(const char *value)
{
	unsigned long v = 0;

	/* delta-seconds (RFC 9110 10.2.3); an HTTP-date is not worth a clock comparison:
	 * the normal backoff then. */
	if (!value)
		return 0;
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value < '0' || *value > '9')
		return 0;
	for (; *value >= '0' && *value <= '9'; value++)
		if ((v = v * 10 + (unsigned long)(*value - '0')) > LINE_STREAM_RETRY_AFTER_MAX)
			v = LINE_STREAM_RETRY_AFTER_MAX;
	while (*value == ' ' || *value == '\t')
		value++;
	return *value ? 0 : (unsigned)v;
}

uint64_t line_stream_next_delay(struct line_stream *ls)
{
	return backoff_next(&ls->backoff_ms, ls->o.backoff_max_ms);
}

/* Drops whatever is open or in flight; stale callbacks see the new generation. */
static void ls_drop(struct line_stream *ls)
{
	ls->gen++;
	if (ls->resolving) {
		ls->resolving->ls = NULL;   /* its answer is dropped when it comes */
		uv_cancel((uv_req_t *)&ls->resolving->req);
		ls->resolving = NULL;
	}
	if (ls->attempt) {
		conn_connect_cancel(ls->attempt);   /* its callback will not run */
		ls->attempt = NULL;
	}
	if (ls->cl) {
		http_client_cancel(ls->cl);
		ls->cl = NULL;
	}
	ls->connected = 0;
	ls->http_status = 0;
	ls->retry_after_s = 0;
	ls->had_line = 0;
	line_buf_reset(&ls->buf);
	if (ls->z)
		zlines_reader_reset(ls->z);
	uv_timer_stop(&ls->watchdog);
}

/* A stream that worked and is lost is most likely lost together with every other
 * node's: coord restarted, failed over or its network blinked. Were the first retry due
 * at once (another instance) or within the backoff's jitter (0.75..1.25 of 1 s for
 * vpnd: a 500 ms window), 10,000 nodes would hit coord within half a second, each
 * asking for a full netmap, and the handshakes past what coord can take would time out
 * and be retried. A random 0..spread_ms (2 s) on top spreads them over a window that
 * does not shrink as the fleet grows; more than the window is coord's to ask for
 * (Retry-After). The failed connects that may follow keep the spread (their backoff
 * runs from it, with its own jitter), so only this first retry needs it. */
static void ls_lost(struct line_stream *ls, int err)
{
	ls->spread_next = ls->had_line;
	ls_drop(ls);
	if (ls->o.on_event)
		ls->o.on_event(ls, LINE_STREAM_LOST, err, ls->o.arg);
	ls_schedule(ls);
}

static int on_whole_line(const char *line, size_t len, void *arg)
{
	struct line_stream *ls = arg;
	unsigned gen = ls->gen;

	/* Something whole arrived: the server is really there. */
	ls->backoff_ms = ls->o.backoff_min_ms;
	ls->had_line = 1;
	coord_urls_ok(&ls->urls);
	ls->o.on_line(ls, line, len, ls->o.arg);
	return gen != ls->gen;   /* the line stopped or restarted the stream */
}

static void on_body(const uint8_t *p, size_t len, void *arg)
{
	struct line_stream *ls = arg;
	char msg[96];
	int rc;

	ls->last_rx_ms = uv_now(ls->loop);
	if (ls->http_status != 200)
		return;   /* an error body: on_done reports the status */
	rc = ls->z ? zlines_feed(ls->z, &ls->buf, p, len, on_whole_line, ls)
		   : line_buf_feed(&ls->buf, p, len, on_whole_line, ls);
	if (rc == -EBADMSG) {
		log_error(words(msg, sizeof(msg), ls->o.what, " compressed frame unreadable"), "%s=%s",
			  ls->o.peer, ls->url.host);
		ls_lost(ls, rc);
	} else if (rc < 0) {
		log_error(words(msg, sizeof(msg), ls->o.what, " line too long or out of memory"),
			  "bytes=%zu error=\"%s\"", ls->buf.need, strerror(-rc));
		ls_lost(ls, rc);
	}
}

static void on_response(const struct http_response *resp, void *arg)
{
	struct line_stream *ls = arg;
	char msg[96];

	ls->http_status = resp->status;
	if (resp->status == 503 || resp->status == 429)
		ls->retry_after_s = line_stream_retry_after(http_response_header(resp, "Retry-After"));
	if (resp->status == 200) {
		ls->connected = 1;
		log_info(words(msg, sizeof(msg), ls->o.what, " stream open"), "%s=%s", ls->o.peer,
			 ls->url.host);
		if (ls->o.on_event)
			ls->o.on_event(ls, LINE_STREAM_CONNECTED, 200, ls->o.arg);
	}
}

static void on_retry(uv_timer_t *t);

/* The server is overloaded and said when to come back: S s, plus 0..S/2 so that the
 * clients it turned away together do not return together. */
static void ls_retry_after(struct line_stream *ls, unsigned s)
{
	uint64_t delay = (uint64_t)s * 1000 + randombytes_uniform(s * 500 + 1);
	char msg[96];

	if (!ls->active || ls->closing)
		return;
	log_info(words(msg, sizeof(msg), ls->o.peer, " overloaded, retrying later"),
		 "%s=%s retry_after=%u in_ms=%llu", ls->o.peer, ls->url.host, s,
		 (unsigned long long)delay);
	uv_timer_start(&ls->retry, on_retry, delay, 0);
}

static void on_done(int status, void *arg)
{
	struct line_stream *ls = arg;
	int http = ls->http_status;
	unsigned retry_after = ls->retry_after_s;
	char msg[96], closed[64];

	ls->cl = NULL;
	if (http && http != 200) {
		ls_drop(ls);
		log_warn(words(msg, sizeof(msg), ls->o.what, " stream refused"), "%s=%s status=%d",
			 ls->o.peer, ls->url.host, http);
		if (http == 401 || http == 403)
			ls->active = 0;
		else if (retry_after)
			ls_retry_after(ls, retry_after);
		else
			ls_schedule(ls);
		if (ls->o.on_event)
			ls->o.on_event(ls, LINE_STREAM_REFUSED, http, ls->o.arg);
		return;
	}
	log_warn(words(msg, sizeof(msg), ls->o.what, " stream ended"), "%s=%s error=\"%s\"",
		 ls->o.peer, ls->url.host,
		 status ? strerror(-status) : words(closed, sizeof(closed), "closed by ", ls->o.peer));
	ls_lost(ls, status ? status : -ECONNRESET);
}

/* The request target: the path, the caller's query, and the ask for compression. */
/* The request target: the path, then the query set (line_stream_set_query), the one the
 * query callback gives for this connect (the version a client resumes from), and
 * ZLINES_QUERY when compressed. -ENAMETOOLONG past size. */
static int ls_target(const struct line_stream *ls, char *out, size_t size)
{
	char dyn[LINE_STREAM_QUERY_MAX] = "";
	const char *parts[3] = { ls->query, dyn, ls->z ? ZLINES_QUERY : "" };
	size_t len;
	int n, first = 1;

	if (ls->o.query && ls->o.query(dyn, sizeof(dyn), ls->o.arg))
		dyn[0] = 0;
	n = snprintf(out, size, "%s", ls->o.path);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	len = (size_t)n;
	for (int i = 0; i < 3; i++) {
		if (!parts[i][0])
			continue;
		n = snprintf(out + len, size - len, "%c%s", first ? '?' : '&', parts[i]);
		if (n < 0 || (size_t)n >= size - len)
			return -ENAMETOOLONG;
		len += (size_t)n;
		first = 0;
	}
	return 0;
}

int line_stream_set_query(struct line_stream *ls, const char *query)
{
	size_t len = query ? strlen(query) : 0;

	if (len >= sizeof(ls->query))
		return -E2BIG;
	for (size_t i = 0; i < len; i++)
		if (query[i] < '!' || query[i] > '~' || query[i] == '#')
			return -EINVAL;
	memcpy(ls->query, query ? query : "", len);
	ls->query[len] = 0;
	return 0;
}

static void on_connected(struct conn *c, int status, void *arg)
{
	static const struct http_client_cbs cbs = { on_response, on_body, on_done };
	struct line_stream *ls = arg;
	char auth[LINE_STREAM_TOKEN_MAX + 32], msg[96], target[1024];
	const char *headers[3] = { auth, "Accept: application/x-ndjson", NULL };
	int rc;

	ls->attempt = NULL;
	if (status < 0 || !c) {
		log_warn(words(msg, sizeof(msg), "cannot reach ", ls->o.peer),
			 "%s=%s port=%u error=\"%s\"", ls->o.peer, ls->url.host, ls->url.port,
			 status == -EPERM ? "certificate does not match the pin" : strerror(-status));
		ls_lost(ls, status < 0 ? status : -EIO);
		return;
	}
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ls->token);
	ls->last_rx_ms = uv_now(ls->loop);
	rc = ls_target(ls, target, sizeof(target));
	if (!rc)
		rc = http_client_start(c, "GET", ls->url.host, target, headers, NULL, 0, &cbs, ls,
				       &ls->cl);
	else
		conn_close(c);
	sodium_memzero(auth, sizeof(auth));
	if (rc) {
		ls->cl = NULL;
		ls_lost(ls, rc);
		return;
	}
}

static void on_watchdog(uv_timer_t *t)
{
	struct line_stream *ls = t->data;
	uint64_t idle = uv_now(ls->loop) - ls->last_rx_ms;
	char msg[96];

	if (!ls->cl && !ls->attempt)
		return;
	if (idle >= ls->o.idle_timeout_ms) {
		log_warn(words(msg, sizeof(msg), ls->o.what, " stream silent, reconnecting"),
			 "%s=%s idle_ms=%llu", ls->o.peer, ls->url.host, (unsigned long long)idle);
		ls_lost(ls, -ETIMEDOUT);
	}
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct ls_resolve *r = req->data;
	struct line_stream *ls = r->ls;
	char addrs[RESOLVE_MAX][COORD_URLS_ADDR_MAX], msg[96];
	size_t n = 0;

	for (struct addrinfo *a = status ? NULL : res; a && n < RESOLVE_MAX; a = a->ai_next) {
		addrs[n][0] = 0;
		if (a->ai_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)a->ai_addr, addrs[n], sizeof(addrs[n]));
		else if (a->ai_family == AF_INET6)
			uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, addrs[n], sizeof(addrs[n]));
		n += addrs[n][0] != 0;
	}
	if (!status)
		uv_freeaddrinfo(res);
	free(r);
	if (!ls)
		return;   /* dropped or closed meanwhile */
	ls->resolving = NULL;
	if (!n) {
		log_warn(words(msg, sizeof(msg), "cannot resolve ", ls->o.peer), "%s=%s error=\"%s\"",
			 ls->o.peer, ls->url.host, status ? uv_strerror(status) : "no address");
		ls_drop(ls);
		if (ls->o.on_event)
			ls->o.on_event(ls, LINE_STREAM_LOST, -EHOSTUNREACH, ls->o.arg);
		ls_schedule(ls);
		return;
	}
	coord_urls_expand(&ls->urls, coord_urls_current(&ls->urls)->url,
			  (const char (*)[COORD_URLS_ADDR_MAX])addrs, n);
	ls_connect(ls);
}

/* The current instance is a name: its addresses become the instances (off the loop). */
static int ls_resolve(struct line_stream *ls)
{
	struct ls_resolve *r = calloc(1, sizeof(*r));
	struct addrinfo hints;
	char port[8];
	int rc;

	if (!r)
		return -ENOMEM;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;   /* no AI_ADDRCONFIG: a netns with only lo */
	snprintf(port, sizeof(port), "%u", ls->url.port);
	r->ls = ls;
	r->req.data = r;
	rc = uv_getaddrinfo(ls->loop, &r->req, on_resolved, ls->url.host, port, &hints);
	if (rc) {
		free(r);
		return rc;
	}
	ls->resolving = r;
	return 0;
}

static void ls_connect(struct line_stream *ls)
{
	uint64_t every = ls->o.idle_timeout_ms < WATCHDOG_EVERY_MS ? ls->o.idle_timeout_ms
								    : WATCHDOG_EVERY_MS;
	const struct coord_cand *c;
	char msg[96];
	int rc;

	if (!ls->active || ls->closing)
		return;
	c = coord_urls_current(&ls->urls);
	ls->url = *coord_urls_current_url(&ls->urls);
	if (coord_urls_needs_resolve(&ls->urls, c))
		rc = ls_resolve(ls);
	else
		rc = tls_connect_to(ls->loop, ls->tls, ls->url.host, c->addr[0] ? c->addr : ls->url.host,
				    ls->url.port, on_connected, ls, &ls->attempt);
	if (rc) {
		ls->attempt = NULL;
		log_warn(words(msg, sizeof(msg), "cannot reach ", ls->o.peer), "%s=%s error=\"%s\"",
			 ls->o.peer, ls->url.host, strerror(-rc));
		if (ls->o.on_event)
			ls->o.on_event(ls, LINE_STREAM_LOST, rc, ls->o.arg);
		ls_schedule(ls);
		return;
	}
	/* The watchdog also bounds a connect + handshake that hangs. */
	ls->last_rx_ms = uv_now(ls->loop);
	uv_timer_start(&ls->watchdog, on_watchdog, every, every);
}

static void on_retry(uv_timer_t *t)
{
	ls_connect(t->data);
}

static void ls_schedule(struct line_stream *ls)
{
	uint64_t delay;
	char msg[96], to[COORD_URLS_ORDERED_MAX + 1] = "";

	if (!ls->active || ls->closing)
		return;
	if (coord_urls_fail(&ls->urls)) {
		delay = line_stream_next_delay(ls);
	} else {
		/* Another instance that has not failed yet: no reason to wait. */
		delay = 0;
		coord_urls_current_base(&ls->urls, 1, to, sizeof(to));
		log_info(words(msg, sizeof(msg), "moving to another ", ls->o.peer), "from=%s to=%s",
			 ls->url.host, to);
	}
	if (ls->spread_next) {
		ls->spread_next = 0;
		delay += backoff_spread(ls->o.spread_ms ? ls->o.spread_ms : LINE_STREAM_SPREAD_MS);
	}
	log_info(words(msg, sizeof(msg), "reconnecting to ", ls->o.peer), "%s=%s in_ms=%llu",
		 ls->o.peer, coord_urls_current_url(&ls->urls)->host, (unsigned long long)delay);
	uv_timer_start(&ls->retry, on_retry, delay, 0);
}

int line_stream_start(struct line_stream *ls, const char *url, const char *pin, const char *token)
{
	struct tls_config *tls = NULL;
	struct coord_urls *u;
	int rc;

	if (ls->closing)
		return -ESHUTDOWN;
	u = malloc(sizeof(*u));   /* ~10 KiB: not on the stack of whoever calls */
	if (!u)
		return -ENOMEM;
	rc = coord_urls_parse(url, u, NULL, 0);
	if (rc || strlen(token) >= sizeof(ls->token)) {
		free(u);
		return -EINVAL;
	}
	rc = tls_config_client_new(NULL, pin && *pin ? pin : NULL, &tls);
	if (rc) {
		free(u);
		return rc;
	}
	line_stream_stop(ls);
	ls->tls = tls;
	/* The failover count is the stream's, for metrics: a new list does not reset it. */
	u->moves = ls->urls.moves;
	ls->urls = *u;
	free(u);
	snprintf(ls->token, sizeof(ls->token), "%s", token);
	ls->active = 1;
	ls->backoff_ms = ls->o.backoff_min_ms;
	ls_connect(ls);
	return 0;
}

void line_stream_stop(struct line_stream *ls)
{
	ls->active = 0;
	ls->spread_next = 0;
	ls_drop(ls);
	uv_timer_stop(&ls->retry);
	if (ls->tls) {
		tls_config_free(ls->tls);
		ls->tls = NULL;
	}
	sodium_memzero(ls->token, sizeof(ls->token));
}

void line_stream_close(struct line_stream *ls)
{
	line_stream_stop(ls);
	ls->closing = 1;
	uv_close((uv_handle_t *)&ls->retry, NULL);
	uv_close((uv_handle_t *)&ls->watchdog, NULL);
	line_buf_free(&ls->buf);
	if (ls->z)
		zlines_reader_free(ls->z);
	free(ls->z);
	ls->z = NULL;
}
