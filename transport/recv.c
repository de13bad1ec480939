/* SPDX-License-Identifier: MIT */
/*
 * migwire recv: N channels -> decompress pool -> reorder -> output.
 *
 * DESIGN
 * Threads: the main thread (signals, stats, teardown), the listener
 * (mw-listen), one thread per accepted connection (mw-rxhs while it
 * authenticates, then mw-rxN), the decompress workers (compress/) and the
 * writer (mw-write).
 *
 * A connection is admitted only after TLS and a HELLO that matches the
 * session (the first admitted HELLO defines it). A connection that fails
 * either step gets an ERROR frame, is closed and never touches session state.
 * At most MAX_PENDING connections may be authenticating at once; more are
 * closed at once. When all channels have joined, the listening socket closes.
 *
 * The window is nslots chunk slots indexed by seq % nslots. A channel that
 * reads a DATA header claims slot seq % nslots only when seq lies in
 * [next_write, next_write + nslots); otherwise it stops reading (stalled)
 * until the writer frees a slot. Because the sender hands chunks to channels
 * in sequence order, the chunk next_write is always at the head of some
 * channel, so this cannot deadlock, and memory stays bounded by the window.
 * Payloads land in the slot (wire or raw buffer); a decompress job inflates
 * and verifies the XXH3 checksum; only then is the slot READY. The writer
 * writes READY slots strictly in order, so nothing unverified or out of
 * order ever reaches the output. After END's totals are written it closes
 * the output and every channel sends ACK.
 *
 * Session state below `lock` is protected by it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mw_log.h"
#include "mw_thread.h"
#include "mw_xport.h"
#include "stats.h"
#include "xp_int.h"

#define MAX_PENDING 16
#define MAX_LIVE (MW_CHANNELS_MAX + MAX_PENDING)
#define UD_EFD 1
#define UD_RECV 2

enum slot_state { SLOT_FREE, SLOT_FILLING, SLOT_DECODING, SLOT_READY };
enum rx_phase { PH_HDR, PH_SLOT, PH_PAYLOAD, PH_CTRL };

struct receiver;

struct rx_slot {
	uint64_t seq;
	enum slot_state state;
	uint8_t *wire; /* compressed payload; NULL with codec none */
	uint8_t *raw;
	uint32_t raw_len;
	struct mw_comp_job job;
	struct receiver *r;
};

struct rx_chan {
	struct receiver *r;
	int idx; /* -1 until admitted */
	pthread_t th;
	struct mw_conn conn;
	struct io_uring ring;
	bool ring_ok;
	int efd;
	uint64_t efd_buf;
	bool stalled;
	bool ack_sent;
	/* frame being parsed */
	enum rx_phase phase;
	uint8_t hdr[MW_FRAME_HDR_LEN];
	size_t have;
	struct mw_frame_hdr h;
	struct rx_slot *slot;
	uint8_t *dst;
	size_t need;
	uint8_t ctl[MW_ERROR_MAX + 1];
	atomic_ullong bytes_wire;
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
	pthread_t listener, writer;
	bool listener_started, writer_started;

	pthread_mutex_t lock;
	pthread_cond_t cv; /* writer: slot ready, END, failure */
	pthread_cond_t live_cv;
	bool have_session;
	struct mw_hello sess;
	unsigned long long first_join_ns;
	struct rx_chan *chans[MW_CHANNELS_MAX]; /* admitted, by index */
	unsigned joined;
	struct rx_chan *live[MAX_LIVE]; /* every connection thread */
	unsigned nlive, npending;
	unsigned nslots;
	struct rx_slot *slots;
	size_t wire_cap;
	uint64_t next_write;
	bool ended;
	struct mw_end end;
	bool complete;	 /* output written and closed */
	atomic_bool done; /* complete and every channel finished */
	atomic_ullong bytes_out, chunks_out;
	double writer_cpu;
	atomic_bool writer_exited;
};

static unsigned long long deadline_after(uint32_t s)
{
	return s ? mw_now_ns() + (unsigned long long)s * 1000000000ull : 0;
}

/* ---- session setup (first admitted HELLO) ---- */

