/* discoprobe.c - sends hostile disco and STUN packets to a running vpnd's WireGuard port,
 * for the NAT-traversal netns test, which then reads the drop counters:
 *   unknown:   a well-formed PING from a fresh disco key   -> vpnd_disco_unknown_key_total
 *   badbox:    from-state's disco key, a box sealed with a wrong key or random bytes
 *                                                          -> vpnd_disco_bad_box_total
 *   replay:    a valid PING from from-state, sent twice byte-identical: the first must be
 *              answered ("pong txid ok"), the second not   -> vpnd_disco_replayed_total
 *   wrongnode: a valid PING from from-state naming a random node key
 *                                                          -> vpnd_disco_wrong_node_total
 *   stun:      a STUN header with junk attributes and an unsolicited Binding success
 * Modes other than replay expect nothing back: a reply is printed and exits 1.
 * Only public keys leave this process. --self-test seals and opens locally (no network).
 * Usage: discoprobe --mode MODE --to-state DIR [--from-state DIR] --addr IP:PORT
 *        [--count N] | discoprobe --self-test
 * Exit: 0 sent (and as expected), 1 a wrong or missing answer, a socket error or an ICMP
 * port unreachable back, 2 usage. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/addr.h"
#include "meshvpn/args.h"
#include "meshvpn/disco.h"
#include "meshvpn/keys.h"
#include "meshvpn/stun.h"

static struct {
	int fd;
	uint8_t to_pub[KEY_LEN];                     /* the target's disco key */
	uint8_t pub[KEY_LEN], priv[KEY_LEN];         /* ours: from-state's or a fresh one */
	uint8_t node[KEY_LEN];                       /* the node key a PING names */
	uint8_t shared[DISCO_SHARED_LEN];
	uint64_t last;
	int refused;                                 /* an ICMP port unreachable came back */
} P = { .fd = -1 };

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int send_buf(const uint8_t *p, size_t len)
{
	ssize_t n = send(P.fd, p, len, 0);

	/* the error belongs to an earlier datagram; this one was not sent yet */
	if (n < 0 && errno == ECONNREFUSED) {
		P.refused = 1;
		n = send(P.fd, p, len, 0);
	}
	if (n != (ssize_t)len) {
		fprintf(stderr, "discoprobe: send: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* A datagram within ms, its length; 0 when none came (an ICMP error counts as none). */
static ssize_t recv_wait(uint8_t *buf, size_t size, int ms)
{
	struct pollfd pfd = { .fd = P.fd, .events = POLLIN };
	uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
	ssize_t n;

	for (;;) {
		uint64_t t = now_ns();

		if (t >= end || poll(&pfd, 1, (int)((end - t) / 1000000u) + 1) <= 0)
			return 0;
		n = recv(P.fd, buf, size, 0);
		if (n > 0)
			return n;
		if (n < 0 && errno == ECONNREFUSED)
			P.refused = 1;
	}
}

/* A PING from P.pub naming P.node, sealed with P.shared. Length, or negative. */
static int seal_ping(uint8_t txid[DISCO_TXID_LEN], uint8_t *out, size_t size)
{
	struct disco_msg m = { .type = DISCO_PING };

	randombytes_buf(m.txid, DISCO_TXID_LEN);
	memcpy(txid, m.txid, DISCO_TXID_LEN);
	memcpy(m.node_key, P.node, KEY_LEN);
	return disco_seal(&m, P.pub, P.shared, disco_next_counter(&P.last, now_ns()), out, size);
}

/* 1 when buf is the target's PONG to txid, opened with P.shared. */
static int is_pong(const uint8_t *buf, size_t len, const uint8_t txid[DISCO_TXID_LEN])
{
	uint8_t from[KEY_LEN];
	struct disco_msg m;
	uint64_t counter;

	return !disco_sender(buf, len, from) && !memcmp(from, P.to_pub, KEY_LEN) &&
	       !disco_open(buf, len, P.shared, &m, &counter) && m.type == DISCO_PONG &&
	       !memcmp(m.txid, txid, DISCO_TXID_LEN);
}

/* 1 when the target's PONG to txid comes within ms. Other datagrams are skipped: the
 * target may well ping a new source back on its own. */
static int wait_pong(const uint8_t txid[DISCO_TXID_LEN], int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
	uint8_t buf[2048];
	ssize_t r;

	for (uint64_t t = now_ns(); t < end; t = now_ns()) {
		r = recv_wait(buf, sizeof(buf), (int)((end - t) / 1000000u) + 1);
		if (r > 0 && is_pong(buf, (size_t)r, txid))
			return 1;
	}
	return 0;
}

static int probe_replay(void)
{
	uint8_t pkt[DISCO_MAX_PACKET], txid[DISCO_TXID_LEN];
	int n = seal_ping(txid, pkt, sizeof(pkt)), again;

	if (n < 0 || send_buf(pkt, (size_t)n))
		return 1;
	if (!wait_pong(txid, 2000)) {
		printf("first ping: no pong\n");
		return 1;
	}
	printf("pong txid ok\n");
	if (send_buf(pkt, (size_t)n))
		return 1;
	again = wait_pong(txid, 2000);
	printf("replayed ping: %s\n", again ? "answered (wrong)" : "no pong");
	return again;
}

/* The two STUN packets: a header with junk attributes, an unsolicited Binding success. */
static int probe_stun(void)
{
	uint8_t junk[64], req[STUN_HEADER_LEN + 8], resp[STUN_RESPONSE_MAX], txid[STUN_TXID_LEN];
	struct addr_port mapped;
	struct stun_msg m;
	int n;

	randombytes_buf(junk, sizeof(junk));
	junk[0] &= 0x3f;                             /* STUN's two zero bits */
	junk[2] = 0;
	junk[3] = sizeof(junk) - STUN_HEADER_LEN;
	junk[4] = 0x21, junk[5] = 0x12, junk[6] = 0xa4, junk[7] = 0x42;
	randombytes_buf(txid, sizeof(txid));
	addr_parse("192.0.2.1:4242", 14, 0, &mapped);
	n = stun_build_binding_request(txid, 1, req, sizeof(req));
	if (n < 0 || stun_parse(req, (size_t)n, &m))
		return 1;
	n = stun_build_binding_response(&m, &mapped, resp, sizeof(resp));
	if (n < 0 || send_buf(junk, sizeof(junk)) || send_buf(resp, (size_t)n))
		return 1;
	return 0;
}

/* One round of a mode that expects nothing back; 0 when it was sent. */
static int probe_drop(const char *mode, int round)
{
	uint8_t pkt[DISCO_MAX_PACKET], txid[DISCO_TXID_LEN];
	int n;

	if (!strcmp(mode, "stun"))
		return probe_stun();
	if (!strcmp(mode, "unknown")) {            /* a key pair the target has never heard of */
		crypto_box_keypair(P.pub, P.priv);
		randombytes_buf(P.node, KEY_LEN);
		if (disco_shared(P.priv, P.to_pub, P.shared))
			return 1;
	} else if (!strcmp(mode, "wrongnode")) {
		randombytes_buf(P.node, KEY_LEN);
	}
	n = seal_ping(txid, pkt, sizeof(pkt));
	if (n < 0)
		return 1;
	if (!strcmp(mode, "badbox") && round % 2)  /* every other one: random bytes as the box */
		randombytes_buf(pkt + DISCO_HEADER_LEN, (size_t)n - DISCO_HEADER_LEN);
	return send_buf(pkt, (size_t)n);
}

/* Seals and opens with two local key pairs: the codec round trip this tool relies on. */
static int self_test(void)
{
	uint8_t bpub[KEY_LEN], bpriv[KEY_LEN], bshared[DISCO_SHARED_LEN];
	uint8_t pkt[DISCO_MAX_PACKET], txid[DISCO_TXID_LEN], from[KEY_LEN];
	struct disco_replay rp = { 0 };
	struct disco_msg m, pong = { .type = DISCO_PONG };
	uint64_t c, blast = 0;
	int n, ok;

	crypto_box_keypair(P.pub, P.priv);
	crypto_box_keypair(bpub, bpriv);
	memcpy(P.to_pub, bpub, KEY_LEN);
	randombytes_buf(P.node, KEY_LEN);
	if (disco_shared(P.priv, bpub, P.shared) || disco_shared(bpriv, P.pub, bshared))
		return 1;
	n = seal_ping(txid, pkt, sizeof(pkt));
	ok = n > 0 && !disco_sender(pkt, (size_t)n, from) && !memcmp(from, P.pub, KEY_LEN) &&
	     !disco_open(pkt, (size_t)n, bshared, &m, &c) && m.type == DISCO_PING &&
	     !memcmp(m.node_key, P.node, KEY_LEN) && !disco_replay_check(&rp, c) &&
	     disco_open(pkt, (size_t)n, bshared, &m, &c) == 0 &&
	     disco_replay_check(&rp, c) == -EALREADY;
	memcpy(pong.txid, txid, DISCO_TXID_LEN);
	addr_parse("192.0.2.1:4242", 14, 0, &pong.src);
	n = ok ? disco_seal(&pong, bpub, bshared, disco_next_counter(&blast, now_ns()), pkt,
			    sizeof(pkt)) : -1;
	ok = n > 0 && is_pong(pkt, (size_t)n, txid);
	if (ok) {                                    /* a flipped bit must not open */
		pkt[n - 1] ^= 1;
		ok = disco_open(pkt, (size_t)n, bshared, &m, &c) == -EPERM;
	}
	sodium_memzero(bpriv, sizeof(bpriv));
	sodium_memzero(bshared, sizeof(bshared));
	printf("self-test %s\n", ok ? "ok" : "FAILED");
	return !ok;
}

/* Keys for mode: the target's disco key; ours from from-state (or fresh, per round). */
static int load_keys(const char *mode, const char *to_state, const char *from_state)
{
	uint8_t wpub[KEY_LEN], wpriv[KEY_LEN];
	struct node_keys k;
	int rc = 0;

	if (node_keys_load(to_state, 0, &k)) {
		fprintf(stderr, "discoprobe: no keys in %s\n", to_state);
		return 2;
	}
	memcpy(P.to_pub, k.disco_pub, KEY_LEN);
	node_keys_wipe(&k);
	if (!strcmp(mode, "unknown") || !strcmp(mode, "stun"))
		return 0;
	if (!from_state || node_keys_load(from_state, 0, &k)) {
		fprintf(stderr, "discoprobe: --mode %s needs --from-state with keys\n", mode);
		return 2;
	}
	memcpy(P.pub, k.disco_pub, KEY_LEN);
	memcpy(P.node, k.node_pub, KEY_LEN);
	if (!strcmp(mode, "badbox")) {               /* our sender field, someone else's box */
		crypto_box_keypair(wpub, wpriv);
		rc = disco_shared(wpriv, P.to_pub, P.shared);
		sodium_memzero(wpriv, sizeof(wpriv));
	} else {
		rc = disco_shared(k.disco_priv, P.to_pub, P.shared);
	}
	node_keys_wipe(&k);
	return rc ? 1 : 0;
}

static int open_socket(const struct addr_port *to)
{
	struct sockaddr_storage ss;

	addr_to_sockaddr(to, &ss);
	/* connected: replies from elsewhere are not taken for the target's */
	P.fd = socket(to->family, SOCK_DGRAM, 0);
	if (P.fd < 0 || connect(P.fd, (struct sockaddr *)&ss, to->family == AF_INET ?
				sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6))) {
		fprintf(stderr, "discoprobe: socket: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = NULL, *to_state = NULL, *from_state = NULL, *addr = NULL;
	const char *count_s = "1";
	int self = 0, count, rc;
	const struct arg_opt opts[] = {
		{ "mode", &mode, NULL, 0 }, { "to-state", &to_state, NULL, 0 },
		{ "from-state", &from_state, NULL, 0 }, { "addr", &addr, NULL, 0 },
		{ "count", &count_s, NULL, 0 }, { "self-test", NULL, &self, 0 },
		{ NULL, NULL, NULL, 0 },
	};
	static const char *const modes[] = { "unknown", "badbox", "replay", "wrongnode", "stun" };
	struct addr_port to;
	char *words[1], err[256], *end;
	int known = 0;

	rc = args_parse(argc - 1, argv + 1, opts, words, 1, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "discoprobe: %s\n", err);
	for (size_t i = 0; mode && i < sizeof(modes) / sizeof(modes[0]); i++)
		known |= !strcmp(mode, modes[i]);
	count = (int)strtol(count_s, &end, 10);
	if (rc != 0 || (!self && (!known || !to_state || !addr ||
				  addr_parse(addr, strlen(addr), ADDR_ZONE, &to))) ||
	    *end || count < 1 || count > 100000) {
		fprintf(stderr, "usage: discoprobe --mode unknown|badbox|replay|wrongnode|stun "
			"--to-state DIR [--from-state DIR] --addr IP:PORT [--count N]\n"
			"       discoprobe --self-test\n");
		return 2;
	}
	if (keys_init())
		return 1;
	if (self)
		return self_test();
	rc = load_keys(mode, to_state, from_state);
	if (rc || open_socket(&to))
		return rc ? rc : 1;
	for (int i = 0; i < count && !rc; i++)
		rc = !strcmp(mode, "replay") ? probe_replay() : probe_drop(mode, i);
	if (!rc && strcmp(mode, "replay")) {
		uint8_t buf[2048];
		ssize_t r = recv_wait(buf, sizeof(buf), 500);

		printf("sent %s x%d: %s\n", mode, count, r > 0 ? "got a reply (wrong)" : "no reply");
		rc = r > 0;
	}
	if (P.refused) {
		printf("target port unreachable\n");
		rc = 1;
	}
	close(P.fd);
	return rc;
}
