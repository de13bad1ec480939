/* SPDX-License-Identifier: MIT */
/*
 * Encoders and decoders for the frames of docs/protocol.md. Pure functions,
 * any thread. Decoders reject anything the specification does not allow, so
 * the callers may trust every field they get back.
 */
#include "mw_wire.h"

#include <errno.h>
#include <string.h>

#include "mw_err.h"

static int all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return 0;
	return 1;
}

void mw_frame_hdr_encode(uint8_t *p, const struct mw_frame_hdr *h)
{
	mw_put_be16(p, MW_FRAME_MAGIC);
	p[2] = h->type;
	p[3] = h->codec;
	mw_put_be16(p + 4, h->flags);
	mw_put_be16(p + 6, 0);
	mw_put_be32(p + 8, h->stream);
	mw_put_be32(p + 12, h->raw_len);
	mw_put_be32(p + 16, h->wire_len);
	mw_put_be32(p + 20, 0);
	mw_put_be64(p + 24, h->seq);
	mw_put_be64(p + 32, h->csum);
}

int mw_frame_hdr_decode(const uint8_t *p, size_t n, uint32_t max_payload,
			struct mw_frame_hdr *out)
{
	if (n < MW_FRAME_HDR_LEN || mw_get_be16(p) != MW_FRAME_MAGIC)
		return -MW_E_PROTO;
	if (p[2] == 0 || p[2] >= MW_FT_MAX)
		return -MW_E_PROTO;
	if (mw_get_be16(p + 6) || mw_get_be32(p + 20))
		return -MW_E_PROTO;
	out->type = p[2];
	out->codec = p[3];
	out->flags = mw_get_be16(p + 4);
	out->stream = mw_get_be32(p + 8);
	out->raw_len = mw_get_be32(p + 12);
	out->wire_len = mw_get_be32(p + 16);
	out->seq = mw_get_be64(p + 24);
	out->csum = mw_get_be64(p + 32);
	if (out->wire_len > max_payload)
		return -MW_E_PROTO;
	/* only DATA has flags of its own; END, OPEN and CLOSE may say that
	 * a resumed channel sends them again */
	if (out->type != MW_FT_DATA && out->flags &&
	    (out->flags != MW_F_RESENT ||
	     (out->type != MW_FT_END && out->type != MW_FT_OPEN &&
	      out->type != MW_FT_CLOSE)))
		return -MW_E_PROTO;
	switch (out->type) {
	case MW_FT_HELLO:
		return out->wire_len == MW_HELLO_LEN ? 0 : -MW_E_PROTO;
	case MW_FT_HELLO_OK:
		return out->wire_len == MW_HELLO_OK_LEN ? 0 : -MW_E_PROTO;
	case MW_FT_END:
		return out->wire_len == MW_END_LEN ? 0 : -MW_E_PROTO;
	case MW_FT_ACK:
		return out->wire_len == MW_ACK_LEN ? 0 : -MW_E_PROTO;
	case MW_FT_ERROR:
		return out->wire_len <= MW_ERROR_MAX ? 0 : -MW_E_PROTO;
	case MW_FT_OPEN:
		return out->wire_len == MW_OPEN_LEN ? 0 : -MW_E_PROTO;
	case MW_FT_WINDOW:
		return out->wire_len == MW_WINDOW_LEN ? 0 : -MW_E_PROTO;
	case MW_FT_CONFIRM:
		/* confirms reverse chunks: the stream word says so */
		return out->wire_len == 0 && (out->stream & MW_STREAM_REVERSE) ?
			       0 :
			       -MW_E_PROTO;
	case MW_FT_CLOSE:
		return out->wire_len == MW_CLOSE_LEN ? 0 : -MW_E_PROTO;
	case MW_FT_CHALLENGE:
		return out->wire_len == MW_JOIN_NONCE_LEN ? 0 : -MW_E_PROTO;
	case MW_FT_JOIN:
		return out->wire_len == MW_JOIN_TAG_LEN ? 0 : -MW_E_PROTO;
	case MW_FT_PING:
		return out->wire_len == 0 ? 0 : -MW_E_PROTO;
	case MW_FT_PROBE:
		return out->wire_len == MW_PROBE_LEN ? 0 : -MW_E_PROTO;
	case MW_FT_PROBE_OK:
		return out->wire_len == MW_PROBE_OK_LEN ? 0 : -MW_E_PROTO;
	case MW_FT_DATA:
		if (out->flags & ~MW_F_KNOWN)
			return -MW_E_PROTO;
		if (out->raw_len == 0 || out->wire_len == 0)
			return -MW_E_PROTO;
		/* a raw payload is the chunk itself */
		if ((out->flags & MW_F_RAW) && out->wire_len != out->raw_len)
			return -MW_E_PROTO;
		if (!(out->flags & MW_F_RAW) && out->wire_len >= out->raw_len)
			return -MW_E_PROTO;
		return 0;
	}
	return -MW_E_PROTO;
}

