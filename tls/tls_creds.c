/* SPDX-License-Identifier: MIT */
/*
 * Credential loading in QEMU's layouts, so an existing QEMU/libvirt PKI
 * works unchanged: tls-creds-x509 directories (ca-cert.pem plus
 * server-cert.pem/server-key.pem or client-cert.pem/client-key.pem) and
 * tls-creds-psk's keys.psk ("identity:hexkey" lines). Every failure names
 * the full path of the file at fault. Called from mw_tls_ctx_new() on the
 * thread that sets up a side, once per migration; mw_tls_psk_parse() is
 * pure and also runs inside the server's handshake PSK callback.
 */
#include "tls_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "mw_log.h"

/* keys.psk is a handful of lines; anything bigger is not a key file */
#define PSK_FILE_MAX (1u << 20)

/*
 * Builds dir/name into path (PATH_MAX bytes) and checks that the file can
 * be read: OpenSSL's file loaders report a missing file as a generic PEM
 * error, so this gives -ENOENT/-EACCES with the full path instead.
 */
static int creds_file(char *path, const char *dir, const char *name,
		      struct mw_err *err)
{
	int n = snprintf(path, PATH_MAX, "%s/%s", dir, name), fd;

	if (n < 0 || n >= PATH_MAX)
		return mw_err_set(err, -ENAMETOOLONG, "%s/%s: path too long",
				  dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mw_err_set(err, -errno, "%s: %s", path, strerror(errno));
	close(fd);
	return 0;
}

/* Never prompt on a terminal for the passphrase of an encrypted key. */
static int creds_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static int creds_load_ca(struct mw_tls_ctx *ctx, SSL_CTX *sc, const char *dir,
			 struct mw_err *err)
{
	char path[PATH_MAX], e[256];
	int ret = creds_file(path, dir, "ca-cert.pem", err);

	if (ret < 0)
		return ret;
	ERR_clear_error();
	if (SSL_CTX_load_verify_file(sc, path) != 1)
		return mw_err_set(err, -MW_E_TLS,
				  "%s: not a valid PEM CA certificate (%s)",
				  path, mw_tls_ossl_errstr(e, sizeof(e)));
	ctx->ca_path = strdup(path);
	if (!ctx->ca_path)
		return mw_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/*
 * ca-crl.pem, when the directory has one, as QEMU's tls-creds-x509 reads
 * it: every certificate of the peer's chain is checked against the CRLs
 * in it (X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL), so a revoked
 * peer certificate fails the handshake (sess_fail_verify says "revoked").
 * A missing file is no error: revocation is optional, as in QEMU.
 */
static int creds_load_crl(struct mw_tls_ctx *ctx, SSL_CTX *sc, const char *dir,
			  struct mw_err *err)
{
	X509_STORE *store = SSL_CTX_get_cert_store(sc);
	char path[PATH_MAX], e[256];
	X509_LOOKUP *lk;
	int ret = creds_file(path, dir, "ca-crl.pem", err);

	if (ret == -ENOENT) {
		memset(err, 0, sizeof(*err));
		return 0;
	}
	if (ret < 0)
		return ret;
	ERR_clear_error();
	lk = X509_STORE_add_lookup(store, X509_LOOKUP_file());
	if (!lk || X509_load_crl_file(lk, path, X509_FILETYPE_PEM) < 1)
		return mw_err_set(err, -MW_E_TLS,
				  "%s: not a valid PEM certificate revocation "
				  "list (%s)",
				  path, mw_tls_ossl_errstr(e, sizeof(e)));
	X509_STORE_set_flags(store,
			     X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	ctx->crl = true;
	ctx->crl_path = strdup(path);
	if (!ctx->crl_path)
		return mw_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* Loads <side>-cert.pem (with any chain after it) and <side>-key.pem. */
static int creds_load_pair(SSL_CTX *sc, const char *dir, const char *side,
			   struct mw_err *err)
{
	char cert[PATH_MAX], key[PATH_MAX], name[32], e[256];
	int ret;

	snprintf(name, sizeof(name), "%s-cert.pem", side);
	ret = creds_file(cert, dir, name, err);
	if (ret < 0)
		return ret;
	snprintf(name, sizeof(name), "%s-key.pem", side);
	ret = creds_file(key, dir, name, err);
	if (ret < 0)
		return ret;

	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(sc, cert) != 1)
		return mw_err_set(err, -MW_E_TLS,
				  "%s: not a valid PEM certificate (%s)", cert,
				  mw_tls_ossl_errstr(e, sizeof(e)));
	ERR_clear_error();
	if (SSL_CTX_use_PrivateKey_file(sc, key, SSL_FILETYPE_PEM) != 1) {
		unsigned long code = ERR_peek_error();

		if (ERR_GET_LIB(code) == ERR_LIB_X509 &&
		    ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			return mw_err_set(err, -MW_E_TLS,
					  "%s: private key does not match %s",
					  key, cert);
		}
		return mw_err_set(
			err, -MW_E_TLS,
			"%s: not a valid unencrypted PEM private key (%s)", key,
			mw_tls_ossl_errstr(e, sizeof(e)));
	}
	ERR_clear_error();
	if (SSL_CTX_check_private_key(sc) != 1) {
		ERR_clear_error();
		return mw_err_set(err, -MW_E_TLS,
				  "%s: private key does not match %s", key,
				  cert);
	}
	return 0;
}

int mw_tls_creds_x509_load(struct mw_tls_ctx *ctx, SSL_CTX *sc,
			   const struct mw_tls_cfg *cfg, unsigned int flags,
			   struct mw_err *err)
{
	int ret;

