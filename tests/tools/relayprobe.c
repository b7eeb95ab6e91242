/* relayprobe.c - a stand-in relay client for the e2e tests, made of lib/conn, lib/tls and
 * lib/relay_frame (not the client library): connects to a relay (https with a pin, or
 * http), upgrades, proves a node key (STATE/keys of a nodesim node, or a fresh one), and
 *   hello: prints "admitted" (exit 0) or "refused" (exit 1);
 *   hold:  stays, printing "recv <src> <data>" per packet and "gone <reason>" / "closed";
 *   send:  sends --data to --to KEY, prints "sent", or "gone not_here" if the relay says so.
 * Usage: relayprobe hello|hold|send --url URL [--pin P] [--state DIR] [--to KEY --data T]
 *        [--timeout SECONDS] */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/args.h"
#include "meshvpn/http.h"
#include "meshvpn/keys.h"
#include "meshvpn/relay_frame.h"
#include "meshvpn/tls.h"

static struct {
	uv_loop_t *loop;
	struct conn *c;
	const char *mode, *data;
	uint8_t pub[KEY_LEN], priv[KEY_LEN], to[KEY_LEN];
	int upgraded, admitted, rc;
	char head[2048];
	size_t hlen;
	struct relay_reader rd;
	uv_timer_t timer;
} P = { .rc = 1 };

static void finish(int rc)
{
	P.rc = rc;
	fflush(stdout);
	uv_stop(P.loop);
}

static void send_packet(void)
{
	uint8_t hdr[RELAY_HDR_LEN + KEY_LEN];
	size_t len = strlen(P.data);

	relay_packet_header(hdr, RELAY_SEND_PACKET, P.to, len);
	conn_write(P.c, hdr, sizeof(hdr));
	conn_write(P.c, P.data, len);
}

static void on_timer(uv_timer_t *t)
{
	if (!strcmp(P.mode, "send") && P.admitted) {
		printf("sent\n");
		finish(0);
		return;
	}
	printf("timeout\n");
	finish(1);
}

static int on_frame(const struct relay_frame *f, void *arg)
{
	static const char *const reasons[] = { "not_here", "disconnected", "not_admitted" };
	uint8_t relay_pub[KEY_LEN], challenge[RELAY_CHALLENGE_LEN];
	uint8_t hello[RELAY_HDR_LEN + RELAY_CLIENT_HELLO_LEN];
	const uint8_t *key, *data;
	char b64[KEY_B64_LEN];
	size_t len;

	if (relay_frame_check(f))
		return 0;
	switch (f->type) {
	case RELAY_SERVER_HELLO:
		relay_server_hello_parse(f, relay_pub, challenge);
		relay_client_hello_build(hello, sizeof(hello), P.pub, P.priv, relay_pub, challenge, 0);
		conn_write(P.c, hello, sizeof(hello));
		break;
	case RELAY_SERVER_INFO:
		P.admitted = 1;
		printf("admitted\n");
		fflush(stdout);
		if (!strcmp(P.mode, "hello"))
			finish(0);
		else if (!strcmp(P.mode, "send")) {
			send_packet();
			uv_timer_start(&P.timer, on_timer, 500, 0);   /* room for a peer-gone */
		}
		break;
	case RELAY_PEER_GONE:
		printf("%s %s\n", P.admitted ? "gone" : "refused",
		       f->payload[KEY_LEN] < 3 ? reasons[f->payload[KEY_LEN]] : "?");
		finish(1);
		return 1;
	case RELAY_RECV_PACKET:
		relay_packet_parse(f, &key, &data, &len);
		key_to_base64(key, b64);
		printf("recv %s %.*s\n", b64, (int)len, (const char *)data);
		fflush(stdout);
		break;
	}
	return 0;
}

