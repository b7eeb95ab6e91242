/* test_vpnd_nmcache.c - the netmap cache (vpnd/nmcache.c): a full and its deltas written
 * and read back into the same map, 0600; growth bounded (the cache is dropped and the next
 * full starts it again); garbage, a truncated full or bad delta lines refused without a
 * crash; an old file, an expired key, another node key or a node not running ignored. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "meshvpn/keys.h"
#include "vpnd/netmap.h"
#include "vpnd/nmcache.h"

#define SELF_KEY "s64MP7OtcMQ8iuj9xAnCyuFUw7d5JJ+hVDvojnAHpW8="

static char dir[64];
static uint8_t self_key[KEY_LEN];
static int64_t NOW;   /* the clock: the cache is judged by its mtime */

static void key_b64(int64_t id, char out[KEY_B64_LEN])
{
	uint8_t k[KEY_LEN];

	for (unsigned i = 0; i < KEY_LEN; i++)
		k[i] = (uint8_t)(7 + i);
	memcpy(k, &id, sizeof(id));
	key_to_base64(k, out);
}

static int peer_json(char *out, size_t size, int64_t id, const char *ep, int online)
{
	char nk[KEY_B64_LEN], dk[KEY_B64_LEN];

	key_b64(id, nk);
	key_b64(id + 1000000, dk);
	return snprintf(out, size,
		"{\"id\":%lld,\"name\":\"n%lld\",\"fqdn\":\"n%lld.ts.test\",\"ips\":[\"100.64.%d.%d\","
		"\"fd7a:115c:a1e0::6440:%x\"],\"endpoints\":[\"%s\"],\"home_relay\":\"\","
		"\"online\":%s,\"os\":\"linux\",\"tags\":[],\"last_seen\":1700000000,"
		"\"node_key\":\"%s\",\"disco_key\":\"%s\"}",
		(long long)id, (long long)id, (long long)id, (int)(id >> 8) & 0xff, (int)id & 0xff,
		(unsigned)id, ep, online ? "true" : "false", nk, dk);
}

/* A full as coord writes it: self "me" with SELF_KEY, peers 2..n_peers+1. */
static char *full_json(int n_peers, const char *state, long long key_expiry)
{
	size_t cap = 1024 + (size_t)n_peers * 512, len;
	char *buf = malloc(cap);

	assert_non_null(buf);
	len = (size_t)snprintf(buf, cap,
		"{\"type\":\"full\",\"self\":{\"id\":1,\"name\":\"me\",\"fqdn\":\"me.ts.test\","
		"\"ips\":[\"100.64.0.1\",\"fd7a:115c:a1e0::6440:1\"],\"endpoints\":[],\"home_relay\":\"\","
		"\"online\":true,\"os\":\"linux\",\"tags\":[],\"last_seen\":0,"
		"\"node_key\":\"" SELF_KEY "\","
		"\"disco_key\":\"zpNKyCQLVpxuGBBHwuUiws495yBpjfhotQT/sIqaISk=\",\"state\":\"%s\","
		"\"hostname\":\"me\",\"key_expiry\":%lld,\"ephemeral\":false},\"relays\":[],"
		"\"domain\":\"ts.test\",\"peers\":[", state, key_expiry);
	for (int i = 0; i < n_peers; i++) {
		if (i)
			buf[len++] = ',';
		len += (size_t)peer_json(buf + len, cap - len, i + 2, "192.0.2.1:41641", 1);
		assert_true(len < cap);
	}
	len += (size_t)snprintf(buf + len, cap - len, "]}");
	return buf;
}

static void path_of(char *out, size_t size)
{
	snprintf(out, size, "%s/%s", dir, NMCACHE_FILE);
}

