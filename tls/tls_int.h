/* SPDX-License-Identifier: MIT */
/*
 * Private to tls/ and its unit tests: the context and session objects and
 * the interfaces between the files of tls/, which call one way only, top
 * to bottom:
 *
 *   tls_hs.c       contexts, sessions, handshake, PSK callbacks
 *   tls_data.c     seal/open/close/pending: checks, then s->rec_ops
 *   tls_authz.c    peer identities and --tls-authz
 *   tls_creds.c    x509 files (ca-crl.pem too) and keys.psk
 *   tls_rec.c      our own records (mw_tls_own_rec_ops)
 *   tls_rec_key.c  their key schedule and keylog secrets
 *   tls_ssl_rec.c  libssl's records (mw_tls_ssl_rec_ops)
 *   tls_bio.c      the memory BIO and its loans
 *   tls_err.c      OpenSSL errors and peer alerts as one-line messages
 *   tls_join.c     the --join-token proof (HMAC, exporter; a leaf)
 *
 * A file calls only files below it (tls_hs.c starts tls_rec.c and hands
 * tls_rec_key.c the keylog); tls_data.c reaches the engines only through
 * the table.
 *
 * DESIGN: a session talks to OpenSSL through one custom BIO whose read side
 * borrows the caller's input buffer and whose write side writes straight
 * into the caller's output buffer. Bytes OpenSSL writes while no output
 * buffer is lent (alerts or a KeyUpdate reply during open) go to a small
 * "spill" buffer that the next call with an output buffer empties first,
 * so the order of records on the wire is kept.
 *
 * libssl does the handshake. Then tls_rec.c takes the application records
 * over (s->rec_ops = &mw_tls_own_rec_ops): it seals from the caller's
 * iovecs into the caller's buffer and opens from the caller's input into
 * the caller's output, with the keys libssl negotiated, so no record is
 * copied. libssl would copy each one twice: plaintext into its write
 * buffer, and ciphertext into its read buffer and plaintext back out.
 * ctx->own_records off leaves the records to libssl (tls_ssl_rec.c); the
 * wire is the same either way.
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
/* RFC 8446 5.2: TLSCiphertext.length at most 2^14 + 256 */
#define MW_TLS_REC_CT_MAX (MW_TLS_REC_PLAIN + 256u)
#define MW_TLS_REC_IV 12u
/* room for records OpenSSL may emit unasked (KeyUpdate reply, alert) */
#define MW_TLS_SEAL_SLACK 256u
/* PSK keys longer than this do not fit an SSL_SESSION master key */
#define MW_TLS_PSK_MAX 64u
/* shorter PSK keys get a warning: 128 bits is what a TLS 1.3 suite's
 * security assumes (QEMU's docs make 32 bytes with psktool) */
#define MW_TLS_PSK_WEAK 16u
/* KeyUpdates a peer may send in a row without application data between
 * them (tls_rec.c; libssl's records have no such limit, only the spill
 * cap below) */
#define MW_TLS_KU_STREAK_MAX 32u
/* Bytes the BIO may hold for a peer while no output buffer is lent: a
 * whole handshake flight fits many times over, a flood of KeyUpdate
 * requests answered by libssl while we do not send does not */
#define MW_TLS_SPILL_MAX (256u << 10)
/* a subject DN as --tls-authz names it, or a PSK identity */
#define MW_TLS_ID_MAX 512u

/* mw_tls_ctx_new_opt() flags */
#define MW_TLS_CTX_NO_CERT 0x1u /* client: present no certificate (tests) */
#define MW_TLS_CTX_OSSL_RECORDS 0x2u /* leave records to libssl */

/* Records per write key before we send a KeyUpdate: RFC 8446 5.5 allows
 * 2^24.5 full records under one AES-GCM key (about 380 GiB). */
#define MW_TLS_REKEY_RECORDS (1ull << 23)

/*
 * Locking: none. Written only by mw_tls_ctx_new() and read-only after it
 * returns, so every channel thread of a side reads it freely (SSL_CTX is
 * thread-safe once set up).
 */
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
	char **authz; /* --tls-authz and its file: the peers allowed */
	unsigned nr_authz;
	bool crl; /* ca-crl.pem loaded: revoked peers are refused */
	char *crl_path;
};

/*
 * One direction of application traffic protection (tls_rec.c).
 * Locking: none; part of the session, so its thread's only.
 */
struct mw_tls_dir {
	EVP_CIPHER_CTX *cc;
	uint8_t secret[EVP_MAX_MD_SIZE]; /* current traffic secret */
	size_t secret_len;
	uint8_t iv[MW_TLS_REC_IV];
	uint64_t seq; /* records under the current key */
};

