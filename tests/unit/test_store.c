/*
 * test_store.c - the LMDB store: appending and the committed tail, aborted
 * transactions, verification of a good log and of logs tampered with in
 * place (a changed byte, an entry that does not chain, a gap, a bad last
 * entry), prefix scans both ways, meta values, a full map, and durability
 * across processes (a writer that exits without closing, and one killed
 * with SIGKILL in the middle of a write transaction), and a checkpoint
 * whose sync of data.mdb fails.
 *
 * Each case works on real LMDB files in its own directory under /tmp, which
 * it removes at its end; a case that fails leaves its directory behind, and
 * the next case (or the end of the run) removes it.
 *
 * The random choices of the kill test come from a seed printed at its start;
 * BABL_TEST_SEED=N repeats a run.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "entry.h"
#include "err.h"
#include "store.h"

#include "t.h"

#define MiB (1024ull * 1024)
#define BIG_MAX 65536

/* The current case's directory, and its store if open (for cleanup). */
static char dir[64];
static struct store *cur;

static void
remove_dir(void)
{
	if (cur) {
		store_close(cur);
		cur = NULL;
	}
	if (!dir[0])
		return;
	t_rm_lmdb(dir);
	dir[0] = 0;
}

/* Start a case: remove what a failed case left behind, make a directory. */
static void
setup(void)
{
	remove_dir();
	snprintf(dir, sizeof dir, "/tmp/babl-store-XXXXXX");
	T_ASSERT(mkdtemp(dir) != NULL);
}

/* Open the case's store, which must open cleanly. */
static struct store *
reopen(uint64_t map)
{
	if (cur) {
		store_close(cur);
		cur = NULL;
	}
	int rc = store_open(&cur, dir, map);
	if (rc)
		T_FAIL("store_open: %d (%s)", rc, cur ? store_errstr(cur) : "");
	return cur;
}

static void
close_store(void)
{
	store_close(cur);
	cur = NULL;
}

/*
 * The payload of entry `index`: its length and bytes depend only on the
 * index, so that any process can check what another wrote.  Small payloads
 * are under 300 bytes; big ones under BIG_MAX.
 */
static uint8_t pay[BIG_MAX];

static size_t
payload_for(uint64_t index, int big)
{
	size_t n = big ? (size_t)(index * 7919 % BIG_MAX) : (size_t)(index * 37 % 300);
	for (size_t i = 0; i < n; i++)
		pay[i] = (uint8_t)(index * 131 + i * 7 + (i >> 8));
	return n;
}

static uint64_t
term_for(uint64_t index)
{
	return 1 + index / 16;
}

/*
 * Append entry `index` with its payload, split into two iovecs, and return
 * store_append's result.  hash, if given, receives the entry's hash.
 */
static int
append_one(struct store_txn *t, uint64_t index, int big, uint8_t hash[32])
{
	struct entry e;
	size_t n = payload_for(index, big), half = n / 3;
	struct iovec iov[2] = {{pay, half}, {pay + half, n - half}};
	memset(&e, 0, sizeof e);
	e.type = (uint8_t)(1 + index % ENT_MAX);
	e.term = term_for(index);
	e.index = index;
	e.len = (uint32_t)n;
	int rc = store_append(t, &e, iov, 2);
	if (rc == 0 && hash)
		memcpy(hash, e.hash, 32);
	return rc;
}

/* Append entries from..to in transactions of per_txn entries. */
static void
append_range(struct store *s, uint64_t from, uint64_t to, uint64_t per_txn,
    uint8_t last_hash[32])
{
	uint64_t i = from;
	while (i <= to) {
		struct store_txn *t;
		T_EQ_INT(store_begin(s, 1, &t), 0);
		for (uint64_t k = 0; k < per_txn && i <= to; k++, i++) {
			int rc = append_one(t, i, 0, last_hash);
			if (rc) {
				store_abort(t);
				T_FAIL("append %llu: %d", (unsigned long long)i, rc);
			}
		}
		T_EQ_INT(store_commit(t), 0);
	}
}

/* Check the entries 1..n: contents, indexes, terms and the chain. */
static void
check_entries(struct store *s, uint64_t n, int big)
{
	struct store_txn *t;
	uint8_t prev[32] = {0};
	T_EQ_INT(store_begin(s, 0, &t), 0);
	for (uint64_t i = 1; i <= n; i++) {
		struct entry e;
		int rc = store_entry(t, i, &e);
		if (rc) {
			store_abort(t);
			T_FAIL("store_entry %llu: %d", (unsigned long long)i, rc);
		}
		size_t len = payload_for(i, big);
		T_EQ_INT(e.index, i);
		T_EQ_INT(e.term, term_for(i));
		T_EQ_INT(e.type, 1 + i % ENT_MAX);
		T_EQ_INT(e.len, len);
		T_EQ_MEM(e.payload, pay, len);
		T_EQ_MEM(e.prev, prev, 32);
		memcpy(prev, e.hash, 32);
	}
	struct entry e;
	T_EQ_INT(store_entry(t, n + 1, &e), BABL_ENOENT);
	store_abort(t);
}

/* The tail must be entry n with the given hash (or any hash if NULL). */
static void
check_tail(struct store *s, uint64_t n, const uint8_t *hash)
{
	uint64_t idx = 99, term = 99;
	uint8_t h[32];
	store_tail(s, &idx, h, &term);
	T_EQ_INT(idx, n);
	T_EQ_INT(term, n ? term_for(n) : 0);
	if (hash)
		T_EQ_MEM(h, hash, 32);
	if (n == 0) {
		static const uint8_t zero[32];
		T_EQ_MEM(h, zero, 32);
	}
}

