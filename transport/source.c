/* SPDX-License-Identifier: MIT */
/*
 * The sender's source stage: what turns QEMU's bytes into chunks. The main
 * thread opens the endpoints and starts the streams; in socket mode an
 * acceptor thread (mw-accept) starts one stream per connection QEMU opens.
 * Each stream has a reader thread (mw-readN) that fills chunks from the
 * scheduler's pool, numbers them and hands them to the compress pool, whose
 * workers park them back in the scheduler (chunk_compressed).
 *
 * A chunk leaves the reader full, or as soon as the input pauses and the
 * channels have taken everything before it (partial_may_wait): the tail of
 * a migration is written while the VM is stopped, so no timer may hold it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mw_assert.h"
#include "mw_fd.h"
#include "mw_log.h"
#include "mw_pages.h"
#include "mw_thread.h"
#include "net.h"
#include "qemu_stream.h"
#include "source.h"
#include "stats.h"

void mw_source_init(struct mw_source *src, const struct mw_xp_cfg *cfg,
		    struct mw_fail *fail)
{
	unsigned i;

	memset(src, 0, sizeof(*src));
	src->cfg = cfg;
	src->fail = fail;
	/* before any exit through mw_source_destroy(), which closes them */
	for (i = 0; i < MW_ENDPOINTS_MAX; i++)
		src->lfd[i] = -1;
	atomic_init(&src->accepting, false);
}

int mw_source_listen(struct mw_source *src, struct mw_err *err)
{
	unsigned i;

	for (i = 0; i < src->cfg->nr_eps; i++) {
		src->lfd[i] = mw_ep_listen(&src->cfg->eps[i], err);
		if (src->lfd[i] < 0)
			return src->lfd[i];
	}
	return 0;
}

void mw_source_sniff(struct tx_stream *st, const uint8_t *p, size_t n,
		     bool reverse)
{
	unsigned char unknown = MW_SK_UNKNOWN;

	if (atomic_load(&st->kind) != MW_SK_UNKNOWN)
		return;
	atomic_compare_exchange_strong(&st->kind, &unknown,
				       (unsigned char)mw_kind_sniff(p, n,
								    reverse));
}

/* Compress worker: the job is done; the chunk goes back to the scheduler. */
static void chunk_compressed(struct mw_comp_job *job)
{
	struct mw_chunk *c = job->opaque;
	struct tx_stream *st = tx_stream_of(c->st.tx);
	struct mw_source *src = st->src;

	if (job->ret) {
		mw_fail_set(src->fail, job->ret,
			    "stream %u: compress chunk %" PRIu64 ": %s", st->id,
			    c->seq, job->err.msg);
		mw_sched_put(src->sched, &c); /* nobody will send it */
		return;
	}
	mw_sched_park(src->sched, &c);
}

/*
 * The input has nothing more right now. Should the partial chunk leave?
 * Yes when every earlier chunk of the stream has been taken by a channel:
 * then nothing would go out sooner by waiting. Otherwise the channels are
 * behind anyway, so wait for more input or for them to catch up, whichever
 * comes first; that keeps chunks full under load without a timer.
 */
static bool partial_may_wait(struct tx_stream *st)
{
	uint64_t v;

	if (read(st->drain_efd, &v, sizeof(v)) < 0)
		v = 0; /* nothing pending: fine */
	return mw_sched_drain_wait(st->src->sched, &st->q);
}

/* Fills c from the stream: returns bytes (0 at EOF) or -errno. A partial
 * chunk leaves as soon as the input pauses and the channels have taken
 * everything before it: the tail of a migration is written while the VM is
 * stopped, so no timer may hold it. */
static ssize_t chunk_fill(struct tx_stream *st, struct mw_chunk *c)
{
	struct mw_source *src = st->src;
	size_t len = 0, cap = src->cfg->chunk_size;
	struct pollfd p[3] = {
		{ .fd = st->in_fd, .events = POLLIN },
		{ .fd = src->fail->wake_fd, .events = POLLIN },
		{ .fd = st->drain_efd, .events = POLLIN },
	};
	int timeout = -1, nfds = 2;

	if (src->pages) /* room for the op stream's overhead */
		cap = mw_pages_fill_cap(cap);
	while (len < cap) {
		ssize_t r;
		int n;

		n = poll(p, (nfds_t)nfds, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (mw_fail_is_set(src->fail))
			return -MW_E_CANCEL;
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			r = read(st->in_fd, c->raw + len, cap - len);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r < 0 && errno == ECONNRESET && st->is_sock)
				break; /* QEMU reset its connection: EOF */
			if (r < 0)
				return -errno;
			if (r == 0)
				break;
			len += (size_t)r;
			timeout = 0;
			nfds = 2;
			continue;
		}
		if (!len)
			continue;
		/* input paused, or the backlog drained meanwhile */
		if (!partial_may_wait(st))
			break;
		timeout = -1;
		nfds = 3;
	}
	mw_sched_drain_cancel(src->sched, &st->q);
	return (ssize_t)len;
}

