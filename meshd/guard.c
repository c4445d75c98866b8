/* guard.c - run digests, signed digest batches, the guard's table; see guard.h. */
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "guard.h"
#include "wire.h"

/* A whole batch goes to the leader as one query argument. */
_Static_assert(GD_BATCH_HDR + (size_t)GD_BATCH_MAX * GD_ITEM + 64 <= WIRE_MAX_STR,
    "a full digest batch must fit a query frame");

uint64_t
gd_seg_end(unsigned i)
{
	return i >= GD_SEGS - 1 ? UINT64_MAX : (uint64_t)1 << (2 * i);
}

uint64_t
gd_seg_start(unsigned i)
{
	return i ? gd_seg_end(i - 1) : 0;
}

/* The segment that holds byte off. */
static unsigned
seg_of(uint64_t off)
{
	unsigned i = 0;
	while (off >= gd_seg_end(i))
		i++;
	return i;
}

static uint32_t
tag32(const uint8_t h[32])
{
	return be32_get(h);
}

void
gd_run_init(struct gd_run *r)
{
	memset(r, 0, sizeof *r);
	hash_init(&r->seg);
	hash_init(&r->out);
	hash_init(&r->err);
}

/* The open segment is complete: its hash joins the stdout hash. */
static void
seg_close(struct gd_run *r)
{
	uint8_t h[32];
	hash_final(&r->seg, h);
	r->seg_tag[r->cur] = (uint16_t)(h[0] << 8 | h[1]);
	hash_update(&r->out, h, 32);
	if (++r->cur < GD_SEGS)
		hash_init(&r->seg);
}

void
gd_run_update(struct gd_run *r, int stream, const void *p, size_t n)
{
	const uint8_t *b = p;
	if (stream == 2) {
		hash_update(&r->err, b, n);
		r->err_len += n;
		return;
	}
	while (n) {
		uint64_t room = gd_seg_end(r->cur) - r->out_len;
		size_t k = room < n ? (size_t)room : n;
		hash_update(&r->seg, b, k);
		r->out_len += k;
		b += k;
		n -= k;
		if (r->out_len == gd_seg_end(r->cur))
			seg_close(r);
	}
}

void
gd_run_final(struct gd_run *r, uint8_t kind, int32_t code, const void *writes, size_t wl,
    struct gd_sum *s)
{
	uint8_t ho[32], he[32], hw[32], len[8], ex[5];
	struct hash_state st;
	if (r->cur < GD_SEGS && r->out_len > gd_seg_start(r->cur))
		seg_close(r);
	be64_put(len, r->out_len);
	hash_update(&r->out, len, 8);
	hash_final(&r->out, ho);
	hash_final(&r->err, he);
	memset(s, 0, sizeof *s);
	if (wl) {
		hash_once(hw, writes, wl);
		s->kv_tag = tag32(hw);
	}
	ex[0] = kind;
	be32_put(ex + 1, (uint32_t)code);
	hash_init(&st);
	hash_update(&st, (const uint8_t *)GD_TAG, sizeof GD_TAG - 1);
	hash_update(&st, ho, 32);
	hash_update(&st, he, 32);
	hash_update(&st, ex, 5);
	if (wl)
		hash_update(&st, hw, 32);
	hash_final(&st, s->digest);
	s->out_len = r->out_len;
	s->err_len = r->err_len;
	s->out_tag = tag32(ho);
	s->err_tag = tag32(he);
	memcpy(s->seg, r->seg_tag, sizeof s->seg);
	s->kind = kind;
	s->code = code;
}

void
gd_diff(const struct gd_sum *a, const struct gd_sum *b, struct gd_diff *d)
{
	unsigned k = GD_SEGS;
	memset(d, 0, sizeof *d);
	for (unsigned i = 0; i < GD_SEGS && k == GD_SEGS; i++)
		if (a->seg[i] != b->seg[i])
			k = i;
	/* Where the shorter output ends, the two differ (at the latest). */
	uint64_t lim = a->out_len;
	if (a->out_len != b->out_len) {
		uint64_t m = a->out_len < b->out_len ? a->out_len : b->out_len;
		if (seg_of(m) < k)
			k = seg_of(m);
		lim = m + 1;
	}
	if (k < GD_SEGS || a->out_len != b->out_len || a->out_tag != b->out_tag) {
		d->parts |= GD_OUT;
		if (k < GD_SEGS) {
			uint64_t lo = gd_seg_start(k), hi = gd_seg_end(k);
			if (hi > lim)
				hi = lim;
			if (hi > lo) {
				d->where = 1;
				d->lo = lo;
				d->hi = hi;
			}
		}
	}
	if (a->err_len != b->err_len || a->err_tag != b->err_tag)
		d->parts |= GD_ERR;
	if (a->kind != b->kind || a->code != b->code)
		d->parts |= GD_EXIT;
	if (a->kv_tag != b->kv_tag)
		d->parts |= GD_KV;
}

