/* wg_netlink.c - kernel WireGuard through generic netlink, family "wireguard"
 * (include/uapi/linux/wireguard.h): WG_CMD_SET_DEVICE split over as many messages as it
 * takes, WG_CMD_GET_DEVICE dumps read back with every attribute checked. The builder and
 * the parser are pure (buffers in, buffers out); the socket code around them is small. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/wireguard.h>
#include <sodium.h>

#include "meshvpn/log.h"
#include "netif.h"
#include "nlattr.h"
#include "wg_backend.h"
#include "wg_netlink.h"

#define RECV_BUF_SIZE 32768       /* the kernel never sends a dump datagram bigger */
#define SET_MSG_SIZE 8192         /* as wireguard-tools on 8 KiB pages */
#define ACK_BUF_SIZE 16384        /* an error ack may echo the request */
#define MAX_MSG_SIZE 65535        /* nla_len is 16 bits and the peers nest wraps it all */
#define DUMP_RETRIES 16
#define SOCKET_TIMEOUT_SEC 5

/* The backend's state (wg->priv). */
struct nl_state {
	uint16_t genl_family;             /* id of the generic netlink family "wireguard" */
	uint32_t seq;
};

/* ---- builder ---- */

void wg_nl_set_iter_init(struct wg_nl_set_iter *it, const struct wg_device *dev,
			 const char *ifname, uint16_t family, uint32_t seq)
{
	memset(it, 0, sizeof(*it));
	it->dev = dev;
	it->ifname = ifname;
	it->family = family;
	it->seq = seq;
}

static int put_device_attrs(struct nlmsghdr *nlh, size_t size, const struct wg_device *dev)
{
	uint32_t flags = 0;

	if ((dev->flags & WG_DEVICE_HAS_PRIVATE_KEY) &&
	    !mnl_attr_put_check(nlh, size, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, dev->private_key))
		return -EMSGSIZE;
	if ((dev->flags & WG_DEVICE_HAS_LISTEN_PORT) &&
	    !mnl_attr_put_u16_check(nlh, size, WGDEVICE_A_LISTEN_PORT, dev->listen_port))
		return -EMSGSIZE;
	if ((dev->flags & WG_DEVICE_HAS_FWMARK) &&
	    !mnl_attr_put_u32_check(nlh, size, WGDEVICE_A_FWMARK, dev->fwmark))
		return -EMSGSIZE;
	if (dev->flags & WG_DEVICE_REPLACE_PEERS)
		flags |= WGDEVICE_F_REPLACE_PEERS;
	if (flags && !mnl_attr_put_u32_check(nlh, size, WGDEVICE_A_FLAGS, flags))
		return -EMSGSIZE;
	return 0;
}

/* The attributes sent once per peer, in its first chunk. */
static int put_peer_header(struct nlmsghdr *nlh, size_t size, const struct wg_peer *p)
{
	uint32_t flags = 0;

	if (p->flags & WG_PEER_REMOVE)
		flags |= WGPEER_F_REMOVE_ME;
	if (p->flags & WG_PEER_REPLACE_ALLOWEDIPS)
		flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
	if (flags && !mnl_attr_put_u32_check(nlh, size, WGPEER_A_FLAGS, flags))
		return -EMSGSIZE;
	if (p->flags & WG_PEER_HAS_ENDPOINT) {
		size_t len = p->endpoint.ss_family == AF_INET ? sizeof(struct sockaddr_in)
							      : sizeof(struct sockaddr_in6);
		if (!mnl_attr_put_check(nlh, size, WGPEER_A_ENDPOINT, len, &p->endpoint))
			return -EMSGSIZE;
	}
	if ((p->flags & WG_PEER_HAS_KEEPALIVE) &&
	    !mnl_attr_put_u16_check(nlh, size, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
				    p->persistent_keepalive))
		return -EMSGSIZE;
	return 0;
}

