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

int mw_join_verify(struct mw_conn *c, const struct mw_xp_cfg *cfg,
		   uint16_t version, bool offered, const uint8_t *raw,
		   size_t raw_len, unsigned long long deadline)
{
	uint8_t nonce[MW_JOIN_NONCE_LEN], want[MW_JOIN_TAG_LEN];
	uint8_t got[MW_ERROR_MAX];
	struct mw_frame_hdr h = { .type = MW_FT_CHALLENGE,
				  .wire_len = MW_JOIN_NONCE_LEN };
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
	ret = mw_tls_random(nonce, sizeof(nonce), &c->err);
	if (!ret)
		ret = mw_conn_send_frame(c, &h, nonce, deadline);
	if (!ret)
		ret = mw_conn_recv_frame(c, &h, got, sizeof(got), deadline);
	if (ret)
		return ret;
	if (h.type == MW_FT_ERROR) {
		char text[MW_PEER_TEXT_MAX + 1];

		/* the sender gave up (its own line says why): say it too */
		return mw_err_set(&c->err, -MW_E_PEER,
				  "sender failed before the join proof: %s",
				  mw_err_peer_text(text, sizeof(text), got,
						   h.wire_len));
	}
	if (h.type != MW_FT_JOIN)
		return mw_err_set(&c->err, -MW_E_PROTO,
				  "%s frame instead of the join proof",
				  mw_frame_type_name(h.type));
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
