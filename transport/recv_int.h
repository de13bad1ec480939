/* SPDX-License-Identifier: MIT */
/*
 * Private to the receiver: the state that recv.c (wiring, main thread),
 * admit.c (listener, connection threads, HELLO admission), recv_chan.c
 * (channel loops) and sink.c (streams, ordered writers, reverse readers)
 * share.
 *
 * Lock order: r->lock -> a channel's ctlq lock -> r->fail's lock. Under
 * r->lock the code pushes control frames (mw_ctlq_push with limit 0, which
 * never blocks: reverse frames too, whose back-pressure is the retention
 * limit MW_RX_REV_KEEP) and latches failures; neither ctlq nor the failure
 * latch ever takes r->lock. Resume admission and the eviction of a dead
 * channel's chunk wait for another channel thread with r->lock released
 * (cond wait / unlocked sleep), bounded by MW_RX_EVICT_NS. The decompress pool calls mw_rx_chunk_decoded()
 * without its own lock held, so the pool is outside this order. The chunk
 * pool (r->chunks, chunk.h) and every received chunk's state, seq and st
 * are under r->lock; a chunk's bytes belong to the stage its state names
 * (reasm.h).
 */
#ifndef MW_RECV_INT_H
#define MW_RECV_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "chan.h"
#include "chunk.h"
#include "conn.h"
#include "cpu_pace.h"
#include "ctlq.h"
#include "mw_comp.h"
#include "mw_err.h"
#include "mw_wire.h"
#include "mw_xport.h"
#include "preauth.h"
#include "reasm.h"
#include "ring.h"
#include "session.h"

#define MAX_PENDING 64 /* connections authenticating at once */
/* of which one address may hold this many, unless it is the session's
 * source (preauth.h) */
#define MAX_PER_ADDR 16
/* the least credit (and slots) a stream gets: one chunk being written while
 * the next arrives */
#define MW_RX_MIN_CREDIT 2u
/* socket mode: a new stream takes a quarter of the budget left, at most
 * the budget / MW_RX_STREAM_SHARE, at least MW_RX_MIN_CREDIT (sink.c) */
#define MW_RX_STREAM_SHARE 16u
/* reverse frames of a stream kept until the sender CONFIRMs them: the
 * reverse reader waits while this many are (docs/protocol.md, "Resume") */
#define MW_RX_REV_KEEP 64u
/* and at most this many of their payload bytes (and one frame more): the
 * copies are memory outside --window */
#define MW_RX_REV_KEEP_BYTES (1u << 20)
/* how long an admission or a claim waits for a dead channel to leave */
#define MW_RX_EVICT_NS 3000000000ull
/* evicted connections stay on r->live until their thread has left */
#define MAX_LIVE (MW_CHANNELS_MAX + 2 * MAX_PENDING)

struct receiver;
struct rx_stream;
struct rx_chan;

/*
 * Locking: r and id are fixed at creation; the stream is published
 * in r->streams under r->lock and never removed before receiver_free.
 * Under r->lock: opened, ep (stable once opened: a second OPEN is an
 * error), connected, kind, ra, end_bytes, fwd_done, and fd once the stream
 * is published (stream_connect sets fd/rev_fd/is_sock, the writer drops a
 * pipe's fd). rev_fd and is_sock do not change after the reverse reader
 * starts. writer and writer_started are set by the creating channel before
 * publication. rev is written by the writer thread before its release
 * store of rev_started, which teardown reads (acquire) without the lock,
 * possibly while that writer is still busy. Writer thread only: nbd_gone;
 * writer_cpu, published by the store of writer_exited. Reverse reader only:
 * rev_seq, rev_bytes. bytes_fwd and bytes_rev are relaxed statistics.
 * Under r->lock (resume): told_written (the written count the last WINDOW
 * carried); the reverse retention rev_kept[seq % MW_RX_REV_KEEP] for seq
 * in [rev_conf, rev_next) and its payload bytes rev_kept_bytes, rev_end (the reverse END, kept until CONFIRMed
 * as one more frame), rev_sent (frames below it went out on some carrier
 * at least once, so another copy is RESENT), rev_end_sent, and rev_carrier
 * (the channel index carrying them, -1: none yet).
 */
