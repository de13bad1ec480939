/* SPDX-License-Identifier: MIT */
/*
 * The chunk pool and the chunk's state machine (chunk.h), shared by the
 * sender's scheduler (tx_sched.c) and the receiver's reorder windows
 * (reasm.c, sink.c, recv_chan.c). Called under the side's scheduler lock,
 * except mw_chunk_bufs_alloc() (the chunk's owner).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "chunk.h"
#include "mw_assert.h"
#include "mw_fd.h"

#define B(s) (1u << (s))

/* allowed[side][from]: the states a chunk may go to from `from` */
static const unsigned allowed[2][MW_CHUNK_NSTATES] = {
	[MW_CHUNK_TX] = {
		[MW_CHUNK_FREE] = B(MW_CHUNK_FILLING),
		/* a reader that got nothing gives its chunk back */
		[MW_CHUNK_FILLING] = B(MW_CHUNK_QUEUED) | B(MW_CHUNK_FREE),
		/* SENDING: --adaptive claims it; FREE: compression failed */
		[MW_CHUNK_QUEUED] = B(MW_CHUNK_READY) | B(MW_CHUNK_SENDING) |
				    B(MW_CHUNK_FREE),
		/* FREE: confirmed while it waited to be sent again */
		[MW_CHUNK_READY] = B(MW_CHUNK_SENDING) | B(MW_CHUNK_FREE),
		/* SENT: kept until confirmed; READY: its channel was lost
		 * (or it could not be sealed); FREE: confirmed meanwhile */
		[MW_CHUNK_SENDING] = B(MW_CHUNK_SENT) | B(MW_CHUNK_READY) |
				     B(MW_CHUNK_FREE),
		/* FREE: confirmed; READY: its channel was lost */
		[MW_CHUNK_SENT] = B(MW_CHUNK_FREE) | B(MW_CHUNK_READY),
	},
	[MW_CHUNK_RX] = {
		[MW_CHUNK_FREE] = B(MW_CHUNK_FILLING),
		/* READY: a raw chunk verified by its channel; FREE: failed */
		[MW_CHUNK_FILLING] = B(MW_CHUNK_DECODING) | B(MW_CHUNK_READY) |
				     B(MW_CHUNK_FREE),
		[MW_CHUNK_DECODING] = B(MW_CHUNK_READY) | B(MW_CHUNK_FREE),
		[MW_CHUNK_READY] = B(MW_CHUNK_WRITING),
		[MW_CHUNK_WRITING] = B(MW_CHUNK_FREE),
	},
};

bool mw_chunk_state_ok(enum mw_chunk_side side, enum mw_chunk_state from,
		       enum mw_chunk_state to)
{
	if ((unsigned)side > MW_CHUNK_RX ||
	    (unsigned)from >= MW_CHUNK_NSTATES ||
	    (unsigned)to >= MW_CHUNK_NSTATES)
		return false;
	return allowed[side][from] & B(to);
}

const char *mw_chunk_state_name(enum mw_chunk_state st)
{
	static const char *const names[MW_CHUNK_NSTATES] = {
		"FREE",	   "FILLING",  "QUEUED",  "READY",
		"SENDING", "DECODING", "WRITING", "SENT",
	};

	return (unsigned)st < MW_CHUNK_NSTATES ? names[st] : "?";
}

void mw_chunk_set_state(struct mw_chunk *c, enum mw_chunk_state to)
{
#ifdef MW_DEBUG
	if (!mw_chunk_state_ok(c->side, c->state, to))
		fprintf(stderr, "chunk %" PRIu64 " (%s): %s -> %s\n", c->seq,
			c->side == MW_CHUNK_TX ? "send" : "recv",
			mw_chunk_state_name(c->state), mw_chunk_state_name(to));
#endif
	MW_ASSERT(mw_chunk_state_ok(c->side, c->state, to));
	c->state = (uint8_t)to;
}

int mw_chunk_bufs_alloc(const struct mw_chunk_pool *p, struct mw_chunk *c)
{
	if (!c->raw)
		c->raw = mw_buf_alloc(p->raw_cap);
	if (p->wire_cap && !c->wire)
		c->wire = mw_buf_alloc(p->wire_cap);
	return c->raw && (!p->wire_cap || c->wire) ? 0 : -ENOMEM;
}

int mw_chunk_pool_init(struct mw_chunk_pool *p, enum mw_chunk_side side,
		       unsigned count, size_t raw_cap, size_t wire_cap,
		       bool prealloc)
{
	unsigned i;

	p->count = count ? count : 1;
	p->side = side;
	p->raw_cap = raw_cap;
	p->wire_cap = wire_cap;
	p->free_list = NULL;
	p->nfresh = 0;
	/* calloc: descriptors never handed out stay untouched zero pages */
	p->chunks = calloc(p->count, sizeof(*p->chunks));
	if (!p->chunks)
		return -ENOMEM;
	for (i = 0; prealloc && i < p->count; i++)
		if (mw_chunk_bufs_alloc(p, &p->chunks[i])) {
			mw_chunk_pool_destroy(p);
			return -ENOMEM;
		}
	return 0;
}

void mw_chunk_pool_destroy(struct mw_chunk_pool *p)
{
	unsigned i;

	for (i = 0; p->chunks && i < p->count; i++) {
		free(p->chunks[i].raw);
		free(p->chunks[i].wire);
	}
	free(p->chunks);
	p->chunks = NULL;
	p->free_list = NULL;
	p->count = p->nfresh = 0;
}

struct mw_chunk *mw_chunk_pool_get(struct mw_chunk_pool *p)
{
	struct mw_chunk *c = p->free_list;

	/* the most recently freed first: its buffers are allocated and warm */
	if (c) {
		p->free_list = c->next_free;
		c->next_free = NULL;
	} else if (p->nfresh < p->count) {
		c = &p->chunks[p->nfresh++];
		c->side = (uint8_t)p->side;
	} else {
		return NULL;
	}
	mw_chunk_set_state(c, MW_CHUNK_FILLING);
	return c;
}

void mw_chunk_pool_put(struct mw_chunk_pool *p, struct mw_chunk **cp)
{
	struct mw_chunk *c = *cp;

	if (!c)
		return;
	*cp = NULL;
	MW_ASSERT(c >= p->chunks && c < p->chunks + p->count);
	mw_chunk_set_state(c, MW_CHUNK_FREE);
	c->st.tx = NULL;
	c->resend = false;
	c->chan = 0;
	c->next_free = p->free_list;
	p->free_list = c;
}
