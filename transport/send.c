/* SPDX-License-Identifier: MIT */
/*
 * migwire send: input -> chunker -> compress pool -> N channels.
 *
 * DESIGN
 * Threads: the main thread (setup, signals, stats), one reader (mw-read),
 * the compress workers (mw-<codec>N, compress/), and one thread per channel
 * (mw-txN) that owns its socket, TLS session and io_uring ring.
 *
 * A chunk is a fixed pair of buffers from a pool sized by --window. The
 * reader takes a free chunk (blocking while none is free: back-pressure on
 * QEMU), fills it from the input and sends a partial chunk as soon as the
 * input has nothing more to give, stamps the next sequence number and
 * submits it to the compress pool. A finished job parks the chunk in the
 * ready ring at seq % nchunks. Channels take chunks strictly in sequence
 * order (next_take), so sequence numbers grow on every channel and the
 * receiver's window cannot deadlock (docs/protocol.md). Each channel keeps
 * up to two frames in flight: it seals the next chunk while the previous one
 * is in the kernel. A chunk returns to the free list in the send completion
 * handler. Idle channels park on their eventfd; the one that can take the
 * next chunk is poked by whoever made it takeable.
 *
 * The ring indexing is collision-free because the chunks not yet taken are
 * exactly the sequence numbers [next_take, next_seq), fewer than nchunks.
 *
 * All state below `lock` is protected by it; the failure latch and the ack
 * flag are atomics read without it.
 */
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mw_log.h"
#include "mw_thread.h"
#include "mw_xport.h"
#include "stats.h"
#include "xp_int.h"

#define TX_SLOTS 2
#define UD_EFD 1
#define UD_RECV 2
#define UD_SEND0 3

struct sender;

struct tx_chunk {
	uint64_t seq;
	uint8_t *raw;
	uint8_t *out; /* compressed bytes; NULL with codec none */
	uint32_t raw_len;
	struct mw_comp_job job;
	struct sender *s;
	struct tx_chunk *next_free;
};

struct tx_slot {
	bool busy;
	struct tx_chunk *chunk; /* returned to the pool when sent */
	uint8_t hdr[MW_FRAME_HDR_LEN];
	uint8_t ctl[MW_END_LEN];
	uint8_t *sealed; /* TLS: ciphertext buffer */
	size_t sealed_cap;
	struct iovec iov[2];
	struct msghdr msg;
};

struct tx_chan {
	struct sender *s;
	unsigned idx;
	pthread_t th;
	bool started;
	struct mw_conn conn;
	struct io_uring ring;
	bool ring_ok;
	int efd;
	uint64_t efd_buf;
	bool idle;
	unsigned inflight;  /* slots holding a frame, sealed or in the kernel */
	unsigned head;	    /* oldest slot: the only one in the kernel */
	bool sending;	    /* the head slot's send is posted */
	struct tx_slot slot[TX_SLOTS];
	bool recv_posted;
	/* incoming control frame being parsed */
	uint8_t in_hdr[MW_FRAME_HDR_LEN];
	size_t in_have;
	struct mw_frame_hdr in_h;
	bool in_got_hdr;
	uint8_t in_payload[MW_ERROR_MAX];
	atomic_ullong bytes_wire;
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

	pthread_mutex_t lock;
	pthread_cond_t cv; /* free chunk, channel ready */
	unsigned nchunks;
	struct tx_chunk *chunks;
	struct tx_chunk *free_list;
	struct tx_chunk **ready;
	uint64_t next_take;
	bool input_done, end_claimed;
	uint64_t total_chunks, total_bytes;
	unsigned nready;
	unsigned *idle;
	unsigned nidle;

	atomic_bool acked;
	atomic_ullong bytes_in, chunks_read;
	pthread_t reader;
	bool reader_started;
	atomic_bool reader_exited;
	double reader_cpu;
	struct tx_chan *chans;
};

static unsigned long long deadline_after(uint32_t s)
{
	return s ? mw_now_ns() + (unsigned long long)s * 1000000000ull : 0;
}

/* ---- chunk pool and ready ring ---- */

static void wake_idle_locked(struct sender *s)
{
	if (s->nidle) {
		struct tx_chan *ch = &s->chans[s->idle[--s->nidle]];

		ch->idle = false;
		mw_efd_poke(ch->efd);
	}
}

