/* SPDX-License-Identifier: MIT */
/* A growing byte buffer the stream tests write QEMU streams into, field
 * by field, big-endian as QEMU writes them. */
#ifndef MW_TEST_STREAM_SB_H
#define MW_TEST_STREAM_SB_H

#include <stddef.h>
#include <stdint.h>

struct sb {
	uint8_t *p;
	size_t n, cap;
};

void sb_put(struct sb *b, const void *p, size_t n);
void u8(struct sb *b, uint8_t v);
void be16(struct sb *b, uint16_t v);
void be32(struct sb *b, uint32_t v);
void be64(struct sb *b, uint64_t v);
/* A u8 length, then the string. */
void str8(struct sb *b, const char *s);

#endif
