/* conn.c - byte streams on libuv: the generic front and the plain TCP (RFC 9293) / Unix socket (unix(7)) backend. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "meshvpn/addr.h"
#include "meshvpn/conn.h"
#include "meshvpn/log.h"

#define READ_BUF_SIZE 65536
#define CONNECT_TIMEOUT_MS 10000   /* per address tried */
#define LINGER_TIMEOUT_MS 5000     /* how long conn_close waits to flush queued bytes */
#define KEEPALIVE_SECS 60

struct plain_linger {
	uv_shutdown_t req;
	uv_timer_t timer;
};

struct conn_plain {
	struct conn base;
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	size_t pending;             /* bytes in uv_write requests not yet completed */
	struct plain_linger *linger;
	unsigned reading : 1;       /* uv_read_start is in effect */
	unsigned want_read : 1;     /* the owner wants reads (conn_read_start/stop) */
	unsigned ended : 1;         /* on_end delivered (or due): no more reads */
	unsigned broken : 1;        /* a write failed: no more writes */
	unsigned closing : 1;       /* conn_close called */
};

struct plain_write {
	uv_write_t req;
	struct conn_plain *p;
	size_t len;
	uint8_t data[];
};

#define plain_of(c) ((struct conn_plain *)(void *)(c))

/* One read buffer per thread: reads on one loop never overlap and on_read must not keep
 * the pointer, so a per-connection buffer would only cost memory. */
static _Thread_local char read_buf[READ_BUF_SIZE];
/* conn_unsent_total(): every conn is written and completed on its loop's thread. */
static _Thread_local size_t unsent_total;

void conn_set_callbacks(struct conn *c, conn_read_cb on_read, conn_end_cb on_end, void *arg)
{
	c->on_read = on_read;
	c->on_end = on_end;
	c->arg = arg;
}

void conn_set_drain_cb(struct conn *c, conn_drain_cb on_drain)
{
	c->on_drain = on_drain;
}

size_t conn_unsent_total(void)
{
	return unsent_total;
}

void conn_unsent_add(size_t delta)
{
	unsent_total += delta;
}

void conn_unsent_sub(size_t delta)
{
	unsent_total = delta > unsent_total ? 0 : unsent_total - delta;
}

int conn_write(struct conn *c, const void *buf, size_t len)
{
	return c->ops->write(c, buf, len);
}

int conn_write_ref(struct conn *c, const void *buf, size_t len, conn_release_cb release,
		   void *ctx)
{
	int r;

	if (c->ops->write_ref)
		return c->ops->write_ref(c, buf, len, release, ctx);
	r = c->ops->write(c, buf, len);
	release(ctx);
	return r;
}

size_t conn_pending(const struct conn *c)
{
	return c->ops->pending(c);
}

void conn_close(struct conn *c)
{
	if (c)
		c->ops->close(c);
}

void conn_read_stop(struct conn *c)
{
	c->ops->read_stop(c);
}

void conn_read_start(struct conn *c)
{
	c->ops->read_start(c);
}

/* -- plain backend -- */

static void linger_close_cb(uv_handle_t *h)
{
	struct conn_plain *p = h->data;

	free(p->linger);
	free(p);
}

static void plain_close_cb(uv_handle_t *h)
{
	struct conn_plain *p = h->data;

	if (p->linger) {
		/* The shutdown request has completed or been cancelled by now. */
		uv_close((uv_handle_t *)&p->linger->timer, linger_close_cb);
		return;
	}
	free(p);
}

static void plain_end(struct conn_plain *p, int status)
{
	if (p->ended)
		return;
	p->ended = 1;
	if (p->reading) {
		uv_read_stop(&p->h.stream);
		p->reading = 0;
	}
	if (p->base.on_end)
		p->base.on_end(&p->base, status, p->base.arg);
}

static void plain_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	buf->base = read_buf;
	buf->len = sizeof(read_buf);
}

