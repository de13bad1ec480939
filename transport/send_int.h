/* SPDX-License-Identifier: MIT */
/*
 * Private to the sender: the state that send.c (wiring, main thread) and
 * send_chan.c (the channel threads) share. The stages below them keep
 * their own state: source.h (readers, acceptor), tx_sched.h (scheduler,
 * chunk pool), chan.h (the channel: connection, ring, loop).
 */
#ifndef MW_SEND_INT_H
#define MW_SEND_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "chan.h"
#include "cpu_pace.h"
#include "ctlq.h"
#include "mw_comp.h"
#include "mw_wire.h"
#include "mw_xport.h"
#include "rate.h"
#include "session.h"
#include "source.h"
#include "tx_sched.h"

#define TX_SLOTS MW_CHAN_SLOTS_MAX

struct sender;

/*
 * Locking: none; a slot's frame belongs to its channel thread, and the
 * kernel borrows chunk, ctl or end while io.slot[i] sends it.
 */
struct tx_slot {
	struct mw_chunk *chunk; /* returned to the pool when sent */
	struct mw_ctl *ctl;	/* freed when sent */
	uint8_t end[MW_END_LEN];
};

/*
 * Locking: the channel thread owns everything here while it runs; the main
 * thread sets s, idx, th and started before, with io's resources
 * (mw_chan_init), and reads the rest (io.conn, dirty, io.sending) only
 * after joining it. Other threads use io.efd and io.ctlq as chan.h says.
 * sock is the main thread's way to shut the socket during teardown: under
 * s->lock, the thread publishes each socket from its creation (before the
 * connect) and sets it -1 before it closes it, the main thread shuts it
 * down under the lock (so never a closed, reused fd number).
 * kept, replay and confirm are the thread's own. bytes_wire, seal_ns,
 * reconnects, path and up are statistics (atomic, relaxed; up is also
 * the main thread's count of channels up); cpu_final is written before
 * the exited store that publishes it.
 */
struct tx_chan {
	struct sender *s; /* NULL until chan_alloc: nothing to free */
	unsigned idx;
	pthread_t th;
	bool started;
	bool dirty;	   /* the byte stream may end inside a frame */
	int sock;	   /* the socket for teardown, or -1 (s->lock) */
	struct mw_chan io; /* connection, ring, eventfd, ctlq, send slots */
	struct tx_slot slot[TX_SLOTS];
	/* payload of the incoming frame (conn.rd parses them) */
	uint8_t *in_payload; /* MW_REVERSE_MAX bytes */
	/* channel 0: copies of the OPEN and CLOSE frames it took from its
	 * queue, sent again (MW_F_RESENT) first on a resumed connection
	 * through replay */
	struct mw_ctl *kept, **kept_tail;
	struct mw_ctl *replay;
	/* streams whose reverse frames this channel accepted (or dropped as
	 * sent again) since its last CONFIRM for them: one CONFIRM each */
	uint64_t confirm[(MW_STREAMS_MAX + 63) / 64];
	atomic_ullong bytes_wire;
	atomic_ullong seal_ns;	/* thread CPU spent sealing (stats) */
	atomic_uint reconnects; /* resumes of this channel */
	atomic_uint path;	/* the --to path of its connection */
	/* bytes_wire when this connection started: what it carried since
	 * goes to its path's figures (sender.path_bytes) when it ends */
	atomic_ullong conn_base;
	atomic_bool up; /* connected: set up, and not lost */
	atomic_bool exited;
	double cpu_final;
};

/*
 * Locking: cfg, session, io, tls, nchunks, out_cap, sched, chans, pool,
 * path_addr and lat are set by the main thread before the first thread that
 * reads them starts, and fixed after (the readers write lat's stream, which
 * stdio locks). lock guards stream_window (the channels lower it during setup;
 * streams start with it once all are up), nready, close_sent,
 * secret/have_secret (the first HELLO_OK sets them, every later one and every
 * resume compares), the pause clock (nup, paused_since, paused_ns) and every
 * channel's sock. rev_lock guards the reverse fields of every tx_stream
 * (rev_seq, rev_bytes, rw, rev_ended: any channel may carry a stream's reverse
 * frames, the receiver moves them while their channel is down) and
 * rev_resent_seen. fail has its own lock (session.h), rate its own (rate.h),
 * pace its own (cpu_pace.h), sched its own (tx_sched.h), src is the source
 * stage's (source.h); acked is an atomic set once by the channel that got the
 * ACK. Lock order: lock -> sched -> the compress pool -> a ctlq; rev_lock -> a
 * reverse writer's lock; fail's lock is taken last, under any of them. lock and
 * rev_lock are never held together.
 */
struct sender {
	const struct mw_xp_cfg *cfg;
	struct mw_fail fail;
	struct mw_comp_pool *pool;
	struct mw_tls_ctx *tls;
	struct mw_rate rate;
	struct mw_cpu_pace pace; /* --cpu-budget; the readers wait on it */
	uint8_t session[MW_SESSION_ID_LEN];
	size_t out_cap;	  /* compressed buffer per chunk; 0: codec none */
	unsigned nchunks; /* the chunk pool (--window), told in HELLO */
	struct mw_sched *sched;
	struct mw_source src;

	pthread_mutex_t lock;
	uint32_t stream_window;
	unsigned nready;
	bool close_sent;
	bool have_secret;
	uint8_t secret[MW_RESUME_SECRET_LEN]; /* resume key (HELLO_OK) */
	unsigned nup;			      /* channels up */
	unsigned long long paused_since;      /* nup fell to 0; or 0 */
	unsigned long long paused_ns;	      /* before paused_since */

	pthread_mutex_t rev_lock;
	/* a reverse frame with MW_F_RESENT arrived: from then on a first
	 * copy still buffered on a connection the receiver gave up (it may
	 * think a live channel dead) can come after the copy sent again,
	 * and is dropped like it (send_chan.c, rev_frame_locked) */
	bool rev_resent_seen;

	atomic_bool acked;
	struct tx_chan *chans;
	char path_addr[MW_PATHS_MAX][272]; /* "host:port" of each --to */
	/* per path: wire bytes of the connections that ended on it, and the
	 * resumes that landed on it (relaxed stats) */
	atomic_ullong path_bytes[MW_PATHS_MAX];
	atomic_uint path_reconnects[MW_PATHS_MAX];
	FILE *lat;     /* --latency-file */
	enum mw_io io; /* --io resolved: MW_IO_URING or MW_IO_POLL */
};

/* ---- send_chan.c ---- */

/*
 * Channel thread (mw-txN), started by the main thread with its tx_chan:
 * connects and joins the session (HELLO), then runs the channel loop until
 * the ACK, a failure or teardown. A failure is latched in s->fail.
 */
void *mw_tx_chan_main(void *arg);
/* Nanoseconds with no channel up since the session started, so far.
 * Context: any thread (takes s->lock). */
unsigned long long mw_tx_paused_ns(struct sender *s);

#endif
