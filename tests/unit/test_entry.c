/*
 * test_entry.c - the log entry codec: seal and open round trips for every
 * entry type's payload, the header layout and checksum, hostile entries
 * (every single-byte change, every truncation, bad header fields even when
 * the checksum is made to match), and the payload decoders on short and
 * overlong payloads.
 *
 * Bytes handed to entry_open or a decoder are first copied into an
 * allocation of exactly their size, so that a run under ASan reports any
 * read past their end.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "err.h"
#include "hash.h"
#include "wire.h"

#include "t.h"

/* Binary bytes with NULs and high bits, for payloads and strings. */
static const uint8_t bin[] = {'a', 0, 'b', 0, 0xff, 0, 'z', 0x80, 0};

/* Fill p with a pattern that depends on seed, so that fields differ. */
static void
fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + 1);
}

/* A copy of n bytes in an allocation of exactly n bytes (at least 1). */
static uint8_t *
exact_copy(const void *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);
	T_ASSERT(q);
	if (n)
		memcpy(q, p, n);
	return q;
}

static int
str_is(struct wire_str s, const void *p, size_t n)
{
	return s.len == n && (n == 0 || memcmp(s.p, p, n) == 0);
}

static struct wire_str
wstr(const void *p, size_t n)
{
	struct wire_str s = {p, n};
	return s;
}

/*
 * Seal an entry of the given type, term and index whose prev is a pattern
 * from the index, and return the whole stored form (header then payload) in
 * an exact allocation of ENTRY_HDR + n bytes.  *e is the sealed entry.
 */
static uint8_t *
seal_whole(uint8_t type, uint64_t term, uint64_t index, const void *payload,
    size_t n, struct entry *e)
{
	uint8_t hdr[ENTRY_HDR];
	struct iovec iov = {(void *)payload, n};
	memset(e, 0, sizeof *e);
	e->type = type;
	e->term = term;
	e->index = index;
	e->len = (uint32_t)n;
	fill(e->prev, 32, (unsigned)index + 40);
	entry_seal(e, &iov, 1, hdr);
	uint8_t *buf = malloc(ENTRY_HDR + n);
	T_ASSERT(buf);
	memcpy(buf, hdr, ENTRY_HDR);
	if (n)
		memcpy(buf + ENTRY_HDR, payload, n);
	return buf;
}

/* Open a stored entry and check that every field came back as sealed. */
static void
open_same(const uint8_t *buf, const struct entry *sealed, struct entry *e)
{
	T_EQ_INT(entry_open(buf, ENTRY_HDR + sealed->len, e), 0);
	T_EQ_INT(e->type, sealed->type);
	T_EQ_INT(e->term, sealed->term);
	T_EQ_INT(e->index, sealed->index);
	T_EQ_INT(e->len, sealed->len);
	T_EQ_MEM(e->prev, sealed->prev, 32);
	T_EQ_MEM(e->hash, sealed->hash, 32);
	T_ASSERT(e->payload == buf + ENTRY_HDR);
}

/* An entry of a type whose payload is p[0..n), in exact storage, unsealed. */
static struct entry
raw_entry(uint8_t type, const uint8_t *p, size_t n)
{
	struct entry e;
	memset(&e, 0, sizeof e);
	e.type = type;
	e.len = (uint32_t)n;
	e.payload = p;
	return e;
}

/* Decoded messages live in static storage: a call is large. */
static struct ent_call call_in, call_out;
static struct ent_deploy dep_out;
static struct ent_outcome out_out;
static uint8_t owner[32], dprev[32], sig[64];

static void
deploy_sample(struct wire_deploy *d, const void *bundle, size_t n)
{
	fill(owner, 32, 1);
	fill(dprev, 32, 2);
	fill(sig, 64, 3);
	d->bundle = wstr(bundle, n);
	d->owner = owner;
	d->version = 0x0102030405060708ull;
	d->prev = dprev;
	d->sig = sig;
}

static void
call_sample(struct ent_call *m, uint32_t nargs)
{
	static const char *words[] = {"-n", "", "hello world", "--x=1"};
	memset(m, 0, sizeof *m);
	fill(m->sid, 32, 5);
	fill(m->vid, 32, 6);
	m->time_ms = 1700000000123ull;
	m->seed = 0xfedcba9876543210ull;
	fill(m->reqid, ENT_REQID_LEN, 7);
	m->timeout_ms = 30000;
	m->idkey = wstr(bin, sizeof bin);
	m->nargs = nargs;
	for (uint32_t i = 0; i < nargs; i++) {
		if (i % 5 == 4)
			m->args[i] = wstr(bin, sizeof bin);
		else
			m->args[i] = wstr(words[i % 4], strlen(words[i % 4]));
	}
}

