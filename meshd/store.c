/* store.c - the log and state on LMDB; see store.h. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "entry.h"
#include "err.h"
#include "journal.h"
#include "store.h"

static const char *db_names[DB_N] = {"log", "meta", "services", "names",
    "bundles", "calls", "idem", "idout", "open", "kv"};

struct store {
	MDB_env *env;
	MDB_dbi dbi[DB_N];
	char path[4096];
	char err[256];
	/* Committed tail, updated only by the writing thread at commit; read
	 * by others under tail_lock. */
	pthread_mutex_t tail_lock;
	uint64_t tail, tail_term;
	uint8_t tail_hash[32];
	size_t psize;
	/* The journal (journal.h); NULL in a store opened beside its owner
	 * (store_open_shared), which only reads. */
	struct journal *j;
	MDB_txn *pin;      /* the last checkpoint's snapshot: its pages stay */
	uint64_t pin_pg;   /* LMDB's last page when the newest checkpoint began */
	int replaying;     /* applying the journal: nothing is journalled */
	int broken;        /* records could not be replayed: no writes */
	int full;          /* a commit failed on a full file system */
	struct ckpt {
		/* The checkpoint thread (ckpt_main) and what it is given.  The
		 * fields below lock are the thread's while busy. */
		pthread_t thread;
		int started;
		pthread_mutex_t lock;
		pthread_cond_t cond;
		int busy;   /* begun, not yet collected */
		int posted; /* given to the thread (else run by the writer) */
		int done;   /* finished */
		int stop;
		int rc;               /* its failure, with why in err */
		char err[256];
		int fd;               /* data.mdb */
		uint64_t gen;         /* the journal generation it bases */
		uint8_t *meta;        /* LMDB's meta pages, 2 * psize bytes */
		MDB_txn *pin;         /* the snapshot they describe */
	} ck;
};

struct store_txn {
	struct store *s;
	MDB_txn *txn;
	int write;
	uint64_t tail, tail_term;
	uint8_t tail_hash[32];
	/* A write txn's journal record, built as it goes (journal_ops). */
	uint8_t *rec;
	size_t rlen, rcap;
	int direct; /* too big for the journal: commit and checkpoint */
};

/* A record larger than this is not journalled: its txn commits to LMDB and
 * a checkpoint makes it durable (two flushes, but no second copy). */
#define REC_DIRECT (256u << 10)
/* Checkpoint once LMDB has taken this many pages past the pinned snapshot
 * (the pin keeps freed pages from reuse, so the file grows meanwhile). */
#define PIN_PAGES 512

enum { OP_APPEND = 1, OP_PUT, OP_DEL, OP_TRUNC, OP_RESET, OP_DROP };
#define OP_HDR 18 /* op, db, a's length, b's length, x */

static int
fail(struct store *s, const char *what, int rc)
{
	snprintf(s->err, sizeof s->err, "%s: %s", what, mdb_strerror(rc));
	if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL)
		return BABL_ETOOBIG;
	if (rc == MDB_NOTFOUND)
		return BABL_ENOENT;
	if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID)
		return BABL_ECORRUPT;
	return BABL_EIO;
}

