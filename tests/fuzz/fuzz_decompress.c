/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: mw_codec_decompress() (zlib, zstd) on hostile payloads, and
 * the receiver's verification of a chunk (decompress, then XXH3) both
 * without the pool and through a one-worker pool.
 *
 * Input: a 12-byte prefix, then the wire payload.
 *   byte 0     bits 0-1 codec (0 none, 1 zlib, 2 zstd, 3 zstd),
 *              bit 2 the frame's RAW flag, bit 3 take the checksum from
 *              bytes 4..11 (else the checksum of the expected output, so
 *              inputs get past verification), bit 4 also run the pool
 *   bytes 1-3  claimed raw_len, big-endian, modulo 1 MiB + 1
 *   bytes 4-11 checksum
 *
 * The oracle is the library's own one-shot decoder into a buffer one byte
 * larger than raw_len: mw_codec_decompress() must succeed exactly when that
 * decoder yields raw_len bytes from the whole payload, and then with the
 * same bytes. The destination is allocated at exactly raw_len, so ASan
 * catches a write past it; a payload that would inflate further (a bomb)
 * must fail without allocating. libFuzzer's -malloc_limit_mb catches a
 * decoder that allocates in proportion to what a frame claims.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "fuzz_check.h"
#include "mw_comp.h"
#include "mw_wire.h"

#define RAW_MAX (1u << 20)
#define PREFIX 12

static struct mw_codec_ctx *ctxs[MW_CODEC_MAX];
static struct mw_comp_pool *pools[MW_CODEC_MAX];
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static bool job_done;

/* The reference: 1 when src is one complete frame of exactly raw_len
 * bytes, which are then in ref (raw_len + 1 bytes). */
static int reference(enum mw_codec c, const uint8_t *src, size_t n,
		     uint8_t *ref, size_t raw_len)
{
	if (c == MW_CODEC_ZLIB) {
		uLongf out = raw_len + 1;
		uLong in = n;

		if (uncompress2(ref, &out, src, &in) != Z_OK)
			return 0;
		return in == n && out == raw_len;
	}
	if (c == MW_CODEC_ZSTD) {
		size_t fsz = ZSTD_findFrameCompressedSize(src, n), out;

		if (ZSTD_isError(fsz) || fsz != n)
			return 0;
		out = ZSTD_decompress(ref, raw_len + 1, src, n);
		return !ZSTD_isError(out) && out == raw_len;
	}
	return 0; /* codec none has no compressed form */
}

static void pool_done(struct mw_comp_job *job)
{
	pthread_mutex_lock(&done_lock);
	job_done = true;
	pthread_cond_signal(&done_cv);
	pthread_mutex_unlock(&done_lock);
}

/* The verdict of the real worker code (comp_pool.c), one job at a time. */
static int pool_verify(enum mw_codec c, bool raw, const uint8_t *src, size_t n,
		       uint8_t *dst, size_t raw_len, uint64_t csum)
{
	struct mw_comp_job job = {
		.dir = MW_COMP_DECOMPRESS,
		.src = src,
		.src_len = n,
		.dst = dst,
		.dst_cap = raw_len,
		.raw_len = raw_len,
		.raw = raw,
		.csum = csum,
		.done = pool_done,
	};
	struct mw_cpus none = { 0 };

	if (!pools[c])
		FUZZ_CHECK(!mw_comp_pool_new(&pools[c], c,
					     mw_codec_level_default(c), 1, 1,
					     "mw-fuzz", &none, 0));
	job_done = false;
	FUZZ_CHECK(!mw_comp_pool_submit(pools[c], &job));
	pthread_mutex_lock(&done_lock);
	while (!job_done)
		pthread_cond_wait(&done_cv, &done_lock);
	pthread_mutex_unlock(&done_lock);
	if (job.ret)
		FUZZ_CHECK(job.err.msg[0]);
	else
		FUZZ_CHECK(job.out_len == raw_len);
	return job.ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum mw_codec c;
	const uint8_t *src = data + PREFIX;
	size_t n = size - PREFIX, raw_len;
	bool raw, csum_given, via_pool, ok, ref_ok, verified;
	uint8_t *dst, *ref;
	struct mw_err err = { 0 };
	uint64_t csum;
	int ret;

	if (size < PREFIX)
		return 0;
	c = (data[0] & 3) == 3 ? MW_CODEC_ZSTD : (enum mw_codec)(data[0] & 3);
	raw = data[0] & 4;
	csum_given = data[0] & 8;
	via_pool = data[0] & 16;
	raw_len = ((size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3]) %
		  (RAW_MAX + 1);
	if (!ctxs[c])
		FUZZ_CHECK(!mw_codec_ctx_new(&ctxs[c], c,
					     mw_codec_level_default(c)));
	dst = malloc(raw_len ? raw_len : 1);
	ref = malloc(raw_len + 1);
	FUZZ_CHECK(dst && ref);

	ret = mw_codec_decompress(ctxs[c], src, n, dst, raw_len, &err);
	FUZZ_CHECK(ret == 0 || ret == -MW_E_CORRUPT || ret == -MW_E_CODEC);
	ok = ret == 0;
	ref_ok = reference(c, src, n, ref, raw_len);
	FUZZ_CHECK(ok == ref_ok);
	if (ok)
		FUZZ_CHECK(!memcmp(dst, ref, raw_len));
	else
		FUZZ_CHECK(err.msg[0]);

	/*
	 * Pool-free verification, as comp_pool.c's worker does it: a RAW
	 * payload is the chunk itself, anything else must inflate first;
	 * then the XXH3 of exactly raw_len bytes must match the frame's.
	 */
	if (raw) {
		ok = n == raw_len;
		memcpy(ref, src, ok ? n : 0);
	}
	csum = csum_given ? mw_get_be64(data + 4) : 0;
	if (!csum_given && ok)
		csum = mw_comp_checksum(ref, raw_len);
	verified = ok && mw_comp_checksum(ref, raw_len) == csum;
	if (!csum_given)
		FUZZ_CHECK(verified == ok);
	if (via_pool)
		FUZZ_CHECK((pool_verify(c, raw, src, n, dst, raw_len, csum) ==
			    0) == verified);
	free(dst);
	free(ref);
	return 0;
}