/* Sets up the compress job of the FILLING chunk c (raw_len bytes). */
static void chunk_job_init(struct mw_source *src, struct mw_chunk *c)
{
	memset(&c->job, 0, sizeof(c->job));
	c->job.dir = MW_COMP_COMPRESS;
	c->job.src = c->raw;
	c->job.src_len = c->raw_len;
	c->job.dst = c->wire;
	c->job.dst_cap = c->wire ? src->out_cap : 0;
	c->job.done = chunk_compressed;
	c->job.opaque = c;
}

/*
 * --pages, on the FILLING chunk c of n bytes: the stream whose first bytes
 * are QEMU's main channel ("QEVM") claims the encoder, and from then on
 * every chunk of it passes the encoder, in order. Its first chunk travels
 * plain, so that the receiver can tell the stream's kind from it.
 */
static void chunk_pages(struct tx_stream *st, struct mw_chunk *c, size_t n,
			bool first)
{
	struct mw_source *src = st->src;
	bool no = false;
	size_t len;

	c->pages = false;
	if (first && n >= 4 && !memcmp(c->raw, "QEVM", 4) &&
	    atomic_compare_exchange_strong(&src->pages_claimed, &no, true))
		st->pages = src->pages;
	if (!st->pages)
		return;
	len = mw_pages_enc_chunk(st->pages, c->raw, n, !first);
	if (len) {
		c->raw_len = (uint32_t)len;
		c->pages = true;
	}
}

/* -v: what --pages did for the stream, once, when its input ended. */
static void pages_report(const struct tx_stream *st)
{
	const struct mw_pages_stats *ps;

	if (!st->pages)
		return;
	ps = mw_pages_enc_stats(st->pages);
	MW_LOG(MW_LOG_INFO,
	       "stream %u: --pages: %" PRIu64 " full pages, %" PRIu64
	       " sent as references, %" PRIu64 " as deltas, %" PRIu64
	       " literal, %" PRIu64 " split by a chunk edge; %" PRIu64
	       " page-encoded chunks, %" PRIu64 " -> %" PRIu64
	       " bytes (%" PRId64 " saved before the codec)",
	       st->id, ps->pages, ps->refs, ps->deltas, ps->literal,
	       ps->straddle, ps->chunks, ps->in_bytes, ps->out_bytes,
	       (int64_t)ps->in_bytes - (int64_t)ps->out_bytes);
}

static void *reader_main(void *arg)
{
	struct tx_stream *st = arg;
	struct mw_source *src = st->src;
	struct mw_sched *sched = src->sched;
	uint64_t bytes = 0;
	char name[16];

	snprintf(name, sizeof(name), "mw-read%u", st->id);
	mw_thread_place(st->id ? name : "mw-read", &src->cfg->cpus, 0);
	for (;;) {
		struct mw_chunk *c;
		uint64_t seq;
		ssize_t n;
		int ret;

		/* --cpu-budget: here no lock is held and no chunk taken, and
		 * QEMU's write blocks while the reader waits (cpu_pace.h) */
		mw_cpu_pace_wait(src->pace, src->fail);
		ret = mw_sched_get_free(sched, &st->q, &c);
		if (ret || mw_fail_is_set(src->fail)) {
			mw_sched_put(sched, &c);
			break;
		}
		n = chunk_fill(st, c);
		if (n < 0) {
			if (n != -MW_E_CANCEL)
				mw_fail_set(src->fail, (int)n,
					    "stream %u: read input: %s", st->id,
					    mw_strerror((int)n));
			mw_sched_put(sched, &c);
			break;
		}
		if (n == 0) {
			mw_sched_put(sched, &c);
			mw_sched_input_end(sched, &st->q, bytes);
			pages_report(st);
			break;
		}
		if (!bytes) /* the stream's first bytes */
			mw_source_sniff(st, c->raw, (size_t)n, false);
		c->raw_len = (uint32_t)n;
		if (src->pages)
			chunk_pages(st, c, (size_t)n, !bytes);
		chunk_job_init(src, c);
		seq = mw_sched_queue(sched, c);
		if (!atomic_load_explicit(&src->first_ns,
					  memory_order_relaxed)) {
			unsigned long long none = 0;

			/* rates count from here, not from start-up */
			atomic_compare_exchange_strong(&src->first_ns, &none,
						       mw_now_ns());
		}
		if (src->lat)
			fprintf(src->lat, "%u %" PRIu64 " %llu\n", st->id, seq,
				mw_now_ns());
		bytes += (uint64_t)n;
		atomic_store_explicit(&st->bytes_fwd, bytes,
				      memory_order_relaxed);
		if (src->cfg->codec == MW_CODEC_NONE) {
			/* no codec: checksum here while the bytes are in
			 * cache, and skip a thread hand-off */
			mw_chunk_set_raw(c);
			mw_sched_park(sched, &c);
			continue;
		}
		/* the pool borrows c->job, and with it c, until
		 * chunk_compressed (or a claim by a channel) */
		ret = mw_comp_pool_submit(src->pool, &c->job);
		if (ret) {
			mw_fail_set(src->fail, ret, "compress queue: %s",
				    mw_strerror(ret));
			mw_sched_put(sched, &c); /* the pool never had it */
			break;
		}
		if (src->cfg->adaptive) /* an idle channel may take it raw */
			mw_sched_wake(sched, &st->q);
	}
	st->reader_cpu = mw_thread_cpu_seconds();
	atomic_store(&st->reader_exited, true);
	return NULL;
}