static void plain_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn_plain *p = s->data;

	if (p->closing) {
		if (nread < 0 && p->reading) {
			uv_read_stop(s);
			p->reading = 0;
		}
		return;
	}
	if (p->ended)
		return;
	if (nread > 0) {
		if (p->base.on_read)
			p->base.on_read(&p->base, (const uint8_t *)buf->base, (size_t)nread, p->base.arg);
		return;
	}
	if (nread < 0)
		plain_end(p, (int)nread);
}

static int plain_start_reading(struct conn_plain *p)
{
	int r;

	if (p->reading || !p->want_read || p->ended || p->closing)
		return 0;
	r = uv_read_start(&p->h.stream, plain_alloc_cb, plain_read_cb);
	if (r == 0)
		p->reading = 1;
	return r;
}

static void plain_read_stop(struct conn *c)
{
	struct conn_plain *p = plain_of(c);

	p->want_read = 0;
	if (p->reading) {
		uv_read_stop(&p->h.stream);
		p->reading = 0;
	}
}

static void plain_read_start(struct conn *c)
{
	struct conn_plain *p = plain_of(c);
	int r;

	p->want_read = 1;
	r = plain_start_reading(p);
	if (r < 0)
		log_warn("conn read start failed", "peer=%s err=%s", p->base.peer, uv_err_name(r));
}

static void plain_write_cb(uv_write_t *req, int status)
{
	struct plain_write *w = req->data;
	struct conn_plain *p = w->p;

	p->pending -= w->len;
	conn_unsent_sub(w->len);
	free(w);
	if (status < 0 && !p->broken) {
		p->broken = 1;
		if (!p->closing && status != UV_ECANCELED)
			plain_end(p, status);
		return;
	}
	if (!p->pending && !p->closing && !p->broken && p->base.on_drain)
		p->base.on_drain(&p->base, p->base.arg);
}

static int plain_write(struct conn *c, const void *buf, size_t len)
{
	struct conn_plain *p = plain_of(c);
	const uint8_t *d = buf;
	struct plain_write *w;
	uv_buf_t b;
	int r;

	if (p->closing || p->ended || p->broken)
		return -EPIPE;
	if (!len)
		return 0;
	if (!p->pending) {
		/* Nothing queued: hand the bytes to the kernel now and copy only the rest. */
		b.base = (char *)(uintptr_t)d;
		b.len = len;
		r = uv_try_write(&p->h.stream, &b, 1);
		if (r >= 0) {
			d += r;
			len -= (size_t)r;
			if (!len)
				return 0;
		} else if (r != UV_EAGAIN && r != UV_ENOSYS) {
			p->broken = 1;
			return r == UV_ECONNRESET || r == UV_EPIPE ? -EPIPE : r;
		}
	}
	w = malloc(sizeof(*w) + len);
	if (!w)
		return -ENOMEM;
	memcpy(w->data, d, len);
	w->len = len;
	w->p = p;
	w->req.data = w;
	b.base = (char *)w->data;
	b.len = len;
	r = uv_write(&w->req, &p->h.stream, &b, 1, plain_write_cb);
	if (r < 0) {
		free(w);
		p->broken = 1;
		return r == UV_ECONNRESET || r == UV_EPIPE ? -EPIPE : r;
	}
	p->pending += len;
	conn_unsent_add(len);
	return 0;
}

static size_t plain_pending(const struct conn *c)
{
	return plain_of(c)->pending;
}

static void plain_close_now(struct conn_plain *p)
{
	if (!uv_is_closing(&p->h.handle))
		uv_close(&p->h.handle, plain_close_cb);
}

static void linger_shutdown_cb(uv_shutdown_t *req, int status)
{
	plain_close_now(req->data);
}

static void linger_timer_cb(uv_timer_t *t)
{
	struct conn_plain *p = t->data;

	log_debug("conn close timed out flushing", "peer=%s pending=%zu", p->base.peer, p->pending);
	uv_timer_stop(t);
	plain_close_now(p);
}

/* Queued bytes are still flushed (shutdown after the queue drains), but for no longer
 * than LINGER_TIMEOUT_MS, so a peer that stops reading cannot pin the memory. */
