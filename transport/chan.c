/* SPDX-License-Identifier: MIT */
/*
 * The channel both sides run (chan.h): its resources, set up and torn down
 * here for both, and its loop. One round: ask the side whether to go on,
 * parse the frames already buffered and post the next recv, fill the free
 * slots with sealed frames, then wait for completions and turn them into
 * the side's callbacks. Context: the channel thread (the loop).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "mw_fd.h"
#include "mw_thread.h"

#define UD_EFD 1
#define UD_RECV 2
#define UD_SEND0 3

int mw_chan_init(struct mw_chan *ch, unsigned nslots, size_t sealed_cap)
{
	unsigned i;

	memset(ch, 0, sizeof(*ch));
	ch->conn.fd = -1;
	ch->nslots = nslots;
	ch->efd = mw_efd_new();
	if (ch->efd < 0)
		return ch->efd;
	mw_ctlq_init(&ch->ctlq, ch->efd);
	for (i = 0; i < nslots && sealed_cap; i++) {
		ch->slot[i].sealed_cap = sealed_cap;
		ch->slot[i].sealed = mw_buf_alloc(sealed_cap);
		if (!ch->slot[i].sealed)
			return -ENOMEM;
	}
	return 0;
}

void mw_chan_destroy(struct mw_chan *ch)
{
	unsigned i;

	if (ch->ring_ok)
		mw_ring_destroy(&ch->ring);
	ch->ring_ok = false;
	mw_conn_destroy(&ch->conn);
	if (ch->efd >= 0) {
		mw_ctlq_destroy(&ch->ctlq);
		close(ch->efd);
	}
	ch->efd = -1;
	for (i = 0; i < MW_CHAN_SLOTS_MAX; i++) {
		free(ch->slot[i].sealed);
		ch->slot[i].sealed = NULL;
	}
}

/* Each slot's send (and its resubmits), the recv and the eventfd read fit
 * with room to spare: 12 entries for the sender's two slots, 8 for the
 * receiver's one, the sizes each side used before. */
int mw_chan_ring_init(struct mw_chan *ch, enum mw_io io)
{
	int ret = mw_ring_init(&ch->ring, 4 * ch->nslots + 4, io);

	if (ret)
		return mw_err_set(&ch->conn.err, ret, "%s setup: %s",
				  mw_io_name(io), mw_strerror(ret));
	ch->ring_ok = true;
	return 0;
}

static void post_efd(struct mw_chan *ch)
{
	mw_ring_post_read(&ch->ring, ch->efd, &ch->efd_buf, sizeof(ch->efd_buf),
			  UD_EFD);
	ch->efd_posted = true;
}

static void post_recv(struct mw_chan *ch)
{
	size_t len;
	uint8_t *room = mw_conn_rx_room(&ch->conn, &len);

	mw_ring_post_recv(&ch->ring, ch->conn.fd, room, len, UD_RECV);
	ch->recv_posted = true;
}

static void post_send(struct mw_chan *ch, unsigned i)
{
	mw_sendq_post(&ch->ring, ch->conn.fd, &ch->slot[i].sq, UD_SEND0 + i);
}

static void count_rx(struct mw_chan *ch)
{
	if (ch->rx_bytes)
		atomic_store_explicit(ch->rx_bytes, ch->conn.rd.payload_bytes,
				      memory_order_relaxed);
}

/*
 * Two sends on one socket may not be in the kernel at once: a short send
 * would let the second one's bytes in between. So only the head slot is
 * posted; the other is sealed meanwhile and goes when the head is done.
 */
static void kick_send(struct mw_chan *ch)
{
	if (!ch->sending && ch->slot[ch->head].busy) {
		ch->sending = true;
		post_send(ch, ch->head);
	}
}

/* Seals the side's next frames into the free slots. */
static int fill(struct mw_chan *ch)
{
	while (ch->inflight < ch->nslots && !ch->send_err) {
		unsigned i = (ch->head + ch->inflight) % ch->nslots;
		struct mw_chan_slot *sl = &ch->slot[i];
		struct mw_frame_hdr h;
		const void *payload;
		double t = 0;
		ssize_t n;
		int ret = ch->ops->next_frame(ch, i, &h, &payload);

		if (ret <= 0)
			return ret;
		if (ch->seal_ns && ch->conn.tls)
			t = mw_thread_cpu_seconds();
		n = mw_frame_wr_put(&sl->wr, &h, payload);
		if (ch->seal_ns && ch->conn.tls)
			atomic_fetch_add_explicit(
				ch->seal_ns,
				(unsigned long long)((mw_thread_cpu_seconds() -
						      t) *
						     1e9),
				memory_order_relaxed);
		if (n < 0) {
			if (ch->ops->on_drop)
				ch->ops->on_drop(ch, i);
			return (int)n;
		}
		sl->sq.iov[0] = sl->wr.iov[0];
		sl->sq.iov[1] = sl->wr.iov[1];
		if (ch->rate)
			mw_rate_take(ch->rate, (size_t)n);
		sl->busy = true;
		ch->inflight++;
		kick_send(ch);
	}
	return 0;
}

