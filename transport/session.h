/* SPDX-License-Identifier: MIT */
/*
 * What every session has on both sides: the failure latch, the signals and
 * the main thread's wait (session.c).
 */
#ifndef MW_SESSION_H
#define MW_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mw_err.h"
#include "mw_thread.h"
#include "mw_xport.h"

/*
 * Locking: failed is an atomic written once (release) under lock, which
 * also guards err; readers that saw failed != 0 (acquire) may read err
 * without the lock, since it never changes again. wake_fd is set at init.
 */
/* The session failure latch: the first error wins and wakes everyone. */
struct mw_fail {
	atomic_int failed; /* 0, or the first error code */
	pthread_mutex_t lock;
	struct mw_err err;
	int wake_fd; /* eventfd the main thread polls */
};
int mw_fail_init(struct mw_fail *f);
void mw_fail_destroy(struct mw_fail *f);
/* Records the error if it is the first; always returns code. */
int mw_fail_set(struct mw_fail *f, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline bool mw_fail_is_set(struct mw_fail *f)
{
	return atomic_load_explicit(&f->failed, memory_order_acquire) != 0;
}
void mw_fail_wake(struct mw_fail *f);
/* Reads one pending signal from the signalfd and latches it as the
 * session's failure ("interrupted by ..."). */
void mw_fail_signal(struct mw_fail *f, int sfd);
/*
 * The main threads' wait: at most 200 ms or until *next (a mw_now_ns
 * deadline), latching a signal from sfd as the failure and consuming
 * wake-ups while the session is alive. Returns true when *next has passed
 * (a stats tick is due) and moves *next one second on.
 */
bool mw_fail_poll(struct mw_fail *f, int sfd, unsigned long long *next);

/*
 * What both sides' run starts with, on the main thread before any other
 * thread: SIGPIPE ignored, the stop signals on *sfd, the I/O engine chosen
 * for want (--io) in *io, and the failure latch. Returns 0, or -errno with
 * err set and nothing left open.
 */
int mw_session_begin(struct mw_fail *fail, enum mw_io want, enum mw_io *io,
		     int *sfd, struct mw_err *err);
/* Then what both sides load before the network: --latency-file into
 * *lat and the TLS context (credentials checked) into *tls. 0 or -errno
 * with err set; the caller closes what was opened. */
int mw_session_open_files(const struct mw_xp_cfg *cfg, FILE **lat,
			  struct mw_tls_ctx **tls, struct mw_err *err);
/* Blocks SIGINT/SIGTERM/SIGHUP/SIGPIPE in the caller (before threads start) and
 * returns a signalfd for them. */
int mw_signals_block(void);

/*
 * Whether a channel that failed with code was lost to the network (reset,
 * hang-up without CLOSE, a timeout, an unreachable path: the sender may
 * resume it) rather than refused or broken for good (the peer's ERROR,
 * authentication, protocol, corruption, local errors). The one place both
 * sides ask (docs/protocol.md, "Lost and final"). --reconnect-timeout 0
 * makes every loss final; callers check that themselves.
 */
bool mw_err_resumable(int code);

/* A mw_now_ns() deadline s seconds from now; 0 (none) for s == 0. */
static inline unsigned long long mw_deadline_after(uint32_t s)
{
	return s ? mw_now_ns() + (unsigned long long)s * 1000000000ull : 0;
}

#endif