static void plain_close(struct conn *c)
{
	struct conn_plain *p = plain_of(c);
	struct plain_linger *l;

	if (p->closing)
		return;
	p->closing = 1;
	p->base.on_read = NULL;
	p->base.on_end = NULL;
	p->base.on_drain = NULL;
	if (p->reading) {
		uv_read_stop(&p->h.stream);
		p->reading = 0;
	}
	if (p->pending && !p->broken && (l = calloc(1, sizeof(*l)))) {
		l->req.data = p;
		if (uv_shutdown(&l->req, &p->h.stream, linger_shutdown_cb) == 0) {
			p->linger = l;
			uv_timer_init(p->base.loop, &l->timer);
			l->timer.data = p;
			uv_timer_start(&l->timer, linger_timer_cb, LINGER_TIMEOUT_MS, 0);
			/* Drain (and drop) what the peer still sends: closing a socket with unread
			 * bytes sends a RST, which can destroy the reply still in flight. */
			if (!p->ended && uv_read_start(&p->h.stream, plain_alloc_cb, plain_read_cb) == 0)
				p->reading = 1;
			return;
		}
		free(l);
	}
	uv_close(&p->h.handle, plain_close_cb);
}

static const struct conn_ops plain_ops = {
	.write = plain_write,
	.pending = plain_pending,
	.close = plain_close,
	.read_stop = plain_read_stop,
	.read_start = plain_read_start,
};

static struct conn_plain *plain_new(uv_loop_t *loop, uv_handle_type type)
{
	struct conn_plain *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return NULL;
	p->base.ops = &plain_ops;
	p->base.loop = loop;
	p->want_read = 1;
	if (type == UV_TCP)
		r = uv_tcp_init(loop, &p->h.tcp);
	else
		r = uv_pipe_init(loop, &p->h.pipe, 0);
	if (r < 0) {
		free(p);
		return NULL;
	}
	p->h.handle.data = p;
	return p;
}

/* Closes a connection the owner never saw. */
static void plain_discard(struct conn_plain *p)
{
	p->closing = 1;
	plain_close_now(p);
}

static void format_addr(const struct sockaddr *sa, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		uv_ip4_name(in, ip, sizeof(ip));
		snprintf(out, size, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		uv_ip6_name(in6, ip, sizeof(ip));
		snprintf(out, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(out, size, "?");
	}
}

/* Names the peer, sets socket options, starts reading: the last steps before the owner
 * gets a new connection. */
static int plain_ready(struct conn_plain *p)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (p->h.handle.type == UV_TCP) {
		if (uv_tcp_getpeername(&p->h.tcp, (struct sockaddr *)&ss, &len) == 0)
			format_addr((struct sockaddr *)&ss, p->base.peer, sizeof(p->base.peer));
		else
			snprintf(p->base.peer, sizeof(p->base.peer), "?");
		len = sizeof(ss);
		if (uv_tcp_getsockname(&p->h.tcp, (struct sockaddr *)&ss, &len) == 0)
			addr_from_sockaddr((struct sockaddr *)&ss, &p->base.local);
		uv_tcp_nodelay(&p->h.tcp, 1);
		uv_tcp_keepalive(&p->h.tcp, 1, KEEPALIVE_SECS);
	} else {
		snprintf(p->base.peer, sizeof(p->base.peer), "unix");
	}
	return plain_start_reading(p);
}

int conn_plain_accept(uv_stream_t *server, struct conn **out)
{
	struct conn_plain *p;
	int r;

	if (server->type != UV_TCP && server->type != UV_NAMED_PIPE)
		return -EINVAL;
	p = plain_new(server->loop, server->type);
	if (!p)
		return -ENOMEM;
	r = uv_accept(server, &p->h.stream);
	if (r < 0)
		goto err_close;
	r = plain_ready(p);
	if (r < 0)
		goto err_close;
	*out = &p->base;
	return 0;

err_close:
	plain_discard(p);
	return r;
}

/* -- connecting -- */

void conn_connect_cancel(struct conn_connect *cc)
{
	if (cc)
		cc->cancel(cc);
}

