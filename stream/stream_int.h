/* SPDX-License-Identifier: MIT */
/*
 * Private to stream/: the parser's state, shared by qemu_parse.c (top
 * level, sections, the feed loop) and qemu_ram.c (the "ram" and "block"
 * section records). The DESIGN note is in qemu_parse.c.
 */
#ifndef MW_STREAM_INT_H
#define MW_STREAM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qemu_parse.h"

#define QEVM_MAGIC 0x5145564du
#define QEVM_VERSION 3u
#define RAM_VERSION 4u
#define BLK_MIG_BLOCK_SIZE (1u << 20)
#define BLK_DEVICE_BLOCK 0x01u
#define BLK_EOS 0x02u
#define BLK_PROGRESS 0x04u
#define BLK_ZERO_BLOCK 0x08u
#define BLK_FLAGS_MASK 0x1ffu
#define NO_SECTION UINT32_MAX

enum state {
	S_MAGIC,	/* be32 magic, be32 version */
	S_TOP,		/* u8 item type */
	S_CFG_LEN,	/* be32 machine name length */
	S_CFG_NAME,	/* machine name */
	S_CFG_PEEK,	/* u8: 0x05 subsection, else the next top-level item */
	S_SUB_NAMELEN,	/* u8 */
	S_SUB_NAME,	/* subsection name */
	S_SUB_VER,	/* be32 version_id */
	S_SUB_PAGEBITS, /* be32 target page bits */
	S_SUB_UUID,	/* 16 bytes */
	S_CAPS_COUNT,	/* be32 */
	S_CAP_LEN,	/* u8 */
	S_CAP_NAME,	/* capability name */
	S_CMD,		/* be16 cmd, be16 len */
	S_CMD_PAYLOAD,	/* len bytes, gathered */
	S_SEC_ID,	/* be32 section id */
	S_SEC_IDLEN,	/* u8 */
	S_SEC_IDSTR,	/* idstr */
	S_SEC_IV,	/* be32 instance, be32 version */
	S_FOOTER,	/* be32 section id */
	S_AFTER_EOF,	/* u8: 0x06 vmdesc, or end */
	S_VMDESC_LEN,	/* be32 */
	S_VMDESC,	/* after the JSON: report it */
	S_DONE,		/* the stream is complete */
	S_RAM_HDR,	/* be64 addr | flags */
	S_RAM_IDLEN,	/* u8 */
	S_RAM_IDSTR,	/* block name */
	S_RAM_ZERO,	/* u8 fill */
	S_RAM_PAGE,	/* page_size bytes, bounced if split */
	S_RAM_XBZ,	/* u8 encoding, be16 len */
	S_RAM_CLEN,	/* be32 len */
	S_RAM_SKIPPED,	/* after an XBZRLE or compressed payload */
	S_MS_IDLEN,	/* MEM_SIZE list: u8 */
	S_MS_IDSTR,	/* block name */
	S_MS_LEN,	/* be64 used_length */
	S_MS_ADDR,	/* be64 mr->addr (x-ignore-shared) */
	S_BLK_HDR,	/* be64 sector << 9 | flags */
	S_BLK_IDLEN,	/* u8 */
	S_BLK_NAME,	/* device name, then maybe 1 MiB of data */
};

struct mw_stream_parser {
	/* Locking: none; one feeding thread owns the whole parser. */
	mw_stream_ev_fn *fn;
	void *fn_opaque;
	/* mw_stream_step, set at creation: how parse_state.c's skip gets
	 * back to the top level without calling up into qemu_parse.c */
	void (*step)(struct mw_stream_parser *p);
	enum state state;
	uint32_t need;	   /* bytes the state's field needs */
	uint32_t acc_len;  /* of them gathered so far */
	uint8_t acc[512];  /* >= the longest gathered field (255) */
	uint64_t skip;	   /* bytes still to step over */
	uint64_t pos;	   /* bytes fed so far */
	uint64_t item_off; /* where the current item began */
	bool opaque;

	uint32_t page_size;
	bool seen_item; /* a top-level item after the configuration */
	bool ignore_shared;
	bool postcopy_huge; /* ADVISE says some block has another page size */
	char machine[256];
	uint32_t sub_left; /* capabilities still to read */
	char sub_name[256];

	uint16_t cmd, cmd_len;

	uint8_t sec_type;
	uint32_t sec_id, sec_instance;
	char sec_name[256];
	uint32_t cur_sec; /* id of the section whose payload is parsed */
	enum mw_stream_sec_kind cur_kind;
	uint32_t ram_id, block_id; /* NO_SECTION until their START */

	/* the record being read */
	uint64_t rec_w;
	uint32_t rec_flags;
	enum mw_ram_kind rec_kind;
	uint32_t rec_len;
	int cur_block;	  /* block of the last page record, -1 none */
	uint64_t ms_left; /* MEM_SIZE bytes not yet listed */
	uint64_t ms_len;
	uint16_t ms_block;

	uint8_t *bounce; /* page_size bytes, for pages split across feeds */
	uint32_t nblocks;
	char *blocks[MW_STREAM_BLOCKS_MAX];
};

/* parse_state.c: the state primitives both layers use. */
void mw_stream_opaque_at(struct mw_stream_parser *p, uint64_t off,
			 const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Reports ev as the item that began at item_off and ends at pos. */
void mw_stream_emit(struct mw_stream_parser *p, struct mw_stream_ev *ev);
/* The next field: state s, need bytes. */
void mw_stream_expect(struct mw_stream_parser *p, enum state s, uint32_t need);
/* The next top-level item, or the next ram record. */
void mw_stream_top(struct mw_stream_parser *p);
void mw_stream_ram_next(struct mw_stream_parser *p);
/*
 * Steps over n bytes, then enters next: with need > 0 it gathers that
 * field, with need 0 it is a continuation that runs as soon as the bytes
 * are past (to emit the record they belonged to).
 */
void mw_stream_skip(struct mw_stream_parser *p, uint64_t n, enum state next,
		    uint32_t need);
/* acc[0..acc_len) as a NUL-terminated string in dst (256 bytes). */
void mw_stream_acc_str(const struct mw_stream_parser *p, char *dst);
/* A parsed section payload ended: SECTION_END, then the top level. */
void mw_stream_section_end(struct mw_stream_parser *p);
/* Decodes the field just gathered. */
void mw_stream_step(struct mw_stream_parser *p);
/* qemu_ram.c: the record states (S_RAM_HDR and after). */
void mw_stream_step_records(struct mw_stream_parser *p);
/* qemu_ram.c: the page payload; returns the bytes taken from buf. */
size_t mw_stream_page_take(struct mw_stream_parser *p, const uint8_t *buf,
			   size_t n);

#endif
