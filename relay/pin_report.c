/* pin_report.c - tells coord the pin of the relay's self-signed certificate (POST
 * /v1/relay/pin with the relay token), which coord hands to nodes in the relay map. The
 * blocking http_fetch runs in libuv's threadpool; a failure is retried with backoff
 * (1 s doubling to 60 s) until coord takes it; each try goes to the coord instance the
 * admission stream uses, the others after it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/coord_proto.h"
#include "meshvpn/log.h"
#include "relay.h"

#define CALL_TIMEOUT_MS 15000
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000

static void work_cb(uv_work_t *w)
{
	struct relay_pin_report *p = w->data;
	char auth[LINE_STREAM_TOKEN_MAX + 32], body[TLS_PIN_LEN + 16], *resp = NULL;
	const char *headers[] = { "Content-Type: application/json", auth, NULL };
	size_t resp_len = 0;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", p->token);
	snprintf(body, sizeof(body), "{\"pin\":\"%s\"}", p->pin);
	p->status = 0;
	p->rc = coord_urls_fetch(p->to, p->coord_pin[0] ? p->coord_pin : NULL, "POST",
				 COORD_PATH_RELAY_PIN, headers, body, strlen(body), &p->status, &resp,
				 &resp_len, CALL_TIMEOUT_MS);
	sodium_memzero(auth, sizeof(auth));
	free(resp);
}

static void try_now(struct relay_pin_report *p);

static void on_retry(uv_timer_t *t)
{
	try_now(t->data);
}

static void after_work_cb(uv_work_t *w, int status)
{
	struct relay_pin_report *p = w->data;

	p->busy = 0;
	if (p->closing) {
		sodium_memzero(p->token, sizeof(p->token));
		return;
	}
	if (status == 0 && p->rc == 0 && p->status == 200) {
		p->done = 1;
		sodium_memzero(p->token, sizeof(p->token));
		log_info("certificate pin reported to coord", "pin=%s", p->pin);
		return;
	}
	log_warn("cannot report the certificate pin to coord", "status=%d error=\"%s\" retry_ms=%llu",
		 p->status, p->rc ? strerror(p->rc < 0 ? -p->rc : p->rc) : "-",
		 (unsigned long long)p->backoff_ms);
	uv_timer_start(&p->retry, on_retry, p->backoff_ms, 0);
	p->backoff_ms *= 2;
	if (p->backoff_ms > BACKOFF_MAX_MS)
		p->backoff_ms = BACKOFF_MAX_MS;
}

static void try_now(struct relay_pin_report *p)
{
	/* Read here, on the loop: the stream's list is the loop's. */
	if (!p->follow || !p->follow->active ||
	    coord_urls_ordered(&p->follow->urls, p->coord_pin[0] != 0, p->to, sizeof(p->to)))
		snprintf(p->to, sizeof(p->to), "%s", p->url);
	p->work.data = p;
	if (!uv_queue_work(p->loop, &p->work, work_cb, after_work_cb))
		p->busy = 1;
	else
		uv_timer_start(&p->retry, on_retry, p->backoff_ms, 0);
}

int relay_pin_report_start(struct relay_pin_report *p, uv_loop_t *loop, const char *url,
			   const char *coord_pin, const char *token, const char *pin)
{
	memset(p, 0, sizeof(*p));
	p->loop = loop;
	if ((size_t)snprintf(p->url, sizeof(p->url), "%s", url) >= sizeof(p->url) ||
	    (size_t)snprintf(p->token, sizeof(p->token), "%s", token) >= sizeof(p->token))
		return -EINVAL;
	snprintf(p->coord_pin, sizeof(p->coord_pin), "%s", coord_pin ? coord_pin : "");
	snprintf(p->pin, sizeof(p->pin), "%s", pin);
	p->backoff_ms = BACKOFF_MIN_MS;
	uv_timer_init(loop, &p->retry);
	p->retry.data = p;
	try_now(p);
	return 0;
}

/* A call in flight finishes in the threadpool (15 s at most); its answer is ignored. */
void relay_pin_report_close(struct relay_pin_report *p)
{
	if (!p->loop || p->closing)
		return;
	p->closing = 1;
	if (p->busy)
		uv_cancel((uv_req_t *)&p->work);
	uv_close((uv_handle_t *)&p->retry, NULL);
	if (!p->busy)   /* else the thread may still read it: after_work_cb wipes it */
		sodium_memzero(p->token, sizeof(p->token));
}
