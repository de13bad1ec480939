/* SPDX-License-Identifier: MIT */
/*
 * The report of `migwire inspect` (mw_inspect.h): a table for people, or
 * one JSON object for scripts, from the same stats. Sizes print in MiB
 * (IEC) with the exact byte count where it matters; shares are of the
 * stream, or of the page records. Context: any thread, after finish.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mw_inspect.h"

static const char *const cmd_names[MW_QEMU_CMD_MAX] = {
	[MW_QEMU_CMD_OPEN_RETURN_PATH] = "OPEN_RETURN_PATH",
	[MW_QEMU_CMD_PING] = "PING",
	[MW_QEMU_CMD_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
	[MW_QEMU_CMD_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
	[MW_QEMU_CMD_POSTCOPY_RUN] = "POSTCOPY_RUN",
	[MW_QEMU_CMD_POSTCOPY_RAM_DISCARD] = "POSTCOPY_RAM_DISCARD",
	[MW_QEMU_CMD_PACKAGED] = "PACKAGED",
	[MW_QEMU_CMD_ENABLE_COLO] = "ENABLE_COLO",
	[MW_QEMU_CMD_POSTCOPY_RESUME] = "POSTCOPY_RESUME",
	[MW_QEMU_CMD_RECV_BITMAP] = "RECV_BITMAP",
	[MW_QEMU_CMD_SWITCHOVER_START] = "SWITCHOVER_START",
};

static double mib(uint64_t b)
{
	return (double)b / (1024.0 * 1024.0);
}

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0.0;
}

/* Bytes the parser accounted for: all of them, or up to the opaque part. */
static uint64_t understood(const struct mw_inspect_stats *s)
{
	return s->opaque ? s->opaque_off : s->bytes;
}

static uint64_t page_records(const struct mw_inspect_stats *s)
{
	return s->rec[MW_RAM_K_ZERO] + s->rec[MW_RAM_K_PAGE] +
	       s->rec[MW_RAM_K_XBZRLE] + s->rec[MW_RAM_K_COMPRESS];
}

static uint64_t resent(const struct mw_inspect_resend *r)
{
	return r->exact + r->delta1 + r->delta10 + r->differ + r->evicted +
	       r->unknown;
}

static unsigned passes_listed(const struct mw_inspect_stats *s)
{
	return s->passes < MW_INSPECT_PASSES ? (unsigned)s->passes :
					       MW_INSPECT_PASSES;
}

static void text_head(FILE *f, const struct mw_inspect_stats *s,
		      const char *name)
{
	unsigned i, n = 0;

	fprintf(f, "stream       %s: %.1f MiB (%" PRIu64 " bytes)\n", name,
		mib(s->bytes), s->bytes);
	fprintf(f, "QEMU         stream v3, machine %s, %u-byte pages\n",
		s->machine[0] ? s->machine : "?", s->page_size);
	fprintf(f, "understood   %.1f MiB (%.1f%%)", mib(understood(s)),
		pct(understood(s), s->bytes));
	if (s->opaque)
		fprintf(f, ", up to byte %" PRIu64 "\nthen opaque  %s\n",
			s->opaque_off, s->reason);
	else
		fprintf(f, ": %s\n",
			s->complete ? "the whole stream" :
				      "all; the stream ends inside an item");
	fprintf(f, "RAM          %.1f MiB in %u blocks\n", mib(s->ram_total),
		s->nblocks);
	fprintf(f,
		"sections     ram: %" PRIu64 " START, %" PRIu64
		" PART, %" PRIu64 " END (%.1f MiB); block %" PRIu64
		"; other %" PRIu64 "\n",
		s->ram_sec[0], s->ram_sec[1], s->ram_sec[2], mib(s->ram_bytes),
		s->block_sec, s->other_sec);
	fprintf(f, "commands    ");
	for (i = 1; i < MW_QEMU_CMD_MAX; i++)
		if (s->cmds[i])
			fprintf(f, "%s %s %" PRIu64, n++ ? "," : "",
				cmd_names[i], s->cmds[i]);
	fprintf(f, "%s\n", n ? "" : " none");
	fprintf(f,
		"pages        %" PRIu64 " of %" PRIu64
		" sent at least once; most records for one page: %" PRIu64 "\n",
		s->distinct, s->ram_total / s->page_size, s->max_sends);
	fprintf(f,
		"passes       %" PRIu64 " (the page walk restarted %" PRIu64
		" times)\n\n",
		s->passes, s->passes ? s->passes - 1 : 0);
}

/* One row of a table: a count, then MiB and a share unless negative. */
static void row(FILE *f, const char *label, uint64_t count, double size,
		double share)
{
	fprintf(f, "%-34s %12" PRIu64, label, count);
	if (size >= 0)
		fprintf(f, " %10.1f", size);
	else if (share >= 0)
		fprintf(f, " %10s", "");
	if (share >= 0)
		fprintf(f, " %7.1f%%", share);
	fputc('\n', f);
}

