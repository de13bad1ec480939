/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the TLS records after the handshake: sealing and opening,
 * small buffers, tampering, close_notify, KeyUpdate and rekeying, every
 * suite, and hostile record contents. Each case runs four times, with
 * records sealed and opened by our own layer or by libssl on either side
 * (the wire is the same).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tls_pair.h"

/* ---- tls/record ---- */

/* whether our own record layer (not libssl) runs s's records */
static bool own_rec(const struct mw_tls_sess *s)
{
	return s->rec_ops == &mw_tls_own_rec_ops;
}

static void pair_psk(struct pair *p)
{
	struct mw_tls_cfg cc = psk_cfg(false, psk_qemu, NULL);
	struct mw_tls_cfg sc = psk_cfg(true, psk_qemu, NULL);

	pair_connect(p, &cc, &sc);
	/* each side runs the record layer its group asks for */
	assert_int_equal(own_rec(p->c), !rec_cflags);
	assert_int_equal(own_rec(p->s), !rec_sflags);
}

static void record_tampered(void **state)
{
	uint8_t src[4096], out[4096];
	struct mw_err err = { 0 };
	struct pair p;
	size_t used;

	(void)state;
	rnd_fill(src, sizeof(src));
	pair_psk(&p);
	seal_to(p.c, &p.c2s, src, sizeof(src));
	p.c2s.buf[p.c2s.len / 2] ^= 0x40;
	assert_int_equal(mw_tls_open(p.s, p.c2s.buf, p.c2s.len, &used, out,
				     sizeof(out), &err),
			 -MW_E_TLS);
	assert_msg(&err, "TLS record failed authentication");
	assert_msg(&err, "bad record mac");
	/* the error sticks */
	assert_int_equal(mw_tls_open(p.s, NULL, 0, &used, out, sizeof(out),
				     &err),
			 -MW_E_TLS);
	pair_destroy(&p);
}

static void record_small_output_and_pending(void **state)
{
	const size_t total = 40000;
	uint8_t *src = malloc(total), *dst = malloc(total);
	struct mw_err err = { 0 };
	size_t got = 0, used;
	struct pair p;
	ssize_t n;

	(void)state;
	assert_non_null(src);
	assert_non_null(dst);
	rnd_fill(src, total);
	pair_psk(&p);
	seal_to(p.c, &p.c2s, src, total);
	/* the first record is decrypted, only 1000 bytes fit */
	n = mw_tls_open(p.s, p.c2s.buf, p.c2s.len, &used, dst, 1000, &err);
	assert_int_equal(n, 1000);
	wire_take(&p.c2s, used);
	assert_int_equal(mw_tls_pending(p.s), MW_TLS_REC_PLAIN - 1000);
	got = 1000;
	/* drain with no new input, as the header asks */
	while (mw_tls_pending(p.s)) {
		n = mw_tls_open(p.s, NULL, 0, &used, dst + got, 777, &err);
		assert_true(n > 0);
		assert_int_equal(used, 0);
		got += (size_t)n;
	}
	got += open_all(p.s, &p.c2s, dst + got, total - got, 3000);
	assert_int_equal(got, total);
	assert_memory_equal(src, dst, total);
	pair_destroy(&p);
	free(src);
	free(dst);
}

static void record_byte_by_byte(void **state)
{
	uint8_t src[300], dst[300];
	struct mw_err err = { 0 };
	size_t i, used, got = 0, taken = 0;
	struct pair p;
	ssize_t n;

	(void)state;
	rnd_fill(src, sizeof(src));
	pair_psk(&p);
	seal_to(p.c, &p.c2s, src, sizeof(src));
	/* one more byte arrives each time; what was not consumed is offered
	 * again, as the transport does */
	for (i = 0; i < p.c2s.len; i++) {
		n = mw_tls_open(p.s, p.c2s.buf + taken, i + 1 - taken, &used,
				dst + got, sizeof(dst) - got, &err);
		taken += used;
		if (i + 1 < p.c2s.len) {
			assert_int_equal(n, -EAGAIN);
		} else {
			assert_int_equal(n, sizeof(src));
			got += (size_t)n;
		}
	}
	assert_int_equal(taken, p.c2s.len);
	assert_memory_equal(src, dst, sizeof(src));
	pair_destroy(&p);
}

