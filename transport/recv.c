/* SPDX-License-Identifier: MIT */
/*
 * migwire recv: N channels -> decompress pool -> per-stream reorder ->
 * destination QEMU, and the reverse direction back over the channels.
 *
 * DESIGN
 * Threads: the main thread (signals, stats, teardown), the listener
 * (mw-listen), one thread per accepted connection (mw-rxhs while it
 * authenticates, then mw-rxN), the decompress workers (compress/), and per
 * stream a writer (mw-wrN: connects to the destination, writes in order)
 * and a reverse reader (mw-rvN: destination -> sender).
 *
 * The stages live in their own files: admit.c lets connections in (TLS,
 * HELLO, the session's parameters), the channel loops here parse frames
 * into the streams' slots and send control and reverse frames, and sink.c
 * feeds each stream to the destination QEMU in order and reads its
 * replies. recv_int.h holds the shared state and its locking rules.
 *
 * Teardown (receiver_teardown) wakes everyone, cuts connections still stuck
 * in a handshake after 2 s, and waits up to 2 s per stream thread: a writer
 * stuck in a write to a QEMU that stopped reading is left behind, and the
 * run then returns without freeing (the process exits right after).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mw_fd.h"
#include "mw_log.h"
#include "mw_thread.h"
#include "chan.h"
#include "frame_io.h"
#include "net.h"
#include "recv_int.h"
#include "stats.h"

static int chan_err(struct rx_chan *ch, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int chan_err(struct rx_chan *ch, int code, const char *fmt, ...)
{
	va_list ap;

	ch->conn.err.code = code;
	va_start(ap, fmt);
	vsnprintf(ch->conn.err.msg, sizeof(ch->conn.err.msg), fmt, ap);
	va_end(ap);
	return code;
}

/* ---- channel: incoming frames ---- */

/* DATA header decoded: claim the slot its credit reserved. */
static int claim_slot(struct rx_chan *ch, const struct mw_frame_hdr *h,
		      uint8_t **dst)
{
	struct receiver *r = ch->r;
	const char *why = "";
	struct rx_stream *st;
	struct rx_slot *s;
	int idx;

	pthread_mutex_lock(&r->lock);
	st = mw_rx_stream_get_locked(r, h->stream, &ch->conn.err);
	if (!st) {
		pthread_mutex_unlock(&r->lock);
		return ch->conn.err.code;
	}
	idx = mw_reasm_claim(&st->ra, h->seq, &why);
	if (idx < 0) {
		pthread_mutex_unlock(&r->lock);
		return chan_err(ch, idx, "stream %u chunk %" PRIu64 ": %s",
				st->id, h->seq, why);
	}
	s = &st->slots[idx];
	s->seq = h->seq;
	s->raw_len = h->raw_len;
	pthread_mutex_unlock(&r->lock);
	if (!atomic_load_explicit(&r->first_ns, memory_order_relaxed)) {
		unsigned long long none = 0;

		/* rates count from here, not from start-up */
		atomic_compare_exchange_strong(&r->first_ns, &none,
					       mw_now_ns());
	}
	ch->slot = s;
	*dst = (h->flags & MW_F_RAW) ? s->raw : s->wire;
	return 0;
}

/* A header passed mw_frame_hdr_decode: checks it against the session and
 * picks where its payload goes. */
static int frame_header(void *opaque, const struct mw_frame_hdr *h,
			uint8_t **dst)
{
	struct rx_chan *ch = opaque;
	struct receiver *r = ch->r;

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
		return claim_slot(ch, h, dst);
	case MW_FT_END:
	case MW_FT_ERROR:
	case MW_FT_OPEN:
	case MW_FT_CLOSE:
		*dst = ch->ctl;
		return 0;
	default:
		return chan_err(ch, -MW_E_PROTO, "unexpected %s frame",
				mw_frame_type_name(h->type));
	}
}

