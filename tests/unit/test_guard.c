/* test_guard.c - run digests, signed digest batches, reports, the guard's table. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "guard.h"
#include "t.h"
#include "wire.h"

/* The summary of a run: stdout (olen bytes) fed in chunks of `chunk`. */
static void
sum_of(const void *out, size_t olen, size_t chunk, const char *err, uint8_t kind, int32_t code,
    const char *writes, struct gd_sum *s)
{
	struct gd_run r;
	const uint8_t *p = out;
	gd_run_init(&r);
	for (size_t i = 0; i < olen; i += chunk)
		gd_run_update(&r, 1, p + i, olen - i < chunk ? olen - i : chunk);
	gd_run_update(&r, 2, err, strlen(err));
	gd_run_final(&r, kind, code, writes, writes ? strlen(writes) : 0, s);
}

/* Field by field: a struct's padding is not part of it. */
static int
sum_eq(const struct gd_sum *a, const struct gd_sum *b)
{
	return memcmp(a->digest, b->digest, 32) == 0 && a->out_len == b->out_len &&
	    a->err_len == b->err_len && a->out_tag == b->out_tag && a->err_tag == b->err_tag &&
	    a->kv_tag == b->kv_tag && memcmp(a->seg, b->seg, sizeof a->seg) == 0 &&
	    a->kind == b->kind && a->code == b->code;
}

static void
digest_of(const char *out, const char *err, uint8_t kind, int32_t code, const char *writes,
    uint8_t d[32])
{
	struct gd_sum s;
	/* Chunking must not matter: feed stdout a byte at a time. */
	sum_of(out, strlen(out), 1, err, kind, code, writes, &s);
	memcpy(d, s.digest, 32);
}

static void
case_digest_covers_everything(void)
{
	uint8_t a[32], b[32];
	struct gd_sum s;
	digest_of("hello\n", "", WIRE_EXITED, 0, NULL, a);
	sum_of("hello\n", 6, 6, "", WIRE_EXITED, 0, NULL, &s);
	T_EQ_MEM(a, s.digest, 32);
	digest_of("hello!", "", WIRE_EXITED, 0, NULL, b);
	T_ASSERT(memcmp(a, b, 32) != 0);
	digest_of("", "hello\n", WIRE_EXITED, 0, NULL, b); /* same bytes, other stream */
	T_ASSERT(memcmp(a, b, 32) != 0);
	digest_of("hello\n", "", WIRE_EXITED, 1, NULL, b);
	T_ASSERT(memcmp(a, b, 32) != 0);
	digest_of("hello\n", "", WIRE_SIGNALED, 0, NULL, b); /* signalled, not exited */
	T_ASSERT(memcmp(a, b, 32) != 0);
	digest_of("hello\n", "", WIRE_EXITED, 0, "k=v", b);
	T_ASSERT(memcmp(a, b, 32) != 0);
}

static void
case_segments(void)
{
	static const struct {
		unsigned i;
		uint64_t start, end;
	} seg[] = {
		{0, 0, 1}, {1, 1, 4}, {2, 4, 16}, {3, 16, 64}, {4, 64, 256}, {5, 256, 1024},
		{12, 4u << 20, 16u << 20}, {GD_SEGS - 1, 16u << 20, UINT64_MAX},
	};
	for (size_t k = 0; k < sizeof seg / sizeof seg[0]; k++) {
		T_EQ_INT(gd_seg_start(seg[k].i), seg[k].start);
		T_ASSERT(gd_seg_end(seg[k].i) == seg[k].end);
	}
	for (unsigned i = 1; i < GD_SEGS; i++)
		T_ASSERT(gd_seg_start(i) == gd_seg_end(i - 1));
}

/* The same stdout in any chunks, across segment ends: the same summary. */
static void
case_chunks_do_not_matter(void)
{
	static const size_t lens[] = {0, 1, 15, 16, 17, 64, 255, 256, 5000};
	static const size_t chunks[] = {1, 3, 16, 100, 4096};
	uint8_t buf[5000];
	struct gd_sum a, b;
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)(i * 31 + 7);
	for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
		sum_of(buf, lens[l], lens[l] ? lens[l] : 1, "e", WIRE_EXITED, 0, NULL, &a);
		T_EQ_INT(a.out_len, lens[l]);
		T_EQ_INT(a.err_len, 1);
		for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
			sum_of(buf, lens[l], chunks[c], "e", WIRE_EXITED, 0, NULL, &b);
			if (!sum_eq(&a, &b))
				T_FAIL("length %zu in chunks of %zu: another summary", lens[l], chunks[c]);
		}
		/* Segments past the end carry no tag. */
		for (unsigned k = 0; k < GD_SEGS; k++)
			if (gd_seg_start(k) >= lens[l])
				T_EQ_INT(a.seg[k], 0);
	}
}