static void text_pages(FILE *f, const struct mw_inspect_stats *s)
{
	uint64_t pr = page_records(s), re = resent(&s->re);
	uint64_t other = s->rec[MW_RAM_K_XBZRLE] + s->rec[MW_RAM_K_COMPRESS];
	uint64_t ps = s->page_size;
	unsigned i;

	fprintf(f, "%-34s %12s %10s %8s\n", "page records", "count", "MiB",
		"share");
	row(f, "  zero", s->rec[MW_RAM_K_ZERO], -1,
	    pct(s->rec[MW_RAM_K_ZERO], pr));
	row(f, "  full", s->rec[MW_RAM_K_PAGE], mib(s->page_bytes),
	    pct(s->rec[MW_RAM_K_PAGE], pr));
	row(f, "  other (XBZRLE, compressed)", other, -1, pct(other, pr));
	row(f, "  total", pr, -1, -1);
	row(f, "full pages sent the first time", s->first_sends,
	    mib(s->first_sends * ps),
	    pct(s->first_sends, s->rec[MW_RAM_K_PAGE]));
	row(f, "full pages sent again", re, mib(re * ps),
	    pct(re, s->rec[MW_RAM_K_PAGE]));
	row(f, "  exact repeats", s->re.exact, -1, pct(s->re.exact, re));
	row(f, "  differ in <= 1% of bytes", s->re.delta1, -1,
	    pct(s->re.delta1, re));
	row(f, "  differ in <= 10% of bytes", s->re.delta10, -1,
	    pct(s->re.delta10, re));
	row(f, "  differ in more", s->re.differ, -1, pct(s->re.differ, re));
	row(f, "  unknown: evicted from the cache", s->re.evicted, -1,
	    pct(s->re.evicted, re));
	row(f, "  unknown: last sent XBZRLE/compr.", s->re.unknown, -1,
	    pct(s->re.unknown, re));
	fputc('\n', f);

	fprintf(f, "%-6s %10s %10s %8s %10s %8s %8s %8s\n", "pass", "zero",
		"full", "other", "exact", "<=1%", "<=10%", "more");
	for (i = 0; i < passes_listed(s); i++) {
		const struct mw_inspect_pass *p = &s->pass[i];

		fprintf(f,
			"%-6u %10" PRIu64 " %10" PRIu64 " %8" PRIu64
			" %10" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
			"\n",
			i + 1, p->zero, p->full, p->other, p->re.exact,
			p->re.delta1, p->re.delta10, p->re.differ);
	}
	if (s->passes > MW_INSPECT_PASSES)
		fprintf(f, "(passes after %u are summed in the last row)\n",
			MW_INSPECT_PASSES);
	fputc('\n', f);
}

static void text_estimates(FILE *f, const struct mw_inspect_stats *s)
{
	uint64_t stage = s->ref_bytes + s->delta_bytes;
	unsigned i;

	if (!s->codec_chunks) {
		fprintf(f, "estimates    not run (--no-codecs)\n");
		return;
	}
	fprintf(f, "%-34s %12s %10s %8s\n", "what would be sent", "bytes",
		"MiB", "of input");
	fprintf(f, "  %-32s %12" PRIu64 " %10.1f %7.1f%%\n", "as is", s->bytes,
		mib(s->bytes), 100.0);
	for (i = 0; i < MW_INSPECT_CODECS; i++)
		fprintf(f, "  %-32s %12" PRIu64 " %10.1f %7.1f%%\n",
			mw_inspect_codec_name(i), s->codec_out[i],
			mib(s->codec_out[i]), pct(s->codec_out[i], s->bytes));
	for (i = 0; i < MW_INSPECT_CODECS; i++) {
		char what[40];

		snprintf(what, sizeof(what), "page stage + %s",
			 mw_inspect_codec_name(i));
		fprintf(f, "  %-32s %12" PRIu64 " %10.1f %7.1f%%\n", what,
			s->stage_out[i] + stage, mib(s->stage_out[i] + stage),
			pct(s->stage_out[i] + stage, s->bytes));
	}
	fprintf(f,
		"(%" PRIu64 " chunks; the page stage replaces %" PRIu64
		" pages by %.1f MiB of references and deltas)\n",
		s->codec_chunks, s->pages_replaced, mib(stage));
}

