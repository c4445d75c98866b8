/*
 * nng-rtt.c - the baseline for small-call latency: round trips of a small
 * message over an nng req/rep pair on an ipc socket, in one process (a
 * replying thread and an asking one).
 *
 *   nng-rtt [-d SECONDS] [-s BYTES] [URL]
 *
 * Prints "calls=N errors=0 secs=S rate=R p50_us=X p99_us=Y" like babl-load.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void *
replier(void *arg)
{
	nng_socket *s = arg;
	for (;;) {
		nng_msg *m;
		if (nng_recvmsg(*s, &m, 0))
			return NULL;
		if (nng_sendmsg(*s, m, 0)) {
			nng_msg_free(m);
			return NULL;
		}
	}
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	double secs = 5;
	size_t bytes = 64;
	char url[256];
	int o;
	snprintf(url, sizeof url, "ipc:///tmp/nng-rtt-%d.sock", (int)getpid());
	while ((o = getopt(argc, argv, "d:s:")) != -1) {
		if (o == 'd')
			secs = atof(optarg);
		else if (o == 's')
			bytes = (size_t)atol(optarg);
		else {
			fprintf(stderr, "usage: nng-rtt [-d SECONDS] [-s BYTES] [URL]\n");
			return 64;
		}
	}
	if (optind < argc)
		snprintf(url, sizeof url, "%s", argv[optind]);
	nng_socket rep, req;
	pthread_t t;
	if (nng_rep0_open(&rep) || nng_listen(rep, url, NULL, 0) || nng_req0_open(&req) ||
	    nng_dial(req, url, NULL, 0)) {
		fprintf(stderr, "nng-rtt: cannot set up %s\n", url);
		return 1;
	}
	pthread_create(&t, NULL, replier, &rep);
	size_t cap = 1 << 20, n = 0;
	double *lat = malloc(cap * sizeof *lat);
	char *buf = calloc(1, bytes ? bytes : 1);
	double t0 = now(), end = t0 + secs;
	while (now() < end && n < cap) {
		double a = now();
		void *rb;
		size_t rl;
		if (nng_send(req, buf, bytes, 0) || nng_recv(req, &rb, &rl, NNG_FLAG_ALLOC)) {
			fprintf(stderr, "nng-rtt: round trip failed\n");
			return 1;
		}
		nng_free(rb, rl);
		lat[n++] = now() - a;
	}
	double el = now() - t0;
	qsort(lat, n, sizeof *lat, cmp);
	printf("nng req/rep over ipc, %zu B: %zu round trips in %.2f s\n", bytes, n, el);
	printf("calls=%zu errors=0 secs=%.3f rate=%.1f p50_us=%.0f p99_us=%.0f\n", n, el,
	    n / el, n ? lat[n / 2] * 1e6 : 0, n ? lat[n * 99 / 100] * 1e6 : 0);
	nng_close(req);
	nng_close(rep);
	if (strncmp(url, "ipc://", 6) == 0)
		unlink(url + 6);
	return 0;
}
