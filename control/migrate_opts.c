/* SPDX-License-Identifier: MIT */
/*
 * The options of `migwire migrate`: its own (what QEMU is told) and the
 * `migwire send` options it passes through into the exec: URI, which send
 * itself checks (preflight runs `send --print-config`). Main thread.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "control_int.h"
#include "mw_cli.h"
#include "mw_parse.h"

enum {
	O_QMP = 1000,
	O_TO,
	O_DOWNTIME,
	O_MAXBW,
	O_AUTOCONV,
	O_POSTCOPY,
	O_PC_AFTER,
	O_TIMEOUT,
	O_TA,
	O_JSON,
	O_DIRTY,
	O_LISTEN,
	O_MULTIFD,
	O_VERSION,
	O_SEND, /* passed through to migwire send */
};

struct mopt {
	const char *name;
	int has_arg;
	int key;
	const char *left; /* as --help shows it */
	const char *help;
};

static const struct mopt mopts[] = {
	{ "qmp", 1, O_QMP, "--qmp SOCKET",
	  "the source QEMU's QMP unix socket (-qmp unix:SOCKET,server=on,"
	  "wait=off) (required)" },
	{ "to", 1, O_TO, "--to HOST:PORT",
	  "where `migwire recv` listens on the destination (required)" },
	{ "max-downtime", 1, O_DOWNTIME, "--max-downtime MS",
	  "QEMU's downtime-limit: the longest pause of the VM at the "
	  "switch-over, 1-2000000 ms (default: QEMU's, 300)" },
	{ "max-bandwidth", 1, O_MAXBW, "--max-bandwidth RATE",
	  "cap on the wire, applied by migwire send over all channels (100M is "
	  "100 MiB/s, 1Gbit is 1 Gbit/s); QEMU's own cap is lifted so that it "
	  "does not limit migwire, and on QEMU >= 8.2 avail-switchover-"
	  "bandwidth is set to RATE first, then kept at what send measures "
	  "it takes from QEMU per second, so that QEMU's downtime estimate "
	  "uses it (default: no cap)" },
	{ "auto-converge", 0, O_AUTOCONV, "--auto-converge",
	  "let QEMU throttle the vCPUs of a VM that dirties memory faster "
	  "than it is sent" },
	{ "postcopy", 0, O_POSTCOPY, "--postcopy",
	  "enable postcopy-ram; the destination QEMU must enable it too "
	  "(migrate-set-capabilities before migrate-incoming, or "
	  "-global migration.x-postcopy-ram=on)" },
	{ "postcopy-after", 1, O_PC_AFTER, "--postcopy-after SECS",
	  "switch to postcopy after SECS of precopy if not completed "
	  "(implies --postcopy)" },
	{ "timeout", 1, O_TIMEOUT, "--timeout SECS",
	  "after SECS, end the migration as virsh migrate --timeout does, "
	  "with the --timeout-action (default 0: no timeout)" },
	{ "timeout-action", 1, O_TA, "--timeout-action ACTION",
	  "pause: pause the VM so that the rest is sent; postcopy: switch to "
	  "postcopy (implies --postcopy); cancel: cancel the migration, the "
	  "VM runs on (default: postcopy with --postcopy, else pause)" },
	{ "dirty-rate-check", 1, O_DIRTY, "--dirty-rate-check SECS",
	  "measure the VM's dirty page rate for SECS before migrating "
	  "(calc-dirty-rate); after the first 2 s of the migration, say "
	  "whether it converges at the rate migwire measures it carries "
	  "(default 2; 0: skip)" },
	{ "listen", 1, O_LISTEN, "--listen unix:PATH",
	  "socket mode: run migwire send here, listening on PATH, and let "
	  "QEMU migrate to unix:PATH; the receiver runs with --connect to the "
	  "destination QEMU's socket (default: exec: mode, QEMU runs send)" },
	{ "qemu-multifd", 1, O_MULTIFD, "--qemu-multifd N",
	  "QEMU's multifd with N channels (1-63), each a connection that "
	  "migwire carries; needs --listen, and the destination QEMU needs "
	  "multifd with the same multifd-channels" },
	{ "json", 0, O_JSON, "--json",
	  "print the result as one JSON object on stdout (the lines on "
	  "stderr stay)" },
	/* migwire send's, passed through into the exec: URI */
	{ "channels", 1, O_SEND, "--channels N", NULL },
	{ "compress", 1, O_SEND, "--compress CODEC", NULL },
	{ "compress-level", 1, O_SEND, "--compress-level L", NULL },
	{ "compress-threads", 1, O_SEND, "--compress-threads N", NULL },
	{ "adaptive", 0, O_SEND, "--adaptive", NULL },
	{ "chunk-size", 1, O_SEND, "--chunk-size SIZE", NULL },
	{ "window", 1, O_SEND, "--window SIZE", NULL },
	{ "pages", 1, O_SEND, "--pages auto|off", NULL },
	{ "page-cache", 1, O_SEND, "--page-cache SIZE", NULL },
	{ "tls-creds", 1, O_SEND, "--tls-creds DIR", NULL },
	{ "tls-hostname", 1, O_SEND, "--tls-hostname NAME", NULL },
	{ "tls-psk", 1, O_SEND, "--tls-psk FILE", NULL },
	{ "tls-psk-identity", 1, O_SEND, "--tls-psk-identity NAME", NULL },
	{ "no-tls", 0, O_SEND, "--no-tls", NULL },
	{ "join-token", 1, O_SEND, "--join-token FILE", NULL },
	{ "reconnect-timeout", 1, O_SEND, "--reconnect-timeout SECS", NULL },
	{ "cpus", 1, O_SEND, "--cpus LIST", NULL },
	{ "cpu-budget", 1, O_SEND, "--cpu-budget CORES", NULL },
	{ "io", 1, O_SEND, "--io ENGINE", NULL },
	{ "stats-file", 1, O_SEND, "--stats-file PATH", NULL },
};

