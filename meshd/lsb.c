/*
 * lsb.c - one Lua call in a sandbox (the contract is in lsb.h).
 *
 * Shape of a call.  lsb_start creates a lua_State whose allocator counts
 * every byte against the call's memory cap, opens the allowlisted
 * libraries, replaces what is unsafe or nondeterministic, and freezes the
 * library tables.  The script's top level and then handle(req) run in one
 * coroutine (c->co) that the host resumes; babl.read and babl.kv.* yield
 * it with lua_yieldk when they need something from the host, and their
 * continuations pick up the host's answer when the host resumes.
 *
 * Limits.  A count hook adds HOOK_EVERY to the call's instruction counter;
 * C functions whose work is not made of VM instructions charge the counter
 * too.  Once the budget is spent (or the allocator has refused memory for
 * good) every thread we know of gets a hook that fires on every
 * instruction and raises, so pcall, xpcall, error handlers and coroutines
 * cannot keep running: each instruction they try raises again.  The end
 * status comes from those sticky flags, not from the error value, so a
 * script cannot disguise a limit as an ordinary error.  Finalizers (__gc)
 * run with hooks disabled in Lua 5.4, so setmetatable refuses metatables
 * that carry __gc; scripts cannot create userdata, so no other finalizer
 * can exist.
 *
 * Read-only tables.  Libraries and the globals are seen through proxies:
 * an empty table whose metatable reads through to the real table
 * (__index), refuses writes (__newindex) and hides itself (__metatable =
 * false).  The registry's "frozen" table maps each proxy to its real table,
 * so rawset can refuse and rawget, next and pairs can read through.  The
 * globals proxy is installed as the registry's global table before the
 * script is loaded, so every chunk's _ENV is the proxy; its __newindex
 * writes through while the top level runs and refuses afterwards.  Only
 * base and string are opened for every call; the other libraries are
 * opened the first time a global lookup misses on their name (opening
 * them all costs more than a small call).
 *
 * Determinism.  next/pairs visit keys in a fixed order from a sorted key
 * array cached per table (weakly) while a traversal goes on; tostring
 * numbers reference values in order of first use; table.sort is a stable
 * merge sort; %p is refused; math.random is seeded from the request; the
 * clock functions give the request's time, and dates are computed in UTC
 * without consulting the process's time zone (which also keeps libc from
 * opening /etc/localtime inside a confined worker).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "err.h"
#include "lsb.h"

/* Instructions between two runs of the count hook. */
#define HOOK_EVERY 1000
/* Longest pattern accepted by string.find, match, gmatch and gsub. */
#define PATTERN_MAX 512
/* Allocated bytes per instruction charged to the budget. */
#define ALLOC_CHARGE 64
/* Bounds of kv keys and values. */
#define KV_KEY_MAX 1024
#define KV_VAL_MAX (1024 * 1024)
/* Memory granted beyond the cap for writing the final error report. */
#define REPORT_HEADROOM (1024 * 1024)
/* The memory cap of lsb_compile and lsb_prepare. */
#define COMPILE_MEM (64ull * 1024 * 1024)

/* Defaults for limits given as zero. */
#define DEF_MEM (64ull * 1024 * 1024)
#define DEF_INSNS 100000000ull
#define DEF_STRING (16u * 1024 * 1024)

enum phase { PH_TOP, PH_HANDLE, PH_DONE };

/* Registry keys: the addresses of these objects are unique. */
static const char K_IDS, K_PCACHE, K_FROZEN, K_WS, K_RS, K_CO, K_REQ, K_STOP, K_WEAKMT;

struct lsb_image;

struct lsb_prog {
	char *name;
	char *bin; /* lua_dump of the chunk, with debug information */
	size_t len;
	struct lsb_image *idle; /* states kept for the next calls */
	unsigned nidle;
};

/*
 * Where a state's memory comes from.  A state makes and drops thousands of
 * small objects per call; taking them from malloc one by one (and giving
 * them all back one by one when the state closes) cost more than the call
 * itself.  Small blocks (up to AR_SMALL bytes, in 16-byte classes) are cut
 * from large slabs and recycled through a free list per class; larger ones
 * come from malloc with a header that keeps them on a list.  When the call
 * ends, the slabs and the large blocks go back all at once (ar_release),
 * without walking the state's objects; slabs are kept for the next call.
 * Under AddressSanitizer every block comes from malloc, so that the
 * sanitizer still sees each one.
 *
 * A state kept as an image (struct lsb_image, below) owns the slabs and
 * large blocks it had when the image was taken: they are "kept" and never
 * go back while the image lives, so that the image's bytes can be copied
 * back to the same addresses.  Lua freeing a kept large block only takes
 * it off the list; growing one moves it to a new block.
 */
#if defined(__SANITIZE_ADDRESS__)
#define AR_SMALL 0
#else
#define AR_SMALL 512
#endif
#define AR_CLASSES 32             /* 16, 32, ... 512 bytes */
#define AR_SLAB (64u * 1024)
#define AR_KEEP 16                /* slabs kept for later states (1 MiB) */

struct ar_big {
	struct ar_big *prev, *next;
	size_t size; /* bytes after the header (32 bytes: they stay aligned) */
	size_t kept; /* part of an image: never freed while the image lives */
};

struct ar_slab {
	struct ar_slab *next;
	size_t pad; /* keeps what follows 16-byte aligned */
};

struct arena {
	void *free[AR_CLASSES];
	struct ar_slab *slabs;
	unsigned char *cur;
	size_t left;
	struct ar_big big; /* the list's head */
	struct ar_slab *kept; /* the image's slabs: this one and those after */
};

struct lsb {
	lua_State *L;  /* main thread: setup and reports */
	lua_State *co; /* the thread that runs the top level and handle */
	struct lsb_limits lim;
	struct lsb_host host;
	void *ud;
	char name[128];
	uint64_t time_ms, seed;

	/* Memory accounting (see sb_alloc). */
	struct arena ar;
	uint64_t mem, peak, cap;
	int pend;        /* an allocation failed and may be retried */
	void *pend_ptr;
	size_t pend_size;
	int mem_hit;     /* the cap was reached for good */

	uint64_t insns;
	int insn_hit;
	int first_limit; /* LSB_EXIT_INSNS or LSB_EXIT_MEMORY, whichever came first */

	/* Input: bytes [in_off, in_len) of in are unread; scan is where the
	 * search for the next newline resumes.  in is buf (in_cap bytes), or
	 * the host's bytes lent by lsb_feed_lend until lsb_feed_settle. */
	const char *in;
	char *buf;
	size_t in_off, in_len, in_cap, scan;
	int lent;
	int eof;

	int phase, wait, status;

	/* A kv request and its answer. */
	const char *kv_key;
	size_t kv_klen;
	int kv_is_keys, kv_replied, kv_found;
	char *kv_val;
	size_t kv_vl;
	char *kv_blob;     /* keys reply: the key bytes back to back */
	size_t *kv_lens;   /* and their lengths */
	size_t kv_nkeys;

	lua_Integer next_id; /* tostring numbering */
	struct lsb_image *img; /* the image this state comes back to, or NULL */
};

static struct lsb *
sb_of(lua_State *L)
{
	void *ud;
	(void)lua_getallocf(L, &ud);
	return ud;
}


/* Push the registry table at key, creating it on first use (ids, the pairs
 * cache and the frozen map have weak keys). */
static void
reg_table(lua_State *L, const void *key)
{
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE)
		return;
	lua_pop(L, 1);
	lua_newtable(L);
	if (key == &K_IDS || key == &K_PCACHE || key == &K_FROZEN) {
		if (lua_rawgetp(L, LUA_REGISTRYINDEX, &K_WEAKMT) != LUA_TTABLE) {
			lua_pop(L, 1);
			lua_createtable(L, 0, 1);
			lua_pushliteral(L, "k");
			lua_setfield(L, -2, "__mode");
			lua_pushvalue(L, -1);
			lua_rawsetp(L, LUA_REGISTRYINDEX, &K_WEAKMT);
		}
		lua_setmetatable(L, -2);
	}
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

/* ---------------------------------------------------------------- limits */

static void
note_limit(struct lsb *c, int which)
{
	if (which == LSB_EXIT_INSNS)
		c->insn_hit = 1;
	else
		c->mem_hit = 1;
	if (!c->first_limit)
		c->first_limit = which;
}

/* ---------------------------------------------------------------- arena */

static struct ar_slab *ar_spare; /* slabs of states gone, for the next */
static unsigned ar_nspare;

static void
ar_init(struct arena *a)
{
	memset(a, 0, sizeof *a);
	a->big.prev = a->big.next = &a->big;
}

static void *
ar_small(struct arena *a, size_t n)
{
	unsigned k = (unsigned)((n + 15) / 16 - 1);
	void *p = a->free[k];
	if (p) {
		memcpy(&a->free[k], p, sizeof p);
		return p;
	}
	size_t sz = (size_t)(k + 1) * 16;
	if (a->left < sz) {
		struct ar_slab *sl = ar_spare;
		if (sl) {
			ar_spare = sl->next;
			ar_nspare--;
		} else if (!(sl = malloc(sizeof *sl + AR_SLAB))) {
			return NULL;
		}
		sl->next = a->slabs;
		a->slabs = sl;
		a->cur = (unsigned char *)(sl + 1);
		a->left = AR_SLAB;
	}
	p = a->cur;
	a->cur += sz;
	a->left -= sz;
	return p;
}

static void
ar_put(struct arena *a, void *p, size_t n)
{
	unsigned k = (unsigned)((n + 15) / 16 - 1);
	memcpy(p, &a->free[k], sizeof p);
	a->free[k] = p;
}

static void
ar_big_link(struct arena *a, struct ar_big *h)
{
	h->next = a->big.next;
	h->prev = &a->big;
	a->big.next->prev = h;
	a->big.next = h;
}

static void
ar_big_unlink(struct ar_big *h)
{
	h->prev->next = h->next;
	h->next->prev = h->prev;
}

static void *
ar_big_realloc(struct arena *a, void *p, size_t n)
{
	struct ar_big *h = p ? (struct ar_big *)p - 1 : NULL;
	if (h && h->kept) {
		/* An image's block stays where it is: a smaller request keeps
		 * it, a larger one moves to a block of its own. */
		if (n <= h->size)
			return p;
		void *q = ar_big_realloc(a, NULL, n);
		if (!q)
			return NULL;
		memcpy(q, p, h->size);
		ar_big_unlink(h);
		return q;
	}
	if (h)
		ar_big_unlink(h);
	struct ar_big *nh = realloc(h, sizeof *nh + n);
	if (!nh) {
		if (h) /* still there: back on the list */
			ar_big_link(a, h);
		return NULL;
	}
	nh->size = n;
	nh->kept = 0;
	ar_big_link(a, nh);
	return nh + 1;
}

static void
ar_big_free(void *p)
{
	struct ar_big *h = (struct ar_big *)p - 1;
	ar_big_unlink(h);
	if (!h->kept)
		free(h);
}

/* Block p of old bytes (NULL, 0: none) as one of n > 0 bytes, or NULL
 * (p unchanged) if there is no memory. */
static void *
ar_realloc(struct arena *a, void *p, size_t old, size_t n)
{
	int small_old = p && old <= AR_SMALL, small_new = n <= AR_SMALL;
	if (p && small_old && small_new && (old + 15) / 16 == (n + 15) / 16)
		return p;
	if ((!p || !small_old) && !small_new)
		return ar_big_realloc(a, p, n);
	void *q = small_new ? ar_small(a, n) : ar_big_realloc(a, NULL, n);
	if (!q || !p)
		return q;
	memcpy(q, p, old < n ? old : n);
	if (small_old)
		ar_put(a, p, old);
	else
		ar_big_free(p);
	return q;
}

