/*
 * test_proxy.c - the leader proxy (meshd/proxy.c) over real nng streams:
 * ipc:// in a temporary directory and tcp:// on loopback.
 *
 * A fake leader runs in a thread of its own on a stream listener and
 * behaves as a case asks: it greets and echoes DATA as OUT, then EXIT; or
 * it breaks off in the middle of a frame, refuses with ERROR, answers
 * nonsense, floods, or holds the connection.  The client is this thread:
 * it connects to a second listener that stands for the follower, the two
 * ends greet by hand, and the follower's end goes to proxy_start with the
 * CALL and a DATA frame as the bytes already read.  Every wait is bounded.
 */
#include <nng/nng.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "err.h"
#include "proxy.h"
#include "wire.h"

#include "t.h"
#define T_TMP_PREFIX "proxy"
#include "t_ipc.h"

#define IO_MS 5000 /* any one send or receive of the test */

/* ---- harness ----------------------------------------------------------- */


static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* ---- blocking stream I/O ------------------------------------------------ */

/* Send all of p[0..n): 0 or an nng error. */
static int
io_send(nng_stream *s, const void *p, size_t n, int ms)
{
	nng_aio *aio;
	if (nng_aio_alloc(&aio, NULL, NULL) != 0)
		return NNG_ENOMEM;
	size_t off = 0;
	int rv = 0;
	while (off < n) {
		nng_iov iov = {(uint8_t *)p + off, n - off};
		nng_aio_set_iov(aio, 1, &iov);
		nng_aio_set_timeout(aio, ms);
		nng_stream_send(s, aio);
		nng_aio_wait(aio);
		if ((rv = nng_aio_result(aio)) != 0)
			break;
		off += nng_aio_count(aio);
	}
	nng_aio_free(aio);
	return rv;
}

static int
io_send_wbuf(nng_stream *s, struct wbuf *b)
{
	int rv = io_send(s, b->p, b->len, IO_MS);
	wbuf_reset(b);
	return rv;
}

/* Receive what is there, at least one byte: 0 and *got, or an nng error. */
static int
io_recv(nng_stream *s, void *p, size_t cap, size_t *got, int ms)
{
	nng_aio *aio;
	if (nng_aio_alloc(&aio, NULL, NULL) != 0)
		return NNG_ENOMEM;
	nng_iov iov = {p, cap};
	nng_aio_set_iov(aio, 1, &iov);
	nng_aio_set_timeout(aio, ms);
	nng_stream_recv(s, aio);
	nng_aio_wait(aio);
	int rv = nng_aio_result(aio);
	*got = rv ? 0 : nng_aio_count(aio);
	if (rv == 0 && *got == 0)
		rv = NNG_ECLOSED;
	nng_aio_free(aio);
	return rv;
}

/* Frames from a stream. */
struct rdr {
	nng_stream *s;
	uint8_t *b;
	size_t len, cap, skip;
};

/*
 * The next frame: 0, *f and its bytes (*raw, *rawlen, valid until the next
 * call), an nng error, or -1 for a malformed frame.
 */
static int
rdr_next(struct rdr *r, struct wire_frame *f, const uint8_t **raw,
    size_t *rawlen, int ms)
{
	if (r->skip) {
		memmove(r->b, r->b + r->skip, r->len - r->skip);
		r->len -= r->skip;
		r->skip = 0;
	}
	for (;;) {
		size_t used, got;
		int rc = wire_next_any(r->b, r->len, 0, f, &used);
		if (rc == 0) {
			r->skip = used;
			if (raw)
				*raw = r->b;
			if (rawlen)
				*rawlen = used;
			return 0;
		}
		if (rc != BABL_EAGAIN)
			return -1;
		if (r->len == r->cap) {
			size_t cap = r->cap ? 2 * r->cap : 64 * 1024;
			uint8_t *nb = realloc(r->b, cap);
			if (!nb)
				abort();
			r->b = nb;
			r->cap = cap;
		}
		int rv = io_recv(r->s, r->b + r->len, r->cap - r->len, &got, ms);
		if (rv)
			return rv;
		r->len += got;
	}
}

static void
rdr_free(struct rdr *r)
{
	free(r->b);
	memset(r, 0, sizeof(*r));
}

/* Dial url and wait: the stream, or NULL. */
static nng_stream *
dial_wait(const char *url)
{
	nng_stream_dialer *d;
	nng_aio *aio;
	nng_stream *s = NULL;
	if (conn_dialer_alloc(&d, url) != 0)
		return NULL;
	if (nng_aio_alloc(&aio, NULL, NULL) == 0) {
		nng_aio_set_timeout(aio, IO_MS);
		nng_stream_dialer_dial(d, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) == 0)
			s = nng_aio_get_output(aio, 0);
		nng_aio_free(aio);
	}
	nng_stream_dialer_free(d);
	return s;
}

/* A listener on url (a tcp port 0 is replaced by the bound one in url). */
static nng_stream_listener *
listen_on(char *url, size_t n)
{
	nng_stream_listener *l;
	if (conn_listener_alloc(&l, url) != 0)
		return NULL;
	if (nng_stream_listener_listen(l) != 0) {
		nng_stream_listener_free(l);
		return NULL;
	}
	size_t len = strlen(url);
	int port;
	if (strncmp(url, "tcp://", 6) == 0 && len > 2 &&
	    strcmp(url + len - 2, ":0") == 0 &&
	    nng_stream_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0)
		snprintf(url + len - 1, n - (len - 1), "%d", port);
	return l;
}

