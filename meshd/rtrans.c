/*
 * rtrans.c - the Raft transport over nng; see rtrans.h.
 *
 * What the nng threads touch: the received-batch ring, each peer's sdone
 * flag and t->woken, all under t->lock, and each peer's connection count,
 * which is atomic.  Everything else belongs to the caller's thread.
 */
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "raft.h"
#include "rtrans.h"
#include "wire.h"

#define BATCH_VERSION 1

/* One encoded raft message waiting for its peer. */
struct qmsg {
	struct qmsg *next, *prev;
	uint32_t len;
	uint8_t snap; /* 1 for a snapshot chunk, which is dropped last */
	uint8_t data[];
};

struct peer {
	struct rtrans *t;
	uint64_t id;
	char *url;
	nng_socket sock;
	nng_dialer d;
	nng_aio *aio;
	struct qmsg *head, *tail;
	unsigned nq;
	size_t qbytes;
	int busy;            /* a batch is in flight */
	unsigned inflight_n; /* raft messages in it */
	int sdone;           /* under t->lock: the send completed */
	atomic_int conns;    /* connections up, from pipe notifications */
	uint64_t sent, dropped;
};

struct rtrans {
	uint64_t self;
	int wake_fd;
	struct rtrans_config cfg;
	size_t frame_max; /* the largest batch this node sends or accepts */
	char *url;
	nng_socket pull;
	nng_listener l;
	nng_aio *raio;

	pthread_mutex_t lock;
	nng_msg **ring; /* received batches, cfg.recv_queue of them at most */
	unsigned rhead, rcount;
	int rpaused; /* the ring filled up, so no receive is pending */
	int woken;   /* wake_fd was written since rtrans_recv last looked */

	struct peer *peers[RTRANS_MAX_PEERS];
	unsigned npeers;

	nng_msg *cur; /* the batch being handed out, and where in it */
	size_t curoff;
	struct raft_entry *ents;
	struct wbuf enc;

	uint64_t sent, batches, received, dropped, malformed;
};

static int
nng_to_babl(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case NNG_ENOMEM:
		return BABL_ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP:
		return BABL_EINPUT;
	default:
		return BABL_EUNREACH;
	}
}

/* ---- what nng's threads do ---- */

static void
wake_fd_write(int fd)
{
	uint64_t one = 1;
	if (write(fd, &one, 8) < 0) {
		/* An eventfd write fails only on overflow, which cannot happen. */
	}
}

/* Note that there is work for the caller's thread: call with t->lock held;
 * returns 1 if the caller must write wake_fd once the lock is released. */
static int
mark_woken(struct rtrans *t)
{
	int need = !t->woken;
	t->woken = 1;
	return need;
}

static void
recv_cb(void *arg)
{
	struct rtrans *t = arg;
	int rv = nng_aio_result(t->raio);
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv != 0) {
		nng_recv_aio(t->pull, t->raio);
		return;
	}
	nng_msg *msg = nng_aio_get_msg(t->raio);
	pthread_mutex_lock(&t->lock);
	t->ring[(t->rhead + t->rcount) % t->cfg.recv_queue] = msg;
	t->rcount++;
	int full = t->rcount == t->cfg.recv_queue;
	if (full)
		t->rpaused = 1;
	int need = mark_woken(t);
	pthread_mutex_unlock(&t->lock);
	if (need)
		wake_fd_write(t->wake_fd);
	/* With a full ring the caller's thread asks for more once it has
	 * taken some, so a slow caller holds senders back, not memory. */
	if (!full)
		nng_recv_aio(t->pull, t->raio);
}

static void
send_cb(void *arg)
{
	struct peer *p = arg;
	struct rtrans *t = p->t;
	pthread_mutex_lock(&t->lock);
	p->sdone = 1;
	int need = mark_woken(t);
	pthread_mutex_unlock(&t->lock);
	if (need)
		wake_fd_write(t->wake_fd);
}

