/* vpnd.h - the node daemon's private interfaces: its lifecycle (daemon.c: the state
 * machine, the stream, registration, up/down/logout, returning -errno and events), prefs
 * (prefs.c), the interface (iface.c), endpoint candidates and posting (endpoints.c), the
 * status (status.c), the control socket for vpnctl (control.c: HTTP/1.1 + JSON on a 0600
 * Unix socket, the only place that speaks HTTP statuses) and the client of coord
 * (coordc.c). The netmap -> WireGuard diff is wgsync.h's. Protocol with coord:
 * meshvpn/coord_proto.h; the layout: docs/ARCHITECTURE.md. */
#ifndef VPND_VPND_H
#define VPND_VPND_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "meshvpn/addr.h"
#include "meshvpn/coord_proto.h"
#include "meshvpn/coord_urls.h"
#include "meshvpn/http.h"
#include "meshvpn/keys.h"
#include "meshvpn/tls.h"
#include "linkmon.h"
#include "netmap.h"
#include "nmcache.h"
#include "dnsbl.h"
#include "dnsconf.h"
#include "resolver.h"
#include "traversal.h"
#include "wgsync.h"

#define VPND_DEFAULT_STATE   "/var/lib/meshvpn"
#define VPND_DEFAULT_SOCKET  "/run/meshvpn/vpnd.sock"
#define VPND_DEFAULT_IFNAME  "meshvpn0"
#define VPND_DEFAULT_PORT    41641
#define VPND_DEFAULT_BACKEND "auto"

#define VPND_URL_MAX      COORD_URLS_TEXT_MAX   /* coord base URLs, comma-separated */
#define VPND_HOSTNAME_MAX 63    /* a DNS label; coord sanitises the rest */
#define VPND_AUTHKEY_MAX  128
#define VPND_REASON_LEN   160
#define VPND_DIRECT_WINDOW 180  /* a handshake this recent (s) + an endpoint = path direct */
#define VPND_UP_TIMEOUT_MS 30000
#define VPND_CIDR_V4      "100.64.0.0"  /* the tailnet's IPv4 range, /10 */

/* ---- control API (control.c): requests from vpnctl ----
 *   GET  /v1/status  -> 200 status object (vpnd_status_json)
 *   POST /v1/up      {"coord"?, "pin"?, "hostname"?, "auth_key"?, "accept_dns"?: bool}
 *                    -> 200 {"state","name","ips","approve_command"?} once running or
 *                       waiting for approval; 4xx/5xx {"error"} otherwise
 *   POST /v1/down    -> 200 {"state":"stopped"}
 *   POST /v1/logout  -> 200 {"ok":true,"coord_notified":bool}
 *   POST /v1/ping    {"peer": name|fqdn|address} -> 200 {"path","endpoint","relay","rtt_ms"}
 *                    after one disco pong (3 s at most: 504)
 *   GET  /v1/netcheck -> 200 {"done","udp","ipv4","ipv6","mapping_varies_by_dest",
 *                    "ipv6_varies","relays":[{"name","latency_ms"}],"preferred_relay"}
 *                    after a fresh STUN round
 *   GET  /v1/dns/stats -> 200 the resolver's counters (resolver_stats_json)
 *   GET  /v1/dns/log[?n=N] -> 200 {"enabled","capacity","dropped","entries":[...]} the last
 *                    N queries, oldest first (resolver_log_json)
 *   POST /v1/dns/log {"size": N} -> 200 the same object: the log resized (0 = off)
 */
#define VPND_CTL_STATUS "/v1/status"
#define VPND_CTL_UP     "/v1/up"
#define VPND_CTL_DOWN   "/v1/down"
#define VPND_CTL_LOGOUT "/v1/logout"
#define VPND_CTL_PING   "/v1/ping"
#define VPND_CTL_NETCHECK "/v1/netcheck"
#define VPND_CTL_DNS_STATS "/v1/dns/stats"   /* GET -> 200 resolver_stats_json */
#define VPND_CTL_DNS_LOG "/v1/dns/log"       /* GET -> the query log; POST {"size"} */

struct up_request {
	char coord[VPND_URL_MAX + 1];          /* "" = the one in prefs */
	char pin[TLS_PIN_LEN];                 /* "" = CA verification (or the one in prefs) */
	char hostname[VPND_HOSTNAME_MAX + 1];  /* "" = the one in prefs, else gethostname() */
	char auth_key[VPND_AUTHKEY_MAX + 1];   /* secret: up_request_wipe */
	int accept_dns;                        /* -1 = as in prefs, else 0/1 */
};

/* Parses and checks the body of POST /v1/up: a JSON object with only the keys above, each
 * a string but accept_dns (a boolean): coord an https:// URL (or unix:), pin
 * "sha256:<64 hex>", hostname 1..63 printable characters, auth_key 1..128 characters
 * without spaces or controls. 0, or
 * -EINVAL with a message for the user in err. Pure: no state, no I/O. */
