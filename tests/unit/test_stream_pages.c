/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of --pages (stream/mw_pages.h): the page cache (lookups,
 * CLOCK eviction, two caches given the same operations stay the same), and
 * the encoder and decoder over QEMU streams written here: iterations of a
 * "ram" section whose pages repeat unchanged, change in a few random
 * places, or change whole, cut into chunks at random places, must rebuild
 * byte for byte with references and deltas in use. A damaged op stream or
 * cache (the MIGWIRE_TEST_FLIP_PAGE_CACHE hook) must fail, never rebuild
 * wrong bytes. Random tests print their seed; MW_TEST_SEED replays one.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mw_err.h"
#include "mw_pages.h"
#include "mw_wire.h"
#include "stream_sb.h"
#include "qemu_parse.h"

#define PS MW_PAGES_PAGE
#define CHUNK (64u << 10)
#define NPAGES 600u /* more than a 1 MiB cache holds: eviction runs */

static unsigned long long seed;

static uint64_t rnd(void)
{
	/* xorshift64*: the same sequence for the same seed everywhere */
	seed ^= seed >> 12;
	seed ^= seed << 25;
	seed ^= seed >> 27;
	return seed * 2685821657736338717ull;
}

/* "QEVM", the configuration and START(ram) listing pc.ram. */
static void stream_head(struct sb *b)
{
	be32(b, 0x5145564d);
	be32(b, 3);
	u8(b, MW_QEMU_VM_CONFIGURATION);
	be32(b, 13);
	sb_put(b, "pc-i440fx-7.2", 13);
	u8(b, MW_QEMU_VM_SECTION_START);
	be32(b, 2);
	str8(b, "ram");
	be32(b, 0);
	be32(b, 4);
	be64(b, (uint64_t)NPAGES * PS | MW_RAM_MEM_SIZE);
	str8(b, "pc.ram");
	be64(b, (uint64_t)NPAGES * PS);
	be64(b, MW_RAM_EOS);
	u8(b, MW_QEMU_VM_SECTION_FOOTER);
	be32(b, 2);
}

/* What the guest did to a page since it was last sent. */
static void dirty(uint8_t *pg)
{
	unsigned k = (unsigned)(rnd() % 4), i, runs;

	if (k == 0)
		return; /* sent again unchanged */
	if (k == 3) {
		for (i = 0; i < PS; i++)
			pg[i] = (uint8_t)rnd();
		return;
	}
	runs = 1 + (unsigned)(rnd() % 4); /* 16-256 bytes, a few places */
	for (i = 0; i < runs; i++) {
		unsigned len = 16 + (unsigned)(rnd() % 241);
		unsigned off = (unsigned)(rnd() % (PS - len)), j;

		for (j = 0; j < len; j++)
			pg[off + j] = (uint8_t)rnd();
	}
}

/* iters PART sections of the ram section, each sending some pages. */
static void stream_iters(struct sb *b, uint8_t (*mem)[PS], unsigned iters)
{
	unsigned it, i;

	for (it = 0; it < iters; it++) {
		bool named = false;

		u8(b, MW_QEMU_VM_SECTION_PART);
		be32(b, 2);
		for (i = 0; i < NPAGES; i++) {
			if (it && rnd() % 3 == 0)
				continue; /* not dirtied this round */
			if (it)
				dirty(mem[i]);
			be64(b, (uint64_t)i * PS | MW_RAM_PAGE |
					(named ? MW_RAM_CONTINUE : 0));
			if (!named)
				str8(b, "pc.ram");
			named = true;
			sb_put(b, mem[i], PS);
		}
		be64(b, MW_RAM_EOS);
		u8(b, MW_QEMU_VM_SECTION_FOOTER);
		be32(b, 2);
	}
	u8(b, MW_QEMU_VM_EOF);
}

