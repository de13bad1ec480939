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
 * The keys come from tls_rec_key.c. This file is the engine behind
 * mw_tls_own_rec_ops: tls_data.c calls it through that table on the
 * session's thread, with the caller's buffers as arguments; it calls
 * tls_rec_key.c and tls_err.c, nothing above them.
 *
 * We send no alert when a record fails (libssl would send bad_record_mac
 * or unexpected_message): the transport closes the connection and the
 * peer learns why from its own error or our ERROR frame.
 */
#include "tls_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#define REC_HDR 5u
#define REC_TAG 16u
#define REC_IV MW_TLS_REC_IV
#define REC_CT_MAX MW_TLS_REC_CT_MAX
#define CT_ALERT 0x15
#define CT_HANDSHAKE 0x16
#define CT_APPDATA 0x17
#define HS_NEW_SESSION_TICKET 4
#define HS_KEY_UPDATE 24
/* a record of n content bytes: header, content, content type, tag */
#define REC_LEN(n) (REC_HDR + (n) + 1u + REC_TAG)
/* a KeyUpdate record: a 4 + 1 byte message */
#define KU_REC_LEN REC_LEN(5u)

/* walks a list of iovecs */
struct iov_cur {
	const struct iovec *iov;
	int i;
	size_t off;
};

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

/* ---- start ---- */

