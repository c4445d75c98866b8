/* wire.c - frame and message codecs; see wire.h. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "wire.h"

void
be32_put(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

void
be64_put(uint8_t *p, uint64_t v)
{
	be32_put(p, v >> 32);
	be32_put(p + 4, (uint32_t)v);
}

uint32_t
be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t
be64_get(const uint8_t *p)
{
	return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

/* Reading cursor. */

const uint8_t *
rd_fixed(struct rd *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = 1;
		return NULL;
	}
	const uint8_t *q = r->p;
	r->p += n;
	return q;
}

uint8_t
rd_u8(struct rd *r)
{
	const uint8_t *q = rd_fixed(r, 1);
	return q ? q[0] : 0;
}

uint16_t
rd_u16(struct rd *r)
{
	const uint8_t *q = rd_fixed(r, 2);
	return q ? (uint16_t)(q[0] << 8 | q[1]) : 0;
}

uint32_t
rd_u32(struct rd *r)
{
	const uint8_t *q = rd_fixed(r, 4);
	return q ? be32_get(q) : 0;
}

uint64_t
rd_u64(struct rd *r)
{
	const uint8_t *q = rd_fixed(r, 8);
	return q ? be64_get(q) : 0;
}

struct wire_str
rd_str(struct rd *r, size_t max)
{
	struct wire_str s = {"", 0};
	uint32_t n = rd_u32(r);
	if (n > max) {
		r->bad = 1;
		return s;
	}
	const uint8_t *q = rd_fixed(r, n);
	if (q) {
		s.p = (const char *)q;
		s.len = n;
	}
	return s;
}

int
rd_done(const struct rd *r)
{
	return r->bad || r->p != r->end ? BABL_EPROTO : 0;
}

/* Writing buffer. */

