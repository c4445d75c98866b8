/*
 * lua-replay - run a fixed sequence of calls through a Lua worker
 * (meshd-lua) started directly, and print everything it answers in a
 * canonical text form, so that two runs can be compared byte for byte
 * (tests/integ/determinism.sh).
 *
 *   lua-replay [-s SEED] [-t TIME_MS] [-n CALLS] [-c CHUNK] [-m MEM_BYTES]
 *              [-i INSNS] [-S SERVICE] [-a ARG]... [-e VAR=VALUE]...
 *              WORKER SCRIPT [INPUT]
 *
 * The worker gets SCRIPT (chunk name: its base name) and the limits, then
 * CALLS calls one after another: call k (1..CALLS) has call id 100+k,
 * service SERVICE (default "det"), request id "%032x" of k, time
 * TIME_MS + 1000*(k-1), seed SEED + k - 1, the -a arguments, and the INPUT
 * file's bytes (none without one) in INPUT frames of CHUNK bytes, then EOF.  KVGET is answered "not
 * found" (keys: an empty list).  The worker's environment is the -e
 * variables only.
 *
 * Output, one record per line:
 *   OUT <call> <stream> <bytes>       a run of output bytes up to and
 *                                      including a newline (or the end of
 *                                      the run); bytes outside printable
 *                                      ASCII, and '\', as \xHH
 *   KVGET <call> <get|keys> <key>
 *   DONE <call> status=<s> writes=<n>
 *   W <call> <set|del> <key> <value>
 *   USAGE <call> insns=<n> mem_peak=<n>
 *   EXIT <worker's exit status>
 * Exit status 0, or 1 with a message on stderr (worker died, malformed
 * frame, no answer within 60 s).
 *
 * It speaks the worker protocol (meshd/wproto.h) with its own encoders on
 * the wire framing of libbabl, and links libbabl only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "wire.h"

/* The worker protocol's types (meshd/wproto.h). */
enum {
	T_SCRIPT = 0x60,
	T_CALL = 0x61,
	T_INPUT = 0x62,
	T_EOF = 0x63,
	T_KV = 0x65,
	T_KEYS = 0x66,
	T_OUT = 0x70,
	T_KVGET = 0x71,
	T_DONE = 0x72,
};

static pid_t child = -1;
static int to_fd = -1, from_fd = -1;
static struct wbuf q;  /* bytes for the worker */
static size_t qoff;
static uint8_t *rbuf;
static size_t rlen, rcap;

/* The run of output being printed: call, stream, and whether a line is open. */
static uint64_t run_call;
static int run_stream, run_open;

static void
fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "lua-replay: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	if (child > 0)
		kill(child, SIGKILL);
	exit(1);
}

static void
enc_check(int rc)
{
	if (rc)
		fail("cannot encode a frame: %s", babl_strerror(rc));
}

static void
put_esc(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			putchar(p[i]);
		else
			printf("\\x%02x", p[i]);
	}
}

static void
end_run(void)
{
	if (run_open)
		putchar('\n');
	run_open = 0;
}

static void
out_bytes(uint64_t call, int stream, const uint8_t *p, size_t n)
{
	if (run_open && (call != run_call || stream != run_stream))
		end_run();
	run_call = call;
	run_stream = stream;
	while (n) {
		if (!run_open) {
			printf("OUT %" PRIu64 " %d ", call, stream);
			run_open = 1;
		}
		const uint8_t *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) + 1 : n;
		put_esc(p, k);
		if (nl)
			end_run();
		p += k;
		n -= k;
	}
}

static void
flush_some(int block)
{
	while (qoff < q.len) {
		ssize_t w = write(to_fd, q.p + qoff, q.len - qoff);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			if (!block)
				return;
			struct pollfd pf = {to_fd, POLLOUT, 0};
			poll(&pf, 1, 1000);
			continue;
		}
		if (w <= 0)
			fail("%s", "the worker closed its input");
		qoff += (size_t)w;
	}
	wbuf_reset(&q);
	qoff = 0;
}

static void
send_ref(uint8_t type, uint64_t call, const void *p, size_t n)
{
	int rc;
	size_t s = wire_frame_begin(&q, type, &rc);
	if (!rc) rc = wb_u64(&q, call);
	if (!rc) rc = wb_u8(&q, 0);
	if (!rc) rc = wb_raw(&q, p, n);
	enc_check(wire_frame_end(&q, s, rc));
}

