/* SPDX-License-Identifier: MIT */
/*
 * The key schedule of our own record layer (tls_rec.c): the traffic
 * secrets taken from libssl's keylog callback, the keys and IVs derived
 * from them with OpenSSL's TLS13-KDF, and KeyUpdate's next secret
 * (RFC 8446 7.1-7.3).
 *
 * The traffic secrets come from the keylog callback, the only place
 * OpenSSL 3.0 hands them out. A session that takes the records over keeps
 * the current secret of each direction (KeyUpdate derives the next one
 * from it) until it is freed; any other session wipes them at once.
 *
 * Below tls_rec.c, called only by it and by tls_hs.c (keylog, free) on the
 * session's thread; it calls nothing else in tls/.
 */
#include "tls_int.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>

/* ---- key schedule ---- */

/* HKDF-Expand-Label(secret, label, "", n) of RFC 8446 7.1. */
static int hkdf_label(struct mw_tls_rec *r, const uint8_t *secret,
		      const char *label, uint8_t *out, size_t n)
{
	EVP_KDF_CTX *kc = EVP_KDF_CTX_new(r->kdf);
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ok;
	OSSL_PARAM p[6];

	if (!kc)
		return -1;
	p[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	p[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						r->md_name, 0);
	p[2] = OSSL_PARAM_construct_octet_string(
		OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)secret, r->secret_len);
	p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX,
						 (char[]){ "tls13 " }, 6);
	p[4] = OSSL_PARAM_construct_octet_string(
		OSSL_KDF_PARAM_LABEL, (void *)(uintptr_t)label, strlen(label));
	p[5] = OSSL_PARAM_construct_end();
	ok = EVP_KDF_derive(kc, out, n, p) == 1;
	EVP_KDF_CTX_free(kc);
	return ok ? 0 : -1;
}

/*
 * Keys one direction from secret: the secret, IV and cipher context are
 * replaced and the record counter restarts, all or nothing (a half-done
 * change could reuse a nonce under the old key).
 */
static int dir_key(struct mw_tls_rec *r, struct mw_tls_dir *d,
		   const uint8_t *secret, int enc)
{
	EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
	uint8_t key[32], iv[MW_TLS_REC_IV];
	int ret = -1;

	if (!cc || hkdf_label(r, secret, "key", key, r->key_len) < 0 ||
	    hkdf_label(r, secret, "iv", iv, MW_TLS_REC_IV) < 0 ||
	    EVP_CipherInit_ex2(cc, r->cipher, key, NULL, enc, NULL) != 1)
		goto out;
	EVP_CIPHER_CTX_free(d->cc);
	d->cc = cc;
	cc = NULL;
	if (secret != d->secret)
		memcpy(d->secret, secret, r->secret_len);
	memcpy(d->iv, iv, MW_TLS_REC_IV);
	d->seq = 0;
	ret = 0;
out:
	EVP_CIPHER_CTX_free(cc);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	return ret;
}

/* RFC 8446 7.2: moves to the next application traffic secret. */
int mw_tls_dir_update(struct mw_tls_rec *r, struct mw_tls_dir *d, int enc)
{
	uint8_t next[EVP_MAX_MD_SIZE];
	int ret = -1;

	if (hkdf_label(r, d->secret, "traffic upd", next, r->secret_len) == 0)
		ret = dir_key(r, d, next, enc);
	OPENSSL_cleanse(next, sizeof(next));
	return ret;
}

/* ---- secrets from the keylog ---- */

/*
 * Keylog line: "LABEL <client random hex> <secret hex>". Keeps the two
 * application traffic secrets of generation 0; ignores the rest.
 */
void mw_tls_rec_keylog(struct mw_tls_sess *s, const char *line)
{
	static const char cl[] = "CLIENT_TRAFFIC_SECRET_0 ";
	static const char sl[] = "SERVER_TRAFFIC_SECRET_0 ";
	struct mw_tls_dir *d;
	const char *p;
	bool client;
	size_t n = 0;
	int hi, lo;

	if (!strncmp(line, cl, sizeof(cl) - 1))
		client = true;
	else if (!strncmp(line, sl, sizeof(sl) - 1))
		client = false;
	else
		return;
	/* the client writes with the client secret */
	d = client == s->ctx->server ? &s->rec.rd : &s->rec.wr;
	if (d == &s->rec.wr) {
		s->rec.wr_mark = BIO_number_written(SSL_get_wbio(s->ssl));
		s->rec.wr_marked = true;
	}
	p = strchr(line + sizeof(cl) - 1, ' ');
	if (!p)
		return;
	for (p++; *p && n < sizeof(d->secret); p += 2, n++) {
		hi = OPENSSL_hexchar2int((unsigned char)p[0]);
		lo = hi < 0 ? -1 : OPENSSL_hexchar2int((unsigned char)p[1]);
		if (lo < 0)
			break;
		d->secret[n] = (uint8_t)(hi << 4 | lo);
	}
	d->secret_len = *p ? 0 : n;
}

static void dir_wipe(struct mw_tls_dir *d)
{
	OPENSSL_cleanse(d->secret, sizeof(d->secret));
	OPENSSL_cleanse(d->iv, sizeof(d->iv));
	d->secret_len = 0;
}

/* Suites of TLS 1.3 that have an EVP AEAD with a 16-byte tag. */
static const char *suite_cipher(uint16_t id, size_t *key_len)
{
	switch (id) {
	case 0x1301:
		*key_len = 16;
		return "AES-128-GCM";
	case 0x1302:
		*key_len = 32;
		return "AES-256-GCM";
	case 0x1303:
		*key_len = 32;
		return "ChaCha20-Poly1305";
	default:
		return NULL;
	}
}

/*
 * Makes r's cipher and both directions' keys for the suite c from the
 * generation-0 secrets the keylog gave. Returns 0, or -1 when anything is
 * unusual (a suite we do not seal, a secret missing, OpenSSL failing): the
 * caller then leaves the records to libssl and frees r.
 */
int mw_tls_rec_keys_init(struct mw_tls_rec *r, const SSL_CIPHER *c)
{
	const char *name =
		suite_cipher(SSL_CIPHER_get_protocol_id(c), &r->key_len);
	const EVP_MD *md = SSL_CIPHER_get_handshake_digest(c);

	if (!name || !md || r->rd.secret_len != (size_t)EVP_MD_get_size(md) ||
	    r->wr.secret_len != r->rd.secret_len)
		return -1;
	r->secret_len = r->rd.secret_len;
	snprintf(r->md_name, sizeof(r->md_name), "%s", EVP_MD_get0_name(md));
	r->cipher = EVP_CIPHER_fetch(NULL, name, NULL);
	r->kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_TLS1_3_KDF, NULL);
	if (!r->cipher || !r->kdf)
		return -1;
	if (dir_key(r, &r->rd, r->rd.secret, 0) < 0 ||
	    dir_key(r, &r->wr, r->wr.secret, 1) < 0)
		return -1;
	return 0;
}

void mw_tls_rec_free(struct mw_tls_rec *r)
{
	EVP_CIPHER_CTX_free(r->rd.cc);
	EVP_CIPHER_CTX_free(r->wr.cc);
	r->rd.cc = r->wr.cc = NULL;
	dir_wipe(&r->rd);
	dir_wipe(&r->wr);
	EVP_CIPHER_free(r->cipher);
	EVP_KDF_free(r->kdf);
	r->cipher = NULL;
	r->kdf = NULL;
	if (r->plain)
		OPENSSL_clear_free(r->plain, MW_TLS_REC_CT_MAX);
	r->plain = NULL;
}
