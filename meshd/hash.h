/*
 * hash.h - the hash of bulk bytes: log entries' checksums and chain links
 * (entry.h) and the digests of runs' output (guard.h).  BLAKE3 (default
 * mode, 32-byte output), written here.  Every byte of every stream is hashed
 * twice (its input entry, its output digest), so this is a large share of a
 * stream's cost.  BLAKE3 splits its input into 1 KiB chunks that hash
 * independently; where the CPU has AVX-512, sixteen chunks are hashed at
 * once (eight with AVX2).  Hashing 64 MiB in 256 KiB pieces on one core of
 * the machines we run on: 3.1 GB/s with AVX-512 (its blocks loaded whole and
 * transposed; 1.9 to 2.1 when each word was gathered), 1.1 to 1.4 with
 * AVX2, where SHA-256 with the CPU's SHA extensions (what entries of format
 * 2 used) does 0.9 to 1.1.  Without either, a portable version does about
 * 0.3 GB/s.  Chosen at the first call from what the CPU says it has.
 *
 * Signatures, bundles and service ids keep libsodium's BLAKE2b (bundle.h):
 * they hash little, and their hashes are part of what users see.
 *
 * A hash_state is a plain value (about 1.8 KiB): no allocation, nothing to
 * free.
 */
#ifndef MESHD_HASH_H
#define MESHD_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_LEN 32

struct hash_state {
	uint32_t cv[8];        /* the open chunk's chaining value */
	uint64_t chunk;        /* the open chunk's index in the input */
	uint8_t buf[64];       /* the open chunk's block not yet compressed */
	uint8_t buflen;
	uint8_t blocks;        /* blocks of the open chunk compressed */
	uint8_t nstack;
	uint32_t stack[54][8]; /* chaining values of complete subtrees */
};

void hash_init(struct hash_state *s);
void hash_update(struct hash_state *s, const void *p, size_t n);
void hash_final(const struct hash_state *s, uint8_t out[HASH_LEN]);
void hash_once(uint8_t out[HASH_LEN], const void *p, size_t n);

/*
 * For tests: the widest vector code this CPU has, in 32-bit lanes (16 for
 * AVX-512, 8 for AVX2, 1 for none); and use no wider than n lanes from now
 * on (1: the portable code only).  The default is the widest.
 */
int hash_lanes_max(void);
void hash_lanes(int n);

#endif
