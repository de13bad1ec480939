/* SPDX-License-Identifier: MIT */
/*
 * migwire send: streams -> chunker -> compress pool -> N channels, and the
 * reverse direction back to the local streams.
 *
 * DESIGN
 * Threads: the main thread (setup, signals, stats, session end), one reader
 * per stream (mw-readN), the compress workers (compress/), one thread per
 * channel (mw-txN) that owns its socket, TLS session and I/O ring (ring.h:
 * io_uring, or poll(2) where io_uring is refused or --io poll says so), and
 * in socket mode an acceptor (mw-accept) for the QEMU-side endpoints.
 *
 * A stream is one QEMU connection (source.c): its reader cuts the forward
 * bytes into chunks, the compress pool compresses them, and the scheduler
 * (tx_sched.c) hands them to the channels in sequence order per stream, below
 * the stream's credit (WINDOW frames from the receiver), round robin over
 * streams. So sequence numbers grow per stream on every channel, the
 * receiver always has room for what arrives, and one stream the
 * destination does not read cannot block the others (QEMU's multifd
 * threads wait for the main channel).
 *
 * Each channel keeps up to two frames: one in the kernel, the next sealed
 * meanwhile. Control frames (OPEN, CLOSE) go on channel 0 before bulk data.
 * Reverse-direction frames of a stream arrive in order on one channel
 * (stream id modulo channels) while it is up, on another while it is lost;
 * whichever channel gets one hands it to the stream's writer, which writes
 * it to the stream's local socket (or stdout), and confirms it (CONFIRM).
 *
 * Resume (DESIGN.md 7): a chunk is kept until the receiver confirms it
 * written; a channel lost after the session started redials and resumes
 * (send_chan.c) while the others go on, and the chunks it had not seen
 * confirmed go out again. With no channel up the pool fills with kept
 * chunks and the readers stop: QEMU's writes block, the migration pauses
 * until a channel is back or --reconnect-timeout gives up.
 *
 * The session ends when every stream has ended both ways (and in socket
 * mode a main migration stream has been carried): CLOSE with the totals
 * goes out, and the receiver's ACK, sent once every byte is written, is the
 * only way to exit 0.
 *
 * The stages live in their own files: source.c (readers, acceptor),
 * tx_sched.c (scheduler, chunk pool), send_chan.c (the channel threads:
 * setup, the frames they send and receive). This file wires them together
 * and runs the main thread.
 *
 * Locking: see struct sender, struct tx_chan (send_int.h) and the stage
 * headers.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mw_fd.h"
#include "mw_log.h"
#include "mw_tls.h"
#include "mw_pages.h"
#include "send_int.h"
#include "stats.h"

/* ---- main thread ---- */

/* Sets up channel i's memory; the thread starts later. */
static int chan_alloc(struct sender *s, struct tx_chan *ch, unsigned i)
{
	const struct mw_xp_cfg *cfg = s->cfg;
	size_t sealed_cap = 0;
	int ret;

	ch->s = s;
	ch->idx = i;
	ch->kept_tail = &ch->kept;
	ch->sock = -1;
	if (s->tls)
		sealed_cap = mw_tls_seal_bound(MW_FRAME_HDR_LEN +
					       (s->out_cap > cfg->chunk_size ?
							s->out_cap :
							cfg->chunk_size));
	ret = mw_chan_init(&ch->io, TX_SLOTS, sealed_cap);
	if (ret)
		return ret;
	ch->in_payload = malloc(MW_REVERSE_MAX);
	return ch->in_payload ? 0 : -ENOMEM;
}

