/* nlattr.c - see nlattr.h. */
#include <errno.h>
#include <libmnl/libmnl.h>

#include "nlattr.h"

int nl_attr_walk(const void *payload, size_t len, nl_attr_fn fn, void *data)
{
	const char *p = payload;
	size_t off = 0;
	int rc;

	while (len - off >= sizeof(struct nlattr)) {
		const struct nlattr *a = (const struct nlattr *)(p + off);
		size_t alen = a->nla_len;

		if (alen < sizeof(struct nlattr) || alen > len - off)
			return -EBADMSG;
		rc = fn(a, data);
		if (rc)
			return rc;
		alen = MNL_ALIGN(alen);
		off = alen < len - off ? off + alen : len;
	}
	return off == len ? 0 : -EBADMSG;
}

int nl_attr_walk_after(const void *payload, size_t len, size_t hdr_len, nl_attr_fn fn,
		       void *data)
{
	size_t hl = MNL_ALIGN(hdr_len);

	if (len < hdr_len)
		return -EBADMSG;
	/* The header's padding may be missing when no attribute follows. */
	if (hl > len)
		hl = len;
	return nl_attr_walk((const char *)payload + hl, len - hl, fn, data);
}

int nl_msg_next(const void *buf, size_t len, size_t *off, const struct nlmsghdr **msg)
{
	const struct nlmsghdr *nlh;
	size_t mlen;

	if (*off >= len)
		return 0;
	if (len - *off < MNL_NLMSG_HDRLEN)
		return -EBADMSG;
	nlh = (const struct nlmsghdr *)((const char *)buf + *off);
	mlen = nlh->nlmsg_len;
	if (mlen < MNL_NLMSG_HDRLEN || mlen > len - *off)
		return -EBADMSG;
	mlen = MNL_ALIGN(mlen);
	*off = mlen < len - *off ? *off + mlen : len;
	*msg = nlh;
	return 1;
}
