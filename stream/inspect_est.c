/* SPDX-License-Identifier: MIT */
/*
 * Feeding an inspection and its estimates (inspect_int.h): the whole
 * stream and the page stage's residual, each cut into chunks and
 * compressed by zstd and zlib at level 1 with compress/'s codecs, as
 * `migwire send` would. The DESIGN note is in inspect.c. Context: the
 * feeding thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "inspect_int.h"

static const char *const codec_names[MW_INSPECT_CODECS] = { "zstd-1",
							    "zlib-1" };

const char *mw_inspect_codec_name(unsigned i)
{
	return i < MW_INSPECT_CODECS ? codec_names[i] : "?";
}

static int chunk_flush(struct mw_inspect *in, struct inspect_chunker *c,
		       uint64_t *out, struct mw_err *err)
{
	unsigned i;
	ssize_t r;

	if (!c->len)
		return 0;
	for (i = 0; i < MW_INSPECT_CODECS && in->cfg.codecs; i++) {
		r = mw_codec_compress(in->ctx[i], c->buf, c->len, in->cbuf,
				      in->cbuf_cap, err);
		if (r == -MW_E_NOSPACE)
			r = (ssize_t)c->len; /* send sends it raw */
		else if (r < 0)
			return (int)r;
		out[i] += (uint64_t)r;
	}
	c->len = 0;
	return 0;
}

static int chunk_add(struct mw_inspect *in, struct inspect_chunker *c,
		     uint64_t *out, const uint8_t *p, size_t n,
		     struct mw_err *err)
{
	size_t take;
	int ret;

	while (n) {
		take = in->cfg.chunk_size - c->len;
		if (take > n)
			take = n;
		memcpy(c->buf + c->len, p, take);
		c->len += take;
		p += take;
		n -= take;
		if (c->len == in->cfg.chunk_size) {
			ret = chunk_flush(in, c, out, err);
			if (ret)
				return ret;
			if (out == in->s.codec_out)
				in->s.codec_chunks++;
		}
	}
	return 0;
}

/* Stream bytes [from, to), all in hold[] or buf (at stream offset off). */
static int resid_add(struct mw_inspect *in, const uint8_t *buf, uint64_t off,
		     uint64_t from, uint64_t to, struct mw_err *err)
{
	uint64_t k;
	int ret;

	if (from >= to)
		return 0;
	if (from < off) {
		k = (to < off ? to : off) - from;
		ret = chunk_add(in, &in->resid, in->s.stage_out,
				in->hold + (from - in->hold_off), k, err);
		if (ret)
			return ret;
		in->s.stage_in += k;
		from += k;
	}
	if (from >= to)
		return 0;
	in->s.stage_in += to - from;
	return chunk_add(in, &in->resid, in->s.stage_out, buf + (from - off),
			 to - from, err);
}

/*
 * After buf (stream offset off, n bytes) went through the parser: gives
 * the residual every byte up to limit except the cut pages, and keeps
 * the rest in hold[] (at most MW_STREAM_PAGE_MAX bytes). A page that completes in a later feed begins at
 * most one page before that feed, so holding back the largest page
 * (at the end: nothing) never gives away a byte that is cut later.
 */
static int resid_advance(struct mw_inspect *in, const uint8_t *buf,
			 uint64_t off, size_t n, bool last, struct mw_err *err)
{
	uint64_t end = off + n, pos = in->hold_off;
	uint64_t limit = end;
	uint32_t i, keep = 0;
	int ret;

	if (!last)
		limit = end > MW_STREAM_PAGE_MAX ? end - MW_STREAM_PAGE_MAX : 0;
	if (limit < pos)
		limit = pos;
	for (i = 0; i < in->ncuts; i++) {
		struct inspect_cut *c = &in->cuts[i];

		if (c->start >= limit) {
			in->cuts[keep++] = *c;
			continue;
		}
		ret = resid_add(in, buf, off, pos, c->start, err);
		if (ret)
			return ret;
		pos = c->end;
	}
	in->ncuts = keep;
	if (pos < limit) {
		ret = resid_add(in, buf, off, pos, limit, err);
		if (ret)
			return ret;
		pos = limit;
	}
	/* hold [pos, end): from the old hold and/or buf */
	if (pos < off) {
		memmove(in->hold, in->hold + (pos - in->hold_off), off - pos);
		memcpy(in->hold + (off - pos), buf, n);
	} else {
		memcpy(in->hold, buf + (pos - off), end - pos);
	}
	in->hold_off = pos;
	in->hold_len = (uint32_t)(end - pos);
	return 0;
}

static int feed_one(struct mw_inspect *in, const uint8_t *buf, size_t n,
		    struct mw_err *err)
{
	uint64_t start = in->s.bytes;
	int ret;

