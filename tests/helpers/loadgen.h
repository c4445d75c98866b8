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
#include <string.h>
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

/* The figures of a run, over all its threads. */
struct lg_result {
	size_t total;
	long errors;
	double secs, rate;
	uint32_t p50, p99;
};

/*
 * Join the started threads and merge their latencies into *r (secs since
 * t0).  Returns 0, or 70 after saying so if memory runs out.
 */
static int
lg_finish(struct worker *ws, int started, const struct timespec *t0,
    struct lg_result *r)
{
	int oom = 0;
	memset(r, 0, sizeof *r);
	for (int i = 0; i < started; i++) {
		pthread_join(ws[i].tid, NULL);
		r->total += ws[i].nlat;
		r->errors += ws[i].errors;
		oom |= ws[i].oom;
	}
	r->secs = now_since(t0);
	uint32_t *all = malloc((r->total ? r->total : 1) * sizeof *all);
	if (!all) {
		fprintf(stderr, "%s: out of memory\n", lg_prog);
		return 70;
	}
	size_t k = 0;
	for (int i = 0; i < started; i++) {
		if (ws[i].nlat) /* (lat is NULL when it kept none) */
			memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof *all);
		k += ws[i].nlat;
		free(ws[i].lat);
	}
	qsort(all, r->total, sizeof *all, cmp_u32);
	r->p50 = percentile(all, r->total, 0.50);
	r->p99 = percentile(all, r->total, 0.99);
	r->rate = r->secs > 0 ? (double)r->total / r->secs : 0;
	free(all);
	if (oom)
		fprintf(stderr, "%s: out of memory for latencies: some not recorded\n", lg_prog);
	return 0;
}

/* The machine-readable line scripts/bench reads. */
static void
lg_print(const struct lg_result *r)
{
	printf("calls=%zu errors=%ld secs=%.3f rate=%.1f p50_us=%u p99_us=%u\n", r->total,
	    r->errors, r->secs, r->rate, r->p50, r->p99);
}

#endif
