/* SPDX-License-Identifier: MIT */
/*
 * Socket mode of `migwire migrate`: QEMU migrates to a unix socket (as
 * under libvirt's --migrateuri unix://), so nothing starts `migwire send`
 * for us; migrate runs it, listening there, before the migrate command,
 * and waits for it afterwards: send exits 0 only once the receiver has
 * acknowledged every byte, which is when the destination has them. Its
 * stderr goes to a private log, so that its lines do not tear migrate's
 * progress line; its last line is the reason migrate reports. Main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control_int.h"
#include "mw_log.h"

#define LISTEN_WAIT_MS 15000

/* send's last line, without its "migwire send: ", into bg->reason */
static void read_reason(struct mw_send_bg *bg)
{
	char buf[4096];

	bg->reason[0] = '\0';
	if (mw_file_tail(bg->log, buf, sizeof(buf)) > 0)
		snprintf(bg->reason, sizeof(bg->reason), "%.*s",
			 (int)sizeof(bg->reason) - 1, mw_send_last_line(buf));
}

/* A unix socket at path: send has bound and listens (it removes a stale
 * one before it binds, and migrate removed ours before it started). */
static bool is_socket(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISSOCK(st.st_mode);
}

int mw_send_bg_start(struct mw_send_bg *bg, const struct migrate_opts *o,
		     const struct mw_send_argv *sa)
{
	const char *tmp = getenv("TMPDIR");
	const char *path = o->listen + 5; /* after "unix:" */
	int fd, waited;

	memset(bg, 0, sizeof(*bg));
	if (!tmp || !*tmp || strlen(tmp) > 256)
		tmp = "/tmp";
	snprintf(bg->dir, sizeof(bg->dir), "%s/migwire-send.XXXXXX", tmp);
	if (!mkdtemp(bg->dir)) {
		MW_LOG(MW_LOG_ERR, "%s: %s", bg->dir, strerror(errno));
		bg->dir[0] = '\0';
		return 1;
	}
	snprintf(bg->log, sizeof(bg->log), "%s/send.log", bg->dir);
	/* a stale socket would look like a listening send */
	if (is_socket(path))
		unlink(path);
	bg->pid = fork();
	if (bg->pid < 0) {
		MW_LOG(MW_LOG_ERR, "fork: %s", strerror(errno));
		bg->pid = 0;
		return 1;
	}
	/* both sides, so that no Ctrl-C falls between fork and exec */
	if (bg->pid)
		setpgid(bg->pid, bg->pid);
	if (!bg->pid) {
		/* its own process group: a Ctrl-C is migrate's to handle
		 * (cancel QEMU first), not a kill of the data plane */
		setpgid(0, 0);
		fd = open(bg->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			  0600);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0 || dup2(fd, STDIN_FILENO) < 0 ||
		    dup2(fd, STDOUT_FILENO) < 0)
			_exit(127);
		execv(sa->argv[0], sa->argv);
		_exit(127);
	}
	for (waited = 0; waited < LISTEN_WAIT_MS; waited += 50) {
		if (is_socket(path))
			return 0;
		if (mw_send_bg_wait(bg, 0, false) >= 0 ||
		    mw_migrate_interrupted)
			break;
		mw_migrate_nap(50);
	}
	if (bg->pid)
		mw_send_bg_wait(bg, 5, true);
	read_reason(bg);
	MW_LOG(MW_LOG_ERR, "migwire send did not listen on %s%s%s", path,
	       bg->reason[0] ? ": " : "", bg->reason);
	return 1;
}

int mw_send_bg_wait(struct mw_send_bg *bg, int secs, bool stop)
{
	int ms;

	if (!bg->pid)
		return WIFEXITED(bg->status) ? WEXITSTATUS(bg->status) : 128;
	if (stop)
		kill(bg->pid, SIGTERM);
	for (ms = 0;; ms += 100) {
		pid_t r = waitpid(bg->pid, &bg->status, WNOHANG);

		if (r == bg->pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (ms >= secs * 1000)
			return -1;
		mw_migrate_nap(100);
	}
	bg->pid = 0;
	if (!WIFEXITED(bg->status) || WEXITSTATUS(bg->status))
		read_reason(bg);
	return WIFEXITED(bg->status) ? WEXITSTATUS(bg->status) : 128;
}

void mw_send_bg_cleanup(struct mw_send_bg *bg)
{
	if (bg->pid) { /* still running: it carries nothing we want now */
		kill(bg->pid, SIGKILL);
		waitpid(bg->pid, &bg->status, 0);
		bg->pid = 0;
	}
	if (!bg->dir[0])
		return;
	unlink(bg->log);
	rmdir(bg->dir);
	bg->dir[0] = '\0';
}