/* Handle one frame from the worker; 1 if it is DONE for call `want`. */
static int
on_frame(const struct wire_frame *f, uint64_t want)
{
	struct rd r;
	rd_init(&r, f->p, f->len);
	uint64_t call = rd_u64(&r);
	if (r.bad)
		fail("%s", "a short frame from the worker");
	if (f->type == T_OUT) {
		uint8_t stream = rd_u8(&r);
		if (r.bad)
			fail("%s", "a short OUT frame");
		out_bytes(call, stream, r.p, (size_t)(r.end - r.p));
		return 0;
	}
	end_run();
	if (f->type == T_KVGET) {
		uint8_t keys = rd_u8(&r);
		struct wire_str k = rd_str(&r, 1024);
		if (rd_done(&r))
			fail("%s", "a malformed KVGET frame");
		printf("KVGET %" PRIu64 " %s ", call, keys ? "keys" : "get");
		put_esc((const uint8_t *)k.p, k.len);
		putchar('\n');
		int rc;
		size_t s = wire_frame_begin(&q, keys ? T_KEYS : T_KV, &rc);
		if (!rc) rc = wb_u64(&q, call);
		if (keys) {
			if (!rc) rc = wb_u32(&q, 0);
		} else {
			if (!rc) rc = wb_u8(&q, 0);
			if (!rc) rc = wb_str(&q, "", 0);
		}
		enc_check(wire_frame_end(&q, s, rc));
		return 0;
	}
	if (f->type == T_DONE) {
		int32_t status = (int32_t)rd_u32(&r);
		uint64_t insns = rd_u64(&r);
		uint64_t peak = rd_u64(&r);
		uint32_t nw = rd_u32(&r);
		if (r.bad)
			fail("%s", "a malformed DONE frame");
		printf("DONE %" PRIu64 " status=%d writes=%" PRIu32 "\n", call, (int)status, nw);
		for (uint32_t i = 0; i < nw; i++) {
			uint8_t del = rd_u8(&r);
			struct wire_str k = rd_str(&r, 1024);
			struct wire_str v = rd_str(&r, WIRE_MAX_BODY);
			if (r.bad)
				fail("%s", "a malformed write list");
			printf("W %" PRIu64 " %s ", call, del ? "del" : "set");
			put_esc((const uint8_t *)k.p, k.len);
			putchar(' ');
			put_esc((const uint8_t *)v.p, v.len);
			putchar('\n');
		}
		if (rd_done(&r))
			fail("%s", "trailing bytes in a DONE frame");
		printf("USAGE %" PRIu64 " insns=%" PRIu64 " mem_peak=%" PRIu64 "\n", call, insns,
		    peak);
		return call == want;
	}
	char t[8];
	snprintf(t, sizeof t, "0x%02x", f->type);
	fail("an unexpected frame of type %s", t);
	return 0;
}