static int payload_done(struct rx_chan *ch, const struct mw_frame_hdr *h)
{
	struct rx_slot *s = ch->slot;
	struct receiver *r = ch->r;
	int ret;

	ch->slot = NULL;
	memset(&s->job, 0, sizeof(s->job));
	s->job.dir = MW_COMP_DECOMPRESS;
	s->job.raw = h->flags & MW_F_RAW;
	s->job.src = s->job.raw ? s->raw : s->wire;
	s->job.src_len = h->wire_len;
	s->job.dst = s->raw;
	s->job.dst_cap = r->sess.chunk_size;
	s->job.raw_len = h->raw_len;
	s->job.csum = h->csum;
	s->job.done = mw_rx_slot_decoded;
	s->job.opaque = s;
	if (s->job.raw) {
		/* verify a raw chunk here while it is in cache: no hand-off */
		mw_comp_job_verify(&s->job);
		mw_rx_slot_decoded(&s->job);
		return 0;
	}
	pthread_mutex_lock(&r->lock);
	mw_reasm_mark(&s->st->ra, s->idx, MW_RS_DECODING);
	pthread_mutex_unlock(&r->lock);
	ret = mw_comp_pool_submit(r->pool, &s->job);
	return ret ? chan_err(ch, ret, "decompress queue: %s",
			      mw_strerror(ret)) :
		     0;
}

static int ctrl_done(struct rx_chan *ch, const struct mw_frame_hdr *h)
{
	struct receiver *r = ch->r;
	struct rx_stream *st;
	int ret = 0;

	if (h->type == MW_FT_ERROR) {
		ch->ctl[h->wire_len] = '\0';
		return chan_err(ch, -MW_E_PEER, "sender failed: %s",
				(char *)ch->ctl);
	}
	pthread_mutex_lock(&r->lock);
	if (h->type == MW_FT_CLOSE) {
		if (r->closed ||
		    mw_close_decode(ch->ctl, h->wire_len, &r->close) ||
		    !r->close.streams)
			ret = chan_err(ch, -MW_E_PROTO,
				       "unexpected CLOSE frame");
		r->closed = true;
		mw_rx_check_complete_locked(r);
	} else if (h->type == MW_FT_OPEN) {
		struct mw_open o;

		st = NULL;
		if (mw_open_decode(ch->ctl, h->wire_len, &o))
			ret = chan_err(ch, -MW_E_PROTO, "malformed OPEN frame");
		else if (!(st = mw_rx_stream_get_locked(r, h->stream,
							&ch->conn.err)))
			ret = ch->conn.err.code;
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
							&ch->conn.err)))
			ret = ch->conn.err.code;
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

	return h->type == MW_FT_DATA ? payload_done(ch, h) : ctrl_done(ch, h);
}

static const struct mw_frame_rd_ops frame_ops = {
	.header = frame_header,
	.frame = frame_done,
};

/* The loop goes on until the session fails, or the sender closed after
 * the ACK (or did not within two seconds). */
