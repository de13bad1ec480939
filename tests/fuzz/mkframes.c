/* SPDX-License-Identifier: MIT */
/*
 * Fixture generator for the fuzz targets and the receiver's network replay.
 * Python has no XXH3, so the frames that need checksums are made here, with
 * the project's own encoders, codecs and checksum.
 *
 *   mkframes seeds DIR  seed corpora: DIR/{frame,decompress,psk,opts,stream}/
 *                       (the committed tests/fuzz/corpus/ was made so)
 *   mkframes net DIR    hostile DATA-phase streams for tests/fuzz/
 *                       net_replay.py: NAME.stream (the bytes a sender
 *                       writes on one --no-tls channel), NAME.valid (the
 *                       verified chunks in sequence order: the receiver's
 *                       output must be a prefix of it) and NAME.expect
 *                       ("exit=fail|ok|any" and a "why=" line)
 *
 * Everything is deterministic, so a failure names a file that the next
 * run makes again byte for byte.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mw_comp.h"
#include "mw_wire.h"

#define CHUNK 4096u

struct bytes {
	uint8_t *p;
	size_t n, cap;
};

static void die(const char *what)
{
	fprintf(stderr, "mkframes: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void put(struct bytes *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			die("realloc");
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void write_file(const char *dir, const char *name, const void *p,
		       size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f))
		die(path);
}

static void mkdir_p(const char *dir)
{
	if (mkdir(dir, 0755) && errno != EEXIST)
		die(dir);
}

/* Guest-RAM-like chunk i: compressible runs with some noise. */
static void chunk_fill(uint8_t *p, size_t n, unsigned i)
{
	uint32_t x = 2463534242u + i * 2654435761u;
	size_t j;

	for (j = 0; j < n; j++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[j] = j % 8 == 7 ? (uint8_t)x : (uint8_t)(j / 64 + i);
	}
}

static size_t compress(enum mw_codec c, const uint8_t *src, size_t n,
		       uint8_t *dst, size_t cap)
{
	struct mw_codec_ctx *ctx;
	struct mw_err err;
	ssize_t r;

	if (mw_codec_ctx_new(&ctx, c, mw_codec_level_default(c)))
		die("codec");
	r = mw_codec_compress(ctx, src, n, dst, cap, &err);
	mw_codec_ctx_free(ctx);
	if (r <= 0) {
		fprintf(stderr, "mkframes: %s does not shrink chunk\n",
			mw_codec_name(c));
		exit(1);
	}
	return (size_t)r;
}

/* ---- net cases ---- */

struct ncase {
	struct bytes stream, valid;
	enum mw_codec codec;	    /* of the session */
	uint64_t bytes, chunks;	    /* honest totals so far */
	uint64_t next_seq, claimed; /* what the DATA frames sent claim */
	size_t ok_bytes; /* output on exit 0 when not all of .valid */
};

static void frame(struct ncase *k, const struct mw_frame_hdr *h,
		  const void *payload, size_t n)
{
	uint8_t raw[MW_FRAME_HDR_LEN];

	mw_frame_hdr_encode(raw, h);
	put(&k->stream, raw, sizeof(raw));
	put(&k->stream, payload, n);
}

static void ncase_begin(struct ncase *k, enum mw_codec c)
{
	struct mw_hello h = { .version = MW_PROTO_VERSION,
			      .chan_count = 1,
			      .codec = (uint8_t)c,
			      .chunk_size = CHUNK,
			      .window_chunks = 8 };
	struct mw_frame_hdr fh = { .type = MW_FT_HELLO,
				   .wire_len = MW_HELLO_LEN };
	uint8_t p[MW_HELLO_LEN];

	memset(k, 0, sizeof(*k));
	k->codec = c;
	memcpy(h.session, "fuzz-net-replay!", MW_SESSION_ID_LEN);
	mw_hello_encode(p, &h);
	frame(k, &fh, p, sizeof(p));
}

/* Options of one DATA frame; zero = honest. */
struct dopt {
	uint32_t raw_len;   /* claimed; 0 = the real one */
	int64_t wire_delta; /* added to the honest wire_len */
	size_t cut;	    /* send only this many payload bytes (then EOF) */
	uint64_t csum_xor;
	uint32_t stream;
	uint16_t flags_or;
	int codec;	   /* -1 = session's; else forces the frame codec */
	int raw;	   /* 1 = send RAW even if it compresses */
	size_t len;	   /* chunk bytes; 0 = CHUNK */
	const char *trail; /* garbage appended to the payload */
	int valid;	   /* counts as verified data (part of .valid) */
};

