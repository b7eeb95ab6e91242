/* nmcache.h - the netmap cache in STATE/netmap: coord's last "full" line exactly as it came,
 * then the deltas since that changed something, one JSON line each. Read back through
 * netmap_apply_line, so a corrupt cache is refused by the same fuzzed parser. Lets a node
 * that restarts while coord is unreachable bring its peers up at once. */
#ifndef VPND_NMCACHE_H
#define VPND_NMCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "meshvpn/keys.h"
#include "netmap.h"

#define NMCACHE_FILE "netmap"
/* An older cache is not used: peers may have been deleted or rekeyed meanwhile, and a
 * node away that long should hear from coord first. */
#define NMCACHE_MAX_AGE_S (7 * 24 * 3600)
/* Deltas may grow to this many times the full line (but at least NMCACHE_MIN_DELTAS and at
 * most NMCACHE_MAX_DELTAS bytes); beyond that the cache is deleted and the next full (every
 * reconnect sends one) starts it again. */
#define NMCACHE_GROWTH 4
#define NMCACHE_MIN_DELTAS (256u << 10)
#define NMCACHE_MAX_DELTAS (32u << 20)
#define NMCACHE_MAX_FULL (64u << 20)      /* CC_MAX_LINE */

/* The cache being written: open after a full was saved, until the stream ends. */
struct nmcache {
	char path[4096];
	int fd;                  /* -1: nothing to append to */
	size_t full_len, delta_len;
	int dirty;               /* appended since the last fdatasync */
};

struct nmcache_info {
	int64_t age_s;           /* now - mtime (0 when the clock is behind the file) */
	size_t lines;            /* deltas applied */
	size_t bad_lines;        /* deltas refused and skipped */
	char why[64];            /* when refused: why */
	size_t full_bytes, delta_bytes;   /* loaded: the file's parts */
	int whole;               /* loaded: the file ends with a whole line */
};

void nmcache_init(struct nmcache *c, const char *dir);
/* Replaces the cache with this full line (temp file, fsync, rename, fsync of the dir;
 * 0600) and keeps it open for deltas. 0 or -errno (the cache is then removed). */
int nmcache_write_full(struct nmcache *c, const char *line, size_t len);
/* Appends a delta (no fsync: nmcache_sync does that at most once a tick). 0, -EBADF when
 * no full was written since the last close, -EFBIG when the bound is passed (the cache is
 * removed), or -errno of the write (removed too). */
int nmcache_append(struct nmcache *c, const char *line, size_t len);
/* fdatasync of what nmcache_append wrote. 0 or -errno. */
int nmcache_sync(struct nmcache *c);
/* Stops appending (syncs first); the file stays. */
void nmcache_close(struct nmcache *c);
/* Closes and deletes the file. 0 or -errno (ENOENT is 0). */
int nmcache_remove(struct nmcache *c);

/* After a load: appends go on at the end of the file it read (a resumed stream adds to
 * it). 0, -EBADF when the file did not end with a whole line, or -errno. */
int nmcache_reopen(struct nmcache *c, const struct nmcache_info *info);

/* Reads DIR/netmap into m (emptied first) when its full parses, its self is "running"
 * with this node key and not past its key_expiry, and the file is at most
 * NMCACHE_MAX_AGE_S old at now (unix seconds). Bad deltas are skipped and counted.
 * 0; -ENOENT (none); -ESTALE (too old or key expired), -EKEYREJECTED (another node key),
 * -EACCES (self not running), -EINVAL (full refused, empty, too big, unreadable) or
 * -ENOMEM, with info->why set;
 * m is left empty on any error. */
int nmcache_load(const char *dir, const uint8_t node_key[KEY_LEN], int64_t now,
		 struct netmap *m, struct nmcache_info *info);

#endif
