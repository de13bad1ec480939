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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "mw_wire.h"
#include "mw_xport.h"

/*
 * Receiver: checks that the sender of a HELLO or PROBE (raw: its payload
 * bytes, raw_len of them; offered: its TOKEN flag) holds cfg's join token,
 * or that neither side has one. A frame of another protocol version
 * passes (admission refuses it by name).
 * Returns 0 or -MW_E_AUTH (or a connection error) with c->err set: the
 * line the receiver logs and the peer is sent.
 */
int mw_join_verify(struct mw_conn *c, const struct mw_xp_cfg *cfg,
		   uint16_t version, bool offered, const uint8_t *raw,
		   size_t raw_len, unsigned long long deadline);
/*
 * Sender: answers the CHALLENGE frame whose payload is nonce with a JOIN
 * frame for the HELLO or PROBE raw (raw_len payload bytes as sent).
 * Returns 0 or an error with c->err set.
 */
int mw_join_answer(struct mw_conn *c, const struct mw_xp_cfg *cfg,
		   const uint8_t *nonce, const uint8_t *raw, size_t raw_len,
		   unsigned long long deadline);

/*
 * Resume (docs/protocol.md, "Resume"): a HELLO with MW_HELLO_F_RESUME
 * proves it comes from the session's sender with the resume secret of the
 * session's HELLO_OK instead of the join token. Receiver: sends CHALLENGE
 * (a fresh nonce), reads JOIN and checks it against HMAC(secret, ...) over
 * hello_raw (the MW_HELLO_LEN payload bytes received). 0, or -MW_E_AUTH
 * "resume proof mismatch (not the session's sender)" (or a connection
 * error) with c->err set. Connection thread, during setup.
 */
int mw_resume_verify(struct mw_conn *c, const struct mw_xp_cfg *cfg,
		     const uint8_t secret[MW_RESUME_SECRET_LEN],
		     const uint8_t *hello_raw, unsigned long long dl);
/* Sender: answers the CHALLENGE whose payload is nonce for the resuming
 * HELLO hello_raw (MW_HELLO_LEN bytes as sent). 0 or an error, c->err.
 * Both sides key the proof with cfg's join token too, when there is one
 * (mw_tls_resume_tag). */
int mw_resume_answer(struct mw_conn *c, const struct mw_xp_cfg *cfg,
		     const uint8_t secret[MW_RESUME_SECRET_LEN],
		     const uint8_t *nonce, const uint8_t *hello_raw,
		     unsigned long long dl);

#endif