static void data(struct ncase *k, uint64_t seq, unsigned fill,
		 const struct dopt *o)
{
	uint8_t raw[CHUNK], wire[2 * CHUNK + 1024];
	size_t len = o->len ? o->len : CHUNK, wl;
	int codec = o->codec >= 0 ? o->codec : (int)k->codec;
	struct mw_frame_hdr h = { .type = MW_FT_DATA,
				  .seq = seq,
				  .stream = o->stream };
	const uint8_t *payload;

	chunk_fill(raw, len, fill);
	h.csum = mw_comp_checksum(raw, len) ^ o->csum_xor;
	h.raw_len = o->raw_len ? o->raw_len : (uint32_t)len;
	if (codec == MW_CODEC_NONE || o->raw) {
		h.flags = MW_F_RAW;
		h.codec = (uint8_t)k->codec;
		payload = raw;
		wl = len;
	} else {
		h.codec = (uint8_t)codec;
		wl = compress((enum mw_codec)codec, raw, len, wire,
			      sizeof(wire));
		payload = wire;
	}
	if (o->trail) {
		if (payload == raw) {
			memcpy(wire, raw, wl);
			payload = wire;
		}
		memcpy(wire + wl, o->trail, strlen(o->trail));
		wl += strlen(o->trail);
	}
	h.flags |= o->flags_or;
	h.wire_len = (uint32_t)((int64_t)wl + o->wire_delta);
	{
		uint8_t hdr[MW_FRAME_HDR_LEN];

		mw_frame_hdr_encode(hdr, &h);
		put(&k->stream, hdr, sizeof(hdr));
	}
	put(&k->stream, payload, o->cut ? o->cut : wl);
	if (seq + 1 > k->next_seq)
		k->next_seq = seq + 1;
	k->claimed += h.raw_len;
	if (o->valid) {
		put(&k->valid, raw, len);
		k->bytes += len;
		k->chunks++;
	}
}

static const struct dopt OK = { .codec = -1, .valid = 1 };
static const struct dopt BAD = { .codec = -1 };

static void ok_data(struct ncase *k, uint64_t seq)
{
	data(k, seq, (unsigned)seq, &OK);
}

static void end(struct ncase *k, uint64_t bytes, uint64_t chunks)
{
	struct mw_frame_hdr h = { .type = MW_FT_END, .wire_len = MW_END_LEN };
	struct mw_end e = { .bytes = bytes, .chunks = chunks };
	uint8_t p[MW_END_LEN];

	mw_end_encode(p, &e);
	frame(k, &h, p, sizeof(p));
}

/* The END a sender that believes its own DATA frames would send: every
 * case lies about one thing only, so its totals match the frames sent. */
static void honest_end(struct ncase *k)
{
	end(k, k->claimed, k->next_seq);
}

/* CLOSE: the session carried one stream with these totals. */
static void honest_close(struct ncase *k)
{
	struct mw_frame_hdr h = { .type = MW_FT_CLOSE,
				  .wire_len = MW_CLOSE_LEN };
	struct mw_close c = { .streams = 1,
			      .bytes = k->claimed,
			      .chunks = k->next_seq };
	uint8_t p[MW_CLOSE_LEN];

	mw_close_encode(p, &c);
	frame(k, &h, p, sizeof(p));
}

/*
 * known: a receiver bug this case is known to hit, reported but not yet
 * fixed; net_replay.py then counts the case as XFAIL and fails it as XPASS
 * once the receiver passes, so the mark is removed with the fix.
 */
static void ncase_write_known(struct ncase *k, const char *dir,
			      const char *name, const char *exit_,
			      const char *why, const char *known)
{
	char fn[256], ex[1024];
	int n;

	snprintf(fn, sizeof(fn), "%s.stream", name);
	write_file(dir, fn, k->stream.p, k->stream.n);
	snprintf(fn, sizeof(fn), "%s.valid", name);
	write_file(dir, fn, k->valid.p ? k->valid.p : (const uint8_t *)"",
		   k->valid.n);
	n = snprintf(ex, sizeof(ex), "exit=%s\nwhy=%s\n", exit_, why);
	if (known)
		n += snprintf(ex + n, sizeof(ex) - (size_t)n, "known_bug=%s\n",
			      known);
	if (k->ok_bytes)
		n += snprintf(ex + n, sizeof(ex) - (size_t)n, "ok_bytes=%zu\n",
			      k->ok_bytes);
	snprintf(fn, sizeof(fn), "%s.expect", name);
	write_file(dir, fn, ex, (size_t)n);
	free(k->stream.p);
	free(k->valid.p);
}

