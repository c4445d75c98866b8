/*
 * fuzz_wire.c - libFuzzer harness for the frame codec.
 *
 * The input is read as a stream of frames.  Each frame that wire_next finds
 * is copied into an allocation of exactly its size and given to every
 * decoder.  Only the decoder of its type may accept it; what it accepts is
 * encoded again, and the new frame must be the old one byte for byte and
 * decode to the same fields.  An abort is how a harness reports a failure.
 *
 * Built with -DFUZZ_SEEDS and without libFuzzer, this file is instead a
 * program that writes a few valid inputs into the directory it is given
 * (tests/fuzz/run does this to seed the corpus).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(e)                                                           \
	do {                                                               \
		if (!(e)) {                                                \
			fprintf(stderr, "fuzz_wire: %s:%d: %s\n", __FILE__,  \
				__LINE__, #e);                             \
			abort();                                           \
		}                                                          \
	} while (0)

static int
same_str(struct wire_str a, struct wire_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* A borrowed string must lie inside the frame it came from. */
static int
inside(struct wire_str s, const struct wire_frame *f)
{
	if (s.len == 0)
		return 1;
	const uint8_t *p = (const uint8_t *)s.p;
	return p >= f->p && s.len <= f->len && p - f->p <= (ptrdiff_t)(f->len - s.len);
}

static int
has_nul(struct wire_str s)
{
	return s.len && memchr(s.p, 0, s.len) != NULL;
}

/* The one frame in b; it must be f again, byte for byte. */
static struct wire_frame
reparse(const struct wbuf *b, const struct wire_frame *f)
{
	struct wire_frame g;
	size_t used = 0;
	CHECK(wire_next(b->p, b->len, 0, &g, &used) == 0);
	CHECK(used == b->len);
	CHECK(g.type == f->type);
	CHECK(g.len == f->len);
	CHECK(f->len == 0 || memcmp(g.p, f->p, f->len) == 0);
	return g;
}

static void
check_greeting(const struct wire_frame *f, uint16_t version, struct wire_str name)
{
	struct wbuf b = {0};
	CHECK(inside(name, f));
	CHECK(name.len <= 256);
	if (has_nul(name))
		return;
	char *s = wire_strdup(name);
	CHECK(s);
	if (f->type == WIRE_HELLO)
		CHECK(wire_enc_hello(&b, s) == 0);
	else
		CHECK(wire_enc_welcome(&b, s) == 0);
	free(s);
	struct wire_frame g;
	size_t used;
	CHECK(wire_next(b.p, b.len, 0, &g, &used) == 0 && used == b.len);
	/* The encoder always writes WIRE_VERSION; otherwise bytes agree. */
	if (version == WIRE_VERSION)
		reparse(&b, f);
	if (f->type == WIRE_HELLO) {
		struct wire_hello h;
		CHECK(wire_dec_hello(&g, &h) == 0);
		CHECK(h.version == WIRE_VERSION && same_str(h.agent, name));
	} else {
		struct wire_welcome w;
		CHECK(wire_dec_welcome(&g, &w) == 0);
		CHECK(w.version == WIRE_VERSION && same_str(w.node, name));
	}
	wbuf_free(&b);
}

static void
check_error(const struct wire_frame *f, const struct wire_error *m)
{
	struct wbuf b = {0};
	struct wire_error m2;
	CHECK(inside(m->msg, f) && m->msg.len <= WIRE_MAX_STR);
	if (has_nul(m->msg))
		return;
	char *s = wire_strdup(m->msg);
	CHECK(s);
	CHECK(wire_enc_error(&b, m->code, s) == 0);
	free(s);
	struct wire_frame g = reparse(&b, f);
	CHECK(wire_dec_error(&g, &m2) == 0);
	CHECK(m2.code == m->code && same_str(m2.msg, m->msg));
	wbuf_free(&b);
}

