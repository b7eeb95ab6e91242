/* dns.c - coord's DNS policy: the tailnet domain, upstreams, split-DNS routes, blocklist
 * sources, allow/block rules (optionally scoped to a node tag), extra records and the
 * blocking mode. Kept in memory (lists per kind, a hash of every entry for duplicates),
 * written through to the store, and told to running nodes as their netmap's "dns":
 * one JSON object per distinct set of relevant tags, built once per change. The
 * blocklists are only stored here; blocklists.c fetches and compiles them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "meshvpn/dnspol.h"
#include "meshvpn/json.h"
#include "meshvpn/log.h"

struct dns_item {
	struct dns_item *prev, *next;
	int64_t id;
	enum coord_dns_kind kind;
	int type;                        /* records: enum dnspol_rr */
	uint8_t key[HASH_LEN];           /* of kind and fields (by_key) */
	char tag[DNSPOL_TAG_MAX + 1];    /* blocklists, rules: "tag:x" or "" */
	int64_t fetched, version, lines, unusable;   /* blocklists: the fetcher's */
	const char *name, *value;        /* into text */
	char text[];
};

struct dns_view {
	struct dns_view *next;
	char key[STORE_TAGS_LEN];        /* the node's tags that some item is scoped to */
	json_t *obj;
	char *line;
	size_t len;
};

/* What each kind is called, where it is stored and how big it may grow. */
static const struct kind_def {
	const char *route, *what;
	int table;
	const char *f_name, *f_value, *f_type;   /* its JSON fields (NULL: none) */
	int tagged;
} kinds[COORD_DNS_KINDS] = {
	[COORD_DNS_UPSTREAM] = { "upstreams", "upstream", STORE_DNS_UPSTREAMS, "upstream", NULL,
				 NULL, 0 },
	[COORD_DNS_ROUTE] = { "routes", "route", STORE_DNS_ROUTES, "domain", "server", NULL, 0 },
	[COORD_DNS_BLOCKLIST] = { "blocklists", "blocklist", STORE_DNS_BLOCKLISTS, "source", NULL,
				  NULL, 1 },
	[COORD_DNS_ALLOW] = { "allow", "allow rule", STORE_DNS_RULES, "domain", NULL, NULL, 1 },
	[COORD_DNS_BLOCK] = { "block", "block rule", STORE_DNS_RULES, "domain", NULL, NULL, 1 },
	[COORD_DNS_RECORD] = { "records", "record", STORE_DNS_RECORDS, "name", "value", "type", 0 },
};

/* The canonical fields of an entry, before it is one. */
struct dns_fields {
	char name[COORD_DNS_SOURCE_MAX + 1];
	char value[DNSPOL_SERVER_TEXT];
	char tag[DNSPOL_TAG_MAX + 1];
	int type;
};

/* --- the node's view: cached per relevant tag set, dropped at every change --- */

static void views_free(struct coord *co)
{
	while (co->dns.views) {
		struct dns_view *v = co->dns.views;
		co->dns.views = v->next;
		json_decref(v->obj);
		free(v->line);
		free(v);
	}
}

static int tag_index(const struct coord *co, const char *tag, size_t len)
{
	for (int i = 0; i < COORD_DNS_MAX_TAGS; i++)
		if (co->dns.tag_uses[i] && strlen(co->dns.tags[i]) == len &&
		    !strncmp(co->dns.tags[i], tag, len))
			return i;
	return -1;
}

int coord_dns_tag_in(const char *list, const char *tag)
{
	size_t tl = strlen(tag);

	for (const char *p = list; *p; ) {
		size_t len = strcspn(p, ",");
		if (len == tl && !strncmp(p, tag, tl))
			return 1;
		p += len + (p[len] == ',');
	}
	return 0;
}

/* The node's tags that some blocklist or rule is scoped to: nodes that agree on them
 * are told the same thing. */
static void view_key(const struct coord *co, const char *tags, char *out, size_t size)
{
	size_t n = 0;

	out[0] = 0;
	for (const char *p = tags; *p; ) {
		size_t len = strcspn(p, ",");
		if (len && tag_index(co, p, len) >= 0 && n + len + 2 < size) {
			if (n)
				out[n++] = ',';
			memcpy(out + n, p, len);
			n += len;
			out[n] = 0;
		}
		p += len + (p[len] == ',');
	}
}

