/*
 * babl-load.c - a load generator for meshd, built on libbabl.
 *
 *   babl-load -n URL [-c CONCURRENCY] [-d SECONDS] [--rounds N] [-s BYTES]
 *             [-t CALL_TIMEOUT] [--id-prefix P] [--expect BYTES] [--dial-each]
 *             [--links L] SERVICE [ARG...]
 *
 * CONCURRENCY threads each repeat one whole call after another: CALL, one
 * DATA frame of BYTES bytes (default 64; split at WIRE_CHUNK if larger), EOF
 * (sent together when they fit in 64 KiB), then OUT/ERRB frames until EXIT.
 * Each thread keeps its connection for the next call (WIRE_CALL_AGAIN) and
 * dials again only after a failed call; with --dial-each it dials, calls
 * and closes for every call, as the babl command does.  A call is good when it
 * ends with exit status 0 and, for the service `cat` (or with --expect), its
 * output is exactly the expected number of bytes; anything else (no
 * connection, an ERROR frame, a protocol error, another status, a wrong
 * length, a timeout) counts as an error.  The latency of every good call,
 * dial included, is recorded.
 *
 * With --links L, the CONCURRENCY calls are channels (wire.h) of L
 * connections instead, one thread driving each connection: a channel makes
 * one call after another, and a thread sends the calls its channels start
 * together, once it has handled every frame that had arrived.  BYTES is then
 * at most 16 KiB.  A channel that the node ends (after an ERROR) is opened
 * again for the next call.
 *
 * It stops after SECONDS (default 10), or after N calls per thread with
 * --rounds (and then SECONDS only if -d is also given).  A call in flight at
 * the deadline is finished, but never waits longer than CALL_TIMEOUT
 * (default 30 s).  At the end it prints a human line and then one
 * machine-readable line on stdout:
 *
 *   calls=N errors=E secs=S rate=R p50_us=X p99_us=Y
 *
 * N good calls, E failed calls, S seconds of wall-clock time from the first
 * call started to the last ended, R = N/S, and the latency percentiles of
 * the good calls in microseconds.  The first few errors are described on
 * stderr.  Exit status 0 if there was at least one good call and no error,
 * 1 otherwise, 64 for usage.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "err.h"
#include "wire.h"
#include "loadgen.h"

static const char usage_text[] =
    "usage: babl-load -n URL [-c CONCURRENCY] [-d SECONDS] [--rounds N] [-s BYTES]\n"
    "                 [-t CALL_TIMEOUT] [--id-prefix P] [--expect BYTES] [--dial-each]\n"
    "                 [--links L] SERVICE [ARG...]\n";

/* Settings, fixed before the threads start. */
static const char *url;
static int nthreads = 1;
static double duration = 10;
static int duration_set;
static long rounds;           /* 0: run for the duration */
static size_t nbytes = 64;
static long long expect = -1; /* -1: no length check */
static int call_timeout_ms = 30000;
static const char *id_prefix;
static int dial_each;
static int nlinks;            /* 0: a connection per thread */
static const char *service;
static int nargs;
static char **args;
static uint8_t *payload;

static struct timespec t_start;
static atomic_int stop_all;
static atomic_int errors_shown;

static void __attribute__((format(printf, 2, 3)))
call_error(struct worker *w, const char *fmt, ...)
{
	w->errors++;
	if (atomic_fetch_add(&errors_shown, 1) >= 5)
		return;
	va_list ap;
	char msg[512];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "babl-load: thread %d: %s\n", w->index, msg);
}

/* What a call sends while another thread reads, for inputs too large to
 * send before reading without risking a stall on backpressure. */
struct sender {
	struct conn *c;
	int rc;
};

static int
send_input(struct conn *c)
{
	size_t off = 0;
	while (off < nbytes) {
		size_t n = nbytes - off < WIRE_CHUNK ? nbytes - off : WIRE_CHUNK;
		int rc = conn_send_data(c, WIRE_DATA, payload + off, n);
		if (rc)
			return rc;
		off += n;
	}
	return conn_send_data(c, WIRE_EOF, NULL, 0);
}

static void *
sender_main(void *arg)
{
	struct sender *s = arg;
	s->rc = send_input(s->c);
	return NULL;
}

/* The CALL of call seq of worker (or channel) k. */
static void
call_msg(struct wire_call *m, int k, long seq, char *idbuf, size_t idlen)
{
	memset(m, 0, sizeof *m);
	m->target = (struct wire_str){service, strlen(service)};
	if (id_prefix) {
		snprintf(idbuf, idlen, "%s-%d-%ld", id_prefix, k, seq);
		m->idkey = (struct wire_str){idbuf, strlen(idbuf)};
	}
	m->nargs = (uint32_t)nargs;
	for (int i = 0; i < nargs; i++)
		m->args[i] = (struct wire_str){args[i], strlen(args[i])};
	if (!dial_each)
		m->flags = WIRE_CALL_AGAIN;
}

