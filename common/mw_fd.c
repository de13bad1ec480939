/* SPDX-License-Identifier: MIT */
/*
 * File descriptor and buffer helpers every stage uses: eventfd wake-ups,
 * blocking whole writes, half-closes, and page-aligned bulk buffers.
 * Any thread; no state of their own.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mw_fd.h"

int mw_efd_new(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	return fd < 0 ? -errno : fd;
}

void mw_efd_poke(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		return; /* counter saturated: already poked */
}

int mw_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

void mw_fd_close_write(int fd, bool is_sock)
{
	if (fd < 0)
		return;
	if (is_sock)
		shutdown(fd, SHUT_WR);
	else
		close(fd);
}

bool mw_fd_is_sock(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

void *mw_buf_alloc(size_t n)
{
	size_t page = 4096;

	return aligned_alloc(page, (n + page - 1) / page * page);
}
