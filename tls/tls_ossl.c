/* SPDX-License-Identifier: MIT */
/*
 * The OpenSSL 3 backend of mw_tls.h: TLS 1.3 only, no tickets, no
 * renegotiation, no compression; mutual X.509 authentication with the
 * server's name checked, or QEMU-style PSK. A session never sees a socket:
 * ciphertext comes in and goes out through buffers that the transport
 * lends for one call (see DESIGN in tls_int.h). mw_tls_ctx_new() runs once
 * per side at start-up; each session is driven by its channel's thread
 * only. OpenSSL failures become one-line messages naming what to fix
 * (certificate, CA file, host name, PSK identity, plaintext peer).
 */
#include "tls_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define TLS_CT_ALERT 0x15
#define TLS_CT_HANDSHAKE 0x16
/* largest single SSL_write: a multiple of the record size below INT_MAX */
#define TLS_WRITE_MAX (1u << 30)
/* a close_notify record: header, 2 byte alert, content type, tag */
#define TLS_CLOSE_LEN (5u + 2u + 1u + 16u)
/* PSK mode: the PSK session is made for TLS_AES_128_GCM_SHA256, so only
 * suites with the same hash can use it */
#define TLS_PSK_SUITES "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"

static pthread_once_t bio_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_meth;

/* ---- the BIO over the caller's buffers ---- */

static int sess_spill(struct mw_tls_sess *s, const char *p, size_t n)
{
	size_t cap = s->spill_cap ? s->spill_cap : 1024;
	uint8_t *q;

	while (cap < s->spill_len + n)
		cap *= 2;
	if (cap != s->spill_cap) {
		q = realloc(s->spill, cap);
		if (!q)
			return -1;
		s->spill = q;
		s->spill_cap = cap;
	}
	memcpy(s->spill + s->spill_len, p, n);
	s->spill_len += n;
	return 0;
}

/* Never asks OpenSSL to retry: what does not fit the lent buffer spills. */
static int bio_write(BIO *b, const char *buf, int len)
{
	struct mw_tls_sess *s = BIO_get_data(b);
	size_t n = (size_t)len, room;

	BIO_clear_retry_flags(b);
	if (s->out && !s->spill_len) {
		room = s->out_cap - s->out_len;
		if (room > n)
			room = n;
		memcpy(s->out + s->out_len, buf, room);
		s->out_len += room;
		buf += room;
		n -= room;
	}
	if (n && sess_spill(s, buf, n) < 0)
		return -1;
	return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
	struct mw_tls_sess *s = BIO_get_data(b);
	size_t n = s->in_len - s->in_off;

	BIO_clear_retry_flags(b);
	if (n == 0) {
		BIO_set_retry_read(b);
		return -1;
	}
	if (n > (size_t)len)
		n = (size_t)len;
	memcpy(buf, s->in + s->in_off, n);
	s->in_off += n;
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH;
}

static void bio_meth_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "mw_tls buffers");

	if (!m)
		return;
	if (!BIO_meth_set_write(m, bio_write) ||
	    !BIO_meth_set_read(m, bio_read) ||
	    !BIO_meth_set_ctrl(m, bio_ctrl)) {
		BIO_meth_free(m);
		return;
	}
	bio_meth = m;
}

/*
 * Lends in/out to the BIO for one call. Output that spilled earlier goes
 * out first, so records leave in the order OpenSSL made them.
 */
static void sess_lend(struct mw_tls_sess *s, const uint8_t *in, size_t in_len,
		      uint8_t *out, size_t out_cap)
{
	size_t n;

	s->in = in;
	s->in_len = in ? in_len : 0;
	s->in_off = 0;
	s->out = out;
	s->out_cap = out ? out_cap : 0;
	s->out_len = 0;
	if (!out || !s->spill_len)
		return;
	n = s->spill_len < out_cap ? s->spill_len : out_cap;
	memcpy(out, s->spill, n);
	memmove(s->spill, s->spill + n, s->spill_len - n);
	s->spill_len -= n;
	s->out_len = n;
}