static int session_init_locked(struct receiver *r, const struct mw_hello *h,
			       struct mw_err *err)
{
	const struct mw_xp_cfg *cfg = r->cfg;
	enum mw_codec codec = (enum mw_codec)h->codec;
	size_t per;
	unsigned i;
	int ret;

	r->wire_cap = codec == MW_CODEC_NONE ? 0 :
		      mw_codec_bound(codec, h->chunk_size);
	per = h->chunk_size + r->wire_cap;
	r->nslots = (unsigned)(cfg->window / per);
	if (r->nslots < 2)
		r->nslots = 2;
	r->slots = calloc(r->nslots, sizeof(*r->slots));
	if (!r->slots)
		return mw_err_set(err, -ENOMEM, "out of memory");
	for (i = 0; i < r->nslots; i++) {
		struct rx_slot *s = &r->slots[i];

		s->r = r;
		s->raw = malloc(h->chunk_size);
		if (r->wire_cap)
			s->wire = malloc(r->wire_cap);
		if (!s->raw || (r->wire_cap && !s->wire))
			return mw_err_set(err, -ENOMEM,
					  "out of memory for a %u-slot window",
					  r->nslots);
	}
	ret = mw_comp_pool_new(&r->pool, codec, mw_codec_level_default(codec),
			       cfg->threads, r->nslots,
			       codec == MW_CODEC_ZSTD ? "mw-unzstd" :
			       codec == MW_CODEC_ZLIB ? "mw-unzlib" : "mw-sum",
			       &cfg->cpus, 1);
	if (ret)
		return mw_err_set(err, ret, "decompress pool: %s",
				  mw_strerror(ret));
	r->sess = *h;
	r->have_session = true;
	r->first_join_ns = mw_now_ns();
	MW_LOG(MW_LOG_INFO, "session: %u channels, %s, chunk %u, window %u slots",
	       h->chan_count, mw_codec_name(codec), h->chunk_size, r->nslots);
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
				  "receiver speaks %u)", h->version,
				  MW_PROTO_VERSION);
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
		return mw_err_set(err, -MW_E_PROTO,
				  "channel parameters differ from the session's");
	if (r->chans[h->chan_index])
		return mw_err_set(err, -MW_E_PROTO, "channel %u joined twice",
				  h->chan_index);
	return 0;
}

/* ---- writer ---- */

static void wake_stalled_locked(struct receiver *r)
{
	unsigned i;

	for (i = 0; i < r->sess.chan_count; i++) {
		struct rx_chan *ch = r->chans[i];

		if (ch && ch->stalled) {
			ch->stalled = false;
			mw_efd_poke(ch->efd);
		}
	}
}

static void poke_all_locked(struct receiver *r)
{
	unsigned i;

	for (i = 0; i < r->nlive; i++)
		mw_efd_poke(r->live[i]->efd);
}

static bool writer_can_go_locked(struct receiver *r)
{
	struct rx_slot *s;

	if (mw_fail_is_set(&r->fail))
		return true;
	if (!r->have_session)
		return false;
	if (r->ended && r->next_write == r->end.chunks)
		return true;
	s = &r->slots[r->next_write % r->nslots];
	return s->state == SLOT_READY && s->seq == r->next_write;
}

static int writer_finish_locked(struct receiver *r)
{
	uint64_t bytes = atomic_load(&r->bytes_out);

	if (bytes != r->end.bytes)
		return mw_fail_set(&r->fail, -MW_E_CORRUPT,
				   "stream length mismatch: wrote %" PRIu64
				   " bytes, sender sent %" PRIu64, bytes,
				   r->end.bytes);
	if (close(r->cfg->out_fd))
		return mw_fail_set(&r->fail, -errno, "closing output: %s",
				   strerror(errno));
	r->complete = true;
	poke_all_locked(r);
	mw_fail_wake(&r->fail);
	return 0;
}

