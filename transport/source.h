/* SPDX-License-Identifier: MIT */
/*
 * The sender's source stage (source.c): the QEMU-side endpoints, one stream
 * per QEMU connection and one reader thread per stream that cuts the
 * stream's bytes into chunks for the scheduler (tx_sched.h).
 */
#ifndef MW_SOURCE_H
#define MW_SOURCE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cpu_pace.h"
#include "ctlq.h"
#include "mw_comp.h"
#include "mw_xport.h"
#include "rev_writer.h"
#include "tx_sched.h"
#include "session.h"

/*
 * A stream is one QEMU connection: stdin/stdout under exec: (stream 0), or
 * one accepted socket per connection QEMU opens (main, multifd, preempt,
 * NBD), numbered in accept order.
 *
 * Locking: q is the scheduler's (its lock). src, id, ep, in_fd, is_sock and
 * drain_efd are fixed before the reader starts. kind is atomic: the reader
 * sniffs the forward bytes and a channel the reverse ones, and the first to
 * know wins (mw_source_sniff). reader is written by the thread that starts the
 * stream before reader_started (release), which the main thread reads for
 * stats; reader_cpu is written by the reader before reader_exited (seq_cst).
 * The reverse fields (rev_seq, rev_bytes, rw, rev_ended; out_fd) are under the
 * sender's rev_lock (send_int.h): any channel may carry them once a channel was
 * lost. rev_done is set last, by the stream's reverse writer.
 * bytes_fwd/bytes_rev are relaxed stats counters.
 */
struct tx_stream {
	struct mw_sched_stream q;
	struct mw_source *src;
	unsigned id, ep;
	atomic_uchar kind; /* MW_SK_* */
	int in_fd;	   /* forward bytes come from here */
	int out_fd;	   /* reverse bytes go here */
	bool is_sock;
	int drain_efd; /* the scheduler pokes it for a partial flush */
	pthread_t reader;
	atomic_bool reader_started;
	atomic_bool reader_exited;
	double reader_cpu;
	struct mw_pages_enc *pages; /* the reader's, when it claimed it */
	/* reverse, under the sender's rev_lock; rw (started on the first
	 * reverse frame, freed with the stream) owns out_fd from then on and
	 * sets rev_done once the END is written */
	uint64_t rev_seq, rev_bytes;
	struct mw_rev_writer *rw;
	bool rev_ended; /* the END arrived (rev_done: it is written) */
	atomic_bool rev_done;
	atomic_ullong bytes_fwd, bytes_rev;
};

/* The stream a chunk or END belongs to (q is never NULL). */
static inline struct tx_stream *tx_stream_of(struct mw_sched_stream *q)
{
	return (struct tx_stream *)((char *)q - offsetof(struct tx_stream, q));
}

/* The stream with that id, or NULL. Context: any thread. */
static inline struct tx_stream *tx_stream_get(struct mw_sched *sched,
					      unsigned id)
{
	struct mw_sched_stream *q = mw_sched_stream_get(sched, id);

	return q ? tx_stream_of(q) : NULL;
}

/*
 * Locking: everything but accepting is written by the main thread before
 * the acceptor or a reader starts (mw_source_init, _listen, _start) and
 * read-only after; lfd[] is closed by mw_source_destroy() once every thread
 * is joined. accepting is atomic: the main thread clears it to stop the
 * acceptor. acceptor and acceptor_started are the main thread's.
 */
struct mw_source {
	const struct mw_xp_cfg *cfg;
	struct mw_fail *fail;
	struct mw_cpu_pace *pace; /* --cpu-budget (its own lock) */
	struct mw_sched *sched;
	struct mw_comp_pool *pool;
	struct mw_ctlq *open_q; /* channel 0's: OPEN frames */
	FILE *lat;		/* --latency-file, or NULL */
	size_t out_cap;		/* compressed buffer per chunk */
	uint64_t window;	/* each stream's initial credit */
	int lfd[MW_ENDPOINTS_MAX];
	atomic_bool accepting;
	atomic_ullong first_ns; /* mw_now_ns() of the first chunk read; 0 */
	pthread_t acceptor;
	bool acceptor_started;
	/* --pages: the encoder, created by mw_source_start() and given to
	 * the first stream that starts with "QEVM" (pages_claimed); that
	 * stream's reader owns it from then on */
	struct mw_pages_enc *pages;
	atomic_bool pages_claimed;
};

/* Context for everything below: main thread, unless it says otherwise. */
void mw_source_init(struct mw_source *src, const struct mw_xp_cfg *cfg,
		    struct mw_fail *fail);
/* Opens the --listen endpoints. Returns 0 or -errno with the text in err. */
int mw_source_listen(struct mw_source *src, struct mw_err *err);
/*
 * Starts the streams: the exec: stream and its reader, or the acceptor
 * that starts one per connection. Chunks come from sched and are
 * compressed on pool; OPEN frames go to open_q; each stream starts with
 * credit for window chunks. Returns 0 or -errno (latched in src->fail for a
 * thread that did not start).
 */
int mw_source_start(struct mw_source *src, struct mw_sched *sched,
		    struct mw_comp_pool *pool, struct mw_ctlq *open_q,
		    FILE *lat, size_t out_cap, uint64_t window);
/* True when a connection waits on an endpoint, to be accepted. */
bool mw_source_pending(struct mw_source *src);
/* Stops accepting (the acceptor exits at its next wake-up). */
void mw_source_stop(struct mw_source *src);
/* Joins the acceptor; then, once nothing blocks them any more (the
 * scheduler and the compress pool are stopped), the readers. */
void mw_source_join_acceptor(struct mw_source *src);
void mw_source_join_readers(struct mw_source *src);
/* Frees the streams and closes (and unlinks) the endpoints. Every thread
 * that used them is joined. */
void mw_source_destroy(struct mw_source *src);

/* Records the stream's kind from its first forward (or reverse) bytes
 * unless it is known already. Context: the reader, or a channel with the
 * sender's rev_lock held (reverse). */
void mw_source_sniff(struct tx_stream *st, const uint8_t *p, size_t n,
		     bool reverse);
/* CPU seconds of all readers so far (for stats). */
double mw_source_reader_cpu(struct mw_source *src);

#endif
