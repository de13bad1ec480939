/* SPDX-License-Identifier: MIT */
/*
 * A channel, shared by both sides (chan.c): one connection (conn.h: socket,
 * TLS session, incremental frame reader), its I/O ring, the eventfd that
 * wakes it, the control queue other threads hand it frames through, and up
 * to MW_CHAN_SLOTS_MAX outgoing frames (one in the kernel, the next sealed
 * meanwhile). What a side sends and what it does with a frame are its
 * callbacks (send_chan.c, recv_chan.c); the loop posts the recvs, sends
 * and eventfd reads, and turns their completions into those calls.
 *
 * The channel owns these resources: mw_chan_init() makes the eventfd, the
 * queue and the slots' TLS buffers, the side then sets up conn (connect or
 * accept, mw_conn_init), mw_chan_ring_init() makes the ring once the
 * channel thread runs, and mw_chan_destroy() releases whatever of them
 * exists, in one place for both sides.
 */
#ifndef MW_CHAN_H
#define MW_CHAN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "ctlq.h"
#include "frame_io.h"
#include "rate.h"
#include "ring.h"

#define MW_CHAN_SLOTS_MAX 2
/* heartbeat: a channel that has sent nothing for this long sends a PING,
 * so a live peer is never silent for longer (docs/protocol.md) */
#define MW_CHAN_PING_NS 1000000000ull

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
	uint8_t *sealed; /* TLS: ciphertext buffer (mw_chan_init) */
	size_t sealed_cap;
	struct mw_frame_wr wr;
	struct mw_sendq sq;
};

/*
 * Locking: the channel thread owns everything while it runs; before it
 * starts and after it ends, the thread that set the channel up. Fixed
 * from mw_chan_init on, for other threads: efd (any thread may poke it)
 * and nslots. ctlq has its own lock (ctlq.h). conn.fd may be shut down,
 * never closed, by the side's main thread during teardown. After the loop
 * the side's thread may read sending (a frame may still be in the kernel).
 * seal_ns, sent_bytes and rx_bytes point at the side's statistics (atomic,
 * relaxed; NULL: not counted).
 */
struct mw_chan {
	struct mw_conn conn; /* fd -1 until the side sets it up */
	struct mw_ring ring; /* valid once ring_ok */
	bool ring_ok;
	int efd;	     /* wakes the loop (ctlq, credit, teardown) */
	struct mw_ctlq ctlq; /* control frames for the side to send */
	const struct mw_chan_ops *ops;
	void *opaque; /* the side's channel */
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
	bool efd_posted; /* the eventfd read is in the ring */
	bool rx_paused;	 /* set by round: leave buffered bytes */
	/* a send the peer refused (EPIPE, ECONNRESET): its last frames
	 * (an ERROR naming why it left) may still be in our receive
	 * buffer, so the loop reads on until send_err_dl before it fails */
	int send_err;
	unsigned long long send_err_dl;
	unsigned long long wait_ns; /* set by round: 0 waits without limit */
	/* heartbeat: set by the side before the loop (0: off). A PING goes
	 * out after MW_CHAN_PING_NS without a send; dead_ns without a byte
	 * received (while receiving) fails the loop. */
	unsigned long long dead_ns;
	unsigned long long last_tx_ns, last_rx_ns;
	struct mw_chan_slot slot[MW_CHAN_SLOTS_MAX];
};

/*
 * Makes the eventfd, the control queue and, with sealed_cap > 0 (TLS), a
 * ciphertext buffer of sealed_cap bytes per slot; nslots <=
 * MW_CHAN_SLOTS_MAX. Returns 0 or -errno; either way mw_chan_destroy()
 * releases what was made.
 */
int mw_chan_init(struct mw_chan *ch, unsigned nslots, size_t sealed_cap);
/* Releases the ring, the connection, the queue (with the frames still in
 * it), the eventfd and the slots' buffers, whichever exist. */
void mw_chan_destroy(struct mw_chan *ch);
/* Makes the I/O ring (io: mw_ring_select), sized for nslots sends, a recv
 * and the eventfd read. Returns 0 or -errno with conn.err set. */
int mw_chan_ring_init(struct mw_chan *ch, enum mw_io io);
/*
 * Runs the loop with the side's callbacks until one stops it or an error
 * (text in conn.err). The side sets rate, dead_ns and the statistics
 * pointers before, and starts the connection's reader (mw_conn_rx_start).
 * With dead_ns, PING frames go out through ctlq (the side's next_frame
 * sends them like its other control frames), and the side's reader
 * ignores the PINGs it receives.
 */
int mw_chan_loop(struct mw_chan *ch, const struct mw_chan_ops *ops,
		 void *opaque);
/*
 * After the loop: lets a send still in the kernel finish, until deadline
 * (mw_now_ns clock). Returns 0 when the connection ends on a frame
 * boundary, -1 when not (the deadline passed or the send failed).
 */
int mw_chan_flush(struct mw_chan *ch, unsigned long long deadline);

/*
 * The first half of mw_chan_reset(): shuts the socket down (it stays open)
 * and reaps what is posted, so no buffer of the side's is the kernel's any
 * more. The ring stays (empty, ring_ok) for the next connection, unless an
 * op was still posted at the deadline: then it is destroyed, which cancels
 * it (ring_ok false). 0, or -1 as mw_chan_reset().
 */
int mw_chan_quiesce(struct mw_chan *ch, unsigned long long deadline);
/*
 * After the loop ended (a lost connection, docs/protocol.md "Resume"):
 * shuts the socket down, reaps the recv, send and eventfd read still
 * posted (until deadline, mw_now_ns clock) so the kernel holds no buffer
 * of the side's, destroys the connection, and resets the loop state for a
 * new mw_conn_init() (+ mw_chan_ring_init() when !ring_ok) +
 * mw_chan_loop(). efd, ctlq, the ring and the sealed buffers stay; the
 * side takes back its slots' frames itself. Returns 0, or -1 when the
 * deadline passed with an op still posted (then the ring is destroyed, to
 * cancel it, and ring_ok is false).
 */
int mw_chan_reset(struct mw_chan *ch, unsigned long long deadline);

#endif
