/*
 * sim.c - build/sim: run the deterministic Raft simulation over seeds.
 *
 *	build/sim [--seeds N] [--from S] [--steps K] [--verbose]
 *	build/sim --seed S [--steps K] [--verbose]
 *
 * Runs seeds S .. S+N-1 (default 1000 seeds from 1, 1000 ticks each).  For
 * each failing seed it prints the violation and one command that
 * reproduces it; the last line is "sim: N passed, N failed", and the exit
 * status is 1 if any failed.  --verbose prints every event to stderr;
 * with SIM_TRACE=T in the environment it also prints every message
 * delivered after tick T.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simcore.h"

static void
usage(void)
{
	fprintf(stderr, "usage: sim [--seeds N] [--from S] [--steps K] [--verbose]\n"
	    "       sim --seed S [--steps K] [--verbose]\n");
	exit(64);
}

static unsigned long long
num(const char *s)
{
	char *end;
	if (!s || !*s)
		usage();
	unsigned long long v = strtoull(s, &end, 10);
	if (*end)
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	unsigned long long seeds = 1000, from = 1, steps = 1000;
	int verbose = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seeds"))
			seeds = num(argv[++i]);
		else if (!strcmp(argv[i], "--from"))
			from = num(argv[++i]);
		else if (!strcmp(argv[i], "--seed")) {
			from = num(argv[++i]);
			seeds = 1;
		} else if (!strcmp(argv[i], "--steps"))
			steps = num(argv[++i]);
		else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v"))
			verbose = 1;
		else
			usage();
	}
	unsigned long long passed = 0, failed = 0, commits = 0, ticks = 0;
	for (unsigned long long seed = from; seed < from + seeds; seed++) {
		struct sim_opts o = {seed, (unsigned)steps, verbose ? stderr : NULL};
		struct sim_result res;
		if (sim_run(&o, &res) == 0) {
			passed++;
		} else {
			failed++;
			printf("seed %llu: %s\n", seed, res.why);
			if (steps != 1000)
				printf("  reproduce: build/sim --seed %llu --steps %llu --verbose\n",
				    seed, steps);
			else
				printf("  reproduce: build/sim --seed %llu --verbose\n", seed);
		}
		commits += res.commits;
		ticks += res.ticks;
		fflush(stdout);
	}
	printf("sim: %llu ticks, %llu entries committed\n", ticks, commits);
	printf("sim: %llu passed, %llu failed\n", passed, failed);
	return failed ? 1 : 0;
}
