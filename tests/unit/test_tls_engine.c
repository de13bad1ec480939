/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the TLS engine: a client and a server session run in this
 * one process and their ciphertext is shuttled through memory, no socket.
 * Credentials are made at setup by tools/mw-mkcerts in a temporary
 * directory: one PKI, a second unrelated PKI, and PSK files. Covers x509
 * and PSK handshakes, every authentication failure's message, plaintext
 * peers, record sealing/opening, tampering and close_notify.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tls_int.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define HS_OUT (64 * KIB)

static char tmpdir[PATH_MAX];
static char pki[PATH_MAX], other[PATH_MAX], caonly[PATH_MAX];
static char mixed[PATH_MAX], badkey[PATH_MAX], psk_qemu[PATH_MAX];
static uint64_t seed;
static size_t hs_out_cap = HS_OUT; /* what hs_step() lends as output */
/* who seals and opens records on each side (tls/record groups) */
static unsigned int rec_cflags, rec_sflags;

/* ---- helpers ---- */

static uint64_t rnd_next(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}

static void rnd_fill(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd_next() >> 24);
}

static void path_join(char *dst, const char *a, const char *b)
{
	int n = snprintf(dst, PATH_MAX, "%s/%s", a, b);

	assert_true(n > 0 && n < PATH_MAX);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[4 * PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* One direction of ciphertext in flight. */
struct wire {
	uint8_t *buf;
	size_t len, cap;
};

static void wire_put(struct wire *w, const uint8_t *p, size_t n)
{
	if (!n)
		return;
	if (w->len + n > w->cap) {
		w->cap = (w->len + n) * 2;
		w->buf = realloc(w->buf, w->cap);
		assert_non_null(w->buf);
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void wire_take(struct wire *w, size_t n)
{
	assert_true(n <= w->len);
	if (!n)
		return;
	memmove(w->buf, w->buf + n, w->len - n);
	w->len -= n;
}

struct pair {
	struct mw_tls_ctx *cctx, *sctx;
	struct mw_tls_sess *c, *s;
	struct wire c2s, s2c;
	struct mw_err cerr, serr;
	int cret, sret;
};

static struct mw_tls_cfg x509_cfg(bool server, const char *dir,
				  const char *host)
{
	struct mw_tls_cfg cfg = { .mode = MW_TLS_X509,
				  .server = server,
				  .creds_dir = dir,
				  .hostname = host };
	return cfg;
}

static struct mw_tls_cfg psk_cfg(bool server, const char *file,
				 const char *ident)
{
	struct mw_tls_cfg cfg = { .mode = MW_TLS_PSK,
				  .server = server,
				  .psk_file = file,
				  .psk_identity = ident };
	return cfg;
}

static void pair_init(struct pair *p, const struct mw_tls_cfg *ccfg,
		      unsigned int cflags, const struct mw_tls_cfg *scfg)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(mw_tls_ctx_new_opt(&p->cctx, ccfg, cflags | rec_cflags,
					    &p->cerr),
			 0);
	assert_int_equal(
		mw_tls_ctx_new_opt(&p->sctx, scfg, rec_sflags, &p->serr), 0);
	assert_int_equal(mw_tls_sess_new(&p->c, p->cctx, &p->cerr), 0);
	assert_int_equal(mw_tls_sess_new(&p->s, p->sctx, &p->serr), 0);
	p->cret = p->sret = -EAGAIN;
}

static void pair_destroy(struct pair *p)
{
	mw_tls_sess_free(p->c);
	mw_tls_sess_free(p->s);
	mw_tls_ctx_free(p->cctx);
	mw_tls_ctx_free(p->sctx);
	free(p->c2s.buf);
	free(p->s2c.buf);
}

/* One handshake step of one side; returns whether bytes moved. */
static bool hs_step(struct mw_tls_sess *s, struct wire *in, struct wire *out,
		    int *ret, struct mw_err *err)
{
	static uint8_t buf[HS_OUT];
	size_t used = 0, n = 0;

	*ret = mw_tls_handshake(s, in->buf, in->len, &used, buf, hs_out_cap, &n,
				err);
	wire_take(in, used);
	wire_put(out, buf, n);
	return used || n;
}

/* Runs both handshakes until neither wants more or nothing moves. */
static void pair_handshake(struct pair *p)
{
	bool moved = true;
	int round;

	for (round = 0; round < 32 && moved; round++) {
		moved = false;
		if (p->cret == -EAGAIN)
			moved |= hs_step(p->c, &p->s2c, &p->c2s, &p->cret,
					 &p->cerr);
		if (p->sret == -EAGAIN)
			moved |= hs_step(p->s, &p->c2s, &p->s2c, &p->sret,
					 &p->serr);
		if (p->cret != -EAGAIN && p->sret != -EAGAIN)
			break;
	}
}

/* Opens everything in w into out (cap bytes), returns the plaintext. */
static size_t open_all(struct mw_tls_sess *s, struct wire *w, uint8_t *out,
		       size_t cap, size_t step)
{
	size_t got = 0, used;
	struct mw_err err = { 0 };
	ssize_t n;

	for (;;) {
		size_t room = cap - got < step ? cap - got : step;

		n = mw_tls_open(s, w->buf, w->len, &used, out + got, room,
				&err);
		wire_take(w, used);
		if (n == -EAGAIN)
			break;
		if (n < 0)
			fail_msg("open: %s", err.msg);
		assert_true(n > 0);
		got += (size_t)n;
		if (got == cap)
			break;
	}
	return got;
}

static void seal_to(struct mw_tls_sess *s, struct wire *w, const void *p,
		    size_t n)
{
	struct iovec iov = { .iov_base = (void *)(uintptr_t)p, .iov_len = n };
	size_t cap = mw_tls_seal_bound(n);
	uint8_t *buf = malloc(cap);
	struct mw_err err = { 0 };
	ssize_t r;

	assert_non_null(buf);
	r = mw_tls_seal(s, &iov, 1, buf, cap, &err);
	if (r < 0)
		fail_msg("seal: %s", err.msg);
	wire_put(w, buf, (size_t)r);
	free(buf);
}

/* Seals text on one side and checks that the other side opens it. */
static void pass_text(struct mw_tls_sess *from, struct wire *w,
		      struct mw_tls_sess *to, const char *text)
{
	size_t n = strlen(text);
	uint8_t buf[64];

	assert_true(n <= sizeof(buf));
	seal_to(from, w, text, n);
	assert_int_equal(open_all(to, w, buf, n, n), n);
	assert_memory_equal(buf, text, n);
}

static void pair_connect(struct pair *p, const struct mw_tls_cfg *ccfg,
			 const struct mw_tls_cfg *scfg)
{
	pair_init(p, ccfg, 0, scfg);
	pair_handshake(p);
	if (p->cret || p->sret)
		fail_msg("handshake: client %d '%s', server %d '%s'", p->cret,
			 p->cerr.msg, p->sret, p->serr.msg);
}

/* MW_TEST_VERBOSE=1 shows every message checked, to review their wording */
static void assert_msg(const struct mw_err *err, const char *part)
{
	if (getenv("MW_TEST_VERBOSE"))
		fprintf(stderr, "message: %s\n", err->msg);
	if (!strstr(err->msg, part))
		fail_msg("message '%s' lacks '%s'", err->msg, part);
}

/* ---- setup ---- */

/*
 * MW_TEST_DATA is <source>/tests/data, which need not exist: go up by
 * text, not through the file system. Run by hand, this file's path works.
 */
static const char *mkcerts_path(void)
{
	static char path[PATH_MAX + 32];
	const char *data = getenv("MW_TEST_DATA");
	char src[PATH_MAX], *slash;
	int i;

	snprintf(src, sizeof(src), "%s", data ? data : __FILE__);
	for (i = data ? 2 : 3; i > 0; i--) {
		slash = strrchr(src, '/');
		if (slash)
			*slash = '\0';
	}
	snprintf(path, sizeof(path), "%s/tools/mw-mkcerts", src);
	return path;
}

static int group_setup(void **state)
{
	const char *base = getenv("MW_TEST_TMP");
	const char *mk = mkcerts_path();
	char a[PATH_MAX], b[PATH_MAX];

	(void)state;
	if (run("command -v openssl >/dev/null") != 0) {
		fprintf(stderr, "openssl command missing: skipped\n");
		exit(77);
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s/tls-test.XXXXXX",
		 base ? base : "/tmp");
	if (!mkdtemp(tmpdir))
		return -1;
	path_join(pki, tmpdir, "pki");
	path_join(other, tmpdir, "other");
	path_join(caonly, tmpdir, "caonly");
	path_join(mixed, tmpdir, "mixed");
	path_join(badkey, tmpdir, "badkey");
	path_join(psk_qemu, tmpdir, "psk/keys.psk");
	if (run("'%s' '%s' --hostname dst.example --ip 10.1.2.3 >/dev/null", mk,
		pki) ||
	    run("'%s' '%s' >/dev/null", mk, other) ||
	    run("'%s' --psk '%s/psk' >/dev/null", mk, tmpdir))
		return -1;
	/* caonly: just a CA; mixed: our CA but the other PKI's client;
	 * badkey: a server key that is not the certificate's */
	if (run("mkdir '%s' '%s' '%s' && cp '%s/ca-cert.pem' '%s/' &&"
		" cp '%s/ca-cert.pem' '%s/' &&"
		" cp '%s'/client-*.pem '%s/' &&"
		" cp '%s/ca-cert.pem' '%s/server-cert.pem' '%s/' &&"
		" cp '%s/server-key.pem' '%s/'",
		caonly, mixed, badkey, pki, caonly, pki, mixed, other, mixed,
		pki, pki, badkey, other, badkey))
		return -1;
	path_join(a, tmpdir, "a.psk");
	path_join(b, tmpdir, "b.psk");
	write_text(
		a,
		"# two users\nalice:000102030405060708090a0b0c0d0e0f\n"
		"bob:1111111111111111111111111111111111111111111111111111111111111111\n"
		"long:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
	write_text(
		b,
		"qemu:2222222222222222222222222222222222222222222222222222222222222222\n"
		"carol:33\n");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (tmpdir[0] && !getenv("MW_TEST_KEEP"))
		run("rm -rf '%s'", tmpdir);
	return 0;
}

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
	assert_string_equal(
		p.cerr.msg,
		"server certificate does not match host name 'foo.example'");
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
	const struct CMUnitTest record[] = {
		cmocka_unit_test(record_tampered),
		cmocka_unit_test(record_small_output_and_pending),
		cmocka_unit_test(record_byte_by_byte),
		cmocka_unit_test(record_many_iovecs_and_bound),
		cmocka_unit_test(record_seal_bound),
		cmocka_unit_test(record_close_notify),
		cmocka_unit_test(record_key_update),
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
	const char *env = getenv("MW_TEST_SEED");
	int fails = 0;

	seed = env ? strtoull(env, NULL, 0) : 0x9e3779b97f4a7c15ull;
	if (!seed)
		seed = 1;
	printf("MW_TEST_SEED=%" PRIu64 "\n", seed);
	if (group_setup(NULL) < 0) {
		fprintf(stderr, "cannot make test credentials in %s\n", tmpdir);
		group_teardown(NULL);
		return 1;
	}
	fails += cmocka_run_group_tests_name("tls/x509", x509, NULL, NULL);
	fails += cmocka_run_group_tests_name("tls/psk", psk, NULL, NULL);
	for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		rec_cflags = modes[m][0];
		rec_sflags = modes[m][1];
		fails += cmocka_run_group_tests_name(mode_names[m], record,
						     NULL, NULL);
	}
	rec_cflags = rec_sflags = 0;
	group_teardown(NULL);
	return fails ? 1 : 0;
}
