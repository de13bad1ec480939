/* SPDX-License-Identifier: MIT */
/*
 * --join-token on the wire (join.c): after a HELLO whose flags say the
 * sender holds the token, the receiver sends CHALLENGE (a fresh nonce) and
 * the sender answers JOIN (the proof of mw_tls_join_tag), before the
 * receiver lets the HELLO anywhere near the session. Both run on the
 * connection's thread, during setup, with the blocking conn.h paths.
 */
#ifndef MW_JOIN_H
#define MW_JOIN_H

#include <stdint.h>

#include "conn.h"
#include "mw_wire.h"
#include "mw_xport.h"

/*
 * Receiver: checks that the sender of hello (raw: its MW_HELLO_LEN payload
 * bytes) holds cfg's join token, or that neither side has one. A HELLO of
 * another protocol version passes (admission refuses it by name).
 * Returns 0 or -MW_E_AUTH (or a connection error) with c->err set: the
 * line the receiver logs and the peer is sent.
 */
int mw_join_verify(struct mw_conn *c, const struct mw_xp_cfg *cfg,
		   const struct mw_hello *hello, const uint8_t *raw,
		   unsigned long long deadline);
/*
 * Sender: answers the CHALLENGE frame whose payload is nonce with a JOIN
 * frame for the HELLO raw (payload bytes as sent). Returns 0 or an error
 * with c->err set.
 */
int mw_join_answer(struct mw_conn *c, const struct mw_xp_cfg *cfg,
		   const uint8_t *nonce, const uint8_t *raw,
		   unsigned long long deadline);

#endif
