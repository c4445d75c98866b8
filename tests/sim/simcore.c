/*
 * simcore.c - the deterministic Raft simulation (see simcore.h).
 *
 * Time is counted in ticks.  Each tick: fault events may happen, a client
 * may propose to whichever node thinks it leads, every live node ticks,
 * and the messages due are delivered in a shuffled order.  After each
 * input a node takes its ready batches at once: the sim "persists" them to
 * the node's simulated disk, then "sends" the messages (encoded to bytes
 * and decoded again on delivery), then applies the committed entries.  A
 * crash may strike before the persist (the batch is lost), during it (the
 * last entry is torn off) or after it and before the send.  Acks go out
 * only after a persist completed, as a real node must do.
 *
 * Checks (after every step):
 *	election safety: one leader per term at most;
 *	log matching: two persisted entries with the same index and term have
 *	  the same bytes and the same term before them;
 *	leader completeness: a leader holds every entry applied anywhere;
 *	state-machine safety: every node applies the same entries in the same
 *	  order (entry by entry against one history, and the state hash after
 *	  a snapshot against the history's);
 *	acknowledged proposals (applied with their index and term by the node
 *	  that took them) stay at their index in the history.
 * After the fault phase: everything heals, and within HEAL_TICKS a leader
 * must commit a new proposal and every member must apply it.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft.h"
#include "wire.h"

#include "simcore.h"

#define NN 7              /* ids 1..NN */
#define MAXNET 20000      /* messages in flight, at most */
#define HEAL_TICKS 600
#define SNAP_EVERY 24     /* entries applied between snapshots, about */

struct net_msg {
	uint64_t at;
	int from, to;
	uint8_t *p;
	size_t n;
};

struct hist {
	uint64_t term, hash, state;
};

struct pend {
	uint64_t index, term, key;
};

struct node {
	int id, up, member_ever;
	uint64_t down_until;
	struct raft *r;
	/* The disk: what survives a crash. */
	struct raft_hard_state hs;
	int has_snap;
	struct raft_snap_meta snap;
	uint64_t snap_state;
	struct raft_entry *log; /* after the snapshot, data owned */
	size_t nlog, caplog;
	/* Volatile: the state machine and proposals waiting for their ack. */
	uint64_t applied, state;
	struct pend *pend;
	size_t npend, cappend;
	/* Leader completeness is checked incrementally per (node, term). */
	uint64_t lc_term;
};

struct mt_slot {
	uint64_t index, term, hash, prev_term;
};

struct sim {
	const struct sim_opts *o;
	struct sim_result *res;
	uint64_t rng, now;
	int failed;
	struct node nodes[NN + 1];
	struct net_msg *net;
	size_t nnet;
	uint8_t block[NN + 1][NN + 1];
	uint64_t heal_at;
	unsigned loss, dup, maxdelay; /* per mille, per mille, ticks */
	struct hist *hist;
	size_t nhist, caphist; /* hist[i] for index i+1 */
	uint64_t *leader_of; /* by term */
	size_t nleader;
	struct mt_slot *mt;
	size_t mtcap, mtn;
	uint64_t next_key;
	int removed_ever[NN + 1];
	uint64_t acked_key, acked_index; /* the latest ack */
	int faults; /* 0 in the heal phase */
	unsigned batch, inflight; /* per seed: entries per append, appends in flight */
	int lazy; /* per seed: the cores read applied entries back from disk (ent_read) */
	struct raft_entry dec[RAFT_MSG_MAX_ENTRIES];
	struct wbuf wb;
};

/* ---- helpers ------------------------------------------------------------ */

