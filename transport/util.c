/* SPDX-License-Identifier: MIT */
/*
 * Session-wide helpers: the failure latch (first error wins, everyone is
 * woken), the bandwidth cap, eventfds and signals. Any thread.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "mw_thread.h"
#include "ring.h"
#include "xp_int.h"

int mw_fail_init(struct mw_fail *f)
{
	atomic_init(&f->failed, 0);
	pthread_mutex_init(&f->lock, NULL);
	f->err.code = 0;
	f->err.msg[0] = '\0';
	f->wake_fd = mw_efd_new();
	return f->wake_fd < 0 ? f->wake_fd : 0;
}

void mw_fail_destroy(struct mw_fail *f)
{
	pthread_mutex_destroy(&f->lock);
	if (f->wake_fd >= 0)
		close(f->wake_fd);
}

int mw_fail_set(struct mw_fail *f, int code, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&f->lock);
	if (!atomic_load_explicit(&f->failed, memory_order_relaxed)) {
		f->err.code = code;
		va_start(ap, fmt);
		vsnprintf(f->err.msg, sizeof(f->err.msg), fmt, ap);
		va_end(ap);
		/* Pairs with the acquire load in mw_fail_is_set(): whoever
		 * sees the latch set also sees the message. */
		atomic_store_explicit(&f->failed, code, memory_order_release);
	}
	pthread_mutex_unlock(&f->lock);
	mw_fail_wake(f);
	return code;
}

void mw_fail_wake(struct mw_fail *f)
{
	mw_efd_poke(f->wake_fd);
}

void mw_rate_init(struct mw_rate *r, uint64_t rate)
{
	pthread_mutex_init(&r->lock, NULL);
	r->rate = rate;
	/* a burst of 1/20 s keeps any 2 s window within 2.5% of the cap */
	r->burst = (double)rate / 20.0;
	r->tokens = 0;
	r->last_ns = mw_now_ns();
}

void mw_rate_take(struct mw_rate *r, size_t n)
{
	unsigned long long now;
	double debt;

	if (!r->rate)
		return;
	pthread_mutex_lock(&r->lock);
	now = mw_now_ns();
	r->tokens += (double)(now - r->last_ns) * (double)r->rate / 1e9;
	if (r->tokens > r->burst)
		r->tokens = r->burst;
	r->last_ns = now;
	r->tokens -= (double)n;
	debt = -r->tokens;
	pthread_mutex_unlock(&r->lock);
	if (debt > 0) {
		double s = debt / (double)r->rate;
		struct timespec ts = {
			.tv_sec = (time_t)s,
			.tv_nsec = (long)((s - (double)(time_t)s) * 1e9)
		};

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
}

int mw_efd_new(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	return fd < 0 ? -errno : fd;
}

void mw_efd_poke(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		return; /* counter saturated: already poked */
}

int mw_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int mw_signals_block(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sigdelset(&set, SIGPIPE);
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

struct mw_ctl *mw_ctl_new(const struct mw_frame_hdr *h, const void *payload)
{
	struct mw_ctl *c = malloc(sizeof(*c) + h->wire_len);

	if (!c)
		return NULL;
	c->next = NULL;
	c->h = *h;
	c->payload = (uint8_t *)(c + 1);
	if (payload && h->wire_len)
		memcpy(c->payload, payload, h->wire_len);
	return c;
}

void mw_ctlq_init(struct mw_ctlq *q, int efd)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->efd = efd;
}

void mw_ctlq_destroy(struct mw_ctlq *q)
{
	struct mw_ctl *c;

	while ((c = mw_ctlq_pop(q)))
		free(c);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->lock);
}

int mw_ctlq_push(struct mw_ctlq *q, struct mw_ctl *c, unsigned limit)
{
	pthread_mutex_lock(&q->lock);
	while (limit && q->n >= limit && !q->stopped)
		pthread_cond_wait(&q->cv, &q->lock);
	if (q->stopped) {
		pthread_mutex_unlock(&q->lock);
		free(c);
		return -MW_E_CANCEL;
	}
	c->next = NULL;
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	q->n++;
	pthread_mutex_unlock(&q->lock);
	mw_efd_poke(q->efd);
	return 0;
}

struct mw_ctl *mw_ctlq_pop(struct mw_ctlq *q)
{
	struct mw_ctl *c;

	pthread_mutex_lock(&q->lock);
	c = q->head;
	if (c) {
		q->head = c->next;
		if (!q->head)
			q->tail = NULL;
		q->n--;
		pthread_cond_signal(&q->cv);
	}
	pthread_mutex_unlock(&q->lock);
	return c;
}

void mw_ctlq_stop(struct mw_ctlq *q)
{
	pthread_mutex_lock(&q->lock);
	q->stopped = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->lock);
}

void mw_fd_close_write(int fd, bool is_sock)
{
	if (fd < 0)
		return;
	if (is_sock)
		shutdown(fd, SHUT_WR);
	else
		close(fd);
}

bool mw_fd_is_sock(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

unsigned mw_kind_sniff(const uint8_t *p, size_t n, bool reverse)
{
	if (reverse)
		return n >= 8 && !memcmp(p, "NBDMAGIC", 8) ? MW_SK_NBD :
							     MW_SK_UNKNOWN;
	if (n >= 4 && !memcmp(p, "QEVM", 4))
		return MW_SK_MAIN;
	if (n >= 4 && mw_get_be32(p) == 0x11223344u)
		return MW_SK_MULTIFD;
	return MW_SK_UNKNOWN;
}

void *mw_buf_alloc(size_t n)
{
	size_t page = 4096;

	return aligned_alloc(page, (n + page - 1) / page * page);
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

void mw_fail_signal(struct mw_fail *f, int sfd)
{
	struct signalfd_siginfo si;

	if (read(sfd, &si, sizeof(si)) == sizeof(si))
		mw_fail_set(f, -MW_E_CANCEL, "interrupted by %s",
			    strsignal((int)si.ssi_signo));
}

bool mw_fail_poll(struct mw_fail *f, int sfd, unsigned long long *next)
{
	struct pollfd p[2] = { { .fd = sfd, .events = POLLIN },
			       { .fd = f->wake_fd, .events = POLLIN } };
	unsigned long long now = mw_now_ns();
	int ms = now >= *next ? 0 : (int)((*next - now) / 1000000ull) + 1;
	uint64_t v;

	if (ms > 200)
		ms = 200;
	if (poll(p, 2, ms) > 0) {
		if (p[0].revents & POLLIN)
			mw_fail_signal(f, sfd);
		/* once failed the wake fd stays readable for every waiter */
		if ((p[1].revents & POLLIN) && !mw_fail_is_set(f) &&
		    read(f->wake_fd, &v, sizeof(v)) < 0)
			v = 0;
	}
	if (mw_now_ns() < *next)
		return false;
	*next += 1000000000ull;
	return true;
}