/* store_verify over the whole log must pass and count n entries. */
static void
verify_ok(struct store *s, uint64_t n)
{
	uint64_t count = 12345, bad = 0;
	char why[200] = "";
	int rc = store_verify(s, 1, &count, &bad, why, sizeof why);
	if (rc)
		T_FAIL("store_verify: %d at %llu: %s", rc, (unsigned long long)bad, why);
	T_EQ_INT(count, n);
}

/* store_verify must fail at entry `at`, with a reason naming it. */
static void
verify_bad(struct store *s, uint64_t at, const char *reason_has)
{
	uint64_t count = 0, bad = 0;
	char why[200] = "", num[32];
	T_EQ_INT(store_verify(s, 1, &count, &bad, why, sizeof why), BABL_ECORRUPT);
	T_EQ_INT(bad, at);
	snprintf(num, sizeof num, "%llu", (unsigned long long)at);
	if (!strstr(why, num) || (reason_has && !strstr(why, reason_has)))
		T_FAIL("reason \"%s\" should name %s and say \"%s\"", why, num,
		    reason_has ? reason_has : "");
}

/* The log holds entries 1..n, read back whole, ending in hash, and it
 * verifies. */
static void
check_log(struct store *s, uint64_t n, const uint8_t *hash, int big)
{
	check_tail(s, n, hash);
	check_entries(s, n, big);
	verify_ok(s, n);
}

/* Replace the stored value of log entry `index` with v[0..n). */
static void
put_raw(struct store *s, uint64_t index, const void *v, size_t n)
{
	struct store_txn *t;
	uint8_t k[8];
	be64_put(k, index);
	T_EQ_INT(store_begin(s, 1, &t), 0);
	T_EQ_INT(store_put(t, DB_LOG, k, 8, v, n), 0);
	T_EQ_INT(store_commit(t), 0);
}

/* A malloc'd copy of log entry `index` as stored. */
static uint8_t *
get_raw(struct store *s, uint64_t index, size_t *n)
{
	struct store_txn *t;
	const void *v;
	uint8_t k[8];
	be64_put(k, index);
	T_EQ_INT(store_begin(s, 0, &t), 0);
	T_EQ_INT(store_get(t, DB_LOG, k, 8, &v, n), 0);
	uint8_t *q = malloc(*n);
	T_ASSERT(q);
	memcpy(q, v, *n);
	store_abort(t);
	return q;
}

/* Seal a stand-alone entry, returning its stored form (malloc'd). */
static uint8_t *
seal_raw(uint64_t index, uint64_t term, const uint8_t prev[32], const void *p,
    size_t n, struct entry *e)
{
	uint8_t hdr[ENTRY_HDR];
	struct iovec iov = {(void *)p, n};
	memset(e, 0, sizeof *e);
	e->type = ENT_NOOP;
	e->term = term;
	e->index = index;
	e->len = (uint32_t)n;
	memcpy(e->prev, prev, 32);
	entry_seal(e, &iov, 1, hdr);
	uint8_t *q = malloc(ENTRY_HDR + n + 1);
	T_ASSERT(q);
	memcpy(q, hdr, ENTRY_HDR);
	memcpy(q + ENTRY_HDR, p, n);
	return q;
}

/* Appending and the tail. */

static void
case_append_one_txn(void)
{
	setup();
	struct store *s = reopen(64 * MiB);
	struct store_txn *t;
	uint8_t hash[32];
	check_tail(s, 0, NULL);
	verify_ok(s, 0);
	T_EQ_INT(store_begin(s, 1, &t), 0);
	for (uint64_t i = 1; i <= 60; i++)
		T_EQ_INT(append_one(t, i, 0, hash), 0);
	/* Until the commit, the committed tail has not moved. */
	check_tail(s, 0, NULL);
	T_EQ_INT(store_commit(t), 0);
	check_log(s, 60, hash, 0);
	s = reopen(64 * MiB);
	check_log(s, 60, hash, 0);
	remove_dir();
}

static void
case_append_across_txns(void)
{
	setup();
	struct store *s = reopen(64 * MiB);
	uint8_t hash[32];
	append_range(s, 1, 1, 1, hash);
	check_tail(s, 1, hash);
	s = reopen(64 * MiB);
	check_tail(s, 1, hash);
	append_range(s, 2, 45, 7, hash);
	check_tail(s, 45, hash);
	s = reopen(64 * MiB);
	check_tail(s, 45, hash);
	append_range(s, 46, 100, 1, hash);
	s = reopen(64 * MiB);
	check_log(s, 100, hash, 0);
	remove_dir();
}

