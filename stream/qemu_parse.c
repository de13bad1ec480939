/* SPDX-License-Identifier: MIT */
/*
 * The QEMU migration stream parser (qemu_parse.h): a byte-driven state
 * machine. Context: whatever thread feeds it; it has no threads or locks.
 *
 * DESIGN: every item of the stream is a chain of fixed-size fields. The
 * parser is in one state per field and knows how many bytes that field
 * needs; bytes are gathered into acc[] until it has them (so a field may
 * arrive one byte at a time) and then mw_stream_step() decodes the field and picks
 * the next state. Three things do not go through acc[]: page payloads
 * (handed to the callback in place when the feed holds the whole page,
 * else gathered in a bounce page), and payloads the parser only steps
 * over (skip bytes, then the state in skip_next). A field the parser
 * cannot account for makes it opaque: one event, then it only counts.
 *
 * Top level: header, configuration (+ subsections), commands, section
 * headers and footers, EOF, vmdesc. Section payloads: "ram" records are
 * decoded, "block" records (7.2 block migration) stepped over, anything
 * else (vmstate, VFIO, dirty bitmaps, ...) is not self-delimiting and
 * ends understanding.
 */
#include "stream_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_wire.h"

/* ---- top level ---- */

static void top_item(struct mw_stream_parser *p, uint8_t t)
{
	struct mw_stream_ev ev = { .type = MW_STREAM_EV_EOF };

	p->item_off = p->pos - 1;
	p->sec_type = t;
	switch (t) {
	case MW_QEMU_VM_CONFIGURATION:
		if (p->seen_item)
			goto unknown;
		p->seen_item = true;
		mw_stream_expect(p, S_CFG_LEN, 4);
		return;
	case MW_QEMU_VM_COMMAND:
		p->seen_item = true;
		mw_stream_expect(p, S_CMD, 4);
		return;
	case MW_QEMU_VM_SECTION_START:
	case MW_QEMU_VM_SECTION_PART:
	case MW_QEMU_VM_SECTION_END:
	case MW_QEMU_VM_SECTION_FULL:
		p->seen_item = true;
		mw_stream_expect(p, S_SEC_ID, 4);
		return;
	case MW_QEMU_VM_SECTION_FOOTER:
		if (p->cur_sec == NO_SECTION)
			goto unknown;
		mw_stream_expect(p, S_FOOTER, 4);
		return;
	case MW_QEMU_VM_EOF:
		mw_stream_emit(p, &ev);
		mw_stream_expect(p, S_AFTER_EOF, 1);
		return;
	default:
		break;
	}
unknown:
	mw_stream_opaque_at(p, p->item_off, "unexpected top-level byte 0x%02x",
			    t);
}

static void config_done(struct mw_stream_parser *p)
{
	struct mw_stream_ev ev = { .type = MW_STREAM_EV_CONFIG };

	ev.config.machine = p->machine;
	ev.config.page_size = p->page_size;
	mw_stream_emit(p, &ev);
}

static void sub_known(struct mw_stream_parser *p)
{
	const char *n = p->sub_name;

	if (!strcmp(n, "configuration/target-page-bits"))
		mw_stream_expect(p, S_SUB_PAGEBITS, 4);
	else if (!strcmp(n, "configuration/capabilities"))
		mw_stream_expect(p, S_CAPS_COUNT, 4);
	else if (!strcmp(n, "configuration/uuid"))
		mw_stream_expect(p, S_SUB_UUID, 16);
	else
		mw_stream_opaque_at(p, p->item_off,
				    "unknown configuration subsection "
				    "'%s'",
				    n);
}

static void command_done(struct mw_stream_parser *p, uint32_t blob)
{
	struct mw_stream_ev ev = { .type = MW_STREAM_EV_COMMAND };

	ev.command.cmd = p->cmd;
	ev.command.len = p->cmd_len;
	ev.command.blob_len = blob;
	mw_stream_emit(p, &ev);
	if (blob)
		mw_stream_skip(p, blob, S_TOP, 1);
	else
		mw_stream_top(p);
}