static void
check_call(const struct wire_frame *f, const struct wire_call *m)
{
	static struct wire_call m2;
	struct wbuf b = {0};
	CHECK(m->nargs <= WIRE_MAX_ARGS);
	CHECK(m->target.len > 0 && m->target.len <= WIRE_MAX_STR);
	CHECK(inside(m->target, f) && inside(m->idkey, f));
	for (uint32_t i = 0; i < m->nargs; i++)
		CHECK(inside(m->args[i], f) && m->args[i].len <= WIRE_MAX_STR);
	CHECK(wire_enc_call(&b, m) == 0);
	struct wire_frame g = reparse(&b, f);
	CHECK(wire_dec_call(&g, &m2) == 0);
	CHECK(same_str(m2.target, m->target) && same_str(m2.idkey, m->idkey));
	CHECK(m2.timeout_ms == m->timeout_ms && m2.flags == m->flags);
	CHECK(m2.nargs == m->nargs);
	for (uint32_t i = 0; i < m->nargs; i++)
		CHECK(same_str(m2.args[i], m->args[i]));
	wbuf_free(&b);
}

static void
check_exit(const struct wire_frame *f, const struct wire_exit *m)
{
	struct wbuf b = {0};
	struct wire_exit m2;
	CHECK(m->kind <= WIRE_SIGNALED);
	CHECK(inside(m->msg, f) && m->msg.len <= WIRE_MAX_STR);
	if (has_nul(m->msg))
		return;
	char *s = wire_strdup(m->msg);
	CHECK(s);
	CHECK(wire_enc_exit(&b, m->kind, m->code, s) == 0);
	free(s);
	struct wire_frame g = reparse(&b, f);
	CHECK(wire_dec_exit(&g, &m2) == 0);
	CHECK(m2.kind == m->kind && m2.code == m->code && same_str(m2.msg, m->msg));
	wbuf_free(&b);
}

static void
check_deploy(const struct wire_frame *f, const struct wire_deploy *m)
{
	struct wbuf b = {0};
	struct wire_deploy m2;
	CHECK(inside(m->bundle, f));
	CHECK(m->owner && m->prev && m->sig);
	CHECK(wire_enc_deploy(&b, m) == 0);
	struct wire_frame g = reparse(&b, f);
	CHECK(wire_dec_deploy(&g, &m2) == 0);
	CHECK(same_str(m2.bundle, m->bundle) && m2.version == m->version);
	CHECK(memcmp(m2.owner, m->owner, 32) == 0);
	CHECK(memcmp(m2.prev, m->prev, 32) == 0);
	CHECK(memcmp(m2.sig, m->sig, 64) == 0);
	wbuf_free(&b);
}

static void
check_query(const struct wire_frame *f, const struct wire_query_msg *m)
{
	struct wbuf b = {0};
	struct wire_query_msg m2;
	CHECK(m->what >= WIRE_Q_LS);
	CHECK(inside(m->arg, f) && inside(m->arg2, f));
	if (has_nul(m->arg) || has_nul(m->arg2))
		return;
	char *a = wire_strdup(m->arg), *a2 = wire_strdup(m->arg2);
	CHECK(a && a2);
	CHECK(wire_enc_query(&b, m->what, a, a2) == 0);
	free(a);
	free(a2);
	struct wire_frame g = reparse(&b, f);
	CHECK(wire_dec_query(&g, &m2) == 0);
	CHECK(m2.what == m->what && same_str(m2.arg, m->arg) &&
	      same_str(m2.arg2, m->arg2));
	wbuf_free(&b);
}

static void
check_head(const struct wire_frame *f, const struct wire_head *m)
{
	struct wbuf b = {0};
	struct wire_head m2;
	CHECK(m->vid && m->owner);
	CHECK(wire_enc_head(&b, m->version, m->vid, m->owner) == 0);
	struct wire_frame g = reparse(&b, f);
	CHECK(wire_dec_head(&g, &m2) == 0);
	CHECK(m2.version == m->version && memcmp(m2.vid, m->vid, 32) == 0 &&
	      memcmp(m2.owner, m->owner, 32) == 0);
	wbuf_free(&b);
}

