/* lworker.c - starting and talking to Lua workers; see lworker.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "err.h"
#include "lworker.h"
#include "wproto.h"

#define RBUF_CAP (2 * (WIRE_MAX_BODY + WIRE_HDR))
/* Lua runs about 10^8 VM instructions a second here: the budget follows
 * the service's CPU limit. */
#define INSNS_PER_CPU_SEC 200000000ull

/*
 * The worker's address-space limit: the service's memory cap (which the
 * Lua allocator enforces per call) plus room for the worker itself.  A
 * sanitizer build reserves terabytes of shadow memory at start, so there
 * only the allocator's cap holds.
 */
#if defined(__SANITIZE_ADDRESS__)
#define WORKER_AS(mem) ((void)(mem), 0ull)
#else
#define WORKER_AS(mem) ((mem) ? (mem) + (256ull << 20) : 0ull)
#endif

int
lw_start(struct lw *w, struct sbx *sbx, const char *path, const struct bundle *b,
    const char *workdir, unsigned slot)
{
	int in[2], out[2];
	char *argv[] = {"meshd-lua", NULL};
	char *envp[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", "TZ=UTC", NULL};
	if (pipe2(in, O_CLOEXEC))
		return BABL_EIO;
	if (pipe2(out, O_CLOEXEC)) {
		close(in[0]);
		close(in[1]);
		return BABL_EIO;
	}
	int exe = open(path, O_RDONLY | O_CLOEXEC);
	struct sbx_spec spec = {
		.path = path, .exe_fd = exe, .argv = argv, .envp = envp,
		.workdir = workdir, .slot = slot,
		/* The worker's own address space holds every call's state.  No
		 * file-size limit: its stderr is meshd's, which may be a file,
		 * and it cannot open files once started. */
		.lim = {WORKER_AS(b->lim.mem_bytes), 0, 0, 8, 64},
		.fd_in = in[0], .fd_out = out[1], .fd_err = 2,
	};
	int rc = exe < 0 ? BABL_ENOENT : sbx_spawn(sbx, &spec, &w->pid);
	if (exe >= 0)
		close(exe);
	close(in[0]);
	close(out[1]);
	if (rc) {
		close(in[1]);
		close(out[0]);
		return rc;
	}
	w->fd_to = in[1];
	w->fd_from = out[0];
	w->slot = slot;
	fcntl(w->fd_to, F_SETFL, O_NONBLOCK);
	fcntl(w->fd_from, F_SETFL, O_NONBLOCK);
	fcntl(w->fd_to, F_SETPIPE_SZ, 1 << 20);
	fcntl(w->fd_from, F_SETPIPE_SZ, 1 << 20);
	snprintf(w->workdir, sizeof w->workdir, "%s", workdir);
	if (!(w->rbuf = malloc(RBUF_CAP))) {
		lw_kill(w);
		return BABL_ENOMEM;
	}
	struct wp_script s = {
		{b->script, strlen(b->script)}, {b->source, b->source_len},
		b->lim.mem_bytes, (uint64_t)b->lim.cpu_secs * INSNS_PER_CPU_SEC,
		16u << 20,
	};
	if (!s.instructions)
		s.instructions = UINT64_MAX;
	rc = wp_enc_script(&w->q, &s);
	if (rc) {
		lw_kill(w);
		return rc;
	}
	return lw_flush(w);
}

int
lw_flush(struct lw *w)
{
	while (w->qoff < w->q.len && !w->dead) {
		ssize_t n = write(w->fd_to, w->q.p + w->qoff, w->q.len - w->qoff);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			w->dead = 1;
			return BABL_ECLOSED;
		}
		w->qoff += (size_t)n;
	}
	if (w->qoff == w->q.len) {
		w->q.len = 0;
		w->qoff = 0;
	} else if (w->qoff > (1u << 20)) {
		memmove(w->q.p, w->q.p + w->qoff, w->q.len - w->qoff);
		w->q.len -= w->qoff;
		w->qoff = 0;
	}
	return 0;
}

int
lw_queue_ref(struct lw *w, uint8_t type, uint64_t call, const void *p, size_t n)
{
	size_t head = w->q.len;
	int rc = wp_enc_ref_head(&w->q, type, call, 0, n);
	if (rc)
		return rc;
	size_t off = 0;
	if (w->qoff == head && n >= WP_WRITE_DIRECT && !w->dead) {
		/* Nothing else waits: the frame's head, then the bytes from p. */
		struct iovec v[2] = {{w->q.p + head, w->q.len - head}, {(void *)p, n}};
		ssize_t k;
		do
			k = writev(w->fd_to, v, 2);
		while (k < 0 && errno == EINTR);
		if (k < 0 && errno != EAGAIN)
			w->dead = 1;
		if (k > 0) {
			size_t done = (size_t)k, hl = w->q.len - head;
			if (done < hl) {
				w->qoff += done; /* (the rest of the head stays queued) */
			} else {
				w->q.len = w->qoff = 0;
				off = done - hl;
			}
		}
	}
	if (off < n && wb_raw(&w->q, (const uint8_t *)p + off, n - off))
		return BABL_ENOMEM;
	return 0;
}

int
lw_read(struct lw *w, lw_frame_fn fn, void *arg)
{
	if (w->rhead && w->rhead + w->rlen > RBUF_CAP / 2) {
		memmove(w->rbuf, w->rbuf + w->rhead, w->rlen);
		w->rhead = 0;
	}
	ssize_t n = read(w->fd_from, w->rbuf + w->rhead + w->rlen,
	    RBUF_CAP - w->rhead - w->rlen);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		w->dead = 1;
		return BABL_ECLOSED;
	}
	w->rlen += (size_t)n;
	for (;;) {
		struct wire_frame f;
		size_t used;
		int rc = wire_next_any(w->rbuf + w->rhead, w->rlen, 0, &f, &used);
		if (rc == BABL_EAGAIN)
			break;
		if (rc)
			return BABL_EPROTO;
		fn(arg, w, &f);
		w->rhead += used;
		w->rlen -= used;
		if (w->dead)
			break;
	}
	if (!w->rlen)
		w->rhead = 0;
	return 0;
}

void
lw_kill(struct lw *w)
{
	if (w->pid > 0)
		kill(-w->pid, SIGKILL);
	if (w->fd_to >= 0)
		close(w->fd_to);
	if (w->fd_from >= 0)
		close(w->fd_from);
	w->fd_to = w->fd_from = -1;
	w->dead = 1;
}

void
lw_free(struct lw *w)
{
	if (!w)
		return;
	if (w->fd_to >= 0 || w->fd_from >= 0)
		lw_kill(w);
	wbuf_free(&w->q);
	free(w->rbuf);
	free(w);
}