static uint64_t
srand64(struct sim *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned
rnd(struct sim *s, unsigned n)
{
	return n ? (unsigned)(srand64(s) % n) : 0;
}

/* 1 with probability pm per mille. */
static int
chance(struct sim *s, unsigned pm)
{
	return rnd(s, 1000) < pm;
}

static void
note(struct sim *s, const char *fmt, ...)
{
	if (!s->o->log)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(s->o->log, "t=%llu ", (unsigned long long)s->now);
	vfprintf(s->o->log, fmt, ap);
	fputc('\n', s->o->log);
	va_end(ap);
}

static void
fail(struct sim *s, const char *fmt, ...)
{
	if (s->failed)
		return;
	s->failed = 1;
	va_list ap;
	va_start(ap, fmt);
	int k = snprintf(s->res->why, sizeof(s->res->why), "t=%llu: ",
	    (unsigned long long)s->now);
	vsnprintf(s->res->why + k, sizeof(s->res->why) - (size_t)k, fmt, ap);
	va_end(ap);
	if (!s->o->log)
		return;
	fprintf(s->o->log, "FAIL %s\n", s->res->why);
	for (int i = 1; i <= NN; i++) {
		const struct node *n = &s->nodes[i];
		struct raft_status st;
		struct raft_conf c;
		if (!n->up) {
			fprintf(s->o->log, "  node %d down\n", i);
			continue;
		}
		raft_status(n->r, &st);
		raft_conf(n->r, &c);
		fprintf(s->o->log, "  node %d %s term %llu lead %llu commit %llu "
		    "applied %llu log %llu..%llu conf", i, raft_role_name(st.role),
		    (unsigned long long)st.term, (unsigned long long)st.lead,
		    (unsigned long long)st.commit, (unsigned long long)st.applied,
		    (unsigned long long)st.first_index,
		    (unsigned long long)st.last_index);
		for (uint32_t j = 0; j < c.n; j++)
			fprintf(s->o->log, " %llu%s", (unsigned long long)c.s[j].id,
			    c.s[j].voter ? "" : "L");
		fprintf(s->o->log, " pend %zu\n", n->npend);
	}
}

static uint64_t
hash_bytes(uint8_t type, const void *p, size_t n)
{
	const uint8_t *q = p;
	uint64_t h = 1469598103934665603ull ^ type;
	for (size_t i = 0; i < n; i++)
		h = (h ^ q[i]) * 1099511628211ull;
	return h ^ (h >> 29);
}

static uint64_t
mix(uint64_t st, uint64_t index, uint64_t term, uint64_t h)
{
	st ^= index * 0x9e3779b97f4a7c15ull;
	st = (st ^ (st >> 31)) * 0xbf58476d1ce4e5b9ull;
	st ^= term + 0x632be59bd9b4e019ull;
	st = (st ^ (st >> 29)) * 0x94d049bb133111ebull;
	return st ^ h;
}

static void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fprintf(stderr, "sim: out of memory\n");
		abort();
	}
	return q;
}

/* ---- the history of applied entries ----------------------------------------- */

static struct hist *
hist_at(struct sim *s, uint64_t index)
{
	return index >= 1 && index <= s->nhist ? &s->hist[index - 1] : NULL;
}

/* Node n applies (index, term, hash) reaching state st. */
static void
hist_apply(struct sim *s, struct node *n, uint64_t index, uint64_t term,
    uint64_t h, uint64_t st)
{
	struct hist *x = hist_at(s, index);
	if (x) {
		if (x->term != term || x->hash != h || x->state != st)
			fail(s, "state machine safety: node %d applies index %llu "
			    "term %llu, others applied term %llu%s", n->id,
			    (unsigned long long)index, (unsigned long long)term,
			    (unsigned long long)x->term,
			    x->term == term ? " (different bytes or state)" : "");
		return;
	}
	if (index != s->nhist + 1) {
		fail(s, "node %d applies index %llu beyond the history (%zu)",
		    n->id, (unsigned long long)index, s->nhist);
		return;
	}
	if (s->nhist == s->caphist) {
		s->caphist = s->caphist ? s->caphist * 2 : 1024;
		s->hist = xrealloc(s->hist, s->caphist * sizeof(*s->hist));
	}
	s->hist[s->nhist++] = (struct hist){term, h, st};
	s->res->commits++;
}

/* ---- log matching over persisted entries -------------------------------------- */

static void
mt_put(struct sim *s, struct node *n, uint64_t index, uint64_t term,
    uint64_t h, uint64_t prev_term)
{
	if (s->mtn * 2 >= s->mtcap) {
		size_t oc = s->mtcap;
		struct mt_slot *old = s->mt;
		s->mtcap = oc ? oc * 2 : 4096;
		s->mt = calloc(s->mtcap, sizeof(*s->mt));
		if (!s->mt)
			abort();
		s->mtn = 0;
		for (size_t i = 0; i < oc; i++) {
			if (!old[i].index)
				continue;
			size_t k = (size_t)(mix(0, old[i].index, old[i].term, 0) % s->mtcap);
			while (s->mt[k].index)
				k = (k + 1) % s->mtcap;
			s->mt[k] = old[i];
			s->mtn++;
		}
		free(old);
	}
	size_t k = (size_t)(mix(0, index, term, 0) % s->mtcap);
	while (s->mt[k].index) {
		struct mt_slot *m = &s->mt[k];
		if (m->index == index && m->term == term) {
			if (m->hash != h || (prev_term && m->prev_term && m->prev_term != prev_term))
				fail(s, "log matching: node %d has index %llu term %llu "
				    "with other bytes or another entry before it",
				    n->id, (unsigned long long)index,
				    (unsigned long long)term);
			if (!m->prev_term)
				m->prev_term = prev_term;
			return;
		}
		k = (k + 1) % s->mtcap;
	}
	s->mt[k] = (struct mt_slot){index, term, h, prev_term};
	s->mtn++;
}

/* ---- the simulated disk ---------------------------------------------------- */

static void
disk_drop_from(struct node *n, uint64_t index)
{
	while (n->nlog && n->log[n->nlog - 1].index >= index) {
		free(n->log[n->nlog - 1].data);
		n->nlog--;
	}
}