/* Appends out of order, in a read transaction or with a wrong length fail. */
static void
case_append_refused(void)
{
	setup();
	struct store *s = reopen(64 * MiB);
	struct store_txn *t;
	uint8_t hash[32];
	append_range(s, 1, 5, 5, hash);
	T_EQ_INT(store_begin(s, 1, &t), 0);
	T_EQ_INT(append_one(t, 0, 0, NULL), BABL_EINTERNAL);
	T_EQ_INT(append_one(t, 5, 0, NULL), BABL_EINTERNAL);
	T_EQ_INT(append_one(t, 4, 0, NULL), BABL_EINTERNAL);
	T_EQ_INT(append_one(t, 7, 0, NULL), BABL_EINTERNAL);
	T_EQ_INT(append_one(t, UINT64_MAX, 0, NULL), BABL_EINTERNAL);
	/* A length that is not the iovecs' total. */
	struct entry e;
	struct iovec iov = {pay, 10};
	memset(&e, 0, sizeof e);
	e.type = ENT_NOOP;
	e.index = 6;
	e.len = 11;
	T_EQ_INT(store_append(t, &e, &iov, 1), BABL_EINTERNAL);
	/* The refusals did not disturb the transaction. */
	T_EQ_INT(append_one(t, 6, 0, hash), 0);
	T_EQ_INT(append_one(t, 8, 0, NULL), BABL_EINTERNAL);
	T_EQ_INT(append_one(t, 7, 0, hash), 0);
	T_EQ_INT(store_commit(t), 0);
	check_tail(s, 7, hash);
	/* A read transaction cannot append. */
	T_EQ_INT(store_begin(s, 0, &t), 0);
	T_EQ_INT(append_one(t, 8, 0, NULL), BABL_EINTERNAL);
	store_abort(t);
	check_tail(s, 7, hash);
	verify_ok(s, 7);
	remove_dir();
}

static void
case_abort_keeps_tail(void)
{
	setup();
	struct store *s = reopen(64 * MiB);
	struct store_txn *t;
	struct entry e;
	uint8_t hash[32], h2[32];
	append_range(s, 1, 5, 2, hash);
	T_EQ_INT(store_begin(s, 1, &t), 0);
	for (uint64_t i = 6; i <= 20; i++)
		T_EQ_INT(append_one(t, i, 0, h2), 0);
	store_abort(t);
	check_tail(s, 5, hash);
	T_EQ_INT(store_begin(s, 0, &t), 0);
	T_EQ_INT(store_entry(t, 6, &e), BABL_ENOENT);
	store_abort(t);
	verify_ok(s, 5);
	s = reopen(64 * MiB);
	check_tail(s, 5, hash);
	/* The next append continues from entry 5 and chains to it. */
	append_range(s, 6, 8, 3, hash);
	check_log(s, 8, hash, 0);
	remove_dir();
}

/* Verification. */

static void
case_verify_from(void)
{
	setup();
	struct store *s = reopen(64 * MiB);
	uint64_t count, bad;
	char why[200];
	append_range(s, 1, 30, 4, NULL);
	for (uint64_t from = 0; from <= 31; from++) {
		count = 999;
		T_EQ_INT(store_verify(s, from, &count, &bad, why, sizeof why), 0);
		T_EQ_INT(count, from ? 31 - from : 30);
	}
	remove_dir();
}

/* One changed byte anywhere in entry 6 (header or payload) is caught. */
static void
case_tamper_byte(void)
{
	setup();
	struct store *s = reopen(64 * MiB);
	size_t n;
	append_range(s, 1, 10, 10, NULL);
	uint8_t *orig = get_raw(s, 6, &n);
	T_ASSERT(n > ENTRY_HDR + 4);
	uint8_t *v = malloc(n);
	T_ASSERT(v);
	size_t at[] = {0, 1, 3, 5, 9, 17, 24, 55, 56, 87, ENTRY_HDR, ENTRY_HDR + 1, n - 1};
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		memcpy(v, orig, n);
		v[at[i]] ^= 0x10;
		put_raw(s, 6, v, n);
		verify_bad(s, 6, NULL);
		uint64_t count, bad;
		char why[200];
		/* From after the bad entry, its own checksum still fails. */
		T_EQ_INT(store_verify(s, 7, &count, &bad, why, sizeof why), BABL_ECORRUPT);
		T_EQ_INT(bad, 6);
		put_raw(s, 6, orig, n);
		verify_ok(s, 10);
	}
	/* A checksum failure says so. */
	memcpy(v, orig, n);
	v[n - 1] ^= 1;
	put_raw(s, 6, v, n);
	verify_bad(s, 6, "checksum");
	/* So does store_entry. */
	struct store_txn *t;
	struct entry e;
	T_EQ_INT(store_begin(s, 0, &t), 0);
	T_EQ_INT(store_entry(t, 6, &e), BABL_ECORRUPT);
	T_EQ_INT(store_entry(t, 5, &e), 0);
	store_abort(t);
	/* A value too short to be an entry is caught as well. */
	put_raw(s, 6, orig, ENTRY_HDR - 1);
	verify_bad(s, 6, NULL);
	free(v);
	free(orig);
	remove_dir();
}

/*
 * An entry replaced by one that is sealed correctly but does not belong is
 * caught: one with another prev, one with another index, and one with the
 * right prev but another payload (then the next entry does not chain).
 */
static void
case_tamper_rechain(void)
{
	setup();
	struct store *s = reopen(64 * MiB);
	struct store_txn *t;
	struct entry e5, e6, x;
	size_t n;
	append_range(s, 1, 10, 3, NULL);
	uint8_t *orig = get_raw(s, 6, &n);
	T_EQ_INT(store_begin(s, 0, &t), 0);
	T_EQ_INT(store_entry(t, 5, &e5), 0);
	T_EQ_INT(store_entry(t, 6, &e6), 0);
	uint8_t prev5[32];
	memcpy(prev5, e5.hash, 32);
	uint8_t other[32];
	memcpy(other, e5.prev, 32);
	store_abort(t);

	uint8_t *v = seal_raw(6, e6.term, other, "forged", 6, &x);
	put_raw(s, 6, v, ENTRY_HDR + 6);
	verify_bad(s, 6, "chain");
	free(v);

	v = seal_raw(7, e6.term, prev5, "forged", 6, &x);
	put_raw(s, 6, v, ENTRY_HDR + 6);
	verify_bad(s, 6, "index");
	T_EQ_INT(store_begin(s, 0, &t), 0);
	T_EQ_INT(store_entry(t, 6, &x), BABL_ECORRUPT);
	store_abort(t);
	free(v);

	v = seal_raw(6, e6.term, prev5, "forged", 6, &x);
	put_raw(s, 6, v, ENTRY_HDR + 6);
	verify_bad(s, 7, "chain");
	free(v);

	put_raw(s, 6, orig, n);
	verify_ok(s, 10);
	free(orig);
	remove_dir();
}

