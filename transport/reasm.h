/* SPDX-License-Identifier: MIT */
/*
 * Private to transport/: the per-stream reorder window of the receiver.
 *
 * Pure bookkeeping, no I/O and no locking (the caller holds the session
 * lock), so it can be unit-tested and fuzzed on its own. A stream has
 * nslots slots; chunk `seq` lives in slot seq % nslots. The sender may only
 * send seq < granted (its credit), so every legitimate frame finds its slot
 * free; anything else is rejected with the reason.
 */
#ifndef REASM_H
#define REASM_H

#include <stdbool.h>
#include <stdint.h>

enum mw_reasm_state {
	MW_RS_FREE = 0,
	MW_RS_FILLING,	/* payload arriving */
	MW_RS_DECODING, /* in the decompress pool */
	MW_RS_READY,	/* verified, waiting for its turn */
};

struct mw_reasm {
	uint32_t nslots;
	uint64_t next;	  /* next sequence number to write */
	uint64_t granted; /* the sender may send seq < granted */
	uint64_t end;	  /* chunks in the stream, once END said so */
	bool ended;
	uint8_t *state; /* per slot, enum mw_reasm_state */
	uint64_t *seq;	/* per slot */
};

/* nslots >= 1; the initial credit is nslots. Returns 0 or -ENOMEM. */
int mw_reasm_init(struct mw_reasm *r, uint32_t nslots);
void mw_reasm_destroy(struct mw_reasm *r);
/*
 * Claims the slot for chunk seq (state FILLING). Returns the slot index, or
 * -MW_E_PROTO with *why naming the violation (duplicate, beyond the end,
 * beyond the credit).
 */
int mw_reasm_claim(struct mw_reasm *r, uint64_t seq, const char **why);
/* Moves a claimed slot on: FILLING -> DECODING -> READY. */
void mw_reasm_mark(struct mw_reasm *r, unsigned idx, enum mw_reasm_state st);
/* The slot holding `next` when it is READY, else -1. */
int mw_reasm_head(const struct mw_reasm *r);
/*
 * The head slot was written: frees it and advances `next`. Returns true when
 * half the credit is used up and a WINDOW with the new *limit should go out.
 */
bool mw_reasm_pop(struct mw_reasm *r, uint64_t *limit);
/* END said the stream has `chunks` chunks. -MW_E_PROTO (with *why) if it
 * came twice or contradicts what was already claimed or written. */
int mw_reasm_end(struct mw_reasm *r, uint64_t chunks, const char **why);
/* Every chunk up to END is written. */
static inline bool mw_reasm_done(const struct mw_reasm *r)
{
	return r->ended && r->next == r->end;
}

#endif
