/* SPDX-License-Identifier: MIT */
/*
 * The receiver's channels, after admission (admit.c): the callbacks of the
 * channel loop (chan.h). Incoming DATA frames land in a chunk claimed in
 * the slot their stream's credit reserved and go to the decompress pool
 * (or are verified here when raw); OPEN, END and CLOSE update the streams
 * (sink.c). Going out: the control and reverse frames the writers and
 * reverse readers queue on the channel's ctlq, ending with the ACK.
 *
 * Locking: see recv_int.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "chan.h"
#include "mw_fd.h"
#include "mw_log.h"
#include "frame_io.h"
#include "recv_int.h"

static int chan_err(struct rx_chan *ch, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int chan_err(struct rx_chan *ch, int code, const char *fmt, ...)
{
	va_list ap;

	ch->io.conn.err.code = code;
	va_start(ap, fmt);
	vsnprintf(ch->io.conn.err.msg, sizeof(ch->io.conn.err.msg), fmt, ap);
	va_end(ap);
	return code;
}

/* ---- channel: incoming frames ---- */

/*
 * A RESENT frame for chunk seq of st found the chunk FILLING by channel
 * `other`: that one is dead and has not noticed (the sender sent it again
 * because it lost it). Cuts it and waits until its thread dropped the
 * chunk (admit.c), bounded. 0, or a code. Lock held.
 */
static int evict_filler_locked(struct rx_chan *ch, struct rx_stream *st,
			       struct mw_chunk *c)
{
	struct receiver *r = ch->r;
	unsigned long long dl = mw_now_ns() + MW_RX_EVICT_NS;
	struct rx_chan *other = NULL;
	unsigned i, oidx;

	for (i = 0; i < r->sess.chan_count && !other; i++)
		if (r->chans[i] && r->chans[i]->chunk == c)
			other = r->chans[i];
	if (!other || other == ch)
		return chan_err(ch, -MW_E_PROTO,
				"stream %u chunk %" PRIu64 ": sent again while "
				"it arrives",
				st->id, c->seq);
	MW_LOG(MW_LOG_INFO,
	       "channel %d: stream %u chunk %" PRIu64 " sent again while "
	       "channel %d still fills it: cutting channel %d",
	       ch->idx, st->id, c->seq, other->idx, other->idx);
	oidx = (unsigned)other->idx;
	shutdown(other->io.conn.fd, SHUT_RDWR);
	mw_efd_poke(other->io.efd);
	/* a resume may replace (and free) the cut channel meanwhile: it
	 * dropped the chunk before, so a channel not at its index is done */
	while (r->chans[oidx] == other && other->chunk == c &&
	       !mw_fail_is_set(&r->fail)) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };

		if (mw_now_ns() >= dl)
			return chan_err(ch, -MW_E_TIMEOUT,
					"stream %u chunk %" PRIu64 ": channel "
					"%u did not let go of it",
					st->id, c->seq, oidx);
		/* the cut channel drops it under the lock (admit.c) */
		pthread_mutex_unlock(&r->lock);
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&r->lock);
	}
	return mw_fail_is_set(&r->fail) ? -MW_E_CANCEL : 0;
}

/* What the window holds of chunk seq, for an error line: "written", a
 * state name, or NULL (nothing). Lock held. */
static const char *held_name(const struct rx_stream *st, uint64_t seq)
{
	const struct mw_chunk *c;

	if (seq < st->ra.next)
		return "written";
	c = st->ra.slot[seq % st->ra.nslots];
	return c && c->seq == seq ?
		       mw_chunk_state_name((enum mw_chunk_state)c->state) :
		       NULL;
}

