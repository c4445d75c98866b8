/*
 * test_lsb.c - the Lua sandbox (lsb.h) driven by a fake host in one
 * process: stdout and stderr are collected into buffers, kv reads are
 * answered from a small in-memory map, and a call's writes are applied to
 * the map only when it ends with status 0, as meshd does.
 *
 * Cases: input by chunks and lines, streaming before end of input, kv with
 * read-your-writes and atomicity, every escape from the allowlist, every
 * limit (instructions against pcall, xpcall, coroutines; memory; recursion;
 * size caps), determinism across separately created states, the example
 * services of contrib/services, lsb_compile and lsb_prepare, and a timing
 * of small echo calls (printed, not asserted beyond a low floor).
 *
 * The example scripts are read from contrib/services relative to the
 * current directory or to LSB_CONTRIB if set; tests/run starts the unit
 * tests from the top of the checkout.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "err.h"
#include "lsb.h"

#include "t.h"

/* ------------------------------------------------------------ the host */

struct buf {
	char *p;
	size_t len, cap;
};

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			abort();
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = 0;
}

static struct buf out, err;
static int write_fails;

static int
host_write(void *ud, int stream, const char *p, size_t n)
{
	(void)ud;
	if (write_fails)
		return -1;
	buf_add(stream == 1 ? &out : &err, p, n);
	return 0;
}

/* With full_always set, the host says it is full after every write. */
static int full_always, pauses;

static int
host_full(void *ud)
{
	(void)ud;
	return full_always;
}

static const struct lsb_host host = {host_write, host_full};

/* The kv map: a small unsorted array; keys are sorted when listed. */
#define KV_MAX 256
static struct {
	char *k, *v;
	size_t kl, vl;
} kv[KV_MAX];
static int nkv, kv_requests;

static int
kv_find(const char *k, size_t kl)
{
	for (int i = 0; i < nkv; i++)
		if (kv[i].kl == kl && memcmp(kv[i].k, k, kl) == 0)
			return i;
	return -1;
}

static char *
dup_mem(const void *p, size_t n)
{
	char *q = malloc(n + 1);
	if (!q)
		abort();
	memcpy(q, p, n);
	q[n] = 0;
	return q;
}

static void
kv_put(const char *k, size_t kl, int deleted, const char *v, size_t vl)
{
	int i = kv_find(k, kl);
	if (deleted) {
		if (i >= 0) {
			free(kv[i].k);
			free(kv[i].v);
			kv[i] = kv[--nkv];
		}
		return;
	}
	if (i < 0) {
		if (nkv == KV_MAX)
			abort();
		i = nkv++;
		kv[i].k = dup_mem(k, kl);
		kv[i].kl = kl;
	} else {
		free(kv[i].v);
	}
	kv[i].v = dup_mem(v, vl);
	kv[i].vl = vl;
}

static void
kv_clear(void)
{
	while (nkv > 0)
		kv_put(kv[0].k, kv[0].kl, 1, NULL, 0);
}

static void
apply_write(void *arg, const char *k, size_t kl, int deleted, const char *v, size_t vl)
{
	int *n = arg;
	(*n)++;
	kv_put(k, kl, deleted, v, vl);
}

static int
cmp_idx(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	size_t n = kv[x].kl < kv[y].kl ? kv[x].kl : kv[y].kl;
	int r = memcmp(kv[x].k, kv[y].k, n);
	return r ? r : (kv[x].kl > kv[y].kl) - (kv[x].kl < kv[y].kl);
}

static void
answer_kv(struct lsb *c)
{
	const char *k;
	size_t kl;
	kv_requests++;
	lsb_kv_request(c, &k, &kl);
	if (!lsb_kv_is_keys(c)) {
		int i = kv_find(k, kl);
		lsb_kv_reply(c, i >= 0, i >= 0 ? kv[i].v : NULL, i >= 0 ? kv[i].vl : 0);
		return;
	}
	int idx[KV_MAX], n = 0;
	for (int i = 0; i < nkv; i++)
		if (kv[i].kl >= kl && memcmp(kv[i].k, k, kl) == 0)
			idx[n++] = i;
	qsort(idx, (size_t)n, sizeof idx[0], cmp_idx);
	const char *keys[KV_MAX];
	size_t lens[KV_MAX];
	for (int i = 0; i < n; i++) {
		keys[i] = kv[idx[i]].k;
		lens[i] = kv[idx[i]].kl;
	}
	lsb_kv_reply_keys(c, keys, lens, (size_t)n);
}

/* ------------------------------------------------------------ running */

struct opts {
	const char *name;        /* chunk name, default "t.lua" */
	const char *input;       /* NULL: no input (end at once) */
	size_t inlen;            /* 0: strlen(input) */
	size_t chunk;            /* feed this many bytes per wait, 0: all */
	const char *const *args;
	int nargs;
	uint64_t seed, time_ms;
	struct lsb_limits lim;   /* zeros: defaults of lsb.h */
	struct lsb_prog *prog;
};

static int last_writes;
static uint64_t last_insns, last_peak;

/* Run a script to its end; returns the status, output in out and err. */
static int
run(const char *src, const struct opts *o)
{
	static const struct opts none;
	if (!o)
		o = &none;
	buf_reset(&out);
	buf_reset(&err);
	buf_add(&out, "", 0);
	buf_add(&err, "", 0);
	struct lsb_req req = {"svc", "00ff", o->time_ms ? o->time_ms : 1700000000123ull,
		o->seed ? o->seed : 42, o->nargs, o->args};
	struct lsb *c;
	int state, status;
	int rc;
	if (o->prog)
		rc = lsb_start_prog(&c, &o->lim, &host, NULL, o->prog, &req, &state, &status);
	else
		rc = lsb_start(&c, &o->lim, &host, NULL, o->name ? o->name : "t.lua", src,
		    strlen(src), &req, &state, &status);
	T_EQ_INT(rc, 0);
	size_t inlen = o->input ? (o->inlen ? o->inlen : strlen(o->input)) : 0, off = 0;
	/* Input is lent as meshd-lua lends it: from a buffer that is
	 * overwritten once the call has settled. */
	static char lend[1 << 16];
	while (state != LSB_DONE) {
		size_t lent = 0;
		if (state == LSB_WAIT_INPUT) {
			if (off < inlen) {
				size_t n = o->chunk && o->chunk < inlen - off ? o->chunk : inlen - off;
				if (n <= sizeof lend) {
					memcpy(lend, o->input + off, n);
					T_EQ_INT(lsb_feed_lend(c, lend, n), 0);
					lent = n;
				} else {
					T_EQ_INT(lsb_feed(c, o->input + off, n), 0);
				}
				off += n;
			} else {
				lsb_feed_eof(c);
			}
		} else if (state == LSB_WAIT_OUTPUT) {
			pauses++;
		} else {
			T_EQ_INT(state, LSB_WAIT_KV);
			answer_kv(c);
		}
		state = lsb_resume(c, &status);
		if (lent) {
			T_EQ_INT(lsb_feed_settle(c), 0);
			memset(lend, '#', lent);
		}
	}
	last_writes = 0;
	if (status == 0)
		lsb_writes(c, apply_write, &last_writes);
	else {
		int n = 0;
		lsb_writes(c, apply_write, &n);
		T_EQ_INT(n, 0);
	}
	lsb_usage(c, &last_insns, &last_peak);
	lsb_free(c);
	return status;
}

