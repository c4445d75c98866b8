/*
 * test_commit.c - the commit thread on a real LMDB store: proposals come
 * back in order, durable, once the wake fd says so; with commit_pace
 * saying many calls run, a lone proposal is still written (the thread
 * waits for more only a little), and commit_sync does not wait at all;
 * a write handed over by commit_flush_mark is in the store once the
 * transaction count reaches the mark, whatever batch the thread was in.
 *
 * Each case has its own directory under /tmp, removed at its end.
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "commit.h"
#include "entry.h"
#include "err.h"
#include "store.h"

#include "t.h"

static char dir[64];
static struct store *st;
static struct committer *cm;
static int wake = -1;

static void
teardown(void)
{
	if (cm)
		commit_stop(cm);
	cm = NULL;
	if (st)
		store_close(st);
	st = NULL;
	if (wake >= 0)
		close(wake);
	wake = -1;
	if (!dir[0])
		return;
	t_rm_lmdb(dir);
	dir[0] = 0;
}

static void
setup(void)
{
	teardown();
	snprintf(dir, sizeof dir, "/tmp/babl-commit-XXXXXX");
	T_ASSERT(mkdtemp(dir) != NULL);
	T_EQ_INT(store_open(&st, dir, 64ull << 20), 0);
	T_ASSERT((wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) >= 0);
	T_EQ_INT(commit_start(&cm, st, wake), 0);
}

static struct prop *
mkprop(uint64_t index, const char *text)
{
	struct prop *p = calloc(1, sizeof *p);

	T_ASSERT(p != NULL);
	p->e.type = ENT_NOOP;
	p->e.term = 1;
	p->e.index = index;
	p->e.len = (uint32_t)strlen(text);
	p->buf = malloc(p->e.len + 1);
	T_ASSERT(p->buf != NULL);
	memcpy(p->buf, text, p->e.len + 1);
	return p;
}

/* Take finished proposals until want have come back (5 s at most). */
static void
take(uint64_t first, size_t want)
{
	size_t got = 0;

	for (int tries = 0; tries < 50 && got < want; tries++) {
		struct pollfd pfd = {wake, POLLIN, 0};
		uint64_t v;
		int err;
		poll(&pfd, 1, 100);
		if (read(wake, &v, 8) < 0) {
			/* nothing yet */
		}
		for (struct prop *p = commit_take(cm, &err), *nx; p; p = nx) {
			nx = p->next;
			T_EQ_INT(err, 0);
			T_EQ_INT(p->e.index, first + got);
			got++;
			prop_free(p);
		}
	}
	T_EQ_INT(got, want);
}

static void
case_in_order(void)
{
	struct prop *a, *b, *c;
	uint64_t tail, txns, ents;

	setup();
	a = mkprop(1, "one");
	b = mkprop(2, "two");
	c = mkprop(3, "three");
	a->next = b;
	b->next = c;
	commit_submit_list(cm, a);
	take(1, 3);
	store_tail(st, &tail, NULL, NULL);
	T_EQ_INT(tail, 3);
	commit_stats(cm, &txns, &ents);
	T_EQ_INT(txns, 1);
	T_EQ_INT(ents, 3);
	teardown();
}

static void
case_paced_alone(void)
{
	uint64_t tail;

	setup();
	/* Many calls said to run, and a single proposal: it is written. */
	commit_pace(cm, 1000);
	commit_submit(cm, mkprop(1, "alone"));
	take(1, 1);
	for (uint64_t i = 2; i <= 40; i++)
		commit_submit(cm, mkprop(i, "more"));
	take(2, 39);
	store_tail(st, &tail, NULL, NULL);
	T_EQ_INT(tail, 40);
	teardown();
}

static void
case_paced_sync(void)
{
	uint64_t tail;

	setup();
	commit_pace(cm, 1000);
	commit_submit(cm, mkprop(1, "synced"));
	T_EQ_INT(commit_sync(cm), 0);
	store_tail(st, &tail, NULL, NULL);
	T_EQ_INT(tail, 1);
	take(1, 1);
	teardown();
}

/*
 * The kv cache trusts the store with a write once commit_stats reaches the
 * mark: it must hold even while the thread takes batches of proposals in
 * between (each round queues some behind the batch being written).
 */
static void
case_flush_mark(void)
{
	uint64_t index = 1;

	setup();
	for (uint32_t i = 0; i < 2000; i++) {
		uint8_t v[4];
		for (int k = 0; k < 3; k++, index++)
			commit_submit(cm, mkprop(index, "a proposal to ride along"));
		v[0] = (uint8_t)(i >> 24), v[1] = (uint8_t)(i >> 16);
		v[2] = (uint8_t)(i >> 8), v[3] = (uint8_t)i;
		T_EQ_INT(commit_put(cm, DB_KV, "key", 3, v, 4), 0);
		if (i % 3)
			usleep(i % 200); /* the thread may start a batch meanwhile */
		uint64_t mark = commit_flush_mark(cm), txns, ents;
		/* (Proposals go on coming, as on a busy node.) */
		for (int tries = 0; tries < 5000; tries++) {
			commit_stats(cm, &txns, &ents);
			if (txns >= mark)
				break;
			commit_submit(cm, mkprop(index++, "another"));
			usleep(100);
		}
		T_ASSERT(txns >= mark);
		struct store_txn *t;
		const void *got;
		size_t gl;
		T_EQ_INT(store_begin(st, 0, &t), 0);
		T_EQ_INT(store_get(t, DB_KV, "key", 3, &got, &gl), 0);
		T_EQ_INT(gl, 4);
		T_EQ_INT(memcmp(got, v, 4), 0);
		store_abort(t);
		int err;
		for (struct prop *p = commit_take(cm, &err), *nx; p; p = nx) {
			nx = p->next;
			prop_free(p);
		}
	}
	teardown();
}

static const struct t_case cases[] = {
	{"in_order", case_in_order},
	{"paced_alone", case_paced_alone},
	{"paced_sync", case_paced_sync},
	{"flush_mark", case_flush_mark},
	{0},
};

int
main(int argc, char **argv)
{
	int r = t_run(argc, argv, cases);
	teardown();
	return r;
}
