/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the QEMU stream parser (stream/qemu_parse.h) and of the
 * inspection built on it (stream/mw_inspect.h), over streams written here
 * byte by byte after docs/qemu-stream-parser.md: the header and
 * configuration, a "ram" section with MEM_SIZE, zero, full, CONTINUE,
 * XBZRLE and compressed records, commands, a "block" section, EOF and
 * vmdesc, and what goes opaque: device state, an unknown record flag, an
 * unknown command, a stream that is not one. Every stream is also fed one
 * byte at a time and in odd pieces, which must give the same events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mw_inspect.h"
#include "mw_wire.h"
#include "stream_sb.h"
#include "qemu_parse.h"

#define PS 4096u

/* ---- a stream writer ---- */

static void header(struct sb *b, bool caps)
{
	be32(b, 0x5145564d);
	be32(b, 3);
	u8(b, MW_QEMU_VM_CONFIGURATION);
	be32(b, 13);
	sb_put(b, "pc-i440fx-7.2", 13);
	if (caps) {
		u8(b, MW_QEMU_VM_SUBSECTION);
		str8(b, "configuration/capabilities");
		be32(b, 1);
		be32(b, 1);
		str8(b, "validate-uuid");
	}
}

static void sec_start(struct sb *b, uint8_t type, uint32_t id, const char *name,
		      uint32_t version)
{
	u8(b, type);
	be32(b, id);
	str8(b, name);
	be32(b, 0);
	be32(b, version);
}

static void sec_part(struct sb *b, uint8_t type, uint32_t id)
{
	u8(b, type);
	be32(b, id);
}

static void footer(struct sb *b, uint32_t id)
{
	u8(b, MW_QEMU_VM_SECTION_FOOTER);
	be32(b, id);
}

/* A page record; name NULL means CONTINUE. */
static void page(struct sb *b, uint64_t addr, const char *name, uint8_t fill)
{
	uint8_t pg[PS];

	be64(b, addr | MW_RAM_PAGE | (name ? 0 : MW_RAM_CONTINUE));
	if (name)
		str8(b, name);
	memset(pg, fill, sizeof(pg));
	pg[addr / PS % PS] ^= 1; /* pages differ by address */
	sb_put(b, pg, sizeof(pg));
}

static void zero(struct sb *b, uint64_t addr, const char *name)
{
	be64(b, addr | MW_RAM_ZERO | (name ? 0 : MW_RAM_CONTINUE));
	if (name)
		str8(b, name);
	u8(b, 0);
}

/* START(ram) with a MEM_SIZE list of pc.ram (1 MiB) and vga (64 KiB). */
static void ram_start(struct sb *b)
{
	sec_start(b, MW_QEMU_VM_SECTION_START, 2, "ram", 4);
	be64(b, (0x100000 + 0x10000) | MW_RAM_MEM_SIZE);
	str8(b, "pc.ram");
	be64(b, 0x100000);
	str8(b, "vga.vram");
	be64(b, 0x10000);
	be64(b, MW_RAM_EOS);
	footer(b, 2);
}

/* A precopy stream up to its first device section. */
static void precopy(struct sb *b)
{
	header(b, true);
	u8(b, MW_QEMU_VM_COMMAND);
	be16(b, MW_QEMU_CMD_OPEN_RETURN_PATH);
	be16(b, 0);
	u8(b, MW_QEMU_VM_COMMAND);
	be16(b, MW_QEMU_CMD_PING);
	be16(b, 4);
	be32(b, 1);
	ram_start(b);
	sec_part(b, MW_QEMU_VM_SECTION_PART, 2);
	zero(b, 0, "pc.ram");
	page(b, 0x1000, NULL, 0x11);
	page(b, 0x2000, NULL, 0x22);
	page(b, 0x0, "vga.vram", 0x33);
	be64(b, MW_RAM_EOS);
	footer(b, 2);
	sec_part(b, MW_QEMU_VM_SECTION_END, 2);
	page(b, 0x1000, "pc.ram", 0x11); /* an exact repeat */
	be64(b, 0x3000 | MW_RAM_XBZRLE | MW_RAM_CONTINUE);
	u8(b, 1);
	be16(b, 3);
	sb_put(b, "\x01\x02\x03", 3);
	be64(b, 0x4000 | MW_RAM_COMPRESS_PAGE | MW_RAM_CONTINUE);
	be32(b, 5);
	sb_put(b, "zlib!", 5);
	be64(b, MW_RAM_EOS);
	footer(b, 2);
}

