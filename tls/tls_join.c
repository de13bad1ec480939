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

/* bumped with the resume proof's inputs (docs/protocol.md, "Resume") */
#define RESUME_DOMAIN "migwire resume v3"
/* the resume key's derivation from the join token (same document) */
#define RESUME_KEY_DOMAIN "migwire resume key v3"
/* the lengths of mw_wire.h this file is not built against: the resume
 * secret (MW_RESUME_SECRET_LEN) and the nonce (MW_JOIN_NONCE_LEN) */
#define RESUME_SECRET_LEN 32u
#define NONCE_LEN 32u
#define DOMAIN_MAX 32

/*
 * HMAC-SHA256(key, domain | mode | binding | nonce | hello), each part of
 * a fixed length for a given domain, so no two inputs concatenate alike.
 * domain_len counts its NUL. The join token and the resume secret differ
 * only in key and domain.
 */
static int proof_tag(struct mw_tls_sess *s, const char *domain,
		     size_t domain_len, const uint8_t *key, size_t key_len,
		     const uint8_t *nonce, size_t nonce_len,
		     const uint8_t *hello, size_t hello_len, uint8_t *tag,
		     struct mw_err *err)
{
	uint8_t msg[DOMAIN_MAX + 1 + MW_TLS_JOIN_TAG_LEN + MW_TLS_JOIN_MSG_MAX];
	uint8_t *bind = msg + domain_len + 1;
	unsigned int len = 0;
	size_t n = domain_len + 1 + MW_TLS_JOIN_TAG_LEN;
	uint8_t *ok;

	if (nonce_len + hello_len > MW_TLS_JOIN_MSG_MAX ||
	    domain_len > DOMAIN_MAX)
		return mw_err_set(err, -EINVAL, "join proof input too long");
	memcpy(msg, domain, domain_len);
	/* no TLS: an all-zero binding, told apart by the mode byte */
	msg[domain_len] = s ? 1 : 0;
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
	ok = HMAC(EVP_sha256(), key, (int)key_len, msg, n, tag, &len);
	OPENSSL_cleanse(msg, sizeof(msg));
	if (!ok || len != MW_TLS_JOIN_TAG_LEN)
		return mw_err_set(err, -MW_E_TLS, "HMAC-SHA256 failed");
	return 0;
}

int mw_tls_join_tag(struct mw_tls_sess *s, const uint8_t *token,
		    size_t token_len, const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *hello, size_t hello_len, uint8_t *tag,
		    struct mw_err *err)
{
	return proof_tag(s, JOIN_DOMAIN, sizeof(JOIN_DOMAIN), token, token_len,
			 nonce, nonce_len, hello, hello_len, tag, err);
}

/*
 * The resume key: with a join token T, HMAC-SHA256(T, "migwire resume key
 * v3\0" | R), so that R alone (in clear in HELLO_OK under --no-tls) proves
 * nothing to whoever reads the traffic without T; without a token R
 * itself (loopback --no-tls: everything is in clear there anyway).
 */
static int resume_key(const uint8_t *token, size_t token_len,
		      const uint8_t *secret, uint8_t *key, struct mw_err *err)
{
	uint8_t msg[sizeof(RESUME_KEY_DOMAIN) + RESUME_SECRET_LEN];
	unsigned int len = 0;
	uint8_t *ok;

	if (!token_len) {
		memcpy(key, secret, RESUME_SECRET_LEN);
		return 0;
	}
	memcpy(msg, RESUME_KEY_DOMAIN, sizeof(RESUME_KEY_DOMAIN));
	memcpy(msg + sizeof(RESUME_KEY_DOMAIN), secret, RESUME_SECRET_LEN);
	ok = HMAC(EVP_sha256(), token, (int)token_len, msg, sizeof(msg), key,
		  &len);
	OPENSSL_cleanse(msg, sizeof(msg));
	if (!ok || len != RESUME_SECRET_LEN)
		return mw_err_set(err, -MW_E_TLS, "HMAC-SHA256 failed");
	return 0;
}

int mw_tls_resume_tag(struct mw_tls_sess *s, const uint8_t *token,
		      size_t token_len, const uint8_t *secret,
		      const uint8_t *nonce, const uint8_t *hello,
		      size_t hello_len, uint8_t *tag, struct mw_err *err)
{
	uint8_t key[RESUME_SECRET_LEN];
	int ret = resume_key(token, token_len, secret, key, err);

	if (!ret)
		ret = proof_tag(s, RESUME_DOMAIN, sizeof(RESUME_DOMAIN), key,
				sizeof(key), nonce, NONCE_LEN, hello, hello_len,
				tag, err);
	OPENSSL_cleanse(key, sizeof(key));
	return ret;
}

void mw_tls_cleanse(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
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
