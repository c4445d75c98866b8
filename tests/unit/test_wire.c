/*
 * test_wire.c - the frame codec: round trips of every message type, framing
 * of partial and hostile input, decoders on malformed bodies, and encoders
 * refusing what they cannot send.
 *
 * Whenever bytes are handed to wire_next or a decoder to see whether it reads
 * past their end, they are first copied into an allocation of exactly that
 * size, so that a run under ASan reports any overread.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "wire.h"
#include "t.h"

/* Binary bytes with NULs and high bits, for payloads and strings. */
static const uint8_t bin[] = {'a', 0, 'b', 0, 0xff, 0, 'z', 0x80, 0};

static uint8_t owner[32], prev[32], sig[64], vid[32];

/* Fill p with a pattern that depends on seed, so that fields differ. */
static void
fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + 1);
}

static void
fill_fixed(void)
{
	fill(owner, sizeof owner, 1);
	fill(prev, sizeof prev, 2);
	fill(sig, sizeof sig, 3);
	fill(vid, sizeof vid, 4);
}

/* A copy of n bytes in an allocation of exactly n bytes. */
static uint8_t *
exact_copy(const void *p, size_t n)
{
	uint8_t *q = malloc(n);
	T_ASSERT(q || n == 0);
	if (n)
		memcpy(q, p, n);
	return q;
}

static int
str_is(struct wire_str s, const void *p, size_t n)
{
	return s.len == n && (n == 0 || memcmp(s.p, p, n) == 0);
}

static struct wire_str
wstr(const void *p, size_t n)
{
	struct wire_str s = {p, n};
	return s;
}

static struct wire_str
wcstr(const char *c)
{
	return wstr(c, strlen(c));
}

/* The one frame that fills b exactly. */
static struct wire_frame
only_frame(const struct wbuf *b)
{
	struct wire_frame f;
	size_t used = 0;
	T_EQ_INT(wire_next(b->p, b->len, 0, &f, &used), 0);
	T_EQ_INT(used, b->len);
	T_ASSERT(f.p == b->p + WIRE_HDR + 1);
	T_EQ_INT(f.len, b->len - WIRE_HDR - 1);
	return f;
}

/*
 * The decoders by index, so that the hostile-input cases can run over all
 * of them.  Decoded messages land in static storage (a call is large).
 */
enum { D_HELLO, D_WELCOME, D_ERROR, D_CALL, D_EXIT, D_DEPLOY, D_QUERY, D_HEAD, D_N };

static const uint8_t dec_type[D_N] = {
	WIRE_HELLO, WIRE_WELCOME, WIRE_ERROR, WIRE_CALL,
	WIRE_EXIT, WIRE_DEPLOY, WIRE_QUERY, WIRE_HEAD,
};
static const char *const dec_name[D_N] = {
	"hello", "welcome", "error", "call", "exit", "deploy", "query", "head",
};

static struct wire_hello out_hello;
static struct wire_welcome out_welcome;
static struct wire_error out_error;
static struct wire_call out_call;
static struct wire_exit out_exit;
static struct wire_deploy out_deploy;
static struct wire_query_msg out_query;
static struct wire_head out_head;

static int
decode_as(int d, const struct wire_frame *f)
{
	switch (d) {
	case D_HELLO: return wire_dec_hello(f, &out_hello);
	case D_WELCOME: return wire_dec_welcome(f, &out_welcome);
	case D_ERROR: return wire_dec_error(f, &out_error);
	case D_CALL: return wire_dec_call(f, &out_call);
	case D_EXIT: return wire_dec_exit(f, &out_exit);
	case D_DEPLOY: return wire_dec_deploy(f, &out_deploy);
	case D_QUERY: return wire_dec_query(f, &out_query);
	case D_HEAD: return wire_dec_head(f, &out_head);
	}
	T_FAIL("no decoder %d", d);
}

/* Decode a body given as bytes, copied to an exact allocation first. */
static int
decode_bytes(int d, uint8_t type, const void *p, size_t n)
{
	uint8_t *q = exact_copy(p, n);
	struct wire_frame f = {type, q, n};
	int rc = decode_as(d, &f);
	free(q);
	return rc;
}

/* A valid frame for decoder d, with non-empty strings throughout. */
static void
encode_sample(int d, struct wbuf *b)
{
	static struct wire_call c;
	struct wire_deploy dep = {wstr(bin, sizeof bin), owner, 42, prev, sig};
	int rc = BABL_EINTERNAL;
	fill_fixed();
	switch (d) {
	case D_HELLO: rc = wire_enc_hello(b, "babl/1.0 test"); break;
	case D_WELCOME: rc = wire_enc_welcome(b, "node-a"); break;
	case D_ERROR: rc = wire_enc_error(b, BABL_ENOSERVICE, "no such service"); break;
	case D_CALL:
		memset(&c, 0, sizeof c);
		c.target = wcstr("sort@3");
		c.idkey = wcstr("key-1");
		c.timeout_ms = 2500;
		c.flags = WIRE_CALL_PROGRESS;
		c.nargs = 2;
		c.args[0] = wcstr("-n");
		c.args[1] = wstr(bin, sizeof bin);
		rc = wire_enc_call(b, &c);
		break;
	case D_EXIT: rc = wire_enc_exit(b, WIRE_SIGNALED, 9, "memory limit"); break;
	case D_DEPLOY: rc = wire_enc_deploy(b, &dep); break;
	case D_QUERY: rc = wire_enc_query(b, WIRE_Q_LOG, "sort", "20"); break;
	case D_HEAD: rc = wire_enc_head(b, 7, vid, owner); break;
	}
	T_EQ_INT(rc, 0);
}

/* Round trips. */

static void
case_rt_hello(void)
{
	struct wbuf b = {0};
	struct wire_hello m;
	T_EQ_INT(wire_enc_hello(&b, "babl/1.0"), 0);
	struct wire_frame f = only_frame(&b);
	T_EQ_INT(f.type, WIRE_HELLO);
	T_EQ_INT(wire_dec_hello(&f, &m), 0);
	T_EQ_INT(m.version, WIRE_VERSION);
	T_ASSERT(wire_streq(m.agent, "babl/1.0"));

	/* An empty agent and one at the 256-byte bound both come back. */
	char agent[257];
	memset(agent, 'x', 256);
	agent[256] = 0;
	const char *agents[] = {"", agent, NULL};
	for (int i = 0; agents[i]; i++) {
		wbuf_reset(&b);
		T_EQ_INT(wire_enc_hello(&b, agents[i]), 0);
		f = only_frame(&b);
		T_EQ_INT(wire_dec_hello(&f, &m), 0);
		T_ASSERT(wire_streq(m.agent, agents[i]));
	}
	wbuf_free(&b);
}

