/* SPDX-License-Identifier: MIT */
/*
 * The parser's state primitives that qemu_parse.c (the top level) and
 * qemu_ram.c (the RAM records) both use: what field comes next, how many
 * bytes to step over, and reporting events. They call up into the top level
 * only through p->step, so the two layers call one way. One feeding thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "stream_int.h"

void mw_stream_opaque_at(struct mw_stream_parser *p, uint64_t off,
			 const char *fmt, ...)
{
	struct mw_stream_ev ev = { .type = MW_STREAM_EV_OPAQUE, .off = off };
	char reason[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	p->opaque = true;
	ev.end = off;
	ev.opaque.reason = reason;
	p->fn(p->fn_opaque, &ev);
}

void mw_stream_emit(struct mw_stream_parser *p, struct mw_stream_ev *ev)
{
	ev->off = p->item_off;
	ev->end = p->pos;
	p->fn(p->fn_opaque, ev);
}

void mw_stream_expect(struct mw_stream_parser *p, enum state s, uint32_t need)
{
	p->state = s;
	p->need = need;
	p->acc_len = 0;
}

void mw_stream_top(struct mw_stream_parser *p)
{
	p->item_off = p->pos;
	mw_stream_expect(p, S_TOP, 1);
}

void mw_stream_ram_next(struct mw_stream_parser *p)
{
	p->item_off = p->pos;
	mw_stream_expect(p, S_RAM_HDR, 8);
}

void mw_stream_skip(struct mw_stream_parser *p, uint64_t n, enum state next,
		    uint32_t need)
{
	p->skip = n;
	mw_stream_expect(p, next, need);
	if (!n && !need)
		p->step(p); /* mw_stream_step: up a layer, through the parser */
}

void mw_stream_acc_str(const struct mw_stream_parser *p, char *dst)
{
	memcpy(dst, p->acc, p->acc_len);
	dst[p->acc_len] = '\0';
}

void mw_stream_section_end(struct mw_stream_parser *p)
{
	struct mw_stream_ev ev = { .type = MW_STREAM_EV_SECTION_END };

	ev.section_end.id = p->cur_sec;
	ev.section_end.kind = p->cur_kind;
	mw_stream_emit(p, &ev);
	mw_stream_top(p);
}