/* Add to err what else is known of the failure. */
static void err_add(struct store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
err_add(struct store *s, const char *fmt, ...)
{
	va_list ap;
	size_t l = strlen(s->err);
	va_start(ap, fmt);
	vsnprintf(s->err + l, sizeof s->err - l, fmt, ap);
	va_end(ap);
}

/* Less room than this left when a write fails: the disk is full. */
#define DISK_LOW (16u << 20)

/*
 * After a failed write: if the file system is (nearly) full, add that to
 * err.  LMDB reports a short write as EIO, and a sync may fail with EIO
 * for the same cause, so the errno alone does not tell.  Root may use the
 * blocks reserved for it, others may not.
 */
static void
note_space(struct store *s)
{
	struct statvfs v;
	if (statvfs(s->path, &v))
		return;
	uint64_t room = (uint64_t)(geteuid() == 0 ? v.f_bfree : v.f_bavail) * v.f_frsize;
	if (room >= DISK_LOW)
		return;
	s->full = 1;
	err_add(s, "; its file system is full (%llu KiB free)", (unsigned long long)(room >> 10));
}

int
store_disk_full(const struct store *s)
{
	return s->full;
}

/* Bytes of data.mdb that LMDB uses: up to its last page. */
static uint64_t
used_bytes(const struct store *s)
{
	MDB_envinfo info;
	if (mdb_env_info(s->env, &info))
		return 0;
	return ((uint64_t)info.me_last_pgno + 1) * s->psize;
}

const char *
store_errstr(const struct store *s)
{
	return s->err;
}

static void
key_index(uint8_t k[8], uint64_t i)
{
	be64_put(k, i);
}

static int
load_tail(struct store *s)
{
	struct store_txn *t;
	int rc = store_begin(s, 0, &t);
	if (rc)
		return rc;
	MDB_cursor *c;
	MDB_val k, v;
	s->tail = 0;
	s->tail_term = 0;
	memset(s->tail_hash, 0, 32);
	if ((rc = mdb_cursor_open(t->txn, s->dbi[DB_LOG], &c))) {
		store_abort(t);
		return fail(s, "cursor", rc);
	}
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	if (rc == 0) {
		struct entry e;
		int orc = entry_open(v.mv_data, v.mv_size, &e);
		if (k.mv_size != 8 || orc || e.index != be64_get(k.mv_data)) {
			/* Report, never apply: the caller refuses to start. */
			snprintf(s->err, sizeof s->err, "the last log entry (key %llu) %s",
			    k.mv_size == 8 ? (unsigned long long)be64_get(k.mv_data) : 0ull,
			    orc == BABL_ECORRUPT ? "fails its checksum" :
			    orc || k.mv_size != 8 ? "is not an entry" : "carries the wrong index");
			rc = BABL_ECORRUPT;
		} else {
			s->tail = e.index;
			s->tail_term = e.term;
			memcpy(s->tail_hash, e.hash, 32);
		}
	} else if (rc == MDB_NOTFOUND) {
		rc = 0;
	} else {
		rc = fail(s, "last entry", rc);
	}
	mdb_cursor_close(c);
	store_abort(t);
	return rc;
}

/* Add an op to t's journal record, if t is a journalled write txn.  A
 * record that would grow past REC_DIRECT (or cannot grow) is dropped: the
 * txn is then made durable by a checkpoint instead. */
static void
journal_op(struct store_txn *t, int op, int db, const void *a, size_t al,
    const void *b, size_t bl, uint64_t x)
{
	struct store *s = t->s;
	if (!t->write || !s->j || s->replaying || t->direct)
		return;
	size_t need = t->rlen + OP_HDR + al + bl;
	if (need > t->rcap && need <= REC_DIRECT) {
		size_t cap = t->rcap ? t->rcap : 4096;
		while (cap < need)
			cap *= 2;
		uint8_t *p = realloc(t->rec, cap);
		if (p) {
			t->rec = p;
			t->rcap = cap;
		}
	}
	if (need > t->rcap) {
		free(t->rec);
		t->rec = NULL;
		t->rlen = t->rcap = 0;
		t->direct = 1;
		return;
	}
	uint8_t *p = t->rec + t->rlen;
	p[0] = (uint8_t)op;
	p[1] = (uint8_t)db;
	be32_put(p + 2, (uint32_t)al);
	be32_put(p + 6, (uint32_t)bl);
	be64_put(p + 10, x);
	if (al)
		memcpy(p + OP_HDR, a, al);
	if (bl)
		memcpy(p + OP_HDR + al, b, bl);
	t->rlen = need;
}

/* Replay one journal record: its ops in one txn. */
static int
replay_record(void *arg, const uint8_t *p, size_t n)
{
	struct store *s = arg;
	struct store_txn *t;
	int rc = store_begin(s, 1, &t);
	if (rc)
		return rc;
	while (rc == 0 && n) {
		uint64_t al = n >= OP_HDR ? be32_get(p + 2) : 0, bl = n >= OP_HDR ? be32_get(p + 6) : 0;
		if (n < OP_HDR || al + bl > n - OP_HDR) {
			rc = BABL_ECORRUPT;
			break;
		}
		const uint8_t *a = p + OP_HDR, *b = a + al;
		uint64_t x = be64_get(p + 10);
		int db = p[1];
		struct entry e;
		uint8_t h[32];
		switch (p[0]) {
		case OP_APPEND:
			if (entry_open(a, al, &e) || e.index != t->tail + 1) {
				rc = BABL_ECORRUPT;
				break;
			}
			memcpy(h, e.hash, 32);
			struct iovec iov = {(void *)e.payload, e.len};
			if ((rc = store_append(t, &e, &iov, e.len ? 1 : 0)) == 0 && memcmp(h, e.hash, 32))
				rc = BABL_ECORRUPT; /* it does not chain to the log */
			break;
		case OP_PUT:
			rc = db < DB_N ? store_put(t, db, a, al, b, bl) : BABL_ECORRUPT;
			break;
		case OP_DEL:
			rc = db < DB_N ? store_del(t, db, a, al) : BABL_ECORRUPT;
			break;
		case OP_TRUNC:
			rc = store_truncate_from(t, x);
			break;
		case OP_RESET:
			rc = store_log_reset(t, x);
			break;
		case OP_DROP:
			rc = store_log_drop_before(t, x);
			break;
		default:
			rc = BABL_ECORRUPT;
		}
		p += OP_HDR + al + bl;
		n -= OP_HDR + al + bl;
	}
	if (rc) {
		store_abort(t);
		snprintf(s->err, sizeof s->err, "the journal holds a record that cannot be "
		    "applied to the store (%s)", babl_strerror(rc));
		return rc;
	}
	return store_commit(t);
}

/*
 * Checkpoints.  One begins (ckpt_begin) in the writer, between two
 * commits: it copies LMDB's meta pages as they are after the last commit,
 * pins that snapshot with a read txn, and rotates the journal, so that
 * the next commits' records go to the next generation.  The checkpoint
 * thread then syncs data.mdb (every page of that snapshot is written
 * before its meta pages were copied) and writes the journal slot; commits
 * go on meanwhile.  The writer collects it (ckpt_collect) at a later
 * commit, dropping the older pin: both snapshots keep their pages while a
 * crash could need either.
 */

/* A checkpoint's work: sync data.mdb, then write generation gen's slot
 * with base. */
static int
ckpt_work(struct store *s, uint64_t gen, const void *base, size_t n, char *err,
    size_t errlen)
{
	if (fdatasync(s->ck.fd)) {
		snprintf(err, errlen, "syncing data.mdb: %s", strerror(errno));
		return BABL_EIO;
	}
	return journal_checkpoint(s->j, gen, base, n, err, errlen);
}

/* Mark the checkpoint begun as finished, with rc. */
static void
ckpt_done(struct ckpt *c, int rc, const char *err)
{
	pthread_mutex_lock(&c->lock);
	if (rc && !c->rc) {
		c->rc = rc;
		snprintf(c->err, sizeof c->err, "%s", err);
	}
	c->done = 1;
	c->posted = 0;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void *
ckpt_main(void *arg)
{
	struct store *s = arg;
	struct ckpt *c = &s->ck;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->stop && !c->posted)
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->stop)
			break;
		pthread_mutex_unlock(&c->lock);
		char err[sizeof c->err] = "";
		ckpt_done(c, ckpt_work(s, c->gen, c->meta, 2 * s->psize, err, sizeof err), err);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/*
 * Take a finished checkpoint's pin as the pin (waiting for it first if
 * wait); *busy, if given, is whether one is still under way.  Returns the
 * checkpoint thread's failure, or 0.  A failed checkpoint leaves the older
 * pin: its base is still the one a crash restores.
 */
static int
ckpt_collect(struct store *s, int wait, int *busy)
{
	struct ckpt *c = &s->ck;
	pthread_mutex_lock(&c->lock);
	while (wait && c->busy && !c->done)
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->busy && c->done) {
		MDB_txn *drop = c->rc ? c->pin : s->pin;
		if (!c->rc)
			s->pin = c->pin;
		if (drop)
			mdb_txn_abort(drop);
		c->pin = NULL;
		c->busy = c->done = 0;
	}
	if (busy)
		*busy = c->busy;
	int rc = c->rc;
	if (rc)
		snprintf(s->err, sizeof s->err, "%s", c->err);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/*
 * Begin a checkpoint of what is committed, for the thread if post, else
 * for the caller to run (ckpt_work, ckpt_done).  The caller holds LMDB's
 * writer lock (it is in a write txn, or in store_commit's), and no
 * checkpoint is under way.
 */
static int
ckpt_begin(struct store *s, int post)
{
	struct ckpt *c = &s->ck;
	MDB_envinfo info;
	MDB_txn *pin;
	size_t n = 2 * s->psize;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &pin);
	if (rc)
		return fail(s, "pin", rc);
	if (pread(c->fd, c->meta, n, 0) != (ssize_t)n) {
		snprintf(s->err, sizeof s->err, "reading data.mdb's meta pages: %s",
		    errno ? strerror(errno) : "short read");
		mdb_txn_abort(pin);
		return BABL_EIO;
	}
	s->pin_pg = mdb_env_info(s->env, &info) == 0 ? info.me_last_pgno : 0;
	pthread_mutex_lock(&c->lock);
	c->gen = journal_rotate(s->j);
	c->pin = pin;
	c->busy = 1;
	c->posted = post;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* A checkpoint of what is committed, done when this returns (in this
 * thread): holding LMDB's writer lock so that nothing commits meanwhile. */
static int
checkpoint(struct store *s)
{
	MDB_txn *w;
	char err[sizeof s->ck.err] = "";
	int rc = mdb_txn_begin(s->env, NULL, 0, &w);
	if (rc)
		return fail(s, "checkpoint", rc);
	if ((rc = ckpt_collect(s, 1, NULL)) == 0 && (rc = ckpt_begin(s, 0)) == 0) {
		ckpt_done(&s->ck, ckpt_work(s, s->ck.gen, s->ck.meta, 2 * s->psize, err,
		    sizeof err), err);
		rc = ckpt_collect(s, 1, NULL);
	}
	mdb_txn_abort(w);
	return rc;
}

/*
 * At a clean close: LMDB synced, and an empty base in the journal, so that
 * nothing is restored at the next open (and tools may change data.mdb in
 * between).
 */
static int
checkpoint_clean(struct store *s)
{
	char err[sizeof s->err];
	MDB_txn *w;
	int rc = mdb_txn_begin(s->env, NULL, 0, &w);
	if (rc)
		return fail(s, "checkpoint", rc);
	if ((rc = ckpt_collect(s, 1, NULL)) == 0 &&
	    (rc = ckpt_work(s, journal_rotate(s->j), "", 0, err, sizeof err)))
		snprintf(s->err, sizeof s->err, "%s", err);
	mdb_txn_abort(w);
	return rc;
}

/* How many steps of pages LMDB has taken since the newest checkpoint
 * began (a step: PIN_PAGES, or a 32nd of a smaller map): one or more, and
 * another checkpoint should free them. */
static uint64_t
pin_due(struct store *s)
{
	MDB_envinfo info;
	if (mdb_env_info(s->env, &info))
		return 0;
	uint64_t step = info.me_mapsize / s->psize / 32;
	if (step > PIN_PAGES)
		step = PIN_PAGES;
	if (step == 0 || info.me_last_pgno <= s->pin_pg)
		return 0;
	return (info.me_last_pgno - s->pin_pg) / step;
}

/*
 * Before a journal record of n bytes: begin a checkpoint if LMDB has taken
 * a step of pages past the pin, or if the record does not fit in the
 * journal's region (the checkpoint rotates it to the other).  One under way
 * must end first if the region is full (it bases the other region's
 * records), or if LMDB has taken eight steps meanwhile (a slow disk: the
 * pinned pages would otherwise fill the map).
 */
static int
ckpt_due(struct store *s, size_t n)
{
	int busy;
	int rc = ckpt_collect(s, 0, &busy);
	if (rc)
		return rc;
	int full = n > journal_room(s->j);
	uint64_t due = pin_due(s);
	if (busy && (full || due >= 8) && (rc = ckpt_collect(s, 1, &busy)))
		return rc;
	return !busy && (full || due) ? ckpt_begin(s, 1) : 0;
}

/* Ready the checkpoint thread, once LMDB is open. */
static int
ckpt_start(struct store *s)
{
	struct ckpt *c = &s->ck;
	if (2 * s->psize > JOURNAL_BASE_MAX) {
		snprintf(s->err, sizeof s->err, "pages of %zu bytes are too large for the journal",
		    s->psize);
		return BABL_EINTERNAL;
	}
	int rc = mdb_env_get_fd(s->env, &c->fd);
	if (rc)
		return fail(s, "data.mdb", rc);
	if (!(c->meta = malloc(2 * s->psize)))
		return BABL_ENOMEM;
	/* The thread takes no signals: they are the process's main thread's
	 * (it is made with every signal blocked, the creator's mask kept). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&c->thread, NULL, ckpt_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		snprintf(s->err, sizeof s->err, "cannot start the checkpoint thread: %s",
		    strerror(rc));
		return BABL_EIO;
	}
	c->started = 1;
	return 0;
}

/*
 * After an unclean stop, write the last checkpoint's meta pages back over
 * data.mdb's (*replay 1: its records are to be replayed).  Nothing to do
 * after a clean close (an empty base) or before any checkpoint, or if
 * data.mdb is gone (a wiped node starts afresh).
 */
static int
restore_base(struct store *s, const char *dir, int *replay)
{
	const uint8_t *base;
	size_t n;
	char p[4200];
	*replay = 0;
	if (!journal_base(s->j, &base, &n) || n == 0)
		return 0;
	snprintf(p, sizeof p, "%s/data.mdb", dir);
	int fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0 || pwrite(fd, base, n, 0) != (ssize_t)n || fdatasync(fd)) {
		snprintf(s->err, sizeof s->err, "restoring data.mdb from the journal: %s",
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return BABL_EIO;
	}
	close(fd);
	*replay = 1;
	return 0;
}

static int
open_env(struct store **out, const char *dir, uint64_t map_bytes, int shared)
{
	struct store *s = calloc(1, sizeof *s);
	MDB_txn *txn;
	if (s) {
		pthread_mutex_init(&s->tail_lock, NULL);
		pthread_mutex_init(&s->ck.lock, NULL);
		pthread_cond_init(&s->ck.cond, NULL);
	}
	int rc, replay = 0;
	if (!s)
		return BABL_ENOMEM;
	*out = s; /* the caller reads store_errstr, then store_close */
	snprintf(s->path, sizeof s->path, "%s", dir);
	if (!shared && ((rc = journal_open(&s->j, dir, s->err, sizeof s->err)) ||
	    (rc = restore_base(s, dir, &replay))))
		return rc;
	if ((rc = mdb_env_create(&s->env)))
		goto lmdb_fail;
	mdb_env_set_maxdbs(s->env, DB_N + 2);
	mdb_env_set_maxreaders(s->env, 256);
	if ((rc = mdb_env_set_mapsize(s->env, map_bytes)))
		goto lmdb_fail;
	if ((rc = mdb_env_open(s->env, dir, MDB_NOTLS | (shared ? MDB_RDONLY : MDB_NOSYNC), 0600)))
		goto lmdb_fail;
	if ((rc = mdb_txn_begin(s->env, NULL, shared ? MDB_RDONLY : 0, &txn)))
		goto lmdb_fail;
	for (int i = 0; i < DB_N; i++) {
		if ((rc = mdb_dbi_open(txn, db_names[i], shared ? 0 : MDB_CREATE, &s->dbi[i]))) {
			mdb_txn_abort(txn);
			goto lmdb_fail;
		}
	}
	if ((rc = mdb_txn_commit(txn)))
		goto lmdb_fail;
	MDB_stat mst;
	if (mdb_env_stat(s->env, &mst) == 0)
		s->psize = mst.ms_psize;
	if (s->j && (rc = ckpt_start(s)))
		return rc;
	if ((rc = load_tail(s))) {
		/* s->err says why; keep it for the caller.  With records still
		 * to replay, nothing may be written: they would be lost. */
		if (replay)
			s->broken = 1;
		return rc;
	}
	if (replay) {
		/* The base's pages stay until a checkpoint replaces it. */
		if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->pin))) {
			s->broken = 1;
			return fail(s, "pin", rc);
		}
		s->replaying = 1;
		rc = journal_replay(s->j, replay_record, s);
		s->replaying = 0;
		if (rc) {
			s->broken = 1;
			return rc;
		}
	}
	if (s->j && (rc = checkpoint(s)))
		return rc;
	return 0;
