/* SPDX-License-Identifier: MIT */
/*
 * bench_hist: does keeping zstd's history across chunks pay for its CPU?
 * Cuts a corpus file (a saved migration stream: migrate "exec:cat > FILE")
 * into chunks and deals them round-robin to W compress workers, as send's
 * pool does, then compresses every chunk three ways:
 *   chunk   each chunk its own frame (what migwire sends today)
 *   worker  one zstd stream per worker, flushed at each chunk's end: a
 *           chunk may refer back to the earlier chunks of its worker, within
 *           the level's window (level 1: 512 KiB)
 *   long    the same with --window-log's window and long-distance matching
 * and decompresses them again (the stream ways in the worker's order, as a
 * receiver would have to), checking every byte. One line of JSON per way:
 * wire bytes, compress and decompress CPU seconds (this thread's), and the
 * context memory of one worker on each side.
 * Measurement only: the codec in compress/ keeps one frame per chunk (see
 * docs/performance-compare.md, "codec history").
 * Context: single-threaded; the workers are simulated in turn.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "corpus.h"
#include "mw_parse.h"

enum way { WAY_CHUNK, WAY_WORKER, WAY_LONG };

static const char *const way_name[] = { "chunk", "worker", "long" };

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static ZSTD_CCtx *cctx_new(enum way w, int level, int wlog)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();

	if (!c)
		return NULL;
	ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
	if (w == WAY_LONG) {
		ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, wlog);
		ZSTD_CCtx_setParameter(c, ZSTD_c_enableLongDistanceMatching, 1);
	}
	return c;
}

/* Compresses chunk src[0..n) into dst; the stream ways flush, not end. */
static size_t comp_one(ZSTD_CCtx *c, enum way w, const uint8_t *src, size_t n,
		       uint8_t *dst, size_t cap)
{
	ZSTD_inBuffer in = { src, n, 0 };
	ZSTD_outBuffer out = { dst, cap, 0 };
	size_t r;

	if (w == WAY_CHUNK)
		return ZSTD_compress2(c, dst, cap, src, n);
	do {
		r = ZSTD_compressStream2(c, &out, &in, ZSTD_e_flush);
		if (ZSTD_isError(r))
			return r;
	} while (r || in.pos < in.size);
	return out.pos;
}

static int decomp_one(ZSTD_DCtx *d, enum way w, const uint8_t *src, size_t n,
		      uint8_t *dst, size_t raw)
{
	ZSTD_inBuffer in = { src, n, 0 };
	ZSTD_outBuffer out = { dst, raw, 0 };
	size_t r;

	if (w == WAY_CHUNK) {
		r = ZSTD_decompressDCtx(d, dst, raw, src, n);
		return ZSTD_isError(r) || r != raw ? -EIO : 0;
	}
	while (in.pos < in.size) {
		r = ZSTD_decompressStream(d, &out, &in);
		if (ZSTD_isError(r))
			return -EIO;
	}
	return out.pos == raw ? 0 : -EIO;
}

struct run {
	const uint8_t *corpus;
	size_t size, chunk, nchunks;
	unsigned workers;
	int level, wlog;
	uint8_t *wire, *back;
	size_t *wlen, cap;
};