static void
case_rt_welcome(void)
{
	struct wbuf b = {0};
	struct wire_welcome m;
	T_EQ_INT(wire_enc_welcome(&b, "node-7"), 0);
	struct wire_frame f = only_frame(&b);
	T_EQ_INT(f.type, WIRE_WELCOME);
	T_EQ_INT(wire_dec_welcome(&f, &m), 0);
	T_EQ_INT(m.version, WIRE_VERSION);
	T_ASSERT(wire_streq(m.node, "node-7"));
	/* A welcome is not a hello, though the layout is the same. */
	struct wire_hello h;
	T_EQ_INT(wire_dec_hello(&f, &h), BABL_EPROTO);
	wbuf_free(&b);
}

static void
case_rt_error(void)
{
	static const struct {
		int code;
		const char *msg;
	} v[] = {
		{BABL_EPERM, "not the owner"},
		{BABL_EPROTO, ""},
		{0, "zero"},
		{INT32_MIN, "min"},
		{INT32_MAX, "max"},
	};
	struct wbuf b = {0};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		struct wire_error m;
		wbuf_reset(&b);
		T_EQ_INT(wire_enc_error(&b, v[i].code, v[i].msg), 0);
		struct wire_frame f = only_frame(&b);
		T_EQ_INT(f.type, WIRE_ERROR);
		T_EQ_INT(wire_dec_error(&f, &m), 0);
		T_EQ_INT(m.code, v[i].code);
		T_ASSERT(wire_streq(m.msg, v[i].msg));
	}
	wbuf_free(&b);
}

/* A message too long for the bound must still give a frame that decodes. */
static void
case_error_long_msg(void)
{
	struct wbuf b = {0};
	struct wire_error m;
	size_t n = WIRE_MAX_STR + 100;
	char *msg = malloc(n + 1);
	T_ASSERT(msg);
	memset(msg, 'e', n);
	msg[n] = 0;
	int rc = wire_enc_error(&b, BABL_EIO, msg);
	free(msg);
	T_EQ_INT(rc, 0);
	struct wire_frame f = only_frame(&b);
	T_EQ_INT(wire_dec_error(&f, &m), 0);
	T_EQ_INT(m.code, BABL_EIO);
	T_ASSERT(m.msg.len <= WIRE_MAX_STR && m.msg.len > 0);
	T_ASSERT(m.msg.p[0] == 'e' && m.msg.p[m.msg.len - 1] == 'e');
	wbuf_free(&b);
}

static void
check_call_rt(const struct wire_call *in)
{
	static struct wire_call m;
	struct wbuf b = {0};
	T_EQ_INT(wire_enc_call(&b, in), 0);
	struct wire_frame f = only_frame(&b);
	T_EQ_INT(f.type, WIRE_CALL);
	memset(&m, 0xa5, sizeof m);
	T_EQ_INT(wire_dec_call(&f, &m), 0);
	T_ASSERT(str_is(m.target, in->target.p, in->target.len));
	T_ASSERT(str_is(m.idkey, in->idkey.p, in->idkey.len));
	T_EQ_INT(m.timeout_ms, in->timeout_ms);
	T_EQ_INT(m.flags, in->flags);
	T_EQ_INT(m.nargs, in->nargs);
	for (uint32_t i = 0; i < in->nargs; i++)
		if (!str_is(m.args[i], in->args[i].p, in->args[i].len))
			T_FAIL("argument %u differs", i);
	wbuf_free(&b);
}

static void
case_rt_call_0(void)
{
	static struct wire_call c;
	memset(&c, 0, sizeof c);
	c.target = wcstr("sort");
	c.idkey = wstr(NULL, 0);
	check_call_rt(&c);
	c.idkey = wcstr("");
	check_call_rt(&c);
}

static void
case_rt_call_1(void)
{
	static struct wire_call c;
	memset(&c, 0, sizeof c);
	c.target = wcstr("0123456789abcdef0123456789abcdef");
	c.idkey = wcstr("order-2024-0001");
	c.timeout_ms = UINT32_MAX;
	c.flags = WIRE_CALL_PROGRESS;
	c.nargs = 1;
	c.args[0] = wcstr("-k2");
	check_call_rt(&c);
	/* An empty argument and a binary one. */
	c.args[0] = wcstr("");
	check_call_rt(&c);
	c.args[0] = wstr(bin, sizeof bin);
	check_call_rt(&c);
}

static void
case_rt_call_256(void)
{
	static struct wire_call c;
	static char text[WIRE_MAX_ARGS][16];
	memset(&c, 0, sizeof c);
	c.target = wcstr("upper@12");
	c.idkey = wcstr("k");
	c.timeout_ms = 1;
	c.flags = 0xffffffffu;
	c.nargs = WIRE_MAX_ARGS;
	for (int i = 0; i < WIRE_MAX_ARGS; i++) {
		snprintf(text[i], sizeof text[i], "arg-%d", i);
		c.args[i] = wcstr(text[i]);
	}
	c.args[0] = wcstr("");
	c.args[1] = wstr(bin, sizeof bin);
	check_call_rt(&c);
}

/* Arguments at exactly WIRE_MAX_STR bytes are accepted both ways. */
static void
case_rt_call_max_arg(void)
{
	static struct wire_call c;
	char *big = malloc(WIRE_MAX_STR);
	T_ASSERT(big);
	memset(big, 'q', WIRE_MAX_STR);
	memset(&c, 0, sizeof c);
	c.target = wcstr("cat");
	c.nargs = 2;
	c.args[0] = wstr(big, WIRE_MAX_STR);
	c.args[1] = wcstr("x");
	check_call_rt(&c);
	free(big);
}

