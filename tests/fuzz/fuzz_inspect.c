/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: `migwire inspect`'s analysis (stream/mw_inspect.h) over any
 * input, parsed by the QEMU stream parser. Byte 0 picks the cache size
 * (0 to 255 pages, so eviction is common); the rest is the stream, whose
 * page history is kept for 64 MiB of RAM at most (ram_max). What
 * must hold: feeding whole and in pieces drawn from the input gives the
 * same figures, estimates included; every byte is counted; the residual
 * the codecs see is the stream less exactly the pages the page stage
 * replaced; re-sent pages add up.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "mw_inspect.h"

static void run(const uint8_t *data, size_t size, size_t step,
		const struct mw_inspect_cfg *cfg, struct mw_inspect_stats *out)
{
	struct mw_err err = { 0 };
	struct mw_inspect *in;
	size_t i = 0, k;
	unsigned r = 0;

	if (mw_inspect_new(&in, cfg, &err))
		abort();
	while (i < size) {
		k = step ? 1 + (size_t)data[r++ % size] * step % 3000 :
			   size - i;
		if (k > size - i)
			k = size - i;
		/* ram_max bounds the page tables: no -ENOMEM here */
		FUZZ_CHECK(!mw_inspect_feed(in, data + i, k, &err));
		i += k;
	}
	FUZZ_CHECK(!mw_inspect_finish(in, &err) || err.code == -MW_E_CODEC);
	memcpy(out, mw_inspect_stats(in), sizeof(*out));
	mw_inspect_free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mw_inspect_stats a, b;
	struct mw_inspect_cfg cfg = { .page_size = 4096,
				      .chunk_size = 4096,
				      .codecs = true,
				      .ram_max = 64u << 20 };
	const struct mw_inspect_resend *re = &a.re;

	if (!size)
		return 0;
	cfg.cache = (uint64_t)data[0] * 4096;
	data++;
	size--;
	run(data, size, 0, &cfg, &a);
	run(data, size, 7, &cfg, &b);
	FUZZ_CHECK(!memcmp(&a, &b, sizeof(a)));
	FUZZ_CHECK(a.bytes == size);
	FUZZ_CHECK(a.stage_in == size - a.pages_replaced * a.page_size);
	FUZZ_CHECK(a.first_sends + re->exact + re->delta1 + re->delta10 +
			   re->differ + re->evicted + re->unknown ==
		   a.rec[MW_RAM_K_PAGE]);
	FUZZ_CHECK(a.page_bytes == a.rec[MW_RAM_K_PAGE] * a.page_size);
	FUZZ_CHECK(a.pages_replaced <= re->exact + re->delta1 + re->delta10);
	return 0;
}