static void stream_free(struct tx_stream *st)
{
	mw_rev_writer_free(st->rw);
	if (st->is_sock)
		close(st->in_fd);
	close(st->drain_efd);
	mw_sched_stream_destroy(&st->q);
	free(st);
}

/* Creates the next stream over the given descriptors and starts its reader.
 * Queues its OPEN frame on channel 0. Context: one thread per session (main
 * in exec mode, the acceptor in socket mode), so ids and OPEN frames keep
 * one order. */
static int stream_start(struct mw_source *src, unsigned ep, int in_fd,
			int out_fd, uint8_t kind)
{
	struct mw_frame_hdr h = { .type = MW_FT_OPEN, .wire_len = MW_OPEN_LEN };
	struct mw_open o = { .endpoint = (uint16_t)ep, .kind = kind };
	uint8_t p[MW_OPEN_LEN];
	struct tx_stream *st;
	struct mw_ctl *c;
	int ret;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->src = src;
	st->ep = ep;
	atomic_init(&st->kind, kind);
	st->in_fd = in_fd;
	st->out_fd = out_fd;
	st->drain_efd = mw_efd_new();
	if (st->drain_efd < 0) {
		ret = st->drain_efd;
		free(st);
		return ret;
	}
	st->is_sock = mw_fd_is_sock(in_fd);
	mw_open_encode(p, &o);
	c = mw_ctl_new(&h, p);
	if (!c) {
		close(st->drain_efd);
		free(st);
		return -ENOMEM;
	}
	/* streams are added on this thread only, so the id is known before
	 * the stream is visible to the channels */
	st->id = mw_sched_nstreams(src->sched);
	ret = mw_sched_stream_add(src->sched, &st->q, src->window,
				  st->drain_efd);
	if (ret) {
		free(c);
		close(st->drain_efd);
		free(st);
		return ret;
	}
	MW_BUG_ON(st->q.id != st->id);
	c->h.stream = st->id;
	/* OPEN frames leave in stream order on channel 0: the receiver
	 * connects in that order (QEMU 7.2 takes the first as main) */
	mw_ctlq_push(src->open_q, c, 0);
	ret = pthread_create(&st->reader, NULL, reader_main, st);
	/* Pairs with the acquire in mw_source_reader_cpu(): st->reader is
	 * set */
	atomic_store_explicit(&st->reader_started, !ret, memory_order_release);
	if (ret)
		return mw_fail_set(src->fail, -ret, "pthread_create: %s",
				   strerror(ret));
	MW_LOG(MW_LOG_DEBUG, "stream %u opened (endpoint %u)", st->id, ep);
	return 0;
}

