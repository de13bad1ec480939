/* SPDX-License-Identifier: MIT */
/*
 * The sender's scheduler (tx_sched.c): the chunk pool, each stream's ring of
 * chunks in sequence order, its credit, and the channels that wait for work.
 *
 * A chunk moves FREE -> FILLING (a reader) -> QUEUED (the compress pool, or
 * the reader itself with codec none) -> READY (the scheduler) -> SENDING (a
 * channel) -> SENT (the scheduler keeps it) -> FREE once the receiver
 * confirms it written (WINDOW's written count). --adaptive lets a channel
 * claim a QUEUED chunk straight to SENDING, and a chunk whose compression
 * failed goes QUEUED -> FREE. A lost channel's chunks go back to READY
 * (SENT and SENDING ones alike) and are sent again with MW_F_RESENT, before
 * anything newer of their stream. Each state has one owner; every
 * hand-over below says what it takes.
 */
#ifndef MW_TX_SCHED_H
#define MW_TX_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "mw_comp.h"

/*
 * One stream's forward direction, embedded in the caller's stream object
 * and registered with mw_sched_stream_add().
 *
 * Locking: id and drain_efd are set by mw_sched_stream_add() and fixed
 * after. Everything else is under the scheduler's lock; total_bytes and
 * total_chunks are fixed once the stream's END was taken, so the channel
 * that took it reads them without the lock, and end_resent too: only
 * mw_sched_chan_lost() writes it (sets it, under the lock, as it gives the
 * lost channel's END back), before the take that claims the END again
 * under the same lock; nothing clears it.
 */
struct mw_sched_stream {
	unsigned id;
	int drain_efd; /* poked when next_take reaches next_seq */
	/* chunks [confirmed, next_seq), at seq % nchunks: fewer than
	 * nchunks, so no two share a slot. Below next_take SENT, SENDING or
	 * READY (to be sent again); from next_take on QUEUED or READY; NULL
	 * after a failure. A SENDING chunk confirmed meanwhile has left the
	 * ring: its channel frees it. */
	struct mw_chunk **ring;
	uint64_t next_seq, next_take;
	uint64_t confirmed; /* every chunk below it is written (WINDOW) */
	uint64_t limit;	    /* credit: seqs below it may be sent */
	unsigned nresend;   /* READY chunks below next_take */
	bool wants_drain;   /* the reader waits for next_take == next_seq */
	bool input_done, end_claimed;
	bool end_resent;  /* the END may have arrived: MW_F_RESENT */
	uint8_t end_chan; /* the channel that claimed the END */
	uint64_t total_chunks, total_bytes;
};

struct mw_sched_cfg {
	unsigned nchunks;  /* pool size, >= 2 */
	size_t chunk_size; /* raw bytes per chunk */
	size_t out_cap;	   /* compressed buffer per chunk; 0: none */
	unsigned nr_chans;
	const int *chan_efd; /* nr_chans eventfds: "look for work" */
	int end_efd;	     /* poked when a stream's input or END is done */
};

struct mw_sched;

/* Allocates the pool (every chunk FREE). Returns 0 or -ENOMEM.
 * Context: main thread, before any other call. */
int mw_sched_new(struct mw_sched **out, const struct mw_sched_cfg *cfg);
/* Frees the pool, whatever state its chunks are in. Every thread that used
 * it must have been joined. Accepts NULL. */
void mw_sched_free(struct mw_sched *s);
/*
 * --adaptive: a channel may claim a stream's next chunk back from pool while
 * it still waits there; the chunk then travels raw. Context: main thread,
 * before the channels start.
 */
void mw_sched_adaptive(struct mw_sched *s, struct mw_comp_pool *pool);
/* Makes every blocked and later mw_sched_get_free() return -MW_E_CANCEL. */
void mw_sched_stop(struct mw_sched *s);

/*
 * Registers q with credit limit and gives it the next stream id. q stays
 * registered (and must stay allocated) until mw_sched_free(). Returns 0,
 * -ENOMEM, or -EMFILE when MW_STREAMS_MAX streams exist.
 * Context: one thread at a time (ids are handed out in call order).
 */
int mw_sched_stream_add(struct mw_sched *s, struct mw_sched_stream *q,
			uint64_t limit, int drain_efd);
/* Frees what mw_sched_stream_add() allocated in q. Accepts a zeroed q. */
void mw_sched_stream_destroy(struct mw_sched_stream *q);
/* The stream with that id, or NULL. */
struct mw_sched_stream *mw_sched_stream_get(struct mw_sched *s, unsigned id);
unsigned mw_sched_nstreams(struct mw_sched *s);

/*
 * Reader side. get_free blocks until q may fill another chunk (a chunk is
 * free, q is below its credit and holds less than its share of the pool,
 * kept chunks counted)
 * and returns it in *out, FILLING and the caller's. Returns 0 or
 * -MW_E_CANCEL after mw_sched_stop(). Context: q's reader.
 */