static int put_allowedip(struct nlmsghdr *nlh, size_t size, const struct wg_allowedip *a)
{
	struct nlattr *nest = mnl_attr_nest_start_check(nlh, size, 0);
	size_t len = a->family == AF_INET ? sizeof(a->ip4) : sizeof(a->ip6);

	if (!nest)
		return -EMSGSIZE;
	if (!mnl_attr_put_u16_check(nlh, size, WGALLOWEDIP_A_FAMILY, (uint16_t)a->family) ||
	    !mnl_attr_put_check(nlh, size, WGALLOWEDIP_A_IPADDR, len, &a->ip6) ||
	    !mnl_attr_put_u8_check(nlh, size, WGALLOWEDIP_A_CIDR_MASK, a->cidr)) {
		mnl_attr_nest_cancel(nlh, nest);
		return -EMSGSIZE;
	}
	mnl_attr_nest_end(nlh, nest);
	return 0;
}

enum chunk { CHUNK_DONE, CHUNK_PARTIAL, CHUNK_NONE };

/* Puts as much of the current peer as fits: all of it (CHUNK_DONE), part of it with the
 * rest due in the next message (CHUNK_PARTIAL), or nothing (CHUNK_NONE). */
static enum chunk put_peer_chunk(struct nlmsghdr *nlh, size_t size, struct wg_nl_set_iter *it)
{
	const struct wg_peer *p = &it->dev->peers[it->peer];
	struct nlattr *peer_nest, *aips_nest;
	/* A peer already begun in an earlier message continues with its key and more
	 * allowed IPs only: its flags (REPLACE_ALLOWEDIPS!) must not be sent again. */
	int continuing = it->aip > 0;
	size_t first = it->aip;

	peer_nest = mnl_attr_nest_start_check(nlh, size, 0);
	if (!peer_nest)
		return CHUNK_NONE;
	if (!mnl_attr_put_check(nlh, size, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, p->public_key) ||
	    (!continuing && put_peer_header(nlh, size, p))) {
		mnl_attr_nest_cancel(nlh, peer_nest);
		return CHUNK_NONE;
	}
	if (it->aip < p->n_allowedips) {
		aips_nest = mnl_attr_nest_start_check(nlh, size, WGPEER_A_ALLOWEDIPS);
		if (aips_nest) {
			while (it->aip < p->n_allowedips &&
			       !put_allowedip(nlh, size, &p->allowedips[it->aip]))
				it->aip++;
			if (it->aip > first)
				mnl_attr_nest_end(nlh, aips_nest);
			else
				mnl_attr_nest_cancel(nlh, aips_nest);
		}
		if (it->aip < p->n_allowedips) {
			if (it->aip == first) {
				/* Nothing new of this peer fits: the whole chunk goes next time. */
				mnl_attr_nest_cancel(nlh, peer_nest);
				return CHUNK_NONE;
			}
			mnl_attr_nest_end(nlh, peer_nest);
			return CHUNK_PARTIAL;
		}
	}
	mnl_attr_nest_end(nlh, peer_nest);
	return CHUNK_DONE;
}

int wg_nl_set_next(struct wg_nl_set_iter *it, void *buf, size_t size)
{
	const struct wg_device *dev = it->dev;
	struct nlmsghdr *nlh;
	struct genlmsghdr *genl;
	struct nlattr *peers_nest;
	int progress = 0;

	if (it->done)
		return 0;
	if (!it->ifname || !it->ifname[0] || strlen(it->ifname) >= IFNAMSIZ)
		return -EINVAL;
	if (size > MAX_MSG_SIZE)
		size = MAX_MSG_SIZE;
	if (size < MNL_NLMSG_HDRLEN + GENL_HDRLEN)
		return -EMSGSIZE;
	memset(buf, 0, MNL_NLMSG_HDRLEN + GENL_HDRLEN);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = it->family;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = it->seq;
	genl = mnl_nlmsg_put_extra_header(nlh, sizeof(*genl));
	genl->cmd = WG_CMD_SET_DEVICE;
	genl->version = WG_GENL_VERSION;
	if (!mnl_attr_put_strz_check(nlh, size, WGDEVICE_A_IFNAME, it->ifname))
		return -EMSGSIZE;
	if (!it->started) {
		if (put_device_attrs(nlh, size, dev))
			return -EMSGSIZE;
		progress = 1;
	}
	if (it->peer < dev->n_peers) {
		peers_nest = mnl_attr_nest_start_check(nlh, size, WGDEVICE_A_PEERS);
		if (peers_nest) {
			int put = 0;

			while (it->peer < dev->n_peers) {
				enum chunk c = put_peer_chunk(nlh, size, it);

				if (c == CHUNK_NONE)
					break;
				put = 1;
				if (c == CHUNK_PARTIAL)
					break;
				it->peer++;
				it->aip = 0;
			}
			if (put)
				mnl_attr_nest_end(nlh, peers_nest);
			else
				mnl_attr_nest_cancel(nlh, peers_nest);
			progress |= put;
		}
	}
	if (!progress)
		return -EMSGSIZE;
	it->started = 1;
	it->seq++;
	if (it->peer >= dev->n_peers)
		it->done = 1;
	return (int)nlh->nlmsg_len;
}