static void *acceptor_main(void *arg)
{
	struct mw_source *src = arg;
	const struct mw_xp_cfg *cfg = src->cfg;

	mw_thread_place("mw-accept", &cfg->cpus, 0);
	for (;;) {
		struct pollfd p[MW_ENDPOINTS_MAX + 1];
		unsigned i;

		for (i = 0; i < cfg->nr_eps; i++)
			p[i] = (struct pollfd){ .fd = src->lfd[i],
						.events = POLLIN };
		p[i] = (struct pollfd){ .fd = src->fail->wake_fd,
					.events = POLLIN };
		if (poll(p, cfg->nr_eps + 1, -1) < 0 && errno != EINTR)
			break;
		if (mw_fail_is_set(src->fail) || !atomic_load(&src->accepting))
			break;
		for (i = 0; i < cfg->nr_eps; i++) {
			int fd, ret;

			if (!(p[i].revents & POLLIN))
				continue;
			fd = accept4(src->lfd[i], NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			ret = stream_start(src, i, fd, fd, MW_SK_UNKNOWN);
			if (ret) {
				MW_LOG(MW_LOG_WARN,
				       "refused a connection on "
				       "endpoint %u: %s",
				       i, mw_strerror(ret));
				close(fd);
			}
		}
		if (p[cfg->nr_eps].revents & POLLIN) {
			/* the wake fd only says "look again" */
			struct timespec ts = { 0, 20000000 };

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

int mw_source_start(struct mw_source *src, struct mw_sched *sched,
		    struct mw_comp_pool *pool, struct mw_ctlq *open_q,
		    FILE *lat, size_t out_cap, uint64_t window)
{
	const struct mw_xp_cfg *cfg = src->cfg;
	int ret;

	src->sched = sched;
	src->pool = pool;
	src->open_q = open_q;
	src->lat = lat;
	src->out_cap = out_cap;
	src->window = window;
	if (cfg->pages) {
		ret = mw_pages_enc_new(&src->pages, cfg->page_cache,
				       cfg->chunk_size);
		if (ret)
			return mw_fail_set(src->fail, ret, "--pages: %s",
					   mw_strerror(ret));
	}
	if (!cfg->nr_eps) {
		/* exec: QEMU writes into a pipe; at 64 KiB (the default) its
		 * migration thread and our reader take turns every 64 KiB.
		 * Best effort: a smaller pipe is only slower. */
		(void)fcntl(cfg->in_fd, F_SETPIPE_SZ, 1 << 20);
		return stream_start(src, 0, cfg->in_fd, cfg->rev_fd,
				    MW_SK_EXEC);
	}
	atomic_store(&src->accepting, true);
	ret = pthread_create(&src->acceptor, NULL, acceptor_main, src);
	if (ret)
		return mw_fail_set(src->fail, -ret, "pthread_create: %s",
				   strerror(ret));
	src->acceptor_started = true;
	return 0;
}

bool mw_source_pending(struct mw_source *src)
{
	unsigned i;

	for (i = 0; i < src->cfg->nr_eps; i++) {
		struct pollfd p1 = { .fd = src->lfd[i], .events = POLLIN };

		if (poll(&p1, 1, 0) > 0)
			return true;
	}
	return false;
}

void mw_source_stop(struct mw_source *src)
{
	atomic_store(&src->accepting, false);
}

void mw_source_join_acceptor(struct mw_source *src)
{
	if (src->acceptor_started)
		pthread_join(src->acceptor, NULL);
	src->acceptor_started = false;
}

void mw_source_join_readers(struct mw_source *src)
{
	unsigned i, n = src->sched ? mw_sched_nstreams(src->sched) : 0;

	for (i = 0; i < n; i++) {
		struct tx_stream *st = tx_stream_get(src->sched, i);

		if (atomic_load(&st->reader_started))
			pthread_join(st->reader, NULL);
	}
}

double mw_source_reader_cpu(struct mw_source *src)
{
	unsigned i, n = src->sched ? mw_sched_nstreams(src->sched) : 0;
	double cpu = 0;

	for (i = 0; i < n; i++) {
		struct tx_stream *st = tx_stream_get(src->sched, i);

		/* Pairs with the release in stream_start() */
		if (atomic_load_explicit(&st->reader_started,
					 memory_order_acquire))
			cpu += atomic_load(&st->reader_exited) ?
				       st->reader_cpu :
				       mw_stats_thread_cpu(st->reader);
	}
	return cpu;
}

void mw_source_destroy(struct mw_source *src)
{
	unsigned i, n = src->sched ? mw_sched_nstreams(src->sched) : 0;

	for (i = 0; i < n; i++)
		stream_free(tx_stream_get(src->sched, i));
	mw_pages_enc_free(src->pages);
	src->pages = NULL;
	for (i = 0; i < src->cfg->nr_eps; i++)
		if (src->lfd[i] >= 0) {
			close(src->lfd[i]);
			src->lfd[i] = -1;
			if (src->cfg->eps[i].type == MW_EP_UNIX)
				unlink(src->cfg->eps[i].addr);
		}
}
