/* SPDX-License-Identifier: MIT */
/*
 * The sender's scheduler: which chunk goes next, and who may fill one.
 * Called by the readers (get_free, queue, input_end, drain), the compress
 * workers (park, put on failure), the channels (take, put, credit) and the
 * main thread (new, stats, free).
 *
 * DESIGN
 * One pool of chunks serves all streams (sized by --window): an empty pool
 * stops the readers, which back-pressures QEMU. A reader may take a chunk
 * only below its stream's credit and while it holds less than its share of
 * the pool, so a stream the destination does not read (QEMU's multifd
 * threads wait for the main channel at every sync) cannot take the buffers
 * the stream it waits for needs.
 *
 * A chunk with its seq sits in its stream's ring at seq % nchunks from
 * mw_sched_queue() until the receiver confirms it written (WINDOW's written
 * count), not only until a channel takes it: a channel may be lost with
 * it unconfirmed, and then it is sent again (DESIGN.md 7). Channels take
 * new chunks of a stream strictly in sequence order and only below the
 * stream's credit (WINDOW frames from the receiver), picking streams round
 * robin; chunks to send again go first, lowest seq first. So new seqs grow
 * per stream on every channel, the receiver always has room for what
 * arrives, and one stream the destination does not read cannot block the
 * others.
 *
 * Kept chunks come from the same pool, so a reader's share counts them:
 * a stream holds [confirmed, next_seq). A pool full of kept chunks stops
 * the readers (the pause while no channel is up) but never the channels,
 * which take without the pool; the receiver confirms whenever its writer
 * has nothing left to write (docs/protocol.md, WINDOW), so kept chunks are
 * freed without waiting for more to arrive: no deadlock even when this
 * --window is smaller than the receiver's.
 *
 * Idle channels: a channel that found nothing pushes itself on the idle
 * stack and sleeps in its ring on its eventfd. Whatever makes a stream
 * takeable (a chunk parked as next, credit, an END, an adaptive chunk) pops
 * one channel and pokes it. A channel that took something pokes the next
 * idle one if more is takeable, so the wake-up passes along instead of
 * every channel polling. Only one channel is woken per event: the chunk
 * goes to one of them anyway.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include "mw_assert.h"
#include "mw_err.h"
#include "mw_fd.h"
#include "mw_wire.h"
#include "tx_sched.h"

/*
 * Locking: one mutex, lock, guards the fields after it (the chunk pool among
 * them), the state, seq and st of every chunk, and the queue fields of every
 * registered stream (tx_sched.h). The fields before it are fixed by
 * mw_sched_new() and mw_sched_adaptive() before any other thread uses the
 * scheduler; chunks_adaptive, chunks_resent and bytes_resent are relaxed
 * counters. Lock order: a caller's own lock (send.c's s->lock) -> lock -> the
 * compress pool's lock (the --adaptive claim) -> a ctlq's; eventfd pokes are
 * syscalls on fixed fds, made under lock. Nothing here calls back into a
 * caller.
 */
struct mw_sched {
	unsigned nchunks, nr_chans;
	size_t chunk_size, out_cap;
	int end_efd;
	int *chan_efd;
	struct mw_comp_pool *claim_pool;	   /* --adaptive, else NULL */
	atomic_ullong chunks_adaptive;		   /* relaxed: stats only */
	atomic_ullong chunks_resent, bytes_resent; /* relaxed: stats only */

	pthread_mutex_t lock;
	pthread_cond_t cv;	   /* readers: a chunk freed, credit, a take */
	struct mw_chunk_pool pool; /* buffers allocated at mw_sched_new() */
	struct mw_sched_stream *streams[MW_STREAMS_MAX];
	unsigned nstreams, rr;
	unsigned *idle; /* stack of idle channel indices */
	unsigned nidle;
	bool *chan_idle; /* channel i is on the stack */
	bool stopped;
};

int mw_sched_new(struct mw_sched **out, const struct mw_sched_cfg *cfg)
{
	struct mw_sched *s;
	unsigned i;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->nchunks = cfg->nchunks;
	s->nr_chans = cfg->nr_chans;
	s->chunk_size = cfg->chunk_size;
	s->out_cap = cfg->out_cap;
	s->end_efd = cfg->end_efd;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->idle = calloc(s->nr_chans ? s->nr_chans : 1, sizeof(*s->idle));
	s->chan_idle = calloc(s->nr_chans ? s->nr_chans : 1, sizeof(bool));
	s->chan_efd = calloc(s->nr_chans ? s->nr_chans : 1, sizeof(int));
	if (!s->idle || !s->chan_idle || !s->chan_efd)
		goto err;
	for (i = 0; i < s->nr_chans; i++)
		s->chan_efd[i] = cfg->chan_efd[i];
	/* all buffers now: nothing is allocated on the data path */
	if (mw_chunk_pool_init(&s->pool, MW_CHUNK_TX, s->nchunks, s->chunk_size,
			       s->out_cap, true))
		goto err;
	*out = s;
	return 0;
err:
	mw_sched_free(s);
	return -ENOMEM;
}

