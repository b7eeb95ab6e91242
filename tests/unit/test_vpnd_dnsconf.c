/* test_vpnd_dnsconf.c - --accept-dns (vpnd/dnsconf.c): the new resolv.conf from the old
 * one, the mode picked, resolvectl's argv; then in a temp dir: a resolv.conf pointed at
 * the resolver and put back byte for byte (a file, a symlink, none at all), updated when
 * the domain moves, put back from the backup by a fresh instance (a crash), left alone
 * when someone else replaced it; and systemd-resolved's mode through a fake resolvectl
 * that records its argv. */
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
#include <unistd.h>

#include <cmocka.h>

#include "meshvpn/log.h"
#include "vpnd/dnsconf.h"

static const char orig[] = "# from DHCP\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"
			   "search corp.example lab.example\noptions edns0 trust-ad\n";

static void want(struct dnsconf_want *w, const char *domain, int all)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->domain, sizeof(w->domain), "%s", domain);
	w->all = all;
}

static void test_dnsconf_build(void **state)
{
	struct dnsconf_want w;
	char out[1024];
	int n;

	(void)state;
	want(&w, "mesh.test", 1);
	n = dnsconf_build(orig, strlen(orig), "100.100.100.100", &w, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(out));
	assert_non_null(strstr(out, "\nnameserver 100.100.100.100\nsearch mesh.test corp.example "
			       "lab.example\noptions edns0 trust-ad\n"));
	assert_null(strstr(out, "192.0.2.53"));   /* we take every name */

	/* Only our names: the old servers stay after ours (three in all). */
	w.all = 0;
	assert_true(dnsconf_build(orig, strlen(orig), "100.100.100.100", &w, out, sizeof(out)) > 0);
	assert_non_null(strstr(out, "nameserver 100.100.100.100\nnameserver 192.0.2.53\n"
			       "nameserver 192.0.2.54\n"));

	/* From nothing; the domain not twice; comments after words; domain lines. */
	want(&w, "", 1);
	assert_true(dnsconf_build("", 0, "100.100.100.100", &w, out, sizeof(out)) > 0);
	assert_null(strstr(out, "search"));
	want(&w, "mesh.test", 1);
	{
		const char *old = "search mesh.test a.example # old\ndomain b.example\n";

		assert_true(dnsconf_build(old, strlen(old), "100.100.100.100", &w, out, sizeof(out)) > 0);
	}
	assert_non_null(strstr(out, "search mesh.test a.example b.example\n"));
	assert_int_equal(dnsconf_build(orig, strlen(orig), "100.100.100.100", &w, out, 40), -ENOSPC);
}

static void test_dnsconf_mode_and_argv(void **state)
{
	char bufs[DNSCONF_ROUTES_MAX + 1][DNSPOL_NAME_MAX + 2];
	const char *dns[5], *dom[DNSCONF_ROUTES_MAX + 6];
	struct dnsconf_want w;

	(void)state;
	assert_int_equal(dnsconf_pick_mode("/run/systemd/resolve/stub-resolv.conf",
					   "/run/systemd/resolve"), DNSCONF_RESOLVED);
	assert_int_equal(dnsconf_pick_mode("/run/systemd/resolvex/a", "/run/systemd/resolve"),
			 DNSCONF_FILE);
	assert_int_equal(dnsconf_pick_mode("/etc/resolv.conf", "/run/systemd/resolve"), DNSCONF_FILE);
	assert_int_equal(dnsconf_pick_mode("/etc/resolv.conf", NULL), DNSCONF_FILE);
	want(&w, "mesh.test", 0);
	snprintf(w.routes[0], sizeof(w.routes[0]), "service.consul");
	w.n_routes = 1;
	assert_int_equal(dnsconf_resolved_argv("/x/resolvectl", "mv0", "100.100.100.100", &w, bufs,
					       dns, dom), 5);
	assert_string_equal(dns[1], "dns");
	assert_string_equal(dns[2], "mv0");
	assert_string_equal(dns[3], "100.100.100.100");
	assert_null(dns[4]);
	assert_string_equal(dom[3], "~mesh.test");
	assert_string_equal(dom[4], "~service.consul");
	assert_null(dom[5]);
	w.all = 1;
	assert_int_equal(dnsconf_resolved_argv("/x/resolvectl", "mv0", "100.100.100.100", &w, bufs,
					       dns, dom), 6);
	assert_string_equal(dom[5], "~.");
}

