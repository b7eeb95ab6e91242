/* fuzz_blocklist.c - lib/blocklist.c on arbitrary bytes. As a source: parsed whole and in
 * chunks whose sizes the input picks (the same rules and counts either way), every rule a
 * normalised name, every line counted once; compiled and loaded, each block rule matches
 * and each exception allows. As a blob: loaded as is (almost always refused: the
 * checksum), and with its checksum made right so the structural checks are what refuse
 * it; a blob that loads is looked up in. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/blocklist.h"

#define MAX_KEPT 2048   /* rules checked against the compiled list */

struct seen {
	struct blocklist_builder *b;
	uint64_t digest;                 /* of every rule in order */
	size_t n;
	char (*name)[BLOCKLIST_NAME_MAX + 1];
	unsigned *flags;
};

static int on_rule(const char *name, size_t len, unsigned flags, void *arg)
{
	struct seen *s = arg;
	char norm[BLOCKLIST_NAME_MAX + 1];

	if (len > BLOCKLIST_NAME_MAX || strlen(name) != len ||
	    blocklist_name_normalise(name, len, norm) != (int)len || memcmp(norm, name, len) ||
	    (flags & ~(unsigned)(BLOCKLIST_SUBDOMAINS | BLOCKLIST_EXCEPTION)))
		abort();
	for (size_t i = 0; i < len; i++)
		s->digest = (s->digest ^ (uint8_t)name[i]) * 0x100000001b3ull;
	s->digest = (s->digest ^ (flags + 0x100)) * 0x100000001b3ull;
	if (s->name && s->n < MAX_KEPT) {
		memcpy(s->name[s->n], name, len + 1);
		s->flags[s->n] = flags;
	}
	s->n++;
	return s->b ? blocklist_builder_rule(name, len, flags, s->b) : 0;
}

static void check_counts(const struct blocklist_parser *ps, size_t size)
{
	const struct blocklist_stats *st = &ps->st;

	/* Lines but the last end in a newline; a rule takes a byte at least. */
	if (st->lines > size + 1 || st->too_long > st->lines ||
	    st->domains + st->exceptions + st->unusable + st->invalid > size ||
	    ((st->domains || st->exceptions) && !st->lines))
		abort();
}

static void check_source(const uint8_t *data, size_t size)
{
	static char names[MAX_KEPT][BLOCKLIST_NAME_MAX + 1];
	static unsigned flags[MAX_KEPT];
	static const uint8_t key[BLOCKLIST_KEY_LEN] = "fuzz-blocklist-k";
	struct seen whole = { .name = names, .flags = flags }, split = { 0 };
	struct blocklist_parser a, b;
	struct blocklist *bl;
	uint8_t *blob;
	size_t blob_len, off = 0, i = 0;

	whole.b = blocklist_builder_new(key, 0);
	if (!whole.b)
		abort();
	blocklist_parser_init(&a, on_rule, &whole);
	if (blocklist_parser_feed(&a, data, size) || blocklist_parser_end(&a))
		abort();
	check_counts(&a, size);

	blocklist_parser_init(&b, on_rule, &split);
	while (off < size) {
		size_t step = 1 + data[i++ % size] % 97;

		if (step > size - off)
			step = size - off;
		if (blocklist_parser_feed(&b, data + off, step))
			abort();
		off += step;
	}
	if (blocklist_parser_end(&b) || memcmp(&a.st, &b.st, sizeof(a.st)) ||
	    whole.n != split.n || whole.digest != split.digest)
		abort();

	if (blocklist_builder_compile(whole.b, 1, &blob, &blob_len) ||
	    blocklist_load(blob, blob_len, BLOCKLIST_LOAD_OWN, &bl))
		abort();
	for (size_t k = 0; k < whole.n && k < MAX_KEPT; k++) {
		enum blocklist_verdict v = blocklist_match(bl, names[k], strlen(names[k]));

		if (flags[k] & BLOCKLIST_EXCEPTION ? v != BLOCKLIST_ALLOWED : v == BLOCKLIST_NONE)
			abort();
	}
	blocklist_free(bl);
	blocklist_builder_free(whole.b);
}

static void probe(const struct blocklist *bl)
{
	static const char *const q[] = { "a", "example.com", "www.ads.example.com", "x.y.z.w" };
	struct blocklist_info info;

	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		(void)blocklist_match(bl, q[i], strlen(q[i]));
	blocklist_get_info(bl, &info);
	if (info.memory < BLOCKLIST_HEADER_LEN + BLOCKLIST_SUM_LEN)
		abort();
}

static void check_blob(const uint8_t *data, size_t size)
{
	struct blocklist *bl;
	uint8_t *copy;

	if (!blocklist_load(data, size, 0, &bl)) {
		probe(bl);
		blocklist_free(bl);
	} else if (bl) {
		abort();
	}
	if (size < BLOCKLIST_HEADER_LEN + BLOCKLIST_SUM_LEN)
		return;
	/* An exact-size copy, so ASan sees any read past the end. */
	copy = malloc(size);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	crypto_generichash(copy + size - BLOCKLIST_SUM_LEN, BLOCKLIST_SUM_LEN, copy,
			   size - BLOCKLIST_SUM_LEN, NULL, 0);
	if (!blocklist_load(copy, size, 0, &bl)) {
		struct blocklist_info info;

		blocklist_get_info(bl, &info);
		if (((uint64_t)info.exact + info.subdomains + info.exact_exceptions +
		     info.subdomain_exceptions) * 8 + BLOCKLIST_HEADER_LEN + BLOCKLIST_SUM_LEN != size)
			abort();
		probe(bl);
		blocklist_free(bl);
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (sodium_init() < 0)
		abort();
	check_source(data, size);
	check_blob(data, size);
	return 0;
}
