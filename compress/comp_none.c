/* SPDX-License-Identifier: MIT */
/*
 * The "none" codec: nothing is ever compressed, so every chunk travels raw
 * (MW_F_RAW) and only its checksum is computed and verified. Compress
 * always answers -MW_E_NOSPACE, which is the caller's cue to send raw; a
 * payload that claims to be none-compressed but not raw cannot exist and is
 * rejected as corrupt. Stateless: any thread.
 */
#include "comp_int.h"

static size_t none_bound(size_t raw_len)
{
	return raw_len;
}

static int none_init(struct mw_codec_ctx *ctx)
{
	ctx->priv = NULL;
	return 0;
}

static void none_destroy(struct mw_codec_ctx *ctx)
{
	(void)ctx;
}

static ssize_t none_compress(struct mw_codec_ctx *ctx, const void *src,
			     size_t n, void *dst, size_t cap,
			     struct mw_err *err)
{
	return mw_err_set(err, -MW_E_NOSPACE, "none: chunk travels raw");
}

static int none_decompress(struct mw_codec_ctx *ctx, const void *src, size_t n,
			   void *dst, size_t raw_len, struct mw_err *err)
{
	return mw_err_set(err, -MW_E_CORRUPT,
			  "none: %zu-byte payload is not marked raw", n);
}

const struct mw_comp_ops mw_comp_none_ops = {
	.name = "none",
	.level_min = 0,
	.level_max = 0,
	.level_default = 0,
	.bound = none_bound,
	.init = none_init,
	.destroy = none_destroy,
	.compress = none_compress,
	.decompress = none_decompress,
};