/* ---- the event log ---- */

struct log {
	char text[16384];
	size_t len;
	unsigned opaque;
};

static uint32_t fnv(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static void on_ev(void *opaque, const struct mw_stream_ev *ev)
{
	struct log *l = opaque;
	char *t = l->text + l->len;
	size_t room = sizeof(l->text) - l->len;
	int n = snprintf(t, room, "%d@%llu-%llu", (int)ev->type,
			 (unsigned long long)ev->off,
			 (unsigned long long)ev->end);

	switch (ev->type) {
	case MW_STREAM_EV_SECTION:
		n += snprintf(t + n, room - n, " sec %u %s %u",
			      ev->section.type, ev->section.name,
			      ev->section.kind);
		break;
	case MW_STREAM_EV_RAM:
		n += snprintf(t + n, room - n, " %s b%u %llx f%x len %u h%08x",
			      mw_ram_kind_name(ev->ram.kind), ev->ram.block,
			      (unsigned long long)ev->ram.addr, ev->ram.flags,
			      ev->ram.len,
			      ev->ram.data ? fnv(ev->ram.data, ev->ram.len) :
					     0);
		break;
	case MW_STREAM_EV_RAMBLOCK:
		n += snprintf(t + n, room - n, " %s %llu", ev->ramblock.name,
			      (unsigned long long)ev->ramblock.length);
		break;
	case MW_STREAM_EV_COMMAND:
		n += snprintf(t + n, room - n, " cmd %u %u %u", ev->command.cmd,
			      ev->command.len, ev->command.blob_len);
		break;
	case MW_STREAM_EV_OPAQUE:
		l->opaque++;
		n += snprintf(t + n, room - n, " %s", ev->opaque.reason);
		break;
	default:
		break;
	}
	n += snprintf(t + n, room - n, "\n");
	l->len += (size_t)n;
	assert_true(l->len < sizeof(l->text) - 1);
}

/* Parses b in pieces of step bytes (0: whole); the parser is returned. */
static struct mw_stream_parser *parse(const struct sb *b, size_t step,
				      struct log *l)
{
	struct mw_stream_parser *p;
	size_t i, k;

	memset(l, 0, sizeof(*l));
	assert_int_equal(mw_stream_parser_new(&p, 0, on_ev, l), 0);
	for (i = 0; i < b->n; i += k) {
		k = step && step < b->n - i ? step : b->n - i;
		mw_stream_parser_feed(p, b->p + i, k);
	}
	assert_true(mw_stream_parser_pos(p) == b->n);
	return p;
}

/*
 * With MW_STREAM_SEEDS=DIR set, every stream parse_all_ways() sees is
 * also written to DIR/unit-N: the fuzz target's seed corpus
 * (tests/fuzz/corpus/stream_parse) was made so.
 */
static void seed_write(const struct sb *b)
{
	const char *dir = getenv("MW_STREAM_SEEDS");
	static unsigned n;
	char path[512];
	FILE *f;

	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/unit-%u", dir, n++);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b->p, 1, b->n, f), b->n);
	assert_int_equal(fclose(f), 0);
}

/* Whole, byte by byte and in odd pieces: the same events. */
static struct mw_stream_parser *parse_all_ways(const struct sb *b,
					       struct log *l)
{
	static const size_t steps[] = { 1, 7, 4095, 4097 };
	struct log *other = malloc(sizeof(*other));
	struct mw_stream_parser *p;
	size_t i;

	assert_non_null(other);
	seed_write(b);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		p = parse(b, steps[i], other);
		mw_stream_parser_free(p);
		p = parse(b, 0, l);
		assert_string_equal(l->text, other->text);
		mw_stream_parser_free(p);
	}
	free(other);
	return parse(b, 0, l);
}

static unsigned count(const struct log *l, const char *what)
{
	const char *s = l->text;
	unsigned n = 0;

	while ((s = strstr(s, what))) {
		n++;
		s++;
	}
	return n;
}