static void make_stream(struct sb *b, unsigned iters)
{
	uint8_t(*mem)[PS] = malloc(NPAGES * sizeof(*mem));
	unsigned i, j;

	assert_non_null(mem);
	for (i = 0; i < NPAGES; i++)
		for (j = 0; j < PS; j++)
			mem[i][j] = (uint8_t)rnd();
	memset(b, 0, sizeof(*b));
	stream_head(b);
	stream_iters(b, mem, iters);
	free(mem);
}

/*
 * Encodes b in chunks of random length (the first chunk travels plain, as
 * the sender sends it) and decodes each; returns 0 when every chunk was
 * rebuilt exactly, or the decoder's error. damage: flip one byte of the op
 * stream of chunk number damage (0: none).
 */
static int roundtrip(const struct sb *b, uint64_t cache, unsigned damage,
		     struct mw_pages_stats *st, struct mw_err *err)
{
	struct mw_pages_enc *e;
	struct mw_pages_dec *d;
	uint8_t *buf = malloc(CHUNK);
	size_t pos = 0, fill = mw_pages_fill_cap(CHUNK);
	unsigned nchunk = 0;
	int ret = 0;

	assert_non_null(buf);
	assert_int_equal(mw_pages_enc_new(&e, cache, CHUNK), 0);
	assert_int_equal(mw_pages_dec_new(&d, cache, CHUNK), 0);
	while (pos < b->n && !ret) {
		size_t n = 1 + rnd() % fill, len;
		const uint8_t *out;
		size_t out_len;

		if (n > b->n - pos)
			n = b->n - pos;
		memcpy(buf, b->p + pos, n);
		len = mw_pages_enc_chunk(e, buf, n, nchunk > 0);
		assert_true(len <= CHUNK);
		nchunk++;
		if (!len) { /* plain: the receiver writes it as it is */
			assert_memory_equal(buf, b->p + pos, n);
			pos += n;
			continue;
		}
		if (nchunk == damage)
			buf[rnd() % len] ^= (uint8_t)(1 + rnd() % 255);
		ret = mw_pages_dec_chunk(d, buf, len, &out, &out_len, err);
		if (!ret) {
			assert_int_equal(out_len, n);
			assert_memory_equal(out, b->p + pos, n);
		}
		pos += n;
	}
	*st = *mw_pages_enc_stats(e);
	mw_pages_enc_free(e);
	mw_pages_dec_free(d);
	free(buf);
	return ret;
}

static void rebuilds_exactly(void **state)
{
	struct mw_pages_stats st;
	struct mw_err err = { 0 };
	struct sb b;

	(void)state;
	make_stream(&b, 6);
	/* 1 MiB: 256 slots for 600 pages, eviction all the time; 4 MiB:
	 * everything fits, so iteration 2 on finds its pages */
	assert_int_equal(roundtrip(&b, 1 << 20, 0, &st, &err), 0);
	assert_true(st.chunks > 0);
	assert_int_equal(roundtrip(&b, 4 << 20, 0, &st, &err), 0);
	assert_true(st.refs > 0);
	assert_true(st.deltas > 0);
	assert_true(st.literal > 0);
	print_message(
		"refs %llu deltas %llu literal %llu straddle %llu: %llu -> %llu bytes\n",
		(unsigned long long)st.refs, (unsigned long long)st.deltas,
		(unsigned long long)st.literal, (unsigned long long)st.straddle,
		(unsigned long long)st.in_bytes,
		(unsigned long long)st.out_bytes);
	assert_true(st.out_bytes < st.in_bytes);
	free(b.p);
}

static void damaged_op_stream_never_rebuilds_wrong(void **state)
{
	struct mw_pages_stats st;
	struct sb b;
	unsigned i;

	(void)state;
	make_stream(&b, 3);
	for (i = 2; i < 40; i++) {
		struct mw_err err = { 0 };
		int ret = roundtrip(&b, 4 << 20, i, &st, &err);

		/* either the damage was caught, or (a byte of a plain chunk)
		 * it fell where roundtrip compared it exactly */
		if (ret) {
			assert_int_equal(ret, -MW_E_CORRUPT);
			assert_non_null(strstr(err.msg, "page-encoded chunk"));
		}
	}
	free(b.p);
}