static void
case_gap(void)
{
	setup();
	struct store *s = reopen(64 * MiB);
	struct store_txn *t;
	uint8_t k[8];
	append_range(s, 1, 10, 10, NULL);
	be64_put(k, 5);
	T_EQ_INT(store_begin(s, 1, &t), 0);
	T_EQ_INT(store_del(t, DB_LOG, k, 8), 0);
	T_EQ_INT(store_commit(t), 0);
	verify_bad(s, 5, "missing");
	/* Verifying from just after the gap finds the entry before missing. */
	uint64_t count, bad;
	char why[200];
	T_EQ_INT(store_verify(s, 6, &count, &bad, why, sizeof why), BABL_ECORRUPT);
	T_EQ_INT(bad, 5);
	/* A missing first entry is a gap too. */
	be64_put(k, 1);
	T_EQ_INT(store_begin(s, 1, &t), 0);
	T_EQ_INT(store_del(t, DB_LOG, k, 8), 0);
	T_EQ_INT(store_commit(t), 0);
	verify_bad(s, 1, "missing");
	remove_dir();
}

/* A bad last entry stops store_open with a reason, never a silent open. */
static void
case_corrupt_last(void)
{
	setup();
	struct store *s = reopen(64 * MiB);
	size_t n;
	append_range(s, 1, 12, 5, NULL);
	uint8_t *orig = get_raw(s, 12, &n);
	uint8_t *v = malloc(n);
	T_ASSERT(v);
	memcpy(v, orig, n);
	v[n / 2] ^= 0x40;
	put_raw(s, 12, v, n);
	close_store();

	struct store *bad = NULL;
	T_EQ_INT(store_open(&bad, dir, 64 * MiB), BABL_ECORRUPT);
	T_ASSERT(bad);
	const char *why = store_errstr(bad);
	if (!strstr(why, "last") || !strstr(why, "12") || !strstr(why, "checksum"))
		T_FAIL("store_errstr: \"%s\"", why);
	store_close(bad);

	/* Bytes that are not an entry at all. */
	s = NULL;
	T_EQ_INT(store_open(&s, dir, 64 * MiB), BABL_ECORRUPT);
	cur = s;
	put_raw(s, 12, "junk", 4);
	close_store();
	T_EQ_INT(store_open(&bad, dir, 64 * MiB), BABL_ECORRUPT);
	if (!strstr(store_errstr(bad), "12") || !strstr(store_errstr(bad), "not an entry"))
		T_FAIL("store_errstr: \"%s\"", store_errstr(bad));
	store_close(bad);

	/*
	 * A last entry that is sealed correctly but carries another index
	 * than its key would give a tail that is not the last key.
	 */
	T_EQ_INT(store_open(&s, dir, 64 * MiB), BABL_ECORRUPT);
	cur = s;
	struct entry e11, x;
	struct store_txn *t;
	T_EQ_INT(store_begin(s, 0, &t), 0);
	T_EQ_INT(store_entry(t, 11, &e11), 0);
	uint8_t h11[32];
	memcpy(h11, e11.hash, 32);
	store_abort(t);
	free(v);
	v = seal_raw(20, term_for(12), h11, "x", 1, &x);
	put_raw(s, 12, v, ENTRY_HDR + 1);
	close_store();
	T_EQ_INT(store_open(&bad, dir, 64 * MiB), BABL_ECORRUPT);
	if (!strstr(store_errstr(bad), "12"))
		T_FAIL("store_errstr: \"%s\"", store_errstr(bad));
	store_close(bad);

	/* Restored, it opens again with the right tail. */
	T_EQ_INT(store_open(&s, dir, 64 * MiB), BABL_ECORRUPT);
	cur = s;
	put_raw(s, 12, orig, n);
	s = reopen(64 * MiB);
	check_tail(s, 12, NULL);
	verify_ok(s, 12);
	free(v);
	free(orig);
	remove_dir();
}

/* Scans. */

struct seen {
	int n, stop_at;
	char keys[32][16];
	size_t lens[32];
};

static int
visit(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct seen *s = arg;
	/* Every value is its key followed by "=". */
	if (vl != kl + 1 || memcmp(v, k, kl) != 0 || ((const char *)v)[kl] != '=')
		return -1000;
	if (s->n >= 32 || kl >= 16)
		return -1001;
	memcpy(s->keys[s->n], k, kl);
	s->lens[s->n] = kl;
	s->n++;
	return s->n == s->stop_at ? 7 : 0;
}

/*
 * The keys, in LMDB's order (bytewise, a prefix before its extensions).
 * "\xff" stands for the byte 0xff; lengths are given since keys hold NULs.
 */
