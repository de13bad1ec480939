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
 * A connection is admitted only after TLS and a HELLO that matches the
 * session (the first admitted HELLO defines it). A connection that fails
 * either step gets an ERROR frame, is closed and never touches session state.
 * At most MAX_PENDING connections may be authenticating at once; more are
 * closed at once. When all channels have joined, the listening socket closes.
 *
 * Streams are created when first named (OPEN or DATA; frames of one stream
 * may arrive on any channel). Each has `credit` slots indexed by
 * seq % credit; the sender may send a stream's chunk only below the limit
 * this side grants (HELLO_OK's stream window, then WINDOW frames as the
 * writer frees slots), so a DATA frame always finds its slot free and no
 * channel ever waits for a stream: one stream the destination does not read
 * cannot block another. A frame beyond the credit is a protocol error.
 * Payloads land in the slot; a decompress job inflates and verifies the XXH3
 * checksum; only then is the slot READY. The stream's writer writes READY
 * slots strictly in order, so nothing unverified or out of order ever
 * reaches QEMU. In socket mode writers connect in stream order per endpoint
 * (QEMU 7.2 takes the first connection as the main channel).
 *
 * Reverse bytes (return path, NBD replies) are read by the stream's reverse
 * reader, sent raw in order on channel (stream id % channels), and end with
 * a reverse END when the destination closes its side. The session completes
 * when CLOSE (the sender's totals) has arrived and every stream's forward
 * direction is written and closed; then every channel sends ACK.
 *
 * Session state below `lock` is protected by it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mw_log.h"
#include "mw_thread.h"
#include "mw_xport.h"
#include "reasm.h"
#include "ring.h"
#include "stats.h"
#include "chan.h"
#include "conn.h"
#include "ctlq.h"
#include "frame_io.h"
#include "mw_fd.h"
#include "net.h"
#include "qemu_stream.h"
#include "session.h"

#define MAX_PENDING 64 /* connections authenticating at once */
#define JOIN_SECS 10   /* an unauthenticated connection's time limit */
#define MAX_LIVE (MW_CHANNELS_MAX + MAX_PENDING)
#define REV_QUEUE 16 /* reverse frames queued per channel before blocking */

struct receiver;
struct rx_stream;

struct rx_slot {
	uint64_t seq;  /* for messages; the window's own copy decides */
	unsigned idx;  /* slot index in the stream's window */
	uint8_t *wire; /* compressed payload; NULL with codec none */
	uint8_t *raw;
	uint32_t raw_len;
	struct mw_comp_job job;
	struct rx_stream *st;
};

struct rx_stream {
	struct receiver *r;
	unsigned id, ep;
	uint8_t kind;
	bool opened, connected;
	int fd;	    /* forward bytes go here */
	int rev_fd; /* reverse bytes come from here; -1: none */
	bool is_sock;
	struct rx_slot *slots;
	struct mw_reasm ra; /* reorder window and credit, under r->lock */
	uint64_t end_bytes;
	bool fwd_done;
	pthread_t writer, rev;
	bool writer_started, rev_started;
	atomic_bool writer_exited, rev_exited;
	double writer_cpu;
	uint64_t rev_seq, rev_bytes;
	atomic_ullong bytes_fwd, bytes_rev;
	bool nbd_gone; /* the NBD server closed before the client's DISC */
};

/*
 * Locking: the connection thread owns everything here while it runs; idx
 * is set under r->lock when the channel is admitted, and exited is stored
 * under r->lock as the thread's last touch (cpu_final before it), after
 * which the main thread may read and free the rest. bytes_wire and open_ns
 * are statistics (atomic, relaxed). ctlq has its own lock.
 */
struct rx_chan {
	struct receiver *r;
	int idx; /* -1 until admitted */
	pthread_t th;
	struct mw_conn conn;
	struct mw_ring ring;
	bool ring_ok;
	int efd;
	bool ack_sent;
	/* frame being parsed (conn.rd parses them) */
	struct rx_slot *slot; /* a DATA frame's, from its header on */
	uint8_t ctl[MW_ERROR_MAX + 1];
	/* control / reverse frames going out */
	struct mw_ctlq ctlq;
	struct mw_ctl *tx_ctl; /* being sent */
	uint8_t *sealed;
	size_t sealed_cap;
	unsigned long long ack_dl; /* after the ACK: wait this long for EOF */
	struct mw_chan io;	   /* the loop (one slot: tx_ctl) */
	atomic_ullong bytes_wire;
	atomic_ullong open_ns; /* thread CPU spent decrypting (stats) */
	atomic_bool exited;
	double cpu_final;
};

struct receiver {
	const struct mw_xp_cfg *cfg;
	struct mw_fail fail;
	struct mw_tls_ctx *tls;
	struct mw_comp_pool *pool;
	int listen_fd;
	int lst_efd;
	pthread_t listener;
	bool listener_started;

	pthread_mutex_t lock;
	pthread_cond_t cv; /* writers: slot ready, END, OPEN, connect */
	pthread_cond_t live_cv;
	bool have_session;
	struct mw_hello sess;
	uint32_t credit; /* slots per stream */
	size_t wire_cap;
	unsigned long long first_join_ns;
	struct rx_chan *chans[MW_CHANNELS_MAX]; /* admitted, by index */
	unsigned joined;
	struct rx_chan *live[MAX_LIVE]; /* every connection thread */
	unsigned nlive, npending;
	struct rx_stream *streams[MW_STREAMS_MAX];
	bool closed;
	struct mw_close close;
	bool complete; /* every stream written and closed, ACK queued */
	FILE *lat;     /* --latency-file */
	enum mw_io io; /* --io resolved: MW_IO_URING or MW_IO_POLL */
};

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

/* ---- session setup (first admitted HELLO) ---- */

static int session_init_locked(struct receiver *r, const struct mw_hello *h,
			       struct mw_err *err)
{
	const struct mw_xp_cfg *cfg = r->cfg;
	enum mw_codec codec = (enum mw_codec)h->codec;
	size_t per;
	uint64_t slots;
	int ret;

	r->wire_cap = codec == MW_CODEC_NONE ?
			      0 :
			      mw_codec_bound(codec, h->chunk_size);
	per = h->chunk_size + r->wire_cap;
	slots = cfg->window / per;
	/* exec: one stream gets the whole window; sockets: a quarter each,
	 * so main + a few multifd channels stay near --window */
	if (cfg->nr_eps)
		slots /= 4;
	r->credit = slots < 4 ? 4 : slots > 4096 ? 4096 : (uint32_t)slots;
	ret = mw_comp_pool_new(&r->pool, codec, mw_codec_level_default(codec),
			       cfg->threads, r->credit * MW_STREAMS_MAX,
			       codec == MW_CODEC_ZSTD ? "mw-unzstd" :
			       codec == MW_CODEC_ZLIB ? "mw-unzlib" :
							"mw-sum",
			       &cfg->cpus, 1);
	if (ret)
		return mw_err_set(err, ret, "decompress pool: %s",
				  mw_strerror(ret));
	r->sess = *h;
	r->have_session = true;
	r->first_join_ns = mw_now_ns();
	MW_LOG(MW_LOG_INFO,
	       "session: %u channels, %s, chunk %u, %u slots "
	       "per stream",
	       h->chan_count, mw_codec_name(codec), h->chunk_size, r->credit);
	return 0;
}

/* Decides whether a HELLO joins the session. Returns 0 or a code with the
 * reason in *err (sent to the peer). Context: connection thread, lock held. */
static int admit_locked(struct receiver *r, const struct mw_hello *h,
			struct mw_err *err)
{
	if (h->version != MW_PROTO_VERSION)
		return mw_err_set(err, -MW_E_AUTH,
				  "protocol version %u not supported (this "
				  "receiver speaks %u)",
				  h->version, MW_PROTO_VERSION);
	if (h->codec >= MW_CODEC_MAX)
		return mw_err_set(err, -MW_E_PROTO, "unknown codec %u",
				  h->codec);
	if (!r->have_session)
		return session_init_locked(r, h, err);
	if (memcmp(h->session, r->sess.session, sizeof(h->session)))
		return mw_err_set(err, -MW_E_AUTH,
				  "channel belongs to another session");
	if (h->chan_count != r->sess.chan_count || h->codec != r->sess.codec ||
	    h->chunk_size != r->sess.chunk_size)
		return mw_err_set(
			err, -MW_E_PROTO,
			"channel parameters differ from the session's");
	if (r->chans[h->chan_index])
		return mw_err_set(err, -MW_E_PROTO, "channel %u joined twice",
				  h->chan_index);
	return 0;
}

static void poke_all_locked(struct receiver *r)
{
	unsigned i;

	for (i = 0; i < r->nlive; i++)
		mw_efd_poke(r->live[i]->efd);
}

/* Queues a frame on the channel that carries stream `id`'s control and
 * reverse traffic. limit > 0 blocks while that queue is that full. */
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
	return mw_ctlq_push(&ch->ctlq, c, limit);
}

