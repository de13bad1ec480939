/* SPDX-License-Identifier: MIT */
/*
 * The receiver's half of --pages (mw_pages.h): rebuilds a chunk's bytes
 * from its op stream and the cache, which it updates exactly as the
 * encoder did, then checks the END op's XXH3 before the caller may write
 * anything. The op stream arrived through an authenticated channel and
 * passed the frame's checksum, but it is still parsed as hostile: every
 * length is checked against what is left of the input and the output.
 * Context: the writer thread of the stream, in stream order.
 *
 * Test hook: MIGWIRE_TEST_FLIP_PAGE_CACHE=1 in the environment flips one
 * byte of the first cached page a REF or DELTA op uses, so that tests can
 * prove a wrong cache fails the chunk's check instead of reaching QEMU.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mw_comp.h"
#include "mw_fd.h"
#include "mw_pages.h"
#include "mw_wire.h"
#include "pages_int.h"

struct mw_pages_dec {
	/* Locking: none; the stream's writer owns the decoder. */
	struct mw_pages_cache *cache;
	uint8_t *out; /* chunk_size: the rebuilt bytes */
	size_t out_cap;
	bool flip; /* the test hook, still armed */
};

int mw_pages_dec_new(struct mw_pages_dec **out, uint64_t cache_bytes,
		     size_t chunk_size)
{
	struct mw_pages_dec *d;
	const char *flip = getenv("MIGWIRE_TEST_FLIP_PAGE_CACHE");
	int ret;

	*out = NULL;
	if (chunk_size < MW_CHUNK_MIN || chunk_size > MW_CHUNK_MAX)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	ret = mw_pages_cache_new(&d->cache, cache_bytes);
	if (ret) {
		free(d);
		return ret;
	}
	d->out_cap = chunk_size;
	d->out = mw_buf_alloc(chunk_size);
	if (!d->out) {
		mw_pages_dec_free(d);
		return -ENOMEM;
	}
	d->flip = flip && !strcmp(flip, "1");
	*out = d;
	return 0;
}

void mw_pages_dec_free(struct mw_pages_dec *d)
{
	if (!d)
		return;
	mw_pages_cache_free(d->cache);
	free(d->out);
	free(d);
}

/* A bad op stream: one line, the op's offset in the stream. */
static int bad(struct mw_err *err, size_t at, const char *what)
{
	return mw_err_set(err, -MW_E_CORRUPT,
			  "page-encoded chunk: %s at op byte %zu", what, at);
}

/* Applies a DELTA's runs in[0..n) to page; returns the bytes taken, or 0
 * when they are malformed. */
static size_t delta_apply(uint8_t *page, const uint8_t *in, size_t n)
{
	size_t used = 2;
	unsigned runs, i;

	if (n < 2)
		return 0;
	runs = mw_get_be16(in);
	for (i = 0; i < runs; i++) {
		unsigned off, len;

		if (n - used < 4)
			return 0;
		off = mw_get_be16(in + used);
		len = mw_get_be16(in + used + 2);
		used += 4;
		if (!len || off + len > MW_PAGES_PAGE || n - used < len)
			return 0;
		memcpy(page + off, in + used, len);
		used += len;
	}
	return used;
}

/* One REF, DELTA or PAGE op at in[at..n): rebuilds its page at out + *o.
 * Returns the bytes of input it took, or 0 with *err set. */
static size_t page_op(struct mw_pages_dec *d, const uint8_t *in, size_t n,
		      size_t at, size_t *o, struct mw_err *err)
{
	const uint8_t *p = in + at + 1;
	size_t left = n - at - 1, used = MW_PG_KEY_LEN;
	uint16_t block;
	uint64_t addr;
	uint8_t *page;
	long slot;

	if (left < MW_PG_KEY_LEN || d->out_cap - *o < MW_PAGES_PAGE)
		return bad(err, at, "page op past the end"), 0;
	block = mw_get_be16(p);
	addr = mw_get_be64(p + 2);
	if (!mw_pages_key_ok(block, addr))
		return bad(err, at, "page key out of range"), 0;
	slot = mw_pages_cache_find(d->cache, block, addr);
	if (in[at] != MW_PG_PAGE && slot < 0)
		return mw_err_set(err, -MW_E_CORRUPT,
				  "page-encoded chunk: block %u offset %#llx "
				  "is not in this receiver's page cache "
				  "(--page-cache differs, or the caches "
				  "diverged)",
				  block, (unsigned long long)addr),
		       0;
	page = mw_pages_cache_page(d->cache,
				   mw_pages_cache_put(d->cache, block, addr));
	if (in[at] != MW_PG_PAGE && d->flip) {
		page[0] ^= 0x5a; /* the test hook: one byte, once */
		d->flip = false;
	}
	if (in[at] == MW_PG_PAGE) {
		if (left - used < MW_PAGES_PAGE)
			return bad(err, at, "page past the end"), 0;
		memcpy(page, p + used, MW_PAGES_PAGE);
		used += MW_PAGES_PAGE;
	} else if (in[at] == MW_PG_DELTA) {
		size_t dl = delta_apply(page, p + used, left - used);

		if (!dl)
			return bad(err, at, "malformed delta"), 0;
		used += dl;
	}
	memcpy(d->out + *o, page, MW_PAGES_PAGE);
	*o += MW_PAGES_PAGE;
	return 1 + used;
}

int mw_pages_dec_chunk(struct mw_pages_dec *d, const uint8_t *in, size_t n,
		       const uint8_t **out, size_t *out_len, struct mw_err *err)
{
	size_t at = 0, o = 0;

	while (at < n) {
		size_t len;

		switch (in[at]) {
		case MW_PG_LIT:
			if (n - at < 5)
				return bad(err, at, "literal past the end");
			len = mw_get_be32(in + at + 1);
			if (len > n - at - 5 || len > d->out_cap - o)
				return bad(err, at, "literal past the end");
			memcpy(d->out + o, in + at + 5, len);
			o += len;
			at += 5 + len;
			break;
		case MW_PG_PAGE:
		case MW_PG_REF:
		case MW_PG_DELTA:
			len = page_op(d, in, n, at, &o, err);
			if (!len)
				return err->code;
			at += len;
			break;
		case MW_PG_END:
			if (n - at != 13)
				return bad(err, at, "END not at the end");
			if (mw_get_be32(in + at + 9) != o)
				return bad(err, at, "rebuilt length differs");
			if (mw_comp_checksum(d->out, o) !=
			    mw_get_be64(in + at + 1))
				return mw_err_set(
					err, -MW_E_CORRUPT,
					"page-encoded chunk: the rebuilt bytes "
					"fail their checksum (the page caches "
					"diverged); nothing of it was written");
			*out = d->out;
			*out_len = o;
			return 0;
		default:
			return bad(err, at, "unknown op");
		}
	}
	return bad(err, at, "no END op");
}
