/* SPDX-License-Identifier: MIT */
/*
 * The join proof of --join-token (docs/protocol.md, "Join token"): an
 * HMAC-SHA256 keyed with the token over the receiver's nonce, the HELLO and,
 * under TLS, an exporter value of the connection (RFC 8446 7.5), and its
 * constant-time check. The token never leaves this function's callers in
 * clear; only the tag crosses the wire. Any thread (no shared state).
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tls_int.h"

/* bumped with the proof's inputs, so two versions never accept each other */
#define JOIN_DOMAIN "migwire join v2"
#define JOIN_EXPORTER "EXPORTER-migwire-join"

int mw_tls_join_tag(struct mw_tls_sess *s, const uint8_t *token,
		    size_t token_len, const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *hello, size_t hello_len, uint8_t *tag,
		    struct mw_err *err)
{
	/* domain | mode | binding | nonce | HELLO, each of a fixed length
	 * for a given version, so no two inputs concatenate alike */
	uint8_t msg[sizeof(JOIN_DOMAIN) + 1 + MW_TLS_JOIN_TAG_LEN +
		    MW_TLS_JOIN_MSG_MAX];
	uint8_t *bind = msg + sizeof(JOIN_DOMAIN) + 1;
	unsigned int len = 0;
	size_t n = sizeof(JOIN_DOMAIN) + 1 + MW_TLS_JOIN_TAG_LEN;
	uint8_t *ok;

	if (nonce_len + hello_len > MW_TLS_JOIN_MSG_MAX)
		return mw_err_set(err, -EINVAL, "join proof input too long");
	memcpy(msg, JOIN_DOMAIN, sizeof(JOIN_DOMAIN));
	/* no TLS: an all-zero binding, told apart by the mode byte */
	msg[sizeof(JOIN_DOMAIN)] = s ? 1 : 0;
	memset(bind, 0, MW_TLS_JOIN_TAG_LEN);
	if (s) {
		ERR_clear_error();
		if (SSL_export_keying_material(
			    s->ssl, bind, MW_TLS_JOIN_TAG_LEN, JOIN_EXPORTER,
			    sizeof(JOIN_EXPORTER) - 1, NULL, 0, 0) != 1)
			return mw_err_set(err, -MW_E_TLS,
					  "TLS exporter for the join token "
					  "failed");
	}
	memcpy(msg + n, nonce, nonce_len);
	n += nonce_len;
	memcpy(msg + n, hello, hello_len);
	n += hello_len;
	ok = HMAC(EVP_sha256(), token, (int)token_len, msg, n, tag, &len);
	OPENSSL_cleanse(msg, sizeof(msg));
	if (!ok || len != MW_TLS_JOIN_TAG_LEN)
		return mw_err_set(err, -MW_E_TLS, "HMAC-SHA256 failed");
	return 0;
}

bool mw_tls_join_tag_equal(const uint8_t *a, const uint8_t *b)
{
	return CRYPTO_memcmp(a, b, MW_TLS_JOIN_TAG_LEN) == 0;
}

int mw_tls_random(void *buf, size_t n, struct mw_err *err)
{
	if (RAND_bytes(buf, (int)n) != 1)
		return mw_err_set(err, -MW_E_TLS,
				  "no random bytes (RAND_bytes)");
	return 0;
}
