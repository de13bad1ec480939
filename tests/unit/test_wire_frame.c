/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the wire format (common/mw_wire.c, docs/protocol.md): every
 * frame type and payload survives encode -> decode unchanged, the bytes sit
 * where the specification puts them, and every rejection the decoders make
 * is reached by a header or payload that breaks exactly one rule.
 * The stream frames (OPEN, WINDOW, CLOSE) are tested when the header has them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mw_err.h"
#include "mw_wire.h"

#define BIG_PAYLOAD (MW_CHUNK_MAX + 1024u)

static struct mw_frame_hdr data_hdr(void)
{
	struct mw_frame_hdr h = {
		.type = MW_FT_DATA,
		.codec = 2,
		.flags = 0,
		.stream = 0,
		.raw_len = 262144,
		.wire_len = 1000,
		.seq = 0x0102030405060708ull,
		.csum = 0xfedcba9876543210ull,
	};

	return h;
}

/* Encodes h, decodes it back with max payload max, returns the result. */
static int hdr_trip(const struct mw_frame_hdr *h, uint32_t max,
		    struct mw_frame_hdr *out)
{
	uint8_t raw[MW_FRAME_HDR_LEN];

	memset(out, 0xa5, sizeof(*out));
	mw_frame_hdr_encode(raw, h);
	return mw_frame_hdr_decode(raw, sizeof(raw), max, out);
}

static void assert_hdr_equal(const struct mw_frame_hdr *a,
			     const struct mw_frame_hdr *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->codec, b->codec);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->stream, b->stream);
	assert_int_equal(a->raw_len, b->raw_len);
	assert_int_equal(a->wire_len, b->wire_len);
	assert_true(a->seq == b->seq);
	assert_true(a->csum == b->csum);
}

static void hdr_layout_is_big_endian(void **state)
{
	struct mw_frame_hdr h = data_hdr();
	uint8_t raw[MW_FRAME_HDR_LEN];
	static const uint8_t want[MW_FRAME_HDR_LEN] = {
		0x4d, 0x57, 3,	  2,
		0,    0,    0,	  0, /* magic type codec flags rsv */
		0,    0,    0,	  0,
		0,    4,    0,	  0, /* stream raw_len */
		0,    0,    0x03, 0xe8,
		0,    0,    0,	  0, /* wire_len rsv */
		1,    2,    3,	  4,
		5,    6,    7,	  8, /* seq */
		0xfe, 0xdc, 0xba, 0x98,
		0x76, 0x54, 0x32, 0x10, /* csum */
	};

	(void)state;
	memset(raw, 0xee, sizeof(raw));
	mw_frame_hdr_encode(raw, &h);
	assert_memory_equal(raw, want, sizeof(want));
}

/* Control frames whose payload has one fixed length. */
static const struct {
	uint8_t type;
	uint32_t len;
} fixed_len[] = {
	{ MW_FT_HELLO, MW_HELLO_LEN },
	{ MW_FT_HELLO_OK, MW_HELLO_OK_LEN },
	{ MW_FT_END, MW_END_LEN },
	{ MW_FT_ACK, MW_ACK_LEN },
#ifdef MW_OPEN_LEN
	{ MW_FT_OPEN, MW_OPEN_LEN },
	{ MW_FT_WINDOW, MW_WINDOW_LEN },
	{ MW_FT_CLOSE, MW_CLOSE_LEN },
#endif
	{ MW_FT_CHALLENGE, MW_JOIN_NONCE_LEN },
	{ MW_FT_JOIN, MW_JOIN_TAG_LEN },
	{ MW_FT_PING, 0 },
	{ MW_FT_PROBE, MW_PROBE_LEN },
	{ MW_FT_PROBE_OK, MW_PROBE_OK_LEN },
};

#define FIXED_N (sizeof(fixed_len) / sizeof(fixed_len[0]))

static void hdr_roundtrip_every_type(void **state)
{
	static const uint32_t error_len[] = { 0, 17, MW_ERROR_MAX };
	struct mw_frame_hdr h, out;
	size_t i;

	(void)state;
	for (i = 0; i < FIXED_N + 3; i++) {
		memset(&h, 0, sizeof(h));
		h.type = i < FIXED_N ? fixed_len[i].type : MW_FT_ERROR;
		h.wire_len = i < FIXED_N ? fixed_len[i].len :
					   error_len[i - FIXED_N];
		h.stream = (uint32_t)i;
		h.seq = 1000 + i;
		assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), 0);
		assert_hdr_equal(&h, &out);
		assert_string_not_equal(mw_frame_type_name(h.type), "UNKNOWN");
	}
	assert_string_equal(mw_frame_type_name(0), "UNKNOWN");
	assert_string_equal(mw_frame_type_name(MW_FT_MAX), "UNKNOWN");
	assert_string_equal(mw_frame_type_name(MW_FT_DATA), "DATA");
}

