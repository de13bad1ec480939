/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of control/: the options of `migwire migrate` (defaults,
 * send options passed through in order, the exec: URI's quoting, usage
 * errors) and the QMP client against a recorded exchange: QEMU's side is
 * written into a socketpair up front (greeting, replies with the ids the
 * client will use, an event in between), and what the client wrote is
 * read back and compared.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "control_int.h"

static int parse(struct migrate_opts *o, const char *const *args)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = (char *)(uintptr_t) "migrate";
	while (*args)
		argv[argc++] = (char *)(uintptr_t)*args++;
	argv[argc] = NULL;
	return mw_migrate_parse(o, argc, argv);
}

static void opts_defaults(void **state)
{
	static const char *const a[] = { "--qmp", "/q", "--to", "h:1", NULL };
	struct migrate_opts o;

	(void)state;
	assert_int_equal(parse(&o, a), -1);
	assert_string_equal(o.qmp, "/q");
	assert_string_equal(o.to, "h:1");
	assert_int_equal(o.dirty_secs, 2);
	assert_int_equal(o.max_downtime_ms, -1);
	assert_int_equal(o.postcopy_after, -1);
	assert_int_equal(o.timeout, 0);
	assert_false(o.postcopy);
	assert_int_equal(o.nsend, 0);
	assert_int_equal(o.timeout_action, MW_TA_PAUSE);
}

static void opts_timeout_action(void **state)
{
	static const char *const pc[] = { "--qmp",	"/q",	     "--to",
					  "h:1",	"--timeout", "9",
					  "--postcopy", NULL };
	static const char *const ta[] = { "--qmp",
					  "/q",
					  "--to",
					  "h:1",
					  "--timeout",
					  "9",
					  "--timeout-action",
					  "postcopy",
					  NULL };
	struct migrate_opts o;

	(void)state;
	assert_int_equal(parse(&o, pc), -1);
	assert_int_equal(o.timeout_action, MW_TA_POSTCOPY);
	assert_int_equal(parse(&o, ta), -1);
	assert_int_equal(o.timeout_action, MW_TA_POSTCOPY);
	assert_true(o.postcopy);
}

static void opts_send_argv(void **state)
{
	static const char *const a[] = { "--qmp",      "/q",
					 "--to",       "h:1",
					 "--channels", "4",
					 "--no-tls",   "--max-bandwidth",
					 "1Gbit",      "--max-downtime",
					 "250",	       "--postcopy-after",
					 "7",	       "--compress",
					 "it's",       NULL };
	struct migrate_opts o;
	struct mw_send_argv sa;
	char uri[512];

	(void)state;
	assert_int_equal(parse(&o, a), -1);
	assert_int_equal(o.max_bw, 125000000);
	assert_int_equal(o.max_downtime_ms, 250);
	assert_int_equal(o.postcopy_after, 7);
	assert_true(o.postcopy);
	assert_int_equal(mw_migrate_send_argv(&sa, &o, "/bin/mw", 42), 0);
	assert_int_equal(sa.argc, 13);
	assert_string_equal(sa.argv[0], "/bin/mw");
	assert_string_equal(sa.argv[1], "send");
	assert_string_equal(sa.argv[3], "h:1");
	assert_string_equal(sa.argv[4], "--channels");
	assert_string_equal(sa.argv[6], "--no-tls");
	assert_string_equal(sa.argv[7], "--max-bandwidth");
	assert_string_equal(sa.argv[8], "1Gbit");
	assert_string_equal(sa.argv[10], "it's");
	assert_string_equal(sa.argv[12], "42");
	assert_null(sa.argv[13]);
	assert_int_equal(mw_migrate_exec_uri(uri, sizeof(uri), &sa), 0);
	assert_string_equal(uri, "exec:'/bin/mw' 'send' '--to' 'h:1' "
				 "'--channels' '4' '--no-tls' "
				 "'--max-bandwidth' '1Gbit' '--compress' "
				 "'it'\\''s' '--qemu-pid' '42'");
	assert_int_equal(mw_migrate_exec_uri(uri, 20, &sa), -E2BIG);
}

/* --join-token reaches send as given: QEMU runs the exec: URI from its own
 * directory, hence the absolute path in the docs */
