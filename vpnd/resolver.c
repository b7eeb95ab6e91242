/* resolver.c - the in-VPN resolver's I/O (resolver.h): 100.100.100.100:53 on UDP and TCP,
 * answers from the zone, blocked names, the cache, and forwarding to the upstreams or a
 * split-DNS route's servers with failover by health, TCP on truncation, stale answers
 * when every upstream is down. One libuv loop: the zone, rules and blocklist are swapped
 * between callbacks, never under a lookup. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meshvpn/log.h"
#include "netif.h"
#include "resolver.h"
#include "resolver_dot.h"
#include "resolver_udp.h"
#include "vpnd.h"

#define RS_TICK_MS 50
#define RS_TCP_TRY_MS 2000
#define RS_REBUILD_MS 200          /* netmap bursts rebuild the zone at most this often */
#define RS_SERVERS 8
#define RS_TCP_QUEUE_MAX (256u << 10)   /* answers queued to one TCP client, bytes */

struct rs_client {
	int tcp;
	struct addr_port addr;           /* UDP */
	struct rs_udp *udp;              /* UDP: the socket it asked on (our source) */
	struct rs_tcpc *tc;              /* TCP: NULL once the connection went */
};

struct rs_uptcp;

struct rs_pending {
	struct rs_pending *next, *prev;
	struct resolver *r;
	struct rs_client cl;
	struct dns_query q;
	uint16_t id;                     /* ours, to the upstream */
	struct rs_server servers[RS_SERVERS];
	int n_servers;
	unsigned tried;                  /* bit per server */
	int cur, tries;
	uint64_t sent_ms, deadline_ms;
	uint32_t policy;                 /* r->cache.tag when the query was checked */
	struct rs_uptcp *ut;
	size_t qlen;
	uint8_t qmsg[DNS_HEADER_LEN + DNS_NAME_MAX + 4 + 11];
};

struct rs_uptcp {
	uv_tcp_t h;
	uv_connect_t conn;
	uv_write_t wr;
	struct rs_pending *p;            /* NULL once the query finished */
	struct addr_port to;
	size_t len;
	uint8_t *rbuf;
	uint8_t wbuf[2 + sizeof(((struct rs_pending *)0)->qmsg)];
};

struct rs_tcpc {
	struct rs_tcpc *next, *prev;
	struct resolver *r;
	uv_tcp_t h;
	uint64_t last_ms;
	int closing;
	size_t len;
	uint8_t buf[2 + DNS_TCP_MAX];
};

struct rs_write {
	uv_write_t w;
	uint8_t data[];
};

static uint8_t out_buf[2 + DNS_TCP_MAX];   /* one loop thread: one answer at a time */

