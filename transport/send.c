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
 * A stream is one QEMU connection: stdin/stdout under exec: (stream 0), or
 * one accepted socket per connection QEMU opens (main, multifd, preempt,
 * NBD), numbered in accept order. Its forward bytes are cut into chunks from
 * one pool shared by all streams (sized by --window: an empty pool stops the
 * readers, which back-pressures QEMU). A finished compress job parks the
 * chunk in its stream's ready ring at seq % nchunks. Channels take chunks of
 * a stream strictly in sequence order and only below the stream's credit
 * limit (WINDOW frames from the receiver), picking streams round robin. So
 * sequence numbers grow per stream on every channel, the receiver always has
 * room for what arrives, and one stream the destination does not read
 * cannot block the others (QEMU's multifd threads wait for the main channel).
 *
 * The ring indexing is collision-free: the chunks of a stream not yet taken
 * are exactly its sequence numbers [next_take, next_seq), fewer than nchunks.
 *
 * Each channel keeps up to two frames: one in the kernel, the next sealed
 * meanwhile. Control frames (OPEN, CLOSE) go on channel 0 before bulk data.
 * Reverse-direction frames of a stream all arrive on one channel (stream id
 * modulo channels), in order, and that channel thread writes them to the
 * stream's local socket (or stdout).
 *
 * The session ends when every stream has ended both ways (and in socket
 * mode a main migration stream has been carried): CLOSE with the totals
 * goes out, and the receiver's ACK, sent once every byte is written, is the
 * only way to exit 0.
 *
 * State below `lock` is protected by it; the failure latch and the ack flag
 * are atomics.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mw_log.h"
#include "mw_thread.h"
#include "mw_xport.h"
#include "ring.h"
#include "stats.h"
#include "chan.h"
#include "conn.h"
#include "ctlq.h"
#include "frame_io.h"
#include "mw_fd.h"
#include "net.h"
#include "qemu_stream.h"
#include "rate.h"
#include "session.h"

#define TX_SLOTS MW_CHAN_SLOTS_MAX

struct sender;
struct tx_stream;

struct tx_chunk {
	uint64_t seq;
	struct tx_stream *st;
	uint8_t *raw;
	uint8_t *out; /* compressed bytes; NULL with codec none */
	uint32_t raw_len;
	struct mw_comp_job job;
	struct tx_chunk *next_free;
};

struct tx_stream {
	struct sender *s;
	unsigned id, ep;
	uint8_t kind;
	int in_fd;  /* forward bytes come from here */
	int out_fd; /* reverse bytes go here */
	bool is_sock;
	pthread_t reader;
	bool reader_started;
	atomic_bool reader_exited;
	double reader_cpu;
	/* forward, under s->lock */
	struct tx_chunk **ready;
	struct tx_chunk **queued; /* --adaptive: submitted, maybe not started */
	uint64_t next_seq, next_take, limit;
	bool wants_drain; /* reader waits for next_take == next_seq */
	int drain_efd;
	bool input_done, end_claimed;
	uint64_t total_chunks, total_bytes;
	/* reverse, owned by channel id % nr_chans */
	uint64_t rev_seq, rev_bytes;
	bool rev_discard;
	atomic_bool rev_done;
	atomic_ullong bytes_fwd, bytes_rev;
};

/*
 * Locking: none; a slot's frame belongs to its channel thread, and the
 * kernel borrows chunk, ctl or end (and sealed) while io.slot[i] sends it.
 */
struct tx_slot {
	struct tx_chunk *chunk; /* returned to the pool when sent */
	struct mw_ctl *ctl;	/* freed when sent */
	uint8_t end[MW_END_LEN];
	uint8_t *sealed; /* TLS: ciphertext buffer */
	size_t sealed_cap;
};

/*
 * Locking: the channel thread owns everything here while it runs; the main
 * thread sets s, idx, th and started before and reads the rest (conn,
 * dirty, io.sending) only after joining it. sock is the main thread's way to
 * shut the socket during teardown (atomic). bytes_wire and seal_ns are
 * statistics (atomic, relaxed); cpu_final is written before the exited
 * store that publishes it. ctlq has its own lock.
 */
struct tx_chan {
	struct sender *s;
	unsigned idx;
	pthread_t th;
	bool started;
	struct mw_conn conn;
	struct mw_ring ring;
	bool ring_ok;
	int efd;
	bool idle;
	bool dirty;	 /* the byte stream may end inside a frame */
	atomic_int sock; /* conn.fd for the main thread's teardown; -1 */
	struct mw_chan io;
	struct tx_slot slot[TX_SLOTS];
	struct mw_ctlq ctlq;
	/* payload of the incoming frame (conn.rd parses them) */
	uint8_t *in_payload; /* MW_REVERSE_MAX bytes */
	atomic_ullong bytes_wire;
	atomic_ullong seal_ns; /* thread CPU spent sealing (stats) */
	atomic_bool exited;
	double cpu_final;
};

struct sender {
	const struct mw_xp_cfg *cfg;
	struct mw_fail fail;
	struct mw_comp_pool *pool;
	struct mw_tls_ctx *tls;
	struct mw_rate rate;
	uint8_t session[MW_SESSION_ID_LEN];
	size_t out_cap;
	uint32_t stream_window;

	pthread_mutex_t lock;
	pthread_cond_t cv; /* free chunk, channel ready */
	unsigned nchunks;
	struct tx_chunk *chunks;
	struct tx_chunk *free_list;
	unsigned nready;
	unsigned *idle;
	unsigned nidle;
	struct tx_stream *streams[MW_STREAMS_MAX];
	unsigned nstreams, rr;
	bool main_done, close_sent, accepting;

	int lfd[MW_ENDPOINTS_MAX];
	pthread_t acceptor;
	bool acceptor_started;

	atomic_bool acked;
	atomic_ullong chunks_adaptive; /* sent raw by --adaptive */
	struct tx_chan *chans;
	FILE *lat;     /* --latency-file */
	enum mw_io io; /* --io resolved: MW_IO_URING or MW_IO_POLL */
};

/* ---- chunk pool and ready rings ---- */

static void wake_idle_locked(struct sender *s)
{
	if (s->nidle) {
		struct tx_chan *ch = &s->chans[s->idle[--s->nidle]];

		ch->idle = false;
		mw_efd_poke(ch->efd);
	}
}

/*
 * --adaptive: the stream's next chunk when it was handed to the compress
 * pool and is not ready yet (a worker may have started it meanwhile).
 */
static struct tx_chunk *queued_next_locked(struct sender *s,
					   struct tx_stream *st)
{
	struct tx_chunk *q = st->queued[st->next_take % s->nchunks];

	if (!s->cfg->adaptive || !q || q->st != st || q->seq != st->next_take ||
	    st->next_take >= st->limit)
		return NULL;
	return q;
}

static bool stream_takeable_locked(struct sender *s, struct tx_stream *st)
{
	struct tx_chunk *c = st->ready[st->next_take % s->nchunks];

	if (c && c->seq == st->next_take && st->next_take < st->limit)
		return true;
	if (queued_next_locked(s, st))
		return true; /* probably still claimable */
	return st->input_done && !st->end_claimed &&
	       st->next_take == st->total_chunks;
}

static bool takeable_locked(struct sender *s)
{
	unsigned i;

	for (i = 0; i < s->nstreams; i++)
		if (stream_takeable_locked(s, s->streams[i]))
			return true;
	return false;
}

static void chunk_put(struct sender *s, struct tx_chunk *c)
{
	pthread_mutex_lock(&s->lock);
	c->next_free = s->free_list;
	s->free_list = c;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->lock);
}

