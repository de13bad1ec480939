/* SPDX-License-Identifier: MIT */
/*
 * --join-token FILE (tools/cli.h): the per-migration secret both sides
 * read from a file. The token is the file's bytes with trailing white
 * space (the newline an editor or `base64` adds) removed: 16 to
 * MW_JOIN_TOKEN_MAX bytes. It is a key, not a password: the HMAC proof on
 * the wire (transport/join.c) is only as strong as the token is hard to
 * guess, hence the minimum length and the hint to make it from
 * /dev/urandom. A file that other users may read is warned about, not
 * refused: libvirt-style setups hand files to a group on purpose, but
 * "others" never need it. Main thread, before the run.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "mw_log.h"

#define TOKEN_MIN 16u
#define MAKE_ONE "head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE"

int cli_load_join_token(struct opts *o)
{
	uint8_t buf[MW_JOIN_TOKEN_MAX + 2];
	const char *path = o->join_token_path;
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd, err;

	if (!path)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		return cli_usage_err("--join-token %s: %s", path,
				     strerror(err));
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return cli_usage_err("--join-token %s: not a regular file",
				     path);
	}
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	err = n < 0 ? errno : 0;
	close(fd);
	while (len && strchr(" \t\r\n", buf[len - 1]) && buf[len - 1])
		len--;
	if (err || len > MW_JOIN_TOKEN_MAX || len < TOKEN_MIN) {
		explicit_bzero(buf, sizeof(buf));
		if (err)
			return cli_usage_err("--join-token %s: %s", path,
					     strerror(err));
		return cli_usage_err(
			"--join-token %s: a token is %u to %u "
			"bytes, this one has %zu; make one with: " MAKE_ONE,
			path, TOKEN_MIN, MW_JOIN_TOKEN_MAX, len);
	}
	if (st.st_mode & (S_IROTH | S_IWOTH))
		MW_LOG(MW_LOG_WARN,
		       "--join-token %s: other users may read or change it "
		       "(chmod 600 it)",
		       path);
	memcpy(o->join_token, buf, len);
	explicit_bzero(buf, sizeof(buf));
	o->cfg.join_token = o->join_token;
	o->cfg.join_token_len = len;
	return 0;
}