int control_parse_up(const void *body, size_t len, struct up_request *out, char *err,
		     size_t errlen);
void up_request_wipe(struct up_request *r);

/* ---- prefs (prefs.c): STATE/prefs, JSON, 0600, written atomically ---- */
struct vpnd_prefs {
	char coord[VPND_URL_MAX + 1];
	char pin[TLS_PIN_LEN];
	char hostname[VPND_HOSTNAME_MAX + 1];
	int want_up;
	int accept_dns;                        /* point the system's DNS at the resolver */
	char token[COORD_TOKEN_MAX];           /* secret */
	/* last known identity, for status while stopped */
	enum node_status node_state;            /* as coord said: running, needs-approval, expired */
	char name[NM_NAME_LEN];
	char ip4[INET_ADDRSTRLEN];
	char ip6[INET6_ADDRSTRLEN];
};

/* Pure: parses prefs text (unknown keys ignored, wrong types and overlong values
 * rejected). 0 or -EINVAL. */
int prefs_parse(const char *text, size_t len, struct vpnd_prefs *p);
int prefs_load(const char *dir, struct vpnd_prefs *p);      /* -ENOENT: none yet */
int prefs_save(const char *dir, const struct vpnd_prefs *p);
int prefs_remove(const char *dir);
void prefs_wipe(struct vpnd_prefs *p);

/* ---- endpoints (endpoints.c) ---- */

/* The node's endpoint candidates: every non-link-local IPv4/IPv6 address (getifaddrs) of
 * a link that is up, has carrier (IFF_RUNNING) and is not loopback, with port, excluding
 * the interface skip_ifname and the tailnet's own addresses (self4 and all of 100.64.0.0/10, anything in self6's /48). IPv4 first.
 * Returns the count. */
int vpnd_local_endpoints(const char *skip_ifname, const struct in_addr *self4,
			 const struct in6_addr *self6, uint16_t port, struct addr_port *out, int max);

/* ---- coord client (coordc.c) ---- */

/* The netmap stream: GET /v1/map as a lib/line_stream.c with vpnd's bounds. */
#include "meshvpn/line_stream.h"

/* The stream's events (the same values as line_stream's). */
enum cc_event {
	CC_CONNECTED = LINE_STREAM_CONNECTED,   /* the stream answered 200 */
	CC_LOST = LINE_STREAM_LOST,             /* the stream ended or could not start
						 * (detail: -errno); retrying */
	CC_REFUSED = LINE_STREAM_REFUSED,       /* coord answered the stream with an HTTP
						 * error (detail: status); 401/403 are not
						 * retried (the token is unknown or the node
						 * rejected) */
};

struct coordc;
typedef void (*cc_line_cb)(struct coordc *cc, const char *line, size_t len, void *arg);
typedef void (*cc_event_cb)(struct coordc *cc, enum cc_event ev, int detail, void *arg);

struct coordc {
	struct line_stream ls;
	int active;                  /* a stream is wanted (ls.active, as of the last call
				      * or event) */
	cc_line_cb on_line;
	cc_event_cb on_event;
	void *arg;
	const struct netmap *nm;     /* may be NULL: the map a reconnect resumes */
};

#define CC_BACKOFF_MIN_MS 1000
#define CC_BACKOFF_MAX_MS 30000
#define CC_IDLE_TIMEOUT_MS 90000          /* coord sends keepalives every 30 s */
#define CC_MAX_LINE (64u << 20)           /* a full netmap of NM_MAX_PEERS fits */

int coordc_init(struct coordc *cc, uv_loop_t *loop, cc_line_cb on_line, cc_event_cb on_event,
		void *arg);
/* (Re)starts the stream now with these credentials; an open one is dropped first. */
int coordc_start(struct coordc *cc, const char *url, const char *pin, const char *token);
/* Drops the stream and stops retrying. No callback afterwards. */
void coordc_stop(struct coordc *cc);
/* Stops and closes the timers (asynchronously: run the loop afterwards). */
void coordc_close(struct coordc *cc);
/* Where the other calls go: while the stream runs, the instance it uses first (by
 * address when pinned: a name's other addresses may be other instances) and the rest of
 * the list after it; else list as it is. */
void coordc_targets(const struct coordc *cc, const char *list, const char *pin, char *out,
		    size_t size);
/* The instance the stream uses or tries: its URL as written in the list, or by_addr with
 * the address dialled; while stopped, list's first URL. */
void coordc_current(const struct coordc *cc, const char *list, int by_addr, char *out,
		    size_t size);

