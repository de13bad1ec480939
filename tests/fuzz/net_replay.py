#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Network replay of hostile sender streams against a real `migwire recv`.

Each case is NAME.stream (the bytes a sender writes on one --no-tls
channel: HELLO, then DATA/END/... frames), NAME.valid (the verified chunks
of that stream in sequence order) and NAME.expect ("exit=ok|fail|any").
tests/fuzz/mkframes writes them (python has no XXH3); more cases, e.g.
crash reproducers, can sit in any directory named on the command line.

For every case a fresh receiver runs as
    migwire recv --no-tls --listen 127.0.0.1:PORT --wait 5 --timeout 5
                 --window 64K --reconnect-timeout 2
and this script connects, sends the stream, reads what the receiver says
until it closes, answers an ACK, or stays silent for a second, then closes
the connection. The receiver must then exit within --hang-timeout seconds
and:
  exit=fail  exit non-zero with exactly one line on stderr (or, when the
             stream just stops, the `channel 0 lost` line and then the
             one that it was not resumed within --reconnect-timeout), and
             its stdout is a prefix of NAME.valid (it wrote nothing
             unverified);
  exit=ok    exit 0, stdout equal to NAME.valid, nothing on stderr;
  exit=any   either of the two (the receiver may have finished before the
             hostile frame arrived).
An "ok_bytes=N" line says that success means exactly the first N valid
bytes (END declared less than the stream carried). A "known_bug=" line marks a reported receiver bug: the case then passes as
XFAIL while it fails, and fails as XPASS once the bug is fixed.
Exit status: 0 when every case passed, 1 otherwise.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'lib'))
from mwproc import free_port  # noqa: E402

HDR = 40
FT_ACK = 5


def connect(port, deadline):
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def converse(sock, stream):
    """Sends the stream, then listens; True if an ACK came back."""
    sock.settimeout(3)
    try:
        sock.sendall(stream)
    except OSError:
        pass  # the receiver stopped reading or closed: fine, it decides
    buf = b""
    sock.settimeout(1)
    while True:
        try:
            d = sock.recv(65536)
        except OSError:
            return False  # silent for a second (or reset)
        if not d:
            return False
        buf += d
        # whole frames only: a header may come before its payload
        while len(buf) >= HDR:
            if buf[2] == FT_ACK:
                return True
            end = HDR + int.from_bytes(buf[16:20], "big")
            if end > len(buf):
                break
            buf = buf[end:]


def run_case(args, path, tmp):
    """Returns (name, passed, message) after applying a known_bug mark."""
    name = os.path.basename(path)[:-len(".stream")]
    expect = {}
    with open(path[:-len(".stream")] + ".expect") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            expect[k] = v
    ok, msg = check_case(args, path, tmp, name, expect)
    known = expect.get("known_bug")
    if not known:
        return name, ok, msg
    if ok:
        return name, False, "XPASS: the known bug is gone, remove its " \
            "mark from mkframes.c: " + msg
    return name, True, "XFAIL (known bug: %s): %s" % (known, msg)


def check_case(args, path, tmp, name, expect):
    base = path[:-len(".stream")]
    with open(path, "rb") as f:
        stream = f.read()
    with open(base + ".valid", "rb") as f:
        valid = f.read()
    # a known hang need not be waited for in full
    hang = min(args.hang_timeout, 3) if "known_bug" in expect else \
        args.hang_timeout
    port = free_port()
    out_p = os.path.join(tmp, name + ".out")
    err_p = os.path.join(tmp, name + ".err")
    cmd = [args.migwire, "recv", "--no-tls", "--listen",
           "127.0.0.1:%d" % port, "--wait", "5", "--timeout", "5",
           "--window", "64K", "--reconnect-timeout", "2"]
    t0 = time.monotonic()
    with open(out_p, "wb") as out, open(err_p, "wb") as err:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=err)
    try:
        try:
            sock = connect(port, t0 + 5)
        except OSError as e:
            sock = None
            why_conn = str(e)
        if sock:
            converse(sock, stream)
            sock.close()
        try:
            rc = p.wait(timeout=hang)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return False, "HANG: recv still running %ds after the " \
                "sender closed (%s)" % (hang, expect.get("why"))
        if not sock:
            return False, "could not connect: " + why_conn
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    with open(out_p, "rb") as f:
        got = f.read()
    with open(err_p, "rb") as f:
        errtxt = f.read().decode(errors="replace")
    lines = errtxt.splitlines()
    dt = time.monotonic() - t0
    want = expect.get("exit", "fail")
    if not valid.startswith(got):
        return False, "UNVERIFIED OUTPUT: %d bytes on stdout are " \
            "not a prefix of the %d valid bytes" % (len(got), len(valid))
    if rc == 0:
        if "ok_bytes" in expect:  # END declared less than was sent
            valid = valid[:int(expect["ok_bytes"])]
        if want == "fail":
            return False, "exit 0, expected failure (%s)" % \
                expect.get("why")
        if got != valid:
            return False, "exit 0 but wrote %d of %d bytes" % \
                (len(got), len(valid))
        if lines:
            return False, "exit 0 with stderr: %r" % errtxt
        return True, "ok, %d bytes (%.2fs)" % (len(got), dt)
    if want == "ok":
        return False, "exit %d, expected success: %s" % (rc, errtxt)
    if rc < 0:
        return False, "killed by signal %d: %s" % (-rc, errtxt)
    # a stream that stops is a lost channel: no sender resumes it
    if len(lines) == 2 and " lost (" in lines[0] and \
            "not resumed" in lines[1]:
        lines = lines[1:]
    if len(lines) != 1:
        return False, "exit %d with %d stderr lines: %r" % \
            (rc, len(lines), errtxt)
    return True, "exit %d, %d/%d bytes (%.2fs): %s" % \
        (rc, len(got), len(valid), dt, lines[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--migwire", required=True)
    ap.add_argument("--mkframes", help="generate its cases into WORK")
    ap.add_argument("--work", default=None)
    ap.add_argument("--hang-timeout", type=int, default=10)
    ap.add_argument("--only", default=None, help="run cases with this "
                    "substring in the name")
    ap.add_argument("dirs", nargs="*")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="mw-net-")
    os.makedirs(work, exist_ok=True)
    dirs = []
    if args.mkframes:
        gen = os.path.join(work, "corpus", "net")
        os.makedirs(gen, exist_ok=True)
        for f in os.listdir(gen):
            os.unlink(os.path.join(gen, f))
        subprocess.run([args.mkframes, "net", gen], check=True)
        dirs.append(gen)
    dirs += [d for d in args.dirs if os.path.isdir(d)]
    cases = sorted(os.path.join(d, f) for d in dirs for f in os.listdir(d)
                   if f.endswith(".stream"))
    if args.only:
        cases = [c for c in cases if args.only in os.path.basename(c)]
    if not cases:
        print("net_replay: no cases", file=sys.stderr)
        return 1
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    failed = 0
    for c in cases:
        name, ok, msg = run_case(args, c, logs)
        print("%s %-28s %s" % ("PASS" if ok else "FAIL", name, msg),
              flush=True)
        failed += not ok
    print("net_replay: %d cases, %d failed (logs in %s)" %
          (len(cases), failed, logs))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
