/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.3 through OpenSSL 3 with memory buffers: after the handshake this
 * module owns no socket. The transport receives ciphertext (io_uring) and
 * passes it in; it gets ciphertext back in buffers it supplies and sends
 * them itself.
 *
 * Credentials follow QEMU's tls-creds-x509 directory layout (ca-cert.pem,
 * an optional ca-crl.pem, server-cert.pem, server-key.pem,
 * client-cert.pem, client-key.pem) and tls-creds-psk's keys.psk
 * ("identity:hexkey" lines). Authorization follows QEMU's tls-authz: an
 * exact match of the peer's subject DN or PSK identity.
 *
 * Dependencies: common/ only.
 */
#ifndef MW_TLS_H
#define MW_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "mw_err.h"

enum mw_tls_mode { MW_TLS_OFF = 0, MW_TLS_X509, MW_TLS_PSK };

struct mw_tls_cfg {
	enum mw_tls_mode mode;
	bool server;	       /* recv side: accepts connections */
	const char *creds_dir; /* X509: QEMU layout directory */
	const char
		*hostname; /* client: name (or IP) the server cert must match */
	const char *psk_file; /* PSK: keys.psk */
	const char *
		psk_identity; /* PSK client: identity to use (default "qemu") */
	/* --tls-authz: the peer identities allowed (a certificate's subject
	 * DN in RFC 4514 form, or a PSK identity), and a file of more, one a
	 * line; none: any authenticated peer */
	const char *const *authz;
	unsigned nr_authz;
	const char *authz_file;
};

struct mw_tls_ctx;  /* shared by all channels of a side; thread-safe */
struct mw_tls_sess; /* one per channel; used by one thread at a time */

/* Loads credentials and builds the context. On error *err says which file
 * and why. Returns 0, -ENOENT/-EACCES, or -MW_E_TLS. */
int mw_tls_ctx_new(struct mw_tls_ctx **out, const struct mw_tls_cfg *cfg,
		   struct mw_err *err);
void mw_tls_ctx_free(struct mw_tls_ctx *ctx);

int mw_tls_sess_new(struct mw_tls_sess **out, struct mw_tls_ctx *ctx,
		    struct mw_err *err);
void mw_tls_sess_free(struct mw_tls_sess *s);

/*
 * Handshake step. in/in_len: ciphertext received since the last call (may
 * be 0 bytes); *consumed is set to what was taken (the rest stays with the
 * caller, e.g. application data that arrived with the last handshake
 * message). out/out_cap: the caller's buffer for ciphertext to send; *out_len
 * is set. Returns 0 when the handshake is complete (out may still hold
 * bytes to send), -EAGAIN when more input is needed, or -MW_E_TLS /
 * -MW_E_AUTH with the reason in *err (certificate, host name, PSK, or
 * "peer is not speaking TLS"). When *out_len == out_cap more output may be
 * waiting: send it and call again before waiting for input (16 KiB is
 * enough for a whole flight with the usual certificates). On error, out
 * may hold an alert that is worth sending.
 */
int mw_tls_handshake(struct mw_tls_sess *s, const uint8_t *in, size_t in_len,
		     size_t *consumed, uint8_t *out, size_t out_cap,
		     size_t *out_len, struct mw_err *err);

/* Upper bound of ciphertext for sealing plain_len bytes in one call. */
size_t mw_tls_seal_bound(size_t plain_len);

/*
 * Encrypts the iovecs (total at most out_cap - overhead, see seal_bound)
 * into out. Returns the number of ciphertext bytes written, -MW_E_NOSPACE
 * when out_cap is below what the total needs, or -MW_E_TLS.
 */
ssize_t mw_tls_seal(struct mw_tls_sess *s, const struct iovec *iov, int iovcnt,
		    uint8_t *out, size_t out_cap, struct mw_err *err);

/*
 * Decrypts: takes ciphertext from in (sets *consumed) and writes up to
 * out_cap plaintext bytes into out. Returns plaintext bytes (>0), -EAGAIN
 * when a whole record is not there yet (feed more), 0 on a clean TLS
 * close_notify, or -MW_E_TLS. Bytes not consumed (the start of a record)
 * stay with the caller, who offers them again with what follows them.
 * Plaintext of a record that did not fit out stays inside the session
 * (mw_tls_pending()); call again with in_len 0 to drain it before feeding
 * more. After an error, every later call fails the same way.
 */
