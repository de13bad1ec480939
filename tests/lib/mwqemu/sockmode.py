# SPDX-License-Identifier: MIT
"""Socket mode (what libvirt does with --migrateuri unix://... --disks-uri):
QEMU migrates to a URI instead of exec:, and the driver starts the transport
itself as background commands (--send-bg, --recv-bg), waits for them to
listen, and after the migration reports their exit status and last lines.
"""

import os
import re
import time

from mwproc import tcp_listening

from . import Fail, log
from .guest import BgProc


class SockMode:
    """URIs and the background transport commands (a mixin of Run)."""

    def unix_paths(self, *texts):
        """Paths of every unix:PATH in the given (unsubstituted) strings."""
        out = []
        for t in texts:
            if t:
                out += re.findall(r"unix:(?://)?([^,\s'\"]+)", self.subst(t))
        return out

    def wait_paths(self, paths, watch, what, timeout=15):
        """Wait until every unix socket path exists; fail if something in
        watch (Guest or BgProc) died first."""
        deadline = time.monotonic() + timeout
        while True:
            for w in watch:
                if not w.alive():
                    raise Fail("%s exited before listening on %s; see %s"
                               % (w.name, " ".join(paths),
                                  getattr(w, "stderr_path", None) or w.log_path))
            if all(os.path.exists(p) for p in paths):
                return
            if time.monotonic() > deadline:
                raise Fail("%s did not listen on %s within %ds"
                           % (what, " ".join(paths), timeout))
            time.sleep(0.05)

    def start_bg(self, name, cmd):
        ns = self.a.src_netns if name == "send-bg" else self.a.dst_netns
        b = BgProc(name, self.subst(cmd), self.logdir, ns)
        self.bg[name] = b
        log("started %s (pid %d): %s" % (name, b.pid, b.cmd))
        return b

    def wait_bg_listen(self, b, cmd, dst):
        deadline = time.monotonic() + 15
        paths = self.unix_paths(re.sub(r"--connect\s+\S+", "", cmd))
        while time.monotonic() < deadline:
            if not b.alive():
                raise Fail("%s exited (%s) before listening: %s"
                           % (b.name, b.proc.returncode, " | ".join(b.tail())))
            if "{port}" in cmd:
                if tcp_listening(self.port, b.pid if self.a.dst_netns else None):
                    return
            elif paths:
                if all(os.path.exists(p) for p in paths):
                    return
            else:
                time.sleep(0.5)
                return
            time.sleep(0.05)
        raise Fail("%s did not start listening within 15s" % b.name)

    def finish_bg(self, expect, timeout=None):
        """After the migration: wait for the background commands to exit,
        report their status; with expect == completed non-zero fails."""
        res = {}
        for name in ("send-bg", "recv-bg"):
            b = self.bg.get(name)
            if not b:
                continue
            limit = self.a.bg_timeout if timeout is None else timeout
            rc = b.wait(limit)
            if rc is None:
                log("%s still running %ds after the migration ended; killing it"
                    % (name, limit))
                b.stop()
                r = b.result()
                r["exit"] = None
                r["timed_out"] = True
            else:
                r = b.result()
            res[name.replace("-", "_")] = r
            log("%s exited %s%s" % (name, r["exit"], (": " + r["stderr_tail"][-1])
                                    if r["stderr_tail"] and r["exit"] else ""))
            b.stop()
        self.bg = {}
        if expect == "completed":
            for k, r in res.items():
                if r["exit"] != 0:
                    self.report.update(res)
                    raise Fail("%s %s: %s" % (
                        k.replace("_", "-"), "did not exit" if r.get("timed_out")
                        else "exited %s" % r["exit"], " | ".join(r["stderr_tail"][-2:])))
        return res
