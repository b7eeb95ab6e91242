/* fuzz_relay_admission.c - the relay's side of coord's admission stream
 * (relay/admission.c, relay_admission_line) on arbitrary streams: the input is split at
 * '\n' into lines applied in order (full, add, remove, resume, keepalive, versions). After
 * every line the admitted set stays within RELAY_ADMIT_MAX, a resume is only taken for the
 * epoch of the last full, and the version never goes negative. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meshvpn/keymap.h"
#include "meshvpn/log.h"
#include "relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char dir[] = "/tmp/fuzz_relay_admission.XXXXXX";
	static int ready;
	struct relay_server s;
	struct relay_admission a;
	uv_loop_t loop;
	const char *p = (const char *)data, *end = p + size;

	if (!ready) {
		if (!mkdtemp(dir))
			abort();
		log_set_level(LOG_ERROR);
		ready = 1;
	}
	uv_loop_init(&loop);
	memset(&s, 0, sizeof(s));
	s.loop = &loop;
	keymap_init(&s.by_key);
	keymap_init(&s.admitted);
	if (relay_admission_init(&a, &s, dir))
		abort();
	for (int lines = 0; p < end && lines < 256; lines++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		relay_admission_line(&a, p, len);
		if (keymap_count(&s.admitted) > RELAY_ADMIT_MAX || a.version < 0 ||
		    !memchr(a.epoch, 0, sizeof(a.epoch)))
			abort();
		p = nl ? nl + 1 : end;
	}
	relay_admission_close(&a);
	relay_admit_free(&s);
	keymap_free(&s.by_key);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return 0;
}
