/* blocklist.c - DNS blocklist sources parsed, compiled to hashed sorted arrays, served as a
 * checked blob and matched per label (see blocklist.h; hosts files, Adblock Plus DNS
 * subset, SipHash-1-3 of Aumasson and Bernstein, BLAKE2b through libsodium). */
#include "meshvpn/blocklist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <sodium.h>

enum { SET_EXACT, SET_SUB, SET_EXACT_EXC, SET_SUB_EXC, N_SETS };

#define BUCKET_TARGET 8   /* entries per index bucket on average: one or two cache lines */

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}
static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}
static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

/* ---- SipHash-1-3 ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                             \
	do {                                                                 \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);    \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                       \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                       \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);    \
	} while (0)

/* One compression round per word and three to finish: the variant hash tables use (Rust,
 * Python), plenty where a collision costs one wrongly blocked name. */
static uint64_t siphash13(uint64_t k0, uint64_t k1, const uint8_t *p, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
	uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, end = len & ~(size_t)7;

	for (i = 0; i < end; i += 8) {
		m = get_le64(p + i);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- names ---- */

static int name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int blocklist_name_normalise(const char *in, size_t len, char out[BLOCKLIST_NAME_MAX + 1])
{
	size_t label = 0;

	if (len && in[len - 1] == '.')
		len--;
	if (!len || len > BLOCKLIST_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c == '.') {
			if (!label)
				return -EINVAL;
			label = 0;
		} else if (!name_char(c) || ++label > 63) {
			return -EINVAL;
		}
		out[i] = (char)c;
	}
	if (!label)
		return -EINVAL;
	out[len] = '\0';
	return (int)len;
}

/* Names hosts files map for the machine itself: not blocks, in any format. */
static int local_name(const char *n)
{
	static const char *const local[] = {
		"localhost", "localhost.localdomain", "local", "broadcasthost",
		"ip6-localhost", "ip6-loopback", "ip6-localnet", "ip6-mcastprefix",
		"ip6-allnodes", "ip6-allrouters", "ip6-allhosts", "0.0.0.0",
	};

	if (n[0] != 'l' && n[0] != 'b' && n[0] != 'i' && n[0] != '0')
		return 0;   /* the common case, without a dozen compares */
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (!strcmp(n, local[i]))
			return 1;
	return 0;
}

/* ---- parser ---- */

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* A rule text to a name (`*.` already taken off): taken, unusable or invalid. */
static int emit(struct blocklist_parser *ps, const char *s, size_t len, unsigned flags)
{
	char name[BLOCKLIST_NAME_MAX + 1];
	int n = blocklist_name_normalise(s, len, name);

	if (n < 0) {
		/* Filter syntax is unusable here, anything else a bad name. */
		for (size_t i = 0; i < len; i++)
			if (s[i] && strchr("/*$^|:?=&%,;@!#[]()<>{}\\~+'\"", s[i])) {
				ps->st.unusable++;
				return 0;
			}
		ps->st.invalid++;
		return 0;
	}
	if (local_name(name))
		return 0;   /* never blocked, never counted */
	if (flags & BLOCKLIST_EXCEPTION)
		ps->st.exceptions++;
	else
		ps->st.domains++;
	return ps->cb(name, (size_t)n, flags, ps->arg);
}

/* `||d^`, `||d^|`, with `@@` already taken off, optionally a blank and a `#` comment.
 * Anything else after the name (options, paths) or a `||d` without its separator is not a
 * whole-domain rule. */
static int parse_adblock(struct blocklist_parser *ps, const char *s, size_t len, unsigned flags)
{
	const char *caret = memchr(s, '^', len);
	size_t i;

	if (len < 2 || s[0] != '|' || s[1] != '|' || !caret) {
		ps->st.unusable++;
		return 0;
	}
	i = (size_t)(caret - s) + 1;
	if (i < len && s[i] == '|')
		i++;
	if (i < len && is_blank(s[i])) {
		while (i < len && is_blank(s[i]))
			i++;
		if (s[i] == '#')   /* blanks at the end were trimmed: i < len */
			i = len;
	}
	if (i != len) {
		ps->st.unusable++;
		return 0;
	}
	return emit(ps, s + 2, (size_t)(caret - s) - 2, flags | BLOCKLIST_SUBDOMAINS);
}

/* A hosts line: the address is the first token, names follow (exact), `#` ends it. */
static int parse_hosts(struct blocklist_parser *ps, const char *s, size_t len, size_t first)
{
	size_t i = first, n_names = 0;
	int rc;

	while (i < len) {
		size_t start;

		while (i < len && is_blank(s[i]))
			i++;
		if (i == len || s[i] == '#')
			break;
		start = i;
		while (i < len && !is_blank(s[i]))
			i++;
		n_names++;
		rc = emit(ps, s + start, i - start, 0);
		if (rc)
			return rc;
	}
	if (!n_names)
		ps->st.unusable++;   /* an address alone */
	return 0;
}

static int is_address(const char *s, size_t len)
{
	char text[INET6_ADDRSTRLEN];
	uint8_t bin[16];

	if (len >= sizeof(text))
		return 0;
	memcpy(text, s, len);
	text[len] = '\0';
	return inet_pton(AF_INET, text, bin) == 1 || inet_pton(AF_INET6, text, bin) == 1;
}

/* One line without its newline; blanks around it and a CR at its end are ignored. */
static int parse_line(struct blocklist_parser *ps, const char *s, size_t len)
{
	size_t tok;

	if (!ps->st.lines++ && len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
		s += 3, len -= 3;   /* a UTF-8 byte order mark, as Windows editors save lists */
	while (len && (is_blank(s[len - 1]) || s[len - 1] == '\r'))
		len--;
	while (len && is_blank(s[0]))
		s++, len--;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 ? s[i] != '\t' : (unsigned char)s[i] >= 0x7f) {
			ps->st.invalid++;
			return 0;
		}
	if (!len || s[0] == '#' || s[0] == '!' || (s[0] == '[' && s[len - 1] == ']'))
		return 0;
	if (len > 2 && s[0] == '@' && s[1] == '@')
		return parse_adblock(ps, s + 2, len - 2, BLOCKLIST_EXCEPTION);
	if (s[0] == '|')
		return parse_adblock(ps, s, len, 0);
	for (tok = 0; tok < len && !is_blank(s[tok]); tok++)
		;
	if (is_address(s, tok))
		return parse_hosts(ps, s, len, tok);
	/* One token, then nothing or a comment. */
	for (size_t i = tok; i < len; i++)
		if (!is_blank(s[i])) {
			if (s[i] == '#')
				break;
			ps->st.unusable++;
			return 0;
		}
	if (tok > 2 && s[0] == '*' && s[1] == '.')
		return emit(ps, s + 2, tok - 2, BLOCKLIST_SUBDOMAINS);
	return emit(ps, s, tok, 0);
}

void blocklist_parser_init(struct blocklist_parser *ps, blocklist_rule_cb cb, void *arg)
{
	memset(ps, 0, sizeof(*ps));
	ps->cb = cb;
	ps->arg = arg;
}

int blocklist_parser_feed(struct blocklist_parser *ps, const uint8_t *p, size_t len)
{
	while (len) {
		const uint8_t *nl = memchr(p, '\n', len);
		size_t take = nl ? (size_t)(nl - p) : len;
		int rc = 0;

		if (!ps->overlong && take > BLOCKLIST_LINE_MAX - ps->len) {
			ps->overlong = 1;
			ps->len = 0;
		}
		if (!ps->overlong) {
			memcpy(ps->line + ps->len, p, take);
			ps->len += take;
		}
		if (!nl)
			return 0;
		if (ps->overlong) {
			ps->st.lines++;
			ps->st.too_long++;
		} else {
			rc = parse_line(ps, ps->line, ps->len);
		}
		ps->overlong = 0;
		ps->len = 0;
		if (rc)
			return rc;
		p += take + 1;
		len -= take + 1;
	}
	return 0;
}

int blocklist_parser_end(struct blocklist_parser *ps)
{
	int rc = 0;

	if (ps->overlong) {
		ps->st.lines++;
		ps->st.too_long++;
	} else if (ps->len) {
		rc = parse_line(ps, ps->line, ps->len);
	}
	ps->overlong = 0;
	ps->len = 0;
	return rc;
}

/* ---- builder ---- */

struct hash_vec {
	uint64_t *v;
	size_t n, cap;
};

struct blocklist_builder {
	uint8_t key[BLOCKLIST_KEY_LEN];
	uint64_t k0, k1;
	size_t max_rules, n_rules;
	struct hash_vec set[N_SETS];
};

struct blocklist_builder *blocklist_builder_new(const uint8_t key[BLOCKLIST_KEY_LEN],
						size_t max_rules)
{
	struct blocklist_builder *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	memcpy(b->key, key, BLOCKLIST_KEY_LEN);
	b->k0 = get_le64(key);
	b->k1 = get_le64(key + 8);
	b->max_rules = max_rules ? max_rules : BLOCKLIST_MAX_RULES_DEFAULT;
	if (b->max_rules > UINT32_MAX)
		b->max_rules = UINT32_MAX;   /* the blob counts in 32 bits */
	return b;
}

void blocklist_builder_free(struct blocklist_builder *b)
{
	if (!b)
		return;
	for (int i = 0; i < N_SETS; i++)
		free(b->set[i].v);
	free(b);
}

static int vec_push(struct hash_vec *h, uint64_t v)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 1024;
		uint64_t *nv = realloc(h->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		h->v = nv;
		h->cap = cap;
	}
	h->v[h->n++] = v;
	return 0;
}