static void opts_join_token(void **state)
{
	static const char *const a[] = { "--qmp",	  "/q",
					 "--to",	  "h:1",
					 "--no-tls",	  "--join-token",
					 "/etc/mw/token", NULL };
	struct migrate_opts o;
	struct mw_send_argv sa;

	(void)state;
	assert_int_equal(parse(&o, a), -1);
	assert_int_equal(mw_migrate_send_argv(&sa, &o, "/bin/mw", 0), 0);
	assert_string_equal(sa.argv[5], "--join-token");
	assert_string_equal(sa.argv[6], "/etc/mw/token");
}

/* --reconnect-timeout (how long a lost channel may take to come back)
 * reaches send as given */
static void opts_reconnect_timeout(void **state)
{
	static const char *const a[] = { "--qmp",    "/q",
					 "--to",     "h:1",
					 "--no-tls", "--reconnect-timeout",
					 "5",	     NULL };
	struct migrate_opts o;
	struct mw_send_argv sa;

	(void)state;
	assert_int_equal(parse(&o, a), -1);
	assert_int_equal(mw_migrate_send_argv(&sa, &o, "/bin/mw", 0), 0);
	assert_string_equal(sa.argv[5], "--reconnect-timeout");
	assert_string_equal(sa.argv[6], "5");
}

/* Socket mode: --listen reaches send's command line, multifd stays ours. */
static void opts_socket_mode(void **state)
{
	static const char *const a[] = { "--qmp",
					 "/q",
					 "--to",
					 "h:1",
					 "--qemu-multifd",
					 "3",
					 "--listen",
					 "unix:/run/s.sock",
					 NULL };
	struct migrate_opts o;
	struct mw_send_argv sa;

	(void)state;
	assert_int_equal(parse(&o, a), -1);
	assert_string_equal(o.listen, "unix:/run/s.sock");
	assert_int_equal(o.qemu_multifd, 3);
	assert_int_equal(mw_migrate_send_argv(&sa, &o, "/bin/mw", 0), 0);
	assert_int_equal(sa.argc, 6);
	assert_string_equal(sa.argv[4], "--listen");
	assert_string_equal(sa.argv[5], "unix:/run/s.sock");
}

static void opts_usage_errors(void **state)
{
	static const char *const bad[][10] = {
		{ "--qmp", "/q", NULL },			 /* no --to */
		{ "--to", "h:1", NULL },			 /* no --qmp */
		{ "--qm", "/q", "--to", "h:1", NULL },		 /* prefix */
		{ "--qmp", "/q", "--to", "h:1", "extra", NULL }, /* operand */
		{ "--qmp", "/q", "--to", "h:1", "--max-downtime", "0", NULL },
		{ "--qmp", "/q", "--to", "h:1", "--max-bandwidth", "1Gb",
		  NULL },
		{ "--qmp", "/q", "--to", "h:1", "--timeout", "3",
		  "--postcopy-after", "3" },
		{ "--qmp", "/q", "--to", "h:1", "--timeout", NULL },
		{ "--qmp", "/q", "--to", "h:1", "--timeout-action", "cancel",
		  NULL }, /* no --timeout */
		{ "--qmp", "/q", "--to", "h:1", "--timeout", "9",
		  "--timeout-action", "stop", NULL },
		/* socket mode: unix: only, once; multifd needs it */
		{ "--qmp", "/q", "--to", "h:1", "--qemu-multifd", "2", NULL },
		{ "--qmp", "/q", "--to", "h:1", "--listen", "tcp:h:2", NULL },
		{ "--qmp", "/q", "--to", "h:1", "--listen", "unix:", NULL },
		{ "--qmp", "/q", "--to", "h:1", "--listen", "unix:/a",
		  "--listen", "unix:/b", NULL },
		{ "--qmp", "/q", "--to", "h:1", "--listen", "unix:/a",
		  "--qemu-multifd", "64", NULL },
	};
	struct migrate_opts o;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(&o, bad[i]) != 2)
			fail_msg("case %zu was accepted", i);
}