	if (!in->s.header && in->s.nfirst < sizeof(in->s.first)) {
		size_t k = sizeof(in->s.first) - in->s.nfirst;

		memcpy(in->s.first + in->s.nfirst, buf, k < n ? k : n);
		in->s.nfirst += (uint32_t)(k < n ? k : n);
	}
	mw_stream_parser_feed(in->parser, buf, n);
	in->s.bytes = start + n;
	if (in->oom)
		return mw_err_set(err, -ENOMEM,
				  "out of memory for the page table");
	if (!in->cfg.codecs)
		return 0;
	ret = chunk_add(in, &in->whole, in->s.codec_out, buf, n, err);
	if (!ret)
		ret = resid_advance(in, buf, start, n, false, err);
	return ret;
}

int mw_inspect_feed(struct mw_inspect *in, const uint8_t *buf, size_t n,
		    struct mw_err *err)
{
	size_t k;
	int ret;

	while (n) {
		k = n < MW_INSPECT_FEED_MAX ? n : MW_INSPECT_FEED_MAX;
		ret = feed_one(in, buf, k, err);
		if (ret)
			return ret;
		buf += k;
		n -= k;
	}
	return 0;
}

int mw_inspect_finish(struct mw_inspect *in, struct mw_err *err)
{
	int ret;

	in->s.complete = mw_stream_parser_complete(in->parser);
	if (!in->cfg.codecs)
		return 0;
	if (in->whole.len)
		in->s.codec_chunks++;
	/* no new bytes: a valid pointer all the same */
	ret = resid_advance(in, in->hold, in->s.bytes, 0, true, err);
	if (!ret)
		ret = chunk_flush(in, &in->whole, in->s.codec_out, err);
	if (!ret)
		ret = chunk_flush(in, &in->resid, in->s.stage_out, err);
	return ret;
}

const struct mw_inspect_stats *mw_inspect_stats(const struct mw_inspect *in)
{
	return &in->s;
}

int mw_inspect_new(struct mw_inspect **out, const struct mw_inspect_cfg *cfg,
		   struct mw_err *err)
{
	struct mw_inspect *in = calloc(1, sizeof(*in));
	uint32_t ps = cfg->page_size ? cfg->page_size : 4096;
	unsigned i;
	int ret = -ENOMEM;

	if (!in)
		return mw_err_set(err, -ENOMEM, "out of memory");
	in->cfg = *cfg;
	in->s.page_size = ps;
	ret = mw_stream_parser_new(&in->parser, ps, mw_inspect_on_event, in);
	if (ret)
		goto err;
	ret = -ENOMEM;
	in->blocks_cap = MW_STREAM_BLOCKS_MAX;
	in->blocks = calloc(in->blocks_cap, sizeof(*in->blocks));
	in->zero = calloc(1, MW_STREAM_PAGE_MAX);
	in->cuts_cap = MW_INSPECT_CUTS;
	in->cuts = calloc(in->cuts_cap, sizeof(*in->cuts));
	in->hold = malloc(MW_STREAM_PAGE_MAX);
	if (!in->blocks || !in->zero || !in->cuts || !in->hold)
		goto err;
	if (cfg->codecs) {
		in->whole.buf = malloc(cfg->chunk_size);
		in->resid.buf = malloc(cfg->chunk_size);
		in->cbuf_cap = mw_codec_bound(MW_CODEC_ZSTD, cfg->chunk_size);
		if (in->cbuf_cap <
		    mw_codec_bound(MW_CODEC_ZLIB, cfg->chunk_size))
			in->cbuf_cap =
				mw_codec_bound(MW_CODEC_ZLIB, cfg->chunk_size);
		in->cbuf = malloc(in->cbuf_cap);
		if (!in->whole.buf || !in->resid.buf || !in->cbuf)
			goto err;
		for (i = 0; i < MW_INSPECT_CODECS; i++) {
			ret = mw_codec_ctx_new(
				&in->ctx[i], i ? MW_CODEC_ZLIB : MW_CODEC_ZSTD,
				1);
			if (ret)
				goto err;
		}
	}
	*out = in;
	return 0;
err:
	mw_inspect_free(in);
	return mw_err_set(err, ret, "inspect: %s", mw_strerror(ret));
}

void mw_inspect_free(struct mw_inspect *in)
{
	unsigned i;

	if (!in)
		return;
	for (i = 0; i < in->nblocks; i++)
		free(in->blocks[i].pages);
	for (i = 0; i < MW_INSPECT_CODECS; i++)
		mw_codec_ctx_free(in->ctx[i]);
	mw_stream_parser_free(in->parser);
	free(in->blocks);
	free(in->zero);
	free(in->cuts);
	free(in->hold);
	free(in->cache);
	free(in->owner);
	free(in->whole.buf);
	free(in->resid.buf);
	free(in->cbuf);
	free(in);
}
