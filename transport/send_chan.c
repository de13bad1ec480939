/* SPDX-License-Identifier: MIT */
/*
 * The sender's channels: one thread per channel (mw-txN) that connects,
 * joins the session with HELLO, and then runs the channel loop (chan.h):
 * it sends control frames, chunks and ENDs from the scheduler, and takes
 * the receiver's frames: credit (WINDOW), the reverse direction of the
 * streams it carries, ACK and ERROR.
 *
 * Locking: see send_int.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mw_fd.h"
#include "mw_log.h"
#include "mw_pages.h"
#include "mw_thread.h"
#include "frame_io.h"
#include "join.h"
#include "net.h"
#include "send_int.h"

static int chan_setup_once(struct tx_chan *ch, unsigned long long dl)
{
	struct sender *s = ch->s;
	const struct mw_xp_cfg *cfg = s->cfg;
	struct mw_hello hello = {
		.version = MW_PROTO_VERSION,
		.chan_index = (uint16_t)ch->idx,
		.chan_count = (uint16_t)cfg->nr_chans,
		.codec = (uint8_t)cfg->codec,
		.chunk_size = cfg->chunk_size,
		.window_chunks = s->nchunks,
		.flags = (cfg->join_token_len ? MW_HELLO_F_TOKEN : 0) |
			 (cfg->pages ? MW_HELLO_F_PAGES : 0),
		.page_cache_slots = cfg->pages ? (uint32_t)(cfg->page_cache /
							    MW_PAGES_PAGE) :
						 0,
	};
	uint8_t payload[MW_ERROR_MAX + 1], raw[MW_HELLO_LEN];
	struct mw_frame_hdr h = { .type = MW_FT_HELLO,
				  .wire_len = MW_HELLO_LEN };
	struct mw_hello_ok ok;
	char peer[MW_PEER_MAX];
	int fd, ret;

	fd = mw_net_connect(cfg->host, cfg->port, dl, peer, sizeof(peer),
			    &ch->io.conn.err);
	if (fd < 0)
		return fd;
	mw_net_tune(fd, cfg->timeout_s);
	ret = mw_conn_init(&ch->io.conn, fd, peer, s->tls);
	if (ret) {
		close(fd);
		ch->io.conn.fd = -1;
		return ret;
	}
	atomic_store(&ch->sock, fd);
	ret = mw_conn_handshake(&ch->io.conn, dl);
	if (ret)
		return ret;
	memcpy(hello.session, s->session, sizeof(hello.session));
	mw_hello_encode(raw, &hello);
	ret = mw_conn_send_frame(&ch->io.conn, &h, raw, dl);
	if (ret)
		return ret;
	ret = mw_conn_recv_frame(&ch->io.conn, &h, payload, MW_ERROR_MAX, dl);
	if (!ret && h.type == MW_FT_CHALLENGE) {
		/* --join-token: prove it, then the answer to the HELLO */
		ret = mw_join_answer(&ch->io.conn, cfg, payload, raw,
				     MW_HELLO_LEN, dl);
		if (!ret)
			ret = mw_conn_recv_frame(&ch->io.conn, &h, payload,
						 MW_ERROR_MAX, dl);
	}
	if (ret == -MW_E_CLOSED)
		return mw_err_set(&ch->io.conn.err, ret,
				  "receiver closed the connection during "
				  "setup (TLS or --no-tls mismatch, or "
				  "credentials rejected)");
	if (ret)
		return ret;
	if (h.type == MW_FT_ERROR) {
		char text[MW_PEER_TEXT_MAX + 1];

		return mw_err_set(&ch->io.conn.err, -MW_E_PEER,
				  "receiver refused the channel: %s",
				  mw_err_peer_text(text, sizeof(text), payload,
						   h.wire_len));
	}
	if (h.type != MW_FT_HELLO_OK ||
	    mw_hello_ok_decode(payload, h.wire_len, &ok) ||
	    ok.chan_index != ch->idx ||
	    memcmp(ok.session, s->session, sizeof(ok.session)))
		return mw_err_set(&ch->io.conn.err, -MW_E_PROTO,
				  "unexpected %s frame instead of HELLO_OK",
				  mw_frame_type_name(h.type));
	pthread_mutex_lock(&s->lock);
	if (!s->stream_window || ok.stream_window < s->stream_window)
		s->stream_window = ok.stream_window;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* Sleeps ms, less when the session fails meanwhile (teardown pokes the
 * channel's eventfd; nothing else does before the channels are up). */
static void setup_pause(struct tx_chan *ch, unsigned ms)
{
	struct pollfd p = { .fd = ch->io.efd, .events = POLLIN };
	unsigned long long end = mw_now_ns() + ms * 1000000ull, now;

	while (!mw_fail_is_set(&ch->s->fail) && (now = mw_now_ns()) < end) {
		int left = (int)((end - now) / 1000000ull) + 1;

		if (poll(&p, 1, left) > 0 && !mw_fail_is_set(&ch->s->fail)) {
			struct timespec ts = { left / 1000,
					       (left % 1000) * 1000000L };

			nanosleep(&ts, NULL); /* readable, yet no failure */
		}
	}
}

/* Gone before answering our HELLO, without a word (no TLS alert, no
 * ERROR): hung up, reset, or the write side found it closed. */
static bool hung_up(int ret)
{
	return ret == -MW_E_CLOSED || ret == -ECONNRESET || ret == -EPIPE;
}

/*
 * A receiver that hangs up during setup without a word is shedding
 * unauthenticated connections (a flood holds its places and ours was
 * evicted, or it had no thread to spare): dial again, after 0.1 s
 * doubling to 1 s with some jitter so the channels spread out, until
 * --timeout since the first dial. With --wait, a receiver not listening
 * yet (refused) is dialled every 0.2 s until --wait runs out, so the two
 * sides may start in either order; the --timeout then counts from the
 * last of those dials. Anything the receiver said (TLS alert, ERROR) is
 * final.
 */
static int chan_setup(struct tx_chan *ch)
{
	struct sender *s = ch->s;
	unsigned long long dl = mw_deadline_after(s->cfg->timeout_s);
	unsigned long long wait_dl = mw_deadline_after(s->cfg->wait_s);
	unsigned long long t0 = mw_now_ns();
	unsigned hangups = 0, ms = 0;
	int ret;

	for (;;) {
		ret = chan_setup_once(ch, dl);
		if (!ret || mw_fail_is_set(&s->fail))
			return ret;
		if (ret == -ECONNREFUSED && !hangups && wait_dl &&
		    mw_now_ns() < wait_dl) {
			if (!ms && ch->idx == 0)
				MW_LOG(MW_LOG_INFO,
				       "receiver not listening yet; waiting up "
				       "to %u s (--wait)",
				       s->cfg->wait_s);
			ms = 200;
		} else if (hung_up(ret)) {
			if (!hangups++)
				MW_LOG(MW_LOG_INFO,
				       "channel %u: receiver hung up during "
				       "setup (%s); dialling again until "
				       "--timeout",
				       ch->idx, ch->io.conn.err.msg);
			ms = hangups < 4 ? 100u << (hangups - 1) : 1000;
			ms += (unsigned)(mw_now_ns() / 1000 % (ms / 2 + 1));
		} else {
			break;
		}
		if (hangups && dl && mw_now_ns() + ms * 1000000ull >= dl)
			break;
		atomic_store(&ch->sock, -1);
		mw_conn_destroy(&ch->io.conn);
		setup_pause(ch, ms);
		if (!hangups)
			dl = mw_deadline_after(s->cfg->timeout_s);
	}
	/* why it hung up is the news, unless the receiver said more since */
	if (hangups &&
	    (hung_up(ret) || ret == -ECONNREFUSED || ret == -MW_E_TIMEOUT)) {
		char last[sizeof(ch->io.conn.err.msg)];

		snprintf(last, sizeof(last), "%s", ch->io.conn.err.msg);
		return mw_err_set(&ch->io.conn.err, ret,
				  "receiver hung up during setup %u time%s in "
				  "%.1f s (flooded with connections, or it "
				  "refuses this address: see its log); "
				  "last: %s",
				  hangups, hangups == 1 ? "" : "s",
				  (double)(mw_now_ns() - t0) / 1e9, last);
	}
	return ret;
}

/*
 * The next frame for slot i: a control frame (ctl), else a chunk or a
 * stream's END. The slot keeps the chunk / ctl until the frame is sent.
 */
static int next_frame(struct mw_chan *io, unsigned i, struct mw_frame_hdr *hp,
		      const void **payload)
{
	struct tx_chan *ch = io->opaque;
	struct sender *s = ch->s;
	struct tx_slot *sl = &ch->slot[i];
	struct mw_ctl *ctl = mw_ctlq_pop(&ch->io.ctlq);
	struct mw_sched_stream *end_st = NULL;
	struct mw_chunk *c = NULL;
	struct mw_frame_hdr h = { 0 };

	if (!ctl) {
		c = mw_sched_take(s->sched, ch->idx, ch->io.conn.fd, &end_st);
		if (!c && !end_st)
			return 0;
	}
	if (c) {
		h.type = MW_FT_DATA;
		h.codec = (uint8_t)s->cfg->codec;
		h.stream = c->st.tx->id;
		h.seq = c->seq;
		h.raw_len = c->raw_len;
		h.csum = c->job.csum;
		h.flags = c->pages ? MW_F_PAGES : 0;
		if (c->job.raw) {
			h.flags |= MW_F_RAW;
			h.wire_len = c->raw_len;
			*payload = c->raw;
		} else {
			h.wire_len = (uint32_t)c->job.out_len;
			*payload = c->wire;
		}
	} else if (end_st) {
		struct mw_end e = { .bytes = end_st->total_bytes,
				    .chunks = end_st->total_chunks };

		h.type = MW_FT_END;
		h.stream = end_st->id;
		h.wire_len = MW_END_LEN;
		mw_end_encode(sl->end, &e);
		*payload = sl->end;
	} else {
		h = ctl->h;
		*payload = ctl->payload;
	}
	sl->chunk = c;
	sl->ctl = ctl;
	*hp = h;
	return 1;
}

/* Slot i's frame is gone (sent, or it could not be sealed): release it. */
static void slot_release(struct mw_chan *io, unsigned i)
{
	struct tx_chan *ch = io->opaque;
	struct tx_slot *sl = &ch->slot[i];

	if (sl->chunk)
		mw_sched_put(ch->s->sched, &sl->chunk);
	free(sl->ctl);
	sl->chunk = NULL;
	sl->ctl = NULL;
}

static struct tx_stream *stream_get(struct sender *s, uint32_t id)
{
	return tx_stream_get(s->sched, id);
}

/* The stream's reverse writer, started on its first reverse frame. */
static int rev_writer(struct tx_chan *ch, struct tx_stream *st)
{
	struct sender *s = ch->s;
	int ret;

	if (st->rw)
		return 0;
	ret = mw_rev_writer_start(&st->rw, st->id, st->out_fd, st->is_sock,
				  (unsigned long long)s->cfg->timeout_s *
					  1000000000ull,
				  &s->fail, &st->rev_done);
	return ret ? mw_err_set(&ch->io.conn.err, ret,
				"stream %u: reverse writer: %s", st->id,
				mw_strerror(ret)) :
		     0;
}

/*
 * Reverse DATA or END of a stream, in order on this channel: checked here,
 * written by the stream's own writer (rev_writer.h), so a source QEMU that
 * stops reading its return path stalls that writer, not this channel.
 */
static int rev_frame(struct tx_chan *ch, const struct mw_frame_hdr *h)
{
	struct sender *s = ch->s;
	struct tx_stream *st = stream_get(s, h->stream & MW_STREAM_ID_MASK);
	int ret;

	if (!st || (st->id % s->cfg->nr_chans) != ch->idx || st->rev_ended)
		return mw_err_set(&ch->io.conn.err, -MW_E_PROTO,
				  "reverse frame for unknown stream %u",
				  h->stream & MW_STREAM_ID_MASK);
	ret = rev_writer(ch, st);
	if (ret)
		return ret;
	if (h->type == MW_FT_END) {
		struct mw_end e;

		if (mw_end_decode(ch->in_payload, h->wire_len, &e) ||
		    e.chunks != st->rev_seq || e.bytes != st->rev_bytes)
			return mw_err_set(
				&ch->io.conn.err, -MW_E_CORRUPT,
				"stream %u: reverse END totals differ "
				"from what arrived",
				st->id);
		st->rev_ended = true;
		mw_rev_writer_end(st->rw);
		return 0;
	}
	if (!(h->flags & MW_F_RAW) || h->seq != st->rev_seq ||
	    h->raw_len > MW_REVERSE_MAX)
		return mw_err_set(&ch->io.conn.err, -MW_E_PROTO,
				  "stream %u: bad reverse frame %" PRIu64,
				  st->id, h->seq);
	if (mw_comp_checksum(ch->in_payload, h->raw_len) != h->csum)
		return mw_err_set(&ch->io.conn.err, -MW_E_CORRUPT,
				  "stream %u: reverse chunk %" PRIu64
				  ": checksum mismatch",
				  st->id, h->seq);
	if (st->rev_seq == 0)
		mw_source_sniff(st, ch->in_payload, h->raw_len, true);
	st->rev_seq++;
	st->rev_bytes += h->raw_len;
	atomic_store_explicit(&st->bytes_rev, st->rev_bytes,
			      memory_order_relaxed);
	ret = mw_rev_writer_push(st->rw, ch->in_payload, h->raw_len);
	if (ret == -MW_E_NOSPACE)
		return mw_err_set(&ch->io.conn.err, ret,
				  "stream %u: the source QEMU reads its return "
				  "path too slowly (%u MiB waiting)",
				  st->id, MW_REV_QUEUE_MAX >> 20);
	if (ret)
		return mw_err_set(&ch->io.conn.err, ret,
				  "stream %u: reverse queue: %s", st->id,
				  mw_strerror(ret));
	return 0;
}

/* Every frame from the receiver lands in in_payload (bounded by
 * MW_REVERSE_MAX when the header was decoded). */
static int frame_dst(void *opaque, const struct mw_frame_hdr *h, uint8_t **dst)
{
	struct tx_chan *ch = opaque;

	*dst = ch->in_payload;
	return 0;
}

static int frame_received(void *opaque, const struct mw_frame_hdr *h)
{
	struct tx_chan *ch = opaque;
	struct sender *s = ch->s;

	switch (h->type) {
	case MW_FT_ERROR: {
		char text[MW_PEER_TEXT_MAX + 1];

		return mw_err_set(
			&ch->io.conn.err, -MW_E_PEER, "receiver failed: %s",
			mw_err_peer_text(text, sizeof(text), ch->in_payload,
					 h->wire_len));
	}
	case MW_FT_PING:
		return 0; /* its arrival was the point (chan.c) */
	case MW_FT_WINDOW: {
		struct tx_stream *st = stream_get(s, h->stream);

		if (!st)
			return mw_err_set(&ch->io.conn.err, -MW_E_PROTO,
					  "credit for unknown stream %u",
					  h->stream);
		mw_sched_credit(s->sched, &st->q, h->seq);
		return 0;
	}
	case MW_FT_DATA:
	case MW_FT_END:
		if (!(h->stream & MW_STREAM_REVERSE))
			break;
		return rev_frame(ch, h);
	case MW_FT_ACK: {
		struct mw_ack a;
		uint64_t bytes, chunks;

		mw_ack_decode(ch->in_payload, h->wire_len, &a);
		pthread_mutex_lock(&s->lock);
		mw_sched_totals(s->sched, &bytes, &chunks);
		if (!s->close_sent || a.bytes != bytes || a.chunks != chunks) {
			pthread_mutex_unlock(&s->lock);
			return mw_err_set(&ch->io.conn.err, -MW_E_CORRUPT,
					  "receiver acknowledged %" PRIu64
					  " bytes, %" PRIu64 " sent",
					  a.bytes, bytes);
		}
		pthread_mutex_unlock(&s->lock);
		atomic_store(&s->acked, true);
		mw_fail_wake(&s->fail);
		return 0;
	}
	default:
		break;
	}
	return mw_err_set(&ch->io.conn.err, -MW_E_PROTO,
			  "unexpected %s frame from receiver",
			  mw_frame_type_name(h->type));
}

static const struct mw_frame_rd_ops frame_ops = {
	.header = frame_dst,
	.frame = frame_received,
};

static int round_check(struct mw_chan *io)
{
	struct tx_chan *ch = io->opaque;
	struct sender *s = ch->s;

	return mw_fail_is_set(&s->fail) || atomic_load(&s->acked) ?
		       MW_CHAN_STOP :
		       0;
}

static int recv_check(struct mw_chan *io, int res)
{
	struct tx_chan *ch = io->opaque;
	struct sender *s = ch->s;

	/* teardown shuts the socket's read side */
	if (res <= 0 && mw_fail_is_set(&s->fail))
		return -MW_E_CANCEL;
	if (res == 0) {
		if (atomic_load(&s->acked))
			return MW_CHAN_STOP;
		return mw_err_set(&ch->io.conn.err, -MW_E_CLOSED,
				  "receiver closed the connection");
	}
	if (res < 0)
		return mw_err_set(&ch->io.conn.err, res, "recv: %s",
				  mw_strerror(res));
	return 0;
}

static int tls_closed(struct mw_chan *io)
{
	struct tx_chan *ch = io->opaque;

	return atomic_load(&ch->s->acked) ?
		       0 :
		       mw_err_set(&ch->io.conn.err, -MW_E_CLOSED,
				  "receiver closed the TLS session");
}

static const struct mw_chan_ops chan_ops = {
	.round = round_check,
	.next_frame = next_frame,
	.on_drop = slot_release,
	.on_sent = slot_release,
	.on_recv = recv_check,
	.on_closed = tls_closed,
};

static int chan_loop(struct tx_chan *ch)
{
	struct sender *s = ch->s;

	ch->io.rate = &s->rate;
	ch->io.seal_ns = &ch->seal_ns;
	ch->io.sent_bytes = &ch->bytes_wire;
	ch->io.dead_ns = (unsigned long long)s->cfg->timeout_s * 1000000000ull;
	/* credit frames are small: recv many at once into the buffer */
	mw_conn_rx_start(&ch->io.conn, &frame_ops, ch, MW_REVERSE_MAX,
			 "malformed frame from receiver", false);
	return mw_chan_loop(&ch->io, &chan_ops, ch);
}

/*
 * The loop ended (ack, failure, or stop): let a send still in the kernel
 * finish, for at most a second, so the connection ends on a frame (and TLS
 * record) boundary and an ERROR frame can still follow it. Otherwise the
 * channel is dirty: an ERROR would land inside a record and the receiver
 * would report a forged record instead of the reason.
 */
static void chan_drain(struct tx_chan *ch)
{
	if (ch->io.ring_ok && !ch->dirty &&
	    mw_chan_flush(&ch->io, mw_now_ns() + 1000000000ull))
		ch->dirty = true;
}

/* A channel's failure is the session's, named by channel and peer. */
static void chan_fail(struct tx_chan *ch, int ret)
{
	if (ret && ret != -MW_E_CANCEL)
		mw_fail_set(&ch->s->fail, ret, "channel %u (%s): %s", ch->idx,
			    ch->io.conn.peer[0] ? ch->io.conn.peer :
						  ch->s->cfg->host,
			    ch->io.conn.err.msg[0] ? ch->io.conn.err.msg :
						     mw_strerror(ret));
}

void *mw_tx_chan_main(void *arg)
{
	struct tx_chan *ch = arg;
	struct sender *s = ch->s;
	char name[16];
	int ret;

	snprintf(name, sizeof(name), "mw-tx%u", ch->idx);
	mw_thread_place(name, &s->cfg->cpus, 1 + s->cfg->threads + ch->idx);
	ret = chan_setup(ch);
	chan_fail(ch, ret);
	pthread_mutex_lock(&s->lock);
	if (!ret)
		s->nready++;
	pthread_mutex_unlock(&s->lock);
	mw_fail_wake(&s->fail); /* wait_channels() */
	if (!ret)
		ret = mw_chan_ring_init(&ch->io, s->io);
	if (!ret)
		ret = chan_loop(ch);
	if (ret && ret != -MW_E_CANCEL)
		ch->dirty = true; /* its own socket or TLS failed */
	else
		chan_drain(ch);
	chan_fail(ch, ret);
	ch->cpu_final = mw_thread_cpu_seconds();
	atomic_store(&ch->exited, true);
	return NULL;
}