static void
case_rt_bytes(void)
{
	static const uint8_t types[] = {WIRE_DATA, WIRE_OUT, WIRE_ERRB, WIRE_TEXT};
	size_t bign = 100000;
	uint8_t *big = malloc(bign);
	T_ASSERT(big);
	fill(big, bign, 9);
	const struct {
		const void *p;
		size_t n;
	} v[] = {{bin, sizeof bin}, {NULL, 0}, {"", 0}, {"\0", 1}, {big, bign}};
	struct wbuf b = {0};
	for (size_t t = 0; t < sizeof types; t++) {
		for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
			wbuf_reset(&b);
			T_EQ_INT(wire_enc_bytes(&b, types[t], v[i].p, v[i].n), 0);
			struct wire_frame f = only_frame(&b);
			T_EQ_INT(f.type, types[t]);
			T_EQ_INT(f.len, v[i].n);
			T_ASSERT(v[i].n == 0 || memcmp(f.p, v[i].p, v[i].n) == 0);
		}
	}
	free(big);
	wbuf_free(&b);
}

/* A CHAN frame carries whole frames of its channel; an empty one ends it;
 * a short body or an id out of range is malformed; one too big is refused
 * and leaves the buffer as it was. */
static void
case_chan(void)
{
	struct wbuf b = {0};
	size_t start;
	T_EQ_INT(wire_chan_begin(&b, 1023, &start), 0);
	T_EQ_INT(wire_enc_bytes(&b, WIRE_DATA, bin, sizeof bin), 0);
	T_EQ_INT(wire_enc_empty(&b, WIRE_EOF), 0);
	T_EQ_INT(wire_chan_end(&b, start), 0);
	struct wire_frame f = only_frame(&b), g;
	uint32_t chan;
	const uint8_t *p;
	size_t n, used;
	T_EQ_INT(wire_dec_chan(&f, &chan, &p, &n), 0);
	T_EQ_INT(chan, 1023);
	T_EQ_INT(wire_next(p, n, 0, &g, &used), 0);
	T_EQ_INT(g.type, WIRE_DATA);
	T_EQ_INT(g.len, sizeof bin);
	T_EQ_MEM(g.p, bin, sizeof bin);
	T_EQ_INT(wire_next(p + used, n - used, 0, &g, &used), 0);
	T_EQ_INT(g.type, WIRE_EOF);
	T_EQ_INT(p + n - g.p, 0);

	wbuf_reset(&b);
	T_EQ_INT(wire_enc_chan_end(&b, 7), 0);
	T_EQ_INT(b.len, WIRE_HDR + 5);
	f = only_frame(&b);
	T_EQ_INT(wire_dec_chan(&f, &chan, &p, &n), 0);
	T_EQ_INT(chan, 7);
	T_EQ_INT(n, 0);

	static const uint8_t bad_id[] = {0, 0, 4, 0}; /* 1024 */
	for (size_t k = 0; k < 4; k++) { /* body shorter than an id */
		f = (struct wire_frame){WIRE_CHAN, bad_id, k};
		T_EQ_INT(wire_dec_chan(&f, &chan, &p, &n), BABL_EPROTO);
	}
	f = (struct wire_frame){WIRE_CHAN, bad_id, 4};
	T_EQ_INT(wire_dec_chan(&f, &chan, &p, &n), BABL_EPROTO);
	f = (struct wire_frame){WIRE_DATA, bin, 8};
	T_EQ_INT(wire_dec_chan(&f, &chan, &p, &n), BABL_EPROTO);

	wbuf_reset(&b);
	T_EQ_INT(wire_enc_chan_end(&b, 1), 0);
	size_t had = b.len;
	uint8_t *big = calloc(1, WIRE_CHUNK);
	T_ASSERT(big);
	T_EQ_INT(wire_chan_begin(&b, 2, &start), 0);
	T_EQ_INT(wire_enc_bytes(&b, WIRE_DATA, big, WIRE_CHUNK), 0);
	T_EQ_INT(wire_enc_bytes(&b, WIRE_DATA, big, WIRE_CHUNK), 0);
	T_EQ_INT(wire_chan_end(&b, start), BABL_ETOOBIG);
	T_EQ_INT(b.len, had);
	free(big);
	wbuf_free(&b);
}

static void
case_rt_empty(void)
{
	static const uint8_t types[] = {WIRE_EOF, WIRE_CANCEL};
	struct wbuf b = {0};
	for (size_t t = 0; t < sizeof types; t++) {
		wbuf_reset(&b);
		T_EQ_INT(wire_enc_empty(&b, types[t]), 0);
		T_EQ_INT(b.len, WIRE_HDR + 1);
		struct wire_frame f = only_frame(&b);
		T_EQ_INT(f.type, types[t]);
		T_EQ_INT(f.len, 0);
	}
	wbuf_free(&b);
}

static void
case_rt_exit(void)
{
	static const struct {
		uint8_t kind;
		int32_t code;
		const char *msg;
	} v[] = {
		{WIRE_EXITED, 0, NULL},
		{WIRE_EXITED, 0, ""},
		{WIRE_EXITED, 3, "bad input"},
		{WIRE_EXITED, -1, "negative"},
		{WIRE_SIGNALED, 9, "memory limit"},
		{WIRE_SIGNALED, 15, NULL},
	};
	struct wbuf b = {0};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		struct wire_exit m;
		wbuf_reset(&b);
		T_EQ_INT(wire_enc_exit(&b, v[i].kind, v[i].code, v[i].msg), 0);
		struct wire_frame f = only_frame(&b);
		T_EQ_INT(f.type, WIRE_EXIT);
		T_EQ_INT(wire_dec_exit(&f, &m), 0);
		T_EQ_INT(m.kind, v[i].kind);
		T_EQ_INT(m.code, v[i].code);
		T_ASSERT(wire_streq(m.msg, v[i].msg ? v[i].msg : ""));
	}
	wbuf_free(&b);
}

static void
case_rt_deploy(void)
{
	static const uint64_t versions[] = {1, 2, UINT64_MAX};
	struct wbuf b = {0};
	fill_fixed();
	for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
		struct wire_deploy in = {wstr(bin, sizeof bin), owner, versions[i], prev, sig};
		struct wire_deploy m;
		wbuf_reset(&b);
		T_EQ_INT(wire_enc_deploy(&b, &in), 0);
		struct wire_frame f = only_frame(&b);
		T_EQ_INT(f.type, WIRE_DEPLOY);
		T_EQ_INT(wire_dec_deploy(&f, &m), 0);
		T_ASSERT(str_is(m.bundle, bin, sizeof bin));
		T_EQ_MEM(m.owner, owner, 32);
		T_EQ_INT(m.version, versions[i]);
		T_EQ_MEM(m.prev, prev, 32);
		T_EQ_MEM(m.sig, sig, 64);
	}
	wbuf_free(&b);
}