static void record_many_iovecs_and_bound(void **state)
{
	enum { NIOV = 1000, LEN = 37 };
	static uint8_t src[NIOV * LEN], dst[NIOV * LEN];
	struct iovec iov[NIOV];
	size_t total = sizeof(src), cap = mw_tls_seal_bound(total), nrec;
	uint8_t *ct = malloc(cap);
	struct mw_err err = { 0 };
	struct pair p;
	ssize_t n;
	int i;

	(void)state;
	assert_non_null(ct);
	rnd_fill(src, total);
	for (i = 0; i < NIOV; i++) {
		iov[i].iov_base = src + (size_t)i * LEN;
		iov[i].iov_len = LEN;
	}
	iov[7].iov_len = 0; /* an empty iovec is fine */
	iov[8].iov_base = src + 7 * LEN;
	iov[8].iov_len = 2 * LEN;
	pair_psk(&p);
	/* a buffer one byte short of the exact need is refused */
	nrec = (total + MW_TLS_REC_PLAIN - 1) / MW_TLS_REC_PLAIN;
	assert_int_equal(mw_tls_seal(p.c, iov, NIOV, ct,
				     total + nrec * MW_TLS_REC_OVERHEAD - 1,
				     &err),
			 -MW_E_NOSPACE);
	n = mw_tls_seal(p.c, iov, NIOV, ct, cap, &err);
	assert_int_equal(n, total + nrec * MW_TLS_REC_OVERHEAD);
	wire_put(&p.c2s, ct, (size_t)n);
	assert_int_equal(open_all(p.s, &p.c2s, dst, total, total), total);
	assert_memory_equal(src, dst, total);
	pair_destroy(&p);
	free(ct);
}

static void record_seal_bound(void **state)
{
	(void)state;
	assert_true(mw_tls_seal_bound(0) >= MW_TLS_SEAL_SLACK);
	assert_int_equal(mw_tls_seal_bound(1), 1 + 22 + MW_TLS_SEAL_SLACK);
	assert_int_equal(mw_tls_seal_bound(16384),
			 16384 + 22 + MW_TLS_SEAL_SLACK);
	assert_int_equal(mw_tls_seal_bound(16385),
			 16385 + 44 + MW_TLS_SEAL_SLACK);
	assert_int_equal(mw_tls_seal_bound(256 * KIB),
			 256 * KIB + 16 * 22 + MW_TLS_SEAL_SLACK);
}

static void record_close_notify(void **state)
{
	uint8_t out[64], buf[16];
	struct mw_err err = { 0 };
	struct pair p;
	size_t used;
	ssize_t n;

	(void)state;
	pair_psk(&p);
	seal_to(p.c, &p.c2s, "last", 4);
	n = mw_tls_close(p.c, out, sizeof(out), &err);
	assert_true(n > 0);
	wire_put(&p.c2s, out, (size_t)n);
	assert_int_equal(mw_tls_open(p.s, p.c2s.buf, p.c2s.len, &used, buf,
				     sizeof(buf), &err),
			 4);
	wire_take(&p.c2s, used);
	assert_int_equal(mw_tls_open(p.s, p.c2s.buf, p.c2s.len, &used, buf,
				     sizeof(buf), &err),
			 0);
	pair_destroy(&p);
}

/*
 * A peer's KeyUpdate asks for ours: OpenSSL sends it ahead of our next
 * record, in the seal_bound() slack, and both directions keep working.
 */
