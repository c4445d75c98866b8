/*
 * node.c - the node's main loop, sessions and calls; see node.h.
 *
 * Threads: nng's own (they only queue completions and wake us), the commit
 * thread (commit.h), and this main thread, which owns every structure
 * below.  Memory is bounded per call (an input window, one output buffer
 * per stream) and per session (one receive buffer), never by stream sizes:
 * a session whose call has a full window is not read from, and a service
 * whose output has not been sent is not read from, so a slow reader slows
 * its writer and nobody else.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <nng/nng.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "commit.h"
#include "conn.h"
#include "entry.h"
#include "guard.h"
#include "keys.h"
#include "err.h"
#include "idset.h"
#include "kvcache.h"
#include "logmsg.h"
#include "lsb.h"
#include "lworker.h"
#include "node.h"
#include "paths.h"
#include "proxy.h"
#include "raft.h"
#include "rstore.h"
#include "rtrans.h"
#include "sender.h"
#include "sbx.h"
#include "store.h"
#include "svc.h"
#include "wire.h"
#include "wproto.h"

#define RBUF_CAP (2 * (WIRE_MAX_BODY + WIRE_HDR))
#define OUT_CHUNK WIRE_CHUNK          /* stdout read size */
#define ERR_CHUNK (64u * 1024)        /* stderr read size */
#define CALL_WINDOW (8u << 20)        /* input bytes in flight per call */
#define INPUT_BUDGET (64u << 20)      /* input bytes in flight per node */
#define HELLO_TIMEOUT_MS 10000        /* a connection must say HELLO and ask */
#define ID_MAX_OUTPUT (64ull << 20)   /* output recorded for an --id call */
#define SHUTDOWN_GRACE_MS 5000
#define SEND_QUEUE_MAX 64             /* frames queued to a client before we stop reading it */
#define SEND_IOV 8                    /* iov entries per send: 4 frames */
#define HOLD_FRAMES 4                 /* output of an ended run held for its EXIT */
#define LINGER_MS 5000                /* after the last frame, how long the client may take to close */
#define LW_IDLE_MS 60000              /* an idle Lua worker exits after this */
#define LW_KILL_GRACE_MS 2000         /* a call killed in a worker must end by then */
#define LW_SEND_BEHIND 16             /* frames queued to a caller before its Lua call's output is no longer acknowledged */
#define LW_READ_BEHIND 64             /* ... before its worker is not read at all (a call that cannot pause) */
#define LW_SHARE 8                    /* calls with whole input one Lua worker may take at once */
#define DIGEST_FLUSH_MS 50            /* a node signs and sends its run digests this often */

struct node;
struct call;

/* Something an nng callback hands to the main thread. */
struct waker {
	struct waker *rnext;
	int queued;
	int kind; /* W_SESSION, W_LISTENER */
};
enum { W_SESSION = 1, W_LISTENER = 2 };

/* Accepts are kept pending several at a time, so that a burst of clients
 * does not wait in the listen backlog for one turn of the loop each. */
#define LISTEN_ACCEPTS 16
#define DUTY_MS 100                   /* how often a leader looks for calls to end */
#define HANDOFF_WAIT_MS 5000          /* how long a follower's client waits for a leader */
#define LEAD_SILENT_TICKS 10          /* a leader silent this long is not handed clients */
#define CATCHUP_RUN_WITHIN 2048       /* a member this far behind does not run calls */

struct listener;
struct acceptor {
	struct waker w; /* first: the ready list holds wakers */
	struct listener *l;
	nng_aio *aio;
	int done;
};

struct listener {
	struct node *n;
	char url[512];
	nng_stream_listener *l;
	struct acceptor acc[LISTEN_ACCEPTS];
};

/* A frame waiting to be sent: a header and data, or one owned buffer. */
struct obuf {
	struct obuf *next;
	uint8_t hdr[5];
	size_t hlen;
	const uint8_t *data;
	size_t len;
	size_t off;       /* bytes of hdr+data already sent */
	uint8_t *owned;   /* freed when sent */
	struct call *call; /* output buffer returned to this call when sent */
	int stream;       /* 1 stdout, 2 stderr */
};

struct session {
	struct waker w;
	struct session *next, *prev;
	struct node *n;
	uint64_t id;
	nng_stream *s;
	nng_aio *raio, *saio;
	int rbusy, sbusy, rdone, sdone;
	int closing;      /* close once the send queue is empty */
	int dead;         /* stream closed; free when no aio is busy */
	int paused;       /* not reading: its call's input window is full */
	uint8_t *rbuf;
	size_t rhead, rlen;
	struct obuf *sq, **sqt;
	size_t sqn;
	nng_iov siov[SEND_IOV];
	int greeted, asked;
	int64_t hello_deadline;
	int handoff;      /* a follower hands this client to the leader */
	/* babl --verify K: the run's output, held until K executing nodes have
	 * signed the digest of this node's run (vnode/vdg: who signed what). */
	uint64_t vcall;
	unsigned vk, vn;
	struct wbuf vheld;
	uint8_t vkind;
	int32_t vcode;
	int vhas;
	uint8_t vdigest[32];
	uint64_t vnode[GD_NODES];
	uint8_t vdg[GD_NODES][32];
	int64_t vdeadline;
	uint8_t *hbuf;    /* what it sent that the leader must see */
	size_t hlen;
	char hurl[ENT_MEMBER_URL_MAX + 1];
	int64_t hdeadline; /* until when it waits for a leader to be elected */
	struct call *call;      /* the call this session made */
	struct call *waiting;   /* an --id call it waits on */
	struct session *wnext;  /* in the waited call's list */
	uint64_t deploy_index;  /* a DEPLOY it waits to see applied */
	/* Replaying a recorded --id outcome. */
	int replaying;
	uint8_t rkey[32];
	uint64_t rseq, rchunks, rcall;
	uint8_t rkind;
	int32_t rcode;
	/* An --id caller gets its EXIT once the record of it is durable. */
	int exit_after_barrier;
	uint64_t exporting;  /* next index of a log export under way, or 0 */
	uint64_t verifying;  /* next index of a verification under way, or 0 */
	uint64_t verified;   /* entries checked so far */
	char verify_name[BUNDLE_MAX_NAME + 1]; /* whose divergence reports to list */
	int in_barrier;   /* listed in a NOOP proposal: not freed until it applies */
	int pinned;       /* owner of a proposal not yet applied (a DEPLOY) */
	int linger;       /* all sent: waiting for the client to close */
	int64_t linger_deadline;
	int headed;       /* has asked for a service's head (once per connection) */
	int again;        /* its call asked to keep the connection (WIRE_CALL_AGAIN) */
	int flushq;       /* on n->flushq: frames queued, to be sent at the turn's end */
	struct session *fnext;
	int input_open;   /* its last call's input has not ended (no EOF yet) */
	uint64_t ncalls;  /* calls it has made */
	uint8_t bkind;
	int32_t bcode;
	/* Channels (wire.h): a connection that carries them is a link, with
	 * a session for each open channel; a channel's session has no stream
	 * of its own and sends and receives through its link. */
	struct session **chans; /* a link: its channels' sessions, by id */
	uint8_t *half;    /* a link: ids this node has ended and the client not yet */
	unsigned nchans;  /* a link: channel sessions not yet freed */
	unsigned chan_hi; /* a link: ids in use are below this */
	size_t lk_off;    /* a link: bytes of the CHAN frame at rhead already handed on */
	int stalled;      /* a link: that frame's channel cannot take more now */
	int pumping, repump;
	struct wbuf lout; /* a link: CHAN frames not yet queued to send */
	struct session *link; /* a channel: the link that carries it */
	uint32_t chan;
	int cend;         /* a channel: the client has ended it */
	int cwait;        /* a channel: waits for room in its link's queue */
};

/* What a link queues to send before its channels wait; how many channels
 * it may have open at once (each may hold a frame's worth of input). */
#define LINK_OUT_MAX (1u << 20)
#define LINK_CHANS_MAX 256

enum call_state { C_PROPOSED, C_RUNNING, C_ENDED };

struct chunk {
	struct chunk *next;
	struct prop *p; /* payload: 8-byte call prefix, then data */
	size_t off;
};

struct call {
	struct call *next, *prev;
	struct node *n;
	struct session *sess;
	uint64_t index; /* of its CALL entry */
	enum call_state state;
	struct svc *svc;
	struct svc_version *ver;
	uint8_t reqid[ENT_REQID_LEN];
	uint64_t time_ms, seed;
	uint32_t timeout_ms;
	char *idkey;
	uint8_t ikey[32];
	struct session *waiters;
	unsigned slot;
	pid_t pid;
	int fd_in, fd_out, fd_err;
	unsigned rdy;      /* CALL_RDY_*: what its pipes last said they allow */
	unsigned grown;    /* CALL_RDY_IN, _OUT: that pipe has grown (PIPE_BIG) */
	struct chunk *inq, **inqt;
	int eof_applied;
	uint64_t eof_index;
	int input_whole;   /* its EOF was in the same batch as its CALL */
	int cancel_proposed, eof_proposed, outcome_proposed;
	int killed;
	uint8_t why;
	char msg[512];
	uint64_t in_proposed, in_written, window;
	uint64_t out_bytes, err_bytes, recorded, rec_seq;
	int record_overflow;
	uint8_t *obuf, *ebuf;
	int obusy, ebusy;
	int out_eof, err_eof, exited;
	int spawned;       /* started by the spawner: no pid here, see sbx.h */
	int alone;         /* it ended with nothing it started left (sbx_reaped) */
	int status;
	int64_t start_ms, deadline_ms;
	char workdir[PATH_MAX];
	int args_n;
	char **args;
	/* Lua calls run in a worker instead of a process of their own. */
	int lua;
	uint64_t ack_owed;   /* Lua: output bytes passed on, not yet acknowledged to the worker */
	struct lw *w;
	int eof_sent, kill_sent;
	int64_t kill_deadline;
	struct wbuf writes;  /* its kv writes, from the worker's DONE */
	uint32_t nwrites;
	int kv_wait;         /* a kv request waits for earlier calls to end */
	int kv_keys;
	char *kv_key;
	size_t kv_kl;
	/* Replicated: every member runs the call; the leader's OUTCOME
	 * decides.  A member that finishes first keeps its own (outb) in case
	 * it becomes the leader; one that sees the OUTCOME first (remote)
	 * finishes when its run ends. */
	int outcome_sent;
	struct wbuf outb;
	int has_remote;
	int remote_writes; /* the OUTCOME that came first applies writes */
	struct ent_outcome remote;
	struct gd_run dg;  /* the digest of its run here (guard.h) */
	unsigned verify_k; /* --verify K: output held (held) until K nodes agree */
	struct wbuf held;
	int held_over;
	uint8_t digest[32];
	int has_digest;
	int placeholder;   /* replicated: not run here (no free slot); it holds
	                      later calls' kv reads until its OUTCOME applies */
	int rec_owner;     /* replicated: its output is this node's to record (a
	                      leader that ran it for its caller from the start) */
	int kv_used;       /* Lua: it asked for a kv value or keys */
	int early;         /* its EXIT went before its OUTCOME was durable */
	int rerun;         /* run again from the log after a stop (orphan_rerun) */
};

/* An --id outcome recorded but not yet durable; retries wait on it. */
struct idem_pending {
	struct idem_pending *next;
	uint8_t ikey[32];
	struct session *waiters;
};

struct hashcache {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	uint8_t hash[32];
	int used;
};

struct node {
	const struct node_config *cfg;
	char data[PATH_MAX], run_dir[PATH_MAX], name[128];
	struct store *st;
	struct committer *cm;
	struct sbx *sbx;
	struct registry reg;
	int wake_fd, sig_fd;
	size_t paced;      /* the native calls commit_pace was last told of */
	int ep_fd;         /* the native calls' pipes (epoll, edge-triggered) */
	pthread_mutex_t rlock;
	struct waker *ready, **readyt;
	struct listener lst[NODE_MAX_LISTEN];
	int nlst;
	struct session *sessions;
	struct session *flushq; /* sessions with frames queued this turn */
	uint64_t next_sid;
	struct call *calls;
	unsigned ncalls;
	uint8_t *slots;
	uint8_t *wd_clean; /* by slot: its work dir is known empty, see slot_dir */
	uint64_t next_index; /* index the next proposal gets */
	uint64_t applied;
	unsigned early_open; /* calls whose EXIT went before their OUTCOME applied */
	uint64_t input_inflight;
	int stopping;
	int64_t stop_deadline;
	int64_t started_ms;
	int64_t next_prune_ms;
	uint64_t calls_total;
	struct hashcache hc[32];
	int failed; /* the store failed: refuse new work */
	struct lw *workers;
	struct kvcache *kvc;
	struct idem_pending *idem_pending;
	/* Proposals of this turn of the loop, handed over together so that
	 * they share a transaction. */
	struct prop *props, **propst;
	char lua_path[PATH_MAX];
	int64_t next_evict_ms;
	/* Replication (cluster is 0 on a single node). */
	int cluster;
	struct raft *raft;
	unsigned ent_read_errs;      /* raft_ent_read failures, for the log */
	struct rstore *rs;
	struct rtrans *rt;
	struct proxy_set *px;
	struct raft_ready rd;
	int rd_busy;              /* rd is being persisted by the commit thread */
	uint64_t saved_term, saved_vote;
	int64_t next_tick_ms, next_duty_ms, orphan_scan_ms;
	int leader;
	uint64_t lead_id, term, commit;
	struct prop *pend, **pendt; /* proposed to Raft, not yet applied */
	struct kvpend *kvq;         /* kv writes waiting for runs here (kv_apply) */
	struct idset open;          /* calls applied and not ended: DB_OPEN's keys */
	/* The members' addresses: --peer, then what the log said (ENT_MEMBER).
	 * gone: removed; the leader takes it out of the configuration. */
	struct member {
		uint64_t id;
		char raft[ENT_MEMBER_URL_MAX + 1], client[ENT_MEMBER_URL_MAX + 1];
		int gone, in_log, guard;
	} mem[NODE_MAX_PEERS];
	int nmem;
	uint64_t members_term; /* the term whose leader put --peer members in the log */
	uint64_t slots_out;    /* calls not run here for want of a slot */
	int64_t lead_heard_ms; /* when the leader was last heard from */
	uint64_t lead_commit;  /* the highest commit index a leader has sent */
	uint64_t *bend;        /* calls whose OUTCOME is in the batch applied now */
	size_t nbend, cbend;
	const struct raft_entry *ahead; /* committed entries after the one applied */
	size_t ahead_n;
	uint64_t lead_bad;     /* a leader a proxy could not reach ... */
	int64_t lead_bad_ms;   /* ... then: not used again until heard from */
	struct backitem *back; /* clients the proxies handed back (under rlock) */
	/* Digests: this node's key, the batch being filled, what sends batches
	 * and reports from a node that cannot propose, the guard's table, and
	 * the nodes' keys as the log first showed them. */
	uint8_t node_pk[32], node_sk[64];
	struct wbuf dg_items;
	uint32_t dg_n;
	int64_t dg_since;
	struct sender *snd;
	struct gd_table *gd;
	struct { uint64_t id; uint8_t pk[32]; } nkeys[NODE_MAX_PEERS];
	int nnkeys;
	/* Nodes whose batches carry another key: ignored since the last line. */
	struct { uint64_t id, ignored, last_ms; } nkwarn[NODE_MAX_PEERS];
	int nnkwarn;
	int fresh;             /* started without replicated state, not bootstrapping */
	/* meshd replay --check: the log is fed from the store, not from Raft. */
	int checking;
	unsigned nverify;      /* sessions waiting for --verify digests */
	uint64_t check_tail, check_calls, check_last;
	struct text *check_out;
	uint64_t check_reports;
};

static void lua_send(struct call *c, struct wbuf *b);
static void lua_input(struct call *c);
static void call_output_seen(struct call *c, int stream, const uint8_t *p, size_t n);
static void call_hold(struct call *c, int stream, const uint8_t *p, size_t n);
static unsigned executing_nodes(struct node *n);
static void verify_hold(struct node *n, struct session *s, struct call *c, const struct ent_outcome *o);
static void verify_digest(struct node *n, uint64_t call, uint64_t node, const uint8_t d[32]);
static void call_label(struct node *n, struct store_txn *t, uint64_t call, char svc[200],
    uint64_t *vn, char rq[2 * ENT_REQID_LEN + 1]);
#define VERIFY_WAIT_MS 10000
struct text;
static uint64_t reports(struct node *n, const char *name, struct text *out, uint64_t per_node_id);

static int64_t
now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static uint64_t
wall_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* ---- waking the main thread ---- */

static void
wake(struct node *n)
{
	uint64_t one = 1;
	if (write(n->wake_fd, &one, 8) < 0) {
		/* An eventfd write fails only on overflow, which cannot happen. */
	}
}

/*
 * Mark what completed and queue the waker, in one critical section: once
 * the lock is released the main thread may handle the event and free the
 * object, so the callback must not touch it afterwards.
 */
static void
push_ready(struct node *n, struct waker *w, int *flag)
{
	int was_empty;
	pthread_mutex_lock(&n->rlock);
	*flag = 1;
	was_empty = n->ready == NULL;
	if (!w->queued) {
		w->queued = 1;
		w->rnext = NULL;
		*n->readyt = w;
		n->readyt = &w->rnext;
	}
	pthread_mutex_unlock(&n->rlock);
	if (was_empty)
		wake(n);
}

static void
recv_cb(void *arg)
{
	struct session *s = arg;
	push_ready(s->n, &s->w, &s->rdone);
}

static void
send_cb(void *arg)
{
	struct session *s = arg;
	push_ready(s->n, &s->w, &s->sdone);
}

static void
accept_cb(void *arg)
{
	struct acceptor *a = arg;
	push_ready(a->l->n, &a->w, &a->done);
}

/* ---- text answers ---- */

struct text {
	char *p;
	size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (t->p && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap * 2 : 4096;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *q = realloc(t->p, cap);
		if (!q)
			fatalx("out of memory");
		t->p = q;
		t->cap = cap;
	}
}

/* ---- proposals ---- */

/* Give a proposal the next index and hand it to the commit thread. */
static struct prop *
propose(struct node *n, uint8_t type, uint8_t *buf, size_t len, void *owner)
{
	struct prop *p = calloc(1, sizeof *p);
	if (!p)
		fatalx("out of memory proposing an entry");
	p->e.type = type;
	p->e.term = 1;
	/* Replicated, the index comes from Raft when the turn's proposals are
	 * handed over (cluster_flush). */
	p->e.index = n->cluster ? 0 : n->next_index++;
	p->e.len = (uint32_t)len;
	p->buf = buf;
	p->owner = owner;
	p->next = NULL;
	*n->propst = p;
	n->propst = &p->next;
	return p;
}

/* Hand this turn's proposals to the commit thread. */
static void cluster_flush(struct node *n);

static void
propose_flush(struct node *n)
{
	if (n->cluster) {
		cluster_flush(n);
		return;
	}
	commit_submit_list(n->cm, n->props);
	n->props = NULL;
	n->propst = &n->props;
}

static struct prop *
propose_wbuf(struct node *n, uint8_t type, struct wbuf *b, void *owner)
{
	uint8_t *p = b->p;
	size_t len = b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	return propose(n, type, p, len, owner);
}

/* An EOF or CANCEL of call c (replicated, its index is filled in when
 * proposed: the CALL may be in the same turn). */
static void
propose_ref(struct node *n, uint8_t type, struct call *c)
{
	uint8_t *p = malloc(8);
	if (!p)
		fatalx("out of memory");
	ent_input_prefix(p, c->index);
	propose(n, type, p, 8, c);
}

/* ---- sending ---- */

static void session_flush(struct session *s);
static void session_recv(struct session *s);
static void export_pump(struct session *s);
static void call_release_buf(struct call *c, int stream);
static void replay_pump(struct session *s);

/* Send what s has queued when the turn ends, with whatever else the turn
 * queues for this client (session_flush_turn). */
static void
flush_later(struct session *s)
{
	if (!s->flushq && !s->sbusy) {
		s->flushq = 1;
		s->fnext = s->n->flushq;
		s->n->flushq = s;
	}
}

static void
queue_obuf(struct session *s, struct obuf *o)
{
	o->next = NULL;
	*s->sqt = o;
	s->sqt = &o->next;
	s->sqn++;
	flush_later(s);
}

/* Queue an encoded frame (takes the buffer). */
static void
queue_wbuf(struct session *s, struct wbuf *b)
{
	struct obuf *o = calloc(1, sizeof *o);
	if (!o)
		fatalx("out of memory");
	o->owned = b->p;
	o->data = b->p;
	o->len = b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	queue_obuf(s, o);
}

