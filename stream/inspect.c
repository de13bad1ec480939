/* SPDX-License-Identifier: MIT */
/*
 * The analysis behind `migwire inspect` (mw_inspect.h): counts what the
 * parser reports, follows every RAM page's versions, and estimates what
 * the codecs and the page stage would send. Context: one thread.
 *
 * DESIGN
 *  - Page history: one 16-byte entry per target page of every RAM block
 *    the MEM_SIZE list names (memory grows with guest RAM, not with the
 *    stream): how the page was last sent (zero, full, other), the XXH3 of
 *    its last full version, how often it was sent, and where its contents
 *    sit in the cache. Exact repeats are found by hash, whatever the cache.
 *  - Contents cache: cfg.cache bytes of page slots filled round-robin, so
 *    the page sent longest ago is evicted first (as a bounded page-stage
 *    cache would); a slot remembers its page so that the page's entry is
 *    cleared when the slot is reused. A re-sent page whose last version
 *    was evicted counts as "evicted": the delta classes cannot be told.
 *  - Codec estimate: the stream is cut into cfg.chunk_size chunks as
 *    `migwire send` cuts it, each compressed with zstd and zlib level 1;
 *    a chunk that does not shrink counts raw, as send sends it raw.
 *  - Page stage estimate: an exact repeat costs a 16-byte reference; a
 *    page that differs from its last version in at most 10% of its bytes
 *    costs 16 bytes plus its delta (runs of changed bytes, each with a
 *    4-byte header, runs closer than 4 bytes merged); both leave the
 *    stream, and the rest (the "residual": everything else, in stream
 *    order) goes through the codecs in chunks like the whole stream.
 *    Cutting pages out of the residual needs their stream offsets: the
 *    page events list them in in->cuts, and inspect_est.c holds the last
 *    bytes of each feed back until no page that could still be cut can
 *    begin among them.
 */
#include "inspect_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mw_log.h"

/* cfg.ram_max 0: history for up to 16 TiB of guest RAM */
#define RAM_MAX_DEFAULT (16ull << 40)
#define REF_COST 16u
#define RUN_HDR 4u
#define RUN_MERGE 4u

enum { PG_NEVER, PG_ZERO, PG_FULL, PG_OTHER };

static struct page_ent *page_of(struct mw_inspect *in, uint16_t b,
				uint64_t addr)
{
	uint64_t i = addr / in->s.page_size;

	if (b >= in->nblocks || i >= in->blocks[b].npages)
		return NULL;
	return &in->blocks[b].pages[i];
}

static void slot_drop(struct mw_inspect *in, struct page_ent *e)
{
	if (e->slot)
		in->owner[e->slot - 1] = NULL;
	e->slot = 0;
}

/* Keeps page contents in the next slot, evicting its previous owner. */
static void slot_keep(struct mw_inspect *in, struct page_ent *e,
		      const uint8_t *data)
{
	uint32_t s;

	slot_drop(in, e);
	if (!in->nslots)
		return;
	s = in->next_slot;
	in->next_slot = (s + 1) % in->nslots;
	if (in->owner[s])
		in->owner[s]->slot = 0;
	in->owner[s] = e;
	e->slot = s + 1;
	memcpy(in->cache + (size_t)s * in->s.page_size, data, in->s.page_size);
}

/*
 * Bytes that differ, and the size of a run-length delta: runs of changed
 * bytes, each costing RUN_HDR bytes plus its length, where a gap of fewer
 * than RUN_MERGE unchanged bytes is cheaper to carry than a new header.
 */
static uint32_t page_diff(const uint8_t *a, const uint8_t *b, uint32_t n,
			  uint32_t *delta)
{
	uint32_t i, d = 0, cost = 0, gap = RUN_MERGE;

	for (i = 0; i < n; i++) {
		if (a[i] == b[i]) {
			gap++;
			continue;
		}
		d++;
		if (gap >= RUN_MERGE)
			cost += RUN_HDR; /* a new run */
		else
			cost += gap; /* the gap joins the run */
		cost++;
		gap = 0;
	}
	*delta = cost;
	return d;
}

