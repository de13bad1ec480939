/* SPDX-License-Identifier: MIT */
/*
 * bench_comp: single-thread codec speed, codec x level x chunk size, on a
 * mw_datagen corpus. For each configuration it compresses and decompresses
 * the whole corpus chunk by chunk (one warm-up pass, then --runs timed
 * passes), checks the round trip once, and prints one JSON line with the
 * median and best MB/s (raw bytes per second, 1 MB = 1e6 bytes) and the
 * ratio wire/raw, where chunks that did not shrink count at raw size, as
 * they travel. A last line measures the XXH3 checksum alone.
 * Single-threaded (pin it with --cpu). The per-chunk codec step is
 * bench/ref.c's, the one `migwire bench` and bench_ref time on N threads.
 */
#include "args.h"
#include "mw_thread.h"
#include "ref.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bench {
	struct mw_bench_ref ref; /* the corpus, its chunks and their wire */
	uint8_t *out;
	unsigned runs;
	uint64_t seed;
	char kernel[128];
	const char *sha;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Compresses every chunk; returns seconds, or < 0 on a codec error. */
static double pass_compress(struct bench *b, struct mw_codec_ctx *ctx)
{
	unsigned long long t0 = mw_now_ns();
	struct mw_err err;
	size_t i;

	for (i = 0; i < b->ref.nchunks; i++)
		if (mw_bench_ref_chunk(&b->ref, ctx, MW_COMP_COMPRESS, i, NULL,
				       &err)) {
			fprintf(stderr, "bench_comp: %s\n", err.msg);
			return -1;
		}
	return (double)(mw_now_ns() - t0) / 1e9;
}

/* Decompresses every chunk; check compares with the corpus. */
static double pass_decompress(struct bench *b, struct mw_codec_ctx *ctx,
			      bool check)
{
	unsigned long long t0 = mw_now_ns();
	struct mw_err err;
	size_t i;

	b->ref.check = check;
	for (i = 0; i < b->ref.nchunks; i++) {
		if (!mw_bench_ref_chunk(&b->ref, ctx, MW_COMP_DECOMPRESS, i,
					b->out, &err))
			continue;
		if (err.msg[0])
			fprintf(stderr, "bench_comp: %s\n", err.msg);
		else
			fprintf(stderr, "bench_comp: chunk %zu differs\n", i);
		return -1;
	}
	return (double)(mw_now_ns() - t0) / 1e9;
}

static void print_line(const struct bench *b, const char *codec, int level,
		       double ratio, double *ct, double *dt)
{
	double mb = (double)b->ref.size / 1e6;

	qsort(ct, b->runs, sizeof(*ct), cmp_double);
	printf("{\"bench\":\"comp\",\"sha\":\"%s\",\"kernel\":\"%s\","
	       "\"codec\":\"%s\",\"level\":%d,\"chunk\":%zu,\"size\":%zu,"
	       "\"seed\":%llu,\"runs\":%u,\"ratio\":%.4f,"
	       "\"comp_mbps_median\":%.1f,\"comp_mbps_best\":%.1f",
	       b->sha, b->kernel, codec, level, b->ref.chunk, b->ref.size,
	       (unsigned long long)b->seed, b->runs, ratio,
	       mb / ct[b->runs / 2], mb / ct[0]);
	if (dt) {
		qsort(dt, b->runs, sizeof(*dt), cmp_double);
		printf(",\"decomp_mbps_median\":%.1f,\"decomp_mbps_best\":%.1f",
		       mb / dt[b->runs / 2], mb / dt[0]);
	}
	printf("}\n");
	fflush(stdout);
}

static int bench_one(struct bench *b, enum mw_codec c, int level)
{
	struct mw_codec_ctx *ctx;
	double ct[64], dt[64];
	unsigned r;
	int ret = mw_codec_ctx_new(&ctx, c, level);

	if (ret < 0) {
		fprintf(stderr, "bench_comp: %s level %d: %s\n",
			mw_codec_name(c), level, mw_strerror(ret));
		return ret;
	}
	ret = -MW_E_CODEC;
	/* Warm-up, and the one checked round trip. */
	if (pass_compress(b, ctx) < 0 || pass_decompress(b, ctx, true) < 0)
		goto out;
	for (r = 0; r < b->runs; r++) {
		ct[r] = pass_compress(b, ctx);
		dt[r] = pass_decompress(b, ctx, false);
		if (ct[r] < 0 || dt[r] < 0)
			goto out;
	}
	print_line(b, mw_codec_name(c), level,
		   (double)mw_bench_ref_wire_bytes(&b->ref) /
			   (double)b->ref.size,
		   ct, dt);
	ret = 0;
out:
	mw_codec_ctx_free(ctx);
	return ret;
}

