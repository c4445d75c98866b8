/*
 * loadgen.h - what the load generators (babl-load, spawn-bench) share:
 * per-thread latency records, percentiles and number parsing, so that both
 * report the same figures the same way.  Each program sets lg_prog.
 */
#ifndef TESTS_LOADGEN_H
#define TESTS_LOADGEN_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *lg_prog = "load";

struct worker {
	pthread_t tid;
	int index;
	uint32_t *lat; /* microseconds of each good call */
	size_t nlat, cap;
	long errors;
	int oom;
};

static double
now_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Keep one latency; on running out of memory, count it as not kept. */
static void
record(struct worker *w, double secs)
{
	if (w->nlat == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 4096;
		uint32_t *p = realloc(w->lat, cap * sizeof *p);
		if (!p) {
			w->oom = 1;
			return;
		}
		w->lat = p;
		w->cap = cap;
	}
	double us = secs * 1e6;
	w->lat[w->nlat++] = us > 4e9 ? UINT32_MAX : (uint32_t)us;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The p-th quantile of n sorted values (0 for none). */
static uint32_t
percentile(const uint32_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* An option's number in [min, max], or exit 64 saying why. */
static long long
number(const char *s, const char *what, long long min, long long max)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "%s: %s: '%s' is not a number from %lld to %lld\n",
		    lg_prog, what, s, min, max);
		exit(64);
	}
	return v;
}

#endif
