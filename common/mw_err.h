/* SPDX-License-Identifier: MIT */
/*
 * Error codes and the error-detail holder used by every module.
 *
 * Functions return 0 or a negative errno / -MW_E_* code. Project codes sit
 * above any errno (as libuv does). The human text of a library error (zstd,
 * OpenSSL) is stored next to the code in a struct mw_err owned by the object
 * that failed, so the code path that finally reports it can print one line.
 */
#ifndef MW_ERR_H
#define MW_ERR_H

#include <stddef.h>

enum {
	MW_E_BASE = 5000,
	MW_E_PROTO,   /* peer broke the wire protocol */
	MW_E_CORRUPT, /* checksum or length mismatch: data is not what was sent */
	MW_E_CODEC,   /* compression library failed */
	MW_E_TLS,     /* TLS handshake, certificate or record failure */
	MW_E_AUTH,    /* wrong session, credentials or version */
	MW_E_PEER,    /* the peer reported an error (ERROR frame) */
	MW_E_CLOSED,  /* the peer closed the connection too early */
	MW_E_TIMEOUT, /* a handshake or transfer stalled past --timeout */
	MW_E_CANCEL,  /* interrupted by a signal or by another thread's error */
	MW_E_NOSPACE, /* output does not fit the buffer / did not shrink */
	MW_E_USAGE,   /* bad option or option combination */
	MW_E_MAX
};

#define MW_ERR_MSG_MAX 512

/* One error: a code and a line of text saying what failed and why. */
struct mw_err {
	int code;
	char msg[MW_ERR_MSG_MAX];
};

/*
 * Stores code and a printf-formatted message in *e (when e is not NULL) and
 * returns code, so callers write `return mw_err_set(&x->err, -EIO, "...")`.
 * code must be negative.
 */
int mw_err_set(struct mw_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Peer text (an ERROR frame's) made safe for one line of a terminal or
 * log: printable ASCII is kept, the backslash and every other byte become
 * \\ and \xNN, so an escape sequence, a newline or a NUL from a hostile
 * peer can neither restyle the terminal nor forge a second line. At most
 * MW_PEER_TEXT_MAX bytes of dst are used (cap permitting); text cut short
 * ends in "...". Returns dst, NUL-terminated. Any thread.
 */
#define MW_PEER_TEXT_MAX 300
const char *mw_err_peer_text(char *dst, size_t cap, const void *src, size_t n);

/* Text for a negative errno or -MW_E_* code; never NULL. */
const char *mw_strerror(int code);

#endif
