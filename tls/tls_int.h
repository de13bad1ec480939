/* SPDX-License-Identifier: MIT */
/*
 * Private to tls/ and its unit tests: the context and session objects and
 * the credential loaders that tls_ossl.c calls in tls_creds.c.
 *
 * DESIGN: a session talks to OpenSSL through one custom BIO whose read side
 * borrows the caller's input buffer and whose write side writes straight
 * into the caller's output buffer, so sealing copies each record once
 * (OpenSSL's record buffer -> caller's buffer). Bytes OpenSSL writes while
 * no output buffer is lent (alerts or a KeyUpdate reply during open) go to
 * a small "spill" buffer that the next call with an output buffer empties
 * first, so the order of records on the wire is kept.
 */
#ifndef MW_TLS_INT_H
#define MW_TLS_INT_H

#include <openssl/ssl.h>

#include "mw_tls.h"

/* TLS 1.3 record: 5 byte header + 1 byte inner content type + 16 byte tag */
#define MW_TLS_REC_PLAIN 16384u
#define MW_TLS_REC_OVERHEAD 22u
/* room for records OpenSSL may emit unasked (KeyUpdate reply, alert) */
#define MW_TLS_SEAL_SLACK 256u
/* PSK keys longer than this do not fit an SSL_SESSION master key */
#define MW_TLS_PSK_MAX 64u

/* mw_tls_ctx_new_opt() flags */
#define MW_TLS_CTX_NO_CERT 0x1u /* client: present no certificate (tests) */

struct mw_tls_ctx {
	SSL_CTX *ssl_ctx;
	enum mw_tls_mode mode;
	bool server;
	char *hostname;		/* client x509: name or IP to verify */
	bool host_is_ip;
	char *ca_path;		/* for "not signed by <ca>" in messages */
	char *psk_path;
	char *psk_text;		/* server: keys.psk text, wiped on free */
	size_t psk_text_len;
	char *psk_identity;	/* client */
	uint8_t psk_key[MW_TLS_PSK_MAX]; /* client */
	size_t psk_key_len;
};

struct mw_tls_sess {
	struct mw_tls_ctx *ctx;
	SSL *ssl;
	/* borrowed for the duration of one call */
	const uint8_t *in;
	size_t in_len, in_off;
	uint8_t *out;
	size_t out_cap, out_len;
	/* see DESIGN above */
	uint8_t *spill;
	size_t spill_len, spill_cap;
	uint8_t *stage;		/* MW_TLS_REC_PLAIN bytes: gathers iovecs */
	bool hs_done;
	bool saw_input;
	struct mw_err cb_err;	/* found inside an OpenSSL callback */
	struct mw_err sticky;	/* open: error held back behind data */
	char peer[256];		/* mw_tls_peer_name() */
};

/*
 * Writes the OpenSSL error queue's most telling entry (the first from the
 * SSL library, else the first one) into buf as ERR_error_string_n() text,
 * empties the queue and returns buf ("no OpenSSL error" if empty).
 */
const char *mw_tls_ossl_errstr(char *buf, size_t cap);

/*
 * mw_tls_ctx_new() with flags (MW_TLS_CTX_*). Tests use it to build a
 * client that has no certificate. Same returns as mw_tls_ctx_new().
 */
int mw_tls_ctx_new_opt(struct mw_tls_ctx **out, const struct mw_tls_cfg *cfg,
		       unsigned int flags, struct mw_err *err);

/*
 * Loads the QEMU tls-creds-x509 files for cfg->server's side into sc and
 * sets ctx->ca_path. Returns 0, -ENOENT/-EACCES (path in *err), -ENOMEM or
 * -MW_E_TLS (bad PEM, key does not match certificate).
 */
int mw_tls_creds_x509_load(struct mw_tls_ctx *ctx, SSL_CTX *sc,
			   const struct mw_tls_cfg *cfg, unsigned int flags,
			   struct mw_err *err);

/*
 * Reads keys.psk. Client: finds cfg->psk_identity's key (ctx->psk_key).
 * Server: keeps the checked text for lookups during handshakes. Returns 0,
 * -ENOENT/-EACCES, -ENOMEM, -EINVAL (bad line) or -ENOENT (no such
 * identity).
 */
int mw_tls_creds_psk_load(struct mw_tls_ctx *ctx, const struct mw_tls_cfg *cfg,
			  struct mw_err *err);

#endif