/* Ends the loan: no pointer to the caller's buffers survives the call. */
static void sess_unlend(struct mw_tls_sess *s)
{
	s->in = NULL;
	s->in_len = 0;
	s->in_off = 0;
	s->out = NULL;
	s->out_cap = 0;
	s->out_len = 0;
}

/* ---- errors ---- */

/*
 * Takes the whole error queue and returns its most telling code: the first
 * error of the SSL library (the handshake step that failed), else the
 * first one. Its ERR_error_string_n() text goes into buf.
 */
static unsigned long ossl_err_take(char *buf, size_t cap)
{
	unsigned long code, first = 0, ssl = 0;

	while ((code = ERR_get_error()) != 0) {
		if (!first)
			first = code;
		if (!ssl && ERR_GET_LIB(code) == ERR_LIB_SSL)
			ssl = code;
	}
	code = ssl ? ssl : first;
	if (code)
		ERR_error_string_n(code, buf, cap);
	else
		snprintf(buf, cap, "no OpenSSL error");
	return code;
}

const char *mw_tls_ossl_errstr(char *buf, size_t cap)
{
	ossl_err_take(buf, cap);
	return buf;
}

static bool x509_err_is_issuer(long vr)
{
	switch (vr) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return true;
	default:
		return false;
	}
}

/* Alerts that mean "I do not accept who you are". */
static bool alert_is_auth(int alert)
{
	switch (alert) {
	case SSL_AD_HANDSHAKE_FAILURE:
	case SSL_AD_BAD_CERTIFICATE:
	case SSL_AD_UNSUPPORTED_CERTIFICATE:
	case SSL_AD_CERTIFICATE_REVOKED:
	case SSL_AD_CERTIFICATE_EXPIRED:
	case SSL_AD_CERTIFICATE_UNKNOWN:
	case SSL_AD_UNKNOWN_CA:
	case SSL_AD_ACCESS_DENIED:
	case SSL_AD_DECRYPT_ERROR:
	case SSL_AD_UNKNOWN_PSK_IDENTITY:
	case SSL_AD_CERTIFICATE_REQUIRED:
		return true;
	default:
		return false;
	}
}