/* Blocking calls to coord, run with http_fetch in libuv's threadpool. */
enum coord_call_kind { CALL_REGISTER, CALL_ENDPOINTS, CALL_LOGOUT };

struct coord_call;
typedef void (*coord_call_cb)(struct coord_call *call, void *arg);

struct coord_call {
	uv_work_t work;
	enum coord_call_kind kind;
	/* in */
	char url[COORD_URLS_ORDERED_MAX + 1];   /* tried in order (coord_urls_fetch) */
	char pin[TLS_PIN_LEN];
	char token[COORD_TOKEN_MAX];            /* endpoints, logout */
	struct node_keys keys;                  /* register */
	char hostname[VPND_HOSTNAME_MAX + 1];   /* register */
	char auth_key[VPND_AUTHKEY_MAX + 1];    /* register, may be "" */
	char *body;                             /* endpoints: the JSON body (owned) */
	size_t body_len;
	/* out */
	int rc;                                 /* 0 or -errno of the transport */
	int status;                             /* HTTP status */
	char *resp;                             /* body (owned), NUL-terminated */
	size_t resp_len;
	coord_call_cb done;
	void *arg;
};

struct coord_call *coord_call_new(enum coord_call_kind kind, const char *url, const char *pin);
struct vpnd;
/* A call to the daemon's coord instances, the one in use first (coordc_targets). */
struct coord_call *vpnd_call_new(struct vpnd *d, enum coord_call_kind kind);
/* Queues the call; done runs on the loop thread afterwards (and only if this returned 0). */
int coord_call_start(uv_loop_t *loop, struct coord_call *call, coord_call_cb done, void *arg);
/* Wipes keys, auth key and token; frees everything. NULL ok. */
void coord_call_free(struct coord_call *call);
/* A short text for a failed call: coord's {"error"} or the transport error. */
void coord_call_error(const struct coord_call *call, char *out, size_t size);

/* ---- the daemon (daemon.c) ---- */

enum vpnd_state { VPND_STOPPED = 0, VPND_NEEDS_APPROVAL, VPND_RUNNING, VPND_EXPIRED };

struct vpnd_opts {
	const char *state_dir;
	const char *socket;
	const char *backend;     /* auto | kernel | userspace */
	const char *ifname;
	uint16_t port;
	const char *metrics;     /* HOST:PORT for Prometheus /metrics; NULL = none */
	int dns_listen;          /* the resolver on the node's tailnet IPv4 too (for peers) */
	const char *dns_tls_ca;  /* CA bundle for DNS-over-TLS upstreams; NULL = the system's */
	const char *resolv_conf; /* --accept-dns without systemd-resolved: this file */
	const char *resolvectl;  /* and with it: this program (NULL: the defaults, dnsconf.h) */
	const char *resolved_dir;
	unsigned dns_log;        /* query log entries (0: off) */
};

/* Counters for --metrics. */
struct vpnd_stats {
	uint64_t netmap_lines;          /* applied */
	uint64_t netmap_resumes;        /* streams that continued the map (coord's "resume") */
	uint64_t netmap_bad_lines;      /* refused and skipped */
	uint64_t wg_errors;             /* interface failures (wgsync counts its own) */
	uint64_t coord_stream_lost;     /* netmap stream ended or could not start */
	uint64_t endpoint_posts;        /* endpoint sets coord accepted */
};

/* What the daemon tells its control front (control.c) happened. err is 0 or a negative
 * errno that says what kind of outcome it is:
 *   VPND_EV_UP_DONE: the outcome a pending `up` waits for. 0: answer from the state now;
 *     -EACCES removed by an admin, -ECANCELED overtaken (down, logout), -EREMOTEIO coord
 *     failed or is unreachable, anything else a local failure; msg says it for the user.
 *   VPND_EV_LOGOUT_DONE: a logout that waited for coord finished (coord_notified). */
enum vpnd_event_kind { VPND_EV_UP_DONE, VPND_EV_LOGOUT_DONE };

struct vpnd_event {
	enum vpnd_event_kind kind;
	int err;
	const char *msg;
	int coord_notified;
};

struct vpnd;
typedef void (*vpnd_event_cb)(struct vpnd *d, const struct vpnd_event *ev, void *arg);

/* Endpoint posting (endpoints.c). */
struct vpnd_endpoints {
	struct coord_call *call;        /* post in flight */
	struct addr_port posting[NM_MAX_ENDPOINTS];
	int n_posting;
	int fresh;                      /* a new stream: post again even if unchanged */
	struct addr_port posted[NM_MAX_ENDPOINTS];  /* the last set coord accepted */
	int n_posted, posted_ok;
	char home_posting[NM_NAME_LEN], home_posted[NM_NAME_LEN];  /* home relay */
};

