/* coord_urls.h - the coord instances a client may use: a comma list of https base URLs
 * (vpnctl up --coord, relay --coord), each host possibly resolving to several addresses.
 * Every URL or resolved address is a candidate; the iterator keeps the current one while
 * it works, moves to the next one at once when it fails, and says "back off" only when
 * every candidate failed in a row. Pure (no I/O): the resolving is the caller's. */
#ifndef MESHVPN_COORD_URLS_H
#define MESHVPN_COORD_URLS_H

#include <stddef.h>
#include <stdint.h>

#include "meshvpn/http.h"

#define COORD_URLS_MAX      8      /* URLs in a list */
#define COORD_URLS_CAND_MAX 32     /* candidates: URLs and the addresses of their names */
#define COORD_URLS_TEXT_MAX 1023   /* the whole list as text */
#define COORD_URLS_ADDR_MAX 46     /* an IPv6 literal and its NUL */
/* coord_urls_ordered's text: the list and the address of the instance in use. */
#define COORD_URLS_ORDERED_MAX (COORD_URLS_TEXT_MAX + 64)

struct coord_cand {
	int url;                        /* index into the list's URLs */
	char addr[COORD_URLS_ADDR_MAX]; /* literal to connect to; "" = the URL's host as is */
	int failed;                     /* failed since the last success */
};

struct coord_urls {
	struct http_url urls[COORD_URLS_MAX];
	char base[COORD_URLS_MAX][300]; /* "https://host:port" of each, as written (trimmed) */
	size_t n_urls;
	struct coord_cand cand[COORD_URLS_CAND_MAX];
	size_t n_cand, cur;
	int last_ok_url;                /* the candidate that last worked (-1: none yet) */
	char last_ok_addr[COORD_URLS_ADDR_MAX];
	uint64_t moves;                 /* successes on another candidate than the last one */
};

/* Parses "https://a[:port][,https://b...]": spaces around items allowed, duplicates
 * (same host, case-insensitive, and port) dropped; https only, no path. 0 or -EINVAL
 * with err (may be NULL) saying why. The current candidate is the first URL. */
int coord_urls_parse(const char *list, struct coord_urls *out, char *err, size_t errlen);
/* Only checks a list (coord_urls_parse on the heap): 0, -EINVAL with err, -ENOMEM. */
int coord_urls_check(const char *list, char *err, size_t errlen);
/* The list as it is kept: items trimmed, duplicates dropped, joined by ','. */
int coord_urls_canon(const char *list, char *out, size_t size, char *err, size_t errlen);
/* The current candidate. */
const struct coord_cand *coord_urls_current(const struct coord_urls *l);
const struct http_url *coord_urls_current_url(const struct coord_urls *l);
/* The current one failed: it is marked and the next becomes current. 0 when that one
 * has not failed since the last success (try it at once), 1 when every candidate
 * failed in a row (back off before trying it); the names' addresses are forgotten then,
 * to be resolved again (the instances behind a name come and go). */
int coord_urls_fail(struct coord_urls *l);
/* 1 when every candidate but the current one failed since the last success: its failure
 * ends a whole round (a caller waiting for the stream gives up then, not before). */
int coord_urls_others_failed(const struct coord_urls *l);
/* The current one works: a new round starts (no candidate failed); counts a move when
 * it is not the one that worked before. */
void coord_urls_ok(struct coord_urls *l);
/* The addresses URL url's host resolved to replace that URL's candidates (at the place
 * of its first; duplicates and those past COORD_URLS_CAND_MAX dropped); the current one
 * becomes the first address when it was one of them. 0, -EINVAL (no such URL, n == 0). */
int coord_urls_expand(struct coord_urls *l, int url, const char (*addrs)[COORD_URLS_ADDR_MAX],
		      size_t n);
/* 1 when the candidate still has to be resolved (a host name, no address yet). */
int coord_urls_needs_resolve(const struct coord_urls *l, const struct coord_cand *c);
/* The base URL of the current candidate: by_addr and an address known: with the address
 * instead of the name ("https://192.0.2.1:8443", IPv6 bracketed); else the URL as written. */
int coord_urls_current_base(const struct coord_urls *l, int by_addr, char *out, size_t size);
/* The list again with the current candidate's base (as coord_urls_current_base) first and
 * the other URLs after it, for calls that try one after the other (coord_urls_fetch). */
int coord_urls_ordered(const struct coord_urls *l, int by_addr, char *out, size_t size);

/* 1 when two lists (both parse) name a common instance: the same network, only
 * reordered or with instances added or removed; 0 otherwise. */
int coord_urls_overlap(const char *a, const char *b);

/* http_fetch on each base URL of list in turn until one answers without a transport error
 * and with a status below 500: the calls besides the stream (registration, endpoints, the
 * relay's pin) reach whichever instance is up. Same arguments and returns as http_fetch;
 * the last attempt's when none answered. Blocking: threadpool or CLIs. */
int coord_urls_fetch(const char *list, const char *pin, const char *method, const char *path,
		     const char *const *headers, const void *body, size_t len, int *status,
		     char **body_out, size_t *body_len, uint64_t timeout_ms);

#endif
