/* lookup.c - what an admin's argument names: an id (all digits, nothing else) or a
 * name / prefix, and exactly one thing. A lookup that could mean two things is refused
 * with the candidates listed, so no name anyone chose can redirect a command. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"

int coord_arg_id(const char *s, int64_t *id)
{
	char *end;
	long long v;

	if (!s || !*s)
		return 0;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v <= 0)
		return 0;
	*id = v;
	return 1;
}

void coord_pick_add(struct coord_pick *p, void *thing, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->hit == thing)
		return;   /* the same one by two routes (id and prefix) */
	if (p->n++ == 0)
		p->hit = thing;
	if (p->len + 3 >= sizeof(p->list))
		return;
	if (p->len) {
		memcpy(p->list + p->len, ", ", 2);
		p->len += 2;
	}
	va_start(ap, fmt);
	n = vsnprintf(p->list + p->len, sizeof(p->list) - p->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		p->len = p->len + (size_t)n < sizeof(p->list) ? p->len + (size_t)n : sizeof(p->list) - 1;
}

int coord_pick_done(const struct coord_pick *p, const char *what, const char *arg, void **out,
		    char *err, size_t errlen)
{
	if (p->n == 1) {
		*out = p->hit;
		return 0;
	}
	*out = NULL;
	if (!p->n) {
		snprintf(err, errlen, "no %s matches '%s'", what, arg);
		return -ENOENT;
	}
	snprintf(err, errlen, "'%s' could be any of %d %ss: %s; give the id", arg, p->n, what, p->list);
	return -ENOTUNIQ;
}