ssize_t mw_tls_open(struct mw_tls_sess *s, const uint8_t *in, size_t in_len,
		    size_t *consumed, uint8_t *out, size_t out_cap,
		    struct mw_err *err);

/*
 * Writes a TLS close_notify into out (needs a few dozen bytes) for the
 * transport to send after the last sealed data. Returns the ciphertext
 * bytes written, -MW_E_NOSPACE or -MW_E_TLS. The peer's mw_tls_open()
 * then returns 0.
 */
ssize_t mw_tls_close(struct mw_tls_sess *s, uint8_t *out, size_t out_cap,
		     struct mw_err *err);

/* Bytes of plaintext already decrypted and waiting inside the session. */
size_t mw_tls_pending(struct mw_tls_sess *s);

/* Frees OpenSSL's per-thread state of the calling thread (its error queue).
 * A detached thread that used TLS calls it last: its thread-exit cleanup
 * could otherwise still be pending when the process exits. */
void mw_tls_thread_stop(void);

/*
 * Who seals and opens records after the handshake, from the environment
 * (MIGWIRE_TLS_RECORDS): "own" (default) or "openssl"; NULL for any other
 * value, which mw_tls_ctx_new() refuses as a usage error.
 */
const char *mw_tls_records_mode(void);

/* One-line description of the peer (certificate subject or PSK identity). */
const char *mw_tls_peer_name(struct mw_tls_sess *s);

/* The peer's identity as --tls-authz names it, once the handshake is
 * done: its certificate's subject DN ("CN=src,O=Example", RFC 4514 order)
 * or the PSK identity (server side); "" when there is none. */
const char *mw_tls_peer_id(struct mw_tls_sess *s);

/*
 * --join-token (tls_join.c). The proof a sender gives of a per-migration
 * secret: tag = HMAC-SHA256(token, "migwire join v2" | mode | binding |
 * nonce | hello), where binding is a 32-byte TLS exporter value of session
 * s ("EXPORTER-migwire-join") or, with s NULL (--no-tls), 32 zero bytes,
 * and mode says which. nonce_len + hello_len <= MW_TLS_JOIN_MSG_MAX.
 * Writes MW_TLS_JOIN_TAG_LEN bytes to tag. Returns 0 or -MW_E_TLS.
 * Context: the thread that drives s, after its handshake.
 */
#define MW_TLS_JOIN_TAG_LEN 32u
#define MW_TLS_JOIN_MSG_MAX 256u
int mw_tls_join_tag(struct mw_tls_sess *s, const uint8_t *token,
		    size_t token_len, const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *hello, size_t hello_len, uint8_t *tag,
		    struct mw_err *err);
/*
 * The resume proof (docs/protocol.md, "Resume"): the same construction,
 * domain "migwire resume v3", over a 32-byte nonce and the resuming HELLO,
 * keyed with the session's 32-byte resume secret R, or with a join token
 * (token_len > 0) with HMAC-SHA256(token, "migwire resume key v3\0" | R),
 * so that R seen in clear (--no-tls) is not enough. Same context.
 */
int mw_tls_resume_tag(struct mw_tls_sess *s, const uint8_t *token,
		      size_t token_len, const uint8_t *secret,
		      const uint8_t *nonce, const uint8_t *hello,
		      size_t hello_len, uint8_t *tag, struct mw_err *err);
/* Wipes n bytes at p (secrets), in a way the compiler keeps. */
void mw_tls_cleanse(void *p, size_t n);
/* Compares two tags in constant time (CRYPTO_memcmp). */
bool mw_tls_join_tag_equal(const uint8_t *a, const uint8_t *b);
/* n bytes from OpenSSL's CSPRNG. Returns 0 or -MW_E_TLS. */
int mw_tls_random(void *buf, size_t n, struct mw_err *err);

/* Parses QEMU keys.psk text: finds `identity` and decodes its hex key into
 * key (at most key_cap bytes). Exposed for unit tests and fuzzing.
 * Returns key length, -ENOENT (no such identity) or -EINVAL (bad line N,
 * text in *err). */
ssize_t mw_tls_psk_parse(const char *text, size_t len, const char *identity,
			 uint8_t *key, size_t key_cap, struct mw_err *err);

#endif
