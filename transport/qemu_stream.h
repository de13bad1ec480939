/* SPDX-License-Identifier: MIT */
/* What transport knows of QEMU's bytes (qemu_stream.c). */
#ifndef MW_QEMU_STREAM_H
#define MW_QEMU_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sniffs the kind of QEMU connection (MW_SK_*) from its first forward
 * bytes, or its first reverse bytes when reverse is set. */
unsigned mw_kind_sniff(const uint8_t *p, size_t n, bool reverse);
/*
 * An NBD client ends with a disconnect request and closes; an NBD server
 * being stopped may close first (libvirt stops the destination's server
 * right after the source's block job ends), so the request meets a closed
 * socket. Losing exactly that request loses nothing. Returns true when
 * p[0..n) is one NBD_CMD_DISC request (compact or extended header).
 */
bool mw_nbd_is_disc(const uint8_t *p, size_t n);

#endif
