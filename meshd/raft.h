/*
 * raft.h - the Raft core: an I/O-free state machine that orders the log.
 *
 * The core never reads a clock, touches a file or a socket.  Its inputs are
 * raft_step (a message from a peer), raft_tick (one unit of time),
 * raft_propose, raft_propose_conf and raft_transfer_leader.  Its output is a
 * ready batch, taken with raft_ready and acknowledged with raft_advance:
 *
 *	struct raft_ready rd;
 *	while (raft_ready(r, &rd) > 0) {
 *		1. if rd.snap: store the snapshot bytes and meta, drop every
 *		   stored entry;
 *		   if rd.truncate: drop stored entries with index >= rd.truncate;
 *		   append rd.entries; if rd.hs_changed: store rd.hs.
 *		   All of step 1 must be durable before step 2.
 *		2. send rd.msgs (in any order; any may be lost); those for
 *		   which raft_early says so may go before step 1 is durable;
 *		3. apply rd.committed, in order;
 *		4. raft_advance(r, &rd);
 *	}
 *
 * Between raft_ready and raft_advance the caller must call no other raft_
 * function on r but the read-only ones (raft_status, raft_term_at,
 * raft_conf); the others return BABL_EUSAGE then.  Every pointer in rd is
 * owned by the core and valid until raft_advance.
 *
 * Errors are negative BABL_E* codes (err.h).  Ids are non-zero u64s.
 *
 * Protocol: leader election with pre-vote and check-quorum, log replication
 * with batching and pipelining (bounded per follower), commit by counting
 * replicas only for entries of the leader's term (a leader appends a noop
 * when its term starts), snapshots sent in chunks, membership changes one
 * server at a time (a conf entry carries the whole new configuration and
 * takes effect as soon as it is appended), non-voting learners, and
 * leadership transfer (TIMEOUT_NOW).
 */
#ifndef MESHD_RAFT_H
#define MESHD_RAFT_H

#include <stddef.h>
#include <stdint.h>

struct wbuf;

#define RAFT_MAX_NODES 16     /* servers in a configuration, voters and learners */
#define RAFT_MAX_INFLIGHT 64  /* append messages in flight per follower, at most */
#define RAFT_MSG_MAX_ENTRIES 4096 /* entries in one append, at most */

enum raft_role {
	RAFT_FOLLOWER = 0,
	RAFT_PRECANDIDATE = 1,
	RAFT_CANDIDATE = 2,
	RAFT_LEADER = 3,
};

enum raft_entry_type {
	RAFT_ENT_NORMAL = 1, /* a proposal's bytes */
	RAFT_ENT_CONF = 2,   /* a whole configuration, raft_conf_encode'd */
	RAFT_ENT_NOOP = 3,   /* the start of a leader's term */
};

struct raft_entry {
	uint64_t index, term;
	uint8_t type;
	uint32_t len;
	uint8_t *data; /* len bytes; see each use for the owner */
};

struct raft_server {
	uint64_t id;
	uint8_t voter; /* 1 voter, 0 learner */
};

struct raft_conf {
	uint32_t n;
	struct raft_server s[RAFT_MAX_NODES];
};

enum raft_cc_type {
	RAFT_CC_ADD_LEARNER = 1, /* add a non-voting server */
	RAFT_CC_PROMOTE = 2,     /* a learner becomes a voter */
	RAFT_CC_REMOVE = 3,      /* remove a voter or a learner */
};

struct raft_conf_change {
	uint8_t type; /* enum raft_cc_type */
	uint64_t id;
};

struct raft_snap_meta {
	uint64_t index, term; /* the last entry the snapshot covers */
	uint64_t size;        /* bytes of snapshot data */
	struct raft_conf conf; /* the configuration as of index */
};

struct raft_hard_state {
	uint64_t term, vote, commit;
};

