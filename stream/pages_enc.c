/* SPDX-License-Identifier: MIT */
/*
 * The sender's half of --pages (mw_pages.h): feeds each chunk to the
 * stream parser, notes where the chunk holds a whole 4 KiB page record,
 * and writes the chunk again as an op stream where each such page is a
 * reference to the cached version, a delta against it, or the page
 * itself (which the cache then keeps). Context: the reader thread of the
 * one stream that carries QEMU's main channel, in stream order.
 *
 * A page split across two chunks stays literal and leaves the cache as
 * it was: both sides keep the older version, which is still the same on
 * both, so later references stay exact. The same holds for pages QEMU
 * sends as ZERO records: the cache is not a copy of the guest, only a
 * dictionary both sides agree on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mw_assert.h"
#include "mw_comp.h"
#include "mw_fd.h"
#include "mw_log.h"
#include "mw_pages.h"
#include "mw_wire.h"
#include "pages_int.h"
#include "qemu_parse.h"

/* A delta longer than this goes as the page: past it the codec does as
 * well on the literal page and the receiver's apply costs more. */
#define DELTA_MAX (MW_PAGES_PAGE / 2)

struct page_at {
	uint32_t off; /* of the page payload in the chunk */
	uint16_t block;
	uint64_t addr;
};

struct mw_pages_enc {
	/* Locking: none; the stream's reader owns the encoder. */
	struct mw_stream_parser *parser;
	struct mw_pages_cache *cache;
	const uint8_t *buf; /* the chunk being fed, for the callback */
	size_t buf_len;
	struct page_at *at; /* whole pages of the chunk, in order */
	size_t nat, at_cap;
	uint8_t *out; /* chunk_size: the op stream being written */
	size_t out_cap;
	struct mw_pages_stats stats;
};

size_t mw_pages_fill_cap(size_t chunk_size)
{
	return chunk_size - chunk_size / 128 - 64;
}

bool mw_pages_key_ok(uint16_t block, uint64_t addr)
{
	return block < MW_STREAM_BLOCKS_MAX && !(addr % MW_PAGES_PAGE) &&
	       addr < (1ull << 60);
}

static void on_event(void *opaque, const struct mw_stream_ev *ev)
{
	struct mw_pages_enc *e = opaque;
	const uint8_t *d;

	if (ev->type == MW_STREAM_EV_OPAQUE)
		MW_LOG(MW_LOG_INFO,
		       "--pages: the stream is understood up to byte %llu "
		       "(%s); from there on it passes as it is",
		       (unsigned long long)ev->off, ev->opaque.reason);
	if (ev->type != MW_STREAM_EV_RAM || ev->ram.kind != MW_RAM_K_PAGE ||
	    ev->ram.len != MW_PAGES_PAGE)
		return;
	if (!mw_pages_key_ok(ev->ram.block, ev->ram.addr))
		return;
	d = ev->ram.data;
	/* in place, not from the parser's bounce page: whole in this chunk */
	if (d < e->buf || d + MW_PAGES_PAGE > e->buf + e->buf_len) {
		e->stats.straddle++;
		return;
	}
	MW_BUG_ON(e->nat == e->at_cap);
	e->at[e->nat++] = (struct page_at){ .off = (uint32_t)(d - e->buf),
					    .block = ev->ram.block,
					    .addr = ev->ram.addr };
}

int mw_pages_enc_new(struct mw_pages_enc **out, uint64_t cache_bytes,
		     size_t chunk_size)
{
	struct mw_pages_enc *e;
	int ret;

	*out = NULL;
	if (chunk_size < MW_CHUNK_MIN || chunk_size > MW_CHUNK_MAX)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	ret = mw_pages_cache_new(&e->cache, cache_bytes);
	if (ret)
		goto err;
	ret = mw_stream_parser_new(&e->parser, 0, on_event, e);
	if (ret)
		goto err;
	e->at_cap = chunk_size / MW_PAGES_PAGE + 1;
	e->at = calloc(e->at_cap, sizeof(*e->at));
	e->out_cap = chunk_size;
	e->out = mw_buf_alloc(chunk_size);
	if (!e->at || !e->out) {
		ret = -ENOMEM;
		goto err;
	}
	*out = e;
	return 0;
err:
	mw_pages_enc_free(e);
	return ret;
}

void mw_pages_enc_free(struct mw_pages_enc *e)
{
	if (!e)
		return;
	mw_stream_parser_free(e->parser);
	mw_pages_cache_free(e->cache);
	free(e->at);
	free(e->out);
	free(e);
}

const struct mw_pages_stats *mw_pages_enc_stats(const struct mw_pages_enc *e)
{
	return &e->stats;
}

bool mw_pages_enc_opaque(const struct mw_pages_enc *e)
{
	return mw_stream_parser_opaque(e->parser);
}

static uint8_t *op_room(struct mw_pages_enc *e, size_t *w, size_t need)
{
	uint8_t *p = e->out + *w;

	/* mw_pages_fill_cap() makes this unreachable; a wrong bound must
	 * not write past the buffer */
	MW_BUG_ON(*w + need > e->out_cap);
	*w += need;
	return p;
}