/*
 * The page stage would not send the page that ends at stream offset end:
 * the residual the codecs see leaves it out. The cut list holds what one
 * feed can cut (MW_INSPECT_CUTS), so it never overflows.
 */
static void cut_page(struct mw_inspect *in, uint64_t end)
{
	in->s.pages_replaced++;
	if (in->ncuts == in->cuts_cap)
		return;
	in->cuts[in->ncuts].start = end - in->s.page_size;
	in->cuts[in->ncuts].end = end;
	in->ncuts++;
}

static void classify(struct mw_inspect *in, struct mw_inspect_resend *r,
		     struct mw_inspect_resend *pr, const uint8_t *data,
		     const uint8_t *old, uint64_t data_end)
{
	uint32_t n = in->s.page_size, d, delta;

	d = page_diff(data, old, n, &delta);
	if (!d) {
		r->exact++;
		pr->exact++;
		in->s.ref_bytes += REF_COST;
	} else if ((uint64_t)d * 100 <= n) {
		r->delta1++;
		pr->delta1++;
	} else if ((uint64_t)d * 10 <= n) {
		r->delta10++;
		pr->delta10++;
	} else {
		r->differ++;
		pr->differ++;
		return;
	}
	if (d)
		in->s.delta_bytes += REF_COST + delta;
	cut_page(in, data_end);
}

static struct mw_inspect_pass *pass_now(struct mw_inspect *in)
{
	uint64_t p = in->s.passes ? in->s.passes - 1 : 0;

	return &in->s.pass[p < MW_INSPECT_PASSES ? p : MW_INSPECT_PASSES - 1];
}

static void full_page(struct mw_inspect *in, struct page_ent *e,
		      const struct mw_stream_ev *ev)
{
	struct mw_inspect_resend *r = &in->s.re, *pr;
	const uint8_t *data = ev->ram.data;
	uint64_t h = XXH3_64bits(data, in->s.page_size);

	pr = &pass_now(in)->re;
	in->s.page_bytes += in->s.page_size;
	if (!e || e->state == PG_NEVER) {
		in->s.first_sends++;
	} else if (e->state == PG_ZERO) {
		classify(in, r, pr, data, in->zero, ev->end);
	} else if (e->state == PG_OTHER) {
		r->unknown++;
		pr->unknown++;
	} else if (e->slot) {
		classify(in, r, pr, data,
			 in->cache + (size_t)(e->slot - 1) * in->s.page_size,
			 ev->end);
	} else if (e->hash == h) {
		/* evicted, but the hash still proves the repeat */
		r->exact++;
		pr->exact++;
		in->s.ref_bytes += REF_COST;
		cut_page(in, ev->end);
	} else {
		r->evicted++;
		pr->evicted++;
	}
	if (!e)
		return;
	e->hash = h;
	e->state = PG_FULL;
	slot_keep(in, e, data);
}

/* One page-carrying record: passes, sends, then its kind. */
static void page_record(struct mw_inspect *in, const struct mw_stream_ev *ev)
{
	struct page_ent *e = page_of(in, ev->ram.block, ev->ram.addr);
	uint64_t pos = (uint64_t)ev->ram.block << 48 |
		       ev->ram.addr / in->s.page_size;
	struct mw_inspect_pass *p;

	if (!in->s.passes || pos <= in->last_pos)
		in->s.passes++;
	in->last_pos = pos;
	p = pass_now(in);
	if (e && !e->sends)
		in->s.distinct++;
	if (e && e->sends < UINT16_MAX && ++e->sends > in->s.max_sends)
		in->s.max_sends = e->sends;
	switch (ev->ram.kind) {
	case MW_RAM_K_ZERO:
		p->zero++;
		if (e) {
			slot_drop(in, e);
			e->state = PG_ZERO;
		}
		return;
	case MW_RAM_K_PAGE:
		p->full++;
		return full_page(in, e, ev);
	default:
		p->other++;
		if (e) {
			slot_drop(in, e);
			e->state = PG_OTHER;
		}
		return;
	}
}

