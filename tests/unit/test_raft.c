/*
 * test_raft.c - the Raft core (meshd/raft.c): the message codec, focused
 * cases on a small in-memory cluster without faults (election, replication,
 * proposals on a follower, check-quorum, pre-vote, snapshots to a new
 * learner and its promotion, removal, leadership transfer, restart from
 * persisted state), and then the deterministic simulation of
 * tests/sim/simcore.c over 1,000 seeds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft.h"
#include "wire.h"

#include "t.h"

#include "../sim/simcore.c"

/* ---- the codec ----------------------------------------------------------- */

static uint8_t *
exact_copy(const void *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);
	T_ASSERT(q);
	if (n)
		memcpy(q, p, n);
	return q;
}

static struct raft_entry dents[RAFT_MSG_MAX_ENTRIES];

static void
case_codec_roundtrip(void)
{
	uint8_t d[] = {'a', 0, 0xff};
	struct raft_entry e[3] = {{11, 4, RAFT_ENT_NORMAL, 3, d},
		{12, 4, RAFT_ENT_NOOP, 0, NULL}, {13, 5, RAFT_ENT_CONF, 1, d}};
	for (uint8_t t = 1; t <= RAFT_MSG_MAX; t++) {
		struct raft_msg m, o;
		memset(&m, 0, sizeof(m));
		m.type = t;
		m.flags = RAFT_F_REJECT;
		m.from = 7;
		m.to = 1ull << 40;
		m.term = 5;
		m.index = 10;
		m.log_term = 4;
		m.commit = 9;
		m.hint = 3;
		m.hint_term = 2;
		if (t == RAFT_MSG_APPEND) {
			m.nentries = 3;
			m.entries = e;
		}
		if (t == RAFT_MSG_SNAP) {
			m.snap.index = 100;
			m.snap.term = 4;
			m.snap.size = 10;
			m.snap.conf.n = 2;
			m.snap.conf.s[0] = (struct raft_server){7, 1};
			m.snap.conf.s[1] = (struct raft_server){9, 0};
			m.off = 7;
			m.len = 3;
			m.data = d;
		}
		struct wbuf b = {0};
		T_EQ_INT(raft_msg_encode(&b, &m), 0);
		uint8_t *p = exact_copy(b.p, b.len);
		T_EQ_INT(raft_msg_decode(p, b.len, &o, dents, RAFT_MSG_MAX_ENTRIES), 0);
		T_EQ_INT(o.type, t);
		T_EQ_INT(o.flags, RAFT_F_REJECT);
		T_EQ_INT(o.from, 7);
		T_EQ_INT(o.to, 1ull << 40);
		T_EQ_INT(o.hint_term, 2);
		T_EQ_INT(o.nentries, m.nentries);
		for (uint32_t i = 0; i < o.nentries; i++) {
			T_EQ_INT(o.entries[i].index, e[i].index);
			T_EQ_INT(o.entries[i].term, e[i].term);
			T_EQ_INT(o.entries[i].type, e[i].type);
			T_EQ_INT(o.entries[i].len, e[i].len);
			if (e[i].len)
				T_EQ_MEM(o.entries[i].data, e[i].data, e[i].len);
		}
		if (t == RAFT_MSG_SNAP) {
			T_EQ_INT(o.snap.index, 100);
			T_EQ_INT(o.snap.conf.n, 2);
			T_EQ_INT(o.snap.conf.s[1].id, 9);
			T_EQ_INT(o.off, 7);
			T_EQ_INT(o.len, 3);
			T_EQ_MEM(o.data, d, 3);
		}
		/* Every truncation and an extra byte are refused. */
		for (size_t n = 0; n < b.len; n++) {
			uint8_t *q = exact_copy(b.p, n);
			T_ASSERT(raft_msg_decode(q, n, &o, dents, RAFT_MSG_MAX_ENTRIES) != 0);
			free(q);
		}
		uint8_t *q = malloc(b.len + 1);
		memcpy(q, b.p, b.len);
		q[b.len] = 0;
		T_EQ_INT(raft_msg_decode(q, b.len + 1, &o, dents, RAFT_MSG_MAX_ENTRIES),
		    BABL_EPROTO);
		free(q);
		if (t == RAFT_MSG_APPEND)
			T_EQ_INT(raft_msg_decode(p, b.len, &o, dents, 2), BABL_ETOOBIG);
		free(p);
		wbuf_free(&b);
	}
}

