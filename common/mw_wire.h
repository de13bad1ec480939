/* SPDX-License-Identifier: MIT */
/*
 * The wire format of docs/protocol.md: frame header, HELLO, END and ACK
 * payloads. Everything is big-endian and explicitly encoded; wire bytes are
 * hostile until a decode function has accepted them, so nothing here ever
 * casts a buffer to a struct.
 */
#ifndef MW_WIRE_H
#define MW_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define MW_PROTO_VERSION 3
#define MW_FRAME_MAGIC 0x4d57u /* "MW" */
#define MW_FRAME_HDR_LEN 40
#define MW_HELLO_MAGIC "MIGWIRE" /* 7 chars + NUL = 8 bytes on the wire */
#define MW_HELLO_LEN 64
#define MW_HELLO_OK_LEN 56
#define MW_END_LEN 16
#define MW_ACK_LEN 16
#define MW_OPEN_LEN 8
#define MW_CLOSE_LEN 24
#define MW_PROBE_LEN 16
#define MW_PROBE_OK_LEN 32
#define MW_ERROR_MAX 1024
#define MW_SESSION_ID_LEN 16
#define MW_JOIN_NONCE_LEN 32	/* CHALLENGE payload */
#define MW_JOIN_TAG_LEN 32	/* JOIN payload: HMAC-SHA256 */
#define MW_RESUME_SECRET_LEN 32 /* HELLO_OK: the session's resume key */
#define MW_WINDOW_LEN 8		/* WINDOW payload: be64 written */

/* Limits every receiver enforces before allocating anything. */
#define MW_CHUNK_MIN 4096u
#define MW_CHUNK_MAX (16u << 20)
#define MW_CHANNELS_MAX 64u
#define MW_STREAMS_MAX 64u
#define MW_REVERSE_MAX (64u << 10) /* largest reverse-direction chunk */

enum mw_frame_type {
	MW_FT_HELLO = 1,     /* sender -> receiver, first frame of a channel */
	MW_FT_HELLO_OK = 2,  /* receiver -> sender: channel admitted */
	MW_FT_DATA = 3,	     /* one chunk of a stream */
	MW_FT_END = 4,	     /* a stream direction is complete: totals */
	MW_FT_ACK = 5,	     /* receiver -> sender: output flushed and closed */
	MW_FT_ERROR = 6,     /* either way: the session failed, text follows */
	MW_FT_OPEN = 7,	     /* sender -> receiver: a stream starts */
	MW_FT_WINDOW = 8,    /* receiver -> sender: credit for a stream */
	MW_FT_CLOSE = 9,     /* sender -> receiver: no more streams; totals */
	MW_FT_PROBE = 10,    /* sender -> receiver instead of HELLO: a check */
	MW_FT_PROBE_OK = 11, /* receiver -> sender: what it would accept */
	MW_FT_CHALLENGE = 12, /* receiver -> sender: nonce for the join proof */
	MW_FT_JOIN = 13,      /* sender -> receiver: the join proof */
	MW_FT_PING = 14,      /* either way: heartbeat of an idle channel */
	MW_FT_CONFIRM = 15,   /* sender -> receiver: reverse chunks accepted */
	MW_FT_MAX
};

/* DATA flags */
#define MW_F_RAW 0x0001u   /* payload is the raw bytes (did not shrink) */
#define MW_F_PAGES 0x0002u /* raw bytes are a --pages op stream (mw_pages.h) */
/* DATA, END, OPEN, CLOSE: sent again on a resumed channel, so it may have
 * arrived before (docs/protocol.md, "Resume") */
#define MW_F_RESENT 0x0004u
#define MW_F_KNOWN (MW_F_RAW | MW_F_PAGES | MW_F_RESENT)

/* HELLO flags */
#define MW_HELLO_F_TOKEN 0x01u /* the sender holds a --join-token */
#define MW_HELLO_F_PAGES 0x02u /* --pages: page_cache_slots is set */
/* this connection resumes channel chan_index of the live session */
#define MW_HELLO_F_RESUME 0x04u
#define MW_HELLO_F_KNOWN \
	(MW_HELLO_F_TOKEN | MW_HELLO_F_PAGES | MW_HELLO_F_RESUME)

/* stream word: bit 31 is the direction, bits 0-30 the stream id */
#define MW_STREAM_REVERSE 0x80000000u
#define MW_STREAM_ID_MASK 0x7fffffffu

struct mw_frame_hdr {
	uint8_t type;
	uint8_t codec;
	uint16_t flags;
	uint32_t stream;
	uint32_t raw_len;
	uint32_t wire_len; /* payload bytes that follow the header */
	uint64_t seq;
	uint64_t csum; /* XXH3-64 of the raw bytes (DATA) */
};

struct mw_hello {
	uint16_t version;
	uint16_t chan_index;
	uint16_t chan_count;
	uint8_t codec;
	uint8_t flags;
	uint8_t session[MW_SESSION_ID_LEN];
	uint32_t chunk_size;
	uint32_t window_chunks;
	uint32_t page_cache_slots; /* MW_HELLO_F_PAGES: 4 KiB cache slots */
};

