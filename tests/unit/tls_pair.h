/* SPDX-License-Identifier: MIT */
/*
 * Shared by the TLS engine tests (test_tls_handshake.c, test_tls_record.c):
 * a client and a server session in one process whose ciphertext is
 * shuttled through memory, no socket, and the credentials both use, made
 * by tools/mw-mkcerts in a temporary directory: one PKI, a second
 * unrelated PKI, and PSK files (tls_pair.c). Single-threaded, as cmocka
 * runs the cases.
 */
#ifndef TLS_PAIR_H
#define TLS_PAIR_H

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tls_int.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define HS_OUT (64 * KIB)

extern char tmpdir[PATH_MAX];
extern char pki[PATH_MAX], other[PATH_MAX], caonly[PATH_MAX];
extern char mixed[PATH_MAX], badkey[PATH_MAX], psk_qemu[PATH_MAX];
extern size_t hs_out_cap; /* what hs_step() lends as output */
/* who seals and opens records on each side (tls/record groups) */
extern unsigned int rec_cflags, rec_sflags;

/* One direction of ciphertext in flight. */
struct wire {
	uint8_t *buf;
	size_t len, cap;
};

struct pair {
	struct mw_tls_ctx *cctx, *sctx;
	struct mw_tls_sess *c, *s;
	struct wire c2s, s2c;
	struct mw_err cerr, serr;
	int cret, sret;
};

/* Seeds rnd_fill() from MW_TEST_SEED (printed) and makes the
 * credentials; exits 77 without the openssl command, 1 on failure. */
void tls_test_begin(void);
/* Removes the credentials unless MW_TEST_KEEP is set. */
void tls_test_end(void);

void rnd_fill(uint8_t *p, size_t n);
void path_join(char *dst, const char *a, const char *b);
void write_text(const char *path, const char *text);
int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void wire_put(struct wire *w, const uint8_t *p, size_t n);
void wire_take(struct wire *w, size_t n);
struct mw_tls_cfg x509_cfg(bool server, const char *dir, const char *host);
struct mw_tls_cfg psk_cfg(bool server, const char *file, const char *ident);
void pair_init(struct pair *p, const struct mw_tls_cfg *ccfg,
	       unsigned int cflags, const struct mw_tls_cfg *scfg);
void pair_destroy(struct pair *p);
/* Runs both handshakes until neither wants more or nothing moves. */
void pair_handshake(struct pair *p);
/* pair_init() and pair_handshake(); fails the test unless both succeed. */
void pair_connect(struct pair *p, const struct mw_tls_cfg *ccfg,
		  const struct mw_tls_cfg *scfg);
/* Opens everything in w into out (cap bytes), returns the plaintext. */
size_t open_all(struct mw_tls_sess *s, struct wire *w, uint8_t *out, size_t cap,
		size_t step);
void seal_to(struct mw_tls_sess *s, struct wire *w, const void *p, size_t n);
/* Seals text on one side and checks that the other side opens it. */
void pass_text(struct mw_tls_sess *from, struct wire *w, struct mw_tls_sess *to,
	       const char *text);
/* Fails unless err's message contains part. */
void assert_msg(const struct mw_err *err, const char *part);

#endif