static void
case_rt_query(void)
{
	struct wbuf b = {0};
	for (uint8_t what = WIRE_Q_LS; what <= WIRE_Q_VERIFY; what++) {
		struct wire_query_msg m;
		wbuf_reset(&b);
		T_EQ_INT(wire_enc_query(&b, what, "sort", "x y"), 0);
		struct wire_frame f = only_frame(&b);
		T_EQ_INT(f.type, WIRE_QUERY);
		T_EQ_INT(wire_dec_query(&f, &m), 0);
		T_EQ_INT(m.what, what);
		T_ASSERT(wire_streq(m.arg, "sort"));
		T_ASSERT(wire_streq(m.arg2, "x y"));

		/* Absent arguments travel as empty strings. */
		wbuf_reset(&b);
		T_EQ_INT(wire_enc_query(&b, what, NULL, NULL), 0);
		f = only_frame(&b);
		T_EQ_INT(wire_dec_query(&f, &m), 0);
		T_EQ_INT(m.what, what);
		T_EQ_INT(m.arg.len, 0);
		T_EQ_INT(m.arg2.len, 0);
	}
	wbuf_free(&b);
}

static void
case_rt_head(void)
{
	static const uint64_t versions[] = {0, 1, 7, UINT64_MAX};
	struct wbuf b = {0};
	fill_fixed();
	for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
		struct wire_head m;
		wbuf_reset(&b);
		T_EQ_INT(wire_enc_head(&b, versions[i], vid, owner), 0);
		struct wire_frame f = only_frame(&b);
		T_EQ_INT(f.type, WIRE_HEAD);
		T_EQ_INT(wire_dec_head(&f, &m), 0);
		T_EQ_INT(m.version, versions[i]);
		T_EQ_MEM(m.vid, vid, 32);
		T_EQ_MEM(m.owner, owner, 32);
	}
	wbuf_free(&b);
}

/* wire_hdr gives the same five bytes that wire_enc_bytes writes. */
static void
case_hdr(void)
{
	static const size_t sizes[] = {0, 1, 255, 256, 70000};
	uint8_t *p = calloc(1, 70000);
	struct wbuf b = {0};
	T_ASSERT(p);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		uint8_t hdr[5];
		wbuf_reset(&b);
		T_EQ_INT(wire_enc_bytes(&b, WIRE_OUT, p, sizes[i]), 0);
		wire_hdr(hdr, WIRE_OUT, sizes[i]);
		T_EQ_MEM(hdr, b.p, 5);
	}
	free(p);
	wbuf_free(&b);
}

/* Framing. */

#define NFRAMES 9

/*
 * Every prefix of a buffer of several frames yields exactly the frames
 * wholly inside it, in order and intact, and then BABL_EAGAIN.
 */
static void
case_next_prefixes(void)
{
	static struct wire_call c;
	struct wbuf b = {0};
	size_t ends[NFRAMES];
	uint8_t types[NFRAMES];
	int n = 0;
	fill_fixed();
	memset(&c, 0, sizeof c);
	c.target = wcstr("sort");
	c.idkey = wcstr("id");
	c.nargs = 1;
	c.args[0] = wcstr("-r");
	struct wire_deploy dep = {wstr(bin, sizeof bin), owner, 3, prev, sig};

#define ADD(call, type)                                                    \
	do {                                                               \
		T_EQ_INT(call, 0);                                         \
		ends[n] = b.len;                                           \
		types[n++] = (type);                                       \
	} while (0)
	ADD(wire_enc_hello(&b, "agent"), WIRE_HELLO);
	ADD(wire_enc_call(&b, &c), WIRE_CALL);
	ADD(wire_enc_bytes(&b, WIRE_DATA, bin, sizeof bin), WIRE_DATA);
	ADD(wire_enc_bytes(&b, WIRE_DATA, NULL, 0), WIRE_DATA);
	ADD(wire_enc_empty(&b, WIRE_EOF), WIRE_EOF);
	ADD(wire_enc_exit(&b, WIRE_EXITED, 0, "ok"), WIRE_EXIT);
	ADD(wire_enc_head(&b, 9, vid, owner), WIRE_HEAD);
	ADD(wire_enc_deploy(&b, &dep), WIRE_DEPLOY);
	ADD(wire_enc_query(&b, WIRE_Q_INFO, "a", ""), WIRE_QUERY);
#undef ADD
	T_EQ_INT(n, NFRAMES);

	for (size_t k = 0; k <= b.len; k++) {
		uint8_t *q = exact_copy(b.p, k);
		size_t pos = 0, used;
		int i = 0, rc;
		struct wire_frame f;
		while ((rc = wire_next(q + pos, k - pos, 0, &f, &used)) == 0) {
			if (i >= n || f.type != types[i] || pos + used != ends[i] ||
			    f.p != q + pos + WIRE_HDR + 1 ||
			    f.len != used - WIRE_HDR - 1) {
				free(q);
				T_FAIL("prefix %zu: wrong frame %d at %zu", k, i, pos);
			}
			pos += used;
			i++;
		}
		int want = 0;
		while (want < n && ends[want] <= k)
			want++;
		free(q);
		if (rc != BABL_EAGAIN || i != want)
			T_FAIL("prefix %zu: rc %d after %d frames, expected %d",
			       k, rc, i, want);
	}
	wbuf_free(&b);
}

static void
case_next_back_to_back(void)
{
	struct wbuf b = {0};
	static const uint8_t want[] = {WIRE_OUT, WIRE_ERRB, WIRE_OUT, WIRE_EXIT, WIRE_ERROR};
	T_EQ_INT(wire_enc_bytes(&b, WIRE_OUT, "one\n", 4), 0);
	T_EQ_INT(wire_enc_bytes(&b, WIRE_ERRB, "warn\n", 5), 0);
	T_EQ_INT(wire_enc_bytes(&b, WIRE_OUT, "", 0), 0);
	T_EQ_INT(wire_enc_exit(&b, WIRE_EXITED, 0, NULL), 0);
	T_EQ_INT(wire_enc_error(&b, BABL_EBUSY, "busy"), 0);
	size_t pos = 0, used;
	struct wire_frame f;
	for (size_t i = 0; i < sizeof want; i++) {
		T_EQ_INT(wire_next(b.p + pos, b.len - pos, 0, &f, &used), 0);
		T_EQ_INT(f.type, want[i]);
		pos += used;
	}
	T_EQ_INT(pos, b.len);
	T_EQ_INT(wire_next(b.p + pos, 0, 0, &f, &used), BABL_EAGAIN);
	wbuf_free(&b);
}

