/* rsbench.c - vpnd's resolver (vpnd/resolver*.c) alone on a loopback port, for a
 * per-query cost profile without namespaces, coord or WireGuard: `rsbench --listen
 * 127.0.0.1:5300 --upstream 127.0.0.1:5301 [--list FILE] [--nxdomain]` serves UDP and TCP
 * there with the list (a hosts / `||d^` file, blbench --write) compiled in and forwards
 * the rest upstream, until SIGINT/SIGTERM; then prints its counters. dnsperf (or
 * callgrind around this process) does the rest. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/args.h"
#include "vpnd/resolver.h"

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL;
	long n;

	if (!f)
		return NULL;
	if (!fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET) &&
	    (p = malloc((size_t)n + 1)) && fread(p, 1, (size_t)n, f) == (size_t)n) {
		*len = (size_t)n;
	} else {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

static struct blocklist *load_list(const char *path)
{
	static const uint8_t key[BLOCKLIST_KEY_LEN] = "rsbench-key-0001";
	struct blocklist_builder *b = blocklist_builder_new(key, 0);
	struct blocklist_stats st;
	struct blocklist *bl = NULL;
	uint8_t *text, *blob = NULL;
	size_t len = 0, blob_len;

	text = read_all(path, &len);
	if (b && text && !blocklist_builder_add_source(b, text, len, &st) &&
	    !blocklist_builder_compile(b, 1, &blob, &blob_len) &&
	    blocklist_load(blob, blob_len, BLOCKLIST_LOAD_OWN, &bl))
		bl = NULL;
	blocklist_builder_free(b);
	free(text);
	return bl;
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)signum;
	uv_stop(s->loop);
}

int main(int argc, char **argv)
{
	const char *listen_arg = NULL, *up_arg = NULL, *list_arg = NULL;
	int nx = 0;
	const struct arg_opt opts[] = {
		{ "listen", &listen_arg, NULL, 0 }, { "upstream", &up_arg, NULL, 0 },
		{ "list", &list_arg, NULL, 0 }, { "nxdomain", NULL, &nx, 0 },
		{ NULL, NULL, NULL, 0 },
	};
	static struct resolver r;
	struct addr_port listen;
	struct netmap m = { 0 };
	struct nm_dns dns = { 0 };
	uv_signal_t sig_int, sig_term;
	uv_loop_t *loop = uv_default_loop();
	char err[128];
	json_t *stats;

	if (args_parse(argc - 1, argv + 1, opts, NULL, 0, err, sizeof(err)) || !listen_arg || !up_arg ||
	    addr_parse(listen_arg, strlen(listen_arg), 0, &listen) ||
	    addr_parse(up_arg, strlen(up_arg), 0, &dns.upstreams[0].addr)) {
		fprintf(stderr, "usage: rsbench --listen ADDR:PORT --upstream ADDR:PORT [--list FILE] [--nxdomain]\n");
		return 2;
	}
	dns.n_upstreams = 1;
	dns.nxdomain = nx;
	snprintf(m.domain, sizeof(m.domain), "ts.test");
	snprintf(dns.domain, sizeof(dns.domain), "ts.test");
	snprintf(m.self.name, sizeof(m.self.name), "self");
	m.dns = &dns;
	resolver_init(&r, loop, NULL);
	if (resolver_start(&r, &listen, 1)) {
		fprintf(stderr, "rsbench: cannot listen on %s\n", listen_arg);
		return 1;
	}
	resolver_update(&r, &m);
	if (list_arg) {
		struct blocklist *bl = load_list(list_arg);

		if (!bl) {
			fprintf(stderr, "rsbench: cannot compile %s\n", list_arg);
			return 1;
		}
		resolver_set_blocklist(&r, bl);
	}
	uv_signal_init(loop, &sig_int);
	uv_signal_init(loop, &sig_term);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	printf("rsbench: listening on %s\n", listen_arg);
	fflush(stdout);
	uv_run(loop, UV_RUN_DEFAULT);
	stats = resolver_stats_json(&r);
	json_dumpf(stats, stdout, JSON_COMPACT);
	printf("\n");
	json_decref(stats);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
	resolver_close(&r);
	uv_run(loop, UV_RUN_DEFAULT);
	return 0;
}