static int run_way(struct run *r, enum way w)
{
	ZSTD_CCtx **cc = calloc(r->workers, sizeof(*cc));
	ZSTD_DCtx **dc = calloc(r->workers, sizeof(*dc));
	double t0, ct, dt;
	size_t i, total = 0, cmem = 0, dmem = 0;
	unsigned k;
	int ret = -ENOMEM;

	if (!cc || !dc)
		goto out;
	for (k = 0; k < r->workers; k++) {
		cc[k] = cctx_new(w, r->level, r->wlog);
		dc[k] = ZSTD_createDCtx();
		if (!cc[k] || !dc[k])
			goto out;
		if (w == WAY_LONG)
			ZSTD_DCtx_setParameter(dc[k], ZSTD_d_windowLogMax,
					       r->wlog);
	}
	ret = -EIO;
	/* worker k takes chunks k, k + W, ...: the pool's order per worker */
	t0 = cpu_now();
	for (k = 0; k < r->workers; k++)
		for (i = k; i < r->nchunks; i += r->workers) {
			size_t n = i + 1 < r->nchunks ? r->chunk :
							r->size - i * r->chunk;
			size_t z = comp_one(cc[k], w, r->corpus + i * r->chunk,
					    n, r->wire + i * r->cap, r->cap);

			if (ZSTD_isError(z)) {
				fprintf(stderr, "bench_hist: %s\n",
					ZSTD_getErrorName(z));
				goto out;
			}
			/* a chunk that does not shrink travels raw, today */
			r->wlen[i] = z;
			total += z < n ? z : n;
		}
	ct = cpu_now() - t0;
	cmem = ZSTD_sizeof_CCtx(cc[0]);
	t0 = cpu_now();
	for (k = 0; k < r->workers; k++)
		for (i = k; i < r->nchunks; i += r->workers) {
			size_t n = i + 1 < r->nchunks ? r->chunk :
							r->size - i * r->chunk;

			if (decomp_one(dc[k], w, r->wire + i * r->cap,
				       r->wlen[i], r->back, n) ||
			    memcmp(r->back, r->corpus + i * r->chunk, n)) {
				fprintf(stderr,
					"bench_hist: %s: chunk %zu "
					"differs\n",
					way_name[w], i);
				goto out;
			}
		}
	dt = cpu_now() - t0;
	dmem = ZSTD_sizeof_DCtx(dc[0]);
	printf("{\"bench\":\"hist\",\"way\":\"%s\",\"workers\":%u,"
	       "\"level\":%d,\"window_log\":%d,\"chunk\":%zu,\"in_bytes\":%zu,"
	       "\"wire_bytes\":%zu,\"ratio\":%.4f,\"comp_cpu_s\":%.3f,"
	       "\"decomp_cpu_s\":%.3f,\"cctx_bytes\":%zu,\"dctx_bytes\":%zu}\n",
	       way_name[w], r->workers, r->level, w == WAY_LONG ? r->wlog : 0,
	       r->chunk, r->size, total, (double)r->size / (double)total, ct,
	       dt, cmem, dmem);
	fflush(stdout);
	ret = 0;
out:
	for (k = 0; cc && dc && k < r->workers; k++) {
		ZSTD_freeCCtx(cc[k]);
		ZSTD_freeDCtx(dc[k]);
	}
	free(cc);
	free(dc);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_hist [options] FILE\n"
		   "  --workers N      compress workers (default 2)\n"
		   "  --level L        zstd level (default 1)\n"
		   "  --chunk SIZE     chunk size (default 256K)\n"
		   "  --window-log N   the long way's window, 2^N bytes "
		   "(default 27)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "workers", required_argument, NULL, 'w' },
		{ "level", required_argument, NULL, 'l' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "window-log", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct run r = { .workers = 2,
			 .level = 1,
			 .wlog = 27,
			 .chunk = 256 << 10 };
	uint8_t *corpus = NULL;
	uint64_t v;
	uint32_t u;
	int c, fd, ret = 1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (mw_parse_u32(optarg, 1, 64, &u))
				goto usage;
			r.workers = u;
			break;
		case 'l': {
			char *end;
			long l = strtol(optarg, &end, 10);

			if (*end || l < -7 || l > 19)
				goto usage;
			r.level = (int)l;
			break;
		}
		case 'c':
			if (mw_parse_size(optarg, &v) || v < 4096 ||
			    v > (16u << 20))
				goto usage;
			r.chunk = (size_t)v;
			break;
		case 'W':
			if (mw_parse_u32(optarg, 10, 31, &u))
				goto usage;
			r.wlog = (int)u;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto usage;
		}
	}
	if (optind + 1 != argc)
		goto usage;
	fd = open(argv[optind], O_RDONLY);
	if (fd < 0 || mw_corpus_read(fd, &corpus, &r.size) || !r.size) {
		perror(argv[optind]);
		return 1;
	}
	close(fd);
	r.corpus = corpus;
	r.nchunks = (r.size + r.chunk - 1) / r.chunk;
	r.cap = ZSTD_compressBound(r.chunk);
	r.wire = malloc(r.nchunks * r.cap);
	r.back = malloc(r.chunk);
	r.wlen = calloc(r.nchunks, sizeof(*r.wlen));
	if (r.wire && r.back && r.wlen && !run_way(&r, WAY_CHUNK) &&
	    !run_way(&r, WAY_WORKER) && !run_way(&r, WAY_LONG))
		ret = 0;
	free(r.wire);
	free(r.back);
	free(r.wlen);
	free(corpus);
	return ret;
usage:
	usage(stderr);
	return 2;
}
