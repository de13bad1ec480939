/* SPDX-License-Identifier: MIT */
/*
 * The receiver's per-stream reorder window (see reasm.h). Called by channel
 * threads, decompress callbacks and writers, always under the session lock.
 */
#include "reasm.h"

#include <errno.h>
#include <stdlib.h>

#include "mw_err.h"

int mw_reasm_init(struct mw_reasm *r, uint32_t nslots)
{
	r->nslots = nslots ? nslots : 1;
	r->next = 0;
	r->granted = r->nslots;
	r->end = 0;
	r->ended = false;
	r->state = calloc(r->nslots, sizeof(*r->state));
	r->seq = calloc(r->nslots, sizeof(*r->seq));
	if (!r->state || !r->seq) {
		mw_reasm_destroy(r);
		return -ENOMEM;
	}
	return 0;
}

void mw_reasm_destroy(struct mw_reasm *r)
{
	free(r->state);
	free(r->seq);
	r->state = NULL;
	r->seq = NULL;
}

int mw_reasm_claim(struct mw_reasm *r, uint64_t seq, const char **why)
{
	unsigned idx;

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
	if (r->state[idx] != MW_RS_FREE) {
		*why = "duplicate chunk";
		return -MW_E_PROTO;
	}
	r->state[idx] = MW_RS_FILLING;
	r->seq[idx] = seq;
	return (int)idx;
}

void mw_reasm_mark(struct mw_reasm *r, unsigned idx, enum mw_reasm_state st)
{
	r->state[idx] = (uint8_t)st;
}

int mw_reasm_head(const struct mw_reasm *r)
{
	unsigned idx = (unsigned)(r->next % r->nslots);

	if (r->state[idx] == MW_RS_READY && r->seq[idx] == r->next)
		return (int)idx;
	return -1;
}

bool mw_reasm_pop(struct mw_reasm *r, uint64_t *limit)
{
	r->state[r->next % r->nslots] = MW_RS_FREE;
	r->next++;
	if (r->ended || r->granted - r->next > r->nslots / 2)
		return false;
	r->granted = r->next + r->nslots;
	*limit = r->granted;
	return true;
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
		if (r->state[i] != MW_RS_FREE && r->seq[i] >= chunks) {
			*why = "END says fewer chunks than arrived";
			return -MW_E_PROTO;
		}
	r->ended = true;
	r->end = chunks;
	return 0;
}