static bool takeable_locked(struct sender *s)
{
	struct tx_chunk *c = s->ready[s->next_take % s->nchunks];

	return (c && c->seq == s->next_take) ||
	       (s->input_done && !s->end_claimed &&
		s->next_take == s->total_chunks);
}

static void chunk_put(struct sender *s, struct tx_chunk *c)
{
	pthread_mutex_lock(&s->lock);
	c->next_free = s->free_list;
	s->free_list = c;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->lock);
}

/* Compress worker: the chunk is ready to be taken. */
static void chunk_compressed(struct mw_comp_job *job)
{
	struct tx_chunk *c = job->opaque;
	struct sender *s = c->s;

	if (job->ret) {
		mw_fail_set(&s->fail, job->ret, "compress chunk %" PRIu64 ": %s",
			    c->seq, job->err.msg);
		return;
	}
	pthread_mutex_lock(&s->lock);
	s->ready[c->seq % s->nchunks] = c;
	if (c->seq == s->next_take)
		wake_idle_locked(s);
	pthread_mutex_unlock(&s->lock);
}

/*
 * Takes the next chunk in sequence order, or claims the END frame (*end).
 * Returns NULL and parks the channel as idle when nothing is takeable.
 */
static struct tx_chunk *chunk_take(struct tx_chan *ch, bool *end)
{
	struct sender *s = ch->s;
	struct tx_chunk *c = NULL;
	unsigned slot;

	*end = false;
	pthread_mutex_lock(&s->lock);
	slot = (unsigned)(s->next_take % s->nchunks);
	if (s->ready[slot] && s->ready[slot]->seq == s->next_take) {
		c = s->ready[slot];
		s->ready[slot] = NULL;
		s->next_take++;
	} else if (s->input_done && !s->end_claimed &&
		   s->next_take == s->total_chunks) {
		s->end_claimed = true;
		*end = true;
	}
	if (c || *end) {
		/* let another idle channel take the one after */
		if (takeable_locked(s))
			wake_idle_locked(s);
	} else if (!ch->idle) {
		ch->idle = true;
		s->idle[s->nidle++] = ch->idx;
	}
	pthread_mutex_unlock(&s->lock);
	return c;
}

/* ---- reader ---- */

/* Fills c from the input: returns bytes (0 at EOF) or -errno. A partial chunk
 * is returned as soon as the input has no more bytes ready: the tail of a
 * migration is written while the VM is stopped. */
static ssize_t chunk_fill(struct sender *s, struct tx_chunk *c)
{
	size_t len = 0, cap = s->cfg->chunk_size;
	struct pollfd p[2] = {
		{ .fd = s->cfg->in_fd, .events = POLLIN },
		{ .fd = s->fail.wake_fd, .events = POLLIN },
	};

	while (len < cap) {
		ssize_t r;
		int n;

		n = poll(p, 2, len ? 0 : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (mw_fail_is_set(&s->fail))
			return -MW_E_CANCEL;
		if (n == 0)
			break; /* input paused: ship what we have */
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = read(s->cfg->in_fd, c->raw + len, cap - len);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		len += (size_t)r;
	}
	return (ssize_t)len;
}

static void *reader_main(void *arg)
{
	struct sender *s = arg;
	uint64_t seq = 0, bytes = 0;

	mw_thread_place("mw-read", &s->cfg->cpus, 0);
	for (;;) {
		struct tx_chunk *c;
		ssize_t n;
		int ret;

		pthread_mutex_lock(&s->lock);
		while (!s->free_list && !mw_fail_is_set(&s->fail))
			pthread_cond_wait(&s->cv, &s->lock);
		c = s->free_list;
		if (c)
			s->free_list = c->next_free;
		pthread_mutex_unlock(&s->lock);
		if (mw_fail_is_set(&s->fail))
			break;
		n = chunk_fill(s, c);
		if (n < 0) {
			if (n != -MW_E_CANCEL)
				mw_fail_set(&s->fail, (int)n, "read input: %s",
					    mw_strerror((int)n));
			break;
		}
		if (n == 0) {
			chunk_put(s, c);
			pthread_mutex_lock(&s->lock);
			s->input_done = true;
			s->total_chunks = seq;
			s->total_bytes = bytes;
			if (takeable_locked(s))
				wake_idle_locked(s);
			pthread_mutex_unlock(&s->lock);
			break;
		}
		c->seq = seq++;
		c->raw_len = (uint32_t)n;
		bytes += (uint64_t)n;
		atomic_store_explicit(&s->bytes_in, bytes, memory_order_relaxed);
		atomic_store_explicit(&s->chunks_read, seq,
				      memory_order_relaxed);
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
	}
	s->reader_cpu = mw_thread_cpu_seconds();
	atomic_store(&s->reader_exited, true);
	return NULL;
}

/* ---- channel ---- */

static int chan_setup(struct tx_chan *ch)
{
	struct sender *s = ch->s;
	const struct mw_xp_cfg *cfg = s->cfg;
	unsigned long long dl = deadline_after(cfg->timeout_s);
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
	char peer[80];
	int fd, ret;

	fd = mw_net_connect(cfg->host, cfg->port, dl, peer, sizeof(peer),
			    &ch->conn.err);
	if (fd < 0)
		return fd;
	mw_net_tune(fd, cfg->timeout_s);
	ret = mw_conn_init(&ch->conn, fd, s->tls);
	if (ret) {
		close(fd);
		ch->conn.fd = -1;
		return ret;
	}
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
	return 0;
}

static void post_efd(struct tx_chan *ch)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ch->ring);

	io_uring_prep_read(sqe, ch->efd, &ch->efd_buf, sizeof(ch->efd_buf), 0);
	io_uring_sqe_set_data64(sqe, UD_EFD);
}

