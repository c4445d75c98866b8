/*
 * lworker.h - meshd's side of a Lua worker process (meshd-lua): start it
 * confined, queue messages to it, read and split its messages.  One worker
 * runs the calls of one service version; the node decides when to start
 * and stop workers and what the messages mean.
 */
#ifndef MESHD_LWORKER_H
#define MESHD_LWORKER_H

#include <stdint.h>
#include <sys/types.h>

#include "bundle.h"
#include "sbx.h"
#include "wire.h"

struct lw {
	struct lw *next;
	uint8_t vid[32];   /* the service version it runs */
	pid_t pid;
	int fd_to, fd_from; /* our ends: its stdin, its stdout */
	struct wbuf q;     /* bytes for it, not yet written */
	size_t qoff;
	uint8_t *rbuf;
	size_t rhead, rlen;
	unsigned slot;
	char workdir[4096];
	unsigned ncalls;   /* calls it is running */
	int solo;          /* the node's: it runs a call that must have it alone */
	int starved;       /* the node's: a call's input waits for room in q */
	int64_t idle_since;
	int dead;          /* its pipe closed or it exited */
	int exited;        /* reaped */
	int behind;        /* the node's: its caller reads too slowly, wait */
};

/* Bytes queued to a worker beyond which input is held back. */
#define LW_QUEUE_HIGH (1u << 20)

/*
 * Start a worker for bundle b (kind LUA) through the launcher: path is
 * meshd-lua, workdir an empty directory for it, slot its uid slot.  The
 * script and limits are queued as its first message.  0 or BABL_E*.
 */
int lw_start(struct lw *w, struct sbx *sbx, const char *path,
    const struct bundle *b, const char *workdir, unsigned slot);

/*
 * Queue a wproto ref frame (INPUT, ...) of the n bytes at p.  When nothing
 * else is queued and n is at least WP_WRITE_DIRECT, the frame is written at
 * once from p, and only what the pipe does not take is copied to the queue.
 * 0, or BABL_ENOMEM.
 */
int lw_queue_ref(struct lw *w, uint8_t type, uint64_t call, const void *p, size_t n);

/* Write what is queued while the pipe takes it: 0, or BABL_ECLOSED. */
int lw_flush(struct lw *w);

/*
 * Read what the worker wrote and hand each whole frame to fn.  Returns 0,
 * BABL_ECLOSED at end of file, BABL_EPROTO for a malformed frame (the
 * caller then kills the worker).
 */
typedef void (*lw_frame_fn)(void *arg, struct lw *w, const struct wire_frame *f);
int lw_read(struct lw *w, lw_frame_fn fn, void *arg);

/* Kill its process group and close our ends (reaping is the caller's). */
void lw_kill(struct lw *w);
void lw_free(struct lw *w);

#endif
