/*
 * lua-worker.c - meshd-lua, the long-lived process that runs one Lua
 * service's calls.  meshd starts it through the sandbox launcher (so it is
 * already confined: namespaces, uid, rlimits, the native seccomp filter),
 * sends the script once, then calls.  Once the script has arrived the
 * worker narrows itself further with its own seccomp filter: no exec, no
 * opening files, no sockets; it only reads its stdin, writes its stdout and
 * stderr, and allocates memory.
 *
 * Each call is a fresh sandboxed Lua state (lsb.h) run as a coroutine, so
 * calls waiting for input or a kv value do not hold up the others.
 */
#include <errno.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "err.h"
#include "lsb.h"
#include "wire.h"
#include "wproto.h"

#define RBUF_CAP (2 * (WIRE_MAX_BODY + WIRE_HDR))

/*
 * In a sanitizer build the runtime's own machinery (its leak check reads
 * /proc and stops threads at exit) would trip the narrowed filter: there,
 * refused calls fail instead of killing, and leak checking is off.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "detect_leaks=0";
}
#else
#define SANITIZED 0
#endif
#define FLUSH_AT (256u * 1024)

struct wcall {
	struct wcall *next;
	uint64_t id;
	struct lsb *l;
	int state; /* LSB_WAIT_* while suspended */
	int need_resume;
	uint64_t unacked; /* output bytes sent to meshd and not acknowledged */
};

static struct wcall *calls;
static struct wbuf out;
static char *script_name, *script_src;
static size_t script_len;
static struct lsb_prog *prog; /* the script, compiled once */
static struct lsb_limits limits;

static void
die(const char *what)
{
	fprintf(stderr, "meshd-lua: %s\n", what);
	exit(70);
}

/* Write out, then the n bytes at p (none when p is NULL), all of them. */
static void
flush_out_and(const char *p, size_t n)
{
	struct iovec v[2] = {{out.p, out.len}, {(void *)p, p ? n : 0}};
	int i = 0;
	size_t done = 0;
	for (;;) {
		for (; i < 2 && done >= v[i].iov_len; i++)
			done -= v[i].iov_len;
		if (i == 2)
			break;
		v[i].iov_base = (char *)v[i].iov_base + done;
		v[i].iov_len -= done;
		ssize_t w = writev(1, v + i, 2 - i);
		if (w < 0 && errno == EINTR)
			w = 0;
		else if (w <= 0)
			exit(0); /* meshd is gone */
		done = (size_t)w;
	}
	out.len = 0;
}

static void
flush_out(void)
{
	flush_out_and(NULL, 0);
}

static int
host_write(void *ud, int stream, const char *p, size_t n)
{
	struct wcall *c = ud;
	while (n) {
		size_t k = n > WIRE_CHUNK ? WIRE_CHUNK : n;
		if (k >= WP_WRITE_DIRECT) {
			/* (a large write goes from the script's string to the
			 * pipe, not through out) */
			if (wp_enc_ref_head(&out, WP_OUT, c->id, (uint8_t)stream, k))
				return -1;
			flush_out_and(p, k);
		} else if (wp_enc_ref(&out, WP_OUT, c->id, (uint8_t)stream, p, k)) {
			return -1;
		}
		p += k;
		n -= k;
		c->unacked += k;
		if (out.len >= FLUSH_AT)
			flush_out();
	}
	return 0;
}

/* A call whose output meshd has not passed on to its caller pauses (lsb's
 * host.full) until meshd acknowledges more: a caller that does not read
 * holds up its own call, not the others that share this worker. */
static int
host_full(void *ud)
{
	struct wcall *c = ud;
	return c->unacked > WP_OUT_WINDOW;
}

static const struct lsb_host host = {host_write, host_full};

struct wctx {
	size_t bytes;
	uint32_t n;
	int over;
};

static void
put_write(void *arg, const char *k, size_t kl, int deleted, const char *v, size_t vl)
{
	struct wctx *x = arg;
	x->bytes += kl + vl + 9;
	if (x->bytes > WP_MAX_WRITES_BYTES) {
		x->over = 1;
		return;
	}
	if (wp_enc_write(&out, deleted, k, kl, v, vl))
		die("out of memory");
	x->n++;
}

static void
count_write(void *arg, const char *k, size_t kl, int deleted, const char *v, size_t vl)
{
	struct wctx *x = arg;
	(void)k;
	(void)deleted;
	(void)v;
	x->bytes += kl + vl + 9;
	x->n++;
}