static void *writer_main(void *arg)
{
	struct receiver *r = arg;
	uint64_t bytes = 0;

	mw_thread_place("mw-write", &r->cfg->cpus, 0);
	pthread_mutex_lock(&r->lock);
	for (;;) {
		struct rx_slot *s;
		int ret;

		while (!writer_can_go_locked(r))
			pthread_cond_wait(&r->cv, &r->lock);
		if (mw_fail_is_set(&r->fail))
			break;
		if (r->ended && r->next_write == r->end.chunks) {
			writer_finish_locked(r);
			break;
		}
		s = &r->slots[r->next_write % r->nslots];
		pthread_mutex_unlock(&r->lock);
		ret = mw_write_all(r->cfg->out_fd, s->raw, s->raw_len);
		pthread_mutex_lock(&r->lock);
		if (ret) {
			mw_fail_set(&r->fail, ret, "write output: %s%s",
				    mw_strerror(ret), ret == -EPIPE ?
				    " (the destination QEMU closed its input)" :
				    "");
			break;
		}
		bytes += s->raw_len;
		atomic_store_explicit(&r->bytes_out, bytes,
				      memory_order_relaxed);
		s->state = SLOT_FREE;
		r->next_write++;
		atomic_store_explicit(&r->chunks_out, r->next_write,
				      memory_order_relaxed);
		wake_stalled_locked(r);
	}
	pthread_mutex_unlock(&r->lock);
	r->writer_cpu = mw_thread_cpu_seconds();
	atomic_store(&r->writer_exited, true);
	return NULL;
}

/* Decompress worker: the slot is verified (or the session fails). */
static void slot_decoded(struct mw_comp_job *job)
{
	struct rx_slot *s = job->opaque;
	struct receiver *r = s->r;

	if (job->ret) {
		mw_fail_set(&r->fail, job->ret, "chunk %" PRIu64 ": %s", s->seq,
			    job->err.msg);
		pthread_mutex_lock(&r->lock);
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->lock);
		return;
	}
	pthread_mutex_lock(&r->lock);
	s->state = SLOT_READY;
	if (s->seq == r->next_write)
		pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
}

/* ---- channel data path ---- */

#define NEED_IO 1
#define STALL 2

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

/* Header decoded: claim a slot inside the window, or stall. */
static int claim_slot(struct rx_chan *ch)
{
	struct receiver *r = ch->r;
	const struct mw_frame_hdr *h = &ch->h;
	struct rx_slot *s;

	pthread_mutex_lock(&r->lock);
	if (r->ended && h->seq >= r->end.chunks) {
		pthread_mutex_unlock(&r->lock);
		return chan_err(ch, -MW_E_PROTO, "chunk %" PRIu64
				" beyond the end of the stream", h->seq);
	}
	if (h->seq < r->next_write) {
		pthread_mutex_unlock(&r->lock);
		return chan_err(ch, -MW_E_PROTO, "duplicate chunk %" PRIu64,
				h->seq);
	}
	if (h->seq >= r->next_write + r->nslots) {
		ch->stalled = true;
		pthread_mutex_unlock(&r->lock);
		return STALL;
	}
	s = &r->slots[h->seq % r->nslots];
	if (s->state != SLOT_FREE) {
		pthread_mutex_unlock(&r->lock);
		return chan_err(ch, -MW_E_PROTO, "duplicate chunk %" PRIu64,
				h->seq);
	}
	s->state = SLOT_FILLING;
	s->seq = h->seq;
	s->raw_len = h->raw_len;
	pthread_mutex_unlock(&r->lock);
	ch->slot = s;
	ch->dst = (h->flags & MW_F_RAW) ? s->raw : s->wire;
	ch->need = h->wire_len;
	ch->phase = PH_PAYLOAD;
	return 0;
}