static void
disk_drop_upto(struct node *n, uint64_t index)
{
	size_t k = 0;
	while (k < n->nlog && n->log[k].index <= index) {
		free(n->log[k].data);
		k++;
	}
	memmove(n->log, n->log + k, (n->nlog - k) * sizeof(*n->log));
	n->nlog -= k;
}

static uint64_t
disk_last(const struct node *n)
{
	if (n->nlog)
		return n->log[n->nlog - 1].index;
	return n->has_snap ? n->snap.index : 0;
}

static uint64_t
disk_last_term(const struct node *n)
{
	if (n->nlog)
		return n->log[n->nlog - 1].term;
	return n->has_snap ? n->snap.term : 0;
}

static void
disk_append(struct sim *s, struct node *n, const struct raft_entry *e)
{
	if (e->index != disk_last(n) + 1) {
		fail(s, "node %d: persisting index %llu after %llu", n->id,
		    (unsigned long long)e->index, (unsigned long long)disk_last(n));
		return;
	}
	mt_put(s, n, e->index, e->term, hash_bytes(e->type, e->data, e->len),
	    disk_last_term(n));
	if (n->nlog == n->caplog) {
		n->caplog = n->caplog ? n->caplog * 2 : 64;
		n->log = xrealloc(n->log, n->caplog * sizeof(*n->log));
	}
	struct raft_entry *d = &n->log[n->nlog++];
	*d = *e;
	d->data = NULL;
	if (e->len) {
		d->data = xrealloc(NULL, e->len);
		memcpy(d->data, e->data, e->len);
	}
}

/* ---- snapshots: their bytes follow from (index, state) ------------------------ */

static uint64_t
snap_size(uint64_t index)
{
	return 16 + (index * 37) % 2000;
}

static uint8_t
snap_byte(uint64_t index, uint64_t state, uint64_t off)
{
	uint8_t hdr[16];
	be64_put(hdr, index);
	be64_put(hdr + 8, state);
	if (off < 16)
		return hdr[off];
	return (uint8_t)(index * 7 + off * 13 + (state & 0xff));
}

static int
snap_read(void *ctx, const struct raft_snap_meta *meta, uint64_t off, void *buf,
    size_t len)
{
	struct node *n = ctx;
	if (!n->has_snap || n->snap.index != meta->index || off + len > meta->size)
		return BABL_ENOENT;
	uint8_t *b = buf;
	for (size_t i = 0; i < len; i++)
		b[i] = snap_byte(meta->index, n->snap_state, off + i);
	return 0;
}

/* An entry's data from the disk, for a core that dropped it (ent_read). */
static int
ent_read(void *ctx, uint64_t index, void *buf, size_t len)
{
	struct node *n = ctx;
	if (!n->nlog || index < n->log[0].index || index > disk_last(n))
		return BABL_ENOENT;
	const struct raft_entry *e = &n->log[index - n->log[0].index];
	if (e->index != index || e->len != len)
		return BABL_ECORRUPT;
	memcpy(buf, e->data, len);
	return 0;
}

/* ---- nodes -------------------------------------------------------------------- */

static void
node_config(struct sim *s, struct node *n, struct raft_config *c)
{
	memset(c, 0, sizeof(*c));
	raft_config_default(c);
	c->id = (uint64_t)n->id;
	c->seed = s->o->seed * 31 + (uint64_t)n->id + s->now * 1000003;
	c->election_ticks = 10;
	c->heartbeat_ticks = 2;
	c->max_inflight = s->inflight;
	c->max_msg_entries = s->batch;
	c->max_msg_bytes = 600;
	c->max_entry = 4096;
	c->max_uncommitted = 2048; /* about 55 proposals: the backlog stays small */
	c->max_msgs = 512;
	c->max_apply = 16;
	c->snap_chunk = 256;
	c->max_snapshot = 1 << 20;
	c->snap_read = snap_read;
	c->snap_ctx = n;
	if (s->lazy) {
		c->ent_read = ent_read;
		c->ent_ctx = n;
	}
}

static void
node_crash(struct sim *s, struct node *n, const char *how)
{
	raft_close(n->r);
	n->r = NULL;
	n->up = 0;
	n->npend = 0;
	n->down_until = s->now + 1 + rnd(s, 60);
	s->res->crashes++;
	note(s, "node %d crashes (%s), down until %llu", n->id, how,
	    (unsigned long long)n->down_until);
}

static void handle_ready(struct sim *s, struct node *n);

static void
node_start(struct sim *s, struct node *n, const struct raft_conf *boot)
{
	struct raft_config c;
	node_config(s, n, &c);
	if (raft_open(&n->r, &c) != 0) {
		fail(s, "raft_open failed for node %d", n->id);
		return;
	}
	int rc = boot ? raft_bootstrap(n->r, boot) : raft_restore(n->r, &n->hs, n->has_snap ? &n->snap : NULL, n->log,
	    n->nlog, n->has_snap ? n->snap.index : 0);
	if (rc != 0) {
		fail(s, "raft_%s of node %d: %s", boot ? "bootstrap" : "restore",
		    n->id, babl_strerror(rc));
		return;
	}
	n->up = 1;
	n->applied = n->has_snap ? n->snap.index : 0;
	n->state = n->has_snap ? n->snap_state : 0;
	n->lc_term = 0;
	note(s, "node %d starts: term %llu, disk up to %llu, snapshot %llu", n->id,
	    (unsigned long long)n->hs.term, (unsigned long long)disk_last(n),
	    (unsigned long long)(n->has_snap ? n->snap.index : 0));
}

