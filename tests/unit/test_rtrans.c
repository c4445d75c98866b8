/*
 * test_rtrans.c - the Raft transport (meshd/rtrans.c): transports in one
 * process, over ipc:// in a temporary directory and over tcp:// on
 * loopback, driven from this one thread as meshd's main loop drives its
 * own: poll the eventfds, then rtrans_recv.  Every message type round
 * trips; batches arrive complete and in order; a late or restarted peer
 * gets its messages; a full queue drops and counts; garbage is counted
 * and survived; snapshot chunks of the largest size pass.  Last, an
 * informational figure: small appends per second between two transports.
 */
#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "raft.h"
#include "rtrans.h"
#include "wire.h"

#include "t.h"
#define T_TMP_PREFIX "rtrans"
#include "t_ipc.h"

/* ---- harness ----------------------------------------------------------- */


/* What a transport has received: fields of every message, and the
 * encoding of each too if keep is set. */
struct got {
	uint8_t type;
	uint64_t from, commit;
	uint8_t *enc;
	size_t len;
};

struct tn {
	uint64_t id;
	int efd;
	struct rtrans *t;
	char url[256];
	int keep;
	struct got *g;
	size_t n, cap;
};

static void
on_msg(void *ctx, const struct raft_msg *m)
{
	struct tn *n = ctx;
	if (n->n == n->cap) {
		n->cap = n->cap ? 2 * n->cap : 1024;
		n->g = realloc(n->g, n->cap * sizeof(*n->g));
		if (!n->g)
			abort();
	}
	struct got *g = &n->g[n->n++];
	memset(g, 0, sizeof(*g));
	g->type = m->type;
	g->from = m->from;
	g->commit = m->commit;
	if (n->keep) {
		struct wbuf b = {0};
		if (raft_msg_encode(&b, m) != 0)
			abort();
		g->enc = b.p;
		g->len = b.len;
	}
}

static void
tn_forget(struct tn *n)
{
	for (size_t i = 0; i < n->n; i++)
		free(n->g[i].enc);
	n->n = 0;
}

/* Open node id listening on url (copied), with cfg (NULL: defaults). */
static void
tn_open(struct tn *n, uint64_t id, const char *url, const struct rtrans_config *cfg)
{
	n->id = id;
	if (n->efd <= 0)
		n->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	T_ASSERT(n->efd > 0);
	if (url != n->url)
		snprintf(n->url, sizeof(n->url), "%s", url);
	T_EQ_INT(rtrans_open_cfg(&n->t, id, n->url, n->efd, cfg), 0);
}

static void
tn_stop(struct tn *n)
{
	rtrans_close(n->t);
	n->t = NULL;
}

static void
tn_free(struct tn *n)
{
	tn_stop(n);
	tn_forget(n);
	free(n->g);
	if (n->efd > 0)
		close(n->efd);
	memset(n, 0, sizeof(*n));
}

/* One turn of the main loop over nodes ns[0..k): wait up to ms for an
 * eventfd, then let every open transport handle what completed. */
static void
pump(struct tn **ns, int k, int ms)
{
	struct pollfd pfd[8];
	for (int i = 0; i < k; i++)
		pfd[i] = (struct pollfd){ns[i]->efd, POLLIN, 0};
	if (poll(pfd, (nfds_t)k, ms) < 0)
		return;
	for (int i = 0; i < k; i++) {
		uint64_t v;
		if (read(ns[i]->efd, &v, 8) < 0) {
			/* Nothing was signalled: a spurious call is fine. */
		}
		if (ns[i]->t)
			rtrans_recv(ns[i]->t, on_msg, ns[i]);
	}
}

/* Pump until cond holds, for at most ms: 1 if it held. */
#define PUMP_UNTIL(ns, k, ms, cond)                                        \
	({                                                                 \
		uint64_t pu_end_ = now_ms() + (ms);                        \
		int pu_ok_ = 0;                                            \
		while (!(pu_ok_ = (cond)) && now_ms() < pu_end_)           \
			pump((ns), (k), 10);                               \
		pu_ok_;                                                    \
	})

static struct rtrans_stats
stats(struct tn *n)
{
	struct rtrans_stats st;
	rtrans_stats(n->t, &st);
	return st;
}

static int
peer_connected(struct tn *n, uint64_t id)
{
	struct rtrans_stats st = stats(n);
	for (unsigned i = 0; i < st.npeers; i++)
		if (st.peers[i].id == id)
			return st.peers[i].connected;
	return -1;
}

