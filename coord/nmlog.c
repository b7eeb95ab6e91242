/* nmlog.c - see nmlog.h: the ring of nodes that left, the floor, the resume check. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/coord_proto.h"
#include "nmlog.h"

int nmlog_init(struct nmlog *l, const char *epoch, int64_t floor, size_t cap)
{
	memset(l, 0, sizeof(*l));
	if (!coord_epoch_valid(epoch) || floor < 0)
		return -EINVAL;
	memcpy(l->epoch, epoch, NMLOG_EPOCH_LEN + 1);
	l->floor = floor;
	l->cap = cap ? cap : NMLOG_CAP;
	l->ring = calloc(l->cap, sizeof(*l->ring));
	return l->ring ? 0 : -ENOMEM;
}

void nmlog_free(struct nmlog *l)
{
	free(l->ring);
	memset(l, 0, sizeof(*l));
}

void nmlog_raise_floor(struct nmlog *l, int64_t ver)
{
	if (ver > l->floor)
		l->floor = ver;
}

void nmlog_add(struct nmlog *l, int64_t ver, int64_t id, const uint8_t key[KEY_LEN])
{
	struct nmlog_gone *g;

	if (!l->ring)
		return;
	if (l->n == l->cap) {
		/* Dropped: whoever had not seen it must start over from a full netmap. */
		nmlog_raise_floor(l, l->ring[l->start].ver);
		l->start = (l->start + 1) % l->cap;
		l->n--;
	}
	g = &l->ring[(l->start + l->n) % l->cap];
	l->n++;
	g->ver = ver;
	g->id = id;
	g->has_key = key != NULL;
	if (key)
		memcpy(g->key, key, KEY_LEN);
	else
		memset(g->key, 0, KEY_LEN);
}

int nmlog_check(const struct nmlog *l, const char *epoch, int64_t since, int64_t head)
{
	if (!coord_epoch_valid(epoch) || strcmp(epoch, l->epoch))
		return -EXDEV;
	if (since < l->floor)
		return -ESTALE;
	if (since > head)
		return -ERANGE;
	return 0;
}

int nmlog_foreach_after(const struct nmlog *l, int64_t since,
			int (*cb)(const struct nmlog_gone *g, void *arg), void *arg)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct nmlog_gone *g = &l->ring[(l->start + i) % l->cap];
		int rc;

		if (g->ver > since && (rc = cb(g, arg)))
			return rc;
	}
	return 0;
}

void nmlog_restamp(struct nmlog *l, int64_t from, int64_t to)
{
	for (size_t i = 0; i < l->n; i++) {
		struct nmlog_gone *g = &l->ring[(l->start + i) % l->cap];

		if (g->ver == from)
			g->ver = to;
	}
}

int nmlog_parse_since(const char *since_text, const char *epoch_text, int64_t *since,
		      char epoch[NMLOG_EPOCH_LEN + 1])
{
	long long v;
	char *end;

	if (!since_text || !*since_text || !coord_epoch_valid(epoch_text))
		return -EINVAL;
	for (const char *p = since_text; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	errno = 0;
	v = strtoll(since_text, &end, 10);
	if (errno || *end || v < 0)
		return -EINVAL;
	*since = v;
	memcpy(epoch, epoch_text, NMLOG_EPOCH_LEN + 1);
	return 0;
}
