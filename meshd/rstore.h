/*
 * rstore.h - the Raft storage adapter: raft.h's ready batches made durable
 * in the LMDB store of store.h, and read back after a restart.
 *
 *	struct rstore *rs;
 *	rstore_open(&rs, dir, map_bytes, map_max);   (cuts a torn tail)
 *	rstore_restore(rs, r);                       (or rstore_load + raft_restore)
 *	while (raft_ready(r, &rd) > 0) {
 *		rstore_persist(rs, &rd, install, arg);   (one durable transaction)
 *		send rd.msgs; apply rd.committed; raft_advance(r, &rd);
 *	}
 *
 * Durability.  rstore_persist writes everything a ready asks for (the
 * snapshot, the truncation, the new entries and the hard state) in one LMDB
 * write transaction and returns only once it is committed (LMDB syncs at
 * commit).  So the term and vote are durable before any message of the
 * same ready is sent, and no state on disk is ever half a ready.
 *
 * What is stored where:
 *	DB_META "raft.term", "raft.vote", "raft.commit": the hard state (u64).
 *	DB_META "raft.snap": the meta of the newest snapshot: u64 index, term,
 *	  size, then the configuration in raft_conf_encode form.
 *	DB_META "applied": the state machine's applied index (meshd's own key;
 *	  rstore writes it only when a snapshot is installed).
 *	DB_LOG: the entries, as meshd log entries (entry.h), with the meshd
 *	  entry's index and term equal to the Raft entry's.
 *
 * The entry mapping (Raft entry <-> meshd log entry):
 *	RAFT_ENT_NORMAL: the data is a meshd entry body, one type byte (an
 *	  enum entry_type) and the payload: stored as that type with that
 *	  payload, byte for byte.  A body must be at least one byte, of a known
 *	  type, and may not be one of the two reserved ENT_NOOP forms below
 *	  (rstore_body_check says whether a proposal is acceptable; propose
 *	  only bodies it accepts).
 *	RAFT_ENT_NOOP: ENT_NOOP with an empty payload.
 *	RAFT_ENT_CONF: ENT_NOOP whose payload is RSTORE_CONF_MAGIC (8 bytes)
 *	  followed by the configuration's bytes (raft_conf_encode).  A
 *	  dedicated entry type would be clearer (see RSTORE_ENT_CONF); until
 *	  entry.h has one, entry_open accepts no type above ENT_MAX.
 *	Anchor: when a snapshot replaces the log, the log restarts with one
 *	  ENT_NOOP entry at the snapshot's index and term whose payload is
 *	  RSTORE_SNAP_MAGIC and whose prev is zeros; the entries after it chain
 *	  to it.  It is never handed to Raft (it is covered by the snapshot).
 * The hash chain thus holds over the stored log from its first entry:
 * rstore_verify checks it.  meshd's existing ENT_NOOP entries (8-byte
 * barriers) remain normal entries: neither reserved form is 8 bytes long.
 *
 * Recovery.  rstore_open checks the end of the log: while the last entry
 * fails its checksum, carries the wrong index, or does not chain to the
 * entry before it (a torn write), it is cut, but only if it lies after the
 * persisted commit index.  A bad entry at or below the commit index, or a
 * log that ends before it, is corruption: BABL_ECORRUPT, with the index in
 * rstore_errstr, and nothing is cut.
 *
 * A full map.  When a write finds the map full, the transaction is
 * aborted (nothing of it is written), the map grows (doubling, at least
 * enough for the ready, at most to map_max) and the write is retried.  At
 * the ceiling rstore_persist fails with BABL_ETOOBIG and says so; the store
 * is as it was before the call.  Growing needs no other transaction of this
 * process to be active (an LMDB rule): the caller must make sure of that
 * around rstore_persist and rstore_compact.
 *
 * One thread uses an rstore at a time.  Errors are negative BABL_E* codes
 * with a sentence in rstore_errstr.
 */
#ifndef MESHD_RSTORE_H
#define MESHD_RSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "raft.h"
#include "store.h"

#define RSTORE_CONF_MAGIC "RAFTCONF" /* 8 bytes, no NUL stored */
#define RSTORE_SNAP_MAGIC "RAFTSNAP"
#define RSTORE_MAGIC_LEN 8

/*
 * Proposed: a meshd entry type of its own for configurations, ENT_CONF = 8
 * in entry.h (and ENT_MAX = 8), whose payload is the raft_conf_encode
 * bytes.  Not used yet: entry_open refuses types above ENT_MAX.
 */
#define RSTORE_ENT_CONF 8

struct rstore;

/*
 * Open (creating) the store in dir with a map of map_bytes that may grow
 * to map_max (0: map_bytes, it never grows), and cut a torn tail.  On
 * failure *out may still be set so that rstore_errstr can say why; call
 * rstore_close on it either way.  *cut (may be NULL) gets the number of
 * entries cut.  Returns 0, BABL_ECORRUPT, BABL_EIO, BABL_ENOMEM.
 */
int rstore_open(struct rstore **out, const char *dir, uint64_t map_bytes,
    uint64_t map_max, uint64_t *cut);
