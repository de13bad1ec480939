/* SPDX-License-Identifier: MIT */
/*
 * The join-token exchange of each channel (join.h, docs/protocol.md "Join
 * token").
 *
 * DESIGN
 * Why a challenge, and why it is sound. The token must stay secret, so the
 * sender proves it holds it with a MAC instead of sending it; the MAC must
 * not be replayable, or anyone who saw one connection could join with it.
 * Under TLS the MAC covers an exporter value of the connection (unique to
 * it, known only to its two ends), under --no-tls nothing of the
 * connection is secret, so freshness comes from the receiver: 32 random
 * bytes in CHALLENGE, never reused. The MAC also covers the HELLO, so a
 * proof cannot be moved to other session parameters. HMAC-SHA256 is a PRF:
 * tags seen on the wire tell nothing about the token, as long as the token
 * cannot be guessed offline (at least 16 bytes, from a random source). The
 * receiver never computes a tag for anyone, so it is no oracle, and it
 * compares in constant time. A PROBE proves the token the same way
 * (its payload in place of the HELLO), or a stranger could learn whether a
 * session runs and what the receiver takes. What the token cannot do without TLS: stop
 * an attacker on the path, who may take over the TCP connection after the
 * proof (only TLS binds the rest of the channel to it).
 */
#include <string.h>

#include "join.h"
#include "mw_tls.h"

/*
 * Sends CHALLENGE with a fresh nonce and reads the JOIN that answers it:
 * the tag in got (MW_JOIN_TAG_LEN bytes). 0 or an error with c->err set;
 * what stands before the proof names it in its lines.
 */
static int challenge(struct mw_conn *c, uint8_t *nonce, uint8_t *got,
		     const char *what, unsigned long long deadline)
{
	struct mw_frame_hdr h = { .type = MW_FT_CHALLENGE,
				  .wire_len = MW_JOIN_NONCE_LEN };
	uint8_t in[MW_ERROR_MAX];
	int ret;

	ret = mw_tls_random(nonce, MW_JOIN_NONCE_LEN, &c->err);
	if (!ret)
		ret = mw_conn_send_frame(c, &h, nonce, deadline);
	if (!ret)
		ret = mw_conn_recv_frame(c, &h, in, sizeof(in), deadline);
	if (ret)
		return ret;
	if (h.type == MW_FT_ERROR) {
		char text[MW_PEER_TEXT_MAX + 1];

		/* the sender gave up (its own line says why): say it too */
		return mw_err_set(&c->err, -MW_E_PEER,
				  "sender failed before the %s: %s", what,
				  mw_err_peer_text(text, sizeof(text), in,
						   h.wire_len));
	}
	if (h.type != MW_FT_JOIN)
		return mw_err_set(&c->err, -MW_E_PROTO,
				  "%s frame instead of the %s",
				  mw_frame_type_name(h.type), what);
	memcpy(got, in, MW_JOIN_TAG_LEN);
	return 0;
}

int mw_join_verify(struct mw_conn *c, const struct mw_xp_cfg *cfg,
		   uint16_t version, bool offered, const uint8_t *raw,
		   size_t raw_len, unsigned long long deadline)
{
	uint8_t nonce[MW_JOIN_NONCE_LEN], want[MW_JOIN_TAG_LEN];
	uint8_t got[MW_JOIN_TAG_LEN];
	int ret;

	if (version != MW_PROTO_VERSION)
		return 0;
	if (!cfg->join_token_len && !offered)
		return 0;
	if (!cfg->join_token_len)
		return mw_err_set(&c->err, -MW_E_AUTH,
				  "the sender has a join token and this "
				  "receiver none (give both --join-token)");
	if (!offered)
		return mw_err_set(&c->err, -MW_E_AUTH,
				  "no join token from the sender (this "
				  "receiver requires --join-token)");
	ret = challenge(c, nonce, got, "join proof", deadline);
	if (ret)
		return ret;
	ret = mw_tls_join_tag(c->tls, cfg->join_token, cfg->join_token_len,
			      nonce, sizeof(nonce), raw, raw_len, want,
			      &c->err);
	if (ret)
		return ret;
	if (!mw_tls_join_tag_equal(got, want))
		return mw_err_set(&c->err, -MW_E_AUTH,
				  "join token mismatch (the sender holds "
				  "another --join-token)");
	return 0;
}