static int sess_fail_verify(struct mw_tls_sess *s, struct mw_err *err)
{
	struct mw_tls_ctx *ctx = s->ctx;
	long vr = SSL_get_verify_result(s->ssl);

	if (vr == X509_V_ERR_HOSTNAME_MISMATCH)
		return mw_err_set(
			err, -MW_E_AUTH,
			"server certificate does not match host name '%s'",
			ctx->hostname);
	if (vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
		return mw_err_set(
			err, -MW_E_AUTH,
			"server certificate does not match IP address '%s'",
			ctx->hostname);
	if (x509_err_is_issuer(vr))
		return mw_err_set(
			err, -MW_E_AUTH,
			"certificate verify failed: %s (peer certificate is not signed by %s)",
			X509_verify_cert_error_string(vr), ctx->ca_path);
	return mw_err_set(err, -MW_E_AUTH, "certificate verify failed: %s",
			  X509_verify_cert_error_string(vr));
}

int mw_tls_fail_alert(struct mw_tls_sess *s, int alert, const char *text,
		      const char *what, struct mw_err *err)
{
	struct mw_tls_ctx *ctx = s->ctx;
	int code = alert_is_auth(alert) ? -MW_E_AUTH : -MW_E_TLS;

	/* OpenSSL answers a PSK binder that does not verify this way */
	if (ctx->mode == MW_TLS_PSK && !s->hs_done &&
	    alert == SSL_AD_ILLEGAL_PARAMETER)
		code = -MW_E_AUTH;

	if (code == -MW_E_AUTH && ctx->mode == MW_TLS_PSK && !ctx->server)
		return mw_err_set(
			err, code,
			"peer rejected the %s: %s (does its keys.psk have identity '%s' with our key?)",
			what, text, ctx->psk_identity);
	if (alert == SSL_AD_CERTIFICATE_REQUIRED)
		return mw_err_set(
			err, code,
			"peer rejected the %s: %s (it requires a client certificate)",
			what, text);
	if (code == -MW_E_AUTH && ctx->mode == MW_TLS_X509)
		return mw_err_set(
			err, code,
			"peer rejected the %s: %s (it does not accept our certificate)",
			what, text);
	return mw_err_set(err, code, "peer aborted the %s: %s", what, text);
}

/*
 * Maps a failed SSL call (r = its return value) to 0 (close_notify),
 * -EAGAIN (wants more input) or an error code with a one-line reason.
 * what names the operation for the message.
 */
static int sess_fail(struct mw_tls_sess *s, int r, const char *what,
		     struct mw_err *err)
{
	int e = SSL_get_error(s->ssl, r), reason;
	unsigned long code;
	char text[256];

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		return -EAGAIN;
	}
	if (e == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return 0;
	}
	code = ossl_err_take(text, sizeof(text));
	if (s->cb_err.code)
		return mw_err_set(err, s->cb_err.code, "%s", s->cb_err.msg);
	if (!code)
		return mw_err_set(err, -MW_E_TLS, "TLS %s failed: %s", what,
				  e == SSL_ERROR_SYSCALL ?
					  "internal I/O error" :
					  "unknown OpenSSL failure");
	reason = ERR_GET_REASON(code);
	if (ERR_GET_LIB(code) != ERR_LIB_SSL)
		return mw_err_set(err, -MW_E_TLS, "TLS %s failed: %s", what,
				  text);
	if (reason >= SSL_AD_REASON_OFFSET &&
	    reason < SSL_AD_REASON_OFFSET + 256)
		return mw_tls_fail_alert(s, reason - SSL_AD_REASON_OFFSET,
					 ERR_reason_error_string(code), what,
					 err);
	switch (reason) {
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
		return sess_fail_verify(s, err);
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return mw_err_set(err, -MW_E_AUTH,
				  "peer did not present a certificate");
	case SSL_R_BINDER_DOES_NOT_VERIFY:
		return mw_err_set(
			err, -MW_E_AUTH,
			"PSK of identity '%s' differs from the peer's (binder does not verify)",
			s->peer[0] ? s->peer + 4 : "?");
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
		if (!s->hs_done)
			return mw_err_set(err, -MW_E_TLS,
					  "peer is not speaking TLS (%s)",
					  ERR_reason_error_string(code));
		break;
	case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
		return mw_err_set(
			err, -MW_E_TLS,
			"TLS record failed authentication, data corrupted or injected (%s)",
			text);
	default:
		break;
	}
	return mw_err_set(err, -MW_E_TLS, "TLS %s failed: %s", what, text);
}

