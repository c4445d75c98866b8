/*
 * test_rstore.c - the Raft storage adapter: the entry mapping, ready
 * batches made durable and read back (hard state, entries, truncation of a
 * suffix, snapshots, compaction), restarts, a torn tail cut and committed
 * corruption refused, a map that grows and one full at its ceiling, and a
 * randomized run of three raft.h nodes whose readies go through rstore,
 * with nodes restarted from their stores at random.
 *
 * Each case works in its own directory under /tmp, removed at its end (or
 * by the next case if it failed).  The randomized case prints its seed;
 * BABL_TEST_SEED=N repeats a run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "entry.h"
#include "err.h"
#include "raft.h"
#include "rstore.h"
#include "store.h"
#include "wire.h"

#include "t.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define NDIRS 3

static char dirs[NDIRS][64];
static struct rstore *open_rs[NDIRS];

static void
remove_dirs(void)
{
	for (int i = 0; i < NDIRS; i++) {
		rstore_close(open_rs[i]);
		open_rs[i] = NULL;
		if (!dirs[i][0])
			continue;
		t_rm_lmdb(dirs[i]);
		dirs[i][0] = 0;
	}
}

static void
setup(void)
{
	remove_dirs();
	for (int i = 0; i < NDIRS; i++) {
		snprintf(dirs[i], sizeof dirs[i], "/tmp/babl-rstore-XXXXXX");
		T_ASSERT(mkdtemp(dirs[i]) != NULL);
	}
}

/* Open (or reopen) store number i, which must open cleanly. */
static struct rstore *
reopen(int i, uint64_t map, uint64_t max, uint64_t *cut)
{
	rstore_close(open_rs[i]);
	open_rs[i] = NULL;
	int rc = rstore_open(&open_rs[i], dirs[i], map, max, cut);
	if (rc)
		T_FAIL("rstore_open: %d (%s)", rc, open_rs[i] ? rstore_errstr(open_rs[i]) : "");
	return open_rs[i];
}

/* The log verifies, and spans first..last. */
static void
check_log(struct rstore *rs, uint64_t first, uint64_t last)
{
	uint64_t f, l;
	int rc = rstore_verify(rs, &f, &l);
	if (rc)
		T_FAIL("rstore_verify: %s", rstore_errstr(rs));
	T_EQ_INT(f, first);
	T_EQ_INT(l, last);
	uint64_t tail;
	store_tail(rstore_store(rs), &tail, NULL, NULL);
	T_EQ_INT(tail, last);
	if (first == 1) {
		uint64_t n, bad;
		char why[200];
		T_EQ_INT(store_verify(rstore_store(rs), 1, &n, &bad, why, sizeof why), 0);
		T_EQ_INT(n, last);
	}
}

/* Entries made for tests: normal bodies of type ENT_INPUT, or others. */
static uint8_t bodies[64][300];

static struct raft_entry
normal(uint64_t index, uint64_t term, unsigned len)
{
	uint8_t *b = bodies[index % 64];
	b[0] = ENT_INPUT;
	for (unsigned i = 1; i < len; i++)
		b[i] = (uint8_t)(index * 31 + term * 7 + i);
	struct raft_entry e = {index, term, RAFT_ENT_NORMAL, len, b};
	return e;
}

