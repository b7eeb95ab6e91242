/* resolver_udp.c - the resolver's client-side UDP sockets (resolver_udp.h). A readable
 * socket is drained with recvmmsg, RS_UDP_BATCH datagrams at a time; each query goes to
 * the callback, whose answers are copied into the batch's out slots, and the batch leaves
 * in one sendmmsg. One loop thread handles one batch at a time, so the buffers are shared
 * by every socket (static: untouched pages cost no memory). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meshvpn/dns_msg.h"
#include "resolver_udp.h"

#define RS_UDP_ANSWER_MAX DNS_EDNS_UDP_SIZE   /* the most we answer over UDP */

struct rs_udp {
	uv_poll_t poll;
	int fd;
	rs_udp_cb cb;
	void *arg;
};

static struct {
	struct rs_udp *owner;            /* the socket whose batch is being answered */
	unsigned n_out;
	struct mmsghdr in[RS_UDP_BATCH], out[RS_UDP_BATCH];
	struct iovec in_iov[RS_UDP_BATCH], out_iov[RS_UDP_BATCH];
	struct sockaddr_storage in_addr[RS_UDP_BATCH], out_addr[RS_UDP_BATCH];
	uint8_t in_buf[RS_UDP_BATCH][RS_UDP_QUERY_MAX];
	uint8_t out_buf[RS_UDP_BATCH][RS_UDP_ANSWER_MAX];
} batch;

static struct rs_udp_stats stats;

const struct rs_udp_stats *rs_udp_stats(void)
{
	return &stats;
}

static socklen_t sockaddr_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Every slot of a sendmmsg, skipping one the kernel refuses (EPERM from a firewall, an
 * unreachable destination) and dropping the rest when it has no room (EAGAIN, ENOBUFS). */
static void flush(struct rs_udp *u)
{
	unsigned i = 0, n = batch.n_out;

	batch.n_out = 0;
	while (i < n) {
		int rc = sendmmsg(u->fd, &batch.out[i], n - i, 0);

		stats.send_calls++;
		if (rc > 0) {
			i += (unsigned)rc;
			stats.send_msgs += (unsigned)rc;
		} else if (errno == EAGAIN || errno == ENOBUFS) {
			stats.send_drops += n - i;
			return;
		} else if (errno != EINTR) {
			stats.send_drops++;
			i++;
		}
	}
}

void rs_udp_send(struct rs_udp *u, const struct addr_port *to, const uint8_t *msg, size_t len)
{
	struct sockaddr_storage ss;
	unsigned k = batch.n_out;

	if (batch.owner == u && k < RS_UDP_BATCH && len <= RS_UDP_ANSWER_MAX) {
		memcpy(batch.out_buf[k], msg, len);
		addr_to_sockaddr(to, &batch.out_addr[k]);
		batch.out_iov[k].iov_len = len;
		batch.out[k].msg_hdr.msg_namelen = sockaddr_len(&batch.out_addr[k]);
		batch.n_out++;
		return;
	}
	/* Outside a batch (an upstream's answer, a timeout's SERVFAIL): at once. */
	addr_to_sockaddr(to, &ss);
	stats.send_calls++;
	if (sendto(u->fd, msg, len, MSG_DONTWAIT, (struct sockaddr *)&ss, sockaddr_len(&ss)) < 0)
		stats.send_drops++;
	else
		stats.send_msgs++;
}

static void batch_init(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	for (unsigned i = 0; i < RS_UDP_BATCH; i++) {
		batch.in_iov[i] = (struct iovec){ batch.in_buf[i], sizeof(batch.in_buf[i]) };
		batch.in[i].msg_hdr = (struct msghdr){ .msg_name = &batch.in_addr[i],
						       .msg_namelen = sizeof(batch.in_addr[i]),
						       .msg_iov = &batch.in_iov[i], .msg_iovlen = 1 };
		batch.out_iov[i] = (struct iovec){ batch.out_buf[i], 0 };
		batch.out[i].msg_hdr = (struct msghdr){ .msg_name = &batch.out_addr[i],
							.msg_iov = &batch.out_iov[i], .msg_iovlen = 1 };
	}
}

/* One recvmmsg's worth: the number of datagrams it read (-1 when there were none). */
static int drain_once(struct rs_udp *u)
{
	int n;

	do
		n = recvmmsg(u->fd, batch.in, RS_UDP_BATCH, MSG_DONTWAIT, NULL);
	while (n < 0 && errno == EINTR);
	stats.recv_calls++;
	if (n <= 0)
		return -1;
	stats.recv_msgs += (unsigned)n;
	batch.owner = u;
	for (int i = 0; i < n; i++) {
		struct msghdr *h = &batch.in[i].msg_hdr;

		if (h->msg_flags & MSG_TRUNC)
			stats.truncated++;
		else
			u->cb(u->arg, u, batch.in_buf[i], batch.in[i].msg_len,
			      (const struct sockaddr *)h->msg_name);
		/* The kernel wrote the sender's length there; the rest of the slot stays. */
		h->msg_namelen = sizeof(batch.in_addr[i]);
	}
	batch.owner = NULL;
	flush(u);
	return n;
}

static void on_readable(uv_poll_t *p, int status, int events)
{
	struct rs_udp *u = p->data;

	if (status < 0 || !(events & UV_READABLE))
		return;
	/* A short batch means the queue is empty: no call just to hear EAGAIN. */
	for (int round = 0; round < RS_UDP_ROUNDS; round++)
		if (drain_once(u) < RS_UDP_BATCH)
			break;
}

int rs_udp_open(uv_loop_t *loop, const struct addr_port *bind_to, rs_udp_cb cb, void *arg,
		struct rs_udp **out)
{
	struct sockaddr_storage ss;
	struct rs_udp *u;
	int rc;

	batch_init();
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	addr_to_sockaddr(bind_to, &ss);
	u->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0 || bind(u->fd, (struct sockaddr *)&ss, sockaddr_len(&ss))) {
		rc = -errno;
		goto err_fd;
	}
	rc = uv_poll_init(loop, &u->poll, u->fd);
	if (rc)
		goto err_fd;
	u->poll.data = u;
	u->cb = cb;
	u->arg = arg;
	rc = uv_poll_start(&u->poll, UV_READABLE, on_readable);
	if (rc) {
		rs_udp_close(u);
		return rc;
	}
	*out = u;
	return 0;
err_fd:
	if (u->fd >= 0)
		close(u->fd);
	free(u);
	return rc;
}

static void close_cb(uv_handle_t *h)
{
	struct rs_udp *u = h->data;

	close(u->fd);
	free(u);
}

void rs_udp_close(struct rs_udp *u)
{
	if (!u)
		return;
	if (batch.owner == u)
		batch.owner = NULL;
	uv_poll_stop(&u->poll);
	uv_close((uv_handle_t *)&u->poll, close_cb);
}

int rs_udp_sockname(const struct rs_udp *u, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);

	return getsockname(u->fd, (struct sockaddr *)ss, &len) ? -errno : 0;
}