void mw_inspect_print_text(FILE *f, const struct mw_inspect_stats *s,
			   const char *name)
{
	text_head(f, s, name);
	text_pages(f, s);
	text_estimates(f, s);
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void json_str(FILE *f, const char *p)
{
	fputc('"', f);
	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_resend(FILE *f, const struct mw_inspect_resend *r)
{
	fprintf(f,
		"\"exact\":%" PRIu64 ",\"delta1\":%" PRIu64
		",\"delta10\":%" PRIu64 ",\"differ\":%" PRIu64
		",\"evicted\":%" PRIu64 ",\"unknown\":%" PRIu64,
		r->exact, r->delta1, r->delta10, r->differ, r->evicted,
		r->unknown);
}

static void json_estimates(FILE *f, const struct mw_inspect_stats *s)
{
	uint64_t stage = s->ref_bytes + s->delta_bytes;
	unsigned i;

	if (!s->codec_chunks) {
		fprintf(f, ",\"estimates\":null");
		return;
	}
	fprintf(f, ",\"estimates\":{\"chunks\":%" PRIu64 ",\"codecs\":{",
		s->codec_chunks);
	for (i = 0; i < MW_INSPECT_CODECS; i++)
		fprintf(f, "%s\"%s\":%" PRIu64, i ? "," : "",
			mw_inspect_codec_name(i), s->codec_out[i]);
	fprintf(f,
		"},\"page_stage\":{\"pages_replaced\":%" PRIu64
		",\"ref_bytes\":%" PRIu64 ",\"delta_bytes\":%" PRIu64
		",\"residual_bytes\":%" PRIu64,
		s->pages_replaced, s->ref_bytes, s->delta_bytes, s->stage_in);
	for (i = 0; i < MW_INSPECT_CODECS; i++)
		fprintf(f, ",\"%s\":%" PRIu64, mw_inspect_codec_name(i),
			s->stage_out[i] + stage);
	fprintf(f, "}}");
}

void mw_inspect_print_json(FILE *f, const struct mw_inspect_stats *s,
			   const char *name)
{
	unsigned i, n = 0;

	fprintf(f, "{\"input\":");
	json_str(f, name);
	fprintf(f, ",\"bytes\":%" PRIu64 ",\"machine\":", s->bytes);
	json_str(f, s->machine);
	fprintf(f,
		",\"page_size\":%u,\"complete\":%s,\"understood_bytes\":%" PRIu64
		",\"opaque\":",
		s->page_size, s->complete ? "true" : "false", understood(s));
	if (s->opaque) {
		fprintf(f,
			"{\"offset\":%" PRIu64 ",\"reason\":", s->opaque_off);
		json_str(f, s->reason);
		fputc('}', f);
	} else {
		fprintf(f, "null");
	}
	fprintf(f,
		",\"ram\":{\"total\":%" PRIu64
		",\"blocks\":%u,\"bytes\":%" PRIu64 ",\"start\":%" PRIu64
		",\"part\":%" PRIu64 ",\"end\":%" PRIu64
		"},\"sections\":{\"block\":%" PRIu64 ",\"other\":%" PRIu64
		"},\"eof\":%" PRIu64 ",\"vmdesc_bytes\":%" PRIu64
		",\"commands\":{",
		s->ram_total, s->nblocks, s->ram_bytes, s->ram_sec[0],
		s->ram_sec[1], s->ram_sec[2], s->block_sec, s->other_sec,
		s->eofs, s->vmdesc_len);
	for (i = 1; i < MW_QEMU_CMD_MAX; i++)
		if (s->cmds[i])
			fprintf(f, "%s\"%s\":%" PRIu64, n++ ? "," : "",
				cmd_names[i], s->cmds[i]);
	fprintf(f,
		"},\"records\":{\"mem_size\":%" PRIu64 ",\"zero\":%" PRIu64
		",\"page\":%" PRIu64 ",\"xbzrle\":%" PRIu64
		",\"compressed\":%" PRIu64 ",\"eos\":%" PRIu64
		",\"multifd_flush\":%" PRIu64 "}",
		s->rec[MW_RAM_K_MEM_SIZE], s->rec[MW_RAM_K_ZERO],
		s->rec[MW_RAM_K_PAGE], s->rec[MW_RAM_K_XBZRLE],
		s->rec[MW_RAM_K_COMPRESS], s->rec[MW_RAM_K_EOS],
		s->rec[MW_RAM_K_FLUSH]);
	fprintf(f,
		",\"full_pages\":{\"bytes\":%" PRIu64 ",\"first\":%" PRIu64
		",\"resent\":%" PRIu64 ",",
		s->page_bytes, s->first_sends, resent(&s->re));
	json_resend(f, &s->re);
	fprintf(f,
		"},\"distinct_pages\":%" PRIu64 ",\"max_sends\":%" PRIu64
		",\"passes\":%" PRIu64 ",\"pass\":[",
		s->distinct, s->max_sends, s->passes);
	for (i = 0; i < passes_listed(s); i++) {
		const struct mw_inspect_pass *p = &s->pass[i];

		fprintf(f,
			"%s{\"zero\":%" PRIu64 ",\"full\":%" PRIu64
			",\"other\":%" PRIu64 ",",
			i ? "," : "", p->zero, p->full, p->other);
		json_resend(f, &p->re);
		fputc('}', f);
	}
	fputc(']', f);
	json_estimates(f, s);
	fprintf(f, "}\n");
}