static void hdr_roundtrip_data(void **state)
{
	struct mw_frame_hdr h = data_hdr(), out;

	(void)state;
	/* compressed: wire_len < raw_len */
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), 0);
	assert_hdr_equal(&h, &out);
	/* raw: wire_len == raw_len */
	h.flags = MW_F_RAW;
	h.codec = 0;
	h.wire_len = h.raw_len = MW_CHUNK_MAX;
	h.stream = MW_STREAM_REVERSE | 5;
	h.seq = UINT64_MAX;
	h.csum = 0;
	assert_int_equal(hdr_trip(&h, MW_CHUNK_MAX, &out), 0);
	assert_hdr_equal(&h, &out);
	/* smallest legal chunks */
	h.wire_len = h.raw_len = 1;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), 0);
	assert_hdr_equal(&h, &out);
	h.flags = 0;
	h.raw_len = 2;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), 0);
	assert_hdr_equal(&h, &out);
}

static void hdr_rejects_short_and_bad_magic(void **state)
{
	struct mw_frame_hdr h = data_hdr(), out;
	uint8_t raw[MW_FRAME_HDR_LEN];

	(void)state;
	mw_frame_hdr_encode(raw, &h);
	assert_int_equal(
		mw_frame_hdr_decode(raw, sizeof(raw), BIG_PAYLOAD, &out), 0);
	assert_int_equal(mw_frame_hdr_decode(raw, sizeof(raw) - 1, BIG_PAYLOAD,
					     &out),
			 -MW_E_PROTO);
	raw[0] ^= 0x01;
	assert_int_equal(mw_frame_hdr_decode(raw, sizeof(raw), BIG_PAYLOAD,
					     &out),
			 -MW_E_PROTO);
	raw[0] ^= 0x01;
	raw[1] = 0x58;
	assert_int_equal(mw_frame_hdr_decode(raw, sizeof(raw), BIG_PAYLOAD,
					     &out),
			 -MW_E_PROTO);
	memset(raw, 0, sizeof(raw));
	assert_int_equal(mw_frame_hdr_decode(raw, sizeof(raw), BIG_PAYLOAD,
					     &out),
			 -MW_E_PROTO);
}

static void hdr_rejects_bad_type(void **state)
{
	struct mw_frame_hdr h = data_hdr(), out;
	uint8_t raw[MW_FRAME_HDR_LEN];
	unsigned t;

	(void)state;
	mw_frame_hdr_encode(raw, &h);
	raw[2] = 0;
	assert_int_equal(mw_frame_hdr_decode(raw, sizeof(raw), BIG_PAYLOAD,
					     &out),
			 -MW_E_PROTO);
	for (t = MW_FT_MAX; t <= 0xff; t++) {
		raw[2] = (uint8_t)t;
		assert_int_equal(mw_frame_hdr_decode(raw, sizeof(raw),
						     BIG_PAYLOAD, &out),
				 -MW_E_PROTO);
	}
}

static void hdr_rejects_reserved_nonzero(void **state)
{
	struct mw_frame_hdr h = data_hdr(), out;
	uint8_t raw[MW_FRAME_HDR_LEN];
	static const unsigned rsv[] = { 6, 7, 20, 21, 22, 23 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rsv) / sizeof(rsv[0]); i++) {
		mw_frame_hdr_encode(raw, &h);
		raw[rsv[i]] = 0x01;
		assert_int_equal(mw_frame_hdr_decode(raw, sizeof(raw),
						     BIG_PAYLOAD, &out),
				 -MW_E_PROTO);
		raw[rsv[i]] = 0x80;
		assert_int_equal(mw_frame_hdr_decode(raw, sizeof(raw),
						     BIG_PAYLOAD, &out),
				 -MW_E_PROTO);
	}
}

