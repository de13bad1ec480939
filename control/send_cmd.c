/* SPDX-License-Identifier: MIT */
/*
 * The `migwire send` command line that QEMU runs for `migwire migrate`
 * (its argv and the shell-quoted exec: URI), and the interrupt flag and
 * nap that the preflight and the watch share. Below both migrate.c and
 * preflight.c, so the two call one way. Main thread.
 */
#include <dirent.h>
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

/* The parent of pid from /proc/PID/stat, or 0. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *p, *end;
	long ppid;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the name may hold spaces and ')' */
	if (!p || strlen(p) < 5)
		return 0;
	ppid = strtol(p + 4, &end, 10); /* after ") S " */
	return end > p + 4 && ppid > 0 ? (pid_t)ppid : 0;
}

int mw_send_stop_exec(pid_t qemu_pid, const char *self)
{
	char path[64], exe[4096];
	struct dirent *de;
	int stopped = 0;
	DIR *d;

	if (qemu_pid <= 0 || !(d = opendir("/proc")))
		return 0;
	/* the main thread alone reads /proc (readdir_r is deprecated) */
	/* cppcheck-suppress readdirCalled */
	while ((de = readdir(d))) {
		char *end;
		pid_t pid = (pid_t)strtol(de->d_name, &end, 10), up = pid;
		ssize_t n;
		int depth;

		if (pid <= 0 || *end)
			continue;
		/* QEMU runs the URI through /bin/sh -c: a child or grandchild */
		for (depth = 0; depth < 3 && up > 1 && up != qemu_pid; depth++)
			up = parent_of(up);
		if (up != qemu_pid || pid == qemu_pid)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
		n = readlink(path, exe, sizeof(exe) - 1);
		if (n <= 0)
			continue;
		exe[n] = '\0';
		if (!strcmp(exe, self) && !kill(pid, SIGTERM))
			stopped++;
	}
	closedir(d);
	return stopped;
}
