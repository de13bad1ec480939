// SPDX-License-Identifier: MIT
/*
 * mw-guest-init: /init of the migwire test guest (tools/mkvm).
 *
 * Runs as PID 1 in an initramfs. It fills a working set with a realistic page
 * mix, then dirties it at a configured rate and prints a heartbeat line on the
 * console several times a second, so the host can tell that the guest is alive
 * and progressing before and after a live migration. Kernel command line:
 *
 *   mw.ws=<MiB>          working set size (default 64)
 *   mw.rate=<MiB/s>      dirty rate after the fill (default 0: idle)
 *   mw.pattern=seq|random  which pages get dirtied (default seq)
 *   mw.seed=<n>          PRNG seed (default 1)
 *   mw.dirty=line|page|bytes|mixed  what a dirtied page gets (default line):
 *                        one 64-byte cache line rewritten; the whole page
 *                        rewritten with new content of its kind; 16-256
 *                        bytes at 1-4 random places (counters, links,
 *                        rows); or page and bytes, half each
 *   mw.work=1            spin on CPU work instead of sleeping between
 *                        dirtying ticks, and count it: the vCPU is then
 *                        always busy, and the work it gets done per second
 *                        shows what a migration costs the guest (bench/compare)
 *
 * Console lines:
 *   mw-ready ws=<MiB> rate=<MiB/s> pattern=<p> pages=<n> fill_ms=<ms> dirty=<d>
 *   mw-heartbeat <counter> <checksum> <dirtied-pages>
 *   (with mw.work=1: ... <dirtied-pages> work=<units> ms=<guest ms>, the work
 *   units done so far and the guest's monotonic clock in ms: their
 *   differences give the rate)
 * The checksum covers the counter and a rotating sample of the working set,
 * so a guest that came back with wrong memory prints a different series.
 *
 * PID 1 must never exit (the kernel panics), so every failure ends in an
 * endless sleep loop after saying why.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define HEARTBEAT_NS 250000000L /* 4 lines a second */
#define TICK_NS 10000000L	/* dirtying granularity: 10 ms */

static uint64_t rng_state = 1;

static uint64_t rng_next(void)
{
	/* xorshift64*: fast, good enough for page contents and indices */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	/* One write per line keeps lines whole on the serial console. */
	if (write(1, line, (size_t)n) < 0)
		return;
}

static _Noreturn void hang(void)
{
	for (;;)
		pause();
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ull),
			       .tv_nsec = (long)(t % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
		;
}

/* One work unit: a fixed amount of arithmetic in registers, so it costs
 * vCPU time only (no memory dirtied beyond the stack). */
static uint64_t work_units;

static volatile uint64_t work_sink; /* keeps the arithmetic */

static void spin_until(uint64_t t)
{
	uint64_t x = work_units | 1;

	while (now_ns() < t) {
		for (int k = 0; k < 4096; k++) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
		}
		work_units++;
	}
	work_sink = x;
}

struct cfg {
	unsigned long ws_mib;
	unsigned long rate_mib;
	int random;
	int dirty; /* DIRTY_* */
	uint64_t seed;
	int work;
};

enum { DIRTY_LINE, DIRTY_PAGE, DIRTY_BYTES, DIRTY_MIXED };

/* Kernel parameters with a dot are not passed to init's argv: read them. */
static void cfg_parse(struct cfg *c)
{
	char buf[4096], *tok, *save = NULL;
	FILE *f = fopen("/proc/cmdline", "r");
	size_t n;

	if (!f)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (tok = strtok_r(buf, " \t\n", &save); tok;
	     tok = strtok_r(NULL, " \t\n", &save)) {
		if (!strncmp(tok, "mw.ws=", 6))
			c->ws_mib = strtoul(tok + 6, NULL, 10);
		else if (!strncmp(tok, "mw.rate=", 8))
			c->rate_mib = strtoul(tok + 8, NULL, 10);
		else if (!strncmp(tok, "mw.pattern=", 11))
			c->random = !strcmp(tok + 11, "random");
		else if (!strncmp(tok, "mw.dirty=", 9))
			c->dirty = !strcmp(tok + 9, "page")  ? DIRTY_PAGE :
				   !strcmp(tok + 9, "bytes") ? DIRTY_BYTES :
				   !strcmp(tok + 9, "mixed") ? DIRTY_MIXED :
							       DIRTY_LINE;
		else if (!strncmp(tok, "mw.seed=", 8))
			c->seed = strtoull(tok + 8, NULL, 10);
		else if (!strncmp(tok, "mw.work=", 8))
			c->work = tok[8] == '1';
	}
	if (c->ws_mib == 0)
		c->ws_mib = 1;
}