void
wbuf_free(struct wbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

void
wbuf_reset(struct wbuf *b)
{
	b->len = 0;
}

static int
wb_reserve(struct wbuf *b, size_t n)
{
	if (n > SIZE_MAX / 2 - b->len)
		return BABL_ETOOBIG;
	if (b->len + n <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return BABL_ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int
wb_raw(struct wbuf *b, const void *p, size_t n)
{
	int rc = wb_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int
wb_u8(struct wbuf *b, uint8_t v)
{
	return wb_raw(b, &v, 1);
}

int
wb_u16(struct wbuf *b, uint16_t v)
{
	uint8_t q[2] = {v >> 8, (uint8_t)v};
	return wb_raw(b, q, 2);
}

int
wb_u32(struct wbuf *b, uint32_t v)
{
	uint8_t q[4];
	be32_put(q, v);
	return wb_raw(b, q, 4);
}

int
wb_u64(struct wbuf *b, uint64_t v)
{
	uint8_t q[8];
	be64_put(q, v);
	return wb_raw(b, q, 8);
}

int
wb_str(struct wbuf *b, const void *p, size_t n)
{
	if (n > UINT32_MAX)
		return BABL_ETOOBIG;
	int rc = wb_u32(b, (uint32_t)n);
	return rc ? rc : wb_raw(b, p, n);
}

int
wb_cstr(struct wbuf *b, const char *s)
{
	return wb_str(b, s ? s : "", s ? strlen(s) : 0);
}

/* Frames. */

void
wire_hdr(uint8_t hdr[5], uint8_t type, size_t n)
{
	be32_put(hdr, (uint32_t)(n + 1));
	hdr[4] = type;
}

static int
known_type(uint8_t t)
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

static int
next_frame(const uint8_t *buf, size_t len, size_t max, struct wire_frame *f,
    size_t *used, int any)
{
	if (max == 0 || max > WIRE_MAX_BODY)
		max = WIRE_MAX_BODY;
	if (len < WIRE_HDR)
		return BABL_EAGAIN;
	uint32_t n = be32_get(buf);
	if (n == 0)
		return BABL_EPROTO;
	if (n > max)
		return BABL_ETOOBIG;
	if (len > WIRE_HDR && !any && !known_type(buf[WIRE_HDR]))
		return BABL_EPROTO;
	if (len - WIRE_HDR < n)
		return BABL_EAGAIN;
	f->type = buf[WIRE_HDR];
	f->p = buf + WIRE_HDR + 1;
	f->len = n - 1;
	*used = WIRE_HDR + n;
	return 0;
}

int
wire_next(const uint8_t *buf, size_t len, size_t max, struct wire_frame *f,
    size_t *used)
{
	return next_frame(buf, len, max, f, used, 0);
}

int
wire_next_any(const uint8_t *buf, size_t len, size_t max, struct wire_frame *f,
    size_t *used)
{
	return next_frame(buf, len, max, f, used, 1);
}

/*
 * Encoding a frame: reserve the prefix, append fields, then patch the
 * length.  On failure the buffer is cut back to where it was.
 */
size_t
wire_frame_begin(struct wbuf *b, uint8_t type, int *rc)
{
	size_t start = b->len;
	*rc = wb_u32(b, 0);
	if (!*rc)
		*rc = wb_u8(b, type);
	return start;
}

int
wire_frame_end(struct wbuf *b, size_t start, int rc)
{
	if (!rc && b->len - start - WIRE_HDR > WIRE_MAX_BODY)
		rc = BABL_ETOOBIG;
	if (rc) {
		b->len = start;
		return rc;
	}
	be32_put(b->p + start, (uint32_t)(b->len - start - WIRE_HDR));
	return 0;
}

int
wire_enc_hello(struct wbuf *b, const char *agent)
{
	int rc;
	size_t s = wire_frame_begin(b, WIRE_HELLO, &rc);
	if (!rc) rc = wb_raw(b, WIRE_MAGIC, 4);
	if (!rc) rc = wb_u16(b, WIRE_VERSION);
	if (!rc) rc = wb_cstr(b, agent);
	return wire_frame_end(b, s, rc);
}

int
wire_enc_welcome(struct wbuf *b, const char *node)
{
	int rc;
	size_t s = wire_frame_begin(b, WIRE_WELCOME, &rc);
	if (!rc) rc = wb_raw(b, WIRE_MAGIC, 4);
	if (!rc) rc = wb_u16(b, WIRE_VERSION);
	if (!rc) rc = wb_cstr(b, node);
	return wire_frame_end(b, s, rc);
}

int
wire_enc_error(struct wbuf *b, int code, const char *msg)
{
	int rc;
	size_t s = wire_frame_begin(b, WIRE_ERROR, &rc);
	if (!rc) rc = wb_u32(b, (uint32_t)code);
	if (!rc) rc = wb_str(b, msg, strnlen(msg, WIRE_MAX_STR));
	return wire_frame_end(b, s, rc);
}

int
wire_enc_call(struct wbuf *b, const struct wire_call *m)
{
	int rc;
	if (m->nargs > WIRE_MAX_ARGS)
		return BABL_ETOOBIG;
	size_t s = wire_frame_begin(b, WIRE_CALL, &rc);
	if (!rc) rc = wb_str(b, m->target.p, m->target.len);
	if (!rc) rc = wb_str(b, m->idkey.p, m->idkey.len);
	if (!rc) rc = wb_u32(b, m->timeout_ms);
	if (!rc) rc = wb_u32(b, m->flags);
	if (!rc) rc = wb_u32(b, m->nargs);
	for (uint32_t i = 0; !rc && i < m->nargs; i++) {
		if (m->args[i].len > WIRE_MAX_STR)
			rc = BABL_ETOOBIG;
		else
			rc = wb_str(b, m->args[i].p, m->args[i].len);
	}
	return wire_frame_end(b, s, rc);
}

int
wire_enc_bytes(struct wbuf *b, uint8_t type, const void *p, size_t n)
{
	int rc;
	if (n > WIRE_MAX_BODY - 1)
		return BABL_ETOOBIG;
	size_t s = wire_frame_begin(b, type, &rc);
	if (!rc) rc = wb_raw(b, p, n);
	return wire_frame_end(b, s, rc);
}

int
wire_enc_empty(struct wbuf *b, uint8_t type)
{
	return wire_enc_bytes(b, type, NULL, 0);
}

int
wire_enc_exit(struct wbuf *b, uint8_t kind, int32_t code, const char *msg)
{
	int rc;
	size_t s = wire_frame_begin(b, WIRE_EXIT, &rc);
	if (!rc) rc = wb_u8(b, kind);
	if (!rc) rc = wb_u32(b, (uint32_t)code);
	if (!rc) rc = wb_str(b, msg ? msg : "", msg ? strnlen(msg, WIRE_MAX_STR) : 0);
	return wire_frame_end(b, s, rc);
}

int
wire_enc_deploy(struct wbuf *b, const struct wire_deploy *m)
{
	int rc;
	size_t s = wire_frame_begin(b, WIRE_DEPLOY, &rc);
	if (!rc) rc = wb_str(b, m->bundle.p, m->bundle.len);
	if (!rc) rc = wb_raw(b, m->owner, 32);
	if (!rc) rc = wb_u64(b, m->version);
	if (!rc) rc = wb_raw(b, m->prev, 32);
	if (!rc) rc = wb_raw(b, m->sig, 64);
	return wire_frame_end(b, s, rc);
}

int
wire_enc_query(struct wbuf *b, uint8_t what, const char *arg, const char *arg2)
{
	int rc;
	size_t s = wire_frame_begin(b, WIRE_QUERY, &rc);
	if (!rc) rc = wb_u8(b, what);
	if (!rc) rc = wb_cstr(b, arg);
	if (!rc) rc = wb_cstr(b, arg2);
	return wire_frame_end(b, s, rc);
}

int
wire_enc_query_bytes(struct wbuf *b, uint8_t what, const void *arg, size_t len)
{
	int rc;
	size_t s = wire_frame_begin(b, WIRE_QUERY, &rc);
	if (!rc) rc = wb_u8(b, what);
	if (!rc) rc = wb_str(b, arg, len);
	if (!rc) rc = wb_str(b, "", 0);
	return wire_frame_end(b, s, rc);
}

int
wire_enc_head(struct wbuf *b, uint64_t version, const uint8_t vid[32],
    const uint8_t owner[32])
{
	int rc;
	size_t s = wire_frame_begin(b, WIRE_HEAD, &rc);
	if (!rc) rc = wb_u64(b, version);
	if (!rc) rc = wb_raw(b, vid, 32);
	if (!rc) rc = wb_raw(b, owner, 32);
	return wire_frame_end(b, s, rc);
}

/* Decoders. */

static int
dec_start(const struct wire_frame *f, uint8_t type, struct rd *r)
{
	if (f->type != type)
		return BABL_EPROTO;
	rd_init(r, f->p, f->len);
	return 0;
}

static int
dec_greeting(const struct wire_frame *f, uint8_t type, uint16_t *version,
    struct wire_str *name)
{
	struct rd r;
	if (dec_start(f, type, &r))
		return BABL_EPROTO;
	const uint8_t *magic = rd_fixed(&r, 4);
	*version = rd_u16(&r);
	*name = rd_str(&r, 256);
	if (rd_done(&r) || memcmp(magic, WIRE_MAGIC, 4) != 0)
		return BABL_EPROTO;
	return 0;
}

int
wire_dec_hello(const struct wire_frame *f, struct wire_hello *m)
{
	return dec_greeting(f, WIRE_HELLO, &m->version, &m->agent);
}

int
wire_dec_welcome(const struct wire_frame *f, struct wire_welcome *m)
{
	return dec_greeting(f, WIRE_WELCOME, &m->version, &m->node);
}

int
wire_dec_error(const struct wire_frame *f, struct wire_error *m)
{
	struct rd r;
	if (dec_start(f, WIRE_ERROR, &r))
		return BABL_EPROTO;
	m->code = (int32_t)rd_u32(&r);
	m->msg = rd_str(&r, WIRE_MAX_STR);
	return rd_done(&r);
}

int
wire_dec_call(const struct wire_frame *f, struct wire_call *m)
{
	struct rd r;
	if (dec_start(f, WIRE_CALL, &r))
		return BABL_EPROTO;
	m->target = rd_str(&r, WIRE_MAX_STR);
	m->idkey = rd_str(&r, WIRE_MAX_STR);
	m->timeout_ms = rd_u32(&r);
	m->flags = rd_u32(&r);
	m->nargs = rd_u32(&r);
	if (m->nargs > WIRE_MAX_ARGS)
		return BABL_EPROTO;
	for (uint32_t i = 0; i < m->nargs; i++)
		m->args[i] = rd_str(&r, WIRE_MAX_STR);
	if (rd_done(&r) || m->target.len == 0)
		return BABL_EPROTO;
	return 0;
}

int
wire_dec_exit(const struct wire_frame *f, struct wire_exit *m)
{
	struct rd r;
	if (dec_start(f, WIRE_EXIT, &r))
		return BABL_EPROTO;
	m->kind = rd_u8(&r);
	m->code = (int32_t)rd_u32(&r);
	m->msg = rd_str(&r, WIRE_MAX_STR);
	if (rd_done(&r) || m->kind > WIRE_SIGNALED)
		return BABL_EPROTO;
	return 0;
}

int
wire_dec_deploy(const struct wire_frame *f, struct wire_deploy *m)
{
	struct rd r;
	if (dec_start(f, WIRE_DEPLOY, &r))
		return BABL_EPROTO;
	m->bundle = rd_str(&r, WIRE_MAX_BODY);
	m->owner = rd_fixed(&r, 32);
	m->version = rd_u64(&r);
	m->prev = rd_fixed(&r, 32);
	m->sig = rd_fixed(&r, 64);
	return rd_done(&r);
}

int
wire_dec_query(const struct wire_frame *f, struct wire_query_msg *m)
{
	struct rd r;
	if (dec_start(f, WIRE_QUERY, &r))
		return BABL_EPROTO;
	m->what = rd_u8(&r);
	m->arg = rd_str(&r, WIRE_MAX_STR);
	m->arg2 = rd_str(&r, WIRE_MAX_STR);
	if (rd_done(&r) || m->what < WIRE_Q_LS || m->what > WIRE_Q_REPORT)
		return BABL_EPROTO;
	return 0;
}

int
wire_dec_head(const struct wire_frame *f, struct wire_head *m)
{
	struct rd r;
	if (dec_start(f, WIRE_HEAD, &r))
		return BABL_EPROTO;
	m->version = rd_u64(&r);
	m->vid = rd_fixed(&r, 32);
	m->owner = rd_fixed(&r, 32);
	return rd_done(&r);
}

int
wire_dec_chan(const struct wire_frame *f, uint32_t *chan, const uint8_t **p, size_t *n)
{
	if (f->type != WIRE_CHAN || f->len < 4)
		return BABL_EPROTO;
	*chan = be32_get(f->p);
	if (*chan >= WIRE_CHANS)
		return BABL_EPROTO;
	*p = f->p + 4;
	*n = f->len - 4;
	return 0;
}

int
wire_chan_begin(struct wbuf *b, uint32_t chan, size_t *start)
{
	int rc;
	*start = wire_frame_begin(b, WIRE_CHAN, &rc);
	if (!rc)
		rc = wb_u32(b, chan);
	if (rc)
		b->len = *start;
	return rc;
}

int
wire_chan_end(struct wbuf *b, size_t start)
{
	return wire_frame_end(b, start, 0);
}

int
wire_enc_chan_end(struct wbuf *b, uint32_t chan)
{
	size_t start;
	int rc = wire_chan_begin(b, chan, &start);
	return rc ? rc : wire_chan_end(b, start);
}

char *
wire_strdup(struct wire_str s)
{
	char *p = malloc(s.len + 1);
	if (!p)
		return NULL;
	memcpy(p, s.p, s.len);
	p[s.len] = 0;
	return p;
}

int
wire_streq(struct wire_str s, const char *c)
{
	return strlen(c) == s.len && memcmp(s.p, c, s.len) == 0;
}
