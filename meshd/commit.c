/* commit.c - the group-commit thread; see commit.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commit.h"
#include "err.h"
#include "logmsg.h"

/* At most this much payload goes into one transaction, to bound the dirty
 * pages LMDB holds in memory. */
#define BATCH_BYTES (8u << 20)
/* How long state writes and lazy proposals wait for a proposal to share a
 * transaction with. */
#define OPS_DELAY_NS (10 * 1000 * 1000)
/* With at least PACE_MIN calls running, a transaction waits up to PACE_NS
 * for as many proposals as there are such calls (see commit_pace). */
#define PACE_MIN 8
#define PACE_NS (1000 * 1000)

struct committer {
	struct store *st;
	int wake_fd;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_cond_t idle; /* signalled after each batch */
	int writing;
	int syncers;          /* threads waiting in commit_sync */
	int stopping;
	int failed;          /* sticky: once a commit fails, nothing more is written */
	struct prop *q, **qt; /* queued proposals */
	size_t eager;         /* how many of them are not lazy */
	size_t inflight;      /* commit_pace */
	struct kvop *ops, **opt;
	struct kvop *lops, **lopt; /* the caller's, not yet handed over (no lock) */
	size_t backlog;
	struct prop *done, **donet;
	int done_err;
	uint64_t txns, entries;
	/* One job at a time (commit_job): run after what was queued before it. */
	int (*job)(void *);
	void *job_arg;
	int job_done, job_rc;
};

void
prop_free(struct prop *p)
{
	if (!p)
		return;
	free(p->buf);
	free(p);
}

static int
write_batch(struct committer *c, struct prop *props, struct kvop *ops)
{
	struct store_txn *t;
	int rc = store_begin(c->st, 1, &t);
	if (rc)
		return rc;
	for (struct prop *p = props; p && !rc; p = p->next) {
		struct iovec iov = {p->buf, p->e.len};
		rc = store_append(t, &p->e, &iov, p->e.len ? 1 : 0);
	}
	for (struct kvop *o = ops; o && !rc; o = o->next)
		rc = o->del ? store_del(t, o->db, o->k, o->kl)
		            : store_put(t, o->db, o->k, o->kl, o->v, o->vl);
	if (rc) {
		store_abort(t);
		return rc;
	}
	return store_commit(t);
}

/* Whether the thread must not wait for more proposals now: someone waits
 * for the queue (commit_sync), a job came or the thread stops. */
static int
must_write(const struct committer *c)
{
	return c->stopping || c->syncers || c->job;
}

