/* json.h - small helpers on jansson for the wire messages: typed, checked field access. */
#ifndef MESHVPN_JSON_H
#define MESHVPN_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "meshvpn/keys.h"

/* Parses a request body: must be a JSON object, at most max_depth deep. NULL on error,
 * with a short reason in err (size errlen). */
json_t *json_parse_object(const void *p, size_t len, char *err, size_t errlen);

/* Getters: 0, -ENOENT when absent (out unchanged), -EINVAL when of the wrong type/shape. */
int json_get_str(const json_t *obj, const char *key, const char **out);
int json_get_int(const json_t *obj, const char *key, int64_t *out);
int json_get_bool(const json_t *obj, const char *key, int *out);
int json_get_key(const json_t *obj, const char *key, uint8_t out[KEY_LEN]);  /* base64 key */
/* A string copied into out (size bytes with the NUL): 0; absent: "" and 0 unless
 * required; -EINVAL for another type, a string that does not fit, or absent and required. */
int json_copy_str(const json_t *obj, const char *key, char *out, size_t size, int required);

/* Sets obj[key] to the base64 text of a key. */
int json_set_key(json_t *obj, const char *key, const uint8_t k[KEY_LEN]);
/* Compact serialisation, malloc'd; *len excludes the NUL. */
char *json_dump_compact(const json_t *v, size_t *len);

#endif
