/*
 * test_idset.c - the set of open calls: adds, lookups and removals checked
 * against a plain array of flags over many random operations (so that
 * removal must move later members of a probe run back, also across the
 * table's end), through growth and back down to empty.
 *
 * The random choices come from a seed printed at the start;
 * BABL_TEST_SEED=N repeats a run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idset.h"

#include "t.h"

#define UNIVERSE 5000

static uint64_t rng;

/* The ids of a case: 1 to UNIVERSE, or random ones (homes anywhere, so
 * that probe runs also cross the table's end). */
static uint64_t ids[UNIVERSE];

static void
pick_ids(int random_ids)
{
	for (size_t i = 0; i < UNIVERSE; i++)
		ids[i] = random_ids ? t_rand(&rng) | 1 : i + 1;
}

static void
against_flags(size_t universe, int random_ids)
{
	struct idset s = {0};
	static unsigned char in[UNIVERSE];
	size_t n = 0;
	memset(in, 0, sizeof in);
	pick_ids(random_ids);
	for (int step = 0; step < 200000; step++) {
		size_t i = t_rand(&rng) % universe;
		uint64_t id = ids[i];
		/* add more than remove in the first half, the reverse after */
		int add = (int)(t_rand(&rng) % 100) < (step < 100000 ? 65 : 30);
		if (add) {
			T_EQ_INT(idset_add(&s, id), 0);
			n += !in[i];
			in[i] = 1;
		} else {
			T_EQ_INT(idset_del(&s, id), in[i]);
			n -= in[i];
			in[i] = 0;
		}
		T_EQ_INT(s.n, n);
		if (universe < 100 || step % 997 == 0)
			for (size_t j = 0; j < universe; j++)
				T_EQ_INT(idset_has(&s, ids[j]), in[j]);
	}
	for (size_t j = 0; j < universe; j++) {
		T_EQ_INT(idset_has(&s, ids[j]), in[j]);
		T_EQ_INT(idset_del(&s, ids[j]), in[j]);
	}
	T_EQ_INT(s.n, 0);
	for (size_t j = 0; j < s.cap; j++)
		T_EQ_INT(s.slot[j], 0);
	idset_clear(&s);
}

static void
case_random_dense(void)
{
	against_flags(UNIVERSE, 0);
}

static void
case_random_ids(void)
{
	against_flags(UNIVERSE, 1);
}

/* At most 31 ids in the first table of 64: runs often cross its end
 * (with ten sets of ids, as one set may leave the end free). */
static void
case_random_small(void)
{
	for (int round = 0; round < 10; round++)
		against_flags(31, 1);
}

static void
case_edges(void)
{
	struct idset s = {0};
	T_EQ_INT(idset_has(&s, 7), 0); /* an empty set has no table */
	T_EQ_INT(idset_del(&s, 7), 0);
	T_ASSERT(idset_add(&s, 0) != 0); /* 0 marks a free slot */
	T_EQ_INT(idset_has(&s, 0), 0);
	T_EQ_INT(idset_add(&s, UINT64_MAX), 0);
	T_EQ_INT(idset_add(&s, UINT64_MAX), 0); /* twice: held once */
	T_EQ_INT(s.n, 1);
	T_EQ_INT(idset_has(&s, UINT64_MAX), 1);
	T_EQ_INT(idset_del(&s, UINT64_MAX), 1);
	T_EQ_INT(idset_del(&s, UINT64_MAX), 0);
	idset_clear(&s);
	T_EQ_INT(s.cap, 0);
}

static const struct t_case cases[] = {
	{"random_dense", case_random_dense},
	{"random_ids", case_random_ids},
	{"random_small", case_random_small},
	{"edges", case_edges},
	{0},
};

int
main(int argc, char **argv)
{
	rng = t_seed("test_idset");
	return t_run(argc, argv, cases);
}