static int round_check(struct mw_chan *io)
{
	struct rx_chan *ch = io->opaque;

	if (mw_fail_is_set(&ch->r->fail))
		return -MW_E_CANCEL;
	if (ch->ack_sent && io->rx_eof)
		return MW_CHAN_STOP;
	if (ch->ack_sent && !ch->ack_dl)
		ch->ack_dl = mw_now_ns() + 2000000000ull;
	if (ch->ack_dl && mw_now_ns() >= ch->ack_dl)
		return MW_CHAN_STOP; /* the sender did not close after the ACK */
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
	struct mw_ctl *c = mw_ctlq_pop(&ch->ctlq);

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
		shutdown(ch->conn.fd, SHUT_WR);
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

static int chan_loop(struct rx_chan *ch)
{
	uint32_t maxp = ch->r->sess.chunk_size;

	mw_chan_init(&ch->io, &chan_ops, ch, &ch->conn, &ch->ring, ch->efd, 1);
	ch->io.slot[0].sealed = ch->sealed;
	ch->io.slot[0].sealed_cap = ch->sealed_cap;
	ch->io.rx_bytes = &ch->bytes_wire;
	ch->conn.open_ns = &ch->open_ns;
	/* bulk payloads: a plaintext recv lands in the slot itself */
	mw_conn_rx_start(&ch->conn, &frame_ops, ch,
			 maxp > MW_ERROR_MAX ? maxp : MW_ERROR_MAX,
			 "malformed frame header", true);
	return mw_chan_loop(&ch->io);
}

/* ---- main thread ---- */

static void snap_fill(struct receiver *r, struct mw_stats_snap *sn,
		      struct mw_stats_chan *chs, struct mw_stats_stream *sts,
		      double t0)
{
	struct mw_comp_pool *pool;
	unsigned i, n;

	memset(sn, 0, sizeof(*sn));
	sn->side = "recv";
	sn->io = mw_io_name(r->io);
	sn->elapsed = (double)mw_now_ns() / 1e9 - t0;
	sn->chans = chs;
	sn->streams = sts;
	sn->stage_name[0] = "receive";
	sn->stage_name[1] = "decrypt";
	sn->stage_name[2] = "decompress";
	sn->stage_name[3] = "write";
	pthread_mutex_lock(&r->lock);
	pool = r->pool; /* the first admission sets it meanwhile */
	n = r->have_session ? r->sess.chan_count : 0;
	sn->nchans = n;
	for (i = 0; i < n; i++) {
		struct rx_chan *ch = r->chans[i];

		chs[i].bytes = 0;
		chs[i].cpu = 0;
		if (!ch)
			continue;
		chs[i].bytes = atomic_load_explicit(&ch->bytes_wire,
						    memory_order_relaxed);
		if (!atomic_load(&ch->exited))
			sn->chans_up++;
		chs[i].cpu = atomic_load(&ch->exited) ?
				     ch->cpu_final :
				     mw_stats_thread_cpu(ch->th);
		sn->bytes_wire += chs[i].bytes;
		sn->stage_cpu[0] += chs[i].cpu;
		sn->stage_cpu[1] +=
			(double)atomic_load_explicit(&ch->open_ns,
						     memory_order_relaxed) /
			1e9;
	}
	sn->first = mw_stats_since(atomic_load(&r->first_ns), t0);
	sn->stage_cpu[0] -= sn->stage_cpu[1];
	if (sn->stage_cpu[0] < 0)
		sn->stage_cpu[0] = 0;
	for (i = 0; i < MW_STREAMS_MAX && r->streams[i]; i++) {
		struct rx_stream *st = r->streams[i];

		sts[i].kind = st->kind;
		sts[i].fwd = atomic_load_explicit(&st->bytes_fwd,
						  memory_order_relaxed);
		sts[i].rev = atomic_load_explicit(&st->bytes_rev,
						  memory_order_relaxed);
		sn->bytes_raw += sts[i].fwd;
		sn->chunks += st->ra.next;
		sn->stage_cpu[3] += atomic_load(&st->writer_exited) ?
					    st->writer_cpu :
					    mw_stats_thread_cpu(st->writer);
		sn->nstreams = i + 1;
	}
	pthread_mutex_unlock(&r->lock);
	/* frame headers are part of the wire bytes */
	sn->bytes_wire += sn->chunks * MW_FRAME_HDR_LEN;
	sn->stage_cpu[2] = pool ? mw_comp_pool_cpu_seconds(pool) : 0;
}

static bool all_done(struct receiver *r)
{
	bool done;

	pthread_mutex_lock(&r->lock);
	done = r->complete && r->nlive == 0;
	pthread_mutex_unlock(&r->lock);
	return done;
}

static void control_loop(struct receiver *r, int sfd, struct mw_stats *st,
			 struct mw_stats_chan *chs, struct mw_stats_stream *sts,
			 double t0)
{
	unsigned long long next = mw_now_ns() + 1000000000ull;
	unsigned ticks = 0, every = r->cfg->progress_s;

	while (!mw_fail_is_set(&r->fail) && !all_done(r)) {
		if (mw_fail_poll(&r->fail, sfd, &next) && (st->f || every)) {
			struct mw_stats_snap sn;

			snap_fill(r, &sn, chs, sts, t0);
			mw_stats_write(st, &sn);
			if (every && ++ticks % every == 0)
				mw_stats_progress(&sn, r->cfg->progress_tty,
						  false);
		}
	}
}

/* Waits at most ms for *flag; threads stuck in a write to a QEMU that
 * stopped reading are left behind (the process exits right after). */
static bool wait_flag(atomic_bool *flag, int ms)
{
	while (!atomic_load(flag) && ms > 0) {
		struct timespec ts = { 0, 10000000 };

		nanosleep(&ts, NULL);
		ms -= 10;
	}
	return atomic_load(flag);
}

static void poke_all_locked(struct receiver *r)
{
	unsigned i;

	for (i = 0; i < r->nlive; i++)
		mw_efd_poke(r->live[i]->efd);
}

static bool receiver_teardown(struct receiver *r)
{
	struct timespec ts;
	bool clean = true, rev;
	unsigned i;

	mw_efd_poke(r->lst_efd);
	pthread_mutex_lock(&r->lock);
	pthread_cond_broadcast(&r->cv);
	poke_all_locked(r);
	pthread_mutex_unlock(&r->lock);
	if (r->listener_started)
		pthread_join(r->listener, NULL);
	/* channels send their ERROR and leave; after 2 s, connections still
	 * stuck in a handshake are cut */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	pthread_mutex_lock(&r->lock);
	while (r->nlive &&
	       pthread_cond_timedwait(&r->live_cv, &r->lock, &ts) == 0)
		;
	for (i = 0; i < r->nlive; i++)
		shutdown(r->live[i]->conn.fd, SHUT_RDWR);
	while (r->nlive) {
		poke_all_locked(r);
		pthread_cond_wait(&r->live_cv, &r->lock);
	}
	for (i = 0; i < MW_STREAMS_MAX; i++)
		if (r->streams[i] && r->streams[i]->is_sock &&
		    mw_fail_is_set(&r->fail))
			shutdown(r->streams[i]->fd, SHUT_RDWR);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
	for (i = 0; i < MW_STREAMS_MAX; i++) {
		struct rx_stream *st = r->streams[i];

		if (!st)
			continue;
		if (st->writer_started && wait_flag(&st->writer_exited, 2000))
			pthread_join(st->writer, NULL);
		else if (st->writer_started)
			clean = false;
		/* Pairs with the store in writer_main(): a writer still
		 * connecting may start its reverse reader only now */
		rev = atomic_load_explicit(&st->rev_started,
					   memory_order_acquire);
		if (rev && wait_flag(&st->rev_exited, 2000))
			pthread_join(st->rev, NULL);
		else if (rev)
			clean = false;
		if (!clean)
			MW_LOG(MW_LOG_WARN,
			       "stream %u: %s thread still busy at "
			       "exit",
			       st->id,
			       atomic_load(&st->writer_exited) ? "reverse" :
								 "writer");
	}
	return clean;
}

static void receiver_free(struct receiver *r)
{
	unsigned i;

	mw_comp_pool_free(r->pool);
	for (i = 0; i < MW_CHANNELS_MAX; i++)
		if (r->chans[i])
			mw_rx_chan_free(r->chans[i]);
	for (i = 0; i < MW_STREAMS_MAX; i++)
		mw_rx_stream_free(r, r->streams[i]);
	if (r->tls)
		mw_tls_ctx_free(r->tls);
	if (r->listen_fd >= 0)
		close(r->listen_fd);
	if (r->lst_efd >= 0)
		close(r->lst_efd);
}

int mw_xp_recv_run(const struct mw_xp_cfg *cfg, struct mw_err *err)
{
	struct receiver r = { .cfg = cfg,
			      .listen_fd = -1,
			      .lst_efd = -1,
			      .chan_loop = chan_loop };
	struct mw_stats_chan chs[MW_CHANNELS_MAX];
	struct mw_stats_stream sts[MW_STREAMS_MAX];
	struct mw_stats st;
	struct mw_stats_snap sn;
	double t0 = (double)mw_now_ns() / 1e9;
	bool clean, complete, out_open;
	int sfd, ret;

	signal(SIGPIPE, SIG_IGN);
	sfd = mw_signals_block();
	if (sfd < 0)
		return mw_err_set(err, sfd, "signalfd: %s", mw_strerror(sfd));
	ret = mw_ring_select(cfg->io, &r.io, err);
	if (ret)
		goto out_sfd;
	ret = mw_fail_init(&r.fail);
	if (ret)
		goto out_sfd;
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cv, NULL);
	pthread_cond_init(&r.live_cv, NULL);
	/* a larger pipe lets QEMU's loader run while we write the next chunk;
	 * best effort: a refusal (pipe-max-size, not a pipe) only costs speed */
	if (!cfg->nr_eps)
		fcntl(cfg->out_fd, F_SETPIPE_SZ, 1 << 20);
	r.lst_efd = mw_efd_new();
	if (r.lst_efd < 0) {
		ret = mw_err_set(err, r.lst_efd, "eventfd: %s",
				 mw_strerror(r.lst_efd));
		goto out;
	}
	if (cfg->latency_file && !(r.lat = fopen(cfg->latency_file, "we"))) {
		ret = mw_err_set(err, -errno, "latency file %s: %s",
				 cfg->latency_file, strerror(errno));
		goto out;
	}
	if (cfg->tls.mode != MW_TLS_OFF) {
		ret = mw_tls_ctx_new(&r.tls, &cfg->tls, err);
		if (ret)
			goto out;
	}
	ret = mw_stats_open(&st, cfg->stats_file, MW_CHANNELS_MAX);
	if (ret) {
		mw_err_set(err, ret, "stats file %s: %s", cfg->stats_file,
			   mw_strerror(ret));
		goto out;
	}
	r.listen_fd = mw_net_listen(cfg->host, cfg->port, err);
	if (r.listen_fd < 0) {
		ret = r.listen_fd;
		goto out_stats;
	}
	MW_LOG(MW_LOG_INFO, "listening on %s:%u (%s, io %s)",
	       *cfg->host ? cfg->host : "*", cfg->port,
	       cfg->tls.mode == MW_TLS_X509 ? "TLS x509" :
	       cfg->tls.mode == MW_TLS_PSK  ? "TLS PSK" :
					      "no TLS",
	       mw_io_name(r.io));
	ret = mw_rx_listener_start(&r);
	if (ret)
		mw_fail_set(&r.fail, ret, "pthread_create: %s", strerror(-ret));
	control_loop(&r, sfd, &st, chs, sts, t0);
	clean = receiver_teardown(&r);
	ret = 0;
	/* under the lock: a writer left behind may still finish */
	pthread_mutex_lock(&r.lock);
	complete = r.complete;
	out_open = !r.streams[0] || r.streams[0]->fd >= 0;
	pthread_mutex_unlock(&r.lock);
	if (!complete) {
		ret = r.fail.err.code ? r.fail.err.code : -MW_E_CANCEL;
		mw_err_set(err, ret, "%s", r.fail.err.msg);
		if (!cfg->nr_eps && out_open)
			close(cfg->out_fd); /* QEMU sees EOF and fails */
	}
	snap_fill(&r, &sn, chs, sts, t0);
	sn.final = true;
	sn.result = ret ? err->msg : "ok";
	mw_stats_write(&st, &sn);
	if (cfg->progress_s)
		mw_stats_progress(&sn, cfg->progress_tty, true);
	if (cfg->verbose)
		mw_stats_summary(&sn);
	if (!clean)
		goto out_stats_only;
out_stats:
	mw_stats_close(&st);
out:
	if (r.lat)
		fclose(r.lat);
	receiver_free(&r);
	pthread_cond_destroy(&r.live_cv);
	pthread_cond_destroy(&r.cv);
	pthread_mutex_destroy(&r.lock);
	mw_fail_destroy(&r.fail);
out_sfd:
	close(sfd);
	return ret;
out_stats_only:
	mw_stats_close(&st);
	return ret;
}
