/* rawprobe.c - vpnd/rawsock.c on a real port, for tests/netns/rawsock.sh. A normal UDP
 * socket bound to --port stands in for WireGuard (and counts what it receives); a rawsock
 * on the same port sends STUN binding requests (--stun) and disco-magic datagrams
 * (--disco) from it and receives the answers. Before those, --plain sends a plain
 * datagram and --decoy a disco-magic one from the UDP socket (which the peer's raw
 * filter must drop: plain content, or not its port), and --opts a disco-magic one from
 * another IPv4 socket with IP options (a 24-byte header the peer's filter must read). With --echo, a disco probe received
 * through the raw socket is answered through it. Prints, one line each:
 *   udp from ADDR len=N                       (the stand-in socket got a datagram)
 *   raw stun from ADDR mapped ADDR            (a binding response to one of ours)
 *   raw disco probe|echo from ADDR to ADDR    (a disco datagram through the raw socket)
 *   stats raw_received=N raw_bad=N raw_sent=N send_errors=N udp=N   (at the end)
 * Exits 0 once every STUN server has answered through the raw socket and its answer has
 * reached the UDP socket too (and, with --want-echo, every --disco target has echoed); 1 at --timeout. Without targets it runs until SIGTERM (exit 0).
 * Usage: rawprobe --port P [--bind ADDR] [--stun A:P]... [--disco A:P]... [--plain A:P]...
 *        [--decoy A:P]... [--opts A:P]... [--echo] [--want-echo] [--timeout MS] */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "meshvpn/addr.h"
#include "meshvpn/disco.h"
#include "meshvpn/stun.h"
#include "rawsock.h"

#define MAX_TARGETS 8
#define RESEND_MS 200
#define DISCO_LEN (DISCO_HEADER_LEN + DISCO_MAC_LEN + 8)
#define MARK_PROBE 'P'               /* byte after the magic: a probe, or an echo of one */
#define MARK_ECHO 'E'

struct target {
	struct addr_port a;
	uint8_t txid[STUN_TXID_LEN];
	int done, sent;
	int udp_seen;                    /* its datagram reached the UDP socket too */
};

static struct {
	uv_loop_t *loop;
	uv_udp_t udp;
	uv_timer_t resend, deadline;
	uv_signal_t term;
	struct rawsock *rs;
	uint16_t port;
	struct target stun[MAX_TARGETS], disco[MAX_TARGETS];
	struct addr_port plain[MAX_TARGETS], decoy[MAX_TARGETS], opts[MAX_TARGETS];
	int n_stun, n_disco, n_plain, n_decoy, n_opts, echo, want_echo, rc;
	unsigned long long udp_count;
} P;

static const char *fmt(const struct addr_port *a, char *buf)
{
	if (addr_format(a, buf, ADDR_TEXT_LEN))
		snprintf(buf, ADDR_TEXT_LEN, "?");
	return buf;
}

static void disco_build(uint8_t *buf, uint8_t mark)
{
	memcpy(buf, DISCO_MAGIC, DISCO_MAGIC_LEN);
	randombytes_buf(buf + DISCO_MAGIC_LEN, DISCO_LEN - DISCO_MAGIC_LEN);
	buf[DISCO_MAGIC_LEN] = mark;
}

static int all_done(void)
{
	int i;

	if (!P.n_stun && !P.n_disco)
		return 0;                        /* a server: runs until SIGTERM */
	for (i = 0; i < P.n_stun; i++)
		if (!P.stun[i].done || !P.stun[i].udp_seen)
			return 0;
	for (i = 0; i < P.n_disco && P.want_echo; i++)
		if (!P.disco[i].done)
			return 0;
	return 1;
}

static void on_closed(uv_handle_t *h) { (void)h; }

static void stop(int rc)
{
	struct rawsock_stats st;

	rawsock_get_stats(P.rs, &st);
	printf("stats raw_received=%llu raw_bad=%llu raw_sent=%llu send_errors=%llu udp=%llu\n",
	       (unsigned long long)st.received, (unsigned long long)st.bad,
	       (unsigned long long)st.sent, (unsigned long long)st.send_errors, P.udp_count);
	fflush(stdout);
	P.rc = rc;
	rawsock_close(P.rs);
	P.rs = NULL;
	uv_close((uv_handle_t *)&P.udp, on_closed);
	uv_close((uv_handle_t *)&P.resend, on_closed);
	uv_close((uv_handle_t *)&P.deadline, on_closed);
	uv_close((uv_handle_t *)&P.term, on_closed);
}

static void on_stun(const struct rawsock_pkt *pkt)
{
	char s[ADDR_TEXT_LEN], m[ADDR_TEXT_LEN];
	struct addr_port mapped;
	struct stun_msg msg;
	int i;

	if (stun_parse(pkt->payload, pkt->len, &msg) || stun_response_mapped(&msg, &mapped))
		return;
	for (i = 0; i < P.n_stun; i++)
		if (!P.stun[i].done && !memcmp(stun_txid(&msg), P.stun[i].txid, STUN_TXID_LEN)) {
			P.stun[i].done = 1;
			printf("raw stun from %s mapped %s\n", fmt(&pkt->src, s), fmt(&mapped, m));
		}
}