static void
outcome_sample(struct ent_outcome *m)
{
	memset(m, 0, sizeof *m);
	m->call = 0x1122334455667788ull;
	m->kind = WIRE_SIGNALED;
	m->code = -9;
	m->why = ENT_WHY_TIMEOUT;
	m->in_bytes = UINT64_MAX;
	m->out_bytes = 1ull << 40;
	m->err_bytes = 17;
	m->dur_ms = UINT32_MAX;
}

/* Round trips. */

static void
case_rt_deploy(void)
{
	struct wire_deploy d;
	struct wbuf b = {0};
	struct entry s, e;
	deploy_sample(&d, bin, sizeof bin);
	T_EQ_INT(ent_enc_deploy(&b, 1234567, &d), 0);
	uint8_t *buf = seal_whole(ENT_DEPLOY, 3, 9, b.p, b.len, &s);
	open_same(buf, &s, &e);
	T_EQ_INT(ent_dec_deploy(&e, &dep_out), 0);
	T_EQ_INT(dep_out.time_ms, 1234567);
	T_ASSERT(str_is(dep_out.d.bundle, bin, sizeof bin));
	T_EQ_MEM(dep_out.d.owner, owner, 32);
	T_EQ_INT(dep_out.d.version, d.version);
	T_EQ_MEM(dep_out.d.prev, dprev, 32);
	T_EQ_MEM(dep_out.d.sig, sig, 64);
	free(buf);
	wbuf_free(&b);
}

static void
case_rt_deploy_empty_bundle(void)
{
	struct wire_deploy d;
	struct wbuf b = {0};
	struct entry s, e;
	deploy_sample(&d, "", 0);
	T_EQ_INT(ent_enc_deploy(&b, 0, &d), 0);
	uint8_t *buf = seal_whole(ENT_DEPLOY, 0, 1, b.p, b.len, &s);
	open_same(buf, &s, &e);
	T_EQ_INT(ent_dec_deploy(&e, &dep_out), 0);
	T_EQ_INT(dep_out.d.bundle.len, 0);
	free(buf);
	wbuf_free(&b);
}

/* Encode call_in, seal and open it, decode into call_out, compare. */
static void
call_round_trip(void)
{
	struct wbuf b = {0};
	struct entry s, e;
	T_EQ_INT(ent_enc_call(&b, &call_in), 0);
	uint8_t *buf = seal_whole(ENT_CALL, 2, 77, b.p, b.len, &s);
	open_same(buf, &s, &e);
	memset(&call_out, 0xa5, sizeof call_out);
	T_EQ_INT(ent_dec_call(&e, &call_out), 0);
	T_EQ_MEM(call_out.sid, call_in.sid, 32);
	T_EQ_MEM(call_out.vid, call_in.vid, 32);
	T_EQ_INT(call_out.time_ms, call_in.time_ms);
	T_EQ_INT(call_out.seed, call_in.seed);
	T_EQ_MEM(call_out.reqid, call_in.reqid, ENT_REQID_LEN);
	T_EQ_INT(call_out.timeout_ms, call_in.timeout_ms);
	T_ASSERT(str_is(call_out.idkey, call_in.idkey.p, call_in.idkey.len));
	T_EQ_INT(call_out.nargs, call_in.nargs);
	for (uint32_t i = 0; i < call_in.nargs; i++)
		T_ASSERT(str_is(call_out.args[i], call_in.args[i].p, call_in.args[i].len));
	/* Borrowed strings point into the stored payload. */
	if (call_out.idkey.len)
		T_ASSERT((const uint8_t *)call_out.idkey.p > buf &&
		    (const uint8_t *)call_out.idkey.p < buf + ENTRY_HDR + s.len);
	free(buf);
	wbuf_free(&b);
}

static void
case_rt_call_args_idkey(void)
{
	call_sample(&call_in, 7);
	call_round_trip();
}

static void
case_rt_call_no_args_no_idkey(void)
{
	call_sample(&call_in, 0);
	call_in.idkey = wstr("", 0);
	call_in.timeout_ms = 0;
	call_round_trip();
}

static void
case_rt_call_max_args(void)
{
	call_sample(&call_in, WIRE_MAX_ARGS);
	call_round_trip();
}

