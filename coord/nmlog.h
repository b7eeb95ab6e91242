/* nmlog.h - the netmap's version bookkeeping that a resume needs: the tailnet's feed
 * epoch, the oldest version a client may resume from, and a bounded ring of the nodes
 * that left (deleted, or rekeyed: the key they had), which per-node stamps cannot tell
 * because the node is gone. Pure: no I/O, no coord state (tests/unit/test_nmlog.c). */
#ifndef COORD_NMLOG_H
#define COORD_NMLOG_H

#include <stddef.h>
#include <stdint.h>

#include "meshvpn/keys.h"

#define NMLOG_EPOCH_LEN 16              /* hex digits */
#define NMLOG_CAP 65536                 /* nodes that left, remembered */

struct nmlog_gone {
	int64_t ver;                    /* the version it left at */
	int64_t id;
	uint8_t key[KEY_LEN];
	int has_key;                    /* 0: from a feed entry that did not keep it */
};

struct nmlog {
	char epoch[NMLOG_EPOCH_LEN + 1];
	int64_t floor;                  /* the oldest version a resume may start from */
	struct nmlog_gone *ring;
	size_t cap, start, n;
};

/* epoch: NMLOG_EPOCH_LEN lowercase hex digits; floor: versions below it are not known
 * here. cap 0: NMLOG_CAP. 0, -EINVAL, -ENOMEM. */
int nmlog_init(struct nmlog *l, const char *epoch, int64_t floor, size_t cap);
void nmlog_free(struct nmlog *l);
/* A node left at version ver (key may be NULL). When the ring is full the oldest entry is
 * dropped and the floor moves up to its version: a client that had not seen it can no
 * longer resume. Versions are recorded in any order (the ring keeps the largest seen). */
void nmlog_add(struct nmlog *l, int64_t ver, int64_t id, const uint8_t key[KEY_LEN]);
/* Raises the floor (a reload: what happened before ver is not known here any more). */
void nmlog_raise_floor(struct nmlog *l, int64_t ver);
/* Whether a client that applied everything up to `since` in epoch `epoch` can be brought
 * up to date from here at version head: 0; -EXDEV (no epoch, or another tailnet's or
 * store's: versions are not comparable), -ESTALE (before the floor: the log no longer
 * reaches back), -ERANGE (after head: from the future, e.g. a restored database). */
int nmlog_check(const struct nmlog *l, const char *epoch, int64_t since, int64_t head);
/* Calls cb for every node that left after since, oldest first; cb's nonzero stops it and
 * is returned. */
int nmlog_foreach_after(const struct nmlog *l, int64_t since,
			int (*cb)(const struct nmlog_gone *g, void *arg), void *arg);
/* Sets every entry at version `from` (a placeholder) to `to` (feed.c settles the stamps
 * of a batch once it knows the head). */
void nmlog_restamp(struct nmlog *l, int64_t from, int64_t to);
/* Parses the client's since ("123") and epoch: 0, or -EINVAL when absent or malformed. */
int nmlog_parse_since(const char *since_text, const char *epoch_text, int64_t *since,
		      char epoch[NMLOG_EPOCH_LEN + 1]);

#endif
