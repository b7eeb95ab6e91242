/* resolver_dot.c - DNS-over-TLS upstreams' connections (resolver_dot.h): one TLS
 * connection per upstream, queries pipelined on it, answers handed to resolver.c, which
 * owns the queries, their failover and the upstreams' health. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshvpn/log.h"
#include "meshvpn/tls.h"
#include "resolver_dot.h"

struct rs_flight {
	uint16_t qid;
	uint16_t len;                    /* of frame */
	uint64_t sent_ms;
	uint8_t frame[2 + RS_DOT_QUERY_MAX];   /* kept to send again on a new connection */
};

struct rs_dot {
	struct rs_dot *next;
	struct resolver *r;
	uint32_t id;
	int used;                        /* by the policy being built */
	struct dnspol_server srv;
	char label[DNSPOL_SERVER_TEXT];
	struct conn_connect *cc;         /* TCP connect and handshake under way */
	struct conn *c;                  /* open */
	uint64_t start_ms, last_ms;      /* connect started; last query or answer */
	uint64_t read_ms;                /* last bytes from the server */
	int resent;                      /* in flight sent again after a close, none answered */
	struct rs_flight fl[RS_DOT_INFLIGHT];
	int n_fl;
	uint8_t *wq;                     /* framed queries held for the handshake */
	size_t wq_len;
	size_t rlen;
	uint8_t rbuf[2 + DNS_TCP_MAX];
};

struct rs_dot_set {
	struct rs_dot *list;
	uint32_t next_id;
	struct tls_config *cfg;          /* made on the first connect */
};

static uint64_t now_ms(const struct resolver *r)
{
	return uv_now(r->loop);
}

static struct rs_dot_set *set_of(struct resolver *r)
{
	if (!r->dot)
		r->dot = calloc(1, sizeof(*r->dot));
	return r->dot;
}

static struct rs_dot *dot_by_id(const struct resolver *r, uint32_t id)
{
	for (struct rs_dot *d = r->dot ? r->dot->list : NULL; d; d = d->next)
		if (d->id == id)
			return d;
	return NULL;
}

static int same_server(const struct dnspol_server *a, const struct dnspol_server *b)
{
	return addr_equal(&a->addr, &b->addr) && !strcmp(a->tls_name, b->tls_name);
}

uint32_t rsdot_find(const struct resolver *r, const struct dnspol_server *s)
{
	for (struct rs_dot *d = r->dot ? r->dot->list : NULL; d; d = d->next)
		if (same_server(&d->srv, s))
			return d->id;
	return 0;
}

const char *rsdot_label(const struct resolver *r, uint32_t id)
{
	const struct rs_dot *d = dot_by_id(r, id);

	return d ? d->label : NULL;
}

/* ---- the connection ---- */

/* Forgets what is in flight (and held), into qids for resolver.c. Count. */
static int dot_drop(struct rs_dot *d, uint16_t qids[RS_DOT_INFLIGHT])
{
	int n = d->n_fl;

	for (int i = 0; i < n; i++)
		qids[i] = d->fl[i].qid;
	d->n_fl = 0;
	free(d->wq);
	d->wq = NULL;
	d->wq_len = 0;
	d->rlen = 0;
	return n;
}

static void dot_disconnect(struct rs_dot *d)
{
	if (d->cc)
		conn_connect_cancel(d->cc);
	d->cc = NULL;
	if (d->c)
		conn_close(d->c);
	d->c = NULL;
}

/* The connection failed or went: resolver.c moves its queries on. */
static void dot_failed(struct rs_dot *d, int status, int down)
{
	uint16_t qids[RS_DOT_INFLIGHT];
	int n;

	dot_disconnect(d);
	n = dot_drop(d, qids);
	if (down)
		log_warn("resolver: DNS-over-TLS upstream failed", "upstream=%s error=\"%s\"",
			 d->label, status == -EPERM ? "certificate not trusted for the name"
			 : strerror(-status));
	rs_dot_failed(d->r, d->id, status, down, qids, n);
}

static void flight_remove(struct rs_dot *d, uint16_t qid)
{
	for (int i = 0; i < d->n_fl; i++)
		if (d->fl[i].qid == qid) {
			d->fl[i] = d->fl[--d->n_fl];
			return;
		}
}