	if (!cfg->creds_dir || !cfg->creds_dir[0])
		return mw_err_set(err, -EINVAL,
				  "x509 TLS needs a credentials directory");
	SSL_CTX_set_default_passwd_cb(sc, creds_no_passphrase);
	ret = creds_load_ca(ctx, sc, cfg->creds_dir, err);
	if (ret < 0)
		return ret;
	ret = creds_load_crl(ctx, sc, cfg->creds_dir, err);
	if (ret < 0)
		return ret;
	if (!cfg->server && (flags & MW_TLS_CTX_NO_CERT))
		return 0;
	return creds_load_pair(sc, cfg->creds_dir,
			       cfg->server ? "server" : "client", err);
}

int mw_tls_read_small_file(const char *path, char **text, size_t *len,
			   struct mw_err *err)
{
	struct stat st;
	ssize_t n;
	char *buf;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mw_err_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		ret = mw_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto err_fd;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > PSK_FILE_MAX) {
		ret = mw_err_set(err, -EINVAL,
				 "%s: not a regular file of at most %u bytes",
				 path, PSK_FILE_MAX);
		goto err_fd;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		ret = mw_err_set(err, -ENOMEM, "out of memory");
		goto err_fd;
	}
	*len = 0;
	while (*len < (size_t)st.st_size) {
		n = read(fd, buf + *len, (size_t)st.st_size - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = mw_err_set(err, -errno, "%s: %s", path,
					 strerror(errno));
			goto err_buf;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	buf[*len] = '\0';
	*text = buf;
	close(fd);
	return 0;
err_buf:
	OPENSSL_clear_free(buf, (size_t)st.st_size + 1);
err_fd:
	close(fd);
	return ret;
}

const char *mw_tls_text_line(const char *text, size_t len, size_t *pos,
			     size_t *n)
{
	const char *p = text + *pos, *nl;

	if (*pos >= len)
		return NULL;
	nl = memchr(p, '\n', len - *pos);
	*n = nl ? (size_t)(nl - p) : len - *pos;
	*pos += *n + (nl ? 1 : 0);
	while (*n &&
	       (p[*n - 1] == '\r' || p[*n - 1] == ' ' || p[*n - 1] == '\t'))
		(*n)--;
	return p;
}

static void psk_warn(const char *path, const char *id, size_t id_len,
		     size_t key_len)
{
	MW_LOG(MW_LOG_WARN,
	       "%s: the key of identity '%.*s' is only %zu bytes; use at "
	       "least %u random bytes (tools/mw-mkcerts --psk makes 32)",
	       path, (int)id_len, id, key_len, MW_TLS_PSK_WEAK);
}

/* Server: a warning for every short key of the (checked) keys.psk text,
 * since any of them may be used. */
static void psk_warn_weak(const char *path, const char *text, size_t len)
{
	size_t pos = 0, n, id_len;
	const char *p, *colon;

	while ((p = mw_tls_text_line(text, len, &pos, &n))) {
		colon = n && p[0] != '#' ? memchr(p, ':', n) : NULL;
		if (!colon)
			continue;
		id_len = (size_t)(colon - p);
		if ((n - id_len - 1) / 2 < MW_TLS_PSK_WEAK)
			psk_warn(path, p, id_len, (n - id_len - 1) / 2);
	}
}

int mw_tls_creds_psk_load(struct mw_tls_ctx *ctx, const struct mw_tls_cfg *cfg,
			  struct mw_err *err)
{
	const char *ident = cfg->psk_identity ? cfg->psk_identity : "qemu";
	struct mw_err perr = { 0 };
	char *text = NULL;
	size_t len = 0;
	ssize_t n;
	int ret;

	if (!cfg->psk_file || !cfg->psk_file[0])
		return mw_err_set(err, -EINVAL,
				  "PSK TLS needs a keys.psk file");
	ctx->psk_path = strdup(cfg->psk_file);
	if (!ctx->psk_path)
		return mw_err_set(err, -ENOMEM, "out of memory");
	ret = mw_tls_read_small_file(cfg->psk_file, &text, &len, err);
	if (ret < 0)
		return ret;

	/* the server checks every line now, so a typo fails at start-up */
	n = mw_tls_psk_parse(text, len, cfg->server ? NULL : ident,
			     ctx->psk_key, sizeof(ctx->psk_key), &perr);
	if (n < 0) {
		ret = mw_err_set(err, (int)n, "%s: %s", cfg->psk_file,
				 perr.msg);
		OPENSSL_clear_free(text, len + 1);
		return ret;
	}
	if (cfg->server) {
		psk_warn_weak(cfg->psk_file, text, len);
		ctx->psk_text = text;
		ctx->psk_text_len = len;
		return 0;
	}
	OPENSSL_clear_free(text, len + 1);
	if ((size_t)n < MW_TLS_PSK_WEAK)
		psk_warn(cfg->psk_file, ident, strlen(ident), (size_t)n);
	ctx->psk_key_len = (size_t)n;
	ctx->psk_identity = strdup(ident);
	if (!ctx->psk_identity)
		return mw_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

static int hex_val(char c)
{
	return OPENSSL_hexchar2int((unsigned char)c);
}

/*
 * Checks one "identity:hexkey" line (p, n without the newline) and, when
 * key is not NULL, decodes the key into it. Returns the key length or
 * -EINVAL with the reason in *err.
 */
static ssize_t psk_line(const char *p, size_t n, const char **id,
			size_t *id_len, uint8_t *key, size_t key_cap,
			unsigned int lineno, struct mw_err *err)
{
	const char *colon = memchr(p, ':', n);
	const char *hex;
	size_t hex_len, i;

	if (!colon)
		return mw_err_set(
			err, -EINVAL,
			"line %u: missing ':' between identity and key",
			lineno);
	*id = p;
	*id_len = (size_t)(colon - p);
	if (*id_len == 0)
		return mw_err_set(err, -EINVAL, "line %u: empty identity",
				  lineno);
	hex = colon + 1;
	hex_len = n - *id_len - 1;
	if (hex_len == 0)
		return mw_err_set(err, -EINVAL, "line %u: empty key", lineno);
	if (hex_len % 2)
		return mw_err_set(
			err, -EINVAL,
			"line %u: key has an odd number of hex digits (%zu)",
			lineno, hex_len);
	for (i = 0; i < hex_len; i++)
		if (hex_val(hex[i]) < 0)
			return mw_err_set(
				err, -EINVAL,
				"line %u: key is not hex (character %zu)",
				lineno, i + 1);
	if (!key)
		return (ssize_t)(hex_len / 2);
	if (hex_len / 2 > key_cap)
		return mw_err_set(
			err, -EINVAL,
			"line %u: key of %zu bytes is longer than %zu", lineno,
			hex_len / 2, key_cap);
	for (i = 0; i < hex_len / 2; i++)
		key[i] = (uint8_t)(hex_val(hex[2 * i]) << 4 |
				   hex_val(hex[2 * i + 1]));
	return (ssize_t)(hex_len / 2);
}

/*
 * QEMU reads keys.psk as "identity:hexkey" lines (GnuTLS psktool's format)
 * and takes the first line whose identity matches. We also accept CRLF,
 * blank lines and '#' comments, and reject any malformed line, even of
 * another identity, so a broken file is found before a migration. A NULL
 * identity only checks the text and returns 0.
 */
ssize_t mw_tls_psk_parse(const char *text, size_t len, const char *identity,
			 uint8_t *key, size_t key_cap, struct mw_err *err)
{
	size_t want = identity ? strlen(identity) : 0, pos = 0, n, id_len = 0;
	ssize_t found = -1, ret;
	unsigned int lineno = 0;
	const char *p, *id;

	while ((p = mw_tls_text_line(text, len, &pos, &n))) {
		lineno++;
		if (n == 0 || p[0] == '#')
			continue;
		if (memchr(p, '\0', n))
			return mw_err_set(err, -EINVAL, "line %u: NUL byte",
					  lineno);
		ret = psk_line(p, n, &id, &id_len, NULL, 0, lineno, err);
		if (ret < 0)
			return ret;
		if (found >= 0 || !identity || id_len != want ||
		    memcmp(id, identity, want))
			continue;
		found = psk_line(p, n, &id, &id_len, key, key_cap, lineno, err);
		if (found < 0)
			return found;
	}
	if (!identity)
		return 0;
	if (found < 0)
		return mw_err_set(err, -ENOENT, "no key for identity '%s'",
				  identity);
	return found;
}
