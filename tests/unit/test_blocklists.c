/* test_blocklists.c - coord's blocklists: the meta file of a source's last good copy,
 * which entries a tag combination takes, and versioning: a source's content or a rule
 * that changes gives a new, larger version; nothing changed, no new version; each tag
 * combination its own list; a restart serves the same versions. Fetching over HTTP and
 * serving to nodes are in tests/e2e/coord.sh. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "blocklists.h"
#include "meshvpn/json.h"

static void test_meta_roundtrip(void **state)
{
	struct bl_meta m = { .fetched = 1700000000, .version = 3, .cut = 1 }, back;
	char *text;

	snprintf(m.etag, sizeof(m.etag), "\"abc\"");
	snprintf(m.last_modified, sizeof(m.last_modified), "Tue, 01 Dec 2026 10:00:00 GMT");
	memset(m.sum, 0xa5, sizeof(m.sum));
	m.st = (struct blocklist_stats){ 10, 6, 1, 2, 3, 4 };
	text = bl_meta_format(&m, "https://lists.example/a.txt");
	assert_non_null(text);
	assert_int_equal(bl_meta_parse(text, strlen(text), "https://lists.example/a.txt", &back), 0);
	assert_memory_equal(&m, &back, sizeof(m));
	/* another source's meta, or a damaged one, is no copy at all */
	assert_int_equal(bl_meta_parse(text, strlen(text), "/other", &back), -EINVAL);
	assert_int_equal(back.version, 0);
	assert_int_equal(bl_meta_parse(text, strlen(text) / 2, "https://lists.example/a.txt", &back),
			 -EINVAL);
	free(text);
	m.version = 0;
	text = bl_meta_format(&m, "/x");
	assert_int_equal(bl_meta_parse(text, strlen(text), "/x", &back), -EINVAL);
	free(text);
}

static void test_applies(void **state)
{
	assert_true(bl_applies("", ""));
	assert_true(bl_applies("tag:kids", ""));
	assert_false(bl_applies("", "tag:kids"));
	assert_true(bl_applies("tag:kids", "tag:kids"));
	assert_true(bl_applies("tag:a,tag:kids", "tag:kids"));
	assert_false(bl_applies("tag:kidsx", "tag:kids"));
	assert_false(bl_applies("tag:a,tag:b", "tag:kids"));
}

struct fixture {
	char dir[64], list[96];
	uv_loop_t loop;
	struct coord co;
	struct coord_opts opts;
};

static void reopen(struct fixture *f)
{
	assert_int_equal(coord_open(&f->co, &f->loop, &f->opts), 0);
	assert_int_equal(coord_blocklists_start(&f->co), 0);
}

static void shut(struct fixture *f)
{
	coord_blocklists_stop(&f->co);
	uv_run(&f->loop, UV_RUN_DEFAULT);   /* its jobs and timer end */
	coord_close(&f->co);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_blocklists.XXXXXX");
	if (!mkdtemp(f->dir) || sodium_init() < 0)
		return -1;
	snprintf(f->list, sizeof(f->list), "%s/hosts.txt", f->dir);
	uv_loop_init(&f->loop);
	f->opts.state_dir = f->dir;
	f->opts.key_expiry = 3600;
	f->opts.keepalive = 30;
	f->opts.blocklist_refresh = 3600;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	uv_loop_close(&f->loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd))
		return -1;
	free(f);
	return 0;
}

static void write_list(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void edit(struct fixture *f, const char *kind, const char *field, const char *value,
		 const char *tag)
{
	char err[256];
	json_t *b = json_pack("{s:s, s:s}", field, value, "tag", tag);

	assert_int_equal(coord_dns_edit(&f->co, kind, 1, b, NULL, err, sizeof(err)), 0);
	json_decref(b);
}

/* Runs the loop until the key's list has a version other than old. */
static int64_t next_version(struct fixture *f, const char *key, int64_t old)
{
	int64_t v = coord_blocklists_version(&f->co, key);

	for (int i = 0; i < 400 && v == old; i++) {
		uv_run(&f->loop, UV_RUN_NOWAIT);
		usleep(5000);
		v = coord_blocklists_version(&f->co, key);
	}
	return v;
}

static void settle(struct fixture *f)
{
	for (int i = 0; i < 100; i++) {
		uv_run(&f->loop, UV_RUN_NOWAIT);
		usleep(5000);
	}
}

static void test_versions(void **state)
{
	struct fixture *f = *state;
	uint8_t fp1[BL_SUM_LEN], fp2[BL_SUM_LEN];
	int64_t v1, v2, v3, vk;

	write_list(f->list, "0.0.0.0 ads.example\n||track.example^\n");
	reopen(f);
	edit(f, "blocklists", "source", f->list, "");
	v1 = next_version(f, "", 0);
	assert_true(v1 > 0);
	bl_fingerprint(&f->co, "", fp1);
	/* nothing changed: the same inputs, the same version */
	coord_blocklists_changed(&f->co);
	settle(f);
	bl_fingerprint(&f->co, "", fp2);
	assert_memory_equal(fp1, fp2, BL_SUM_LEN);
	assert_int_equal(coord_blocklists_version(&f->co, ""), v1);
	/* a rule: new inputs, a larger version */
	edit(f, "block", "domain", "more.example", "");
	v2 = next_version(f, "", v1);
	assert_true(v2 > v1);
	bl_fingerprint(&f->co, "", fp2);
	assert_memory_not_equal(fp1, fp2, BL_SUM_LEN);
	/* a tagged rule: not the untagged list's business, but its own combination's */
	edit(f, "block", "domain", "kids.example", "tag:kids");
	vk = next_version(f, "tag:kids", 0);
	assert_true(vk > v2);
	settle(f);
	assert_int_equal(coord_blocklists_version(&f->co, ""), v2);
	/* a restart serves what it served */
	shut(f);
	reopen(f);
	settle(f);
	assert_int_equal(coord_blocklists_version(&f->co, ""), v2);
	/* a changed source, seen on its next fetch */
	write_list(f->list, "0.0.0.0 ads.example\n0.0.0.0 new.example\n");
	f->co.bl->sources->next_at = 0;
	coord_blocklists_tick(&f->co);
	v3 = next_version(f, "", v2);
	assert_true(v3 > vk);
	shut(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_meta_roundtrip),
		cmocka_unit_test(test_applies),
		cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