static void hdr_rejects_wire_len_over_max(void **state)
{
	struct mw_frame_hdr h = data_hdr(), out;

	(void)state;
	h.flags = MW_F_RAW;
	h.raw_len = h.wire_len = 65536;
	assert_int_equal(hdr_trip(&h, 65536, &out), 0);
	assert_int_equal(hdr_trip(&h, 65535, &out), -MW_E_PROTO);
	assert_int_equal(hdr_trip(&h, 0, &out), -MW_E_PROTO);
	h.wire_len = h.raw_len = UINT32_MAX;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
	/* the bound applies to control frames as well */
	memset(&h, 0, sizeof(h));
	h.type = MW_FT_ERROR;
	h.wire_len = 100;
	assert_int_equal(hdr_trip(&h, 99, &out), -MW_E_PROTO);
	assert_int_equal(hdr_trip(&h, 100, &out), 0);
}

static void hdr_rejects_wrong_control_lengths(void **state)
{
	struct mw_frame_hdr h, out;
	size_t i;

	(void)state;
	for (i = 0; i < FIXED_N; i++) {
		memset(&h, 0, sizeof(h));
		h.type = fixed_len[i].type;
		h.wire_len = fixed_len[i].len;
		assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), 0);
		h.wire_len = fixed_len[i].len + 1;
		assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
		if (!fixed_len[i].len)
			continue;
		h.wire_len = fixed_len[i].len - 1;
		assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
		h.wire_len = 0;
		assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
	}
	memset(&h, 0, sizeof(h));
	h.type = MW_FT_ERROR;
	h.wire_len = MW_ERROR_MAX + 1;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
}

static void data_rejects_unknown_flags(void **state)
{
	struct mw_frame_hdr h = data_hdr(), out;
	unsigned bit;

	(void)state;
	for (bit = 0; bit < 16; bit++) {
		uint16_t f = (uint16_t)(1u << bit);

		if (f & MW_F_KNOWN)
			continue;
		h.flags = f;
		assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
		/* an unknown bit beside RAW is still refused */
		h.flags = f | MW_F_RAW;
		h.wire_len = h.raw_len;
		assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
		h = data_hdr();
	}
}

/* RESENT: on DATA beside the others, alone on END/OPEN/CLOSE, nowhere else */
static void resent_flag_rules(void **state)
{
	static const struct {
		uint8_t type;
		uint32_t len;
	} may[] = { { MW_FT_END, MW_END_LEN },
		    { MW_FT_OPEN, MW_OPEN_LEN },
		    { MW_FT_CLOSE, MW_CLOSE_LEN } };
	struct mw_frame_hdr h = data_hdr(), out;
	size_t i;

	(void)state;
	h.flags |= MW_F_RESENT;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), 0);
	assert_int_equal(out.flags, h.flags);
	for (i = 0; i < sizeof(may) / sizeof(may[0]); i++) {
		memset(&h, 0, sizeof(h));
		h.type = may[i].type;
		h.wire_len = may[i].len;
		h.flags = MW_F_RESENT;
		assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), 0);
		assert_int_equal(out.flags, MW_F_RESENT);
		h.flags = MW_F_RESENT | MW_F_RAW;
		assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
		h.flags = MW_F_RAW;
		assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
	}
	/* any flag on the other control frames */
	for (i = 0; i < FIXED_N; i++) {
		if (fixed_len[i].type == MW_FT_END ||
		    fixed_len[i].type == MW_FT_OPEN ||
		    fixed_len[i].type == MW_FT_CLOSE)
			continue;
		memset(&h, 0, sizeof(h));
		h.type = fixed_len[i].type;
		h.wire_len = fixed_len[i].len;
		h.flags = MW_F_RESENT;
		assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
	}
}

/* CONFIRM: no payload, and only for a reverse stream */
static void confirm_rules(void **state)
{
	struct mw_frame_hdr h = { .type = MW_FT_CONFIRM,
				  .stream = MW_STREAM_REVERSE | 5,
				  .seq = 12345 },
			    out;

	(void)state;
	assert_string_equal(mw_frame_type_name(MW_FT_CONFIRM), "CONFIRM");
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), 0);
	assert_hdr_equal(&h, &out);
	h.wire_len = 1;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
	h.wire_len = 0;
	h.stream = 5;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
}

