/*
 * test_bundle.c - canonical bundles, version and service ids, deploy
 * signatures, hex, and file hashing.
 *
 * Decoding failures must leave nothing allocated: the cases check that the
 * bundle comes back empty, and a run under ASan reports any leak at exit.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "err.h"
#include "wire.h"
#include "t.h"

/* Fixtures.  Their strings are borrowed: these bundles are never freed. */

static char *native_args[] = {"-n", "-r", "--key=2"};

static void
native_fixture(struct bundle *b)
{
	memset(b, 0, sizeof *b);
	b->kind = BUNDLE_NATIVE;
	b->name = "sort";
	b->path = "/usr/bin/sort";
	for (int i = 0; i < 32; i++)
		b->prog_hash[i] = (uint8_t)(i * 7 + 1);
	b->nargs = 3;
	b->args = native_args;
	bundle_default_limits(&b->lim);
}

static const char lua_src[] = "return function(s) return s:upper() end\n";

static void
lua_fixture(struct bundle *b)
{
	memset(b, 0, sizeof *b);
	b->kind = BUNDLE_LUA;
	b->name = "upper";
	b->script = "upper.lua";
	b->source = (char *)lua_src;
	b->source_len = sizeof lua_src - 1;
	b->lim.timeout_ms = 1234;
	b->lim.cpu_secs = 5;
	b->lim.mem_bytes = 256ull << 20;
	b->lim.max_input = 1ull << 40;
	b->lim.fsize = 0;
	b->lim.nproc = 1;
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

static void
encode_ok(const struct bundle *b, struct wbuf *out)
{
	wbuf_reset(out);
	T_EQ_INT(bundle_encode(b, out), 0);
}

/* Decode from an exact copy; on failure check that the bundle is empty. */
static int
decode_exact(const void *p, size_t n, struct bundle *b)
{
	uint8_t *q = exact_copy(p, n);
	int rc = bundle_decode(q, n, b);
	free(q);
	if (rc) {
		T_ASSERT(b->name == NULL && b->path == NULL && b->args == NULL &&
			 b->script == NULL && b->source == NULL && b->nargs == 0);
	}
	return rc;
}

static void
refuse(const void *p, size_t n, const char *what)
{
	struct bundle b;
	int rc = decode_exact(p, n, &b);
	if (rc != BABL_EPROTO)
		T_FAIL("%s: decoded with %d", what, rc);
}

static void
refuse_bundle(const struct bundle *in, const char *what)
{
	struct wbuf w = {0};
	encode_ok(in, &w);
	refuse(w.p, w.len, what);
	wbuf_free(&w);
}

static void
accept_bundle(const struct bundle *in, const char *what)
{
	struct wbuf w = {0};
	struct bundle b;
	encode_ok(in, &w);
	int rc = decode_exact(w.p, w.len, &b);
	bundle_free(&b);
	wbuf_free(&w);
	if (rc != 0)
		T_FAIL("%s: refused with %d", what, rc);
}

static void
same_limits(const struct bundle_limits *a, const struct bundle_limits *b)
{
	T_EQ_INT(a->timeout_ms, b->timeout_ms);
	T_EQ_INT(a->cpu_secs, b->cpu_secs);
	T_ASSERT(a->mem_bytes == b->mem_bytes);
	T_ASSERT(a->max_input == b->max_input);
	T_ASSERT(a->fsize == b->fsize);
	T_EQ_INT(a->nproc, b->nproc);
}

/* Round trips. */

static void
case_rt_native(void)
{
	struct bundle in, b;
	struct wbuf w = {0}, w2 = {0};
	native_fixture(&in);
	encode_ok(&in, &w);
	T_EQ_INT(decode_exact(w.p, w.len, &b), 0);
	T_EQ_INT(b.kind, BUNDLE_NATIVE);
	T_EQ_STR(b.name, "sort");
	T_EQ_STR(b.path, "/usr/bin/sort");
	T_EQ_MEM(b.prog_hash, in.prog_hash, 32);
	T_EQ_INT(b.nargs, 3);
	for (int i = 0; i < 3; i++)
		T_EQ_STR(b.args[i], native_args[i]);
	same_limits(&b.lim, &in.lim);
	/* Encoding the decoded bundle gives the same bytes. */
	encode_ok(&b, &w2);
	T_EQ_INT(w2.len, w.len);
	T_EQ_MEM(w2.p, w.p, w.len);
	bundle_free(&b);
	T_ASSERT(b.name == NULL && b.args == NULL && b.nargs == 0);
	bundle_free(&b); /* freeing twice is harmless after the reset */
	bundle_free(NULL);

	/* No fixed arguments at all. */
	in.nargs = 0;
	in.args = NULL;
	encode_ok(&in, &w);
	T_EQ_INT(decode_exact(w.p, w.len, &b), 0);
	T_EQ_INT(b.nargs, 0);
	encode_ok(&b, &w2);
	T_EQ_INT(w2.len, w.len);
	T_EQ_MEM(w2.p, w.p, w.len);
	bundle_free(&b);
	wbuf_free(&w);
	wbuf_free(&w2);
}

static void
case_rt_lua(void)
{
	struct bundle in, b;
	struct wbuf w = {0}, w2 = {0};
	lua_fixture(&in);
	encode_ok(&in, &w);
	T_EQ_INT(decode_exact(w.p, w.len, &b), 0);
	T_EQ_INT(b.kind, BUNDLE_LUA);
	T_EQ_STR(b.name, "upper");
	T_EQ_STR(b.script, "upper.lua");
	T_EQ_INT(b.source_len, in.source_len);
	T_EQ_MEM(b.source, lua_src, in.source_len);
	T_EQ_INT(b.source[b.source_len], 0);
	same_limits(&b.lim, &in.lim);
	encode_ok(&b, &w2);
	T_EQ_INT(w2.len, w.len);
	T_EQ_MEM(w2.p, w.p, w.len);
	bundle_free(&b);

	/* An empty script name and an empty source. */
	in.script = "";
	in.source = "";
	in.source_len = 0;
	encode_ok(&in, &w);
	T_EQ_INT(decode_exact(w.p, w.len, &b), 0);
	T_EQ_STR(b.script, "");
	T_EQ_INT(b.source_len, 0);
	T_ASSERT(b.source && b.source[0] == 0);
	bundle_free(&b);
	wbuf_free(&w);
	wbuf_free(&w2);
}

/* The source is counted, not terminated: any bytes come back. */
static void
case_rt_lua_binary_source(void)
{
	static char src[] = {'x', 0, 'y', (char)0xff, 0};
	struct bundle in, b;
	struct wbuf w = {0};
	lua_fixture(&in);
	in.source = src;
	in.source_len = sizeof src;
	encode_ok(&in, &w);
	T_EQ_INT(decode_exact(w.p, w.len, &b), 0);
	T_EQ_INT(b.source_len, sizeof src);
	T_EQ_MEM(b.source, src, sizeof src);
	bundle_free(&b);
	wbuf_free(&w);
}

/* Limits at their extremes survive. */
static void
case_rt_limits(void)
{
	struct bundle in, b;
	struct wbuf w = {0};
	native_fixture(&in);
	in.lim.timeout_ms = UINT32_MAX;
	in.lim.cpu_secs = 0;
	in.lim.mem_bytes = UINT64_MAX;
	in.lim.max_input = 0;
	in.lim.fsize = UINT64_MAX - 1;
	in.lim.nproc = UINT32_MAX;
	encode_ok(&in, &w);
	T_EQ_INT(decode_exact(w.p, w.len, &b), 0);
	same_limits(&b.lim, &in.lim);
	bundle_free(&b);
	wbuf_free(&w);
}

/* bundle_encode appends to what the buffer holds already. */
static void
case_encode_appends(void)
{
	struct bundle in;
	struct wbuf w = {0}, alone = {0};
	native_fixture(&in);
	encode_ok(&in, &alone);
	T_EQ_INT(wb_raw(&w, "prefix", 6), 0);
	T_EQ_INT(bundle_encode(&in, &w), 0);
	T_EQ_INT(w.len, 6 + alone.len);
	T_EQ_MEM(w.p, "prefix", 6);
	T_EQ_MEM(w.p + 6, alone.p, alone.len);
	wbuf_free(&w);
	wbuf_free(&alone);
}

/* Ids. */

static void
bundle_id(const struct bundle *b, uint8_t id[32])
{
	struct wbuf w = {0};
	encode_ok(b, &w);
	bundle_hash(w.p, w.len, id);
	wbuf_free(&w);
}

static void
case_id_stable(void)
{
	struct bundle a, b;
	uint8_t ia[32], ib[32];
	native_fixture(&a);
	native_fixture(&b);
	/* Equal contents in different storage. */
	static char name[] = "sort", path[] = "/usr/bin/sort";
	static char a0[] = "-n", a1[] = "-r", a2[] = "--key=2";
	static char *args[] = {a0, a1, a2};
	b.name = name;
	b.path = path;
	b.args = args;
	bundle_id(&a, ia);
	bundle_id(&b, ib);
	T_EQ_MEM(ia, ib, 32);
	bundle_id(&a, ib);
	T_EQ_MEM(ia, ib, 32);

	lua_fixture(&a);
	lua_fixture(&b);
	static char src[sizeof lua_src];
	memcpy(src, lua_src, sizeof src);
	b.source = src;
	bundle_id(&a, ia);
	bundle_id(&b, ib);
	T_EQ_MEM(ia, ib, 32);
}

#define NATIVE_CHANGES 15
#define LUA_CHANGES 10

/* Apply change i to a native fixture. */
static void
native_change(struct bundle *b, int i)
{
	static char *fewer[] = {"-n", "-r"};
	static char *other[] = {"-n", "-R", "--key=2"};
	static char *swapped[] = {"-r", "-n", "--key=2"};
	switch (i) {
	case 0: b->name = "sorT"; break;
	case 1: b->name = "sort2"; break;
	case 2: b->path = "/bin/sort"; break;
	case 3: b->prog_hash[0] ^= 1; break;
	case 4: b->prog_hash[31] ^= 0x80; break;
	case 5: b->nargs = 2; b->args = fewer; break;
	case 6: b->args = other; break;
	case 7: b->args = swapped; break;
	case 8: b->lim.timeout_ms++; break;
	case 9: b->lim.cpu_secs++; break;
	case 10: b->lim.mem_bytes++; break;
	case 11: b->lim.max_input++; break;
	case 12: b->lim.fsize++; break;
	case 13: b->lim.nproc++; break;
	case 14: b->kind = BUNDLE_LUA; b->script = ""; b->source = ""; break;
	}
}

static void
lua_change(struct bundle *b, int i)
{
	switch (i) {
	case 0: b->name = "Upper"; break;
	case 1: b->script = "upper2.lua"; break;
	case 2: b->source = "return nil\n"; b->source_len = 11; break;
	case 3: b->source_len--; break;
	case 4: b->lim.timeout_ms--; break;
	case 5: b->lim.cpu_secs--; break;
	case 6: b->lim.mem_bytes--; break;
	case 7: b->lim.max_input--; break;
	case 8: b->lim.fsize = 1; break;
	case 9: b->lim.nproc = 0; break;
	}
}

static void
case_id_changes(void)
{
	struct bundle b;
	uint8_t base[32], id[32];
	native_fixture(&b);
	bundle_id(&b, base);
	for (int i = 0; i < NATIVE_CHANGES; i++) {
		native_fixture(&b);
		native_change(&b, i);
		bundle_id(&b, id);
		if (memcmp(id, base, 32) == 0)
			T_FAIL("native change %d keeps the id", i);
	}
	lua_fixture(&b);
	bundle_id(&b, base);
	for (int i = 0; i < LUA_CHANGES; i++) {
		lua_fixture(&b);
		lua_change(&b, i);
		bundle_id(&b, id);
		if (memcmp(id, base, 32) == 0)
			T_FAIL("lua change %d keeps the id", i);
	}
}

/* Decoding refuses whatever bundle_encode would not have produced. */

static void
case_refuse_trailing(void)
{
	struct bundle in;
	struct wbuf w = {0};
	native_fixture(&in);
	encode_ok(&in, &w);
	T_EQ_INT(wb_u8(&w, 0), 0);
	refuse(w.p, w.len, "native plus a byte");
	lua_fixture(&in);
	encode_ok(&in, &w);
	T_EQ_INT(wb_raw(&w, "junk", 4), 0);
	refuse(w.p, w.len, "lua plus four bytes");
	wbuf_free(&w);
}

static void
case_refuse_truncated(void)
{
	struct bundle in;
	struct wbuf w = {0};
	for (int k = 0; k < 2; k++) {
		if (k == 0)
			native_fixture(&in);
		else
			lua_fixture(&in);
		encode_ok(&in, &w);
		for (size_t n = 0; n < w.len; n++) {
			struct bundle b;
			int rc = decode_exact(w.p, n, &b);
			if (rc != BABL_EPROTO)
				T_FAIL("%s cut to %zu of %zu: %d",
				       k ? "lua" : "native", n, w.len, rc);
		}
	}
	wbuf_free(&w);
}

/* The header: 8 bytes of magic, a 2-byte format, a kind byte. */
static void
case_refuse_header(void)
{
	struct bundle in;
	struct wbuf w = {0};
	native_fixture(&in);
	encode_ok(&in, &w);
	uint8_t *p = exact_copy(w.p, w.len);
	for (size_t i = 0; i < 8; i++) {
		p[i] ^= 0x20;
		refuse(p, w.len, "magic");
		p[i] ^= 0x20;
	}
	/* Format versions other than the one written. */
	static const uint16_t fmts[] = {0, 2, 0x0100, 0xffff};
	uint8_t f0 = p[8], f1 = p[9];
	for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
		if (fmts[i] == (uint16_t)(f0 << 8 | f1))
			continue;
		p[8] = (uint8_t)(fmts[i] >> 8);
		p[9] = (uint8_t)fmts[i];
		refuse(p, w.len, "format");
	}
	p[8] = f0;
	p[9] = f1;
	/* Kinds other than native and lua. */
	T_EQ_INT(p[10], BUNDLE_NATIVE);
	static const uint8_t kinds[] = {0, 3, 0x81, 0xff};
	for (size_t i = 0; i < sizeof kinds; i++) {
		p[10] = kinds[i];
		refuse(p, w.len, "kind");
	}
	/* A native body read as lua does not parse either. */
	p[10] = BUNDLE_LUA;
	refuse(p, w.len, "native body as lua");
	p[10] = BUNDLE_NATIVE;
	struct bundle b;
	T_EQ_INT(decode_exact(p, w.len, &b), 0);
	bundle_free(&b);
	free(p);
	wbuf_free(&w);
}

