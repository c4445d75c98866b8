/*
 * lsb.h - one Lua call in a sandbox: a fresh lua_State per call, an
 * allowlisted and deterministic environment, limits that hold against
 * hostile code.  Pure with respect to I/O: everything the script does to
 * the world goes through the host callbacks, so the module is tested in
 * one process and used by the worker (meshd-lua).
 *
 * The script (a service's bundle source) is run once per call in the fresh
 * state; it must define a global function handle(req).  handle runs as a
 * coroutine: when it needs input that has not arrived, or a kv value the
 * host must fetch, it yields and lsb_resume returns LSB_WAIT_*; the host
 * supplies the data (lsb_feed, lsb_kv_reply) and resumes.
 *
 * Environment given to scripts (everything else is absent):
 *   base: assert error ipairs next pairs pcall xpcall select tonumber
 *         tostring type rawequal rawlen rawget rawset setmetatable
 *         getmetatable print (= babl.write of its args, tab separated,
 *         newline) _G _VERSION; load only for text chunks, with the
 *         sandbox's own environment unless one is given
 *   string (no dump; the string metatable is read-only), table, math,
 *   utf8, coroutine, os.time os.date os.difftime os.clock (time from the
 *   log entry; os.clock counts instructions), collectgarbage("count") only.
 *   babl.read([n]) babl.lines() babl.readall() babl.write(...)
 *   babl.ewrite(...) babl.now() babl.kv.get/set/del/keys.
 * Determinism: pairs and next visit keys in a fixed order (numbers
 * ascending, then strings bytewise, then booleans; any other key type is an
 * error "pairs: keys of type T have no stable order"); table.sort is a
 * stable merge sort; tostring of tables, functions, threads and userdata
 * gives "table: 1", "function: 2"... numbered in order of first use;
 * string.format refuses %p and formats such values as tostring does;
 * math.random is seeded from the log entry; os.time() and babl.now() give
 * the entry's time.  Read-only: the library tables, the string metatable,
 * and the global table once the script's top level has run (handle and
 * its helpers are defined there; a call that assigns a global afterwards
 * gets an error naming it).  Each call has its own state (a fresh one, or
 * one copied back from an image of a fresh one: lsb_start_prog), so calls
 * and services never see each other's globals.
 * Other details: babl.now() is seconds (a float with millisecond
 * precision), os.time() whole seconds, req.time milliseconds; os.date
 * formats in UTC whatever the format says ("!" is accepted); os.clock() is
 * instructions used / 10^6.  babl.read, babl.readall, babl.lines and
 * babl.kv.get/keys wait for the host by yielding handle's thread: this
 * works through pcall and Lua metamethods, but not from inside a
 * coroutine the script created, nor from a C-called function (a sort
 * comparator, a gsub callback, __tostring, __pairs): there they raise an
 * error.  Functions that cannot be numbered by the hook are charged to
 * the instruction budget by the work they do (sorting, table.move,
 * insert/remove at a position, concat, gsub, rep).  Patterns are limited
 * to 512 bytes; the backtracking of a pathological pattern inside one
 * string.find call is not counted (the worker's CPU limit is the
 * backstop).  setmetatable refuses metatables with __gc (finalizers run
 * without hooks in Lua 5.4).  Libraries other than base and string are
 * opened on first use, so pairs(_G) lists only those a call has touched.
 * pairs/next keep a traversal's sorted keys until it ends: keys added
 * during a traversal may be missed by it (stock Lua leaves that undefined).
 * Limits: an instruction budget that pcall, xpcall, error handlers and
 * coroutines cannot swallow or reset; a memory cap enforced by the
 * allocator; C-stack and Lua-stack depth; size caps on string.rep,
 * string.format widths, table.concat, string.pack and pattern subjects.
 */
#ifndef MESHD_LSB_H
#define MESHD_LSB_H

#include <stddef.h>
#include <stdint.h>

struct lsb;

/* A zero field takes its default: 64 MiB, 10^8 instructions, 16 MiB. */
struct lsb_limits {
	uint64_t mem_bytes;    /* allocator cap for the whole state */
	uint64_t instructions; /* VM instruction budget for the call */
	size_t max_string;     /* largest string a C function may build */
};

/* The host: where output goes and who answers kv reads. */
struct lsb_host {
	/* stream 1 = stdout, 2 = stderr.  Returns 0, or non-zero to raise an
	 * error in the script (e.g. the host is gone). */
	int (*write)(void *ud, int stream, const char *p, size_t n);
	/* May be NULL.  Non-zero: the host holds enough of this call's output
	 * for now.  babl.write, babl.ewrite and print then pause the call
	 * (LSB_WAIT_OUTPUT) once they have written, where the script can
	 * wait (handle's own thread, not inside a coroutine it made or a
	 * C-called function); the host resumes it when it has room.  The
	 * pause changes nothing the script can see. */
	int (*full)(void *ud);
};

/* How a call ended, or what it waits for. */
enum lsb_state {
	LSB_DONE = 0,       /* *status holds the exit status */
	LSB_WAIT_INPUT = 1, /* call lsb_feed / lsb_feed_eof, then lsb_resume */
	LSB_WAIT_KV = 2,    /* call lsb_kv_request to see what, lsb_kv_reply */
	LSB_WAIT_OUTPUT = 3, /* host.full said so: lsb_resume once it has room */
};