static void window_payload(void **state)
{
	static const uint64_t t[] = { 0, 1, 0x0102030405060708ull, UINT64_MAX };
	uint8_t raw[MW_WINDOW_LEN];
	uint64_t w;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		mw_window_encode(raw, t[i]);
		assert_true(mw_get_be64(raw) == t[i]);
		w = ~t[i];
		assert_int_equal(mw_window_decode(raw, sizeof(raw), &w), 0);
		assert_true(w == t[i]);
	}
	assert_int_equal(mw_window_decode(raw, sizeof(raw) - 1, &w),
			 -MW_E_PROTO);
}

static void data_rejects_zero_lengths(void **state)
{
	struct mw_frame_hdr h = data_hdr(), out;

	(void)state;
	h.raw_len = 0;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
	h = data_hdr();
	h.wire_len = 0;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
	h.flags = MW_F_RAW;
	h.raw_len = h.wire_len = 0;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
}

static void data_rejects_raw_length_mismatch(void **state)
{
	struct mw_frame_hdr h = data_hdr(), out;

	(void)state;
	h.flags = MW_F_RAW;
	h.raw_len = 4096;
	h.wire_len = 4095;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
	h.wire_len = 4097;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
	h.wire_len = 4096;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), 0);
}

static void data_rejects_compressed_not_smaller(void **state)
{
	struct mw_frame_hdr h = data_hdr(), out;

	(void)state;
	h.raw_len = 4096;
	h.wire_len = 4096;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
	h.wire_len = 5000;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
	h.wire_len = 4095;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), 0);
	h.raw_len = 1;
	h.wire_len = 1;
	assert_int_equal(hdr_trip(&h, BIG_PAYLOAD, &out), -MW_E_PROTO);
}

/* ---- HELLO ---- */

static struct mw_hello good_hello(void)
{
	struct mw_hello h = {
		.version = MW_PROTO_VERSION,
		.chan_index = 3,
		.chan_count = 8,
		.codec = 2,
		.flags = 0,
		.chunk_size = 262144,
		.window_chunks = 128,
	};
	unsigned i;

	for (i = 0; i < MW_SESSION_ID_LEN; i++)
		h.session[i] = (uint8_t)(0x10 + i);
	return h;
}

static int hello_trip(const struct mw_hello *h, struct mw_hello *out)
{
	uint8_t raw[MW_HELLO_LEN];

	memset(out, 0xa5, sizeof(*out));
	mw_hello_encode(raw, h);
	return mw_hello_decode(raw, sizeof(raw), out);
}

static void hello_roundtrip(void **state)
{
	struct mw_hello h = good_hello(), out;
	uint8_t raw[MW_HELLO_LEN];

	(void)state;
	memset(raw, 0xee, sizeof(raw));
	mw_hello_encode(raw, &h);
	assert_memory_equal(raw, "MIGWIRE\0", 8);
	assert_int_equal(mw_get_be16(raw + 8), MW_PROTO_VERSION);
	assert_int_equal(mw_get_be16(raw + 10), 3);
	assert_int_equal(mw_get_be16(raw + 12), 8);
	assert_int_equal(raw[14], 2);
	assert_memory_equal(raw + 16, h.session, MW_SESSION_ID_LEN);
	assert_int_equal(mw_get_be32(raw + 32), 262144);
	assert_int_equal(mw_get_be32(raw + 36), 128);
	for (unsigned i = 40; i < MW_HELLO_LEN; i++)
		assert_int_equal(raw[i], 0);

	assert_int_equal(mw_hello_decode(raw, sizeof(raw), &out), 0);
	assert_int_equal(out.version, h.version);
	assert_int_equal(out.chan_index, h.chan_index);
	assert_int_equal(out.chan_count, h.chan_count);
	assert_int_equal(out.codec, h.codec);
	assert_int_equal(out.flags, 0);
	assert_memory_equal(out.session, h.session, MW_SESSION_ID_LEN);
	assert_int_equal(out.chunk_size, h.chunk_size);
	assert_int_equal(out.window_chunks, h.window_chunks);
	assert_int_equal(mw_hello_decode(raw, sizeof(raw) - 1, &out),
			 -MW_E_PROTO);

	/* the edges of every range are accepted */
	h.chan_count = MW_CHANNELS_MAX;
	h.chan_index = MW_CHANNELS_MAX - 1;
	h.chunk_size = MW_CHUNK_MIN;
	h.window_chunks = 1;
	assert_int_equal(hello_trip(&h, &out), 0);
	h.chan_count = 1;
	h.chan_index = 0;
	h.chunk_size = MW_CHUNK_MAX;
	h.window_chunks = UINT32_MAX;
	assert_int_equal(hello_trip(&h, &out), 0);
	assert_int_equal(out.window_chunks, UINT32_MAX);
}