/* ---- completion ---- */

static void check_complete_locked(struct receiver *r)
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
			mw_ctlq_push(&r->chans[i]->ctlq, c, 0);
		else
			free(c);
	}
	mw_fail_wake(&r->fail);
}

/* ---- streams ---- */

static void *writer_main(void *arg);

/* Returns stream id, creating it (slots, writer thread) on first mention.
 * NULL with *err set on a protocol violation. Context: channel, lock held. */
static struct rx_stream *stream_get_locked(struct receiver *r, uint32_t id,
					   struct rx_chan *ch)
{
	const struct mw_xp_cfg *cfg = r->cfg;
	struct rx_stream *st;
	unsigned i;
	int ret;

	if (id >= MW_STREAMS_MAX) {
		chan_err(ch, -MW_E_PROTO, "stream %u out of range", id);
		return NULL;
	}
	if (r->streams[id])
		return r->streams[id];
	if (!cfg->nr_eps && id > 0) {
		chan_err(ch, -MW_E_PROTO,
			 "stream %u, but this receiver has no "
			 "--connect endpoints (exec mode carries one stream)",
			 id);
		return NULL;
	}
	if (r->closed) {
		chan_err(ch, -MW_E_PROTO, "stream %u after CLOSE", id);
		return NULL;
	}
	st = calloc(1, sizeof(*st));
	if (st)
		st->slots = calloc(r->credit, sizeof(*st->slots));
	if (!st || !st->slots || mw_reasm_init(&st->ra, r->credit))
		goto err_mem;
	for (i = 0; i < r->credit; i++) {
		struct rx_slot *s = &st->slots[i];

		s->st = st;
		s->idx = i;
		s->raw = mw_buf_alloc(r->sess.chunk_size);
		if (r->wire_cap)
			s->wire = mw_buf_alloc(r->wire_cap);
		if (!s->raw || (r->wire_cap && !s->wire))
			goto err_mem;
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
	if (ret)
		goto err_mem;
	st->writer_started = true;
	r->streams[id] = st;
	return st;
err_mem:
	if (st && st->slots)
		for (i = 0; i < r->credit; i++) {
			free(st->slots[i].raw);
			free(st->slots[i].wire);
		}
	if (st) {
		mw_reasm_destroy(&st->ra);
		free(st->slots);
	}
	free(st);
	chan_err(ch, -ENOMEM, "out of memory for stream %u", id);
	return NULL;
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
	       mw_reasm_head(&st->ra) >= 0;
}

/* The head chunk was written: free its slot, and grant more credit once
 * half of it is used up. */
static void pop_locked(struct rx_stream *st)
{
	struct receiver *r = st->r;
	struct mw_frame_hdr h = { .type = MW_FT_WINDOW, .stream = st->id };
	struct mw_ctl *c;

	if (!mw_reasm_pop(&st->ra, &h.seq))
		return;
	c = mw_ctl_new(&h, NULL);
	if (c && r->chans[st->id % r->sess.chan_count])
		mw_ctlq_push(&r->chans[st->id % r->sess.chan_count]->ctlq, c,
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
		else
			st->rev_started = true;
	}
	pthread_mutex_lock(&r->lock);
	while (!ret) {
		struct rx_slot *s;

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
			check_complete_locked(r);
			break;
		}
		s = &st->slots[mw_reasm_head(&st->ra)];
		if (s->seq == 0 && st->kind == MW_SK_UNKNOWN)
			st->kind = (uint8_t)mw_kind_sniff(s->raw, s->raw_len,
							  false);
		kind = st->kind;
		pthread_mutex_unlock(&r->lock);
		if (st->nbd_gone) {
			ret = -EPIPE; /* more than the DISC after the close */
		} else {
			size_t done;

			ret = write_upto(st->fd, s->raw, s->raw_len, &done);
			if ((ret == -EPIPE || ret == -ECONNRESET) &&
			    kind == MW_SK_NBD &&
			    mw_nbd_is_disc(s->raw + done, s->raw_len - done)) {
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
				    "stream %u: write to the "
				    "destination QEMU: %s%s",
				    st->id, mw_strerror(ret),
				    ret == -EPIPE || ret == -ECONNRESET ?
					    " (it closed its input)" :
					    "");
			break;
		}
		bytes += s->raw_len;
		atomic_store_explicit(&st->bytes_fwd, bytes,
				      memory_order_relaxed);
		if (r->lat)
			fprintf(r->lat, "%u %" PRIu64 " %llu\n", st->id, s->seq,
				mw_now_ns());
		pop_locked(st);
	}
	pthread_mutex_unlock(&r->lock);
	st->writer_cpu = mw_thread_cpu_seconds();
	atomic_store(&st->writer_exited, true);
	return NULL;
}

