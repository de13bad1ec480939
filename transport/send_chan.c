/* SPDX-License-Identifier: MIT */
/*
 * The sender's channels: one thread per channel (mw-txN) that connects,
 * joins the session with HELLO, and then runs the channel loop (chan.h):
 * it sends control frames, chunks and ENDs from the scheduler, and takes
 * the receiver's frames: credit and confirmations (WINDOW), the reverse
 * direction of the streams, ACK and ERROR.
 *
 * Resume (DESIGN.md 7, docs/protocol.md "Resume"): a channel whose
 * connection is lost after its first HELLO_OK (mw_err_resumable(): reset,
 * EOF without CLOSE, TCP user timeout, heartbeat) does not fail the
 * session while --reconnect-timeout allows. Its thread hands its chunks
 * back to the scheduler to be sent again (by the other channels meanwhile),
 * redials with backoff and a RESUME HELLO proven with the session's resume
 * secret, and runs its loop again on the new connection: channel 0 first
 * sends the OPEN and CLOSE frames it had taken again. Anything the
 * receiver said (ERROR), authentication, protocol and data errors stay
 * final, as every failure does with --reconnect-timeout 0.
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
#include "mw_tls.h"
#include "mw_pages.h"
#include "mw_thread.h"
#include "frame_io.h"
#include "join.h"
#include "net.h"
#include "send_int.h"

static struct tx_stream *stream_get(struct sender *s, uint32_t id)
{
	return tx_stream_get(s->sched, id);
}

/* The --to path a channel dials on attempt n of a (re)connection: its home
 * path (idx % paths) twice, then each other path in turn, and again. */
static unsigned chan_path(const struct tx_chan *ch, unsigned n)
{
	unsigned np = ch->s->cfg->nr_paths ? ch->s->cfg->nr_paths : 1;
	unsigned home = ch->idx % np, k = n % (np + 1);

	return np == 1 || k < 2 ? home : (home + k - 1) % np;
}

/*
 * The socket teardown may shut down (ch->sock), published under s->lock
 * from the moment it exists until just before it is closed: the main
 * thread shuts it down under the same lock, so never a reused fd number.
 */
static void sock_publish(void *arg, int fd)
{
	struct tx_chan *ch = arg;

	pthread_mutex_lock(&ch->s->lock);
	ch->sock = fd;
	pthread_mutex_unlock(&ch->s->lock);
}

/* A connect in progress ends early: the session failed or completed. */
static bool connect_stop(void *arg)
{
	struct tx_chan *ch = arg;

	return mw_fail_is_set(&ch->s->fail) || atomic_load(&ch->s->acked);
}

/* Ends the channel's connection (unpublished first, then closed). */
static void conn_drop(struct tx_chan *ch)
{
	sock_publish(ch, -1);
	mw_conn_destroy(&ch->io.conn);
}

/* The resume secret of a HELLO_OK: the first one sets it, every later one
 * (other channels, resumes) must carry the same. */
static int check_secret(struct tx_chan *ch, const struct mw_hello_ok *ok)
{
	struct sender *s = ch->s;
	bool same = true;

	pthread_mutex_lock(&s->lock);
	if (!s->have_secret) {
		memcpy(s->secret, ok->secret, sizeof(s->secret));
		s->have_secret = true;
	} else {
		same = mw_tls_join_tag_equal(s->secret, ok->secret);
	}
	pthread_mutex_unlock(&s->lock);
	return same ? 0 :
		      mw_err_set(&ch->io.conn.err, -MW_E_PROTO,
				 "the receiver's resume secret differs from "
				 "the session's (another receiver answered?)");
}

/*
 * One dial of path: TCP, TLS, HELLO (with MW_HELLO_F_RESUME when resume),
 * the join or resume proof when asked, HELLO_OK. Returns 0 or an error in
 * ch->io.conn.err.
 */
