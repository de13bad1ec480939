/* SPDX-License-Identifier: MIT */
/*
 * The handshake layer of mw_tls.h on OpenSSL 3: contexts, sessions, the
 * PSK callbacks and the handshake itself. TLS 1.3 only, no tickets, no
 * renegotiation, no compression; mutual X.509 authentication with the
 * server's name checked, or QEMU-style PSK. A session never sees a socket:
 * ciphertext comes in and goes out through buffers that the transport
 * lends for one call (tls_bio.c, DESIGN in tls_int.h). mw_tls_ctx_new()
 * runs once per side at start-up; each session is driven by its channel's
 * thread only. When the handshake is done the session's records go to a
 * record engine (tls_rec.c or tls_ssl_rec.c, through tls_data.c).
 *
 * Calls down only: tls_creds.c, tls_rec.c (start), tls_rec_key.c
 * (keylog, free), tls_bio.c and tls_err.c; nothing in tls/ calls back up
 * into it.
 */
#include "tls_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define TLS_CT_ALERT 0x15
#define TLS_CT_HANDSHAKE 0x16
/* PSK mode: the PSK session is made for TLS_AES_128_GCM_SHA256, so only
 * suites with the same hash can use it */
#define TLS_PSK_SUITES "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"

/* ---- PSK ---- */

/* Identities come from the wire: keep messages one printable line. */
static void psk_ident_show(char *dst, size_t cap, const uint8_t *id, size_t len)
{
	size_t i, n = len < cap - 1 ? len : cap - 1;

	for (i = 0; i < n; i++)
		dst[i] = id[i] >= 0x20 && id[i] < 0x7f ? (char)id[i] : '?';
	dst[n] = '\0';
}

static SSL_SESSION *psk_session(SSL *ssl, const uint8_t *key, size_t len)
{
	static const unsigned char aes128gcm_sha256[] = { 0x13, 0x01 };
	const SSL_CIPHER *c = SSL_CIPHER_find(ssl, aes128gcm_sha256);
	SSL_SESSION *sess = SSL_SESSION_new();

	if (!c || !sess)
		goto err;
	if (!SSL_SESSION_set1_master_key(sess, key, len) ||
	    !SSL_SESSION_set_cipher(sess, c) ||
	    !SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION))
		goto err;
	return sess;
err:
	SSL_SESSION_free(sess);
	return NULL;
}

static int psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id,
		      size_t *id_len, SSL_SESSION **sessp)
{
	struct mw_tls_sess *s = SSL_get_app_data(ssl);
	struct mw_tls_ctx *ctx = s->ctx;

	*sessp = NULL;
	/* after a HelloRetryRequest, md is the suite's hash: ours is SHA-256 */
	if (md && EVP_MD_get_type(md) != NID_sha256)
		return 1;
	*sessp = psk_session(ssl, ctx->psk_key, ctx->psk_key_len);
	if (!*sessp)
		return 0;
	*id = (const unsigned char *)ctx->psk_identity;
	*id_len = strlen(ctx->psk_identity);
	return 1;
}

static int psk_find_cb(SSL *ssl, const unsigned char *id, size_t id_len,
		       SSL_SESSION **sessp)
{
	struct mw_tls_sess *s = SSL_get_app_data(ssl);
	struct mw_tls_ctx *ctx = s->ctx;
	struct mw_err perr = { 0 };
	uint8_t key[MW_TLS_PSK_MAX];
	char name[128], show[64];
	ssize_t n = -ENOENT;

	*sessp = NULL;
	psk_ident_show(show, sizeof(show), id, id_len);
	if (id_len < sizeof(name) && !memchr(id, '\0', id_len)) {
		memcpy(name, id, id_len);
		name[id_len] = '\0';
		n = mw_tls_psk_parse(ctx->psk_text, ctx->psk_text_len, name,
				     key, sizeof(key), &perr);
	}
	if (n == -EINVAL) {
		mw_err_set(&s->cb_err, -MW_E_TLS, "%s: %s", ctx->psk_path,
			   perr.msg);
		return 0;
	}
	if (n < 0) {
		/*
		 * Going on without a PSK makes the handshake fail (we have
		 * no certificate) with a handshake_failure alert to the
		 * client, but our own message is this one.
		 */
		mw_err_set(&s->cb_err, -MW_E_AUTH,
			   "unknown PSK identity '%s' (not in %s)", show,
			   ctx->psk_path);
		return 1;
	}
	snprintf(s->peer, sizeof(s->peer), "psk:%s", show);
	/* --tls-authz compares the identity itself; one with bytes that
	 * had to be shown as '?' matches nothing */
	snprintf(s->peer_id, sizeof(s->peer_id), "%s", show);
	s->peer_id_ok = id_len == strlen(show) && !memcmp(show, id, id_len);
	*sessp = psk_session(ssl, key, (size_t)n);
	OPENSSL_cleanse(key, sizeof(key));
	return *sessp ? 1 : 0;
}

