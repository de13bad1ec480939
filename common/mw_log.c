/* SPDX-License-Identifier: MIT */
/* stderr logging; one write(2) per line so lines of threads never mix. */
#include "mw_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int mw_log_level = MW_LOG_WARN;
static const char *log_side = "";
/* a progress line is on the terminal without its newline: the next line
 * of any thread erases it first ("\r" + erase to the end of the line) */
static atomic_bool progress_shown;
/* one line reaches stderr at a time, and the flag says what is on it */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
#define ERASE "\r\033[K"

void mw_log_set_side(const char *side)
{
	log_side = side;
}

static void put(const char *p, size_t n)
{
	if (write(STDERR_FILENO, p, n) < 0)
		return; /* nowhere left to report it */
}

void mw_log_emit(int lvl, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n, e;

	n = snprintf(line, sizeof(line), "migwire%s%s: ", *log_side ? " " : "",
		     log_side);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	pthread_mutex_lock(&out_lock);
	e = atomic_exchange(&progress_shown, false) ? (int)strlen(ERASE) : 0;
	if (e)
		put(ERASE, (size_t)e);
	put(line, (size_t)n);
	pthread_mutex_unlock(&out_lock);
}

/* A terminal's width, so a progress line never wraps: "\r" + erase only
 * clear the last row. 0 when unknown. */
static int term_cols(void)
{
	struct winsize ws;

	return ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 0;
}

void mw_log_progress(bool tty, bool done, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n, cols = tty ? term_cols() : 0;

	n = snprintf(line, sizeof(line), "%smigwire%s%s: ", tty ? ERASE : "",
		     *log_side ? " " : "", log_side);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	if (cols > 1 && n - (int)strlen(ERASE) > cols - 1)
		n = (int)strlen(ERASE) + cols - 1;
	if (!tty || done)
		line[n++] = '\n';
	pthread_mutex_lock(&out_lock);
	if (write(STDERR_FILENO, line, (size_t)n) >= 0)
		atomic_store(&progress_shown, tty && !done);
	pthread_mutex_unlock(&out_lock);
}