/* Send completion: resubmits the rest of a short send, else frees the slot. */
static int slot_sent(struct mw_chan *ch, unsigned i, int res)
{
	struct mw_chan_slot *sl = &ch->slot[i];

	if ((res == -EPIPE || res == -ECONNRESET) && !ch->send_err) {
		/* the peer is gone: read what it said last, briefly */
		ch->send_err = res;
		ch->send_err_dl = mw_now_ns() + 1000000000ull;
		ch->sending = false;
		ch->rx_paused = false;
		return 0;
	}
	if (res < 0)
		return mw_err_set(&ch->conn.err, res, "send: %s",
				  mw_strerror(res));
	if (ch->sent_bytes)
		atomic_fetch_add_explicit(ch->sent_bytes,
					  (unsigned long long)res,
					  memory_order_relaxed);
	ch->last_tx_ns = mw_now_ns();
	if (mw_sendq_advance(&sl->sq, (size_t)res)) {
		post_send(ch, i);
		return 0;
	}
	sl->busy = false;
	ch->sending = false;
	ch->inflight--;
	ch->head = (ch->head + 1) % ch->nslots;
	ch->ops->on_sent(ch, i);
	kick_send(ch);
	return 0;
}

/*
 * The heartbeat. A peer that is alive sends at least a PING a second, so
 * dead_ns without a byte from it means it hung or the path black-holes
 * (a TCP connection whose peer still ACKs never times out by itself).
 * Any byte counts, not only whole frames: a big frame on a slow link is
 * alive. A PING is queued only when nothing else waits to go, and never
 * once the side stopped receiving (the receiver after its ACK shuts its
 * write side). Returns 0 or -MW_E_TIMEOUT; *wait is shortened to the
 * next heartbeat event.
 */
static int heartbeat(struct mw_chan *ch, unsigned long long *wait)
{
	unsigned long long now, ping_at, dead_at;

	if (!ch->dead_ns || ch->rx_eof || ch->rx_paused)
		return 0;
	now = mw_now_ns();
	dead_at = ch->last_rx_ns + ch->dead_ns;
	if (now >= dead_at)
		return mw_err_set(&ch->conn.err, -MW_E_TIMEOUT,
				  "peer silent for %llu s: not even a "
				  "heartbeat (hung, or the network drops "
				  "everything; --timeout)",
				  ch->dead_ns / 1000000000ull);
	ping_at = ch->last_tx_ns + MW_CHAN_PING_NS;
	if (now >= ping_at && !ch->inflight && mw_ctlq_empty(&ch->ctlq)) {
		struct mw_frame_hdr h = { .type = MW_FT_PING };
		struct mw_ctl *c = mw_ctl_new(&h, NULL);

		/* out of memory: the next round tries again */
		if (c && !mw_ctlq_push(&ch->ctlq, c, 0))
			ch->last_tx_ns = now;
		ping_at = now + MW_CHAN_PING_NS;
	}
	if (ping_at > dead_at)
		ping_at = dead_at;
	if (!*wait || ping_at - now < *wait)
		*wait = ping_at > now ? ping_at - now : 1000000ull;
	return 0;
}

static int recv_done(struct mw_chan *ch, int res)
{
	int ret = ch->ops->on_recv(ch, res);

	if (res > 0)
		ch->last_rx_ns = mw_now_ns();

	ch->recv_posted = false;
	if (ret == MW_CHAN_EOF)
		ch->rx_eof = true;
	if (ret)
		return ret == MW_CHAN_SKIP || ret == MW_CHAN_EOF ? 0 : ret;
	ret = mw_conn_rx_commit(&ch->conn, (size_t)res);
	count_rx(ch);
	return ret;
}

/* Parses what is buffered, then posts the next recv. */
static int receive(struct mw_chan *ch)
{
	bool closed;
	int ret;

	if (!ch->rx_paused) {
		unsigned long long t0 = mw_now_ns();

		ret = mw_conn_rx_drain(&ch->conn, &closed);
		/* the time this side spent on what arrived (a --cpu-budget
		 * pause among it) is not the peer's silence */
		ch->last_rx_ns += mw_now_ns() - t0;
		count_rx(ch);
		if (!ret && closed)
			ret = ch->ops->on_closed(ch);
		if (!ret)
			ret = ch->ops->round(ch);
		if (ret)
			return ret;
	}
	post_recv(ch);
	return 0;
}