lmdb_fail:
	return fail(s, dir, rc);
}

int
store_open(struct store **out, const char *dir, uint64_t map_bytes)
{
	return open_env(out, dir, map_bytes, 0);
}

int
store_open_shared(struct store **out, const char *dir, uint64_t map_bytes)
{
	return open_env(out, dir, map_bytes, 1);
}

void
store_close(struct store *s)
{
	if (!s)
		return;
	/* A clean close: durable in LMDB, nothing to restore at the next open
	 * (so tools may edit data.mdb in between). */
	if (s->j && s->pin && !s->broken)
		checkpoint_clean(s);
	if (s->ck.started) {
		ckpt_collect(s, 1, NULL);
		pthread_mutex_lock(&s->ck.lock);
		s->ck.stop = 1;
		pthread_cond_broadcast(&s->ck.cond);
		pthread_mutex_unlock(&s->ck.lock);
		pthread_join(s->ck.thread, NULL);
	}
	pthread_mutex_destroy(&s->ck.lock);
	pthread_cond_destroy(&s->ck.cond);
	free(s->ck.meta);
	if (s->pin)
		mdb_txn_abort(s->pin);
	if (s->env)
		mdb_env_close(s->env);
	journal_close(s->j);
	free(s);
}

void
store_tail(const struct store *s, uint64_t *index, uint8_t hash[32], uint64_t *term)
{
	pthread_mutex_t *lk = (pthread_mutex_t *)&s->tail_lock;
	pthread_mutex_lock(lk);
	*index = s->tail;
	if (hash)
		memcpy(hash, s->tail_hash, 32);
	if (term)
		*term = s->tail_term;
	pthread_mutex_unlock(lk);
}