static char *
read_file(const char *name, size_t *len)
{
	char path[512];
	const char *dir = getenv("LSB_CONTRIB");
	snprintf(path, sizeof path, "%s/%s", dir ? dir : "contrib/services", name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(path, sizeof path, "../../contrib/services/%s", name);
		f = fopen(path, "rb");
	}
	if (!f)
		return NULL;
	struct buf b = {0};
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		buf_add(&b, tmp, n);
	fclose(f);
	if (len)
		*len = b.len;
	return b.p;
}

#define RUN_OK(src, o)                                                          \
	do {                                                                    \
		int st_ = run(src, o);                                          \
		if (st_ != 0)                                                   \
			T_FAIL("status %d, stderr: %s", st_, err.p);            \
	} while (0)

#define HAS(b, s) T_ASSERT(strstr((b).p, (s)) != NULL)

/* ------------------------------------------------------------ input/output */

static void
case_echo_read(void)
{
	const char *src = "function handle(req)\n"
			  "  while true do\n"
			  "    local s = babl.read()\n"
			  "    if not s then return end\n"
			  "    babl.write(s)\n"
			  "  end\n"
			  "end\n";
	struct opts o = {.input = "hello, world\nand more", .chunk = 3};
	RUN_OK(src, &o);
	T_EQ_STR(out.p, "hello, world\nand more");
	/* babl.read(n) gives at most n bytes. */
	o = (struct opts){.input = "abcdefg"};
	RUN_OK("function handle() local t = {} for i = 1, 3 do t[i] = babl.read(2) end "
	       "babl.write(table.concat(t, '|'), ' ', babl.read(100), ' ', tostring(babl.read())) end",
	    &o);
	T_EQ_STR(out.p, "ab|cd|ef g nil");
}

static void
case_lines(void)
{
	const char *src = "function handle(req)\n"
			  "  for l in babl.lines() do babl.write('[', l, ']') end\n"
			  "end\n";
	struct opts o = {.input = "one\ntwo\n\nlast", .chunk = 2};
	RUN_OK(src, &o);
	T_EQ_STR(out.p, "[one][two][][last]");
	o = (struct opts){.input = "a\nb\n", .chunk = 1};
	RUN_OK(src, &o);
	T_EQ_STR(out.p, "[a][b]");
	RUN_OK(src, NULL);
	T_EQ_STR(out.p, "");
	o = (struct opts){.input = "x\ny", .chunk = 1};
	RUN_OK("function handle() local s = babl.readall() babl.write(#s, s) end", &o);
	T_EQ_STR(out.p, "3x\ny");
}

static void
case_streaming(void)
{
	const char *src = "function handle(req)\n"
			  "  for l in babl.lines() do babl.write(l:upper(), '\\n') end\n"
			  "  babl.ewrite('done')\n"
			  "  return 3\n"
			  "end\n";
	struct lsb_req req = {"svc", "01", 1000, 1, 0, NULL};
	struct lsb *c;
	int state, status;
	buf_reset(&out);
	buf_reset(&err);
	struct lsb_limits lim = {0, 0, 0};
	T_EQ_INT(lsb_start(&c, &lim, &host, NULL, "s.lua", src, strlen(src), &req, &state, &status), 0);
	T_EQ_INT(state, LSB_WAIT_INPUT);
	T_EQ_INT(out.len, 0);
	lsb_feed(c, "ab\ncd", 5);
	T_EQ_INT(lsb_resume(c, &status), LSB_WAIT_INPUT);
	T_EQ_STR(out.p, "AB\n");
	lsb_feed(c, "\nef", 3);
	T_EQ_INT(lsb_resume(c, &status), LSB_WAIT_INPUT);
	T_EQ_STR(out.p, "AB\nCD\n");
	/* Resuming without new input waits again. */
	T_EQ_INT(lsb_resume(c, &status), LSB_WAIT_INPUT);
	lsb_feed_eof(c);
	T_EQ_INT(lsb_resume(c, &status), LSB_DONE);
	T_EQ_INT(status, 3);
	T_EQ_STR(out.p, "AB\nCD\nEF\n");
	T_EQ_STR(err.p, "done");
	/* Done stays done. */
	T_EQ_INT(lsb_resume(c, &status), LSB_DONE);
	T_EQ_INT(status, 3);
	lsb_free(c);
}

/* A host that is full pauses the call after its writes where it can wait;
 * nothing the script sees changes (output, status, instructions). */
static void
case_output_pause(void)
{
	const char *src = "function handle(req)\n"
			  "  for l in babl.lines() do babl.write(l:upper(), '\\n') end\n"
			  "  print('p', 1)\n"
			  "  pcall(babl.write, 'in pcall\\n')\n"
			  "  local co = coroutine.wrap(function() babl.write('in co\\n') end)\n"
			  "  co()\n"
			  "  babl.ewrite('err')\n"
			  "  return 3\n"
			  "end\n";
	struct opts o = {.input = "a\nb\nc\n", .chunk = 2};
	pauses = 0;
	T_EQ_INT(run(src, &o), 3);
	char *plain = strdup(out.p), *plain_err = strdup(err.p);
	uint64_t insns = last_insns;
	T_EQ_INT(pauses, 0);
	full_always = 1;
	T_EQ_INT(run(src, &o), 3);
	full_always = 0;
	T_EQ_STR(out.p, plain);
	T_EQ_STR(err.p, plain_err);
	T_EQ_STR(out.p, "A\nB\nC\np\t1\nin pcall\nin co\n");
	T_EQ_INT((int)last_insns, (int)insns);
	/* three lines, print, the pcall'd write, ewrite: not the coroutine's */
	T_EQ_INT(pauses, 6);
	free(plain);
	free(plain_err);
}

static void
case_write_types(void)
{
	RUN_OK("function handle() babl.write('a', 1, 2.5, -0.0) print(1, 'x', nil, true) end", NULL);
	T_EQ_STR(out.p, "a12.5-0.01\tx\tnil\ttrue\n");
	T_EQ_INT(run("function handle() babl.write({}) end", NULL), LSB_EXIT_ERROR);
	HAS(err, "argument #1 is a table");
	write_fails = 1;
	int st = run("function handle() babl.write('x') return 0 end", NULL);
	write_fails = 0;
	T_EQ_INT(st, LSB_EXIT_ERROR);
}

