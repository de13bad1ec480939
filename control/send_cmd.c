/* SPDX-License-Identifier: MIT */
/*
 * The `migwire send` command line that QEMU runs for `migwire migrate`
 * (its argv and the shell-quoted exec: URI), and the interrupt flag and
 * nap that the preflight and the watch share. Below both migrate.c and
 * preflight.c, so the two call one way. Main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control_int.h"

volatile sig_atomic_t mw_migrate_interrupted;

void mw_migrate_nap(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL); /* a signal ends it early, as it should */
}

int mw_send_argv_add(struct mw_send_argv *sa, const char *a)
{
	size_t n = strlen(a) + 1;

	if (sa->used + n > sizeof(sa->store) ||
	    sa->argc + 2 >= (int)(sizeof(sa->argv) / sizeof(sa->argv[0])))
		return -E2BIG;
	memcpy(sa->store + sa->used, a, n);
	sa->argv[sa->argc++] = sa->store + sa->used;
	sa->argv[sa->argc] = NULL;
	sa->used += n;
	return 0;
}

int mw_migrate_send_argv(struct mw_send_argv *sa, const struct migrate_opts *o,
			 const char *self, pid_t qemu_pid)
{
	char buf[64];
	int i, ret;

	sa->argc = 0;
	sa->used = 0;
	ret = mw_send_argv_add(sa, self);
	ret = ret ?: mw_send_argv_add(sa, "send");
	ret = ret ?: mw_send_argv_add(sa, "--to");
	ret = ret ?: mw_send_argv_add(sa, o->to);
	for (i = 0; i < o->nsend && !ret; i++) {
		snprintf(buf, sizeof(buf), "--%s", o->send[i].name);
		ret = mw_send_argv_add(sa, buf);
		if (o->send[i].arg)
			ret = ret ?: mw_send_argv_add(sa, o->send[i].arg);
	}
	if (qemu_pid > 0 && !ret) {
		snprintf(buf, sizeof(buf), "%d", (int)qemu_pid);
		ret = mw_send_argv_add(sa, "--qemu-pid");
		ret = ret ?: mw_send_argv_add(sa, buf);
	}
	return ret;
}

int mw_migrate_exec_uri(char *out, size_t cap, const struct mw_send_argv *sa)
{
	size_t n = (size_t)snprintf(out, cap, "exec:");
	int i;

	for (i = 0; i < sa->argc; i++) {
		const char *p;

		if (n + 4 >= cap)
			return -E2BIG;
		if (i)
			out[n++] = ' ';
		out[n++] = '\'';
		for (p = sa->argv[i]; *p; p++) {
			if (n + 6 >= cap)
				return -E2BIG;
			if (*p == '\'') {
				memcpy(out + n, "'\\''", 4);
				n += 4;
			} else {
				out[n++] = *p;
			}
		}
		out[n++] = '\'';
	}
	out[n] = '\0';
	return 0;
}

ssize_t mw_file_tail(const char *path, char *buf, size_t cap)
{
	ssize_t n = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size;

	if (fd < 0)
		return -1;
	size = lseek(fd, 0, SEEK_END);
	if (size >= 0)
		n = pread(fd, buf, cap - 1,
			  size > (off_t)cap - 1 ? size - (off_t)cap + 1 : 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

const char *mw_send_last_line(char *text)
{
	char *end = text + strlen(text), *p;

	while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	p = strrchr(text, '\n');
	p = p ? p + 1 : text;
	if (!strncmp(p, "migwire send: ", 14))
		p += 14;
	return p;
}
