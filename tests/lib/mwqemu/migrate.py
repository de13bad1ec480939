# SPDX-License-Identifier: MIT
"""Migrate phase: start the destination (-S -incoming defer), run one
migration from the source while printing progress and firing the
--on-progress / --kill-*-after hooks, wait for the destination to load,
and record all of it in the report. A failed migration (--expect failed)
must leave the source running.
"""

import json
import os
import re
import subprocess
import time

from mwproc import descendants, free_port, proc_cpu, tcp_listening

from . import Fail, log, mib
from .guest import cpu_occupants, work_rate
from .qmp import migration_event


def parse_size(s):
    """'123', '64M', '1G' -> bytes; '5s' -> ('s', 5.0) for time triggers."""
    s = s.strip()
    if s.endswith("s"):
        return ("s", float(s[:-1]))
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s[-1:].upper() in mult:
        return ("b", int(float(s[:-1]) * mult[s[-1].upper()]))
    return ("b", int(s))


def last_json_line(path):
    try:
        with open(path, "rb") as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


class Migrate:
    """The destination and one migration, end to end (a mixin of Run)."""

    def start_dest(self):
        a = self.a
        if a.disk:
            dst_img = self.disk_path("dst")
            with open(dst_img, "wb") as f:
                f.truncate(os.path.getsize(a.disk))
        if self.attempts and not a.port:
            self.port = free_port()  # the old one may linger in TIME_WAIT
        self.attempts += 1
        self.bg = {}
        recv = self.subst(a.recv_cmd)
        m = re.search(r"UNIX-LISTEN:([^,\s]+)", recv)
        if m and os.path.exists(m.group(1)):
            os.unlink(m.group(1))  # left behind by a killed receiver
        for path in self.unix_paths(a.dst_uri, a.src_uri, a.send_bg,
                                    a.nbd and "unix:" + self.nbd_sock("dst")):
            if os.path.exists(path):
                os.unlink(path)  # a previous attempt's socket
        dst = self.start("dst", self.accel)
        self.set_caps(dst)
        if a.nbd:
            self.nbd_dest_start(dst)
        if not a.dst_uri:
            dst.qmp.cmd("migrate-incoming", uri="exec:" + recv)
            self.wait_listen(recv, dst)
            return dst
        uri = self.subst(a.dst_uri)
        dst.qmp.cmd("migrate-incoming", uri=uri)
        self.wait_paths(self.unix_paths(uri), [dst], "destination QEMU")
        if a.recv_bg:
            b = self.start_bg("recv-bg", a.recv_bg)
            self.wait_bg_listen(b, a.recv_bg, dst)
        return dst

    def wait_listen(self, recv, dst):
        """Do not start the sender before the receiver accepts connections."""
        deadline = time.monotonic() + 15
        m = re.search(r"UNIX-LISTEN:([^,\s]+)", recv)
        while time.monotonic() < deadline:
            if not dst.alive():
                raise Fail("destination QEMU exited before migrating; see %s"
                           % dst.stderr_path)
            if m:
                if os.path.exists(m.group(1)):
                    return
            elif "{port}" in self.a.recv_cmd:
                if tcp_listening(self.port, dst.pid if self.a.dst_netns else None):
                    return
            else:
                time.sleep(0.5)
                return
            time.sleep(0.05)
        raise Fail("receiver did not start listening within 15s; see %s"
                   % dst.stderr_path)

    def make_hooks(self, src, holder):
        hooks = []
        env = dict(os.environ, MW_SRC_PID=str(src.pid), MW_TMP=self.tmp,
                   MW_LOGDIR=self.logdir, MW_PORT=str(self.port))

        def shell(cmd):
            def run():
                e = dict(env, MW_DST_PID=str(holder["dst"].pid))
                subprocess.run(self.subst(cmd), shell=True, env=e)
            return run

        for when, cmd in self.a.on_progress:
            hooks.append({"when": parse_size(when), "fn": shell(cmd),
                          "label": cmd, "done": False})
        def kill_recv():
            if "recv-bg" in self.bg:
                self.bg["recv-bg"].kill()
                log("killed recv-bg (pid %d)" % self.bg["recv-bg"].pid)
            else:
                log("killed exec children of dst: %s" % holder["dst"].kill_exec_children())
        if self.a.kill_recv_after:
            hooks.append({"when": parse_size(self.a.kill_recv_after), "done": False,
                          "label": "kill the receive command", "fn": kill_recv})
        if self.a.kill_dst_after:
            hooks.append({"when": parse_size(self.a.kill_dst_after), "done": False,
                          "label": "kill the destination QEMU",
                          "fn": lambda: holder["dst"].kill()})
        return hooks

    def op_sock(self):
        """The source's second QMP monitor, for --migrate-cmd ({op_qmp})."""
        return os.path.join(self.tmp, "src-op.qmp")

    def migrate_by_cmd(self, src, dst):
        """--migrate-cmd: an operator's tool (migwire migrate) runs the
        migration through the source's second QMP monitor; its stderr is
        shown and kept in migrate.log. Returns the source's query-migrate
        and leaves exit, last lines and stdout in report["migrate_cmd"]."""
        cmd = self.subst(self.a.migrate_cmd).replace("{op_qmp}", self.op_sock())
        logf = os.path.join(self.logdir, "migrate.log")
        log("running: %s" % cmd)
        self.cpu0 = {"src": proc_cpu(src.pid), "dst": proc_cpu(dst.pid)}
        self.wall0 = time.time()
        t = time.monotonic()
        lines = []
        with open(logf, "w") as f:
            p = subprocess.Popen(cmd, shell=True, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
            for line in p.stderr:
                f.write(line)
                if line.strip():
                    lines.append(line.rstrip("\n"))
                    log("  | " + lines[-1])
            out = p.stdout.read()
            rc = p.wait()
        info = src.qmp.cmd("query-migrate")
        info["wall_s"] = round(time.monotonic() - t, 2)
        self.report["migrate_cmd"] = {"exit": rc, "lines": lines[-6:],
                                      "stdout": out}
        if rc != 0 and self.a.expect == "completed":
            raise Fail("the migrate command exited %d; see %s" % (rc, logf))
        return info

    def migrate(self, src, dst, hooks):
        """Run one migration; return the source's final query-migrate."""
        a = self.a
        if a.migrate_cmd:
            return self.migrate_by_cmd(src, dst)
        if a.src_uri:
            args = {"uri": self.subst(a.src_uri)}
            if a.send_bg:
                b = self.start_bg("send-bg", a.send_bg)
                self.wait_paths(self.unix_paths(a.send_bg), [b], "send-bg")
        else:
            args = {"uri": "exec:" + self.subst(a.send_cmd)}
        if a.nbd:
            self.nbd_source_mirror(src)
        if a.blk:
            args["blk"] = True
        rate0 = self.guest_rate_before(src)
        self.cpu0 = {"src": proc_cpu(src.pid), "dst": proc_cpu(dst.pid)}
        self.wall0 = time.time()
        t_start = time.monotonic()
        src.qmp.cmd("migrate", **args)
        last_print = 0.0
        info = {}
        seen = {}
        occ = {}
        while True:
            info = src.qmp.cmd("query-migrate")
            st = info.get("status")
            ram = info.get("ram", {})
            seen = ram or seen
            if rate0 and st == "active":  # the VM still runs
                rate0["sched_active"] = src.vcpu_sched()
                if a.pin_vcpu is not None:
                    # who else holds the vCPU's CPU (the driver itself is
                    # among them: one scan per poll)
                    owners = {p: side for side, g in (("src", src), ("dst", dst))
                              for p in [g.pid] + descendants(g.pid)}
                    cpu_occupants(a.pin_vcpu, rate0["vcpus"], occ, owners)
                    rate0["samples"] = rate0.get("samples", 0) + 1
            el = time.monotonic() - t_start
            for h in hooks:
                if h["done"]:
                    continue
                kind, n = h["when"]
                if (kind == "b" and ram.get("transferred", 0) >= n) or (kind == "s" and el >= n):
                    h["done"] = True
                    log("hook at %s transferred, %.1fs: %s"
                        % (mib(ram.get("transferred")), el, h["label"]))
                    h["fn"]()
            if st in ("completed", "failed", "cancelled"):
                break
            if (a.postcopy_after is not None and "start_s" not in self.postcopy
                    and st == "active" and el >= a.postcopy_after):
                log("switching to postcopy after %.1fs of precopy (%s transferred)"
                    % (el, mib(ram.get("transferred"))))
                src.qmp.cmd("migrate-start-postcopy")
                self.postcopy["start_s"] = round(el, 2)
                self.postcopy["precopy_transferred"] = ram.get("transferred")
            if (st == "postcopy-active" and a.postcopy_run_dst
                    and "dst_cont_s" not in self.postcopy):
                dst_st = dst.qmp.cmd("query-migrate").get("status")
                if dst_st == "postcopy-active":
                    # libvirt's order: the destination's vCPUs run as soon as
                    # it is in postcopy; its faults become page requests.
                    dst.qmp.cmd("cont")
                    self.postcopy["dst_cont_s"] = round(el, 2)
                    log("destination in postcopy-active: cont (its faults are "
                        "served over the return path)")
            if time.monotonic() - last_print >= a.progress_interval:
                last_print = time.monotonic()
                line = "%-9s xfer %s  remain %s  dirty %s pg/s  iter %s  %s Mbps" % (
                    st, mib(ram.get("transferred")), mib(ram.get("remaining")),
                    ram.get("dirty-pages-rate", "-"), ram.get("dirty-sync-count", "-"),
                    "%.0f" % ram.get("mbps", 0))
                if "disk" in info:
                    line += "  disk %s/%s" % (mib(info["disk"].get("transferred")),
                                               mib(info["disk"].get("total")))
                log(line)
            if el > a.migrate_timeout:
                log("migration exceeded %ds; cancelling" % a.migrate_timeout)
                try:
                    src.qmp.cmd("migrate_cancel")
                except Fail:
                    pass
                info = src.qmp.cmd("query-migrate")
                info["timed_out"] = True
                break
            time.sleep(a.poll)
        info["wall_s"] = round(time.monotonic() - t_start, 2)
        if rate0 and getattr(self, "driver_cpus", None):
            os.sched_setaffinity(0, self.driver_cpus)
        if rate0:
            self.guest_rate_during(src, rate0, info)
            for when, (o, n) in (("before", rate0["occ_before"]),
                                 ("during", (occ, rate0.get("samples", 0)))):
                top = sorted(o.items(), key=lambda kv: -kv[1])[:8]
                info["guest_rate"]["cpu_occupants_" + when] = {
                    k: round(v / n, 2) for k, v in top} if n else None
                if n:
                    log("threads runnable on CPU %d beside the vCPU %s, per "
                        "sample: %s" % (a.pin_vcpu, when, ", ".join(
                            "%s %.2f" % (k, v / n) for k, v in top) or "none"))
        if "ram" not in info and seen:
            info["ram"] = dict(seen, partial=True)  # a failed run reports none
        ram = info.get("ram", {})
        log("source: %s after %.1fs, %s transferred, downtime %s ms%s"
            % (info.get("status"), info["wall_s"], mib(ram.get("transferred")),
               info.get("downtime", "-"),
               (": " + info["error-desc"]) if info.get("error-desc") else ""))
        return info

    def guest_rate_before(self, src):
        """--guest-rate-window: the mw.work=1 guest's work rate over the
        last SECS before 'migrate' (it runs them first); None without."""
        w = self.a.guest_rate_window
        if not w:
            return None
        if self.a.pin_vcpu is not None:
            # the driver's own polls stay off the vCPU's CPU (this thread
            # only, and both QEMUs are started: nothing inherits it)
            self.driver_cpus = os.sched_getaffinity(0)
            os.sched_setaffinity(0, self.driver_cpus - {self.a.pin_vcpu})
        sch = src.vcpu_sched()
        vcpus = {c["thread-id"] for c in src.qmp.cmd("query-cpus-fast")}
        vcpus.add(os.getpid())
        occ, n, end = {}, 0, time.monotonic() + w
        while time.monotonic() < end:
            if self.a.pin_vcpu is not None:  # sampled as during the migration
                cpu_occupants(self.a.pin_vcpu, vcpus, occ, {src.pid: "src"})
                n += 1
            time.sleep(self.a.poll)
        s = src.work_samples()
        if not s:
            raise Fail("--guest-rate-window: the guest prints no work= "
                       "heartbeats (boot it with --append mw.work=1)")
        pre = [x for x in s if x[2] >= s[-1][2] - w * 1000]
        return {"last": s[-1], "rate": work_rate(pre),
                "sched": (sch, src.vcpu_sched()), "vcpus": vcpus,
                "occ_before": (occ, n)}

    def guest_rate_during(self, src, rate0, info):
        """The work rate from 'migrate' until the source stopped (its last
        heartbeat), relative to the rate before."""
        s = [x for x in src.work_samples() if x[0] >= rate0["last"][0]]
        r = work_rate(s)
        # the vCPU threads' share of wall time on a CPU and queued for one
        # (before, during): less work at full share is QEMU's own overhead
        # (dirty tracking), a wait share is another thread on its CPU
        (a, b), c = rate0["sched"], rate0.get("sched_active")

        def share(x, y):
            dt = (y[0] - x[0]) * 1e9 if y else 0
            return {"run": round((y[1] - x[1]) / dt, 3),
                    "wait": round((y[2] - x[2]) / dt, 3)} if dt > 0 else None
        info["guest_rate"] = {"before": rate0["rate"], "during": r,
                              "during_s": round((s[-1][2] - s[0][2]) / 1000.0, 1)
                              if len(s) > 1 else 0,
                              "ratio": round(r / rate0["rate"], 3)
                              if r and rate0["rate"] else None,
                              "vcpu_before": share(a, b), "vcpu_during": share(b, c)}
        log("guest work rate: %s units/s before, %s during the migration (%s); "
            "vCPU on/waiting for a CPU %s before, %s during"
            % (rate0["rate"] and round(rate0["rate"]), r and round(r),
               info["guest_rate"]["ratio"], info["guest_rate"]["vcpu_before"],
               info["guest_rate"]["vcpu_during"]))

    def wait_dest_loaded(self, src, dst):
        """After the source completed: wait for the destination to finish
        loading; return the end-to-end downtime in ms (or None)."""
        done = dst.qmp.wait_event(migration_event("completed"), self.a.dest_timeout)
        failed = dst.qmp.find_event(migration_event("failed"))
        if done is None:
            st = None
            try:
                st = dst.qmp.cmd("query-migrate", timeout=5).get("status")
            except Fail:
                pass
            raise Fail("destination did not complete loading (status %s, alive %s%s); see %s"
                       % (st, dst.alive(), ", MIGRATION failed event" if failed else "",
                          dst.stderr_path))
        stop = src.qmp.find_event(lambda e: e["event"] == "STOP")
        st = dst.status()
        self.report["dest_status_after_load"] = st
        want = "running" if self.postcopy.get("dst_cont_s") is not None else "paused"
        if st != want:
            raise Fail("destination is '%s' after loading, expected '%s'" % (st, want))
        self.e2e_total_ms = round((done["t"] - self.wall0) * 1000.0, 1)
        if stop:
            return round((done["t"] - stop["t"]) * 1000.0, 1)
        return None

    def check_source_survived(self, src):
        """After a failed migration the source must run on."""
        res = {}
        time.sleep(0.5)
        st = src.status()
        res["source_status"] = st
        last = src.last_heartbeat()
        hb = src.wait_heartbeat_above(last, self.a.resume_timeout)
        res["source_heartbeats_continue"] = hb is not None
        log("source after failure: %s, heartbeats %s (%s -> %s)"
            % (st, "continue" if hb else "STOPPED", last, hb))
        if st != "running" or hb is None:
            raise Fail("source VM did not keep running after the failed migration "
                       "(status %s)" % st)
        return res

    def one_migration(self, src, hooks, expect):
        a = self.a
        out = {}
        holder = {}
        t = time.monotonic()
        dst = self.start_dest()
        holder["dst"] = dst
        hooks = self.make_hooks(src, holder) if hooks else []
        info = self.migrate(src, dst, hooks)
        ram = info.get("ram", {})
        out.update({
            "status": info.get("status"),
            "error": info.get("error-desc"),
            "total_time_ms": info.get("total-time"),
            "downtime_ms": info.get("downtime"),
            "setup_time_ms": info.get("setup-time"),
            "transferred_bytes": ram.get("transferred"),
            "ram_total_bytes": ram.get("total"),
            "duplicate_pages": ram.get("duplicate"),
            "normal_pages": ram.get("normal"),
            "dirty_sync_count": ram.get("dirty-sync-count"),
            "migrate_wall_s": info["wall_s"],
            "guest_rate": info.get("guest_rate"),
        })
        if "disk" in info:
            out["disk_transferred_bytes"] = info["disk"].get("transferred")
        if self.postcopy:
            out["postcopy"] = dict(self.postcopy)
            if "postcopy-requests" in ram:
                out["postcopy"]["requests"] = ram.get("postcopy-requests")
        self.read_stats(out)
        if info.get("status") != expect:
            raise_msg = "migration ended '%s', expected '%s'" % (info.get("status"), expect)
            self.report.setdefault("migrations", []).append(out)
            self.nbd_source_abort(src)
            if self.bg:
                out.update(self.finish_bg("failed", timeout=5))
                self.read_stats(out)
            raise Fail(raise_msg + (": " + info["error-desc"] if info.get("error-desc") else ""))
        if expect != "completed":  # failed or cancelled
            self.nbd_source_abort(src)
            out.update(self.check_source_survived(src))
            if self.bg:
                out.update(self.finish_bg("failed"))
                self.read_stats(out)
            dst.stop()
            self.guests.remove(dst)
            self.report.setdefault("migrations", []).append(out)
            return None
        self.report.setdefault("migrations", []).append(out)
        out["e2e_downtime_ms"] = self.wait_dest_loaded(src, dst)
        out["dest_load_wall_s"] = round(time.monotonic() - t, 2)
        out["e2e_total_ms"] = self.e2e_total_ms
        out["qemu_cpu_s"] = self.qemu_cpu(src, dst)
        log("destination loaded and %s; end-to-end downtime %s ms"
            % (self.report.get("dest_status_after_load"), out["e2e_downtime_ms"]))
        if a.nbd:
            self.nbd_source_finish(src)
        if a.nbd and (a.nbd_stop_at_once or not self.bg):
            dst.qmp.cmd("nbd-server-stop")
        if self.bg:
            try:
                out.update(self.finish_bg("completed"))
            finally:
                self.read_stats(out)
        if a.nbd and not (a.nbd_stop_at_once or not self.bg):
            # Only now: blockdev-del returns once the source's NBD client has
            # written NBD_CMD_DISC, which may still be in the transport; a
            # server stopped earlier would close the connection before it.
            dst.qmp.cmd("nbd-server-stop")
        self.report.update(out)
        return dst

    def qemu_cpu(self, src, dst):
        """CPU seconds of both QEMUs from 'migrate' until the destination
        loaded: total and without the vCPU threads (the guest's own work)."""
        res = {}
        for side, g in (("src", src), ("dst", dst)):
            a, b = self.cpu0.get(side), proc_cpu(g.pid)
            if a and b:
                res[side] = {"total": round(b[0] - a[0], 2),
                             "vcpu": round(b[1] - a[1], 2),
                             "migration": round((b[0] - a[0]) - (b[1] - a[1]), 2)}
        return res

    def read_stats(self, out):
        # migwire writes its final line as it exits, which under exec: can
        # be a moment after QEMU reports completion: wait a little for it
        for key, path in (("stats", self.a.stats_file),
                          ("recv_stats", self.a.recv_stats_file)):
            if not path:
                continue
            deadline = time.monotonic() + 10
            while True:
                st = last_json_line(self.subst(path))
                if (st and st.get("final")) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            out[key] = st