static void ncase_write(struct ncase *k, const char *dir, const char *name,
			const char *exit_, const char *why)
{
	ncase_write_known(k, dir, name, exit_, why, NULL);
}

/*
 * PROBE instead of HELLO: answered and closed without a session, so the
 * receiver still waits for its sender and fails at --wait with one line,
 * whatever follows the probe on its connection. (A refused probe, like a
 * refused HELLO, adds a "rejected connection" line: integ/probe.py.)
 */
static void probe_cases(const char *dir)
{
	static const struct {
		const char *name, *why;
		uint16_t version;
		int then_data; /* a DATA frame after it on the connection */
	} pc[] = {
		{ "probe_only", "a probe is not a session", MW_PROTO_VERSION,
		  0 },
		{ "probe_then_data", "DATA after the probe's answer",
		  MW_PROTO_VERSION, 1 },
	};
	struct mw_frame_hdr h = { .type = MW_FT_PROBE,
				  .wire_len = MW_PROBE_LEN };
	uint8_t p[MW_PROBE_LEN];
	struct ncase k;
	size_t i;

	for (i = 0; i < sizeof(pc) / sizeof(pc[0]); i++) {
		struct mw_probe pr = { .version = pc[i].version };

		memset(&k, 0, sizeof(k));
		k.codec = MW_CODEC_NONE;
		mw_probe_encode(p, &pr);
		frame(&k, &h, p, sizeof(p));
		if (pc[i].then_data)
			data(&k, 0, 0, &OK);
		ncase_write(&k, dir, pc[i].name, "fail", pc[i].why);
	}
}

