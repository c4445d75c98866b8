/*
 * conn.h - a client connection to a meshd node over an nng byte stream.
 *
 * conn_dial tries each URL of a comma-separated list in turn, completes the
 * HELLO/WELCOME handshake and returns the first that answers.  Sends and
 * receives block; one thread may send while another receives (conn_send*
 * are serialised by an internal lock).
 */
#ifndef BABL_CONN_H
#define BABL_CONN_H

#include <nng/nng.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct conn;

/*
 * Connect to the first reachable node in urls.  timeout_ms bounds each
 * attempt (0: 5 s to connect and 30 s for the node's greeting).  On failure returns BABL_EUNREACH (or the handshake's
 * error) and writes into why a one-line account of every URL tried.
 */
int conn_dial(struct conn **out, const char *urls, int timeout_ms, char *why,
    size_t whylen);
void conn_close(struct conn *c);

/* The node's name from WELCOME and the URL that answered (owned by c). */
const char *conn_node(const struct conn *c);
const char *conn_url(const struct conn *c);

/* Send a whole encoded buffer, or a frame header and a payload. */
int conn_send(struct conn *c, const void *p, size_t n);
int conn_send_data(struct conn *c, uint8_t type, const void *p, size_t n);

/*
 * Receive the next frame.  timeout_ms < 0 waits for ever.  The frame
 * borrows from c's buffer until the next conn_recv.  Returns 0,
 * BABL_ECLOSED, BABL_ETIMEDOUT, BABL_EPROTO or BABL_ETOOBIG.
 */
int conn_recv(struct conn *c, struct wire_frame *f, int timeout_ms);

/* 1 if a whole frame (or a malformed one) is already buffered, so that
 * conn_recv returns without waiting: a client that multiplexes calls sends
 * what it has gathered only before it would wait. */
int conn_ready(const struct conn *c);

/* Close the sending side's interest: wake a blocked conn_recv with ECLOSED. */
void conn_shutdown(struct conn *c);

/* Bytes sent and received so far (for --progress). */
void conn_counts(const struct conn *c, uint64_t *sent, uint64_t *received);

/*
 * nng_stream_dialer_alloc and nng_stream_listener_alloc for babl's frames:
 * on tcp, TCP_NODELAY is set.  nng leaves it off for byte streams, and then
 * a small frame sent right behind another (a call's EOF behind its input, an
 * EXIT behind the output) waits for the peer's delayed acknowledgement,
 * about 40 ms on Linux.  Transports without the option (ipc) skip it.
 * Returns nng's error code.
 */
int conn_dialer_alloc(nng_stream_dialer **d, const char *url);
int conn_listener_alloc(nng_stream_listener **l, const char *url);

#endif
