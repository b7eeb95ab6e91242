/* main.c - `vpnd`: the node daemon's entry. One libuv loop; options, the state dir and
 * its lock, signals (SIGTERM/SIGINT: clean shutdown with the interface removed). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "meshvpn/args.h"
#include "meshvpn/file.h"
#include "meshvpn/keys.h"
#include "meshvpn/log.h"
#include "vpnd.h"

#define SHUTDOWN_GRACE_MS 5000

static const char usage[] =
	"usage: vpnd [--state DIR] [--socket PATH] [--wg-backend auto|kernel|userspace]\n"
	"            [--ifname NAME] [--port N] [--log-level error|warn|info|debug]\n"
	"            [--metrics HOST:PORT]   (Prometheus text at /metrics)\n"
	"            [--dns-listen]   (the resolver on this node's tailnet address too, for peers)\n"
	"            [--dns-tls-ca FILE]   (CA certificates for DNS-over-TLS upstreams;\n"
	"                                   default /etc/ssl/certs/ca-certificates.crt)\n"
	"            [--dns-log N]    (keep the last N queries for vpnctl dns log; 0 = off)\n"
	"            [--resolv-conf PATH] [--resolvectl PATH]   (what vpnctl up --accept-dns\n"
	"                              changes: " DNSCONF_RESOLV_CONF ", " DNSCONF_RESOLVECTL ")\n"
	"Runs the meshvpn node daemon; control it with vpnctl.\n";

static struct vpnd daemon_state;
static uv_signal_t sig_int, sig_term;
static uv_timer_t grace;

/* mkdir -p with mode for the missing parts. */
static int mkdirs(const char *path, mode_t mode)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Another daemon answering on the socket must not lose it to us. */
static int socket_live(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, live;

	if (strlen(path) >= sizeof(sun.sun_path))
		return 0;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	live = !connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	return live;
}