static void
finish(struct wcall *c, int status)
{
	uint64_t insns, peak;
	size_t mark;
	struct wctx x = {0, 0, 0};
	lsb_usage(c->l, &insns, &peak);
	if (status == 0) {
		lsb_writes(c->l, count_write, &x);
		if (x.bytes > WP_MAX_WRITES_BYTES) {
			char msg[128];
			snprintf(msg, sizeof msg, "%s: the call's kv writes exceed %u KiB; none were kept\n",
			    script_name, WP_MAX_WRITES_BYTES / 1024);
			host_write(c, 2, msg, strlen(msg));
			status = 1;
		}
	}
	if (wp_enc_done_begin(&out, c->id, status, insns, peak, &mark))
		die("out of memory");
	x = (struct wctx){0, 0, 0};
	if (status == 0)
		lsb_writes(c->l, put_write, &x);
	if (wp_enc_done_end(&out, mark, x.n))
		die("out of memory");
	struct wcall **pp = &calls;
	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	lsb_free(c->l);
	free(c);
}

/* Act on a call's state after starting or resuming it. */
static void
settle(struct wcall *c, int rc, int status)
{
	if (rc < 0) {
		char msg[160];
		snprintf(msg, sizeof msg, "%s: the call could not run: %s\n", script_name, babl_strerror(rc));
		host_write(c, 2, msg, strlen(msg));
		finish(c, LSB_EXIT_ERROR);
		return;
	}
	c->state = rc;
	if (rc == LSB_DONE) {
		finish(c, status);
	} else if (rc == LSB_WAIT_KV) {
		const char *k;
		size_t kl;
		lsb_kv_request(c->l, &k, &kl);
		if (wp_enc_kvget(&out, c->id, lsb_kv_is_keys(c->l), k, kl))
			die("out of memory");
	}
}

static struct wcall *
find(uint64_t id)
{
	for (struct wcall *c = calls; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void
start_call(const struct wire_frame *f)
{
	struct wp_call m;
	const char *args[WIRE_MAX_ARGS];
	char *copies[WIRE_MAX_ARGS];
	char service[257], reqid[257];
	if (wp_dec_call(f, &m) || m.service.len > 256 || m.reqid.len > 256)
		die("malformed CALL from meshd");
	memcpy(service, m.service.p, m.service.len);
	service[m.service.len] = 0;
	memcpy(reqid, m.reqid.p, m.reqid.len);
	reqid[m.reqid.len] = 0;
	for (uint32_t i = 0; i < m.nargs; i++) {
		copies[i] = wire_strdup(m.args[i]);
		if (!copies[i])
			die("out of memory");
		args[i] = copies[i];
	}
	struct wcall *c = calloc(1, sizeof *c);
	if (!c)
		die("out of memory");
	c->id = m.call;
	c->next = calls;
	calls = c;
	struct lsb_req req = {service, reqid, m.time_ms, m.seed, (int)m.nargs, args};
	int state = 0, status = 0;
	int rc = prog ? lsb_start_prog(&c->l, &limits, &host, c, prog, &req, &state, &status)
	              : lsb_start(&c->l, &limits, &host, c, script_name, script_src,
	                    script_len, &req, &state, &status);
	for (uint32_t i = 0; i < m.nargs; i++)
		free(copies[i]);
	if (rc) {
		char msg[160];
		snprintf(msg, sizeof msg, "%s: cannot create a Lua state: %s\n", script_name,
		    babl_strerror(rc));
		host_write(c, 2, msg, strlen(msg));
		calls = c->next;
		size_t mark;
		wp_enc_done_begin(&out, c->id, LSB_EXIT_MEMORY, 0, 0, &mark);
		wp_enc_done_end(&out, mark, 0);
		free(c);
		return;
	}
	settle(c, state, status);
}

static void
resume(struct wcall *c)
{
	int status = 0;
	int rc = lsb_resume(c->l, &status);
	settle(c, rc, status);
}

static void
handle(const struct wire_frame *f)
{
	struct wp_ref r;
	struct wcall *c;
	switch (f->type) {
	case WP_CALL:
		start_call(f);
		return;
	case WP_INPUT:
	case WP_EOF:
	case WP_KILL:
	case WP_ACK:
		if (wp_dec_ref(f, &r))
			die("malformed message from meshd");
		if (!(c = find(r.call)))
			return; /* it has ended already */
		if (f->type == WP_ACK) {
			if (r.bytes.len != 8)
				die("malformed ACK from meshd");
			uint64_t n = be64_get((const uint8_t *)r.bytes.p);
			c->unacked = n < c->unacked ? c->unacked - n : 0;
			if (c->state == LSB_WAIT_OUTPUT && c->unacked <= WP_OUT_WINDOW)
				resume(c);
			return;
		}
		if (f->type == WP_KILL) {
			finish(c, 128 + SIGKILL);
			return;
		}
		if (f->type == WP_INPUT) {
			/* A call that waits for input reads the bytes where they
			 * are; what it leaves is copied (settle) before the
			 * frame's space is reused. */
			int lend = c->state == LSB_WAIT_INPUT;
			uint64_t id = c->id;
			int rc = lend ? lsb_feed_lend(c->l, r.bytes.p, r.bytes.len)
			              : lsb_feed(c->l, r.bytes.p, r.bytes.len);
			if (rc == 0 && lend) {
				resume(c);
				c = find(id);
				rc = c ? lsb_feed_settle(c->l) : 0;
			}
			if (rc) {
				const char *msg = "input buffer limit reached\n";
				host_write(c, 2, msg, strlen(msg));
				finish(c, LSB_EXIT_MEMORY);
			}
			return;
		}
		lsb_feed_eof(c->l);
		if (c->state == LSB_WAIT_INPUT)
			resume(c);
		return;
	case WP_KV: {
		struct wp_kv kv;
		if (wp_dec_kv(f, &kv))
			die("malformed KV from meshd");
		if (!(c = find(kv.call)) || c->state != LSB_WAIT_KV)
			return;
		lsb_kv_reply(c->l, kv.found, kv.value.p, kv.value.len);
		resume(c);
		return;
	}
	case WP_KEYS: {
		uint64_t id;
		uint32_t n;
		struct rd rest;
		if (wp_dec_keys(f, &id, &n, &rest))
			die("malformed KEYS from meshd");
		if (!(c = find(id)) || c->state != LSB_WAIT_KV)
			return;
		const char **keys = calloc(n + 1, sizeof *keys);
		size_t *lens = calloc(n + 1, sizeof *lens);
		if (!keys || !lens)
			die("out of memory");
		for (uint32_t i = 0; i < n; i++) {
			struct wire_str s = rd_str(&rest, WP_MAX_KEY);
			keys[i] = s.p;
			lens[i] = s.len;
		}
		if (rd_done(&rest))
			die("malformed KEYS from meshd");
		lsb_kv_reply_keys(c->l, keys, lens, n);
		free(keys);
		free(lens);
		resume(c);
		return;
	}
	default:
		die("unknown message from meshd");
	}
}

/* After the script has arrived nothing more may be opened or executed. */
static void
narrow(void)
{
	static const int allowed[] = {
		SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(writev), SCMP_SYS(poll),
		SCMP_SYS(ppoll), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap),
		SCMP_SYS(brk), SCMP_SYS(madvise), SCMP_SYS(exit), SCMP_SYS(exit_group),
		SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(futex),
		SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(tgkill), SCMP_SYS(clock_gettime),
		SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lseek),
		SCMP_SYS(sigaltstack),
	};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx)
		die("cannot build the worker's filter");
	for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0))
			die("cannot build the worker's filter");
	static const int killed[] = {SCMP_SYS(execve), SCMP_SYS(execveat),
	    SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(socket), SCMP_SYS(ptrace),
	    SCMP_SYS(fork), SCMP_SYS(vfork), SCMP_SYS(clone), SCMP_SYS(clone3)};
	for (size_t i = 0; i < sizeof killed / sizeof killed[0]; i++)
		seccomp_rule_add(ctx, SANITIZED ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_KILL_PROCESS,
		    killed[i], 0);
	if (seccomp_load(ctx))
		die("cannot install the worker's filter");
	seccomp_release(ctx);
}