/* A cancelled attempt has no cb: it still waits for libuv to hand back what is in
 * flight (the connect request, the resolver's request), then frees itself quietly. */

struct unix_connect {
	struct conn_connect base;
	uv_connect_t req;
	struct conn_plain *p;
	conn_connect_cb cb;
	void *arg;
};

static void unix_connect_cb(uv_connect_t *req, int status)
{
	struct unix_connect *uc = req->data;
	struct conn_plain *p = uc->p;
	conn_connect_cb cb = uc->cb;
	void *arg = uc->arg;

	free(uc);
	if (!cb) {
		if (!p->closing)
			plain_discard(p);
		return;
	}
	if (status == 0)
		status = plain_ready(p);
	if (status < 0) {
		plain_discard(p);
		cb(NULL, status, arg);
		return;
	}
	cb(&p->base, 0, arg);
}

/* Closing the handle cancels the connect request: unix_connect_cb follows. */
static void unix_cancel(struct conn_connect *cc)
{
	struct unix_connect *uc = (struct unix_connect *)(void *)cc;

	uc->cb = NULL;
	plain_discard(uc->p);
}

int conn_unix_connect(uv_loop_t *loop, const char *path, conn_connect_cb cb, void *arg,
		      struct conn_connect **out)
{
	struct unix_connect *uc;
	struct sockaddr_un sun;

	if (!path || !*path || !cb)
		return -EINVAL;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	uc = calloc(1, sizeof(*uc));
	if (!uc)
		return -ENOMEM;
	uc->p = plain_new(loop, UV_NAMED_PIPE);
	if (!uc->p) {
		free(uc);
		return -ENOMEM;
	}
	uc->base.cancel = unix_cancel;
	uc->cb = cb;
	uc->arg = arg;
	uc->req.data = uc;
	/* Errors arrive through the callback, on a later loop iteration. */
	uv_pipe_connect(&uc->req, &uc->p->h.pipe, path, unix_connect_cb);
	if (out)
		*out = &uc->base;
	return 0;
}

struct tcp_connect {
	struct conn_connect base;
	uv_loop_t *loop;
	conn_connect_cb cb;         /* NULL once cancelled */
	void *arg;
	uv_getaddrinfo_t gai;
	struct addrinfo *res, *next;
	struct sockaddr_storage literal;
	struct conn_plain *p;       /* the attempt in progress */
	uv_connect_t req;
	uv_timer_t timer;
	int timed_out;
	int last_err;
	uint16_t port;
	char host[256];
};

static void tcp_connect_free_cb(uv_handle_t *h)
{
	struct tcp_connect *tc = h->data;

	if (tc->res)
		uv_freeaddrinfo(tc->res);
	free(tc);
}

static void tcp_connect_done(struct tcp_connect *tc, struct conn_plain *p, int status)
{
	conn_connect_cb cb = tc->cb;
	void *arg = tc->arg;

	uv_timer_stop(&tc->timer);
	uv_close((uv_handle_t *)&tc->timer, tcp_connect_free_cb);
	if (!cb)
		return;
	if (status < 0) {
		log_debug("tcp connect failed", "host=%s port=%u err=%s", tc->host, tc->port,
			  uv_err_name(status));
		cb(NULL, status, arg);
	} else {
		cb(&p->base, 0, arg);
	}
}

static void tcp_try_next(struct tcp_connect *tc);

static void tcp_connect_cb(uv_connect_t *req, int status)
{
	struct tcp_connect *tc = req->data;
	struct conn_plain *p = tc->p;

	tc->p = NULL;
	uv_timer_stop(&tc->timer);
	if (!tc->cb) {
		if (!p->closing)
			plain_discard(p);
		tcp_connect_done(tc, NULL, UV_ECANCELED);
		return;
	}
	if (status == 0)
		status = plain_ready(p);
	if (status == 0) {
		tcp_connect_done(tc, p, 0);
		return;
	}
	if (!p->closing)
		plain_discard(p);
	tc->last_err = tc->timed_out ? -ETIMEDOUT : status;
	tc->timed_out = 0;
	tcp_try_next(tc);
}