/* Exit statuses for calls that did not return normally. */
enum {
	LSB_EXIT_ERROR = 1,   /* an uncaught error (message and traceback on stderr) */
	LSB_EXIT_INSNS = 124, /* the instruction budget ran out */
	LSB_EXIT_MEMORY = 125,/* the memory cap was hit */
	LSB_EXIT_NOHANDLE = 126, /* the script defines no handle() */
};

struct lsb_req {
	const char *service;
	const char *id;        /* request id, hex */
	uint64_t time_ms;      /* from the log entry */
	uint64_t seed;         /* from the log entry */
	int nargs;
	const char *const *args;
};

/*
 * Create the state, run the script's top level (chunkname is used in
 * messages, e.g. "upper.lua"), and start handle(req).  Returns 0 with *out
 * set, and *state as from lsb_resume; or a negative BABL_E* code when the
 * state cannot be created (then nothing is allocated).  A script error at
 * top level is not a failure of lsb_start: the call is LSB_DONE with
 * status LSB_EXIT_ERROR and the message on stderr.
 */
int lsb_start(struct lsb **out, const struct lsb_limits *lim,
    const struct lsb_host *host, void *ud, const char *chunkname,
    const char *src, size_t len, const struct lsb_req *req, int *state,
    int *status);

/* Continue after the host supplied what the call waited for. */
int lsb_resume(struct lsb *c, int *status);

/* Input for the call: bytes, then end of input.  lsb_feed copies the bytes
 * into the call's input buffer (outside the Lua memory cap) and returns 0,
 * or BABL_ENOMEM; the host bounds what it feeds ahead of the script (for
 * example by feeding only on LSB_WAIT_INPUT). */
int lsb_feed(struct lsb *c, const void *p, size_t n);
void lsb_feed_eof(struct lsb *c);

/*
 * The same without the copy when the call has no unread input: the script
 * reads p in place, so p must stay as it is until lsb_feed_settle, which
 * the host calls once lsb_resume returns and before p changes; it copies
 * what the script has not read yet (0 or BABL_ENOMEM); lsb_feed settles
 * first.
 */
int lsb_feed_lend(struct lsb *c, const void *p, size_t n);
int lsb_feed_settle(struct lsb *c);

/* LSB_WAIT_KV: the key wanted (borrowed until the reply). */
void lsb_kv_request(struct lsb *c, const char **key, size_t *klen);
/* The answer: found != 0 with the value, or not found. */
void lsb_kv_reply(struct lsb *c, int found, const void *v, size_t vl);

/*
 * LSB_WAIT_KV also covers babl.kv.keys(prefix): lsb_kv_request then gives
 * the prefix and lsb_kv_is_keys() is 1; answer with lsb_kv_reply_keys
 * (the committed keys with that prefix, sorted; the sandbox merges in
 * the call's own writes).
 */
int lsb_kv_is_keys(struct lsb *c);
void lsb_kv_reply_keys(struct lsb *c, const char *const *keys,
    const size_t *lens, size_t n);

/*
 * After LSB_DONE with status 0: the call's writes, in key order, each a
 * set (vl >= 0) or a delete (deleted = 1).  A call that did not return 0
 * keeps its writes to itself: callers must not apply them.
 */
typedef void (*lsb_write_fn)(void *arg, const char *k, size_t kl, int deleted,
    const char *v, size_t vl);
void lsb_writes(struct lsb *c, lsb_write_fn fn, void *arg);

/* Instructions used and peak memory, for logs and benchmarks. */
void lsb_usage(struct lsb *c, uint64_t *insns, uint64_t *mem_peak);

void lsb_free(struct lsb *c);

/*
 * Compile only (no execution), for deploys: 0, or BABL_EINPUT with a
 * message "chunkname:LINE: message" in err.  Binary chunks are refused.
 */
int lsb_compile(const char *chunkname, const char *src, size_t len, char *err,
    size_t errlen);

/*
 * A script compiled once (for a worker that runs many calls of the same
 * service): lsb_prepare compiles src as text, exactly as lsb_compile does,
 * and keeps a binary image of the chunk (lua_dump, debug information kept
 * so messages still name lines).  lsb_start_prog is lsb_start with the
 * image loaded instead of the source parsed; the binary form is used only
 * internally and scripts still cannot load binary chunks themselves.
 * lsb_free of a state started from a prog keeps it, as it stood before
 * the call, for a later lsb_start_prog of the same prog (up to 64 idle
 * states per prog): the next call copies it back instead of setting a
 * state up again, and runs in a state no different from a fresh one.
 * Free every state of a prog before the prog.
 */
struct lsb_prog;
int lsb_prepare(struct lsb_prog **out, const char *chunkname, const char *src, size_t len,
    char *err, size_t errlen);
int lsb_start_prog(struct lsb **out, const struct lsb_limits *lim,
    const struct lsb_host *host, void *ud, struct lsb_prog *prog,
    const struct lsb_req *req, int *state, int *status);
void lsb_prog_free(struct lsb_prog *p);

#endif