static int header_done(struct rx_chan *ch)
{
	struct receiver *r = ch->r;
	struct mw_frame_hdr *h = &ch->h;
	uint32_t maxp = r->sess.chunk_size;
	int ret;

	ret = mw_frame_hdr_decode(ch->hdr, sizeof(ch->hdr),
				  maxp > MW_ERROR_MAX ? maxp : MW_ERROR_MAX, h);
	if (ret)
		return chan_err(ch, ret, "malformed frame header");
	ch->have = 0;
	switch (h->type) {
	case MW_FT_DATA:
		if (h->stream != 0)
			return chan_err(ch, -MW_E_PROTO,
					"unknown stream %#x", h->stream);
		if (h->raw_len > r->sess.chunk_size)
			return chan_err(ch, -MW_E_PROTO,
					"chunk of %u bytes exceeds the session's "
					"chunk size %u", h->raw_len,
					r->sess.chunk_size);
		if (!(h->flags & MW_F_RAW) &&
		    (h->codec != r->sess.codec || !r->wire_cap))
			return chan_err(ch, -MW_E_PROTO,
					"chunk uses codec %u, session has %u",
					h->codec, r->sess.codec);
		ch->phase = PH_SLOT;
		return claim_slot(ch);
	case MW_FT_END:
	case MW_FT_ERROR:
		ch->dst = ch->ctl;
		ch->need = h->wire_len;
		ch->phase = PH_CTRL;
		return 0;
	default:
		return chan_err(ch, -MW_E_PROTO, "unexpected %s frame",
				mw_frame_type_name(h->type));
	}
}

static int payload_done(struct rx_chan *ch)
{
	struct rx_slot *s = ch->slot;
	struct receiver *r = ch->r;
	int ret;

	memset(&s->job, 0, sizeof(s->job));
	s->job.dir = MW_COMP_DECOMPRESS;
	s->job.raw = ch->h.flags & MW_F_RAW;
	s->job.src = s->job.raw ? s->raw : s->wire;
	s->job.src_len = ch->h.wire_len;
	s->job.dst = s->raw;
	s->job.dst_cap = r->sess.chunk_size;
	s->job.raw_len = ch->h.raw_len;
	s->job.csum = ch->h.csum;
	s->job.done = slot_decoded;
	s->job.opaque = s;
	pthread_mutex_lock(&r->lock);
	s->state = SLOT_DECODING;
	pthread_mutex_unlock(&r->lock);
	ch->slot = NULL;
	ch->phase = PH_HDR;
	ret = mw_comp_pool_submit(r->pool, &s->job);
	return ret ? chan_err(ch, ret, "decompress queue: %s",
			      mw_strerror(ret)) : 0;
}

static int ctrl_done(struct rx_chan *ch)
{
	struct receiver *r = ch->r;
	struct mw_end e;

	ch->phase = PH_HDR;
	if (ch->h.type == MW_FT_ERROR) {
		ch->ctl[ch->h.wire_len] = '\0';
		return chan_err(ch, -MW_E_PEER, "sender failed: %s",
				(char *)ch->ctl);
	}
	if (mw_end_decode(ch->ctl, ch->h.wire_len, &e))
		return chan_err(ch, -MW_E_PROTO, "malformed END frame");
	pthread_mutex_lock(&r->lock);
	if (r->ended || e.chunks < r->next_write) {
		pthread_mutex_unlock(&r->lock);
		return chan_err(ch, -MW_E_PROTO, "unexpected END frame");
	}
	r->ended = true;
	r->end = e;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/*
 * Consumes buffered bytes until it needs I/O (NEED_IO; ch->dst/need name
 * where plaintext must go), must wait for the window (STALL), or fails.
 */
static int chan_process(struct rx_chan *ch)
{
	for (;;) {
		uint8_t *dst;
		size_t want;
		bool closed;
		ssize_t n;
		int ret;

		if (ch->phase == PH_SLOT) {
			ret = claim_slot(ch);
			if (ret)
				return ret;
			continue;
		}
		if (ch->phase == PH_HDR) {
			dst = ch->hdr + ch->have;
			want = sizeof(ch->hdr) - ch->have;
		} else {
			dst = ch->dst;
			want = ch->need;
		}
		if (want) {
			n = mw_conn_read_buffered(&ch->conn, dst, want, &closed);
			if (n < 0)
				return (int)n;
			if (closed)
				return chan_err(ch, -MW_E_CLOSED,
						"sender closed the TLS session "
						"before the end of the stream");
			if (n == 0)
				return NEED_IO;
		} else {
			n = 0;
		}
		if (ch->phase == PH_HDR) {
			ch->have += (size_t)n;
			if (ch->have < sizeof(ch->hdr))
				continue;
			ret = header_done(ch);
		} else {
			ch->dst += n;
			ch->need -= (size_t)n;
			atomic_fetch_add_explicit(&ch->bytes_wire,
						  (unsigned long long)n,
						  memory_order_relaxed);
			if (ch->need)
				continue;
			ret = ch->phase == PH_PAYLOAD ? payload_done(ch) :
							ctrl_done(ch);
		}
		if (ret)
			return ret;
	}
}

static void post_efd(struct rx_chan *ch)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ch->ring);

	io_uring_prep_read(sqe, ch->efd, &ch->efd_buf, sizeof(ch->efd_buf), 0);
	io_uring_sqe_set_data64(sqe, UD_EFD);
}

