/* SPDX-License-Identifier: MIT */
/*
 * The channels' I/O rings (ring.h): backend selection, setup, and the poll
 * backend. The io_uring backend is inline in ring.h. Context: the thread
 * that owns the ring; mw_ring_select() on the main thread.
 *
 * DESIGN (poll backend)
 * A posted operation goes into a fixed table (ring entries long, allocated
 * at init: nothing is allocated on the data path). mw_ring_poll_wait()
 * polls the pending operations' fds (POLLIN for read and recv, POLLOUT for
 * sendmsg) and performs each ready one without blocking: recv and sendmsg
 * with MSG_DONTWAIT, because the channel sockets are blocking fds (the
 * handshakes use them so); read only after POLLIN (the eventfds are
 * non-blocking anyway). An operation that still says EAGAIN stays pending;
 * anything else becomes a completion with io_uring's res (bytes, 0 = EOF,
 * -errno). Operations are performed only while no completion waits to be
 * reaped, so the completion queue never holds more than the table.
 * POLLHUP/POLLERR count as ready: performing the operation then returns
 * the EOF or error, so a teardown's shutdown(2) of the socket or poke of
 * the eventfd wakes a waiting channel as it does under io_uring.
 */
#include "ring.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mw_log.h"
#include "mw_thread.h"

struct mw_ring_op {
	enum mw_ring_opcode op; /* 0: done, to be dropped from the table */
	int fd;
	void *buf;
	size_t len;
	struct msghdr *msg;
	uint64_t ud;
};

const char *mw_io_name(enum mw_io io)
{
	switch (io) {
	case MW_IO_URING:
		return "uring";
	case MW_IO_POLL:
		return "poll";
	default:
		return "auto";
	}
}

int mw_io_parse(const char *s, enum mw_io *out)
{
	enum mw_io io;

	for (io = MW_IO_AUTO; io <= MW_IO_POLL; io++)
		if (!strcmp(s, mw_io_name(io))) {
			*out = io;
			return 0;
		}
	return -EINVAL;
}

int mw_ring_select(enum mw_io want, enum mw_io *out, struct mw_err *err)
{
	struct io_uring probe;
	int ret;

	if (want == MW_IO_POLL) {
		*out = MW_IO_POLL;
		return 0;
	}
	ret = io_uring_queue_init(2, &probe, 0);
	if (!ret) {
		io_uring_queue_exit(&probe);
		*out = MW_IO_URING;
		return 0;
	}
	if (want == MW_IO_AUTO &&
	    (ret == -ENOSYS || ret == -EPERM || ret == -EACCES)) {
		MW_LOG(MW_LOG_WARN,
		       "io_uring not available (%s: a seccomp "
		       "profile, kernel.io_uring_disabled or an old kernel); "
		       "falling back to poll(2) (--io poll chooses it without "
		       "this warning)",
		       mw_strerror(ret));
		*out = MW_IO_POLL;
		return 0;
	}
	return mw_err_set(err, ret, "io_uring setup: %s%s", mw_strerror(ret),
			  want == MW_IO_URING ? " (--io poll works without "
						"io_uring)" :
						"");
}

int mw_ring_init(struct mw_ring *r, unsigned entries, enum mw_io io)
{
	memset(r, 0, sizeof(*r));
	r->io = io;
	if (io != MW_IO_POLL) {
		r->io = MW_IO_URING;
		return io_uring_queue_init(entries, &r->uring, 0);
	}
	r->cap = entries;
	r->ops = calloc(entries, sizeof(*r->ops));
	r->pfd = calloc(entries, sizeof(*r->pfd));
	r->pfd_op = calloc(entries, sizeof(*r->pfd_op));
	r->cq = calloc(entries, sizeof(*r->cq));
	if (!entries || !r->ops || !r->pfd || !r->pfd_op || !r->cq) {
		mw_ring_destroy(r);
		return entries ? -ENOMEM : -EINVAL;
	}
	return 0;
}

void mw_ring_destroy(struct mw_ring *r)
{
	if (r->io == MW_IO_URING) {
		io_uring_queue_exit(&r->uring);
		return;
	}
	free(r->ops);
	free(r->pfd);
	free(r->pfd_op);
	free(r->cq);
	r->ops = NULL;
	r->pfd = NULL;
	r->pfd_op = NULL;
	r->cq = NULL;
	r->nops = r->cq_len = 0;
}

