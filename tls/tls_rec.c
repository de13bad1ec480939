/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.3 application records sealed and opened here, after OpenSSL has
 * done the handshake: what kernel TLS does in the kernel, done in user
 * space with OpenSSL's own AEAD (EVP) and key schedule (TLS13-KDF).
 *
 * Why: libssl copies every record twice in user space (plaintext into its
 * write buffer before sealing in place; ciphertext into its read buffer
 * and plaintext out of it again). Sealing straight from the caller's
 * iovecs into the caller's output buffer, and opening straight from the
 * receive buffer into the frame's destination, removes those copies (see
 * docs/performance.md, "Where T2 goes").
 *
 * The wire does not change: the records are RFC 8446 records under the
 * traffic keys libssl negotiated, so a peer that leaves records to libssl
 * (MIGWIRE_TLS_RECORDS=openssl, or an older migwire) reads them, and we
 * read its. Supported after the handshake: application data, close_notify
 * and other alerts, NewSessionTicket (ignored) and KeyUpdate both ways; we
 * update our own write key every MW_TLS_REKEY_RECORDS records, below the
 * AES-GCM limit of RFC 8446 section 5.5.
 *
 * The traffic secrets come from the keylog callback, the only place
 * OpenSSL 3.0 hands them out. A session that takes the records over keeps
 * the current secret of each direction (KeyUpdate derives the next one
 * from it) until it is freed; any other session wipes them at once.
 *
 * We send no alert when a record fails (libssl would send bad_record_mac
 * or unexpected_message): the transport closes the connection and the
 * peer learns why from its own error or our ERROR frame.
 */
#include "tls_int.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>

#define REC_HDR 5u
#define REC_TAG 16u
#define REC_IV 12u
/* RFC 8446 5.2: TLSCiphertext.length at most 2^14 + 256 */
#define REC_CT_MAX (MW_TLS_REC_PLAIN + 256u)
#define CT_ALERT 0x15
#define CT_HANDSHAKE 0x16
#define CT_APPDATA 0x17
#define HS_NEW_SESSION_TICKET 4
#define HS_KEY_UPDATE 24
/* a KeyUpdate record: header, 4 + 1 byte message, content type, tag */
#define KU_REC_LEN (REC_HDR + 5u + 1u + REC_TAG)

/* walks a list of iovecs */
struct iov_cur {
	const struct iovec *iov;
	int i;
	size_t off;
};

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
	uint8_t key[32], iv[REC_IV];
	int ret = -1;

	if (!cc || hkdf_label(r, secret, "key", key, r->key_len) < 0 ||
	    hkdf_label(r, secret, "iv", iv, REC_IV) < 0 ||
	    EVP_CipherInit_ex2(cc, r->cipher, key, NULL, enc, NULL) != 1)
		goto out;
	EVP_CIPHER_CTX_free(d->cc);
	d->cc = cc;
	cc = NULL;
	if (secret != d->secret)
		memcpy(d->secret, secret, r->secret_len);
	memcpy(d->iv, iv, REC_IV);
	d->seq = 0;
	ret = 0;
out:
	EVP_CIPHER_CTX_free(cc);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	return ret;
}

/* RFC 8446 7.2: moves to the next application traffic secret. */
static int dir_update(struct mw_tls_rec *r, struct mw_tls_dir *d, int enc)
{
	uint8_t next[EVP_MAX_MD_SIZE];
	int ret = -1;

	if (hkdf_label(r, d->secret, "traffic upd", next, r->secret_len) == 0)
		ret = dir_key(r, d, next, enc);
	OPENSSL_cleanse(next, sizeof(next));
	return ret;
}

