/* SPDX-License-Identifier: MIT */
/*
 * A channel's event loop, shared by both sides (chan.c): one connection,
 * its I/O ring and eventfd, up to MW_CHAN_SLOTS_MAX outgoing frames (one
 * in the kernel, the next sealed meanwhile) and the incoming frames the
 * connection's reader parses (conn.h). What a side sends and what it does
 * with a frame are its callbacks (send.c, recv.c); the loop posts the
 * recvs, sends and eventfd reads, and turns their completions into those
 * calls.
 *
 * The connection, ring and eventfd are borrowed from the side, which sets
 * them up before mw_chan_loop() and tears them down after it.
 */
#ifndef MW_CHAN_H
#define MW_CHAN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "frame_io.h"
#include "rate.h"
#include "ring.h"

#define MW_CHAN_SLOTS_MAX 2

/* Positive returns of the callbacks below. */
enum {
	MW_CHAN_STOP = 1, /* the loop ends with 0 */
	MW_CHAN_SKIP,	  /* on_recv: drop these bytes, keep receiving */
	MW_CHAN_EOF,	  /* on_recv: the peer is done sending; recv no more */
};

struct mw_chan;

/*
 * Each returns 0 to go on, a negative error to end the loop with it, or
 * one of the positive values above where said.
 *   round:      top of every round, before and after the buffered frames
 *               are parsed; may set ch->wait_ns and ch->rx_paused.
 *               MW_CHAN_STOP ends the loop.
 *   next_frame: the next frame for slot i (header and payload, which the
 *               side keeps alive until on_sent/on_drop of i): 1 when there
 *               is one, 0 when not now.
 *   on_drop:    slot i's frame could not be sealed; the side takes it
 *               back (NULL: nothing to do).
 *   on_sent:    slot i's frame left in full.
 *   on_recv:    a recv completed with res (bytes, 0 = EOF, -errno): 0
 *               hands res > 0 bytes to the reader, or MW_CHAN_SKIP,
 *               MW_CHAN_EOF, MW_CHAN_STOP.
 *   on_closed:  the peer ended its TLS session (close_notify).
 */
struct mw_chan_ops {
	int (*round)(struct mw_chan *ch);
	int (*next_frame)(struct mw_chan *ch, unsigned i,
			  struct mw_frame_hdr *h, const void **payload);
	void (*on_drop)(struct mw_chan *ch, unsigned i);
	void (*on_sent)(struct mw_chan *ch, unsigned i);
	int (*on_recv)(struct mw_chan *ch, int res);
	int (*on_closed)(struct mw_chan *ch);
};

/* Locking: none; slots belong to the channel thread, and the kernel
 * borrows wr's iovecs from the post of sq to its last completion. */
struct mw_chan_slot {
	bool busy;
	uint8_t *sealed; /* TLS: the side's ciphertext buffer */
	size_t sealed_cap;
	struct mw_frame_wr wr;
	struct mw_sendq sq;
};

/*
 * Locking: everything belongs to the channel thread. After the loop the
 * side's thread may read sending (a frame may still be in the kernel).
 * seal_ns, sent_bytes and rx_bytes point at the side's statistics (atomic,
 * relaxed; NULL: not counted).
 */
struct mw_chan {
	const struct mw_chan_ops *ops;
	void *opaque;	      /* the side's channel */
	struct mw_conn *conn; /* borrowed */
	struct mw_ring *ring; /* borrowed, initialised */
	int efd;	      /* borrowed: wakes the loop (ctlq, credit) */
	uint64_t efd_buf;
	struct mw_rate *rate;	/* or NULL: outgoing bytes not paced */
	atomic_ullong *seal_ns; /* thread CPU spent sealing */
	atomic_ullong *sent_bytes;
	atomic_ullong *rx_bytes; /* payload bytes received */
	unsigned nslots;
	unsigned inflight; /* slots holding a frame, sealed or in the kernel */
	unsigned head;	   /* oldest slot: the only one in the kernel */
	bool sending;	   /* the head slot's send is posted */
	bool recv_posted, rx_eof;
	bool rx_paused;		    /* set by round: leave buffered bytes */
	unsigned long long wait_ns; /* set by round: 0 waits without limit */
	struct mw_chan_slot slot[MW_CHAN_SLOTS_MAX];
};

/* nslots <= MW_CHAN_SLOTS_MAX; the side fills slot[].sealed (TLS), rate,
 * the statistics pointers, and starts the connection's reader. */
void mw_chan_init(struct mw_chan *ch, const struct mw_chan_ops *ops,
		  void *opaque, struct mw_conn *conn, struct mw_ring *ring,
		  int efd, unsigned nslots);
/* Runs until a callback stops it or an error (text in conn->err). */
int mw_chan_loop(struct mw_chan *ch);
/*
 * After the loop: lets a send still in the kernel finish, until deadline
 * (mw_now_ns clock). Returns 0 when the connection ends on a frame
 * boundary, -1 when not (the deadline passed or the send failed).
 */
int mw_chan_flush(struct mw_chan *ch, unsigned long long deadline);

#endif