/* First bytes a TLS peer can send: a handshake record (or an alert). */
static int sess_not_tls(const uint8_t *in, size_t n, struct mw_err *err)
{
	char show[8 * 4 + 1], *p = show;
	bool printable = true;
	size_t i;

	if (n > 8)
		n = 8;
	for (i = 0; i < n; i++)
		if (in[i] < 0x20 || in[i] > 0x7e)
			printable = false;
	for (i = 0; i < n; i++) {
		if (printable)
			*p++ = (char)in[i];
		else
			p += sprintf(p, "%s%02x", i ? " " : "", in[i]);
	}
	*p = '\0';
	if (printable)
		return mw_err_set(
			err, -MW_E_TLS,
			"peer is not speaking TLS (first bytes look like plaintext: \"%s\")",
			show);
	return mw_err_set(err, -MW_E_TLS,
			  "peer is not speaking TLS (first bytes: %s)", show);
}

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
	if (cfg->server)
		SSL_CTX_set_verify(
			sc, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			NULL);
	else
		SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
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
	pthread_once(&bio_once, bio_meth_init);
	if (!bio_meth)
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
	s->stage = malloc(MW_TLS_REC_PLAIN);
	if (!s->stage) {
		ret = mw_err_set(err, -ENOMEM, "out of memory");
		goto err_sess;
	}
	ERR_clear_error();
	s->ssl = SSL_new(ctx->ssl_ctx);
	bio = BIO_new(bio_meth);
	if (!s->ssl || !bio) {
		BIO_free(bio);
		ret = mw_err_set(err, -MW_E_TLS, "SSL_new: %s",
				 mw_tls_ossl_errstr(e, sizeof(e)));
		goto err_sess;
	}
	BIO_set_data(bio, s);
	BIO_set_init(bio, 1);
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
	free(s->spill);
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

	sess_lend(s, in, in_len, out, out_cap);
	if (s->hs_done)
		goto done;
	if (in_len && !s->saw_input) {
		s->saw_input = true;
		if (in[0] != TLS_CT_HANDSHAKE &&
		    (s->ctx->server || in[0] != TLS_CT_ALERT)) {
			ret = sess_not_tls(in, in_len, err);
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
	} else {
		ret = sess_fail(s, r, "handshake", err);
		if (ret == 0)
			ret = mw_err_set(
				err, -MW_E_CLOSED,
				"peer closed TLS during the handshake");
	}
done:
	*consumed = s->in_off;
	*out_len = s->out_len;
	sess_unlend(s);
	/* the rest of our flight is still to be sent: call again */
	if (ret == 0 && s->spill_len)
		ret = -EAGAIN;
	return ret;
}

size_t mw_tls_seal_bound(size_t plain_len)
{
	size_t nrec = plain_len / MW_TLS_REC_PLAIN +
		      (plain_len % MW_TLS_REC_PLAIN != 0);

	return plain_len + nrec * MW_TLS_REC_OVERHEAD + MW_TLS_SEAL_SLACK;
}

static int seal_write(struct mw_tls_sess *s, const void *p, size_t n,
		      struct mw_err *err)
{
	size_t chunk;
	int r;

