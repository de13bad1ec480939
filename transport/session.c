/* SPDX-License-Identifier: MIT */
/*
 * What every session has, on both sides: the failure latch (the first error
 * wins and wakes everyone), the blocked signals read through a signalfd, and
 * the main thread's wait that also paces the stats tick. Any thread may set
 * the latch; only the main thread polls.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "mw_fd.h"
#include "mw_thread.h"
#include "ring.h"
#include "session.h"

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

bool mw_err_resumable(int code)
{
	switch (code) {
	case -MW_E_CLOSED:  /* EOF, FIN without CLOSE, or TLS cut short */
	case -MW_E_TIMEOUT: /* stalled, or the heartbeat's "peer silent" */
	case -ECONNRESET:
	case -EPIPE:
	case -ETIMEDOUT: /* TCP user timeout, keepalive */
	case -ECONNABORTED:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -ENETDOWN:
		return true;
	default:
		return false;
	}
}

int mw_signals_block(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP); /* a dropped ssh session: end cleanly */
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sigdelset(&set, SIGPIPE);
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
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

int mw_session_begin(struct mw_fail *fail, enum mw_io want, enum mw_io *io,
		     int *sfd, struct mw_err *err)
{
	int ret;

	/* a peer that goes away must be an error return, not a signal */
	signal(SIGPIPE, SIG_IGN);
	*sfd = mw_signals_block();
	if (*sfd < 0)
		return mw_err_set(err, *sfd, "signalfd: %s", mw_strerror(*sfd));
	ret = mw_ring_select(want, io, err);
	if (!ret)
		ret = mw_fail_init(fail);
	if (ret) {
		close(*sfd);
		*sfd = -1;
	}
	return ret;
}

int mw_session_open_files(const struct mw_xp_cfg *cfg, FILE **lat,
			  struct mw_tls_ctx **tls, struct mw_err *err)
{
	if (cfg->latency_file && !(*lat = fopen(cfg->latency_file, "we")))
		return mw_err_set(err, -errno, "latency file %s: %s",
				  cfg->latency_file, strerror(errno));
	if (cfg->tls.mode != MW_TLS_OFF)
		return mw_tls_ctx_new(tls, &cfg->tls, err);
	return 0;
}
