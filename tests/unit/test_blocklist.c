/* test_blocklist.c - lib/blocklist.c: each source format, mixed files, exceptions winning,
 * suffix and exact-only matching, the counts of unusable, too-long and junk lines, binary
 * junk and a 100 MB endless line fed in chunks, chunking not changing anything, duplicates,
 * the max-rules bound, blob round trips, every truncation and a flipped byte refused, and a
 * re-summed blob whose counts or order lie refused too. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "meshvpn/blocklist.h"

static const uint8_t key[BLOCKLIST_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

struct compiled {
	uint8_t *blob;
	size_t len;
	struct blocklist *bl;
	struct blocklist_stats st;
};

/* One source, compiled and loaded. */
static struct compiled compile_bytes(const char *text, size_t len)
{
	struct blocklist_builder *b = blocklist_builder_new(key, 0);
	struct compiled c;

	memset(&c, 0, sizeof(c));
	assert_non_null(b);
	assert_int_equal(blocklist_builder_add_source(b, (const uint8_t *)text, len, &c.st), 0);
	assert_int_equal(blocklist_builder_compile(b, 7, &c.blob, &c.len), 0);
	assert_int_equal(blocklist_load(c.blob, c.len, 0, &c.bl), 0);
	blocklist_builder_free(b);
	return c;
}

static struct compiled compile_text(const char *text)
{
	return compile_bytes(text, strlen(text));
}

static void compiled_free(struct compiled *c)
{
	blocklist_free(c->bl);
	free(c->blob);
}

static int verdict(const struct compiled *c, const char *name)
{
	return (int)blocklist_match(c->bl, name, strlen(name));
}

static void test_blocklist_hosts(void **state)
{
	struct compiled c = compile_text(
		"# a hosts file\n"
		"127.0.0.1 localhost\n"
		"::1 localhost ip6-localhost ip6-loopback\n"
		"255.255.255.255 broadcasthost\n"
		"0.0.0.0 0.0.0.0\n"
		"0.0.0.0 ads.example.com\n"
		"127.0.0.1\tTracker.Example.NET.   # inline comment\n"
		":: v6.example.org\n"
		"::1 one.example two.example three.example\r\n"
		"0.0.0.0\n");

	(void)state;
	assert_int_equal(c.st.lines, 10);
	assert_int_equal(c.st.domains, 6);
	assert_int_equal(c.st.unusable, 1);   /* an address alone */
	assert_int_equal(c.st.invalid, 0);
	assert_int_equal(verdict(&c, "ads.example.com"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "ADS.example.com."), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "tracker.example.net"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "v6.example.org"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "three.example"), BLOCKLIST_BLOCKED);
	/* hosts entries are exact: neither subdomains nor parents */
	assert_int_equal(verdict(&c, "x.ads.example.com"), BLOCKLIST_NONE);
	assert_int_equal(verdict(&c, "example.com"), BLOCKLIST_NONE);
	assert_int_equal(verdict(&c, "localhost"), BLOCKLIST_NONE);
	assert_int_equal(verdict(&c, "broadcasthost"), BLOCKLIST_NONE);
	compiled_free(&c);
}