int mw_join_answer(struct mw_conn *c, const struct mw_xp_cfg *cfg,
		   const uint8_t *nonce, const uint8_t *raw, size_t raw_len,
		   unsigned long long deadline)
{
	struct mw_frame_hdr h = { .type = MW_FT_JOIN,
				  .wire_len = MW_JOIN_TAG_LEN };
	uint8_t tag[MW_JOIN_TAG_LEN];
	int ret;

	if (!cfg->join_token_len)
		return mw_err_set(&c->err, -MW_E_AUTH,
				  "the receiver requires a join token "
				  "(--join-token)");
	ret = mw_tls_join_tag(c->tls, cfg->join_token, cfg->join_token_len,
			      nonce, MW_JOIN_NONCE_LEN, raw, raw_len, tag,
			      &c->err);
	if (!ret)
		ret = mw_conn_send_frame(c, &h, tag, deadline);
	return ret;
}

/*
 * Why the resume proof is sound: the same argument as the join token's
 * above, with the session's resume secret R as the key. R is random, made
 * by the receiver and sent only in HELLO_OK, that is only to connections
 * that passed admission (TLS identity, join token): under TLS nobody else
 * ever sees it. The nonce makes every proof fresh and the exporter binds
 * it to this connection, so a recorded resume cannot be replayed, and a
 * resume for a session this receiver no longer holds finds no R to check
 * against. Without TLS R crosses in clear, so with a join token the key is
 * derived from both (tls_join.c): a passive reader of the traffic who
 * lacks the token cannot resume (cut a channel and take its place). An
 * on-path attacker without TLS could hijack a live TCP connection anyway;
 * without TLS and without a token (loopback only) R alone is the key.
 */
int mw_resume_verify(struct mw_conn *c, const struct mw_xp_cfg *cfg,
		     const uint8_t secret[MW_RESUME_SECRET_LEN],
		     const uint8_t *hello_raw, unsigned long long dl)
{
	uint8_t nonce[MW_JOIN_NONCE_LEN], want[MW_JOIN_TAG_LEN];
	uint8_t got[MW_JOIN_TAG_LEN];
	int ret;

	ret = challenge(c, nonce, got, "resume proof", dl);
	if (!ret)
		ret = mw_tls_resume_tag(c->tls, cfg->join_token,
					cfg->join_token_len, secret, nonce,
					hello_raw, MW_HELLO_LEN, want, &c->err);
	if (ret)
		return ret;
	if (!mw_tls_join_tag_equal(got, want))
		return mw_err_set(&c->err, -MW_E_AUTH,
				  "resume proof mismatch (not the session's "
				  "sender)");
	return 0;
}

int mw_resume_answer(struct mw_conn *c, const struct mw_xp_cfg *cfg,
		     const uint8_t secret[MW_RESUME_SECRET_LEN],
		     const uint8_t *nonce, const uint8_t *hello_raw,
		     unsigned long long dl)
{
	struct mw_frame_hdr h = { .type = MW_FT_JOIN,
				  .wire_len = MW_JOIN_TAG_LEN };
	uint8_t tag[MW_JOIN_TAG_LEN];
	int ret;

	ret = mw_tls_resume_tag(c->tls, cfg->join_token, cfg->join_token_len,
				secret, nonce, hello_raw, MW_HELLO_LEN, tag,
				&c->err);
	if (!ret)
		ret = mw_conn_send_frame(c, &h, tag, dl);
	return ret;
}
