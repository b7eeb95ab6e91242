/* coord_urls.c - the list of coord instances a client may use and the iterator over them
 * (coord_urls.h): parsing with duplicates dropped, the current candidate kept while it
 * works, the next one at once on a failure, back-off only after a whole failed round. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include "meshvpn/coord_urls.h"

static int fail_msg(char *err, size_t errlen, const char *fmt, const char *item)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, item);
	return -EINVAL;
}

static int same_url(const struct http_url *a, const struct http_url *b)
{
	return a->port == b->port && !strcasecmp(a->host, b->host);
}

/* One trimmed item: an https base URL without a path. 1 when it was a duplicate. */
static int parse_item(struct coord_urls *l, const char *item, char *err, size_t errlen)
{
	struct http_url u;
	int rc;

	if (!*item)
		return fail_msg(err, errlen, "an empty coord URL in the list%s", "");
	rc = strlen(item) >= sizeof(l->base[0]) ? -ENAMETOOLONG : http_url_parse(item, &u);
	if (rc == -ENAMETOOLONG)
		return fail_msg(err, errlen, "coord URL too long: '%.60s...'", item);
	if (rc || u.scheme != HTTP_SCHEME_HTTPS)
		return fail_msg(err, errlen,
				"coord must be an https:// URL, like https://coord.example.net:8443 "
				"(not '%.60s')", item);
	if (strcmp(u.path, "/"))
		return fail_msg(err, errlen, "coord URL takes no path: https://HOST[:PORT] (not '%.60s')",
				item);
	for (size_t i = 0; i < l->n_urls; i++)
		if (same_url(&l->urls[i], &u))
			return 1;
	if (l->n_urls == COORD_URLS_MAX)
		return fail_msg(err, errlen, "more than 8 coord URLs%s", "");
	l->urls[l->n_urls] = u;
	snprintf(l->base[l->n_urls], sizeof(l->base[0]), "%s", item);
	l->cand[l->n_cand].url = (int)l->n_urls;
	l->n_urls++;
	l->n_cand++;
	return 0;
}

