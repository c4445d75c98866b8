/*
 * keys.h - the user's ed25519 signing key.
 *
 * The key lives in DIR/key (mode 0600, "babl-ed25519-key v1" then the
 * 64-byte secret key in hex) and DIR/key.pub (the public key in hex), where
 * DIR is paths_config_dir() unless BABL_KEY names the key file.
 */
#ifndef BABL_KEYS_H
#define BABL_KEYS_H

#include <stddef.h>
#include <stdint.h>

/* The key file's path into buf. */
int keys_path(char *buf, size_t n);

/* Load: 0, BABL_ENOENT if there is no key, BABL_ECORRUPT if unreadable. */
int keys_load(const char *path, uint8_t pk[32], uint8_t sk[64]);

/* Create a new key at path (refusing to replace one unless force):
 * 0, BABL_EEXIST, BABL_EIO. */
int keys_generate(const char *path, int force, uint8_t pk[32], uint8_t sk[64]);

#endif