static const struct {
	const char *k;
	size_t n;
} keys[] = {
	{"\0", 1},
	{"\0\0", 2},
	{"a", 1},
	{"a\0", 2},
	{"ab", 2},
	{"abc", 3},
	{"abd", 3},
	{"ab\xff", 3},
	{"ab\xff\xff", 4},
	{"ac", 2},
	{"a\xff", 2},
	{"a\xff\xff\xff", 4},
	{"b", 1},
	{"ba", 2},
	{"\xff", 1},
	{"\xff\xff", 2},
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* Put the keys in DB_NAMES, in a scrambled order. */
static void
put_keys(struct store *s)
{
	struct store_txn *t;
	T_EQ_INT(store_begin(s, 1, &t), 0);
	for (size_t j = 0; j < NKEYS; j++) {
		size_t i = (j * 7) % NKEYS;
		char v[16];
		memcpy(v, keys[i].k, keys[i].n);
		v[keys[i].n] = '=';
		T_EQ_INT(store_put(t, DB_NAMES, keys[i].k, keys[i].n, v, keys[i].n + 1), 0);
	}
	T_EQ_INT(store_commit(t), 0);
}

/*
 * Scan for a prefix both ways and check the keys seen against the expected
 * list: those of keys[] that begin with the prefix, in order.
 */
static void
scan_expect(struct store *s, const char *prefix, size_t pl)
{
	size_t want[NKEYS], nw = 0;
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].n >= pl && (pl == 0 || memcmp(keys[i].k, prefix, pl) == 0))
			want[nw++] = i;
	for (int rev = 0; rev <= 1; rev++) {
		struct seen got;
		struct store_txn *t;
		memset(&got, 0, sizeof got);
		T_EQ_INT(store_begin(s, 0, &t), 0);
		int rc = store_scan(t, DB_NAMES, prefix, pl, rev, visit, &got);
		store_abort(t);
		T_EQ_INT(rc, 0);
		if ((size_t)got.n != nw)
			T_FAIL("prefix of %zu bytes \"%.*s\", %s: %d keys, expected %zu",
			    pl, (int)pl, prefix, rev ? "reverse" : "forward", got.n, nw);
		for (size_t j = 0; j < nw; j++) {
			size_t i = want[rev ? nw - 1 - j : j];
			if (got.lens[j] != keys[i].n || memcmp(got.keys[j], keys[i].k, keys[i].n))
				T_FAIL("prefix \"%.*s\" %s: key %zu is not keys[%zu]", (int)pl,
				    prefix, rev ? "reverse" : "forward", j, i);
		}
	}
}

static void
case_scan(void)
{
	setup();
	struct store *s = reopen(64 * MiB);
	struct store_txn *t;
	struct seen got;
	/* An empty database. */
	memset(&got, 0, sizeof got);
	T_EQ_INT(store_begin(s, 0, &t), 0);
	T_EQ_INT(store_scan(t, DB_NAMES, NULL, 0, 0, visit, &got), 0);
	T_EQ_INT(store_scan(t, DB_NAMES, NULL, 0, 1, visit, &got), 0);
	T_EQ_INT(store_scan(t, DB_NAMES, "a", 1, 0, visit, &got), 0);
	T_EQ_INT(store_scan(t, DB_NAMES, "a", 1, 1, visit, &got), 0);
	T_EQ_INT(got.n, 0);
	store_abort(t);

	put_keys(s);
	scan_expect(s, "", 0);
	scan_expect(s, NULL, 0);
	scan_expect(s, "a", 1);
	scan_expect(s, "ab", 2);
	scan_expect(s, "abc", 3);      /* a key itself, a prefix of no other */
	scan_expect(s, "ab\xff", 3);   /* a key, and a prefix of one more */
	scan_expect(s, "a\xff", 2);
	scan_expect(s, "a\xff\xff", 3); /* not a key, a prefix of one */
	scan_expect(s, "\0", 1);
	scan_expect(s, "b", 1);
	scan_expect(s, "\xff", 1);      /* the last keys of the database */
	scan_expect(s, "\xff\xff", 2);
	scan_expect(s, "aa", 2);        /* between keys: nothing */
	scan_expect(s, "abcd", 4);      /* longer than a key: nothing */
	scan_expect(s, "c", 1);         /* after every key but the 0xff ones */
	scan_expect(s, "\xff\xff\xff", 3); /* after every key */
	scan_expect(s, "\0\0\0", 3);

	/* A callback's non-zero return ends the scan and is returned. */
	for (int rev = 0; rev <= 1; rev++) {
		memset(&got, 0, sizeof got);
		got.stop_at = 2;
		T_EQ_INT(store_begin(s, 0, &t), 0);
		T_EQ_INT(store_scan(t, DB_NAMES, "a", 1, rev, visit, &got), 7);
		store_abort(t);
		T_EQ_INT(got.n, 2);
		T_ASSERT(got.lens[0] == (rev ? 4u : 1u));
	}
	remove_dir();
}

/* Record each value (one character) in the string at arg. */
static int
visit_values(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	char *order = arg;
	size_t n = strlen(order);
	(void)k;
	(void)kl;
	if (vl != 1 || n >= 7)
		return -1;
	order[n] = *(const char *)v;
	order[n + 1] = 0;
	return 0;
}

/*
 * Keys that extend a prefix with many 0xff bytes are found by a reverse
 * scan as well as by a forward one.
 */
