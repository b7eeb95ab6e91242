/* blocklist.h - DNS blocklists (DESIGN.md flow 6, issue 10): coord parses each source and
 * compiles one list, vpnd loads it and matches query names. Pure: no I/O, no clock; the
 * caller hands in bytes (a source, chunk by chunk; a blob) and gets bytes back.
 *
 * Sources, one rule per line (at most BLOCKLIST_LINE_MAX bytes; a longer line is skipped
 * and counted, never buffered whole):
 *   hosts     `0.0.0.0 d`, `127.0.0.1 d e`, `:: d`, `::1 d` (any IPv4/IPv6 address first),
 *             several names per line, a `#` after a blank starts a comment; localhost,
 *             broadcasthost, ip6-* and the like are skipped. Blocks exactly d (Pi-hole).
 *   plain     `d`: exactly d.
 *   wildcard  `*.d`: d and every name under it (as Blocky).
 *   adblock   `||d^` (also `||d^|`, `||d^ # ...`): d and every name under it; `@@||d^` an
 *             exception for d and every name under it. Rules with options
 *             (`$third-party`), paths (`/ads/`), cosmetic filters (`##`), regexes, wildcards
 *             inside a name or `||d` without its `^` mean nothing exact to DNS: unusable.
 *   comments  `#...`, `!...`, `[Adblock Plus 2.0]`; blank lines; a UTF-8 BOM opening the source.
 * A name is lowercased, loses one trailing dot and must have labels of 1-63 bytes from
 * [a-z0-9_-], 253 bytes at most: otherwise (or with control or non-ASCII bytes anywhere in
 * the line: binary junk, IDN not in punycode) the line counts as invalid.
 *
 * Matching: a query name is blocked when it is an exact entry or it or any parent is a
 * subdomain entry (`||d^`, `*.d`) — unless it is an exact exception or it or any parent is a
 * subdomain exception: exceptions always win, manual block rules included.
 *
 * The compiled list holds 64-bit SipHash-1-3 hashes of the names under a per-list key, in
 * four sorted arrays (exact blocks, subdomain blocks, exact exceptions, subdomain
 * exceptions): 8 bytes per name. Two different names share a hash with probability 2^-64,
 * so a query of up to 127 labels against a million entries is wrongly matched with odds
 * of about 10^-11: accepted, not checked (no names are stored).
 *
 * Blob (all integers little-endian):
 *   magic "MVBLKLST" (8) | format version (4, 1) | reserved (4, 0) | serial (8, the
 *   compiler's version of this list) | hash key (16) | counts (4 x 4, the arrays in the
 *   order above) | reserved (8, 0) | arrays (8 per entry, each strictly ascending) |
 *   BLAKE2b-256 of everything before it (32).
 * A blob is refused unless every field, the length, the order and the checksum agree. */
#ifndef MESHVPN_BLOCKLIST_H
#define MESHVPN_BLOCKLIST_H

#include <stddef.h>
#include <stdint.h>

#define BLOCKLIST_LINE_MAX 1024          /* bytes per source line, without the newline */
#define BLOCKLIST_NAME_MAX 253
#define BLOCKLIST_KEY_LEN 16
#define BLOCKLIST_MAGIC "MVBLKLST"
#define BLOCKLIST_FORMAT 1
#define BLOCKLIST_HEADER_LEN 64
#define BLOCKLIST_SUM_LEN 32
#define BLOCKLIST_MAX_RULES_DEFAULT (16u << 20)   /* a builder's bound unless told */

/* What a rule covers. */
enum blocklist_rule_flags {
	BLOCKLIST_SUBDOMAINS = 1u << 0,   /* the name and every name under it */
	BLOCKLIST_EXCEPTION = 1u << 1,    /* allowed, whatever blocks it */
};

/* What blocklist_match found. */
enum blocklist_verdict {
	BLOCKLIST_NONE = 0,      /* no rule covers the name */
	BLOCKLIST_BLOCKED = 1,
	BLOCKLIST_ALLOWED = 2,   /* an exception covers it (whether or not a rule blocks it) */
};

/* Per source. A line is too long, or is parsed to rules, each taken, unusable or invalid
 * (a hosts line's names one by one; a line of junk is one invalid rule). */
struct blocklist_stats {
	uint64_t lines;        /* newline-terminated lines, and a last one without */
	uint64_t domains;      /* block rules taken (a hosts line may give several) */
	uint64_t exceptions;   /* exception rules taken */
	uint64_t unusable;     /* rules that mean nothing to DNS (options, paths, cosmetic) */
	uint64_t too_long;     /* lines over BLOCKLIST_LINE_MAX, skipped */
	uint64_t invalid;      /* bad names, binary junk */
};

