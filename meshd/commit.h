/*
 * commit.h - group commit: the thread that makes proposals durable.
 *
 * The main thread submits proposals (log entries with their index already
 * assigned) and state writes; the commit thread appends and writes
 * everything that is queued in one durable LMDB transaction, so concurrent
 * calls share the cost of a sync.  Finished batches come back, in order,
 * through commit_take(); the thread writes to wake_fd (an eventfd) each
 * time one is ready.
 *
 * Ownership: submitted proposals and ops belong to the committer until
 * they come back from commit_take; then they are the caller's again.
 */
#ifndef MESHD_COMMIT_H
#define MESHD_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "entry.h"
#include "store.h"

struct prop {
	struct prop *next;
	struct entry e;     /* type, term, index set by the proposer; prev and
	                       hash set when persisted */
	uint8_t *buf;       /* payload, malloc'd; buf[0..e.len) */
	void *owner;        /* whoever waits on it (a call, a session) */
	uint64_t cookie;
	int lazy;           /* nobody waits on its durability: it may wait
	                       for a proposal that is waited on (below) */
};

struct kvop {
	struct kvop *next;
	uint8_t db;
	uint8_t del;
	uint32_t kl;
	size_t vl;
	uint8_t *k, *v;     /* both point into this allocation */
};

struct committer;

int commit_start(struct committer **out, struct store *st, int wake_fd);
/* Finish the queued work, then stop the thread and free. */
void commit_stop(struct committer *c);

/*
 * A state write to go into the next transaction (copies k and v).  Writes
 * are gathered on the caller's side and handed to the thread together by
 * commit_flush (the main loop calls it once per turn), or by the next
 * commit_submit, commit_sync or commit_job, which keep their order.
 */
int commit_put(struct committer *c, int db, const void *k, size_t kl,
    const void *v, size_t vl);
int commit_del(struct committer *c, int db, const void *k, size_t kl);
void commit_flush(struct committer *c);
/*
 * commit_flush, and the number of the transaction by which every write
 * handed over so far is committed: once commit_stats counts that many,
 * the store holds them.  (Counted before the hand-over, the thread could
 * start a batch without them in between, and a reader trust the store a
 * transaction too early.)
 */
uint64_t commit_flush_mark(struct committer *c);

/*
 * Queue a proposal, or a list of them linked by next, in order (ownership
 * passes to the committer).  Lazy proposals, like state writes, wait a
 * little for one that is not lazy to share its transaction, unless someone
 * waits in commit_sync.
 */
void commit_submit(struct committer *c, struct prop *p);

/*
 * How many calls are running that will propose something soon: with many,
 * a transaction waits a little (at most a millisecond) for more proposals,
 * so that one sync serves more of them; with few, it is written at once.
 */
void commit_pace(struct committer *c, size_t inflight);
void commit_submit_list(struct committer *c, struct prop *head);

/*
 * Take the proposals of every finished batch, oldest first (NULL if none).
 * *err is 0, or the error that failed them: nothing of a failed batch, nor
 * of anything queued behind it, was written.
 */
struct prop *commit_take(struct committer *c, int *err);

/* Block until everything queued so far is durable (or failed): 0 or the
 * error. */
int commit_sync(struct committer *c);

/* Bytes queued and not yet durable. */
size_t commit_backlog(struct committer *c);

/* Totals for status and the benchmark. */
void commit_stats(struct committer *c, uint64_t *txns, uint64_t *entries);

/*
 * Run fn(arg) on the commit thread once what was queued before it is
 * written (a replicated node persists its Raft batches so: fn does its own
 * durable transaction).  One job at a time: BABL_EBUSY while one is queued
 * or its result has not been taken.  commit_job_done gives 1 and fn's
 * result once it ran (wake_fd is written then), else 0.
 */
int commit_job(struct committer *c, int (*fn)(void *), void *arg);
int commit_job_done(struct committer *c, int *rc);

void prop_free(struct prop *p);

#endif
