/* SPDX-License-Identifier: MIT */
/*
 * One `migwire recv` | `migwire send` pair of a `migwire bench`
 * configuration: starts recv on a free loopback port, waits until it
 * listens, starts send on the corpus file, drains recv's stdout (a pipe,
 * as under QEMU's exec:) on a verifier thread that compares it with the
 * corpus as it comes, reaps both with wait4 (their CPU) and kills them
 * after --timeout. Then reads what they wrote: the final line of each
 * --stats-file (CPU per stage, wire bytes) and both --latency-file (chunk
 * latency, same host, same monotonic clock). Driver thread, except the
 * verifier, which is joined before the pair returns.
 */
#include "bench_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mw_err.h"
#include "mw_thread.h"

/* How both children's argv starts: exe SIDE FLAG 127.0.0.1:PORT -q */
static void side_open(const struct mw_bench *b, struct mw_bench_argv *a,
		      const char *side, const char *flag, int port)
{
	mw_bench_argv_add(a, "%s", b->exe);
	mw_bench_argv_add(a, "%s", side);
	mw_bench_argv_add(a, "%s", flag);
	mw_bench_argv_add(a, "127.0.0.1:%d", port);
	mw_bench_argv_add(a, "-q");
}

/* How both end: their stats and latency files, TLS mode, --window. */
static void side_close(const struct mw_bench *b, struct mw_bench_argv *a,
		       const struct mw_bench_conf *c, const char *stats,
		       const char *lat)
{
	mw_bench_argv_add(a, "--stats-file");
	mw_bench_argv_add(a, "%s", stats);
	mw_bench_argv_add(a, "--latency-file");
	mw_bench_argv_add(a, "%s", lat);
	if (c->tls == MW_BENCH_TLS_X509) {
		mw_bench_argv_add(a, "--tls-creds");
		mw_bench_argv_add(a, "%s", b->pki);
	} else if (c->tls == MW_BENCH_TLS_PSK) {
		mw_bench_argv_add(a, "--tls-psk");
		mw_bench_argv_add(a, "%s", b->psk);
	} else {
		mw_bench_argv_add(a, "--no-tls");
	}
	if (b->window) {
		mw_bench_argv_add(a, "--window");
		mw_bench_argv_add(a, "%" PRIu64, b->window);
	}
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &alen))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* True once 127.0.0.1:port is in LISTEN state (no probe connection). */
static bool listening(int port)
{
	char want[32], line[256], local[64];
	unsigned st;
	bool yes = false;
	FILE *f = fopen("/proc/net/tcp", "re");

	snprintf(want, sizeof(want), "0100007F:%04X", port);
	while (f && !yes && fgets(line, sizeof(line), f))
		/* kernel-formatted text */
		/* NOLINTNEXTLINE(cert-err34-c) */
		yes = sscanf(line, " %*s %63s %*s %x", local, &st) == 2 &&
		      !strcmp(local, want) && st == 0x0A;
	if (f)
		fclose(f);
	return yes;
}

/*
 * Locking: none needed. The driver fills b and fd before creating the
 * verifier thread; got and differs are written only by that thread and
 * read by the driver after pthread_join.
 */
struct verifier {
	const struct mw_bench *b;
	int fd;
	size_t got;
	bool differs;
};

/* Drains recv's stdout and compares it with the corpus as it comes. */
static void *verify_main(void *arg)
{
	struct verifier *v = arg;
	uint8_t small[4096], *big = malloc(256u << 10);
	uint8_t *buf = big ? big : small;
	size_t cap = big ? 256u << 10 : sizeof(small);
	ssize_t k;

	for (;;) {
		k = read(v->fd, buf, cap);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (!v->differs &&
		    (v->got + (size_t)k > v->b->n ||
		     memcmp(buf, v->b->corpus + v->got, (size_t)k)))
			v->differs = true;
		v->got += (size_t)k;
	}
	free(big);
	return NULL;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *p = NULL;
	size_t cap = 0, n = 0, k;

	while (f) {
		if (n + 4096 + 1 > cap) {
			char *q = realloc(p, cap = cap * 2 + 8192);

			if (!q)
				break;
			p = q;
		}
		k = fread(p + n, 1, cap - n - 1, f);
		n += k;
		if (!k)
			break;
	}
	if (f)
		fclose(f);
	if (p)
		p[n] = 0;
	if (len)
		*len = n;
	return p;
}

/* From the final stats line: four stage CPUs, bytes_wire, result "ok". */
static int stats_final(const char *path, int side, double *stage,
		       uint64_t *wire)
{
	char *s = slurp(path, NULL), *line, *obj, *p, key[32];
	int i, ret = -EINVAL;

	line = s ? strstr(s, "\"final\":true") : NULL;
	while (line && line > s && line[-1] != '\n')
		line--;
	if (!line || !strstr(line, "\"result\":\"ok\""))
		goto out;
	p = strstr(line, "\"bytes_wire\":");
	obj = strstr(line, "\"cpu_s\":{");
	if (!p || !obj)
		goto out;
	*wire = strtoull(p + 13, NULL, 10);
	for (i = 0; i < 4; i++) {
		snprintf(key, sizeof(key),
			 "\"%s\":", mw_bench_stage_name[side * 4 + i]);
		p = strstr(obj, key);
		stage[side * 4 + i] = p ? strtod(p + strlen(key), NULL) : 0;
	}
	ret = 0;
out:
	free(s);
	return ret;
}

