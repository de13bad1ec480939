/* SPDX-License-Identifier: MIT */
/*
 * Synthetic guest RAM: four page kinds (zero, text, code, random) mixed by
 * weight, each page a pure function of (seed, page index).
 *
 * Every page gets its own splitmix64 state derived from the seed and its
 * index, which is what lets a 1 GiB stream be made in pieces, in parallel
 * or out of order, and still be byte-identical. Speed matters more than
 * realism in the small: one 64-bit draw feeds several words or one
 * instruction, words and instruction templates come from small tables,
 * and nothing allocates. Text and code pages compress roughly as real
 * ones do (zstd -1: text ~3-5x, code ~1.5-2.5x); random pages not at all.
 * Pure functions: any thread.
 */
#include "datagen.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN 0x9e3779b97f4a7c15ull

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* splitmix64: one add and one mix per draw, and any seed is a good one. */
static uint64_t rng_next(uint64_t *s)
{
	*s += GOLDEN;
	return mix64(*s);
}

void mw_datagen_cfg_default(struct mw_datagen_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->weight[MW_DATAGEN_ZERO] = 0.25;
	cfg->weight[MW_DATAGEN_TEXT] = 0.25;
	cfg->weight[MW_DATAGEN_CODE] = 0.15;
	cfg->weight[MW_DATAGEN_RANDOM] = 0.35;
	cfg->run_pages = 1;
}

int mw_datagen_weight_parse(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || end == s || !isfinite(v) || v < 0 || v > 1)
		return -EINVAL;
	*out = v;
	return 0;
}

enum mw_datagen_kind mw_datagen_page_kind(const struct mw_datagen_cfg *cfg,
					  uint64_t page_idx)
{
	uint64_t run = page_idx / (cfg->run_pages ? cfg->run_pages : 1);
	/* A uniform double in [0, 1) from 53 bits of the run's hash. */
	double u = (double)(mix64(cfg->seed ^ mix64(run * GOLDEN + 1)) >> 11) *
		   0x1.0p-53;
	double sum = 0, acc = 0;
	int k;

	for (k = 0; k < MW_DATAGEN_KINDS; k++)
		sum += cfg->weight[k];
	for (k = 0; k < MW_DATAGEN_KINDS - 1; k++) {
		acc += cfg->weight[k];
		if (u * sum < acc)
			return (enum mw_datagen_kind)k;
	}
	return MW_DATAGEN_RANDOM;
}

static void page_random(uint8_t *p, uint64_t *s)
{
	uint64_t v;
	size_t i;

	for (i = 0; i < MW_DATAGEN_PAGE; i += sizeof(v)) {
		v = rng_next(s);
		memcpy(p + i, &v, sizeof(v));
	}
}

/* ---- text: English-ish words, sentences and lines ---- */

/*
 * Text and code pages are built in a scratch page with SLACK spare bytes,
 * so every word, instruction or repeat is written with fixed-size copies
 * (single stores, no memcpy calls) and may spill past the page end.
 */
#define SLACK 64

struct word {
	char s[16];
	uint8_t len;
};
#define W(x)                     \
	{                        \
		x, sizeof(x) - 1 \
	}

static const struct word words[128] = {
	W("the"),	W("of"),      W("and"),	    W("to"),	 W("a"),
	W("in"),	W("is"),      W("it"),	    W("you"),	 W("that"),
	W("he"),	W("was"),     W("for"),	    W("on"),	 W("are"),
	W("with"),	W("as"),      W("his"),	    W("they"),	 W("be"),
	W("at"),	W("one"),     W("have"),    W("this"),	 W("from"),
	W("or"),	W("had"),     W("by"),	    W("hot"),	 W("word"),
	W("but"),	W("what"),    W("some"),    W("we"),	 W("can"),
	W("out"),	W("other"),   W("were"),    W("all"),	 W("there"),
	W("when"),	W("up"),      W("use"),	    W("your"),	 W("how"),
	W("said"),	W("an"),      W("each"),    W("she"),	 W("which"),
	W("do"),	W("their"),   W("time"),    W("if"),	 W("will"),
	W("way"),	W("about"),   W("many"),    W("then"),	 W("them"),
	W("write"),	W("would"),   W("like"),    W("so"),	 W("these"),
	W("her"),	W("long"),    W("make"),    W("thing"),	 W("see"),
	W("him"),	W("two"),     W("has"),	    W("look"),	 W("more"),
	W("day"),	W("could"),   W("go"),	    W("come"),	 W("did"),
	W("number"),	W("sound"),   W("no"),	    W("most"),	 W("people"),
	W("my"),	W("over"),    W("know"),    W("water"),	 W("than"),
	W("call"),	W("first"),   W("who"),	    W("may"),	 W("down"),
	W("side"),	W("been"),    W("now"),	    W("find"),	 W("memory"),
	W("page"),	W("kernel"),  W("process"), W("system"), W("file"),
	W("network"),	W("guest"),   W("host"),    W("device"), W("driver"),
	W("buffer"),	W("request"), W("value"),   W("error"),	 W("state"),
	W("migration"), W("virtual"), W("machine"), W("server"), W("client"),
	W("table"),	W("index"),   W("user"),    W("data"),	 W("stream"),
	W("channel"),	W("block"),   W("queue"),
};

