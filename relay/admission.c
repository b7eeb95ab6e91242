/* admission.c - which node keys may use the relay: the set coord's relay stream lists
 * (`full` replaces it, `add` / `remove` change it; a removed or no longer listed key is
 * disconnected at once), followed with lib/line_stream.c, which reconnects with backoff
 * while the last set keeps serving. Nobody is admitted before the first full list, unless
 * STATE/admitted (the set as of the last full list and the changes since, saved
 * atomically: at each full, and at most a second after a change) lets a restarted relay
 * serve while coord is down. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meshvpn/coord_proto.h"
#include "meshvpn/file.h"
#include "meshvpn/json.h"
#include "meshvpn/log.h"
#include "relay.h"

#define SAVED_MAGIC "meshvpn-relay-admitted 1\n"
#define LINE_MAX_BYTES ((size_t)RELAY_ADMIT_MAX * (KEY_B64_LEN + 2) + 64)
#define IDLE_TIMEOUT_MS 90000      /* coord keeps the stream alive every 30 s */
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define SAVE_DELAY_MS 1000        /* changes are saved together, this long after the first */

/* ---- the set ---- */

static void set_free(struct keymap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)   /* an emptied slot keeps a stale value */
			free(m->slots[i].value);
	keymap_free(m);
}

static int set_add(struct keymap *m, const uint8_t key[KEY_LEN])
{
	uint8_t *k;
	int rc;

	if (keymap_get(m, key))
		return 0;
	if (keymap_count(m) >= RELAY_ADMIT_MAX)
		return -E2BIG;
	k = malloc(KEY_LEN);
	if (!k)
		return -ENOMEM;
	memcpy(k, key, KEY_LEN);
	rc = keymap_put(m, k, k);
	if (rc)
		free(k);
	return rc;
}

int relay_admitted(const struct relay_server *s, const uint8_t key[KEY_LEN])
{
	return s->admission_ready && keymap_get(&s->admitted, key) != NULL;
}

int relay_admit_set(struct relay_server *s, const uint8_t (*keys)[KEY_LEN], size_t n)
{
	struct relay_client *cl, *next;
	struct keymap m;
	int rc = 0;

	if (n > RELAY_ADMIT_MAX)
		return -E2BIG;
	keymap_init(&m);
	for (size_t i = 0; i < n && !rc; i++)
		rc = set_add(&m, keys[i]);
	if (rc) {
		set_free(&m);
		return rc;
	}
	set_free(&s->admitted);
	s->admitted = m;
	s->admission_ready = 1;
	for (cl = s->clients; cl; cl = next) {
		next = cl->next;
		if (cl->state == RC_ACTIVE && !keymap_get(&s->admitted, cl->key))
			relay_client_kick(cl);
	}
	return 0;
}

int relay_admit_add(struct relay_server *s, const uint8_t key[KEY_LEN])
{
	return set_add(&s->admitted, key);
}

void relay_admit_remove(struct relay_server *s, const uint8_t key[KEY_LEN])
{
	uint8_t *k = keymap_get(&s->admitted, key);
	struct relay_client *cl;

	if (k) {
		keymap_del(&s->admitted, key);
		free(k);
	}
	cl = keymap_get(&s->by_key, key);
	if (cl)
		relay_client_kick(cl);
}

void relay_admit_free(struct relay_server *s)
{
	set_free(&s->admitted);
	s->admission_ready = 0;
}

/* ---- the saved copy ---- */

static int saved_write(struct relay_admission *a)
{
	const struct keymap *m = &a->srv->admitted;
	size_t len = sizeof(SAVED_MAGIC) - 1, cap = len + keymap_count(m) * KEY_B64_LEN + 1;
	struct iovec iov;
	char *buf = malloc(cap);
	int rc;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, SAVED_MAGIC, len);
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->slots[i].key)
			continue;
		key_to_base64(m->slots[i].key, buf + len);
		len += KEY_B64_LEN - 1;
		buf[len++] = '\n';
	}
	iov.iov_base = buf;
	iov.iov_len = len;
	rc = file_replace(a->path, &iov, 1, 0600, NULL);
	free(buf);
	return rc;
}

