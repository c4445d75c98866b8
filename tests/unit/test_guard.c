/* test_guard.c - run digests, signed digest batches, reports, the guard's table. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "guard.h"
#include "t.h"
#include "wire.h"

static void
digest_of(const char *out, const char *err, uint8_t kind, int32_t code, const char *writes,
    uint8_t d[32])
{
	struct gd_run r;
	gd_run_init(&r);
	/* Chunking must not matter: feed stdout a byte at a time. */
	for (const char *p = out; *p; p++)
		gd_run_update(&r, 1, p, 1);
	gd_run_update(&r, 2, err, strlen(err));
	gd_run_final(&r, kind, code, writes, writes ? strlen(writes) : 0, d);
}

static void
case_digest_covers_everything(void)
{
	uint8_t a[32], b[32];
	digest_of("hello\n", "", 1, 0, NULL, a);
	struct gd_run r;
	gd_run_init(&r);
	gd_run_update(&r, 1, "hello\n", 6);
	gd_run_final(&r, 1, 0, NULL, 0, b);
	T_EQ_MEM(a, b, 32);
	digest_of("hello!", "", 1, 0, NULL, b);
	T_ASSERT(memcmp(a, b, 32) != 0);
	digest_of("", "hello\n", 1, 0, NULL, b); /* same bytes, other stream */
	T_ASSERT(memcmp(a, b, 32) != 0);
	digest_of("hello\n", "", 1, 1, NULL, b);
	T_ASSERT(memcmp(a, b, 32) != 0);
	digest_of("hello\n", "", 2, 0, NULL, b); /* signalled, not exited */
	T_ASSERT(memcmp(a, b, 32) != 0);
	digest_of("hello\n", "", 1, 0, "k=v", b);
	T_ASSERT(memcmp(a, b, 32) != 0);
}

static void
make_batch(struct wbuf *out, uint64_t node, uint8_t pk[32], uint8_t sk[64], uint32_t n)
{
	struct wbuf items = {0};
	uint8_t d[32];
	crypto_sign_keypair(pk, sk);
	for (uint32_t i = 0; i < n; i++) {
		memset(d, (int)i, 32);
		T_EQ_INT(gd_item_add(&items, 100 + i, d), 0);
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
	T_EQ_INT(be64_get(items + GD_ITEM), 101);
	T_ASSERT(items[GD_ITEM + 8] == 1);
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
	/* Every truncation: a bad layout. */
	for (size_t len = 0; len < b.len; len++)
		T_EQ_INT(gd_batch_open(b.p, len, &node, &gpk, &n, &items), BABL_EPROTO);
	/* Another key in the header, signed by the first: refused. */
	crypto_sign_keypair(pk2, sk2);
	memcpy(b.p + 8, pk2, 32);
	T_EQ_INT(gd_batch_open(b.p, b.len, &node, &gpk, &n, &items), BABL_EPERM);
	wbuf_free(&b);
}

static void
case_report_round_trip(void)
{
	struct gd_report r = {4, 123, 2, {0}, {0}}, q;
	struct wbuf b = {0};
	memset(r.guard_digest, 0xaa, 32);
	memset(r.node_digest, 0xbb, 32);
	T_EQ_INT(gd_report_enc(&b, &r), 0);
	T_EQ_INT(b.len, GD_REPORT_LEN);
	T_EQ_INT(gd_report_dec(b.p, b.len, &q), 0);
	T_EQ_INT(q.guard, 4);
	T_EQ_INT(q.call, 123);
	T_EQ_INT(q.node, 2);
	T_EQ_MEM(q.node_digest, r.node_digest, 32);
	T_EQ_INT(gd_report_dec(b.p, b.len - 1, &q), BABL_EPROTO);
	wbuf_free(&b);
}

static void
case_table_compares_once(void)
{
	struct gd_table *t;
	struct gd_report r[GD_NODES];
	uint8_t a[32], b[32];
	memset(a, 1, 32);
	memset(b, 2, 32);
	T_EQ_INT(gd_open(&t), 0);
	/* Signed digests before the guard's own: compared when it comes. */
	T_EQ_INT(gd_note(t, 10, 1, 0, a, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 10, 2, 0, b, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 10, 3, 0, a, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 10, 9, 1, a, r, GD_NODES), 1);
	T_EQ_INT(r[0].node, 2);
	T_EQ_INT(r[0].call, 10);
	T_EQ_MEM(r[0].node_digest, b, 32);
	T_EQ_MEM(r[0].guard_digest, a, 32);
	/* Again: nothing new. */
	T_EQ_INT(gd_note(t, 10, 9, 1, b, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 10, 2, 0, a, r, GD_NODES), 0); /* a node's first digest counts */
	/* The guard's own first, then a differing one. */
	T_EQ_INT(gd_note(t, 11, 9, 1, a, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 11, 1, 0, a, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 11, 3, 0, b, r, GD_NODES), 1);
	T_EQ_INT(r[0].node, 3);
	/* A newer call takes the slot; the older one is then ignored. */
	T_EQ_INT(gd_note(t, 10 + GD_SLOTS, 1, 0, b, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 10, 5, 0, b, r, GD_NODES), 0);
	T_EQ_INT(gd_note(t, 10 + GD_SLOTS, 9, 1, a, r, GD_NODES), 1);
	gd_close(t);
}

static const struct t_case cases[] = {
	{"digest_covers_everything", case_digest_covers_everything},
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