static void tcp_timeout_cb(uv_timer_t *t)
{
	struct tcp_connect *tc = t->data;

	/* Closing the handle cancels the connect request: tcp_connect_cb goes on. */
	tc->timed_out = 1;
	if (tc->p)
		plain_discard(tc->p);
}

static int tcp_attempt(struct tcp_connect *tc, const struct sockaddr *sa)
{
	int r;

	tc->p = plain_new(tc->loop, UV_TCP);
	if (!tc->p)
		return -ENOMEM;
	r = uv_tcp_connect(&tc->req, &tc->p->h.tcp, sa, tcp_connect_cb);
	if (r < 0) {
		plain_discard(tc->p);
		tc->p = NULL;
		return r;
	}
	uv_timer_start(&tc->timer, tcp_timeout_cb, CONNECT_TIMEOUT_MS, 0);
	return 0;
}

static void tcp_try_next(struct tcp_connect *tc)
{
	const struct sockaddr *sa;
	int r;

	while (tc->next) {
		sa = tc->next->ai_addr;
		tc->next = tc->next->ai_next;
		r = tcp_attempt(tc, sa);
		if (r == 0)
			return;
		tc->last_err = r;
	}
	tcp_connect_done(tc, NULL, tc->last_err ? tc->last_err : -EHOSTUNREACH);
}

static int map_gai_error(int status)
{
	switch (status) {
	case UV_EAI_MEMORY:
		return -ENOMEM;
	case UV_EAI_AGAIN:
		return -EAGAIN;
	case UV_EAI_CANCELED:
		return UV_ECANCELED;
	default:
		return -EHOSTUNREACH;
	}
}

static void tcp_resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct tcp_connect *tc = req->data;

	if (!tc->cb) {
		if (status == 0)
			uv_freeaddrinfo(res);
		tcp_connect_done(tc, NULL, UV_ECANCELED);
		return;
	}
	if (status < 0) {
		log_warn("resolve failed", "host=%s err=\"%s\"", tc->host, uv_strerror(status));
		tc->last_err = map_gai_error(status);
		tcp_connect_done(tc, NULL, tc->last_err);
		return;
	}
	tc->res = res;
	tc->next = res;
	tcp_try_next(tc);
}

/* Either an address is being tried (tc->p) or the name is being resolved: whichever
 * callback libuv calls next finds no cb and ends the attempt. */
static void tcp_cancel(struct conn_connect *cc)
{
	struct tcp_connect *tc = (struct tcp_connect *)(void *)cc;

	tc->cb = NULL;
	if (tc->p) {
		uv_timer_stop(&tc->timer);
		plain_discard(tc->p);   /* tcp_connect_cb follows with UV_ECANCELED */
	} else {
		/* Fails (EBUSY) once a thread runs getaddrinfo: its answer is dropped. */
		uv_cancel((uv_req_t *)&tc->gai);
	}
}