static void
ar_free(struct arena *a, void *p, size_t old)
{
	if (!p)
		return;
	if (old <= AR_SMALL)
		ar_put(a, p, old);
	else
		ar_big_free(p);
}

/* Everything the arena holds goes at once; slabs are kept for later.  An
 * image's slabs and blocks stay where they are, for the image. */
static void
ar_release(struct arena *a)
{
	struct ar_big *h = a->big.next;
	while (h != &a->big) {
		struct ar_big *next = h->next;
		if (!h->kept)
			free(h);
		h = next;
	}
	while (a->slabs && a->slabs != a->kept) {
		struct ar_slab *sl = a->slabs;
		a->slabs = sl->next;
		if (ar_nspare < AR_KEEP) {
			sl->next = ar_spare;
			ar_spare = sl;
			ar_nspare++;
		} else {
			free(sl);
		}
	}
	ar_init(a);
}

/* Close c's state (if any) and give back its memory. */
static void
sb_close(struct lsb *c)
{
	if (c->L)
		lua_close(c->L);
	c->L = NULL;
	ar_release(&c->ar);
}

/*
 * The allocator.  Growing requests beyond the cap are refused.  Lua answers
 * a refusal with an emergency collection and one retry of the same request;
 * only a refusal that is not followed by a successful retry counts as
 * hitting the cap, so a script that merely needed a collection goes on.
 */
static void *
sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct lsb *c = ud;
	size_t old = ptr ? osize : 0;
	if (nsize == 0) {
		ar_free(&c->ar, ptr, old);
		c->mem -= old;
		return NULL;
	}
	if (nsize <= old) {
		/* Lua assumes shrinking never fails: keep the block if it does. */
		void *p = ar_realloc(&c->ar, ptr, old, nsize);
		if (!p)
			return ptr;
		c->mem -= old - nsize;
		return p;
	}
	int retry = c->pend && c->pend_ptr == ptr && c->pend_size == nsize;
	if (c->pend && !retry)
		note_limit(c, LSB_EXIT_MEMORY);
	c->pend = 0;
	size_t grow = nsize - old;
	void *p = NULL;
	if (c->mem + grow <= c->cap)
		p = ar_realloc(&c->ar, ptr, old, nsize);
	if (!p) {
		if (retry) {
			note_limit(c, LSB_EXIT_MEMORY);
		} else {
			c->pend = 1;
			c->pend_ptr = ptr;
			c->pend_size = nsize;
		}
		return NULL;
	}
	c->mem += grow;
	if (c->mem > c->peak)
		c->peak = c->mem;
	/* Building bytes is work the VM does not count (one OP_CONCAT can copy
	 * megabytes): charge it, and let the next hook run enforce it.  Only
	 * new strings and userdata are charged (Lua tags a new object's
	 * request with its type): when a table's parts grow depends on where
	 * its string keys collide, and so on the process's random string
	 * hash seed, and a charge for it would differ between replicas. */
	if (!ptr && (osize == LUA_TSTRING || osize == LUA_TUSERDATA))
		c->insns += grow / ALLOC_CHARGE;
	return p;
}

static void sb_hook(lua_State *L, lua_Debug *ar);

/* Make every known thread raise on each instruction, and raise now. */
static int
sb_stop(lua_State *L, struct lsb *c)
{
	lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
	if (c->co)
		lua_sethook(c->co, sb_hook, LUA_MASKCOUNT, 1);
	lua_sethook(c->L, sb_hook, LUA_MASKCOUNT, 1);
	lua_pushlightuserdata(L, (void *)&K_STOP);
	return lua_error(L);
}

static void
sb_hook(lua_State *L, lua_Debug *ar)
{
	struct lsb *c = sb_of(L);
	(void)ar;
	if (!c->insn_hit && !c->mem_hit) {
		c->insns += HOOK_EVERY;
		if (c->insns <= c->lim.instructions)
			return;
		note_limit(c, LSB_EXIT_INSNS);
	}
	sb_stop(L, c);
}

/* Charge n units of work done in C to the instruction budget. */
static void
charge(lua_State *L, uint64_t n)
{
	struct lsb *c = sb_of(L);
	c->insns += n;
	if (c->insns > c->lim.instructions || c->insn_hit || c->mem_hit) {
		if (!c->insn_hit && !c->mem_hit)
			note_limit(c, LSB_EXIT_INSNS);
		sb_stop(L, c);
	}
}

static size_t
max_string(lua_State *L)
{
	return sb_of(L)->lim.max_string;
}

/* Call the function in upvalue 1 with all arguments; keep nres results. */
static void
call_orig(lua_State *L, int nres)
{
	int n = lua_gettop(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, n, nres);
}

/* -------------------------------------------------------------- tostring */

/* The id of a reference value, given in order of first use. */
static lua_Integer
ref_id(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	reg_table(L, &K_IDS);
	lua_pushvalue(L, idx);
	lua_rawget(L, -2);
	lua_Integer id;
	if (lua_isinteger(L, -1)) {
		id = lua_tointeger(L, -1);
	} else {
		id = ++sb_of(L)->next_id;
		lua_pushvalue(L, idx);
		lua_pushinteger(L, id);
		lua_rawset(L, -4);
	}
	lua_pop(L, 2);
	return id;
}

/* Push the deterministic string form of the value at idx. */
static const char *
sb_tostring(lua_State *L, int idx, size_t *len)
{
	idx = lua_absindex(L, idx);
	if (luaL_callmeta(L, idx, "__tostring")) {
		if (!lua_isstring(L, -1))
			luaL_error(L, "'__tostring' must return a string");
		return lua_tolstring(L, -1, len);
	}
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
	case LUA_TBOOLEAN:
	case LUA_TNUMBER:
	case LUA_TSTRING:
		return luaL_tolstring(L, idx, len);
	default: {
		const char *kind = luaL_typename(L, idx);
		if (luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {
			if (lua_type(L, -1) == LUA_TSTRING)
				kind = lua_tostring(L, -1);
		} else {
			lua_pushnil(L);
		}
		lua_Integer id = ref_id(L, idx);
		lua_pushfstring(L, "%s: %I", kind, (LUAI_UACINT)id);
		lua_remove(L, -2);
		return lua_tolstring(L, -1, len);
	}
	}
}

static int
l_tostring(lua_State *L)
{
	luaL_checkany(L, 1);
	sb_tostring(L, 1, NULL);
	return 1;
}

/* ----------------------------------------------------------- frozen tables */

/* The globals' __newindex: the top level defines globals, handle cannot. */
static int
global_newindex(lua_State *L)
{
	if (sb_of(L)->phase == PH_TOP) {
		lua_settop(L, 3);
		lua_rawset(L, lua_upvalueindex(2));
		return 0;
	}
	return luaL_error(L, "attempt to assign to global '%s' (globals are read-only "
			     "once the top level has run)", sb_tostring(L, 2, NULL));
}

static int
ro_newindex(lua_State *L)
{
	const char *what = lua_tostring(L, lua_upvalueindex(1));
	const char *key = sb_tostring(L, 2, NULL);
	return luaL_error(L, "attempt to modify read-only table '%s' (key '%s')", what, key);
}

/* Push a read-only proxy of the table at idx; name is used in messages. */
static void
make_proxy(lua_State *L, int idx, const char *name, lua_CFunction newindex)
{
	idx = lua_absindex(L, idx);
	lua_createtable(L, 0, 0);
	lua_createtable(L, 0, 3);
	lua_pushvalue(L, idx);
	lua_setfield(L, -2, "__index");
	lua_pushstring(L, name);
	lua_pushvalue(L, idx);
	lua_pushcclosure(L, newindex, 2);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	reg_table(L, &K_FROZEN);
	lua_pushvalue(L, -2);
	lua_pushvalue(L, idx);
	lua_rawset(L, -3);
	lua_pop(L, 1);
}

/* If the table at idx is frozen, replace it with its backing table. */
static int
unfreeze_arg(lua_State *L, int idx)
{
	reg_table(L, &K_FROZEN);
	lua_pushvalue(L, idx);
	if (lua_rawget(L, -2) == LUA_TTABLE) {
		lua_replace(L, idx);
		lua_pop(L, 1);
		return 1;
	}
	lua_pop(L, 2);
	return 0;
}

static int
l_rawset(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checkany(L, 2);
	luaL_checkany(L, 3);
	lua_settop(L, 3);
	lua_pushvalue(L, 1);
	if (unfreeze_arg(L, 4)) {
		lua_pushglobaltable(L);
		if (sb_of(L)->phase != PH_TOP || !lua_rawequal(L, 1, -1))
			return luaL_error(L, "rawset: the table is read-only");
		lua_pop(L, 1);
		lua_replace(L, 1);
		lua_rawset(L, 1);
		lua_pushglobaltable(L);
		return 1;
	}
	lua_pop(L, 1);
	lua_rawset(L, 1);
	return 1;
}

static int
l_rawget(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checkany(L, 2);
	lua_settop(L, 2);
	unfreeze_arg(L, 1);
	lua_rawget(L, 1);
	return 1;
}

static int
l_setmetatable(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc metamethods are not allowed");
	}
	lua_settop(L, 2);
	call_orig(L, 1);
	return 1;
}

/* ------------------------------------------------------------ next, pairs */

/* A key reduced to what ordering needs. */
struct kd {
	int cls; /* 0 number, 1 string, 2 boolean */
	int isint;
	lua_Integer i;
	lua_Number f;
	const char *s;
	size_t len;
	lua_Integer idx;
};

static int
kd_get(lua_State *L, int idx, struct kd *d)
{
	switch (lua_type(L, idx)) {
	case LUA_TNUMBER:
		d->cls = 0;
		d->isint = lua_isinteger(L, idx);
		if (d->isint)
			d->i = lua_tointeger(L, idx);
		else
			d->f = lua_tonumber(L, idx);
		return 1;
	case LUA_TSTRING:
		d->cls = 1;
		d->s = lua_tolstring(L, idx, &d->len);
		return 1;
	case LUA_TBOOLEAN:
		d->cls = 2;
		d->i = lua_toboolean(L, idx);
		return 1;
	default:
		return 0;
	}
}

static int
key_type_error(lua_State *L, int idx)
{
	return luaL_error(L, "pairs: keys of type %s have no stable order", luaL_typename(L, idx));
}

/* The sign of i - f, exactly. */
static int
cmp_int_float(lua_Integer i, lua_Number f)
{
	if (f >= 9223372036854775808.0)
		return -1;
	if (f < -9223372036854775808.0)
		return 1;
	lua_Number fl = floor(f);
	lua_Integer fi = (lua_Integer)fl;
	if (i < fi)
		return -1;
	if (i > fi)
		return 1;
	return f > fl ? -1 : 0;
}

static int
kd_cmp(const struct kd *a, const struct kd *b)
{
	if (a->cls != b->cls)
		return a->cls < b->cls ? -1 : 1;
	switch (a->cls) {
	case 0:
		if (a->isint && b->isint)
			return (a->i > b->i) - (a->i < b->i);
		if (!a->isint && !b->isint)
			return (a->f > b->f) - (a->f < b->f);
		if (a->isint)
			return cmp_int_float(a->i, b->f);
		return -cmp_int_float(b->i, a->f);
	case 1: {
		size_t n = a->len < b->len ? a->len : b->len;
		int r = memcmp(a->s, b->s, n);
		if (r)
			return r < 0 ? -1 : 1;
		return (a->len > b->len) - (a->len < b->len);
	}
	default:
		return (int)(a->i - b->i);
	}
}

