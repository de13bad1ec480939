/* SPDX-License-Identifier: MIT */
/*
 * The parser's section payloads (stream_int.h): the "ram" section's
 * records, decoded, and the 7.2 "block" section's, stepped over. Context:
 * the feeding thread (qemu_parse.h).
 *
 * A page-carrying record names its RAMBlock unless CONTINUE says "same
 * block as the previous page record"; that block carries over section
 * boundaries (QEMU's last_sent_block), so the parser keeps it in
 * cur_block for the whole stream. Page payloads reach the callback in
 * place when the feed holds the whole page, else from the bounce page.
 */
#include <stdlib.h>
#include <string.h>

#include "mw_wire.h"
#include "stream_int.h"

/* The index of block name, added if new; -1 when the table is full. */
static int block_find(struct mw_stream_parser *p, const char *name)
{
	uint32_t i;

	if (p->cur_block >= 0 && !strcmp(p->blocks[p->cur_block], name))
		return p->cur_block;
	for (i = 0; i < p->nblocks; i++)
		if (!strcmp(p->blocks[i], name))
			return (int)i;
	if (p->nblocks == MW_STREAM_BLOCKS_MAX)
		return -1;
	p->blocks[p->nblocks] = strdup(name);
	if (!p->blocks[p->nblocks])
		return -1;
	return (int)p->nblocks++;
}

/* ---- "ram" ---- */

static void ram_emit(struct mw_stream_parser *p, const uint8_t *data,
		     uint32_t len)
{
	struct mw_stream_ev ev = { .type = MW_STREAM_EV_RAM };

	ev.ram.kind = p->rec_kind;
	ev.ram.flags = p->rec_flags;
	ev.ram.block = p->cur_block < 0 ? 0 : (uint16_t)p->cur_block;
	ev.ram.addr = p->rec_w & ~(uint64_t)(p->page_size - 1);
	ev.ram.data = data;
	ev.ram.len = len;
	mw_stream_emit(p, &ev);
}

/* The record body, once its block is known. */
static void ram_body(struct mw_stream_parser *p)
{
	switch (p->rec_kind) {
	case MW_RAM_K_ZERO:
		return mw_stream_expect(p, S_RAM_ZERO, 1);
	case MW_RAM_K_PAGE:
		return mw_stream_expect(p, S_RAM_PAGE, p->page_size);
	case MW_RAM_K_XBZRLE:
		return mw_stream_expect(p, S_RAM_XBZ, 3);
	default: /* COMPRESS */
		return mw_stream_expect(p, S_RAM_CLEN, 4);
	}
}

/* The record kind of flags without CONTINUE; false for one QEMU never
 * sends on these channels (FULL, HOOK, combinations, unknown bits). */
static bool ram_kind_of(uint32_t base, enum mw_ram_kind *k)
{
	static const uint32_t flag_of[] = {
		[MW_RAM_K_MEM_SIZE] = MW_RAM_MEM_SIZE,
		[MW_RAM_K_ZERO] = MW_RAM_ZERO,
		[MW_RAM_K_PAGE] = MW_RAM_PAGE,
		[MW_RAM_K_XBZRLE] = MW_RAM_XBZRLE,
		[MW_RAM_K_COMPRESS] = MW_RAM_COMPRESS_PAGE,
		[MW_RAM_K_EOS] = MW_RAM_EOS,
		[MW_RAM_K_FLUSH] = MW_RAM_MULTIFD_FLUSH,
	};
	unsigned i;

	for (i = 0; i < sizeof(flag_of) / sizeof(flag_of[0]); i++)
		if (flag_of[i] == base) {
			*k = (enum mw_ram_kind)i;
			return true;
		}
	return false;
}