/* ---- parser ---- */

static int valid(const struct nlattr *a, enum mnl_attr_data_type type)
{
	return mnl_attr_validate(a, type) == 0;
}

static int has_len(const struct nlattr *a, size_t len)
{
	return mnl_attr_get_payload_len(a) == len;
}

struct aip_ctx {
	struct wg_allowedip aip;
	size_t addr_len;
	int has_family, has_cidr;
};

static int parse_aip_attr(const struct nlattr *a, void *data)
{
	struct aip_ctx *c = data;

	switch (mnl_attr_get_type(a)) {
	case WGALLOWEDIP_A_FAMILY:
		if (!valid(a, MNL_TYPE_U16))
			return -EBADMSG;
		c->aip.family = mnl_attr_get_u16(a);
		c->has_family = 1;
		break;
	case WGALLOWEDIP_A_IPADDR:
		if (!has_len(a, sizeof(c->aip.ip4)) && !has_len(a, sizeof(c->aip.ip6)))
			return -EBADMSG;
		c->addr_len = mnl_attr_get_payload_len(a);
		memset(&c->aip.ip6, 0, sizeof(c->aip.ip6));
		memcpy(&c->aip.ip6, mnl_attr_get_payload(a), c->addr_len);
		break;
	case WGALLOWEDIP_A_CIDR_MASK:
		if (!valid(a, MNL_TYPE_U8))
			return -EBADMSG;
		c->aip.cidr = mnl_attr_get_u8(a);
		c->has_cidr = 1;
		break;
	default:
		break;    /* newer kernels may add attributes */
	}
	return 0;
}

static int parse_aips_elem(const struct nlattr *a, void *data)
{
	struct wg_peer *peer = data;
	struct aip_ctx c;
	int rc;

	memset(&c, 0, sizeof(c));
	if (!valid(a, MNL_TYPE_NESTED))
		return -EBADMSG;
	rc = nl_attr_walk(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), parse_aip_attr, &c);
	if (rc)
		return rc;
	if (!c.has_family || !c.has_cidr ||
	    !((c.aip.family == AF_INET && c.addr_len == 4 && c.aip.cidr <= 32) ||
	      (c.aip.family == AF_INET6 && c.addr_len == 16 && c.aip.cidr <= 128)))
		return -EBADMSG;
	return wg_peer_add_allowedip(peer, &c.aip);
}

struct peer_ctx {
	struct wg_peer peer;
	int has_key;
};

static int parse_endpoint(const struct nlattr *a, struct wg_peer *peer)
{
	const void *p = mnl_attr_get_payload(a);
	size_t len = mnl_attr_get_payload_len(a);
	sa_family_t family;

	if (len < sizeof(family))
		return -EBADMSG;
	memcpy(&family, p, sizeof(family));
	if (!((family == AF_INET && len == sizeof(struct sockaddr_in)) ||
	      (family == AF_INET6 && len == sizeof(struct sockaddr_in6))))
		return -EBADMSG;
	memset(&peer->endpoint, 0, sizeof(peer->endpoint));
	memcpy(&peer->endpoint, p, len);
	peer->flags |= WG_PEER_HAS_ENDPOINT;
	return 0;
}