/* ---- the network -------------------------------------------------------------- */

static void
net_push(struct sim *s, int from, int to, const uint8_t *p, size_t len)
{
	if (s->nnet >= MAXNET)
		return;
	struct net_msg *m = &s->net[s->nnet++];
	m->at = s->now + 1 + rnd(s, s->maxdelay);
	m->from = from;
	m->to = to;
	m->p = xrealloc(NULL, len);
	memcpy(m->p, p, len);
	m->n = len;
}

static void
send_msg(struct sim *s, struct node *n, const struct raft_msg *m)
{
	if (m->to < 1 || m->to > NN) {
		fail(s, "node %d sends to unknown id %llu", n->id,
		    (unsigned long long)m->to);
		return;
	}
	wbuf_reset(&s->wb);
	int rc = raft_msg_encode(&s->wb, m);
	if (rc != 0) {
		fail(s, "node %d: raft_msg_encode(%s): %s", n->id,
		    raft_msg_type_name(m->type), babl_strerror(rc));
		return;
	}
	if (s->faults && chance(s, s->loss))
		return;
	net_push(s, n->id, (int)m->to, s->wb.p, s->wb.len);
	if (s->faults && chance(s, s->dup))
		net_push(s, n->id, (int)m->to, s->wb.p, s->wb.len);
}

/* ---- checks ------------------------------------------------------------------- */

static void
check_leader(struct sim *s, struct node *n)
{
	struct raft_status st;
	raft_status(n->r, &st);
	if (st.role != RAFT_LEADER)
		return;
	if (st.term >= s->nleader) {
		size_t cap = (size_t)st.term * 2 + 16;
		s->leader_of = xrealloc(s->leader_of, cap * sizeof(*s->leader_of));
		memset(s->leader_of + s->nleader, 0,
		    (cap - s->nleader) * sizeof(*s->leader_of));
		s->nleader = cap;
	}
	uint64_t *l = &s->leader_of[st.term];
	if (*l == 0) {
		*l = (uint64_t)n->id;
		s->res->leaders++;
		note(s, "node %d leads term %llu (last %llu, commit %llu)", n->id,
		    (unsigned long long)st.term, (unsigned long long)st.last_index,
		    (unsigned long long)st.commit);
	} else if (*l != (uint64_t)n->id) {
		fail(s, "election safety: nodes %llu and %d both lead term %llu",
		    (unsigned long long)*l, n->id, (unsigned long long)st.term);
		return;
	}
	/* Leader completeness: when a leader is first seen, just elected,
	 * every entry applied anywhere is in its log.  (Later it may lag:
	 * a newer leader can commit entries it never had.) */
	if (n->lc_term == st.term)
		return;
	n->lc_term = st.term;
	for (uint64_t i = st.first_index; i <= s->nhist; i++) {
		uint64_t t;
		if (raft_term_at(n->r, i, &t) != 0 || t != s->hist[i - 1].term) {
			fail(s, "leader completeness: leader %d of term %llu lacks "
			    "committed index %llu (term %llu)", n->id,
			    (unsigned long long)st.term, (unsigned long long)i,
			    (unsigned long long)s->hist[i - 1].term);
			return;
		}
	}
}

static void
check_all(struct sim *s)
{
	for (int i = 1; i <= NN && !s->failed; i++)
		if (s->nodes[i].up)
			check_leader(s, &s->nodes[i]);
}

/* ---- a node's ready batches ------------------------------------------------------ */

static void
apply_entry(struct sim *s, struct node *n, const struct raft_entry *e)
{
	if (e->index != n->applied + 1) {
		fail(s, "node %d applies index %llu after %llu", n->id,
		    (unsigned long long)e->index, (unsigned long long)n->applied);
		return;
	}
	uint64_t h = hash_bytes(e->type, e->data, e->len);
	n->state = mix(n->state, e->index, e->term, h);
	n->applied = e->index;
	hist_apply(s, n, e->index, e->term, h, n->state);
	/* An ack to the client that proposed it here. */
	for (size_t i = 0; i < n->npend; i++) {
		struct pend *p = &n->pend[i];
		if (p->index != e->index)
			continue;
		if (p->term == e->term) {
			uint8_t key[8];
			be64_put(key, p->key);
			if (e->type != RAFT_ENT_NORMAL && e->type != RAFT_ENT_CONF)
				fail(s, "node %d: proposal %llu acked as a noop", n->id,
				    (unsigned long long)p->key);
			else if (e->type == RAFT_ENT_NORMAL &&
			    (e->len < 8 || memcmp(e->data, key, 8) != 0))
				fail(s, "node %d: acked index %llu holds another "
				    "proposal", n->id, (unsigned long long)e->index);
			s->res->acked++;
			s->acked_key = p->key;
			s->acked_index = p->index;
		}
		n->pend[i] = n->pend[--n->npend];
		i--;
	}
}