/* A valid, normalised name into its set. */
static int builder_put(struct blocklist_builder *b, const char *name, size_t len,
		       unsigned flags)
{
	int set;

	if (flags & ~(unsigned)(BLOCKLIST_SUBDOMAINS | BLOCKLIST_EXCEPTION))
		return -EINVAL;
	if (b->n_rules >= b->max_rules)
		return -E2BIG;
	set = (flags & BLOCKLIST_EXCEPTION ? SET_EXACT_EXC : SET_EXACT) +
	      (flags & BLOCKLIST_SUBDOMAINS ? 1 : 0);
	if (vec_push(&b->set[set], siphash13(b->k0, b->k1, (const uint8_t *)name, len)))
		return -ENOMEM;
	b->n_rules++;
	return 0;
}

int blocklist_builder_add(struct blocklist_builder *b, const char *name, size_t len,
			  unsigned flags)
{
	char norm[BLOCKLIST_NAME_MAX + 1];
	int n = blocklist_name_normalise(name, len, norm);

	if (n < 0)
		return -EINVAL;
	return builder_put(b, norm, (size_t)n, flags);
}

int blocklist_builder_rule(const char *name, size_t len, unsigned flags, void *arg)
{
	/* The parser's names are normalised already: a fifth of a compile saved. */
	return builder_put(arg, name, len > BLOCKLIST_NAME_MAX ? BLOCKLIST_NAME_MAX : len, flags);
}