static int parse_peer_attr(const struct nlattr *a, void *data)
{
	struct peer_ctx *c = data;
	struct wg_peer *peer = &c->peer;

	switch (mnl_attr_get_type(a)) {
	case WGPEER_A_PUBLIC_KEY:
		if (!has_len(a, WG_KEY_LEN))
			return -EBADMSG;
		memcpy(peer->public_key, mnl_attr_get_payload(a), WG_KEY_LEN);
		c->has_key = 1;
		break;
	case WGPEER_A_PRESHARED_KEY:
		if (!has_len(a, WG_KEY_LEN))
			return -EBADMSG;
		break;    /* not used by meshvpn; the caller wipes the buffer */
	case WGPEER_A_FLAGS:
	case WGPEER_A_PROTOCOL_VERSION:
		if (!valid(a, MNL_TYPE_U32))
			return -EBADMSG;
		break;
	case WGPEER_A_ENDPOINT:
		return parse_endpoint(a, peer);
	case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
		if (!valid(a, MNL_TYPE_U16))
			return -EBADMSG;
		peer->persistent_keepalive = mnl_attr_get_u16(a);
		peer->flags |= WG_PEER_HAS_KEEPALIVE;
		break;
	case WGPEER_A_LAST_HANDSHAKE_TIME: {
		int64_t ts[2];    /* struct __kernel_timespec */

		if (!has_len(a, sizeof(ts)))
			return -EBADMSG;
		memcpy(ts, mnl_attr_get_payload(a), sizeof(ts));
		peer->last_handshake_sec = ts[0];
		break;
	}
	case WGPEER_A_RX_BYTES:
		if (!valid(a, MNL_TYPE_U64))
			return -EBADMSG;
		peer->rx_bytes = mnl_attr_get_u64(a);
		break;
	case WGPEER_A_TX_BYTES:
		if (!valid(a, MNL_TYPE_U64))
			return -EBADMSG;
		peer->tx_bytes = mnl_attr_get_u64(a);
		break;
	case WGPEER_A_ALLOWEDIPS:
		if (!valid(a, MNL_TYPE_NESTED))
			return -EBADMSG;
		return nl_attr_walk(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), parse_aips_elem,
			    peer);
	default:
		break;
	}
	return 0;
}

static int parse_peers_elem(const struct nlattr *a, void *data)
{
	struct wg_device *dev = data;
	struct wg_peer *last = dev->n_peers ? &dev->peers[dev->n_peers - 1] : NULL, *slot;
	struct peer_ctx c;
	int rc;

	memset(&c, 0, sizeof(c));
	if (!valid(a, MNL_TYPE_NESTED))
		return -EBADMSG;
	rc = nl_attr_walk(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), parse_peer_attr, &c);
	if (!rc && !c.has_key)
		rc = -EBADMSG;
	if (rc)
		goto out;
	/* A peer with more allowed IPs than fit in one message continues in the next one:
	 * the kernel repeats its public key there, with the remaining allowed IPs. */
	if (last && !memcmp(last->public_key, c.peer.public_key, WG_KEY_LEN)) {
		rc = wg_peer_merge(last, &c.peer);
		goto out;
	}
	rc = wg_device_add_peer(dev, &slot);
	if (rc)
		goto out;
	*slot = c.peer;
	return 0;
out:
	free(c.peer.allowedips);
	return rc;
}