static void on_grace(uv_timer_t *t)
{
	log_warn("shutdown took too long, leaving", "grace_ms=%d", SHUTDOWN_GRACE_MS);
	uv_stop(t->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
	if (daemon_state.closing) {
		uv_stop(s->loop);   /* a second signal: go now */
		return;
	}
	log_info("shutting down", "signal=%s", signum == SIGTERM ? "TERM" : "INT");
	vpnd_shutdown(&daemon_state);
	uv_signal_stop(&sig_int);
	uv_signal_stop(&sig_term);
	uv_unref((uv_handle_t *)&sig_int);
	uv_unref((uv_handle_t *)&sig_term);
	/* Calls to coord still in the threadpool finish within their own timeout; do not
	 * wait that long. */
	uv_timer_init(s->loop, &grace);
	uv_timer_start(&grace, on_grace, SHUTDOWN_GRACE_MS, 0);
	uv_unref((uv_handle_t *)&grace);
}

int main(int argc, char **argv)
{
	const char *state = VPND_DEFAULT_STATE, *sock = VPND_DEFAULT_SOCKET;
	const char *backend = VPND_DEFAULT_BACKEND, *ifname = VPND_DEFAULT_IFNAME;
	const char *port_s = NULL, *level = NULL, *metrics = NULL, *dns_tls_ca = NULL;
	const char *dns_log = NULL, *resolv_conf = NULL, *resolvectl = NULL;
	int help = 0, dns_listen = 0;
	const struct arg_opt opts[] = {
		{ "state", &state, NULL, 0 }, { "socket", &sock, NULL, 0 },
		{ "wg-backend", &backend, NULL, 0 }, { "ifname", &ifname, NULL, 0 },
		{ "port", &port_s, NULL, 0 }, { "log-level", &level, NULL, 0 },
		{ "metrics", &metrics, NULL, 0 }, { "dns-listen", NULL, &dns_listen, 0 },
		{ "dns-tls-ca", &dns_tls_ca, NULL, 0 },
		{ "dns-log", &dns_log, NULL, 0 }, { "resolv-conf", &resolv_conf, NULL, 0 },
		{ "resolvectl", &resolvectl, NULL, 0 },
		{ "help", NULL, &help, 'h' }, { NULL, NULL, NULL, 0 },
	};
	struct vpnd_opts vo;
	char *words[2], err[256], *end;
	enum log_level lvl;
	unsigned long port = VPND_DEFAULT_PORT, log_n = 0;
	uv_loop_t *loop;
	int n, rc, lock_fd;

	n = args_parse(argc - 1, argv + 1, opts, words, 2, err, sizeof(err));
	if (help) {
		fputs(usage, stdout);
		return 0;
	}
	if (n != 0) {
		fprintf(stderr, "vpnd: %s\n%s", n < 0 ? err : "takes no arguments", usage);
		return 2;
	}
	if (port_s) {
		errno = 0;
		port = strtoul(port_s, &end, 10);
		if (errno || *end || !*port_s || port == 0 || port > 65535) {
			fprintf(stderr, "vpnd: --port takes 1..65535\n");
			return 2;
		}
	}
	if (dns_log) {
		errno = 0;
		log_n = strtoul(dns_log, &end, 10);
		if (errno || *end || !*dns_log || log_n > RL_MAX) {
			fprintf(stderr, "vpnd: --dns-log takes 0..%d (entries; 0 = off)\n", RL_MAX);
			return 2;
		}
	}
	if ((resolv_conf && *resolv_conf != '/') || (resolvectl && *resolvectl != '/')) {
		fprintf(stderr, "vpnd: --resolv-conf and --resolvectl take absolute paths\n");
		return 2;
	}
	if (strcmp(backend, "auto") && strcmp(backend, "kernel") && strcmp(backend, "userspace")) {
		fprintf(stderr, "vpnd: --wg-backend is auto, kernel or userspace\n");
		return 2;
	}
	if (!*ifname || strlen(ifname) >= 16 || strchr(ifname, '/') || strchr(ifname, ' ')) {
		fprintf(stderr, "vpnd: --ifname takes an interface name of 1..15 characters\n");
		return 2;
	}
	if (level && log_parse_level(level, &lvl)) {
		fprintf(stderr, "vpnd: --log-level is error, warn, info or debug\n");
		return 2;
	}
	if (level)
		log_set_level(lvl);
	if (*sock != '/' || strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "vpnd: --socket takes an absolute path of at most 107 bytes\n");
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	umask(077);
	if (keys_init()) {
		fprintf(stderr, "vpnd: libsodium failed to initialise\n");
		return 1;
	}
	rc = mkdirs(state, 0700);
	if (rc) {
		fprintf(stderr, "vpnd: cannot create state dir %s: %s\n", state, strerror(-rc));
		return 1;
	}
	lock_fd = file_lock_dir(state, "vpnd.lock");
	if (lock_fd < 0) {
		fprintf(stderr, "vpnd: %s\n", lock_fd == -EBUSY
			? "another vpnd already runs on this state dir (see --state)" : strerror(-lock_fd));
		return 1;
	}
	{
		char dir[4096];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", sock);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = 0;
			rc = mkdirs(dir, 0755);
			if (rc) {
				fprintf(stderr, "vpnd: cannot create %s: %s\n", dir, strerror(-rc));
				return 1;
			}
		}
	}
	if (socket_live(sock)) {
		fprintf(stderr, "vpnd: another vpnd already answers on %s (see --socket)\n", sock);
		return 1;
	}

	memset(&vo, 0, sizeof(vo));
	vo.state_dir = state;
	vo.socket = sock;
	vo.backend = backend;
	vo.ifname = ifname;
	vo.port = (uint16_t)port;
	vo.metrics = metrics;
	vo.dns_listen = dns_listen;
	vo.dns_tls_ca = dns_tls_ca;
	vo.dns_log = (unsigned)log_n;
	vo.resolv_conf = resolv_conf;
	vo.resolvectl = resolvectl;
	loop = uv_default_loop();
	rc = vpnd_init(&daemon_state, loop, &vo);
	if (rc) {
		fprintf(stderr, "vpnd: cannot start: %s\n", strerror(-rc));
		uv_run(loop, UV_RUN_NOWAIT);
		close(lock_fd);
		return 1;
	}
	uv_signal_init(loop, &sig_int);
	uv_signal_init(loop, &sig_term);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_term, on_signal, SIGTERM);

	uv_run(loop, UV_RUN_DEFAULT);

	if (!daemon_state.closing)
		vpnd_shutdown(&daemon_state);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	close(lock_fd);
	return 0;
}