static uint64_t now_ms(const struct resolver *r)
{
	return uv_now(r->loop);
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

/* ---- upstream health ---- */

static struct rs_upstream *health_of(struct resolver *r, const struct rs_server *a)
{
	for (size_t i = 0; i < r->n_health; i++)
		if (r->health[i].dot == a->dot && addr_equal(&r->health[i].addr, &a->addr))
			return &r->health[i];
	return NULL;
}

static int is_up(struct resolver *r, const struct rs_server *a)
{
	struct rs_upstream *u = health_of(r, a);

	return !u || u->down_until_ms <= now_ms(r);
}

static void mark_down_for(struct resolver *r, const struct rs_server *a, uint64_t ms)
{
	struct rs_upstream *u = health_of(r, a);

	if (u && u->down_until_ms < now_ms(r) + ms)
		u->down_until_ms = now_ms(r) + ms;
}

/* Silent or unreachable: skipped for RS_DOWN_MS. */
static void mark_down(struct resolver *r, const struct rs_server *a)
{
	mark_down_for(r, a, RS_DOWN_MS);
}

static void latency(struct resolver *r, uint64_t ms)
{
	static const unsigned bounds[RS_HIST_BUCKETS] = { 1, 5, 10, 25, 50, 100, 250, 500, 1000 };
	int b = 0;

	while (b < RS_HIST_BUCKETS && ms > bounds[b])
		b++;
	r->stats.hist[b]++;
	r->stats.latency_sum_ms += ms;
	r->stats.latency_n++;
}

/* ---- answering clients ---- */

static void tcpc_close(struct rs_tcpc *tc);

static void tcp_write_done(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

static void reply(struct resolver *r, const struct rs_client *cl, const uint8_t *msg, size_t len)
{
	uv_buf_t b;

	if (!cl->tcp) {
		if (cl->udp && r->started)
			rs_udp_send(cl->udp, &cl->addr, msg, len);
		return;
	}
	if (!cl->tc || cl->tc->closing)
		return;
	/* A client that sends and never reads: dropped before its answers pile up. */
	if (uv_stream_get_write_queue_size((uv_stream_t *)&cl->tc->h) > RS_TCP_QUEUE_MAX) {
		tcpc_close(cl->tc);
		return;
	}
	struct rs_write *w = malloc(sizeof(*w) + 2 + len);

	if (!w)
		return;
	dns_tcp_frame_put(w->data, len);
	memcpy(w->data + 2, msg, len);
	b = uv_buf_init((char *)w->data, (unsigned)(len + 2));
	if (uv_write(&w->w, (uv_stream_t *)&cl->tc->h, &b, 1, tcp_write_done))
		free(w);
}

/* One query's outcome into the log (a branch while it is off). */
static void qlog(struct resolver *r, const struct rs_client *cl, const struct dns_query *q,
		 enum rl_outcome o, const struct addr_port *up, uint64_t ms)
{
	if (r->log.cap)
		rl_add(&r->log, cl->tcp ? NULL : &cl->addr, q, o, up, ms);
}

static size_t limit_of(const struct rs_client *cl, const struct dns_query *q)
{
	return cl->tcp ? DNS_TCP_MAX : q->udp_limit;
}

static void reply_error(struct resolver *r, const struct rs_client *cl, const struct dns_query *q,
			unsigned rcode)
{
	int n = dns_build_error(q, rcode, out_buf, sizeof(out_buf));

	if (rcode == DNS_RCODE_SERVFAIL)
		r->stats.servfail++;
	if (n > 0)
		reply(r, cl, out_buf, (size_t)n);
}

/* An upstream's answer (ours or cached) to q, as rc_rewrite makes it. */
static void reply_upstream(struct resolver *r, const struct rs_client *cl, const struct dns_query *q,
			   const uint8_t *msg, size_t len, uint32_t age_s, int stale)
{
	int n = rc_rewrite(q, msg, len, age_s, stale, limit_of(cl, q), out_buf, sizeof(out_buf) - 2);

	if (n > 0)
		reply(r, cl, out_buf, (size_t)n);
}

static void our_soa(const struct dns_name *zone, struct dns_soa *soa)
{
	*soa = (struct dns_soa){ .zone = zone, .mname = zone, .rname = zone, .ttl = RS_NEG_TTL,
				 .serial = 1, .refresh = 3600, .retry = 600, .expire = 86400,
				 .minimum = RS_NEG_TTL };
}

static void reply_local(struct resolver *r, const struct rs_client *cl, const struct dns_query *q,
			const struct rz_answer *a)
{
	const struct dns_name *zone = r->zone.have_domain && dns_name_under(&q->qname, &r->zone.domain)
				      ? &r->zone.domain : &q->qname;
	struct dns_soa soa;
	int n;

	our_soa(zone, &soa);
	if (a->result == RZ_ANSWER)
		n = dns_build_answer(q, a->rr, a->n, DNS_BUILD_AA, limit_of(cl, q), out_buf,
				     sizeof(out_buf));
	else
		n = dns_build_negative(q, a->result == RZ_NXDOMAIN, &soa, DNS_BUILD_AA,
				       limit_of(cl, q), out_buf, sizeof(out_buf));
	if (n > 0)
		reply(r, cl, out_buf, (size_t)n);
}

static int is_blocked(const struct resolver *r, const struct dns_name *n)
{
	enum blocklist_verdict m = rr_rules_match(&r->rules, n->text, n->text_len);
	enum blocklist_verdict l = m == BLOCKLIST_ALLOWED ? BLOCKLIST_NONE
				   : blocklist_match(r->bl, n->text, n->text_len);

	return m != BLOCKLIST_ALLOWED && l != BLOCKLIST_ALLOWED &&
	       (m == BLOCKLIST_BLOCKED || l == BLOCKLIST_BLOCKED);
}

static void reply_blocked(struct resolver *r, const struct rs_client *cl, const struct dns_query *q)
{
	static const uint8_t zero[16];
	struct dns_rr rr = { .type = q->qtype, .ttl = RS_TTL, .rdata = zero };
	struct dns_soa soa;
	int n;

	our_soa(&q->qname, &soa);
	r->stats.blocked++;
	if (!r->nxdomain_mode && (q->qtype == DNS_TYPE_A || q->qtype == DNS_TYPE_AAAA)) {
		rr.rdlen = q->qtype == DNS_TYPE_A ? 4 : 16;
		n = dns_build_answer(q, &rr, 1, DNS_BUILD_AA, limit_of(cl, q), out_buf, sizeof(out_buf));
	} else {
		n = dns_build_negative(q, r->nxdomain_mode, &soa, DNS_BUILD_AA, limit_of(cl, q),
				       out_buf, sizeof(out_buf));
	}
	if (n > 0)
		reply(r, cl, out_buf, (size_t)n);
}

/* ---- queries in flight ---- */

static void uptcp_close_cb(uv_handle_t *h);

static void uptcp_detach(struct rs_pending *p)
{
	if (!p->ut)
		return;
	p->ut->p = NULL;
	if (!uv_is_closing((uv_handle_t *)&p->ut->h))
		uv_close((uv_handle_t *)&p->ut->h, uptcp_close_cb);
	p->ut = NULL;
}

static void pending_free(struct rs_pending *p)
{
	struct resolver *r = p->r;

	uptcp_detach(p);
	if (p->prev)
		p->prev->next = p->next;
	else
		r->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	r->n_pending--;
	free(p);
}

/* No upstream answered: a stale answer if there is one, else SERVFAIL now. */
static void pending_fail(struct rs_pending *p)
{
	struct resolver *r = p->r;
	struct rc_hit hit;

	if (rc_get(&r->cache, &p->q.qname, p->q.qtype, p->q.qclass, now_ms(r), 1, &hit) != RC_MISS) {
		r->stats.stale++;
		qlog(r, &p->cl, &p->q, RL_STALE, NULL, 0);
		reply_upstream(r, &p->cl, &p->q, hit.msg, hit.len, 0, 1);
	} else {
		qlog(r, &p->cl, &p->q, RL_SERVFAIL, NULL, 0);
		reply_error(r, &p->cl, &p->q, DNS_RCODE_SERVFAIL);
	}
	pending_free(p);
}

static int send_udp(struct resolver *r, struct rs_pending *p, const struct addr_port *to)
{
	uv_udp_t **h = to->family == AF_INET ? &r->up4 : &r->up6;
	struct sockaddr_storage ss;
	uv_buf_t b = uv_buf_init((char *)p->qmsg, (unsigned)p->qlen);
	int rc;

	if (!*h)
		return -ENETDOWN;
	addr_to_sockaddr(to, &ss);
	rc = uv_udp_try_send(*h, &b, 1, (const struct sockaddr *)&ss);
	return rc < 0 ? rc : 0;
}

static int send_tcp(struct resolver *r, struct rs_pending *p, const struct addr_port *to);

/* The next server that is up and not asked yet; SERVFAIL (or stale) when there is none. */
static void try_next(struct rs_pending *p)
{
	struct resolver *r = p->r;

	uptcp_detach(p);
	while (p->tries < RS_TRIES) {
		struct rs_upstream *u;
		int i, rc;

		for (i = 0; i < p->n_servers; i++)
			if (!(p->tried & (1u << i)) && is_up(r, &p->servers[i]))
				break;
		if (i == p->n_servers)
			break;
		p->tried |= 1u << i;
		p->cur = i;
		p->tries++;
		p->sent_ms = now_ms(r);
		u = health_of(r, &p->servers[i]);
		if (u)
			u->queries++;
		if (p->servers[i].dot)
			rc = rsdot_send(r, p->servers[i].dot, p->id, p->qmsg, p->qlen);
		else if (p->cl.tcp)
			rc = send_tcp(r, p, &p->servers[i].addr);
		else
			rc = send_udp(r, p, &p->servers[i].addr);
		p->deadline_ms = p->sent_ms + (p->servers[i].dot ? RS_DOT_TRY_MS
					       : p->cl.tcp ? RS_TCP_TRY_MS : RS_TRY_MS);
		if (!rc) {
			r->stats.forwarded++;
			return;
		}
		if (rc != -EBUSY)   /* a full DoT connection is busy, not down */
			mark_down(r, &p->servers[i]);
	}
	pending_fail(p);
}

/* An answer that passed the checks, from server index i. */
static void pending_answer(struct rs_pending *p, const uint8_t *msg, size_t len,
			   const struct dns_response *resp, int via_tcp)
{
	struct resolver *r = p->r;
	struct rs_upstream *u = health_of(r, &p->servers[p->cur]);
	uint32_t ttl;

	latency(r, now_ms(r) - p->sent_ms);
	if (u) {
		u->answers++;
		u->latency_sum_ms += now_ms(r) - p->sent_ms;
	}
	if ((resp->flags & DNS_R_TC) && !via_tcp) {
		/* Truncated: the same server over TCP (RFC 7766 5). */
		p->sent_ms = now_ms(r);
		p->deadline_ms = p->sent_ms + RS_TCP_TRY_MS;
		if (!send_tcp(r, p, &p->servers[p->cur].addr))
			return;
		try_next(p);
		return;
	}
	if (resp->rcode == DNS_RCODE_SERVFAIL || resp->rcode == DNS_RCODE_REFUSED) {
		/* The next server may know better. A SERVFAIL marks this one down briefly: it
		 * is often about one name (a broken zone), and a long mark would turn every
		 * other name into SERVFAIL too. REFUSED is its policy, not its health. */
		if (u)
			u->servfails++;
		if (resp->rcode == DNS_RCODE_SERVFAIL)
			mark_down_for(r, &p->servers[p->cur], RS_SERVFAIL_DOWN_MS);
		for (int i = 0; i < p->n_servers && p->tries < RS_TRIES; i++)
			if (!(p->tried & (1u << i)) && is_up(r, &p->servers[i])) {
				try_next(p);
				return;
			}
		/* The last one: its SERVFAIL goes back at once. */
		qlog(r, &p->cl, &p->q, resp->rcode == DNS_RCODE_SERVFAIL ? RL_SERVFAIL : RL_REFUSED,
		     &p->servers[p->cur].addr, now_ms(r) - p->sent_ms);
		reply_upstream(r, &p->cl, &p->q, msg, len, 0, 0);
		pending_free(p);
		return;
	}
	ttl = rc_ttl_of(resp);
	/* Cached entries are stamped as checked under the current policy: a list swapped in
	 * while this was upstream checks the name again before it is cached. */
	if (ttl && p->policy != r->cache.tag && is_blocked(r, &p->q.qname))
		ttl = 0;
	if (ttl) {
		size_t n = len;
		int s;

		memcpy(out_buf, msg, len);
		s = dns_msg_strip_opt(out_buf, len);
		if (s > 0)
			n = (size_t)s;
		if (s >= 0)
			rc_put(&r->cache, &p->q.qname, p->q.qtype, p->q.qclass, out_buf, n, ttl, now_ms(r));
	}
	qlog(r, &p->cl, &p->q, RL_FORWARDED, &p->servers[p->cur].addr, now_ms(r) - p->sent_ms);
	reply_upstream(r, &p->cl, &p->q, msg, len, 0, 0);
	pending_free(p);
}

static struct rs_pending *pending_by_id(struct resolver *r, uint16_t id)
{
	for (struct rs_pending *p = r->pending; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

/* Checks an upstream's message against what we asked; -1 when it is to be ignored. */
static int check_answer(struct rs_pending *p, const uint8_t *msg, size_t len,
			const struct addr_port *from, struct dns_response *resp)
{
	int asked = 0;

	if (from) {
		for (int i = 0; i < p->n_servers; i++)
			asked |= (p->tried & (1u << i)) && !p->servers[i].dot &&
				 addr_equal(&p->servers[i].addr, from);
		if (!asked)
			return -1;
	}
	if (dns_parse_response(msg, len, resp) || !(resp->flags & DNS_R_QUESTION) ||
	    resp->hdr.id != p->id || resp->qtype != p->q.qtype || resp->qclass != p->q.qclass ||
	    !dns_name_equal(&resp->qname, &p->q.qname))
		return -1;
	return 0;
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	static char buf[DNS_TCP_MAX];

	(void)h;
	(void)hint;
	*b = uv_buf_init(buf, sizeof(buf));
}

static void on_upstream_udp(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *sa,
			    unsigned flags)
{
	struct resolver *r = h->data;
	struct dns_response resp;
	struct addr_port from;
	struct rs_pending *p;

	(void)flags;
	if (n < DNS_HEADER_LEN || !sa || addr_from_sockaddr(sa, &from))
		return;
	p = pending_by_id(r, (uint16_t)((uint8_t)b->base[0] << 8 | (uint8_t)b->base[1]));
	if (!p || p->ut || check_answer(p, (const uint8_t *)b->base, (size_t)n, &from, &resp)) {
		struct rs_upstream *u = health_of(r, &(struct rs_server){ .addr = from });

		r->stats.bad_answers++;
		if (u)
			u->bad++;
		return;
	}
	pending_answer(p, (const uint8_t *)b->base, (size_t)n, &resp, 0);
}

/* ---- DNS over TLS (resolver_dot.c holds the connections) ---- */

static int tried_dot(const struct rs_pending *p, uint32_t id)
{
	for (int i = 0; i < p->n_servers; i++)
		if ((p->tried & (1u << i)) && p->servers[i].dot == id)
			return 1;
	return 0;
}

static struct rs_upstream *health_of_dot(struct resolver *r, uint32_t id)
{
	for (size_t i = 0; i < r->n_health; i++)
		if (r->health[i].dot == id)
			return &r->health[i];
	return NULL;
}

void rs_dot_answer(struct resolver *r, uint32_t id, const uint8_t *msg, size_t len)
{
	struct rs_pending *p = len >= DNS_HEADER_LEN ? pending_by_id(r, (uint16_t)(msg[0] << 8 | msg[1]))
						     : NULL;
	struct dns_response resp;

	if (!p || !tried_dot(p, id) || check_answer(p, msg, len, NULL, &resp)) {
		struct rs_upstream *u = health_of_dot(r, id);

		r->stats.bad_answers++;
		if (u)
			u->bad++;
		return;
	}
	pending_answer(p, msg, len, &resp, 1);   /* a stream: TC is not retried */
}

void rs_dot_failed(struct resolver *r, uint32_t id, int status, int down, const uint16_t *qids,
		   int n)
{
	struct rs_upstream *u = health_of_dot(r, id);

	if (down && u) {
		u->conn_errors++;
		if (status == -EPERM)
			u->verify_failures++;
		mark_down(r, &(struct rs_server){ .addr = u->addr, .dot = id });
	}
	for (int i = 0; i < n; i++) {
		struct rs_pending *p = pending_by_id(r, qids[i]);

		if (p && !p->ut && p->servers[p->cur].dot == id)
			try_next(p);
	}
}

/* ---- TCP to an upstream ---- */

static void uptcp_error(struct rs_uptcp *ut)
{
	struct rs_pending *p = ut->p;

	if (!p)
		return;
	mark_down(p->r, &(struct rs_server){ .addr = ut->to });
	try_next(p);   /* detaches and closes ut */
}

static void uptcp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct rs_uptcp *ut = h->data;

	(void)hint;
	if (!ut->rbuf)
		ut->rbuf = malloc(sizeof(out_buf));
	*b = ut->rbuf ? uv_buf_init((char *)ut->rbuf + ut->len, (unsigned)(sizeof(out_buf) - ut->len))
		      : uv_buf_init(NULL, 0);
}

static void uptcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct rs_uptcp *ut = s->data;
	struct rs_pending *p = ut->p;
	struct dns_response resp;
	uint8_t *rbuf;
	int flen;

	(void)b;
	if (!p || n == 0)
		return;
	if (n < 0) {
		uptcp_error(ut);
		return;
	}
	ut->len += (size_t)n;
	flen = dns_tcp_frame_len(ut->rbuf, ut->len);
	if (flen == -EAGAIN || (flen > 0 && ut->len < (size_t)flen + 2))
		return;
	if (flen < 0 || check_answer(p, ut->rbuf + 2, (size_t)flen, NULL, &resp)) {
		p->r->stats.bad_answers++;
		uptcp_error(ut);
		return;
	}
	/* pending_answer frees p and closes ut: the message is ours until it returns. */
	rbuf = ut->rbuf;
	ut->rbuf = NULL;
	pending_answer(p, rbuf + 2, (size_t)flen, &resp, 1);
	free(rbuf);
}

static void uptcp_written(uv_write_t *w, int status)
{
	struct rs_uptcp *ut = w->data;

	if (status && ut->p)
		uptcp_error(ut);
}

static void uptcp_connected(uv_connect_t *c, int status)
{
	struct rs_uptcp *ut = c->data;
	uv_buf_t b = uv_buf_init((char *)ut->wbuf, (unsigned)(ut->p ? ut->p->qlen + 2 : 0));

	if (!ut->p)
		return;
	if (status || uv_read_start((uv_stream_t *)&ut->h, uptcp_alloc, uptcp_read) ||
	    uv_write(&ut->wr, (uv_stream_t *)&ut->h, &b, 1, uptcp_written)) {
		uptcp_error(ut);
		return;
	}
}

static void uptcp_close_cb(uv_handle_t *h)
{
	struct rs_uptcp *ut = h->data;

	free(ut->rbuf);
	free(ut);
}

static int send_tcp(struct resolver *r, struct rs_pending *p, const struct addr_port *to)
{
	struct sockaddr_storage ss;
	struct rs_uptcp *ut;

	uptcp_detach(p);
	ut = calloc(1, sizeof(*ut));
	if (!ut)
		return -ENOMEM;
	if (uv_tcp_init(r->loop, &ut->h)) {
		free(ut);
		return -ENOMEM;
	}
	ut->h.data = ut->conn.data = ut->wr.data = ut;
	ut->p = p;
	ut->to = *to;
	dns_tcp_frame_put(ut->wbuf, p->qlen);
	memcpy(ut->wbuf + 2, p->qmsg, p->qlen);
	addr_to_sockaddr(to, &ss);
	if (uv_tcp_connect(&ut->conn, &ut->h, (const struct sockaddr *)&ss, uptcp_connected)) {
		ut->p = NULL;
		uv_close((uv_handle_t *)&ut->h, uptcp_close_cb);
		return -ECONNREFUSED;
	}
	p->ut = ut;
	return 0;
}

/* ---- queries from clients ---- */

/* The servers for a name: the longest route whose domain it is under, else the
 * upstreams. Count. */
static int servers_for(const struct resolver *r, const struct dns_name *n, struct rs_server *out)
{
	const struct nm_dns_route *best = NULL;
	size_t best_len = 0;
	int k = 0;

	for (size_t i = 0; i < r->n_routes; i++) {
		const struct nm_dns_route *rt = &r->routes[i];
		size_t dl = strlen(rt->domain);

		if (dl < best_len || dl > n->text_len ||
		    memcmp(n->text + n->text_len - dl, rt->domain, dl) ||
		    (dl < n->text_len && n->text[n->text_len - dl - 1] != '.'))
			continue;
		best = rt;
		best_len = dl;
	}
	if (best) {
		for (int i = 0; i < best->n_servers && k < RS_SERVERS; i++) {
			const struct dnspol_server *s = &best->servers[i];
			uint32_t dot = s->tls ? rsdot_find(r, s) : 0;

			if (!s->tls || dot)
				out[k++] = (struct rs_server){ .addr = s->addr, .dot = dot };
		}
		return k;
	}
	for (int i = 0; i < r->n_upstreams && k < RS_SERVERS; i++)
		out[k++] = r->upstreams[i];
	return k;
}

/* Our query to the upstream: our id, RD, CD as the client's, the question as the client
 * spelt it, our OPT (with the client's DO bit). */
static void build_forward(struct rs_pending *p, const uint8_t *msg)
{
	const struct dns_query *q = &p->q;
	size_t qn = (size_t)q->question_end - DNS_HEADER_LEN;
	uint8_t *m = p->qmsg;
	uint16_t flags = DNS_FLAG_RD | (q->hdr.flags & DNS_FLAG_CD);

	memset(m, 0, DNS_HEADER_LEN);
	m[0] = (uint8_t)(p->id >> 8);
	m[1] = (uint8_t)p->id;
	m[2] = (uint8_t)(flags >> 8);
	m[3] = (uint8_t)flags;
	m[5] = 1;
	memcpy(m + DNS_HEADER_LEN, msg + DNS_HEADER_LEN, qn);
	p->qlen = DNS_HEADER_LEN + qn;
	m[11] = 1;
	m += p->qlen;
	/* OPT: root owner, type 41, our size, ext-rcode 0, version 0, flags, no RDATA */
	m[0] = 0;
	m[1] = 0;
	m[2] = DNS_TYPE_OPT;
	m[3] = DNS_EDNS_UDP_SIZE >> 8;
	m[4] = DNS_EDNS_UDP_SIZE & 0xff;
	m[5] = m[6] = 0;
	m[7] = (uint8_t)((q->flags & DNS_Q_EDNS) && (q->edns.flags & DNS_EDNS_DO) ? 0x80 : 0);
	m[8] = 0;
	m[9] = m[10] = 0;
	p->qlen += 11;
}

static void forward(struct resolver *r, const struct rs_client *cl, const struct dns_query *q,
		    const uint8_t *msg)
{
	struct rs_server servers[RS_SERVERS];
	struct rs_pending *p;
	struct rc_hit hit;
	int n = servers_for(r, &q->qname, servers), any_up = 0;

	for (int i = 0; i < n; i++)
		any_up |= is_up(r, &servers[i]);
	if (!any_up || r->n_pending >= RS_PENDING_MAX) {
		/* Nothing to ask (or too much asked): stale if we have it, SERVFAIL now. */
		if (n && rc_get(&r->cache, &q->qname, q->qtype, q->qclass, now_ms(r), 1, &hit) != RC_MISS) {
			r->stats.stale++;
			qlog(r, cl, q, RL_STALE, NULL, 0);
			reply_upstream(r, cl, q, hit.msg, hit.len, 0, 1);
		} else {
			qlog(r, cl, q, n ? RL_SERVFAIL : RL_REFUSED, NULL, 0);
			reply_error(r, cl, q, n ? DNS_RCODE_SERVFAIL : DNS_RCODE_REFUSED);
		}
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		reply_error(r, cl, q, DNS_RCODE_SERVFAIL);
		return;
	}
	p->r = r;
	p->cl = *cl;
	p->q = *q;
	p->policy = r->cache.tag;
	memcpy(p->servers, servers, sizeof(servers[0]) * (size_t)n);
	p->n_servers = n;
	do
		p->id = (uint16_t)randombytes_uniform(65536);
	while (pending_by_id(r, p->id));
	build_forward(p, msg);
	p->next = r->pending;
	if (r->pending)
		r->pending->prev = p;
	r->pending = p;
	r->n_pending++;
	try_next(p);
}

static void count_type(struct resolver *r, uint16_t qtype)
{
	if (qtype == DNS_TYPE_A)
		r->stats.q_a++;
	else if (qtype == DNS_TYPE_AAAA)
		r->stats.q_aaaa++;
	else if (qtype == DNS_TYPE_PTR)
		r->stats.q_ptr++;
	else
		r->stats.q_other++;
}

static void handle_query(struct resolver *r, const struct rs_client *cl, const uint8_t *msg,
			 size_t len)
{
	struct dns_query q;
	struct rz_answer a;
	struct rc_hit hit;
	int rc = dns_parse_query(msg, len, &q), code, fresh;

	if (rc) {
		code = dns_query_rcode(rc);
		if (code < 0) {
			r->stats.dropped++;
			return;
		}
		r->stats.formerr++;
		reply_error(r, cl, &q, (unsigned)code);
		return;
	}
	count_type(r, q.qtype);
	if (q.qclass == DNS_CLASS_IN) {
		rz_lookup(&r->zone, &q.qname, q.qtype, &a);
		if (a.result != RZ_NOT_OURS) {
			r->stats.local++;
			qlog(r, cl, &q, RL_LOCAL, NULL, 0);
			reply_local(r, cl, &q, &a);
			return;
		}
	}
	/* The cache first: an entry stamped with the current policy generation was checked
	 * not blocked under it, so a hit skips the blocklist (its lookups are most of what a
	 * cached answer costs); an older stamp is checked once and restamped. */
	fresh = rc_get(&r->cache, &q.qname, q.qtype, q.qclass, now_ms(r), 0, &hit) == RC_FRESH;
	if (!(fresh && *hit.tag == r->cache.tag) && is_blocked(r, &q.qname)) {
		qlog(r, cl, &q, RL_BLOCKED, NULL, 0);
		reply_blocked(r, cl, &q);
		return;
	}
	if (fresh) {
		*hit.tag = r->cache.tag;
		r->stats.cached++;
		qlog(r, cl, &q, RL_CACHED, NULL, 0);
		reply_upstream(r, cl, &q, hit.msg, hit.len, hit.age_s, 0);
		return;
	}
	forward(r, cl, &q, msg);
}

/* A query from resolver_udp.c's batch: its answer goes out with the batch. */
static void on_udp(void *arg, struct rs_udp *u, const uint8_t *msg, size_t len,
		   const struct sockaddr *sa)
{
	struct rs_client cl = { .udp = u };

	if (addr_from_sockaddr(sa, &cl.addr))
		return;
	handle_query(arg, &cl, msg, len);
}

/* ---- TCP clients (RFC 7766: several queries per connection, answers in any order) ---- */

static void tcpc_close_cb(uv_handle_t *h)
{
	free(h->data);
}

static void tcpc_close(struct rs_tcpc *tc)
{
	struct resolver *r = tc->r;

	if (tc->closing)
		return;
	tc->closing = 1;
	for (struct rs_pending *p = r->pending; p; p = p->next)
		if (p->cl.tc == tc)
			p->cl.tc = NULL;
	if (tc->prev)
		tc->prev->next = tc->next;
	else
		r->tcpcs = tc->next;
	if (tc->next)
		tc->next->prev = tc->prev;
	r->n_tcpcs--;
	uv_close((uv_handle_t *)&tc->h, tcpc_close_cb);
}

static void tcpc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct rs_tcpc *tc = h->data;

	(void)hint;
	*b = uv_buf_init((char *)tc->buf + tc->len, (unsigned)(sizeof(tc->buf) - tc->len));
}

static void tcpc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct rs_tcpc *tc = s->data;
	struct rs_client cl = { .tcp = 1, .tc = tc };
	size_t off = 0;

	(void)b;
	if (n < 0) {
		tcpc_close(tc);
		return;
	}
	tc->len += (size_t)n;
	tc->last_ms = now_ms(tc->r);
	while (!tc->closing) {
		int flen = dns_tcp_frame_len(tc->buf + off, tc->len - off);

		if (flen == -EAGAIN || (flen > 0 && tc->len - off < (size_t)flen + 2))
			break;
		if (flen < 0) {
			tcpc_close(tc);
			return;
		}
		tc->r->stats.tcp_queries++;
		handle_query(tc->r, &cl, tc->buf + off + 2, (size_t)flen);
		off += (size_t)flen + 2;
	}
	if (tc->closing)
		return;
	memmove(tc->buf, tc->buf + off, tc->len - off);
	tc->len -= off;
}

