/* SPDX-License-Identifier: MIT */
/*
 * Preflight of `migwire migrate`: everything checked before anything
 * changes on the source, each failure one line that says what to fix, and
 * the dirty rate measured (calc-dirty-rate) with what it means for
 * convergence, and the receiver asked whether it would take the session
 * (send --probe). Context: the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control_int.h"
#include "mw_log.h"

#define MIB (1024.0 * 1024.0)

/* QEMU's name of a migration status that is not over. */
static bool migration_active(const char *st)
{
	static const char *const over[] = { "none", "completed", "failed",
					    "cancelled" };
	size_t i;

	for (i = 0; i < sizeof(over) / sizeof(over[0]); i++)
		if (!strcmp(st, over[i]))
			return false;
	return true;
}

static bool has_capability(struct json_object *caps, const char *name)
{
	size_t i, n = caps ? json_object_array_length(caps) : 0;

	for (i = 0; i < n; i++)
		if (!strcmp(mw_json_str(json_object_array_get_idx(caps, i),
					"capability", ""),
			    name))
			return true;
	return false;
}

/* One QMP query; on failure says so and returns NULL. */
static struct json_object *query(struct mw_qmp *q, const char *cmd)
{
	struct json_object *r = NULL;
	struct mw_err err = { 0 };

	if (mw_qmp_exec(q, cmd, NULL, &r, &err)) {
		MW_LOG(MW_LOG_ERR, "%s", err.msg);
		return NULL;
	}
	return r;
}

/* The string key of a query's reply, copied into buf; -1 if the query
 * failed (said why). */
static int query_str(struct mw_qmp *q, const char *cmd, const char *key,
		     const char *dflt, char *buf, size_t cap)
{
	struct json_object *r = query(q, cmd);

	if (!r)
		return -1;
	snprintf(buf, cap, "%s", mw_json_str(r, key, dflt));
	json_object_put(r);
	return 0;
}

/* The VM runs and no migration is under way. */
static int check_state(struct mw_qmp *q)
{
	char st[64];

	if (query_str(q, "query-status", "status", "?", st, sizeof(st)))
		return 1;
	if (strcmp(st, "running")) {
		MW_LOG(MW_LOG_ERR,
		       "the VM is not running (status '%s'): start it (QMP "
		       "cont) before migrating it",
		       st);
		return 1;
	}
	if (query_str(q, "query-migrate", "status", "none", st, sizeof(st)))
		return 1;
	if (migration_active(st)) {
		MW_LOG(MW_LOG_ERR,
		       "a migration is already active (status '%s'): wait "
		       "for it to end, or cancel it (QMP migrate_cancel)",
		       st);
		return 1;
	}
	return 0;
}

static int check_caps(struct mw_qmp *q, const struct migrate_opts *o,
		      struct migrate_src *src)
{
	const struct {
		bool want;
		const char *cap, *opts;
	} need[] = {
		{ o->postcopy, "postcopy-ram", "--postcopy/--postcopy-after" },
		{ o->auto_converge, "auto-converge", "--auto-converge" },
		{ o->qemu_multifd > 0, "multifd", "--qemu-multifd" },
	};
	struct json_object *caps = query(q, "query-migrate-capabilities");
	struct json_object *par;
	size_t i;
	int ret = 0;

	if (!caps)
		return 1;
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (!need[i].want || has_capability(caps, need[i].cap))
			continue;
		MW_LOG(MW_LOG_ERR, "QEMU %d.%d has no %s capability: drop %s",
		       q->major, q->minor, need[i].cap, need[i].opts);
		ret = 1;
	}
	json_object_put(caps);
	par = query(q, "query-migrate-parameters");
	if (!par)
		return 1;
	src->has_switchover_bw =
		mw_json_obj(par, "avail-switchover-bandwidth") != NULL;
	json_object_put(par);
	return ret;
}

/* Runs argv (send) with stdout and stderr into out; returns its wait
 * status, or -1 when it could not run. */