/* The control socket (control.c): requests waiting for the daemon's outcome. */
struct pending_up;
struct vpnd_control {
	struct http_server *server;
	uv_pipe_t pipe;
	int have_pipe;
	uv_timer_t expire;              /* answers pending `up`s past VPND_UP_TIMEOUT_MS */
	int have_timer;
	struct pending_up *ups;
	struct http_request *logout_req;
};

struct wg;
struct netif;

struct vpnd {
	uv_loop_t *loop;
	struct vpnd_opts opts;
	struct vpnd_prefs prefs;
	struct node_keys keys;
	int have_keys;

	enum vpnd_state state;
	char reason[VPND_REASON_LEN];   /* why stopped (or what is going on) */
	struct netmap nm;
	int nm_from_cache;              /* nm came from STATE/netmap, coord's full not yet */
	struct nmcache cache;           /* STATE/netmap, kept from the stream while running */
	struct wgsync sync;             /* the peers as configured in WireGuard now */

	struct wg *wg;
	struct netif *nif;
	int ifindex;
	uint8_t wg_pub[KEY_LEN];        /* the node key the interface runs with */
	int have_addrs;
	struct in_addr if_ip4;
	struct in6_addr if_ip6;
	int wg_failures;

	struct coordc cc;
	int cc_connected;
	char coord_error[VPND_REASON_LEN];  /* the last stream failure, "" while connected */
	struct coord_call *reg;         /* registration in flight */
	struct coord_call *logout_call; /* logout in flight */
	struct vpnd_endpoints eps;
	int jobs;                       /* threadpool calls in flight */

	struct vpnd_control ctl;
	vpnd_event_cb on_event;
	void *event_arg;

	struct traversal tv;            /* paths: disco, STUN, relays (traversal.h) */
	struct resolver rs;             /* DNS on 100.100.100.100 (resolver.h) */
	struct dnsbl dnsbl;             /* coord's compiled blocklist, fetched (dnsbl.h) */
	struct dnsconf dnsconf;         /* the system's DNS under --accept-dns (dnsconf.h) */
	struct linkmon linkmon;         /* address and link changes -> endpoints again */
	struct vpnd_stats stats;
	struct metrics_server *metrics;

	uv_timer_t tick;
	unsigned ticks;
	int closing;
};

int vpnd_init(struct vpnd *d, uv_loop_t *loop, const struct vpnd_opts *opts);
/* Clean shutdown: answers pending requests, drops the stream, removes the interface,
 * closes handles. Run the loop afterwards. */
void vpnd_shutdown(struct vpnd *d);

const char *vpnd_state_name(enum vpnd_state s);

/* Control actions. up: 0 when the outcome is known now (the state says it),
 * -EINPROGRESS when it comes later as VPND_EV_UP_DONE, -EBUSY while a registration or
 * logout runs, -EDESTADDRREQ when no coord is known, else -errno; err says it. */
int vpnd_up(struct vpnd *d, const struct up_request *r, char *err, size_t errlen);
void vpnd_down(struct vpnd *d);
/* --accept-dns: the system's DNS pointed at the resolver while the node runs with the
 * preference on, put back otherwise (daemon.c; cheap when nothing changed). */
void vpnd_dns_follow(struct vpnd *d);
/* 0: logged out without telling coord; -EINPROGRESS: telling coord, VPND_EV_LOGOUT_DONE
 * follows; -EBUSY while a registration or logout runs. */
int vpnd_logout(struct vpnd *d, char *err, size_t errlen);

/* status.c: the status object of GET /v1/status. */
json_t *vpnd_status_json(struct vpnd *d);
/* Prometheus text for --metrics (vpnd_metrics.c): state, coord, peers with their
 * traffic and handshakes (from the status), the counters above. arg is the vpnd. */
struct metrics_text;
void vpnd_metrics_fill(struct metrics_text *t, void *arg);

/* iface.c: the interface with the node key, port, MTU, the node's addresses and routes
 * (0, or -errno with d->reason set); iface_down removes it. */
int iface_up(struct vpnd *d);
void iface_down(struct vpnd *d);
/* The tailnet's IPv6 /48 of an address: the low 80 bits zeroed. */
void vpnd_ula48(const struct in6_addr *ip6, struct in6_addr *out);

/* endpoints.c: post the candidates if they differ from what coord has (or the stream is
 * new); the tick's periodic check; forget them with the identity; linkmon's callback. */
void endpoints_post(struct vpnd *d);
void endpoints_stream_started(struct vpnd *d);
void endpoints_tick(struct vpnd *d, unsigned ticks);
void endpoints_forget(struct vpnd *d);
void endpoints_links_changed(struct linkmon *lm, void *arg);

/* control.c: listens on opts.socket and takes the daemon's events; close answers what
 * still waits with 503. */
int control_listen(struct vpnd *d);
void control_close(struct vpnd *d);

#endif
