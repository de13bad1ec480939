/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the TLS handshake: x509 and PSK handshakes between a
 * client and a server session in this one process (tls_pair.h), every
 * authentication failure's message, bad credential files and plaintext
 * peers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tls_pair.h"

/* ---- tls/x509 ---- */

static void x509_roundtrip_1mib(void **state)
{
	struct mw_tls_cfg cc = x509_cfg(false, pki, "dst.example");
	struct mw_tls_cfg sc = x509_cfg(true, pki, NULL);
	const size_t total = MIB, piece = 256 * KIB;
	uint8_t *src = malloc(total), *dst = malloc(total), *ct;
	size_t cap = mw_tls_seal_bound(piece), off, got = 0;
	struct mw_err err = { 0 };
	struct pair p;
	ssize_t n;

	(void)state;
	assert_non_null(src);
	assert_non_null(dst);
	ct = malloc(cap);
	assert_non_null(ct);
	rnd_fill(src, total);
	pair_connect(&p, &cc, &sc);
	assert_string_equal(mw_tls_peer_name(p.c), "dst.example");
	assert_non_null(strstr(mw_tls_peer_name(p.s), "migwire client"));

	for (off = 0; off < total; off += piece) {
		/* an odd split, so one record straddles two iovecs */
		struct iovec iov[2] = {
			{ .iov_base = src + off, .iov_len = 1000 },
			{ .iov_base = src + off + 1000,
			  .iov_len = piece - 1000 },
		};

		n = mw_tls_seal(p.c, iov, 2, ct, cap, &err);
		if (n < 0)
			fail_msg("seal: %s", err.msg);
		assert_int_equal((size_t)n,
				 piece + piece / MW_TLS_REC_PLAIN *
						 MW_TLS_REC_OVERHEAD);
		assert_true((size_t)n <= cap);
		wire_put(&p.c2s, ct, (size_t)n);
		got += open_all(p.s, &p.c2s, dst + got, total - got, piece);
	}
	assert_int_equal(got, total);
	assert_int_equal(p.c2s.len, 0);
	assert_memory_equal(src, dst, total);

	/* and the other way */
	seal_to(p.s, &p.s2c, "ack", 3);
	assert_int_equal(open_all(p.c, &p.s2c, dst, 3, 3), 3);
	assert_memory_equal(dst, "ack", 3);
	pair_destroy(&p);
	free(src);
	free(dst);
	free(ct);
}

/* Output buffers smaller than a flight: the rest comes on later calls. */
static void x509_handshake_small_output(void **state)
{
	struct mw_tls_cfg cc = x509_cfg(false, pki, "dst.example");
	struct mw_tls_cfg sc = x509_cfg(true, pki, NULL);
	uint8_t buf[8];
	struct pair p;

	(void)state;
	hs_out_cap = 100;
	pair_init(&p, &cc, 0, &sc);
	pair_handshake(&p);
	hs_out_cap = HS_OUT;
	if (p.cret || p.sret)
		fail_msg("handshake: client %d '%s', server %d '%s'", p.cret,
			 p.cerr.msg, p.sret, p.serr.msg);
	seal_to(p.c, &p.c2s, "small", 5);
	assert_int_equal(open_all(p.s, &p.c2s, buf, 5, 5), 5);
	assert_memory_equal(buf, "small", 5);
	pair_destroy(&p);
}

static void x509_ip_and_localhost(void **state)
{
	static const char *const good[] = { "10.1.2.3", "localhost",
					    "127.0.0.1", "[::1]" };
	struct mw_tls_cfg sc = x509_cfg(true, pki, NULL);
	struct mw_tls_cfg cc;
	struct pair p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cc = x509_cfg(false, pki, good[i]);
		pair_connect(&p, &cc, &sc);
		pair_destroy(&p);
	}
	cc = x509_cfg(false, pki, "10.9.9.9");
	pair_init(&p, &cc, 0, &sc);
	pair_handshake(&p);
	assert_int_equal(p.cret, -MW_E_AUTH);
	assert_msg(&p.cerr,
		   "server certificate does not match IP address '10.9.9.9'");
	pair_destroy(&p);
}

