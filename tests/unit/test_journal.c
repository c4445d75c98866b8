/*
 * test_journal.c - the store's write-ahead journal on a real file: records
 * come back in order after a reopen; a torn or garbled record ends the
 * replay there, and appends go on from it; records of an older generation
 * never replay; a torn checkpoint falls back to the one before; records
 * of a generation whose checkpoint never came replay after the older
 * base's; a record taken back (its commit failed) never replays; a second
 * opener is refused while the file is locked.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "journal.h"

#include "t.h"

static char dir[64];

static void
fresh(void)
{
	char p[128];
	snprintf(dir, sizeof dir, "/tmp/test_journal.XXXXXX");
	T_ASSERT(mkdtemp(dir) != NULL);
	snprintf(p, sizeof p, "%s/journal", dir);
	unlink(p);
}

static void
cleanup(void)
{
	char p[128];
	snprintf(p, sizeof p, "%s/journal", dir);
	unlink(p);
	rmdir(dir);
}

static struct journal *
jopen(void)
{
	struct journal *j;
	char err[256];
	int rc = journal_open(&j, dir, err, sizeof err);
	if (rc)
		T_FAIL("journal_open: %d (%s)", rc, err);
	return j;
}

/* Record i: i+1 bytes of a pattern of i. */
static size_t
body(int i, uint8_t *b)
{
	for (int k = 0; k <= i; k++)
		b[k] = (uint8_t)(i * 7 + k);
	return (size_t)i + 1;
}

struct seen {
	int n;
	int bad;
};

static int
count(void *arg, const uint8_t *p, size_t n)
{
	struct seen *s = arg;
	uint8_t want[512];
	size_t wn = body(s->n, want);
	if (n != wn || memcmp(p, want, n))
		s->bad++;
	s->n++;
	return 0;
}

static int
replayed(struct journal *j)
{
	struct seen s = {0};
	T_EQ_INT(journal_replay(j, count, &s), 0);
	T_EQ_INT(s.bad, 0);
	return s.n;
}

