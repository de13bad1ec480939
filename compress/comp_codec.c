/* SPDX-License-Identifier: MIT */
/*
 * The codec front end: names, levels and bounds per codec, the checksum,
 * and the struct mw_codec_ctx that dispatches to the backend ops table.
 *
 * The front end enforces what every backend would otherwise repeat: the
 * level range, and the rule that compressed output must be smaller than its
 * input (the backend is handed at most n - 1 bytes of room, so "did not
 * shrink" and "did not fit" are the same -MW_E_NOSPACE). Pure functions and
 * per-context state only: any thread, one thread per context at a time.
 */
#include "comp_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#ifdef MW_HAVE_XXH_DISPATCH
/* XXH3_64bits becomes the run-time dispatched (SSE2/AVX2/AVX512) one */
#include <xxh_x86dispatch.h>
#endif

static const struct mw_comp_ops *const comp_ops[MW_CODEC_MAX] = {
	[MW_CODEC_NONE] = &mw_comp_none_ops,
	[MW_CODEC_ZLIB] = &mw_comp_zlib_ops,
	[MW_CODEC_ZSTD] = &mw_comp_zstd_ops,
};

/* NULL for a value outside the enum (e.g. a hostile wire byte). */
static const struct mw_comp_ops *comp_ops_get(enum mw_codec c)
{
	if ((unsigned)c >= MW_CODEC_MAX)
		return NULL;
	return comp_ops[c];
}

const char *mw_codec_name(enum mw_codec c)
{
	const struct mw_comp_ops *ops = comp_ops_get(c);

	return ops ? ops->name : "unknown";
}

int mw_codec_parse(const char *s, enum mw_codec *out)
{
	unsigned c;

	for (c = 0; c < MW_CODEC_MAX; c++) {
		if (s && !strcmp(s, comp_ops[c]->name)) {
			*out = (enum mw_codec)c;
			return 0;
		}
	}
	return -EINVAL;
}

int mw_codec_level_default(enum mw_codec c)
{
	const struct mw_comp_ops *ops = comp_ops_get(c);

	return ops ? ops->level_default : 0;
}

void mw_codec_level_range(enum mw_codec c, int *min, int *max)
{
	const struct mw_comp_ops *ops = comp_ops_get(c);

	*min = ops ? ops->level_min : 0;
	*max = ops ? ops->level_max : 0;
}

/*
 * The largest bound of all codecs, whatever c is: a buffer sized once
 * stays big enough if the codec changes, and a wrong codec byte can never
 * make a buffer too small.
 */
size_t mw_codec_bound(enum mw_codec c, size_t raw_len)
{
	size_t bound = raw_len, b;
	unsigned i;

	(void)c;
	for (i = 0; i < MW_CODEC_MAX; i++) {
		b = comp_ops[i]->bound(raw_len);
		if (b > bound)
			bound = b;
	}
	return bound;
}

uint64_t mw_comp_checksum(const void *p, size_t n)
{
	return XXH3_64bits(p, n);
}

int mw_codec_ctx_new(struct mw_codec_ctx **out, enum mw_codec c, int level)
{
	const struct mw_comp_ops *ops = comp_ops_get(c);
	struct mw_codec_ctx *ctx;
	int ret;

	*out = NULL;
	if (!ops || level < ops->level_min || level > ops->level_max)
		return -EINVAL;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->ops = ops;
	ctx->codec = c;
	ctx->level = level;
	ret = ops->init(ctx);
	if (ret < 0) {
		mw_codec_ctx_free(ctx);
		return ret;
	}
	*out = ctx;
	return 0;
}

void mw_codec_ctx_free(struct mw_codec_ctx *ctx)
{
	if (!ctx)
		return;
	ctx->ops->destroy(ctx);
	free(ctx);
}

ssize_t mw_codec_compress(struct mw_codec_ctx *ctx, const void *src, size_t n,
			  void *dst, size_t cap, struct mw_err *err)
{
	/* Room for n - 1 bytes at most: not smaller means not worth it. */
	if (cap >= n)
		cap = n ? n - 1 : 0;
	if (!cap)
		return mw_err_set(err, -MW_E_NOSPACE,
				  "%s: %zu bytes do not shrink", ctx->ops->name,
				  n);
	return ctx->ops->compress(ctx, src, n, dst, cap, err);
}

int mw_codec_decompress(struct mw_codec_ctx *ctx, const void *src, size_t n,
			void *dst, size_t raw_len, struct mw_err *err)
{
	return ctx->ops->decompress(ctx, src, n, dst, raw_len, err);
}
