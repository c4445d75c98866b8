/* kvcache.c - writes not yet in the store; see kvcache.h. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kvcache.h"

#define NBUCKETS 4096

struct kvc_ent {
	struct kvc_ent *next;
	uint8_t sid[32];
	uint64_t call, durable_at;
	int deleted;
	size_t kl, vl;
	uint8_t *k, *v; /* in this allocation */
};

struct kvcache {
	struct kvc_ent *b[NBUCKETS];
	size_t n;
};

static unsigned
bucket(const uint8_t sid[32], const void *k, size_t kl)
{
	/* FNV-1a over the service id and the key. */
	uint32_t h = 2166136261u;
	for (int i = 0; i < 32; i++)
		h = (h ^ sid[i]) * 16777619u;
	for (size_t i = 0; i < kl; i++)
		h = (h ^ ((const uint8_t *)k)[i]) * 16777619u;
	return h % NBUCKETS;
}

int
kvc_open(struct kvcache **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : BABL_ENOMEM;
}

void
kvc_close(struct kvcache *c)
{
	if (!c)
		return;
	for (int i = 0; i < NBUCKETS; i++) {
		struct kvc_ent *e = c->b[i];
		while (e) {
			struct kvc_ent *nx = e->next;
			free(e);
			e = nx;
		}
	}
	free(c);
}

static struct kvc_ent **
find(struct kvcache *c, const uint8_t sid[32], const void *k, size_t kl)
{
	struct kvc_ent **pp = &c->b[bucket(sid, k, kl)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->kl == kl && memcmp((*pp)->sid, sid, 32) == 0 &&
		    memcmp((*pp)->k, k, kl) == 0)
			break;
	return pp;
}

int
kvc_put(struct kvcache *c, const uint8_t sid[32], const void *k, size_t kl,
    int deleted, const void *v, size_t vl, uint64_t call)
{
	struct kvc_ent *e = malloc(sizeof *e + kl + vl);
	if (!e)
		return BABL_ENOMEM;
	memcpy(e->sid, sid, 32);
	e->call = call;
	e->durable_at = UINT64_MAX;
	e->deleted = deleted;
	e->kl = kl;
	e->vl = deleted ? 0 : vl;
	e->k = (uint8_t *)(e + 1);
	e->v = e->k + kl;
	memcpy(e->k, k, kl);
	if (!deleted && vl)
		memcpy(e->v, v, vl);
	struct kvc_ent **pp = find(c, sid, k, kl);
	if (*pp && (*pp)->call > call) {
		/* A later call's write is already here: it is the newer value
		 * (a replicated member may learn an earlier call's writes from
		 * the log after its own run of a later call wrote them). */
		free(e);
		return 0;
	}
	if (*pp) {
		e->next = (*pp)->next;
		free(*pp);
		*pp = e;
	} else {
		e->next = NULL;
		*pp = e;
		c->n++;
	}
	return 0;
}

int
kvc_get(struct kvcache *c, const uint8_t sid[32], const void *k, size_t kl,
    int *deleted, const void **v, size_t *vl)
{
	struct kvc_ent *e = *find(c, sid, k, kl);
	if (!e)
		return 0;
	*deleted = e->deleted;
	*v = e->v;
	*vl = e->vl;
	return 1;
}

void
kvc_applied(struct kvcache *c, const uint8_t sid[32], const void *k, size_t kl, uint64_t call,
    uint64_t durable_at)
{
	struct kvc_ent *e = *find(c, sid, k, kl);
	if (e && e->call == call)
		e->durable_at = durable_at;
}

/* Remove the entries for which gone(e, arg) says so. */
static void
remove_if(struct kvcache *c, int (*gone)(const struct kvc_ent *, uint64_t), uint64_t arg)
{
	for (int i = 0; i < NBUCKETS && c->n; i++) {
		struct kvc_ent **pp = &c->b[i];
		while (*pp) {
			struct kvc_ent *e = *pp;
			if (gone(e, arg)) {
				*pp = e->next;
				free(e);
				c->n--;
			} else {
				pp = &e->next;
			}
		}
	}
}

static int
durable_by(const struct kvc_ent *e, uint64_t txns)
{
	return e->durable_at <= txns;
}

void
kvc_evict(struct kvcache *c, uint64_t txns)
{
	remove_if(c, durable_by, txns);
}

void
kvc_scan(struct kvcache *c, const uint8_t sid[32], const void *prefix, size_t pl,
    kvc_visit fn, void *arg)
{
	for (int i = 0; i < NBUCKETS && c->n; i++)
		for (struct kvc_ent *e = c->b[i]; e; e = e->next)
			if (memcmp(e->sid, sid, 32) == 0 && e->kl >= pl &&
			    memcmp(e->k, prefix, pl) == 0)
				fn(arg, e->k, e->kl, e->deleted);
}

size_t
kvc_count(const struct kvcache *c)
{
	return c->n;
}

static int
unapplied_of(const struct kvc_ent *e, uint64_t call)
{
	return e->call == call && e->durable_at == UINT64_MAX;
}

void
kvc_drop(struct kvcache *c, uint64_t call)
{
	remove_if(c, unapplied_of, call);
}
