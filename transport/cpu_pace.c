/* SPDX-License-Identifier: MIT */
/*
 * --cpu-budget: hold the process to a number of cores by pausing intake
 * (cpu_pace.h says where, and why that is safe).
 *
 * The process CPU clock sums every thread, so it is read at most every
 * SAMPLE_NS while within budget: with small chunks intake runs hundreds of
 * thousands of times a second. In debt every wake-up reads it, because the
 * workers that drain the chunks already taken in keep spending meanwhile,
 * and only the clock says when they are done.
 */
#include "cpu_pace.h"

#include <errno.h>
#include <time.h>

#include "mw_thread.h"

#define SAMPLE_NS 20000000ull /* within budget: read the clock every 20 ms */
#define SLEEP_MAX_NS \
	50000000ll	       /* re-check a failure and the clock this often */
#define SLEEP_MIN_NS 1000000ll /* shorter sleeps only spin on the clock */
#define BURST_S 0.1	       /* budget of 100 ms may be saved up */

double mw_process_cpu_seconds(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts))
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void mw_cpu_pace_init(struct mw_cpu_pace *p, double budget)
{
	pthread_mutex_init(&p->lock, NULL);
	p->budget = budget;
	/* idle time (QEMU not writing, the dirty-sync pauses) must not
	 * become a long burst above the budget later */
	p->burst = budget * BURST_S;
	p->tokens = 0;
	p->last_ns = mw_now_ns();
	p->last_cpu = mw_process_cpu_seconds();
	atomic_init(&p->slept_ns, 0);
}

void mw_cpu_pace_destroy(struct mw_cpu_pace *p)
{
	pthread_mutex_destroy(&p->lock);
}

/* The bucket after the time and CPU since the last sample; returns the
 * debt in CPU seconds (<= 0: within budget). Context: p->lock held. */
static double debt_locked(struct mw_cpu_pace *p)
{
	unsigned long long now = mw_now_ns();
	double cpu;

	if (now - p->last_ns < SAMPLE_NS && p->tokens >= 0)
		return -p->tokens;
	cpu = mw_process_cpu_seconds();
	p->tokens += p->budget * (double)(now - p->last_ns) / 1e9 -
		     (cpu - p->last_cpu);
	if (p->tokens > p->burst)
		p->tokens = p->burst;
	p->last_ns = now;
	p->last_cpu = cpu;
	return -p->tokens;
}

void mw_cpu_pace_wait(struct mw_cpu_pace *p, struct mw_fail *fail)
{
	if (!p->budget)
		return;
	while (!mw_fail_is_set(fail)) {
		struct timespec ts;
		long long ns;
		double debt;

		pthread_mutex_lock(&p->lock);
		debt = debt_locked(p);
		pthread_mutex_unlock(&p->lock);
		if (debt <= 0)
			return;
		/* the bucket refills at budget cores: the time that takes */
		ns = (long long)(debt / p->budget * 1e9);
		if (ns > SLEEP_MAX_NS)
			ns = SLEEP_MAX_NS;
		if (ns < SLEEP_MIN_NS)
			ns = SLEEP_MIN_NS;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)ns;
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		atomic_fetch_add_explicit(&p->slept_ns, (unsigned long long)ns,
					  memory_order_relaxed);
	}
}

double mw_cpu_pace_slept(struct mw_cpu_pace *p)
{
	return (double)atomic_load_explicit(&p->slept_ns,
					    memory_order_relaxed) /
	       1e9;
}