	while (n) {
		chunk = n < TLS_WRITE_MAX ? n : TLS_WRITE_MAX;
		ERR_clear_error();
		r = SSL_write(s->ssl, p, (int)chunk);
		if (r <= 0) {
			r = sess_fail(s, r, "seal", err);
			return r ? r :
				   mw_err_set(err, -MW_E_TLS,
					      "TLS seal after close");
		}
		p = (const uint8_t *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * DESIGN: records are always full (16 KiB) except the very last one, so
 * the ciphertext size depends only on the total and never on how the
 * plaintext is cut into iovecs. Runs of whole records inside one iovec
 * are written from it directly; only a record that straddles iovecs is
 * gathered into s->stage first.
 */
ssize_t mw_tls_seal(struct mw_tls_sess *s, const struct iovec *iov, int iovcnt,
		    uint8_t *out, size_t out_cap, struct mw_err *err)
{
	size_t total = 0, left, need, off = 0, avail, n, take;
	ssize_t ret;
	int i;

	if (!s->hs_done)
		return mw_err_set(err, -MW_E_TLS, "TLS seal before handshake");
	for (i = 0; i < iovcnt; i++) {
		if (total + iov[i].iov_len < total)
			return mw_err_set(err, -EINVAL,
					  "TLS seal: size overflow");
		total += iov[i].iov_len;
	}
	need = mw_tls_seal_bound(total) - MW_TLS_SEAL_SLACK + s->spill_len;
	if (s->own_rec)
		need += mw_tls_rec_seal_extra(s);
	if (out_cap < need)
		return mw_err_set(
			err, -MW_E_NOSPACE,
			"TLS seal: %zu plaintext bytes need %zu bytes of output, buffer has %zu",
			total, need, out_cap);
	sess_lend(s, NULL, 0, out, out_cap);
	if (s->own_rec) {
		ret = mw_tls_rec_seal(s, iov, iovcnt, total, err);
		goto done;
	}
	left = total;
	i = 0;
	while (left) {
		while (off == iov[i].iov_len) {
			i++;
			off = 0;
		}
		avail = iov[i].iov_len - off;
		if (avail == left || avail >= MW_TLS_REC_PLAIN) {
			n = avail == left ? avail :
					    avail - avail % MW_TLS_REC_PLAIN;
			ret = seal_write(s,
					 (const uint8_t *)iov[i].iov_base + off,
					 n, err);
			off += n;
		} else {
			n = left < MW_TLS_REC_PLAIN ? left : MW_TLS_REC_PLAIN;
			for (take = 0; take < n; off += avail, take += avail) {
				while (off == iov[i].iov_len) {
					i++;
					off = 0;
				}
				avail = iov[i].iov_len - off;
				if (avail > n - take)
					avail = n - take;
				memcpy(s->stage + take,
				       (const uint8_t *)iov[i].iov_base + off,
				       avail);
			}
			ret = seal_write(s, s->stage, n, err);
		}
		if (ret < 0)
			goto done;
		left -= n;
	}
	ret = (ssize_t)s->out_len;
done:
	sess_unlend(s);
	return ret;
}

ssize_t mw_tls_open(struct mw_tls_sess *s, const uint8_t *in, size_t in_len,
		    size_t *consumed, uint8_t *out, size_t out_cap,
		    struct mw_err *err)
{
	size_t total = 0, want;
	ssize_t ret;
	int r;

	*consumed = 0;
	if (s->sticky.code)
		return mw_err_set(err, s->sticky.code, "%s", s->sticky.msg);
	if (!s->hs_done)
		return mw_err_set(err, -MW_E_TLS, "TLS open before handshake");
	if (!out_cap)
		return mw_err_set(err, -EINVAL, "TLS open: no output space");
	/* no output buffer: a KeyUpdate reply or alert spills */
	sess_lend(s, in, in_len, NULL, 0);
	if (s->own_rec) {
		ret = mw_tls_rec_open(s, out, out_cap, err);
		goto done;
	}
	while (total < out_cap) {
		want = out_cap - total;
		ERR_clear_error();
		r = SSL_read(s->ssl, out + total,
			     want < INT_MAX ? (int)want : INT_MAX);
		if (r > 0) {
			total += (size_t)r;
			continue;
		}
		ret = sess_fail(s, r, "connection", err);
		if (ret == -EAGAIN || ret == 0) {
			if (!total)
				goto done;
			break;
		}
		if (!total)
			goto done;
		/* deliver what was good; the error comes with the next call */
		s->sticky = *err;
		break;
	}
	ret = (ssize_t)total;
done:
	*consumed = s->in_off;
	sess_unlend(s);
	return ret;
}

ssize_t mw_tls_close(struct mw_tls_sess *s, uint8_t *out, size_t out_cap,
		     struct mw_err *err)
{
	size_t need = s->spill_len + TLS_CLOSE_LEN;
	ssize_t ret;
	int r;

	if (!s->hs_done)
		return mw_err_set(err, -MW_E_TLS, "TLS close before handshake");
	if (out_cap < need)
		return mw_err_set(
			err, -MW_E_NOSPACE,
			"TLS close: need %zu bytes of output, buffer has %zu",
			need, out_cap);
	sess_lend(s, NULL, 0, out, out_cap);
	if (s->own_rec) {
		ret = mw_tls_rec_close(s, err);
		goto done;
	}
	ERR_clear_error();
	r = SSL_shutdown(s->ssl);
	if (r < 0) {
		ret = sess_fail(s, r, "close", err);
		if (ret != -EAGAIN)
			goto done;
	}
	ret = (ssize_t)s->out_len;
done:
	sess_unlend(s);
	return ret;
}

size_t mw_tls_pending(struct mw_tls_sess *s)
{
	int n;

	if (s->own_rec)
		return mw_tls_rec_pending(s);
	n = SSL_pending(s->ssl);

	return n > 0 ? (size_t)n : 0;
}

const char *mw_tls_peer_name(struct mw_tls_sess *s)
{
	return s->peer[0] ? s->peer : "(handshake not complete)";
}

void mw_tls_thread_stop(void)
{
	OPENSSL_thread_stop();
}
