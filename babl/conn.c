/* conn.c - client connections over nng streams; see conn.h. */
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "err.h"

#define RBUF_CAP (2 * (WIRE_MAX_BODY + WIRE_HDR))

struct conn {
	nng_stream *s;
	nng_aio *raio, *saio;
	pthread_mutex_t slock;
	uint8_t *rbuf;
	size_t rhead, rlen; /* unread bytes are rbuf[rhead .. rhead+rlen) */
	size_t consumed;    /* bytes of the frame handed out last time */
	char *node, *url;
	uint64_t sent, received;
};

static int
map_nng(int rv)
{
	switch (rv) {
	case 0: return 0;
	case NNG_ETIMEDOUT: return BABL_ETIMEDOUT;
	case NNG_ECLOSED: case NNG_ECONNRESET: case NNG_ECONNSHUT:
	case NNG_ECANCELED: return BABL_ECLOSED;
	case NNG_ENOMEM: return BABL_ENOMEM;
	default: return BABL_EIO;
	}
}

/* Send iovecs until every byte is gone; nng may send short. */
static int
send_all(struct conn *c, nng_iov *iov, unsigned niov)
{
	while (niov) {
		nng_aio_set_iov(c->saio, niov, iov);
		nng_stream_send(c->s, c->saio);
		nng_aio_wait(c->saio);
		int rv = nng_aio_result(c->saio);
		if (rv)
			return map_nng(rv);
		size_t n = nng_aio_count(c->saio);
		c->sent += n;
		while (niov && n >= iov[0].iov_len) {
			n -= iov[0].iov_len;
			iov++;
			niov--;
		}
		if (niov) {
			iov[0].iov_buf = (uint8_t *)iov[0].iov_buf + n;
			iov[0].iov_len -= n;
		}
	}
	return 0;
}

int
conn_send(struct conn *c, const void *p, size_t n)
{
	nng_iov iov = {(void *)p, n};
	pthread_mutex_lock(&c->slock);
	int rc = send_all(c, &iov, 1);
	pthread_mutex_unlock(&c->slock);
	return rc;
}

int
conn_send_data(struct conn *c, uint8_t type, const void *p, size_t n)
{
	uint8_t hdr[5];
	nng_iov iov[2] = {{hdr, 5}, {(void *)p, n}};
	if (n > WIRE_MAX_BODY - 1)
		return BABL_ETOOBIG;
	wire_hdr(hdr, type, n);
	pthread_mutex_lock(&c->slock);
	int rc = send_all(c, iov, n ? 2 : 1);
	pthread_mutex_unlock(&c->slock);
	return rc;
}

int
conn_recv(struct conn *c, struct wire_frame *f, int timeout_ms)
{
	size_t used;
	c->rhead += c->consumed;
	c->rlen -= c->consumed;
	c->consumed = 0;
	for (;;) {
		int rc = wire_next(c->rbuf + c->rhead, c->rlen, 0, f, &used);
		if (rc == 0) {
			c->consumed = used;
			return 0;
		}
		if (rc != BABL_EAGAIN)
			return rc;
		/* Compact so that a whole frame always fits. */
		if (c->rhead && c->rhead + c->rlen > RBUF_CAP / 2) {
			memmove(c->rbuf, c->rbuf + c->rhead, c->rlen);
			c->rhead = 0;
		}
		nng_iov iov = {c->rbuf + c->rhead + c->rlen, RBUF_CAP - c->rhead - c->rlen};
		nng_aio_set_iov(c->raio, 1, &iov);
		nng_aio_set_timeout(c->raio, timeout_ms < 0 ? NNG_DURATION_INFINITE : timeout_ms);
		nng_stream_recv(c->s, c->raio);
		nng_aio_wait(c->raio);
		int rv = nng_aio_result(c->raio);
		if (rv)
			return map_nng(rv);
		size_t n = nng_aio_count(c->raio);
		if (n == 0)
			return BABL_ECLOSED;
		c->rlen += n;
		c->received += n;
	}
}

int
conn_ready(const struct conn *c)
{
	struct wire_frame f;
	size_t used;
	return wire_next(c->rbuf + c->rhead + c->consumed, c->rlen - c->consumed, 0, &f,
	    &used) != BABL_EAGAIN;
}

void
conn_shutdown(struct conn *c)
{
	if (c && c->s)
		nng_stream_close(c->s);
}

void
conn_close(struct conn *c)
{
	if (!c)
		return;
	if (c->s) {
		nng_stream_close(c->s);
	}
	nng_aio_free(c->raio);
	nng_aio_free(c->saio);
	if (c->s)
		nng_stream_free(c->s);
	pthread_mutex_destroy(&c->slock);
	free(c->rbuf);
	free(c->node);
	free(c->url);
	free(c);
}

const char *
conn_node(const struct conn *c)
{
	return c->node;
}

const char *
conn_url(const struct conn *c)
{
	return c->url;
}

void
conn_counts(const struct conn *c, uint64_t *sent, uint64_t *received)
{
	*sent = c->sent;
	*received = c->received;
}

/* TCP_NODELAY's result: a transport without the option (ipc) is fine. */
static int
nodelay_rc(int rv)
{
	return rv == NNG_ENOTSUP ? 0 : rv;
}