/* ---- contexts ---- */

/* Hands the traffic secrets to tls_rec.c (see there). */
static void keylog_cb(const SSL *ssl, const char *line)
{
	struct mw_tls_sess *s = SSL_get_app_data(ssl);

	if (s)
		mw_tls_rec_keylog(s, line);
}

/*
 * Who seals and opens records after the handshake: tls_rec.c unless the
 * caller or MIGWIRE_TLS_RECORDS=openssl leaves them to libssl (the wire is
 * the same; the switch is for comparisons and as a way out).
 */
const char *mw_tls_records_mode(void)
{
	const char *v = getenv("MIGWIRE_TLS_RECORDS");

	if (!v || !v[0] || !strcmp(v, "own"))
		return "own";
	return strcmp(v, "openssl") ? NULL : "openssl";
}

static int ctx_set_records(struct mw_tls_ctx *ctx, unsigned int flags,
			   struct mw_err *err)
{
	const char *mode = mw_tls_records_mode();

	if (!mode)
		return mw_err_set(
			err, -MW_E_USAGE,
			"MIGWIRE_TLS_RECORDS='%s': use 'own' or 'openssl'",
			getenv("MIGWIRE_TLS_RECORDS"));
	ctx->own_records = !(flags & MW_TLS_CTX_OSSL_RECORDS) &&
			   !strcmp(mode, "own");
	return 0;
}

/* Keeps the host name, without IPv6 brackets, and whether it is an IP. */
static int ctx_set_host(struct mw_tls_ctx *ctx, const char *host,
			struct mw_err *err)
{
	unsigned char addr[16];
	size_t n;

	if (!host || !host[0])
		return mw_err_set(
			err, -EINVAL,
			"x509 client needs the server's host name to check its certificate");
	n = strlen(host);
	if (host[0] == '[' && n > 2 && host[n - 1] == ']')
		ctx->hostname = strndup(host + 1, n - 2);
	else
		ctx->hostname = strdup(host);
	if (!ctx->hostname)
		return mw_err_set(err, -ENOMEM, "out of memory");
	ctx->host_is_ip = inet_pton(AF_INET, ctx->hostname, addr) == 1 ||
			  inet_pton(AF_INET6, ctx->hostname, addr) == 1;
	return 0;
}

/*
 * OpenSSL's verdict stands; on a name mismatch of the server's own
 * certificate it keeps that certificate's names for the error line, and on
 * a revoked certificate its DN in s->peer_id (the handshake ends before
 * the certificate could be asked for).
 */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
	int e = X509_STORE_CTX_get_error(x);
	bool mismatch = e == X509_V_ERR_HOSTNAME_MISMATCH ||
			e == X509_V_ERR_IP_ADDRESS_MISMATCH;
	SSL *ssl;
	struct mw_tls_sess *s;

	if (ok || (e != X509_V_ERR_CERT_REVOKED &&
		   (!mismatch || X509_STORE_CTX_get_error_depth(x) != 0)))
		return ok;
	ssl = X509_STORE_CTX_get_ex_data(x,
					 SSL_get_ex_data_X509_STORE_CTX_idx());
	s = ssl ? SSL_get_app_data(ssl) : NULL;
	if (s && mismatch)
		mw_tls_cert_names(X509_STORE_CTX_get_current_cert(x),
				  s->cert_names, sizeof(s->cert_names));
	else if (s)
		mw_tls_dn(X509_STORE_CTX_get_current_cert(x), s->peer_id,
			  sizeof(s->peer_id));
	return ok;
}