struct lat {
	uint64_t key; /* stream << 48 | seq */
	uint64_t ns;
};

static int lat_cmp(const void *x, const void *y)
{
	const struct lat *a = x, *b = y;

	return a->key < b->key ? -1 : a->key > b->key;
}

static struct lat *lat_load(const char *path, size_t *n)
{
	char *s = slurp(path, NULL), *p, *end;
	struct lat *v = NULL, *q;
	size_t cap = 0;
	unsigned long long st, seq, ns;
	char *q_end;

	*n = 0;
	for (p = s; p && *p; p = end + 1) {
		end = strchr(p, '\n');
		if (!end)
			break;
		errno = 0;
		st = strtoull(p, &q_end, 10);
		seq = strtoull(q_end, &q_end, 10);
		ns = strtoull(q_end, &q_end, 10);
		if (errno || q_end == p || q_end > end)
			continue;
		if (*n == cap) {
			q = realloc(v, (cap = cap * 2 + 1024) * sizeof(*v));
			if (!q)
				break;
			v = q;
		}
		v[(*n)++] = (struct lat){ st << 48 | seq, ns };
	}
	free(s);
	if (v)
		qsort(v, *n, sizeof(*v), lat_cmp);
	return v;
}

/* p50 and p99 of recv_ns - send_ns over the chunks both files list. */
static void lat_pct(const char *spath, const char *rpath, double *p50,
		    double *p99)
{
	size_t ns, nr, i = 0, j = 0, n = 0;
	struct lat *s = lat_load(spath, &ns), *r = lat_load(rpath, &nr);
	double *d = malloc((ns ? ns : 1) * sizeof(*d));

	*p50 = *p99 = NAN;
	while (d && i < ns && j < nr) {
		if (s[i].key < r[j].key) {
			i++;
		} else if (s[i].key > r[j].key) {
			j++;
		} else {
			d[n++] = ((double)r[j].ns - (double)s[i].ns) / 1e6;
			i++;
			j++;
		}
	}
	if (n) {
		qsort(d, n, sizeof(*d), mw_bench_dbl_cmp);
		*p50 = d[(n - 1) / 2];
		*p99 = d[(size_t)((double)(n - 1) * 0.99)];
	}
	free(s);
	free(r);
	free(d);
}

static volatile sig_atomic_t alarm_fired;

static void on_alarm(int sig)
{
	alarm_fired = 1;
}

/* ends wait4 below with EINTR; no SA_RESTART */
static const struct sigaction alarm_sa = { .sa_handler = on_alarm };

/* The first line of a child's stderr, for the failure message. */
static void first_line(const char *path, char *out, size_t cap)
{
	char *s = slurp(path, NULL), *nl;

	if (s && (nl = strchr(s, '\n')))
		*nl = 0;
	snprintf(out, cap, "%s", s && *s ? s : "(no message)");
	free(s);
}

/*
 * Starts recv, waits until it listens, starts send on the corpus, drains
 * and compares recv's output, reaps both (killed after --timeout). Fills
 * *r. Returns 0, -EAGAIN when recv did not come up (try another port) or
 * another error with the reason in c->err.
 */
static int pair_once(struct mw_bench *b, struct mw_bench_conf *c,
		     struct mw_bench_rep *r)
{
	char st[2][PATH_MAX], lt[2][PATH_MAX], er[2][PATH_MAX];
	struct mw_bench_argv ra = { .n = 0 }, sa = { .n = 0 };
	struct verifier v = { .b = b, .fd = -1 };
	struct rusage ru;
	unsigned long long t0, end[2] = { 0, 0 };
	pid_t pid[2] = { -1, -1 }, w;
	pthread_t vt;
	sigset_t blk, old;
	int port = free_port(), pfd[2], in_fd, status[2] = { 0, 0 }, i, ret;
	int wst;

