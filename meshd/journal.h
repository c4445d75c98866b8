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
 * The file: two checkpoint slots (at 0 and JOURNAL_SLOT), each holding a
 * generation number and the base bytes; a checkpoint goes in the slot
 * that does not hold the newest.  Then two record regions of
 * JOURNAL_REGION bytes from JOURNAL_RECORDS on: generation g's records
 * lie in region g % 2.  Generations only grow, but may skip.  Each
 * record carries its generation and sequence number.  Every slot and
 * record carries a BLAKE3 hash of itself, so a torn write (a crash while
 * writing) is found and ends the replay: it was never acknowledged.
 * Records of an older generation that lie further on are stale and end it
 * too.
 *
 * A checkpoint has two steps, so that appends need not stop for it:
 * journal_rotate starts the next generation's records (in the other
 * region) at once; journal_checkpoint, which may run on another thread
 * meanwhile, later writes that generation's slot.  Until it is written,
 * a replay takes the older base, its records, and then the new
 * generation's records.
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
#define JOURNAL_REGION (32u << 20)
#define JOURNAL_MAX ((uint64_t)JOURNAL_RECORDS + 2 * (uint64_t)JOURNAL_REGION)

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
 * Visit the records to replay from the base in order: those of its
 * generation, then those of the next (a checkpoint that did not finish),
 * each until one is torn, stale or absent; fn's non-zero result stops the
 * visit and is returned.  Appends then go after the last record visited.
 */
int journal_replay(struct journal *j, int (*fn)(void *, const uint8_t *, size_t),
    void *arg);

/* Bytes a record body may have before the end of the current region. */
uint64_t journal_room(const struct journal *j);

/* Write a record and sync it.  BABL_ETOOBIG if it does not fit (rotate
 * first), BABL_EINTERNAL before the first rotation, BABL_EIO on a write or
 * sync failure. */
int journal_append(struct journal *j, const void *body, size_t n);

/*
 * Take back the record journal_append wrote last (the commit it was for
 * failed after it): its header is zeroed and synced, so that no replay
 * goes past it, and the next record goes in its place.  Only the blocks
 * the record already has are written: it works on a full disk.
 * BABL_EINTERNAL if there is no such record, BABL_EIO on a failure.
 */
int journal_unappend(struct journal *j);

/*
 * Start the next generation: records appended from now on go to it, in
 * the other region.  Returns its number, for journal_checkpoint.  Not
 * while a journal_checkpoint runs, and not again before the last
 * generation started has its checkpoint (its region would be reused).
 */
uint64_t journal_rotate(struct journal *j);

/*
 * Write generation gen's slot (gen from the last journal_rotate) with
 * base (at most JOURNAL_BASE_MAX bytes), and sync it: from the state base
 * describes, gen's records replay.  Once this returns 0 the older records
 * no longer count.  May run on one other thread beside journal_append;
 * says why it failed in err, not in journal_errstr.
 */
int journal_checkpoint(struct journal *j, uint64_t gen, const void *base, size_t n,
    char *err, size_t errlen);

/* The last failure's text. */
const char *journal_errstr(const struct journal *j);

#endif