static int sender_alloc(struct sender *s)
{
	const struct mw_xp_cfg *cfg = s->cfg;
	size_t per = cfg->chunk_size;
	struct mw_sched_cfg sc = { 0 };
	int *efds, ret = 0;
	unsigned i;

	s->out_cap = cfg->codec == MW_CODEC_NONE ?
			     0 :
			     mw_codec_bound(cfg->codec, cfg->chunk_size);
	per += s->out_cap;
	s->nchunks = (unsigned)(cfg->window / per);
	if (s->nchunks < 2)
		s->nchunks = 2;
	s->chans = calloc(cfg->nr_chans, sizeof(*s->chans));
	efds = calloc(cfg->nr_chans, sizeof(*efds));
	if (!s->chans || !efds) {
		free(efds);
		return -ENOMEM;
	}
	for (i = 0; i < cfg->nr_chans && !ret; i++) {
		ret = chan_alloc(s, &s->chans[i], i);
		efds[i] = s->chans[i].io.efd;
	}
	if (!ret) {
		sc.nchunks = s->nchunks;
		sc.chunk_size = cfg->chunk_size;
		sc.out_cap = s->out_cap;
		sc.nr_chans = cfg->nr_chans;
		sc.chan_efd = efds;
		sc.end_efd = s->fail.wake_fd; /* mw_fail_wake() */
		ret = mw_sched_new(&s->sched, &sc);
	}
	free(efds);
	return ret;
}

static void sender_free(struct sender *s)
{
	unsigned i, k;

	mw_source_destroy(&s->src); /* before the scheduler it uses */
	for (i = 0; s->chans && i < s->cfg->nr_chans; i++) {
		struct tx_chan *ch = &s->chans[i];

		if (!ch->s)
			continue; /* chan_alloc never ran */
		mw_chan_destroy(&ch->io);
		for (k = 0; k < TX_SLOTS; k++)
			free(ch->slot[k].ctl);
		free(ch->in_payload);
	}
	mw_sched_free(s->sched);
	free(s->chans);
	if (s->tls)
		mw_tls_ctx_free(s->tls);
	/* the resume key proves the session's sender: not left in memory */
	mw_tls_cleanse(s->secret, sizeof(s->secret));
}

static void snap_fill(struct sender *s, struct mw_stats_snap *sn,
		      struct mw_stats_chan *chs, struct mw_stats_stream *sts,
		      double t0)
{
	unsigned i;

	static const char *const stages[MW_STATS_STAGES] = { "read", "compress",
							     "encrypt",
							     "send" };

	mw_stats_snap_init(sn, "send", mw_io_name(s->io), t0, chs, sts, stages);
	sn->nchans = s->cfg->nr_chans;
	/* the channels count the TLS records they send */
	sn->wire_note = s->cfg->tls.mode != MW_TLS_OFF ? " incl. TLS" : "";
	sn->stage_cpu[1] = s->pool ? mw_comp_pool_cpu_seconds(s->pool) : 0;
	sn->adaptive = s->cfg->adaptive;
	if (s->sched) {
		sn->chunks_adaptive = mw_sched_chunks_adaptive(s->sched);
		sn->chunks = mw_sched_chunks_taken(s->sched);
		sn->nstreams = mw_sched_nstreams(s->sched);
	}
	for (i = 0; i < sn->nstreams; i++) {
		struct tx_stream *st = tx_stream_get(s->sched, i);

		sts[i].kind = atomic_load(&st->kind);
		sts[i].fwd = atomic_load_explicit(&st->bytes_fwd,
						  memory_order_relaxed);
		sts[i].rev = atomic_load_explicit(&st->bytes_rev,
						  memory_order_relaxed);
		sn->bytes_raw += sts[i].fwd;
	}
	sn->stage_cpu[0] = mw_source_reader_cpu(&s->src);
	sn->paced_s = mw_cpu_pace_slept(&s->pace);
	sn->first = mw_stats_since(atomic_load(&s->src.first_ns), t0);
	for (i = 0; i < s->cfg->nr_chans; i++) {
		struct tx_chan *ch = &s->chans[i];

		chs[i].up = atomic_load(&ch->up);
		chs[i].reconnects = atomic_load(&ch->reconnects);
		chs[i].path =
			atomic_load_explicit(&ch->path, memory_order_relaxed);
		sn->chans_up += chs[i].up;
		sn->reconnects += chs[i].reconnects;
		chs[i].bytes = atomic_load_explicit(&ch->bytes_wire,
						    memory_order_relaxed);
		chs[i].cpu = !ch->started ? 0 :
			     atomic_load(&ch->exited) ?
					    ch->cpu_final :
					    mw_stats_thread_cpu(ch->th);
		sn->bytes_wire += chs[i].bytes;
		sn->stage_cpu[2] +=
			(double)atomic_load_explicit(&ch->seal_ns,
						     memory_order_relaxed) /
			1e9;
		sn->stage_cpu[3] += chs[i].cpu;
	}
	if (s->sched)
		mw_sched_resent(s->sched, &sn->resent_chunks,
				&sn->resent_bytes);
	sn->paused_s = (double)mw_tx_paused_ns(s) / 1e9;
	sn->npaths = s->cfg->nr_paths ? s->cfg->nr_paths : 1;
	for (i = 0; i < sn->npaths && i < MW_STATS_PATHS_MAX; i++) {
		sn->path_addr[i] = s->path_addr[i];
		sn->path_bytes[i] = atomic_load_explicit(&s->path_bytes[i],
							 memory_order_relaxed);
		sn->path_reconnects[i] = atomic_load_explicit(
			&s->path_reconnects[i], memory_order_relaxed);
	}
	/* and what the live connections carried so far */
	for (i = 0; i < s->cfg->nr_chans; i++)
		if (chs[i].path < MW_STATS_PATHS_MAX)
			sn->path_bytes[chs[i].path] +=
				chs[i].bytes -
				atomic_load_explicit(&s->chans[i].conn_base,
						     memory_order_relaxed);
	sn->stage_cpu[3] -= sn->stage_cpu[2];
	if (sn->stage_cpu[3] < 0)
		sn->stage_cpu[3] = 0;
}

