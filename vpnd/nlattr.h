/* nlattr.h - bounds-checked walks over netlink messages and their attributes, shared by
 * the parsers of kernel messages (wg_netlink.c, linkmon.c): input from the kernel is
 * still checked. */
#ifndef VPND_NLATTR_H
#define VPND_NLATTR_H

#include <linux/netlink.h>
#include <stddef.h>

typedef int (*nl_attr_fn)(const struct nlattr *a, void *data);

/* Calls fn for each attribute in payload; a non-zero return from fn stops the walk and is
 * returned. A length shorter than a header or past the end, or bytes left over that do
 * not make an attribute, are malformed (-EBADMSG); only the padding of the last
 * attribute may be missing. */
int nl_attr_walk(const void *payload, size_t len, nl_attr_fn fn, void *data);
/* The same over the attributes that follow a fixed header of hdr_len bytes (struct
 * ifinfomsg, struct genlmsghdr, ...) at the start of payload, aligned as netlink aligns
 * it; -EBADMSG when payload is shorter than the header. */
int nl_attr_walk_after(const void *payload, size_t len, size_t hdr_len, nl_attr_fn fn,
		       void *data);

/* The next netlink message of the datagram buf[0..len), from *off (0 for the first), which
 * moves past it: 1 and *msg (its nlmsg_len is within buf), 0 when no message is left, or
 * -EBADMSG for a header cut short or a length below a header or past the end. Only the
 * padding of the last message may be missing. Lengths are compared as size_t: the
 * mnl_nlmsg_ok() check casts nlmsg_len to int, so 2^31 or more would pass it. */
int nl_msg_next(const void *buf, size_t len, size_t *off, const struct nlmsghdr **msg);

#endif
