/* SPDX-License-Identifier: MIT */
/*
 * Private to transport/: the channels' I/O rings. One struct mw_ring per
 * channel thread, with one of two backends:
 *
 *   uring  io_uring through liburing, as the data path always used it. The
 *          wrappers below are inline and add one predictable branch.
 *   poll   a table of pending operations; mw_ring_wait() polls their fds
 *          and performs the ready ones without blocking (MSG_DONTWAIT), so
 *          it runs where io_uring is blocked (Docker's default seccomp
 *          profile, kernel.io_uring_disabled) and under valgrind, which
 *          cannot follow threads that wait in io_uring_enter.
 *
 * Both give io_uring's semantics: an operation posted is the ring's until
 * its completion (res = bytes, 0 = EOF, or -errno; user_data as posted);
 * buffers and msghdrs are borrowed until then. A short send completes with
 * the bytes sent; the caller posts the rest. Context: the owning thread.
 */
#ifndef XP_RING_H
#define XP_RING_H

#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "mw_xport.h"

enum mw_ring_opcode { MW_RING_READ = 1, MW_RING_RECV, MW_RING_SENDMSG };

/* One completion, copied out of the ring. */
struct mw_ring_cqe {
	uint64_t ud;
	int res;
};

struct mw_ring_op; /* ring.c */

struct mw_ring {
	enum mw_io io; /* MW_IO_URING or MW_IO_POLL */
	struct io_uring uring;
	/* poll backend: pending ops, pollfd scratch and completions */
	struct mw_ring_op *ops;
	struct pollfd *pfd;
	unsigned *pfd_op;	/* pfd index -> ops index */
	struct mw_ring_cqe *cq; /* cap entries, from cq_head on */
	unsigned cap, nops;
	unsigned cq_head, cq_len;
	int err; /* sticky: an op posted to a full table */
};

/*
 * Resolves --io before any channel starts. MW_IO_POLL is taken as is;
 * MW_IO_URING and MW_IO_AUTO try to set up a small ring. AUTO falls back
 * to poll with one warning line when the kernel refuses io_uring (ENOSYS,
 * EPERM, EACCES); any other failure, or any failure under URING, is
 * returned as -errno with the text in err. Context: main thread.
 */
int mw_ring_select(enum mw_io want, enum mw_io *out, struct mw_err *err);

/* entries bounds the ops posted at once. Returns 0 or -errno. */
int mw_ring_init(struct mw_ring *r, unsigned entries, enum mw_io io);
void mw_ring_destroy(struct mw_ring *r);

/* the poll backend behind the inline entry points below */
void mw_ring_poll_post(struct mw_ring *r, enum mw_ring_opcode op, int fd,
		       void *buf, size_t len, struct msghdr *msg, uint64_t ud);
int mw_ring_poll_wait(struct mw_ring *r, unsigned long long timeout_ns);

/* Posts one operation; use the three below. */
static inline void mw_ring_post(struct mw_ring *r, enum mw_ring_opcode op,
				int fd, void *buf, size_t n, struct msghdr *msg,
				uint64_t ud)
{
	struct io_uring_sqe *sqe;

	if (r->io == MW_IO_POLL) {
		mw_ring_poll_post(r, op, fd, buf, n, msg, ud);
		return;
	}
	sqe = io_uring_get_sqe(&r->uring);
	if (!sqe) { /* SQ full: hand the batch to the kernel first */
		io_uring_submit(&r->uring);
		sqe = io_uring_get_sqe(&r->uring);
	}
	if (op == MW_RING_READ)
		io_uring_prep_read(sqe, fd, buf, (unsigned)n, 0);
	else if (op == MW_RING_RECV)
		io_uring_prep_recv(sqe, fd, buf, n, 0);
	else
		io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud);
}

/* Posts a read of n bytes of fd into buf (the channels' eventfds). */
static inline void mw_ring_post_read(struct mw_ring *r, int fd, void *buf,
				     size_t n, uint64_t ud)
{
	mw_ring_post(r, MW_RING_READ, fd, buf, n, NULL, ud);
}

/* Posts a recv of up to n bytes from socket fd into buf. */
static inline void mw_ring_post_recv(struct mw_ring *r, int fd, void *buf,
				     size_t n, uint64_t ud)
{
	mw_ring_post(r, MW_RING_RECV, fd, buf, n, NULL, ud);
}

/* Posts a sendmsg(MSG_NOSIGNAL) of msg (borrowed with its iovecs). */
static inline void mw_ring_post_sendmsg(struct mw_ring *r, int fd,
					struct msghdr *msg, uint64_t ud)
{
	mw_ring_post(r, MW_RING_SENDMSG, fd, NULL, 0, msg, ud);
}

/*
 * Submits what was posted and waits until at least one completion is
 * there, at most timeout_ns (0: no limit). Returns 0, -ETIME (the timeout
 * passed with no completion), -EINTR or another -errno. A 0 without a
 * completion is possible (no timeout, a signal): callers peek and loop.
 */
static inline int mw_ring_wait(struct mw_ring *r, unsigned long long timeout_ns)
{
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;
	int ret;

	if (r->io == MW_IO_POLL)
		return mw_ring_poll_wait(r, timeout_ns);
	if (!timeout_ns) {
		ret = io_uring_submit_and_wait(&r->uring, 1);
		return ret < 0 ? ret : 0;
	}
	ts.tv_sec = (long long)(timeout_ns / 1000000000ull);
	ts.tv_nsec = (long long)(timeout_ns % 1000000000ull);
	ret = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, &ts, NULL);
	if (ret < 0)
		return ret;
	/* a call that also submitted returns the count, not -ETIME */
	return io_uring_cq_ready(&r->uring) ? 0 : -ETIME;
}

/* The oldest completion not yet consumed, without consuming it. */
static inline bool mw_ring_peek(struct mw_ring *r, struct mw_ring_cqe *c)
{
	struct io_uring_cqe *cqe;

	if (r->io == MW_IO_POLL) {
		if (!r->cq_len)
			return false;
		*c = r->cq[r->cq_head];
		return true;
	}
	if (io_uring_peek_cqe(&r->uring, &cqe))
		return false;
	c->ud = io_uring_cqe_get_data64(cqe);
	c->res = cqe->res;
	return true;
}

/* Consumes the n oldest completions (n <= what mw_ring_peek() saw). */
static inline void mw_ring_advance(struct mw_ring *r, unsigned n)
{
	if (r->io == MW_IO_POLL) {
		r->cq_head = (r->cq_head + n) % r->cap;
		r->cq_len -= n;
		return;
	}
	io_uring_cq_advance(&r->uring, n);
}

/* ---- a frame on its way out through a ring ---- */

/* One frame on its way out: up to two pieces (header + payload, or one
 * sealed buffer), advanced over short sends. */
struct mw_sendq {
	struct iovec iov[2];
	struct msghdr msg;
};
/* Posts a sendmsg of what is left in sq (borrowed until its completion). */
void mw_sendq_post(struct mw_ring *ring, int fd, struct mw_sendq *sq,
		   uint64_t ud);
/* Accounts n sent bytes; returns true while bytes remain. */
bool mw_sendq_advance(struct mw_sendq *sq, size_t n);

#endif