static void record_key_update(void **state)
{
	uint8_t buf[16];
	struct pair p;

	(void)state;
	pair_psk(&p);
	if (own_rec(p.s)) {
		/* only libssl can ask: this runs with a libssl server */
		pair_destroy(&p);
		skip();
	}
	assert_int_equal(SSL_key_update(p.s->ssl, SSL_KEY_UPDATE_REQUESTED), 1);
	pass_text(p.s, &p.s2c, p.c, "one");
	seal_to(p.c, &p.c2s, "two", 3);
	assert_true(p.c2s.len > 3 + MW_TLS_REC_OVERHEAD); /* + KeyUpdate */
	assert_int_equal(p.c->loan.spill_len, 0);
	if (own_rec(p.c))
		assert_int_equal(p.c->rec.key_updates_recv, 1);
	assert_int_equal(open_all(p.s, &p.c2s, buf, 3, 3), 3);
	assert_memory_equal(buf, "two", 3);
	pass_text(p.s, &p.s2c, p.c, "three");
	pair_destroy(&p);
}

/* A client driven by libssl queues one KeyUpdate (NOT_REQUESTED or
 * REQUESTED) and flushes it onto c2s without any data. */
static void send_key_update(struct pair *p, int type)
{
	uint8_t out[256];
	size_t n;

	assert_int_equal(SSL_key_update(p->c->ssl, type), 1);
	mw_tls_bio_lend(&p->c->loan, NULL, 0, out, sizeof(out));
	assert_int_equal(SSL_do_handshake(p->c->ssl), 1);
	n = p->c->loan.out_len;
	mw_tls_bio_unlend(&p->c->loan);
	wire_put(&p->c2s, out, n);
}

/*
 * KeyUpdates cost a key derivation each: our record layer takes at most
 * MW_TLS_KU_STREAK_MAX in a row without data, data in between starts the
 * count again. (libssl, under MIGWIRE_TLS_RECORDS=openssl, has no such
 * limit; there the spill cap below bounds what a flood costs.)
 */
static void record_key_update_flood(void **state)
{
	uint8_t buf[64];
	struct mw_err err = { 0 };
	struct pair p;
	unsigned i;
	size_t used;
	ssize_t n;

	(void)state;
	pair_psk(&p);
	if (own_rec(p.c) || !own_rec(p.s)) {
		/* a libssl client floods our record layer */
		pair_destroy(&p);
		skip();
	}
	for (i = 0; i < MW_TLS_KU_STREAK_MAX; i++)
		send_key_update(&p, SSL_KEY_UPDATE_NOT_REQUESTED);
	pass_text(p.c, &p.c2s, p.s, "data");
	for (i = 0; i <= MW_TLS_KU_STREAK_MAX; i++)
		send_key_update(&p, SSL_KEY_UPDATE_NOT_REQUESTED);
	n = mw_tls_open(p.s, p.c2s.buf, p.c2s.len, &used, buf, sizeof(buf),
			&err);
	assert_int_equal(n, -MW_E_TLS);
	assert_msg(&err, "KeyUpdates in a row without data");
	pair_destroy(&p);
}

/*
 * libssl answers each KeyUpdate that asks for ours while we only open, so
 * the answers pile up in the BIO's spill: MW_TLS_SPILL_MAX bounds it, and
 * the session fails with a line that says why.
 */
static void record_key_update_spill(void **state)
{
	struct mw_err err = { 0 };
	uint8_t buf[64];
	struct pair p;
	unsigned i;
	size_t used;
	ssize_t n = 0;

	(void)state;
	pair_psk(&p);
	if (own_rec(p.c) || own_rec(p.s)) {
		/* a libssl client asks, a libssl server answers */
		pair_destroy(&p);
		skip();
	}
	for (i = 0; i < 40000 && n >= 0; i++) {
		send_key_update(&p, SSL_KEY_UPDATE_REQUESTED);
		seal_to(p.c, &p.c2s, "x", 1);
		n = mw_tls_open(p.s, p.c2s.buf, p.c2s.len, &used, buf,
				sizeof(buf), &err);
		wire_take(&p.c2s, used);
		assert_true(p.s->loan.spill_len <= MW_TLS_SPILL_MAX);
	}
	assert_int_equal(n, -MW_E_TLS);
	assert_msg(&err, "TLS replies owed to the peer");
	pair_destroy(&p);
}

