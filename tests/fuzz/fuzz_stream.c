/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the receive path in process. Arbitrary bytes go through the
 * frame reader (transport/frame_io.c), either directly or through a
 * connection's receive buffer (conn.c: the buffered and the direct
 * plaintext paths of the channel loops), and the DATA frames it accepts
 * claim chunks from one pool (transport/chunk.c) into per-stream reorder
 * windows (transport/reasm.c) the way recv_chan.c and sink.c do. The pool
 * is exactly as large as the windows together, as recv's budget makes it,
 * so a window that let more chunks in than it has slots would abort in
 * mw_reasm_claim; each state change is checked in a Debug build. Checked
 * on every input:
 *   - every header the reader hands out is the one mw_frame_hdr_decode
 *     accepts at that offset of the stream, and the reader fails exactly
 *     where the decode (or a callback) refuses;
 *   - a payload lands at its destination byte for byte and never outside
 *     it (guard bytes around each destination; ASan sees the rest);
 *   - the reorder windows pop in sequence order, 0, 1, 2, ... per stream,
 *     and never claim beyond the credit or past END.
 *
 * Input: a 2-byte prefix, then the stream.
 *   byte 0  bits 0-1 path (0, 3: reader fed by want/commit, 1 conn
 *           buffered, 2 conn direct), bits 2-5 slots per stream - 1
 *   byte 1  seed of the split sizes and of when the writer pops
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "conn.h"
#include "frame_io.h"
#include "fuzz_check.h"
#include "mw_wire.h"
#include "reasm.h"

#define PREFIX 2
#define CHUNK MW_CHUNK_MIN /* the session's chunk size */
#define STREAMS 4
#define GUARD 32

struct stream {
	struct mw_reasm ra;
	uint64_t popped; /* next sequence number the writer must see */
};

struct run {
	const uint8_t *in; /* the stream */
	size_t len;
	size_t fs;	 /* where the current frame starts in it */
	bool cb_refused; /* a callback (not the decode) failed the stream */
	uint32_t rnd;
	struct stream st[STREAMS];
	struct mw_chunk_pool pool;
	struct stream *cur;	/* the DATA frame's stream */
	struct mw_chunk *chunk; /* and its chunk, borrowed while it arrives */
	uint8_t *buf;		/* GUARD + payload room + GUARD */
	size_t room;
	struct mw_err err;
};

static uint32_t rnd_next(struct run *r)
{
	r->rnd ^= r->rnd << 13;
	r->rnd ^= r->rnd >> 17;
	r->rnd ^= r->rnd << 5;
	return r->rnd;
}

static void guards_check(const struct run *r)
{
	size_t i;

	for (i = 0; i < GUARD; i++) {
		FUZZ_CHECK(r->buf[i] == 0xa5);
		FUZZ_CHECK(r->buf[GUARD + r->room + i] == 0xa5);
	}
}

static int refuse(struct run *r)
{
	r->cb_refused = true;
	return -MW_E_PROTO;
}

/* Writes every READY head in order, as sink.c's writer does. */
static void writer_pop(struct run *r, struct stream *s)
{
	struct mw_chunk *c;
	uint64_t limit;

	while ((c = mw_reasm_head(&s->ra))) {
		FUZZ_CHECK(c->seq == s->popped);
		mw_chunk_set_state(c, MW_CHUNK_WRITING);
		s->popped++;
		if (mw_reasm_pop(&s->ra, &r->pool, &c, &limit))
			FUZZ_CHECK(limit == s->ra.next + s->ra.nslots);
		FUZZ_CHECK(c == NULL);
	}
}

static int on_header(void *opaque, const struct mw_frame_hdr *h, uint8_t **dst)
{
	struct run *r = opaque;
	struct mw_frame_hdr ref;
	const char *why = "";

	/* the reader decoded exactly the 40 bytes at the frame's start */
	FUZZ_CHECK(r->fs + MW_FRAME_HDR_LEN <= r->len);
	FUZZ_CHECK(!mw_frame_hdr_decode(r->in + r->fs, MW_FRAME_HDR_LEN, CHUNK,
					&ref));
	FUZZ_CHECK(ref.type == h->type && ref.codec == h->codec &&
		   ref.flags == h->flags && ref.stream == h->stream &&
		   ref.raw_len == h->raw_len && ref.wire_len == h->wire_len &&
		   ref.seq == h->seq && ref.csum == h->csum);
	FUZZ_CHECK(h->wire_len <= CHUNK);
	r->cur = NULL;
	/* the room is exactly the payload: the guards catch one byte more */
	r->room = h->wire_len;
	memset(r->buf, 0xa5, GUARD + CHUNK + GUARD);
	*dst = r->buf + GUARD;
	if (h->type != MW_FT_DATA)
		return 0;
	if ((h->stream & MW_STREAM_REVERSE) || h->stream >= STREAMS)
		return refuse(r);
	r->cur = &r->st[h->stream];
	if (mw_reasm_claim(&r->cur->ra, &r->pool, h->seq, &r->chunk, &why))
		return refuse(r);
	FUZZ_CHECK(r->chunk->seq == h->seq &&
		   r->chunk->state == MW_CHUNK_FILLING);
	FUZZ_CHECK(h->seq < r->cur->ra.granted);
	FUZZ_CHECK(!r->cur->ra.ended || h->seq < r->cur->ra.end);
	return 0;
}

