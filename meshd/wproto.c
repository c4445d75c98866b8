/* wproto.c - the meshd <-> Lua worker messages; see wproto.h. */
#include <string.h>

#include "err.h"
#include "wproto.h"

int
wp_enc_script(struct wbuf *b, const struct wp_script *m)
{
	int rc;
	size_t s = wire_frame_begin(b, WP_SCRIPT, &rc);
	if (!rc) rc = wb_str(b, m->chunkname.p, m->chunkname.len);
	if (!rc) rc = wb_str(b, m->source.p, m->source.len);
	if (!rc) rc = wb_u64(b, m->mem_bytes);
	if (!rc) rc = wb_u64(b, m->instructions);
	if (!rc) rc = wb_u64(b, m->max_string);
	return wire_frame_end(b, s, rc);
}

int
wp_dec_script(const struct wire_frame *f, struct wp_script *m)
{
	struct rd r;
	if (f->type != WP_SCRIPT)
		return BABL_EPROTO;
	rd_init(&r, f->p, f->len);
	m->chunkname = rd_str(&r, 256);
	m->source = rd_str(&r, WIRE_MAX_BODY);
	m->mem_bytes = rd_u64(&r);
	m->instructions = rd_u64(&r);
	m->max_string = rd_u64(&r);
	return rd_done(&r);
}

int
wp_enc_call(struct wbuf *b, const struct wp_call *m)
{
	int rc;
	size_t s = wire_frame_begin(b, WP_CALL, &rc);
	if (!rc) rc = wb_u64(b, m->call);
	if (!rc) rc = wb_str(b, m->service.p, m->service.len);
	if (!rc) rc = wb_str(b, m->reqid.p, m->reqid.len);
	if (!rc) rc = wb_u64(b, m->time_ms);
	if (!rc) rc = wb_u64(b, m->seed);
	if (!rc) rc = m->nargs > WIRE_MAX_ARGS ? BABL_ETOOBIG : wb_u32(b, m->nargs);
	for (uint32_t i = 0; !rc && i < m->nargs; i++)
		rc = wb_str(b, m->args[i].p, m->args[i].len);
	return wire_frame_end(b, s, rc);
}

int
wp_dec_call(const struct wire_frame *f, struct wp_call *m)
{
	struct rd r;
	if (f->type != WP_CALL)
		return BABL_EPROTO;
	rd_init(&r, f->p, f->len);
	m->call = rd_u64(&r);
	m->service = rd_str(&r, 256);
	m->reqid = rd_str(&r, 256);
	m->time_ms = rd_u64(&r);
	m->seed = rd_u64(&r);
	m->nargs = rd_u32(&r);
	if (r.bad || m->nargs > WIRE_MAX_ARGS)
		return BABL_EPROTO;
	for (uint32_t i = 0; i < m->nargs; i++)
		m->args[i] = rd_str(&r, WIRE_MAX_STR);
	return rd_done(&r);
}

int
wp_enc_ref(struct wbuf *b, uint8_t type, uint64_t call, uint8_t stream,
    const void *p, size_t n)
{
	size_t s = b->len;
	int rc = wp_enc_ref_head(b, type, call, stream, n);
	if (!rc && (rc = wb_raw(b, p, n)))
		b->len = s;
	return rc;
}

int
wp_enc_ref_head(struct wbuf *b, uint8_t type, uint64_t call, uint8_t stream, size_t n)
{
	int rc;
	size_t s = wire_frame_begin(b, type, &rc);
	if (!rc) rc = wb_u64(b, call);
	if (!rc) rc = wb_u8(b, stream);
	if (!rc && b->len - s - WIRE_HDR + n > WIRE_MAX_BODY)
		rc = BABL_ETOOBIG;
	if (rc) {
		b->len = s;
		return rc;
	}
	be32_put(b->p + s, (uint32_t)(b->len - s - WIRE_HDR + n));
	return 0;
}

int
wp_dec_ref(const struct wire_frame *f, struct wp_ref *m)
{
	struct rd r;
	if (f->type != WP_INPUT && f->type != WP_EOF && f->type != WP_KILL &&
	    f->type != WP_OUT && f->type != WP_ACK)
		return BABL_EPROTO;
	rd_init(&r, f->p, f->len);
	m->call = rd_u64(&r);
	m->stream = rd_u8(&r);
	if (r.bad)
		return BABL_EPROTO;
	m->bytes.p = (const char *)r.p;
	m->bytes.len = (size_t)(r.end - r.p);
	return 0;
}

int
wp_enc_kv(struct wbuf *b, uint64_t call, int found, const void *v, size_t vl)
{
	int rc;
	size_t s = wire_frame_begin(b, WP_KV, &rc);
	if (!rc) rc = wb_u64(b, call);
	if (!rc) rc = wb_u8(b, found ? 1 : 0);
	if (!rc) rc = wb_str(b, v, found ? vl : 0);
	return wire_frame_end(b, s, rc);
}