static json_t *routes_json(struct coord *co)
{
	json_t *a = json_array();

	for (struct dns_item *r = co->dns.head[COORD_DNS_ROUTE]; r; r = r->next) {
		struct dns_item *q;
		json_t *servers;

		for (q = co->dns.head[COORD_DNS_ROUTE]; q != r && strcmp(q->name, r->name); q = q->next)
			;
		if (q != r)
			continue;   /* its domain was listed with an earlier entry */
		servers = json_array();
		for (q = r; q; q = q->next)
			if (!strcmp(q->name, r->name))
				json_array_append_new(servers, json_string(q->value));
		json_array_append_new(a, json_pack("{s:s, s:o}", "domain", r->name, "servers", servers));
	}
	return a;
}

static json_t *rules_json(struct coord *co, enum coord_dns_kind kind, const char *key)
{
	json_t *a = json_array();

	for (struct dns_item *r = co->dns.head[kind]; r; r = r->next)
		if (!r->tag[0] || coord_dns_tag_in(key, r->tag))
			json_array_append_new(a, json_string(r->name));
	return a;
}

static json_t *view_json(struct coord *co, const char *key)
{
	json_t *ups = json_array(), *recs = json_array();

	for (struct dns_item *u = co->dns.head[COORD_DNS_UPSTREAM]; u; u = u->next)
		json_array_append_new(ups, json_string(u->name));
	for (struct dns_item *r = co->dns.head[COORD_DNS_RECORD]; r; r = r->next)
		json_array_append_new(recs, json_pack("{s:s, s:s, s:s}", "name", r->name, "type",
						      dnspol_rr_name(r->type), "value", r->value));
	/* version 0: no compiled list yet (blcompile.c tells the nodes when there is) */
	return json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:o, s:o, s:{s:I, s:s}}",
			 "domain", co->domain, "resolver", COORD_DNS_RESOLVER, "upstreams", ups,
			 "routes", routes_json(co), "records", recs,
			 "blocking_mode", co->dns.nxdomain ? "nxdomain" : "null",
			 "allow", rules_json(co, COORD_DNS_ALLOW, key),
			 "block", rules_json(co, COORD_DNS_BLOCK, key),
			 "blocklist", "version", (json_int_t)coord_blocklists_version(co, key), "url",
			 COORD_DNS_BLOCKLIST_PATH);
}

void coord_dns_node_key(const struct coord *co, const struct node *n, char *out, size_t size)
{
	view_key(co, n->rec.tags, out, size);
}

int coord_dns_foreach(struct coord *co, enum coord_dns_kind kind,
		      int (*cb)(const struct coord_dns_entry *e, void *arg), void *arg)
{
	for (struct dns_item *it = co->dns.head[kind]; it; it = it->next) {
		struct coord_dns_entry e = { it->id, it->name, it->tag };
		int rc = cb(&e, arg);
		if (rc)
			return rc;
	}
	return 0;
}

static struct dns_view *view_get(struct coord *co, const struct node *n)
{
	char key[STORE_TAGS_LEN];
	struct dns_view *v;
	json_t *msg;

	view_key(co, n->rec.tags, key, sizeof(key));
	for (v = co->dns.views; v; v = v->next)
		if (!strcmp(v->key, key))
			return v;
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	snprintf(v->key, sizeof(v->key), "%s", key);
	v->obj = view_json(co, key);
	msg = v->obj ? json_pack("{s:s, s:O}", "type", "dns", "dns", v->obj) : NULL;
	v->line = msg ? json_dump_compact(msg, &v->len) : NULL;
	json_decref(msg);
	if (v->line) {
		char *l = realloc(v->line, v->len + 2);
		if (l) {
			l[v->len++] = '\n';
			l[v->len] = 0;
		}
		v->line = l;
	}
	if (!v->line) {
		json_decref(v->obj);
		free(v);
		return NULL;
	}
	v->next = co->dns.views;
	co->dns.views = v;
	return v;
}

