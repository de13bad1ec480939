/* SPDX-License-Identifier: MIT */
/*
 * Private to tls/ and its unit tests: the context and session objects and
 * the credential loaders that tls_ossl.c calls in tls_creds.c.
 *
 * DESIGN: a session talks to OpenSSL through one custom BIO whose read side
 * borrows the caller's input buffer and whose write side writes straight
 * into the caller's output buffer. Bytes OpenSSL writes while no output
 * buffer is lent (alerts or a KeyUpdate reply during open) go to a small
 * "spill" buffer that the next call with an output buffer empties first,
 * so the order of records on the wire is kept.
 *
 * libssl does the handshake. Then tls_rec.c takes the application records
 * over (own_rec): it seals from the caller's iovecs into the caller's
 * buffer and opens from the caller's input into the caller's output, with
 * the keys libssl negotiated, so no record is copied. libssl would copy
 * each one twice: plaintext into its write buffer, and ciphertext into its
 * read buffer and plaintext back out. ctx->own_records off leaves the
 * records to libssl; the wire is the same either way.
 */
#ifndef MW_TLS_INT_H
#define MW_TLS_INT_H

#include <openssl/evp.h>
#include <openssl/kdf.h>
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
#define MW_TLS_CTX_OSSL_RECORDS 0x2u /* leave records to libssl */

/* Records per write key before we send a KeyUpdate: RFC 8446 5.5 allows
 * 2^24.5 full records under one AES-GCM key (about 380 GiB). */
#define MW_TLS_REKEY_RECORDS (1ull << 23)

struct mw_tls_ctx {
	SSL_CTX *ssl_ctx;
	bool own_records; /* tls_rec.c seals and opens after the handshake */
	enum mw_tls_mode mode;
	bool server;
	char *hostname; /* client x509: name or IP to verify */
	bool host_is_ip;
	char *ca_path; /* for "not signed by <ca>" in messages */
	char *psk_path;
	char *psk_text; /* server: keys.psk text, wiped on free */
	size_t psk_text_len;
	char *psk_identity;		 /* client */
	uint8_t psk_key[MW_TLS_PSK_MAX]; /* client */
	size_t psk_key_len;
};

/* One direction of application traffic protection (tls_rec.c). */
struct mw_tls_dir {
	EVP_CIPHER_CTX *cc;
	uint8_t secret[EVP_MAX_MD_SIZE]; /* current traffic secret */
	size_t secret_len;
	uint8_t iv[12];
	uint64_t seq; /* records under the current key */
};

/* Our own record layer once the handshake is done (tls_rec.c). */
struct mw_tls_rec {
	EVP_CIPHER *cipher;
	EVP_KDF *kdf;
	char md_name[32];
	size_t key_len, secret_len;
	struct mw_tls_dir rd, wr;
	uint8_t *plain; /* one opened record that did not fit out */
	size_t plain_off, plain_len;
	bool closed;	   /* close_notify received */
	bool ku_owed;	   /* the peer asked for our KeyUpdate */
	uint64_t rekey_at; /* MW_TLS_REKEY_RECORDS; tests lower it */
	uint64_t wr_mark;  /* BIO bytes written when our key was made */
	bool wr_marked;
	struct mw_err wr_err; /* the write side is dead: why */
	unsigned long long key_updates_sent, key_updates_recv;
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
	uint8_t *stage; /* MW_TLS_REC_PLAIN bytes: gathers iovecs */
	bool hs_done;
	bool saw_input;
	bool own_rec; /* records go through rec, not libssl */
	struct mw_tls_rec rec;
	struct mw_err cb_err; /* found inside an OpenSSL callback */
	struct mw_err sticky; /* open: error held back behind data */
	char peer[256];	      /* mw_tls_peer_name() */
};

/*
 * Writes the OpenSSL error queue's most telling entry (the first from the
 * SSL library, else the first one) into buf as ERR_error_string_n() text,
 * empties the queue and returns buf ("no OpenSSL error" if empty).
 */
const char *mw_tls_ossl_errstr(char *buf, size_t cap);

/* The alert a peer sent, as a one-line error (auth or TLS). */
int mw_tls_fail_alert(struct mw_tls_sess *s, int alert, const char *text,
		      const char *what, struct mw_err *err);

/*
 * tls_rec.c. keylog: takes a keylog line of s's handshake (the traffic
 * secrets). start: after the handshake, takes the records over from
 * libssl (s->own_rec) when it can; 0 also when it leaves them to libssl,
 * or -ENOMEM. seal/close: write records at s->out + s->out_len (lent,
 * room checked) and return s->out_len. open: reads whole records from the
 * lent input, as mw_tls_open(). free: wipes keys.
 */
void mw_tls_rec_keylog(struct mw_tls_sess *s, const char *line);
int mw_tls_rec_start(struct mw_tls_sess *s, struct mw_err *err);
ssize_t mw_tls_rec_seal(struct mw_tls_sess *s, const struct iovec *iov,
			int iovcnt, size_t total, struct mw_err *err);
ssize_t mw_tls_rec_close(struct mw_tls_sess *s, struct mw_err *err);
ssize_t mw_tls_rec_open(struct mw_tls_sess *s, uint8_t *out, size_t out_cap,
			struct mw_err *err);
size_t mw_tls_rec_pending(const struct mw_tls_sess *s);
/* Output bytes the next seal needs beyond seal_bound(): a KeyUpdate due. */
size_t mw_tls_rec_seal_extra(const struct mw_tls_sess *s);
/* Tests only: seals p[0..n) as one record of inner content type ctype
 * into out (n + 22 bytes), whatever it holds. Returns bytes or an error. */
ssize_t mw_tls_rec_seal_type(struct mw_tls_sess *s, uint8_t ctype,
			     const void *p, size_t n, uint8_t *out,
			     size_t out_cap, struct mw_err *err);
void mw_tls_rec_free(struct mw_tls_rec *r);

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