/*
 * A command's payload in acc (or stepped over when longer than acc). Only
 * ADVISE and PACKAGED change how the rest of the stream reads.
 */
static void command_payload(struct mw_stream_parser *p)
{
	const uint8_t *a = p->acc;

	if (p->cmd == MW_QEMU_CMD_POSTCOPY_ADVISE && p->cmd_len == 16 &&
	    mw_get_be64(a) != p->page_size)
		p->postcopy_huge = true;
	if (p->cmd == MW_QEMU_CMD_PACKAGED) {
		if (p->cmd_len != 4)
			return mw_stream_opaque_at(
				p, p->item_off, "PACKAGED command of %u bytes",
				p->cmd_len);
		return command_done(p, mw_get_be32(a));
	}
	command_done(p, 0);
}

static void section_header(struct mw_stream_parser *p, uint32_t version)
{
	struct mw_stream_ev ev = { .type = MW_STREAM_EV_SECTION };
	enum mw_stream_sec_kind k = MW_STREAM_SEC_OTHER;
	bool live = p->sec_type != MW_QEMU_VM_SECTION_FULL;

	if (live && !strcmp(p->sec_name, "ram") && version == RAM_VERSION) {
		k = MW_STREAM_SEC_RAM;
		p->ram_id = p->sec_id;
	} else if (live && !strcmp(p->sec_name, "block") && version == 1) {
		k = MW_STREAM_SEC_BLOCK;
		p->block_id = p->sec_id;
	}
	ev.section.type = p->sec_type;
	ev.section.kind = k;
	ev.section.id = p->sec_id;
	ev.section.instance = p->sec_instance;
	ev.section.version = version;
	ev.section.name = p->sec_name;
	mw_stream_emit(p, &ev);
	p->cur_sec = p->sec_id;
	p->cur_kind = k;
	if (k == MW_STREAM_SEC_RAM)
		return mw_stream_ram_next(p);
	if (k == MW_STREAM_SEC_BLOCK) {
		p->item_off = p->pos;
		return mw_stream_expect(p, S_BLK_HDR, 8);
	}
	mw_stream_opaque_at(
		p, p->item_off,
		"%s section '%s' (id %u, version %u): its payload has no "
		"length and no decoder here",
		live ? "live" : "device state", p->sec_name, p->sec_id,
		version);
}

/* PART or END: the id alone names the section. */
static void section_continue(struct mw_stream_parser *p)
{
	if (p->sec_id == p->ram_id) {
		strcpy(p->sec_name, "ram");
		return section_header(p, RAM_VERSION);
	}
	if (p->sec_id == p->block_id) {
		strcpy(p->sec_name, "block");
		return section_header(p, 1);
	}
	mw_stream_opaque_at(p, p->item_off,
			    "section id %u continues but never started",
			    p->sec_id);
}

