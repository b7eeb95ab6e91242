/* resolver_dot.h - the resolver's DNS-over-TLS upstreams (RFC 7858, issue 10): one
 * persistent TLS connection per upstream, opened on first use, queries pipelined on it
 * with 2-byte framing (RFC 7766 8), answers matched by id, closed when idle. The
 * certificate is checked against the policy's name (tls://ADDR#NAME), with the system's
 * CA bundle or --dns-tls-ca: no pin, no trust on first use (RFC 8310 strict profile).
 * Private to resolver.c and resolver_dot.c: each calls the other through these. */
#ifndef VPND_RESOLVER_DOT_H
#define VPND_RESOLVER_DOT_H

#include <stddef.h>
#include <stdint.h>

#include "meshvpn/dnspol.h"
#include "resolver.h"

#define RS_DOT_TRY_MS 2000            /* a query's try, the first one's handshake included */
#define RS_DOT_IDLE_MS 30000          /* a connection with nothing in flight this long: closed */
#define RS_DOT_INFLIGHT 64            /* queries in flight on one connection */
#define RS_DOT_QUERY_MAX 512          /* our queries are at most ~290 bytes */

/* ---- resolver_dot.c ---- */

/* A rebuild: rsdot_mark, then rsdot_use for each DoT server of the policy (its id, kept
 * from the last policy when the address and name are the same; 0 without memory), then
 * rsdot_sweep closes and forgets those no longer used. */
void rsdot_mark(struct resolver *r);
uint32_t rsdot_use(struct resolver *r, const struct dnspol_server *s);
void rsdot_sweep(struct resolver *r);
/* The id of a DoT server rsdot_use gave one, else 0. */
uint32_t rsdot_find(const struct resolver *r, const struct dnspol_server *s);
/* Sends our query (id qid) to DoT upstream id, connecting first when it has no
 * connection: 0, -EBUSY when its connection has RS_DOT_INFLIGHT queries out (it is busy,
 * not down), -ENOENT for an id no longer in the policy, else -errno (it is down). */
int rsdot_send(struct resolver *r, uint32_t id, uint16_t qid, const uint8_t *msg, size_t len);
/* From the resolver's tick: idle connections closed, handshakes past RS_DOT_TRY_MS given up. */
void rsdot_tick(struct resolver *r);
/* The resolver stops: every connection closed (the upstreams and their ids stay). */
void rsdot_stop(struct resolver *r);
void rsdot_free(struct resolver *r);
/* "tls://ADDR:PORT#NAME" of id, or NULL. */
const char *rsdot_label(const struct resolver *r, uint32_t id);

/* ---- resolver.c ---- */

/* A message on DoT upstream id's connection: checked like a UDP answer (our id, a query
 * that asked this upstream, the question) and delivered, else ignored and counted. */
void rs_dot_answer(struct resolver *r, uint32_t id, const uint8_t *msg, size_t len);
/* Upstream id's connection went (status: -errno, UV_EOF) with the queries qids still out
 * on it: those that wait on it go to their next server. down: it failed to connect,
 * handshake or verify (counted, -EPERM a certificate, and it is marked down); a
 * connection that just closed is not held against it. */
void rs_dot_failed(struct resolver *r, uint32_t id, int status, int down, const uint16_t *qids,
		   int n);

#endif