void mw_hello_encode(uint8_t *p, const struct mw_hello *h)
{
	memset(p, 0, MW_HELLO_LEN);
	memcpy(p, MW_HELLO_MAGIC, 8);
	mw_put_be16(p + 8, h->version);
	mw_put_be16(p + 10, h->chan_index);
	mw_put_be16(p + 12, h->chan_count);
	p[14] = h->codec;
	p[15] = h->flags;
	memcpy(p + 16, h->session, MW_SESSION_ID_LEN);
	mw_put_be32(p + 32, h->chunk_size);
	mw_put_be32(p + 36, h->window_chunks);
	mw_put_be32(p + 60, h->page_cache_slots);
}

/*
 * HELLO and PROBE open with the magic and the version. 1: decoded, and of
 * another version, which the caller rejects by name (so only the version
 * is decoded); 0: go on; -MW_E_PROTO.
 */
static int magic_version(const uint8_t *p, size_t n, size_t len, uint16_t *v)
{
	if (n < len || memcmp(p, MW_HELLO_MAGIC, 8))
		return -MW_E_PROTO;
	*v = mw_get_be16(p + 8);
	return *v != MW_PROTO_VERSION;
}

int mw_hello_decode(const uint8_t *p, size_t n, struct mw_hello *out)
{
	int ret = magic_version(p, n, MW_HELLO_LEN, &out->version);

	if (ret)
		return ret < 0 ? ret : 0;
	out->chan_index = mw_get_be16(p + 10);
	out->chan_count = mw_get_be16(p + 12);
	out->codec = p[14];
	out->flags = p[15];
	memcpy(out->session, p + 16, MW_SESSION_ID_LEN);
	out->chunk_size = mw_get_be32(p + 32);
	out->window_chunks = mw_get_be32(p + 36);
	out->page_cache_slots = mw_get_be32(p + 60);
	if (!all_zero(p + 40, MW_HELLO_LEN - 44) ||
	    (out->flags & ~MW_HELLO_F_KNOWN))
		return -MW_E_PROTO;
	/* the cache size comes with the flag, and only with it */
	if (!(out->flags & MW_HELLO_F_PAGES) != !out->page_cache_slots)
		return -MW_E_PROTO;
	if (out->chan_count == 0 || out->chan_count > MW_CHANNELS_MAX ||
	    out->chan_index >= out->chan_count)
		return -MW_E_PROTO;
	if (out->chunk_size < MW_CHUNK_MIN || out->chunk_size > MW_CHUNK_MAX)
		return -MW_E_PROTO;
	if (out->window_chunks == 0)
		return -MW_E_PROTO;
	return 0;
}

void mw_hello_ok_encode(uint8_t *p, const struct mw_hello_ok *h)
{
	memset(p, 0, MW_HELLO_OK_LEN);
	mw_put_be16(p, h->version);
	mw_put_be16(p + 2, h->chan_index);
	mw_put_be32(p + 4, h->stream_window);
	memcpy(p + 8, h->session, MW_SESSION_ID_LEN);
	memcpy(p + 24, h->secret, MW_RESUME_SECRET_LEN);
}

int mw_hello_ok_decode(const uint8_t *p, size_t n, struct mw_hello_ok *out)
{
	if (n < MW_HELLO_OK_LEN)
		return -MW_E_PROTO;
	out->version = mw_get_be16(p);
	out->chan_index = mw_get_be16(p + 2);
	out->stream_window = mw_get_be32(p + 4);
	if (out->stream_window == 0)
		return -MW_E_PROTO;
	memcpy(out->session, p + 8, MW_SESSION_ID_LEN);
	memcpy(out->secret, p + 24, MW_RESUME_SECRET_LEN);
	return 0;
}

void mw_window_encode(uint8_t *p, uint64_t written)
{
	mw_put_be64(p, written);
}

int mw_window_decode(const uint8_t *p, size_t n, uint64_t *written)
{
	if (n < MW_WINDOW_LEN)
		return -MW_E_PROTO;
	*written = mw_get_be64(p);
	return 0;
}

void mw_end_encode(uint8_t *p, const struct mw_end *e)
{
	mw_put_be64(p, e->bytes);
	mw_put_be64(p + 8, e->chunks);
}

int mw_end_decode(const uint8_t *p, size_t n, struct mw_end *out)
{
	if (n < MW_END_LEN)
		return -MW_E_PROTO;
	out->bytes = mw_get_be64(p);
	out->chunks = mw_get_be64(p + 8);
	/* a chunk holds at least one byte and at most MW_CHUNK_MAX */
	if (out->chunks > out->bytes ||
	    out->bytes / MW_CHUNK_MAX + !!(out->bytes % MW_CHUNK_MAX) >
		    out->chunks)
		return -MW_E_PROTO;
	return 0;
}

void mw_ack_encode(uint8_t *p, const struct mw_ack *a)
{
	mw_put_be64(p, a->bytes);
	mw_put_be64(p + 8, a->chunks);
}