/*
 * string.upper and lower (the sandbox's own, 16 bytes a step) map
 * every byte as toupper and tolower do in the C locale, at every length.
 */
static void
case_upper_lower(void)
{
	RUN_OK("function handle()\n"
	       "  local t = {}\n"
	       "  for i = 0, 255 do t[#t + 1] = string.char(i) end\n"
	       "  local all = table.concat(t)\n"
	       "  for k = 0, 20 do\n"
	       "    local s = all:sub(k + 1) .. all:sub(1, k)\n"
	       "    babl.write(s:upper(), s:lower(), s:sub(1, k):upper(), s:sub(1, k):lower())\n"
	       "  end\n"
	       "end", NULL);
	char want[21 * 2 * (256 + 20)];
	size_t n = 0;
	for (int k = 0; k <= 20; k++) {
		unsigned char r[256];
		for (int i = 0; i < 256; i++)
			r[i] = (unsigned char)((i + k) % 256);
		for (int i = 0; i < 256; i++)
			want[n++] = (char)toupper(r[i]);
		for (int i = 0; i < 256; i++)
			want[n++] = (char)tolower(r[i]);
		for (int i = 0; i < k; i++)
			want[n++] = (char)toupper(r[i]);
		for (int i = 0; i < k; i++)
			want[n++] = (char)tolower(r[i]);
	}
	T_EQ_INT(out.len, n);
	T_EQ_MEM(out.p, want, n);
}

static void
case_status(void)
{
	T_EQ_INT(run("function handle() return 7 end", NULL), 7);
	T_EQ_INT(run("function handle() return nil end", NULL), 0);
	T_EQ_INT(run("function handle() return 7.0 end", NULL), 1);
	HAS(err, "handle returned the number 7");
	T_EQ_INT(run("function handle() return 256 end", NULL), 1);
	T_EQ_INT(run("function handle() return 'x' end", NULL), 1);
	HAS(err, "t.lua: handle returned a string");
	T_EQ_INT(run("x = 1", NULL), LSB_EXIT_NOHANDLE);
	HAS(err, "t.lua: the script defines no function handle(req)");
	T_EQ_INT(run("local function f()\n  error('boom')\nend\nfunction handle() f() end", NULL),
	    LSB_EXIT_ERROR);
	T_ASSERT(strncmp(err.p, "t.lua:2: boom\nstack traceback:", 30) == 0);
	HAS(err, "t.lua:4: in function");
	T_EQ_INT(run("error('at the top')", NULL), LSB_EXIT_ERROR);
	T_ASSERT(strncmp(err.p, "t.lua:1: at the top", 19) == 0);
	T_EQ_INT(run("function handle() error({}) end", NULL), LSB_EXIT_ERROR);
	HAS(err, "(error object is a table value)");
	T_EQ_INT(run("function handle() error(setmetatable({}, {__tostring = function() return 'mine' end})) end", NULL),
	    LSB_EXIT_ERROR);
	HAS(err, "mine");
	T_EQ_INT(run("function handle( end", NULL), LSB_EXIT_ERROR);
	HAS(err, "t.lua:1:");
	/* A script's own yield at the top of handle is not a wait. */
	T_EQ_INT(run("function handle() coroutine.yield() end", NULL), LSB_EXIT_ERROR);
	HAS(err, "yield");
	static const char *const args[] = {"a", "b c"};
	struct opts o = {.args = args, .nargs = 2, .time_ms = 1234567};
	RUN_OK("function handle(r) print(#r.args, r.args[1], r.args[2], r.id, r.time, r.service, "
	       "math.type(r.time)) end", &o);
	T_EQ_STR(out.p, "2\ta\tb c\t00ff\t1234567\tsvc\tinteger\n");
}

/* ------------------------------------------------------------ kv */

static void
case_kv(void)
{
	kv_clear();
	kv_put("a", 1, 0, "1", 1);
	kv_put("b", 1, 0, "2", 1);
	kv_put("c", 1, 0, "3", 1);
	kv_put("zz", 2, 0, "9", 1);
	const char *src =
	    "function handle()\n"
	    "  local g = babl.kv.get\n"
	    "  print(g('a'), g('nope'), g('a'))\n"                       /* cached */
	    "  babl.kv.set('a', 'x') babl.kv.set('d', '4') babl.kv.del('b')\n"
	    "  print(g('a'), g('b'), g('d'))\n"                          /* read-your-writes */
	    "  print(table.concat(babl.kv.keys(), ','))\n"
	    "  print(table.concat(babl.kv.keys('z'), ','), #babl.kv.keys('q'))\n"
	    "  local ok, v = pcall(g, 'c') print(ok, v)\n"               /* a wait inside pcall */
	    "end\n";
	kv_requests = 0;
	RUN_OK(src, NULL);
	T_EQ_STR(out.p, "1\tnil\t1\nx\tnil\t4\na,c,d,zz\nzz\t0\ntrue\t3\n");
	T_EQ_INT(kv_requests, 6); /* a, nope, keys x3, c */
	T_EQ_INT(last_writes, 3);
	T_EQ_INT(kv_find("b", 1), -1);
	T_EQ_STR(kv[kv_find("a", 1)].v, "x");
	T_EQ_STR(kv[kv_find("d", 1)].v, "4");

	/* A call that fails keeps its writes to itself. */
	T_EQ_INT(run("function handle() babl.kv.set('a', 'lost') babl.kv.del('c') error('no') end",
		     NULL), LSB_EXIT_ERROR);
	T_EQ_STR(kv[kv_find("a", 1)].v, "x");
	T_ASSERT(kv_find("c", 1) >= 0);
	T_EQ_INT(run("function handle() babl.kv.set('a', 'lost') return 2 end", NULL), 2);
	T_EQ_STR(kv[kv_find("a", 1)].v, "x");

	/* Bounds and types. */
	T_EQ_INT(run("function handle() babl.kv.set(('k'):rep(1025), 'v') end", NULL), 1);
	T_EQ_INT(run("function handle() babl.kv.set('', 'v') end", NULL), 1);
	T_EQ_INT(run("function handle() babl.kv.set('k', 1) end", NULL), 1);
	T_EQ_INT(run("function handle() babl.kv.set('k', ('v'):rep(1048577)) end", NULL), 1);
	/* Waiting for the host from a script's coroutine is refused. */
	T_EQ_INT(run("function handle() coroutine.wrap(function() babl.kv.get('zz') end)() end", NULL),
	    LSB_EXIT_ERROR);
	HAS(err, "inside a coroutine");
	/* From a C-called function it cannot yield. */
	T_EQ_INT(run("function handle() table.sort({1, 2}, function(a, b) babl.kv.get('zz') return a < b end) end",
		     NULL), LSB_EXIT_ERROR);
	kv_clear();
}

