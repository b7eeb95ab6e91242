/* netmap.c - parses coord's netmap stream (see coord/netmap.c for the producer) into the
 * node's copy. Every field is validated; a bad line changes nothing. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/json.h"
#include "netmap.h"

void netmap_init(struct netmap *m)
{
	memset(m, 0, sizeof(*m));
}

void nm_dns_free(struct nm_dns *d)
{
	if (!d)
		return;
	free(d->routes);
	free(d->records);
	free(d->rules);
	free(d);
}

void netmap_free(struct netmap *m)
{
	nm_dns_free(m->dns);
	free(m->peers);
	memset(m, 0, sizeof(*m));
}

void nm_change_clear(struct nm_change *chg)
{
	free(chg->old_peers);
	memset(chg, 0, sizeof(*chg));
}

static int parse_ips(const json_t *o, struct in_addr *ip4, struct in6_addr *ip6)
{
	json_t *ips = json_object_get(o, "ips");
	const char *a, *b;

	if (!json_is_array(ips) || json_array_size(ips) != 2)
		return -EINVAL;
	a = json_string_value(json_array_get(ips, 0));
	b = json_string_value(json_array_get(ips, 1));
	if (!a || !b || inet_pton(AF_INET, a, ip4) != 1 || inet_pton(AF_INET6, b, ip6) != 1)
		return -EINVAL;
	return 0;
}

/* Coord checks endpoints with the same parser (lib/addr.c): one that does not parse
 * makes the line malformed. */
static int parse_endpoints(const json_t *eps, struct addr_port out[NM_MAX_ENDPOINTS], int *n)
{
	size_t i;
	json_t *v;

	*n = 0;
	if (!eps)
		return 0;
	if (!json_is_array(eps) || json_array_size(eps) > NM_MAX_ENDPOINTS)
		return -EINVAL;
	json_array_foreach(eps, i, v) {
		if (!json_is_string(v) ||
		    addr_parse(json_string_value(v), json_string_length(v), 0, &out[*n]))
			return -EINVAL;
		(*n)++;
	}
	return 0;
}

static int parse_peer(const json_t *o, struct nm_peer *p)
{
	json_int_t id;
	int64_t v;

	memset(p, 0, sizeof(*p));
	if (!json_is_object(o) || json_get_int(o, "id", &v) || v <= 0)
		return -EINVAL;
	id = v;
	p->id = id;
	if (json_copy_str(o, "name", p->name, sizeof(p->name), 1) ||
	    json_copy_str(o, "fqdn", p->fqdn, sizeof(p->fqdn), 0) ||
	    json_get_key(o, "node_key", p->node_key) || json_get_key(o, "disco_key", p->disco_key) ||
	    parse_ips(o, &p->ip4, &p->ip6) ||
	    parse_endpoints(json_object_get(o, "endpoints"), p->endpoints, &p->n_endpoints) ||
	    json_copy_str(o, "home_relay", p->home_relay, sizeof(p->home_relay), 0))
		return -EINVAL;
	if (json_get_bool(o, "online", &p->online) == -EINVAL ||
	    json_get_int(o, "last_seen", &p->last_seen) == -EINVAL)
		return -EINVAL;
	return 0;
}

static int parse_relays(const json_t *a, struct netmap *m)
{
	struct nm_relay r[NM_MAX_RELAYS];
	size_t i;
	json_t *v;

	if (!json_is_array(a) || json_array_size(a) > NM_MAX_RELAYS)
		return -EINVAL;
	json_array_foreach(a, i, v) {
		if (json_copy_str(v, "name", r[i].name, sizeof(r[i].name), 1) ||
		    json_copy_str(v, "url", r[i].url, sizeof(r[i].url), 1) ||
		    json_copy_str(v, "pin", r[i].pin, sizeof(r[i].pin), 0) ||
		    json_copy_str(v, "stun", r[i].stun, sizeof(r[i].stun), 0))
			return -EINVAL;
	}
	memcpy(m->relays, r, json_array_size(a) * sizeof(r[0]));
	m->n_relays = (int)json_array_size(a);
	return 0;
}