int mw_ack_decode(const uint8_t *p, size_t n, struct mw_ack *out)
{
	if (n < MW_ACK_LEN)
		return -MW_E_PROTO;
	out->bytes = mw_get_be64(p);
	out->chunks = mw_get_be64(p + 8);
	return 0;
}

void mw_open_encode(uint8_t *p, const struct mw_open *o)
{
	memset(p, 0, MW_OPEN_LEN);
	mw_put_be16(p, o->endpoint);
	p[2] = o->kind;
}

int mw_open_decode(const uint8_t *p, size_t n, struct mw_open *out)
{
	if (n < MW_OPEN_LEN || !all_zero(p + 3, MW_OPEN_LEN - 3))
		return -MW_E_PROTO;
	out->endpoint = mw_get_be16(p);
	out->kind = p[2];
	return out->kind < MW_SK_MAX ? 0 : -MW_E_PROTO;
}

void mw_close_encode(uint8_t *p, const struct mw_close *c)
{
	mw_put_be32(p, c->streams);
	mw_put_be32(p + 4, 0);
	mw_put_be64(p + 8, c->bytes);
	mw_put_be64(p + 16, c->chunks);
}

int mw_close_decode(const uint8_t *p, size_t n, struct mw_close *out)
{
	if (n < MW_CLOSE_LEN || mw_get_be32(p + 4))
		return -MW_E_PROTO;
	out->streams = mw_get_be32(p);
	out->bytes = mw_get_be64(p + 8);
	out->chunks = mw_get_be64(p + 16);
	if (out->streams > MW_STREAMS_MAX || out->chunks > out->bytes)
		return -MW_E_PROTO;
	return 0;
}

void mw_probe_encode(uint8_t *p, const struct mw_probe *pr)
{
	memset(p, 0, MW_PROBE_LEN);
	memcpy(p, MW_HELLO_MAGIC, 8);
	mw_put_be16(p + 8, pr->version);
	p[10] = pr->flags;
}

int mw_probe_decode(const uint8_t *p, size_t n, struct mw_probe *out)
{
	int ret = magic_version(p, n, MW_PROBE_LEN, &out->version);

	out->flags = 0;
	if (ret)
		return ret < 0 ? ret : 0;
	out->flags = p[10];
	return all_zero(p + 11, MW_PROBE_LEN - 11) &&
			       !(out->flags & ~MW_PROBE_F_KNOWN) ?
		       0 :
		       -MW_E_PROTO;
}

void mw_probe_ok_encode(uint8_t *p, const struct mw_probe_ok *ok)
{
	memset(p, 0, MW_PROBE_OK_LEN);
	mw_put_be16(p, ok->version);
	p[2] = ok->flags;
	mw_put_be16(p + 4, ok->endpoints);
	mw_put_be16(p + 6, ok->channels_max);
	mw_put_be32(p + 8, ok->chunk_max);
	mw_put_be64(p + 12, ok->window);
}

int mw_probe_ok_decode(const uint8_t *p, size_t n, struct mw_probe_ok *out)
{
	if (n < MW_PROBE_OK_LEN || p[3] || !all_zero(p + 20, 12))
		return -MW_E_PROTO;
	out->version = mw_get_be16(p);
	out->flags = p[2];
	out->endpoints = mw_get_be16(p + 4);
	out->channels_max = mw_get_be16(p + 6);
	out->chunk_max = mw_get_be32(p + 8);
	out->window = mw_get_be64(p + 12);
	if (out->flags & ~MW_PROBE_KNOWN || !out->channels_max ||
	    out->chunk_max < MW_CHUNK_MIN || !out->window)
		return -MW_E_PROTO;
	return 0;
}

const char *mw_frame_type_name(unsigned type)
{
	static const char *const names[MW_FT_MAX] = {
		[MW_FT_HELLO] = "HELLO",       [MW_FT_HELLO_OK] = "HELLO_OK",
		[MW_FT_DATA] = "DATA",	       [MW_FT_END] = "END",
		[MW_FT_ACK] = "ACK",	       [MW_FT_ERROR] = "ERROR",
		[MW_FT_OPEN] = "OPEN",	       [MW_FT_WINDOW] = "WINDOW",
		[MW_FT_CLOSE] = "CLOSE",       [MW_FT_PROBE] = "PROBE",
		[MW_FT_PROBE_OK] = "PROBE_OK", [MW_FT_CHALLENGE] = "CHALLENGE",
		[MW_FT_JOIN] = "JOIN",	       [MW_FT_PING] = "PING",
		[MW_FT_CONFIRM] = "CONFIRM",
	};

	return type < MW_FT_MAX && names[type] ? names[type] : "UNKNOWN";
}

const char *mw_stream_kind_name(unsigned kind)
{
	static const char *const names[MW_SK_MAX] = {
		[MW_SK_UNKNOWN] = "unknown", [MW_SK_EXEC] = "exec",
		[MW_SK_MAIN] = "main",	     [MW_SK_MULTIFD] = "multifd",
		[MW_SK_PREEMPT] = "preempt", [MW_SK_NBD] = "nbd",
	};

	return kind < MW_SK_MAX ? names[kind] : "unknown";
}
