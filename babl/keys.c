/* keys.c - key files; see keys.h. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "err.h"
#include "keys.h"
#include "paths.h"

#define KEY_TAG "babl-ed25519-key v1\n"

int
keys_path(char *buf, size_t n)
{
	const char *k = getenv("BABL_KEY");
	char dir[4000];
	if (k && *k) {
		if (strlen(k) >= n)
			return BABL_ETOOBIG;
		strcpy(buf, k);
		return 0;
	}
	int rc = paths_config_dir(dir, sizeof dir);
	if (rc)
		return rc;
	if ((size_t)snprintf(buf, n, "%s/key", dir) >= n)
		return BABL_ETOOBIG;
	return 0;
}

int
keys_load(const char *path, uint8_t pk[32], uint8_t sk[64])
{
	char text[256] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? BABL_ENOENT : BABL_EIO;
	ssize_t n = read(fd, text, sizeof text - 1);
	close(fd);
	size_t tl = strlen(KEY_TAG);
	if (n < (ssize_t)(tl + 128) || memcmp(text, KEY_TAG, tl) != 0)
		return BABL_ECORRUPT;
	text[tl + 128] = 0;
	if (hex_decode(text + tl, sk, 64))
		return BABL_ECORRUPT;
	crypto_sign_ed25519_sk_to_pk(pk, sk);
	sodium_memzero(text, sizeof text);
	return 0;
}

static int
write_file(const char *path, const char *text, int mode, int force)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), mode);
	if (fd < 0)
		return errno == EEXIST ? BABL_EEXIST : BABL_EIO;
	size_t len = strlen(text);
	int rc = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : BABL_EIO;
	close(fd);
	return rc;
}

int
keys_generate(const char *path, int force, uint8_t pk[32], uint8_t sk[64])
{
	char dir[4096], text[256], pub[160], hex[129];
	int rc;
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if ((rc = paths_mkdirs(dir, 0700)))
			return rc;
	}
	if (sodium_init() < 0)
		return BABL_EINTERNAL;
	crypto_sign_keypair(pk, sk);
	hex_encode(sk, 64, hex);
	snprintf(text, sizeof text, "%s%s\n", KEY_TAG, hex);
	rc = write_file(path, text, 0600, force);
	sodium_memzero(text, sizeof text);
	sodium_memzero(hex, sizeof hex);
	if (rc)
		return rc;
	hex_encode(pk, 32, hex);
	snprintf(pub, sizeof pub, "%s\n", hex);
	snprintf(dir, sizeof dir, "%s.pub", path);
	return write_file(dir, pub, 0644, 1);
}