int blocklist_builder_add_source(struct blocklist_builder *b, const uint8_t *p, size_t len,
				 struct blocklist_stats *st)
{
	struct blocklist_parser ps;
	int rc;

	blocklist_parser_init(&ps, blocklist_builder_rule, b);
	rc = blocklist_parser_feed(&ps, p, len);
	if (!rc)
		rc = blocklist_parser_end(&ps);
	if (st)
		*st = ps.st;
	return rc;
}

/* LSD radix sort, a byte per pass: a million hashes in a few milliseconds, where qsort's
 * comparator calls would take a hundred. */
static int sort_u64(uint64_t *v, size_t n)
{
	uint64_t *tmp = n > 1 ? malloc(n * sizeof(*tmp)) : NULL, *src = v, *dst = tmp, *swap;

	if (n <= 1)
		return 0;
	if (!tmp)
		return -ENOMEM;
	for (int shift = 0; shift < 64; shift += 8) {
		size_t count[256] = { 0 }, pos = 0;

		for (size_t i = 0; i < n; i++)
			count[(src[i] >> shift) & 0xff]++;
		for (int d = 0; d < 256; d++) {
			size_t c = count[d];

			count[d] = pos;
			pos += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[count[(src[i] >> shift) & 0xff]++] = src[i];
		swap = src;
		src = dst;
		dst = swap;
	}
	/* Eight passes: the result is back in v. */
	free(tmp);
	return 0;
}

static void vec_unique(struct hash_vec *h)
{
	size_t w = 0;

	for (size_t i = 0; i < h->n; i++)
		if (!w || h->v[w - 1] != h->v[i])
			h->v[w++] = h->v[i];
	h->n = w;
}

/* Drops from exact what sub (sorted) covers already: both sorted, one merge pass. */
static void vec_subtract(struct hash_vec *exact, const struct hash_vec *sub)
{
	size_t w = 0, j = 0;

	for (size_t i = 0; i < exact->n; i++) {
		while (j < sub->n && sub->v[j] < exact->v[i])
			j++;
		if (j < sub->n && sub->v[j] == exact->v[i])
			continue;
		exact->v[w++] = exact->v[i];
	}
	exact->n = w;
}

static void write_blob(const struct blocklist_builder *b, uint64_t serial, uint8_t *out,
		       size_t len)
{
	uint8_t *p = out + BLOCKLIST_HEADER_LEN;

	memset(out, 0, BLOCKLIST_HEADER_LEN);
	memcpy(out, BLOCKLIST_MAGIC, 8);
	put_le32(out + 8, BLOCKLIST_FORMAT);
	put_le64(out + 16, serial);
	memcpy(out + 24, b->key, BLOCKLIST_KEY_LEN);
	for (int s = 0; s < N_SETS; s++) {
		put_le32(out + 40 + 4 * s, (uint32_t)b->set[s].n);
		for (size_t i = 0; i < b->set[s].n; i++, p += 8)
			put_le64(p, b->set[s].v[i]);
	}
	crypto_generichash(p, BLOCKLIST_SUM_LEN, out, len - BLOCKLIST_SUM_LEN, NULL, 0);
}

int blocklist_builder_compile(struct blocklist_builder *b, uint64_t serial, uint8_t **out,
			      size_t *out_len)
{
	size_t total = 0, len;

	if (sodium_init() < 0)
		return -ENOMEM;
	for (int s = 0; s < N_SETS; s++) {
		if (sort_u64(b->set[s].v, b->set[s].n))
			return -ENOMEM;
		vec_unique(&b->set[s]);
	}
	vec_subtract(&b->set[SET_EXACT], &b->set[SET_SUB]);
	vec_subtract(&b->set[SET_EXACT_EXC], &b->set[SET_SUB_EXC]);
	for (int s = 0; s < N_SETS; s++)
		total += b->set[s].n;
	len = BLOCKLIST_HEADER_LEN + total * 8 + BLOCKLIST_SUM_LEN;
	*out = malloc(len);
	if (!*out)
		return -ENOMEM;
	write_blob(b, serial, *out, len);
	*out_len = len;
	return 0;
}

/* ---- the loaded list ---- */

struct bl_set {
	const uint8_t *h;    /* n little-endian hashes, ascending, in the blob */
	uint32_t n;
	unsigned shift;      /* bucket = hash >> shift */
	uint32_t *idx;       /* bucket b's entries are [idx[b], idx[b + 1]) */
};

struct blocklist {
	struct bl_set set[N_SETS];
	uint64_t k0, k1, serial;
	const uint8_t *blob;
	size_t len, memory;
	unsigned flags;
	int any_exception;
};

/* The bucket index: the hashes are uniform, so the top bits find a run of about
 * BUCKET_TARGET entries and the search is a short scan of one or two cache lines. */
static int set_index(struct bl_set *s)
{
	unsigned bits = 1;
	size_t nb, b = 0;

	while (bits < 30 && ((size_t)1 << bits) * BUCKET_TARGET < s->n)
		bits++;
	s->shift = 64 - bits;
	nb = (size_t)1 << bits;
	s->idx = malloc((nb + 1) * sizeof(*s->idx));
	if (!s->idx)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->n; i++) {
		size_t bucket = (size_t)(get_le64(s->h + 8 * (size_t)i) >> s->shift);

		while (b <= bucket)
			s->idx[b++] = i;
	}
	while (b <= nb)
		s->idx[b++] = s->n;
	return 0;
}