/* A whole small call into b: CALL, the payload, EOF (0 or an error). */
static int
enc_call(struct wbuf *b, const struct wire_call *m)
{
	return wire_enc_call(b, m) || wire_enc_bytes(b, WIRE_DATA, payload, nbytes) ||
	    wire_enc_empty(b, WIRE_EOF);
}

/* Whether a call that ended so is good; if not, says why. */
static int
exit_good(struct worker *w, const struct wire_frame *f, uint64_t out)
{
	struct wire_exit x;
	if (wire_dec_exit(f, &x)) {
		call_error(w, "malformed EXIT");
		return 0;
	}
	if (x.kind != WIRE_EXITED || x.code != 0) {
		call_error(w, "%s %d%s%.*s", x.kind == WIRE_EXITED ? "exit status" : "killed by signal",
		    (int)x.code, x.msg.len ? ": " : "", (int)x.msg.len, x.msg.p);
		return 0;
	}
	if (expect >= 0 && out != (uint64_t)expect) {
		call_error(w, "output was %llu bytes, expected %lld", (unsigned long long)out, expect);
		return 0;
	}
	return 1;
}

static void
error_frame(struct worker *w, const struct wire_frame *f)
{
	struct wire_error e;
	if (wire_dec_error(f, &e))
		call_error(w, "malformed ERROR");
	else
		call_error(w, "node: %.*s (%s)", (int)e.msg.len, e.msg.p, babl_strerror(e.code));
}

/* One whole call on *cp (dialled first if NULL; closed and NULL unless the
 * call was good and the connection is kept).  Returns 0 if it was good. */
static int
one_call(struct worker *w, long seq, struct conn **cp)
{
	struct wire_call m;
	struct wbuf b = {0};
	struct conn *c = *cp;
	char why[1024], idbuf[256];
	struct sender snd = {0};
	pthread_t st;
	int threaded = 0, rc, result = -1;
	uint64_t out = 0;

	call_msg(&m, w->index, seq, idbuf, sizeof idbuf);

	if (!c) {
		rc = conn_dial(&c, url, 5000, why, sizeof why);
		if (rc) {
			call_error(w, "dial: %s", why);
			return -1;
		}
	}
	if (nbytes <= 64 * 1024) {
		/* CALL, the input and EOF in one send. */
		if (enc_call(&b, &m) || conn_send(c, b.p, b.len)) {
			call_error(w, "could not send the call");
			goto out;
		}
	} else {
		if (wire_enc_call(&b, &m) || conn_send(c, b.p, b.len)) {
			call_error(w, "could not send CALL");
			goto out;
		}
		snd.c = c;
		if (pthread_create(&st, NULL, sender_main, &snd)) {
			call_error(w, "cannot start a sender thread");
			goto out;
		}
		threaded = 1;
	}

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct wire_frame f;
		int left = call_timeout_ms - (int)(now_since(&t0) * 1000);
		if (left <= 0) {
			call_error(w, "no EXIT within %d ms", call_timeout_ms);
			conn_send_data(c, WIRE_CANCEL, NULL, 0);
			goto out;
		}
		rc = conn_recv(c, &f, left);
		if (rc == BABL_ETIMEDOUT)
			continue;
		if (rc) {
			call_error(w, "receive: %s", babl_strerror(rc));
			goto out;
		}
		if (f.type == WIRE_OUT) {
			out += f.len;
		} else if (f.type == WIRE_ERRB) {
			/* stderr of the service: not counted as output */
		} else if (f.type == WIRE_EXIT) {
			if (exit_good(w, &f, out))
				result = 0;
			goto out;
		} else if (f.type == WIRE_ERROR) {
			error_frame(w, &f);
			goto out;
		} else {
			call_error(w, "unexpected frame 0x%02x", f.type);
			goto out;
		}
	}
out:
	if (threaded) {
		if (result != 0)
			conn_shutdown(c);
		pthread_join(st, NULL);
		if (result == 0 && snd.rc) {
			call_error(w, "sending input: %s", babl_strerror(snd.rc));
			result = -1;
		}
	}
	wbuf_free(&b);
	if (result != 0 || dial_each) {
		conn_close(c);
		c = NULL;
	}
	*cp = c;
	return result;
}