static void flipped_cache_fails_the_check(void **state)
{
	struct mw_pages_stats st;
	struct mw_err err = { 0 };
	struct sb b;

	(void)state;
	make_stream(&b, 3);
	setenv("MIGWIRE_TEST_FLIP_PAGE_CACHE", "1", 1);
	assert_int_equal(roundtrip(&b, 4 << 20, 0, &st, &err), -MW_E_CORRUPT);
	unsetenv("MIGWIRE_TEST_FLIP_PAGE_CACHE");
	assert_non_null(strstr(err.msg, "fail their checksum"));
	free(b.p);
}

/* Two caches given the same puts hold the same keys in the same slots,
 * and every key a cache holds is found in the slot that holds it. */
static void cache_eviction_is_deterministic(void **state)
{
	struct mw_pages_cache *a, *c;
	unsigned long i, n, found = 0;

	(void)state;
	assert_int_equal(mw_pages_cache_new(&a, 1 << 20), 0);
	assert_int_equal(mw_pages_cache_new(&c, 1 << 20), 0);
	n = mw_pages_cache_slots(a);
	assert_int_equal(n, 256);
	for (i = 0; i < 20000; i++) {
		uint16_t blk = (uint16_t)(rnd() % 3);
		uint64_t addr = rnd() % 700 * PS;
		unsigned long sa = mw_pages_cache_put(a, blk, addr);

		assert_int_equal(sa, mw_pages_cache_put(c, blk, addr));
		assert_int_equal(mw_pages_cache_find(a, blk, addr), (long)sa);
		*mw_pages_cache_page(a, sa) = (uint8_t)i;
	}
	for (i = 0; i < 3 * 700; i++) {
		long s = mw_pages_cache_find(a, (uint16_t)(i / 700),
					     i % 700 * PS);

		assert_int_equal(s, mw_pages_cache_find(c, (uint16_t)(i / 700),
							i % 700 * PS));
		if (s >= 0)
			found++;
	}
	assert_int_equal(found, n); /* full, and no key lost or doubled */
	mw_pages_cache_free(a);
	mw_pages_cache_free(c);
	assert_int_equal(mw_pages_cache_new(&c, 1000), -EINVAL);
	assert_null(c);
}

static void malformed_ops_are_refused(void **state)
{
	static const struct {
		const char *name;
		uint8_t in[32];
		size_t n;
	} cases[] = {
		{ "empty", { 0 }, 0 },
		{ "unknown op", { 0x09 }, 1 },
		{ "long literal", { MW_PG_LIT, 0, 0, 0x10, 0 }, 5 },
		{ "ref to nothing",
		  { MW_PG_REF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
		  11 },
		{ "unaligned key",
		  { MW_PG_PAGE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
		  11 },
		{ "short END", { MW_PG_END, 0, 0 }, 3 },
	};
	struct mw_pages_dec *d;
	unsigned i;

	(void)state;
	assert_int_equal(mw_pages_dec_new(&d, 1 << 20, CHUNK), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mw_err err = { 0 };
		const uint8_t *out;
		size_t len;

		print_message("%s\n", cases[i].name);
		assert_int_equal(mw_pages_dec_chunk(d, cases[i].in, cases[i].n,
						    &out, &len, &err),
				 -MW_E_CORRUPT);
	}
	mw_pages_dec_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cache_eviction_is_deterministic),
		cmocka_unit_test(rebuilds_exactly),
		cmocka_unit_test(damaged_op_stream_never_rebuilds_wrong),
		cmocka_unit_test(flipped_cache_fails_the_check),
		cmocka_unit_test(malformed_ops_are_refused),
	};
	const char *env = getenv("MW_TEST_SEED");

	seed = env ? strtoull(env, NULL, 0) : (unsigned long long)time(NULL);
	if (!seed)
		seed = 1;
	printf("stream/pages: seed %llu (replay with MW_TEST_SEED)\n", seed);
	return cmocka_run_group_tests_name("stream/pages", tests, NULL, NULL);
}
