/* svc.c - the service registry; see svc.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "lsb.h"
#include "svc.h"

void
reg_free(struct registry *r)
{
	struct svc *s = r->list;
	while (s) {
		struct svc *nx = s->next;
		for (uint32_t i = 0; i < s->nver; i++) {
			bundle_free(&s->v[i]->b);
			free(s->v[i]);
		}
		free(s->v);
		free(s);
		s = nx;
	}
	r->list = NULL;
	r->n = 0;
}

struct svc *
reg_by_name(struct registry *r, const char *name)
{
	for (struct svc *s = r->list; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static struct svc *
by_sid(struct registry *r, const uint8_t sid[32])
{
	for (struct svc *s = r->list; s; s = s->next)
		if (memcmp(s->sid, sid, 32) == 0)
			return s;
	return NULL;
}

static struct svc *
new_svc(struct registry *r, const char *name, const uint8_t sid[32],
    const uint8_t owner[32])
{
	struct svc *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	snprintf(s->name, sizeof s->name, "%s", name);
	memcpy(s->sid, sid, 32);
	memcpy(s->owner, owner, 32);
	s->next = r->list;
	r->list = s;
	r->n++;
	return s;
}

/* Add version n (which must be nver + 1); takes ownership of *b. */
static struct svc_version *
add_version(struct svc *s, uint64_t n, const uint8_t vid[32], uint64_t time_ms,
    uint64_t index, struct bundle *b)
{
	if (s->nver == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 4;
		struct svc_version **vs = realloc(s->v, cap * sizeof *vs);
		if (!vs)
			return NULL;
		s->v = vs;
		s->cap = cap;
	}
	struct svc_version *v = calloc(1, sizeof *v);
	if (!v)
		return NULL;
	s->v[s->nver++] = v;
	v->n = n;
	memcpy(v->vid, vid, 32);
	v->time_ms = time_ms;
	v->index = index;
	v->b = *b;
	memset(b, 0, sizeof *b);
	return v;
}

int
reg_resolve(struct registry *r, const char *target, struct svc **so,
    struct svc_version **vo, char *why, size_t whylen)
{
	char name[BUNDLE_MAX_NAME + 1];
	uint8_t id[32];
	const char *at = strchr(target, '@');
	size_t nl = at ? (size_t)(at - target) : strlen(target);

	if (!at && strlen(target) == 64 && hex_decode(target, id, 32) == 0) {
		for (struct svc *s = r->list; s; s = s->next) {
			if (memcmp(s->sid, id, 32) == 0 && s->nver) {
				*so = s;
				*vo = svc_head(s);
				return 0;
			}
			for (uint32_t i = 0; i < s->nver; i++) {
				if (memcmp(s->v[i]->vid, id, 32) == 0) {
					*so = s;
					*vo = s->v[i];
					return 0;
				}
			}
		}
		snprintf(why, whylen, "no service or version with id %s", target);
		return BABL_ENOSERVICE;
	}
	if (nl == 0 || nl > BUNDLE_MAX_NAME) {
		snprintf(why, whylen, "no such service: %s", target);
		return BABL_ENOSERVICE;
	}
	memcpy(name, target, nl);
	name[nl] = 0;
	struct svc *s = reg_by_name(r, name);
	if (!s || !s->nver) {
		snprintf(why, whylen, "no such service: %s", name);
		return BABL_ENOSERVICE;
	}
	*so = s;
	if (!at) {
		*vo = svc_head(s);
		return 0;
	}
	const char *ver = at + 1;
	char *end;
	unsigned long long n = strtoull(ver, &end, 10);
	if (*ver && !*end && n >= 1 && n <= s->nver && strlen(ver) < 8) {
		*vo = s->v[n - 1];
		return 0;
	}
	size_t vl = strlen(ver);
	if (vl >= 8 && vl <= 64) {
		struct svc_version *found = NULL;
		for (uint32_t i = 0; i < s->nver; i++) {
			char hex[65];
			hex_encode(s->v[i]->vid, 32, hex);
			if (strncmp(hex, ver, vl) == 0) {
				if (found) {
					snprintf(why, whylen, "%s: version prefix %s is ambiguous", name, ver);
					return BABL_ENOSERVICE;
				}
				found = s->v[i];
			}
		}
		if (found) {
			*vo = found;
			return 0;
		}
	}
	snprintf(why, whylen, "%s has no version %s (it has 1 to %u)", name, ver, s->nver);
	return BABL_ENOSERVICE;
}