static const char *const words[] = {
	"the ",	     "migration ", "stream ", "page ",	  "of ",   "memory ",
	"guest ",    "and ",	   "dirty ",  "channel ", "is ",   "to ",
	"a ",	     "in ",	   "kernel ", "which ",	  "with ", "bandwidth ",
	"downtime ", "device ",	   "state ",  "\n",	  ", ",	   ". ",
	"QEMU ",     "TLS ",	   "buffer ", "zero ",
};

static void fill_text(uint8_t *p)
{
	size_t off = 0;

	while (off < PAGE) {
		const char *w =
			words[rng_next() % (sizeof(words) / sizeof(words[0]))];
		size_t l = strlen(w);

		if (l > PAGE - off)
			l = PAGE - off;
		memcpy(p + off, w, l);
		off += l;
	}
}

/* Code-like: x86-ish instruction bytes, small immediates, repeated idioms. */
static void fill_code(uint8_t *p)
{
	static const uint8_t idioms[][8] = {
		{ 0x55, 0x48, 0x89, 0xe5 },	  /* push rbp; mov rbp,rsp */
		{ 0x48, 0x83, 0xec, 0x10 },	  /* sub rsp,0x10 */
		{ 0xe8, 0x00, 0x00, 0x00, 0x00 }, /* call rel32 */
		{ 0x48, 0x8b, 0x45, 0xf8 },	  /* mov rax,[rbp-8] */
		{ 0x31, 0xc0, 0xc3 },		  /* xor eax,eax; ret */
		{ 0x0f, 0x1f, 0x44, 0x00, 0x00 }, /* nop */
		{ 0x48, 0x85, 0xc0, 0x74, 0x05 }, /* test rax,rax; je */
		{ 0x5d, 0xc3, 0xcc, 0xcc },	  /* pop rbp; ret; int3 */
	};
	size_t off = 0;

	while (off < PAGE) {
		uint64_t r = rng_next();
		const uint8_t *id = idioms[r % 8];
		size_t l = 3 + (r >> 8) % 3;

		if (l > PAGE - off)
			l = PAGE - off;
		memcpy(p + off, id, l);
		if (id[0] == 0xe8 && l == 5)
			p[off + 1] = (uint8_t)(r >> 16); /* vary call targets */
		off += l;
	}
}

static void fill_random(uint8_t *p)
{
	for (size_t i = 0; i < PAGE; i += 8) {
		uint64_t r = rng_next();

		memcpy(p + i, &r, 8);
	}
}

/* Page kind from its index: 25% zero, 20% text, 20% code, 35% random. */
static int page_kind(size_t i)
{
	unsigned h = (unsigned)((i * 2654435761u) >> 7) % 100;

	return h < 25 ? 0 : h < 45 ? 1 : h < 65 ? 2 : 3;
}

static void fill_page(uint8_t *p, size_t i)
{
	switch (page_kind(i)) {
	case 0:
		memset(p, 0, PAGE);
		break;
	case 1:
		fill_text(p);
		break;
	case 2:
		fill_code(p);
		break;
	default:
		fill_random(p);
		break;
	}
}

/* Dirty one page: rewrite a cache line so the page keeps its kind (a zero
 * page is written with zeros: still dirty for the hypervisor). */
static void dirty_page(uint8_t *p, size_t i, uint64_t gen)
{
	size_t line = (size_t)(gen % (PAGE / 64)) * 64;

	if (page_kind(i) == 0) {
		memset(p + line, 0, 64);
		return;
	}
	for (size_t k = 0; k < 64; k += 8) {
		uint64_t v = gen * 0x9E3779B97F4A7C15ULL + k;

		memcpy(p + line + k, &v, 8);
	}
}

/* 16-256 bytes at 1-4 random places, each byte new (a zero page stays
 * zero: still dirty for the hypervisor) */