static int parse_device_attr(const struct nlattr *a, void *data)
{
	struct wg_device *dev = data;

	switch (mnl_attr_get_type(a)) {
	case WGDEVICE_A_IFINDEX:
	case WGDEVICE_A_FLAGS:
		if (!valid(a, MNL_TYPE_U32))
			return -EBADMSG;
		break;
	case WGDEVICE_A_IFNAME:
		if (!valid(a, MNL_TYPE_NUL_STRING) || mnl_attr_get_payload_len(a) > IFNAMSIZ)
			return -EBADMSG;
		memset(dev->ifname, 0, sizeof(dev->ifname));
		strncpy(dev->ifname, mnl_attr_get_str(a), sizeof(dev->ifname) - 1);
		break;
	case WGDEVICE_A_PRIVATE_KEY:
		if (!has_len(a, WG_KEY_LEN))
			return -EBADMSG;
		memcpy(dev->private_key, mnl_attr_get_payload(a), WG_KEY_LEN);
		dev->flags |= WG_DEVICE_HAS_PRIVATE_KEY;
		break;
	case WGDEVICE_A_PUBLIC_KEY:
		if (!has_len(a, WG_KEY_LEN))
			return -EBADMSG;
		memcpy(dev->public_key, mnl_attr_get_payload(a), WG_KEY_LEN);
		dev->flags |= WG_DEVICE_HAS_PUBLIC_KEY;
		break;
	case WGDEVICE_A_LISTEN_PORT:
		if (!valid(a, MNL_TYPE_U16))
			return -EBADMSG;
		dev->listen_port = mnl_attr_get_u16(a);
		dev->flags |= WG_DEVICE_HAS_LISTEN_PORT;
		break;
	case WGDEVICE_A_FWMARK:
		if (!valid(a, MNL_TYPE_U32))
			return -EBADMSG;
		dev->fwmark = mnl_attr_get_u32(a);
		dev->flags |= WG_DEVICE_HAS_FWMARK;
		break;
	case WGDEVICE_A_PEERS:
		if (!valid(a, MNL_TYPE_NESTED))
			return -EBADMSG;
		return nl_attr_walk(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), parse_peers_elem,
			    dev);
	default:
		break;
	}
	return 0;
}

static int msg_status(const struct nlmsghdr *nlh, size_t len)
{
	int err;

	if (nlh->nlmsg_type == NLMSG_ERROR) {
		if (len < MNL_NLMSG_HDRLEN + sizeof(struct nlmsgerr))
			return -EBADMSG;
	} else if (len < MNL_NLMSG_HDRLEN + sizeof(int)) {
		return 0;     /* NLMSG_DONE without the dump's status */
	}
	/* NLMSG_ERROR carries -errno (0: an ack); NLMSG_DONE the dump's status. */
	memcpy(&err, (const char *)nlh + MNL_NLMSG_HDRLEN, sizeof(err));
	if (err > 0 || err < -4095)
		return -EBADMSG;
	return err;
}

int wg_nl_parse_dump(const void *buf, size_t len, uint16_t family, uint32_t seq,
		     uint32_t portid, struct wg_device *dev)
{
	const struct nlmsghdr *nlh;
	size_t off = 0;
	int more = 1, next, rc;

	if (!len)
		return -EBADMSG;
	while ((next = nl_msg_next(buf, len, &off, &nlh)) > 0) {
		const char *payload = (const char *)nlh + MNL_NLMSG_HDRLEN;
		size_t plen = nlh->nlmsg_len - MNL_NLMSG_HDRLEN;

		if ((seq && nlh->nlmsg_seq != seq) || (portid && nlh->nlmsg_pid != portid))
			return -EPROTO;
		/* The set of peers changed while the kernel was dumping it. */
		if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
			return -EINTR;
		switch (nlh->nlmsg_type) {
		case NLMSG_NOOP:
			break;
		case NLMSG_OVERRUN:
			return -ENOBUFS;
		case NLMSG_DONE:
		case NLMSG_ERROR:
			return msg_status(nlh, nlh->nlmsg_len);
		default:
			if (nlh->nlmsg_type < NLMSG_MIN_TYPE ||
			    (family && nlh->nlmsg_type != family) || plen < GENL_HDRLEN ||
			    ((const struct genlmsghdr *)payload)->cmd != WG_CMD_GET_DEVICE)
				return -EBADMSG;
			rc = nl_attr_walk_after(payload, plen, GENL_HDRLEN, parse_device_attr, dev);
			if (rc)
				return rc;
			/* A reply that is not part of a multipart dump is the whole answer. */
			if (!(nlh->nlmsg_flags & NLM_F_MULTI))
				more = 0;
			break;
		}
	}
	return next < 0 ? next : more;
}

/* ---- the socket ---- */

static int sock_open(struct mnl_socket **out, uint32_t *portid)
{
	struct timeval tv = { .tv_sec = SOCKET_TIMEOUT_SEC };
	struct mnl_socket *nl;
	int rc, one = 1;

	nl = mnl_socket_open(NETLINK_GENERIC);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		rc = -errno;
		goto err_bind;
	}
	if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
		rc = -errno;
		goto err_bind;
	}
	/* Error acks without a copy of the (maybe key-carrying) request; best effort. */
	if (setsockopt(mnl_socket_get_fd(nl), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)))
		log_debug("NETLINK_CAP_ACK not supported", "error=\"%s\"", strerror(errno));
	*portid = mnl_socket_get_portid(nl);
	*out = nl;
	return 0;

