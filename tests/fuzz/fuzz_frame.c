/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the wire decoders of common/mw_wire.h. Every decoder reads
 * the same input from its first byte. What a decoder accepts must satisfy
 * the limits docs/protocol.md promises to its callers, and must encode
 * back to exactly the bytes it came from (every field is stored and every
 * reserved byte is checked to be zero, so decode is injective).
 * Input: the bytes; when there are at least 44, bytes 40..43 (big-endian)
 * are the max_payload bound handed to mw_frame_hdr_decode(), otherwise the
 * receiver's largest, MW_CHUNK_MAX.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "mw_wire.h"

static void frame_hdr(const uint8_t *p, size_t n)
{
	uint32_t maxp = n >= 44 ? mw_get_be32(p + 40) : MW_CHUNK_MAX;
	struct mw_frame_hdr h;
	uint8_t re[MW_FRAME_HDR_LEN];

	if (mw_frame_hdr_decode(p, n, maxp, &h))
		return;
	FUZZ_CHECK(n >= MW_FRAME_HDR_LEN);
	FUZZ_CHECK(h.type >= MW_FT_HELLO && h.type < MW_FT_MAX);
	FUZZ_CHECK(h.wire_len <= maxp);
	switch (h.type) {
	case MW_FT_HELLO:
		FUZZ_CHECK(h.wire_len == MW_HELLO_LEN);
		break;
	case MW_FT_HELLO_OK:
		FUZZ_CHECK(h.wire_len == MW_HELLO_OK_LEN);
		break;
	case MW_FT_END:
		FUZZ_CHECK(h.wire_len == MW_END_LEN);
		break;
	case MW_FT_ACK:
		FUZZ_CHECK(h.wire_len == MW_ACK_LEN);
		break;
	case MW_FT_ERROR:
		FUZZ_CHECK(h.wire_len <= MW_ERROR_MAX);
		break;
	case MW_FT_PROBE:
		FUZZ_CHECK(h.wire_len == MW_PROBE_LEN);
		break;
	case MW_FT_PROBE_OK:
		FUZZ_CHECK(h.wire_len == MW_PROBE_OK_LEN);
		break;
	case MW_FT_WINDOW:
		FUZZ_CHECK(h.wire_len == MW_WINDOW_LEN);
		break;
	case MW_FT_CHALLENGE:
		FUZZ_CHECK(h.wire_len == MW_JOIN_NONCE_LEN);
		break;
	case MW_FT_JOIN:
		FUZZ_CHECK(h.wire_len == MW_JOIN_TAG_LEN);
		break;
	case MW_FT_PING:
		FUZZ_CHECK(h.wire_len == 0);
		break;
	case MW_FT_CONFIRM:
		/* recv_chan.c takes the stream word as a reverse stream */
		FUZZ_CHECK(h.wire_len == 0 && (h.stream & MW_STREAM_REVERSE));
		break;
	case MW_FT_DATA:
		/* what recv.c relies on before it picks a buffer */
		FUZZ_CHECK(!(h.flags & ~MW_F_KNOWN));
		FUZZ_CHECK(h.raw_len > 0 && h.wire_len > 0);
		if (h.flags & MW_F_RAW)
			FUZZ_CHECK(h.wire_len == h.raw_len);
		else
			FUZZ_CHECK(h.wire_len < h.raw_len);
		break;
	}
	/* flags: DATA's own; END, OPEN, CLOSE only RESENT; others none */
	if (h.type == MW_FT_END || h.type == MW_FT_OPEN ||
	    h.type == MW_FT_CLOSE)
		FUZZ_CHECK(!h.flags || h.flags == MW_F_RESENT);
	else if (h.type != MW_FT_DATA)
		FUZZ_CHECK(!h.flags);
	mw_frame_hdr_encode(re, &h);
	FUZZ_CHECK(!memcmp(re, p, sizeof(re)));
	FUZZ_CHECK(mw_frame_type_name(h.type)[0] != 'U');
}

static void window(const uint8_t *p, size_t n)
{
	uint8_t re[MW_WINDOW_LEN];
	uint64_t w;

	if (mw_window_decode(p, n, &w))
		return;
	FUZZ_CHECK(n >= MW_WINDOW_LEN);
	mw_window_encode(re, w);
	FUZZ_CHECK(!memcmp(re, p, sizeof(re)));
}