static nng_stream *
accept_wait(nng_stream_listener *l, int ms)
{
	nng_aio *aio;
	nng_stream *s = NULL;
	if (nng_aio_alloc(&aio, NULL, NULL) != 0)
		return NULL;
	nng_aio_set_timeout(aio, ms);
	nng_stream_listener_accept(l, aio);
	nng_aio_wait(aio);
	if (nng_aio_result(aio) == 0)
		s = nng_aio_get_output(aio, 0);
	nng_aio_free(aio);
	return s;
}

/* ---- the fake leader ---------------------------------------------------- */

enum mode {
	M_ECHO,       /* WELCOME; DATA -> OUT; EOF -> EXIT 0; wait for close */
	M_ECHO_CLOSE, /* the same, closing right after EXIT */
	M_BREAK,      /* OUT for the first DATA, half an OUT for the second, close */
	M_REFUSE,     /* ERROR in place of WELCOME */
	M_GARBAGE,    /* OUT in place of WELCOME */
	M_HOLD,       /* WELCOME, then read until closed */
	M_FLOOD,      /* WELCOME, then OUT frames until a send times out */
	M_SILENT,     /* no answer to HELLO; wait to be closed */
	M_DROP,       /* HELLO read, then closed at once (a leader dying) */
};

#define MAX_CONNS 8

struct fake {
	enum mode mode;
	unsigned nconn; /* connections to serve */
	char url[256];
	nng_stream_listener *l;
	pthread_t thr;
	int running;
	/* Results, read after the join. */
	const char *err;  /* NULL: all went as expected */
	int agent_ok;     /* HELLO named the proxy's agent */
	unsigned calls;   /* CALL frames seen */
	uint64_t data_in; /* payload bytes of DATA received */
	unsigned closed;  /* connections the proxy closed */
	uint64_t flooded; /* OUT payload bytes sent in M_FLOOD */
	uint8_t half[40000]; /* M_BREAK: the OUT payload it sends half of */
};

static int
expect_hello(struct fake *fk, struct rdr *r)
{
	struct wire_frame f;
	struct wire_hello h;
	if (rdr_next(r, &f, NULL, NULL, IO_MS) != 0 || wire_dec_hello(&f, &h) != 0)
		return -1;
	fk->agent_ok = wire_streq(h.agent, "meshd-proxy");
	return 0;
}

/* Read until the peer closes, dropping frames: 0 if it did within ms. */
static int
until_closed(struct rdr *r, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	while (now_ms() < end) {
		struct wire_frame f;
		int rv = rdr_next(r, &f, NULL, NULL, (int)(end - now_ms()) + 1);
		if (rv == NNG_ETIMEDOUT)
			return -1;
		if (rv != 0)
			return 0;
	}
	return -1;
}

static void
serve_echo(struct fake *fk, nng_stream *s, struct rdr *r)
{
	struct wbuf b = {0};
	unsigned ndata = 0;
	for (;;) {
		struct wire_frame f;
		if (rdr_next(r, &f, NULL, NULL, IO_MS) != 0) {
			fk->err = "echo: the proxy's frames stopped";
			break;
		}
		if (f.type == WIRE_CALL) {
			fk->calls++;
			continue;
		}
		if (f.type == WIRE_DATA) {
			fk->data_in += f.len;
			ndata++;
			if (fk->mode == M_BREAK && ndata == 2) {
				/* Half of an OUT frame, then gone. */
				wire_enc_bytes(&b, WIRE_OUT, fk->half, sizeof fk->half);
				io_send(s, b.p, b.len / 2, IO_MS);
				wbuf_free(&b);
				sleep_ms(50);
				return;
			}
			if (wire_enc_bytes(&b, WIRE_OUT, f.p, f.len) != 0 ||
			    io_send_wbuf(s, &b) != 0) {
				fk->err = "echo: cannot send OUT";
				break;
			}
			continue;
		}
		if (f.type == WIRE_EOF) {
			if (wire_enc_exit(&b, WIRE_EXITED, 0, "") != 0 ||
			    io_send_wbuf(s, &b) != 0)
				fk->err = "echo: cannot send EXIT";
			else if (fk->mode == M_ECHO && until_closed(r, IO_MS) == 0)
				fk->closed++;
			break;
		}
		fk->err = "echo: unexpected frame";
		break;
	}
	wbuf_free(&b);
}

static void
serve_flood(struct fake *fk, nng_stream *s)
{
	static uint8_t chunk[WIRE_CHUNK];
	struct wbuf b = {0};
	if (wire_enc_bytes(&b, WIRE_OUT, chunk, sizeof chunk) != 0) {
		fk->err = "flood: out of memory";
		return;
	}
	/* Until the proxy stops taking them: then the client is not reading. */
	while (fk->flooded < 256u * 1024 * 1024 && io_send(s, b.p, b.len, 1000) == 0)
		fk->flooded += sizeof chunk;
	wbuf_free(&b);
}