/* Posts one recv: plaintext straight into its destination, ciphertext into
 * the connection buffer. Returns where plaintext bytes went (or NULL). */
static uint8_t *post_recv(struct rx_chan *ch)
{
	struct mw_conn *c = &ch->conn;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ch->ring);
	uint8_t *dst;
	size_t len;

	if (!c->tls) {
		dst = ch->phase == PH_HDR ? ch->hdr + ch->have : ch->dst;
		len = ch->phase == PH_HDR ? sizeof(ch->hdr) - ch->have :
					    ch->need;
	} else {
		if (c->rx_off == c->rx_len)
			c->rx_off = c->rx_len = 0;
		if (c->rx_off && c->rx_cap - c->rx_len < 16384) {
			memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
			c->rx_len -= c->rx_off;
			c->rx_off = 0;
		}
		dst = c->rx + c->rx_len;
		len = c->rx_cap - c->rx_len;
	}
	io_uring_prep_recv(sqe, c->fd, dst, len, 0);
	io_uring_sqe_set_data64(sqe, UD_RECV);
	return c->tls ? NULL : dst;
}

/* Accounts plaintext that a direct recv wrote at its destination. */
static int plain_received(struct rx_chan *ch, size_t n)
{
	/* mirror of chan_process's bookkeeping for bytes that skipped rx */
	if (ch->phase == PH_HDR) {
		ch->have += n;
		return ch->have == sizeof(ch->hdr) ? header_done(ch) : 0;
	}
	ch->dst += n;
	ch->need -= n;
	atomic_fetch_add_explicit(&ch->bytes_wire, (unsigned long long)n,
				  memory_order_relaxed);
	if (ch->need)
		return 0;
	return ch->phase == PH_PAYLOAD ? payload_done(ch) : ctrl_done(ch);
}

static int send_ack(struct rx_chan *ch)
{
	struct receiver *r = ch->r;
	struct mw_frame_hdr h = { .type = MW_FT_ACK, .wire_len = MW_ACK_LEN };
	struct mw_ack a = { .bytes = atomic_load(&r->bytes_out),
			    .chunks = atomic_load(&r->chunks_out) };
	uint8_t p[MW_ACK_LEN];
	int ret;

	mw_ack_encode(p, &a);
	ret = mw_conn_send_frame(&ch->conn, &h, p,
				 deadline_after(r->cfg->timeout_s));
	ch->ack_sent = true;
	shutdown(ch->conn.fd, SHUT_WR);
	return ret;
}

