/* coordc.c - vpnd's client of coord: the netmap stream (GET /v1/map with the node's
 * bearer token, a chunked body of JSON lines over TLS 1.2 with a pinned key), reconnected
 * with exponential backoff and jitter; and the blocking calls (challenge + register,
 * endpoints, logout) run with http_fetch in libuv's threadpool so the loop never waits.
 * Protocol: meshvpn/coord_proto.h and docs/ARCHITECTURE.md ("Registration", "Netmap"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/json.h"
#include "meshvpn/log.h"
#include "vpnd.h"

#define CALL_TIMEOUT_MS 15000

static void cc_schedule(struct coordc *cc);

int coordc_init(struct coordc *cc, uv_loop_t *loop, cc_line_cb on_line, cc_event_cb on_event,
		void *arg)
{
	memset(cc, 0, sizeof(*cc));
	cc->loop = loop;
	cc->on_line = on_line;
	cc->on_event = on_event;
	cc->arg = arg;
	cc->backoff_ms = CC_BACKOFF_MIN_MS;
	uv_timer_init(loop, &cc->retry);
	uv_timer_init(loop, &cc->watchdog);
	cc->retry.data = cc;
	cc->watchdog.data = cc;
	return 0;
}

uint64_t coordc_next_delay(struct coordc *cc)
{
	/* 0.75 .. 1.25 of the backoff, so that nodes cut off together do not come back
	 * together. */
	uint64_t base = cc->backoff_ms, delay;

	delay = base * 3 / 4 + randombytes_uniform((uint32_t)(base / 2 + 1));
	cc->backoff_ms = base * 2 > CC_BACKOFF_MAX_MS ? CC_BACKOFF_MAX_MS : base * 2;
	return delay;
}

/* Drops whatever is open or in flight; stale callbacks see the new generation. */
static void cc_drop(struct coordc *cc)
{
	cc->gen++;
	if (cc->attempt) {
		conn_connect_cancel(cc->attempt);   /* its callback will not run */
		cc->attempt = NULL;
	}
	if (cc->cl) {
		http_client_cancel(cc->cl);
		cc->cl = NULL;
	}
	cc->connected = 0;
	cc->http_status = 0;
	cc->line_len = 0;
	uv_timer_stop(&cc->watchdog);
}

static void cc_lost(struct coordc *cc, int err)
{
	cc_drop(cc);
	if (cc->on_event)
		cc->on_event(cc, CC_LOST, err, cc->arg);
	cc_schedule(cc);
}

static int cc_push(struct coordc *cc, const uint8_t *p, size_t n)
{
	if (cc->line_len + n > CC_MAX_LINE)
		return -EMSGSIZE;
	if (cc->line_len + n + 1 > cc->line_cap) {
		size_t cap = cc->line_cap ? cc->line_cap : 4096;
		char *nl;

		while (cap < cc->line_len + n + 1)
			cap *= 2;
		nl = realloc(cc->line, cap);
		if (!nl)
			return -ENOMEM;
		cc->line = nl;
		cc->line_cap = cap;
	}
	memcpy(cc->line + cc->line_len, p, n);
	cc->line_len += n;
	cc->line[cc->line_len] = 0;
	return 0;
}

static void on_body(const uint8_t *p, size_t len, void *arg)
{
	struct coordc *cc = arg;
	unsigned gen = cc->gen;
	int rc;

	cc->last_rx_ms = uv_now(cc->loop);
	if (cc->http_status != 200)
		return;   /* an error body: on_done reports the status */
	while (len) {
		const uint8_t *nl = memchr(p, '\n', len);
		size_t n = nl ? (size_t)(nl - p) : len;

		rc = cc_push(cc, p, n);
		if (rc) {
			log_error("netmap line too long or out of memory", "bytes=%zu error=\"%s\"",
				  cc->line_len + n, strerror(-rc));
			cc_lost(cc, rc);
			return;
		}
		if (!nl)
			return;
		p += n + 1;
		len -= n + 1;
		if (cc->line_len) {
			/* Something whole arrived: coord is really there. */
			cc->backoff_ms = CC_BACKOFF_MIN_MS;
			cc->on_line(cc, cc->line, cc->line_len, cc->arg);
			if (gen != cc->gen)
				return;   /* the line stopped or restarted the stream */
		}
		cc->line_len = 0;
	}
}

static void on_response(const struct http_response *resp, void *arg)
{
	struct coordc *cc = arg;

	cc->http_status = resp->status;
	if (resp->status == 200) {
		cc->connected = 1;
		log_info("netmap stream open", "coord=%s", cc->url.host);
		if (cc->on_event)
			cc->on_event(cc, CC_CONNECTED, 200, cc->arg);
	}
}