static int set_has(const struct bl_set *s, uint64_t h)
{
	size_t bucket = (size_t)(h >> s->shift);

	if (!s->n)
		return 0;
	for (uint32_t i = s->idx[bucket], end = s->idx[bucket + 1]; i < end; i++) {
		uint64_t v = get_le64(s->h + 8 * (size_t)i);

		if (v >= h)
			return v == h;
	}
	return 0;
}

/* Header and length agree, arrays ascend, the checksum holds; fills bl's sets. */
static int check_blob(const uint8_t *p, size_t len, struct blocklist *bl)
{
	uint8_t sum[BLOCKLIST_SUM_LEN];
	uint64_t total = 0;
	const uint8_t *h = p + BLOCKLIST_HEADER_LEN;

	if (len < BLOCKLIST_HEADER_LEN + BLOCKLIST_SUM_LEN || memcmp(p, BLOCKLIST_MAGIC, 8) ||
	    get_le32(p + 8) != BLOCKLIST_FORMAT || get_le32(p + 12) || get_le64(p + 56))
		return -EBADMSG;
	for (int s = 0; s < N_SETS; s++)
		total += get_le32(p + 40 + 4 * s);
	if (total != (len - BLOCKLIST_HEADER_LEN - BLOCKLIST_SUM_LEN) / 8 ||
	    (len - BLOCKLIST_HEADER_LEN - BLOCKLIST_SUM_LEN) % 8)
		return -EBADMSG;
	crypto_generichash(sum, sizeof(sum), p, len - BLOCKLIST_SUM_LEN, NULL, 0);
	if (sodium_memcmp(sum, p + len - BLOCKLIST_SUM_LEN, sizeof(sum)))
		return -EBADMSG;
	for (int s = 0; s < N_SETS; s++) {
		uint32_t n = get_le32(p + 40 + 4 * s);

		for (uint32_t i = 1; i < n; i++)
			if (get_le64(h + 8 * (size_t)(i - 1)) >= get_le64(h + 8 * (size_t)i))
				return -EBADMSG;
		bl->set[s].h = h;
		bl->set[s].n = n;
		h += 8 * (size_t)n;
	}
	bl->serial = get_le64(p + 16);
	bl->k0 = get_le64(p + 24);
	bl->k1 = get_le64(p + 32);
	return 0;
}