static int chan_loop(struct rx_chan *ch)
{
	struct receiver *r = ch->r;
	bool recv_posted = false, efd_posted = false;
	int ret = 0;

	for (;;) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = { .tv_sec = 2 };
		uint8_t *plain_dst = NULL;
		bool complete;

		if (mw_fail_is_set(&r->fail))
			return -MW_E_CANCEL;
		pthread_mutex_lock(&r->lock);
		complete = r->complete;
		pthread_mutex_unlock(&r->lock);
		if (complete && !ch->ack_sent) {
			ret = send_ack(ch);
			if (ret)
				return ret;
		}
		if (!efd_posted) {
			post_efd(ch);
			efd_posted = true;
		}
		if (!recv_posted) {
			ret = ch->ack_sent ? NEED_IO : chan_process(ch);
			if (ret < 0)
				return ret;
			if (ret == NEED_IO) {
				plain_dst = post_recv(ch);
				recv_posted = true;
			}
		}
		ret = ch->ack_sent ?
		      io_uring_submit_and_wait_timeout(&ch->ring, &cqe, 1, &ts,
						       NULL) :
		      io_uring_submit_and_wait(&ch->ring, 1);
		if (ret == -ETIME)
			return 0; /* the sender did not close after the ACK */
		if (ret < 0 && ret != -EINTR)
			return chan_err(ch, ret, "io_uring: %s",
					mw_strerror(ret));
		while (io_uring_peek_cqe(&ch->ring, &cqe) == 0) {
			uint64_t ud = io_uring_cqe_get_data64(cqe);
			int res = cqe->res;

			io_uring_cqe_seen(&ch->ring, cqe);
			if (ud == UD_EFD) {
				efd_posted = false;
				continue;
			}
			recv_posted = false;
			if (res == 0) {
				if (ch->ack_sent)
					return 0;
				return chan_err(ch, -MW_E_CLOSED,
						"connection closed before the "
						"end of the stream");
			}
			if (res < 0)
				return chan_err(ch, res, "recv: %s",
						mw_strerror(res));
			if (ch->ack_sent)
				continue; /* nothing is expected after END */
			if (ch->conn.tls) {
				ch->conn.rx_len += (size_t)res;
			} else {
				(void)plain_dst;
				ret = plain_received(ch, (size_t)res);
				if (ret < 0)
					return ret;
			}
		}
	}
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
	unsigned long long dl = deadline_after(r->cfg->timeout_s);
	uint8_t payload[MW_HELLO_LEN], first;
	struct mw_frame_hdr h;
	struct mw_hello hello;
	struct mw_hello_ok ok = { .version = MW_PROTO_VERSION };
	int ret;

	ret = mw_conn_handshake(&ch->conn, dl);
	if (ret)
		return ret;
	ret = mw_conn_read(&ch->conn, ch->hdr, sizeof(ch->hdr), dl);
	if (ret)
		return ret;
	first = ch->hdr[0];
	if (mw_frame_hdr_decode(ch->hdr, sizeof(ch->hdr), MW_HELLO_LEN, &h) ||
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
		return mw_err_set(&ch->conn.err, -MW_E_PROTO, "malformed HELLO");
	pthread_mutex_lock(&r->lock);
	ret = admit_locked(r, &hello, &ch->conn.err);
	if (!ret) {
		ch->idx = hello.chan_index;
		r->chans[ch->idx] = ch;
		r->joined++;
		r->npending--;
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
	ret = mw_conn_send_frame(&ch->conn, &h, payload, dl);
	ch->have = 0;
	ch->phase = PH_HDR;
	return ret;
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
		pthread_mutex_lock(&r->lock);
		r->npending--;
		live_remove_locked(r, ch);
		mw_conn_destroy(&ch->conn);
		close(ch->efd);
		free(ch);
		pthread_mutex_unlock(&r->lock);
		return NULL;
	}
	snprintf(name, sizeof(name), "mw-rx%d", ch->idx);
	mw_thread_place(name, &r->cfg->cpus, 1 + r->cfg->threads +
			(unsigned)ch->idx);
	ret = io_uring_queue_init(8, &ch->ring, 0);
	if (ret)
		chan_err(ch, ret, "io_uring setup: %s", mw_strerror(ret));
	else
		ch->ring_ok = true;
	if (!ret)
		ret = chan_loop(ch);
	if (ret && ret != -MW_E_CANCEL)
		mw_fail_set(&r->fail, ret, "channel %d (%s): %s", ch->idx,
			    ch->conn.peer, ch->conn.err.msg[0] ?
			    ch->conn.err.msg : mw_strerror(ret));
	/* the sender learns why, unless it told us */
	if (mw_fail_is_set(&r->fail) && !ch->ack_sent && ret != -MW_E_PEER)
		mw_conn_send_error(&ch->conn, r->fail.err.msg);
	ch->cpu_final = mw_thread_cpu_seconds();
	pthread_mutex_lock(&r->lock);
	atomic_store(&ch->exited, true);
	live_remove_locked(r, ch);
	pthread_mutex_unlock(&r->lock);
	mw_fail_wake(&r->fail);
	return NULL;
}

