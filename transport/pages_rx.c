/* SPDX-License-Identifier: MIT */
/*
 * The receiver's --pages glue (stream/mw_pages.h): the session's decoder,
 * set up from the first HELLO, and the rebuild of a page-encoded chunk by
 * its stream's writer, in stream order, before the write. The decoder and
 * its cache serve one stream, the first that sends a page-encoded chunk
 * (the sender encodes only QEMU's main channel).
 */
#include <errno.h>
#include <inttypes.h>

#include "mw_pages.h"
#include "recv_int.h"

int mw_rx_pages_init(struct receiver *r, const struct mw_hello *h,
		     struct mw_err *err)
{
	const struct mw_xp_cfg *cfg = r->cfg;
	uint64_t mine = cfg->page_cache / MW_PAGES_PAGE;
	int ret;

	/* a HELLO whose session then failed to start may have made one */
	mw_pages_dec_free(r->pages);
	r->pages = NULL;
	if (!(h->flags & MW_HELLO_F_PAGES))
		return 0;
	if (!cfg->pages)
		return mw_err_set(err, -MW_E_PROTO,
				  "the sender uses --pages auto, this "
				  "receiver --pages off: give both the same "
				  "--pages");
	if (h->page_cache_slots != mine)
		return mw_err_set(err, -MW_E_PROTO,
				  "the sender's --page-cache is %" PRIu64
				  " KiB, this receiver's %" PRIu64
				  " KiB: they must be equal",
				  (uint64_t)h->page_cache_slots * 4, mine * 4);
	ret = mw_pages_dec_new(&r->pages, cfg->page_cache, h->chunk_size);
	if (ret)
		return mw_err_set(err, ret, "--pages: %s", mw_strerror(ret));
	atomic_init(&r->pages_stream, -1);
	return 0;
}

int mw_rx_chunk_out(struct rx_stream *st, const struct mw_chunk *s,
		    const uint8_t **wp, size_t *wn)
{
	struct receiver *r = st->r;
	struct mw_err err = { 0 };
	int none = -1, ret;

	*wp = s->raw;
	*wn = s->raw_len;
	if (!s->pages)
		return 0;
	if (!atomic_compare_exchange_strong(&r->pages_stream, &none,
					    (int)st->id) &&
	    none != (int)st->id)
		return mw_fail_set(&r->fail, -MW_E_PROTO,
				   "stream %u: page-encoded chunk %" PRIu64
				   ", but stream %d has the page cache",
				   st->id, s->seq, none);
	ret = mw_pages_dec_chunk(r->pages, s->raw, s->raw_len, wp, wn, &err);
	if (ret)
		return mw_fail_set(&r->fail, ret,
				   "stream %u chunk %" PRIu64 ": %s", st->id,
				   s->seq, err.msg);
	return 0;
}