int
wp_dec_kv(const struct wire_frame *f, struct wp_kv *m)
{
	struct rd r;
	if (f->type != WP_KV)
		return BABL_EPROTO;
	rd_init(&r, f->p, f->len);
	m->call = rd_u64(&r);
	m->found = rd_u8(&r);
	m->value = rd_str(&r, WIRE_MAX_BODY);
	return rd_done(&r);
}

int
wp_enc_keys_begin(struct wbuf *b, uint64_t call, size_t *mark)
{
	int rc;
	*mark = wire_frame_begin(b, WP_KEYS, &rc);
	if (!rc) rc = wb_u64(b, call);
	if (!rc) rc = wb_u32(b, 0);
	if (rc)
		b->len = *mark;
	return rc;
}

int
wp_enc_keys_add(struct wbuf *b, const void *k, size_t kl)
{
	return wb_str(b, k, kl);
}

int
wp_enc_keys_end(struct wbuf *b, size_t mark, uint32_t count)
{
	be32_put(b->p + mark + WIRE_HDR + 1 + 8, count);
	return wire_frame_end(b, mark, 0);
}

int
wp_dec_keys(const struct wire_frame *f, uint64_t *call, uint32_t *count,
    struct rd *rest)
{
	if (f->type != WP_KEYS)
		return BABL_EPROTO;
	rd_init(rest, f->p, f->len);
	*call = rd_u64(rest);
	*count = rd_u32(rest);
	return rest->bad || *count > WP_MAX_KEYS ? BABL_EPROTO : 0;
}

int
wp_enc_kvget(struct wbuf *b, uint64_t call, int keys, const void *k, size_t kl)
{
	int rc;
	size_t s = wire_frame_begin(b, WP_KVGET, &rc);
	if (!rc) rc = wb_u64(b, call);
	if (!rc) rc = wb_u8(b, keys ? 1 : 0);
	if (!rc) rc = wb_str(b, k, kl);
	return wire_frame_end(b, s, rc);
}

int
wp_dec_kvget(const struct wire_frame *f, struct wp_kvget *m)
{
	struct rd r;
	if (f->type != WP_KVGET)
		return BABL_EPROTO;
	rd_init(&r, f->p, f->len);
	m->call = rd_u64(&r);
	m->keys = rd_u8(&r);
	m->key = rd_str(&r, WP_MAX_KEY);
	return rd_done(&r);
}

int
wp_enc_done_begin(struct wbuf *b, uint64_t call, int32_t status, uint64_t insns,
    uint64_t mem_peak, size_t *mark)
{
	int rc;
	*mark = wire_frame_begin(b, WP_DONE, &rc);
	if (!rc) rc = wb_u64(b, call);
	if (!rc) rc = wb_u32(b, (uint32_t)status);
	if (!rc) rc = wb_u64(b, insns);
	if (!rc) rc = wb_u64(b, mem_peak);
	if (!rc) rc = wb_u32(b, 0);
	if (rc)
		b->len = *mark;
	return rc;
}

int
wp_enc_write(struct wbuf *b, int deleted, const void *k, size_t kl, const void *v,
    size_t vl)
{
	int rc = wb_u8(b, deleted ? 1 : 0);
	if (!rc) rc = wb_str(b, k, kl);
	if (!rc) rc = wb_str(b, v, deleted ? 0 : vl);
	return rc;
}

int
wp_enc_done_end(struct wbuf *b, size_t mark, uint32_t nwrites)
{
	be32_put(b->p + mark + WIRE_HDR + 1 + 28, nwrites);
	return wire_frame_end(b, mark, 0);
}

int
wp_dec_done(const struct wire_frame *f, struct wp_done *m)
{
	struct rd r;
	if (f->type != WP_DONE)
		return BABL_EPROTO;
	rd_init(&r, f->p, f->len);
	m->call = rd_u64(&r);
	m->status = (int32_t)rd_u32(&r);
	m->insns = rd_u64(&r);
	m->mem_peak = rd_u64(&r);
	m->nwrites = rd_u32(&r);
	if (r.bad)
		return BABL_EPROTO;
	m->writes.p = (const char *)r.p;
	m->writes.len = (size_t)(r.end - r.p);
	/* Check the list now, so that users of it need not. */
	struct rd w;
	int del;
	struct wire_str k, v;
	uint32_t n = 0;
	rd_init(&w, m->writes.p, m->writes.len);
	int rc;
	while ((rc = wp_next_write(&w, &del, &k, &v)) == 1)
		n++;
	return rc == 0 && n == m->nwrites ? 0 : BABL_EPROTO;
}

int
wp_next_write(struct rd *r, int *deleted, struct wire_str *k, struct wire_str *v)
{
	if (r->p == r->end && !r->bad)
		return 0;
	*deleted = rd_u8(r);
	*k = rd_str(r, WP_MAX_KEY);
	*v = rd_str(r, WIRE_MAX_BODY);
	if (r->bad || *deleted > 1 || k->len == 0)
		return BABL_EPROTO;
	return 1;
}
