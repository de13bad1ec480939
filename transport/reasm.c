/* SPDX-License-Identifier: MIT */
/*
 * The receiver's per-stream reorder window (see reasm.h). Called by channel
 * threads, decompress callbacks and writers, always under the session lock.
 */
#include "reasm.h"

#include <errno.h>
#include <stdlib.h>

#include "mw_assert.h"
#include "mw_err.h"

int mw_reasm_init(struct mw_reasm *r, uint32_t nslots)
{
	r->nslots = nslots ? nslots : 1;
	r->next = 0;
	r->granted = r->nslots;
	r->end = 0;
	r->ended = false;
	r->slot = calloc(r->nslots, sizeof(*r->slot));
	return r->slot ? 0 : -ENOMEM;
}

void mw_reasm_destroy(struct mw_reasm *r)
{
	free(r->slot);
	r->slot = NULL;
}

int mw_reasm_claim(struct mw_reasm *r, struct mw_chunk_pool *p, uint64_t seq,
		   struct mw_chunk **out, const char **why)
{
	struct mw_chunk *c;
	unsigned idx;

	*out = NULL;
	if (seq < r->next) {
		*why = "duplicate chunk (already written)";
		return -MW_E_PROTO;
	}
	if (r->ended && seq >= r->end) {
		*why = "chunk beyond the stream's end";
		return -MW_E_PROTO;
	}
	if (seq >= r->granted) {
		*why = "chunk beyond the granted window";
		return -MW_E_PROTO;
	}
	/* granted - next <= nslots, so seq's slot can only hold seq itself */
	idx = (unsigned)(seq % r->nslots);
	if (r->slot[idx]) {
		*why = "duplicate chunk";
		return -MW_E_PROTO;
	}
	c = mw_chunk_pool_get(p);
	MW_BUG_ON(!c); /* the windows together are not larger than p */
	c->seq = seq;
	r->slot[idx] = c;
	*out = c;
	return 0;
}

struct mw_chunk *mw_reasm_head(const struct mw_reasm *r)
{
	struct mw_chunk *c = r->slot[r->next % r->nslots];

	if (c && c->state == MW_CHUNK_READY && c->seq == r->next)
		return c;
	return NULL;
}

bool mw_reasm_pop(struct mw_reasm *r, struct mw_chunk_pool *p,
		  struct mw_chunk **c, uint64_t *limit)
{
	struct mw_chunk **slot = &r->slot[r->next % r->nslots];

	MW_BUG_ON(*slot != *c || (*c)->seq != r->next);
	*slot = NULL;
	mw_chunk_pool_put(p, c);
	r->next++;
	if (r->ended || r->granted - r->next > r->nslots / 2)
		return false;
	r->granted = r->next + r->nslots;
	*limit = r->granted;
	return true;
}

void mw_reasm_drop(struct mw_reasm *r, struct mw_chunk_pool *p,
		   struct mw_chunk **c)
{
	struct mw_chunk **slot = &r->slot[(*c)->seq % r->nslots];

	MW_BUG_ON(*slot != *c);
	*slot = NULL;
	mw_chunk_pool_put(p, c);
}

int mw_reasm_end(struct mw_reasm *r, uint64_t chunks, const char **why)
{
	uint32_t i;

	if (r->ended) {
		*why = "END came twice";
		return -MW_E_PROTO;
	}
	if (chunks < r->next) {
		*why = "END says fewer chunks than were written";
		return -MW_E_PROTO;
	}
	for (i = 0; i < r->nslots; i++)
		if (r->slot[i] && r->slot[i]->seq >= chunks) {
			*why = "END says fewer chunks than arrived";
			return -MW_E_PROTO;
		}
	r->ended = true;
	r->end = chunks;
	return 0;
}

uint64_t mw_reasm_grant(struct mw_reasm *r)
{
	if (!r->ended)
		r->granted = r->next + r->nslots;
	return r->granted;
}

enum mw_reasm_dup mw_reasm_dup(const struct mw_reasm *r, uint64_t seq,
			       struct mw_chunk **c)
{
	struct mw_chunk *s;

	*c = NULL;
	if (seq < r->next)
		return MW_REASM_HAVE;
	if (seq >= r->granted)
		return MW_REASM_NEW; /* the claim refuses it */
	s = r->slot[seq % r->nslots];
	if (!s || s->seq != seq)
		return MW_REASM_NEW;
	if (s->state != MW_CHUNK_FILLING)
		return MW_REASM_HAVE;
	*c = s;
	return MW_REASM_FILLING;
}
