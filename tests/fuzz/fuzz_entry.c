// fuzz-sources: meshd/entry.c meshd/hash.c
// fuzz-libs: -lsodium -lcrypto
/*
 * fuzz_entry.c - libFuzzer harness for the log entry codec.
 *
 * The input is a stored entry.  entry_open must take any bytes without
 * crashing; when it opens one, every payload decoder runs on it (the one for
 * its type, and the others, which must refuse it), and a decoded entry is
 * encoded again, sealed with the same header fields and opened, which must
 * give back the same bytes and hash.
 *
 * Random bytes almost never carry a correct checksum, so each input is also
 * tried a second time with its checksum field (bytes 56..88) set to the right
 * hash: that way the header checks and the payload decoders see arbitrary
 * bytes too.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "hash.h"
#include "err.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A call is large: decoded messages live in static storage. */
static struct ent_call call;
static struct ent_deploy dep;
static struct ent_outcome out;

/* Seal the payload in b with e's header fields; it must reopen as e did
 * (with e's hash, when e was of the format entry_seal writes). */
static void
reseal(const struct entry *e, const struct wbuf *b, uint8_t format)
{
	struct entry s = *e;
	uint8_t hdr[ENTRY_HDR];
	struct iovec iov = {b->p, b->len};
	if (b->len != e->len || (b->len && memcmp(b->p, e->payload, b->len) != 0))
		abort();
	entry_seal(&s, &iov, 1, hdr);
	if (format == ENTRY_FORMAT && memcmp(s.hash, e->hash, 32) != 0)
		abort();
	uint8_t *q = malloc(ENTRY_HDR + b->len);
	if (!q)
		abort();
	memcpy(q, hdr, ENTRY_HDR);
	if (b->len)
		memcpy(q + ENTRY_HDR, b->p, b->len);
	struct entry again;
	if (entry_open(q, ENTRY_HDR + b->len, &again) != 0)
		abort();
	free(q);
}

/* Open p[0..size) and, if it opens, run every decoder on it. */
static void
try_entry(const uint8_t *p, size_t size)
{
	struct entry e;
	struct wbuf b = {0};
	uint64_t ref;
	const uint8_t *rest;
	size_t rest_len;
	uint8_t pre[8];

	int rc = entry_open(p, size, &e);
	if (rc != 0 && rc != BABL_EPROTO && rc != BABL_ECORRUPT)
		abort();
	if (rc != 0)
		return;
	if (e.len != size - ENTRY_HDR || e.payload != p + ENTRY_HDR ||
	    e.type == 0 || e.type > ENT_MAX)
		abort();
	(void)entry_type_name(e.type);
	int d = ent_dec_deploy(&e, &dep);
	int c = ent_dec_call(&e, &call);
	int o = ent_dec_outcome(&e, &out);
	int r = ent_dec_ref(&e, &ref, &rest, &rest_len);
	/* Only the decoder for the entry's own type may accept it. */
	if ((d == 0 && e.type != ENT_DEPLOY) || (c == 0 && e.type != ENT_CALL) ||
	    (o == 0 && e.type != ENT_OUTCOME) ||
	    (r == 0 && e.type != ENT_INPUT && e.type != ENT_EOF &&
	    e.type != ENT_CANCEL))
		abort();
	if (d == 0) {
		if (ent_enc_deploy(&b, dep.time_ms, &dep.d) != 0)
			abort();
		reseal(&e, &b, p[0]);
	}
	if (c == 0) {
		wbuf_reset(&b);
		if (ent_enc_call(&b, &call) != 0)
			abort();
		reseal(&e, &b, p[0]);
	}
	if (o == 0) {
		wbuf_reset(&b);
		if (ent_enc_outcome(&b, &out) != 0)
			abort();
		reseal(&e, &b, p[0]);
	}
	if (r == 0) {
		if (rest != e.payload + 8 || rest_len != e.len - 8)
			abort();
		ent_input_prefix(pre, ref);
		if (memcmp(pre, e.payload, 8) != 0)
			abort();
	}
	wbuf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		if (sodium_init() < 0)
			abort();
		ready = 1;
	}
	/* An exact copy, so that ASan sees any read past the end. */
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		abort();
	if (size)
		memcpy(p, data, size);
	try_entry(p, size);
	if (size >= ENTRY_HDR) {
		if (p[0] == ENTRY_FORMAT_B2) {
			crypto_generichash_state st;
			crypto_generichash_init(&st, NULL, 0, 32);
			crypto_generichash_update(&st, p, 56);
			crypto_generichash_update(&st, p + ENTRY_HDR, size - ENTRY_HDR);
			crypto_generichash_final(&st, p + 56, 32);
		} else if (p[0] == ENTRY_FORMAT_SHA) {
			crypto_hash_sha256_state st;
			crypto_hash_sha256_init(&st);
			crypto_hash_sha256_update(&st, p, 56);
			crypto_hash_sha256_update(&st, p + ENTRY_HDR, size - ENTRY_HDR);
			crypto_hash_sha256_final(&st, p + 56);
		} else {
			struct hash_state st;
			hash_init(&st);
			hash_update(&st, p, 56);
			hash_update(&st, p + ENTRY_HDR, size - ENTRY_HDR);
			hash_final(&st, p + 56);
		}
		try_entry(p, size);
	}
	free(p);
	return 0;
}
