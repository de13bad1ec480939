/* SPDX-License-Identifier: MIT */
/*
 * The libssl record engine: application records sealed and opened by
 * SSL_write()/SSL_read()/SSL_shutdown() through the memory BIO, for a
 * session that MIGWIRE_TLS_RECORDS=openssl leaves to libssl or that
 * tls_rec.c could not take over (see mw_tls_rec_start()). The wire is the
 * same as tls_rec.c's; libssl copies each record once more on each side.
 * Each call lends the caller's buffers to the BIO for that call only.
 * Reached only through mw_tls_ssl_rec_ops from tls_data.c, on the
 * session's thread; calls tls_bio.c and tls_err.c.
 */
#include "tls_int.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/err.h>

/* largest single SSL_write: a multiple of the record size below INT_MAX */
#define TLS_WRITE_MAX (1u << 30)

static int seal_write(struct mw_tls_sess *s, const void *p, size_t n,
		      struct mw_err *err)
{
	size_t chunk;
	int r;

	while (n) {
		chunk = n < TLS_WRITE_MAX ? n : TLS_WRITE_MAX;
		ERR_clear_error();
		r = SSL_write(s->ssl, p, (int)chunk);
		if (r <= 0) {
			r = mw_tls_ssl_fail(s, r, "seal", err);
			return r ? r :
				   mw_err_set(err, -MW_E_TLS,
					      "TLS seal after close");
		}
		p = (const uint8_t *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * DESIGN: records are always full (16 KiB) except the very last one, so
 * the ciphertext size depends only on the total and never on how the
 * plaintext is cut into iovecs. Runs of whole records inside one iovec
 * are written from it directly; only a record that straddles iovecs is
 * gathered into s->stage first.
 */
static ssize_t ssl_seal(struct mw_tls_sess *s, const struct iovec *iov,
			int iovcnt, size_t total, uint8_t *out, size_t out_cap,
			struct mw_err *err)
{
	size_t left = total, off = 0, avail, n, take;
	ssize_t ret = 0;
	int i = 0;

	(void)iovcnt;
	mw_tls_bio_lend(&s->loan, NULL, 0, out, out_cap);
	while (left) {
		while (off == iov[i].iov_len) {
			i++;
			off = 0;
		}
		avail = iov[i].iov_len - off;
		if (avail == left || avail >= MW_TLS_REC_PLAIN) {
			n = avail == left ? avail :
					    avail - avail % MW_TLS_REC_PLAIN;
			ret = seal_write(s,
					 (const uint8_t *)iov[i].iov_base + off,
					 n, err);
			off += n;
		} else {
			n = left < MW_TLS_REC_PLAIN ? left : MW_TLS_REC_PLAIN;
			for (take = 0; take < n; off += avail, take += avail) {
				while (off == iov[i].iov_len) {
					i++;
					off = 0;
				}
				avail = iov[i].iov_len - off;
				if (avail > n - take)
					avail = n - take;
				memcpy(s->stage + take,
				       (const uint8_t *)iov[i].iov_base + off,
				       avail);
			}
			ret = seal_write(s, s->stage, n, err);
		}
		if (ret < 0)
			goto done;
		left -= n;
	}
	ret = (ssize_t)s->loan.out_len;
done:
	mw_tls_bio_unlend(&s->loan);
	return ret;
}

static ssize_t ssl_open(struct mw_tls_sess *s, const uint8_t *in, size_t in_len,
			size_t *consumed, uint8_t *out, size_t out_cap,
			struct mw_err *err)
{
	size_t total = 0, want;
	ssize_t ret;
	int r;

	/* no output buffer: a KeyUpdate reply or alert spills */
	mw_tls_bio_lend(&s->loan, in, in_len, NULL, 0);
	while (total < out_cap) {
		want = out_cap - total;
		ERR_clear_error();
		r = SSL_read(s->ssl, out + total,
			     want < INT_MAX ? (int)want : INT_MAX);
		if (r > 0) {
			total += (size_t)r;
			continue;
		}
		ret = mw_tls_ssl_fail(s, r, "connection", err);
		if (s->loan.spill_over)
			ret = mw_err_set(
				err, -MW_E_TLS,
				"TLS connection failed: more than %u KiB of TLS replies owed to the peer while we receive (a key update flood)",
				MW_TLS_SPILL_MAX >> 10);
		if (ret == -EAGAIN || ret == 0) {
			if (!total)
				goto done;
			break;
		}
		if (!total)
			goto done;
		/* deliver what was good; the error comes with the next call */
		s->sticky = *err;
		break;
	}
	ret = (ssize_t)total;
done:
	*consumed = s->loan.in_off;
	mw_tls_bio_unlend(&s->loan);
	return ret;
}

static ssize_t ssl_close(struct mw_tls_sess *s, uint8_t *out, size_t out_cap,
			 struct mw_err *err)
{
	ssize_t ret;
	int r;

	mw_tls_bio_lend(&s->loan, NULL, 0, out, out_cap);
	ERR_clear_error();
	r = SSL_shutdown(s->ssl);
	if (r < 0) {
		ret = mw_tls_ssl_fail(s, r, "close", err);
		if (ret != -EAGAIN)
			goto done;
	}
	ret = (ssize_t)s->loan.out_len;
done:
	mw_tls_bio_unlend(&s->loan);
	return ret;
}

static size_t ssl_pending(const struct mw_tls_sess *s)
{
	int n = SSL_pending(s->ssl);

	return n > 0 ? (size_t)n : 0;
}

/* libssl answers a KeyUpdate inside SSL_write(), in the seal_bound()
 * slack: nothing beyond it */
static size_t ssl_seal_extra(const struct mw_tls_sess *s)
{
	(void)s;
	return 0;
}

const struct mw_tls_rec_ops mw_tls_ssl_rec_ops = {
	.seal = ssl_seal,
	.open = ssl_open,
	.close = ssl_close,
	.pending = ssl_pending,
	.seal_extra = ssl_seal_extra,
};