/* ---- messages ---------------------------------------------------------- */

static uint8_t edata[] = {'a', 0, 0xff, 'z'};
static uint8_t sdata[100];
static struct raft_entry ents[3] = {
	{11, 4, RAFT_ENT_NORMAL, 4, edata},
	{12, 4, RAFT_ENT_CONF, 1, edata},
	{13, 5, RAFT_ENT_NOOP, 0, NULL},
};

/* A message of type t from -> to, with every field its type carries. */
static struct raft_msg
mk(uint8_t t, uint64_t from, uint64_t to)
{
	struct raft_msg m;
	memset(&m, 0, sizeof(m));
	m.type = t;
	m.from = from;
	m.to = to;
	m.term = 5;
	m.index = 10;
	m.log_term = 4;
	m.commit = 9;
	m.hint = 3;
	m.hint_term = 2;
	if (t == RAFT_MSG_PREVOTE_RESP || t == RAFT_MSG_APPEND_RESP)
		m.flags = RAFT_F_REJECT;
	if (t == RAFT_MSG_VOTE)
		m.flags = RAFT_F_TRANSFER;
	if (t == RAFT_MSG_APPEND) {
		m.nentries = 3;
		m.entries = ents;
	}
	if (t == RAFT_MSG_SNAP) {
		for (size_t i = 0; i < sizeof(sdata); i++)
			sdata[i] = (uint8_t)(i * 7 + 1);
		m.snap.index = 100;
		m.snap.term = 3;
		m.snap.size = 1000;
		m.snap.conf.n = 3;
		for (uint32_t i = 0; i < 3; i++)
			m.snap.conf.s[i] = (struct raft_server){i + 1, i < 2};
		m.off = 200;
		m.len = sizeof(sdata);
		m.data = sdata;
	}
	return m;
}

static struct raft_msg
heartbeat(uint64_t from, uint64_t to, uint64_t commit)
{
	struct raft_msg m;
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_HEARTBEAT;
	m.from = from;
	m.to = to;
	m.term = 1;
	m.commit = commit;
	return m;
}

static int
same_encoding(const struct got *g, const struct raft_msg *m)
{
	struct wbuf b = {0};
	int ok = raft_msg_encode(&b, m) == 0 && b.len == g->len &&
	    memcmp(b.p, g->enc, b.len) == 0;
	wbuf_free(&b);
	return ok;
}

/* ---- cases ------------------------------------------------------------- */

static int
all_have(const struct tn *ns, int k, size_t want)
{
	for (int i = 0; i < k; i++)
		if (ns[i].n != want)
			return 0;
	return 1;
}

/* Every node sends every type to every other; each receives them all, in
 * order per sender, equal to what was sent. */
static void
roundtrip(struct tn *ns, int k)
{
	struct tn *ps[4];
	for (int i = 0; i < k; i++) {
		ps[i] = &ns[i];
		ns[i].keep = 1;
	}
	for (int i = 0; i < k; i++)
		for (int j = 0; j < k; j++)
			if (i != j)
				T_EQ_INT(rtrans_add_peer(ns[i].t, ns[j].id,
				    rtrans_url(ns[j].t)), 0);
	for (uint8_t ty = 1; ty <= RAFT_MSG_MAX; ty++)
		for (int i = 0; i < k; i++)
			for (int j = 0; j < k; j++)
				if (i != j) {
					struct raft_msg m = mk(ty, ns[i].id, ns[j].id);
					T_EQ_INT(rtrans_send(ns[i].t, &m), 0);
				}
	size_t want = (size_t)(k - 1) * RAFT_MSG_MAX;
	T_ASSERT(PUMP_UNTIL(ps, k, 5000, all_have(ns, k, want)));
	for (int j = 0; j < k; j++) {
		for (int i = 0; i < k; i++) {
			if (i == j)
				continue;
			uint8_t ty = 1;
			for (size_t x = 0; x < ns[j].n; x++) {
				const struct got *g = &ns[j].g[x];
				if (g->from != ns[i].id)
					continue;
				T_EQ_INT(g->type, ty);
				struct raft_msg m = mk(ty, ns[i].id, ns[j].id);
				T_ASSERT(same_encoding(g, &m));
				ty++;
			}
			T_EQ_INT(ty, RAFT_MSG_MAX + 1);
		}
		struct rtrans_stats st = stats(&ns[j]);
		T_EQ_INT(st.received, want);
		T_EQ_INT(st.malformed, 0);
		T_EQ_INT(st.dropped, 0);
	}
}