static void net_cases(const char *dir)
{
	struct ncase k;
	struct dopt o;
	enum mw_codec c;

	mkdir_p(dir);
	/* controls: honest streams the receiver must accept byte-exact */
	for (c = MW_CODEC_NONE; c < MW_CODEC_MAX; c++) {
		char name[32];

		ncase_begin(&k, c);
		ok_data(&k, 0);
		ok_data(&k, 1);
		o = OK;
		o.raw = 1; /* a RAW chunk inside a compressed session */
		data(&k, 2, 2, &o);
		o = OK;
		o.len = 100; /* a short last chunk */
		data(&k, 3, 3, &o);
		honest_end(&k);
		honest_close(&k);
		snprintf(name, sizeof(name), "ok_%s", mw_codec_name(c));
		ncase_write(&k, dir, name, "ok", "honest control stream");
	}

	probe_cases(dir);

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	ok_data(&k, 1);
	data(&k, 1, 1, &BAD);
	honest_end(&k);
	ncase_write(&k, dir, "dup_seq", "fail", "seq 1 twice");

	ncase_begin(&k, MW_CODEC_ZSTD);
	data(&k, 1, 1, &BAD);
	data(&k, 1, 1, &BAD);
	ncase_write(&k, dir, "dup_seq_pending", "fail",
		    "seq 1 twice while 0 is missing");

	ncase_begin(&k, MW_CODEC_ZLIB);
	ok_data(&k, 0);
	ok_data(&k, 1);
	ok_data(&k, 2);
	data(&k, 0, 0, &BAD);
	honest_end(&k);
	ncase_write(&k, dir, "seq_below_next", "fail",
		    "seq 0 again after 0..2");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	data(&k, 1ull << 40, 1, &BAD);
	data(&k, (1ull << 40) + 1, 2, &BAD);
	ncase_write(&k, dir, "seq_jump_huge", "fail",
		    "seq 2^40 after 0: far beyond the stream's credit");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	data(&k, UINT64_MAX, 1, &BAD);
	ncase_write(&k, dir, "seq_max", "fail",
		    "seq 2^64-1 after 0: beyond the credit");

	ncase_begin(&k, MW_CODEC_ZLIB);
	ok_data(&k, 0);
	data(&k, 2, 2, &BAD);
	end(&k, 3 * CHUNK, 3);
	ncase_write(&k, dir, "seq_gap_then_eof", "fail",
		    "seq 1 never comes; END claims 3 chunks; then EOF");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	o = BAD;
	o.stream = 1;
	data(&k, 1, 1, &o);
	honest_end(&k);
	ncase_write(&k, dir, "stream_other", "fail", "DATA of stream 1");

	ncase_begin(&k, MW_CODEC_ZSTD);
	o = BAD;
	o.stream = MW_STREAM_REVERSE;
	data(&k, 0, 0, &o);
	honest_end(&k);
	ncase_write(&k, dir, "stream_reverse", "fail",
		    "DATA of the reverse direction");

	ncase_begin(&k, MW_CODEC_NONE);
	o = BAD;
	o.raw_len = 2 * CHUNK;
	o.wire_delta = CHUNK; /* RAW: wire_len == raw_len */
	data(&k, 0, 0, &o);
	ncase_write(&k, dir, "raw_len_gt_chunk_raw", "fail",
		    "RAW frame whose raw_len is twice the chunk size");

	ncase_begin(&k, MW_CODEC_ZLIB);
	o = BAD;
	o.raw_len = 2 * CHUNK;
	data(&k, 0, 0, &o);
	ncase_write(&k, dir, "raw_len_gt_chunk", "fail",
		    "zlib frame claiming 2x the chunk size");

	ncase_begin(&k, MW_CODEC_NONE);
	ok_data(&k, 0);
	o = BAD;
	o.cut = 1000;
	data(&k, 1, 1, &o);
	ncase_write(&k, dir, "wire_len_lie_eof", "fail",
		    "wire_len 4096, 1000 bytes, then EOF");

	ncase_begin(&k, MW_CODEC_ZLIB);
	ok_data(&k, 0);
	o = BAD;
	o.wire_delta = -10;
	data(&k, 1, 1, &o);
	ok_data(&k, 2);
	honest_end(&k);
	k.valid.n = CHUNK; /* only chunk 0 may be written */
	ncase_write(&k, dir, "wire_len_short", "fail",
		    "wire_len 10 bytes short: the codec frame is cut and the "
		    "rest reads as a header");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	o = BAD;
	o.wire_delta = 7;
	o.trail = "garbage";
	data(&k, 1, 1, &o);
	honest_end(&k);
	ncase_write(&k, dir, "zstd_trailing", "fail",
		    "zstd frame followed by 7 bytes inside wire_len");

	ncase_begin(&k, MW_CODEC_ZLIB);
	o = BAD;
	o.trail = "junk";
	data(&k, 0, 0, &o);
	honest_end(&k);
	ncase_write(&k, dir, "zlib_trailing", "fail",
		    "zlib stream followed by 4 bytes inside wire_len");

	ncase_begin(&k, MW_CODEC_NONE);
	o = BAD;
	o.wire_delta = -1;
	data(&k, 0, 0, &o);
	ncase_write(&k, dir, "raw_wire_ne_raw", "fail",
		    "RAW frame with wire_len != raw_len");

	ncase_begin(&k, MW_CODEC_ZSTD);
	o = BAD;
	o.flags_or = 0x8000;
	data(&k, 0, 0, &o);
	ncase_write(&k, dir, "flags_unknown", "fail", "unknown DATA flag");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	o = BAD;
	o.codec = MW_CODEC_ZLIB;
	data(&k, 1, 1, &o);
	honest_end(&k);
	ncase_write(&k, dir, "codec_mismatch", "fail",
		    "zlib frame in a zstd session");

	ncase_begin(&k, MW_CODEC_NONE);
	o = BAD;
	o.codec = MW_CODEC_ZSTD;
	data(&k, 0, 0, &o);
	ncase_write(&k, dir, "codec_in_none_session", "fail",
		    "compressed frame in a codec-none session");

	ncase_begin(&k, MW_CODEC_ZLIB);
	ok_data(&k, 0);
	o = BAD;
	o.raw_len = CHUNK - 1000; /* inflates to more: a small bomb */
	data(&k, 1, 1, &o);
	honest_end(&k);
	ncase_write(&k, dir, "inflate_more", "fail",
		    "zlib payload inflates past raw_len");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	o = BAD;
	o.len = 3000; /* inflates to 3000, frame says 4096 */
	o.raw_len = CHUNK;
	data(&k, 1, 1, &o);
	honest_end(&k);
	ncase_write(&k, dir, "inflate_less", "fail",
		    "zstd payload inflates to less than raw_len");

	ncase_begin(&k, MW_CODEC_ZLIB);
	ok_data(&k, 0);
	o = BAD;
	o.len = 3000;
	o.raw_len = CHUNK;
	data(&k, 1, 1, &o);
	honest_end(&k);
	ncase_write(&k, dir, "inflate_less_zlib", "fail",
		    "zlib payload inflates to less than raw_len");

	for (c = MW_CODEC_NONE; c < MW_CODEC_MAX; c++) {
		char name[32];

		ncase_begin(&k, c);
		ok_data(&k, 0);
		ok_data(&k, 1);
		o = BAD;
		o.csum_xor = 1;
		data(&k, 2, 2, &o);
		ok_data(&k, 3);
		honest_end(&k);
		k.valid.n = 2 * CHUNK;
		snprintf(name, sizeof(name), "csum_wrong_%s", mw_codec_name(c));
		ncase_write(&k, dir, name, "fail",
			    "chunk 2 has a checksum off by one bit");
	}

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	{
		uint8_t hdr[MW_FRAME_HDR_LEN];
		struct mw_frame_hdr h = { .type = MW_FT_DATA,
					  .seq = 1,
					  .raw_len = CHUNK,
					  .wire_len = 100 };

		mw_frame_hdr_encode(hdr, &h);
		put(&k.stream, hdr, 20);
	}
	ncase_write(&k, dir, "truncated_header", "fail",
		    "20 bytes of a header, then EOF");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	ok_data(&k, 1);
	end(&k, k.bytes + 1, k.chunks);
	ncase_write(&k, dir, "end_wrong_bytes", "fail",
		    "END claims one byte more than was sent");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	ok_data(&k, 1);
	ok_data(&k, 2);
	end(&k, k.bytes, 2);
	ncase_write(&k, dir, "end_fewer_chunks", "fail",
		    "END claims 2 chunks after 3");

	ncase_begin(&k, MW_CODEC_NONE);
	ok_data(&k, 0);
	end(&k, 2 * CHUNK, 2);
	ncase_write(&k, dir, "end_more_chunks", "fail",
		    "END claims 2 chunks, 1 was sent, then EOF");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	honest_end(&k);
	honest_end(&k);
	ncase_write(&k, dir, "end_twice", "any",
		    "END twice: an error unless the receiver had finished "
		    "and stopped reading");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	data(&k, 1, 1, &OK);
	end(&k, CHUNK, 1);
	k.ok_bytes = CHUNK; /* exit 0: exactly what END declares */
	ncase_write(&k, dir, "end_below_received", "any",
		    "END counts 1 chunk after seqs 0 and 1 arrived: an error, "
		    "but the receiver may finish with chunk 0 first");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	end(&k, CHUNK, 1);
	data(&k, 1, 1, &BAD);
	ncase_write(&k, dir, "data_after_end", "any",
		    "DATA beyond END's count: an error unless the receiver "
		    "had finished");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 1);
	ok_data(&k, 0);
	end(&k, k.bytes, 3);
	/* .valid is in sequence order: 0 then 1 */
	k.valid.n = 0;
	{
		uint8_t raw[CHUNK];

		chunk_fill(raw, CHUNK, 0);
		put(&k.valid, raw, CHUNK);
		chunk_fill(raw, CHUNK, 1);
		put(&k.valid, raw, CHUNK);
	}
	ncase_write(&k, dir, "end_out_of_order_eof", "fail",
		    "seq 1 before 0, END names 3 chunks, then EOF");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	{
		struct mw_frame_hdr h = { .type = MW_FT_ERROR, .wire_len = 4 };

		frame(&k, &h, "boom", 4);
	}
	ncase_write(&k, dir, "error_frame", "fail",
		    "the sender reports an ERROR");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	{
		struct mw_frame_hdr h = { .type = MW_FT_HELLO_OK,
					  .wire_len = MW_HELLO_OK_LEN };
		uint8_t p[MW_HELLO_OK_LEN] = { 0 };

		frame(&k, &h, p, sizeof(p));
	}
	ncase_write(&k, dir, "unexpected_type", "fail",
		    "HELLO_OK from the sender during DATA");

	ncase_begin(&k, MW_CODEC_ZSTD);
	ok_data(&k, 0);
	put(&k.stream, "\x16\x03\x01garbage-garbage-garbage-garbage-garbage!",
	    40);
	ncase_write(&k, dir, "garbage_header", "fail",
		    "40 bytes of garbage where a header belongs");

	/* the window: 64 KiB receiver window (net_replay.py passes
	 * --window 64K) holds 2..16 slots; fill it without seq 0 */
	ncase_begin(&k, MW_CODEC_NONE);
	{
		uint64_t s;

		for (s = 1; s <= 40; s++)
			data(&k, s, (unsigned)s, &BAD);
	}
	ncase_write(&k, dir, "window_full_without_next", "fail",
		    "seqs 1..40 and never 0: beyond the credit from seq 16 on");
}

