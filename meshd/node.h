/*
 * node.h - one meshd node: listeners, client sessions, calls, and the path
 * every change of state takes: propose (an entry gets the next index),
 * persist (the commit thread makes it durable), apply (in index order:
 * start a service, feed it input, record its outcome, add a version).
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

/* meshd --check: verify the whole log; print a line; 0 good, 1 bad. */
int node_check(const char *data_dir, uint64_t map_bytes);

#endif