static void post_recv(struct tx_chan *ch)
{
	struct mw_conn *c = &ch->conn;
	struct io_uring_sqe *sqe;

	if (c->rx_off == c->rx_len)
		c->rx_off = c->rx_len = 0;
	if (c->rx_len == c->rx_cap)
		return; /* parse first */
	sqe = io_uring_get_sqe(&ch->ring);
	io_uring_prep_recv(sqe, c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len,
			   0);
	io_uring_sqe_set_data64(sqe, UD_RECV);
	ch->recv_posted = true;
}

static void post_send(struct tx_chan *ch, unsigned i)
{
	struct tx_slot *sl = &ch->slot[i];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ch->ring);

	memset(&sl->msg, 0, sizeof(sl->msg));
	sl->msg.msg_iov = sl->iov[0].iov_len ? sl->iov : sl->iov + 1;
	sl->msg.msg_iovlen = sl->iov[0].iov_len ? 2 : 1;
	if (!sl->iov[1].iov_len)
		sl->msg.msg_iovlen = 1;
	io_uring_prep_sendmsg(sqe, ch->conn.fd, &sl->msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD_SEND0 + i);
}

/* Builds the frame for a chunk (or END when c is NULL) into slot i. */
static int slot_fill(struct tx_chan *ch, unsigned i, struct tx_chunk *c)
{
	struct sender *s = ch->s;
	struct tx_slot *sl = &ch->slot[i];
	struct mw_frame_hdr h = { 0 };
	const void *payload;
	struct iovec plain[2];
	ssize_t n;

	if (c) {
		h.type = MW_FT_DATA;
		h.codec = (uint8_t)s->cfg->codec;
		h.seq = c->seq;
		h.raw_len = c->raw_len;
		h.csum = c->job.csum;
		if (c->job.raw) {
			h.flags = MW_F_RAW;
			h.wire_len = c->raw_len;
			payload = c->raw;
		} else {
			h.wire_len = (uint32_t)c->job.out_len;
			payload = c->out;
		}
	} else {
		struct mw_end e = { .bytes = s->total_bytes,
				    .chunks = s->total_chunks };

		h.type = MW_FT_END;
		h.wire_len = MW_END_LEN;
		mw_end_encode(sl->ctl, &e);
		payload = sl->ctl;
	}
	mw_frame_hdr_encode(sl->hdr, &h);
	sl->chunk = c;
	sl->busy = true;
	plain[0] = (struct iovec){ sl->hdr, sizeof(sl->hdr) };
	plain[1] = (struct iovec){ (void *)(uintptr_t)payload, h.wire_len };
	if (!ch->conn.tls) {
		sl->iov[0] = plain[0];
		sl->iov[1] = plain[1];
		mw_rate_take(&s->rate, sizeof(sl->hdr) + h.wire_len);
		return 0;
	}
	n = mw_tls_seal(ch->conn.tls, plain, 2, sl->sealed, sl->sealed_cap,
			&ch->conn.err);
	if (n < 0)
		return (int)n;
	sl->iov[0] = (struct iovec){ NULL, 0 };
	sl->iov[1] = (struct iovec){ sl->sealed, (size_t)n };
	mw_rate_take(&s->rate, (size_t)n);
	return 0;
}