/* ---- seed corpora ---- */

static void seed(const char *dir, const char *name, const void *p, size_t n)
{
	write_file(dir, name, p, n);
}

static void seeds_frame(const char *base)
{
	char dir[4096];
	uint8_t b[64];
	unsigned t;

	snprintf(dir, sizeof(dir), "%s/frame", base);
	mkdir_p(dir);
	for (t = MW_FT_HELLO; t < MW_FT_MAX; t++) {
		struct mw_frame_hdr h = { .type = (uint8_t)t };
		char name[32];

		switch (t) {
		case MW_FT_HELLO:
			h.wire_len = MW_HELLO_LEN;
			break;
		case MW_FT_HELLO_OK:
			h.wire_len = MW_HELLO_OK_LEN;
			break;
		case MW_FT_END:
			h.wire_len = MW_END_LEN;
			break;
		case MW_FT_ACK:
			h.wire_len = MW_ACK_LEN;
			break;
		case MW_FT_ERROR:
			h.wire_len = 17;
			break;
		case MW_FT_PROBE:
			h.wire_len = MW_PROBE_LEN;
			break;
		case MW_FT_PROBE_OK:
			h.wire_len = MW_PROBE_OK_LEN;
			break;
		case MW_FT_OPEN:
			h.wire_len = MW_OPEN_LEN;
			break;
		case MW_FT_CLOSE:
			h.wire_len = MW_CLOSE_LEN;
			break;
		case MW_FT_WINDOW:
			h.wire_len = MW_WINDOW_LEN;
			h.stream = 2;
			h.seq = 4096;
			break;
		case MW_FT_CHALLENGE:
			h.wire_len = MW_JOIN_NONCE_LEN;
			break;
		case MW_FT_JOIN:
			h.wire_len = MW_JOIN_TAG_LEN;
			break;
		case MW_FT_CONFIRM:
			h.stream = MW_STREAM_REVERSE | 1;
			h.seq = 65;
			break;
		case MW_FT_DATA:
			h.codec = MW_CODEC_ZSTD;
			h.raw_len = 262144;
			h.wire_len = 1234;
			h.seq = 42;
			h.csum = 0x0123456789abcdefull;
			break;
		}
		mw_frame_hdr_encode(b, &h);
		mw_put_be32(b + 40, 65536); /* max_payload */
		snprintf(name, sizeof(name), "hdr_%s", mw_frame_type_name(t));
		seed(dir, name, b, 44);
	}
	{
		struct mw_probe pr = { .version = MW_PROTO_VERSION };
		struct mw_probe_ok ok = { .version = MW_PROTO_VERSION,
					  .flags = MW_PROBE_BUSY,
					  .endpoints = 2,
					  .channels_max = MW_CHANNELS_MAX,
					  .chunk_max = MW_CHUNK_MAX,
					  .window = 8u << 20 };

		mw_probe_encode(b, &pr);
		seed(dir, "probe", b, MW_PROBE_LEN);
		pr.flags = MW_PROBE_F_TOKEN;
		mw_probe_encode(b, &pr);
		seed(dir, "probe_token", b, MW_PROBE_LEN);
		mw_probe_ok_encode(b, &ok);
		seed(dir, "probe_ok", b, MW_PROBE_OK_LEN);
	}
	{
		struct mw_frame_hdr h = { .type = MW_FT_DATA,
					  .flags = MW_F_RAW,
					  .raw_len = 4096,
					  .wire_len = 4096,
					  .seq = 7 };

		mw_frame_hdr_encode(b, &h);
		seed(dir, "hdr_DATA_raw", b, MW_FRAME_HDR_LEN);
		/* protocol 3: frames a resumed channel sends again */
		h.flags |= MW_F_RESENT;
		mw_frame_hdr_encode(b, &h);
		seed(dir, "hdr_DATA_resent", b, MW_FRAME_HDR_LEN);
		h = (struct mw_frame_hdr){ .type = MW_FT_END,
					   .flags = MW_F_RESENT,
					   .stream = 1,
					   .wire_len = MW_END_LEN };
		mw_frame_hdr_encode(b, &h);
		seed(dir, "hdr_END_resent", b, MW_FRAME_HDR_LEN);
		h = (struct mw_frame_hdr){ .type = MW_FT_OPEN,
					   .flags = MW_F_RESENT,
					   .stream = 1,
					   .wire_len = MW_OPEN_LEN };
		mw_frame_hdr_encode(b, &h);
		seed(dir, "hdr_OPEN_resent", b, MW_FRAME_HDR_LEN);
		h = (struct mw_frame_hdr){ .type = MW_FT_CLOSE,
					   .flags = MW_F_RESENT,
					   .wire_len = MW_CLOSE_LEN };
		mw_frame_hdr_encode(b, &h);
		seed(dir, "hdr_CLOSE_resent", b, MW_FRAME_HDR_LEN);
		h = (struct mw_frame_hdr){ .type = MW_FT_PING,
					   .flags = MW_F_RESENT };
		mw_frame_hdr_encode(b, &h);
		seed(dir, "hdr_PING_flags", b, MW_FRAME_HDR_LEN);
		mw_window_encode(b, 12345);
		seed(dir, "window", b, MW_WINDOW_LEN);
	}
	{
		struct mw_hello h = { .version = 1,
				      .chan_index = 3,
				      .chan_count = 4,
				      .codec = 2,
				      .chunk_size = 262144,
				      .window_chunks = 128 };

		memcpy(h.session, "0123456789abcdef", 16);
		mw_hello_encode(b, &h);
		seed(dir, "hello", b, MW_HELLO_LEN);
		h.version = 2;
		mw_hello_encode(b, &h);
		seed(dir, "hello_v2", b, MW_HELLO_LEN);
		h.version = MW_PROTO_VERSION;
		h.flags = MW_HELLO_F_RESUME | MW_HELLO_F_TOKEN;
		mw_hello_encode(b, &h);
		seed(dir, "hello_resume", b, MW_HELLO_LEN);
	}
	{
		struct mw_hello_ok h = { .version = MW_PROTO_VERSION,
					 .chan_index = 3,
					 .stream_window = 2 };

		memcpy(h.session, "0123456789abcdef", 16);
		memcpy(h.secret, "resume-secret-of-32-bytes-......", 32);
		mw_hello_ok_encode(b, &h);
		seed(dir, "hello_ok", b, MW_HELLO_OK_LEN);
	}
	{
		struct mw_end e = { .bytes = 1u << 30, .chunks = 4096 };
		struct mw_ack a = { .bytes = 1u << 30, .chunks = 4096 };

		mw_end_encode(b, &e);
		seed(dir, "end", b, MW_END_LEN);
		mw_ack_encode(b, &a);
		seed(dir, "ack", b, MW_ACK_LEN);
	}
}