/* Whether a worker (or channel) that has started seq calls makes another. */
static int
running(long seq)
{
	if (atomic_load(&stop_all) || (rounds && seq >= rounds))
		return 0;
	return !((!rounds || duration_set) && now_since(&t_start) >= duration);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct conn *c = NULL;
	for (long seq = 0; running(seq); seq++) {
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (one_call(w, seq, &c) == 0)
			record(w, now_since(&t0));
	}
	conn_close(c);
	return NULL;
}

/* A channel of a link (--links). */
struct chan {
	long seq;          /* calls it has started */
	int busy;          /* a call is under way */
	int ended;         /* the node ended it; ours goes before it is used again */
	int erred;         /* its call got an ERROR: the node ends the channel */
	int wait_end;      /* the next call waits for that end */
	uint64_t out;
	struct timespec t0;
};

/* Start channel i's next call: its frames go into b. */
static int
chan_call(struct worker *w, struct chan *ch, uint32_t i, struct wbuf *b)
{
	struct wire_call m;
	char idbuf[256];
	size_t start;
	call_msg(&m, (int)i * nlinks + w->index, ch->seq, idbuf, sizeof idbuf);
	if ((ch->ended && wire_enc_chan_end(b, i)) || wire_chan_begin(b, i, &start) ||
	    enc_call(b, &m) || wire_chan_end(b, start)) {
		call_error(w, "could not encode a call");
		return -1;
	}
	ch->ended = ch->erred = 0;
	ch->busy = 1;
	ch->out = 0;
	ch->seq++;
	clock_gettime(CLOCK_MONOTONIC, &ch->t0);
	return 0;
}

/* A thread of --links: its channels are k, k + L, k + 2L, ... of the
 * CONCURRENCY (channel id: the index / L). */
static void *
link_main(void *arg)
{
	struct worker *w = arg;
	int nch = (nthreads - w->index + nlinks - 1) / nlinks, busy = 0;
	struct chan *chs = calloc((size_t)nch, sizeof *chs);
	struct wbuf b = {0};
	struct conn *c = NULL;
	char why[1024];
	if (!chs) {
		w->errors++;
		return NULL;
	}
	if (conn_dial(&c, url, 5000, why, sizeof why)) {
		call_error(w, "dial: %s", why);
		free(chs);
		return NULL;
	}
	for (int i = 0; i < nch; i++) {
		if (running(chs[i].seq) && chan_call(w, &chs[i], (uint32_t)i, &b) == 0)
			busy++;
	}
	while (busy) {
		struct wire_frame f, g;
		uint32_t id;
		const uint8_t *p;
		size_t n, used;
		if (b.len && !conn_ready(c)) {
			if (conn_send(c, b.p, b.len)) {
				call_error(w, "could not send calls");
				break;
			}
			wbuf_reset(&b);
		}
		int rc = conn_recv(c, &f, call_timeout_ms);
		if (rc) {
			call_error(w, "receive: %s", babl_strerror(rc));
			break;
		}
		if (f.type == WIRE_ERROR) {
			error_frame(w, &f);
			break;
		}
		if (wire_dec_chan(&f, &id, &p, &n) || id >= (uint32_t)nch) {
			call_error(w, "unexpected frame 0x%02x on a link", f.type);
			break;
		}
		struct chan *ch = &chs[id];
		int ok = -1; /* the call's end: 1 good, 0 failed */
		if (n == 0) {
			ch->ended = 1;
			if (ch->busy) {
				call_error(w, "the node ended channel %u during a call", id);
				ok = 0;
			} else if (ch->wait_end) {
				ch->wait_end = 0;
				if (running(ch->seq) && chan_call(w, ch, id, &b) == 0)
					busy++;
				continue;
			}
		}
		for (; n && ch->busy && wire_next(p, n, 0, &g, &used) == 0; p += used, n -= used) {
			if (g.type == WIRE_OUT)
				ch->out += g.len;
			else if (g.type == WIRE_EXIT)
				ok = exit_good(w, &g, ch->out);
			else if (g.type == WIRE_ERROR)
				error_frame(w, &g), ok = 0, ch->erred = 1;
			else if (g.type != WIRE_ERRB)
				call_error(w, "unexpected frame 0x%02x in a channel", g.type), ok = 0;
		}
		if (ok < 0 || !ch->busy)
			continue;
		ch->busy = 0;
		busy--;
		if (ok) /* (a failed one was counted by call_error) */
			record(w, now_since(&ch->t0));
		/* After an ERROR, the next call waits for the node's end. */
		if (ch->erred && !ch->ended)
			ch->wait_end = 1;
		else if (running(ch->seq) && chan_call(w, ch, id, &b) == 0)
			busy++;
	}
	/* Calls that never ended are errors, the one that call_error counted
	 * when the loop broke among them. */
	if (busy)
		w->errors += busy - 1;
	conn_close(c);
	wbuf_free(&b);
	free(chs);
	return NULL;
}

