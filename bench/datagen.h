/* SPDX-License-Identifier: MIT */
/*
 * A seeded generator of synthetic "guest RAM" for benchmarks and tests.
 *
 * The stream is a sequence of 4 KiB pages. Each page is one of four kinds,
 * drawn with the configured weights: zero pages, text-like pages (English
 * words), code-like pages (x86-64 instruction patterns with repeats) and
 * random pages (incompressible). A page's kind and bytes depend only on
 * (seed, page index), so any byte range of a stream can be generated on
 * its own, in any order, on any thread, and is identical every time.
 */
#ifndef MW_DATAGEN_H
#define MW_DATAGEN_H

#include <stddef.h>
#include <stdint.h>

#define MW_DATAGEN_PAGE 4096u

enum mw_datagen_kind {
	MW_DATAGEN_ZERO = 0,
	MW_DATAGEN_TEXT,
	MW_DATAGEN_CODE,
	MW_DATAGEN_RANDOM,
	MW_DATAGEN_KINDS
};

struct mw_datagen_cfg {
	uint64_t seed;
	/*
	 * Weights of the page kinds, indexed by enum mw_datagen_kind. They
	 * are normalized by their sum, which must be > 0. Defaults: zero 0.25,
	 * text 0.25, code 0.15, random 0.35.
	 */
	double weight[MW_DATAGEN_KINDS];
	/*
	 * Consecutive pages that share one kind (>= 1; default 1). Larger
	 * runs mimic guests whose free or cached memory sits in big regions.
	 */
	unsigned run_pages;
};

/* Fills *cfg with the defaults above and seed 0. */
void mw_datagen_cfg_default(struct mw_datagen_cfg *cfg);

/*
 * Parses one kind's weight as the command lines take it: a fraction in
 * [0, 1]. Returns 0 or -EINVAL (*out untouched).
 */
int mw_datagen_weight_parse(const char *s, double *out);

/* The kind of page number page_idx of the stream cfg describes. */
enum mw_datagen_kind mw_datagen_page_kind(const struct mw_datagen_cfg *cfg,
					  uint64_t page_idx);

/*
 * Writes bytes [offset, offset + len) of the stream cfg describes into buf.
 * offset need not be page-aligned. Pure function: any thread.
 */
void mw_datagen_fill(uint8_t *buf, size_t len, const struct mw_datagen_cfg *cfg,
		     uint64_t offset);

#endif
