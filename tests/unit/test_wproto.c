/*
 * test_wproto.c - the ref frames between meshd and a Lua worker, and
 * lw_queue_ref, which writes a large one straight from the caller's bytes:
 * through a real non-blocking pipe that takes all of it, part of its head,
 * part of its bytes or nothing, the bytes that come out of the pipe are
 * always exactly the frame wp_enc_ref encodes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "lworker.h"
#include "wire.h"
#include "wproto.h"

#include "t.h"

static void
fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 131 + seed);
}

static void
case_head_and_bytes(void)
{
	static uint8_t p[70000];
	struct wbuf a = {0}, b = {0};
	fill(p, sizeof p, 1);
	T_EQ_INT(wp_enc_ref(&a, WP_OUT, 77, 2, p, sizeof p), 0);
	T_EQ_INT(wp_enc_ref_head(&b, WP_OUT, 77, 2, sizeof p), 0);
	T_EQ_INT(b.len + sizeof p, a.len);
	T_EQ_MEM(a.p, b.p, b.len);
	T_EQ_MEM(a.p + b.len, p, sizeof p);
	struct wire_frame f;
	size_t used;
	T_EQ_INT(wire_next_any(a.p, a.len, 0, &f, &used), 0);
	T_EQ_INT(used, a.len);
	struct wp_ref r;
	T_EQ_INT(wp_dec_ref(&f, &r), 0);
	T_EQ_INT(r.call, 77);
	T_EQ_INT(r.stream, 2);
	T_EQ_INT(r.bytes.len, sizeof p);
	/* Too large for a frame: refused, nothing left behind. */
	size_t before = b.len;
	T_EQ_INT(wp_enc_ref_head(&b, WP_OUT, 1, 1, WIRE_MAX_BODY), BABL_ETOOBIG);
	T_EQ_INT(b.len, before);
	free(a.p);
	free(b.p);
}

/* Read what the pipe holds into got (appending). */
static void
drain(int fd, struct wbuf *got)
{
	uint8_t tmp[65536];
	ssize_t k;
	while ((k = read(fd, tmp, sizeof tmp)) > 0)
		T_EQ_INT(wb_raw(got, tmp, (size_t)k), 0);
}

/*
 * A pipe of 4 KiB with room left for `room` bytes; queue a 40 KiB ref
 * after `queued` bytes already waiting in the queue; then empty pipe and
 * queue in turns.  The pipe must carry the filler, the waiting bytes, then
 * the frame.
 */
static void
through_pipe(size_t room, size_t queued)
{
	static uint8_t p[40000], pre[300];
	int fds[2];
	T_ASSERT(pipe2(fds, O_NONBLOCK) == 0);
	T_ASSERT(fcntl(fds[1], F_SETPIPE_SZ, 4096) >= 0);
	fill(p, sizeof p, 3);
	fill(pre, sizeof pre, 9);
	size_t cap = (size_t)fcntl(fds[1], F_GETPIPE_SZ);
	uint8_t filler[65536];
	memset(filler, 0xee, sizeof filler);
	T_ASSERT(write(fds[1], filler, cap - room) == (ssize_t)(cap - room));

	struct lw w;
	memset(&w, 0, sizeof w);
	w.fd_to = fds[1];
	T_EQ_INT(wb_raw(&w.q, pre, queued), 0);
	T_EQ_INT(lw_queue_ref(&w, WP_INPUT, 5, p, sizeof p), 0);
	T_EQ_INT(w.dead, 0);

	struct wbuf want = {0}, got = {0};
	T_EQ_INT(wb_raw(&want, filler, cap - room), 0);
	T_EQ_INT(wb_raw(&want, pre, queued), 0);
	T_EQ_INT(wp_enc_ref(&want, WP_INPUT, 5, 0, p, sizeof p), 0);
	for (int i = 0; i < 1000 && got.len < want.len; i++) {
		drain(fds[0], &got);
		T_EQ_INT(lw_flush(&w), 0);
	}
	drain(fds[0], &got);
	T_EQ_INT(got.len, want.len);
	T_EQ_MEM(got.p, want.p, want.len);
	T_EQ_INT(w.q.len - w.qoff, 0);
	close(fds[0]);
	close(fds[1]);
	free(w.q.p);
	free(want.p);
	free(got.p);
}

static void
case_queue_ref(void)
{
	through_pipe(4096, 0); /* an empty pipe takes the head and 4 KiB */
	through_pipe(0, 0);    /* a full one: all of it queued */
	through_pipe(5, 0);    /* a part of the head */
	through_pipe(20, 0);   /* the head and a few bytes */
	through_pipe(4096, 100); /* bytes waiting: no direct write */
}

static const struct t_case cases[] = {
	{"head_and_bytes", case_head_and_bytes},
	{"queue_ref", case_queue_ref},
	{0},
};

int
main(int argc, char **argv)
{
	return t_run(argc, argv, cases);
}
