/* SPDX-License-Identifier: MIT */
/*
 * Option values the benchmark programs share (see args.h). Called from
 * their getopt_long loops on the main thread, before anything starts.
 */
#include "args.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>

#include "corpus.h"
#include "datagen.h"

/* mw_bench_args_parse() returns these, or -EINVAL for a bad value. */
enum { ARG_DONE, ARG_HELP, ARG_OTHER };

static int args_parse(struct mw_bench_args *a, int key, const char *val)
{
	char *end;
	uint32_t n;

	switch (key) {
	case 's':
		if (mw_parse_size(val, &a->size) || !a->size)
			return -EINVAL;
		return ARG_DONE;
	case 'S':
		a->seed = strtoull(val, &end, 0);
		return *end ? -EINVAL : ARG_DONE;
	case 'r':
		if (mw_parse_u32(val, 1, a->runs_max, &n))
			return -EINVAL;
		a->runs = n;
		return ARG_DONE;
	case 'p':
		return mw_parse_cpus(val, &a->cpus) ? -EINVAL : ARG_DONE;
	case 'h':
		return ARG_HELP;
	default:
		return ARG_OTHER;
	}
}

int mw_bench_args_getopt(struct mw_bench_args *a, int argc, char **argv,
			 const struct option *opts, mw_bench_opt_fn *one,
			 void *arg)
{
	int c, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		ret = args_parse(a, c, optarg);
		if (ret == ARG_HELP)
			return 1;
		if (ret == ARG_OTHER)
			ret = one(arg, c, optarg);
		if (ret)
			return -EINVAL;
	}
	return 0;
}

int mw_bench_args_corpus(const struct mw_bench_args *a, uint8_t **out)
{
	struct mw_datagen_cfg cfg;

	mw_datagen_cfg_default(&cfg);
	cfg.seed = a->seed;
	return mw_corpus_generate(out, (size_t)a->size, &cfg);
}