int
store_begin(struct store *s, int write, struct store_txn **out)
{
	struct store_txn *t = calloc(1, sizeof *t);
	if (!t)
		return BABL_ENOMEM;
	if (write && s->broken) {
		free(t);
		return BABL_ECORRUPT;
	}
	int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
	if (rc) {
		free(t);
		return fail(s, "begin", rc);
	}
	t->s = s;
	t->write = write;
	store_tail(s, &t->tail, t->tail_hash, &t->tail_term);
	*out = t;
	return 0;
}

int
store_commit(struct store_txn *t)
{
	struct store *s = t->s;
	int jrc = 0;
	/* Journalled (journal_op built a record): the record is durable
	 * before LMDB commits (unsynced). */
	int journalled = t->rlen != 0;
	if (journalled) {
		if ((jrc = ckpt_due(s, t->rlen)) == 0 &&
		    (jrc = journal_append(s->j, t->rec, t->rlen)))
			snprintf(s->err, sizeof s->err, "%s", journal_errstr(s->j));
		if (jrc) {
			store_abort(t);
			note_space(s);
			return jrc;
		}
	}
	int rc = mdb_txn_commit(t->txn), lost = 0;
	if (rc == 0 && t->write) {
		pthread_mutex_lock(&s->tail_lock);
		s->tail = t->tail;
		s->tail_term = t->tail_term;
		memcpy(s->tail_hash, t->tail_hash, 32);
		pthread_mutex_unlock(&s->tail_lock);
		/* Too big for the journal: durable by a checkpoint. */
		if (t->direct)
			jrc = checkpoint(s);
	} else if (rc && journalled) {
		/* Its record is in the journal, but LMDB has not taken it: the
		 * record is taken back so that it never replays, or, if even
		 * that fails, a checkpoint starts a generation without it.
		 * (Replayed, the writes of a commit reported failed would take
		 * effect at the next start.) */
		lost = journal_unappend(s->j) && checkpoint(s);
	}
	free(t->rec);
	free(t);
	if (rc)
		jrc = fail(s, "commit", rc);
	if (jrc)
		note_space(s);
	if (lost)
		err_add(s, "; its journal record could not be taken back, so the next "
		    "start may apply it");
	return jrc;
}

