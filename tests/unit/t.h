/*
 * t.h - the unit-test harness: a table of named cases per file.
 *
 *	static void case_x(void) { T_ASSERT(1 + 1 == 2); T_EQ_INT(f(), 0); }
 *	static const struct t_case cases[] = { {"x", case_x}, {0} };
 *	int main(int argc, char **argv) { return t_run(argc, argv, cases); }
 *
 * A failed assertion reports file:line and the expression, and ends that
 * case (longjmp); the run continues with the next case.  t_run prints
 * "N passed, N failed" last and returns non-zero if any case failed.  An
 * argument selects the cases whose name contains it.
 */
#ifndef T_H
#define T_H

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct t_case {
	const char *name;
	void (*fn)(void);
};

static jmp_buf t_jmp;
static const char *t_cur;

#define T_FAIL(...)                                                        \
	do {                                                               \
		fprintf(stderr, "  FAIL %s: %s:%d: ", t_cur, __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__);                              \
		fputc('\n', stderr);                                       \
		longjmp(t_jmp, 1);                                         \
	} while (0)
#define T_ASSERT(e)                                                        \
	do {                                                               \
		if (!(e))                                                  \
			T_FAIL("%s", #e);                                  \
	} while (0)
#define T_EQ_INT(a, b)                                                     \
	do {                                                               \
		long long t_a_ = (long long)(a), t_b_ = (long long)(b);    \
		if (t_a_ != t_b_)                                          \
			T_FAIL("%s == %lld, expected %s == %lld", #a, t_a_, #b, t_b_); \
	} while (0)
#define T_EQ_STR(a, b)                                                     \
	do {                                                               \
		const char *t_a_ = (a), *t_b_ = (b);                       \
		if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0)             \
			T_FAIL("%s == \"%s\", expected \"%s\"", #a,        \
			       t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)"); \
	} while (0)
#define T_EQ_MEM(a, b, n) T_ASSERT(memcmp((a), (b), (n)) == 0)

/*
 * The seed of a randomized test: BABL_TEST_SEED if set, else from the clock
 * and the pid; never 0.  Printed on stderr as "WHAT: BABL_TEST_SEED=N", so
 * that a failed run can be repeated.
 */
static inline uint64_t
t_seed(const char *what)
{
	const char *e = getenv("BABL_TEST_SEED");
	uint64_t seed = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 16;
	if (!seed)
		seed = 1;
	fprintf(stderr, "  %s: BABL_TEST_SEED=%llu\n", what, (unsigned long long)seed);
	return seed;
}

/* xorshift64: small, and a run repeats from its seed (*s must not be 0). */
static inline uint64_t
t_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int
t_run(int argc, char **argv, const struct t_case *cases)
{
	volatile int passed = 0, failed = 0;
	for (const struct t_case *volatile c = cases; c->name; c++) {
		if (argc > 1 && !strstr(c->name, argv[1]))
			continue;
		t_cur = c->name;
		if (setjmp(t_jmp) == 0) {
			c->fn();
			passed++;
			fprintf(stderr, "  ok   %s\n", c->name);
		} else {
			failed++;
		}
	}
	const char *base = strrchr(argv[0], '/');
	printf("%s: %d passed, %d failed\n", base ? base + 1 : argv[0], passed, failed);
	return failed ? 1 : 0;
}

/* Remove an LMDB directory a case made (its two files, then itself). */
static inline void
t_rm_lmdb(const char *dir)
{
	char p[512];
	snprintf(p, sizeof p, "%s/data.mdb", dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/lock.mdb", dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/journal", dir);
	unlink(p);
	rmdir(dir);
}

#endif
