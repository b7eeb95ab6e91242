/* main.c - the relay command: options, state dir, key and certificate, the listeners, the
 * admission stream from coord, the pin report, STUN, metrics, signals (graceful stop). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/args.h"
#include "meshvpn/file.h"
#include "meshvpn/log.h"
#include "relay.h"

#define USAGE "usage: relay --coord URL[,URL...] --token T [--pin sha256:HEX] [--listen HOST:PORT|off]\n" \
	"             [--stun HOST:PORT|off] [--tls-cert F --tls-key F] [--plain-http HOST:PORT]\n" \
	"             [--metrics HOST:PORT] [--state DIR] [--log-level L]\n"

struct opts {
	const char *coord, *token, *pin, *listen, *stun, *cert, *key, *plain, *metrics, *state;
	const char *level;
};

struct app {
	uv_loop_t *loop;
	struct relay_server srv;
	struct relay_admission adm;
	struct relay_pin_report pin;
	struct stun_server *stun;
	struct metrics_server *metrics;
	struct relay_metrics_src msrc;
	uv_signal_t sigint, sigterm;
	int have_adm, have_pin, stopping;
};

/* Closes everything the loop runs, so that uv_run returns once it is done. */
static void app_stop(struct app *a, int restarting)
{
	relay_server_stop(&a->srv, restarting);
	if (a->have_adm)
		relay_admission_close(&a->adm);
	if (a->have_pin)
		relay_pin_report_close(&a->pin);
	a->have_adm = a->have_pin = 0;
	stun_server_stop(a->stun);
	a->stun = NULL;
	metrics_server_free(a->metrics);
	a->metrics = NULL;
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct app *a = sig->data;

	if (a->stopping)
		return;
	a->stopping = 1;
	log_info("shutting down", "signal=%d", signum);
	app_stop(a, 1);
	uv_close((uv_handle_t *)&a->sigint, NULL);
	uv_close((uv_handle_t *)&a->sigterm, NULL);
}

static int parse(int argc, char **argv, struct opts *o)
{
	const struct arg_opt opts[] = {
		{ "coord", &o->coord, NULL, 0 }, { "token", &o->token, NULL, 0 },
		{ "pin", &o->pin, NULL, 0 }, { "listen", &o->listen, NULL, 0 },
		{ "stun", &o->stun, NULL, 0 }, { "tls-cert", &o->cert, NULL, 0 },
		{ "tls-key", &o->key, NULL, 0 }, { "plain-http", &o->plain, NULL, 0 },
		{ "metrics", &o->metrics, NULL, 0 }, { "state", &o->state, NULL, 0 },
		{ "log-level", &o->level, NULL, 0 }, { NULL, NULL, NULL, 0 },
	};
	char *words[2], err[256];
	uint8_t pin[32];
	enum log_level lvl;
	int n;

	o->listen = ":443";
	o->stun = ":3478";
	o->state = "./relay-state";
	n = args_parse(argc - 1, argv + 1, opts, words, 2, err, sizeof(err));
	if (n != 0) {
		fprintf(stderr, "relay: %s\n" USAGE, n < 0 ? err : "takes no arguments");
		return -EINVAL;
	}
	if (!o->coord || !o->token) {
		fprintf(stderr, "relay: --coord and --token are needed\n" USAGE);
		return -EINVAL;
	}
	if (coord_urls_check(o->coord, err, sizeof(err))) {
		fprintf(stderr, "relay: --coord: %s\n", err);
		return -EINVAL;
	}
	if (strlen(o->token) >= LINE_STREAM_TOKEN_MAX || (o->pin && tls_pin_parse(o->pin, pin))) {
		fprintf(stderr, "relay: the token is too long, or --pin is not sha256:<64 hex>\n");
		return -EINVAL;
	}
	if (!o->cert != !o->key) {
		fprintf(stderr, "relay: --tls-cert and --tls-key go together\n");
		return -EINVAL;
	}
	if (!strcmp(o->listen, "off") && !o->plain) {
		fprintf(stderr, "relay: --listen off needs --plain-http\n");
		return -EINVAL;
	}
	if (o->level && log_parse_level(o->level, &lvl)) {
		fprintf(stderr, "relay: --log-level is error, warn, info or debug\n");
		return -EINVAL;
	}
	if (o->level)
		log_set_level(lvl);
	return 0;
}

static int start_stun(struct app *a, const char *hostport)
{
	int rc;

	if (!strcmp(hostport, "off"))
		return 0;
	rc = stun_server_start(a->loop, hostport, &a->stun);
	if (rc == -ENOSYS) {
		log_warn("STUN server not built into this relay", "stun=%s", hostport);
		return 0;
	}
	if (rc)
		fprintf(stderr, "relay: cannot serve STUN on %s: %s\n", hostport, strerror(-rc));
	else
		printf("relay: STUN on UDP port %u\n", stun_server_port(a->stun));
	return rc;
}