static void
pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct peer *p = arg;
	(void)pipe;
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&p->conns, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(&p->conns, 1);
}

/* ---- configuration and lifecycle ---- */

void
rtrans_config_default(struct rtrans_config *c)
{
	c->max_msg = 4u * 1024 * 1024;
	c->batch_bytes = 256u * 1024;
	c->queue_msgs = 8192;
	c->queue_bytes = 64u * 1024 * 1024;
	c->recv_queue = 256;
	c->recv_budget = 4096;
	c->send_timeout_ms = 2000;
}

/* The URL to dial: a tcp:// URL naming port 0 gets the bound port. */
static int
make_url(struct rtrans *t, const char *url)
{
	size_t n = strlen(url);
	int port = 0;
	if (strncmp(url, "tcp", 3) == 0 && n >= 2 && strcmp(url + n - 2, ":0") == 0 &&
	    nng_listener_get_int(t->l, NNG_OPT_TCP_BOUND_PORT, &port) == 0 &&
	    port > 0) {
		if (!(t->url = malloc(n + 8)))
			return BABL_ENOMEM;
		snprintf(t->url, n + 8, "%.*s:%d", (int)(n - 2), url, port);
		return 0;
	}
	return (t->url = strdup(url)) ? 0 : BABL_ENOMEM;
}

/*
 * What nng lets in: four times the largest batch, so that a peer
 * configured with a larger max_msg is counted as malformed here instead of
 * being refused by nng, which (seen with nng 1.5.2 over ipc) can leave the
 * connection stuck.
 */
static size_t
recv_max(const struct rtrans *t)
{
	return t->frame_max * 4;
}

int
rtrans_open(struct rtrans **out, uint64_t self_id, const char *listen_url,
    int wake_fd)
{
	return rtrans_open_cfg(out, self_id, listen_url, wake_fd, NULL);
}

int
rtrans_open_cfg(struct rtrans **out, uint64_t self_id,
    const char *listen_url, int wake_fd, const struct rtrans_config *cfg)
{
	struct rtrans_config c;
	if (cfg)
		c = *cfg;
	else
		rtrans_config_default(&c);
	*out = NULL;
	if (self_id == 0 || !listen_url || wake_fd < 0 || c.max_msg == 0 ||
	    c.max_msg > UINT32_MAX - 64 || c.batch_bytes == 0 ||
	    c.batch_bytes > UINT32_MAX - 64 || c.queue_msgs == 0 ||
	    c.queue_bytes < c.max_msg || c.recv_queue == 0 || c.recv_budget == 0)
		return BABL_EINPUT;

	struct rtrans *t = calloc(1, sizeof(*t));
	if (!t)
		return BABL_ENOMEM;
	t->self = self_id;
	t->wake_fd = wake_fd;
	t->cfg = c;
	t->frame_max = (c.batch_bytes > c.max_msg + 4 ? c.batch_bytes : c.max_msg + 4) + 1;
	pthread_mutex_init(&t->lock, NULL);
	t->ring = calloc(c.recv_queue, sizeof(*t->ring));
	t->ents = calloc(RAFT_MSG_MAX_ENTRIES, sizeof(*t->ents));
	if (!t->ring || !t->ents) {
		free(t->ring);
		free(t->ents);
		pthread_mutex_destroy(&t->lock);
		free(t);
		return BABL_ENOMEM;
	}

	int rv, rc;
	if ((rv = nng_pull0_open(&t->pull)) != 0) {
		rc = nng_to_babl(rv);
		goto fail_nosock;
	}
	if ((rv = nng_socket_set_size(t->pull, NNG_OPT_RECVMAXSZ, recv_max(t))) ||
	    (rv = nng_aio_alloc(&t->raio, recv_cb, t))) {
		rc = nng_to_babl(rv);
		goto fail;
	}
	if ((rv = nng_listener_create(&t->l, t->pull, listen_url))) {
		rc = rv == NNG_ENOMEM ? BABL_ENOMEM : BABL_EINPUT;
		goto fail;
	}
	if ((rv = nng_listener_set_size(t->l, NNG_OPT_RECVMAXSZ, recv_max(t))) ||
	    (rv = nng_listener_start(t->l, 0))) {
		rc = rv == NNG_ENOMEM ? BABL_ENOMEM : BABL_EUNREACH;
		goto fail;
	}
	if ((rc = make_url(t, listen_url)))
		goto fail;
	nng_recv_aio(t->pull, t->raio);
	*out = t;
	return 0;

fail:
	nng_close(t->pull);
	nng_aio_free(t->raio);
fail_nosock:
	free(t->url);
	free(t->ring);
	free(t->ents);
	pthread_mutex_destroy(&t->lock);
	free(t);
	return rc;
}