/*
 * Two sends on one socket may not be in the kernel at once: a short send
 * would let the second one's bytes in between. So only the head slot is
 * posted; the other is sealed meanwhile and goes when the head is done.
 */
static void kick_send(struct tx_chan *ch)
{
	if (!ch->sending && ch->slot[ch->head].busy) {
		ch->sending = true;
		post_send(ch, ch->head);
	}
}

/* Send completion: resubmits the rest of a short send, else frees the slot. */
static int slot_sent(struct tx_chan *ch, unsigned i, int res)
{
	struct tx_slot *sl = &ch->slot[i];
	size_t left = (size_t)res;
	unsigned k;

	if (res < 0)
		return mw_err_set(&ch->conn.err, res, "send: %s",
				  mw_strerror(res));
	atomic_fetch_add_explicit(&ch->bytes_wire, (unsigned long long)res,
				  memory_order_relaxed);
	for (k = 0; k < 2; k++) {
		size_t take = left < sl->iov[k].iov_len ? left :
							   sl->iov[k].iov_len;

		sl->iov[k].iov_base = (uint8_t *)sl->iov[k].iov_base + take;
		sl->iov[k].iov_len -= take;
		left -= take;
	}
	if (sl->iov[0].iov_len || sl->iov[1].iov_len) {
		post_send(ch, i);
		return 0;
	}
	sl->busy = false;
	ch->sending = false;
	ch->inflight--;
	ch->head = (ch->head + 1) % TX_SLOTS;
	if (sl->chunk)
		chunk_put(ch->s, sl->chunk);
	sl->chunk = NULL;
	kick_send(ch);
	return 0;
}

/* Parses control frames from the receiver: ACK or ERROR. */
static int chan_parse_rx(struct tx_chan *ch)
{
	struct sender *s = ch->s;

	for (;;) {
		bool closed = false;
		ssize_t r;

		if (!ch->in_got_hdr) {
			r = mw_conn_read_buffered(&ch->conn,
						  ch->in_hdr + ch->in_have,
						  sizeof(ch->in_hdr) - ch->in_have,
						  &closed);
		} else {
			r = mw_conn_read_buffered(&ch->conn,
						  ch->in_payload + ch->in_have,
						  ch->in_h.wire_len - ch->in_have,
						  &closed);
		}
		if (r < 0)
			return (int)r;
		if (closed)
			return atomic_load(&s->acked) ? 0 :
			       mw_err_set(&ch->conn.err, -MW_E_CLOSED,
					  "receiver closed the TLS session");
		if (r == 0 && !(ch->in_got_hdr && !ch->in_h.wire_len))
			return 0;
		ch->in_have += (size_t)r;
		if (!ch->in_got_hdr) {
			if (ch->in_have < sizeof(ch->in_hdr))
				continue;
			if (mw_frame_hdr_decode(ch->in_hdr, sizeof(ch->in_hdr),
						MW_ERROR_MAX, &ch->in_h))
				return mw_err_set(&ch->conn.err, -MW_E_PROTO,
						  "malformed frame from receiver");
			ch->in_got_hdr = true;
			ch->in_have = 0;
		}
		if (ch->in_have < ch->in_h.wire_len)
			continue;
		ch->in_got_hdr = false;
		ch->in_have = 0;
		if (ch->in_h.type == MW_FT_ERROR)
			return mw_err_set(&ch->conn.err, -MW_E_PEER,
					  "receiver failed: %.*s",
					  (int)ch->in_h.wire_len,
					  (char *)ch->in_payload);
		if (ch->in_h.type == MW_FT_ACK) {
			struct mw_ack a;

			mw_ack_decode(ch->in_payload, ch->in_h.wire_len, &a);
			pthread_mutex_lock(&s->lock);
			if (!s->input_done || a.bytes != s->total_bytes ||
			    a.chunks != s->total_chunks) {
				pthread_mutex_unlock(&s->lock);
				return mw_err_set(&ch->conn.err, -MW_E_CORRUPT,
						  "receiver acknowledged %" PRIu64
						  " bytes, %" PRIu64 " sent",
						  a.bytes, s->total_bytes);
			}
			pthread_mutex_unlock(&s->lock);
			atomic_store(&s->acked, true);
			mw_fail_wake(&s->fail);
			continue;
		}
		return mw_err_set(&ch->conn.err, -MW_E_PROTO,
				  "unexpected %s frame from receiver",
				  mw_frame_type_name(ch->in_h.type));
	}
}