static void *
leader_main(void *arg)
{
	struct fake *fk = arg;
	nng_stream *conns[MAX_CONNS] = {0};
	struct rdr rd[MAX_CONNS];
	memset(rd, 0, sizeof rd);
	struct wbuf b = {0};
	unsigned n;
	for (n = 0; n < fk->nconn; n++) {
		nng_stream *s = conns[n] = accept_wait(fk->l, 2 * IO_MS);
		struct rdr *r = &rd[n];
		r->s = s;
		if (!s) {
			fk->err = "no connection from the proxy";
			break;
		}
		if (expect_hello(fk, r) != 0) {
			fk->err = "no HELLO";
			break;
		}
		switch (fk->mode) {
		case M_REFUSE:
			wire_enc_error(&b, BABL_EBUSY, "the leader is busy");
			io_send_wbuf(s, &b);
			break;
		case M_GARBAGE:
			wire_enc_bytes(&b, WIRE_OUT, "hi", 2);
			io_send_wbuf(s, &b);
			if (until_closed(r, IO_MS) == 0)
				fk->closed++;
			break;
		case M_SILENT:
			if (until_closed(r, PROXY_GREET_MS + IO_MS) == 0)
				fk->closed++;
			break;
		case M_DROP:
			break; /* (closed below) */
		default:
			wire_enc_welcome(&b, "fake-leader");
			if (io_send_wbuf(s, &b) != 0) {
				fk->err = "cannot send WELCOME";
				break;
			}
			if (fk->mode == M_FLOOD)
				serve_flood(fk, s);
			else if (fk->mode != M_HOLD)
				serve_echo(fk, s, r);
			break;
		}
		if (fk->mode != M_HOLD) {
			nng_stream_free(s);
			conns[n] = NULL;
		}
	}
	/* Held connections: wait for the proxy to close each. */
	for (unsigned i = 0; i < n && fk->mode == M_HOLD; i++)
		if (until_closed(&rd[i], 3 * IO_MS) == 0)
			fk->closed++;
	for (unsigned i = 0; i < MAX_CONNS; i++) {
		if (conns[i])
			nng_stream_free(conns[i]);
		rdr_free(&rd[i]);
	}
	wbuf_free(&b);
	return NULL;
}

/* Start a fake leader on url (NULL: a new ipc URL) serving nconn. */
static void
fake_start(struct fake *fk, enum mode mode, const char *url, unsigned nconn)
{
	memset(fk, 0, sizeof(*fk));
	fk->mode = mode;
	fk->nconn = nconn;
	if (url)
		snprintf(fk->url, sizeof fk->url, "%s", url);
	else
		ipc_url(fk->url, sizeof fk->url, "leader");
	for (size_t i = 0; i < sizeof fk->half; i++)
		fk->half[i] = (uint8_t)(i * 7 + 3);
	fk->l = listen_on(fk->url, sizeof fk->url);
	T_ASSERT(fk->l != NULL);
	T_EQ_INT(pthread_create(&fk->thr, NULL, leader_main, fk), 0);
	fk->running = 1;
}

/* Wait for the fake leader to finish (bounded) and free it. */
static void
fake_join(struct fake *fk)
{
	if (!fk->running)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	int rv = pthread_timedjoin_np(fk->thr, NULL, &ts);
	fk->running = 0;
	nng_stream_listener_free(fk->l);
	if (rv != 0) {
		fprintf(stderr, "the fake leader did not finish\n");
		abort();
	}
}

/* ---- the client and the follower's end ---------------------------------- */

struct client {
	char furl[256];
	nng_stream_listener *fl; /* the follower's */
	nng_stream *s;           /* the client's end */
	nng_stream *acc;         /* the follower's end, for proxy_start */
	struct rdr r;            /* frames the client receives */
};

/* Connect a client to a new follower listener and greet by hand. */
static void
client_open(struct client *c)
{
	memset(c, 0, sizeof(*c));
	ipc_url(c->furl, sizeof c->furl, "follower");
	T_ASSERT((c->fl = listen_on(c->furl, sizeof c->furl)) != NULL);
	nng_aio *aio;
	T_EQ_INT(nng_aio_alloc(&aio, NULL, NULL), 0);
	nng_aio_set_timeout(aio, IO_MS);
	nng_stream_listener_accept(c->fl, aio);
	c->s = dial_wait(c->furl);
	nng_aio_wait(aio);
	if (nng_aio_result(aio) == 0)
		c->acc = nng_aio_get_output(aio, 0);
	nng_aio_free(aio);
	T_ASSERT(c->s != NULL && c->acc != NULL);
	c->r.s = c->s;

	struct wbuf b = {0};
	struct rdr fr = {.s = c->acc};
	struct wire_frame f;
	T_EQ_INT(wire_enc_hello(&b, "test-client"), 0);
	T_EQ_INT(io_send_wbuf(c->s, &b), 0);
	T_EQ_INT(rdr_next(&fr, &f, NULL, NULL, IO_MS), 0);
	T_EQ_INT(f.type, WIRE_HELLO);
	T_EQ_INT(fr.len, fr.skip); /* nothing more was read */
	rdr_free(&fr);
	T_EQ_INT(wire_enc_welcome(&b, "follower"), 0);
	T_EQ_INT(io_send_wbuf(c->acc, &b), 0);
	T_EQ_INT(rdr_next(&c->r, &f, NULL, NULL, IO_MS), 0);
	T_EQ_INT(f.type, WIRE_WELCOME);
	wbuf_free(&b);
}