int mw_tls_rec_start(struct mw_tls_sess *s, struct mw_err *err)
{
	struct mw_tls_rec *r = &s->rec;
	const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
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
	if (mw_tls_rec_keys_init(r, c) < 0)
		goto out;
	r->plain = malloc(REC_CT_MAX);
	if (!r->plain) {
		ret = mw_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (!r->rekey_at)
		r->rekey_at = MW_TLS_REKEY_RECORDS;
	s->rec_ops = &mw_tls_own_rec_ops;
	ret = 0;
out:
	ERR_clear_error();
	/* the key schedule from here on needs the secrets: keep them only
	 * in the session that uses them (free wipes them) */
	if (ret)
		mw_tls_rec_free(r);
	return ret < 0 ? ret : 0;
}

/* ---- sealing ---- */

static int seal_fail(struct mw_err *err)
{
	char e[256];

	return mw_err_set(err, -MW_E_TLS, "TLS seal failed: %s",
			  mw_tls_ossl_errstr(e, sizeof(e)));
}

/*
 * Seals n bytes from the cursor as one record of type ctype under d into
 * p, which the caller checked has room for REC_LEN(n) bytes.
 */
static int seal_one(struct mw_tls_dir *d, uint8_t ctype, struct iov_cur *cur,
		    size_t n, uint8_t *p, struct mw_err *err)
{
	uint8_t *q, nonce[REC_IV];
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
	return 0;
}

/*
 * Our KeyUpdate into out when the key is worn or the peer asked; then the
 * new key. Returns the bytes written (0: none due) or an error.
 */
static ssize_t seal_key_update(struct mw_tls_sess *s, uint8_t *out,
			       struct mw_err *err)
{
	struct mw_tls_rec *r = &s->rec;
	uint8_t msg[5] = { HS_KEY_UPDATE, 0, 0, 1,
			   0 /* update_not_requested */ };
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(msg) };
	struct iov_cur cur = { .iov = &iov };
	int ret;

	if (r->wr.seq < r->rekey_at && !r->ku_owed)
		return 0;
	ret = seal_one(&r->wr, CT_HANDSHAKE, &cur, sizeof(msg), out, err);
	if (ret)
		return ret;
	/* the caller stops the write side if this fails: the peer moves to
	 * the next key with the record just sealed */
	if (mw_tls_dir_update(r, &r->wr, 1) < 0)
		return seal_fail(err);
	r->ku_owed = false;
	r->key_updates_sent++;
	return REC_LEN(sizeof(msg));
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

/* out_cap: tls_data.c checked it against seal_bound() and seal_extra */
static ssize_t rec_seal(struct mw_tls_sess *s, const struct iovec *iov,
			int iovcnt, size_t total, uint8_t *out, size_t out_cap,
			struct mw_err *err)
{
	struct iov_cur cur = { .iov = iov };
	size_t n, len;
	ssize_t ret;

	(void)iovcnt;
	(void)out_cap;
	if (s->rec.wr_err.code)
		return mw_err_set(err, s->rec.wr_err.code, "%s",
				  s->rec.wr_err.msg);
	ret = seal_key_update(s, out, err);
	if (ret < 0)
		return wr_dead(s, (int)ret, err);
	len = (size_t)ret;
	while (total) {
		n = total < MW_TLS_REC_PLAIN ? total : MW_TLS_REC_PLAIN;
		ret = seal_one(&s->rec.wr, CT_APPDATA, &cur, n, out + len, err);
		if (ret)
			return wr_dead(s, (int)ret, err);
		len += REC_LEN(n);
		total -= n;
	}
	return (ssize_t)len;
}

static ssize_t rec_close(struct mw_tls_sess *s, uint8_t *out, size_t out_cap,
			 struct mw_err *err)
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
	(void)out_cap; /* tls_data.c checked it */
	ret = seal_one(&s->rec.wr, CT_ALERT, &cur, sizeof(alert), out, err);
	if (ret)
		return wr_dead(s, ret, err);
	mw_err_set(&closed, -MW_E_TLS, "TLS seal after close");
	s->rec.wr_err = closed;
	return REC_LEN(sizeof(alert));
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
			if (mw_tls_dir_update(r, &r->rd, 0) < 0)
				return mw_err_set(
					err, -MW_E_TLS,
					"TLS connection failed: cannot derive the peer's next key: %s",
					mw_tls_ossl_errstr(e, sizeof(e)));
			if (p[4])
				r->ku_owed = true;
			r->key_updates_recv++;
			/* each costs a key derivation: a peer that sends
			 * nothing else is flooding us */
			if (++r->ku_streak > MW_TLS_KU_STREAK_MAX)
				return mw_err_set(
					err, -MW_E_TLS,
					"TLS connection failed: more than %u KeyUpdates in a row without data (a key update flood)",
					MW_TLS_KU_STREAK_MAX);
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
 * then whole records from in[*off..in_len), each opened straight into out
 * when its plaintext fits there; *off moves past each record taken and
 * *total counts the plaintext. Returns 0 (out full, or close_notify),
 * -EAGAIN for more input, or an error.
 */
static ssize_t open_into(struct mw_tls_sess *s, const uint8_t *in_buf,
			 size_t in_len, size_t *off, uint8_t *out,
			 size_t out_cap, size_t *total, struct mw_err *err)
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
		if (in_len - *off < REC_HDR)
			return -EAGAIN;
		in = in_buf + *off;
		clen = hdr_check(in, err);
		if (clen < 0)
			return clen;
		if (in_len - *off < REC_HDR + (size_t)clen)
			return -EAGAIN;
		dst = out_cap - *total >= (size_t)clen - REC_TAG ?
			      out + *total :
			      r->plain;
		n = open_one(s, in, (size_t)clen, dst, &ctype, err);
		if (n < 0)
			return n;
		*off += REC_HDR + (size_t)clen;
		ret = 0;
		if (ctype == CT_APPDATA) {
			if (n)
				r->ku_streak = 0;
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

/* *consumed is 0 on entry (tls_data.c) */
static ssize_t rec_open(struct mw_tls_sess *s, const uint8_t *in, size_t in_len,
			size_t *consumed, uint8_t *out, size_t out_cap,
			struct mw_err *err)
{
	size_t total = 0;
	ssize_t ret =
		open_into(s, in, in_len, consumed, out, out_cap, &total, err);

	if (ret == -EAGAIN || ret == 0)
		return total ? (ssize_t)total : ret;
	/* the session is dead: every later call fails the same way, and
	 * what was good before the error is delivered first */
	s->sticky = *err;
	return total ? (ssize_t)total : ret;
}

static size_t rec_pending(const struct mw_tls_sess *s)
{
	return s->rec.plain_len - s->rec.plain_off;
}

/* Room the next seal needs beyond seal_bound(): a KeyUpdate now due. */
static size_t rec_seal_extra(const struct mw_tls_sess *s)
{
	const struct mw_tls_rec *r = &s->rec;

	return r->wr.seq >= r->rekey_at || r->ku_owed ? KU_REC_LEN : 0;
}

const struct mw_tls_rec_ops mw_tls_own_rec_ops = {
	.seal = rec_seal,
	.open = rec_open,
	.close = rec_close,
	.pending = rec_pending,
	.seal_extra = rec_seal_extra,
};

ssize_t mw_tls_rec_seal_type(struct mw_tls_sess *s, uint8_t ctype,
			     const void *p, size_t n, uint8_t *out,
			     size_t out_cap, struct mw_err *err)
{
	struct iovec iov = { .iov_base = (void *)(uintptr_t)p, .iov_len = n };
	struct iov_cur cur = { .iov = &iov };
	int ret;

	if (s->rec_ops != &mw_tls_own_rec_ops || out_cap < REC_LEN(n) ||
	    n + 1 + REC_TAG > REC_CT_MAX)
		return mw_err_set(err, -EINVAL, "seal_type: not possible");
	ret = seal_one(&s->rec.wr, ctype, &cur, n, out, err);
	return ret ? ret : (ssize_t)REC_LEN(n);
}
