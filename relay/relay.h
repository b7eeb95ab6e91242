/* relay.h - the relay's private interface: the server core (listeners, connections,
 * forwarding), admission from coord, its key, the pin report, metrics and the STUN
 * server's entry points. */
#ifndef RELAY_RELAY_H
#define RELAY_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "meshvpn/conn.h"
#include "meshvpn/http.h"
#include "meshvpn/keymap.h"
#include "meshvpn/keys.h"
#include "meshvpn/line_stream.h"
#include "meshvpn/metrics.h"
#include "meshvpn/relay_frame.h"
#include "meshvpn/tls.h"
#include "stun_server.h"

#define RELAY_QUEUE_MAX (1U << 20)      /* bytes queued towards one client before drops */
#define RELAY_PAUSE_MS 10               /* a sender whose destination is full stops reading */
#define RELAY_HELLO_TIMEOUT_MS 10000    /* SERVER_HELLO -> CLIENT_HELLO */
#define RELAY_GONE_PER_S 16             /* PEER_GONE(NOT_HERE) per sender per second */
#define RELAY_ADMIT_MAX (1U << 20)      /* keys in one admission list (and its saved copy) */
#define RELAY_KEY_SHORT 9               /* log prefix of a node key: 8 base64 chars + NUL */

/* Why a connection never got admitted. */
enum relay_refuse {
	REFUSE_NOT_ADMITTED, REFUSE_BAD_HELLO, REFUSE_TIMEOUT, REFUSE_PROTOCOL, REFUSE_OVERSIZE,
	REFUSE_LEFT,            /* the client went before its hello */
	REFUSE_N
};
/* Why an admitted connection ended. */
enum relay_close {
	CLOSE_PEER,             /* the client closed it (or the socket failed) */
	CLOSE_TIMEOUT, CLOSE_PROTOCOL, CLOSE_OVERSIZE,
	CLOSE_REPLACED,         /* the same key connected again */
	CLOSE_NOT_ADMITTED,     /* coord removed the key */
	CLOSE_STOPPING,
	CLOSE_N
};
enum relay_drop { DROP_QUEUE_FULL, DROP_UNKNOWN_DST, DROP_OVERSIZE, DROP_N };

extern const char *const relay_refuse_names[REFUSE_N];
extern const char *const relay_close_names[CLOSE_N];
extern const char *const relay_drop_names[DROP_N];

struct relay_opts {
	uint64_t keepalive_ms;          /* KEEPALIVE after this long without sending */
	uint64_t timeout_ms;            /* close after this long without receiving */
	uint64_t hello_timeout_ms;
	size_t queue_max;               /* conn_pending() of a destination before drops */
	uint64_t pause_ms;
	struct http_server_opts http;   /* the request before the upgrade (slow loris) */
};
/* The defaults above (RELAY_KEEPALIVE_S, RELAY_TIMEOUT_S, ...). */
void relay_opts_default(struct relay_opts *o);

struct relay_stats {
	uint64_t accepted;              /* admitted connections */
	uint64_t refused[REFUSE_N];
	uint64_t closed[CLOSE_N];
	uint64_t packets, bytes;        /* forwarded (RECV_PACKET queued; bytes of data) */
	uint64_t drops[DROP_N];
	uint64_t pauses;                /* a sender stopped reading for a full destination */
};

enum relay_client_state { RC_HELLO, RC_ACTIVE };

/* One upgraded connection (client.c); forward.c and admission.c look into it. */
struct relay_client {
	struct relay_server *srv;
	struct conn *c;
	struct relay_client *prev, *next;              /* srv->clients */
	struct relay_client *pprev, *pnext;            /* srv->paused, when paused */
	int paused;
	enum relay_client_state state;
	struct relay_reader rd;
	uint8_t challenge[RELAY_CHALLENGE_LEN];
	uint8_t key[KEY_LEN];                          /* proven by the hello (RC_ACTIVE) */
	char key_short[RELAY_KEY_SHORT];
	uint64_t started_ms, last_rx_ms, last_tx_ms;
	/* PEER_GONE(NOT_HERE) limiter: RELAY_GONE_PER_S per second, and one per
	 * destination per second among the last few destinations. */
	uint64_t gone_window_ms;
	unsigned gone_count, gone_next;
	struct { uint8_t key[KEY_LEN]; uint64_t ms; } gone[4];
};

struct relay_server {
	uv_loop_t *loop;
	struct relay_opts o;
	uint8_t pub[KEY_LEN], priv[KEY_LEN];           /* the relay's X25519 key (secret) */
	struct http_server *http;
	struct tls_config *tls;                        /* NULL: no TLS listener */
	uv_tcp_t tls_tcp, plain_tcp;
	int have_tls, have_plain;
	uv_timer_t tick, resume;
	struct relay_client *clients;                  /* every upgraded connection */
	struct relay_client *paused;                   /* stopped reading, until resume */
	size_t n_hello, n_active;
	struct keymap by_key;                          /* admitted: node key -> client */
	struct keymap admitted;                        /* node key -> uint8_t[KEY_LEN] */
	int admission_ready;                           /* a full list came (coord or saved) */
	struct relay_stats stats;
	uint8_t *scratch;                              /* one whole frame */
	int stopping;
};

/* ---- server.c: the core ---- */

/* o NULL: defaults. Copies the key. 0 or -errno. */
int relay_server_init(struct relay_server *s, uv_loop_t *loop, const struct relay_opts *o,
		      const uint8_t pub[KEY_LEN], const uint8_t priv[KEY_LEN]);
