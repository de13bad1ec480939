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
 * HELLO, the session's parameters), recv_chan.c's channel loops parse
 * frames into the streams' slots and send control and reverse frames, and
 * sink.c feeds each stream to the destination QEMU in order and reads its
 * replies. This file wires them together and runs the main thread.
 * recv_int.h holds the shared state and its locking rules.
 *
 * Teardown (receiver_teardown) wakes everyone, cuts connections still stuck
 * in a handshake after 2 s, and waits up to 2 s per stream thread: a writer
 * stuck in a write to a QEMU that stopped reading is left behind, and the
 * run then returns without freeing (the process exits right after).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mw_fd.h"
#include "mw_log.h"
#include "mw_thread.h"
#include "mw_tls.h"
#include "net.h"
#include "mw_pages.h"
#include "recv_int.h"
#include "stats.h"

/* ---- main thread ---- */

static void snap_fill(struct receiver *r, struct mw_stats_snap *sn,
		      struct mw_stats_chan *chs, struct mw_stats_stream *sts,
		      double t0)
{
	struct mw_comp_pool *pool;
	unsigned i, n;

	static const char *const stages[MW_STATS_STAGES] = {
		"receive", "decrypt", "decompress", "write"
	};

	mw_stats_snap_init(sn, "recv", mw_io_name(r->io), t0, chs, sts, stages);
	/* the receiver counts frames, after the TLS records are opened */
	sn->wire_note = r->cfg->tls.mode != MW_TLS_OFF ? " excl. TLS" : "";
	sn->paced_s = mw_cpu_pace_slept(&r->pace);
	pthread_mutex_lock(&r->lock);
	pool = r->pool; /* the first admission sets it meanwhile */
	n = r->have_session ? r->sess.chan_count : 0;
	sn->nchans = n;
	for (i = 0; i < n; i++) {
		struct rx_chan *ch = r->chans[i];

		chs[i].bytes = r->bytes_prev[i]; /* connections it replaced */
		chs[i].cpu = 0;
		chs[i].reconnects = r->resumes_of[i];
		chs[i].up = ch && !ch->lost && !atomic_load(&ch->exited);
		if (!ch)
			continue;
		chs[i].bytes += atomic_load_explicit(&ch->bytes_wire,
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
	sn->lost = (unsigned)r->lost_total;
	sn->reconnects = (unsigned)r->resumes;
	sn->dup_chunks = r->dup_chunks;
	sn->dup_bytes = r->dup_bytes;
	sn->paused_s =
		(double)(r->paused_ns +
			 (r->down_since ? mw_now_ns() - r->down_since : 0)) /
		1e9;
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
	/* a lost channel may still come for its ACK, unless the sender
	 * showed it has one */
	done = r->complete && r->nlive == 0 && (r->ack_eof || !r->nlost);
	pthread_mutex_unlock(&r->lock);
	return done;
}

/* exec: mode: the forward stream is written, and only the return path
 * (stdin, still open) keeps the sender from closing the session. */
static bool only_return_path_open(struct receiver *r)
{
	bool yes;

	if (r->cfg->nr_eps || r->cfg->rev_fd < 0)
		return false;
	pthread_mutex_lock(&r->lock);
	yes = r->streams[0] && r->streams[0]->fwd_done && !r->closed;
	pthread_mutex_unlock(&r->lock);
	return yes;
}

/* --reconnect-timeout: a channel lost for that long fails the session,
 * with one line. Main thread. */
static void check_lost(struct receiver *r)
{
	unsigned long long now = mw_now_ns(),
			   limit = (unsigned long long)r->cfg->reconnect_s *
				   1000000000ull;
	unsigned i;

	pthread_mutex_lock(&r->lock);
	/* done but for a lost channel's goodbye: the sender has its ACK */
	for (i = 0;
	     r->nlost && !(r->complete && r->ack_eof) && i < r->sess.chan_count;
	     i++) {
		struct rx_chan *ch = r->chans[i];

		if (!ch || !ch->lost || now - ch->lost_ns < limit)
			continue;
		if (r->complete) {
			/* the destination has it all; the source VM runs on
			 * until its sender hears that (an operator's call) */
			r->unconfirmed = true;
			mw_fail_set(&r->fail, -MW_E_TIMEOUT,
				    "the stream was delivered, but the "
				    "sender's confirmation is unknown: channel "
				    "%u lost after the ACK and not resumed "
				    "within --reconnect-timeout %u s",
				    i, r->cfg->reconnect_s);
			break;
		}
		mw_fail_set(&r->fail, -MW_E_TIMEOUT,
			    "channel %u lost (%s) %u s ago and not resumed "
			    "(--reconnect-timeout)",
			    i,
			    ch->io.conn.err.msg[0] ? ch->io.conn.err.msg :
						     "connection lost",
			    r->cfg->reconnect_s);
		break;
	}
	pthread_mutex_unlock(&r->lock);
}

static void control_loop(struct receiver *r, int sfd, struct mw_stats *st,
			 struct mw_stats_chan *chs, struct mw_stats_stream *sts,
			 double t0)
{
	unsigned long long next = mw_now_ns() + 1000000000ull;
	unsigned long long rp_wait = 0;
	unsigned ticks = 0;

	while (!mw_fail_is_set(&r->fail) && !all_done(r)) {
		bool tick = mw_fail_poll(&r->fail, sfd, &next);

		check_lost(r);
		if (tick && (st->f || r->cfg->progress_s)) {
			struct mw_stats_snap sn;

			snap_fill(r, &sn, chs, sts, t0);
			mw_stats_tick(st, &sn, r->cfg, &ticks);
		}
		if (tick && rp_wait != ~0ull && only_return_path_open(r)) {
			/* said once, 2 s on: a script's never-closed stdin
			 * holds the session, not the migration */
			if (!rp_wait) {
				rp_wait = mw_now_ns();
			} else if (mw_now_ns() - rp_wait > 2000000000ull) {
				MW_LOG(MW_LOG_INFO,
				       "the stream is written; waiting for EOF "
				       "on stdin (QEMU's return path): outside "
				       "QEMU pass --no-return-path");
				rp_wait = ~0ull;
			}
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
		mw_efd_poke(r->live[i]->io.efd);
}

static bool receiver_teardown(struct receiver *r)
{
	struct timespec ts;
	bool clean = true, rev;
	unsigned i;

	pthread_mutex_lock(&r->lock);
	r->stop_listen = true;
	pthread_mutex_unlock(&r->lock);
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
		shutdown(r->live[i]->io.conn.fd, SHUT_RDWR);
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

	mw_tls_cleanse(r->secret, sizeof(r->secret));
	mw_comp_pool_free(r->pool);
	mw_pages_dec_free(r->pages);
	for (i = 0; i < MW_CHANNELS_MAX; i++)
		if (r->chans[i])
			mw_rx_chan_free(r->chans[i]);
	for (i = 0; i < MW_STREAMS_MAX; i++)
		mw_rx_stream_free(r, r->streams[i]);
	/* after the channels: their rings may have held a chunk's buffer */
	mw_chunk_pool_destroy(&r->chunks);
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
			      .chan_loop = mw_rx_chan_run };
	struct mw_stats_chan chs[MW_CHANNELS_MAX];
	struct mw_stats_stream sts[MW_STREAMS_MAX];
	struct mw_stats st;
	struct mw_stats_snap sn;
	double t0 = (double)mw_now_ns() / 1e9;
	bool clean, complete, out_open;
	int sfd, ret;

	ret = mw_session_begin(&r.fail, cfg->io, &r.io, &sfd, err);
	if (ret)
		return ret;
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cv, NULL);
	pthread_cond_init(&r.live_cv, NULL);
	mw_cpu_pace_init(&r.pace, cfg->cpu_budget);
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
	ret = mw_session_open_files(cfg, &r.lat, &r.tls, err);
	if (ret)
		goto out;
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
	if (cfg->tls.mode == MW_TLS_OFF && !cfg->join_token_len &&
	    !mw_net_is_loopback(r.listen_fd)) {
		ret = mw_err_set(err, -MW_E_USAGE,
				 "--no-tls on %s (not loopback) needs "
				 "--join-token FILE: without TLS or a token "
				 "anyone who reaches the port could feed the "
				 "destination QEMU",
				 *cfg->host ? cfg->host : "every address");
		goto out_stats;
	}
	MW_LOG(MW_LOG_INFO, "listening on %s:%u (%s, io %s)",
	       *cfg->host ? cfg->host : "*", cfg->port,
	       cfg->tls.mode == MW_TLS_X509 ? "TLS x509" :
	       cfg->tls.mode == MW_TLS_PSK  ? "TLS PSK" :
					      "no TLS",
	       mw_io_name(r.io));
	if (!cfg->nr_eps && cfg->rev_fd >= 0)
		MW_LOG(MW_LOG_INFO,
		       "return path: relaying stdin to the sender (QEMU's "
		       "return path; --no-return-path turns it off)");
	ret = mw_rx_listener_start(&r);
	if (ret)
		mw_fail_set(&r.fail, ret, "pthread_create: %s", strerror(-ret));
	control_loop(&r, sfd, &st, chs, sts, t0);
	clean = receiver_teardown(&r);
	ret = 0;
	/* under the lock: a writer left behind may still finish */
	pthread_mutex_lock(&r.lock);
	complete = r.complete && !r.unconfirmed;
	out_open = !r.streams[0] || r.streams[0]->fd >= 0;
	pthread_mutex_unlock(&r.lock);
	if (!complete) {
		ret = r.fail.err.code ? r.fail.err.code : -MW_E_CANCEL;
		mw_err_set(err, ret, "%s", r.fail.err.msg);
		if (!cfg->nr_eps && out_open)
			close(cfg->out_fd); /* QEMU sees EOF and fails */
	}
	snap_fill(&r, &sn, chs, sts, t0);
	mw_stats_final(&st, &sn, cfg, ret ? err->msg : "ok");
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
	mw_cpu_pace_destroy(&r.pace);
	mw_fail_destroy(&r.fail);
	close(sfd);
	return ret;
out_stats_only:
	mw_stats_close(&st);
	return ret;
}
