/* SPDX-License-Identifier: MIT */
/*
 * A connection: one TCP socket, optionally wrapped in a TLS session, with
 * the blocking paths used during setup (handshake, HELLO, first frames) and
 * the receive buffer the channel loops fill (conn.c).
 */
#ifndef MW_CONN_H
#define MW_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mw_err.h"
#include "mw_tls.h"
#include "mw_wire.h"
#include "net.h"

/* Locking: none; a connection belongs to the one thread that runs it. */
#define MW_CONN_RX_CAP (256u << 10)

struct mw_conn {
	int fd;
	struct mw_tls_sess *tls; /* NULL: plaintext */
	uint8_t *rx;		 /* bytes received and not consumed yet */
	size_t rx_off, rx_len, rx_cap;
	size_t rx_total;	/* bytes ever received by the blocking paths */
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
/* Plaintext already received: copies up to n bytes without any syscall.
 * Returns bytes (0: none buffered) or -MW_E_TLS / 0-on-close via *closed. */
ssize_t mw_conn_read_buffered(struct mw_conn *c, void *dst, size_t n,
			      bool *closed);
/* Sends one frame (header + payload) with blocking writes. */
int mw_conn_send_frame(struct mw_conn *c, const struct mw_frame_hdr *h,
		       const void *payload, unsigned long long deadline);
/* Reads one control frame: header + payload (at most cap bytes). */
int mw_conn_recv_frame(struct mw_conn *c, struct mw_frame_hdr *h,
		       uint8_t *payload, size_t cap,
		       unsigned long long deadline);
/* Room for the next recv into c->rx (compacted when short): *len bytes at
 * the returned pointer. */
uint8_t *mw_conn_rx_room(struct mw_conn *c, size_t *len);
/* Best-effort ERROR frame with text; never blocks longer than 1 s. */
void mw_conn_send_error(struct mw_conn *c, const char *text);

#endif