void
store_abort(struct store_txn *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->txn);
	free(t->rec);
	free(t);
}

int
store_put(struct store_txn *t, int db, const void *k, size_t kl, const void *v,
    size_t vl)
{
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	int rc = mdb_put(t->txn, t->s->dbi[db], &key, &val, 0);
	if (rc)
		return fail(t->s, "put", rc);
	journal_op(t, OP_PUT, db, k, kl, v, vl, 0);
	return 0;
}

int
store_del(struct store_txn *t, int db, const void *k, size_t kl)
{
	MDB_val key = {kl, (void *)k};
	int rc = mdb_del(t->txn, t->s->dbi[db], &key, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return fail(t->s, "del", rc);
	journal_op(t, OP_DEL, db, k, kl, NULL, 0, 0);
	return 0;
}

int
store_get(struct store_txn *t, int db, const void *k, size_t kl, const void **v,
    size_t *vl)
{
	MDB_val key = {kl, (void *)k}, val;
	int rc = mdb_get(t->txn, t->s->dbi[db], &key, &val);
	if (rc == MDB_NOTFOUND)
		return BABL_ENOENT;
	if (rc)
		return fail(t->s, "get", rc);
	*v = val.mv_data;
	*vl = val.mv_size;
	return 0;
}

int
store_append(struct store_txn *t, struct entry *e, const struct iovec *iov, int niov)
{
	uint8_t k[8], hdr[ENTRY_HDR];
	size_t total = 0;
	if (!t->write || e->index != t->tail + 1)
		return BABL_EINTERNAL;
	for (int i = 0; i < niov; i++)
		total += iov[i].iov_len;
	if (total != e->len || total > ENTRY_MAX_PAYLOAD)
		return BABL_EINTERNAL;
	memcpy(e->prev, t->tail_hash, 32);
	entry_seal(e, iov, niov, hdr);
	key_index(k, e->index);
	MDB_val key = {8, k}, val = {ENTRY_HDR + total, NULL};
	int rc = mdb_put(t->txn, t->s->dbi[DB_LOG], &key, &val, MDB_APPEND | MDB_RESERVE);
	if (rc)
		return fail(t->s, "append", rc);
	uint8_t *p = val.mv_data;
	memcpy(p, hdr, ENTRY_HDR);
	p += ENTRY_HDR;
	for (int i = 0; i < niov; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	journal_op(t, OP_APPEND, DB_LOG, val.mv_data, val.mv_size, NULL, 0, 0);
	t->tail = e->index;
	t->tail_term = e->term;
	memcpy(t->tail_hash, e->hash, 32);
	return 0;
}

int
store_entry(struct store_txn *t, uint64_t index, struct entry *e)
{
	uint8_t k[8];
	const void *v;
	size_t vl;
	key_index(k, index);
	int rc = store_get(t, DB_LOG, k, 8, &v, &vl);
	if (rc)
		return rc;
	rc = entry_open(v, vl, e);
	if (rc == 0 && e->index != index)
		rc = BABL_ECORRUPT;
	return rc == BABL_EPROTO ? BABL_ECORRUPT : rc;
}

int
store_scan(struct store_txn *t, int db, const void *prefix, size_t pl, int reverse,
    store_visit cb, void *arg)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(t->txn, t->s->dbi[db], &c);
	if (rc)
		return fail(t->s, "cursor", rc);
	uint8_t probe[512];
	if (!reverse) {
		k.mv_size = pl;
		k.mv_data = (void *)prefix;
		rc = pl ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)
		        : mdb_cursor_get(c, &k, &v, MDB_FIRST);
	} else if (pl == 0) {
		rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	} else {
		/*
		 * Position at the first key after every key with the prefix: the
		 * prefix with its trailing 0xff bytes dropped and its last byte
		 * incremented.  A prefix of only 0xff bytes has no such key, and
		 * every key after it has the prefix: start from the last.
		 */
		size_t n = pl;
		if (pl > sizeof probe) {
			mdb_cursor_close(c);
			return BABL_ETOOBIG;
		}
		memcpy(probe, prefix, pl);
		while (n > 0 && probe[n - 1] == 0xff)
			n--;
		rc = MDB_NOTFOUND;
		if (n > 0) {
			probe[n - 1]++;
			k.mv_size = n;
			k.mv_data = probe;
			rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		}
		if (rc == MDB_NOTFOUND)
			rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
		else if (rc == 0)
			rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
	}
	int out = 0;
	while (rc == 0) {
		if (pl && (k.mv_size < pl || memcmp(k.mv_data, prefix, pl) != 0))
			break;
		if ((out = cb(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size)))
			break;
		rc = mdb_cursor_get(c, &k, &v, reverse ? MDB_PREV : MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND)
		return fail(t->s, "scan", rc);
	return out;
}

int
store_verify_span(struct store *s, uint64_t from, uint64_t max_bytes, uint64_t *next,
    uint64_t *count, uint64_t *bad, char *why, size_t whylen)
{
	uint64_t bytes = 0;
	struct store_txn *t;
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t prev[32] = {0}, key[8];
	uint64_t expect = from ? from : 1, n = 0;
	int rc = store_begin(s, 0, &t);
	if (rc)
		return rc;
	*bad = 0;
	if (expect > 1) {
		struct entry pe;
		rc = store_entry(t, expect - 1, &pe);
		if (rc) {
			*bad = expect - 1;
			snprintf(why, whylen, "entry %llu: %s", (unsigned long long)*bad,
			    rc == BABL_ENOENT ? "missing" : "fails its checksum");
			store_abort(t);
			return BABL_ECORRUPT;
		}
		memcpy(prev, pe.hash, 32);
	}
	if ((rc = mdb_cursor_open(t->txn, s->dbi[DB_LOG], &c))) {
		store_abort(t);
		return fail(s, "cursor", rc);
	}
	key_index(key, expect);
	k.mv_size = 8;
	k.mv_data = key;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	for (; rc == 0 && bytes < max_bytes;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), expect++, n++) {
		bytes += v.mv_size;
		struct entry e;
		const char *what = NULL;
		if (k.mv_size != 8 || be64_get(k.mv_data) != expect)
			what = "missing (the log has a gap)";
		else if (entry_open(v.mv_data, v.mv_size, &e))
			what = "fails its checksum";
		else if (e.index != expect)
			what = "carries the wrong index";
		else if (memcmp(e.prev, prev, 32) != 0)
			what = "does not chain to the entry before it";
		if (what) {
			*bad = expect;
			snprintf(why, whylen, "entry %llu %s", (unsigned long long)expect, what);
			mdb_cursor_close(c);
			store_abort(t);
			return BABL_ECORRUPT;
		}
		memcpy(prev, e.hash, 32);
	}
	mdb_cursor_close(c);
	store_abort(t);
	if (rc && rc != MDB_NOTFOUND)
		return fail(s, "verify", rc);
	*count = n;
	*next = rc == MDB_NOTFOUND ? 0 : expect;
	return 0;
}

