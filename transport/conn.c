/* SPDX-License-Identifier: MIT */
/*
 * A connection: one TCP socket, optionally a TLS session over it, and the
 * bytes received but not consumed yet. This file has the blocking paths used
 * while a channel is set up or torn down (handshake, HELLO, ACK, ERROR); the
 * data path lives in the ring loops of send.c and recv.c (ring.h), which share
 * mw_conn_read_buffered() with it. Context: the owning channel thread.
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

ssize_t mw_conn_read_buffered(struct mw_conn *c, void *dst, size_t n,
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
		ssize_t r = mw_conn_read_buffered(c, p, n, &closed);
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

int mw_conn_send_frame(struct mw_conn *c, const struct mw_frame_hdr *h,
		       const void *payload, unsigned long long deadline)
{
	uint8_t hdr[MW_FRAME_HDR_LEN];
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)(uintptr_t)payload,
		  .iov_len = h->wire_len },
	};
	uint8_t *sealed;
	size_t cap;
	ssize_t n;
	int ret;

	mw_frame_hdr_encode(hdr, h);
	if (!c->tls) {
		ret = send_all(c, hdr, sizeof(hdr), deadline);
		if (!ret && h->wire_len)
			ret = send_all(c, payload, h->wire_len, deadline);
		return ret;
	}
	cap = mw_tls_seal_bound(sizeof(hdr) + h->wire_len);
	sealed = malloc(cap);
	if (!sealed)
		return -ENOMEM;
	n = mw_tls_seal(c->tls, iov, h->wire_len ? 2 : 1, sealed, cap, &c->err);
	ret = n < 0 ? (int)n : send_all(c, sealed, (size_t)n, deadline);
	free(sealed);
	return ret;
}

int mw_conn_recv_frame(struct mw_conn *c, struct mw_frame_hdr *h,
		       uint8_t *payload, size_t cap,
		       unsigned long long deadline)
{
	uint8_t hdr[MW_FRAME_HDR_LEN];
	int ret = mw_conn_read(c, hdr, sizeof(hdr), deadline);

	if (ret)
		return ret;
	ret = mw_frame_hdr_decode(hdr, sizeof(hdr), (uint32_t)cap, h);
	if (ret)
		return mw_err_set(
			&c->err, ret,
			"malformed frame header (not a migwire peer?)");
	return mw_conn_read(c, payload, h->wire_len, deadline);
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

uint8_t *mw_conn_rx_room(struct mw_conn *c, size_t *len)
{
	if (c->rx_off == c->rx_len)
		c->rx_off = c->rx_len = 0;
	if (c->rx_off && c->rx_cap - c->rx_len < 16384) {
		memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
		c->rx_len -= c->rx_off;
		c->rx_off = 0;
	}
	*len = c->rx_cap - c->rx_len;
	return c->rx + c->rx_len;
}
