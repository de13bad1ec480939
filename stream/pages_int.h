/* SPDX-License-Identifier: MIT */
/* Private to stream/'s --pages files (mw_pages.h): what both halves check. */
#ifndef MW_PAGES_INT_H
#define MW_PAGES_INT_H

#include <stdbool.h>
#include <stdint.h>

/* A key both sides may cache: a block the parser can name, a page-aligned
 * offset that fits the cache's key. */
bool mw_pages_key_ok(uint16_t block, uint64_t addr);

#endif