static void step_top(struct mw_stream_parser *p)
{
	const uint8_t *a = p->acc;
	uint32_t v;

	switch (p->state) {
	case S_MAGIC:
		if (mw_get_be32(a) != QEVM_MAGIC)
			return mw_stream_opaque_at(
				p, 0,
				"not a QEMU migration stream (no "
				"QEVM magic)");
		if (mw_get_be32(a + 4) != QEVM_VERSION)
			return mw_stream_opaque_at(p, 0,
						   "QEMU stream version %u",
						   mw_get_be32(a + 4));
		mw_stream_emit(p, &(struct mw_stream_ev){
					  .type = MW_STREAM_EV_HEADER });
		return mw_stream_top(p);
	case S_TOP:
		return top_item(p, a[0]);
	case S_CFG_LEN:
		v = mw_get_be32(a);
		if (v > 255)
			return mw_stream_opaque_at(
				p, p->item_off, "machine name of %u bytes", v);
		return mw_stream_expect(p, v ? S_CFG_NAME : S_CFG_PEEK,
					v ? v : 1);
	case S_CFG_NAME:
		mw_stream_acc_str(p, p->machine);
		return mw_stream_expect(p, S_CFG_PEEK, 1);
	case S_CFG_PEEK:
		if (a[0] == MW_QEMU_VM_SUBSECTION)
			return mw_stream_expect(p, S_SUB_NAMELEN, 1);
		config_done(p);
		return top_item(p, a[0]);
	case S_SUB_NAMELEN:
		if (!a[0])
			return mw_stream_opaque_at(p, p->item_off,
						   "empty subsection name");
		return mw_stream_expect(p, S_SUB_NAME, a[0]);
	case S_SUB_NAME:
		mw_stream_acc_str(p, p->sub_name);
		return mw_stream_expect(p, S_SUB_VER, 4);
	case S_SUB_VER:
		return sub_known(p);
	case S_SUB_PAGEBITS:
		v = mw_get_be32(a);
		if (v < 10 || v > 16)
			return mw_stream_opaque_at(p, p->item_off,
						   "target-page-bits %u", v);
		p->page_size = 1u << v;
		return mw_stream_expect(p, S_CFG_PEEK, 1);
	case S_SUB_UUID:
		return mw_stream_expect(p, S_CFG_PEEK, 1);
	case S_CAPS_COUNT:
		p->sub_left = mw_get_be32(a);
		return mw_stream_expect(p, p->sub_left ? S_CAP_LEN : S_CFG_PEEK,
					1);
	case S_CAP_LEN:
		if (!a[0])
			return mw_stream_opaque_at(p, p->item_off,
						   "empty capability name");
		return mw_stream_expect(p, S_CAP_NAME, a[0]);
	case S_CAP_NAME:
		if (p->acc_len == 15 && !memcmp(a, "x-ignore-shared", 15))
			p->ignore_shared = true;
		p->sub_left--;
		return mw_stream_expect(p, p->sub_left ? S_CAP_LEN : S_CFG_PEEK,
					1);
	case S_CMD:
		p->cmd = mw_get_be16(a);
		p->cmd_len = mw_get_be16(a + 2);
		if (!p->cmd || p->cmd >= MW_QEMU_CMD_MAX)
			return mw_stream_opaque_at(
				p, p->item_off, "unknown command %u", p->cmd);
		if (!p->cmd_len)
			return command_payload(p);
		if (p->cmd_len > sizeof(p->acc)) {
			mw_stream_skip(p, p->cmd_len, S_CMD_PAYLOAD, 0);
			return;
		}
		return mw_stream_expect(p, S_CMD_PAYLOAD, p->cmd_len);
	case S_CMD_PAYLOAD:
		return command_payload(p);
	default:
		break;
	}
}

static void step_section(struct mw_stream_parser *p)
{
	const uint8_t *a = p->acc;

	switch (p->state) {
	case S_SEC_ID:
		p->sec_id = mw_get_be32(a);
		if (p->sec_type == MW_QEMU_VM_SECTION_PART ||
		    p->sec_type == MW_QEMU_VM_SECTION_END)
			return section_continue(p);
		return mw_stream_expect(p, S_SEC_IDLEN, 1);
	case S_SEC_IDLEN:
		if (!a[0])
			return mw_stream_opaque_at(p, p->item_off,
						   "empty section name");
		return mw_stream_expect(p, S_SEC_IDSTR, a[0]);
	case S_SEC_IDSTR:
		mw_stream_acc_str(p, p->sec_name);
		return mw_stream_expect(p, S_SEC_IV, 8);
	case S_SEC_IV:
		p->sec_instance = mw_get_be32(a);
		return section_header(p, mw_get_be32(a + 4));
	case S_FOOTER:
		if (mw_get_be32(a) != p->cur_sec)
			return mw_stream_opaque_at(
				p, p->item_off,
				"footer of section %u after section "
				"%u",
				mw_get_be32(a), p->cur_sec);
		return mw_stream_top(p);
	case S_AFTER_EOF:
		if (a[0] != MW_QEMU_VM_VMDESCRIPTION)
			return mw_stream_opaque_at(
				p, p->pos - 1, "byte 0x%02x after EOF", a[0]);
		p->item_off = p->pos - 1;
		return mw_stream_expect(p, S_VMDESC_LEN, 4);
	case S_VMDESC_LEN:
		p->rec_len = mw_get_be32(a);
		mw_stream_skip(p, p->rec_len, S_VMDESC, 0);
		return;
	case S_VMDESC: {
		struct mw_stream_ev ev = { .type = MW_STREAM_EV_VMDESC };

		ev.vmdesc.len = p->rec_len;
		mw_stream_emit(p, &ev);
		p->item_off = p->pos;
		return mw_stream_expect(p, S_DONE, 1);
	}
	case S_DONE:
		/* QEMU closes the channel after vmdesc: this is not its */
		return mw_stream_opaque_at(p, p->item_off,
					   "bytes after the end of the stream");
	default:
		break;
	}
}