static int start_listeners(struct app *a, const struct opts *o)
{
	char pin[TLS_PIN_LEN];
	struct tls_config *tls = NULL;
	int self = 0;

	if (strcmp(o->listen, "off")) {
		if (tls_server_setup("relay", o->state, o->cert, o->key, &tls, pin, &self))
			return -1;
		if (relay_server_listen_tls(&a->srv, o->listen, tls)) {
			fprintf(stderr, "relay: cannot listen on %s\n", o->listen);
			return -1;
		}
		printf("relay: listening on %s port %u\n", o->listen, relay_server_port(&a->srv, 1));
		if (self && pin[0] &&
		    !relay_pin_report_start(&a->pin, a->loop, o->coord, o->pin, o->token, pin))
			a->have_pin = 1;
	}
	if (o->plain) {
		if (relay_server_listen_plain(&a->srv, o->plain)) {
			fprintf(stderr, "relay: cannot listen for plain HTTP on %s\n", o->plain);
			return -1;
		}
		printf("relay: plain HTTP on %s port %u\n", o->plain, relay_server_port(&a->srv, 0));
	}
	return 0;
}

static int start_admission(struct app *a, const struct opts *o)
{
	int rc = relay_admission_init(&a->adm, &a->srv, o->state);

	if (rc)
		return rc;
	a->have_adm = 1;
	rc = relay_admission_load(&a->adm);
	if (rc)
		log_warn("saved admission list ignored", "path=%s error=\"%s\"", a->adm.path,
			 strerror(-rc));
	rc = relay_admission_start(&a->adm, o->coord, o->pin, o->token);
	if (rc)
		fprintf(stderr, "relay: cannot follow coord at %s: %s\n", o->coord, strerror(-rc));
	if (a->have_pin)
		a->pin.follow = &a->adm.ls;
	return rc;
}

static int serve(struct app *a, const struct opts *o)
{
	uint8_t pub[KEY_LEN], priv[KEY_LEN];
	char b64[KEY_B64_LEN];
	int rc;

	rc = relay_key_load(o->state, pub, priv);
	if (rc) {
		fprintf(stderr, "relay: cannot load or create %s/relay.key: %s\n", o->state,
			strerror(-rc));
		return 1;
	}
	rc = relay_server_init(&a->srv, a->loop, NULL, pub, priv);
	sodium_memzero(priv, sizeof(priv));
	if (rc) {
		fprintf(stderr, "relay: %s\n", strerror(-rc));
		return 1;
	}
	key_to_base64(pub, b64);
	log_info("relay key", "public=%s", b64);
	a->msrc = (struct relay_metrics_src){ .srv = &a->srv, .adm = &a->adm };
	if (start_listeners(a, o) || start_admission(a, o) || start_stun(a, o->stun))
		goto fail;
	a->msrc.stun = a->stun;
	if (o->metrics && metrics_server_start(a->loop, o->metrics, relay_metrics_fill, &a->msrc,
					       &a->metrics)) {
		fprintf(stderr, "relay: cannot listen for metrics on %s\n", o->metrics);
		goto fail;
	}
	uv_signal_init(a->loop, &a->sigint);
	a->sigint.data = a;
	uv_signal_start(&a->sigint, on_signal, SIGINT);
	uv_signal_init(a->loop, &a->sigterm);
	a->sigterm.data = a;
	uv_signal_start(&a->sigterm, on_signal, SIGTERM);
	fflush(stdout);
	log_info("relay serving", "coord=%s state=%s", o->coord, o->state);
	uv_run(a->loop, UV_RUN_DEFAULT);
	relay_server_close(&a->srv);
	return 0;
fail:
	app_stop(a, 0);
	uv_run(a->loop, UV_RUN_DEFAULT);
	relay_server_close(&a->srv);
	return 1;
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	struct app a = { 0 };
	int lock_fd, rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(USAGE, stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--version")) {
			printf("relay 0.1.0\n");
			return 0;
		}
	}
	if (parse(argc, argv, &o))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	file_raise_nofile();
	if (keys_init()) {
		fprintf(stderr, "relay: libsodium failed to initialise\n");
		return 1;
	}
	if (mkdir(o.state, 0700) && errno != EEXIST) {
		fprintf(stderr, "relay: cannot create state dir %s: %s\n", o.state, strerror(errno));
		return 1;
	}
	lock_fd = file_lock_dir(o.state, "relay.lock");
	if (lock_fd < 0) {
		fprintf(stderr, "relay: %s\n", lock_fd == -EBUSY
			? "another relay is already running on this state dir" : strerror(-lock_fd));
		return 1;
	}
	a.loop = uv_default_loop();
	rc = serve(&a, &o);
	uv_loop_close(a.loop);
	close(lock_fd);
	return rc;
}
