/* SPDX-License-Identifier: MIT */
/*
 * The sender's scheduler (tx_sched.c): the chunk pool, each stream's ring of
 * chunks in sequence order, its credit, and the channels that wait for work.
 *
 * A chunk moves FREE -> FILLING (a reader) -> QUEUED (the compress pool, or
 * the reader itself with codec none) -> READY (the scheduler) -> SENDING (a
 * channel) -> FREE. --adaptive lets a channel claim a QUEUED chunk straight
 * to SENDING, and a chunk whose compression failed goes QUEUED -> FREE. Each
 * state has one owner; every hand-over below says what it takes.
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
 * that took it reads them without the lock.
 */
struct mw_sched_stream {
	unsigned id;
	int drain_efd; /* poked when next_take reaches next_seq */
	/* chunks [next_take, next_seq), at seq % nchunks: fewer than nchunks,
	 * so no two share a slot. QUEUED or READY; NULL after a failure. */
	struct mw_chunk **ring;
	uint64_t next_seq, next_take;
	uint64_t limit;	  /* credit: seqs below it may be sent */
	bool wants_drain; /* the reader waits for next_take == next_seq */
	bool input_done, end_claimed;
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
 * free, q is below its credit and holds less than its share of the pool)
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
 * Channel side. Takes the next chunk, in sequence order and below its
 * credit, of the first stream that has one, round robin over streams, and
 * returns it SENDING and the caller's. --adaptive: a stream's next chunk
 * that still waits in the compress pool is claimed back and returned raw
 * when sock (the channel's socket) has at most one chunk unacknowledged.
 * Or claims a stream's END (*end, NULL otherwise) once all its chunks are
 * taken. Returns NULL when there is nothing: channel chan is then idle and
 * its eventfd is poked when work comes. Context: channel chan's thread.
 */
struct mw_chunk *mw_sched_take(struct mw_sched *s, unsigned chan, int sock,
			       struct mw_sched_stream **end);
/* Takes *c (any state but FREE and READY) and NULLs it: back to the pool. A
 * QUEUED chunk (its compression failed) leaves its stream's ring. Accepts
 * *c == NULL. */
void mw_sched_put(struct mw_sched *s, struct mw_chunk **c);
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

#endif