static void
case_refuse_path(void)
{
	static const char *bad[] = {"bin/sort", "", "./sort", "sort", " /bin/sort"};
	struct bundle in;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		native_fixture(&in);
		in.path = (char *)bad[i];
		refuse_bundle(&in, bad[i]);
	}
	/* The bound on the path is 4096 bytes. */
	char *p = malloc(4098);
	T_ASSERT(p);
	memset(p, 'p', 4097);
	p[0] = '/';
	p[4096] = 0;
	native_fixture(&in);
	in.path = p;
	accept_bundle(&in, "path of 4096");
	p[4096] = 'p';
	p[4097] = 0;
	refuse_bundle(&in, "path of 4097");
	free(p);
}

static void
case_refuse_name(void)
{
	static const char *bad[] = {
		"", ".hidden", "-x", "a b", "a/b", "caf\xc3\xa9", "x:y", "new\nline",
		"a@1",
		"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm", /* 65 */
	};
	struct bundle in;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		native_fixture(&in);
		in.name = (char *)bad[i];
		refuse_bundle(&in, bad[i]);
		lua_fixture(&in);
		in.name = (char *)bad[i];
		refuse_bundle(&in, bad[i]);
	}
	native_fixture(&in);
	in.name = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl";
	accept_bundle(&in, "name of 64");
}