static void mem_size(struct mw_stream_parser *p)
{
	if (p->postcopy_huge)
		return mw_stream_opaque_at(p, p->item_off,
					   "MEM_SIZE with postcopy and huge "
					   "pages: per-block page sizes are "
					   "not parsed");
	ram_emit(p, NULL, 0);
	p->ms_left = p->rec_w & ~(uint64_t)(p->page_size - 1);
	p->item_off = p->pos; /* each list entry is an item */
	if (!p->ms_left)
		return mw_stream_ram_next(p);
	mw_stream_expect(p, S_MS_IDLEN, 1);
}

static void ram_hdr(struct mw_stream_parser *p)
{
	uint32_t f;

	p->rec_w = mw_get_be64(p->acc);
	f = (uint32_t)(p->rec_w & (p->page_size - 1));
	p->rec_flags = f;
	if (!ram_kind_of(f & ~(uint32_t)MW_RAM_CONTINUE, &p->rec_kind))
		return mw_stream_opaque_at(p, p->item_off,
					   "ram record flags 0x%x", f);
	switch (p->rec_kind) {
	case MW_RAM_K_EOS:
		ram_emit(p, NULL, 0);
		return mw_stream_section_end(p);
	case MW_RAM_K_FLUSH:
		ram_emit(p, NULL, 0);
		return mw_stream_ram_next(p);
	case MW_RAM_K_MEM_SIZE:
		return mem_size(p);
	default: /* a page: its block, then its body */
		break;
	}
	if (!(f & MW_RAM_CONTINUE))
		return mw_stream_expect(p, S_RAM_IDLEN, 1);
	if (p->cur_block < 0)
		return mw_stream_opaque_at(
			p, p->item_off,
			"ram record continues a block never named");
	ram_body(p);
}

static void ram_idstr(struct mw_stream_parser *p)
{
	char name[256];
	int b;

	mw_stream_acc_str(p, name);
	b = block_find(p, name);
	if (b < 0)
		return mw_stream_opaque_at(p, p->item_off,
					   "more than %u RAM blocks",
					   MW_STREAM_BLOCKS_MAX);
	p->cur_block = b;
	ram_body(p);
}

static void mem_size_entry(struct mw_stream_parser *p)
{
	struct mw_stream_ev ev = { .type = MW_STREAM_EV_RAMBLOCK };

	if (p->ms_len > p->ms_left)
		return mw_stream_opaque_at(
			p, p->item_off,
			"MEM_SIZE block lengths exceed the total");
	ev.ramblock.block = p->ms_block;
	ev.ramblock.name = p->blocks[p->ms_block];
	ev.ramblock.length = p->ms_len;
	mw_stream_emit(p, &ev);
	p->ms_left -= p->ms_len;
	p->item_off = p->pos;
	if (p->ms_left)
		mw_stream_expect(p, S_MS_IDLEN, 1);
	else
		mw_stream_ram_next(p);
}

/* ---- "block" (7.2 block migration): stepped over ---- */

static void blk_hdr(struct mw_stream_parser *p)
{
	uint32_t f = (uint32_t)(mw_get_be64(p->acc) & BLK_FLAGS_MASK);

	if (f == BLK_EOS)
		return mw_stream_section_end(p);
	if (f == BLK_PROGRESS) {
		p->item_off = p->pos;
		return mw_stream_expect(p, S_BLK_HDR, 8);
	}
	if ((f & ~BLK_ZERO_BLOCK) != BLK_DEVICE_BLOCK)
		return mw_stream_opaque_at(p, p->item_off,
					   "block record flags 0x%x", f);
	p->rec_flags = f;
	mw_stream_expect(p, S_BLK_IDLEN, 1);
}

/* ---- the field dispatcher ---- */

