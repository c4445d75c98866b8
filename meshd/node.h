/*
 * node.h - one meshd node: listeners, client sessions, calls, and the path
 * every change of state takes: propose (an entry gets the next index),
 * persist (the commit thread makes it durable), apply (in index order:
 * start a service, feed it input, record its outcome, add a version).
 *
 * With peers, the log is replicated with Raft (raft.h, rstore.h,
 * rtrans.h): the leader proposes, the commit thread persists each Raft
 * batch, and every member applies the committed entries and runs the calls
 * they start.  Clients of a follower are handed to the leader (proxy.h).
 *
 * The node runs on one main thread that polls an eventfd (woken by nng's
 * callbacks and by the commit thread), a signalfd, and the pipes of the
 * running services.  nng is never called in a child process: services are
 * started by posix_spawn of the sandbox launcher (sbx.h).
 */
#ifndef MESHD_NODE_H
#define MESHD_NODE_H

#include <stdint.h>

#define NODE_MAX_LISTEN 16
#define NODE_MAX_PEERS 16

/* A member of a replicated mesh: its Raft id, the URL its peers reach it
 * on, and the URL clients (and followers forwarding them) reach it on. */
struct node_peer {
	uint64_t id;
	const char *raft_url;
	const char *client_url;
};

struct node_config {
	const char *data_dir;
	const char *listen[NODE_MAX_LISTEN];
	int nlisten;
	unsigned max_calls;        /* concurrent calls */
	uint64_t id_retention_ms;  /* how long --id outcomes are kept */
	unsigned sandbox_want;     /* SBX_* layers allowed */
	uint64_t map_bytes;        /* LMDB map size */
	const char *launcher;      /* path of meshd-sandbox */
	const char *lua_worker;    /* path of meshd-lua */
	/* Replication: node_id 0 runs a single node.  Otherwise peers lists
	 * every member (this one too); bootstrap makes a node without Raft
	 * state start a new mesh whose voters are the peers. */
	uint64_t node_id;
	struct node_peer peers[NODE_MAX_PEERS];
	int npeers;
	int bootstrap;
	const char *join;          /* without state: ask the mesh at this URL to add us */
	int guard;                 /* join as a guard: never votes, checks digests */
	const char *check_log;     /* meshd replay --check: the file (node_check_log) */
	int no_digests;            /* sign no run digests (to measure their cost) */
	unsigned tick_ms;          /* one Raft tick */
};

/* Run until SIGTERM or SIGINT.  Returns the process exit status. */
int node_run(const struct node_config *cfg);

/*
 * meshd replay --log FILE --data DIR: check every entry of an exported log
 * (checksums, order, chain; a bad file is rejected whole, naming the first
 * bad entry), append them to the log in DIR (empty, or ending just before
 * the file's first entry) and rebuild the state from it.  0 or 1.
 */
int node_import(const char *file, const char *dir, uint64_t map_bytes);

/*
 * meshd replay --log FILE --check: an offline guard.  Check the file as
 * node_import does, run every call it holds in the sandbox (in a temporary
 * directory) and compare each run's digest with those the executing nodes
 * signed; print a line, then the divergence reports.  0 if there are none,
 * 1 otherwise (or if the file is bad).
 */
int node_check_log(const struct node_config *cfg);

/* meshd --check: verify the whole log; print a line; 0 good, 1 bad. */
int node_check(const char *data_dir, uint64_t map_bytes);

#endif
