# SPDX-License-Identifier: MIT
"""The processes the driver starts: a QEMU with its QMP, serial log and
stderr log (Guest), and a background command, the transport in socket mode
(BgProc). Both die with the driver (PR_SET_PDEATHSIG) and stop() is always
safe to call, so cleanup can call it on whatever exists."""

import os
import re
import signal
import subprocess
import time

from mwproc import (descendants, die_with_parent, kill_pids, proc_start,
                    terminate)

from . import Fail
from .qmp import QMP

HB_RE = re.compile(rb"mw-heartbeat (\d+) ([0-9a-f]+)")
# mw.work=1 guests add the work units done so far and the guest's clock
WORK_RE = re.compile(rb"mw-heartbeat (\d+) [0-9a-f]+ \d+ work=(\d+) ms=(\d+)")


def work_rate(samples):
    """Work units per second of the guest's clock over (counter, work, ms)
    samples, first to last; None with fewer than two."""
    if len(samples) < 2 or samples[-1][2] <= samples[0][2]:
        return None
    return (samples[-1][1] - samples[0][1]) * 1000.0 / (samples[-1][2] - samples[0][2])


def netns_prefix(ns):
    return ["ip", "netns", "exec", ns] if ns else []


def cpu_occupants(cpu, skip, counts, owners=None):
    """One sample of the threads running or runnable on host CPU cpu
    (/proc/*/task/*/stat: state R, last CPU cpu), skip excepted: counts
    their names into counts, prefixed with owners[pid] ("src", "dst": the
    two QEMUs and their exec: children) where it has one."""
    owners = owners or {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            tids = os.listdir("/proc/%s/task" % pid)
        except OSError:
            continue
        for tid in tids:
            if int(tid) in skip:
                continue
            try:
                with open("/proc/%s/task/%s/stat" % (pid, tid)) as f:
                    s = f.read()
            except OSError:
                continue
            comm, rest = s[s.index("(") + 1:s.rindex(")")], s[s.rindex(")") + 2:].split()
            # rest[0] is field 3 (state); field 39 (processor) is rest[36]
            if rest[0] == "R" and len(rest) > 36 and rest[36] == str(cpu):
                if int(pid) in owners:
                    comm = owners[int(pid)] + " " + comm
                counts[comm] = counts.get(comm, 0) + 1


class Guest:
    """One QEMU process we started, with its QMP, serial log and stderr log."""

    def __init__(self, name, argv, tmp, logdir, env=None):
        self.name = name
        self.qmp_path = os.path.join(tmp, name + ".qmp")
        self.serial = os.path.join(logdir, name + "-serial.log")
        self.stderr_path = os.path.join(logdir, name + "-qemu.log")
        for p in (self.serial,):
            if os.path.exists(p):
                os.unlink(p)
        argv = argv + ["-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
                       "-chardev", "file,id=ser0,path=%s" % self.serial,
                       "-serial", "chardev:ser0"]
        self.stderr = open(self.stderr_path, "ab")
        self.stderr.write(("# %s\n" % " ".join(argv)).encode())
        self.stderr.flush()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.stderr, stderr=self.stderr,
                                     env=env, preexec_fn=die_with_parent)
        self.pid = self.proc.pid
        self.qmp = None
        self.orphans = []
        try:
            self.qmp = QMP(self.qmp_path, name, alive=self.alive)
        except Fail:
            self.stop()
            raise Fail("%s QEMU did not come up (exit %s); see %s"
                       % (name, self.proc.returncode, self.stderr_path))

    def alive(self):
        return self.proc.poll() is None

    def status(self):
        return self.qmp.cmd("query-status")["status"]

    def heartbeats(self):
        try:
            with open(self.serial, "rb") as f:
                return [(int(m.group(1)), m.group(2).decode())
                        for m in HB_RE.finditer(f.read())]
        except OSError:
            return []

    def work_samples(self):
        """(counter, work units, guest ms) of every mw.work=1 heartbeat."""
        try:
            with open(self.serial, "rb") as f:
                return [tuple(int(x) for x in m.groups())
                        for m in WORK_RE.finditer(f.read())]
        except OSError:
            return []

    def vcpu_sched(self):
        """(host monotonic s, ns the vCPU threads ran, ns they waited for
        a CPU) from /proc/PID/task/TID/schedstat: where the guest's time
        went, on the CPU or queued behind another thread."""
        run = wait = 0
        for t in self.qmp.cmd("query-cpus-fast"):
            try:
                with open("/proc/%d/task/%d/schedstat" % (self.pid, t["thread-id"])) as f:
                    v = f.read().split()
                run, wait = run + int(v[0]), wait + int(v[1])
            except (OSError, IndexError, ValueError):
                pass
        return time.monotonic(), run, wait

    def pin_vcpus(self, cpu, emulator=False):
        """Pins the vCPU threads (QMP query-cpus-fast) to one host CPU, as an
        operator with dedicated CPUs does with taskset; returns their ids.
        emulator: also every other thread to the other CPUs (libvirt's
        emulatorpin); threads QEMU starts later (migration, multifd)
        inherit that from the main thread."""
        tids = [c["thread-id"] for c in self.qmp.cmd("query-cpus-fast")]
        if emulator:
            rest = os.sched_getaffinity(0) - {cpu}
            for t in os.listdir("/proc/%d/task" % self.pid):
                if int(t) not in tids:
                    os.sched_setaffinity(int(t), rest)
        for t in tids:
            os.sched_setaffinity(t, {cpu})
        return tids

    def last_heartbeat(self):
        hb = self.heartbeats()
        return hb[-1][0] if hb else None

    def wait_heartbeat_above(self, counter, timeout):
        """Wait for a heartbeat with a counter > counter; return it or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hb = self.heartbeats()
            if hb and (counter is None or hb[-1][0] > counter):
                return hb[-1][0]
            if not self.alive():
                return None
            time.sleep(0.1)
        return None

    def kill_exec_children(self, sig=signal.SIGKILL):
        pids = descendants(self.pid)
        kill_pids(pids, sig)
        return pids

    def kill(self):
        """SIGKILL QEMU (fault tests); its exec: children are reaped in stop()."""
        self.orphans = [(p, proc_start(p)) for p in descendants(self.pid)]
        self.proc.kill()

    def stop(self):
        """Terminate QEMU and its exec: children; always safe to call."""
        if self.qmp:
            self.qmp.close()
        kids = descendants(self.pid) if self.alive() else []
        if self.alive():
            terminate(self.proc)
        kill_pids(kids + [p for p, t in self.orphans if t and proc_start(p) == t],
                  signal.SIGKILL)
        self.stderr.close()


class BgProc:
    """A background command the driver starts (the transport in socket
    mode): output to LOGDIR/NAME.log, dies with the driver, reaped always."""

    def __init__(self, name, cmd, logdir, netns=None):
        self.name = name
        self.cmd = cmd
        self.log_path = os.path.join(logdir, name + ".log")
        self.logf = open(self.log_path, "ab")
        self.logf.write(("# %s\n" % cmd).encode())
        self.logf.flush()
        # A simple command is exec'd so that self.pid is the command itself.
        sh = cmd if re.search(r"[;&|<>()`$]", cmd) else "exec " + cmd
        # ip netns exec execs its command: self.pid stays the command's.
        self.proc = subprocess.Popen(netns_prefix(netns) + ["/bin/sh", "-c", sh],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf, preexec_fn=die_with_parent)
        self.pid = self.proc.pid
        self.t0 = time.monotonic()
        self.killed = False

    def alive(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        """Exit status, or None if still running after timeout seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            self.killed = True
            kill_pids([self.pid], sig)

    def tail(self, n=6):
        try:
            with open(self.log_path, "rb") as f:
                lines = [l.decode(errors="replace") for l in f.read().splitlines()
                         if l.strip() and not l.startswith(b"# ")]
            return lines[-n:]
        except OSError:
            return []

    def result(self):
        rc = self.proc.poll()
        return {"exit": rc, "killed_by_driver": self.killed,
                "stderr_tail": self.tail(), "log": self.log_path}

    def stop(self):
        """Terminate if still running (SIGTERM, then SIGKILL); always safe."""
        if self.alive():
            kids = descendants(self.pid)
            self.killed = True
            terminate(self.proc)
            kill_pids(kids, signal.SIGKILL)
        if not self.logf.closed:
            self.logf.close()


