/* SPDX-License-Identifier: MIT */
/*
 * A connection: one TCP socket, optionally wrapped in a TLS session, with
 * the blocking paths used during setup (handshake, HELLO, first frames),
 * and the receive side the channel loops drive: the connection decides
 * where a recv lands (mw_conn_rx_room), is told how many bytes came
 * (mw_conn_rx_commit) and runs its frame reader over them
 * (mw_conn_rx_drain). conn.c.
 */
#ifndef MW_CONN_H
#define MW_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mw_err.h"
#include "mw_tls.h"
#include "frame_io.h"
#include "mw_wire.h"
#include "net.h"

#define MW_CONN_RX_CAP (256u << 10)

/*
 * Locking: none; a connection belongs to the one thread that runs it (the
 * setup thread, then the channel thread). open_ns points at a statistic
 * other threads read; it is only ever added to, relaxed.
 */
struct mw_conn {
	int fd;
	struct mw_tls_sess *tls; /* NULL: plaintext */
	uint8_t *rx;		 /* bytes received and not consumed yet */
	size_t rx_off, rx_len, rx_cap;
	size_t rx_total; /* bytes ever received by the blocking paths */
	/* the channel loop's incoming frames (mw_conn_rx_start) */
	struct mw_frame_rd rd;
	bool rx_direct;		/* plaintext recvs land in the frame */
	atomic_ullong *open_ns; /* TLS open CPU time (stats), or NULL */
	char peer[MW_PEER_MAX]; /* "127.0.0.1:4444" */
	struct mw_err err;
};

/* peer: "host:port" the caller knows from connect() or accept() */
int mw_conn_init(struct mw_conn *c, int fd, const char *peer,
		 struct mw_tls_ctx *tls);
void mw_conn_destroy(struct mw_conn *c);
/* TLS handshake over the blocking socket, bounded by deadline (mw_now_ns
 * clock, 0 = none). Returns 0 or -errno/-MW_E_* with c->err set. */
int mw_conn_handshake(struct mw_conn *c, unsigned long long deadline);
/* Reads exactly n plaintext bytes, blocking until deadline. */
int mw_conn_read(struct mw_conn *c, void *dst, size_t n,
		 unsigned long long deadline);
/* Sends one frame (header + payload) with blocking writes. */
int mw_conn_send_frame(struct mw_conn *c, const struct mw_frame_hdr *h,
		       const void *payload, unsigned long long deadline);
/* Reads one control frame: header + payload (at most cap bytes). */
int mw_conn_recv_frame(struct mw_conn *c, struct mw_frame_hdr *h,
		       uint8_t *payload, size_t cap,
		       unsigned long long deadline);
/*
 * Hands the connection's incoming frames to ops from here on (frames of at
 * most max_payload bytes; bad_hdr is the text for a header that does not
 * decode). Bytes the blocking paths buffered stay and are read first.
 * direct: a plaintext recv lands in the frame's own destination, which
 * saves a copy of bulk payloads (the receiver); without it recvs go to the
 * buffer, where one recv takes many small frames (the sender's credit).
 * TLS always receives into the buffer: records are opened from it straight
 * into the frame's destination.
 */
void mw_conn_rx_start(struct mw_conn *c, const struct mw_frame_rd_ops *ops,
		      void *opaque, uint32_t max_payload, const char *bad_hdr,
		      bool direct);
/* Where the next recv goes: *len bytes at the returned pointer. Call
 * mw_conn_rx_drain() first so the buffer is empty when direct. */
uint8_t *mw_conn_rx_room(struct mw_conn *c, size_t *len);
/* n bytes arrived at the last mw_conn_rx_room(). Runs the frame reader on
 * them when they landed in the frame; returns 0 or its error. */
int mw_conn_rx_commit(struct mw_conn *c, size_t n);
/*
 * Runs the frame reader over the bytes buffered: returns 0 once it needs
 * more input, a frame callback's positive value, or a negative error;
 * *closed is set (with 0) when the peer ended its TLS session.
 */
int mw_conn_rx_drain(struct mw_conn *c, bool *closed);
/* Best-effort ERROR frame with text; never blocks longer than 1 s. */
void mw_conn_send_error(struct mw_conn *c, const char *text);

#endif