static void seeds_decompress(const char *base)
{
	static uint8_t raw[65536], in[12 + 2 * 65536];
	char dir[4096], name[64];
	const size_t lens[] = { 1, 100, 4096, 65536 };
	enum mw_codec c;
	size_t i;

	snprintf(dir, sizeof(dir), "%s/decompress", base);
	mkdir_p(dir);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t n = lens[i], wl;

		chunk_fill(raw, n, (unsigned)i);
		for (c = MW_CODEC_ZLIB; c < MW_CODEC_MAX; c++) {
			if (n < 64)
				continue;
			wl = compress(c, raw, n, in + 12, sizeof(in) - 12);
			/* checksum from the input, through the pool too */
			in[0] = (uint8_t)(c | 8 | 16);
			in[1] = (uint8_t)(n >> 16);
			in[2] = (uint8_t)(n >> 8);
			in[3] = (uint8_t)n;
			mw_put_be64(in + 4, mw_comp_checksum(raw, n));
			snprintf(name, sizeof(name), "%s_%zu", mw_codec_name(c),
				 n);
			seed(dir, name, in, 12 + wl);
		}
		/* a RAW chunk, verified only */
		in[0] = 4 | 8 | 16;
		in[1] = (uint8_t)(n >> 16);
		in[2] = (uint8_t)(n >> 8);
		in[3] = (uint8_t)n;
		mw_put_be64(in + 4, mw_comp_checksum(raw, n));
		memcpy(in + 12, raw, n);
		snprintf(name, sizeof(name), "raw_%zu", n);
		seed(dir, name, in, 12 + n);
	}
}