static void
apply_snapshot(struct sim *s, struct node *n, const struct raft_snapshot *sn)
{
	uint64_t idx = sn->meta.index;
	if (sn->meta.size != snap_size(idx) || sn->meta.size < 16) {
		fail(s, "node %d: snapshot %llu of %llu bytes", n->id,
		    (unsigned long long)idx, (unsigned long long)sn->meta.size);
		return;
	}
	uint64_t st = be64_get(sn->data + 8);
	for (uint64_t off = 0; off < sn->meta.size; off++)
		if (sn->data[off] != snap_byte(idx, st, off)) {
			fail(s, "node %d: snapshot %llu damaged at byte %llu", n->id,
			    (unsigned long long)idx, (unsigned long long)off);
			return;
		}
	struct hist *x = hist_at(s, idx);
	if (!x || x->state != st || x->term != sn->meta.term) {
		fail(s, "node %d installs snapshot %llu whose state is not the "
		    "history's", n->id, (unsigned long long)idx);
		return;
	}
	if (idx <= n->applied)
		fail(s, "node %d installs snapshot %llu behind its applied %llu",
		    n->id, (unsigned long long)idx, (unsigned long long)n->applied);
	n->applied = idx;
	n->state = st;
	s->res->snaps_sent++;
	note(s, "node %d installs snapshot %llu", n->id, (unsigned long long)idx);
}

/* Persist rd; with torn, drop the last entry written.  */
static void
persist(struct sim *s, struct node *n, const struct raft_ready *rd, int torn)
{
	if (rd->snap) {
		n->has_snap = 1;
		n->snap = rd->snap->meta;
		n->snap_state = be64_get(rd->snap->data + 8);
		disk_drop_from(n, 0);
	}
	if (rd->truncate)
		disk_drop_from(n, rd->truncate);
	size_t k = rd->nentries;
	if (torn && k)
		k--;
	if (rd->nentries && rd->entries[0].index <= disk_last(n))
		disk_drop_from(n, rd->entries[0].index);
	for (size_t i = 0; i < k && !s->failed; i++)
		disk_append(s, n, &rd->entries[i]);
	if (rd->hs_changed) {
		if (rd->hs.term < n->hs.term ||
		    (rd->hs.term == n->hs.term && n->hs.vote && rd->hs.vote != n->hs.vote))
			fail(s, "node %d: hard state goes back: term %llu vote %llu "
			    "after term %llu vote %llu", n->id,
			    (unsigned long long)rd->hs.term, (unsigned long long)rd->hs.vote,
			    (unsigned long long)n->hs.term, (unsigned long long)n->hs.vote);
		n->hs = rd->hs;
	}
}

static void
maybe_snapshot(struct sim *s, struct node *n)
{
	uint64_t base = n->has_snap ? n->snap.index : 0;
	if (n->applied < base + SNAP_EVERY || !chance(s, 300))
		return;
	struct raft_snap_meta m;
	int rc = raft_compact(n->r, n->applied, snap_size(n->applied), &m);
	if (rc != 0) {
		fail(s, "node %d: raft_compact(%llu): %s", n->id,
		    (unsigned long long)n->applied, babl_strerror(rc));
		return;
	}
	n->has_snap = 1;
	n->snap = m;
	n->snap_state = n->state;
	disk_drop_upto(n, m.index);
	note(s, "node %d snapshots at %llu", n->id, (unsigned long long)m.index);
}

static void
handle_ready(struct sim *s, struct node *n)
{
	struct raft_ready rd;
	int rc = 0;
	while (n->up && !s->failed && (rc = raft_ready(n->r, &rd)) > 0) {
		int crash = s->faults && chance(s, 4) ? 1 + rnd(s, 3) : 0;
		/* As meshd does: a leader's appends go out while it writes. */
		for (size_t i = 0; i < rd.nmsgs && !s->failed; i++)
			if (raft_early(n->r, &rd, &rd.msgs[i]))
				send_msg(s, n, &rd.msgs[i]);
		if (crash == 1) {
			node_crash(s, n, "before persisting a ready");
			return;
		}
		persist(s, n, &rd, crash == 2 && rd.nentries);
		if (crash) {
			node_crash(s, n, crash == 2 ? "torn last write" :
			    "after persisting, before sending");
			return;
		}
		for (size_t i = 0; i < rd.nmsgs && !s->failed; i++)
			if (!raft_early(n->r, &rd, &rd.msgs[i]))
				send_msg(s, n, &rd.msgs[i]);
		if (rd.snap)
			apply_snapshot(s, n, rd.snap);
		for (size_t i = 0; i < rd.ncommitted && !s->failed; i++)
			apply_entry(s, n, &rd.committed[i]);
		rc = raft_advance(n->r, &rd);
		if (rc != 0)
			fail(s, "node %d: raft_advance: %s", n->id, babl_strerror(rc));
		check_all(s);
	}
	if (n->up && !s->failed && rc < 0)
		fail(s, "node %d: raft_ready: %s", n->id, babl_strerror(rc));
	if (n->up && !s->failed)
		maybe_snapshot(s, n);
}