static void dot_read(struct conn *c, const uint8_t *buf, size_t len, void *arg)
{
	struct rs_dot *d = arg;
	size_t off = 0;

	(void)c;
	d->last_ms = d->read_ms = now_ms(d->r);
	d->resent = 0;
	while (len) {
		size_t take = sizeof(d->rbuf) - d->rlen < len ? sizeof(d->rbuf) - d->rlen : len;
		int flen;

		memcpy(d->rbuf + d->rlen, buf, take);
		d->rlen += take;
		buf += take;
		len -= take;
		off = 0;
		while ((flen = dns_tcp_frame_len(d->rbuf + off, d->rlen - off)) > 0 &&
		       d->rlen - off >= (size_t)flen + 2) {
			const uint8_t *m = d->rbuf + off + 2;

			flight_remove(d, (uint16_t)(m[0] << 8 | m[1]));
			off += (size_t)flen + 2;
			/* Checked there: an id we did not send, or junk, is counted and
			 * ignored. The connection stays ours: resolver.c never closes it. */
			rs_dot_answer(d->r, d->id, m, (size_t)flen);
		}
		if (flen == -EBADMSG) {
			/* A length shorter than a header: the stream cannot be framed. */
			rs_dot_answer(d->r, d->id, d->rbuf + off, d->rlen - off);
			dot_failed(d, -EBADMSG, 1);
			return;
		}
		memmove(d->rbuf, d->rbuf + off, d->rlen - off);
		d->rlen -= off;
	}
}

static int dot_connect(struct rs_dot *d);

/* The server closed while queries were out, maybe as they crossed its idle close
 * (RFC 7766 6.2.3): they go again, once, on a new connection. */
static int dot_resend(struct rs_dot *d)
{
	size_t n = 0;
	int rc;

	dot_disconnect(d);
	free(d->wq);
	d->wq_len = 0;
	for (int i = 0; i < d->n_fl; i++)
		n += d->fl[i].len;
	d->wq = malloc(n);
	if (!d->wq)
		return -ENOMEM;
	for (int i = 0; i < d->n_fl; i++) {
		memcpy(d->wq + d->wq_len, d->fl[i].frame, d->fl[i].len);
		d->wq_len += d->fl[i].len;
	}
	d->resent = 1;
	rc = dot_connect(d);
	return rc < 0 ? rc : 0;
}

static void dot_end(struct conn *c, int status, void *arg)
{
	struct rs_dot *d = arg;
	int rc;

	(void)c;
	if (status == UV_EOF && d->n_fl && !d->resent) {
		rc = dot_resend(d);
		if (!rc)
			return;
		status = rc;
	}
	/* A server closes idle connections (unbound after tcp-idle-timeout): the next
	 * query opens another. Only an error counts against it. */
	dot_failed(d, status, status != UV_EOF);
}

static void dot_connected(struct conn *c, int status, void *arg)
{
	struct rs_dot *d = arg;

	d->cc = NULL;
	if (status < 0) {
		dot_failed(d, status, 1);
		return;
	}
	d->c = c;
	d->last_ms = d->read_ms = now_ms(d->r);
	conn_set_callbacks(c, dot_read, dot_end, d);
	log_debug("resolver: DNS-over-TLS upstream connected", "upstream=%s suite=%s resumed=%d",
		  d->label, tls_conn_suite(c, NULL), tls_conn_resumed(c));
	if (d->wq_len && conn_write(c, d->wq, d->wq_len) < 0) {
		dot_failed(d, -EPIPE, 1);
		return;
	}
	free(d->wq);
	d->wq = NULL;
	d->wq_len = 0;
}

static int dot_connect(struct rs_dot *d)
{
	struct rs_dot_set *set = d->r->dot;
	char host[INET6_ADDRSTRLEN];
	const void *a = d->srv.addr.family == AF_INET ? (const void *)&d->srv.addr.v4
						       : (const void *)&d->srv.addr.v6;
	int rc;

	if (!set->cfg) {
		rc = tls_config_client_new(d->r->tls_ca, NULL, &set->cfg);
		if (rc < 0) {
			/* tls_config logged the file and why. */
			set->cfg = NULL;
			return rc;
		}
	}
	if (!inet_ntop(d->srv.addr.family, a, host, sizeof(host)))
		return -EAFNOSUPPORT;
	d->start_ms = now_ms(d->r);
	d->rlen = 0;
	return tls_connect_name(d->r->loop, set->cfg, host, d->srv.addr.port, d->srv.tls_name,
				dot_connected, d, &d->cc);
}