static int chan_setup_once(struct tx_chan *ch, unsigned long long dl,
			   unsigned path, bool resume)
{
	struct sender *s = ch->s;
	const struct mw_xp_cfg *cfg = s->cfg;
	const char *host = cfg->nr_paths ? cfg->paths[path].host : cfg->host;
	uint16_t port = cfg->nr_paths ? cfg->paths[path].port : cfg->port;
	struct mw_hello hello = {
		.version = MW_PROTO_VERSION,
		.chan_index = (uint16_t)ch->idx,
		.chan_count = (uint16_t)cfg->nr_chans,
		.codec = (uint8_t)cfg->codec,
		.chunk_size = cfg->chunk_size,
		.window_chunks = s->nchunks,
		.flags = (cfg->join_token_len ? MW_HELLO_F_TOKEN : 0) |
			 (cfg->pages ? MW_HELLO_F_PAGES : 0) |
			 (resume ? MW_HELLO_F_RESUME : 0),
		.page_cache_slots = cfg->pages ? (uint32_t)(cfg->page_cache /
							    MW_PAGES_PAGE) :
						 0,
	};
	uint8_t payload[MW_ERROR_MAX + 1], raw[MW_HELLO_LEN];
	struct mw_frame_hdr h = { .type = MW_FT_HELLO,
				  .wire_len = MW_HELLO_LEN };
	struct mw_hello_ok ok;
	/* the connect wait watches the channel's eventfd, which teardown
	 * pokes: a black-holed path does not hold the exit until dl */
	const struct mw_net_watch watch = { .efd = ch->io.efd,
					    .publish = sock_publish,
					    .stop = connect_stop,
					    .arg = ch };
	char peer[MW_PEER_MAX];
	int fd, ret;

	fd = mw_net_connect_watch(host, port, dl, peer, sizeof(peer),
				  &ch->io.conn.err, &watch);
	if (fd < 0)
		return fd;
	atomic_store_explicit(&ch->path, path, memory_order_relaxed);
	atomic_store_explicit(&ch->conn_base,
			      atomic_load_explicit(&ch->bytes_wire,
						   memory_order_relaxed),
			      memory_order_relaxed);
	mw_net_tune(fd, cfg->timeout_s);
	ret = mw_conn_init(&ch->io.conn, fd, peer, s->tls);
	if (ret) {
		sock_publish(ch, -1);
		close(fd);
		ch->io.conn.fd = -1;
		return ret;
	}
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
		/* --join-token (resume: the session's secret, fixed once
		 * set): prove it, then the answer to the HELLO */
		ret = resume ? mw_resume_answer(&ch->io.conn, cfg, s->secret,
						payload, raw, dl) :
			       mw_join_answer(&ch->io.conn, cfg, payload, raw,
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
				  "receiver refused the %s: %s",
				  resume ? "resume" : "channel",
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
	ret = check_secret(ch, &ok);
	if (ret || resume)
		return ret;
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
static int chan_setup_path(struct tx_chan *ch, unsigned path, uint32_t tmo)
{
	struct sender *s = ch->s;
	unsigned long long dl = mw_deadline_after(tmo);
	unsigned long long wait_dl = mw_deadline_after(s->cfg->wait_s);
	unsigned long long t0 = mw_now_ns();
	unsigned hangups = 0, ms = 0;
	int ret;

	for (;;) {
		ret = chan_setup_once(ch, dl, path, false);
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
		conn_drop(ch);
		setup_pause(ch, ms);
		if (!hangups)
			dl = mw_deadline_after(tmo);
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

/* A failed redial worth another try: the network (or a receiver that is
 * not listening for the moment), not anything the receiver said. */
static bool redial_again(int ret)
{
	return mw_err_resumable(ret) || ret == -ECONNREFUSED;
}

/* With several --to paths, the --timeout of one dial that has another
 * path to try after it: a share (at least 2 s), so a path that swallows
 * connections (a black hole) does not hold the channel for the whole
 * --timeout each time. */
static uint32_t path_timeout(const struct mw_xp_cfg *cfg)
{
	unsigned np = cfg->nr_paths ? cfg->nr_paths : 1;
	uint32_t share = cfg->timeout_s / np > 2 ? cfg->timeout_s / np : 2;

	return share < cfg->timeout_s ? share : cfg->timeout_s;
}

/*
 * The channel's first connection: its home path, and with several --to
 * paths, when the network fails it there (not the receiver: what it says
 * is final), the others in turn, each with path_timeout() but the last.
 */
static int chan_setup(struct tx_chan *ch)
{
	const struct mw_xp_cfg *cfg = ch->s->cfg;
	unsigned np = cfg->nr_paths ? cfg->nr_paths : 1, k;
	int ret = 0;

	for (k = 0; k < np; k++) {
		unsigned path = (ch->idx + k) % np;
		bool last = k + 1 == np;

		ret = chan_setup_path(
			ch, path, last ? cfg->timeout_s : path_timeout(cfg));
		if (!ret || last || !redial_again(ret) ||
		    mw_fail_is_set(&ch->s->fail))
			break;
		MW_LOG(MW_LOG_WARN,
		       "channel %u: path %s failed (%s); trying %s", ch->idx,
		       ch->s->path_addr[path], ch->io.conn.err.msg,
		       ch->s->path_addr[(path + 1) % np]);
		conn_drop(ch);
	}
	return ret;
}

/*
 * Channel 0 keeps a copy of every OPEN and CLOSE it takes from its queue:
 * after a resume it sends them again first (the receiver drops those it
 * has). Out of memory is the session's failure.
 */
static int keep_ctl(struct tx_chan *ch, const struct mw_ctl *ctl)
{
	struct mw_ctl *c;

	if (ch->idx ||
	    (ctl->h.type != MW_FT_OPEN && ctl->h.type != MW_FT_CLOSE))
		return 0;
	c = mw_ctl_new(&ctl->h, ctl->payload);
	if (!c)
		return mw_err_set(&ch->io.conn.err, -ENOMEM, "out of memory");
	c->h.flags |= MW_F_RESENT;
	c->next = NULL;
	*ch->kept_tail = c;
	ch->kept_tail = &c->next;
	return 0;
}

/* A resumed channel 0: the kept OPENs and CLOSE go out again first. */
static int replay_kept(struct tx_chan *ch)
{
	struct mw_ctl *k, **tail = &ch->replay;

	for (k = ch->kept; k; k = k->next) {
		struct mw_ctl *c = mw_ctl_new(&k->h, k->payload);

		if (!c)
			return mw_err_set(&ch->io.conn.err, -ENOMEM,
					  "out of memory");
		c->next = NULL;
		*tail = c;
		tail = &c->next;
	}
	return 0;
}

static void ctl_list_free(struct mw_ctl **l)
{
	while (*l) {
		struct mw_ctl *c = *l;

		*l = c->next;
		free(c);
	}
}

/*
 * A CONFIRM this channel owes: the lowest stream with its bit set. seq =
 * the reverse chunks accepted, one more once the END was (docs/protocol.md,
 * CONFIRM). Returns 1 with *h set, 0 when none is owed.
 */
static int next_confirm(struct tx_chan *ch, struct mw_frame_hdr *h)
{
	struct sender *s = ch->s;
	struct tx_stream *st;
	unsigned w, id;

	for (w = 0; w < sizeof(ch->confirm) / sizeof(ch->confirm[0]); w++)
		if (ch->confirm[w])
			break;
	if (w == sizeof(ch->confirm) / sizeof(ch->confirm[0]))
		return 0;
	id = w * 64 + (unsigned)__builtin_ctzll(ch->confirm[w]);
	ch->confirm[w] &= ch->confirm[w] - 1;
	st = stream_get(s, id);
	if (!st)
		return 0; /* not possible: bits are set for known streams */
	memset(h, 0, sizeof(*h));
	h->type = MW_FT_CONFIRM;
	h->stream = id | MW_STREAM_REVERSE;
	pthread_mutex_lock(&s->rev_lock);
	h->seq = st->rev_seq + (st->rev_ended ? 1 : 0);
	pthread_mutex_unlock(&s->rev_lock);
	return 1;
}

/*
 * The next frame for slot i: a frame to send again after a resume, a
 * control frame (ctl), a CONFIRM, else a chunk or a stream's END. The slot
 * keeps the chunk / ctl until the frame is sent.
 */
static int next_frame(struct mw_chan *io, unsigned i, struct mw_frame_hdr *hp,
		      const void **payload)
{
	struct tx_chan *ch = io->opaque;
	struct sender *s = ch->s;
	struct tx_slot *sl = &ch->slot[i];
	struct mw_ctl *ctl = ch->replay;
	struct mw_sched_stream *end_st = NULL;
	struct mw_chunk *c = NULL;
	struct mw_frame_hdr h = { 0 };

	if (ctl) {
		ch->replay = ctl->next;
	} else if ((ctl = mw_ctlq_pop(&ch->io.ctlq))) {
		int ret = keep_ctl(ch, ctl);

		if (ret) {
			free(ctl);
			return ret;
		}
	} else if (next_confirm(ch, &h)) {
		sl->chunk = NULL;
		sl->ctl = NULL;
		*payload = sl->end; /* no payload */
		*hp = h;
		return 1;
	} else {
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
		h.flags = (c->pages ? MW_F_PAGES : 0) |
			  (c->resend ? MW_F_RESENT : 0);
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
		/* written by this channel's take (tx_sched.h) */
		h.flags = end_st->end_resent ? MW_F_RESENT : 0;
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

/* Slot i's frame left in full: its chunk is kept until confirmed. */
static void slot_sent(struct mw_chan *io, unsigned i)
{
	struct tx_chan *ch = io->opaque;
	struct tx_slot *sl = &ch->slot[i];

	if (sl->chunk)
		mw_sched_sent(ch->s->sched, &sl->chunk);
	free(sl->ctl);
	sl->ctl = NULL;
}

/* Slot i's frame did not leave (it could not be sealed, or the channel
 * was lost): its chunk goes back to be sent again. Returns its wire
 * bytes, or 0 without a chunk. */
static uint64_t slot_unsend(struct tx_chan *ch, unsigned i)
{
	struct tx_slot *sl = &ch->slot[i];
	uint64_t n = 0;

	if (sl->chunk) {
		n = sl->chunk->job.raw ? sl->chunk->raw_len :
					 sl->chunk->job.out_len;
		mw_sched_unsend(ch->s->sched, &sl->chunk);
	}
	free(sl->ctl);
	sl->ctl = NULL;
	return n;
}

static void slot_drop(struct mw_chan *io, unsigned i)
{
	slot_unsend(io->opaque, i);
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

/* This channel owes the receiver a CONFIRM for stream id. */
static void confirm_owed(struct tx_chan *ch, unsigned id)
{
	ch->confirm[id / 64] |= 1ull << (id % 64);
}

/*
 * Reverse DATA or END of a stream, in order, on any channel (the receiver
 * moves a stream's reverse frames while their channel is down), under
 * s->rev_lock: checked here, written by the stream's own writer
 * (rev_writer.h), so a source QEMU that stops reading its return path
 * stalls that writer, not this channel. A frame sent again (MW_F_RESENT)
 * that arrived before is dropped; so is, once any frame sent again
 * arrived, a first copy that comes after its copy sent again (it was
 * still buffered on a connection the receiver gave up while this side
 * still read it). Either way a CONFIRM is owed.
 */
static int rev_frame_locked(struct tx_chan *ch, const struct mw_frame_hdr *h)
{
	struct sender *s = ch->s;
	struct tx_stream *st = stream_get(s, h->stream & MW_STREAM_ID_MASK);
	bool again; /* may be a copy of a frame that arrived */
	int ret;

	if (h->flags & MW_F_RESENT)
		s->rev_resent_seen = true;
	again = (h->flags & MW_F_RESENT) || s->rev_resent_seen;
	if (st && st->rev_ended && again && h->type == MW_FT_END) {
		struct mw_end e;

		if (mw_end_decode(ch->in_payload, h->wire_len, &e) ||
		    e.chunks != st->rev_seq || e.bytes != st->rev_bytes)
			return mw_err_set(&ch->io.conn.err, -MW_E_CORRUPT,
					  "stream %u: reverse END sent again "
					  "with other totals",
					  st->id);
		confirm_owed(ch, st->id);
		return 0;
	}
	if (st && again && h->type == MW_FT_DATA && h->seq < st->rev_seq) {
		confirm_owed(ch, st->id);
		return 0; /* it arrived before its channel was lost */
	}
	if (!st || st->rev_ended)
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
		confirm_owed(ch, st->id);
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
	confirm_owed(ch, st->id);
	return 0;
}

static int rev_frame(struct tx_chan *ch, const struct mw_frame_hdr *h)
{
	int ret;

	pthread_mutex_lock(&ch->s->rev_lock);
	ret = rev_frame_locked(ch, h);
	pthread_mutex_unlock(&ch->s->rev_lock);
	return ret;
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
		uint64_t written;

		if (!st ||
		    mw_window_decode(ch->in_payload, h->wire_len, &written))
			return mw_err_set(&ch->io.conn.err, -MW_E_PROTO,
					  "bad WINDOW for stream %u",
					  h->stream);
		/* confirm first: freed chunks are what the credit fills */
		if (mw_sched_confirm(s->sched, &st->q, written))
			return mw_err_set(&ch->io.conn.err, -MW_E_PROTO,
					  "stream %u: receiver confirmed chunk "
					  "%" PRIu64 " that was never sent",
					  h->stream, written - 1);
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
	.on_drop = slot_drop,
	.on_sent = slot_sent,
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

/* The connection ended: what it carried goes to its path's figures. */
static void path_account(struct tx_chan *ch)
{
	unsigned long long now =
		atomic_load_explicit(&ch->bytes_wire, memory_order_relaxed);
	unsigned long long base = atomic_exchange_explicit(
		&ch->conn_base, now, memory_order_relaxed);

	atomic_fetch_add_explicit(&ch->s->path_bytes[atomic_load_explicit(
					  &ch->path, memory_order_relaxed)],
				  now - base, memory_order_relaxed);
}

/*
 * The pause clock: time with no channel up once the session started
 * (issue "pause, not fail"). up: the channel is set up, or lost.
 */
static void chan_set_up(struct tx_chan *ch, bool up)
{
	struct sender *s = ch->s;
	unsigned long long now = mw_now_ns();

	pthread_mutex_lock(&s->lock);
	if (up && s->nup++ == 0 && s->paused_since) {
		s->paused_ns += now - s->paused_since;
		s->paused_since = 0;
	} else if (!up && --s->nup == 0) {
		s->paused_since = now;
	}
	pthread_mutex_unlock(&s->lock);
	atomic_store(&ch->up, up);
}

unsigned long long mw_tx_paused_ns(struct sender *s)
{
	unsigned long long v;

	pthread_mutex_lock(&s->lock);
	v = s->paused_ns +
	    (s->paused_since ? mw_now_ns() - s->paused_since : 0);
	pthread_mutex_unlock(&s->lock);
	return v;
}

/* The loop ended with ret: is the channel lost (to be resumed) rather
 * than failed? */
static bool chan_is_lost(struct tx_chan *ch, int ret)
{
	struct sender *s = ch->s;

	return ret && ret != -MW_E_CANCEL && s->cfg->reconnect_s &&
	       mw_err_resumable(ret) && !mw_fail_is_set(&s->fail) &&
	       !atomic_load(&s->acked);
}

/*
 * The channel's connection was lost with ret (its loop ended; the text is
 * in io.conn.err): tears it down, hands its chunks back to be sent again,
 * and redials with backoff (0.1 s doubling to 2 s, with jitter) until a
 * resume is admitted or --reconnect-timeout since the loss passed. Returns
 * 0 when the channel runs again (ring ready), 1 when the session completed
 * meanwhile (the ACK came on another channel), -MW_E_CANCEL when it failed
 * elsewhere or was given up here (latched), or a final error in
 * io.conn.err.
 */
static int chan_resume(struct tx_chan *ch, int lost)
{
	struct sender *s = ch->s;
	const struct mw_xp_cfg *cfg = s->cfg;
	unsigned long long t0 = mw_now_ns();
	unsigned long long give_up =
		t0 + (unsigned long long)cfg->reconnect_s * 1000000000ull;
	char cause[sizeof(ch->io.conn.err.msg)], last[sizeof(cause)];
	uint64_t nchunks = 0, nbytes = 0;
	unsigned attempt = 0, ms = 100, k;
	int ret;

	snprintf(cause, sizeof(cause), "%s",
		 ch->io.conn.err.msg[0] ? ch->io.conn.err.msg :
					  mw_strerror(lost));
	snprintf(last, sizeof(last), "%s", cause);
	path_account(ch);
	sock_publish(ch, -1); /* mw_chan_reset() closes it */
	/* the kernel lets go of the slots' buffers before they go back */
	mw_chan_reset(&ch->io, t0 + 2000000000ull);
	ch->dirty = false;
	for (k = 0; k < TX_SLOTS; k++) {
		nchunks += ch->slot[k].chunk != NULL;
		nbytes += slot_unsend(ch, k);
	}
	ctl_list_free(&ch->replay); /* rebuilt whole after the resume */
	mw_sched_chan_lost(s->sched, ch->idx, &nchunks, &nbytes);
	chan_set_up(ch, false);
	MW_LOG(MW_LOG_WARN, "channel %u lost (%s); reconnecting for up to %u s",
	       ch->idx, cause, cfg->reconnect_s);
	for (;;) {
		unsigned long long now = mw_now_ns(), dl;
		unsigned pause =
			ms + (unsigned)(now / 1000 % (ms / 2 + 1)); /* jitter */

		/* the first pause too: an ACK may be on its way elsewhere;
		 * none past the give-up time, which is told on time */
		if (now >= give_up)
			pause = 0;
		else if (now + pause * 1000000ull > give_up)
			pause = (unsigned)((give_up - now) / 1000000ull) + 1;
		setup_pause(ch, pause);
		ms = ms < 1000 ? ms * 2 : 2000;
		now = mw_now_ns();
		if (mw_fail_is_set(&s->fail))
			return -MW_E_CANCEL;
		if (atomic_load(&s->acked))
			return 1;
		if (now >= give_up) {
			mw_fail_set(&s->fail, -ETIMEDOUT,
				    "channel %u: not resumed within "
				    "--reconnect-timeout %u s (last: %s)",
				    ch->idx, cfg->reconnect_s, last);
			return -MW_E_CANCEL;
		}
		dl = mw_deadline_after(path_timeout(cfg));
		if (dl > give_up)
			dl = give_up;
		ret = chan_setup_once(ch, dl, chan_path(ch, attempt++), true);
		if (!ret)
			break;
		snprintf(last, sizeof(last), "%s",
			 ch->io.conn.err.msg[0] ? ch->io.conn.err.msg :
						  mw_strerror(ret));
		conn_drop(ch);
		if (atomic_load(&s->acked))
			return 1; /* the receiver had no session left: done */
		if (!redial_again(ret))
			return mw_err_set(&ch->io.conn.err, ret, "%s", last);
		MW_LOG(MW_LOG_DEBUG, "channel %u: redial %u: %s", ch->idx,
		       attempt, last);
	}
	/* the ring outlives the connection when mw_chan_reset() kept it */
	ret = ch->io.ring_ok ? 0 : mw_chan_ring_init(&ch->io, s->io);
	if (!ret && ch->idx == 0)
		ret = replay_kept(ch);
	if (ret)
		return ret;
	atomic_fetch_add(&ch->reconnects, 1);
	atomic_fetch_add_explicit(&s->path_reconnects[atomic_load_explicit(
					  &ch->path, memory_order_relaxed)],
				  1, memory_order_relaxed);
	chan_set_up(ch, true);
	MW_LOG(MW_LOG_WARN,
	       "channel %u resumed after %.1f s (%" PRIu64 " chunks, %.1f MiB "
	       "resent)",
	       ch->idx, (double)(mw_now_ns() - t0) / 1e9, nchunks,
	       (double)nbytes / (1 << 20));
	return 0;
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
	if (!ret)
		chan_set_up(ch, true);
	mw_fail_wake(&s->fail); /* wait_channels() */
	if (!ret)
		ret = mw_chan_ring_init(&ch->io, s->io);
	while (!ret) {
		ret = chan_loop(ch);
		if (!chan_is_lost(ch, ret))
			break;
		ret = chan_resume(ch, ret);
		if (ret == 1) { /* completed while this one was down */
			ret = 0;
			break;
		}
	}
	if (ret && ret != -MW_E_CANCEL)
		ch->dirty = true; /* its own socket or TLS failed */
	else
		chan_drain(ch);
	chan_fail(ch, ret);
	path_account(ch);
	ctl_list_free(&ch->kept);
	ch->kept_tail = &ch->kept;
	ctl_list_free(&ch->replay);
	atomic_store(&ch->up, false);
	ch->cpu_final = mw_thread_cpu_seconds();
	atomic_store(&ch->exited, true);
	return NULL;
}