err_bind:
	mnl_socket_close(nl);
	return rc;
}

static int recv_errno(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
}

/* Reads answers to seq until its ack (or NLMSG_DONE), handing messages to cb. */
static int recv_until_ack(struct mnl_socket *nl, uint32_t seq, uint32_t portid,
			  mnl_cb_t cb, void *data)
{
	char buf[ACK_BUF_SIZE];
	ssize_t n;
	int rc;

	for (;;) {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0)
			return recv_errno();
		errno = 0;
		rc = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
		if (rc < 0)
			return errno ? -errno : -EIO;
		if (rc == MNL_CB_STOP)
			return 0;
	}
}

static int family_cb(const struct nlattr *a, void *data)
{
	uint16_t *id = data;

	if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID && valid(a, MNL_TYPE_U16))
		*id = mnl_attr_get_u16(a);
	return MNL_CB_OK;
}

static int family_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	if (mnl_attr_parse(nlh, sizeof(struct genlmsghdr), family_cb, data) < 0)
		return MNL_CB_ERROR;
	return MNL_CB_OK;
}

/* CTRL_CMD_GETFAMILY "wireguard": the id its messages carry as nlmsg_type. */
static int resolve_family(uint16_t *out)
{
	char buf[256];
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct genlmsghdr *genl;
	uint32_t portid, seq = (uint32_t)time(NULL);
	uint16_t id = 0;
	int rc;

	rc = sock_open(&nl, &portid);
	if (rc)
		return rc;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = GENL_ID_CTRL;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	genl = mnl_nlmsg_put_extra_header(nlh, sizeof(*genl));
	genl->cmd = CTRL_CMD_GETFAMILY;
	genl->version = 1;
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		rc = -errno;
		goto out;
	}
	rc = recv_until_ack(nl, seq, portid, family_msg_cb, &id);
	if (rc == -ENOENT)
		rc = -EOPNOTSUPP;
	else if (!rc && !id)
		rc = -EPROTO;
	if (!rc)
		*out = id;
out:
	mnl_socket_close(nl);
	return rc;
}

static void nl_close(struct wg *wg)
{
	struct netif *nif;
	int rc;

	rc = netif_open(&nif);
	if (!rc) {
		rc = netif_delete(nif, wg->ifname);
		netif_close(nif);
	}
	if (rc && rc != -ENODEV)
		log_warn("cannot delete wireguard interface", "ifname=%s error=\"%s\"",
			 wg->ifname, strerror(-rc));
	free(wg->priv);
	wg->priv = NULL;
}

static int nl_set_device(struct wg *wg, const struct wg_device *dev)
{
	struct nl_state *st = wg->priv;
	char buf[SET_MSG_SIZE];
	struct wg_nl_set_iter it;
	struct mnl_socket *nl;
	uint32_t portid;
	int rc, len, msgs = 0;

	rc = sock_open(&nl, &portid);
	if (rc)
		return rc;
	wg_nl_set_iter_init(&it, dev, wg->ifname, st->genl_family, ++st->seq);
	for (;;) {
		uint32_t seq = it.seq;

		len = wg_nl_set_next(&it, buf, sizeof(buf));
		if (len <= 0) {
			rc = len;
			break;
		}
		if (mnl_socket_sendto(nl, buf, (size_t)len) < 0) {
			rc = -errno;
			break;
		}
		sodium_memzero(buf, (size_t)len);
		msgs++;
		rc = recv_until_ack(nl, seq, portid, NULL, NULL);
		if (rc)
			break;
	}
	st->seq = it.seq;
	sodium_memzero(buf, sizeof(buf));
	mnl_socket_close(nl);
	log_debug("wireguard set", "ifname=%s backend=kernel peers=%zu messages=%d rc=%d",
		  wg->ifname, dev->n_peers, msgs, rc);
	return rc;
}

