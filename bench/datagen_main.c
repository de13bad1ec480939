/* SPDX-License-Identifier: MIT */
/*
 * mw-datagen: writes a seeded synthetic guest-RAM stream (bench/datagen.h)
 * to stdout, for benchmarks and integration tests. The command line is a
 * stable interface that scripts rely on: options are only ever added.
 * Single-threaded; the output is a pure function of the options.
 */
#include "corpus.h"
#include "datagen.h"
#include "mw_parse.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUT_BUF (1u << 20)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mw-datagen --size SIZE [options] > FILE\n"
		"\n"
		"Writes SIZE bytes of synthetic guest RAM to stdout: 4 KiB pages,\n"
		"each a zero, text-like, code-like (x86-64) or random page, drawn\n"
		"with the given fractions. The output depends only on the options:\n"
		"the same options give the same bytes on every run and machine,\n"
		"and --offset N --size M gives exactly bytes N..N+M-1 of the stream.\n"
		"\n"
		"  -s, --size SIZE   bytes to write (required); K, M, G, T suffixes\n"
		"                    are binary (1G = 1073741824)\n"
		"  -S, --seed N      stream seed, decimal or 0x hex (default 0)\n"
		"  -o, --offset SIZE start at this byte of the stream (default 0)\n"
		"      --zero F      fraction of zero pages        (default 0.25)\n"
		"      --text F      fraction of text-like pages   (default 0.25)\n"
		"      --code F      fraction of code-like pages   (default 0.15)\n"
		"      --random F    fraction of random pages      (default 0.35)\n"
		"                    the four fractions must sum to 1\n"
		"      --run N       pages in a row that share one kind (default 1)\n"
		"  -f, --force       write even when stdout is a terminal\n"
		"  -h, --help        this text\n"
		"\n"
		"Exit status: 0 ok, 1 write error, 2 usage error.\n"
		"Example: mw-datagen --size 1G --seed 7 --zero 0.5 --text 0.2 "
		"--code 0.1 --random 0.2 | migwire send ...\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end)
		return errno ? -errno : -EINVAL;
	*out = v;
	return 0;
}

enum { OPT_ZERO = 256, OPT_TEXT, OPT_CODE, OPT_RANDOM, OPT_RUN };

static const struct option long_opts[] = {
	{ "size", required_argument, NULL, 's' },
	{ "seed", required_argument, NULL, 'S' },
	{ "offset", required_argument, NULL, 'o' },
	{ "zero", required_argument, NULL, OPT_ZERO },
	{ "text", required_argument, NULL, OPT_TEXT },
	{ "code", required_argument, NULL, OPT_CODE },
	{ "random", required_argument, NULL, OPT_RANDOM },
	{ "run", required_argument, NULL, OPT_RUN },
	{ "force", no_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int bad_value(const char *opt, const char *val)
{
	fprintf(stderr, "mw-datagen: bad value for --%s: '%s'\n", opt, val);
	return 2;
}

/* Parses argv into *cfg, *size and *offset; returns 0 or an exit code. */
static int parse_args(int argc, char **argv, struct mw_datagen_cfg *cfg,
		      uint64_t *size, uint64_t *offset)
{
	bool have_size = false, force = false;
	double sum = 0;
	uint32_t run;
	int c, k;

	mw_datagen_cfg_default(cfg);
	while ((c = getopt_long(argc, argv, "s:S:o:fh", long_opts, NULL)) !=
	       -1) {
		switch (c) {
		case 's':
			if (mw_parse_size(optarg, size))
				return bad_value("size", optarg);
			have_size = true;
			break;
		case 'S':
			if (parse_u64(optarg, &cfg->seed))
				return bad_value("seed", optarg);
			break;
		case 'o':
			if (mw_parse_size(optarg, offset))
				return bad_value("offset", optarg);
			break;
		case OPT_ZERO:
		case OPT_TEXT:
		case OPT_CODE:
		case OPT_RANDOM:
			k = c -
			    OPT_ZERO; /* same order as enum mw_datagen_kind */
			if (mw_datagen_weight_parse(optarg, &cfg->weight[k]))
				return bad_value(long_opts[3 + k].name, optarg);
			break;
		case OPT_RUN:
			if (mw_parse_u32(optarg, 1, 1u << 20, &run))
				return bad_value("run", optarg);
			cfg->run_pages = run;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || !have_size) {
		fprintf(stderr, "mw-datagen: %s\n",
			have_size ? "unexpected argument" :
				    "--size is required");
		usage(stderr);
		return 2;
	}
	for (k = 0; k < MW_DATAGEN_KINDS; k++)
		sum += cfg->weight[k];
	if (fabs(sum - 1.0) > 1e-6) {
		fprintf(stderr,
			"mw-datagen: --zero %g --text %g --code %g --random %g "
			"sum to %g, not 1\n",
			cfg->weight[0], cfg->weight[1], cfg->weight[2],
			cfg->weight[3], sum);
		return 2;
	}
	if (!force && isatty(STDOUT_FILENO)) {
		fprintf(stderr, "mw-datagen: stdout is a terminal; redirect "
				"it or use --force\n");
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct mw_datagen_cfg cfg;
	uint64_t size = 0, offset = 0, done = 0;
	uint8_t *buf;
	size_t n;
	int ret;

	ret = parse_args(argc, argv, &cfg, &size, &offset);
	if (ret)
		return ret;
	buf = malloc(OUT_BUF);
	if (!buf) {
		fprintf(stderr, "mw-datagen: out of memory\n");
		return 1;
	}
	while (done < size) {
		n = size - done < OUT_BUF ? (size_t)(size - done) : OUT_BUF;
		mw_datagen_fill(buf, n, &cfg, offset + done);
		ret = mw_corpus_write(STDOUT_FILENO, buf, n);
		if (ret < 0) {
			fprintf(stderr, "mw-datagen: write: %s\n",
				strerror(-ret));
			free(buf);
			return 1;
		}
		done += n;
	}
	free(buf);
	return 0;
}
