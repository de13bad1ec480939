/* SPDX-License-Identifier: MIT */
/* Error text for errno and project codes. Any thread. */
#include "mw_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int mw_err_set(struct mw_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

const char *mw_strerror(int code)
{
	static const char *const names[] = {
		[MW_E_PROTO - MW_E_BASE] = "protocol error",
		[MW_E_CORRUPT - MW_E_BASE] = "data corrupted",
		[MW_E_CODEC - MW_E_BASE] = "codec error",
		[MW_E_TLS - MW_E_BASE] = "TLS error",
		[MW_E_AUTH - MW_E_BASE] = "authentication failed",
		[MW_E_PEER - MW_E_BASE] = "peer reported an error",
		[MW_E_CLOSED - MW_E_BASE] = "connection closed by peer",
		[MW_E_TIMEOUT - MW_E_BASE] = "timed out",
		[MW_E_CANCEL - MW_E_BASE] = "cancelled",
		[MW_E_NOSPACE - MW_E_BASE] = "no space",
		[MW_E_USAGE - MW_E_BASE] = "usage error",
	};
	int c = -code;

	if (c > MW_E_BASE && c < MW_E_MAX && names[c - MW_E_BASE])
		return names[c - MW_E_BASE];
	if (c > 0 && c < MW_E_BASE)
		return strerror(c);
	return "unknown error";
}