json_t *coord_dns_node_json(struct coord *co, const struct node *n)
{
	struct dns_view *v = view_get(co, n);

	return v ? json_incref(v->obj) : NULL;
}

const char *coord_dns_node_line(struct coord *co, const struct node *n, size_t *len)
{
	struct dns_view *v = view_get(co, n);

	if (!v)
		return NULL;
	*len = v->len;
	return v->line;
}

void coord_dns_changed(struct coord *co)
{
	views_free(co);
	netmap_dns_changed(co);
}

/* --- entries --- */

static json_t *item_json(struct coord *co, const struct dns_item *it)
{
	const struct kind_def *k = &kinds[it->kind];
	json_t *o = json_object();

	json_object_set_new(o, k->f_name, json_string(it->name));
	if (k->f_type)
		json_object_set_new(o, k->f_type, json_string(dnspol_rr_name(it->type)));
	if (k->f_value)
		json_object_set_new(o, k->f_value, json_string(it->value));
	if (k->tagged)
		json_object_set_new(o, "tag", json_string(it->tag));
	if (it->kind == COORD_DNS_BLOCKLIST) {
		json_object_set_new(o, "last_fetch", json_integer(it->fetched));
		json_object_set_new(o, "version", json_integer(it->version));
		json_object_set_new(o, "lines", json_integer(it->lines));
		json_object_set_new(o, "unusable", json_integer(it->unusable));
		coord_blocklists_source_json(co, it->id, o);   /* fresher, when it runs */
	}
	return o;
}

json_t *coord_dns_json(struct coord *co)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:{s:I, s:s}}", "domain", co->domain, "resolver",
			      COORD_DNS_RESOLVER, "blocking_mode", co->dns.nxdomain ? "nxdomain" : "null",
			      "blocklist", "version", (json_int_t)coord_blocklists_version(co, ""),
			      "url", COORD_DNS_BLOCKLIST_PATH);

	for (int k = 0; o && k < COORD_DNS_KINDS; k++) {
		json_t *a = json_array();
		for (struct dns_item *it = co->dns.head[k]; it; it = it->next)
			json_array_append_new(a, item_json(co, it));
		json_object_set_new(o, kinds[k].route, a);
	}
	return o;
}

static void item_key(enum coord_dns_kind kind, const struct dns_fields *f, uint8_t out[HASH_LEN])
{
	char buf[sizeof(f->name) + sizeof(f->value) + sizeof(f->tag) + 16];
	int n = snprintf(buf, sizeof(buf), "%d %d %s%c%s%c%s", kind, f->type, f->name, 0, f->value, 0,
			 f->tag);

	keys_hash(buf, n > 0 ? (size_t)n : 0, out);
}

static int source_valid(const char *s)
{
	struct http_url u;
	size_t len = strlen(s);

	if (!len || len > COORD_DNS_SOURCE_MAX)
		return 0;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 0;
	if (s[0] == '/')
		return 1;   /* a file on coord's machine */
	return !http_url_parse(s, &u) && (u.scheme == HTTP_SCHEME_HTTP || u.scheme == HTTP_SCHEME_HTTPS);
}

