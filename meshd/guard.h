/*
 * guard.h - outcome digests, the signed batches that carry them in the log,
 * and the comparison a guard makes.  Pure logic: no I/O, no clock.
 *
 * A run's digest is a hash (BLAKE3, hash.h) over a domain tag, the hash of
 * its stdout, the hash of its stderr, its exit (kind, code) and, for a Lua
 * call that succeeded, the hash of its key-value writes as the OUTCOME
 * carries them.  Every node that runs a call computes one (gd_run_*).
 *
 * Stdout is hashed in segments of growing size, [0,1), [1,4), [4,16),
 * [16,64), ... (each four times the one before; the last, from 16 MiB,
 * open-ended): each segment's hash, and the stdout hash is the hash of
 * those of the segments that hold bytes, then the length
 * (u64).  Every byte is hashed once, as a single hash would, and two runs'
 * segment hashes show where their outputs first part.
 *
 * With the digest goes its summary (struct gd_sum): the lengths of stdout and
 * stderr, short tags (leading bytes) of the part hashes, 2 bytes of each
 * stdout segment's hash (0 for a segment past the end) and the exit.  From
 * two summaries gd_diff tells which parts differ and, for stdout, the byte
 * range the first difference lies in.  A summary is encoded as
 *	u8 digest[32], u64 out_len, u32 out_tag, u16 seg[GD_SEGS],
 *	u64 err_len, u32 err_tag, u8 kind, u32 code, u32 kv_tag
 * (kv_tag 0 for a run without writes).
 *
 * A digest batch (an ENT_DIGEST entry's payload) is what one executing node
 * signs with its ed25519 node key:
 *	u64 node id, u8 pk[32], u32 count, count x (u64 call index, summary),
 *	u8 sig[64]
 * the signature covering GD_SIGN_TAG and every byte before it.  gd_batch_open
 * checks the layout and the signature; a node's key is bound to its id by
 * the first batch the log holds from it (the caller keeps that binding).
 *
 * A report (an ENT_REPORT entry's payload) is what a guard found:
 *	u64 guard id, u64 call index, u64 node id, guard's summary, node's summary
 * meaning: the node signed its summary's digest for the call, the guard
 * computed its own, and they differ.
 *
 * The table (gd_table) keeps, for recent calls, the summaries nodes signed
 * and the guard's own; gd_note returns the mismatches a new one reveals,
 * once each.  It holds GD_SLOTS calls (direct-mapped by index: a newer call
 * in the same slot replaces an older one, so a guard compares what it runs
 * within that many calls of the signed digests).
 */
#ifndef MESHD_GUARD_H
#define MESHD_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"

struct wbuf;

#define GD_TAG "babl-run-digest-v2"
#define GD_SIGN_TAG "babl-digest-batch-v2"
#define GD_SEGS 14                /* stdout segments; the last starts at 16 MiB */
#define GD_SUM_LEN (32 + 8 + 4 + 2 * GD_SEGS + 8 + 4 + 1 + 4 + 4)
#define GD_ITEM (8 + GD_SUM_LEN)  /* u64 call + summary */
#define GD_BATCH_HDR (8 + 32 + 4)
#define GD_BATCH_MAX 600          /* items per batch (fits a query frame) */
#define GD_REPORT_LEN (8 * 3 + 2 * GD_SUM_LEN)
#define GD_SLOTS 16384
#define GD_NODES 16               /* digests kept per call */
#define GD_DIFF_TEXT 320          /* room for gd_diff_text */

/* A run's digest and what it is made of, in short (see above). */
struct gd_sum {
	uint8_t digest[32];
	uint64_t out_len, err_len;
	uint32_t out_tag, err_tag, kv_tag;
	uint16_t seg[GD_SEGS];
	uint8_t kind;
	int32_t code;
};

struct gd_run {
	struct hash_state seg, out, err;       /* the open segment; stdout; stderr */
	uint64_t out_len, err_len;
	unsigned cur;                           /* the open segment's number */
	uint16_t seg_tag[GD_SEGS];
};

