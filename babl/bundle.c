/* bundle.c - canonical bundles, ids and signatures; see bundle.h. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "err.h"

#define BUNDLE_MAGIC "BABLBNDL"
#define BUNDLE_FORMAT 1
#define MAX_FIXED_ARGS 64

static const char svc_domain[16] = "babl-service-v1";
static const char dep_domain[16] = "babl-deploy-v1";

void
bundle_default_limits(struct bundle_limits *l)
{
	l->timeout_ms = 300 * 1000;
	l->cpu_secs = 300;
	l->mem_bytes = 1024ull << 20;
	l->max_input = 64ull << 30;
	l->fsize = 4ull << 30;
	l->nproc = 64;
}

int
bundle_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > BUNDLE_MAX_NAME || name[0] == '.' || name[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

int
bundle_encode(const struct bundle *b, struct wbuf *out)
{
	size_t start = out->len;
	int rc = wb_raw(out, BUNDLE_MAGIC, 8);
	if (!rc) rc = wb_u16(out, BUNDLE_FORMAT);
	if (!rc) rc = wb_u8(out, b->kind);
	if (!rc) rc = wb_cstr(out, b->name);
	if (b->kind == BUNDLE_NATIVE) {
		if (!rc) rc = wb_cstr(out, b->path);
		if (!rc) rc = wb_raw(out, b->prog_hash, 32);
		if (!rc) rc = wb_u32(out, b->nargs);
		for (uint32_t i = 0; !rc && i < b->nargs; i++)
			rc = wb_cstr(out, b->args[i]);
	} else {
		if (!rc) rc = wb_cstr(out, b->script);
		if (!rc) rc = wb_str(out, b->source, b->source_len);
	}
	if (!rc) rc = wb_u32(out, b->lim.timeout_ms);
	if (!rc) rc = wb_u32(out, b->lim.cpu_secs);
	if (!rc) rc = wb_u64(out, b->lim.mem_bytes);
	if (!rc) rc = wb_u64(out, b->lim.max_input);
	if (!rc) rc = wb_u64(out, b->lim.fsize);
	if (!rc) rc = wb_u32(out, b->lim.nproc);
	if (rc)
		out->len = start;
	return rc;
}

void
bundle_free(struct bundle *b)
{
	if (!b)
		return;
	free(b->name);
	free(b->path);
	for (uint32_t i = 0; b->args && i < b->nargs; i++)
		free(b->args[i]);
	free(b->args);
	free(b->script);
	free(b->source);
	memset(b, 0, sizeof *b);
}

/* A decoded string must hold no NUL, since it becomes a C string. */
static char *
dup_cstr(struct wire_str s, int *bad)
{
	if (memchr(s.p, 0, s.len)) {
		*bad = 1;
		return NULL;
	}
	char *p = wire_strdup(s);
	if (!p)
		*bad = 1;
	return p;
}

int
bundle_decode(const void *p, size_t n, struct bundle *b)
{
	struct rd r;
	int bad = 0;
	memset(b, 0, sizeof *b);
	rd_init(&r, p, n);
	const uint8_t *magic = rd_fixed(&r, 8);
	uint16_t fmt = rd_u16(&r);
	b->kind = rd_u8(&r);
	if (r.bad || memcmp(magic, BUNDLE_MAGIC, 8) != 0 || fmt != BUNDLE_FORMAT ||
	    (b->kind != BUNDLE_NATIVE && b->kind != BUNDLE_LUA))
		return BABL_EPROTO;
	b->name = dup_cstr(rd_str(&r, BUNDLE_MAX_NAME), &bad);
	if (b->kind == BUNDLE_NATIVE) {
		b->path = dup_cstr(rd_str(&r, 4096), &bad);
		const uint8_t *h = rd_fixed(&r, 32);
		if (h)
			memcpy(b->prog_hash, h, 32);
		uint32_t na = rd_u32(&r);
		if (na > MAX_FIXED_ARGS || r.bad) {
			bad = 1;
		} else if (na) {
			b->args = calloc(na, sizeof *b->args);
			if (!b->args)
				bad = 1;
			for (uint32_t i = 0; !bad && i < na; i++) {
				b->args[i] = dup_cstr(rd_str(&r, WIRE_MAX_STR), &bad);
				b->nargs = i + 1;
			}
		}
	} else {
		b->script = dup_cstr(rd_str(&r, 4096), &bad);
		struct wire_str src = rd_str(&r, BUNDLE_MAX_SOURCE);
		if (!r.bad) {
			b->source = wire_strdup(src);
			b->source_len = src.len;
			if (!b->source)
				bad = 1;
		}
	}
	b->lim.timeout_ms = rd_u32(&r);
	b->lim.cpu_secs = rd_u32(&r);
	b->lim.mem_bytes = rd_u64(&r);
	b->lim.max_input = rd_u64(&r);
	b->lim.fsize = rd_u64(&r);
	b->lim.nproc = rd_u32(&r);
	if (bad || rd_done(&r) || !b->name || !bundle_name_ok(b->name) ||
	    (b->kind == BUNDLE_NATIVE && (!b->path || b->path[0] != '/'))) {
		bundle_free(b);
		return BABL_EPROTO;
	}
	return 0;
}

void
bundle_hash(const void *p, size_t n, uint8_t out[32])
{
	crypto_generichash(out, 32, p, n, NULL, 0);
}

void
bundle_service_id(const uint8_t owner[32], const char *name, uint8_t sid[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)svc_domain, sizeof svc_domain);
	crypto_generichash_update(&st, owner, 32);
	crypto_generichash_update(&st, (const uint8_t *)name, strlen(name));
	crypto_generichash_final(&st, sid, 32);
}

void
bundle_deploy_msg(const uint8_t sid[32], uint64_t version, const uint8_t bid[32],
    const uint8_t prev[32], uint8_t msg[BUNDLE_MSG_LEN])
{
	memcpy(msg, dep_domain, 16);
	memcpy(msg + 16, sid, 32);
	be64_put(msg + 48, version);
	memcpy(msg + 56, bid, 32);
	memcpy(msg + 88, prev, 32);
}

void
bundle_sign(const uint8_t msg[BUNDLE_MSG_LEN], const uint8_t sk[64], uint8_t sig[64])
{
	crypto_sign_detached(sig, NULL, msg, BUNDLE_MSG_LEN, sk);
}

int
bundle_verify(const uint8_t msg[BUNDLE_MSG_LEN], const uint8_t owner[32],
    const uint8_t sig[64])
{
	return crypto_sign_verify_detached(sig, msg, BUNDLE_MSG_LEN, owner) == 0
	    ? 0 : BABL_EPERM;
}

int
bundle_hash_fd(int fd, uint8_t out[32])
{
	crypto_generichash_state st;
	static __thread uint8_t buf[64 * 1024];
	off_t off = 0;
	crypto_generichash_init(&st, NULL, 0, 32);
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof buf, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return BABL_EIO;
		if (n == 0)
			break;
		crypto_generichash_update(&st, buf, (size_t)n);
		off += n;
	}
	crypto_generichash_final(&st, out, 32);
	return 0;
}

int
bundle_hash_file(const char *path, uint8_t out[32])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? BABL_ENOENT : BABL_EIO;
	int rc = bundle_hash_fd(fd, out);
	close(fd);
	return rc;
}

void
hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
hex_decode(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return BABL_EINPUT;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return BABL_EINPUT;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
