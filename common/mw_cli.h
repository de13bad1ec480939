/* SPDX-License-Identifier: MIT */
/* What every migwire command line shares (mw_cli.c). */
#ifndef MW_CLI_H
#define MW_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

/*
 * getopt_long takes any unique prefix of a long option ("--chan" for
 * --channels), which silently changes meaning once a second option shares
 * the prefix. True when tok, the argv element getopt just read, names the
 * option in full ("--name" or "--name=value"), or is a short option.
 */
bool mw_opt_exact(const char *tok, const char *name);
/* One option of --help: left ("--name ARG") in a 28-column field, help
 * wrapped at 80 columns under itself; a longer left gets its own line. */
void mw_help_opt(FILE *f, const char *left, const char *help);

/* "PROG: <fmt> (see --help)" on stderr. Returns 2, the usage status. */
int mw_usage_err(const char *prog, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * getopt_long with "+" ordering that accepts long options by their full
 * name only: an abbreviation is reported ("PROG: unknown option ...
 * (did you mean --NAME?)") and returns -2; otherwise as getopt_long.
 */
int mw_getopt_exact(int argc, char **argv, const char *shorts,
		    const struct option *lo, const char *prog);

#endif
