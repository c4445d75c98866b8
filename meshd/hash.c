/*
 * hash.c - BLAKE3; see hash.h.
 *
 * The input is cut into 1 KiB chunks of sixteen 64-byte blocks.  A chunk's
 * blocks are compressed in a chain that starts from the key (here the IV);
 * its last compression gives the chunk's chaining value.  Chunks are the
 * leaves of a binary tree whose left subtrees are complete and as large as
 * possible; a parent compresses its two children's values.  The root's
 * compression is flagged ROOT and its first 32 bytes are the hash.
 *
 * The values of whole subtrees wait on a stack.  Two of them are merged
 * only once input after them is seen (until then their parent could be
 * the root): after each update the stack holds one value per 1 bit of the
 * number of whole chunks, or, when the input so far ends with a subtree,
 * that subtree's two halves on top.  The open chunk, and the merges above
 * it, wait for hash_final.  Whole chunks are hashed straight from the
 * caller's buffer, many at once, in subtrees of up to SUBTREE_MAX chunks.
 */
#include <pthread.h>
#include <string.h>

#ifdef __x86_64__
#include <immintrin.h>
#endif

#include "hash.h"

#define BLOCK 64
#define CHUNK 1024
#define WIDE 16 /* compressions side by side in the vector code */

enum { CHUNK_START = 1, CHUNK_END = 2, PARENT = 4, ROOT = 8 };