/* --- the DNS policy: every field checked with lib/dnspol.c, as coord checked it --- */

/* An array of at most max entries, absent = empty. */
static int dns_array(const json_t *o, const char *key, size_t max, const json_t **out)
{
	const json_t *a = json_object_get(o, key);

	*out = a;
	if (!a)
		return 0;
	return json_is_array(a) && json_array_size(a) <= max ? 0 : -EINVAL;
}

static int dns_upstreams(const json_t *o, struct nm_dns *d)
{
	const json_t *a, *v;
	size_t i;

	if (dns_array(o, "upstreams", NM_DNS_MAX_UPSTREAMS, &a))
		return -EINVAL;
	json_array_foreach(a, i, v)
		if (!json_is_string(v) ||
		    dnspol_server_parse(json_string_value(v), 1, &d->upstreams[d->n_upstreams++], NULL, 0))
			return -EINVAL;
	return 0;
}

static int dns_routes(const json_t *o, struct nm_dns *d)
{
	const json_t *a, *v, *servers, *s;
	const char *dom;
	size_t i, j;

	if (dns_array(o, "routes", NM_DNS_MAX_ROUTES, &a))
		return -EINVAL;
	if (a && json_array_size(a) && !(d->routes = calloc(json_array_size(a), sizeof(*d->routes))))
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		struct nm_dns_route *r = &d->routes[d->n_routes++];

		if (json_get_str(v, "domain", &dom) || dnspol_name_canon(dom, r->domain, sizeof(r->domain)) ||
		    dns_array(v, "servers", NM_DNS_ROUTE_SERVERS, &servers) || !json_array_size(servers))
			return -EINVAL;
		json_array_foreach(servers, j, s)
			if (!json_is_string(s) || dnspol_server_parse(json_string_value(s), 0,
								      &r->servers[r->n_servers++], NULL, 0))
				return -EINVAL;
	}
	return 0;
}

static int dns_records(const json_t *o, struct nm_dns *d)
{
	const json_t *a, *v;
	const char *name, *type, *value;
	size_t i;

	if (dns_array(o, "records", NM_DNS_MAX_RECORDS, &a))
		return -EINVAL;
	if (a && json_array_size(a) && !(d->records = calloc(json_array_size(a), sizeof(*d->records))))
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		struct nm_dns_record *r = &d->records[d->n_records++];

		if (json_get_str(v, "name", &name) || json_get_str(v, "type", &type) ||
		    json_get_str(v, "value", &value) ||
		    dnspol_name_canon(name, r->name, sizeof(r->name)) ||
		    !(r->type = dnspol_rr_parse(type)) ||
		    dnspol_value_canon(r->type, value, r->value, sizeof(r->value)))
			return -EINVAL;
	}
	return 0;
}

static int dns_rules(const json_t *o, struct nm_dns *d)
{
	const json_t *allow, *block, *v;
	size_t i, n;

	if (dns_array(o, "allow", NM_DNS_MAX_RULES, &allow) ||
	    dns_array(o, "block", NM_DNS_MAX_RULES, &block))
		return -EINVAL;
	n = json_array_size(allow) + json_array_size(block);
	if (n > NM_DNS_MAX_RULES)
		return -EINVAL;
	if (n && !(d->rules = calloc(n, sizeof(*d->rules))))
		return -ENOMEM;
	for (int k = 0; k < 2; k++) {
		json_array_foreach(k ? block : allow, i, v) {
			struct nm_dns_rule *r = &d->rules[d->n_rules++];

			r->allow = !k;
			if (!json_is_string(v) ||
			    dnspol_name_canon(json_string_value(v), r->domain, sizeof(r->domain)))
				return -EINVAL;
		}
	}
	return 0;
}