static void on_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	if (!P.upgraded) {
		size_t room = sizeof(P.head) - 1 - P.hlen, take = len < room ? len : room;
		char *end;

		memcpy(P.head + P.hlen, buf, take);
		P.hlen += take;
		P.head[P.hlen] = 0;
		end = strstr(P.head, "\r\n\r\n");
		if (!end)
			return;
		if (strncmp(P.head, "HTTP/1.1 101 ", 13)) {
			printf("refused http %.3s\n", P.head + 9);
			finish(1);
			return;
		}
		P.upgraded = 1;
		size_t used = (size_t)(end + 4 - P.head) - (P.hlen - take);
		buf += used;
		len -= used;
	}
	if (relay_reader_feed(&P.rd, buf, len, on_frame, NULL) < 0)
		finish(1);
}

static void on_end(struct conn *c, int status, void *arg)
{
	printf(P.admitted ? "closed\n" : "refused\n");
	finish(1);
}

static void on_connect(struct conn *c, int status, void *arg)
{
	static const char req[] = "GET /relay HTTP/1.1\r\nHost: relay\r\nConnection: Upgrade\r\n"
				  "Upgrade: " RELAY_UPGRADE "\r\n\r\n";

	if (status < 0) {
		printf("cannot connect: %s\n", strerror(-status));
		finish(1);
		return;
	}
	P.c = c;
	conn_set_callbacks(c, on_read, on_end, NULL);
	conn_write(c, req, sizeof(req) - 1);
}

int main(int argc, char **argv)
{
	const char *url = NULL, *pin = NULL, *state = NULL, *to = NULL, *timeout = "10";
	const struct arg_opt opts[] = {
		{ "url", &url, NULL, 0 }, { "pin", &pin, NULL, 0 }, { "state", &state, NULL, 0 },
		{ "to", &to, NULL, 0 }, { "data", &P.data, NULL, 0 },
		{ "timeout", &timeout, NULL, 0 }, { NULL, NULL, NULL, 0 },
	};
	struct tls_config *tls = NULL;
	struct node_keys k;
	struct http_url u;
	char *words[2], err[256];
	int n;

	n = args_parse(argc - 1, argv + 1, opts, words, 2, err, sizeof(err));
	if (n != 1 || !url || http_url_parse(url, &u) || u.scheme == HTTP_SCHEME_UNIX ||
	    (strcmp(words[0], "hello") && strcmp(words[0], "hold") && strcmp(words[0], "send")) ||
	    (!strcmp(words[0], "send") && (!to || !P.data || key_from_base64(to, P.to)))) {
		fprintf(stderr, "usage: relayprobe hello|hold|send --url URL [--pin P] [--state DIR] "
			"[--to KEY --data TEXT] [--timeout S]\n");
		return 2;
	}
	P.mode = words[0];
	signal(SIGPIPE, SIG_IGN);
	keys_init();
	if (state) {
		if (node_keys_load(state, 0, &k)) {
			fprintf(stderr, "relayprobe: no keys in %s\n", state);
			return 2;
		}
		memcpy(P.pub, k.node_pub, KEY_LEN);
		memcpy(P.priv, k.node_priv, KEY_LEN);
		node_keys_wipe(&k);
	} else {
		crypto_box_keypair(P.pub, P.priv);
	}
	P.loop = uv_default_loop();
	uv_timer_init(P.loop, &P.timer);
	uv_timer_start(&P.timer, on_timer, (uint64_t)atoi(timeout) * 1000, 0);
	if (u.scheme == HTTP_SCHEME_HTTPS) {
		if (tls_config_client_new(NULL, pin, &tls) ||
		    tls_connect(P.loop, tls, u.host, u.port, on_connect, NULL, NULL))
			return 1;
	} else if (conn_tcp_connect(P.loop, u.host, u.port, on_connect, NULL, NULL)) {
		return 1;
	}
	uv_run(P.loop, UV_RUN_DEFAULT);
	/* a test tool: the process ends here, the kernel closes the socket */
	return P.rc;
}