static int saved_parse(const char *text, size_t len, uint8_t (**out)[KEY_LEN], size_t *n_out)
{
	const size_t magic = sizeof(SAVED_MAGIC) - 1, row = KEY_B64_LEN;   /* 44 + '\n' */
	uint8_t (*keys)[KEY_LEN];
	char b64[KEY_B64_LEN];
	size_t n;

	if (len < magic || memcmp(text, SAVED_MAGIC, magic) || (len - magic) % row)
		return -EINVAL;
	n = (len - magic) / row;
	if (n > RELAY_ADMIT_MAX)
		return -EINVAL;
	keys = malloc((n ? n : 1) * KEY_LEN);
	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *p = text + magic + i * row;

		memcpy(b64, p, KEY_B64_LEN - 1);
		b64[KEY_B64_LEN - 1] = 0;
		if (p[KEY_B64_LEN - 1] != '\n' || key_from_base64(b64, keys[i])) {
			free(keys);
			return -EINVAL;
		}
	}
	*out = keys;
	*n_out = n;
	return 0;
}

int relay_admission_load(struct relay_admission *a)
{
	const size_t max = sizeof(SAVED_MAGIC) + (size_t)RELAY_ADMIT_MAX * KEY_B64_LEN;
	uint8_t (*keys)[KEY_LEN] = NULL;
	struct stat st;
	size_t n = 0, got = 0;
	char *text;
	int fd, rc;

	fd = open(a->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) || st.st_size < 0 || (size_t)st.st_size > max) {
		close(fd);
		return -EINVAL;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, text + got, (size_t)st.st_size - got);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	rc = got == (size_t)st.st_size ? saved_parse(text, got, &keys, &n) : -EIO;
	free(text);
	if (!rc)
		rc = relay_admit_set(a->srv, (const uint8_t (*)[KEY_LEN])keys, n);
	free(keys);
	if (!rc)
		log_info("admission list loaded from the last run", "keys=%zu", n);
	return rc;
}

static void save_now(struct relay_admission *a)
{
	int rc = saved_write(a);

	a->dirty = 0;
	uv_timer_stop(&a->save);
	if (rc)
		log_warn("cannot save the admission list", "path=%s error=\"%s\"", a->path,
			 strerror(-rc));
}

static void on_save(uv_timer_t *t)
{
	save_now(t->data);
}

static void save_soon(struct relay_admission *a)
{
	if (a->dirty)
		return;
	a->dirty = 1;
	uv_timer_start(&a->save, on_save, SAVE_DELAY_MS, 0);
}

/* ---- coord's stream ---- */

static int on_full(struct relay_admission *a, const json_t *nodes)
{
	size_t n = json_array_size(nodes);
	uint8_t (*keys)[KEY_LEN];
	int rc = 0;

	if (n > RELAY_ADMIT_MAX)
		return -E2BIG;
	keys = malloc((n ? n : 1) * KEY_LEN);
	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++) {
		const char *s = json_string_value(json_array_get(nodes, i));

		if (!s || key_from_base64(s, keys[i]))
			rc = -EBADMSG;
	}
	if (!rc)
		rc = relay_admit_set(a->srv, (const uint8_t (*)[KEY_LEN])keys, n);
	free(keys);
	if (rc)
		return rc;
	a->fulls++;
	save_now(a);
	log_info("admission list", "keys=%zu", n);
	return 0;
}

/* {"type":"resume","remove":[keys],"add":[keys]}: what changed since our version, in
 * that order. Every key is checked before any is applied. */
static int on_resume(struct relay_admission *a, const json_t *o)
{
	const json_t *lists[2] = { json_object_get(o, "remove"), json_object_get(o, "add") };
	uint8_t key[KEY_LEN];
	const json_t *v;
	size_t i;
	int rc = 0;

	for (int k = 0; k < 2; k++) {
		if (!json_is_array(lists[k]) || json_array_size(lists[k]) > RELAY_ADMIT_MAX)
			return -EBADMSG;
		json_array_foreach(lists[k], i, v)
			if (!json_is_string(v) || key_from_base64(json_string_value(v), key))
				return -EBADMSG;
	}
	json_array_foreach(lists[0], i, v) {
		key_from_base64(json_string_value(v), key);
		relay_admit_remove(a->srv, key);
	}
	json_array_foreach(lists[1], i, v) {
		key_from_base64(json_string_value(v), key);
		if (!rc)
			rc = relay_admit_add(a->srv, key);
	}
	a->resumes++;
	save_soon(a);
	log_info("admission list resumed", "removed=%zu added=%zu", json_array_size(lists[0]),
		 json_array_size(lists[1]));
	return rc;
}

