/* SPDX-License-Identifier: MIT */
/* --max-bandwidth: a token bucket shared by all channels (rate.c). */
#ifndef MW_RATE_H
#define MW_RATE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Locking: rate is set at init; tokens and last_ns under lock, which is
 * held only to do the arithmetic (the sleep happens outside it).
 */
struct mw_rate {
	pthread_mutex_t lock;
	uint64_t rate; /* bytes per second; 0 = unlimited */
	double tokens, burst;
	unsigned long long last_ns;
};
void mw_rate_init(struct mw_rate *r, uint64_t rate);
/* Takes n bytes of budget; sleeps until the debt is paid. */
void mw_rate_take(struct mw_rate *r, size_t n);

#endif