static void ramblock(struct mw_inspect *in, const struct mw_stream_ev *ev)
{
	uint64_t max = (in->cfg.ram_max ? in->cfg.ram_max : RAM_MAX_DEFAULT) /
		       in->s.page_size;
	uint64_t n = ev->ramblock.length / in->s.page_size;
	struct inspect_block *b;

	if (ev->ramblock.block != in->nblocks || in->nblocks >= in->blocks_cap)
		return; /* listed twice or out of order: no history */
	if (n > max || in->pages > max - n)
		n = 0; /* past ram_max (or a corrupt length): no history */
	b = &in->blocks[in->nblocks];
	/* all-zero is "never sent": untouched pages of a large guest stay
	 * unmapped */
	b->pages = n ? calloc(n, sizeof(*b->pages)) : NULL;
	if (n && !b->pages) {
		in->oom = true;
		return;
	}
	in->pages += n;
	b->npages = n;
	in->nblocks++;
	in->s.nblocks = in->nblocks;
}

/* The cache is sized once the stream says how much RAM there is. */
static int cache_alloc(struct mw_inspect *in)
{
	uint64_t n = in->cfg.cache / in->s.page_size;
	uint64_t pages = in->s.ram_total / in->s.page_size;

	if (in->cache || !in->s.ram_total)
		return 0;
	if (n > pages)
		n = pages;
	if (n > UINT32_MAX - 1)
		n = UINT32_MAX - 1;
	if (!n)
		return 0;
	in->cache = malloc(n * in->s.page_size);
	in->owner = calloc(n, sizeof(*in->owner));
	if (!in->cache || !in->owner)
		return -ENOMEM;
	in->nslots = (uint32_t)n;
	return 0;
}

void mw_inspect_on_event(void *opaque, const struct mw_stream_ev *ev)
{
	struct mw_inspect *in = opaque;
	struct mw_inspect_stats *s = &in->s;

	switch (ev->type) {
	case MW_STREAM_EV_HEADER:
		s->header = true;
		break;
	case MW_STREAM_EV_CONFIG:
		snprintf(s->machine, sizeof(s->machine), "%s",
			 ev->config.machine);
		s->page_size = ev->config.page_size;
		break;
	case MW_STREAM_EV_COMMAND:
		s->cmds[ev->command.cmd]++;
		break;
	case MW_STREAM_EV_SECTION:
		if (ev->section.kind == MW_STREAM_SEC_RAM) {
			s->ram_sec[ev->section.type - 1]++;
			s->ram_bytes += ev->end - ev->off;
		} else if (ev->section.kind == MW_STREAM_SEC_BLOCK) {
			s->block_sec++;
		} else {
			s->other_sec++;
		}
		break;
	case MW_STREAM_EV_RAMBLOCK:
		s->ram_bytes += ev->end - ev->off;
		ramblock(in, ev);
		break;
	case MW_STREAM_EV_RAM:
		s->rec[ev->ram.kind]++;
		s->ram_bytes += ev->end - ev->off;
		if (ev->ram.kind == MW_RAM_K_MEM_SIZE) {
			s->ram_total = ev->ram.addr;
			if (cache_alloc(in))
				in->oom = true;
		} else if (ev->ram.kind <= MW_RAM_K_COMPRESS)
			page_record(in, ev);
		break;
	case MW_STREAM_EV_EOF:
		s->eofs++;
		break;
	case MW_STREAM_EV_VMDESC:
		s->vmdesc = true;
		s->vmdesc_len = ev->vmdesc.len;
		break;
	case MW_STREAM_EV_OPAQUE:
		s->opaque = true;
		s->opaque_off = ev->off;
		snprintf(s->reason, sizeof(s->reason), "%s", ev->opaque.reason);
		/* once, when it happens (a live stream may go on for long) */
		MW_LOG(MW_LOG_INFO, "stream opaque from byte %llu: %s",
		       (unsigned long long)ev->off, ev->opaque.reason);
		break;
	default:
		break;
	}
}