#define NMOPTS (sizeof(mopts) / sizeof(mopts[0]))

void mw_migrate_usage(FILE *f)
{
	size_t i;
	int col;

	fprintf(f, "usage: migwire migrate --qmp SOCKET --to HOST:PORT "
		   "[send options] [options]\n\n"
		   "Runs a whole live migration of a running QEMU VM through "
		   "migwire: checks the\nsource (QMP reachable, VM running, no "
		   "migration active, the capabilities\nthe options need) and "
		   "the receiver, measures the dirty rate, sets the\nmigration "
		   "parameters, migrates to exec:\"migwire send --to HOST:PORT "
		   "...\" and\nshows the progress until QEMU reports the "
		   "result. The destination QEMU runs\nwith -incoming "
		   "\"exec:migwire recv --listen HOST:PORT ...\" as for a "
		   "manual\nmigration. In socket mode (--listen unix:PATH) "
		   "migrate runs send itself,\nQEMU migrates to unix:PATH, and "
		   "recv runs with --connect to the destination\nQEMU's "
		   "socket.\n\n");
	for (i = 0; i < NMOPTS; i++) {
		if (mopts[i].key == O_SEND)
			break;
		mw_help_opt(f, mopts[i].left, mopts[i].help);
	}
	mw_help_opt(f, "-h, --help", "this help");
	fprintf(f, "\nPassed to migwire send (see migwire send --help):");
	for (col = 80; i < NMOPTS; i++) {
		int w = (int)strlen(mopts[i].left) + 2;

		if (col + w > 78) {
			fprintf(f, "\n ");
			col = 1;
		}
		fprintf(f, " %s%s", mopts[i].left, i + 1 < NMOPTS ? "," : "\n");
		col += w;
	}
	fprintf(f,
		"\nOn Ctrl-C (SIGINT) or SIGTERM the migration is cancelled "
		"and the source VM\nruns on (resumed if --timeout paused it). "
		"Exit status: 0 QEMU reports the migration completed, 1 "
		"failure, 2 usage error.\n");
}

#define PROG "migwire migrate"
#define usage_err(...) mw_usage_err(PROG, __VA_ARGS__)

static int opt_secs(const char *name, const char *arg, uint32_t min,
		    int64_t *out)
{
	uint32_t v;

	if (mw_parse_u32(arg, min, 86400 * 7, &v))
		return usage_err("--%s: '%s' is not a number of seconds in "
				 "%u..%u",
				 name, arg, min, 86400 * 7);
	*out = v;
	return 0;
}

/* An option of send: to the list, by name and value (NULL: none). */
static int pass_send(struct migrate_opts *o, const struct mopt *m,
		     const char *arg)
{
	if (o->nsend == MW_MIGRATE_SEND_MAX)
		return usage_err("more than %d send options",
				 MW_MIGRATE_SEND_MAX);
	o->send[o->nsend].name = m->name;
	o->send[o->nsend++].arg = m->has_arg ? arg : NULL;
	return 0;
}