/* ---- events --------------------------------------------------------------------- */

static struct node *
leader(struct sim *s)
{
	struct node *best = NULL;
	uint64_t bt = 0;
	for (int i = 1; i <= NN; i++) {
		struct node *n = &s->nodes[i];
		struct raft_status st;
		if (!n->up)
			continue;
		raft_status(n->r, &st);
		if (st.role == RAFT_LEADER && st.term >= bt) {
			best = n;
			bt = st.term;
		}
	}
	return best;
}

static int
propose(struct sim *s, struct node *n, uint64_t *key)
{
	uint8_t buf[64];
	uint64_t k = ++s->next_key;
	size_t len = 8 + rnd(s, 56);
	be64_put(buf, k);
	for (size_t i = 8; i < len; i++)
		buf[i] = (uint8_t)(k * 31 + i);
	uint64_t index, term;
	int rc = raft_propose(n->r, buf, len, &index, &term);
	if (rc != 0) {
		if (rc != BABL_EBUSY && rc != BABL_EPERM)
			fail(s, "node %d: raft_propose: %s", n->id, babl_strerror(rc));
		return rc;
	}
	if (n->npend == n->cappend) {
		n->cappend = n->cappend ? n->cappend * 2 : 64;
		n->pend = xrealloc(n->pend, n->cappend * sizeof(*n->pend));
	}
	n->pend[n->npend++] = (struct pend){index, term, k};
	if (key)
		*key = k;
	handle_ready(s, n);
	return 0;
}

static void
conf_event(struct sim *s, struct node *l)
{
	struct raft_conf c;
	struct raft_conf_change cc = {0, 0};
	raft_conf(l->r, &c);
	unsigned voters = 0, learners = 0;
	for (uint32_t i = 0; i < c.n; i++)
		c.s[i].voter ? voters++ : learners++;
	unsigned what = rnd(s, 3);
	if (what == 0) {
		int cand[NN], k = 0;
		for (int id = 1; id <= NN; id++)
			if (raft_conf_role(&c, (uint64_t)id) == -1 && !s->removed_ever[id])
				cand[k++] = id;
		if (!k)
			return;
		cc.type = RAFT_CC_ADD_LEARNER;
		cc.id = (uint64_t)cand[rnd(s, (unsigned)k)];
	} else if (what == 1) {
		if (!learners)
			return;
		unsigned j = rnd(s, learners);
		for (uint32_t i = 0; i < c.n; i++)
			if (!c.s[i].voter && j-- == 0)
				cc.id = c.s[i].id;
		cc.type = RAFT_CC_PROMOTE;
	} else {
		if (c.n == 0)
			return;
		const struct raft_server *v = &c.s[rnd(s, c.n)];
		if (v->voter && voters < 3)
			return;
		cc.type = RAFT_CC_REMOVE;
		cc.id = v->id;
	}
	uint64_t index;
	int rc = raft_propose_conf(l->r, &cc, &index, NULL);
	static const char *const what_name[] = {"?", "add learner", "promote", "remove"};
	if (rc == 0) {
		s->res->conf_changes++;
		if (cc.type == RAFT_CC_REMOVE)
			s->removed_ever[cc.id] = 1;
		note(s, "leader %d proposes: %s %llu at %llu", l->id, what_name[cc.type],
		    (unsigned long long)cc.id, (unsigned long long)index);
		handle_ready(s, l);
	} else if (rc != BABL_EBUSY) {
		fail(s, "raft_propose_conf(%s %llu): %s", what_name[cc.type],
		    (unsigned long long)cc.id, babl_strerror(rc));
	}
}

static void
transfer_event(struct sim *s, struct node *l)
{
	struct raft_conf c;
	raft_conf(l->r, &c);
	uint64_t to = c.s[rnd(s, c.n ? c.n : 1)].id;
	if (!c.n || raft_conf_role(&c, to) != 1 || to == (uint64_t)l->id)
		return;
	if (raft_transfer_leader(l->r, to) == 0) {
		s->res->transfers++;
		note(s, "leader %d transfers to %llu", l->id, (unsigned long long)to);
		handle_ready(s, l);
	}
}

