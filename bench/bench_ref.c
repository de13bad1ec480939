/* SPDX-License-Identifier: MIT */
/*
 * bench_ref: the reference costs that bench/pipe.py holds `migwire send |
 * migwire recv` against, measured on the same corpus in the same run.
 *
 *  - codec: N threads compress every --chunk-size piece of the corpus (as
 *    the sender's pool does: into a bound-sized buffer; a chunk that does
 *    not shrink travels raw), then N threads decompress them, all in
 *    memory. Reports the wall time and the CPU seconds of each phase; the
 *    bare codec rate is corpus bytes / (compress wall + decompress wall).
 *  - cipher: one thread seals the wire bytes (what the codec produced,
 *    raw chunks at raw size) as TLS 1.3 does, in full 16 KiB records
 *    (AES-GCM, 5-byte record header as AAD, per-record nonce, 16-byte
 *    tag), then opens them again. AES-256-GCM by default: OpenSSL's first
 *    TLS 1.3 suite, which is what migwire's X.509 mode negotiates
 *    (TLS_AES_256_GCM_SHA384); --cipher aes-128-gcm matches PSK mode.
 *  - relay: one thread writes the wire bytes, chunk by chunk, into a TCP
 *    connection over 127.0.0.1 and another reads and discards them; the
 *    CPU of both threads (softirq work on loopback included, as it lands
 *    on them) and the wall time.
 *  - xxh3: the checksum of the raw corpus, which migwire computes once on
 *    each side; reported apart, as it is not part of "codec".
 *
 * One untimed warm-up pass (which also checks the round trip byte for
 * byte), then --runs timed passes, one JSON line each. The passes
 * themselves are bench/ref.c, which `migwire bench` runs too; this file is
 * the command line and the JSON line bench/pipe.py reads.
 */
#include "args.h"
#include "corpus.h"
#include "datagen.h"
#include "ref.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ref {
	struct mw_bench_ref r;
	const char *cipher, *input;
	size_t wire_bytes;
};

/* Worker failures, reported as they happen (see mw_bench_ref_fail_fn). */
static void ref_fail(const struct mw_bench_ref *r, size_t chunk, int ret,
		     const struct mw_err *err)
{
	if (chunk == SIZE_MAX)
		return; /* no context: main reports the code */
	if (!err->msg[0])
		fprintf(stderr, "bench_ref: chunk %zu differs\n", chunk);
	else
		fprintf(stderr, "bench_ref: chunk %zu: %s\n", chunk, err->msg);
}

struct result {
	double c_wall, c_cpu, d_wall, d_cpu, seal, open, r_wall, r_cpu, xxh3;
};

static int run_once(struct ref *x, struct result *res)
{
	struct mw_bench_ref *r = &x->r;
	size_t got;
	int ret;

	ret = mw_bench_ref_codec(r, MW_COMP_COMPRESS, &res->c_wall,
				 &res->c_cpu);
	if (!ret)
		ret = mw_bench_ref_codec(r, MW_COMP_DECOMPRESS, &res->d_wall,
					 &res->d_cpu);
	if (ret)
		return ret;
	x->wire_bytes = mw_bench_ref_wire_bytes(r);
	ret = mw_bench_ref_cipher(r, x->cipher, &res->seal, &res->open);
	if (!ret)
		ret = mw_bench_ref_relay(r, &res->r_wall, &res->r_cpu, &got);
	if (!ret && got != x->wire_bytes) {
		fprintf(stderr, "bench_ref: relay got %zu of %zu bytes\n", got,
			x->wire_bytes);
		ret = -EIO;
	}
	res->xxh3 = mw_bench_ref_xxh3(r);
	return ret;
}

static void print_result(const struct ref *x, const char *sha,
			 const char *kernel, unsigned run,
			 const struct result *res)
{
	const struct mw_bench_ref *r = &x->r;
	double gib = (double)r->size / (double)(1u << 30);
	double codec_cpu = res->c_cpu + res->d_cpu;
	double unavoid = codec_cpu + res->seal + res->open + res->r_cpu;

	printf("{\"bench\":\"ref\",\"sha\":\"%s\",\"kernel\":\"%s\","
	       "\"run\":%u,\"size\":%zu,\"codec\":\"%s\",\"level\":%d,"
	       "\"chunk\":%zu,\"threads\":%u,\"cipher\":\"%s\","
	       "\"wire_bytes\":%zu,\"ratio\":%.4f,"
	       "\"comp_wall_s\":%.4f,\"comp_cpu_s\":%.4f,"
	       "\"decomp_wall_s\":%.4f,\"decomp_cpu_s\":%.4f,"
	       "\"codec_mbps\":%.1f,"
	       "\"seal_cpu_s\":%.4f,\"open_cpu_s\":%.4f,"
	       "\"relay_wall_s\":%.4f,\"relay_cpu_s\":%.4f,"
	       "\"xxh3_cpu_s\":%.4f,"
	       "\"unavoidable_cpu_s\":%.4f,"
	       "\"unavoidable_cpu_s_per_gib\":%.4f}\n",
	       sha, kernel, run, r->size, mw_codec_name(r->codec), r->level,
	       r->chunk, r->threads, x->cipher, x->wire_bytes,
	       (double)x->wire_bytes / (double)r->size, res->c_wall, res->c_cpu,
	       res->d_wall, res->d_cpu,
	       (double)r->size / 1e6 / (res->c_wall + res->d_wall), res->seal,
	       res->open, res->r_wall, res->r_cpu, res->xxh3, unavoid,
	       unavoid / gib);
	fflush(stdout);
}

