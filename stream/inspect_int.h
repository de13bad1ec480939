/* SPDX-License-Identifier: MIT */
/*
 * Private to stream/: the state of one inspection, shared by inspect.c
 * (events, page history) and inspect_est.c (the codec and page-stage
 * estimates, feeding). The DESIGN note is in inspect.c.
 */
#ifndef MW_INSPECT_INT_H
#define MW_INSPECT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mw_comp.h"
#include "mw_inspect.h"
#include "qemu_parse.h"

/* mw_inspect_feed hands the parser at most this much at a time ... */
#define MW_INSPECT_FEED_MAX (1u << 20)
/* ... so that one feed cuts at most this many pages (1 KiB pages). */
#define MW_INSPECT_CUTS (MW_INSPECT_FEED_MAX / 1024 + 128)

/* One target page's history (16 bytes: memory is 1/256 of guest RAM).
 * Locking: none, as for all of struct mw_inspect below. */
struct page_ent {
	uint64_t hash;	/* XXH3 of the last full version */
	uint32_t slot;	/* its contents in cache slot - 1; 0: not cached */
	uint16_t sends; /* records for this page, saturating */
	uint8_t state;	/* PG_*: how it was last sent */
};

struct inspect_block {
	uint64_t npages;
	struct page_ent *pages;
};

/* Bytes waiting to be compressed as one chunk. */
struct inspect_chunker {
	uint8_t *buf;
	size_t len;
};

/* Stream bytes [start, end) that the page stage would not send. */
struct inspect_cut {
	uint64_t start, end;
};

struct mw_inspect {
	/* Locking: none; the one thread that feeds owns it all. */
	struct mw_inspect_cfg cfg;
	struct mw_inspect_stats s;
	struct mw_stream_parser *parser;
	bool oom;

	struct inspect_block *blocks;
	uint32_t nblocks, blocks_cap;
	uint64_t pages;	   /* in all blocks' page tables */
	uint64_t last_pos; /* (block << 48 | page) of the last page record */
	uint8_t *zero;	   /* a zero page to diff against */

	uint8_t *cache;		 /* nslots pages */
	struct page_ent **owner; /* the page whose contents a slot holds */
	uint32_t nslots, next_slot;

	struct mw_codec_ctx *ctx[MW_INSPECT_CODECS];
	uint8_t *cbuf; /* compressed output, discarded */
	size_t cbuf_cap;
	struct inspect_chunker whole, resid;

	/* the residual: bytes not yet given to resid, held back until no
	 * page that could still be cut can start among them */
	struct inspect_cut *cuts;
	uint32_t ncuts, cuts_cap;
	uint8_t *hold;
	uint32_t hold_len;
	uint64_t hold_off; /* stream offset of hold[0] */
};

/* inspect.c: the parser's callback. */
void mw_inspect_on_event(void *opaque, const struct mw_stream_ev *ev);

#endif
