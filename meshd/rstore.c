/* rstore.c - the Raft storage adapter on the LMDB store; see rstore.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "err.h"
#include "raft.h"
#include "rstore.h"
#include "store.h"
#include "wire.h"

#define K_TERM "raft.term"
#define K_VOTE "raft.vote"
#define K_COMMIT "raft.commit"
#define K_SNAP "raft.snap"
#define K_APPLIED "applied"

struct rstore {
	struct store *s;
	uint64_t map_max;
	int full; /* the last store failure was a full map */
	char err[384];
};

static int
say(struct rstore *rs, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rs->err, sizeof rs->err, fmt, ap);
	va_end(ap);
	return rc;
}

/* Record a failure of the store, with the store's own reason. */
static int
store_fail(struct rstore *rs, int rc, const char *what)
{
	/* The store says BABL_ETOOBIG only for a full map (or transaction). */
	if (rc == BABL_ETOOBIG)
		rs->full = 1;
	return say(rs, rc, "%s: %s (%s)", what, babl_strerror(rc),
	    store_errstr(rs->s));
}

struct store *
rstore_store(struct rstore *rs)
{
	return rs->s;
}

const char *
rstore_errstr(const struct rstore *rs)
{
	return rs->err;
}

/* ---- the entry mapping -------------------------------------------------- */

static int
reserved_noop(const uint8_t *payload, size_t len)
{
	return len == 0 || (len >= RSTORE_MAGIC_LEN &&
	    (memcmp(payload, RSTORE_CONF_MAGIC, RSTORE_MAGIC_LEN) == 0 ||
	     memcmp(payload, RSTORE_SNAP_MAGIC, RSTORE_MAGIC_LEN) == 0));
}

int
rstore_body_check(const void *data, size_t len)
{
	const uint8_t *p = data;
	if (len < 1 || p[0] == 0 || p[0] > ENT_MAX)
		return BABL_EINPUT;
	if (len - 1 > ENTRY_MAX_PAYLOAD)
		return BABL_ETOOBIG;
	if (p[0] == ENT_NOOP && reserved_noop(p + 1, len - 1))
		return BABL_EINPUT;
	return 0;
}

int
rstore_to_entry(const struct raft_entry *re, struct entry *e,
    struct iovec iov[2], int *niov)
{
	int rc;
	memset(e, 0, sizeof *e);
	e->index = re->index;
	e->term = re->term;
	*niov = 0;
	switch (re->type) {
	case RAFT_ENT_NORMAL:
		if ((rc = rstore_body_check(re->data, re->len)))
			return rc;
		e->type = re->data[0];
		e->len = re->len - 1;
		if (e->len) {
			iov[0].iov_base = re->data + 1;
			iov[0].iov_len = e->len;
			*niov = 1;
		}
		return 0;
	case RAFT_ENT_NOOP:
		e->type = ENT_NOOP;
		return 0;
	case RAFT_ENT_CONF:
		if (re->len > ENTRY_MAX_PAYLOAD - RSTORE_MAGIC_LEN)
			return BABL_ETOOBIG;
		e->type = ENT_NOOP;
		e->len = RSTORE_MAGIC_LEN + re->len;
		iov[0].iov_base = (void *)RSTORE_CONF_MAGIC;
		iov[0].iov_len = RSTORE_MAGIC_LEN;
		iov[1].iov_base = re->data;
		iov[1].iov_len = re->len;
		*niov = re->len ? 2 : 1;
		return 0;
	}
	return BABL_EINPUT;
}

/* Whether a stored entry is a noop whose payload starts with magic. */
static int
noop_with(const struct entry *e, const char *magic)
{
	return e->type == ENT_NOOP && e->len >= RSTORE_MAGIC_LEN &&
	    memcmp(e->payload, magic, RSTORE_MAGIC_LEN) == 0;
}

