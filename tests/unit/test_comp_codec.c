/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the codecs (none, zlib, zstd) through mw_codec_*: names and
 * levels, round trips at several levels and sizes, the did-not-shrink rule,
 * and every way a hostile payload must be refused (truncated, trailing
 * bytes, bombs past raw_len, short output, garbage). Random inputs come
 * from a seeded generator; the seed is printed and MW_TEST_SEED replays it.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "comp_int.h"

static uint64_t test_rng;

static uint64_t rng_next(void)
{
	/* splitmix64 */
	uint64_t z = (test_rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill_random(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)rng_next();
}

/* Text-like bytes: compressible by every codec, but not trivially. */
static void fill_text(uint8_t *p, size_t n)
{
	static const char *const words[] = {
		"migration ", "dirty ", "page ", "guest ", "memory ",
		"stream ",    "the ",	"of ",	 "and ",   "channel\n",
	};
	size_t i = 0, k, len;

	while (i < n) {
		k = rng_next() % (sizeof(words) / sizeof(words[0]));
		len = strlen(words[k]);
		if (len > n - i)
			len = n - i;
		memcpy(p + i, words[k], len);
		i += len;
	}
}

/*
 * Tests that hold for every real codec run once per codec: the codec comes
 * in as cmocka's initial state, and the test is listed as "zlib/<name>"
 * and "zstd/<name>".
 */
static const enum mw_codec codec_zlib = MW_CODEC_ZLIB;
static const enum mw_codec codec_zstd = MW_CODEC_ZSTD;
#define PER_CODEC(fn)                                                       \
	{ "zlib/" #fn, fn, NULL, NULL, (void *)(uintptr_t)&codec_zlib },    \
	{                                                                   \
		"zstd/" #fn, fn, NULL, NULL, (void *)(uintptr_t)&codec_zstd \
	}

static enum mw_codec state_codec(void **state)
{
	return *(const enum mw_codec *)*state;
}

enum fill { FILL_TEXT, FILL_RANDOM, FILL_ZERO };

struct codec_buf {
	struct mw_codec_ctx *ctx;
	uint8_t *raw, *wire, *out;
	size_t raw_len, cap;
	ssize_t wire_len;
};

/* Makes a context and compresses raw_len bytes of the given kind. */
static void cb_setup(struct codec_buf *b, enum mw_codec c, int level,
		     size_t raw_len, enum fill fill)
{
	struct mw_err err = { 0 };

	b->raw_len = raw_len;
	b->cap = mw_codec_bound(c, raw_len) + 64;
	b->raw = malloc(raw_len ? raw_len : 1);
	b->wire = malloc(b->cap);
	b->out = malloc(raw_len + 64);
	assert_non_null(b->raw);
	assert_non_null(b->wire);
	assert_non_null(b->out);
	if (fill == FILL_TEXT)
		fill_text(b->raw, raw_len);
	else if (fill == FILL_RANDOM)
		fill_random(b->raw, raw_len);
	else
		memset(b->raw, 0, raw_len);
	assert_int_equal(mw_codec_ctx_new(&b->ctx, c, level), 0);
	b->wire_len = mw_codec_compress(b->ctx, b->raw, raw_len, b->wire,
					b->cap, &err);
}

static void cb_teardown(struct codec_buf *b)
{
	mw_codec_ctx_free(b->ctx);
	free(b->raw);
	free(b->wire);
	free(b->out);
}

/* Decompresses n bytes of b->wire, expecting raw_len; returns the code. */
static int cb_decompress(struct codec_buf *b, size_t n, size_t raw_len)
{
	struct mw_err err = { 0 };
	int ret =
		mw_codec_decompress(b->ctx, b->wire, n, b->out, raw_len, &err);

	if (ret < 0) {
		assert_int_equal(err.code, ret);
		assert_true(err.msg[0] != '\0');
	}
	return ret;
}

static void codec_names_and_levels(void **state)
{
	enum mw_codec c;
	int min, max;

	(void)state;
	assert_int_equal(mw_codec_parse("zstd", &c), 0);
	assert_int_equal(c, MW_CODEC_ZSTD);
	assert_int_equal(mw_codec_parse("zlib", &c), 0);
	assert_int_equal(c, MW_CODEC_ZLIB);
	assert_int_equal(mw_codec_parse("none", &c), 0);
	assert_int_equal(c, MW_CODEC_NONE);
	assert_int_equal(mw_codec_parse("lz4", &c), -EINVAL);
	assert_int_equal(mw_codec_parse("", &c), -EINVAL);
	assert_string_equal(mw_codec_name(MW_CODEC_ZLIB), "zlib");
	assert_string_equal(mw_codec_name((enum mw_codec)77), "unknown");

	assert_int_equal(mw_codec_level_default(MW_CODEC_ZSTD), 1);
	assert_int_equal(mw_codec_level_default(MW_CODEC_ZLIB), 1);
	mw_codec_level_range(MW_CODEC_ZLIB, &min, &max);
	assert_int_equal(min, 1);
	assert_int_equal(max, 9);
	mw_codec_level_range(MW_CODEC_ZSTD, &min, &max);
	assert_true(min < 0);
	assert_int_equal(max, 19);
}

static void codec_ctx_rejects_bad_level(void **state)
{
	struct mw_codec_ctx *ctx = (void *)1;

	(void)state;
	assert_int_equal(mw_codec_ctx_new(&ctx, MW_CODEC_ZLIB, 0), -EINVAL);
	assert_null(ctx);
	assert_int_equal(mw_codec_ctx_new(&ctx, MW_CODEC_ZLIB, 10), -EINVAL);
	assert_int_equal(mw_codec_ctx_new(&ctx, MW_CODEC_ZSTD, 20), -EINVAL);
	assert_int_equal(mw_codec_ctx_new(&ctx, MW_CODEC_NONE, 1), -EINVAL);
	assert_int_equal(mw_codec_ctx_new(&ctx, MW_CODEC_MAX, 0), -EINVAL);
	mw_codec_ctx_free(NULL);
}

static void codec_bound_covers_both(void **state)
{
	static const size_t sizes[] = { 0, 1, 4096, 65536, 262144, 4 << 20 };
	size_t i, b;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		b = mw_codec_bound(MW_CODEC_NONE, sizes[i]);
		assert_true(b >= ZSTD_compressBound(sizes[i]));
		assert_true(b >= compressBound((uLong)sizes[i]));
		assert_true(b >= sizes[i]);
	}
}

static void codec_checksum(void **state)
{
	uint8_t buf[4096];
	uint64_t a;

	(void)state;
	/* XXH3-64 of the empty input, as published by xxHash. */
	assert_true(mw_comp_checksum("", 0) == 0x2D06800538D394C2ull);
	fill_random(buf, sizeof(buf));
	a = mw_comp_checksum(buf, sizeof(buf));
	assert_true(a == mw_comp_checksum(buf, sizeof(buf)));
	buf[1234] ^= 0x10;
	assert_true(a != mw_comp_checksum(buf, sizeof(buf)));
}

static void roundtrip_one(enum mw_codec c, int level, size_t len)
{
	struct codec_buf b;

	cb_setup(&b, c, level, len, FILL_TEXT);
	assert_true(b.wire_len > 0);
	assert_true((size_t)b.wire_len < len);
	assert_int_equal(cb_decompress(&b, (size_t)b.wire_len, len), 0);
	assert_memory_equal(b.out, b.raw, len);
	/* The context is reused: a second chunk must work too. */
	assert_int_equal(cb_decompress(&b, (size_t)b.wire_len, len), 0);
	cb_teardown(&b);
}

static void roundtrip(void **state)
{
	static const int zlib_levels[] = { 1, 2, 6, 9, INT_MIN };
	static const int zstd_levels[] = { -7, -1, 0, 1, 3, 9, 19, INT_MIN };
	enum mw_codec c = state_codec(state);
	const int *lv = c == MW_CODEC_ZLIB ? zlib_levels : zstd_levels;

	for (; *lv != INT_MIN; lv++) {
		roundtrip_one(c, *lv, 4096);
		roundtrip_one(c, *lv, 256 << 10);
	}
	roundtrip_one(c, mw_codec_level_default(c), 1 << 20);
}

static void random_does_not_shrink(void **state)
{
	enum mw_codec c = state_codec(state);
	struct codec_buf b;

	cb_setup(&b, c, mw_codec_level_default(c), 64 << 10, FILL_RANDOM);
	assert_int_equal(b.wire_len, -MW_E_NOSPACE);
	cb_teardown(&b);
}

static void none_never_shrinks(void **state)
{
	struct codec_buf b;

	(void)state;
	cb_setup(&b, MW_CODEC_NONE, 0, 64 << 10, FILL_ZERO);
	assert_int_equal(b.wire_len, -MW_E_NOSPACE);
	/* A payload not marked raw cannot be "none"-compressed. */
	memcpy(b.wire, b.raw, b.raw_len);
	assert_int_equal(cb_decompress(&b, b.raw_len, b.raw_len),
			 -MW_E_CORRUPT);
	cb_teardown(&b);
}

static void tiny_and_empty_do_not_shrink(void **state)
{
	enum mw_codec c = state_codec(state);
	struct codec_buf b;

	cb_setup(&b, c, 1, 0, FILL_TEXT);
	assert_int_equal(b.wire_len, -MW_E_NOSPACE);
	cb_teardown(&b);
	cb_setup(&b, c, 1, 5, FILL_ZERO);
	assert_int_equal(b.wire_len, -MW_E_NOSPACE);
	cb_teardown(&b);
}

/* A buffer smaller than the output is the same "send it raw" answer. */
static void small_cap_is_nospace(void **state)
{
	struct codec_buf b;
	struct mw_err err = { 0 };

	cb_setup(&b, state_codec(state), 1, 64 << 10, FILL_TEXT);
	assert_true(b.wire_len > 16);
	assert_int_equal(mw_codec_compress(b.ctx, b.raw, b.raw_len, b.wire, 16,
					   &err),
			 -MW_E_NOSPACE);
	assert_int_equal(err.code, -MW_E_NOSPACE);
	cb_teardown(&b);
}

static void all_zero(void **state)
{
	struct codec_buf b;

	cb_setup(&b, state_codec(state), 1, 256 << 10, FILL_ZERO);
	assert_true(b.wire_len > 0);
	assert_true(b.wire_len < 2048);
	memset(b.out, 0xaa, b.raw_len);
	assert_int_equal(cb_decompress(&b, (size_t)b.wire_len, b.raw_len), 0);
	assert_memory_equal(b.out, b.raw, b.raw_len);
	cb_teardown(&b);
}

static void rejects_truncated(void **state)
{
	struct codec_buf b;
	size_t w;

	cb_setup(&b, state_codec(state), 1, 64 << 10, FILL_TEXT);
	w = (size_t)b.wire_len;
	assert_int_equal(cb_decompress(&b, w - 1, b.raw_len), -MW_E_CORRUPT);
	assert_int_equal(cb_decompress(&b, w / 2, b.raw_len), -MW_E_CORRUPT);
	assert_int_equal(cb_decompress(&b, 3, b.raw_len), -MW_E_CORRUPT);
	assert_int_equal(cb_decompress(&b, 0, b.raw_len), -MW_E_CORRUPT);
	cb_teardown(&b);
}

static void rejects_trailing(void **state)
{
	struct codec_buf b;
	size_t w;

	cb_setup(&b, state_codec(state), 1, 64 << 10, FILL_TEXT);
	w = (size_t)b.wire_len;
	b.wire[w] = 0;
	assert_int_equal(cb_decompress(&b, w + 1, b.raw_len), -MW_E_CORRUPT);
	fill_random(b.wire + w, 64);
	assert_int_equal(cb_decompress(&b, w + 64, b.raw_len), -MW_E_CORRUPT);
	/* The intact payload still decodes afterwards. */
	assert_int_equal(cb_decompress(&b, w, b.raw_len), 0);
	cb_teardown(&b);
}

/* A second, valid zstd frame after the first is trailing data too. */
static void zstd_rejects_second_frame(void **state)
{
	struct codec_buf b;
	size_t w;

	(void)state;
	cb_setup(&b, MW_CODEC_ZSTD, 1, 4096, FILL_TEXT);
	w = (size_t)b.wire_len;
	b.wire = realloc(b.wire, 2 * w);
	assert_non_null(b.wire);
	memcpy(b.wire + w, b.wire, w);
	assert_int_equal(cb_decompress(&b, 2 * w, 2 * b.raw_len),
			 -MW_E_CORRUPT);
	assert_int_equal(cb_decompress(&b, 2 * w, b.raw_len), -MW_E_CORRUPT);
	cb_teardown(&b);
}

/* Payload of 1 MiB of zeros presented as a 64 KiB chunk: must stop. */
static void rejects_bomb(void **state)
{
	struct codec_buf b;

	cb_setup(&b, state_codec(state), 1, 1 << 20, FILL_ZERO);
	assert_true(b.wire_len > 0);
	assert_int_equal(cb_decompress(&b, (size_t)b.wire_len, 64 << 10),
			 -MW_E_CORRUPT);
	assert_int_equal(cb_decompress(&b, (size_t)b.wire_len, b.raw_len - 1),
			 -MW_E_CORRUPT);
	cb_teardown(&b);
}

/*
 * A zstd frame without a content size skips the header check, so the
 * decoder itself must stop at raw_len.
 */
static void zstd_rejects_bomb_without_size(void **state)
{
	struct codec_buf b;
	ZSTD_CCtx *zc = ZSTD_createCCtx();
	size_t w;

	(void)state;
	assert_non_null(zc);
	ZSTD_CCtx_setParameter(zc, ZSTD_c_contentSizeFlag, 0);
	cb_setup(&b, MW_CODEC_ZSTD, 1, 1 << 20, FILL_ZERO);
	w = ZSTD_compress2(zc, b.wire, b.cap, b.raw, b.raw_len);
	assert_false(ZSTD_isError(w));
	assert_true(ZSTD_getFrameContentSize(b.wire, w) ==
		    ZSTD_CONTENTSIZE_UNKNOWN);
	assert_int_equal(cb_decompress(&b, w, 64 << 10), -MW_E_CORRUPT);
	assert_int_equal(cb_decompress(&b, w, (1 << 20) + 1), -MW_E_CORRUPT);
	assert_int_equal(cb_decompress(&b, w, 1 << 20), 0);
	assert_memory_equal(b.out, b.raw, b.raw_len);
	ZSTD_freeCCtx(zc);
	cb_teardown(&b);
}

static void rejects_short_output(void **state)
{
	struct codec_buf b;
	size_t w;

	cb_setup(&b, state_codec(state), 1, 64 << 10, FILL_TEXT);
	w = (size_t)b.wire_len;
	assert_int_equal(cb_decompress(&b, w, b.raw_len + 1), -MW_E_CORRUPT);
	assert_int_equal(cb_decompress(&b, w, b.raw_len + 64), -MW_E_CORRUPT);
	cb_teardown(&b);
}

static void rejects_garbage(void **state)
{
	struct codec_buf b;
	size_t round;

	cb_setup(&b, state_codec(state), 1, 4096, FILL_TEXT);
	for (round = 0; round < 200; round++) {
		/* Every other round keeps the real magic bytes. */
		fill_random(b.wire + (round & 1) * 4, 512 - 4);
		assert_int_equal(cb_decompress(&b, 512, b.raw_len),
				 -MW_E_CORRUPT);
	}
	cb_teardown(&b);
}

/*
 * A damaged Adler-32 trailer is refused. (Not every bit of a deflate
 * stream matters, e.g. code lengths of unused symbols, so no claim is made
 * for the body: the pool's XXH3 check guards the data itself.)
 */
static void zlib_rejects_bad_trailer(void **state)
{
	struct codec_buf b;
	size_t i, w;

	(void)state;
	cb_setup(&b, MW_CODEC_ZLIB, 1, 4096, FILL_TEXT);
	w = (size_t)b.wire_len;
	for (i = w - 4; i < w; i++) {
		b.wire[i] ^= 0x01;
		assert_int_equal(cb_decompress(&b, w, b.raw_len),
				 -MW_E_CORRUPT);
		b.wire[i] ^= 0x01;
	}
	assert_int_equal(cb_decompress(&b, w, b.raw_len), 0);
	cb_teardown(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(codec_names_and_levels),
		cmocka_unit_test(codec_ctx_rejects_bad_level),
		cmocka_unit_test(codec_bound_covers_both),
		cmocka_unit_test(codec_checksum),
		cmocka_unit_test(none_never_shrinks),
		PER_CODEC(roundtrip),
		PER_CODEC(random_does_not_shrink),
		PER_CODEC(tiny_and_empty_do_not_shrink),
		PER_CODEC(small_cap_is_nospace),
		PER_CODEC(all_zero),
		PER_CODEC(rejects_truncated),
		PER_CODEC(rejects_trailing),
		PER_CODEC(rejects_bomb),
		PER_CODEC(rejects_short_output),
		PER_CODEC(rejects_garbage),
		cmocka_unit_test(zstd_rejects_second_frame),
		cmocka_unit_test(zstd_rejects_bomb_without_size),
		cmocka_unit_test(zlib_rejects_bad_trailer),
	};
	const char *env = getenv("MW_TEST_SEED");

	test_rng = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	printf("comp/codec: seed %llu (replay with MW_TEST_SEED)\n",
	       (unsigned long long)test_rng);
	return cmocka_run_group_tests_name("comp/codec", tests, NULL, NULL);
}