static void put_lit(struct mw_pages_enc *e, size_t *w, const uint8_t *p,
		    size_t n)
{
	uint8_t *o;

	if (!n)
		return;
	o = op_room(e, w, 5 + n);
	o[0] = MW_PG_LIT;
	mw_put_be32(o + 1, (uint32_t)n);
	memcpy(o + 5, p, n);
}

static uint8_t *put_key(struct mw_pages_enc *e, size_t *w, uint8_t op,
			const struct page_at *a, size_t extra)
{
	uint8_t *o = op_room(e, w, 1 + MW_PG_KEY_LEN + extra);

	o[0] = op;
	mw_put_be16(o + 1, a->block);
	mw_put_be64(o + 3, a->addr);
	return o + 1 + MW_PG_KEY_LEN;
}

/*
 * The runs where page differs from old, as be16 count then (be16 off,
 * be16 len, bytes) each, into o; compared a word at a time, then trimmed
 * to the bytes. Returns the length, or 0 when it would exceed DELTA_MAX.
 */
static size_t delta_encode(const uint8_t *old, const uint8_t *page, uint8_t *o)
{
	size_t len = 2, i = 0;
	unsigned runs = 0;

	while (i < MW_PAGES_PAGE) {
		size_t s, t;

		if (!memcmp(old + i, page + i, 8)) {
			i += 8;
			continue;
		}
		s = i;
		while (i < MW_PAGES_PAGE && memcmp(old + i, page + i, 8))
			i += 8;
		t = i;
		while (old[s] == page[s])
			s++;
		while (old[t - 1] == page[t - 1])
			t--;
		if (len + 4 + (t - s) > DELTA_MAX)
			return 0;
		mw_put_be16(o + len, (uint16_t)s);
		mw_put_be16(o + len + 2, (uint16_t)(t - s));
		memcpy(o + len + 4, page + s, t - s);
		len += 4 + (t - s);
		runs++;
	}
	mw_put_be16(o, (uint16_t)runs);
	return len;
}

/* One page: a reference, a delta or the page, and the cache follows. */
static void put_page(struct mw_pages_enc *e, size_t *w, const struct page_at *a)
{
	const uint8_t *page = e->buf + a->off;
	long slot = mw_pages_cache_find(e->cache, a->block, a->addr);
	uint8_t *cached;

	if (slot >= 0) {
		cached = mw_pages_cache_page(e->cache, (unsigned long)slot);
		if (!memcmp(cached, page, MW_PAGES_PAGE)) {
			put_key(e, w, MW_PG_REF, a, 0);
			mw_pages_cache_put(e->cache, a->block, a->addr);
			e->stats.refs++;
			return;
		}
		/* the delta goes straight into the op stream; the room for
		 * a whole page is there (it would take the page's place) */
		{
			size_t at = *w, dl;
			uint8_t *o =
				put_key(e, w, MW_PG_DELTA, a, MW_PAGES_PAGE);

			dl = delta_encode(cached, page, o);
			*w = dl ? at + 1 + MW_PG_KEY_LEN + dl : at;
			if (dl) {
				mw_pages_cache_put(e->cache, a->block, a->addr);
				memcpy(cached, page, MW_PAGES_PAGE);
				e->stats.deltas++;
				return;
			}
		}
	}
	memcpy(put_key(e, w, MW_PG_PAGE, a, MW_PAGES_PAGE), page,
	       MW_PAGES_PAGE);
	cached = mw_pages_cache_page(
		e->cache, mw_pages_cache_put(e->cache, a->block, a->addr));
	memcpy(cached, page, MW_PAGES_PAGE);
	e->stats.literal++;
}

size_t mw_pages_enc_chunk(struct mw_pages_enc *e, uint8_t *buf, size_t n,
			  bool encode)
{
	size_t i, pos = 0, w = 0;
	uint8_t *o;

	MW_BUG_ON(n > mw_pages_fill_cap(e->out_cap));
	e->buf = buf;
	e->buf_len = n;
	e->nat = 0;
	mw_stream_parser_feed(e->parser, buf, n);
	e->buf = NULL;
	e->stats.pages += e->nat;
	if (!encode || !e->nat)
		return 0;
	e->buf = buf;
	for (i = 0; i < e->nat; i++) {
		put_lit(e, &w, buf + pos, e->at[i].off - pos);
		put_page(e, &w, &e->at[i]);
		pos = e->at[i].off + MW_PAGES_PAGE;
	}
	put_lit(e, &w, buf + pos, n - pos);
	o = op_room(e, &w, 13);
	o[0] = MW_PG_END;
	mw_put_be64(o + 1, mw_comp_checksum(buf, n));
	mw_put_be32(o + 9, (uint32_t)n);
	e->buf = NULL;
	memcpy(buf, e->out, w);
	e->stats.chunks++;
	e->stats.in_bytes += n;
	e->stats.out_bytes += w;
	return w;
}