/* Two runs compared: which parts differ, and where stdout first does. */
static const struct diff_case {
	const char *name;
	size_t alen, blen;   /* stdout lengths (a pattern of bytes) */
	long flip;           /* a byte of b's stdout changed (-1: none) */
	const char *aerr, *berr;
	uint8_t bkind;
	int32_t bcode;
	const char *awrites, *bwrites;
	unsigned parts;
	uint64_t lo, hi;     /* GD_OUT: [lo, hi) the first difference is in */
	const char *text;
} diff_cases[] = {
	{"same", 100, 100, -1, "", "", WIRE_EXITED, 0, NULL, NULL, 0, 0, 0, ""},
	{"byte 70 of 100", 100, 100, 70, "", "", WIRE_EXITED, 0, NULL, NULL, GD_OUT, 64, 100,
	    "stdout differs first in bytes [64,100), lengths 100 vs 100"},
	{"byte 0", 10, 10, 0, "", "", WIRE_EXITED, 0, NULL, NULL, GD_OUT, 0, 1,
	    "stdout differs first at byte 0, lengths 10 vs 10"},
	{"byte 3 of 10", 10, 10, 3, "", "", WIRE_EXITED, 0, NULL, NULL, GD_OUT, 1, 4,
	    "stdout differs first in bytes [1,4), lengths 10 vs 10"},
	{"byte 9 of 10", 10, 10, 9, "", "", WIRE_EXITED, 0, NULL, NULL, GD_OUT, 4, 10,
	    "stdout differs first in bytes [4,10), lengths 10 vs 10"},
	{"byte 200 of 5000", 5000, 5000, 200, "", "", WIRE_EXITED, 0, NULL, NULL, GD_OUT, 64, 256,
	    "stdout differs first in bytes [64,256), lengths 5000 vs 5000"},
	{"byte 4095 of 5000", 5000, 5000, 4095, "", "", WIRE_EXITED, 0, NULL, NULL, GD_OUT, 1024,
	    4096, "stdout differs first in bytes [1024,4096), lengths 5000 vs 5000"},
	{"b goes on after a's end at a segment end", 16, 40, -1, "", "", WIRE_EXITED, 0, NULL, NULL,
	    GD_OUT, 16, 17, "stdout differs first at byte 16, lengths 16 vs 40"},
	{"b ends early, mid-segment", 9, 6, -1, "", "", WIRE_EXITED, 0, NULL, NULL, GD_OUT, 4, 7,
	    "stdout differs first in bytes [4,7), lengths 9 vs 6"},
	{"b ends early", 300, 100, -1, "", "", WIRE_EXITED, 0, NULL, NULL, GD_OUT, 64, 101,
	    "stdout differs first in bytes [64,101), lengths 300 vs 100"},
	{"b empty", 5, 0, -1, "", "", WIRE_EXITED, 0, NULL, NULL, GD_OUT, 0, 1,
	    "stdout differs first at byte 0, lengths 5 vs 0"},
	{"lengths and an earlier byte", 300, 100, 20, "", "", WIRE_EXITED, 0, NULL, NULL, GD_OUT, 16,
	    64, "stdout differs first in bytes [16,64), lengths 300 vs 100"},
	{"only the exit", 100, 100, -1, "", "", WIRE_EXITED, 1, NULL, NULL, GD_EXIT, 0, 0,
	    "exit differs: 0 vs 1"},
	{"exited vs signalled", 0, 0, -1, "", "", WIRE_SIGNALED, 9, NULL, NULL, GD_EXIT, 0, 0,
	    "exit differs: 0 vs signal 9"},
	{"only stderr", 100, 100, -1, "oops", "oops!", WIRE_EXITED, 0, NULL, NULL, GD_ERR, 0, 0,
	    "stderr differs, lengths 4 vs 5"},
	{"only the kv writes", 1, 1, -1, "", "", WIRE_EXITED, 0, "k=1", "k=2", GD_KV, 0, 0,
	    "kv writes differ"},
	{"writes on one side", 1, 1, -1, "", "", WIRE_EXITED, 0, NULL, "k=2", GD_KV, 0, 0,
	    "kv writes differ"},
	{"everything", 100, 100, 99, "", "x", WIRE_EXITED, 2, NULL, "k", GD_OUT | GD_ERR | GD_EXIT |
	    GD_KV, 64, 100, "stdout differs first in bytes [64,100), lengths 100 vs 100; stderr "
	    "differs, lengths 0 vs 1; exit differs: 0 vs 2; kv writes differ"},
};

