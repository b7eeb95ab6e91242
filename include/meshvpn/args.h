/* args.h - command-line options that may stand anywhere among the words of a command
 * ("coord --state D keys list" == "coord keys list --state D"), and durations. */
#ifndef MESHVPN_ARGS_H
#define MESHVPN_ARGS_H

#include <stddef.h>
#include <stdint.h>

struct arg_opt {
	const char *name;      /* "state" for --state */
	const char **value;    /* set for options taking a value; NULL for flags */
	int *flag;             /* set to 1 for flags */
	char short_name;       /* optional: '4' for -4 */
};

/* Fills positional[] with the non-option words in order. Returns the count, or -EINVAL
 * with a message in err (unknown option, missing value, too many words). "--" ends
 * options. opts is terminated by an entry with name NULL. */
int args_parse(int argc, char **argv, const struct arg_opt *opts,
	       char **positional, int max_positional, char *err, size_t errlen);

/* "90d", "12h", "30m", "45s", "3600" (seconds); -EINVAL otherwise. */
int args_parse_duration(const char *s, int64_t *seconds);

#endif