struct mw_hello_ok {
	uint16_t version;
	uint16_t chan_index;
	uint32_t stream_window; /* chunks of credit each stream starts with */
	uint8_t session[MW_SESSION_ID_LEN];
	/* the key of every resume proof of the session: random, chosen by
	 * the receiver when the session is fixed, the same on every channel */
	uint8_t secret[MW_RESUME_SECRET_LEN];
};

/* Kinds of QEMU connection a stream carries (stats and logs only). */
enum mw_stream_kind {
	MW_SK_UNKNOWN = 0,
	MW_SK_EXEC = 1,	   /* stdin/stdout of an exec: URI */
	MW_SK_MAIN = 2,	   /* QEMU's main migration channel ("QEVM") */
	MW_SK_MULTIFD = 3, /* a multifd channel */
	MW_SK_PREEMPT = 4, /* postcopy preempt channel */
	MW_SK_NBD = 5,	   /* an NBD connection (copy-storage) */
	MW_SK_MAX
};

struct mw_open {
	uint16_t endpoint; /* index of the --listen / --connect pair */
	uint8_t kind;
};

struct mw_close {
	uint32_t streams; /* streams the session carried */
	uint64_t bytes;	  /* forward raw bytes over all streams */
	uint64_t chunks;  /* forward chunks over all streams */
};

/* PROBE: "would you take my session?" without starting one (preflight) */
struct mw_probe {
	uint16_t version;
	uint8_t flags; /* MW_PROBE_F_* */
};

/* PROBE flags */
#define MW_PROBE_F_TOKEN 0x01u /* the prober holds a join token */
#define MW_PROBE_F_KNOWN (MW_PROBE_F_TOKEN)

/* PROBE_OK flags */
#define MW_PROBE_BUSY 0x01u /* a session has already started */
#define MW_PROBE_KNOWN (MW_PROBE_BUSY)

struct mw_probe_ok {
	uint16_t version;
	uint8_t flags;	    /* MW_PROBE_* */
	uint16_t endpoints; /* recv --connect endpoints; 0: exec: mode */
	uint16_t channels_max;
	uint32_t chunk_max;
	uint64_t window; /* the receiver's --window, bytes */
};

struct mw_end {
	uint64_t bytes;	 /* raw bytes in the stream direction */
	uint64_t chunks; /* DATA frames in the stream direction */
};

struct mw_ack {
	uint64_t bytes;	 /* raw bytes written to the output */
	uint64_t chunks; /* chunks written */
};

void mw_frame_hdr_encode(uint8_t *p, const struct mw_frame_hdr *h);
/*
 * Accepts exactly MW_FRAME_HDR_LEN bytes at p. Checks magic, type, that
 * reserved fields are zero, and that wire_len fits max_payload (the caller's
 * bound for this session). Returns 0 or -MW_E_PROTO.
 */
int mw_frame_hdr_decode(const uint8_t *p, size_t n, uint32_t max_payload,
			struct mw_frame_hdr *out);

void mw_hello_encode(uint8_t *p, const struct mw_hello *h);
/* Checks the magic and the ranges of MW_CHUNK_*, MW_CHANNELS_MAX.
 * A different protocol version decodes (out->version says which) so the
 * caller can name it in its rejection. Returns 0 or -MW_E_PROTO. */
int mw_hello_decode(const uint8_t *p, size_t n, struct mw_hello *out);

void mw_hello_ok_encode(uint8_t *p, const struct mw_hello_ok *h);
int mw_hello_ok_decode(const uint8_t *p, size_t n, struct mw_hello_ok *out);

void mw_end_encode(uint8_t *p, const struct mw_end *e);
int mw_end_decode(const uint8_t *p, size_t n, struct mw_end *out);
void mw_ack_encode(uint8_t *p, const struct mw_ack *a);
int mw_ack_decode(const uint8_t *p, size_t n, struct mw_ack *out);

/* WINDOW: every chunk of the stream below written is on the destination
 * (the header's seq stays the credit limit). */
void mw_window_encode(uint8_t *p, uint64_t written);
int mw_window_decode(const uint8_t *p, size_t n, uint64_t *written);

void mw_open_encode(uint8_t *p, const struct mw_open *o);
int mw_open_decode(const uint8_t *p, size_t n, struct mw_open *out);
void mw_close_encode(uint8_t *p, const struct mw_close *c);
int mw_close_decode(const uint8_t *p, size_t n, struct mw_close *out);

void mw_probe_encode(uint8_t *p, const struct mw_probe *pr);
/* Like mw_hello_decode: another version decodes, for the caller to name. */
int mw_probe_decode(const uint8_t *p, size_t n, struct mw_probe *out);
void mw_probe_ok_encode(uint8_t *p, const struct mw_probe_ok *ok);
int mw_probe_ok_decode(const uint8_t *p, size_t n, struct mw_probe_ok *out);

const char *mw_frame_type_name(unsigned type);
const char *mw_stream_kind_name(unsigned kind);

static inline void mw_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void mw_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void mw_put_be64(uint8_t *p, uint64_t v)
{
	mw_put_be32(p, (uint32_t)(v >> 32));
	mw_put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t mw_get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t mw_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t mw_get_be64(const uint8_t *p)
{
	return (uint64_t)mw_get_be32(p) << 32 | mw_get_be32(p + 4);
}

#endif