/* The entry's fields in their one spelling, or -EINVAL with what is wrong. */
static int fields_canon(enum coord_dns_kind kind, const char *name, const char *value,
			const char *type, const char *tag, struct dns_fields *f, char *err,
			size_t errlen)
{
	struct dnspol_server srv;

	memset(f, 0, sizeof(*f));
	if (tag && *tag && (!kinds[kind].tagged || !dnspol_tag_valid(tag))) {
		snprintf(err, errlen, kinds[kind].tagged ? "a tag looks like tag:name (lowercase"
			 " letters, digits, '-')" : "a %s takes no tag", kinds[kind].what);
		return -EINVAL;
	}
	snprintf(f->tag, sizeof(f->tag), "%s", tag ? tag : "");
	switch (kind) {
	case COORD_DNS_UPSTREAM:
		if (dnspol_server_parse(name, 1, &srv, f->name, sizeof(f->name)))
			goto bad_server;
		return 0;
	case COORD_DNS_ROUTE:
		if (dnspol_name_canon(name, f->name, sizeof(f->name)))
			goto bad_name;
		name = value;
		if (dnspol_server_parse(value, 0, &srv, f->value, sizeof(f->value)))
			goto bad_server;
		return 0;
	case COORD_DNS_BLOCKLIST:
		if (!source_valid(name)) {
			snprintf(err, errlen, "a blocklist is an http:// or https:// URL or an absolute"
				 " path on coord's machine, %d bytes at most", COORD_DNS_SOURCE_MAX);
			return -EINVAL;
		}
		snprintf(f->name, sizeof(f->name), "%s", name);
		return 0;
	case COORD_DNS_ALLOW:
	case COORD_DNS_BLOCK:
		if (dnspol_name_canon(name, f->name, sizeof(f->name)))
			goto bad_name;
		return 0;
	case COORD_DNS_RECORD:
		if (dnspol_name_canon(name, f->name, sizeof(f->name)))
			goto bad_name;
		f->type = dnspol_rr_parse(type);
		if (!f->type) {
			snprintf(err, errlen, "record type '%.16s' is not one of A, AAAA, CNAME, TXT", type);
			return -EINVAL;
		}
		if (dnspol_value_canon(f->type, value, f->value, sizeof(f->value))) {
			snprintf(err, errlen, "'%.64s' is not a%s %s value (%s)", value,
				 f->type == DNSPOL_RR_A ? "n" : "", dnspol_rr_name(f->type),
				 f->type == DNSPOL_RR_A ? "an IPv4 address" : f->type == DNSPOL_RR_AAAA
				 ? "an IPv6 address" : f->type == DNSPOL_RR_CNAME ? "a DNS name"
				 : "1-255 printable ASCII characters");
			return -EINVAL;
		}
		return 0;
	default:
		return -EINVAL;
	}
bad_name:
	snprintf(err, errlen, "'%.64s' is not a DNS name (labels of letters, digits, '-', '_',"
		 " 253 bytes at most)", name);
	return -EINVAL;
bad_server:
	snprintf(err, errlen, "'%.64s' is not a server: ADDR[:PORT]%s, IPv6 in brackets", name,
		 kind == COORD_DNS_UPSTREAM ? " or tls://ADDR[:PORT]#NAME" : "");
	return -EINVAL;
}

static void item_link(struct coord *co, struct dns_item *it)
{
	struct coord_dns *d = &co->dns;

	it->prev = d->tail[it->kind];
	it->next = NULL;
	if (it->prev)
		it->prev->next = it;
	else
		d->head[it->kind] = it;
	d->tail[it->kind] = it;
	d->count[it->kind]++;
}

static void item_unlink(struct coord *co, struct dns_item *it)
{
	struct coord_dns *d = &co->dns;

	if (it->prev)
		it->prev->next = it->next;
	else
		d->head[it->kind] = it->next;
	if (it->next)
		it->next->prev = it->prev;
	else
		d->tail[it->kind] = it->prev;
	d->count[it->kind]--;
}

/* Counts a use of tag (a free slot when new): 0 or -E2BIG. */
static int tag_ref(struct coord *co, const char *tag)
{
	int i = tag_index(co, tag, strlen(tag));

	if (!*tag)
		return 0;
	for (int j = 0; i < 0 && j < COORD_DNS_MAX_TAGS; j++)
		if (!co->dns.tag_uses[j]) {
			i = j;
			snprintf(co->dns.tags[i], sizeof(co->dns.tags[i]), "%s", tag);
		}
	if (i < 0)
		return -E2BIG;
	co->dns.tag_uses[i]++;
	return 0;
}

/* 1 when tag_ref(tag) would succeed. */
static int tag_room(const struct coord *co, const char *tag)
{
	if (!*tag || tag_index(co, tag, strlen(tag)) >= 0)
		return 1;
	for (int j = 0; j < COORD_DNS_MAX_TAGS; j++)
		if (!co->dns.tag_uses[j])
			return 1;
	return 0;
}

static void tag_unref(struct coord *co, const char *tag)
{
	int i = *tag ? tag_index(co, tag, strlen(tag)) : -1;

	if (i >= 0)
		co->dns.tag_uses[i]--;
}

