/* coordc.c - vpnd's client of coord: the netmap stream (GET /v1/map with the node's
 * bearer token, a chunked body of JSON lines over TLS 1.2 with a pinned key, followed by
 * lib/line_stream.c with vpnd's bounds); and the blocking calls (challenge + register,
 * endpoints, logout) run with http_fetch in libuv's threadpool so the loop never waits,
 * the instance the stream uses first and the other instances of the list after it.
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

static void on_ls_line(struct line_stream *ls, const char *line, size_t len, void *arg)
{
	struct coordc *cc = arg;

	cc->on_line(cc, line, len, cc->arg);
}

static void on_ls_event(struct line_stream *ls, enum line_stream_event ev, int detail, void *arg)
{
	struct coordc *cc = arg;

	cc->active = ls->active;   /* a 401/403 has just ended it */
	if (cc->on_event)
		cc->on_event(cc, (enum cc_event)ev, detail, cc->arg);
}

/* Each connect names the version the map is at, so coord sends only what changed. */
static int ls_query(char *buf, size_t size, void *arg)
{
	struct coordc *cc = arg;

	if (!cc->nm)
		return -ENOENT;
	netmap_resume_query(cc->nm, buf, size);
	return 0;
}

int coordc_init(struct coordc *cc, uv_loop_t *loop, cc_line_cb on_line, cc_event_cb on_event,
		void *arg)
{
	static const struct line_stream_opts opts = {
		.path = COORD_PATH_MAP,
		.what = "netmap",
		.peer = "coord",
		.max_line = CC_MAX_LINE,
		.idle_timeout_ms = CC_IDLE_TIMEOUT_MS,
		.backoff_min_ms = CC_BACKOFF_MIN_MS,
		.backoff_max_ms = CC_BACKOFF_MAX_MS,
		.compress = 1,   /* a full netmap packs to about a quarter */
		.on_line = on_ls_line,
		.on_event = on_ls_event,
		.query = ls_query,
	};
	struct line_stream_opts o = opts;

	memset(cc, 0, sizeof(*cc));
	cc->on_line = on_line;
	cc->on_event = on_event;
	cc->arg = arg;
	o.arg = cc;
	return line_stream_init(&cc->ls, loop, &o);
}

int coordc_start(struct coordc *cc, const char *url, const char *pin, const char *token)
{
	int rc = line_stream_start(&cc->ls, url, pin, token);

	cc->active = cc->ls.active;
	return rc;
}

void coordc_stop(struct coordc *cc)
{
	line_stream_stop(&cc->ls);
	cc->active = 0;
}

void coordc_close(struct coordc *cc)
{
	line_stream_close(&cc->ls);
	cc->active = 0;
}

void coordc_targets(const struct coordc *cc, const char *list, const char *pin, char *out,
		    size_t size)
{
	/* The stream's list is the one it was started with: list, unless stopped since. */
	if (!cc->ls.active || !cc->ls.urls.n_cand ||
	    coord_urls_ordered(&cc->ls.urls, pin && *pin, out, size))
		snprintf(out, size, "%s", list);
}

void coordc_current(const struct coordc *cc, const char *list, int by_addr, char *out,
		    size_t size)
{
	size_t n = strcspn(list, ",");

	if (cc->ls.active && cc->ls.urls.n_cand &&
	    !coord_urls_current_base(&cc->ls.urls, by_addr, out, size))
		return;
	snprintf(out, size, "%.*s", (int)n, list);
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
	rc = coord_urls_fetch(call->url, call->pin[0] ? call->pin : NULL, "POST", path, headers,
			      body, len, &call->status, &call->resp, &call->resp_len,
			      CALL_TIMEOUT_MS);
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
