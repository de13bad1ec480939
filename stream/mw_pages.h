/* SPDX-License-Identifier: MIT */
/*
 * --pages: send what changed. The sender's encoder parses QEMU's main
 * stream (qemu_parse.h) and turns each chunk into an op stream where a
 * full 4 KiB page QEMU sends again is a reference to, or a delta against,
 * the version both sides cached; the receiver's decoder rebuilds the exact
 * bytes from the op stream and its own cache. docs/protocol.md ("Page
 * encoding") specifies the op stream.
 *
 * Why the receiver needs no parser: every op that touches the cache names
 * its key (RAM block index, page offset), so the two caches see the same
 * sequence of operations as long as the chunks are decoded in stream
 * order, and they evict the same entries (CLOCK, deterministic).
 *
 * Why a wrong cache is harmless: the op stream ends with the XXH3-64 of
 * the bytes it rebuilds; the decoder checks it before anything is
 * written, so a cache that went wrong fails the chunk, never QEMU.
 *
 * Memory: the cache (fixed at creation) plus one chunk-sized buffer and a
 * page list per side; nothing grows with the stream.
 *
 * Dependencies: common/, the parser, libxxhash.
 */
#ifndef MW_PAGES_H
#define MW_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mw_err.h"

/* The page size the cache holds; pages of other sizes travel literal. */
#define MW_PAGES_PAGE 4096u
#define MW_PAGES_CACHE_DEFAULT (64ull << 20)
#define MW_PAGES_CACHE_MIN (1ull << 20)
#define MW_PAGES_CACHE_MAX (16ull << 30)

/* Op codes of the op stream (docs/protocol.md). */
enum {
	MW_PG_END = 0x00,   /* be64 XXH3 of the rebuilt bytes, be32 length */
	MW_PG_LIT = 0x01,   /* be32 len, then len bytes */
	MW_PG_PAGE = 0x02,  /* key, then the page: stored in the cache */
	MW_PG_REF = 0x03,   /* key: the cached page, unchanged */
	MW_PG_DELTA = 0x04, /* key, be16 runs, runs of be16 off, be16 len,
			       bytes: the cached page with those changes */
};
/* A key on the wire: be16 block index, be64 byte offset in the block. */
#define MW_PG_KEY_LEN 10u

/*
 * Bytes of QEMU's stream a sender puts in a chunk of chunk_size when it
 * page-encodes: the op stream of those bytes never exceeds chunk_size
 * (each page op costs at most 11 + 5 bytes more than its 4104 stream
 * bytes, plus the END op), so receiver buffers and --window still hold.
 */
size_t mw_pages_fill_cap(size_t chunk_size);

/* The cache: cache_bytes / MW_PAGES_PAGE slots. */
struct mw_pages_cache;
/* Returns 0, -EINVAL (size outside MW_PAGES_CACHE_MIN..MAX) or -ENOMEM. */
int mw_pages_cache_new(struct mw_pages_cache **out, uint64_t cache_bytes);
void mw_pages_cache_free(struct mw_pages_cache *c);
/* The slot holding key (block, addr), or -1. Changes nothing. */
long mw_pages_cache_find(const struct mw_pages_cache *c, uint16_t block,
			 uint64_t addr);
/*
 * The slot for (block, addr): the existing one (marked used), or one taken
 * from the CLOCK hand, whose previous key is forgotten. Never blocks, never
 * fails. The caller then writes the page into mw_pages_cache_page().
 */
unsigned long mw_pages_cache_put(struct mw_pages_cache *c, uint16_t block,
				 uint64_t addr);
uint8_t *mw_pages_cache_page(struct mw_pages_cache *c, unsigned long slot);
unsigned long mw_pages_cache_slots(const struct mw_pages_cache *c);

/* What an encoder did so far (reader thread's; read after it stopped). */
struct mw_pages_stats {
	uint64_t pages, refs, deltas, literal, straddle;
	uint64_t in_bytes, out_bytes; /* of page-encoded chunks */
	uint64_t chunks;	      /* page-encoded chunks */
};

struct mw_pages_enc;
/* An encoder for chunks of up to chunk_size bytes. 0, -EINVAL, -ENOMEM. */
int mw_pages_enc_new(struct mw_pages_enc **out, uint64_t cache_bytes,
		     size_t chunk_size);
void mw_pages_enc_free(struct mw_pages_enc *e);
/*
 * Feeds buf[0..n) (the next bytes of the stream, n <= the fill cap) to
 * the parser and, when encode is set and the bytes hold whole 4 KiB page
 * records, rewrites buf in place as the op stream. Returns the op
 * stream's length, or 0 when buf is left as it was (send it as is).
 * Context: the stream's reader, in stream order.
 */
size_t mw_pages_enc_chunk(struct mw_pages_enc *e, uint8_t *buf, size_t n,
			  bool encode);
const struct mw_pages_stats *mw_pages_enc_stats(const struct mw_pages_enc *e);
/* True when the parser lost the stream: the encoder only passes bytes on. */
bool mw_pages_enc_opaque(const struct mw_pages_enc *e);

struct mw_pages_dec;
/* A decoder rebuilding chunks of up to chunk_size bytes. */
int mw_pages_dec_new(struct mw_pages_dec **out, uint64_t cache_bytes,
		     size_t chunk_size);
void mw_pages_dec_free(struct mw_pages_dec *d);
/*
 * Rebuilds the op stream in[0..n) into the decoder's buffer (*out, *out_len,
 * valid until the next call) and checks it against the END op's hash.
 * Returns 0, or -MW_E_CORRUPT with the reason in *err (a malformed op
 * stream, a reference the cache does not hold, a checksum that fails).
 * Context: the stream's writer, in stream order.
 */
int mw_pages_dec_chunk(struct mw_pages_dec *d, const uint8_t *in, size_t n,
		       const uint8_t **out, size_t *out_len,
		       struct mw_err *err);

#endif
