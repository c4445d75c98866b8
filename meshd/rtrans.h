/*
 * rtrans.h - the Raft transport: raft_msg between meshd nodes over nng.
 *
 * Sockets: each transport listens with one pull0 socket, which receives
 * from every peer, and keeps one push0 socket per peer that dials the
 * peer's listen URL (tcp:// or ipc://).  nng redials a lost or refused
 * connection on its own, waiting RTRANS_RECONN_MIN_MS at first and
 * doubling up to RTRANS_RECONN_MAX_MS, so a peer that starts late or
 * restarts gets its messages once it listens again: within that much of
 * its start, which is why the ceiling is short (a restarted follower's
 * catch-up waited for this redial, up to a second, before the leader sent
 * it anything).  A dial of a node that is down costs a refused connection.
 *
 * Threads: the transport belongs to one thread (meshd's main thread),
 * which calls every rtrans_ function.  nng's callbacks only queue what
 * completed and write 1 to wake_fd (an eventfd the caller polls); decoding
 * and the calls back into the caller happen in rtrans_recv, on the
 * caller's thread.  The caller must call rtrans_recv each time wake_fd is
 * readable (after reading it, or not: a spurious call is cheap).
 *
 * Sending: rtrans_send encodes the message and queues it for its peer; it
 * never blocks.  Each peer has one nng message in flight at a time; what
 * queues meanwhile leaves in the next one, several raft messages in one
 * nng message, which amortises nng's cost per message (about 30 us).
 * A peer's queue is bounded in messages and bytes: when a new message
 * does not fit, the oldest messages that are not snapshot chunks are
 * dropped to make room (then, if that is not enough, the oldest of any
 * type), and each drop is counted.  Raft tolerates the loss.  A batch in
 * flight that cannot be delivered within send_timeout_ms (no connection)
 * is dropped and counted, so that what is queued behind it is fresh.
 *
 * On the wire, one nng message is a batch:
 *	u8 version (1), then frames: u32 length (big-endian), length bytes
 *	of one raft_msg_encode'd message.
 * An encoded raft message is at most max_msg bytes and a batch at most
 * max(batch_bytes, max_msg + 4) + 1 bytes; a larger one received counts
 * one malformed (peers should share max_msg and batch_bytes), and nng
 * refuses those over four times that.  A batch with a broken frame counts
 * one malformed and its
 * rest is dropped (the frames before it are delivered); a frame that does
 * not decode, or whose message is not addressed to this node, counts one
 * malformed and is dropped.
 *
 * Errors are negative BABL_E* codes (err.h).
 */
#ifndef MESHD_RTRANS_H
#define MESHD_RTRANS_H

#include <stddef.h>
#include <stdint.h>

#include "raft.h"

#define RTRANS_MAX_PEERS RAFT_MAX_NODES
#define RTRANS_RECONN_MIN_MS 50
#define RTRANS_RECONN_MAX_MS 200

struct raft_msg;

struct rtrans_config {
	size_t max_msg;          /* largest encoded raft message */
	size_t batch_bytes;      /* bytes of raft messages per nng message */
	unsigned queue_msgs;     /* raft messages queued per peer, at most */
	size_t queue_bytes;      /* bytes queued per peer, at most */
	unsigned recv_queue;     /* received nng messages waiting, at most */
	unsigned recv_budget;    /* raft messages handed out per rtrans_recv */
	unsigned send_timeout_ms; /* how long a batch waits for a connection */
};

/* Fill c with the defaults: max_msg 4 MiB, batch_bytes 256 KiB, 8192
 * messages and 64 MiB per peer, 256 received batches, 4096 messages per
 * rtrans_recv, a send timeout of 2 s. */
void rtrans_config_default(struct rtrans_config *c);

struct rtrans_peer_stats {
	uint64_t id;
	int connected;          /* 1 if a connection to the peer is up */
	unsigned queued;        /* raft messages waiting, not counting a batch in flight */
	size_t queued_bytes;
	uint64_t sent, dropped;
};

struct rtrans_stats {
	uint64_t sent;      /* raft messages handed to nng for sending */
	uint64_t batches;   /* nng messages sent */
	uint64_t received;  /* raft messages handed to the callback */
	uint64_t dropped;   /* raft messages dropped: full queues, failed sends */
	uint64_t malformed; /* received frames or batches that did not decode */
	unsigned npeers;
	struct rtrans_peer_stats peers[RTRANS_MAX_PEERS];
};

struct rtrans;

/*
 * Listen on listen_url for peers (a tcp:// URL may name port 0: see
 * rtrans_url).  self_id is this node's raft id: received messages must be
 * addressed to it.  wake_fd is the caller's eventfd.  cfg may be NULL for
 * the defaults; it is copied.  Returns 0 and *out, BABL_EINPUT for a bad
 * argument, BABL_EUNREACH if the URL cannot be listened on, BABL_ENOMEM.
 */
int rtrans_open(struct rtrans **out, uint64_t self_id, const char *listen_url,
    int wake_fd);
int rtrans_open_cfg(struct rtrans **out, uint64_t self_id,
    const char *listen_url, int wake_fd, const struct rtrans_config *cfg);

/* Stop: close every socket, drop everything queued.  NULL is a no-op. */
void rtrans_close(struct rtrans *t);

/* The URL peers should dial: the listen URL, with the port a tcp:// port 0
 * was given.  Valid until rtrans_close. */
const char *rtrans_url(const struct rtrans *t);

/*
 * Start sending to peer id at url (its listen URL).  Dialing happens in
 * the background; messages queue until a connection is up.  Adding an id
 * that exists with the same URL does nothing; with another URL, the peer
 * is replaced (its queue is dropped).  Returns 0, BABL_EINPUT for id 0,
 * the own id or a bad URL, BABL_ELIMIT beyond RTRANS_MAX_PEERS,
 * BABL_ENOMEM.
 */
int rtrans_add_peer(struct rtrans *t, uint64_t id, const char *url);

/* Stop sending to peer id and drop its queue: 0 or BABL_ENOENT. */
int rtrans_remove_peer(struct rtrans *t, uint64_t id);

/*
 * Queue m for peer m->to (m->from should be this node).  Never blocks.
 * Returns 0 (also when older messages were dropped to make room),
 * BABL_ENOENT for an unknown peer, BABL_EINPUT for a message that cannot
 * be encoded, BABL_ETOOBIG if it encodes to more than cfg.max_msg bytes,
 * BABL_ENOMEM.
 */
int rtrans_send(struct rtrans *t, const struct raft_msg *m);

/* Called with each received message; m and what it points to are valid
 * only during the call. */
typedef void (*rtrans_recv_fn)(void *ctx, const struct raft_msg *m);

/*
 * Handle what completed since the last call: finished sends (and the
 * batches queued behind them), and received messages, each handed to fn,
 * at most cfg.recv_budget of them.  If more wait, wake_fd is written again
 * so that the caller comes back.  Returns the number of messages handed
 * to fn.
 */
int rtrans_recv(struct rtrans *t, rtrans_recv_fn fn, void *ctx);

void rtrans_stats(const struct rtrans *t, struct rtrans_stats *st);

#endif
