/* SPDX-License-Identifier: MIT */
/*
 * The data phase of mw_tls.h: seal, open, close and pending. Each entry
 * point checks the call (handshake done, room for the output), puts any
 * handshake bytes that spilled earlier in front of the output so records
 * leave in order, and hands the rest to the session's record engine
 * through s->rec_ops: tls_rec.c (our own records) or tls_ssl_rec.c
 * (libssl's). A third engine (kTLS) would be one more table. Runs on the
 * session's thread; calls only the engines (through the table) and
 * tls_bio.c.
 */
#include "tls_int.h"

#include <errno.h>

/* a close_notify record: header, 2 byte alert, content type, tag */
#define TLS_CLOSE_LEN (5u + 2u + 1u + 16u)

size_t mw_tls_seal_bound(size_t plain_len)
{
	size_t nrec = plain_len / MW_TLS_REC_PLAIN +
		      (plain_len % MW_TLS_REC_PLAIN != 0);

	return plain_len + nrec * MW_TLS_REC_OVERHEAD + MW_TLS_SEAL_SLACK;
}

ssize_t mw_tls_seal(struct mw_tls_sess *s, const struct iovec *iov, int iovcnt,
		    uint8_t *out, size_t out_cap, struct mw_err *err)
{
	size_t total = 0, need, used;
	ssize_t ret;
	int i;

	if (!s->hs_done)
		return mw_err_set(err, -MW_E_TLS, "TLS seal before handshake");
	for (i = 0; i < iovcnt; i++) {
		if (total + iov[i].iov_len < total)
			return mw_err_set(err, -EINVAL,
					  "TLS seal: size overflow");
		total += iov[i].iov_len;
	}
	need = mw_tls_seal_bound(total) - MW_TLS_SEAL_SLACK +
	       s->loan.spill_len + s->rec_ops->seal_extra(s);
	if (out_cap < need)
		return mw_err_set(
			err, -MW_E_NOSPACE,
			"TLS seal: %zu plaintext bytes need %zu bytes of output, buffer has %zu",
			total, need, out_cap);
	used = mw_tls_bio_flush(&s->loan, out, out_cap);
	ret = s->rec_ops->seal(s, iov, iovcnt, total, out + used,
			       out_cap - used, err);
	return ret < 0 ? ret : (ssize_t)used + ret;
}

ssize_t mw_tls_open(struct mw_tls_sess *s, const uint8_t *in, size_t in_len,
		    size_t *consumed, uint8_t *out, size_t out_cap,
		    struct mw_err *err)
{
	*consumed = 0;
	if (s->sticky.code)
		return mw_err_set(err, s->sticky.code, "%s", s->sticky.msg);
	if (!s->hs_done)
		return mw_err_set(err, -MW_E_TLS, "TLS open before handshake");
	if (!out_cap)
		return mw_err_set(err, -EINVAL, "TLS open: no output space");
	return s->rec_ops->open(s, in, in ? in_len : 0, consumed, out, out_cap,
				err);
}

ssize_t mw_tls_close(struct mw_tls_sess *s, uint8_t *out, size_t out_cap,
		     struct mw_err *err)
{
	size_t need = s->loan.spill_len + TLS_CLOSE_LEN, used;
	ssize_t ret;

	if (!s->hs_done)
		return mw_err_set(err, -MW_E_TLS, "TLS close before handshake");
	if (out_cap < need)
		return mw_err_set(
			err, -MW_E_NOSPACE,
			"TLS close: need %zu bytes of output, buffer has %zu",
			need, out_cap);
	used = mw_tls_bio_flush(&s->loan, out, out_cap);
	ret = s->rec_ops->close(s, out + used, out_cap - used, err);
	return ret < 0 ? ret : (ssize_t)used + ret;
}

size_t mw_tls_pending(struct mw_tls_sess *s)
{
	return s->rec_ops->pending(s);
}