/* ---- parser: one source, streamed ---- */

/* A rule: name normalised and valid, NUL-terminated. Nonzero (a negative errno) stops the
 * feed and is what the feed returns. */
typedef int (*blocklist_rule_cb)(const char *name, size_t len, unsigned flags, void *arg);

struct blocklist_parser {
	blocklist_rule_cb cb;
	void *arg;
	struct blocklist_stats st;
	size_t len;          /* bytes of the current line in line[] */
	int overlong;        /* the current line passed the bound: dropping to its newline */
	char line[BLOCKLIST_LINE_MAX + 1];
};

/* No allocation: a parser is its struct, whatever it is fed. */
void blocklist_parser_init(struct blocklist_parser *ps, blocklist_rule_cb cb, void *arg);
/* Takes the next bytes of the source (any split); calls cb for each rule of the lines they
 * complete. 0, or what cb returned. */
int blocklist_parser_feed(struct blocklist_parser *ps, const uint8_t *p, size_t len);
/* The end of the source: a last line without a newline is parsed. 0, or what cb returned. */
int blocklist_parser_end(struct blocklist_parser *ps);

/* Lowercases, drops one trailing dot, validates (labels 1-63 of [a-z0-9_-], at most 253
 * bytes). The length written to out (NUL-terminated), or -EINVAL. */
int blocklist_name_normalise(const char *in, size_t len, char out[BLOCKLIST_NAME_MAX + 1]);

/* ---- compiler (coord) ---- */

struct blocklist_builder;

/* An empty list hashed under key (random per compile: coord takes it from randombytes).
 * max_rules bounds what it takes (0: BLOCKLIST_MAX_RULES_DEFAULT; at most 2^32 - 1).
 * NULL without memory. */
struct blocklist_builder *blocklist_builder_new(const uint8_t key[BLOCKLIST_KEY_LEN],
						size_t max_rules);
void blocklist_builder_free(struct blocklist_builder *b);
/* One rule (a manual allow/block, or a parsed one). 0, -EINVAL (not a valid name, unknown
 * flag), -E2BIG (past max_rules), -ENOMEM. */
int blocklist_builder_add(struct blocklist_builder *b, const char *name, size_t len,
			  unsigned flags);
/* A parser callback (arg: the builder): blocklist_builder_add for names that are
 * normalised already (the parser's), which it takes as they are. */
int blocklist_builder_rule(const char *name, size_t len, unsigned flags, void *arg);
/* A whole source at once (parser + blocklist_builder_rule); st may be NULL. 0, -E2BIG or
 * -ENOMEM (the rules before it stay added). */
int blocklist_builder_add_source(struct blocklist_builder *b, const uint8_t *p, size_t len,
				 struct blocklist_stats *st);
/* Sorts and deduplicates (an exact rule whose name has a subdomain rule of its kind too is
 * dropped) and
 * writes the blob, malloc'ed, to *out / *out_len. The builder stays usable. 0 or -ENOMEM. */
int blocklist_builder_compile(struct blocklist_builder *b, uint64_t serial, uint8_t **out,
			      size_t *out_len);

/* ---- the compiled list (vpnd) ---- */

/* Immutable once loaded: any number of readers, no locks, no reference count. The resolver
 * swaps its pointer to a new list and frees the old one when no lookup can still be in it
 * (in vpnd's single loop thread: right after the swap, lookups being synchronous). */
struct blocklist;

enum blocklist_load_flags {
	BLOCKLIST_LOAD_OWN = 1u << 0,   /* on success the list owns the blob: free() with it */
};

struct blocklist_info {
	uint64_t serial;
	uint32_t exact, subdomains, exact_exceptions, subdomain_exceptions;
	size_t memory;   /* bytes the list holds: the blob and the bucket indexes */
};

/* Validates blob and uses its arrays in place (no copy): it must stay unchanged and alive
 * until blocklist_free (mmap'ed or malloc'ed; any alignment). 0, -EBADMSG (anything wrong:
 * magic, format, reserved fields, counts against the length, order, checksum), -ENOMEM. */
int blocklist_load(const uint8_t *blob, size_t len, unsigned flags, struct blocklist **out);
void blocklist_free(struct blocklist *bl);
void blocklist_get_info(const struct blocklist *bl, struct blocklist_info *out);
/* The verdict for a name in presentation form (labels joined by '.', any case, optional
 * trailing dot). bl NULL or a name over 253 bytes: BLOCKLIST_NONE. */
enum blocklist_verdict blocklist_match(const struct blocklist *bl, const char *name,
				       size_t len);

#endif