void mw_stream_step_records(struct mw_stream_parser *p)
{
	const uint8_t *a = p->acc;
	int b;

	switch (p->state) {
	case S_RAM_HDR:
		return ram_hdr(p);
	case S_RAM_IDLEN:
		if (!a[0])
			return mw_stream_opaque_at(p, p->item_off,
						   "empty block name");
		return mw_stream_expect(p, S_RAM_IDSTR, a[0]);
	case S_RAM_IDSTR:
		return ram_idstr(p);
	case S_RAM_ZERO:
		ram_emit(p, NULL, 0);
		return mw_stream_ram_next(p);
	case S_RAM_XBZ:
		p->rec_len = mw_get_be16(a + 1);
		if (a[0] != 1 || p->rec_len > p->page_size)
			return mw_stream_opaque_at(
				p, p->item_off,
				"XBZRLE record (encoding %u, %u bytes)", a[0],
				p->rec_len);
		mw_stream_skip(p, p->rec_len, S_RAM_SKIPPED, 0);
		return;
	case S_RAM_CLEN:
		p->rec_len = mw_get_be32(a);
		if (p->rec_len > 2 * p->page_size)
			return mw_stream_opaque_at(
				p, p->item_off, "compressed page of %u bytes",
				p->rec_len);
		mw_stream_skip(p, p->rec_len, S_RAM_SKIPPED, 0);
		return;
	case S_RAM_SKIPPED:
		ram_emit(p, NULL, p->rec_len);
		return mw_stream_ram_next(p);
	case S_MS_IDLEN:
		if (!a[0])
			return mw_stream_opaque_at(p, p->item_off,
						   "empty block name");
		return mw_stream_expect(p, S_MS_IDSTR, a[0]);
	case S_MS_IDSTR: {
		char name[256];

		mw_stream_acc_str(p, name);
		b = block_find(p, name);
		if (b < 0)
			return mw_stream_opaque_at(p, p->item_off,
						   "more than %u RAM blocks",
						   MW_STREAM_BLOCKS_MAX);
		p->ms_block = (uint16_t)b;
		return mw_stream_expect(p, S_MS_LEN, 8);
	}
	case S_MS_LEN:
		p->ms_len = mw_get_be64(a);
		if (p->ignore_shared)
			return mw_stream_expect(p, S_MS_ADDR, 8);
		return mem_size_entry(p);
	case S_MS_ADDR:
		return mem_size_entry(p);
	case S_BLK_HDR:
		return blk_hdr(p);
	case S_BLK_IDLEN:
		if (!a[0])
			return mw_stream_opaque_at(p, p->item_off,
						   "empty device name");
		return mw_stream_expect(p, S_BLK_NAME, a[0]);
	case S_BLK_NAME:
		p->item_off = p->pos;
		if (p->rec_flags & BLK_ZERO_BLOCK)
			return mw_stream_expect(p, S_BLK_HDR, 8);
		mw_stream_skip(p, BLK_MIG_BLOCK_SIZE, S_BLK_HDR, 8);
		return;
	default:
		break;
	}
}

/* The page field: in place when the feed holds it all, else bounced. */
size_t mw_stream_page_take(struct mw_stream_parser *p, const uint8_t *buf,
			   size_t n)
{
	uint32_t want = p->page_size - p->acc_len;
	size_t take = n < want ? n : want;

	if (!p->acc_len && n >= p->page_size) {
		p->pos += p->page_size;
		ram_emit(p, buf, p->page_size);
		mw_stream_ram_next(p);
		return p->page_size;
	}
	memcpy(p->bounce + p->acc_len, buf, take);
	p->acc_len += (uint32_t)take;
	p->pos += take;
	if (p->acc_len == p->page_size) {
		ram_emit(p, p->bounce, p->page_size);
		mw_stream_ram_next(p);
	}
	return take;
}

const char *mw_ram_kind_name(enum mw_ram_kind k)
{
	static const char *const names[] = {
		[MW_RAM_K_MEM_SIZE] = "MEM_SIZE",
		[MW_RAM_K_ZERO] = "ZERO",
		[MW_RAM_K_PAGE] = "PAGE",
		[MW_RAM_K_XBZRLE] = "XBZRLE",
		[MW_RAM_K_COMPRESS] = "COMPRESS",
		[MW_RAM_K_EOS] = "EOS",
		[MW_RAM_K_FLUSH] = "MULTIFD_FLUSH",
	};

	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}