/*
 * DATA header decoded: claim a chunk in the slot its credit reserved. The
 * channel borrows it (FILLING) until the payload is in (payload_done). A
 * channel that ends before that leaves it FILLING in the window: when the
 * session fails the ring may still have a receive into its buffer, so only
 * the teardown frees it, after the ring; a lost channel drops it after
 * its ring is gone (admit.c). A RESENT frame of a chunk already here is
 * read into the reader's scratch room and dropped; once any RESENT frame
 * arrived (r->resent_seen), so is a copy without the flag (a first copy
 * still buffered on a connection the sender lost), also when the other
 * copy is still FILLING on another channel (that one is not cut then).
 * A RESENT copy of a chunk FILLING elsewhere cuts the filler
 * (evict_filler_locked) and takes its place.
 */
static int claim_chunk(struct rx_chan *ch, const struct mw_frame_hdr *h,
		       uint8_t **dst)
{
	struct receiver *r = ch->r;
	const char *why = "";
	struct rx_stream *st;
	struct mw_chunk *c;
	int ret;

	pthread_mutex_lock(&r->lock);
	st = mw_rx_stream_get_locked(r, h->stream, &ch->io.conn.err);
	if (!st) {
		pthread_mutex_unlock(&r->lock);
		return ch->io.conn.err.code;
	}
	if (h->flags & MW_F_RESENT)
		r->resent_seen = true;
	while ((h->flags & MW_F_RESENT) || r->resent_seen) {
		enum mw_reasm_dup d = mw_reasm_dup(&st->ra, h->seq, &c);

		if (d == MW_REASM_NEW)
			break;
		/* a first copy after the one sent again (it was buffered
		 * on a connection the sender lost): drop it, whatever
		 * channel fills the other */
		if (d == MW_REASM_HAVE ||
		    (d == MW_REASM_FILLING && !(h->flags & MW_F_RESENT))) {
			r->dup_chunks++;
			r->dup_bytes += h->wire_len;
			pthread_mutex_unlock(&r->lock);
			ch->discarding = true;
			*dst = mw_frame_rd_skip;
			return 0;
		}
		ret = evict_filler_locked(ch, st, c);
		if (ret) {
			pthread_mutex_unlock(&r->lock);
			return ret;
		}
	}
	ret = mw_reasm_claim(&st->ra, &r->chunks, h->seq, &c, &why);
	if (ret) {
		/* a duplicate says what is here and how it came */
		const char *held = held_name(st, h->seq);

		pthread_mutex_unlock(&r->lock);
		return chan_err(ch, ret,
				"stream %u chunk %" PRIu64 ": %s%s%s%s", st->id,
				h->seq, why, held ? " (here: " : "",
				held ? held : "",
				!held		       ? "" :
				h->flags & MW_F_RESENT ? ", RESENT)" :
							 ", not RESENT)");
	}
	c->st.rx = st;
	c->raw_len = h->raw_len;
	c->pages = h->flags & MW_F_PAGES;
	ch->chunk = c;
	pthread_mutex_unlock(&r->lock);
	/* a chunk's first use: its buffers are the channel's to allocate */
	if (mw_chunk_bufs_alloc(&r->chunks, c)) {
		pthread_mutex_lock(&r->lock);
		ch->chunk = NULL;
		mw_reasm_drop(&st->ra, &r->chunks, &c);
		pthread_mutex_unlock(&r->lock);
		return chan_err(ch, -ENOMEM, "out of memory for stream %u",
				st->id);
	}
	if (!atomic_load_explicit(&r->first_ns, memory_order_relaxed)) {
		unsigned long long none = 0;

		/* rates count from here, not from start-up */
		atomic_compare_exchange_strong(&r->first_ns, &none,
					       mw_now_ns());
	}
	*dst = (h->flags & MW_F_RAW) ? c->raw : c->wire;
	return 0;
}

/* A header passed mw_frame_hdr_decode: checks it against the session and
 * picks where its payload goes. */