static int on_frame(void *opaque, const struct mw_frame_hdr *h)
{
	struct run *r = opaque;
	const char *why = "";

	guards_check(r);
	FUZZ_CHECK(r->fs + MW_FRAME_HDR_LEN + h->wire_len <= r->len);
	FUZZ_CHECK(!memcmp(r->buf + GUARD, r->in + r->fs + MW_FRAME_HDR_LEN,
			   h->wire_len));
	r->fs += MW_FRAME_HDR_LEN + h->wire_len;
	if (h->type == MW_FT_END && h->stream < STREAMS) {
		struct mw_end e;

		if (mw_end_decode(r->buf + GUARD, h->wire_len, &e) ||
		    mw_reasm_end(&r->st[h->stream].ra, e.chunks, &why))
			return refuse(r);
	}
	if (r->cur) {
		mw_chunk_set_state(r->chunk, MW_CHUNK_READY);
		r->chunk = NULL; /* handed on: the window holds it */
		/* a writer that sometimes lags keeps slots READY out of order */
		if (rnd_next(r) & 1)
			writer_pop(r, r->cur);
	}
	return 0;
}

static const struct mw_frame_rd_ops ops = {
	.header = on_header,
	.frame = on_frame,
};

/*
 * Feeds the stream in pieces of random size: to the reader alone by
 * want/commit (c NULL), or through a plaintext connection the way the
 * channel loops do (recv where mw_conn_rx_room says, commit, drain).
 */
static int feed(struct run *r, struct mw_frame_rd *rd, struct mw_conn *c)
{
	size_t off = 0;
	int ret = 0;

	while (!ret && off < r->len) {
		size_t room, n = 1 + rnd_next(r) % (c ? 9000 : 700);
		uint8_t *dst = c ? mw_conn_rx_room(c, &room) :
				   mw_frame_rd_want(rd, &room);
		bool closed;

		FUZZ_CHECK(room > 0);
		if (n > room)
			n = room;
		if (n > r->len - off)
			n = r->len - off;
		memcpy(dst, r->in + off, n);
		off += n;
		if (!c)
			ret = mw_frame_rd_commit(rd, n);
		else if (!(ret = mw_conn_rx_commit(c, n)))
			ret = mw_conn_rx_drain(c, &closed);
	}
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[GUARD + CHUNK + GUARD];
	struct run r = { 0 };
	struct mw_frame_rd *rd;
	struct mw_frame_rd solo;
	struct mw_conn c;
	unsigned path, nslots, i;
	int ret;

	if (size < PREFIX)
		return 0;
	path = data[0] & 3;
	nslots = 1 + ((data[0] >> 2) & 15);
	r.rnd = 0x9e3779b9u ^ data[1];
	r.in = data + PREFIX;
	r.len = size - PREFIX;
	r.buf = buf;
	for (i = 0; i < STREAMS; i++)
		if (mw_reasm_init(&r.st[i].ra, nslots))
			abort();
	if (mw_chunk_pool_init(&r.pool, MW_CHUNK_RX, STREAMS * nslots, CHUNK, 0,
			       false))
		abort();
	if (path == 1 || path == 2) {
		if (mw_conn_init(&c, -1, "fuzz", NULL))
			abort();
		mw_conn_rx_start(&c, &ops, &r, CHUNK, "malformed frame header",
				 path == 2);
		rd = &c.rd;
		ret = feed(&r, rd, &c);
	} else {
		mw_frame_rd_init(&solo, CHUNK, &ops, &r, &r.err,
				 "malformed frame header");
		rd = &solo;
		ret = feed(&r, rd, NULL);
	}
	FUZZ_CHECK(ret <= 0);
	if (ret < 0) {
		size_t want;

		/* refused where the decode or a callback refused, and for good */
		if (!r.cb_refused) {
			struct mw_frame_hdr h;

			FUZZ_CHECK(r.fs + MW_FRAME_HDR_LEN <= r.len);
			FUZZ_CHECK(mw_frame_hdr_decode(r.in + r.fs,
						       MW_FRAME_HDR_LEN, CHUNK,
						       &h) != 0);
		}
		mw_frame_rd_want(rd, &want);
		FUZZ_CHECK(mw_frame_rd_commit(rd, 0) == ret);
	}
	for (i = 0; i < STREAMS; i++) {
		writer_pop(&r, &r.st[i]);
		FUZZ_CHECK(r.st[i].popped == r.st[i].ra.next);
		mw_reasm_destroy(&r.st[i].ra);
	}
	mw_chunk_pool_destroy(&r.pool);
	if (path == 1 || path == 2)
		mw_conn_destroy(&c);
	return 0;
}