static void
case_all_types_ipc(void)
{
	struct tn ns[3] = {0};
	for (int i = 0; i < 3; i++) {
		char url[256];
		ipc_url(url, sizeof(url), "n");
		tn_open(&ns[i], (uint64_t)i + 1, url, NULL);
	}
	roundtrip(ns, 3);
	for (int i = 0; i < 3; i++)
		tn_free(&ns[i]);
}

static void
case_all_types_tcp(void)
{
	struct tn ns[2] = {0};
	for (int i = 0; i < 2; i++) {
		tn_open(&ns[i], (uint64_t)i + 10, "tcp://127.0.0.1:0", NULL);
		T_ASSERT(strcmp(rtrans_url(ns[i].t), "tcp://127.0.0.1:0") != 0);
		T_ASSERT(strncmp(rtrans_url(ns[i].t), "tcp://127.0.0.1:", 16) == 0);
	}
	roundtrip(ns, 2);
	for (int i = 0; i < 2; i++)
		tn_free(&ns[i]);
}

/* Two senders, 1,000 messages each, to one receiver: all arrive, in order
 * per sender, in fewer nng messages than raft messages. */
static void
case_batch_1000_in_order(void)
{
	struct tn ns[3] = {0};
	struct tn *ps[3] = {&ns[0], &ns[1], &ns[2]};
	for (int i = 0; i < 3; i++) {
		char url[256];
		ipc_url(url, sizeof(url), "b");
		tn_open(&ns[i], (uint64_t)i + 1, url, NULL);
	}
	T_EQ_INT(rtrans_add_peer(ns[0].t, 2, ns[1].url), 0);
	T_EQ_INT(rtrans_add_peer(ns[2].t, 2, ns[1].url), 0);
	for (uint64_t c = 1; c <= 1000; c++) {
		struct raft_msg a = heartbeat(1, 2, c), b = heartbeat(3, 2, c);
		T_EQ_INT(rtrans_send(ns[0].t, &a), 0);
		T_EQ_INT(rtrans_send(ns[2].t, &b), 0);
	}
	T_ASSERT(PUMP_UNTIL(ps, 3, 5000, ns[1].n == 2000));
	uint64_t next[4] = {0, 1, 0, 1};
	for (size_t x = 0; x < ns[1].n; x++) {
		const struct got *g = &ns[1].g[x];
		T_ASSERT(g->from == 1 || g->from == 3);
		T_EQ_INT(g->commit, next[g->from]);
		next[g->from]++;
	}
	T_ASSERT(PUMP_UNTIL(ps, 3, 2000,
	    stats(&ns[0]).sent == 1000 && stats(&ns[2]).sent == 1000));
	struct rtrans_stats st = stats(&ns[0]);
	T_EQ_INT(st.dropped, 0);
	T_ASSERT(st.batches < 1000);
	fprintf(stderr, "       1000 messages went in %llu nng messages\n",
	    (unsigned long long)st.batches);
	T_EQ_INT(stats(&ns[1]).malformed, 0);
	for (int i = 0; i < 3; i++)
		tn_free(&ns[i]);
}

/* A peer that listens only later gets what was queued for it. */
static void
case_late_listener(void)
{
	struct tn a = {0}, b = {0};
	struct tn *ps[2] = {&a, &b};
	char url[256];
	ipc_url(url, sizeof(url), "a");
	tn_open(&a, 1, url, NULL);
	ipc_url(b.url, sizeof(b.url), "late");
	T_EQ_INT(rtrans_add_peer(a.t, 2, b.url), 0);
	for (uint64_t c = 1; c <= 10; c++) {
		struct raft_msg m = heartbeat(1, 2, c);
		T_EQ_INT(rtrans_send(a.t, &m), 0);
	}
	PUMP_UNTIL(ps, 1, 300, 0);
	T_EQ_INT(peer_connected(&a, 2), 0);
	tn_open(&b, 2, b.url, NULL);
	uint64_t t0 = now_ms();
	T_ASSERT(PUMP_UNTIL(ps, 2, 5000, b.n == 10));
	for (size_t x = 0; x < 10; x++)
		T_EQ_INT(b.g[x].commit, x + 1);
	T_ASSERT(PUMP_UNTIL(ps, 2, 2000, peer_connected(&a, 2) == 1));
	fprintf(stderr, "       delivered %llu ms after the peer started\n",
	    (unsigned long long)(now_ms() - t0));
	tn_free(&a);
	tn_free(&b);
}

