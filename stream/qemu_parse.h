/* SPDX-License-Identifier: MIT */
/*
 * An incremental push parser of QEMU's migration stream (the main channel:
 * exec: or the first socket connection), QEMU 7.2 to 10.0, precopy and
 * postcopy. docs/qemu-stream-parser.md says what it understands.
 *
 * The caller feeds the stream in stream order, in pieces of any size; the
 * parser borrows each piece for the duration of the call only, never
 * writes to it and never blocks. It reports what it recognises through
 * one callback: the header, commands, section boundaries, the "ram"
 * section's records with the payload of each full page. Splitting the
 * input differently never changes the events (page pointers aside: a page
 * that straddles two feeds is delivered from a page-sized bounce buffer).
 *
 * At the first byte it cannot account for (device state, whose vmstate
 * payload carries no length; an unknown flag, command or subsection) it
 * emits one MW_STREAM_EV_OPAQUE with the offset and the reason and from
 * then on only counts bytes: opaque is sticky, the parser never guesses
 * its way back into a stream it lost.
 *
 * Memory: a fixed-size parser (the RAM block name table is bounded by
 * MW_STREAM_BLOCKS_MAX) plus one bounce page; nothing grows with the stream.
 *
 * Dependencies: common/ only.
 */
#ifndef MW_STREAM_QEMU_PARSE_H
#define MW_STREAM_QEMU_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* QEMU's top-level item types (migration/savevm.h). */
enum {
	MW_QEMU_VM_EOF = 0x00,
	MW_QEMU_VM_SECTION_START = 0x01,
	MW_QEMU_VM_SECTION_PART = 0x02,
	MW_QEMU_VM_SECTION_END = 0x03,
	MW_QEMU_VM_SECTION_FULL = 0x04,
	MW_QEMU_VM_SUBSECTION = 0x05,
	MW_QEMU_VM_VMDESCRIPTION = 0x06,
	MW_QEMU_VM_CONFIGURATION = 0x07,
	MW_QEMU_VM_COMMAND = 0x08,
	MW_QEMU_VM_SECTION_FOOTER = 0x7e,
};

/* The "ram" section's record flags (migration/ram.c, 10.0: ram.h). */
enum {
	MW_RAM_FULL = 0x01, /* obsolete, never sent */
	MW_RAM_ZERO = 0x02,
	MW_RAM_MEM_SIZE = 0x04,
	MW_RAM_PAGE = 0x08,
	MW_RAM_EOS = 0x10,
	MW_RAM_CONTINUE = 0x20,
	MW_RAM_XBZRLE = 0x40,
	MW_RAM_HOOK = 0x80, /* RDMA only */
	MW_RAM_COMPRESS_PAGE = 0x100,
	MW_RAM_MULTIFD_FLUSH = 0x200,
};

/* QEMU's in-band commands (MIG_CMD_*). */
enum {
	MW_QEMU_CMD_OPEN_RETURN_PATH = 1,
	MW_QEMU_CMD_PING = 2,
	MW_QEMU_CMD_POSTCOPY_ADVISE = 3,
	MW_QEMU_CMD_POSTCOPY_LISTEN = 4,
	MW_QEMU_CMD_POSTCOPY_RUN = 5,
	MW_QEMU_CMD_POSTCOPY_RAM_DISCARD = 6,
	MW_QEMU_CMD_PACKAGED = 7,
	MW_QEMU_CMD_ENABLE_COLO = 8,
	MW_QEMU_CMD_POSTCOPY_RESUME = 9,
	MW_QEMU_CMD_RECV_BITMAP = 10,
	MW_QEMU_CMD_SWITCHOVER_START = 11,
	MW_QEMU_CMD_MAX,
};

/* Largest target page the parser accepts (target-page-bits 16). */
#define MW_STREAM_PAGE_MAX 65536u
/* RAM blocks it can name; a stream with more goes opaque. */
#define MW_STREAM_BLOCKS_MAX 1024u

enum mw_stream_ev_type {
	MW_STREAM_EV_HEADER,	  /* "QEVM" v3 read */
	MW_STREAM_EV_CONFIG,	  /* configuration read: machine, page_size */
	MW_STREAM_EV_COMMAND,	  /* a command and its payload were read */
	MW_STREAM_EV_SECTION,	  /* a section header was read */
	MW_STREAM_EV_SECTION_END, /* a parsed section payload ended (EOS) */
	MW_STREAM_EV_RAMBLOCK,	  /* one entry of the MEM_SIZE block list */
	MW_STREAM_EV_RAM,	  /* one "ram" record */
	MW_STREAM_EV_EOF,	  /* QEMU_VM_EOF */
	MW_STREAM_EV_VMDESC,	  /* the JSON description after EOF was read */
	MW_STREAM_EV_OPAQUE,	  /* understanding stops here, for good */
};