int
main(int argc, char **argv)
{
	lg_prog = "babl-load";
	enum { OPT_ROUNDS = 256, OPT_ID, OPT_EXPECT, OPT_DIAL, OPT_LINKS };
	static const struct option opts[] = {
		{"node", required_argument, NULL, 'n'},
		{"concurrency", required_argument, NULL, 'c'},
		{"duration", required_argument, NULL, 'd'},
		{"size", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 't'},
		{"rounds", required_argument, NULL, OPT_ROUNDS},
		{"id-prefix", required_argument, NULL, OPT_ID},
		{"expect", required_argument, NULL, OPT_EXPECT},
		{"dial-each", no_argument, NULL, OPT_DIAL},
		{"links", required_argument, NULL, OPT_LINKS},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int o;

	while ((o = getopt_long(argc, argv, "+n:c:d:s:t:h", opts, NULL)) != -1) {
		switch (o) {
		case 'n': url = optarg; break;
		case 'c': nthreads = (int)number(optarg, "-c", 1, 4096); break;
		case 'd': {
			char *end;
			duration = strtod(optarg, &end);
			if (end == optarg || *end || !(duration > 0) || duration > 86400) {
				fprintf(stderr, "babl-load: -d: '%s' is not a number of seconds\n", optarg);
				return 64;
			}
			duration_set = 1;
			break;
		}
		case 's': nbytes = (size_t)number(optarg, "-s", 0, 1LL << 32); break;
		case 't': call_timeout_ms = (int)number(optarg, "-t", 1, 3600) * 1000; break;
		case OPT_ROUNDS: rounds = (long)number(optarg, "--rounds", 1, 1LL << 40); break;
		case OPT_ID: id_prefix = optarg; break;
		case OPT_EXPECT: expect = number(optarg, "--expect", 0, 1LL << 40); break;
		case OPT_DIAL: dial_each = 1; break;
		case OPT_LINKS: nlinks = (int)number(optarg, "--links", 1, 64); break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 64;
		}
	}
	if (optind >= argc || !url) {
		fputs(usage_text, stderr);
		return 64;
	}
	service = argv[optind];
	args = argv + optind + 1;
	nargs = argc - optind - 1;
	if (nargs > WIRE_MAX_ARGS) {
		fprintf(stderr, "babl-load: too many arguments\n");
		return 64;
	}
	if (nlinks && (dial_each || nbytes > 16 * 1024 || nthreads > nlinks * 256)) {
		fprintf(stderr, "babl-load: --links takes calls of at most 16 KiB, at most 256 per "
		    "link (what meshd holds open), and not --dial-each\n");
		return 64;
	}
	if (expect < 0 && (strcmp(service, "cat") == 0 || strncmp(service, "cat@", 4) == 0))
		expect = (long long)nbytes;

	payload = malloc(nbytes ? nbytes : 1);
	if (!payload) {
		fprintf(stderr, "babl-load: out of memory\n");
		return 70;
	}
	for (size_t i = 0; i < nbytes; i++)
		payload[i] = (uint8_t)('a' + i % 26);
	signal(SIGPIPE, SIG_IGN);

	struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
	if (!ws) {
		fprintf(stderr, "babl-load: out of memory\n");
		return 70;
	}
	clock_gettime(CLOCK_MONOTONIC, &t_start);
	int started = 0;
	for (int i = 0; i < (nlinks ? nlinks : nthreads); i++) {
		ws[i].index = i;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setstacksize(&at, 256 * 1024);
		if (pthread_create(&ws[i].tid, &at, nlinks ? link_main : worker_main, &ws[i]) != 0) {
			fprintf(stderr, "babl-load: could start only %d threads\n", i);
			pthread_attr_destroy(&at);
			break;
		}
		pthread_attr_destroy(&at);
		started++;
	}
	struct lg_result r;
	if (lg_finish(ws, started, &t_start, &r))
		return 70;
	char how[64];
	if (nlinks)
		snprintf(how, sizeof how, "%d channels on %d link%s", nthreads, started,
		    started == 1 ? "" : "s");
	else
		snprintf(how, sizeof how, "%d thread%s", started, started == 1 ? "" : "s");
	printf("babl-load: %s, %s, %zu B each: %zu calls, %ld errors in %.2f s: "
	    "%.0f calls/s, latency p50 %u us, p99 %u us\n",
	    service, how, nbytes, r.total, r.errors, r.secs, r.rate, r.p50, r.p99);
	lg_print(&r);
	free(ws);
	free(payload);
	return r.total > 0 && r.errors == 0 ? 0 : 1;
}