static void
partition_event(struct sim *s)
{
	memset(s->block, 0, sizeof(s->block));
	if (rnd(s, 2)) {
		/* Symmetric: a random side against the rest. */
		unsigned mask = 1 + rnd(s, (1u << NN) - 2);
		for (int a = 1; a <= NN; a++)
			for (int b = 1; b <= NN; b++)
				if (((mask >> (a - 1)) & 1) != ((mask >> (b - 1)) & 1))
					s->block[a][b] = 1;
		note(s, "partition: mask %#x against the rest", mask);
	} else {
		/* One way: some links drop in one direction only. */
		unsigned k = 1 + rnd(s, 4);
		for (unsigned i = 0; i < k; i++) {
			int a = 1 + (int)rnd(s, NN), b = 1 + (int)rnd(s, NN);
			if (rnd(s, 3) == 0) {
				for (b = 1; b <= NN; b++)
					s->block[a][b] = 1; /* a cannot send */
				note(s, "partition: %d cannot send", a);
			} else {
				s->block[a][b] = 1;
				note(s, "partition: %d -> %d drops", a, b);
			}
		}
	}
	s->heal_at = s->now + 10 + rnd(s, 120);
}

static void
weather(struct sim *s)
{
	static const unsigned loss[] = {0, 0, 10, 50, 200};
	static const unsigned dup[] = {0, 0, 10, 50};
	s->loss = loss[rnd(s, 5)];
	s->dup = dup[rnd(s, 4)];
	s->maxdelay = 1 + rnd(s, 8);
	note(s, "network: loss %u/1000, dup %u/1000, delay 1..%u", s->loss, s->dup,
	    s->maxdelay);
}

static void
faults(struct sim *s)
{
	if (chance(s, 20))
		weather(s);
	if (s->heal_at && s->now >= s->heal_at) {
		memset(s->block, 0, sizeof(s->block));
		s->heal_at = 0;
		note(s, "partition heals");
	}
	if (!s->heal_at && chance(s, 15))
		partition_event(s);
	for (int i = 1; i <= NN; i++) {
		struct node *n = &s->nodes[i];
		if (n->up && chance(s, 3))
			node_crash(s, n, "at random");
	}
	struct node *l = leader(s);
	if (l && chance(s, 15))
		conf_event(s, l);
	if (!s->failed && (l = leader(s)) && chance(s, 5))
		transfer_event(s, l);
}

static void
deliver(struct sim *s)
{
	size_t due[MAXNET], k = 0;
	for (size_t i = 0; i < s->nnet; i++)
		if (s->net[i].at <= s->now)
			due[k++] = i;
	for (size_t i = k; i > 1; i--) {
		size_t j = rnd(s, (unsigned)i), t = due[i - 1];
		due[i - 1] = due[j];
		due[j] = t;
	}
	for (size_t i = 0; i < k && !s->failed; i++) {
		struct net_msg *m = &s->net[due[i]];
		struct node *to = &s->nodes[m->to];
		if (!to->up || s->block[m->from][m->to])
			continue;
		struct raft_msg rm;
		int rc = raft_msg_decode(m->p, m->n, &rm, s->dec, RAFT_MSG_MAX_ENTRIES);
		if (rc != 0) {
			fail(s, "raft_msg_decode of an encoded message: %s",
			    babl_strerror(rc));
			break;
		}
		if (getenv("SIM_TRACE") && s->now > (uint64_t)atoi(getenv("SIM_TRACE")))
			note(s, "  %d -> %d %s term %llu index %llu logterm %llu commit %llu n %u rej %d hint %llu off %llu", m->from, m->to,
			    raft_msg_type_name(rm.type), (unsigned long long)rm.term, (unsigned long long)rm.index,
			    (unsigned long long)rm.log_term, (unsigned long long)rm.commit, rm.nentries, rm.flags & 1,
			    (unsigned long long)rm.hint, (unsigned long long)rm.off);
		rc = raft_step(to->r, &rm);
		if (rc != 0) {
			fail(s, "node %d: raft_step(%s from %d): %s", to->id,
			    raft_msg_type_name(rm.type), m->from, babl_strerror(rc));
			break;
		}
		handle_ready(s, to);
		check_all(s);
	}
	/* Remove what was due (delivered or not). */
	size_t j = 0;
	for (size_t i = 0; i < s->nnet; i++) {
		if (s->net[i].at <= s->now)
			free(s->net[i].p);
		else
			s->net[j++] = s->net[i];
	}
	s->nnet = j;
}

static void
tick_all(struct sim *s)
{
	for (int i = 1; i <= NN && !s->failed; i++) {
		struct node *n = &s->nodes[i];
		if (!n->up) {
			if (n->down_until <= s->now)
				node_start(s, n, NULL);
			continue;
		}
		int rc = raft_tick(n->r);
		if (rc != 0)
			fail(s, "node %d: raft_tick: %s", n->id, babl_strerror(rc));
		handle_ready(s, n);
		check_all(s);
	}
}

static void
one_tick(struct sim *s)
{
	s->now++;
	s->res->ticks++;
	if (s->faults)
		faults(s);
	struct node *l = leader(s);
	if (s->faults && l && chance(s, 400)) {
		unsigned k = 1 + rnd(s, 3);
		for (unsigned i = 0; i < k && !s->failed && l->up; i++)
			propose(s, l, NULL);
	}
	if (!s->failed)
		tick_all(s);
	if (!s->failed)
		deliver(s);
}

