/* dnsconf.h - `vpnctl up --accept-dns`: the system's resolver configuration pointed at
 * vpnd's resolver (100.100.100.100, the tailnet domain and routed domains), and put back
 * exactly as it was on `down`, on shutdown, or on the next start after a crash. Two
 * modes: systemd-resolved (resolv.conf is a link into /run/systemd/resolve: per link
 * with resolvectl dns/domain/revert) or a plain resolv.conf (the original saved to the
 * state dir, the new file written atomically, the original's bytes or symlink put back
 * unless someone else changed the file meanwhile). The pure parts (the mode, the new
 * resolv.conf text) come first and are unit-tested; dnsconf.c is the I/O too. */
#ifndef VPND_DNSCONF_H
#define VPND_DNSCONF_H

#include <stddef.h>
#include <stdint.h>

#include "netmap.h"

#define DNSCONF_RESOLV_CONF  "/etc/resolv.conf"
#define DNSCONF_RESOLVECTL   "/usr/bin/resolvectl"
#define DNSCONF_RESOLVED_DIR "/run/systemd/resolve"
#define DNSCONF_BACKUP       "dns-backup"     /* in the state dir, 0600 */
#define DNSCONF_ROUTES_MAX   16
#define DNSCONF_FILE_MAX     65536            /* a resolv.conf larger than this is not touched */
#define DNSCONF_SEARCH_MAX   6                /* glibc's classic limit */

enum dnsconf_mode { DNSCONF_NONE = 0, DNSCONF_FILE, DNSCONF_RESOLVED };

/* What the system should ask: our resolver, the tailnet domain, the routed domains, and
 * whether we take every name (the policy has upstreams) or only ours. */
struct dnsconf_want {
	char domain[64];                                  /* "" = none */
	char routes[DNSCONF_ROUTES_MAX][DNSPOL_NAME_MAX + 1];
	int n_routes;
	int all;
};

/* Pure: the wish from the netmap's DNS policy (NULL: only the resolver). */
void dnsconf_want_of(const struct nm_dns *dns, struct dnsconf_want *w);
/* Pure: systemd-resolved manages the file when its real path (symlinks resolved) lies in
 * the resolved dir (both real paths; NULL: does not exist). */
enum dnsconf_mode dnsconf_pick_mode(const char *real_conf, const char *real_resolved_dir);
/* Pure: the new resolv.conf from the old one (old may be empty): a header, our
 * nameserver first (the old ones after it, glibc's three at most, only when we do not
 * take every name), search the tailnet domain then the old search/domain words, the old
 * options lines kept. Length, or -ENOSPC. */
int dnsconf_build(const char *old, size_t old_len, const char *ns, const struct dnsconf_want *w,
		  char *out, size_t size);
/* Pure: the argv lists for resolvectl (argv[0] = path): `dns IF ADDR` and `domain IF
 * ~D...` (~. with w->all). Returns the count of words of the domain call; the arrays take
 * DNSCONF_ROUTES_MAX + 6 pointers, valid as long as w. */
int dnsconf_resolved_argv(const char *resolvectl, const char *ifname, const char *ns,
			  const struct dnsconf_want *w, char dom_bufs[][DNSPOL_NAME_MAX + 2],
			  const char **dns_argv, const char **dom_argv);

struct dnsconf {
	char resolv_conf[4096];
	char resolvectl[4096];
	char resolved_dir[4096];
	char backup[4096];           /* STATE/dns-backup */
	char ifname[16];
	enum dnsconf_mode mode;      /* applied now; NONE: nothing of ours is in place */
	int lost;                    /* someone else replaced our file: hands off until restore */
	int failed;                  /* the last apply of `applied` failed: not again each tick */
	struct dnsconf_want applied;
	uint8_t ours[32], prev[32];  /* sha256 of the file we wrote, and of the one before */
};

/* resolvectl / resolved_dir may be NULL: the defaults. */
void dnsconf_init(struct dnsconf *c, const char *state_dir, const char *ifname,
		  const char *resolv_conf, const char *resolvectl, const char *resolved_dir);
/* Points the system at the resolver (or updates what it says); nothing when the same wish
 * is in place. 0 or -errno (logged). */
int dnsconf_apply(struct dnsconf *c, const struct dnsconf_want *w);
/* Puts back what was there (from memory or, after a crash, from the backup); nothing when
 * nothing of ours is in place. 0 or -errno (logged). */
int dnsconf_restore(struct dnsconf *c);
/* A backup on disk (we changed the system and have not put it back). */
int dnsconf_pending(const struct dnsconf *c);

#endif
