/* SPDX-License-Identifier: MIT */
/*
 * Private to compress/ and its unit tests: the backend ops table.
 *
 * Each codec (none, zlib, zstd) fills one struct mw_comp_ops, and
 * comp_codec.c indexes them by enum mw_codec (as QEMU's MultiFDMethods).
 * The generic layer checks levels, allocates the struct mw_codec_ctx and
 * hands the backend a zeroed priv pointer to own; the backend maps its
 * library's errors to -MW_E_* with the text in *err, so no zlib or zstd
 * code ever leaves this folder.
 */
#ifndef MW_COMP_INT_H
#define MW_COMP_INT_H

#include "mw_comp.h"

struct mw_comp_ops {
	const char *name;
	int level_min, level_max, level_default;
	/* Worst-case output of the library for raw_len input bytes. */
	size_t (*bound)(size_t raw_len);
	/* Sets ctx->priv for ctx->level. Returns 0 or -ENOMEM. */
	int (*init)(struct mw_codec_ctx *ctx);
	/* Frees ctx->priv; safe after a failed init (priv may be NULL). */
	void (*destroy)(struct mw_codec_ctx *ctx);
	/* As mw_codec_compress(); called only with n > 0 and cap > 0. */
	ssize_t (*compress)(struct mw_codec_ctx *ctx, const void *src, size_t n,
			    void *dst, size_t cap, struct mw_err *err);
	/* As mw_codec_decompress(). */
	int (*decompress)(struct mw_codec_ctx *ctx, const void *src, size_t n,
			  void *dst, size_t raw_len, struct mw_err *err);
};

struct mw_codec_ctx {
	const struct mw_comp_ops *ops;
	enum mw_codec codec;
	int level;
	void *priv; /* the backend's (z_stream pair, ZSTD_CCtx/DCtx) */
};

extern const struct mw_comp_ops mw_comp_none_ops;
extern const struct mw_comp_ops mw_comp_zlib_ops;
extern const struct mw_comp_ops mw_comp_zstd_ops;

#endif