/* A peer that goes away and comes back at the same URL: the connection
 * is seen down, then up, and messages flow again both ways. */
static void
case_peer_restart(void)
{
	struct tn a = {0}, b = {0};
	struct tn *ps[2] = {&a, &b};
	char url[256];
	ipc_url(url, sizeof(url), "a");
	tn_open(&a, 1, url, NULL);
	ipc_url(url, sizeof(url), "b");
	tn_open(&b, 2, url, NULL);
	T_EQ_INT(rtrans_add_peer(a.t, 2, b.url), 0);
	for (uint64_t c = 1; c <= 5; c++) {
		struct raft_msg m = heartbeat(1, 2, c);
		T_EQ_INT(rtrans_send(a.t, &m), 0);
	}
	T_ASSERT(PUMP_UNTIL(ps, 2, 5000, b.n == 5));
	T_ASSERT(PUMP_UNTIL(ps, 2, 2000, peer_connected(&a, 2) == 1));

	tn_stop(&b);
	tn_forget(&b);
	T_ASSERT(PUMP_UNTIL(ps, 1, 3000, peer_connected(&a, 2) == 0));
	struct raft_msg m = heartbeat(1, 2, 100);
	T_EQ_INT(rtrans_send(a.t, &m), 0); /* may be lost: Raft resends */
	PUMP_UNTIL(ps, 1, 200, 0);

	tn_open(&b, 2, b.url, NULL);
	T_EQ_INT(rtrans_add_peer(b.t, 1, a.url), 0);
	uint64_t c = 200, end = now_ms() + 5000;
	while (b.n == 0 && now_ms() < end) {
		m = heartbeat(1, 2, ++c);
		T_EQ_INT(rtrans_send(a.t, &m), 0);
		PUMP_UNTIL(ps, 2, 50, b.n > 0);
	}
	T_ASSERT(b.n > 0);
	T_ASSERT(PUMP_UNTIL(ps, 2, 2000, peer_connected(&a, 2) == 1));
	m = heartbeat(2, 1, 7);
	T_EQ_INT(rtrans_send(b.t, &m), 0);
	T_ASSERT(PUMP_UNTIL(ps, 2, 5000, a.n == 1));
	T_EQ_INT(a.g[0].commit, 7);
	tn_free(&a);
	tn_free(&b);
}

/* Queues are bounded: the oldest non-snapshot messages go first, every
 * drop is counted, and what is kept arrives once the peer listens. */
static void
case_full_queue_drops(void)
{
	struct rtrans_config cfg;
	rtrans_config_default(&cfg);
	cfg.queue_msgs = 16;
	cfg.max_msg = 16 * 1024;
	cfg.queue_bytes = 64 * 1024;
	cfg.send_timeout_ms = 0; /* the first batch waits for the peer */
	struct tn a = {0}, b = {0};
	struct tn *ps[2] = {&a, &b};
	char url[256];
	ipc_url(url, sizeof(url), "a");
	tn_open(&a, 1, url, &cfg);
	ipc_url(b.url, sizeof(b.url), "b");
	T_EQ_INT(rtrans_add_peer(a.t, 2, b.url), 0);

	/* By count: message 1 is in flight, 2 is a snapshot chunk, 3..100
	 * are heartbeats of which the newest 15 fit. */
	struct raft_msg m = heartbeat(1, 2, 1);
	T_EQ_INT(rtrans_send(a.t, &m), 0);
	m = mk(RAFT_MSG_SNAP, 1, 2);
	T_EQ_INT(rtrans_send(a.t, &m), 0);
	for (uint64_t c = 3; c <= 100; c++) {
		m = heartbeat(1, 2, c);
		T_EQ_INT(rtrans_send(a.t, &m), 0);
	}
	struct rtrans_stats st = stats(&a);
	T_EQ_INT(st.peers[0].queued, 16);
	T_EQ_INT(st.dropped, 83);

	/* By bytes: only snapshot chunks of 10 KiB to a peer that never
	 * listens; the oldest go. */
	static uint8_t big[10 * 1024];
	T_EQ_INT(rtrans_add_peer(a.t, 3, "ipc:///nonexistent/rtrans-nobody"), 0);
	for (int i = 0; i < 20; i++) {
		m = mk(RAFT_MSG_SNAP, 1, 3);
		m.snap.size = 1u << 20;
		m.off = (uint64_t)i * sizeof(big);
		m.len = sizeof(big);
		m.data = big;
		T_EQ_INT(rtrans_send(a.t, &m), 0);
	}
	st = stats(&a);
	T_EQ_INT(st.peers[1].id, 3);
	T_ASSERT(st.peers[1].queued_bytes <= cfg.queue_bytes);
	T_EQ_INT(st.peers[1].queued, 6);
	T_EQ_INT(st.peers[1].dropped, 20 - 1 - 6);
	T_EQ_INT(st.dropped, 83 + 13);

	/* Too big for this transport's max_msg. */
	static uint8_t huge[16 * 1024];
	m = mk(RAFT_MSG_SNAP, 1, 3);
	m.snap.size = 1u << 20;
	m.len = sizeof(huge);
	m.data = huge;
	T_EQ_INT(rtrans_send(a.t, &m), BABL_ETOOBIG);

	tn_open(&b, 2, b.url, NULL);
	b.keep = 1;
	T_ASSERT(PUMP_UNTIL(ps, 2, 5000, b.n == 17));
	PUMP_UNTIL(ps, 2, 200, 0);
	T_EQ_INT(b.n, 17);
	T_EQ_INT(b.g[0].commit, 1);
	T_EQ_INT(b.g[1].type, RAFT_MSG_SNAP);
	m = mk(RAFT_MSG_SNAP, 1, 2);
	T_ASSERT(same_encoding(&b.g[1], &m));
	for (size_t x = 2; x < 17; x++)
		T_EQ_INT(b.g[x].commit, 86 + x - 2);
	T_EQ_INT(stats(&a).peers[0].dropped, 83);
	tn_free(&a);
	tn_free(&b);
}

