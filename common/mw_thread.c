/* SPDX-License-Identifier: MIT */
/* Thread naming, pinning and clocks. Called by each thread for itself. */
#include "mw_thread.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

int mw_thread_place(const char *name, const struct mw_cpus *cpus, unsigned slot)
{
	cpu_set_t set;

	pthread_setname_np(pthread_self(), name);
	if (!cpus || !cpus->n)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpus->cpu[slot % cpus->n], &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return -errno;
	return 0;
}

int mw_thread_place_all(const struct mw_cpus *cpus)
{
	cpu_set_t set;
	unsigned i;

	if (!cpus || !cpus->n)
		return 0;
	CPU_ZERO(&set);
	for (i = 0; i < cpus->n; i++)
		CPU_SET(cpus->cpu[i], &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return -errno;
	return 0;
}

double mw_thread_cpu_seconds(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

unsigned long long mw_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull +
	       (unsigned long long)ts.tv_nsec;
}
