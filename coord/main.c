/* main.c - the coord command: `serve` runs the coordination server; the other
 * subcommands are the admin CLI talking to it. */
#include <stdio.h>
#include <string.h>

#include "coord.h"

struct cmd {
	const char *name;
	const char *help;
};

static const struct cmd cmds[] = {
	{ "serve", "Runs the coordination server (--state DIR --listen HOST:PORT ...)" },
	{ "nodes", "Lists nodes; approves, rejects, expires, renames or deletes one" },
	{ "keys", "Creates, lists or revokes auth keys" },
	{ "relays", "Adds, lists or removes relays" },
	{ "apikeys", "Creates, lists or revokes admin API keys (for --server URL)" },
	{ "dns", "Shows or changes the DNS policy (domain, upstreams, routes, blocklists, ...)" },
	{ "pin", "Prints the pin of the server's self-signed certificate" },
	{ "status", "Shows this instance, its database and every instance seen recently" },
	{ "migrate", "Copies an SQLite state into an empty PostgreSQL database (--from DIR --to URI)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: coord COMMAND [options]\n\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "\nOptions may stand before or after the command. The admin commands find the\n"
		"server by --state DIR (default ./coord-state) or --server URL --api-key K.\n");
}

int main(int argc, char **argv)
{
	const char *name = NULL;
	int at = 0;

	/* The command is the first word that is not an option or an option's value. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--version")) {
			printf("coord 0.1.0\n");
			return 0;
		}
		if (argv[i][0] == '-') {
			if (!strchr(argv[i], '=') && i + 1 < argc && strcmp(argv[i], "--json") &&
			    strcmp(argv[i], "--reusable") && strcmp(argv[i], "--ephemeral"))
				i++;   /* skip the option's value */
			continue;
		}
		name = argv[i];
		at = i;
		break;
	}
	if (!name) {
		usage(stderr);
		return 2;
	}
	/* Everything but the program name and the command word goes to the command. */
	char *rest[256];
	int n = 0;
	if (argc > 255) {
		fprintf(stderr, "coord: too many arguments\n");
		return 2;
	}
	for (int i = 1; i < argc; i++)
		if (i != at)
			rest[n++] = argv[i];
	rest[n] = NULL;
	if (!strcmp(name, "serve"))
		return coord_serve_main(n, rest);
	if (!strcmp(name, "migrate"))
		return coord_migrate_main(n, rest);
	for (size_t i = 1; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!strcmp(name, cmds[i].name)) {
			/* The admin CLI sees the command word first, then the rest. */
			char *words[257];
			words[0] = (char *)name;
			memcpy(words + 1, rest, (size_t)(n + 1) * sizeof(char *));
			return coord_cli_main(name, n + 1, words);
		}
	}
	fprintf(stderr, "coord: unknown command '%s'\n\n", name);
	usage(stderr);
	return 2;
}