static int
kd_qcmp(const void *a, const void *b)
{
	return kd_cmp(a, b);
}

/* A traversal's cached key order: uservalue 1 is the sorted key array. */
struct pcache {
	lua_Integer n, pos;
};

/* Build the sorted key array of the table at 1 and cache it; push it. */
static struct pcache *
pcache_build(lua_State *L)
{
	lua_Integer n = 0;
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		lua_pop(L, 1);
		n++;
	}
	charge(L, (uint64_t)n);
	struct kd *d = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *d, 0);
	int du = lua_gettop(L);
	lua_createtable(L, (int)n, 0);
	int arr = lua_gettop(L);
	lua_Integer k = 0;
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		lua_pop(L, 1);
		if (!kd_get(L, -1, &d[k]))
			key_type_error(L, -1);
		d[k].idx = k + 1;
		lua_pushvalue(L, -1);
		lua_rawseti(L, arr, ++k);
		/* The string key stays alive in arr, so d[k].s stays valid. */
	}
	qsort(d, (size_t)n, sizeof *d, kd_qcmp);
	uint64_t lg = 1;
	while ((1ull << lg) < (uint64_t)n)
		lg++;
	charge(L, (uint64_t)n * lg / 4);
	struct pcache *pc = lua_newuserdatauv(L, sizeof *pc, 1);
	pc->n = n;
	pc->pos = 0;
	lua_createtable(L, (int)n, 0);
	for (lua_Integer j = 0; j < n; j++) {
		lua_rawgeti(L, arr, d[j].idx);
		lua_rawseti(L, -2, j + 1);
	}
	lua_setiuservalue(L, -2, 1);
	reg_table(L, &K_PCACHE);
	lua_pushvalue(L, 1);
	lua_pushvalue(L, -3);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	lua_replace(L, du);
	lua_settop(L, du);
	return pc;
}

/* next(t, nil): the least key, found by one scan; the cache is dropped so
 * that the traversal this starts sees the table as it is now. */
static int
next_first(lua_State *L)
{
	reg_table(L, &K_PCACHE);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	struct kd best, d;
	int have = 0;
	uint64_t n = 0;
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		lua_pop(L, 1);
		if (!kd_get(L, -1, &d))
			key_type_error(L, -1);
		if (!have || kd_cmp(&d, &best) < 0) {
			lua_pushvalue(L, -1);
			lua_replace(L, 2);
			kd_get(L, 2, &best);
			have = 1;
		}
		n++;
	}
	charge(L, n / 4);
	if (!have) {
		lua_pushnil(L);
		return 1;
	}
	lua_pushvalue(L, 2);
	lua_rawget(L, 1);
	return 2;
}

static int
l_next(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 2);
	unfreeze_arg(L, 1);
	if (lua_isnil(L, 2))
		return next_first(L);
	struct kd kk;
	if (!kd_get(L, 2, &kk))
		key_type_error(L, 2);
	reg_table(L, &K_PCACHE);
	lua_pushvalue(L, 1);
	struct pcache *pc;
	if (lua_rawget(L, 3) == LUA_TUSERDATA) {
		pc = lua_touserdata(L, 4);
	} else {
		lua_pop(L, 1);
		pc = pcache_build(L);
	}
	lua_getiuservalue(L, 4, 1); /* 5: the sorted keys */
	lua_Integer pos = pc->pos, n = pc->n;
	int at = 0;
	if (pos >= 1 && pos <= n) {
		lua_rawgeti(L, 5, pos);
		at = lua_rawequal(L, -1, 2);
		lua_pop(L, 1);
	}
	if (!at) {
		/* The last index whose key is <= k, or 0. */
		lua_Integer lo = 1, hi = n;
		pos = 0;
		while (lo <= hi) {
			lua_Integer mid = lo + (hi - lo) / 2;
			struct kd m;
			lua_rawgeti(L, 5, mid);
			kd_get(L, -1, &m);
			int r = kd_cmp(&m, &kk);
			lua_pop(L, 1);
			if (r <= 0) {
				pos = mid;
				lo = mid + 1;
			} else {
				hi = mid - 1;
			}
		}
		charge(L, 16);
	}
	for (lua_Integer i = pos + 1; i <= n; i++) {
		lua_rawgeti(L, 5, i);
		lua_pushvalue(L, -1);
		if (lua_rawget(L, 1) != LUA_TNIL) {
			pc->pos = i;
			return 2;
		}
		lua_pop(L, 2);
	}
	/* The traversal is over: drop its cache, so that the next one (or a
	 * next() from a key after the table changed) sees the table as it is. */
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	lua_rawset(L, 3);
	lua_pushnil(L);
	return 1;
}

static int
l_pairs(lua_State *L)
{
	luaL_checkany(L, 1);
	if (luaL_getmetafield(L, 1, "__pairs") != LUA_TNIL) {
		lua_pushvalue(L, 1);
		lua_call(L, 1, 3);
		return 3;
	}
	lua_pushcfunction(L, l_next);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

/* ---------------------------------------------------------------- base */

static int
l_collectgarbage(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "collect");
	if (strcmp(opt, "count") != 0)
		return luaL_error(L, "collectgarbage: only \"count\" is allowed");
	int kb = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);
	lua_pushnumber(L, (lua_Number)kb + (lua_Number)b / 1024.0);
	return 1;
}

/*
 * xpcall with the message handler behind a guard.  An error raised by the
 * count hook leaves hooks disabled until the next protected-call boundary,
 * and Lua calls the message handler before that boundary: a handler run
 * then would be unhookable.  So once a limit is hit the guard returns the
 * error object without running the script's handler.
 */
static int
msgh_guard(lua_State *L)
{
	struct lsb *c = sb_of(L);
	if (c->insn_hit || c->mem_hit)
		return 1;
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

static int
xpcall_done(lua_State *L, int status, lua_KContext base)
{
	if (status != LUA_OK && status != LUA_YIELD) {
		lua_pushboolean(L, 0);
		lua_pushvalue(L, -2);
		return 2;
	}
	return lua_gettop(L) - (int)base;
}

static int
l_xpcall(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, msgh_guard, 1);
	lua_replace(L, 2);
	lua_pushboolean(L, 1);
	lua_pushvalue(L, 1);
	lua_rotate(L, 3, 2); /* f, guard, true, f, args... */
	int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_done);
	return xpcall_done(L, status, 2);
}

/*
 * coroutine.wrap and coroutine.close.  Closing a dead coroutine runs its
 * pending __close handlers; after a limit was hit the coroutine may have
 * died with hooks disabled (see msgh_guard), so once a limit is hit
 * nothing is closed: the call is ending anyway.
 */
static int
limit_hit(lua_State *L)
{
	struct lsb *c = sb_of(L);
	return c->insn_hit || c->mem_hit;
}

static int
wrap_call(lua_State *L)
{
	lua_State *co = lua_tothread(L, lua_upvalueindex(1));
	int n = lua_gettop(L);
	if (lua_status(co) == LUA_OK && lua_gettop(co) == 0)
		return luaL_error(L, "cannot resume dead coroutine");
	if (!lua_checkstack(co, n))
		return luaL_error(L, "too many arguments to resume");
	lua_xmove(L, co, n);
	int nres;
	int st = lua_resume(co, L, n, &nres);
	if (st == LUA_OK || st == LUA_YIELD) {
		if (!lua_checkstack(L, nres + 1))
			return luaL_error(L, "too many results to resume");
		lua_xmove(co, L, nres);
		return nres;
	}
	if (limit_hit(L)) {
		sb_stop(L, sb_of(L));
		return 0;
	}
	st = lua_resetthread(co);
	lua_xmove(co, L, 1);
	if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
		luaL_where(L, 1);
		lua_insert(L, -2);
		lua_concat(L, 2);
	}
	return lua_error(L);
}

static int
l_co_wrap(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_State *co = lua_newthread(L);
	lua_pushvalue(L, 1);
	lua_xmove(L, co, 1);
	lua_pushcclosure(L, wrap_call, 1);
	return 1;
}

static int
l_co_close(lua_State *L)
{
	if (limit_hit(L))
		return sb_stop(L, sb_of(L));
	call_orig(L, LUA_MULTRET);
	return lua_gettop(L);
}

/* load: text chunks only; without env, chunks see the sandbox's globals. */
static int
l_load(lua_State *L)
{
	int n = lua_gettop(L);
	if (n >= 3 && !lua_isnil(L, 3)) {
		const char *mode = luaL_checkstring(L, 3);
		if (strchr(mode, 'b')) {
			luaL_pushfail(L);
			lua_pushliteral(L, "load: binary chunks are not allowed");
			return 2;
		}
	}
	if (n < 3) {
		lua_settop(L, 3);
		n = 3;
	}
	lua_pushliteral(L, "t");
	lua_replace(L, 3);
	call_orig(L, LUA_MULTRET);
	return lua_gettop(L);
}

static int
host_out(lua_State *L, int stream, const char *p, size_t n)
{
	struct lsb *c = sb_of(L);
	if (n && c->host.write && c->host.write(c->ud, stream, p, n))
		return luaL_error(L, "%s: the output is closed", stream == 1 ? "babl.write" : "babl.ewrite");
	return 0;
}

static int out_pause(lua_State *L);

static int
l_print(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		size_t l;
		const char *s = sb_tostring(L, i, &l);
		(void)s;
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_addvalue(&b);
	}
	luaL_addchar(&b, '\n');
	luaL_pushresult(&b);
	size_t l;
	const char *s = lua_tolstring(L, -1, &l);
	host_out(L, 1, s, l);
	return out_pause(L);
}

/* -------------------------------------------------------------- string */

static void
check_subject(lua_State *L, const char *fn, int pat)
{
	size_t sl, pl;
	luaL_checklstring(L, 1, &sl);
	if (sl > max_string(L))
		luaL_error(L, "%s: subject of %I bytes exceeds the limit of %I", fn, (LUAI_UACINT)sl,
		    (LUAI_UACINT)max_string(L));
	if (pat) {
		luaL_checklstring(L, 2, &pl);
		if (pl > PATTERN_MAX)
			luaL_error(L, "%s: pattern of %I bytes exceeds the limit of %d", fn,
			    (LUAI_UACINT)pl, PATTERN_MAX);
	}
}

static int
l_find(lua_State *L)
{
	check_subject(L, "string.find", 1);
	call_orig(L, LUA_MULTRET);
	return lua_gettop(L);
}

static int
l_match(lua_State *L)
{
	check_subject(L, "string.match", 1);
	call_orig(L, LUA_MULTRET);
	return lua_gettop(L);
}

static int
l_gmatch(lua_State *L)
{
	check_subject(L, "string.gmatch", 1);
	call_orig(L, 1);
	return 1;
}

static int
l_gsub(lua_State *L)
{
	check_subject(L, "string.gsub", 1);
	charge(L, lua_rawlen(L, 1) / 16);
	call_orig(L, 2);
	size_t l;
	lua_tolstring(L, -2, &l);
	if (l > max_string(L))
		return luaL_error(L, "string.gsub: result exceeds the limit of %I bytes",
		    (LUAI_UACINT)max_string(L));
	charge(L, l / 16);
	return 2;
}

/*
 * s[0..n) into d with the ASCII letters from first to first+25 flipped to
 * the other case, 16 bytes a step in vector registers (the compiler's
 * vector types: SSE2 on any x86-64), the tail a byte at a time.  A byte x
 * is in the range when x - first, as an unsigned byte, is below 26.  SSE2
 * compares signed bytes only: x - first - 128, taken as a signed byte, is
 * below 26 - 128 in exactly those cases.  (A 32-byte type would not fit
 * an SSE2 register, and GCC then compares byte by byte.)  Stock
 * string.upper and lower call toupper() per byte; in the C locale (the
 * worker's) that is the same map.
 */
