/* SPDX-License-Identifier: MIT */
/*
 * The sender's reverse writers (rev_writer.c): one thread per stream
 * (mw-rwN, started on the stream's first reverse frame) that writes what
 * the receiver sent back into the source QEMU's return path, so a QEMU
 * that stops reading it blocks only that thread, never the channel that
 * carries the stream (and with it the credit of every other stream).
 */
#ifndef MW_REV_WRITER_H
#define MW_REV_WRITER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "session.h"

/* bytes a stream's return path may hold waiting for QEMU to read them;
 * the receiver has no credit for this direction, and QEMU's return path
 * carries acknowledgements and page requests, so more means it stopped */
#define MW_REV_QUEUE_MAX (8u << 20)

struct mw_rev_writer;

/*
 * Starts the writer of stream id over fd (a socket, or a pipe or file).
 * A write that makes no progress for stall_ns fails the session (latched
 * in fail, naming the stream); *done is set once the END was written and
 * the write side closed. Returns 0 or -errno.
 * Context: a channel thread, under the sender's rev_lock (any channel may
 * carry a stream's reverse frames: the receiver moves them to another
 * channel while theirs is down), which serialises start, push and end.
 */
int mw_rev_writer_start(struct mw_rev_writer **out, unsigned id, int fd,
			bool is_sock, unsigned long long stall_ns,
			struct mw_fail *fail, atomic_bool *done);
/* Queues a copy of n bytes. Returns 0, or -MW_E_NOSPACE when
 * MW_REV_QUEUE_MAX would be passed (the session should fail), -ENOMEM. */
int mw_rev_writer_push(struct mw_rev_writer *w, const void *p, size_t n);
/* The END: once everything queued is written, close the write side. */
void mw_rev_writer_end(struct mw_rev_writer *w);
/* Stops the thread (a write in progress is abandoned), joins and frees.
 * NULL is fine. Context: main thread, teardown. */
void mw_rev_writer_free(struct mw_rev_writer *w);

#endif
