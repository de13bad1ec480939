/* SPDX-License-Identifier: MIT */
/*
 * Errors and alerts: turns OpenSSL's error queue, its verify results and
 * the alerts a peer sends into one-line messages that name what to fix
 * (certificate, CA file, host name, PSK identity, plaintext peer). The
 * bottom layer of tls/: the handshake, both record engines and the
 * credential loaders call it, and it calls none of them. Runs on whichever
 * thread drives the session or loads the credentials; it only reads the
 * session and the calling thread's OpenSSL error queue.
 */
#include "tls_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

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

/*
 * The names a certificate carries ("DNS:a, IP:127.0.0.1"), so a name
 * mismatch says what would match. Empty when there is no SAN.
 */
void mw_tls_cert_names(X509 *cert, char *buf, size_t cap)
{
	GENERAL_NAMES *gens;
	size_t at = 0;
	int i;

	buf[0] = '\0';
	if (!cert)
		return;
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens && i < sk_GENERAL_NAME_num(gens) && at + 1 < cap;
	     i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *d;
		int len;

		if (g->type == GEN_DNS) {
			d = ASN1_STRING_get0_data(g->d.dNSName);
			len = ASN1_STRING_length(g->d.dNSName);
			at += (size_t)snprintf(buf + at, cap - at, "%sDNS:%.*s",
					       at ? ", " : "", len,
					       (const char *)d);
		} else if (g->type == GEN_IPADD) {
			char ip[64] = "";
			int af;

			len = ASN1_STRING_length(g->d.iPAddress);
			af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
			if (!af ||
			    !inet_ntop(af,
				       ASN1_STRING_get0_data(g->d.iPAddress),
				       ip, sizeof(ip)))
				continue;
			at += (size_t)snprintf(buf + at, cap - at, "%sIP:%s",
					       at ? ", " : "", ip);
		}
	}
	GENERAL_NAMES_free(gens);
}

void mw_tls_dn(X509 *cert, char *buf, size_t cap)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	buf[0] = '\0';
	if (!b)
		return;
	/* RFC 2253 order and escaping, but UTF-8 bytes as they are, as
	 * gnutls writes them */
	if (X509_NAME_print_ex(b, X509_get_subject_name(cert), 0,
			       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_read(b, buf, (int)cap - 1);
		buf[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
}

static int fail_name_mismatch(struct mw_tls_sess *s, const char *what,
			      struct mw_err *err)
{
	const char *names = s->cert_names;

	if (!names[0])
		return mw_err_set(err, -MW_E_AUTH,
				  "server certificate does not match %s '%s'",
				  what, s->ctx->hostname);
	return mw_err_set(err, -MW_E_AUTH,
			  "server certificate does not match %s '%s' "
			  "(certificate names: %s; connect by one of them "
			  "or pass --tls-hostname)",
			  what, s->ctx->hostname, names);
}

static int sess_fail_verify(struct mw_tls_sess *s, struct mw_err *err)
{
	struct mw_tls_ctx *ctx = s->ctx;
	long vr = SSL_get_verify_result(s->ssl);

	if (vr == X509_V_ERR_HOSTNAME_MISMATCH)
		return fail_name_mismatch(s, "host name", err);
	if (vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
		return fail_name_mismatch(s, "IP address", err);
	/* the verify callback kept the revoked certificate's DN */
	if (vr == X509_V_ERR_CERT_REVOKED)
		return mw_err_set(err, -MW_E_AUTH,
				  "certificate of %s%s%s is revoked (%s)",
				  s->peer_id[0] ? "'" : "the peer", s->peer_id,
				  s->peer_id[0] ? "'" : "",
				  ctx->crl_path ? ctx->crl_path : "ca-crl.pem");
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
int mw_tls_ssl_fail(struct mw_tls_sess *s, int r, const char *what,
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
int mw_tls_not_tls(const uint8_t *in, size_t n, struct mw_err *err)
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
	/* migwire's own frame magic: the other side runs --no-tls */
	if (n >= 2 && in[0] == 'M' && in[1] == 'W')
		return mw_err_set(err, -MW_E_TLS,
				  "peer is not speaking TLS: it runs --no-tls "
				  "(its first bytes are a plaintext migwire "
				  "frame: %s); use the same TLS mode on both "
				  "sides",
				  show);
	if (printable)
		return mw_err_set(
			err, -MW_E_TLS,
			"peer is not speaking TLS (first bytes look like plaintext: \"%s\")",
			show);
	return mw_err_set(err, -MW_E_TLS,
			  "peer is not speaking TLS (first bytes: %s)", show);
}