static void on_tcp_conn(uv_stream_t *srv, int status)
{
	struct resolver *r = srv->data;
	struct rs_tcpc *tc;

	if (status)
		return;
	tc = calloc(1, sizeof(*tc));
	if (!tc || uv_tcp_init(r->loop, &tc->h)) {
		free(tc);
		return;
	}
	tc->h.data = tc;
	tc->r = r;
	tc->last_ms = now_ms(r);
	tc->next = r->tcpcs;
	if (r->tcpcs)
		r->tcpcs->prev = tc;
	r->tcpcs = tc;
	r->n_tcpcs++;
	if (uv_accept(srv, (uv_stream_t *)&tc->h) || r->n_tcpcs > RS_TCP_CLIENTS_MAX ||
	    uv_read_start((uv_stream_t *)&tc->h, tcpc_alloc, tcpc_read))
		tcpc_close(tc);
}

/* ---- the policy, rebuilt from the netmap ---- */

static void add_health(struct resolver *r, struct rs_upstream *old, size_t n_old,
		       const struct rs_server *a)
{
	if (health_of(r, a))
		return;
	struct rs_upstream *u = &r->health[r->n_health++];

	*u = (struct rs_upstream){ .addr = a->addr, .dot = a->dot };
	for (size_t i = 0; i < n_old; i++)
		if (old[i].dot == a->dot && addr_equal(&old[i].addr, &a->addr))
			*u = old[i];
}