/* ------------------------------------------------------------ escapes */

static void
case_absent(void)
{
	RUN_OK("function handle()\n"
	       "  for _, n in ipairs({'io', 'debug', 'package', 'require', 'dofile', 'loadfile',\n"
	       "      'warn', 'newproxy', 'loadstring', 'module', 'setfenv', 'getfenv'}) do\n"
	       "    assert(_G[n] == nil, n)\n"
	       "  end\n"
	       "  for _, n in ipairs({'execute', 'exit', 'getenv', 'remove', 'rename', 'tmpname',\n"
	       "      'setlocale'}) do assert(os[n] == nil, n) end\n"
	       "  assert(string.dump == nil and ('').dump == nil)\n"
	       "  assert(type(os.time) == 'function' and type(babl.kv.get) == 'function')\n"
	       "end\n", NULL);
}

static int
dump_to_buf(lua_State *L, const void *p, size_t n, void *ud)
{
	(void)L;
	buf_add(ud, p, n);
	return 0;
}

static void
case_load_binary(void)
{
	lua_State *L = luaL_newstate();
	T_ASSERT(L);
	T_EQ_INT(luaL_loadstring(L, "return 'binary ran'"), 0);
	struct buf bin = {0};
	T_EQ_INT(lua_dump(L, dump_to_buf, &bin, 0), 0);
	lua_close(L);
	T_ASSERT(bin.len > 4 && bin.p[0] == 27);
	struct opts o = {.input = bin.p, .inlen = bin.len};
	RUN_OK("function handle()\n"
	       "  local b = babl.readall()\n"
	       "  local f, m = load(b) assert(f == nil and m:find('binary'), m)\n"
	       "  f, m = load(b, 'x', 'b') assert(f == nil and m:find('binary'), m)\n"
	       "  f, m = load(b, 'x', 'bt') assert(f == nil, m)\n"
	       "  local i = 0\n"
	       "  f, m = load(function() i = i + 1 return i == 1 and b or nil end) assert(f == nil, m)\n"
	       "  assert(load('return 1 + 1')() == 2)\n"
	       "  assert(load('return print')() == print)\n" /* the sandbox's globals */
	       "  assert(load('return x', 'c', 't', {x = 5})() == 5)\n"
	       "  local g = load('y = 1') assert(not pcall(g))\n" /* globals frozen */
	       "end\n", &o);
	free(bin.p);
	/* lsb_compile refuses binary chunks too. */
	char e[256];
	const char bad[] = "\x1bLua\x54\x00";
	T_EQ_INT(lsb_compile("b.lua", bad, sizeof bad - 1, e, sizeof e), BABL_EINPUT);
	HAS(((struct buf){e, strlen(e), 0}), "binary");
}

static void
case_collectgarbage(void)
{
	RUN_OK("function handle()\n"
	       "  assert(type(collectgarbage('count')) == 'number')\n"
	       "  for _, o in ipairs({'collect', 'stop', 'restart', 'step', 'incremental',\n"
	       "      'generational', 'isrunning', 'setpause'}) do\n"
	       "    assert(not pcall(collectgarbage, o), o)\n"
	       "  end\n"
	       "  assert(not pcall(collectgarbage))\n"
	       "end\n", NULL);
}

static void
case_readonly_libs(void)
{
	RUN_OK("function handle()\n"
	       "  local function no(f, ...) assert(not pcall(f, ...)) end\n"
	       "  no(function() string.upper = nil end)\n"
	       "  no(function() string.x = 1 end)\n"
	       "  no(function() math.pi = 3 end)\n"
	       "  no(function() babl.write = print end)\n"
	       "  no(function() babl.kv.get = print end)\n"
	       "  no(rawset, string, 'x', 1)\n"
	       "  no(rawset, table, 'insert', print)\n"
	       "  no(rawset, babl.kv, 'get', print)\n"
	       "  no(table.insert, string, 1)\n"
	       "  no(setmetatable, string, {})\n"
	       "  assert(getmetatable(string) == false)\n"
	       "  local mt = getmetatable('')\n"
	       "  assert(mt.__index == string)\n"
	       "  no(function() mt.__index = {} end)\n"
	       "  no(function() mt.__index.upper = nil end)\n"
	       "  no(function() getmetatable('').__index.x = 1 end)\n"
	       "  no(rawset, mt, '__index', {})\n"
	       "  no(setmetatable, mt, {})\n"
	       "  assert(('abc'):upper() == 'ABC' and string.x == nil)\n"
	       "  assert(rawget(string, 'upper') == string.upper)\n"
	       "  local n = 0 for k in pairs(math) do n = n + 1 end assert(n > 20)\n"
	       "  no(setmetatable, {}, {__gc = function() end})\n"
	       "  no(setmetatable, {}, {__gc = false})\n"
	       "end\n", NULL);
}

static void
case_globals_frozen(void)
{
	/* The top level may define globals; handle may not. */
	RUN_OK("count = 5\n"
	       "function handle()\n"
	       "  assert(count == 5)\n"
	       "  local ok, e = pcall(function() count = 6 end) assert(not ok and e:find(\"global 'count'\"), e)\n"
	       "  ok, e = pcall(function() newglobal = 1 end) assert(not ok and e:find(\"global 'newglobal'\"), e)\n"
	       "  assert(not pcall(rawset, _G, 'x', 1))\n"
	       "  assert(not pcall(setmetatable, _G, nil))\n"
	       "  assert(rawget(_G, 'count') == 5 and _G._G == _G)\n"
	       "  local seen = {} for k in pairs(_G) do seen[k] = true end\n"
	       "  assert(seen.handle and seen.count and seen.print)\n"
	       "end\n", NULL);
	T_EQ_INT(run("function handle() x = 1 end", NULL), LSB_EXIT_ERROR);
	HAS(err, "global 'x'");
	T_EQ_INT(run("function handle() handle = nil end", NULL), LSB_EXIT_ERROR);
	HAS(err, "global 'handle'");
}

/* ------------------------------------------------------------ limits */

static void
expect_insns(const char *src)
{
	struct opts o = {.lim = {16u << 20, 1000000, 1u << 20}};
	int st = run(src, &o);
	if (st != LSB_EXIT_INSNS)
		T_FAIL("status %d for %s\nstderr: %s", st, src, err.p);
	HAS(err, "t.lua: instruction limit of 1000000 reached");
}

