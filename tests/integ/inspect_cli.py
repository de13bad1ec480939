#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`migwire inspect` as a command, without QEMU (the e2e tests
inspect_qemu72/10 read real streams): streams from the parser's seed
corpus read from a file and from a pipe give the same report; a cut
stream is reported as such; a file that is not a stream, an empty input
and a missing file fail with one line and status 1; usage errors give 2.

    inspect_cli.py MIGWIRE DATAGEN MKCERTS CORPUS_DIR
"""
import json
import os
import subprocess
import sys
import tempfile


def run(args, stdin=None):
    p = subprocess.run(args, input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def check(ok, what):
    if not ok:
        print("inspect_cli: FAIL: " + what, file=sys.stderr)
        sys.exit(1)


def main():
    mw, corpus = sys.argv[1], sys.argv[4]
    inspect = [mw, "inspect"]
    # unit-0: precopy to a device section (tests/unit/test_stream_parse.c)
    pre = os.path.join(corpus, "unit-0")
    data = open(pre, "rb").read()
    rc, out, err = run(inspect + [pre])
    check(rc == 0 and "then opaque  device state section 'timer'" in out,
          "table of unit-0: %d %r %r" % (rc, out[:300], err))
    rc, out, err = run(inspect + ["--json", pre])
    check(rc == 0, "--json unit-0: %d %r" % (rc, err))
    f = json.loads(out)
    check(f["bytes"] == len(data) and f["records"]["page"] == 4 and
          f["records"]["zero"] == 1 and f["full_pages"]["exact"] == 1 and
          f["opaque"]["offset"] == f["understood_bytes"],
          "unit-0 figures: %r" % f)
    rc, out, err = run(inspect + ["--json", "-"], stdin=data)
    check(rc == 0, "--json - : %d %r" % (rc, err))
    p = json.loads(out)
    check(p["input"] == "(stdin)", "stdin's name: %r" % p["input"])
    del f["input"], p["input"]
    check(f == p, "file and stdin reports differ")
    # -v says where parsing stopped, once
    rc, out, err = run(inspect + ["-v", "--no-codecs", pre])
    check(rc == 0 and err.count("opaque from byte") == 1,
          "-v: %d %r" % (rc, err))

    # a real stream cut short: understood to its end, not complete
    head = os.path.join(corpus, "qemu72-head")
    rc, out, err = run(inspect + ["--json", head])
    check(rc == 0, "qemu72-head: %d %r" % (rc, err))
    h = json.loads(out)
    check(h["machine"] == "pc-i440fx-7.2" and h["opaque"] is None and
          not h["complete"] and h["ram"]["blocks"] == 6 and
          h["records"]["mem_size"] == 1, "qemu72-head figures: %r" % h)

    with tempfile.TemporaryDirectory() as tmp:
        noise = os.path.join(tmp, "noise")
        with open(noise, "wb") as fh:
            fh.write(b"\x16\x03\x01\x02\x00" + bytes(100))
        rc, out, err = run(inspect + [noise])
        check(rc == 1 and out == "" and err ==
              "migwire inspect: not a QEMU migration stream: first bytes "
              "16 03 01 02 00 00 00 00\n", "non-stream: %d %r" % (rc, err))
        rc, out, err = run(inspect + ["-"], stdin=b"")
        check(rc == 1 and err == "migwire inspect: empty input\n",
              "empty: %d %r" % (rc, err))
        rc, out, err = run(inspect + [os.path.join(tmp, "missing")])
        check(rc == 1 and "No such file" in err and err.count("\n") == 1,
              "missing: %d %r" % (rc, err))

    for bad in (["--bogus"], ["a", "b"], ["--page-size", "3000"],
                ["--cache", "lots"], ["--chunk-size", "1"], ["--cache"],
                ["--cach", "1M"]):  # no prefix abbreviations
        rc, out, err = run(inspect + bad)
        check(rc == 2 and err.startswith("migwire inspect: ") and
              err.count("\n") == 1, "usage %r: %d %r" % (bad, rc, err))
    rc, out, err = run(inspect + ["--help"])
    check(rc == 0 and out.startswith("usage: migwire inspect"), "--help")
    rc, out, err = run(inspect + ["--version"])
    check(rc == 0 and out.startswith("migwire "), "--version")
    print("inspect_cli: ok")


main()