static void test_blocklist_plain_and_wildcard(void **state)
{
	struct compiled c = compile_text(
		"\xef\xbb\xbfplain.example\n"
		"  spaced.example  \n"
		"*.wild.example\n"
		"dot.example. # trailing dot\n"
		"localhost\n");

	(void)state;
	assert_int_equal(c.st.domains, 4);
	assert_int_equal(verdict(&c, "plain.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "a.plain.example"), BLOCKLIST_NONE);
	assert_int_equal(verdict(&c, "spaced.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "dot.example"), BLOCKLIST_BLOCKED);
	/* `*.d` is d and everything under it, as Blocky */
	assert_int_equal(verdict(&c, "wild.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "a.b.wild.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "notwild.example"), BLOCKLIST_NONE);
	assert_int_equal(verdict(&c, "example"), BLOCKLIST_NONE);
	assert_int_equal(verdict(&c, "localhost"), BLOCKLIST_NONE);
	compiled_free(&c);
}

static void test_blocklist_adblock(void **state)
{
	struct compiled c = compile_text(
		"[Adblock Plus 2.0]\n"
		"! Title: test\n"
		"||ads.example^\n"
		"||pipe.example^|\n"
		"||cmt.example^ # why\n"
		"||cmtbad.example^ junk\n"
		"@@||ok.ads.example^\n"
		"||opts.example^$third-party\n"
		"||path.example/ads^\n"
		"/ads/\n"
		"example.com##.banner\n"
		"||noseparator.example\n"
		"||mid*.example^\n"
		"@@plain.example\n"
		"/^ad[0-9]+\\./\n");

	(void)state;
	assert_int_equal(c.st.lines, 15);
	assert_int_equal(c.st.domains, 3);
	assert_int_equal(c.st.exceptions, 1);
	assert_int_equal(c.st.unusable, 9);
	assert_int_equal(c.st.invalid, 0);
	assert_int_equal(verdict(&c, "ads.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "x.y.ads.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "pipe.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "cmt.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "cmtbad.example"), BLOCKLIST_NONE);
	assert_int_equal(verdict(&c, "badads.example"), BLOCKLIST_NONE);
	/* the exception wins, for its subdomains too */
	assert_int_equal(verdict(&c, "ok.ads.example"), BLOCKLIST_ALLOWED);
	assert_int_equal(verdict(&c, "deep.ok.ads.example"), BLOCKLIST_ALLOWED);
	assert_int_equal(verdict(&c, "opts.example"), BLOCKLIST_NONE);
	assert_int_equal(verdict(&c, "example.com"), BLOCKLIST_NONE);
	compiled_free(&c);
}

/* Hosts, ABP and plain in one file, an exception above a blocked exact name and one below
 * a blocked suffix; manual rules beside a source. */
static void test_blocklist_mixed_and_manual(void **state)
{
	static const char src[] =
		"0.0.0.0 tracker.example\n"
		"||cdn.example^\n"
		"@@||tracker.example^\n"
		"@@||good.cdn.example^\n"
		"plain.example\n";
	struct blocklist_builder *b = blocklist_builder_new(key, 0);
	struct blocklist_stats st;
	struct compiled c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(blocklist_builder_add_source(b, (const uint8_t *)src, strlen(src), &st), 0);
	assert_int_equal(st.domains, 3);
	assert_int_equal(st.exceptions, 2);
	assert_int_equal(blocklist_builder_add(b, "Manual.Example", 14, BLOCKLIST_SUBDOMAINS), 0);
	assert_int_equal(blocklist_builder_add(b, "plain.example", 13,
					       BLOCKLIST_EXCEPTION), 0);
	assert_int_equal(blocklist_builder_add(b, "bad..name", 9, 0), -EINVAL);
	assert_int_equal(blocklist_builder_add(b, "ok.example", 10, 1u << 5), -EINVAL);
	assert_int_equal(blocklist_builder_compile(b, 1, &c.blob, &c.len), 0);
	assert_int_equal(blocklist_load(c.blob, c.len, 0, &c.bl), 0);
	assert_int_equal(verdict(&c, "tracker.example"), BLOCKLIST_ALLOWED);
	assert_int_equal(verdict(&c, "cdn.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "img.cdn.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "good.cdn.example"), BLOCKLIST_ALLOWED);
	assert_int_equal(verdict(&c, "x.good.cdn.example"), BLOCKLIST_ALLOWED);
	assert_int_equal(verdict(&c, "manual.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "sub.manual.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "plain.example"), BLOCKLIST_ALLOWED);
	assert_int_equal(verdict(&c, "other.example"), BLOCKLIST_NONE);
	assert_int_equal(verdict(&c, ""), BLOCKLIST_NONE);
	assert_int_equal(verdict(&c, "."), BLOCKLIST_NONE);
	assert_int_equal(blocklist_match(NULL, "cdn.example", 11), BLOCKLIST_NONE);
	/* a label no list can hold, under a blocked parent, is still blocked */
	assert_int_equal(verdict(&c, "we!rd.cdn.example"), BLOCKLIST_BLOCKED);
	compiled_free(&c);
	blocklist_builder_free(b);
}

static void test_blocklist_invalid_names(void **state)
{
	static const char nul_line[] = "nul\0after\n";
	char longlabel[80], longname[300];
	struct compiled c;
	char *text, *all;
	size_t len;

	(void)state;
	memset(longlabel, 'a', 64);
	longlabel[64] = '\0';
	for (size_t i = 0; i < sizeof(longname) - 1; i++)
		longname[i] = i % 50 == 49 ? '.' : 'b';
	longname[254] = '\0';   /* 254 bytes: one too many */
	assert_true(asprintf(&text,
		"%s.example\n"
		"%s\n"
		"a..b\n"
		".lead\n"
		"0.0.0.0 bad_ok.example under_score.example\n"
		"caf\xc3\xa9.example\n"
		"xn--caf-dma.example\n"
		"0.0.0.0 good.example bin\x01junk\n", longlabel, longname) > 0);
	len = strlen(text);
	all = malloc(len + sizeof(nul_line) - 1);
	memcpy(all, text, len);
	memcpy(all + len, nul_line, sizeof(nul_line) - 1);
	c = compile_bytes(all, len + sizeof(nul_line) - 1);
	free(all);
	assert_int_equal(c.st.lines, 9);
	assert_int_equal(c.st.invalid, 7);   /* label, name, a..b, .lead, UTF-8, 2 x junk */
	assert_int_equal(c.st.domains, 3);   /* bad_ok, under_score, xn-- */
	assert_int_equal(verdict(&c, "xn--caf-dma.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "under_score.example"), BLOCKLIST_BLOCKED);
	assert_int_equal(verdict(&c, "good.example"), BLOCKLIST_NONE);   /* junk: whole line */
	compiled_free(&c);
	free(text);
}

static int count_rule(const char *name, size_t len, unsigned flags, void *arg)
{
	(void)name; (void)len; (void)flags;
	(*(int *)arg)++;
	return 0;
}

/* A line of exactly the bound is taken, one byte more is skipped to its newline. */
static void test_blocklist_line_bound(void **state)
{
	struct blocklist_parser ps;
	char line[BLOCKLIST_LINE_MAX + 2];
	int rules = 0;

	(void)state;
	blocklist_parser_init(&ps, count_rule, &rules);
	memset(line, ' ', BLOCKLIST_LINE_MAX);
	memcpy(line + BLOCKLIST_LINE_MAX - 9, "a.example", 9);
	line[BLOCKLIST_LINE_MAX] = '\n';
	assert_int_equal(blocklist_parser_feed(&ps, (uint8_t *)line, BLOCKLIST_LINE_MAX + 1), 0);
	assert_int_equal(rules, 1);
	memset(line, ' ', BLOCKLIST_LINE_MAX + 1);
	memcpy(line + BLOCKLIST_LINE_MAX - 8, "a.example", 9);
	line[BLOCKLIST_LINE_MAX + 1] = '\n';
	assert_int_equal(blocklist_parser_feed(&ps, (uint8_t *)line, BLOCKLIST_LINE_MAX + 2), 0);
	assert_int_equal(rules, 1);
	assert_int_equal(ps.st.too_long, 1);
	assert_int_equal(ps.st.lines, 2);
}

/* 100 MB without a newline, in 64 KiB chunks of binary junk, then good lines: the parser
 * is its struct (nothing allocated), the line counts once, the next line is parsed. */
static void test_blocklist_endless_line(void **state)
{
	static uint8_t chunk[65536];
	static const char tail[] = "\n0.0.0.0 after.example\nlast.example";
	struct blocklist_parser ps;
	uint32_t x = 1;
	int rules = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(chunk); i++) {
		x = x * 1103515245u + 12345u;
		chunk[i] = (uint8_t)(x >> 16);
		if (chunk[i] == '\n')
			chunk[i] = 0;
	}
	blocklist_parser_init(&ps, count_rule, &rules);
	for (size_t done = 0; done < 100u << 20; done += sizeof(chunk))
		assert_int_equal(blocklist_parser_feed(&ps, chunk, sizeof(chunk)), 0);
	assert_true(ps.overlong);
	assert_int_equal(ps.len, 0);
	assert_int_equal(blocklist_parser_feed(&ps, (const uint8_t *)tail, strlen(tail)), 0);
	assert_int_equal(blocklist_parser_end(&ps), 0);
	assert_int_equal(rules, 2);
	assert_int_equal(ps.st.lines, 3);
	assert_int_equal(ps.st.too_long, 1);
	assert_int_equal(ps.st.domains, 2);
	/* a source ending inside an endless line counts it too */
	blocklist_parser_init(&ps, count_rule, &rules);
	for (int i = 0; i < 20; i++)
		assert_int_equal(blocklist_parser_feed(&ps, chunk, sizeof(chunk)), 0);
	assert_int_equal(blocklist_parser_end(&ps), 0);
	assert_int_equal(ps.st.too_long, 1);
	assert_int_equal(ps.st.lines, 1);
}

/* Every split of a mixed source gives the same counts and rules as one feed. */
static void test_blocklist_chunking(void **state)
{
	static const char src[] =
		"# c\n0.0.0.0 a.example b.example\r\n||c.example^\n@@||d.example^\n"
		"*.e.example\nf.example\n/ads/\nbin\x02\n||g.example^$important\nh.example";
	struct blocklist_parser whole, split;
	int n_whole = 0, n_split = 0;
	size_t len = strlen(src);

	(void)state;
	blocklist_parser_init(&whole, count_rule, &n_whole);
	assert_int_equal(blocklist_parser_feed(&whole, (const uint8_t *)src, len), 0);
	assert_int_equal(blocklist_parser_end(&whole), 0);
	assert_int_equal(n_whole, 7);
	assert_int_equal(whole.st.lines, 10);
	assert_int_equal(whole.st.unusable, 2);
	assert_int_equal(whole.st.invalid, 1);
	for (size_t step = 1; step <= len; step++) {
		n_split = 0;
		blocklist_parser_init(&split, count_rule, &n_split);
		for (size_t off = 0; off < len; off += step)
			assert_int_equal(blocklist_parser_feed(&split, (const uint8_t *)src + off,
							       off + step > len ? len - off : step), 0);
		assert_int_equal(blocklist_parser_end(&split), 0);
		assert_int_equal(n_split, n_whole);
		assert_memory_equal(&split.st, &whole.st, sizeof(whole.st));
	}
}

static int stop_rule(const char *name, size_t len, unsigned flags, void *arg)
{
	(void)name; (void)len; (void)flags; (void)arg;
	return -E2BIG;
}

/* Duplicates within and across sources collapse; an exact rule under a subdomain rule of
 * its kind is dropped; the bound on rules stops a feed with -E2BIG. */
static void test_blocklist_duplicates_and_bound(void **state)
{
	static const char a[] = "0.0.0.0 dup.example\ndup.example\n||sub.example^\n"
				"*.sub.example\nx.sub.example\n";
	static const char b2[] = "||dup.example^\n0.0.0.0 dup.example\n";
	struct blocklist_builder *b = blocklist_builder_new(key, 0);
	struct blocklist_parser ps;
	struct blocklist_info info;
	struct compiled c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(blocklist_builder_add_source(b, (const uint8_t *)a, strlen(a), NULL), 0);
	assert_int_equal(blocklist_builder_compile(b, 3, &c.blob, &c.len), 0);
	assert_int_equal(blocklist_load(c.blob, c.len, BLOCKLIST_LOAD_OWN, &c.bl), 0);
	blocklist_get_info(c.bl, &info);
	assert_int_equal(info.serial, 3);
	assert_int_equal(info.exact, 2);        /* dup, x.sub */
	assert_int_equal(info.subdomains, 1);   /* sub */
	assert_int_equal(c.len, BLOCKLIST_HEADER_LEN + 3 * 8 + BLOCKLIST_SUM_LEN);
	blocklist_free(c.bl);   /* owned: frees the blob */

	assert_int_equal(blocklist_builder_add_source(b, (const uint8_t *)b2, strlen(b2), NULL), 0);
	assert_int_equal(blocklist_builder_compile(b, 4, &c.blob, &c.len), 0);
	assert_int_equal(blocklist_load(c.blob, c.len, 0, &c.bl), 0);
	blocklist_get_info(c.bl, &info);
	assert_int_equal(info.exact, 1);        /* x.sub: dup is under ||dup.example^ now */
	assert_int_equal(info.subdomains, 2);
	assert_true(info.memory >= c.len);
	compiled_free(&c);
	blocklist_builder_free(b);

	b = blocklist_builder_new(key, 3);
	assert_int_equal(blocklist_builder_add_source(b, (const uint8_t *)a, strlen(a), NULL),
			 -E2BIG);
	blocklist_builder_free(b);
	blocklist_parser_init(&ps, stop_rule, NULL);
	assert_int_equal(blocklist_parser_feed(&ps, (const uint8_t *)a, strlen(a)), -E2BIG);
}

static struct compiled sample(void)
{
	return compile_text("0.0.0.0 a.example\n||b.example^\n@@||ok.b.example^\n"
			    "@@c.example\n*.d.example\n0.0.0.0 e.example f.example\n");
}

static void test_blocklist_blob_round_trip(void **state)
{
	struct compiled c = sample();
	struct blocklist *again;
	uint8_t *copy = malloc(c.len + 1);

	(void)state;
	/* the blob's layout: magic, format, serial, key, counts */
	assert_memory_equal(c.blob, BLOCKLIST_MAGIC, 8);
	assert_int_equal(c.blob[8], BLOCKLIST_FORMAT);
	assert_int_equal(c.blob[16], 7);
	assert_memory_equal(c.blob + 24, key, BLOCKLIST_KEY_LEN);
	assert_int_equal(c.blob[40] + c.blob[44] + c.blob[48] + c.blob[52], 6);
	/* loaded from a misaligned copy, it matches the same */
	memcpy(copy + 1, c.blob, c.len);
	assert_int_equal(blocklist_load(copy + 1, c.len, 0, &again), 0);
	assert_int_equal(blocklist_match(again, "a.example", 9), BLOCKLIST_BLOCKED);
	assert_int_equal(blocklist_match(again, "x.b.example", 11), BLOCKLIST_BLOCKED);
	assert_int_equal(blocklist_match(again, "ok.b.example", 12), BLOCKLIST_ALLOWED);
	assert_int_equal(blocklist_match(again, "x.d.example", 11), BLOCKLIST_BLOCKED);
	assert_int_equal(blocklist_match(again, "f.example", 9), BLOCKLIST_BLOCKED);
	assert_int_equal(blocklist_match(again, "g.example", 9), BLOCKLIST_NONE);
	blocklist_free(again);
	free(copy);
	compiled_free(&c);
}

/* Every truncation and every flipped bit of every byte is refused. */
static void test_blocklist_blob_corrupt(void **state)
{
	struct compiled c = sample();
	struct blocklist *bl = (struct blocklist *)&bl;

	(void)state;
	for (size_t len = 0; len < c.len; len++) {
		assert_int_equal(blocklist_load(c.blob, len, BLOCKLIST_LOAD_OWN, &bl), -EBADMSG);
		assert_null(bl);
	}
	for (size_t i = 0; i < c.len; i++)
		for (int bit = 0; bit < 8; bit++) {
			c.blob[i] ^= (uint8_t)(1u << bit);
			assert_int_equal(blocklist_load(c.blob, c.len, 0, &bl), -EBADMSG);
			c.blob[i] ^= (uint8_t)(1u << bit);
		}
	assert_int_equal(blocklist_load(c.blob, c.len, 0, &bl), 0);
	blocklist_free(bl);
	compiled_free(&c);
}

static void resum(uint8_t *blob, size_t len)
{
	crypto_generichash(blob + len - BLOCKLIST_SUM_LEN, BLOCKLIST_SUM_LEN, blob,
			   len - BLOCKLIST_SUM_LEN, NULL, 0);
}

/* With a valid checksum, the structure alone must still hold. */
static void test_blocklist_blob_lies(void **state)
{
	struct compiled c = sample();
	struct blocklist *bl;
	uint8_t save[8];

	(void)state;
	/* counts moved between arrays still sum right, but break an array's order */
	c.blob[40]++;
	c.blob[44]--;
	resum(c.blob, c.len);
	if (blocklist_load(c.blob, c.len, 0, &bl) == 0)
		blocklist_free(bl);   /* the order may happen to hold; the counts were legal */
	c.blob[40]--;
	c.blob[44]++;
	/* a count too many */
	c.blob[40]++;
	resum(c.blob, c.len);
	assert_int_equal(blocklist_load(c.blob, c.len, 0, &bl), -EBADMSG);
	c.blob[40]--;
	/* a huge count */
	c.blob[43] = 0xff;
	resum(c.blob, c.len);
	assert_int_equal(blocklist_load(c.blob, c.len, 0, &bl), -EBADMSG);
	c.blob[43] = 0;
	/* reserved fields, another format */
	c.blob[60] = 1;
	resum(c.blob, c.len);
	assert_int_equal(blocklist_load(c.blob, c.len, 0, &bl), -EBADMSG);
	c.blob[60] = 0;
	c.blob[8] = 2;
	resum(c.blob, c.len);
	assert_int_equal(blocklist_load(c.blob, c.len, 0, &bl), -EBADMSG);
	c.blob[8] = 1;
	/* two entries of one array swapped: out of order */
	assert_true(c.blob[40] >= 2);
	memcpy(save, c.blob + 64, 8);
	memcpy(c.blob + 64, c.blob + 72, 8);
	memcpy(c.blob + 72, save, 8);
	resum(c.blob, c.len);
	assert_int_equal(blocklist_load(c.blob, c.len, 0, &bl), -EBADMSG);
	memcpy(c.blob + 72, c.blob + 64, 8);
	memcpy(c.blob + 64, save, 8);
	resum(c.blob, c.len);
	assert_int_equal(blocklist_load(c.blob, c.len, 0, &bl), 0);
	blocklist_free(bl);
	compiled_free(&c);
}

/* Many names: none lost, the bucket index right at every size, unlisted names not matched. */
static void test_blocklist_many(void **state)
{
	struct blocklist_builder *b = blocklist_builder_new(key, 0);
	struct compiled c;
	char name[64];
	int n;

	(void)state;
	memset(&c, 0, sizeof(c));
	for (int i = 0; i < 20000; i++) {
		n = snprintf(name, sizeof(name), "host%d.example", i);
		assert_int_equal(blocklist_builder_add(b, name, (size_t)n,
						       i % 2 ? BLOCKLIST_SUBDOMAINS : 0), 0);
	}
	assert_int_equal(blocklist_builder_compile(b, 9, &c.blob, &c.len), 0);
	assert_int_equal(blocklist_load(c.blob, c.len, 0, &c.bl), 0);
	for (int i = 0; i < 20000; i++) {
		n = snprintf(name, sizeof(name), "host%d.example", i);
		assert_int_equal(blocklist_match(c.bl, name, (size_t)n), BLOCKLIST_BLOCKED);
		n = snprintf(name, sizeof(name), "www.host%d.example", i);
		assert_int_equal(blocklist_match(c.bl, name, (size_t)n),
				 i % 2 ? BLOCKLIST_BLOCKED : BLOCKLIST_NONE);
		n = snprintf(name, sizeof(name), "other%d.example", i);
		assert_int_equal(blocklist_match(c.bl, name, (size_t)n), BLOCKLIST_NONE);
	}
	compiled_free(&c);
	blocklist_builder_free(b);
}

static void test_blocklist_normalise(void **state)
{
	char out[BLOCKLIST_NAME_MAX + 1], in[300];

	(void)state;
	assert_int_equal(blocklist_name_normalise("A-b_C.Example.", 14, out), 13);
	assert_string_equal(out, "a-b_c.example");
	assert_int_equal(blocklist_name_normalise("", 0, out), -EINVAL);
	assert_int_equal(blocklist_name_normalise(".", 1, out), -EINVAL);
	assert_int_equal(blocklist_name_normalise("a..", 3, out), -EINVAL);
	assert_int_equal(blocklist_name_normalise("a b", 3, out), -EINVAL);
	for (int i = 0; i < 253; i++)
		in[i] = i % 2 ? '.' : 'x';
	in[252] = 'x';
	assert_int_equal(blocklist_name_normalise(in, 253, out), 253);
	in[253] = '.';
	assert_int_equal(blocklist_name_normalise(in, 254, out), 253);   /* trailing dot */
	in[253] = 'x';
	assert_int_equal(blocklist_name_normalise(in, 254, out), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocklist_hosts),
		cmocka_unit_test(test_blocklist_plain_and_wildcard),
		cmocka_unit_test(test_blocklist_adblock),
		cmocka_unit_test(test_blocklist_mixed_and_manual),
		cmocka_unit_test(test_blocklist_invalid_names),
		cmocka_unit_test(test_blocklist_line_bound),
		cmocka_unit_test(test_blocklist_endless_line),
		cmocka_unit_test(test_blocklist_chunking),
		cmocka_unit_test(test_blocklist_duplicates_and_bound),
		cmocka_unit_test(test_blocklist_blob_round_trip),
		cmocka_unit_test(test_blocklist_blob_corrupt),
		cmocka_unit_test(test_blocklist_blob_lies),
		cmocka_unit_test(test_blocklist_many),
		cmocka_unit_test(test_blocklist_normalise),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