static void
case_next_zero_body(void)
{
	static const uint8_t z[] = {0, 0, 0, 0, WIRE_DATA, 1, 2, 3};
	struct wire_frame f;
	size_t used;
	for (size_t k = WIRE_HDR; k <= sizeof z; k++) {
		uint8_t *q = exact_copy(z, k);
		int rc = wire_next(q, k, 0, &f, &used);
		free(q);
		T_EQ_INT(rc, BABL_EPROTO);
	}
}

/* Only the length prefix is needed to refuse an oversized frame. */
static void
case_next_too_big(void)
{
	struct wire_frame f;
	size_t used;
	uint8_t h[WIRE_HDR + 1];
	h[WIRE_HDR] = WIRE_DATA;

	static const uint32_t big[] = {WIRE_MAX_BODY + 1, WIRE_MAX_BODY * 2, UINT32_MAX};
	static const size_t maxes[] = {0, WIRE_MAX_BODY, WIRE_MAX_BODY + 1, SIZE_MAX};
	for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
		for (size_t j = 0; j < sizeof maxes / sizeof maxes[0]; j++) {
			be32_put(h, big[i]);
			uint8_t *q = exact_copy(h, WIRE_HDR);
			int rc = wire_next(q, WIRE_HDR, maxes[j], &f, &used);
			free(q);
			T_EQ_INT(rc, BABL_ETOOBIG);
		}
	}

	/* Exactly WIRE_MAX_BODY is allowed and merely incomplete. */
	be32_put(h, WIRE_MAX_BODY);
	T_EQ_INT(wire_next(h, sizeof h, 0, &f, &used), BABL_EAGAIN);

	/* A caller's smaller bound. */
	struct wbuf b = {0};
	T_EQ_INT(wire_enc_bytes(&b, WIRE_DATA, "0123456789abcdef", 16), 0);
	T_EQ_INT(wire_next(b.p, b.len, 16, &f, &used), BABL_ETOOBIG);
	T_EQ_INT(wire_next(b.p, WIRE_HDR, 16, &f, &used), BABL_ETOOBIG);
	T_EQ_INT(wire_next(b.p, b.len, 17, &f, &used), 0);
	T_EQ_INT(f.len, 16);
	T_EQ_INT(wire_next(b.p, b.len, 1000, &f, &used), 0);
	wbuf_free(&b);
}

static int
known_type(unsigned t)
{
	switch (t) {
	case WIRE_HELLO: case WIRE_WELCOME: case WIRE_ERROR: case WIRE_CALL:
	case WIRE_DATA: case WIRE_EOF: case WIRE_CANCEL: case WIRE_OUT:
	case WIRE_ERRB: case WIRE_EXIT: case WIRE_DEPLOY: case WIRE_QUERY:
	case WIRE_TEXT: case WIRE_HEAD: case WIRE_CHAN:
		return 1;
	}
	return 0;
}

/* An unknown type is refused as soon as its byte is there. */
static void
case_next_unknown_type(void)
{
	struct wire_frame f;
	size_t used;
	for (unsigned t = 0; t < 256; t++) {
		uint8_t whole[WIRE_HDR + 1], part[WIRE_HDR + 1];
		be32_put(whole, 1);
		whole[WIRE_HDR] = (uint8_t)t;
		be32_put(part, 10);
		part[WIRE_HDR] = (uint8_t)t;
		uint8_t *q = exact_copy(whole, sizeof whole);
		int rc1 = wire_next(q, sizeof whole, 0, &f, &used);
		free(q);
		q = exact_copy(part, sizeof part);
		int rc2 = wire_next(q, sizeof part, 0, &f, &used);
		free(q);
		if (known_type(t)) {
			T_EQ_INT(rc1, 0);
			T_EQ_INT(f.type, t);
			T_EQ_INT(rc2, BABL_EAGAIN);
		} else {
			if (rc1 != BABL_EPROTO || rc2 != BABL_EPROTO)
				T_FAIL("type 0x%02x: %d, %d", t, rc1, rc2);
		}
	}
}

/* Decoders on malformed bodies. */

static void
case_dec_wrong_type(void)
{
	struct wbuf b = {0};
	for (int d = 0; d < D_N; d++) {
		wbuf_reset(&b);
		encode_sample(d, &b);
		struct wire_frame f = only_frame(&b);
		T_EQ_INT(decode_as(d, &f), 0);
		for (unsigned t = 0; t < 256; t++) {
			if (t == dec_type[d])
				continue;
			struct wire_frame g = {(uint8_t)t, f.p, f.len};
			if (decode_as(d, &g) != BABL_EPROTO)
				T_FAIL("%s decoder took type 0x%02x", dec_name[d], t);
		}
	}
	wbuf_free(&b);
}

static void
case_dec_truncated(void)
{
	struct wbuf b = {0};
	for (int d = 0; d < D_N; d++) {
		wbuf_reset(&b);
		encode_sample(d, &b);
		struct wire_frame f = only_frame(&b);
		T_EQ_INT(decode_bytes(d, f.type, f.p, f.len), 0);
		for (size_t k = 0; k < f.len; k++) {
			int rc = decode_bytes(d, f.type, f.p, k);
			if (rc != BABL_EPROTO)
				T_FAIL("%s cut to %zu of %zu bytes: %d", dec_name[d],
				       k, f.len, rc);
		}
	}
	wbuf_free(&b);
}

static void
case_dec_trailing(void)
{
	struct wbuf b = {0};
	for (int d = 0; d < D_N; d++) {
		for (size_t extra = 1; extra <= 5; extra++) {
			wbuf_reset(&b);
			encode_sample(d, &b);
			for (size_t i = 0; i < extra; i++)
				T_EQ_INT(wb_u8(&b, 0), 0);
			/* The frame view covers the extra bytes too. */
			struct wire_frame f = {dec_type[d], b.p + WIRE_HDR + 1,
					       b.len - WIRE_HDR - 1};
			if (decode_bytes(d, f.type, f.p, f.len) != BABL_EPROTO)
				T_FAIL("%s with %zu trailing bytes", dec_name[d], extra);
		}
	}
	wbuf_free(&b);
}