struct text_at {
	char *p;
	size_t cap, used;
	int n; /* clauses so far */
};

/* One more clause, after "; " if it is not the first. */
static void
say(struct text_at *t, const char *fmt, ...)
{
	va_list ap;
	int w;
	if (t->n++ && t->used + 1 < t->cap) {
		w = snprintf(t->p + t->used, t->cap - t->used, "; ");
		t->used += w < 0 ? 0 : (size_t)w;
	}
	if (t->used + 1 >= t->cap) {
		t->used = t->cap - 1;
		return;
	}
	va_start(ap, fmt);
	w = vsnprintf(t->p + t->used, t->cap - t->used, fmt, ap);
	va_end(ap);
	t->used += w < 0 ? 0 : (size_t)w;
	if (t->used >= t->cap)
		t->used = t->cap - 1;
}

static void
exit_text(const struct gd_sum *s, char *buf, size_t cap)
{
	if (s->kind == WIRE_EXITED)
		snprintf(buf, cap, "%" PRId32, s->code);
	else if (s->kind == WIRE_SIGNALED)
		snprintf(buf, cap, "signal %" PRId32, s->code);
	else
		snprintf(buf, cap, "kind %u code %" PRId32, s->kind, s->code);
}

char *
gd_diff_text(const struct gd_sum *a, const struct gd_sum *b, char *buf, size_t cap)
{
	struct gd_diff d;
	struct text_at t = {buf, cap, 0, 0};
	if (!cap)
		return buf;
	buf[0] = 0;
	gd_diff(a, b, &d);
	if (d.parts & GD_OUT) {
		if (d.where && d.hi - d.lo == 1)
			say(&t, "stdout differs first at byte %" PRIu64 ", lengths %" PRIu64 " vs %"
			    PRIu64, d.lo, a->out_len, b->out_len);
		else if (d.where)
			say(&t, "stdout differs first in bytes [%" PRIu64 ",%" PRIu64 "), lengths %"
			    PRIu64 " vs %" PRIu64, d.lo, d.hi, a->out_len, b->out_len);
		else
			say(&t, "stdout differs, lengths %" PRIu64 " vs %" PRIu64, a->out_len,
			    b->out_len);
	}
	if (d.parts & GD_ERR)
		say(&t, "stderr differs, lengths %" PRIu64 " vs %" PRIu64, a->err_len, b->err_len);
	if (d.parts & GD_EXIT) {
		char ea[48], eb[48];
		exit_text(a, ea, sizeof ea);
		exit_text(b, eb, sizeof eb);
		say(&t, "exit differs: %s vs %s", ea, eb);
	}
	if (d.parts & GD_KV)
		say(&t, "kv writes differ");
	if (!d.parts)
		say(&t, "no part's tag differs, only the digests do");
	return buf;
}

static int
sum_enc(struct wbuf *b, const struct gd_sum *s)
{
	int rc = wb_raw(b, s->digest, 32) || wb_u64(b, s->out_len) || wb_u32(b, s->out_tag);
	for (unsigned i = 0; i < GD_SEGS && !rc; i++)
		rc = wb_u16(b, s->seg[i]);
	return rc || wb_u64(b, s->err_len) || wb_u32(b, s->err_tag) || wb_u8(b, s->kind) ||
	    wb_u32(b, (uint32_t)s->code) || wb_u32(b, s->kv_tag) ? BABL_ENOMEM : 0;
}

static void
sum_dec(struct rd *r, struct gd_sum *s)
{
	const uint8_t *d = rd_fixed(r, 32);
	if (d)
		memcpy(s->digest, d, 32);
	s->out_len = rd_u64(r);
	s->out_tag = rd_u32(r);
	for (unsigned i = 0; i < GD_SEGS; i++)
		s->seg[i] = rd_u16(r);
	s->err_len = rd_u64(r);
	s->err_tag = rd_u32(r);
	s->kind = rd_u8(r);
	s->code = (int32_t)rd_u32(r);
	s->kv_tag = rd_u32(r);
}

int
gd_item_add(struct wbuf *items, uint64_t call, const struct gd_sum *s)
{
	size_t len = items->len;
	if (wb_u64(items, call) || sum_enc(items, s)) {
		items->len = len;
		return BABL_ENOMEM;
	}
	return 0;
}