int
reg_check(struct registry *r, const struct wire_deploy *d, uint8_t sid[32],
    uint8_t vid[32], char *why, size_t whylen)
{
	struct bundle b;
	uint8_t msg[BUNDLE_MSG_LEN], zero[32] = {0};
	char owner_hex[17];

	if (bundle_decode(d->bundle.p, d->bundle.len, &b)) {
		snprintf(why, whylen, "malformed bundle");
		return BABL_EPROTO;
	}
	if (b.kind == BUNDLE_LUA) {
		/* Compiled, never run, here: a syntax error refuses the deploy. */
		char err[400];
		if (lsb_compile(b.script, b.source, b.source_len, err, sizeof err)) {
			snprintf(why, whylen, "%s", err);
			bundle_free(&b);
			return BABL_EINPUT;
		}
	}
	bundle_hash(d->bundle.p, d->bundle.len, vid);
	bundle_service_id(d->owner, b.name, sid);
	bundle_deploy_msg(sid, d->version, vid, d->prev, msg);
	int rc = 0;
	if (bundle_verify(msg, d->owner, d->sig)) {
		snprintf(why, whylen, "%s: bad signature: the deploy was not signed by the key it names", b.name);
		rc = BABL_EPERM;
		goto out;
	}
	struct svc *s = reg_by_name(r, b.name);
	if (s && memcmp(s->owner, d->owner, 32) != 0) {
		hex_encode(s->owner, 8, owner_hex);
		snprintf(why, whylen, "%s belongs to another key (owner %s...); a deploy signed by yours cannot change it",
		    b.name, owner_hex);
		rc = BABL_EPERM;
		goto out;
	}
	uint64_t head = s ? s->nver : 0;
	const uint8_t *head_vid = s && s->nver ? svc_head(s)->vid : zero;
	if (d->version != head + 1) {
		snprintf(why, whylen, "%s: version %" PRIu64 " is stale or replayed (the current version is %" PRIu64 ")",
		    b.name, d->version, head);
		rc = BABL_ESTALE;
	} else if (memcmp(d->prev, head_vid, 32) != 0) {
		snprintf(why, whylen, "%s: version %" PRIu64 " does not follow the current version %" PRIu64
		    " (it names another previous version)", b.name, d->version, head);
		rc = BABL_ESTALE;
	}
out:
	bundle_free(&b);
	return rc;
}

/* State writes for one new version. */
static int
persist_version(struct committer *c, struct svc *s, struct svc_version *v,
    const struct wire_deploy *d)
{
	uint8_t key[40], rec[48];
	uint8_t own[32 + BUNDLE_MAX_NAME];
	size_t nl = strlen(s->name);
	int rc;
	memcpy(own, s->owner, 32);
	memcpy(own + 32, s->name, nl);
	if ((rc = commit_put(c, DB_NAMES, s->name, nl, s->sid, 32)))
		return rc;
	if ((rc = commit_put(c, DB_SERVICES, s->sid, 32, own, 32 + nl)))
		return rc;
	memcpy(key, s->sid, 32);
	be64_put(key + 32, v->n);
	memcpy(rec, v->vid, 32);
	be64_put(rec + 32, v->index);
	be64_put(rec + 40, v->time_ms);
	if ((rc = commit_put(c, DB_SERVICES, key, 40, rec, 48)))
		return rc;
	return commit_put(c, DB_BUNDLES, v->vid, 32, d->bundle.p, d->bundle.len);
}

int
reg_apply(struct registry *r, struct committer *c, const struct ent_deploy *ed,
    uint64_t index, struct svc_version **out, char *why, size_t whylen)
{
	uint8_t sid[32], vid[32];
	struct bundle b;
	int rc = reg_check(r, &ed->d, sid, vid, why, whylen);
	if (rc)
		return rc;
	if (bundle_decode(ed->d.bundle.p, ed->d.bundle.len, &b))
		return BABL_EPROTO;
	struct svc *s = by_sid(r, sid);
	if (!s && !(s = new_svc(r, b.name, sid, ed->d.owner))) {
		bundle_free(&b);
		return BABL_ENOMEM;
	}
	struct svc_version *v = add_version(s, ed->d.version, vid, ed->time_ms, index, &b);
	if (!v) {
		bundle_free(&b);
		return BABL_ENOMEM;
	}
	if (c && (rc = persist_version(c, s, v, &ed->d)))
		return rc;
	if (out)
		*out = v;
	return 0;
}

/* Loading: services first (32-byte keys), then their versions in order. */
struct load_ctx {
	struct registry *r;
	struct store_txn *t;
	int err;
};

static int
load_one(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct load_ctx *x = arg;
	if (kl == 32) {
		char name[BUNDLE_MAX_NAME + 1];
		if (vl <= 32 || vl > 32 + BUNDLE_MAX_NAME) {
			x->err = BABL_ECORRUPT;
			return 1;
		}
		memcpy(name, (const uint8_t *)v + 32, vl - 32);
		name[vl - 32] = 0;
		if (!new_svc(x->r, name, k, v)) {
			x->err = BABL_ENOMEM;
			return 1;
		}
		return 0;
	}
	struct svc *s;
	if (kl != 40 || vl != 48 || !(s = by_sid(x->r, k)) ||
	    be64_get((const uint8_t *)k + 32) != s->nver + 1) {
		x->err = BABL_ECORRUPT;
		return 1;
	}
	const void *bb;
	size_t bl;
	struct bundle b;
	if (store_get(x->t, DB_BUNDLES, v, 32, &bb, &bl) || bundle_decode(bb, bl, &b)) {
		x->err = BABL_ECORRUPT;
		return 1;
	}
	const uint8_t *rec = v;
	if (!add_version(s, s->nver + 1, rec, be64_get(rec + 40), be64_get(rec + 32), &b)) {
		bundle_free(&b);
		x->err = BABL_ENOMEM;
		return 1;
	}
	return 0;
}

int
reg_load(struct registry *r, struct store *st)
{
	struct load_ctx x = {r, NULL, 0};
	int rc = store_begin(st, 0, &x.t);
	if (rc)
		return rc;
	rc = store_scan(x.t, DB_SERVICES, NULL, 0, 0, load_one, &x);
	store_abort(x.t);
	return rc < 0 ? rc : x.err;
}