/* Exchange frames until the worker says DONE for call `want`. */
static void
run_until_done(uint64_t want)
{
	for (;;) {
		size_t off = 0;
		for (;;) {
			struct wire_frame f;
			size_t used;
			int rc = wire_next_any(rbuf + off, rlen - off, 0, &f, &used);
			if (rc == BABL_EAGAIN)
				break;
			if (rc)
				fail("a malformed frame from the worker: %s", babl_strerror(rc));
			off += used;
			if (on_frame(&f, want)) {
				memmove(rbuf, rbuf + off, rlen - off);
				rlen -= off;
				return;
			}
		}
		memmove(rbuf, rbuf + off, rlen - off);
		rlen -= off;
		flush_some(0);
		struct pollfd pf[2] = {{from_fd, POLLIN, 0}, {to_fd, qoff < q.len ? POLLOUT : 0, 0}};
		int n = poll(pf, 2, 60000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			fail("%s", "no answer from the worker within 60 s");
		if (pf[0].revents) {
			if (rlen == rcap)
				fail("%s", "a frame too large from the worker");
			ssize_t k = read(from_fd, rbuf + rlen, rcap - rlen);
			if (k < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (k <= 0)
				fail("%s", "the worker ended before DONE");
			rlen += (size_t)k;
		}
	}
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail("cannot open %s", path);
	size_t cap = 4096, n = 0;
	char *p = malloc(cap);
	size_t k;
	while (p && (k = fread(p + n, 1, cap - n, f)) > 0) {
		n += k;
		if (n == cap)
			p = realloc(p, cap *= 2);
	}
	fclose(f);
	if (!p)
		fail("%s", "out of memory");
	*len = n;
	return p;
}

static void
usage(void)
{
	fprintf(stderr, "usage: lua-replay [-s SEED] [-t TIME_MS] [-n CALLS] [-c CHUNK] "
	    "[-m MEM_BYTES] [-i INSNS] [-S SERVICE] [-a ARG]... [-e VAR=VALUE]... WORKER SCRIPT "
	    "[INPUT]\n");
	exit(64);
}

int
main(int argc, char **argv)
{
	uint64_t seed = 1, time_ms = 1700000000000ull, mem = 64ull << 20, insns = 100000000ull;
	unsigned ncalls = 3;
	size_t chunk = 1000;
	const char *args[WIRE_MAX_ARGS], *service = "det";
	char *env[64];
	int nargs = 0, nenv = 0, o;
	while ((o = getopt(argc, argv, "s:t:n:c:m:i:S:a:e:")) != -1) {
		switch (o) {
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 't': time_ms = strtoull(optarg, NULL, 0); break;
		case 'n': ncalls = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'c': chunk = strtoul(optarg, NULL, 0); break;
		case 'm': mem = strtoull(optarg, NULL, 0); break;
		case 'i': insns = strtoull(optarg, NULL, 0); break;
		case 'S': service = optarg; break;
		case 'a':
			if (nargs == WIRE_MAX_ARGS)
				usage();
			args[nargs++] = optarg;
			break;
		case 'e':
			if (nenv == 63)
				usage();
			env[nenv++] = optarg;
			break;
		default: usage();
		}
	}
	env[nenv] = NULL;
	if (argc - optind < 2 || argc - optind > 3 || chunk == 0)
		usage();
	const char *worker = argv[optind], *script = argv[optind + 1];
	size_t slen, ilen = 0;
	char *src = slurp(script, &slen);
	char *input = argc - optind == 3 ? slurp(argv[optind + 2], &ilen) : NULL;
	const char *base = strrchr(script, '/');
	base = base ? base + 1 : script;

	signal(SIGPIPE, SIG_IGN);
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		fail("%s", "pipe failed");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	char *cargv[] = {"meshd-lua", NULL};
	int rc = posix_spawn(&child, worker, &fa, NULL, cargv, env);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		errno = rc;
		fail("cannot start %s", worker);
	}
	close(in[0]);
	close(out[1]);
	to_fd = in[1];
	from_fd = out[0];
	fcntl(to_fd, F_SETFL, O_NONBLOCK);
	rcap = 2 * (WIRE_MAX_BODY + WIRE_HDR);
	if (!(rbuf = malloc(rcap)))
		fail("%s", "out of memory");

	/* SCRIPT: chunk name, source, mem, instructions, largest string. */
	size_t s = wire_frame_begin(&q, T_SCRIPT, &rc);
	if (!rc) rc = wb_str(&q, base, strlen(base));
	if (!rc) rc = wb_str(&q, src, slen);
	if (!rc) rc = wb_u64(&q, mem);
	if (!rc) rc = wb_u64(&q, insns);
	if (!rc) rc = wb_u64(&q, 16u << 20);
	enc_check(wire_frame_end(&q, s, rc));

	for (unsigned k = 1; k <= ncalls; k++) {
		uint64_t id = 100 + k;
		char reqid[33];
		snprintf(reqid, sizeof reqid, "%032x", k);
		/* CALL: call, service, request id, time, seed, args. */
		s = wire_frame_begin(&q, T_CALL, &rc);
		if (!rc) rc = wb_u64(&q, id);
		if (!rc) rc = wb_str(&q, service, strlen(service));
		if (!rc) rc = wb_str(&q, reqid, 32);
		if (!rc) rc = wb_u64(&q, time_ms + 1000ull * (k - 1));
		if (!rc) rc = wb_u64(&q, seed + k - 1);
		if (!rc) rc = wb_u32(&q, (uint32_t)nargs);
		for (int i = 0; !rc && i < nargs; i++)
			rc = wb_str(&q, args[i], strlen(args[i]));
		enc_check(wire_frame_end(&q, s, rc));
		for (size_t off = 0; off < ilen; off += chunk)
			send_ref(T_INPUT, id, input + off, ilen - off < chunk ? ilen - off : chunk);
		send_ref(T_EOF, id, NULL, 0);
		run_until_done(id);
	}
	end_run();
	flush_some(1);
	close(to_fd);
	int st = 0;
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st))
		printf("EXIT %d\n", WEXITSTATUS(st));
	else
		printf("EXIT signal %d\n", WTERMSIG(st));
	free(src);
	free(input);
	free(rbuf);
	wbuf_free(&q);
	return 0;
}
