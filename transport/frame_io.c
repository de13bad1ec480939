/* SPDX-License-Identifier: MIT */
/*
 * Frame I/O (frame_io.h): the incremental frame reader and the frame writer.
 * Context: the thread that owns the connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame_io.h"

uint8_t mw_frame_rd_skip[1];

void mw_frame_rd_init(struct mw_frame_rd *rd, uint32_t max_payload,
		      const struct mw_frame_rd_ops *ops, void *opaque,
		      struct mw_err *err, const char *bad_hdr)
{
	/* forgets the scratch room: frame_io.h has callers release a reader
	 * that skipped first (a received channel's is only started once) */
	memset(rd, 0, sizeof(*rd));
	rd->ops = ops;
	rd->opaque = opaque;
	rd->err = err;
	rd->bad_hdr = bad_hdr;
	rd->max_payload = max_payload;
}

uint8_t *mw_frame_rd_want(struct mw_frame_rd *rd, size_t *len)
{
	if (!rd->in_payload) {
		*len = sizeof(rd->hdr) - rd->have;
		return rd->hdr + rd->have;
	}
	*len = rd->h.wire_len - rd->have;
	if (rd->skipping) {
		/* a dropped payload cycles through the scratch room */
		if (*len > MW_FRAME_RD_SKIP_ROOM)
			*len = MW_FRAME_RD_SKIP_ROOM;
		return rd->scratch;
	}
	return rd->dst + rd->have;
}

void mw_frame_rd_release(struct mw_frame_rd *rd)
{
	free(rd->scratch);
	rd->scratch = NULL;
}

/* The frame is complete: back to a header, then tell the caller. */
static int frame_done(struct mw_frame_rd *rd)
{
	rd->in_payload = false;
	rd->skipping = false;
	rd->have = 0;
	return rd->ops->frame(rd->opaque, &rd->h);
}

static int header_done(struct mw_frame_rd *rd)
{
	int ret;

	rd->have = 0;
	ret = mw_frame_hdr_decode(rd->hdr, sizeof(rd->hdr), rd->max_payload,
				  &rd->h);
	if (ret)
		return mw_err_set(rd->err, ret, "%s", rd->bad_hdr);
	rd->dst = NULL;
	ret = rd->ops->header(rd->opaque, &rd->h, &rd->dst);
	if (ret)
		return ret;
	if (!rd->h.wire_len)
		return frame_done(rd);
	if (!rd->dst) /* a callback bug; refuse rather than write at NULL */
		return mw_err_set(rd->err, -EFAULT, "no room for a %s frame",
				  mw_frame_type_name(rd->h.type));
	if (rd->dst == mw_frame_rd_skip) {
		if (!rd->scratch)
			rd->scratch = malloc(MW_FRAME_RD_SKIP_ROOM);
		if (!rd->scratch)
			return mw_err_set(rd->err, -ENOMEM,
					  "out of memory to skip a frame");
		rd->skipping = true;
	}
	rd->in_payload = true;
	return 0;
}

int mw_frame_rd_commit(struct mw_frame_rd *rd, size_t n)
{
	size_t room;
	int ret;

	if (rd->failed)
		return rd->failed;
	mw_frame_rd_want(rd, &room);
	if (n > room) /* more than was asked for: the caller's bug */
		return rd->failed = mw_err_set(rd->err, -EFAULT,
					       "frame reader overrun");
	rd->have += n;
	if (rd->in_payload) {
		rd->payload_bytes += n;
		ret = rd->have < rd->h.wire_len ? 0 : frame_done(rd);
	} else {
		ret = rd->have < sizeof(rd->hdr) ? 0 : header_done(rd);
	}
	if (ret < 0)
		rd->failed = ret;
	return ret;
}

int mw_frame_rd_feed(struct mw_frame_rd *rd, const uint8_t *p, size_t n,
		     size_t *used)
{
	int ret = rd->failed;

	*used = 0;
	while (!ret && *used < n) {
		size_t len;
		uint8_t *dst = mw_frame_rd_want(rd, &len);

		if (len > n - *used)
			len = n - *used;
		memcpy(dst, p + *used, len);
		*used += len;
		ret = mw_frame_rd_commit(rd, len);
	}
	return ret;
}

void mw_frame_wr_init(struct mw_frame_wr *w, struct mw_tls_sess *tls,
		      uint8_t *sealed, size_t sealed_cap, struct mw_err *err)
{
	memset(w, 0, sizeof(*w));
	w->tls = tls;
	w->sealed = sealed;
	w->sealed_cap = sealed_cap;
	w->err = err;
}

ssize_t mw_frame_wr_put(struct mw_frame_wr *w, const struct mw_frame_hdr *h,
			const void *payload)
{
	struct iovec plain[2] = {
		{ w->hdr, sizeof(w->hdr) },
		{ (void *)(uintptr_t)payload, h->wire_len },
	};
	ssize_t n;

	mw_frame_hdr_encode(w->hdr, h);
	if (!w->tls) {
		w->iov[0] = plain[0];
		w->iov[1] = plain[1];
		return (ssize_t)(sizeof(w->hdr) + h->wire_len);
	}
	/* records sealed straight from the payload: no plaintext copy */
	n = mw_tls_seal(w->tls, plain, h->wire_len ? 2 : 1, w->sealed,
			w->sealed_cap, w->err);
	if (n < 0)
		return n;
	w->iov[0] = (struct iovec){ NULL, 0 };
	w->iov[1] = (struct iovec){ w->sealed, (size_t)n };
	return n;
}