static int chan_loop(struct tx_chan *ch)
{
	struct sender *s = ch->s;
	int ret;

	post_efd(ch);
	post_recv(ch);
	while (!mw_fail_is_set(&s->fail) && !atomic_load(&s->acked)) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;

		while (ch->inflight < TX_SLOTS) {
			struct tx_chunk *c;
			bool end;
			unsigned i = (ch->head + ch->inflight) % TX_SLOTS;

			c = chunk_take(ch, &end);
			if (!c && !end)
				break;
			ret = slot_fill(ch, i, c);
			if (ret) {
				if (c)
					chunk_put(s, c);
				return ret;
			}
			ch->inflight++;
			kick_send(ch);
		}
		ret = io_uring_submit_and_wait(&ch->ring, 1);
		if (ret < 0 && ret != -EINTR)
			return mw_err_set(&ch->conn.err, ret, "io_uring: %s",
					  mw_strerror(ret));
		io_uring_for_each_cqe(&ch->ring, head, cqe) {
			uint64_t ud = io_uring_cqe_get_data64(cqe);
			int res = cqe->res;

			seen++;
			if (ud == UD_EFD) {
				post_efd(ch);
			} else if (ud == UD_RECV) {
				ch->recv_posted = false;
				if (res == 0) {
					if (atomic_load(&s->acked))
						break;
					return mw_err_set(&ch->conn.err,
							  -MW_E_CLOSED,
							  "receiver closed the "
							  "connection");
				}
				if (res < 0)
					return mw_err_set(&ch->conn.err, res,
							  "recv: %s",
							  mw_strerror(res));
				ch->conn.rx_len += (size_t)res;
				ret = chan_parse_rx(ch);
				if (ret)
					return ret;
				post_recv(ch);
			} else {
				ret = slot_sent(ch, (unsigned)(ud - UD_SEND0),
						res);
				if (ret)
					return ret;
			}
		}
		io_uring_cq_advance(&ch->ring, seen);
	}
	return 0;
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
	pthread_mutex_lock(&s->lock);
	if (!ret)
		s->nready++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->lock);
	if (!ret) {
		ret = io_uring_queue_init(4 * TX_SLOTS + 4, &ch->ring, 0);
		if (ret)
			mw_err_set(&ch->conn.err, ret, "io_uring setup: %s",
				   mw_strerror(ret));
		else
			ch->ring_ok = true;
	}
	if (!ret)
		ret = chan_loop(ch);
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
		     0 : mw_codec_bound(cfg->codec, cfg->chunk_size);
	per += s->out_cap;
	s->nchunks = (unsigned)(cfg->window / per);
	if (s->nchunks < 2)
		s->nchunks = 2;
	s->chunks = calloc(s->nchunks, sizeof(*s->chunks));
	s->ready = calloc(s->nchunks, sizeof(*s->ready));
	s->idle = calloc(cfg->nr_chans, sizeof(*s->idle));
	s->chans = calloc(cfg->nr_chans, sizeof(*s->chans));
	if (!s->chunks || !s->ready || !s->idle || !s->chans)
		return -ENOMEM;
	for (i = 0; i < s->nchunks; i++) {
		struct tx_chunk *c = &s->chunks[i];

		c->s = s;
		c->raw = malloc(cfg->chunk_size);
		if (s->out_cap)
			c->out = malloc(s->out_cap);
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
		ch->efd = mw_efd_new();
		if (ch->efd < 0)
			return ch->efd;
		for (k = 0; k < TX_SLOTS && s->tls; k++) {
			struct tx_slot *sl = &ch->slot[k];

			sl->sealed_cap = mw_tls_seal_bound(
				MW_FRAME_HDR_LEN + (s->out_cap > cfg->chunk_size ?
						    s->out_cap : cfg->chunk_size));
			sl->sealed = malloc(sl->sealed_cap);
			if (!sl->sealed)
				return -ENOMEM;
		}
	}
	return 0;
}

