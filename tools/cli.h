/* SPDX-License-Identifier: MIT */
/*
 * Private to tools/: the send/recv command line split in three: opts.c (the
 * one option table, parsing, --help), config.c (cross-option checks, the
 * placement, --print-config; budget.c for --cpu-budget) and migwire.c
 * (dispatch and the run).
 */
#ifndef MW_TOOLS_CLI_H
#define MW_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mw_xport.h"

#define SIDE_SEND 1
#define SIDE_RECV 2
#define SIDE_BOTH 3
#define MW_AUTHZ_MAX 64
#define MW_JOIN_TOKEN_MAX \
	1024u /* --join-token bytes */ /* --tls-authz given; more go in --tls-authz-file */

/* What the command line said; cfg is what the run gets. Main thread. */
struct opts {
	struct mw_xp_cfg cfg;
	const char *to, *listen, *creds, *psk, *psk_id, *hostname;
	/* send --to, repeatable, each a comma-separated list of HOST:PORT:
	 * the paths (cli_finish splits them into cfg.paths) */
	const char *to_args[MW_PATHS_MAX];
	unsigned nr_to_args;
	const char *input, *output, *cpus;
	unsigned nr_listen, nr_connect;
	const char *listen_eps[MW_ENDPOINTS_MAX + 1];
	const char *connect_eps[MW_ENDPOINTS_MAX + 1];
	const char *authz[MW_AUTHZ_MAX], *authz_file;
	unsigned nr_authz;
	bool no_tls, print_config, have_level, have_threads, no_rp;
	bool have_progress;
	bool probe;		   /* send --probe */
	uint32_t qemu_pid;	   /* --qemu-pid; 0: look among the parents */
	struct mw_placement place; /* how cfg.cpus was chosen */
	const char *side_name;
	const char *join_token_path;
	uint8_t join_token[MW_JOIN_TOKEN_MAX]; /* wiped after the run */
};

/* "migwire send" / "migwire recv" once the side is known, else "migwire" */
extern const char *cli_prog;
/* One usage line "PROG: MSG (see --help)"; returns -MW_E_USAGE. */
int cli_usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Parses argv (argv[0] is the side's name) into o, defaults first.
 * Returns 0 to go on, 1 when --help or --version was printed (exit 0), or
 * 2 after a usage line.
 */
int cli_parse(struct opts *o, int side, int argc, char **argv);
void cli_print_usage(FILE *f, int side);
/* help.c: the fixed texts around the option list, the top-level help and
 * the version line. */
void cli_usage_intro(FILE *f, int side);
void cli_usage_notes(FILE *f);
void cli_print_main_help(FILE *f);
void cli_print_version(void);
/* config.c: --tls-authz, --tls-authz-file and --allow-from (option
 * handlers of opts.c's table: 0 or -MW_E_USAGE). */
int cli_opt_authz(struct opts *o, const char *a);
int cli_opt_authz_file(struct opts *o, const char *a);
int cli_opt_allow(struct opts *o, const char *a);
/* join_token.c: reads --join-token's file into o->join_token and
 * cfg.join_token (0 or -MW_E_USAGE after one line). */
int cli_load_join_token(struct opts *o);
/* config.c: --pages auto|off and --page-cache SIZE. */
int cli_opt_pages(struct opts *o, const char *a);
int cli_opt_page_cache(struct opts *o, const char *a);
/* budget.c: --cpu-budget's handler, its checks once the thread counts
 * and CPUs are known (0 or -MW_E_USAGE), its --print-config line. */
int cli_opt_cpu_budget(struct opts *o, const char *a);
int cli_finish_budget(struct opts *o, int side);
void cli_print_budget(const struct opts *o);
/* config.c: cross-option checks and derived values (0 or -MW_E_USAGE). */
int cli_finish(struct opts *o, int side);
/* --print-config: what a run would check (0, 1 or 2), then the settings. */
int cli_check_config(const struct opts *o);
void cli_print_config(const struct opts *o, int side);
bool cli_is_pipe_or_socket(int fd);

#endif