/* Reads --input into *corpus; prints why not and returns -1. */
static int load_file(uint8_t **corpus, size_t *size, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0) {
		fprintf(stderr, "bench_ref: %s: %s\n", path, strerror(errno));
		return -1;
	}
	ret = mw_corpus_read(fd, corpus, size);
	close(fd);
	if (ret == -EINVAL)
		fprintf(stderr, "bench_ref: %s: empty or unreadable\n", path);
	else if (ret)
		fprintf(stderr, "bench_ref: cannot read %s\n", path);
	return ret ? -1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_ref [options]\n"
		"  --input FILE       corpus file (default: generate --size)\n"
		"  --size SIZE        generated corpus bytes (default 256M)\n"
		"  --seed N           mw-datagen seed (default 0)\n"
		"  --compress CODEC   zstd|zlib|none (default zstd)\n"
		"  --compress-level L (default 1)\n"
		"  --chunk-size SIZE  (default 256K)\n"
		"  --threads N        codec threads, 1..%d (default 2)\n"
		"  --cipher NAME      aes-256-gcm (X.509 TLS) | aes-128-gcm "
		"(PSK TLS)\n"
		"  --runs N           timed runs after one warm-up (default 1)\n"
		"  --cpus LIST        pin threads round-robin to these CPUs\n"
		"Prints one JSON line per timed run. MW_GIT_SHA names the "
		"build.\n",
		MW_BENCH_REF_THREADS);
}

/* The options of bench_ref alone; the shared ones are args.c's. */
static int opt_one(void *arg, int key, const char *val)
{
	struct ref *x = arg;
	struct mw_bench_ref *r = &x->r;
	char *end;
	uint64_t v;
	uint32_t n;

	switch (key) {
	case 'i':
		x->input = val;
		return 0;
	case 'c':
		return mw_codec_parse(val, &r->codec);
	case 'l':
		r->level = (int)strtol(val, &end, 10);
		return *end ? -EINVAL : 0;
	case 'k':
		if (mw_parse_size(val, &v) || v < 4096 || v > (16u << 20))
			return -EINVAL;
		r->chunk = (size_t)v;
		return 0;
	case 't':
		if (mw_parse_u32(val, 1, MW_BENCH_REF_THREADS, &n))
			return -EINVAL;
		r->threads = n;
		return 0;
	case 'C':
		x->cipher = val;
		return 0;
	default:
		return -EINVAL;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "size", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "compress", required_argument, NULL, 'c' },
		{ "compress-level", required_argument, NULL, 'l' },
		{ "chunk-size", required_argument, NULL, 'k' },
		{ "threads", required_argument, NULL, 't' },
		{ "cipher", required_argument, NULL, 'C' },
		{ "runs", required_argument, NULL, 'r' },
		{ "cpus", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mw_bench_args args = { .size = 256u << 20,
				      .runs = 1,
				      .runs_max = 1000 };
	struct ref x = { .r = { .chunk = 256u << 10,
				.threads = 2,
				.codec = MW_CODEC_ZSTD,
				.level = 1,
				.who = "bench_ref",
				.fail = ref_fail },
			 .cipher = "aes-256-gcm" };
	struct mw_bench_ref *r = &x.r;
	const char *sha;
	struct result res;
	char kernel[128];
	uint8_t *corpus = NULL;
	unsigned i;
	int ret;

	ret = mw_bench_args_getopt(&args, argc, argv, opts, opt_one, &x);
	if (ret > 0) {
		usage(stdout);
		return 0;
	}
	if (ret || optind < argc)
		goto usage;
	sha = mw_bench_host(kernel, sizeof(kernel));
	if (x.input) {
		if (load_file(&corpus, &r->size, x.input))
			return 1;
	} else {
		r->size = (size_t)args.size;
		if (mw_bench_args_corpus(&args, &corpus))
			return 1;
	}
	r->corpus = corpus;
	r->cpus = &args.cpus;
	if (mw_bench_ref_init(r, true)) {
		fprintf(stderr, "bench_ref: out of memory\n");
		free(corpus);
		return 1;
	}
	/* Warm-up: faults every buffer in and checks the round trip. */
	r->check = true;
	ret = run_once(&x, &res);
	r->check = false;
	for (i = 0; !ret && i < args.runs; i++) {
		ret = run_once(&x, &res);
		if (!ret)
			print_result(&x, sha, kernel, i, &res);
	}
	if (ret)
		fprintf(stderr, "bench_ref: %s\n", mw_strerror(ret));
	mw_bench_ref_destroy(r);
	free(corpus);
	return ret ? 1 : 0;
usage:
	usage(stderr);
	return 2;
}