static int ctx_setup_ssl(struct mw_tls_ctx *ctx, const struct mw_tls_cfg *cfg,
			 unsigned int flags, struct mw_err *err)
{
	SSL_CTX *sc = ctx->ssl_ctx;
	char e[256];
	int ret;

	ERR_clear_error();
	if (SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(sc, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_num_tickets(sc, 0) != 1)
		return mw_err_set(err, -MW_E_TLS, "TLS context setup: %s",
				  mw_tls_ossl_errstr(e, sizeof(e)));
	SSL_CTX_set_options(sc, SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET |
					SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
	ret = ctx_set_records(ctx, flags, err);
	if (ret < 0)
		return ret;
	if (ctx->own_records)
		SSL_CTX_set_keylog_callback(sc, keylog_cb);
	/* send our certificate file as it is, as QEMU does: the peer has the
	 * same ca-cert.pem */
	SSL_CTX_set_mode(sc, SSL_MODE_NO_AUTO_CHAIN);

	ret = mw_tls_authz_load(ctx, cfg, err);
	if (ret < 0)
		return ret;
	if (cfg->mode == MW_TLS_PSK) {
		ret = mw_tls_creds_psk_load(ctx, cfg, err);
		if (ret < 0)
			return ret;
		if (SSL_CTX_set_ciphersuites(sc, TLS_PSK_SUITES) != 1)
			return mw_err_set(err, -MW_E_TLS, "TLS PSK suites: %s",
					  mw_tls_ossl_errstr(e, sizeof(e)));
		if (cfg->server)
			SSL_CTX_set_psk_find_session_callback(sc, psk_find_cb);
		else
			SSL_CTX_set_psk_use_session_callback(sc, psk_use_cb);
		return 0;
	}

	if (!cfg->server) {
		ret = ctx_set_host(ctx, cfg->hostname, err);
		if (ret < 0)
			return ret;
	}
	ret = mw_tls_creds_x509_load(ctx, sc, cfg, flags, err);
	if (ret < 0)
		return ret;
	/* QEMU's verify-peer=on: the server insists on a client certificate */
	SSL_CTX_set_verify(sc,
			   cfg->server ?
				   SSL_VERIFY_PEER |
					   SSL_VERIFY_FAIL_IF_NO_PEER_CERT :
				   SSL_VERIFY_PEER,
			   verify_cb);
	return 0;
}

int mw_tls_ctx_new_opt(struct mw_tls_ctx **out, const struct mw_tls_cfg *cfg,
		       unsigned int flags, struct mw_err *err)
{
	struct mw_tls_ctx *ctx;
	char e[256];
	int ret;

	*out = NULL;
	if (cfg->mode != MW_TLS_X509 && cfg->mode != MW_TLS_PSK)
		return mw_err_set(err, -EINVAL,
				  "TLS context without a TLS mode");
	if (mw_tls_bio_init() < 0)
		return mw_err_set(err, -ENOMEM,
				  "TLS: cannot create BIO method");
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return mw_err_set(err, -ENOMEM, "out of memory");
	ctx->mode = cfg->mode;
	ctx->server = cfg->server;
	ERR_clear_error();
	ctx->ssl_ctx = SSL_CTX_new(cfg->server ? TLS_server_method() :
						 TLS_client_method());
	if (!ctx->ssl_ctx) {
		ret = mw_err_set(err, -MW_E_TLS, "SSL_CTX_new: %s",
				 mw_tls_ossl_errstr(e, sizeof(e)));
		goto err_ctx;
	}
	ret = ctx_setup_ssl(ctx, cfg, flags, err);
	if (ret < 0)
		goto err_ctx;
	*out = ctx;
	return 0;
err_ctx:
	mw_tls_ctx_free(ctx);
	return ret;
}

int mw_tls_ctx_new(struct mw_tls_ctx **out, const struct mw_tls_cfg *cfg,
		   struct mw_err *err)
{
	return mw_tls_ctx_new_opt(out, cfg, 0, err);
}

void mw_tls_ctx_free(struct mw_tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx->hostname);
	free(ctx->ca_path);
	free(ctx->psk_path);
	if (ctx->psk_text)
		OPENSSL_clear_free(ctx->psk_text, ctx->psk_text_len + 1);
	free(ctx->psk_identity);
	OPENSSL_cleanse(ctx->psk_key, sizeof(ctx->psk_key));
	mw_tls_authz_free(ctx);
	free(ctx->crl_path);
	free(ctx);
}

/* ---- sessions ---- */

static int sess_setup_host(struct mw_tls_sess *s, struct mw_err *err)
{
	struct mw_tls_ctx *ctx = s->ctx;
	char e[256];

	ERR_clear_error();
	if (ctx->host_is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl),
						  ctx->hostname) == 1)
			return 0;
	} else {
		SSL_set_hostflags(s->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(s->ssl, ctx->hostname) == 1 &&
		    SSL_set_tlsext_host_name(s->ssl, ctx->hostname) == 1)
			return 0;
	}
	return mw_err_set(err, -MW_E_TLS, "TLS host name '%s': %s",
			  ctx->hostname, mw_tls_ossl_errstr(e, sizeof(e)));
}