static void
case_diff(void)
{
	uint8_t a[5000], b[5000];
	for (size_t i = 0; i < sizeof a; i++)
		a[i] = b[i] = (uint8_t)(i * 7 + 1);
	for (size_t k = 0; k < sizeof diff_cases / sizeof diff_cases[0]; k++) {
		const struct diff_case *c = &diff_cases[k];
		struct gd_sum sa, sb;
		struct gd_diff d;
		char text[GD_DIFF_TEXT];
		if (c->flip >= 0)
			b[c->flip] ^= 0x40;
		sum_of(a, c->alen, 7, c->aerr, WIRE_EXITED, 0, c->awrites, &sa);
		sum_of(b, c->blen, 64, c->berr, c->bkind, c->bcode, c->bwrites, &sb);
		if (c->flip >= 0)
			b[c->flip] ^= 0x40;
		gd_diff(&sa, &sb, &d);
		if (d.parts != c->parts)
			T_FAIL("%s: parts %u, expected %u", c->name, d.parts, c->parts);
		if ((c->parts & GD_OUT) && (!d.where || d.lo != c->lo || d.hi != c->hi))
			T_FAIL("%s: where %d [%llu,%llu), expected [%llu,%llu)", c->name, d.where,
			    (unsigned long long)d.lo, (unsigned long long)d.hi,
			    (unsigned long long)c->lo, (unsigned long long)c->hi);
		T_ASSERT((memcmp(sa.digest, sb.digest, 32) != 0) == (c->parts != 0));
		if (c->parts && strcmp(gd_diff_text(&sa, &sb, text, sizeof text), c->text))
			T_FAIL("%s: \"%s\", expected \"%s\"", c->name, text, c->text);
	}
}

/* Summaries from a node may be any bytes: the comparison stays in bounds. */
static void
case_diff_of_garbage(void)
{
	struct gd_sum a, b;
	struct gd_diff d;
	char text[GD_DIFF_TEXT], small[20];
	for (int i = 0; i < 2000; i++) {
		randombytes_buf(&a, sizeof a);
		randombytes_buf(&b, sizeof b);
		if (i & 1)
			a.out_len = b.out_len = randombytes_uniform(300);
		if (i & 2)
			memcpy(a.seg, b.seg, sizeof a.seg);
		gd_diff(&a, &b, &d);
		T_ASSERT(!d.where || (d.lo < d.hi && d.lo <= a.out_len && d.lo <= b.out_len));
		gd_diff_text(&a, &b, text, sizeof text);
		T_ASSERT(strlen(text) < sizeof text);
		gd_diff_text(&a, &b, small, sizeof small);
		T_ASSERT(strlen(small) == sizeof small - 1);
	}
	/* The tags agree and the lengths too: stdout differs, where unknown. */
	memset(&a, 0, sizeof a);
	b = a;
	b.out_tag = 1;
	gd_diff(&a, &b, &d);
	T_EQ_INT(d.parts, GD_OUT);
	T_EQ_INT(d.where, 0);
	T_EQ_STR(gd_diff_text(&a, &b, text, sizeof text), "stdout differs, lengths 0 vs 0");
	b = a;
	b.digest[0] = 1;
	T_EQ_STR(gd_diff_text(&a, &b, text, sizeof text),
	    "no part's tag differs, only the digests do");
}

