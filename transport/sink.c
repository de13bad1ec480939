/* SPDX-License-Identifier: MIT */
/*
 * The receiver's sink: what feeds the destination QEMU, in order, and what
 * carries its replies back.
 *
 * DESIGN
 * Streams are created when first named (OPEN or DATA; frames of one stream
 * may arrive on any channel), and only then get their slots: --window is
 * one budget for the session (admit.c) that every stream takes its slots
 * from (budget_take_locked), and a stream for which the budget has no
 * MW_RX_MIN_CREDIT slots left is refused, so the slots of all streams
 * together stay within --window whatever chunk size and stream count the
 * sender announces. A stream's slots are its own until the session ends.
 * The chunks in them come from one pool (r->chunks, chunk.h) with as many
 * chunks as the budget has slots, so a claim that the window accepts
 * always finds one; their buffers are allocated on first use.
 * Each stream has nslots slots indexed by seq % nslots and starts with
 * `credit` (<= nslots) of credit; the sender may send a stream's chunk only
 * below the limit this side grants (HELLO_OK's stream window, then WINDOW
 * frames as the writer frees slots), so a DATA frame always finds its slot free and no
 * channel ever waits for a stream: one stream the destination does not read
 * cannot block another. A frame beyond the credit is a protocol error.
 * Payloads land in the slot's chunk; a decompress job inflates and verifies
 * the XXH3 checksum (mw_rx_chunk_decoded); only then is the chunk READY.
 * The stream's writer (mw-wrN) writes READY chunks strictly in order, then
 * returns them to the pool (mw_reasm_pop), so nothing unverified or out of
 * order ever reaches QEMU. In socket mode writers connect in stream order
 * per endpoint (QEMU 7.2 takes the first connection as the main channel).
 *
 * Reverse bytes (return path, NBD replies) are read by the stream's reverse
 * reader (mw-rvN), sent raw in order on channel (stream id % channels), and
 * end with a reverse END when the destination closes its side.
 *
 * The session completes when CLOSE (the sender's totals) has arrived and
 * every stream's forward direction is written and closed; then every
 * channel sends ACK (mw_rx_check_complete_locked).
 *
 * Threads: channels create streams and claim chunks; decompress workers
 * mark them READY; the writer and reverse reader of each stream.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mw_fd.h"
#include "mw_log.h"
#include "mw_thread.h"
#include "qemu_stream.h"
#include "recv_int.h"

#define REV_QUEUE 16 /* reverse frames queued per channel before blocking */

/* Queues a frame on the channel that carries stream `id`'s control and
 * reverse traffic. limit > 0 blocks while that queue is that full, so the
 * push happens outside r->lock. */
static int queue_for_stream(struct receiver *r, unsigned id, struct mw_ctl *c,
			    unsigned limit)
{
	struct rx_chan *ch;

	pthread_mutex_lock(&r->lock);
	ch = r->chans[id % r->sess.chan_count];
	pthread_mutex_unlock(&r->lock);
	if (!ch) {
		free(c);
		return mw_fail_set(&r->fail, -MW_E_PROTO,
				   "stream %u: its channel never joined", id);
	}
	return mw_ctlq_push(&ch->io.ctlq, c, limit);
}

/* ---- completion ---- */

void mw_rx_check_complete_locked(struct receiver *r)
{
	struct mw_frame_hdr h = { .type = MW_FT_ACK, .wire_len = MW_ACK_LEN };
	struct mw_ack a = { 0 };
	uint8_t p[MW_ACK_LEN];
	unsigned i;

	if (r->complete || !r->closed)
		return;
	for (i = 0; i < MW_STREAMS_MAX; i++) {
		struct rx_stream *st = r->streams[i];

		if (!st) {
			if (i < r->close.streams)
				return;
			continue;
		}
		if (i >= r->close.streams) {
			mw_fail_set(&r->fail, -MW_E_PROTO,
				    "stream %u beyond the %u the sender closed",
				    i, r->close.streams);
			return;
		}
		if (!st->fwd_done)
			return;
		a.bytes += st->end_bytes;
		a.chunks += st->ra.end;
	}
	if (a.bytes != r->close.bytes || a.chunks != r->close.chunks) {
		mw_fail_set(&r->fail, -MW_E_CORRUPT,
			    "session totals differ: wrote %" PRIu64 " bytes, "
			    "sender sent %" PRIu64,
			    a.bytes, r->close.bytes);
		return;
	}
	r->complete = true;
	mw_ack_encode(p, &a);
	for (i = 0; i < r->sess.chan_count; i++) {
		struct mw_ctl *c = mw_ctl_new(&h, p);

		if (c && r->chans[i])
			mw_ctlq_push(&r->chans[i]->io.ctlq, c, 0);
		else
			free(c);
	}
	mw_fail_wake(&r->fail);
}