/* Frees what dev holds and zeroes it, for a dump that starts over. */
static void dev_reset(struct wg_device *dev)
{
	for (size_t i = 0; i < dev->n_peers; i++)
		free(dev->peers[i].allowedips);
	free(dev->peers);
	sodium_memzero(dev, sizeof(*dev));
}

static int get_once(struct wg *wg, struct wg_device *dev, char *buf)
{
	struct nl_state *st = wg->priv;
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct genlmsghdr *genl;
	uint32_t portid, seq = ++st->seq;
	ssize_t n;
	int rc;

	rc = sock_open(&nl, &portid);
	if (rc)
		return rc;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = st->genl_family;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	genl = mnl_nlmsg_put_extra_header(nlh, sizeof(*genl));
	genl->cmd = WG_CMD_GET_DEVICE;
	genl->version = WG_GENL_VERSION;
	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, wg->ifname);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		rc = -errno;
		goto out;
	}
	do {
		n = mnl_socket_recvfrom(nl, buf, RECV_BUF_SIZE);
		if (n < 0) {
			rc = recv_errno();
			break;
		}
		rc = wg_nl_parse_dump(buf, (size_t)n, st->genl_family, seq, portid, dev);
		sodium_memzero(buf, (size_t)n);
	} while (rc == 1);
out:
	mnl_socket_close(nl);
	return rc;
}

static int nl_get_device(struct wg *wg, struct wg_device *dev)
{
	char *buf = malloc(RECV_BUF_SIZE);
	int rc = -EINTR;

	if (!buf)
		return -ENOMEM;
	for (int i = 0; i < DUMP_RETRIES && rc == -EINTR; i++) {
		dev_reset(dev);
		rc = get_once(wg, dev, buf);
	}
	if (rc == -EINTR)
		rc = -EAGAIN;
	sodium_memzero(buf, RECV_BUF_SIZE);
	free(buf);
	return rc;
}

/* A vpnd that died without cleaning up (kill -9, a crash) left its link IFNAME behind:
 * deletes it when it runs this node's own key. 0: deleted; -EEXIST: the link is someone
 * else's; -ENODEV: there is no such kernel WireGuard link. */
static int reclaim(struct netif *nif, const char *ifname, const uint8_t public_key[WG_KEY_LEN])
{
	struct nl_state st = { 0 };
	struct wg wg = { .ops = &wg_netlink_ops, .priv = &st };
	struct wg_device dev = { 0 };
	int rc;

	snprintf(wg.ifname, sizeof(wg.ifname), "%s", ifname);
	rc = resolve_family(&st.genl_family);
	if (rc)
		return rc == -EOPNOTSUPP ? -ENODEV : rc;
	rc = nl_get_device(&wg, &dev);
	if (!rc && !((dev.flags & WG_DEVICE_HAS_PUBLIC_KEY) &&
		     !sodium_memcmp(dev.public_key, public_key, WG_KEY_LEN)))
		rc = -EEXIST;
	dev_reset(&dev);
	if (rc)
		return rc;
	return netif_delete(nif, ifname);
}

static int nl_open(struct wg *wg, const uint8_t own_public_key[WG_KEY_LEN])
{
	struct nl_state *st;
	struct netif *nif;
	int rc;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	rc = netif_open(&nif);
	if (rc)
		goto err_netif;
	rc = netif_wg_create(nif, wg->ifname);
	if (rc == -EEXIST && own_public_key && !reclaim(nif, wg->ifname, own_public_key)) {
		log_warn("removed a leftover wireguard interface of this node", "ifname=%s",
			 wg->ifname);
		rc = netif_wg_create(nif, wg->ifname);
	}
	if (rc)
		goto err_create;
	rc = resolve_family(&st->genl_family);
	if (rc)
		goto err_family;
	netif_close(nif);
	wg->priv = st;
	return 0;

err_family:
	netif_delete(nif, wg->ifname);
err_create:
	netif_close(nif);
err_netif:
	free(st);
	return rc;
}

const struct wg_ops wg_netlink_ops = {
	.name = "kernel",
	.open = nl_open,
	.set_device = nl_set_device,
	.get_device = nl_get_device,
	.close = nl_close,
};