struct tmp {
	char dir[64], state[96], conf[96];
};

static void tmp_make(struct tmp *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/test_dnsconf.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->state, sizeof(t->state), "%s/state", t->dir);
	snprintf(t->conf, sizeof(t->conf), "%s/resolv.conf", t->dir);
	assert_int_equal(mkdir(t->state, 0700), 0);
}

static void tmp_rm(struct tmp *t)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	assert_int_equal(system(cmd), 0);
}

static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *slurp(const char *path)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = 0;
	return buf;
}

static void test_dnsconf_file_round_trip(void **state)
{
	struct dnsconf c, fresh;
	struct dnsconf_want w;
	struct tmp t;
	char backup[128];
	struct stat st;

	(void)state;
	tmp_make(&t);
	put_file(t.conf, orig);
	dnsconf_init(&c, t.state, "mv0", t.conf, "/nonexistent/resolvectl", t.dir);
	want(&w, "mesh.test", 1);
	assert_int_equal(dnsconf_apply(&c, &w), 0);
	assert_int_equal(c.mode, DNSCONF_FILE);
	assert_non_null(strstr(slurp(t.conf), "nameserver 100.100.100.100\nsearch mesh.test corp"));
	snprintf(backup, sizeof(backup), "%s/" DNSCONF_BACKUP, t.state);
	assert_int_equal(stat(backup, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The same wish again: nothing written. A new domain: rewritten from the original. */
	assert_int_equal(dnsconf_apply(&c, &w), 0);
	want(&w, "other.test", 1);
	assert_int_equal(dnsconf_apply(&c, &w), 0);
	assert_non_null(strstr(slurp(t.conf), "search other.test corp.example lab.example\n"));
	assert_null(strstr(slurp(t.conf), "mesh.test"));
	assert_int_equal(dnsconf_restore(&c), 0);
	assert_string_equal(slurp(t.conf), orig);
	assert_int_not_equal(stat(backup, &st), 0);
	assert_int_equal(dnsconf_restore(&c), 0);   /* nothing of ours left: nothing done */
	assert_string_equal(slurp(t.conf), orig);

	/* A crash: a fresh instance finds the backup and puts the original back. */
	assert_int_equal(dnsconf_apply(&c, &w), 0);
	dnsconf_init(&fresh, t.state, "mv0", t.conf, NULL, t.dir);
	assert_true(dnsconf_pending(&fresh));
	assert_int_equal(dnsconf_restore(&fresh), 0);
	assert_string_equal(slurp(t.conf), orig);
	assert_false(dnsconf_pending(&fresh));

	/* Someone else wrote the file while we were up: left alone, backup dropped. */
	dnsconf_init(&c, t.state, "mv0", t.conf, NULL, t.dir);
	assert_int_equal(dnsconf_apply(&c, &w), 0);
	put_file(t.conf, "nameserver 203.0.113.1\n");
	assert_int_equal(dnsconf_restore(&c), 0);
	assert_string_equal(slurp(t.conf), "nameserver 203.0.113.1\n");
	assert_false(dnsconf_pending(&c));
	/* ... also when it is noticed on an update */
	put_file(t.conf, orig);
	assert_int_equal(dnsconf_apply(&c, &w), 0);
	put_file(t.conf, "nameserver 203.0.113.2\n");
	want(&w, "mesh.test", 1);
	assert_int_equal(dnsconf_apply(&c, &w), 0);
	assert_string_equal(slurp(t.conf), "nameserver 203.0.113.2\n");
	assert_false(dnsconf_pending(&c));
	assert_int_equal(dnsconf_restore(&c), 0);
	assert_string_equal(slurp(t.conf), "nameserver 203.0.113.2\n");
	tmp_rm(&t);
}

static void test_dnsconf_symlink_and_absent(void **state)
{
	struct dnsconf c;
	struct dnsconf_want w;
	struct tmp t;
	char target[128], link[256];
	struct stat st;
	ssize_t n;

	(void)state;
	tmp_make(&t);
	snprintf(target, sizeof(target), "%s/nm-resolv.conf", t.dir);
	put_file(target, orig);
	assert_int_equal(symlink("nm-resolv.conf", t.conf), 0);
	dnsconf_init(&c, t.state, "mv0", t.conf, NULL, "/nonexistent");   /* no resolved */
	want(&w, "mesh.test", 0);
	assert_int_equal(dnsconf_apply(&c, &w), 0);
	assert_int_equal(lstat(t.conf, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_non_null(strstr(slurp(t.conf), "nameserver 192.0.2.53"));   /* the link's servers kept */
	assert_string_equal(slurp(target), orig);                           /* its target untouched */
	want(&w, "other.test", 0);
	assert_int_equal(dnsconf_apply(&c, &w), 0);
	assert_non_null(strstr(slurp(t.conf), "search other.test corp.example"));
	assert_int_equal(dnsconf_restore(&c), 0);
	assert_int_equal(lstat(t.conf, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	n = readlink(t.conf, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = 0;
	assert_string_equal(link, "nm-resolv.conf");

	/* No resolv.conf at all: ours while up, none again afterwards. */
	assert_int_equal(unlink(t.conf), 0);
	assert_int_equal(dnsconf_apply(&c, &w), 0);
	assert_non_null(strstr(slurp(t.conf), "nameserver 100.100.100.100"));
	assert_int_equal(dnsconf_restore(&c), 0);
	assert_int_not_equal(lstat(t.conf, &st), 0);
	tmp_rm(&t);
}

static void test_dnsconf_resolved(void **state)
{
	struct dnsconf c, fresh;
	struct dnsconf_want w;
	struct tmp t;
	char rdir[128], stub[192], fake[128], rec[128], script[512];

	(void)state;
	tmp_make(&t);
	snprintf(rdir, sizeof(rdir), "%s/run-resolve", t.dir);
	assert_int_equal(mkdir(rdir, 0755), 0);
	snprintf(stub, sizeof(stub), "%s/stub-resolv.conf", rdir);
	put_file(stub, "nameserver 127.0.0.53\n");
	assert_int_equal(symlink(stub, t.conf), 0);
	snprintf(rec, sizeof(rec), "%s/argv", t.dir);
	snprintf(fake, sizeof(fake), "%s/resolvectl", t.dir);
	snprintf(script, sizeof(script), "#!/bin/sh\necho \"$*\" >> '%s'\n", rec);
	put_file(fake, script);
	assert_int_equal(chmod(fake, 0755), 0);

	dnsconf_init(&c, t.state, "mv0", t.conf, fake, rdir);
	want(&w, "mesh.test", 1);
	snprintf(w.routes[0], sizeof(w.routes[0]), "service.consul");
	w.n_routes = 1;
	assert_int_equal(dnsconf_apply(&c, &w), 0);
	assert_int_equal(c.mode, DNSCONF_RESOLVED);
	assert_string_equal(slurp(rec), "dns mv0 100.100.100.100\n"
			    "domain mv0 ~mesh.test ~service.consul ~.\n");
	assert_string_equal(slurp(stub), "nameserver 127.0.0.53\n");   /* resolved's own file */
	assert_int_equal(dnsconf_apply(&c, &w), 0);   /* unchanged: not run again */
	assert_int_equal(dnsconf_restore(&c), 0);
	assert_string_equal(slurp(rec), "dns mv0 100.100.100.100\n"
			    "domain mv0 ~mesh.test ~service.consul ~.\nrevert mv0\n");
	assert_false(dnsconf_pending(&c));

	/* A crash: the next start reverts the link. */
	unlink(rec);
	assert_int_equal(dnsconf_apply(&c, &w), 0);
	dnsconf_init(&fresh, t.state, "mv0", t.conf, fake, rdir);
	assert_true(dnsconf_pending(&fresh));
	assert_int_equal(dnsconf_restore(&fresh), 0);
	assert_non_null(strstr(slurp(rec), "\nrevert mv0\n"));
	tmp_rm(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dnsconf_build),
		cmocka_unit_test(test_dnsconf_mode_and_argv),
		cmocka_unit_test(test_dnsconf_file_round_trip),
		cmocka_unit_test(test_dnsconf_symlink_and_absent),
		cmocka_unit_test(test_dnsconf_resolved),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
