/* SPDX-License-Identifier: MIT */
/* File descriptor and buffer helpers (mw_fd.c). */
#ifndef MW_FD_H
#define MW_FD_H

#include <stdbool.h>
#include <stddef.h>

/* A non-blocking, close-on-exec eventfd, or -errno. */
int mw_efd_new(void);
/* Wakes whoever polls fd (no-op for fd < 0 or a saturated counter). */
void mw_efd_poke(int fd);
/* Writes all of buf (blocking fd) or returns -errno. */
int mw_write_all(int fd, const void *buf, size_t n);
/* Half-close of a local stream direction: shutdown(SHUT_WR) for sockets,
 * close() for anything else (pipes under exec:). */
void mw_fd_close_write(int fd, bool is_sock);
bool mw_fd_is_sock(int fd);
/*
 * Page-aligned buffer for bulk data, freed with free(). glibc's malloc puts
 * large blocks 16 bytes past a page boundary, and the kernel's copies into
 * such buffers ran 4-5x slower here (read stage 0.41 -> 0.21 s per 512 MiB
 * when aligned, bench/pipe.py).
 */
void *mw_buf_alloc(size_t n);

#endif
