/* SPDX-License-Identifier: MIT */
/*
 * Moving a benchmark corpus between memory and a file (bench/corpus.c):
 * the generators write one, the benchmarks read one back in whole.
 */
#ifndef MW_CORPUS_H
#define MW_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "datagen.h"

/*
 * Reads the whole regular file open on fd into a buffer it allocates
 * (*out, *n; the caller frees it). Returns 0, -EINVAL when the file is
 * empty or fstat fails, -ENOMEM, or -errno / -EIO when a read fails.
 */
int mw_corpus_read(int fd, uint8_t **out, size_t *n);

/*
 * Allocates size bytes (*out; the caller frees it) and fills them with the
 * stream cfg describes, from its start. Returns 0 or -ENOMEM.
 */
int mw_corpus_generate(uint8_t **out, size_t size,
		       const struct mw_datagen_cfg *cfg);

/* Writes all n bytes to fd across short writes. Returns 0 or -errno. */
int mw_corpus_write(int fd, const uint8_t *p, size_t n);

#endif
