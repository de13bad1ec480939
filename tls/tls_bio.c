/* SPDX-License-Identifier: MIT */
/*
 * The memory BIO between libssl and the caller's buffers (see DESIGN in
 * tls_int.h): its read side takes bytes from the input lent for one call,
 * its write side writes into the output lent for that call, and what does
 * not fit (or arrives while no output is lent) waits in the spill buffer
 * for the next call that lends one. It knows nothing of sessions: all its
 * state is one struct mw_tls_loan, driven by the session's thread.
 */
#include "tls_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t bio_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_meth;

static int loan_spill(struct mw_tls_loan *l, const char *p, size_t n)
{
	size_t cap = l->spill_cap ? l->spill_cap : 1024;
	uint8_t *q;

	if (l->spill_len + n > MW_TLS_SPILL_MAX) {
		l->spill_over = true;
		return -1;
	}
	while (cap < l->spill_len + n)
		cap *= 2;
	if (cap != l->spill_cap) {
		q = realloc(l->spill, cap);
		if (!q)
			return -1;
		l->spill = q;
		l->spill_cap = cap;
	}
	memcpy(l->spill + l->spill_len, p, n);
	l->spill_len += n;
	return 0;
}

/* Never asks OpenSSL to retry: what does not fit the lent buffer spills. */
static int bio_write(BIO *b, const char *buf, int len)
{
	struct mw_tls_loan *l = BIO_get_data(b);
	size_t n = (size_t)len, room;

	BIO_clear_retry_flags(b);
	if (l->out && !l->spill_len) {
		room = l->out_cap - l->out_len;
		if (room > n)
			room = n;
		memcpy(l->out + l->out_len, buf, room);
		l->out_len += room;
		buf += room;
		n -= room;
	}
	if (n && loan_spill(l, buf, n) < 0)
		return -1;
	return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
	struct mw_tls_loan *l = BIO_get_data(b);
	size_t n = l->in_len - l->in_off;

	BIO_clear_retry_flags(b);
	if (n == 0) {
		BIO_set_retry_read(b);
		return -1;
	}
	if (n > (size_t)len)
		n = (size_t)len;
	memcpy(buf, l->in + l->in_off, n);
	l->in_off += n;
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH;
}

static void bio_meth_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "mw_tls buffers");

	if (!m)
		return;
	if (!BIO_meth_set_write(m, bio_write) ||
	    !BIO_meth_set_read(m, bio_read) ||
	    !BIO_meth_set_ctrl(m, bio_ctrl)) {
		BIO_meth_free(m);
		return;
	}
	bio_meth = m;
}

int mw_tls_bio_init(void)
{
	pthread_once(&bio_once, bio_meth_init);
	return bio_meth ? 0 : -ENOMEM;
}

BIO *mw_tls_bio_new(struct mw_tls_loan *l)
{
	BIO *bio = BIO_new(bio_meth);

	if (!bio)
		return NULL;
	BIO_set_data(bio, l);
	BIO_set_init(bio, 1);
	return bio;
}

size_t mw_tls_bio_flush(struct mw_tls_loan *l, uint8_t *out, size_t out_cap)
{
	size_t n = l->spill_len < out_cap ? l->spill_len : out_cap;

	if (!n)
		return 0;
	memcpy(out, l->spill, n);
	memmove(l->spill, l->spill + n, l->spill_len - n);
	l->spill_len -= n;
	return n;
}

void mw_tls_bio_lend(struct mw_tls_loan *l, const uint8_t *in, size_t in_len,
		     uint8_t *out, size_t out_cap)
{
	l->in = in;
	l->in_len = in ? in_len : 0;
	l->in_off = 0;
	l->out = out;
	l->out_cap = out ? out_cap : 0;
	l->out_len = out ? mw_tls_bio_flush(l, out, out_cap) : 0;
}

void mw_tls_bio_unlend(struct mw_tls_loan *l)
{
	l->in = NULL;
	l->in_len = 0;
	l->in_off = 0;
	l->out = NULL;
	l->out_cap = 0;
	l->out_len = 0;
}

void mw_tls_bio_destroy(struct mw_tls_loan *l)
{
	free(l->spill);
	l->spill = NULL;
	l->spill_len = l->spill_cap = 0;
}
