/* SPDX-License-Identifier: MIT */
/*
 * The options the benchmark programs (bench_comp, bench_ref) share, parsed
 * once (bench/args.c): --size and --seed of the generated corpus (the
 * default mw-datagen mix), --runs, --cpu(s) and --help. Each program's
 * getopt_long table maps them to the keys 's', 'S', 'r', 'p' and 'h' and
 * hands every other key to its own parser.
 */
#ifndef MW_BENCH_ARGS_H
#define MW_BENCH_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "mw_parse.h"

/* Locking: none; the main thread's, before any other thread starts. */
struct mw_bench_args {
	uint64_t size, seed; /* the corpus */
	unsigned runs;	     /* timed runs after the warm-up */
	unsigned runs_max;   /* set by the program with the defaults */
	struct mw_cpus cpus; /* --cpu / --cpus; empty: not pinned */
};

struct option;

/* A program's own options: 0 or -EINVAL (an unknown key included). */
typedef int mw_bench_opt_fn(void *arg, int key, const char *val);

/*
 * Runs getopt_long over argv with opts: the shared keys into *a, every
 * other one to one(arg, key, value). Stray arguments are left at optind.
 * Returns 0, 1 after -h/--help, or -EINVAL.
 */
int mw_bench_args_getopt(struct mw_bench_args *a, int argc, char **argv,
			 const struct option *opts, mw_bench_opt_fn *one,
			 void *arg);

/*
 * Allocates and generates a->size bytes of the default mix with a->seed
 * (*out; the caller frees it). Returns 0 or -ENOMEM.
 */
int mw_bench_args_corpus(const struct mw_bench_args *a, uint8_t **out);

#endif