struct rx_stream {
	struct receiver *r;
	unsigned id, ep;
	uint8_t kind;
	bool opened, connected;
	int fd;	    /* forward bytes go here */
	int rev_fd; /* reverse bytes come from here; -1: none */
	bool is_sock;
	struct mw_reasm ra; /* reorder window and credit, its chunks */
	uint64_t end_bytes;
	bool fwd_done;
	pthread_t writer, rev;
	bool writer_started;
	atomic_bool rev_started;
	atomic_bool writer_exited, rev_exited;
	double writer_cpu;
	uint64_t rev_seq, rev_bytes;
	atomic_ullong bytes_fwd, bytes_rev;
	bool nbd_gone; /* the NBD server closed before the client's DISC */
	uint64_t told_written;
	struct mw_ctl *rev_kept[MW_RX_REV_KEEP];
	uint64_t rev_conf, rev_next, rev_sent;
	size_t rev_kept_bytes; /* payload bytes in rev_kept */
	struct mw_ctl *rev_end;
	bool rev_end_sent, rev_end_conf;
	int rev_carrier;
};

/*
 * Locking: the connection thread that runs the channel owns it. Set before
 * that thread starts and fixed after: r, io.efd, io.conn.fd (so the main
 * thread may poke io.efd and shut io.conn.fd down under r->lock while the
 * channel is on r->live). idx is written under r->lock at admission; th
 * under r->lock by accept_one. chunk is borrowed from its stream's window
 * while its payload arrives (FILLING, the channel's; the pointer is
 * written under r->lock, so a channel that finds the chunk of a RESENT
 * frame FILLING can tell whose it is). pa (its place among
 * the unauthenticated, r->pre) is under r->lock, except pa.fd
 * (= io.conn.fd). io.ctlq has its own lock (producers:
 * writers, reverse readers, completion). bytes_wire and open_ns are relaxed
 * statistics; cpu_final is published by the store of exited, which is made
 * under r->lock so snap_fill never asks a detached, exited thread for its
 * clock. lost and lost_ns (resume: the loop ended with a resumable error
 * at that time, the thread left; its index waits for the sender) are
 * under r->lock. The channel thread's own: established (its loop ran, or
 * it is a resumed channel: a failure may be a loss), resumed, and
 * discarding (the payload being read is a duplicate, dropped).
 */
struct rx_chan {
	struct receiver *r;
	int idx; /* -1 until admitted */
	pthread_t th;
	struct mw_preauth_ent pa;
	bool ack_sent;
	/* frame being parsed (io.conn.rd parses them) */
	struct mw_chunk *chunk; /* a DATA frame's, from its header on */
	uint8_t ctl[MW_ERROR_MAX + 1];
	/* control / reverse frames going out (queued on io.ctlq) */
	struct mw_ctl *tx_ctl;	   /* being sent */
	unsigned long long ack_dl; /* after the ACK: wait this long for EOF */
	struct mw_chan io; /* connection, ring, eventfd, ctlq; one slot: tx_ctl */
	atomic_ullong bytes_wire;
	atomic_ullong open_ns; /* thread CPU spent decrypting (stats) */
	atomic_bool exited;
	double cpu_final;
	bool established, lost, resumed, discarding;
	unsigned long long lost_ns;
};

/* Runs an admitted channel until it ends; 0 or a code with io.conn.err set. */
typedef int mw_rx_chan_fn(struct rx_chan *ch);

/*
 * Locking: set before any thread starts and fixed after: cfg, tls, io,
 * lst_efd, chan_loop, fail and pace (each its own lock). The listener
 * owns listen_fd while it runs (it closes it on exit), and refuse_rl,
 * emfile_said, fd_spare and fd_limit; listener and listener_started are
 * the main thread's.
 * Everything from `lock` down is under lock, with one relaxation:
 * have_session, sess, secret, peer_id, credit, slots_total, wire_cap and pool are
 * written once, by the first admission, before any channel is admitted,
 * so admitted channels and the threads they start read them without the
 * lock. chunks is set up by the first stream's creation (sink.c); its
 * count and caps are fixed after. lat is written to under lock.
 */
