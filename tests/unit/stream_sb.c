/* SPDX-License-Identifier: MIT */
/* The stream tests' byte buffer (stream_sb.h); a failed allocation fails
 * the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mw_wire.h"
#include "stream_sb.h"

void sb_put(struct sb *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

void u8(struct sb *b, uint8_t v)
{
	sb_put(b, &v, 1);
}

void be16(struct sb *b, uint16_t v)
{
	uint8_t x[2];

	mw_put_be16(x, v);
	sb_put(b, x, 2);
}

void be32(struct sb *b, uint32_t v)
{
	uint8_t x[4];

	mw_put_be32(x, v);
	sb_put(b, x, 4);
}

void be64(struct sb *b, uint64_t v)
{
	uint8_t x[8];

	mw_put_be64(x, v);
	sb_put(b, x, 8);
}

void str8(struct sb *b, const char *s)
{
	u8(b, (uint8_t)strlen(s));
	sb_put(b, s, strlen(s));
}