static void
raw_send(nng_socket s, const void *p, size_t n)
{
	nng_msg *msg;
	T_EQ_INT(nng_msg_alloc(&msg, 0), 0);
	T_EQ_INT(nng_msg_append(msg, p, n), 0);
	T_EQ_INT(nng_sendmsg(s, msg, 0), 0);
}

/* Garbage sent straight to the listen URL is counted and dropped; the
 * transport keeps working. */
static void
case_garbage_counted(void)
{
	struct rtrans_config cfg;
	rtrans_config_default(&cfg);
	cfg.max_msg = 64 * 1024;
	struct tn a = {0}, b = {0};
	struct tn *ps[2] = {&a, &b};
	char url[256];
	ipc_url(url, sizeof(url), "a");
	tn_open(&a, 1, url, NULL);
	ipc_url(url, sizeof(url), "b");
	tn_open(&b, 2, url, &cfg);

	nng_socket raw;
	T_EQ_INT(nng_push0_open(&raw), 0);
	T_EQ_INT(nng_socket_set_ms(raw, NNG_OPT_SENDTIMEO, 5000), 0);
	T_EQ_INT(nng_dial(raw, b.url, NULL, 0), 0);

	struct wbuf hb = {0}, wrong = {0};
	struct raft_msg m = heartbeat(1, 2, 42);
	T_EQ_INT(raft_msg_encode(&hb, &m), 0);
	m = heartbeat(1, 7, 43);
	T_EQ_INT(raft_msg_encode(&wrong, &m), 0);

	raw_send(raw, "", 0);                                     /* empty */
	raw_send(raw, "\x02", 1);                                 /* version */
	raw_send(raw, "\x01\x00\x00\x00\x09\x01\x02", 7);         /* overrun */
	raw_send(raw, "\x01\x00\x00\x00\x03\x01\x02\x03", 8);     /* bad body */
	raw_send(raw, "\x01\x00\x00", 3);                         /* short len */
	uint8_t buf[256];
	size_t n = 0;
	buf[n++] = 1;
	be32_put(buf + n, (uint32_t)hb.len);
	memcpy(buf + n + 4, hb.p, hb.len);
	n += 4 + hb.len;
	be32_put(buf + n, (uint32_t)wrong.len);
	memcpy(buf + n + 4, wrong.p, wrong.len);
	n += 4 + wrong.len;
	be32_put(buf + n, 2);
	buf[n + 4] = 0xff;
	buf[n + 5] = 0xff;
	n += 6;
	raw_send(raw, buf, n); /* good, not for us, bad: 1 delivered, 2 bad */
	T_ASSERT(PUMP_UNTIL(ps, 2, 5000, stats(&b).malformed == 7 && b.n == 1));
	T_EQ_INT(b.g[0].commit, 42);

	/* Random blobs: each counts once at least. */
	uint64_t s = 0x9e3779b97f4a7c15ull;
	static uint8_t blob[4096];
	for (int i = 0; i < 200; i++) {
		size_t len = 2 + t_rand(&s) % (sizeof(blob) - 2);
		for (size_t x = 0; x < len; x++)
			blob[x] = (uint8_t)t_rand(&s);
		if (i % 2)
			blob[0] = 1; /* a valid version, then garbage frames */
		raw_send(raw, blob, len);
	}
	T_ASSERT(PUMP_UNTIL(ps, 2, 5000, stats(&b).malformed >= 207));

	nng_close(raw);

	T_EQ_INT(rtrans_add_peer(a.t, 2, b.url), 0);
	m = heartbeat(1, 2, 44);
	T_EQ_INT(rtrans_send(a.t, &m), 0);
	T_ASSERT(PUMP_UNTIL(ps, 2, 5000, b.n == 2));
	T_EQ_INT(b.g[1].commit, 44);
	T_EQ_INT(b.g[1].from, 1);
	fprintf(stderr, "       %llu malformed counted\n",
	    (unsigned long long)stats(&b).malformed);
	wbuf_free(&hb);
	wbuf_free(&wrong);
	tn_free(&a);
	tn_free(&b);
}