void mw_stream_step(struct mw_stream_parser *p)
{
	if (p->state >= S_RAM_HDR)
		mw_stream_step_records(p);
	else if (p->state >= S_SEC_ID)
		step_section(p);
	else
		step_top(p);
}

void mw_stream_parser_feed(struct mw_stream_parser *p, const uint8_t *buf,
			   size_t n)
{
	size_t i = 0, take;

	while (i < n && !p->opaque) {
		if (p->skip) {
			take = n - i < p->skip ? n - i : (size_t)p->skip;
			p->skip -= take;
			p->pos += take;
			i += take;
			if (p->skip)
				continue;
			if (p->need)
				p->item_off = p->pos; /* a new item */
			else
				mw_stream_step(
					p); /* the record the payload closed */
			continue;
		}
		if (p->state == S_RAM_PAGE) {
			i += mw_stream_page_take(p, buf + i, n - i);
			continue;
		}
		take = p->need - p->acc_len;
		if (take > n - i)
			take = n - i;
		memcpy(p->acc + p->acc_len, buf + i, take);
		p->acc_len += (uint32_t)take;
		p->pos += take;
		i += take;
		if (p->acc_len == p->need)
			mw_stream_step(p);
	}
	p->pos += n - i;
}

int mw_stream_parser_new(struct mw_stream_parser **out, uint32_t page_size,
			 mw_stream_ev_fn *fn, void *opaque)
{
	struct mw_stream_parser *p;

	if (!page_size)
		page_size = 4096;
	if (page_size < 1024 || page_size > MW_STREAM_PAGE_MAX ||
	    (page_size & (page_size - 1)))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->bounce = malloc(MW_STREAM_PAGE_MAX);
	if (!p->bounce) {
		free(p);
		return -ENOMEM;
	}
	p->fn = fn;
	p->step = mw_stream_step;
	p->fn_opaque = opaque;
	p->page_size = page_size;
	p->cur_block = -1;
	p->cur_sec = NO_SECTION;
	p->ram_id = NO_SECTION;
	p->block_id = NO_SECTION;
	mw_stream_expect(p, S_MAGIC, 8);
	*out = p;
	return 0;
}

void mw_stream_parser_free(struct mw_stream_parser *p)
{
	uint32_t i;

	if (!p)
		return;
	for (i = 0; i < p->nblocks; i++)
		free(p->blocks[i]);
	free(p->bounce);
	free(p);
}

uint64_t mw_stream_parser_pos(const struct mw_stream_parser *p)
{
	return p->pos;
}

bool mw_stream_parser_opaque(const struct mw_stream_parser *p)
{
	return p->opaque;
}

bool mw_stream_parser_complete(const struct mw_stream_parser *p)
{
	if (p->opaque || p->skip || p->acc_len)
		return false;
	return p->state == S_DONE || p->state == S_AFTER_EOF;
}

const char *mw_stream_parser_block_name(const struct mw_stream_parser *p,
					uint16_t i)
{
	return i < p->nblocks ? p->blocks[i] : "?";
}
