/*
 * proxy.c - forward a client's connection to the leader; see proxy.h.
 *
 * Each proxy is a state machine driven by the callbacks of its six aios,
 * always under the proxy's lock:
 *
 *	DIAL	dialling the leader (dial)
 *	GREET	HELLO going out (lsend), WELCOME awaited (lrecv)
 *	PUMP	client to leader through up[] (crecv, then lsend) and leader
 *		to client through down[] (lrecv, then csend of whole frames)
 *	FINAL	the proxy's own last frame going to the client (csend)
 *	LINGER	all sent: waiting for the client to close (crecv, timer)
 *	DONE	streams closed: waiting for the aios in flight to come back
 *
 * busy has one bit per aio in flight.  A proxy that is not DONE always has
 * at least one, so the callback that finds it DONE with none left is the
 * last one, and frees it (nng_aio_reap, since an aio cannot be freed from
 * its own callback; nng_stream_free only queues the stream for nng's
 * reaper).  No code touches a proxy after releasing its lock in leave().
 *
 * Lock order: the set's lock, then a proxy's (proxy_set_close); a proxy
 * takes the set's lock only after releasing its own (proxy_free).
 */
#include <nng/nng.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "err.h"
#include "logmsg.h"
#include "proxy.h"
#include "wire.h"

#define UP_CAP PROXY_FRAME_MAX   /* client bytes read at a time */
#define DOWN_CAP PROXY_FRAME_MAX /* room for one whole frame of the leader */
#define AGENT "meshd-proxy"

enum stage { S_DIAL, S_GREET, S_PUMP, S_FINAL, S_LINGER, S_DONE };

enum { A_DIAL, A_CRECV, A_CSEND, A_LRECV, A_LSEND, A_TIMER, A_N };
#define BIT(k) (1u << (k))

/* Bytes on their way out of one stream: p[off..len) is still to send. */
struct out {
	const uint8_t *p;
	size_t len, off;
};

struct proxy {
	struct proxy_set *ps;
	struct proxy *next, *prev; /* in ps->list, under ps->lock */
	pthread_mutex_t lock;
	char *url;
	enum stage stage;
	nng_stream_dialer *dialer; /* until the dial completes */
	nng_stream *client, *leader;
	nng_aio *aio[A_N];
	unsigned busy;           /* BIT(k): aio[k] is in flight */
	uint64_t greet_deadline; /* monotonic ms: WELCOME is due by then */
	int hello_sent, welcomed;

	/* Client to leader: pre, then what each receive got; sent in full
	 * before the client is read again. */
	uint8_t *up;
	size_t upcap, uplen;
	struct out lout;   /* what lsend is sending: HELLO or up[] */
	struct wbuf hello;

	/* Leader to client: down[0..downlen) received; the whole frames at
	 * its start go out in one send, the partial rest waits for more. */
	uint8_t *down;
	size_t downlen;
	struct out cout;   /* what csend is sending: down[] or last */
	int leader_gone;   /* its connection failed or broke the framing */
	int terminal;      /* the last frame forwarded was EXIT or ERROR */
	struct wbuf last;  /* the proxy's own ERROR, or the leader's */

	uint8_t scratch[512]; /* what the client sends after the end: dropped */
};