static void seeds_psk(const char *base)
{
	static const char *const files[] = {
		"qemu:0123456789abcdef0123456789abcdef\n",
		"# migration keys\r\nalice:00ff\r\n\r\nqemu:DEADbeef\r\n",
		"qemu:abc\n",
		"qemu:zz\n",
		":00\n",
		("alice:0011\nqemu:00112233445566778899aabbccddeeff"
		 "00112233445566778899aabbccddeeff\n"),
	};
	char dir[4096], name[32];
	uint8_t b[256];
	size_t i;

	snprintf(dir, sizeof(dir), "%s/psk", base);
	mkdir_p(dir);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		size_t n = strlen(files[i]);

		b[0] = (uint8_t)(i % 3 == 0 ? 1 : i % 3);
		b[1] = 64;
		memcpy(b + 2, files[i], n);
		snprintf(name, sizeof(name), "keys_%zu", i);
		seed(dir, name, b, 2 + n);
	}
}

static void seeds_opts(const char *base)
{
	static const char *const opts[] = {
		"256K",
		"32MiB",
		"1G",
		"100M/s",
		"18446744073709551615",
		"17179869184T",
		"4",
		"64",
		"0-3,8,10-11",
		"1023",
		"7-3",
		"0.0.0.0:4444",
		"[::1]:4444",
		":4444",
		"dst.example:65535",
		"host:0",
		"[fe80::1%eth0]:1",
	};
	char dir[4096], name[32];
	uint8_t b[128];
	size_t i;

	snprintf(dir, sizeof(dir), "%s/opts", base);
	mkdir_p(dir);
	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		size_t n = strlen(opts[i]);

		b[0] = 63; /* host buffer of 64 bytes */
		memcpy(b + 1, opts[i], n);
		snprintf(name, sizeof(name), "opt_%02zu", i);
		seed(dir, name, b, 1 + n);
	}
}