void
gd_item_get(const uint8_t *items, uint32_t i, uint64_t *call, struct gd_sum *s)
{
	struct rd r;
	rd_init(&r, items + (size_t)i * GD_ITEM, GD_ITEM);
	*call = rd_u64(&r);
	sum_dec(&r, s);
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
gd_batch_read(const void *p, size_t len, uint64_t *node, const uint8_t **pk, uint32_t *n,
    const uint8_t **items)
{
	const uint8_t *b = p;
	if (len < GD_BATCH_HDR + 64)
		return BABL_EPROTO;
	uint32_t cnt = be32_get(b + 40);
	if (cnt > GD_BATCH_MAX || len != GD_BATCH_HDR + (size_t)cnt * GD_ITEM + 64 || !be64_get(b))
		return BABL_EPROTO;
	*node = be64_get(b);
	*pk = b + 8;
	*n = cnt;
	*items = b + GD_BATCH_HDR;
	return 0;
}

int
gd_batch_open(const void *p, size_t len, uint64_t *node, const uint8_t **pk, uint32_t *n,
    const uint8_t **items)
{
	const uint8_t *b = p;
	uint8_t h[64];
	int rc = gd_batch_read(p, len, node, pk, n, items);
	if (rc)
		return rc;
	batch_sign_hash(b, len - 64, h);
	return crypto_sign_verify_detached(b + len - 64, h, sizeof h, b + 8) ? BABL_EPERM : 0;
}

int
gd_report_enc(struct wbuf *b, const struct gd_report *r)
{
	size_t len = b->len;
	if (wb_u64(b, r->guard) || wb_u64(b, r->call) || wb_u64(b, r->node) ||
	    sum_enc(b, &r->guard_sum) || sum_enc(b, &r->node_sum)) {
		b->len = len;
		return BABL_ENOMEM;
	}
	return 0;
}

int
gd_report_dec(const void *p, size_t len, struct gd_report *r)
{
	struct rd rd;
	if (len != GD_REPORT_LEN)
		return BABL_EPROTO;
	rd_init(&rd, p, len);
	r->guard = rd_u64(&rd);
	r->call = rd_u64(&rd);
	r->node = rd_u64(&rd);
	sum_dec(&rd, &r->guard_sum);
	sum_dec(&rd, &r->node_sum);
	return rd_done(&rd) == 0 && r->call && r->node ? 0 : BABL_EPROTO;
}

/* One call's summaries: the guard's own and the nodes' (p[0..n), grown as
 * nodes come; kept for the slot's next call). */
struct gd_peer {
	uint64_t node;
	int reported;
	struct gd_sum sum;
};

struct gd_slot {
	uint64_t call;
	int has_self;
	struct gd_sum self;
	int n, cap;
	struct gd_peer *p;
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
	for (size_t i = 0; i < GD_SLOTS; i++)
		free(t->s[i].p);
	free(t->s);
	free(t);
}

static int
mismatch(struct gd_slot *s, int i, struct gd_report *out)
{
	struct gd_peer *p = &s->p[i];
	if (p->reported || memcmp(p->sum.digest, s->self.digest, 32) == 0)
		return 0;
	p->reported = 1;
	out->call = s->call;
	out->node = p->node;
	out->guard_sum = s->self;
	out->node_sum = p->sum;
	return 1;
}

int
gd_note(struct gd_table *t, uint64_t call, uint64_t node, int self, const struct gd_sum *sum,
    struct gd_report *out, int cap)
{
	struct gd_slot *s = &t->s[call % GD_SLOTS];
	int k = 0;
	if (s->call != call) {
		if (s->call > call)
			return 0;
		s->call = call;
		s->has_self = 0;
		s->n = 0;
	}
	if (self) {
		if (s->has_self)
			return 0;
		s->has_self = 1;
		s->self = *sum;
		for (int i = 0; i < s->n && k < cap; i++)
			k += mismatch(s, i, &out[k]);
		return k;
	}
	for (int i = 0; i < s->n; i++)
		if (s->p[i].node == node)
			return 0; /* a node's first digest for a call is the one */
	if (s->n == GD_NODES)
		return 0;
	if (s->n == s->cap) {
		int nc = s->cap ? 2 * s->cap : 4;
		struct gd_peer *np = realloc(s->p, (size_t)nc * sizeof *np);
		if (!np)
			return BABL_ENOMEM;
		s->p = np;
		s->cap = nc;
	}
	s->p[s->n].node = node;
	s->p[s->n].sum = *sum;
	s->p[s->n].reported = 0;
	s->n++;
	if (s->has_self && cap > 0)
		k += mismatch(s, s->n - 1, &out[0]);
	return k;
}
