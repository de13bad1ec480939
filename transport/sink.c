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
 * reader (mw-rvN), sent raw in order on one channel (stream id % channels
 * while it is up, else the next one up), and end with a reverse END when
 * the destination closes its side. Resume (docs/protocol.md): the stream
 * keeps a copy of each reverse frame until the sender CONFIRMs it, at most
 * MW_RX_REV_KEEP frames and about MW_RX_REV_KEEP_BYTES (the reader waits
 * meanwhile: its back-pressure), and when
 * the channel carrying them is lost the kept frames go again, in order and
 * RESENT, on the next one up (rev_route_locked). WINDOW frames carry the
 * written count too, and go out also whenever the writer runs dry with
 * written chunks unreported, or a quarter of the sender's pool is written
 * unreported, so a sender that keeps its chunks until they are written
 * always learns it can free them, and in time to keep sending.
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

static bool chan_up_locked(const struct rx_chan *ch)
{
	return ch && !ch->lost;
}

struct rx_chan *mw_rx_carrier_locked(struct receiver *r, unsigned id)
{
	unsigned n = r->sess.chan_count, i;

	for (i = 0; i < n; i++) {
		struct rx_chan *ch = r->chans[(id + i) % n];

		if (chan_up_locked(ch))
			return ch;
	}
	return NULL;
}

void mw_rx_window_locked(struct rx_stream *st)
{
	struct receiver *r = st->r;
	struct mw_frame_hdr h = { .type = MW_FT_WINDOW,
				  .stream = st->id,
				  .wire_len = MW_WINDOW_LEN };
	uint8_t written[MW_WINDOW_LEN];
	struct rx_chan *ch = mw_rx_carrier_locked(r, st->id);
	struct mw_ctl *c;

	h.seq = mw_reasm_grant(&st->ra);
	mw_window_encode(written, st->ra.next);
	/* none up: the resume sends one (mw_rx_reroute_locked) */
	if (!ch)
		return;
	c = mw_ctl_new(&h, written);
	if (c && !mw_ctlq_push(&ch->io.ctlq, c, 0))
		st->told_written = st->ra.next;
}

/* A copy of kept reverse frame k for the wire, RESENT when a copy of it
 * may have arrived before. */
static struct mw_ctl *rev_copy(const struct mw_ctl *k, bool resent)
{
	struct mw_ctl *c = mw_ctl_new(&k->h, k->payload);

	if (c && resent)
		c->h.flags |= MW_F_RESENT;
	return c;
}

/*
 * The channel that carries st's reverse frames: the one it had while that
 * is up, else its carrier now (mw_rx_carrier_locked), on which every kept
 * frame is queued again, ahead of anything newer. Returns it (NULL: none
 * up; the kept frames wait for one) and whether it is new in *moved.
 */
static struct rx_chan *rev_route_locked(struct rx_stream *st, bool *moved)
{
	struct receiver *r = st->r;
	struct rx_chan *ch = st->rev_carrier >= 0 ? r->chans[st->rev_carrier] :
						    NULL;
	uint64_t seq;

	*moved = false;
	if (chan_up_locked(ch))
		return ch;
	ch = mw_rx_carrier_locked(r, st->id);
	st->rev_carrier = ch ? ch->idx : -1;
	if (!ch)
		return NULL;
	*moved = true;
	for (seq = st->rev_conf; seq < st->rev_next; seq++) {
		struct mw_ctl *c = rev_copy(st->rev_kept[seq % MW_RX_REV_KEEP],
					    seq < st->rev_sent);

		/* out of memory: the session fails, nothing goes out of
		 * order */
		if (!c) {
			mw_fail_set(&r->fail, -ENOMEM,
				    "stream %u: out of memory for the reverse "
				    "frames to send again",
				    st->id);
			return NULL;
		}
		/* a carrier whose loop just ended: lost next, and then
		 * everything kept goes again (RESENT) on the one after */
		if (mw_ctlq_push(&ch->io.ctlq, c, 0))
			break;
	}
	st->rev_sent = st->rev_next;
	if (st->rev_end && !st->rev_end_conf) {
		struct mw_ctl *c = rev_copy(st->rev_end, st->rev_end_sent);

		if (c && !mw_ctlq_push(&ch->io.ctlq, c, 0))
			st->rev_end_sent = true;
	}
	return ch;
}

void mw_rx_reroute_locked(struct receiver *r)
{
	unsigned i;
	bool moved;

	for (i = 0; i < MW_STREAMS_MAX; i++) {
		struct rx_stream *st = r->streams[i];

		if (!st)
			continue;
		mw_rx_window_locked(st);
		rev_route_locked(st, &moved);
	}
}