typedef unsigned char u8x16 __attribute__((vector_size(16)));
typedef signed char s8x16 __attribute__((vector_size(16)));

static void
flip_case(char *d, const char *s, size_t n, unsigned char first)
{
	size_t i = 0;
	for (; i + sizeof(u8x16) <= n; i += sizeof(u8x16)) {
		u8x16 x;
		memcpy(&x, s + i, sizeof x);
		s8x16 t = (s8x16)(x - (unsigned char)(first + 128));
		u8x16 in = (u8x16)(t < 26 - 128); /* 0xff or 0 a byte */
		x ^= in & 0x20;
		memcpy(d + i, &x, sizeof x);
	}
	for (; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		d[i] = (char)((unsigned char)(ch - first) < 26 ? ch ^ 0x20 : ch);
	}
}

/* string.upper and lower: work in proportion to the subject. */
static int
flip_case_fn(lua_State *L, unsigned char first)
{
	size_t l;
	const char *s = luaL_checklstring(L, 1, &l);
	charge(L, l / 64);
	luaL_Buffer b;
	char *d = luaL_buffinitsize(L, &b, l);
	flip_case(d, s, l, first);
	luaL_pushresultsize(&b, l);
	return 1;
}

static int
l_upper(lua_State *L)
{
	return flip_case_fn(L, 'a');
}

static int
l_lower(lua_State *L)
{
	return flip_case_fn(L, 'A');
}

/* string.reverse: work in proportion to the subject. */
static int
l_strcopy(lua_State *L)
{
	size_t l;
	luaL_checklstring(L, 1, &l);
	charge(L, l / 64);
	call_orig(L, 1);
	return 1;
}

static int
l_rep(lua_State *L)
{
	size_t l, lsep;
	luaL_checklstring(L, 1, &l);
	lua_Integer n = luaL_checkinteger(L, 2);
	luaL_optlstring(L, 3, "", &lsep);
	size_t max = max_string(L);
	if (n > 0) {
		uint64_t unit = (uint64_t)l + lsep;
		if (unit && (uint64_t)n > ((uint64_t)max + lsep) / unit)
			return luaL_error(L, "string.rep: result exceeds the limit of %I bytes",
			    (LUAI_UACINT)max);
		charge(L, (unit * (uint64_t)n) / 64);
	}
	call_orig(L, 1);
	return 1;
}

static int
l_format(lua_State *L)
{
	size_t fl;
	const char *f = luaL_checklstring(L, 1, &fl), *e = f + fl;
	int top = lua_gettop(L), arg = 1;
	while (f < e) {
		if (*f++ != '%')
			continue;
		if (f < e && *f == '%') {
			f++;
			continue;
		}
		arg++;
		while (f < e && *f && strchr("-+ #0123456789.", *f))
			f++;
		if (f >= e)
			break;
		char conv = *f++;
		if (conv == 'p')
			return luaL_error(L, "%%p is not allowed: addresses differ between replicas");
		if (conv == 's' && arg <= top) {
			int t = lua_type(L, arg);
			if (t != LUA_TSTRING && t != LUA_TNUMBER) {
				sb_tostring(L, arg, NULL);
				lua_replace(L, arg);
			}
		}
	}
	call_orig(L, 1);
	size_t l;
	lua_tolstring(L, -1, &l);
	if (l > max_string(L))
		return luaL_error(L, "string.format: result exceeds the limit of %I bytes",
		    (LUAI_UACINT)max_string(L));
	return 1;
}

/*
 * string.pack: an upper bound of the result (every number in the format
 * taken as a size, 16 bytes per format character, the strings' lengths) is
 * checked before packing, so a format like "c2000000000" is refused without
 * building anything.
 */
static int
l_pack(lua_State *L)
{
	size_t fl;
	const char *f = luaL_checklstring(L, 1, &fl);
	uint64_t bound = 16 * (uint64_t)fl;
	for (size_t i = 0; i < fl;) {
		if (f[i] >= '0' && f[i] <= '9') {
			uint64_t v = 0;
			while (i < fl && f[i] >= '0' && f[i] <= '9') {
				if (v < (1ull << 40))
					v = v * 10 + (uint64_t)(f[i] - '0');
				i++;
			}
			bound += v;
		} else {
			i++;
		}
	}
	int top = lua_gettop(L);
	for (int i = 2; i <= top; i++)
		if (lua_type(L, i) == LUA_TSTRING)
			bound += lua_rawlen(L, i);
	if (bound > max_string(L))
		return luaL_error(L, "string.pack: result could exceed the limit of %I bytes",
		    (LUAI_UACINT)max_string(L));
	call_orig(L, 1);
	return 1;
}

/* --------------------------------------------------------------- table */

static int
sort_less(lua_State *L, int hascmp, int a, int b)
{
	if (!hascmp)
		return lua_compare(L, a, b, LUA_OPLT);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, a);
	lua_pushvalue(L, b);
	lua_call(L, 2, 1);
	int r = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return r;
}

/* table.sort: a stable bottom-up merge sort through two scratch arrays. */
static int
l_sort(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer n = luaL_len(L, 1);
	if (n < 2)
		return 0;
	luaL_argcheck(L, n < INT_MAX, 1, "array too big");
	int hascmp = !lua_isnoneornil(L, 2);
	if (hascmp)
		luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 2);
	lua_createtable(L, (int)n, 0);
	lua_createtable(L, (int)n, 0);
	int src = 3, dst = 4;
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, 1, i);
		lua_rawseti(L, src, i);
	}
	for (lua_Integer w = 1; w < n; w *= 2) {
		charge(L, (uint64_t)n);
		for (lua_Integer lo = 1; lo <= n; lo += 2 * w) {
			lua_Integer mid = lo + w - 1 < n ? lo + w - 1 : n;
			lua_Integer hi = lo + 2 * w - 1 < n ? lo + 2 * w - 1 : n;
			lua_Integer i = lo, j = mid + 1, k = lo;
			while (i <= mid && j <= hi) {
				lua_rawgeti(L, src, i);
				lua_rawgeti(L, src, j);
				int top = lua_gettop(L);
				if (sort_less(L, hascmp, top, top - 1)) {
					lua_rawseti(L, dst, k++);
					lua_pop(L, 1);
					j++;
				} else {
					lua_pop(L, 1);
					lua_rawseti(L, dst, k++);
					i++;
				}
			}
			for (; i <= mid; i++) {
				lua_rawgeti(L, src, i);
				lua_rawseti(L, dst, k++);
			}
			for (; j <= hi; j++) {
				lua_rawgeti(L, src, j);
				lua_rawseti(L, dst, k++);
			}
		}
		int t = src;
		src = dst;
		dst = t;
	}
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, src, i);
		lua_seti(L, 1, i);
	}
	return 0;
}

static int
l_concat(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	size_t lsep;
	const char *sep = luaL_optlstring(L, 2, "", &lsep);
	lua_Integer i = luaL_optinteger(L, 3, 1);
	lua_Integer last = luaL_opt(L, luaL_checkinteger, 4, luaL_len(L, 1));
	size_t max = max_string(L), total = 0;
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (; i <= last; i++) {
		lua_geti(L, 1, i);
		if (!lua_isstring(L, -1))
			return luaL_error(L, "invalid value (at index %I) in table for 'concat'",
			    (LUAI_UACINT)i);
		size_t l;
		lua_tolstring(L, -1, &l);
		total += l + (i < last ? lsep : 0);
		if (total > max)
			return luaL_error(L, "table.concat: result exceeds the limit of %I bytes",
			    (LUAI_UACINT)max);
		luaL_addvalue(&b);
		if (i < last)
			luaL_addlstring(&b, sep, lsep);
		if ((i & 255) == 0)
			charge(L, 256);
		if (i == LUA_MAXINTEGER)
			break;
	}
	luaL_pushresult(&b);
	charge(L, total / 64);
	return 1;
}

/* table.insert and table.remove at a position shift the elements above it. */
static int
l_insert(lua_State *L)
{
	if (lua_gettop(L) >= 3 && lua_type(L, 1) == LUA_TTABLE) {
		lua_Integer n = luaL_len(L, 1), pos = luaL_checkinteger(L, 2);
		if (n >= pos)
			charge(L, (uint64_t)(n - pos) + 1);
	}
	call_orig(L, 0);
	return 0;
}

static int
l_remove(lua_State *L)
{
	if (lua_gettop(L) >= 2 && lua_type(L, 1) == LUA_TTABLE) {
		lua_Integer n = luaL_len(L, 1), pos = luaL_checkinteger(L, 2);
		if (n >= pos)
			charge(L, (uint64_t)(n - pos) + 1);
	}
	call_orig(L, 1);
	return 1;
}

static int
l_move(lua_State *L)
{
	lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
	if (e >= f)
		charge(L, (uint64_t)e - (uint64_t)f + 1);
	call_orig(L, 1);
	return 1;
}

static int
l_unpack(lua_State *L)
{
	lua_Integer i = luaL_optinteger(L, 2, 1);
	lua_Integer e = luaL_opt(L, luaL_checkinteger, 3, luaL_len(L, 1));
	if (e >= i)
		charge(L, (uint64_t)e - (uint64_t)i + 1);
	call_orig(L, LUA_MULTRET);
	return lua_gettop(L);
}

/* ----------------------------------------------------------------- math */

/* math.randomseed(): without arguments, back to the request's seed. */
static int
l_randomseed(lua_State *L)
{
	if (lua_gettop(L) == 0)
		lua_pushinteger(L, (lua_Integer)sb_of(L)->seed);
	call_orig(L, 0);
	return 0;
}

/* ------------------------------------------------------------------- os */

static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* The UTC calendar fields of t, computed without the C library's zones. */
static int
utc_tm(int64_t t, struct tm *tm)
{
	if (t > (1ll << 50) || t < -(1ll << 50))
		return -1;
	int64_t days = t / 86400, secs = t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	int64_t y;
	int m, d;
	civil_from_days(days, &y, &m, &d);
	memset(tm, 0, sizeof *tm);
	tm->tm_year = (int)(y - 1900);
	tm->tm_mon = m - 1;
	tm->tm_mday = d;
	tm->tm_hour = (int)(secs / 3600);
	tm->tm_min = (int)(secs / 60 % 60);
	tm->tm_sec = (int)(secs % 60);
	tm->tm_wday = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
	tm->tm_yday = (int)(days - days_from_civil(y, 1, 1));
	tm->tm_isdst = 0;
#ifdef __USE_MISC
	tm->tm_gmtoff = 0;
	tm->tm_zone = "UTC";
#endif
	return 0;
}

static int
date_field(lua_State *L, const char *k, int dflt, int64_t *out)
{
	int t = lua_getfield(L, 1, k);
	int ok;
	lua_Integer v = lua_tointegerx(L, -1, &ok);
	lua_pop(L, 1);
	if (!ok) {
		if (t != LUA_TNIL)
			return luaL_error(L, "field '%s' is not an integer", k);
		if (dflt < 0)
			return luaL_error(L, "field '%s' missing in date table", k);
		v = dflt;
	}
	if (v > (1ll << 31) || v < -(1ll << 31))
		return luaL_error(L, "field '%s' is out-of-bound", k);
	*out = v;
	return 0;
}

