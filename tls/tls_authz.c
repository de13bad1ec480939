/* SPDX-License-Identifier: MIT */
/*
 * Who the peer is and whether it may be: the identity string that
 * --tls-authz compares, and the comparison.
 *
 * Authentication alone admits every holder of a certificate from the CA
 * (under libvirt's /etc/pki/qemu layout, every hypervisor of a cluster) or
 * of a key in keys.psk. QEMU narrows that with tls-authz (authz-simple,
 * authz-list-file): the client's certificate subject distinguished name,
 * as gnutls_x509_crt_get_dn() writes it (RFC 4514: the last RDN first,
 * "CN=src.example,O=Example,C=GB", UTF-8 as in the certificate), must
 * equal an allowed identity exactly. We write the DN the same way
 * (X509_NAME_print_ex with the RFC 2253 flags, UTF-8 unescaped) and
 * compare the same way, byte for byte; in PSK mode the identity is the
 * PSK identity. The check runs when the handshake completes, before a
 * single application byte is read, so a peer that is refused here never
 * sends a HELLO that could define a session.
 *
 * Called by tls_hs.c; calls tls_creds.c (file reading) only.
 */
#include "tls_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* one line of --tls-authz-file; a DN longer than this is not a DN */
#define AUTHZ_LINE_MAX (MW_TLS_ID_MAX - 1)

static int authz_add(struct mw_tls_ctx *ctx, const char *id, size_t n,
		     struct mw_err *err)
{
	char **v = realloc(ctx->authz, (ctx->nr_authz + 1) * sizeof(*v));

	if (!v)
		return mw_err_set(err, -ENOMEM, "out of memory");
	ctx->authz = v;
	v[ctx->nr_authz] = strndup(id, n);
	if (!v[ctx->nr_authz])
		return mw_err_set(err, -ENOMEM, "out of memory");
	ctx->nr_authz++;
	return 0;
}

/* One identity a line; blank lines and lines starting with '#' are
 * skipped, trailing blanks and CR are not part of the identity. */
static int authz_parse_file(struct mw_tls_ctx *ctx, const char *path,
			    const char *text, size_t len, struct mw_err *err)
{
	size_t pos = 0, n, before = ctx->nr_authz;
	unsigned lineno = 0;
	const char *p;
	int ret;

	while ((p = mw_tls_text_line(text, len, &pos, &n))) {
		lineno++;
		while (n && (p[0] == ' ' || p[0] == '\t')) {
			p++;
			n--;
		}
		if (n == 0 || p[0] == '#')
			continue;
		if (memchr(p, '\0', n) || n > AUTHZ_LINE_MAX)
			return mw_err_set(err, -EINVAL, "%s: line %u: %s", path,
					  lineno,
					  n > AUTHZ_LINE_MAX ?
						  "identity too long" :
						  "NUL byte");
		ret = authz_add(ctx, p, n, err);
		if (ret < 0)
			return ret;
	}
	if (ctx->nr_authz == before)
		return mw_err_set(err, -EINVAL,
				  "%s: no identity in it (one a line)", path);
	return 0;
}

int mw_tls_authz_load(struct mw_tls_ctx *ctx, const struct mw_tls_cfg *cfg,
		      struct mw_err *err)
{
	char *text = NULL;
	size_t len = 0;
	unsigned i;
	int ret;

	for (i = 0; i < cfg->nr_authz; i++) {
		ret = authz_add(ctx, cfg->authz[i], strlen(cfg->authz[i]), err);
		if (ret < 0)
			return ret;
	}
	if (!cfg->authz_file)
		return 0;
	ret = mw_tls_read_small_file(cfg->authz_file, &text, &len, err);
	if (ret < 0)
		return ret;
	ret = authz_parse_file(ctx, cfg->authz_file, text, len, err);
	OPENSSL_clear_free(text, len + 1);
	return ret;
}

void mw_tls_authz_free(struct mw_tls_ctx *ctx)
{
	unsigned i;

	for (i = 0; i < ctx->nr_authz; i++)
		free(ctx->authz[i]);
	free(ctx->authz);
	ctx->authz = NULL;
	ctx->nr_authz = 0;
}

int mw_tls_authz_check(struct mw_tls_sess *s, struct mw_err *err)
{
	struct mw_tls_ctx *ctx = s->ctx;
	X509 *cert;
	unsigned i;

	if (ctx->mode == MW_TLS_X509) {
		cert = SSL_get0_peer_certificate(s->ssl);
		if (cert)
			mw_tls_dn(cert, s->peer_id, sizeof(s->peer_id));
		/* control bytes come out escaped (\0A): always printable */
		s->peer_id_ok = s->peer_id[0] != '\0';
	}
	/* PSK: psk_find_cb kept the identity (server side) */
	if (!ctx->nr_authz)
		return 0;
	for (i = 0; s->peer_id_ok && i < ctx->nr_authz; i++)
		if (!strcmp(s->peer_id, ctx->authz[i]))
			return 0;
	return mw_err_set(err, -MW_E_AUTH,
			  "%s '%s' is not authorized (--tls-authz)",
			  ctx->server ? "client" : "receiver",
			  s->peer_id[0] ? s->peer_id : "(no identity)");
}
