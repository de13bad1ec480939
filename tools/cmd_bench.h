/* SPDX-License-Identifier: MIT */
/*
 * `migwire bench`: send and receive over loopback in one run, with the
 * reference rates measured beside them (tools/cmd_bench.c).
 */
#ifndef MW_CMD_BENCH_H
#define MW_CMD_BENCH_H

/*
 * Runs `migwire bench` with argv[0] == "bench". Returns the exit status:
 * 0 every configuration ran and was byte-exact, 1 a run failed, 2 usage.
 * Context: main thread of a single-threaded process (it forks children).
 */
int mw_cmd_bench(int argc, char **argv);

#endif