static void on_done(int status, void *arg)
{
	struct coordc *cc = arg;
	int http = cc->http_status;

	cc->cl = NULL;
	if (http && http != 200) {
		cc_drop(cc);
		log_warn("netmap stream refused", "coord=%s status=%d", cc->url.host, http);
		if (http == 401 || http == 403) {
			cc->active = 0;
		} else {
			cc_schedule(cc);
		}
		if (cc->on_event)
			cc->on_event(cc, CC_REFUSED, http, cc->arg);
		return;
	}
	log_warn("netmap stream ended", "coord=%s error=\"%s\"", cc->url.host,
		 status ? strerror(-status) : "closed by coord");
	cc_lost(cc, status ? status : -ECONNRESET);
}

static void on_connected(struct conn *c, int status, void *arg)
{
	static const struct http_client_cbs cbs = { on_response, on_body, on_done };
	struct coordc *cc = arg;
	char auth[COORD_TOKEN_MAX + 32];
	const char *headers[3] = { auth, "Accept: application/x-ndjson", NULL };
	int rc;

	cc->attempt = NULL;
	if (status < 0 || !c) {
		log_warn("cannot reach coord", "coord=%s port=%u error=\"%s\"", cc->url.host,
			 cc->url.port, status == -EPERM ? "certificate does not match the pin"
							: strerror(-status));
		cc_lost(cc, status < 0 ? status : -EIO);
		return;
	}
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cc->token);
	cc->last_rx_ms = uv_now(cc->loop);
	rc = http_client_start(c, "GET", cc->url.host, COORD_PATH_MAP, headers, NULL, 0, &cbs, cc,
			       &cc->cl);
	sodium_memzero(auth, sizeof(auth));
	if (rc) {
		cc->cl = NULL;
		cc_lost(cc, rc);
		return;
	}
}

static void on_watchdog(uv_timer_t *t)
{
	struct coordc *cc = t->data;

	if (!cc->cl && !cc->attempt)
		return;
	if (uv_now(cc->loop) - cc->last_rx_ms >= CC_IDLE_TIMEOUT_MS) {
		log_warn("netmap stream silent, reconnecting", "coord=%s idle_ms=%llu", cc->url.host,
			 (unsigned long long)(uv_now(cc->loop) - cc->last_rx_ms));
		cc_lost(cc, -ETIMEDOUT);
	}
}

static void cc_connect(struct coordc *cc)
{
	int rc;

	if (!cc->active || cc->closing)
		return;
	rc = tls_connect(cc->loop, cc->tls, cc->url.host, cc->url.port, on_connected, cc,
			 &cc->attempt);
	if (rc) {
		cc->attempt = NULL;
		log_warn("cannot reach coord", "coord=%s error=\"%s\"", cc->url.host, strerror(-rc));
		if (cc->on_event)
			cc->on_event(cc, CC_LOST, rc, cc->arg);
		cc_schedule(cc);
		return;
	}
	/* The watchdog also bounds a connect + handshake that hangs. */
	cc->last_rx_ms = uv_now(cc->loop);
	uv_timer_start(&cc->watchdog, on_watchdog, 5000, 5000);
}

static void on_retry(uv_timer_t *t)
{
	cc_connect(t->data);
}

static void cc_schedule(struct coordc *cc)
{
	uint64_t delay;

	if (!cc->active || cc->closing)
		return;
	delay = coordc_next_delay(cc);
	log_info("reconnecting to coord", "coord=%s in_ms=%llu", cc->url.host,
		 (unsigned long long)delay);
	uv_timer_start(&cc->retry, on_retry, delay, 0);
}

int coordc_start(struct coordc *cc, const char *url, const char *pin, const char *token)
{
	struct tls_config *tls = NULL;
	struct http_url u;
	int rc;

	if (cc->closing)
		return -ESHUTDOWN;
	rc = http_url_parse(url, &u);
	if (rc || u.scheme != HTTP_SCHEME_HTTPS)
		return -EINVAL;
	if (strlen(token) >= sizeof(cc->token))
		return -EINVAL;
	rc = tls_config_client_new(NULL, pin && *pin ? pin : NULL, &tls);
	if (rc)
		return rc;
	coordc_stop(cc);
	cc->tls = tls;
	cc->url = u;
	snprintf(cc->token, sizeof(cc->token), "%s", token);
	cc->active = 1;
	cc->backoff_ms = CC_BACKOFF_MIN_MS;
	cc_connect(cc);
	return 0;
}

void coordc_stop(struct coordc *cc)
{
	cc->active = 0;
	cc_drop(cc);
	uv_timer_stop(&cc->retry);
	if (cc->tls) {
		tls_config_free(cc->tls);
		cc->tls = NULL;
	}
	sodium_memzero(cc->token, sizeof(cc->token));
}

void coordc_close(struct coordc *cc)
{
	coordc_stop(cc);
	cc->closing = 1;
	uv_close((uv_handle_t *)&cc->retry, NULL);
	uv_close((uv_handle_t *)&cc->watchdog, NULL);
	free(cc->line);
	cc->line = NULL;
	cc->line_cap = cc->line_len = 0;
}