static void
case_codec_refuses(void)
{
	struct raft_msg m, o;
	struct wbuf b = {0};
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_HEARTBEAT;
	m.from = 1;
	m.to = 2;
	T_EQ_INT(raft_msg_encode(&b, &m), 0);
	uint8_t *p = exact_copy(b.p, b.len);
	p[0] = 2; /* version */
	T_EQ_INT(raft_msg_decode(p, b.len, &o, dents, 8), BABL_EPROTO);
	p[0] = 1;
	p[1] = 0; /* type */
	T_EQ_INT(raft_msg_decode(p, b.len, &o, dents, 8), BABL_EPROTO);
	p[1] = RAFT_MSG_MAX + 1;
	T_EQ_INT(raft_msg_decode(p, b.len, &o, dents, 8), BABL_EPROTO);
	p[1] = RAFT_MSG_HEARTBEAT;
	p[2] = 0x80; /* flags */
	T_EQ_INT(raft_msg_decode(p, b.len, &o, dents, 8), BABL_EPROTO);
	p[2] = 0;
	memset(p + 3, 0, 8); /* from 0 */
	T_EQ_INT(raft_msg_decode(p, b.len, &o, dents, 8), BABL_EPROTO);
	free(p);
	/* Messages that cannot be are not encoded. */
	m.to = 0;
	T_EQ_INT(raft_msg_encode(&b, &m), BABL_EINPUT);
	m.to = 2;
	m.nentries = 1;
	T_EQ_INT(raft_msg_encode(&b, &m), BABL_EINPUT);
	/* A conf with a duplicate id. */
	struct raft_conf c = {2, {{4, 1}, {4, 0}}};
	T_EQ_INT(raft_conf_encode(&b, &c), BABL_EINPUT);
	wbuf_free(&b);
}

/* ---- a small cluster without faults ---------------------------------------- */

#define CN 5

static struct cl {
	struct raft *r[CN + 1];
	int cut[CN + 1];          /* isolated both ways */
	struct raft_hard_state hs[CN + 1];
	struct raft_entry log[CN + 1][512]; /* persisted, data owned */
	size_t nlog[CN + 1];
	uint64_t applied[CN + 1];
	uint64_t napplied_normal[CN + 1];
	struct raft_snap_meta snap[CN + 1];
	/* Messages in flight. */
	uint8_t *q[4096];
	size_t qn[4096];
	int qto[4096];
	size_t nq;
} C;

static uint8_t snapdata[3000];

static int
cl_snap_read(void *ctx, const struct raft_snap_meta *m, uint64_t off, void *buf,
    size_t len)
{
	(void)ctx;
	if (off + len > m->size || m->size > sizeof(snapdata))
		return BABL_ENOENT;
	memcpy(buf, snapdata + off, len);
	return 0;
}

static void
cl_config(struct raft_config *c, uint64_t id)
{
	memset(c, 0, sizeof(*c));
	raft_config_default(c);
	c->id = id;
	c->seed = id * 77;
	c->election_ticks = 10;
	c->heartbeat_ticks = 1;
	c->max_msg_entries = 4;
	c->snap_chunk = 500;
	c->snap_read = cl_snap_read;
}

static void
cl_free(void)
{
	for (int i = 1; i <= CN; i++) {
		raft_close(C.r[i]);
		for (size_t j = 0; j < C.nlog[i]; j++)
			free(C.log[i][j].data);
	}
	for (size_t j = 0; j < C.nq; j++)
		free(C.q[j]);
	memset(&C, 0, sizeof(C));
}

/* A cluster whose voters are 1..nv; nodes nv+1..CN start empty. */
static void
cl_init(int nv)
{
	cl_free();
	struct raft_conf c;
	memset(&c, 0, sizeof(c));
	for (int i = 1; i <= nv; i++)
		c.s[c.n++] = (struct raft_server){(uint64_t)i, 1};
	for (int i = 1; i <= CN; i++) {
		struct raft_config cfg;
		cl_config(&cfg, (uint64_t)i);
		T_EQ_INT(raft_open(&C.r[i], &cfg), 0);
		if (i <= nv)
			T_EQ_INT(raft_bootstrap(C.r[i], &c), 0);
	}
	for (size_t i = 0; i < sizeof(snapdata); i++)
		snapdata[i] = (uint8_t)(i * 7);
}

