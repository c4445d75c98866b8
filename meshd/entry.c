/* entry.c - log entry codec; see entry.h. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_CTX: a value, no allocation */
#include <openssl/sha.h>
#include <sodium.h>
#include <string.h>

#include "entry.h"
#include "err.h"
#include "hash.h"

const char *
entry_type_name(uint8_t type)
{
	static const char *names[] = {"?", "deploy", "call", "input", "eof",
	    "cancel", "outcome", "noop", "member", "digest", "report", "output"};
	return type <= ENT_MAX ? names[type] : "?";
}

static void
put_fields(const struct entry *e, uint8_t h[56])
{
	h[0] = ENTRY_FORMAT;
	h[1] = e->type;
	h[2] = h[3] = 0;
	be32_put(h + 4, e->len);
	be64_put(h + 8, e->term);
	be64_put(h + 16, e->index);
	memcpy(h + 24, e->prev, 32);
}

void
entry_seal(struct entry *e, const struct iovec *iov, int niov, uint8_t hdr[ENTRY_HDR])
{
	struct hash_state st;
	put_fields(e, hdr);
	hash_init(&st);
	hash_update(&st, hdr, 56);
	for (int i = 0; i < niov; i++)
		hash_update(&st, iov[i].iov_base, iov[i].iov_len);
	hash_final(&st, e->hash);
	memcpy(hdr + 56, e->hash, 32);
}

int
entry_parse(const void *p, size_t n, struct entry *e)
{
	const uint8_t *h = p;
	if (n < ENTRY_HDR || h[0] < ENTRY_FORMAT_B2 || h[0] > ENTRY_FORMAT || h[1] == 0 ||
	    h[1] > ENT_MAX || h[2] || h[3] || be32_get(h + 4) != n - ENTRY_HDR)
		return BABL_EPROTO;
	e->type = h[1];
	e->len = be32_get(h + 4);
	e->term = be64_get(h + 8);
	e->index = be64_get(h + 16);
	memcpy(e->prev, h + 24, 32);
	memcpy(e->hash, h + 56, 32);
	e->payload = h + ENTRY_HDR;
	return 0;
}

int
entry_open(const void *p, size_t n, struct entry *e)
{
	const uint8_t *h = p;
	uint8_t sum[32];
	int rc = entry_parse(p, n, e);
	if (rc)
		return rc;
	if (h[0] == ENTRY_FORMAT) {
		struct hash_state st;
		hash_init(&st);
		hash_update(&st, h, 56);
		hash_update(&st, e->payload, e->len);
		hash_final(&st, sum);
	} else if (h[0] == ENTRY_FORMAT_SHA) {
		SHA256_CTX st;
		SHA256_Init(&st);
		SHA256_Update(&st, h, 56);
		SHA256_Update(&st, e->payload, e->len);
		SHA256_Final(sum, &st);
	} else {
		crypto_generichash_state st;
		crypto_generichash_init(&st, NULL, 0, 32);
		crypto_generichash_update(&st, h, 56);
		crypto_generichash_update(&st, e->payload, e->len);
		crypto_generichash_final(&st, sum, 32);
	}
	return sodium_memcmp(sum, e->hash, 32) == 0 ? 0 : BABL_ECORRUPT;
}

int
ent_enc_deploy(struct wbuf *b, uint64_t time_ms, const struct wire_deploy *d)
{
	size_t start = b->len;
	int rc = wb_u64(b, time_ms);
	if (!rc) rc = wb_str(b, d->bundle.p, d->bundle.len);
	if (!rc) rc = wb_raw(b, d->owner, 32);
	if (!rc) rc = wb_u64(b, d->version);
	if (!rc) rc = wb_raw(b, d->prev, 32);
	if (!rc) rc = wb_raw(b, d->sig, 64);
	if (rc)
		b->len = start;
	return rc;
}

int
ent_dec_deploy(const struct entry *e, struct ent_deploy *m)
{
	struct rd r;
	if (e->type != ENT_DEPLOY)
		return BABL_EPROTO;
	rd_init(&r, e->payload, e->len);
	m->time_ms = rd_u64(&r);
	m->d.bundle = rd_str(&r, ENTRY_MAX_PAYLOAD);
	m->d.owner = rd_fixed(&r, 32);
	m->d.version = rd_u64(&r);
	m->d.prev = rd_fixed(&r, 32);
	m->d.sig = rd_fixed(&r, 64);
	return rd_done(&r);
}

int
ent_enc_call(struct wbuf *b, const struct ent_call *m)
{
	size_t start = b->len;
	int rc = wb_raw(b, m->sid, 32);
	if (!rc) rc = wb_raw(b, m->vid, 32);
	if (!rc) rc = wb_u64(b, m->time_ms);
	if (!rc) rc = wb_u64(b, m->seed);
	if (!rc) rc = wb_raw(b, m->reqid, ENT_REQID_LEN);
	if (!rc) rc = wb_u32(b, m->timeout_ms);
	/* Refuse what ent_dec_call would refuse: strings beyond their bound. */
	if (!rc) rc = m->idkey.len > WIRE_MAX_STR ? BABL_ETOOBIG :
	    wb_str(b, m->idkey.p, m->idkey.len);
	if (!rc) rc = m->nargs > WIRE_MAX_ARGS ? BABL_ETOOBIG : wb_u32(b, m->nargs);
	for (uint32_t i = 0; !rc && i < m->nargs; i++)
		rc = m->args[i].len > WIRE_MAX_STR ? BABL_ETOOBIG :
		    wb_str(b, m->args[i].p, m->args[i].len);
	if (rc)
		b->len = start;
	return rc;
}

