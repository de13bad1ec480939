/* SPDX-License-Identifier: MIT */
/* What every migwire command line shares: exact option names and --help
 * layout. Pure functions; the main thread. */
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