/* A message in flight. */
static void
cl_queue(const struct raft_msg *m)
{
	struct wbuf b = {0};
	T_EQ_INT(raft_msg_encode(&b, m), 0);
	T_ASSERT(C.nq < 4096);
	C.q[C.nq] = b.p;
	C.qn[C.nq] = b.len;
	C.qto[C.nq++] = (int)m->to;
}

/* Step 1 to 3 of a ready of node i (persist, send, apply); with
 * early_sent, the messages raft_early let go before are not sent again. */
static void
cl_persist(int i, const struct raft_ready *rd, int early_sent)
{
	if (rd->snap) {
		for (size_t j = 0; j < C.nlog[i]; j++)
			free(C.log[i][j].data);
		C.nlog[i] = 0;
		C.snap[i] = rd->snap->meta;
		T_EQ_MEM(rd->snap->data, snapdata, rd->snap->meta.size);
		C.applied[i] = rd->snap->meta.index;
	}
	uint64_t first = C.snap[i].index + 1;
	if (rd->nentries) {
		size_t keep = (size_t)(rd->entries[0].index - first);
		T_ASSERT(keep <= C.nlog[i]);
		while (C.nlog[i] > keep)
			free(C.log[i][--C.nlog[i]].data);
	}
	for (size_t j = 0; j < rd->nentries; j++) {
		struct raft_entry *e = &C.log[i][C.nlog[i]++];
		T_ASSERT(C.nlog[i] < 512);
		*e = rd->entries[j];
		e->data = exact_copy(rd->entries[j].data, e->len);
	}
	if (rd->hs_changed)
		C.hs[i] = rd->hs;
	for (size_t j = 0; j < rd->nmsgs; j++)
		if (!early_sent || !raft_early(C.r[i], rd, &rd->msgs[j]))
			cl_queue(&rd->msgs[j]);
	for (size_t j = 0; j < rd->ncommitted; j++) {
		T_EQ_INT(rd->committed[j].index, C.applied[i] + 1);
		C.applied[i]++;
		if (rd->committed[j].type == RAFT_ENT_NORMAL)
			C.napplied_normal[i]++;
	}
}

static void
cl_ready(int i)
{
	struct raft_ready rd;
	while (C.r[i] && raft_ready(C.r[i], &rd) > 0) {
		cl_persist(i, &rd, 0);
		T_EQ_INT(raft_advance(C.r[i], &rd), 0);
	}
}

/* Deliver the messages in flight now (those they cause wait). */
static void
cl_deliver(void)
{
	size_t n = C.nq;
	uint8_t *q[4096];
	size_t qn[4096];
	int qto[4096];
	memcpy(q, C.q, n * sizeof(q[0]));
	memcpy(qn, C.qn, n * sizeof(qn[0]));
	memcpy(qto, C.qto, n * sizeof(qto[0]));
	C.nq = 0;
	for (size_t j = 0; j < n; j++) {
		struct raft_msg m;
		T_EQ_INT(raft_msg_decode(q[j], qn[j], &m, dents, RAFT_MSG_MAX_ENTRIES), 0);
		int to = qto[j];
		if (C.r[to] && !C.cut[to] && !C.cut[m.from])
			T_EQ_INT(raft_step(C.r[to], &m), 0);
		free(q[j]);
		cl_ready(to);
	}
}

/* Deliver until quiet (no ticks). */
static void
cl_pump(void)
{
	for (int round = 0; round < 1000; round++) {
		for (int i = 1; i <= CN; i++)
			cl_ready(i);
		if (!C.nq)
			return;
		cl_deliver();
	}
	T_FAIL("the cluster never went quiet");
}

static void
cl_tick(int k)
{
	for (int t = 0; t < k; t++) {
		for (int i = 1; i <= CN; i++)
			if (C.r[i])
				T_EQ_INT(raft_tick(C.r[i]), 0);
		cl_pump();
	}
}

static int
cl_leader(void)
{
	int l = 0;
	uint64_t best = 0;
	for (int i = 1; i <= CN; i++) {
		struct raft_status st;
		if (!C.r[i] || C.cut[i])
			continue;
		raft_status(C.r[i], &st);
		if (st.role == RAFT_LEADER && st.term >= best) {
			best = st.term;
			l = i;
		}
	}
	return l;
}

