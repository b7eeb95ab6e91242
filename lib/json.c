/* json.c - checked access to JSON wire messages (jansson). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "meshvpn/json.h"

json_t *json_parse_object(const void *p, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *v;

	v = json_loadb(p, len, JSON_REJECT_DUPLICATES, &je);
	if (!v) {
		snprintf(err, errlen, "invalid JSON: %s", je.text);
		return NULL;
	}
	if (!json_is_object(v)) {
		snprintf(err, errlen, "invalid JSON: expected an object");
		json_decref(v);
		return NULL;
	}
	return v;
}

int json_get_str(const json_t *obj, const char *key, const char **out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return -ENOENT;
	if (!json_is_string(v))
		return -EINVAL;
	/* Embedded NULs would let two different strings compare equal in C. */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return -EINVAL;
	*out = json_string_value(v);
	return 0;
}

int json_get_int(const json_t *obj, const char *key, int64_t *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return -ENOENT;
	if (!json_is_integer(v))
		return -EINVAL;
	*out = json_integer_value(v);
	return 0;
}

int json_get_bool(const json_t *obj, const char *key, int *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return -ENOENT;
	if (!json_is_boolean(v))
		return -EINVAL;
	*out = json_is_true(v);
	return 0;
}

int json_get_key(const json_t *obj, const char *key, uint8_t out[KEY_LEN])
{
	const char *s;
	int rc = json_get_str(obj, key, &s);

	if (rc)
		return rc;
	return key_from_base64(s, out);
}

int json_set_key(json_t *obj, const char *key, const uint8_t k[KEY_LEN])
{
	char b64[KEY_B64_LEN];

	key_to_base64(k, b64);
	return json_object_set_new(obj, key, json_string(b64)) ? -ENOMEM : 0;
}

char *json_dump_compact(const json_t *v, size_t *len)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	if (s && len)
		*len = strlen(s);
	return s;
}

int json_copy_str(const json_t *obj, const char *key, char *out, size_t size, int required)
{
	const char *s;
	int rc = json_get_str(obj, key, &s);

	if (rc == -ENOENT && !required) {
		out[0] = 0;
		return 0;
	}
	if (rc || strlen(s) >= size)
		return -EINVAL;
	memcpy(out, s, strlen(s) + 1);
	return 0;
}