enum raft_msg_type {
	RAFT_MSG_PREVOTE = 1,
	RAFT_MSG_PREVOTE_RESP = 2,
	RAFT_MSG_VOTE = 3,
	RAFT_MSG_VOTE_RESP = 4,
	RAFT_MSG_APPEND = 5,
	RAFT_MSG_APPEND_RESP = 6,
	RAFT_MSG_HEARTBEAT = 7,
	RAFT_MSG_HEARTBEAT_RESP = 8,
	RAFT_MSG_SNAP = 9,       /* one chunk of a snapshot */
	RAFT_MSG_SNAP_RESP = 10, /* bytes of it received so far */
	RAFT_MSG_TIMEOUT_NOW = 11,
	RAFT_MSG_MAX = 11,
};

enum raft_msg_flag {
	RAFT_F_REJECT = 1,   /* a response that refuses */
	RAFT_F_TRANSFER = 2, /* a vote asked because of a leadership transfer */
};

/*
 * A message.  Which fields mean what:
 *	PREVOTE, VOTE: index, log_term = the candidate's last entry.
 *	*_RESP to votes: REJECT flag or a grant.
 *	APPEND: index, log_term = the entry before entries; entries[0..n)
 *	  have indexes index+1...; commit = the leader's commit.
 *	APPEND_RESP: accepted: index = the follower's last matching index;
 *	  rejected: index = the refused APPEND's index, hint and hint_term =
 *	  where the leader may look for a match.
 *	HEARTBEAT: commit.  HEARTBEAT_RESP: hint = the follower's last index
 *	  (below what it acknowledged if it lost its data: the leader probes).
 *	SNAP: snap meta, off, data[0..len).
 *	SNAP_RESP: index = the snapshot's index, hint = bytes received.
 * Entries and chunk data are borrowed (from the core's log for messages in
 * a ready, from the decoded buffer for raft_msg_decode).
 */
struct raft_msg {
	uint8_t type;
	uint8_t flags;
	uint64_t from, to, term;
	uint64_t index, log_term, commit;
	uint64_t hint, hint_term;
	uint32_t nentries;
	const struct raft_entry *entries;
	struct raft_snap_meta snap;
	uint64_t off;
	uint32_t len;
	const uint8_t *data;
};

/*
 * Reads snapshot bytes for a leader that sends them: copy len bytes from
 * offset off of the snapshot described by meta into buf.  Returns 0, or a
 * negative code if that snapshot is gone (the core then sends the newest).
 */
typedef int (*raft_snap_read_fn)(void *ctx, const struct raft_snap_meta *meta,
    uint64_t off, void *buf, size_t len);

/*
 * Reads back the data of a persisted entry: copy its len bytes (the same
 * bytes a ready handed out for persisting) into buf.  Returns 0, or a
 * negative code (the message that needed them is then not sent).
 *
 * With it set, the core keeps in memory only the data it may need without
 * reading: that of entries not yet both persisted and applied, and of conf
 * entries.  The rest leaves memory at raft_advance, and an append that
 * needs it (to a follower that lags) reads it back for that ready alone.
 * So memory holds the unapplied tail, not the whole log.  Without it
 * (NULL), every entry's data stays in memory until a snapshot covers it.
 */
typedef int (*raft_ent_read_fn)(void *ctx, uint64_t index, void *buf, size_t len);

struct raft_config {
	uint64_t id;
	uint64_t seed;             /* seeds the election-timeout PRNG */
	unsigned election_ticks;   /* timeouts are random in [e, 2e) ticks */
	unsigned heartbeat_ticks;  /* less than election_ticks */
	unsigned max_inflight;     /* appends in flight per follower, <= RAFT_MAX_INFLIGHT */
	unsigned max_msg_entries;  /* entries per append */
	size_t max_msg_bytes;      /* payload bytes per append (one entry at least) */
	size_t max_entry;          /* largest proposal */
	size_t max_uncommitted;    /* a leader's proposed, uncommitted bytes */
	unsigned max_msgs;         /* messages waiting in a ready; more are dropped */
	unsigned max_apply;        /* committed entries per ready */
	size_t snap_chunk;         /* bytes per snapshot chunk */
	uint64_t max_snapshot;     /* largest snapshot a follower takes */
	raft_snap_read_fn snap_read;
	void *snap_ctx;
	raft_ent_read_fn ent_read; /* may be NULL */
	void *ent_ctx;
};

