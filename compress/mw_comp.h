/* SPDX-License-Identifier: MIT */
/*
 * Codecs (none, zlib, zstd) behind one ops table, and the worker pool that
 * runs them off the I/O threads.
 *
 * A job is one chunk. Compress: checksum the raw bytes (XXH3-64), compress
 * into dst; if the result is not smaller than the input the job reports
 * raw = true and dst is unused (the chunk travels raw). Decompress: inflate
 * src into dst, which must yield exactly raw_len bytes, then verify the
 * checksum; a raw job only verifies. A failed job never reports success.
 *
 * Dependencies: common/ only (compress and tls never include each other).
 */
#ifndef MW_COMP_H
#define MW_COMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mw_err.h"
#include "mw_parse.h"

enum mw_codec {
	MW_CODEC_NONE = 0,
	MW_CODEC_ZLIB = 1,
	MW_CODEC_ZSTD = 2,
	MW_CODEC_MAX
};

/* "none", "zlib", "zstd" */
const char *mw_codec_name(enum mw_codec c);
/* Returns 0 or -EINVAL for an unknown name. */
int mw_codec_parse(const char *s, enum mw_codec *out);
/* Default level, and the accepted range of --compress-level per codec. */
int mw_codec_level_default(enum mw_codec c);
void mw_codec_level_range(enum mw_codec c, int *min, int *max);
/* Worst-case compressed size of raw_len bytes (for buffer sizing). */
size_t mw_codec_bound(enum mw_codec c, size_t raw_len);

/* XXH3-64 of the bytes (the checksum every DATA frame carries). */
uint64_t mw_comp_checksum(const void *p, size_t n);

/* One codec context; one per thread, reused across chunks. */
struct mw_codec_ctx;
int mw_codec_ctx_new(struct mw_codec_ctx **out, enum mw_codec c, int level);
void mw_codec_ctx_free(struct mw_codec_ctx *ctx);
/*
 * Compress n bytes into dst (cap bytes). Returns the compressed size, or
 * -MW_E_NOSPACE when the result would not be smaller than n (caller sends
 * raw), or -MW_E_CODEC with the text in *err.
 */
ssize_t mw_codec_compress(struct mw_codec_ctx *ctx, const void *src, size_t n,
			  void *dst, size_t cap, struct mw_err *err);
/*
 * Decompress n bytes into dst; succeeds only if the output is exactly
 * raw_len bytes and the input is consumed exactly (no trailing garbage, no
 * bomb past raw_len). Returns 0 or -MW_E_CORRUPT with the text in *err.
 */
int mw_codec_decompress(struct mw_codec_ctx *ctx, const void *src, size_t n,
			void *dst, size_t raw_len, struct mw_err *err);

/* ---- worker pool ---- */

enum mw_comp_dir { MW_COMP_COMPRESS, MW_COMP_DECOMPRESS };

struct mw_comp_job;
/* Called on the worker thread when a job is finished (ok or not). */
typedef void mw_comp_done_fn(struct mw_comp_job *job);

struct mw_comp_job {
	/* in */
	enum mw_comp_dir dir;
	const uint8_t *src; /* compress: raw; decompress: wire payload */
	size_t src_len;
	uint8_t *dst; /* compress: >= mw_codec_bound(); decompress: raw */
	size_t dst_cap;
	size_t raw_len; /* decompress: expected raw length */
	bool raw;	/* decompress: src is raw, only verify */
	uint64_t csum;	/* decompress: expected checksum */
	mw_comp_done_fn *done;
	void *opaque; /* the caller's, untouched */
	/* out */
	int ret;	/* 0 or -errno/-MW_E_*; text in err */
	size_t out_len; /* compress: bytes in dst (unless raw) */
	struct mw_err err;
	/* compress outputs raw and csum too: raw = did not shrink */
};

struct mw_comp_pool;

/*
 * Starts nthreads workers named "<prefix><i>" (e.g. "mw-zstd0"), placed
 * with mw_thread_place(cpus, cpu_slot0 + i). queue_cap bounds the queue.
 * Returns 0 or -errno.
 */
int mw_comp_pool_new(struct mw_comp_pool **out, enum mw_codec c, int level,
		     unsigned nthreads, unsigned queue_cap, const char *prefix,
		     const struct mw_cpus *cpus, unsigned cpu_slot0);
/*
 * Queues a job; blocks while the queue is full (back-pressure). The pool
 * borrows *job until job->done runs. Returns 0 or -MW_E_CANCEL after stop.
 * Context: any thread.
 */
int mw_comp_pool_submit(struct mw_comp_pool *p, struct mw_comp_job *job);
/*
 * The check every decompress job ends with, run on the calling thread: a
 * raw job's src must hold exactly raw_len bytes, and the raw bytes (src for
 * a raw job, the decoded dst otherwise) must match csum. Sets ret and err on
 * a mismatch, out_len otherwise. A receiver verifies raw chunks with it
 * in place, without a hand-off to the pool.
 */
void mw_comp_job_verify(struct mw_comp_job *job);
/*
 * Workers take the newest queued job instead of the oldest. With
 * mw_comp_pool_claim() on the oldest this lets a consumer that must go in
 * order take work from one end while the workers compress ahead from the
 * other (send --adaptive). Context: any thread.
 */
void mw_comp_pool_newest_first(struct mw_comp_pool *p);
/*
 * Takes a queued job back before any worker started it: returns true and
 * the job is the caller's again (its done will not run), or false when a
 * worker has it or it is finished. Context: any thread.
 */
bool mw_comp_pool_claim(struct mw_comp_pool *p, struct mw_comp_job *job);
/*
 * Makes every blocked and later submit return -MW_E_CANCEL and tells the
 * workers to exit after the job in hand; does not wait. Lets a failing
 * session free a reader stuck in submit before mw_comp_pool_free().
 * Context: any thread.
 */
void mw_comp_pool_stop(struct mw_comp_pool *p);
/* Wakes and joins the workers; queued jobs not yet started are dropped
 * (their done is not called). No submit may be running or start now. */
void mw_comp_pool_free(struct mw_comp_pool *p);
/* CPU seconds all workers used so far (for stats). */
double mw_comp_pool_cpu_seconds(struct mw_comp_pool *p);

#endif