void rstore_close(struct rstore *rs); /* NULL is a no-op */

/* The underlying store, for the state machine's own transactions. */
struct store *rstore_store(struct rstore *rs);
const char *rstore_errstr(const struct rstore *rs);

/*
 * Installs a snapshot's bytes into the state databases, inside the
 * transaction t that also records its meta: return 0 or a negative code
 * (which aborts everything).
 */
typedef int (*rstore_install_fn)(void *arg, struct store_txn *t,
    const struct raft_snapshot *snap);

/*
 * Make rd durable, in one transaction: if rd->snap, install it (install
 * may be NULL when the caller keeps snapshot bytes elsewhere), record its
 * meta, set "applied" to its index and replace the log with its anchor;
 * then drop entries from rd->truncate on; append rd->entries (each must
 * follow the tail); store rd->hs if rd->hs_changed.  Returns 0,
 * BABL_EINPUT for an entry that cannot be mapped or does not follow the
 * log, BABL_ETOOBIG if the map is full at its ceiling, BABL_ECORRUPT if a
 * truncation finds the entry before its cut bad, BABL_EIO, BABL_ENOMEM.
 * On error nothing of rd is written.
 */
int rstore_persist(struct rstore *rs, const struct raft_ready *rd,
    rstore_install_fn install, void *arg);

/*
 * Record a snapshot the caller took (after raft_compact gave meta): its
 * meta becomes "raft.snap" and the entries before meta->index leave the
 * log (the entry at meta->index stays as the chain's anchor).
 */
int rstore_compact(struct rstore *rs, const struct raft_snap_meta *meta);

/*
 * What raft_restore needs.  The entries are those after the snapshot (or
 * from 1), up to the end of the log: exactly the log Raft keeps.  Entries
 * at or before the snapshot's index are not read.  applied is the stored
 * "applied", raised to the snapshot's index if below it.  rstore_load
 * reads every entry's data; rstore_load_lazy leaves out the data of
 * entries up to applied (data NULL, len kept), but of conf entries, for a
 * core that reads it back with rstore_read (raft.h, ent_read).
 */
struct rstore_state {
	struct raft_hard_state hs;
	int has_snap;
	struct raft_snap_meta snap;
	struct raft_entry *ents; /* n entries; data in buf */
	size_t n;
	uint64_t applied;
	uint8_t *buf;
};

/*
 * Read st (which rstore_state_free releases; also after an error).  Every
 * entry's index, shape and link to the entry before it are checked, and
 * the checksum of each entry whose data is loaded: so the lazy load hashes
 * no applied entry but conf ones, and a start costs a walk over the log's
 * headers, not a hash of all its bytes.  rstore_read checks the checksum
 * of what it reads back; rstore_verify checks everything.  Returns 0,
 * BABL_ECORRUPT (why in rstore_errstr), BABL_EIO, BABL_ENOMEM.
 */
int rstore_load(struct rstore *rs, struct rstore_state *st);
int rstore_load_lazy(struct rstore *rs, struct rstore_state *st);
void rstore_state_free(struct rstore_state *st);

/*
 * The Raft data of the stored entry at index into buf, which must be len
 * bytes, its exact size (a raft_ent_read_fn).  Returns 0, BABL_ENOENT (no
 * such entry), BABL_ECORRUPT (it fails its checks or is not len bytes),
 * BABL_EIO.
 */
int rstore_read(struct rstore *rs, uint64_t index, void *buf, size_t len);

/* rstore_load, then raft_restore(r, ...) with it. */
int rstore_restore(struct rstore *rs, struct raft *r);

/*
 * Check the stored log: every entry from the first to the last opens, has
 * its index and chains to the one before (the first one, an anchor or
 * entry 1, is not checked against anything before it).  *first and *last
 * (either may be NULL) get the range, 0 and 0 if empty.  Returns 0 or
 * BABL_ECORRUPT with the reason in rstore_errstr.
 */
int rstore_verify(struct rstore *rs, uint64_t *first, uint64_t *last);

/* The mapping, for the code that applies entries or reads the log. */

/*
 * 0 if data[0..len) may be proposed as a RAFT_ENT_NORMAL entry: a known
 * type byte, a payload within ENTRY_MAX_PAYLOAD, not a reserved ENT_NOOP
 * form.  BABL_EINPUT or BABL_ETOOBIG otherwise.
 */
int rstore_body_check(const void *data, size_t len);

/*
 * The meshd entry for a Raft entry: e->type, term, index and len set, and
 * the payload as iov[0..*niov) (at most 2), borrowing from re->data.
 */
int rstore_to_entry(const struct raft_entry *re, struct entry *e,
    struct iovec iov[2], int *niov);

/*
 * The Raft entry for a meshd entry: re->data points at a copy made in
 * buf (room for e->len + 1 bytes; NULL for a noop).  With buf NULL, only
 * the index, term, type and len are filled (data NULL).  Returns 0, or
 * BABL_ECORRUPT for an anchor (which has no Raft form).
 */
int rstore_from_entry(const struct entry *e, struct raft_entry *re,
    uint8_t *buf);

#endif