/*
 * Our records rekey every rekey_at records: a KeyUpdate goes ahead of the
 * next record, the peer (libssl or ours) follows, data stays intact.
 */
static void record_rekey(void **state)
{
	enum { LEN = 100 * KIB };
	static uint8_t src[LEN], dst[LEN];
	struct pair p;
	int round;

	(void)state;
	rnd_fill(src, sizeof(src));
	pair_psk(&p);
	if (!own_rec(p.c)) {
		pair_destroy(&p);
		skip();
	}
	p.c->rec.rekey_at = 3;
	for (round = 0; round < 4; round++) {
		seal_to(p.c, &p.c2s, src, sizeof(src));
		memset(dst, 0, sizeof(dst));
		assert_int_equal(open_all(p.s, &p.c2s, dst, sizeof(dst),
					  sizeof(dst)),
				 sizeof(dst));
		assert_memory_equal(src, dst, sizeof(dst));
	}
	/* one KeyUpdate per seal call once the key is worn */
	assert_int_equal(p.c->rec.key_updates_sent, 3);
	if (own_rec(p.s))
		assert_int_equal(p.s->rec.key_updates_recv, 3);
	pair_destroy(&p);
}

/* Each TLS 1.3 suite we offer, both ways. */
static void record_suites(void **state)
{
	static const char *const suites[] = {
		"TLS_AES_128_GCM_SHA256",
		"TLS_AES_256_GCM_SHA384",
		"TLS_CHACHA20_POLY1305_SHA256",
	};
	struct mw_tls_cfg cc = x509_cfg(false, pki, "localhost");
	struct mw_tls_cfg sc = x509_cfg(true, pki, NULL);
	uint8_t src[40000], dst[40000];
	struct pair p;
	size_t i;

	(void)state;
	rnd_fill(src, sizeof(src));
	for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		pair_init(&p, &cc, 0, &sc);
		assert_int_equal(SSL_set_ciphersuites(p.c->ssl, suites[i]), 1);
		pair_handshake(&p);
		assert_int_equal(p.cret, 0);
		assert_int_equal(p.sret, 0);
		assert_string_equal(SSL_CIPHER_standard_name(
					    SSL_get_current_cipher(p.s->ssl)),
				    suites[i]);
		assert_int_equal(own_rec(p.c), !rec_cflags);
		assert_int_equal(own_rec(p.s), !rec_sflags);
		seal_to(p.c, &p.c2s, src, sizeof(src));
		assert_int_equal(open_all(p.s, &p.c2s, dst, sizeof(dst), 5000),
				 sizeof(dst));
		assert_memory_equal(src, dst, sizeof(dst));
		seal_to(p.s, &p.s2c, src, 1000);
		assert_int_equal(open_all(p.c, &p.s2c, dst, 1000, 1000), 1000);
		assert_memory_equal(src, dst, 1000);
		pair_destroy(&p);
	}
}

/*
 * A server that sends a ticket has used its application key: it must
 * leave its records to libssl (else record 0 would be sealed twice under
 * one nonce), and our client ignores the ticket.
 */