static void
case_rt_refs(void)
{
	static const uint8_t types[] = {ENT_INPUT, ENT_EOF, ENT_CANCEL};
	for (int i = 0; i < 3; i++) {
		uint8_t p[8 + sizeof bin];
		size_t n = 8;
		uint64_t call = 0x0a0b0c0d0e0f1011ull + (uint64_t)i, got = 0;
		const uint8_t *rest = NULL;
		size_t rest_len = 99;
		struct entry s, e;
		ent_input_prefix(p, call);
		T_EQ_INT(be64_get(p), call);
		if (types[i] == ENT_INPUT) {
			memcpy(p + 8, bin, sizeof bin);
			n += sizeof bin;
		} else if (types[i] == ENT_CANCEL) {
			p[8] = ENT_CANCEL_RESTART;
			n += 1;
		}
		uint8_t *buf = seal_whole(types[i], 1, 5, p, n, &s);
		open_same(buf, &s, &e);
		T_EQ_INT(ent_dec_ref(&e, &got, &rest, &rest_len), 0);
		T_EQ_INT(got, call);
		T_EQ_INT(rest_len, n - 8);
		T_ASSERT(rest == buf + ENTRY_HDR + 8);
		T_EQ_MEM(rest, p + 8, rest_len);
		got = 0;
		T_EQ_INT(ent_dec_ref(&e, &got, NULL, NULL), 0);
		T_EQ_INT(got, call);
		free(buf);
	}
}

static void
case_rt_outcome(void)
{
	struct ent_outcome m;
	struct wbuf b = {0};
	struct entry s, e;
	outcome_sample(&m);
	T_EQ_INT(ent_enc_outcome(&b, &m), 0);
	uint8_t *buf = seal_whole(ENT_OUTCOME, UINT64_MAX, UINT64_MAX, b.p, b.len, &s);
	open_same(buf, &s, &e);
	memset(&out_out, 0xa5, sizeof out_out);
	T_EQ_INT(ent_dec_outcome(&e, &out_out), 0);
	T_EQ_INT(out_out.call, m.call);
	T_EQ_INT(out_out.kind, m.kind);
	T_EQ_INT(out_out.code, m.code);
	T_EQ_INT(out_out.why, m.why);
	T_ASSERT(out_out.in_bytes == m.in_bytes);
	T_EQ_INT(out_out.out_bytes, m.out_bytes);
	T_EQ_INT(out_out.err_bytes, m.err_bytes);
	T_EQ_INT(out_out.dur_ms, m.dur_ms);
	free(buf);
	wbuf_free(&b);
}

static void
case_rt_noop(void)
{
	struct entry s, e;
	uint8_t *buf = seal_whole(ENT_NOOP, 4, 1, NULL, 0, &s);
	open_same(buf, &s, &e);
	free(buf);
}

/* SHA-256 of an entry's first 56 header bytes and its payload (libsodium). */
static void
sha256_of(const uint8_t *hdr, const uint8_t *payload, size_t n, uint8_t out[32])
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, hdr, 56);
	crypto_hash_sha256_update(&st, payload, n);
	crypto_hash_sha256_final(&st, out);
}

/* An entry's BLAKE3, hashed here in one piece (not as entry_seal feeds it). */
static void
b3_of(const uint8_t *hdr, const uint8_t *payload, size_t n, uint8_t out[32])
{
	uint8_t *w = malloc(56 + n);
	T_ASSERT(w != NULL);
	memcpy(w, hdr, 56);
	memcpy(w + 56, payload, n);
	hash_once(out, w, 56 + n);
	free(w);
}

/* The header layout and the checksum, computed independently here. */
static void
case_header_layout(void)
{
	struct entry s;
	uint8_t sum[32];
	uint8_t *buf = seal_whole(ENT_INPUT, 0x0102030405060708ull,
	    0x1112131415161718ull, bin, sizeof bin, &s);
	T_EQ_INT(buf[0], ENTRY_FORMAT);
	T_EQ_INT(buf[1], ENT_INPUT);
	T_EQ_INT(buf[2], 0);
	T_EQ_INT(buf[3], 0);
	T_EQ_INT(be32_get(buf + 4), sizeof bin);
	T_EQ_INT(be64_get(buf + 8), 0x0102030405060708ull);
	T_EQ_INT(be64_get(buf + 16), 0x1112131415161718ull);
	T_EQ_MEM(buf + 24, s.prev, 32);
	T_EQ_MEM(buf + 56, s.hash, 32);
	b3_of(buf, bin, sizeof bin, sum);
	T_EQ_MEM(sum, s.hash, 32);
	free(buf);
}

/*
 * hash.h is BLAKE3: its hash of input i % 251 (i = 0, 1, ...) of lengths
 * around the block, chunk and subtree sizes is what b3sum (an independent
 * implementation) printed, whole or given in pieces of many sizes, with the
 * portable code and with every vector width this CPU has.
 */