static void
case_insns(void)
{
	expect_insns("function handle() while true do end end");
	expect_insns("while true do end");
	expect_insns("function handle() while true do pcall(function() while true do end end) end end");
	expect_insns("function handle() while true do pcall(pcall, pcall, function() while true do end end) end end");
	expect_insns("function handle() while true do xpcall(function() while true do end end, "
		     "function(e) while true do end end) end end");
	expect_insns("function handle() while true do xpcall(function() error('x') end, "
		     "function(e) while true do end end) end end");
	expect_insns("function handle() local co = coroutine.wrap(function() while true do end end) "
		     "while true do pcall(co) end end");
	expect_insns("function handle() while true do pcall(coroutine.resume, coroutine.create(function() "
		     "while true do end end)) end end");
	expect_insns("function handle() local cos = {} for i = 1, 100 do cos[i] = coroutine.create(function() "
		     "while true do coroutine.yield() end end) end while true do for i = 1, 100 do "
		     "coroutine.resume(cos[i]) end end end");
	expect_insns("function handle() local t = setmetatable({}, {__index = function(t, k) "
		     "while true do end end}) while true do pcall(function() return t.x end) end end");
	expect_insns("function handle() local t = setmetatable({}, {__close = function() "
		     "while true do end end}) while true do pcall(function() local x <close> = t end) end end");
	expect_insns("function handle() while true do pcall(string.rep, 'x', 100000) end end");
	expect_insns("function handle() local s = ('x'):rep(1000000) while true do local t = s .. 'y' end end");
	expect_insns("function handle() local s = ('x'):rep(1000000) while true do local t = s:upper() end end");
	expect_insns("function handle() local t = {} for i = 1, 100000 do t[i] = i end "
		     "while true do table.insert(t, 1, 0) table.remove(t, 1) end end");
	expect_insns("function handle() while true do pcall(table.move, {}, 1, 1 << 40, 2) end end");
	expect_insns("function handle() local t = {} for i = 1, 20000 do t['k' .. i] = i end "
		     "while true do local x = next(t) end end");
	expect_insns("function handle() while true do pcall(tostring, setmetatable({}, {__tostring = "
		     "function() while true do end end})) end end");
	/* An error raised by the budget cannot be caught and turned into success. */
	expect_insns("function handle() local ok = pcall(function() while true do end end) return 0 end");
	/* The next call runs normally. */
	RUN_OK("function handle() babl.write('fine') end", NULL);
	T_EQ_STR(out.p, "fine");
	/* os.clock counts instructions. */
	RUN_OK("function handle() local a = os.clock() for i = 1, 100000 do end "
	       "assert(os.clock() > a and os.clock() < 1) end", NULL);
}

static void
case_memory(void)
{
	struct opts o = {.lim = {8u << 20, 100000000, 1u << 20}};
	int st = run("function handle() local t, i = {}, 0 while true do i = i + 1 t[i] = {i} end end", &o);
	T_EQ_INT(st, LSB_EXIT_MEMORY);
	HAS(err, "t.lua: memory limit of 8 MiB reached");
	T_ASSERT(last_peak <= (8u << 20));
	st = run("function handle() local s, t = ('x'):rep(1 << 20), {} for i = 1, 100 do t[i] = s .. i end end", &o);
	T_EQ_INT(st, LSB_EXIT_MEMORY);
	/* A memory error caught by pcall still ends the call. */
	st = run("function handle() pcall(function() local t = {} while true do t[#t + 1] = {} end end) "
		 "babl.write('survived') return 0 end", &o);
	T_EQ_INT(st, LSB_EXIT_MEMORY);
	st = run("local t = {} while true do t[#t + 1] = ('y'):rep(1000) .. #t end", &o);
	T_EQ_INT(st, LSB_EXIT_MEMORY);
	/* The size caps refuse before building. */
	T_EQ_INT(run("function handle() local s = string.rep('x', 1e9) end", &o), LSB_EXIT_ERROR);
	HAS(err, "string.rep: result exceeds the limit");
	T_EQ_INT(run("function handle() local s = ('ab'):rep(1e6, ',') end", &o), LSB_EXIT_ERROR);
	T_EQ_INT(run("function handle() local t = {} for i = 1, 600 do t[i] = ('x'):rep(1000) end "
		     "local s = table.concat(t, ('y'):rep(1000)) end", &o), LSB_EXIT_ERROR);
	HAS(err, "table.concat: result exceeds");
	T_EQ_INT(run("function handle() string.pack('c2000000000', '') end", &o), LSB_EXIT_ERROR);
	HAS(err, "string.pack");
	T_EQ_INT(run("function handle() local s = ('x'):rep(1 << 20) s = s .. s s:find('y') end", &o),
	    LSB_EXIT_ERROR);
	HAS(err, "subject");
	T_EQ_INT(run("function handle() ('x'):find(('a?'):rep(300)) end", &o), LSB_EXIT_ERROR);
	HAS(err, "pattern");
	T_EQ_INT(run("function handle() local s = ('x'):rep(1100) s:gsub('x', s) end", &o), LSB_EXIT_ERROR);
	HAS(err, "string.gsub: result exceeds");
	T_EQ_INT(run("function handle() string.format('%099d%s', 1, ('x'):rep(1 << 20)) end", &o),
	    LSB_EXIT_ERROR);
	/* Deep recursion ends in an error, not a crash. */
	T_EQ_INT(run("local function f(n) return 1 + f(n + 1) end function handle() f(1) end", NULL),
	    LSB_EXIT_ERROR);
	HAS(err, "stack overflow");
	T_EQ_INT(run("function handle() local t = setmetatable({}, {__index = function(t, k) return t[k] end}) "
		     "return t.x end", NULL), LSB_EXIT_ERROR);
	HAS(err, "stack overflow");
	T_EQ_INT(run("local function f(s) return (s:gsub('.', f)) end function handle() f('ab') end", NULL),
	    LSB_EXIT_ERROR);
	T_EQ_INT(run("function handle() local s = '' for i = 1, 300 do s = s .. '(' end load(s) "
		     "local ok, e = load('return ' .. ('{'):rep(1000)) assert(not ok) end", NULL), 0);
	T_EQ_INT(run("function handle() local co = coroutine.wrap(function(f) return f(f) end) "
		     "local function f(g) return coroutine.wrap(g)(g) end f(f) end", NULL), LSB_EXIT_ERROR);
	/* And the next call is normal. */
	RUN_OK("function handle() babl.write('fine') end", &o);
}

/* ------------------------------------------------------------ determinism */