static void record_ticket_keeps_libssl(void **state)
{
	struct mw_tls_cfg cc = psk_cfg(false, psk_qemu, NULL);
	struct mw_tls_cfg sc = psk_cfg(true, psk_qemu, NULL);
	struct pair p;

	(void)state;
	pair_init(&p, &cc, 0, &sc);
	assert_int_equal(SSL_set_num_tickets(p.s->ssl, 1), 1);
	pair_handshake(&p);
	assert_int_equal(p.cret, 0);
	assert_int_equal(p.sret, 0);
	assert_false(own_rec(p.s));
	assert_int_equal(own_rec(p.c), !rec_cflags);
	pass_text(p.s, &p.s2c, p.c, "one");
	pass_text(p.c, &p.c2s, p.s, "two");
	pair_destroy(&p);
}

/* Nothing is sealed after our close_notify. */
static void record_seal_after_close(void **state)
{
	uint8_t out[256];
	struct iovec iov = { .iov_base = out, .iov_len = 1 };
	struct mw_err err = { 0 };
	struct pair p;

	(void)state;
	pair_psk(&p);
	assert_true(mw_tls_close(p.c, out, sizeof(out), &err) > 0);
	assert_true(mw_tls_seal(p.c, &iov, 1, out, sizeof(out), &err) < 0);
	pair_destroy(&p);
}

/* A record of another type than application data after the handshake. */
static void record_bad_header(void **state)
{
	uint8_t out[64];
	struct mw_err err = { 0 };
	struct pair p;
	size_t used;

	(void)state;
	pair_psk(&p);
	seal_to(p.c, &p.c2s, "data", 4);
	p.c2s.buf[0] = 0x16;
	assert_int_equal(mw_tls_open(p.s, p.c2s.buf, p.c2s.len, &used, out,
				     sizeof(out), &err),
			 -MW_E_TLS);
	if (own_rec(p.s))
		assert_msg(&err, "record of type 22 after the handshake");
	pair_destroy(&p);
}

/*
 * Records that authenticate but carry what a peer must not send after the
 * handshake: each ends the session with its own message. The sealer is
 * ours (any content), the opener ours too (its messages are checked).
 */
static void record_hostile_contents(void **state)
{
	static uint8_t big[MW_TLS_REC_PLAIN + 1], zeros[8];
	static const uint8_t nst[] = { 4, 0, 0, 0 };
	static const uint8_t ku_bad[] = { 24, 0, 0, 1, 2 };
	static const uint8_t ku_more[] = { 24, 0, 0, 1, 0, 4, 0, 0, 0 };
	static const uint8_t split[] = { 24, 0, 0, 5 };
	static const uint8_t fatal[] = { 2, 40 };
	static const uint8_t short_alert[] = { 1 };
	static const uint8_t ccs[] = { 1 };
	static const struct {
		uint8_t ctype;
		const uint8_t *p;
		size_t n;
		int code;
		const char *msg;
	} cases[] = {
		{ 0x16, nst, 0, -MW_E_TLS, "empty handshake record" },
		{ 0x16, nst, sizeof(nst), -MW_E_TLS,
		  "unexpected handshake message 4" },
		{ 0x16, ku_bad, sizeof(ku_bad), -MW_E_TLS,
		  "malformed KeyUpdate" },
		{ 0x16, ku_more, sizeof(ku_more), -MW_E_TLS,
		  "data after KeyUpdate" },
		{ 0x16, split, sizeof(split), -MW_E_TLS,
		  "split across records" },
		{ 0x15, fatal, sizeof(fatal), -MW_E_AUTH, "handshake failure" },
		{ 0x15, short_alert, sizeof(short_alert), -MW_E_TLS,
		  "malformed alert" },
		{ 0x14, ccs, sizeof(ccs), -MW_E_TLS, "content type 20" },
		{ 0x00, zeros, sizeof(zeros), -MW_E_TLS,
		  "without a content type" },
		{ 0x17, big, sizeof(big), -MW_E_TLS, "over the 16 KiB limit" },
	};
	static uint8_t ct[sizeof(big) + 64], out[sizeof(big)];
	struct mw_err err = { 0 };
	struct pair p;
	size_t i, used;
	ssize_t n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pair_psk(&p);
		if (!own_rec(p.c) || !own_rec(p.s)) {
			pair_destroy(&p);
			skip();
		}
		n = mw_tls_rec_seal_type(p.c, cases[i].ctype, cases[i].p,
					 cases[i].n, ct, sizeof(ct), &err);
		assert_true(n > 0);
		assert_int_equal(mw_tls_open(p.s, ct, (size_t)n, &used, out,
					     sizeof(out), &err),
				 cases[i].code);
		assert_msg(&err, cases[i].msg);
		pair_destroy(&p);
	}
	/* user_canceled is not fatal: the data after it arrives */
	pair_psk(&p);
	n = mw_tls_rec_seal_type(p.c, 0x15, (const uint8_t[]){ 1, 90 }, 2, ct,
				 sizeof(ct), &err);
	assert_true(n > 0);
	wire_put(&p.c2s, ct, (size_t)n);
	pass_text(p.c, &p.c2s, p.s, "after");
	pair_destroy(&p);
}