/*
 * Each string length field in a sample, rewritten to claim one byte more
 * than the body holds after it, or 0xffffffff: both must be refused.
 */
static void
case_dec_str_beyond_body(void)
{
	static const struct {
		int d;
		size_t off; /* of the u32 length, within the body */
	} v[] = {
		{D_HELLO, 6}, {D_WELCOME, 6}, {D_ERROR, 4},
		{D_CALL, 0},                     /* target "sort@3" */
		{D_CALL, 4 + 6},                 /* idkey "key-1" */
		{D_CALL, 4 + 6 + 4 + 5 + 12},    /* args[0] "-n" */
		{D_CALL, 4 + 6 + 4 + 5 + 12 + 4 + 2}, /* args[1] */
		{D_EXIT, 5}, {D_DEPLOY, 0},
		{D_QUERY, 1},                    /* arg "sort" */
		{D_QUERY, 1 + 4 + 4},            /* arg2 "20" */
	};
	struct wbuf b = {0};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		wbuf_reset(&b);
		encode_sample(v[i].d, &b);
		struct wire_frame f = only_frame(&b);
		T_ASSERT(v[i].off + 4 <= f.len);
		uint8_t *body = exact_copy(f.p, f.len);
		uint32_t rest = (uint32_t)(f.len - v[i].off - 4);
		const uint32_t lens[] = {rest + 1, rest + 1000, UINT32_MAX};
		for (size_t j = 0; j < 3; j++) {
			be32_put(body + v[i].off, lens[j]);
			int rc = decode_bytes(v[i].d, f.type, body, f.len);
			if (rc != BABL_EPROTO) {
				free(body);
				T_FAIL("%s length at %zu set to %u: %d",
				       dec_name[v[i].d], v[i].off, lens[j], rc);
			}
		}
		free(body);
	}
	wbuf_free(&b);
}

/* Append a string of n bytes of c, as the codecs lay strings out. */
static void
put_str(struct wbuf *b, size_t n, int c)
{
	T_EQ_INT(wb_u32(b, (uint32_t)n), 0);
	for (size_t i = 0; i < n; i++)
		T_EQ_INT(wb_u8(b, (uint8_t)c), 0);
}

/*
 * Strings present in full but longer than their field's bound are refused;
 * at the bound they are accepted.  Bodies are built field by field.
 */
static void
case_dec_str_beyond_bound(void)
{
	struct wbuf b = {0};
	fill_fixed();
	for (int over = 0; over <= 1; over++) {
		int want = over ? BABL_EPROTO : 0;

		/* hello and welcome: agent and node, 256 bytes. */
		for (int d = D_HELLO; d <= D_WELCOME; d++) {
			wbuf_reset(&b);
			T_EQ_INT(wb_raw(&b, WIRE_MAGIC, 4), 0);
			T_EQ_INT(wb_u16(&b, WIRE_VERSION), 0);
			put_str(&b, 256 + over, 'a');
			T_EQ_INT(decode_bytes(d, dec_type[d], b.p, b.len), want);
		}

		/* error: message. */
		wbuf_reset(&b);
		T_EQ_INT(wb_u32(&b, 1), 0);
		put_str(&b, WIRE_MAX_STR + over, 'm');
		T_EQ_INT(decode_bytes(D_ERROR, WIRE_ERROR, b.p, b.len), want);

		/* call: target, idkey and an argument, one at a time. */
		for (int field = 0; field < 3; field++) {
			wbuf_reset(&b);
			put_str(&b, field == 0 ? WIRE_MAX_STR + over : 3, 't');
			put_str(&b, field == 1 ? WIRE_MAX_STR + over : 0, 'k');
			T_EQ_INT(wb_u32(&b, 0), 0);
			T_EQ_INT(wb_u32(&b, 0), 0);
			T_EQ_INT(wb_u32(&b, 2), 0);
			put_str(&b, 1, 'x');
			put_str(&b, field == 2 ? WIRE_MAX_STR + over : 1, 'y');
			int rc = decode_bytes(D_CALL, WIRE_CALL, b.p, b.len);
			if (rc != want)
				T_FAIL("call field %d over %d: %d", field, over, rc);
		}

		/* exit: message. */
		wbuf_reset(&b);
		T_EQ_INT(wb_u8(&b, WIRE_EXITED), 0);
		T_EQ_INT(wb_u32(&b, 0), 0);
		put_str(&b, WIRE_MAX_STR + over, 'x');
		T_EQ_INT(decode_bytes(D_EXIT, WIRE_EXIT, b.p, b.len), want);

		/* query: either argument. */
		for (int field = 0; field < 2; field++) {
			wbuf_reset(&b);
			T_EQ_INT(wb_u8(&b, WIRE_Q_LS), 0);
			put_str(&b, field == 0 ? WIRE_MAX_STR + over : 0, 'q');
			put_str(&b, field == 1 ? WIRE_MAX_STR + over : 0, 'r');
			T_EQ_INT(decode_bytes(D_QUERY, WIRE_QUERY, b.p, b.len), want);
		}

		/* deploy: the bundle, bounded by WIRE_MAX_BODY. */
		wbuf_reset(&b);
		put_str(&b, WIRE_MAX_BODY + over, 'B');
		T_EQ_INT(wb_raw(&b, owner, 32), 0);
		T_EQ_INT(wb_u64(&b, 1), 0);
		T_EQ_INT(wb_raw(&b, prev, 32), 0);
		T_EQ_INT(wb_raw(&b, sig, 64), 0);
		T_EQ_INT(decode_bytes(D_DEPLOY, WIRE_DEPLOY, b.p, b.len), want);
	}
	wbuf_free(&b);
}

/* A call body with nargs declared and `present` empty arguments present. */
static int
call_with_nargs(uint32_t nargs, uint32_t present)
{
	struct wbuf b = {0};
	T_EQ_INT(wb_cstr(&b, "svc"), 0);
	T_EQ_INT(wb_cstr(&b, ""), 0);
	T_EQ_INT(wb_u32(&b, 0), 0);
	T_EQ_INT(wb_u32(&b, 0), 0);
	T_EQ_INT(wb_u32(&b, nargs), 0);
	for (uint32_t i = 0; i < present; i++)
		T_EQ_INT(wb_cstr(&b, ""), 0);
	int rc = decode_bytes(D_CALL, WIRE_CALL, b.p, b.len);
	wbuf_free(&b);
	return rc;
}

