/* SPDX-License-Identifier: MIT */
/*
 * --cpu-budget: the process's CPU use held to a number of cores
 * (cpu_pace.c). Private to transport/.
 */
#ifndef MW_CPU_PACE_H
#define MW_CPU_PACE_H

#include <pthread.h>
#include <stdatomic.h>

#include "session.h"

/*
 * A token bucket of CPU seconds: it fills at budget cores of wall time,
 * up to a small burst, and the process's own CPU clock drains it. Intake
 * (send: the readers, before they take the next chunk of QEMU's bytes;
 * recv: a channel, before it hands a chunk to the decompress pool) calls
 * mw_cpu_pace_wait() and sleeps while the bucket is in debt. Everything
 * migwire does follows from what it takes in, so holding intake back holds
 * the whole process to the budget; nothing is dropped, the migration only
 * slows, and QEMU's writes block meanwhile, so its bandwidth estimate (and
 * with it the downtime it predicts) sees the true rate.
 *
 * Locking: budget and burst are set at init and fixed. lock guards tokens,
 * last_ns and last_cpu and is held only for the arithmetic, never over a
 * sleep (as struct mw_rate). slept_ns is a relaxed statistic.
 */
struct mw_cpu_pace {
	pthread_mutex_t lock;
	double budget; /* cores; 0: no budget, mw_cpu_pace_wait returns */
	double burst;  /* CPU seconds the bucket holds at most */
	double tokens; /* CPU seconds that may be spent now; < 0: debt */
	unsigned long long last_ns; /* mw_now_ns() of the last sample */
	double last_cpu;	    /* the process's CPU seconds then */
	atomic_ullong slept_ns;	    /* intake held back, summed over callers */
};

void mw_cpu_pace_init(struct mw_cpu_pace *p, double budget);
void mw_cpu_pace_destroy(struct mw_cpu_pace *p);
/*
 * Returns once the process is within its budget, or the session failed.
 * Context: an intake thread holding no lock (it may sleep up to 50 ms at a
 * time; a failure is seen within that).
 */
void mw_cpu_pace_wait(struct mw_cpu_pace *p, struct mw_fail *fail);
/* Seconds intake was held back for the budget (for stats). */
double mw_cpu_pace_slept(struct mw_cpu_pace *p);
/* CPU seconds the whole process has used (all threads, user + system). */
double mw_process_cpu_seconds(void);

#endif