/* Flip one byte of the journal file at off. */
static void
flip(uint64_t off)
{
	char p[128];
	uint8_t c;
	snprintf(p, sizeof p, "%s/journal", dir);
	int fd = open(p, O_RDWR);
	T_ASSERT(fd >= 0);
	T_EQ_INT(pread(fd, &c, 1, (off_t)off), 1);
	c ^= 0x5a;
	T_EQ_INT(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

/* Rotate and checkpoint with base b. */
static int
ckpt(struct journal *j, const char *b)
{
	char err[256];
	return journal_checkpoint(j, journal_rotate(j), b, strlen(b), err, sizeof err);
}

/* Append the records body(from) .. body(to - 1). */
static void
append_bodies(struct journal *j, int from, int to)
{
	uint8_t b[512];
	for (int i = from; i < to; i++)
		T_EQ_INT(journal_append(j, b, body(i, b)), 0);
}

/* j's base is generation gen's, holding the bytes of want (if not NULL). */
static void
expect_base(struct journal *j, uint64_t gen, const char *want)
{
	const uint8_t *base;
	size_t nb;
	T_EQ_INT(journal_base(j, &base, &nb), gen);
	if (want) {
		T_EQ_INT(nb, strlen(want));
		T_EQ_MEM(base, want, nb);
	}
}

/* Close j, flip the byte at flip_at (if not 0), and open the file again:
 * its base is gen's (holding want, if not NULL), and nrec records replay. */
static struct journal *
reopen_expect(struct journal *j, uint64_t flip_at, uint64_t gen, const char *want, int nrec)
{
	journal_close(j);
	if (flip_at)
		flip(flip_at);
	j = jopen();
	expect_base(j, gen, want);
	T_EQ_INT(replayed(j), nrec);
	return j;
}

static void
case_order_and_torn_tail(void)
{
	uint8_t b[512];
	fresh();
	struct journal *j = jopen();
	expect_base(j, 0, NULL);
	T_EQ_INT(journal_append(j, "x", 1), BABL_EINTERNAL); /* no base yet */
	T_EQ_INT(ckpt(j, "base-one"), 0);
	uint64_t off = JOURNAL_RECORDS + JOURNAL_REGION; /* generation 1 */
	for (int i = 0; i < 100; i++) {
		size_t n = body(i, b);
		T_EQ_INT(journal_append(j, b, n), 0);
		if (i < 99)
			off += 24 + n + 32;
	}
	j = reopen_expect(j, 0, 1, "base-one", 100);

	/* The last record torn (a byte of its body changed): 99 replay, and
	 * the next append takes its place. */
	j = reopen_expect(j, off + 24 + 50, 1, "base-one", 99);
	T_EQ_INT(journal_append(j, b, body(99, b)), 0);
	j = reopen_expect(j, 0, 1, "base-one", 100);
	journal_close(j);
	cleanup();
}

static void
case_generations(void)
{
	fresh();
	struct journal *j = jopen();
	T_EQ_INT(ckpt(j, "g1"), 0);
	append_bodies(j, 0, 50);
	T_EQ_INT(ckpt(j, "g2"), 0);
	append_bodies(j, 0, 20);
	/* Generation 3 is in the first one's region: its 10 records lie over
	 * the first 10 of the old; the 40 old ones after them must not
	 * replay, nor generation 2's. */
	T_EQ_INT(ckpt(j, "g3"), 0);
	append_bodies(j, 0, 10);
	j = reopen_expect(j, 0, 3, "g3", 10);

	/* A fourth checkpoint (in the second's slot) that is torn: the third
	 * stands, with its records (which the fourth did not touch). */
	T_EQ_INT(ckpt(j, "g4"), 0);
	j = reopen_expect(j, JOURNAL_SLOT + 17, 3, "g3", 10);
	journal_close(j);
	cleanup();
}

/* A record taken back (the commit it was written for failed) is gone
 * after a reopen, the one appended next takes its place, and only the last
 * record appended can be taken back. */
static void
case_unappend(void)
{
	uint8_t b[512];
	fresh();
	struct journal *j = jopen();
	T_EQ_INT(ckpt(j, "u"), 0);
	T_EQ_INT(journal_unappend(j), BABL_EINTERNAL); /* nothing appended yet */
	append_bodies(j, 0, 5);
	T_EQ_INT(journal_append(j, "not this", 8), 0);
	T_EQ_INT(journal_unappend(j), 0);
	T_EQ_INT(journal_unappend(j), BABL_EINTERNAL); /* once */
	j = reopen_expect(j, 0, 1, "u", 5);
	T_EQ_INT(journal_unappend(j), BABL_EINTERNAL); /* not after a reopen */

	/* Taken back, then written again in its place, then more after it. */
	T_EQ_INT(journal_append(j, "not this", 8), 0);
	T_EQ_INT(journal_unappend(j), 0);
	append_bodies(j, 5, 8);
	j = reopen_expect(j, 0, 1, "u", 8);
	/* Nor does a rotation leave one to take back. */
	T_EQ_INT(ckpt(j, "v"), 0);
	T_EQ_INT(journal_unappend(j), BABL_EINTERNAL);
	T_EQ_INT(journal_append(j, b, body(0, b)), 0);
	j = reopen_expect(j, 0, 2, "v", 1);
	journal_close(j);
	cleanup();
}

/* A rotation whose checkpoint was never written (a crash while it ran):
 * the new generation's records replay after the old base's own. */
static void
case_unfinished(void)
{
	char err[256];
	fresh();
	struct journal *j = jopen();
	T_EQ_INT(ckpt(j, "b1"), 0);
	append_bodies(j, 0, 5);
	T_EQ_INT(journal_rotate(j), 2);
	append_bodies(j, 5, 12);
	j = reopen_expect(j, 0, 1, "b1", 12);
	/* The next checkpoint skips generation 2, and goes in the slot that
	 * does not hold the base: torn, the base and all 12 still stand. */
	uint64_t g = journal_rotate(j);
	T_EQ_INT(g, 3);
	T_EQ_INT(journal_checkpoint(j, g, "b3", 2, err, sizeof err), 0);
	j = reopen_expect(j, JOURNAL_SLOT + 17, 1, NULL, 12);
	/* Whole, it bases a fresh generation. */
	T_EQ_INT(ckpt(j, "b4"), 0);
	append_bodies(j, 0, 3);
	j = reopen_expect(j, 0, 3, "b4", 3);
	journal_close(j);
	cleanup();
}

static void
case_locked(void)
{
	struct journal *j2;
	char err[256];
	fresh();
	struct journal *j = jopen();
	T_EQ_INT(journal_open(&j2, dir, err, sizeof err), BABL_EBUSY);
	T_ASSERT(strstr(err, "in use") != NULL);
	journal_close(j);
	j = jopen(); /* free again once closed */
	journal_close(j);
	cleanup();
}

static void
case_full(void)
{
	static uint8_t big[1 << 20];
	fresh();
	struct journal *j = jopen();
	T_EQ_INT(ckpt(j, "b"), 0);
	int n = 0;
	while (journal_room(j) >= sizeof big) {
		T_EQ_INT(journal_append(j, big, sizeof big), 0);
		n++;
	}
	T_ASSERT(n >= 31);
	T_EQ_INT(journal_append(j, big, sizeof big), BABL_ETOOBIG);
	T_EQ_INT(ckpt(j, "c"), 0);
	T_EQ_INT(journal_append(j, big, sizeof big), 0);
	journal_close(j);
	cleanup();
}

static const struct t_case cases[] = {
	{"order_and_torn_tail", case_order_and_torn_tail},
	{"generations", case_generations},
	{"unfinished", case_unfinished},
	{"unappend", case_unappend},
	{"locked", case_locked},
	{"full", case_full},
	{0},
};

int
main(int argc, char **argv)
{
	return t_run(argc, argv, cases);
}