int mw_sched_get_free(struct mw_sched *s, struct mw_sched_stream *q,
		      struct mw_chunk **out);
/*
 * Gives the FILLING chunk c (raw_len set) the stream's next seq and makes it
 * QUEUED in its ring, where --adaptive may claim it. Borrows c: the caller
 * hands it on next, to the compress pool or to mw_sched_park(). Returns seq.
 */
uint64_t mw_sched_queue(struct mw_sched *s, struct mw_chunk *c);
/* Takes *c (QUEUED, its job done: raw or compressed) and NULLs it: READY. */
void mw_sched_park(struct mw_sched *s, struct mw_chunk **c);
/* The input of q ended after bytes: its END becomes takeable. */
void mw_sched_input_end(struct mw_sched *s, struct mw_sched_stream *q,
			uint64_t bytes);
/*
 * Partial flush: returns true, and asks for a poke of q->drain_efd, while
 * some chunk of q is not taken yet; false when all are. drain_cancel
 * withdraws the request.
 */
bool mw_sched_drain_wait(struct mw_sched *s, struct mw_sched_stream *q);
void mw_sched_drain_cancel(struct mw_sched *s, struct mw_sched_stream *q);

/*
 * Channel side. Takes the next chunk of the first stream that has one, round
 * robin over streams: a chunk to send again (the lowest seq; c->resend says
 * MW_F_RESENT) before the next new one in sequence order below its credit, and
 * returns it SENDING and the caller's (c->chan = chan). --adaptive: a stream's
 * next chunk that still waits in the compress pool is claimed back and returned
 * raw when sock (the channel's socket) has at most one chunk unacknowledged. Or
 * claims a stream's END (*end, NULL otherwise) once all its chunks are taken.
 * Returns NULL when there is nothing: channel chan is then idle and its eventfd
 * is poked when work comes. Context: channel chan's thread.
 */
struct mw_chunk *mw_sched_take(struct mw_sched *s, unsigned chan, int sock,
			       struct mw_sched_stream **end);
/* Takes *c (any state but FREE and READY) and NULLs it: back to the pool,
 * out of its stream's ring (a QUEUED chunk whose compression failed; or
 * teardown). Accepts *c == NULL. */
void mw_sched_put(struct mw_sched *s, struct mw_chunk **c);
/* Takes *c (SENDING: its frame left in full) and NULLs it: SENT, kept in
 * its ring until confirmed; FREE when it was confirmed meanwhile. */
void mw_sched_sent(struct mw_sched *s, struct mw_chunk **c);
/* Takes *c (SENDING: its frame did not leave in full, the channel was lost
 * or could not seal it) and NULLs it: READY, to be sent again with
 * MW_F_RESENT by any channel; FREE when confirmed meanwhile. */
void mw_sched_unsend(struct mw_sched *s, struct mw_chunk **c);
/*
 * WINDOW's written count: every chunk of q below written is on the
 * destination. Frees the kept ones (a SENDING one when its channel is done
 * with it), so the readers may go on. An older WINDOW (written below what
 * is known) changes nothing. Returns 0, or -MW_E_PROTO when written is
 * beyond every chunk taken.
 */
int mw_sched_confirm(struct mw_sched *s, struct mw_sched_stream *q,
		     uint64_t written);
/*
 * Channel chan was lost (its thread, after its loop ended and its slots'
 * chunks went back with mw_sched_unsend): its SENT chunks go READY to be
 * sent again, the ENDs it claimed are claimable again (MW_F_RESENT), and
 * it leaves the idle stack until it takes again. Adds the chunks and
 * their wire bytes to *chunks and *bytes.
 */
void mw_sched_chan_lost(struct mw_sched *s, unsigned chan, uint64_t *chunks,
			uint64_t *bytes);
/* WINDOW: raises q's credit to limit (never lowers it). */
void mw_sched_credit(struct mw_sched *s, struct mw_sched_stream *q,
		     uint64_t limit);
/* Pokes an idle channel when q has something takeable. */
void mw_sched_wake(struct mw_sched *s, struct mw_sched_stream *q);

/* The chunk travels raw: its job says so and carries the checksum.
 * Context: the chunk's owner. */
void mw_chunk_set_raw(struct mw_chunk *c);

/* Stats and session end. */
bool mw_sched_end_taken(struct mw_sched *s, struct mw_sched_stream *q);
void mw_sched_totals(struct mw_sched *s, uint64_t *bytes, uint64_t *chunks);
uint64_t mw_sched_chunks_taken(struct mw_sched *s);
uint64_t mw_sched_chunks_adaptive(struct mw_sched *s);
/* Chunks taken to be sent again, and their wire bytes. */
void mw_sched_resent(struct mw_sched *s, uint64_t *chunks, uint64_t *bytes);

#endif