static void on_disco(const struct rawsock_pkt *pkt)
{
	char s[ADDR_TEXT_LEN], d[ADDR_TEXT_LEN];
	uint8_t buf[DISCO_LEN];
	int echo = pkt->payload[DISCO_MAGIC_LEN] == MARK_ECHO, i, rc;

	printf("raw disco %s from %s to %s\n", echo ? "echo" : "probe", fmt(&pkt->src, s),
	       fmt(&pkt->dst, d));
	if (!echo && P.echo) {
		disco_build(buf, MARK_ECHO);
		rc = rawsock_send(P.rs, &pkt->src, buf, sizeof(buf));
		if (rc)
			printf("echo failed: %s\n", strerror(-rc));
	}
	for (i = 0; echo && i < P.n_disco; i++)
		if (addr_equal(&P.disco[i].a, &pkt->src))
			P.disco[i].done = 1;
}

static void on_raw(struct rawsock *rs, const struct rawsock_pkt *pkt, void *arg)
{
	(void)rs;
	(void)arg;
	if (pkt->kind == RAWSOCK_STUN)
		on_stun(pkt);
	else
		on_disco(pkt);
	fflush(stdout);
	if (all_done())
		stop(0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char mem[2048];

	(void)h;
	(void)hint;
	*buf = uv_buf_init(mem, sizeof(mem));
}

static void on_udp(uv_udp_t *u, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
		   unsigned flags)
{
	struct addr_port a;
	char s[ADDR_TEXT_LEN];
	int i;

	(void)u;
	(void)buf;
	(void)flags;
	if (n < 0 || !from || addr_from_sockaddr(from, &a))
		return;
	/* [::]-bound: IPv4 senders come as ::ffff:a.b.c.d */
	if (a.family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a.v6)) {
		struct in_addr v4;
		memcpy(&v4, a.v6.s6_addr + 12, 4);
		a.family = AF_INET;
		a.v4 = v4;
	}
	P.udp_count++;
	printf("udp from %s len=%zd\n", fmt(&a, s), n);
	fflush(stdout);
	for (i = 0; i < P.n_stun; i++)
		if (addr_equal(&P.stun[i].a, &a))
			P.stun[i].udp_seen = 1;
	if (all_done())
		stop(0);
}

static void udp_send(const struct addr_port *to, const uint8_t *p, size_t len)
{
	struct sockaddr_storage ss;
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
	struct addr_port m = *to;
	int rc;

	/* the socket is [::]-bound: IPv4 goes to a mapped address */
	if (to->family == AF_INET) {
		memset(&m, 0, sizeof(m));
		m.family = AF_INET6;
		m.port = to->port;
		m.v6.s6_addr[10] = m.v6.s6_addr[11] = 0xff;
		memcpy(m.v6.s6_addr + 12, &to->v4, 4);
	}
	addr_to_sockaddr(&m, &ss);
	rc = uv_udp_try_send(&P.udp, &b, 1, (struct sockaddr *)&ss);
	if (rc < 0)
		printf("udp send failed: %s\n", uv_strerror(rc));
}

/* A disco probe from a fresh IPv4 socket whose packets carry IP options (four NOPs-worth:
 * IHL 6), so the receiver's filter must find UDP by the real header length. */
static void send_with_options(const struct addr_port *to)
{
	static const uint8_t nops[4] = { 1, 1, 1, 0 };   /* NOP NOP NOP EOL */
	struct sockaddr_storage ss;
	uint8_t buf[DISCO_LEN];
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, IPPROTO_IP, IP_OPTIONS, nops, sizeof(nops))) {
		printf("ip options socket failed: %s\n", strerror(errno));
		goto out;
	}
	disco_build(buf, MARK_PROBE);
	addr_to_sockaddr(to, &ss);
	if (sendto(fd, buf, sizeof(buf), 0, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) < 0)
		printf("ip options send failed: %s\n", strerror(errno));
out:
	if (fd >= 0)
		close(fd);
}

static void on_resend(uv_timer_t *t)
{
	uint8_t buf[DISCO_LEN > 64 ? DISCO_LEN : 64];
	int i, n, rc;

	(void)t;
	for (i = 0; i < P.n_stun; i++) {
		if (P.stun[i].done)
			continue;
		n = stun_build_binding_request(P.stun[i].txid, 1, buf, sizeof(buf));
		rc = n < 0 ? n : rawsock_send(P.rs, &P.stun[i].a, buf, (size_t)n);
		if (rc)
			printf("stun send failed: %s\n", strerror(-rc));
	}
	for (i = 0; i < P.n_disco; i++) {
		if (P.disco[i].done || (!P.want_echo && P.disco[i].sent))
			continue;                    /* without --want-echo: sent once */
		P.disco[i].sent = 1;
		disco_build(buf, MARK_PROBE);
		rc = rawsock_send(P.rs, &P.disco[i].a, buf, DISCO_LEN);
		if (rc)
			printf("disco send failed: %s\n", strerror(-rc));
	}
	fflush(stdout);
}

