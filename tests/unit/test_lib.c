/* test_lib.c - unit tests for lib's small modules: keys, args, json, log quoting. */
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

#include "meshvpn/args.h"
#include "meshvpn/coord_proto.h"
#include "meshvpn/file.h"
#include "meshvpn/json.h"
#include "meshvpn/keys.h"
#include "meshvpn/log.h"

static void test_keys_base64_round_trip(void **state)
{
	uint8_t pub[KEY_LEN], priv[KEY_LEN], back[KEY_LEN];
	char b64[KEY_B64_LEN];

	(void)state;
	key_x25519_generate(pub, priv);
	key_to_base64(pub, b64);
	assert_int_equal(strlen(b64), 44);
	assert_int_equal(key_from_base64(b64, back), 0);
	assert_memory_equal(pub, back, KEY_LEN);
}

static void test_keys_base64_rejects_junk(void **state)
{
	uint8_t k[KEY_LEN];

	(void)state;
	assert_int_equal(key_from_base64("", k), -EINVAL);
	assert_int_equal(key_from_base64("abc", k), -EINVAL);
	/* 44 characters but not base64 */
	assert_int_equal(key_from_base64("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!=", k), -EINVAL);
	/* 45 characters */
	assert_int_equal(key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", k), -EINVAL);
	assert_int_equal(key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", k), 0);
}

static void test_keys_load_persists_and_is_private(void **state)
{
	char tmpl[] = "/tmp/test_keys.XXXXXX", path[256];
	struct node_keys a, b;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(tmpl));
	assert_int_equal(node_keys_load(tmpl, 0, &a), -ENOENT);
	assert_int_equal(node_keys_load(tmpl, 1, &a), 0);
	snprintf(path, sizeof(path), "%s/keys", tmpl);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(node_keys_load(tmpl, 0, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(node_keys_rotate(tmpl, &b), 0);
	assert_memory_not_equal(a.node_pub, b.node_pub, KEY_LEN);
	assert_memory_equal(a.machine_pub, b.machine_pub, KEY_LEN);
	/* A corrupt file is an error, not a silent new identity. */
	FILE *f = fopen(path, "w");
	fputs("node garbage\n", f);
	fclose(f);
	assert_int_equal(node_keys_load(tmpl, 1, &b), -EINVAL);
	assert_int_equal(node_keys_remove(tmpl), 0);
	rmdir(tmpl);
}

/* The temporary keys file is always a fresh 0600 file: a planted keys.tmp symlink is
 * not written through, and a loose keys.tmp left behind does not lend its mode. */
static void test_keys_write_ignores_planted_tmp(void **state)
{
	char tmpl[] = "/tmp/test_keys.XXXXXX", path[256], tmp[256], target[256], buf[8];
	struct node_keys a;
	struct stat st;
	FILE *f;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(tmpl));
	snprintf(path, sizeof(path), "%s/keys", tmpl);
	snprintf(tmp, sizeof(tmp), "%s/keys.tmp", tmpl);
	snprintf(target, sizeof(target), "%s/victim", tmpl);
	f = fopen(target, "w");
	fputs("safe", f);
	fclose(f);
	assert_int_equal(symlink(target, tmp), 0);
	assert_int_equal(node_keys_load(tmpl, 1, &a), 0);
	fd = open(target, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 4);
	close(fd);
	assert_memory_equal(buf, "safe", 4);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	fd = open(tmp, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0644), 0);
	close(fd);
	assert_int_equal(node_keys_rotate(tmpl, &a), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(access(tmp, F_OK), -1);
	node_keys_wipe(&a);
	assert_int_equal(node_keys_remove(tmpl), 0);
	unlink(target);
	rmdir(tmpl);
}

static void test_keys_sign_verify(void **state)
{
	struct node_keys k;
	uint8_t sig[SIG_LEN];

	(void)state;
	node_keys_generate(&k);
	assert_int_equal(keys_sign(k.machine_sec, "hello", 5, sig), 0);
	assert_int_equal(keys_verify(k.machine_pub, "hello", 5, sig), 0);
	assert_int_equal(keys_verify(k.machine_pub, "hellO", 5, sig), -EPERM);
	sig[0] ^= 1;
	assert_int_equal(keys_verify(k.machine_pub, "hello", 5, sig), -EPERM);
	node_keys_wipe(&k);
}

static void test_keys_hex(void **state)
{
	uint8_t in[4] = { 0xde, 0xad, 0xbe, 0xef }, out[4];
	char hex[9];

	(void)state;
	hex_encode(in, 4, hex);
	assert_string_equal(hex, "deadbeef");
	assert_int_equal(hex_decode(hex, out, 4), 0);
	assert_memory_equal(in, out, 4);
	assert_int_equal(hex_decode("deadbee", out, 4), -EINVAL);
	assert_int_equal(hex_decode("deadbeeg", out, 4), -EINVAL);
}

static void test_args_anywhere(void **state)
{
	const char *st = NULL;
	int json = 0, n;
	char *words[4], err[128];
	const struct arg_opt opts[] = {
		{ "state", &st, NULL, 0 }, { "json", NULL, &json, 0 }, { NULL, NULL, NULL, 0 },
	};
	char *argv1[] = { "--state", "D", "keys", "list" };
	char *argv2[] = { "keys", "list", "--state=D", "--json" };
	char *argv3[] = { "keys", "--bogus" };
	char *argv4[] = { "keys", "--state" };

	(void)state;
	n = args_parse(4, argv1, opts, words, 4, err, sizeof(err));
	assert_int_equal(n, 2);
	assert_string_equal(st, "D");
	assert_string_equal(words[0], "keys");
	st = NULL;
	n = args_parse(4, argv2, opts, words, 4, err, sizeof(err));
	assert_int_equal(n, 2);
	assert_string_equal(st, "D");
	assert_int_equal(json, 1);
	assert_int_equal(args_parse(2, argv3, opts, words, 4, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--bogus"));
	assert_int_equal(args_parse(2, argv4, opts, words, 4, err, sizeof(err)), -EINVAL);
}

static void test_args_duration(void **state)
{
	int64_t s;

	(void)state;
	assert_int_equal(args_parse_duration("90d", &s), 0);
	assert_int_equal(s, 90 * 86400);
	assert_int_equal(args_parse_duration("12h", &s), 0);
	assert_int_equal(s, 12 * 3600);
	assert_int_equal(args_parse_duration("45", &s), 0);
	assert_int_equal(s, 45);
	assert_int_equal(args_parse_duration("-1d", &s), -EINVAL);
	assert_int_equal(args_parse_duration("1w", &s), -EINVAL);
	assert_int_equal(args_parse_duration("1dd", &s), -EINVAL);
	assert_int_equal(args_parse_duration("", &s), -EINVAL);
	assert_int_equal(args_parse_duration("99999999999999999999d", &s), -EINVAL);
}

static void test_json_copy_str(void **state)
{
	json_t *o = json_pack("{s:s, s:i, s:s}", "name", "alpha", "n", 3, "long", "0123456789");
	char out[8];

	(void)state;
	assert_int_equal(json_copy_str(o, "name", out, sizeof(out), 1), 0);
	assert_string_equal(out, "alpha");
	assert_int_equal(json_copy_str(o, "absent", out, sizeof(out), 0), 0);
	assert_string_equal(out, "");
	assert_int_equal(json_copy_str(o, "absent", out, sizeof(out), 1), -EINVAL);
	assert_int_equal(json_copy_str(o, "n", out, sizeof(out), 0), -EINVAL);
	assert_int_equal(json_copy_str(o, "long", out, sizeof(out), 0), -EINVAL);
	json_decref(o);
}

static void test_json_getters(void **state)
{
	char err[128];
	const char *s;
	int64_t i;
	int b;
	const char text[] = "{\"s\":\"x\",\"i\":5,\"b\":true,\"n\":null}";
	json_t *o = json_parse_object(text, strlen(text), err, sizeof(err));

	(void)state;
	assert_non_null(o);
	assert_int_equal(json_get_str(o, "s", &s), 0);
	assert_string_equal(s, "x");
	assert_int_equal(json_get_str(o, "i", &s), -EINVAL);
	assert_int_equal(json_get_str(o, "missing", &s), -ENOENT);
	assert_int_equal(json_get_str(o, "n", &s), -ENOENT);
	assert_int_equal(json_get_int(o, "i", &i), 0);
	assert_int_equal(i, 5);
	assert_int_equal(json_get_bool(o, "b", &b), 0);
	assert_int_equal(b, 1);
	json_decref(o);
	assert_null(json_parse_object("[1]", 3, err, sizeof(err)));
	assert_null(json_parse_object("{\"a\":1,\"a\":2}", 13, err, sizeof(err)));
	assert_null(json_parse_object("{", 1, err, sizeof(err)));
	/* Embedded NULs never reach the getters. */
	assert_null(json_parse_object("{\"a\":\"x\\u0000y\"}", 17, err, sizeof(err)));
}

static void test_log_quote(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(log_quote("plain", buf, sizeof(buf)), "plain");
	assert_string_equal(log_quote("two words", buf, sizeof(buf)), "\"two words\"");
	assert_string_equal(log_quote("a\"b", buf, sizeof(buf)), "\"a\\\"b\"");
	assert_string_equal(log_quote("", buf, sizeof(buf)), "\"\"");
	/* too long: cut, marked, still one quoted value, never half an escape */
	{
		char small[12];

		assert_string_equal(log_quote("abcdefghijklmnop", small, sizeof(small)), "\"abcdef...\"");
		assert_string_equal(log_quote("a b c d e f g", small, sizeof(small)), "\"a b c ...\"");
		assert_string_equal(log_quote("abcde\"fghij", small, sizeof(small)), "\"abcde...\"");
		assert_string_equal(log_quote("abcdefghij", small, sizeof(small)), "abcdefghij");
		assert_string_equal(log_quote("abcdefghijkl", small, sizeof(small)), "\"abcdef...\"");
		assert_string_equal(log_quote("a\"b\"c", small, sizeof(small)), "\"a\\\"b\\\"c\"");
	}
}

/* file_replace: the pieces in order, the mode whatever the umask, no .tmp left, the
 * kept descriptor appends; a missing directory fails and leaves nothing. */
static void test_file_replace(void **state)
{
	char dir[] = "/tmp/test_lib_file.XXXXXX", path[64], tmp[80], buf[64];
	struct iovec iov[2] = { { .iov_base = "hello", .iov_len = 5 }, { .iov_base = "\n", .iov_len = 1 } };
	struct stat st;
	mode_t old = umask(022);
	int fd = -1;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(file_replace(path, iov, 2, 0600, NULL), 0);
	assert_int_equal(file_replace(path, iov, 1, 0600, &fd), 0);
	assert_true(fd >= 0);
	assert_int_equal(file_write_all(fd, "+more", 5), 0);
	close(fd);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_not_equal(access(tmp, F_OK), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "hello+more");
	unlink(path);
	rmdir(dir);
	assert_int_equal(file_replace(path, iov, 2, 0600, NULL), -ENOENT);
	assert_int_not_equal(access(tmp, F_OK), 0);
}

/* file_lock_dir: one holder at a time (flock is per open file, so a second open in this
 * process competes like another daemon would); closing hands it on; 0600. */
static void test_file_lock_dir(void **state)
{
	char dir[] = "/tmp/test_lib_lock.XXXXXX", path[64];
	struct stat st;
	int a, b;

	(void)state;
	assert_non_null(mkdtemp(dir));
	a = file_lock_dir(dir, "d.lock");
	assert_true(a >= 0);
	assert_int_equal(file_lock_dir(dir, "d.lock"), -EBUSY);
	snprintf(path, sizeof(path), "%s/d.lock", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	close(a);
	b = file_lock_dir(dir, "d.lock");
	assert_true(b >= 0);
	close(b);
	unlink(path);
	rmdir(dir);
	assert_int_equal(file_lock_dir(dir, "d.lock"), -ENOENT);
}

/* A line whose key=value part is too long stays one record: cut, quote closed, marked. */
static void test_log_line_cut(void **state)
{
	char big[3000], out[4096], path[] = "/tmp/test_lib_log.XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO), quotes = 0;
	ssize_t n;

	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	big[1500] = '"';   /* an escaped quote inside the value */
	dup2(fd, STDERR_FILENO);
	log_write(LOG_ERROR, "long", "k=%s z=1", log_quote(big, out, sizeof(out)));
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, out, sizeof(out) - 1, 0);
	close(fd);
	unlink(path);
	assert_true(n > 0 && n <= 2048);
	out[n] = 0;
	assert_non_null(strstr(out, " level=error msg=long k=\"xxx"));
	assert_int_equal(strcmp(out + n - 10, " cut=true\n"), 0);
	for (ssize_t i = 0; i < n; i++) {
		if (out[i] == '\\')
			i++;
		else if (out[i] == '"')
			quotes++;
	}
	assert_int_equal(quotes % 2, 0);
}

static void test_coord_proto_signature_binds_fields(void **state)
{
	struct node_keys k;
	json_t *b;
	char msg[1024];
	const char *sighex, *ch = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	char node[KEY_B64_LEN], disco[KEY_B64_LEN], machine[KEY_B64_LEN];
	uint8_t sig[SIG_LEN];
	int n;

	(void)state;
	node_keys_generate(&k);
	b = coord_register_body(&k, ch, "host", "linux", "mvpn-auth-x");
	assert_non_null(b);
	assert_int_equal(json_get_str(b, "signature", &sighex), 0);
	assert_int_equal(hex_decode(sighex, sig, SIG_LEN), 0);
	key_to_base64(k.node_pub, node);
	key_to_base64(k.disco_pub, disco);
	key_to_base64(k.machine_pub, machine);
	n = coord_register_message(ch, node, disco, machine, "host", "linux", "mvpn-auth-x", msg, sizeof(msg));
	assert_true(n > 0);
	assert_int_equal(keys_verify(k.machine_pub, msg, (size_t)n, sig), 0);
	/* Another hostname or auth key is another message. */
	n = coord_register_message(ch, node, disco, machine, "evil", "linux", "mvpn-auth-x", msg, sizeof(msg));
	assert_int_equal(keys_verify(k.machine_pub, msg, (size_t)n, sig), -EPERM);
	n = coord_register_message(ch, node, disco, machine, "host", "linux", NULL, msg, sizeof(msg));
	assert_int_equal(keys_verify(k.machine_pub, msg, (size_t)n, sig), -EPERM);
	json_decref(b);
	node_keys_wipe(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_base64_round_trip),
		cmocka_unit_test(test_keys_base64_rejects_junk),
		cmocka_unit_test(test_keys_load_persists_and_is_private),
		cmocka_unit_test(test_keys_write_ignores_planted_tmp),
		cmocka_unit_test(test_keys_sign_verify),
		cmocka_unit_test(test_keys_hex),
		cmocka_unit_test(test_args_anywhere),
		cmocka_unit_test(test_args_duration),
		cmocka_unit_test(test_json_getters),
		cmocka_unit_test(test_json_copy_str),
		cmocka_unit_test(test_log_quote),
		cmocka_unit_test(test_log_line_cut),
		cmocka_unit_test(test_file_replace),
		cmocka_unit_test(test_file_lock_dir),
		cmocka_unit_test(test_coord_proto_signature_binds_fields),
	};

	keys_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