/* The chunk travels raw: its job says so and carries the checksum. */
static void chunk_raw(struct tx_chunk *c)
{
	memset(&c->job, 0, sizeof(c->job));
	c->job.raw = true;
	c->job.csum = mw_comp_checksum(c->raw, c->raw_len);
	c->job.opaque = c;
}

/* Compress worker: the chunk is ready to be taken. */
static void chunk_compressed(struct mw_comp_job *job)
{
	struct tx_chunk *c = job->opaque;
	struct tx_stream *st = c->st;
	struct sender *s = st->s;

	if (job->ret) {
		mw_fail_set(&s->fail, job->ret,
			    "stream %u: compress chunk %" PRIu64 ": %s", st->id,
			    c->seq, job->err.msg);
		return;
	}
	pthread_mutex_lock(&s->lock);
	st->ready[c->seq % s->nchunks] = c;
	if (c->seq == st->next_take && c->seq < st->limit)
		wake_idle_locked(s);
	pthread_mutex_unlock(&s->lock);
}

/*
 * --adaptive: the stream's next chunk still waits in the compress queue
 * while this channel has room for a frame and the peer has acknowledged all
 * but at most one chunk's worth of what the socket was given (SIOCOUTQ),
 * i.e. the network is ahead of the codec. Take the job back from the pool;
 * the chunk goes raw. A free slot alone is not enough: the socket buffer and
 * a shaping queue take megabytes before a slow link pushes back, and raw
 * chunks then crowded out compressed ones there (1 Gbit/s tbf link: 5.5 s
 * and 2.1x the wire bytes of plain zstd; with this check 3.4-3.7 s).
 */
static bool chunk_claim_locked(struct tx_chan *ch, struct tx_stream *st)
{
	struct sender *s = ch->s;
	struct tx_chunk *q = queued_next_locked(s, st);
	int unsent = 0;

	if (!q)
		return false;
	if (ioctl(ch->conn.fd, SIOCOUTQ, &unsent) == 0 &&
	    unsent > (int)s->cfg->chunk_size)
		return false;
	return mw_comp_pool_claim(s->pool, &q->job);
}

/*
 * Takes the next chunk of some stream in sequence order, or claims a
 * stream's END (*end_st). Returns NULL and parks the channel as idle when
 * nothing is takeable.
 */
static struct tx_chunk *chunk_take(struct tx_chan *ch,
				   struct tx_stream **end_st)
{
	struct sender *s = ch->s;
	struct tx_chunk *c = NULL;
	bool stolen = false;
	unsigned i;

	*end_st = NULL;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nstreams && !c && !*end_st; i++) {
		struct tx_stream *st = s->streams[(s->rr + i) % s->nstreams];
		unsigned slot = (unsigned)(st->next_take % s->nchunks);

		if (st->ready[slot] && st->ready[slot]->seq == st->next_take &&
		    st->next_take < st->limit) {
			c = st->ready[slot];
			st->ready[slot] = NULL;
			st->queued[slot] = NULL;
			st->next_take++;
		} else if (chunk_claim_locked(ch, st)) {
			c = st->queued[slot];
			st->queued[slot] = NULL;
			st->next_take++;
			stolen = true;
		} else if (st->input_done && !st->end_claimed &&
			   st->next_take == st->total_chunks) {
			st->end_claimed = true;
			*end_st = st;
		}
		if (c || *end_st)
			s->rr = (s->rr + i + 1) % s->nstreams;
	}
	if (c) {
		pthread_cond_broadcast(&s->cv); /* a reader may go on */
		if (c->st->wants_drain && c->st->next_take == c->st->next_seq) {
			c->st->wants_drain = false;
			mw_efd_poke(c->st->drain_efd);
		}
	}
	if (c || *end_st) {
		if (takeable_locked(s))
			wake_idle_locked(s);
	} else if (!ch->idle) {
		ch->idle = true;
		s->idle[s->nidle++] = ch->idx;
	}
	pthread_mutex_unlock(&s->lock);
	if (*end_st)
		mw_fail_wake(&s->fail); /* the session may be over */
	if (stolen && c) {
		chunk_raw(c); /* what the worker would have done, sans codec */
		atomic_fetch_add_explicit(&s->chunks_adaptive, 1,
					  memory_order_relaxed);
	}
	return c;
}

/* ---- readers ---- */

