/* SPDX-License-Identifier: MIT */
/*
 * `migwire migrate`: drives one live migration of a running QEMU through
 * QMP. Preflight (preflight.c), the parameters, `migrate` to an exec: URI
 * that runs this binary's `send`, then once a second query-migrate for a
 * progress line, --postcopy-after and --timeout, until QEMU reports the
 * result. On failure or Ctrl-C the migration is cancelled and a VM we
 * paused is resumed, so the source runs on. Context: the main thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control_int.h"
#include "mw_control.h"
#include "mw_log.h"

#define MIB (1024.0 * 1024.0)
/* QEMU's own cap when migwire applies --max-bandwidth: high enough never to
 * limit it (64 GiB/s), as QEMU 7.2 has no "unlimited" value */
#define QEMU_BW_LIFTED (64ull << 30)

static void on_signal(int sig)
{
	mw_migrate_interrupted = sig;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int exec_cmd(struct mw_qmp *q, const char *cmd, struct json_object *args)
{
	struct mw_err err = { 0 };
	int ret = mw_qmp_exec(q, cmd, args, NULL, &err);

	if (ret)
		MW_LOG(MW_LOG_ERR, "%s", err.msg);
	return ret;
}

static int set_caps(struct mw_qmp *q, const struct migrate_opts *o)
{
	struct json_object *caps = json_object_new_array();
	struct json_object *args = json_object_new_object();
	static const char *const names[] = { "auto-converge", "postcopy-ram",
					     "multifd" };
	bool on[] = { o->auto_converge, o->postcopy, o->qemu_multifd > 0 };
	size_t i;

	for (i = 0; i < 3; i++) {
		struct json_object *c = json_object_new_object();

		json_object_object_add(c, "capability",
				       json_object_new_string(names[i]));
		json_object_object_add(c, "state",
				       json_object_new_boolean(on[i]));
		json_object_array_add(caps, c);
	}
	json_object_object_add(args, "capabilities", caps);
	return exec_cmd(q, "migrate-set-capabilities", args);
}

static int set_params(struct mw_qmp *q, const struct migrate_opts *o,
		      const struct migrate_src *src)
{
	struct json_object *p = json_object_new_object();

	/* migwire send carries the cap over all channels; QEMU's would
	 * only limit how fast it fills migwire's pipe */
	json_object_object_add(p, "max-bandwidth",
			       json_object_new_int64((int64_t)QEMU_BW_LIFTED));
	if (o->qemu_multifd)
		json_object_object_add(
			p, "multifd-channels",
			json_object_new_int64((int64_t)o->qemu_multifd));
	if (o->max_downtime_ms > 0)
		json_object_object_add(
			p, "downtime-limit",
			json_object_new_int64(o->max_downtime_ms));
	/* QEMU else takes its bandwidth from how fast migwire drains the
	 * pipe, which is not the wire rate, and mispredicts the downtime */
	if (o->max_bw && src->has_switchover_bw)
		json_object_object_add(
			p, "avail-switchover-bandwidth",
			json_object_new_int64((int64_t)o->max_bw));
	return exec_cmd(q, "migrate-set-parameters", p);
}

/*
 * What the watch loop did to the source, to undo on failure.
 * Locking: none; the main thread's, on its stack.
 */
struct watch {
	double t0;
	bool paused;			/* we stopped the VM (--timeout) ... */
	double pause_t;			/* ... at this time */
	bool postcopy;			/* we switched to postcopy */
	bool cancelled;			/* we asked for migrate_cancel ... */
	double cancel_t;		/* ... at this time */
	const struct mw_send_stats *ss; /* send's stats file */
	struct mw_send_bg *bg;		/* socket mode: the send we run */
	const char *self;		/* this binary: exec: mode's send */
	const struct migrate_opts *o;
	double dirty_mib_s;	 /* the preflight's; -1 none */
	struct mw_switchover sw; /* avail-switchover-bandwidth */
	bool predicted;		 /* the measured prediction was said */
};

/* once migwire has carried the first pass for a few seconds */
#define PREDICT_AFTER_S 2.0

/* QEMU 7.2 stays "cancelling" until its exec: command exits, which a send
 * stuck in a handshake does only at its own --timeout: wait this long */
#define CANCEL_WAIT_S 15.0
/* socket mode: how long send may take after QEMU completed (the last
 * bytes cross the wire, the destination loads them and closes) */
#define SEND_DONE_WAIT_S 60

/*
 * migrate_cancel, and the send QEMU runs is told to stop: QEMU's main loop
 * waits for its exec: command to exit, and a send whose stream was cut
 * short waits for the receiver (socket mode: send is ours, stopped when
 * the result is in).
 */
static void cancel(struct mw_qmp *q, struct watch *w, double el)
{
	w->cancelled = !exec_cmd(q, "migrate_cancel", NULL);
	w->cancel_t = el;
	if (w->cancelled && !w->bg)
		mw_send_stop_exec(q->peer_pid, w->self);
}

/* A VM that --timeout paused runs again: the migration did not take it. */
static void resume_vm(struct mw_qmp *q, struct watch *w)
{
	if (w->paused && !exec_cmd(q, "cont", NULL)) {
		w->paused = false;
		MW_LOG(MW_LOG_WARN,
		       "the source VM was paused by --timeout: resumed");
	}
}

/* send's stats line; final: wait up to 3 s for its last one. */
static struct json_object *send_line(const struct mw_send_stats *ss, bool final)
{
	struct json_object *j = mw_send_stats_last(ss);
	int i;

	for (i = 0; final && i < 30; i++) {
		if (j && json_object_get_boolean(mw_json_obj(j, "final")))
			break;
		json_object_put(j);
		mw_migrate_nap(100);
		j = mw_send_stats_last(ss);
	}
	return j;
}

/*
 * ", wire 41.9 MiB/s, ratio 3.05" from send's stats line j (borrowed), or
 * "". final: send's totals instead, from its last line.
 */
static void wire_line(struct json_object *j, bool final, char *buf, size_t cap)
{
	buf[0] = '\0';
	if (!j)
		return;
	if (!final)
		snprintf(buf, cap, ", wire %.1f MiB/s, ratio %.2f",
			 mw_json_double(j, "rate_wire_MiBps", 0),
			 mw_json_double(j, "ratio", 0));
	else if (json_object_get_boolean(mw_json_obj(j, "final")))
		snprintf(buf, cap, ", %.1f MiB on the wire (ratio %.2f)",
			 mw_json_double(j, "bytes_wire", 0) / MIB,
			 mw_json_double(j, "ratio", 0));
}

/* The same from send's stats file; final: wait for its last line. */
static void wire_note(const struct mw_send_stats *ss, bool final, char *buf,
		      size_t cap)
{
	struct json_object *j = send_line(ss, final);

	wire_line(j, final, buf, cap);
	json_object_put(j);
}
static void progress(struct json_object *m, const char *st, double el, bool tty,
		     struct json_object *j, const struct mw_switchover *sw)
{
	struct json_object *ram = mw_json_obj(m, "ram");
	double total = (double)mw_json_int(ram, "total", 0);
	double rem = (double)mw_json_int(ram, "remaining", 0);
	double xfer = (double)mw_json_int(ram, "transferred", 0);
	double page = (double)mw_json_int(ram, "page-size", 4096);
	double dirty = (double)mw_json_int(ram, "dirty-pages-rate", 0) * page;
	int64_t down = mw_json_int(m, "expected-downtime", -1);
	char dt[32] = "-", wire[96], so[64] = "";

	if (down >= 0)
		snprintf(dt, sizeof(dt), "%" PRId64 " ms", down);
	wire_line(j, false, wire, sizeof(wire));
	if (sw->measured)
		snprintf(so, sizeof(so), ", switchover %.1f MiB/s (measured)",
			 (double)sw->set_bps / MIB);
	mw_log_progress(tty, false,
			"%s %.0fs: %.0f%% of RAM, %.1f MiB sent, %.1f MiB "
			"left, pass %" PRId64 ", dirty %.1f MiB/s, "
			"expected downtime %s%s%s",
			st, el, total > 0 ? 100.0 * (total - rem) / total : 0.0,
			xfer / MIB, rem / MIB,
			mw_json_int(ram, "dirty-sync-count", 0), dirty / MIB,
			dt, wire, so);
}

/* --postcopy-after and --timeout, once status is "active". */
static void deadlines(struct mw_qmp *q, const struct migrate_opts *o,
		      struct watch *w, double el)
{
	if (!w->postcopy && o->postcopy_after >= 0 &&
	    el >= (double)o->postcopy_after) {
		MW_LOG(MW_LOG_WARN, "switching to postcopy after %.0f s", el);
		w->postcopy = !exec_cmd(q, "migrate-start-postcopy", NULL);
		return;
	}
	if (!o->timeout || el < (double)o->timeout || w->paused || w->postcopy)
		return;
	switch (o->timeout_action) {
	case MW_TA_POSTCOPY:
		MW_LOG(MW_LOG_WARN,
		       "--timeout %" PRId64 " s: switching to "
		       "postcopy",
		       o->timeout);
		w->postcopy = !exec_cmd(q, "migrate-start-postcopy", NULL);
		break;
	case MW_TA_CANCEL:
		MW_LOG(MW_LOG_WARN,
		       "--timeout %" PRId64 " s: cancelling the migration",
		       o->timeout);
		cancel(q, w, el);
		break;
	default:
		MW_LOG(MW_LOG_WARN,
		       "--timeout %" PRId64 " s: pausing the VM so that the "
		       "migration completes",
		       o->timeout);
		w->paused = !exec_cmd(q, "stop", NULL);
		w->pause_t = el;
	}
}

/* --json: the report, in every outcome (m, j: NULL when unknown). */
static void json_report(const struct watch *w, struct json_object *m,
			struct json_object *j, double el, const char *send_err)
{
	struct mw_migrate_outcome out = {
		.wall_s = el,
		.postcopy = w->postcopy,
		.paused = w->paused,
		.paused_s = w->paused ? el - w->pause_t : 0,
		.cancelled = w->cancelled,
		.dirty_mib_s = w->dirty_mib_s,
		.send_error = send_err,
		.switchover_bps = w->sw.measured ? w->sw.set_bps : 0,
	};

	if (w->o->json)
		mw_migrate_report_json(stdout, m, j, &out);
}

/* The end: the result line and the exit status. */
static int result(struct mw_qmp *q, struct json_object *m, struct watch *w,
		  double el)
{
	const char *st = mw_json_str(m, "status", "?");
	struct json_object *ram = mw_json_obj(m, "ram");
	bool ok = !strcmp(st, "completed");
	char how[96] = "", wire[96];
	const char *why, *send_err = NULL;
	struct json_object *j;
	int rc;

	/* socket mode: the destination has it all once send has its ACK */
	if (w->bg) {
		rc = mw_send_bg_wait(w->bg, ok ? SEND_DONE_WAIT_S : 5, !ok);
		if (ok && rc) {
			send_err = rc < 0 ? "no ACK from the receiver yet" :
					    w->bg->reason;
			MW_LOG(MW_LOG_ERR,
			       "QEMU completed, but migwire send %s: %s",
			       rc < 0 ? "has not finished" : "failed",
			       send_err);
		}
	}
	if (ok && !send_err) {
		wire_note(w->ss, true, wire, sizeof(wire));
		/* QEMU's downtime starts when it stops the VM itself, not at
		 * our pause: say how long the VM really stood still */
		if (w->paused)
			snprintf(how, sizeof(how),
				 " (paused by --timeout for the last %.1f s)",
				 el - w->pause_t);
		else if (w->postcopy)
			snprintf(how, sizeof(how), " (postcopy)");
		MW_LOG(MW_LOG_WARN,
		       "completed in %.2f s, downtime %" PRId64 " ms, %.1f "
		       "MiB transferred%s%s",
		       (double)mw_json_int(m, "total-time", 0) / 1000.0,
		       mw_json_int(m, "downtime", -1),
		       (double)mw_json_int(ram, "transferred", 0) / MIB, wire,
		       how);
	}
	/* send's own reason went to QEMU's stderr; its stats file has it */
	j = send_line(w->ss, true);
	if (!ok) {
		resume_vm(q, w);
		why = mw_json_str(j, "result", "ok");
		if (!strcmp(why, "ok") && w->bg && w->bg->reason[0])
			why = w->bg->reason; /* it failed before its stats */
		MW_LOG(MW_LOG_ERR,
		       "migration %s%s%s%s%s; the source VM keeps running", st,
		       mw_json_str(m, "error-desc", NULL) ? ": " : "",
		       mw_json_str(m, "error-desc", ""),
		       strcmp(why, "ok") ? "; migwire send: " : "",
		       strcmp(why, "ok") ? why : "");
	}
	json_report(w, m, j, el, send_err);
	json_object_put(j);
	return ok && !send_err ? 0 : 1;
}

static bool over(const char *st)
{
	return !strcmp(st, "completed") || !strcmp(st, "failed") ||
	       !strcmp(st, "cancelled");
}

static int watch(struct mw_qmp *q, const struct migrate_opts *o,
		 const struct mw_send_stats *ss, struct mw_send_bg *bg,
		 const char *self, const struct migrate_src *src)
{
	struct watch w = { .t0 = now_s(),
			   .self = self,
			   .ss = ss,
			   .bg = bg,
			   .o = o,
			   .dirty_mib_s = src->dirty_mib_s };
	bool tty = isatty(STDERR_FILENO);
	double next = 0;
	int ret;

	/* set_params gave QEMU --max-bandwidth, where it has the parameter */
	mw_switchover_init(&w.sw, src->has_switchover_bw,
			   src->has_switchover_bw ? o->max_bw : 0);
	for (;;) {
		struct json_object *m = NULL;
		struct mw_err err = { 0 };
		double el = now_s() - w.t0;
		const char *st;

		/* once per signal: when QEMU refuses the cancel, asking again
		 * each pass would only repeat its refusal */
		if (mw_migrate_interrupted && !w.cancelled) {
			mw_migrate_interrupted = 0;
			MW_LOG(MW_LOG_WARN, "interrupted: cancelling the "
					    "migration");
			cancel(q, &w, el);
		}
		if (mw_qmp_exec(q, "query-migrate", NULL, &m, &err)) {
			MW_LOG(MW_LOG_ERR, "%s", err.msg);
			json_report(&w, NULL, NULL, el, NULL);
			return 1;
		}
		st = mw_json_str(m, "status", "none");
		if (over(st)) {
			/* the result line erases a progress line on a tty */
			ret = result(q, m, &w, el);
			json_object_put(m);
			return ret;
		}
		if (w.cancelled && el - w.cancel_t > CANCEL_WAIT_S) {
			resume_vm(q, &w);
			MW_LOG(MW_LOG_ERR,
			       "migration cancelled, but QEMU still reports "
			       "'%s': its exec: command has not exited yet; "
			       "the source VM keeps running",
			       st);
			json_report(&w, m, NULL, el, NULL);
			json_object_put(m);
			return 1;
		}
		if (!strcmp(st, "active") && !w.cancelled)
			deadlines(q, o, &w, el);
		if (el >= next) {
			struct json_object *j = send_line(ss, false);

			/* precopy only: QEMU uses it for the switchover */
			if (!strcmp(st, "active") && !w.cancelled &&
			    !w.postcopy)
				mw_switchover_tick(&w.sw, q, j);
			/* measured, not guessed: what send takes from QEMU
			 * per second against the preflight's dirty rate */
			if (!w.predicted && w.dirty_mib_s >= 0 &&
			    w.sw.span_s >= PREDICT_AFTER_S) {
				mw_migrate_predict(o, w.dirty_mib_s,
						   w.sw.rate_bps / MIB,
						   "what migwire carries "
						   "(measured)");
				w.predicted = true;
			}
			progress(m, st, el, tty, j, &w.sw);
			json_object_put(j);
			next = el + 1.0;
		}
		json_object_put(m);
		mw_migrate_nap(200);
	}
}

int mw_cmd_migrate(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct migrate_opts o;
	struct migrate_src src = { 0 };
	struct mw_send_stats ss = { 0 };
	struct mw_send_bg bg = { 0 };
	struct mw_send_argv sargv;
	struct mw_err err = { 0 };
	struct json_object *args;
	struct mw_qmp *q = NULL;
	static char uri[16384];
	char self[PATH_MAX];
	ssize_t n;
	int ret;

	mw_log_set_side("migrate");
	ret = mw_migrate_parse(&o, argc, argv);
	if (ret >= 0)
		return ret;
	/* the binary QEMU runs is this one, installed or in a build tree */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		MW_LOG(MW_LOG_ERR, "/proc/self/exe: %s", strerror(errno));
		return 1;
	}
	self[n] = '\0';
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	q = calloc(1, sizeof(*q));
	if (!q)
		return 1;
	if (mw_qmp_connect(q, o.qmp, &err)) {
		MW_LOG(MW_LOG_ERR, "%s", err.msg);
		ret = 1;
		goto out;
	}
	ret = mw_migrate_preflight(q, &o, self, &src);
	if (mw_migrate_interrupted) {
		MW_LOG(MW_LOG_ERR, "interrupted before migrating: nothing "
				   "changed");
		ret = 1;
		goto out;
	}
	if (ret)
		goto out;
	/*
	 * Not --qemu-pid q->peer_pid: under exec: send's default is the QEMU
	 * that started it, this same one, and an explicit --qemu-pid turns a
	 * QEMU without -name debug-threads=on from a note into an error.
	 */
	MW_LOG(MW_LOG_INFO, "QEMU %d.%d.%d, pid %d", q->major, q->minor,
	       q->micro, (int)q->peer_pid);
	mw_send_stats_setup(&ss, &o, q);
	if (mw_migrate_send_argv(&sargv, &o, self, 0) ||
	    mw_migrate_exec_uri(uri, sizeof(uri), &sargv)) {
		MW_LOG(MW_LOG_ERR, "the send command line is too long");
		ret = 2;
		goto out;
	}
	ret = 1;
	/* socket mode: QEMU connects to the send we run (sockmode.c); first,
	 * so that a send that cannot listen leaves QEMU as it was */
	if (o.listen) {
		if (mw_send_bg_start(&bg, &o, &sargv))
			goto out;
		snprintf(uri, sizeof(uri), "%s", o.listen);
	}
	if (set_caps(q, &o) || set_params(q, &o, &src))
		goto out;
	MW_LOG(MW_LOG_INFO, "migrate %s", uri);
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	if (exec_cmd(q, "migrate", args))
		goto out;
	ret = watch(q, &o, &ss, o.listen ? &bg : NULL, self, &src);
out:
	mw_send_bg_cleanup(&bg);
	mw_send_stats_cleanup(&ss);
	mw_qmp_close(q);
	free(q);
	return ret;
}