static void page_text(uint8_t *p, uint64_t *s)
{
	size_t pos = 0;
	uint64_t r = 0;
	unsigned left = 0, in_sentence = 0;
	const struct word *w;

	while (pos < MW_DATAGEN_PAGE) {
		if (!left) {
			r = rng_next(s);
			left = 6;
		}
		w = &words[r & 127];
		memcpy(p + pos, w->s, 16);
		if (!in_sentence)
			p[pos] = (uint8_t)(p[pos] - 'a' + 'A');
		pos += w->len;
		in_sentence++;
		/* Bits 7-9: about one sentence end per eight words. */
		if ((r & 0x380) == 0 && in_sentence > 3) {
			p[pos++] = '.';
			in_sentence = 0;
		}
		/* Bits 10-12: one sentence in eight ends its line. */
		p[pos++] = (r & 0x1c00) || in_sentence ? ' ' : '\n';
		r >>= 10;
		left--;
	}
}

/* ---- code: x86-64 instruction templates, padding and repeats ---- */

enum imm { IMM_NONE, IMM_D8, IMM_32 };

struct insn {
	uint8_t b[8];	  /* opcode bytes; the immediate overwrites the tail */
	uint8_t len, imm; /* total length; kind of trailing immediate */
};
#define I(len, imm, ...)                  \
	{                                 \
		{ __VA_ARGS__ }, len, imm \
	}

/* Frequent compiler output; 32 entries so 5 bits pick one. */
static const struct insn insns[32] = {
	I(1, IMM_NONE, 0x55),			/* push rbp */
	I(3, IMM_NONE, 0x48, 0x89, 0xe5),	/* mov rbp,rsp */
	I(4, IMM_D8, 0x48, 0x83, 0xec),		/* sub rsp,imm8 */
	I(4, IMM_D8, 0x48, 0x8b, 0x45),		/* mov rax,[rbp+d8] */
	I(4, IMM_D8, 0x48, 0x89, 0x45),		/* mov [rbp+d8],rax */
	I(3, IMM_D8, 0x8b, 0x45),		/* mov eax,[rbp+d8] */
	I(3, IMM_D8, 0x89, 0x45),		/* mov [rbp+d8],eax */
	I(5, IMM_32, 0xe8),			/* call rel32 */
	I(5, IMM_32, 0xb8),			/* mov eax,imm32 */
	I(2, IMM_D8, 0x74),			/* je rel8 */
	I(2, IMM_D8, 0x75),			/* jne rel8 */
	I(2, IMM_D8, 0xeb),			/* jmp rel8 */
	I(3, IMM_NONE, 0x48, 0x85, 0xc0),	/* test rax,rax */
	I(2, IMM_NONE, 0x31, 0xc0),		/* xor eax,eax */
	I(3, IMM_NONE, 0x48, 0x89, 0xc7),	/* mov rdi,rax */
	I(3, IMM_NONE, 0x48, 0x89, 0xde),	/* mov rsi,rbx */
	I(1, IMM_NONE, 0xc3),			/* ret: then padding */
	I(1, IMM_NONE, 0x5d),			/* pop rbp */
	I(1, IMM_NONE, 0x53),			/* push rbx */
	I(1, IMM_NONE, 0x5b),			/* pop rbx */
	I(7, IMM_32, 0x48, 0x8d, 0x05),		/* lea rax,[rip+d32] */
	I(7, IMM_32, 0x48, 0x8b, 0x05),		/* mov rax,[rip+d32] */
	I(6, IMM_32, 0x0f, 0x84),		/* je rel32 */
	I(6, IMM_32, 0x0f, 0x85),		/* jne rel32 */
	I(3, IMM_NONE, 0x48, 0x39, 0xd0),	/* cmp rax,rdx */
	I(4, IMM_D8, 0x48, 0x83, 0xc4),		/* add rsp,imm8 */
	I(3, IMM_D8, 0x83, 0xf8),		/* cmp eax,imm8 */
	I(4, IMM_D8, 0x48, 0x8b, 0x7d),		/* mov rdi,[rbp+d8] */
	I(4, IMM_D8, 0x48, 0x8b, 0x75),		/* mov rsi,[rbp+d8] */
	I(3, IMM_NONE, 0x48, 0x89, 0xd8),	/* mov rax,rbx */
	I(2, IMM_NONE, 0x89, 0xc2),		/* mov edx,eax */
	I(5, IMM_NONE, 0x0f, 0x1f, 0x44, 0x00), /* nopl 0(rax,rax) */
};

