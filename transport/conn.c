/* SPDX-License-Identifier: MIT */
/*
 * A connection: one TCP socket, optionally a TLS session over it, and the
 * bytes received but not consumed yet. This file has the blocking paths used
 * while a channel is set up or torn down (handshake, HELLO, ACK, ERROR) and
 * the receive side of the ring loops in send.c and recv.c (ring.h): both
 * read frames through the same frame reader (frame_io.h) and send them
 * through the same writer. Context: the owning channel thread.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mw_thread.h"
#include "conn.h"
#include "mw_fd.h"
#include "net.h"

int mw_conn_init(struct mw_conn *c, int fd, const char *peer,
		 struct mw_tls_ctx *tls)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->rx_cap = MW_CONN_RX_CAP;
	c->rx = mw_buf_alloc(c->rx_cap);
	if (!c->rx)
		return -ENOMEM;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	if (tls) {
		ret = mw_tls_sess_new(&c->tls, tls, &c->err);
		if (ret) {
			free(c->rx);
			c->rx = NULL;
			return ret;
		}
	}
	return 0;
}

void mw_conn_destroy(struct mw_conn *c)
{
	if (c->tls)
		mw_tls_sess_free(c->tls);
	if (c->fd >= 0)
		close(c->fd);
	free(c->rx);
	mw_frame_rd_release(&c->rd);
	c->tls = NULL;
	c->rx = NULL;
	c->fd = -1;
}

static int send_all(struct mw_conn *c, const void *buf, size_t n,
		    unsigned long long deadline)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		int ret;

		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return mw_err_set(&c->err, -errno, "send: %s",
					  strerror(errno));
		ret = mw_net_wait(c->fd, POLLOUT, deadline);
		if (ret)
			return mw_err_set(&c->err, ret, "send: %s",
					  mw_strerror(ret));
	}
	return 0;
}

/* Appends received bytes to rx (compacting first). 0, or error. */
static int recv_some(struct mw_conn *c, unsigned long long deadline)
{
	ssize_t r;
	int ret;

	if (c->rx_off) {
		memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
		c->rx_len -= c->rx_off;
		c->rx_off = 0;
	}
	if (c->rx_len == c->rx_cap)
		return mw_err_set(&c->err, -MW_E_PROTO, "receive buffer full");
	for (;;) {
		r = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len,
			 MSG_DONTWAIT);
		if (r > 0) {
			c->rx_len += (size_t)r;
			c->rx_total += (size_t)r;
			return 0;
		}
		if (r == 0)
			return mw_err_set(&c->err, -MW_E_CLOSED,
					  "connection closed by peer");
		if (errno != EAGAIN && errno != EINTR)
			return mw_err_set(&c->err, -errno, "recv: %s",
					  strerror(errno));
		ret = mw_net_wait(c->fd, POLLIN, deadline);
		if (ret)
			return mw_err_set(
				&c->err, ret, "%s",
				ret == -MW_E_TIMEOUT ?
					"peer sent nothing before the timeout" :
					mw_strerror(ret));
	}
}

int mw_conn_handshake(struct mw_conn *c, unsigned long long deadline)
{
	uint8_t out[16384];
	int ret;

	if (!c->tls)
		return 0;
	for (;;) {
		size_t consumed = 0, out_len = 0;

		ret = mw_tls_handshake(c->tls, c->rx + c->rx_off,
				       c->rx_len - c->rx_off, &consumed, out,
				       sizeof(out), &out_len, &c->err);
		c->rx_off += consumed;
		if (out_len) {
			int sret = send_all(c, out, out_len, deadline);

			if (sret && ret != -MW_E_TLS && ret != -MW_E_AUTH)
				return sret;
		}
		if (ret != -EAGAIN)
			return ret;
		ret = recv_some(c, deadline);
		if (ret)
			return ret;
	}
}

/* Plaintext already received: copies (or opens) up to n bytes without any
 * syscall. Returns bytes (0: none buffered) or -MW_E_TLS; *closed is set
 * on the peer's close_notify. */
static ssize_t read_buffered(struct mw_conn *c, void *dst, size_t n,
			     bool *closed)
{
	size_t avail = c->rx_len - c->rx_off;
	ssize_t r;
	size_t consumed = 0;

	*closed = false;
	if (!c->tls) {
		if (avail > n)
			avail = n;
		memcpy(dst, c->rx + c->rx_off, avail);
		c->rx_off += avail;
		return (ssize_t)avail;
	}
	r = mw_tls_open(c->tls, c->rx + c->rx_off, avail, &consumed, dst, n,
			&c->err);
	c->rx_off += consumed;
	if (r == -EAGAIN)
		return 0;
	if (r == 0)
		*closed = true;
	return r;
}

int mw_conn_read(struct mw_conn *c, void *dst, size_t n,
		 unsigned long long deadline)
{
	uint8_t *p = dst;

	while (n) {
		bool closed;
		ssize_t r = read_buffered(c, p, n, &closed);
		int ret;

		if (r < 0)
			return (int)r;
		if (closed)
			return mw_err_set(&c->err, -MW_E_CLOSED,
					  "connection closed by peer");
		p += r;
		n -= (size_t)r;
		if (!n)
			break;
		if (r > 0)
			continue;
		ret = recv_some(c, deadline);
		if (ret)
			return ret;
	}
	return 0;
}

/* Blocking frames are small (HELLO, HELLO_OK, ERROR): sealed on the stack. */
#define SETUP_SEAL_CAP 4096