int
rstore_from_entry(const struct entry *e, struct raft_entry *re, uint8_t *buf)
{
	memset(re, 0, sizeof *re);
	re->index = e->index;
	re->term = e->term;
	if (e->type == ENT_NOOP && e->len == 0) {
		re->type = RAFT_ENT_NOOP;
		return 0;
	}
	if (noop_with(e, RSTORE_SNAP_MAGIC))
		return BABL_ECORRUPT;
	if (noop_with(e, RSTORE_CONF_MAGIC)) {
		re->type = RAFT_ENT_CONF;
		re->len = e->len - RSTORE_MAGIC_LEN;
		if (buf) {
			memcpy(buf, e->payload + RSTORE_MAGIC_LEN, re->len);
			re->data = buf;
		}
		return 0;
	}
	re->type = RAFT_ENT_NORMAL;
	re->len = e->len + 1;
	if (buf) {
		buf[0] = e->type;
		if (e->len)
			memcpy(buf + 1, e->payload, e->len);
		re->data = buf;
	}
	return 0;
}

/* ---- small readers -------------------------------------------------------- */

/* A u64 meta value, 0 if absent. */
static int
meta_get0(struct rstore *rs, struct store_txn *t, const char *key, uint64_t *v)
{
	int rc = store_meta_get(t, key, v);
	if (rc == BABL_ENOENT) {
		*v = 0;
		return 0;
	}
	if (rc)
		return store_fail(rs, rc, key);
	return 0;
}

static int
snap_encode(struct wbuf *b, const struct raft_snap_meta *m)
{
	int rc = wb_u64(b, m->index);
	if (!rc)
		rc = wb_u64(b, m->term);
	if (!rc)
		rc = wb_u64(b, m->size);
	if (!rc)
		rc = raft_conf_encode(b, &m->conf);
	return rc;
}

/* The stored snapshot meta: 1 and *m, 0 if there is none, or an error. */
static int
snap_get(struct rstore *rs, struct store_txn *t, struct raft_snap_meta *m)
{
	const void *p;
	size_t n;
	memset(m, 0, sizeof *m);
	int rc = store_get(t, DB_META, K_SNAP, strlen(K_SNAP), &p, &n);
	if (rc == BABL_ENOENT)
		return 0;
	if (rc)
		return store_fail(rs, rc, "reading the snapshot meta");
	if (n < 24 || raft_conf_decode((const uint8_t *)p + 24, n - 24, &m->conf))
		return say(rs, BABL_ECORRUPT, "the stored snapshot meta is malformed");
	m->index = be64_get(p);
	m->term = be64_get((const uint8_t *)p + 8);
	m->size = be64_get((const uint8_t *)p + 16);
	return 1;
}

/* The last key of the log, 0 if it is empty. */
static int
last_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	(void)v;
	(void)vl;
	*(uint64_t *)arg = kl == 8 ? be64_get(k) : UINT64_MAX;
	return 1;
}

static int
log_last(struct rstore *rs, struct store_txn *t, uint64_t *last)
{
	*last = 0;
	int rc = store_scan(t, DB_LOG, NULL, 0, 1, last_cb, last);
	if (rc < 0)
		return store_fail(rs, rc, "finding the end of the log");
	if (*last == UINT64_MAX)
		return say(rs, BABL_ECORRUPT, "the last log key is not an index");
	return 0;
}

static const char *
entry_why(int rc)
{
	return rc == BABL_ENOENT ? "is missing" : "fails its checksum";
}

/*
 * Check entry i of a log that begins at first: it opens with its index,
 * and (after the first) chains to the entry before it.  0 if good, else
 * a phrase for why not in *why.
 */