/* The policy's server as we ask it: a DoT one gets its connection's id (0: no memory). */
static int server_of(struct resolver *r, const struct dnspol_server *s, struct rs_server *out)
{
	*out = (struct rs_server){ .addr = s->addr, .dot = s->tls ? rsdot_use(r, s) : 0 };
	return !s->tls || out->dot;
}

static int rebuild(struct resolver *r)
{
	const struct nm_dns *dns = r->nm->dns;
	struct rs_upstream *old = r->health;
	size_t n_old = r->n_health, want = NM_DNS_MAX_UPSTREAMS;
	int rc;

	r->dirty = 0;
	r->built_ms = now_ms(r);
	r->cache.tag++;                  /* the rules may block what the cache holds */
	rc = rz_build(&r->zone, r->nm);
	if (!rc)
		rc = rr_rules_build(&r->rules, dns ? dns->rules : NULL, dns ? dns->n_rules : 0);
	free(r->routes);
	r->routes = NULL;
	r->n_routes = 0;
	r->n_upstreams = 0;
	r->nxdomain_mode = dns && dns->nxdomain;
	if (dns && dns->n_routes) {
		r->routes = malloc(dns->n_routes * sizeof(*r->routes));
		if (r->routes) {
			memcpy(r->routes, dns->routes, dns->n_routes * sizeof(*r->routes));
			r->n_routes = dns->n_routes;
		} else {
			rc = -ENOMEM;
		}
	}
	rsdot_mark(r);
	for (int i = 0; dns && i < dns->n_upstreams; i++)
		if (server_of(r, &dns->upstreams[i], &r->upstreams[r->n_upstreams]))
			r->n_upstreams++;
	for (size_t i = 0; i < r->n_routes; i++)
		want += (size_t)r->routes[i].n_servers;
	r->health = calloc(want, sizeof(*r->health));
	r->n_health = 0;
	if (r->health) {
		struct rs_server srv;

		for (int i = 0; i < r->n_upstreams; i++)
			add_health(r, old, n_old, &r->upstreams[i]);
		for (size_t i = 0; i < r->n_routes; i++)
			for (int j = 0; j < r->routes[i].n_servers; j++)
				if (server_of(r, &r->routes[i].servers[j], &srv))
					add_health(r, old, n_old, &srv);
	} else {
		rc = -ENOMEM;
	}
	free(old);
	rsdot_sweep(r);
	if (rc)
		log_error("resolver: cannot rebuild the zone", "error=\"%s\"", strerror(-rc));
	else
		log_debug("resolver zone rebuilt", "records=%zu rules=%zu upstreams=%d routes=%zu",
			  r->zone.n_rrs, r->rules.n, r->n_upstreams, r->n_routes);
	return rc;
}

