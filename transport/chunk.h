/* SPDX-License-Identifier: MIT */
/*
 * Private to transport/: the chunk, the one unit of QEMU's stream that both
 * sides move through their stages, and the fixed pool it comes from.
 *
 * A chunk's state names its owner, and only its owner touches its bytes:
 *
 *   sender:   FREE -> FILLING (a reader) -> QUEUED (the compress pool)
 *             -> READY (parked in its stream's ring) -> SENDING (a channel)
 *             -> SENT (kept in the ring until the receiver confirms it
 *             written) -> FREE. --adaptive: QUEUED -> SENDING. A failed
 *             compression: QUEUED -> FREE. Resume (DESIGN.md 7): a lost
 *             channel's chunks go SENT -> READY and SENDING -> READY (sent
 *             again, MW_F_RESENT); a chunk confirmed while a channel holds
 *             it goes SENDING -> FREE, and one confirmed while it waits to
 *             be sent again READY -> FREE.
 *   receiver: FREE -> FILLING (the channel its DATA frame came in on)
 *             -> DECODING (the decompress pool) -> READY (verified, waits
 *             its turn in the reorder window) -> WRITING (the stream's
 *             writer) -> FREE. A raw chunk is verified by its channel:
 *             FILLING -> READY. A failed decompress or verify: FILLING or
 *             DECODING -> FREE (the session fails).
 *
 * mw_chunk_set_state() is the only place a state changes; Debug builds
 * check every transition against the side's table (MW_ASSERT), so a stage
 * that touches a chunk it gave away aborts there instead of corrupting a
 * stream. Hand-overs between stages pass the pointer with a `**` that the
 * callee clears (mw_chunk_pool_put, mw_sched_park, mw_reasm_pop, ...), or
 * say that they borrow.
 *
 * The pool has no lock of its own: the side's scheduler lock guards it
 * (tx_sched.c's lock, the receiver's r->lock), which also orders every
 * state change. Pure memory, so it is unit-tested on its own.
 */
#ifndef MW_CHUNK_H
#define MW_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mw_comp.h"

enum mw_chunk_side {
	MW_CHUNK_TX = 0, /* migwire send */
	MW_CHUNK_RX,	 /* migwire recv */
};

enum mw_chunk_state {
	MW_CHUNK_FREE = 0, /* in its pool */
	MW_CHUNK_FILLING,  /* a reader (tx) or a channel (rx) fills it */
	MW_CHUNK_QUEUED,   /* tx: has its seq; the compress pool has the job */
	MW_CHUNK_READY,	   /* tx: parked, to be taken; rx: verified, waits */
	MW_CHUNK_SENDING,  /* tx: a channel frames and sends it */
	MW_CHUNK_DECODING, /* rx: the decompress pool has the job */
	MW_CHUNK_WRITING,  /* rx: its stream's writer writes it */
	MW_CHUNK_SENT,	   /* tx: sent, kept until the receiver confirms it */
	MW_CHUNK_NSTATES,
};

struct mw_sched_stream;
struct rx_stream;

/*
 * Locking: state, seq, st, chan, resend and next_free change under the pool's
 * lock (see above); the channel that holds a chunk SENDING reads chan and
 * resend without it: nobody writes them while it is SENDING (its take set chan;
 * resend is set by mw_sched_unsend() and mw_sched_chan_lost() as the chunk goes
 * back to READY, and cleared when it returns to the pool). side is fixed when
 * the pool first hands the chunk out; raw and wire once allocated
 * (mw_chunk_bufs_alloc). The other fields belong to the owner that state names:
 * raw/raw_len the filler while FILLING, job and wire the compress pool while
 * QUEUED or DECODING; pages the filler (tx: the reader; rx: the channel, under
 * the lock); a channel (SENDING) or writer (WRITING) only reads.
 */
struct mw_chunk {
	uint64_t seq; /* in its stream */
	union {	      /* the stream it belongs to, on the side that uses it */
		struct mw_sched_stream *tx;
		struct rx_stream *rx;
	} st;
	uint8_t *raw;  /* QEMU's bytes */
	uint8_t *wire; /* compressed bytes; NULL without a codec */
	uint32_t raw_len;
	uint8_t side;  /* enum mw_chunk_side */
	uint8_t state; /* enum mw_chunk_state */
	bool pages;    /* raw holds a --pages op stream (MW_F_PAGES) */
	uint8_t chan;  /* tx: the channel that took it last */
	bool resend;   /* tx: may have reached the receiver: MW_F_RESENT */
	struct mw_comp_job job;
	struct mw_chunk *next_free;
};

/*
 * A fixed number of chunks, decided at init. Buffers: raw_cap bytes of raw
 * and, when wire_cap is not 0, wire_cap bytes of wire each. The sender
 * allocates them all at init (no allocation on its data path); the
 * receiver's come on first use (mw_chunk_bufs_alloc), so a --window larger
 * than the traffic needs costs no memory.
 *
 * Locking: count, side, raw_cap, wire_cap and chunks are fixed at init;
 * free_list and nfresh are under the caller's lock (see above).
 */
struct mw_chunk_pool {
	unsigned count;
	enum mw_chunk_side side;
	size_t raw_cap, wire_cap;
	struct mw_chunk *chunks;
	struct mw_chunk *free_list; /* chunks handed out and put back */
	unsigned nfresh;	    /* chunks[nfresh..] never handed out */
};

/*
 * Allocates count (>= 1) chunk descriptors, all FREE; with prealloc, also
 * every chunk's buffers. Returns 0 or -ENOMEM (p is then destroyed).
 */
int mw_chunk_pool_init(struct mw_chunk_pool *p, enum mw_chunk_side side,
		       unsigned count, size_t raw_cap, size_t wire_cap,
		       bool prealloc);
/* Frees every chunk and buffer, whatever state they are in: every thread
 * that used the pool must have been joined. Accepts a zeroed p. */
void mw_chunk_pool_destroy(struct mw_chunk_pool *p);
/* A FREE chunk, now FILLING and the caller's, or NULL when none is left.
 * Its buffers may not be allocated yet (mw_chunk_bufs_alloc). */
struct mw_chunk *mw_chunk_pool_get(struct mw_chunk_pool *p);
/* No chunk left to get. */
static inline bool mw_chunk_pool_empty(const struct mw_chunk_pool *p)
{
	return !p->free_list && p->nfresh == p->count;
}
/* Takes *c (any state but FREE) and NULLs it: FREE, back in p. Accepts
 * *c == NULL. */
void mw_chunk_pool_put(struct mw_chunk_pool *p, struct mw_chunk **c);
/*
 * Allocates c's buffers if it has none yet. Returns 0 or -ENOMEM. Context:
 * c's owner, without the pool's lock (c's buffers are its owner's, and the
 * caps are fixed).
 */
int mw_chunk_bufs_alloc(const struct mw_chunk_pool *p, struct mw_chunk *c);

/* Is from -> to a transition the side's life cycle has? */
bool mw_chunk_state_ok(enum mw_chunk_side side, enum mw_chunk_state from,
		       enum mw_chunk_state to);
/* The one way a state changes. Debug builds abort on a transition that
 * mw_chunk_state_ok() refuses. Context: the pool's lock held. */
void mw_chunk_set_state(struct mw_chunk *c, enum mw_chunk_state to);
/* For messages and tests: "FREE", "FILLING", ... */
const char *mw_chunk_state_name(enum mw_chunk_state st);

#endif
