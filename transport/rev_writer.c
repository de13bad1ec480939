/* SPDX-License-Identifier: MIT */
/*
 * The sender's reverse writers (rev_writer.h): a queue of reverse chunks
 * per stream and the thread that writes them to the source QEMU.
 *
 * DESIGN
 * The channel copies a verified reverse chunk into the queue and goes
 * back to its socket. The writer never blocks in write(2): a socket is
 * written with MSG_DONTWAIT, a pipe at most PIPE_BUF bytes at a time after
 * poll() said POLLOUT (which guarantees that much room; the descriptor's
 * O_NONBLOCK is left alone, since a terminal's is shared with the shell).
 * Waiting in poll() with the stop eventfd lets teardown end a writer whose
 * QEMU stopped reading, and bounds the wait: no progress for stall_ns
 * fails the session with one line naming the stream. EPIPE/ECONNRESET
 * mean QEMU closed the connection and wants no more replies: the rest is
 * dropped, as before.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mw_fd.h"
#include "mw_log.h"
#include "mw_thread.h"
#include "mw_err.h"
#include "rev_writer.h"

struct rev_buf {
	struct rev_buf *next;
	size_t len;
	uint8_t data[];
};

/*
 * Locking: id, fd, is_sock, stall_ns, fail, done and efd are set before
 * the thread starts. head, tail, queued, ended and stopping under lock;
 * the thread takes one buffer at a time out of the queue and owns it.
 */
struct mw_rev_writer {
	unsigned id;
	int fd;
	bool is_sock;
	unsigned long long stall_ns;
	struct mw_fail *fail;
	atomic_bool *done;
	int efd; /* wakes the thread for stop */
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct rev_buf *head, *tail;
	size_t queued;
	bool ended, stopping;
};

/* Writes what it can without blocking: bytes, or -EAGAIN / -errno. */
static ssize_t write_some(struct mw_rev_writer *w, const uint8_t *p, size_t n)
{
	struct pollfd pf = { .fd = w->fd, .events = POLLOUT };
	ssize_t r;

	if (w->is_sock) {
		r = send(w->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		return r < 0 ? -errno : r;
	}
	/* POLLOUT on a pipe: room for PIPE_BUF bytes, a write that size
	 * does not block (POLLERR: the reader is gone, write says EPIPE) */
	if (poll(&pf, 1, 0) <= 0)
		return -EAGAIN;
	r = write(w->fd, p, n > PIPE_BUF ? PIPE_BUF : n);
	return r < 0 ? -errno : r;
}

/* One buffer, all of it: 0, -EPIPE-like codes, or -MW_E_TIMEOUT (stall)
 * / -MW_E_CANCEL (stop). */
static int write_buf(struct mw_rev_writer *w, const uint8_t *p, size_t n)
{
	unsigned long long dl = mw_now_ns() + w->stall_ns;

	while (n) {
		struct pollfd pf[2] = { { .fd = w->fd, .events = POLLOUT },
					{ .fd = w->efd, .events = POLLIN } };
		unsigned long long now;
		ssize_t r = write_some(w, p, n);

		if (r > 0) {
			p += r;
			n -= (size_t)r;
			dl = mw_now_ns() + w->stall_ns;
			continue;
		}
		if (r != -EAGAIN && r != -EINTR)
			return r ? (int)r : -EIO;
		now = mw_now_ns();
		if (now >= dl)
			return -MW_E_TIMEOUT;
		poll(pf, 2, (int)((dl - now) / 1000000ull) + 1);
		if (pf[1].revents)
			return -MW_E_CANCEL;
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct mw_rev_writer *w = arg;
	bool discard = false;
	char name[16];

	snprintf(name, sizeof(name), "mw-rw%u", w->id);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		struct rev_buf *b;
		int ret;

		pthread_mutex_lock(&w->lock);
		while (!w->head && !w->ended && !w->stopping)
			pthread_cond_wait(&w->cv, &w->lock);
		b = w->stopping ? NULL : w->head;
		if (b) {
			w->head = b->next;
			if (!w->head)
				w->tail = NULL;
		}
		pthread_mutex_unlock(&w->lock);
		if (!b)
			break; /* stopped, or the END with nothing left */
		ret = discard ? 0 : write_buf(w, b->data, b->len);
		pthread_mutex_lock(&w->lock);
		w->queued -= b->len;
		pthread_mutex_unlock(&w->lock);
		free(b);
		if (ret == -EPIPE || ret == -ECONNRESET) {
			MW_LOG(MW_LOG_INFO,
			       "stream %u: local peer closed; dropping "
			       "the rest of its reverse direction",
			       w->id);
			discard = true;
		} else if (ret == -MW_E_TIMEOUT) {
			mw_fail_set(w->fail, ret,
				    "stream %u: the source QEMU read nothing "
				    "of its return path for %llu s",
				    w->id, w->stall_ns / 1000000000ull);
			return NULL;
		} else if (ret == -MW_E_CANCEL) {
			return NULL;
		} else if (ret) {
			mw_fail_set(w->fail, ret,
				    "stream %u: write to the source QEMU: %s",
				    w->id, mw_strerror(ret));
			return NULL;
		}
	}
	pthread_mutex_lock(&w->lock);
	if (w->ended && !w->stopping) {
		pthread_mutex_unlock(&w->lock);
		mw_fd_close_write(w->fd, w->is_sock);
		atomic_store(w->done, true);
		mw_fail_wake(w->fail); /* the session may be over */
		return NULL;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int mw_rev_writer_start(struct mw_rev_writer **out, unsigned id, int fd,
			bool is_sock, unsigned long long stall_ns,
			struct mw_fail *fail, atomic_bool *done)
{
	struct mw_rev_writer *w = calloc(1, sizeof(*w));
	int ret;

	if (!w)
		return -ENOMEM;
	w->id = id;
	w->fd = fd;
	w->is_sock = is_sock;
	w->stall_ns = stall_ns;
	w->fail = fail;
	w->done = done;
	w->efd = mw_efd_new();
	if (w->efd < 0) {
		ret = w->efd;
		free(w);
		return ret;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cv, NULL);
	ret = -pthread_create(&w->th, NULL, writer_main, w);
	if (ret) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->lock);
		close(w->efd);
		free(w);
		return ret;
	}
	*out = w;
	return 0;
}

int mw_rev_writer_push(struct mw_rev_writer *w, const void *p, size_t n)
{
	struct rev_buf *b;

	pthread_mutex_lock(&w->lock);
	if (w->queued + n > MW_REV_QUEUE_MAX) {
		pthread_mutex_unlock(&w->lock);
		return -MW_E_NOSPACE;
	}
	pthread_mutex_unlock(&w->lock);
	b = malloc(sizeof(*b) + n);
	if (!b)
		return -ENOMEM;
	b->next = NULL;
	b->len = n;
	memcpy(b->data, p, n);
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = b;
	else
		w->head = b;
	w->tail = b;
	w->queued += n;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

void mw_rev_writer_end(struct mw_rev_writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->ended = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->lock);
}

void mw_rev_writer_free(struct mw_rev_writer *w)
{
	struct rev_buf *b;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->lock);
	mw_efd_poke(w->efd);
	pthread_join(w->th, NULL);
	while ((b = w->head)) {
		w->head = b->next;
		free(b);
	}
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->lock);
	close(w->efd);
	free(w);
}
