/*
 * proxy.h - hand a client's connection over to another node (the leader).
 *
 * A follower that receives a CALL or DEPLOY has already greeted the client
 * (HELLO/WELCOME) and read some of its bytes.  proxy_start takes the
 * client's stream and those bytes, dials the leader, greets it (HELLO,
 * then WELCOME expected), sends it the bytes, and from then on moves bytes
 * both ways until either side is done.  The proxy does not look inside
 * what it forwards beyond the frame boundaries of the leader's replies.
 *
 * Threads: everything after proxy_start runs in nng's aio callbacks; no
 * call blocks the caller's thread and nothing calls back into the caller.
 * Each proxy has its own lock; the set's lock guards only the list of
 * proxies.  proxy_start, proxy_set_count and proxy_set_close may be called
 * from any one thread that is not an nng callback.
 *
 * Ownership: the client stream belongs to the proxy from the moment
 * proxy_start is called, whatever it returns; the proxy closes and frees
 * it.  The bytes pre[0..prelen) are copied.
 *
 * Backpressure: each direction has one buffer and at most one receive in
 * flight, and a side is read again only once what was read from it has
 * been sent in full to the other side.  A client that does not read holds
 * back the leader, and a leader that does not read holds back the client.
 * Memory per proxy: about PROXY_FRAME_MAX each way (or prelen, if larger,
 * client to leader).
 *
 * Framing guarantee: the client receives only whole frames from the
 * proxy.  The leader's replies are forwarded one whole frame at a time
 * (a frame is at most PROXY_FRAME_MAX bytes, prefix included); a partial
 * frame left when the leader's connection fails is dropped, never sent.
 *
 * Errors the client sees, as one ERROR frame after the whole frames
 * forwarded before it:
 *   - the leader cannot be dialled within PROXY_DIAL_MS, or does not
 *     answer HELLO with WELCOME within PROXY_GREET_MS: BABL_EUNREACH,
 *     "cannot reach the leader at URL: why" (an ERROR from the leader in
 *     place of WELCOME is forwarded as it is instead);
 *   - the leader's connection fails, or it sends a malformed frame, before
 *     an EXIT or ERROR frame was forwarded: BABL_EUNREACH, "the connection
 *     to the leader (URL) was lost mid-call; retry (with --id KEY it runs
 *     at most once)".  After an EXIT or ERROR nothing is added.
 * BABL_EUNREACH is what babl_exit_code maps to 69 (unavailable).
 *
 * Ending: when the client's side fails or closes, the leader's connection
 * is closed (a call the leader runs for it is then cancelled there).  When
 * the leader's side ends, what was received from it in whole frames is
 * sent to the client, then the ERROR above if one is due; then the proxy
 * waits up to PROXY_LINGER_MS for the client to close (reading and
 * dropping what it still sends), so that closing first cannot make the
 * client lose the last frame.
 *
 * Errors are negative BABL_E* codes (err.h).
 */
#ifndef MESHD_PROXY_H
#define MESHD_PROXY_H

#include <nng/nng.h>
#include <stddef.h>

#include "wire.h"

#define PROXY_DIAL_MS 5000    /* to connect to the leader */
#define PROXY_GREET_MS 10000  /* for the leader's WELCOME, after connecting */
#define PROXY_LINGER_MS 5000  /* for the client to close after the last frame */
#define PROXY_CLOSE_MS 5000   /* proxy_set_close waits this long, at most */
#define PROXY_FRAME_MAX (WIRE_HDR + WIRE_MAX_BODY)
#define PROXY_PRE_MAX (4 * PROXY_FRAME_MAX) /* bytes proxy_start accepts */

struct proxy_set;

/* An empty set: 0 and *out, or BABL_ENOMEM (*out untouched). */
int proxy_set_open(struct proxy_set **out);

/*
 * Close every proxy's streams, wait until all their callbacks have
 * finished (PROXY_CLOSE_MS at most), and free the set.  If some proxy has
 * not finished by then (nng did not complete an operation), a warning is
 * logged and the set and those proxies are left allocated.  NULL is a
 * no-op.
 */
void proxy_set_close(struct proxy_set *ps);

/*
 * A client whose leader could not be dialled, or whose connection to it
 * failed before the leader's WELCOME (it may have just died; a time-out is
 * not such a failure), is handed back instead of being told so: nothing
 * was forwarded either way yet.  fn gets the client stream (now the
 * caller's) and the bytes it had sent (borrowed for the call).  fn runs on
 * an nng thread: it must only queue.
 */
typedef void (*proxy_back_fn)(void *arg, nng_stream *client, const void *pre, size_t prelen);
void proxy_set_back(struct proxy_set *ps, proxy_back_fn fn, void *arg);

/* The number of proxies in the set that have not finished yet. */
unsigned proxy_set_count(struct proxy_set *ps);

/*
 * Take over client, an established stream whose handshake is done, dial
 * url (tcp:// or ipc://), and forward pre[0..prelen) then both directions
 * as described above.  Returns 0 once the proxy is under way, or:
 *   BABL_EINPUT  ps or client NULL, url NULL or not a stream URL nng
 *                knows, prelen over PROXY_PRE_MAX or pre NULL with
 *                prelen > 0;
 *   BABL_ENOMEM  out of memory.
 * On error the client stream is still taken care of: when there is a set
 * and memory enough, the client is sent an ERROR frame saying why before
 * it is closed (in the background, as for a running proxy); otherwise it
 * is closed and freed at once.
 */
int proxy_start(struct proxy_set *ps, nng_stream *client, const char *url,
    const void *pre, size_t prelen);

#endif