/*
 * Writes at page[pos] what comes next, from 32 random bits r: one
 * instruction, padding after a ret, or a repeat of bytes already in the
 * page. Returns its length (at most 40).
 */
static size_t code_emit(uint8_t *page, size_t pos, uint32_t r)
{
	const struct insn *in = &insns[r & 31];
	uint8_t *out = page + pos;
	size_t fixed, n, dist, i;
	uint32_t imm;

	r >>= 5;
	/* One draw in 16: repeat 8..39 bytes from 16..1023 bytes back. */
	if ((r & 15) == 0 && pos >= 1024) {
		dist = 16 + ((r >> 4) & 1007);
		n = 8 + ((r >> 14) & 31);
		/* dist > 8: each 8-byte step reads bytes already written. */
		for (i = 0; i < n; i += 8)
			memcpy(out + i, out + i - dist, 8);
		return n;
	}
	r >>= 4;
	memcpy(out, in->b, 8);
	n = in->len;
	fixed = n - (in->imm == IMM_D8 ? 1 : in->imm == IMM_32 ? 4 : 0);
	/*
	 * The immediate is stored whatever the kind (no branch to mispredict
	 * on a random template): what lies past n is overwritten next. An
	 * imm32 is a near target, two low bytes varying and the top sign
	 * fill; a d8 is a small aligned offset.
	 */
	imm = (r & 0xfff) | (r & 0x1000 ? 0xffff0000u : 0);
	if (in->imm != IMM_32)
		imm = r & 0xf8;
	memcpy(out + fixed, &imm, 4);
	if (in->imm == IMM_NONE && n == 1 && in->b[0] == 0xc3) {
		/* After a ret, int3 up to a 16-byte boundary as compilers do. */
		memset(out + 1, 0xcc, 16);
		n += (16 - ((pos + 1) & 15)) & 15;
	}
	return n;
}

static void page_code(uint8_t *p, uint64_t *s)
{
	size_t pos = 0;
	uint64_t r;

	while (pos < MW_DATAGEN_PAGE) {
		r = rng_next(s);
		pos += code_emit(p, pos, (uint32_t)r);
		if (pos < MW_DATAGEN_PAGE)
			pos += code_emit(p, pos, (uint32_t)(r >> 32));
	}
}

/* Writes the whole page page_idx into p (MW_DATAGEN_PAGE bytes). */
static void page_fill(uint8_t *p, const struct mw_datagen_cfg *cfg,
		      uint64_t page_idx)
{
	uint64_t s = mix64(cfg->seed + GOLDEN) ^ mix64(page_idx ^ 0x5bd1e995);
	uint8_t scratch[MW_DATAGEN_PAGE + SLACK];

	switch (mw_datagen_page_kind(cfg, page_idx)) {
	case MW_DATAGEN_ZERO:
		memset(p, 0, MW_DATAGEN_PAGE);
		break;
	case MW_DATAGEN_TEXT:
		page_text(scratch, &s);
		memcpy(p, scratch, MW_DATAGEN_PAGE);
		break;
	case MW_DATAGEN_CODE:
		page_code(scratch, &s);
		memcpy(p, scratch, MW_DATAGEN_PAGE);
		break;
	default:
		page_random(p, &s);
		break;
	}
}

void mw_datagen_fill(uint8_t *buf, size_t len, const struct mw_datagen_cfg *cfg,
		     uint64_t offset)
{
	uint8_t tmp[MW_DATAGEN_PAGE];
	uint64_t page = offset / MW_DATAGEN_PAGE;
	size_t skip = offset % MW_DATAGEN_PAGE, n;

	while (len) {
		n = MW_DATAGEN_PAGE - skip;
		if (n > len)
			n = len;
		if (n == MW_DATAGEN_PAGE) {
			page_fill(buf, cfg, page);
		} else {
			/* A partial page at either end: make all, copy part. */
			page_fill(tmp, cfg, page);
			memcpy(buf, tmp + skip, n);
		}
		buf += n;
		len -= n;
		skip = 0;
		page++;
	}
}