/* A caller that does not keep up: the received ring fills and receiving
 * pauses (the senders wait, memory does not grow); rtrans_recv hands out
 * recv_budget messages at most and wakes the caller again for the rest. */
static void
case_backpressure_and_budget(void)
{
	struct rtrans_config cfg;
	rtrans_config_default(&cfg);
	cfg.recv_queue = 4;
	cfg.recv_budget = 7;
	struct tn b = {0};
	struct tn *ps[1] = {&b};
	char url[256];
	ipc_url(url, sizeof(url), "b");
	tn_open(&b, 2, url, &cfg);

	nng_socket raw;
	T_EQ_INT(nng_push0_open(&raw), 0);
	T_EQ_INT(nng_socket_set_ms(raw, NNG_OPT_SENDTIMEO, 5000), 0);
	T_EQ_INT(nng_dial(raw, b.url, NULL, 0), 0);
	uint64_t c = 0;
	for (int i = 0; i < 50; i++) {
		struct wbuf w = {0};
		T_EQ_INT(wb_u8(&w, 1), 0);
		for (int j = 0; j < 3; j++) {
			struct wbuf e = {0};
			struct raft_msg m = heartbeat(1, 2, ++c);
			T_EQ_INT(raft_msg_encode(&e, &m), 0);
			T_EQ_INT(wb_u32(&w, (uint32_t)e.len), 0);
			T_EQ_INT(wb_raw(&w, e.p, e.len), 0);
			wbuf_free(&e);
		}
		raw_send(raw, w.p, w.len);
		wbuf_free(&w);
	}
	struct pollfd pfd = {b.efd, POLLIN, 0};
	T_EQ_INT(poll(&pfd, 1, 5000), 1);
	usleep(200 * 1000); /* the ring fills meanwhile */
	uint64_t v;
	T_EQ_INT(read(b.efd, &v, 8), 8);
	T_EQ_INT(rtrans_recv(b.t, on_msg, &b), 7);
	T_EQ_INT(poll(&pfd, 1, 0), 1); /* woken again: more is waiting */
	T_ASSERT(PUMP_UNTIL(ps, 1, 5000, b.n == 150));
	for (size_t x = 0; x < 150; x++)
		T_EQ_INT(b.g[x].commit, x + 1);
	T_EQ_INT(stats(&b).malformed, 0);
	nng_close(raw);
	tn_free(&b);
}

/* A sender configured with a larger max_msg than its receiver: the batch
 * too big for the receiver is counted as malformed, and what follows it
 * arrives, in order. */