int rsdot_send(struct resolver *r, uint32_t id, uint16_t qid, const uint8_t *msg, size_t len)
{
	struct rs_dot *d = dot_by_id(r, id);
	struct rs_flight *f;
	uint8_t *q;
	int rc;

	if (!d)
		return -ENOENT;
	if (len > RS_DOT_QUERY_MAX)
		return -EMSGSIZE;
	if (d->n_fl >= RS_DOT_INFLIGHT)
		return -EBUSY;
	if (!d->c && !d->cc && (rc = dot_connect(d)) < 0)
		return rc;
	/* Our ids are unique among the queries in flight; one freed and reused while its
	 * old answer is still due takes the old slot. */
	flight_remove(d, qid);
	f = &d->fl[d->n_fl];
	dns_tcp_frame_put(f->frame, len);
	memcpy(f->frame + 2, msg, len);
	f->len = (uint16_t)(len + 2);
	if (d->c) {
		/* One write: one TLS record per query. */
		if (conn_write(d->c, f->frame, f->len) < 0) {
			dot_disconnect(d);
			return -EPIPE;
		}
	} else {
		q = realloc(d->wq, d->wq_len + f->len);
		if (!q)
			return -ENOMEM;
		memcpy(q + d->wq_len, f->frame, f->len);
		d->wq = q;
		d->wq_len += f->len;
	}
	f->qid = qid;
	f->sent_ms = now_ms(r);
	d->n_fl++;
	d->last_ms = now_ms(r);
	return 0;
}

void rsdot_tick(struct resolver *r)
{
	uint64_t now = now_ms(r);

	for (struct rs_dot *d = r->dot ? r->dot->list : NULL; d; d = d->next) {
		/* The queries' own deadlines marked it down already; the handshake is
		 * abandoned so the next try starts afresh. */
		if (d->cc && now - d->start_ms >= RS_DOT_TRY_MS) {
			dot_failed(d, -ETIMEDOUT, 1);
			continue;
		}
		/* A connection that took a query and said nothing since, for a try's time:
		 * stuck (the queries' deadlines marked it down); the next try reconnects. */
		for (int i = 0; d->c && i < d->n_fl; i++)
			if (now - d->fl[i].sent_ms >= RS_DOT_TRY_MS && d->read_ms < d->fl[i].sent_ms) {
				uint16_t qids[RS_DOT_INFLIGHT];

				log_info("resolver: DNS-over-TLS upstream silent, reconnecting later",
					 "upstream=%s in_flight=%d", d->label, d->n_fl);
				dot_disconnect(d);
				dot_drop(d, qids);
			}
		/* Answers that never came: forgotten, so they do not hold slots. */
		for (int i = 0; i < d->n_fl; i++)
			if (now - d->fl[i].sent_ms >= 2 * RS_DOT_TRY_MS)
				d->fl[i--] = d->fl[--d->n_fl];
		if (d->c && !d->n_fl && now - d->last_ms >= RS_DOT_IDLE_MS) {
			log_debug("resolver: DNS-over-TLS upstream idle, closed", "upstream=%s",
				  d->label);
			dot_disconnect(d);
		}
	}
}

/* ---- the set, with the policy ---- */

void rsdot_mark(struct resolver *r)
{
	for (struct rs_dot *d = r->dot ? r->dot->list : NULL; d; d = d->next)
		d->used = 0;
}

uint32_t rsdot_use(struct resolver *r, const struct dnspol_server *s)
{
	struct rs_dot_set *set = set_of(r);
	char a[ADDR_TEXT_LEN];
	struct rs_dot *d;
	uint32_t id = rsdot_find(r, s);

	if (id) {
		dot_by_id(r, id)->used = 1;
		return id;
	}
	d = set ? calloc(1, sizeof(*d)) : NULL;
	if (!d)
		return 0;
	d->r = r;
	d->srv = *s;
	d->used = 1;
	if (!++set->next_id)
		set->next_id = 1;
	d->id = set->next_id;
	addr_format(&s->addr, a, sizeof(a));
	snprintf(d->label, sizeof(d->label), "tls://%s#%s", a, s->tls_name);
	d->next = set->list;
	set->list = d;
	return d->id;
}

static void dot_free(struct rs_dot *d)
{
	uint16_t qids[RS_DOT_INFLIGHT];

	dot_disconnect(d);
	dot_drop(d, qids);
	free(d);
}

void rsdot_sweep(struct resolver *r)
{
	struct rs_dot **pp = r->dot ? &r->dot->list : NULL;

	while (pp && *pp) {
		struct rs_dot *d = *pp;

		if (d->used) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		dot_free(d);   /* its queries time out and move on in resolver.c */
	}
}

void rsdot_stop(struct resolver *r)
{
	uint16_t qids[RS_DOT_INFLIGHT];

	for (struct rs_dot *d = r->dot ? r->dot->list : NULL; d; d = d->next) {
		dot_disconnect(d);
		dot_drop(d, qids);
	}
}

void rsdot_free(struct resolver *r)
{
	if (!r->dot)
		return;
	while (r->dot->list) {
		struct rs_dot *d = r->dot->list;

		r->dot->list = d->next;
		dot_free(d);
	}
	tls_config_free(r->dot->cfg);
	free(r->dot);
	r->dot = NULL;
}