int conn_tcp_connect(uv_loop_t *loop, const char *host, uint16_t port, conn_connect_cb cb,
		     void *arg, struct conn_connect **out)
{
	struct tcp_connect *tc;
	struct addrinfo hints;
	char portstr[8];
	int r;

	if (!host || !*host || !port || !cb)
		return -EINVAL;
	tc = calloc(1, sizeof(*tc));
	if (!tc)
		return -ENOMEM;
	if (snprintf(tc->host, sizeof(tc->host), "%s", host) >= (int)sizeof(tc->host)) {
		r = -ENAMETOOLONG;
		goto err_free;
	}
	tc->base.cancel = tcp_cancel;
	tc->loop = loop;
	tc->cb = cb;
	tc->arg = arg;
	tc->port = port;
	tc->req.data = tc;
	tc->gai.data = tc;
	r = uv_timer_init(loop, &tc->timer);
	if (r < 0)
		goto err_free;
	tc->timer.data = tc;

	if (uv_ip4_addr(host, port, (struct sockaddr_in *)&tc->literal) == 0 ||
	    uv_ip6_addr(host, port, (struct sockaddr_in6 *)&tc->literal) == 0) {
		/* A literal: one address, no resolver thread. */
		r = tcp_attempt(tc, (struct sockaddr *)&tc->literal);
		if (r < 0)
			goto err_timer;
		goto out;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;   /* no AI_ADDRCONFIG: it hides addresses in a netns with only lo */
	snprintf(portstr, sizeof(portstr), "%u", port);
	r = uv_getaddrinfo(loop, &tc->gai, tcp_resolved_cb, host, portstr, &hints);
	if (r < 0) {
		r = map_gai_error(r);
		goto err_timer;
	}
out:
	if (out)
		*out = &tc->base;
	return 0;

err_timer:
	/* The timer handle must close before tc goes. */
	uv_close((uv_handle_t *)&tc->timer, tcp_connect_free_cb);
	return r;
err_free:
	free(tc);
	return r;
}

/* -- listening -- */

int conn_listen_tcp(uv_loop_t *loop, const char *hostport, uv_tcp_t *tcp, uv_connection_cb cb)
{
	char host[256];
	uint16_t port;
	struct sockaddr_storage ss;
	struct addrinfo hints, *res = NULL;
	char portstr[8];
	int r;

	r = addr_split_hostport(hostport, host, sizeof(host), &port);
	if (r < 0)
		return r;
	memset(&ss, 0, sizeof(ss));
	if (!host[0]) {
		/* All addresses: "::" is dual-stack on Linux unless bindv6only; hosts without
		 * IPv6 get 0.0.0.0 below. */
		uv_ip6_addr("::", port, (struct sockaddr_in6 *)&ss);
	} else if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) &&
		   uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		snprintf(portstr, sizeof(portstr), "%u", port);
		if (getaddrinfo(host, portstr, &hints, &res) || !res)
			return -EADDRNOTAVAIL;
		memcpy(&ss, res->ai_addr, res->ai_addrlen);
		freeaddrinfo(res);
	}

	r = uv_tcp_init(loop, tcp);
	if (r < 0)
		return r;
	/* libuv sets SO_REUSEADDR on bind: a restarted daemon rebinds despite TIME_WAIT. */
	r = uv_tcp_bind(tcp, (struct sockaddr *)&ss, 0);
	if ((r == UV_EAFNOSUPPORT || r == UV_EADDRNOTAVAIL) && !host[0]) {
		uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)&ss);
		r = uv_tcp_bind(tcp, (struct sockaddr *)&ss, 0);
	}
	if (r == 0)
		r = uv_listen((uv_stream_t *)tcp, SOMAXCONN, cb);
	if (r < 0) {
		log_error("listen failed", "addr=%s err=\"%s\"", hostport, uv_strerror(r));
		uv_close((uv_handle_t *)tcp, NULL);
	}
	return r;
}

/* A socket file someone still accepts on is not stale. */
static int unix_in_use(const char *path)
{
	struct sockaddr_un sun;
	int fd, r;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	r = r == 0 || errno == EAGAIN || errno == EINPROGRESS;
	close(fd);
	return r;
}

int conn_listen_unix(uv_loop_t *loop, const char *path, uv_pipe_t *pipe, uv_connection_cb cb)
{
	struct sockaddr_un sun;
	struct stat st;
	int r;

	if (!path || !*path)
		return -EINVAL;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;        /* never remove something that is not a socket */
		if (unix_in_use(path))
			return -EADDRINUSE;
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}

	r = uv_pipe_init(loop, pipe, 0);
	if (r < 0)
		return r;
	r = uv_pipe_bind(pipe, path);
	if (r < 0)
		goto err_close;
	/* Before listen: until then nobody can connect, whatever the umask allowed. */
	if (chmod(path, 0600) < 0) {
		r = -errno;
		goto err_unlink;
	}
	r = uv_listen((uv_stream_t *)pipe, SOMAXCONN, cb);
	if (r < 0)
		goto err_unlink;
	return 0;

err_unlink:
	unlink(path);
err_close:
	log_error("listen failed", "path=%s err=\"%s\"", path, uv_strerror(r));
	uv_close((uv_handle_t *)pipe, NULL);
	return r;
}