/* RFC 8446 5.3: the write IV xor the 64-bit record number. */
static void dir_nonce(const struct mw_tls_dir *d, uint8_t *nonce)
{
	int i;

	memcpy(nonce, d->iv, REC_IV);
	for (i = 0; i < 8; i++)
		nonce[REC_IV - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

static void rec_hdr(uint8_t *p, size_t clen)
{
	p[0] = CT_APPDATA;
	p[1] = 3;
	p[2] = 3;
	p[3] = (uint8_t)(clen >> 8);
	p[4] = (uint8_t)clen;
}

/* ---- start and stop ---- */

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

int mw_tls_rec_start(struct mw_tls_sess *s, struct mw_err *err)
{
	struct mw_tls_rec *r = &s->rec;
	const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
	const EVP_MD *md;
	const char *name;
	int ret = 1;

	ERR_clear_error();
	/*
	 * Anything unusual leaves the records to libssl (ret 1): the wire is
	 * the same either way. Both directions restart at record 0 here, so
	 * libssl must not have used an application key yet: it holds no
	 * record bytes it read, it owes no KeyUpdate, no early data, and a
	 * server wrote nothing after its application key was made (a
	 * NewSessionTicket would be record 0). A client makes its keys before
	 * it sends its last flight under the handshake keys, and libssl
	 * writes nothing more before SSL_do_handshake() returns.
	 */
	if (SSL_version(s->ssl) != TLS1_3_VERSION || !c ||
	    SSL_has_pending(s->ssl) ||
	    SSL_get_key_update_type(s->ssl) != SSL_KEY_UPDATE_NONE ||
	    SSL_get_early_data_status(s->ssl) == SSL_EARLY_DATA_ACCEPTED)
		goto out;
	if (s->ctx->server && (!r->wr_marked || BIO_number_written(SSL_get_wbio(
							s->ssl)) != r->wr_mark))
		goto out;
	name = suite_cipher(SSL_CIPHER_get_protocol_id(c), &r->key_len);
	md = SSL_CIPHER_get_handshake_digest(c);
	if (!name || !md || r->rd.secret_len != (size_t)EVP_MD_get_size(md) ||
	    r->wr.secret_len != r->rd.secret_len)
		goto out;
	r->secret_len = r->rd.secret_len;
	snprintf(r->md_name, sizeof(r->md_name), "%s", EVP_MD_get0_name(md));
	r->cipher = EVP_CIPHER_fetch(NULL, name, NULL);
	r->kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_TLS1_3_KDF, NULL);
	if (!r->cipher || !r->kdf)
		goto out;
	r->plain = malloc(REC_CT_MAX);
	if (!r->plain) {
		ret = mw_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (dir_key(r, &r->rd, r->rd.secret, 0) < 0 ||
	    dir_key(r, &r->wr, r->wr.secret, 1) < 0)
		goto out;
	if (!r->rekey_at)
		r->rekey_at = MW_TLS_REKEY_RECORDS;
	s->own_rec = true;
	ret = 0;
out:
	ERR_clear_error();
	if (ret)
		mw_tls_rec_free(r);
	/* the key schedule from here on needs the secrets: keep them only
	 * in the session that uses them */
	if (!s->own_rec) {
		dir_wipe(&r->rd);
		dir_wipe(&r->wr);
	}
	return ret < 0 ? ret : 0;
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
		OPENSSL_clear_free(r->plain, REC_CT_MAX);
	r->plain = NULL;
}

/* ---- sealing ---- */

static int seal_fail(struct mw_err *err)
{
	char e[256];

	return mw_err_set(err, -MW_E_TLS, "TLS seal failed: %s",
			  mw_tls_ossl_errstr(e, sizeof(e)));
}

/*
 * Seals n bytes from the cursor as one record of type ctype at the end of
 * the lent output. The caller checked the room.
 */
static int seal_one(struct mw_tls_sess *s, uint8_t ctype, struct iov_cur *cur,
		    size_t n, struct mw_err *err)
{
	struct mw_tls_dir *d = &s->rec.wr;
	uint8_t *p = s->out + s->out_len, *q, nonce[REC_IV];
	size_t clen = n + 1 + REC_TAG, piece;
	int len;

	rec_hdr(p, clen);
	dir_nonce(d, nonce);
	if (EVP_EncryptInit_ex(d->cc, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(d->cc, NULL, &len, p, REC_HDR) != 1)
		return seal_fail(err);
	q = p + REC_HDR;
	while (n) {
		while (cur->off == cur->iov[cur->i].iov_len) {
			cur->i++;
			cur->off = 0;
		}
		piece = cur->iov[cur->i].iov_len - cur->off;
		if (piece > n)
			piece = n;
		if (EVP_EncryptUpdate(
			    d->cc, q, &len,
			    (const uint8_t *)cur->iov[cur->i].iov_base +
				    cur->off,
			    (int)piece) != 1)
			return seal_fail(err);
		q += len;
		cur->off += piece;
		n -= piece;
	}
	if (EVP_EncryptUpdate(d->cc, q, &len, &ctype, 1) != 1)
		return seal_fail(err);
	q += len;
	if (EVP_EncryptFinal_ex(d->cc, q, &len) != 1)
		return seal_fail(err);
	q += len;
	if (q != p + REC_HDR + clen - REC_TAG ||
	    EVP_CIPHER_CTX_ctrl(d->cc, EVP_CTRL_AEAD_GET_TAG, REC_TAG, q) != 1)
		return seal_fail(err);
	d->seq++;
	s->out_len += REC_HDR + clen;
	return 0;
}

/* Our KeyUpdate when the key is worn or the peer asked; then the new key. */
static int seal_key_update(struct mw_tls_sess *s, struct mw_err *err)
{
	struct mw_tls_rec *r = &s->rec;
	uint8_t msg[5] = { HS_KEY_UPDATE, 0, 0, 1,
			   0 /* update_not_requested */ };
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(msg) };
	struct iov_cur cur = { .iov = &iov };
	int ret;

	if (r->wr.seq < r->rekey_at && !r->ku_owed)
		return 0;
	ret = seal_one(s, CT_HANDSHAKE, &cur, sizeof(msg), err);
	if (ret)
		return ret;
	/* the caller stops the write side if this fails: the peer moves to
	 * the next key with the record just sealed */
	if (dir_update(r, &r->wr, 1) < 0)
		return seal_fail(err);
	r->ku_owed = false;
	r->key_updates_sent++;
	return 0;
}

/*
 * The write side after a failure or our close_notify: nothing more may be
 * sealed (a failed rekey must not go on under the old key).
 */
static int wr_dead(struct mw_tls_sess *s, int ret, struct mw_err *err)
{
	if (!s->rec.wr_err.code)
		s->rec.wr_err = *err;
	return ret;
}

ssize_t mw_tls_rec_seal(struct mw_tls_sess *s, const struct iovec *iov,
			int iovcnt, size_t total, struct mw_err *err)
{
	struct iov_cur cur = { .iov = iov };
	size_t n;
	int ret;

	(void)iovcnt;
	if (s->rec.wr_err.code)
		return mw_err_set(err, s->rec.wr_err.code, "%s",
				  s->rec.wr_err.msg);
	ret = seal_key_update(s, err);
	while (!ret && total) {
		n = total < MW_TLS_REC_PLAIN ? total : MW_TLS_REC_PLAIN;
		ret = seal_one(s, CT_APPDATA, &cur, n, err);
		total -= n;
	}
	return ret ? wr_dead(s, ret, err) : (ssize_t)s->out_len;
}

ssize_t mw_tls_rec_close(struct mw_tls_sess *s, struct mw_err *err)
{
	static const uint8_t alert[2] = { 1 /* warning */,
					  0 /* close_notify */ };
	struct iovec iov = { .iov_base = (void *)(uintptr_t)alert,
			     .iov_len = 2 };
	struct iov_cur cur = { .iov = &iov };
	struct mw_err closed = { 0 };
	int ret;

	if (s->rec.wr_err.code)
		return mw_err_set(err, s->rec.wr_err.code, "%s",
				  s->rec.wr_err.msg);
	ret = seal_one(s, CT_ALERT, &cur, sizeof(alert), err);
	if (ret)
		return wr_dead(s, ret, err);
	mw_err_set(&closed, -MW_E_TLS, "TLS seal after close");
	s->rec.wr_err = closed;
	return (ssize_t)s->out_len;
}

/* ---- opening ---- */

/* A record's handshake messages: tickets are dropped, KeyUpdate applied. */
static int open_handshake(struct mw_tls_sess *s, const uint8_t *p, size_t n,
			  struct mw_err *err)
{
	struct mw_tls_rec *r = &s->rec;
	size_t len;
	char e[256];

	/* RFC 8446 5.1: no zero-length handshake fragments */
	if (!n)
		return mw_err_set(
			err, -MW_E_TLS,
			"TLS connection failed: empty handshake record");
	while (n) {
		if (n < 4 || (len = (size_t)p[1] << 16 | (size_t)p[2] << 8 |
				    p[3]) > n - 4)
			return mw_err_set(
				err, -MW_E_TLS,
				"TLS connection failed: handshake message split across records (not supported after the handshake)");
		if (p[0] == HS_KEY_UPDATE) {
			if (len != 1 || p[4] > 1)
				return mw_err_set(
					err, -MW_E_TLS,
					"TLS connection failed: malformed KeyUpdate");
			/* must end its record: the next one uses the new key */
			if (n != 5)
				return mw_err_set(
					err, -MW_E_TLS,
					"TLS connection failed: data after KeyUpdate in the same record");
			if (dir_update(r, &r->rd, 0) < 0)
				return mw_err_set(
					err, -MW_E_TLS,
					"TLS connection failed: cannot derive the peer's next key: %s",
					mw_tls_ossl_errstr(e, sizeof(e)));
			if (p[4])
				r->ku_owed = true;
			r->key_updates_recv++;
		} else if (p[0] != HS_NEW_SESSION_TICKET || s->ctx->server) {
			return mw_err_set(
				err, -MW_E_TLS,
				"TLS connection failed: unexpected handshake message %u after the handshake",
				p[0]);
		}
		p += 4 + len;
		n -= 4 + len;
	}
	return 0;
}

static int open_alert(struct mw_tls_sess *s, const uint8_t *p, size_t n,
		      struct mw_err *err)
{
	const char *text;

	if (n != 2)
		return mw_err_set(err, -MW_E_TLS,
				  "TLS connection failed: malformed alert");
	if (p[1] == SSL_AD_CLOSE_NOTIFY) {
		s->rec.closed = true;
		return 0;
	}
	/* the one alert TLS 1.3 lets a peer send and go on (libssl too) */
	if (p[1] == SSL_AD_USER_CANCELLED)
		return 0;
	/* libssl's words for it, as when libssl reads the alert */
	text = ERR_reason_error_string(
		ERR_PACK(ERR_LIB_SSL, 0, SSL_AD_REASON_OFFSET + p[1]));
	return mw_tls_fail_alert(s, p[1],
				 text ? text : SSL_alert_desc_string_long(p[1]),
				 "connection", err);
}

/*
 * Opens the record at in[0..] (clen ciphertext bytes after the header)
 * into dst, which has room for clen - 16 bytes. Returns the content
 * length and sets *ctype, or an error.
 */
static ssize_t open_one(struct mw_tls_sess *s, const uint8_t *in, size_t clen,
			uint8_t *dst, uint8_t *ctype, struct mw_err *err)
{
	struct mw_tls_dir *d = &s->rec.rd;
	uint8_t nonce[REC_IV];
	size_t n = clen - REC_TAG;
	int len, fin;

	dir_nonce(d, nonce);
	if (EVP_DecryptInit_ex(d->cc, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(d->cc, NULL, &len, in, REC_HDR) != 1 ||
	    EVP_DecryptUpdate(d->cc, dst, &len, in + REC_HDR, (int)n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(d->cc, EVP_CTRL_AEAD_SET_TAG, REC_TAG,
				(void *)(uintptr_t)(in + REC_HDR + n)) != 1)
		goto fail;
	fin = EVP_DecryptFinal_ex(d->cc, dst + len, &len);
	ERR_clear_error();
	if (fin != 1) {
		OPENSSL_cleanse(dst, n);
		return mw_err_set(
			err, -MW_E_TLS,
			"TLS record failed authentication, data corrupted or injected (bad record mac, record %llu of this key)",
			(unsigned long long)d->seq);
	}
	d->seq++;
	/* RFC 8446 5.4: zero padding, then the real content type */
	while (n && !dst[n - 1])
		n--;
	if (!n)
		return mw_err_set(
			err, -MW_E_TLS,
			"TLS connection failed: record without a content type");
	*ctype = dst[--n];
	if (n > MW_TLS_REC_PLAIN)
		return mw_err_set(
			err, -MW_E_TLS,
			"TLS connection failed: record of %zu bytes is over the 16 KiB limit",
			n);
	return (ssize_t)n;
fail : {
	char e[256];

	return mw_err_set(err, -MW_E_TLS, "TLS open failed: %s",
			  mw_tls_ossl_errstr(e, sizeof(e)));
}
}

/* Checks the 5-byte header; returns the ciphertext length or an error. */
static ssize_t hdr_check(const uint8_t *h, struct mw_err *err)
{
	size_t clen = (size_t)h[3] << 8 | h[4];

	if (h[0] != CT_APPDATA)
		return mw_err_set(
			err, -MW_E_TLS,
			"TLS connection failed: record of type %u after the handshake (only application data is sent encrypted)",
			h[0]);
	if (h[1] != 3 || h[2] != 3)
		return mw_err_set(
			err, -MW_E_TLS,
			"TLS connection failed: record version %u.%u (want 3.3)",
			h[1], h[2]);
	if (clen < 1 + REC_TAG || clen > REC_CT_MAX)
		return mw_err_set(
			err, -MW_E_TLS,
			"TLS connection failed: record length %zu out of range",
			clen);
	return (ssize_t)clen;
}

/*
 * Fills out with plaintext: first what an earlier record left in r->plain,
 * then whole records from the lent input, each opened straight into out
 * when its plaintext fits there. Returns bytes written (0 with *eof on
 * close_notify), -EAGAIN for more input, or an error.
 */
static ssize_t open_into(struct mw_tls_sess *s, uint8_t *out, size_t out_cap,
			 size_t *total, struct mw_err *err)
{
	struct mw_tls_rec *r = &s->rec;
	const uint8_t *in;
	uint8_t ctype = 0, *dst;
	ssize_t clen, n;
	size_t take;
	int ret;

	while (*total < out_cap) {
		if (r->plain_off < r->plain_len) {
			take = r->plain_len - r->plain_off;
			if (take > out_cap - *total)
				take = out_cap - *total;
			memcpy(out + *total, r->plain + r->plain_off, take);
			r->plain_off += take;
			*total += take;
			continue;
		}
		if (r->closed)
			return 0;
		if (s->in_len - s->in_off < REC_HDR)
			return -EAGAIN;
		in = s->in + s->in_off;
		clen = hdr_check(in, err);
		if (clen < 0)
			return clen;
		if (s->in_len - s->in_off < REC_HDR + (size_t)clen)
			return -EAGAIN;
		dst = out_cap - *total >= (size_t)clen - REC_TAG ?
			      out + *total :
			      r->plain;
		n = open_one(s, in, (size_t)clen, dst, &ctype, err);
		if (n < 0)
			return n;
		s->in_off += REC_HDR + (size_t)clen;
		ret = 0;
		if (ctype == CT_APPDATA) {
			if (dst == r->plain) {
				r->plain_off = 0;
				r->plain_len = (size_t)n;
			} else {
				*total += (size_t)n;
			}
		} else if (ctype == CT_HANDSHAKE) {
			ret = open_handshake(s, dst, (size_t)n, err);
		} else if (ctype == CT_ALERT) {
			ret = open_alert(s, dst, (size_t)n, err);
		} else {
			ret = mw_err_set(
				err, -MW_E_TLS,
				"TLS connection failed: record of content type %u",
				ctype);
		}
		if (ret)
			return ret;
	}
	return 0;
}

ssize_t mw_tls_rec_open(struct mw_tls_sess *s, uint8_t *out, size_t out_cap,
			struct mw_err *err)
{
	size_t total = 0;
	ssize_t ret = open_into(s, out, out_cap, &total, err);

	if (ret == -EAGAIN || ret == 0)
		return total ? (ssize_t)total : ret;
	/* the session is dead: every later call fails the same way, and
	 * what was good before the error is delivered first */
	s->sticky = *err;
	return total ? (ssize_t)total : ret;
}

size_t mw_tls_rec_pending(const struct mw_tls_sess *s)
{
	return s->rec.plain_len - s->rec.plain_off;
}

size_t mw_tls_rec_seal_extra(const struct mw_tls_sess *s)
{
	const struct mw_tls_rec *r = &s->rec;

	return r->wr.seq >= r->rekey_at || r->ku_owed ? KU_REC_LEN : 0;
}

ssize_t mw_tls_rec_seal_type(struct mw_tls_sess *s, uint8_t ctype,
			     const void *p, size_t n, uint8_t *out,
			     size_t out_cap, struct mw_err *err)
{
	struct iovec iov = { .iov_base = (void *)(uintptr_t)p, .iov_len = n };
	struct iov_cur cur = { .iov = &iov };
	ssize_t ret;

	if (!s->own_rec || out_cap < n + REC_HDR + 1 + REC_TAG ||
	    n + 1 + REC_TAG > REC_CT_MAX)
		return mw_err_set(err, -EINVAL, "seal_type: not possible");
	s->out = out;
	s->out_cap = out_cap;
	s->out_len = 0;
	ret = seal_one(s, ctype, &cur, n, err);
	if (!ret)
		ret = (ssize_t)s->out_len;
	s->out = NULL;
	s->out_cap = s->out_len = 0;
	return ret;
}