static int frame_header(void *opaque, const struct mw_frame_hdr *h,
			uint8_t **dst)
{
	struct rx_chan *ch = opaque;
	struct receiver *r = ch->r;

	if (h->type == MW_FT_CONFIRM) {
		*dst = ch->ctl; /* no payload: the header is the frame */
		return 0;
	}
	if (h->stream & MW_STREAM_REVERSE)
		return chan_err(ch, -MW_E_PROTO,
				"reverse-direction %s frame "
				"from the sender",
				mw_frame_type_name(h->type));
	switch (h->type) {
	case MW_FT_DATA:
		if (h->raw_len > r->sess.chunk_size)
			return chan_err(
				ch, -MW_E_PROTO,
				"chunk of %u bytes exceeds the session's "
				"chunk size %u",
				h->raw_len, r->sess.chunk_size);
		if (!(h->flags & MW_F_RAW) &&
		    (h->codec != r->sess.codec || !r->wire_cap))
			return chan_err(ch, -MW_E_PROTO,
					"chunk uses codec %u, session has %u",
					h->codec, r->sess.codec);
		if ((h->flags & MW_F_PAGES) && !r->pages)
			return chan_err(ch, -MW_E_PROTO,
					"page-encoded chunk, but the session "
					"has no --pages");
		return claim_chunk(ch, h, dst);
	case MW_FT_END:
	case MW_FT_ERROR:
	case MW_FT_OPEN:
	case MW_FT_CLOSE:
	case MW_FT_PING:
	case MW_FT_CONFIRM:
		*dst = ch->ctl;
		return 0;
	default:
		return chan_err(ch, -MW_E_PROTO, "unexpected %s frame",
				mw_frame_type_name(h->type));
	}
}

/* The payload is in: the channel hands its chunk on, to the decompress
 * pool, or (raw) verifies it and hands it to the writer. */
static int payload_done(struct rx_chan *ch, const struct mw_frame_hdr *h)
{
	struct mw_chunk *c = ch->chunk;
	struct receiver *r = ch->r;
	int ret;

	/* whatever happens next, it is not ours; and no longer FILLING in
	 * the same step, or a copy sent again meanwhile (its first channel
	 * lost after this one went out whole) would find a FILLING chunk
	 * no channel holds (claim_chunk): held, it is a duplicate */
	pthread_mutex_lock(&r->lock);
	ch->chunk = NULL;
	mw_chunk_set_state(c, MW_CHUNK_DECODING);
	pthread_mutex_unlock(&r->lock);
	/* --cpu-budget: no lock is held here; while the channel waits it
	 * reads no more, so TCP holds the sender back (cpu_pace.h) */
	mw_cpu_pace_wait(&r->pace, &r->fail);
	memset(&c->job, 0, sizeof(c->job));
	c->job.dir = MW_COMP_DECOMPRESS;
	c->job.raw = h->flags & MW_F_RAW;
	c->job.src = c->job.raw ? c->raw : c->wire;
	c->job.src_len = h->wire_len;
	c->job.dst = c->raw;
	c->job.dst_cap = r->sess.chunk_size;
	c->job.raw_len = h->raw_len;
	c->job.csum = h->csum;
	c->job.done = mw_rx_chunk_decoded;
	c->job.opaque = c;
	if (c->job.raw) {
		/* verify a raw chunk here while it is in cache: no hand-off */
		mw_comp_job_verify(&c->job);
		mw_rx_chunk_decoded(&c->job);
		return 0;
	}
	ret = mw_comp_pool_submit(r->pool, &c->job);
	if (ret) {
		/* refused (the pool stops): the chunk is still ours */
		pthread_mutex_lock(&r->lock);
		mw_reasm_drop(&c->st.rx->ra, &r->chunks, &c);
		pthread_mutex_unlock(&r->lock);
		return chan_err(ch, ret, "decompress queue: %s",
				mw_strerror(ret));
	}
	return 0;
}