static void
case_dec_call_nargs(void)
{
	T_EQ_INT(call_with_nargs(0, 0), 0);
	T_EQ_INT(call_with_nargs(WIRE_MAX_ARGS, WIRE_MAX_ARGS), 0);
	T_EQ_INT(out_call.nargs, WIRE_MAX_ARGS);
	T_EQ_INT(call_with_nargs(WIRE_MAX_ARGS + 1, WIRE_MAX_ARGS + 1), BABL_EPROTO);
	T_EQ_INT(call_with_nargs(WIRE_MAX_ARGS + 1, 0), BABL_EPROTO);
	T_EQ_INT(call_with_nargs(UINT32_MAX, 3), BABL_EPROTO);
	T_EQ_INT(call_with_nargs(2, 1), BABL_EPROTO);
	T_EQ_INT(call_with_nargs(1, 2), BABL_EPROTO);
}

static void
case_dec_call_empty_target(void)
{
	static struct wire_call c;
	struct wbuf b = {0};
	memset(&c, 0, sizeof c);
	c.target = wcstr("");
	T_EQ_INT(wire_enc_call(&b, &c), 0);
	struct wire_frame f = only_frame(&b);
	T_EQ_INT(decode_as(D_CALL, &f), BABL_EPROTO);
	wbuf_free(&b);
}

static void
case_dec_bad_magic(void)
{
	struct wbuf b = {0};
	for (int d = D_HELLO; d <= D_WELCOME; d++) {
		wbuf_reset(&b);
		encode_sample(d, &b);
		struct wire_frame f = only_frame(&b);
		uint8_t *body = exact_copy(f.p, f.len);
		for (size_t i = 0; i < 4; i++) {
			for (unsigned bit = 0; bit < 8; bit++) {
				body[i] ^= (uint8_t)(1u << bit);
				int rc = decode_bytes(d, f.type, body, f.len);
				body[i] ^= (uint8_t)(1u << bit);
				if (rc != BABL_EPROTO) {
					free(body);
					T_FAIL("%s magic byte %zu bit %u", dec_name[d], i, bit);
				}
			}
		}
		T_EQ_INT(decode_bytes(d, f.type, body, f.len), 0);
		free(body);
	}
	wbuf_free(&b);
}

static void
case_dec_exit_bad_kind(void)
{
	struct wbuf b = {0};
	for (unsigned kind = 0; kind < 256; kind++) {
		wbuf_reset(&b);
		T_EQ_INT(wire_enc_exit(&b, (uint8_t)kind, 1, "m"), 0);
		struct wire_frame f = only_frame(&b);
		int rc = decode_as(D_EXIT, &f);
		if (rc != (kind <= WIRE_SIGNALED ? 0 : BABL_EPROTO))
			T_FAIL("exit kind %u: %d", kind, rc);
	}
	wbuf_free(&b);
}

static void
case_dec_query_bad_kind(void)
{
	struct wbuf b = {0};
	for (unsigned what = 0; what < 256; what++) {
		wbuf_reset(&b);
		T_EQ_INT(wire_enc_query(&b, (uint8_t)what, "a", "b"), 0);
		struct wire_frame f = only_frame(&b);
		int ok = what >= WIRE_Q_LS && what <= WIRE_Q_REPORT;
		int rc = decode_as(D_QUERY, &f);
		if (rc != (ok ? 0 : BABL_EPROTO))
			T_FAIL("query kind %u: %d", what, rc);
	}
	wbuf_free(&b);
}

/* Encoders refusing. */

/* Put a frame in b and remember its bytes, to see that a refusal keeps them. */
static uint8_t *
preload(struct wbuf *b, size_t *n)
{
	T_EQ_INT(wire_enc_hello(b, "before"), 0);
	*n = b->len;
	return exact_copy(b->p, b->len);
}

static void
check_unchanged(const struct wbuf *b, const uint8_t *saved, size_t n)
{
	T_EQ_INT(b->len, n);
	T_EQ_MEM(b->p, saved, n);
	/* What is left still parses as the one frame it was. */
	only_frame(b);
}

static void
case_enc_too_many_args(void)
{
	static struct wire_call c;
	struct wbuf b = {0};
	size_t n;
	uint8_t *saved = preload(&b, &n);
	memset(&c, 0, sizeof c);
	c.target = wcstr("sort");
	c.nargs = WIRE_MAX_ARGS + 1;
	T_EQ_INT(wire_enc_call(&b, &c), BABL_ETOOBIG);
	check_unchanged(&b, saved, n);
	c.nargs = UINT32_MAX;
	T_EQ_INT(wire_enc_call(&b, &c), BABL_ETOOBIG);
	check_unchanged(&b, saved, n);
	free(saved);
	wbuf_free(&b);
}

static void
case_enc_arg_too_long(void)
{
	static struct wire_call c;
	struct wbuf b = {0};
	size_t n;
	uint8_t *saved = preload(&b, &n);
	char *big = malloc(WIRE_MAX_STR + 1);
	T_ASSERT(big);
	memset(big, 'z', WIRE_MAX_STR + 1);
	memset(&c, 0, sizeof c);
	c.target = wcstr("sort");
	c.nargs = 3;
	c.args[0] = wcstr("a");
	c.args[1] = wstr(big, WIRE_MAX_STR + 1);
	c.args[2] = wcstr("c");
	int rc = wire_enc_call(&b, &c);
	free(big);
	T_EQ_INT(rc, BABL_ETOOBIG);
	check_unchanged(&b, saved, n);
	free(saved);
	wbuf_free(&b);
}

/* Arguments each within bound but together beyond WIRE_MAX_BODY. */
static void
case_enc_call_body_too_big(void)
{
	static struct wire_call c;
	struct wbuf b = {0};
	size_t n;
	uint8_t *saved = preload(&b, &n);
	char *big = malloc(WIRE_MAX_STR);
	T_ASSERT(big);
	memset(big, 'w', WIRE_MAX_STR);
	memset(&c, 0, sizeof c);
	c.target = wcstr("sort");
	c.nargs = WIRE_MAX_BODY / WIRE_MAX_STR + 1;
	for (uint32_t i = 0; i < c.nargs; i++)
		c.args[i] = wstr(big, WIRE_MAX_STR);
	int rc = wire_enc_call(&b, &c);
	free(big);
	T_EQ_INT(rc, BABL_ETOOBIG);
	check_unchanged(&b, saved, n);
	free(saved);
	wbuf_free(&b);
}