void mw_ring_poll_post(struct mw_ring *r, enum mw_ring_opcode op, int fd,
		       void *buf, size_t len, struct msghdr *msg, uint64_t ud)
{
	if (r->nops == r->cap) {
		/* more in flight than the ring was sized for: a bug the
		 * next wait reports, as io_uring would have no SQE */
		r->err = -EOVERFLOW;
		return;
	}
	r->ops[r->nops++] = (struct mw_ring_op){ .op = op,
						 .fd = fd,
						 .buf = buf,
						 .len = len,
						 .msg = msg,
						 .ud = ud };
}

/* Performs o without blocking; false while it would block. */
static bool op_try(struct mw_ring *r, struct mw_ring_op *o)
{
	unsigned tail;
	ssize_t n;

	switch (o->op) {
	case MW_RING_READ:
		n = read(o->fd, o->buf, o->len);
		break;
	case MW_RING_RECV:
		n = recv(o->fd, o->buf, o->len, MSG_DONTWAIT);
		break;
	default:
		n = sendmsg(o->fd, o->msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	}
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return false;
	tail = (r->cq_head + r->cq_len++) % r->cap;
	r->cq[tail].ud = o->ud;
	r->cq[tail].res = n < 0 ? -errno : n > INT_MAX ? INT_MAX : (int)n;
	o->op = 0;
	return true;
}

/* Drops the completed operations, keeping the others in posting order. */
static void ops_compact(struct mw_ring *r)
{
	unsigned i, k = 0;

	for (i = 0; i < r->nops; i++)
		if (r->ops[i].op)
			r->ops[k++] = r->ops[i];
	r->nops = k;
}

int mw_ring_poll_wait(struct mw_ring *r, unsigned long long timeout_ns)
{
	unsigned long long dl = timeout_ns ? mw_now_ns() + timeout_ns : 0;

	if (r->err)
		return r->err;
	while (!r->cq_len) {
		unsigned i, nfds = 0;
		int ms = -1, n;

		if (dl) {
			unsigned long long now = mw_now_ns(), left;

			if (now >= dl)
				return -ETIME;
			/* rounded up: a wake-up before dl would spin */
			left = (dl - now + 999999ull) / 1000000ull;
			ms = left > INT_MAX ? INT_MAX : (int)left;
		}
		for (i = 0; i < r->nops; i++) {
			r->pfd[nfds].fd = r->ops[i].fd;
			r->pfd[nfds].events = r->ops[i].op == MW_RING_SENDMSG ?
						      POLLOUT :
						      POLLIN;
			r->pfd[nfds].revents = 0;
			r->pfd_op[nfds++] = i;
		}
		n = poll(r->pfd, nfds, ms);
		if (n < 0)
			return -errno;
		for (i = 0; i < nfds && n > 0; i++)
			if (r->pfd[i].revents)
				op_try(r, &r->ops[r->pfd_op[i]]);
		ops_compact(r);
	}
	return 0;
}

void mw_sendq_post(struct mw_ring *ring, int fd, struct mw_sendq *sq,
		   uint64_t ud)
{
	memset(&sq->msg, 0, sizeof(sq->msg));
	sq->msg.msg_iov = sq->iov[0].iov_len ? sq->iov : sq->iov + 1;
	sq->msg.msg_iovlen = sq->iov[0].iov_len && sq->iov[1].iov_len ? 2 : 1;
	mw_ring_post_sendmsg(ring, fd, &sq->msg, ud);
}

bool mw_sendq_advance(struct mw_sendq *sq, size_t n)
{
	unsigned k;

	for (k = 0; k < 2; k++) {
		size_t take = n < sq->iov[k].iov_len ? n : sq->iov[k].iov_len;

		if (!take)
			continue; /* an empty piece may be NULL */
		sq->iov[k].iov_base = (uint8_t *)sq->iov[k].iov_base + take;
		sq->iov[k].iov_len -= take;
		n -= take;
	}
	return sq->iov[0].iov_len || sq->iov[1].iov_len;
}
