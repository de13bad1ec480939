/* SPDX-License-Identifier: MIT */
/*
 * Private to transport/: the per-stream reorder window of the receiver.
 *
 * Pure bookkeeping, no I/O and no locking (the caller holds the session
 * lock, which also guards the chunk pool), so it can be unit-tested and
 * fuzzed on its own. A stream has nslots slots; chunk `seq` lives in slot
 * seq % nslots from its claim until it is written. The sender may only
 * send seq < granted (its credit), so every legitimate frame finds its slot
 * free; anything else is rejected with the reason.
 *
 * The window holds the chunks (chunk.h) of its stream that arrived and are
 * not written yet; each one's state names who works on it: FILLING the
 * channel that claimed it while its payload arrives, DECODING whoever
 * verifies it (the decompress pool, or for a raw chunk the channel, after
 * its payload is whole), READY nobody (it
 * waits for its turn), WRITING the stream's writer. Those stages borrow the
 * chunk; it leaves the window only through mw_reasm_pop() (written) or
 * mw_reasm_drop() (failed), back to the pool.
 */
#ifndef REASM_H
#define REASM_H

#include <stdbool.h>
#include <stdint.h>

#include "chunk.h"

/*
 * Locking: none of its own; the caller's lock (the receiver's r->lock)
 * guards every field and the state of every chunk in slot[]. nslots is
 * fixed at init.
 */
struct mw_reasm {
	uint32_t nslots;
	uint64_t next;	  /* next sequence number to write */
	uint64_t granted; /* the sender may send seq < granted */
	uint64_t end;	  /* chunks in the stream, once END said so */
	bool ended;
	struct mw_chunk **slot; /* per slot: its chunk, NULL when free */
};

/* nslots >= 1; the initial credit is nslots. Returns 0 or -ENOMEM. */
int mw_reasm_init(struct mw_reasm *r, uint32_t nslots);
/* Frees the slots, not the chunks in them (the pool owns those). */
void mw_reasm_destroy(struct mw_reasm *r);
/*
 * Claims the slot for chunk seq: takes a chunk from p (FILLING, seq set)
 * and holds it there. Returns 0 with the chunk in *out, borrowed: the
 * caller fills it and hands it on. Or -MW_E_PROTO with *why naming the
 * violation (duplicate, beyond the end, beyond the credit). p always has a
 * chunk for a claim that passes: the windows of all streams together are
 * not larger than p (the --window budget, sink.c).
 */
int mw_reasm_claim(struct mw_reasm *r, struct mw_chunk_pool *p, uint64_t seq,
		   struct mw_chunk **out, const char **why);
/* The chunk of `next` when it is READY, else NULL. The writer borrows it
 * (READY -> WRITING) and gives it back with mw_reasm_pop(). */
struct mw_chunk *mw_reasm_head(const struct mw_reasm *r);
/*
 * Takes *c (the head, WRITING: written) and NULLs it: frees its slot,
 * returns it to p and advances `next`. Returns true when half the credit
 * is used up and a WINDOW with the new *limit should go out.
 */
bool mw_reasm_pop(struct mw_reasm *r, struct mw_chunk_pool *p,
		  struct mw_chunk **c, uint64_t *limit);
/* Takes *c (FILLING or DECODING: its decompression or verification
 * failed) and NULLs it: out of its slot and back to p. */
void mw_reasm_drop(struct mw_reasm *r, struct mw_chunk_pool *p,
		   struct mw_chunk **c);
/* END said the stream has `chunks` chunks. -MW_E_PROTO (with *why) if it
 * came twice or contradicts what was already claimed or written. */
int mw_reasm_end(struct mw_reasm *r, uint64_t chunks, const char **why);
/*
 * The window the next WINDOW frame grants: next + nslots until END (all
 * slots free below that), unchanged after it. Returns the new limit.
 */
uint64_t mw_reasm_grant(struct mw_reasm *r);
/* What a frame sent again (MW_F_RESENT) for chunk seq meets: */
enum mw_reasm_dup {
	MW_REASM_NEW = 0, /* nothing: claim it */
	MW_REASM_HAVE,	  /* written, or held past FILLING: drop the copy */
	MW_REASM_FILLING, /* a channel is filling it (*c): that one is dead */
};
enum mw_reasm_dup mw_reasm_dup(const struct mw_reasm *r, uint64_t seq,
			       struct mw_chunk **c);
/* Every chunk up to END is written. */
static inline bool mw_reasm_done(const struct mw_reasm *r)
{
	return r->ended && r->next == r->end;
}

#endif