/* Decompress worker: the slot is verified (or the session fails). */
static void slot_decoded(struct mw_comp_job *job)
{
	struct rx_slot *s = job->opaque;
	struct receiver *r = s->st->r;

	if (job->ret)
		mw_fail_set(&r->fail, job->ret,
			    "stream %u chunk %" PRIu64 ": %s", s->st->id,
			    s->seq, job->err.msg);
	pthread_mutex_lock(&r->lock);
	if (!job->ret)
		mw_reasm_mark(&s->st->ra, s->idx, MW_RS_READY);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
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
	st = stream_get_locked(r, h->stream, ch);
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
	s->job.done = slot_decoded;
	s->job.opaque = s;
	if (s->job.raw) {
		/* verify a raw chunk here while it is in cache: no hand-off */
		mw_comp_job_verify(&s->job);
		slot_decoded(&s->job);
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
		check_complete_locked(r);
	} else if (h->type == MW_FT_OPEN) {
		struct mw_open o;

		st = NULL;
		if (mw_open_decode(ch->ctl, h->wire_len, &o))
			ret = chan_err(ch, -MW_E_PROTO, "malformed OPEN frame");
		else if (!(st = stream_get_locked(r, h->stream, ch)))
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
		else if (!(st = stream_get_locked(r, h->stream, ch)))
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

/* ---- connection threads ---- */

static void live_remove_locked(struct receiver *r, struct rx_chan *ch)
{
	unsigned i;

	for (i = 0; i < r->nlive; i++)
		if (r->live[i] == ch) {
			r->live[i] = r->live[--r->nlive];
			break;
		}
	pthread_cond_broadcast(&r->live_cv);
}

/* TLS + HELLO; on success the channel is registered in r->chans. */
static int chan_join(struct rx_chan *ch)
{
	struct receiver *r = ch->r;
	unsigned long long dl = mw_deadline_after(
		r->cfg->timeout_s < JOIN_SECS ? r->cfg->timeout_s : JOIN_SECS);
	uint8_t hdr[MW_FRAME_HDR_LEN], payload[MW_HELLO_LEN], first;
	struct mw_frame_hdr h;
	struct mw_hello hello;
	struct mw_hello_ok ok = { .version = MW_PROTO_VERSION };
	int ret;

	ret = mw_conn_handshake(&ch->conn, dl);
	if (ret)
		return ret;
	ret = mw_conn_read(&ch->conn, hdr, sizeof(hdr), dl);
	if (ret)
		return ret;
	first = hdr[0];
	if (mw_frame_hdr_decode(hdr, sizeof(hdr), MW_HELLO_LEN, &h) ||
	    h.type != MW_FT_HELLO) {
		if (!ch->conn.tls && first == 0x16)
			return mw_err_set(&ch->conn.err, -MW_E_AUTH,
					  "peer speaks TLS but this receiver "
					  "runs --no-tls");
		return mw_err_set(&ch->conn.err, -MW_E_PROTO,
				  "not a migwire HELLO (garbage or wrong "
				  "protocol)");
	}
	ret = mw_conn_read(&ch->conn, payload, sizeof(payload), dl);
	if (ret)
		return ret;
	if (mw_hello_decode(payload, sizeof(payload), &hello))
		return mw_err_set(&ch->conn.err, -MW_E_PROTO,
				  "malformed HELLO");
	pthread_mutex_lock(&r->lock);
	ret = admit_locked(r, &hello, &ch->conn.err);
	if (!ret) {
		ch->idx = hello.chan_index;
		r->chans[ch->idx] = ch;
		r->joined++;
		r->npending--;
		ok.stream_window = r->credit;
		if (r->joined == r->sess.chan_count)
			mw_efd_poke(r->lst_efd);
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->lock);
	if (ret)
		return ret;
	ok.chan_index = hello.chan_index;
	memcpy(ok.session, hello.session, sizeof(ok.session));
	mw_hello_ok_encode(payload, &ok);
	h = (struct mw_frame_hdr){ .type = MW_FT_HELLO_OK,
				   .wire_len = MW_HELLO_OK_LEN };
	return mw_conn_send_frame(&ch->conn, &h, payload, dl);
}

static void *conn_main(void *arg)
{
	struct rx_chan *ch = arg;
	struct receiver *r = ch->r;
	char name[16];
	int ret;

	mw_thread_place("mw-rxhs", &r->cfg->cpus, 0);
	ret = chan_join(ch);
	if (ret) {
		/* rejected: log it, tell the peer, and leave no trace */
		MW_LOG(MW_LOG_WARN, "rejected connection from %s: %s",
		       ch->conn.peer, ch->conn.err.msg);
		if (ret != -MW_E_CLOSED && ret != -MW_E_TIMEOUT)
			mw_conn_send_error(&ch->conn, ch->conn.err.msg);
		mw_tls_thread_stop();
		pthread_mutex_lock(&r->lock);
		r->npending--;
		live_remove_locked(r, ch);
		mw_conn_destroy(&ch->conn);
		mw_ctlq_destroy(&ch->ctlq);
		close(ch->efd);
		free(ch->sealed);
		free(ch);
		pthread_mutex_unlock(&r->lock);
		return NULL;
	}
	snprintf(name, sizeof(name), "mw-rx%d", ch->idx);
	mw_thread_place(name, &r->cfg->cpus,
			1 + r->cfg->threads + (unsigned)ch->idx);
	ret = mw_ring_init(&ch->ring, 8, r->io);
	if (ret)
		chan_err(ch, ret, "%s setup: %s", mw_io_name(r->io),
			 mw_strerror(ret));
	else
		ch->ring_ok = true;
	if (!ret)
		ret = chan_loop(ch);
	if (ret && ret != -MW_E_CANCEL)
		mw_fail_set(&r->fail, ret, "channel %d (%s): %s", ch->idx,
			    ch->conn.peer,
			    ch->conn.err.msg[0] ? ch->conn.err.msg :
						  mw_strerror(ret));
	/* the sender learns why, unless it told us */
	if (mw_fail_is_set(&r->fail) && !ch->ack_sent && ret != -MW_E_PEER &&
	    !ch->tx_ctl)
		mw_conn_send_error(&ch->conn, r->fail.err.msg);
	ch->cpu_final = mw_thread_cpu_seconds();
	mw_ctlq_stop(&ch->ctlq);
	mw_fail_wake(&r->fail);
	mw_tls_thread_stop();
	/* last touch of r or ch: once off the live list the main thread may
	 * free both */
	pthread_mutex_lock(&r->lock);
	atomic_store(&ch->exited, true);
	live_remove_locked(r, ch);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void accept_one(struct receiver *r)
{
	struct sockaddr_storage peer = { 0 };
	socklen_t plen = sizeof(peer);
	char name[MW_PEER_MAX];
	struct rx_chan *ch;
	pthread_attr_t attr;
	pthread_t th;
	int fd, ret;

	/* the address from accept: getpeername() fails once a peer reset */
	fd = accept4(r->listen_fd, (struct sockaddr *)&peer, &plen,
		     SOCK_CLOEXEC);
	if (fd < 0)
		return;
	pthread_mutex_lock(&r->lock);
	if (r->npending >= MAX_PENDING || r->nlive >= MAX_LIVE) {
		pthread_mutex_unlock(&r->lock);
		close(fd); /* a flood: the legitimate sender is not pending */
		return;
	}
	pthread_mutex_unlock(&r->lock);
	mw_net_tune(fd, r->cfg->timeout_s);
	ch = calloc(1, sizeof(*ch));
	mw_net_addr_name(&peer, name, sizeof(name));
	if (!ch || mw_conn_init(&ch->conn, fd, name, r->tls)) {
		close(fd);
		free(ch);
		return;
	}
	ch->r = r;
	ch->idx = -1;
	ch->efd = mw_efd_new();
	mw_ctlq_init(&ch->ctlq, ch->efd);
	if (r->tls) {
		ch->sealed_cap =
			mw_tls_seal_bound(MW_FRAME_HDR_LEN + MW_REVERSE_MAX);
		ch->sealed = mw_buf_alloc(ch->sealed_cap);
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&r->lock);
	r->npending++;
	r->live[r->nlive++] = ch;
	ret = (r->tls && !ch->sealed) || ch->efd < 0 ?
		      ENOMEM :
		      pthread_create(&th, &attr, conn_main, ch);
	if (ret) {
		r->npending--;
		r->nlive--;
		mw_conn_destroy(&ch->conn);
		mw_ctlq_destroy(&ch->ctlq);
		close(ch->efd);
		free(ch->sealed);
		free(ch);
	} else {
		ch->th = th;
	}
	pthread_mutex_unlock(&r->lock);
	pthread_attr_destroy(&attr);
}

static void *listener_main(void *arg)
{
	struct receiver *r = arg;
	const struct mw_xp_cfg *cfg = r->cfg;
	unsigned long long wait_dl = mw_deadline_after(cfg->wait_s);

	mw_thread_place("mw-listen", &cfg->cpus, 0);
	for (;;) {
		struct pollfd p[2] = { { .fd = r->listen_fd, .events = POLLIN },
				       { .fd = r->lst_efd, .events = POLLIN } };
		unsigned long long dl, now = mw_now_ns();
		unsigned joined, count;
		int ms;

		pthread_mutex_lock(&r->lock);
		joined = r->joined;
		count = r->have_session ? r->sess.chan_count : 0;
		dl = r->have_session ?
			     r->first_join_ns +
				     (unsigned long long)cfg->timeout_s *
					     1000000000ull :
			     wait_dl;
		pthread_mutex_unlock(&r->lock);
		if (mw_fail_is_set(&r->fail) || (count && joined == count))
			break;
		if (dl && now >= dl) {
			if (count)
				mw_fail_set(&r->fail, -MW_E_TIMEOUT,
					    "only %u of %u channels joined "
					    "within %u s",
					    joined, count, cfg->timeout_s);
			else
				mw_fail_set(&r->fail, -MW_E_TIMEOUT,
					    "no sender connected within %u s",
					    cfg->wait_s);
			break;
		}
		ms = dl ? (int)((dl - now) / 1000000ull) + 1 : 1000;
		if (ms > 1000)
			ms = 1000;
		if (poll(p, 2, ms) > 0 && (p[0].revents & POLLIN))
			accept_one(r);
	}
	close(r->listen_fd);
	r->listen_fd = -1;
	return NULL;
}

/* ---- main thread ---- */

static void snap_fill(struct receiver *r, struct mw_stats_snap *sn,
		      struct mw_stats_chan *chs, struct mw_stats_stream *sts,
		      double t0)
{
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
	sn->stage_cpu[2] = r->pool ? mw_comp_pool_cpu_seconds(r->pool) : 0;
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

	while (!mw_fail_is_set(&r->fail) && !all_done(r)) {
		if (mw_fail_poll(&r->fail, sfd, &next) && st->f) {
			struct mw_stats_snap sn;

			snap_fill(r, &sn, chs, sts, t0);
			mw_stats_write(st, &sn);
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

static bool receiver_teardown(struct receiver *r)
{
	struct timespec ts;
	bool clean = true;
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
		if (st->rev_started && wait_flag(&st->rev_exited, 2000))
			pthread_join(st->rev, NULL);
		else if (st->rev_started)
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
	unsigned i, k;

	mw_comp_pool_free(r->pool);
	for (i = 0; i < MW_CHANNELS_MAX; i++) {
		struct rx_chan *ch = r->chans[i];

		if (!ch)
			continue;
		if (ch->ring_ok)
			mw_ring_destroy(&ch->ring);
		mw_conn_destroy(&ch->conn);
		mw_ctlq_destroy(&ch->ctlq);
		close(ch->efd);
		free(ch->tx_ctl);
		free(ch->sealed);
		free(ch);
	}
	for (i = 0; i < MW_STREAMS_MAX; i++) {
		struct rx_stream *st = r->streams[i];

		if (!st)
			continue;
		for (k = 0; k < r->credit; k++) {
			free(st->slots[k].raw);
			free(st->slots[k].wire);
		}
		if (st->is_sock)
			close(st->fd);
		mw_reasm_destroy(&st->ra);
		free(st->slots);
		free(st);
	}
	if (r->tls)
		mw_tls_ctx_free(r->tls);
	if (r->listen_fd >= 0)
		close(r->listen_fd);
	if (r->lst_efd >= 0)
		close(r->lst_efd);
}

int mw_xp_recv_run(const struct mw_xp_cfg *cfg, struct mw_err *err)
{
	struct receiver r = { .cfg = cfg, .listen_fd = -1, .lst_efd = -1 };
	struct mw_stats_chan chs[MW_CHANNELS_MAX];
	struct mw_stats_stream sts[MW_STREAMS_MAX];
	struct mw_stats st;
	struct mw_stats_snap sn;
	double t0 = (double)mw_now_ns() / 1e9;
	bool clean;
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
	/* a larger pipe lets QEMU's loader run while we write the next chunk */
	if (!cfg->nr_eps)
		fcntl(cfg->out_fd, F_SETPIPE_SZ, 1 << 20);
	r.lst_efd = mw_efd_new();
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
	ret = pthread_create(&r.listener, NULL, listener_main, &r);
	r.listener_started = !ret;
	if (ret)
		mw_fail_set(&r.fail, -ret, "pthread_create: %s", strerror(ret));
	control_loop(&r, sfd, &st, chs, sts, t0);
	clean = receiver_teardown(&r);
	ret = 0;
	if (!r.complete) {
		ret = r.fail.err.code ? r.fail.err.code : -MW_E_CANCEL;
		mw_err_set(err, ret, "%s", r.fail.err.msg);
		if (!cfg->nr_eps && (!r.streams[0] || r.streams[0]->fd >= 0))
			close(cfg->out_fd); /* QEMU sees EOF and fails */
	}
	snap_fill(&r, &sn, chs, sts, t0);
	sn.final = true;
	sn.result = ret ? err->msg : "ok";
	mw_stats_write(&st, &sn);
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
