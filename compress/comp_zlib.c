/* SPDX-License-Identifier: MIT */
/*
 * The zlib codec: one chunk is one zlib-format stream (RFC 1950, so the
 * Adler-32 trailer is checked too) at deflate levels 1..9.
 *
 * Each context keeps one deflate and one inflate stream for its lifetime
 * and resets them per chunk, so the hot path never allocates. Inflate runs
 * with Z_FINISH into exactly raw_len bytes of room: a payload that wants
 * more room (a bomb), ends early, or leaves input unread is corrupt.
 * zlib's counters are 32-bit, so larger chunks are refused up front.
 * Context: one thread per context at a time.
 */
#include "comp_int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

struct zlib_priv {
	z_stream def, inf;
	bool def_ok, inf_ok; /* which streams need their End() */
};

static size_t zlib_bound(size_t raw_len)
{
	return compressBound((uLong)raw_len);
}

static void zlib_destroy(struct mw_codec_ctx *ctx)
{
	struct zlib_priv *z = ctx->priv;

	if (!z)
		return;
	if (z->def_ok)
		deflateEnd(&z->def);
	if (z->inf_ok)
		inflateEnd(&z->inf);
	free(z);
	ctx->priv = NULL;
}

static int zlib_init(struct mw_codec_ctx *ctx)
{
	struct zlib_priv *z = calloc(1, sizeof(*z));

	ctx->priv = z;
	if (!z)
		return -ENOMEM;
	/* Levels were range-checked, so only Z_MEM_ERROR is left. */
	z->def_ok = deflateInit(&z->def, ctx->level) == Z_OK;
	z->inf_ok = inflateInit(&z->inf) == Z_OK;
	return z->def_ok && z->inf_ok ? 0 : -ENOMEM;
}

static ssize_t zlib_compress(struct mw_codec_ctx *ctx, const void *src,
			     size_t n, void *dst, size_t cap,
			     struct mw_err *err)
{
	struct zlib_priv *z = ctx->priv;
	z_stream *s = &z->def;
	int ret;

	if (n > UINT_MAX)
		return mw_err_set(err, -MW_E_CODEC, "zlib: %zu-byte chunk", n);
	if (cap > UINT_MAX)
		cap = UINT_MAX;
	deflateReset(s);
	s->next_in = (Bytef *)(uintptr_t)src; /* zlib never writes it */
	s->avail_in = (uInt)n;
	s->next_out = dst;
	s->avail_out = (uInt)cap;
	ret = deflate(s, Z_FINISH);
	if (ret == Z_STREAM_END)
		return (ssize_t)s->total_out;
	if (ret == Z_OK || ret == Z_BUF_ERROR) /* ran out of room */
		return mw_err_set(err, -MW_E_NOSPACE,
				  "zlib: %zu bytes do not shrink", n);
	return mw_err_set(err, -MW_E_CODEC, "zlib: deflate: %s",
			  s->msg ? s->msg : zError(ret));
}

static int zlib_decompress(struct mw_codec_ctx *ctx, const void *src, size_t n,
			   void *dst, size_t raw_len, struct mw_err *err)
{
	struct zlib_priv *z = ctx->priv;
	z_stream *s = &z->inf;
	int ret;

	if (n > UINT_MAX || raw_len > UINT_MAX)
		return mw_err_set(err, -MW_E_CORRUPT,
				  "zlib: %zu-byte payload of %zu raw bytes", n,
				  raw_len);
	inflateReset(s);
	s->next_in = (Bytef *)(uintptr_t)src;
	s->avail_in = (uInt)n;
	s->next_out = dst;
	s->avail_out = (uInt)raw_len;
	ret = inflate(s, Z_FINISH);
	if (ret == Z_STREAM_END) {
		if (s->avail_out)
			return mw_err_set(err, -MW_E_CORRUPT,
					  "zlib: inflates to %lu bytes, "
					  "expected %zu",
					  s->total_out, raw_len);
		if (s->avail_in)
			return mw_err_set(err, -MW_E_CORRUPT,
					  "zlib: %u bytes of trailing data",
					  s->avail_in);
		return 0;
	}
	/* Under Z_FINISH, Z_BUF_ERROR means it stopped short of the end. */
	if (ret == Z_BUF_ERROR && !s->avail_out && s->avail_in)
		return mw_err_set(err, -MW_E_CORRUPT,
				  "zlib: inflates past %zu bytes", raw_len);
	if (ret == Z_BUF_ERROR)
		return mw_err_set(err, -MW_E_CORRUPT,
				  "zlib: truncated after %lu bytes",
				  s->total_out);
	return mw_err_set(err, -MW_E_CORRUPT, "zlib: inflate: %s",
			  s->msg ? s->msg : zError(ret));
}

const struct mw_comp_ops mw_comp_zlib_ops = {
	.name = "zlib",
	.level_min = 1,
	.level_max = 9,
	.level_default = 1,
	.bound = zlib_bound,
	.init = zlib_init,
	.destroy = zlib_destroy,
	.compress = zlib_compress,
	.decompress = zlib_decompress,
};