/* Wait (c->mu held) up to ns for want eager proposals, or until must_write. */
static void
wait_for_proposals(struct committer *c, size_t want, long ns)
{
	struct timespec until;

	if (c->eager >= want || must_write(c))
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += ns;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	while (c->eager < want && !must_write(c) &&
	    pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
		;
}

static void *
commit_main(void *arg)
{
	struct committer *c = arg;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->q && !c->ops && !c->job && !c->stopping)
			pthread_cond_wait(&c->cv, &c->mu);
		if (!c->q && !c->ops && !c->job && c->stopping)
			break;
		if (c->job && !c->q && !c->ops) {
			int (*fn)(void *) = c->job;
			void *jarg = c->job_arg;
			c->writing = 1;
			pthread_mutex_unlock(&c->mu);
			int rc = fn(jarg);
			pthread_mutex_lock(&c->mu);
			c->job = NULL;
			c->job_rc = rc;
			c->job_done = 1;
			c->writing = 0;
			pthread_cond_broadcast(&c->idle);
			pthread_mutex_unlock(&c->mu);
			uint64_t one = 1;
			if (write(c->wake_fd, &one, 8) < 0) {
				/* The eventfd cannot overflow here. */
			}
			pthread_mutex_lock(&c->mu);
			continue;
		}
		/*
		 * State writes alone do not need a sync of their own: the log
		 * can rebuild them.  They, and lazy proposals, wait a little
		 * for a proposal to ride along with, unless someone waits for
		 * them (commit_sync).
		 */
		wait_for_proposals(c, 1, OPS_DELAY_NS);
		/*
		 * Under load, a sync per transaction is most of what a call
		 * costs the node beyond its program: with many calls in
		 * flight, more proposals come soon, and one sync serves them
		 * all.
		 */
		if (c->eager && c->inflight >= PACE_MIN)
			wait_for_proposals(c, c->inflight, PACE_NS);
		/* Take up to BATCH_BYTES of proposals and every queued op. */
		struct prop *props = c->q, *last = NULL;
		size_t bytes = 0, n = 0;
		for (struct prop *p = c->q; p; p = p->next) {
			if (last && bytes + p->e.len > BATCH_BYTES)
				break;
			bytes += p->e.len;
			last = p;
			n++;
			c->eager -= !p->lazy;
		}
		if (last) {
			c->q = last->next;
			last->next = NULL;
			if (!c->q)
				c->qt = &c->q;
		} else {
			props = NULL;
		}
		struct kvop *ops = c->ops;
		c->ops = NULL;
		c->opt = &c->ops;
		int failed = c->failed;
		c->writing = 1;
		pthread_mutex_unlock(&c->mu);

		int rc = failed ? failed : write_batch(c, props, ops);
		if (rc && !failed)
			log_warnx("commit failed: %s (%s); no further writes will be made",
			    babl_strerror(rc), store_errstr(c->st));
		while (ops) {
			struct kvop *o = ops->next;
			free(ops);
			ops = o;
		}

		pthread_mutex_lock(&c->mu);
		if (rc)
			c->failed = rc;
		else {
			c->txns++;
			c->entries += n;
		}
		c->backlog -= bytes;
		c->writing = 0;
		pthread_cond_broadcast(&c->idle);
		if (props) {
			*c->donet = props;
			c->donet = &last->next;
			if (rc)
				c->done_err = rc;
		}
		pthread_mutex_unlock(&c->mu);
		uint64_t one = 1;
		if (write(c->wake_fd, &one, 8) < 0) {
			/* The eventfd cannot overflow here; nothing to do. */
		}
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int
commit_start(struct committer **out, struct store *st, int wake_fd)
{
	struct committer *c = calloc(1, sizeof *c);
	if (!c)
		return BABL_ENOMEM;
	c->st = st;
	c->wake_fd = wake_fd;
	c->qt = &c->q;
	c->opt = &c->ops;
	c->lopt = &c->lops;
	c->donet = &c->done;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	pthread_cond_init(&c->idle, NULL);
	if (pthread_create(&c->thr, NULL, commit_main, c)) {
		free(c);
		return BABL_EINTERNAL;
	}
	*out = c;
	return 0;
}

void
commit_stop(struct committer *c)
{
	if (!c)
		return;
	commit_flush(c);
	pthread_mutex_lock(&c->mu);
	c->stopping = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thr, NULL);
	int err;
	struct prop *p = commit_take(c, &err);
	while (p) {
		struct prop *nx = p->next;
		prop_free(p);
		p = nx;
	}
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

static int
queue_op(struct committer *c, int db, int del, const void *k, size_t kl,
    const void *v, size_t vl)
{
	struct kvop *o = malloc(sizeof *o + kl + vl);
	if (!o)
		return BABL_ENOMEM;
	o->next = NULL;
	o->db = (uint8_t)db;
	o->del = (uint8_t)del;
	o->kl = (uint32_t)kl;
	o->vl = vl;
	o->k = (uint8_t *)(o + 1);
	o->v = o->k + kl;
	memcpy(o->k, k, kl);
	if (vl)
		memcpy(o->v, v, vl);
	*c->lopt = o;
	c->lopt = &o->next;
	return 0;
}

/* Hand the gathered ops over (c->mu held). */
static void
flush_locked(struct committer *c)
{
	if (!c->lops)
		return;
	int idle = !c->ops;
	*c->opt = c->lops;
	c->opt = c->lopt;
	c->lops = NULL;
	c->lopt = &c->lops;
	if (idle) /* (once waiting for ops to share a transaction, it needs no call) */
		pthread_cond_signal(&c->cv);
}

void
commit_flush(struct committer *c)
{
	if (!c->lops)
		return;
	pthread_mutex_lock(&c->mu);
	flush_locked(c);
	pthread_mutex_unlock(&c->mu);
}

uint64_t
commit_flush_mark(struct committer *c)
{
	pthread_mutex_lock(&c->mu);
	flush_locked(c);
	/* The batch being written may have been taken without them; the one
	 * after it takes every queued op. */
	uint64_t mark = c->txns + 2;
	pthread_mutex_unlock(&c->mu);
	return mark;
}

int
commit_put(struct committer *c, int db, const void *k, size_t kl, const void *v,
    size_t vl)
{
	return queue_op(c, db, 0, k, kl, v, vl);
}

int
commit_del(struct committer *c, int db, const void *k, size_t kl)
{
	return queue_op(c, db, 1, k, kl, NULL, 0);
}

void
commit_submit_list(struct committer *c, struct prop *head)
{
	if (!head)
		return;
	commit_flush(c);
	size_t bytes = 0, eager = 0;
	struct prop *last = head;
	for (struct prop *p = head; p; p = p->next) {
		bytes += p->e.len;
		eager += !p->lazy;
		last = p;
	}
	pthread_mutex_lock(&c->mu);
	*c->qt = head;
	c->qt = &last->next;
	c->backlog += bytes;
	c->eager += eager;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

void
commit_pace(struct committer *c, size_t inflight)
{
	pthread_mutex_lock(&c->mu);
	c->inflight = inflight;
	pthread_mutex_unlock(&c->mu);
}

void
commit_submit(struct committer *c, struct prop *p)
{
	p->next = NULL;
	commit_submit_list(c, p);
}

struct prop *
commit_take(struct committer *c, int *err)
{
	pthread_mutex_lock(&c->mu);
	struct prop *p = c->done;
	c->done = NULL;
	c->donet = &c->done;
	*err = c->done_err;
	pthread_mutex_unlock(&c->mu);
	return p;
}

int
commit_sync(struct committer *c)
{
	commit_flush(c);
	pthread_mutex_lock(&c->mu);
	c->syncers++;
	pthread_cond_signal(&c->cv);
	while ((c->q || c->ops || c->writing || c->job) && !c->failed)
		pthread_cond_wait(&c->idle, &c->mu);
	c->syncers--;
	int rc = c->failed;
	pthread_mutex_unlock(&c->mu);
	return rc;
}

size_t
commit_backlog(struct committer *c)
{
	pthread_mutex_lock(&c->mu);
	size_t b = c->backlog;
	pthread_mutex_unlock(&c->mu);
	return b;
}

void
commit_stats(struct committer *c, uint64_t *txns, uint64_t *entries)
{
	pthread_mutex_lock(&c->mu);
	*txns = c->txns;
	*entries = c->entries;
	pthread_mutex_unlock(&c->mu);
}

int
commit_job(struct committer *c, int (*fn)(void *), void *arg)
{
	commit_flush(c);
	pthread_mutex_lock(&c->mu);
	if (c->job || c->job_done) {
		pthread_mutex_unlock(&c->mu);
		return BABL_EBUSY;
	}
	c->job = fn;
	c->job_arg = arg;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int
commit_job_done(struct committer *c, int *rc)
{
	pthread_mutex_lock(&c->mu);
	int done = c->job_done;
	if (done) {
		*rc = c->job_rc;
		c->job_done = 0;
	}
	pthread_mutex_unlock(&c->mu);
	return done;
}
