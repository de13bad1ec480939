/* SPDX-License-Identifier: MIT */
/*
 * The --join-token proof (tls/tls_join.c): both ends of one TLS connection
 * compute the same tag; a tag from another connection (same token, nonce
 * and HELLO) differs, which is what makes a relayed or replayed proof fail;
 * and every input of the MAC changes it. Also the peer-text escaping the
 * receiver applies to ERROR frames (common/mw_err.c).
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mw_err.h"
#include "tls_pair.h"

static const uint8_t token[] = "0123456789abcdef0123456789abcdef";
#define TOKEN_LEN (sizeof(token) - 1)

static void fill_inputs(uint8_t *nonce, uint8_t *hello)
{
	memset(nonce, 0x5a, MW_TLS_JOIN_TAG_LEN);
	memset(hello, 0x11, 64);
}

static void tag_of(struct mw_tls_sess *s, const uint8_t *tok, size_t tok_len,
		   const uint8_t *nonce, const uint8_t *hello, uint8_t *out)
{
	struct mw_err err = { 0 };

	assert_int_equal(mw_tls_join_tag(s, tok, tok_len, nonce,
					 MW_TLS_JOIN_TAG_LEN, hello, 64, out,
					 &err),
			 0);
}

/* Client and server agree; another connection's tag is another tag. */
static void join_bound_to_connection(void **state)
{
	struct mw_tls_cfg cc = x509_cfg(false, pki, "dst.example");
	struct mw_tls_cfg sc = x509_cfg(true, pki, NULL);
	uint8_t nonce[MW_TLS_JOIN_TAG_LEN], hello[64];
	uint8_t ca[32], sa[32], cb[32], sb[32];
	struct pair a, b;

	(void)state;
	fill_inputs(nonce, hello);
	pair_connect(&a, &cc, &sc);
	pair_connect(&b, &cc, &sc);
	tag_of(a.c, token, TOKEN_LEN, nonce, hello, ca);
	tag_of(a.s, token, TOKEN_LEN, nonce, hello, sa);
	tag_of(b.c, token, TOKEN_LEN, nonce, hello, cb);
	tag_of(b.s, token, TOKEN_LEN, nonce, hello, sb);
	assert_true(mw_tls_join_tag_equal(ca, sa));
	assert_true(mw_tls_join_tag_equal(cb, sb));
	/* connection a's proof replayed on connection b */
	assert_false(mw_tls_join_tag_equal(ca, sb));
	pair_destroy(&a);
	pair_destroy(&b);
}

/* PSK connections bind too, and our record layer or libssl's alike. */
static void join_bound_psk(void **state)
{
	struct mw_tls_cfg cc = psk_cfg(false, psk_qemu, NULL);
	struct mw_tls_cfg sc = psk_cfg(true, psk_qemu, NULL);
	uint8_t nonce[MW_TLS_JOIN_TAG_LEN], hello[64], c[32], s[32];
	struct pair p;

	(void)state;
	fill_inputs(nonce, hello);
	pair_connect(&p, &cc, &sc);
	tag_of(p.c, token, TOKEN_LEN, nonce, hello, c);
	tag_of(p.s, token, TOKEN_LEN, nonce, hello, s);
	assert_true(mw_tls_join_tag_equal(c, s));
	pair_destroy(&p);
}

/* Without TLS: the same inputs give the same tag; the token, the nonce,
 * any HELLO byte and the mode (TLS or not) each change it. */