/*
 * Decides whether the session is over (every stream ended both ways; in
 * socket mode at least one main migration stream was carried and no
 * connection waits to be accepted) and if so queues CLOSE on channel 0.
 */
static void maybe_close(struct sender *s)
{
	const struct mw_xp_cfg *cfg = s->cfg;
	struct mw_frame_hdr h = { .type = MW_FT_CLOSE,
				  .wire_len = MW_CLOSE_LEN };
	struct mw_close cl = { 0 };
	bool main_seen = cfg->nr_eps == 0;
	uint8_t p[MW_CLOSE_LEN];
	struct mw_ctl *c;
	unsigned i, n = mw_sched_nstreams(s->sched);

	pthread_mutex_lock(&s->lock);
	if (s->close_sent || !n) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	for (i = 0; i < n; i++) {
		struct tx_stream *st = tx_stream_get(s->sched, i);

		if (!mw_sched_end_taken(s->sched, &st->q) ||
		    !atomic_load(&st->rev_done)) {
			pthread_mutex_unlock(&s->lock);
			return;
		}
		if (atomic_load(&st->kind) == MW_SK_MAIN)
			main_seen = true;
		/* fixed once the END is taken (tx_sched.h) */
		cl.bytes += st->q.total_bytes;
		cl.chunks += st->q.total_chunks;
	}
	if (!main_seen || mw_source_pending(&s->src)) {
		/* no main stream yet, or a new connection is waiting */
		pthread_mutex_unlock(&s->lock);
		return;
	}
	mw_source_stop(&s->src);
	s->close_sent = true;
	pthread_mutex_unlock(&s->lock);
	cl.streams = n;
	mw_close_encode(p, &cl);
	c = mw_ctl_new(&h, p);
	if (!c) {
		mw_fail_set(&s->fail, -ENOMEM, "out of memory");
		return;
	}
	mw_ctlq_push(&s->chans[0].io.ctlq, c, 0);
	MW_LOG(MW_LOG_DEBUG, "all %u streams ended; closing the session",
	       cl.streams);
}

/* Waits until every channel is admitted, one failed, or a signal came. */
static void wait_channels(struct sender *s, int sfd)
{
	unsigned long long next = mw_now_ns() + 1000000000ull;

	for (;;) {
		unsigned ready;

		pthread_mutex_lock(&s->lock);
		ready = s->nready;
		pthread_mutex_unlock(&s->lock);
		if (ready == s->cfg->nr_chans || mw_fail_is_set(&s->fail))
			return;
		/* a channel that gets ready pokes the wake fd */
		mw_fail_poll(&s->fail, sfd, &next);
	}
}