/* What a "ram" record is (its flags without CONTINUE). */
enum mw_ram_kind {
	MW_RAM_K_MEM_SIZE,
	MW_RAM_K_ZERO,
	MW_RAM_K_PAGE,
	MW_RAM_K_XBZRLE,
	MW_RAM_K_COMPRESS,
	MW_RAM_K_EOS,
	MW_RAM_K_FLUSH,
};

/* Section kinds the parser tells apart. */
enum mw_stream_sec_kind {
	MW_STREAM_SEC_RAM,   /* "ram": records, parsed */
	MW_STREAM_SEC_BLOCK, /* "block" (7.2 block migration): records, skipped */
	MW_STREAM_SEC_OTHER, /* anything else: opaque */
};

/*
 * One event. Locking: none; it lives on the feeding thread's stack for
 * the callback. Pointers in it (names, data) are valid only during the
 * callback. off is the stream offset of the item's first byte; end the
 * offset just past it (for a section: past its header).
 */
struct mw_stream_ev {
	enum mw_stream_ev_type type;
	uint64_t off, end;
	union {
		struct {
			const char *machine; /* NUL-terminated */
			uint32_t page_size;
		} config;
		struct {
			uint16_t cmd, len;
			uint32_t blob_len; /* PACKAGED: the blob after it */
		} command;
		struct {
			uint8_t type; /* MW_QEMU_VM_SECTION_* */
			enum mw_stream_sec_kind kind;
			uint32_t id, instance, version;
			const char *name; /* NUL-terminated idstr */
		} section;
		struct {
			uint32_t id; /* the section whose payload ended */
			enum mw_stream_sec_kind kind;
		} section_end;
		struct {
			uint16_t block;
			const char *name;
			uint64_t length;
		} ramblock;
		struct {
			enum mw_ram_kind kind;
			uint32_t flags; /* as on the wire, CONTINUE included */
			uint16_t block; /* index into the block table */
			uint64_t addr; /* offset in the block; MEM_SIZE: total */
			const uint8_t *data; /* PAGE: page_size bytes */
			uint32_t len;	     /* PAGE: page_size; XBZRLE and
						COMPRESS: encoded bytes */
		} ram;
		struct {
			uint32_t len;
		} vmdesc;
		struct {
			const char *reason; /* one line, NUL-terminated */
		} opaque;
	};
};

typedef void mw_stream_ev_fn(void *opaque, const struct mw_stream_ev *ev);

struct mw_stream_parser;

/*
 * Allocates a parser that reports to fn(opaque, ev). page_size is the
 * target page size assumed when the stream's configuration does not carry
 * target-page-bits (4096 for x86; 0 means 4096). Returns 0, -EINVAL for a
 * page size that is not a power of two in 1 KiB..64 KiB, or -ENOMEM.
 */
int mw_stream_parser_new(struct mw_stream_parser **out, uint32_t page_size,
			 mw_stream_ev_fn *fn, void *opaque);
void mw_stream_parser_free(struct mw_stream_parser *p);
/*
 * Borrows buf[0..n) for the call: parses it and calls back for every item
 * it completes. Never fails and never blocks; after the parser went
 * opaque it only counts. Context: one thread at a time per parser; the
 * callback must not feed the same parser.
 */
void mw_stream_parser_feed(struct mw_stream_parser *p, const uint8_t *buf,
			   size_t n);
/* Bytes fed so far. */
uint64_t mw_stream_parser_pos(const struct mw_stream_parser *p);
/* True once the parser has gone opaque. */
bool mw_stream_parser_opaque(const struct mw_stream_parser *p);
/*
 * True when the stream ended where a whole stream may end: after the
 * vmdesc, or after EOF when none follows (postcopy, suppress-vmdesc).
 */
bool mw_stream_parser_complete(const struct mw_stream_parser *p);
/* Name of block i (as reported), or "?" */
const char *mw_stream_parser_block_name(const struct mw_stream_parser *p,
					uint16_t i);
/* "ZERO", "PAGE", ... for a record kind. */
const char *mw_ram_kind_name(enum mw_ram_kind k);

#endif
