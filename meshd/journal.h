/*
 * journal.h - the store's write-ahead journal: DIR/journal.
 *
 * A durable LMDB commit flushes the disk twice (its pages, then its meta
 * page); a commit through the journal flushes once: its record is written
 * after the last one, in space written before, and synced.  The store
 * (store.c) then commits to LMDB without a sync, and now and then makes
 * LMDB durable as a whole (a checkpoint), saving LMDB's two meta pages
 * here as the base from which the records that follow are replayed.
 *
 * The file: two checkpoint slots (at 0 and JOURNAL_SLOT), used in turn,
 * each holding a generation number and the base bytes; then the records
 * of the current generation from JOURNAL_RECORDS on, each with its
 * generation and sequence number.  Every slot and record carries a BLAKE3
 * hash of itself, so a torn write (a crash while writing) is found and
 * ends the replay: it was never acknowledged.  Records of an older
 * generation that lie further on are stale and end it too.
 *
 * The file is locked (flock) while open: one process at a time.
 * Pure file I/O, no LMDB: the store gives the base bytes and reads the
 * records.
 */
#ifndef MESHD_JOURNAL_H
#define MESHD_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_SLOT (32u << 10)
#define JOURNAL_RECORDS (64u << 10)
#define JOURNAL_BASE_MAX (JOURNAL_SLOT - 64)
#define JOURNAL_MAX ((uint64_t)JOURNAL_RECORDS + (32u << 20))

struct journal;

/*
 * Open (creating) DIR/journal and lock it.  BABL_EBUSY if another process
 * holds it, BABL_EIO on other failures; why in err either way.
 */
int journal_open(struct journal **out, const char *dir, char *err, size_t errlen);
void journal_close(struct journal *j);

/* The last checkpoint's base bytes (*n 0 if there has been none) and its
 * generation. */
uint64_t journal_base(const struct journal *j, const uint8_t **p, size_t *n);

/*
 * Visit the records of the current generation in order, until one is
 * torn, stale or absent; fn's non-zero result stops the visit and is
 * returned.  Appends then go after the last record visited.
 */
int journal_replay(struct journal *j, int (*fn)(void *, const uint8_t *, size_t),
    void *arg);

/* Bytes a record body may have before the end of the file. */
uint64_t journal_room(const struct journal *j);

/* Write a record and sync it.  BABL_ETOOBIG if it does not fit (checkpoint
 * first), BABL_EIO on a write or sync failure. */
int journal_append(struct journal *j, const void *body, size_t n);

/*
 * Begin a new generation whose records replay from base (at most
 * JOURNAL_BASE_MAX bytes): written to the slot not in use and synced.
 * Once this returns 0 the records before it no longer count.
 */
int journal_checkpoint(struct journal *j, const void *base, size_t n);

/* The last failure's text. */
const char *journal_errstr(const struct journal *j);

#endif