/* Waits for the session to end: ack, failure or signal. Writes stats. */
static void control_loop(struct sender *s, int sfd, struct mw_stats *st,
			 struct mw_stats_chan *chs, struct mw_stats_stream *sts,
			 double t0)
{
	unsigned long long next = mw_now_ns() + 1000000000ull;
	unsigned ticks = 0;

	while (!mw_fail_is_set(&s->fail) && !atomic_load(&s->acked)) {
		bool tick = mw_fail_poll(&s->fail, sfd, &next);

		maybe_close(s);
		if (tick) {
			struct mw_stats_snap sn;

			snap_fill(s, &sn, chs, sts, t0);
			mw_stats_tick(st, &sn, s->cfg, &ticks);
		}
	}
}

int mw_xp_send_run(const struct mw_xp_cfg *cfg, struct mw_err *err)
{
	struct sender s = { .cfg = cfg };
	struct mw_stats st;
	struct mw_stats_chan *chs = NULL;
	struct mw_stats_stream sts[MW_STREAMS_MAX];
	struct mw_stats_snap sn;
	double t0 = (double)mw_now_ns() / 1e9;
	int sfd, ret;
	unsigned i;

	/* before any exit through sender_free(), which closes the
	 * endpoints (and unlinks their unix paths) */
	mw_source_init(&s.src, cfg, &s.fail);
	ret = mw_session_begin(&s.fail, cfg->io, &s.io, &sfd, err);
	if (ret)
		return ret;
	pthread_mutex_init(&s.lock, NULL);
	pthread_mutex_init(&s.rev_lock, NULL);
	for (i = 0; i < (cfg->nr_paths ? cfg->nr_paths : 1); i++)
		snprintf(s.path_addr[i], sizeof(s.path_addr[i]),
			 strchr(cfg->nr_paths ? cfg->paths[i].host : cfg->host,
				':') ?
				 "[%s]:%u" :
				 "%s:%u",
			 cfg->nr_paths ? cfg->paths[i].host : cfg->host,
			 cfg->nr_paths ? cfg->paths[i].port : cfg->port);
	mw_rate_init(&s.rate, cfg->max_bw);
	mw_cpu_pace_init(&s.pace, cfg->cpu_budget);
	s.src.pace = &s.pace;
	if (getrandom(s.session, sizeof(s.session), 0) != sizeof(s.session)) {
		ret = mw_err_set(err, -EIO, "getrandom failed");
		goto out;
	}
	ret = mw_source_listen(&s.src, err);
	if (ret)
		goto out;
	ret = mw_session_open_files(cfg, &s.lat, &s.tls, err);
	if (ret)
		goto out;
	ret = sender_alloc(&s);
	if (ret) {
		mw_err_set(err, ret,
			   "allocating --window %llu bytes (chunks of %u "
			   "bytes, and as many for the codec's output): %s",
			   (unsigned long long)cfg->window, cfg->chunk_size,
			   mw_strerror(ret));
		goto out;
	}
	chs = calloc(cfg->nr_chans, sizeof(*chs));
	ret = chs ? mw_stats_open(&st, cfg->stats_file, cfg->nr_chans) :
		    -ENOMEM;
	if (ret) {
		mw_err_set(err, ret, "stats file %s: %s",
			   cfg->stats_file ? cfg->stats_file : "-",
			   mw_strerror(ret));
		goto out;
	}
	ret = mw_comp_pool_new(&s.pool, cfg->codec, cfg->level, cfg->threads,
			       s.nchunks,
			       cfg->codec == MW_CODEC_ZSTD ? "mw-zstd" :
			       cfg->codec == MW_CODEC_ZLIB ? "mw-zlib" :
							     "mw-sum",
			       &cfg->cpus, 1);
	if (ret) {
		mw_err_set(err, ret, "compress pool: %s", mw_strerror(ret));
		goto out_stats;
	}
	if (cfg->adaptive) {
		/* workers take the newest, channels claim the oldest */
		mw_comp_pool_newest_first(s.pool);
		mw_sched_adaptive(s.sched, s.pool);
	}
	for (i = 0; i < cfg->nr_chans; i++) {
		ret = pthread_create(&s.chans[i].th, NULL, mw_tx_chan_main,
				     &s.chans[i]);
		if (ret) {
			mw_fail_set(&s.fail, -ret, "pthread_create: %s",
				    strerror(ret));
			break;
		}
		s.chans[i].started = true;
	}
	/* QEMU's data is read only once every channel is admitted */
	wait_channels(&s, sfd);
	if (!mw_fail_is_set(&s.fail)) {
		MW_LOG(MW_LOG_INFO, "%u channels up to %s%s (%s, %s, io %s)",
		       s.nready, s.path_addr[0],
		       cfg->nr_paths > 1 ? " and more paths" : "",
		       cfg->tls.mode == MW_TLS_X509 ? "TLS x509" :
		       cfg->tls.mode == MW_TLS_PSK  ? "TLS PSK" :
						      "no TLS",
		       mw_codec_name(cfg->codec), mw_io_name(s.io));
		mw_source_start(&s.src, s.sched, s.pool, &s.chans[0].io.ctlq,
				s.lat, s.out_cap, s.stream_window);
	}
	control_loop(&s, sfd, &st, chs, sts, t0);

	/* shutdown: everyone sees the latch or the ack; wake, join, free */
	if (!atomic_load(&s.acked))
		mw_fail_set(&s.fail, -MW_E_CANCEL, "stopped");
	mw_source_stop(&s.src);
	mw_sched_stop(s.sched); /* readers waiting for a chunk */
	mw_fail_wake(&s.fail);
	for (i = 0; i < cfg->nr_chans; i++) {
		mw_ctlq_stop(&s.chans[i].io.ctlq);
		mw_efd_poke(s.chans[i].io.efd);
	}
	/* channels stuck in a blocking setup step (after the ACK: those
	 * redialling) see a dead socket, a connect its eventfd; the channels
	 * publish their sockets under the lock: never a reused fd. After the
	 * ACK the channels up end on their own, on a frame boundary. */
	pthread_mutex_lock(&s.lock);
	for (i = 0; i < cfg->nr_chans; i++)
		if (s.chans[i].sock >= 0 &&
		    (!atomic_load(&s.acked) || !atomic_load(&s.chans[i].up)))
			shutdown(s.chans[i].sock, SHUT_RD);
	pthread_mutex_unlock(&s.lock);
	for (i = 0; i < cfg->nr_chans; i++)
		if (s.chans[i].started)
			pthread_join(s.chans[i].th, NULL);
	mw_source_join_acceptor(&s.src);
	mw_comp_pool_stop(s.pool);
	mw_source_join_readers(&s.src);
	ret = 0;
	if (!atomic_load(&s.acked)) {
		ret = s.fail.err.code ? s.fail.err.code : -MW_E_CANCEL;
		mw_err_set(err, ret, "%s", s.fail.err.msg);
		/* tell the receiver why, so both sides print the cause */
		for (i = 0; i < cfg->nr_chans; i++)
			if (s.chans[i].io.conn.fd >= 0 && ret != -MW_E_PEER &&
			    !s.chans[i].dirty && !s.chans[i].io.sending)
				mw_conn_send_error(&s.chans[i].io.conn,
						   s.fail.err.msg);
	}
	snap_fill(&s, &sn, chs, sts, t0);
	/* the readers have stopped: their encoder's counters hold still */
	sn.pages = s.src.pages ? mw_pages_enc_stats(s.src.pages) : NULL;
	mw_stats_final(&st, &sn, cfg, ret ? err->msg : "ok");
	mw_comp_pool_free(s.pool);
out_stats:
	mw_stats_close(&st);
out:
	if (s.lat)
		fclose(s.lat);
	free(chs);
	sender_free(&s);
	pthread_mutex_destroy(&s.lock);
	pthread_mutex_destroy(&s.rev_lock);
	mw_cpu_pace_destroy(&s.pace);
	mw_fail_destroy(&s.fail);
	close(sfd);
	return ret;
}