static void sender_free(struct sender *s)
{
	unsigned i, k;

	if (s->chans) {
		for (i = 0; i < s->cfg->nr_chans; i++) {
			struct tx_chan *ch = &s->chans[i];

			if (ch->ring_ok)
				io_uring_queue_exit(&ch->ring);
			if (ch->conn.rx || ch->conn.fd >= 0)
				mw_conn_destroy(&ch->conn);
			if (ch->efd >= 0)
				close(ch->efd);
			for (k = 0; k < TX_SLOTS; k++)
				free(ch->slot[k].sealed);
		}
	}
	if (s->chunks)
		for (i = 0; i < s->nchunks; i++) {
			free(s->chunks[i].raw);
			free(s->chunks[i].out);
		}
	free(s->chunks);
	free(s->ready);
	free(s->idle);
	free(s->chans);
	if (s->tls)
		mw_tls_ctx_free(s->tls);
}

static void snap_fill(struct sender *s, struct mw_stats_snap *sn,
		      struct mw_stats_chan *chs, double t0)
{
	unsigned i;

	memset(sn, 0, sizeof(*sn));
	sn->side = "send";
	sn->elapsed = (double)mw_now_ns() / 1e9 - t0;
	sn->bytes_raw = atomic_load_explicit(&s->bytes_in, memory_order_relaxed);
	sn->chunks = atomic_load_explicit(&s->chunks_read, memory_order_relaxed);
	sn->nchans = s->cfg->nr_chans;
	sn->chans = chs;
	sn->stage_name[0] = "read";
	sn->stage_name[1] = "compress";
	sn->stage_name[2] = "tx";
	sn->stage_cpu[0] = !s->reader_started ? 0 :
			   atomic_load(&s->reader_exited) ? s->reader_cpu :
			   mw_stats_thread_cpu(s->reader);
	sn->stage_cpu[1] = s->pool ? mw_comp_pool_cpu_seconds(s->pool) : 0;
	for (i = 0; i < s->cfg->nr_chans; i++) {
		struct tx_chan *ch = &s->chans[i];

		chs[i].bytes = atomic_load_explicit(&ch->bytes_wire,
						    memory_order_relaxed);
		chs[i].cpu = !ch->started ? 0 :
			     atomic_load(&ch->exited) ? ch->cpu_final :
			     mw_stats_thread_cpu(ch->th);
		sn->bytes_wire += chs[i].bytes;
		sn->stage_cpu[2] += chs[i].cpu;
	}
}

/* Waits for the session to end: ack, failure or signal. Writes stats. */
static void control_loop(struct sender *s, int sfd, struct mw_stats *st,
			 struct mw_stats_chan *chs, double t0)
{
	struct pollfd p[2] = { { .fd = sfd, .events = POLLIN },
			       { .fd = s->fail.wake_fd, .events = POLLIN } };
	unsigned long long next = mw_now_ns() + 1000000000ull;