static int
l_os_time(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		lua_pushinteger(L, (lua_Integer)(sb_of(L)->time_ms / 1000));
		return 1;
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	int64_t y, mo, d, h, mi, s;
	date_field(L, "year", -1, &y);
	date_field(L, "month", -1, &mo);
	date_field(L, "day", -1, &d);
	date_field(L, "hour", 12, &h);
	date_field(L, "min", 0, &mi);
	date_field(L, "sec", 0, &s);
	int64_t m0 = mo - 1;
	int64_t yq = m0 >= 0 ? m0 / 12 : -((11 - m0) / 12);
	y += yq;
	m0 -= yq * 12;
	int64_t days = days_from_civil(y, m0 + 1, 1) + d - 1;
	lua_pushinteger(L, (lua_Integer)(days * 86400 + h * 3600 + mi * 60 + s));
	return 1;
}

static void
set_int(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

static int
l_os_date(lua_State *L)
{
	size_t fl;
	const char *f = luaL_optlstring(L, 1, "%c", &fl), *e = f + fl;
	int64_t t = lua_isnoneornil(L, 2) ? (int64_t)(sb_of(L)->time_ms / 1000)
					  : (int64_t)luaL_checkinteger(L, 2);
	struct tm tm;
	if (utc_tm(t, &tm))
		return luaL_error(L, "os.date: time out of range");
	if (f < e && *f == '!')
		f++;
	if (e - f >= 2 && f[0] == '*' && f[1] == 't') {
		lua_createtable(L, 0, 9);
		set_int(L, "year", (lua_Integer)tm.tm_year + 1900);
		set_int(L, "month", tm.tm_mon + 1);
		set_int(L, "day", tm.tm_mday);
		set_int(L, "hour", tm.tm_hour);
		set_int(L, "min", tm.tm_min);
		set_int(L, "sec", tm.tm_sec);
		set_int(L, "yday", tm.tm_yday + 1);
		set_int(L, "wday", tm.tm_wday + 1);
		lua_pushboolean(L, 0);
		lua_setfield(L, -2, "isdst");
		return 1;
	}
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	while (f < e) {
		if (*f != '%') {
			luaL_addchar(&b, *f++);
			continue;
		}
		char spec[4] = {'%', 0, 0, 0};
		f++;
		if (f < e && (*f == 'E' || *f == 'O')) {
			const char *ok = *f == 'E' ? "cCxXyY" : "deHImMSuUVwWy";
			if (f + 1 >= e || !f[1] || !strchr(ok, f[1]))
				return luaL_error(L, "os.date: invalid conversion specifier");
			spec[1] = f[0];
			spec[2] = f[1];
			f += 2;
		} else {
			if (f >= e || !*f || !strchr("aAbBcCdDeFgGhHIjmMnprRStTuUVwWxXyYzZ%", *f))
				return luaL_error(L, "os.date: invalid conversion specifier");
			spec[1] = *f++;
		}
		char out[256];
		size_t n = strftime(out, sizeof out, spec, &tm);
		luaL_addlstring(&b, out, n);
	}
	luaL_pushresult(&b);
	return 1;
}

static int
l_os_difftime(lua_State *L)
{
	lua_Number a = (lua_Number)luaL_checkinteger(L, 1);
	lua_Number b = (lua_Number)luaL_optinteger(L, 2, 0);
	lua_pushnumber(L, a - b);
	return 1;
}

static int
l_os_clock(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)sb_of(L)->insns / 1e6);
	return 1;
}

/* ---------------------------------------------------------------- babl */

/* Yield to the host, which supplies what we wait for; k continues. */
static int
wait_host(lua_State *L, int what, lua_KFunction k, const char *fn)
{
	struct lsb *c = sb_of(L);
	if (L != c->co)
		return luaL_error(L, "%s: cannot wait for the host inside a coroutine "
				     "(call it from handle's own thread)", fn);
	c->wait = what;
	return lua_yieldk(L, 0, 0, k);
}

static int
pause_k(lua_State *L, int status, lua_KContext ctx)
{
	(void)status;
	(void)ctx;
	sb_of(L)->wait = 0;
	return 0;
}

/* After a write: pause the call if the host asks and the script can wait
 * here (otherwise go on; the host then simply holds more). */
static int
out_pause(lua_State *L)
{
	struct lsb *c = sb_of(L);
	if (!c->host.full || !c->host.full(c->ud) || L != c->co || !lua_isyieldable(L))
		return 0;
	c->wait = LSB_WAIT_OUTPUT;
	return lua_yieldk(L, 0, 0, pause_k);
}

static void
in_consumed(struct lsb *c, size_t n)
{
	c->in_off += n;
	if (c->scan < c->in_off)
		c->scan = c->in_off;
	if (c->in_off == c->in_len) {
		c->in_off = c->in_len = c->scan = 0;
	}
}

static int
read_k(lua_State *L, int status, lua_KContext ctx)
{
	struct lsb *c = sb_of(L);
	(void)status;
	(void)ctx;
	c->wait = 0;
	lua_Integer want = luaL_optinteger(L, 1, 0);
	size_t avail = c->in_len - c->in_off;
	if (want < 0)
		return luaL_argerror(L, 1, "must not be negative");
	if (avail > 0) {
		size_t n = avail;
		if (want > 0 && (uint64_t)want < n)
			n = (size_t)want;
		if (n > c->lim.max_string)
			n = c->lim.max_string;
		lua_pushlstring(L, c->in + c->in_off, n);
		in_consumed(c, n);
		return 1;
	}
	if (c->eof) {
		lua_pushnil(L);
		return 1;
	}
	return wait_host(L, LSB_WAIT_INPUT, read_k, "babl.read");
}

static int
l_read(lua_State *L)
{
	return read_k(L, LUA_OK, 0);
}

static int
readall_k(lua_State *L, int status, lua_KContext ctx)
{
	struct lsb *c = sb_of(L);
	(void)status;
	(void)ctx;
	c->wait = 0;
	size_t avail = c->in_len - c->in_off;
	if (avail > c->lim.max_string)
		return luaL_error(L, "babl.readall: input exceeds the limit of %I bytes",
		    (LUAI_UACINT)c->lim.max_string);
	if (c->eof) {
		lua_pushlstring(L, c->in + c->in_off, avail);
		in_consumed(c, avail);
		return 1;
	}
	return wait_host(L, LSB_WAIT_INPUT, readall_k, "babl.readall");
}

static int
l_readall(lua_State *L)
{
	return readall_k(L, LUA_OK, 0);
}

static int
lines_k(lua_State *L, int status, lua_KContext ctx)
{
	struct lsb *c = sb_of(L);
	(void)status;
	(void)ctx;
	c->wait = 0;
	if (c->scan < c->in_off)
		c->scan = c->in_off;
	const char *nl = c->scan < c->in_len ? memchr(c->in + c->scan, '\n', c->in_len - c->scan) : NULL;
	if (nl) {
		size_t n = (size_t)(nl - (c->in + c->in_off));
		lua_pushlstring(L, c->in + c->in_off, n);
		in_consumed(c, n + 1);
		c->scan = c->in_off;
		return 1;
	}
	size_t avail = c->in_len - c->in_off;
	if (c->eof) {
		if (!avail) {
			lua_pushnil(L);
			return 1;
		}
		lua_pushlstring(L, c->in + c->in_off, avail);
		in_consumed(c, avail);
		return 1;
	}
	if (avail > c->lim.max_string)
		return luaL_error(L, "babl.lines: a line exceeds the limit of %I bytes",
		    (LUAI_UACINT)c->lim.max_string);
	c->scan = c->in_len;
	return wait_host(L, LSB_WAIT_INPUT, lines_k, "babl.lines");
}

static int
lines_iter(lua_State *L)
{
	lua_settop(L, 0);
	return lines_k(L, LUA_OK, 0);
}

static int
l_lines(lua_State *L)
{
	lua_pushcfunction(L, lines_iter);
	return 1;
}

static int
write_stream(lua_State *L, int stream, const char *fn)
{
	int n = lua_gettop(L);
	for (int i = 1; i <= n; i++) {
		int t = lua_type(L, i);
		if (t != LUA_TSTRING && t != LUA_TNUMBER)
			return luaL_error(L, "%s: argument #%d is a %s (strings and numbers only)", fn,
			    i, lua_typename(L, t));
		size_t l;
		const char *p = lua_tolstring(L, i, &l);
		host_out(L, stream, p, l);
	}
	return out_pause(L);
}

static int
l_write(lua_State *L)
{
	return write_stream(L, 1, "babl.write");
}

static int
l_ewrite(lua_State *L)
{
	return write_stream(L, 2, "babl.ewrite");
}

static int
l_now(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)sb_of(L)->time_ms / 1000.0);
	return 1;
}

static const char *
check_key(lua_State *L, int idx, const char *fn, size_t *kl)
{
	const char *k = luaL_checklstring(L, idx, kl);
	if (*kl == 0 || *kl > KV_KEY_MAX)
		luaL_error(L, "%s: keys must have 1 to %d bytes", fn, KV_KEY_MAX);
	return k;
}

/* Push t[k] of the registry table at key reg; return its type. */
static int
reg_lookup(lua_State *L, const void *reg, int k)
{
	reg_table(L, reg);
	lua_pushvalue(L, k);
	int t = lua_rawget(L, -2);
	lua_remove(L, -2);
	return t;
}

static void
reg_store(lua_State *L, const void *reg, int k, int v)
{
	k = lua_absindex(L, k);
	v = lua_absindex(L, v);
	reg_table(L, reg);
	lua_pushvalue(L, k);
	lua_pushvalue(L, v);
	lua_rawset(L, -3);
	lua_pop(L, 1);
}

static int
kv_get_k(lua_State *L, int status, lua_KContext ctx)
{
	struct lsb *c = sb_of(L);
	(void)status;
	(void)ctx;
	c->wait = 0;
	if (!c->kv_replied)
		return luaL_error(L, "babl.kv.get: the host gave no answer");
	c->kv_replied = 0;
	if (c->kv_found)
		lua_pushlstring(L, c->kv_val ? c->kv_val : "", c->kv_vl);
	else
		lua_pushboolean(L, 0);
	reg_store(L, &K_RS, 1, -1);
	if (!c->kv_found)
		lua_pushnil(L);
	return 1;
}

static int
l_kv_get(lua_State *L)
{
	struct lsb *c = sb_of(L);
	size_t kl;
	const char *k = check_key(L, 1, "babl.kv.get", &kl);
	lua_settop(L, 1);
	int t = reg_lookup(L, &K_WS, 1);
	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		t = reg_lookup(L, &K_RS, 1);
	}
	if (t == LUA_TSTRING)
		return 1;
	if (t == LUA_TBOOLEAN) {
		lua_pushnil(L);
		return 1;
	}
	lua_pop(L, 1);
	c->kv_key = k;
	c->kv_klen = kl;
	c->kv_is_keys = 0;
	c->kv_replied = 0;
	return wait_host(L, LSB_WAIT_KV, kv_get_k, "babl.kv.get");
}

static int
l_kv_set(lua_State *L)
{
	size_t kl, vl;
	check_key(L, 1, "babl.kv.set", &kl);
	luaL_checktype(L, 2, LUA_TSTRING);
	lua_tolstring(L, 2, &vl);
	if (vl > KV_VAL_MAX || vl > max_string(L))
		return luaL_error(L, "babl.kv.set: values are limited to %d bytes", KV_VAL_MAX);
	reg_store(L, &K_WS, 1, 2);
	return 0;
}

static int
l_kv_del(lua_State *L)
{
	size_t kl;
	check_key(L, 1, "babl.kv.del", &kl);
	lua_pushboolean(L, 0);
	reg_store(L, &K_WS, 1, -1);
	return 0;
}

struct wkey {
	const char *k;
	size_t kl;
	int deleted;
	const char *v;
	size_t vl;
};

static int
bytes_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);
	if (r)
		return r;
	return (al > bl) - (al < bl);
}