void mw_sched_free(struct mw_sched *s)
{
	if (!s)
		return;
	mw_chunk_pool_destroy(&s->pool);
	free(s->idle);
	free(s->chan_idle);
	free(s->chan_efd);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void mw_sched_adaptive(struct mw_sched *s, struct mw_comp_pool *pool)
{
	s->claim_pool = pool;
}

void mw_sched_stop(struct mw_sched *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopped = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->lock);
}

int mw_sched_stream_add(struct mw_sched *s, struct mw_sched_stream *q,
			uint64_t limit, int drain_efd)
{
	memset(q, 0, sizeof(*q));
	q->ring = calloc(s->nchunks, sizeof(*q->ring));
	if (!q->ring)
		return -ENOMEM;
	q->limit = limit;
	q->drain_efd = drain_efd;
	pthread_mutex_lock(&s->lock);
	if (s->nstreams == MW_STREAMS_MAX) {
		pthread_mutex_unlock(&s->lock);
		mw_sched_stream_destroy(q);
		return -EMFILE;
	}
	q->id = s->nstreams;
	s->streams[s->nstreams++] = q;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void mw_sched_stream_destroy(struct mw_sched_stream *q)
{
	free(q->ring);
	q->ring = NULL;
}

struct mw_sched_stream *mw_sched_stream_get(struct mw_sched *s, unsigned id)
{
	struct mw_sched_stream *q = NULL;

	pthread_mutex_lock(&s->lock);
	if (id < s->nstreams)
		q = s->streams[id];
	pthread_mutex_unlock(&s->lock);
	return q;
}

unsigned mw_sched_nstreams(struct mw_sched *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->nstreams;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- takeable: what a channel could take from q now ---- */

static struct mw_chunk *next_chunk_locked(struct mw_sched *s,
					  struct mw_sched_stream *q)
{
	struct mw_chunk *c;

	/* the slot of next_seq may hold a kept chunk of next_seq - nchunks */
	if (q->next_take >= q->next_seq || q->next_take >= q->limit)
		return NULL;
	c = q->ring[q->next_take % s->nchunks];
	if (!c)
		return NULL;
	MW_BUG_ON(c->seq != q->next_take || c->st.tx != q);
	return c;
}

static bool next_ready_locked(struct mw_sched *s, struct mw_sched_stream *q)
{
	struct mw_chunk *c = next_chunk_locked(s, q);

	return c && c->state == MW_CHUNK_READY;
}

/* --adaptive: the next chunk waits for the pool, maybe not started yet */
static bool next_claimable_locked(struct mw_sched *s, struct mw_sched_stream *q)
{
	struct mw_chunk *c = next_chunk_locked(s, q);

	return s->claim_pool && c && c->state == MW_CHUNK_QUEUED;
}

/* The lowest chunk of q to send again, or NULL. */
static struct mw_chunk *resend_chunk_locked(struct mw_sched *s,
					    struct mw_sched_stream *q)
{
	uint64_t seq;

	for (seq = q->confirmed; q->nresend && seq < q->next_take; seq++) {
		struct mw_chunk *c = q->ring[seq % s->nchunks];

		if (c && c->state == MW_CHUNK_READY)
			return c;
	}
	return NULL;
}

static bool end_takeable_locked(struct mw_sched_stream *q)
{
	return q->input_done && !q->end_claimed &&
	       q->next_take == q->total_chunks;
}

static bool stream_takeable_locked(struct mw_sched *s,
				   struct mw_sched_stream *q)
{
	return q->nresend || next_ready_locked(s, q) ||
	       next_claimable_locked(s, q) || end_takeable_locked(q);
}

static bool takeable_locked(struct mw_sched *s)
{
	unsigned i;

	for (i = 0; i < s->nstreams; i++)
		if (stream_takeable_locked(s, s->streams[i]))
			return true;
	return false;
}

static void wake_idle_locked(struct mw_sched *s)
{
	if (s->nidle) {
		unsigned chan = s->idle[--s->nidle];

		s->chan_idle[chan] = false;
		mw_efd_poke(s->chan_efd[chan]);
	}
}

void mw_sched_wake(struct mw_sched *s, struct mw_sched_stream *q)
{
	pthread_mutex_lock(&s->lock);
	if (stream_takeable_locked(s, q))
		wake_idle_locked(s);
	pthread_mutex_unlock(&s->lock);
}

/* ---- readers ---- */

static bool reader_may_take_locked(struct mw_sched *s,
				   struct mw_sched_stream *q)
{
	unsigned others = s->nstreams > 1 ? s->nstreams - 1 : 1;
	uint64_t share = (s->nchunks - 1) / others;

	if (share < 1)
		share = 1;
	/* kept chunks count: a stream whose destination reads nothing must
	 * not hold the chunks the others need, sent or not */
	return !mw_chunk_pool_empty(&s->pool) && q->next_seq < q->limit &&
	       q->next_seq - q->confirmed < share;
}

int mw_sched_get_free(struct mw_sched *s, struct mw_sched_stream *q,
		      struct mw_chunk **out)
{
	struct mw_chunk *c;

	*out = NULL;
	pthread_mutex_lock(&s->lock);
	while (!s->stopped && !reader_may_take_locked(s, q))
		pthread_cond_wait(&s->cv, &s->lock);
	if (s->stopped) {
		pthread_mutex_unlock(&s->lock);
		return -MW_E_CANCEL;
	}
	c = mw_chunk_pool_get(&s->pool);
	MW_BUG_ON(!c); /* reader_may_take_locked() saw one */
	c->st.tx = q;
	pthread_mutex_unlock(&s->lock);
	*out = c;
	return 0;
}

uint64_t mw_sched_queue(struct mw_sched *s, struct mw_chunk *c)
{
	struct mw_sched_stream *q = c->st.tx;
	struct mw_chunk **slot;
	uint64_t seq;

	pthread_mutex_lock(&s->lock);
	seq = q->next_seq++;
	slot = &q->ring[seq % s->nchunks];
	MW_BUG_ON(*slot != NULL); /* [next_take, next_seq) < nchunks */
	c->seq = seq;
	mw_chunk_set_state(c, MW_CHUNK_QUEUED);
	*slot = c;
	pthread_mutex_unlock(&s->lock);
	return seq;
}

void mw_sched_park(struct mw_sched *s, struct mw_chunk **cp)
{
	struct mw_chunk *c = *cp;
	struct mw_sched_stream *q = c->st.tx;

	*cp = NULL;
	pthread_mutex_lock(&s->lock);
	MW_ASSERT(q->ring[c->seq % s->nchunks] == c);
	mw_chunk_set_state(c, MW_CHUNK_READY);
	if (c->seq == q->next_take && c->seq < q->limit)
		wake_idle_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void mw_sched_input_end(struct mw_sched *s, struct mw_sched_stream *q,
			uint64_t bytes)
{
	pthread_mutex_lock(&s->lock);
	q->input_done = true;
	q->total_chunks = q->next_seq;
	q->total_bytes = bytes;
	if (stream_takeable_locked(s, q))
		wake_idle_locked(s);
	pthread_mutex_unlock(&s->lock);
	mw_efd_poke(s->end_efd); /* the session may be over */
}

bool mw_sched_drain_wait(struct mw_sched *s, struct mw_sched_stream *q)
{
	bool wait;

	pthread_mutex_lock(&s->lock);
	wait = q->next_take < q->next_seq;
	q->wants_drain = wait;
	pthread_mutex_unlock(&s->lock);
	return wait;
}

void mw_sched_drain_cancel(struct mw_sched *s, struct mw_sched_stream *q)
{
	pthread_mutex_lock(&s->lock);
	q->wants_drain = false;
	pthread_mutex_unlock(&s->lock);
}

/* ---- channels ---- */

/*
 * --adaptive: the stream's next chunk still waits in the compress queue
 * while this channel has room for a frame and the peer has acknowledged all
 * but at most one chunk's worth of what the socket was given (SIOCOUTQ),
 * i.e. the network is ahead of the codec. Take the job back from the pool;
 * the chunk goes raw. A free slot alone is not enough: the socket buffer and
 * a shaping queue take megabytes before a slow link pushes back, and raw
 * chunks then crowded out compressed ones there (1 Gbit/s tbf link: 5.5 s
 * and 2.1x the wire bytes of plain zstd; with this check 3.4-3.7 s).
 * Returns the claimed chunk, now the caller's, or NULL.
 */
static struct mw_chunk *claim_locked(struct mw_sched *s,
				     struct mw_sched_stream *q, int sock)
{
	struct mw_chunk *c;
	int unsent = 0;

	if (!next_claimable_locked(s, q))
		return NULL;
	if (ioctl(sock, SIOCOUTQ, &unsent) == 0 && unsent > (int)s->chunk_size)
		return NULL;
	c = next_chunk_locked(s, q);
	return mw_comp_pool_claim(s->claim_pool, &c->job) ? c : NULL;
}

struct mw_chunk *mw_sched_take(struct mw_sched *s, unsigned chan, int sock,
			       struct mw_sched_stream **end)
{
	struct mw_sched_stream *q = NULL;
	struct mw_chunk *c = NULL;
	bool claimed = false, resent = false;
	unsigned i;

	*end = NULL;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nstreams && !c && !*end; i++) {
		q = s->streams[(s->rr + i) % s->nstreams];
		if ((c = resend_chunk_locked(s, q))) {
			resent = true;
		} else if (next_ready_locked(s, q)) {
			c = next_chunk_locked(s, q);
		} else if ((c = claim_locked(s, q, sock))) {
			claimed = true;
		} else if (end_takeable_locked(q)) {
			q->end_claimed = true;
			q->end_chan = (uint8_t)chan;
			*end = q;
		}
		if (c || *end)
			s->rr = (s->rr + i + 1) % s->nstreams;
	}
	if (c && resent) {
		/* it stays in the ring until confirmed */
		q->nresend--;
		mw_chunk_set_state(c, MW_CHUNK_SENDING);
		atomic_fetch_add_explicit(&s->chunks_resent, 1,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&s->bytes_resent,
					  c->job.raw ? c->raw_len :
						       c->job.out_len,
					  memory_order_relaxed);
	} else if (c) {
		q->next_take++;
		mw_chunk_set_state(c, MW_CHUNK_SENDING);
		if (q->wants_drain && q->next_take == q->next_seq) {
			q->wants_drain = false;
			mw_efd_poke(q->drain_efd);
		}
	}
	if (c)
		c->chan = (uint8_t)chan;
	if (c || *end) {
		if (takeable_locked(s))
			wake_idle_locked(s);
	} else if (!s->chan_idle[chan]) {
		s->chan_idle[chan] = true;
		s->idle[s->nidle++] = chan;
	}
	pthread_mutex_unlock(&s->lock);
	if (*end)
		mw_efd_poke(s->end_efd); /* the session may be over */
	if (claimed) {
		mw_chunk_set_raw(c); /* what the worker would have done */
		atomic_fetch_add_explicit(&s->chunks_adaptive, 1,
					  memory_order_relaxed);
	}
	return c;
}

void mw_sched_put(struct mw_sched *s, struct mw_chunk **cp)
{
	struct mw_chunk *c = *cp;

	if (!c)
		return;
	*cp = NULL;
	pthread_mutex_lock(&s->lock);
	if (c->state != MW_CHUNK_FILLING) {
		struct mw_chunk **slot = &c->st.tx->ring[c->seq % s->nchunks];

		MW_ASSERT(*slot == c || c->state != MW_CHUNK_QUEUED);
		if (*slot == c)
			*slot = NULL;
	}
	mw_chunk_pool_put(&s->pool, &c); /* asserts the state may go FREE */
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->lock);
}

/* c's seq is confirmed: it has left the ring, and goes FREE. */
static bool confirmed_locked(struct mw_chunk *c)
{
	return c->seq < c->st.tx->confirmed;
}

void mw_sched_sent(struct mw_sched *s, struct mw_chunk **cp)
{
	struct mw_chunk *c = *cp;

	*cp = NULL;
	pthread_mutex_lock(&s->lock);
	if (confirmed_locked(c)) {
		mw_chunk_pool_put(&s->pool, &c);
		pthread_cond_broadcast(&s->cv);
	} else {
		mw_chunk_set_state(c, MW_CHUNK_SENT);
	}
	pthread_mutex_unlock(&s->lock);
}

void mw_sched_unsend(struct mw_sched *s, struct mw_chunk **cp)
{
	struct mw_chunk *c = *cp;

	if (!c)
		return;
	*cp = NULL;
	pthread_mutex_lock(&s->lock);
	if (confirmed_locked(c)) {
		mw_chunk_pool_put(&s->pool, &c);
		pthread_cond_broadcast(&s->cv);
	} else {
		struct mw_sched_stream *q = c->st.tx;

		/* a chunk claimed or taken new was counted in next_take;
		 * every chunk below it is in the ring until confirmed */
		MW_ASSERT(c->seq < q->next_take &&
			  q->ring[c->seq % s->nchunks] == c);
		mw_chunk_set_state(c, MW_CHUNK_READY);
		c->resend = true;
		q->nresend++;
		wake_idle_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
}

int mw_sched_confirm(struct mw_sched *s, struct mw_sched_stream *q,
		     uint64_t written)
{
	bool freed = false;

	pthread_mutex_lock(&s->lock);
	if (written > q->next_take) {
		pthread_mutex_unlock(&s->lock);
		return -MW_E_PROTO;
	}
	for (; q->confirmed < written; q->confirmed++) {
		struct mw_chunk **slot = &q->ring[q->confirmed % s->nchunks];
		struct mw_chunk *c = *slot;

		if (!c)
			continue; /* a failed chunk's hole */
		*slot = NULL;
		if (c->state == MW_CHUNK_SENDING)
			continue; /* its channel frees it (confirmed_locked) */
		if (c->state == MW_CHUNK_READY)
			q->nresend--; /* no need to send it again after all */
		mw_chunk_pool_put(&s->pool, &c);
		freed = true;
	}
	if (freed)
		pthread_cond_broadcast(&s->cv); /* a reader may go on */
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void mw_sched_chan_lost(struct mw_sched *s, unsigned chan, uint64_t *chunks,
			uint64_t *bytes)
{
	unsigned i, k;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nstreams; i++) {
		struct mw_sched_stream *q = s->streams[i];
		uint64_t seq;

		for (seq = q->confirmed; seq < q->next_take; seq++) {
			struct mw_chunk *c = q->ring[seq % s->nchunks];

			if (!c || c->state != MW_CHUNK_SENT || c->chan != chan)
				continue;
			mw_chunk_set_state(c, MW_CHUNK_READY);
			c->resend = true;
			q->nresend++;
			*chunks += 1;
			*bytes += c->job.raw ? c->raw_len : c->job.out_len;
		}
		if (q->end_claimed && q->end_chan == chan) {
			q->end_claimed = false;
			q->end_resent = true;
		}
	}
	/* a poke to a lost channel would wake nobody */
	for (k = 0; k < s->nidle; k++)
		if (s->idle[k] == chan) {
			memmove(&s->idle[k], &s->idle[k + 1],
				(s->nidle - k - 1) * sizeof(*s->idle));
			s->nidle--;
			break;
		}
	s->chan_idle[chan] = false;
	if (takeable_locked(s))
		wake_idle_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void mw_sched_credit(struct mw_sched *s, struct mw_sched_stream *q,
		     uint64_t limit)
{
	pthread_mutex_lock(&s->lock);
	if (limit > q->limit) {
		q->limit = limit;
		pthread_cond_broadcast(&s->cv);
	}
	if (stream_takeable_locked(s, q))
		wake_idle_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void mw_chunk_set_raw(struct mw_chunk *c)
{
	memset(&c->job, 0, sizeof(c->job));
	c->job.raw = true;
	c->job.csum = mw_comp_checksum(c->raw, c->raw_len);
	c->job.opaque = c;
}

/* ---- stats and session end ---- */

bool mw_sched_end_taken(struct mw_sched *s, struct mw_sched_stream *q)
{
	bool taken;

	pthread_mutex_lock(&s->lock);
	taken = q->end_claimed;
	pthread_mutex_unlock(&s->lock);
	return taken;
}

void mw_sched_totals(struct mw_sched *s, uint64_t *bytes, uint64_t *chunks)
{
	unsigned i;

	*bytes = 0;
	*chunks = 0;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nstreams; i++) {
		*bytes += s->streams[i]->total_bytes;
		*chunks += s->streams[i]->total_chunks;
	}
	pthread_mutex_unlock(&s->lock);
}

uint64_t mw_sched_chunks_taken(struct mw_sched *s)
{
	uint64_t n = 0;
	unsigned i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nstreams; i++)
		n += s->streams[i]->next_take;
	pthread_mutex_unlock(&s->lock);
	return n;
}

uint64_t mw_sched_chunks_adaptive(struct mw_sched *s)
{
	return atomic_load_explicit(&s->chunks_adaptive, memory_order_relaxed);
}

void mw_sched_resent(struct mw_sched *s, uint64_t *chunks, uint64_t *bytes)
{
	*chunks = atomic_load_explicit(&s->chunks_resent, memory_order_relaxed);
	*bytes = atomic_load_explicit(&s->bytes_resent, memory_order_relaxed);
}