static struct dns_item *item_new(enum coord_dns_kind kind, const struct dns_fields *f)
{
	size_t nl = strlen(f->name) + 1, vl = strlen(f->value) + 1;
	struct dns_item *it = calloc(1, sizeof(*it) + nl + vl);

	if (!it)
		return NULL;
	it->kind = kind;
	it->type = f->type;
	memcpy(it->text, f->name, nl);
	memcpy(it->text + nl, f->value, vl);
	it->name = it->text;
	it->value = it->text + nl;
	snprintf(it->tag, sizeof(it->tag), "%s", f->tag);
	item_key(kind, f, it->key);
	return it;
}

/* In memory only (the store has it): 0, -E2BIG (tags), -EEXIST, -ENOMEM. */
static int item_add(struct coord *co, struct dns_item *it)
{
	int rc;

	if (keymap_get(&co->dns.by_key, it->key))
		return -EEXIST;
	rc = tag_ref(co, it->tag);
	if (rc)
		return rc;
	if (keymap_put(&co->dns.by_key, it->key, it)) {
		tag_unref(co, it->tag);
		return -ENOMEM;
	}
	item_link(co, it);
	return 0;
}

static void item_drop(struct coord *co, struct dns_item *it)
{
	keymap_del(&co->dns.by_key, it->key);
	tag_unref(co, it->tag);
	item_unlink(co, it);
	free(it);
}

static int over_cap(const struct coord *co, enum coord_dns_kind kind, char *err, size_t errlen)
{
	static const size_t caps[COORD_DNS_KINDS] = {
		[COORD_DNS_UPSTREAM] = COORD_DNS_MAX_UPSTREAMS, [COORD_DNS_ROUTE] = COORD_DNS_MAX_ROUTES,
		[COORD_DNS_BLOCKLIST] = COORD_DNS_MAX_BLOCKLISTS, [COORD_DNS_ALLOW] = COORD_DNS_MAX_RULES,
		[COORD_DNS_BLOCK] = COORD_DNS_MAX_RULES, [COORD_DNS_RECORD] = COORD_DNS_MAX_RECORDS,
	};
	size_t n = co->dns.count[kind];

	if (kind == COORD_DNS_ALLOW || kind == COORD_DNS_BLOCK)
		n = co->dns.count[COORD_DNS_ALLOW] + co->dns.count[COORD_DNS_BLOCK];
	if (n < caps[kind])
		return 0;
	snprintf(err, errlen, "there are %zu %ss already, the most coord keeps; remove one first",
		 n, kind == COORD_DNS_ALLOW || kind == COORD_DNS_BLOCK ? "allow/block rule"
		 : kinds[kind].what);
	return 1;
}

/* Servers of one routed domain, besides it. */
static size_t route_servers(const struct coord *co, const char *domain)
{
	size_t n = 0;

	for (struct dns_item *r = co->dns.head[COORD_DNS_ROUTE]; r; r = r->next)
		n += !strcmp(r->name, domain);
	return n;
}

static int dns_add(struct coord *co, enum coord_dns_kind kind, const struct dns_fields *f,
		   struct dns_item **out, char *err, size_t errlen)
{
	struct dns_item *it;
	struct dns_rec rec = { .table = kinds[kind].table, .name = f->name, .value = f->value,
			       .tag = f->tag, .type = kind == COORD_DNS_ALLOW ? 1 : f->type };
	int rc;

	if (over_cap(co, kind, err, errlen))
		return -E2BIG;
	if (kind == COORD_DNS_ROUTE && route_servers(co, f->name) >= COORD_DNS_ROUTE_SERVERS) {
		snprintf(err, errlen, "%s has %d servers already, the most one domain may have",
			 f->name, COORD_DNS_ROUTE_SERVERS);
		return -E2BIG;
	}
	it = item_new(kind, f);
	if (!it)
		return -ENOMEM;
	if (keymap_get(&co->dns.by_key, it->key)) {
		snprintf(err, errlen, "that %s is there already", kinds[kind].what);
		free(it);
		return -EEXIST;
	}
	if (!tag_room(co, f->tag)) {
		snprintf(err, errlen, "at most %d distinct tags in the DNS policy", COORD_DNS_MAX_TAGS);
		free(it);
		return -E2BIG;
	}
	rc = store_dns_insert(co->st, &rec);
	if (!rc) {
		it->id = rec.id;
		rc = item_add(co, it);
		if (rc)
			store_dns_delete(co->st, rec.table, rec.id);
	}
	if (rc) {
		snprintf(err, errlen, "could not store the %s", kinds[kind].what);
		free(it);
		return rc;
	}
	*out = it;
	return 0;
}