/* What recv writes to, for an error line: QEMU reads a pipe or a socket;
 * a plain file or a device (`> FILE`, /dev/full) is just the output. */
static const char *sink_name(int fd)
{
	struct stat sb;

	if (fstat(fd, &sb) == 0 && !S_ISFIFO(sb.st_mode) &&
	    !S_ISSOCK(sb.st_mode))
		return "output";
	return "destination QEMU";
}

/* ---- streams ---- */

static void *writer_main(void *arg);

void mw_rx_stream_free(struct receiver *r, struct rx_stream *st)
{
	(void)r;
	if (!st)
		return;
	if (st->is_sock)
		close(st->fd);
	mw_reasm_destroy(&st->ra); /* its chunks are the pool's */
	free(st);
}

/*
 * Slots for a new stream, taken from the budget. exec: mode's one stream
 * takes it all (at most 4096). In socket mode a stream takes a quarter of
 * what is left, at most the budget / MW_RX_STREAM_SHARE, at least
 * MW_RX_MIN_CREDIT: the first streams get deep windows and later ones
 * still find room (the defaults, 15 slots, hold 7 streams of 2). Returns
 * 0 when the budget has not MW_RX_MIN_CREDIT left. Context: lock held.
 */
static uint32_t budget_take_locked(struct receiver *r)
{
	uint64_t n = r->slots_free, cap = r->slots_total / MW_RX_STREAM_SHARE;

	if (r->cfg->nr_eps) {
		n /= 4;
		if (n > cap)
			n = cap;
		if (n < MW_RX_MIN_CREDIT)
			n = MW_RX_MIN_CREDIT;
	}
	if (n > 4096)
		n = 4096;
	if (n > r->slots_free || n < MW_RX_MIN_CREDIT)
		return 0;
	r->slots_free -= n;
	return (uint32_t)n;
}

/*
 * A stream's window of nslots slots (its chunks come from r->chunks).
 * Allocated without r->lock, which every channel and writer needs
 * meanwhile. The stream starts with r->credit of credit (HELLO_OK's: the
 * sender knows no other) and its writer grants up to nslots from its
 * first WINDOW on. Returns NULL when out of memory.
 */
static struct rx_stream *stream_alloc(struct receiver *r, uint32_t nslots)
{
	struct rx_stream *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	if (mw_reasm_init(&st->ra, nslots)) {
		free(st);
		return NULL;
	}
	st->ra.granted = r->credit < nslots ? r->credit : nslots;
	return st;
}

/* May this connection name stream id now? 0 or a code in *err. */
static int stream_check_locked(struct receiver *r, uint32_t id,
			       struct mw_err *err)
{
	if (!r->cfg->nr_eps && id > 0)
		return mw_err_set(err, -MW_E_PROTO,
				  "stream %u, but this receiver has no "
				  "--connect endpoints (exec mode carries one "
				  "stream)",
				  id);
	if (r->closed)
		return mw_err_set(err, -MW_E_PROTO, "stream %u after CLOSE",
				  id);
	return 0;
}

struct rx_stream *mw_rx_stream_get_locked(struct receiver *r, uint32_t id,
					  struct mw_err *err)
{
	const struct mw_xp_cfg *cfg = r->cfg;
	struct rx_stream *st;
	uint32_t nslots;
	int ret;