static int dns_head(const json_t *o, struct nm_dns *d)
{
	const char *resolver = "100.100.100.100", *mode = "null";
	const json_t *bl = json_object_get(o, "blocklist");
	char dom[DNSPOL_NAME_MAX + 1];

	if (json_copy_str(o, "domain", d->domain, sizeof(d->domain), 0) ||
	    (d->domain[0] && (dnspol_name_canon(d->domain, dom, sizeof(dom)) || strcmp(dom, d->domain))) ||
	    json_get_str(o, "resolver", &resolver) == -EINVAL ||
	    inet_pton(AF_INET, resolver, &d->resolver) != 1 ||
	    json_get_str(o, "blocking_mode", &mode) == -EINVAL)
		return -EINVAL;
	if (strcmp(mode, "null") && strcmp(mode, "nxdomain"))
		return -EINVAL;
	d->nxdomain = !strcmp(mode, "nxdomain");
	if (bl && (!json_is_object(bl) || json_get_int(bl, "version", &d->blocklist_version) == -EINVAL ||
		   d->blocklist_version < 0 ||
		   json_copy_str(bl, "url", d->blocklist_url, sizeof(d->blocklist_url), 0)))
		return -EINVAL;
	return 0;
}

/* The "dns" object of a full map or a dns delta: *out, or -EINVAL / -ENOMEM. */
static int parse_dns(const json_t *o, struct nm_dns **out)
{
	struct nm_dns *d;
	int rc;

	*out = NULL;
	if (!json_is_object(o))
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	rc = dns_head(o, d);
	if (!rc)
		rc = dns_upstreams(o, d);
	if (!rc)
		rc = dns_routes(o, d);
	if (!rc)
		rc = dns_records(o, d);
	if (!rc)
		rc = dns_rules(o, d);
	if (rc) {
		nm_dns_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

/* A new domain renames every node: NAME.<domain>. */
static void set_domain(struct netmap *m, const char *domain)
{
	if (!domain[0] || !strcmp(domain, m->domain))
		return;
	snprintf(m->domain, sizeof(m->domain), "%s", domain);
	if (m->self.fqdn[0] && m->self.name[0])
		snprintf(m->self.fqdn, sizeof(m->self.fqdn), "%s.%s", m->self.name, m->domain);
	for (size_t i = 0; i < m->n_peers; i++)
		if (m->peers[i].fqdn[0] && m->peers[i].name[0])
			snprintf(m->peers[i].fqdn, sizeof(m->peers[i].fqdn), "%s.%s", m->peers[i].name,
				 m->domain);
}

static int apply_dns(struct netmap *m, const json_t *o, struct nm_change *chg)
{
	struct nm_dns *d;
	int rc = parse_dns(json_object_get(o, "dns"), &d);

	if (rc)
		return rc;
	nm_dns_free(m->dns);
	m->dns = d;
	set_domain(m, d->domain);
	chg->kind = NM_DNS;
	return 0;
}

static int cmp_peer(const void *a, const void *b)
{
	const struct nm_peer *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, KEY_LEN);
}

/* 1 when two peers have one node key (WireGuard could hold only one of them), else 0 or
 * -ENOMEM. */
static int keys_repeat(const struct nm_peer *p, size_t n)
{
	uint8_t (*keys)[KEY_LEN];
	int rep = 0;

	if (n < 2)
		return 0;
	keys = malloc(n * KEY_LEN);
	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		memcpy(keys[i], p[i].node_key, KEY_LEN);
	qsort(keys, n, KEY_LEN, cmp_key);
	for (size_t i = 1; i < n && !rep; i++)
		rep = !memcmp(keys[i], keys[i - 1], KEY_LEN);
	free(keys);
	return rep;
}

ssize_t nm_peers_search(const void *base, size_t n, size_t stride, int64_t id)
{
	const char *b = base;
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int64_t v = ((const struct nm_peer *)(const void *)(b + mid * stride))->id;

		if (v == id)
			return (ssize_t)mid;
		if (v < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(ssize_t)lo - 1;
}

int nm_peers_reserve(void **base, size_t *cap, size_t n, size_t stride)
{
	size_t c;
	void *nb;

	if (n <= *cap)
		return 0;
	if (n > NM_MAX_PEERS)
		return -E2BIG;
	c = *cap ? *cap : 16;
	while (c < n)
		c *= 2;
	if (c > NM_MAX_PEERS)
		c = NM_MAX_PEERS;
	nb = realloc(*base, c * stride);
	if (!nb)
		return -ENOMEM;
	*base = nb;
	*cap = c;
	return 0;
}

static ssize_t find_index(const struct netmap *m, int64_t id)
{
	ssize_t i = nm_peers_search(m->peers, m->n_peers, sizeof(*m->peers), id);

	return i < 0 ? -1 : i;
}

const struct nm_peer *netmap_find_id(const struct netmap *m, int64_t id)
{
	ssize_t i = find_index(m, id);

	return i < 0 ? NULL : &m->peers[i];
}

const struct nm_peer *netmap_find_key(const struct netmap *m, const uint8_t key[KEY_LEN])
{
	for (size_t i = 0; i < m->n_peers; i++)
		if (!memcmp(m->peers[i].node_key, key, KEY_LEN))
			return &m->peers[i];
	return NULL;
}

int nm_peer_wg_equal(const struct nm_peer *a, const struct nm_peer *b)
{
	return !memcmp(a->node_key, b->node_key, KEY_LEN) &&
	       a->ip4.s_addr == b->ip4.s_addr && !memcmp(&a->ip6, &b->ip6, sizeof(a->ip6)) &&
	       a->n_endpoints == b->n_endpoints &&
	       (!a->n_endpoints || addr_equal(&a->endpoints[0], &b->endpoints[0])) &&
	       !a->online == !b->online;
}

static int reserve(struct netmap *m, size_t n)
{
	void *base = m->peers;
	int rc = nm_peers_reserve(&base, &m->cap, n, sizeof(*m->peers));

	m->peers = base;
	return rc;
}

static int parse_self(const json_t *self, struct nm_self *s)
{
	char state[NODE_STATUS_TEXT_MAX];

	memset(s, 0, sizeof(*s));
	if (!json_is_object(self) || json_get_int(self, "id", &s->id) ||
	    json_copy_str(self, "name", s->name, sizeof(s->name), 1) ||
	    json_copy_str(self, "fqdn", s->fqdn, sizeof(s->fqdn), 0) ||
	    json_copy_str(self, "state", state, sizeof(state), 1) ||
	    parse_ips(self, &s->ip4, &s->ip6) ||
	    json_get_int(self, "key_expiry", &s->key_expiry) == -EINVAL)
		return -EINVAL;
	s->state = node_status_parse(state);
	return 0;
}

/* An array of peers, sorted by id, no id twice: *out (free it) and *n, or -EINVAL /
 * -ENOMEM. */
static int parse_peers(const json_t *peers, struct nm_peer **out, size_t *n)
{
	struct nm_peer *np;
	const json_t *v;
	size_t i;

	if (!json_is_array(peers) || json_array_size(peers) > NM_MAX_PEERS)
		return -EINVAL;
	*n = json_array_size(peers);
	np = calloc(*n ? *n : 1, sizeof(*np));
	if (!np)
		return -ENOMEM;
	json_array_foreach(peers, i, v) {
		if (parse_peer(v, &np[i])) {
			free(np);
			return -EINVAL;
		}
	}
	qsort(np, *n, sizeof(*np), cmp_peer);
	for (i = 1; i < *n; i++) {
		if (np[i].id == np[i - 1].id) {
			free(np);
			return -EINVAL;
		}
	}
	*out = np;
	return 0;
}

/* What a full or a resume carries besides the peers; relays and dns only if present. */
struct map_rest {
	struct nm_self self;
	struct nm_relay relays[NM_MAX_RELAYS];
	int n_relays, has_relays;
	char domain[64];
	struct nm_dns *dns;
	int has_dns;
	char epoch[NM_EPOCH_LEN + 1];
};

static int parse_rest(const json_t *o, struct map_rest *r)
{
	struct netmap tmp;
	int rc;

	memset(r, 0, sizeof(*r));
	memset(&tmp, 0, sizeof(tmp));
	if (parse_self(json_object_get(o, "self"), &r->self) ||
	    json_copy_str(o, "domain", r->domain, sizeof(r->domain), 0) ||
	    json_copy_str(o, "epoch", r->epoch, sizeof(r->epoch), 0))
		return -EINVAL;
	if (r->epoch[0] && !coord_epoch_valid(r->epoch))
		return -EINVAL;
	if (json_object_get(o, "relays")) {
		if (parse_relays(json_object_get(o, "relays"), &tmp))
			return -EINVAL;
		memcpy(r->relays, tmp.relays, sizeof(tmp.relays));
		r->n_relays = tmp.n_relays;
		r->has_relays = 1;
	}
	if (json_object_get(o, "dns")) {
		rc = parse_dns(json_object_get(o, "dns"), &r->dns);
		if (rc)
			return rc;
		r->has_dns = 1;
	}
	return 0;
}

/* Moves r into m (a full replaces the relays and the DNS policy even when absent). */
static void take_rest(struct netmap *m, struct map_rest *r, int full)
{
	m->self = r->self;
	if (full || r->has_relays) {
		memcpy(m->relays, r->relays, sizeof(r->relays));
		m->n_relays = r->n_relays;
	}
	if (full)
		memcpy(m->domain, r->domain, sizeof(m->domain));
	else
		set_domain(m, r->domain);   /* renames the peers that were not sent */
	if (full || r->has_dns) {
		nm_dns_free(m->dns);
		m->dns = r->dns;
		r->dns = NULL;
	}
	if (full)
		memcpy(m->epoch, r->epoch, sizeof(m->epoch));
}

static void install_peers(struct netmap *m, struct nm_peer *np, size_t n, struct nm_change *chg)
{
	chg->kind = NM_FULL;
	chg->old_peers = m->peers;
	chg->n_old = m->n_peers;
	m->peers = np;
	m->n_peers = n;
	m->cap = n ? n : 1;
}

/* The end of a full or a resume: on success the new peers and the rest go into m;
 * otherwise both are freed and m is as it was. */
static int map_done(struct netmap *m, struct nm_peer *np, size_t n, struct map_rest *r, int rc,
		    int full, struct nm_change *chg)
{
	if (rc) {
		free(np);
		nm_dns_free(r->dns);
		return rc;
	}
	install_peers(m, np, n, chg);
	take_rest(m, r, full);
	if (full)
		m->have_full = 1;
	else
		chg->resumed = 1;
	return 0;
}

static int apply_full(struct netmap *m, const json_t *o, struct nm_change *chg)
{
	struct nm_peer *np = NULL;
	struct map_rest r;
	size_t n = 0;
	int rc = parse_peers(json_object_get(o, "peers"), &np, &n);

	memset(&r, 0, sizeof(r));
	if (!rc && (rc = keys_repeat(np, n)) > 0)
		rc = -EINVAL;
	if (!rc)
		rc = parse_rest(o, &r);
	return map_done(m, np, n, &r, rc, 1, chg);
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* "removed": ids, sorted into *out (free it). */
static int parse_removed(const json_t *a, int64_t **out, size_t *n)
{
	const json_t *v;
	size_t i;

	*out = NULL;
	*n = 0;
	if (!a)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > 2 * (size_t)NM_MAX_PEERS)
		return -EINVAL;
	*n = json_array_size(a);
	if (!(*out = calloc(*n ? *n : 1, sizeof(**out))))
		return -ENOMEM;
	json_array_foreach(a, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0) {
			free(*out);
			*out = NULL;
			return -EINVAL;
		}
		(*out)[i] = json_integer_value(v);
	}
	qsort(*out, *n, sizeof(**out), cmp_id);
	return 0;
}

/* The peers after a resume: the old ones less the removed, with the sent ones added or
 * replacing theirs (both sorted by id: one merge). */
static struct nm_peer *merge_peers(const struct netmap *m, const int64_t *rm, size_t n_rm,
				   const struct nm_peer *up, size_t n_up, size_t *n_out)
{
	struct nm_peer *np = calloc(m->n_peers + n_up ? m->n_peers + n_up : 1, sizeof(*np));
	size_t i = 0, j = 0, n = 0;

	if (!np)
		return NULL;
	while (i < m->n_peers || j < n_up) {
		if (j == n_up || (i < m->n_peers && m->peers[i].id < up[j].id)) {
			if (!bsearch(&m->peers[i].id, rm, n_rm, sizeof(*rm), cmp_id))
				np[n++] = m->peers[i];
			i++;
		} else {
			if (i < m->n_peers && m->peers[i].id == up[j].id)
				i++;
			np[n++] = up[j++];
		}
	}
	*n_out = n;
	return np;
}

/* {"type":"resume",...}: what changed since the version this map is at. */
static int apply_resume(struct netmap *m, const json_t *o, struct nm_change *chg)
{
	struct nm_peer *up = NULL, *np = NULL;
	int64_t *rm = NULL;
	size_t n_up = 0, n_rm = 0, n = 0;
	struct map_rest r;
	int rc;

	memset(&r, 0, sizeof(r));
	rc = parse_rest(o, &r);
	if (!rc && (!m->epoch[0] || strcmp(r.epoch, m->epoch)))
		rc = -EINVAL;   /* not a continuation of this map */
	if (!rc)
		rc = parse_peers(json_object_get(o, "peers"), &up, &n_up);
	if (!rc)
		rc = parse_removed(json_object_get(o, "removed"), &rm, &n_rm);
	if (!rc && !(np = merge_peers(m, rm, n_rm, up, n_up, &n)))
		rc = -ENOMEM;
	if (!rc && n > NM_MAX_PEERS)
		rc = -E2BIG;
	if (!rc && (rc = keys_repeat(np, n)) > 0)
		rc = -EINVAL;
	free(up);
	free(rm);
	return map_done(m, np, n, &r, rc, 0, chg);
}

void netmap_resume_query(const struct netmap *m, char *out, size_t size)
{
	coord_resume_query(out, size, m->have_full && !m->resync ? m->version : 0, m->epoch);
}

static int apply_peer(struct netmap *m, const json_t *o, int added, struct nm_change *chg)
{
	struct nm_peer p;
	ssize_t i;

	if (parse_peer(json_object_get(o, "peer"), &p))
		return -EINVAL;
	/* WireGuard knows a peer by its key: a second id with it would take the first's place */
	for (size_t j = 0; j < m->n_peers; j++)
		if (m->peers[j].id != p.id && !memcmp(m->peers[j].node_key, p.node_key, KEY_LEN))
			return -EINVAL;
	i = nm_peers_search(m->peers, m->n_peers, sizeof(p), p.id);
	if (i >= 0) {
		m->peers[i] = p;
	} else {
		size_t at = (size_t)(-i - 1);

		if (reserve(m, m->n_peers + 1))
			return -ENOMEM;
		memmove(&m->peers[at + 1], &m->peers[at], (m->n_peers - at) * sizeof(p));
		m->peers[at] = p;
		m->n_peers++;
		i = (ssize_t)at;
		added = 1;
	}
	chg->kind = added ? NM_PEER_ADDED : NM_PEER_CHANGED;
	chg->peer = &m->peers[i];
	return 0;
}

static int apply_removed(struct netmap *m, const json_t *o, struct nm_change *chg)
{
	int64_t id;
	ssize_t i;

	if (json_get_int(o, "id", &id))
		return -EINVAL;
	i = find_index(m, id);
	chg->kind = NM_PEER_REMOVED;
	if (i < 0) {
		chg->kind = NM_NONE;   /* never knew it: nothing to undo */
		return 0;
	}
	chg->removed = m->peers[i];
	memmove(&m->peers[i], &m->peers[i + 1], (m->n_peers - (size_t)i - 1) * sizeof(m->peers[0]));
	m->n_peers--;
	return 0;
}

static int apply_endpoints(struct netmap *m, const json_t *o, struct nm_change *chg)
{
	struct addr_port eps[NM_MAX_ENDPOINTS];
	char relay[NM_NAME_LEN];
	int64_t id;
	int n;
	ssize_t i;

	memset(eps, 0, sizeof(eps));

	if (json_get_int(o, "id", &id) ||
	    parse_endpoints(json_object_get(o, "endpoints"), eps, &n) ||
	    json_copy_str(o, "home_relay", relay, sizeof(relay), 0))
		return -EINVAL;
	i = find_index(m, id);
	if (i < 0)
		return 0;
	memcpy(m->peers[i].endpoints, eps, sizeof(eps));
	m->peers[i].n_endpoints = n;
	memcpy(m->peers[i].home_relay, relay, sizeof(relay));
	chg->kind = NM_PEER_CHANGED;
	chg->peer = &m->peers[i];
	return 0;
}

static int apply_online(struct netmap *m, const json_t *o, struct nm_change *chg)
{
	int64_t id, seen = 0;
	int online;
	ssize_t i;

	if (json_get_int(o, "id", &id) || json_get_bool(o, "online", &online) ||
	    json_get_int(o, "last_seen", &seen) == -EINVAL)
		return -EINVAL;
	i = find_index(m, id);
	if (i < 0)
		return 0;
	m->peers[i].online = online;
	m->peers[i].last_seen = seen;
	chg->kind = NM_PEER_CHANGED;
	chg->peer = &m->peers[i];
	return 0;
}

int netmap_apply_line(struct netmap *m, const char *line, size_t len, struct nm_change *chg)
{
	char err[128];
	const char *type;
	json_t *o;
	int rc = -EINVAL;

	memset(chg, 0, sizeof(*chg));
	o = json_parse_object(line, len, err, sizeof(err));
	if (!o)
		return -EINVAL;
	if (json_get_str(o, "type", &type))
		goto out;
	if (!strcmp(type, "keepalive")) {
		chg->kind = NM_KEEPALIVE;
		rc = 0;
	} else if (!strcmp(type, "full")) {
		rc = apply_full(m, o, chg);
		if (!rc)
			m->version = m->resync = 0;   /* the version: unless it says */
	} else if (!strcmp(type, "gone")) {
		chg->kind = NM_GONE;
		rc = json_copy_str(o, "reason", chg->reason, sizeof(chg->reason), 0);
	} else if (!m->have_full) {
		rc = -EPROTO;
	} else if (!strcmp(type, "resume")) {
		rc = apply_resume(m, o, chg);
	} else if (!strcmp(type, "peer_added")) {
		rc = apply_peer(m, o, 1, chg);
	} else if (!strcmp(type, "peer_changed")) {
		rc = apply_peer(m, o, 0, chg);
	} else if (!strcmp(type, "peer_removed")) {
		rc = apply_removed(m, o, chg);
	} else if (!strcmp(type, "endpoints")) {
		rc = apply_endpoints(m, o, chg);
	} else if (!strcmp(type, "online")) {
		rc = apply_online(m, o, chg);
	} else if (!strcmp(type, "dns")) {
		rc = apply_dns(m, o, chg);
	} else if (!strcmp(type, "relays")) {
		rc = parse_relays(json_object_get(o, "relays"), m);
		if (!rc)
			chg->kind = NM_RELAYS;
	} else {
		rc = 0;   /* a newer coord's message: ignore, as disco ignores trailing bytes */
	}
out:
	if (rc && rc != -EPROTO && m->have_full)
		m->resync = 1;
	if (!rc && json_is_integer(json_object_get(o, "v")) &&
	    json_integer_value(json_object_get(o, "v")) >= 0)
		m->version = json_integer_value(json_object_get(o, "v"));
	json_decref(o);
	if (rc)
		nm_change_clear(chg);
	return rc;
}
