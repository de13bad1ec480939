/* SPDX-License-Identifier: MIT */
/*
 * Logging to stderr, one line per message, prefixed "migwire <side>: ".
 * stdout is never used: for `send` under exec: it is QEMU's return path.
 * The level is checked before any formatting happens.
 */
#ifndef MW_LOG_H
#define MW_LOG_H

#include <stdbool.h>

enum mw_log_level {
	MW_LOG_ERR = 0,
	MW_LOG_WARN,
	MW_LOG_INFO,
	MW_LOG_DEBUG,
	MW_LOG_TRACE,
};

extern int mw_log_level;

/* Sets the prefix printed before each line ("send", "recv"); not copied. */
void mw_log_set_side(const char *side);
void mw_log_emit(int lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * A progress line, whatever the level. tty: it stays on the line (no
 * newline) and the next line of any kind replaces it; done or !tty: a
 * normal line. Main thread.
 */
void mw_log_progress(bool tty, bool done, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define MW_LOG(lvl, ...)                                 \
	do {                                             \
		if ((lvl) <= mw_log_level)               \
			mw_log_emit((lvl), __VA_ARGS__); \
	} while (0)

#endif