static void hello_rejects_bad_magic(void **state)
{
	struct mw_hello h = good_hello(), out;
	uint8_t raw[MW_HELLO_LEN];
	unsigned i;

	(void)state;
	for (i = 0; i < 8; i++) {
		mw_hello_encode(raw, &h);
		raw[i] ^= 0x20;
		assert_int_equal(mw_hello_decode(raw, sizeof(raw), &out),
				 -MW_E_PROTO);
	}
}

static void hello_other_version_decodes(void **state)
{
	struct mw_hello h = good_hello(), out;

	(void)state;
	h.version = MW_PROTO_VERSION + 1;
	/* the rest need not even be valid: the caller names the version */
	h.chan_count = 0;
	assert_int_equal(hello_trip(&h, &out), 0);
	assert_int_equal(out.version, MW_PROTO_VERSION + 1);
	h.version = 0;
	assert_int_equal(hello_trip(&h, &out), 0);
	assert_int_equal(out.version, 0);
	h.version = 0xffff;
	assert_int_equal(hello_trip(&h, &out), 0);
	assert_int_equal(out.version, 0xffff);
}

static void hello_rejects_bad_channels(void **state)
{
	struct mw_hello h = good_hello(), out;

	(void)state;
	h.chan_count = 0;
	h.chan_index = 0;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
	h.chan_count = MW_CHANNELS_MAX + 1;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
	h.chan_count = 0xffff;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
	h.chan_count = 4;
	h.chan_index = 4;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
	h.chan_index = 0xffff;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
	h.chan_index = 3;
	assert_int_equal(hello_trip(&h, &out), 0);
}

static void hello_rejects_bad_chunk_and_window(void **state)
{
	struct mw_hello h = good_hello(), out;

	(void)state;
	h.chunk_size = MW_CHUNK_MIN - 1;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
	h.chunk_size = MW_CHUNK_MAX + 1;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
	h.chunk_size = 0;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
	h.chunk_size = UINT32_MAX;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
	h = good_hello();
	h.window_chunks = 0;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
}

static void hello_rejects_reserved_nonzero(void **state)
{
	struct mw_hello h = good_hello(), out;
	uint8_t raw[MW_HELLO_LEN];
	unsigned i;

	(void)state;
	/* flags byte: only MW_HELLO_F_TOKEN is defined */
	mw_hello_encode(raw, &h);
	raw[15] = 2;
	assert_int_equal(mw_hello_decode(raw, sizeof(raw), &out), -MW_E_PROTO);
	raw[15] = MW_HELLO_F_TOKEN;
	assert_int_equal(mw_hello_decode(raw, sizeof(raw), &out), 0);
	assert_int_equal(out.flags, MW_HELLO_F_TOKEN);
	h.flags = 0x80;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
	h.flags = 0;
	/* every reserved byte */
	for (i = 40; i < MW_HELLO_LEN; i++) {
		mw_hello_encode(raw, &h);
		raw[i] = 0x01;
		assert_int_equal(mw_hello_decode(raw, sizeof(raw), &out),
				 -MW_E_PROTO);
	}
}

/* ---- PROBE, PROBE_OK (send --probe) ---- */

static void probe_roundtrip_and_version(void **state)
{
	struct mw_probe pr = { .version = MW_PROTO_VERSION }, out;
	uint8_t raw[MW_PROBE_LEN];

	(void)state;
	mw_probe_encode(raw, &pr);
	assert_memory_equal(raw, MW_HELLO_MAGIC, 8);
	assert_int_equal(mw_probe_decode(raw, sizeof(raw), &out), 0);
	assert_int_equal(out.version, MW_PROTO_VERSION);
	assert_int_equal(mw_probe_decode(raw, sizeof(raw) - 1, &out),
			 -MW_E_PROTO);
	assert_int_equal(out.flags, 0);
	pr.flags = MW_PROBE_F_TOKEN;
	mw_probe_encode(raw, &pr);
	assert_int_equal(raw[10], MW_PROBE_F_TOKEN);
	assert_int_equal(mw_probe_decode(raw, sizeof(raw), &out), 0);
	assert_int_equal(out.flags, MW_PROBE_F_TOKEN);
	raw[10] = 0x80; /* an unknown flag */
	assert_int_equal(mw_probe_decode(raw, sizeof(raw), &out), -MW_E_PROTO);
	pr.flags = 0;
	mw_probe_encode(raw, &pr);
	raw[15] = 1; /* reserved */
	assert_int_equal(mw_probe_decode(raw, sizeof(raw), &out), -MW_E_PROTO);
	/* another version decodes, so the receiver can name it */
	pr.version = 1;
	mw_probe_encode(raw, &pr);
	raw[15] = 1;
	assert_int_equal(mw_probe_decode(raw, sizeof(raw), &out), 0);
	assert_int_equal(out.version, 1);
	raw[0] = 'X';
	assert_int_equal(mw_probe_decode(raw, sizeof(raw), &out), -MW_E_PROTO);
}

