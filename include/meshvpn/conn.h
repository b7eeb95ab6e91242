/* conn.h - a byte-stream connection on a libuv loop: plain (TCP, Unix socket) or TLS,
 * behind one small interface so HTTP and the relay protocol never know which. */
#ifndef MESHVPN_CONN_H
#define MESHVPN_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "meshvpn/addr.h"

struct conn;

/* Bytes arrived (plaintext); buf is valid only during the call. */
typedef void (*conn_read_cb)(struct conn *c, const uint8_t *buf, size_t len, void *arg);
/* The connection ended: the peer closed (UV_EOF) or an error (negative errno / UV error).
 * Called at most once; afterwards the owner must call conn_close(). */
typedef void (*conn_end_cb)(struct conn *c, int status, void *arg);
/* Established (for TLS: handshake done and peer verified); c is NULL when status < 0.
 * Never called after the starting function returned an error, nor after
 * conn_connect_cancel(). */
typedef void (*conn_connect_cb)(struct conn *c, int status, void *arg);
/* Every byte queued has gone to the kernel (conn_pending() dropped to 0 as a write
 * completed): a writer that holds back output (TLS encrypting as the socket drains)
 * sends more. */
typedef void (*conn_drain_cb)(struct conn *c, void *arg);
/* conn_write_ref(): the conn is done with the writer's buffer. */
typedef void (*conn_release_cb)(void *ctx);

/* A connect in progress (TCP, Unix socket or TLS), as its starter's out-parameter
 * names it. Backends embed it; owners only pass it to conn_connect_cancel(). */
struct conn_connect {
	void (*cancel)(struct conn_connect *cc);
};

struct conn_ops {
	int (*write)(struct conn *c, const void *buf, size_t len);
	/* NULL: conn_write_ref() copies with write */
	int (*write_ref)(struct conn *c, const void *buf, size_t len, conn_release_cb release,
			 void *ctx);
	size_t (*pending)(const struct conn *c);
	void (*close)(struct conn *c);
	void (*read_stop)(struct conn *c);
	void (*read_start)(struct conn *c);
};

struct conn {
	const struct conn_ops *ops;
	uv_loop_t *loop;
	conn_read_cb on_read;
	conn_end_cb on_end;
	conn_drain_cb on_drain;   /* NULL: none; plain conns only call it (arg as above) */
	void *arg;
	char peer[64];    /* "203.0.113.7:41641" or "unix" for logs */
	struct addr_port local;  /* our end of a TCP connection (family 0: unix, unknown) */
};

void conn_set_callbacks(struct conn *c, conn_read_cb on_read, conn_end_cb on_end, void *arg);
void conn_set_drain_cb(struct conn *c, conn_drain_cb on_drain);
/* Copies buf into the send queue. 0 or a negative errno (the connection is broken). */
int conn_write(struct conn *c, const void *buf, size_t len);
/* The same, without a copy where the backend can (TLS keeps a large write as it is until
 * it is encrypted): buf stays valid and unchanged until release(ctx), which comes
 * exactly once whatever this returns, maybe before it returns. */
int conn_write_ref(struct conn *c, const void *buf, size_t len, conn_release_cb release,
		   void *ctx);
/* Bytes queued but not yet handed to the kernel: callers use it for back-pressure. */
size_t conn_pending(const struct conn *c);
/* Bytes all connections of this thread's loop hold unsent (plain send queues and TLS
 * plaintext waiting to be encrypted): what a server still owes its clients, read in O(1)
 * (coord's load shedding). */
size_t conn_unsent_total(void);
/* For backends: the count above moves by delta bytes. */
void conn_unsent_add(size_t delta);
void conn_unsent_sub(size_t delta);
/* Stops reading and writing, frees c once libuv has closed the handle. No callback
 * is called after conn_close() returns; safe inside on_read/on_end. Bytes already
 * queued are still flushed before the socket closes (for at most a few seconds). */
void conn_close(struct conn *c);
/* Flow control for the read side. */
void conn_read_stop(struct conn *c);
void conn_read_start(struct conn *c);

/* Plain connections. accept: the listener must have a pending connection. */
int conn_plain_accept(uv_stream_t *server, struct conn **out);
/* Connect: 0 and cb follows exactly once, from the loop; or a negative errno and no cb.
 * out (may be NULL) names the attempt for conn_connect_cancel(); it is valid until cb
 * is called. TCP tries each resolved address in turn, for 10 s each at most. */
int conn_unix_connect(uv_loop_t *loop, const char *path, conn_connect_cb cb, void *arg,
		      struct conn_connect **out);
int conn_tcp_connect(uv_loop_t *loop, const char *host, uint16_t port, conn_connect_cb cb,
		     void *arg, struct conn_connect **out);
/* Gives up a connect that has not called its cb yet: cb is never called, whatever was
 * opened is closed (the loop finishes that, so run it before closing the loop). Safe at
 * any time before cb, including right after the starter returned; NULL is ignored. Not
 * allowed from inside cb or afterwards: the attempt is gone, close the conn instead.
 * A name still being resolved (in the threadpool) holds the loop until the resolver
 * returns, though its result is dropped. */
void conn_connect_cancel(struct conn_connect *cc);

/* Listeners: "HOST:PORT" ("[::1]:8443", "0.0.0.0:8443", ":8443" = all addresses; split
 * by addr_split_hostport, a name resolved).
 * On failure the handle has been handed to uv_close(): let the loop run before reusing
 * its memory. Programs must ignore SIGPIPE (libuv writes with plain write(2)). */
int conn_listen_tcp(uv_loop_t *loop, const char *hostport, uv_tcp_t *tcp, uv_connection_cb cb);
/* Unix listener with mode 0600 (removes a stale socket file first). */
int conn_listen_unix(uv_loop_t *loop, const char *path, uv_pipe_t *pipe, uv_connection_cb cb);

#endif