static void write_raw(const char *text)
{
	char path[128];
	FILE *f;

	path_of(path, sizeof(path));
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int load(struct netmap *m, struct nmcache_info *info)
{
	return nmcache_load(dir, self_key, NOW, m, info);
}

static int exists(void)
{
	char path[128];

	path_of(path, sizeof(path));
	return access(path, F_OK) == 0;
}

static void apply_all(struct netmap *m, const char *const *lines, size_t n)
{
	struct nm_change c;

	for (size_t i = 0; i < n; i++) {
		assert_int_equal(netmap_apply_line(m, lines[i], strlen(lines[i]), &c), 0);
		nm_change_clear(&c);
	}
}

static void same_map(const struct netmap *a, const struct netmap *b)
{
	assert_int_equal(a->have_full, b->have_full);
	assert_memory_equal(&a->self, &b->self, sizeof(a->self));
	assert_int_equal(a->n_peers, b->n_peers);
	for (size_t i = 0; i < a->n_peers; i++) {
		const struct nm_peer *p = &a->peers[i], *q = &b->peers[i];

		assert_int_equal(p->id, q->id);
		assert_string_equal(p->name, q->name);
		assert_true(nm_peer_wg_equal(p, q));
		assert_int_equal(p->last_seen, q->last_seen);
		assert_string_equal(p->home_relay, q->home_relay);
		for (int k = 0; k < p->n_endpoints; k++)
			assert_true(addr_equal(&p->endpoints[k], &q->endpoints[k]));
	}
	assert_int_equal(a->n_relays, b->n_relays);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/nmcache-test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char path[128];

	(void)state;
	path_of(path, sizeof(path));
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s.tmp", dir, NMCACHE_FILE);
	unlink(path);
	rmdir(dir);
	return 0;
}

static void test_vpnd_nmcache_round_trip(void **state)
{
	char *full = full_json(3, "running", 0), added[1024], changed[1024], path[128];
	const char *online = "{\"type\":\"online\",\"id\":3,\"online\":false,\"last_seen\":1700000100}";
	const char *removed = "{\"type\":\"peer_removed\",\"id\":4}";
	const char *eps = "{\"type\":\"endpoints\",\"id\":2,\"endpoints\":[\"198.51.100.9:41641\"],"
			  "\"home_relay\":\"\"}";
	const char *relays = "{\"type\":\"relays\",\"relays\":[{\"name\":\"fra\",\"url\":"
			     "\"https://relay.test:443\"}]}";
	struct netmap want, got;
	struct nmcache c;
	struct nmcache_info info;
	struct stat st;

	(void)state;
	memcpy(added, "{\"type\":\"peer_added\",\"peer\":", 28);
	peer_json(added + 28, sizeof(added) - 30, 9, "192.0.2.9:41641", 1);
	strcat(added, "}");
	memcpy(changed, "{\"type\":\"peer_changed\",\"peer\":", 30);
	peer_json(changed + 30, sizeof(changed) - 32, 2, "192.0.2.2:41641", 0);
	strcat(changed, "}");
	const char *lines[] = { full, added, online, removed, changed, eps, relays };

	nmcache_init(&c, dir);
	/* written as it comes; the stream's lines end in nothing or in "\n" */
	assert_int_equal(nmcache_write_full(&c, full, strlen(full)), 0);
	assert_int_equal(nmcache_append(&c, added, strlen(added)), 0);
	assert_int_equal(nmcache_append(&c, online, strlen(online)), 0);
	assert_int_equal(nmcache_append(&c, removed, strlen(removed)), 0);
	assert_int_equal(nmcache_append(&c, changed, strlen(changed)), 0);
	assert_int_equal(nmcache_append(&c, eps, strlen(eps)), 0);
	assert_int_equal(nmcache_append(&c, relays, strlen(relays)), 0);
	assert_int_equal(nmcache_sync(&c), 0);
	nmcache_close(&c);
	assert_int_equal(nmcache_append(&c, eps, strlen(eps)), -EBADF);   /* closed: no more */

	path_of(path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal((size_t)st.st_size, strlen(full) + strlen(added) + strlen(online) +
			 strlen(removed) + strlen(changed) + strlen(eps) + strlen(relays) + 7);

	netmap_init(&want);
	netmap_init(&got);
	apply_all(&want, lines, sizeof(lines) / sizeof(lines[0]));
	assert_int_equal(nmcache_load(dir, self_key, NOW, &got, &info), 0);
	assert_int_equal(info.lines, 6);
	assert_int_equal(info.bad_lines, 0);
	assert_true(info.age_s < 60);
	same_map(&want, &got);
	assert_int_equal(got.n_peers, 3);   /* 2, 3, 9 */
	assert_false(netmap_find_id(&got, 3)->online);
	{
		char text[ADDR_TEXT_LEN];

		assert_int_equal(addr_format(&netmap_find_id(&got, 2)->endpoints[0], text,
					     sizeof(text)), 0);
		assert_string_equal(text, "198.51.100.9:41641");
	}
	assert_int_equal(got.n_relays, 1);

	/* A new full replaces everything, deltas included. */
	netmap_free(&want);
	netmap_init(&want);
	apply_all(&want, lines, 1);
	assert_int_equal(nmcache_write_full(&c, full, strlen(full)), 0);
	nmcache_close(&c);
	assert_int_equal(load(&got, &info), 0);
	assert_int_equal(info.lines, 0);
	same_map(&want, &got);

	/* close keeps the file, remove deletes it */
	assert_true(exists());
	assert_int_equal(nmcache_remove(&c), 0);
	assert_false(exists());
	assert_int_equal(nmcache_remove(&c), 0);
	assert_int_equal(load(&got, &info), -ENOENT);
	assert_false(got.have_full);
	netmap_free(&want);
	netmap_free(&got);
	free(full);
}

static void test_vpnd_nmcache_bounded_growth(void **state)
{
	char *full = full_json(1, "running", 0), line[128];
	struct nmcache c;
	struct netmap m;
	struct nmcache_info info;
	size_t written = 0;
	int rc = 0, n = 0;

	(void)state;
	nmcache_init(&c, dir);
	netmap_init(&m);
	assert_int_equal(nmcache_write_full(&c, full, strlen(full)), 0);
	/* A small full: the floor applies, not 4x its size. */
	while (!rc && n < 100000) {
		int len = snprintf(line, sizeof(line),
				   "{\"type\":\"online\",\"id\":2,\"online\":%s,\"last_seen\":%d}",
				   n % 2 ? "true" : "false", n);
		rc = nmcache_append(&c, line, (size_t)len);
		if (!rc)
			written += (size_t)len + 1;
		n++;
	}
	assert_int_equal(rc, -EFBIG);
	assert_true(written <= NMCACHE_MIN_DELTAS);
	assert_true(written > NMCACHE_MIN_DELTAS - sizeof(line));
	assert_false(exists());
	assert_int_equal(nmcache_append(&c, line, strlen(line)), -EBADF);
	assert_int_equal(load(&m, &info), -ENOENT);
	/* The next full starts it again. */
	assert_int_equal(nmcache_write_full(&c, full, strlen(full)), 0);
	assert_int_equal(nmcache_append(&c, line, strlen(line)), 0);
	nmcache_close(&c);
	assert_int_equal(load(&m, &info), 0);
	assert_int_equal(info.lines, 1);
	netmap_free(&m);
	free(full);
}

static void test_vpnd_nmcache_corrupt(void **state)
{
	char *full = full_json(2, "running", 0), *text;
	struct netmap m;
	struct nmcache_info info;
	size_t cap;

	(void)state;
	netmap_init(&m);
	/* garbage */
	write_raw("\x01\x02 not json at all\n{{{{\n");
	assert_int_equal(load(&m, &info), -EINVAL);
	assert_string_equal(info.why, "the full map is refused");
	assert_false(m.have_full);
	/* empty */
	write_raw("");
	assert_int_equal(load(&m, &info), -EINVAL);
	/* a truncated full (a torn write of the first line) */
	cap = strlen(full) + 4096;
	text = malloc(cap);
	assert_non_null(text);
	snprintf(text, cap, "%.*s\n", (int)strlen(full) / 2, full);
	write_raw(text);
	assert_int_equal(load(&m, &info), -EINVAL);
	assert_false(m.have_full);
	/* a delta first */
	write_raw("{\"type\":\"online\",\"id\":2,\"online\":false}\n");
	assert_int_equal(load(&m, &info), -EINVAL);
	/* a good full with bad deltas: they are skipped, the good one applies */
	snprintf(text, cap,
		 "%s\n"
		 "garbage\n"
		 "{\"type\":\"online\",\"id\":2,\"online\":\"maybe\"}\n"
		 "{\"type\":\"peer_added\",\"peer\":{\"id\":7}}\n"
		 "{\"type\":\"gone\",\"reason\":\"deleted\"}\n"
		 "\n"
		 "{\"type\":\"online\",\"id\":3,\"online\":false,\"last_seen\":5}\n"
		 "{\"type\":\"peer_removed\",\"id\":2}\n"
		 "{\"type\":\"online\",\"id\":3,\"onl",   /* torn last line */
		 full);
	write_raw(text);
	assert_int_equal(load(&m, &info), 0);
	assert_int_equal(info.bad_lines, 5);
	assert_int_equal(info.lines, 2);
	assert_int_equal(m.n_peers, 1);
	assert_false(netmap_find_id(&m, 3)->online);
	/* a second full is not something we write */
	snprintf(text, cap, "%s\n%s\n", full, full);
	write_raw(text);
	assert_int_equal(load(&m, &info), -EINVAL);
	assert_false(m.have_full);
	free(text);
	free(full);
	netmap_free(&m);
}

static void test_vpnd_nmcache_stale(void **state)
{
	char *full = full_json(1, "running", 0), *expiring = full_json(1, "running", NOW - 1);
	char path[128];
	struct timespec ts[2];
	struct netmap m;
	struct nmcache c;
	struct nmcache_info info;

	(void)state;
	netmap_init(&m);
	nmcache_init(&c, dir);
	path_of(path, sizeof(path));
	assert_int_equal(nmcache_write_full(&c, full, strlen(full)), 0);
	nmcache_close(&c);
	ts[0].tv_sec = ts[1].tv_sec = NOW - NMCACHE_MAX_AGE_S - 1;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	assert_int_equal(load(&m, &info), -ESTALE);
	assert_false(m.have_full);
	ts[0].tv_sec = ts[1].tv_sec = NOW - NMCACHE_MAX_AGE_S + 10;
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	assert_int_equal(load(&m, &info), 0);
	assert_int_equal(info.age_s, NMCACHE_MAX_AGE_S - 10);
	/* a clock behind the file (no RTC at boot) is age 0, not negative */
	ts[0].tv_sec = ts[1].tv_sec = NOW + 3600;
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	assert_int_equal(load(&m, &info), 0);
	assert_int_equal(info.age_s, 0);

	/* past self.key_expiry */
	assert_int_equal(nmcache_write_full(&c, expiring, strlen(expiring)), 0);
	nmcache_close(&c);
	assert_int_equal(load(&m, &info), -ESTALE);
	assert_string_equal(info.why, "the node key expired");
	assert_int_equal(nmcache_load(dir, self_key, NOW - 2, &m, &info), 0);
	netmap_free(&m);
	free(full);
	free(expiring);
}

static void test_vpnd_nmcache_not_ours(void **state)
{
	char *full = full_json(1, "running", 0), *pending = full_json(0, "needs-approval", 0);
	char *expired = full_json(1, "expired", 0);
	uint8_t other[KEY_LEN];
	struct netmap m;
	struct nmcache c;
	struct nmcache_info info;

	(void)state;
	netmap_init(&m);
	nmcache_init(&c, dir);
	assert_int_equal(nmcache_write_full(&c, full, strlen(full)), 0);
	nmcache_close(&c);
	memcpy(other, self_key, KEY_LEN);
	other[0] ^= 1;
	assert_int_equal(nmcache_load(dir, other, NOW, &m, &info), -EKEYREJECTED);
	assert_false(m.have_full);
	assert_int_equal(load(&m, &info), 0);
	assert_true(m.have_full);
	/* load empties the map it is given on a refusal */
	assert_int_equal(nmcache_write_full(&c, pending, strlen(pending)), 0);
	nmcache_close(&c);
	assert_int_equal(load(&m, &info), -EACCES);
	assert_false(m.have_full);
	assert_int_equal(nmcache_write_full(&c, expired, strlen(expired)), 0);
	nmcache_close(&c);
	assert_int_equal(load(&m, &info), -EACCES);
	/* a line with a newline inside is not a line */
	assert_int_equal(nmcache_write_full(&c, "{\"type\":\"full\"}\n{}", 18), -EINVAL);
	assert_false(exists());
	netmap_free(&m);
	free(full);
	free(pending);
	free(expired);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_vpnd_nmcache_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_nmcache_bounded_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_nmcache_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_nmcache_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpnd_nmcache_not_ours, setup, teardown),
	};

	NOW = (int64_t)time(NULL);
	if (keys_init() || key_from_base64(SELF_KEY, self_key))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