/*
 * May the reader of st fill another chunk? Only below the stream's credit,
 * and only while it holds fewer unsent chunks than its share of the pool:
 * a stream the destination does not read (QEMU's multifd threads wait for
 * the main channel at every sync) must not take the buffers the stream it
 * waits for needs.
 */
static bool reader_may_take_locked(struct sender *s, struct tx_stream *st)
{
	unsigned others = s->nstreams > 1 ? s->nstreams - 1 : 1;
	uint64_t share = (s->nchunks - 1) / others;

	if (share < 1)
		share = 1;
	return s->free_list && st->next_seq < st->limit &&
	       st->next_seq - st->next_take < share;
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
	struct sender *s = st->s;
	bool wait;
	uint64_t v;

	if (read(st->drain_efd, &v, sizeof(v)) < 0)
		v = 0; /* nothing pending: fine */
	pthread_mutex_lock(&s->lock);
	wait = st->next_take < st->next_seq;
	st->wants_drain = wait;
	pthread_mutex_unlock(&s->lock);
	return wait;
}

/* Fills c from the stream: returns bytes (0 at EOF) or -errno. A partial
 * chunk leaves as soon as the input pauses and the channels have taken
 * everything before it: the tail of a migration is written while the VM is
 * stopped, so no timer may hold it. */
