/* SPDX-License-Identifier: MIT */
/*
 * The zstd codec: one chunk is one zstd frame with its content size and
 * without zstd's own checksum (every chunk already carries XXH3).
 *
 * Each context owns one ZSTD_CCtx and one ZSTD_DCtx, set up once and reused
 * (a CCtx keeps its parameters across ZSTD_compress2 calls). Levels run
 * from the fast negative ones to 19; 0 is zstd's default level (3).
 * Decompression is single-shot into exactly raw_len bytes, so no window
 * buffer is allocated whatever the frame header claims, and the payload
 * must be exactly one frame whose declared and real sizes are raw_len.
 * This is the only file that ever sees a zstd size_t code.
 * Context: one thread per context at a time.
 */
#include "comp_int.h"

#include <errno.h>
#include <stdlib.h>
#include <zstd.h>
#include <zstd_errors.h>

struct zstd_priv {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
};

static size_t zstd_bound(size_t raw_len)
{
	return ZSTD_compressBound(raw_len);
}

static void zstd_destroy(struct mw_codec_ctx *ctx)
{
	struct zstd_priv *z = ctx->priv;

	if (!z)
		return;
	ZSTD_freeCCtx(z->cctx); /* both accept NULL */
	ZSTD_freeDCtx(z->dctx);
	free(z);
	ctx->priv = NULL;
}

static int zstd_init(struct mw_codec_ctx *ctx)
{
	struct zstd_priv *z = calloc(1, sizeof(*z));

	ctx->priv = z;
	if (!z)
		return -ENOMEM;
	z->cctx = ZSTD_createCCtx();
	z->dctx = ZSTD_createDCtx();
	if (!z->cctx || !z->dctx)
		return -ENOMEM;
	/* Only out-of-range values fail, and the level was checked. */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(
		    z->cctx, ZSTD_c_compressionLevel, ctx->level)) ||
	    ZSTD_isError(
		    ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 0)))
		return -EINVAL;
	return 0;
}

static ssize_t zstd_compress(struct mw_codec_ctx *ctx, const void *src,
			     size_t n, void *dst, size_t cap,
			     struct mw_err *err)
{
	struct zstd_priv *z = ctx->priv;
	size_t ret = ZSTD_compress2(z->cctx, dst, cap, src, n);

	if (!ZSTD_isError(ret))
		return (ssize_t)ret;
	if (ZSTD_getErrorCode(ret) == ZSTD_error_dstSize_tooSmall)
		return mw_err_set(err, -MW_E_NOSPACE,
				  "zstd: %zu bytes do not shrink", n);
	return mw_err_set(err, -MW_E_CODEC, "zstd: %s", ZSTD_getErrorName(ret));
}

static int zstd_decompress(struct mw_codec_ctx *ctx, const void *src, size_t n,
			   void *dst, size_t raw_len, struct mw_err *err)
{
	struct zstd_priv *z = ctx->priv;
	unsigned long long fcs = ZSTD_getFrameContentSize(src, n);
	size_t ret;

	/* Cheap header checks first: a bomb announces itself here. */
	if (fcs == ZSTD_CONTENTSIZE_ERROR)
		return mw_err_set(err, -MW_E_CORRUPT,
				  "zstd: not a zstd frame (%zu bytes)", n);
	if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != raw_len)
		return mw_err_set(err, -MW_E_CORRUPT,
				  "zstd: frame says %llu bytes, expected %zu",
				  fcs, raw_len);
	/* ZSTD_decompressDCtx would run on into a second frame. */
	ret = ZSTD_findFrameCompressedSize(src, n);
	if (ZSTD_isError(ret))
		return mw_err_set(err, -MW_E_CORRUPT, "zstd: %s",
				  ZSTD_getErrorName(ret));
	if (ret != n)
		return mw_err_set(err, -MW_E_CORRUPT,
				  "zstd: %zu bytes of trailing data", n - ret);
	ret = ZSTD_decompressDCtx(z->dctx, dst, raw_len, src, n);
	if (ZSTD_isError(ret) &&
	    ZSTD_getErrorCode(ret) == ZSTD_error_dstSize_tooSmall)
		return mw_err_set(err, -MW_E_CORRUPT,
				  "zstd: inflates past %zu bytes", raw_len);
	if (ZSTD_isError(ret))
		return mw_err_set(err, -MW_E_CORRUPT, "zstd: %s",
				  ZSTD_getErrorName(ret));
	if (ret != raw_len)
		return mw_err_set(err, -MW_E_CORRUPT,
				  "zstd: inflates to %zu bytes, expected %zu",
				  ret, raw_len);
	return 0;
}

const struct mw_comp_ops mw_comp_zstd_ops = {
	.name = "zstd",
	.level_min = -7,
	.level_max = 19,
	.level_default = 1,
	.bound = zstd_bound,
	.init = zstd_init,
	.destroy = zstd_destroy,
	.compress = zstd_compress,
	.decompress = zstd_decompress,
};