/* Frames whose payload is their bytes. */
static void
check_bytes(const struct wire_frame *f)
{
	struct wbuf b = {0};
	CHECK(wire_enc_bytes(&b, f->type, f->p, f->len) == 0);
	reparse(&b, f);
	if (f->len == 0) {
		wbuf_reset(&b);
		CHECK(wire_enc_empty(&b, f->type) == 0);
		reparse(&b, f);
	}
	wbuf_free(&b);
}

/* Every decoder on one frame, whose body is an exact allocation. */
static void
decode_all(const struct wire_frame *f)
{
	static struct wire_call call;
	struct wire_hello hello;
	struct wire_welcome welcome;
	struct wire_error error;
	struct wire_exit ex;
	struct wire_deploy deploy;
	struct wire_query_msg query;
	struct wire_head head;
	int ok;

	ok = wire_dec_hello(f, &hello) == 0;
	CHECK(!ok || f->type == WIRE_HELLO);
	if (ok)
		check_greeting(f, hello.version, hello.agent);
	ok = wire_dec_welcome(f, &welcome) == 0;
	CHECK(!ok || f->type == WIRE_WELCOME);
	if (ok)
		check_greeting(f, welcome.version, welcome.node);
	ok = wire_dec_error(f, &error) == 0;
	CHECK(!ok || f->type == WIRE_ERROR);
	if (ok)
		check_error(f, &error);
	ok = wire_dec_call(f, &call) == 0;
	CHECK(!ok || f->type == WIRE_CALL);
	if (ok)
		check_call(f, &call);
	ok = wire_dec_exit(f, &ex) == 0;
	CHECK(!ok || f->type == WIRE_EXIT);
	if (ok)
		check_exit(f, &ex);
	ok = wire_dec_deploy(f, &deploy) == 0;
	CHECK(!ok || f->type == WIRE_DEPLOY);
	if (ok)
		check_deploy(f, &deploy);
	ok = wire_dec_query(f, &query) == 0;
	CHECK(!ok || f->type == WIRE_QUERY);
	if (ok)
		check_query(f, &query);
	ok = wire_dec_head(f, &head) == 0;
	CHECK(!ok || f->type == WIRE_HEAD);
	if (ok)
		check_head(f, &head);
	uint32_t chan;
	const uint8_t *cp;
	size_t cn;
	ok = wire_dec_chan(f, &chan, &cp, &cn) == 0;
	CHECK(!ok || (f->type == WIRE_CHAN && chan < WIRE_CHANS && cp == f->p + 4 &&
	    cn + 4 == f->len));
	if (ok) { /* the channel's bytes are frames too */
		size_t u;
		struct wire_frame g;
		while (wire_next(cp, cn, 0, &g, &u) == 0) {
			CHECK(u <= cn);
			cp += u;
			cn -= u;
		}
	}

	switch (f->type) {
	case WIRE_DATA: case WIRE_OUT: case WIRE_ERRB: case WIRE_TEXT:
	case WIRE_EOF: case WIRE_CANCEL:
		check_bytes(f);
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0, used;
	struct wire_frame f;
	int rc;

	while ((rc = wire_next(data + pos, size - pos, 0, &f, &used)) == 0) {
		CHECK(used >= WIRE_HDR + 1 && used <= size - pos);
		CHECK(f.p == data + pos + WIRE_HDR + 1 && f.len == used - WIRE_HDR - 1);
		CHECK(f.len + 1 <= WIRE_MAX_BODY);

		/* A caller's bound equal to the body passes it, one less not. */
		struct wire_frame g;
		size_t u2;
		CHECK(wire_next(data + pos, size - pos, f.len + 1, &g, &u2) == 0);
		CHECK(u2 == used && g.type == f.type && g.len == f.len);
		if (f.len > 0)
			CHECK(wire_next(data + pos, size - pos, f.len, &g, &u2) ==
			      BABL_ETOOBIG);

		/* The frame short of its last byte is not there yet. */
		uint8_t *cut = malloc(used - 1);
		CHECK(cut);
		memcpy(cut, data + pos, used - 1);
		CHECK(wire_next(cut, used - 1, 0, &g, &u2) == BABL_EAGAIN);
		free(cut);

		uint8_t *body = malloc(f.len ? f.len : 1);
		CHECK(body);
		if (f.len)
			memcpy(body, f.p, f.len);
		struct wire_frame own = {f.type, body, f.len};
		decode_all(&own);
		free(body);
		pos += used;
	}
	CHECK(rc == BABL_EAGAIN || rc == BABL_EPROTO || rc == BABL_ETOOBIG);
	if (rc == BABL_EAGAIN && size - pos >= WIRE_HDR)
		CHECK(be32_get(data + pos) > size - pos - WIRE_HDR);
	return 0;
}

#ifdef FUZZ_SEEDS
static void
put_seed(const char *dir, int n, const struct wbuf *b)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/seed-%02d", dir, n);
	FILE *fp = fopen(path, "wb");
	CHECK(fp);
	CHECK(fwrite(b->p, 1, b->len, fp) == b->len);
	CHECK(fclose(fp) == 0);
	/* The seed goes through the harness as it would under libFuzzer. */
	LLVMFuzzerTestOneInput(b->p, b->len);
}