int
conn_dialer_alloc(nng_stream_dialer **d, const char *url)
{
	int rv = nng_stream_dialer_alloc(d, url);
	if (rv == 0 && (rv = nodelay_rc(nng_stream_dialer_set_bool(*d, NNG_OPT_TCP_NODELAY, true)))) {
		nng_stream_dialer_free(*d);
		*d = NULL;
	}
	return rv;
}

int
conn_listener_alloc(nng_stream_listener **l, const char *url)
{
	int rv = nng_stream_listener_alloc(l, url);
	if (rv == 0 && (rv = nodelay_rc(nng_stream_listener_set_bool(*l, NNG_OPT_TCP_NODELAY, true)))) {
		nng_stream_listener_free(*l);
		*l = NULL;
	}
	return rv;
}

static int
dial_one(const char *url, int timeout_ms, nng_stream **out)
{
	nng_stream_dialer *d;
	nng_aio *aio;
	int rv = conn_dialer_alloc(&d, url);
	if (rv)
		return rv;
	if ((rv = nng_aio_alloc(&aio, NULL, NULL))) {
		nng_stream_dialer_free(d);
		return rv;
	}
	/* A node busy accepting (its backlog full) says "try again": do,
	 * with a growing pause, until the attempt's time is up. */
	nng_time until = nng_clock() + (nng_time)timeout_ms;
	for (nng_duration pause = 2;; pause = pause < 100 ? pause * 2 : pause) {
		nng_aio_set_timeout(aio, timeout_ms);
		nng_stream_dialer_dial(d, aio);
		nng_aio_wait(aio);
		rv = nng_aio_result(aio);
		if (rv != NNG_EAGAIN || nng_clock() + (nng_time)pause >= until)
			break;
		nng_msleep(pause);
	}
	if (rv == 0)
		*out = nng_aio_get_output(aio, 0);
	nng_aio_free(aio);
	nng_stream_dialer_free(d);
	return rv;
}

static int
handshake(struct conn *c, int timeout_ms, char *err, size_t errlen)
{
	struct wbuf b = {0};
	struct wire_frame f;
	int rc = wire_enc_hello(&b, "babl");
	if (!rc)
		rc = conn_send(c, b.p, b.len);
	wbuf_free(&b);
	if (!rc)
		rc = conn_recv(c, &f, timeout_ms);
	if (rc) {
		snprintf(err, errlen, "handshake failed: %s", babl_strerror(rc));
		return rc;
	}
	if (f.type == WIRE_ERROR) {
		struct wire_error e;
		if (wire_dec_error(&f, &e) == 0) {
			snprintf(err, errlen, "refused: %.*s", (int)e.msg.len, e.msg.p);
			return e.code < 0 ? e.code : BABL_EPROTO;
		}
		snprintf(err, errlen, "malformed error frame");
		return BABL_EPROTO;
	}
	struct wire_welcome w;
	if (wire_dec_welcome(&f, &w) || w.version != WIRE_VERSION) {
		snprintf(err, errlen, "not a babl node, or protocol version mismatch");
		return BABL_EPROTO;
	}
	c->node = wire_strdup(w.node);
	return c->node ? 0 : BABL_ENOMEM;
}

int
conn_dial(struct conn **out, const char *urls, int timeout_ms, char *why,
    size_t whylen)
{
	char *list = strdup(urls), *save = NULL;
	size_t wl = 0;
	int last = BABL_EUNREACH;
	if (!list)
		return BABL_ENOMEM;
	/* Without a caller's bound: 5 s to connect, and 30 s for a node that
	 * answered the connection but is too busy to greet us at once. */
	int hello_ms = timeout_ms > 0 ? timeout_ms : 30000;
	if (timeout_ms <= 0)
		timeout_ms = 5000;
	if (whylen)
		why[0] = 0;
	for (char *u = strtok_r(list, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
		while (*u == ' ')
			u++;
		if (!*u)
			continue;
		nng_stream *s = NULL;
		char err[512];
		int rv = dial_one(u, timeout_ms, &s);
		if (rv == 0) {
			struct conn *c = calloc(1, sizeof *c);
			if (!c || !(c->rbuf = malloc(RBUF_CAP)) ||
			    nng_aio_alloc(&c->raio, NULL, NULL) ||
			    nng_aio_alloc(&c->saio, NULL, NULL)) {
				nng_stream_free(s);
				conn_close(c);
				free(list);
				return BABL_ENOMEM;
			}
			pthread_mutex_init(&c->slock, NULL);
			c->s = s;
			c->url = strdup(u);
			int rc = handshake(c, hello_ms, err, sizeof err);
			if (rc == 0 && c->url) {
				free(list);
				*out = c;
				return 0;
			}
			conn_close(c);
			last = rc == BABL_ECLOSED || rc == BABL_ETIMEDOUT ? BABL_EUNREACH : rc;
		} else {
			snprintf(err, sizeof err, "%s", nng_strerror(rv));
		}
		if (wl < whylen) {
			int n = snprintf(why + wl, whylen - wl, "%s%s (%s)", wl ? "; " : "", u, err);
			if (n > 0)
				wl += (size_t)n;
		}
	}
	free(list);
	return last;
}
