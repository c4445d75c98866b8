/*
 * badworker - a Lua worker that misbehaves, for tests: meshd runs it in
 * place of meshd-lua (MESHD_LUA=.../badworker).  It reads what meshd sends
 * (wproto.h) and, once a call comes, does what the script it was given asks
 * for in a line "-- badworker: MODE":
 *
 *   garbage    a frame of a type no worker sends
 *   huge       a frame head that announces more than any frame may hold
 *   cut        half of a frame, then exit
 *   exit       exit at once (status 3)
 *   badwrites  DONE with status 0 and a write list whose second write does
 *              not parse
 *   othercall  output and DONE for a call that is not its own, then
 *              garbage
 *
 * None of these may take meshd down: the call ends with an error, its state
 * unchanged, and the node serves on.  (It never confines itself: it is not
 * the thing under test.)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "wire.h"

#define WP_SCRIPT 0x60
#define WP_CALL 0x61
#define WP_OUT 0x70
#define WP_DONE 0x72

static void
put(const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t k = write(1, b, n);
		if (k <= 0)
			exit(1);
		b += k;
		n -= (size_t)k;
	}
}

static void
put_wbuf(struct wbuf *b)
{
	put(b->p, b->len);
	b->len = 0;
}

/* A DONE for call, with a write list of wl bytes that claims nwrites. */
static void
done(struct wbuf *b, uint64_t call, int32_t status, uint32_t nwrites, const void *w,
    size_t wl)
{
	int rc;
	size_t s = wire_frame_begin(b, WP_DONE, &rc);
	if (!rc) rc = wb_u64(b, call);
	if (!rc) rc = wb_u32(b, (uint32_t)status);
	if (!rc) rc = wb_u64(b, 0);
	if (!rc) rc = wb_u64(b, 0);
	if (!rc) rc = wb_u32(b, nwrites);
	if (!rc) rc = wb_raw(b, w, wl);
	if (wire_frame_end(b, s, rc))
		exit(1);
}

static void
misbehave(const char *mode, uint64_t call)
{
	struct wbuf b = {0};
	int rc;
	if (!strcmp(mode, "garbage")) {
		size_t s = wire_frame_begin(&b, 0x7e, &rc);
		if (!rc) rc = wb_raw(&b, "not a message at all", 20);
		if (wire_frame_end(&b, s, rc))
			exit(1);
		put_wbuf(&b);
	} else if (!strcmp(mode, "huge")) {
		uint8_t h[5] = {0x7f, 0xff, 0xff, 0xf0, WP_OUT};
		put(h, sizeof h);
	} else if (!strcmp(mode, "cut")) {
		uint8_t h[9] = {0, 0, 0, 100, WP_OUT, 0, 0, 0, 0};
		put(h, sizeof h);
		exit(0);
	} else if (!strcmp(mode, "exit")) {
		exit(3);
	} else if (!strcmp(mode, "badwrites")) {
		/* k = "v", then a write whose first byte is neither 0 nor 1 */
		static const uint8_t w[] = {0, 0, 0, 0, 1, 'k', 0, 0, 0, 1, 'v',
		    5, 0, 0, 0, 1, 'k', 0, 0, 0, 1, 'v'};
		done(&b, call, 0, 2, w, sizeof w);
		put_wbuf(&b);
	} else if (!strcmp(mode, "othercall")) {
		size_t s = wire_frame_begin(&b, WP_OUT, &rc);
		if (!rc) rc = wb_u64(&b, call + 1000);
		if (!rc) rc = wb_u8(&b, 1);
		if (!rc) rc = wb_raw(&b, "stolen\n", 7);
		if (wire_frame_end(&b, s, rc))
			exit(1);
		done(&b, call + 1000, 0, 0, NULL, 0);
		put_wbuf(&b);
		misbehave("garbage", call);
	}
	wbuf_free(&b);
}

int
main(void)
{
	static uint8_t buf[4u << 20];
	size_t len = 0;
	char mode[32] = "";
	for (;;) {
		struct wire_frame f;
		size_t used;
		int rc = wire_next_any(buf, len, 0, &f, &used);
		if (rc == 0) {
			if (f.type == WP_SCRIPT) {
				const char *m = memmem(f.p, f.len, "-- badworker: ", 14);
				if (m) {
					size_t i = 0;
					m += 14;
					while (i < sizeof mode - 1 && m + i < (const char *)f.p + f.len &&
					    m[i] >= 'a' && m[i] <= 'z') {
						mode[i] = m[i];
						i++;
					}
					mode[i] = 0;
				}
			} else if (f.type == WP_CALL && f.len >= 8) {
				misbehave(mode, be64_get(f.p));
			}
			memmove(buf, buf + used, len - used);
			len -= used;
			continue;
		}
		if (rc != BABL_EAGAIN || len == sizeof buf)
			return 1;
		ssize_t n = read(0, buf + len, sizeof buf - len);
		if (n <= 0)
			return 0;
		len += (size_t)n;
	}
}