static void
send_error(struct session *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
send_error(struct session *s, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	struct wbuf b = {0};
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (wire_enc_error(&b, code, msg) == 0)
		queue_wbuf(s, &b);
	s->closing = 1;
	session_flush(s);
}

/* What callers hear once the log cannot be written (n->failed). */
static const char *
failed_text(const struct node *n)
{
	return store_disk_full(n->st) ?
	    "the node cannot write its log: its disk is full (it takes no calls until it is restarted)" :
	    "the node cannot write its log: an I/O error (it takes no calls until it is restarted)";
}

static void
send_text(struct session *s, const char *text, size_t len)
{
	struct wbuf b = {0};
	while (len) {
		size_t n = len > WIRE_CHUNK ? WIRE_CHUNK : len;
		if (wire_enc_bytes(&b, WIRE_TEXT, text, n))
			fatalx("out of memory");
		text += n;
		len -= n;
	}
	if (b.len)
		queue_wbuf(s, &b);
}

/*
 * A client that asked to keep its connection (WIRE_CALL_AGAIN) may make
 * another call once it has this one's EXIT: the session is as after its
 * greeting, and one that stays idle for HELLO_TIMEOUT_MS is closed.
 */
static void
session_next(struct session *s)
{
	s->again = 0;
	s->asked = 0;
	s->call = NULL;
	s->waiting = NULL;
	s->replaying = 0;
	s->exit_after_barrier = 0;
	s->hello_deadline = now_ms() + HELLO_TIMEOUT_MS;
}

static void chan_ended(struct session *s);
static void link_parse(struct session *l);
static int link_start(struct session *l);
static const char *leader_url(struct node *n);

/* The session is done with its connection: close the stream, or end the
 * channel. */
static void
session_close(struct session *s)
{
	s->dead = 1;
	if (s->link)
		chan_ended(s);
	else
		nng_stream_close(s->s);
}

static void
send_exit(struct session *s, uint8_t kind, int32_t code, const char *msg)
{
	struct wbuf b = {0};
	if (wire_enc_exit(&b, kind, code, msg))
		fatalx("out of memory");
	queue_wbuf(s, &b);
	if (s->again && !s->dead)
		session_next(s);
	else
		s->closing = 1;
	session_flush(s);
}

static void
obuf_done(struct obuf *o)
{
	if (o->call)
		call_release_buf(o->call, o->stream);
	free(o->owned);
	free(o);
}

static void chan_move(struct session *s);

static void
session_flush(struct session *s)
{
	if (s->sbusy || s->dead)
		return;
	if (s->lout.len && s->sqn <= SEND_QUEUE_MAX) /* a link's CHAN frames */
		queue_wbuf(s, &s->lout);
	if (s->link && s->sq) {
		chan_move(s);
		if (s->sq)
			return;
	}
	if (!s->sq) {
		/*
		 * All sent: wait for the client to close first (reading and
		 * dropping whatever it still sends), so that closing with its
		 * last bytes unread cannot make it lose our final frame.  That
		 * holds for a refusal too: a greeted client may have sent its
		 * call's input right behind the CALL.  Only a peer that never
		 * said HELLO is closed on at once.
		 */
		if (s->closing && ((!s->asked && !s->greeted) || s->link)) {
			/* (A channel's last frames go before its end on the
			 * link: nothing to wait for.) */
			session_close(s);
		} else if (s->closing && !s->linger) {
			s->linger = 1;
			s->linger_deadline = now_ms() + LINGER_MS;
			session_recv(s);
		}
		return;
	}
	/* Up to SEND_IOV / 2 frames in one send; only the first may have
	 * been sent in part. */
	int k = 0;
	for (struct obuf *o = s->sq; o && k + 2 <= SEND_IOV; o = o->next) {
		if (o->off < o->hlen)
			s->siov[k++] = (nng_iov){o->hdr + o->off, o->hlen - o->off};
		size_t doff = o->off > o->hlen ? o->off - o->hlen : 0;
		if (o->len > doff)
			s->siov[k++] = (nng_iov){(void *)(o->data + doff), o->len - doff};
	}
	if (k == 0) { /* only empty frames, which cannot be: drop them */
		while (s->sq) {
			struct obuf *o = s->sq;
			s->sq = o->next;
			s->sqn--;
			obuf_done(o);
		}
		s->sqt = &s->sq;
		session_flush(s);
		return;
	}
	nng_aio_set_iov(s->saio, (unsigned)k, s->siov);
	s->sbusy = 1;
	nng_stream_send(s->s, s->saio);
}

static void session_sent(struct session *s);

static void
on_sent(struct session *s)
{
	int rv = nng_aio_result(s->saio);
	s->sbusy = 0;
	if (rv) {
		if (!s->dead)
			log_debug("session %" PRIu64 ": send: %s", s->id, nng_strerror(rv));
		session_close(s);
		return;
	}
	size_t sent = nng_aio_count(s->saio);
	while (s->sq) {
		struct obuf *o = s->sq;
		size_t rest = o->hlen + o->len - o->off;
		if (sent < rest) {
			o->off += sent;
			break;
		}
		sent -= rest;
		s->sq = o->next;
		if (!s->sq)
			s->sqt = &s->sq;
		s->sqn--;
		obuf_done(o);
	}
	session_sent(s);
}

/* Frames went: what waited for room goes on. */
static void
session_sent(struct session *s)
{
	if (s->replaying)
		replay_pump(s);
	if (s->exporting)
		export_pump(s);
	session_flush(s);
	if (s->chans) /* a link: its channels that waited for room */
		for (unsigned i = 0; i < s->chan_hi && s->sqn <= SEND_QUEUE_MAX; i++) {
			struct session *c = s->chans[i];
			if (c && (c->cwait || c->replaying || c->exporting)) {
				c->cwait = 0;
				session_sent(c);
			}
		}
	if (!s->rbusy && s->sqn <= SEND_QUEUE_MAX)
		session_recv(s);
}

/*
 * At the end of a loop turn, send what the turn queued.  The output of a
 * run that has ended (its outcome proposed), if it is a few frames, waits
 * for the call's EXIT, which follows once the outcome is durable, so that
 * both go in one send.
 */
static void
session_flush_turn(struct node *n)
{
	struct session *s;
	while ((s = n->flushq)) {
		n->flushq = s->fnext;
		s->flushq = 0;
		struct call *c = s->call;
		/* (Once the outcome is proposed, every output pipe has been read
		 * to its end, and so no frame held borrows a call's buffer.) */
		if (c && c->outcome_proposed && s->sqn <= HOLD_FRAMES && !s->closing)
			continue; /* its EXIT sends it */
		session_flush(s);
	}
}

/* ---- sessions ---- */

static void handle_frame(struct session *s, const struct wire_frame *f);
static void call_lost_session(struct call *c);

static struct session *
session_new(struct node *n, nng_stream *st)
{
	struct session *s = calloc(1, sizeof *s);
	if (!s || !(s->rbuf = malloc(RBUF_CAP)) ||
	    nng_aio_alloc(&s->raio, recv_cb, s) || nng_aio_alloc(&s->saio, send_cb, s)) {
		log_warnx("out of memory for a new connection; closing it");
		if (s) {
			nng_aio_free(s->raio);
			free(s->rbuf);
			free(s);
		}
		nng_stream_free(st);
		return NULL;
	}
	s->w.kind = W_SESSION;
	s->n = n;
	s->s = st;
	s->id = ++n->next_sid;
	s->sqt = &s->sq;
	s->hello_deadline = now_ms() + HELLO_TIMEOUT_MS;
	s->next = n->sessions;
	if (n->sessions)
		n->sessions->prev = s;
	n->sessions = s;
	return s;
}

static void
session_kill(struct session *s, const char *why)
{
	if (why)
		log_info("session %" PRIu64 ": %s; closing it", s->id, why);
	if (!s->dead)
		session_close(s);
}

/* Free a dead session once nng holds nothing of it. */
static int
session_reap(struct session *s)
{
	struct node *n = s->n;
	if (s->link && !s->dead && (s->link->dead || s->link->closing))
		s->dead = 1; /* its link is gone */
	if (!s->dead || s->rbusy || s->sbusy || s->w.queued || s->in_barrier || s->pinned ||
	    s->nchans)
		return 0;
	if (s->link) {
		struct session *l = s->link;
		if (l->chans[s->chan] == s)
			l->chans[s->chan] = NULL;
		l->nchans--;
		if (l->stalled) /* it may have waited for this one */
			link_parse(l);
	}
	if (s->flushq) {
		struct session **pp = &n->flushq;
		while (*pp != s)
			pp = &(*pp)->fnext;
		*pp = s->fnext;
	}
	if (s->call)
		call_lost_session(s->call);
	if (s->waiting) {
		struct session **pp = &s->waiting->waiters;
		while (*pp && *pp != s)
			pp = &(*pp)->wnext;
		if (*pp)
			*pp = s->wnext;
	}
	while (s->sq) {
		struct obuf *o = s->sq;
		s->sq = o->next;
		obuf_done(o);
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		n->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	nng_aio_free(s->raio);
	nng_aio_free(s->saio);
	if (s->s)
		nng_stream_free(s->s);
	free(s->hbuf);
	free(s->rbuf);
	free(s->chans);
	free(s->half);
	wbuf_free(&s->lout);
	free(s);
	return 1;
}

/* Whether s takes more input now.  A client that does not read what it is
 * sent is not read from either: the queue of replies stays short. */
static int
session_takes(const struct session *s)
{
	return !s->dead && !s->paused && !s->handoff && !(s->closing && !s->linger) &&
	    s->sqn <= SEND_QUEUE_MAX;
}

static void
session_recv(struct session *s)
{
	if (s->rbusy || !session_takes(s))
		return;
	if (s->link) { /* its bytes come through the link */
		if (s->link->stalled)
			link_parse(s->link);
		return;
	}
	if (s->stalled) /* a link waits for a channel to take what it has */
		return;
	if (s->linger) { /* what comes now is dropped */
		s->rhead = s->rlen = 0;
	}
	if (s->rhead && s->rhead + s->rlen > RBUF_CAP / 2) {
		memmove(s->rbuf, s->rbuf + s->rhead, s->rlen);
		s->rhead = 0;
	}
	nng_iov iov = {s->rbuf + s->rhead + s->rlen, RBUF_CAP - s->rhead - s->rlen};
	nng_aio_set_iov(s->raio, 1, &iov);
	s->rbusy = 1;
	nng_stream_recv(s->s, s->raio);
}

/* Parse and handle every whole frame in the buffer. */
static void
session_parse(struct session *s)
{
	if (s->chans) {
		link_parse(s);
		return;
	}
	while (!s->dead && !s->closing && !s->paused && !s->handoff) {
		struct wire_frame f;
		size_t used;
		int rc = wire_next(s->rbuf + s->rhead, s->rlen, 0, &f, &used);
		if (rc == BABL_EAGAIN)
			break;
		if (rc == 0 && f.type == WIRE_CHAN && s->greeted && !s->asked && !s->link &&
		    !s->ncalls) {
			/* The first CHAN makes the connection a link. */
			if (link_start(s)) {
				send_error(s, BABL_ENOMEM, "out of memory for channels");
				return;
			}
			link_parse(s);
			return;
		}
		if (rc) {
			log_info("session %" PRIu64 ": %s frame (%s); closing it", s->id,
			    rc == BABL_ETOOBIG ? "oversized" : "malformed", babl_strerror(rc));
			send_error(s, BABL_EPROTO, "%s frame",
			    rc == BABL_ETOOBIG ? "oversized" : "malformed");
			if (s->call)
				call_lost_session(s->call);
			return;
		}
		handle_frame(s, &f);
		s->rhead += used;
		s->rlen -= used;
	}
	if (!s->rlen)
		s->rhead = 0;
}

/* n bytes came into rbuf (0: the connection or channel ended), or the
 * receive failed with nng's error rv. */
static void
session_got(struct session *s, int rv, size_t n)
{
	if (rv || n == 0) {
		const char *how = rv ? nng_strerror(rv) : "closed";
		if (s->dead || s->linger)
			;
		else if (s->rlen)
			log_info("session %" PRIu64 ": connection %s in the middle of a frame (%zu bytes); closing it",
			    s->id, how, s->rlen);
		else if (!s->asked && !s->ncalls)
			log_info("session %" PRIu64 ": connection %s before any request; closing it", s->id, how);
		else
			log_debug("session %" PRIu64 ": receive: %s", s->id, how);
		/* The client went away: a call it made is cancelled. */
		if (s->call)
			call_lost_session(s->call);
		if (!s->dead && !s->asked && !s->ncalls && !s->closing) {
			/* Half-closed, perhaps: say why before closing. */
			send_error(s, BABL_EPROTO, "connection ended %s", s->rlen ?
			    "in the middle of a frame" : "before a request");
			return;
		}
		session_close(s);
		return;
	}
	s->rlen += n;
	if (!s->linger)
		session_parse(s);
	session_recv(s);
}

static void
on_recv(struct session *s)
{
	s->rbusy = 0;
	session_got(s, nng_aio_result(s->raio), nng_aio_count(s->raio));
}

/* Resume reading sessions whose calls have room again. */
static void
session_unpause(struct session *s)
{
	if (!s->paused)
		return;
	s->paused = 0;
	session_parse(s);
	session_recv(s);
}

/* ---- channels (wire.h) ---- */

/*
 * Move a channel's queued frames into its link's CHAN frames (whole frames
 * in each), unless the link has enough waiting already: then the channel
 * waits (cwait) for the link's next send.
 */
static void
chan_move(struct session *s)
{
	struct session *l = s->link;
	if (l->dead || l->closing)
		return;
	if (l->lout.len > LINK_OUT_MAX || l->sqn > SEND_QUEUE_MAX) {
		s->cwait = 1;
		return;
	}
	while (s->sq) {
		size_t start;
		if (wire_chan_begin(&l->lout, s->chan, &start))
			fatalx("out of memory");
		int k = 0;
		for (struct obuf *o; (o = s->sq); k++) {
			if (k && l->lout.len - start + o->hlen + o->len > WIRE_HDR + WIRE_MAX_BODY)
				break;
			if ((o->hlen && wb_raw(&l->lout, o->hdr, o->hlen)) ||
			    (o->len && wb_raw(&l->lout, o->data, o->len)))
				fatalx("out of memory");
			s->sq = o->next;
			s->sqn--;
			obuf_done(o);
		}
		if (wire_chan_end(&l->lout, start))
			fatalx("a frame too big for a channel");
	}
	s->sqt = &s->sq;
	flush_later(l);
}

/* The node ends a channel: say so on the link, unless the link is gone. */
static void
chan_ended(struct session *s)
{
	struct session *l = s->link;
	if (l->dead || l->closing)
		return;
	if (wire_enc_chan_end(&l->lout, s->chan))
		fatalx("out of memory");
	if (!s->cend)
		l->half[s->chan] = 1;
	flush_later(l);
}

static struct session *session_new(struct node *n, nng_stream *st);

/* A greeted session becomes a link: the frames it sends are CHAN frames. */
static int
link_start(struct session *l)
{
	l->chans = calloc(WIRE_CHANS, sizeof *l->chans);
	l->half = calloc(WIRE_CHANS, 1);
	if (!l->chans || !l->half) { /* it stays a plain session */
		free(l->chans);
		free(l->half);
		l->chans = NULL;
		l->half = NULL;
		return BABL_ENOMEM;
	}
	l->asked = 1; /* it asks nothing itself, and it may stay idle */
	return 0;
}

/*
 * Hand n bytes of channel id (none: the client ends it) to its session.
 * Returns how many it took, which is fewer when it cannot take more now, or
 * -1 if the client broke the rules of channels.
 */
static ssize_t
chan_take(struct session *l, uint32_t id, const uint8_t *p, size_t n)
{
	struct session *c = l->chans[id];
	if (n == 0) {
		if (l->half[id]) { /* both sides have ended it: free */
			l->half[id] = 0;
			l->chans[id] = NULL; /* (its session goes once its calls let go) */
			return 0;
		}
		if (!c || c->cend)
			return -1;
		c->cend = 1;
		if (!c->dead)
			session_got(c, 0, 0);
		return 0;
	}
	if (l->half[id])
		return (ssize_t)n; /* this node has ended it: dropped */
	if (c && c->cend) {
		if (!c->dead) /* bytes after the client's end */
			return -1;
		l->chans[id] = c = NULL; /* both ended it: the id is free */
	}
	if (!c) {
		if (l->nchans >= LINK_CHANS_MAX) {
			log_info("session %" PRIu64 ": more than %d channels at once", l->id,
			    LINK_CHANS_MAX);
			return -1;
		}
		if (!(c = session_new(l->n, NULL)))
			return -1;
		c->link = l;
		c->chan = id;
		c->greeted = 1;
		l->chans[id] = c;
		l->nchans++;
		if (id >= l->chan_hi)
			l->chan_hi = id + 1;
	}
	if (c->dead)
		return (ssize_t)n;
	if (!session_takes(c))
		return 0;
	if (c->rhead && c->rhead + c->rlen > RBUF_CAP / 2) {
		memmove(c->rbuf, c->rbuf + c->rhead, c->rlen);
		c->rhead = 0;
	}
	size_t room = RBUF_CAP - c->rhead - c->rlen;
	size_t k = n < room ? n : room;
	memcpy(c->rbuf + c->rhead + c->rlen, p, k);
	session_got(c, 0, k);
	return (ssize_t)k;
}

/* Hand each CHAN frame the link has read to its channel, as far as they
 * take them; then read more. */
static void
link_parse(struct session *l)
{
	if (l->pumping) {
		l->repump = 1;
		return;
	}
	l->pumping = 1;
	do {
		l->repump = 0;
		l->stalled = 0;
		while (!l->dead && !l->closing) {
			struct wire_frame f;
			size_t used, n;
			uint32_t id;
			const uint8_t *p;
			int rc = wire_next(l->rbuf + l->rhead, l->rlen, 0, &f, &used);
			if (rc == BABL_EAGAIN)
				break;
			ssize_t k = -1;
			if (rc == 0 && wire_dec_chan(&f, &id, &p, &n) == 0)
				k = chan_take(l, id, p + l->lk_off, n - l->lk_off);
			if (k < 0) {
				log_info("session %" PRIu64 ": %s; closing it", l->id, rc ?
				    "malformed frame on a link of channels" : f.type != WIRE_CHAN ?
				    "a frame other than CHAN on a link of channels" :
				    "a CHAN frame against the rules of channels");
				if (l->lout.len) /* what its channels said goes first */
					queue_wbuf(l, &l->lout);
				send_error(l, BABL_EPROTO, "%s", f.type != WIRE_CHAN || rc ?
				    "only CHAN frames may follow the first one" : "bad CHAN frame");
				break;
			}
			l->lk_off += (size_t)k;
			if (l->lk_off < n) {
				l->stalled = 1;
				break;
			}
			l->lk_off = 0;
			l->rhead += used;
			l->rlen -= used;
		}
	} while (l->repump && !l->dead && !l->closing);
	l->pumping = 0;
	if (!l->rlen)
		l->rhead = 0;
	session_recv(l);
}

/* ---- calls ---- */

static void call_maybe_finish(struct call *c);
static void outcome_finish(struct node *n, struct call *c, const struct ent_outcome *o);
static void lua_outcome_proposed(struct call *c, const struct ent_outcome *o);
static void record_output(struct call *c, int stream, const uint8_t *p, size_t n);

static int
slot_take(struct node *n)
{
	for (unsigned i = 0; i < n->cfg->max_calls; i++)
		if (!n->slots[i]) {
			n->slots[i] = 1;
			return (int)i;
		}
	return -1;
}

static void
idem_key(const uint8_t sid[32], const char *idkey, uint8_t out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, sid, 32);
	crypto_generichash_update(&st, (const uint8_t *)idkey, strlen(idkey));
	crypto_generichash_final(&st, out, 32);
}

static struct call *
call_by_index(struct node *n, uint64_t index)
{
	for (struct call *c = n->calls; c; c = c->next)
		if (c->index == index)
			return c;
	return NULL;
}

/* A new call of ver in slot, on the node's list; the caller sets the rest. */
static struct call *
call_new(struct node *n, struct svc *svc, struct svc_version *ver, unsigned slot)
{
	struct call *c = calloc(1, sizeof *c);
	if (!c)
		fatalx("out of memory");
	c->n = n;
	c->svc = svc;
	c->ver = ver;
	c->slot = slot;
	c->fd_in = c->fd_out = c->fd_err = -1;
	c->inqt = &c->inq;
	gd_run_init(&c->dg);
	c->next = n->calls;
	if (n->calls)
		n->calls->prev = c;
	n->calls = c;
	n->ncalls++;
	return c;
}

static void props_forget(struct node *n, const void *owner);
static void call_close_fd(struct call *c, int *fd);

static void
call_free(struct call *c)
{
	struct node *n = c->n;
	if (c->early)
		n->early_open--;
	/* (the pipes leave the epoll set before the call is gone) */
	int *fds[] = {&c->fd_in, &c->fd_out, &c->fd_err};
	for (int i = 0; i < 3; i++)
		if (*fds[i] >= 0)
			call_close_fd(c, fds[i]);
	props_forget(n, c);
	wbuf_free(&c->outb);
	wbuf_free(&c->held);
	while (c->inq) {
		struct chunk *k = c->inq;
		c->inq = k->next;
		n->input_inflight -= k->p->e.len - 8 - k->off;
		prop_free(k->p);
		free(k);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		n->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->slot < n->cfg->max_calls)
		n->slots[c->slot] = 0;
	n->ncalls--;
	for (int i = 0; i < c->args_n; i++)
		free(c->args[i]);
	free(c->args);
	free(c->idkey);
	free(c->obuf);
	free(c->ebuf);
	wbuf_free(&c->writes);
	free(c->kv_key);
	if (c->w && c->w->ncalls) {
		c->w->ncalls--;
		if (!c->w->ncalls) {
			c->w->idle_since = now_ms();
			c->w->solo = 0;
		}
	}
	free(c);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		return rmdir(path) < 0 && errno != ENOENT ? 0 : 0;
	unlink(path);
	return 0;
}

static void
remove_tree(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Remove what dir holds, but not dir itself; -1 if something stays. */
static int
empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX];
	struct stat st;
	int rc = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) {
			rc = -1;
			continue;
		}
		remove_tree(path);
		if (lstat(path, &st) == 0)
			rc = -1;
	}
	closedir(d);
	return rc;
}

/*
 * The work dir of slot: one directory per slot, kept from call to call
 * (the whole run dir is removed at start-up), because creating and
 * removing a directory per call costs ext4 more than the rest of meshd's
 * share of a small call.  Each call finds it empty, mode 0700 and, when
 * root, owned by the slot's uid; a call may have changed the mode of its
 * own dir, so that is set again.  This runs when a call ends, and again
 * before the next call of the slot starts unless nothing can have touched
 * the dir since (wd_clean: the spawner saw nothing of the call left, so
 * no process of it can still be writing there).
 */
static int
slot_dir(struct node *n, const char *dir, unsigned slot)
{
	static uid_t me = (uid_t)-1;
	if (me == (uid_t)-1)
		me = geteuid(); /* (meshd never changes it) */
	uid_t uid = me == 0 ? sbx_slot_uid(n->sbx, slot) : me;
	gid_t gid = me == 0 ? sbx_slot_gid(n->sbx, slot) : getegid();
	struct stat st;
	int have = lstat(dir, &st) == 0;

	if (!have && errno != ENOENT)
		return -1;
	if (have && (!S_ISDIR(st.st_mode) || empty_dir(dir) < 0)) {
		/*
		 * Something stays that meshd cannot remove (without root, a
		 * call can make a dir it cannot enter): set it aside, under the
		 * run dir that start-up removes, so the slot goes on serving.
		 */
		static unsigned long aside;
		char away[PATH_MAX];
		if ((size_t)snprintf(away, sizeof away, "%s/aside-%u-%lu", n->run_dir, slot,
		    ++aside) >= sizeof away || rename(dir, away) < 0)
			return -1;
		log_warnx("work dir %s could not be emptied; set aside as %s", dir, away);
		have = 0;
	}
	if (!have) {
		if (mkdir(dir, 0700) < 0)
			return -1;
		return me == 0 ? chown(dir, uid, gid) : 0;
	}
	if (st.st_uid != uid || st.st_gid != gid) {
		if (chown(dir, uid, gid) < 0)
			return -1;
	}
	if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) < 0)
		return -1;
	return 0;
}

/* Kill the call's process group; the outcome follows when it is reaped. */
static void
call_kill(struct call *c, uint8_t why, const char *msg)
{
	if (!c->why) {
		c->why = why;
		if (msg)
			snprintf(c->msg, sizeof c->msg, "%s", msg);
	}
	if (c->lua && c->w && !c->kill_sent && !c->exited) {
		struct wbuf b = {0};
		c->kill_sent = 1;
		c->killed = 1;
		c->kill_deadline = now_ms() + LW_KILL_GRACE_MS;
		if (wp_enc_ref(&b, WP_KILL, c->index, 0, NULL, 0) == 0)
			lua_send(c, &b);
		wbuf_free(&b);
	}
	if (c->pid > 0 && !c->killed) {
		kill(-c->pid, SIGKILL);
		c->killed = 1;
	}
	if (c->spawned && !c->exited && !c->killed) {
		(void)sbx_stop(c->n->sbx, c->slot);
		c->killed = 1;
	}
}

static void
call_propose_cancel(struct call *c, uint8_t why, const char *msg)
{
	if (c->cancel_proposed || c->outcome_proposed)
		return;
	c->cancel_proposed = 1;
	if (!c->why) {
		c->why = why;
		if (msg)
			snprintf(c->msg, sizeof c->msg, "%s", msg);
	}
	propose_ref(c->n, ENT_CANCEL, c);
}

static void
call_lost_session(struct call *c)
{
	struct session *s = c->sess;
	if (!s)
		return;
	s->call = NULL;
	c->sess = NULL;
	if (c->state != C_ENDED)
		call_propose_cancel(c, ENT_WHY_CANCELLED, "the caller went away");
}

/* A chunk of input was proposed; count it against the windows. */
static void
call_window_add(struct call *c, size_t n)
{
	c->window += n;
	c->n->input_inflight += n;
	if (c->sess && (c->window >= CALL_WINDOW || c->n->input_inflight >= INPUT_BUDGET))
		c->sess->paused = 1;
}

static void
call_window_sub(struct call *c, size_t n)
{
	c->window -= n;
	c->n->input_inflight -= n;
	if (c->sess && c->sess->paused && c->window < CALL_WINDOW / 2 &&
	    c->n->input_inflight < INPUT_BUDGET)
		session_unpause(c->sess);
}

/*
 * A native call's pipes are watched through one epoll fd, edge-triggered:
 * an event sets the pipe's CALL_RDY bit, and the bit stays set until the
 * pipe says EAGAIN (not at a short read: the event may have been the data
 * and the end together), so that a pipe is read only when the chunk read
 * before it has been sent, without asking the kernel about every pipe in
 * every turn of the loop.
 */
enum { CALL_RDY_IN = 1, CALL_RDY_OUT = 2, CALL_RDY_ERR = 4 };

static int
call_watch(struct call *c, int fd, unsigned rdy)
{
	struct epoll_event ev = {
		.events = (rdy == CALL_RDY_IN ? EPOLLOUT : EPOLLIN) | EPOLLET,
		.data.u64 = (uint64_t)(uintptr_t)c | rdy,
	};
	return epoll_ctl(c->n->ep_fd, EPOLL_CTL_ADD, fd, &ev);
}

static void
call_close_fd(struct call *c, int *fd)
{
	(void)epoll_ctl(c->n->ep_fd, EPOLL_CTL_DEL, *fd, NULL);
	close(*fd);
	*fd = -1;
}

/* What a native call's pipes allow it to do now. */
static int
call_actionable(const struct call *c)
{
	return ((c->rdy & CALL_RDY_IN) && c->fd_in >= 0 && c->inq) ||
	    ((c->rdy & CALL_RDY_OUT) && c->fd_out >= 0 && !c->obusy) ||
	    ((c->rdy & CALL_RDY_ERR) && c->fd_err >= 0 && !c->ebusy);
}

/*
 * A call's stdin or stdout pipe grows to PIPE_BIG once it fills (a stream,
 * not a small call: growing every pipe costs a small call two syscalls and
 * the kernel's allocation).
 */
#define PIPE_BIG (1 << 20)

static int
call_grow_pipe(struct call *c, int fd, unsigned bit)
{
	if (c->grown & bit)
		return 0;
	c->grown |= bit;
	return fcntl(fd, F_SETPIPE_SZ, PIPE_BIG) > 0;
}

static void
call_close_stdin(struct call *c)
{
	if (c->lua) {
		if (c->w && !c->eof_sent && !c->exited) {
			struct wbuf b = {0};
			c->eof_sent = 1;
			if (wp_enc_ref(&b, WP_EOF, c->index, 0, NULL, 0) == 0)
				lua_send(c, &b);
			wbuf_free(&b);
		}
		return;
	}
	if (c->fd_in >= 0)
		call_close_fd(c, &c->fd_in);
}

/* Drop queued input (the service closed its stdin or is gone). */
static void
call_drop_input(struct call *c)
{
	while (c->inq) {
		struct chunk *k = c->inq;
		c->inq = k->next;
		call_window_sub(c, k->p->e.len - 8 - k->off);
		prop_free(k->p);
		free(k);
	}
	c->inqt = &c->inq;
	call_close_stdin(c);
}

/* Write queued input to the service's stdin while the pipe takes it. */
static void
call_write_input(struct call *c)
{
	if (c->lua) {
		lua_input(c);
		return;
	}
	while (c->inq && c->fd_in >= 0) {
		struct chunk *k = c->inq;
		size_t len = k->p->e.len - 8 - k->off;
		ssize_t w = write(c->fd_in, k->p->buf + 8 + k->off, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			if (call_grow_pipe(c, c->fd_in, CALL_RDY_IN))
				continue;
			c->rdy &= ~(unsigned)CALL_RDY_IN;
			return;
		}
		if (w < 0) { /* EPIPE: the service stopped reading */
			call_drop_input(c);
			return;
		}
		k->off += (size_t)w;
		c->in_written += (uint64_t)w;
		call_window_sub(c, (size_t)w);
		if (k->off == k->p->e.len - 8) {
			c->inq = k->next;
			if (!c->inq)
				c->inqt = &c->inq;
			prop_free(k->p);
			free(k);
		}
	}
	if (!c->inq && c->eof_applied)
		call_close_stdin(c);
}

static void
call_release_buf(struct call *c, int stream)
{
	if (stream == 1)
		c->obusy = 0;
	else
		c->ebusy = 0;
}

/*
 * Read what the service wrote and send it on.  Returns 1 at the end of the
 * stream, which may have ended the call (and freed it), else 0.
 */
static int
call_read_output(struct call *c, int stream)
{
	int *fd = stream == 1 ? &c->fd_out : &c->fd_err;
	uint8_t **buf = stream == 1 ? &c->obuf : &c->ebuf;
	size_t cap = stream == 1 ? OUT_CHUNK : ERR_CHUNK;
	if (!*buf && !(*buf = malloc(cap)))
		fatalx("out of memory");
	unsigned bit = stream == 1 ? CALL_RDY_OUT : CALL_RDY_ERR;
	ssize_t r = read(*fd, *buf, cap);
	if (r < 0 && errno == EINTR)
		return 0;
	if (r < 0 && errno == EAGAIN) {
		c->rdy &= ~bit;
		return 0;
	}
	if (r <= 0) {
		call_close_fd(c, fd);
		if (stream == 1)
			c->out_eof = 1;
		else
			c->err_eof = 1;
		call_maybe_finish(c);
		return 1;
	}
	/* A full pipe's worth: a stream, whose pipe grows. */
	if (stream == 1 && (size_t)r >= 65536)
		(void)call_grow_pipe(c, *fd, CALL_RDY_OUT);
	call_output_seen(c, stream, *buf, (size_t)r);
	if (!c->sess)
		return 0; /* nobody to send to: the output is dropped */
	if (c->verify_k) {
		call_hold(c, stream, *buf, (size_t)r);
		return 0;
	}
	struct obuf *o = calloc(1, sizeof *o);
	if (!o)
		fatalx("out of memory");
	wire_hdr(o->hdr, stream == 1 ? WIRE_OUT : WIRE_ERRB, (size_t)r);
	o->hlen = 5;
	o->data = *buf;
	o->len = (size_t)r;
	o->call = c;
	o->stream = stream;
	if (stream == 1)
		c->obusy = 1;
	else
		c->ebusy = 1;
	queue_obuf(c->sess, o);
	return 0;
}

static void record_output(struct call *c, int stream, const uint8_t *p, size_t n);

/* DB_IDOUT keys: the --id key, the call's index, the chunk's number. */
static void
idout_key(uint8_t key[48], const uint8_t ikey[32], uint64_t call, uint64_t seq)
{
	memcpy(key, ikey, 32);
	be64_put(key + 32, call);
	be64_put(key + 40, seq);
}

static void digest_local(struct node *n, struct call *c, const struct ent_outcome *o);

/* --verify: the output waits, as frames, until the digests agree. */
static void
call_hold(struct call *c, int stream, const uint8_t *p, size_t n)
{
	if (c->held_over || c->held.len + n > ID_MAX_OUTPUT) {
		c->held_over = 1;
		return;
	}
	if (wire_enc_bytes(&c->held, stream == 1 ? WIRE_OUT : WIRE_ERRB, p, n))
		fatalx("out of memory");
}

/* Output a run made: counted, digested, and recorded for an --id call. */
static void
call_output_seen(struct call *c, int stream, const uint8_t *p, size_t n)
{
	if (stream == 1)
		c->out_bytes += n;
	else
		c->err_bytes += n;
	if (!c->n->cfg->no_digests)
		gd_run_update(&c->dg, stream, p, n);
	if (c->idkey)
		record_output(c, stream, p, n);
}

/* Output of --id calls is kept so that a retry gets the same bytes. */
static void
record_output(struct call *c, int stream, const uint8_t *p, size_t n)
{
	if (c->record_overflow)
		return;
	if (c->recorded + n > ID_MAX_OUTPUT) {
		c->record_overflow = 1;
		return;
	}
	if (c->n->cluster) {
		/* Through the log, so that every member can answer a retry;
		 * only the run the caller sees is recorded. */
		struct ent_output m = {c->index, c->rec_seq, (uint8_t)stream, p, n};
		struct wbuf b = {0};
		if (!c->rec_owner || !c->n->leader)
			return;
		if (ent_enc_output(&b, &m))
			fatalx("out of memory");
		c->rec_seq++;
		c->recorded += n;
		propose_wbuf(c->n, ENT_OUTPUT, &b, NULL);
		return;
	}
	uint8_t key[48];
	uint8_t *v = malloc(n + 1);
	if (!v)
		fatalx("out of memory");
	idout_key(key, c->ikey, c->index, c->rec_seq++);
	v[0] = (uint8_t)stream;
	memcpy(v + 1, p, n);
	commit_put(c->n->cm, DB_IDOUT, key, 48, v, n + 1);
	free(v);
	c->recorded += n;
}

/* Once the process is gone and its pipes drained, propose the outcome. */
static int lua_earlier_running(struct call *c);
static int kv_waiting(struct node *n, const uint8_t sid[32], uint64_t before);

/*
 * A Lua call that touched no kv state, asked for no --id record and whose
 * input has all been applied gets its EXIT when its OUTCOME is proposed,
 * not once that is durable: its output and status are a function of
 * entries already durable (its CALL, its input, its EOF), so that if the
 * node stops before the OUTCOME lands, the restart runs the call again
 * from the log and records the same end (orphan_rerun).  One node only: a
 * replicated call's OUTCOME decides among the members' runs.
 */
#define RERUN_INPUT_MAX (1u << 20) /* input a call run again may have */
#define RERUN_SCAN_MAX 65536       /* entries from its CALL to its EOF, at most */

static int
early_exit_ok(const struct call *c, const struct ent_outcome *o)
{
	return c->lua && c->sess && !c->n->cluster && !c->kv_used && !c->nwrites &&
	    !c->idkey && !c->verify_k && !c->rerun && o->why == ENT_WHY_NONE &&
	    c->eof_applied && c->in_proposed <= RERUN_INPUT_MAX &&
	    c->eof_index - c->index <= RERUN_SCAN_MAX;
}

static void
call_maybe_finish(struct call *c)
{
	if (c->outcome_proposed || !c->exited || c->fd_out >= 0 || c->fd_err >= 0)
		return;
	/*
	 * A Lua call's writes take effect in call order: they wait until every
	 * earlier call of the service has ended, so that no call ever reads a
	 * later call's writes (lua_housekeeping looks again).
	 */
	if (c->lua && c->nwrites && lua_earlier_running(c))
		return;
	if (c->rerun && c->nwrites && !c->why) {
		/* Its caller saw it fail: its writes do not take effect now. */
		c->why = ENT_WHY_RESTART;
		c->status = SIGKILL;
	}
	struct ent_outcome o = {0};
	struct wbuf b = {0};
	o.call = c->index;
	if (WIFSIGNALED(c->status)) {
		o.kind = WIRE_SIGNALED;
		o.code = WTERMSIG(c->status);
	} else {
		o.kind = WIRE_EXITED;
		o.code = WEXITSTATUS(c->status);
	}
	o.why = c->why;
	o.in_bytes = c->in_written;
	o.out_bytes = c->out_bytes;
	o.err_bytes = c->err_bytes;
	o.dur_ms = (uint32_t)(now_ms() - c->start_ms);
	if (c->idkey && c->record_overflow)
		o.flags |= ENT_OUT_PARTIAL;
	if (c->idkey && c->n->cluster && !c->rec_owner)
		o.flags |= ENT_OUT_UNOWNED;
	if (c->nwrites && o.kind == WIRE_EXITED && o.code == 0 && o.why == ENT_WHY_NONE) {
		o.nwrites = c->nwrites;
		o.writes = (struct wire_str){(const char *)c->writes.p, c->writes.len};
	}
	if (ent_enc_outcome(&b, &o))
		fatalx("out of memory");
	c->outcome_proposed = 1;
	digest_local(c->n, c, &o);
	call_drop_input(c);
	/* Later calls read its writes, unless the log already said they do
	 * not apply. */
	if (c->lua && (!c->has_remote || c->remote_writes))
		lua_outcome_proposed(c, &o);
	if (c->has_remote) {
		/* A member whose leader's OUTCOME came first: that one counts;
		 * writes that waited for this run may now apply. */
		wbuf_free(&b);
		outcome_finish(c->n, c, &c->remote);
		return;
	}
	if (c->n->cluster && !c->n->leader) {
		c->outb = b; /* proposed if this member becomes the leader */
		return;
	}
	c->outcome_sent = 1;
	struct prop *p = propose_wbuf(c->n, ENT_OUTCOME, &b, c);
	if (early_exit_ok(c, &o)) {
		/* Nobody waits for this OUTCOME: it goes in the transaction
		 * of the next proposal someone does wait for (the next call's,
		 * often), not in one of its own. */
		struct session *s = c->sess;
		p->lazy = 1;
		c->early = 1;
		c->n->early_open++;
		s->call = NULL;
		c->sess = NULL;
		send_exit(s, o.kind, o.code, NULL);
	}
}

/* The call could not run at all: end it with an outcome at once. */
static void
call_fail(struct call *c, uint8_t why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
call_fail(struct call *c, uint8_t why, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof c->msg, fmt, ap);
	va_end(ap);
	c->why = why;
	c->exited = 1;
	c->status = 127 << 8;
	c->state = C_RUNNING;
	call_maybe_finish(c);
}

