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
 * Reverse-direction frames of a stream all arrive on one channel (stream id
 * modulo channels), in order, and that channel thread writes them to the
 * stream's local socket (or stdout).
 *
 * The session ends when every stream has ended both ways (and in socket
 * mode a main migration stream has been carried): CLOSE with the totals
 * goes out, and the receiver's ACK, sent once every byte is written, is the
 * only way to exit 0.
 *
 * Locking: see struct sender, struct tx_chan and the stage headers.
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
#include "rate.h"
#include "tx_sched.h"
#include "session.h"
#include "source.h"

#define TX_SLOTS MW_CHAN_SLOTS_MAX

struct sender;

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

/*
 * Locking: cfg, session, io, tls, nchunks, out_cap, sched, chans, pool and
 * lat are set by the main thread before the first thread that reads them
 * starts, and fixed after (the readers write lat's stream, which stdio
 * locks). lock guards stream_window (the channels lower it during
 * setup; streams start with it once all are up), nready and close_sent.
 * fail has its own lock (session.h), rate its own (rate.h), sched its own
 * (tx_sched.h), src is the source stage's (source.h); acked is an atomic set
 * once by the channel that got the ACK. Lock order: lock -> sched -> the
 * compress pool -> a ctlq; fail's lock is taken last, under any of them.
 */
struct sender {
	const struct mw_xp_cfg *cfg;
	struct mw_fail fail;
	struct mw_comp_pool *pool;
	struct mw_tls_ctx *tls;
	struct mw_rate rate;
	uint8_t session[MW_SESSION_ID_LEN];
	size_t out_cap;	  /* compressed buffer per chunk; 0: codec none */
	unsigned nchunks; /* the chunk pool (--window), told in HELLO */
	struct mw_sched *sched;
	struct mw_source src;

	pthread_mutex_t lock;
	uint32_t stream_window;
	unsigned nready;
	bool close_sent;

	atomic_bool acked;
	struct tx_chan *chans;
	FILE *lat;     /* --latency-file */
	enum mw_io io; /* --io resolved: MW_IO_URING or MW_IO_POLL */
};

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
	struct mw_sched_stream *end_st = NULL;
	struct tx_chunk *c = NULL;
	struct mw_frame_hdr h = { 0 };

	if (!ctl) {
		c = mw_sched_take(s->sched, ch->idx, ch->conn.fd, &end_st);
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
		mw_sched_put(ch->s->sched, &sl->chunk);
	free(sl->ctl);
	sl->chunk = NULL;
	sl->ctl = NULL;
}

static struct tx_stream *stream_get(struct sender *s, uint32_t id)
{
	return tx_stream_get(s->sched, id);
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
	if (st->rev_seq == 0)
		mw_source_sniff(st, ch->in_payload, h->raw_len, true);
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

/* Sets up channel i's memory; the thread starts later. */
static int chan_alloc(struct sender *s, struct tx_chan *ch, unsigned i)
{
	const struct mw_xp_cfg *cfg = s->cfg;
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
			MW_FRAME_HDR_LEN + (s->out_cap > cfg->chunk_size ?
						    s->out_cap :
						    cfg->chunk_size));
		sl->sealed = mw_buf_alloc(sl->sealed_cap);
		if (!sl->sealed)
			return -ENOMEM;
	}
	return 0;
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
	for (i = 0; i < cfg->nr_chans; i++) { /* what sender_free checks */
		s->chans[i].efd = -1;
		s->chans[i].conn.fd = -1;
	}
	for (i = 0; i < cfg->nr_chans && !ret; i++) {
		ret = chan_alloc(s, &s->chans[i], i);
		efds[i] = s->chans[i].efd;
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
	mw_sched_free(s->sched);
	free(s->chans);
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
	sn->first = mw_stats_since(atomic_load(&s->src.first_ns), t0);
	for (i = 0; i < s->cfg->nr_chans; i++) {
		struct tx_chan *ch = &s->chans[i];

		if (ch->started && !atomic_load(&ch->exited))
			sn->chans_up++;

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
	unsigned ticks = 0, every = s->cfg->progress_s;

	while (!mw_fail_is_set(&s->fail) && !atomic_load(&s->acked)) {
		bool tick = mw_fail_poll(&s->fail, sfd, &next);

		maybe_close(s);
		if (tick) {
			struct mw_stats_snap sn;

			snap_fill(s, &sn, chs, sts, t0);
			mw_stats_write(st, &sn);
			if (every && ++ticks % every == 0)
				mw_stats_progress(&sn, s->cfg->progress_tty,
						  false);
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
	mw_rate_init(&s.rate, cfg->max_bw);
	if (getrandom(s.session, sizeof(s.session), 0) != sizeof(s.session)) {
		ret = mw_err_set(err, -EIO, "getrandom failed");
		goto out;
	}
	ret = mw_source_listen(&s.src, err);
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
	if (cfg->adaptive) {
		/* workers take the newest, channels claim the oldest */
		mw_comp_pool_newest_first(s.pool);
		mw_sched_adaptive(s.sched, s.pool);
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
	wait_channels(&s, sfd);
	if (!mw_fail_is_set(&s.fail)) {
		MW_LOG(MW_LOG_INFO, "%u channels up to %s:%u (%s, %s, io %s)",
		       s.nready, cfg->host, cfg->port,
		       cfg->tls.mode == MW_TLS_X509 ? "TLS x509" :
		       cfg->tls.mode == MW_TLS_PSK  ? "TLS PSK" :
						      "no TLS",
		       mw_codec_name(cfg->codec), mw_io_name(s.io));
		mw_source_start(&s.src, s.sched, s.pool, &s.chans[0].ctlq,
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
	mw_source_join_acceptor(&s.src);
	mw_comp_pool_stop(s.pool);
	mw_source_join_readers(&s.src);
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
	if (cfg->progress_s)
		mw_stats_progress(&sn, cfg->progress_tty, true);
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
	pthread_mutex_destroy(&s.lock);
	mw_fail_destroy(&s.fail);
out_sfd:
	close(sfd);
	return ret;
}