static int
entry_good(struct store_txn *t, uint64_t i, uint64_t first, const char **why)
{
	struct entry e, p;
	int rc = store_entry(t, i, &e);
	if (rc) {
		*why = entry_why(rc);
		return rc;
	}
	if (i > first) {
		if ((rc = store_entry(t, i - 1, &p))) {
			*why = rc == BABL_ENOENT ? "follows a gap in the log" :
			    "follows an entry that fails its checksum";
			return BABL_ECORRUPT;
		}
		if (memcmp(e.prev, p.hash, 32) != 0) {
			*why = "does not chain to the entry before it";
			return BABL_ECORRUPT;
		}
	}
	return 0;
}

/* ---- open and recovery ------------------------------------------------------ */

/*
 * Cut a torn tail: bad entries at the end of the log after the commit
 * index go; a bad one at or below it is corruption.
 */
static int
recover(struct rstore *rs, uint64_t *cut)
{
	struct store_txn *t;
	uint64_t commit, first, last, i, cutfrom = 0;
	const char *why = "";
	*cut = 0;
	int rc = store_begin(rs->s, 1, &t);
	if (rc)
		return store_fail(rs, rc, "starting recovery");
	if ((rc = meta_get0(rs, t, K_COMMIT, &commit)) ||
	    (rc = log_last(rs, t, &last)))
		goto out;
	if ((rc = store_log_first(t, &first))) {
		rc = store_fail(rs, rc, "finding the start of the log");
		goto out;
	}
	for (i = last; i >= first && i > 0; i--) {
		if (entry_good(t, i, first, &why) == 0)
			break;
		if (i <= commit) {
			rc = say(rs, BABL_ECORRUPT,
			    "log entry %llu %s, and it is at or below the commit index "
			    "%llu: the log is corrupt (not cut)",
			    (unsigned long long)i, why, (unsigned long long)commit);
			goto out;
		}
		if (i == first && first > 1) {
			rc = say(rs, BABL_ECORRUPT,
			    "log entry %llu, the first one, %s", (unsigned long long)i, why);
			goto out;
		}
		cutfrom = i;
	}
	if (cutfrom) {
		*cut = last - cutfrom + 1;
		last = cutfrom - 1;
		if ((rc = store_truncate_from(t, cutfrom))) {
			rc = store_fail(rs, rc, "cutting the torn tail");
			goto out;
		}
	}
	if (last < commit) {
		rc = say(rs, BABL_ECORRUPT,
		    "the log ends at entry %llu, before the commit index %llu: "
		    "committed entries are missing", (unsigned long long)last,
		    (unsigned long long)commit);
		goto out;
	}
	if (!cutfrom) {
		store_abort(t);
		return 0;
	}
	rc = store_commit(t);
	return rc ? store_fail(rs, rc, "committing the cut") : 0;
out:
	store_abort(t);
	return rc;
}

int
rstore_open(struct rstore **out, const char *dir, uint64_t map_bytes,
    uint64_t map_max, uint64_t *cut)
{
	struct rstore *rs = calloc(1, sizeof *rs);
	*out = rs;
	if (cut)
		*cut = 0;
	if (!rs)
		return BABL_ENOMEM;
	rs->map_max = map_max > map_bytes ? map_max : map_bytes;
	int rc = store_open(&rs->s, dir, map_bytes);
	if (rc && (rc != BABL_ECORRUPT || !rs->s)) {
		say(rs, rc, "opening %s: %s", dir, rs->s ? store_errstr(rs->s) :
		    babl_strerror(rc));
		return rc;
	}
	/* A bad last entry stops store_open; recovery decides what it is. */
	uint64_t n = 0;
	if ((rc = recover(rs, &n)))
		return rc;
	if (cut)
		*cut = n;
	return 0;
}

void
rstore_close(struct rstore *rs)
{
	if (!rs)
		return;
	store_close(rs->s);
	free(rs);
}

/* ---- writing, with a map that grows ----------------------------------------- */

/* One write transaction's work; it returns 0 or an error, and *full is set
 * when that error is the map running out. */
typedef int (*txn_fn)(struct rstore *rs, struct store_txn *t, void *ctx);