/* ---- the run ------------------------------------------------------------------------ */

static void
sim_free(struct sim *s)
{
	for (int i = 1; i <= NN; i++) {
		struct node *n = &s->nodes[i];
		raft_close(n->r);
		disk_drop_from(n, 0);
		free(n->log);
		free(n->pend);
	}
	for (size_t i = 0; i < s->nnet; i++)
		free(s->net[i].p);
	free(s->net);
	free(s->hist);
	free(s->leader_of);
	free(s->mt);
	wbuf_free(&s->wb);
}

/* Is the proposal with key still waiting for its ack somewhere?  Only
 * while the node that took it still holds its entry. */
static int
pending(struct sim *s, uint64_t key)
{
	for (int i = 1; i <= NN; i++) {
		const struct node *n = &s->nodes[i];
		for (size_t j = 0; j < n->npend; j++) {
			uint64_t t;
			if (n->pend[j].key == key && n->up &&
			    raft_term_at(n->r, n->pend[j].index, &t) == 0 &&
			    t == n->pend[j].term)
				return 1;
		}
	}
	return 0;
}

/* After the faults: heal, and demand progress within HEAL_TICKS. */
static void
heal(struct sim *s)
{
	s->faults = 0;
	memset(s->block, 0, sizeof(s->block));
	s->heal_at = 0;
	s->maxdelay = 2;
	note(s, "heal: everything restarts and reconnects");
	for (int i = 1; i <= NN; i++)
		s->nodes[i].down_until = s->now;
	uint64_t key = 0, target = 0, asked = 0, deadline = s->now + HEAL_TICKS;
	while (s->now < deadline && !s->failed) {
		one_tick(s);
		if (s->failed)
			return;
		struct node *l = leader(s);
		if (!key && l) {
			if (propose(s, l, &key) != 0)
				key = 0;
			asked = s->now;
		}
		if (key && !target && s->now - asked > 100) {
			key = 0; /* a client gives up and asks again */
			continue;
		}
		if (key && !target && !pending(s, key)) {
			if (s->acked_key == key)
				target = s->acked_index;
			else
				key = 0; /* lost in a change of leader: again */
		}
		if (!target || !l)
			continue;
		/* Done when every member of the leader's configuration
		 * applied it. */
		struct raft_conf c;
		raft_conf(l->r, &c);
		int done = 1;
		for (uint32_t i = 0; i < c.n; i++) {
			struct node *m = &s->nodes[c.s[i].id];
			if (!m->up || m->applied < target)
				done = 0;
		}
		if (done) {
			note(s, "after healing: index %llu applied by every member",
			    (unsigned long long)target);
			return;
		}
	}
	fail(s, "no progress after healing: %s within %d ticks",
	    !key ? "no leader took a proposal" : !target ?
	    "the proposal was not acked" : "not every member applied it",
	    HEAL_TICKS);
}

int
sim_run(const struct sim_opts *o, struct sim_result *res)
{
	struct sim *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	memset(res, 0, sizeof(*res));
	s->o = o;
	s->res = res;
	s->rng = o->seed * 0x2545f4914f6cdd1dull + 1;
	s->net = xrealloc(NULL, MAXNET * sizeof(*s->net));
	s->faults = 1;
	s->maxdelay = 3;

	static const unsigned batch[] = {1, 2, 8}, infl[] = {1, 2, 4};
	s->batch = batch[rnd(s, 3)];
	s->inflight = infl[rnd(s, 3)];
	s->lazy = o->seed % 2;
	static const int sizes[] = {1, 3, 3, 3, 5, 5};
	int nv = sizes[rnd(s, 6)];
	struct raft_conf c;
	memset(&c, 0, sizeof(c));
	for (int i = 0; i < nv; i++) {
		c.s[i].id = (uint64_t)(i + 1);
		c.s[i].voter = 1;
	}
	c.n = (uint32_t)nv;
	note(s, "seed %llu: %d voters, %d spare nodes, %u entries per append, "
	    "%u in flight%s", (unsigned long long)o->seed, nv, NN - nv, s->batch,
	    s->inflight, s->lazy ? ", applied entries read back from disk" : "");
	for (int i = 1; i <= NN && !s->failed; i++) {
		struct node *n = &s->nodes[i];
		n->id = i;
		node_start(s, n, i <= nv ? &c : NULL);
		if (i <= nv && !s->failed) {
			s->faults = 0; /* the bootstrap is durable before anything */
			handle_ready(s, n);
			s->faults = 1;
		}
	}
	while (s->now < o->steps && !s->failed)
		one_tick(s);
	if (!s->failed)
		heal(s);
	int ok = !s->failed;
	res->ok = ok;
	sim_free(s);
	free(s);
	return ok ? 0 : -1;
}