int
store_verify(struct store *s, uint64_t from, uint64_t *count, uint64_t *bad,
    char *why, size_t whylen)
{
	uint64_t next;
	return store_verify_span(s, from, UINT64_MAX, &next, count, bad, why, whylen);
}

int
store_meta_get(struct store_txn *t, const char *key, uint64_t *v)
{
	const void *p;
	size_t n;
	int rc = store_get(t, DB_META, key, strlen(key), &p, &n);
	if (rc)
		return rc;
	if (n != 8)
		return BABL_ECORRUPT;
	*v = be64_get(p);
	return 0;
}

int
store_meta_put(struct store_txn *t, const char *key, uint64_t v)
{
	uint8_t b[8];
	be64_put(b, v);
	return store_put(t, DB_META, key, strlen(key), b, 8);
}

uint64_t
store_used_bytes(const struct store *s)
{
	return used_bytes(s);
}

/* Delete the log entries with keys >= index, or (below) those < index. */
static int
log_delete_range(struct store_txn *t, uint64_t index, int below)
{
	struct store *s = t->s;
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t key[8];
	if (!t->write)
		return BABL_EINTERNAL;
	int rc = mdb_cursor_open(t->txn, s->dbi[DB_LOG], &c);
	if (rc)
		return fail(s, "cursor", rc);
	for (;;) {
		/* Seek afresh after each delete: simple, and safe whatever LMDB
		 * does with a cursor whose item was deleted. */
		if (below) {
			rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		} else {
			key_index(key, index);
			k.mv_size = 8;
			k.mv_data = key;
			rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		}
		if (rc)
			break;
		if (below && k.mv_size == 8 && be64_get(k.mv_data) >= index)
			break;
		if ((rc = mdb_cursor_del(c, 0)))
			break;
	}
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND)
		return fail(s, "delete entries", rc);
	return 0;
}