static const struct {
	size_t n;
	const char *hex;
} b3_known[] = {
	{0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
	{1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
	{64, "4eed7141ea4a5cd4b788606bd23f46e212af9cacebacdc7d1f4c6dc7f2511b98"},
	{65, "de1e5fa0be70df6d2be8fffd0e99ceaa8eb6e8c93a63f2d8d1c30ecb6b263dee"},
	{1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"},
	{1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"},
	{1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
	{2048, "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a"},
	{2049, "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030"},
	{3072, "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2"},
	{3073, "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3"},
	{4096, "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969"},
	{4097, "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995"},
	{8193, "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b"},
	{16384, "f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4"},
	{16385, "1dabe216be2578830263b049de1639f39f05a4da616b9b78c7a5e4e41662fd1f"},
	{31744, "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47"},
	{32769, "da589428d9b32c97658a04a21c0c8a38aad2ac402120819d956fd6d62bbfa36e"},
	{65536, "68d647e619a930e7b1082f74f334b0c65a315725569bdc123f0ee11881717bfe"},
	{102400, "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085"},
	{262144, "d57dc906e20d3fd326ffaa85535500486f46a0979f5a323f028dcabfd381fd4a"},
	{262145, "531c319935cf78f34869faebd865e5748266b1799039103bfb851a680d9ed30c"},
	{1000000, "5e82c663d164c54e4fcdfcd70e3ca464662228bdbad45cce2e0c2bff999064ef"},
};

static void
case_hash_is_blake3(void)
{
	static uint8_t p[1000000];
	static const size_t pieces[] = {0, 1, 7, 64, 1000, 1024, 4096, 65536, 100000, 262144};
	for (size_t i = 0; i < sizeof p; i++)
		p[i] = (uint8_t)(i % 251);
	/* 1: the portable code; 8: AVX2; 16: AVX-512 (widths between run
	 * the portable code again). */
	for (int lanes = 1; lanes <= hash_lanes_max(); lanes = lanes == 1 ? 8 : 2 * lanes) {
		hash_lanes(lanes);
		for (size_t v = 0; v < sizeof b3_known / sizeof b3_known[0]; v++) {
			size_t n = b3_known[v].n;
			uint8_t want[32], got[32];
			T_ASSERT(sodium_hex2bin(want, 32, b3_known[v].hex, 64, NULL, NULL, NULL) == 0);
			for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
				size_t piece = pieces[k] ? pieces[k] : n + 1;
				struct hash_state st;
				hash_init(&st);
				for (size_t at = 0; at < n; at += piece)
					hash_update(&st, p + at, n - at < piece ? n - at : piece);
				hash_final(&st, got);
				if (memcmp(got, want, 32) != 0)
					T_FAIL("%zu bytes in pieces of %zu, %d lanes: not b3sum's hash",
					    n, piece, lanes);
			}
		}
	}
	hash_lanes(hash_lanes_max());
}

/* buf (n bytes, the entry index 9 with payload bin, sealed in an older
 * format) opens, and no longer once a payload byte changes; freed. */
static void
opens_only_whole(uint8_t *buf, size_t n)
{
	struct entry e;
	T_EQ_INT(entry_open(buf, n, &e), 0);
	T_EQ_INT(e.index, 9);
	T_EQ_MEM(e.payload, bin, sizeof bin);
	buf[ENTRY_HDR] ^= 1;
	T_EQ_INT(entry_open(buf, n, &e), BABL_ECORRUPT);
	free(buf);
}

/* Format 2, written before BLAKE3: its SHA-256 still opens, and only that. */
static void
case_format2_still_read(void)
{
	struct entry s, e;
	uint8_t *buf = seal_whole(ENT_INPUT, 2, 9, bin, sizeof bin, &s);
	size_t n = ENTRY_HDR + s.len;
	T_EQ_INT(buf[0], ENTRY_FORMAT);
	buf[0] = ENTRY_FORMAT_SHA;
	T_EQ_INT(entry_open(buf, n, &e), BABL_ECORRUPT);
	sha256_of(buf, bin, sizeof bin, buf + 56);
	opens_only_whole(buf, n);
}

/*
 * An entry of format 1, written before SHA-256 and BLAKE3, opens when its
 * BLAKE2b-256 holds and is corrupt when it does not (a SHA-256 there does
 * not pass).
 */
static void
case_format1_still_read(void)
{
	struct entry s, e;
	uint8_t *buf = seal_whole(ENT_INPUT, 2, 9, bin, sizeof bin, &s);
	size_t n = ENTRY_HDR + s.len;
	buf[0] = ENTRY_FORMAT_B2;
	sha256_of(buf, bin, sizeof bin, buf + 56);
	T_EQ_INT(entry_open(buf, n, &e), BABL_ECORRUPT);
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, buf, 56);
	crypto_generichash_update(&st, bin, sizeof bin);
	crypto_generichash_final(&st, buf + 56, 32);
	opens_only_whole(buf, n);
}

/*
 * A payload given as several iovecs, split at every pair of points and with
 * empty iovecs among them, seals to the same header as the whole payload.
 */
static void
case_iovec_split(void)
{
	uint8_t p[40], hdr1[ENTRY_HDR], hdr2[ENTRY_HDR];
	struct entry a, b;
	fill(p, sizeof p, 9);
	memset(&a, 0, sizeof a);
	a.type = ENT_INPUT;
	a.term = 6;
	a.index = 60;
	a.len = sizeof p;
	fill(a.prev, 32, 10);
	struct iovec one = {p, sizeof p};
	entry_seal(&a, &one, 1, hdr1);
	for (size_t i = 0; i <= sizeof p; i++) {
		for (size_t j = i; j <= sizeof p; j++) {
			struct iovec v[5] = {
				{p, i}, {p + i, 0}, {p + i, j - i}, {p + j, sizeof p - j}, {p, 0},
			};
			b = a;
			memset(b.hash, 0, 32);
			entry_seal(&b, v, 5, hdr2);
			T_EQ_MEM(b.hash, a.hash, 32);
			T_EQ_MEM(hdr2, hdr1, ENTRY_HDR);
		}
	}
}

/* A different term, index, prev, type or payload gives a different hash. */
static void
case_hash_covers_fields(void)
{
	struct entry base, v;
	uint8_t *b0 = seal_whole(ENT_INPUT, 1, 2, bin, sizeof bin, &base);
	uint8_t *b1 = seal_whole(ENT_INPUT, 2, 2, bin, sizeof bin, &v);
	T_ASSERT(memcmp(base.hash, v.hash, 32) != 0);
	free(b1);
	b1 = seal_whole(ENT_EOF, 1, 2, bin, sizeof bin, &v);
	T_ASSERT(memcmp(base.hash, v.hash, 32) != 0);
	free(b1);
	b1 = seal_whole(ENT_INPUT, 1, 2, bin, sizeof bin - 1, &v);
	T_ASSERT(memcmp(base.hash, v.hash, 32) != 0);
	free(b1);
	free(b0);
}

/* Hostile entries. */

static int
open_fails(const uint8_t *p, size_t n)
{
	struct entry e;
	uint8_t *q = exact_copy(p, n);
	int rc = entry_open(q, n, &e);
	free(q);
	if (rc != BABL_ECORRUPT && rc != BABL_EPROTO)
		T_FAIL("entry_open of %zu hostile bytes gave %d", n, rc);
	return rc;
}

/* Every byte of a small entry, changed in several ways, fails to open. */
static void
case_flip_every_byte(void)
{
	static const uint8_t masks[] = {0x01, 0x80, 0xff, 0x5a};
	struct wbuf b = {0};
	struct ent_outcome m;
	struct entry s;
	outcome_sample(&m);
	T_EQ_INT(ent_enc_outcome(&b, &m), 0);
	uint8_t *buf = seal_whole(ENT_OUTCOME, 7, 8, b.p, b.len, &s);
	size_t n = ENTRY_HDR + s.len;
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < sizeof masks; k++) {
			buf[i] ^= masks[k];
			int rc = open_fails(buf, n);
			/* Outside the checked fields, only the checksum notices. */
			if (i >= 8)
				T_EQ_INT(rc, BABL_ECORRUPT);
			buf[i] ^= masks[k];
		}
	}
	struct entry e;
	T_EQ_INT(entry_open(buf, n, &e), 0);
	free(buf);
	wbuf_free(&b);
}

/* Every proper prefix of an entry, and the entry with a byte added, fail. */
static void
case_truncate_every_length(void)
{
	struct entry s;
	uint8_t *buf = seal_whole(ENT_INPUT, 1, 3, bin, sizeof bin, &s);
	size_t n = ENTRY_HDR + s.len;
	for (size_t k = 0; k < n; k++)
		T_EQ_INT(open_fails(buf, k), BABL_EPROTO);
	uint8_t *longer = malloc(n + 1);
	T_ASSERT(longer);
	memcpy(longer, buf, n);
	longer[n] = 0;
	T_EQ_INT(open_fails(longer, n + 1), BABL_EPROTO);
	free(longer);
	free(buf);
}

/*
 * Change one header byte of a sealed entry and recompute its checksum so
 * that it holds: entry_open must still refuse the entry, as not an entry.
 */
static void
bad_field(const uint8_t *good, size_t n, size_t at, uint8_t val, size_t len_override)
{
	uint8_t *q = exact_copy(good, n);
	struct entry e;
	if (len_override != (size_t)-1)
		be32_put(q + 4, (uint32_t)len_override);
	else
		q[at] = val;
	b3_of(q, q + ENTRY_HDR, n - ENTRY_HDR, q + 56);
	int rc = entry_open(q, n, &e);
	free(q);
	if (rc != BABL_EPROTO)
		T_FAIL("byte %zu = %u (len %zu): entry_open gave %d", at, val,
		    len_override, rc);
}

static void
case_bad_header_fields(void)
{
	struct entry s;
	uint8_t *buf = seal_whole(ENT_INPUT, 1, 3, bin, sizeof bin, &s);
	size_t n = ENTRY_HDR + s.len, none = (size_t)-1;
	/* Format. */
	bad_field(buf, n, 0, 0, none);
	bad_field(buf, n, 0, ENTRY_FORMAT + 1, none);
	bad_field(buf, n, 0, 0xff, none);
	/* Type. */
	bad_field(buf, n, 1, 0, none);
	bad_field(buf, n, 1, ENT_MAX + 1, none);
	bad_field(buf, n, 1, 0xff, none);
	/* Reserved bytes. */
	bad_field(buf, n, 2, 1, none);
	bad_field(buf, n, 2, 0x80, none);
	bad_field(buf, n, 3, 1, none);
	bad_field(buf, n, 3, 0xff, none);
	/* The length field against the bytes actually there. */
	bad_field(buf, n, 4, 0, 0);
	bad_field(buf, n, 4, 0, s.len - 1);
	bad_field(buf, n, 4, 0, s.len + 1);
	bad_field(buf, n, 4, 0, 0x80000000u);
	bad_field(buf, n, 4, 0, 0xffffffffu);
	/* Every type up to ENT_MAX is accepted when the checksum holds. */
	for (unsigned t = 1; t <= ENT_MAX; t++) {
		struct entry v, e;
		uint8_t *q = seal_whole((uint8_t)t, 1, 3, bin, sizeof bin, &v);
		T_EQ_INT(entry_open(q, n, &e), 0);
		free(q);
	}
	free(buf);
}

static void
case_type_names(void)
{
	T_EQ_STR(entry_type_name(ENT_DEPLOY), "deploy");
	T_EQ_STR(entry_type_name(ENT_CALL), "call");
	T_EQ_STR(entry_type_name(ENT_INPUT), "input");
	T_EQ_STR(entry_type_name(ENT_EOF), "eof");
	T_EQ_STR(entry_type_name(ENT_CANCEL), "cancel");
	T_EQ_STR(entry_type_name(ENT_OUTCOME), "outcome");
	T_EQ_STR(entry_type_name(ENT_NOOP), "noop");
	T_EQ_STR(entry_type_name(0), "?");
	T_EQ_STR(entry_type_name(ENT_MAX + 1), "?");
	T_EQ_STR(entry_type_name(0xff), "?");
}

/* Payload decoders on hostile payloads. */

enum { P_DEPLOY, P_CALL, P_OUTCOME, P_REF, P_N };

static int
decode_as(int which, const struct entry *e)
{
	uint64_t call;
	const uint8_t *rest;
	size_t rest_len;
	switch (which) {
	case P_DEPLOY: return ent_dec_deploy(e, &dep_out);
	case P_CALL: return ent_dec_call(e, &call_out);
	case P_OUTCOME: return ent_dec_outcome(e, &out_out);
	case P_REF: return ent_dec_ref(e, &call, &rest, &rest_len);
	}
	T_FAIL("no decoder %d", which);
}

/* Decode payload bytes as the given type, from an exact allocation. */
static int
decode_bytes(int which, uint8_t type, const uint8_t *p, size_t n)
{
	uint8_t *q = exact_copy(p, n);
	struct entry e = raw_entry(type, q, n);
	int rc = decode_as(which, &e);
	free(q);
	return rc;
}

/* A valid payload for each decoder, in b; its entry type is returned. */
static uint8_t
sample_payload(int which, struct wbuf *b)
{
	struct wire_deploy d;
	struct ent_outcome m;
	uint8_t ref[8];
	wbuf_reset(b);
	switch (which) {
	case P_DEPLOY:
		deploy_sample(&d, bin, sizeof bin);
		T_EQ_INT(ent_enc_deploy(b, 5, &d), 0);
		return ENT_DEPLOY;
	case P_CALL:
		call_sample(&call_in, 6);
		T_EQ_INT(ent_enc_call(b, &call_in), 0);
		return ENT_CALL;
	case P_OUTCOME:
		outcome_sample(&m);
		T_EQ_INT(ent_enc_outcome(b, &m), 0);
		return ENT_OUTCOME;
	case P_REF:
		ent_input_prefix(ref, 42);
		T_EQ_INT(wb_raw(b, ref, 8), 0);
		return ENT_EOF;
	}
	T_FAIL("no sample %d", which);
}

static void
case_dec_truncated(void)
{
	struct wbuf b = {0};
	for (int w = 0; w < P_N; w++) {
		uint8_t type = sample_payload(w, &b);
		T_EQ_INT(decode_bytes(w, type, b.p, b.len), 0);
		for (size_t k = 0; k < b.len; k++)
			if (decode_bytes(w, type, b.p, k) != BABL_EPROTO)
				T_FAIL("decoder %d accepted %zu of %zu bytes", w, k, b.len);
	}
	wbuf_free(&b);
}

/*
 * Trailing bytes are refused by every decoder whose payload has a fixed
 * end; the reference decoder hands them back as the rest instead.
 */
static void
case_dec_trailing(void)
{
	struct wbuf b = {0};
	for (int w = 0; w < P_N; w++) {
		uint8_t type = sample_payload(w, &b);
		for (size_t extra = 1; extra <= 9; extra++) {
			T_EQ_INT(wb_u8(&b, (uint8_t)extra), 0);
			int rc = decode_bytes(w, type, b.p, b.len);
			if (w == P_REF)
				T_EQ_INT(rc, 0);
			else if (rc != BABL_EPROTO)
				T_FAIL("decoder %d accepted %zu trailing bytes", w, extra);
		}
	}
	wbuf_free(&b);
}

/* Each decoder refuses an entry of every type but its own. */
static void
case_dec_wrong_type(void)
{
	struct wbuf b = {0};
	for (int w = 0; w < P_N; w++) {
		(void)sample_payload(w, &b);
		for (unsigned t = 0; t <= 0xff; t++) {
			int own = (w == P_DEPLOY && t == ENT_DEPLOY) ||
			    (w == P_CALL && t == ENT_CALL) ||
			    (w == P_OUTCOME && t == ENT_OUTCOME) ||
			    (w == P_REF && (t == ENT_INPUT || t == ENT_EOF || t == ENT_CANCEL));
			int rc = decode_bytes(w, (uint8_t)t, b.p, b.len);
			if (own)
				T_EQ_INT(rc, 0);
			else if (rc != BABL_EPROTO)
				T_FAIL("decoder %d accepted type %u", w, t);
		}
	}
	wbuf_free(&b);
}

/* The number of arguments is bounded, and strings must lie in the payload. */
static void
case_dec_call_bounds(void)
{
	struct wbuf b = {0};
	/* The offset of nargs: sid, vid, time, seed, reqid, timeout, idkey. */
	size_t idkey_at = 32 + 32 + 8 + 8 + ENT_REQID_LEN + 4;
	call_sample(&call_in, 0);
	call_in.idkey = wstr("", 0);
	T_EQ_INT(ent_enc_call(&b, &call_in), 0);
	T_EQ_INT(b.len, idkey_at + 4 + 4);
	T_EQ_INT(decode_bytes(P_CALL, ENT_CALL, b.p, b.len), 0);
	/* More arguments than allowed, with nothing following. */
	be32_put(b.p + idkey_at + 4, WIRE_MAX_ARGS + 1);
	T_EQ_INT(decode_bytes(P_CALL, ENT_CALL, b.p, b.len), BABL_EPROTO);
	be32_put(b.p + idkey_at + 4, UINT32_MAX);
	T_EQ_INT(decode_bytes(P_CALL, ENT_CALL, b.p, b.len), BABL_EPROTO);
	/* One argument announced, none there. */
	be32_put(b.p + idkey_at + 4, 1);
	T_EQ_INT(decode_bytes(P_CALL, ENT_CALL, b.p, b.len), BABL_EPROTO);
	/* An id key longer than the payload, and longer than the bound. */
	be32_put(b.p + idkey_at + 4, 0);
	be32_put(b.p + idkey_at, 4);
	T_EQ_INT(decode_bytes(P_CALL, ENT_CALL, b.p, b.len), BABL_EPROTO);
	be32_put(b.p + idkey_at, WIRE_MAX_STR + 1);
	T_EQ_INT(decode_bytes(P_CALL, ENT_CALL, b.p, b.len), BABL_EPROTO);
	be32_put(b.p + idkey_at, UINT32_MAX);
	T_EQ_INT(decode_bytes(P_CALL, ENT_CALL, b.p, b.len), BABL_EPROTO);
	/* An argument as long as the bound is read; one past it is not. */
	wbuf_reset(&b);
	char *big = malloc(WIRE_MAX_STR + 1);
	T_ASSERT(big);
	memset(big, 'x', WIRE_MAX_STR + 1);
	call_sample(&call_in, 1);
	call_in.args[0] = wstr(big, WIRE_MAX_STR);
	T_EQ_INT(ent_enc_call(&b, &call_in), 0);
	T_EQ_INT(decode_bytes(P_CALL, ENT_CALL, b.p, b.len), 0);
	/* Beyond the bound, the decoder refuses it, and so does the encoder. */
	be32_put(b.p + idkey_at + 4 + sizeof bin + 4, WIRE_MAX_STR + 1);
	T_EQ_INT(decode_bytes(P_CALL, ENT_CALL, b.p, b.len), BABL_EPROTO);
	wbuf_reset(&b);
	T_EQ_INT(wb_u8(&b, 0x77), 0);
	call_in.args[0] = wstr(big, WIRE_MAX_STR + 1);
	T_EQ_INT(ent_enc_call(&b, &call_in), BABL_ETOOBIG);
	T_EQ_INT(b.len, 1);
	call_in.args[0] = wstr("", 0);
	call_in.idkey = wstr(big, WIRE_MAX_STR + 1);
	T_EQ_INT(ent_enc_call(&b, &call_in), BABL_ETOOBIG);
	T_EQ_INT(b.len, 1);
	call_in.idkey = wstr(big, WIRE_MAX_STR);
	T_EQ_INT(ent_enc_call(&b, &call_in), 0);
	free(big);
	wbuf_free(&b);
}

/* The encoder refuses more arguments than a decoder accepts. */
static void
case_enc_call_too_many(void)
{
	struct wbuf b = {0};
	call_sample(&call_in, WIRE_MAX_ARGS);
	call_in.nargs = WIRE_MAX_ARGS + 1;
	T_EQ_INT(wb_u8(&b, 0x77), 0);
	T_EQ_INT(ent_enc_call(&b, &call_in), BABL_ETOOBIG);
	T_EQ_INT(b.len, 1);
	wbuf_free(&b);
}

/* A deploy whose bundle length runs past the payload is refused. */
static void
case_dec_deploy_bundle_len(void)
{
	struct wbuf b = {0};
	struct wire_deploy d;
	deploy_sample(&d, bin, sizeof bin);
	T_EQ_INT(ent_enc_deploy(&b, 5, &d), 0);
	be32_put(b.p + 8, (uint32_t)b.len);
	T_EQ_INT(decode_bytes(P_DEPLOY, ENT_DEPLOY, b.p, b.len), BABL_EPROTO);
	be32_put(b.p + 8, UINT32_MAX);
	T_EQ_INT(decode_bytes(P_DEPLOY, ENT_DEPLOY, b.p, b.len), BABL_EPROTO);
	be32_put(b.p + 8, sizeof bin - 1);
	T_EQ_INT(decode_bytes(P_DEPLOY, ENT_DEPLOY, b.p, b.len), BABL_EPROTO);
	wbuf_free(&b);
}

static const struct t_case cases[] = {
	{"rt_deploy", case_rt_deploy},
	{"rt_deploy_empty_bundle", case_rt_deploy_empty_bundle},
	{"rt_call_args_idkey", case_rt_call_args_idkey},
	{"rt_call_no_args_no_idkey", case_rt_call_no_args_no_idkey},
	{"rt_call_max_args", case_rt_call_max_args},
	{"rt_refs", case_rt_refs},
	{"rt_outcome", case_rt_outcome},
	{"rt_noop", case_rt_noop},
	{"header_layout", case_header_layout},
	{"hash_is_blake3", case_hash_is_blake3},
	{"format2_still_read", case_format2_still_read},
	{"format1_still_read", case_format1_still_read},
	{"iovec_split", case_iovec_split},
	{"hash_covers_fields", case_hash_covers_fields},
	{"flip_every_byte", case_flip_every_byte},
	{"truncate_every_length", case_truncate_every_length},
	{"bad_header_fields", case_bad_header_fields},
	{"type_names", case_type_names},
	{"dec_truncated", case_dec_truncated},
	{"dec_trailing", case_dec_trailing},
	{"dec_wrong_type", case_dec_wrong_type},
	{"dec_call_bounds", case_dec_call_bounds},
	{"enc_call_too_many", case_enc_call_too_many},
	{"dec_deploy_bundle_len", case_dec_deploy_bundle_len},
	{0},
};

int
main(int argc, char **argv)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "sodium_init failed\n");
		return 1;
	}
	return t_run(argc, argv, cases);
}