/*
 * Run fn in a write transaction and commit it.  When the map is full the
 * transaction is aborted, the map grows (at least by need bytes, doubling,
 * up to the ceiling) and fn runs again.
 */
static int
write_txn(struct rstore *rs, txn_fn fn, void *ctx, uint64_t need, const char *what)
{
	for (;;) {
		struct store_txn *t;
		int rc = store_begin(rs->s, 1, &t);
		if (rc)
			return store_fail(rs, rc, what);
		rs->err[0] = 0;
		rs->full = 0;
		rc = fn(rs, t, ctx);
		if (rc) {
			store_abort(t);
		} else if ((rc = store_commit(t))) {
			store_fail(rs, rc, what);
		}
		if (rc != BABL_ETOOBIG || !rs->full)
			return rc;
		/* Nothing of the transaction was written: grow and retry. */
		uint64_t cur = store_map_size(rs->s), next = cur * 2;
		if (next < cur + need)
			next = cur + need;
		if (next > rs->map_max)
			next = rs->map_max;
		if (cur >= rs->map_max || next <= cur)
			return say(rs, BABL_ETOOBIG,
			    "%s: the store's map is full at %llu bytes, its ceiling; "
			    "nothing was written (raise the ceiling or free space)",
			    what, (unsigned long long)cur);
		if ((rc = store_grow(rs->s, next)))
			return store_fail(rs, rc, "growing the map");
	}
}

/* Append a Raft entry at the tail (which *tail tracks). */
static int
append_one(struct rstore *rs, struct store_txn *t, const struct raft_entry *re,
    uint64_t *tail)
{
	struct entry e;
	struct iovec iov[2];
	int niov, rc;
	if (re->index != *tail + 1)
		return say(rs, BABL_EINPUT, "entry %llu does not follow the log's "
		    "end at %llu", (unsigned long long)re->index,
		    (unsigned long long)*tail);
	if ((rc = rstore_to_entry(re, &e, iov, &niov)))
		return say(rs, rc, "entry %llu has no meshd form (type %u, %u bytes)",
		    (unsigned long long)re->index, re->type, re->len);
	if ((rc = store_append(t, &e, iov, niov)))
		return store_fail(rs, rc, "appending an entry");
	*tail = re->index;
	return 0;
}

struct persist_ctx {
	const struct raft_ready *rd;
	rstore_install_fn install;
	void *arg;
};

static int
persist_fn(struct rstore *rs, struct store_txn *t, void *ctx)
{
	struct persist_ctx *c = ctx;
	const struct raft_ready *rd = c->rd;
	uint64_t tail, first;
	int rc;
	store_tail(rs->s, &tail, NULL, NULL);
	if (rd->snap) {
		const struct raft_snap_meta *m = &rd->snap->meta;
		struct wbuf b = {0};
		if (m->index == 0 || m->term == 0)
			return say(rs, BABL_EINPUT, "a snapshot at index 0");
		if (c->install && (rc = c->install(c->arg, t, rd->snap))) {
			if (rc == BABL_ETOOBIG) {
				rs->full = 1; /* its writes found the map full */
				return rc;
			}
			return say(rs, rc, "installing the snapshot at %llu: %s",
			    (unsigned long long)m->index, babl_strerror(rc));
		}
		if ((rc = snap_encode(&b, m))) {
			wbuf_free(&b);
			return say(rs, rc, "encoding the snapshot meta");
		}
		rc = store_put(t, DB_META, K_SNAP, strlen(K_SNAP), b.p, b.len);
		wbuf_free(&b);
		if (rc || (rc = store_meta_put(t, K_APPLIED, m->index)))
			return store_fail(rs, rc, "storing the snapshot meta");
		/* The snapshot replaces the log: it restarts with the anchor. */
		if ((rc = store_log_reset(t, m->index - 1)))
			return store_fail(rs, rc, "dropping the log");
		struct entry a = {.type = ENT_NOOP, .term = m->term, .index = m->index,
		    .len = RSTORE_MAGIC_LEN};
		struct iovec iov = {(void *)RSTORE_SNAP_MAGIC, RSTORE_MAGIC_LEN};
		if ((rc = store_append(t, &a, &iov, 1)))
			return store_fail(rs, rc, "writing the snapshot's anchor");
		tail = m->index;
	}
	if (rd->truncate && rd->truncate <= tail) {
		if ((rc = store_log_first(t, &first)))
			return store_fail(rs, rc, "finding the start of the log");
		if (first > 1 && rd->truncate <= first)
			return say(rs, BABL_EINPUT, "truncating at %llu would drop the "
			    "snapshot's anchor at %llu", (unsigned long long)rd->truncate,
			    (unsigned long long)first);
		if ((rc = store_truncate_from(t, rd->truncate)))
			return store_fail(rs, rc, "truncating the log");
		tail = rd->truncate - 1;
	}
	for (size_t i = 0; i < rd->nentries; i++)
		if ((rc = append_one(rs, t, &rd->entries[i], &tail)))
			return rc;
	if (rd->hs_changed &&
	    ((rc = store_meta_put(t, K_TERM, rd->hs.term)) ||
	     (rc = store_meta_put(t, K_VOTE, rd->hs.vote)) ||
	     (rc = store_meta_put(t, K_COMMIT, rd->hs.commit))))
		return store_fail(rs, rc, "storing the hard state");
	return 0;
}