static const char det_script[] =
    "local t = {}\n"
    "for i = 1, 1000 do t['key' .. (i * 7919 % 1000)] = i end\n"
    "for i = -5, 5 do t[i] = i end\n"
    "t[1.5] = 'f' t[-0.25] = 'g' t[2^53] = 'big' t[math.huge] = 'inf' t[-math.huge] = '-inf'\n"
    "t[true] = 'T' t[false] = 'F'\n"
    "function handle(req)\n"
    "  local o = {}\n"
    "  for k, v in pairs(t) do o[#o + 1] = tostring(k) .. '=' .. tostring(v) end\n"
    "  print(table.concat(o, ' '))\n"
    "  local k, n = next(t), 0 while k ~= nil do n = n + 1 k = next(t, k) end print(n)\n"
    "  local a, b, f = {}, {}, function() end\n"
    "  print(tostring(a), tostring(b), tostring(a), tostring(f), tostring(print),\n"
    "    tostring(coroutine.create(f)), string.format('%s|%5s', b, 1))\n"
    "  print(setmetatable({}, {__name = 'Point'}))\n"
    "  local recs = {}\n"
    "  for i = 1, 1000 do recs[i] = {k = (i * 37) % 10, id = i} end\n"
    "  table.sort(recs, function(x, y) return x.k < y.k end)\n"
    "  local ids = {}\n"
    "  for i, r in ipairs(recs) do\n"
    "    ids[i] = r.id\n"
    "    if i > 1 then local p = recs[i - 1] assert(p.k < r.k or (p.k == r.k and p.id < r.id)) end\n"
    "  end\n"
    "  print(table.concat(ids, ','))\n"
    "  local nums = {} for i = 1, 200 do nums[i] = (i * 7) % 13 end table.sort(nums)\n"
    "  print(table.concat(nums, ','))\n"
    "  local r = {} for i = 1, 20 do r[i] = math.random(1, 1000000) end\n"
    "  print(table.concat(r, ','), math.random())\n"
    "  print(os.time(), os.date(), os.date('!%Y-%m-%d %H:%M:%S'), babl.now(), os.clock() >= 0)\n"
    "  print(collectgarbage('count') > 0)\n"
    "end\n";

static char *
det_run(uint64_t seed)
{
	struct opts o = {.seed = seed, .time_ms = 1700000000123ull};
	RUN_OK(det_script, &o);
	return dup_mem(out.p, out.len);
}

static void
case_determinism(void)
{
	char *a = det_run(7);
	/* Perturb the heap between the runs so addresses differ. */
	void *junk[64];
	for (int i = 0; i < 64; i++)
		junk[i] = malloc((size_t)(i + 1) * 97);
	char *b = det_run(7);
	for (int i = 0; i < 64; i++)
		free(junk[i]);
	char *c = det_run(8);
	T_EQ_STR(a, b);
	T_ASSERT(strcmp(a, c) != 0);
	/* The fixed order itself: numbers, strings, booleans. */
	T_ASSERT(strncmp(a, "-inf=-inf -5=-5 -4=-4 -3=-3 -2=-2 -1=-1 -0.25=g 0=0 1=1 1.5=f 2=2 ", 66) == 0);
	T_ASSERT(strstr(a, "5=5 9007199254740992=big inf=inf key0=") != NULL);
	T_ASSERT(strstr(a, "key999=") && strstr(a, " false=F true=T\n1018\n"));
	T_ASSERT(strstr(a, "table: 1\ttable: 2\ttable: 1\tfunction: 3\tfunction: 4\tthread: 5\ttable: 2|    1\n"
			   "Point: 6\n"));
	T_ASSERT(strstr(a, "1700000000\tTue Nov 14 22:13:20 2023\t2023-11-14 22:13:20\t1700000000.123\ttrue\n"));
	free(a);
	free(b);
	free(c);

	RUN_OK("function handle()\n"
	       "  assert(not pcall(pairs({[{}] = 1}) and next, {[{}] = 1}))\n"
	       "  local ok, e = pcall(function() for k in pairs({[print] = 1}) do end end)\n"
	       "  assert(not ok and e:find('keys of type function have no stable order'), e)\n"
	       "  ok, e = pcall(string.format, '%p', {})\n"
	       "  assert(not ok and e:find('%%p is not allowed'), e)\n"
	       "  assert(select('#', math.randomseed(5)) >= 0)\n"
	       "  local x = math.random() math.randomseed(5) assert(math.random() == x)\n"
	       "  math.randomseed() local y = math.random() math.randomseed() assert(math.random() == y)\n"
	       "  assert(os.time({year = 2000, month = 1, day = 1, hour = 0}) == 946684800)\n"
	       "  assert(os.time({year = 2000, month = 13, day = 1, hour = 0}) == 978307200)\n"
	       "  assert(os.date('%Y', 0) == '1970' and os.date('*t', 86399).hour == 23)\n"
	       "  assert(os.date('!*t').year == 2023 and os.difftime(5, 2) == 3.0)\n"
	       "  assert(not pcall(os.date, '%Q'))\n"
	       /* next during a traversal that removes keys; next from any key. */
	       "  local t = {} for i = 1, 100 do t['k' .. i] = i end\n"
	       "  local n = 0 for k in pairs(t) do t[k] = nil n = n + 1 end assert(n == 100 and next(t) == nil)\n"
	       "  t = {a = 1, b = 2, c = 3, d = 4} assert(next(t, 'b') == 'c' and next(t, 'd') == nil)\n"
	       "  t.e = 5 assert(next(t, 'd') == 'e')\n"
	       "  local p = setmetatable({}, {__pairs = function(s) return function(_, k) if not k then return 1, 'one' end end, s, nil end})\n"
	       "  for k, v in pairs(p) do assert(k == 1 and v == 'one') end\n"
	       "end\n", NULL);
}

static void
case_pairs_big(void)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct opts o = {.lim = {256u << 20, 1000000000, 1u << 20}};
	RUN_OK("local t = {} for i = 1, 100000 do t['k' .. i] = i t[i * 1.5] = i end\n"
	       "function handle()\n"
	       "  local n, s, last = 0, 0, nil\n"
	       "  for k, v in pairs(t) do n = n + 1 s = s + v end\n"
	       "  for k, v in pairs(t) do n = n + 1 end\n"
	       "  print(n, s)\n"
	       "end\n", &o);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	T_EQ_STR(out.p, "400000\t10000100000\n");
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "       pairs over 200,000 keys twice (with setup): %.3f s\n", s);
	T_ASSERT(s < 5);
}

/* ------------------------------------------------------------ examples */

