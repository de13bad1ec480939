/* SPDX-License-Identifier: MIT */
/*
 * The page cache both sides of --pages keep (mw_pages.h): a fixed array of
 * 4 KiB slots, an open-addressing index from key to slot, and a CLOCK hand
 * that picks the slot a new key takes when every slot is used.
 *
 * DESIGN: the sender and the receiver must hold the same keys in the same
 * slots after every op, so nothing here depends on time, addresses or
 * randomness: the index hash is a fixed multiply, deletion is a backward
 * shift (no tombstones whose number could differ), and the hand moves only
 * in mw_pages_cache_put(). A lookup changes nothing; only a put marks a
 * slot used. Context: one thread owns a cache (the stream's reader on the
 * sender, its writer on the receiver).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mw_fd.h"
#include "mw_pages.h"

#define NO_KEY UINT64_MAX

struct mw_pages_cache {
	/* Locking: none; one thread owns the cache (see above). */
	unsigned long nslots, hand;
	uint64_t mask; /* index size - 1; the index has >= 2 * nslots */
	uint8_t *pages;
	uint64_t *key;	   /* per slot, NO_KEY when empty */
	uint8_t *used;	   /* per slot, CLOCK's reference bit */
	uint32_t *index;   /* slot + 1, or 0 for an empty bucket */
	unsigned idx_bits; /* log2 of the index size */
};

/* block in the top 16 bits, the page number below: a page offset below
 * 2^60 fits, and the callers only ever ask for such (mw_pages_key_ok) */
static uint64_t key_of(uint16_t block, uint64_t addr)
{
	return (uint64_t)block << 48 | addr / MW_PAGES_PAGE;
}

static uint64_t bucket_of(const struct mw_pages_cache *c, uint64_t key)
{
	return (key * 0x9e3779b97f4a7c15ull) >> (64 - c->idx_bits);
}

int mw_pages_cache_new(struct mw_pages_cache **out, uint64_t cache_bytes)
{
	struct mw_pages_cache *c;
	unsigned long i;

	*out = NULL;
	if (cache_bytes < MW_PAGES_CACHE_MIN ||
	    cache_bytes > MW_PAGES_CACHE_MAX)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->nslots = (unsigned long)(cache_bytes / MW_PAGES_PAGE);
	c->idx_bits = 1;
	while ((1ull << c->idx_bits) < 2ull * c->nslots)
		c->idx_bits++;
	c->mask = (1ull << c->idx_bits) - 1;
	c->pages = mw_buf_alloc((size_t)c->nslots * MW_PAGES_PAGE);
	c->key = malloc(c->nslots * sizeof(*c->key));
	c->used = calloc(c->nslots, 1);
	c->index = calloc(c->mask + 1, sizeof(*c->index));
	if (!c->pages || !c->key || !c->used || !c->index) {
		mw_pages_cache_free(c);
		return -ENOMEM;
	}
	for (i = 0; i < c->nslots; i++)
		c->key[i] = NO_KEY;
	*out = c;
	return 0;
}

void mw_pages_cache_free(struct mw_pages_cache *c)
{
	if (!c)
		return;
	free(c->pages);
	free(c->key);
	free(c->used);
	free(c->index);
	free(c);
}

unsigned long mw_pages_cache_slots(const struct mw_pages_cache *c)
{
	return c->nslots;
}

uint8_t *mw_pages_cache_page(struct mw_pages_cache *c, unsigned long slot)
{
	return c->pages + (size_t)slot * MW_PAGES_PAGE;
}

/* The bucket holding key, or the empty bucket where it would go. */
static uint64_t probe(const struct mw_pages_cache *c, uint64_t key)
{
	uint64_t b = bucket_of(c, key);

	while (c->index[b] && c->key[c->index[b] - 1] != key)
		b = (b + 1) & c->mask;
	return b;
}

long mw_pages_cache_find(const struct mw_pages_cache *c, uint16_t block,
			 uint64_t addr)
{
	uint64_t b = probe(c, key_of(block, addr));

	return c->index[b] ? (long)c->index[b] - 1 : -1;
}

/* Removes the bucket b's entry and shifts back the run behind it, so that
 * every key stays reachable from its home bucket without tombstones. */
static void index_remove(struct mw_pages_cache *c, uint64_t b)
{
	uint64_t j = b;

	c->index[b] = 0;
	for (;;) {
		uint64_t home;

		j = (j + 1) & c->mask;
		if (!c->index[j])
			return;
		home = bucket_of(c, c->key[c->index[j] - 1]);
		/* j's entry may move to b when b lies cyclically in
		 * [home, j) */
		if (((j - home) & c->mask) >= ((j - b) & c->mask)) {
			c->index[b] = c->index[j];
			c->index[j] = 0;
			b = j;
		}
	}
}

unsigned long mw_pages_cache_put(struct mw_pages_cache *c, uint16_t block,
				 uint64_t addr)
{
	uint64_t key = key_of(block, addr), b = probe(c, key);
	unsigned long slot;

	if (c->index[b]) {
		slot = c->index[b] - 1;
		c->used[slot] = 1;
		return slot;
	}
	while (c->used[c->hand]) {
		c->used[c->hand] = 0;
		c->hand = (c->hand + 1) % c->nslots;
	}
	slot = c->hand;
	c->hand = (c->hand + 1) % c->nslots;
	if (c->key[slot] != NO_KEY) {
		index_remove(c, probe(c, c->key[slot]));
		b = probe(c, key); /* the shift may have moved the gap */
	}
	c->key[slot] = key;
	c->used[slot] = 1;
	c->index[b] = (uint32_t)(slot + 1);
	return slot;
}