/* Open the native program and check it is the one the bundle pins. */
static int
open_program(struct node *n, const struct bundle *b, char *why, size_t whylen)
{
	int fd = open(b->path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t h[32];
	char want[65], got[65];
	if (fd < 0) {
		snprintf(why, whylen, "program %s is missing on this node: %s", b->path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "program %s is not a regular file on this node", b->path);
		close(fd);
		return -1;
	}
	struct hashcache *slot = &n->hc[(st.st_ino ^ st.st_dev) % 32];
	if (slot->used && slot->dev == st.st_dev && slot->ino == st.st_ino &&
	    slot->size == st.st_size &&
	    slot->mtime.tv_sec == st.st_mtim.tv_sec && slot->mtime.tv_nsec == st.st_mtim.tv_nsec &&
	    slot->ctime.tv_sec == st.st_ctim.tv_sec && slot->ctime.tv_nsec == st.st_ctim.tv_nsec) {
		memcpy(h, slot->hash, 32);
	} else {
		if (bundle_hash_fd(fd, h)) {
			snprintf(why, whylen, "program %s cannot be read on this node", b->path);
			close(fd);
			return -1;
		}
		*slot = (struct hashcache){st.st_dev, st.st_ino, st.st_size, st.st_mtim,
		    st.st_ctim, {0}, 1};
		memcpy(slot->hash, h, 32);
	}
	if (memcmp(h, b->prog_hash, 32) != 0) {
		hex_encode(b->prog_hash, 8, want);
		hex_encode(h, 8, got);
		snprintf(why, whylen, "program %s on this node has hash %s..., but the service pins %s...; refusing to run it",
		    b->path, got, want);
		close(fd);
		return -1;
	}
	return fd;
}

/* (for an end of a new pipe, which has no other status flag to keep) */
static void
set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, O_NONBLOCK);
}

static void lua_start(struct call *c);

/* Apply a CALL: start the service in its sandbox. */
static void
call_start(struct call *c)
{
	struct node *n = c->n;
	const struct bundle *b = &c->ver->b;
	char why[600], env[8][PATH_MAX + 16];
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
	c->state = C_RUNNING;
	c->start_ms = now_ms();
	c->rec_owner = n->cluster && n->leader && c->sess;
	uint32_t limit = b->lim.timeout_ms;
	if (c->timeout_ms && (!limit || c->timeout_ms < limit))
		limit = c->timeout_ms;
	c->deadline_ms = limit ? c->start_ms + limit : 0;

	if (c->cancel_proposed) {
		if (c->msg[0]) { /* keep the reason already given (an input limit) */
			char msg[sizeof c->msg];
			memcpy(msg, c->msg, sizeof msg);
			call_fail(c, c->why ? c->why : ENT_WHY_CANCELLED, "%s", msg);
		} else {
			call_fail(c, c->why ? c->why : ENT_WHY_CANCELLED, "cancelled before it started");
		}
		return;
	}
	if (b->kind == BUNDLE_LUA) {
		lua_start(c);
		return;
	}
	int exe = open_program(n, b, why, sizeof why);
	if (exe < 0) {
		call_fail(c, ENT_WHY_PROGRAM, "%s", why);
		return;
	}
	if ((size_t)snprintf(c->workdir, sizeof c->workdir, "%s/call-%u", n->run_dir,
	    c->slot) >= sizeof c->workdir) {
		close(exe);
		call_fail(c, ENT_WHY_SPAWN, "the node's data path is too long");
		return;
	}
	if (c->slot < n->cfg->max_calls && n->wd_clean[c->slot]) {
		n->wd_clean[c->slot] = 0;
	} else if (slot_dir(n, c->workdir, c->slot) < 0) {
		log_warn("work dir %s", c->workdir);
		close(exe);
		call_fail(c, ENT_WHY_SPAWN, "cannot create a work directory on the node");
		return;
	}
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
		log_warn("pipe");
		for (int i = 0; i < 2; i++) {
			if (in[i] >= 0) close(in[i]);
			if (out[i] >= 0) close(out[i]);
			if (err[i] >= 0) close(err[i]);
		}
		close(exe);
		call_fail(c, ENT_WHY_SPAWN, "the node is out of file descriptors");
		return;
	}

	/* argv: the program's own name, the bundle's arguments, the caller's. */
	size_t argc = 1 + b->nargs + (size_t)c->args_n;
	char **argv = calloc(argc + 1, sizeof *argv);
	const char *base = strrchr(b->path, '/');
	argv[0] = (char *)(base ? base + 1 : b->path);
	for (uint32_t i = 0; i < b->nargs; i++)
		argv[1 + i] = b->args[i];
	for (int i = 0; i < c->args_n; i++)
		argv[1 + b->nargs + (size_t)i] = c->args[i];
	char rq[2 * ENT_REQID_LEN + 1];
	hex_encode(c->reqid, ENT_REQID_LEN, rq);
	snprintf(env[0], sizeof env[0], "BABL_REQUEST_ID=%s", rq);
	snprintf(env[1], sizeof env[1], "BABL_TIME=%" PRIu64, c->time_ms / 1000);
	snprintf(env[2], sizeof env[2], "BABL_TIME_MS=%" PRIu64, c->time_ms);
	snprintf(env[3], sizeof env[3], "BABL_SEED=%" PRIu64, c->seed);
	snprintf(env[4], sizeof env[4], "BABL_SERVICE=%s", c->svc->name);
	snprintf(env[5], sizeof env[5], "HOME=%s", c->workdir);
	snprintf(env[6], sizeof env[6], "TMPDIR=%s", c->workdir);
	char *envp[] = {env[0], env[1], env[2], env[3], env[4], env[5], env[6],
	    "PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", NULL};
	struct sbx_spec spec = {
		.path = b->path, .exe_fd = exe, .argv = argv, .envp = envp,
		.workdir = c->workdir, .slot = c->slot,
		.lim = {b->lim.mem_bytes, b->lim.cpu_secs, b->lim.fsize, b->lim.nproc, 256},
		.fd_in = in[0], .fd_out = out[1], .fd_err = err[1],
	};
	int rc;
	if (sbx_spawner(n->sbx)) {
		rc = sbx_start(n->sbx, &spec, c->slot);
		c->spawned = rc == 0;
	} else {
		rc = sbx_spawn(n->sbx, &spec, &c->pid);
	}
	free(argv);
	close(exe);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (rc) {
		close(in[1]);
		close(out[0]);
		close(err[0]);
		c->pid = 0;
		call_fail(c, ENT_WHY_SPAWN, "the node could not start the service: %s", babl_strerror(rc));
		return;
	}
	c->fd_in = in[1];
	c->fd_out = out[0];
	c->fd_err = err[0];
	set_nonblock(c->fd_in);
	set_nonblock(c->fd_out);
	set_nonblock(c->fd_err);
	if (call_watch(c, c->fd_in, CALL_RDY_IN) || call_watch(c, c->fd_out, CALL_RDY_OUT) ||
	    call_watch(c, c->fd_err, CALL_RDY_ERR)) {
		log_warn("epoll_ctl");
		call_close_fd(c, &c->fd_in);
		call_close_fd(c, &c->fd_out);
		call_close_fd(c, &c->fd_err);
		c->out_eof = c->err_eof = 1;
		call_kill(c, ENT_WHY_SPAWN, "the node cannot watch the service's pipes");
		return;
	}
	log_debug("call %" PRIu64 ": %s v%" PRIu64 " started, pid %d, slot %u",
	    c->index, c->svc->name, c->ver->n, (int)c->pid, c->slot);
	call_write_input(c);
}

/* ---- the Lua runtime: calls in worker processes ---- */

static void
lua_send(struct call *c, struct wbuf *b)
{
	struct lw *w = c->w;
	if (!w || w->dead)
		return;
	if (wb_raw(&w->q, b->p, b->len))
		fatalx("out of memory");
	/* (written once per loop turn, with whatever else is queued) */
}

/*
 * Write what is queued for worker w; while that empties its queue, move more
 * of its calls' applied input to it (lua_input stops at LW_QUEUE_HIGH).  A
 * queue the pipe cannot take now waits for POLLOUT.
 */
static void
lua_flush(struct node *n, struct lw *w)
{
	for (int round = 0; round < 4 && !w->dead; round++) {
		if (w->q.len > w->qoff && (lw_flush(w) || w->q.len > w->qoff))
			return;
		if (!w->starved)
			return;
		w->starved = 0;
		for (struct call *c = n->calls; c; c = c->next)
			if (c->w == w && c->inq)
				lua_input(c);
	}
}

/* Move applied input to the worker while its queue has room. */
static void
lua_input(struct call *c)
{
	struct lw *w = c->w;
	while (c->inq && w && !w->dead && w->q.len - w->qoff < LW_QUEUE_HIGH) {
		struct chunk *k = c->inq;
		size_t len = k->p->e.len - 8 - k->off;
		if (lw_queue_ref(w, WP_INPUT, c->index, k->p->buf + 8 + k->off, len))
			fatalx("out of memory");
		c->in_written += len;
		call_window_sub(c, len);
		c->inq = k->next;
		if (!c->inq)
			c->inqt = &c->inq;
		prop_free(k->p);
		free(k);
	}
	if (c->inq && w)
		w->starved = 1; /* (lua_flush feeds it once q has room) */
	if (!c->inq && c->eof_applied)
		call_close_stdin(c);
}

static struct lw *
lua_worker(struct node *n, struct call *c, char *why, size_t whylen)
{
	/*
	 * A call whose input is still coming has a worker to itself, so that
	 * a stream, or a caller that reads it slowly, holds up no other call.
	 * Calls whose whole input came with them (most small calls) share: a
	 * worker takes up to LW_SHARE of them at once, which it runs one after
	 * the other in one wake-up; they wait for each other only as long as
	 * each runs (its instruction budget bounds that): one whose caller
	 * stops reading pauses (lua_ack).  Idle workers of the version are
	 * reused.
	 */
	struct lw *idle = NULL;
	for (struct lw *w = n->workers; w; w = w->next) {
		if (w->dead || memcmp(w->vid, c->ver->vid, 32) != 0)
			continue;
		if (c->input_whole && w->ncalls && w->ncalls < LW_SHARE && !w->solo && !w->behind)
			return w;
		if (!w->ncalls && !idle)
			idle = w;
	}
	if (idle) {
		idle->solo = !c->input_whole;
		return idle;
	}
	int slot = slot_take(n);
	if (slot < 0) {
		snprintf(why, whylen, "no free slot for a Lua worker");
		return NULL;
	}
	struct lw *w = calloc(1, sizeof *w);
	if (!w)
		fatalx("out of memory");
	w->fd_to = w->fd_from = -1;
	memcpy(w->vid, c->ver->vid, 32);
	char dir[PATH_MAX];
	char hex[17];
	hex_encode(c->ver->vid, 8, hex);
	if ((size_t)snprintf(dir, sizeof dir, "%s/lua-%s-%u", n->run_dir, hex, (unsigned)slot) >= sizeof dir ||
	    (mkdir(dir, 0700) < 0 && errno != EEXIST) ||
	    (geteuid() == 0 && chown(dir, sbx_slot_uid(n->sbx, (unsigned)slot),
	        sbx_slot_gid(n->sbx, (unsigned)slot)) < 0)) {
		snprintf(why, whylen, "cannot create the Lua worker's directory");
		n->slots[slot] = 0;
		free(w);
		return NULL;
	}
	int rc = lw_start(w, n->sbx, n->lua_path, &c->ver->b, dir, (unsigned)slot);
	if (rc) {
		snprintf(why, whylen, "cannot start the Lua worker: %s", babl_strerror(rc));
		log_warnx("cannot start the Lua worker %s: %s", n->lua_path, babl_strerror(rc));
		n->slots[slot] = 0;
		lw_free(w);
		remove_tree(dir);
		return NULL;
	}
	log_debug("Lua worker for %s v%" PRIu64 " started, pid %d", c->svc->name, c->ver->n,
	    (int)w->pid);
	w->solo = !c->input_whole;
	w->next = n->workers;
	n->workers = w;
	return w;
}

static void
lua_start(struct call *c)
{
	struct node *n = c->n;
	char why[512], rq[2 * ENT_REQID_LEN + 1];
	struct wbuf b = {0};
	struct wp_call m = {0};
	c->lua = 1;
	struct lw *w = lua_worker(n, c, why, sizeof why);
	if (!w) {
		call_fail(c, ENT_WHY_SPAWN, "%s", why);
		return;
	}
	c->w = w;
	w->ncalls++;
	hex_encode(c->reqid, ENT_REQID_LEN, rq);
	m.call = c->index;
	m.service = (struct wire_str){c->svc->name, strlen(c->svc->name)};
	m.reqid = (struct wire_str){rq, strlen(rq)};
	m.time_ms = c->time_ms;
	m.seed = c->seed;
	m.nargs = (uint32_t)c->args_n;
	for (int i = 0; i < c->args_n; i++)
		m.args[i] = (struct wire_str){c->args[i], strlen(c->args[i])};
	if (wp_enc_call(&b, &m))
		fatalx("out of memory");
	lua_send(c, &b);
	wbuf_free(&b);
	lua_input(c);
}

/* Writes enter the cache when the outcome is proposed: later calls see them. */
static void
lua_outcome_proposed(struct call *c, const struct ent_outcome *o)
{
	struct rd r;
	int del;
	struct wire_str k, v;
	/* Later calls of this service waiting to read are looked at again by
	 * lua_housekeeping: each reads once no earlier call is running. */
	rd_init(&r, o->writes.p, o->writes.len);
	while (o->nwrites && wp_next_write(&r, &del, &k, &v) == 1)
		kvc_put(c->n->kvc, c->svc->sid, k.p, k.len, del, v.p, v.len, c->index);
}

/* 1 while an earlier call of the same service has not ended. */
static int
lua_earlier_running(struct call *c)
{
	for (struct call *x = c->n->calls; x; x = x->next)
		if (x != c && x->svc == c->svc && x->index < c->index && !x->outcome_proposed)
			return 1;
	/* Replicated: an earlier call's writes that wait to apply, too. */
	return kv_waiting(c->n, c->svc->sid, c->index);
}

struct keys_ctx {
	char **k;
	size_t *kl;
	int *del;
	size_t n, cap;
	size_t pl;
};

static void
keys_add(struct keys_ctx *x, const void *k, size_t kl, int del)
{
	for (size_t i = 0; i < x->n; i++) {
		if (x->kl[i] == kl && memcmp(x->k[i], k, kl) == 0) {
			x->del[i] = del;
			return;
		}
	}
	if (x->n == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 64;
		x->k = realloc(x->k, x->cap * sizeof *x->k);
		x->kl = realloc(x->kl, x->cap * sizeof *x->kl);
		x->del = realloc(x->del, x->cap * sizeof *x->del);
		if (!x->k || !x->kl || !x->del)
			fatalx("out of memory");
	}
	x->k[x->n] = malloc(kl ? kl : 1);
	memcpy(x->k[x->n], k, kl);
	x->kl[x->n] = kl;
	x->del[x->n] = del;
	x->n++;
}

static int
keys_from_store(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct keys_ctx *x = arg;
	(void)v;
	(void)vl;
	keys_add(x, (const uint8_t *)k + 32, kl - 32, 0);
	return x->n >= WP_MAX_KEYS;
}

static void
keys_from_cache(void *arg, const void *k, size_t kl, int deleted)
{
	keys_add(arg, k, kl, deleted);
}

