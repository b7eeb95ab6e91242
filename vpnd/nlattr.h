/* nlattr.h - a bounds-checked walk over netlink attributes, shared by the parsers of
 * kernel messages (wg_netlink.c, linkmon.c): input from the kernel is still checked. */
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

#endif