/* ---- blocking calls in the threadpool ---- */

struct coord_call *coord_call_new(enum coord_call_kind kind, const char *url, const char *pin)
{
	struct coord_call *call = calloc(1, sizeof(*call));

	if (!call)
		return NULL;
	call->kind = kind;
	snprintf(call->url, sizeof(call->url), "%s", url);
	snprintf(call->pin, sizeof(call->pin), "%s", pin ? pin : "");
	return call;
}

void coord_call_free(struct coord_call *call)
{
	if (!call)
		return;
	node_keys_wipe(&call->keys);
	sodium_memzero(call->auth_key, sizeof(call->auth_key));
	sodium_memzero(call->token, sizeof(call->token));
	if (call->resp) {
		sodium_memzero(call->resp, call->resp_len);   /* a register answer holds a token */
		free(call->resp);
	}
	free(call->body);
	free(call);
}

static int post(struct coord_call *call, const char *path, const char *body, size_t len)
{
	char auth[COORD_TOKEN_MAX + 32];
	const char *headers[3] = { "Content-Type: application/json", NULL, NULL };
	int rc;

	if (call->token[0]) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", call->token);
		headers[1] = auth;
	}
	if (call->resp) {
		sodium_memzero(call->resp, call->resp_len);
		free(call->resp);
		call->resp = NULL;
	}
	rc = http_fetch(call->url, call->pin[0] ? call->pin : NULL, "POST", path, headers, body, len,
			&call->status, &call->resp, &call->resp_len, CALL_TIMEOUT_MS);
	sodium_memzero(auth, sizeof(auth));
	return rc;
}

/* Threadpool side of a registration: challenge, then the signed registration. */
static int do_register(struct coord_call *call)
{
	char err[128], challenge[COORD_CHALLENGE_HEX + 1];
	const char *ch;
	json_t *ans, *body;
	char *text;
	size_t len = 0;
	int rc;

	rc = post(call, COORD_PATH_CHALLENGE, "{}", 2);
	if (rc || call->status != 200)
		return rc;
	ans = json_parse_object(call->resp, call->resp_len, err, sizeof(err));
	if (!ans || json_get_str(ans, "challenge", &ch) || strlen(ch) != COORD_CHALLENGE_HEX) {
		json_decref(ans);
		return -EBADMSG;
	}
	memcpy(challenge, ch, sizeof(challenge));
	json_decref(ans);
	body = coord_register_body(&call->keys, challenge, call->hostname, "linux",
				   call->auth_key[0] ? call->auth_key : NULL);
	if (!body)
		return -ENOMEM;
	text = json_dump_compact(body, &len);
	json_decref(body);
	if (!text)
		return -ENOMEM;
	rc = post(call, COORD_PATH_REGISTER, text, len);
	free(text);
	return rc;
}

static void work_cb(uv_work_t *w)
{
	struct coord_call *call = w->data;

	switch (call->kind) {
	case CALL_REGISTER:
		call->rc = do_register(call);
		break;
	case CALL_ENDPOINTS:
		call->rc = post(call, COORD_PATH_ENDPOINTS, call->body, call->body_len);
		break;
	case CALL_LOGOUT:
		call->rc = post(call, COORD_PATH_LOGOUT, "{}", 2);
		break;
	}
	/* The keys were only needed to sign. */
	node_keys_wipe(&call->keys);
	sodium_memzero(call->auth_key, sizeof(call->auth_key));
}

static void after_work_cb(uv_work_t *w, int status)
{
	struct coord_call *call = w->data;

	if (status == UV_ECANCELED)
		call->rc = -ECANCELED;
	call->done(call, call->arg);
}

int coord_call_start(uv_loop_t *loop, struct coord_call *call, coord_call_cb done, void *arg)
{
	call->done = done;
	call->arg = arg;
	call->work.data = call;
	return uv_queue_work(loop, &call->work, work_cb, after_work_cb);
}

void coord_call_error(const struct coord_call *call, char *out, size_t size)
{
	char err[64];
	const char *msg;
	json_t *o;

	if (call->rc == -EPERM) {
		snprintf(out, size, "the certificate of %s does not match the pin", call->url);
		return;
	}
	if (call->rc) {
		snprintf(out, size, "cannot reach coord at %s: %s", call->url,
			 call->rc == -EBADMSG ? "unexpected answer" : strerror(-call->rc));
		return;
	}
	o = call->resp ? json_parse_object(call->resp, call->resp_len, err, sizeof(err)) : NULL;
	if (o && !json_get_str(o, "error", &msg))
		snprintf(out, size, "coord answered %d: %s", call->status, msg);
	else
		snprintf(out, size, "coord answered HTTP %d", call->status);
	json_decref(o);
}
