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

const char *mw_err_peer_text(char *dst, size_t cap, const void *src, size_t n)
{
	const unsigned char *p = src;
	size_t i, o = 0;

	if (!cap)
		return dst;
	if (cap > MW_PEER_TEXT_MAX + 1)
		cap = MW_PEER_TEXT_MAX + 1;
	for (i = 0; i < n; i++) {
		char esc[5];
		size_t k;

		if (p[i] == '\\')
			k = (size_t)snprintf(esc, sizeof(esc), "\\\\");
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			k = (size_t)snprintf(esc, sizeof(esc), "%c", p[i]);
		else
			k = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
		/* room for this byte and, unless it is the last, "..." */
		if (o + k + (i + 1 < n ? 3 : 0) >= cap) {
			snprintf(dst + o, cap - o, "...");
			return dst;
		}
		memcpy(dst + o, esc, k);
		o += k;
	}
	dst[o] = '\0';
	return dst;
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
