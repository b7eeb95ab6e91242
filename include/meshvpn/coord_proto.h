/* coord_proto.h - the node ↔ coord protocol, shared by coord (verifies) and vpnd and the
 * test clients (sign): paths, the signed registration message, netmap line types. */
#ifndef MESHVPN_COORD_PROTO_H
#define MESHVPN_COORD_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "meshvpn/keys.h"

#define COORD_PATH_CHALLENGE "/v1/challenge"
#define COORD_PATH_REGISTER  "/v1/register"
#define COORD_PATH_MAP       "/v1/map"
/* Netmap versions (coord/netmap_ver.c): a stream resumes with ?since=V&epoch=E. */
#define COORD_EPOCH_LEN 16   /* lowercase hex digits */
/* 1 when e is an epoch: COORD_EPOCH_LEN lowercase hex digits. */
int coord_epoch_valid(const char *e);
/* "since=V&epoch=E" into out, or "" when there is nothing to resume from (no version, or
 * no valid epoch). */
void coord_resume_query(char *out, size_t size, int64_t version, const char *epoch);
#define COORD_PATH_ENDPOINTS "/v1/endpoints"
#define COORD_PATH_LOGOUT    "/v1/logout"
#define COORD_PATH_RELAY_STREAM "/v1/relay/stream"
#define COORD_PATH_RELAY_PIN "/v1/relay/pin"

/* A node's state as coord reports it (netmap self, registration answer) and vpnd
 * remembers it. The text is the protocol's; the enum is what code compares. */
enum node_status {
	NODE_STATUS_UNKNOWN = 0,           /* none yet, or a text this version does not know */
	NODE_STATUS_NEEDS_APPROVAL,
	NODE_STATUS_RUNNING,
	NODE_STATUS_EXPIRED,
	NODE_STATUS_REJECTED,
};
#define NODE_STATUS_TEXT_MAX 24

/* "needs-approval", "running", "expired", "rejected"; "" for UNKNOWN. */
const char *node_status_name(enum node_status s);
/* The enum of a protocol text; NODE_STATUS_UNKNOWN for anything else. */
enum node_status node_status_parse(const char *s);

#define COORD_CHALLENGE_HEX 64
#define COORD_TOKEN_MAX 96
/* A relay map entry's "stun" with its NUL: "[" host (up to 255) "]:" port. */
#define COORD_STUN_TEXT_MAX 264
#define COORD_STUN_MAX_ADDRS 4    /* "a:p,[v6]:p": a relay's STUN addresses */

/* The bytes the machine key signs at registration: binds the server's one-time
 * challenge to every field that matters, so a captured request can be neither
 * replayed nor altered. auth_key may be NULL (only its SHA-256 enters the message).
 * Returns the length written, or -ENOSPC. */
int coord_register_message(const char *challenge_hex, const char *node_key_b64,
			   const char *disco_key_b64, const char *machine_key_b64,
			   const char *hostname, const char *os, const char *auth_key,
			   char *out, size_t size);

/* The registration body for these keys, signed. NULL on allocation failure. */
json_t *coord_register_body(const struct node_keys *k, const char *challenge_hex,
			    const char *hostname, const char *os, const char *auth_key);

#endif
