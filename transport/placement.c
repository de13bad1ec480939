/* SPDX-License-Identifier: MIT */
/*
 * CPU placement: keep migwire's threads off the CPUs that run the VM.
 *
 * The migration guides ask for the migration's threads to be isolated from
 * the VM's vCPUs. QEMU names each vCPU thread "CPU <n>/KVM" (or "/TCG"), so
 * migwire can find them: under exec: QEMU is an ancestor (QEMU runs the URI
 * through /bin/sh -c, so the parent may be a shell), in socket mode the
 * operator names it with --qemu-pid. The CPUs those threads may run on are
 * taken out of the CPUs migwire itself may use; with none left, migwire
 * shares them and says so. Context: the main thread, before any worker
 * starts; reads /proc only.
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mw_xport.h"

/* How far up from migwire an exec: QEMU may be: sh -c, then QEMU. */
#define ANCESTOR_DEPTH 4

static void set_from_cpuset(struct mw_cpus *out, const cpu_set_t *set)
{
	unsigned c;

	out->n = 0;
	for (c = 0; c < MW_CPUS_MAX && c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, set))
			out->cpu[out->n++] = (uint16_t)c;
}

static int parent_of(int pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	int ppid = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	/* the command name may hold spaces and ')': the state follows the
	 * last ')' */
	p = strrchr(buf, ')');
	if (!p || strlen(p) < 4)
		return 0;
	ppid = (int)strtol(p + 4, NULL, 10); /* ") S 1234 ..." */
	return ppid > 0 ? ppid : 0;
}

static bool is_qemu(int pid)
{
	char path[64], comm[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	return !strncmp(comm, "qemu", 4);
}

static bool is_vcpu_name(const char *comm)
{
	char *end;

	/* "CPU 0/KVM", "CPU 12/TCG" (QEMU's qemu_thread_create names) */
	if (strncmp(comm, "CPU ", 4) || comm[4] < '0' || comm[4] > '9')
		return false;
	(void)strtoul(comm + 4, &end, 10);
	return *end == '/' && end[1];
}

/*
 * Counts pid's vCPU threads and adds the CPUs each may run on to *vcpus.
 * Returns the number of vCPU threads (0: not a QEMU with vCPUs).
 */
static unsigned vcpu_threads(int pid, cpu_set_t *vcpus)
{
	char path[64], comm[64];
	struct dirent *de;
	unsigned n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return 0;
	/* one thread, before any worker starts (readdir_r is deprecated) */
	/* cppcheck-suppress readdirCalled */
	while ((de = readdir(d))) {
		cpu_set_t set;
		FILE *f;
		int tid;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		tid = (int)strtol(de->d_name, NULL, 10);
		snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = '\0';
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
		if (!is_vcpu_name(comm))
			continue;
		CPU_ZERO(&set);
		if (sched_getaffinity(tid, sizeof(set), &set))
			continue;
		CPU_OR(vcpus, vcpus, &set);
		n++;
	}
	closedir(d);
	return n;
}

int mw_qemu_ancestor(void)
{
	int pid = getppid();
	unsigned depth;

	for (depth = 0; pid > 1 && depth < ANCESTOR_DEPTH; depth++) {
		if (is_qemu(pid))
			return pid;
		pid = parent_of(pid);
	}
	return 0;
}

/* The kernel groups tasks by session for fairness ("autogroup"). */
static bool autogroup_on(void)
{
	FILE *f = fopen("/proc/sys/kernel/sched_autogroup_enabled", "re");
	int c = f ? fgetc(f) : EOF;

	if (f)
		fclose(f);
	return c == '1';
}

int mw_place_own_group(const struct mw_placement *p)
{
	if (!p->own_group)
		return 0;
	return setsid() < 0 ? -errno : 0;
}

int mw_place_auto(int qemu_pid, const struct mw_cpus *isolated,
		  struct mw_placement *p)
{
	cpu_set_t own, vcpus, free_set, iso;
	unsigned i;
	int pid = qemu_pid;
	char vl[128], fl[128];

	memset(p, 0, sizeof(*p));
	CPU_ZERO(&vcpus);
	if (sched_getaffinity(0, sizeof(own), &own))
		return -errno;
	if (!pid)
		pid = mw_qemu_ancestor();
	if (pid > 1)
		p->nr_vcpus = vcpu_threads(pid, &vcpus);
	if (!p->nr_vcpus) {
		/* QEMU names its threads only with -name ...,debug-threads=on
		 * (libvirt always passes it) */
		if (pid > 1 && is_qemu(pid))
			snprintf(p->why, sizeof(p->why),
				 "QEMU pid %d does not name its vCPU threads: "
				 "start it with -name NAME,debug-threads=on",
				 pid);
		else if (qemu_pid)
			snprintf(p->why, sizeof(p->why),
				 "pid %d is not a QEMU process", qemu_pid);
		else
			snprintf(p->why, sizeof(p->why),
				 "no QEMU among migwire's parents");
		return qemu_pid ? -ESRCH : 0;
	}
	p->qemu_pid = pid;
	set_from_cpuset(&p->vcpus, &vcpus);
	CPU_XOR(&free_set, &own, &vcpus);
	CPU_AND(&free_set, &free_set, &own);
	/* isolated CPUs outside the VM's are the ones set aside for work
	 * like this: prefer them when there are any */
	/* (isolcpus keeps migwire's own affinity off them, so they are
	 * taken from the isolated list, not from what migwire may use) */
	CPU_ZERO(&iso);
	for (i = 0; isolated && i < isolated->n; i++)
		if (isolated->cpu[i] < CPU_SETSIZE &&
		    !CPU_ISSET(isolated->cpu[i], &vcpus))
			CPU_SET(isolated->cpu[i], &iso);
	set_from_cpuset(&p->chosen, CPU_COUNT(&iso) ? &iso : &free_set);
	mw_cpus_format(&p->vcpus, vl, sizeof(vl));
	if (!p->chosen.n) {
		long online = sysconf(_SC_NPROCESSORS_ONLN);

		p->shared = true;
		/* vCPUs pinned by an operator, yet on all of ours: worth a
		 * warning; unpinned vCPUs leave nothing to avoid */
		p->warn = online > 0 && (long)p->vcpus.n < online;
		snprintf(
			p->why, sizeof(p->why),
			"QEMU pid %d: its %u vCPU threads may run on every CPU "
			"migwire may use (%s); sharing them",
			pid, p->nr_vcpus, vl);
		return 0;
	}
	mw_cpus_format(&p->chosen, fl, sizeof(fl));
	/* a process group leader cannot setsid(), and is not QEMU's exec:
	 * child (that runs in QEMU's group) anyway */
	p->own_group = getsid(0) == getsid(pid) && getpgrp() != getpid() &&
		       autogroup_on();
	snprintf(p->why, sizeof(p->why),
		 "QEMU pid %d: %u vCPU threads on CPUs %s; migwire on %s%s%s",
		 pid, p->nr_vcpus, vl, fl, CPU_COUNT(&iso) ? " (isolated)" : "",
		 p->own_group ? ", in a session of its own" : "");
	return 0;
}