	while (!mw_fail_is_set(&s->fail) && !atomic_load(&s->acked)) {
		unsigned long long now = mw_now_ns();
		int ms = now >= next ? 0 : (int)((next - now) / 1000000ull) + 1;

		if (poll(p, 2, ms) > 0 && (p[0].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				mw_fail_set(&s->fail, -MW_E_CANCEL,
					    "interrupted by %s",
					    strsignal((int)si.ssi_signo));
		}
		if (mw_now_ns() >= next) {
			struct mw_stats_snap sn;

			snap_fill(s, &sn, chs, t0);
			mw_stats_write(st, &sn);
			next += 1000000000ull;
		}
	}
}

int mw_xp_send_run(const struct mw_xp_cfg *cfg, struct mw_err *err)
{
	struct sender s = { .cfg = cfg };
	struct mw_stats st;
	struct mw_stats_chan *chs = NULL;
	struct mw_stats_snap sn;
	double t0 = (double)mw_now_ns() / 1e9;
	int sfd, ret;
	unsigned i;

	signal(SIGPIPE, SIG_IGN);
	sfd = mw_signals_block();
	if (sfd < 0)
		return mw_err_set(err, sfd, "signalfd: %s", mw_strerror(sfd));
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
	if (cfg->tls.mode != MW_TLS_OFF) {
		ret = mw_tls_ctx_new(&s.tls, &cfg->tls, err);
		if (ret)
			goto out;
	}
	ret = sender_alloc(&s);
	if (ret) {
		mw_err_set(err, ret, "allocating buffers: %s", mw_strerror(ret));
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
			       s.nchunks, cfg->codec == MW_CODEC_ZSTD ? "mw-zstd" :
			       cfg->codec == MW_CODEC_ZLIB ? "mw-zlib" : "mw-sum",
			       &cfg->cpus, 1);
	if (ret) {
		mw_err_set(err, ret, "compress pool: %s", mw_strerror(ret));
		goto out_stats;
	}
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
	pthread_mutex_lock(&s.lock);
	while (s.nready < cfg->nr_chans && !mw_fail_is_set(&s.fail))
		pthread_cond_wait(&s.cv, &s.lock);
	pthread_mutex_unlock(&s.lock);
	MW_LOG(MW_LOG_INFO, "%u channels up to %s:%u (%s, %s)",
	       s.nready, cfg->host, cfg->port,
	       cfg->tls.mode == MW_TLS_X509 ? "TLS x509" :
	       cfg->tls.mode == MW_TLS_PSK ? "TLS PSK" : "no TLS",
	       mw_codec_name(cfg->codec));
	if (!mw_fail_is_set(&s.fail)) {
		ret = pthread_create(&s.reader, NULL, reader_main, &s);
		if (ret)
			mw_fail_set(&s.fail, -ret, "pthread_create: %s",
				    strerror(ret));
		else
			s.reader_started = true;
	}
	control_loop(&s, sfd, &st, chs, t0);

	/* shutdown: everyone sees the latch or the ack; wake, join, free */
	pthread_mutex_lock(&s.lock);
	pthread_cond_broadcast(&s.cv);
	pthread_mutex_unlock(&s.lock);
	for (i = 0; i < cfg->nr_chans; i++)
		mw_efd_poke(s.chans[i].efd);
	if (mw_fail_is_set(&s.fail) && !atomic_load(&s.acked)) {
		/* channels stuck in a blocking setup step see a dead socket */
		for (i = 0; i < cfg->nr_chans; i++)
			if (s.chans[i].conn.fd >= 0)
				shutdown(s.chans[i].conn.fd, SHUT_RD);
	}
	for (i = 0; i < cfg->nr_chans; i++)
		if (s.chans[i].started)
			pthread_join(s.chans[i].th, NULL);
	if (s.reader_started) {
		if (!atomic_load(&s.acked))
			mw_fail_set(&s.fail, -MW_E_CANCEL, "stopped");
		pthread_join(s.reader, NULL);
	}
	ret = 0;
	if (!atomic_load(&s.acked)) {
		ret = s.fail.err.code ? s.fail.err.code : -MW_E_CANCEL;
		mw_err_set(err, ret, "%s", s.fail.err.msg);
		/* tell the receiver why, so both sides print the cause */
		for (i = 0; i < cfg->nr_chans; i++)
			if (s.chans[i].conn.fd >= 0 && ret != -MW_E_PEER)
				mw_conn_send_error(&s.chans[i].conn,
						   s.fail.err.msg);
	}
	snap_fill(&s, &sn, chs, t0);
	sn.final = true;
	sn.result = ret ? err->msg : "ok";
	mw_stats_write(&st, &sn);
	if (cfg->verbose)
		mw_stats_summary(&sn);
	mw_comp_pool_free(s.pool);
out_stats:
	mw_stats_close(&st);
out:
	free(chs);
	sender_free(&s);
	pthread_cond_destroy(&s.cv);
	pthread_mutex_destroy(&s.lock);
	mw_fail_destroy(&s.fail);
out_sfd:
	close(sfd);
	return ret;
}
