/* dnsbl.c - fetches coord's compiled blocklist when the netmap's version moves
 * (GET PATH?v=HAVE with the node token: 304 when it is current), loads it in the
 * threadpool and hands it to the resolver's callback on the loop; see dnsbl.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dnsbl.h"
#include "meshvpn/backoff.h"
#include "meshvpn/http.h"
#include "meshvpn/log.h"

struct dnsbl_fetch {
	uv_work_t work;
	struct dnsbl *b;                /* NULL once dnsbl_close dropped it */
	char url[DNSBL_URL_MAX + 32], pin[DNSBL_PIN_MAX], auth[DNSBL_TOKEN_MAX + 32];
	int64_t version;                /* asked for */
	int status, rc;
	uint8_t *buf;
	size_t len, cap;
	struct blocklist *bl;
	double load_ms;                 /* blocklist_load's time (the node's load target) */
};

int dnsbl_url(const char *coord_url, const char *path, char *out, size_t size)
{
	size_t blen = strlen(coord_url);
	int n;

	if (!path || path[0] != '/')
		return -EINVAL;
	while (blen && coord_url[blen - 1] == '/')
		blen--;
	n = snprintf(out, size, "%.*s%s", (int)blen, coord_url, path);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int on_body(const uint8_t *p, size_t len, void *arg)
{
	struct dnsbl_fetch *f = arg;
	uint8_t *nb;
	size_t cap;

	if (f->status != 200)
		return 0;
	if (len > DNSBL_MAX_BYTES - f->len)
		return -EFBIG;
	if (f->len + len > f->cap) {
		for (cap = f->cap ? f->cap : 65536; cap < f->len + len; cap *= 2)
			;
		nb = realloc(f->buf, cap);
		if (!nb)
			return -ENOMEM;
		f->buf = nb;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, p, len);
	f->len += len;
	return 0;
}

static void on_response(const struct http_response *resp, void *arg)
{
	struct dnsbl_fetch *f = arg;

	f->status = resp->status;   /* on_body keeps only a 200's */
}

static void fetch_work(uv_work_t *w)
{
	struct dnsbl_fetch *f = w->data;
	const char *headers[] = { f->auth, NULL };
	struct http_fetch_sink sink = { on_response, on_body, f };
	uint64_t t0;

	f->rc = http_fetch_stream(f->url, f->pin[0] ? f->pin : NULL, headers, &sink, &f->status,
				  DNSBL_TIMEOUT_MS);
	if (f->rc || f->status != 200)
		return;
	/* checked whole here, off the loop: the resolver gets a list it can use at once */
	t0 = uv_hrtime();
	f->rc = blocklist_load(f->buf, f->len, BLOCKLIST_LOAD_OWN, &f->bl);
	f->load_ms = (double)(uv_hrtime() - t0) / 1e6;
	if (!f->rc)
		f->buf = NULL;   /* the list's now */
}

static void fetch_start(struct dnsbl *b);

static void on_retry(uv_timer_t *t)
{
	fetch_start(t->data);
}

static void fetch_after(uv_work_t *w, int status)
{
	struct dnsbl_fetch *f = w->data;
	struct dnsbl *b = f->b;
	struct blocklist_info info;

	if (b) {
		b->inflight = NULL;
		if (!f->rc && f->status == 304) {
			b->not_modified++;
			b->have = f->version;
			b->backoff_ms = DNSBL_RETRY_MIN_MS;
		} else if (!f->rc && f->bl) {
			blocklist_get_info(f->bl, &info);
			b->fetched++;
			b->have = (int64_t)info.serial;
			b->backoff_ms = DNSBL_RETRY_MIN_MS;
			log_info("blocklist loaded", "version=%" PRIu64 " exact=%u subdomains=%u"
				 " exceptions=%u memory=%zu bytes=%zu load_ms=%.1f", info.serial, info.exact,
				 info.subdomains, info.exact_exceptions + info.subdomain_exceptions,
				 info.memory, f->len, f->load_ms);
			b->on_blocklist(b->arg, f->bl);
			f->bl = NULL;
		} else {
			uint64_t ms = backoff_next(&b->backoff_ms, DNSBL_RETRY_MAX_MS);
			b->failed++;
			log_warn("blocklist fetch failed, keeping the list we have", "version=%lld"
				 " have=%lld status=%d err=\"%s\" retry_ms=%" PRIu64, (long long)f->version,
				 (long long)b->have, f->status, f->rc ? strerror(-f->rc) : "", ms);
			uv_timer_start(&b->retry, on_retry, ms, 0);
		}
		if (b->want && b->want != b->have && !uv_is_active((uv_handle_t *)&b->retry))
			fetch_start(b);   /* it moved again meanwhile */
	}
	blocklist_free(f->bl);
	free(f->buf);
	sodium_memzero(f->auth, sizeof(f->auth));
	free(f);
}

static void fetch_start(struct dnsbl *b)
{
	struct dnsbl_fetch *f;

	if (b->inflight || b->closing || !b->want || b->want == b->have || !b->url[0])
		return;
	f = calloc(1, sizeof(*f));
	if (!f)
		return;
	f->b = b;
	f->version = b->want;
	snprintf(f->url, sizeof(f->url), "%s?v=%lld", b->url, (long long)b->have);
	snprintf(f->pin, sizeof(f->pin), "%s", b->pin);
	snprintf(f->auth, sizeof(f->auth), "Authorization: Bearer %s", b->token);
	f->work.data = f;
	if (uv_queue_work(b->loop, &f->work, fetch_work, fetch_after)) {
		free(f);
		return;
	}
	b->inflight = f;
}

void dnsbl_init(struct dnsbl *b, uv_loop_t *loop, dnsbl_cb on_blocklist, void *arg)
{
	memset(b, 0, sizeof(*b));
	b->loop = loop;
	b->on_blocklist = on_blocklist;
	b->arg = arg;
	b->backoff_ms = DNSBL_RETRY_MIN_MS;
	uv_timer_init(loop, &b->retry);
	b->retry.data = b;
}

void dnsbl_update(struct dnsbl *b, int64_t version, const char *path, const char *coord_url,
		  const char *pin, const char *token)
{
	if (b->closing)
		return;
	if (!path || !coord_url || dnsbl_url(coord_url, path, b->url, sizeof(b->url)))
		b->url[0] = 0;
	snprintf(b->pin, sizeof(b->pin), "%s", pin ? pin : "");
	snprintf(b->token, sizeof(b->token), "%s", token ? token : "");
	if (version == b->want)
		return;
	b->want = version;
	uv_timer_stop(&b->retry);   /* a new version: ask now */
	b->backoff_ms = DNSBL_RETRY_MIN_MS;
	fetch_start(b);
}

void dnsbl_close(struct dnsbl *b)
{
	b->closing = 1;
	if (b->inflight)
		b->inflight->b = NULL;
	b->inflight = NULL;
	sodium_memzero(b->token, sizeof(b->token));
	uv_close((uv_handle_t *)&b->retry, NULL);
}
