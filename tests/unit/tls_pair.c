/* SPDX-License-Identifier: MIT */
/*
 * The session pair and credentials of tls_pair.h. Credentials are made
 * by tools/mw-mkcerts in a temporary directory under MW_TEST_TMP.
 */
#include "tls_pair.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char tmpdir[PATH_MAX];
char pki[PATH_MAX], other[PATH_MAX], caonly[PATH_MAX];
char mixed[PATH_MAX], badkey[PATH_MAX], psk_qemu[PATH_MAX];
size_t hs_out_cap = HS_OUT;
unsigned int rec_cflags, rec_sflags;
static uint64_t seed;

/* ---- helpers ---- */

static uint64_t rnd_next(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}

void rnd_fill(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd_next() >> 24);
}

void path_join(char *dst, const char *a, const char *b)
{
	int n = snprintf(dst, PATH_MAX, "%s/%s", a, b);

	assert_true(n > 0 && n < PATH_MAX);
}

void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

int run(const char *fmt, ...)
{
	char cmd[4 * PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

void wire_put(struct wire *w, const uint8_t *p, size_t n)
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

void wire_take(struct wire *w, size_t n)
{
	assert_true(n <= w->len);
	if (!n)
		return;
	memmove(w->buf, w->buf + n, w->len - n);
	w->len -= n;
}

struct mw_tls_cfg x509_cfg(bool server, const char *dir, const char *host)
{
	struct mw_tls_cfg cfg = { .mode = MW_TLS_X509,
				  .server = server,
				  .creds_dir = dir,
				  .hostname = host };
	return cfg;
}

struct mw_tls_cfg psk_cfg(bool server, const char *file, const char *ident)
{
	struct mw_tls_cfg cfg = { .mode = MW_TLS_PSK,
				  .server = server,
				  .psk_file = file,
				  .psk_identity = ident };
	return cfg;
}

void pair_init(struct pair *p, const struct mw_tls_cfg *ccfg,
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

void pair_destroy(struct pair *p)
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
void pair_handshake(struct pair *p)
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
size_t open_all(struct mw_tls_sess *s, struct wire *w, uint8_t *out, size_t cap,
		size_t step)
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

void seal_to(struct mw_tls_sess *s, struct wire *w, const void *p, size_t n)
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
void pass_text(struct mw_tls_sess *from, struct wire *w, struct mw_tls_sess *to,
	       const char *text)
{
	size_t n = strlen(text);
	uint8_t buf[64];

	assert_true(n <= sizeof(buf));
	seal_to(from, w, text, n);
	assert_int_equal(open_all(to, w, buf, n, n), n);
	assert_memory_equal(buf, text, n);
}

void pair_connect(struct pair *p, const struct mw_tls_cfg *ccfg,
		  const struct mw_tls_cfg *scfg)
{
	pair_init(p, ccfg, 0, scfg);
	pair_handshake(p);
	if (p->cret || p->sret)
		fail_msg("handshake: client %d '%s', server %d '%s'", p->cret,
			 p->cerr.msg, p->sret, p->serr.msg);
}

/* MW_TEST_VERBOSE=1 shows every message checked, to review their wording */
void assert_msg(const struct mw_err *err, const char *part)
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

void tls_test_begin(void)
{
	const char *env = getenv("MW_TEST_SEED");

	seed = env ? strtoull(env, NULL, 0) : 0x9e3779b97f4a7c15ull;
	if (!seed)
		seed = 1;
	printf("MW_TEST_SEED=%" PRIu64 "\n", seed);
	if (group_setup(NULL) < 0) {
		fprintf(stderr, "cannot make test credentials in %s\n", tmpdir);
		group_teardown(NULL);
		exit(1);
	}
}

void tls_test_end(void)
{
	group_teardown(NULL);
}
