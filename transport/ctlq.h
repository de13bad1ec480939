/* SPDX-License-Identifier: MIT */
/* The control queue: small frames handed to a channel (ctlq.c). */
#ifndef MW_CTLQ_H
#define MW_CTLQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mw_wire.h"

/*
 * Locking: head, tail, n and stopped under lock; efd is set at init. A
 * popped frame belongs to the caller, who frees it.
 */
struct mw_ctl {
	struct mw_ctl *next;
	struct mw_frame_hdr h;
	uint8_t *payload; /* h.wire_len bytes, points into this allocation */
};
struct mw_ctlq {
	pthread_mutex_t lock;
	pthread_cond_t cv; /* producers waiting for room */
	struct mw_ctl *head, *tail;
	unsigned n;
	int efd; /* the consuming channel's eventfd, poked on push */
	bool stopped;
};
/* Allocates a frame with room for h->wire_len payload bytes (copied from
 * payload when not NULL). Returns NULL when out of memory. */
struct mw_ctl *mw_ctl_new(const struct mw_frame_hdr *h, const void *payload);
void mw_ctlq_init(struct mw_ctlq *q, int efd);
void mw_ctlq_destroy(struct mw_ctlq *q);
/* Takes c. With limit > 0, blocks while the queue holds >= limit frames
 * (back-pressure for bulk reverse data); returns -MW_E_CANCEL once stopped
 * (c is freed). */
int mw_ctlq_push(struct mw_ctlq *q, struct mw_ctl *c, unsigned limit);
/* Returns the oldest frame (caller frees it) or NULL. */
struct mw_ctl *mw_ctlq_pop(struct mw_ctlq *q);
/* True when no frame waits (a snapshot: producers may push meanwhile). */
bool mw_ctlq_empty(struct mw_ctlq *q);
/* Wakes blocked producers for good. */
void mw_ctlq_stop(struct mw_ctlq *q);

#endif