void resolver_update(struct resolver *r, const struct netmap *nm)
{
	r->nm = nm;
	r->dirty = 1;
	/* A burst of deltas (a fleet coming online) rebuilds once per RS_REBUILD_MS. */
	if (now_ms(r) - r->built_ms >= RS_REBUILD_MS || !r->built_ms)
		rebuild(r);
}

void resolver_set_blocklist(struct resolver *r, struct blocklist *bl)
{
	struct blocklist *old = r->bl;

	/* One loop thread: no lookup is inside the old list now. */
	r->bl = bl;
	r->cache.tag++;
	blocklist_free(old);
}

/* ---- the tick: upstream timeouts, idle TCP clients, a pending rebuild ---- */

static void on_tick(uv_timer_t *t)
{
	struct resolver *r = t->data;
	uint64_t now = now_ms(r);
	struct rs_pending *p, *next;
	struct rs_tcpc *tc, *tnext;

	for (p = r->pending; p; p = next) {
		next = p->next;
		if (now < p->deadline_ms)
			continue;
		struct rs_upstream *u = health_of(r, &p->servers[p->cur]);

		if (u)
			u->timeouts++;
		mark_down(r, &p->servers[p->cur]);
		try_next(p);   /* may free p; next was taken before */
	}
	rsdot_tick(r);
	for (tc = r->tcpcs; tc; tc = tnext) {
		tnext = tc->next;
		if (now - tc->last_ms >= RS_TCP_IDLE_MS)
			tcpc_close(tc);
	}
	if (r->dirty && r->nm && now - r->built_ms >= RS_REBUILD_MS)
		rebuild(r);
}

