/* blocklists.h - coord's blocklists (issue 10 item 3), shared by blocklists.c (the
 * sources: fetched or read on a refresh interval in libuv's threadpool, parsed streaming
 * for their counts, the last good copy of each kept in STATE/blocklists/) and
 * blcompile.c (one list compiled per distinct tag combination, off the loop, versioned
 * by a serial that only grows, served to nodes at GET /v1/dns/blocklist). */
#ifndef COORD_BLOCKLISTS_H
#define COORD_BLOCKLISTS_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "meshvpn/blocklist.h"
#include "coord.h"

#define BL_DIR "blocklists"
#define BL_MAX_BYTES (256ull << 20)      /* a source is cut here, and that reported */
#define BL_MAX_LINES (20ull * 1000 * 1000)
#define BL_FETCH_TIMEOUT_MS 60000
#define BL_FETCHES_AT_ONCE 2
#define BL_RETRY_MIN 30                  /* seconds after a failure, doubling ... */
#define BL_COMPILE_DELAY_MS 200          /* a burst of changes gives one compile */
#define BL_SUM_LEN 32                    /* BLAKE2b-256 of a source's bytes */
#define BL_ETAG_MAX 256
#define BL_ERROR_MAX 160

/* What is known of a source's last good copy: STATE/blocklists/src-ID.json beside its
 * bytes in src-ID.raw. Pure to read and write (bl_meta_*). */
struct bl_meta {
	char etag[BL_ETAG_MAX], last_modified[64];
	uint8_t sum[BL_SUM_LEN];
	int64_t fetched;          /* last fetch that succeeded (a 304 too); 0: never */
	int64_t version;          /* distinct contents seen, counting from 1 */
	int cut;                  /* over BL_MAX_BYTES or BL_MAX_LINES: the rest dropped */
	struct blocklist_stats st;
};

struct bl_source {
	struct bl_source *next;
	int64_t id;
	char *name;               /* URL or absolute path */
	char tag[64];
	struct bl_meta meta;      /* meta.version 0: no good copy */
	char error[BL_ERROR_MAX]; /* of the last attempt, "" when it worked */
	int64_t next_at;          /* when the next fetch is due */
	unsigned fails;           /* in a row, for the backoff */
	int busy, present, gone;
	/* Several instances (blshare.c): the copy the database holds, as last read (version
	 * 0: none); recheck: it changed while a job was busy with this source. */
	struct bl_meta copy;
	int recheck;
};

/* A compiled list of one tag combination ("" or "tag:a,tag:b" as dns.c keys views). */
struct bl_combo {
	struct bl_combo *next;
	char key[STORE_TAGS_LEN];
	uint8_t inputs[BL_SUM_LEN];   /* what the blob was compiled from (bl_fingerprint) */
	uint64_t serial;              /* 0: none yet */
	uint8_t *blob;
	size_t len;
	int used;
	int asked;                    /* its version was asked for since the last prune */
};

struct coord_blocklists {
	struct coord *co;
	char dir[4096];
	int64_t refresh;              /* seconds */
	struct bl_source *sources;
	struct bl_combo *combos;
	uint64_t serial;              /* the last one handed out (STATE/blocklists/serial) */
	unsigned fetching, inflight;  /* fetch jobs; every job (fetch, compile) in the pool */
	int compiling, dirty;
	atomic_int stopping;          /* read by jobs in the pool too: they cut short */
	uv_timer_t timer;
	/* metrics */
	uint64_t compiles, compile_failures, fetches, fetch_failures, not_modified;
	uint64_t copies_stored, copies_taken;   /* blshare.c */
	double last_compile_ms;
};

/* blocklists.c */
int bl_meta_parse(const char *text, size_t len, const char *source, struct bl_meta *out);
char *bl_meta_format(const struct bl_meta *m, const char *source);   /* malloc'ed */
void bl_source_path(const struct coord_blocklists *b, int64_t id, const char *ext, char *out,
		    size_t size);
struct bl_source *bl_source_find(struct coord_blocklists *b, int64_t id);
void bl_job_done(struct coord_blocklists *b);   /* after every job's after_work */
/* Writes src-ID.json (in the threadpool); -errno. */
int bl_meta_keep(const char *path, const struct bl_meta *m, const char *source);
void bl_source_unlink(const struct coord_blocklists *b, int64_t id);   /* raw, json, err */

/* blshare.c: several instances on one database. Only the jobs holder fetches; a fetch
 * that gives new content stores it (bl_share_store); the others take it from there. */
/* After the sources were matched to the policy: reads what copies the database holds and
 * takes the newer ones (or, on the holder, makes a fetch due to store its own). */
void bl_share_sync(struct coord_blocklists *b);
/* A job on s finished: what bl_share_sync saw meanwhile is acted on now. */
void bl_share_recheck(struct coord_blocklists *b, struct bl_source *s);
/* The fetch's status and, with body, the new copy, in one transaction. */
int bl_share_store(struct coord_blocklists *b, struct bl_source *s, const struct dns_rec *status,
		   const uint8_t *body, size_t len);
/* The bytes of a kept copy (the threadpool), for bl_share_store; malloc'ed. */
int bl_share_read(const char *path, uint8_t **out, size_t *len);

/* blcompile.c */
/* The inputs of a combination: the sums of its sources that have a good copy and its
 * allow / block rules, in policy order. Equal inputs, equal list: no new version. */
void bl_fingerprint(struct coord *co, const char *key, uint8_t out[BL_SUM_LEN]);
/* 1 when an entry scoped to tag ("" for none) applies to the combination key. */
int bl_applies(const char *key, const char *tag);
void bl_compile_schedule(struct coord_blocklists *b);
void bl_combos_load(struct coord_blocklists *b);
void bl_combos_free(struct coord_blocklists *b);

#endif