/* QEMU's side of a session, in the order it would send it. */
static const char recorded[] =
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, "
	"\"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n"
	"{\"return\": {}, \"id\": 1}\r\n"
	"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": "
	"\"MIGRATION\", \"data\": {\"status\": \"setup\"}}\r\n"
	"{\"return\": {\"status\": \"active\", \"ram\": {\"total\": 100}}, "
	"\"id\": 2}\r\n"
	"{\"id\": 3, \"error\": {\"class\": \"GenericError\", \"desc\": "
	"\"There's a migration process in progress\"}}\r\n";

static void qmp_recorded(void **state)
{
	struct json_object *r = NULL;
	struct mw_err err = { 0 };
	static struct mw_qmp q;
	char sent[1024];
	ssize_t n;
	int sv[2], ret;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], recorded, sizeof(recorded) - 1),
			 (ssize_t)sizeof(recorded) - 1);
	assert_int_equal(mw_qmp_open_fd(&q, sv[0], &err), 0);
	assert_int_equal(q.major, 10);
	assert_int_equal(q.peer_pid, getpid());
	assert_int_equal(mw_qmp_exec(&q, "query-migrate", NULL, &r, &err), 0);
	assert_string_equal(mw_json_str(r, "status", ""), "active");
	assert_int_equal(mw_json_int(mw_json_obj(r, "ram"), "total", 0), 100);
	json_object_put(r);
	assert_int_equal(q.events, 1);
	assert_int_equal(mw_qmp_exec(&q, "migrate", NULL, NULL, &err),
			 -MW_E_PEER);
	assert_string_equal(err.msg, "migrate: There's a migration process "
				     "in progress");
	n = read(sv[1], sent, sizeof(sent) - 1);
	assert_true(n > 0);
	sent[n] = '\0';
	assert_string_equal(sent,
			    "{\"execute\":\"qmp_capabilities\",\"id\":1}\n"
			    "{\"execute\":\"query-migrate\",\"id\":2}\n"
			    "{\"execute\":\"migrate\",\"id\":3}\n");
	/* QEMU going away is an error, not a hang */
	close(sv[1]);
	ret = mw_qmp_exec(&q, "query-status", NULL, NULL, &err);
	assert_true(ret == -EPIPE || ret == -MW_E_CLOSED);
	mw_qmp_close(&q);
}

/* send's stats line at elapsed t with b bytes from QEMU so far */
static struct json_object *stats_line(double t, double b, bool final)
{
	char s[256];

	snprintf(s, sizeof(s),
		 "{\"final\":%s,\"elapsed_s\":%.3f,\"bytes_in\":%.0f,"
		 "\"rate_in_MiBps\":1.0}",
		 final ? "true" : "false", t, b);
	return json_tokener_parse(s);
}

/* feeds one line, returns what feed returned */
static uint64_t feed(struct mw_switchover *sw, double t, double b)
{
	struct json_object *j = stats_line(t, b, false);
	uint64_t r = mw_switchover_feed(sw, j);

	json_object_put(j);
	return r;
}

static void switchover_window(void **state)
{
	const double M = 1024.0 * 1024.0;
	struct mw_switchover sw;
	struct json_object *j;
	int i;

	(void)state;
	/* QEMU without the parameter: nothing, ever */
	mw_switchover_init(&sw, false, 0);
	assert_int_equal(feed(&sw, 1, 0), 0);
	assert_int_equal(feed(&sw, 2, 100 * M), 0);
	/* one line is no rate; nor is a span under a second */
	mw_switchover_init(&sw, true, 0);
	assert_int_equal(feed(&sw, 1, 0), 0);
	assert_int_equal(feed(&sw, 1.5, 50 * M), 0);
	assert_int_equal(feed(&sw, 2, 100 * M), (uint64_t)(100 * M));
	/* the same line again adds nothing */
	assert_int_equal(feed(&sw, 2, 100 * M), 0);
	sw.set_bps = (uint64_t)(100 * M);
	/* within a tenth of what QEMU has: not set again */
	assert_int_equal(feed(&sw, 3, 205 * M), 0);
	/* the window moves: after a slow stretch the rate of the last five
	 * seconds, not since the start */
	for (i = 4; i <= 12; i++)
		feed(&sw, i, 205 * M + (i - 3) * 10 * M);
	assert_true(sw.n <= MW_SWITCHOVER_SAMPLES);
	assert_true(sw.t[sw.n - 1] - sw.t[0] >= 5.0);
	assert_true(sw.t[sw.n - 1] - sw.t[1] < 5.0);
	assert_int_equal(feed(&sw, 13, 305 * M), (uint64_t)(10 * M));
	/* a stalled stream (QEMU stopped) is no rate: 0 would give QEMU
	 * back its own estimate */
	mw_switchover_init(&sw, true, 0);
	feed(&sw, 1, 7 * M);
	assert_int_equal(feed(&sw, 3, 7 * M), 0);
	/* the final line averages the run: ignored */
	j = stats_line(9, 900 * M, true);
	assert_int_equal(mw_switchover_feed(&sw, j), 0);
	json_object_put(j);
	/* --max-bandwidth set first: replaced once measured differs */
	mw_switchover_init(&sw, true, (uint64_t)(50 * M));
	feed(&sw, 1, 0);
	assert_int_equal(feed(&sw, 2, 52 * M), 0);
	assert_int_equal(feed(&sw, 3, 150 * M), (uint64_t)(75 * M));
}