int coord_urls_parse(const char *list, struct coord_urls *out, char *err, size_t errlen)
{
	char buf[COORD_URLS_TEXT_MAX + 1], *item, *save = NULL;
	size_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	out->last_ok_url = -1;
	if (!list || !*list)
		return fail_msg(err, errlen, "no coord URL%s", "");
	if (strlen(list) >= sizeof(buf))
		return fail_msg(err, errlen, "the coord list is longer than 1023 bytes%s", "");
	memcpy(buf, list, strlen(list) + 1);
	n = strlen(buf);
	/* strtok_r would fold ",," and a trailing ",": both are mistakes worth saying. */
	if (buf[0] == ',' || buf[n - 1] == ',' || strstr(buf, ",,"))
		return fail_msg(err, errlen, "an empty coord URL in the list%s", "");
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *end;

		while (*item == ' ' || *item == '\t')
			item++;
		end = item + strlen(item);
		while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = 0;
		rc = parse_item(out, item, err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int coord_urls_check(const char *list, char *err, size_t errlen)
{
	struct coord_urls *l = malloc(sizeof(*l));   /* ~10 KiB: off the caller's stack */
	int rc = l ? coord_urls_parse(list, l, err, errlen) : -ENOMEM;

	if (!l && err && errlen)
		snprintf(err, errlen, "out of memory");
	free(l);
	return rc;
}

int coord_urls_canon(const char *list, char *out, size_t size, char *err, size_t errlen)
{
	struct coord_urls *l = malloc(sizeof(*l));
	size_t at = 0;
	int rc = l ? coord_urls_parse(list, l, err, errlen) : -ENOMEM;

	if (!l && err && errlen)
		snprintf(err, errlen, "out of memory");
	for (size_t i = 0; !rc && i < l->n_urls; i++) {
		int n = snprintf(out + at, size - at, "%s%s", i ? "," : "", l->base[i]);

		if (n < 0 || (size_t)n >= size - at) {
			rc = fail_msg(err, errlen, "the coord list is too long%s", "");
			break;
		}
		at += (size_t)n;
	}
	free(l);
	return rc;
}

const struct coord_cand *coord_urls_current(const struct coord_urls *l)
{
	return &l->cand[l->cur];
}

const struct http_url *coord_urls_current_url(const struct coord_urls *l)
{
	return &l->urls[l->cand[l->cur].url];
}

/* After a whole failed round: each name back to one candidate to resolve, at its first
 * address's place, still failed (the instances behind a name come and go). */
static void forget_addrs(struct coord_urls *l)
{
	struct coord_cand out[COORD_URLS_CAND_MAX];
	size_t k = 0, cur = 0, j;

	for (size_t i = 0; i < l->n_cand; i++) {
		struct coord_cand c = l->cand[i];

		if (coord_urls_needs_resolve(l, &(struct coord_cand){ .url = c.url })) {
			c.addr[0] = 0;
			for (j = 0; j < k && out[j].url != c.url; j++)
				;
			if (j < k) {   /* the name has its place already */
				if (i == l->cur)
					cur = j;
				continue;
			}
		}
		if (i == l->cur)
			cur = k;
		out[k++] = c;
	}
	memcpy(l->cand, out, k * sizeof(out[0]));
	l->n_cand = k;
	l->cur = cur;
}

int coord_urls_fail(struct coord_urls *l)
{
	if (!l->n_cand)
		return 1;
	l->cand[l->cur].failed = 1;
	l->cur = (l->cur + 1) % l->n_cand;
	if (!l->cand[l->cur].failed)
		return 0;
	forget_addrs(l);
	return 1;
}

int coord_urls_others_failed(const struct coord_urls *l)
{
	for (size_t i = 0; i < l->n_cand; i++)
		if (i != l->cur && !l->cand[i].failed)
			return 0;
	return 1;
}

void coord_urls_ok(struct coord_urls *l)
{
	const struct coord_cand *c = &l->cand[l->cur];

	for (size_t i = 0; i < l->n_cand; i++)
		l->cand[i].failed = 0;
	if (l->last_ok_url >= 0 && (l->last_ok_url != c->url || strcmp(l->last_ok_addr, c->addr)))
		l->moves++;
	l->last_ok_url = c->url;
	memcpy(l->last_ok_addr, c->addr, sizeof(l->last_ok_addr));
}

int coord_urls_needs_resolve(const struct coord_urls *l, const struct coord_cand *c)
{
	const char *host = l->urls[c->url].host;
	unsigned char a[16];

	return !c->addr[0] && uv_inet_pton(AF_INET, host, a) && uv_inet_pton(AF_INET6, host, a);
}

/* Whether addr is already a candidate of url among the first n of cand. */
static int has_addr(const struct coord_cand *cand, size_t n, int url, const char *addr)
{
	for (size_t i = 0; i < n; i++)
		if (cand[i].url == url && !strcmp(cand[i].addr, addr))
			return 1;
	return 0;
}

int coord_urls_expand(struct coord_urls *l, int url, const char (*addrs)[COORD_URLS_ADDR_MAX],
		      size_t n)
{
	struct coord_cand out[COORD_URLS_CAND_MAX];
	size_t k = 0, cur = l->cur, room = COORD_URLS_CAND_MAX, mine;
	int was_cur = l->cand[l->cur].url == url, done = 0;

	if (url < 0 || (size_t)url >= l->n_urls || !n)
		return -EINVAL;
	/* The other URLs keep their places: this one gets what they leave (1 at least, the
	 * place it had). */
	for (size_t i = 0; i < l->n_cand; i++)
		room -= l->cand[i].url != url;
	for (size_t i = 0; i < l->n_cand; i++) {
		if (l->cand[i].url != url) {
			if (i == l->cur)
				cur = k;
			out[k++] = l->cand[i];
			continue;
		}
		if (done)
			continue;
		/* The URL's first place takes all its addresses, in the resolver's order. */
		done = 1;
		if (was_cur)
			cur = k;
		mine = 0;
		for (size_t j = 0; j < n && mine < room; j++) {
			if (!addrs[j][0] || has_addr(out, k, url, addrs[j]))
				continue;
			memset(&out[k], 0, sizeof(out[k]));
			out[k].url = url;
			snprintf(out[k].addr, sizeof(out[k].addr), "%s", addrs[j]);
			k++;
			mine++;
		}
	}
	memcpy(l->cand, out, k * sizeof(out[0]));
	l->n_cand = k;
	l->cur = cur < k ? cur : 0;
	return 0;
}

/* The base of URL i, with addr instead of its host when addr is given. */
static int base_of(const struct coord_urls *l, int i, const char *addr, char *out, size_t size)
{
	int n;

	if (addr && *addr)
		n = snprintf(out, size, strchr(addr, ':') ? "https://[%s]:%u" : "https://%s:%u", addr,
			     l->urls[i].port);
	else
		n = snprintf(out, size, "%s", l->base[i]);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int coord_urls_current_base(const struct coord_urls *l, int by_addr, char *out, size_t size)
{
	const struct coord_cand *c = coord_urls_current(l);

	if (!l->n_cand)
		return -EINVAL;
	return base_of(l, c->url, by_addr ? c->addr : NULL, out, size);
}

int coord_urls_ordered(const struct coord_urls *l, int by_addr, char *out, size_t size)
{
	const struct coord_cand *c = coord_urls_current(l);
	size_t len;
	int rc;

	if (!l->n_cand)
		return -EINVAL;
	rc = coord_urls_current_base(l, by_addr, out, size);
	for (size_t i = 0; !rc && i < l->n_urls; i++) {
		if ((int)i == c->url && !(by_addr && c->addr[0]))
			continue;
		len = strlen(out);
		if (len + 1 >= size)
			return -ENAMETOOLONG;
		out[len] = ',';
		rc = base_of(l, (int)i, NULL, out + len + 1, size - len - 1);
	}
	return rc;
}

int coord_urls_overlap(const char *a, const char *b)
{
	struct coord_urls *la = malloc(sizeof(*la)), *lb = malloc(sizeof(*lb));
	int same = 0;

	if (la && lb && !coord_urls_parse(a, la, NULL, 0) && !coord_urls_parse(b, lb, NULL, 0))
		for (size_t i = 0; i < la->n_urls && !same; i++)
			for (size_t j = 0; j < lb->n_urls && !same; j++)
				same = same_url(&la->urls[i], &lb->urls[j]);
	free(la);
	free(lb);
	return same;
}

int coord_urls_fetch(const char *list, const char *pin, const char *method, const char *path,
		     const char *const *headers, const void *body, size_t len, int *status,
		     char **body_out, size_t *body_len, uint64_t timeout_ms)
{
	char buf[COORD_URLS_ORDERED_MAX + 1], *item, *save = NULL;
	int rc = -EINVAL;

	if (!list || strlen(list) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, list, strlen(list) + 1);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		while (*item == ' ')
			item++;
		if (*body_out) {
			free(*body_out);   /* the answer of an instance that failed */
			*body_out = NULL;
		}
		*status = 0;
		rc = http_fetch(item, pin, method, path, headers, body, len, status, body_out,
				body_len, timeout_ms);
		if (!rc && *status < 500)
			break;
	}
	return rc;
}
