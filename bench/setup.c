/* SPDX-License-Identifier: MIT */
/*
 * What a `migwire bench` run needs before the first pair starts: this
 * binary's path (the children are `migwire send` and `migwire recv` of the
 * same build), a temporary directory, the corpus as a file (send reads it
 * on stdin), and the X.509 PKI (tools/mw-mkcerts) or a random keys.psk.
 * Also the posix_spawn wrapper every child goes through, so nothing of
 * the driver (corpus memory, threads) leaks into them. Driver thread only.
 */
#include "bench_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corpus.h"
#include "mw_err.h"

extern char **environ;

void mw_bench_path(const struct mw_bench *b, char *out, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", b->tmp, name);
}

void mw_bench_argv_add(struct mw_bench_argv *a, const char *fmt, ...)
{
	size_t room = sizeof(a->store) - a->used;
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(a->store + a->used, room, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= room || a->n + 1 >= 48)
		abort(); /* sized for the longest argv the bench builds */
	a->v[a->n++] = a->store + a->used;
	a->v[a->n] = NULL;
	a->used += (size_t)k + 1;
}

int mw_bench_workdir_make(struct mw_bench *b)
{
	const char *tmpdir = getenv("TMPDIR");
	ssize_t k;

	k = readlink("/proc/self/exe", b->exe, sizeof(b->exe) - 1);
	if (k <= 0) {
		fprintf(stderr, "migwire bench: /proc/self/exe: %s\n",
			strerror(errno));
		return -1;
	}
	b->exe[k] = 0;
	snprintf(b->tmp, sizeof(b->tmp), "%s/mw-bench-XXXXXX",
		 tmpdir && *tmpdir ? tmpdir : "/tmp");
	if (!mkdtemp(b->tmp)) {
		fprintf(stderr, "migwire bench: mkdtemp %s: %s\n", b->tmp,
			strerror(errno));
		return -1;
	}
	return 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(p);
}

void mw_bench_workdir_drop(const struct mw_bench *b)
{
	if (b->keep)
		fprintf(stderr, "migwire bench: kept %s\n", b->tmp);
	else
		nftw(b->tmp, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* A new file in the tmp dir (0600, never an existing one) holding p. */
static int file_create(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int ret;

	if (fd < 0)
		return -errno;
	ret = mw_corpus_write(fd, p, n);
	if (!ret && fsync(fd))
		ret = -errno;
	close(fd);
	return ret;
}

/* Loads --input, or generates the corpus and writes it to the tmp dir. */
int mw_bench_corpus_load(struct mw_bench *b)
{
	int fd, ret;

	if (b->input) {
		snprintf(b->corpus_path, sizeof(b->corpus_path), "%s",
			 b->input);
		fd = open(b->input, O_RDONLY | O_CLOEXEC);
		ret = fd < 0 ? -errno : mw_corpus_read(fd, &b->corpus, &b->n);
		if (fd >= 0)
			close(fd);
	} else {
		b->n = (size_t)b->size;
		if (mw_corpus_generate(&b->corpus, b->n, &b->gen))
			return -ENOMEM;
		mw_bench_path(b, b->corpus_path, "corpus");
		ret = file_create(b->corpus_path, b->corpus, b->n);
	}
	if (ret)
		fprintf(stderr, "migwire bench: corpus %s: %s\n",
			b->corpus_path, mw_strerror(ret));
	return ret;
}

/* Spawns argv[0] (PATH search) with the given stdio; returns pid or -errno */
pid_t mw_bench_spawn(char *const argv[], int in_fd, int out_fd,
		     const char *err_path)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int ret;

	posix_spawn_file_actions_init(&fa);
	if (in_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY,
						 0);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY,
						 0);
	if (err_path)
		posix_spawn_file_actions_addopen(
			&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ret = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return ret ? -ret : pid;
}

/* Runs argv to completion with stdout discarded; returns its status. */
int mw_bench_tool_run(char *const argv[])
{
	pid_t pid = mw_bench_spawn(argv, -1, -1, NULL);
	int st;

	if (pid < 0)
		return pid;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool executable(const char *p)
{
	return p && *p && access(p, X_OK) == 0;
}

/* The X.509 PKI (tools/mw-mkcerts) or keys.psk the configurations need. */
int mw_bench_creds_make(struct mw_bench *b)
{
	bool x509 = false, psk = false;
	char dir[PATH_MAX], cand[4][PATH_MAX + 32];
	struct mw_bench_argv a = { .n = 0 };
	const char *tool = NULL;
	unsigned i;
	int ret;

	for (i = 0; i < b->n_tls; i++) {
		x509 |= b->tls[i] == MW_BENCH_TLS_X509;
		psk |= b->tls[i] == MW_BENCH_TLS_PSK;
	}
	if (psk) {
		uint8_t key[32];
		char line[80];
		int n = snprintf(line, sizeof(line), "qemu:");

		if (getrandom(key, sizeof(key), 0) != sizeof(key))
			return -EIO;
		for (i = 0; i < sizeof(key); i++)
			n += snprintf(line + n, sizeof(line) - (size_t)n,
				      "%02x", key[i]);
		line[n++] = '\n';
		mw_bench_path(b, b->psk, "keys.psk");
		ret = file_create(b->psk, line, (size_t)n);
		if (ret)
			return ret;
	}
	if (!x509)
		return 0;
	snprintf(dir, sizeof(dir), "%s", b->exe);
	*strrchr(dir, '/') = 0;
	snprintf(cand[0], sizeof(cand[0]), "%s",
		 getenv("MW_MKCERTS") ? getenv("MW_MKCERTS") : "");
	snprintf(cand[1], sizeof(cand[1]), "%s/mw-mkcerts", dir);
	snprintf(cand[2], sizeof(cand[2]), "%s/../../tools/mw-mkcerts", dir);
#ifdef MW_SOURCE_DIR
	snprintf(cand[3], sizeof(cand[3]), "%s/tools/mw-mkcerts",
		 MW_SOURCE_DIR);
#else
	cand[3][0] = 0;
#endif
	if (b->mkcerts)
		tool = b->mkcerts;
	for (i = 0; !tool && i < 4; i++)
		if (executable(cand[i]))
			tool = cand[i];
	if (!tool)
		tool = "mw-mkcerts"; /* PATH */
	mw_bench_path(b, b->pki, "pki");
	mw_bench_argv_add(&a, "%s", tool);
	mw_bench_argv_add(&a, "%s", b->pki);
	mw_bench_argv_add(&a, "--hostname");
	mw_bench_argv_add(&a, "localhost");
	mw_bench_argv_add(&a, "--ip");
	mw_bench_argv_add(&a, "127.0.0.1");
	ret = mw_bench_tool_run(a.v);
	if (ret) {
		fprintf(stderr,
			"migwire bench: %s could not make the PKI (%s);"
			" give --mkcerts PATH or --tls psk,off\n",
			tool, ret < 0 ? mw_strerror(ret) : "non-zero exit");
		return -ENOENT;
	}
	return 0;
}

bool mw_bench_in_path(const char *prog)
{
	char buf[4096], *save = NULL, *d, p[PATH_MAX];
	const char *path = getenv("PATH");

	snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
	for (d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(p, sizeof(p), "%s/%s", d, prog);
		if (executable(p))
			return true;
	}
	return false;
}