static int
cl_elect(void)
{
	for (int t = 0; t < 100; t++) {
		int l = cl_leader();
		if (l)
			return l;
		cl_tick(1);
	}
	T_FAIL("no leader after 100 ticks");
}

static struct raft_status
st_of(int i)
{
	struct raft_status st;
	raft_status(C.r[i], &st);
	return st;
}

static void
propose_n(int l, int n)
{
	for (int k = 0; k < n; k++) {
		char buf[32];
		int len = snprintf(buf, sizeof buf, "entry %d", k);
		T_EQ_INT(raft_propose(C.r[l], buf, (size_t)len, NULL, NULL), 0);
	}
	cl_pump();
}

static void
case_single_node(void)
{
	cl_init(1);
	int l = cl_elect();
	T_EQ_INT(l, 1);
	uint64_t idx, term;
	T_EQ_INT(raft_propose(C.r[1], "x", 1, &idx, &term), 0);
	T_EQ_INT(term, st_of(1).term);
	cl_pump();
	T_EQ_INT(st_of(1).commit, idx);
	T_EQ_INT(C.applied[1], idx);
	T_EQ_INT(C.napplied_normal[1], 1);
	cl_free();
}

static void
case_election_and_replication(void)
{
	cl_init(3);
	int l = cl_elect();
	propose_n(l, 10);
	uint64_t c = st_of(l).commit;
	for (int i = 1; i <= 3; i++) {
		T_EQ_INT(C.napplied_normal[i], 10);
		T_EQ_INT(C.applied[i], c);
	}
	/* Batching: 10 entries with 4 per message. */
	T_EQ_INT(st_of(l).last_index, c);
	/* A follower refuses proposals and names the leader. */
	int f = l == 1 ? 2 : 1;
	T_EQ_INT(raft_propose(C.r[f], "y", 1, NULL, NULL), BABL_EPERM);
	T_EQ_INT(st_of(f).lead, l);
	cl_free();
}

static void
case_leader_failure(void)
{
	cl_init(3);
	int l = cl_elect();
	propose_n(l, 3);
	uint64_t t0 = st_of(l).term;
	C.cut[l] = 1;
	cl_tick(40);
	int l2 = cl_leader();
	T_ASSERT(l2 && l2 != l);
	T_ASSERT(st_of(l2).term > t0);
	propose_n(l2, 2);
	/* The old leader, cut off, stepped down by check-quorum. */
	T_ASSERT(st_of(l).role != RAFT_LEADER);
	C.cut[l] = 0;
	cl_tick(5);
	T_EQ_INT(C.napplied_normal[l], 5);
	T_EQ_INT(st_of(l).term, st_of(l2).term);
	cl_free();
}

static void
case_prevote_keeps_term(void)
{
	cl_init(3);
	int l = cl_elect();
	uint64_t t0 = st_of(l).term;
	int f = l == 3 ? 2 : 3;
	C.cut[f] = 1;
	/* Cut off, a follower keeps asking for pre-votes: its term stays. */
	for (int t = 0; t < 60; t++) {
		T_EQ_INT(raft_tick(C.r[f]), 0);
		cl_ready(f);
	}
	for (size_t j = 0; j < C.nq; j++)
		free(C.q[j]);
	C.nq = 0;
	T_EQ_INT(st_of(f).term, t0);
	C.cut[f] = 0;
	cl_tick(3);
	T_EQ_INT(cl_leader(), l);
	T_EQ_INT(st_of(l).term, t0);
	cl_free();
}