int
rstore_persist(struct rstore *rs, const struct raft_ready *rd,
    rstore_install_fn install, void *arg)
{
	struct persist_ctx c = {rd, install, arg};
	uint64_t need = 4096;
	if (rd->snap)
		need += rd->snap->meta.size * 2;
	for (size_t i = 0; i < rd->nentries; i++)
		need += (uint64_t)ENTRY_HDR + 64 + rd->entries[i].len;
	/* B-tree pages are copied on write: room for twice the bytes. */
	return write_txn(rs, persist_fn, &c, need * 2, "persisting a ready");
}

static int
compact_fn(struct rstore *rs, struct store_txn *t, void *ctx)
{
	const struct raft_snap_meta *m = ctx;
	struct raft_snap_meta old;
	struct entry e;
	struct wbuf b = {0};
	int rc = snap_get(rs, t, &old);
	if (rc < 0)
		return rc;
	if (rc == 1 && m->index <= old.index)
		return say(rs, BABL_EINPUT, "a snapshot at %llu is not newer than "
		    "the stored one at %llu", (unsigned long long)m->index,
		    (unsigned long long)old.index);
	if ((rc = store_entry(t, m->index, &e)) || e.term != m->term)
		return say(rs, BABL_EINPUT, "compacting at %llu: the log has no "
		    "entry there of term %llu", (unsigned long long)m->index,
		    (unsigned long long)m->term);
	if ((rc = snap_encode(&b, m))) {
		wbuf_free(&b);
		return say(rs, rc, "encoding the snapshot meta");
	}
	rc = store_put(t, DB_META, K_SNAP, strlen(K_SNAP), b.p, b.len);
	wbuf_free(&b);
	if (rc)
		return store_fail(rs, rc, "storing the snapshot meta");
	if ((rc = store_log_drop_before(t, m->index)))
		return store_fail(rs, rc, "dropping compacted entries");
	return 0;
}

int
rstore_compact(struct rstore *rs, const struct raft_snap_meta *meta)
{
	return write_txn(rs, compact_fn, (void *)meta, 1 << 20, "compacting the log");
}

/* ---- reading back ------------------------------------------------------------ */

void
rstore_state_free(struct rstore_state *st)
{
	if (!st)
		return;
	free(st->ents);
	free(st->buf);
	st->ents = NULL;
	st->buf = NULL;
	st->n = 0;
}

/*
 * load_txn's walk over the log: every entry's shape, index and chain link
 * (a header read; no payload is hashed here).
 */
