/* hash.c - SHA-256 through libcrypto; see hash.h. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_CTX: a value, no allocation */
#include <openssl/sha.h>

#include "hash.h"

void
hash_init(struct hash_state *s)
{
	SHA256_Init(&s->c);
}

void
hash_update(struct hash_state *s, const void *p, size_t n)
{
	if (n)
		SHA256_Update(&s->c, p, n);
}

void
hash_final(struct hash_state *s, uint8_t out[HASH_LEN])
{
	SHA256_Final(out, &s->c);
}

void
hash_once(uint8_t out[HASH_LEN], const void *p, size_t n)
{
	SHA256(p, n, out);
}