static void
case_snapshot_learner_promote_remove(void)
{
	cl_init(3);
	int l = cl_elect();
	propose_n(l, 20);
	/* Every node snapshots what it applied and compacts. */
	for (int i = 1; i <= 3; i++) {
		struct raft_snap_meta m;
		T_EQ_INT(raft_compact(C.r[i], C.applied[i], 2500, &m), 0);
		T_EQ_INT(m.conf.n, 3);
		C.snap[i] = m;
	}
	T_EQ_INT(raft_compact(C.r[l], 1, 10, NULL), BABL_EINPUT);
	/* Node 4 joins as a learner: the log it needs is gone, so the
	 * leader streams the snapshot in chunks of 500 bytes. */
	struct raft_conf_change cc = {RAFT_CC_ADD_LEARNER, 4};
	T_EQ_INT(raft_propose_conf(C.r[l], &cc, NULL, NULL), 0);
	T_EQ_INT(raft_propose_conf(C.r[l], &cc, NULL, NULL), BABL_EBUSY);
	cl_tick(3);
	T_EQ_INT(C.snap[4].index, C.snap[l].index);
	T_EQ_INT(C.applied[4], st_of(l).commit);
	struct raft_conf conf;
	raft_conf(C.r[4], &conf);
	T_EQ_INT(raft_conf_role(&conf, 4), 0);
	/* A learner does not campaign. */
	for (int t = 0; t < 50; t++)
		T_EQ_INT(raft_tick(C.r[4]), 0);
	T_EQ_INT(st_of(4).role, RAFT_FOLLOWER);
	cl_tick(2);
	/* Promote it, then remove a voter. */
	cc = (struct raft_conf_change){RAFT_CC_PROMOTE, 4};
	T_EQ_INT(raft_propose_conf(C.r[l], &cc, NULL, NULL), 0);
	cl_tick(2);
	raft_conf(C.r[1], &conf);
	T_EQ_INT(raft_conf_role(&conf, 4), 1);
	int gone = l == 2 ? 3 : 2;
	cc = (struct raft_conf_change){RAFT_CC_REMOVE, (uint64_t)gone};
	T_EQ_INT(raft_propose_conf(C.r[l], &cc, NULL, NULL), 0);
	cl_tick(2);
	raft_conf(C.r[4], &conf);
	T_EQ_INT(conf.n, 3);
	T_EQ_INT(raft_conf_role(&conf, (uint64_t)gone), -1);
	C.cut[gone] = 1;
	propose_n(l, 2);
	T_EQ_INT(C.napplied_normal[4], 2);
	cl_free();
}

static void
case_transfer(void)
{
	cl_init(3);
	int l = cl_elect();
	propose_n(l, 2);
	int to = l == 1 ? 3 : 1;
	T_EQ_INT(raft_transfer_leader(C.r[l], (uint64_t)l), BABL_EINPUT);
	T_EQ_INT(raft_transfer_leader(C.r[l], (uint64_t)to), 0);
	cl_pump();
	T_EQ_INT(cl_leader(), to);
	T_EQ_INT(raft_transfer_leader(C.r[l], (uint64_t)to), BABL_EPERM);
	propose_n(to, 1);
	T_EQ_INT(C.napplied_normal[l], 3);
	cl_free();
}

static void
case_restart(void)
{
	cl_init(3);
	int l = cl_elect();
	propose_n(l, 5);
	int f = l == 1 ? 2 : 1;
	/* Restart a follower from what it persisted. */
	raft_close(C.r[f]);
	struct raft_config cfg;
	cl_config(&cfg, (uint64_t)f);
	T_EQ_INT(raft_open(&C.r[f], &cfg), 0);
	T_EQ_INT(raft_restore(C.r[f], &C.hs[f], NULL, C.log[f], C.nlog[f], 0), 0);
	T_EQ_INT(raft_restore(C.r[f], &C.hs[f], NULL, C.log[f], C.nlog[f], 0),
	    BABL_EUSAGE);
	T_EQ_INT(st_of(f).term, st_of(l).term);
	C.applied[f] = 0;
	C.napplied_normal[f] = 0;
	cl_pump();
	/* The committed entries come out again (its state was in memory). */
	T_EQ_INT(C.napplied_normal[f], 5);
	propose_n(l, 1);
	T_EQ_INT(C.napplied_normal[f], 6);
	/* Entries that do not follow each other are refused. */
	struct raft *r;
	T_EQ_INT(raft_open(&r, &cfg), 0);
	struct raft_entry bad[2] = {{1, 1, RAFT_ENT_NOOP, 0, NULL},
		{3, 1, RAFT_ENT_NOOP, 0, NULL}};
	struct raft_hard_state hs = {1, 0, 0};
	T_EQ_INT(raft_restore(r, &hs, NULL, bad, 2, 0), BABL_EINPUT);
	raft_close(r);
	cl_free();
}

