/* SPDX-License-Identifier: MIT */
/*
 * The migwire command line: `migwire send`, `migwire recv`, help, version.
 * Only dispatch lives here: the options are in opts.c and config.c
 * (cli.h), the work is in transport/.
 * `migwire bench` is dispatched to the bench library (bench/mw_bench.h),
 * which owns that command's option table.
 * One table lists every option: getopt_long's array, --help and
 * --print-config are all generated from it. Exit codes: 0 ok, 1 failure,
 * 2 usage.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "mw_bench.h"
#include "mw_control.h"
#include "mw_inspect.h"
#include "mw_log.h"
#include "mw_thread.h"

/* send --probe: for every --to path, one line on stdout when the
 * receiver would take the session there, else the error line; 0 only
 * when every path would */
static int probe(const struct opts *o)
{
	static struct mw_xp_cfg pc; /* one path at a time; main thread */
	unsigned i, n = o->cfg.nr_paths ? o->cfg.nr_paths : 1, bad = 0;

	for (i = 0; i < n; i++) {
		struct mw_xp_probe_res res;
		struct mw_err err = { 0 };
		int ret;

		pc = o->cfg; /* the TLS host name stays the first path's */
		if (o->cfg.nr_paths) {
			memcpy(pc.host, o->cfg.paths[i].host, sizeof(pc.host));
			pc.port = o->cfg.paths[i].port;
		}
		ret = mw_xp_probe(&pc, &res, &err);
		if (ret) {
			mw_log_emit(MW_LOG_ERR, "%s",
				    err.msg[0] ? err.msg : mw_strerror(ret));
			bad++;
			continue;
		}
		printf("receiver %s%s%s%s: ready (protocol %u, %s, --window "
		       "%llu)\n",
		       res.peer, res.peer_id[0] ? " '" : "", res.peer_id,
		       res.peer_id[0] ? "'" : "", (unsigned)res.ok.version,
		       res.ok.endpoints ? "socket mode" : "exec: mode",
		       (unsigned long long)res.ok.window);
	}
	return bad ? 1 : 0;
}

static int run_side(int side, int argc, char **argv)
{
	struct opts o = { 0 };
	struct mw_err err = { 0 };
	int ret;

	ret = cli_parse(&o, side, argc, argv);
	if (ret)
		return ret == 1 ? 0 : 2;
	if (cli_finish(&o, side))
		return 2;
	if (o.place.why[0] && !o.print_config)
		MW_LOG(o.place.warn ? MW_LOG_WARN : MW_LOG_INFO,
		       "placement: %s", o.place.why);
	if (o.print_config) {
		ret = cli_check_config(&o);
		if (!ret)
			cli_print_config(&o, side);
		return ret;
	}
	if (o.probe)
		return probe(&o);
	/* the main thread too stays off the VM's vCPUs (best effort: the
	 * workers' own pins say it if the list is not usable), and out of
	 * the VM's scheduler group (best effort: it only costs the guest) */
	(void)mw_thread_place_all(&o.cfg.cpus);
	(void)mw_place_own_group(&o.place);
	ret = side == SIDE_SEND ? mw_xp_send_run(&o.cfg, &err) :
				  mw_xp_recv_run(&o.cfg, &err);
	explicit_bzero(o.join_token, sizeof(o.join_token));
	if (ret) {
		mw_log_emit(MW_LOG_ERR, "%s",
			    err.msg[0] ? err.msg : mw_strerror(ret));
		/* a bad setting found only at start-up (the environment) */
		return ret == -MW_E_USAGE ? 2 : 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_print_main_help(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		cli_print_version();
		return 0;
	}
	if (!strcmp(argv[1], "send"))
		return run_side(SIDE_SEND, argc - 1, argv + 1);
	if (!strcmp(argv[1], "recv"))
		return run_side(SIDE_RECV, argc - 1, argv + 1);
	if (!strcmp(argv[1], "bench"))
		return mw_bench_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "inspect"))
		return mw_cmd_inspect(argc - 1, argv + 1);
	if (!strcmp(argv[1], "migrate"))
		return mw_cmd_migrate(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-h")) {
		if (argc > 2 && !strcmp(argv[2], "send"))
			cli_print_usage(stdout, SIDE_SEND);
		else if (argc > 2 && !strcmp(argv[2], "recv"))
			cli_print_usage(stdout, SIDE_RECV);
		else
			cli_print_main_help(stdout);
		return 0;
	}
	fprintf(stderr, "migwire: unknown command '%s' (try 'migwire help')\n",
		argv[1]);
	return 2;
}
