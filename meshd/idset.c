/*
 * idset.c - linear probing over a power-of-two table kept at most half
 * full; removal shifts later members of the same run back, so there are
 * no tombstones and a lookup stops at the first free slot.
 */
#include <stdlib.h>

#include "err.h"
#include "idset.h"

static size_t
home(uint64_t id, size_t cap)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

static void
put(uint64_t *slot, size_t cap, uint64_t id)
{
	size_t i = home(id, cap);
	while (slot[i] && slot[i] != id)
		i = (i + 1) & (cap - 1);
	slot[i] = id;
}

static size_t
find(const struct idset *s, uint64_t id)
{
	if (!s->cap)
		return SIZE_MAX;
	for (size_t i = home(id, s->cap);; i = (i + 1) & (s->cap - 1)) {
		if (s->slot[i] == id)
			return i;
		if (!s->slot[i])
			return SIZE_MAX;
	}
}

int
idset_has(const struct idset *s, uint64_t id)
{
	return id && find(s, id) != SIZE_MAX;
}

int
idset_add(struct idset *s, uint64_t id)
{
	if (!id)
		return BABL_EINTERNAL;
	if (idset_has(s, id))
		return 0;
	if ((s->n + 1) * 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		uint64_t *slot = calloc(cap, sizeof *slot);
		if (!slot)
			return BABL_ENOMEM;
		for (size_t i = 0; i < s->cap; i++)
			if (s->slot[i])
				put(slot, cap, s->slot[i]);
		free(s->slot);
		s->slot = slot;
		s->cap = cap;
	}
	put(s->slot, s->cap, id);
	s->n++;
	return 0;
}

int
idset_del(struct idset *s, uint64_t id)
{
	size_t i = id ? find(s, id) : SIZE_MAX;
	if (i == SIZE_MAX)
		return 0;
	size_t mask = s->cap - 1;
	/* Close the gap: a later member of the run whose home is not in
	 * (gap, its place] would no longer be found past the free slot. */
	for (size_t j = (i + 1) & mask; s->slot[j]; j = (j + 1) & mask) {
		size_t h = home(s->slot[j], s->cap);
		int stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
		if (!stays) {
			s->slot[i] = s->slot[j];
			i = j;
		}
	}
	s->slot[i] = 0;
	s->n--;
	return 1;
}

void
idset_clear(struct idset *s)
{
	free(s->slot);
	s->slot = NULL;
	s->cap = s->n = 0;
}
