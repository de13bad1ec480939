/* SPDX-License-Identifier: MIT */
/*
 * --max-bandwidth: one token bucket shared by every channel of a session.
 * A channel takes budget for each frame it is about to send and sleeps off
 * any debt on its own thread, so the cap holds across all channels.
 */
#include <errno.h>
#include <time.h>

#include "mw_thread.h"
#include "rate.h"

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
