/*
 * simcore.h - a deterministic simulation of a Raft cluster (meshd/raft.c).
 *
 * One process, a simulated clock, network and disk; a seed drives
 * everything: the fault schedule (loss, duplication, reordering, variable
 * delay, symmetric and one-way partitions, crashes that lose what was not
 * persisted, torn last writes), membership changes, leadership transfers
 * and proposals.  The Raft safety properties are checked after every step;
 * after the faults end and everything heals, a leader must be elected and
 * a new proposal commit on every member within a bounded time.
 *
 * Used by tests/sim/sim.c (build/sim) and tests/unit/test_raft.c, which
 * includes simcore.c.
 */
#ifndef SIMCORE_H
#define SIMCORE_H

#include <stdint.h>
#include <stdio.h>

struct sim_opts {
	uint64_t seed;
	unsigned steps; /* ticks of the fault phase */
	FILE *log;      /* a line per event when not NULL (--verbose) */
};

struct sim_result {
	int ok;
	char why[512]; /* the first violation, if !ok */
	uint64_t ticks, commits, acked, leaders, crashes, snaps_sent;
	uint64_t conf_changes, transfers;
};

/* Run one seed; 0 if every check held, -1 if not (res->why says which). */
int sim_run(const struct sim_opts *o, struct sim_result *res);

#endif
