/* guard.c - run digests, signed digest batches, the guard's table; see guard.h. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "guard.h"
#include "wire.h"

void
gd_run_init(struct gd_run *r)
{
	crypto_generichash_init(&r->out, NULL, 0, 32);
	crypto_generichash_init(&r->err, NULL, 0, 32);
}

void
gd_run_update(struct gd_run *r, int stream, const void *p, size_t n)
{
	crypto_generichash_update(stream == 2 ? &r->err : &r->out, p, n);
}

void
gd_run_final(struct gd_run *r, uint8_t kind, int32_t code, const void *writes, size_t wl,
    uint8_t digest[32])
{
	uint8_t ho[32], he[32], ex[5];
	crypto_generichash_state st;
	crypto_generichash_final(&r->out, ho, 32);
	crypto_generichash_final(&r->err, he, 32);
	ex[0] = kind;
	be32_put(ex + 1, (uint32_t)code);
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)GD_TAG, sizeof GD_TAG - 1);
	crypto_generichash_update(&st, ho, 32);
	crypto_generichash_update(&st, he, 32);
	crypto_generichash_update(&st, ex, 5);
	if (wl)
		crypto_generichash_update(&st, writes, wl);
	crypto_generichash_final(&st, digest, 32);
}

int
gd_item_add(struct wbuf *items, uint64_t call, const uint8_t digest[32])
{
	return wb_u64(items, call) || wb_raw(items, digest, 32) ? BABL_ENOMEM : 0;
}

static void
batch_sign_hash(const uint8_t *p, size_t len, uint8_t h[64])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 64);
	crypto_generichash_update(&st, (const uint8_t *)GD_SIGN_TAG, sizeof GD_SIGN_TAG - 1);
	crypto_generichash_update(&st, p, len);
	crypto_generichash_final(&st, h, 64);
}

int
gd_batch_seal(struct wbuf *out, uint64_t node, const uint8_t pk[32], const uint8_t sk[64],
    const uint8_t *items, uint32_t n)
{
	size_t start = out->len;
	uint8_t h[64], sig[64];
	if (wb_u64(out, node) || wb_raw(out, pk, 32) || wb_u32(out, n) ||
	    (n && wb_raw(out, items, (size_t)n * GD_ITEM)))
		return BABL_ENOMEM;
	batch_sign_hash(out->p + start, out->len - start, h);
	crypto_sign_detached(sig, NULL, h, sizeof h, sk);
	return wb_raw(out, sig, 64) ? BABL_ENOMEM : 0;
}

int
gd_batch_open(const void *p, size_t len, uint64_t *node, const uint8_t **pk, uint32_t *n,
    const uint8_t **items)
{
	const uint8_t *b = p;
	uint8_t h[64];
	if (len < GD_BATCH_HDR + 64)
		return BABL_EPROTO;
	uint32_t cnt = be32_get(b + 40);
	if (cnt > GD_BATCH_MAX || len != GD_BATCH_HDR + (size_t)cnt * GD_ITEM + 64 || !be64_get(b))
		return BABL_EPROTO;
	batch_sign_hash(b, len - 64, h);
	if (crypto_sign_verify_detached(b + len - 64, h, sizeof h, b + 8))
		return BABL_EPERM;
	*node = be64_get(b);
	*pk = b + 8;
	*n = cnt;
	*items = b + GD_BATCH_HDR;
	return 0;
}

int
gd_report_enc(struct wbuf *b, const struct gd_report *r)
{
	return wb_u64(b, r->guard) || wb_u64(b, r->call) || wb_u64(b, r->node) ||
	    wb_raw(b, r->guard_digest, 32) || wb_raw(b, r->node_digest, 32) ? BABL_ENOMEM : 0;
}

int
gd_report_dec(const void *p, size_t len, struct gd_report *r)
{
	const uint8_t *b = p;
	if (len != GD_REPORT_LEN)
		return BABL_EPROTO;
	r->guard = be64_get(b);
	r->call = be64_get(b + 8);
	r->node = be64_get(b + 16);
	memcpy(r->guard_digest, b + 24, 32);
	memcpy(r->node_digest, b + 56, 32);
	return r->call && r->node ? 0 : BABL_EPROTO;
}

struct gd_slot {
	uint64_t call;
	int has_self;
	uint8_t self[32];
	int n;
	uint64_t node[GD_NODES];
	uint8_t dg[GD_NODES][32];
	uint8_t reported[GD_NODES];
};

struct gd_table {
	struct gd_slot *s;
};

int
gd_open(struct gd_table **out)
{
	struct gd_table *t = calloc(1, sizeof *t);
	if (!t || !(t->s = calloc(GD_SLOTS, sizeof *t->s))) {
		free(t);
		return BABL_ENOMEM;
	}
	*out = t;
	return 0;
}

void
gd_close(struct gd_table *t)
{
	if (!t)
		return;
	free(t->s);
	free(t);
}

static int
mismatch(struct gd_slot *s, int i, struct gd_report *out)
{
	if (s->reported[i] || memcmp(s->dg[i], s->self, 32) == 0)
		return 0;
	s->reported[i] = 1;
	out->call = s->call;
	out->node = s->node[i];
	memcpy(out->guard_digest, s->self, 32);
	memcpy(out->node_digest, s->dg[i], 32);
	return 1;
}

int
gd_note(struct gd_table *t, uint64_t call, uint64_t node, int self, const uint8_t digest[32],
    struct gd_report *out, int cap)
{
	struct gd_slot *s = &t->s[call % GD_SLOTS];
	int k = 0;
	if (s->call != call) {
		if (s->call > call)
			return 0;
		memset(s, 0, sizeof *s);
		s->call = call;
	}
	if (self) {
		if (s->has_self)
			return 0;
		s->has_self = 1;
		memcpy(s->self, digest, 32);
		for (int i = 0; i < s->n && k < cap; i++)
			k += mismatch(s, i, &out[k]);
		return k;
	}
	for (int i = 0; i < s->n; i++)
		if (s->node[i] == node)
			return 0; /* a node's first digest for a call is the one */
	if (s->n == GD_NODES)
		return 0;
	s->node[s->n] = node;
	memcpy(s->dg[s->n], digest, 32);
	s->reported[s->n] = 0;
	s->n++;
	if (s->has_self && cap > 0)
		k += mismatch(s, s->n - 1, &out[0]);
	return k;
}
