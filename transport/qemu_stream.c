/* SPDX-License-Identifier: MIT */
/*
 * What transport knows of QEMU's bytes, and no more: which kind of QEMU
 * connection a stream is (from its first bytes), and the one NBD message
 * whose loss at the end of a storage copy loses nothing. Everything else
 * travels as opaque bytes. Pure functions, any thread.
 */
#include <string.h>

#include "mw_wire.h"
#include "qemu_stream.h"

unsigned mw_kind_sniff(const uint8_t *p, size_t n, bool reverse)
{
	if (reverse)
		return n >= 8 && !memcmp(p, "NBDMAGIC", 8) ? MW_SK_NBD :
							     MW_SK_UNKNOWN;
	if (n >= 4 && !memcmp(p, "QEVM", 4))
		return MW_SK_MAIN;
	if (n >= 4 && mw_get_be32(p) == 0x11223344u)
		return MW_SK_MULTIFD;
	return MW_SK_UNKNOWN;
}

bool mw_nbd_is_disc(const uint8_t *p, size_t n)
{
	if (n == 28 && mw_get_be32(p) == 0x25609513u)
		return mw_get_be16(p + 6) == 2;
	if (n == 32 && mw_get_be32(p) == 0x21e41c71u)
		return mw_get_be16(p + 6) == 2;
	return false;
}
