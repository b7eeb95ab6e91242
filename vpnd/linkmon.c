/* linkmon.c - the node's link and address changes from rtnetlink multicast (rtnetlink(7):
 * RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR) on a non-blocking socket polled
 * by the loop; bursts debounced into one report. The messages come from the kernel, but
 * are parsed as untrusted input all the same (linkmon_parse, fuzzed). */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "linkmon.h"
#include "meshvpn/log.h"
#include "nlattr.h"

#define READS_PER_WAKE 64          /* then let the loop breathe; the poll fires again */
#define RCVBUF (256 * 1024)        /* room for a burst (a laptop waking up elsewhere) */

/* ---- parser ---- */


/* An interface name: NUL-terminated within the attribute, and no longer than IFNAMSIZ. */
static int ifname_attr(const struct nlattr *a, const char **out)
{
	if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0 || mnl_attr_get_payload_len(a) > IFNAMSIZ)
		return -EBADMSG;
	*out = mnl_attr_get_str(a);
	return 0;
}

struct link_attrs {
	const char *name;
	int wireless;
};

static int link_attr(const struct nlattr *a, void *data)
{
	struct link_attrs *la = data;

	switch (mnl_attr_get_type(a)) {
	case IFLA_IFNAME:
		return ifname_attr(a, &la->name);
	case IFLA_WIRELESS:
		la->wireless = 1;
		break;
	}
	return 0;
}

static int addr_attr(const struct nlattr *a, void *data)
{
	return mnl_attr_get_type(a) == IFA_LABEL ? ifname_attr(a, data) : 0;
}

static int is_skipped(const struct linkmon_skip *skip, const char *name)
{
	return skip->ifname[0] && name && !strcmp(name, skip->ifname);
}

static int link_msg(uint16_t type, const uint8_t *p, size_t len, struct linkmon_skip *skip)
{
	const struct ifinfomsg *ifi = (const struct ifinfomsg *)p;
	struct link_attrs la = { 0 };
	int rc;

	rc = nl_attr_walk_after(p, len, sizeof(*ifi), link_attr, &la);
	if (rc)
		return rc;
	/* Wireless-extension notices (scans and the like) ride on RTM_NEWLINK; the link
	 * itself did not change. The gatherer never looks at loopback. */
	if (la.wireless || (ifi->ifi_flags & IFF_LOOPBACK))
		return 0;
	if (la.name ? is_skipped(skip, la.name) : skip->ifindex && ifi->ifi_index == skip->ifindex) {
		if (type == RTM_NEWLINK && ifi->ifi_index > 0)
			skip->ifindex = ifi->ifi_index;
		return 0;
	}
	if (skip->ifindex && ifi->ifi_index == skip->ifindex)
		skip->ifindex = 0;   /* renamed: that index is no longer ours */
	return 1;
}

static int addr_msg(const uint8_t *p, size_t len, const struct linkmon_skip *skip)
{
	const struct ifaddrmsg *ifa = (const struct ifaddrmsg *)p;
	const char *label = NULL;
	int rc;

	rc = nl_attr_walk_after(p, len, sizeof(*ifa), addr_attr, &label);
	if (rc)
		return rc;
	if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
		return 0;
	/* Link-local and host addresses are never endpoint candidates. */
	if (ifa->ifa_scope >= RT_SCOPE_LINK)
		return 0;
	if ((skip->ifindex > 0 && ifa->ifa_index == (unsigned)skip->ifindex) || is_skipped(skip, label))
		return 0;
	return 1;
}