/* ---- the tests ---- */

static void precopy_to_device_state(void **state)
{
	struct sb b = { 0 };
	struct mw_stream_parser *p;
	struct log l;
	size_t dev;

	(void)state;
	precopy(&b);
	dev = b.n;
	sec_start(&b, MW_QEMU_VM_SECTION_FULL, 0, "timer", 2);
	be64(&b, 0x1234); /* vmstate: no length, no decoder */
	u8(&b, MW_QEMU_VM_EOF);
	p = parse_all_ways(&b, &l);
	assert_int_equal(count(&l, " ZERO "), 1);
	assert_int_equal(count(&l, " PAGE "), 4);
	assert_int_equal(count(&l, " XBZRLE b0 3000 f60 len 3"), 1);
	assert_int_equal(count(&l, " COMPRESS b0 4000 f120 len 5"), 1);
	assert_int_equal(count(&l, " EOS "), 3);
	assert_int_equal(count(&l, " pc.ram 1048576"), 1);
	assert_int_equal(count(&l, " vga.vram 65536"), 1);
	assert_int_equal(count(&l, " PAGE b1 0 f8 "), 1);    /* named */
	assert_int_equal(count(&l, " PAGE b0 2000 f28"), 1); /* CONTINUE */
	assert_int_equal(count(&l, " cmd 2 4 0"), 1);
	assert_int_equal(l.opaque, 1);
	assert_non_null(strstr(l.text, "device state section 'timer'"));
	assert_true(mw_stream_parser_opaque(p));
	assert_false(mw_stream_parser_complete(p));
	/* the opaque event says where: at the FULL section's first byte */
	{
		char at[32];

		snprintf(at, sizeof(at), "%d@%zu-", MW_STREAM_EV_OPAQUE, dev);
		assert_non_null(strstr(l.text, at));
	}
	assert_string_equal(mw_stream_parser_block_name(p, 1), "vga.vram");
	mw_stream_parser_free(p);
	free(b.p);
}

static void opaque_is_sticky(void **state)
{
	struct sb b = { 0 };
	struct mw_stream_parser *p;
	struct log l;
	size_t at;

	(void)state;
	header(&b, false);
	ram_start(&b);
	sec_part(&b, MW_QEMU_VM_SECTION_PART, 2);
	zero(&b, 0, "pc.ram");
	at = b.n;
	be64(&b, 0x1000 | 0x400); /* a flag no QEMU sends */
	/* what follows looks like records, but must not be read */
	zero(&b, 0x2000, "pc.ram");
	be64(&b, MW_RAM_EOS);
	p = parse_all_ways(&b, &l);
	assert_int_equal(l.opaque, 1);
	assert_int_equal(count(&l, " ZERO "), 1);
	assert_int_equal(count(&l, " EOS "), 1); /* START's only */
	assert_non_null(strstr(l.text, "ram record flags 0x400"));
	{
		char want[32];

		snprintf(want, sizeof(want), "%d@%zu-", MW_STREAM_EV_OPAQUE,
			 at);
		assert_non_null(strstr(l.text, want));
	}
	/* later feeds only count */
	mw_stream_parser_feed(p, b.p, b.n);
	assert_int_equal(l.opaque, 1);
	assert_true(mw_stream_parser_pos(p) == 2 * b.n);
	mw_stream_parser_free(p);
	free(b.p);
}

static void not_a_stream(void **state)
{
	struct sb b = { 0 };
	struct mw_stream_parser *p;
	struct log l;

	(void)state;
	sb_put(&b, "\x16\x03\x01\x02\x00\x01\x00\x01 TLS", 12);
	p = parse_all_ways(&b, &l);
	assert_int_equal(l.opaque, 1);
	assert_non_null(strstr(l.text, "9@0-0 not a QEMU migration stream"));
	mw_stream_parser_free(p);
	free(b.p);
}

static void unknown_command(void **state)
{
	struct sb b = { 0 };
	struct mw_stream_parser *p;
	struct log l;

	(void)state;
	header(&b, false);
	u8(&b, MW_QEMU_VM_COMMAND);
	be16(&b, 99);
	be16(&b, 0);
	p = parse_all_ways(&b, &l);
	assert_non_null(strstr(l.text, "unknown command 99"));
	mw_stream_parser_free(p);
	free(b.p);
}