static void join_inputs(void **state)
{
	struct mw_tls_cfg cc = psk_cfg(false, psk_qemu, NULL);
	struct mw_tls_cfg sc = psk_cfg(true, psk_qemu, NULL);
	uint8_t nonce[MW_TLS_JOIN_TAG_LEN], hello[64];
	uint8_t base[32], again[32], t[32];
	uint8_t tok2[TOKEN_LEN];
	struct pair p;

	(void)state;
	fill_inputs(nonce, hello);
	tag_of(NULL, token, TOKEN_LEN, nonce, hello, base);
	tag_of(NULL, token, TOKEN_LEN, nonce, hello, again);
	assert_memory_equal(base, again, 32);
	memcpy(tok2, token, TOKEN_LEN);
	tok2[TOKEN_LEN - 1] ^= 1;
	tag_of(NULL, tok2, TOKEN_LEN, nonce, hello, t);
	assert_false(mw_tls_join_tag_equal(base, t));
	nonce[31] ^= 1;
	tag_of(NULL, token, TOKEN_LEN, nonce, hello, t);
	assert_false(mw_tls_join_tag_equal(base, t));
	nonce[31] ^= 1;
	hello[10] ^= 1;
	tag_of(NULL, token, TOKEN_LEN, nonce, hello, t);
	assert_false(mw_tls_join_tag_equal(base, t));
	hello[10] ^= 1;
	pair_connect(&p, &cc, &sc);
	tag_of(p.c, token, TOKEN_LEN, nonce, hello, t);
	assert_false(mw_tls_join_tag_equal(base, t));
	pair_destroy(&p);
}

static void resume_tag_tok(struct mw_tls_sess *s, const uint8_t *tok,
			   size_t tok_len, const uint8_t *secret,
			   const uint8_t *nonce, const uint8_t *hello,
			   uint8_t *out)
{
	struct mw_err err = { 0 };

	assert_int_equal(mw_tls_resume_tag(s, tok, tok_len, secret, nonce,
					   hello, 64, out, &err),
			 0);
}

static void resume_tag_of(struct mw_tls_sess *s, const uint8_t *secret,
			  const uint8_t *nonce, const uint8_t *hello,
			  uint8_t *out)
{
	resume_tag_tok(s, NULL, 0, secret, nonce, hello, out);
}

/* The resume proof: both ends agree, a proof of one connection is worth
 * nothing on another (a replay), and it is never a join proof. */
static void resume_bound_to_connection(void **state)
{
	struct mw_tls_cfg cc = x509_cfg(false, pki, "dst.example");
	struct mw_tls_cfg sc = x509_cfg(true, pki, NULL);
	uint8_t nonce[MW_TLS_JOIN_TAG_LEN], hello[64], secret[32];
	uint8_t ca[32], sa[32], sb[32], j[32];
	struct pair a, b;

	(void)state;
	fill_inputs(nonce, hello);
	memcpy(secret, token, sizeof(secret));
	pair_connect(&a, &cc, &sc);
	pair_connect(&b, &cc, &sc);
	resume_tag_of(a.c, secret, nonce, hello, ca);
	resume_tag_of(a.s, secret, nonce, hello, sa);
	resume_tag_of(b.s, secret, nonce, hello, sb);
	assert_true(mw_tls_join_tag_equal(ca, sa));
	assert_false(mw_tls_join_tag_equal(ca, sb));
	/* same key and inputs as a join proof: other domain, other tag */
	tag_of(a.s, secret, sizeof(secret), nonce, hello, j);
	assert_false(mw_tls_join_tag_equal(sa, j));
	secret[0] ^= 1;
	resume_tag_of(a.s, secret, nonce, hello, sb);
	assert_false(mw_tls_join_tag_equal(sa, sb));
	pair_destroy(&a);
	pair_destroy(&b);
}

/* The no-TLS resume tag as docs/protocol.md writes it, keyed with key:
 * HMAC-SHA256(key, "migwire resume v3\0" | 0 | 32 zero bytes | N | HELLO). */
