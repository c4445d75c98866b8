/*
 * raft.c - the Raft core (see raft.h for the contract).
 *
 * Layout of this file: the in-memory log, configurations, outgoing
 * messages, replication to one follower, roles and elections, the
 * handlers of each message type, the public entry points, and the message
 * codec.
 *
 * Indexes: the log holds entries base+1 .. base+n in ents[lo .. lo+n);
 * base and base_term describe the last entry covered by the snapshot (0 if
 * none).  stable is the last index handed to a ready for persisting,
 * persisted the last one the caller confirmed with raft_advance; a leader
 * counts itself as a replica only up to persisted.
 *
 * With cfg.ent_read, entries up to shed have no data in memory (but conf
 * entries, and those read back for the ready in progress: rl_lo..rl_hi).
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft.h"
#include "wire.h"

enum { PR_PROBE = 0, PR_REPLICATE = 1, PR_SNAPSHOT = 2 };
enum { V_NONE = 0, V_GRANT = 1, V_REJECT = 2 };

/* What a leader knows of one server (and a candidate of its votes). */
struct prog {
	uint64_t id;
	uint8_t voter;
	uint8_t state;   /* PR_* */
	uint8_t paused;  /* a probe is out, wait for its answer */
	uint8_t active;  /* heard from since the last quorum check */
	uint8_t vote;    /* V_* */
	uint64_t match, next;
	uint64_t infl[RAFT_MAX_INFLIGHT]; /* last index of each append in flight */
	unsigned infl_head, infl_n;
	/* PR_SNAPSHOT: the snapshot being sent and how far. */
	struct raft_snap_meta snap;
	uint64_t snap_sent, snap_acked;
	unsigned snap_stall; /* ticks without progress */
	uint8_t snap_any;    /* a chunk went out (for empty snapshots) */
};

/* An outgoing message; entries are resolved when the ready is taken. */
struct pmsg {
	struct raft_msg m;
	uint64_t ent_lo; /* index of entries[0], 0 if none */
	uint8_t *chunk;  /* SNAP data, owned */
};

struct raft {
	struct raft_config cfg;
	uint64_t id;
	uint64_t term, vote, lead;
	enum raft_role role;
	uint64_t commit, applied;
	int fresh;

	struct raft_entry *ents; /* owns every data */
	size_t lo, n, cap;
	uint64_t base, base_term;
	struct raft_conf base_conf; /* as of base */
	struct raft_conf conf;      /* latest in the log */
	uint64_t conf_index;        /* its entry, or 0 if from base */
	struct raft_snap_meta snap; /* latest snapshot here, index 0 if none */

	uint64_t stable, persisted, trunc;
	struct raft_hard_state hs_saved;
	uint64_t shed, rl_lo, rl_hi;

	int in_ready;
	uint64_t rd_last, rd_applied;
	int rd_install;

	/* A snapshot installed and not yet handed out/advanced. */
	int inst_on;
	struct raft_snapshot inst;
	uint8_t *inst_buf;

	/* A snapshot being received. */
	int rx_on;
	struct raft_snap_meta rx_meta;
	uint8_t *rx_buf;
	uint64_t rx_got;

	unsigned elapsed, hb_elapsed, timeout;
	uint64_t rng;

	struct prog prs[RAFT_MAX_NODES];
	unsigned nprs;
	uint64_t term_start; /* index of this leader's noop */
	size_t uncommitted;
	uint64_t transferee;
	unsigned transfer_elapsed;

	struct pmsg *pm;
	unsigned npm;
	struct raft_msg *out;
};

static void bcast_append(struct raft *r, int empty_ok);
static int send_append(struct raft *r, struct prog *p, int empty_ok);

/* ---- small helpers ---------------------------------------------------- */

static uint64_t
rng_next(struct raft *r)
{
	/* splitmix64 */
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void
new_timeout(struct raft *r)
{
	unsigned e = r->cfg.election_ticks;
	r->timeout = e + (unsigned)(rng_next(r) % e);
}

static uint64_t
umin(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t
umax(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* ---- the log ---------------------------------------------------------- */

static uint64_t
last_index(const struct raft *r)
{
	return r->base + r->n;
}

static struct raft_entry *
ent(const struct raft *r, uint64_t i)
{
	return &r->ents[r->lo + (size_t)(i - r->base - 1)];
}

static int
term_of(const struct raft *r, uint64_t i, uint64_t *t)
{
	if (i == r->base) {
		*t = r->base_term;
		return 0;
	}
	if (i < r->base || i > last_index(r))
		return BABL_ENOENT;
	*t = ent(r, i)->term;
	return 0;
}

static uint64_t
last_term(const struct raft *r)
{
	uint64_t t = 0;
	(void)term_of(r, last_index(r), &t);
	return t;
}

static int
match_term(const struct raft *r, uint64_t i, uint64_t t)
{
	uint64_t have;
	return term_of(r, i, &have) == 0 && have == t;
}

/* Drop outgoing messages whose entries reach index from or beyond (they
 * are about to change), or, if below is set, start at or below it. */
static void
drop_msgs(struct raft *r, uint64_t from, uint64_t below)
{
	unsigned j = 0;
	for (unsigned i = 0; i < r->npm; i++) {
		struct pmsg *p = &r->pm[i];
		int drop = 0;
		if (p->ent_lo && p->m.nentries) {
			uint64_t hi = p->ent_lo + p->m.nentries - 1;
			if (from && hi >= from)
				drop = 1;
			if (below && p->ent_lo <= below)
				drop = 1;
		}
		if (drop) {
			free(p->chunk);
			continue;
		}
		r->pm[j++] = *p;
	}
	r->npm = j;
}

static int
log_reserve(struct raft *r)
{
	if (r->lo + r->n < r->cap)
		return 0;
	if (r->lo > 0) {
		memmove(r->ents, r->ents + r->lo, r->n * sizeof(*r->ents));
		r->lo = 0;
		if (r->n < r->cap)
			return 0;
	}
	size_t cap = r->cap ? r->cap * 2 : 64;
	struct raft_entry *e = realloc(r->ents, cap * sizeof(*e));
	if (!e)
		return BABL_ENOMEM;
	r->ents = e;
	r->cap = cap;
	return 0;
}

static void conf_changed(struct raft *r);

/* Append a copy of e at last_index + 1 (its index must be that). */
static int
log_append(struct raft *r, uint64_t term, uint8_t type, const void *data,
    size_t len)
{
	if (log_reserve(r) != 0)
		return BABL_ENOMEM;
	uint8_t *d = NULL;
	if (len && data) {
		d = malloc(len);
		if (!d)
			return BABL_ENOMEM;
		memcpy(d, data, len);
	}
	struct raft_entry *e = &r->ents[r->lo + r->n];
	e->index = last_index(r) + 1;
	e->term = term;
	e->type = type;
	e->len = (uint32_t)len;
	e->data = d;
	r->n++;
	if (type == RAFT_ENT_CONF) {
		struct raft_conf c;
		/* A conf entry that does not decode changes nothing, on
		 * every node alike. */
		if (raft_conf_decode(d, len, &c) == 0) {
			r->conf = c;
			r->conf_index = e->index;
			conf_changed(r);
		}
	}
	return 0;
}

static void conf_reload(struct raft *r);

/* Drop an entry's data, unless it is a conf entry (see ent_read). */
static void
ent_drop(struct raft_entry *e)
{
	if (e->type != RAFT_ENT_CONF) {
		free(e->data);
		e->data = NULL;
	}
}

/* With ent_read: drop what was read back for the ready just advanced, and
 * the data of entries now both persisted and applied. */
static void
log_shed(struct raft *r)
{
	if (!r->cfg.ent_read)
		return;
	uint64_t upto = umin(umin(r->applied, r->persisted), last_index(r));
	if (r->rl_lo)
		for (uint64_t i = umax(r->rl_lo, r->base + 1); i <= umin(r->rl_hi, upto); i++)
			ent_drop(ent(r, i));
	r->rl_lo = r->rl_hi = 0;
	for (uint64_t i = umax(r->shed, r->base) + 1; i <= upto; i++)
		ent_drop(ent(r, i));
	r->shed = umax(r->shed, upto);
}

/* Read back the data of entries lo .. lo+n-1 that have none. */
static int
log_reload(struct raft *r, uint64_t lo, size_t n)
{
	for (uint64_t i = lo; i < lo + n; i++) {
		struct raft_entry *e = ent(r, i);
		if (e->data || !e->len)
			continue;
		if (!r->cfg.ent_read) /* (only restore leaves data out, and only with it) */
			return BABL_EINTERNAL;
		uint8_t *d = malloc(e->len);
		if (!d)
			return BABL_ENOMEM;
		int rc = r->cfg.ent_read(r->cfg.ent_ctx, i, d, e->len);
		if (rc) {
			free(d);
			return rc < 0 ? rc : BABL_EIO;
		}
		e->data = d;
		r->rl_lo = r->rl_lo ? umin(r->rl_lo, i) : i;
		r->rl_hi = umax(r->rl_hi, i);
	}
	return 0;
}

/* Remove entries from index from on. */
static void
log_truncate(struct raft *r, uint64_t from)
{
	uint64_t last = last_index(r);
	if (from > last)
		return;
	for (uint64_t i = from; i <= last; i++)
		free(ent(r, i)->data);
	r->n = (size_t)(from - r->base - 1);
	drop_msgs(r, from, 0);
	if (from <= r->stable) {
		r->stable = from - 1;
		r->trunc = r->trunc ? umin(r->trunc, from) : from;
	}
	if (r->persisted >= from)
		r->persisted = from - 1;
	if (r->conf_index >= from)
		conf_reload(r);
}

/* Remove entries up to index upto (<= last) from memory. */
static void
log_compact(struct raft *r, uint64_t upto, uint64_t upto_term)
{
	drop_msgs(r, 0, upto);
	uint64_t k = upto - r->base;
	for (uint64_t i = r->base + 1; i <= upto; i++)
		free(ent(r, i)->data);
	r->lo += (size_t)k;
	r->n -= (size_t)k;
	r->base = upto;
	r->base_term = upto_term;
	if (r->n == 0)
		r->lo = 0;
}

static void
log_clear(struct raft *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->ents[r->lo + i].data);
	drop_msgs(r, 1, 0);
	r->n = 0;
	r->lo = 0;
}

/* ---- configurations ---------------------------------------------------- */

int
raft_conf_role(const struct raft_conf *c, uint64_t id)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->s[i].id == id)
			return c->s[i].voter ? 1 : 0;
	return -1;
}