/*
 * Our own record layer once the handshake is done (tls_rec.c).
 * Locking: none; part of the session, so its thread's only.
 */
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
	unsigned ku_streak;   /* KeyUpdates opened since the last data */
	struct mw_err wr_err; /* the write side is dead: why */
	unsigned long long key_updates_sent, key_updates_recv;
};

/*
 * What the BIO reads and writes (tls_bio.c).
 * Locking: none; owned by the thread that drives the session, like the
 * session. in/out are borrowed from the caller for one call only and are
 * NULL between calls; spill is ours.
 */
struct mw_tls_loan {
	const uint8_t *in; /* lent input, in_off bytes of it read */
	size_t in_len, in_off;
	uint8_t *out; /* lent output, out_len bytes of it written */
	size_t out_cap, out_len;
	uint8_t *spill; /* see DESIGN above */
	size_t spill_len, spill_cap;
	bool spill_over; /* MW_TLS_SPILL_MAX reached: the session is dead */
};

struct mw_tls_rec_ops;

/*
 * Locking: none. A session is driven by one thread at a time (its
 * channel's); mw_tls.h says so to the callers. The only other code that
 * touches it runs inside OpenSSL calls made on that thread (BIO, keylog
 * and PSK callbacks).
 */
struct mw_tls_sess {
	struct mw_tls_ctx *ctx;
	SSL *ssl;
	struct mw_tls_loan loan; /* the BIO's data */
	uint8_t *stage;		 /* MW_TLS_REC_PLAIN bytes: gathers iovecs */
	bool hs_done;
	bool saw_input;
	/* the record engine: libssl's, until mw_tls_rec_start() takes over */
	const struct mw_tls_rec_ops *rec_ops;
	struct mw_tls_rec rec;	     /* mw_tls_own_rec_ops's state */
	struct mw_err cb_err;	     /* found inside an OpenSSL callback */
	struct mw_err sticky;	     /* open: error held back behind data */
	char peer[256];		     /* mw_tls_peer_name() */
	char peer_id[MW_TLS_ID_MAX]; /* mw_tls_peer_id(); on a failed
				      * handshake, the revoked certificate's
				      * DN (verify callback) */
	bool peer_id_ok;	     /* printable, so --tls-authz may match */
	char cert_names[200];	     /* client: the server certificate's names,
				* kept by the verify callback on a name
				* mismatch for the error line */
};

/*
 * tls_bio.c. init: makes the BIO method once per process (-ENOMEM).
 * new: a BIO over l (NULL when out of memory). lend: lends in/out for one
 * call; output that spilled earlier goes into out first, so records leave
 * in the order OpenSSL made them. unlend: ends the loan, so no pointer to
 * the caller's buffers survives the call. flush: moves up to out_cap
 * spilled bytes into out, returns how many. destroy: frees the spill.
 */
int mw_tls_bio_init(void);
BIO *mw_tls_bio_new(struct mw_tls_loan *l);
void mw_tls_bio_lend(struct mw_tls_loan *l, const uint8_t *in, size_t in_len,
		     uint8_t *out, size_t out_cap);
void mw_tls_bio_unlend(struct mw_tls_loan *l);
size_t mw_tls_bio_flush(struct mw_tls_loan *l, uint8_t *out, size_t out_cap);
void mw_tls_bio_destroy(struct mw_tls_loan *l);

/*
 * tls_err.c. Writes the OpenSSL error queue's most telling entry (the
 * first from the SSL library, else the first one) into buf as
 * ERR_error_string_n() text, empties the queue and returns buf ("no
 * OpenSSL error" if empty).
 */
const char *mw_tls_ossl_errstr(char *buf, size_t cap);

/* The alert a peer sent, as a one-line error (auth or TLS). */
int mw_tls_fail_alert(struct mw_tls_sess *s, int alert, const char *text,
		      const char *what, struct mw_err *err);

/*
 * Maps a failed SSL call on s (r = its return value) to 0 (close_notify),
 * -EAGAIN (wants more input) or an error code with a one-line reason.
 * what names the operation for the message.
 */
int mw_tls_ssl_fail(struct mw_tls_sess *s, int r, const char *what,
		    struct mw_err *err);

/* The first n bytes of a peer that is not speaking TLS, as an error. */
int mw_tls_not_tls(const uint8_t *in, size_t n, struct mw_err *err);
/* tls_err.c: "DNS:a, IP:127.0.0.1", the subjectAltNames of cert ("" for
 * none), for an error line that says what would have matched. */
void mw_tls_cert_names(X509 *cert, char *buf, size_t cap);
/* tls_err.c: cert's subject as --tls-authz names it ("" on failure):
 * RFC 4514 order (the last RDN first), UTF-8 kept, as QEMU's
 * gnutls_x509_crt_get_dn() writes it. */
void mw_tls_dn(X509 *cert, char *buf, size_t cap);

