/* fuzz_tls_record.c - lib/tls_record.c on arbitrary bytes: the first byte picks the suite
 * (even: AES-256-GCM, odd: ChaCha20-Poly1305), the rest is a stream of records parsed one
 * by one and opened under a fixed key (key 00..1f, salt a0a1a2a3 or IV 70..7b, sequence
 * from 0, as the corpus was sealed), alerts parsed. The parser must stay inside what it
 * was given, and whatever opens must seal back to the same record. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../../lib/tls_record.h"

static uint8_t out[TLS_REC_BODY_MAX], again[TLS_REC_HDR + TLS_REC_BODY_MAX];

static int dir_init(struct tls_rec_dir *d, enum tls_rec_suite suite)
{
	uint8_t key[32], iv[12];

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 12; i++)
		iv[i] = (uint8_t)(suite == TLS_REC_AES256GCM ? 0xa0 + i : 0x70 + i);
	return tls_rec_dir_init(d, suite, key, 32, iv, suite == TLS_REC_AES256GCM ? 4 : 12, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum tls_rec_suite suite;
	struct tls_rec_dir rd, wd;
	struct tls_rec_hdr h;
	uint8_t level, desc;
	size_t off, len;
	int n;

	if (!size || sodium_init() < 0)
		return 0;
	suite = data[0] & 1 ? TLS_REC_CHACHAPOLY : TLS_REC_AES256GCM;
	if (suite == TLS_REC_AES256GCM && !crypto_aead_aes256gcm_is_available())
		suite = TLS_REC_CHACHAPOLY;
	if (dir_init(&rd, suite) || dir_init(&wd, suite))
		abort();
	data++;
	size--;
	for (off = 0; off < size; off += (size_t)n) {
		n = tls_record_parse(data + off, size - off, &h);
		if (n < 0 && n != -EPROTO && n != -EMSGSIZE)
			abort();
		if (n <= 0)
			break;
		if ((size_t)n > size - off || (size_t)n != TLS_REC_HDR + h.len ||
		    h.len > TLS_REC_BODY_MAX)
			abort();
		if (tls_record_open(&rd, data + off, (size_t)n, out, &len))
			continue;
		if (len > TLS_REC_PLAIN_MAX || len + tls_record_overhead(suite) != (size_t)n)
			abort();
		/* Our explicit nonce is the sequence number: a record that opens with another
		 * (a stock peer's choice) seals back differently, so only compare ours. */
		wd.seq = rd.seq - 1;
		if (tls_record_seal(&wd, h.type, out, len, again) != (size_t)n)
			abort();
		if (suite == TLS_REC_CHACHAPOLY && memcmp(again, data + off, (size_t)n))
			abort();
		if (h.type == TLS_REC_ALERT)
			tls_record_alert_parse(out, len, &level, &desc);
	}
	tls_rec_dir_wipe(&rd);
	tls_rec_dir_wipe(&wd);
	return 0;
}