/* Listeners; tls is the server config (the server holds it and frees it in close). */
int relay_server_listen_tls(struct relay_server *s, const char *hostport, struct tls_config *tls);
int relay_server_listen_plain(struct relay_server *s, const char *hostport);
/* The bound port of the TLS (tls = 1) or plain listener, 0 when none. */
uint16_t relay_server_port(struct relay_server *s, int tls);
/* Stops listening and closes every connection; with restarting, admitted clients are
 * told RESTARTING first (what was queued is still flushed). Run the loop afterwards. */
void relay_server_stop(struct relay_server *s, int restarting);
/* Frees what is left (after stop and a loop run); wipes the key. */
void relay_server_close(struct relay_server *s);

/* ---- client.c: one connection ---- */

/* `GET /relay` with the upgrade: takes the connection, sends SERVER_HELLO. */
void relay_client_accept(struct relay_server *s, struct http_request *req);
/* Writes a whole frame; the client's last-sent time moves. 0 or -errno. */
int relay_client_send(struct relay_client *cl, const void *buf, size_t len);
/* Closes an admitted connection (why) or a refused one (refuse >= 0 counts it there). */
void relay_client_close(struct relay_client *cl, enum relay_close why);
void relay_client_refuse(struct relay_client *cl, enum relay_refuse why);
/* Tells a client its key is not admitted (PEER_GONE(own key, NOT_ADMITTED)) and closes. */
void relay_client_kick(struct relay_client *cl);
/* Keepalives, timeouts (the server's tick). */
void relay_clients_tick(struct relay_server *s);

/* ---- forward.c ---- */

/* A checked SEND_PACKET from an admitted client. */
void relay_forward(struct relay_client *from, const struct relay_frame *f);
/* Restarts the readers stopped for a full destination (the resume timer). */
void relay_forward_resume(struct relay_server *s);
void relay_forward_unpause(struct relay_client *cl);

/* ---- admission.c: the admitted keys ---- */

/* A full list: replaces the set (keys copied) and disconnects connected keys no longer
 * in it; makes admission ready. 0, -ENOMEM (the old set stays), -E2BIG. */
int relay_admit_set(struct relay_server *s, const uint8_t (*keys)[KEY_LEN], size_t n);
int relay_admit_add(struct relay_server *s, const uint8_t key[KEY_LEN]);
/* Removes the key and disconnects it at once. */
void relay_admit_remove(struct relay_server *s, const uint8_t key[KEY_LEN]);
int relay_admitted(const struct relay_server *s, const uint8_t key[KEY_LEN]);
void relay_admit_free(struct relay_server *s);

/* Following coord's relay stream (admission.c). */
struct relay_admission {
	struct relay_server *srv;
	struct line_stream ls;
	char path[4096];                /* STATE/admitted */
	int connected;                  /* the stream answered 200 and is open */
	uv_timer_t save;                /* changes since the last save go SAVE_DELAY_MS later */
	int dirty;
	uint64_t fulls, deltas, resumes;
	int64_t version;                /* the last "v" taken; with epoch what a reconnect
					 * resumes from (0: ask for a full) */
	char epoch[17];
};
int relay_admission_init(struct relay_admission *a, struct relay_server *s, const char *state_dir);
/* The saved list of an earlier run, when there is one: admission ready from it. 0 (none
 * is fine too), -EINVAL for a corrupt file (ignored by the caller, logged). */
int relay_admission_load(struct relay_admission *a);
int relay_admission_start(struct relay_admission *a, const char *url, const char *pin,
			  const char *token);
/* One stream line (public for tests): 0, or -EBADMSG for a line not understood. */
int relay_admission_line(struct relay_admission *a, const char *line, size_t len);
/* Saves pending changes, stops the stream and the timer (run the loop afterwards). */
void relay_admission_close(struct relay_admission *a);

/* ---- relay_key.c ---- */

/* DIR/relay.key (0600, base64 of the private key), created when absent. */
int relay_key_load(const char *dir, uint8_t pub[KEY_LEN], uint8_t priv[KEY_LEN]);

/* ---- pin_report.c: POST /v1/relay/pin until coord takes it ---- */

struct relay_pin_report {
	uv_loop_t *loop;
	uv_work_t work;
	uv_timer_t retry;
	char url[COORD_URLS_TEXT_MAX + 1], coord_pin[TLS_PIN_LEN], pin[TLS_PIN_LEN];
	char to[COORD_URLS_ORDERED_MAX + 1];            /* this try's order of url */
	const struct line_stream *follow;               /* admission's: its instance first */
	char token[LINE_STREAM_TOKEN_MAX];              /* secret */
	uint64_t backoff_ms;
	int busy, done, closing, rc, status;
};
/* url: coord's instances (a comma list); each try goes to the one the admission stream
 * uses first once p->follow is set, then the others. */
int relay_pin_report_start(struct relay_pin_report *p, uv_loop_t *loop, const char *url,
			   const char *coord_pin, const char *token, const char *pin);
void relay_pin_report_close(struct relay_pin_report *p);

/* ---- metrics.c ---- */

struct relay_metrics_src {
	struct relay_server *srv;
	struct relay_admission *adm;    /* may be NULL */
	struct stun_server *stun;       /* may be NULL */
};
void relay_metrics_fill(struct metrics_text *t, void *arg);

/* Logs: the first 8 base64 characters of a key. */
void relay_key_short(const uint8_t key[KEY_LEN], char out[RELAY_KEY_SHORT]);

#endif