static void probe_ok_roundtrip_and_limits(void **state)
{
	struct mw_probe_ok ok = { .version = MW_PROTO_VERSION,
				  .flags = MW_PROBE_BUSY,
				  .endpoints = 3,
				  .channels_max = 64,
				  .chunk_max = MW_CHUNK_MAX,
				  .window = 1ull << 33 },
			   out;
	uint8_t raw[MW_PROBE_OK_LEN];

	(void)state;
	mw_probe_ok_encode(raw, &ok);
	assert_int_equal(mw_get_be64(raw + 12), 1ull << 33);
	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(mw_probe_ok_decode(raw, sizeof(raw), &out), 0);
	assert_memory_equal(&out.window, &ok.window, sizeof(ok.window));
	assert_int_equal(out.flags, MW_PROBE_BUSY);
	assert_int_equal(out.endpoints, 3);
	assert_int_equal(out.channels_max, 64);
	assert_int_equal(out.chunk_max, MW_CHUNK_MAX);
	raw[2] = 0x80; /* unknown flag */
	assert_int_equal(mw_probe_ok_decode(raw, sizeof(raw), &out),
			 -MW_E_PROTO);
	ok.window = 0; /* a receiver without memory cannot be */
	mw_probe_ok_encode(raw, &ok);
	assert_int_equal(mw_probe_ok_decode(raw, sizeof(raw), &out),
			 -MW_E_PROTO);
	ok.window = 1;
	mw_probe_ok_encode(raw, &ok);
	raw[31] = 1; /* reserved */
	assert_int_equal(mw_probe_ok_decode(raw, sizeof(raw), &out),
			 -MW_E_PROTO);
}

/* --pages: the flag comes with its cache size (bytes 60..63), and only
 * with it */
static void hello_pages_roundtrip(void **state)
{
	struct mw_hello h = good_hello(), out;
	uint8_t raw[MW_HELLO_LEN];

	(void)state;
	h.flags = MW_HELLO_F_PAGES;
	h.page_cache_slots = 16384;
	mw_hello_encode(raw, &h);
	assert_int_equal(raw[15], MW_HELLO_F_PAGES);
	assert_int_equal(mw_get_be32(raw + 60), 16384);
	assert_int_equal(mw_hello_decode(raw, sizeof(raw), &out), 0);
	assert_int_equal(out.flags, MW_HELLO_F_PAGES);
	assert_int_equal(out.page_cache_slots, 16384);
	h.page_cache_slots = 0;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
	h.flags = 0;
	h.page_cache_slots = 1;
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
}

static void hello_resume_flag(void **state)
{
	struct mw_hello h = good_hello(), out;

	(void)state;
	h.flags = MW_HELLO_F_RESUME | MW_HELLO_F_TOKEN;
	assert_int_equal(hello_trip(&h, &out), 0);
	assert_int_equal(out.flags, h.flags);
	h.flags = 0x08; /* the next bit is not known */
	assert_int_equal(hello_trip(&h, &out), -MW_E_PROTO);
}

/* ---- HELLO_OK, END, ACK (and the stream frames) ---- */