int
main(int argc, char **argv)
{
	static uint8_t rbuf[RBUF_CAP];
	size_t head = 0, len = 0;
	int have_script = 0;
	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "meshd-lua is started by meshd, not by hand\n");
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		struct wire_frame f;
		size_t used;
		int rc = wire_next_any(rbuf + head, len, 0, &f, &used);
		if (rc == 0) {
			if (!have_script) {
				struct wp_script s;
				if (wp_dec_script(&f, &s))
					die("the first message was not the script");
				script_name = wire_strdup(s.chunkname);
				script_src = wire_strdup(s.source);
				script_len = s.source.len;
				limits.mem_bytes = s.mem_bytes;
				limits.instructions = s.instructions;
				limits.max_string = s.max_string;
				if (!script_name || !script_src)
					die("out of memory");
				have_script = 1;
				/* A script that does not compile is reported per call
				 * by lsb_start, with its message. */
				char err[256];
				if (lsb_prepare(&prog, script_name, script_src, script_len, err, sizeof err))
					prog = NULL;
				narrow();
			} else {
				handle(&f);
			}
			head += used;
			len -= used;
			continue;
		}
		if (rc != BABL_EAGAIN)
			die("malformed frame from meshd");
		if (out.len)
			flush_out();
		if (head && head + len > RBUF_CAP / 2) {
			memmove(rbuf, rbuf + head, len);
			head = 0;
		}
		ssize_t n = read(0, rbuf + head + len, RBUF_CAP - head - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0; /* meshd closed our stdin: time to go */
		len += (size_t)n;
	}
}