static int one_opt(struct migrate_opts *o, const struct mopt *m,
		   const char *arg)
{
	static const char *const actions[] = { "pause", "postcopy", "cancel" };
	uint32_t v;
	int ret;

	switch (m->key) {
	case O_QMP:
		o->qmp = arg;
		return 0;
	case O_TO:
		o->to = arg;
		return 0;
	case O_DOWNTIME:
		if (mw_parse_u32(arg, 1, 2000000, &v))
			return usage_err("--max-downtime: '%s' is not a number "
					 "of milliseconds in 1..2000000",
					 arg);
		o->max_downtime_ms = v;
		return 0;
	case O_MAXBW:
		ret = mw_parse_rate(arg, &o->max_bw);
		if (ret || !o->max_bw)
			return usage_err("--max-bandwidth: '%s' is not a rate "
					 "(e.g. 100M, 1Gbit)",
					 arg);
		return pass_send(o, m, arg);
	case O_LISTEN:
		/* QEMU's URI is the same text; tcp: would need a port
		 * check that does not itself connect */
		if (strncmp(arg, "unix:", 5) || !arg[5])
			return usage_err("--listen: '%s' is not unix:PATH",
					 arg);
		if (o->listen)
			return usage_err("--listen given twice");
		o->listen = arg;
		return pass_send(o, m, arg);
	case O_MULTIFD:
		if (mw_parse_u32(arg, 1, 63, &o->qemu_multifd))
			return usage_err("--qemu-multifd: '%s' is not a number "
					 "of channels in 1..63",
					 arg);
		return 0;
	case O_JSON:
		o->json = true;
		return 0;
	case O_AUTOCONV:
		o->auto_converge = true;
		return 0;
	case O_POSTCOPY:
		o->postcopy = true;
		return 0;
	case O_PC_AFTER:
		o->postcopy = true;
		return opt_secs(m->name, arg, 0, &o->postcopy_after);
	case O_TIMEOUT:
		return opt_secs(m->name, arg, 0, &o->timeout);
	case O_TA:
		for (v = 0; v < 3; v++)
			if (!strcmp(arg, actions[v]))
				break;
		if (v == 3)
			return usage_err("--timeout-action: '%s' is not pause, "
					 "postcopy or cancel",
					 arg);
		o->timeout_action = (int)(MW_TA_PAUSE + v);
		o->postcopy |= o->timeout_action == MW_TA_POSTCOPY;
		return 0;
	case O_DIRTY:
		if (mw_parse_u32(arg, 0, 60, &o->dirty_secs))
			return usage_err("--dirty-rate-check: '%s' is not a "
					 "number of seconds in 0..60",
					 arg);
		return 0;
	default:
		return pass_send(o, m, arg);
	}
}

int mw_migrate_parse(struct migrate_opts *o, int argc, char **argv)
{
	struct option lo[NMOPTS + 3];
	size_t i;
	int c;

	memset(o, 0, sizeof(*o));
	o->max_downtime_ms = -1;
	o->postcopy_after = -1;
	o->dirty_secs = 2;
	for (i = 0; i < NMOPTS; i++)
		lo[i] = (struct option){ mopts[i].name, mopts[i].has_arg, NULL,
					 (int)i };
	lo[i++] = (struct option){ "help", 0, NULL, 'h' };
	lo[i++] = (struct option){ "version", 0, NULL, O_VERSION };
	lo[i] = (struct option){ NULL, 0, NULL, 0 };
	optind = 1;
	opterr = 0;
	for (;;) {
		c = mw_getopt_exact(argc, argv, "+h", lo, PROG);
		if (c == -1)
			break;
		if (c == -2)
			return 2;
		if (c == 'h') {
			mw_migrate_usage(stdout);
			return 0;
		}
		if (c == O_VERSION) {
			printf("migwire %s\n", MW_VERSION);
			return 0;
		}
		if (c < 0 || c >= (int)NMOPTS)
			return usage_err("%s option '%s'",
					 optopt ? "missing value for" :
						  "unknown",
					 argv[optind - 1]);
		if (one_opt(o, &mopts[c], optarg))
			return 2;
	}
	if (optind < argc)
		return usage_err("unexpected argument '%s'", argv[optind]);
	if (!o->qmp)
		return usage_err("--qmp SOCKET is required");
	if (!o->to)
		return usage_err("--to HOST:PORT is required");
	if (o->qemu_multifd && !o->listen)
		return usage_err("--qemu-multifd needs socket mode: --listen "
				 "unix:PATH");
	if (o->timeout_action && !o->timeout)
		return usage_err("--timeout-action needs --timeout");
	if (!o->timeout_action)
		o->timeout_action = o->postcopy ? MW_TA_POSTCOPY : MW_TA_PAUSE;
	if (o->timeout && o->postcopy_after >= o->timeout)
		return usage_err("--postcopy-after %lld is not before "
				 "--timeout %lld",
				 (long long)o->postcopy_after,
				 (long long)o->timeout);
	return -1;
}