/* ---- lifecycle ---- */

void resolver_init(struct resolver *r, uv_loop_t *loop, struct vpnd *d)
{
	memset(r, 0, sizeof(*r));
	r->loop = loop;
	r->d = d;
	rz_init(&r->zone);
	rr_rules_init(&r->rules);
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	r->have_timer = 1;
	r->tls_ca = d ? d->opts.dns_tls_ca : NULL;
}

static int open_udp(struct resolver *r, uv_udp_t **out, const struct addr_port *bind_to,
		    uv_udp_recv_cb cb)
{
	struct sockaddr_storage ss;
	uv_udp_t *h = malloc(sizeof(*h));
	int rc;

	if (!h)
		return -ENOMEM;
	rc = uv_udp_init(r->loop, h);
	if (rc) {
		free(h);
		return rc;
	}
	h->data = r;
	addr_to_sockaddr(bind_to, &ss);
	rc = uv_udp_bind(h, (const struct sockaddr *)&ss, 0);
	if (!rc)
		rc = uv_udp_recv_start(h, alloc_cb, cb);
	if (rc) {
		uv_close((uv_handle_t *)h, free_handle);
		return rc;
	}
	*out = h;
	return 0;
}

static int open_tcp(struct resolver *r, uv_tcp_t **out, const struct addr_port *bind_to)
{
	struct sockaddr_storage ss;
	uv_tcp_t *h = malloc(sizeof(*h));
	int rc;

	if (!h)
		return -ENOMEM;
	rc = uv_tcp_init(r->loop, h);
	if (rc) {
		free(h);
		return rc;
	}
	h->data = r;
	addr_to_sockaddr(bind_to, &ss);
	rc = uv_tcp_bind(h, (const struct sockaddr *)&ss, 0);
	if (!rc)
		rc = uv_listen((uv_stream_t *)h, 64, on_tcp_conn);
	if (rc) {
		uv_close((uv_handle_t *)h, free_handle);
		return rc;
	}
	*out = h;
	return 0;
}