	if (id >= MW_STREAMS_MAX) {
		mw_err_set(err, -MW_E_PROTO, "stream %u out of range", id);
		return NULL;
	}
	if (r->streams[id])
		return r->streams[id];
	if (stream_check_locked(r, id, err))
		return NULL;
	/* the chunk pool, with the first stream: a chunk per slot of the
	 * budget, at most what streams take (4096 each); buffers come on
	 * first use (recv_chan.c) */
	if (!r->chunks.chunks &&
	    mw_chunk_pool_init(
		    &r->chunks, MW_CHUNK_RX,
		    (unsigned)(r->slots_total < 4096ull * MW_STREAMS_MAX ?
				       r->slots_total :
				       4096ull * MW_STREAMS_MAX),
		    r->sess.chunk_size, r->wire_cap, false)) {
		mw_err_set(err, -ENOMEM, "out of memory for stream %u", id);
		return NULL;
	}
	/* the budget: a stream's slots are taken before they are allocated,
	 * once per id (two channels may race to create it); a failed
	 * creation fails the session, so nothing is given back */
	if (!r->stream_slots[id]) {
		r->stream_slots[id] = budget_take_locked(r);
		if (!r->stream_slots[id]) {
			mw_err_set(err, -MW_E_PROTO,
				   "stream %u: no room left in recv's --window "
				   "%llu for its %u chunk slots of %zu bytes "
				   "(%u streams hold the rest); give recv a "
				   "larger --window",
				   id, (unsigned long long)cfg->window,
				   MW_RX_MIN_CREDIT,
				   r->sess.chunk_size + r->wire_cap,
				   r->nstreams);
			return NULL;
		}
		r->nstreams++;
	}
	nslots = r->stream_slots[id];
	pthread_mutex_unlock(&r->lock);
	st = stream_alloc(r, nslots);
	pthread_mutex_lock(&r->lock);
	/* while unlocked, another channel may have created it or CLOSE may
	 * have come: the outcome of either order of those events */
	if (r->streams[id] || !st || stream_check_locked(r, id, err)) {
		if (!st && !r->streams[id])
			mw_err_set(err, -ENOMEM, "out of memory for stream %u",
				   id);
		mw_rx_stream_free(r, st);
		return r->streams[id];
	}
	st->r = r;
	st->id = id;
	st->fd = -1;
	st->rev_fd = -1;
	if (!cfg->nr_eps) {
		struct stat sb;

		st->kind = MW_SK_EXEC;
		st->opened = st->connected = true;
		st->fd = cfg->out_fd;
		st->is_sock = mw_fd_is_sock(cfg->out_fd);
		/* the return path comes from stdin when QEMU gave us one */
		if (cfg->rev_fd >= 0 && fstat(cfg->rev_fd, &sb) == 0 &&
		    (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode)))
			st->rev_fd = cfg->rev_fd;
	}
	ret = pthread_create(&st->writer, NULL, writer_main, st);
	if (ret) {
		st->is_sock = false; /* out_fd is the caller's */
		mw_rx_stream_free(r, st);
		mw_err_set(err, -ret, "stream %u: pthread_create: %s", id,
			   strerror(ret));
		return NULL;
	}
	st->writer_started = true;
	r->streams[id] = st;
	return st;
}

static void *rev_main(void *arg)
{
	struct rx_stream *st = arg;
	struct receiver *r = st->r;
	size_t cap = r->sess.chunk_size < MW_REVERSE_MAX ? r->sess.chunk_size :
							   MW_REVERSE_MAX;
	char name[16];

	snprintf(name, sizeof(name), "mw-rv%u", st->id);
	mw_thread_place(name, &r->cfg->cpus, 0);
	while (st->rev_fd >= 0) {
		struct pollfd p[2] = {
			{ .fd = st->rev_fd, .events = POLLIN },
			{ .fd = r->fail.wake_fd, .events = POLLIN },
		};
		struct mw_frame_hdr h = {
			.type = MW_FT_DATA,
			.flags = MW_F_RAW,
			.stream = st->id | MW_STREAM_REVERSE,
		};
		struct mw_ctl *c;
		ssize_t n;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (mw_fail_is_set(&r->fail))
			goto out;
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		h.wire_len = (uint32_t)cap;
		c = mw_ctl_new(&h, NULL);
		if (!c) {
			mw_fail_set(&r->fail, -ENOMEM, "out of memory");
			goto out;
		}
		n = read(st->rev_fd, c->payload, cap);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
			free(c);
			continue;
		}
		if (n <= 0) {
			free(c);
			if (n < 0 && errno != ECONNRESET) {
				mw_fail_set(&r->fail, -errno,
					    "stream %u: read from the "
					    "destination QEMU: %s",
					    st->id, strerror(errno));
				goto out;
			}
			break;
		}
		if (st->rev_seq == 0) {
			unsigned k = mw_kind_sniff(c->payload, (size_t)n, true);

			pthread_mutex_lock(&r->lock);
			if (st->kind == MW_SK_UNKNOWN)
				st->kind = (uint8_t)k;
			pthread_mutex_unlock(&r->lock);
		}
		c->h.wire_len = c->h.raw_len = (uint32_t)n;
		c->h.seq = st->rev_seq++;
		c->h.csum = mw_comp_checksum(c->payload, (size_t)n);
		st->rev_bytes += (uint64_t)n;
		atomic_store_explicit(&st->bytes_rev, st->rev_bytes,
				      memory_order_relaxed);
		if (queue_for_stream(r, st->id, c, REV_QUEUE))
			goto out;
	}
	{
		/* the destination closed its side: reverse END */
		struct mw_frame_hdr h = { .type = MW_FT_END,
					  .stream = st->id | MW_STREAM_REVERSE,
					  .wire_len = MW_END_LEN };
		struct mw_end e = { .bytes = st->rev_bytes,
				    .chunks = st->rev_seq };
		uint8_t p[MW_END_LEN];
		struct mw_ctl *c;

		mw_end_encode(p, &e);
		c = mw_ctl_new(&h, p);
		if (c)
			queue_for_stream(r, st->id, c, 0);
	}