static void hello_ok_roundtrip(void **state)
{
	struct mw_hello_ok h = { .version = MW_PROTO_VERSION,
				 .chan_index = 63 },
			   out;
	uint8_t raw[MW_HELLO_OK_LEN];
	unsigned i;

	(void)state;
	for (i = 0; i < MW_SESSION_ID_LEN; i++)
		h.session[i] = (uint8_t)(0xf0 - i);
#ifdef MW_OPEN_LEN
	h.stream_window = 77;
#endif
	mw_hello_ok_encode(raw, &h);
	assert_int_equal(mw_get_be16(raw), MW_PROTO_VERSION);
	assert_int_equal(mw_get_be16(raw + 2), 63);
	assert_memory_equal(raw + 8, h.session, MW_SESSION_ID_LEN);
	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(mw_hello_ok_decode(raw, sizeof(raw), &out), 0);
	assert_int_equal(out.version, h.version);
	assert_int_equal(out.chan_index, h.chan_index);
	assert_memory_equal(out.session, h.session, MW_SESSION_ID_LEN);
	assert_memory_equal(out.secret, h.secret, MW_RESUME_SECRET_LEN);
	/* the resume secret follows the session id, all 32 bytes of it */
	for (i = 0; i < MW_RESUME_SECRET_LEN; i++)
		h.secret[i] = (uint8_t)(i * 7 + 1);
	mw_hello_ok_encode(raw, &h);
	assert_memory_equal(raw + 24, h.secret, MW_RESUME_SECRET_LEN);
	assert_int_equal(mw_hello_ok_decode(raw, sizeof(raw), &out), 0);
	assert_memory_equal(out.secret, h.secret, MW_RESUME_SECRET_LEN);
#ifdef MW_OPEN_LEN
	assert_int_equal(out.stream_window, 77);
	h.stream_window = 0;
	mw_hello_ok_encode(raw, &h);
	assert_int_equal(mw_hello_ok_decode(raw, sizeof(raw), &out),
			 -MW_E_PROTO);
#else
	raw[5] = 1; /* reserved */
	assert_int_equal(mw_hello_ok_decode(raw, sizeof(raw), &out),
			 -MW_E_PROTO);
#endif
	assert_int_equal(mw_hello_ok_decode(raw, sizeof(raw) - 1, &out),
			 -MW_E_PROTO);
}

static void end_roundtrip(void **state)
{
	static const struct mw_end t[] = {
		{ 0, 0 },
		{ 1, 1 },
		{ 4194304, 16 },
		{ MW_CHUNK_MAX, 1 },
		{ 1000, 1000 },
		{ UINT64_MAX, UINT64_MAX },
		{ UINT64_MAX, UINT64_MAX / MW_CHUNK_MAX + 1 },
	};
	uint8_t raw[MW_END_LEN];
	struct mw_end out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		mw_end_encode(raw, &t[i]);
		assert_true(mw_get_be64(raw) == t[i].bytes);
		assert_true(mw_get_be64(raw + 8) == t[i].chunks);
		memset(&out, 0xa5, sizeof(out));
		assert_int_equal(mw_end_decode(raw, sizeof(raw), &out), 0);
		assert_true(out.bytes == t[i].bytes);
		assert_true(out.chunks == t[i].chunks);
	}
	assert_int_equal(mw_end_decode(raw, sizeof(raw) - 1, &out),
			 -MW_E_PROTO);
}

static void end_rejects_impossible_totals(void **state)
{
	static const struct mw_end bad[] = {
		{ 0, 1 }, /* a chunk holds at least one byte */
		{ 10, 11 },
		{ 1, UINT64_MAX },
		/* chunks hold at most MW_CHUNK_MAX bytes */
		{ 2ull * MW_CHUNK_MAX, 1 },
		{ 1ull * MW_CHUNK_MAX, 0 },
		{ 5, 0 },
		{ 1ull * MW_CHUNK_MAX + 1, 1 },
		{ UINT64_MAX, UINT64_MAX / MW_CHUNK_MAX },
	};
	uint8_t raw[MW_END_LEN];
	struct mw_end out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mw_end_encode(raw, &bad[i]);
		assert_int_equal(mw_end_decode(raw, sizeof(raw), &out),
				 -MW_E_PROTO);
	}
}

static void ack_roundtrip(void **state)
{
	struct mw_ack a = { .bytes = 0x1122334455667788ull, .chunks = 99 }, out;
	uint8_t raw[MW_ACK_LEN];

	(void)state;
	mw_ack_encode(raw, &a);
	assert_true(mw_get_be64(raw) == a.bytes);
	assert_true(mw_get_be64(raw + 8) == 99);
	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(mw_ack_decode(raw, sizeof(raw), &out), 0);
	assert_true(out.bytes == a.bytes);
	assert_true(out.chunks == a.chunks);
	assert_int_equal(mw_ack_decode(raw, sizeof(raw) - 1, &out),
			 -MW_E_PROTO);
}