static void
case_scan_reverse_long_ff(void)
{
	setup();
	struct store *s = reopen(64 * MiB);
	struct store_txn *t;
	uint8_t k[200];
	char order[8];
	memset(k, 0xff, sizeof k);
	k[0] = 'p';
	T_EQ_INT(store_begin(s, 1, &t), 0);
	T_EQ_INT(store_put(t, DB_NAMES, "p", 1, "1", 1), 0);
	T_EQ_INT(store_put(t, DB_NAMES, k, 65, "2", 1), 0);
	T_EQ_INT(store_put(t, DB_NAMES, k, 100, "3", 1), 0);
	T_EQ_INT(store_put(t, DB_NAMES, k, 200, "4", 1), 0);
	T_EQ_INT(store_put(t, DB_NAMES, "q", 1, "5", 1), 0);
	T_EQ_INT(store_commit(t), 0);
	T_EQ_INT(store_begin(s, 0, &t), 0);
	order[0] = 0;
	T_EQ_INT(store_scan(t, DB_NAMES, "p", 1, 0, visit_values, order), 0);
	T_EQ_STR(order, "1234");
	order[0] = 0;
	T_EQ_INT(store_scan(t, DB_NAMES, "p", 1, 1, visit_values, order), 0);
	T_EQ_STR(order, "4321");
	order[0] = 0;
	T_EQ_INT(store_scan(t, DB_NAMES, k, 100, 1, visit_values, order), 0);
	T_EQ_STR(order, "43");
	order[0] = 0;
	T_EQ_INT(store_scan(t, DB_NAMES, k, 101, 1, visit_values, order), 0);
	T_EQ_STR(order, "4");
	store_abort(t);
	remove_dir();
}

static void
case_meta(void)
{
	setup();
	struct store *s = reopen(64 * MiB);
	struct store_txn *t;
	uint64_t v = 5;
	T_EQ_INT(store_begin(s, 1, &t), 0);
	T_EQ_INT(store_meta_get(t, "applied", &v), BABL_ENOENT);
	T_EQ_INT(v, 5);
	T_EQ_INT(store_meta_put(t, "applied", 0), 0);
	T_EQ_INT(store_meta_get(t, "applied", &v), 0);
	T_EQ_INT(v, 0);
	T_EQ_INT(store_meta_put(t, "applied", UINT64_MAX), 0);
	T_EQ_INT(store_meta_put(t, "appliedx", 3), 0);
	T_EQ_INT(store_meta_put(t, "node", 0x0102030405060708ull), 0);
	T_EQ_INT(store_commit(t), 0);
	s = reopen(64 * MiB);
	T_EQ_INT(store_begin(s, 0, &t), 0);
	T_EQ_INT(store_meta_get(t, "applied", &v), 0);
	T_ASSERT(v == UINT64_MAX);
	T_EQ_INT(store_meta_get(t, "appliedx", &v), 0);
	T_EQ_INT(v, 3);
	T_EQ_INT(store_meta_get(t, "node", &v), 0);
	T_EQ_INT(v, 0x0102030405060708ull);
	T_EQ_INT(store_meta_get(t, "appl", &v), BABL_ENOENT);
	store_abort(t);
	/* An aborted write leaves the value. */
	T_EQ_INT(store_begin(s, 1, &t), 0);
	T_EQ_INT(store_meta_put(t, "node", 1), 0);
	store_abort(t);
	/* A meta value that is not 8 bytes is corrupt. */
	T_EQ_INT(store_begin(s, 1, &t), 0);
	T_EQ_INT(store_put(t, DB_META, "odd", 3, "abc", 3), 0);
	T_EQ_INT(store_commit(t), 0);
	T_EQ_INT(store_begin(s, 0, &t), 0);
	T_EQ_INT(store_meta_get(t, "node", &v), 0);
	T_EQ_INT(v, 0x0102030405060708ull);
	T_EQ_INT(store_meta_get(t, "odd", &v), BABL_ECORRUPT);
	store_abort(t);
	/* The log is untouched by meta values. */
	check_tail(s, 0, NULL);
	verify_ok(s, 0);
	remove_dir();
}

/*
 * A full map: appends fail with BABL_ETOOBIG, the failed transaction is
 * aborted, and what was committed before stays intact and reopens.
 */
static void
case_map_full(void)
{
	setup();
	struct store *s = reopen(1 * MiB);
	uint64_t committed = 0, next = 1;
	uint8_t hash[32] = {0}, h[32];
	int full = 0;
	while (!full && next < 100000) {
		struct store_txn *t;
		T_EQ_INT(store_begin(s, 1, &t), 0);
		uint64_t i = next;
		for (int k = 0; k < 4; k++, i++) {
			int rc = append_one(t, i, 1, h);
			if (rc == BABL_ETOOBIG) {
				full = 1;
				break;
			}
			T_EQ_INT(rc, 0);
		}
		if (full) {
			store_abort(t);
			break;
		}
		int rc = store_commit(t);
		if (rc == BABL_ETOOBIG) {
			full = 1;
			break;
		}
		T_EQ_INT(rc, 0);
		committed = i - 1;
		next = i;
		memcpy(hash, h, 32);
	}
	T_ASSERT(full);
	T_ASSERT(committed > 0);
	check_tail(s, committed, hash);
	verify_ok(s, committed);
	/* Another try fails the same way and changes nothing. */
	struct store_txn *t;
	T_EQ_INT(store_begin(s, 1, &t), 0);
	int rc = 0;
	for (uint64_t i = committed + 1; rc == 0 && i < committed + 100; i++)
		rc = append_one(t, i, 1, NULL);
	T_EQ_INT(rc, BABL_ETOOBIG);
	store_abort(t);
	check_tail(s, committed, hash);
	s = reopen(1 * MiB);
	check_tail(s, committed, hash);
	verify_ok(s, committed);
	check_entries(s, committed, 1);
	/* With a bigger map the log grows on from where it was. */
	s = reopen(64 * MiB);
	T_EQ_INT(store_begin(s, 1, &t), 0);
	for (uint64_t i = committed + 1; i <= committed + 8; i++)
		T_EQ_INT(append_one(t, i, 1, hash), 0);
	T_EQ_INT(store_commit(t), 0);
	check_tail(s, committed + 8, hash);
	verify_ok(s, committed + 8);
	remove_dir();
}