static void
case_oversize_refused(void)
{
	struct rtrans_config ca, cb;
	rtrans_config_default(&ca);
	rtrans_config_default(&cb);
	ca.max_msg = 1024 * 1024;
	cb.max_msg = 64 * 1024;
	struct tn a = {0}, b = {0};
	struct tn *ps[2] = {&a, &b};
	char url[256];
	ipc_url(url, sizeof(url), "a");
	tn_open(&a, 1, url, &ca);
	ipc_url(url, sizeof(url), "b");
	tn_open(&b, 2, url, &cb);
	T_EQ_INT(rtrans_add_peer(a.t, 2, b.url), 0);
	static uint8_t chunk[512 * 1024];
	struct raft_msg m = mk(RAFT_MSG_SNAP, 1, 2);
	m.snap.size = sizeof(chunk);
	m.off = 0;
	m.len = sizeof(chunk);
	m.data = chunk;
	T_EQ_INT(rtrans_send(a.t, &m), 0);
	for (uint64_t c = 1; c <= 10; c++) {
		m = heartbeat(1, 2, c);
		T_EQ_INT(rtrans_send(a.t, &m), 0);
	}
	T_ASSERT(PUMP_UNTIL(ps, 2, 5000, b.n == 10));
	for (size_t x = 0; x < 10; x++)
		T_EQ_INT(b.g[x].commit, x + 1);
	T_EQ_INT(stats(&b).malformed, 1);
	tn_free(&a);
	tn_free(&b);
}

/* Snapshot chunks that encode to exactly max_msg pass intact, each in its
 * own nng message; one byte more is refused. */
static void
case_snapshot_max_chunks(void)
{
	struct rtrans_config cfg;
	rtrans_config_default(&cfg);
	cfg.max_msg = 1024 * 1024;
	struct tn a = {0}, b = {0};
	struct tn *ps[2] = {&a, &b};
	char url[256];
	ipc_url(url, sizeof(url), "a");
	tn_open(&a, 1, url, &cfg);
	ipc_url(url, sizeof(url), "b");
	tn_open(&b, 2, url, &cfg);
	b.keep = 1;
	T_EQ_INT(rtrans_add_peer(a.t, 2, b.url), 0);

	struct raft_msg m = mk(RAFT_MSG_SNAP, 1, 2);
	m.len = 0;
	struct wbuf w = {0};
	T_EQ_INT(raft_msg_encode(&w, &m), 0);
	uint32_t chunk = (uint32_t)(cfg.max_msg - w.len);
	wbuf_free(&w);
	uint8_t *data = malloc(3 * (size_t)chunk + 1);
	T_ASSERT(data);
	for (size_t i = 0; i < 3 * (size_t)chunk + 1; i++)
		data[i] = (uint8_t)(i * 31 + (i >> 11));

	struct raft_msg c[3];
	for (int i = 0; i < 3; i++) {
		c[i] = mk(RAFT_MSG_SNAP, 1, 2);
		c[i].snap.size = 3 * (uint64_t)chunk + 1;
		c[i].off = (uint64_t)i * chunk;
		c[i].len = chunk;
		c[i].data = data + c[i].off;
		T_EQ_INT(rtrans_send(a.t, &c[i]), 0);
		struct raft_msg h = heartbeat(1, 2, (uint64_t)i);
		T_EQ_INT(rtrans_send(a.t, &h), 0);
	}
	struct raft_msg over = c[2];
	over.len = chunk + 1;
	T_EQ_INT(rtrans_send(a.t, &over), BABL_ETOOBIG);

	T_ASSERT(PUMP_UNTIL(ps, 2, 5000, b.n == 6));
	for (int i = 0; i < 3; i++) {
		T_EQ_INT(b.g[2 * i].len, cfg.max_msg);
		T_ASSERT(same_encoding(&b.g[2 * i], &c[i]));
		T_EQ_INT(b.g[2 * i + 1].commit, i);
	}
	T_EQ_INT(stats(&b).malformed, 0);
	free(data);
	tn_free(&a);
	tn_free(&b);
}