static void
case_item_round_trip(void)
{
	struct wbuf items = {0};
	struct gd_sum s, q;
	uint64_t call;
	sum_of("hello\n", 6, 2, "warn", WIRE_SIGNALED, 15, "kv", &s);
	T_EQ_INT(gd_item_add(&items, 77, &s), 0);
	T_EQ_INT(gd_item_add(&items, 78, &s), 0);
	T_EQ_INT(items.len, 2 * GD_ITEM);
	gd_item_get(items.p, 1, &call, &q);
	T_EQ_INT(call, 78);
	T_ASSERT(sum_eq(&s, &q));
	T_EQ_INT(q.kind, WIRE_SIGNALED);
	T_EQ_INT(q.code, 15);
	T_EQ_INT(q.err_len, 4);
	T_ASSERT(q.kv_tag != 0);
	wbuf_free(&items);
	/* A full batch goes to the leader in one query. */
	T_ASSERT(GD_BATCH_HDR + GD_BATCH_MAX * GD_ITEM + 64 <= WIRE_MAX_STR);
}

static void
make_batch(struct wbuf *out, uint64_t node, uint8_t pk[32], uint8_t sk[64], uint32_t n)
{
	struct wbuf items = {0};
	struct gd_sum d = {0};
	crypto_sign_keypair(pk, sk);
	for (uint32_t i = 0; i < n; i++) {
		memset(d.digest, (int)i, 32);
		d.code = (int32_t)i;
		T_EQ_INT(gd_item_add(&items, 100 + i, &d), 0);
	}
	T_EQ_INT(gd_batch_seal(out, node, pk, sk, items.p, n), 0);
	wbuf_free(&items);
}

static void
case_batch_round_trip(void)
{
	struct wbuf b = {0};
	uint8_t pk[32], sk[64];
	uint64_t node;
	const uint8_t *gpk, *items;
	uint32_t n;
	make_batch(&b, 7, pk, sk, 3);
	T_EQ_INT(b.len, GD_BATCH_HDR + 3 * GD_ITEM + 64);
	T_EQ_INT(gd_batch_open(b.p, b.len, &node, &gpk, &n, &items), 0);
	T_EQ_INT(node, 7);
	T_EQ_INT(n, 3);
	T_EQ_MEM(gpk, pk, 32);
	struct gd_sum d;
	uint64_t call;
	gd_item_get(items, 1, &call, &d);
	T_EQ_INT(call, 101);
	T_ASSERT(d.digest[0] == 1 && d.code == 1);
	wbuf_free(&b);
	/* An empty batch is a batch too. */
	make_batch(&b, 1, pk, sk, 0);
	T_EQ_INT(gd_batch_open(b.p, b.len, &node, &gpk, &n, &items), 0);
	T_EQ_INT(n, 0);
	wbuf_free(&b);
}

static void
case_batch_tampered(void)
{
	struct wbuf b = {0};
	uint8_t pk[32], sk[64], pk2[32], sk2[64];
	uint64_t node;
	const uint8_t *gpk, *items;
	uint32_t n;
	make_batch(&b, 7, pk, sk, 2);
	/* Every byte flipped: refused, as a bad signature or a bad layout. */
	for (size_t i = 0; i < b.len; i++) {
		b.p[i] ^= 0x20;
		int rc = gd_batch_open(b.p, b.len, &node, &gpk, &n, &items);
		if (rc != BABL_EPERM && rc != BABL_EPROTO)
			T_FAIL("byte %zu flipped: %d", i, rc);
		b.p[i] ^= 0x20;
	}
	/* Every truncation: a bad layout, for gd_batch_read too. */
	for (size_t len = 0; len < b.len; len++) {
		T_EQ_INT(gd_batch_open(b.p, len, &node, &gpk, &n, &items), BABL_EPROTO);
		T_EQ_INT(gd_batch_read(b.p, len, &node, &gpk, &n, &items), BABL_EPROTO);
	}
	/* Another key in the header, signed by the first: refused.  Read
	 * without the signature check, the same bytes give their fields. */
	crypto_sign_keypair(pk2, sk2);
	memcpy(b.p + 8, pk2, 32);
	T_EQ_INT(gd_batch_open(b.p, b.len, &node, &gpk, &n, &items), BABL_EPERM);
	node = n = 0;
	T_EQ_INT(gd_batch_read(b.p, b.len, &node, &gpk, &n, &items), 0);
	T_EQ_INT(node, 7);
	T_EQ_INT(n, 2);
	T_EQ_MEM(gpk, pk2, 32);
	T_ASSERT(items == b.p + GD_BATCH_HDR);
	/* A count that does not match the length: a bad layout either way. */
	b.p[43] ^= 1;
	T_EQ_INT(gd_batch_read(b.p, b.len, &node, &gpk, &n, &items), BABL_EPROTO);
	T_EQ_INT(gd_batch_open(b.p, b.len, &node, &gpk, &n, &items), BABL_EPROTO);
	wbuf_free(&b);
}