/* Postcopy: ADVISE, discard, the PACKAGED blob stepped over, then more
 * RAM; EOF without vmdesc is a complete stream. */
static void postcopy_package(void **state)
{
	struct sb b = { 0 }, blob = { 0 };
	struct mw_stream_parser *p;
	struct log l;

	(void)state;
	header(&b, false);
	u8(&b, MW_QEMU_VM_COMMAND);
	be16(&b, MW_QEMU_CMD_POSTCOPY_ADVISE);
	be16(&b, 16);
	be64(&b, PS);
	be64(&b, PS);
	ram_start(&b);
	u8(&b, MW_QEMU_VM_COMMAND);
	be16(&b, MW_QEMU_CMD_POSTCOPY_RAM_DISCARD);
	be16(&b, 1 + 1 + 6 + 1 + 16);
	u8(&b, 0);
	str8(&b, "pc.ram");
	u8(&b, 0);
	be64(&b, 0);
	be64(&b, 0x1000);
	/* a blob with device state inside: opaque to us, but its length is
	 * known, so the stream goes on */
	sec_start(&blob, MW_QEMU_VM_SECTION_FULL, 0, "timer", 2);
	be64(&blob, 77);
	u8(&b, MW_QEMU_VM_COMMAND);
	be16(&b, MW_QEMU_CMD_PACKAGED);
	be16(&b, 4);
	be32(&b, (uint32_t)blob.n);
	sb_put(&b, blob.p, blob.n);
	sec_part(&b, MW_QEMU_VM_SECTION_PART, 2);
	page(&b, 0x5000, "pc.ram", 0x55);
	be64(&b, MW_RAM_EOS);
	footer(&b, 2);
	sec_part(&b, MW_QEMU_VM_SECTION_END, 2);
	be64(&b, MW_RAM_EOS);
	footer(&b, 2);
	u8(&b, MW_QEMU_VM_EOF);
	p = parse_all_ways(&b, &l);
	assert_int_equal(l.opaque, 0);
	assert_non_null(strstr(l.text, " cmd 7 4 "));
	assert_int_equal(count(&l, " PAGE b0 5000"), 1);
	assert_true(mw_stream_parser_complete(p));
	mw_stream_parser_free(p);
	free(b.p);
	free(blob.p);
}

/* Block migration records are stepped over; EOF, vmdesc, then the end. */
static void block_section_and_vmdesc(void **state)
{
	static uint8_t mib[1 << 20];
	struct sb b = { 0 };
	struct mw_stream_parser *p;
	struct log l;

	(void)state;
	header(&b, false);
	sec_start(&b, MW_QEMU_VM_SECTION_START, 1, "block", 1);
	be64(&b, 0x02); /* EOS */
	footer(&b, 1);
	ram_start(&b);
	sec_part(&b, MW_QEMU_VM_SECTION_PART, 1);
	be64(&b, 0x04 | (50ull << 9)); /* PROGRESS 50 */
	be64(&b, 0x01);		       /* DEVICE_BLOCK, sector 0 */
	str8(&b, "ide0-hd0");
	sb_put(&b, mib, sizeof(mib));
	be64(&b, 0x01 | 0x08 | (2048ull << 9)); /* ZERO_BLOCK: no data */
	str8(&b, "ide0-hd0");
	be64(&b, 0x02);
	footer(&b, 1);
	u8(&b, MW_QEMU_VM_EOF);
	u8(&b, MW_QEMU_VM_VMDESCRIPTION);
	be32(&b, 2);
	sb_put(&b, "{}", 2);
	p = parse(&b, 0, &l);
	assert_int_equal(l.opaque, 0);
	assert_int_equal(count(&l, " block 1"), 2); /* START, PART */
	assert_true(mw_stream_parser_complete(p));
	mw_stream_parser_free(p);
	p = parse(&b, 1000, &l);
	assert_true(mw_stream_parser_complete(p));
	mw_stream_parser_feed(p, (const uint8_t *)"x", 1);
	assert_int_equal(l.opaque, 1);
	assert_false(mw_stream_parser_complete(p));
	mw_stream_parser_free(p);
	free(b.p);
}