static void on_deadline(uv_timer_t *t)
{
	(void)t;
	printf("timeout\n");
	stop(1);
}

static void on_term(uv_signal_t *s, int signum)
{
	(void)s;
	(void)signum;
	stop(0);
}

static int add_addr(struct addr_port *list, int *n, const char *s)
{
	if (*n == MAX_TARGETS || addr_parse(s, strlen(s), 0, &list[*n])) {
		fprintf(stderr, "rawprobe: bad address %s\n", s);
		return -1;
	}
	(*n)++;
	return 0;
}

static int add_target(struct target *list, int *n, const char *s)
{
	if (*n == MAX_TARGETS || addr_parse(s, strlen(s), 0, &list[*n].a)) {
		fprintf(stderr, "rawprobe: bad address %s\n", s);
		return -1;
	}
	randombytes_buf(list[(*n)++].txid, STUN_TXID_LEN);
	return 0;
}

static int parse_args(int argc, char **argv, const char **bind, long *timeout)
{
	static const struct option opts[] = {
		{ "port", required_argument, 0, 'p' }, { "bind", required_argument, 0, 'b' },
		{ "stun", required_argument, 0, 's' }, { "disco", required_argument, 0, 'd' },
		{ "plain", required_argument, 0, 'n' }, { "decoy", required_argument, 0, 'y' },
		{ "opts", required_argument, 0, 'o' }, { "echo", no_argument, 0, 'e' }, { "want-echo", no_argument, 0, 'w' },
		{ "timeout", required_argument, 0, 't' }, { 0, 0, 0, 0 },
	};
	int c, rc = 0;

	while (!rc && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': P.port = (uint16_t)atoi(optarg); break;
		case 'b': *bind = optarg; break;
		case 's': rc = add_target(P.stun, &P.n_stun, optarg); break;
		case 'd': rc = add_target(P.disco, &P.n_disco, optarg); break;
		case 'n': rc = add_addr(P.plain, &P.n_plain, optarg); break;
		case 'y': rc = add_addr(P.decoy, &P.n_decoy, optarg); break;
		case 'o': rc = add_addr(P.opts, &P.n_opts, optarg); break;
		case 'e': P.echo = 1; break;
		case 'w': P.want_echo = 1; break;
		case 't': *timeout = atol(optarg); break;
		default: rc = -1;
		}
	}
	if (!rc && !P.port) {
		fprintf(stderr, "usage: rawprobe --port P [--bind ADDR] [--stun A:P]... "
			"[--disco A:P]... [--plain A:P]... [--decoy A:P]... [--opts A:P]... [--echo] "
			"[--want-echo] [--timeout MS]\n");
		rc = -1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	const char *bind = "::";
	struct sockaddr_in6 sa;
	uint8_t buf[DISCO_LEN];
	long timeout = 10000;
	int i, rc;

	if (sodium_init() < 0 || parse_args(argc, argv, &bind, &timeout))
		return 2;
	P.loop = uv_default_loop();
	P.rc = 1;
	uv_udp_init(P.loop, &P.udp);
	rc = uv_ip6_addr(bind, P.port, &sa);
	if (!rc)
		rc = uv_udp_bind(&P.udp, (struct sockaddr *)&sa, 0);  /* dual-stack, as WireGuard */
	if (!rc)
		rc = uv_udp_recv_start(&P.udp, on_alloc, on_udp);
	if (rc) {
		fprintf(stderr, "rawprobe: udp [%s]:%u: %s\n", bind, P.port, uv_strerror(rc));
		return 1;
	}
	rc = rawsock_open(P.loop, P.port, on_raw, NULL, &P.rs);
	if (rc) {
		fprintf(stderr, "rawprobe: rawsock_open: %s\n", strerror(-rc));
		return 1;
	}
	printf("ready port=%u\n", P.port);
	/* the datagrams the peer's filter must drop go first: see rawsock.sh */
	for (i = 0; i < P.n_plain; i++)
		udp_send(&P.plain[i], (const uint8_t *)"a plain datagram", 16);
	for (i = 0; i < P.n_decoy; i++) {
		disco_build(buf, MARK_PROBE);
		udp_send(&P.decoy[i], buf, sizeof(buf));
	}
	for (i = 0; i < P.n_opts; i++)
		send_with_options(&P.opts[i]);
	fflush(stdout);
	uv_timer_init(P.loop, &P.resend);
	uv_timer_init(P.loop, &P.deadline);
	uv_signal_init(P.loop, &P.term);
	uv_signal_start_oneshot(&P.term, on_term, SIGTERM);
	if (P.n_stun || P.n_disco) {
		uv_timer_start(&P.resend, on_resend, 0, RESEND_MS);
		uv_timer_start(&P.deadline, on_deadline, (uint64_t)timeout, 0);
	}
	uv_run(P.loop, UV_RUN_DEFAULT);
	return P.rc;
}
