/* relay_key.c - the relay's own X25519 key pair (it opens the nodes' hellos): STATE/relay.key,
 * 0600, base64 of the private key, made on the first start and written atomically. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "meshvpn/file.h"
#include "meshvpn/log.h"
#include "relay.h"

#define KEY_PREFIX "relay "

static int key_create(const char *path, uint8_t pub[KEY_LEN], uint8_t priv[KEY_LEN])
{
	char text[sizeof(KEY_PREFIX) + KEY_B64_LEN + 1];
	struct iovec iov;
	int rc;

	crypto_box_keypair(pub, priv);
	snprintf(text, sizeof(text), KEY_PREFIX);
	key_to_base64(priv, text + strlen(KEY_PREFIX));
	strcat(text, "\n");
	iov.iov_base = text;
	iov.iov_len = strlen(text);
	rc = file_replace(path, &iov, 1, 0600, NULL);
	sodium_memzero(text, sizeof(text));
	if (!rc)
		log_info("relay key created", "path=%s", path);
	return rc;
}

int relay_key_load(const char *dir, uint8_t pub[KEY_LEN], uint8_t priv[KEY_LEN])
{
	char path[4096], text[128];
	ssize_t n;
	int fd, rc = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/relay.key", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? key_create(path, pub, priv) : -errno;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0) {
		rc = -EINVAL;
		goto out;
	}
	text[n] = 0;
	text[strcspn(text, "\n")] = 0;
	if (strncmp(text, KEY_PREFIX, strlen(KEY_PREFIX)) ||
	    key_from_base64(text + strlen(KEY_PREFIX), priv)) {
		rc = -EINVAL;
		goto out;
	}
	crypto_scalarmult_base(pub, priv);
out:
	sodium_memzero(text, sizeof(text));
	if (rc)
		sodium_memzero(priv, KEY_LEN);
	return rc;
}