/* Durability across processes. */

/* In a child: open the store, append from its tail, never close it. */
static int
child_append(uint64_t n, int per_txn, int big, int report_fd)
{
	struct store *s;
	struct store_txn *t;
	uint64_t tail;
	if (store_open(&s, dir, 1024 * MiB))
		return 10;
	store_tail(s, &tail, NULL, NULL);
	for (uint64_t i = tail + 1; i <= tail + n;) {
		if (store_begin(s, 1, &t))
			return 11;
		for (int k = 0; k < per_txn && i <= tail + n; k++, i++) {
			struct entry e;
			size_t len = payload_for(i, big);
			struct iovec iov = {pay, len};
			memset(&e, 0, sizeof e);
			e.type = (uint8_t)(1 + i % ENT_MAX);
			e.term = term_for(i);
			e.index = i;
			e.len = (uint32_t)len;
			if (store_append(t, &e, &iov, 1))
				return 12;
		}
		if (store_commit(t))
			return 13;
		if (report_fd >= 0) {
			uint8_t b[8];
			be64_put(b, i - 1);
			if (write(report_fd, b, 8) != 8)
				return 14;
		}
	}
	return 0;
}

static void
case_child_exits_without_close(void)
{
	setup();
	/* The parent has no environment open while the child writes. */
	pid_t pid = fork();
	T_ASSERT(pid >= 0);
	if (pid == 0)
		_exit(child_append(100, 1, 0, -1));
	int st;
	T_EQ_INT(waitpid(pid, &st, 0), pid);
	T_ASSERT(WIFEXITED(st));
	T_EQ_INT(WEXITSTATUS(st), 0);
	struct store *s = reopen(64 * MiB);
	check_tail(s, 100, NULL);
	verify_ok(s, 100);
	check_entries(s, 100, 0);
	remove_dir();
}

/* Random numbers from one seed per run (t.h), so that a run repeats. */
static uint64_t
rnd(void)
{
	static uint64_t x;
	if (!x)
		x = t_seed("test_store");
	return t_rand(&x);
}