/* 100.100.100.100/32 on the WireGuard interface: it lives and goes with the interface
 * (a vpnd killed with -9 leaves nothing on lo), as Tailscale answers it on its tun; the
 * local route wins over the tailnet's 100.64/10 through the interface. */
static int add_listen_addr(struct resolver *r, const struct addr_port *a)
{
	int rc;

	if (!r->d || !r->d->nif || !r->d->ifindex || a->family != AF_INET ||
	    a->v4.s_addr != htonl(0x64646464))
		return 0;
	rc = netif_addr_add(r->d->nif, r->d->ifindex, AF_INET, &a->v4, 32);
	return rc == -EEXIST ? 0 : rc;
}

static void close_handle(uv_handle_t **h);

/* One listener: UDP and TCP on a (neither when one fails). */
static int listen_on(struct resolver *r, int i, const struct addr_port *a)
{
	char text[ADDR_TEXT_LEN];
	int rc;

	addr_format(a, text, sizeof(text));
	rc = rs_udp_open(r->loop, a, on_udp, r, &r->udp[i]);
	if (!rc)
		rc = open_tcp(r, &r->tcp[i], a);
	if (rc) {
		rs_udp_close(r->udp[i]);
		r->udp[i] = NULL;
		log_error("resolver: cannot listen", "addr=%s error=\"%s\"", text, uv_strerror(rc));
		return rc;
	}
	log_info("resolver listening", "addr=%s udp=yes tcp=yes", text);
	return 0;
}

int resolver_start(struct resolver *r, const struct addr_port *listen, int n)
{
	struct addr_port any4 = { .family = AF_INET }, any6 = { .family = AF_INET6 };
	int rc;

	if (r->started)
		return 0;
	if (n < 1 || n > RS_LISTEN_MAX)
		return -EINVAL;
	if (!r->cache.buckets && (rc = rc_init(&r->cache, RS_CACHE_MAX, RS_STALE_MAX_S)))
		return rc;
	rc = add_listen_addr(r, &listen[0]);
	if (!rc)
		rc = listen_on(r, 0, &listen[0]);
	if (!rc)
		rc = open_udp(r, &r->up4, &any4, on_upstream_udp);
	if (rc) {
		resolver_stop(r);
		return rc;
	}
	r->listen[0] = listen[0];
	r->n_listen = 1;
	for (int i = 1; i < n; i++)
		if (!listen_on(r, r->n_listen, &listen[i]))
			r->listen[r->n_listen++] = listen[i];
	if (open_udp(r, &r->up6, &any6, on_upstream_udp))
		log_info("resolver: no IPv6 socket for upstreams", "listeners=%d", r->n_listen);
	uv_timer_start(&r->timer, on_tick, RS_TICK_MS, RS_TICK_MS);
	r->started = 1;
	return 0;
}