static int
wkey_cmp(const void *a, const void *b)
{
	const struct wkey *x = a, *y = b;
	return bytes_cmp(x->k, x->kl, y->k, y->kl);
}

/* The write set's entries, sorted, in a scratch userdata pushed on L; the
 * strings stay valid while the write set is unchanged.  prefix may be NULL. */
static struct wkey *
ws_sorted(lua_State *L, const char *prefix, size_t pl, size_t *np)
{
	reg_table(L, &K_WS);
	size_t n = 0;
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		lua_pop(L, 1);
		n++;
	}
	struct wkey *w = lua_newuserdatauv(L, (n ? n : 1) * sizeof *w, 0);
	size_t k = 0;
	lua_pushnil(L);
	while (lua_next(L, -3)) {
		size_t kl;
		const char *key = lua_tolstring(L, -2, &kl);
		if (!prefix || (kl >= pl && memcmp(key, prefix, pl) == 0)) {
			w[k].k = key;
			w[k].kl = kl;
			w[k].deleted = lua_type(L, -1) != LUA_TSTRING;
			w[k].v = w[k].deleted ? NULL : lua_tolstring(L, -1, &w[k].vl);
			if (w[k].deleted)
				w[k].vl = 0;
			k++;
		}
		lua_pop(L, 1);
	}
	qsort(w, k, sizeof *w, wkey_cmp);
	lua_remove(L, -2);
	*np = k;
	return w;
}

static int
kv_keys_k(lua_State *L, int status, lua_KContext ctx)
{
	struct lsb *c = sb_of(L);
	(void)status;
	(void)ctx;
	c->wait = 0;
	if (!c->kv_replied)
		return luaL_error(L, "babl.kv.keys: the host gave no answer");
	c->kv_replied = 0;
	size_t pl;
	const char *prefix = luaL_optlstring(L, 1, "", &pl);
	size_t nw;
	struct wkey *w = ws_sorted(L, prefix, pl, &nw);
	charge(L, nw + c->kv_nkeys);
	lua_createtable(L, (int)(c->kv_nkeys + nw < INT_MAX ? c->kv_nkeys + nw : 0), 0);
	lua_Integer out = 0;
	size_t i = 0, j = 0, off = 0;
	while (i < c->kv_nkeys || j < nw) {
		const char *hk = i < c->kv_nkeys ? c->kv_blob + off : NULL;
		int r;
		if (i >= c->kv_nkeys)
			r = 1;
		else if (j >= nw)
			r = -1;
		else
			r = bytes_cmp(hk, c->kv_lens[i], w[j].k, w[j].kl);
		if (r < 0) {
			lua_pushlstring(L, hk, c->kv_lens[i]);
			lua_rawseti(L, -2, ++out);
		} else if (!w[j].deleted) {
			lua_pushlstring(L, w[j].k, w[j].kl);
			lua_rawseti(L, -2, ++out);
		}
		if (r <= 0) {
			off += c->kv_lens[i];
			i++;
		}
		if (r >= 0)
			j++;
	}
	return 1;
}

static int
l_kv_keys(lua_State *L)
{
	struct lsb *c = sb_of(L);
	size_t pl;
	const char *p = luaL_optlstring(L, 1, "", &pl);
	if (pl > KV_KEY_MAX)
		return luaL_error(L, "babl.kv.keys: prefixes are limited to %d bytes", KV_KEY_MAX);
	lua_settop(L, 1);
	c->kv_key = p;
	c->kv_klen = pl;
	c->kv_is_keys = 1;
	c->kv_replied = 0;
	return wait_host(L, LSB_WAIT_KV, kv_keys_k, "babl.kv.keys");
}

/* ---------------------------------------------------------------- setup */

static void
set_fn(lua_State *L, int t, const char *name, lua_CFunction f, int wrap)
{
	t = lua_absindex(L, t);
	if (wrap) {
		lua_getfield(L, t, name);
		lua_pushcclosure(L, f, 1);
	} else {
		lua_pushcfunction(L, f);
	}
	lua_setfield(L, t, name);
}

/* Open library name and apply its replacements; pushes the library table. */
static int
open_lib(lua_State *L, const char *name)
{
	struct lsb *c = sb_of(L);
	if (strcmp(name, LUA_TABLIBNAME) == 0) {
		luaL_requiref(L, name, luaopen_table, 0);
		set_fn(L, -1, "sort", l_sort, 0);
		set_fn(L, -1, "concat", l_concat, 0);
		set_fn(L, -1, "insert", l_insert, 1);
		set_fn(L, -1, "remove", l_remove, 1);
		set_fn(L, -1, "move", l_move, 1);
		set_fn(L, -1, "unpack", l_unpack, 1);
	} else if (strcmp(name, LUA_MATHLIBNAME) == 0) {
		luaL_requiref(L, name, luaopen_math, 0);
		lua_getfield(L, -1, "randomseed");
		lua_pushinteger(L, (lua_Integer)c->seed);
		lua_call(L, 1, 0);
		set_fn(L, -1, "randomseed", l_randomseed, 1);
	} else if (strcmp(name, LUA_UTF8LIBNAME) == 0) {
		luaL_requiref(L, name, luaopen_utf8, 0);
	} else if (strcmp(name, LUA_COLIBNAME) == 0) {
		luaL_requiref(L, name, luaopen_coroutine, 0);
		set_fn(L, -1, "wrap", l_co_wrap, 0);
		set_fn(L, -1, "close", l_co_close, 1);
	} else if (strcmp(name, "os") == 0) {
		static const luaL_Reg os[] = {
			{"time", l_os_time},
			{"date", l_os_date},
			{"difftime", l_os_difftime},
			{"clock", l_os_clock},
			{NULL, NULL},
		};
		luaL_newlib(L, os);
	} else {
		return 0;
	}
	return 1;
}

/*
 * The globals' backing table misses: the libraries other than base and
 * string are opened on first use (opening them all for every call would
 * cost more than a small call itself).
 */
static int
lazy_global(lua_State *L)
{
	const char *k = lua_tostring(L, 2);
	if (lua_type(L, 2) != LUA_TSTRING || !open_lib(L, k))
		return 0;
	make_proxy(L, -1, k, ro_newindex);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, -2);
	lua_rawset(L, 1);
	return 1;
}

/* Runs protected on the main thread: build the environment and the thread
 * that runs the script. */
static int
setup(lua_State *L)
{
	struct lsb *c = sb_of(L);
	lua_settop(L, 0);
	luaL_requiref(L, LUA_GNAME, luaopen_base, 0); /* 1: the globals' backing */
	luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0); /* 2 */

	static const char *const gone[] = {"dofile", "loadfile", "warn", NULL};
	for (const char *const *g = gone; *g; g++) {
		lua_pushnil(L);
		lua_setfield(L, 1, *g);
	}
	set_fn(L, 1, "print", l_print, 0);
	set_fn(L, 1, "tostring", l_tostring, 0);
	set_fn(L, 1, "next", l_next, 0);
	set_fn(L, 1, "pairs", l_pairs, 0);
	set_fn(L, 1, "rawset", l_rawset, 0);
	set_fn(L, 1, "rawget", l_rawget, 0);
	set_fn(L, 1, "collectgarbage", l_collectgarbage, 0);
	set_fn(L, 1, "xpcall", l_xpcall, 0);
	set_fn(L, 1, "setmetatable", l_setmetatable, 1);
	set_fn(L, 1, "load", l_load, 1);

	lua_pushnil(L);
	lua_setfield(L, 2, "dump");
	set_fn(L, 2, "rep", l_rep, 1);
	set_fn(L, 2, "format", l_format, 1);
	set_fn(L, 2, "find", l_find, 1);
	set_fn(L, 2, "match", l_match, 1);
	set_fn(L, 2, "gmatch", l_gmatch, 1);
	set_fn(L, 2, "gsub", l_gsub, 1);
	set_fn(L, 2, "pack", l_pack, 1);
	set_fn(L, 2, "upper", l_upper, 0);
	set_fn(L, 2, "lower", l_lower, 0);
	set_fn(L, 2, "reverse", l_strcopy, 1);

	/* The string metatable: methods from the library itself, and a
	 * read-only view of the metatable for getmetatable(""). */
	make_proxy(L, 2, LUA_STRLIBNAME, ro_newindex); /* 3: string */
	lua_pushvalue(L, 3);
	lua_setfield(L, 1, LUA_STRLIBNAME);
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1); /* 5 */
	lua_createtable(L, 0, 1);
	lua_pushvalue(L, 3);
	lua_setfield(L, -2, "__index");
	make_proxy(L, -1, "string metatable", ro_newindex);
	lua_setfield(L, 5, "__metatable");
	lua_settop(L, 2);

	static const luaL_Reg babl[] = {
		{"read", l_read},
		{"lines", l_lines},
		{"readall", l_readall},
		{"write", l_write},
		{"ewrite", l_ewrite},
		{"now", l_now},
		{NULL, NULL},
	};
	static const luaL_Reg kv[] = {
		{"get", l_kv_get},
		{"set", l_kv_set},
		{"del", l_kv_del},
		{"keys", l_kv_keys},
		{NULL, NULL},
	};
	luaL_newlib(L, babl);
	luaL_newlib(L, kv);
	make_proxy(L, -1, "babl.kv", ro_newindex);
	lua_setfield(L, -3, "kv");
	lua_pop(L, 1);
	make_proxy(L, -1, "babl", ro_newindex);
	lua_setfield(L, 1, "babl");
	lua_settop(L, 1);

	/* The globals scripts see: an empty proxy over the backing table,
	 * which itself opens the other libraries when first asked. */
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, lazy_global);
	lua_setfield(L, -2, "__index");
	lua_setmetatable(L, 1);
	make_proxy(L, 1, "_G", global_newindex); /* 2 */
	lua_pushvalue(L, 2);
	lua_setfield(L, 1, LUA_GNAME);
	lua_pushvalue(L, 2);
	lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	lua_settop(L, 0);

	c->co = lua_newthread(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &K_CO);
	return 0;
}

/* Runs protected on the main thread: the request, for handle. */
static int
setup_req(lua_State *L)
{
	const struct lsb_req *req = lua_touserdata(L, 1);
	lua_settop(L, 0);
	lua_createtable(L, 0, 4);
	lua_createtable(L, req->nargs > 0 ? req->nargs : 0, 0);
	for (int i = 0; i < req->nargs; i++) {
		lua_pushstring(L, req->args[i] ? req->args[i] : "");
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "args");
	lua_pushstring(L, req->id ? req->id : "");
	lua_setfield(L, -2, "id");
	lua_pushinteger(L, (lua_Integer)req->time_ms);
	lua_setfield(L, -2, "time");
	lua_pushstring(L, req->service ? req->service : "");
	lua_setfield(L, -2, "service");
	lua_rawsetp(L, LUA_REGISTRYINDEX, &K_REQ);
	return 0;
}

/* Runs protected: the globals are now read-only (phase is PH_HANDLE); move
 * handle and req onto co. */
static int
start_handle(lua_State *L)
{
	struct lsb *c = sb_of(L);
	lua_pushglobaltable(L);
	if (lua_getfield(L, -1, "handle") != LUA_TFUNCTION) {
		lua_pushboolean(L, 0);
		return 1;
	}
	lua_rawgetp(L, LUA_REGISTRYINDEX, &K_REQ);
	if (!lua_checkstack(c->co, 4))
		return luaL_error(L, "stack overflow");
	lua_xmove(L, c->co, 2);
	lua_pushboolean(L, 1);
	return 1;
}

/* ---------------------------------------------------------------- ending */

static void
emit(struct lsb *c, const char *s, size_t n)
{
	if (c->host.write && n)
		(void)c->host.write(c->ud, 2, s, n);
}

