/* SPDX-License-Identifier: MIT */
/* What every migwire command line shares: exact option names and --help
 * layout. Pure functions; the main thread. */
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#include "mw_cli.h"

/*
 * getopt_long takes any unique prefix of a long option ("--chan" for
 * --channels), which silently changes meaning once a second option shares
 * the prefix: only the full name (optionally "=value") is accepted.
 */
bool mw_opt_exact(const char *tok, const char *name)
{
	size_t n = strlen(name);

	if (!tok || strncmp(tok, "--", 2))
		return true; /* a short option */
	return !strncmp(tok + 2, name, n) && (!tok[2 + n] || tok[2 + n] == '=');
}

/*
 * One option of --help: the option in a 28-column field, its text wrapped
 * at 80 columns under itself (a longer option gets a line of its own).
 */
void mw_help_opt(FILE *f, const char *left, const char *help)
{
	const int col = 31, room = 80 - 31;
	bool beside = (int)strlen(left) <= col - 3;
	const char *p = help;

	if (beside)
		fprintf(f, "  %-28s ", left);
	else
		fprintf(f, "  %s\n", left);
	while (*p) {
		int n = (int)strlen(p);

		if (n > room) {
			n = room;
			while (n > 0 && p[n] != ' ')
				n--;
			if (!n)
				n = room;
		}
		fprintf(f, "%*s%.*s\n", beside ? 0 : col, "", n, p);
		beside = false;
		p += n;
		while (*p == ' ')
			p++;
	}
}

int mw_usage_err(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see --help)\n");
	return 2;
}

int mw_getopt_exact(int argc, char **argv, const char *shorts,
		    const struct option *lo, const char *prog)
{
	/* with "+" ordering argv[optind] is the token getopt reads next */
	const char *tok = optind < argc ? argv[optind] : NULL;
	int idx = -1;
	int c = getopt_long(argc, argv, shorts, lo, &idx);

	if (c != -1 && idx >= 0 && !mw_opt_exact(tok, lo[idx].name)) {
		mw_usage_err(prog, "unknown option '%s' (did you mean --%s?)",
			     tok, lo[idx].name);
		return -2;
	}
	return c;
}