static void
client_close(struct client *c)
{
	if (c->s)
		nng_stream_free(c->s);
	c->s = NULL;
	if (c->acc)
		nng_stream_free(c->acc); /* only if proxy_start never took it */
	c->acc = NULL;
	if (c->fl)
		nng_stream_listener_free(c->fl);
	c->fl = NULL;
	rdr_free(&c->r);
}

/* Hand the follower's end to the proxy with CALL and DATA(first) read. */
static int
client_proxy_n(struct client *c, struct proxy_set *ps, const char *url,
    const void *first, size_t n)
{
	struct wire_call call;
	memset(&call, 0, sizeof call);
	call.target.p = "echo";
	call.target.len = 4;
	struct wbuf pre = {0};
	if (wire_enc_call(&pre, &call) != 0 ||
	    wire_enc_bytes(&pre, WIRE_DATA, first, n) != 0)
		abort();
	nng_stream *acc = c->acc;
	c->acc = NULL; /* the proxy's now, whatever it returns */
	int rc = proxy_start(ps, acc, url, pre.p, pre.len);
	wbuf_free(&pre);
	return rc;
}

static int
client_proxy(struct client *c, struct proxy_set *ps, const char *url,
    const char *first)
{
	return client_proxy_n(c, ps, url, first, strlen(first));
}

static void
client_send_data(struct client *c, uint8_t type, const void *p, size_t n)
{
	struct wbuf b = {0};
	T_EQ_INT(wire_enc_bytes(&b, type, p, n), 0);
	T_EQ_INT(io_send_wbuf(c->s, &b), 0);
	wbuf_free(&b);
}

/* The next frame must be an ERROR with code, its message containing
 * needle. */
static void
client_expect_error(struct client *c, int code, const char *needle)
{
	struct wire_frame f;
	struct wire_error e;
	T_EQ_INT(rdr_next(&c->r, &f, NULL, NULL, 3 * IO_MS), 0);
	T_EQ_INT(f.type, WIRE_ERROR);
	T_EQ_INT(wire_dec_error(&f, &e), 0);
	T_EQ_INT(e.code, code);
	char *msg = wire_strdup(e.msg);
	T_ASSERT(msg != NULL);
	int found = strstr(msg, needle) != NULL;
	if (!found)
		fprintf(stderr, "  message: %s\n", msg);
	free(msg);
	T_ASSERT(found);
}

/* After the last frame: nothing more comes (the proxy waits for us to
 * close, or has closed). */
static void
client_expect_nothing_more(struct client *c)
{
	struct wire_frame f;
	int rv = rdr_next(&c->r, &f, NULL, NULL, 300);
	T_ASSERT(rv == NNG_ETIMEDOUT || rv == NNG_ECLOSED || rv == NNG_ECONNSHUT ||
	    rv == NNG_ECONNRESET);
	T_EQ_INT(c->r.len, 0); /* and no partial frame either */
}

static int
wait_count(struct proxy_set *ps, unsigned want, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	while (proxy_set_count(ps) != want) {
		if (now_ms() >= end)
			return -1;
		sleep_ms(5);
	}
	return 0;
}

/* ---- cases -------------------------------------------------------------- */

/* The end of a case: the fake leader served as expected, the client is
 * closed, and no proxy is left running. */
static void
case_end(struct fake *fk, struct client *c, struct proxy_set *ps)
{
	fake_join(fk);
	T_ASSERT(fk->err == NULL);
	client_close(c);
	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	proxy_set_close(ps);
}

/* The bytes the client gets back are exactly OUT, OUT, EXIT. */
static void
case_echo_exact(void)
{
	struct fake fk;
	struct client c;
	struct proxy_set *ps;
	fake_start(&fk, M_ECHO, NULL, 1);
	T_EQ_INT(proxy_set_open(&ps), 0);
	client_open(&c);
	T_EQ_INT(client_proxy(&c, ps, fk.url, "hello"), 0);
	client_send_data(&c, WIRE_DATA, "world!", 6);
	client_send_data(&c, WIRE_EOF, NULL, 0);

	struct wbuf want = {0};
	T_EQ_INT(wire_enc_bytes(&want, WIRE_OUT, "hello", 5), 0);
	T_EQ_INT(wire_enc_bytes(&want, WIRE_OUT, "world!", 6), 0);
	T_EQ_INT(wire_enc_exit(&want, WIRE_EXITED, 0, ""), 0);
	uint8_t got[256];
	size_t n = 0;
	while (n < want.len) {
		size_t k;
		T_EQ_INT(io_recv(c.s, got + n, sizeof got - n, &k, IO_MS), 0);
		n += k;
	}
	T_EQ_INT(n, want.len);
	T_EQ_MEM(got, want.p, want.len);
	wbuf_free(&want);
	client_expect_nothing_more(&c);
	T_EQ_INT(proxy_set_count(ps), 1); /* lingering for the client */
	client_close(&c);
	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	fake_join(&fk);
	T_ASSERT(fk.err == NULL);
	T_ASSERT(fk.agent_ok);
	T_EQ_INT(fk.calls, 1);
	T_EQ_INT(fk.data_in, 11);
	T_EQ_INT(fk.closed, 1); /* the client's close reached the leader */
	proxy_set_close(ps);
}