int
store_truncate_from(struct store_txn *t, uint64_t index)
{
	struct entry e;
	int rc;
	if (index == 0 || !t->write)
		return BABL_EINTERNAL;
	if (index > 1) {
		rc = store_entry(t, index - 1, &e);
		if (rc) {
			snprintf(t->s->err, sizeof t->s->err,
			    "truncating at %llu: the entry before the cut %s",
			    (unsigned long long)index,
			    rc == BABL_ENOENT ? "is missing" : "fails its checksum");
			return rc;
		}
	}
	if ((rc = log_delete_range(t, index, 0)))
		return rc;
	journal_op(t, OP_TRUNC, DB_LOG, NULL, 0, NULL, 0, index);
	if (index > 1) {
		t->tail = e.index;
		t->tail_term = e.term;
		memcpy(t->tail_hash, e.hash, 32);
	} else {
		t->tail = 0;
		t->tail_term = 0;
		memset(t->tail_hash, 0, 32);
	}
	return 0;
}

int
store_log_reset(struct store_txn *t, uint64_t index)
{
	int rc = log_delete_range(t, 0, 0);
	if (rc)
		return rc;
	journal_op(t, OP_RESET, DB_LOG, NULL, 0, NULL, 0, index);
	t->tail = index;
	t->tail_term = 0;
	memset(t->tail_hash, 0, 32);
	return 0;
}