/* Fill c with the defaults (every field but id, seed and snap_read;
 * ent_read is NULL). */
void raft_config_default(struct raft_config *c);

struct raft_snapshot {
	struct raft_snap_meta meta;
	const uint8_t *data; /* meta.size bytes */
};

struct raft_ready {
	int hs_changed;
	struct raft_hard_state hs;
	const struct raft_snapshot *snap; /* NULL if none arrived */
	uint64_t truncate;                /* 0, or the first index to drop */
	const struct raft_entry *entries; /* to append, consecutive */
	size_t nentries;
	const struct raft_entry *committed; /* to apply, consecutive */
	size_t ncommitted;
	const struct raft_msg *msgs;
	size_t nmsgs;
};

struct raft_status {
	uint64_t id, term, vote, lead;
	enum raft_role role;
	uint64_t commit, applied, first_index, last_index;
	uint64_t snap_index;
	uint64_t transferee;
};

struct raft;

/*
 * Create a node with an empty log, term 0 and no configuration: it waits
 * for a leader to contact it.  Restore its persisted state with
 * raft_restore, or make it one of the first servers of a new cluster with
 * raft_bootstrap, before anything else.  cfg is copied.  Returns 0 and
 * *out, BABL_EINPUT for a bad cfg, BABL_ENOMEM.
 */
int raft_open(struct raft **out, const struct raft_config *cfg);
void raft_close(struct raft *r); /* NULL is a no-op */

/*
 * Load what a node persisted: its hard state, the meta of its last
 * snapshot (NULL if none) and the stored entries after it (consecutive,
 * from snap->index + 1 or 1; copied).  applied is what the caller's state
 * machine holds (at least snap->index); committed entries after it come
 * out in the next readies.  A commit beyond the last entry (a torn tail)
 * is cut back.  With cfg.ent_read set, entries up to applied that are not
 * conf entries may come without their data (data NULL, len as stored): it
 * is read back when needed.  Returns 0, BABL_EINPUT if the pieces do not
 * fit together, BABL_EUSAGE if r is not new, BABL_ENOMEM.
 */
int raft_restore(struct raft *r, const struct raft_hard_state *hs,
    const struct raft_snap_meta *snap, const struct raft_entry *ents,
    size_t n, uint64_t applied);

/*
 * Start a new cluster: every first server calls this with the same conf.
 * The log gets entry 1 (term 1, RAFT_ENT_CONF) and the term becomes 1;
 * the first ready carries them.  BABL_EUSAGE if r is not new.
 */
int raft_bootstrap(struct raft *r, const struct raft_conf *conf);

/*
 * A message from a peer (m->to must be this node).  The core copies what
 * it keeps.  Returns 0, BABL_EINPUT for a message that cannot be (wrong
 * to, zero from, unknown type), BABL_ENOMEM.  Stale or unexpected
 * messages are ignored with 0.
 */
int raft_step(struct raft *r, const struct raft_msg *m);

/* One unit of time. */
int raft_tick(struct raft *r);

/*
 * Propose an entry (leader only); data is copied.  On 0, *index and *term
 * (each may be NULL) name the entry: it is committed when an entry with
 * that index and term comes out of a ready in committed; if another term's
 * entry comes out at that index instead, the proposal is lost.  Returns
 * BABL_EPERM if this node is not the leader (raft_status gives the leader,
 * 0 if unknown), BABL_EBUSY during a leadership transfer or when
 * cfg.max_uncommitted bytes wait, BABL_ETOOBIG over cfg.max_entry,
 * BABL_ENOMEM.
 */