/* QEMU's side while switchover bandwidth is tracked */
static const char recorded_sw[] =
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, "
	"\"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}\r\n"
	"{\"return\": {}, \"id\": 1}\r\n"
	"{\"return\": {}, \"id\": 2}\r\n"
	"{\"id\": 3, \"error\": {\"class\": \"GenericError\", \"desc\": "
	"\"Parameter 'avail-switchover-bandwidth' is unexpected\"}}\r\n";

static void switchover_recorded(void **state)
{
	const double M = 1024.0 * 1024.0;
	struct mw_err err = { 0 };
	static struct mw_qmp q;
	struct mw_switchover sw;
	struct json_object *j;
	char sent[1024];
	ssize_t n;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], recorded_sw, sizeof(recorded_sw) - 1),
			 (ssize_t)sizeof(recorded_sw) - 1);
	assert_int_equal(mw_qmp_open_fd(&q, sv[0], &err), 0);
	mw_switchover_init(&sw, true, 0);
	/* ticks: 1 s, 2 s (64 MiB/s: set), 3 s (within a tenth: not set) */
	for (n = 1; n <= 3; n++) {
		j = stats_line((double)n, (double)(n - 1) * 64 * M, false);
		mw_switchover_tick(&sw, &q, j);
		json_object_put(j);
	}
	assert_true(sw.measured);
	assert_int_equal(sw.set_bps, (uint64_t)(64 * M));
	/* 4 s: 256 MiB over the 3 s window; QEMU refuses: no more tries */
	j = stats_line(4, 256 * M, false);
	mw_switchover_tick(&sw, &q, j);
	json_object_put(j);
	assert_false(sw.on);
	assert_int_equal(sw.set_bps, (uint64_t)(64 * M));
	j = stats_line(5, 512 * M, false);
	mw_switchover_tick(&sw, &q, j);
	json_object_put(j);
	n = read(sv[1], sent, sizeof(sent) - 1);
	assert_true(n > 0);
	sent[n] = '\0';
	assert_string_equal(
		sent, "{\"execute\":\"qmp_capabilities\",\"id\":1}\n"
		      "{\"execute\":\"migrate-set-parameters\",\"arguments\":{"
		      "\"avail-switchover-bandwidth\":67108864},\"id\":2}\n"
		      "{\"execute\":\"migrate-set-parameters\",\"arguments\":{"
		      "\"avail-switchover-bandwidth\":89478485},\"id\":3}\n");
	close(sv[1]);
	mw_qmp_close(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(opts_defaults),
		cmocka_unit_test(opts_send_argv),
		cmocka_unit_test(opts_reconnect_timeout),
		cmocka_unit_test(opts_join_token),
		cmocka_unit_test(opts_socket_mode),
		cmocka_unit_test(opts_timeout_action),
		cmocka_unit_test(opts_usage_errors),
		cmocka_unit_test(qmp_recorded),
		cmocka_unit_test(switchover_window),
		cmocka_unit_test(switchover_recorded),
	};

	return cmocka_run_group_tests_name("control/migrate", tests, NULL,
					   NULL);
}