struct load_walk {
	struct rstore_state *st;
	uint64_t from, next;  /* the first index loaded; the one expected */
	int have_prev;
	uint8_t prev[32];     /* the stored hash of the entry before next */
	int lazy;
	size_t bytes;         /* data to load */
	const char *why;      /* set with BABL_ECORRUPT */
};

/* Whether entry i's data is loaded (and so its checksum checked). */
static int
load_data(const struct load_walk *w, uint64_t i, const struct raft_entry *re)
{
	return !w->lazy || i > w->st->applied || re->type == RAFT_ENT_CONF;
}

static int
load_one(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct load_walk *w = arg;
	struct entry e;
	uint64_t i = kl == 8 ? be64_get(k) : 0;
	if (kl != 8 || i != w->next) {
		if (kl == 8 && i + 1 == w->from && entry_parse(v, vl, &e) == 0 &&
		    e.index == i) {
			/* The entry before the first: the chain's anchor. */
			memcpy(w->prev, e.hash, 32);
			w->have_prev = 1;
			return 0;
		}
		if (kl == 8 && i < w->from)
			return 0;
		w->why = "is missing";
		return BABL_ECORRUPT;
	}
	if (entry_parse(v, vl, &e) || e.index != i) {
		w->why = "is not a well-formed entry";
		return BABL_ECORRUPT;
	}
	if (w->have_prev && memcmp(e.prev, w->prev, 32) != 0) {
		w->why = "does not chain to the entry before it";
		return BABL_ECORRUPT;
	}
	struct raft_entry *re = &w->st->ents[i - w->from];
	if (rstore_from_entry(&e, re, NULL)) { /* (a snapshot anchor) */
		w->why = "is a snapshot anchor after the snapshot";
		return BABL_ECORRUPT;
	}
	if (load_data(w, i, re))
		w->bytes += (size_t)e.len + 1;
	memcpy(w->prev, e.hash, 32);
	w->have_prev = 1;
	return ++w->next > w->from + w->st->n - 1 ? 1 : 0;
}

static int
load_txn(struct rstore *rs, struct store_txn *t, struct rstore_state *st, int lazy)
{
	uint64_t tail, from, i;
	size_t off = 0;
	struct entry e;
	int rc;
	if ((rc = meta_get0(rs, t, K_TERM, &st->hs.term)) ||
	    (rc = meta_get0(rs, t, K_VOTE, &st->hs.vote)) ||
	    (rc = meta_get0(rs, t, K_COMMIT, &st->hs.commit)) ||
	    (rc = meta_get0(rs, t, K_APPLIED, &st->applied)))
		return rc;
	if ((rc = snap_get(rs, t, &st->snap)) < 0)
		return rc;
	st->has_snap = rc;
	if (st->applied < st->snap.index)
		st->applied = st->snap.index;
	if ((rc = log_last(rs, t, &tail)))
		return rc;
	if (tail < st->hs.commit || tail < st->snap.index)
		return say(rs, BABL_ECORRUPT, "the log ends at entry %llu, before "
		    "the %s index %llu", (unsigned long long)tail,
		    tail < st->hs.commit ? "commit" : "snapshot's",
		    (unsigned long long)(tail < st->hs.commit ? st->hs.commit :
		    st->snap.index));
	from = st->snap.index + 1;
	if (tail < from)
		return 0;
	if (tail - from + 1 > SIZE_MAX / sizeof *st->ents)
		return say(rs, BABL_ENOMEM, "too many entries to load");
	st->n = (size_t)(tail - from + 1);
	if (!(st->ents = calloc(st->n, sizeof *st->ents)))
		return say(rs, BABL_ENOMEM, "loading %zu entries", st->n);
	/* First, in key order: every entry's shape and link. */
	struct load_walk w = {st, from, from, 0, {0}, lazy, 0, NULL};
	rc = store_scan(t, DB_LOG, NULL, 0, 0, load_one, &w);
	if (rc < 0 && rc != BABL_ECORRUPT)
		return store_fail(rs, rc, "reading the log");
	if (rc == BABL_ECORRUPT || w.next != tail + 1)
		return say(rs, BABL_ECORRUPT, "log entry %llu %s",
		    (unsigned long long)w.next, w.why ? w.why : "is missing");
	/* Then the data of those that carry it, each checked in full. */
	if (!(st->buf = malloc(w.bytes ? w.bytes : 1)))
		return say(rs, BABL_ENOMEM, "loading %zu entries", st->n);
	for (i = 0; i < st->n; i++) {
		if (!load_data(&w, from + i, &st->ents[i]))
			continue;
		if ((rc = store_entry(t, from + i, &e)) ||
		    (size_t)e.len + 1 > w.bytes - off)
			return say(rs, BABL_ECORRUPT, "log entry %llu %s",
			    (unsigned long long)(from + i), entry_why(rc));
		rstore_from_entry(&e, &st->ents[i], st->buf + off);
		off += (size_t)e.len + 1;
	}
	return 0;
}

