/* SPDX-License-Identifier: MIT */
/*
 * Corpus file I/O for mw-datagen and the benchmarks. Blocking calls on
 * the caller's thread; EINTR is retried, any other error ends the call.
 */
#include "corpus.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int mw_corpus_read(int fd, uint8_t **out, size_t *n)
{
	struct stat st;
	uint8_t *p;
	size_t got = 0;
	ssize_t k;

	*out = NULL;
	if (fstat(fd, &st) || st.st_size <= 0)
		return -EINVAL;
	p = malloc((size_t)st.st_size);
	if (!p)
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		k = read(fd, p + got, (size_t)st.st_size - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			free(p);
			return k < 0 ? -errno : -EIO;
		}
		got += (size_t)k;
	}
	*out = p;
	*n = got;
	return 0;
}

int mw_corpus_generate(uint8_t **out, size_t size,
		       const struct mw_datagen_cfg *cfg)
{
	*out = malloc(size);
	if (!*out)
		return -ENOMEM;
	mw_datagen_fill(*out, size, cfg, 0);
	return 0;
}

int mw_corpus_write(int fd, const uint8_t *p, size_t n)
{
	ssize_t k;

	while (n) {
		k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}