int mw_tls_sess_new(struct mw_tls_sess **out, struct mw_tls_ctx *ctx,
		    struct mw_err *err)
{
	struct mw_tls_sess *s;
	char e[256];
	BIO *bio;
	int ret;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return mw_err_set(err, -ENOMEM, "out of memory");
	s->ctx = ctx;
	/* libssl's until the handshake hands the records over */
	s->rec_ops = &mw_tls_ssl_rec_ops;
	s->stage = malloc(MW_TLS_REC_PLAIN);
	if (!s->stage) {
		ret = mw_err_set(err, -ENOMEM, "out of memory");
		goto err_sess;
	}
	ERR_clear_error();
	s->ssl = SSL_new(ctx->ssl_ctx);
	bio = mw_tls_bio_new(&s->loan);
	if (!s->ssl || !bio) {
		BIO_free(bio);
		ret = mw_err_set(err, -MW_E_TLS, "SSL_new: %s",
				 mw_tls_ossl_errstr(e, sizeof(e)));
		goto err_sess;
	}
	SSL_set_bio(s->ssl, bio, bio); /* takes our one reference */
	SSL_set_app_data(s->ssl, s);
	if (ctx->server) {
		SSL_set_accept_state(s->ssl);
	} else {
		SSL_set_connect_state(s->ssl);
		if (ctx->mode == MW_TLS_X509) {
			ret = sess_setup_host(s, err);
			if (ret < 0)
				goto err_sess;
		}
	}
	*out = s;
	return 0;
err_sess:
	mw_tls_sess_free(s);
	return ret;
}

void mw_tls_sess_free(struct mw_tls_sess *s)
{
	if (!s)
		return;
	SSL_free(s->ssl);
	mw_tls_rec_free(&s->rec);
	mw_tls_bio_destroy(&s->loan);
	if (s->stage)
		OPENSSL_clear_free(s->stage, MW_TLS_REC_PLAIN);
	free(s);
}

static void sess_peer_fill(struct mw_tls_sess *s)
{
	struct mw_tls_ctx *ctx = s->ctx;
	X509 *cert;

	if (ctx->mode == MW_TLS_PSK) {
		if (!ctx->server)
			snprintf(s->peer, sizeof(s->peer), "psk:%s",
				 ctx->psk_identity);
		return;
	}
	cert = SSL_get0_peer_certificate(s->ssl);
	if (!cert) {
		snprintf(s->peer, sizeof(s->peer), "(no certificate)");
		return;
	}
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
				      NID_commonName, s->peer,
				      sizeof(s->peer)) < 0)
		X509_NAME_oneline(X509_get_subject_name(cert), s->peer,
				  sizeof(s->peer));
}

int mw_tls_handshake(struct mw_tls_sess *s, const uint8_t *in, size_t in_len,
		     size_t *consumed, uint8_t *out, size_t out_cap,
		     size_t *out_len, struct mw_err *err)
{
	int ret = 0, r;

	mw_tls_bio_lend(&s->loan, in, in_len, out, out_cap);
	if (s->hs_done)
		goto done;
	if (in_len && !s->saw_input) {
		s->saw_input = true;
		if (in[0] != TLS_CT_HANDSHAKE &&
		    (s->ctx->server || in[0] != TLS_CT_ALERT)) {
			ret = mw_tls_not_tls(in, in_len, err);
			goto done;
		}
	}
	ERR_clear_error();
	r = SSL_do_handshake(s->ssl);
	if (r == 1) {
		s->hs_done = true;
		sess_peer_fill(s);
		if (s->ctx->own_records)
			ret = mw_tls_rec_start(s, err);
		/* after rec_start: a refused peer still gets our ERROR frame */
		if (!ret)
			ret = mw_tls_authz_check(s, err);
	} else {
		ret = mw_tls_ssl_fail(s, r, "handshake", err);
		if (ret == 0)
			ret = mw_err_set(
				err, -MW_E_CLOSED,
				"peer closed TLS during the handshake");
	}
done:
	*consumed = s->loan.in_off;
	*out_len = s->loan.out_len;
	mw_tls_bio_unlend(&s->loan);
	/* the rest of our flight is still to be sent: call again */
	if (ret == 0 && s->loan.spill_len)
		ret = -EAGAIN;
	return ret;
}

const char *mw_tls_peer_name(struct mw_tls_sess *s)
{
	return s->peer[0] ? s->peer : "(handshake not complete)";
}

const char *mw_tls_peer_id(struct mw_tls_sess *s)
{
	return s->hs_done ? s->peer_id : "";
}

void mw_tls_thread_stop(void)
{
	OPENSSL_thread_stop();
}