static void
example(const char *file, const char *input, const char *const *args, int nargs, int want,
    const char *want_out)
{
	size_t len;
	char *src = read_file(file, &len);
	if (!src)
		T_FAIL("cannot read contrib/services/%s", file);
	struct opts o = {.name = file, .input = input, .chunk = 5, .args = args, .nargs = nargs};
	int st = run(src, &o);
	free(src);
	if (st != want)
		T_FAIL("%s: status %d, stderr: %s", file, st, err.p);
	if (want_out && strcmp(out.p, want_out) != 0)
		T_FAIL("%s: output \"%s\", expected \"%s\"", file, out.p, want_out);
}

static void
case_examples(void)
{
	char e[256];
	static const char *const names[] = {"upper.lua", "wc.lua", "counter.lua", "kv.lua", "json.lua"};
	for (int i = 0; i < 5; i++) {
		size_t len;
		char *src = read_file(names[i], &len);
		if (!src)
			T_FAIL("cannot read %s", names[i]);
		if (lsb_compile(names[i], src, len, e, sizeof e))
			T_FAIL("%s", e);
		free(src);
	}
	example("upper.lua", "hello\nWorld 42\nlast", NULL, 0, 0, "HELLO\nWORLD 42\nLAST");
	example("upper.lua", NULL, NULL, 0, 0, "");

	example("wc.lua", "one two  three\nfour\n\n five", NULL, 0, 0, "      3       5      26\n");
	static const char *const l[] = {"-l"}, *const lw[] = {"-lw"}, *const bad[] = {"-x"};
	example("wc.lua", "a\nb\nc", l, 1, 0, "2\n");
	example("wc.lua", "abcdefghij klmnopq\n", lw, 1, 0, "      1       2\n");
	example("wc.lua", "", NULL, 0, 0, "      0       0       0\n");
	example("wc.lua", "x", bad, 1, 2, "");

	kv_clear();
	example("counter.lua", NULL, NULL, 0, 0, "1\n");
	example("counter.lua", NULL, NULL, 0, 0, "2\n");
	example("counter.lua", NULL, NULL, 0, 0, "3\n");
	T_EQ_STR(kv[kv_find("n", 1)].v, "3");

	static const char *const s1[] = {"set", "color", "blue"}, *const s2[] = {"set", "size", "9"},
				   *const s3[] = {"set", "cat", "x"}, *const g1[] = {"get", "color"},
				   *const g2[] = {"get", "nope"}, *const d1[] = {"del", "color"},
				   *const k0[] = {"keys"}, *const k1[] = {"keys", "s"},
				   *const u[] = {"frob"};
	example("kv.lua", NULL, s1, 3, 0, "");
	example("kv.lua", NULL, s2, 3, 0, "");
	example("kv.lua", NULL, s3, 3, 0, "");
	example("kv.lua", NULL, g1, 2, 0, "blue\n");
	example("kv.lua", NULL, g2, 2, 1, "");
	HAS(err, "nope: no such key");
	example("kv.lua", NULL, k0, 1, 0, "cat\ncolor\nn\nsize\n");
	example("kv.lua", NULL, d1, 2, 0, "");
	example("kv.lua", NULL, k1, 2, 0, "size\n");
	example("kv.lua", NULL, g1, 2, 1, "");
	example("kv.lua", NULL, u, 1, 2, "");
	kv_clear();

	example("json.lua", "{\"a\": [1, 2.5e3, {\"b\": null}], \"c\": \"x\\\"y\", \"d\": {}, \"e\": [], "
			    "\"f\": true}",
	    NULL, 0, 0,
	    "{\n  \"a\": [\n    1,\n    2.5e3,\n    {\n      \"b\": null\n    }\n  ],\n"
	    "  \"c\": \"x\\\"y\",\n  \"d\": {},\n  \"e\": [],\n  \"f\": true\n}\n");
	static const char *const cflag[] = {"-c"};
	example("json.lua", "[1, {\"k\" : false}]\n\"s\"", cflag, 1, 0, "[1,{\"k\":false}]\n\"s\"\n");
	example("json.lua", "{\"a\":\n\n [1,, 2]}", NULL, 0, 1, "");
	HAS(err, "json: line 3: unexpected character ','");
	example("json.lua", "{\"a\" 1}", NULL, 0, 1, "");
	HAS(err, "expected ':'");
	example("json.lua", "[\"unterminated", NULL, 0, 1, "");
	example("json.lua", "", NULL, 0, 1, "");
}

/* ------------------------------------------------------------ compile */

static void
case_compile(void)
{
	char e[256];
	const char ok[] = "function handle() end";
	T_EQ_INT(lsb_compile("ok.lua", ok, strlen(ok), e, sizeof e), 0);
	const char bad[] = "function handle()\n  local x = = 1\nend\n";
	T_EQ_INT(lsb_compile("bad.lua", bad, strlen(bad), e, sizeof e), BABL_EINPUT);
	T_ASSERT(strncmp(e, "bad.lua:2: unexpected symbol near '='", 37) == 0);

	struct lsb_prog *p;
	T_EQ_INT(lsb_prepare(&p, "bad.lua", bad, strlen(bad), e, sizeof e), BABL_EINPUT);
	T_ASSERT(strncmp(e, "bad.lua:2:", 10) == 0);
	const char src[] = "local x = 41\nfunction handle()\n  x = x + 1 babl.write(x)\n  error('line 3')\nend\n";
	T_EQ_INT(lsb_prepare(&p, "p.lua", src, strlen(src), e, sizeof e), 0);
	struct opts o = {.prog = p};
	T_EQ_INT(run(NULL, &o), LSB_EXIT_ERROR);
	T_EQ_STR(out.p, "42");
	T_ASSERT(strncmp(err.p, "p.lua:4: line 3", 15) == 0);
	T_EQ_INT(run(NULL, &o), LSB_EXIT_ERROR); /* a fresh state each time */
	T_EQ_STR(out.p, "42");
	lsb_prog_free(p);
}

/*
 * A prog's states come back from images (lsb_start_prog): whatever a call
 * did to its state (tables in globals, upvalues, large blocks, new slabs,
 * an error, the instruction or memory limit, a kv write, being freed
 * while it waited), the next call sees a fresh state: its output and
 * errors byte for byte what lsb_start gives, its instruction count and
 * peak memory those of a fresh state of the prog; and calls of one prog
 * can wait at the same time.
 */