int
store_log_drop_before(struct store_txn *t, uint64_t index)
{
	int rc = log_delete_range(t, index, 1);
	if (rc == 0)
		journal_op(t, OP_DROP, DB_LOG, NULL, 0, NULL, 0, index);
	return rc;
}

int
store_log_first(struct store_txn *t, uint64_t *index)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_LOG], &c);
	if (rc)
		return fail(t->s, "cursor", rc);
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	mdb_cursor_close(c);
	*index = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return fail(t->s, "first entry", rc);
	if (k.mv_size != 8) {
		snprintf(t->s->err, sizeof t->s->err, "the first log key is not an index");
		return BABL_ECORRUPT;
	}
	*index = be64_get(k.mv_data);
	return 0;
}

int
store_grow(struct store *s, uint64_t map_bytes)
{
	int rc;
	/* LMDB wants no txn of this process open, the pin included: drop it
	 * at a checkpoint (nothing then needs its pages) and pin again. */
	if (s->j) {
		if ((rc = checkpoint(s)))
			return rc;
		mdb_txn_abort(s->pin);
		s->pin = NULL;
	}
	rc = mdb_env_set_mapsize(s->env, (size_t)map_bytes);
	int prc = s->j ? mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->pin) : 0;
	if (prc)
		s->broken = 1; /* unpinned, a crash could not be recovered */
	return rc ? fail(s, "set map size", rc) : prc ? fail(s, "pin", prc) : 0;
}

uint64_t
store_map_size(const struct store *s)
{
	MDB_envinfo info;
	if (mdb_env_info(s->env, &info))
		return 0;
	return (uint64_t)info.me_mapsize;
}