/* Read exactly 8 bytes, or return 0 at end of file. */
static int
read8(int fd, uint8_t b[8])
{
	size_t got = 0;
	while (got < 8) {
		ssize_t r = read(fd, b + got, 8 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		got += (size_t)r;
	}
	return 1;
}

/* A child that appends transactions of ten entries until killed, saying
 * each commit's last index on the pipe whose read end is *rfd. */
static pid_t
start_writer(int big, int *rfd)
{
	int fds[2];
	T_EQ_INT(pipe(fds), 0);
	pid_t pid = fork();
	T_ASSERT(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		_exit(child_append(1000000, 10, big, fds[1]));
	}
	close(fds[1]);
	*rfd = fds[0];
	return pid;
}

/* Kill the writer; *reported becomes the last commit it said. */
static void
kill_writer(int round, pid_t pid, int rfd, uint64_t *reported)
{
	uint8_t b[8];
	int st;
	kill(pid, SIGKILL);
	T_EQ_INT(waitpid(pid, &st, 0), pid);
	if (!WIFSIGNALED(st))
		T_FAIL("round %d: the writer was not killed (status %d)", round,
		    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	/* Commits it reported after the parent stopped reading. */
	while (read8(rfd, b))
		*reported = be64_get(b);
	close(rfd);
	T_ASSERT(*reported > 0);
}

/* Reopen after a killed writer: every reported commit is there, nothing
 * of a half-done one (commits come in tens), and the log verifies. */
static struct store *
reopen_after(int round, uint64_t reported, uint64_t *tail)
{
	struct store *s = reopen(1024 * MiB);
	store_tail(s, tail, NULL, NULL);
	if (*tail < reported)
		T_FAIL("round %d: tail %llu < reported commit %llu", round,
		    (unsigned long long)*tail, (unsigned long long)reported);
	T_EQ_INT(*tail % 10, 0);
	verify_ok(s, *tail);
	return s;
}

/*
 * A writer killed with SIGKILL at a random moment, most likely in the middle
 * of a transaction of ten big entries: every commit it reported is there,
 * and the log verifies.  Several rounds go on with the same log, so that a
 * writer also starts on a log left by a killed one.
 */
static void
child_killed(int big)
{
	setup();
	uint64_t reported = 0;
	for (int round = 0; round < 6; round++) {
		int rfd;
		uint64_t tail;
		pid_t pid = start_writer(big, &rfd);
		/* Wait for a random number of commits, then a random while. */
		int commits = 1 + (int)(rnd() % 12);
		uint8_t b[8];
		for (int c = 0; c < commits && read8(rfd, b); c++)
			reported = be64_get(b);
		struct timespec ts = {0, (long)(rnd() % 20000) * 1000};
		nanosleep(&ts, NULL);
		kill_writer(round, pid, rfd, &reported);
		reopen_after(round, reported, &tail);
		close_store();
	}
	struct store *s = reopen(1024 * MiB);
	uint64_t tail;
	store_tail(s, &tail, NULL, NULL);
	check_entries(s, tail, big);
	remove_dir();
}

static void
case_child_killed(void)
{
	child_killed(1);
}

/* The same with small entries: the writer is killed among many small
 * commits, each a journal record of its own. */
static void
case_child_killed_small(void)
{
	child_killed(0);
}

/* data.mdb's bytes, malloc'd; *n their count. */
static uint8_t *
read_data(size_t *n)
{
	char p[128];
	struct stat st;
	snprintf(p, sizeof p, "%s/data.mdb", dir);
	int fd = open(p, O_RDONLY);
	T_ASSERT(fd >= 0);
	T_EQ_INT(fstat(fd, &st), 0);
	uint8_t *b = malloc((size_t)st.st_size + 1);
	T_ASSERT(b != NULL);
	T_EQ_INT(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*n = (size_t)st.st_size;
	return b;
}

/*
 * A power cut.  The writer's commits are durable through the journal; its
 * LMDB writes since the last checkpoint (the one its open made) may each
 * have reached the disk or not.  So data.mdb after the kill is made of,
 * page by page at random, what it held just after that checkpoint or what
 * the writer left; the meta pages too.  Every commit it reported is there
 * after the restart, whole.
 */
static void
case_power_cut(void)
{
	enum { PAGE = 4096 };
	setup();
	uint64_t reported = 0;
	for (int round = 0; round < 4; round++) {
		int rfd;
		uint64_t tail;
		pid_t pid = start_writer(0, &rfd);
		/* After its first commit its open has checkpointed: the pages
		 * that checkpoint describes no longer change. */
		uint8_t b[8];
		T_ASSERT(read8(rfd, b));
		size_t n0, n1;
		uint8_t *cut = read_data(&n0);
		int commits = 5 + (int)(rnd() % 20);
		for (int c = 0; c < commits && read8(rfd, b); c++)
			reported = be64_get(b);
		kill_writer(round, pid, rfd, &reported);

		uint8_t *now = read_data(&n1);
		for (size_t off = 0; off + PAGE <= n0 && off + PAGE <= n1; off += PAGE)
			if (rnd() & 1)
				memcpy(now + off, cut + off, PAGE);
		char p[128];
		snprintf(p, sizeof p, "%s/data.mdb", dir);
		int fd = open(p, O_WRONLY);
		T_ASSERT(fd >= 0);
		T_EQ_INT(pwrite(fd, now, n1, 0), (ssize_t)n1);
		close(fd);
		free(cut);
		free(now);

		struct store *s = reopen_after(round, reported, &tail);
		check_entries(s, tail, 0);
		close_store();
	}
	remove_dir();
}

/*
 * A disk that cannot sync data.mdb.  This program defines fdatasync, so
 * the store's calls (and LMDB's) come here: a sync of a file named
 * data.mdb fails with EIO while sync_fail is set.  Every other file syncs
 * as usual.
 */
static atomic_int sync_fail;

static int
is_data_mdb(int fd)
{
	char p[64], path[4096];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, path, sizeof path - 1);
	if (n < 9)
		return 0;
	path[n] = 0;
	return strcmp(path + n - 9, "/data.mdb") == 0;
}

int
fdatasync(int fd)
{
	if (sync_fail && is_data_mdb(fd)) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

/*
 * A checkpoint whose sync of data.mdb fails: later commits fail with an
 * error that says so, and nothing acknowledged before is lost.  The store
 * is then closed with the disk still failing (a crash, in effect), and
 * reopened once the disk works again.
 */
static void
case_failed_checkpoint(void)
{
	uint8_t h[32];
	setup();
	struct store *s = reopen(64 * MiB);
	append_range(s, 1, 2000, 10, h);
	sync_fail = 1;
	uint64_t acked = 2000, i = 2001;
	int rc = 0;
	/* A checkpoint is due within 2 MiB of pages. */
	while (rc == 0 && i < 2000 + 40000) {
		struct store_txn *t;
		T_EQ_INT(store_begin(s, 1, &t), 0);
		uint64_t j = i;
		for (int k = 0; k < 8 && rc == 0; k++, j++)
			rc = append_one(t, j, 0, NULL);
		if (rc) {
			store_abort(t);
			break;
		}
		if ((rc = store_commit(t)) == 0) {
			acked = j - 1;
			i = j;
		}
	}
	if (rc != BABL_EIO || !strstr(store_errstr(s), "syncing data.mdb"))
		T_FAIL("after a failed sync: rc %d, \"%s\"; want BABL_EIO, syncing data.mdb",
		    rc, store_errstr(s));
	T_ASSERT(acked > 2000);
	close_store();
	sync_fail = 0;
	s = reopen(64 * MiB);
	check_entries(s, acked, 0);
	verify_ok(s, acked);
	remove_dir();
}

static const struct t_case cases[] = {
	{"append_one_txn", case_append_one_txn},
	{"append_across_txns", case_append_across_txns},
	{"append_refused", case_append_refused},
	{"abort_keeps_tail", case_abort_keeps_tail},
	{"verify_from", case_verify_from},
	{"tamper_byte", case_tamper_byte},
	{"tamper_rechain", case_tamper_rechain},
	{"gap", case_gap},
	{"corrupt_last", case_corrupt_last},
	{"scan", case_scan},
	{"scan_reverse_long_ff", case_scan_reverse_long_ff},
	{"meta", case_meta},
	{"map_full", case_map_full},
	{"child_exits_without_close", case_child_exits_without_close},
	{"child_killed", case_child_killed},
	{"child_killed_small", case_child_killed_small},
	{"power_cut", case_power_cut},
	{"failed_checkpoint", case_failed_checkpoint},
	{0},
};

int
main(int argc, char **argv)
{
	int rc = t_run(argc, argv, cases);
	remove_dir();
	return rc;
}