int coord_dns_edit(struct coord *co, const char *kind_name, int add, const json_t *body,
		   json_t **item, char *err, size_t errlen)
{
	const char *name = NULL, *value = "", *type = "", *tag = "";
	const struct kind_def *k = NULL;
	struct dns_fields f;
	struct dns_item *it;
	uint8_t key[HASH_LEN];
	int kind, rc;

	if (item)
		*item = NULL;
	for (kind = 0; kind < COORD_DNS_KINDS && strcmp(kinds[kind].route, kind_name); kind++)
		;
	if (kind == COORD_DNS_KINDS) {
		snprintf(err, errlen, "no such part of the DNS policy: %.32s", kind_name);
		return -ENOENT;
	}
	k = &kinds[kind];
	if (json_get_str(body, k->f_name, &name) ||
	    (k->f_value && json_get_str(body, k->f_value, &value)) ||
	    (k->f_type && json_get_str(body, k->f_type, &type)) ||
	    json_get_str(body, "tag", &tag) == -EINVAL) {
		snprintf(err, errlen, "a %s needs {\"%s\": ...%s%s%s%s%s%s}", k->what, k->f_name,
			 k->f_type ? ", \"" : "", k->f_type ? k->f_type : "", k->f_type ? "\": ..." : "",
			 k->f_value ? ", \"" : "", k->f_value ? k->f_value : "",
			 k->f_value ? "\": ..." : "");
		return -EINVAL;
	}
	rc = fields_canon(kind, name, value, type, tag, &f, err, errlen);
	if (rc)
		return rc;
	if (add) {
		rc = dns_add(co, kind, &f, &it, err, errlen);
		if (rc)
			return rc;
		log_info("dns policy entry added", "kind=%s name=\"%s\" value=\"%s\" tag=%s", k->route,
			 it->name, it->value, it->tag);
		if (item)
			*item = item_json(co, it);
	} else {
		item_key(kind, &f, key);
		it = keymap_get(&co->dns.by_key, key);
		if (!it) {
			snprintf(err, errlen, "no such %s: %.200s%s%.64s%s%.64s", k->what, f.name,
				 f.value[0] ? " " : "", f.value, f.tag[0] ? " " : "", f.tag);
			return -ENOENT;
		}
		rc = store_dns_delete(co->st, k->table, it->id);
		if (rc && rc != -ENOENT) {
			snprintf(err, errlen, "could not store the change");
			return rc;
		}
		log_info("dns policy entry removed", "kind=%s name=\"%s\" value=\"%s\" tag=%s", k->route,
			 it->name, it->value, it->tag);
		if (item)
			*item = item_json(co, it);
		item_drop(co, it);
	}
	if (k->tagged)
		coord_blocklists_changed(co);   /* a source to fetch or drop, a list to compile */
	coord_dns_changed(co);
	return 0;
}

int coord_dns_set_domain(struct coord *co, const char *name, char *err, size_t errlen)
{
	char canon[DNSPOL_NAME_MAX + 1];
	int rc;

	if (dnspol_name_canon(name, canon, sizeof(canon)) || strlen(canon) >= sizeof(co->domain)) {
		snprintf(err, errlen, "the tailnet domain must be a DNS name of at most %zu bytes",
			 sizeof(co->domain) - 1);
		return -EINVAL;
	}
	if (!strcmp(canon, co->domain))
		return 0;
	rc = store_meta_set(co->st, "tailnet_domain", canon);
	if (rc) {
		snprintf(err, errlen, "could not store the domain");
		return rc;
	}
	log_info("tailnet domain changed", "from=%s to=%s", co->domain, canon);
	snprintf(co->domain, sizeof(co->domain), "%s", canon);
	/* Every peer entry names its fqdn; nodes rewrite theirs from the dns delta. */
	for (struct node *n = co->nodes_head; n; n = n->next)
		netmap_invalidate(n);
	coord_dns_changed(co);
	return 0;
}