/* A leader that closes right after EXIT: EXIT arrives, no ERROR after. */
static void
case_exit_then_close(void)
{
	struct fake fk;
	struct client c;
	struct proxy_set *ps;
	fake_start(&fk, M_ECHO_CLOSE, NULL, 1);
	T_EQ_INT(proxy_set_open(&ps), 0);
	client_open(&c);
	T_EQ_INT(client_proxy(&c, ps, fk.url, "abc"), 0);
	client_send_data(&c, WIRE_EOF, NULL, 0);
	struct wire_frame f;
	T_EQ_INT(rdr_next(&c.r, &f, NULL, NULL, IO_MS), 0);
	T_EQ_INT(f.type, WIRE_OUT);
	T_EQ_INT(f.len, 3);
	T_EQ_INT(rdr_next(&c.r, &f, NULL, NULL, IO_MS), 0);
	T_EQ_INT(f.type, WIRE_EXIT);
	fake_join(&fk); /* the leader has closed */
	T_ASSERT(fk.err == NULL);
	client_expect_nothing_more(&c);
	client_close(&c);
	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	proxy_set_close(ps);
}

/* Sends DATA frames from another thread while the main one reads. */
struct sender {
	nng_stream *s;
	unsigned frames;
	size_t chunk;
	int rv;
};

static uint8_t
pattern(uint64_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13);
}

static void *
sender_main(void *arg)
{
	struct sender *sd = arg;
	uint8_t *buf = malloc(sd->chunk);
	struct wbuf b = {0};
	if (!buf)
		abort();
	uint64_t off = 5; /* "first" went in pre */
	for (unsigned i = 0; i < sd->frames && sd->rv == 0; i++) {
		for (size_t k = 0; k < sd->chunk; k++)
			buf[k] = pattern(off + k);
		off += sd->chunk;
		if (wire_enc_bytes(&b, WIRE_DATA, buf, sd->chunk) != 0)
			abort();
		sd->rv = io_send_wbuf(sd->s, &b);
	}
	if (sd->rv == 0 && wire_enc_empty(&b, WIRE_EOF) == 0)
		sd->rv = io_send_wbuf(sd->s, &b);
	wbuf_free(&b);
	free(buf);
	return NULL;
}