int blocklist_load(const uint8_t *blob, size_t len, unsigned flags, struct blocklist **out)
{
	struct blocklist *bl;
	int rc;

	*out = NULL;
	if (sodium_init() < 0)
		return -ENOMEM;
	bl = calloc(1, sizeof(*bl));
	if (!bl)
		return -ENOMEM;
	rc = check_blob(blob, len, bl);
	if (rc)
		goto err;
	bl->blob = blob;
	bl->len = len;
	bl->flags = flags & BLOCKLIST_LOAD_OWN;
	bl->memory = sizeof(*bl) + len;
	for (int s = 0; s < N_SETS; s++) {
		rc = set_index(&bl->set[s]);
		if (rc)
			goto err;
		bl->memory += (((size_t)1 << (64 - bl->set[s].shift)) + 1) * sizeof(uint32_t);
	}
	bl->any_exception = bl->set[SET_EXACT_EXC].n || bl->set[SET_SUB_EXC].n;
	*out = bl;
	return 0;
err:
	bl->flags = 0;   /* a refused blob stays the caller's */
	blocklist_free(bl);
	return rc;
}

void blocklist_free(struct blocklist *bl)
{
	if (!bl)
		return;
	for (int s = 0; s < N_SETS; s++)
		free(bl->set[s].idx);
	if (bl->flags & BLOCKLIST_LOAD_OWN)
		free((void *)bl->blob);
	free(bl);
}

void blocklist_get_info(const struct blocklist *bl, struct blocklist_info *out)
{
	memset(out, 0, sizeof(*out));
	out->serial = bl->serial;
	out->exact = bl->set[SET_EXACT].n;
	out->subdomains = bl->set[SET_SUB].n;
	out->exact_exceptions = bl->set[SET_EXACT_EXC].n;
	out->subdomain_exceptions = bl->set[SET_SUB_EXC].n;
	out->memory = bl->memory;
}

/* Each suffix at a label boundary is hashed once and probed in the sets that apply to it:
 * the exact sets for the whole name only. Lists hold only valid names, so a query is just
 * lowercased: a label they could not hold can still sit under a blocked parent. */
enum blocklist_verdict blocklist_match(const struct blocklist *bl, const char *name,
				       size_t len)
{
	char buf[BLOCKLIST_NAME_MAX];
	int blocked = 0;
	size_t off = 0;

	if (!bl)
		return BLOCKLIST_NONE;
	if (len && name[len - 1] == '.')
		len--;
	if (!len || len > BLOCKLIST_NAME_MAX)
		return BLOCKLIST_NONE;
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
	for (;;) {
		uint64_t h = siphash13(bl->k0, bl->k1, (const uint8_t *)buf + off, len - off);
		const char *dot;

		if (off == 0) {
			if (set_has(&bl->set[SET_EXACT_EXC], h))
				return BLOCKLIST_ALLOWED;
			blocked = set_has(&bl->set[SET_EXACT], h);
		}
		if (set_has(&bl->set[SET_SUB_EXC], h))
			return BLOCKLIST_ALLOWED;
		if (!blocked)
			blocked = set_has(&bl->set[SET_SUB], h);
		if (blocked && !bl->any_exception)
			return BLOCKLIST_BLOCKED;
		dot = memchr(buf + off, '.', len - off);
		if (!dot)
			break;
		off = (size_t)(dot - buf) + 1;
		if (off == len)
			break;
	}
	return blocked ? BLOCKLIST_BLOCKED : BLOCKLIST_NONE;
}