int raft_propose(struct raft *r, const void *data, size_t len,
    uint64_t *index, uint64_t *term);

/*
 * Propose a membership change (leader only), as raft_propose.  Also
 * BABL_EBUSY while an earlier change or this term's noop is uncommitted
 * or a learner to promote has not caught up, BABL_EINPUT if the change does
 * not apply (adding a member, promoting a voter, removing the last voter,
 * a full configuration).
 */
int raft_propose_conf(struct raft *r, const struct raft_conf_change *cc,
    uint64_t *index, uint64_t *term);

/*
 * Hand leadership to voter to: it gets the log, then TIMEOUT_NOW, and
 * starts an election at once.  Proposals are refused (BABL_EBUSY) until it
 * wins or an election timeout passes.  BABL_EPERM if not the leader,
 * BABL_EINPUT if to is not another voter.
 */
int raft_transfer_leader(struct raft *r, uint64_t to);

/*
 * Take the ready batch: 1 and *rd if there is anything to do, 0 if not.
 * BABL_EUSAGE if the last one was not advanced.
 */
int raft_ready(struct raft *r, struct raft_ready *rd);
/* The caller did all of rd (see the top of this file). */
int raft_advance(struct raft *r, const struct raft_ready *rd);

/*
 * 1 if message m of ready rd may be sent while rd's step 1 is still being
 * made durable: a leader's APPEND or HEARTBEAT in a ready that changes
 * neither term nor vote and installs or drops nothing.  Its entries then
 * reach the followers while the leader writes them, and the leader counts
 * itself as a replica only once raft_advance says they are durable, so
 * nothing commits on a copy that a crash could take back.
 */
int raft_early(const struct raft *r, const struct raft_ready *rd, const struct raft_msg *m);

/*
 * A snapshot of the state machine up to index (at most what was applied)
 * now exists, of size bytes: entries up to index leave memory.  *meta (may
 * be NULL) gets the meta the caller stores with the snapshot.  Returns 0,
 * BABL_EINPUT if index is not in (first_index - 1, applied].
 */
int raft_compact(struct raft *r, uint64_t index, uint64_t size,
    struct raft_snap_meta *meta);

void raft_status(const struct raft *r, struct raft_status *st);
/* The term of the entry at index (0 .. last): 0, or BABL_ENOENT if it was
 * compacted away or is beyond the end. */
int raft_term_at(const struct raft *r, uint64_t index, uint64_t *term);
/* The configuration in force (the latest one in the log). */
void raft_conf(const struct raft *r, struct raft_conf *c);
/* 1 if id is a voter of c, 0 if a learner, -1 if not in c. */
int raft_conf_role(const struct raft_conf *c, uint64_t id);

/* A conf entry's payload: encode appends to b (0 or BABL_ENOMEM); decode
 * gives 0 or BABL_EPROTO. */
int raft_conf_encode(struct wbuf *b, const struct raft_conf *c);
int raft_conf_decode(const void *p, size_t n, struct raft_conf *c);

/*
 * The byte form of a message, for the transport.  raft_msg_encode appends
 * to b: 0, BABL_EINPUT for a message that cannot be, BABL_ENOMEM.
 * raft_msg_decode parses exactly n bytes: entries go into ents[0..cap) and
 * m->entries points there; entry data and chunk data borrow from p.
 * Returns 0, BABL_EPROTO for malformed input, BABL_ETOOBIG for more
 * entries than cap.
 */
int raft_msg_encode(struct wbuf *b, const struct raft_msg *m);
int raft_msg_decode(const void *p, size_t n, struct raft_msg *m,
    struct raft_entry *ents, size_t cap);

const char *raft_msg_type_name(uint8_t type);
const char *raft_role_name(enum raft_role role);

#endif