static void x509_wrong_hostname(void **state)
{
	struct mw_tls_cfg cc = x509_cfg(false, pki, "foo.example");
	struct mw_tls_cfg sc = x509_cfg(true, pki, NULL);
	struct pair p;

	(void)state;
	pair_init(&p, &cc, 0, &sc);
	pair_handshake(&p);
	assert_int_equal(p.cret, -MW_E_AUTH);
	/* the names the certificate carries, so the fix is in the line */
	assert_string_equal(
		p.cerr.msg,
		"server certificate does not match host name 'foo.example' "
		"(certificate names: DNS:localhost, IP:127.0.0.1, IP:::1, "
		"DNS:dst.example, IP:10.1.2.3; connect by one of them or pass "
		"--tls-hostname)");
	/* the server never gets the client's Finished */
	assert_int_not_equal(p.sret, 0);
	pair_destroy(&p);
}

static void x509_wrong_ca(void **state)
{
	struct mw_tls_cfg cc = x509_cfg(false, other, "dst.example");
	struct mw_tls_cfg sc = x509_cfg(true, pki, NULL);
	char want[PATH_MAX + 128];
	struct pair p;

	(void)state;
	pair_init(&p, &cc, 0, &sc);
	pair_handshake(&p);
	assert_int_equal(p.cret, -MW_E_AUTH);
	snprintf(
		want, sizeof(want),
		"certificate verify failed: unable to get local issuer certificate (peer certificate is not signed by %s/ca-cert.pem)",
		other);
	assert_string_equal(p.cerr.msg, want);
	pair_destroy(&p);
}

/*
 * TLS 1.3: the client is done before the server checks its certificate;
 * the server fails with srv_msg and the client learns of it from the
 * alert when it next opens a record.
 */
static void expect_client_rejected(const struct mw_tls_cfg *cc,
				   unsigned int cflags, const char *srv_msg,
				   const char *cli_msg)
{
	struct mw_tls_cfg sc = x509_cfg(true, pki, NULL);
	uint8_t buf[16];
	struct mw_err err = { 0 };
	struct pair p;
	size_t used;

	pair_init(&p, cc, cflags, &sc);
	pair_handshake(&p);
	assert_int_equal(p.cret, 0);
	assert_int_equal(p.sret, -MW_E_AUTH);
	assert_msg(&p.serr, srv_msg);
	assert_int_equal(mw_tls_open(p.c, p.s2c.buf, p.s2c.len, &used, buf,
				     sizeof(buf), &err),
			 -MW_E_AUTH);
	assert_msg(&err, cli_msg);
	pair_destroy(&p);
}

static void x509_client_from_other_ca(void **state)
{
	struct mw_tls_cfg cc = x509_cfg(false, mixed, "dst.example");
	char want[PATH_MAX + 128];

	(void)state;
	snprintf(
		want, sizeof(want),
		"certificate verify failed: unable to get local issuer certificate (peer certificate is not signed by %s/ca-cert.pem)",
		pki);
	expect_client_rejected(
		&cc, 0, want,
		"peer rejected the connection: tlsv1 alert unknown ca (it does not accept our certificate)");
}

static void x509_client_without_cert(void **state)
{
	struct mw_tls_cfg cc = x509_cfg(false, caonly, "dst.example");

	(void)state;
	expect_client_rejected(
		&cc, MW_TLS_CTX_NO_CERT, "peer did not present a certificate",
		"peer rejected the connection: tlsv13 alert certificate required (it requires a client certificate)");
}

static void x509_missing_files(void **state)
{
	struct mw_tls_cfg cfg = x509_cfg(false, caonly, "dst.example");
	struct mw_tls_ctx *ctx = (void *)1;
	char want[PATH_MAX + 64];
	struct mw_err err = { 0 };

	(void)state;
	assert_int_equal(mw_tls_ctx_new(&ctx, &cfg, &err), -ENOENT);
	assert_null(ctx);
	snprintf(want, sizeof(want), "%s/client-cert.pem: %s", caonly,
		 strerror(ENOENT));
	assert_string_equal(err.msg, want);

	cfg = x509_cfg(true, "/nonexistent/pki", NULL);
	assert_int_equal(mw_tls_ctx_new(&ctx, &cfg, &err), -ENOENT);
	assert_msg(&err, "/nonexistent/pki/ca-cert.pem: ");

	cfg = x509_cfg(false, pki, NULL); /* no host name to check */
	assert_int_equal(mw_tls_ctx_new(&ctx, &cfg, &err), -EINVAL);
	assert_msg(&err, "host name");
}

