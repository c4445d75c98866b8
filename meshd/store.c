/* store.c - the log and state on LMDB; see store.h. */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "entry.h"
#include "err.h"
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
	/* Zeroed space kept past the used end of data.mdb (prezero), also
	 * under tail_lock. */
	size_t psize;
	uint64_t zero_end;
	uint64_t used_ref, commits; /* the data's size at the last look, and
	                               commits since */
};

struct store_txn {
	struct store *s;
	MDB_txn *txn;
	int write;
	uint64_t tail, tail_term;
	uint8_t tail_hash[32];
};

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

int
store_open(struct store **out, const char *dir, uint64_t map_bytes)
{
	struct store *s = calloc(1, sizeof *s);
	MDB_txn *txn;
	if (s)
		pthread_mutex_init(&s->tail_lock, NULL);
	int rc;
	if (!s)
		return BABL_ENOMEM;
	snprintf(s->path, sizeof s->path, "%s", dir);
	if ((rc = mdb_env_create(&s->env)))
		goto lmdb_fail;
	mdb_env_set_maxdbs(s->env, DB_N + 2);
	mdb_env_set_maxreaders(s->env, 256);
	if ((rc = mdb_env_set_mapsize(s->env, map_bytes)))
		goto lmdb_fail;
	if ((rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600)))
		goto lmdb_fail;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)))
		goto lmdb_fail;
	for (int i = 0; i < DB_N; i++) {
		if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i]))) {
			mdb_txn_abort(txn);
			goto lmdb_fail;
		}
	}
	if ((rc = mdb_txn_commit(txn)))
		goto lmdb_fail;
	int fd;
	struct stat fst;
	MDB_stat mst;
	if (mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &fst) == 0)
		s->zero_end = (uint64_t)fst.st_size;
	if (mdb_env_stat(s->env, &mst) == 0)
		s->psize = mst.ms_psize;
	s->used_ref = used_bytes(s);
	if ((rc = load_tail(s))) {
		/* s->err says why; keep it for the caller. */
		*out = s;
		return rc;
	}
	*out = s;
	return 0;
lmdb_fail:
	rc = fail(s, dir, rc);
	*out = s; /* the caller reads store_errstr, then store_close */
	return rc;
}

void
store_close(struct store *s)
{
	if (!s)
		return;
	if (s->env)
		mdb_env_close(s->env);
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

/*
 * Keep written zeros ahead of the data's end.  When a commit's pages land
 * past the end of data.mdb, its sync must also commit the file system's
 * journal (new blocks, a new size): a 4 KiB write and fdatasync took a
 * median 160-210 us that way on this ext4, and 90-130 us over blocks
 * already written.  So after a commit that leaves less than ZERO_LOW bytes
 * of zeros past the end, the file grows by ZERO_CHUNK bytes of written,
 * synced zeros.  LMDB does not mind a longer file: it works from its meta
 * pages.
 *
 * Only small commits gain: when the data grew by ZERO_SMALL bytes or more
 * a commit since the last look (a bulk stream), the journal is a small
 * part of each sync and zeroing would double what is written, so the file
 * is left to grow by itself.  The zeros are written inside a write
 * transaction that writes nothing else, which holds off every other
 * writer; the transaction is then aborted.
 */
enum {
	ZERO_CHUNK = 8 << 20,
	ZERO_LOW = 2 << 20,
	ZERO_SMALL = 64 << 10,
};

/* Called after a write commit, outside any transaction. */
static void
prezero(struct store *s)
{
	uint64_t used = used_bytes(s);
	int go = 0;
	pthread_mutex_lock(&s->tail_lock);
	s->commits++;
	if (used && used + ZERO_LOW > s->zero_end) {
		go = used < s->used_ref ||
		    used - s->used_ref < (uint64_t)ZERO_SMALL * s->commits;
		s->used_ref = used;
		s->commits = 0;
	}
	pthread_mutex_unlock(&s->tail_lock);
	MDB_txn *txn;
	if (!go || mdb_txn_begin(s->env, NULL, 0, &txn))
		return;
	/* The writer lock is held: nobody writes pages past the end now. */
	static const uint8_t zeros[1 << 16];
	uint64_t map = store_map_size(s), end = 0;
	struct stat st;
	int fd;
	if (mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &st) == 0) {
		uint64_t at = ((uint64_t)st.st_size + 4095) / 4096 * 4096;
		uint64_t to = at + ZERO_CHUNK < map ? at + ZERO_CHUNK : map;
		end = at;
		while (at < to) {
			size_t n = to - at < sizeof zeros ? to - at : sizeof zeros;
			ssize_t w = pwrite(fd, zeros, n, (off_t)at);
			if (w <= 0)
				break; /* a full disk: LMDB will say so itself */
			at += (uint64_t)w;
		}
		if (at > end && fdatasync(fd) == 0)
			end = at;
	}
	mdb_txn_abort(txn);
	pthread_mutex_lock(&s->tail_lock);
	if (end > s->zero_end)
		s->zero_end = end;
	pthread_mutex_unlock(&s->tail_lock);
}

int
store_commit(struct store_txn *t)
{
	struct store *s = t->s;
	int rc = mdb_txn_commit(t->txn);
	if (rc == 0 && t->write) {
		pthread_mutex_lock(&s->tail_lock);
		s->tail = t->tail;
		s->tail_term = t->tail_term;
		memcpy(s->tail_hash, t->tail_hash, 32);
		pthread_mutex_unlock(&s->tail_lock);
		prezero(s);
	}
	free(t);
	return rc ? fail(s, "commit", rc) : 0;
}

void
store_abort(struct store_txn *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

int
store_put(struct store_txn *t, int db, const void *k, size_t kl, const void *v,
    size_t vl)
{
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	int rc = mdb_put(t->txn, t->s->dbi[db], &key, &val, 0);
	return rc ? fail(t->s, "put", rc) : 0;
}

int
store_del(struct store_txn *t, int db, const void *k, size_t kl)
{
	MDB_val key = {kl, (void *)k};
	int rc = mdb_del(t->txn, t->s->dbi[db], &key, NULL);
	return rc && rc != MDB_NOTFOUND ? fail(t->s, "del", rc) : 0;
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
	t->tail = index;
	t->tail_term = 0;
	memset(t->tail_hash, 0, 32);
	return 0;
}

int
store_log_drop_before(struct store_txn *t, uint64_t index)
{
	return log_delete_range(t, index, 1);
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
	int rc = mdb_env_set_mapsize(s->env, (size_t)map_bytes);
	return rc ? fail(s, "set map size", rc) : 0;
}

uint64_t
store_map_size(const struct store *s)
{
	MDB_envinfo info;
	if (mdb_env_info(s->env, &info))
		return 0;
	return (uint64_t)info.me_mapsize;
}