struct receiver {
	const struct mw_xp_cfg *cfg;
	struct mw_fail fail;
	struct mw_cpu_pace pace; /* --cpu-budget; the channels wait on it */
	struct mw_tls_ctx *tls;
	int listen_fd;
	int lst_efd; /* wakes the listener: all joined, or teardown */
	pthread_t listener;
	bool listener_started;
	mw_rx_chan_fn *chan_loop; /* recv_chan.c's, called by admit.c */
	/* the listener's own: --allow-from refusals logged and held back,
	 * and whether it said it ran out of file descriptors */
	struct mw_logrl refuse_rl;
	bool emfile_said;
	int fd_spare; /* accepts stop that far below RLIMIT_NOFILE */
	int fd_limit;

	pthread_mutex_t lock;
	pthread_cond_t cv; /* writers: chunk READY, END, OPEN, connect */
	pthread_cond_t live_cv;
	struct mw_comp_pool *pool;
	bool have_session;
	struct mw_hello sess;
	/* the resume secret of every HELLO_OK (random, with the session) */
	uint8_t secret[MW_RESUME_SECRET_LEN];
	char peer_id[512];    /* the TLS identity that defined the session */
	uint32_t credit;      /* every stream's first credit (HELLO_OK) */
	uint64_t slots_free;  /* the --window budget not given to a stream */
	uint64_t slots_total; /* the whole budget */
	size_t wire_cap;
	/* every stream's chunks: as many as the budget has slots, buffers
	 * allocated on first use */
	struct mw_chunk_pool chunks;
	unsigned long long first_join_ns;
	struct rx_chan *chans[MW_CHANNELS_MAX]; /* admitted, by index */
	unsigned joined;
	struct rx_chan *live[MAX_LIVE]; /* every connection thread */
	unsigned nlive;
	/* the unauthenticated ones among them; pre.exempt: the session's
	 * source address */
	struct mw_preauth pre;
	/* lines about rejected connections: a flood cannot flood the log */
	struct mw_logrl reject_rl;
	/* peers turned away before a session: the --wait expiry line says
	 * how many and why the last one was */
	unsigned nrejected;
	char last_reject[160];
	struct rx_stream *streams[MW_STREAMS_MAX];
	/* slots taken from the budget for a stream id (0: none yet); two
	 * channels may race to create a stream: both allocate this many, and
	 * the loser frees its copy before touching it */
	uint32_t stream_slots[MW_STREAMS_MAX];
	unsigned nstreams; /* ids that took slots */
	bool closed;
	struct mw_close close;
	bool complete; /* every stream written and closed, ACK queued */
	FILE *lat;     /* --latency-file */
	enum mw_io io; /* --io resolved: MW_IO_URING or MW_IO_POLL */
	atomic_ullong first_ns; /* the first DATA frame's mw_now_ns(); 0:
				 * none yet (atomic, set once, no lock) */
	/* --pages: set with the session like pool; the decoder belongs to
	 * the writer of pages_stream, which the first page-encoded chunk
	 * claims (-1: none yet) */
	struct mw_pages_dec *pages;
	atomic_int pages_stream;
	/* resume (docs/protocol.md): channels lost now, the time with none
	 * up (down_since: 0 while one is), and the figures the stats print:
	 * losses, resumes, duplicate chunks (and their payload bytes) read
	 * and dropped, the wire bytes of replaced connections per index.
	 * ack_eof: a channel saw the sender close cleanly after its ACK went
	 * out, so the sender has one (it closes only then): the session is
	 * done, whatever channel is lost; an ACK handed to the kernel alone
	 * proves nothing. unconfirmed: complete, but every channel was lost
	 * without that and none resumed in time (recv exits non-zero).
	 * stop_listen: teardown stops the listener. */
	unsigned nlost;
	bool ack_eof, unconfirmed;
	unsigned long long down_since, paused_ns;
	uint64_t lost_total, resumes, dup_chunks, dup_bytes;
	uint64_t bytes_prev[MW_CHANNELS_MAX];
	unsigned resumes_of[MW_CHANNELS_MAX];
	/* a frame with MW_F_RESENT arrived: from then on the first copy of
	 * a chunk, still buffered on a connection the sender lost, may come
	 * after the copy sent again, and is dropped like it (recv_chan.c) */
	bool resent_seen;
	bool stop_listen;
};