static void stream_frame(struct bytes *b, const struct mw_frame_hdr *h,
			 const void *payload)
{
	uint8_t raw[MW_FRAME_HDR_LEN];

	mw_frame_hdr_encode(raw, h);
	put(b, raw, sizeof(raw));
	put(b, payload, h->wire_len);
}

/* fuzz_stream: a 2-byte prefix (path, slots; split seed), then frames. */
static void seeds_stream(const char *base)
{
	static uint8_t raw[CHUNK], zst[2 * CHUNK];
	static const uint64_t order[] = { 1, 0, 3, 2, 4 }; /* out of order */
	char dir[4096], name[32];
	unsigned path, i;

	snprintf(dir, sizeof(dir), "%s/stream", base);
	mkdir_p(dir);
	for (path = 0; path < 3; path++) {
		struct bytes b = { 0 };
		uint8_t pre[2] = { (uint8_t)(path | 7u << 2), (uint8_t)path };
		struct mw_frame_hdr h = { .type = MW_FT_WINDOW };
		uint8_t end[MW_END_LEN];
		struct mw_end e = { .bytes = 5 * CHUNK, .chunks = 5 };
		size_t zl;

		put(&b, pre, sizeof(pre));
		stream_frame(&b, &h, NULL);
		for (i = 0; i < 5; i++) {
			chunk_fill(raw, CHUNK, (unsigned)order[i]);
			h = (struct mw_frame_hdr){
				.type = MW_FT_DATA,
				.flags = MW_F_RAW,
				.raw_len = CHUNK,
				.wire_len = CHUNK,
				.seq = order[i],
				.csum = mw_comp_checksum(raw, CHUNK),
			};
			stream_frame(&b, &h, raw);
		}
		zl = compress(MW_CODEC_ZSTD, raw, CHUNK, zst, sizeof(zst));
		h = (struct mw_frame_hdr){ .type = MW_FT_DATA,
					   .codec = MW_CODEC_ZSTD,
					   .stream = 2,
					   .raw_len = CHUNK,
					   .wire_len = (uint32_t)zl };
		stream_frame(&b, &h, zst);
		mw_end_encode(end, &e);
		h = (struct mw_frame_hdr){ .type = MW_FT_END,
					   .stream = 0,
					   .wire_len = MW_END_LEN };
		stream_frame(&b, &h, end);
		h = (struct mw_frame_hdr){ .type = MW_FT_ERROR, .wire_len = 4 };
		stream_frame(&b, &h, "oops");
		snprintf(name, sizeof(name), "frames_%u", path);
		seed(dir, name, b.p, b.n);
		/* then a header that claims more than the chunk size */
		h = (struct mw_frame_hdr){ .type = MW_FT_DATA,
					   .flags = MW_F_RAW,
					   .raw_len = CHUNK + 1,
					   .wire_len = CHUNK + 1 };
		mw_frame_hdr_encode(raw, &h);
		put(&b, raw, MW_FRAME_HDR_LEN);
		snprintf(name, sizeof(name), "oversize_%u", path);
		seed(dir, name, b.p, b.n);
		free(b.p);
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "net")) {
		net_cases(argv[2]);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "seeds")) {
		mkdir_p(argv[2]);
		seeds_frame(argv[2]);
		seeds_decompress(argv[2]);
		seeds_psk(argv[2]);
		seeds_opts(argv[2]);
		seeds_stream(argv[2]);
		return 0;
	}
	fprintf(stderr, "usage: mkframes net|seeds DIR\n");
	return 2;
}