static void resume_tag_spec(const uint8_t *key, const uint8_t *nonce,
			    const uint8_t *hello, uint8_t *want)
{
	static const char dom[] = "migwire resume v3";
	uint8_t msg[sizeof(dom) + 1 + 32 + 32 + 64];
	unsigned int len = 0;
	size_t n = 0;

	memcpy(msg, dom, sizeof(dom));
	n += sizeof(dom);
	msg[n++] = 0;
	memset(msg + n, 0, 32);
	n += 32;
	memcpy(msg + n, nonce, 32);
	n += 32;
	memcpy(msg + n, hello, 64);
	n += 64;
	assert_non_null(HMAC(EVP_sha256(), key, 32, msg, n, want, &len));
}

/* Without TLS and without a token the key is R itself. */
static void resume_construction(void **state)
{
	uint8_t nonce[MW_TLS_JOIN_TAG_LEN], hello[64], secret[32];
	uint8_t want[32], got[32];

	(void)state;
	fill_inputs(nonce, hello);
	memset(secret, 0xc3, sizeof(secret));
	resume_tag_spec(secret, nonce, hello, want);
	resume_tag_of(NULL, secret, nonce, hello, got);
	assert_memory_equal(got, want, 32);
}

/* With a join token the key is HMAC-SHA256(T, "migwire resume key v3\0" |
 * R), not R: a reader of a --no-tls HELLO_OK (R in clear) cannot make the
 * proof without the token (docs/protocol.md). */
static void resume_key_with_token(void **state)
{
	static const char kdom[] = "migwire resume key v3";
	uint8_t nonce[MW_TLS_JOIN_TAG_LEN], hello[64], secret[32], key[32];
	uint8_t kmsg[sizeof(kdom) + 32], want[32], got[32], plain[32];
	unsigned int len = 0;

	(void)state;
	fill_inputs(nonce, hello);
	memset(secret, 0x5a, sizeof(secret));
	memcpy(kmsg, kdom, sizeof(kdom));
	memcpy(kmsg + sizeof(kdom), secret, 32);
	assert_non_null(HMAC(EVP_sha256(), token, TOKEN_LEN, kmsg, sizeof(kmsg),
			     key, &len));
	resume_tag_spec(key, nonce, hello, want);
	resume_tag_tok(NULL, token, TOKEN_LEN, secret, nonce, hello, got);
	assert_memory_equal(got, want, 32);
	/* what R alone gives is not it */
	resume_tag_of(NULL, secret, nonce, hello, plain);
	assert_false(mw_tls_join_tag_equal(got, plain));
	/* another token, another tag */
	resume_tag_tok(NULL, token, TOKEN_LEN - 1, secret, nonce, hello, plain);
	assert_false(mw_tls_join_tag_equal(got, plain));
}

static void peer_text_escaped(void **state)
{
	static const char evil[] = "a\x1b[2J\r\nb\\c\x00\xff";
	char out[MW_PEER_TEXT_MAX + 1], big[2000];

	(void)state;
	mw_err_peer_text(out, sizeof(out), evil, sizeof(evil) - 1);
	assert_string_equal(out, "a\\x1b[2J\\x0d\\x0ab\\\\c\\x00\\xff");
	memset(big, 'A', sizeof(big));
	mw_err_peer_text(out, sizeof(out), big, sizeof(big));
	assert_int_equal(strlen(out), MW_PEER_TEXT_MAX);
	assert_string_equal(out + MW_PEER_TEXT_MAX - 3, "...");
	/* a small buffer is never overrun, and ends in "..." too */
	mw_err_peer_text(out, 8, "\x01\x02\x03", 3);
	assert_string_equal(out, "\\x01...");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(join_bound_to_connection),
		cmocka_unit_test(join_bound_psk),
		cmocka_unit_test(join_inputs),
		cmocka_unit_test(resume_bound_to_connection),
		cmocka_unit_test(resume_construction),
		cmocka_unit_test(resume_key_with_token),
		cmocka_unit_test(peer_text_escaped),
	};
	int fails;

	tls_test_begin();
	fails = cmocka_run_group_tests_name("tls/join", tests, NULL, NULL);
	tls_test_end();
	return fails ? 1 : 0;
}