static int
same_entry(const struct raft_entry *a, const struct raft_entry *b)
{
	return a->index == b->index && a->term == b->term && a->type == b->type &&
	    a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void
persist(struct rstore *rs, const struct raft_ready *rd)
{
	int rc = rstore_persist(rs, rd, NULL, NULL);
	if (rc)
		T_FAIL("rstore_persist: %d (%s)", rc, rstore_errstr(rs));
}

/* ---- cases ------------------------------------------------------------------ */

static void
case_mapping(void)
{
	uint8_t conf_bytes[32], buf[400];
	struct wbuf b = {0};
	struct raft_conf c = {2, {{1, 1}, {2, 0}}};
	T_EQ_INT(raft_conf_encode(&b, &c), 0);
	memcpy(conf_bytes, b.p, b.len);
	struct raft_entry in[4] = {
		normal(1, 1, 40),
		{2, 1, RAFT_ENT_NOOP, 0, NULL},
		{3, 2, RAFT_ENT_CONF, (uint32_t)b.len, conf_bytes},
		normal(4, 2, 1),
	};
	for (int i = 0; i < 4; i++) {
		struct entry e;
		struct iovec iov[2];
		int niov;
		T_EQ_INT(rstore_to_entry(&in[i], &e, iov, &niov), 0);
		/* Gather the payload as the store would, and map it back. */
		uint8_t pay[400];
		size_t off = 0;
		for (int j = 0; j < niov; j++) {
			memcpy(pay + off, iov[j].iov_base, iov[j].iov_len);
			off += iov[j].iov_len;
		}
		T_EQ_INT(off, e.len);
		e.payload = pay;
		struct raft_entry out;
		T_EQ_INT(rstore_from_entry(&e, &out, buf), 0);
		T_ASSERT(same_entry(&in[i], &out));
	}
	wbuf_free(&b);
	/* A normal body is a meshd type byte and payload, stored verbatim. */
	struct entry e;
	struct iovec iov[2];
	int niov;
	T_EQ_INT(rstore_to_entry(&in[0], &e, iov, &niov), 0);
	T_EQ_INT(e.type, ENT_INPUT);
	T_EQ_INT(e.len, 39);
	/* Bodies that cannot be, or would read back as something else. */
	uint8_t bad0[1] = {0}, bad9[2] = {ENT_MAX + 1, 0}, noop0[1] = {ENT_NOOP};
	uint8_t noopc[12] = {ENT_NOOP, 'R', 'A', 'F', 'T', 'C', 'O', 'N', 'F', 1, 2, 3};
	uint8_t barrier[9] = {ENT_NOOP, 0, 0, 0, 0, 0, 0, 0, 42};
	T_EQ_INT(rstore_body_check(bad0, 1), BABL_EINPUT);
	T_EQ_INT(rstore_body_check(bad9, 2), BABL_EINPUT);
	T_EQ_INT(rstore_body_check(noop0, 1), BABL_EINPUT);
	T_EQ_INT(rstore_body_check(noopc, sizeof noopc), BABL_EINPUT);
	T_EQ_INT(rstore_body_check(bad0, 0), BABL_EINPUT);
	T_EQ_INT(rstore_body_check(barrier, sizeof barrier), 0);
	struct raft_entry rb = {5, 2, RAFT_ENT_NORMAL, 1, noop0};
	T_EQ_INT(rstore_to_entry(&rb, &e, iov, &niov), BABL_EINPUT);
}


/* Entry i of the log case_round_trip leaves: 1-2 normal at term 1, 3 a noop,
 * 4-5 normal at term 2. */
static struct raft_entry
persisted_log(uint64_t i)
{
	if (i == 3)
		return (struct raft_entry){3, 1, RAFT_ENT_NOOP, 0, NULL};
	return i < 3 ? normal(i, 1, 10 + (unsigned)i - 1) : normal(i, 2, 20);
}

static void
case_round_trip(void)
{
	setup();
	struct rstore *rs = reopen(0, 4 * MiB, 0, NULL);
	struct raft_entry ents[8];
	struct raft_ready rd;
	struct rstore_state st;

	/* Hard state alone, then entries 1..5 with a new commit. */
	memset(&rd, 0, sizeof rd);
	rd.hs_changed = 1;
	rd.hs = (struct raft_hard_state){1, 2, 0};
	persist(rs, &rd);
	check_log(rs, 0, 0);
	for (int i = 0; i < 5; i++)
		ents[i] = normal((uint64_t)i + 1, 1, 10 + (unsigned)i);
	ents[2].type = RAFT_ENT_NOOP;
	ents[2].len = 0;
	ents[2].data = NULL;
	rd.entries = ents;
	rd.nentries = 5;
	rd.hs = (struct raft_hard_state){1, 2, 2};
	persist(rs, &rd);
	check_log(rs, 1, 5);

	/* A conflicting suffix from 4 goes; 4..6 of term 2 chain to 3. */
	memset(&rd, 0, sizeof rd);
	rd.truncate = 4;
	for (int i = 0; i < 3; i++)
		ents[i] = normal((uint64_t)i + 4, 2, 20);
	rd.entries = ents;
	rd.nentries = 3;
	rd.hs_changed = 1;
	rd.hs = (struct raft_hard_state){2, 3, 4};
	persist(rs, &rd);
	check_log(rs, 1, 6);
	struct store_txn *t;
	struct entry e;
	T_EQ_INT(store_begin(rstore_store(rs), 0, &t), 0);
	T_EQ_INT(store_entry(t, 4, &e), 0);
	T_EQ_INT(e.term, 2);
	store_abort(t);

	/* Truncation alone, to the last entry. */
	memset(&rd, 0, sizeof rd);
	rd.truncate = 6;
	persist(rs, &rd);
	check_log(rs, 1, 5);

	/* A restart gives back exactly what was persisted. */
	rs = reopen(0, 4 * MiB, 0, NULL);
	check_log(rs, 1, 5);
	T_EQ_INT(rstore_load(rs, &st), 0);
	T_EQ_INT(st.hs.term, 2);
	T_EQ_INT(st.hs.vote, 3);
	T_EQ_INT(st.hs.commit, 4);
	T_EQ_INT(st.has_snap, 0);
	T_EQ_INT(st.n, 5);
	T_EQ_INT(st.applied, 0);
	for (uint64_t i = 1; i <= 5; i++) {
		struct raft_entry want = persisted_log(i);
		T_ASSERT(same_entry(&st.ents[i - 1], &want));
	}
	rstore_state_free(&st);

	/* Lazily, entries up to applied come without their data (length
	 * kept), and rstore_read gives it back byte for byte; a wrong length
	 * or index is refused. */
	T_EQ_INT(store_begin(rstore_store(rs), 1, &t), 0);
	T_EQ_INT(store_meta_put(t, "applied", 4), 0);
	T_EQ_INT(store_commit(t), 0);
	T_EQ_INT(rstore_load_lazy(rs, &st), 0);
	T_EQ_INT(st.n, 5);
	for (uint64_t i = 1; i <= 5; i++) {
		struct raft_entry want = persisted_log(i);
		struct raft_entry got = st.ents[i - 1];
		uint8_t b[64];
		if (i <= 4 && want.len) {
			T_ASSERT(got.data == NULL);
			T_EQ_INT(rstore_read(rs, i, b, want.len), 0);
			got.data = b;
			T_EQ_INT(rstore_read(rs, i, b, want.len - 1), BABL_ECORRUPT);
		}
		T_ASSERT(same_entry(&got, &want));
	}
	uint8_t b1[1];
	T_EQ_INT(rstore_read(rs, 3, b1, 1), BABL_ECORRUPT); /* a noop has no data */
	T_EQ_INT(rstore_read(rs, 9, b1, 1), BABL_ENOENT);
	rstore_state_free(&st);

	/* An entry that does not follow the end is refused; nothing changes. */
	memset(&rd, 0, sizeof rd);
	ents[0] = normal(7, 2, 5);
	rd.entries = ents;
	rd.nentries = 1;
	rd.hs_changed = 1;
	rd.hs = (struct raft_hard_state){9, 9, 5};
	T_EQ_INT(rstore_persist(rs, &rd, NULL, NULL), BABL_EINPUT);
	T_ASSERT(strstr(rstore_errstr(rs), "does not follow") != NULL);
	check_log(rs, 1, 5);
	T_EQ_INT(rstore_load(rs, &st), 0);
	T_EQ_INT(st.hs.term, 2);
	rstore_state_free(&st);
	remove_dirs();
}

static uint8_t installed[64];
static size_t ninstalled;

static int
install_cb(void *arg, struct store_txn *t, const struct raft_snapshot *snap)
{
	(void)arg;
	T_ASSERT(snap->meta.size <= sizeof installed);
	memcpy(installed, snap->data, snap->meta.size);
	ninstalled = snap->meta.size;
	return store_put(t, DB_META, "test.state", 10, snap->data, snap->meta.size);
}

static void
case_snapshot(void)
{
	setup();
	struct rstore *rs = reopen(0, 4 * MiB, 0, NULL);
	struct raft_entry ents[8];
	struct raft_ready rd;
	struct rstore_state st;
	memset(&rd, 0, sizeof rd);
	for (int i = 0; i < 4; i++)
		ents[i] = normal((uint64_t)i + 1, 1, 30);
	rd.entries = ents;
	rd.nentries = 4;
	rd.hs_changed = 1;
	rd.hs = (struct raft_hard_state){1, 1, 2};
	persist(rs, &rd);

	/* A snapshot at 10 replaces the log, and entries 11, 12 follow it. */
	struct raft_snapshot snap = {{10, 3, 5, {1, {{1, 1}}}}, (const uint8_t *)"state"};
	memset(&rd, 0, sizeof rd);
	rd.snap = &snap;
	ents[0] = normal(11, 3, 12);
	ents[1] = normal(12, 3, 13);
	rd.entries = ents;
	rd.nentries = 2;
	rd.hs_changed = 1;
	rd.hs = (struct raft_hard_state){3, 0, 10};
	T_EQ_INT(rstore_persist(rs, &rd, install_cb, NULL), 0);
	T_EQ_INT(ninstalled, 5);
	check_log(rs, 10, 12);

	/* Truncation after the anchor, then a new entry that chains. */
	memset(&rd, 0, sizeof rd);
	rd.truncate = 12;
	ents[0] = normal(12, 4, 14);
	rd.entries = ents;
	rd.nentries = 1;
	rd.hs_changed = 1;
	rd.hs = (struct raft_hard_state){4, 0, 10};
	persist(rs, &rd);
	check_log(rs, 10, 12);
	/* Truncating the anchor away is refused. */
	memset(&rd, 0, sizeof rd);
	rd.truncate = 10;
	T_EQ_INT(rstore_persist(rs, &rd, NULL, NULL), BABL_EINPUT);
	check_log(rs, 10, 12);

	rs = reopen(0, 4 * MiB, 0, NULL);
	T_EQ_INT(rstore_load(rs, &st), 0);
	T_EQ_INT(st.has_snap, 1);
	T_EQ_INT(st.snap.index, 10);
	T_EQ_INT(st.snap.term, 3);
	T_EQ_INT(st.snap.size, 5);
	T_EQ_INT(st.snap.conf.n, 1);
	T_EQ_INT(st.snap.conf.s[0].id, 1);
	T_EQ_INT(st.applied, 10);
	T_EQ_INT(st.hs.term, 4);
	T_EQ_INT(st.hs.commit, 10);
	T_EQ_INT(st.n, 2);
	struct raft_entry w1 = normal(11, 3, 12), w2 = normal(12, 4, 14);
	T_ASSERT(same_entry(&st.ents[0], &w1));
	T_ASSERT(same_entry(&st.ents[1], &w2));
	rstore_state_free(&st);

	/* A raft node restores from it and knows where it stands. */
	struct raft_config cfg;
	struct raft *r;
	raft_config_default(&cfg);
	cfg.id = 1;
	cfg.seed = 1;
	T_EQ_INT(raft_open(&r, &cfg), 0);
	T_EQ_INT(rstore_restore(rs, r), 0);
	struct raft_status rst;
	raft_status(r, &rst);
	T_EQ_INT(rst.first_index, 11);
	T_EQ_INT(rst.last_index, 12);
	T_EQ_INT(rst.term, 4);
	raft_close(r);

	/* A compaction of the caller's own moves the snapshot and the start. */
	memset(&rd, 0, sizeof rd);
	for (int i = 0; i < 4; i++)
		ents[i] = normal(13 + (uint64_t)i, 4, 9);
	rd.entries = ents;
	rd.nentries = 4;
	rd.hs_changed = 1;
	rd.hs = (struct raft_hard_state){4, 0, 15};
	persist(rs, &rd);
	struct raft_snap_meta m = {14, 4, 7, {1, {{1, 1}}}};
	T_EQ_INT(rstore_compact(rs, &m), 0);
	check_log(rs, 14, 16);
	m.term = 3;
	m.index = 15;
	T_EQ_INT(rstore_compact(rs, &m), BABL_EINPUT); /* the wrong term */
	rs = reopen(0, 4 * MiB, 0, NULL);
	T_EQ_INT(rstore_load(rs, &st), 0);
	T_EQ_INT(st.snap.index, 14);
	T_EQ_INT(st.n, 2);
	T_EQ_INT(st.ents[0].index, 15);
	rstore_state_free(&st);
	remove_dirs();
}

/*
 * Overwrite entry index in place with bytes made by make_bad: a torn
 * write as the test sees it.
 */
static void
tamper(struct rstore *rs, uint64_t index, int chain)
{
	struct store_txn *t;
	struct entry e;
	uint8_t k[8], v[ENTRY_HDR + 512];
	const void *p;
	size_t n;
	be64_put(k, index);
	T_EQ_INT(store_begin(rstore_store(rs), 1, &t), 0);
	T_EQ_INT(store_get(t, DB_LOG, k, 8, &p, &n), 0);
	T_ASSERT(n <= sizeof v);
	memcpy(v, p, n);
	if (!chain) {
		v[n - 1] ^= 0x40; /* a payload byte: the checksum fails */
	} else {
		/* A well-formed entry whose prev is wrong: it does not chain. */
		T_EQ_INT(entry_open(v, n, &e), 0);
		e.prev[0] ^= 1;
		struct iovec iov = {(void *)(v + ENTRY_HDR), e.len};
		entry_seal(&e, &iov, 1, v);
	}
	T_EQ_INT(store_put(t, DB_LOG, k, 8, v, n), 0);
	T_EQ_INT(store_commit(t), 0);
}

static void
fill(struct rstore *rs, uint64_t n, uint64_t commit)
{
	struct raft_entry ents[16];
	struct raft_ready rd;
	memset(&rd, 0, sizeof rd);
	for (uint64_t i = 0; i < n; i++)
		ents[i] = normal(i + 1, 1, 50);
	rd.entries = ents;
	rd.nentries = n;
	rd.hs_changed = 1;
	rd.hs = (struct raft_hard_state){1, 1, commit};
	persist(rs, &rd);
}

static void
case_torn_tail(void)
{
	setup();
	uint64_t cut = 99;
	struct rstore_state st;
	struct rstore *rs = reopen(0, 4 * MiB, 0, NULL);
	fill(rs, 6, 3);
	/* A last entry that fails its checksum: store_open alone refuses it,
	 * rstore_open cuts it. */
	tamper(rs, 6, 0);
	rs = reopen(0, 4 * MiB, 0, &cut);
	T_EQ_INT(cut, 1);
	check_log(rs, 1, 5);
	/* A last entry that does not chain is cut too, and then the one
	 * before it if it is bad as well (both after the commit index). */
	tamper(rs, 4, 0);
	tamper(rs, 5, 1);
	rs = reopen(0, 4 * MiB, 0, &cut);
	T_EQ_INT(cut, 2);
	check_log(rs, 1, 3);
	T_EQ_INT(rstore_load(rs, &st), 0);
	T_EQ_INT(st.n, 3);
	T_EQ_INT(st.hs.commit, 3);
	rstore_state_free(&st);
	/* New entries chain onto what is left. */
	struct raft_entry e4 = normal(4, 2, 8);
	struct raft_ready rd;
	memset(&rd, 0, sizeof rd);
	rd.entries = &e4;
	rd.nentries = 1;
	persist(rs, &rd);
	check_log(rs, 1, 4);
	remove_dirs();
}

static void
case_committed_corrupt(void)
{
	setup();
	struct rstore *rs = reopen(0, 4 * MiB, 0, NULL);
	fill(rs, 5, 5);
	tamper(rs, 5, 0);
	rstore_close(open_rs[0]);
	open_rs[0] = NULL;
	T_EQ_INT(rstore_open(&open_rs[0], dirs[0], 4 * MiB, 0, NULL), BABL_ECORRUPT);
	T_ASSERT(open_rs[0] != NULL);
	T_ASSERT(strstr(rstore_errstr(open_rs[0]), "entry 5 fails its checksum") != NULL);
	T_ASSERT(strstr(rstore_errstr(open_rs[0]), "commit index 5") != NULL);
	rstore_close(open_rs[0]);
	open_rs[0] = NULL;
	/* Nothing was cut: the bad entry is still there for a human. */
	struct store *s;
	T_EQ_INT(store_open(&s, dirs[0], 4 * MiB), BABL_ECORRUPT);
	struct store_txn *t;
	const void *p;
	size_t n;
	uint8_t k[8];
	be64_put(k, 5);
	T_EQ_INT(store_begin(s, 0, &t), 0);
	T_EQ_INT(store_get(t, DB_LOG, k, 8, &p, &n), 0);
	store_abort(t);
	store_close(s);

	/* A committed entry that does not chain is refused as well. */
	setup();
	rs = reopen(0, 4 * MiB, 0, NULL);
	fill(rs, 5, 5);
	tamper(rs, 5, 1);
	rstore_close(open_rs[0]);
	open_rs[0] = NULL;
	T_EQ_INT(rstore_open(&open_rs[0], dirs[0], 4 * MiB, 0, NULL), BABL_ECORRUPT);
	T_ASSERT(strstr(rstore_errstr(open_rs[0]), "entry 5 does not chain") != NULL);
	rstore_close(open_rs[0]);
	open_rs[0] = NULL;

	/* So is a bad committed entry below a good tail, found by the load. */
	setup();
	rs = reopen(0, 4 * MiB, 0, NULL);
	fill(rs, 5, 5);
	tamper(rs, 3, 0);
	rs = reopen(0, 4 * MiB, 0, NULL);
	struct rstore_state st;
	T_EQ_INT(rstore_load(rs, &st), BABL_ECORRUPT);
	T_ASSERT(strstr(rstore_errstr(rs), "entry 3") != NULL);
	rstore_state_free(&st);
	uint64_t f, l;
	T_EQ_INT(rstore_verify(rs, &f, &l), BABL_ECORRUPT);
	/* The lazy load hashes only the entries whose data it loads: an
	 * applied entry with a bad payload is found when it is read back
	 * (and by rstore_verify), not at the load... */
	struct store_txn *mt;
	T_EQ_INT(store_begin(rstore_store(rs), 1, &mt), 0);
	T_EQ_INT(store_meta_put(mt, "applied", 4), 0);
	T_EQ_INT(store_commit(mt), 0);
	T_EQ_INT(rstore_load_lazy(rs, &st), 0);
	T_EQ_INT(st.n, 5);
	T_ASSERT(st.ents[2].data == NULL && st.ents[4].data != NULL);
	uint8_t rb[64];
	T_EQ_INT(st.ents[2].len, 50);
	T_EQ_INT(rstore_read(rs, 2, rb, 50), 0);
	T_EQ_INT(rstore_read(rs, 3, rb, 50), BABL_ECORRUPT);
	rstore_state_free(&st);
	/* ...but one it loads is checked, and so is every link. */
	tamper(rs, 5, 0);
	T_EQ_INT(rstore_load_lazy(rs, &st), BABL_ECORRUPT);
	T_ASSERT(strstr(rstore_errstr(rs), "entry 5 fails its checksum") != NULL);
	rstore_state_free(&st);
	setup();
	rs = reopen(0, 4 * MiB, 0, NULL);
	fill(rs, 5, 5);
	tamper(rs, 2, 1);
	T_EQ_INT(store_begin(rstore_store(rs), 1, &mt), 0);
	T_EQ_INT(store_meta_put(mt, "applied", 4), 0);
	T_EQ_INT(store_commit(mt), 0);
	T_EQ_INT(rstore_load_lazy(rs, &st), BABL_ECORRUPT);
	T_ASSERT(strstr(rstore_errstr(rs), "entry 2 does not chain") != NULL);
	rstore_state_free(&st);
	remove_dirs();
}

static void
case_map_full(void)
{
	setup();
	const uint64_t map0 = 256 * KiB, ceiling = 1 * MiB;
	struct rstore *rs = reopen(0, map0, ceiling, NULL);
	static uint8_t big[16 * 1024];
	struct raft_entry e = {0, 1, RAFT_ENT_NORMAL, sizeof big, big};
	struct raft_ready rd;
	uint64_t last = 0;
	int rc = 0, grew = 0;
	big[0] = ENT_INPUT;
	/* Append until the map is full at its ceiling: it grows on the way. */
	while (last < 1000) {
		memset(&rd, 0, sizeof rd);
		e.index = last + 1;
		memset(big + 1, (int)e.index, sizeof big - 1);
		rd.entries = &e;
		rd.nentries = 1;
		rd.hs_changed = 1;
		rd.hs = (struct raft_hard_state){1, 1, last + 1};
		if ((rc = rstore_persist(rs, &rd, NULL, NULL)))
			break;
		last++;
		if (store_map_size(rstore_store(rs)) > map0)
			grew = 1;
	}
	T_EQ_INT(rc, BABL_ETOOBIG);
	T_ASSERT(grew);
	T_EQ_INT(store_map_size(rstore_store(rs)), ceiling);
	T_ASSERT(strstr(rstore_errstr(rs), "full") != NULL);
	T_ASSERT(strstr(rstore_errstr(rs), "ceiling") != NULL);
	T_ASSERT(last > 20); /* more than the first map held */
	check_log(rs, 1, last);
	/* The failed ready left nothing behind, and smaller ones still fail
	 * cleanly or fit; the store stays whole either way. */
	struct rstore_state st;
	T_EQ_INT(rstore_load(rs, &st), 0);
	T_EQ_INT(st.n, last);
	T_EQ_INT(st.hs.commit, last);
	rstore_state_free(&st);
	rs = reopen(0, ceiling, ceiling, NULL);
	check_log(rs, 1, last);
	/* Reopened, the pages that the store's checkpoints held pinned when
	 * it failed are free again (how many depends on the checkpoint
	 * thread's timing): the same ready fails the same way, or fits whole. */
	rc = rstore_persist(rs, &rd, NULL, NULL);
	if (rc != BABL_ETOOBIG && rc != 0)
		T_FAIL("the failed ready again: %d (%s); want BABL_ETOOBIG or 0", rc,
		    rstore_errstr(rs));
	if (rc == 0)
		last++;
	check_log(rs, 1, last);
	/* A higher ceiling lets the same ready in, after a truncation. */
	rs = reopen(0, ceiling, 4 * ceiling, NULL);
	memset(&rd, 0, sizeof rd);
	rd.truncate = last - 4;
	e.index = last - 4;
	e.term = 2;
	rd.entries = &e;
	rd.nentries = 1;
	rd.hs_changed = 1;
	rd.hs = (struct raft_hard_state){2, 1, last - 5};
	persist(rs, &rd);
	T_ASSERT(store_map_size(rstore_store(rs)) > ceiling);
	check_log(rs, 1, last - 4);
	remove_dirs();
}

/* ---- randomized: three raft nodes persisting through rstore ------------------- */

static uint64_t rng_state;

static uint64_t
rnd(void)
{
	return t_rand(&rng_state);
}

#define NN 3
#define MAXQ 4096

/* What a node has persisted, kept by the test as the model to compare. */
struct shadow {
	struct raft_hard_state hs;
	uint64_t base, base_term; /* the snapshot's index and term, 0 if none */
	size_t n;
	struct raft_entry ents[4096];
};

struct node {
	struct raft *r;
	struct rstore *rs;
	struct shadow sh;
	uint64_t applied;
};

static struct node nodes[NN];
static struct qmsg {
	uint64_t to;
	struct wbuf b;
} queue[MAXQ];
static size_t nq;
static struct raft_entry dents[RAFT_MSG_MAX_ENTRIES];

/* What each committed index holds, as first applied anywhere. */
static struct {
	uint64_t term;
	uint32_t len;
	uint8_t first;
	int set;
} truth[20000];

static void
sh_clear_from(struct shadow *sh, size_t k)
{
	for (size_t i = k; i < sh->n; i++)
		free(sh->ents[i].data);
	sh->n = k;
}

static void
sh_apply(struct shadow *sh, const struct raft_ready *rd)
{
	if (rd->snap) {
		sh_clear_from(sh, 0);
		sh->base = rd->snap->meta.index;
		sh->base_term = rd->snap->meta.term;
	}
	if (rd->truncate && rd->truncate <= sh->base + sh->n)
		sh_clear_from(sh, (size_t)(rd->truncate - sh->base - 1));
	for (size_t i = 0; i < rd->nentries; i++) {
		struct raft_entry e = rd->entries[i];
		T_ASSERT(e.index == sh->base + sh->n + 1);
		T_ASSERT(sh->n < sizeof sh->ents / sizeof sh->ents[0]);
		if (e.len) {
			uint8_t *d = malloc(e.len);
			T_ASSERT(d != NULL);
			memcpy(d, e.data, e.len);
			e.data = d;
		} else {
			e.data = NULL;
		}
		sh->ents[sh->n++] = e;
	}
	if (rd->hs_changed)
		sh->hs = rd->hs;
}

static void
sh_compact(struct shadow *sh, uint64_t index, uint64_t term)
{
	size_t k = (size_t)(index - sh->base);
	for (size_t i = 0; i < k; i++)
		free(sh->ents[i].data);
	memmove(sh->ents, sh->ents + k, (sh->n - k) * sizeof sh->ents[0]);
	sh->n -= k;
	sh->base = index;
	sh->base_term = term;
}

static int
snap_read(void *ctx, const struct raft_snap_meta *meta, uint64_t off, void *buf,
    size_t len)
{
	uint8_t d[8];
	(void)ctx;
	be64_put(d, meta->index);
	if (off + len > sizeof d)
		return BABL_EINPUT;
	memcpy(buf, d + off, len);
	return 0;
}

/* Raft's ent_read from the real store (odd seeds). */
static unsigned reads;

static int
ent_read(void *ctx, uint64_t index, void *buf, size_t len)
{
	struct node *n = ctx;
	reads++;
	return rstore_read(n->rs, index, buf, len);
}

static unsigned installs;

static int
snap_install(void *arg, struct store_txn *t, const struct raft_snapshot *snap)
{
	struct node *n = arg;
	if (snap->meta.size != 8 || be64_get(snap->data) != snap->meta.index)
		return BABL_EPROTO;
	n->applied = snap->meta.index;
	installs++;
	return store_put(t, DB_META, "test.state", 10, snap->data, 8);
}

static void
node_start(int i, uint64_t seed, int fresh, const struct raft_conf *conf)
{
	struct node *n = &nodes[i];
	struct raft_config cfg;
	uint64_t cut = 99;
	n->rs = reopen(i, 1 * MiB, 64 * MiB, &cut);
	T_EQ_INT(cut, 0);
	raft_config_default(&cfg);
	cfg.id = (uint64_t)i + 1;
	cfg.seed = seed * 7 + (uint64_t)i;
	cfg.max_msg_entries = 8;
	cfg.snap_chunk = 3;
	cfg.snap_read = snap_read;
	if (seed % 2) {
		cfg.ent_read = ent_read;
		cfg.ent_ctx = n;
	}
	T_EQ_INT(raft_open(&n->r, &cfg), 0);
	if (fresh) {
		T_EQ_INT(raft_bootstrap(n->r, conf), 0);
		n->applied = 0;
		return;
	}
	/* The store gives back exactly what the model says was persisted. */
	struct rstore_state st;
	int rc = rstore_load(n->rs, &st);
	if (rc)
		T_FAIL("rstore_load: %s", rstore_errstr(n->rs));
	T_EQ_MEM(&st.hs, &n->sh.hs, sizeof st.hs);
	T_EQ_INT(st.snap.index, n->sh.base);
	T_EQ_INT(st.snap.term, n->sh.base_term);
	T_EQ_INT(st.n, n->sh.n);
	for (size_t k = 0; k < st.n; k++)
		T_ASSERT(same_entry(&st.ents[k], &n->sh.ents[k]));
	rc = raft_restore(n->r, &st.hs, st.has_snap ? &st.snap : NULL, st.ents, st.n,
	    st.applied);
	T_EQ_INT(rc, 0);
	n->applied = st.applied;
	rstore_state_free(&st);
	struct raft_status rst;
	raft_status(n->r, &rst);
	T_EQ_INT(rst.last_index, n->sh.base + n->sh.n);
	T_EQ_INT(rst.term, n->sh.hs.term);
	T_EQ_INT(rst.first_index, n->sh.base + 1);
	check_log(n->rs, n->sh.base ? n->sh.base : (n->sh.n ? 1 : 0),
	    n->sh.base + n->sh.n);
}

static void
node_stop(int i)
{
	raft_close(nodes[i].r);
	nodes[i].r = NULL;
	rstore_close(open_rs[i]);
	open_rs[i] = NULL;
	nodes[i].rs = NULL;
	/* Messages to it are lost with it. */
	for (size_t k = 0; k < nq; k++)
		if (queue[k].to == (uint64_t)i + 1)
			queue[k].to = 0;
}

static void
apply_one(struct node *n, const struct raft_entry *e)
{
	T_ASSERT(e->index < sizeof truth / sizeof truth[0]);
	T_EQ_INT(e->index, n->applied + 1);
	if (!truth[e->index].set) {
		truth[e->index].set = 1;
		truth[e->index].term = e->term;
		truth[e->index].len = e->len;
		truth[e->index].first = e->len ? e->data[0] : 0;
	} else {
		/* State-machine safety: every node applies the same entry. */
		T_EQ_INT(truth[e->index].term, e->term);
		T_EQ_INT(truth[e->index].len, e->len);
	}
	n->applied = e->index;
}

static void
drain(int i)
{
	struct node *n = &nodes[i];
	struct raft_ready rd;
	int rc;
	while ((rc = raft_ready(n->r, &rd)) > 0) {
		if ((rc = rstore_persist(n->rs, &rd, snap_install, n)))
			T_FAIL("node %d: rstore_persist: %s", i + 1, rstore_errstr(n->rs));
		sh_apply(&n->sh, &rd);
		for (size_t k = 0; k < rd.nmsgs; k++) {
			if (nq == MAXQ || rnd() % 20 == 0)
				continue; /* lost */
			struct qmsg *q = &queue[nq];
			wbuf_reset(&q->b);
			T_EQ_INT(raft_msg_encode(&q->b, &rd.msgs[k]), 0);
			q->to = rd.msgs[k].to;
			nq++;
		}
		if (rd.snap)
			n->applied = rd.snap->meta.index;
		for (size_t k = 0; k < rd.ncommitted; k++)
			apply_one(n, &rd.committed[k]);
		if (rd.ncommitted) {
			/* The state machine records how far it got, as meshd does. */
			struct store_txn *t;
			T_EQ_INT(store_begin(rstore_store(n->rs), 1, &t), 0);
			T_EQ_INT(store_meta_put(t, "applied", n->applied), 0);
			T_EQ_INT(store_commit(t), 0);
		}
		T_EQ_INT(raft_advance(n->r, &rd), 0);
	}
	T_EQ_INT(rc, 0);
}

static void
deliver(size_t k)
{
	struct qmsg q = queue[k];
	queue[k] = queue[--nq];
	queue[nq].b = (struct wbuf){0};
	if (q.to && nodes[q.to - 1].r) {
		struct raft_msg m;
		T_EQ_INT(raft_msg_decode(q.b.p, q.b.len, &m, dents, RAFT_MSG_MAX_ENTRIES), 0);
		T_EQ_INT(raft_step(nodes[q.to - 1].r, &m), 0);
	}
	wbuf_free(&q.b);
}

static void
case_random_raft(void)
{
	setup();
	uint64_t seed = t_seed("random_raft");
	rng_state = seed * 2654435761u + 1;
	memset(truth, 0, sizeof truth);
	memset(nodes, 0, sizeof nodes);
	nq = 0;
	installs = 0;
	reads = 0;
	struct raft_conf conf = {3, {{1, 1}, {2, 1}, {3, 1}}};
	for (int i = 0; i < NN; i++)
		node_start(i, seed, 1, &conf);
	unsigned restarts = 0, compactions = 0, proposed = 0;
	for (int step = 0; step < 4000; step++) {
		int i = (int)(rnd() % NN);
		uint64_t a = rnd() % 100;
		if (!nodes[i].r) {
			if (a < 20) {
				node_start(i, seed + (uint64_t)step, 0, NULL);
				restarts++;
			}
		} else if (a < 1) {
			node_stop(i);
		} else if (a < 3) {
			/* Close and reopen between batches. */
			node_stop(i);
			node_start(i, seed + (uint64_t)step, 0, NULL);
			restarts++;
		} else if (a < 30) {
			T_EQ_INT(raft_tick(nodes[i].r), 0);
		} else if (a < 55) {
			uint8_t body[40];
			body[0] = ENT_INPUT;
			for (size_t k = 1; k < sizeof body; k++)
				body[k] = (uint8_t)rnd();
			size_t len = 1 + rnd() % (sizeof body - 1);
			int rc = raft_propose(nodes[i].r, body, len, NULL, NULL);
			T_ASSERT(rc == 0 || rc == BABL_EPERM || rc == BABL_EBUSY);
			proposed += rc == 0;
		} else if (a < 58) {
			/* A snapshot of what was applied, now and then. */
			struct raft_status rst;
			struct raft_snap_meta m;
			raft_status(nodes[i].r, &rst);
			if (rst.applied > rst.first_index + 2 &&
			    raft_compact(nodes[i].r, rst.applied - 1, 8, &m) == 0) {
				if (rstore_compact(nodes[i].rs, &m))
					T_FAIL("rstore_compact: %s", rstore_errstr(nodes[i].rs));
				sh_compact(&nodes[i].sh, m.index, m.term);
				check_log(nodes[i].rs, m.index, nodes[i].sh.base + nodes[i].sh.n);
				compactions++;
			}
		} else if (nq) {
			deliver(rnd() % nq);
		}
		for (int j = 0; j < NN; j++)
			if (nodes[j].r)
				drain(j);
		if (step % 97 == 0)
			for (int j = 0; j < NN; j++)
				if (nodes[j].rs)
					check_log(nodes[j].rs,
					    nodes[j].sh.base ? nodes[j].sh.base : (nodes[j].sh.n ? 1 : 0),
					    nodes[j].sh.base + nodes[j].sh.n);
	}
	/* Heal: every node up, messages flow until a commit spreads. */
	for (int i = 0; i < NN; i++)
		if (!nodes[i].r)
			node_start(i, seed, 0, NULL);
	for (int round = 0; round < 3000; round++) {
		for (int i = 0; i < NN; i++) {
			if (round % 4 == 0)
				T_EQ_INT(raft_tick(nodes[i].r), 0);
			drain(i);
		}
		while (nq)
			deliver(0);
		for (int i = 0; i < NN; i++)
			drain(i);
	}
	uint64_t maxc = 0;
	for (int i = 0; i < NN; i++) {
		struct raft_status rst;
		raft_status(nodes[i].r, &rst);
		if (rst.commit > maxc)
			maxc = rst.commit;
	}
	fprintf(stderr, "  random_raft: %u proposed, %u restarts, %u compactions, "
	    "%u snapshots installed, %u entries read back, commit %llu\n", proposed,
	    restarts, compactions, installs, reads, (unsigned long long)maxc);
	T_ASSERT(maxc > 1);
	for (int i = 0; i < NN; i++) {
		struct raft_status rst;
		raft_status(nodes[i].r, &rst);
		T_EQ_INT(rst.commit, maxc);
		/* A last restart resumes with the same log. */
		node_stop(i);
		node_start(i, seed, 0, NULL);
		raft_close(nodes[i].r);
		nodes[i].r = NULL;
		sh_clear_from(&nodes[i].sh, 0);
	}
	for (size_t k = 0; k < nq; k++)
		wbuf_free(&queue[k].b);
	nq = 0;
	for (size_t k = 0; k < MAXQ; k++)
		wbuf_free(&queue[k].b);
	remove_dirs();
}

static const struct t_case cases[] = {
	{"mapping", case_mapping},
	{"round_trip", case_round_trip},
	{"snapshot", case_snapshot},
	{"torn_tail", case_torn_tail},
	{"committed_corrupt", case_committed_corrupt},
	{"map_full", case_map_full},
	{"random_raft", case_random_raft},
	{0},
};

int
main(int argc, char **argv)
{
	int rc = t_run(argc, argv, cases);
	remove_dirs();
	return rc;
}