struct proxy_set {
	pthread_mutex_t lock;
	pthread_cond_t cv;  /* signalled when live drops to 0 */
	struct proxy *list; /* proxies not yet being freed */
	unsigned live;      /* proxies not yet freed */
	proxy_back_fn back; /* takes a client no leader could be dialled for */
	void *back_arg;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- starting operations (under p->lock) ---- */

/* The time limit of an operation started now on aio k. */
static nng_duration
op_timeout(const struct proxy *p, int k)
{
	if (p->stage == S_GREET) {
		uint64_t now = now_ms();
		return p->greet_deadline > now ?
		    (nng_duration)(p->greet_deadline - now) : 1;
	}
	if (p->stage == S_FINAL && k == A_CSEND)
		return PROXY_LINGER_MS;
	return NNG_DURATION_INFINITE;
}

/* Send the rest of what aio k (A_CSEND or A_LSEND) has to send. */
static void
send_rest(struct proxy *p, int k)
{
	struct out *o = k == A_CSEND ? &p->cout : &p->lout;
	nng_iov iov = {(void *)(o->p + o->off), o->len - o->off};
	nng_aio_set_iov(p->aio[k], 1, &iov);
	nng_aio_set_timeout(p->aio[k], op_timeout(p, k));
	p->busy |= BIT(k);
	nng_stream_send(k == A_CSEND ? p->client : p->leader, p->aio[k]);
}

static void
send_start(struct proxy *p, int k, const uint8_t *b, size_t n)
{
	struct out *o = k == A_CSEND ? &p->cout : &p->lout;
	o->p = b;
	o->len = n;
	o->off = 0;
	send_rest(p, k);
}

/* Read from the client: into up[] while pumping to a live leader, else
 * into scratch, to be dropped. */
static void
recv_client(struct proxy *p)
{
	if (p->busy & BIT(A_CRECV))
		return;
	nng_iov iov;
	if (p->stage == S_PUMP && !p->leader_gone)
		iov = (nng_iov){p->up, p->upcap};
	else
		iov = (nng_iov){p->scratch, sizeof p->scratch};
	nng_aio_set_iov(p->aio[A_CRECV], 1, &iov);
	nng_aio_set_timeout(p->aio[A_CRECV], op_timeout(p, A_CRECV));
	p->busy |= BIT(A_CRECV);
	nng_stream_recv(p->client, p->aio[A_CRECV]);
}

static void
recv_leader(struct proxy *p)
{
	nng_iov iov = {p->down + p->downlen, DOWN_CAP - p->downlen};
	nng_aio_set_iov(p->aio[A_LRECV], 1, &iov);
	nng_aio_set_timeout(p->aio[A_LRECV], op_timeout(p, A_LRECV));
	p->busy |= BIT(A_LRECV);
	nng_stream_recv(p->leader, p->aio[A_LRECV]);
}

/* ---- ending ---- */

/* Close everything; the aios in flight come back with errors. */
static void
to_done(struct proxy *p)
{
	if (p->stage == S_DONE)
		return;
	p->stage = S_DONE;
	if (p->client)
		nng_stream_close(p->client);
	if (p->leader)
		nng_stream_close(p->leader);
	if (p->dialer)
		nng_stream_dialer_close(p->dialer);
	if (p->busy & BIT(A_TIMER))
		nng_aio_abort(p->aio[A_TIMER], NNG_ECANCELED);
}

/* The last frame is out: drop the leader and give the client
 * PROXY_LINGER_MS to close. */
static void
linger(struct proxy *p)
{
	p->stage = S_LINGER;
	if (p->leader)
		nng_stream_close(p->leader);
	recv_client(p);
	p->busy |= BIT(A_TIMER);
	nng_sleep_aio(PROXY_LINGER_MS, p->aio[A_TIMER]);
}

/* Send p->last, already filled, as the client's last frame. */
static void
send_last(struct proxy *p)
{
	p->stage = S_FINAL;
	if (p->leader)
		nng_stream_close(p->leader);
	send_start(p, A_CSEND, p->last.p, p->last.len);
	recv_client(p);
}

/* End with an ERROR frame of the proxy's own. */
static void
say(struct proxy *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
say(struct proxy *p, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_info("proxy: %s", msg);
	wbuf_reset(&p->last);
	if (wire_enc_error(&p->last, code, msg) != 0) {
		to_done(p);
		return;
	}
	send_last(p);
}

static void
unreachable(struct proxy *p, const char *why)
{
	say(p, BABL_EUNREACH, "cannot reach the leader at %.512s: %s", p->url, why);
}

/*
 * The leader's side is over (leader_gone) and every whole frame received
 * from it has been sent: end, with an ERROR unless the client already has
 * the call's last frame.  Runs once: it leaves PUMP.
 */
static void
leader_end(struct proxy *p)
{
	if (p->stage != S_PUMP)
		return;
	if (p->terminal) {
		linger(p);
		return;
	}
	say(p, BABL_EUNREACH, "the connection to the leader (%.512s) was lost "
	    "mid-call; retry (with --id KEY it runs at most once)", p->url);
}

/* The leader's connection failed (receive or send), or it broke the
 * framing.  Ends once neither a receive from it nor a send of its frames
 * to the client is in flight. */
static void
leader_lost(struct proxy *p)
{
	p->leader_gone = 1;
	nng_stream_close(p->leader);
	if (!(p->busy & (BIT(A_LRECV) | BIT(A_CSEND))))
		leader_end(p);
}

/* ---- pumping ---- */

/* Send the whole frames at the start of down[] to the client, or, if
 * there are none, read more from the leader. */
static void
forward_down(struct proxy *p)
{
	size_t whole = 0;
	while (whole < p->downlen) {
		struct wire_frame f;
		size_t used;
		int rc = wire_next_any(p->down + whole, p->downlen - whole, 0, &f,
		    &used);
		if (rc == BABL_EAGAIN)
			break;
		if (rc) {
			log_info("proxy: the leader at %s sent a %s frame; dropping it",
			    p->url, rc == BABL_ETOOBIG ? "oversized" : "malformed");
			p->downlen = whole;
			p->leader_gone = 1;
			nng_stream_close(p->leader);
			break;
		}
		p->terminal = f.type == WIRE_EXIT || f.type == WIRE_ERROR;
		whole += used;
	}
	if (whole)
		send_start(p, A_CSEND, p->down, whole);
	else if (p->leader_gone)
		leader_lost(p);
	else
		recv_leader(p);
}

/* WELCOME received and HELLO sent: send pre, then pump. */
static void
pump(struct proxy *p)
{
	p->stage = S_PUMP;
	if (p->uplen)
		send_start(p, A_LSEND, p->up, p->uplen);
	else
		recv_client(p);
	forward_down(p); /* anything the leader sent after WELCOME */
}

/* A reply to HELLO may be in down[]: act on it. */
static void
greet_reply(struct proxy *p)
{
	struct wire_frame f;
	size_t used;
	int rc = wire_next_any(p->down, p->downlen, 0, &f, &used);
	if (rc == BABL_EAGAIN) {
		if (now_ms() >= p->greet_deadline)
			unreachable(p, "no WELCOME in time");
		else
			recv_leader(p);
		return;
	}
	if (rc) {
		unreachable(p, "it sent a malformed frame");
		return;
	}
	if (f.type == WIRE_ERROR) { /* its own reason: pass it on as it is */
		wbuf_reset(&p->last);
		if (wb_raw(&p->last, p->down, used) != 0) {
			to_done(p);
			return;
		}
		log_info("proxy: the leader at %s refused the connection", p->url);
		send_last(p);
		return;
	}
	struct wire_welcome w;
	if (f.type != WIRE_WELCOME || wire_dec_welcome(&f, &w) != 0) {
		char why[64];
		snprintf(why, sizeof why, "unexpected reply (frame type 0x%02x)",
		    f.type);
		unreachable(p, why);
		return;
	}
	if (w.version != WIRE_VERSION) {
		char why[64];
		snprintf(why, sizeof why, "it speaks wire version %u, not %u",
		    (unsigned)w.version, (unsigned)WIRE_VERSION);
		unreachable(p, why);
		return;
	}
	memmove(p->down, p->down + used, p->downlen - used);
	p->downlen -= used;
	p->welcomed = 1;
	if (p->hello_sent)
		pump(p);
}

/* Connected: say HELLO and wait for WELCOME. */
static void
greet(struct proxy *p)
{
	p->stage = S_GREET;
	p->greet_deadline = now_ms() + PROXY_GREET_MS;
	if (wire_enc_hello(&p->hello, AGENT) != 0) {
		unreachable(p, "out of memory");
		return;
	}
	send_start(p, A_LSEND, p->hello.p, p->hello.len);
	recv_leader(p);
}

/* ---- callbacks ---- */

static void proxy_free(struct proxy *p);

/* The end of every callback: unlock, and free the proxy if it is over. */
static void
leave(struct proxy *p)
{
	int over = p->stage == S_DONE && p->busy == 0;
	pthread_mutex_unlock(&p->lock);
	if (over)
		proxy_free(p);
}

static const char *
nng_why(int rv)
{
	return rv ? nng_strerror(rv) : "connection closed";
}

/*
 * The leader's connection failed before anything was forwarded (no dial,
 * or no greeting: it may have just died): when the set has a back
 * function, the client goes back to the node, to wait for the leader it
 * learns of next.  Returns 1 if it went back.
 */
static int
give_back(struct proxy *p)
{
	if (!p->ps->back)
		return 0;
	nng_stream *c = p->client;
	p->client = NULL;
	if (p->leader)
		nng_stream_close(p->leader); /* (its aios come back with errors) */
	p->ps->back(p->ps->back_arg, c, p->up, p->uplen);
	to_done(p);
	return 1;
}

static void
dial_cb(void *arg)
{
	struct proxy *p = arg;
	nng_aio *aio = p->aio[A_DIAL];
	int rv = nng_aio_result(aio);
	pthread_mutex_lock(&p->lock);
	p->busy &= ~BIT(A_DIAL);
	if (rv == 0)
		p->leader = nng_aio_get_output(aio, 0);
	/* The dialer has no other use; its free waits for nothing of ours. */
	nng_stream_dialer_free(p->dialer);
	p->dialer = NULL;
	if (p->stage == S_DIAL) {
		if (rv == 0)
			greet(p);
		else if (!give_back(p))
			unreachable(p, rv == NNG_ETIMEDOUT ? "no connection in time" :
			    nng_strerror(rv));
	} else if (p->leader) {
		nng_stream_close(p->leader);
	}
	leave(p);
}

static void
lsend_cb(void *arg)
{
	struct proxy *p = arg;
	nng_aio *aio = p->aio[A_LSEND];
	int rv = nng_aio_result(aio);
	pthread_mutex_lock(&p->lock);
	p->busy &= ~BIT(A_LSEND);
	if (rv == 0)
		p->lout.off += nng_aio_count(aio);
	if (p->stage == S_GREET) {
		if (rv) {
			if (rv == NNG_ETIMEDOUT || !give_back(p))
				unreachable(p, rv == NNG_ETIMEDOUT ? "HELLO not taken in time" :
				    nng_strerror(rv));
		} else if (p->lout.off < p->lout.len) {
			send_rest(p, A_LSEND);
		} else {
			p->hello_sent = 1;
			if (p->welcomed)
				pump(p);
		}
	} else if (p->stage == S_PUMP && !p->leader_gone) {
		if (rv) {
			log_debug("proxy: send to the leader at %s: %s", p->url,
			    nng_strerror(rv));
			leader_lost(p);
		} else if (p->lout.off < p->lout.len) {
			send_rest(p, A_LSEND);
		} else {
			p->uplen = 0;
			recv_client(p);
		}
	}
	leave(p);
}

static void
lrecv_cb(void *arg)
{
	struct proxy *p = arg;
	nng_aio *aio = p->aio[A_LRECV];
	int rv = nng_aio_result(aio);
	size_t n = rv ? 0 : nng_aio_count(aio);
	pthread_mutex_lock(&p->lock);
	p->busy &= ~BIT(A_LRECV);
	p->downlen += n;
	if (p->stage == S_GREET) {
		if (n)
			greet_reply(p);
		else if (rv == NNG_ETIMEDOUT || !give_back(p))
			unreachable(p, rv == NNG_ETIMEDOUT ? "no WELCOME in time" :
			    nng_why(rv));
	} else if (p->stage == S_PUMP) {
		if (n) {
			forward_down(p);
		} else {
			if (!p->leader_gone)
				log_debug("proxy: receive from the leader at %s: %s",
				    p->url, nng_why(rv));
			leader_lost(p);
		}
	}
	leave(p);
}

static void
csend_cb(void *arg)
{
	struct proxy *p = arg;
	nng_aio *aio = p->aio[A_CSEND];
	int rv = nng_aio_result(aio);
	pthread_mutex_lock(&p->lock);
	p->busy &= ~BIT(A_CSEND);
	if (rv == 0)
		p->cout.off += nng_aio_count(aio);
	if (rv || p->stage == S_DONE) {
		if (rv && p->stage != S_DONE)
			log_debug("proxy: send to the client: %s", nng_strerror(rv));
		to_done(p);
	} else if (p->cout.off < p->cout.len) {
		send_rest(p, A_CSEND);
	} else if (p->stage == S_PUMP) {
		/* Whole frames sent: keep the partial rest, read again. */
		size_t sent = p->cout.len;
		memmove(p->down, p->down + sent, p->downlen - sent);
		p->downlen -= sent;
		if (p->leader_gone) {
			if (!(p->busy & BIT(A_LRECV)))
				leader_end(p);
		} else {
			forward_down(p);
		}
	} else if (p->stage == S_FINAL) {
		linger(p);
	}
	leave(p);
}

static void
crecv_cb(void *arg)
{
	struct proxy *p = arg;
	nng_aio *aio = p->aio[A_CRECV];
	int rv = nng_aio_result(aio);
	size_t n = rv ? 0 : nng_aio_count(aio);
	pthread_mutex_lock(&p->lock);
	p->busy &= ~BIT(A_CRECV);
	if (n == 0) {
		/* The client is gone: so is the reason to talk to the leader. */
		if (p->stage != S_DONE && p->stage != S_LINGER)
			log_debug("proxy: receive from the client: %s", nng_why(rv));
		to_done(p);
	} else if (p->stage == S_PUMP && !p->leader_gone &&
	    !(p->busy & BIT(A_LSEND))) {
		p->uplen = n;
		send_start(p, A_LSEND, p->up, n);
	} else if (p->stage == S_PUMP || p->stage == S_FINAL ||
	    p->stage == S_LINGER) {
		recv_client(p); /* the leader is gone: drop what came */
	}
	leave(p);
}

static void
timer_cb(void *arg)
{
	struct proxy *p = arg;
	int rv = nng_aio_result(p->aio[A_TIMER]);
	pthread_mutex_lock(&p->lock);
	p->busy &= ~BIT(A_TIMER);
	if (rv == 0 && p->stage == S_LINGER) {
		log_debug("proxy: the client did not close within %d ms; closing it",
		    PROXY_LINGER_MS);
		to_done(p);
	}
	leave(p);
}

static void (*const callbacks[A_N])(void *) = {
	[A_DIAL] = dial_cb,
	[A_CRECV] = crecv_cb,
	[A_CSEND] = csend_cb,
	[A_LRECV] = lrecv_cb,
	[A_LSEND] = lsend_cb,
	[A_TIMER] = timer_cb,
};

/* ---- the set ---- */

/* Called with nothing in flight and no lock held. */
static void
proxy_free(struct proxy *p)
{
	struct proxy_set *ps = p->ps;
	pthread_mutex_lock(&ps->lock);
	if (p->prev)
		p->prev->next = p->next;
	else
		ps->list = p->next;
	if (p->next)
		p->next->prev = p->prev;
	pthread_mutex_unlock(&ps->lock);

	for (int k = 0; k < A_N; k++)
		if (p->aio[k])
			nng_aio_reap(p->aio[k]);
	if (p->client)
		nng_stream_free(p->client);
	if (p->leader)
		nng_stream_free(p->leader);
	if (p->dialer)
		nng_stream_dialer_free(p->dialer);
	wbuf_free(&p->hello);
	wbuf_free(&p->last);
	free(p->up);
	free(p->down);
	free(p->url);
	pthread_mutex_destroy(&p->lock);
	free(p);

	pthread_mutex_lock(&ps->lock);
	if (--ps->live == 0)
		pthread_cond_broadcast(&ps->cv);
	pthread_mutex_unlock(&ps->lock);
}

int
proxy_set_open(struct proxy_set **out)
{
	struct proxy_set *ps = calloc(1, sizeof *ps);
	if (!ps)
		return BABL_ENOMEM;
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0) {
		free(ps);
		return BABL_ENOMEM;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rv = pthread_cond_init(&ps->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (rv != 0) {
		free(ps);
		return BABL_ENOMEM;
	}
	pthread_mutex_init(&ps->lock, NULL);
	*out = ps;
	return 0;
}

void
proxy_set_back(struct proxy_set *ps, proxy_back_fn fn, void *arg)
{
	pthread_mutex_lock(&ps->lock);
	ps->back = fn;
	ps->back_arg = arg;
	pthread_mutex_unlock(&ps->lock);
}

unsigned
proxy_set_count(struct proxy_set *ps)
{
	pthread_mutex_lock(&ps->lock);
	unsigned n = ps->live;
	pthread_mutex_unlock(&ps->lock);
	return n;
}

void
proxy_set_close(struct proxy_set *ps)
{
	if (!ps)
		return;
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += PROXY_CLOSE_MS / 1000;
	dl.tv_nsec += (long)(PROXY_CLOSE_MS % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&ps->lock);
	for (struct proxy *p = ps->list; p; p = p->next) {
		pthread_mutex_lock(&p->lock);
		to_done(p); /* something is in flight: its callback frees p */
		pthread_mutex_unlock(&p->lock);
	}
	int rv = 0;
	while (ps->live > 0 && rv == 0)
		rv = pthread_cond_timedwait(&ps->cv, &ps->lock, &dl);
	unsigned left = ps->live;
	pthread_mutex_unlock(&ps->lock);
	if (left) {
		log_warnx("proxy: %u connection(s) to the leader did not finish "
		    "closing within %d ms; leaving them", left, PROXY_CLOSE_MS);
		return;
	}
	pthread_cond_destroy(&ps->cv);
	pthread_mutex_destroy(&ps->lock);
	free(ps);
}

/* ---- starting ---- */

int
proxy_start(struct proxy_set *ps, nng_stream *client, const char *url,
    const void *pre, size_t prelen)
{
	if (!client)
		return BABL_EINPUT;
	if (!ps) {
		nng_stream_free(client);
		return BABL_EINPUT;
	}
	struct proxy *p = calloc(1, sizeof *p);
	if (!p) {
		nng_stream_free(client);
		return BABL_ENOMEM;
	}
	p->ps = ps;
	p->client = client;
	p->stage = S_DIAL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_lock(&ps->lock);
	p->next = ps->list;
	if (ps->list)
		ps->list->prev = p;
	ps->list = p;
	ps->live++;
	pthread_mutex_unlock(&ps->lock);

	/* From here on, failures end through the proxy's own machinery. */
	pthread_mutex_lock(&p->lock);
	int rc = 0, rv = 0;
	for (int k = 0; k < A_N && rc == 0; k++)
		if (nng_aio_alloc(&p->aio[k], callbacks[k], p) != 0)
			rc = BABL_ENOMEM;
	if (rc == 0 && !(p->url = strdup(url ? url : "(none)")))
		rc = BABL_ENOMEM;
	if (rc) {
		to_done(p);
	} else if (!url || (rv = conn_dialer_alloc(&p->dialer, url)) != 0) {
		rc = rv == NNG_ENOMEM ? BABL_ENOMEM : BABL_EINPUT;
		unreachable(p, url ? nng_strerror(rv) : "no URL");
	} else if (prelen > PROXY_PRE_MAX || (prelen && !pre)) {
		rc = BABL_EINPUT;
		say(p, BABL_EINPUT, "the request (%zu bytes) is too large to "
		    "forward to the leader", prelen);
	} else {
		p->upcap = prelen > UP_CAP ? prelen : UP_CAP;
		if (!(p->up = malloc(p->upcap)) || !(p->down = malloc(DOWN_CAP))) {
			rc = BABL_ENOMEM;
			say(p, BABL_ENOMEM, "out of memory for a connection to the "
			    "leader");
		} else {
			if (prelen)
				memcpy(p->up, pre, prelen);
			p->uplen = prelen;
			nng_aio_set_timeout(p->aio[A_DIAL], PROXY_DIAL_MS);
			p->busy |= BIT(A_DIAL);
			nng_stream_dialer_dial(p->dialer, p->aio[A_DIAL]);
		}
	}
	leave(p);
	return rc;
}