static ssize_t chunk_fill(struct tx_stream *st, struct tx_chunk *c)
{
	struct sender *s = st->s;
	size_t len = 0, cap = s->cfg->chunk_size;
	struct pollfd p[3] = {
		{ .fd = st->in_fd, .events = POLLIN },
		{ .fd = s->fail.wake_fd, .events = POLLIN },
		{ .fd = st->drain_efd, .events = POLLIN },
	};
	int timeout = -1, nfds = 2;

	while (len < cap) {
		ssize_t r;
		int n;

		n = poll(p, (nfds_t)nfds, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (mw_fail_is_set(&s->fail))
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
	pthread_mutex_lock(&s->lock);
	st->wants_drain = false;
	pthread_mutex_unlock(&s->lock);
	return (ssize_t)len;
}

static void *reader_main(void *arg)
{
	struct tx_stream *st = arg;
	struct sender *s = st->s;
	uint64_t bytes = 0;
	char name[16];

	snprintf(name, sizeof(name), "mw-read%u", st->id);
	mw_thread_place(st->id ? name : "mw-read", &s->cfg->cpus, 0);
	for (;;) {
		struct tx_chunk *c;
		uint64_t seq;
		ssize_t n;
		int ret;

		pthread_mutex_lock(&s->lock);
		while (!reader_may_take_locked(s, st) &&
		       !mw_fail_is_set(&s->fail))
			pthread_cond_wait(&s->cv, &s->lock);
		c = s->free_list;
		if (c && !mw_fail_is_set(&s->fail))
			s->free_list = c->next_free;
		pthread_mutex_unlock(&s->lock);
		if (!c || mw_fail_is_set(&s->fail))
			break;
		n = chunk_fill(st, c);
		if (n < 0) {
			if (n != -MW_E_CANCEL)
				mw_fail_set(&s->fail, (int)n,
					    "stream %u: read input: %s", st->id,
					    mw_strerror((int)n));
			chunk_put(s, c);
			break;
		}
		if (n == 0) {
			chunk_put(s, c);
			pthread_mutex_lock(&s->lock);
			st->input_done = true;
			st->total_chunks = st->next_seq;
			st->total_bytes = bytes;
			if (stream_takeable_locked(s, st))
				wake_idle_locked(s);
			pthread_mutex_unlock(&s->lock);
			mw_fail_wake(&s->fail); /* the session may be over */
			break;
		}
		pthread_mutex_lock(&s->lock);
		if (st->next_seq == 0 && st->kind == MW_SK_UNKNOWN)
			st->kind = (uint8_t)mw_kind_sniff(c->raw, (size_t)n,
							  false);
		c->st = st;
		c->seq = st->next_seq++;
		seq = c->seq;	      /* c is not ours once submitted */
		if (s->cfg->adaptive) /* claimable once in the pool's queue */
			st->queued[seq % s->nchunks] = c;
		pthread_mutex_unlock(&s->lock);
		if (s->lat)
			fprintf(s->lat, "%u %" PRIu64 " %llu\n", st->id, c->seq,
				mw_now_ns());
		c->raw_len = (uint32_t)n;
		bytes += (uint64_t)n;
		atomic_store_explicit(&st->bytes_fwd, bytes,
				      memory_order_relaxed);
		if (s->cfg->codec == MW_CODEC_NONE) {
			/* no codec: checksum here while the bytes are in
			 * cache, and skip a thread hand-off */
			chunk_raw(c);
			chunk_compressed(&c->job);
			continue;
		}
		memset(&c->job, 0, sizeof(c->job));
		c->job.dir = MW_COMP_COMPRESS;
		c->job.src = c->raw;
		c->job.src_len = c->raw_len;
		c->job.dst = c->out;
		c->job.dst_cap = c->out ? s->out_cap : 0;
		c->job.done = chunk_compressed;
		c->job.opaque = c;
		ret = mw_comp_pool_submit(s->pool, &c->job);
		if (ret) {
			mw_fail_set(&s->fail, ret, "compress queue: %s",
				    mw_strerror(ret));
			break;
		}
		if (s->cfg->adaptive) {
			/* an idle channel may take it raw right away */
			pthread_mutex_lock(&s->lock);
			if (seq == st->next_take)
				wake_idle_locked(s);
			pthread_mutex_unlock(&s->lock);
		}
	}
	st->reader_cpu = mw_thread_cpu_seconds();
	atomic_store(&st->reader_exited, true);
	return NULL;
}

/* Creates stream `id` over the given descriptors and starts its reader.
 * Queues its OPEN frame on channel 0. Context: main or acceptor thread. */
static int stream_start(struct sender *s, unsigned ep, int in_fd, int out_fd,
			uint8_t kind)
{
	struct mw_frame_hdr h = { .type = MW_FT_OPEN, .wire_len = MW_OPEN_LEN };
	struct mw_open o = { .endpoint = (uint16_t)ep, .kind = kind };
	uint8_t p[MW_OPEN_LEN];
	struct tx_stream *st;
	struct mw_ctl *c;
	int ret;

	st = calloc(1, sizeof(*st));
	if (st)
		st->ready = calloc(2 * (size_t)s->nchunks, sizeof(*st->ready));
	if (!st || !st->ready) {
		free(st);
		return -ENOMEM;
	}
	st->queued = st->ready + s->nchunks; /* one allocation, one free */
	st->s = s;
	st->ep = ep;
	st->kind = kind;
	st->in_fd = in_fd;
	st->out_fd = out_fd;
	st->drain_efd = mw_efd_new();
	if (st->drain_efd < 0) {
		ret = st->drain_efd;
		free(st->ready);
		free(st);
		return ret;
	}
	st->is_sock = mw_fd_is_sock(in_fd);
	st->limit = s->stream_window;
	pthread_mutex_lock(&s->lock);
	if (s->nstreams == MW_STREAMS_MAX) {
		pthread_mutex_unlock(&s->lock);
		free(st->ready);
		free(st);
		return -EMFILE;
	}
	st->id = s->nstreams;
	h.stream = st->id;
	mw_open_encode(p, &o);
	c = mw_ctl_new(&h, p);
	if (!c) {
		pthread_mutex_unlock(&s->lock);
		free(st->ready);
		free(st);
		return -ENOMEM;
	}
	/* OPEN frames leave in stream order on channel 0: the receiver
	 * connects in that order (QEMU 7.2 takes the first as main) */
	mw_ctlq_push(&s->chans[0].ctlq, c, 0);
	s->streams[s->nstreams++] = st;
	ret = pthread_create(&st->reader, NULL, reader_main, st);
	st->reader_started = !ret;
	pthread_mutex_unlock(&s->lock);
	if (ret)
		return mw_fail_set(&s->fail, -ret, "pthread_create: %s",
				   strerror(ret));
	MW_LOG(MW_LOG_DEBUG, "stream %u opened (endpoint %u)", st->id, ep);
	return 0;
}

static void *acceptor_main(void *arg)
{
	struct sender *s = arg;
	const struct mw_xp_cfg *cfg = s->cfg;

	mw_thread_place("mw-accept", &cfg->cpus, 0);
	for (;;) {
		struct pollfd p[MW_ENDPOINTS_MAX + 1];
		unsigned i;

		for (i = 0; i < cfg->nr_eps; i++)
			p[i] = (struct pollfd){ .fd = s->lfd[i],
						.events = POLLIN };
		p[i] = (struct pollfd){ .fd = s->fail.wake_fd,
					.events = POLLIN };
		if (poll(p, cfg->nr_eps + 1, -1) < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&s->lock);
		if (mw_fail_is_set(&s->fail) || !s->accepting) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		pthread_mutex_unlock(&s->lock);
		for (i = 0; i < cfg->nr_eps; i++) {
			int fd, ret;

			if (!(p[i].revents & POLLIN))
				continue;
			fd = accept4(s->lfd[i], NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			ret = stream_start(s, i, fd, fd, MW_SK_UNKNOWN);
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

/* ---- channel ---- */

static int chan_setup_once(struct tx_chan *ch)
{
	struct sender *s = ch->s;
	const struct mw_xp_cfg *cfg = s->cfg;
	unsigned long long dl = mw_deadline_after(cfg->timeout_s);
	struct mw_hello hello = {
		.version = MW_PROTO_VERSION,
		.chan_index = (uint16_t)ch->idx,
		.chan_count = (uint16_t)cfg->nr_chans,
		.codec = (uint8_t)cfg->codec,
		.chunk_size = cfg->chunk_size,
		.window_chunks = s->nchunks,
	};
	uint8_t payload[MW_ERROR_MAX + 1];
	struct mw_frame_hdr h = { .type = MW_FT_HELLO,
				  .wire_len = MW_HELLO_LEN };
	struct mw_hello_ok ok;
	char peer[MW_PEER_MAX];
	int fd, ret;

	fd = mw_net_connect(cfg->host, cfg->port, dl, peer, sizeof(peer),
			    &ch->conn.err);
	if (fd < 0)
		return fd;
	mw_net_tune(fd, cfg->timeout_s);
	ret = mw_conn_init(&ch->conn, fd, peer, s->tls);
	if (ret) {
		close(fd);
		ch->conn.fd = -1;
		return ret;
	}
	atomic_store(&ch->sock, fd);
	ret = mw_conn_handshake(&ch->conn, dl);
	if (ret)
		return ret;
	memcpy(hello.session, s->session, sizeof(hello.session));
	mw_hello_encode(payload, &hello);
	ret = mw_conn_send_frame(&ch->conn, &h, payload, dl);
	if (ret)
		return ret;
	ret = mw_conn_recv_frame(&ch->conn, &h, payload, MW_ERROR_MAX, dl);
	if (ret == -MW_E_CLOSED)
		return mw_err_set(&ch->conn.err, ret,
				  "receiver closed the connection during "
				  "setup (TLS or --no-tls mismatch, or "
				  "credentials rejected)");
	if (ret)
		return ret;
	if (h.type == MW_FT_ERROR) {
		payload[h.wire_len] = '\0';
		return mw_err_set(&ch->conn.err, -MW_E_PEER,
				  "receiver refused the channel: %s",
				  (char *)payload);
	}
	if (h.type != MW_FT_HELLO_OK ||
	    mw_hello_ok_decode(payload, h.wire_len, &ok) ||
	    ok.chan_index != ch->idx ||
	    memcmp(ok.session, s->session, sizeof(ok.session)))
		return mw_err_set(&ch->conn.err, -MW_E_PROTO,
				  "unexpected %s frame instead of HELLO_OK",
				  mw_frame_type_name(h.type));
	pthread_mutex_lock(&s->lock);
	if (!s->stream_window || ok.stream_window < s->stream_window)
		s->stream_window = ok.stream_window;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/*
 * A receiver that hangs up before sending a single byte may be shedding
 * load (it keeps a bounded number of unauthenticated connections, so a flood
 * of idle connections can push ours out): try again a few times. Anything
 * the receiver said (TLS alert, ERROR) is final.
 */
static int chan_setup(struct tx_chan *ch)
{
	struct sender *s = ch->s;
	struct mw_err first = { 0 };
	int ret, tries = 0;

	for (;;) {
		ret = chan_setup_once(ch);
		/*
		 * A receiver that hung up on every try and is gone by the
		 * last one (connection refused): why it hung up is the news
		 */
		if (ret && first.code && !ch->conn.rx_total &&
		    (ret == -ECONNREFUSED || ret == -MW_E_TIMEOUT)) {
			char why[sizeof(first.msg)];

			snprintf(why, sizeof(why), "%s", ch->conn.err.msg);
			return mw_err_set(&ch->conn.err, first.code,
					  "%s; on retry %d: %s", first.msg,
					  tries, why);
		}
		if (!ret || mw_fail_is_set(&s->fail) || ++tries > 3 ||
		    (ret != -MW_E_CLOSED && ret != -ECONNRESET &&
		     ret != -EPIPE) ||
		    ch->conn.rx_total)
			return ret;
		if (!first.code)
			first = ch->conn.err;
		MW_LOG(MW_LOG_INFO,
		       "channel %u: receiver hung up during setup; "
		       "retrying",
		       ch->idx);
		atomic_store(&ch->sock, -1);
		mw_conn_destroy(&ch->conn);
		{
			struct timespec ts = { 0, 300000000L * tries };

			nanosleep(&ts, NULL);
		}
	}
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
	struct mw_ctl *ctl = mw_ctlq_pop(&ch->ctlq);
	struct tx_stream *end_st = NULL;
	struct tx_chunk *c = NULL;
	struct mw_frame_hdr h = { 0 };

	if (!ctl) {
		c = chunk_take(ch, &end_st);
		if (!c && !end_st)
			return 0;
	}
	if (c) {
		h.type = MW_FT_DATA;
		h.codec = (uint8_t)s->cfg->codec;
		h.stream = c->st->id;
		h.seq = c->seq;
		h.raw_len = c->raw_len;
		h.csum = c->job.csum;
		if (c->job.raw) {
			h.flags = MW_F_RAW;
			h.wire_len = c->raw_len;
			*payload = c->raw;
		} else {
			h.wire_len = (uint32_t)c->job.out_len;
			*payload = c->out;
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
		chunk_put(ch->s, sl->chunk);
	free(sl->ctl);
	sl->chunk = NULL;
	sl->ctl = NULL;
}

static struct tx_stream *stream_get(struct sender *s, uint32_t id)
{
	struct tx_stream *st = NULL;

	pthread_mutex_lock(&s->lock);
	if (id < s->nstreams)
		st = s->streams[id];
	pthread_mutex_unlock(&s->lock);
	return st;
}

/* Reverse DATA or END of a stream, in order on this channel. */
static int rev_frame(struct tx_chan *ch, const struct mw_frame_hdr *h)
{
	struct sender *s = ch->s;
	struct tx_stream *st = stream_get(s, h->stream & MW_STREAM_ID_MASK);
	int ret;

	if (!st || (st->id % s->cfg->nr_chans) != ch->idx ||
	    atomic_load(&st->rev_done))
		return mw_err_set(&ch->conn.err, -MW_E_PROTO,
				  "reverse frame for unknown stream %u",
				  h->stream & MW_STREAM_ID_MASK);
	if (h->type == MW_FT_END) {
		struct mw_end e;

		if (mw_end_decode(ch->in_payload, h->wire_len, &e) ||
		    e.chunks != st->rev_seq || e.bytes != st->rev_bytes)
			return mw_err_set(
				&ch->conn.err, -MW_E_CORRUPT,
				"stream %u: reverse END totals differ "
				"from what arrived",
				st->id);
		mw_fd_close_write(st->out_fd, st->is_sock);
		if (!st->is_sock)
			st->out_fd = -1;
		atomic_store(&st->rev_done, true);
		mw_fail_wake(&s->fail); /* the session may be over */
		return 0;
	}
	if (!(h->flags & MW_F_RAW) || h->seq != st->rev_seq ||
	    h->raw_len > MW_REVERSE_MAX)
		return mw_err_set(&ch->conn.err, -MW_E_PROTO,
				  "stream %u: bad reverse frame %" PRIu64,
				  st->id, h->seq);
	if (mw_comp_checksum(ch->in_payload, h->raw_len) != h->csum)
		return mw_err_set(&ch->conn.err, -MW_E_CORRUPT,
				  "stream %u: reverse chunk %" PRIu64
				  ": checksum mismatch",
				  st->id, h->seq);
	if (st->rev_seq == 0 && st->kind == MW_SK_UNKNOWN)
		st->kind = (uint8_t)mw_kind_sniff(ch->in_payload, h->raw_len,
						  true);
	st->rev_seq++;
	st->rev_bytes += h->raw_len;
	atomic_store_explicit(&st->bytes_rev, st->rev_bytes,
			      memory_order_relaxed);
	if (st->rev_discard)
		return 0;
	ret = mw_write_all(st->out_fd, ch->in_payload, h->raw_len);
	if (ret == -EPIPE || ret == -ECONNRESET) {
		/* QEMU closed this connection; it wants no more replies */
		MW_LOG(MW_LOG_INFO,
		       "stream %u: local peer closed; dropping "
		       "the rest of its reverse direction",
		       st->id);
		st->rev_discard = true;
		return 0;
	}
	if (ret)
		return mw_err_set(&ch->conn.err, ret,
				  "stream %u: write to the source QEMU: %s",
				  st->id, mw_strerror(ret));
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
	case MW_FT_ERROR:
		return mw_err_set(&ch->conn.err, -MW_E_PEER,
				  "receiver failed: %.*s", (int)h->wire_len,
				  (char *)ch->in_payload);
	case MW_FT_WINDOW: {
		struct tx_stream *st = stream_get(s, h->stream);

		if (!st)
			return mw_err_set(&ch->conn.err, -MW_E_PROTO,
					  "credit for unknown stream %u",
					  h->stream);
		pthread_mutex_lock(&s->lock);
		if (h->seq > st->limit) {
			st->limit = h->seq;
			pthread_cond_broadcast(&s->cv);
		}
		if (stream_takeable_locked(s, st))
			wake_idle_locked(s);
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	case MW_FT_DATA:
	case MW_FT_END:
		if (!(h->stream & MW_STREAM_REVERSE))
			break;
		return rev_frame(ch, h);
	case MW_FT_ACK: {
		struct mw_ack a;
		uint64_t bytes = 0, chunks = 0;
		unsigned i;

		mw_ack_decode(ch->in_payload, h->wire_len, &a);
		pthread_mutex_lock(&s->lock);
		for (i = 0; i < s->nstreams; i++) {
			bytes += s->streams[i]->total_bytes;
			chunks += s->streams[i]->total_chunks;
		}
		if (!s->close_sent || a.bytes != bytes || a.chunks != chunks) {
			pthread_mutex_unlock(&s->lock);
			return mw_err_set(&ch->conn.err, -MW_E_CORRUPT,
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
	return mw_err_set(&ch->conn.err, -MW_E_PROTO,
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
		return mw_err_set(&ch->conn.err, -MW_E_CLOSED,
				  "receiver closed the connection");
	}
	if (res < 0)
		return mw_err_set(&ch->conn.err, res, "recv: %s",
				  mw_strerror(res));
	return 0;
}

static int tls_closed(struct mw_chan *io)
{
	struct tx_chan *ch = io->opaque;

	return atomic_load(&ch->s->acked) ?
		       0 :
		       mw_err_set(&ch->conn.err, -MW_E_CLOSED,
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
	unsigned k;

	mw_chan_init(&ch->io, &chan_ops, ch, &ch->conn, &ch->ring, ch->efd,
		     TX_SLOTS);
	for (k = 0; k < TX_SLOTS; k++) {
		ch->io.slot[k].sealed = ch->slot[k].sealed;
		ch->io.slot[k].sealed_cap = ch->slot[k].sealed_cap;
	}
	ch->io.rate = &s->rate;
	ch->io.seal_ns = &ch->seal_ns;
	ch->io.sent_bytes = &ch->bytes_wire;
	/* credit frames are small: recv many at once into the buffer */
	mw_conn_rx_start(&ch->conn, &frame_ops, ch, MW_REVERSE_MAX,
			 "malformed frame from receiver", false);
	return mw_chan_loop(&ch->io);
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
	if (ch->ring_ok && !ch->dirty &&
	    mw_chan_flush(&ch->io, mw_now_ns() + 1000000000ull))
		ch->dirty = true;
}

static void *chan_main(void *arg)
{
	struct tx_chan *ch = arg;
	struct sender *s = ch->s;
	char name[16];
	int ret;

	snprintf(name, sizeof(name), "mw-tx%u", ch->idx);
	mw_thread_place(name, &s->cfg->cpus, 1 + s->cfg->threads + ch->idx);
	ret = chan_setup(ch);
	if (ret && ret != -MW_E_CANCEL)
		mw_fail_set(&s->fail, ret, "channel %u (%s): %s", ch->idx,
			    ch->conn.peer[0] ? ch->conn.peer : s->cfg->host,
			    ch->conn.err.msg[0] ? ch->conn.err.msg :
						  mw_strerror(ret));
	pthread_mutex_lock(&s->lock);
	if (!ret)
		s->nready++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->lock);
	mw_fail_wake(&s->fail); /* wait_channels() */
	if (!ret) {
		ret = mw_ring_init(&ch->ring, 4 * TX_SLOTS + 4, s->io);
		if (ret)
			mw_err_set(&ch->conn.err, ret, "%s setup: %s",
				   mw_io_name(s->io), mw_strerror(ret));
		else
			ch->ring_ok = true;
	}
	if (!ret)
		ret = chan_loop(ch);
	if (ret && ret != -MW_E_CANCEL)
		ch->dirty = true; /* its own socket or TLS failed */
	else
		chan_drain(ch);
	if (ret && ret != -MW_E_CANCEL)
		mw_fail_set(&s->fail, ret, "channel %u (%s): %s", ch->idx,
			    ch->conn.peer[0] ? ch->conn.peer : s->cfg->host,
			    ch->conn.err.msg[0] ? ch->conn.err.msg :
						  mw_strerror(ret));
	ch->cpu_final = mw_thread_cpu_seconds();
	atomic_store(&ch->exited, true);
	return NULL;
}

/* ---- main thread ---- */

static int sender_alloc(struct sender *s)
{
	const struct mw_xp_cfg *cfg = s->cfg;
	size_t per = cfg->chunk_size;
	unsigned i;

	s->out_cap = cfg->codec == MW_CODEC_NONE ?
			     0 :
			     mw_codec_bound(cfg->codec, cfg->chunk_size);
	per += s->out_cap;
	s->nchunks = (unsigned)(cfg->window / per);
	if (s->nchunks < 2)
		s->nchunks = 2;
	s->chunks = calloc(s->nchunks, sizeof(*s->chunks));
	s->idle = calloc(cfg->nr_chans, sizeof(*s->idle));
	s->chans = calloc(cfg->nr_chans, sizeof(*s->chans));
	if (!s->chunks || !s->idle || !s->chans)
		return -ENOMEM;
	for (i = 0; i < s->nchunks; i++) {
		struct tx_chunk *c = &s->chunks[i];

		c->raw = mw_buf_alloc(cfg->chunk_size);
		if (s->out_cap)
			c->out = mw_buf_alloc(s->out_cap);
		if (!c->raw || (s->out_cap && !c->out))
			return -ENOMEM;
		c->next_free = s->free_list;
		s->free_list = c;
	}
	for (i = 0; i < cfg->nr_chans; i++) {
		struct tx_chan *ch = &s->chans[i];
		unsigned k;

		ch->s = s;
		ch->idx = i;
		ch->conn.fd = -1;
		atomic_init(&ch->sock, -1);
		ch->efd = mw_efd_new();
		if (ch->efd < 0)
			return ch->efd;
		mw_ctlq_init(&ch->ctlq, ch->efd);
		ch->in_payload = malloc(MW_REVERSE_MAX);
		if (!ch->in_payload)
			return -ENOMEM;
		for (k = 0; k < TX_SLOTS && s->tls; k++) {
			struct tx_slot *sl = &ch->slot[k];

			sl->sealed_cap = mw_tls_seal_bound(
				MW_FRAME_HDR_LEN +
				(s->out_cap > cfg->chunk_size ?
					 s->out_cap :
					 cfg->chunk_size));
			sl->sealed = mw_buf_alloc(sl->sealed_cap);
			if (!sl->sealed)
				return -ENOMEM;
		}
	}
	return 0;
}

static void sender_free(struct sender *s)
{
	unsigned i, k;

	for (i = 0; i < s->nstreams; i++) {
		struct tx_stream *st = s->streams[i];

		if (st->is_sock)
			close(st->in_fd);
		close(st->drain_efd);
		free(st->ready);
		free(st);
	}
	if (s->chans) {
		for (i = 0; i < s->cfg->nr_chans; i++) {
			struct tx_chan *ch = &s->chans[i];

			if (ch->ring_ok)
				mw_ring_destroy(&ch->ring);
			if (ch->conn.rx || ch->conn.fd >= 0)
				mw_conn_destroy(&ch->conn);
			if (ch->efd >= 0) {
				mw_ctlq_destroy(&ch->ctlq);
				close(ch->efd);
			}
			for (k = 0; k < TX_SLOTS; k++) {
				free(ch->slot[k].sealed);
				free(ch->slot[k].ctl);
			}
			free(ch->in_payload);
		}
	}
	if (s->chunks)
		for (i = 0; i < s->nchunks; i++) {
			free(s->chunks[i].raw);
			free(s->chunks[i].out);
		}
	free(s->chunks);
	free(s->idle);
	free(s->chans);
	for (i = 0; i < s->cfg->nr_eps; i++)
		if (s->lfd[i] >= 0) {
			close(s->lfd[i]);
			if (s->cfg->eps[i].type == MW_EP_UNIX)
				unlink(s->cfg->eps[i].addr);
		}
	if (s->tls)
		mw_tls_ctx_free(s->tls);
}

static void snap_fill(struct sender *s, struct mw_stats_snap *sn,
		      struct mw_stats_chan *chs, struct mw_stats_stream *sts,
		      double t0)
{
	unsigned i;

	memset(sn, 0, sizeof(*sn));
	sn->side = "send";
	sn->io = mw_io_name(s->io);
	sn->elapsed = (double)mw_now_ns() / 1e9 - t0;
	sn->nchans = s->cfg->nr_chans;
	sn->chans = chs;
	sn->streams = sts;
	sn->stage_name[0] = "read";
	sn->stage_name[1] = "compress";
	sn->stage_name[2] = "encrypt";
	sn->stage_name[3] = "send";
	sn->stage_cpu[1] = s->pool ? mw_comp_pool_cpu_seconds(s->pool) : 0;
	sn->adaptive = s->cfg->adaptive;
	sn->chunks_adaptive =
		atomic_load_explicit(&s->chunks_adaptive, memory_order_relaxed);
	pthread_mutex_lock(&s->lock);
	sn->nstreams = s->nstreams;
	for (i = 0; i < s->nstreams; i++) {
		struct tx_stream *st = s->streams[i];

		sts[i].kind = st->kind;
		sts[i].fwd = atomic_load_explicit(&st->bytes_fwd,
						  memory_order_relaxed);
		sts[i].rev = atomic_load_explicit(&st->bytes_rev,
						  memory_order_relaxed);
		sn->bytes_raw += sts[i].fwd;
		sn->chunks += st->next_take;
		if (st->reader_started)
			sn->stage_cpu[0] +=
				atomic_load(&st->reader_exited) ?
					st->reader_cpu :
					mw_stats_thread_cpu(st->reader);
	}
	pthread_mutex_unlock(&s->lock);
	for (i = 0; i < s->cfg->nr_chans; i++) {
		struct tx_chan *ch = &s->chans[i];

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
	unsigned i;

	pthread_mutex_lock(&s->lock);
	if (s->close_sent || !s->nstreams) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	for (i = 0; i < s->nstreams; i++) {
		struct tx_stream *st = s->streams[i];

		if (!st->end_claimed || !atomic_load(&st->rev_done)) {
			pthread_mutex_unlock(&s->lock);
			return;
		}
		if (st->kind == MW_SK_MAIN)
			main_seen = true;
		cl.bytes += st->total_bytes;
		cl.chunks += st->total_chunks;
	}
	if (!main_seen) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	for (i = 0; i < cfg->nr_eps; i++) {
		struct pollfd p1 = { .fd = s->lfd[i], .events = POLLIN };

		if (poll(&p1, 1, 0) > 0) {
			pthread_mutex_unlock(&s->lock);
			return; /* a new connection is waiting */
		}
	}
	s->accepting = false;
	s->close_sent = true;
	cl.streams = s->nstreams;
	pthread_mutex_unlock(&s->lock);
	mw_close_encode(p, &cl);
	c = mw_ctl_new(&h, p);
	if (!c) {
		mw_fail_set(&s->fail, -ENOMEM, "out of memory");
		return;
	}
	mw_ctlq_push(&s->chans[0].ctlq, c, 0);
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

	while (!mw_fail_is_set(&s->fail) && !atomic_load(&s->acked)) {
		bool tick = mw_fail_poll(&s->fail, sfd, &next);

		maybe_close(s);
		if (tick) {
			struct mw_stats_snap sn;

			snap_fill(s, &sn, chs, sts, t0);
			mw_stats_write(st, &sn);
		}
	}
}

static int start_streams(struct sender *s)
{
	const struct mw_xp_cfg *cfg = s->cfg;
	int ret;

	if (!cfg->nr_eps) {
		/* exec: QEMU writes into a pipe; at 64 KiB (the default) its
		 * migration thread and our reader take turns every 64 KiB */
		fcntl(cfg->in_fd, F_SETPIPE_SZ, 1 << 20);
		return stream_start(s, 0, cfg->in_fd, cfg->rev_fd, MW_SK_EXEC);
	}
	s->accepting = true;
	ret = pthread_create(&s->acceptor, NULL, acceptor_main, s);
	if (ret)
		return mw_fail_set(&s->fail, -ret, "pthread_create: %s",
				   strerror(ret));
	s->acceptor_started = true;
	return 0;
}

static int listen_endpoints(struct sender *s, struct mw_err *err)
{
	unsigned i;

	for (i = 0; i < s->cfg->nr_eps; i++) {
		s->lfd[i] = mw_ep_listen(&s->cfg->eps[i], err);
		if (s->lfd[i] < 0)
			return s->lfd[i];
	}
	return 0;
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

	/* before any exit through sender_free(), which closes them (and
	 * unlinks their unix paths) */
	for (i = 0; i < MW_ENDPOINTS_MAX; i++)
		s.lfd[i] = -1;
	signal(SIGPIPE, SIG_IGN);
	sfd = mw_signals_block();
	if (sfd < 0)
		return mw_err_set(err, sfd, "signalfd: %s", mw_strerror(sfd));
	ret = mw_ring_select(cfg->io, &s.io, err);
	if (ret)
		goto out_sfd;
	ret = mw_fail_init(&s.fail);
	if (ret)
		goto out_sfd;
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cv, NULL);
	mw_rate_init(&s.rate, cfg->max_bw);
	if (getrandom(s.session, sizeof(s.session), 0) != sizeof(s.session)) {
		ret = mw_err_set(err, -EIO, "getrandom failed");
		goto out;
	}
	ret = listen_endpoints(&s, err);
	if (ret)
		goto out;
	if (cfg->latency_file && !(s.lat = fopen(cfg->latency_file, "we"))) {
		ret = mw_err_set(err, -errno, "latency file %s: %s",
				 cfg->latency_file, strerror(errno));
		goto out;
	}
	if (cfg->tls.mode != MW_TLS_OFF) {
		ret = mw_tls_ctx_new(&s.tls, &cfg->tls, err);
		if (ret)
			goto out;
	}
	ret = sender_alloc(&s);
	if (ret) {
		mw_err_set(err, ret, "allocating buffers: %s",
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
	if (cfg->adaptive)
		mw_comp_pool_newest_first(
			s.pool); /* channels claim the oldest */
	for (i = 0; i < cfg->nr_chans; i++) {
		ret = pthread_create(&s.chans[i].th, NULL, chan_main,
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
		MW_LOG(MW_LOG_INFO, "%u channels up to %s:%u (%s, %s, io %s)",
		       s.nready, cfg->host, cfg->port,
		       cfg->tls.mode == MW_TLS_X509 ? "TLS x509" :
		       cfg->tls.mode == MW_TLS_PSK  ? "TLS PSK" :
						      "no TLS",
		       mw_codec_name(cfg->codec), mw_io_name(s.io));
		start_streams(&s);
	}
	control_loop(&s, sfd, &st, chs, sts, t0);

	/* shutdown: everyone sees the latch or the ack; wake, join, free */
	if (!atomic_load(&s.acked))
		mw_fail_set(&s.fail, -MW_E_CANCEL, "stopped");
	pthread_mutex_lock(&s.lock);
	s.accepting = false;
	pthread_cond_broadcast(&s.cv);
	pthread_mutex_unlock(&s.lock);
	mw_fail_wake(&s.fail);
	for (i = 0; i < cfg->nr_chans; i++) {
		mw_ctlq_stop(&s.chans[i].ctlq);
		mw_efd_poke(s.chans[i].efd);
	}
	if (!atomic_load(&s.acked)) {
		/* channels stuck in a blocking setup step see a dead socket */
		for (i = 0; i < cfg->nr_chans; i++) {
			int fd = atomic_load(&s.chans[i].sock);

			if (fd >= 0)
				shutdown(fd, SHUT_RD);
		}
	}
	for (i = 0; i < cfg->nr_chans; i++)
		if (s.chans[i].started)
			pthread_join(s.chans[i].th, NULL);
	if (s.acceptor_started)
		pthread_join(s.acceptor, NULL);
	mw_comp_pool_stop(s.pool);
	for (i = 0; i < s.nstreams; i++)
		if (s.streams[i]->reader_started)
			pthread_join(s.streams[i]->reader, NULL);
	ret = 0;
	if (!atomic_load(&s.acked)) {
		ret = s.fail.err.code ? s.fail.err.code : -MW_E_CANCEL;
		mw_err_set(err, ret, "%s", s.fail.err.msg);
		/* tell the receiver why, so both sides print the cause */
		for (i = 0; i < cfg->nr_chans; i++)
			if (s.chans[i].conn.fd >= 0 && ret != -MW_E_PEER &&
			    !s.chans[i].dirty && !s.chans[i].io.sending)
				mw_conn_send_error(&s.chans[i].conn,
						   s.fail.err.msg);
	}
	snap_fill(&s, &sn, chs, sts, t0);
	sn.final = true;
	sn.result = ret ? err->msg : "ok";
	mw_stats_write(&st, &sn);
	if (cfg->verbose)
		mw_stats_summary(&sn);
	mw_comp_pool_free(s.pool);
out_stats:
	mw_stats_close(&st);
out:
	if (s.lat)
		fclose(s.lat);
	free(chs);
	sender_free(&s);
	pthread_cond_destroy(&s.cv);
	pthread_mutex_destroy(&s.lock);
	mw_fail_destroy(&s.fail);
out_sfd:
	close(sfd);
	return ret;
}