int mw_conn_send_frame(struct mw_conn *c, const struct mw_frame_hdr *h,
		       const void *payload, unsigned long long deadline)
{
	uint8_t sealed[SETUP_SEAL_CAP];
	struct mw_frame_wr w;
	ssize_t n;
	int i, ret = 0;

	mw_frame_wr_init(&w, c->tls, sealed, sizeof(sealed), &c->err);
	n = mw_frame_wr_put(&w, h, payload);
	if (n < 0)
		return (int)n;
	/* a plaintext header and payload in one write: a peer that answers
	 * the header with ERROR and closes would otherwise reset the second
	 * write before this side has read why (a --no-tls prober at a TLS
	 * receiver) */
	if (!c->tls && w.iov[1].iov_len &&
	    w.iov[0].iov_len + w.iov[1].iov_len <= sizeof(sealed)) {
		memcpy(sealed, w.iov[0].iov_base, w.iov[0].iov_len);
		memcpy(sealed + w.iov[0].iov_len, w.iov[1].iov_base,
		       w.iov[1].iov_len);
		return send_all(c, sealed, w.iov[0].iov_len + w.iov[1].iov_len,
				deadline);
	}
	for (i = 0; i < 2 && !ret; i++)
		if (w.iov[i].iov_len)
			ret = send_all(c, w.iov[i].iov_base, w.iov[i].iov_len,
				       deadline);
	return ret;
}

/* The blocking reader's callbacks: one frame into the caller's buffer. */
struct one_frame {
	struct mw_frame_hdr *h;
	uint8_t *payload;
};

static int one_header(void *opaque, const struct mw_frame_hdr *h, uint8_t **dst)
{
	struct one_frame *f = opaque;

	*dst = f->payload;
	return 0;
}

static int one_frame_done(void *opaque, const struct mw_frame_hdr *h)
{
	struct one_frame *f = opaque;

	*f->h = *h;
	return 1; /* stop: later bytes belong to the channel loop */
}

static const struct mw_frame_rd_ops one_ops = {
	.header = one_header,
	.frame = one_frame_done,
};

int mw_conn_recv_frame(struct mw_conn *c, struct mw_frame_hdr *h,
		       uint8_t *payload, size_t cap,
		       unsigned long long deadline)
{
	struct one_frame f = { .h = h, .payload = payload };
	int ret;

	mw_frame_rd_init(&c->rd, (uint32_t)cap, &one_ops, &f, &c->err,
			 "malformed frame header (not a migwire peer?)");
	for (;;) {
		bool closed;

		ret = mw_conn_rx_drain(c, &closed);
		if (ret)
			break;
		if (closed) {
			ret = mw_err_set(&c->err, -MW_E_CLOSED,
					 "connection closed by peer");
			break;
		}
		ret = recv_some(c, deadline);
		if (ret)
			break;
	}
	/* f is on this stack: leave no pointer to it behind */
	mw_frame_rd_init(&c->rd, 0, NULL, NULL, &c->err, NULL);
	return ret > 0 ? 0 : ret;
}

void mw_conn_send_error(struct mw_conn *c, const char *text)
{
	struct mw_frame_hdr h = { .type = MW_FT_ERROR };
	size_t n = strlen(text);

	if (c->fd < 0)
		return;
	h.wire_len = (uint32_t)(n > MW_ERROR_MAX ? MW_ERROR_MAX : n);
	mw_conn_send_frame(c, &h, text, mw_now_ns() + 1000000000ull);
}

void mw_conn_rx_start(struct mw_conn *c, const struct mw_frame_rd_ops *ops,
		      void *opaque, uint32_t max_payload, const char *bad_hdr,
		      bool direct)
{
	mw_frame_rd_init(&c->rd, max_payload, ops, opaque, &c->err, bad_hdr);
	c->rx_direct = direct && !c->tls;
}

uint8_t *mw_conn_rx_room(struct mw_conn *c, size_t *len)
{
	if (c->rx_off == c->rx_len)
		c->rx_off = c->rx_len = 0;
	if (c->rx_direct && !c->rx_len)
		return mw_frame_rd_want(&c->rd, len);
	if (c->rx_off && c->rx_cap - c->rx_len < 16384) {
		memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
		c->rx_len -= c->rx_off;
		c->rx_off = 0;
	}
	*len = c->rx_cap - c->rx_len;
	return c->rx + c->rx_len;
}

int mw_conn_rx_commit(struct mw_conn *c, size_t n)
{
	/* rx_room went direct exactly when the buffer was empty */
	if (c->rx_direct && !c->rx_len)
		return mw_frame_rd_commit(&c->rd, n);
	c->rx_len += n;
	return 0;
}

int mw_conn_rx_drain(struct mw_conn *c, bool *closed)
{
	*closed = false;
	for (;;) {
		size_t want;
		uint8_t *dst = mw_frame_rd_want(&c->rd, &want);
		ssize_t n;
		int ret;

		if (c->tls && c->open_ns) {
			double t = mw_thread_cpu_seconds();

			n = read_buffered(c, dst, want, closed);
			atomic_fetch_add_explicit(
				c->open_ns,
				(unsigned long long)((mw_thread_cpu_seconds() -
						      t) *
						     1e9),
				memory_order_relaxed);
		} else {
			n = read_buffered(c, dst, want, closed);
		}
		if (n < 0)
			return (int)n;
		if (*closed || n == 0)
			return 0;
		ret = mw_frame_rd_commit(&c->rd, (size_t)n);
		if (ret)
			return ret;
	}
}