static void
case_report_round_trip(void)
{
	struct gd_report r = {.guard = 4, .call = 123, .node = 2}, q;
	struct wbuf b = {0};
	sum_of("abc", 3, 1, "", WIRE_EXITED, 0, NULL, &r.guard_sum);
	sum_of("abd", 3, 1, "", WIRE_EXITED, 3, NULL, &r.node_sum);
	T_EQ_INT(gd_report_enc(&b, &r), 0);
	T_EQ_INT(b.len, GD_REPORT_LEN);
	T_EQ_INT(gd_report_dec(b.p, b.len, &q), 0);
	T_EQ_INT(q.guard, 4);
	T_EQ_INT(q.call, 123);
	T_EQ_INT(q.node, 2);
	T_ASSERT(sum_eq(&q.guard_sum, &r.guard_sum));
	T_ASSERT(sum_eq(&q.node_sum, &r.node_sum));
	T_EQ_INT(gd_report_dec(b.p, b.len - 1, &q), BABL_EPROTO);
	wbuf_free(&b);
}

static void
case_table_compares_once(void)
{
	struct gd_table *t;
	struct gd_report r[GD_NODES];
	struct gd_sum a, b;
	sum_of("same", 4, 4, "", WIRE_EXITED, 0, NULL, &a);
	sum_of("same", 4, 4, "", WIRE_EXITED, 1, NULL, &b);
	T_EQ_INT(gd_open(&t), 0);
	/* Signed digests before the guard's own: compared when it comes. */
	T_EQ_INT(gd_note(t, 10, 1, 0, &a, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 10, 2, 0, &b, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 10, 3, 0, &a, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 10, 9, 1, &a, r, GD_NODES), 1);
	T_EQ_INT(r[0].node, 2);
	T_EQ_INT(r[0].call, 10);
	T_EQ_MEM(r[0].node_sum.digest, b.digest, 32);
	T_EQ_MEM(r[0].guard_sum.digest, a.digest, 32);
	T_EQ_INT(r[0].node_sum.code, 1); /* the report says what differs */
	/* Again: nothing new. */
	T_EQ_INT(gd_note(t, 10, 9, 1, &b, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 10, 2, 0, &a, r, GD_NODES), 0); /* a node's first digest counts */
	/* The guard's own first, then a differing one. */
	T_EQ_INT(gd_note(t, 11, 9, 1, &a, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 11, 1, 0, &a, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 11, 3, 0, &b, r, GD_NODES), 1);
	T_EQ_INT(r[0].node, 3);
	T_EQ_INT(r[0].node_sum.code, 1);
	/* A newer call takes the slot; the older one is then ignored. */
	T_EQ_INT(gd_note(t, 10 + GD_SLOTS, 1, 0, &b, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 10, 5, 0, &b, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 10 + GD_SLOTS, 9, 1, &a, r, GD_NODES), 1);
	/* Up to GD_NODES nodes a call; the rest are not kept. */
	for (uint64_t node = 1; node <= GD_NODES + 2; node++)
		T_EQ_INT(gd_note(t, 12, node, 0, &b, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 12, 99, 1, &a, r, GD_NODES), GD_NODES);
	T_EQ_INT(r[GD_NODES - 1].node, GD_NODES);
	gd_close(t);
}

static const struct t_case cases[] = {
	{"digest_covers_everything", case_digest_covers_everything},
	{"segments", case_segments},
	{"chunks_do_not_matter", case_chunks_do_not_matter},
	{"diff", case_diff},
	{"diff_of_garbage", case_diff_of_garbage},
	{"item_round_trip", case_item_round_trip},
	{"batch_round_trip", case_batch_round_trip},
	{"batch_tampered", case_batch_tampered},
	{"report_round_trip", case_report_round_trip},
	{"table_compares_once", case_table_compares_once},
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