/* 8 MiB in 256 KiB DATA frames through a leader on tcp://, intact. */
static void
case_large_tcp(void)
{
	struct fake fk;
	struct client c;
	struct proxy_set *ps;
	fake_start(&fk, M_ECHO, "tcp://127.0.0.1:0", 1);
	T_EQ_INT(proxy_set_open(&ps), 0);
	client_open(&c);
	uint8_t first[5];
	for (int i = 0; i < 5; i++)
		first[i] = pattern((uint64_t)i);
	T_EQ_INT(client_proxy_n(&c, ps, fk.url, first, sizeof first), 0);

	struct sender sd = {.s = c.s, .frames = 32, .chunk = WIRE_CHUNK};
	pthread_t th;
	T_EQ_INT(pthread_create(&th, NULL, sender_main, &sd), 0);
	uint64_t want = 5 + (uint64_t)sd.frames * sd.chunk, got = 0;
	int bad = 0, exited = 0;
	unsigned outs = 0;
	while (!exited) {
		struct wire_frame f;
		int rv = rdr_next(&c.r, &f, NULL, NULL, IO_MS);
		if (rv != 0) {
			bad = 1;
			break;
		}
		if (f.type == WIRE_EXIT) {
			struct wire_exit e;
			exited = wire_dec_exit(&f, &e) == 0 && e.code == 0 ? 1 : -1;
		} else if (f.type == WIRE_OUT) {
			outs++;
			for (size_t k = 0; k < f.len; k++)
				if (f.p[k] != pattern(got + k))
					bad = 1;
			got += f.len;
		} else {
			bad = 1;
			break;
		}
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	T_EQ_INT(pthread_timedjoin_np(th, NULL, &ts), 0);
	T_EQ_INT(sd.rv, 0);
	T_ASSERT(!bad);
	T_EQ_INT(exited, 1);
	T_EQ_INT(got, want);
	T_EQ_INT(outs, 33);
	client_close(&c);
	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	fake_join(&fk);
	T_ASSERT(fk.err == NULL);
	T_EQ_INT(fk.data_in, want);
	proxy_set_close(ps);
}

/* The leader breaks off in the middle of a frame: the frames before it,
 * then an ERROR, and no partial frame. */
static void
case_leader_breaks_mid_frame(void)
{
	struct fake fk;
	struct client c;
	struct proxy_set *ps;
	fake_start(&fk, M_BREAK, NULL, 1);
	T_EQ_INT(proxy_set_open(&ps), 0);
	client_open(&c);
	T_EQ_INT(client_proxy(&c, ps, fk.url, "first"), 0);
	client_send_data(&c, WIRE_DATA, "second", 6);

	struct wbuf want = {0};
	T_EQ_INT(wire_enc_bytes(&want, WIRE_OUT, "first", 5), 0);
	struct wire_frame f;
	const uint8_t *raw;
	size_t rawlen;
	T_EQ_INT(rdr_next(&c.r, &f, &raw, &rawlen, IO_MS), 0);
	T_EQ_INT(rawlen, want.len);
	T_EQ_MEM(raw, want.p, want.len);
	wbuf_free(&want);
	client_expect_error(&c, BABL_EUNREACH, "was lost mid-call");
	client_expect_nothing_more(&c);
	fake_join(&fk);
	T_ASSERT(fk.err == NULL);
	T_EQ_INT(babl_exit_code(BABL_EUNREACH), 69);
	client_close(&c);
	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	proxy_set_close(ps);
}

/* The message names the leader's URL. */
static void
case_lost_message_names_url(void)
{
	struct fake fk;
	struct client c;
	struct proxy_set *ps;
	fake_start(&fk, M_BREAK, NULL, 1);
	T_EQ_INT(proxy_set_open(&ps), 0);
	client_open(&c);
	T_EQ_INT(client_proxy(&c, ps, fk.url, "x"), 0);
	client_send_data(&c, WIRE_DATA, "y", 1);
	struct wire_frame f;
	T_EQ_INT(rdr_next(&c.r, &f, NULL, NULL, IO_MS), 0);
	T_EQ_INT(f.type, WIRE_OUT);
	client_expect_error(&c, BABL_EUNREACH, fk.url);
	fake_join(&fk);
	client_close(&c);
	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	proxy_set_close(ps);
}

/* Nobody listens: ERROR BABL_EUNREACH, over ipc and over tcp. */
static void
case_unreachable(void)
{
	char url[256];
	const char *urls[2] = {url, "tcp://127.0.0.1:1"};
	ipc_url(url, sizeof url, "nobody");
	struct proxy_set *ps;
	T_EQ_INT(proxy_set_open(&ps), 0);
	for (int i = 0; i < 2; i++) {
		struct client c;
		client_open(&c);
		uint64_t t0 = now_ms();
		T_EQ_INT(client_proxy(&c, ps, urls[i], "x"), 0);
		client_expect_error(&c, BABL_EUNREACH, "cannot reach the leader at");
		T_ASSERT(now_ms() - t0 < PROXY_DIAL_MS + 2000);
		client_expect_nothing_more(&c);
		client_close(&c);
	}
	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	proxy_set_close(ps);
}

/* An ERROR in place of WELCOME reaches the client as it is. */
static void
case_refused_forwarded(void)
{
	struct fake fk;
	struct client c;
	struct proxy_set *ps;
	fake_start(&fk, M_REFUSE, NULL, 1);
	T_EQ_INT(proxy_set_open(&ps), 0);
	client_open(&c);
	T_EQ_INT(client_proxy(&c, ps, fk.url, "x"), 0);
	struct wbuf want = {0};
	T_EQ_INT(wire_enc_error(&want, BABL_EBUSY, "the leader is busy"), 0);
	struct wire_frame f;
	const uint8_t *raw;
	size_t rawlen;
	T_EQ_INT(rdr_next(&c.r, &f, &raw, &rawlen, IO_MS), 0);
	T_EQ_INT(rawlen, want.len);
	T_EQ_MEM(raw, want.p, want.len);
	wbuf_free(&want);
	client_expect_nothing_more(&c);
	case_end(&fk, &c, ps);
}

/* Anything else in place of WELCOME: BABL_EUNREACH. */
static void
case_garbage_greeting(void)
{
	struct fake fk;
	struct client c;
	struct proxy_set *ps;
	fake_start(&fk, M_GARBAGE, NULL, 1);
	T_EQ_INT(proxy_set_open(&ps), 0);
	client_open(&c);
	T_EQ_INT(client_proxy(&c, ps, fk.url, "x"), 0);
	client_expect_error(&c, BABL_EUNREACH, "unexpected reply");
	client_expect_nothing_more(&c);
	fake_join(&fk);
	T_ASSERT(fk.err == NULL);
	T_EQ_INT(fk.closed, 1);
	client_close(&c);
	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	proxy_set_close(ps);
}

/* What a set's back function was given. */
struct backed {
	pthread_mutex_t lock;
	nng_stream *st;
	uint8_t pre[256];
	size_t len;
};

static void
back_fn(void *arg, nng_stream *st, const void *pre, size_t len)
{
	struct backed *bk = arg;
	pthread_mutex_lock(&bk->lock);
	bk->st = st;
	bk->len = len < sizeof bk->pre ? len : sizeof bk->pre;
	memcpy(bk->pre, pre, bk->len);
	pthread_mutex_unlock(&bk->lock);
}

/*
 * A leader whose connection ends before its WELCOME (it died between the
 * dial and the greeting): with a back function, the client goes back with
 * the bytes it sent and is told nothing; without one, it gets
 * BABL_EUNREACH.
 */
static void
case_dropped_greeting(void)
{
	for (int with_back = 1; with_back >= 0; with_back--) {
		struct fake fk;
		struct client c;
		struct proxy_set *ps;
		struct backed bk = {.lock = PTHREAD_MUTEX_INITIALIZER};
		fake_start(&fk, M_DROP, NULL, 1);
		T_EQ_INT(proxy_set_open(&ps), 0);
		if (with_back)
			proxy_set_back(ps, back_fn, &bk);
		client_open(&c);
		T_EQ_INT(client_proxy(&c, ps, fk.url, "x"), 0);
		if (with_back) {
			nng_stream *st = NULL;
			for (int i = 0; i < IO_MS / 5 && !st; i++) {
				pthread_mutex_lock(&bk.lock);
				st = bk.st;
				pthread_mutex_unlock(&bk.lock);
				if (!st)
					sleep_ms(5);
			}
			T_ASSERT(st != NULL);
			/* the bytes the client had sent: its CALL and its DATA */
			struct wire_call call;
			memset(&call, 0, sizeof call);
			call.target.p = "echo";
			call.target.len = 4;
			struct wbuf want = {0};
			T_EQ_INT(wire_enc_call(&want, &call), 0);
			T_EQ_INT(wire_enc_bytes(&want, WIRE_DATA, "x", 1), 0);
			T_EQ_INT(bk.len, want.len);
			T_EQ_MEM(bk.pre, want.p, want.len);
			wbuf_free(&want);
			struct wire_frame f;
			T_EQ_INT(rdr_next(&c.r, &f, NULL, NULL, 300), NNG_ETIMEDOUT);
			nng_stream_close(st);
			nng_stream_free(st);
		} else {
			client_expect_error(&c, BABL_EUNREACH, "cannot reach the leader at");
			client_expect_nothing_more(&c);
		}
		case_end(&fk, &c, ps);
	}
}

/* A leader that never answers HELLO: BABL_EUNREACH after PROXY_GREET_MS
 * (this case takes that long). */
static void
case_greeting_times_out(void)
{
	struct fake fk;
	struct client c;
	struct proxy_set *ps;
	fake_start(&fk, M_SILENT, NULL, 1);
	T_EQ_INT(proxy_set_open(&ps), 0);
	client_open(&c);
	uint64_t t0 = now_ms();
	T_EQ_INT(client_proxy(&c, ps, fk.url, "x"), 0);
	client_expect_error(&c, BABL_EUNREACH, "no WELCOME in time");
	uint64_t took = now_ms() - t0;
	T_ASSERT(took >= PROXY_GREET_MS - 100 && took < PROXY_GREET_MS + 3000);
	client_expect_nothing_more(&c);
	fake_join(&fk);
	T_ASSERT(fk.err == NULL);
	T_EQ_INT(fk.closed, 1);
	client_close(&c);
	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	proxy_set_close(ps);
}

/* Bad arguments: BABL_EINPUT, and still an ERROR for the client. */
static void
case_bad_arguments(void)
{
	struct proxy_set *ps;
	T_EQ_INT(proxy_set_open(&ps), 0);
	T_EQ_INT(proxy_start(ps, NULL, "ipc:///nowhere", NULL, 0), BABL_EINPUT);

	struct client c;
	client_open(&c);
	T_EQ_INT(client_proxy(&c, ps, "bogus://x", "x"), BABL_EINPUT);
	client_expect_error(&c, BABL_EUNREACH, "cannot reach the leader at bogus://x");
	client_close(&c);

	client_open(&c);
	nng_stream *acc = c.acc;
	c.acc = NULL;
	T_EQ_INT(proxy_start(ps, acc, NULL, NULL, 0), BABL_EINPUT);
	client_expect_error(&c, BABL_EUNREACH, "no URL");
	client_close(&c);

	client_open(&c);
	acc = c.acc;
	c.acc = NULL;
	size_t big = PROXY_PRE_MAX + 1;
	uint8_t *pre = calloc(1, big);
	T_ASSERT(pre != NULL);
	T_EQ_INT(proxy_start(ps, acc, "ipc:///nowhere", pre, big), BABL_EINPUT);
	free(pre);
	client_expect_error(&c, BABL_EINPUT, "too large");
	client_close(&c);

	client_open(&c);
	acc = c.acc;
	c.acc = NULL;
	T_EQ_INT(proxy_start(NULL, acc, "ipc:///nowhere", NULL, 0), BABL_EINPUT);
	client_expect_nothing_more(&c); /* closed without a word: no set */
	client_close(&c);

	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	proxy_set_close(ps);
	proxy_set_close(NULL);
}

/* The client goes away mid-call: the leader's connection is closed. */
static void
case_client_leaves(void)
{
	struct fake fk;
	struct client c;
	struct proxy_set *ps;
	fake_start(&fk, M_HOLD, NULL, 1);
	T_EQ_INT(proxy_set_open(&ps), 0);
	client_open(&c);
	T_EQ_INT(client_proxy(&c, ps, fk.url, "x"), 0);
	client_send_data(&c, WIRE_DATA, "more", 4);
	sleep_ms(50);
	T_EQ_INT(proxy_set_count(ps), 1);
	client_close(&c);
	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	fake_join(&fk);
	T_ASSERT(fk.err == NULL);
	T_EQ_INT(fk.closed, 1);
	proxy_set_close(ps);
}

/* A client that does not read holds the leader back: the leader's sends
 * stall after a bounded amount. */
static void
case_backpressure(void)
{
	struct fake fk;
	struct client c;
	struct proxy_set *ps;
	fake_start(&fk, M_FLOOD, NULL, 1);
	T_EQ_INT(proxy_set_open(&ps), 0);
	client_open(&c);
	T_EQ_INT(client_proxy(&c, ps, fk.url, "x"), 0);
	fake_join(&fk); /* a send timed out: the flood stalled */
	T_ASSERT(fk.err == NULL);
	fprintf(stderr, "  (the leader got %llu KiB out before stalling)\n",
	    (unsigned long long)(fk.flooded / 1024));
	T_ASSERT(fk.flooded < 16u * 1024 * 1024);
	/* What got through is whole frames, in order. */
	uint64_t got = 0;
	for (;;) {
		struct wire_frame f;
		int rv = rdr_next(&c.r, &f, NULL, NULL, 1000);
		if (rv != 0)
			break;
		if (f.type != WIRE_OUT)
			break;
		got += f.len;
	}
	T_ASSERT(got <= fk.flooded + WIRE_CHUNK);
	client_close(&c);
	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	proxy_set_close(ps);
}

/* proxy_set_close with proxies pumping and one waiting for WELCOME. */
static void
case_close_live(void)
{
	struct fake fk;
	struct client c[4];
	struct proxy_set *ps;
	fake_start(&fk, M_HOLD, NULL, 3);
	T_EQ_INT(proxy_set_open(&ps), 0);
	/* A listener that never accepts: the proxy waits for WELCOME. */
	char mute[256];
	ipc_url(mute, sizeof mute, "mute");
	nng_stream_listener *ml = listen_on(mute, sizeof mute);
	T_ASSERT(ml != NULL);
	for (int i = 0; i < 4; i++) {
		client_open(&c[i]);
		T_EQ_INT(client_proxy(&c[i], ps, i < 3 ? fk.url : mute, "x"), 0);
	}
	sleep_ms(200);
	T_EQ_INT(proxy_set_count(ps), 4);
	uint64_t t0 = now_ms();
	proxy_set_close(ps);
	T_ASSERT(now_ms() - t0 < 2000);
	for (int i = 0; i < 4; i++) {
		struct wire_frame f;
		int rv = rdr_next(&c[i].r, &f, NULL, NULL, IO_MS);
		T_ASSERT(rv != 0 && rv != NNG_ETIMEDOUT && rv != -1);
		client_close(&c[i]);
	}
	fake_join(&fk);
	T_ASSERT(fk.err == NULL);
	T_EQ_INT(fk.closed, 3);
	nng_stream_listener_free(ml);
}

/* Several proxies at once, each a whole call. */
static void
case_several_at_once(void)
{
	enum { N = 6 };
	struct fake fk;
	struct client c[N];
	struct proxy_set *ps;
	fake_start(&fk, M_ECHO_CLOSE, NULL, N);
	T_EQ_INT(proxy_set_open(&ps), 0);
	for (int i = 0; i < N; i++) {
		client_open(&c[i]);
		T_EQ_INT(client_proxy(&c[i], ps, fk.url, "ping"), 0);
		client_send_data(&c[i], WIRE_EOF, NULL, 0);
	}
	/* The fake leader serves one at a time, closing after each EXIT; the
	 * other proxies wait in its listener's backlog for WELCOME. */
	for (int i = 0; i < N; i++) {
		struct wire_frame f;
		T_EQ_INT(rdr_next(&c[i].r, &f, NULL, NULL, 3 * IO_MS), 0);
		T_EQ_INT(f.type, WIRE_OUT);
		T_EQ_INT(rdr_next(&c[i].r, &f, NULL, NULL, 3 * IO_MS), 0);
		T_EQ_INT(f.type, WIRE_EXIT);
		client_close(&c[i]);
	}
	T_EQ_INT(wait_count(ps, 0, IO_MS), 0);
	fake_join(&fk);
	T_ASSERT(fk.err == NULL);
	T_EQ_INT(fk.calls, N);
	proxy_set_close(ps);
}

/*
 * Streams from conn_dialer_alloc and conn_listener_alloc send small frames
 * at once on tcp (TCP_NODELAY on both ends: no frame waits behind another
 * for a delayed acknowledgement), and ipc, which has no such option, works.
 */
static void
case_nodelay(void)
{
	char url[128] = "tcp://127.0.0.1:0";
	nng_stream_listener *l = listen_on(url, sizeof url);
	T_ASSERT(l != NULL);
	nng_stream *c = dial_wait(url), *a = accept_wait(l, IO_MS);
	T_ASSERT(c != NULL && a != NULL);
	bool on = false;
	T_EQ_INT(nng_stream_get_bool(c, NNG_OPT_TCP_NODELAY, &on), 0);
	T_ASSERT(on);
	on = false;
	T_EQ_INT(nng_stream_get_bool(a, NNG_OPT_TCP_NODELAY, &on), 0);
	T_ASSERT(on);
	nng_stream_free(c);
	nng_stream_free(a);
	nng_stream_listener_free(l);

	char ipc[256];
	ipc_url(ipc, sizeof ipc, "nodelay");
	T_ASSERT((l = listen_on(ipc, sizeof ipc)) != NULL);
	c = dial_wait(ipc);
	a = accept_wait(l, IO_MS);
	T_ASSERT(c != NULL && a != NULL);
	nng_stream_free(c);
	nng_stream_free(a);
	nng_stream_listener_free(l);
}

static const struct t_case cases[] = {
	{"nodelay", case_nodelay},
	{"echo_exact", case_echo_exact},
	{"exit_then_close", case_exit_then_close},
	{"large_tcp", case_large_tcp},
	{"leader_breaks_mid_frame", case_leader_breaks_mid_frame},
	{"lost_message_names_url", case_lost_message_names_url},
	{"unreachable", case_unreachable},
	{"refused_forwarded", case_refused_forwarded},
	{"garbage_greeting", case_garbage_greeting},
	{"dropped_greeting", case_dropped_greeting},
	{"bad_arguments", case_bad_arguments},
	{"greeting_times_out", case_greeting_times_out},
	{"client_leaves", case_client_leaves},
	{"backpressure", case_backpressure},
	{"close_live", case_close_live},
	{"several_at_once", case_several_at_once},
	{0, 0},
};

int
main(int argc, char **argv)
{
	int rc = t_run(argc, argv, cases);
	tmp_cleanup();
	return rc;
}