int mw_chan_loop(struct mw_chan *ch, const struct mw_chan_ops *ops,
		 void *opaque)
{
	unsigned i;
	int ret;

	ch->ops = ops;
	ch->opaque = opaque;
	for (i = 0; i < ch->nslots; i++)
		mw_frame_wr_init(&ch->slot[i].wr, ch->conn.tls,
				 ch->slot[i].sealed, ch->slot[i].sealed_cap,
				 &ch->conn.err);
	post_efd(ch);
	ch->last_tx_ns = ch->last_rx_ns = mw_now_ns();
	for (;;) {
		struct mw_ring_cqe cqe;
		unsigned long long wait;

		ret = ch->ops->round(ch);
		if (!ret && ch->send_err)
			ch->rx_paused = false;
		if (!ret && !ch->recv_posted && !ch->rx_eof)
			ret = receive(ch);
		wait = ch->send_err ? 100000000ull : ch->wait_ns;
		if (!ret)
			ret = heartbeat(ch, &wait);
		if (!ret)
			ret = fill(ch);
		if (!ret && ch->send_err &&
		    (ch->rx_eof || mw_now_ns() >= ch->send_err_dl))
			ret = mw_err_set(&ch->conn.err, ch->send_err,
					 "send: %s", mw_strerror(ch->send_err));
		if (ret)
			return ret == MW_CHAN_STOP ? 0 : ret;
		ret = mw_ring_wait(&ch->ring, wait);
		if (ret < 0 && ret != -EINTR && ret != -ETIME)
			return mw_err_set(&ch->conn.err, ret, "%s: %s",
					  mw_io_name(ch->ring.io),
					  mw_strerror(ret));
		while (mw_ring_peek(&ch->ring, &cqe)) {
			mw_ring_advance(&ch->ring, 1);
			if (cqe.ud == UD_EFD) {
				ch->efd_posted = false;
				post_efd(ch);
			} else if (cqe.ud == UD_RECV)
				ret = recv_done(ch, cqe.res);
			else
				ret = slot_sent(ch,
						(unsigned)(cqe.ud - UD_SEND0),
						cqe.res);
			if (ret)
				return ret == MW_CHAN_STOP ? 0 : ret;
		}
	}
}

int mw_chan_flush(struct mw_chan *ch, unsigned long long deadline)
{
	if (ch->send_err)
		return -1; /* the peer refused a send: the stream is torn */
	while (ch->sending) {
		struct mw_ring_cqe cqe;

		if (mw_now_ns() > deadline)
			return -1;
		if (mw_ring_wait(&ch->ring, 100000000ull) < 0 ||
		    !mw_ring_peek(&ch->ring, &cqe))
			continue;
		mw_ring_advance(&ch->ring, 1);
		if (cqe.ud >= UD_SEND0 &&
		    (slot_sent(ch, (unsigned)(cqe.ud - UD_SEND0), cqe.res) ||
		     ch->send_err))
			return -1; /* the peer refused it: the stream is torn */
	}
	return 0;
}

int mw_chan_quiesce(struct mw_chan *ch, unsigned long long deadline)
{
	int ret = 0;

	/* the peer is gone or lost to us: whatever is posted completes now */
	if (ch->conn.fd >= 0)
		shutdown(ch->conn.fd, SHUT_RDWR);
	if (ch->efd_posted)
		mw_efd_poke(ch->efd);
	while (ch->ring_ok &&
	       (ch->recv_posted || ch->sending || ch->efd_posted)) {
		struct mw_ring_cqe cqe;

		if (mw_now_ns() > deadline) {
			ret = -1;
			break;
		}
		if (mw_ring_wait(&ch->ring, 100000000ull) < 0)
			continue;
		while (mw_ring_peek(&ch->ring, &cqe)) {
			mw_ring_advance(&ch->ring, 1);
			if (cqe.ud == UD_EFD)
				ch->efd_posted = false;
			else if (cqe.ud == UD_RECV)
				ch->recv_posted = false;
			else
				ch->sending = false; /* the head slot's */
		}
	}
	/* an op still posted past the deadline: only the ring's end cancels
	 * it. Else the ring stays, empty, for the next connection: a ring
	 * unmapped here and mapped again by another thread at the same place
	 * looks like a race to TSan, which does not see liburing's mmaps */
	if (ret && ch->ring_ok) {
		mw_ring_destroy(&ch->ring);
		ch->ring_ok = false;
	}
	return ret;
}

int mw_chan_reset(struct mw_chan *ch, unsigned long long deadline)
{
	int ret = mw_chan_quiesce(ch, deadline);
	unsigned i;

	mw_conn_destroy(&ch->conn);
	ch->inflight = ch->head = 0;
	ch->sending = ch->recv_posted = ch->rx_eof = ch->rx_paused = false;
	ch->efd_posted = false;
	ch->send_err = 0;
	ch->send_err_dl = 0;
	ch->wait_ns = 0;
	for (i = 0; i < MW_CHAN_SLOTS_MAX; i++)
		ch->slot[i].busy = false;
	return ret;
}