static void
emitf(struct lsb *c, const char *fmt, const char *arg)
{
	char buf[512];
	int n = snprintf(buf, sizeof buf, fmt, c->name, arg);
	if (n > 0)
		emit(c, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void
limit_message(struct lsb *c)
{
	char buf[256];
	int n;
	if (c->first_limit == LSB_EXIT_INSNS) {
		n = snprintf(buf, sizeof buf, "%s: instruction limit of %llu reached\n", c->name,
		    (unsigned long long)c->lim.instructions);
	} else {
		uint64_t m = c->lim.mem_bytes;
		if (m % (1024 * 1024) == 0)
			n = snprintf(buf, sizeof buf, "%s: memory limit of %llu MiB reached\n", c->name,
			    (unsigned long long)(m >> 20));
		else if (m % 1024 == 0)
			n = snprintf(buf, sizeof buf, "%s: memory limit of %llu KiB reached\n", c->name,
			    (unsigned long long)(m >> 10));
		else
			n = snprintf(buf, sizeof buf, "%s: memory limit of %llu bytes reached\n",
			    c->name, (unsigned long long)m);
	}
	if (n > 0)
		emit(c, buf, (size_t)n);
}

/* Runs protected on the main thread: the message and traceback of the error
 * object at 1, raised in the thread at 2. */
static int
report(lua_State *L)
{
	lua_State *co = lua_tothread(L, 2);
	const char *msg = NULL;
	if (lua_type(L, 1) == LUA_TSTRING) {
		msg = lua_tostring(L, 1);
	} else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
		msg = lua_tostring(L, -1);
	} else {
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	luaL_traceback(L, co, msg, 0);
	lua_pushliteral(L, "\n");
	lua_concat(L, 2);
	return 1;
}

static void
finish(struct lsb *c, int status)
{
	if (c->pend)
		note_limit(c, LSB_EXIT_MEMORY);
	c->pend = 0;
	c->cap = c->lim.mem_bytes + REPORT_HEADROOM;
	if (c->first_limit) {
		limit_message(c);
		status = c->first_limit;
	}
	c->status = status;
	c->phase = PH_DONE;
	c->wait = 0;
}

static void
finish_error(struct lsb *c, int r)
{
	if (r == LUA_ERRMEM || c->pend)
		note_limit(c, LSB_EXIT_MEMORY);
	if (c->first_limit) {
		finish(c, c->first_limit);
		return;
	}
	c->cap = c->lim.mem_bytes + REPORT_HEADROOM;
	lua_State *L = c->L;
	if (!lua_checkstack(L, 4) || !lua_checkstack(c->co, 2)) {
		emitf(c, "%s: error%s\n", "");
		finish(c, LSB_EXIT_ERROR);
		return;
	}
	lua_pushcfunction(L, report);
	lua_xmove(c->co, L, 1);
	lua_pushvalue(L, -1); /* placeholder for the thread */
	lua_rawgetp(L, LUA_REGISTRYINDEX, &K_CO);
	lua_replace(L, -2);
	if (lua_pcall(L, 2, 1, 0) == LUA_OK) {
		size_t n;
		const char *s = lua_tolstring(L, -1, &n);
		emit(c, s, n);
	} else {
		emitf(c, "%s: error (its message could not be formed)%s\n", "");
	}
	lua_pop(L, 1);
	finish(c, c->first_limit ? c->first_limit : LSB_EXIT_ERROR);
}

static void
finish_results(struct lsb *c, int nres)
{
	lua_State *co = c->co;
	int status = 0;
	if (nres > 0) {
		int idx = lua_gettop(co) - nres + 1;
		int t = lua_type(co, idx);
		if (t == LUA_TNIL) {
			status = 0;
		} else if (lua_isinteger(co, idx) && lua_tointeger(co, idx) >= 0 &&
			   lua_tointeger(co, idx) <= 255) {
			status = (int)lua_tointeger(co, idx);
		} else {
			char what[64];
			if (t == LUA_TNUMBER)
				snprintf(what, sizeof what, "the number %.14g", lua_tonumber(co, idx));
			else
				snprintf(what, sizeof what, "a %s", lua_typename(co, t));
			emitf(c, "%s: handle returned %s (expected nil or an integer from 0 to 255)\n",
			    what);
			status = 1;
		}
	}
	lua_settop(co, 0);
	finish(c, status);
}

/* Resume the call's thread until it waits for the host or ends. */
static int
drive(struct lsb *c, int nargs)
{
	while (c->phase != PH_DONE) {
		int nres = 0;
		int r = lua_resume(c->co, c->L, nargs, &nres);
		nargs = 0;
		if (r == LUA_YIELD) {
			lua_pop(c->co, nres);
			if (c->wait && !c->first_limit)
				return c->wait;
			if (!c->first_limit)
				emitf(c, "%s: %s\n", "attempt to yield from outside a coroutine");
			finish(c, LSB_EXIT_ERROR);
			break;
		}
		if (r != LUA_OK) {
			finish_error(c, r);
			break;
		}
		if (c->phase == PH_HANDLE) {
			finish_results(c, nres);
			break;
		}
		lua_settop(c->co, 0);
		c->phase = PH_HANDLE;
		lua_pushcfunction(c->L, start_handle);
		if (lua_pcall(c->L, 0, 1, 0) != LUA_OK) {
			lua_pop(c->L, 1);
			note_limit(c, LSB_EXIT_MEMORY);
			finish(c, LSB_EXIT_MEMORY);
			break;
		}
		int has = lua_toboolean(c->L, -1);
		lua_pop(c->L, 1);
		if (!has) {
			emitf(c, "%s: the script defines no function handle(req)%s\n", "");
			finish(c, LSB_EXIT_NOHANDLE);
			break;
		}
		nargs = 1;
	}
	return LSB_DONE;
}

/* ----------------------------------------------------------------- API */

/*
 * Setting a state up costs more than a small call: a worker running many
 * calls of one script keeps states as images.  An image is a state as it
 * stood once set up, with the script loaded and nothing of it run: its
 * struct lsb and the bytes of every slab and large block it had then,
 * which stay at their addresses ("kept").  When a call ends, what it
 * allocated beyond the image goes back and the image waits on its prog's
 * list; the next call copies the image's bytes back and runs in a state
 * exactly as a fresh one would be, down to the allocator's free lists.
 */
#define IMAGES_KEPT 64 /* idle images per prog */

struct lsb_image {
	struct lsb_image *next; /* on the prog's idle list */
	struct lsb_prog *prog;
	struct lsb *c;          /* where the state lives (its allocator's ud) */
	struct lsb saved;       /* *c as the image has it */
	struct ar_pin {
		void *p;
		size_t n;
	} *pins;                /* the kept slabs and blocks */
	size_t npins;
	unsigned char *bytes;   /* their contents, back to back */
};

static void
image_drop(struct lsb_image *img)
{
	for (size_t i = 0; i < img->npins; i++)
		free(img->pins[i].p); /* a slab, or a large block's header */
	free(img->pins);
	free(img->bytes);
	free(img->c);
	free(img);
}

/* Make c's state, as it stands now, an image of prog (0), or leave c as it
 * is (BABL_ENOMEM). */
static int
image_take(struct lsb *c, struct lsb_prog *prog)
{
	struct arena *a = &c->ar;
	size_t n = 0, total = 0;
	for (struct ar_slab *sl = a->slabs; sl; sl = sl->next)
		n++;
	for (struct ar_big *h = a->big.next; h != &a->big; h = h->next)
		n++;
	struct lsb_image *img = calloc(1, sizeof *img);
	struct ar_pin *pins = calloc(n ? n : 1, sizeof *pins);
	if (!img || !pins) {
		free(img);
		free(pins);
		return BABL_ENOMEM;
	}
	n = 0;
	for (struct ar_slab *sl = a->slabs; sl; sl = sl->next) {
		/* The slab in use up to where it is cut; the others whole. */
		pins[n].p = sl;
		pins[n].n = sl == a->slabs ? (size_t)(a->cur - (unsigned char *)sl)
		                           : sizeof *sl + AR_SLAB;
		total += pins[n++].n;
	}
	for (struct ar_big *h = a->big.next; h != &a->big; h = h->next) {
		pins[n].p = h;
		pins[n].n = sizeof *h + h->size;
		total += pins[n++].n;
	}
	if (!(img->bytes = malloc(total ? total : 1))) {
		free(img);
		free(pins);
		return BABL_ENOMEM;
	}
	for (struct ar_big *h = a->big.next; h != &a->big; h = h->next)
		h->kept = 1;
	a->kept = a->slabs;
	img->prog = prog;
	img->c = c;
	img->pins = pins;
	img->npins = n;
	c->img = img;
	total = 0;
	for (size_t i = 0; i < n; i++) {
		memcpy(img->bytes + total, pins[i].p, pins[i].n);
		total += pins[i].n;
	}
	img->saved = *c;
	return 0;
}

/* The image's state back as it was taken. */
static struct lsb *
image_restore(struct lsb_image *img)
{
	size_t off = 0;
	for (size_t i = 0; i < img->npins; i++) {
		memcpy(img->pins[i].p, img->bytes + off, img->pins[i].n);
		off += img->pins[i].n;
	}
	*img->c = img->saved;
	return img->c;
}

/* What a call brings to its state, new or copied back: limits and host. */
static void
call_host(struct lsb *c, const struct lsb_limits *lim, const struct lsb_host *host, void *ud)
{
	c->lim = *lim;
	c->cap = lim->mem_bytes;
	c->host = host ? *host : (struct lsb_host){0};
	c->ud = ud;
}

/*
 * A new state with the script loaded on its thread (0), or BABL_E* with
 * nothing allocated.  A script that cannot be loaded is not a failure: the
 * call is then over (PH_DONE) with the message on stderr.
 */
static int
state_new(struct lsb **out, const char *chunkname, const char *src, size_t len,
    const char *mode, const struct lsb_limits *lim, const struct lsb_host *host, void *ud)
{
	*out = NULL;
	struct lsb *c = calloc(1, sizeof *c);
	if (!c)
		return BABL_ENOMEM;
	call_host(c, lim, host, ud);
	snprintf(c->name, sizeof c->name, "%s", chunkname ? chunkname : "script");
	ar_init(&c->ar);
	c->L = lua_newstate(sb_alloc, c);
	if (!c->L) {
		sb_close(c);
		free(c);
		return BABL_ENOMEM;
	}
	lua_pushcfunction(c->L, setup);
	int r = lua_pcall(c->L, 0, 0, 0);
	if (r != LUA_OK) {
		sb_close(c);
		free(c);
		return r == LUA_ERRMEM ? BABL_ENOMEM : BABL_EINTERNAL;
	}
	c->pend = 0;
	c->insns = 0;
	lua_sethook(c->L, sb_hook, LUA_MASKCOUNT, HOOK_EVERY);
	lua_sethook(c->co, sb_hook, LUA_MASKCOUNT, HOOK_EVERY);
	*out = c;

	char cn[160];
	snprintf(cn, sizeof cn, "=%s", c->name);
	r = luaL_loadbufferx(c->co, src, len, cn, mode);
	if (r != LUA_OK) {
		if (r == LUA_ERRMEM || c->pend) {
			note_limit(c, LSB_EXIT_MEMORY);
			finish(c, LSB_EXIT_MEMORY);
		} else {
			size_t n;
			const char *m = lua_tolstring(c->co, -1, &n);
			emit(c, m, n);
			emit(c, "\n", 1);
			finish(c, LSB_EXIT_ERROR);
		}
		lua_settop(c->co, 0);
	}
	return 0;
}

/* Give the loaded script its request and run it until it waits or ends. */
static int
call_begin(struct lsb **out, struct lsb *c, const struct lsb_req *req, int *state,
    int *status)
{
	c->time_ms = req->time_ms;
	c->seed = req->seed;
	if (c->phase != PH_DONE) {
		lua_pushcfunction(c->L, setup_req);
		lua_pushlightuserdata(c->L, (void *)req);
		int r = lua_pcall(c->L, 1, 0, 0);
		if (r != LUA_OK) {
			lsb_free(c);
			return r == LUA_ERRMEM ? BABL_ENOMEM : BABL_EINTERNAL;
		}
		c->pend = 0;
	}
	*out = c;
	*state = c->phase == PH_DONE ? LSB_DONE : drive(c, 0);
	*status = c->status;
	return 0;
}

static struct lsb_limits
limits_of(const struct lsb_limits *lim)
{
	struct lsb_limits l = *lim;
	if (!l.mem_bytes)
		l.mem_bytes = DEF_MEM;
	if (!l.instructions)
		l.instructions = DEF_INSNS;
	if (!l.max_string)
		l.max_string = DEF_STRING;
	return l;
}

int
lsb_start(struct lsb **out, const struct lsb_limits *lim, const struct lsb_host *host, void *ud,
    const char *chunkname, const char *src, size_t len, const struct lsb_req *req, int *state,
    int *status)
{
	struct lsb_limits l = limits_of(lim);
	struct lsb *c;
	*out = NULL;
	int rc = state_new(&c, chunkname, src, len, "t", &l, host, ud);
	return rc ? rc : call_begin(out, c, req, state, status);
}

int
lsb_start_prog(struct lsb **out, const struct lsb_limits *lim, const struct lsb_host *host,
    void *ud, struct lsb_prog *prog, const struct lsb_req *req, int *state, int *status)
{
	struct lsb_limits l = limits_of(lim);
	struct lsb *c;
	struct lsb_image *img = prog->idle;
	*out = NULL;
	if (img) {
		prog->idle = img->next;
		prog->nidle--;
		c = image_restore(img);
		call_host(c, &l, host, ud);
	} else {
		int rc = state_new(&c, prog->name, prog->bin, prog->len, "b", &l, host, ud);
		if (rc)
			return rc;
		if (c->phase != PH_DONE)
			(void)image_take(c, prog); /* without one, the state is used once */
	}
	return call_begin(out, c, req, state, status);
}

int
lsb_resume(struct lsb *c, int *status)
{
	if (c->phase == PH_DONE) {
		*status = c->status;
		return LSB_DONE;
	}
	int st = drive(c, 0);
	*status = c->status;
	return st;
}

/* Add n bytes to the call's own input buffer. */
static int
in_append(struct lsb *c, const void *p, size_t n)
{
	if (c->in_off > 0 && c->in_len + n > c->in_cap) {
		memmove(c->buf, c->buf + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->scan -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_len + n > c->in_cap) {
		size_t cap = c->in_cap ? c->in_cap : 4096;
		while (cap < c->in_len + n)
			cap *= 2;
		char *q = realloc(c->buf, cap);
		if (!q)
			return BABL_ENOMEM;
		c->buf = q;
		c->in_cap = cap;
	}
	memcpy(c->buf + c->in_len, p, n);
	c->in = c->buf;
	c->in_len += n;
	return 0;
}

int
lsb_feed(struct lsb *c, const void *p, size_t n)
{
	int rc = lsb_feed_settle(c);
	if (rc || c->eof || c->phase == PH_DONE || n == 0)
		return rc;
	return in_append(c, p, n);
}

int
lsb_feed_lend(struct lsb *c, const void *p, size_t n)
{
	if (c->lent || c->in_off < c->in_len || c->eof || c->phase == PH_DONE || n == 0)
		return lsb_feed(c, p, n);
	c->in = p;
	c->in_off = c->scan = 0;
	c->in_len = n;
	c->lent = 1;
	return 0;
}

int
lsb_feed_settle(struct lsb *c)
{
	if (!c->lent)
		return 0;
	const char *p = c->in + c->in_off;
	size_t n = c->in_len - c->in_off, scanned = c->scan - c->in_off;
	c->lent = 0;
	c->in = c->buf;
	c->in_off = c->in_len = c->scan = 0;
	if (n == 0)
		return 0;
	int rc = in_append(c, p, n);
	if (rc == 0)
		c->scan = scanned; /* (those bytes hold no newline) */
	return rc;
}

void
lsb_feed_eof(struct lsb *c)
{
	c->eof = 1;
}

void
lsb_kv_request(struct lsb *c, const char **key, size_t *klen)
{
	*key = c->kv_key;
	*klen = c->kv_klen;
}

int
lsb_kv_is_keys(struct lsb *c)
{
	return c->kv_is_keys;
}

void
lsb_kv_reply(struct lsb *c, int found, const void *v, size_t vl)
{
	free(c->kv_val);
	c->kv_val = NULL;
	c->kv_vl = 0;
	c->kv_nkeys = 0;
	c->kv_found = found != 0;
	if (found && vl) {
		c->kv_val = malloc(vl);
		if (!c->kv_val) {
			/* Answer "absent" rather than a wrong value; the call can
			 * fail on its own later.  This needs a host out of memory. */
			c->kv_found = 0;
		} else {
			memcpy(c->kv_val, v, vl);
			c->kv_vl = vl;
		}
	}
	c->kv_replied = 1;
}

void
lsb_kv_reply_keys(struct lsb *c, const char *const *keys, const size_t *lens, size_t n)
{
	free(c->kv_blob);
	free(c->kv_lens);
	c->kv_blob = NULL;
	c->kv_lens = NULL;
	c->kv_nkeys = 0;
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += lens[i];
	c->kv_blob = malloc(total ? total : 1);
	c->kv_lens = malloc((n ? n : 1) * sizeof *c->kv_lens);
	if (c->kv_blob && c->kv_lens) {
		size_t off = 0;
		for (size_t i = 0; i < n; i++) {
			memcpy(c->kv_blob + off, keys[i], lens[i]);
			c->kv_lens[i] = lens[i];
			off += lens[i];
		}
		c->kv_nkeys = n;
	}
	c->kv_replied = 1;
}

void
lsb_writes(struct lsb *c, lsb_write_fn fn, void *arg)
{
	if (c->phase != PH_DONE || c->status != 0)
		return;
	/* No Lua allocation happens here: the entries are gathered into C
	 * memory from the write set, which nothing changes any more. */
	lua_State *L = c->L;
	if (!lua_checkstack(L, 4))
		return;
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &K_WS) != LUA_TTABLE) {
		lua_pop(L, 1);
		return;
	}
	size_t n = 0, cap = 16;
	struct wkey *w = malloc(cap * sizeof *w);
	lua_pushnil(L);
	while (w && lua_next(L, -2)) {
		if (n == cap) {
			struct wkey *q = realloc(w, 2 * cap * sizeof *w);
			if (!q) {
				free(w);
				w = NULL;
				lua_pop(L, 2);
				break;
			}
			w = q;
			cap *= 2;
		}
		w[n].k = lua_tolstring(L, -2, &w[n].kl);
		w[n].deleted = lua_type(L, -1) != LUA_TSTRING;
		w[n].vl = 0;
		w[n].v = w[n].deleted ? NULL : lua_tolstring(L, -1, &w[n].vl);
		n++;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	if (!w)
		return;
	qsort(w, n, sizeof *w, wkey_cmp);
	for (size_t i = 0; i < n; i++)
		fn(arg, w[i].k, w[i].kl, w[i].deleted, w[i].v, w[i].vl);
	free(w);
}

void
lsb_usage(struct lsb *c, uint64_t *insns, uint64_t *mem_peak)
{
	if (insns)
		*insns = c->insns;
	if (mem_peak)
		*mem_peak = c->peak;
}

void
lsb_free(struct lsb *c)
{
	if (!c)
		return;
	/* Nothing of the script may run any more (no finalizer can exist, but
	 * a stopped hook costs nothing). */
	c->insn_hit = 1;
	c->cap = UINT64_MAX;
	/* Every byte of the state is the arena's: it all goes at once, without
	 * lua_close walking the objects (nothing of the script could run then
	 * anyway: no finalizers, and the hook stops any code at once). */
	c->L = NULL;
	sb_close(c);
	free(c->buf);
	free(c->kv_val);
	free(c->kv_blob);
	free(c->kv_lens);
	struct lsb_image *img = c->img;
	if (!img) {
		free(c);
	} else if (img->prog->nidle < IMAGES_KEPT) {
		img->next = img->prog->idle;
		img->prog->idle = img;
		img->prog->nidle++;
	} else {
		image_drop(img);
	}
}

/* Compile src in a bare state; on success leave the function on its stack. */
static int
compile(struct lsb *c, const char *chunkname, const char *src, size_t len, char *err,
    size_t errlen)
{
	memset(c, 0, sizeof *c);
	c->cap = COMPILE_MEM;
	ar_init(&c->ar);
	c->L = lua_newstate(sb_alloc, c);
	if (!c->L) {
		sb_close(c);
		return BABL_ENOMEM;
	}
	char cn[160];
	snprintf(cn, sizeof cn, "=%s", chunkname);
	int r = luaL_loadbufferx(c->L, src, len, cn, "t");
	if (r == LUA_OK)
		return 0;
	const char *m = lua_tostring(c->L, -1);
	if (!m)
		m = "cannot compile";
	if (err && errlen) {
		size_t nl = strlen(chunkname);
		if (strncmp(m, chunkname, nl) == 0 && m[nl] == ':')
			snprintf(err, errlen, "%s", m);
		else
			snprintf(err, errlen, "%s: %s", chunkname, m);
	}
	sb_close(c);
	return r == LUA_ERRMEM ? BABL_ENOMEM : BABL_EINPUT;
}

int
lsb_compile(const char *chunkname, const char *src, size_t len, char *err, size_t errlen)
{
	struct lsb c;
	int r = compile(&c, chunkname, src, len, err, errlen);
	sb_close(&c);
	return r;
}

struct dumpbuf {
	char *p;
	size_t len, cap;
	int fail;
};

static int
dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
	struct dumpbuf *d = ud;
	(void)L;
	if (d->len + n > d->cap) {
		size_t cap = d->cap ? d->cap : 4096;
		while (cap < d->len + n)
			cap *= 2;
		char *q = realloc(d->p, cap);
		if (!q) {
			d->fail = 1;
			return 1;
		}
		d->p = q;
		d->cap = cap;
	}
	memcpy(d->p + d->len, p, n);
	d->len += n;
	return 0;
}

int
lsb_prepare(struct lsb_prog **out, const char *chunkname, const char *src, size_t len,
    char *err, size_t errlen)
{
	*out = NULL;
	struct lsb c;
	int r = compile(&c, chunkname, src, len, err, errlen);
	if (r)
		return r;
	struct dumpbuf d = {NULL, 0, 0, 0};
	if (lua_dump(c.L, dump_writer, &d, 0) != 0 || d.fail) {
		sb_close(&c);
		free(d.p);
		return BABL_ENOMEM;
	}
	sb_close(&c);
	struct lsb_prog *p = calloc(1, sizeof *p);
	if (!p || !(p->name = strdup(chunkname))) {
		free(p);
		free(d.p);
		return BABL_ENOMEM;
	}
	p->bin = d.p;
	p->len = d.len;
	*out = p;
	return 0;
}

void
lsb_prog_free(struct lsb_prog *p)
{
	if (!p)
		return;
	while (p->idle) {
		struct lsb_image *img = p->idle;
		p->idle = img->next;
		image_drop(img);
	}
	free(p->name);
	free(p->bin);
	free(p);
}