static void
case_images(void)
{
	const char src[] =
	    "local n = 0\n"
	    "seen = {}\n"
	    "function handle(req)\n"
	    "  n = n + 1\n"
	    "  local mode = req.args[1]\n"
	    "  seen[#seen + 1] = mode\n"
	    "  local t, k = {}, mode == 'big' and 20000 or 10\n"
	    "  for i = 1, k do t[i] = {i, tostring(i)} end\n"
	    "  local s = string.rep('x', mode == 'big' and 100000 or 10)\n"
	    "  print(n, #seen, tostring(t), tostring({}), math.random(1000), #s)\n"
	    "  if mode == 'error' then error('boom') end\n"
	    "  if mode == 'mem' then local u = {} for i = 1, 1e9 do u[i] = s .. i end end\n"
	    "  if mode == 'wait' then babl.write(babl.readall()) end\n"
	    "  if mode == 'loop' then while true do end end\n"
	    "  if mode == 'kvset' then babl.kv.set('k', 'v') error('after a write') end\n"
	    "end\n";
	struct lsb_prog *p;
	char e[256];
	T_EQ_INT(lsb_prepare(&p, "img.lua", src, strlen(src), e, sizeof e), 0);
	static const char *const modes[] = {"plain", "big", "plain", "error", "plain", "mem",
	    "plain", "big", "loop", "big", "kvset", "plain"};
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
			struct opts o = {.name = "img.lua", .args = &modes[i], .nargs = 1,
			    .seed = 7 + i, .lim = {8u << 20, 2000000, 0}};
			/* The source in a fresh state; the prog in a fresh state
			 * (a prog of its own: its first call makes its image);
			 * the prog in a state copied back from its image. */
			int fresh = run(src, &o);
			const char *m = modes[i];
			T_EQ_INT(fresh, !strcmp(m, "mem") ? LSB_EXIT_MEMORY
			    : !strcmp(m, "loop") ? LSB_EXIT_INSNS
			    : !strcmp(m, "error") || !strcmp(m, "kvset") ? LSB_EXIT_ERROR : 0);
			char *fout = strdup(out.p), *ferr = strdup(err.p);
			struct lsb_prog *once;
			T_EQ_INT(lsb_prepare(&once, "img.lua", src, strlen(src), e, sizeof e), 0);
			o.prog = once;
			T_EQ_INT(run(NULL, &o), fresh);
			lsb_prog_free(once);
			uint64_t insns = last_insns, peak = last_peak;
			o.prog = p;
			T_EQ_INT(run(NULL, &o), fresh);
			T_EQ_STR(out.p, fout);
			T_EQ_STR(err.p, ferr);
			T_EQ_INT(last_insns, insns);
			T_EQ_INT(last_peak, peak);
			T_EQ_INT(last_writes, 0);
			T_ASSERT(strncmp(out.p, "1\t1\ttable: 1\ttable: 2\t", 22) == 0);
			free(fout);
			free(ferr);
		}
	}

	/* Three calls waiting at once; one is dropped while it waits. */
	static const char *const w[] = {"wait"};
	struct lsb_req req = {"svc", "00ff", 1700000000123ull, 42, 1, w};
	struct lsb_limits lim = {0, 0, 0};
	struct lsb *c[3];
	int state, status;
	for (int i = 0; i < 3; i++) {
		buf_reset(&out);
		T_EQ_INT(lsb_start_prog(&c[i], &lim, &host, NULL, p, &req, &state, &status), 0);
		T_EQ_INT(state, LSB_WAIT_INPUT);
		buf_add(&out, "", 1);
		T_ASSERT(strncmp(out.p, "1\t1\ttable: 1\ttable: 2\t", 22) == 0);
	}
	lsb_free(c[1]);
	for (int i = 0; i < 3; i += 2) {
		buf_reset(&out);
		char in[32];
		snprintf(in, sizeof in, "input %d\n", i);
		T_EQ_INT(lsb_feed(c[i], in, strlen(in)), 0);
		lsb_feed_eof(c[i]);
		T_EQ_INT(lsb_resume(c[i], &status), LSB_DONE);
		T_EQ_INT(status, 0);
		buf_add(&out, "", 1);
		T_EQ_STR(out.p, in);
		lsb_free(c[i]);
	}
	lsb_prog_free(p);
}

/* ------------------------------------------------------------ speed */

static void
case_speed(void)
{
	const char src[] = "function handle(req)\n"
			   "  local s = babl.read()\n"
			   "  if s then babl.write(s) end\n"
			   "end\n";
	char in[64];
	memset(in, 'x', sizeof in);
	struct lsb_prog *p;
	char e[128];
	T_EQ_INT(lsb_prepare(&p, "echo.lua", src, strlen(src), e, sizeof e), 0);
	struct lsb_limits lim = {64u << 20, 100000000, 16u << 20};
	static const char *const args[] = {"a"};
	struct lsb_req req = {"echo", "0123456789abcdef", 1700000000000ull, 1, 1, args};
	for (int mode = 0; mode < 2; mode++) {
		int n = 20000;
		struct timespec t0, t1;
		uint64_t peak = 0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int i = 0; i < n; i++) {
			struct lsb *c;
			int state, status;
			buf_reset(&out);
			int rc = mode ? lsb_start_prog(&c, &lim, &host, NULL, p, &req, &state, &status)
				      : lsb_start(&c, &lim, &host, NULL, "echo.lua", src, strlen(src),
					    &req, &state, &status);
			T_EQ_INT(rc, 0);
			T_EQ_INT(state, LSB_WAIT_INPUT);
			lsb_feed(c, in, sizeof in);
			lsb_feed_eof(c);
			T_EQ_INT(lsb_resume(c, &status), LSB_DONE);
			T_EQ_INT(status, 0);
			T_EQ_INT(out.len, 64);
			lsb_usage(c, NULL, &peak);
			lsb_free(c);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		fprintf(stderr, "       echo calls, %s: %.0f calls/s (%.1f us each, peak %llu KiB)\n",
		    mode ? "lsb_start_prog" : "lsb_start", n / s, s / n * 1e6,
		    (unsigned long long)peak / 1024);
		T_ASSERT(n / s > 2000); /* a floor that holds even under sanitizers */
	}
	lsb_prog_free(p);
}

static void
case_cleanup(void)
{
	kv_clear();
	free(out.p);
	free(err.p);
	out = (struct buf){0};
	err = (struct buf){0};
}

static const struct t_case cases[] = {
	{"echo_read", case_echo_read},
	{"lines", case_lines},
	{"streaming", case_streaming},
	{"output_pause", case_output_pause},
	{"write_types", case_write_types},
	{"upper_lower", case_upper_lower},
	{"status", case_status},
	{"kv", case_kv},
	{"absent", case_absent},
	{"load_binary", case_load_binary},
	{"collectgarbage", case_collectgarbage},
	{"readonly_libs", case_readonly_libs},
	{"globals_frozen", case_globals_frozen},
	{"insns", case_insns},
	{"memory", case_memory},
	{"determinism", case_determinism},
	{"pairs_big", case_pairs_big},
	{"examples", case_examples},
	{"compile", case_compile},
	{"images", case_images},
	{"speed", case_speed},
	{"cleanup", case_cleanup},
	{0},
};

int
main(int argc, char **argv)
{
	return t_run(argc, argv, cases);
}