static const uint32_t IV[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* The message word each of a round's 16 inputs takes: round r applies the
 * permutation (2 6 3 10 7 0 4 13 1 11 12 5 9 14 15 8) r times. */
static const uint8_t SCHED[7][16] = {
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	{2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
	{3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
	{10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
	{12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
	{9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
	{11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t
rotr(uint32_t x, int n)
{
	return x >> n | x << (32 - n);
}

#define G(v, a, b, c, d, x, y) do { \
	v[a] += v[b] + (x); v[d] = rotr(v[d] ^ v[a], 16); \
	v[c] += v[d];       v[b] = rotr(v[b] ^ v[c], 12); \
	v[a] += v[b] + (y); v[d] = rotr(v[d] ^ v[a], 8);  \
	v[c] += v[d];       v[b] = rotr(v[b] ^ v[c], 7);  \
} while (0)

/* One compression; cv becomes the first 8 words of its output. */
static void
compress(uint32_t cv[8], const uint8_t block[BLOCK], uint64_t counter, uint32_t len,
    uint32_t flags)
{
	uint32_t m[16], v[16];
	for (int i = 0; i < 16; i++)
		m[i] = le32(block + 4 * i);
	memcpy(v, cv, 32);
	memcpy(v + 8, IV, 16);
	v[12] = (uint32_t)counter;
	v[13] = (uint32_t)(counter >> 32);
	v[14] = len;
	v[15] = flags;
	for (int r = 0; r < 7; r++) {
		const uint8_t *s = SCHED[r];
		G(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
		G(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
		G(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
		G(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
		G(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
		G(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
		G(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
		G(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
	}
	for (int i = 0; i < 8; i++)
		cv[i] = v[i] ^ v[i + 8];
}

/*
 * n (1..WIDE) compressions side by side, n blocks each: for k < n, the k'th
 * runs from the IV over the nblocks blocks at p + k * stride, counter
 * counter + k * step, flags flags (start on the first block, end on the
 * last added), and leaves its chaining value in out[k].  Chunks are 16
 * blocks with counter i, i+1, ...; parents are 1 block with counter 0.
 */
static void
many_portable(const uint8_t *p, size_t stride, int nblocks, uint64_t counter, int step,
    uint32_t flags, uint32_t start, uint32_t end, int n, uint32_t (*out)[8])
{
	for (int k = 0; k < n; k++, p += stride) {
		memcpy(out[k], IV, 32);
		for (int b = 0; b < nblocks; b++)
			compress(out[k], p + b * BLOCK, counter + (uint64_t)(k * step), BLOCK,
			    flags | (b == 0 ? start : 0) | (b == nblocks - 1 ? end : 0));
	}
}

#ifdef __x86_64__
/*
 * many_portable's work with lane k of each vector doing the k'th: m[j] holds
 * a block's word j of every input.  One body, written as a macro, for
 * AVX-512 (16 lanes) and AVX2 (8): T is the vector type, L the lanes, and P
 * the prefix of its operations ADD, XOR, ROR, SET1, LOAD, STORE and MSG (which
 * fills m for the blocks at w, w + stride, ...).
 */
#define VG(P, a, b, c, d, x, y) do { \
	v[a] = P##ADD(v[a], P##ADD(v[b], (x))); v[d] = P##ROR(P##XOR(v[d], v[a]), 16); \
	v[c] = P##ADD(v[c], v[d]);              v[b] = P##ROR(P##XOR(v[b], v[c]), 12); \
	v[a] = P##ADD(v[a], P##ADD(v[b], (y))); v[d] = P##ROR(P##XOR(v[d], v[a]), 8);  \
	v[c] = P##ADD(v[c], v[d]);              v[b] = P##ROR(P##XOR(v[b], v[c]), 7);  \
} while (0)

#define VROUND(P, r) do { \
	VG(P, 0, 4, 8, 12, m[SCHED[r][0]], m[SCHED[r][1]]); \
	VG(P, 1, 5, 9, 13, m[SCHED[r][2]], m[SCHED[r][3]]); \
	VG(P, 2, 6, 10, 14, m[SCHED[r][4]], m[SCHED[r][5]]); \
	VG(P, 3, 7, 11, 15, m[SCHED[r][6]], m[SCHED[r][7]]); \
	VG(P, 0, 5, 10, 15, m[SCHED[r][8]], m[SCHED[r][9]]); \
	VG(P, 1, 6, 11, 12, m[SCHED[r][10]], m[SCHED[r][11]]); \
	VG(P, 2, 7, 8, 13, m[SCHED[r][12]], m[SCHED[r][13]]); \
	VG(P, 3, 4, 9, 14, m[SCHED[r][14]], m[SCHED[r][15]]); \
} while (0)

#define MANY_VECTOR(name, isa, T, L, P) \
__attribute__((target(isa))) static void \
name(const uint8_t *p, size_t stride, int nblocks, uint64_t counter, int step, \
    uint32_t flags, uint32_t start, uint32_t end, int n, uint32_t (*out)[8]) \
{ \
	uint32_t lo[L], hi[L], off[L], t[8][L]; \
	int32_t on[L]; \
	for (int k = 0; k < L; k++) { \
		uint64_t c = counter + (uint64_t)(k * step); \
		lo[k] = (uint32_t)c; \
		hi[k] = (uint32_t)(c >> 32); \
		off[k] = (uint32_t)((size_t)k * stride / 4); \
		on[k] = k < n ? -1 : 0; \
	} \
	const T idx = P##LOAD(off), lanes = P##LOAD(on), clo = P##LOAD(lo), chi = P##LOAD(hi); \
	(void)idx; \
	(void)lanes; \
	T h[8], m[16], v[16]; \
	_Pragma("GCC unroll 8") \
	for (int i = 0; i < 8; i++) \
		h[i] = P##SET1(IV[i]); \
	for (int b = 0; b < nblocks; b++) { \
		P##MSG(m, p + b * BLOCK, stride, n, idx, lanes); \
		_Pragma("GCC unroll 8") \
		for (int i = 0; i < 8; i++) \
			v[i] = h[i]; \
		_Pragma("GCC unroll 4") \
		for (int i = 0; i < 4; i++) \
			v[8 + i] = P##SET1(IV[i]); \
		v[12] = clo; \
		v[13] = chi; \
		v[14] = P##SET1(BLOCK); \
		v[15] = P##SET1(flags | (b == 0 ? start : 0) | (b == nblocks - 1 ? end : 0)); \
		VROUND(P, 0); \
		VROUND(P, 1); \
		VROUND(P, 2); \
		VROUND(P, 3); \
		VROUND(P, 4); \
		VROUND(P, 5); \
		VROUND(P, 6); \
		_Pragma("GCC unroll 8") \
		for (int i = 0; i < 8; i++) \
			h[i] = P##XOR(v[i], v[i + 8]); \
	} \
	for (int i = 0; i < 8; i++) \
		P##STORE(t[i], h[i]); \
	for (int k = 0; k < n; k++) \
		for (int i = 0; i < 8; i++) \
			out[k][i] = t[i][k]; \
}

/*
 * AVX-512 loads each input's 64-byte block whole, one per row, and
 * transposes the 16 x 16 words in registers: per 128-bit lane first (words
 * 4i..4i+3 of four rows), then the lanes themselves.  A gather of word j
 * from 16 places, as AVX2 does, costs more than this on the CPUs we run on.
 */
__attribute__((target("avx512f"))) static inline void
msg16(__m512i m[16], const uint8_t *p, size_t stride, int n)
{
	__m512i r[16], t[16];
	for (int k = 0; k < 16; k++)
		r[k] = _mm512_maskz_loadu_epi32(k < n ? 0xffff : 0, p + (size_t)k * stride);
	/* Rows 4g..4g+3: t[4g + q] holds, in lane i, their words 4i + q. */
	for (int g = 0; g < 16; g += 4) {
		__m512i a = _mm512_unpacklo_epi32(r[g], r[g + 1]);
		__m512i b = _mm512_unpackhi_epi32(r[g], r[g + 1]);
		__m512i c = _mm512_unpacklo_epi32(r[g + 2], r[g + 3]);
		__m512i d = _mm512_unpackhi_epi32(r[g + 2], r[g + 3]);
		t[g] = _mm512_unpacklo_epi64(a, c);
		t[g + 1] = _mm512_unpackhi_epi64(a, c);
		t[g + 2] = _mm512_unpacklo_epi64(b, d);
		t[g + 3] = _mm512_unpackhi_epi64(b, d);
	}
	/* Word 4i + q of every row: lane i of t[q], t[4 + q], t[8 + q],
	 * t[12 + q], side by side. */
	for (int q = 0; q < 4; q++) {
		__m512i u0 = _mm512_shuffle_i32x4(t[q], t[4 + q], 0x44);
		__m512i u1 = _mm512_shuffle_i32x4(t[q], t[4 + q], 0xee);
		__m512i u2 = _mm512_shuffle_i32x4(t[8 + q], t[12 + q], 0x44);
		__m512i u3 = _mm512_shuffle_i32x4(t[8 + q], t[12 + q], 0xee);
		m[q] = _mm512_shuffle_i32x4(u0, u2, 0x88);
		m[4 + q] = _mm512_shuffle_i32x4(u0, u2, 0xdd);
		m[8 + q] = _mm512_shuffle_i32x4(u1, u3, 0x88);
		m[12 + q] = _mm512_shuffle_i32x4(u1, u3, 0xdd);
	}
}

/* AVX-512: V16_ ops; AVX2: V8_ ops (no rotate instruction: two shifts; word
 * j of each input gathered). */
#define V16_ADD _mm512_add_epi32
#define V16_XOR _mm512_xor_si512
#define V16_ROR _mm512_ror_epi32
#define V16_SET1(x) _mm512_set1_epi32((int)(x))
#define V16_LOAD(a) _mm512_loadu_si512(a)
#define V16_STORE(a, x) _mm512_storeu_si512(a, x)
#define V16_MSG(m, w, stride, n, idx, on) msg16(m, w, stride, n)
#define V8_ADD _mm256_add_epi32
#define V8_XOR _mm256_xor_si256
#define V8_ROR(x, k) _mm256_or_si256(_mm256_srli_epi32(x, k), _mm256_slli_epi32(x, 32 - (k)))
#define V8_SET1(x) _mm256_set1_epi32((int)(x))
#define V8_LOAD(a) _mm256_loadu_si256((const __m256i *)(const void *)(a))
#define V8_STORE(a, x) _mm256_storeu_si256((__m256i *)(void *)(a), x)
#define V8_MSG(m, w, stride, n, idx, on) do { \
	_Pragma("GCC unroll 16") \
	for (int j = 0; j < 16; j++) \
		m[j] = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), \
		    (const int *)(const void *)(w) + j, idx, on, 4); \
} while (0)
MANY_VECTOR(many_avx512, "avx512f", __m512i, 16, V16_)
MANY_VECTOR(many_avx2, "avx2", __m256i, 8, V8_)
#endif

/* The vector code the CPU has: 16 lanes (AVX-512), 8 (AVX2) or 1 (none);
 * found once, whichever thread hashes first.  The one in use: a test's
 * choice, or 0 for the best. */
static int best, lanes;
static pthread_once_t best_once = PTHREAD_ONCE_INIT;

static void
find_best(void)
{
	best = 1;
#ifdef __x86_64__
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		best = 16;
	else if (__builtin_cpu_supports("avx2"))
		best = 8;
#endif
}

int
hash_lanes_max(void)
{
	pthread_once(&best_once, find_best);
	return best;
}

void
hash_lanes(int n)
{
	lanes = n < hash_lanes_max() ? n : 0;
}

static int
wide(void)
{
	return lanes ? lanes : hash_lanes_max();
}

/* many_portable's work, with the vector code where it has lanes for n. */
static void
many(const uint8_t *p, size_t stride, int nblocks, uint64_t counter, int step,
    uint32_t flags, uint32_t start, uint32_t end, int n, uint32_t (*out)[8])
{
#ifdef __x86_64__
	if (n > 1 && wide() == 16) {
		many_avx512(p, stride, nblocks, counter, step, flags, start, end, n, out);
		return;
	}
	if (n > 1 && wide() == 8) {
		for (int k = 0; k < n; k += 8)
			many_avx2(p + (size_t)k * stride, stride, nblocks, counter + (uint64_t)(k * step),
			    step, flags, start, end, n - k < 8 ? n - k : 8, out + k);
		return;
	}
#endif
	many_portable(p, stride, nblocks, counter, step, flags, start, end, n, out);
}

/* The output of one compression still to be made: the chunk or parent
 * node that may be the root. */
struct node {
	uint32_t cv[8];
	uint8_t block[BLOCK];
	uint64_t counter;
	uint32_t len, flags;
};

static void
node_cv(const struct node *o, uint32_t cv[8], uint32_t more)
{
	memcpy(cv, o->cv, 32);
	compress(cv, o->block, o->counter, o->len, o->flags | more);
}

static void
le_words(uint8_t *p, const uint32_t *w, int n)
{
	for (int i = 0; i < n; i++)
		for (int j = 0; j < 4; j++)
			p[4 * i + j] = (uint8_t)(w[i] >> 8 * j);
}

static void
parent_node(struct node *o, const uint32_t l[8], const uint32_t r[8])
{
	memcpy(o->cv, IV, 32);
	le_words(o->block, l, 8);
	le_words(o->block + 32, r, 8);
	o->counter = 0;
	o->len = BLOCK;
	o->flags = PARENT;
}

/*
 * Input goes on from chunk number before: merge the stack down to one value
 * per 1 bit of before (none of those merges is the root).
 */
static void
merge(struct hash_state *s, uint64_t before)
{
	while (s->nstack > __builtin_popcountll(before)) {
		struct node o;
		parent_node(&o, s->stack[s->nstack - 2], s->stack[s->nstack - 1]);
		node_cv(&o, s->stack[s->nstack - 2], 0);
		s->nstack--;
	}
}

/* The value of the whole subtree that starts at chunk number before. */
static void
push(struct hash_state *s, const uint32_t cv[8], uint64_t before)
{
	merge(s, before);
	memcpy(s->stack[s->nstack++], cv, 32);
}

#define SUBTREE_MAX 256 /* chunks hashed as one subtree at most */

/*
 * The n chunks at p (a power of 2, 2 to SUBTREE_MAX), the first numbered
 * counter, reduced to the values of their two halves.
 */
static void
subtree(const uint8_t *p, size_t n, uint64_t counter, uint32_t l[8], uint32_t r[8])
{
	uint32_t cv[SUBTREE_MAX][8];
	for (size_t k = 0; k < n; k += WIDE) {
		int w = n - k < WIDE ? (int)(n - k) : WIDE;
		many(p + k * CHUNK, CHUNK, CHUNK / BLOCK, counter + k, 1, 0, CHUNK_START, CHUNK_END,
		    w, cv + k);
	}
	/* Each level's parents: the pair (2i, 2i+1) is 64 bytes in place. */
	for (; n > 2; n /= 2) {
		uint8_t pairs[SUBTREE_MAX * 32];
		for (size_t i = 0; i < n; i++)
			le_words(pairs + 32 * i, cv[i], 8);
		for (size_t k = 0; k < n / 2; k += WIDE) {
			int w = n / 2 - k < WIDE ? (int)(n / 2 - k) : WIDE;
			many(pairs + 64 * k, BLOCK, 1, 0, 0, PARENT, 0, 0, w, cv + k);
		}
	}
	memcpy(l, cv[0], 32);
	memcpy(r, cv[1], 32);
}

static size_t
chunk_len(const struct hash_state *s)
{
	return (size_t)s->blocks * BLOCK + s->buflen;
}

/* Add up to what fills the open chunk; returns how much it took. */
static size_t
chunk_feed(struct hash_state *s, const uint8_t *p, size_t n)
{
	size_t took = 0;
	while (n && chunk_len(s) < CHUNK) {
		if (s->buflen == BLOCK) {
			compress(s->cv, s->buf, s->chunk, BLOCK, s->blocks ? 0 : CHUNK_START);
			s->blocks++;
			s->buflen = 0;
		}
		size_t k = BLOCK - s->buflen;
		if (k > n)
			k = n;
		memcpy(s->buf + s->buflen, p, k);
		s->buflen = (uint8_t)(s->buflen + k);
		p += k;
		n -= k;
		took += k;
	}
	return took;
}

static void
chunk_node(const struct hash_state *s, struct node *o)
{
	memcpy(o->cv, s->cv, 32);
	memset(o->block, 0, BLOCK);
	memcpy(o->block, s->buf, s->buflen);
	o->counter = s->chunk;
	o->len = s->buflen;
	o->flags = CHUNK_END | (s->blocks ? 0 : CHUNK_START);
}

static void
hash_init_chunk(struct hash_state *s)
{
	memcpy(s->cv, IV, 32);
	s->buflen = 0;
	s->blocks = 0;
}

void
hash_init(struct hash_state *s)
{
	s->chunk = 0;
	s->nstack = 0;
	hash_init_chunk(s);
}

void
hash_update(struct hash_state *s, const void *data, size_t n)
{
	const uint8_t *p = data;
	if (chunk_len(s)) {
		size_t k = chunk_feed(s, p, n);
		p += k;
		n -= k;
		if (!n)
			return;
		/* The open chunk is full and more follows: it is not the root. */
		struct node o;
		uint32_t cv[8];
		chunk_node(s, &o);
		node_cv(&o, cv, 0);
		push(s, cv, s->chunk++);
		hash_init_chunk(s);
	}
	/* Whole subtrees while more than a chunk is left: each as large as
	 * what is left and the chunks before it allow (a subtree of 2^k chunks
	 * starts at a multiple of 2^k). */
	while (n > CHUNK) {
		size_t c = SUBTREE_MAX;
		while (c * CHUNK > n || (s->chunk & (c - 1)))
			c /= 2;
		uint32_t l[8], r[8];
		if (c == 1) {
			many_portable(p, CHUNK, CHUNK / BLOCK, s->chunk, 1, 0, CHUNK_START, CHUNK_END, 1, &l);
			push(s, l, s->chunk);
		} else {
			subtree(p, c, s->chunk, l, r);
			push(s, l, s->chunk);
			push(s, r, s->chunk + c / 2);
		}
		s->chunk += c;
		p += c * CHUNK;
		n -= c * CHUNK;
	}
	/* What is left opens a chunk: what the stack holds is not the root,
	 * and hash_final need not tell merged values from pairs. */
	if (n) {
		chunk_feed(s, p, n);
		merge(s, s->chunk);
	}
}

void
hash_final(const struct hash_state *s, uint8_t out[HASH_LEN])
{
	struct node o;
	uint32_t cv[8];
	int left = s->nstack;
	if (chunk_len(s) || !s->nstack) {
		chunk_node(s, &o);
	} else {
		/* The input ended with a subtree: its two halves are the top two. */
		left -= 2;
		parent_node(&o, s->stack[left], s->stack[left + 1]);
	}
	while (left > 0) {
		node_cv(&o, cv, 0);
		parent_node(&o, s->stack[--left], cv);
	}
	node_cv(&o, cv, ROOT);
	le_words(out, cv, 8);
}

void
hash_once(uint8_t out[HASH_LEN], const void *p, size_t n)
{
	struct hash_state s;
	hash_init(&s);
	hash_update(&s, p, n);
	hash_final(&s, out);
}