static int
keycmp(const void *a, const void *b, size_t al, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

/* Answer a kv read from the cache of recent writes, else the store. */
static void
lua_kv_answer(struct call *c)
{
	struct node *n = c->n;
	struct wbuf b = {0};
	uint8_t key[32 + WP_MAX_KEY];
	memcpy(key, c->svc->sid, 32);
	memcpy(key + 32, c->kv_key, c->kv_kl);
	c->kv_wait = 0;
	if (!c->kv_keys) {
		int del;
		const void *v;
		size_t vl;
		struct store_txn *t = NULL;
		if (kvc_get(n->kvc, c->svc->sid, c->kv_key, c->kv_kl, &del, &v, &vl)) {
			wp_enc_kv(&b, c->index, !del, v, vl);
		} else if (store_begin(n->st, 0, &t) == 0) {
			int found = store_get(t, DB_KV, key, 32 + c->kv_kl, &v, &vl) == 0;
			wp_enc_kv(&b, c->index, found, v, found ? vl : 0);
			store_abort(t);
		} else {
			wp_enc_kv(&b, c->index, 0, NULL, 0);
		}
	} else {
		struct keys_ctx x = {0};
		struct store_txn *t;
		if (store_begin(n->st, 0, &t) == 0) {
			store_scan(t, DB_KV, key, 32 + c->kv_kl, 0, keys_from_store, &x);
			store_abort(t);
		}
		kvc_scan(n->kvc, c->svc->sid, c->kv_key, c->kv_kl, keys_from_cache, &x);
		/* Sort what is left bytewise. */
		for (size_t i = 1; i < x.n; i++)
			for (size_t j = i; j > 0 && keycmp(x.k[j - 1], x.k[j], x.kl[j - 1], x.kl[j]) > 0; j--) {
				char *tk = x.k[j]; x.k[j] = x.k[j - 1]; x.k[j - 1] = tk;
				size_t tl = x.kl[j]; x.kl[j] = x.kl[j - 1]; x.kl[j - 1] = tl;
				int td = x.del[j]; x.del[j] = x.del[j - 1]; x.del[j - 1] = td;
			}
		size_t mark;
		uint32_t count = 0;
		wp_enc_keys_begin(&b, c->index, &mark);
		for (size_t i = 0; i < x.n; i++) {
			if (!x.del[i]) {
				wp_enc_keys_add(&b, x.k[i], x.kl[i]);
				count++;
			}
			free(x.k[i]);
		}
		wp_enc_keys_end(&b, mark, count);
		free(x.k);
		free(x.kl);
		free(x.del);
	}
	lua_send(c, &b);
	wbuf_free(&b);
}

/*
 * A call's kv reads see the writes of every earlier call of its service:
 * a read waits until those have ended.  Replicas apply the same rule to
 * the same log, so they read the same values.
 */
static void
lua_kv_request(struct call *c, const struct wp_kvget *m)
{
	free(c->kv_key);
	c->kv_key = malloc(m->key.len ? m->key.len : 1);
	if (!c->kv_key)
		fatalx("out of memory");
	memcpy(c->kv_key, m->key.p, m->key.len);
	c->kv_kl = m->key.len;
	c->kv_keys = m->keys;
	c->kv_used = 1;
	if (c->rerun) {
		/* Its first run may have seen other kv state: it stays cut short. */
		call_kill(c, ENT_WHY_RESTART, NULL);
		return;
	}
	if (lua_earlier_running(c)) {
		c->kv_wait = 1;
		return;
	}
	lua_kv_answer(c);
}

/*
 * Tell c's worker how much of c's output has been passed on, once that is
 * half a window (WP_OUT_WINDOW) and its caller is not far behind in reading
 * it (or has gone): a call whose output is not acknowledged pauses in its
 * worker, so a caller that stops reading holds up its own call only, not
 * the others that share the worker.  lua_housekeeping looks again each turn.
 */
static void
lua_ack(struct call *c)
{
	if (c->ack_owed < WP_OUT_WINDOW / 2 || !c->w || c->w->dead || c->exited ||
	    (c->sess && c->sess->sqn > LW_SEND_BEHIND))
		return;
	struct wbuf b = {0};
	uint8_t n[8];
	be64_put(n, c->ack_owed);
	if (wp_enc_ref(&b, WP_ACK, c->index, 0, n, 8))
		fatalx("out of memory");
	c->ack_owed = 0;
	lua_send(c, &b);
	wbuf_free(&b);
}

static void
lua_frame(void *arg, struct lw *w, const struct wire_frame *f)
{
	struct node *n = arg;
	struct wp_ref r;
	struct wp_kvget kg;
	struct wp_done d;
	uint64_t id;
	if (f->type == WP_OUT && wp_dec_ref(f, &r) == 0)
		id = r.call;
	else if (f->type == WP_KVGET && wp_dec_kvget(f, &kg) == 0)
		id = kg.call;
	else if (f->type == WP_DONE && wp_dec_done(f, &d) == 0)
		id = d.call;
	else {
		log_warnx("Lua worker %d sent a malformed message; killing it", (int)w->pid);
		lw_kill(w);
		return;
	}
	struct call *c = call_by_index(n, id);
	if (!c || c->w != w || c->exited)
		return;
	switch (f->type) {
	case WP_OUT: {
		int stream = r.stream == 2 ? 2 : 1;
		call_output_seen(c, stream, (const uint8_t *)r.bytes.p, r.bytes.len);
		if (c->sess && c->verify_k) {
			call_hold(c, stream, (const uint8_t *)r.bytes.p, r.bytes.len);
		} else if (c->sess) {
			struct wbuf b = {0};
			if (wire_enc_bytes(&b, stream == 1 ? WIRE_OUT : WIRE_ERRB, r.bytes.p, r.bytes.len))
				fatalx("out of memory");
			queue_wbuf(c->sess, &b);
		}
		c->ack_owed += r.bytes.len;
		lua_ack(c);
		break;
	}
	case WP_KVGET:
		lua_kv_request(c, &kg);
		break;
	case WP_DONE:
		c->exited = 1;
		if (d.status == 128 + SIGKILL || c->killed)
			c->status = SIGKILL; /* as a process killed by SIGKILL */
		else
			c->status = (d.status & 255) << 8;
		if (d.status == 0 && d.nwrites) {
			wbuf_reset(&c->writes);
			if (wb_raw(&c->writes, d.writes.p, d.writes.len))
				fatalx("out of memory");
			c->nwrites = d.nwrites;
		}
		call_maybe_finish(c);
		break;
	}
}

/* A worker is gone: the calls it ran end, its state changes unapplied. */
static void
lua_worker_gone(struct node *n, struct lw *w)
{
	for (struct call *c = n->calls; c; c = c->next) {
		if (c->w != w || c->exited)
			continue;
		if (!c->why) {
			c->why = ENT_WHY_WORKER;
			snprintf(c->msg, sizeof c->msg, "the Lua worker running it died or was "
			    "stopped (the node's log says why); none of its changes were kept");
		}
		c->exited = 1;
		c->status = SIGKILL;
		c->nwrites = 0;
		call_maybe_finish(c);
	}
}

/* Reap workers that died or idled out. */
static void
lua_housekeeping(struct node *n)
{
	int64_t t = now_ms();
	for (struct call *c = n->calls; c; c = c->next) {
		if (c->kv_wait && !lua_earlier_running(c))
			lua_kv_answer(c);
		if (c->lua && c->exited && !c->outcome_proposed)
			call_maybe_finish(c);
		if (c->ack_owed)
			lua_ack(c);
		if (c->lua && c->kill_sent && !c->exited && c->w && t > c->kill_deadline) {
			log_warnx("Lua worker %d did not end call %" PRIu64 " in time; killing it",
			    (int)c->w->pid, c->index);
			lw_kill(c->w);
		}
	}
	for (struct lw **pp = &n->workers; *pp;) {
		struct lw *w = *pp;
		if (!w->dead && !w->ncalls && t - w->idle_since > LW_IDLE_MS && !n->stopping)
			lw_kill(w);
		if (w->dead && !w->exited && w->pid > 0) {
			kill(-w->pid, SIGKILL);
		}
		if (w->dead)
			lua_worker_gone(n, w);
		if (w->dead && w->exited && !w->ncalls) {
			*pp = w->next;
			n->slots[w->slot] = 0;
			remove_tree(w->workdir);
			lw_free(w);
			continue;
		}
		pp = &w->next;
	}
}

/* ---- handling requests ---- */

static void
start_replay(struct session *s, const uint8_t key[32], const uint8_t *rec)
{
	s->replaying = 1;
	memcpy(s->rkey, key, 32);
	s->rkind = rec[8];
	s->rcode = (int32_t)be32_get(rec + 9);
	s->rchunks = be64_get(rec + 13);
	s->rcall = be64_get(rec + 21);
	s->rseq = 0;
	replay_pump(s);
}

/* Send the next recorded chunks of an --id outcome, then its EXIT. */
static void
replay_pump(struct session *s)
{
	struct store_txn *t;
	if (s->dead || s->sqn >= 2)
		return;
	if (store_begin(s->n->st, 0, &t)) {
		send_error(s, BABL_EIO, "cannot read the recorded outcome");
		s->replaying = 0;
		return;
	}
	while (s->sqn < 2 && s->rseq < s->rchunks) {
		uint8_t key[48];
		const void *v;
		size_t vl;
		idout_key(key, s->rkey, s->rcall, s->rseq++);
		if (store_get(t, DB_IDOUT, key, 48, &v, &vl) || vl < 1) {
			if (s->rchunks == UINT64_MAX) /* recorded through the log: until the last */
				s->rseq = s->rchunks;
			continue;
		}
		const uint8_t *p = v;
		struct wbuf b = {0};
		if (wire_enc_bytes(&b, p[0] == 1 ? WIRE_OUT : WIRE_ERRB, p + 1, vl - 1))
			fatalx("out of memory");
		queue_wbuf(s, &b);
	}
	store_abort(t);
	if (s->rseq >= s->rchunks && s->replaying) {
		s->replaying = 0;
		send_exit(s, s->rkind, s->rcode, NULL);
	}
}

/* Check the next span of the log for a `babl verify` under way. */
static void
verify_pump(struct session *s)
{
	uint64_t next, count, bad;
	char why[256], line[400];
	if (s->dead) {
		s->verifying = 0;
		return;
	}
	int rc = store_verify_span(s->n->st, s->verifying, 4u << 20, &next, &count, &bad,
	    why, sizeof why);
	s->verified += count;
	if (rc == 0 && next) {
		s->verifying = next;
		return;
	}
	s->verifying = 0;
	if (rc == 0)
		snprintf(line, sizeof line, "log verified: %" PRIu64
		    " entries, checksums and hash chain intact\n", s->verified);
	else
		snprintf(line, sizeof line, "log verification FAILED: %s\n",
		    rc == BABL_ECORRUPT ? why : babl_strerror(rc));
	send_text(s, line, strlen(line));
	/* Then what guards found. */
	struct text t = {0};
	uint64_t nrep = reports(s->n, s->verify_name, &t, 0);
	if (nrep) {
		text_add(&t, "%" PRIu64 " divergence report%s\n", nrep, nrep == 1 ? "" : "s");
		send_text(s, t.p, t.len);
	} else {
		snprintf(line, sizeof line, "no divergence reported%s%s\n", s->verify_name[0] ? " for " : "",
		    s->verify_name);
		send_text(s, line, strlen(line));
	}
	free(t.p);
	send_exit(s, WIRE_EXITED, rc || nrep ? 1 : 0, NULL);
}

/*
 * A log export streams the stored entries as they are, a few at a time as
 * the client reads them (ENTRY_FILE_MAGIC was sent first).
 */
static void
export_pump(struct session *s)
{
	struct store_txn *t;
	uint64_t tail;
	if (s->dead || s->sqn >= 2)
		return;
	store_tail(s->n->st, &tail, NULL, NULL);
	if (store_begin(s->n->st, 0, &t)) {
		s->exporting = 0;
		send_error(s, BABL_EIO, "export: cannot read the log");
		return;
	}
	struct wbuf b = {0};
	while (s->exporting <= tail && b.len < WIRE_CHUNK) {
		uint8_t k[8];
		const void *v;
		size_t vl;
		be64_put(k, s->exporting);
		if (store_get(t, DB_LOG, k, 8, &v, &vl)) {
			uint64_t missing = s->exporting;
			store_abort(t);
			wbuf_free(&b);
			s->exporting = 0;
			send_error(s, BABL_ECORRUPT, "export: entry %" PRIu64 " is missing", missing);
			return;
		}
		if (wb_u32(&b, (uint32_t)vl) || wb_raw(&b, v, vl))
			fatalx("out of memory");
		s->exporting++;
	}
	store_abort(t);
	send_text(s, (const char *)b.p, b.len);
	wbuf_free(&b);
	if (s->exporting > tail) {
		s->exporting = 0;
		send_exit(s, WIRE_EXITED, 0, NULL);
	}
}

/* An --id call: run once; a retry gets the recorded outcome. */
static int
idem_lookup(struct session *s, const uint8_t key[32])
{
	struct node *n = s->n;
	for (struct idem_pending *ip = n->idem_pending; ip; ip = ip->next) {
		if (memcmp(ip->ikey, key, 32) == 0) {
			memcpy(s->rkey, key, 32);
			s->in_barrier = 1;
			s->wnext = ip->waiters;
			ip->waiters = s;
			return 1;
		}
	}
	for (struct call *c = n->calls; c; c = c->next) {
		if (c->idkey && memcmp(c->ikey, key, 32) == 0) {
			s->waiting = c;
			memcpy(s->rkey, key, 32);
			s->wnext = c->waiters;
			c->waiters = s;
			return 1;
		}
	}
	struct store_txn *t;
	const void *v;
	size_t vl;
	if (store_begin(n->st, 0, &t))
		return 0;
	int found = store_get(t, DB_IDEM, key, 32, &v, &vl) == 0 && vl >= 29;
	if (found) {
		uint8_t rec[64];
		memcpy(rec, v, vl < sizeof rec ? vl : sizeof rec);
		store_abort(t);
		if (be64_get(rec) + n->cfg->id_retention_ms < wall_ms())
			return 0; /* expired: run again */
		start_replay(s, key, rec);
		return 1;
	}
	store_abort(t);
	return 0;
}

static void
handle_call(struct session *s, const struct wire_frame *f)
{
	struct node *n = s->n;
	struct wire_call m;
	char target[WIRE_MAX_STR + 1], why[512];
	struct svc *svc;
	struct svc_version *ver;
	if (wire_dec_call(f, &m) || m.target.len > BUNDLE_MAX_NAME + 70) {
		send_error(s, BABL_EPROTO, "malformed call");
		return;
	}
	memcpy(target, m.target.p, m.target.len);
	target[m.target.len] = 0;
	s->again = !!(m.flags & WIRE_CALL_AGAIN);
	s->input_open = 1;
	s->ncalls++;
	if (reg_resolve(&n->reg, target, &svc, &ver, why, sizeof why)) {
		send_error(s, BABL_ENOSERVICE, "%s", why);
		return;
	}
	if (n->stopping || n->failed) {
		send_error(s, BABL_EBUSY, "%s", n->failed ? failed_text(n) : "node is shutting down");
		return;
	}
	uint8_t ikey[32];
	char *idk = NULL;
	if (m.idkey.len) {
		if (!(idk = wire_strdup(m.idkey)) || memchr(m.idkey.p, 0, m.idkey.len)) {
			free(idk);
			send_error(s, BABL_EPROTO, "malformed --id");
			return;
		}
		idem_key(svc->sid, idk, ikey);
		s->asked = 1; /* (a replay may end, and clear it, at once) */
		if (idem_lookup(s, ikey)) {
			free(idk);
			return;
		}
		s->asked = 0;
	}
	for (uint32_t i = 0; i < m.nargs; i++) {
		if (memchr(m.args[i].p, 0, m.args[i].len)) {
			free(idk);
			send_error(s, BABL_EINPUT, "argument %u holds a NUL byte", i + 1);
			return;
		}
	}
	unsigned vk = m.flags & WIRE_CALL_VERIFY;
	unsigned nex = vk ? executing_nodes(n) : 0;
	if (vk > nex) {
		free(idk);
		send_error(s, BABL_EUSAGE, "--verify %u: the mesh has %u executing node%s", vk, nex,
		    nex == 1 ? "" : "s");
		return;
	}
	int slot = slot_take(n);
	if (slot < 0) {
		free(idk);
		send_error(s, BABL_EBUSY, "node at its limit of %u concurrent calls; try again",
		    n->cfg->max_calls);
		return;
	}
	struct call *c = call_new(n, svc, ver, (unsigned)slot);
	c->sess = s;
	c->idkey = idk;
	if (idk)
		memcpy(c->ikey, ikey, 32);
	c->timeout_ms = m.timeout_ms;
	c->verify_k = m.flags & WIRE_CALL_VERIFY;
	c->time_ms = wall_ms();
	uint8_t rnd[sizeof c->seed + sizeof c->reqid];
	randombytes_buf(rnd, sizeof rnd);
	memcpy(&c->seed, rnd, sizeof c->seed);
	memcpy(c->reqid, rnd + sizeof c->seed, sizeof c->reqid);
	c->args_n = (int)m.nargs;
	c->args = calloc(m.nargs + 1, sizeof *c->args);
	for (uint32_t i = 0; i < m.nargs; i++)
		c->args[i] = wire_strdup(m.args[i]);
	/* Propose the CALL entry: time, seed and request id fixed now. */
	struct ent_call ec = {0};
	struct wbuf b = {0};
	memcpy(ec.sid, svc->sid, 32);
	memcpy(ec.vid, ver->vid, 32);
	ec.time_ms = c->time_ms;
	ec.seed = c->seed;
	memcpy(ec.reqid, c->reqid, ENT_REQID_LEN);
	ec.timeout_ms = m.timeout_ms;
	ec.idkey = m.idkey;
	ec.nargs = m.nargs;
	for (uint32_t i = 0; i < m.nargs; i++)
		ec.args[i] = m.args[i];
	if (ent_enc_call(&b, &ec))
		fatalx("out of memory");
	c->index = n->cluster ? 0 : n->next_index;
	n->calls_total++;
	s->call = c;
	s->asked = 1;
	propose_wbuf(n, ENT_CALL, &b, c);
}

static void
handle_data(struct session *s, const struct wire_frame *f)
{
	struct call *c = s->call;
	if (!c) {
		if (s->asked || s->input_open)
			return; /* a retried --id call, or one that ended: input not needed */
		send_error(s, BABL_EPROTO, "data before a call");
		return;
	}
	if (c->eof_proposed) {
		send_error(s, BABL_EPROTO, "data after end of input");
		call_lost_session(c);
		return;
	}
	if (f->len == 0 || c->cancel_proposed || c->outcome_proposed || c->exited ||
	    (c->state == C_RUNNING && (c->lua ? c->eof_sent : c->fd_in < 0)))
		return; /* the service no longer reads its input */
	if (c->in_proposed + f->len > c->ver->b.lim.max_input) {
		call_propose_cancel(c, ENT_WHY_INPUT_LIMIT, NULL);
		snprintf(c->msg, sizeof c->msg, "input exceeds %s's limit of %" PRIu64 " bytes",
		    c->svc->name, c->ver->b.lim.max_input);
		return;
	}
	uint8_t *p = malloc(8 + f->len);
	if (!p)
		fatalx("out of memory");
	ent_input_prefix(p, c->index);
	memcpy(p + 8, f->p, f->len);
	c->in_proposed += f->len;
	call_window_add(c, f->len);
	propose(s->n, ENT_INPUT, p, 8 + f->len, c);
}

/* ---- queries ---- */

static void
fmt_time(uint64_t ms, char *buf, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *
kind_name(const struct bundle *b)
{
	return b->kind == BUNDLE_LUA ? "lua" : "native";
}

static void
q_ls(struct node *n, struct text *t)
{
	if (!n->reg.n) {
		text_add(t, "no services deployed; deploy one with: babl deploy NAME -- PROGRAM\n");
		return;
	}
	text_add(t, "%-20s %-7s %4s  %-20s  %s\n", "NAME", "KIND", "VER", "DEPLOYED", "RUNS");
	/* Sorted by name. */
	struct svc *done = NULL;
	for (size_t k = 0; k < n->reg.n; k++) {
		struct svc *best = NULL;
		for (struct svc *s = n->reg.list; s; s = s->next)
			if ((!done || strcmp(s->name, done->name) > 0) &&
			    (!best || strcmp(s->name, best->name) < 0))
				best = s;
		if (!best)
			break;
		struct svc_version *v = svc_head(best);
		char tm[32], what[160];
		fmt_time(v->time_ms, tm, sizeof tm);
		if (v->b.kind == BUNDLE_NATIVE) {
			int off = snprintf(what, sizeof what, "%s", v->b.path);
			for (uint32_t i = 0; i < v->b.nargs && off < (int)sizeof what; i++)
				off += snprintf(what + off, sizeof what - (size_t)off, " %s", v->b.args[i]);
		} else {
			snprintf(what, sizeof what, "%s", v->b.script);
		}
		text_add(t, "%-20s %-7s %4" PRIu64 "  %-20s  %s\n", best->name, kind_name(&v->b),
		    v->n, tm, what);
		done = best;
	}
}

/* A service's key-value state in short: its keys, and BLAKE2b-256 over
 * them in key order, each as u32 length, key, u32 length, value. */
struct kv_digest {
	crypto_generichash_state h;
	uint64_t keys;
};

static int
kv_digest_add(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct kv_digest *x = arg;
	uint8_t len[4];
	if (kl < 32)
		return 0;
	be32_put(len, (uint32_t)(kl - 32));
	crypto_generichash_update(&x->h, len, 4);
	crypto_generichash_update(&x->h, (const uint8_t *)k + 32, kl - 32);
	be32_put(len, (uint32_t)vl);
	crypto_generichash_update(&x->h, len, 4);
	crypto_generichash_update(&x->h, v, vl);
	x->keys++;
	return 0;
}

/* The state as the store holds it once the writes applied so far land. */
static int
kv_digest(struct node *n, const uint8_t sid[32], uint64_t *keys, uint8_t d[32])
{
	struct kv_digest x = {.keys = 0};
	struct store_txn *t;
	commit_sync(n->cm);
	if (store_begin(n->st, 0, &t))
		return BABL_EIO;
	crypto_generichash_init(&x.h, NULL, 0, 32);
	store_scan(t, DB_KV, sid, 32, 0, kv_digest_add, &x);
	store_abort(t);
	crypto_generichash_final(&x.h, d, 32);
	*keys = x.keys;
	return 0;
}

static int
q_info(struct node *n, const char *name, struct text *t)
{
	struct svc *s = reg_by_name(&n->reg, name);
	char hex[65], tm[32];
	uint8_t kd[32];
	uint64_t keys;
	int lua = 0;
	if (!s)
		return BABL_ENOSERVICE;
	text_add(t, "name:       %s\n", s->name);
	hex_encode(s->owner, 32, hex);
	text_add(t, "owner:      %s\n", hex);
	hex_encode(s->sid, 32, hex);
	text_add(t, "service id: %s\n", hex);
	for (uint32_t i = 0; i < s->nver; i++)
		lua |= s->v[i]->b.kind == BUNDLE_LUA;
	if (lua && kv_digest(n, s->sid, &keys, kd) == 0) {
		hex_encode(kd, 32, hex);
		text_add(t, "kv state:   %" PRIu64 " key%s, BLAKE2b-256 %s\n", keys, keys == 1 ? "" : "s",
		    hex);
	}
	text_add(t, "versions:\n");
	for (uint32_t i = 0; i < s->nver; i++) {
		struct svc_version *v = s->v[i];
		const struct bundle *b = &v->b;
		hex_encode(v->vid, 32, hex);
		fmt_time(v->time_ms, tm, sizeof tm);
		text_add(t, "  %3" PRIu64 "  %s  %s  log %" PRIu64 "  %s", v->n, hex, tm,
		    v->index, kind_name(b));
		if (b->kind == BUNDLE_NATIVE) {
			char ph[17];
			hex_encode(b->prog_hash, 8, ph);
			text_add(t, " %s", b->path);
			for (uint32_t k = 0; k < b->nargs; k++)
				text_add(t, " %s", b->args[k]);
			text_add(t, " (program %s...)", ph);
		} else {
			text_add(t, " %s (%zu bytes)", b->script, b->source_len);
		}
		text_add(t, "\n       limits: timeout %us, cpu %us, mem %" PRIu64 " MiB, input %" PRIu64
		    " MiB, file %" PRIu64 " MiB, nproc %u\n",
		    b->lim.timeout_ms / 1000, b->lim.cpu_secs, b->lim.mem_bytes >> 20,
		    b->lim.max_input >> 20, b->lim.fsize >> 20, b->lim.nproc);
	}
	return 0;
}

/* A stored call record: see record_call. */
#define CALLREC_LEN 63

struct logq {
	uint8_t rec[100][CALLREC_LEN];
	uint64_t idx[100];
	int n;
};

static int
collect_call(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct logq *q = arg;
	if (kl != 40 || vl != CALLREC_LEN)
		return 0;
	memcpy(q->rec[q->n], v, CALLREC_LEN);
	q->idx[q->n] = be64_get((const uint8_t *)k + 32);
	return ++q->n == 100;
}

static const char *
why_text(uint8_t why)
{
	switch (why) {
	case ENT_WHY_TIMEOUT: return "timeout";
	case ENT_WHY_CANCELLED: return "cancelled";
	case ENT_WHY_INPUT_LIMIT: return "input limit";
	case ENT_WHY_SPAWN: return "not started";
	case ENT_WHY_PROGRAM: return "program mismatch";
	case ENT_WHY_RESTART: return "node restarted";
	case ENT_WHY_WORKER: return "Lua worker died";
	default: return NULL;
	}
}

static int
q_log(struct node *n, const char *name, struct text *t)
{
	struct svc *s = reg_by_name(&n->reg, name);
	struct store_txn *tx;
	if (!s)
		return BABL_ENOSERVICE;
	/* Records of calls that just ended may still be on their way. */
	propose_flush(n);
	commit_sync(n->cm);
	struct logq *q = calloc(1, sizeof *q);
	if (!q || store_begin(n->st, 0, &tx)) {
		free(q);
		return BABL_EIO;
	}
	store_scan(tx, DB_CALLS, s->sid, 32, 1, collect_call, q);
	store_abort(tx);
	text_add(t, "%-8s %-20s %-32s %3s %10s %10s  %s\n", "INDEX", "TIME", "REQUEST", "VER",
	    "IN", "OUT", "OUTCOME");
	for (int i = q->n - 1; i >= 0; i--) {
		const uint8_t *r = q->rec[i];
		char tm[32], rq[33], oc[64];
		fmt_time(be64_get(r), tm, sizeof tm);
		hex_encode(r + 8, 16, rq);
		int kind = r[56], code = (int32_t)be32_get(r + 57);
		const char *w = why_text(r[61]);
		if (kind == WIRE_SIGNALED)
			snprintf(oc, sizeof oc, "signal %d%s%s%s", code, w ? " (" : "", w ? w : "", w ? ")" : "");
		else
			snprintf(oc, sizeof oc, "exit %d%s%s%s", code, w ? " (" : "", w ? w : "", w ? ")" : "");
		text_add(t, "%-8" PRIu64 " %-20s %-32s %3" PRIu64 " %10" PRIu64 " %10" PRIu64 "  %s\n",
		    q->idx[i], tm, rq, be64_get(r + 48), be64_get(r + 24), be64_get(r + 32), oc);
	}
	if (!q->n)
		text_add(t, "(no calls recorded)\n");
	free(q);
	return 0;
}

static void
q_status(struct node *n, struct text *t)
{
	uint64_t tail, txns, ents;
	store_tail(n->st, &tail, NULL, NULL);
	commit_stats(n->cm, &txns, &ents);
	unsigned nsess = 0;
	for (struct session *s = n->sessions; s; s = s->next)
		nsess++;
	int64_t up = (now_ms() - n->started_ms) / 1000;
	text_add(t, "node:        %s (pid %d)\n", n->name, (int)getpid());
	if (n->cluster) {
		struct raft_status st;
		const char *lurl = "";
		raft_status(n->raft, &st);
		struct raft_conf conf;
		unsigned voters = 0;
		raft_conf(n->raft, &conf);
		for (uint32_t i = 0; i < conf.n; i++)
			voters += conf.s[i].voter;
		for (int i = 0; i < n->nmem; i++)
			if (n->mem[i].id == st.lead)
				lurl = n->mem[i].client;
		text_add(t, "mesh node:   %" PRIu64 " (%s); %u voter%s, %u learner%s\n", n->cfg->node_id,
		    raft_conf_role(&conf, n->cfg->node_id) == 1 ? "voter" :
		    raft_conf_role(&conf, n->cfg->node_id) == 0 ? "learner" : "not a member yet",
		    voters, voters == 1 ? "" : "s", conf.n - voters, conf.n - voters == 1 ? "" : "s");
		text_add(t, "role:        %s%s, term %" PRIu64 "\n", raft_role_name(st.role),
		    n->cfg->guard ? " (guard)" : "", st.term);
		if (st.lead)
			text_add(t, "leader:      node %" PRIu64 " (%s)\n", st.lead, lurl);
		else
			text_add(t, "leader:      none (an election is under way)\n");
		text_add(t, "raft:        commit %" PRIu64 ", applied %" PRIu64 ", last %" PRIu64
		    ", lag %" PRIu64 "\n", st.commit, n->applied, st.last_index,
		    st.commit > n->applied ? st.commit - n->applied : 0);
		if (n->px)
			text_add(t, "forwarding:  %u client(s) to the leader\n", proxy_set_count(n->px));
		for (int i = 0; i < n->nmem; i++)
			if (!n->mem[i].gone)
				text_add(t, "member:      %" PRIu64 " %s\n", n->mem[i].id, n->mem[i].client);
	} else {
		text_add(t, "role:        single node (leader), term 1\n");
	}
	text_add(t, "data:        %s (%.1f MiB)\n", n->data, store_used_bytes(n->st) / 1048576.0);
	for (int i = 0; i < n->nlst; i++)
		text_add(t, "listening:   %s\n", n->lst[i].url);
	text_add(t, "log:         %" PRIu64 " entries, applied %" PRIu64 "\n", tail, n->applied);
	text_add(t, "commits:     %" PRIu64 " durable transactions, %" PRIu64 " entries since start\n",
	    txns, ents);
	text_add(t, "services:    %zu\n", n->reg.n);
	text_add(t, "calls:       %u running (limit %u), %" PRIu64 " since start\n", n->ncalls,
	    n->cfg->max_calls, n->calls_total);
	text_add(t, "connections: %u\n", nsess);
	text_add(t, "confinement: %s\n", sbx_describe(n->sbx));
	text_add(t, "uptime:      %" PRId64 "d %02" PRId64 ":%02" PRId64 ":%02" PRId64 "\n",
	    up / 86400, up / 3600 % 24, up / 60 % 60, up % 60);
	if (n->failed)
		text_add(t, "state:       FAILED: the log cannot be written%s; see the node's log\n",
		    store_disk_full(n->st) ? " (its disk is full)" : "");
	{
		uint64_t self = n->cluster ? n->cfg->node_id : 1;
		uint64_t mine = reports(n, NULL, NULL, self);
		text_add(t, "diverged:    %" PRIu64 " call%s (reports naming this node; babl verify lists them)\n",
		    mine, mine == 1 ? "" : "s");
	}
}

static void q_node(struct session *s, const char *verb, const char *args);
static void q_digests(struct session *s, uint8_t what, const void *p, size_t len);

static void apply_done(struct node *n);

static void
handle_query(struct session *s, const struct wire_frame *f)
{
	struct node *n = s->n;
	struct wire_query_msg q;
	struct text t = {0};
	char arg[WIRE_MAX_STR + 1];
	int rc = 0;
	if (wire_dec_query(f, &q)) {
		send_error(s, BABL_EPROTO, "malformed query");
		return;
	}
	memcpy(arg, q.arg.p, q.arg.len);
	arg[q.arg.len] = 0;
	s->asked = 1;
	if (n->early_open && q.what != WIRE_Q_HEAD) {
		/* A caller that had its EXIT early finds its call in the log:
		 * the OUTCOMEs still on their way are made durable first. */
		propose_flush(n);
		if (commit_sync(n->cm) == 0)
			apply_done(n);
	}
	switch (q.what) {
	case WIRE_Q_LS:
		q_ls(n, &t);
		break;
	case WIRE_Q_INFO:
		rc = q_info(n, arg, &t);
		break;
	case WIRE_Q_LOG:
		rc = q_log(n, arg, &t);
		break;
	case WIRE_Q_STATUS:
		q_status(n, &t);
		break;
	case WIRE_Q_HEAD: {
		if (s->headed) {
			send_error(s, BABL_EPROTO, "one HEAD query per connection, then DEPLOY");
			return;
		}
		s->headed = 1;
		struct svc *sv = reg_by_name(&n->reg, arg);
		uint8_t zero[32] = {0};
		struct wbuf b = {0};
		struct svc_version *h = sv ? svc_head(sv) : NULL;
		wire_enc_head(&b, h ? h->n : 0, h ? h->vid : zero, sv ? sv->owner : zero);
		queue_wbuf(s, &b);
		s->asked = 0; /* a DEPLOY follows on this connection */
		return;
	}
	case WIRE_Q_EXPORT: {
		char *end;
		unsigned long long from = strtoull(arg[0] ? arg : "1", &end, 10);
		if (*end || from == 0) {
			send_error(s, BABL_EUSAGE, "export: --from takes a log index from 1");
			return;
		}
		send_text(s, ENTRY_FILE_MAGIC, 8);
		s->exporting = from;
		export_pump(s);
		return;
	}
	case WIRE_Q_DIGESTS:
	case WIRE_Q_REPORT:
		q_digests(s, q.what, q.arg.p, q.arg.len);
		return;
	case WIRE_Q_NODE: {
		char arg2[WIRE_MAX_STR + 1];
		memcpy(arg2, q.arg2.p, q.arg2.len);
		arg2[q.arg2.len] = 0;
		q_node(s, arg, arg2);
		return;
	}
	case WIRE_Q_VERIFY:
		/* A span at a time, between other work (verify_pump). */
		snprintf(s->verify_name, sizeof s->verify_name, "%.*s", (int)(sizeof s->verify_name - 1), arg);
		s->verifying = 1;
		s->verified = 0;
		free(t.p);
		return;
	}
	if (rc == BABL_ENOSERVICE) {
		free(t.p);
		send_error(s, rc, "no such service: %s", arg);
		return;
	}
	if (rc) {
		free(t.p);
		send_error(s, rc, "%s", babl_strerror(rc));
		return;
	}
	send_text(s, t.p, t.len);
	free(t.p);
	send_exit(s, WIRE_EXITED, 0, NULL);
}

static void
handle_deploy(struct session *s, const struct wire_frame *f)
{
	struct node *n = s->n;
	struct wire_deploy d;
	uint8_t sid[32], vid[32];
	char why[512];
	s->asked = 1;
	if (wire_dec_deploy(f, &d)) {
		send_error(s, BABL_EPROTO, "malformed deploy");
		return;
	}
	int rc = reg_check(&n->reg, &d, sid, vid, why, sizeof why);
	if (rc) {
		log_info("session %" PRIu64 ": deploy refused: %s", s->id, why);
		send_error(s, rc == BABL_EPROTO ? BABL_EINPUT : rc, "%s%s",
		    rc == BABL_EINPUT ? "" : "deploy refused: ", why);
		return;
	}
	if (n->stopping || n->failed) {
		send_error(s, BABL_EBUSY, "%s", n->failed ? failed_text(n) :
		    "node is not accepting deploys now");
		return;
	}
	struct wbuf b = {0};
	if (ent_enc_deploy(&b, wall_ms(), &d) != 0)
		fatalx("out of memory");
	s->deploy_index = n->cluster ? 0 : n->next_index;
	s->pinned++;
	propose_wbuf(n, ENT_DEPLOY, &b, s);
}

static void session_handoff(struct session *s);

static void
handle_frame(struct session *s, const struct wire_frame *f)
{
	if (!s->greeted) {
		struct wire_hello h;
		struct wbuf b = {0};
		if (f->type != WIRE_HELLO || wire_dec_hello(f, &h)) {
			log_info("session %" PRIu64 ": no HELLO (not a babl client?); closing it", s->id);
			send_error(s, BABL_EPROTO, "expected HELLO");
			return;
		}
		if (h.version != WIRE_VERSION) {
			log_info("session %" PRIu64 ": protocol version %u is not supported; closing it",
			    s->id, h.version);
			send_error(s, BABL_EPROTO, "protocol version %u is not supported (this node speaks %d)",
			    h.version, WIRE_VERSION);
			return;
		}
		s->greeted = 1;
		wire_enc_welcome(&b, s->n->name);
		queue_wbuf(s, &b);
		return;
	}
	/* A follower does not propose: the leader takes calls and deploys. */
	if ((f->type == WIRE_CALL || f->type == WIRE_DEPLOY || f->type == WIRE_QUERY) &&
	    !s->asked && s->n->cluster && !s->n->leader) {
		struct wire_query_msg q;
		if (s->link) { /* a channel cannot be handed over alone */
			const char *url = leader_url(s->n);
			send_error(s, BABL_EUNREACH, "this node is a follower; send channels to the "
			    "leader%s%s", url ? " at " : " (none now)", url ? url : "");
			return;
		}
		if (f->type != WIRE_QUERY || (wire_dec_query(f, &q) == 0 && (q.what == WIRE_Q_NODE ||
		    q.what == WIRE_Q_DIGESTS || q.what == WIRE_Q_REPORT))) {
			session_handoff(s);
			return;
		}
	}
	switch (f->type) {
	case WIRE_CALL:
		if (s->asked || s->input_open)
			break;
		handle_call(s, f);
		return;
	case WIRE_DATA:
		handle_data(s, f);
		return;
	case WIRE_EOF:
		if (!s->call && s->input_open) { /* of a call that has ended */
			s->input_open = 0;
			return;
		}
		s->input_open = 0;
		if (!s->call && !s->asked) {
			log_info("session %" PRIu64 ": end of input before a call; closing it", s->id);
			send_error(s, BABL_EPROTO, "end of input before a call");
			return;
		}
		if (s->call && !s->call->eof_proposed) {
			s->call->eof_proposed = 1;
			if (!s->call->cancel_proposed)
				propose_ref(s->n, ENT_EOF, s->call);
		}
		return;
	case WIRE_CANCEL:
		if (s->call)
			call_propose_cancel(s->call, ENT_WHY_CANCELLED, NULL);
		return;
	case WIRE_QUERY:
		if (s->asked)
			break;
		handle_query(s, f);
		return;
	case WIRE_DEPLOY:
		if (s->asked)
			break;
		handle_deploy(s, f);
		return;
	default:
		break;
	}
	log_info("session %" PRIu64 ": unexpected frame 0x%02x; closing it", s->id, f->type);
	send_error(s, BABL_EPROTO, "unexpected frame 0x%02x", f->type);
	if (s->call)
		call_lost_session(s->call);
}

/* ---- applying the log ---- */

/* A CALL is applied: the call is open, in the state and here, until the
 * first OUTCOME for it (the one that decides; a later one changes
 * nothing). */
static void
call_opened(struct node *n, uint64_t index)
{
	uint8_t k[8];
	be64_put(k, index);
	commit_put(n->cm, DB_OPEN, k, 8, "", 0);
	if (idset_add(&n->open, index))
		fatalx("out of memory");
}

static void
call_closed(struct node *n, uint64_t index)
{
	uint8_t k[8];
	be64_put(k, index);
	commit_del(n->cm, DB_OPEN, k, 8);
	idset_del(&n->open, index);
}

/* The record a finished call leaves in DB_CALLS. */
static void
record_call(struct node *n, const uint8_t sid[32], uint64_t index, uint64_t time_ms,
    const uint8_t reqid[16], uint64_t version, const struct ent_outcome *o)
{
	uint8_t k[40], r[CALLREC_LEN];
	memcpy(k, sid, 32);
	be64_put(k + 32, index);
	be64_put(r, time_ms);
	memcpy(r + 8, reqid, 16);
	be64_put(r + 24, o->in_bytes);
	be64_put(r + 32, o->out_bytes);
	be64_put(r + 40, o->err_bytes);
	be64_put(r + 48, version);
	r[56] = o->kind;
	be32_put(r + 57, (uint32_t)o->code);
	r[61] = o->why;
	r[62] = 0;
	commit_put(n->cm, DB_CALLS, k, 40, r, CALLREC_LEN);
}

/* A Lua call's kv writes become state. */
static void
apply_writes(struct node *n, const uint8_t sid[32], const struct ent_outcome *o)
{
	struct rd r;
	int del;
	struct wire_str k, v;
	uint8_t key[32 + WP_MAX_KEY];
	rd_init(&r, o->writes.p, o->writes.len);
	memcpy(key, sid, 32);
	while (wp_next_write(&r, &del, &k, &v) == 1) {
		memcpy(key + 32, k.p, k.len);
		if (del)
			commit_del(n->cm, DB_KV, key, 32 + k.len);
		else
			commit_put(n->cm, DB_KV, key, 32 + k.len, v.p, v.len);
	}
}

/*
 * Key-value writes take effect in log order, and never under a run that
 * reads: while this node still runs a call of the service at or before the
 * one whose writes apply (a member that lags, a replay), they wait in
 * n->kvq, so that run reads the state as of its own place in the log.
 */
struct kvpend {
	struct kvpend *next;
	uint8_t sid[32];
	uint64_t call;
	int cache;            /* not run here: the cache must learn the writes */
	struct ent_outcome o; /* o.writes points into w */
	struct wbuf w;
};

/* 1 if writes of sid from a call before `before` wait in the queue. */
static int
kv_waiting(struct node *n, const uint8_t sid[32], uint64_t before)
{
	for (struct kvpend *q = n->kvq; q; q = q->next)
		if (q->call < before && memcmp(q->sid, sid, 32) == 0)
			return 1;
	return 0;
}

static int
kv_blocked(struct node *n, const uint8_t sid[32], uint64_t call)
{
	for (struct call *c = n->calls; c; c = c->next)
		if (c->lua && !c->outcome_proposed && c->index && c->index <= call &&
		    memcmp(c->svc->sid, sid, 32) == 0)
			return 1;
	return 0;
}

static void
kv_now(struct node *n, const uint8_t sid[32], uint64_t call, int cache, const struct ent_outcome *o)
{
	struct rd r;
	int del;
	struct wire_str wk, wv;
	apply_writes(n, sid, o);
	uint64_t durable_at = commit_flush_mark(n->cm);
	/* On a mesh the log's OUTCOME may be another node's: what this
	 * node's own run cached for the call (other writes, or none) goes,
	 * and the log's take its place. */
	if (cache && n->cluster)
		kvc_drop(n->kvc, call);
	rd_init(&r, o->writes.p, o->writes.len);
	while (wp_next_write(&r, &del, &wk, &wv) == 1) {
		/* Later calls read these before the store has them, until the
		 * transaction that holds them commits. */
		if (cache)
			kvc_put(n->kvc, sid, wk.p, wk.len, del, wv.p, wv.len, call);
		kvc_applied(n->kvc, sid, wk.p, wk.len, call, durable_at);
	}
}

static void
kv_apply(struct node *n, const uint8_t sid[32], uint64_t call, int cache, const struct ent_outcome *o)
{
	int queued = 0;
	for (struct kvpend *q = n->kvq; q && !queued; q = q->next)
		queued = memcmp(q->sid, sid, 32) == 0;
	if (!queued && !kv_blocked(n, sid, call)) {
		kv_now(n, sid, call, cache, o);
		return;
	}
	struct kvpend *q = calloc(1, sizeof *q), **pp = &n->kvq;
	if (!q || wb_raw(&q->w, o->writes.p, o->writes.len))
		fatalx("out of memory");
	memcpy(q->sid, sid, 32);
	q->call = call;
	q->cache = cache;
	q->o = *o;
	q->o.writes = (struct wire_str){(const char *)q->w.p, q->w.len};
	while (*pp)
		pp = &(*pp)->next;
	*pp = q;
}

/* The applied index to persist: none past a call whose writes still wait
 * (a restart applies the log again from there). */
static uint64_t
applied_mark(struct node *n, uint64_t applied)
{
	for (struct kvpend *q = n->kvq; q; q = q->next)
		if (q->call <= applied)
			applied = q->call - 1;
	return applied;
}

/* Writes whose turn has come (each service's in order). */
static void
kv_flush(struct node *n)
{
	uint8_t held[8][32];
	int nheld = 0;
	for (struct kvpend **pp = &n->kvq; *pp;) {
		struct kvpend *q = *pp;
		int wait = 0;
		for (int i = 0; i < nheld && !wait; i++)
			wait = memcmp(held[i], q->sid, 32) == 0;
		if (wait || kv_blocked(n, q->sid, q->call)) {
			if (!wait && nheld < 8)
				memcpy(held[nheld++], q->sid, 32);
			if (nheld == 8)
				return;
			pp = &q->next;
			continue;
		}
		kv_now(n, q->sid, q->call, q->cache, &q->o);
		*pp = q->next;
		wbuf_free(&q->w);
		free(q);
	}
}

/* What an OUTCOME changes in the state: the call's record, its writes. */
static void
outcome_state(struct node *n, struct call *c, const struct ent_outcome *o)
{
	call_closed(n, c->index);
	record_call(n, c->svc->sid, c->index, c->time_ms, c->reqid, c->ver->n, o);
	if (!(o->nwrites && o->why == ENT_WHY_NONE)) /* a cancelled run changes nothing */
		return;
	/*
	 * One node: a run whose outcome is proposed has its writes in the
	 * cache already (lua_outcome_proposed), and they are the log's.  On a
	 * mesh the run here may have ended otherwise (no free slot for a Lua
	 * worker on a guard far behind, say): the log's are cached (kv_now).
	 */
	int cache = n->kvc && (!c->outcome_proposed || !c->lua || n->cluster);
	kv_apply(n, c->svc->sid, c->index, cache, o);
}

static void
apply_outcome(struct node *n, struct call *c, const struct ent_outcome *o)
{
	outcome_state(n, c, o);
	outcome_finish(n, c, o);
}

/* The call ended here: its --id record, its caller, and it goes. */
static void
outcome_finish(struct node *n, struct call *c, const struct ent_outcome *o)
{
	if (c->idkey && !n->cluster && (o->why != ENT_WHY_NONE || c->record_overflow)) {
		/* Not recorded: its output chunks go too. */
		uint8_t key[48];
		for (uint64_t q = 0; q < c->rec_seq; q++) {
			idout_key(key, c->ikey, c->index, q);
			commit_del(n->cm, DB_IDOUT, key, 48);
		}
	}
	if (c->idkey && !n->cluster && o->why == ENT_WHY_NONE && !c->record_overflow) {
		uint8_t rec[29];
		be64_put(rec, c->time_ms);
		rec[8] = o->kind;
		be32_put(rec + 9, (uint32_t)o->code);
		be64_put(rec + 13, c->rec_seq);
		be64_put(rec + 21, c->index);
		commit_put(n->cm, DB_IDEM, c->ikey, 32, rec, sizeof rec);
	}
	c->state = C_ENDED;
	if (c->sess) {
		struct session *s = c->sess;
		const char *w = why_text(o->why);
		if (o->why == ENT_WHY_INPUT_LIMIT || o->why == ENT_WHY_PROGRAM ||
		    o->why == ENT_WHY_SPAWN)
			send_error(s, o->why == ENT_WHY_INPUT_LIMIT ? BABL_EINPUT : BABL_ENOENT, "%s: %s",
			    c->svc->name, c->msg[0] ? c->msg : w);
		else if (o->why == ENT_WHY_TIMEOUT || o->why == ENT_WHY_WORKER)
			send_exit(s, o->kind, o->code, c->msg);
		else if (o->why == ENT_WHY_CANCELLED)
			/* Not the run's exit status, which may be 0: the log
			 * counts none of this run (its writes do not apply), so
			 * the caller must not take it for a success. */
			send_error(s, BABL_ECANCELED, "%s: %s", c->svc->name, c->msg[0] ? c->msg :
			    (o->flags & ENT_OUT_UNOWNED) ? "the leader changed during this --id call, "
			    "and this run does not count; call again (it runs once)" :
			    "the call was cancelled; call again");
		else if (c->verify_k && (o->why == ENT_WHY_NONE || o->why == ENT_WHY_PROGRAM))
			verify_hold(n, s, c, o);
		else if (c->idkey && o->why == ENT_WHY_NONE && !(o->flags & ENT_OUT_PARTIAL) &&
		    !c->record_overflow) {
			/* A retry must find the record: wait until it is durable. */
			s->exit_after_barrier = 1;
			s->bkind = o->kind;
			s->bcode = o->code;
			s->wnext = c->waiters;
			c->waiters = s;
			s->in_barrier = 1;
		} else
			send_exit(s, o->kind, o->code, NULL);
		s->call = NULL;
		c->sess = NULL;
	}
	/* Sessions waiting on this --id, and any retry that comes before the
	 * record is durable, see it then: a NOOP behind the record's writes
	 * says when. */
	if (c->idkey && (!n->cluster || n->leader || c->waiters)) {
		struct idem_pending *ip = calloc(1, sizeof *ip);
		uint8_t *p = malloc(8);
		if (!ip || !p)
			fatalx("out of memory");
		memcpy(ip->ikey, c->ikey, 32);
		for (struct session *w = c->waiters; w; w = w->wnext) {
			w->waiting = NULL;
			w->in_barrier = 1;
		}
		ip->waiters = c->waiters;
		c->waiters = NULL;
		ip->next = n->idem_pending;
		n->idem_pending = ip;
		be64_put(p, c->index);
		propose(n, ENT_NOOP, p, 8, ip);
	}
	log_debug("call %" PRIu64 ": %s ended: %s %d%s%s", c->index, c->svc->name,
	    o->kind == WIRE_SIGNALED ? "signal" : "exit", o->code, why_text(o->why) ? ", " : "",
	    why_text(o->why) ? why_text(o->why) : "");
	if (c->workdir[0]) {
		int ok = slot_dir(n, c->workdir, c->slot) == 0;
		if (c->slot < n->cfg->max_calls)
			n->wd_clean[c->slot] = ok && c->alone;
	}
	call_free(c);
}

/* Waiters of an --id call, once its record is durable: replay it. */
static void
apply_noop(struct node *n, struct idem_pending *ip)
{
	if (!ip)
		return;
	struct idem_pending **pp = &n->idem_pending;
	while (*pp && *pp != ip)
		pp = &(*pp)->next;
	if (*pp)
		*pp = ip->next;
	struct session *list = ip->waiters;
	free(ip);
	while (list) {
		struct session *s = list;
		struct store_txn *t;
		const void *v;
		size_t vl;
		uint8_t rec[29];
		list = s->wnext;
		s->wnext = NULL;
		s->in_barrier = 0;
		if (s->dead)
			continue;
		if (s->exit_after_barrier) {
			s->exit_after_barrier = 0;
			send_exit(s, s->bkind, s->bcode, NULL);
			continue;
		}
		int found = 0;
		if (store_begin(n->st, 0, &t) == 0) {
			found = store_get(t, DB_IDEM, s->rkey, 32, &v, &vl) == 0 && vl >= sizeof rec;
			if (found)
				memcpy(rec, v, sizeof rec);
			store_abort(t);
		}
		if (found)
			start_replay(s, s->rkey, rec);
		else
			send_error(s, BABL_ECANCELED, "the first run of this --id did not complete "
			    "(cancelled, timed out or failed to start); call again to run it");
	}
}

static struct call *call_shadow(struct node *n, const struct entry *e);
static void member_apply(struct node *n, const struct ent_member *e);
static void apply_digest(struct node *n, const struct entry *e);
static void apply_output(struct node *n, const struct entry *e);
static void idem_record(struct node *n, const struct ent_outcome *o);
static const struct ent_outcome *outcome_effective(const struct ent_outcome *o,
    struct ent_outcome *cut);
static void apply_report(struct node *n, const struct entry *e);
static void cluster_outcome(struct node *n, struct call *c, const struct ent_outcome *o);

#define EOF_AHEAD_MAX 64 /* entries after a CALL looked at for its EOF */

/* Whether call's EOF follows p closely in the batch being applied: the
 * proposals linked after p, or in a mesh the rest of the ready's
 * committed entries (cluster_finish). */
static int
eof_ahead(const struct node *n, const struct prop *p, uint64_t call)
{
	int k = 0;
	for (const struct prop *q = p->next; q && k < EOF_AHEAD_MAX; q = q->next, k++)
		if (q->e.type == ENT_EOF && q->e.len >= 8 && be64_get(q->buf) == call)
			return 1;
	for (size_t i = 0; i < n->ahead_n && i < EOF_AHEAD_MAX; i++) {
		const struct raft_entry *re = &n->ahead[i];
		if (re->type == RAFT_ENT_NORMAL && re->len >= 9 && re->data[0] == ENT_EOF &&
		    be64_get(re->data + 1) == call)
			return 1;
	}
	return 0;
}

/* Queue an applied INPUT entry for its call (the chunk owns p). */
static void
call_queue_input(struct call *c, struct prop *p)
{
	struct chunk *k = calloc(1, sizeof *k);
	if (!k)
		fatalx("out of memory");
	k->p = p;
	*c->inqt = k;
	c->inqt = &k->next;
}

static void
apply_prop(struct node *n, struct prop *p)
{
	struct entry *e = &p->e;
	e->payload = p->buf;
	n->applied = e->index;
	switch (e->type) {
	case ENT_CALL: {
		struct call *c = p->owner;
		call_opened(n, e->index);
		if (!c && n->cluster)
			c = call_shadow(n, e);
		if (c)
			c->input_whole = eof_ahead(n, p, e->index);
		if (c && !c->placeholder)
			call_start(c);
		break;
	}
	case ENT_INPUT: {
		struct call *c = p->owner;
		if (!c && n->cluster && e->len >= 8 && (c = call_by_index(n, be64_get(p->buf)))) {
			if (c->placeholder)
				break;
			call_window_add(c, e->len - 8); /* a member's copy: counted here */
		}
		if (!c || c->index != be64_get(p->buf))
			break;
		if ((c->lua ? c->eof_sent || c->exited : c->fd_in < 0) || c->outcome_proposed) {
			call_window_sub(c, e->len - 8);
			break;
		}
		call_queue_input(c, p);
		call_write_input(c);
		return; /* the chunk owns p now */
	}
	case ENT_EOF:
	case ENT_CANCEL: {
		struct call *c = call_by_index(n, be64_get(p->buf));
		if (!c)
			break;
		if (e->type == ENT_EOF) {
			c->eof_applied = 1;
			c->eof_index = e->index;
			if (!c->inq)
				call_close_stdin(c);
		} else {
			call_drop_input(c);
			call_kill(c, c->why ? c->why : ENT_WHY_CANCELLED, NULL);
			log_debug("call %" PRIu64 ": cancelled", c->index);
		}
		break;
	}
	case ENT_OUTCOME: {
		struct ent_outcome o;
		struct call *c = p->owner;
		if (ent_dec_outcome(e, &o))
			break;
		if (n->cluster)
			cluster_outcome(n, c ? c : call_by_index(n, o.call), &o);
		else if (c)
			apply_outcome(n, c, &o);
		break;
	}
	case ENT_DEPLOY: {
		struct session *s = p->owner;
		if (s)
			s->pinned--;
		struct ent_deploy d;
		struct svc_version *v = NULL;
		char why[512], hex[65], msg[700];
		int rc = ent_dec_deploy(e, &d);
		if (!rc)
			rc = reg_apply(&n->reg, n->cm, &d, e->index, &v, why, sizeof why);
		else
			snprintf(why, sizeof why, "malformed deploy entry");
		if (rc)
			log_info("deploy at %" PRIu64 " refused: %s", e->index, why);
		else
			log_info("deployed %s version %" PRIu64 " at log index %" PRIu64,
			    v->b.name, v->n, e->index);
		if (s && !s->dead && s->deploy_index == e->index) {
			if (rc) {
				send_error(s, rc, "deploy refused: %s", why);
			} else {
				hex_encode(v->vid, 32, hex);
				snprintf(msg, sizeof msg, "deployed %s version %" PRIu64 " (%s)\n",
				    v->b.name, v->n, hex);
				send_text(s, msg, strlen(msg));
				send_exit(s, WIRE_EXITED, 0, NULL);
			}
		}
		break;
	}
	case ENT_NOOP:
		apply_noop(n, p->owner);
		break;
	case ENT_DIGEST:
		apply_digest(n, e);
		break;
	case ENT_OUTPUT:
		apply_output(n, e);
		break;
	case ENT_REPORT:
		apply_report(n, e);
		break;
	case ENT_MEMBER: {
		struct session *s = p->owner;
		struct ent_member m;
		char msg[700];
		if (s)
			s->pinned--;
		if (ent_dec_member(e, &m)) {
			if (s && !s->dead)
				send_error(s, BABL_EPROTO, "malformed member entry");
			break;
		}
		if (n->cluster)
			member_apply(n, &m);
		if (m.op == ENT_MEMBER_ADD)
			snprintf(msg, sizeof msg, "node %" PRIu64 " (peers reach it on %.*s, clients on %.*s) "
			    "is a member: %s\n", m.id,
			    (int)m.raft_url.len, m.raft_url.p, (int)m.client_url.len, m.client_url.p,
			    m.guard ? "a guard (a learner that re-runs every call and checks the digests)" :
			    "a learner until it has caught up, then a voter");
		else
			snprintf(msg, sizeof msg, "node %" PRIu64 " leaves the mesh\n", m.id);
		if (m.op == ENT_MEMBER_ADD)
			log_info("member %" PRIu64 ": peers reach it on %.*s, clients on %.*s", m.id,
			    (int)m.raft_url.len, m.raft_url.p, (int)m.client_url.len, m.client_url.p);
		else
			log_info("member %" PRIu64 " removed", m.id);
		if (s && !s->dead) {
			/* A joining node learns where the others are. */
			struct text t = {0};
			text_add(&t, "%s", msg);
			for (int i = 0; m.op == ENT_MEMBER_ADD && i < n->nmem; i++)
				if (!n->mem[i].gone && n->mem[i].id != m.id)
					text_add(&t, "peer: %" PRIu64 " %s %s\n", n->mem[i].id, n->mem[i].raft,
					    n->mem[i].client);
			send_text(s, t.p, t.len);
			free(t.p);
			send_exit(s, WIRE_EXITED, 0, NULL);
		}
		break;
	}
	}
	prop_free(p);
}

/* A deploy that will not be applied: its session hears why. */
static void
deploy_fail(struct session *s, int err, const char *why)
{
	s->pinned--;
	if (!s->dead)
		send_error(s, err, "%s", why);
}

static void call_drop_session(struct call *c, int err, const char *why);
static void call_drop_waiters(struct call *c, int err, const char *why);

/*
 * The log cannot be written, so nothing a call does from now on can take
 * effect: its caller, and whoever waits on it, hears so at once instead of
 * waiting for input or an outcome that will never be written, and its run
 * is stopped.
 */
static void
fail_calls(struct node *n)
{
	const char *why = failed_text(n);
	for (struct call *c = n->calls; c; c = c->next) {
		call_drop_session(c, BABL_EIO, why);
		call_drop_waiters(c, BABL_EIO, why);
		call_kill(c, ENT_WHY_CANCELLED, why);
	}
}

static void
apply_done(struct node *n)
{
	int err;
	struct prop *p = commit_take(n->cm, &err);
	if (!p)
		return;
	if (err && !n->failed) {
		n->failed = err;
		log_warnx("the log cannot be written (%s: %s); refusing new calls and deploys "
		    "until a restart", babl_strerror(err), store_errstr(n->st));
		fail_calls(n);
	}
	uint64_t last = 0;
	while (p) {
		struct prop *nx = p->next;
		last = p->e.index;
		if (err) {
			/* Not durable: nothing of it may take effect.  (Its call's
			 * caller heard so in fail_calls.) */
			if (p->e.type == ENT_DEPLOY && p->owner)
				deploy_fail(p->owner, BABL_EIO, failed_text(n));
			prop_free(p);
		} else {
			apply_prop(n, p);
		}
		p = nx;
	}
	if (!err) {
		uint8_t a[8];
		be64_put(a, applied_mark(n, last));
		commit_put(n->cm, DB_META, "applied", 7, a, 8);
	}
}

/* ---- start-up recovery ---- */

struct count_ctx {
	uint64_t n;
};

static int
count_one(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	(void)k;
	(void)kl;
	(void)v;
	(void)vl;
	((struct count_ctx *)arg)->n++;
	return 0;
}

/*
 * An --id call whose outcome entry is in the log but whose record was not
 * written before a crash gets its record back: its recorded output went
 * into the store no later than the outcome entry (state writes queued
 * before a proposal share its transaction or an earlier one).
 */
static void
recover_idem(struct node *n, struct store_txn *t, const struct ent_call *ec,
    const struct ent_outcome *o)
{
	char *idk = wire_strdup(ec->idkey);
	uint8_t ikey[32], rec[29];
	const void *v;
	size_t vl;
	struct count_ctx cc = {0};
	if (!idk)
		fatalx("out of memory");
	idem_key(ec->sid, idk, ikey);
	free(idk);
	if (store_get(t, DB_IDEM, ikey, 32, &v, &vl) == 0)
		return;
	uint8_t pre[40];
	memcpy(pre, ikey, 32);
	be64_put(pre + 32, o->call);
	store_scan(t, DB_IDOUT, pre, 40, 0, count_one, &cc);
	be64_put(rec, ec->time_ms);
	rec[8] = o->kind;
	be32_put(rec + 9, (uint32_t)o->code);
	be64_put(rec + 13, cc.n);
	be64_put(rec + 21, o->call);
	commit_put(n->cm, DB_IDEM, ikey, 32, rec, sizeof rec);
}

/*
 * The record and the writes an OUTCOME makes for a call not run here, from
 * what its CALL says (writes through the kv cache when cache).
 */
static void
outcome_record(struct node *n, const uint8_t sid[32], uint64_t time_ms, const uint8_t reqid[16],
    uint64_t version, const struct ent_outcome *o, int cache)
{
	record_call(n, sid, o->call, time_ms, reqid, version, o);
	if (o->nwrites && o->why == ENT_WHY_NONE) {
		if (cache)
			kv_apply(n, sid, o->call, 1, o);
		else
			apply_writes(n, sid, o);
	}
}

/*
 * The state an OUTCOME makes, from the log alone (no run of the call
 * here): the call's record and its writes, found through its CALL entry.
 * idem: rebuild a missing --id record from the output recorded before it.
 */
static void
outcome_from_log(struct node *n, struct store_txn *t, const struct ent_outcome *o, int idem)
{
	struct entry ce;
	struct ent_call ec;
	call_closed(n, o->call);
	if (store_entry(t, o->call, &ce) || ent_dec_call(&ce, &ec))
		return;
	struct svc *s;
	struct svc_version *v = NULL;
	char hex[65], why[256];
	hex_encode(ec.vid, 32, hex);
	uint64_t vn = reg_resolve(&n->reg, hex, &s, &v, why, sizeof why) == 0 ? v->n : 0;
	outcome_record(n, ec.sid, ec.time_ms, ec.reqid, vn, o, n->kvc && idem == 0);
	if (idem && ec.idkey.len && o->why == ENT_WHY_NONE)
		recover_idem(n, t, &ec, o);
}

static int
open_one(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	(void)v;
	(void)vl;
	if (kl == 8 && idset_add(arg, be64_get(k)))
		fatalx("out of memory");
	return 0;
}

/*
 * Bring the state up to the log's tail (entries persisted but not yet
 * applied when the node stopped), then end the calls that were running: a
 * call cut short by a restart is recorded as such, never resumed.
 */
static int
recover(struct node *n, uint64_t limit)
{
	struct store_txn *t;
	uint64_t applied = 0, tail;
	int rc = store_begin(n->st, 0, &t);
	if (rc)
		return rc;
	store_meta_get(t, "applied", &applied);
	idset_clear(&n->open);
	store_scan(t, DB_OPEN, NULL, 0, 0, open_one, &n->open);
	store_tail(n->st, &tail, NULL, NULL);
	if (tail > limit)
		tail = limit; /* replicated: only what is committed */
	if (applied > tail)
		applied = tail;
	for (uint64_t i = applied + 1; i <= tail; i++) {
		struct entry e;
		if ((rc = store_entry(t, i, &e))) {
			log_warnx("log entry %" PRIu64 " cannot be read during recovery: %s", i,
			    babl_strerror(rc));
			store_abort(t);
			return rc;
		}
		if (e.type == ENT_DEPLOY) {
			struct ent_deploy d;
			char why[512];
			if (ent_dec_deploy(&e, &d) == 0 &&
			    reg_apply(&n->reg, n->cm, &d, i, NULL, why, sizeof why) == 0)
				log_info("recovered deploy at log index %" PRIu64, i);
		} else if (e.type == ENT_CALL) {
			call_opened(n, i);
		} else if (e.type == ENT_OUTCOME) {
			struct ent_outcome o, cut;
			/* The first OUTCOME for a call decides, as live. */
			if (ent_dec_outcome(&e, &o) == 0 && idset_has(&n->open, o.call)) {
				const struct ent_outcome *eo = n->cluster ? outcome_effective(&o, &cut) : &o;
				outcome_from_log(n, t, eo, !n->cluster);
				if (n->cluster)
					idem_record(n, eo);
			}
		} else if (n->cluster && e.type == ENT_OUTPUT) {
			apply_output(n, &e);
		} else if (n->cluster && e.type == ENT_MEMBER) {
			struct ent_member m;
			if (ent_dec_member(&e, &m) == 0)
				member_apply(n, &m);
		} else if (n->cfg && e.type == ENT_DIGEST) { /* (not in meshd replay --data) */
			apply_digest(n, &e);
		} else if (e.type == ENT_REPORT) {
			apply_report(n, &e);
		}
	}
	store_abort(t);
	n->applied = tail;
	uint8_t a[8];
	be64_put(a, tail);
	commit_put(n->cm, DB_META, "applied", 7, a, 8);
	/* Let those writes land before looking at what is still open. */
	return commit_sync(n->cm);
}

struct open_scan {
	struct node *n;
	struct store_txn *t;
	int count;
};

/*
 * A Lua call cut short by the last stop whose whole input is in the log
 * (at most RERUN_INPUT_MAX bytes, its EOF at most RERUN_SCAN_MAX entries
 * after its CALL) runs again from there, with no caller:
 * it may be one that had its EXIT before its OUTCOME was durable
 * (early_exit_ok), and its run from the same entries ends the same way.
 * A run again that asks for kv state is cut short (lua_kv_request): such
 * a call never had an early EXIT.  1 if it runs, 0 if it stays cut short.
 */
static int
orphan_rerun(struct node *n, struct store_txn *t, const struct entry *ce)
{
	uint64_t tail, call, total = 0;
	struct prop *in = NULL, **inq_end = &in;
	int eof = 0;
	store_tail(n->st, &tail, NULL, NULL);
	if (tail > ce->index + RERUN_SCAN_MAX)
		tail = ce->index + RERUN_SCAN_MAX;
	for (uint64_t i = ce->index + 1; i <= tail && !eof; i++) {
		struct entry e;
		const uint8_t *rest;
		size_t rl;
		if (store_entry(t, i, &e))
			break;
		if ((e.type != ENT_INPUT && e.type != ENT_EOF && e.type != ENT_CANCEL) ||
		    ent_dec_ref(&e, &call, &rest, &rl) || call != ce->index)
			continue;
		if (e.type == ENT_CANCEL)
			break;
		if (e.type == ENT_EOF) {
			eof = 1;
			break;
		}
		if ((total += rl) > RERUN_INPUT_MAX)
			break;
		struct prop *p = calloc(1, sizeof *p);
		if (!p || !(p->buf = malloc(e.len)))
			fatalx("out of memory");
		memcpy(p->buf, e.payload, e.len);
		p->e = e;
		p->e.payload = p->buf;
		*inq_end = p;
		inq_end = &p->next;
	}
	struct call *c = eof ? call_shadow(n, ce) : NULL;
	if (c && c->placeholder) {
		call_free(c);
		c = NULL;
	}
	while (in) {
		struct prop *p = in;
		in = p->next;
		p->next = NULL;
		if (!c) {
			prop_free(p);
			continue;
		}
		call_window_add(c, p->e.len - 8);
		call_queue_input(c, p);
	}
	if (!c)
		return 0;
	log_info("call %" PRIu64 " (%s) was cut short by the last stop; it runs again from the log",
	    c->index, c->svc->name);
	c->rerun = 1;
	c->input_whole = 1;
	c->eof_applied = 1;
	call_start(c); /* (which passes the input on, then the EOF) */
	return 1;
}

static int
orphan_one(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct open_scan *x = arg;
	struct node *n = x->n;
	struct entry ce;
	struct ent_call ec;
	(void)v;
	(void)vl;
	if (kl != 8)
		return 0;
	uint64_t idx = be64_get(k);
	/* Running here, or ended since the state was written (a replicated
	 * leader looks while serving). */
	if (call_by_index(n, idx) || !idset_has(&n->open, idx))
		return 0;
	if (store_entry(x->t, idx, &ce) || ent_dec_call(&ce, &ec))
		return 0;
	char hex[65], why[256];
	struct svc *s;
	struct svc_version *ver;
	hex_encode(ec.vid, 32, hex);
	if (reg_resolve(&n->reg, hex, &s, &ver, why, sizeof why)) {
		/* Its service is unknown here: nothing to record it under. */
		log_warnx("call %" PRIu64 " was cut short by the last stop, but its version is unknown: %s",
		    idx, why);
		call_closed(n, idx);
		return 0;
	}
	if (!n->cluster && ver->b.kind == BUNDLE_LUA && orphan_rerun(n, x->t, &ce))
		return 0;
	struct call *c = call_new(n, s, ver, UINT_MAX);
	c->index = idx;
	c->time_ms = ec.time_ms;
	memcpy(c->reqid, ec.reqid, 16);
	c->cancel_proposed = 1;
	propose_ref(n, ENT_CANCEL, c);
	c->why = ENT_WHY_RESTART;
	c->exited = 1;
	c->status = SIGKILL; /* as if killed */
	c->start_ms = now_ms();
	call_maybe_finish(c);
	x->count++;
	return 0;
}

static void
end_orphans(struct node *n)
{
	struct open_scan x = {n, NULL, 0};
	if (store_begin(n->st, 0, &x.t))
		return;
	store_scan(x.t, DB_OPEN, NULL, 0, 0, orphan_one, &x);
	store_abort(x.t);
	if (x.count)
		log_info("%d call(s) were cut short by the last stop; recorded as such", x.count);
}

/* ---- replication ---- */

/* Proposals that name owner (a call or session about to go) forget it. */
static void
props_forget(struct node *n, const void *owner)
{
	for (struct prop *p = n->props; p; p = p->next)
		if (p->owner == owner)
			p->owner = NULL;
	for (struct prop *p = n->pend; p; p = p->next)
		if (p->owner == owner)
			p->owner = NULL;
}

/* The caller of c hears why its call cannot go on here (err, why); c
 * stays, as a member's run of the call, if its CALL is in the log. */
static void
call_drop_session(struct call *c, int err, const char *why)
{
	struct session *s = c->sess;
	if (!s)
		return;
	s->call = NULL;
	c->sess = NULL;
	if (!s->dead)
		send_error(s, err, "%s", why);
}

/* So do the sessions that wait on c (the same --id called again). */
static void
call_drop_waiters(struct call *c, int err, const char *why)
{
	for (struct session *w = c->waiters, *nx; w; w = nx) {
		nx = w->wnext;
		w->waiting = NULL;
		w->wnext = NULL;
		if (!w->dead)
			send_error(w, err, "%s", why);
	}
	c->waiters = NULL;
}

#define LOST_LEAD "the node lost the leadership of the mesh mid-call; call again " \
	"(with --id KEY the call runs at most once)"

/* A proposal that will not be applied: tell whoever waits on it. */
static void
prop_fail(struct node *n, struct prop *p, const char *why)
{
	switch (p->e.type) {
	case ENT_CALL: {
		struct call *c = p->owner;
		if (!c)
			break;
		call_drop_session(c, BABL_EUNREACH, why);
		call_drop_waiters(c, BABL_EUNREACH, why);
		call_free(c);
		break;
	}
	case ENT_INPUT:
	case ENT_EOF:
	case ENT_CANCEL: {
		struct call *c = p->owner;
		if (!c)
			break;
		if (p->e.type == ENT_INPUT)
			call_window_sub(c, p->e.len - 8);
		call_drop_session(c, BABL_EUNREACH, why);
		break;
	}
	case ENT_OUTCOME: {
		struct call *c = p->owner;
		if (c) { /* proposed again if this node leads again */
			c->outcome_sent = 0;
			wbuf_free(&c->outb);
			wb_raw(&c->outb, p->buf, p->e.len);
		}
		break;
	}
	case ENT_DEPLOY:
		if (p->owner)
			deploy_fail(p->owner, BABL_EUNREACH, why);
		break;
	case ENT_NOOP:
		if (p->owner) { /* the --id records are local: let them land */
			commit_sync(n->cm);
			apply_noop(n, p->owner);
		}
		break;
	}
	prop_free(p);
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* A member's run of a call the leader started: from its CALL entry. */
static struct call *
call_shadow(struct node *n, const struct entry *e)
{
	struct ent_call ec;
	struct svc *svc;
	struct svc_version *ver;
	char hex[65], why[256];
	if (ent_dec_call(e, &ec))
		return NULL;
	hex_encode(ec.vid, 32, hex);
	if (reg_resolve(&n->reg, hex, &svc, &ver, why, sizeof why)) {
		log_warnx("call %" PRIu64 ": not run here: %s", e->index, why);
		return NULL;
	}
	/* A member far behind (catching up) takes the state from the log
	 * instead of running what the mesh already ran; a guard runs all. */
	uint64_t commit = n->commit > n->lead_commit ? n->commit : n->lead_commit;
	int behind = !n->cfg->guard && (commit > e->index + CATCHUP_RUN_WITHIN ||
	    (n->nbend && bsearch(&e->index, n->bend, n->nbend, sizeof *n->bend, u64_cmp)));
	int slot = behind ? -1 : slot_take(n);
	struct call *c = call_new(n, svc, ver, slot < 0 ? UINT_MAX : (unsigned)slot);
	if (slot < 0 && behind) {
		c->placeholder = 1;
	} else if (slot < 0) {
		/* Not run here; but it keeps its place, so that later calls of
		 * the service read its writes (which the log brings). */
		if (!n->slots_out++)
			log_warnx("call %" PRIu64 ": not run here: no free slot (--max-calls %u); "
			    "its outcome comes from the leader", e->index, n->cfg->max_calls);
		c->placeholder = 1;
	}
	if (!(c->args = calloc(ec.nargs + 1, sizeof *c->args)))
		fatalx("out of memory");
	c->index = e->index;
	c->time_ms = ec.time_ms;
	c->seed = ec.seed;
	memcpy(c->reqid, ec.reqid, ENT_REQID_LEN);
	c->timeout_ms = ec.timeout_ms;
	if (ec.idkey.len) {
		if (!(c->idkey = wire_strdup(ec.idkey)))
			fatalx("out of memory");
		idem_key(svc->sid, c->idkey, c->ikey);
	}
	c->args_n = (int)ec.nargs;
	for (uint32_t i = 0; i < ec.nargs; i++)
		if (!(c->args[i] = wire_strdup(ec.args[i])))
			fatalx("out of memory");
	n->calls_total++;
	return c;
}

/* The --id key of the call whose CALL entry is at index (0 if it has none). */
static int
call_ikey(struct node *n, uint64_t index, uint8_t ikey[32], uint64_t *time_ms)
{
	struct call *c = call_by_index(n, index);
	struct store_txn *t;
	struct entry ce;
	struct ent_call ec;
	int found = 0;
	if (c) {
		if (c->idkey)
			memcpy(ikey, c->ikey, 32);
		*time_ms = c->time_ms;
		return c->idkey != NULL;
	}
	if (store_begin(n->st, 0, &t))
		return 0;
	if (store_entry(t, index, &ce) == 0 && ent_dec_call(&ce, &ec) == 0 && ec.idkey.len) {
		char *idk = wire_strdup(ec.idkey);
		if (!idk)
			fatalx("out of memory");
		idem_key(ec.sid, idk, ikey);
		free(idk);
		*time_ms = ec.time_ms;
		found = 1;
	}
	store_abort(t);
	return found;
}

/* OUTPUT: a chunk of an --id call's recorded output, on every member. */
static void
apply_output(struct node *n, const struct entry *e)
{
	struct ent_output m;
	uint8_t ikey[32], key[48];
	uint64_t t;
	struct wbuf v = {0};
	if (ent_dec_output(e, &m) || !call_ikey(n, m.call, ikey, &t))
		return;
	idout_key(key, ikey, m.call, m.seq);
	if (wb_u8(&v, m.stream) || wb_raw(&v, m.p, m.len))
		fatalx("out of memory");
	commit_put(n->cm, DB_IDOUT, key, 48, v.p, v.len);
	wbuf_free(&v);
}

/* Whether an --id call's OUTCOME is kept for retries: a whole run only. */
static int
idem_kept(const struct ent_outcome *o)
{
	return o->why == ENT_WHY_NONE && !(o->flags & ENT_OUT_PARTIAL);
}

/* Replicated, an --id call's record comes from the log on every member:
 * its output from the OUTPUT entries, read until the last (count ~0). */
static void
idem_put(struct node *n, const uint8_t ikey[32], uint64_t t, const struct ent_outcome *o)
{
	uint8_t rec[29];
	if (!idem_kept(o))
		return;
	be64_put(rec, t);
	rec[8] = o->kind;
	be32_put(rec + 9, (uint32_t)o->code);
	be64_put(rec + 13, UINT64_MAX);
	be64_put(rec + 21, o->call);
	commit_put(n->cm, DB_IDEM, ikey, 32, rec, sizeof rec);
}

static void
idem_record(struct node *n, const struct ent_outcome *o)
{
	uint8_t ikey[32];
	uint64_t t;
	/* (the outcome first: call_ikey may read the CALL from the store) */
	if (idem_kept(o) && call_ikey(n, o->call, ikey, &t))
		idem_put(n, ikey, t, o);
}

/*
 * An --id run whose output no leader recorded from its start (the leader
 * changed under it) ends as cancelled, its writes unapplied, so that a
 * retry runs it once: the same rule on every node, from the entry alone.
 */
static const struct ent_outcome *
outcome_effective(const struct ent_outcome *o, struct ent_outcome *cut)
{
	if (!(o->flags & ENT_OUT_UNOWNED) || o->why != ENT_WHY_NONE)
		return o;
	*cut = *o;
	cut->why = ENT_WHY_CANCELLED;
	cut->nwrites = 0;
	cut->writes = (struct wire_str){0};
	return cut;
}

/* An OUTCOME, replicated: the first one for a call decides. */
static void
cluster_outcome(struct node *n, struct call *c, const struct ent_outcome *o)
{
	struct ent_outcome cut;
	if (!idset_has(&n->open, c ? c->index : o->call))
		return; /* a second OUTCOME: the first decided */
	o = outcome_effective(o, &cut);
	if (o->why != ENT_WHY_NONE || !o->nwrites) {
		/* This node's own run may have cached writes the log does not
		 * apply: they go, and reads see the store once it holds what
		 * came before. */
		uint64_t call = c ? c->index : o->call;
		if (n->kvc && kvc_count(n->kvc)) {
			size_t before = kvc_count(n->kvc);
			kvc_drop(n->kvc, call);
			if (kvc_count(n->kvc) != before)
				commit_sync(n->cm);
		}
	}
	if (c && c->placeholder) {
		/* Not run here: the state its OUTCOME makes, from what its CALL
		 * said when it was applied (as outcome_from_log does from the
		 * entry itself, which a member catching up need not read again). */
		if (c->idkey)
			idem_put(n, c->ikey, c->time_ms, o);
		call_closed(n, c->index);
		outcome_record(n, c->svc->sid, c->time_ms, c->reqid, c->ver->n, o, n->kvc != NULL);
		call_free(c);
		return;
	}
	if (!c) {
		struct store_txn *t;
		if (store_begin(n->st, 0, &t)) {
			log_warnx("call %" PRIu64 ": its end cannot be recorded: the store cannot be read",
			    o->call);
			call_closed(n, o->call);
			return;
		}
		idem_record(n, o);
		outcome_from_log(n, t, o, 0);
		store_abort(t);
		return;
	}
	idem_record(n, o);
	if (c->outcome_proposed) {
		apply_outcome(n, c, o);
		return;
	}
	/* Still running here: the state changes now, the call ends when its
	 * run does (an --id call's output is recorded for retries). */
	outcome_state(n, c, o);
	c->has_remote = 1;
	c->remote_writes = o->nwrites && o->why == ENT_WHY_NONE;
	c->remote = *o;
	c->remote.nwrites = 0;
	c->remote.writes = (struct wire_str){0};
	/* A run cut short elsewhere stops here too; a whole one goes on, for
	 * its digest (and an --id call's recorded output). */
	if (o->why != ENT_WHY_NONE)
		call_kill(c, o->why, NULL);
}

/* Hand this turn's proposals to Raft; each learns its index. */
static void
cluster_flush(struct node *n)
{
	if (n->rd_busy)
		return;
	while (n->props) {
		struct prop *p = n->props;
		n->props = p->next;
		if (!n->props)
			n->propst = &n->props;
		p->next = NULL;
		uint8_t t = p->e.type;
		struct call *c = t == ENT_INPUT || t == ENT_EOF || t == ENT_CANCEL ? p->owner : NULL;
		if (c) {
			if (!c->index) {
				prop_fail(n, p, LOST_LEAD);
				continue;
			}
			ent_input_prefix(p->buf, c->index);
		}
		uint8_t *body = malloc(1 + (size_t)p->e.len);
		if (!body)
			fatalx("out of memory");
		body[0] = t;
		if (p->e.len)
			memcpy(body + 1, p->buf, p->e.len);
		uint64_t idx, term;
		int rc = raft_propose(n->raft, body, 1 + (size_t)p->e.len, &idx, &term);
		free(body);
		if (rc) {
			prop_fail(n, p, rc == BABL_EPERM ? LOST_LEAD : "the mesh cannot take this now; call again");
			continue;
		}
		p->e.index = idx;
		p->e.term = term;
		if (t == ENT_CALL && p->owner)
			((struct call *)p->owner)->index = idx;
		if (t == ENT_DEPLOY && p->owner)
			((struct session *)p->owner)->deploy_index = idx;
		*n->pendt = p;
		n->pendt = &p->next;
	}
}

/* Apply one committed entry; a proposal of ours brings its owner along. */
static void
cluster_apply(struct node *n, const struct raft_entry *re)
{
	struct prop *p = NULL;
	while (n->pend && n->pend->e.index <= re->index) {
		struct prop *q = n->pend;
		n->pend = q->next;
		if (!n->pend)
			n->pendt = &n->pend;
		q->next = NULL;
		if (q->e.index == re->index && q->e.term == re->term)
			p = q;
		else
			prop_fail(n, q, LOST_LEAD);
	}
	n->applied = re->index;
	if (re->type != RAFT_ENT_NORMAL || re->len < 1) {
		if (p)
			prop_fail(n, p, LOST_LEAD);
		return;
	}
	if (!p) {
		if (!(p = calloc(1, sizeof *p)) || !(p->buf = malloc(re->len)))
			fatalx("out of memory");
		p->e.type = re->data[0];
		p->e.len = re->len - 1;
		memcpy(p->buf, re->data + 1, re->len - 1);
	}
	p->e.index = re->index;
	p->e.term = re->term;
	apply_prop(n, p);
}

static int
persist_job(void *arg)
{
	struct node *n = arg;
	return rstore_persist(n->rs, &n->rd, NULL, NULL);
}

/*
 * A member catching up applies thousands of entries at a time; the calls
 * whose OUTCOME is among them have ended mesh-wide, and running them here
 * would only delay it: call_shadow takes their state from the log.  (A
 * member keeping up applies a few entries at a time and runs every call.)
 */
#define BATCH_ENDED_MIN 512 /* entries in an apply batch that says catching up */

static void
batch_ended(struct node *n, const struct raft_ready *rd)
{
	if (rd->ncommitted < BATCH_ENDED_MIN || n->cfg->guard)
		return;
	if (rd->ncommitted > n->cbend) {
		free(n->bend);
		n->cbend = rd->ncommitted;
		if (!(n->bend = malloc(n->cbend * sizeof *n->bend)))
			fatalx("out of memory");
	}
	for (size_t i = 0; i < rd->ncommitted; i++) {
		const struct raft_entry *re = &rd->committed[i];
		if (re->type == RAFT_ENT_NORMAL && re->len >= 9 && re->data[0] == ENT_OUTCOME)
			n->bend[n->nbend++] = be64_get(re->data + 1);
	}
	qsort(n->bend, n->nbend, sizeof *n->bend, u64_cmp);
}

/* Send the ready's messages that may go before it is durable (early = 1),
 * or the others (early = 0). */
static void
cluster_send(struct node *n, const struct raft_ready *rd, int early)
{
	for (size_t i = 0; i < rd->nmsgs; i++) {
		if (raft_early(n->raft, rd, &rd->msgs[i]) != early)
			continue;
		int rc = rtrans_send(n->rt, &rd->msgs[i]);
		if (rc && rc != BABL_ENOENT)
			log_debug("raft: cannot send %s to %" PRIu64 ": %s",
			    raft_msg_type_name(rd->msgs[i].type), rd->msgs[i].to, babl_strerror(rc));
	}
}

/* rd is durable (or had nothing to write): the rest of its messages (the
 * early ones too unless early_sent), its committed entries applied, and
 * the core told. */
static void
cluster_finish(struct node *n, int early_sent)
{
	struct raft_ready *rd = &n->rd;
	if (!early_sent)
		cluster_send(n, rd, 1);
	cluster_send(n, rd, 0);
	batch_ended(n, rd);
	for (size_t i = 0; i < rd->ncommitted; i++) {
		n->ahead = rd->committed + i + 1;
		n->ahead_n = rd->ncommitted - i - 1;
		cluster_apply(n, &rd->committed[i]);
	}
	n->ahead = NULL;
	n->ahead_n = 0;
	n->nbend = 0; /* (call_shadow looks only within the batch) */
	if (rd->ncommitted) {
		uint8_t a[8];
		be64_put(a, applied_mark(n, n->applied));
		commit_put(n->cm, DB_META, "applied", 7, a, 8);
	}
	if (raft_advance(n->raft, rd))
		fatalx("raft: a ready batch could not be advanced");
}

/* Leadership came or went. */
static void
cluster_role(struct node *n)
{
	struct raft_status st;
	raft_status(n->raft, &st);
	int leader = st.role == RAFT_LEADER;
	if (st.lead != n->lead_id || (st.lead && st.term != n->term)) {
		if (leader)
			log_info("raft: term %" PRIu64 ": this node leads the mesh", st.term);
		else if (st.lead)
			log_info("raft: term %" PRIu64 ": node %" PRIu64 " leads the mesh", st.term, st.lead);
		else
			log_info("raft: term %" PRIu64 ": no leader", st.term);
	}
	n->lead_id = st.lead;
	n->term = st.term;
	n->commit = st.commit;
	if (n->leader && !leader) {
		for (struct call *c = n->calls; c; c = c->next)
			c->rec_owner = 0;
		/* What was proposed may or may not be committed by the next
		 * leader: its callers are told so now. */
		while (n->pend) {
			struct prop *q = n->pend;
			n->pend = q->next;
			q->next = NULL;
			prop_fail(n, q, LOST_LEAD);
		}
		n->pendt = &n->pend;
	}
	if (!n->leader && leader) {
		n->next_duty_ms = 0;
		n->orphan_scan_ms = now_ms() + 1000;
	}
	n->leader = leader;
}

static void end_orphans(struct node *n);
static void members_duties(struct node *n);

/*
 * A leader ends what nobody else will: calls it ran as a member whose
 * outcome is known here only, calls whose input stopped with the old
 * leader, and (once) calls open in the state that no member runs.
 */
static void
cluster_duties(struct node *n)
{
	if (!n->leader || now_ms() < n->next_duty_ms)
		return;
	n->next_duty_ms = now_ms() + DUTY_MS;
	for (struct call *c = n->calls; c; c = c->next) {
		if (!c->index || c->index > n->applied || c->has_remote)
			continue;
		if (c->placeholder && !c->outcome_proposed) {
			/* Nobody runs it for this leader: it ends as cut short. */
			c->placeholder = 0;
			c->cancel_proposed = 1;
			propose_ref(n, ENT_CANCEL, c);
			c->why = ENT_WHY_RESTART;
			c->exited = 1;
			c->status = SIGKILL;
			c->state = C_RUNNING;
			c->start_ms = now_ms();
			call_maybe_finish(c);
			continue;
		}
		if (c->outcome_proposed && !c->outcome_sent && c->outb.len) {
			uint8_t *p = c->outb.p;
			size_t len = c->outb.len;
			c->outb.p = NULL;
			c->outb.len = c->outb.cap = 0;
			/* An --id run this node did not record carries
			 * ENT_OUT_UNOWNED: it applies as cancelled everywhere
			 * (outcome_effective). */
			c->outcome_sent = 1;
			propose(n, ENT_OUTCOME, p, len, c);
		} else if (!c->outcome_proposed && !c->cancel_proposed && c->state == C_RUNNING &&
		    ((!c->sess && !c->eof_applied) || (c->idkey && !c->rec_owner))) {
			call_propose_cancel(c, ENT_WHY_CANCELLED, c->idkey ?
			    "the leader changed during this --id call; call again (it runs once)" :
			    "the leader changed while the call's input was being sent");
		}
	}
	members_duties(n);
	if (n->orphan_scan_ms && now_ms() >= n->orphan_scan_ms && n->applied >= n->commit) {
		n->orphan_scan_ms = 0;
		end_orphans(n);
	}
}

static void
on_raft_msg(void *ctx, const struct raft_msg *m)
{
	struct node *n = ctx;
	if (m->from == n->lead_id)
		n->lead_heard_ms = now_ms();
	/* How far the mesh has committed, as a leader says: a member catching
	 * up knows it before its own log gets there (call_shadow). */
	if ((m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT) && m->term >= n->term &&
	    m->commit > n->lead_commit)
		n->lead_commit = m->commit;
	int rc = raft_step(n->raft, m);
	if (rc)
		log_debug("raft: %s from %" PRIu64 " refused: %s", raft_msg_type_name(m->type),
		    m->from, babl_strerror(rc));
}


/* ---- membership ---- */

static struct member *
member_find(struct node *n, uint64_t id)
{
	for (int i = 0; i < n->nmem; i++)
		if (n->mem[i].id == id)
			return &n->mem[i];
	return NULL;
}

/* Add or change a member's addresses (they must fit: ENT_MEMBER_URL_MAX). */
static struct member *
member_set(struct node *n, uint64_t id, const char *raft, size_t rl, const char *client,
    size_t cl)
{
	struct member *m = member_find(n, id);
	if (!m) {
		if (n->nmem == NODE_MAX_PEERS)
			return NULL;
		m = &n->mem[n->nmem++];
		memset(m, 0, sizeof *m);
		m->id = id;
	}
	snprintf(m->raft, sizeof m->raft, "%.*s", (int)rl, raft);
	snprintf(m->client, sizeof m->client, "%.*s", (int)cl, client);
	m->gone = 0;
	if (n->rt && id != n->cfg->node_id) {
		int rc = rtrans_add_peer(n->rt, id, m->raft);
		if (rc)
			log_warnx("member %" PRIu64 " at %s: %s", id, m->raft, babl_strerror(rc));
	}
	return m;
}

static int
member_load_one(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct node *n = arg;
	if (kl != 15)
		return 0;
	uint64_t id = be64_get((const uint8_t *)k + 7);
	const char *p = v, *nl = memchr(p, '\n', vl);
	if (vl == 1 && p[0] == '-') {
		struct member *m = member_find(n, id);
		if (!m && n->nmem < NODE_MAX_PEERS) {
			m = &n->mem[n->nmem++];
			memset(m, 0, sizeof *m);
			m->id = id;
		}
		if (m)
			m->gone = m->in_log = 1;
	} else if (nl) {
		const char *c = nl + 1, *end = p + vl, *nl2 = memchr(c, '\n', (size_t)(end - c));
		struct member *m = member_set(n, id, p, (size_t)(nl - p), c,
		    (size_t)((nl2 ? nl2 : end) - c));
		if (m) {
			m->in_log = 1;
			m->guard = nl2 != NULL;
		}
	}
	return 0;
}

/* The members: --peer, then what the state holds from the log. */
static void
members_load(struct node *n)
{
	struct store_txn *t;
	for (int i = 0; i < n->cfg->npeers; i++) {
		const struct node_peer *p = &n->cfg->peers[i];
		member_set(n, p->id, p->raft_url, strlen(p->raft_url), p->client_url,
		    strlen(p->client_url));
	}
	if (store_begin(n->st, 0, &t) == 0) {
		store_scan(t, DB_META, "member.", 7, 0, member_load_one, n);
		store_abort(t);
	}
}

/* ENT_MEMBER: a member's addresses come or go, on every node. */
static void
member_apply(struct node *n, const struct ent_member *e)
{
	uint8_t key[15];
	memcpy(key, "member.", 7);
	be64_put(key + 7, e->id);
	if (e->op == ENT_MEMBER_ADD) {
		struct member *m = member_set(n, e->id, e->raft_url.p, e->raft_url.len,
		    e->client_url.p, e->client_url.len);
		struct wbuf v = {0};
		if (!m) {
			log_warnx("member %" PRIu64 ": no room (at most %d members)", e->id, NODE_MAX_PEERS);
			return;
		}
		m->in_log = 1;
		m->guard = e->guard;
		if (wb_raw(&v, e->raft_url.p, e->raft_url.len) || wb_u8(&v, '\n') ||
		    wb_raw(&v, e->client_url.p, e->client_url.len) ||
		    (e->guard && (wb_u8(&v, '\n') || wb_u8(&v, 'g'))))
			fatalx("out of memory");
		commit_put(n->cm, DB_META, key, sizeof key, v.p, v.len);
		wbuf_free(&v);
		return;
	}
	struct member *m = member_find(n, e->id);
	if (m) {
		m->gone = m->in_log = 1;
		if (n->rt && e->id != n->cfg->node_id)
			rtrans_remove_peer(n->rt, e->id);
	}
	commit_put(n->cm, DB_META, key, sizeof key, "-", 1);
	if (e->id == n->cfg->node_id)
		log_warnx("this node was removed from the mesh; stop it");
}

/*
 * The leader's part: put the --peer members' addresses in the log once a
 * term (so that a node that joins later learns them), add a member the log
 * names as a learner, promote learners (Raft refuses until they have caught
 * up), and take removed ones out of the configuration.
 */
static void
members_duties(struct node *n)
{
	struct raft_conf conf;
	if (n->members_term != n->term) {
		n->members_term = n->term;
		for (int i = 0; i < n->nmem; i++) {
			struct member *m = &n->mem[i];
			struct ent_member e = {.op = ENT_MEMBER_ADD, .guard = (uint8_t)m->guard, .id = m->id,
			    .raft_url = {m->raft, strlen(m->raft)},
			    .client_url = {m->client, strlen(m->client)}};
			struct wbuf b = {0};
			if (m->in_log || m->gone)
				continue;
			if (ent_enc_member(&b, &e))
				fatalx("out of memory");
			propose_wbuf(n, ENT_MEMBER, &b, NULL);
		}
	}
	raft_conf(n->raft, &conf);
	for (int i = 0; i < n->nmem; i++) {
		struct member *m = &n->mem[i];
		int role = raft_conf_role(&conf, m->id);
		struct raft_conf_change cc = {0, m->id};
		if (m->gone && role >= 0 && m->id != n->cfg->node_id)
			cc.type = RAFT_CC_REMOVE;
		else if (!m->gone && m->in_log && role < 0)
			cc.type = RAFT_CC_ADD_LEARNER;
		else if (!m->gone && role == 0 && !m->guard)
			cc.type = RAFT_CC_PROMOTE;
		if (!cc.type)
			continue;
		int rc = raft_propose_conf(n->raft, &cc, NULL, NULL);
		if (rc == 0)
			log_info("raft: proposed %s node %" PRIu64, cc.type == RAFT_CC_REMOVE ? "removing" :
			    cc.type == RAFT_CC_ADD_LEARNER ? "adding as a learner" : "promoting to voter",
			    m->id);
		break; /* one change at a time */
	}
}

/* babl node add ID RAFT_URL CLIENT_URL | babl node remove ID (on the leader). */
static void
q_node(struct session *s, const char *verb, const char *args)
{
	struct node *n = s->n;
	unsigned long long id = 0;
	char raft[ENT_MEMBER_URL_MAX + 2], client[ENT_MEMBER_URL_MAX + 2];
	struct ent_member e = {0};
	struct wbuf b = {0};
	int k;
	if (!n->cluster) {
		send_error(s, BABL_EUSAGE, "this node runs alone (no --node-id): there is no mesh to change");
		return;
	}
	if (strcmp(verb, "add") == 0) {
		const char *gw = strstr(args, " guard");
		if (gw && strcmp(gw, " guard") == 0)
			e.guard = 1;
		if (sscanf(args, "%llu %256s %256s%n", &id, raft, client, &k) != 3 ||
		    (args[k] && !e.guard) || !id ||
		    id > UINT32_MAX || strlen(raft) > ENT_MEMBER_URL_MAX ||
		    strlen(client) > ENT_MEMBER_URL_MAX ||
		    (strncmp(raft, "tcp://", 6) && strncmp(raft, "ipc://", 6)) ||
		    (strncmp(client, "tcp://", 6) && strncmp(client, "ipc://", 6))) {
			send_error(s, BABL_EUSAGE, "node add: give ID (1 and up) RAFT_URL CLIENT_URL [guard] "
			    "(tcp:// or ipc:// URLs)");
			return;
		}
		struct member *m = member_find(n, id);
		if (m && !m->gone && (strcmp(m->raft, raft) || strcmp(m->client, client))) {
			send_error(s, BABL_EINPUT, "node %llu is already a member, at %s; remove it first",
			    id, m->raft);
			return;
		}
		e.op = ENT_MEMBER_ADD;
		e.raft_url = (struct wire_str){raft, strlen(raft)};
		e.client_url = (struct wire_str){client, strlen(client)};
	} else if (strcmp(verb, "remove") == 0) {
		struct member *m;
		if (sscanf(args, "%llu%n", &id, &k) != 1 || args[k] || !(m = member_find(n, id)) ||
		    m->gone) {
			send_error(s, BABL_EINPUT, "node remove: %s is not a member", args);
			return;
		}
		if (id == n->cfg->node_id) {
			for (int i = 0; i < n->nmem; i++)
				if (n->mem[i].id != id && !n->mem[i].gone &&
				    raft_transfer_leader(n->raft, n->mem[i].id) == 0) {
					send_error(s, BABL_EBUSY, "node %llu leads the mesh: leadership is moving "
					    "to node %" PRIu64 "; run the command again", id, n->mem[i].id);
					return;
				}
			send_error(s, BABL_EBUSY, "node %llu leads the mesh and no other voter can take over", id);
			return;
		}
		e.op = ENT_MEMBER_REMOVE;
		e.raft_url = e.client_url = (struct wire_str){"", 0};
	} else {
		send_error(s, BABL_EUSAGE, "node: add or remove");
		return;
	}
	e.id = id;
	if (ent_enc_member(&b, &e))
		fatalx("out of memory");
	s->pinned++;
	propose_wbuf(n, ENT_MEMBER, &b, s);
}

/* meshd --join URL: ask the mesh at URL to add this node. */
static void
cluster_join(struct node *n)
{
	struct member *self = member_find(n, n->cfg->node_id);
	struct conn *c;
	struct wbuf b = {0};
	struct wire_frame f;
	char why[1024], args[600];
	int rc, tries;
	snprintf(args, sizeof args, "%" PRIu64 " %s %s%s", self->id, self->raft, self->client,
	    n->cfg->guard ? " guard" : "");
	for (tries = 0; tries < 20; tries++) {
		if ((rc = conn_dial(&c, n->cfg->join, 5000, why, sizeof why)))
			fatalx("--join: %s", why);
		wbuf_reset(&b);
		if (wire_enc_query(&b, WIRE_Q_NODE, "add", args) || conn_send(c, b.p, b.len))
			fatalx("--join: cannot send the request to %s", n->cfg->join);
		int again = 0;
		while ((rc = conn_recv(c, &f, 30000)) == 0) {
			struct wire_error er;
			if (f.type == WIRE_TEXT) {
				char line[1200];
				const char *p = (const char *)f.p, *end = p + f.len;
				while (p < end) {
					const char *nl = memchr(p, '\n', (size_t)(end - p));
					size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
					unsigned long long id;
					char ru[ENT_MEMBER_URL_MAX + 1], cu[ENT_MEMBER_URL_MAX + 1];
					snprintf(line, sizeof line, "%.*s", (int)len, p);
					if (sscanf(line, "peer: %llu %255s %255s", &id, ru, cu) == 3)
						member_set(n, id, ru, strlen(ru), cu, strlen(cu));
					else
						log_info("--join: %s", line);
					p += len + (nl ? 1 : 0);
				}
			} else if (f.type == WIRE_ERROR && wire_dec_error(&f, &er) == 0) {
				if (er.code != BABL_EUNREACH)
					fatalx("--join: the mesh at %s refused: %.*s", n->cfg->join,
					    (int)er.msg.len, er.msg.p);
				log_info("--join: %.*s; trying again", (int)er.msg.len, er.msg.p);
				again = 1;
				break;
			} else {
				break;
			}
		}
		conn_close(c);
		if (!again && rc == 0)
			break;
		if (!again)
			fatalx("--join: %s did not answer: %s", n->cfg->join, babl_strerror(rc));
		sleep(1);
	}
	wbuf_free(&b);
}

/* Drive Raft: messages in, ticks, proposals, ready batches out. */
static void
cluster_pump(struct node *n)
{
	for (int rounds = 0; rounds < 64; rounds++) {
		if (n->rd_busy) {
			int rc;
			if (!commit_job_done(n->cm, &rc))
				return;
			if (rc)
				fatalx("cannot persist the replicated log: %s (%s)", babl_strerror(rc),
				    rstore_errstr(n->rs));
			n->saved_term = n->rd.hs.term;
			n->saved_vote = n->rd.hs.vote;
			n->rd_busy = 0;
			cluster_finish(n, 1);
			cluster_role(n);
		}
		rtrans_recv(n->rt, on_raft_msg, n);
		/* One tick at most per turn: after a stall (a busy machine, a
		 * long batch to apply) time resumes instead of running out at
		 * once, which would start an election before the leader's
		 * waiting heartbeats are read. */
		int64_t t = now_ms();
		if (t >= n->next_tick_ms) {
			raft_tick(n->raft);
			n->next_tick_ms = t + n->cfg->tick_ms;
		}
		cluster_role(n);
		cluster_duties(n);
		cluster_flush(n);
		if (raft_ready(n->raft, &n->rd) <= 0)
			return;
		struct raft_ready *rd = &n->rd;
		/* The commit index alone need not be synced: it is learnt again. */
		int hs = rd->hs_changed && (rd->hs.term != n->saved_term || rd->hs.vote != n->saved_vote);
		if (rd->snap || rd->truncate || rd->nentries || hs) {
			if (commit_job(n->cm, persist_job, n))
				fatalx("raft: the commit thread is busy");
			n->rd_busy = 1;
			/* A leader's appends go out while it writes them: the
			 * followers' writes overlap its own (raft_early). */
			cluster_send(n, rd, 1);
			return;
		}
		cluster_finish(n, 0);
		cluster_role(n);
	}
}

/* A follower's client that asks for a call or a deploy goes to the leader. */
/* A client a proxy could not take anywhere comes back (proxy_set_back). */
struct backitem {
	struct backitem *next;
	nng_stream *st;
	size_t len;
	uint8_t pre[];
};

static void
proxy_back(void *arg, nng_stream *st, const void *pre, size_t len)
{
	struct node *n = arg;
	struct backitem *b = malloc(sizeof *b + len);
	if (!b) {
		nng_stream_close(st);
		nng_stream_free(st);
		return;
	}
	b->st = st;
	b->len = len;
	memcpy(b->pre, pre, len);
	pthread_mutex_lock(&n->rlock);
	b->next = n->back;
	n->back = b;
	pthread_mutex_unlock(&n->rlock);
	wake(n);
}

/* Sessions again for them, waiting for a leader this node can reach. */
static void
take_back(struct node *n)
{
	pthread_mutex_lock(&n->rlock);
	struct backitem *list = n->back;
	n->back = NULL;
	pthread_mutex_unlock(&n->rlock);
	if (list) {
		n->lead_bad = n->lead_id;
		n->lead_bad_ms = now_ms();
	}
	while (list) {
		struct backitem *b = list;
		list = b->next;
		struct session *s = session_new(n, b->st);
		if (s) {
			if (!(s->hbuf = malloc(b->len ? b->len : 1)))
				fatalx("out of memory");
			memcpy(s->hbuf, b->pre, b->len);
			s->hlen = b->len;
			s->greeted = s->asked = s->handoff = 1;
			s->hurl[0] = 0;
			s->hdeadline = now_ms() + HANDOFF_WAIT_MS;
		}
		free(b);
	}
}

/* The client URL of the leader (this node's own if it leads), or NULL. */
static const char *
leader_url(struct node *n)
{
	/* A leader not heard from for a while, or not since it could not be
	 * reached, may be dead: wait for news. */
	if (n->lead_id != n->cfg->node_id &&
	    (now_ms() - n->lead_heard_ms > LEAD_SILENT_TICKS * (int64_t)n->cfg->tick_ms ||
	    (n->lead_id == n->lead_bad && n->lead_heard_ms <= n->lead_bad_ms)))
		return NULL;
	for (int i = 0; i < n->nmem; i++)
		if (n->mem[i].id == n->lead_id && n->lead_id && !n->mem[i].gone)
			return n->mem[i].client;
	return NULL;
}

static void
session_handoff(struct session *s)
{
	if (!(s->hbuf = malloc(s->rlen ? s->rlen : 1)))
		fatalx("out of memory");
	memcpy(s->hbuf, s->rbuf + s->rhead, s->rlen);
	s->hlen = s->rlen;
	s->handoff = 1;
	s->asked = 1;
	/* With no leader yet (an election), wait a little for one. */
	s->hurl[0] = 0;
	s->hdeadline = now_ms() + HANDOFF_WAIT_MS;
}

static void
session_try_handoff(struct session *s)
{
	if (!s->handoff || s->dead)
		return;
	if (!s->hurl[0]) {
		const char *url = leader_url(s->n);
		if (!url) {
			if (now_ms() < s->hdeadline)
				return;
			s->handoff = 0;
			free(s->hbuf);
			s->hbuf = NULL;
			send_error(s, BABL_EUNREACH, "the mesh has had no leader for %d s (an election "
			    "is under way, or too few nodes are up); call again later",
			    HANDOFF_WAIT_MS / 1000);
			return;
		}
		/* If it cannot be reached (it may have just died), the proxy
		 * hands the client back to wait for the next (take_back). */
		snprintf(s->hurl, sizeof s->hurl, "%s", url);
		log_debug("session %" PRIu64 ": handed to the leader at %s", s->id, url);
	}
	/* Once what was queued to the client has gone. */
	if (s->rbusy || s->sbusy || s->sq || s->w.queued)
		return;
	int rc = proxy_start(s->n->px, s->s, s->hurl, s->hbuf, s->hlen);
	if (rc)
		log_warnx("session %" PRIu64 ": cannot hand it to the leader: %s", s->id, babl_strerror(rc));
	s->s = NULL; /* the proxy owns the stream now, also on error */
	s->dead = 1;
	free(s->hbuf);
	s->hbuf = NULL;
}

/* ---- digests and guards ---- */

static void
member_key(uint8_t key[18], const char *tag, uint64_t a, uint64_t b)
{
	key[0] = (uint8_t)tag[0];
	key[1] = (uint8_t)tag[1];
	be64_put(key + 2, a);
	be64_put(key + 10, b);
}

/* A node's key is the one its first digest batch in the log showed. */
static int
nodekey_check(struct node *n, uint64_t id, const uint8_t pk[32])
{
	uint8_t k[18];
	struct store_txn *t;
	const void *v;
	size_t vl;
	for (int i = 0; i < n->nnkeys; i++)
		if (n->nkeys[i].id == id)
			return memcmp(n->nkeys[i].pk, pk, 32) == 0;
	member_key(k, "nk", id, 0);
	int known = 0, same = 1;
	if (store_begin(n->st, 0, &t) == 0) {
		if (store_get(t, DB_META, k, 10, &v, &vl) == 0 && vl == 32) {
			known = 1;
			same = memcmp(v, pk, 32) == 0;
		}
		store_abort(t);
	}
	if (!known)
		commit_put(n->cm, DB_META, k, 10, pk, 32);
	if (same && n->nnkeys < NODE_MAX_PEERS) {
		n->nkeys[n->nnkeys].id = id;
		memcpy(n->nkeys[n->nnkeys++].pk, pk, 32);
	}
	return same;
}

/*
 * A node whose batches carry another key (its data directory was replaced,
 * say) sends one every DIGEST_FLUSH_MS: say so the first time and then at
 * most once per NODEKEY_WARN_MS, with the count, not once per batch.
 */
#define NODEKEY_WARN_MS 60000
static void
nodekey_warn(struct node *n, uint64_t id, uint64_t index)
{
	uint64_t t = now_ms();
	int i;
	for (i = 0; i < n->nnkwarn && n->nkwarn[i].id != id; i++)
		;
	if (i == n->nnkwarn) {
		if (n->nnkwarn < NODE_MAX_PEERS)
			n->nnkwarn++;
		else
			i = 0; /* (full: the first node's count is dropped) */
		n->nkwarn[i].id = id;
		n->nkwarn[i].ignored = 0;
		n->nkwarn[i].last_ms = t;
		log_warnx("digest batch at %" PRIu64 " says it is node %" PRIu64 "'s but is signed "
		    "with another key than the one the log first showed for that node (was its "
		    "data directory replaced?); its batches are ignored", index, id);
		return;
	}
	n->nkwarn[i].ignored++;
	if (t - n->nkwarn[i].last_ms >= NODEKEY_WARN_MS) {
		log_warnx("node %" PRIu64 ": %" PRIu64 " more digest batches signed with another key "
		    "ignored, the last at %" PRIu64, id, n->nkwarn[i].ignored, index);
		n->nkwarn[i].ignored = 0;
		n->nkwarn[i].last_ms = t;
	}
}

/* Reports go in the log, through the leader. */
static void
report_send(struct node *n, const struct gd_report *r)
{
	struct wbuf b = {0};
	char a[17], g[17], diff[GD_DIFF_TEXT];
	hex_encode(r->node_sum.digest, 8, a);
	hex_encode(r->guard_sum.digest, 8, g);
	gd_diff_text(&r->guard_sum, &r->node_sum, diff, sizeof diff);
	log_warnx("divergence: call %" PRIu64 ": node %" PRIu64 " signed digest %s..., this guard "
	    "computed %s... (guard vs node: %s)", r->call, r->node, a, g, diff);
	if (n->checking) {
		char nd[65], gd[65], svc[200] = "?", rq[33] = "?";
		struct store_txn *t;
		uint64_t vn = 0;
		if (store_begin(n->st, 0, &t) == 0) {
			call_label(n, t, r->call, svc, &vn, rq);
			store_abort(t);
		}
		hex_encode(r->node_sum.digest, 32, nd);
		hex_encode(r->guard_sum.digest, 32, gd);
		if (r->call != n->check_last)
			text_add(n->check_out, "divergence at log index %" PRIu64 ": %s v%" PRIu64
			    ", request %s\n  the replay computed %s\n", r->call, svc, vn, rq, gd);
		text_add(n->check_out, "  node %" PRIu64 " signed %s\n    replay vs node: %s\n", r->node,
		    nd, diff);
		n->check_last = r->call;
		n->check_reports++;
		return;
	}
	if (gd_report_enc(&b, r))
		fatalx("out of memory");
	if (!n->cluster || n->leader)
		propose_wbuf(n, ENT_REPORT, &b, NULL);
	else if (n->snd)
		sender_put(n->snd, WIRE_Q_REPORT, b.p, b.len);
	wbuf_free(&b);
}

static void
guard_note(struct node *n, uint64_t call, uint64_t node, int self, const struct gd_sum *sum)
{
	struct gd_report r[GD_NODES];
	int k = gd_note(n->gd, call, node, self, sum, r, GD_NODES);
	if (k < 0)
		fatalx("out of memory");
	for (int i = 0; i < k; i++) {
		r[i].guard = n->cfg->node_id;
		report_send(n, &r[i]);
	}
}

/* This node's signed digests leave as a batch: proposed by a leader, sent
 * to the leader otherwise. */
static void
digest_flush(struct node *n)
{
	struct wbuf b = {0};
	if (!n->dg_n)
		return;
	if (gd_batch_seal(&b, n->cluster ? n->cfg->node_id : 1, n->node_pk, n->node_sk,
	    n->dg_items.p, n->dg_n))
		fatalx("out of memory");
	if (!n->cluster || n->leader)
		propose_wbuf(n, ENT_DIGEST, &b, NULL);
	else if (n->snd)
		sender_put(n->snd, WIRE_Q_DIGESTS, b.p, b.len);
	wbuf_free(&b);
	wbuf_reset(&n->dg_items);
	n->dg_n = 0;
}

/* A run ended here: a member signs its digest, a guard compares it.  Runs
 * cut short (cancelled, timed out, a restart, no room) are not compared. */
static void
digest_local(struct node *n, struct call *c, const struct ent_outcome *o)
{
	struct gd_sum sum;
	/* A program that is not the one the bundle pins is an outcome to
	 * compare too: it is how a patched binary on one node shows. */
	if ((o->why != ENT_WHY_NONE && o->why != ENT_WHY_PROGRAM) || !c->index || n->cfg->no_digests)
		return;
	gd_run_final(&c->dg, o->kind, o->code, o->nwrites ? o->writes.p : NULL,
	    o->nwrites ? o->writes.len : 0, &sum);
	memcpy(c->digest, sum.digest, 32);
	c->has_digest = 1;
	if (n->cfg->guard) {
		guard_note(n, c->index, n->cfg->node_id, 1, &sum);
		return;
	}
	if (!n->dg_n)
		n->dg_since = now_ms();
	if (gd_item_add(&n->dg_items, c->index, &sum))
		fatalx("out of memory");
	if (++n->dg_n >= GD_BATCH_MAX)
		digest_flush(n);
}

/*
 * A committed digest batch.  In a mesh its signature was checked before it
 * was proposed: a leader proposes its own batches and those a member sends
 * it only once gd_batch_open accepts them (WIRE_Q_DIGESTS).  So a member
 * reads the layout alone, as it trusts the leader with every other entry,
 * and a follower catching up does not verify thousands of signatures.  A
 * guard, whose job is not to trust, checks every one, and so does a single
 * node (whose log may have been imported).
 */
static void
apply_digest(struct node *n, const struct entry *e)
{
	uint64_t node;
	const uint8_t *pk, *items;
	uint32_t cnt;
	uint8_t k[18];
	int (*parse)(const void *, size_t, uint64_t *, const uint8_t **, uint32_t *,
	    const uint8_t **) = n->cluster && !n->cfg->guard ? gd_batch_read : gd_batch_open;
	if (parse(e->payload, e->len, &node, &pk, &cnt, &items)) {
		log_warnx("digest batch at %" PRIu64 ": bad layout or signature; ignored", e->index);
		return;
	}
	if (!nodekey_check(n, node, pk)) {
		nodekey_warn(n, node, e->index);
		return;
	}
	for (uint32_t i = 0; i < cnt; i++) {
		struct gd_sum sum;
		uint64_t call;
		gd_item_get(items, i, &call, &sum);
		member_key(k, "dg", call, node);
		commit_put(n->cm, DB_META, k, sizeof k, sum.digest, 32);
		if (n->cfg->guard)
			guard_note(n, call, node, 0, &sum);
		if (n->nverify)
			verify_digest(n, call, node, sum.digest);
	}
}

static void
apply_report(struct node *n, const struct entry *e)
{
	struct gd_report r;
	uint8_t k[26];
	if (gd_report_dec(e->payload, e->len, &r)) {
		log_warnx("report at %" PRIu64 ": malformed; ignored", e->index);
		return;
	}
	member_key(k, "rp", r.call, r.node);
	be64_put(k + 18, r.guard);
	commit_put(n->cm, DB_META, k, sizeof k, e->payload, e->len);
	if (n->cfg && (!n->cfg->guard || r.guard != n->cfg->node_id)) {
		char diff[GD_DIFF_TEXT];
		gd_diff_text(&r.guard_sum, &r.node_sum, diff, sizeof diff);
		log_warnx("divergence reported by guard %" PRIu64 ": call %" PRIu64 ", node %" PRIu64
		    " (guard vs node: %s)", r.guard, r.call, r.node, diff);
	}
}


/* ---- babl --verify K ---- */

/* Executing nodes: the voters (one on a single node). */
static unsigned
executing_nodes(struct node *n)
{
	struct raft_conf conf;
	unsigned v = 0;
	if (!n->raft)
		return 1;
	raft_conf(n->raft, &conf);
	for (uint32_t i = 0; i < conf.n; i++)
		v += conf.s[i].voter;
	return v;
}

static void
verify_end(struct session *s)
{
	if (s->vcall)
		s->n->nverify--;
	s->vcall = 0;
	s->in_barrier = 0;
	wbuf_free(&s->vheld);
}

/* Release the held output if K nodes signed this run's digest; fail if they
 * no longer can.  Returns 1 when the session is done with it. */
static int
verify_check(struct node *n, struct session *s)
{
	unsigned agree = 0;
	for (unsigned i = 0; i < s->vn; i++)
		agree += s->vhas && memcmp(s->vdg[i], s->vdigest, 32) == 0;
	if (agree >= s->vk) {
		if (!s->dead) {
			if (s->vheld.len) {
				struct wbuf b = s->vheld;
				s->vheld = (struct wbuf){0};
				queue_wbuf(s, &b);
			}
			send_exit(s, s->vkind, s->vcode, NULL);
		}
		verify_end(s);
		return 1;
	}
	unsigned all = executing_nodes(n);
	if (!s->vhas || s->vn >= all || all - s->vn + agree < s->vk) {
		if (!s->dead)
			send_error(s, BABL_EINTERNAL, "--verify %u: only %u of the %u executing node(s) "
			    "that signed a digest of call %" PRIu64 " agree with this node's run; its "
			    "output is withheld (babl verify lists what guards found)", s->vk, agree,
			    s->vn, s->vcall);
		verify_end(s);
		return 1;
	}
	return 0;
}

/* The call ended on the leader: its output waits for the digests. */
static void
verify_hold(struct node *n, struct session *s, struct call *c, const struct ent_outcome *o)
{
	if (c->held_over) {
		send_error(s, BABL_ETOOBIG, "--verify holds at most %llu MiB of output; this call "
		    "wrote more", ID_MAX_OUTPUT >> 20);
		return;
	}
	s->vcall = c->index;
	s->vk = c->verify_k;
	s->vn = 0;
	s->vheld = c->held;
	c->held = (struct wbuf){0};
	s->vkind = o->kind;
	s->vcode = o->code;
	s->vhas = c->has_digest;
	memcpy(s->vdigest, c->digest, 32);
	s->vdeadline = now_ms() + VERIFY_WAIT_MS;
	s->in_barrier = 1;
	n->nverify++;
	/* Digests applied before the run ended here count too (once the
	 * state writes queued so far have landed). */
	struct store_txn *t;
	commit_sync(n->cm);
	if (store_begin(n->st, 0, &t) == 0) {
		for (int i = 0; i < n->nmem && s->vn < GD_NODES; i++) {
			uint8_t k[18];
			const void *v;
			size_t vl;
			member_key(k, "dg", c->index, n->mem[i].id);
			if (store_get(t, DB_META, k, sizeof k, &v, &vl) == 0 && vl == 32) {
				s->vnode[s->vn] = n->mem[i].id;
				memcpy(s->vdg[s->vn++], v, 32);
			}
		}
		store_abort(t);
	}
	verify_check(n, s);
}

/* A signed digest was applied: sessions waiting on that call look again. */
static void
verify_digest(struct node *n, uint64_t call, uint64_t node, const uint8_t d[32])
{
	for (struct session *s = n->sessions; s; s = s->next) {
		if (s->vcall != call)
			continue;
		unsigned i;
		for (i = 0; i < s->vn && s->vnode[i] != node; i++)
			;
		if (i < s->vn || s->vn == GD_NODES)
			continue;
		s->vnode[s->vn] = node;
		memcpy(s->vdg[s->vn++], d, 32);
		verify_check(n, s);
	}
}

/* The leader takes digests and reports from the members, for the log. */
static void
q_digests(struct session *s, uint8_t what, const void *p, size_t len)
{
	struct node *n = s->n;
	uint64_t node;
	const uint8_t *pk, *items;
	uint32_t cnt;
	struct gd_report r;
	struct wbuf b = {0};
	struct member *m;
	if (what == WIRE_Q_DIGESTS) {
		if (gd_batch_open(p, len, &node, &pk, &cnt, &items)) {
			send_error(s, BABL_EPERM, "digest batch: bad layout or signature");
			return;
		}
	} else {
		if (gd_report_dec(p, len, &r)) {
			send_error(s, BABL_EPROTO, "malformed report");
			return;
		}
		node = r.guard;
	}
	if (!(m = member_find(n, node)) || m->gone) {
		send_error(s, BABL_EPERM, "node %" PRIu64 " is not a member of this mesh", node);
		return;
	}
	if (wb_raw(&b, p, len))
		fatalx("out of memory");
	propose_wbuf(n, what == WIRE_Q_DIGESTS ? ENT_DIGEST : ENT_REPORT, &b, NULL);
	send_exit(s, WIRE_EXITED, 0, NULL);
}

/* What babl verify and replay --check name a call by: its service, the
 * version's number and the request id, from its CALL entry ("?" if gone). */
static void
call_label(struct node *n, struct store_txn *t, uint64_t call, char svc[200], uint64_t *vn,
    char rq[2 * ENT_REQID_LEN + 1])
{
	struct entry ce;
	struct ent_call ec;
	snprintf(svc, 200, "?");
	snprintf(rq, 2 * ENT_REQID_LEN + 1, "?");
	*vn = 0;
	if (store_entry(t, call, &ce) || ent_dec_call(&ce, &ec))
		return;
	struct svc *sv;
	struct svc_version *ver;
	char hex[65], why[256];
	hex_encode(ec.vid, 32, hex);
	if (reg_resolve(&n->reg, hex, &sv, &ver, why, sizeof why) == 0) {
		snprintf(svc, 200, "%s", sv->name);
		*vn = ver->n;
	}
	hex_encode(ec.reqid, ENT_REQID_LEN, rq);
}

struct rp_scan {
	struct node *n;
	struct store_txn *t;
	struct text *out;
	const char *name;
	uint64_t count;
	uint64_t per_node_id;
	uint64_t last_call, last_guard; /* reports come in key order: by call */
};

/* One report, as babl verify shows it: a call's reports under one header. */
static int
rp_show(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct rp_scan *x = arg;
	struct gd_report r;
	char svc[200], rq[33], gd[65], nd[65], agree[200] = "", differ[200] = "";
	char diff[GD_DIFF_TEXT];
	uint64_t vn;
	(void)k;
	if (kl != 26 || gd_report_dec(v, vl, &r))
		return 0;
	if (x->per_node_id) {
		x->count += r.node == x->per_node_id;
		return 0;
	}
	call_label(x->n, x->t, r.call, svc, &vn, rq);
	if (x->name[0] && strcmp(x->name, svc))
		return 0;
	/* Which members signed what the guard computed, which did not. */
	for (int i = 0; i < x->n->nmem; i++) {
		uint8_t dk[18];
		const void *dv;
		size_t dl;
		member_key(dk, "dg", r.call, x->n->mem[i].id);
		if (store_get(x->t, DB_META, dk, sizeof dk, &dv, &dl) || dl != 32)
			continue;
		char *to = memcmp(dv, r.guard_sum.digest, 32) == 0 ? agree : differ;
		size_t used = strlen(to);
		snprintf(to + used, 200 - used, "%s%" PRIu64, used ? "," : "", x->n->mem[i].id);
	}
	hex_encode(r.guard_sum.digest, 32, gd);
	hex_encode(r.node_sum.digest, 32, nd);
	if (r.call != x->last_call || r.guard != x->last_guard)
		text_add(x->out, "divergence at log index %" PRIu64 ": %s v%" PRIu64 ", request %s\n"
		    "  guard %" PRIu64 " computed %s\n  agree with the guard: %s; differ: %s\n", r.call,
		    svc, vn, rq, r.guard, gd, agree[0] ? agree : "none", differ[0] ? differ : "none");
	gd_diff_text(&r.guard_sum, &r.node_sum, diff, sizeof diff);
	text_add(x->out, "  node %" PRIu64 " signed %s\n    guard vs node: %s\n", r.node, nd, diff);
	x->last_call = r.call;
	x->last_guard = r.guard;
	x->count++;
	return 0;
}

/* The reports in the state: listed into out (for NAME, or all), or counted
 * for one node (per_node_id).  Returns how many. */
static uint64_t
reports(struct node *n, const char *name, struct text *out, uint64_t per_node_id)
{
	struct rp_scan x = {n, NULL, out, name ? name : "", 0, per_node_id, 0, 0};
	if (store_begin(n->st, 0, &x.t))
		return 0;
	store_scan(x.t, DB_META, "rp", 2, 0, rp_show, &x);
	store_abort(x.t);
	return x.count;
}

/* meshd replay --check: apply the stored log a little at a time, running
 * its calls as a guard does (memory stays bounded by the calls running). */
static void
check_feed(struct node *n)
{
	struct store_txn *t;
	if (n->applied >= n->check_tail || n->ncalls >= 64 || n->input_inflight >= INPUT_BUDGET)
		return;
	if (store_begin(n->st, 0, &t))
		fatalx("cannot read the log");
	/* A batch, as the commit thread gives one: applying it, a call sees
	 * whether its input follows it whole (eof_ahead). */
	struct prop *head = NULL, **tail = &head;
	uint64_t i = n->applied;
	for (int k = 0; k < 64 && i < n->check_tail; k++) {
		struct entry e;
		i++;
		if (store_entry(t, i, &e))
			fatalx("log entry %" PRIu64 " cannot be read", i);
		struct prop *p = calloc(1, sizeof *p);
		if (!p || !(p->buf = malloc(e.len ? e.len : 1)))
			fatalx("out of memory");
		p->e.type = e.type;
		p->e.index = e.index;
		p->e.term = e.term;
		p->e.len = e.len;
		memcpy(p->buf, e.payload, e.len);
		n->check_calls += e.type == ENT_CALL;
		*tail = p;
		tail = &p->next;
	}
	store_abort(t);
	while (head) {
		struct prop *nx = head->next;
		apply_prop(n, head);
		head = nx;
	}
}

/* ---- the loop ---- */

/* A native call's program ended with wait status st. */
static void
call_ended(struct call *c, int st)
{
	c->exited = 1;
	c->status = st;
	call_drop_input(c);
	call_maybe_finish(c);
}

static void
reap_children(struct node *n)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (struct lw *w = n->workers; w; w = w->next) {
			if (w->pid == pid) {
				w->exited = 1;
				if (!w->dead)
					log_warnx("Lua worker %d exited unexpectedly (status 0x%x)", (int)pid, st);
				lw_kill(w);
				w->pid = -pid;
			}
		}
		for (struct call *c = n->calls; c; c = c->next) {
			if (c->pid == pid) {
				c->pid = -pid; /* keep the group id for a final kill */
				/* Anything the service left running in its group goes too. */
				kill(pid * -1, SIGKILL);
				call_ended(c, st);
				break;
			}
		}
	}
}

/* The spawner's word that calls ended (it has killed their groups). */
static void
reap_spawned(struct node *n)
{
	uint32_t id;
	int st, r, alone;

	while ((r = sbx_reaped(n->sbx, &id, &st, &alone)) != 0) {
		if (r < 0) {
			log_warnx("the sandbox spawner is gone; its calls are killed, "
			    "and calls start through the launcher from now on");
			continue;
		}
		for (struct call *c = n->calls; c; c = c->next) {
			if (c->spawned && !c->exited && c->slot == id) {
				c->alone = alone;
				call_ended(c, st);
				break;
			}
		}
	}
}

static void
process_ready(struct node *n)
{
	for (;;) {
		pthread_mutex_lock(&n->rlock);
		struct waker *w = n->ready;
		if (w) {
			n->ready = w->rnext;
			if (!n->ready)
				n->readyt = &n->ready;
			w->queued = 0;
		}
		int rdone = 0, sdone = 0, adone = 0;
		if (w && w->kind == W_SESSION) {
			struct session *s = (struct session *)w;
			rdone = s->rdone;
			sdone = s->sdone;
			s->rdone = s->sdone = 0;
		} else if (w) {
			struct acceptor *a = (struct acceptor *)w;
			adone = a->done;
			a->done = 0;
		}
		pthread_mutex_unlock(&n->rlock);
		if (!w)
			break;
		if (w->kind == W_LISTENER) {
			struct acceptor *a = (struct acceptor *)w;
			if (!adone)
				continue;
			int rv = nng_aio_result(a->aio);
			if (rv == 0)
			{
				struct session *ns = session_new(n, nng_aio_get_output(a->aio, 0));
				if (ns)
					session_recv(ns);
			}
			else if (rv != NNG_ECLOSED)
				log_warnx("accept on %s: %s", a->l->url, nng_strerror(rv));
			if (!n->stopping && rv != NNG_ECLOSED)
				nng_stream_listener_accept(a->l->l, a->aio);
			continue;
		}
		struct session *s = (struct session *)w;
		if (sdone)
			on_sent(s);
		if (rdone)
			on_recv(s);
		session_try_handoff(s);
		session_reap(s);
	}
}

static int
start_listeners(struct node *n)
{
	for (int i = 0; i < n->cfg->nlisten; i++) {
		struct listener *l = &n->lst[i];
		const char *url = n->cfg->listen[i];
		int rv;
		l->n = n;
		snprintf(l->url, sizeof l->url, "%s", url);
		if (strncmp(url, "ipc://", 6) == 0) {
			char dir[PATH_MAX];
			snprintf(dir, sizeof dir, "%s", url + 6);
			char *slash = strrchr(dir, '/');
			if (slash && slash != dir) {
				*slash = 0;
				paths_mkdirs(dir, 0755);
			}
			/* A socket left by a node that died is replaced. */
			nng_stream_dialer *d;
			nng_aio *aio;
			if (nng_stream_dialer_alloc(&d, url) == 0) {
				if (nng_aio_alloc(&aio, NULL, NULL) == 0) {
					nng_aio_set_timeout(aio, 1000);
					nng_stream_dialer_dial(d, aio);
					nng_aio_wait(aio);
					if (nng_aio_result(aio) == 0) {
						nng_stream *st = nng_aio_get_output(aio, 0);
						nng_stream_free(st);
						log_warnx("%s: another node is already listening there", url);
						nng_aio_free(aio);
						nng_stream_dialer_free(d);
						return -1;
					}
					nng_aio_free(aio);
				}
				nng_stream_dialer_free(d);
			}
			unlink(url + 6);
		}
		if ((rv = conn_listener_alloc(&l->l, url)) ||
		    (rv = nng_stream_listener_listen(l->l))) {
			log_warnx("cannot listen on %s: %s", url, nng_strerror(rv));
			return -1;
		}
		if (strncmp(url, "ipc://", 6) == 0)
			chmod(url + 6, 0666);
		n->nlst = i + 1;
		for (int k = 0; k < LISTEN_ACCEPTS; k++) {
			struct acceptor *a = &l->acc[k];
			a->w.kind = W_LISTENER;
			a->l = l;
			if ((rv = nng_aio_alloc(&a->aio, accept_cb, a)))
				fatalx("nng_aio_alloc: %s", nng_strerror(rv));
			nng_stream_listener_accept(l->l, a->aio);
		}
		log_info("listening on %s", url);
	}
	return 0;
}

static void
stop_listeners(struct node *n)
{
	for (int i = 0; i < n->nlst; i++) {
		struct listener *l = &n->lst[i];
		nng_stream_listener_close(l->l);
		for (int k = 0; k < LISTEN_ACCEPTS; k++) {
			nng_aio_free(l->acc[k].aio); /* waits for the callback */
			l->acc[k].aio = NULL;
		}
		nng_stream_listener_free(l->l);
		if (strncmp(l->url, "ipc://", 6) == 0)
			unlink(l->url + 6);
	}
	/* Drop the listeners from the ready list. */
	pthread_mutex_lock(&n->rlock);
	struct waker **pp = &n->ready;
	n->readyt = &n->ready;
	while (*pp) {
		if ((*pp)->kind == W_LISTENER) {
			(*pp)->queued = 0;
			*pp = (*pp)->rnext;
		} else {
			n->readyt = &(*pp)->rnext;
			pp = &(*pp)->rnext;
		}
	}
	pthread_mutex_unlock(&n->rlock);
	n->nlst = 0;
}

static void
check_timers(struct node *n)
{
	int64_t t = now_ms();
	for (struct call *c = n->calls; c; c = c->next) {
		if (c->state == C_RUNNING && c->deadline_ms && t >= c->deadline_ms && !c->exited &&
		    !c->killed) {
			char msg[128];
			snprintf(msg, sizeof msg, "killed after its %.0f s wall-clock limit",
			    (c->deadline_ms - c->start_ms) / 1000.0);
			log_info("call %" PRIu64 ": %s %s", c->index, c->svc->name, msg);
			call_kill(c, ENT_WHY_TIMEOUT, msg);
		}
	}
	for (struct session *s = n->sessions; s; s = s->next) {
		if (s->vcall && (s->dead || t >= s->vdeadline)) {
			if (!s->dead)
				send_error(s, BABL_ETIMEDOUT, "--verify %u: only %u executing node(s) signed "
				    "a digest of call %" PRIu64 " within %d s; its output is withheld", s->vk,
				    s->vn, s->vcall, VERIFY_WAIT_MS / 1000);
			verify_end(s);
		}
		if (!s->asked && !s->dead && !s->closing && t >= s->hello_deadline)
			session_kill(s, s->ncalls ? NULL : "no request within 10 s");
		if (s->linger && !s->dead && t >= s->linger_deadline)
			session_kill(s, NULL);
	}
}

/* Expired --id records go, with their recorded output. */
struct prune_ctx {
	struct node *n;
	struct store_txn *t;
	uint64_t cutoff;
	int count;
};

static int
prune_out(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct prune_ctx *x = arg;
	(void)v;
	(void)vl;
	commit_del(x->n->cm, DB_IDOUT, k, kl);
	return 0;
}

static int
prune_one(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct prune_ctx *x = arg;
	if (kl != 32 || vl < 8 || be64_get(v) >= x->cutoff)
		return 0;
	for (struct call *c = x->n->calls; c; c = c->next)
		if (c->idkey && memcmp(c->ikey, k, 32) == 0)
			return 0;
	store_scan(x->t, DB_IDOUT, k, 32, 0, prune_out, x);
	commit_del(x->n->cm, DB_IDEM, k, 32);
	return ++x->count >= 10000;
}

static void
prune_ids(struct node *n)
{
	struct prune_ctx x = {n, NULL, 0, 0};
	uint64_t w = wall_ms();
	if (w < n->cfg->id_retention_ms || store_begin(n->st, 0, &x.t))
		return;
	x.cutoff = w - n->cfg->id_retention_ms;
	store_scan(x.t, DB_IDEM, NULL, 0, 0, prune_one, &x);
	store_abort(x.t);
	if (x.count)
		log_info("pruned %d expired --id outcome(s)", x.count);
}

static void
begin_shutdown(struct node *n, int sig)
{
	if (n->stopping)
		return;
	log_info("%s: stopping (%u running call(s) cancelled)", strsignal(sig), n->ncalls);
	n->stopping = 1;
	n->stop_deadline = now_ms() + SHUTDOWN_GRACE_MS;
	stop_listeners(n);
	for (struct call *c = n->calls; c; c = c->next) {
		call_propose_cancel(c, ENT_WHY_CANCELLED, "the node is shutting down");
		call_kill(c, ENT_WHY_CANCELLED, "the node is shutting down");
	}
}

/* Mark what the pipes' events allow (they are acted on in serve_pipes). */
static void
take_pipe_events(struct node *n)
{
	struct epoll_event ev[64];
	int got;

	do {
		got = epoll_wait(n->ep_fd, ev, 64, 0);
		for (int i = 0; i < got; i++) {
			struct call *c = (struct call *)(uintptr_t)(ev[i].data.u64 & ~(uint64_t)7);
			c->rdy |= (unsigned)(ev[i].data.u64 & 7);
		}
	} while (got == 64);
}

/*
 * Move what the native calls' pipes allow.  The end of an output may end a
 * call (in a cluster, free it at once), so the walk starts again from the
 * head after one: at most twice per call, as each end closes a pipe.
 */
static void
serve_pipes(struct node *n)
{
again:
	for (struct call *c = n->calls; c; c = c->next) {
		if (!call_actionable(c))
			continue;
		if ((c->rdy & CALL_RDY_IN) && c->fd_in >= 0 && c->inq)
			call_write_input(c);
		if ((c->rdy & CALL_RDY_ERR) && c->fd_err >= 0 && !c->ebusy &&
		    call_read_output(c, 2))
			goto again;
		if ((c->rdy & CALL_RDY_OUT) && c->fd_out >= 0 && !c->obusy &&
		    call_read_output(c, 1))
			goto again;
	}
}

static int
run_loop(struct node *n)
{
	struct pollfd *pfd = NULL;
	struct lw **pw = NULL; /* by pfd index, from 4: the worker polled */
	size_t pcap = 0;
	for (;;) {
		if (n->stopping && (!n->calls || now_ms() > n->stop_deadline) &&
		    commit_backlog(n->cm) == 0 && !n->rd_busy)
			break;
		if (n->checking) {
			check_feed(n);
			if (n->applied >= n->check_tail && !n->calls)
				break;
		}
		/* Room for the four fixed fds and two per worker. */
		size_t nw = 0;
		for (struct lw *w = n->workers; w; w = w->next)
			nw++;
		size_t need = 4 + 2 * nw;
		if (need > pcap) {
			pcap = need * 2;
			pfd = realloc(pfd, pcap * sizeof *pfd);
			pw = realloc(pw, pcap * sizeof *pw);
			if (!pfd || !pw)
				fatalx("out of memory");
		}
		/* What this turn queued for the Lua workers goes in one write
		 * each (a call, its input and its end together). */
		for (struct lw *w = n->workers; w; w = w->next)
			lua_flush(n, w);
		session_flush_turn(n);
		commit_flush(n->cm);
		size_t k = 0;
		pfd[k++] = (struct pollfd){n->wake_fd, POLLIN, 0};
		pfd[k++] = (struct pollfd){n->sig_fd, POLLIN, 0};
		pfd[k++] = (struct pollfd){sbx_fd(n->sbx), POLLIN, 0};
		pfd[k++] = (struct pollfd){n->ep_fd, POLLIN, 0};
		/* A worker is not read while its caller is far behind in
		 * reading its output (memory stays bounded). */
		for (struct lw *w = n->workers; w; w = w->next)
			w->behind = 0;
		for (struct call *c = n->calls; c; c = c->next)
			if (c->w && c->sess && c->sess->sqn > LW_READ_BEHIND)
				c->w->behind = 1;
		for (struct lw *w = n->workers; w; w = w->next) {
			if (w->dead)
				continue;
			if (!w->behind) {
				pw[k] = w;
				pfd[k++] = (struct pollfd){w->fd_from, POLLIN, 0};
			}
			if (w->q.len > w->qoff) {
				pw[k] = w;
				pfd[k++] = (struct pollfd){w->fd_to, POLLOUT, 0};
			}
		}
		int busy = 0; /* a verification under way goes on at once */
		for (struct session *s = n->sessions; s && !busy; s = s->next)
			busy = s->verifying != 0;
		/* So is a call whose pipe is ready (the chunk it read has been
		 * sent, or input came for a stdin that has room). */
		size_t running = 0;
		for (struct call *c = n->calls; c; c = c->next) {
			busy |= call_actionable(c);
			running += !c->lua && c->state == C_RUNNING && !c->outcome_proposed;
		}
		/* Native programs running: each will propose its OUTCOME soon,
		 * and takes milliseconds anyway (commit_pace).  A Lua call
		 * takes microseconds: its proposals are not held back. */
		if (!n->cluster && running != n->paced) {
			n->paced = running;
			commit_pace(n->cm, running);
		}
		int rc = poll(pfd, (nfds_t)k, busy || (n->checking && n->applied < n->check_tail &&
		    n->ncalls < 64) ? 0 : n->cluster ? (int)n->cfg->tick_ms : 250);
		if (rc < 0 && errno != EINTR)
			fatalx("poll: %s", strerror(errno));
		if (rc > 0 && (pfd[1].revents & POLLIN)) {
			struct signalfd_siginfo si;
			while (read(n->sig_fd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGCHLD)
					reap_children(n);
				else
					begin_shutdown(n, (int)si.ssi_signo);
			}
		}
		if (rc > 0 && pfd[2].revents)
			reap_spawned(n);
		if (rc > 0 && pfd[3].revents)
			take_pipe_events(n);
		if (rc > 0) {
			/* Workers: one may die (and be freed) while we walk, so
			 * each is looked up before use. */
			for (size_t i = 4; i < k; i++) {
				if (!pfd[i].revents)
					continue;
				struct lw *w;
				for (w = n->workers; w && w != pw[i]; w = w->next)
					;
				if (!w || w->dead)
					continue;
				if (pfd[i].events & POLLIN) {
					int lr = lw_read(w, lua_frame, n);
					if (lr == BABL_EPROTO) {
						log_warnx("Lua worker %d sent a malformed frame; killing it", (int)w->pid);
						lw_kill(w);
					}
				} else {
					lua_flush(n, w);
				}
			}
		}
		serve_pipes(n);
		if (rc > 0 && (pfd[0].revents & POLLIN)) {
			uint64_t v;
			if (read(n->wake_fd, &v, 8) < 0 && errno != EAGAIN)
				fatalx("eventfd: %s", strerror(errno));
		}
		process_ready(n);
		apply_done(n);
		for (struct session *s = n->sessions; s; s = s->next)
			if (s->verifying)
				verify_pump(s);
		if (n->back)
			take_back(n);
		/* Sessions that died with nothing in flight. */
		for (struct session *s = n->sessions, *nx; s; s = nx) {
			nx = s->next;
			session_try_handoff(s);
			session_reap(s);
		}
		check_timers(n);
		if (n->kvq)
			kv_flush(n);
		lua_housekeeping(n);
		if (n->dg_n && now_ms() - n->dg_since >= DIGEST_FLUSH_MS)
			digest_flush(n);
		if (n->checking) {
			/* Nothing is proposed: a replay only reads. */
			while (n->props) {
				struct prop *q = n->props;
				n->props = q->next;
				prop_free(q);
			}
			n->propst = &n->props;
		} else if (n->cluster) {
			cluster_pump(n);
		} else {
			propose_flush(n);
		}
		if (now_ms() >= n->next_evict_ms) {
			uint64_t txns, ents;
			commit_stats(n->cm, &txns, &ents);
			kvc_evict(n->kvc, txns);
			n->next_evict_ms = now_ms() + 100;
		}
		if (now_ms() >= n->next_prune_ms) {
			prune_ids(n);
			n->next_prune_ms = now_ms() + 60000;
		}
	}
	free(pfd);
	free(pw);
	return 0;
}

static void
node_name(struct node *n)
{
	char host[64] = "localhost";
	gethostname(host, sizeof host - 1);
	snprintf(n->name, sizeof n->name, "%s", host);
}

/* Raft's ent_read: applied entries' data stays in the store alone, and
 * an append to a member that lags reads it back. */
static int
raft_ent_read(void *ctx, uint64_t index, void *buf, size_t len)
{
	struct node *n = ctx;
	int rc = rstore_read(n->rs, index, buf, len);
	if (rc && n->ent_read_errs++ % 1000 == 0)
		log_warnx("cannot read log entry %" PRIu64 " back to send it: %s", index,
		    babl_strerror(rc));
	return rc;
}

/* Replicated start: the state up to what is committed, then Raft. */
static void
cluster_open(struct node *n)
{
	const struct node_config *cfg = n->cfg;
	struct rstore_state rs;
	struct raft_config rc;
	const char *self_url = NULL;
	int e;
	if ((e = rstore_load_lazy(n->rs, &rs)))
		fatalx("cannot read the replicated log: %s (%s)", babl_strerror(e), rstore_errstr(n->rs));
	/* Entries up to what was applied were committed, even if the commit
	 * index on disk lags (it is synced lazily). */
	uint64_t limit = rs.hs.commit > rs.applied ? rs.hs.commit : rs.applied;
	if ((e = recover(n, limit)))
		fatalx("recovery failed: %s", babl_strerror(e));
	raft_config_default(&rc);
	rc.id = cfg->node_id;
	randombytes_buf(&rc.seed, sizeof rc.seed);
	rc.election_ticks = 25;
	rc.heartbeat_ticks = 3;
	rc.max_entry = 2u << 20;
	/* Larger appends and apply batches: a member catching up persists
	 * (one sync) and applies thousands of entries at a time. */
	rc.max_msg_entries = 4096;
	rc.max_msg_bytes = 2u << 20;
	rc.max_apply = 4096;
	rc.max_uncommitted = 256u << 20;
	rc.ent_read = raft_ent_read;
	rc.ent_ctx = n;
	if ((e = raft_open(&n->raft, &rc)))
		fatalx("cannot start Raft: %s", babl_strerror(e));
	int fresh = rs.hs.term == 0 && rs.n == 0 && !rs.has_snap;
	if (fresh && cfg->bootstrap) {
		struct raft_conf conf = {0};
		for (int i = 0; i < cfg->npeers; i++)
			conf.s[conf.n++] = (struct raft_server){cfg->peers[i].id, 1};
		if ((e = raft_bootstrap(n->raft, &conf)))
			fatalx("cannot start a new mesh: %s", babl_strerror(e));
		log_info("started a new mesh of %d voter%s", cfg->npeers, cfg->npeers == 1 ? "" : "s");
	} else if (!fresh) {
		struct raft_hard_state hs = rs.hs;
		if (hs.commit < n->applied)
			hs.commit = n->applied;
		if ((e = raft_restore(n->raft, &hs, rs.has_snap ? &rs.snap : NULL, rs.ents, rs.n,
		    n->applied)))
			fatalx("cannot restore Raft's state: %s", babl_strerror(e));
		n->saved_term = rs.hs.term;
		n->saved_vote = rs.hs.vote;
	} else {
		log_info("no replicated state yet: waiting for the mesh's leader to send it");
	}
	rstore_state_free(&rs);
	n->fresh = fresh && !cfg->bootstrap;
	for (int i = 0; i < cfg->npeers; i++)
		if (cfg->peers[i].id == cfg->node_id)
			self_url = cfg->peers[i].raft_url;
	if ((e = rtrans_open(&n->rt, cfg->node_id, self_url, n->wake_fd)))
		fatalx("cannot listen for peers on %s: %s", self_url, babl_strerror(e));
	members_load(n);
	if ((e = sender_start(&n->snd, member_find(n, cfg->node_id)->client)))
		fatalx("cannot start a thread: %s", babl_strerror(e));
	if ((e = proxy_set_open(&n->px)))
		fatalx("out of memory");
	proxy_set_back(n->px, proxy_back, n);
	n->next_tick_ms = now_ms() + cfg->tick_ms;
	log_info("node %" PRIu64 " of a mesh; peers reach it on %s", cfg->node_id, self_url);
}

int
node_run(const struct node_config *cfg)
{
	struct node *n = calloc(1, sizeof *n);
	int rc, status = 0;
	sigset_t set;
	if (!n || sodium_init() < 0)
		fatalx("cannot initialise");
	n->cfg = cfg;
	n->started_ms = now_ms();
	n->readyt = &n->ready;
	n->propst = &n->props;
	pthread_mutex_init(&n->rlock, NULL);
	if ((n->ep_fd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		fatalx("epoll_create1: %s", strerror(errno));
	node_name(n);
	snprintf(n->data, sizeof n->data, "%s", cfg->data_dir);
	if (paths_mkdirs(n->data, 0700))
		fatalx("cannot create the data directory %s: %s", n->data, strerror(errno));
	if ((size_t)snprintf(n->run_dir, sizeof n->run_dir, "%s/run", n->data) >= sizeof n->run_dir)
		fatalx("the data path is too long");

	n->cluster = cfg->node_id != 0 || cfg->check_log;
	n->checking = cfg->check_log != NULL;
	n->pendt = &n->pend;
	if (n->checking) {
		if ((rc = store_open(&n->st, n->data, cfg->map_bytes)))
			fatalx("cannot open %s: %s", n->data, babl_strerror(rc));
	} else if (n->cluster) {
		uint64_t cut = 0;
		if ((rc = rstore_open(&n->rs, n->data, cfg->map_bytes, cfg->map_bytes, &cut)))
			fatalx("cannot open the log in %s: %s (%s)", n->data, babl_strerror(rc),
			    n->rs ? rstore_errstr(n->rs) : "");
		if (cut)
			log_warnx("cut %" PRIu64 " torn uncommitted entr%s from the log's end", cut,
			    cut == 1 ? "y" : "ies");
		n->st = rstore_store(n->rs);
	} else if ((rc = store_open(&n->st, n->data, cfg->map_bytes)))
		fatalx("cannot open the log in %s: %s (%s)%s", n->data, babl_strerror(rc),
		    store_errstr(n->st), rc == BABL_ECORRUPT ?
		    "; the node will not apply a damaged log: run 'meshd --check' to see where" : "");
	/* Only once the store is ours (its journal is locked): another meshd
	 * may be using this directory's run/. */
	remove_tree(n->run_dir);
	if (mkdir(n->run_dir, 0711) < 0 && errno != EEXIST)
		fatalx("cannot create %s: %s", n->run_dir, strerror(errno));
	uint64_t tail;
	store_tail(n->st, &tail, NULL, NULL);
	/* The tail's last entries are checked at every start; all with --check. */
	{
		uint64_t count, bad;
		char why[256];
		if (store_verify(n->st, tail > 1024 ? tail - 1023 : 1, &count, &bad, why, sizeof why))
			fatalx("the log in %s is damaged: %s; refusing to start (meshd --check for the whole log)",
			    n->data, why);
	}
	if ((rc = reg_load(&n->reg, n->st)))
		fatalx("cannot load the services from %s: %s", n->data, babl_strerror(rc));

	if ((rc = sbx_open_run(&n->sbx, cfg->launcher, cfg->sandbox_want, n->run_dir)))
		fatalx("cannot set up confinement with %s: %s", cfg->launcher, babl_strerror(rc));
	log_info("confinement: %s", sbx_describe(n->sbx));
	n->slots = calloc(cfg->max_calls, 1);
	n->wd_clean = calloc(cfg->max_calls, 1);
	if (kvc_open(&n->kvc))
		fatalx("out of memory");
	{
		/* The key this node signs its run digests with. */
		char kp[PATH_MAX + 16], hex[17];
		snprintf(kp, sizeof kp, "%s/node.key", n->data);
		rc = keys_load(kp, n->node_pk, n->node_sk);
		if (rc == BABL_ENOENT)
			rc = keys_generate(kp, 0, n->node_pk, n->node_sk);
		if (rc)
			fatalx("cannot load or create the node key %s: %s", kp, babl_strerror(rc));
		hex_encode(n->node_pk, 8, hex);
		log_info("node key %s... (%s)", hex, kp);
	}
	if (cfg->guard && gd_open(&n->gd))
		fatalx("out of memory");
	snprintf(n->lua_path, sizeof n->lua_path, "%s", cfg->lua_worker);

	n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked before nng starts its threads, so they inherit the mask. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	n->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (n->wake_fd < 0 || n->sig_fd < 0 || !n->slots)
		fatalx("cannot set up the event loop: %s", strerror(errno));
	if ((rc = commit_start(&n->cm, n->st, n->wake_fd)))
		fatalx("cannot start the commit thread");
	n->next_index = tail + 1;

	if (n->checking) {
		static struct text out;
		n->check_out = &out;
		n->check_tail = tail;
	} else if (n->cluster) {
		cluster_open(n);
	} else {
		if ((rc = recover(n, UINT64_MAX)))
			fatalx("recovery failed: %s", babl_strerror(rc));
		end_orphans(n);
		propose_flush(n);
	}
	log_info("log: %" PRIu64 " entries; %zu service(s); data in %s", tail, n->reg.n, n->data);

	if (!n->checking && start_listeners(n))
		fatalx("cannot listen; is another meshd running with the same --listen?");
	if (n->cluster && n->fresh && cfg->join)
		cluster_join(n);
	log_info("ready");
	run_loop(n);

	/* Sessions: close what is left. */
	for (struct session *s = n->sessions; s; s = s->next)
		session_kill(s, NULL);
	for (int spins = 0; n->sessions && spins < 200; spins++) {
		process_ready(n);
		for (struct session *s = n->sessions, *nx; s; s = nx) {
			nx = s->next;
			session_reap(s);
		}
		if (n->sessions) {
			struct timespec ts = {0, 5 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	if (n->px) {
		proxy_set_back(n->px, NULL, NULL);
		proxy_set_close(n->px);
	}
	while (n->back) { /* handed back as the node stopped */
		struct backitem *b = n->back;
		n->back = b->next;
		nng_stream_close(b->st);
		nng_stream_free(b->st);
		free(b);
	}
	/* Nothing runs any more: the writes that waited apply now. */
	while (n->kvq) {
		struct kvpend *q = n->kvq;
		n->kvq = q->next;
		kv_now(n, q->sid, q->call, q->cache, &q->o);
		wbuf_free(&q->w);
		free(q);
	}
	if (!n->cluster) {
		propose_flush(n);
		commit_sync(n->cm);
		apply_done(n);
		propose_flush(n);
	}
	while (n->props) {
		struct prop *q = n->props;
		n->props = q->next;
		prop_free(q);
	}
	while (n->pend) {
		struct prop *q = n->pend;
		n->pend = q->next;
		prop_free(q);
	}
	int werr = commit_sync(n->cm);
	if (werr && !n->failed)
		n->failed = werr;
	commit_stop(n->cm);
	rtrans_close(n->rt);
	raft_close(n->raft);
	sender_stop(n->snd);
	gd_close(n->gd);
	wbuf_free(&n->dg_items);
	for (struct call *c = n->calls; c; c = c->next) {
		if (c->pid)
			kill(c->pid > 0 ? -c->pid : c->pid, SIGKILL);
		if (c->spawned && !c->exited)
			(void)sbx_stop(n->sbx, c->slot);
	}
	while (n->calls)
		call_free(n->calls);
	for (struct lw *w = n->workers, *nx; w; w = nx) {
		nx = w->next;
		lw_free(w);
	}
	for (struct session *s = n->sessions, *nx; s; s = nx) {
		nx = s->next;
		s->in_barrier = 0;
		s->call = NULL;
		session_reap(s);
	}
	while (n->idem_pending) {
		struct idem_pending *ip = n->idem_pending;
		n->idem_pending = ip->next;
		free(ip);
	}
	if (n->checking) {
		printf("replayed %" PRIu64 " entries, %" PRIu64 " calls: %" PRIu64 " divergence report%s\n",
		    n->applied, n->check_calls, n->check_reports, n->check_reports == 1 ? "" : "s");
		if (n->check_out->len)
			fwrite(n->check_out->p, 1, n->check_out->len, stdout);
		fflush(stdout);
		free(n->check_out->p);
		status = n->check_reports || n->applied < n->check_tail ? 1 : 0;
	}
	if (n->rs)
		rstore_close(n->rs);
	else
		store_close(n->st);
	sbx_close(n->sbx);
	reg_free(&n->reg);
	kvc_close(n->kvc);
	close(n->wake_fd);
	close(n->sig_fd);
	close(n->ep_fd);
	free(n->slots);
	free(n->wd_clean);
	free(n->bend);
	idset_clear(&n->open);
	if (n->failed) {
		/* Not a clean stop: a supervisor should hear of it. */
		log_warnx("stopped; the log could not be written, so the last writes "
		    "were not made (what was acknowledged is kept)");
		status = 1;
	} else {
		log_info("stopped");
	}
	free(n);
	return status;
}

int
node_check(const char *data_dir, uint64_t map_bytes)
{
	struct store *st;
	uint64_t count = 0, bad = 0;
	char why[256];
	if (sodium_init() < 0)
		return 1;
	int rc = store_open(&st, data_dir, map_bytes);
	if (rc == BABL_EBUSY) {
		/* The node runs: read beside it. */
		store_close(st);
		rc = store_open_shared(&st, data_dir, map_bytes);
	}
	if (rc && rc != BABL_ECORRUPT) {
		fprintf(stderr, "meshd: cannot open the log in %s: %s (%s)\n", data_dir,
		    babl_strerror(rc), store_errstr(st));
		store_close(st);
		return 1;
	}
	rc = store_verify(st, 1, &count, &bad, why, sizeof why);
	if (rc) {
		printf("%s: log damaged: %s\n", data_dir, rc == BABL_ECORRUPT ? why : babl_strerror(rc));
		store_close(st);
		return 1;
	}
	printf("%s: log verified: %" PRIu64 " entries, checksums and hash chain intact\n",
	    data_dir, count);
	store_close(st);
	return 0;
}

/* ---- rebuilding a node from an exported log ---- */

/* Read exactly n bytes: 1, 0 at a clean end of file, -1 on a short read. */
static int
read_exact(FILE *f, void *p, size_t n)
{
	size_t got = fread(p, 1, n, f);
	if (got == n)
		return 1;
	return got == 0 && feof(f) ? 0 : -1;
}

/*
 * One pass over an export: check every entry (checksum, index in order,
 * chain) and, with st, append it.  Returns the number of entries, or -1
 * after printing the first problem.
 */
static long long
import_pass(const char *file, struct store *st, uint64_t first_expected,
    const uint8_t first_prev[32])
{
	FILE *f = fopen(file, "rb");
	uint8_t magic[8], lenb[4], prev[32];
	uint8_t *buf = malloc(ENTRY_HDR + ENTRY_MAX_PAYLOAD);
	uint64_t expect = first_expected;
	long long n = 0;
	struct store_txn *t = NULL;
	size_t batch = 0;
	memcpy(prev, first_prev, 32);
	if (!f || !buf) {
		fprintf(stderr, "meshd: %s: %s\n", file, strerror(errno));
		goto fail;
	}
	if (read_exact(f, magic, 8) != 1 || memcmp(magic, ENTRY_FILE_MAGIC, 8) != 0) {
		fprintf(stderr, "meshd: %s is not an exported babl log\n", file);
		goto fail;
	}
	for (;;) {
		int r = read_exact(f, lenb, 4);
		if (r == 0)
			break;
		uint32_t len = r == 1 ? be32_get(lenb) : 0;
		struct entry e;
		const char *what = NULL;
		int misplaced = 0;
		if (r < 0 || len < ENTRY_HDR || len > ENTRY_HDR + ENTRY_MAX_PAYLOAD ||
		    read_exact(f, buf, len) != 1)
			what = "is cut short or has a bad length";
		else if (entry_open(buf, len, &e))
			what = "fails its checksum";
		else if (e.index != expect)
			what = "is out of order", misplaced = 1;
		else if (memcmp(e.prev, prev, 32) != 0)
			what = "does not chain to the entry before it";
		if (what) {
			if (misplaced) /* name both */
				fprintf(stderr, "meshd: %s: entry %llu is out of order (entry %llu was due); "
				    "the file is rejected\n", file, (unsigned long long)e.index,
				    (unsigned long long)expect);
			else
				fprintf(stderr, "meshd: %s: entry %llu %s; the file is rejected\n", file,
				    (unsigned long long)expect, what);
			goto fail;
		}
		if (st) {
			struct iovec iov = {(void *)e.payload, e.len};
			if ((!t && store_begin(st, 1, &t)) || store_append(t, &e, &iov, e.len ? 1 : 0)) {
				fprintf(stderr, "meshd: cannot write entry %llu: %s\n",
				    (unsigned long long)expect, store_errstr(st));
				goto fail;
			}
			batch += len;
			if (batch >= (8u << 20)) {
				if (store_commit(t)) {
					t = NULL;
					fprintf(stderr, "meshd: commit: %s\n", store_errstr(st));
					goto fail;
				}
				t = NULL;
				batch = 0;
			}
		}
		memcpy(prev, e.hash, 32);
		expect++;
		n++;
	}
	if (t && store_commit(t)) {
		t = NULL;
		fprintf(stderr, "meshd: commit: %s\n", store_errstr(st));
		goto fail;
	}
	fclose(f);
	free(buf);
	return n;
fail:
	store_abort(t);
	if (f)
		fclose(f);
	free(buf);
	return -1;
}

static int import_into(const char *file, const char *dir, uint64_t map_bytes, int rebuild);

int
node_import(const char *file, const char *dir, uint64_t map_bytes)
{
	return import_into(file, dir, map_bytes, 1);
}

/*
 * meshd replay --log FILE --check: the file's entries go into a fresh
 * directory, then a node that listens to nobody applies them, running every
 * call as a guard does and comparing its digests with the signed ones.
 */
int
node_check_log(const struct node_config *base)
{
	struct node_config cfg = *base;
	char dir[PATH_MAX];
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/meshd-check.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "meshd: cannot create a directory in %s: %s\n", tmp ? tmp : "/tmp",
		    strerror(errno));
		return 1;
	}
	int status = import_into(cfg.check_log, dir, cfg.map_bytes, 0);
	if (status == 0) {
		cfg.data_dir = dir;
		cfg.nlisten = 0;
		cfg.guard = 1;
		cfg.node_id = 0;
		cfg.npeers = 0;
		status = node_run(&cfg);
	}
	remove_tree(dir);
	rmdir(dir);
	return status;
}

static int
import_into(const char *file, const char *dir, uint64_t map_bytes, int rebuild)
{
	struct node *n = calloc(1, sizeof *n);
	uint8_t hash[32];
	uint64_t tail;
	int rc, status = 1;
	if (!n || sodium_init() < 0) {
		free(n);
		return 1;
	}
	n->wake_fd = -1;
	n->ep_fd = -1; /* (no call runs here) */
	if (paths_mkdirs(dir, 0700)) {
		fprintf(stderr, "meshd: cannot create %s: %s\n", dir, strerror(errno));
		goto out;
	}
	if ((rc = store_open(&n->st, dir, map_bytes))) {
		fprintf(stderr, "meshd: cannot open the log in %s: %s (%s)\n", dir,
		    babl_strerror(rc), store_errstr(n->st));
		goto out;
	}
	store_tail(n->st, &tail, hash, NULL);
	/* The whole file is checked before anything of it is written. */
	long long count = import_pass(file, NULL, tail + 1, hash);
	if (count < 0 || import_pass(file, n->st, tail + 1, hash) != count)
		goto out;
	if (!rebuild) {
		status = 0;
		goto out;
	}
	if ((rc = reg_load(&n->reg, n->st)) || kvc_open(&n->kvc) ||
	    (n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
	    commit_start(&n->cm, n->st, n->wake_fd)) {
		fprintf(stderr, "meshd: cannot rebuild the state in %s\n", dir);
		goto out;
	}
	rc = recover(n, UINT64_MAX);
	commit_stop(n->cm);
	uint64_t last;
	store_tail(n->st, &last, NULL, NULL);
	if (rc) {
		fprintf(stderr, "meshd: rebuilding the state failed: %s\n", babl_strerror(rc));
		goto out;
	}
	printf("%s: imported %lld entries (log now %llu entries); state rebuilt: %zu service(s)\n",
	    dir, count, (unsigned long long)last, n->reg.n);
	status = 0;
out:
	reg_free(&n->reg);
	kvc_close(n->kvc);
	store_close(n->st);
	if (n->wake_fd >= 0)
		close(n->wake_fd);
	idset_clear(&n->open);
	free(n);
	return status;
}
