# SPDX-License-Identifier: MIT
"""One driver run: the state every phase shares, cleanup, and the order of
the phases (boot, migrate [and retry], compare, resume).

State (set here unless noted):
  a           the parsed command line (tools/mw-migrate)
  guests      the Guests started and not yet stopped
  report      the JSON report, filled by every phase
  tmp, logdir the private directory and where logs go
  port        the value of {port} (migrate.py picks a new one per attempt)
  accel       kvm or tcg once boot.py chose; attempts: destinations started
  bg          name -> BgProc of the current attempt (sockmode.py)
  postcopy    what --postcopy-after did (migrate.py)
  nbd_state   mirroring or None (nbd.py)
  cpu0, wall0, e2e_total_ms   migrate.py's timing of the current migration
"""

import os
import shutil
import tempfile
import time

from mwproc import free_port

from . import Fail, log
from .boot import Boot
from .compare import Compare
from .migrate import Migrate
from .nbd import Nbd
from .resume import Resume
from .sockmode import SockMode


class Run(Boot, Migrate, SockMode, Nbd, Compare, Resume):
    """A whole driver run: construct, run(), then always cleanup()."""

    def __init__(self, a):
        self.a = a
        self.guests = []
        self.report = {"phases": {}}
        self.tmp = tempfile.mkdtemp(prefix="mw-migrate.")
        self.logdir = a.log_dir or self.tmp
        os.makedirs(self.logdir, exist_ok=True)
        self.port = a.port or free_port()
        self.accel = a.accel
        self.attempts = 0
        self.bg = {}          # name -> BgProc of the current attempt
        self.postcopy = {}    # what --postcopy-after did

    def subst(self, s):
        return (s.replace("{port}", str(self.port)).replace("{tmp}", self.tmp)
                .replace("{logdir}", self.logdir))

    def cleanup(self):
        for b in list(self.bg.values()):
            try:
                b.stop()
            except Exception as e:  # keep cleaning the others
                log("cleanup of %s: %s" % (b.name, e))
        self.bg = {}
        for g in self.guests:
            try:
                g.stop()
            except Exception as e:  # keep cleaning the others
                log("cleanup of %s: %s" % (g.name, e))
        self.guests = []
        if not self.a.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self):
        a = self.a
        self.report["logdir"] = self.logdir if a.log_dir else None
        src = self.boot_source()
        self.set_source_params(src)
        t = time.monotonic()
        expect = a.expect
        dst = self.one_migration(src, True, expect)
        self.report["phases"]["migrate_s"] = round(time.monotonic() - t, 2)
        if expect != "completed":
            if not a.retry:
                self.report["status"] = expect
                return
            log("retrying: second migration must succeed")
            t = time.monotonic()
            dst = self.one_migration(src, False, "completed")
            self.report["phases"]["retry_migrate_s"] = round(time.monotonic() - t, 2)
        if not a.no_compare and self.postcopy.get("dst_cont_s") is not None:
            # The destination ran during postcopy: its memory has moved on
            # from the source's (paused at the switch), so a byte compare
            # means nothing; the heartbeat check below proves it is sane.
            self.report["memory_identical"] = None
            self.report["memory_compare"] = "skipped: destination ran during postcopy"
        elif not a.no_compare:
            res = self.compare(src, dst)
            self.report.update(res)
            if not res["memory_identical"]:
                raise Fail("guest memory differs in %d pages" % res["differing_pages"])
            if a.disk and not res["disk_identical"]:
                raise Fail("disk images differ")
        if not a.no_resume:
            self.resume(src, dst)
        if a.verify_heartbeats:
            self.verify_heartbeats(src, dst)
