/* SPDX-License-Identifier: MIT */
/* stderr logging; one write(2) per line so lines of threads never mix. */
#include "mw_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

int mw_log_level = MW_LOG_WARN;
static const char *log_side = "";
/* a progress line is on the terminal without its newline: the next line
 * of any thread erases it first ("\r" + erase to the end of the line) */
static atomic_bool progress_shown;
#define ERASE "\r\033[K"

void mw_log_set_side(const char *side)
{
	log_side = side;
}

void mw_log_emit(int lvl, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "%smigwire%s%s: ",
		     atomic_exchange(&progress_shown, false) ? ERASE : "",
		     *log_side ? " " : "", log_side);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return; /* nowhere left to report it */
}

void mw_log_progress(bool tty, bool done, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "%smigwire%s%s: ", tty ? ERASE : "",
		     *log_side ? " " : "", log_side);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	if (!tty || done)
		line[n++] = '\n';
	atomic_store(&progress_shown, tty && !done);
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}
