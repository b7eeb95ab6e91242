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