int
ent_dec_call(const struct entry *e, struct ent_call *m)
{
	struct rd r;
	if (e->type != ENT_CALL)
		return BABL_EPROTO;
	rd_init(&r, e->payload, e->len);
	const uint8_t *sid = rd_fixed(&r, 32), *vid = rd_fixed(&r, 32);
	m->time_ms = rd_u64(&r);
	m->seed = rd_u64(&r);
	const uint8_t *rq = rd_fixed(&r, ENT_REQID_LEN);
	m->timeout_ms = rd_u32(&r);
	m->idkey = rd_str(&r, WIRE_MAX_STR);
	m->nargs = rd_u32(&r);
	if (r.bad || m->nargs > WIRE_MAX_ARGS)
		return BABL_EPROTO;
	for (uint32_t i = 0; i < m->nargs; i++)
		m->args[i] = rd_str(&r, WIRE_MAX_STR);
	if (rd_done(&r))
		return BABL_EPROTO;
	memcpy(m->sid, sid, 32);
	memcpy(m->vid, vid, 32);
	memcpy(m->reqid, rq, ENT_REQID_LEN);
	return 0;
}

void
ent_input_prefix(uint8_t p[8], uint64_t call)
{
	be64_put(p, call);
}

int
ent_dec_ref(const struct entry *e, uint64_t *call, const uint8_t **rest,
    size_t *rest_len)
{
	if (e->len < 8 || (e->type != ENT_INPUT && e->type != ENT_EOF &&
	    e->type != ENT_CANCEL))
		return BABL_EPROTO;
	*call = be64_get(e->payload);
	if (rest) {
		*rest = e->payload + 8;
		*rest_len = e->len - 8;
	}
	return 0;
}

int
ent_enc_outcome(struct wbuf *b, const struct ent_outcome *m)
{
	size_t start = b->len;
	int rc = wb_u64(b, m->call);
	if (!rc) rc = wb_u8(b, m->kind);
	if (!rc) rc = wb_u32(b, (uint32_t)m->code);
	if (!rc) rc = wb_u8(b, m->why);
	if (!rc) rc = wb_u64(b, m->in_bytes);
	if (!rc) rc = wb_u64(b, m->out_bytes);
	if (!rc) rc = wb_u64(b, m->err_bytes);
	if (!rc) rc = wb_u32(b, m->dur_ms);
	if (!rc) rc = wb_u8(b, m->flags);
	if (!rc) rc = wb_u32(b, m->nwrites);
	if (!rc && m->nwrites) rc = wb_raw(b, m->writes.p, m->writes.len);
	if (rc)
		b->len = start;
	return rc;
}

int
ent_dec_outcome(const struct entry *e, struct ent_outcome *m)
{
	struct rd r;
	if (e->type != ENT_OUTCOME)
		return BABL_EPROTO;
	rd_init(&r, e->payload, e->len);
	m->call = rd_u64(&r);
	m->kind = rd_u8(&r);
	m->code = (int32_t)rd_u32(&r);
	m->why = rd_u8(&r);
	m->in_bytes = rd_u64(&r);
	m->out_bytes = rd_u64(&r);
	m->err_bytes = rd_u64(&r);
	m->dur_ms = rd_u32(&r);
	m->flags = rd_u8(&r);
	m->nwrites = rd_u32(&r);
	if (r.bad)
		return BABL_EPROTO;
	m->writes.p = (const char *)r.p;
	m->writes.len = (size_t)(r.end - r.p);
	if ((m->nwrites == 0) != (m->writes.len == 0))
		return BABL_EPROTO;
	return 0;
}

int
ent_enc_member(struct wbuf *b, const struct ent_member *m)
{
	if (wb_u8(b, m->op) || wb_u64(b, m->id) || wb_str(b, m->raft_url.p, m->raft_url.len) ||
	    wb_str(b, m->client_url.p, m->client_url.len) || wb_u8(b, m->guard))
		return BABL_ENOMEM;
	return 0;
}

int
ent_dec_member(const struct entry *e, struct ent_member *m)
{
	struct rd r;
	if (e->type != ENT_MEMBER)
		return BABL_EPROTO;
	rd_init(&r, e->payload, e->len);
	m->op = rd_u8(&r);
	m->id = rd_u64(&r);
	m->raft_url = rd_str(&r, ENT_MEMBER_URL_MAX);
	m->client_url = rd_str(&r, ENT_MEMBER_URL_MAX);
	m->guard = rd_u8(&r);
	if (rd_done(&r) || m->id == 0 || (m->op != ENT_MEMBER_ADD && m->op != ENT_MEMBER_REMOVE) ||
	    (m->op == ENT_MEMBER_ADD && (!m->raft_url.len || !m->client_url.len)))
		return BABL_EPROTO;
	return 0;
}

int
ent_enc_output(struct wbuf *b, const struct ent_output *m)
{
	size_t start = b->len;
	int rc = wb_u64(b, m->call);
	if (!rc) rc = wb_u64(b, m->seq);
	if (!rc) rc = wb_u8(b, m->stream);
	if (!rc && m->len) rc = wb_raw(b, m->p, m->len);
	if (rc)
		b->len = start;
	return rc;
}

int
ent_dec_output(const struct entry *e, struct ent_output *m)
{
	struct rd r;
	if (e->type != ENT_OUTPUT)
		return BABL_EPROTO;
	rd_init(&r, e->payload, e->len);
	m->call = rd_u64(&r);
	m->seq = rd_u64(&r);
	m->stream = rd_u8(&r);
	if (r.bad || m->stream < 1 || m->stream > 2)
		return BABL_EPROTO;
	m->p = r.p;
	m->len = (size_t)(r.end - r.p);
	return 0;
}