/* Bad arguments and unknown peers. */
static void
case_api_errors(void)
{
	struct tn a = {0};
	char url[256];
	ipc_url(url, sizeof(url), "a");
	tn_open(&a, 1, url, NULL);
	struct rtrans *t2;
	T_EQ_INT(rtrans_open(&t2, 0, url, a.efd), BABL_EINPUT);
	T_EQ_INT(rtrans_open(&t2, 2, "bogus://x", a.efd), BABL_EINPUT);
	T_EQ_INT(rtrans_open(&t2, 2, url, a.efd), BABL_EUNREACH); /* in use */
	T_EQ_INT(rtrans_add_peer(a.t, 1, "ipc:///tmp/x"), BABL_EINPUT);
	T_EQ_INT(rtrans_add_peer(a.t, 0, "ipc:///tmp/x"), BABL_EINPUT);
	T_EQ_INT(rtrans_add_peer(a.t, 2, "bogus://x"), BABL_EINPUT);
	struct raft_msg m = heartbeat(1, 2, 1);
	T_EQ_INT(rtrans_send(a.t, &m), BABL_ENOENT);
	char u2[256];
	ipc_url(u2, sizeof(u2), "p");
	T_EQ_INT(rtrans_add_peer(a.t, 2, u2), 0);
	T_EQ_INT(rtrans_add_peer(a.t, 2, u2), 0);
	T_EQ_INT(stats(&a).npeers, 1);
	T_EQ_INT(rtrans_send(a.t, &m), 0);
	m.type = 0;
	T_EQ_INT(rtrans_send(a.t, &m), BABL_EINPUT);
	T_EQ_INT(rtrans_remove_peer(a.t, 2), 0);
	T_EQ_INT(rtrans_remove_peer(a.t, 2), BABL_ENOENT);
	m = heartbeat(1, 2, 1);
	T_EQ_INT(rtrans_send(a.t, &m), BABL_ENOENT);
	T_EQ_INT(stats(&a).dropped, 1); /* the one queued when it left */
	for (uint64_t id = 2; id < 2 + RTRANS_MAX_PEERS; id++)
		T_EQ_INT(rtrans_add_peer(a.t, id, u2), 0);
	T_EQ_INT(rtrans_add_peer(a.t, 99, u2), BABL_ELIMIT);
	tn_free(&a);
}

/* Informational: appends of one 64-byte entry from one transport to
 * another, as fast as they go, both driven from this thread. */
static void
case_bench_appends(void)
{
	struct tn a = {0}, b = {0};
	struct tn *ps[2] = {&a, &b};
	char url[256];
	ipc_url(url, sizeof(url), "a");
	tn_open(&a, 1, url, NULL);
	ipc_url(url, sizeof(url), "b");
	tn_open(&b, 2, url, NULL);
	T_EQ_INT(rtrans_add_peer(a.t, 2, b.url), 0);
	T_EQ_INT(rtrans_add_peer(b.t, 1, a.url), 0);
	struct raft_msg w = heartbeat(1, 2, 0);
	T_EQ_INT(rtrans_send(a.t, &w), 0);
	T_ASSERT(PUMP_UNTIL(ps, 2, 5000, b.n == 1));
	tn_forget(&b);

	static uint8_t payload[64];
	struct raft_entry e = {0, 1, RAFT_ENT_NORMAL, sizeof(payload), payload};
	const uint64_t total = 200000, window = 4096;
	uint64_t sent = 0, t0 = now_ms(), end = t0 + 30000;
	while (b.n < total && now_ms() < end) {
		while (sent < total && sent - b.n < window) {
			struct raft_msg m;
			memset(&m, 0, sizeof(m));
			m.type = RAFT_MSG_APPEND;
			m.from = 1;
			m.to = 2;
			m.term = 1;
			m.index = sent;
			m.log_term = 1;
			e.index = sent + 1;
			m.nentries = 1;
			m.entries = &e;
			T_EQ_INT(rtrans_send(a.t, &m), 0);
			sent++;
		}
		pump(ps, 2, 10);
	}
	uint64_t ms = now_ms() - t0;
	struct rtrans_stats st = stats(&a);
	T_EQ_INT(stats(&b).received - 1, total);
	T_EQ_INT(st.dropped, 0);
	printf("rtrans: %llu appends of one 64 B entry over ipc in %llu ms: "
	    "%.0f msgs/s, %.1f per nng message (one thread drives both ends)\n",
	    (unsigned long long)total, (unsigned long long)ms,
	    ms ? (double)total * 1000.0 / (double)ms : 0.0,
	    (double)st.sent / (double)(st.batches ? st.batches : 1));
	tn_free(&a);
	tn_free(&b);
}

static const struct t_case cases[] = {
	{"all_types_ipc", case_all_types_ipc},
	{"all_types_tcp", case_all_types_tcp},
	{"batch_1000_in_order", case_batch_1000_in_order},
	{"late_listener", case_late_listener},
	{"peer_restart", case_peer_restart},
	{"full_queue_drops", case_full_queue_drops},
	{"garbage_counted", case_garbage_counted},
	{"backpressure_and_budget", case_backpressure_and_budget},
	{"oversize_refused", case_oversize_refused},
	{"snapshot_max_chunks", case_snapshot_max_chunks},
	{"api_errors", case_api_errors},
	{"bench_appends", case_bench_appends},
	{0, 0},
};

int
main(int argc, char **argv)
{
	int rc = t_run(argc, argv, cases);
	tmp_cleanup();
	return rc;
}
