/*
 * guard.h - outcome digests, the signed batches that carry them in the log,
 * and the comparison a guard makes.  Pure logic: no I/O, no clock.
 *
 * A run's digest is BLAKE2b-256 over a domain tag, the BLAKE2b-256 of its
 * stdout, that of its stderr, its exit (kind, code) and, for a Lua call that
 * succeeded, its key-value writes as the OUTCOME carries them.  Every node
 * that runs a call computes one (gd_run_*).
 *
 * A digest batch (an ENT_DIGEST entry's payload) is what one executing node
 * signs with its ed25519 node key:
 *	u64 node id, u8 pk[32], u32 count, count x (u64 call index, u8 digest[32]),
 *	u8 sig[64]
 * the signature covering GD_SIGN_TAG and every byte before it.  gd_batch_open
 * checks the layout and the signature; a node's key is bound to its id by
 * the first batch the log holds from it (the caller keeps that binding).
 *
 * A report (an ENT_REPORT entry's payload) is what a guard found:
 *	u64 guard id, u64 call index, u64 node id, u8 guard_digest[32],
 *	u8 node_digest[32]
 * meaning: the node signed node_digest for the call, the guard computed
 * guard_digest, and they differ.
 *
 * The table (gd_table) keeps, for recent calls, the digests nodes signed
 * and the guard's own; gd_note returns the mismatches a new digest reveals,
 * once each.  It holds GD_SLOTS calls (direct-mapped by index: a newer call
 * in the same slot replaces an older one, so a guard compares what it runs
 * within that many calls of the signed digests).
 */
#ifndef MESHD_GUARD_H
#define MESHD_GUARD_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

struct wbuf;

#define GD_TAG "babl-run-digest-v1"
#define GD_SIGN_TAG "babl-digest-batch-v1"
#define GD_ITEM 40                /* u64 call + digest */
#define GD_BATCH_HDR (8 + 32 + 4)
#define GD_BATCH_MAX 1500         /* digests per batch (fits a query frame) */
#define GD_REPORT_LEN (8 * 3 + 64)
#define GD_SLOTS 16384
#define GD_NODES 16               /* digests kept per call */

struct gd_run {
	crypto_generichash_state out, err;
};

void gd_run_init(struct gd_run *r);
void gd_run_update(struct gd_run *r, int stream, const void *p, size_t n);
void gd_run_final(struct gd_run *r, uint8_t kind, int32_t code, const void *writes,
    size_t wl, uint8_t digest[32]);

/* Append one (call, digest) item to items. */
int gd_item_add(struct wbuf *items, uint64_t call, const uint8_t digest[32]);

/* A signed batch of n items into out: 0 or BABL_ENOMEM. */
int gd_batch_seal(struct wbuf *out, uint64_t node, const uint8_t pk[32],
    const uint8_t sk[64], const uint8_t *items, uint32_t n);

/*
 * Check a batch: layout and signature.  On 0, *node, *pk, *n and *items
 * (n x GD_ITEM bytes) borrow from p.  BABL_EPROTO for a bad layout,
 * BABL_EPERM for a bad signature.
 */
int gd_batch_open(const void *p, size_t len, uint64_t *node, const uint8_t **pk,
    uint32_t *n, const uint8_t **items);

struct gd_report {
	uint64_t guard, call, node;
	uint8_t guard_digest[32], node_digest[32];
};
int gd_report_enc(struct wbuf *b, const struct gd_report *r);
int gd_report_dec(const void *p, size_t len, struct gd_report *r);

struct gd_table;
int gd_open(struct gd_table **out);
void gd_close(struct gd_table *t);

/*
 * Note a digest for call: node's signed one, or (self) the guard's own.
 * Mismatches it reveals go to out[0..cap) (node id, both digests; guard
 * and call set): the return value is how many (at most cap).  A call older
 * than its slot's current one is ignored (returns 0).
 */
int gd_note(struct gd_table *t, uint64_t call, uint64_t node, int self,
    const uint8_t digest[32], struct gd_report *out, int cap);

#endif