int mw_rx_confirm_locked(struct receiver *r, uint32_t id, uint64_t seq,
			 struct mw_err *err)
{
	struct rx_stream *st = id < MW_STREAMS_MAX ? r->streams[id] : NULL;
	uint64_t upto;

	/* the END counts as one frame more once it went out */
	if (!st || seq > st->rev_next + (st->rev_end ? 1 : 0))
		return mw_err_set(err, -MW_E_PROTO,
				  "CONFIRM of reverse frames stream %u never "
				  "sent",
				  id);
	upto = seq < st->rev_next ? seq : st->rev_next;
	/* CONFIRMs may cross on two channels: an older one changes nothing */
	for (; st->rev_conf < upto; st->rev_conf++) {
		struct mw_ctl **k =
			&st->rev_kept[st->rev_conf % MW_RX_REV_KEEP];

		st->rev_kept_bytes -= (*k)->h.wire_len;
		free(*k);
		*k = NULL;
	}
	if (seq == st->rev_next + 1 && st->rev_end)
		st->rev_end_conf = true;
	pthread_cond_broadcast(&r->cv);
	return 0;
}

/*
 * Keeps reverse frame c of st (DATA with the next seq, or the END) until
 * the sender CONFIRMs it, and queues it on the stream's carrier. Takes c.
 * Returns 0 or a session failure. Context: reverse reader, lock held.
 */
static int rev_queue_locked(struct rx_stream *st, struct mw_ctl *c)
{
	struct receiver *r = st->r;
	struct rx_chan *ch;
	struct mw_ctl *keep = mw_ctl_new(&c->h, c->payload);
	bool moved;

	if (!keep) {
		free(c);
		return mw_fail_set(&r->fail, -ENOMEM, "out of memory");
	}
	if (c->h.type == MW_FT_END)
		st->rev_end = keep;
	else {
		st->rev_kept[st->rev_next++ % MW_RX_REV_KEEP] = keep;
		st->rev_kept_bytes += keep->h.wire_len;
	}
	ch = rev_route_locked(st, &moved);
	/* a new carrier got every kept frame, this one among them */
	if (!ch || moved) {
		free(c);
		return mw_fail_is_set(&r->fail) ? -MW_E_CANCEL : 0;
	}
	if (c->h.type == MW_FT_END)
		st->rev_end_sent = true;
	else
		st->rev_sent = st->rev_next;
	mw_ctlq_push(&ch->io.ctlq, c, 0);
	return 0;
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

		/* a lost channel gets its ACK when it resumes (admit.c) */
		if (c && chan_up_locked(r->chans[i]))
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
	unsigned i;

	if (!st)
		return;
	for (i = 0; i < MW_RX_REV_KEEP; i++)
		free(st->rev_kept[i]);
	free(st->rev_end);
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
	st->rev_carrier = -1;
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

		/* back-pressure: MW_RX_REV_KEEP frames or
		 * MW_RX_REV_KEEP_BYTES unconfirmed */
		pthread_mutex_lock(&r->lock);
		while ((st->rev_next - st->rev_conf >= MW_RX_REV_KEEP ||
			st->rev_kept_bytes >= MW_RX_REV_KEEP_BYTES) &&
		       !mw_fail_is_set(&r->fail))
			pthread_cond_wait(&r->cv, &r->lock);
		pthread_mutex_unlock(&r->lock);
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
		pthread_mutex_lock(&r->lock);
		n = rev_queue_locked(st, c);
		pthread_mutex_unlock(&r->lock);
		if (n)
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
		pthread_mutex_lock(&r->lock);
		if (c)
			rev_queue_locked(st, c);
		pthread_mutex_unlock(&r->lock);
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

/*
 * Takes *ck (the head chunk, written) and NULLs it: back to the pool, and
 * a WINDOW once half the credit is used up, or once a quarter of the
 * sender's pool (its HELLO's window_chunks) is written unreported: a
 * sender with a smaller pool than our credit keeps its chunks until we
 * say they are written, and would otherwise stop and go (at least 1).
 */
static void pop_locked(struct rx_stream *st, struct mw_chunk **ck)
{
	uint32_t quarter = st->r->sess.window_chunks / 4;
	uint64_t limit;

	if (mw_reasm_pop(&st->ra, &st->r->chunks, ck, &limit) ||
	    st->ra.next - st->told_written >= (quarter ? quarter : 1))
		mw_rx_window_locked(st);
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

		while (!writer_can_go_locked(st)) {
			/* nothing to write next: tell the sender what is
			 * written, or one whose pool is full of kept chunks
			 * would wait for a half-credit WINDOW forever */
			if (st->ra.next > st->told_written)
				mw_rx_window_locked(st);
			pthread_cond_wait(&r->cv, &r->lock);
		}
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