#ifdef MW_OPEN_LEN
static void stream_frames_roundtrip(void **state)
{
	struct mw_open o = { .endpoint = 0x0102, .kind = MW_SK_MAIN }, oo;
	struct mw_close c = { .streams = 3, .bytes = 1ull << 33, .chunks = 7 },
			co;
	uint8_t raw[MW_CLOSE_LEN > MW_OPEN_LEN ? MW_CLOSE_LEN : MW_OPEN_LEN];

	(void)state;
	mw_open_encode(raw, &o);
	assert_int_equal(mw_open_decode(raw, MW_OPEN_LEN, &oo), 0);
	assert_int_equal(oo.endpoint, o.endpoint);
	assert_int_equal(oo.kind, o.kind);
	assert_int_equal(mw_open_decode(raw, MW_OPEN_LEN - 1, &oo),
			 -MW_E_PROTO);
	raw[MW_OPEN_LEN - 1] = 1; /* reserved */
	assert_int_equal(mw_open_decode(raw, MW_OPEN_LEN, &oo), -MW_E_PROTO);
	o.kind = MW_SK_MAX;
	mw_open_encode(raw, &o);
	assert_int_equal(mw_open_decode(raw, MW_OPEN_LEN, &oo), -MW_E_PROTO);

	mw_close_encode(raw, &c);
	assert_int_equal(mw_close_decode(raw, MW_CLOSE_LEN, &co), 0);
	assert_int_equal(co.streams, 3);
	assert_true(co.bytes == c.bytes);
	assert_true(co.chunks == c.chunks);
	assert_int_equal(mw_close_decode(raw, MW_CLOSE_LEN - 1, &co),
			 -MW_E_PROTO);
	raw[5] = 1; /* reserved */
	assert_int_equal(mw_close_decode(raw, MW_CLOSE_LEN, &co), -MW_E_PROTO);
	c.streams = MW_STREAMS_MAX + 1;
	mw_close_encode(raw, &c);
	assert_int_equal(mw_close_decode(raw, MW_CLOSE_LEN, &co), -MW_E_PROTO);
	c.streams = 1;
	c.chunks = c.bytes + 1;
	mw_close_encode(raw, &c);
	assert_int_equal(mw_close_decode(raw, MW_CLOSE_LEN, &co), -MW_E_PROTO);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hdr_layout_is_big_endian),
		cmocka_unit_test(hdr_roundtrip_every_type),
		cmocka_unit_test(hdr_roundtrip_data),
		cmocka_unit_test(hdr_rejects_short_and_bad_magic),
		cmocka_unit_test(hdr_rejects_bad_type),
		cmocka_unit_test(hdr_rejects_reserved_nonzero),
		cmocka_unit_test(hdr_rejects_wire_len_over_max),
		cmocka_unit_test(hdr_rejects_wrong_control_lengths),
		cmocka_unit_test(data_rejects_unknown_flags),
		cmocka_unit_test(resent_flag_rules),
		cmocka_unit_test(confirm_rules),
		cmocka_unit_test(window_payload),
		cmocka_unit_test(data_rejects_zero_lengths),
		cmocka_unit_test(data_rejects_raw_length_mismatch),
		cmocka_unit_test(data_rejects_compressed_not_smaller),
		cmocka_unit_test(hello_roundtrip),
		cmocka_unit_test(hello_rejects_bad_magic),
		cmocka_unit_test(hello_other_version_decodes),
		cmocka_unit_test(hello_rejects_bad_channels),
		cmocka_unit_test(hello_rejects_bad_chunk_and_window),
		cmocka_unit_test(hello_rejects_reserved_nonzero),
		cmocka_unit_test(hello_pages_roundtrip),
		cmocka_unit_test(hello_resume_flag),
		cmocka_unit_test(hello_ok_roundtrip),
		cmocka_unit_test(probe_roundtrip_and_version),
		cmocka_unit_test(probe_ok_roundtrip_and_limits),
		cmocka_unit_test(end_roundtrip),
		cmocka_unit_test(end_rejects_impossible_totals),
		cmocka_unit_test(ack_roundtrip),
#ifdef MW_OPEN_LEN
		cmocka_unit_test(stream_frames_roundtrip),
#endif
	};

	return cmocka_run_group_tests_name("wire/frame", tests, NULL, NULL);
}
