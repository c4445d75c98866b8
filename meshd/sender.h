/*
 * sender.h - a thread that delivers queries to a node, in order, retrying.
 *
 * A member that cannot propose (a follower, a guard) sends its digest
 * batches and reports as queries to its own client URL; the node hands them
 * to the leader like any client's (proxy.h), which proposes them.  Each
 * item is retried (every SENDER_RETRY_MS) until a node answers EXIT 0; an
 * ERROR that is not about reachability drops it, with a log line.  At most
 * SENDER_MAX items wait: beyond that the oldest is dropped (and counted).
 * The thread uses libbabl's blocking client (conn.h); it never forks.
 */
#ifndef MESHD_SENDER_H
#define MESHD_SENDER_H

#include <stddef.h>
#include <stdint.h>

#define SENDER_MAX 1024
#define SENDER_RETRY_MS 200

struct sender;

int sender_start(struct sender **out, const char *url);
/* Stop the thread (what is queued is dropped) and free.  NULL is a no-op. */
void sender_stop(struct sender *s);
/* Queue a query (what, arg bytes copied): 0 or BABL_ENOMEM. */
int sender_put(struct sender *s, uint8_t what, const void *arg, size_t len);
/* Items waiting, delivered and dropped so far. */
void sender_stats(struct sender *s, unsigned *waiting, uint64_t *sent, uint64_t *dropped);

#endif