void gd_run_init(struct gd_run *r);
/* Output of the run, in any chunks: stream 1 stdout, 2 stderr. */
void gd_run_update(struct gd_run *r, int stream, const void *p, size_t n);
/* The run ended: its summary (and digest) into *s; r is spent. */
void gd_run_final(struct gd_run *r, uint8_t kind, int32_t code, const void *writes,
    size_t wl, struct gd_sum *s);

/* Stdout segment i covers bytes [gd_seg_start(i), gd_seg_end(i)); the last
 * one's end is UINT64_MAX. */
uint64_t gd_seg_start(unsigned i);
uint64_t gd_seg_end(unsigned i);

/* Parts of a run, as gd_diff names them. */
enum { GD_OUT = 1, GD_ERR = 2, GD_EXIT = 4, GD_KV = 8 };

struct gd_diff {
	unsigned parts;  /* GD_* of the parts whose summaries differ */
	int where;       /* GD_OUT: 1 if the first differing stdout byte is */
	uint64_t lo, hi; /* known to lie in [lo, hi) (the end of the shorter
	                    output counts as a differing byte) */
};

/* Compare two summaries (any bytes: one may come from an untrusted node). */
void gd_diff(const struct gd_sum *a, const struct gd_sum *b, struct gd_diff *d);

/*
 * The differences in words, a clause a part, a's values first, joined by
 * "; ", e.g. "stdout differs first in bytes [64,100), lengths 100 vs 100;
 * exit differs: 0 vs 1".  Writes at most cap bytes, NUL included (cut short
 * if need be; GD_DIFF_TEXT is always enough), and returns buf.
 */
char *gd_diff_text(const struct gd_sum *a, const struct gd_sum *b, char *buf, size_t cap);

/* Append one (call, summary) item to items: 0 or BABL_ENOMEM. */
int gd_item_add(struct wbuf *items, uint64_t call, const struct gd_sum *s);

/* Item i of a batch gd_batch_open accepted. */
void gd_item_get(const uint8_t *items, uint32_t i, uint64_t *call, struct gd_sum *s);

/* A signed batch of n items into out: 0 or BABL_ENOMEM. */
int gd_batch_seal(struct wbuf *out, uint64_t node, const uint8_t pk[32],
    const uint8_t sk[64], const uint8_t *items, uint32_t n);

/*
 * Check a batch: layout and signature.  On 0, *node, *pk, *n and *items
 * (n x GD_ITEM bytes) borrow from p.  BABL_EPROTO for a bad layout,
 * BABL_EPERM for a bad signature.  gd_batch_read checks the layout alone,
 * for a batch whose signature was checked before: ed25519 verification
 * was 38% of a follower's main thread while it caught up on a log of
 * 20,000 small calls.
 */
int gd_batch_open(const void *p, size_t len, uint64_t *node, const uint8_t **pk,
    uint32_t *n, const uint8_t **items);
int gd_batch_read(const void *p, size_t len, uint64_t *node, const uint8_t **pk,
    uint32_t *n, const uint8_t **items);

struct gd_report {
	uint64_t guard, call, node;
	struct gd_sum guard_sum, node_sum;
};
int gd_report_enc(struct wbuf *b, const struct gd_report *r);
int gd_report_dec(const void *p, size_t len, struct gd_report *r);

struct gd_table;
int gd_open(struct gd_table **out);
void gd_close(struct gd_table *t);

/*
 * Note a summary for call: node's signed one, or (self) the guard's own.
 * Mismatches it reveals go to out[0..cap) (node id, both summaries; guard
 * and call set): the return value is how many (at most cap), or
 * BABL_ENOMEM.  A call older than its slot's current one is ignored
 * (returns 0), as are a node's later summaries for a call and the nodes
 * beyond GD_NODES.
 */
int gd_note(struct gd_table *t, uint64_t call, uint64_t node, int self,
    const struct gd_sum *s, struct gd_report *out, int cap);

#endif