static unsigned
nvoters(const struct raft_conf *c)
{
	unsigned v = 0;
	for (uint32_t i = 0; i < c->n; i++)
		v += c->s[i].voter ? 1 : 0;
	return v;
}

static unsigned
quorum(const struct raft *r)
{
	return nvoters(&r->conf) / 2 + 1;
}

static int
promotable(const struct raft *r)
{
	return raft_conf_role(&r->conf, r->id) == 1;
}

static struct prog *
prog_find(struct raft *r, uint64_t id)
{
	for (unsigned i = 0; i < r->nprs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

static void
prog_reset(struct raft *r, struct prog *p)
{
	uint64_t id = p->id;
	uint8_t voter = p->voter;
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->voter = voter;
	p->next = last_index(r) + 1;
	p->state = PR_PROBE;
	if (id == r->id)
		p->match = r->persisted;
}

/* Bring prs in line with conf, keeping what is known of staying servers. */
static void
conf_changed(struct raft *r)
{
	struct prog old[RAFT_MAX_NODES];
	unsigned nold = r->nprs;
	memcpy(old, r->prs, nold * sizeof(old[0]));
	r->nprs = 0;
	for (uint32_t i = 0; i < r->conf.n; i++) {
		struct prog *p = &r->prs[r->nprs++];
		const struct prog *o = NULL;
		for (unsigned j = 0; j < nold; j++)
			if (old[j].id == r->conf.s[i].id)
				o = &old[j];
		if (o) {
			*p = *o;
		} else {
			memset(p, 0, sizeof(*p));
			p->id = r->conf.s[i].id;
			prog_reset(r, p);
			p->active = 1;
		}
		p->voter = r->conf.s[i].voter;
	}
	if (r->transferee && raft_conf_role(&r->conf, r->transferee) != 1)
		r->transferee = 0;
}

/* The configuration is the latest conf entry in the log, or base_conf. */
static void
conf_reload(struct raft *r)
{
	r->conf = r->base_conf;
	r->conf_index = 0;
	for (uint64_t i = last_index(r); i > r->base; i--) {
		const struct raft_entry *e = ent(r, i);
		struct raft_conf c;
		if (e->type == RAFT_ENT_CONF &&
		    raft_conf_decode(e->data, e->len, &c) == 0) {
			r->conf = c;
			r->conf_index = i;
			break;
		}
	}
	conf_changed(r);
}

/* The configuration as of index (base .. last). */
static void
conf_at(const struct raft *r, uint64_t index, struct raft_conf *c)
{
	*c = r->base_conf;
	for (uint64_t i = index; i > r->base; i--) {
		const struct raft_entry *e = ent(r, i);
		if (e->type == RAFT_ENT_CONF && raft_conf_decode(e->data, e->len, c) == 0)
			return;
		*c = r->base_conf;
	}
}

static int
conf_valid(const struct raft_conf *c)
{
	if (c->n > RAFT_MAX_NODES)
		return 0;
	for (uint32_t i = 0; i < c->n; i++) {
		if (c->s[i].id == 0 || c->s[i].voter > 1)
			return 0;
		for (uint32_t j = 0; j < i; j++)
			if (c->s[j].id == c->s[i].id)
				return 0;
	}
	return 1;
}

int
raft_conf_encode(struct wbuf *b, const struct raft_conf *c)
{
	if (!conf_valid(c))
		return BABL_EINPUT;
	size_t start = b->len;
	int rc = wb_u32(b, c->n);
	for (uint32_t i = 0; rc == 0 && i < c->n; i++) {
		rc = wb_u64(b, c->s[i].id);
		if (rc == 0)
			rc = wb_u8(b, c->s[i].voter);
	}
	if (rc != 0)
		b->len = start;
	return rc;
}

static void
conf_read(struct rd *d, struct raft_conf *c)
{
	memset(c, 0, sizeof(*c));
	uint32_t n = rd_u32(d);
	if (n > RAFT_MAX_NODES) {
		d->bad = 1;
		return;
	}
	c->n = n;
	for (uint32_t i = 0; i < n && !d->bad; i++) {
		c->s[i].id = rd_u64(d);
		c->s[i].voter = rd_u8(d);
	}
	if (!d->bad && !conf_valid(c))
		d->bad = 1;
}

int
raft_conf_decode(const void *p, size_t n, struct raft_conf *c)
{
	struct rd d;
	rd_init(&d, p ? p : (const void *)"", n);
	conf_read(&d, c);
	return rd_done(&d) == 0 ? 0 : BABL_EPROTO;
}

/* ---- outgoing messages -------------------------------------------------- */

static struct pmsg *
msg_new(struct raft *r, uint8_t type, uint64_t to)
{
	if (r->npm >= r->cfg.max_msgs)
		return NULL; /* dropped: Raft survives lost messages */
	struct pmsg *p = &r->pm[r->npm++];
	memset(p, 0, sizeof(*p));
	p->m.type = type;
	p->m.from = r->id;
	p->m.to = to;
	p->m.term = r->term;
	return p;
}

/* ---- replication to one follower --------------------------------------- */

static void
infl_reset(struct prog *p)
{
	p->infl_head = p->infl_n = 0;
}

static int
infl_full(const struct raft *r, const struct prog *p)
{
	return p->infl_n >= r->cfg.max_inflight;
}

static void
infl_add(struct prog *p, uint64_t last)
{
	p->infl[(p->infl_head + p->infl_n) % RAFT_MAX_INFLIGHT] = last;
	p->infl_n++;
}

static void
infl_free_to(struct prog *p, uint64_t idx)
{
	while (p->infl_n && p->infl[p->infl_head] <= idx) {
		p->infl_head = (p->infl_head + 1) % RAFT_MAX_INFLIGHT;
		p->infl_n--;
	}
}

static void
become_probe(struct raft *r, struct prog *p)
{
	p->state = PR_PROBE;
	p->paused = 0;
	p->next = p->match + 1;
	infl_reset(p);
	(void)r;
}

static void
become_replicate(struct prog *p)
{
	p->state = PR_REPLICATE;
	p->paused = 0;
	p->next = p->match + 1;
	infl_reset(p);
}

/* Send chunks of p->snap while the window allows. */
static void
send_chunks(struct raft *r, struct prog *p)
{
	size_t window = (size_t)r->cfg.max_inflight * r->cfg.snap_chunk;
	while (p->state == PR_SNAPSHOT &&
	    (p->snap_sent < p->snap.size || (p->snap.size == 0 && !p->snap_any)) &&
	    p->snap_sent - p->snap_acked < window) {
		uint64_t len = umin(r->cfg.snap_chunk, p->snap.size - p->snap_sent);
		struct pmsg *m = msg_new(r, RAFT_MSG_SNAP, p->id);
		if (!m)
			return;
		uint8_t *buf = NULL;
		if (len) {
			buf = malloc((size_t)len);
			if (!buf) {
				r->npm--;
				return;
			}
		}
		int rc = len ? r->cfg.snap_read(r->cfg.snap_ctx, &p->snap,
		    p->snap_sent, buf, (size_t)len) : 0;
		if (rc != 0) {
			free(buf);
			r->npm--;
			if (r->snap.index > p->snap.index) {
				/* Replaced by a newer one: start over with it. */
				p->snap = r->snap;
				p->snap_sent = p->snap_acked = 0;
				p->snap_any = 0;
				continue;
			}
			become_probe(r, p);
			p->paused = 1;
			return;
		}
		m->chunk = buf;
		m->m.snap = p->snap;
		m->m.off = p->snap_sent;
		m->m.len = (uint32_t)len;
		m->m.data = buf;
		m->m.commit = r->commit;
		p->snap_sent += len;
		p->snap_any = 1;
	}
}

static void
start_snapshot(struct raft *r, struct prog *p)
{
	if (r->snap.index == 0 || !r->cfg.snap_read) {
		p->paused = 1;
		return;
	}
	p->state = PR_SNAPSHOT;
	p->snap = r->snap;
	p->snap_sent = p->snap_acked = 0;
	p->snap_stall = 0;
	p->snap_any = 0;
	infl_reset(p);
	send_chunks(r, p);
}

/*
 * Send p what it lacks from p->next on, as one APPEND.  With empty_ok an
 * append without entries goes out too (to probe or carry the commit).
 * Returns 1 if a message went out.
 */
static int
send_append(struct raft *r, struct prog *p, int empty_ok)
{
	if (p->id == r->id || p->state == PR_SNAPSHOT)
		return 0;
	if (p->state == PR_PROBE && p->paused)
		return 0;
	if (p->state == PR_REPLICATE && infl_full(r, p))
		return 0;
	uint64_t prev = p->next - 1, pt;
	if (term_of(r, prev, &pt) != 0) {
		start_snapshot(r, p);
		return 0;
	}
	uint64_t last = last_index(r);
	uint32_t n = 0;
	size_t bytes = 0;
	for (uint64_t i = p->next; i <= last; i++) {
		const struct raft_entry *e = ent(r, i);
		if (n >= r->cfg.max_msg_entries ||
		    (n > 0 && bytes + e->len > r->cfg.max_msg_bytes))
			break;
		bytes += e->len;
		n++;
	}
	if (n == 0 && !empty_ok)
		return 0;
	struct pmsg *m = msg_new(r, RAFT_MSG_APPEND, p->id);
	if (!m)
		return 0;
	m->m.index = prev;
	m->m.log_term = pt;
	m->m.commit = r->commit;
	m->m.nentries = n;
	m->ent_lo = n ? p->next : 0;
	if (p->state == PR_REPLICATE) {
		if (n) {
			p->next = prev + n + 1;
			infl_add(p, prev + n);
		}
	} else {
		p->paused = 1;
	}
	return 1;
}

/* Everything each follower can take now. */
static void
bcast_append(struct raft *r, int empty_ok)
{
	for (unsigned i = 0; i < r->nprs; i++) {
		struct prog *p = &r->prs[i];
		if (p->id == r->id)
			continue;
		int sent = send_append(r, p, empty_ok);
		while (sent && p->state == PR_REPLICATE && p->next <= last_index(r))
			sent = send_append(r, p, 0);
	}
}

/* ---- roles ---------------------------------------------------------------- */

static void
reset(struct raft *r, uint64_t term)
{
	if (term != r->term) {
		r->term = term;
		r->vote = 0;
	}
	r->lead = 0;
	r->elapsed = 0;
	r->hb_elapsed = 0;
	new_timeout(r);
	r->transferee = 0;
	r->uncommitted = 0;
	for (unsigned i = 0; i < r->nprs; i++)
		prog_reset(r, &r->prs[i]);
}

static void
become_follower(struct raft *r, uint64_t term, uint64_t lead)
{
	reset(r, term);
	r->role = RAFT_FOLLOWER;
	r->lead = lead;
}

static void
become_leader(struct raft *r)
{
	reset(r, r->term);
	r->role = RAFT_LEADER;
	r->lead = r->id;
	r->term_start = last_index(r) + 1;
	for (unsigned i = 0; i < r->nprs; i++)
		r->prs[i].active = r->prs[i].id == r->id;
	/* The noop lets this term commit, and with it what came before. */
	if (log_append(r, r->term, RAFT_ENT_NOOP, NULL, 0) != 0)
		return; /* no memory: commits wait for the next proposal */
	bcast_append(r, 1);
}

enum { POLL_PENDING, POLL_WON, POLL_LOST };

static int
poll(struct raft *r, uint64_t id, int granted)
{
	struct prog *p = prog_find(r, id);
	if (p && p->vote == V_NONE)
		p->vote = granted ? V_GRANT : V_REJECT;
	unsigned yes = 0, no = 0;
	for (unsigned i = 0; i < r->nprs; i++) {
		if (!r->prs[i].voter)
			continue;
		yes += r->prs[i].vote == V_GRANT;
		no += r->prs[i].vote == V_REJECT;
	}
	if (yes >= quorum(r))
		return POLL_WON;
	if (no >= quorum(r))
		return POLL_LOST;
	return POLL_PENDING;
}

static void
campaign(struct raft *r, int pre, int transfer)
{
	uint8_t type;
	uint64_t term;
	if (!promotable(r))
		return;
	if (pre) {
		reset(r, r->term);
		r->role = RAFT_PRECANDIDATE;
		type = RAFT_MSG_PREVOTE;
		term = r->term + 1;
	} else {
		reset(r, r->term + 1);
		r->role = RAFT_CANDIDATE;
		r->vote = r->id;
		type = RAFT_MSG_VOTE;
		term = r->term;
	}
	if (poll(r, r->id, 1) == POLL_WON) {
		if (pre)
			campaign(r, 0, transfer);
		else
			become_leader(r);
		return;
	}
	for (unsigned i = 0; i < r->nprs; i++) {
		const struct prog *p = &r->prs[i];
		if (!p->voter || p->id == r->id)
			continue;
		struct pmsg *m = msg_new(r, type, p->id);
		if (!m)
			continue;
		m->m.term = term;
		m->m.index = last_index(r);
		m->m.log_term = last_term(r);
		m->m.flags = transfer ? RAFT_F_TRANSFER : 0;
	}
}

/* ---- commit ----------------------------------------------------------------- */

static void
commit_advanced(struct raft *r, uint64_t from, uint64_t to)
{
	if (r->role != RAFT_LEADER)
		return;
	for (uint64_t i = umax(from + 1, r->term_start); i <= to; i++) {
		size_t l = ent(r, i)->len;
		r->uncommitted = r->uncommitted > l ? r->uncommitted - l : 0;
	}
}

/* A leader commits what a quorum of voters holds, if of its term. */
static int
maybe_commit(struct raft *r)
{
	uint64_t m[RAFT_MAX_NODES];
	unsigned k = 0;
	for (unsigned i = 0; i < r->nprs; i++) {
		if (!r->prs[i].voter)
			continue;
		m[k++] = r->prs[i].id == r->id ? r->persisted : r->prs[i].match;
	}
	unsigned q = quorum(r);
	if (k < q)
		return 0;
	/* The q-th largest match. */
	for (unsigned i = 0; i < k; i++)
		for (unsigned j = i + 1; j < k; j++)
			if (m[j] > m[i]) {
				uint64_t t = m[i];
				m[i] = m[j];
				m[j] = t;
			}
	uint64_t c = m[q - 1];
	uint64_t t;
	if (c <= r->commit || term_of(r, c, &t) != 0 || t != r->term)
		return 0;
	uint64_t old = r->commit;
	r->commit = c;
	commit_advanced(r, old, c);
	/* A leader that removed itself leaves once the removal commits. */
	if (r->conf_index <= r->commit && !promotable(r)) {
		become_follower(r, r->term, 0);
		return 1;
	}
	return 1;
}

/* ---- handlers --------------------------------------------------------------- */

static void
reply(struct raft *r, const struct raft_msg *in, uint8_t type, uint64_t term,
    int reject)
{
	struct pmsg *m = msg_new(r, type, in->from);
	if (!m)
		return;
	m->m.term = term;
	m->m.flags = reject ? RAFT_F_REJECT : 0;
}

static int
up_to_date(const struct raft *r, uint64_t idx, uint64_t t)
{
	uint64_t lt = last_term(r);
	return t > lt || (t == lt && idx >= last_index(r));
}

static void
handle_vote(struct raft *r, const struct raft_msg *m)
{
	int pre = m->type == RAFT_MSG_PREVOTE;
	uint8_t rt = pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP;
	int can = r->vote == m->from || (r->vote == 0 && r->lead == 0) ||
	    (pre && m->term > r->term);
	if (can && up_to_date(r, m->index, m->log_term)) {
		if (!pre) {
			r->elapsed = 0;
			r->vote = m->from;
		}
		reply(r, m, rt, m->term, 0);
	} else {
		reply(r, m, rt, r->term, 1);
	}
}

static void
handle_append(struct raft *r, const struct raft_msg *m)
{
	struct pmsg *o;
	if (m->index < r->commit) {
		if ((o = msg_new(r, RAFT_MSG_APPEND_RESP, m->from)))
			o->m.index = r->commit;
		return;
	}
	if (match_term(r, m->index, m->log_term)) {
		uint64_t lastnew = m->index + m->nentries;
		uint32_t k = 0;
		for (; k < m->nentries; k++) {
			const struct raft_entry *e = &m->entries[k];
			if (!match_term(r, e->index, e->term))
				break;
		}
		if (k < m->nentries) {
			uint64_t at = m->entries[k].index;
			if (at <= r->commit)
				return; /* cannot be: a committed entry differs */
			log_truncate(r, at);
			for (; k < m->nentries; k++) {
				const struct raft_entry *e = &m->entries[k];
				if (log_append(r, e->term, e->type, e->data, e->len) != 0) {
					lastnew = last_index(r);
					break;
				}
			}
		}
		if (umin(m->commit, lastnew) > r->commit)
			r->commit = umin(m->commit, lastnew);
		if ((o = msg_new(r, RAFT_MSG_APPEND_RESP, m->from)))
			o->m.index = lastnew;
		return;
	}
	/* No match at m->index: tell the leader where to look. */
	uint64_t hint = umin(m->index, last_index(r)), ht = 0;
	while (hint > r->base && ent(r, hint)->term > m->log_term)
		hint--;
	(void)term_of(r, hint, &ht);
	if ((o = msg_new(r, RAFT_MSG_APPEND_RESP, m->from))) {
		o->m.flags = RAFT_F_REJECT;
		o->m.index = m->index;
		o->m.hint = hint;
		o->m.hint_term = ht;
	}
}

static void
snap_reply(struct raft *r, const struct raft_msg *m, int reject)
{
	struct pmsg *o = msg_new(r, RAFT_MSG_SNAP_RESP, m->from);
	if (!o)
		return;
	o->m.flags = reject ? RAFT_F_REJECT : 0;
	o->m.index = m->snap.index;
	o->m.hint = r->rx_got;
}

static void
install(struct raft *r)
{
	const struct raft_snap_meta *s = &r->rx_meta;
	struct pmsg *o;
	r->rx_on = 0;
	r->rx_got = 0;
	if (s->index <= r->commit || match_term(r, s->index, s->term)) {
		/* The log caught up while the chunks came: keep it, with
		 * every entry it has acked. */
		free(r->rx_buf);
		r->rx_buf = NULL;
		if (s->index > r->commit)
			r->commit = s->index;
		if ((o = msg_new(r, RAFT_MSG_APPEND_RESP, r->lead)))
			o->m.index = r->commit;
		return;
	}
	if (r->inst_on)
		free(r->inst_buf);
	r->inst_on = 1;
	r->inst_buf = r->rx_buf;
	r->inst.meta = *s;
	r->inst.data = r->rx_buf;
	r->rx_buf = NULL;
	log_clear(r);
	r->base = s->index;
	r->base_term = s->term;
	r->base_conf = s->conf;
	r->snap = *s;
	r->commit = r->applied = s->index;
	r->stable = r->persisted = s->index;
	r->trunc = 0;
	conf_reload(r);
	if ((o = msg_new(r, RAFT_MSG_APPEND_RESP, r->lead)))
		o->m.index = s->index;
}

static void
handle_snap(struct raft *r, const struct raft_msg *m)
{
	const struct raft_snap_meta *s = &m->snap;
	struct pmsg *o;
	if (m->off == 0) {
		/* Not needed if what it covers is committed or in the log. */
		if (s->index <= r->commit || match_term(r, s->index, s->term)) {
			if (s->index > r->commit && s->index <= last_index(r))
				r->commit = s->index;
			if ((o = msg_new(r, RAFT_MSG_APPEND_RESP, m->from)))
				o->m.index = r->commit;
			return;
		}
		if (s->size > r->cfg.max_snapshot)
			return;
		free(r->rx_buf);
		r->rx_buf = malloc(s->size ? (size_t)s->size : 1);
		r->rx_on = r->rx_buf != NULL;
		r->rx_got = 0;
		if (!r->rx_on)
			return;
		r->rx_meta = *s;
	}
	if (!r->rx_on || r->rx_meta.index != s->index ||
	    r->rx_meta.term != s->term || r->rx_meta.size != s->size) {
		r->rx_got = 0;
		snap_reply(r, m, 1);
		return;
	}
	if (m->off != r->rx_got) {
		snap_reply(r, m, m->off > r->rx_got);
		return;
	}
	if (m->len)
		memcpy(r->rx_buf + r->rx_got, m->data, m->len);
	r->rx_got += m->len;
	if (r->rx_got == s->size)
		install(r);
	else
		snap_reply(r, m, 0);
}

static struct prog *
peer(struct raft *r, const struct raft_msg *m)
{
	struct prog *p = prog_find(r, m->from);
	if (p)
		p->active = 1;
	return p;
}

static void
send_timeout_now(struct raft *r, uint64_t to)
{
	(void)msg_new(r, RAFT_MSG_TIMEOUT_NOW, to);
}

/* The leader's largest index <= idx whose term is <= t (not below base). */
static uint64_t
find_by_term(const struct raft *r, uint64_t idx, uint64_t t)
{
	idx = umin(idx, last_index(r));
	while (idx > r->base && ent(r, idx)->term > t)
		idx--;
	return idx;
}

static void
leader_append_resp(struct raft *r, const struct raft_msg *m)
{
	struct prog *p = peer(r, m);
	if (!p)
		return;
	if (m->flags & RAFT_F_REJECT) {
		if (p->state == PR_SNAPSHOT)
			return;
		if (p->state == PR_REPLICATE) {
			if (m->index <= p->match)
				return; /* stale */
		} else if (m->index != p->next - 1) {
			return; /* stale */
		}
		uint64_t probe = m->hint;
		if (m->hint_term > 0)
			probe = find_by_term(r, m->hint, m->hint_term);
		uint64_t next = umin(m->index, probe + 1);
		if (m->hint < p->match) {
			/* Its log ends before what it acknowledged: it lost its
			 * data (a node started again on an empty directory).
			 * Find where its log matches again and send the rest;
			 * entries committed meanwhile stay committed. */
			p->match = 0;
		}
		become_probe(r, p);
		p->next = umax(next, p->match + 1);
		send_append(r, p, 1);
		return;
	}
	int updated = 0;
	if (m->index > p->match) {
		p->match = m->index;
		updated = 1;
	}
	if (p->next < m->index + 1)
		p->next = m->index + 1;
	switch (p->state) {
	case PR_PROBE:
		become_replicate(p);
		break;
	case PR_REPLICATE:
		infl_free_to(p, m->index);
		break;
	case PR_SNAPSHOT:
		if (p->match >= p->snap.index)
			become_replicate(p);
		break;
	}
	if (updated && maybe_commit(r)) {
		if (r->role != RAFT_LEADER)
			return;
		bcast_append(r, 1);
	} else {
		int sent = send_append(r, p, 0);
		while (sent && p->state == PR_REPLICATE && p->next <= last_index(r))
			sent = send_append(r, p, 0);
	}
	if (r->transferee == p->id && p->match == last_index(r))
		send_timeout_now(r, p->id);
}

static void
leader_heartbeat_resp(struct raft *r, const struct raft_msg *m)
{
	struct prog *p = peer(r, m);
	if (!p)
		return;
	p->paused = 0;
	if (m->hint < p->match && p->state != PR_SNAPSHOT) {
		/* Its log ends before what it acknowledged: it lost its data
		 * (see leader_append_resp).  Probe from its end. */
		p->match = 0;
		become_probe(r, p);
		p->next = m->hint + 1;
		send_append(r, p, 1);
		return;
	}
	if (p->state == PR_REPLICATE && infl_full(r, p) && p->infl_n) {
		p->infl_head = (p->infl_head + 1) % RAFT_MAX_INFLIGHT;
		p->infl_n--;
	}
	if (p->match < last_index(r))
		send_append(r, p, 1);
}

static void
leader_snap_resp(struct raft *r, const struct raft_msg *m)
{
	struct prog *p = peer(r, m);
	if (!p || p->state != PR_SNAPSHOT || m->index != p->snap.index ||
	    m->hint > p->snap.size)
		return;
	if (m->hint > p->snap_acked)
		p->snap_stall = 0;
	if ((m->flags & RAFT_F_REJECT) || m->hint < p->snap_acked) {
		p->snap_acked = p->snap_sent = m->hint;
		if (m->hint == 0)
			p->snap_any = 0;
	} else {
		p->snap_acked = m->hint;
		if (p->snap_sent < p->snap_acked)
			p->snap_sent = p->snap_acked;
	}
	send_chunks(r, p);
}

/* ---- public: lifecycle -------------------------------------------------------- */

void
raft_config_default(struct raft_config *c)
{
	c->election_ticks = 10;
	c->heartbeat_ticks = 1;
	c->max_inflight = 32;
	c->max_msg_entries = 256;
	c->max_msg_bytes = 1024 * 1024;
	c->max_entry = 1024 * 1024;
	c->max_uncommitted = 64u * 1024 * 1024;
	c->max_msgs = 4096;
	c->max_apply = 1024;
	c->snap_chunk = 256 * 1024;
	c->max_snapshot = (uint64_t)1 << 34;
	c->ent_read = NULL;
	c->ent_ctx = NULL;
}

int
raft_open(struct raft **out, const struct raft_config *cfg)
{
	if (cfg->id == 0 || cfg->election_ticks < 2 || cfg->heartbeat_ticks == 0 ||
	    cfg->heartbeat_ticks >= cfg->election_ticks || cfg->max_inflight == 0 ||
	    cfg->max_inflight > RAFT_MAX_INFLIGHT || cfg->max_msg_entries == 0 ||
	    cfg->max_msg_entries > RAFT_MSG_MAX_ENTRIES || cfg->max_msgs == 0 ||
	    cfg->max_apply == 0 || cfg->snap_chunk == 0 ||
	    cfg->snap_chunk > UINT32_MAX || cfg->max_entry > UINT32_MAX)
		return BABL_EINPUT;
	struct raft *r = calloc(1, sizeof(*r));
	if (!r)
		return BABL_ENOMEM;
	r->cfg = *cfg;
	r->id = cfg->id;
	r->rng = cfg->seed ^ (cfg->id * 0x2545f4914f6cdd1dull);
	r->pm = calloc(cfg->max_msgs, sizeof(*r->pm));
	r->out = calloc(cfg->max_msgs, sizeof(*r->out));
	if (!r->pm || !r->out) {
		raft_close(r);
		return BABL_ENOMEM;
	}
	r->fresh = 1;
	r->role = RAFT_FOLLOWER;
	new_timeout(r);
	*out = r;
	return 0;
}

void
raft_close(struct raft *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->ents[r->lo + i].data);
	free(r->ents);
	for (unsigned i = 0; i < r->npm; i++)
		free(r->pm[i].chunk);
	free(r->pm);
	free(r->out);
	free(r->inst_buf);
	free(r->rx_buf);
	free(r);
}

int
raft_restore(struct raft *r, const struct raft_hard_state *hs,
    const struct raft_snap_meta *snap, const struct raft_entry *ents,
    size_t n, uint64_t applied)
{
	if (!r->fresh)
		return BABL_EUSAGE;
	uint64_t base = snap ? snap->index : 0, bt = snap ? snap->term : 0;
	if (snap && (!conf_valid(&snap->conf) || (snap->index == 0) != (snap->term == 0)))
		return BABL_EINPUT;
	uint64_t pt = bt;
	for (size_t i = 0; i < n; i++) {
		if (ents[i].index != base + 1 + i || ents[i].term < pt ||
		    ents[i].term > hs->term || ents[i].term == 0 ||
		    ents[i].type < RAFT_ENT_NORMAL || ents[i].type > RAFT_ENT_NOOP)
			return BABL_EINPUT;
		if (ents[i].len && !ents[i].data && (!r->cfg.ent_read ||
		    ents[i].type == RAFT_ENT_CONF || ents[i].index > applied))
			return BABL_EINPUT;
		pt = ents[i].term;
	}
	if (applied < base || bt > hs->term)
		return BABL_EINPUT;
	r->fresh = 0;
	r->base = base;
	r->base_term = bt;
	if (snap) {
		r->base_conf = snap->conf;
		r->snap = *snap;
	}
	for (size_t i = 0; i < n; i++) {
		/* Conf entries take effect in conf_reload below. */
		if (log_append(r, ents[i].term, RAFT_ENT_NORMAL, ents[i].data,
		    ents[i].len) != 0)
			return BABL_ENOMEM;
		ent(r, ents[i].index)->type = ents[i].type;
	}
	r->term = hs->term;
	r->vote = hs->vote;
	uint64_t last = last_index(r);
	r->commit = umin(umax(umax(hs->commit, base), applied), last);
	r->applied = umin(applied, r->commit);
	r->stable = r->persisted = last;
	r->hs_saved = *hs;
	conf_reload(r);
	return 0;
}

int
raft_bootstrap(struct raft *r, const struct raft_conf *conf)
{
	if (!r->fresh)
		return BABL_EUSAGE;
	if (!conf_valid(conf) || nvoters(conf) == 0)
		return BABL_EINPUT;
	struct wbuf b = {0};
	int rc = raft_conf_encode(&b, conf);
	if (rc == 0)
		rc = log_append(r, 1, RAFT_ENT_CONF, b.p, b.len);
	wbuf_free(&b);
	if (rc != 0)
		return rc;
	r->fresh = 0;
	r->term = 1;
	r->commit = 1;
	return 0;
}

/* ---- public: inputs ----------------------------------------------------------- */

static int
is_from_leader(uint8_t t)
{
	return t == RAFT_MSG_APPEND || t == RAFT_MSG_HEARTBEAT || t == RAFT_MSG_SNAP;
}

static int
msg_sane(const struct raft *r, const struct raft_msg *m)
{
	if (m->to != r->id || m->from == 0 || m->from == r->id ||
	    m->type == 0 || m->type > RAFT_MSG_MAX)
		return 0;
	if (m->type == RAFT_MSG_APPEND) {
		if (m->nentries > RAFT_MSG_MAX_ENTRIES || (m->nentries && !m->entries))
			return 0;
		for (uint32_t i = 0; i < m->nentries; i++)
			if (m->entries[i].index != m->index + 1 + i ||
			    m->entries[i].term > m->term || m->entries[i].term == 0 ||
			    (m->entries[i].len && !m->entries[i].data))
				return 0;
	}
	if (m->type == RAFT_MSG_SNAP &&
	    (m->off > m->snap.size || m->len > m->snap.size - m->off ||
	    (m->len && !m->data) || !conf_valid(&m->snap.conf) ||
	    m->snap.index == 0))
		return 0;
	return 1;
}

int
raft_step(struct raft *r, const struct raft_msg *m)
{
	if (r->in_ready)
		return BABL_EUSAGE;
	if (!msg_sane(r, m))
		return BABL_EINPUT;
	r->fresh = 0;
	if (m->term > r->term) {
		if (m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_VOTE) {
			int lease = r->lead != 0 && r->elapsed < r->cfg.election_ticks;
			if (lease && !(m->flags & RAFT_F_TRANSFER))
				return 0;
		}
		if (m->type == RAFT_MSG_PREVOTE ||
		    (m->type == RAFT_MSG_PREVOTE_RESP && !(m->flags & RAFT_F_REJECT))) {
			/* The term is only asked about, not taken. */
		} else {
			become_follower(r, m->term,
			    is_from_leader(m->type) ? m->from : 0);
		}
	} else if (m->term < r->term) {
		if (is_from_leader(m->type))
			reply(r, m, RAFT_MSG_APPEND_RESP, r->term, 0);
		else if (m->type == RAFT_MSG_PREVOTE)
			reply(r, m, RAFT_MSG_PREVOTE_RESP, r->term, 1);
		return 0;
	}

	if (m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_VOTE) {
		handle_vote(r, m);
		return 0;
	}

	switch (r->role) {
	case RAFT_LEADER:
		if (m->type == RAFT_MSG_APPEND_RESP)
			leader_append_resp(r, m);
		else if (m->type == RAFT_MSG_HEARTBEAT_RESP)
			leader_heartbeat_resp(r, m);
		else if (m->type == RAFT_MSG_SNAP_RESP)
			leader_snap_resp(r, m);
		return 0;
	case RAFT_PRECANDIDATE:
	case RAFT_CANDIDATE: {
		uint8_t want = r->role == RAFT_PRECANDIDATE ? RAFT_MSG_PREVOTE_RESP :
		    RAFT_MSG_VOTE_RESP;
		if (is_from_leader(m->type)) {
			become_follower(r, m->term, m->from);
			break; /* handled as a follower below */
		}
		if (m->type != want)
			return 0;
		int granted = !(m->flags & RAFT_F_REJECT);
		/* A granted pre-vote names the term asked for. */
		if (want == RAFT_MSG_PREVOTE_RESP && granted && m->term != r->term + 1)
			return 0;
		int res = poll(r, m->from, granted);
		if (res == POLL_WON) {
			if (r->role == RAFT_PRECANDIDATE)
				campaign(r, 0, 0);
			else
				become_leader(r);
		} else if (res == POLL_LOST) {
			become_follower(r, r->term, 0);
		}
		return 0;
	}
	case RAFT_FOLLOWER:
		break;
	}

	/* A follower. */
	switch (m->type) {
	case RAFT_MSG_APPEND:
		r->elapsed = 0;
		r->lead = m->from;
		handle_append(r, m);
		break;
	case RAFT_MSG_HEARTBEAT: {
		r->elapsed = 0;
		r->lead = m->from;
		uint64_t c = umin(m->commit, last_index(r));
		if (c > r->commit)
			r->commit = c;
		/* With where its log ends, so that a leader that thinks it
		 * has more learns otherwise (leader_heartbeat_resp). */
		struct pmsg *o = msg_new(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
		if (o) {
			o->m.term = r->term;
			o->m.hint = last_index(r);
		}
		break;
	}
	case RAFT_MSG_SNAP:
		r->elapsed = 0;
		r->lead = m->from;
		handle_snap(r, m);
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		campaign(r, 0, 1);
		break;
	default:
		break;
	}
	return 0;
}

static void
leader_tick(struct raft *r)
{
	r->elapsed++;
	r->hb_elapsed++;
	if (r->transferee && ++r->transfer_elapsed >= r->cfg.election_ticks)
		r->transferee = 0;
	if (r->elapsed >= r->cfg.election_ticks) {
		r->elapsed = 0;
		unsigned act = 0;
		for (unsigned i = 0; i < r->nprs; i++)
			if (r->prs[i].voter && (r->prs[i].active || r->prs[i].id == r->id))
				act++;
		if (act < quorum(r)) {
			become_follower(r, r->term, 0);
			return;
		}
		for (unsigned i = 0; i < r->nprs; i++)
			r->prs[i].active = r->prs[i].id == r->id;
	}
	if (r->hb_elapsed < r->cfg.heartbeat_ticks)
		return;
	r->hb_elapsed = 0;
	for (unsigned i = 0; i < r->nprs; i++) {
		struct prog *p = &r->prs[i];
		if (p->id == r->id)
			continue;
		struct pmsg *m = msg_new(r, RAFT_MSG_HEARTBEAT, p->id);
		if (m)
			m->m.commit = umin(p->match, r->commit);
		if (p->state == PR_SNAPSHOT &&
		    (p->snap_stall += r->cfg.heartbeat_ticks) >= r->cfg.election_ticks) {
			/* No progress for a while: send again from what was acked. */
			p->snap_stall = 0;
			p->snap_sent = p->snap_acked;
			if (p->snap_acked == 0)
				p->snap_any = 0;
			send_chunks(r, p);
		}
	}
}

int
raft_tick(struct raft *r)
{
	if (r->in_ready)
		return BABL_EUSAGE;
	r->fresh = 0;
	if (r->role == RAFT_LEADER) {
		leader_tick(r);
		return 0;
	}
	r->elapsed++;
	if (promotable(r) && r->elapsed >= r->timeout) {
		r->elapsed = 0;
		campaign(r, 1, 0);
	}
	return 0;
}

static int
leader_ok(struct raft *r)
{
	if (r->in_ready)
		return BABL_EUSAGE;
	if (r->role != RAFT_LEADER)
		return BABL_EPERM;
	if (r->transferee)
		return BABL_EBUSY;
	return 0;
}

static int
propose(struct raft *r, uint8_t type, const void *data, size_t len,
    uint64_t *index, uint64_t *term)
{
	int rc = log_append(r, r->term, type, data, len);
	if (rc != 0)
		return rc;
	r->uncommitted += len;
	if (index)
		*index = last_index(r);
	if (term)
		*term = r->term;
	bcast_append(r, 0);
	return 0;
}

int
raft_propose(struct raft *r, const void *data, size_t len, uint64_t *index,
    uint64_t *term)
{
	int rc = leader_ok(r);
	if (rc != 0)
		return rc;
	if (len > r->cfg.max_entry)
		return BABL_ETOOBIG;
	if (r->uncommitted > 0 && r->uncommitted + len > r->cfg.max_uncommitted)
		return BABL_EBUSY;
	return propose(r, RAFT_ENT_NORMAL, data, len, index, term);
}

int
raft_propose_conf(struct raft *r, const struct raft_conf_change *cc,
    uint64_t *index, uint64_t *term)
{
	int rc = leader_ok(r);
	if (rc != 0)
		return rc;
	if (r->conf_index > r->commit || r->commit < r->term_start)
		return BABL_EBUSY;
	struct raft_conf c = r->conf;
	int role = raft_conf_role(&c, cc->id);
	uint32_t i;
	if (cc->id == 0)
		return BABL_EINPUT;
	switch (cc->type) {
	case RAFT_CC_ADD_LEARNER:
		if (role != -1 || c.n >= RAFT_MAX_NODES)
			return BABL_EINPUT;
		c.s[c.n].id = cc->id;
		c.s[c.n].voter = 0;
		c.n++;
		break;
	case RAFT_CC_PROMOTE: {
		if (role != 0)
			return BABL_EINPUT;
		const struct prog *p = prog_find(r, cc->id);
		if (!p || p->match < r->commit)
			return BABL_EBUSY;
		for (i = 0; i < c.n; i++)
			if (c.s[i].id == cc->id)
				c.s[i].voter = 1;
		break;
	}
	case RAFT_CC_REMOVE:
		if (role == -1 || (role == 1 && nvoters(&c) == 1))
			return BABL_EINPUT;
		for (i = 0; i < c.n && c.s[i].id != cc->id; i++)
			;
		memmove(&c.s[i], &c.s[i + 1], (c.n - i - 1) * sizeof(c.s[0]));
		c.n--;
		break;
	default:
		return BABL_EINPUT;
	}
	struct wbuf b = {0};
	rc = raft_conf_encode(&b, &c);
	if (rc == 0)
		rc = propose(r, RAFT_ENT_CONF, b.p, b.len, index, term);
	wbuf_free(&b);
	return rc;
}

int
raft_transfer_leader(struct raft *r, uint64_t to)
{
	if (r->in_ready)
		return BABL_EUSAGE;
	if (r->role != RAFT_LEADER)
		return BABL_EPERM;
	if (to == r->id || raft_conf_role(&r->conf, to) != 1)
		return BABL_EINPUT;
	if (r->transferee == to)
		return 0;
	r->transferee = to;
	r->transfer_elapsed = 0;
	struct prog *p = prog_find(r, to);
	if (p->match == last_index(r))
		send_timeout_now(r, to);
	else
		send_append(r, p, 1);
	return 0;
}

/* ---- public: output ------------------------------------------------------------- */

int
raft_ready(struct raft *r, struct raft_ready *rd)
{
	if (r->in_ready)
		return BABL_EUSAGE;
	memset(rd, 0, sizeof(*rd));
	rd->hs.term = r->term;
	rd->hs.vote = r->vote;
	rd->hs.commit = r->commit;
	rd->hs_changed = memcmp(&rd->hs, &r->hs_saved, sizeof(rd->hs)) != 0;
	if (r->inst_on)
		rd->snap = &r->inst;
	rd->truncate = r->trunc;
	uint64_t last = last_index(r);
	if (last > r->stable) {
		rd->entries = ent(r, r->stable + 1);
		rd->nentries = (size_t)(last - r->stable);
	}
	uint64_t upto = umin(r->commit, last);
	if (upto > r->applied) {
		upto = umin(upto, r->applied + r->cfg.max_apply);
		rd->committed = ent(r, r->applied + 1);
		rd->ncommitted = (size_t)(upto - r->applied);
	} else {
		upto = r->applied;
	}
	unsigned k = 0;
	for (unsigned i = 0; i < r->npm; i++) {
		const struct pmsg *p = &r->pm[i];
		/* An append whose data cannot be read back is not sent: Raft
		 * handles it as a lost message. */
		if (p->ent_lo && p->m.nentries && log_reload(r, p->ent_lo, p->m.nentries))
			continue;
		r->out[k] = p->m;
		if (p->ent_lo)
			r->out[k].entries = ent(r, p->ent_lo);
		k++;
	}
	rd->msgs = r->out;
	rd->nmsgs = k;
	if (!rd->hs_changed && !rd->snap && !rd->truncate && !rd->nentries &&
	    !rd->ncommitted && !rd->nmsgs)
		return 0;
	r->in_ready = 1;
	r->rd_last = last;
	r->rd_applied = upto;
	r->rd_install = rd->snap != NULL;
	r->stable = last;
	r->trunc = 0;
	return 1;
}

int
raft_advance(struct raft *r, const struct raft_ready *rd)
{
	if (!r->in_ready)
		return BABL_EUSAGE;
	r->in_ready = 0;
	r->hs_saved = rd->hs;
	if (r->rd_last > r->persisted)
		r->persisted = r->rd_last;
	if (r->rd_applied > r->applied)
		r->applied = r->rd_applied;
	if (r->rd_install) {
		free(r->inst_buf);
		r->inst_buf = NULL;
		r->inst_on = 0;
	}
	for (unsigned i = 0; i < r->npm; i++)
		free(r->pm[i].chunk);
	r->npm = 0;
	if (r->role == RAFT_LEADER) {
		struct prog *self = prog_find(r, r->id);
		if (self)
			self->match = r->persisted;
		if (maybe_commit(r) && r->role == RAFT_LEADER)
			bcast_append(r, 1);
	}
	log_shed(r);
	return 0;
}

int
raft_early(const struct raft *r, const struct raft_ready *rd, const struct raft_msg *m)
{
	return r->in_ready && r->role == RAFT_LEADER && m->from == r->id && m->term == r->term &&
	    (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT) && !rd->snap &&
	    !rd->truncate && rd->hs.term == r->hs_saved.term && rd->hs.vote == r->hs_saved.vote;
}

int
raft_compact(struct raft *r, uint64_t index, uint64_t size,
    struct raft_snap_meta *meta)
{
	if (r->in_ready)
		return BABL_EUSAGE;
	if (index <= r->base || index > r->applied || index > last_index(r))
		return BABL_EINPUT;
	struct raft_snap_meta s;
	memset(&s, 0, sizeof(s));
	s.index = index;
	(void)term_of(r, index, &s.term);
	s.size = size;
	conf_at(r, index, &s.conf);
	log_compact(r, index, s.term);
	r->base_conf = s.conf;
	r->snap = s;
	if (meta)
		*meta = s;
	return 0;
}

void
raft_status(const struct raft *r, struct raft_status *st)
{
	memset(st, 0, sizeof(*st));
	st->id = r->id;
	st->term = r->term;
	st->vote = r->vote;
	st->lead = r->lead;
	st->role = r->role;
	st->commit = r->commit;
	st->applied = r->applied;
	st->first_index = r->base + 1;
	st->last_index = last_index(r);
	st->snap_index = r->snap.index;
	st->transferee = r->transferee;
}

int
raft_term_at(const struct raft *r, uint64_t index, uint64_t *term)
{
	return term_of(r, index, term);
}

void
raft_conf(const struct raft *r, struct raft_conf *c)
{
	*c = r->conf;
}

const char *
raft_role_name(enum raft_role role)
{
	switch (role) {
	case RAFT_FOLLOWER: return "follower";
	case RAFT_PRECANDIDATE: return "precandidate";
	case RAFT_CANDIDATE: return "candidate";
	case RAFT_LEADER: return "leader";
	}
	return "?";
}

const char *
raft_msg_type_name(uint8_t type)
{
	static const char *const names[] = {
		"?", "PREVOTE", "PREVOTE_RESP", "VOTE", "VOTE_RESP", "APPEND",
		"APPEND_RESP", "HEARTBEAT", "HEARTBEAT_RESP", "SNAP", "SNAP_RESP",
		"TIMEOUT_NOW",
	};
	return type <= RAFT_MSG_MAX ? names[type] : "?";
}

/* ---- the message codec -------------------------------------------------------------
 *
 *	u8 version (1)  u8 type  u8 flags
 *	u64 from, to, term, index, log_term, commit, hint, hint_term
 *	APPEND: u32 n, then n times: u64 term, u8 type, u32 len, len bytes
 *	        (indexes follow from index)
 *	SNAP:   u64 snap index, term, size; conf (u32 n, n times u64 id,
 *	        u8 voter); u64 off; u32 len, len bytes
 * Integers are big-endian.  The encoding of a message is unique, so a
 * decoded message encodes to the same bytes.
 */

#define RAFT_MSG_VERSION 1

int
raft_msg_encode(struct wbuf *b, const struct raft_msg *m)
{
	if (m->type == 0 || m->type > RAFT_MSG_MAX || m->from == 0 || m->to == 0 ||
	    (m->flags & ~(RAFT_F_REJECT | RAFT_F_TRANSFER)))
		return BABL_EINPUT;
	if (m->type != RAFT_MSG_APPEND && m->nentries)
		return BABL_EINPUT;
	if (m->nentries > RAFT_MSG_MAX_ENTRIES)
		return BABL_EINPUT;
	for (uint32_t i = 0; i < m->nentries; i++)
		if (m->entries[i].index != m->index + 1 + i ||
		    m->entries[i].type < RAFT_ENT_NORMAL ||
		    m->entries[i].type > RAFT_ENT_NOOP)
			return BABL_EINPUT;
	if (m->type == RAFT_MSG_SNAP &&
	    (!conf_valid(&m->snap.conf) || m->off > m->snap.size ||
	    m->len > m->snap.size - m->off))
		return BABL_EINPUT;
	size_t start = b->len;
	int rc = wb_u8(b, RAFT_MSG_VERSION);
	if (!rc) rc = wb_u8(b, m->type);
	if (!rc) rc = wb_u8(b, m->flags);
	const uint64_t f[] = {m->from, m->to, m->term, m->index, m->log_term,
		m->commit, m->hint, m->hint_term};
	for (size_t i = 0; !rc && i < sizeof(f) / sizeof(f[0]); i++)
		rc = wb_u64(b, f[i]);
	if (!rc && m->type == RAFT_MSG_APPEND) {
		rc = wb_u32(b, m->nentries);
		for (uint32_t i = 0; !rc && i < m->nentries; i++) {
			const struct raft_entry *e = &m->entries[i];
			rc = wb_u64(b, e->term);
			if (!rc) rc = wb_u8(b, e->type);
			if (!rc) rc = wb_str(b, e->data, e->len);
		}
	}
	if (!rc && m->type == RAFT_MSG_SNAP) {
		rc = wb_u64(b, m->snap.index);
		if (!rc) rc = wb_u64(b, m->snap.term);
		if (!rc) rc = wb_u64(b, m->snap.size);
		if (!rc) rc = raft_conf_encode(b, &m->snap.conf);
		if (!rc) rc = wb_u64(b, m->off);
		if (!rc) rc = wb_str(b, m->data, m->len);
	}
	if (rc != 0)
		b->len = start;
	return rc;
}

int
raft_msg_decode(const void *p, size_t n, struct raft_msg *m,
    struct raft_entry *ents, size_t cap)
{
	struct rd d;
	rd_init(&d, p ? p : (const void *)"", n);
	memset(m, 0, sizeof(*m));
	if (rd_u8(&d) != RAFT_MSG_VERSION)
		return BABL_EPROTO;
	m->type = rd_u8(&d);
	m->flags = rd_u8(&d);
	m->from = rd_u64(&d);
	m->to = rd_u64(&d);
	m->term = rd_u64(&d);
	m->index = rd_u64(&d);
	m->log_term = rd_u64(&d);
	m->commit = rd_u64(&d);
	m->hint = rd_u64(&d);
	m->hint_term = rd_u64(&d);
	if (d.bad || m->type == 0 || m->type > RAFT_MSG_MAX || m->from == 0 ||
	    m->to == 0 || (m->flags & ~(RAFT_F_REJECT | RAFT_F_TRANSFER)))
		return BABL_EPROTO;
	if (m->type == RAFT_MSG_APPEND) {
		uint32_t k = rd_u32(&d);
		if (d.bad || k > RAFT_MSG_MAX_ENTRIES || m->index > UINT64_MAX - k)
			return BABL_EPROTO;
		if (k > cap)
			return BABL_ETOOBIG;
		for (uint32_t i = 0; i < k && !d.bad; i++) {
			struct raft_entry *e = &ents[i];
			e->index = m->index + 1 + i;
			e->term = rd_u64(&d);
			e->type = rd_u8(&d);
			struct wire_str s = rd_str(&d, UINT32_MAX);
			e->len = (uint32_t)s.len;
			e->data = (uint8_t *)(uintptr_t)s.p;
			if (e->type < RAFT_ENT_NORMAL || e->type > RAFT_ENT_NOOP)
				return BABL_EPROTO;
		}
		m->nentries = k;
		m->entries = k ? ents : NULL;
	}
	if (m->type == RAFT_MSG_SNAP) {
		m->snap.index = rd_u64(&d);
		m->snap.term = rd_u64(&d);
		m->snap.size = rd_u64(&d);
		conf_read(&d, &m->snap.conf);
		m->off = rd_u64(&d);
		struct wire_str s = rd_str(&d, UINT32_MAX);
		m->len = (uint32_t)s.len;
		m->data = (const uint8_t *)s.p;
		if (!d.bad && (m->off > m->snap.size || m->len > m->snap.size - m->off))
			return BABL_EPROTO;
	}
	return rd_done(&d) == 0 ? 0 : BABL_EPROTO;
}