static void accept_one(struct receiver *r)
{
	struct rx_chan *ch;
	pthread_attr_t attr;
	pthread_t th;
	int fd, ret;

	fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	pthread_mutex_lock(&r->lock);
	if (r->npending >= MAX_PENDING || r->nlive >= MAX_LIVE) {
		pthread_mutex_unlock(&r->lock);
		close(fd); /* flood: the legitimate sender retries nothing */
		return;
	}
	pthread_mutex_unlock(&r->lock);
	mw_net_tune(fd, r->cfg->timeout_s);
	ch = calloc(1, sizeof(*ch));
	if (!ch || mw_conn_init(&ch->conn, fd, r->tls)) {
		close(fd);
		free(ch);
		return;
	}
	ch->r = r;
	ch->idx = -1;
	ch->efd = mw_efd_new();
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&r->lock);
	r->npending++;
	r->live[r->nlive++] = ch;
	ret = pthread_create(&th, &attr, conn_main, ch);
	if (ret) {
		r->npending--;
		r->nlive--;
		mw_conn_destroy(&ch->conn);
		close(ch->efd);
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
	unsigned long long wait_dl = deadline_after(cfg->wait_s);

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
		dl = r->have_session ? r->first_join_ns +
		     (unsigned long long)cfg->timeout_s * 1000000000ull :
		     wait_dl;
		pthread_mutex_unlock(&r->lock);
		if (mw_fail_is_set(&r->fail) || (count && joined == count))
			break;
		if (dl && now >= dl) {
			if (count)
				mw_fail_set(&r->fail, -MW_E_TIMEOUT,
					    "only %u of %u channels joined "
					    "within %u s", joined, count,
					    cfg->timeout_s);
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
		      struct mw_stats_chan *chs, double t0)
{
	unsigned i, n;

	memset(sn, 0, sizeof(*sn));
	sn->side = "recv";
	sn->elapsed = (double)mw_now_ns() / 1e9 - t0;
	sn->bytes_raw = atomic_load_explicit(&r->bytes_out,
					     memory_order_relaxed);
	sn->chunks = atomic_load_explicit(&r->chunks_out, memory_order_relaxed);
	sn->chans = chs;
	sn->stage_name[0] = "rx";
	sn->stage_name[1] = "decompress";
	sn->stage_name[2] = "write";
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
		chs[i].cpu = atomic_load(&ch->exited) ? ch->cpu_final :
			     mw_stats_thread_cpu(ch->th);
		sn->bytes_wire += chs[i].bytes;
		sn->stage_cpu[0] += chs[i].cpu;
	}
	pthread_mutex_unlock(&r->lock);
	/* frame headers are part of the wire bytes */
	sn->bytes_wire += sn->chunks * MW_FRAME_HDR_LEN;
	sn->stage_cpu[1] = r->pool ? mw_comp_pool_cpu_seconds(r->pool) : 0;
	sn->stage_cpu[2] = !r->writer_started ? 0 :
			   atomic_load(&r->writer_exited) ? r->writer_cpu :
			   mw_stats_thread_cpu(r->writer);
}

static bool all_channels_done(struct receiver *r)
{
	bool done;

	pthread_mutex_lock(&r->lock);
	done = r->complete && r->nlive == 0;
	pthread_mutex_unlock(&r->lock);
	return done;
}

static void control_loop(struct receiver *r, int sfd, struct mw_stats *st,
			 struct mw_stats_chan *chs, double t0)
{
	struct pollfd p[2] = { { .fd = sfd, .events = POLLIN },
			       { .fd = r->fail.wake_fd, .events = POLLIN } };
	unsigned long long next = mw_now_ns() + 1000000000ull;

