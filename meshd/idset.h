/*
 * idset.h - a set of nonzero 64-bit ids (log indexes), in one array with
 * open addressing.  meshd keeps the calls that are open (their CALL is
 * applied, no OUTCOME yet) in one, so that the first OUTCOME of a call
 * decides and a later one changes nothing, however far apart they are.
 *
 * Pure: no I/O.  Memory grows with the number of ids held, not with how
 * many went through.
 */
#ifndef MESHD_IDSET_H
#define MESHD_IDSET_H

#include <stddef.h>
#include <stdint.h>

struct idset {
	uint64_t *slot; /* 0: free */
	size_t cap;     /* a power of two, or 0 */
	size_t n;
};

/* Add id: 0, or BABL_ENOMEM with the set unchanged (BABL_EINTERNAL for
 * id 0, which marks a free slot). */
int idset_add(struct idset *s, uint64_t id);
int idset_has(const struct idset *s, uint64_t id);
/* Remove id: 1 if it was there, else 0. */
int idset_del(struct idset *s, uint64_t id);
void idset_clear(struct idset *s);

#endif