static void close_handle(uv_handle_t **h)
{
	if (*h && !uv_is_closing(*h))
		uv_close(*h, free_handle);
	*h = NULL;
}

void resolver_stop(struct resolver *r)
{
	while (r->pending)
		pending_free(r->pending);
	while (r->tcpcs)
		tcpc_close(r->tcpcs);
	for (int i = 0; i < RS_LISTEN_MAX; i++) {
		rs_udp_close(r->udp[i]);
		r->udp[i] = NULL;
		close_handle((uv_handle_t **)&r->tcp[i]);
	}
	r->n_listen = 0;
	close_handle((uv_handle_t **)&r->up4);
	close_handle((uv_handle_t **)&r->up6);
	rsdot_stop(r);
	if (r->have_timer)
		uv_timer_stop(&r->timer);
	if (r->started)
		log_info("resolver stopped", "cached=%zu", r->cache.n);
	/* The next network may say other things of the same names. */
	rc_clear(&r->cache);
	r->nm = NULL;
	r->built_ms = 0;
	r->started = 0;
}

void resolver_close(struct resolver *r)
{
	resolver_stop(r);
	if (r->have_timer)
		uv_close((uv_handle_t *)&r->timer, NULL);
	r->have_timer = 0;
	rc_free(&r->cache);
	rz_free(&r->zone);
	rr_rules_free(&r->rules);
	rl_free(&r->log);
	blocklist_free(r->bl);
	r->bl = NULL;
	free(r->routes);
	r->routes = NULL;
	free(r->health);
	r->health = NULL;
	r->n_health = 0;
	rsdot_free(r);
}

/* ---- stats ---- */

void resolver_upstream_label(const struct resolver *r, const struct rs_upstream *u, char *out,
			     size_t size)
{
	const char *l = u->dot ? rsdot_label(r, u->dot) : NULL;

	if (l)
		snprintf(out, size, "%s", l);
	else
		addr_format(&u->addr, out, size);
}

json_t *resolver_stats_json(const struct resolver *r)
{
	static const char *const le[RS_HIST_BUCKETS + 1] = { "1", "5", "10", "25", "50", "100",
							     "250", "500", "1000", "+Inf" };
	const struct resolver_stats *s = &r->stats;
	const struct rs_udp_stats *us = rs_udp_stats();
	json_t *o = json_object(), *ups = json_array(), *hist = json_object();
	char text[DNSPOL_SERVER_TEXT];
	uint64_t cum = 0;

	for (size_t i = 0; i < r->n_health; i++) {
		const struct rs_upstream *u = &r->health[i];
		json_t *uo;

		resolver_upstream_label(r, u, text, sizeof(text));
		uo = json_pack("{s:s,s:b,s:I,s:I,s:I,s:I,s:I,s:I}", "addr", text,
			"up", u->down_until_ms <= uv_now(r->loop), "queries", (json_int_t)u->queries,
			"answers", (json_int_t)u->answers, "timeouts", (json_int_t)u->timeouts,
			"servfails", (json_int_t)u->servfails, "bad", (json_int_t)u->bad,
			"latency_ms_sum", (json_int_t)u->latency_sum_ms);
		if (u->dot) {
			json_object_set_new(uo, "conn_errors", json_integer((json_int_t)u->conn_errors));
			json_object_set_new(uo, "verify_failures",
					    json_integer((json_int_t)u->verify_failures));
		}
		json_array_append_new(ups, uo);
	}
	for (int b = 0; b <= RS_HIST_BUCKETS; b++) {
		cum += s->hist[b];
		json_object_set_new(hist, le[b], json_integer((json_int_t)cum));
	}
	json_object_set_new(o, "running", json_boolean(r->started));
	json_object_set_new(o, "queries", json_pack("{s:I,s:I,s:I,s:I}", "a", (json_int_t)s->q_a,
		"aaaa", (json_int_t)s->q_aaaa, "ptr", (json_int_t)s->q_ptr, "other",
		(json_int_t)s->q_other));
	json_object_set_new(o, "local", json_integer((json_int_t)s->local));
	json_object_set_new(o, "blocked", json_integer((json_int_t)s->blocked));
	json_object_set_new(o, "cached", json_integer((json_int_t)s->cached));
	json_object_set_new(o, "forwarded", json_integer((json_int_t)s->forwarded));
	json_object_set_new(o, "stale", json_integer((json_int_t)s->stale));
	json_object_set_new(o, "servfail", json_integer((json_int_t)s->servfail));
	json_object_set_new(o, "formerr", json_integer((json_int_t)s->formerr));
	json_object_set_new(o, "dropped", json_integer((json_int_t)s->dropped));
	json_object_set_new(o, "bad_answers", json_integer((json_int_t)s->bad_answers));
	json_object_set_new(o, "tcp_queries", json_integer((json_int_t)s->tcp_queries));
	json_object_set_new(o, "udp", json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}",
		"recv_calls", (json_int_t)us->recv_calls, "recv_msgs", (json_int_t)us->recv_msgs,
		"send_calls", (json_int_t)us->send_calls, "send_msgs", (json_int_t)us->send_msgs,
		"send_drops", (json_int_t)us->send_drops, "truncated", (json_int_t)us->truncated));
	json_object_set_new(o, "cache_entries", json_integer((json_int_t)r->cache.n));
	json_object_set_new(o, "cache_evictions", json_integer((json_int_t)r->cache.evictions));
	json_object_set_new(o, "zone_records", json_integer((json_int_t)r->zone.n_rrs));
	json_object_set_new(o, "upstreams", ups);
	json_object_set_new(o, "latency_ms_le", hist);
	json_object_set_new(o, "latency_ms_sum", json_integer((json_int_t)s->latency_sum_ms));
	json_object_set_new(o, "latency_count", json_integer((json_int_t)s->latency_n));
	return o;
}