const char *
rtrans_url(const struct rtrans *t)
{
	return t->url;
}

static struct peer *
find_peer(const struct rtrans *t, uint64_t id, unsigned *slot)
{
	for (unsigned i = 0; i < t->npeers; i++)
		if (t->peers[i]->id == id) {
			if (slot)
				*slot = i;
			return t->peers[i];
		}
	return NULL;
}

static void
q_unlink(struct peer *p, struct qmsg *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		p->head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	else
		p->tail = q->prev;
	p->nq--;
	p->qbytes -= q->len;
}

/* Count the batch a finished send carried, as sent or as dropped. */
static void
count_send(struct rtrans *t, struct peer *p)
{
	if (!p->busy)
		return;
	if (nng_aio_result(p->aio) != 0) {
		nng_msg_free(nng_aio_get_msg(p->aio));
		t->dropped += p->inflight_n;
		p->dropped += p->inflight_n;
	} else {
		t->sent += p->inflight_n;
		p->sent += p->inflight_n;
		t->batches++;
	}
	p->busy = 0;
	p->inflight_n = 0;
}

/* Close a peer's socket and free it; what it held counts as dropped. */
static void
peer_free(struct rtrans *t, struct peer *p)
{
	if (p->aio)
		nng_aio_stop(p->aio);
	nng_close(p->sock);
	count_send(t, p);
	if (p->aio)
		nng_aio_free(p->aio);
	while (p->head) {
		struct qmsg *q = p->head;
		q_unlink(p, q);
		free(q);
		t->dropped++;
	}
	free(p->url);
	free(p);
}

int
rtrans_add_peer(struct rtrans *t, uint64_t id, const char *url)
{
	if (id == 0 || id == t->self || !url)
		return BABL_EINPUT;
	struct peer *old = find_peer(t, id, NULL);
	if (old) {
		if (strcmp(old->url, url) == 0)
			return 0;
		rtrans_remove_peer(t, id);
	}
	if (t->npeers == RTRANS_MAX_PEERS)
		return BABL_ELIMIT;

	struct peer *p = calloc(1, sizeof(*p));
	if (!p || !(p->url = strdup(url))) {
		free(p);
		return BABL_ENOMEM;
	}
	p->t = t;
	p->id = id;
	atomic_init(&p->conns, 0);
	int rv;
	if ((rv = nng_push0_open(&p->sock)) != 0) {
		free(p->url);
		free(p);
		return nng_to_babl(rv);
	}
	if ((rv = nng_pipe_notify(p->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, p)) ||
	    (rv = nng_pipe_notify(p->sock, NNG_PIPE_EV_REM_POST, pipe_cb, p)) ||
	    (rv = nng_aio_alloc(&p->aio, send_cb, p)) ||
	    (rv = nng_dialer_create(&p->d, p->sock, url)) ||
	    (rv = nng_dialer_set_ms(p->d, NNG_OPT_RECONNMINT, RTRANS_RECONN_MIN_MS)) ||
	    (rv = nng_dialer_set_ms(p->d, NNG_OPT_RECONNMAXT, RTRANS_RECONN_MAX_MS)) ||
	    (rv = nng_dialer_start(p->d, NNG_FLAG_NONBLOCK))) {
		peer_free(t, p);
		return rv == NNG_ENOMEM ? BABL_ENOMEM : BABL_EINPUT;
	}
	t->peers[t->npeers++] = p;
	return 0;
}