/*
 * A NUL inside a C-string field: encode with a marker character, then turn
 * the marker into a NUL in the bytes.
 */
static void
refuse_with_nul(struct bundle *in, const char *field)
{
	struct wbuf w = {0};
	encode_ok(in, &w);
	uint8_t *q = memchr(w.p, '~', w.len);
	T_ASSERT(q);
	T_ASSERT(!memchr(q + 1, '~', w.len - (size_t)(q + 1 - w.p)));
	*q = 0;
	refuse(w.p, w.len, field);
	wbuf_free(&w);
}

static void
case_refuse_nul(void)
{
	struct bundle in;
	static char *args[] = {"-n", "x~y"};
	native_fixture(&in);
	in.name = "so~rt";
	refuse_with_nul(&in, "name");
	native_fixture(&in);
	in.path = "/usr/bin/so~rt";
	accept_bundle(&in, "path with a tilde");
	refuse_with_nul(&in, "path");
	native_fixture(&in);
	in.nargs = 2;
	in.args = args;
	accept_bundle(&in, "argument with a tilde");
	refuse_with_nul(&in, "argument");
	lua_fixture(&in);
	in.script = "up~per.lua";
	accept_bundle(&in, "script with a tilde");
	refuse_with_nul(&in, "script");
}

static void
case_refuse_nargs(void)
{
	static char *args[70];
	struct bundle in;
	for (int i = 0; i < 70; i++)
		args[i] = "a";
	native_fixture(&in);
	in.args = args;
	in.nargs = 64;
	accept_bundle(&in, "64 arguments");
	in.nargs = 65;
	refuse_bundle(&in, "65 arguments");
	in.nargs = 70;
	refuse_bundle(&in, "70 arguments");

	/* A huge count with nothing behind it must not be allocated. */
	struct wbuf w = {0};
	native_fixture(&in);
	in.nargs = 0;
	encode_ok(&in, &w);
	/* The count sits after magic, format, kind, name, path and hash. */
	size_t off = 8 + 2 + 1 + 4 + strlen(in.name) + 4 + strlen(in.path) + 32;
	T_EQ_INT(be32_get(w.p + off), 0);
	be32_put(w.p + off, UINT32_MAX);
	refuse(w.p, w.len, "count 0xffffffff");
	be32_put(w.p + off, 1);
	refuse(w.p, w.len, "count 1 without an argument");
	wbuf_free(&w);
}

