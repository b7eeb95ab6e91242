/* wg_uapi.h - the userspace backend's text protocol (wireguard.com/xplatform) and its
 * socket (wg_uapi.c): for wg_go.c and wg_golog.c, and for the tests and fuzz target. */
#ifndef VPND_WG_UAPI_H
#define VPND_WG_UAPI_H

#include <stdint.h>

#include "wg.h"

#define WG_UAPI_DIR "/var/run/wireguard"
#define WG_UAPI_MAX_RESPONSE (64U << 20)

/* "set=1\n...\n\n" for dev: malloc'd text in *out (NUL-terminated, *len without the
 * NUL). It may hold the private key: wipe it with sodium_memzero before free. */
int wg_uapi_build_set(const struct wg_device *dev, char **out, size_t *len);
/* Parses the answer to "get=1" (key=value lines, "errno=N", blank line) into dev.
 * 0, -N for errno=N (N != 0), -EBADMSG for malformed or cut-short text. */
int wg_uapi_parse_get(const char *buf, size_t len, struct wg_device *dev);
/* The answer to a set: "errno=N\n\n". 0, -N, or -EBADMSG. */
int wg_uapi_parse_errno(const char *buf, size_t len);
/* One request/answer on the UAPI socket at path: sends req, reads until the blank line
 * that ends an answer (or EOF), within timeout_ms. *resp is malloc'd and NUL-terminated;
 * wipe it before free when it may hold a key. */
int wg_uapi_exchange(const char *path, const char *req, size_t req_len, int timeout_ms,
		     char **resp, size_t *resp_len);

/* A non-blocking, close-on-exec descriptor connected to the UAPI socket at path, or
 * -errno (-ECONNREFUSED: a socket nobody listens on; -ENOENT: none). */
int wg_uapi_connect(const char *path);
/* The UAPI socket of an interface of the userspace backend. */
const char *wg_uapi_socket(const struct wg *wg);

/* CLOCK_MONOTONIC in milliseconds: the deadlines of the exchange and of wg_go.c. */
int64_t wg_uapi_now_ms(void);
/* Polls fd for events until the deadline (wg_uapi_now_ms): 0, -ETIMEDOUT or -errno. */
int wg_uapi_wait_fd(int fd, short events, int64_t deadline);

#endif
