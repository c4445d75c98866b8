/*
 * kvcache.h - the Lua services' key-value writes that the store does not
 * hold yet.  A call's writes enter when its outcome is proposed; they stay
 * until the state writes that apply them are durable, so that every read
 * (store first, this cache over it) sees the writes of all earlier calls.
 */
#ifndef MESHD_KVCACHE_H
#define MESHD_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

struct kvcache;

int kvc_open(struct kvcache **out);
void kvc_close(struct kvcache *c);

/* Record a write of service sid made by call (deleted: a delete).  A write
 * of an earlier call than the one cached for that key is ignored. */
int kvc_put(struct kvcache *c, const uint8_t sid[32], const void *k, size_t kl,
    int deleted, const void *v, size_t vl, uint64_t call);

/*
 * Look a key up: 1 and the value (borrowed until the next kvc_* change;
 * *deleted set for a delete), or 0 if the cache knows nothing of it.
 */
int kvc_get(struct kvcache *c, const uint8_t sid[32], const void *k, size_t kl,
    int *deleted, const void **v, size_t *vl);

/* Call's write of key k is applied: it may go once txn number `durable_at`
 * of the commit thread has committed (unless a later call wrote k since). */
void kvc_applied(struct kvcache *c, const uint8_t sid[32], const void *k, size_t kl,
    uint64_t call, uint64_t durable_at);

/* Forget call's writes that were never applied (its outcome, in the log,
 * says it changed nothing, or is another node's run): reads go to the
 * store for those keys again. */
void kvc_drop(struct kvcache *c, uint64_t call);

/* Drop what the store now holds (txns: transactions committed so far). */
void kvc_evict(struct kvcache *c, uint64_t txns);

/* Visit the cached keys of sid that begin with prefix. */
typedef void (*kvc_visit)(void *arg, const void *k, size_t kl, int deleted);
void kvc_scan(struct kvcache *c, const uint8_t sid[32], const void *prefix,
    size_t pl, kvc_visit fn, void *arg);

size_t kvc_count(const struct kvcache *c);

#endif
