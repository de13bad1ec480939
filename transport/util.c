/* SPDX-License-Identifier: MIT */
/*
 * Session-wide helpers: the failure latch (first error wins, everyone is
 * woken), the bandwidth cap, eventfds and signals. Any thread.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "mw_thread.h"
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
		struct timespec ts = { .tv_sec = (time_t)s,
				       .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };

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