static void
case_refuse_source(void)
{
	struct bundle in;
	char *src = malloc(BUNDLE_MAX_SOURCE + 1);
	T_ASSERT(src);
	memset(src, '-', BUNDLE_MAX_SOURCE + 1);
	lua_fixture(&in);
	in.source = src;
	in.source_len = BUNDLE_MAX_SOURCE;
	accept_bundle(&in, "source at the bound");
	in.source_len = BUNDLE_MAX_SOURCE + 1;
	refuse_bundle(&in, "source beyond the bound");
	free(src);
}

static void
case_name_ok(void)
{
	static const struct {
		const char *name;
		int ok;
	} v[] = {
		{"a", 1}, {"Z", 1}, {"0", 1}, {"_", 1}, {"_x", 1}, {"sort", 1},
		{"a.b-c_d", 1}, {"v1.2.3", 1}, {"a-", 1}, {"a.", 1}, {"9lives", 1},
		{"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl", 1},
		{"", 0}, {".", 0}, {"..", 0}, {".a", 0}, {"-", 0}, {"-a", 0},
		{"a b", 0}, {"a/b", 0}, {"/a", 0}, {"a\\b", 0}, {"a@b", 0},
		{"a:b", 0}, {"a*", 0}, {"a\t", 0}, {"\xc3\xa9", 0}, {"a\x7f", 0},
		{"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm", 0},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		if (bundle_name_ok(v[i].name) != v[i].ok)
			T_FAIL("bundle_name_ok(\"%s\") != %d", v[i].name, v[i].ok);
}

/* Service ids, deploy messages, signatures. */

static void
case_service_id(void)
{
	uint8_t o1[32], o2[32], a[32], b[32];
	memset(o1, 1, 32);
	memset(o2, 1, 32);
	o2[31] = 2;
	bundle_service_id(o1, "sort", a);
	/* The same owner and name in other storage. */
	uint8_t o1c[32];
	char name[] = "sort";
	memcpy(o1c, o1, 32);
	bundle_service_id(o1c, name, b);
	T_EQ_MEM(a, b, 32);
	bundle_service_id(o2, "sort", b);
	T_ASSERT(memcmp(a, b, 32) != 0);
	bundle_service_id(o1, "Sort", b);
	T_ASSERT(memcmp(a, b, 32) != 0);
	bundle_service_id(o1, "sort2", b);
	T_ASSERT(memcmp(a, b, 32) != 0);
	bundle_service_id(o1, "sor", b);
	T_ASSERT(memcmp(a, b, 32) != 0);
	/* Not the plain hash of the name or of owner and name. */
	bundle_hash("sort", 4, b);
	T_ASSERT(memcmp(a, b, 32) != 0);
}

static void
case_deploy_msg(void)
{
	uint8_t sid[32], bid[32], prev[32];
	uint8_t base[BUNDLE_MSG_LEN], m[BUNDLE_MSG_LEN];
	memset(sid, 0x11, 32);
	memset(bid, 0x22, 32);
	memset(prev, 0, 32);
	bundle_deploy_msg(sid, 1, bid, prev, base);
	bundle_deploy_msg(sid, 1, bid, prev, m);
	T_EQ_MEM(base, m, BUNDLE_MSG_LEN);

	for (int bit = 0; bit < 256; bit++) {
		uint8_t x[32];
		memcpy(x, sid, 32);
		x[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		bundle_deploy_msg(x, 1, bid, prev, m);
		if (memcmp(base, m, BUNDLE_MSG_LEN) == 0)
			T_FAIL("sid bit %d", bit);
		memcpy(x, bid, 32);
		x[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		bundle_deploy_msg(sid, 1, x, prev, m);
		if (memcmp(base, m, BUNDLE_MSG_LEN) == 0)
			T_FAIL("bid bit %d", bit);
		memcpy(x, prev, 32);
		x[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		bundle_deploy_msg(sid, 1, bid, x, m);
		if (memcmp(base, m, BUNDLE_MSG_LEN) == 0)
			T_FAIL("prev bit %d", bit);
	}
	static const uint64_t versions[] = {0, 2, 1ull << 32, 1ull << 63, UINT64_MAX};
	for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
		bundle_deploy_msg(sid, versions[i], bid, prev, m);
		T_ASSERT(memcmp(base, m, BUNDLE_MSG_LEN) != 0);
	}
	/* Bundle id and previous id are not interchangeable. */
	bundle_deploy_msg(sid, 1, prev, bid, m);
	T_ASSERT(memcmp(base, m, BUNDLE_MSG_LEN) != 0);
}

static void
case_sign_verify(void)
{
	uint8_t seed[32], pk[32], sk[64], pk2[32], sk2[64];
	uint8_t sid[32], bid[32], prev[32], msg[BUNDLE_MSG_LEN], sig[64], sig2[64];
	T_ASSERT(sodium_init() >= 0);
	memset(seed, 7, 32);
	T_EQ_INT(crypto_sign_seed_keypair(pk, sk, seed), 0);
	seed[0] = 8;
	T_EQ_INT(crypto_sign_seed_keypair(pk2, sk2, seed), 0);
	bundle_service_id(pk, "sort", sid);
	memset(bid, 0x5a, 32);
	memset(prev, 0, 32);
	bundle_deploy_msg(sid, 1, bid, prev, msg);

	bundle_sign(msg, sk, sig);
	T_EQ_INT(bundle_verify(msg, pk, sig), 0);
	/* Signing is deterministic. */
	bundle_sign(msg, sk, sig2);
	T_EQ_MEM(sig, sig2, 64);
	/* Another key's signature, and this signature under another key. */
	bundle_sign(msg, sk2, sig2);
	T_EQ_INT(bundle_verify(msg, pk2, sig2), 0);
	T_EQ_INT(bundle_verify(msg, pk, sig2), BABL_EPERM);
	T_EQ_INT(bundle_verify(msg, pk2, sig), BABL_EPERM);

	for (int bit = 0; bit < BUNDLE_MSG_LEN * 8; bit++) {
		msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int rc = bundle_verify(msg, pk, sig);
		msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (rc != BABL_EPERM)
			T_FAIL("message bit %d flipped: %d", bit, rc);
	}
	for (int bit = 0; bit < 64 * 8; bit++) {
		sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int rc = bundle_verify(msg, pk, sig);
		sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (rc != BABL_EPERM)
			T_FAIL("signature bit %d flipped: %d", bit, rc);
	}
	for (int bit = 0; bit < 32 * 8; bit++) {
		pk[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int rc = bundle_verify(msg, pk, sig);
		pk[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (rc != BABL_EPERM)
			T_FAIL("key bit %d flipped: %d", bit, rc);
	}
	T_EQ_INT(bundle_verify(msg, pk, sig), 0);
	memset(sig2, 0, 64);
	T_EQ_INT(bundle_verify(msg, pk, sig2), BABL_EPERM);
}

/* Hex. */

static void
case_hex(void)
{
	uint8_t all[256], back[256];
	char hex[513];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	hex_encode(all, 256, hex);
	T_EQ_INT(strlen(hex), 512);
	T_ASSERT(strncmp(hex, "000102", 6) == 0);
	T_ASSERT(strcmp(hex + 506, "fdfeff") == 0);
	T_EQ_INT(hex_decode(hex, back, 256), 0);
	T_EQ_MEM(all, back, 256);

	/* Upper case is read as well. */
	uint8_t two[2];
	T_EQ_INT(hex_decode("aBcD", two, 2), 0);
	T_EQ_INT(two[0], 0xab);
	T_EQ_INT(two[1], 0xcd);

	/* Nothing at all. */
	hex_encode(all, 0, hex);
	T_EQ_STR(hex, "");
	T_EQ_INT(hex_decode("", back, 0), 0);

	static const char *bad[] = {
		"", "0", "000", "0g", "g0", " 00", "0x", "-1", "zz", "0 ", "0\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (hex_decode(bad[i], two, 1) != BABL_EINPUT)
			T_FAIL("hex_decode(\"%s\") accepted", bad[i]);
	T_EQ_INT(hex_decode("0102", two, 1), BABL_EINPUT);
	T_EQ_INT(hex_decode("01", two, 2), BABL_EINPUT);
}

/* File hashing. */

/* Write n pattern bytes to a new temporary file; its name goes to path. */
static int
temp_file(char path[64], const uint8_t *p, size_t n)
{
	strcpy(path, "/tmp/babl-test-bundle-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(fd, p + off, n - off);
		if (w <= 0) {
			close(fd);
			unlink(path);
			return -1;
		}
		off += (size_t)w;
	}
	return fd;
}

static void
case_hash_file(void)
{
	/* Sizes around the 64 KiB read buffer, and none. */
	static const size_t sizes[] = {0, 1, 65535, 65536, 65537, 200001};
	size_t max = 200001;
	uint8_t *data = malloc(max);
	T_ASSERT(data);
	for (size_t i = 0; i < max; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char path[64];
		uint8_t want[32], by_path[32], by_fd[32];
		int fd = temp_file(path, data, sizes[i]);
		T_ASSERT(fd >= 0);
		int rc1 = bundle_hash_file(path, by_path);
		int rc2 = bundle_hash_fd(fd, by_fd);
		close(fd);
		unlink(path);
		bundle_hash(data, sizes[i], want);
		T_EQ_INT(rc1, 0);
		T_EQ_INT(rc2, 0);
		T_EQ_MEM(by_path, want, 32);
		T_EQ_MEM(by_fd, want, 32);
		/* A missing file, now that it is gone. */
		T_EQ_INT(bundle_hash_file(path, by_path), BABL_ENOENT);
	}
	free(data);
	uint8_t h[32];
	T_EQ_INT(bundle_hash_file("/nonexistent/babl/none", h), BABL_ENOENT);
}

static const struct t_case cases[] = {
	{"rt_native", case_rt_native},
	{"rt_lua", case_rt_lua},
	{"rt_lua_binary_source", case_rt_lua_binary_source},
	{"rt_limits", case_rt_limits},
	{"encode_appends", case_encode_appends},
	{"id_stable", case_id_stable},
	{"id_changes", case_id_changes},
	{"refuse_trailing", case_refuse_trailing},
	{"refuse_truncated", case_refuse_truncated},
	{"refuse_header", case_refuse_header},
	{"refuse_path", case_refuse_path},
	{"refuse_name", case_refuse_name},
	{"refuse_nul", case_refuse_nul},
	{"refuse_nargs", case_refuse_nargs},
	{"refuse_source", case_refuse_source},
	{"name_ok", case_name_ok},
	{"service_id", case_service_id},
	{"deploy_msg", case_deploy_msg},
	{"sign_verify", case_sign_verify},
	{"hex", case_hex},
	{"hash_file", case_hash_file},
	{0},
};

int
main(int argc, char **argv)
{
	return t_run(argc, argv, cases);
}
