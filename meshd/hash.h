/*
 * hash.h - the hash of bulk bytes: log entries' checksums and chain links
 * (entry.h) and the digests of runs' output (guard.h).  SHA-256, computed by
 * libcrypto, which uses the CPU's SHA extensions where it has them: about
 * 1.0 GB/s on one core of the machines we run on, where BLAKE2b (libsodium)
 * does about 0.6 GB/s; every byte of every stream is hashed twice (its input
 * entry, its output digest), so this is a large share of a stream's cost.
 *
 * Signatures, bundles and service ids keep libsodium's BLAKE2b (bundle.h):
 * they hash little, and their hashes are part of what users see.
 *
 * A hash_state is a plain value: no allocation, nothing to free.
 */
#ifndef MESHD_HASH_H
#define MESHD_HASH_H

#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>

#define HASH_LEN 32

struct hash_state {
	SHA256_CTX c;
};

void hash_init(struct hash_state *s);
void hash_update(struct hash_state *s, const void *p, size_t n);
void hash_final(struct hash_state *s, uint8_t out[HASH_LEN]);
void hash_once(uint8_t out[HASH_LEN], const void *p, size_t n);

#endif
