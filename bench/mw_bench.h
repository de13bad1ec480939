/* SPDX-License-Identifier: MIT */
/*
 * The `migwire bench` library (bench/): send and receive over loopback in
 * one run, with the reference rates measured beside them. tools/migwire.c
 * only dispatches here; the options, their table and --help live with the
 * library (bench/opts.c), one table per command as for send and recv.
 */
#ifndef MW_BENCH_H
#define MW_BENCH_H

/*
 * Runs `migwire bench` with argv[0] == "bench". Returns the exit status:
 * 0 every configuration ran and was byte-exact, 1 a run failed, 2 usage.
 * Context: main thread of a single-threaded process (it forks children).
 */
int mw_bench_run(int argc, char **argv);

#endif