	mw_bench_path(b, st[0], "send.stats");
	mw_bench_path(b, st[1], "recv.stats");
	mw_bench_path(b, lt[0], "send.lat");
	mw_bench_path(b, lt[1], "recv.lat");
	mw_bench_path(b, er[0], "send.err");
	mw_bench_path(b, er[1], "recv.err");
	for (i = 0; i < 2; i++) {
		unlink(st[i]);
		unlink(lt[i]);
	}
	if (port < 0)
		return -EAGAIN;
	side_open(b, &ra, "recv", "--listen", port);
	mw_bench_argv_add(&ra, "--no-return-path");
	mw_bench_argv_add(&ra, "--decompress-threads");
	mw_bench_argv_add(&ra, "%u", c->threads);
	side_close(b, &ra, c, st[1], lt[1]);
	side_open(b, &sa, "send", "--to", port);
	mw_bench_argv_add(&sa, "--channels");
	mw_bench_argv_add(&sa, "%u", c->chans);
	mw_bench_argv_add(&sa, "--compress");
	mw_bench_argv_add(&sa, "%s", mw_codec_name(c->codec));
	if (c->codec != MW_CODEC_NONE) {
		mw_bench_argv_add(&sa, "--compress-level");
		mw_bench_argv_add(&sa, "%d", c->level);
	}
	mw_bench_argv_add(&sa, "--compress-threads");
	mw_bench_argv_add(&sa, "%u", c->threads);
	mw_bench_argv_add(&sa, "--chunk-size");
	mw_bench_argv_add(&sa, "%u", c->chunk);
	side_close(b, &sa, c, st[0], lt[0]);

	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	pid[1] = mw_bench_spawn(ra.v, -1, pfd[1], er[1]);
	close(pfd[1]);
	if (pid[1] < 0) {
		close(pfd[0]);
		return pid[1];
	}
	v.fd = pfd[0];
	/* the verifier must not take SIGALRM: it interrupts wait4 below */
	sigemptyset(&blk);
	sigaddset(&blk, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &blk, &old);
	ret = -pthread_create(&vt, NULL, verify_main, &v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		kill(pid[1], SIGKILL);
		waitpid(pid[1], NULL, 0);
		close(pfd[0]);
		return ret;
	}
	t0 = mw_now_ns();
	while (!listening(port)) {
		bool gone = waitpid(pid[1], &wst, WNOHANG) == pid[1];

		if (gone || mw_now_ns() - t0 > 10000000000ull) {
			if (!gone) {
				kill(pid[1], SIGKILL);
				waitpid(pid[1], NULL, 0);
			}
			pthread_join(vt, NULL);
			close(pfd[0]);
			first_line(er[1], c->err, sizeof(c->err));
			return strstr(c->err, "in use") ? -EAGAIN : -EIO;
		}
		usleep(2000);
	}
	in_fd = open(b->corpus_path, O_RDONLY | O_CLOEXEC);
	t0 = mw_now_ns();
	pid[0] = in_fd < 0 ? -errno : mw_bench_spawn(sa.v, in_fd, -1, er[0]);
	if (in_fd >= 0)
		close(in_fd);
	if (pid[0] < 0)
		kill(pid[1], SIGKILL);
	alarm_fired = 0;
	sigaction(SIGALRM, &alarm_sa, NULL);
	alarm(b->timeout_s);
	r->cpu_s = 0;
	while ((pid[0] > 0 && !end[0]) || !end[1]) {
		w = wait4(-1, &wst, 0, &ru);
		if (w < 0 && errno == EINTR && alarm_fired) {
			for (i = 0; i < 2; i++)
				if (pid[i] > 0 && !end[i])
					kill(pid[i], SIGKILL);
			continue;
		}
		if (w < 0 && errno != EINTR)
			break;
		for (i = 0; i < 2; i++)
			if (w == pid[i]) {
				end[i] = mw_now_ns();
				status[i] = wst;
				r->cpu_s += (double)ru.ru_utime.tv_sec +
					    (double)ru.ru_stime.tv_sec +
					    (double)(ru.ru_utime.tv_usec +
						     ru.ru_stime.tv_usec) /
						    1e6;
			}
	}
	alarm(0);
	pthread_join(vt, NULL);
	close(pfd[0]);
	if (pid[0] < 0) {
		snprintf(c->err, sizeof(c->err), "cannot start send: %s",
			 mw_strerror(pid[0]));
		return pid[0];
	}
	r->wall_s = (double)((end[0] > end[1] ? end[0] : end[1]) - t0) / 1e9;
	for (i = 0; i < 2; i++) {
		if (WIFEXITED(status[i]) && !WEXITSTATUS(status[i]))
			continue;
		if (alarm_fired)
			snprintf(c->err, sizeof(c->err), "timed out after %u s",
				 b->timeout_s);
		else
			first_line(er[i], c->err, sizeof(c->err));
		return -EIO;
	}
	if (v.differs || v.got != b->n) {
		snprintf(c->err, sizeof(c->err),
			 "recv's output differs from "
			 "the corpus (%zu of %zu bytes%s)",
			 v.got, b->n, v.differs ? ", content differs" : "");
		return -MW_E_CORRUPT;
	}
	if (stats_final(st[0], 0, r->stage, &r->wire) ||
	    stats_final(st[1], 1, r->stage, &(uint64_t){ 0 })) {
		snprintf(c->err, sizeof(c->err), "no final stats line");
		return -EIO;
	}
	lat_pct(lt[0], lt[1], &r->p50_ms, &r->p99_ms);
	r->ok = true;
	return 0;
}

int mw_bench_conf_run(struct mw_bench *b, struct mw_bench_conf *c, unsigned rep)
{
	int ret = -EAGAIN, tries;

	if (c->err[0]) /* failed before: do not spend time on it again */
		return -EIO;
	for (tries = 0; ret == -EAGAIN && tries < 3; tries++) {
		c->err[0] = 0; /* a port taken by someone else: not ours */
		ret = pair_once(b, c, &c->run[rep]);
	}
	return ret;
}