static int run_captured(const char *self, char **argv, char *out, size_t cap)
{
	size_t n = 0;
	ssize_t got;
	int fds[2], st;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (!pid) {
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		execv(self, argv);
		_exit(127);
	}
	close(fds[1]);
	/* a Ctrl-C here reaches send too (same process group) and ends it */
	while ((got = read(fds[0], out + n, cap - 1 - n)) != 0) {
		if (got < 0 && errno != EINTR)
			break;
		if (got > 0 && (n += (size_t)got) == cap - 1)
			n = 0; /* keep the tail, which has the last line */
	}
	out[n] = '\0';
	close(fds[0]);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

/*
 * The send options and the receiver, checked by send itself before QEMU
 * is touched: `migwire send ... --probe` parses them, loads the
 * credentials, and asks the receiver at --to with a PROBE whether it would
 * take this session (docs/protocol.md); the receiver answers without
 * starting it. Returns 0, or the exit status (2: usage), having said why
 * in one line.
 */
static int check_send(const struct migrate_opts *o, const char *self)
{
	struct mw_send_argv sa;
	char out[4096];
	int st;

	if (mw_migrate_send_argv(&sa, o, self, 0) ||
	    mw_send_argv_add(&sa, "--probe")) {
		MW_LOG(MW_LOG_ERR, "the send command line is too long");
		return 2;
	}
	st = run_captured(self, sa.argv, out, sizeof(out));
	if (st == -1) {
		MW_LOG(MW_LOG_ERR, "cannot run %s send: %s", self,
		       strerror(errno));
		return 1;
	}
	if (WIFEXITED(st) && !WEXITSTATUS(st)) {
		MW_LOG(MW_LOG_WARN, "%s", mw_send_last_line(out));
		return 0;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 2) {
		MW_LOG(MW_LOG_ERR, "migwire send refuses these options: %s",
		       mw_send_last_line(out));
		return 2;
	}
	MW_LOG(MW_LOG_ERR, "%s%s; nothing was changed on the source",
	       mw_migrate_interrupted ? "interrupted: " : "",
	       mw_send_last_line(out));
	return 1;
}

/* calc-dirty-rate for secs, then the rate in MiB/s, or -1. */
static double dirty_rate(struct mw_qmp *q, uint32_t secs)
{
	struct json_object *args = json_object_new_object();
	struct mw_err err = { 0 };
	double rate = -1;
	int waited;

	json_object_object_add(args, "calc-time",
			       json_object_new_int64((int64_t)secs));
	if (mw_qmp_exec(q, "calc-dirty-rate", args, NULL, &err)) {
		MW_LOG(MW_LOG_WARN, "no dirty rate: %s", err.msg);
		return -1;
	}
	MW_LOG(MW_LOG_WARN, "measuring the dirty rate for %u s", secs);
	for (waited = 0; waited < (int)secs * 1000 + 10000; waited += 200) {
		struct json_object *r;

		mw_migrate_nap(200);
		if (mw_migrate_interrupted)
			return -1;
		r = query(q, "query-dirty-rate");
		if (!r)
			return -1;
		if (!strcmp(mw_json_str(r, "status", ""), "measured"))
			rate = (double)mw_json_int(r, "dirty-rate", -1);
		json_object_put(r);
		if (rate >= 0)
			return rate;
	}
	MW_LOG(MW_LOG_WARN, "no dirty rate: calc-dirty-rate did not finish");
	return -1;
}

/*
 * Precopy converges when QEMU sends faster than the VM dirties: each pass
 * then leaves less to send, until the rest fits --max-downtime. The link
 * figure is --max-bandwidth before the migration; without it migrate.c
 * measures what migwire carries once the first pass has run a few seconds
 * and calls this then: a guess at the link would make the prediction
 * worse than none.
 */
void mw_migrate_predict(const struct migrate_opts *o, double d, double bw,
			const char *what)
{
	const char *fix =
		o->postcopy || o->auto_converge ?
			"" :
			"; consider --auto-converge, --postcopy-after "
			"SECS or a stronger --compress-level";

	if (d >= bw)
		MW_LOG(MW_LOG_WARN,
		       "dirty rate %.0f MiB/s >= %s %.0f MiB/s: precopy will "
		       "not converge%s",
		       d, what, bw, fix);
	else if (d >= bw / 2)
		MW_LOG(MW_LOG_WARN,
		       "dirty rate %.0f MiB/s, over half of %s %.0f MiB/s: "
		       "precopy may take many passes%s",
		       d, what, bw, fix);
	else
		MW_LOG(MW_LOG_WARN,
		       "dirty rate %.0f MiB/s, well under %s %.0f MiB/s: "
		       "precopy should converge",
		       d, what, bw);
}

static void predict(const struct migrate_opts *o, double d)
{
	if (!o->max_bw) {
		MW_LOG(MW_LOG_WARN,
		       "dirty rate %.0f MiB/s (whether precopy converges "
		       "follows once migwire has measured what it carries)",
		       d);
		return;
	}
	/* a cap on wire bytes: compression carries more guest memory */
	mw_migrate_predict(o, d, (double)o->max_bw / MIB,
			   "--max-bandwidth (wire; compression adds to it)");
}

int mw_migrate_preflight(struct mw_qmp *q, const struct migrate_opts *o,
			 const char *self, struct migrate_src *src)
{
	struct json_object *ver = query(q, "query-version");
	int ret;

	src->dirty_mib_s = -1;
	if (!ver)
		return 1;
	q->major = (int)mw_json_int(mw_json_obj(ver, "qemu"), "major", 0);
	q->minor = (int)mw_json_int(mw_json_obj(ver, "qemu"), "minor", 0);
	q->micro = (int)mw_json_int(mw_json_obj(ver, "qemu"), "micro", 0);
	json_object_put(ver);
	if (q->major < 7 || (q->major == 7 && q->minor < 2))
		MW_LOG(MW_LOG_WARN,
		       "QEMU %d.%d.%d is older than 7.2, the oldest tested",
		       q->major, q->minor, q->micro);
	ret = check_state(q);
	ret = ret ?: check_caps(q, o, src);
	if (ret)
		return 1;
	ret = check_send(o, self);
	if (ret)
		return ret;
	if (o->dirty_secs) {
		src->dirty_mib_s = dirty_rate(q, o->dirty_secs);
		if (mw_migrate_interrupted)
			return 1;
		if (src->dirty_mib_s >= 0)
			predict(o, src->dirty_mib_s);
	}
	return 0;
}
