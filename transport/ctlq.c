/* SPDX-License-Identifier: MIT */
/*
 * The control queue: small frames (OPEN, CLOSE, WINDOW, ACK, reverse data)
 * that another thread hands to a channel, which sends them before bulk
 * data. Producers may block for room (back-pressure of reverse data); the
 * consuming channel is woken through its eventfd.
 */
#include <stdlib.h>
#include <string.h>

#include "ctlq.h"
#include "mw_err.h"
#include "mw_fd.h"

struct mw_ctl *mw_ctl_new(const struct mw_frame_hdr *h, const void *payload)
{
	struct mw_ctl *c = malloc(sizeof(*c) + h->wire_len);

	if (!c)
		return NULL;
	c->next = NULL;
	c->h = *h;
	c->payload = (uint8_t *)(c + 1);
	if (payload && h->wire_len)
		memcpy(c->payload, payload, h->wire_len);
	return c;
}

void mw_ctlq_init(struct mw_ctlq *q, int efd)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->efd = efd;
}

void mw_ctlq_destroy(struct mw_ctlq *q)
{
	struct mw_ctl *c;

	while ((c = mw_ctlq_pop(q)))
		free(c);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->lock);
}

int mw_ctlq_push(struct mw_ctlq *q, struct mw_ctl *c, unsigned limit)
{
	pthread_mutex_lock(&q->lock);
	while (limit && q->n >= limit && !q->stopped)
		pthread_cond_wait(&q->cv, &q->lock);
	if (q->stopped) {
		pthread_mutex_unlock(&q->lock);
		free(c);
		return -MW_E_CANCEL;
	}
	c->next = NULL;
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	q->n++;
	pthread_mutex_unlock(&q->lock);
	mw_efd_poke(q->efd);
	return 0;
}

struct mw_ctl *mw_ctlq_pop(struct mw_ctlq *q)
{
	struct mw_ctl *c;

	pthread_mutex_lock(&q->lock);
	c = q->head;
	if (c) {
		q->head = c->next;
		if (!q->head)
			q->tail = NULL;
		q->n--;
		pthread_cond_signal(&q->cv);
	}
	pthread_mutex_unlock(&q->lock);
	return c;
}

bool mw_ctlq_empty(struct mw_ctlq *q)
{
	bool empty;

	pthread_mutex_lock(&q->lock);
	empty = !q->head;
	pthread_mutex_unlock(&q->lock);
	return empty;
}

void mw_ctlq_stop(struct mw_ctlq *q)
{
	pthread_mutex_lock(&q->lock);
	q->stopped = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->lock);
}
