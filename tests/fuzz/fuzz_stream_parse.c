/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the QEMU stream parser (stream/qemu_parse.h). The input is
 * a stream; it is parsed whole, one byte at a time, and in pieces whose
 * sizes come from the input itself. What must hold:
 *  - every pointer an event carries is readable for its length (each page
 *    is hashed, so ASan sees any read past the caller's bytes or the
 *    bounce page);
 *  - every way of splitting gives the same events (a hash over each
 *    event's fields and page bytes) and the same end state;
 *  - opaque is sticky: no event after the OPAQUE one, and at most one;
 *  - events come in stream order and lie inside the bytes fed so far;
 *  - the caller's bytes are never written.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "qemu_parse.h"

struct trace {
	uint64_t hash, n, opaque, last_off, fed;
	uint64_t after_opaque;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

static uint64_t bytes_hash(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n--)
		h = mix(h, *b++);
	return h;
}

static void on_ev(void *opaque, const struct mw_stream_ev *ev)
{
	struct trace *t = opaque;
	uint64_t h = mix(t->hash, (uint64_t)ev->type);

	if (t->opaque)
		t->after_opaque++;
	FUZZ_CHECK(ev->off <= ev->end);
	FUZZ_CHECK(ev->end <= t->fed);
	h = mix(mix(h, ev->off), ev->end);
	switch (ev->type) {
	case MW_STREAM_EV_CONFIG:
		h = bytes_hash(h, ev->config.machine,
			       strlen(ev->config.machine));
		h = mix(h, ev->config.page_size);
		break;
	case MW_STREAM_EV_COMMAND:
		h = mix(mix(mix(h, ev->command.cmd), ev->command.len),
			ev->command.blob_len);
		break;
	case MW_STREAM_EV_SECTION:
		h = bytes_hash(h, ev->section.name, strlen(ev->section.name));
		h = mix(mix(h, ev->section.type), ev->section.id);
		break;
	case MW_STREAM_EV_RAMBLOCK:
		h = bytes_hash(h, ev->ramblock.name, strlen(ev->ramblock.name));
		h = mix(h, ev->ramblock.length);
		break;
	case MW_STREAM_EV_RAM:
		h = mix(mix(mix(h, ev->ram.kind), ev->ram.flags), ev->ram.addr);
		h = mix(mix(h, ev->ram.block), ev->ram.len);
		if (ev->ram.kind == MW_RAM_K_PAGE) {
			FUZZ_CHECK(ev->ram.data && ev->ram.len >= 1024);
			h = bytes_hash(h, ev->ram.data, ev->ram.len);
		}
		break;
	case MW_STREAM_EV_OPAQUE:
		t->opaque++;
		h = bytes_hash(h, ev->opaque.reason, strlen(ev->opaque.reason));
		break;
	default:
		break;
	}
	/* in stream order (a section's end shares its EOS record's offset) */
	FUZZ_CHECK(ev->off >= t->last_off);
	t->last_off = ev->off;
	t->hash = h;
	t->n++;
}

/* Parses data in pieces: step 0 whole, 1 byte by byte, else sizes drawn
 * from the input's own bytes. */
static void run(const uint8_t *data, size_t size, unsigned step,
		struct trace *t, int *complete, int *opaque)
{
	struct mw_stream_parser *p;
	size_t i = 0, k;
	unsigned r = 0;

	memset(t, 0, sizeof(*t));
	if (mw_stream_parser_new(&p, 0, on_ev, t))
		abort();
	while (i < size) {
		if (!step)
			k = size - i;
		else if (step == 1)
			k = 1;
		else
			k = 1 + (size_t)data[r++ % size] * 37 % 5000;
		if (k > size - i)
			k = size - i;
		t->fed += k;
		mw_stream_parser_feed(p, data + i, k);
		i += k;
	}
	FUZZ_CHECK(mw_stream_parser_pos(p) == size);
	*complete = mw_stream_parser_complete(p);
	*opaque = mw_stream_parser_opaque(p);
	mw_stream_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace whole, other;
	int c0, o0, c, o;
	unsigned step;
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		abort();
	memcpy(copy, data, size);
	run(copy, size, 0, &whole, &c0, &o0);
	FUZZ_CHECK(whole.opaque <= 1);
	FUZZ_CHECK(!whole.after_opaque);
	FUZZ_CHECK(whole.opaque == (uint64_t)o0);
	FUZZ_CHECK(!(c0 && o0));
	for (step = 1; step <= 2; step++) {
		run(copy, size, step, &other, &c, &o);
		FUZZ_CHECK(other.hash == whole.hash);
		FUZZ_CHECK(other.n == whole.n);
		FUZZ_CHECK(c == c0 && o == o0);
	}
	FUZZ_CHECK(!memcmp(copy, data, size));
	free(copy);
	return 0;
}
