/* args.c - options anywhere among the words; see args.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/args.h"

static const struct arg_opt *find(const struct arg_opt *opts, const char *name, size_t len, char s)
{
	for (const struct arg_opt *o = opts; o->name; o++) {
		if (s && o->short_name == s)
			return o;
		if (!s && strlen(o->name) == len && !strncmp(o->name, name, len))
			return o;
	}
	return NULL;
}

int args_parse(int argc, char **argv, const struct arg_opt *opts,
	       char **positional, int max_positional, char *err, size_t errlen)
{
	int n = 0, only_words = 0;

	for (int i = 0; i < argc; i++) {
		char *a = argv[i];
		const struct arg_opt *o;
		const char *eq;

		if (only_words || a[0] != '-' || !a[1]) {
			if (n == max_positional) {
				snprintf(err, errlen, "unexpected argument '%s'", a);
				return -EINVAL;
			}
			positional[n++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			only_words = 1;
			continue;
		}
		if (a[1] != '-') {
			o = a[2] ? NULL : find(opts, NULL, 0, a[1]);
			if (!o) {
				snprintf(err, errlen, "unknown option '%s'", a);
				return -EINVAL;
			}
			eq = NULL;
		} else {
			eq = strchr(a + 2, '=');
			o = find(opts, a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2), 0);
			if (!o) {
				snprintf(err, errlen, "unknown option '%s'", a);
				return -EINVAL;
			}
		}
		if (!o->value) {
			if (eq) {
				snprintf(err, errlen, "option '--%s' takes no value", o->name);
				return -EINVAL;
			}
			*o->flag = 1;
			continue;
		}
		if (eq) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			snprintf(err, errlen, "option '--%s' needs a value", o->name);
			return -EINVAL;
		}
	}
	return n;
}

int args_parse_duration(const char *s, int64_t *seconds)
{
	char *end;
	long long v;
	int64_t mult = 1;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end) {
		switch (*end) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		default: return -EINVAL;
		}
		if (end[1])
			return -EINVAL;
	}
	if (v > INT64_MAX / mult)
		return -EINVAL;
	*seconds = v * mult;
	return 0;
}