/* Inspects b fed in pieces of step bytes (0: whole). */
static struct mw_inspect *
inspect_run(const struct sb *b, const struct mw_inspect_cfg *cfg, size_t step)
{
	struct mw_err err = { 0 };
	struct mw_inspect *in;
	size_t i, k;

	assert_int_equal(mw_inspect_new(&in, cfg, &err), 0);
	for (i = 0; i < b->n; i += k) {
		k = step && step < b->n - i ? step : b->n - i;
		assert_int_equal(mw_inspect_feed(in, b->p + i, k, &err), 0);
	}
	assert_int_equal(mw_inspect_finish(in, &err), 0);
	return in;
}

/* inspect: page counts, repeats and deltas, and the residual's size. */
static void inspect_counts(void **state)
{
	struct mw_inspect_cfg cfg = { .page_size = PS,
				      .cache = 1 << 20,
				      .chunk_size = 64 << 10,
				      .codecs = true };
	const struct mw_inspect_stats *s;
	struct mw_inspect *in;
	struct sb b = { 0 };
	uint8_t pg[PS];
	size_t i;

	(void)state;
	header(&b, false);
	ram_start(&b);
	sec_part(&b, MW_QEMU_VM_SECTION_PART, 2);
	/* 160 KiB before the re-sent pages: more than inspect holds back */
	for (i = 0; i < 40; i++)
		page(&b, i * PS, i ? NULL : "pc.ram", 0x40);
	be64(&b, MW_RAM_EOS);
	footer(&b, 2);
	sec_part(&b, MW_QEMU_VM_SECTION_END, 2);
	page(&b, 0, "pc.ram", 0x40); /* exact */
	be64(&b, PS | MW_RAM_PAGE | MW_RAM_CONTINUE);
	memset(pg, 0x40, sizeof(pg));
	pg[1] ^= 1;
	for (i = 0; i < 10; i++)
		pg[100 + i * 10] ^= 0xff; /* 10 changed bytes: <= 1% */
	sb_put(&b, pg, sizeof(pg));
	be64(&b, 2 * PS | MW_RAM_PAGE | MW_RAM_CONTINUE);
	memset(pg, 0x99, sizeof(pg)); /* all different */
	sb_put(&b, pg, sizeof(pg));
	zero(&b, 3 * PS, NULL);
	be64(&b, MW_RAM_EOS);
	footer(&b, 2);
	in = inspect_run(&b, &cfg, 333);
	s = mw_inspect_stats(in);
	/* any split: the same figures, estimates included */
	for (i = 0; i < 2; i++) {
		struct mw_inspect *other = inspect_run(&b, &cfg, i ? 0 : 1);

		assert_memory_equal(mw_inspect_stats(other), s, sizeof(*s));
		mw_inspect_free(other);
	}
	assert_true(s->bytes == b.n);
	assert_false(s->opaque);
	assert_int_equal(s->rec[MW_RAM_K_PAGE], 43);
	assert_int_equal(s->rec[MW_RAM_K_ZERO], 1);
	assert_int_equal(s->first_sends, 40);
	assert_int_equal(s->re.exact, 1);
	assert_int_equal(s->re.delta1, 1);
	assert_int_equal(s->re.differ, 1);
	assert_int_equal(s->passes, 2);
	assert_int_equal(s->max_sends, 2);
	assert_int_equal(s->ram_sec[0], 1);
	assert_int_equal(s->ram_sec[1], 1);
	assert_int_equal(s->ram_sec[2], 1);
	assert_int_equal(s->pages_replaced, 2);
	assert_true(s->stage_in == b.n - 2 * PS);
	assert_true(s->codec_out[0] > 0 && s->codec_out[0] < b.n);
	mw_inspect_free(in);
	free(b.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(precopy_to_device_state),
		cmocka_unit_test(opaque_is_sticky),
		cmocka_unit_test(not_a_stream),
		cmocka_unit_test(unknown_command),
		cmocka_unit_test(postcopy_package),
		cmocka_unit_test(block_section_and_vmdesc),
		cmocka_unit_test(inspect_counts),
	};

	return cmocka_run_group_tests_name("stream/parse", tests, NULL, NULL);
}