static void
case_ready_contract(void)
{
	cl_init(1);
	struct raft_ready rd;
	T_EQ_INT(raft_ready(C.r[1], &rd), 1);
	T_EQ_INT(rd.nentries, 1);
	T_EQ_INT(rd.entries[0].type, RAFT_ENT_CONF);
	T_ASSERT(rd.hs_changed);
	/* Nothing else until it is advanced. */
	T_EQ_INT(raft_tick(C.r[1]), BABL_EUSAGE);
	T_EQ_INT(raft_ready(C.r[1], &rd), BABL_EUSAGE);
	T_EQ_INT(raft_advance(C.r[1], &rd), 0);
	T_EQ_INT(raft_advance(C.r[1], &rd), BABL_EUSAGE);
	cl_free();
}

/* ---- the simulation ----------------------------------------------------------- */

#define SIM_SEEDS 1000
#define SIM_STEPS 300

static void
case_simulation(void)
{
	unsigned passed = 0, failed = 0;
	uint64_t commits = 0, crashes = 0, snaps = 0, confs = 0;
	for (uint64_t seed = 1; seed <= SIM_SEEDS; seed++) {
		struct sim_opts o = {seed, SIM_STEPS, NULL};
		struct sim_result res;
		if (sim_run(&o, &res) == 0) {
			passed++;
		} else {
			failed++;
			fprintf(stderr, "  seed %llu: %s\n  reproduce: build/sim --seed "
			    "%llu --steps %d --verbose\n", (unsigned long long)seed,
			    res.why, (unsigned long long)seed, SIM_STEPS);
		}
		commits += res.commits;
		crashes += res.crashes;
		snaps += res.snaps_sent;
		confs += res.conf_changes;
	}
	printf("sim: %u passed, %u failed (%d seeds x %d ticks: %llu entries "
	    "committed, %llu crashes, %llu snapshots installed, %llu conf changes)\n",
	    passed, failed, SIM_SEEDS, SIM_STEPS, (unsigned long long)commits,
	    (unsigned long long)crashes, (unsigned long long)snaps,
	    (unsigned long long)confs);
	T_EQ_INT(failed, 0);
}

/*
 * raft_early: a steady leader's APPENDs may go out before its ready is
 * durable (the followers write while it does), and the entry commits once
 * the leader's write is confirmed.
 */
static void
case_early_appends(void)
{
	cl_init(3);
	int l = cl_elect();
	propose_n(l, 1);
	uint64_t c0 = st_of(l).commit;
	T_EQ_INT(raft_propose(C.r[l], "early", 5, NULL, NULL), 0);
	struct raft_ready rd;
	T_ASSERT(raft_ready(C.r[l], &rd) > 0);
	T_EQ_INT(rd.nentries, 1);
	/* The early messages go first; the followers take them and make
	 * them durable while the leader has not yet. */
	int early = 0;
	for (size_t j = 0; j < rd.nmsgs; j++) {
		if (!raft_early(C.r[l], &rd, &rd.msgs[j]))
			continue;
		T_EQ_INT(rd.msgs[j].type, RAFT_MSG_APPEND);
		early++;
		cl_queue(&rd.msgs[j]);
	}
	T_EQ_INT(early, 2);
	cl_deliver();
	/* The leader's ready made durable, the rest as usual: the entry
	 * commits everywhere. */
	cl_persist(l, &rd, 1);
	T_EQ_INT(raft_advance(C.r[l], &rd), 0);
	cl_pump();
	cl_tick(2);
	T_EQ_INT(st_of(l).commit, c0 + 1);
	for (int i = 1; i <= 3; i++)
		T_EQ_INT(C.napplied_normal[i], 2);
	cl_free();
}

static const struct t_case cases[] = {
	{"codec_roundtrip", case_codec_roundtrip},
	{"codec_refuses", case_codec_refuses},
	{"ready_contract", case_ready_contract},
	{"single_node", case_single_node},
	{"election_and_replication", case_election_and_replication},
	{"leader_failure", case_leader_failure},
	{"prevote_keeps_term", case_prevote_keeps_term},
	{"snapshot_learner_promote_remove", case_snapshot_learner_promote_remove},
	{"transfer", case_transfer},
	{"restart", case_restart},
	{"early_appends", case_early_appends},
	{"simulation", case_simulation},
	{0},
};

int
main(int argc, char **argv)
{
	int rc = t_run(argc, argv, cases);
	cl_free();
	return rc;
}
