/* stun_server.c - the relay's STUN server on a libuv UDP socket (RFC 8489 Binding; see
 * stun_server.h). Replies go out with uv_udp_try_send from a stack buffer: nothing is
 * queued or allocated per datagram, so a flood costs CPU only. */
#include "stun_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/addr.h"
#include "meshvpn/log.h"
#include "meshvpn/stun.h"
#include "stun_limit.h"

struct stun_server {
	uv_loop_t *loop;
	uv_udp_t udp;
	uint16_t port;
	struct stun_stats stats;
	uint8_t rbuf[2048];               /* one datagram at a time: libuv calls alloc, then recv */
	struct stun_limit limit;
};

/* A dual-stack socket reports IPv4 sources as ::ffff:a.b.c.d; the client must hear its
 * IPv4 address, and the rate limit must see one key per IPv4 source. */
static void unmap_v4(struct addr_port *a)
{
	struct addr_port v4;

	if (a->family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&a->v6))
		return;
	memset(&v4, 0, sizeof(v4));
	v4.family = AF_INET;
	v4.port = a->port;
	memcpy(&v4.v4, a->v6.s6_addr + 12, 4);
	*a = v4;
}

static void answer(struct stun_server *s, const uint8_t *p, size_t len,
		   const struct sockaddr *from)
{
	uint8_t out[STUN_RESPONSE_MAX];
	struct addr_port src;
	struct stun_msg m;
	uv_buf_t b;
	int n;

	if (addr_from_sockaddr(from, &src))
		return;
	unmap_v4(&src);
	if (stun_parse(p, len, &m)) {
		s->stats.malformed++;
		return;
	}
	if (m.type != STUN_BINDING_REQUEST) {
		s->stats.ignored++;           /* indications (keepalives), responses: no reply */
		return;
	}
	s->stats.requests++;
	/* uv_now starts at 0; the table takes 0 for a free entry. */
	if (!stun_limit_allow(&s->limit, &src, uv_now(s->loop) + 1)) {
		s->stats.rate_limited++;
		return;
	}
	if (m.n_unknown)
		n = stun_build_unknown_response(&m, out, sizeof(out));
	else
		n = stun_build_binding_response(&m, &src, out, sizeof(out));
	if (n < 0) {
		s->stats.send_errors++;
		return;
	}
	b = uv_buf_init((char *)out, (unsigned)n);
	if (uv_udp_try_send(&s->udp, &b, 1, from) < 0) {
		s->stats.send_errors++;
		return;
	}
	s->stats.responses++;
	if (log_get_level() >= LOG_DEBUG) {
		char text[ADDR_TEXT_LEN];

		addr_format(&src, text, sizeof(text));
		log_debug("stun reply", "to=%s classic=%d status=%d", text,
			  !!(m.flags & STUN_CLASSIC), m.n_unknown ? 420 : 200);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct stun_server *s = h->data;

	*buf = uv_buf_init((char *)s->rbuf, sizeof(s->rbuf));
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
		    const struct sockaddr *addr, unsigned flags)
{
	struct stun_server *s = h->data;

	if (nread < 0) {
		log_debug("stun recv failed", "error=%s", uv_strerror((int)nread));
		return;
	}
	if (!addr)
		return;                       /* libuv: nothing more to read */
	if (flags & UV_UDP_PARTIAL) {
		s->stats.malformed++;         /* longer than any Binding request we answer */
		return;
	}
	answer(s, (const uint8_t *)buf->base, (size_t)nread, addr);
}

/* A bound non-blocking UDP socket; dual = IPv6 that also takes IPv4. fd or -errno. */
static int bind_socket(const struct sockaddr_storage *ss, int dual)
{
	socklen_t sl = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) :
		sizeof(struct sockaddr_in6);
	int fd, v6only = !dual, rc;

	fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (ss->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
		goto err;
	if (bind(fd, (const struct sockaddr *)ss, sl) < 0)
		goto err;
	return fd;
err:
	rc = -errno;
	close(fd);
	return rc;
}

/* hostport -> a bound socket: a literal as given, "" or "::" dual-stack or else IPv4. */
static int open_listener(const char *hostport, int *fd_out)
{
	char host[ADDR_TEXT_LEN], text[ADDR_TEXT_LEN + 8];
	struct sockaddr_storage ss;
	struct addr_port a;
	uint16_t port;
	int rc, fd;

	rc = addr_split_hostport(hostport, host, sizeof(host), &port);
	if (rc)
		return -EINVAL;
	if (!host[0] || !strcmp(host, "::")) {
		memset(&a, 0, sizeof(a));
		a.family = AF_INET6;
		a.port = port;
		addr_to_sockaddr(&a, &ss);
		fd = bind_socket(&ss, 1);
		if (fd != -EAFNOSUPPORT && fd != -EADDRNOTAVAIL)
			goto out;
		a.family = AF_INET;           /* no IPv6 on this host: 0.0.0.0 */
		addr_to_sockaddr(&a, &ss);
		fd = bind_socket(&ss, 0);
		goto out;
	}
	/* A literal, as addr_parse reads it: bracket IPv6 again. */
	snprintf(text, sizeof(text), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
	if (addr_parse(text, strlen(text), ADDR_PORT0 | ADDR_ZONE, &a))
		return -EINVAL;
	addr_to_sockaddr(&a, &ss);
	fd = bind_socket(&ss, 0);
out:
	if (fd < 0)
		return fd;
	*fd_out = fd;
	return 0;
}

static uint16_t bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct addr_port a;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    addr_from_sockaddr((struct sockaddr *)&ss, &a))
		return 0;
	return a.port;
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

int stun_server_start(uv_loop_t *loop, const char *hostport, struct stun_server **out)
{
	struct stun_server *s;
	int fd = -1, rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	rc = open_listener(hostport, &fd);
	if (rc)
		goto err_free;
	s->loop = loop;
	s->port = bound_port(fd);
	stun_limit_init(&s->limit, STUN_SERVER_RATE, STUN_SERVER_BURST, randombytes_random());
	rc = uv_udp_init(loop, &s->udp);
	if (rc)
		goto err_close;
	s->udp.data = s;
	rc = uv_udp_open(&s->udp, fd);
	if (rc) {
		close(fd);
		goto err_handle;
	}
	rc = uv_udp_recv_start(&s->udp, on_alloc, on_recv);
	if (rc)
		goto err_handle;      /* the handle owns fd now */
	*out = s;
	return 0;
err_handle:
	uv_close((uv_handle_t *)&s->udp, on_closed);  /* frees s */
	return rc;
err_close:
	close(fd);
err_free:
	free(s);
	return rc;
}

void stun_server_stop(struct stun_server *s)
{
	if (!s || uv_is_closing((uv_handle_t *)&s->udp))
		return;
	uv_close((uv_handle_t *)&s->udp, on_closed);
}

const struct stun_stats *stun_server_stats(const struct stun_server *s)
{
	return &s->stats;
}

uint16_t stun_server_port(const struct stun_server *s)
{
	return s->port;
}
