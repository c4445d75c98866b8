/*
 * svc.h - the registry of deployed services, built by applying DEPLOY
 * entries.  It lives in memory for lookups and is written through to the
 * store (DB_NAMES, DB_SERVICES, DB_BUNDLES) as state writes.
 *
 * A name belongs to the first key that deploys it.  Each deploy must be
 * signed by that key, carry the next version number and name the current
 * head as its previous version; anything else changes nothing.
 */
#ifndef MESHD_SVC_H
#define MESHD_SVC_H

#include <stddef.h>
#include <stdint.h>

#include "bundle.h"
#include "commit.h"
#include "entry.h"
#include "store.h"

struct svc_version {
	uint64_t n;
	uint8_t vid[32];
	uint64_t time_ms;
	uint64_t index; /* of its DEPLOY entry */
	struct bundle b;
};

struct svc {
	struct svc *next;
	char name[BUNDLE_MAX_NAME + 1];
	uint8_t sid[32], owner[32];
	uint32_t nver, cap;
	/* v[0] is version 1.  Each version is allocated on its own and never
	 * moves, so calls may keep pointers to it. */
	struct svc_version **v;
	uint64_t calls;        /* calls recorded since start */
};

struct registry {
	struct svc *list;
	size_t n;
};

/* Load from the store at start-up. */
int reg_load(struct registry *r, struct store *st);
void reg_free(struct registry *r);

struct svc *reg_by_name(struct registry *r, const char *name);
static inline struct svc_version *svc_head(struct svc *s)
{
	return s->nver ? s->v[s->nver - 1] : NULL;
}

/*
 * Resolve a call target: NAME, NAME@N (version number), NAME@HEX (a prefix
 * of at least 8 hex digits of a version id), or a whole service id or
 * version id in hex.  0 or BABL_ENOSERVICE with a reason in why.
 */
int reg_resolve(struct registry *r, const char *target, struct svc **s,
    struct svc_version **v, char *why, size_t whylen);

/*
 * Check a deploy against the current state without changing anything.
 * On success fills sid and vid.  Errors: BABL_EPROTO (malformed bundle),
 * BABL_EPERM (bad signature, name owned by another key), BABL_ESTALE
 * (replayed or older version, wrong previous version); why says which.
 */
int reg_check(struct registry *r, const struct wire_deploy *d, uint8_t sid[32],
    uint8_t vid[32], char *why, size_t whylen);

/*
 * Apply a DEPLOY entry: check it again (state may have moved since it was
 * proposed), then add the version and queue its state writes on c (NULL:
 * memory only, as when rebuilding at start-up).  Returns as reg_check;
 * *out names the version added.
 */
int reg_apply(struct registry *r, struct committer *c, const struct ent_deploy *d,
    uint64_t index, struct svc_version **out, char *why, size_t whylen);

#endif