static void bench_checksum(struct bench *b)
{
	double t[64];
	volatile uint64_t sink = 0;
	unsigned long long t0;
	unsigned r;
	size_t i;

	for (r = 0; r <= b->runs; r++) {
		t0 = mw_now_ns();
		for (i = 0; i < b->ref.nchunks; i++)
			sink ^= mw_comp_checksum(
				b->ref.corpus + i * b->ref.chunk,
				mw_bench_ref_chunk_len(&b->ref, i));
		t[r ? r - 1 : 0] = (double)(mw_now_ns() - t0) / 1e9;
	}
	print_line(b, "xxh3", 0, 1.0, t, NULL);
	(void)sink;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_comp [options]\n"
		   "  --size SIZE     corpus bytes (default 64M)\n"
		   "  --seed N        mw-datagen seed (default 0)\n"
		   "  --codecs LIST   e.g. zstd,zlib (default zstd,zlib)\n"
		   "  --zstd-levels L comma list (default -3,1,3,9)\n"
		   "  --zlib-levels L comma list (default 1,6)\n"
		   "  --chunks LIST   chunk sizes (default 64K,256K,1M)\n"
		   "  --runs N        timed runs after one warm-up, 1..64 "
		   "(default 5)\n"
		   "  --cpu N         pin to this CPU\n"
		   "Prints one JSON line per configuration; the corpus is the\n"
		   "default mw-datagen mix. MW_GIT_SHA names the build.\n");
}

/* Calls fn on each comma-separated item of list; stops at an error. */
static int for_each_item(const char *list, int (*fn)(const char *, void *),
			 void *arg)
{
	char buf[256], *save = NULL, *tok;
	int ret;

	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		ret = fn(tok, arg);
		if (ret < 0)
			return ret;
	}
	return 0;
}

struct run_ctx {
	struct bench *b;
	enum mw_codec codec;
	const char *levels[MW_CODEC_MAX];
	const char *chunks, *codecs;
};

static int run_level(const char *s, void *arg)
{
	struct run_ctx *rc = arg;
	char *end;
	long level = strtol(s, &end, 10);

	if (*end)
		return -EINVAL;
	return bench_one(rc->b, rc->codec, (int)level);
}

static int run_codec(const char *s, void *arg)
{
	struct run_ctx *rc = arg;

	if (mw_codec_parse(s, &rc->codec) < 0 || rc->codec == MW_CODEC_NONE)
		return -EINVAL;
	return for_each_item(rc->levels[rc->codec], run_level, rc);
}

static int run_chunk(const char *s, void *arg)
{
	struct run_ctx *rc = arg;
	struct bench *b = rc->b;
	uint64_t chunk;

	if (mw_parse_size(s, &chunk) || !chunk || chunk > b->ref.size)
		return -EINVAL;
	mw_bench_ref_destroy(&b->ref);
	free(b->out);
	b->ref.chunk = (size_t)chunk;
	b->out = malloc(b->ref.chunk);
	if (!b->out || mw_bench_ref_init(&b->ref, true))
		return -ENOMEM;
	return for_each_item(rc->codecs, run_codec, rc);
}

/* The options of bench_comp alone; the shared ones are args.c's. */
static int opt_one(void *arg, int key, const char *val)
{
	struct run_ctx *rc = arg;

	switch (key) {
	case 'c':
		rc->codecs = val;
		return 0;
	case 'Z':
		rc->levels[MW_CODEC_ZSTD] = val;
		return 0;
	case 'L':
		rc->levels[MW_CODEC_ZLIB] = val;
		return 0;
	case 'k':
		rc->chunks = val;
		return 0;
	default:
		return -EINVAL;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "codecs", required_argument, NULL, 'c' },
		{ "zstd-levels", required_argument, NULL, 'Z' },
		{ "zlib-levels", required_argument, NULL, 'L' },
		{ "chunks", required_argument, NULL, 'k' },
		{ "runs", required_argument, NULL, 'r' },
		{ "cpu", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mw_bench_args args = { .size = 64u << 20,
				      .runs = 5,
				      .runs_max = 64 };
	struct bench b = { .ref = { .codec = MW_CODEC_ZSTD } };
	struct run_ctx rc = { .b = &b,
			      .codecs = "zstd,zlib",
			      .chunks = "64K,256K,1M" };
	uint8_t *corpus;
	int ret;

	rc.levels[MW_CODEC_ZSTD] = "-3,1,3,9";
	rc.levels[MW_CODEC_ZLIB] = "1,6";
	ret = mw_bench_args_getopt(&args, argc, argv, opts, opt_one, &rc);
	if (ret > 0) {
		usage(stdout);
		return 0;
	}
	if (ret)
		goto usage;
	if (mw_thread_place("bench_comp", &args.cpus, 0) < 0)
		fprintf(stderr, "bench_comp: cannot pin; running unpinned\n");
	b.sha = mw_bench_host(b.kernel, sizeof(b.kernel));
	b.runs = args.runs;
	b.seed = args.seed;
	b.ref.size = (size_t)args.size;
	if (mw_bench_args_corpus(&args, &corpus))
		return 1;
	b.ref.corpus = corpus;

	ret = for_each_item(rc.chunks, run_chunk, &rc);
	if (!ret)
		bench_checksum(&b);
	mw_bench_ref_destroy(&b.ref);
	free(b.out);
	free(corpus);
	if (ret == -EINVAL)
		goto usage;
	return ret < 0 ? 1 : 0;
usage:
	usage(stderr);
	return 2;
}