int
rtrans_remove_peer(struct rtrans *t, uint64_t id)
{
	unsigned i;
	struct peer *p = find_peer(t, id, &i);
	if (!p)
		return BABL_ENOENT;
	t->peers[i] = t->peers[--t->npeers];
	peer_free(t, p);
	return 0;
}

void
rtrans_close(struct rtrans *t)
{
	if (!t)
		return;
	while (t->npeers)
		rtrans_remove_peer(t, t->peers[0]->id);
	nng_close(t->pull);
	nng_aio_free(t->raio);
	for (unsigned i = 0; i < t->rcount; i++)
		nng_msg_free(t->ring[(t->rhead + i) % t->cfg.recv_queue]);
	if (t->cur)
		nng_msg_free(t->cur);
	wbuf_free(&t->enc);
	free(t->url);
	free(t->ring);
	free(t->ents);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* ---- sending ---- */

/* If nothing is in flight for p, send what is queued: as many messages as
 * fit in one batch (one at least). */
static void
kick(struct rtrans *t, struct peer *p)
{
	if (p->busy || !p->head)
		return;
	size_t total = 1;
	unsigned n = 0;
	for (struct qmsg *q = p->head; q; q = q->next) {
		size_t sz = 4 + (size_t)q->len;
		if (n > 0 && total + sz > t->cfg.batch_bytes + 1)
			break;
		total += sz;
		n++;
	}
	nng_msg *msg;
	if (nng_msg_alloc(&msg, total) != 0)
		return; /* The next rtrans_send or completion tries again. */
	uint8_t *b = nng_msg_body(msg);
	*b++ = BATCH_VERSION;
	for (unsigned i = 0; i < n; i++) {
		struct qmsg *q = p->head;
		be32_put(b, q->len);
		memcpy(b + 4, q->data, q->len);
		b += 4 + (size_t)q->len;
		q_unlink(p, q);
		free(q);
	}
	p->busy = 1;
	p->inflight_n = n;
	nng_aio_set_msg(p->aio, msg);
	nng_aio_set_timeout(p->aio, t->cfg.send_timeout_ms ?
	    (nng_duration)t->cfg.send_timeout_ms : NNG_DURATION_INFINITE);
	nng_send_aio(p->sock, p->aio);
}

/* A send of p finished: count it, and send what queued meanwhile. */
static void
sent(struct rtrans *t, struct peer *p)
{
	if (!p->busy)
		return;
	count_send(t, p);
	kick(t, p);
}

/* Drop one queued message to make room: the oldest that is not a
 * snapshot chunk, or else the oldest. */
static void
drop_one(struct rtrans *t, struct peer *p)
{
	struct qmsg *q = p->head;
	while (q && q->snap)
		q = q->next;
	if (!q)
		q = p->head;
	q_unlink(p, q);
	free(q);
	t->dropped++;
	p->dropped++;
}

int
rtrans_send(struct rtrans *t, const struct raft_msg *m)
{
	struct peer *p = find_peer(t, m->to, NULL);
	if (!p)
		return BABL_ENOENT;
	wbuf_reset(&t->enc);
	int rc = raft_msg_encode(&t->enc, m);
	if (rc)
		return rc;
	size_t len = t->enc.len;
	if (len > t->cfg.max_msg)
		return BABL_ETOOBIG;
	struct qmsg *q = malloc(sizeof(*q) + len);
	if (!q)
		return BABL_ENOMEM;
	q->len = (uint32_t)len;
	q->snap = m->type == RAFT_MSG_SNAP;
	memcpy(q->data, t->enc.p, len);
	while (p->nq > 0 && (p->nq + 1 > t->cfg.queue_msgs ||
	    p->qbytes + len > t->cfg.queue_bytes))
		drop_one(t, p);
	q->next = NULL;
	q->prev = p->tail;
	if (p->tail)
		p->tail->next = q;
	else
		p->head = q;
	p->tail = q;
	p->nq++;
	p->qbytes += len;
	kick(t, p);
	return 0;
}

/* ---- receiving ---- */

/* The next received batch, or NULL; asks nng for more if the ring had
 * filled up. */
static nng_msg *
ring_pop(struct rtrans *t)
{
	nng_msg *msg = NULL;
	int rearm = 0;
	pthread_mutex_lock(&t->lock);
	if (t->rcount) {
		msg = t->ring[t->rhead];
		t->rhead = (t->rhead + 1) % t->cfg.recv_queue;
		t->rcount--;
		if (t->rpaused) {
			t->rpaused = 0;
			rearm = 1;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (rearm)
		nng_recv_aio(t->pull, t->raio);
	return msg;
}

static void
drop_cur(struct rtrans *t)
{
	nng_msg_free(t->cur);
	t->cur = NULL;
	t->curoff = 0;
}

int
rtrans_recv(struct rtrans *t, rtrans_recv_fn fn, void *ctx)
{
	int done[RTRANS_MAX_PEERS];
	pthread_mutex_lock(&t->lock);
	t->woken = 0;
	for (unsigned i = 0; i < t->npeers; i++) {
		done[i] = t->peers[i]->sdone;
		t->peers[i]->sdone = 0;
	}
	pthread_mutex_unlock(&t->lock);
	for (unsigned i = 0; i < t->npeers; i++)
		if (done[i])
			sent(t, t->peers[i]);

	unsigned delivered = 0;
	while (delivered < t->cfg.recv_budget) {
		if (!t->cur) {
			if (!(t->cur = ring_pop(t)))
				break;
			const uint8_t *b = nng_msg_body(t->cur);
			size_t n = nng_msg_len(t->cur);
			if (n < 1 || n > t->frame_max || b[0] != BATCH_VERSION) {
				t->malformed++;
				drop_cur(t);
				continue;
			}
			t->curoff = 1;
		}
		const uint8_t *b = nng_msg_body(t->cur);
		size_t len = nng_msg_len(t->cur);
		if (t->curoff == len) {
			drop_cur(t);
			continue;
		}
		size_t left = len - t->curoff;
		uint32_t flen = left >= 4 ? be32_get(b + t->curoff) : 0;
		if (left < 4 || flen > left - 4) {
			t->malformed++;
			drop_cur(t);
			continue;
		}
		struct raft_msg m;
		int rc = raft_msg_decode(b + t->curoff + 4, flen, &m, t->ents,
		    RAFT_MSG_MAX_ENTRIES);
		t->curoff += 4 + (size_t)flen;
		if (rc != 0 || m.to != t->self) {
			t->malformed++;
			continue;
		}
		t->received++;
		delivered++;
		fn(ctx, &m);
	}

	/* Work left over: come back through the poll loop. */
	if (delivered == t->cfg.recv_budget) {
		pthread_mutex_lock(&t->lock);
		int more = t->cur || t->rcount;
		int need = more && mark_woken(t);
		pthread_mutex_unlock(&t->lock);
		if (need)
			wake_fd_write(t->wake_fd);
	}
	return (int)delivered;
}

void
rtrans_stats(const struct rtrans *t, struct rtrans_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->sent = t->sent;
	st->batches = t->batches;
	st->received = t->received;
	st->dropped = t->dropped;
	st->malformed = t->malformed;
	st->npeers = t->npeers;
	for (unsigned i = 0; i < t->npeers; i++) {
		const struct peer *p = t->peers[i];
		struct rtrans_peer_stats *ps = &st->peers[i];
		ps->id = p->id;
		ps->connected = atomic_load(&((struct peer *)p)->conns) > 0;
		ps->queued = p->nq;
		ps->queued_bytes = p->qbytes;
		ps->sent = p->sent;
		ps->dropped = p->dropped;
	}
}
