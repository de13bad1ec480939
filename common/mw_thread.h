/* SPDX-License-Identifier: MIT */
/*
 * Thread naming and CPU placement. Every worker thread calls
 * mw_thread_place() first thing, so `top -H` shows its role and --cpus keeps
 * the pipeline off the CPUs that run the VM.
 */
#ifndef MW_THREAD_H
#define MW_THREAD_H

#include "mw_parse.h"

/*
 * Names the calling thread (at most 15 chars, e.g. "mw-tx3") and, when cpus
 * is not NULL and not empty, pins it to cpus->cpu[slot % cpus->n].
 * Returns 0 or -errno from sched_setaffinity (name errors are ignored).
 * Context: the thread itself.
 */
int mw_thread_place(const char *name, const struct mw_cpus *cpus,
		    unsigned slot);

/*
 * Keeps the calling thread (the main one: stats, signals, session end) on
 * any of cpus; threads it starts inherit that until they place themselves.
 * Returns 0 or -errno. Context: the thread itself.
 */
int mw_thread_place_all(const struct mw_cpus *cpus);

/* CPU seconds the calling thread has used so far. */
double mw_thread_cpu_seconds(void);
/* Monotonic time in nanoseconds. */
unsigned long long mw_now_ns(void);

#endif