int linkmon_parse(const uint8_t *p, size_t len, struct linkmon_skip *skip)
{
	const struct nlmsghdr *nlh;
	size_t off = 0;
	int n = 0, more, rc;

	if ((!p && len) || !skip || ((uintptr_t)p & (NLMSG_ALIGNTO - 1)) ||
	    !memchr(skip->ifname, 0, sizeof(skip->ifname)))
		return -EINVAL;
	while ((more = nl_msg_next(p, len, &off, &nlh)) > 0) {
		const uint8_t *payload = (const uint8_t *)nlh + MNL_NLMSG_HDRLEN;
		size_t plen = nlh->nlmsg_len - MNL_NLMSG_HDRLEN;

		switch (nlh->nlmsg_type) {
		case NLMSG_OVERRUN:
			rc = 1;
			break;
		case RTM_NEWLINK:
		case RTM_DELLINK:
			rc = link_msg(nlh->nlmsg_type, payload, plen, skip);
			break;
		case RTM_NEWADDR:
		case RTM_DELADDR:
			rc = addr_msg(payload, plen, skip);
			break;
		default:
			rc = 0;   /* NOOP, DONE, ERROR, or a group not joined */
			break;
		}
		if (rc < 0)
			return rc;
		if (n < INT_MAX)
			n += rc;
	}
	return more < 0 ? more : n;
}

/* ---- the socket ---- */

static int sock_open(int *out)
{
	static const int groups[] = { RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR };
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int fd, rc, size = RCVBUF;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		goto err;
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &groups[i], sizeof(groups[i])))
			goto err;
	/* Past rmem_max where allowed (vpnd has CAP_NET_ADMIN); an overrun is survived anyway. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)))
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	*out = fd;
	return 0;
err:
	rc = -errno;
	close(fd);
	return rc;
}

static void on_readable(uv_poll_t *h, int status, int events);

/* A socket, polled. Nothing is left open on error. */
static int sock_watch(struct linkmon *lm, uv_loop_t *loop)
{
	int fd = -1, rc;

	rc = sock_open(&fd);
	if (rc)
		return rc;
	rc = uv_poll_init(loop, &lm->poll, fd);
	if (rc) {
		close(fd);
		return rc;
	}
	lm->poll.data = lm;
	lm->fd = fd;
	lm->polling = 1;
	/* Our interface may exist already (a restart); later its link messages tell. */
	lm->skip.ifindex = lm->skip.ifname[0] ? (int)if_nametoindex(lm->skip.ifname) : 0;
	uv_poll_start(&lm->poll, UV_READABLE, on_readable);
	return 0;
}

static void on_poll_closed(uv_handle_t *h);

/* The fd may go at once: uv_close has taken it out of epoll. */
static void sock_stop(struct linkmon *lm)
{
	if (!lm->polling)
		return;
	uv_close((uv_handle_t *)&lm->poll, on_poll_closed);
	close(lm->fd);
	lm->fd = -1;
	lm->polling = 0;
}

static void on_debounce(uv_timer_t *t)
{
	struct linkmon *lm = t->data;

	if (!lm->pending || lm->closing)
		return;
	lm->pending = 0;
	lm->reports++;
	lm->cb(lm, lm->arg);
}

/* Reports LINKMON_DEBOUNCE_MS after the last event, and no later than
 * LINKMON_MAX_DELAY_MS after the first one of the burst. */
static void report_soon(struct linkmon *lm)
{
	uint64_t now = uv_now(lm->loop), end, delay = LINKMON_DEBOUNCE_MS;

	if (lm->closing)
		return;
	if (!lm->pending) {
		lm->pending = 1;
		lm->burst_start = now;
	}
	end = lm->burst_start + LINKMON_MAX_DELAY_MS;
	if (now + delay > end)
		delay = end > now ? end - now : 0;
	uv_timer_start(&lm->debounce, on_debounce, delay, 0);
}

static void sock_fail(struct linkmon *lm, int rc)
{
	lm->failures++;
	log_warn("address watch failed, will reopen", "error=\"%s\" retry_ms=%llu", strerror(-rc),
		 (unsigned long long)lm->reopen_ms);
	sock_stop(lm);
	report_soon(lm);   /* anything may have changed unseen */
}