static void record_before_handshake(void **state)
{
	struct mw_tls_cfg sc = psk_cfg(true, psk_qemu, NULL);
	struct mw_tls_ctx *ctx;
	struct mw_tls_sess *s;
	uint8_t out[64];
	struct iovec iov = { .iov_base = out, .iov_len = 1 };
	struct mw_err err = { 0 };
	size_t used;

	(void)state;
	assert_int_equal(mw_tls_ctx_new(&ctx, &sc, &err), 0);
	assert_int_equal(mw_tls_sess_new(&s, ctx, &err), 0);
	assert_string_equal(mw_tls_peer_name(s), "(handshake not complete)");
	assert_int_equal(mw_tls_seal(s, &iov, 1, out, sizeof(out), &err),
			 -MW_E_TLS);
	assert_int_equal(mw_tls_open(s, out, 1, &used, out, sizeof(out), &err),
			 -MW_E_TLS);
	mw_tls_sess_free(s);
	mw_tls_ctx_free(ctx);
}

int main(void)
{
	const struct CMUnitTest record[] = {
		cmocka_unit_test(record_tampered),
		cmocka_unit_test(record_small_output_and_pending),
		cmocka_unit_test(record_byte_by_byte),
		cmocka_unit_test(record_many_iovecs_and_bound),
		cmocka_unit_test(record_seal_bound),
		cmocka_unit_test(record_close_notify),
		cmocka_unit_test(record_key_update),
		cmocka_unit_test(record_key_update_flood),
		cmocka_unit_test(record_key_update_spill),
		cmocka_unit_test(record_rekey),
		cmocka_unit_test(record_suites),
		cmocka_unit_test(record_ticket_keeps_libssl),
		cmocka_unit_test(record_seal_after_close),
		cmocka_unit_test(record_bad_header),
		cmocka_unit_test(record_hostile_contents),
		cmocka_unit_test(record_before_handshake),
	};
	/* the same cases with records sealed and opened by libssl on one
	 * side or both: the wire is the same */
	static const unsigned int modes[][2] = {
		{ 0, 0 },
		{ MW_TLS_CTX_OSSL_RECORDS, 0 },
		{ 0, MW_TLS_CTX_OSSL_RECORDS },
		{ MW_TLS_CTX_OSSL_RECORDS, MW_TLS_CTX_OSSL_RECORDS },
	};
	static const char *const mode_names[] = {
		"tls/record own-own",
		"tls/record libssl-own",
		"tls/record own-libssl",
		"tls/record libssl-libssl",
	};
	size_t m;
	int fails = 0;

	tls_test_begin();
	for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		rec_cflags = modes[m][0];
		rec_sflags = modes[m][1];
		fails += cmocka_run_group_tests_name(mode_names[m], record,
						     NULL, NULL);
	}
	rec_cflags = rec_sflags = 0;
	tls_test_end();
	return fails ? 1 : 0;
}
