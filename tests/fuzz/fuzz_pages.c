/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: --pages (stream/mw_pages.h). The first byte picks a mode:
 *  - 'E': the rest is a QEMU stream. It is encoded in chunks whose sizes
 *    come from the stream's own bytes and each op stream is decoded by a
 *    fresh receiver: every chunk must rebuild exactly, and no op stream
 *    may exceed the chunk size.
 *  - anything else: the rest is a series of op streams (be16 length, then
 *    the ops), decoded in order by one decoder, as a hostile sender would
 *    send them. Each decode must either fail with -MW_E_CORRUPT and a
 *    message, or succeed with at most a chunk of bytes; ASan sees any read
 *    or write out of bounds.
 * The caches are 1 MiB (256 pages), so eviction runs too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "mw_err.h"
#include "mw_pages.h"
#include "mw_wire.h"

#define CHUNK (64u << 10)
#define CACHE (1u << 20)

static void encode_mode(const uint8_t *data, size_t size)
{
	struct mw_pages_enc *e;
	struct mw_pages_dec *d;
	size_t fill = mw_pages_fill_cap(CHUNK), pos = 0;
	uint8_t *buf = malloc(CHUNK);
	bool first = true;

	FUZZ_CHECK(buf);
	FUZZ_CHECK(!mw_pages_enc_new(&e, CACHE, CHUNK));
	FUZZ_CHECK(!mw_pages_dec_new(&d, CACHE, CHUNK));
	while (pos < size) {
		/* sizes from the data: page-sized pieces and odd ones */
		size_t n = 1 + (size_t)data[pos] * 257 % fill, len;
		struct mw_err err = { 0 };
		const uint8_t *out;
		size_t out_len;

		if (n > size - pos)
			n = size - pos;
		memcpy(buf, data + pos, n);
		len = mw_pages_enc_chunk(e, buf, n, !first);
		first = false;
		FUZZ_CHECK(len <= CHUNK);
		if (len) {
			FUZZ_CHECK(!mw_pages_dec_chunk(d, buf, len, &out,
						       &out_len, &err));
			FUZZ_CHECK(out_len == n);
			FUZZ_CHECK(!memcmp(out, data + pos, n));
		} else {
			FUZZ_CHECK(!memcmp(buf, data + pos, n));
		}
		pos += n;
	}
	mw_pages_enc_free(e);
	mw_pages_dec_free(d);
	free(buf);
}

static void decode_mode(const uint8_t *data, size_t size)
{
	struct mw_pages_dec *d;
	size_t pos = 0;

	FUZZ_CHECK(!mw_pages_dec_new(&d, CACHE, CHUNK));
	while (size - pos >= 2) {
		size_t n = mw_get_be16(data + pos);
		struct mw_err err = { 0 };
		const uint8_t *out;
		size_t out_len = 0;
		uint8_t *in;
		int ret;

		pos += 2;
		if (n > size - pos)
			n = size - pos;
		/* a copy of exactly n bytes: ASan sees a read past the op
		 * stream */
		in = malloc(n ? n : 1);
		FUZZ_CHECK(in);
		memcpy(in, data + pos, n);
		ret = mw_pages_dec_chunk(d, in, n, &out, &out_len, &err);
		free(in);
		pos += n;
		if (ret) {
			FUZZ_CHECK(ret == -MW_E_CORRUPT);
			FUZZ_CHECK(err.msg[0]);
			break; /* the session ends here */
		}
		FUZZ_CHECK(out_len <= CHUNK);
	}
	mw_pages_dec_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] == 'E')
		encode_mode(data + 1, size - 1);
	else
		decode_mode(data + 1, size - 1);
	return 0;
}
