/* SPDX-License-Identifier: MIT */
/*
 * --cpu-budget CORES (tools/cli.h): parsing, what it means for the worker
 * pools and the CPU list, and its --print-config line. The run holds the
 * process to it (transport/cpu_pace.c). Main thread, before the run.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Below this the pauses are most of the migration: no useful budget. */
#define BUDGET_MIN 0.1

/* The CPUs this process may run on: a budget above that cannot be used. */
static unsigned cpus_allowed(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	return (unsigned)CPU_COUNT(&set);
}

int cli_opt_cpu_budget(struct opts *o, const char *a)
{
	unsigned max = cpus_allowed();
	size_t n = strspn(a, "0123456789"), f = 0;
	double v = -1;

	/* digits with an optional fraction: strtod would also take "inf",
	 * "nan", hex and exponents, none of which is a number of cores */
	if (a[n] == '.')
		f = strspn(a + n + 1, "0123456789");
	if ((n || f) && !a[n + (a[n] == '.' ? 1 + f : 0)] && (a[n] != '.' || f))
		v = strtod(a, NULL);
	if (v < BUDGET_MIN || v > (double)max)
		return cli_usage_err("--cpu-budget: '%s' is not a number of "
				     "cores in %.1f..%u, the CPUs this "
				     "process may use (e.g. 0.5 or 1.5)",
				     a, BUDGET_MIN, max);
	o->cfg.cpu_budget = v;
	return 0;
}

/*
 * After the thread counts and the CPU list are known: workers beyond
 * ceil(budget) could only queue for it, so the default shrinks to that and
 * an explicit larger count is refused; a --cpus list smaller than the
 * budget could never give it.
 */
int cli_finish_budget(struct opts *o, int side)
{
	struct mw_xp_cfg *c = &o->cfg;
	unsigned cap;

	if (!c->cpu_budget)
		return 0;
	cap = (unsigned)c->cpu_budget; /* ceil, without libm */
	if ((double)cap < c->cpu_budget)
		cap++;
	if (!o->have_threads && c->threads > cap)
		c->threads = cap;
	if (c->threads > cap)
		return cli_usage_err("--%s %u: more workers than --cpu-budget "
				     "%g can keep busy (at most %u)",
				     side == SIDE_SEND ? "compress-threads" :
							 "decompress-threads",
				     c->threads, c->cpu_budget, cap);
	if (o->cpus && c->cpu_budget > (double)c->cpus.n)
		return cli_usage_err("--cpu-budget %g is more than the %u CPUs "
				     "of --cpus %s",
				     c->cpu_budget, c->cpus.n, o->cpus);
	return 0;
}

void cli_print_budget(const struct opts *o)
{
	if (o->cfg.cpu_budget)
		printf("cpu-budget=%g\n", o->cfg.cpu_budget);
	else
		printf("cpu-budget=off\n");
}
