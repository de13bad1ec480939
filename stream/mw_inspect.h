/* SPDX-License-Identifier: MIT */
/*
 * `migwire inspect`: what a QEMU migration stream holds, and what
 * compression and the page stage would make of it (docs/usage.md,
 * "migwire inspect"). The analysis runs over the stream in stream order
 * through the parser of qemu_parse.h; the command reads a file or stdin
 * and prints a table or one JSON object.
 *
 * Dependencies: common/, compress/ (the codec estimates), libxxhash.
 */
#ifndef MW_INSPECT_H
#define MW_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mw_err.h"
#include "qemu_parse.h"

/* How the analysis is done. Locking: none; copied by mw_inspect_new(). */
struct mw_inspect_cfg {
	uint32_t page_size;  /* when the stream does not say; 0 = 4096 */
	uint64_t cache;	     /* bytes of page contents kept for deltas */
	uint32_t chunk_size; /* codec estimate: bytes per chunk, as send */
	bool codecs;	     /* run the codec estimates at all */
	/* RAM whose page history is kept (16 bytes per page); blocks past
	 * it are counted without history. 0: 16 TiB */
	uint64_t ram_max;
};

/* Full pages that were sent before, by how they relate to the last copy. */
struct mw_inspect_resend {
	uint64_t exact;	  /* same bytes as the previous version */
	uint64_t delta1;  /* differ in at most 1% of their bytes */
	uint64_t delta10; /* in more than 1%, at most 10% */
	uint64_t differ;  /* in more than 10% */
	uint64_t evicted; /* previous full version no longer in the cache */
	uint64_t unknown; /* previous version was XBZRLE or compressed */
};

/* One pass of QEMU's page walk (see passes in mw_inspect_stats). */
struct mw_inspect_pass {
	uint64_t zero, full, other; /* page records */
	struct mw_inspect_resend re;
};

#define MW_INSPECT_PASSES 64u /* passes listed one by one; the rest summed */
#define MW_INSPECT_CODECS 2   /* zstd-1, zlib-1 */

/*
 * Locking: none. Written only by the thread that feeds the inspection;
 * read it after mw_inspect_finish(), or from that thread.
 */
struct mw_inspect_stats {
	uint64_t bytes;	     /* stream bytes fed */
	bool header;	     /* "QEVM" v3 seen */
	bool complete;	     /* ended where a stream may end */
	bool opaque;	     /* stopped understanding ... */
	uint64_t opaque_off; /* ... here */
	char reason[384];    /* ... because */
	uint8_t first[8];    /* the first bytes, for "not a stream" */
	uint32_t nfirst;
	char machine[256];
	uint32_t page_size;
	uint64_t ram_total; /* MEM_SIZE */
	uint32_t nblocks;

	/* sections and commands */
	uint64_t ram_sec[3]; /* START, PART, END of "ram" */
	uint64_t block_sec;  /* "block" sections stepped over */
	uint64_t other_sec;  /* other sections seen (the first goes opaque) */
	uint64_t cmds[MW_QEMU_CMD_MAX];
	uint64_t eofs, vmdesc_len;
	bool vmdesc;

	/* "ram" records and their bytes */
	uint64_t rec[MW_RAM_K_FLUSH + 1];
	uint64_t ram_bytes;	     /* ram section bytes, headers included */
	uint64_t page_bytes;	     /* full page payloads */
	uint64_t first_sends;	     /* full pages sent for the first time */
	struct mw_inspect_resend re; /* full pages sent again */
	uint64_t max_sends;	     /* most records for one page */
	uint64_t distinct;	     /* pages with at least one record */

	/*
	 * Passes: the page walk restarted, i.e. a page record whose (block,
	 * offset) is not after the previous one's. QEMU's dirty syncs leave
	 * no mark of their own in the stream; a pass is the nearest thing.
	 */
	uint64_t passes;
	struct mw_inspect_pass pass[MW_INSPECT_PASSES];

	/* estimates, in bytes */
	uint64_t ref_bytes, delta_bytes; /* page stage records */
	uint64_t pages_replaced;	 /* pages the page stage encodes */
	uint64_t codec_chunks;
	uint64_t codec_out[MW_INSPECT_CODECS]; /* whole stream */
	uint64_t stage_in;		       /* stream minus replaced pages */
	uint64_t stage_out[MW_INSPECT_CODECS]; /* that, compressed */
};

struct mw_inspect;

/* Returns 0 or -ENOMEM / -EINVAL / -MW_E_CODEC (text in *err). */
int mw_inspect_new(struct mw_inspect **out, const struct mw_inspect_cfg *cfg,
		   struct mw_err *err);
void mw_inspect_free(struct mw_inspect *in);
/*
 * Borrows buf[0..n), the next bytes of the stream. Returns 0 or
 * -MW_E_CODEC (text in *err). Context: one thread.
 */
int mw_inspect_feed(struct mw_inspect *in, const uint8_t *buf, size_t n,
		    struct mw_err *err);
/* Ends the stream (flushes the codec chunks); then read the stats. */
int mw_inspect_finish(struct mw_inspect *in, struct mw_err *err);
const struct mw_inspect_stats *mw_inspect_stats(const struct mw_inspect *in);
/* Name of a codec estimate column: "zstd-1", "zlib-1". */
const char *mw_inspect_codec_name(unsigned i);

/* The report: a table, or one JSON object (both end with a newline). */
void mw_inspect_print_text(FILE *f, const struct mw_inspect_stats *s,
			   const char *name);
void mw_inspect_print_json(FILE *f, const struct mw_inspect_stats *s,
			   const char *name);

/* `migwire inspect` with argv[0] == "inspect". Returns the exit status. */
int mw_cmd_inspect(int argc, char **argv);

#endif