static int
load(struct rstore *rs, struct rstore_state *st, int lazy)
{
	struct store_txn *t;
	memset(st, 0, sizeof *st);
	int rc = store_begin(rs->s, 0, &t);
	if (rc)
		return store_fail(rs, rc, "loading the Raft state");
	rc = load_txn(rs, t, st, lazy);
	store_abort(t);
	if (rc)
		rstore_state_free(st);
	return rc;
}

int
rstore_load(struct rstore *rs, struct rstore_state *st)
{
	return load(rs, st, 0);
}

int
rstore_load_lazy(struct rstore *rs, struct rstore_state *st)
{
	return load(rs, st, 1);
}

int
rstore_read(struct rstore *rs, uint64_t index, void *buf, size_t len)
{
	struct store_txn *t;
	struct entry e;
	struct raft_entry re;
	int rc = store_begin(rs->s, 0, &t);
	if (rc)
		return rc;
	if ((rc = store_entry(t, index, &e)) == 0) {
		/* Exactly len bytes of Raft data, and not a conf entry (the
		 * core keeps those), or it is not that entry. */
		if ((rc = rstore_from_entry(&e, &re, NULL)) == 0 &&
		    (re.type == RAFT_ENT_CONF || re.len != len || len == 0))
			rc = BABL_ECORRUPT;
		if (rc == 0)
			rstore_from_entry(&e, &re, buf);
	}
	store_abort(t);
	return rc;
}

int
rstore_restore(struct rstore *rs, struct raft *r)
{
	struct rstore_state st;
	int rc = rstore_load(rs, &st);
	if (rc)
		return rc;
	rc = raft_restore(r, &st.hs, st.has_snap ? &st.snap : NULL, st.ents, st.n,
	    st.applied);
	if (rc)
		say(rs, rc, "raft_restore refused the stored state: %s",
		    babl_strerror(rc));
	rstore_state_free(&st);
	return rc;
}

int
rstore_verify(struct rstore *rs, uint64_t *first, uint64_t *last)
{
	struct store_txn *t;
	uint64_t f, count = 0, bad = 0;
	char why[200];
	int rc = store_begin(rs->s, 0, &t);
	if (rc)
		return store_fail(rs, rc, "verifying");
	rc = store_log_first(t, &f);
	store_abort(t);
	if (rc)
		return store_fail(rs, rc, "finding the start of the log");
	rc = store_verify(rs->s, f > 1 ? f + 1 : 1, &count, &bad, why, sizeof why);
	if (rc == BABL_ECORRUPT)
		return say(rs, rc, "%s", why);
	if (rc)
		return store_fail(rs, rc, "verifying");
	if (first)
		*first = f;
	if (last)
		*last = f == 0 ? 0 : f > 1 ? f + count : count;
	return 0;
}