static void
case_enc_bytes_bound(void)
{
	struct wbuf b = {0};
	size_t n;
	uint8_t *saved = preload(&b, &n);
	uint8_t *big = calloc(1, WIRE_MAX_BODY + 1);
	T_ASSERT(big);
	T_EQ_INT(wire_enc_bytes(&b, WIRE_DATA, big, WIRE_MAX_BODY), BABL_ETOOBIG);
	check_unchanged(&b, saved, n);
	T_EQ_INT(wire_enc_bytes(&b, WIRE_DATA, big, WIRE_MAX_BODY + 1), BABL_ETOOBIG);
	check_unchanged(&b, saved, n);
	T_EQ_INT(wire_enc_bytes(&b, WIRE_DATA, big, SIZE_MAX), BABL_ETOOBIG);
	check_unchanged(&b, saved, n);

	/* The largest payload that fits is sent and framed. */
	T_EQ_INT(wire_enc_bytes(&b, WIRE_DATA, big, WIRE_MAX_BODY - 1), 0);
	struct wire_frame f;
	size_t used;
	T_EQ_INT(wire_next(b.p + n, b.len - n, 0, &f, &used), 0);
	T_EQ_INT(used, WIRE_HDR + WIRE_MAX_BODY);
	T_EQ_INT(f.len, WIRE_MAX_BODY - 1);
	free(big);
	free(saved);
	wbuf_free(&b);
}

static void
case_enc_deploy_too_big(void)
{
	struct wbuf b = {0};
	size_t n;
	uint8_t *saved = preload(&b, &n);
	uint8_t *big = calloc(1, WIRE_MAX_BODY);
	T_ASSERT(big);
	fill_fixed();
	struct wire_deploy dep = {wstr(big, WIRE_MAX_BODY), owner, 1, prev, sig};
	T_EQ_INT(wire_enc_deploy(&b, &dep), BABL_ETOOBIG);
	check_unchanged(&b, saved, n);
	free(big);
	free(saved);
	wbuf_free(&b);
}

/* The field cursor fails sticky and reports leftovers. */
static void
case_rd_cursor(void)
{
	static const uint8_t p[] = {0, 1, 0, 0, 0, 2, 'h', 'i', 9};
	struct rd r;
	rd_init(&r, p, sizeof p);
	T_EQ_INT(rd_u16(&r), 1);
	struct wire_str s = rd_str(&r, 2);
	T_ASSERT(str_is(s, "hi", 2));
	T_EQ_INT(rd_done(&r), BABL_EPROTO); /* one byte left */
	T_EQ_INT(rd_u8(&r), 9);
	T_EQ_INT(rd_done(&r), 0);
	T_EQ_INT(rd_u8(&r), 0);
	T_EQ_INT(rd_done(&r), BABL_EPROTO);
	T_ASSERT(rd_fixed(&r, 0) == NULL);

	rd_init(&r, p + 2, sizeof p - 2);
	s = rd_str(&r, 1); /* two bytes, bound one */
	T_EQ_INT(s.len, 0);
	T_ASSERT(r.bad);
	rd_init(&r, p, 8);
	T_EQ_INT(rd_u64(&r), 0x000100000002ULL << 16 | ('h' << 8 | 'i'));
	T_EQ_INT(rd_done(&r), 0);
}

static void
case_strdup_streq(void)
{
	char *c = wire_strdup(wstr(bin, 3));
	T_ASSERT(c);
	T_ASSERT(c[0] == 'a' && c[1] == 0 && c[2] == 'b' && c[3] == 0);
	free(c);
	c = wire_strdup(wstr("", 0));
	T_EQ_STR(c, "");
	free(c);
	T_ASSERT(wire_streq(wcstr("abc"), "abc"));
	T_ASSERT(!wire_streq(wstr("abc", 2), "abc"));
	T_ASSERT(!wire_streq(wcstr("abc"), "ab"));
	T_ASSERT(!wire_streq(wstr(bin, 3), "a"));
	T_ASSERT(wire_streq(wstr("", 0), ""));
}

static const struct t_case cases[] = {
	{"rt_hello", case_rt_hello},
	{"rt_welcome", case_rt_welcome},
	{"rt_error", case_rt_error},
	{"error_long_msg", case_error_long_msg},
	{"rt_call_0", case_rt_call_0},
	{"rt_call_1", case_rt_call_1},
	{"rt_call_256", case_rt_call_256},
	{"rt_call_max_arg", case_rt_call_max_arg},
	{"rt_bytes", case_rt_bytes},
	{"rt_empty", case_rt_empty},
	{"rt_exit", case_rt_exit},
	{"rt_deploy", case_rt_deploy},
	{"rt_query", case_rt_query},
	{"rt_head", case_rt_head},
	{"chan", case_chan},
	{"hdr", case_hdr},
	{"next_prefixes", case_next_prefixes},
	{"next_back_to_back", case_next_back_to_back},
	{"next_zero_body", case_next_zero_body},
	{"next_too_big", case_next_too_big},
	{"next_unknown_type", case_next_unknown_type},
	{"dec_wrong_type", case_dec_wrong_type},
	{"dec_truncated", case_dec_truncated},
	{"dec_trailing", case_dec_trailing},
	{"dec_str_beyond_body", case_dec_str_beyond_body},
	{"dec_str_beyond_bound", case_dec_str_beyond_bound},
	{"dec_call_nargs", case_dec_call_nargs},
	{"dec_call_empty_target", case_dec_call_empty_target},
	{"dec_bad_magic", case_dec_bad_magic},
	{"dec_exit_bad_kind", case_dec_exit_bad_kind},
	{"dec_query_bad_kind", case_dec_query_bad_kind},
	{"enc_too_many_args", case_enc_too_many_args},
	{"enc_arg_too_long", case_enc_arg_too_long},
	{"enc_call_body_too_big", case_enc_call_body_too_big},
	{"enc_bytes_bound", case_enc_bytes_bound},
	{"enc_deploy_too_big", case_enc_deploy_too_big},
	{"rd_cursor", case_rd_cursor},
	{"strdup_streq", case_strdup_streq},
	{0},
};

int
main(int argc, char **argv)
{
	return t_run(argc, argv, cases);
}