/* The version after a line, and the epoch of a full: what the next connect asks with. */
static void take_version(struct relay_admission *a, const json_t *o, int full)
{
	const json_t *v = json_object_get(o, "v");
	const char *e;

	if (full) {
		a->version = 0;
		a->epoch[0] = 0;
		/* 16 hex digits, or none: it goes into our request target. */
		if (!json_get_str(o, "epoch", &e) && coord_epoch_valid(e))
			snprintf(a->epoch, sizeof(a->epoch), "%s", e);
	}
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		a->version = json_integer_value(v);
}

int relay_admission_line(struct relay_admission *a, const char *line, size_t len)
{
	char err[128], who[RELAY_KEY_SHORT];
	const char *type, *e;
	uint8_t key[KEY_LEN];
	json_t *o = json_parse_object(line, len, err, sizeof(err));
	json_t *nodes;
	int rc = -EBADMSG, full = 0;

	if (!o || json_get_str(o, "type", &type))
		goto out;
	if (!strcmp(type, "full")) {
		nodes = json_object_get(o, "nodes");
		rc = json_is_array(nodes) ? on_full(a, nodes) : -EBADMSG;
		full = 1;
	} else if (!strcmp(type, "resume")) {
		/* Only ever sent for the version and epoch we asked with. */
		if (!a->version || json_get_str(o, "epoch", &e) || strcmp(e, a->epoch))
			goto out;
		rc = on_resume(a, o);
	} else if (!strcmp(type, "add") || !strcmp(type, "remove")) {
		if (json_get_key(o, "node_key", key))
			goto out;
		relay_key_short(key, who);
		if (type[0] == 'a') {
			rc = relay_admit_add(a->srv, key);
		} else {
			relay_admit_remove(a->srv, key);
			rc = 0;
		}
		a->deltas++;
		save_soon(a);
		log_info(type[0] == 'a' ? "node admitted" : "node no longer admitted", "node=%s", who);
	} else {
		rc = 0;   /* keepalive, and types of later versions */
	}
	if (!rc)
		take_version(a, o, full);
out:
	json_decref(o);
	return rc;
}

static int ls_query(char *buf, size_t size, void *arg)
{
	struct relay_admission *a = arg;

	coord_resume_query(buf, size, a->version, a->epoch);
	return 0;
}

static void on_ls_line(struct line_stream *ls, const char *line, size_t len, void *arg)
{
	int rc = relay_admission_line(arg, line, len);

	if (rc)
		log_warn("relay stream line not taken", "error=\"%s\" bytes=%zu", strerror(-rc), len);
}

static void on_ls_event(struct line_stream *ls, enum line_stream_event ev, int detail, void *arg)
{
	struct relay_admission *a = arg;

	a->connected = ev == LINE_STREAM_CONNECTED;
	if (ev == LINE_STREAM_REFUSED && !ls->active)
		log_error("coord refuses this relay's token: serving the last admission list",
			  "status=%d", detail);
}

int relay_admission_init(struct relay_admission *a, struct relay_server *s, const char *state_dir)
{
	const struct line_stream_opts opts = {
		.path = COORD_PATH_RELAY_STREAM,
		.what = "relay",
		.peer = "coord",
		.max_line = LINE_MAX_BYTES,
		.idle_timeout_ms = IDLE_TIMEOUT_MS,
		.backoff_min_ms = BACKOFF_MIN_MS,
		.backoff_max_ms = BACKOFF_MAX_MS,
		.compress = 1,
		.on_line = on_ls_line,
		.on_event = on_ls_event,
		.query = ls_query,
		.arg = a,
	};

	int rc;

	memset(a, 0, sizeof(*a));
	a->srv = s;
	if ((size_t)snprintf(a->path, sizeof(a->path), "%s/admitted", state_dir) >= sizeof(a->path))
		return -ENAMETOOLONG;
	rc = line_stream_init(&a->ls, s->loop, &opts);
	if (rc)
		return rc;
	uv_timer_init(s->loop, &a->save);
	a->save.data = a;
	return 0;
}

int relay_admission_start(struct relay_admission *a, const char *url, const char *pin,
			  const char *token)
{
	return line_stream_start(&a->ls, url, pin, token);
}

void relay_admission_close(struct relay_admission *a)
{
	if (a->dirty)
		save_now(a);
	uv_close((uv_handle_t *)&a->save, NULL);
	line_stream_close(&a->ls);
	a->connected = 0;
}