/*
 * A record engine: who seals and opens the application records once the
 * handshake is done. tls_data.c has checked the call (handshake done,
 * out_cap enough for seal_bound() - MW_TLS_SEAL_SLACK + seal_extra(), or
 * for a close_notify) and put spilled handshake bytes in front of out; the
 * engine writes at out and returns the bytes written, or an error with
 * its message in *err. The buffers are the caller's, for this call only.
 *   seal:       iov holds total plaintext bytes.
 *   open:       as mw_tls_open(); *consumed is 0 on entry.
 *   close:      a close_notify.
 *   pending:    as mw_tls_pending().
 *   seal_extra: room the next seal needs beyond seal_bound().
 * A kernel TLS engine would be a third table.
 * Locking: none; the tables are const, the session its thread's only.
 */
struct mw_tls_rec_ops {
	ssize_t (*seal)(struct mw_tls_sess *s, const struct iovec *iov,
			int iovcnt, size_t total, uint8_t *out, size_t out_cap,
			struct mw_err *err);
	ssize_t (*open)(struct mw_tls_sess *s, const uint8_t *in, size_t in_len,
			size_t *consumed, uint8_t *out, size_t out_cap,
			struct mw_err *err);
	ssize_t (*close)(struct mw_tls_sess *s, uint8_t *out, size_t out_cap,
			 struct mw_err *err);
	size_t (*pending)(const struct mw_tls_sess *s);
	size_t (*seal_extra)(const struct mw_tls_sess *s);
};

extern const struct mw_tls_rec_ops mw_tls_own_rec_ops; /* tls_rec.c */
extern const struct mw_tls_rec_ops mw_tls_ssl_rec_ops; /* tls_ssl_rec.c */

/*
 * tls_rec.c. start: after the handshake, takes the records over from
 * libssl (s->rec_ops = &mw_tls_own_rec_ops) when it can; 0 also when it
 * leaves them to libssl, or -ENOMEM.
 */
int mw_tls_rec_start(struct mw_tls_sess *s, struct mw_err *err);
/* Tests only: seals p[0..n) as one record of inner content type ctype
 * into out (n + 22 bytes), whatever it holds. Returns bytes or an error. */
ssize_t mw_tls_rec_seal_type(struct mw_tls_sess *s, uint8_t ctype,
			     const void *p, size_t n, uint8_t *out,
			     size_t out_cap, struct mw_err *err);

/*
 * tls_rec_key.c. keylog: takes a keylog line of s's handshake (the traffic
 * secrets). keys_init: r's cipher and both keys for suite c, 0 or -1 when
 * the records must stay with libssl. dir_update: d's next traffic key
 * (KeyUpdate), 0 or -1. free: frees r and wipes its keys.
 */
void mw_tls_rec_keylog(struct mw_tls_sess *s, const char *line);
int mw_tls_rec_keys_init(struct mw_tls_rec *r, const SSL_CIPHER *c);
int mw_tls_dir_update(struct mw_tls_rec *r, struct mw_tls_dir *d, int enc);
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
 * tls_authz.c. load: the identities of cfg's --tls-authz and its file into
 * ctx (-ENOENT/-EACCES, -EINVAL with the file's line, -ENOMEM). free:
 * frees them. check: at the end of the
 * handshake, fills s->peer_id and refuses (-MW_E_AUTH) a peer whose
 * identity is not in the list.
 */
int mw_tls_authz_load(struct mw_tls_ctx *ctx, const struct mw_tls_cfg *cfg,
		      struct mw_err *err);
void mw_tls_authz_free(struct mw_tls_ctx *ctx);
int mw_tls_authz_check(struct mw_tls_sess *s, struct mw_err *err);

/* tls_creds.c: reads a small regular file (at most 1 MiB) into a
 * NUL-terminated malloc'ed buffer; free with OPENSSL_clear_free(text,
 * len + 1). 0 or -errno with the path in *err. */
int mw_tls_read_small_file(const char *path, char **text, size_t *len,
			   struct mw_err *err);

/* tls_creds.c: the line of text at *pos (len bytes in all), *n bytes
 * without its newline and trailing blanks or CR; moves *pos past it.
 * NULL at the end of the text. */
const char *mw_tls_text_line(const char *text, size_t len, size_t *pos,
			     size_t *n);

/*
 * Reads keys.psk. Client: finds cfg->psk_identity's key (ctx->psk_key).
 * Server: keeps the checked text for lookups during handshakes. Returns 0,
 * -ENOENT/-EACCES, -ENOMEM, -EINVAL (bad line) or -ENOENT (no such
 * identity).
 */
int mw_tls_creds_psk_load(struct mw_tls_ctx *ctx, const struct mw_tls_cfg *cfg,
			  struct mw_err *err);

#endif