static void hello(const uint8_t *p, size_t n)
{
	struct mw_hello h;
	uint8_t re[MW_HELLO_LEN];

	if (mw_hello_decode(p, n, &h))
		return;
	FUZZ_CHECK(n >= MW_HELLO_LEN);
	if (h.version != MW_PROTO_VERSION)
		return; /* only the version is decoded, for the rejection */
	FUZZ_CHECK(h.chan_count >= 1 && h.chan_count <= MW_CHANNELS_MAX);
	FUZZ_CHECK(h.chan_index < h.chan_count);
	FUZZ_CHECK(h.chunk_size >= MW_CHUNK_MIN &&
		   h.chunk_size <= MW_CHUNK_MAX);
	FUZZ_CHECK(h.window_chunks > 0 && !(h.flags & ~MW_HELLO_F_KNOWN));
	/* the page cache size comes with its flag, and only with it */
	FUZZ_CHECK(!(h.flags & MW_HELLO_F_PAGES) == !h.page_cache_slots);
	mw_hello_encode(re, &h);
	FUZZ_CHECK(!memcmp(re, p, sizeof(re)));
}

static void hello_ok(const uint8_t *p, size_t n)
{
	struct mw_hello_ok h;
	uint8_t re[MW_HELLO_OK_LEN];

	if (mw_hello_ok_decode(p, n, &h))
		return;
	FUZZ_CHECK(n >= MW_HELLO_OK_LEN);
	mw_hello_ok_encode(re, &h);
	FUZZ_CHECK(!memcmp(re, p, sizeof(re)));
}

static void end(const uint8_t *p, size_t n)
{
	struct mw_end e;
	uint8_t re[MW_END_LEN];

	if (mw_end_decode(p, n, &e))
		return;
	FUZZ_CHECK(n >= MW_END_LEN);
	/* every chunk holds 1 .. MW_CHUNK_MAX bytes */
	FUZZ_CHECK(e.chunks <= e.bytes);
	FUZZ_CHECK(e.bytes / MW_CHUNK_MAX <= e.chunks);
	mw_end_encode(re, &e);
	FUZZ_CHECK(!memcmp(re, p, sizeof(re)));
}

static void ack(const uint8_t *p, size_t n)
{
	struct mw_ack a;
	uint8_t re[MW_ACK_LEN];

	if (mw_ack_decode(p, n, &a))
		return;
	FUZZ_CHECK(n >= MW_ACK_LEN);
	mw_ack_encode(re, &a);
	FUZZ_CHECK(!memcmp(re, p, sizeof(re)));
}

static void probe(const uint8_t *p, size_t n)
{
	struct mw_probe pr;
	uint8_t re[MW_PROBE_LEN];

	if (mw_probe_decode(p, n, &pr))
		return;
	FUZZ_CHECK(n >= MW_PROBE_LEN);
	if (pr.version != MW_PROTO_VERSION)
		return; /* only the version is decoded, for the rejection */
	mw_probe_encode(re, &pr);
	FUZZ_CHECK(!memcmp(re, p, sizeof(re)));
}

static void probe_ok(const uint8_t *p, size_t n)
{
	struct mw_probe_ok ok;
	uint8_t re[MW_PROBE_OK_LEN];

	if (mw_probe_ok_decode(p, n, &ok))
		return;
	/* what send --probe holds against its settings */
	FUZZ_CHECK(n >= MW_PROBE_OK_LEN);
	FUZZ_CHECK(!(ok.flags & ~MW_PROBE_KNOWN));
	FUZZ_CHECK(ok.channels_max > 0 && ok.window > 0);
	FUZZ_CHECK(ok.chunk_max >= MW_CHUNK_MIN);
	mw_probe_ok_encode(re, &ok);
	FUZZ_CHECK(!memcmp(re, p, sizeof(re)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	frame_hdr(data, size);
	hello(data, size);
	hello_ok(data, size);
	end(data, size);
	ack(data, size);
	probe(data, size);
	probe_ok(data, size);
	window(data, size);
	return 0;
}