out:
	atomic_store(&st->rev_exited, true);
	return NULL;
}

/* Socket mode: connect in stream order per endpoint, then start the
 * reverse reader. Returns 0 or a session failure. */
static int stream_connect(struct rx_stream *st)
{
	struct receiver *r = st->r;
	const struct mw_xp_cfg *cfg = r->cfg;
	struct mw_err err = { 0 };
	char name[300];
	unsigned i;
	int fd;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		bool ready = st->opened;

		for (i = 0; ready && i < st->id; i++)
			if (r->streams[i] && r->streams[i]->ep == st->ep &&
			    !r->streams[i]->connected)
				ready = false;
		if (ready || mw_fail_is_set(&r->fail))
			break;
		pthread_cond_wait(&r->cv, &r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	if (mw_fail_is_set(&r->fail))
		return -MW_E_CANCEL;
	if (st->ep >= cfg->nr_eps)
		return mw_fail_set(&r->fail, -MW_E_PROTO,
				   "stream %u names endpoint %u, but only %u "
				   "--connect given",
				   st->id, st->ep, cfg->nr_eps);
	fd = mw_ep_connect(&cfg->eps[st->ep], mw_deadline_after(cfg->timeout_s),
			   &err);
	if (fd < 0)
		return mw_fail_set(&r->fail, fd, "stream %u: %s", st->id,
				   err.msg[0] ? err.msg : mw_strerror(fd));
	MW_LOG(MW_LOG_DEBUG, "stream %u connected to %s", st->id,
	       mw_ep_name(&cfg->eps[st->ep], name, sizeof(name)));
	pthread_mutex_lock(&r->lock);
	st->fd = st->rev_fd = fd;
	st->is_sock = true;
	st->connected = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* write_all that says how far it got. */
static int write_upto(int fd, const uint8_t *p, size_t n, size_t *done)
{
	*done = 0;
	while (*done < n) {
		ssize_t w = write(fd, p + *done, n - *done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		*done += (size_t)w;
	}
	return 0;
}

static bool writer_can_go_locked(struct rx_stream *st)
{
	return mw_fail_is_set(&st->r->fail) || mw_reasm_done(&st->ra) ||
	       mw_reasm_head(&st->ra);
}

/* Takes *ck (the head chunk, written) and NULLs it: back to the pool, and
 * more credit once half of it is used up. */
static void pop_locked(struct rx_stream *st, struct mw_chunk **ck)
{
	struct receiver *r = st->r;
	struct mw_frame_hdr h = { .type = MW_FT_WINDOW, .stream = st->id };
	struct mw_ctl *c;

	if (!mw_reasm_pop(&st->ra, &r->chunks, ck, &h.seq))
		return;
	c = mw_ctl_new(&h, NULL);
	if (c && r->chans[st->id % r->sess.chan_count])
		mw_ctlq_push(&r->chans[st->id % r->sess.chan_count]->io.ctlq, c,
			     0);
	else
		free(c);
}

static void *writer_main(void *arg)
{
	struct rx_stream *st = arg;
	struct receiver *r = st->r;
	uint64_t bytes = 0;
	unsigned kind;
	char name[16];
	int ret = 0;

	snprintf(name, sizeof(name), st->id ? "mw-wr%u" : "mw-write", st->id);
	mw_thread_place(name, &r->cfg->cpus, 0);
	if (!st->connected)
		ret = stream_connect(st);
	if (!ret && (st->rev_fd >= 0 || st->kind == MW_SK_EXEC)) {
		ret = pthread_create(&st->rev, NULL, rev_main, st);
		if (ret)
			ret = mw_fail_set(&r->fail, -ret, "pthread_create: %s",
					  strerror(ret));
		else /* Pairs with the load in receiver_teardown() */
			atomic_store_explicit(&st->rev_started, true,
					      memory_order_release);
	}
	pthread_mutex_lock(&r->lock);
	while (!ret) {
		struct mw_chunk *s; /* borrowed from the window: WRITING */
		const uint8_t *wp = NULL; /* written: raw, or rebuilt */
		size_t wn = 0;

		while (!writer_can_go_locked(st))
			pthread_cond_wait(&r->cv, &r->lock);
		if (mw_fail_is_set(&r->fail))
			break;
		if (mw_reasm_done(&st->ra)) {
			if (bytes != st->end_bytes) {
				mw_fail_set(&r->fail, -MW_E_CORRUPT,
					    "stream %u: wrote %" PRIu64
					    " bytes, sender sent %" PRIu64,
					    st->id, bytes, st->end_bytes);
				break;
			}
			mw_fd_close_write(st->fd, st->is_sock);
			if (!st->is_sock)
				st->fd = -1;
			st->fwd_done = true;
			mw_rx_check_complete_locked(r);
			break;
		}
		s = mw_reasm_head(&st->ra);
		mw_chunk_set_state(s, MW_CHUNK_WRITING);
		if (s->seq == 0 && st->kind == MW_SK_UNKNOWN)
			st->kind = (uint8_t)mw_kind_sniff(s->raw, s->raw_len,
							  false);
		kind = st->kind;
		pthread_mutex_unlock(&r->lock);
		if (st->nbd_gone) {
			ret = -EPIPE; /* more than the DISC after the close */
		} else {
			size_t done = 0;

			ret = mw_rx_chunk_out(st, s, &wp, &wn);
			if (!ret)
				ret = write_upto(st->fd, wp, wn, &done);
			if ((ret == -EPIPE || ret == -ECONNRESET) &&
			    kind == MW_SK_NBD &&
			    mw_nbd_is_disc(wp + done, wn - done)) {
				MW_LOG(MW_LOG_INFO,
				       "stream %u: NBD server "
				       "closed before the client's disconnect "
				       "request; dropped it",
				       st->id);
				st->nbd_gone = true;
				ret = 0;
			}
		}
		pthread_mutex_lock(&r->lock);
		if (ret) {
			mw_fail_set(&r->fail, ret,
				    "stream %u: write to the %s: %s%s", st->id,
				    sink_name(st->fd), mw_strerror(ret),
				    ret == -EPIPE || ret == -ECONNRESET ?
					    " (it closed its input)" :
					    "");
			break;
		}
		bytes += wn;
		atomic_store_explicit(&st->bytes_fwd, bytes,
				      memory_order_relaxed);
		if (r->lat)
			fprintf(r->lat, "%u %" PRIu64 " %llu\n", st->id, s->seq,
				mw_now_ns());
		pop_locked(st, &s);
	}
	pthread_mutex_unlock(&r->lock);
	st->writer_cpu = mw_thread_cpu_seconds();
	atomic_store(&st->writer_exited, true);
	return NULL;
}

/* Decompress worker (or the channel, for a raw chunk): the chunk is
 * verified, or it goes back to the pool and the session fails. */
void mw_rx_chunk_decoded(struct mw_comp_job *job)
{
	struct mw_chunk *c = job->opaque;
	struct rx_stream *st = c->st.rx;
	struct receiver *r = st->r;

	if (job->ret)
		mw_fail_set(&r->fail, job->ret,
			    "stream %u chunk %" PRIu64 ": %s", st->id, c->seq,
			    job->err.msg);
	pthread_mutex_lock(&r->lock);
	if (!job->ret)
		mw_chunk_set_state(c, MW_CHUNK_READY);
	else
		mw_reasm_drop(&st->ra, &r->chunks, &c);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
}