/* ---- listener.c ---- */

/* Starts the listener (mw-listen), which accepts connections and runs each
 * in its own thread: admission, then r->chan_loop. Returns 0 or -errno. */
int mw_rx_listener_start(struct receiver *r);

/* ---- admit.c ---- */

/* A connection's thread (listener.c starts it): TLS, HELLO, admission,
 * then r->chan_loop; or the refusal. */
void *mw_rx_conn_main(void *arg);
/* Counts a peer turned away before a session and keeps why (truncated),
 * for the --wait line. r->lock held. */
void mw_rx_note_reject_locked(struct receiver *r, const char *why);
/* Frees a channel that is not running (never started, rejected, or after
 * teardown). */
void mw_rx_chan_free(struct rx_chan *ch);

/* ---- pages_rx.c ---- */

/* The session's --pages decoder, when HELLO h asks for it and this
 * receiver agrees. 0 or a code with the reason in *err. Lock held. */
int mw_rx_pages_init(struct receiver *r, const struct mw_hello *h,
		     struct mw_err *err);
/* The bytes of chunk c (WRITING) to write, in *wp and *wn: raw, or with
 * --pages the rebuilt bytes (the decoder's, valid until the next call).
 * 0, or the code it failed the session with. Context: st's writer,
 * r->lock not held. */
int mw_rx_chunk_out(struct rx_stream *st, const struct mw_chunk *c,
		    const uint8_t **wp, size_t *wn);

/* ---- probe_rx.c ---- */

/* What mw_rx_probe_answer returns when it answered: not a channel, and no
 * error to send. */
#define MW_RX_PROBED 1
/* Answers the PROBE whose header was read on ch's connection by deadline
 * dl: PROBE_OK, then the caller closes (docs/protocol.md, "PROBE").
 * MW_RX_PROBED, or a code with the reason in ch->io.conn.err. */
int mw_rx_probe_answer(struct rx_chan *ch, unsigned long long dl);

/* ---- recv_chan.c ---- */

/* r->chan_loop: runs an admitted channel's loop (mw_rx_chan_fn). */
int mw_rx_chan_run(struct rx_chan *ch);

/* ---- sink.c ---- */

/*
 * Returns stream id, creating it (slots, writer thread) on first mention.
 * NULL with *err set on a protocol violation or a failed allocation.
 * Context: channel thread, r->lock held; to create a stream it drops the
 * lock while it allocates the buffers, so the caller must not rely on
 * anything it read under the lock before the call.
 */
struct rx_stream *mw_rx_stream_get_locked(struct receiver *r, uint32_t id,
					  struct mw_err *err);
/* Frees a stream whose threads are joined or never ran. */
void mw_rx_stream_free(struct receiver *r, struct rx_stream *st);
/* The chunk (job->opaque) is verified (job->ret == 0: READY for the
 * writer), or it goes back to the pool and the session fails. Takes the
 * chunk from whoever decoded it. Context: decompress worker or channel,
 * lock not held. */
void mw_rx_chunk_decoded(struct mw_comp_job *job);
/* Once CLOSE has arrived and every stream is written and closed: checks the
 * totals and queues ACK on every channel. Context: lock held. */
void mw_rx_check_complete_locked(struct receiver *r);
/* The channel up that carries stream id's WINDOWs: its home (id % N) if
 * up, else the next one up; NULL when none is. Lock held. */
struct rx_chan *mw_rx_carrier_locked(struct receiver *r, unsigned id);
/* Queues a WINDOW for st on its carrier: the credit (next + slots) and the
 * written count. Lock held. */
void mw_rx_window_locked(struct rx_stream *st);
/* A channel was lost or resumed: every stream's WINDOW on its carrier,
 * and its kept reverse frames (RESENT) on a new carrier when its old one
 * is not up. Lock held. */
void mw_rx_reroute_locked(struct receiver *r);
/* CONFIRM seq for reverse stream id: frees the kept frames below seq.
 * 0 or -MW_E_PROTO with *err. Lock held. */
int mw_rx_confirm_locked(struct receiver *r, uint32_t id, uint64_t seq,
			 struct mw_err *err);

#endif