int coord_dns_set_mode(struct coord *co, const char *mode, char *err, size_t errlen)
{
	int nx;
	int rc;

	if (strcmp(mode, "null") && strcmp(mode, "nxdomain")) {
		snprintf(err, errlen, "the blocking mode is null (0.0.0.0 and ::) or nxdomain");
		return -EINVAL;
	}
	nx = !strcmp(mode, "nxdomain");
	if (nx == co->dns.nxdomain)
		return 0;
	rc = store_meta_set(co->st, "dns_blocking_mode", mode);
	if (rc) {
		snprintf(err, errlen, "could not store the blocking mode");
		return rc;
	}
	co->dns.nxdomain = nx;
	log_info("dns blocking mode changed", "mode=%s", mode);
	coord_dns_changed(co);
	return 0;
}

/* --- load and free --- */

static int load_item(const struct dns_rec *r, void *arg)
{
	struct coord *co = arg;
	static const enum coord_dns_kind of_table[STORE_DNS_TABLES] = {
		[STORE_DNS_UPSTREAMS] = COORD_DNS_UPSTREAM, [STORE_DNS_ROUTES] = COORD_DNS_ROUTE,
		[STORE_DNS_BLOCKLISTS] = COORD_DNS_BLOCKLIST, [STORE_DNS_RULES] = COORD_DNS_BLOCK,
		[STORE_DNS_RECORDS] = COORD_DNS_RECORD,
	};
	enum coord_dns_kind kind = of_table[r->table];
	struct dns_fields f;
	struct dns_item *it;
	int rc;

	if (kind == COORD_DNS_BLOCK && r->type)
		kind = COORD_DNS_ALLOW;
	memset(&f, 0, sizeof(f));
	if (strlen(r->name) >= sizeof(f.name) || strlen(r->value) >= sizeof(f.value) ||
	    strlen(r->tag) >= sizeof(f.tag)) {
		log_error("store holds a corrupt row", "table=dns id=%lld", (long long)r->id);
		return -EIO;
	}
	snprintf(f.name, sizeof(f.name), "%s", r->name);
	snprintf(f.value, sizeof(f.value), "%s", r->value);
	snprintf(f.tag, sizeof(f.tag), "%s", r->tag);
	f.type = kind == COORD_DNS_RECORD ? r->type : 0;
	it = item_new(kind, &f);
	if (!it)
		return -ENOMEM;
	it->id = r->id;
	it->fetched = r->fetched;
	it->version = r->version;
	it->lines = r->lines;
	it->unusable = r->unusable;
	rc = item_add(co, it);
	if (rc) {
		log_error("store holds a DNS entry coord cannot take", "id=%lld err=\"%s\"",
			  (long long)r->id, strerror(-rc));
		free(it);
		return rc == -ENOMEM ? rc : -EIO;
	}
	return 0;
}

int coord_dns_load(struct coord *co)
{
	char mode[16];
	int rc;

	keymap_init(&co->dns.by_key);
	rc = store_meta_get(co->st, "dns_blocking_mode", mode, sizeof(mode));
	if (rc && rc != -ENOENT)
		return rc;
	co->dns.nxdomain = !rc && !strcmp(mode, "nxdomain");
	for (int t = 0; t < STORE_DNS_TABLES; t++) {
		rc = store_dns_foreach(co->st, t, load_item, co);
		if (rc)
			return rc;
	}
	return 0;
}

void coord_dns_free(struct coord *co)
{
	views_free(co);
	for (int k = 0; k < COORD_DNS_KINDS; k++) {
		while (co->dns.head[k]) {
			struct dns_item *it = co->dns.head[k];
			co->dns.head[k] = it->next;
			free(it);
		}
		co->dns.tail[k] = NULL;
		co->dns.count[k] = 0;
	}
	keymap_free(&co->dns.by_key);
	memset(co->dns.tag_uses, 0, sizeof(co->dns.tag_uses));
}