static void on_reopen(uv_timer_t *t)
{
	struct linkmon *lm = t->data;
	int rc;

	if (lm->closing)
		return;
	rc = sock_watch(lm, lm->loop);
	lm->reopen_ms = lm->reopen_ms * 2 < LINKMON_REOPEN_MAX_MS ? lm->reopen_ms * 2
								  : LINKMON_REOPEN_MAX_MS;
	if (rc) {
		lm->failures++;
		log_warn("cannot reopen the address watch", "error=\"%s\" retry_ms=%llu",
			 strerror(-rc), (unsigned long long)lm->reopen_ms);
		uv_timer_start(&lm->reopen, on_reopen, lm->reopen_ms, 0);
		return;
	}
	log_info("address watch reopened", "failures=%lu", lm->failures);
	report_soon(lm);   /* what happened while there was no socket */
}

static void on_poll_closed(uv_handle_t *h)
{
	struct linkmon *lm = h->data;

	if (!lm->closing)
		uv_timer_start(&lm->reopen, on_reopen, lm->reopen_ms, 0);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	struct linkmon *lm = h->data;
	union {
		struct nlmsghdr align;
		uint8_t b[LINKMON_BUF];
	} buf;
	int relevant = 0, rc;

	if (status < 0) {
		/* libuv turns POLLERR into UV_EBADF and stops the handle. On netlink that is
		 * an overrun (sk_err = ENOBUFS, read and cleared here): poll again. */
		int err = 0;
		socklen_t elen = sizeof(err);

		if (getsockopt(lm->fd, SOL_SOCKET, SO_ERROR, &err, &elen))
			err = errno;
		if (err != ENOBUFS) {
			sock_fail(lm, err ? -err : status);
			return;
		}
		lm->overruns++;
		relevant = 1;
		uv_poll_start(&lm->poll, UV_READABLE, on_readable);
	}
	for (int i = 0; i < READS_PER_WAKE; i++) {
		struct sockaddr_nl sa;
		struct iovec iov = { .iov_base = buf.b, .iov_len = sizeof(buf.b) };
		struct msghdr msg = { .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &iov,
				      .msg_iovlen = 1 };
		ssize_t n = recvmsg(lm->fd, &msg, MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ENOBUFS) {
				/* The kernel dropped messages: what they said is unknown. */
				lm->overruns++;
				relevant = 1;
				continue;
			}
			sock_fail(lm, -errno);
			return;
		}
		/* Only the kernel speaks on these groups. */
		if (msg.msg_namelen != sizeof(sa) || sa.nl_family != AF_NETLINK || sa.nl_pid != 0)
			continue;
		lm->reopen_ms = LINKMON_REOPEN_MIN_MS;
		if (msg.msg_flags & MSG_TRUNC) {
			lm->overruns++;
			relevant = 1;
			continue;
		}
		rc = linkmon_parse(buf.b, (size_t)n, &lm->skip);
		if (rc < 0)
			lm->overruns++;
		else
			lm->events += (unsigned long)rc;
		relevant |= rc != 0;
	}
	if (relevant)
		report_soon(lm);
}

/* ---- lifecycle ---- */

int linkmon_init(struct linkmon *lm, uv_loop_t *loop, const char *skip_ifname, linkmon_cb cb,
		 void *arg)
{
	int rc;

	memset(lm, 0, sizeof(*lm));
	lm->fd = -1;
	if (!loop || !cb || (skip_ifname && strlen(skip_ifname) >= sizeof(lm->skip.ifname)))
		return -EINVAL;
	if (skip_ifname)
		memcpy(lm->skip.ifname, skip_ifname, strlen(skip_ifname) + 1);
	lm->cb = cb;
	lm->arg = arg;
	lm->reopen_ms = LINKMON_REOPEN_MIN_MS;
	rc = sock_watch(lm, loop);
	if (rc)
		return rc;
	uv_timer_init(loop, &lm->debounce);
	uv_timer_init(loop, &lm->reopen);
	lm->debounce.data = lm;
	lm->reopen.data = lm;
	lm->loop = loop;
	return 0;
}

void linkmon_close(struct linkmon *lm)
{
	if (!lm->loop || lm->closing)
		return;
	lm->closing = 1;
	lm->pending = 0;
	sock_stop(lm);
	uv_close((uv_handle_t *)&lm->debounce, NULL);
	uv_close((uv_handle_t *)&lm->reopen, NULL);
}
