# SPDX-License-Identifier: MIT
"""mwqemu: live-migrate the migwire test guest (tools/mkvm) between two local
QEMUs and prove the result; the library behind tools/mw-migrate (its command
line, which tests/e2e and bench/compare run) and python3 stdlib only.

  qmp.py       the QMP client: replies by id, events with QEMU's timestamps
  guest.py     one QEMU we started (Guest) and a background command (BgProc)
  run.py       Run: the state of one driver run and the order of the phases
  boot.py      QEMU command lines, the source's boot, capabilities, parameters
  migrate.py   the destination, one migration, its hooks and its report
  sockmode.py  socket mode: URIs, the background transport commands
  nbd.py       libvirt's copy-storage over NBD (blockdev-mirror)
  compare.py   guest RAM (pmemsave) and disks compared byte for byte
  resume.py    cont the destination; heartbeats and their checksum model

Each phase module holds one mixin of Run: the methods of that phase, on the
state Run keeps (run.py lists it). Process and port helpers come from
tests/lib/mwproc.py.
"""
import os
import sys
import time

# tests/lib/mwqemu -> tools/ (mkvm, guest/mw-guest-init.c). Importers put
# tests/lib on sys.path, which also makes mwproc importable from here.
TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     "..", "..", "..", "tools")

T0 = time.monotonic()


def log(msg):
    sys.stderr.write("[mw-migrate %7.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


def mib(n):
    return "%.1f MiB" % ((n or 0) / 1048576.0)


class Fail(Exception):
    """A phase did not meet its expectation; the message says why."""


class Skip(Exception):
    """A prerequisite is missing: exit 77."""