static void x509_unreadable_file(void **state)
{
	struct mw_tls_cfg cfg = x509_cfg(true, badkey, NULL);
	struct mw_tls_ctx *ctx;
	char key[PATH_MAX];
	struct mw_err err = { 0 };

	(void)state;
	if (geteuid() == 0)
		skip(); /* root reads any file */
	path_join(key, badkey, "server-key.pem");
	assert_int_equal(chmod(key, 0), 0);
	assert_int_equal(mw_tls_ctx_new(&ctx, &cfg, &err), -EACCES);
	assert_int_equal(chmod(key, 0600), 0);
	assert_msg(&err, key);
}

static void x509_bad_pem_and_key_mismatch(void **state)
{
	struct mw_tls_cfg cfg = x509_cfg(true, badkey, NULL);
	struct mw_tls_ctx *ctx;
	char key[PATH_MAX], ca[PATH_MAX], want[3 * PATH_MAX];
	struct mw_err err = { 0 };

	(void)state;
	assert_int_equal(mw_tls_ctx_new(&ctx, &cfg, &err), -MW_E_TLS);
	snprintf(
		want, sizeof(want),
		"%s/server-key.pem: private key does not match %s/server-cert.pem",
		badkey, badkey);
	assert_string_equal(err.msg, want);

	path_join(ca, tmpdir, "garbage");
	assert_int_equal(
		run("mkdir -p '%s' && cp '%s'/*.pem '%s/'", ca, pki, ca), 0);
	path_join(key, ca, "ca-cert.pem");
	write_text(key, "-----BEGIN CERTIFICATE-----\nnot base64!\n"
			"-----END CERTIFICATE-----\n");
	cfg = x509_cfg(true, ca, NULL);
	assert_int_equal(mw_tls_ctx_new(&ctx, &cfg, &err), -MW_E_TLS);
	assert_msg(&err, key);
	assert_msg(&err, "not a valid PEM CA certificate");
}

static void x509_plaintext_to_server(void **state)
{
	static const char hello[] = "GET / HTTP/1.1\r\n\r\n";
	struct mw_tls_cfg sc = x509_cfg(true, pki, NULL);
	struct mw_tls_ctx *ctx;
	struct mw_tls_sess *s;
	uint8_t out[HS_OUT];
	struct mw_err err = { 0 };
	size_t used, n;

	(void)state;
	assert_int_equal(mw_tls_ctx_new(&ctx, &sc, &err), 0);
	assert_int_equal(mw_tls_sess_new(&s, ctx, &err), 0);
	assert_int_equal(mw_tls_handshake(s, (const uint8_t *)hello,
					  sizeof(hello) - 1, &used, out,
					  sizeof(out), &n, &err),
			 -MW_E_TLS);
	assert_string_equal(
		err.msg,
		"peer is not speaking TLS (first bytes look like plaintext: \"GET / HT\")");
	mw_tls_sess_free(s);
	mw_tls_ctx_free(ctx);
}

static void x509_binary_garbage_to_server(void **state)
{
	static const uint8_t junk[] = { 0x00, 0x01, 0xfe, 0x10 };
	struct mw_tls_cfg sc = x509_cfg(true, pki, NULL);
	struct mw_tls_ctx *ctx;
	struct mw_tls_sess *s;
	uint8_t out[64];
	struct mw_err err = { 0 };
	size_t used, n;

	(void)state;
	assert_int_equal(mw_tls_ctx_new(&ctx, &sc, &err), 0);
	assert_int_equal(mw_tls_sess_new(&s, ctx, &err), 0);
	assert_int_equal(mw_tls_handshake(s, junk, sizeof(junk), &used, out,
					  sizeof(out), &n, &err),
			 -MW_E_TLS);
	assert_string_equal(
		err.msg, "peer is not speaking TLS (first bytes: 00 01 fe 10)");
	mw_tls_sess_free(s);
	mw_tls_ctx_free(ctx);
}

/* ---- tls/psk ---- */

static void psk_success(void **state)
{
	struct mw_tls_cfg cc = psk_cfg(false, psk_qemu, NULL);
	struct mw_tls_cfg sc = psk_cfg(true, psk_qemu, NULL);
	uint8_t buf[5];
	struct pair p;

	(void)state;
	pair_connect(&p, &cc, &sc);
	assert_string_equal(mw_tls_peer_name(p.c), "psk:qemu");
	assert_string_equal(mw_tls_peer_name(p.s), "psk:qemu");
	seal_to(p.c, &p.c2s, "hello", 5);
	assert_int_equal(open_all(p.s, &p.c2s, buf, 5, 5), 5);
	assert_memory_equal(buf, "hello", 5);
	pair_destroy(&p);
}

