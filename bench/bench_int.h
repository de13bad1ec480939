/* SPDX-License-Identifier: MIT */
/*
 * Private to the `migwire bench` library (bench/): the sweep's state and
 * the calls between its stages. Only mw_bench.h is public.
 *
 *   opts.c    the option table, --help, parsing into struct mw_bench
 *   setup.c   temporary directory, corpus file, credentials, child spawn
 *   sweep.c   configurations x references, repetitions, ratios (driver)
 *   pair.c    one `migwire recv` | `migwire send` pair and what it wrote
 *   ref.c     the in-memory references (shared with bench_ref)
 *   report.c  medians, tables, JSON lines, CSV and the gnuplot PNG
 */
#ifndef MW_BENCH_INT_H
#define MW_BENCH_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "datagen.h"
#include "mw_comp.h"

#define B_LIST_MAX 16 /* items of one comma list option */
#define B_STAGES 8    /* send's four stages, then recv's */

enum mw_bench_tls { MW_BENCH_TLS_OFF, MW_BENCH_TLS_X509, MW_BENCH_TLS_PSK };

/* "off", "x509", "psk": as --tls, the tables and the JSON name them */
extern const char *const mw_bench_tls_name[];
/* the stages as the --stats-file lines and the JSON name them */
extern const char *const mw_bench_stage_name[B_STAGES];

/*
 * Locking: none. Every struct below is owned by the one driver thread;
 * the threads the bench starts (reference workers, the output verifier)
 * only read the corpus and are joined before the call that started them
 * returns.
 */

/* One configuration, one repetition. */
struct mw_bench_rep {
	bool ok;
	double wall_s, cpu_s; /* sender start to last exit; both processes */
	uint64_t wire;	      /* send's bytes_wire */
	double stage[B_STAGES];
	double p50_ms, p99_ms;
	/* ratios to the references of the same repetition */
	double x_limit, x_relay, x_comp, x_decomp, x_unavoid;
};

/* One reference, one repetition. */
struct mw_bench_limit_rep {
	double wall_s, cpu_s; /* relay: the pass; codec: c + d */
	double c_wall, c_cpu, d_wall, d_cpu;
	uint64_t wire; /* codec: bytes after compression (raw chunks raw) */
};

/* A reference (limit) of the sweep: bench/ref.c on the corpus. */
struct mw_bench_limit {
	bool relay; /* else codec */
	enum mw_codec codec;
	int level;
	unsigned threads;
	uint32_t chunk;
	struct mw_bench_limit_rep *run; /* [reps] */
};

struct mw_bench_conf {
	enum mw_codec codec;
	int level;
	unsigned chans, threads;
	uint32_t chunk;
	enum mw_bench_tls tls;
	int cref, rref; /* indexes into refs; cref < 0 for codec none */
	struct mw_bench_rep *run;
	char err[300]; /* the first failure */
};

struct mw_bench {
	/* options */
	uint64_t size, window;
	struct mw_datagen_cfg gen;
	const char *input, *json, *csv, *plot, *mkcerts;
	unsigned reps, timeout_s;
	bool keep, level_default;
	enum mw_codec codec[B_LIST_MAX];
	int level[B_LIST_MAX];
	unsigned chans[B_LIST_MAX], threads[B_LIST_MAX];
	uint32_t chunk[B_LIST_MAX];
	enum mw_bench_tls tls[B_LIST_MAX];
	unsigned n_codec, n_level, n_chans, n_threads, n_chunk, n_tls;
	/* state */
	uint8_t *corpus;
	size_t n;
	char exe[PATH_MAX], tmp[PATH_MAX - 64], corpus_path[PATH_MAX];
	char pki[PATH_MAX], psk[PATH_MAX];
	struct mw_bench_conf *conf;
	struct mw_bench_limit *ref;
	unsigned nconf, nref;
	int failed;
};

/* A child's argv, built in place; aborts when it would overflow. */
struct mw_bench_argv {
	char *v[48];
	unsigned n;
	char store[4 * PATH_MAX];
	size_t used;
};

/* ---- opts.c ---- */

/*
 * Parses `migwire bench` options (argv[0] == "bench") into *b, whose
 * defaults the caller set, and fills the lists left empty. Returns 0, 1
 * after --help, or -MW_E_USAGE (message printed).
 */
int mw_bench_opts_parse(struct mw_bench *b, int argc, char **argv);

/* ---- setup.c ---- */

/* out = b->tmp/name (PATH_MAX bytes). */
void mw_bench_path(const struct mw_bench *b, char *out, const char *name);
void mw_bench_argv_add(struct mw_bench_argv *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Finds this binary and makes b->tmp. Returns 0 or -1 (reported). */
int mw_bench_workdir_make(struct mw_bench *b);
/* Removes b->tmp, or says where it is with --keep. */
void mw_bench_workdir_drop(const struct mw_bench *b);
/* Loads --input, or generates the corpus into b->tmp. 0 or -errno. */
int mw_bench_corpus_load(struct mw_bench *b);
/* The X.509 PKI or keys.psk the configurations need. 0 or -errno. */
int mw_bench_creds_make(struct mw_bench *b);
/*
 * Spawns argv[0] (PATH search) with the given stdio (-1: /dev/null;
 * err_path NULL: inherited). Returns the pid or -errno.
 */
pid_t mw_bench_spawn(char *const argv[], int in_fd, int out_fd,
		     const char *err_path);
/* Runs argv to completion, stdout discarded; returns its exit status. */
int mw_bench_tool_run(char *const argv[]);
/* True when prog is an executable file in $PATH. */
bool mw_bench_in_path(const char *prog);

/* ---- pair.c ---- */

/*
 * Runs configuration c once for repetition rep (recv and send over
 * loopback, a port taken by someone else is retried). Returns 0 or < 0
 * with the reason in c->err; a configuration that failed once is not run
 * again.
 */
int mw_bench_conf_run(struct mw_bench *b, struct mw_bench_conf *c,
		      unsigned rep);

/* ---- report.c ---- */

int mw_bench_dbl_cmp(const void *x, const void *y); /* for qsort */
void mw_bench_conf_name(const struct mw_bench_conf *c, char *buf, size_t cap);
void mw_bench_limit_name(const struct mw_bench_limit *f, char *buf, size_t cap);
/* The tables on stdout. */
void mw_bench_tables_print(const struct mw_bench *b);
/* --json, --csv and --plot; each returns 0 or -errno. */
int mw_bench_json_write(const struct mw_bench *b);
int mw_bench_csv_write(const struct mw_bench *b);
int mw_bench_plot_write(const struct mw_bench *b);

#endif