int
main(int argc, char **argv)
{
	static struct wire_call c;
	static const uint8_t bin[] = {'x', 0, 0xff, '\n'};
	uint8_t key[32], prev[32], sig[64];
	struct wbuf b = {0}, all = {0};
	int n = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	memset(key, 0x11, sizeof key);
	memset(prev, 0, sizeof prev);
	memset(sig, 0x22, sizeof sig);
	c.target = (struct wire_str){"sort", 4};
	c.idkey = (struct wire_str){"k1", 2};
	c.timeout_ms = 1000;
	c.flags = WIRE_CALL_PROGRESS;
	c.nargs = 2;
	c.args[0] = (struct wire_str){"-n", 2};
	c.args[1] = (struct wire_str){"", 0};
	struct wire_deploy dep = {{"BABLBNDL", 8}, key, 1, prev, sig};

	for (int i = 0; i <= 13; i++) {
		wbuf_reset(&b);
		int rc = BABL_EINTERNAL;
		switch (i) {
		case 0: rc = wire_enc_hello(&b, "babl/seed"); break;
		case 1: rc = wire_enc_welcome(&b, "node"); break;
		case 2: rc = wire_enc_error(&b, BABL_ENOSERVICE, "no such service"); break;
		case 3: rc = wire_enc_call(&b, &c); break;
		case 4: rc = wire_enc_bytes(&b, WIRE_DATA, bin, sizeof bin); break;
		case 5: rc = wire_enc_bytes(&b, WIRE_OUT, "out\n", 4); break;
		case 6: rc = wire_enc_bytes(&b, WIRE_ERRB, "", 0); break;
		case 7: rc = wire_enc_empty(&b, WIRE_EOF); break;
		case 8: rc = wire_enc_empty(&b, WIRE_CANCEL); break;
		case 9: rc = wire_enc_exit(&b, WIRE_SIGNALED, 9, "memory limit"); break;
		case 10: rc = wire_enc_deploy(&b, &dep); break;
		case 11: rc = wire_enc_query(&b, WIRE_Q_INFO, "sort", ""); break;
		case 12: rc = wire_enc_head(&b, 3, prev, key); break;
		case 13: rc = wire_enc_bytes(&b, WIRE_TEXT, "{}", 2); break;
		}
		CHECK(rc == 0);
		put_seed(argv[1], n++, &b);
		CHECK(wb_raw(&all, b.p, b.len) == 0);
	}
	/* All of them back to back, as a connection would carry them. */
	put_seed(argv[1], n++, &all);
	wbuf_free(&b);
	wbuf_free(&all);
	return 0;
}
#endif