	while (!mw_fail_is_set(&r->fail) && !all_channels_done(r)) {
		unsigned long long now = mw_now_ns();
		int ms = now >= next ? 0 : (int)((next - now) / 1000000ull) + 1;
		uint64_t v;

		if (ms > 200)
			ms = 200;
		if (poll(p, 2, ms) > 0) {
			if (p[0].revents & POLLIN) {
				struct signalfd_siginfo si;

				if (read(sfd, &si, sizeof(si)) == sizeof(si))
					mw_fail_set(&r->fail, -MW_E_CANCEL,
						    "interrupted by %s",
						    strsignal((int)si.ssi_signo));
			}
			if ((p[1].revents & POLLIN) &&
			    !mw_fail_is_set(&r->fail) &&
			    read(r->fail.wake_fd, &v, sizeof(v)) < 0)
				v = 0;
		}
		if (mw_now_ns() >= next && st->f) {
			struct mw_stats_snap sn;

			snap_fill(r, &sn, chs, t0);
			mw_stats_write(st, &sn);
			next += 1000000000ull;
		}
	}
}

static void receiver_teardown(struct receiver *r)
{
	unsigned i;

	struct timespec ts;

	mw_efd_poke(r->lst_efd);
	pthread_mutex_lock(&r->lock);
	pthread_cond_broadcast(&r->cv);
	poke_all_locked(r);
	pthread_mutex_unlock(&r->lock);
	if (r->listener_started)
		pthread_join(r->listener, NULL);
	if (r->writer_started)
		pthread_join(r->writer, NULL);
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
	pthread_mutex_unlock(&r->lock);
}

static void receiver_free(struct receiver *r)
{
	unsigned i;

	mw_comp_pool_free(r->pool);
	for (i = 0; i < MW_CHANNELS_MAX; i++) {
		struct rx_chan *ch = r->chans[i];

		if (!ch)
			continue;
		if (ch->ring_ok)
			io_uring_queue_exit(&ch->ring);
		mw_conn_destroy(&ch->conn);
		close(ch->efd);
		free(ch);
	}
	for (i = 0; r->slots && i < r->nslots; i++) {
		free(r->slots[i].raw);
		free(r->slots[i].wire);
	}
	free(r->slots);
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
	struct mw_stats st;
	struct mw_stats_snap sn;
	double t0 = (double)mw_now_ns() / 1e9;
	int sfd, ret;

	signal(SIGPIPE, SIG_IGN);
	sfd = mw_signals_block();
	if (sfd < 0)
		return mw_err_set(err, sfd, "signalfd: %s", mw_strerror(sfd));
	ret = mw_fail_init(&r.fail);
	if (ret)
		goto out_sfd;
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cv, NULL);
	pthread_cond_init(&r.live_cv, NULL);
	/* a larger pipe lets QEMU's loader run while we write the next chunk */
	fcntl(cfg->out_fd, F_SETPIPE_SZ, 1 << 20);
	r.lst_efd = mw_efd_new();
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
	MW_LOG(MW_LOG_INFO, "listening on %s:%u (%s)", *cfg->host ? cfg->host :
	       "*", cfg->port, cfg->tls.mode == MW_TLS_X509 ? "TLS x509" :
	       cfg->tls.mode == MW_TLS_PSK ? "TLS PSK" : "no TLS");
	ret = pthread_create(&r.writer, NULL, writer_main, &r);
	if (!ret) {
		r.writer_started = true;
		ret = pthread_create(&r.listener, NULL, listener_main, &r);
		r.listener_started = !ret;
	}
	if (ret)
		mw_fail_set(&r.fail, -ret, "pthread_create: %s", strerror(ret));
	control_loop(&r, sfd, &st, chs, t0);
	receiver_teardown(&r);
	ret = 0;
	if (!r.complete) {
		ret = r.fail.err.code ? r.fail.err.code : -MW_E_CANCEL;
		mw_err_set(err, ret, "%s", r.fail.err.msg);
		close(cfg->out_fd); /* the destination QEMU sees EOF and fails */
	}
	snap_fill(&r, &sn, chs, t0);
	sn.final = true;
	sn.result = ret ? err->msg : "ok";
	mw_stats_write(&st, &sn);
	if (cfg->verbose)
		mw_stats_summary(&sn);
out_stats:
	mw_stats_close(&st);
out:
	receiver_free(&r);
	pthread_cond_destroy(&r.live_cv);
	pthread_cond_destroy(&r.cv);
	pthread_mutex_destroy(&r.lock);
	mw_fail_destroy(&r.fail);
out_sfd:
	close(sfd);
	return ret;
}