/* Another identity than "qemu", and the longest key we take (64 bytes). */
static void psk_other_identity(void **state)
{
	char a[PATH_MAX];
	struct mw_tls_cfg cc, sc;
	struct pair p;

	(void)state;
	path_join(a, tmpdir, "a.psk");
	cc = psk_cfg(false, a, "bob");
	sc = psk_cfg(true, a, NULL);
	pair_connect(&p, &cc, &sc);
	assert_string_equal(mw_tls_peer_name(p.s), "psk:bob");
	pair_destroy(&p);
	cc = psk_cfg(false, a, "long");
	pair_connect(&p, &cc, &sc);
	assert_string_equal(mw_tls_peer_name(p.s), "psk:long");
	pair_destroy(&p);
}

/* A client using file/ident against the server of keys.psk fails so. */
static void expect_psk_rejected(const char *file, const char *ident,
				const char *srv_msg, const char *cli_msg)
{
	struct mw_tls_cfg cc = psk_cfg(false, file, ident);
	struct mw_tls_cfg sc = psk_cfg(true, psk_qemu, NULL);
	struct pair p;

	pair_init(&p, &cc, 0, &sc);
	pair_handshake(&p);
	assert_int_equal(p.sret, -MW_E_AUTH);
	assert_string_equal(p.serr.msg, srv_msg);
	assert_int_equal(p.cret, -MW_E_AUTH);
	assert_msg(&p.cerr, cli_msg);
	pair_destroy(&p);
}

static void psk_wrong_key(void **state)
{
	char b[PATH_MAX];

	(void)state;
	path_join(b, tmpdir, "b.psk");
	expect_psk_rejected(
		b, "qemu",
		"PSK of identity 'qemu' differs from the peer's (binder does not verify)",
		"peer rejected the handshake: sslv3 alert illegal parameter (does its keys.psk have identity 'qemu' with our key?)");
}

static void psk_unknown_identity(void **state)
{
	char b[PATH_MAX], want[PATH_MAX + 64];

	(void)state;
	path_join(b, tmpdir, "b.psk");
	snprintf(want, sizeof(want), "unknown PSK identity 'carol' (not in %s)",
		 psk_qemu);
	expect_psk_rejected(
		b, "carol", want,
		"peer rejected the handshake: sslv3 alert handshake failure (does its keys.psk have identity 'carol' with our key?)");
}

static void psk_client_identity_missing(void **state)
{
	struct mw_tls_cfg cc = psk_cfg(false, psk_qemu, "nobody");
	struct mw_tls_ctx *ctx;
	struct mw_err err = { 0 };

	(void)state;
	assert_int_equal(mw_tls_ctx_new(&ctx, &cc, &err), -ENOENT);
	assert_msg(&err, psk_qemu);
	assert_msg(&err, "no key for identity 'nobody'");
	cc = psk_cfg(false, "/nonexistent/keys.psk", NULL);
	assert_int_equal(mw_tls_ctx_new(&ctx, &cc, &err), -ENOENT);
	assert_msg(&err, "/nonexistent/keys.psk: ");
}

int main(void)
{
	const struct CMUnitTest x509[] = {
		cmocka_unit_test(x509_roundtrip_1mib),
		cmocka_unit_test(x509_handshake_small_output),
		cmocka_unit_test(x509_ip_and_localhost),
		cmocka_unit_test(x509_wrong_hostname),
		cmocka_unit_test(x509_wrong_ca),
		cmocka_unit_test(x509_client_from_other_ca),
		cmocka_unit_test(x509_client_without_cert),
		cmocka_unit_test(x509_missing_files),
		cmocka_unit_test(x509_unreadable_file),
		cmocka_unit_test(x509_bad_pem_and_key_mismatch),
		cmocka_unit_test(x509_plaintext_to_server),
		cmocka_unit_test(x509_binary_garbage_to_server),
	};
	const struct CMUnitTest psk[] = {
		cmocka_unit_test(psk_success),
		cmocka_unit_test(psk_other_identity),
		cmocka_unit_test(psk_wrong_key),
		cmocka_unit_test(psk_unknown_identity),
		cmocka_unit_test(psk_client_identity_missing),
	};
	int fails = 0;

	tls_test_begin();
	fails += cmocka_run_group_tests_name("tls/x509", x509, NULL, NULL);
	fails += cmocka_run_group_tests_name("tls/psk", psk, NULL, NULL);
	tls_test_end();
	return fails ? 1 : 0;
}
