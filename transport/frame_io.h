/* SPDX-License-Identifier: MIT */
/*
 * Frame I/O: the one place that turns bytes into frames and frames into
 * bytes, for both sides and for both the ring loops and the blocking setup
 * paths (frame_io.c).
 *
 * The reader is incremental and never copies by itself: it tells the caller
 * where the next bytes must land (mw_frame_rd_want) and is told how many
 * did (mw_frame_rd_commit). First the header goes into the reader's own 40
 * bytes; once mw_frame_hdr_decode accepts it, ops->header picks where the
 * payload goes (a reorder slot, a control buffer), so TLS can open records
 * and a plaintext recv can land straight in the frame's destination. The
 * wire lengths are trusted only after the decode bounded them by
 * max_payload, and the reader never hands out more room than the payload
 * still needs. mw_frame_rd_feed is the copying variant for bytes already in
 * memory.
 *
 * The writer encodes a header next to the payload and either points two
 * iovecs at them (plaintext) or seals both into the caller's buffer (TLS);
 * it allocates nothing.
 */
#ifndef MW_FRAME_IO_H
#define MW_FRAME_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "mw_err.h"
#include "mw_tls.h"
#include "mw_wire.h"

/*
 * The reader's callbacks. Both return 0 to go on or a negative error to
 * fail the stream (it sticks: the reader stays failed).
 *   header: the header decoded; *dst is where its h->wire_len payload bytes
 *           go (at least that much room; unused when wire_len is 0).
 *   frame:  the payload is complete at the header's *dst. A positive return
 *           makes the current commit/feed return it (a blocking caller that
 *           wants exactly one frame stops there).
 */
struct mw_frame_rd_ops {
	int (*header)(void *opaque, const struct mw_frame_hdr *h,
		      uint8_t **dst);
	int (*frame)(void *opaque, const struct mw_frame_hdr *h);
};

/*
 * What ops->header sets *dst to for a payload to read and drop (a chunk
 * sent again that is already here): the reader takes it through its own
 * scratch room, and ops->frame still sees the frame complete.
 */
extern uint8_t mw_frame_rd_skip[1];
#define MW_FRAME_RD_SKIP_ROOM 4096

/*
 * Locking: none; a reader belongs to the one thread that runs its
 * connection (the channel thread, or the setup thread before it).
 */
struct mw_frame_rd {
	const struct mw_frame_rd_ops *ops;
	void *opaque;
	struct mw_err *err;  /* where a bad header is reported */
	const char *bad_hdr; /* its text: each side words it for its peer */
	uint32_t max_payload;
	bool in_payload;	       /* header done, payload pending */
	int failed;		       /* sticky error, 0 while healthy */
	uint8_t hdr[MW_FRAME_HDR_LEN]; /* the header as it came (sniffing) */
	size_t have;		       /* header or payload bytes so far */
	struct mw_frame_hdr h;	       /* valid while in_payload */
	uint8_t *dst;		       /* payload destination */
	bool skipping;		       /* dst is mw_frame_rd_skip */
	uint8_t *scratch; /* skipped payloads land here (first use) */
	unsigned long long payload_bytes; /* payload bytes ever committed */
};

/* Starts at a frame boundary. Payloads above max_payload are refused.
 * A reader that skipped a payload is released (mw_frame_rd_release: its
 * scratch room) before it is started again or dropped. */
void mw_frame_rd_init(struct mw_frame_rd *rd, uint32_t max_payload,
		      const struct mw_frame_rd_ops *ops, void *opaque,
		      struct mw_err *err, const char *bad_hdr);
void mw_frame_rd_release(struct mw_frame_rd *rd);
/* Where the next bytes go and how many at most (always > 0, never NULL:
 * a skip's scratch room is allocated when its header is committed, which
 * fails with -ENOMEM instead). */
uint8_t *mw_frame_rd_want(struct mw_frame_rd *rd, size_t *len);
/*
 * n bytes (at most the last want's len) were written at the last want's
 * pointer. Decodes a completed header and calls the ops. Returns 0, a
 * callback's positive value, or a negative error (-MW_E_PROTO for a header
 * mw_frame_hdr_decode rejects, with rd->bad_hdr in *err).
 */
int mw_frame_rd_commit(struct mw_frame_rd *rd, size_t n);
/* Copies from p (n bytes) through want/commit; *used says how many were
 * taken. Stops early on an error or a positive callback value. */
int mw_frame_rd_feed(struct mw_frame_rd *rd, const uint8_t *p, size_t n,
		     size_t *used);

/*
 * Locking: none; a writer belongs to the thread that sends its frames, and
 * the iovecs point into hdr, the payload or the sealed buffer until the
 * send completes.
 */
struct mw_frame_wr {
	struct mw_tls_sess *tls; /* NULL: plaintext */
	uint8_t *sealed;	 /* TLS: the caller's ciphertext buffer */
	size_t sealed_cap;
	struct mw_err *err;
	uint8_t hdr[MW_FRAME_HDR_LEN];
	struct iovec iov[2]; /* what to send, in order; empty pieces allowed */
};

void mw_frame_wr_init(struct mw_frame_wr *w, struct mw_tls_sess *tls,
		      uint8_t *sealed, size_t sealed_cap, struct mw_err *err);
/*
 * Builds one frame of h with h->wire_len payload bytes (borrowed until the
 * send completes; may be NULL when wire_len is 0) into w->iov. Returns the
 * bytes to send, or -MW_E_NOSPACE / -MW_E_TLS from sealing.
 */
ssize_t mw_frame_wr_put(struct mw_frame_wr *w, const struct mw_frame_hdr *h,
			const void *payload);

#endif