static void dirty_bytes(uint8_t *p, size_t i)
{
	unsigned runs = 1 + (unsigned)(rng_next() % 4);

	while (runs--) {
		size_t len = 16 + (size_t)(rng_next() % 241);
		size_t off = (size_t)(rng_next() % (PAGE - len));

		for (size_t k = 0; k < len; k++)
			p[off + k] = page_kind(i) ? (uint8_t)rng_next() : 0;
	}
}

/* What a dirtied page gets, by mw.dirty. */
static void dirty_mode(int mode, uint8_t *p, size_t i, uint64_t gen)
{
	if (mode == DIRTY_MIXED)
		mode = rng_next() & 1 ? DIRTY_PAGE : DIRTY_BYTES;
	if (mode == DIRTY_PAGE)
		fill_page(p, i); /* new content, the same kind */
	else if (mode == DIRTY_BYTES)
		dirty_bytes(p, i);
	else
		dirty_page(p, i, gen);
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

int main(void)
{
	struct cfg c = { .ws_mib = 64, .rate_mib = 0, .random = 0, .seed = 1 };
	uint64_t t0, t, last, next_hb, counter = 0, dirtied = 0, gen = 0;
	size_t npages, cursor = 0, sample = 0;
	double budget = 0.0, per_ns;
	uint8_t *ws;

	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	cfg_parse(&c);
	rng_state = c.seed ? c.seed : 1;

	npages = (size_t)c.ws_mib * (1024 * 1024 / PAGE);
	ws = malloc(npages * PAGE);
	if (!ws) {
		say("mw-error cannot allocate %lu MiB\n", c.ws_mib);
		hang();
	}
	t0 = now_ns();
	for (size_t i = 0; i < npages; i++)
		fill_page(ws + i * PAGE, i); /* touches every page */
	t = now_ns();
	say("mw-ready ws=%lu rate=%lu pattern=%s pages=%zu fill_ms=%llu "
	    "dirty=%s\n",
	    c.ws_mib, c.rate_mib, c.random ? "random" : "seq", npages,
	    (unsigned long long)((t - t0) / 1000000),
	    (const char *const[]){ "line", "page", "bytes", "mixed" }[c.dirty]);

	per_ns = (double)c.rate_mib * (1024.0 * 1024.0 / PAGE) / 1e9;
	next_hb = t + HEARTBEAT_NS;
	last = t;
	for (;;) {
		uint64_t h = 0xcbf29ce484222325ULL;

		/* Dirty the pages owed since the last pass. After a long stall
		 * (migration downtime) only one tick is owed: do not burst. */
		t = now_ns();
		budget += per_ns *
			  (double)(t - last > 2 * TICK_NS ? TICK_NS : t - last);
		last = t;
		while (budget >= 1.0) {
			size_t i = c.random ? (size_t)(rng_next() % npages) :
					      cursor;

			cursor = (cursor + 1) % npages;
			dirty_mode(c.dirty, ws + i * PAGE, i, ++gen);
			dirtied++;
			budget -= 1.0;
		}
		t = now_ns();
		if (t >= next_hb) {
			counter++;
			h = fnv1a(h, (const uint8_t *)&counter,
				  sizeof(counter));
			for (int k = 0; k < 16; k++) {
				h = fnv1a(h, ws + sample * PAGE, 256);
				sample = (sample + 7919) % npages;
			}
			if (c.work)
				say("mw-heartbeat %llu %016llx %llu work=%llu "
				    "ms=%llu\n",
				    (unsigned long long)counter,
				    (unsigned long long)h,
				    (unsigned long long)dirtied,
				    (unsigned long long)work_units,
				    (unsigned long long)((t - t0) / 1000000));
			else
				say("mw-heartbeat %llu %016llx %llu\n",
				    (unsigned long long)counter,
				    (unsigned long long)h,
				    (unsigned long long)dirtied);
			next_hb += HEARTBEAT_NS;
			/* After a long pause (migration downtime), do not burst. */
			if (next_hb < t)
				next_hb = t + HEARTBEAT_NS;
		}
		if (c.rate_mib == 0) {
			(c.work ? spin_until : sleep_until)(next_hb);
			continue;
		}
		t += TICK_NS;
		(c.work ? spin_until : sleep_until)(t < next_hb ? t : next_hb);
	}
}