static int ctrl_done(struct rx_chan *ch, const struct mw_frame_hdr *h)
{
	struct receiver *r = ch->r;
	struct rx_stream *st;
	bool again;
	int ret = 0;

	if (h->type == MW_FT_ERROR) {
		char text[MW_PEER_TEXT_MAX + 1];

		return chan_err(ch, -MW_E_PEER, "sender failed: %s",
				mw_err_peer_text(text, sizeof(text), ch->ctl,
						 h->wire_len));
	}
	pthread_mutex_lock(&r->lock);
	/* a frame equal to one that arrived may be a copy (recv_int.h) */
	if (h->flags & MW_F_RESENT)
		r->resent_seen = true;
	again = (h->flags & MW_F_RESENT) || r->resent_seen;
	if (h->type == MW_FT_CONFIRM) {
		ret = mw_rx_confirm_locked(r, h->stream & MW_STREAM_ID_MASK,
					   h->seq, &ch->io.conn.err);
	} else if (h->type == MW_FT_CLOSE) {
		struct mw_close c;

		/* a session carries at least one stream; a CLOSE naming none
		 * must fail it, never mark it complete (bug 4) */
		if (again && r->closed &&
		    !mw_close_decode(ch->ctl, h->wire_len, &c) &&
		    c.streams == r->close.streams &&
		    c.bytes == r->close.bytes && c.chunks == r->close.chunks)
			ret = 0; /* the same CLOSE again: dropped */
		else if (r->closed || mw_close_decode(ch->ctl, h->wire_len, &c))
			ret = chan_err(ch, -MW_E_PROTO,
				       "unexpected CLOSE frame");
		else if (!c.streams)
			ret = chan_err(ch, -MW_E_PROTO,
				       "CLOSE names 0 streams");
		if (!ret && !r->closed) {
			r->close = c;
			r->closed = true;
			mw_rx_check_complete_locked(r);
		}
	} else if (h->type == MW_FT_OPEN) {
		struct mw_open o;

		st = NULL;
		if (mw_open_decode(ch->ctl, h->wire_len, &o))
			ret = chan_err(ch, -MW_E_PROTO, "malformed OPEN frame");
		else if (!(st = mw_rx_stream_get_locked(r, h->stream,
							&ch->io.conn.err)))
			ret = ch->io.conn.err.code;
		else if (again && st->opened &&
			 (!r->cfg->nr_eps || st->ep == o.endpoint))
			st = NULL; /* the same OPEN again: dropped */
		else if (st->opened && r->cfg->nr_eps)
			ret = chan_err(ch, -MW_E_PROTO,
				       "stream %u opened twice", st->id);
		if (!ret && st) {
			st->opened = true;
			st->ep = o.endpoint;
		}
	} else {
		const char *why = "";
		struct mw_end e;

		st = NULL;
		if (mw_end_decode(ch->ctl, h->wire_len, &e))
			ret = chan_err(ch, -MW_E_PROTO, "malformed END frame");
		else if (!(st = mw_rx_stream_get_locked(r, h->stream,
							&ch->io.conn.err)))
			ret = ch->io.conn.err.code;
		else if (again && st->ra.ended && st->ra.end == e.chunks &&
			 st->end_bytes == e.bytes)
			; /* the same END again: dropped */
		else if (mw_reasm_end(&st->ra, e.chunks, &why))
			ret = chan_err(ch, -MW_E_PROTO, "stream %u: %s", st->id,
				       why);
		else
			st->end_bytes = e.bytes;
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* A whole frame arrived at where frame_header pointed it. */
static int frame_done(void *opaque, const struct mw_frame_hdr *h)
{
	struct rx_chan *ch = opaque;

	if (h->type == MW_FT_PING)
		return 0; /* its arrival was the point (chan.c) */
	if (ch->discarding) {
		ch->discarding = false; /* a duplicate, read and dropped */
		return 0;
	}
	return h->type == MW_FT_DATA ? payload_done(ch, h) : ctrl_done(ch, h);
}

static const struct mw_frame_rd_ops frame_ops = {
	.header = frame_header,
	.frame = frame_done,
};

/*
 * The loop goes on until the session fails, or the sender closed after
 * the ACK: it closes only once it has one, so that clean EOF tells the
 * session it is done (r->ack_eof). A sender that did not close within two
 * seconds: done if another channel saw that, else the channel counts as
 * lost (admit.c), for a resume that comes for its ACK.
 */
static int round_check(struct mw_chan *io)
{
	struct rx_chan *ch = io->opaque;
	struct receiver *r = ch->r;
	bool acked;

	if (mw_fail_is_set(&r->fail))
		return -MW_E_CANCEL;
	if (ch->ack_sent && io->rx_eof) {
		pthread_mutex_lock(&r->lock);
		r->ack_eof = true;
		pthread_mutex_unlock(&r->lock);
		return MW_CHAN_STOP;
	}
	if (ch->ack_sent && !ch->ack_dl)
		ch->ack_dl = mw_now_ns() + 2000000000ull;
	if (ch->ack_dl && mw_now_ns() >= ch->ack_dl) {
		pthread_mutex_lock(&r->lock);
		acked = r->ack_eof || !r->cfg->reconnect_s;
		pthread_mutex_unlock(&r->lock);
		if (acked)
			return MW_CHAN_STOP;
		return chan_err(ch, -MW_E_TIMEOUT,
				"the sender did not close after the ACK");
	}
	io->wait_ns = ch->ack_dl ? 100000000ull : 0;
	io->rx_paused = ch->ack_sent; /* nothing is expected after CLOSE */
	return 0;
}

static int recv_check(struct mw_chan *io, int res)
{
	struct rx_chan *ch = io->opaque;

	if (res == 0) {
		if (ch->ack_sent)
			return MW_CHAN_EOF;
		return chan_err(ch, -MW_E_CLOSED,
				"connection closed before the "
				"end of the stream");
	}
	if (res == -ECONNRESET && !ch->ack_sent)
		/* a sender killed with our credit frames
		 * unread resets rather than closes */
		return chan_err(ch, res,
				"connection reset: "
				"closed before the end of the "
				"stream");
	if (res < 0)
		return chan_err(ch, res, "recv: %s", mw_strerror(res));
	return ch->ack_sent ? MW_CHAN_SKIP : 0;
}

static int tls_closed(struct mw_chan *io)
{
	return chan_err(io->opaque, -MW_E_CLOSED,
			"sender closed the TLS session "
			"before the end of the stream");
}

/* ---- channel: outgoing control and reverse frames ---- */

/* The next queued frame, sent from tx_ctl. */
static int next_frame(struct mw_chan *io, unsigned i, struct mw_frame_hdr *h,
		      const void **payload)
{
	struct rx_chan *ch = io->opaque;
	struct mw_ctl *c = mw_ctlq_pop(&ch->io.ctlq);

	if (!c)
		return 0;
	ch->tx_ctl = c;
	*h = c->h;
	*payload = c->payload;
	return 1;
}

static void frame_sent(struct mw_chan *io, unsigned i)
{
	struct rx_chan *ch = io->opaque;

	if (ch->tx_ctl->h.type == MW_FT_ACK) {
		ch->ack_sent = true;
		shutdown(ch->io.conn.fd, SHUT_WR);
	}
	free(ch->tx_ctl);
	ch->tx_ctl = NULL;
}

/* A frame that could not be sealed stays in tx_ctl: the connection is
 * failing, and teardown frees it. */
static const struct mw_chan_ops chan_ops = {
	.round = round_check,
	.next_frame = next_frame,
	.on_sent = frame_sent,
	.on_recv = recv_check,
	.on_closed = tls_closed,
};

int mw_rx_chan_run(struct rx_chan *ch)
{
	uint32_t maxp = ch->r->sess.chunk_size;

	ch->io.rx_bytes = &ch->bytes_wire;
	ch->io.conn.open_ns = &ch->open_ns;
	/* bulk payloads: a plaintext recv lands in the chunk itself */
	ch->io.dead_ns =
		(unsigned long long)ch->r->cfg->timeout_s * 1000000000ull;
	mw_conn_rx_start(&ch->io.conn, &frame_ops, ch,
			 maxp > MW_ERROR_MAX ? maxp : MW_ERROR_MAX,
			 "malformed frame header", true);
	return mw_chan_loop(&ch->io, &chan_ops, ch);
}
