/* dnsbl.h - vpnd's copy of coord's compiled blocklist (issue 10): when the netmap's
 * dns.blocklist.version changes, the blob is fetched from coord (node token, pinned key)
 * in libuv's threadpool, loaded there (blocklist_load checks it whole) and handed to the
 * resolver on the loop. A failed fetch keeps the list it has and retries with backoff. */
#ifndef VPND_DNSBL_H
#define VPND_DNSBL_H

#include <stdint.h>
#include <uv.h>

#include "meshvpn/blocklist.h"

#define DNSBL_URL_MAX 600
#define DNSBL_TOKEN_MAX 128
#define DNSBL_PIN_MAX 96
#define DNSBL_MAX_BYTES ((size_t)BLOCKLIST_MAX_RULES_DEFAULT * 8 + 4096)
#define DNSBL_TIMEOUT_MS 60000
#define DNSBL_RETRY_MIN_MS 1000
#define DNSBL_RETRY_MAX_MS (5 * 60 * 1000)

/* A new list, the receiver's from now on (blocklist_free the one it replaces). */
typedef void (*dnsbl_cb)(void *arg, struct blocklist *bl);

struct dnsbl_fetch;

struct dnsbl {
	uv_loop_t *loop;
	uv_timer_t retry;
	dnsbl_cb on_blocklist;
	void *arg;
	int64_t want;                   /* the netmap's version; 0: none */
	int64_t have;                   /* the version handed over last */
	char url[DNSBL_URL_MAX];        /* coord's base URL + the netmap's path */
	char pin[DNSBL_PIN_MAX], token[DNSBL_TOKEN_MAX];
	struct dnsbl_fetch *inflight;
	uint64_t backoff_ms;
	uint64_t fetched, failed, not_modified;   /* counters */
	int closing;
};

void dnsbl_init(struct dnsbl *b, uv_loop_t *loop, dnsbl_cb on_blocklist, void *arg);
/* What the netmap says (its dns.blocklist version and url, a path on coord) and how to
 * reach coord: fetches when version is new. Call after every full netmap and dns delta. */
void dnsbl_update(struct dnsbl *b, int64_t version, const char *path, const char *coord_url,
		  const char *pin, const char *token);
/* A fetch in flight finishes in the pool and is dropped; the timer closes on the loop. */
void dnsbl_close(struct dnsbl *b);
/* "COORD_URL" (no trailing '/') + path: 0, or -EINVAL (path not absolute) / -ENAMETOOLONG. */
int dnsbl_url(const char *coord_url, const char *path, char *out, size_t size);

#endif
