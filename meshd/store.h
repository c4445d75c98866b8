/*
 * store.h - the log and the state, in one LMDB environment.
 *
 * Databases: the log (index -> entry, see entry.h), and the state that
 * applying the log builds: services, per-service call records, --id
 * outcomes and their recorded output, and meta values.  Write transactions
 * commit durably: a small one as a journal record, synced (one flush),
 * then to LMDB without a sync; a large one (over 256 KiB of changes) to
 * LMDB and then a checkpoint (LMDB synced).  One thread writes; any
 * thread may read in its own read transaction.
 *
 * Errors: BABL_EIO for LMDB failures (logged with mdb_strerror by the
 * caller through store_errstr), BABL_ECORRUPT when a stored entry fails its
 * checksum or chain, BABL_ENOENT when a key is absent, BABL_ETOOBIG when
 * the map is full (the transaction is then aborted and nothing written).
 */
#ifndef MESHD_STORE_H
#define MESHD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "entry.h"

enum store_db {
	DB_LOG,
	DB_META,     /* "applied", "node", ... */
	DB_SERVICES, /* service id -> service record (node.c) */
	DB_NAMES,    /* name -> service id */
	DB_BUNDLES,  /* version id -> bundle bytes */
	DB_CALLS,    /* service id, call index -> call record */
	DB_IDEM,     /* BLAKE2b(service id, id key) -> outcome record */
	DB_IDOUT,    /* idem key, sequence -> recorded output chunk */
	DB_OPEN,     /* call index -> nothing: calls begun and not ended */
	DB_KV,       /* service id, key -> value: Lua services' state */
	DB_N
};

struct store;
struct store_txn;

/*
 * Open (creating) DIR/data.mdb and its journal, DIR/journal (journal.h),
 * which it locks: BABL_EBUSY if another process has the store open.  After
 * an unclean stop, the journal's records since its last checkpoint are
 * applied first.  map_bytes bounds the file's size.
 */
int store_open(struct store **out, const char *dir, uint64_t map_bytes);
/* Open for reading beside the process that has it open (meshd --check on
 * a running node): no journal, no writes. */
int store_open_shared(struct store **out, const char *dir, uint64_t map_bytes);
void store_close(struct store *s);

/* The last LMDB error text, for logs. */
const char *store_errstr(const struct store *s);

/*
 * Whether the last failed commit found the file system that holds the
 * store full (store_errstr then says so, with the space left): freeing
 * space and restarting is the remedy, not a repair.
 */
int store_disk_full(const struct store *s);

/* The committed tail of the log: last index (0 if empty), its hash, term. */
void store_tail(const struct store *s, uint64_t *index, uint8_t hash[32],
    uint64_t *term);

int store_begin(struct store *s, int write, struct store_txn **t);
/* Commit: durable for write transactions.  The txn is freed either way. */
int store_commit(struct store_txn *t);
void store_abort(struct store_txn *t);

int store_put(struct store_txn *t, int db, const void *k, size_t kl,
    const void *v, size_t vl);
int store_del(struct store_txn *t, int db, const void *k, size_t kl);
/* *v points into the map, valid until the txn ends. */
int store_get(struct store_txn *t, int db, const void *k, size_t kl,
    const void **v, size_t *vl);

/*
 * Append e (e->index must be the txn's tail + 1; e->prev is filled from the
 * tail) with its payload in iov; the entry is sealed (entry_seal) and
 * e->hash set.  BABL_EINVAL-like misuse gives BABL_EINTERNAL.
 */
int store_append(struct store_txn *t, struct entry *e, const struct iovec *iov,
    int niov);

/* Read and check one entry; e->payload points into the map. */
int store_entry(struct store_txn *t, uint64_t index, struct entry *e);

/*
 * Visit keys beginning with prefix in order (reverse: from the last),
 * calling cb until it returns non-zero; returns that value or 0.
 */
typedef int (*store_visit)(void *arg, const void *k, size_t kl, const void *v,
    size_t vl);
int store_scan(struct store_txn *t, int db, const void *prefix, size_t pl,
    int reverse, store_visit cb, void *arg);

/*
 * Check entries from index `from` to the tail: each key matches its index,
 * each checksum holds and each prev is the hash of the entry before.
 * Returns 0 and *count, or BABL_ECORRUPT with *bad the first bad index and
 * a reason in why.
 */
int store_verify(struct store *s, uint64_t from, uint64_t *count, uint64_t *bad,
    char *why, size_t whylen);

/*
 * The same, a span at a time: check entries from `from` until about
 * max_bytes of them have been read; *next is where to go on (0 when the
 * tail was reached) and *count how many were checked.
 */
int store_verify_span(struct store *s, uint64_t from, uint64_t max_bytes,
    uint64_t *next, uint64_t *count, uint64_t *bad, char *why, size_t whylen);

/* Meta values as u64. */
int store_meta_get(struct store_txn *t, const char *key, uint64_t *v);
int store_meta_put(struct store_txn *t, const char *key, uint64_t v);

/* Bytes of data.mdb in use (the file runs on: zeros are kept written
 * ahead of the end, so that a commit's sync need not grow the file). */
uint64_t store_used_bytes(const struct store *s);

/*
 * Additions for the Raft storage adapter (rstore.h).
 *
 * store_truncate_from deletes every log entry with index >= index and moves
 * the txn's tail back to the entry before it, which must exist and pass its
 * checksum (or index is 1 and the log becomes empty).  The store's tail
 * follows at store_commit.  Returns 0, BABL_ECORRUPT (or BABL_ENOENT) if
 * the entry before the cut is bad (or missing), BABL_EINTERNAL for index 0
 * or a read-only txn.
 */
int store_truncate_from(struct store_txn *t, uint64_t index);

/*
 * store_log_reset deletes every log entry and sets the txn's tail to index
 * with term 0 and a hash of zeros, so that the next append is index + 1 and
 * chains to zeros (the start of a log that a snapshot replaced).
 */
int store_log_reset(struct store_txn *t, uint64_t index);

/* Delete every log entry with index < index; the tail does not move. */
int store_log_drop_before(struct store_txn *t, uint64_t index);

/* The index of the first log entry in t's view, 0 if the log is empty. */
int store_log_first(struct store_txn *t, uint64_t *index);

/*
 * Grow (or shrink) the map to map_bytes.  LMDB allows this only while no
 * transaction of this process is active; the caller must make sure of it.
 * Returns 0 or BABL_EIO with the reason in store_errstr.
 */
int store_grow(struct store *s, uint64_t map_bytes);

/* The size of the map now, bytes. */
uint64_t store_map_size(const struct store *s);

#endif
