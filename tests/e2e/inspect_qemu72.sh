#!/bin/bash
# SPDX-License-Identifier: MIT
# (p) `migwire inspect` on real streams, QEMU 7.2. Precopy: a small guest
# dirtying 20 MiB/s migrates through exec:"tee FILE | socat ..." (so FILE
# is exactly what the destination loaded); inspect reads FILE and, as a
# live stream comes, stdin. It must understand everything up to the first
# device section after RAM END, account for every byte and every page of
# RAM, agree with QEMU's own page counters, and say the same from the file
# and from the pipe. Postcopy: the same guest through exec:"tee FILE |
# migwire send" (postcopy needs the return path), switched to postcopy
# after 1.5 s: inspect must understand the whole stream. inspect_qemu10
# runs this with E2E_INSPECT_QEMU10=1.
. "$(dirname "$0")/lib.sh"
qemu_args=()
[ -n "${E2E_INSPECT_QEMU10:-}" ] && qemu_args=(--qemu "$(e2e_qemu10)")
[ -x "$MIGWIRE" ] || skip "no migwire binary at $MIGWIRE"
stream=$e2e_tmp/stream.bin
RECV_CMD=$(e2e_wrap recv "socat -u UNIX-LISTEN:{tmp}/mig.sock -")
SEND_CMD=$(e2e_wrap send "tee $stream | socat -u - UNIX-CONNECT:{tmp}/mig.sock")
STATS_ARGS=()
e2e_migrate "${qemu_args[@]}" --mem 256 --ws 64 --rate 20 --no-compare \
	--no-resume >/dev/null

# precopy
"$MIGWIRE" inspect -v "$stream" >"$e2e_logdir/inspect.txt" \
	2>"$e2e_logdir/inspect.err" || fail "inspect FILE failed: $(cat "$e2e_logdir/inspect.err")"
cat "$e2e_logdir/inspect.txt" >&2
"$MIGWIRE" inspect --json "$stream" >"$e2e_logdir/inspect.json" ||
	fail "inspect --json FILE failed"
cat "$stream" | "$MIGWIRE" inspect --json - >"$e2e_logdir/inspect-stdin.json" ||
	fail "inspect --json - failed"
grep -q "opaque from byte" "$e2e_logdir/inspect.err" ||
	fail "-v did not say where parsing stopped"

python3 - "$e2e_logdir/inspect.json" "$e2e_logdir/inspect-stdin.json" \
	"$(stat -c %s "$stream")" "$e2e_logdir/report.json" <<'PY' || fail "inspect's report is inconsistent"
import json, sys
f = json.load(open(sys.argv[1]))
p = json.load(open(sys.argv[2]))
size = int(sys.argv[3])
q = json.load(open(sys.argv[4]))  # mw-migrate's report: QEMU's counters
bad = []
def check(ok, what):
    if not ok:
        bad.append(what)
check(f["bytes"] == size, "bytes %d != file size %d" % (f["bytes"], size))
r, rec, fp = f["ram"], f["records"], f["full_pages"]
check(r["start"] == 1 and r["end"] == 1 and r["part"] >= 1,
      "ram sections %r" % r)
# understood up to the device state written after RAM END
o = f["opaque"]
check(o is not None and o["reason"].startswith("device state section"),
      "opaque: %r" % o)
check(f["understood_bytes"] >= r["bytes"] and f["understood_bytes"] < size,
      "understood %d of %d, ram %d" % (f["understood_bytes"], size, r["bytes"]))
check(size - f["understood_bytes"] < 4 << 20, "device state tail too large")
# every page of RAM was sent, and every page record is counted once
pages = r["total"] // f["page_size"]
check(f["distinct_pages"] == pages,
      "distinct pages %d != RAM pages %d" % (f["distinct_pages"], pages))
nrec = rec["zero"] + rec["page"] + rec["xbzrle"] + rec["compressed"]
per_pass = sum(x["zero"] + x["full"] + x["other"] for x in f["pass"])
check(nrec == per_pass, "page records %d != passes' %d" % (nrec, per_pass))
check(nrec >= pages, "fewer page records than pages")
re = fp["exact"] + fp["delta1"] + fp["delta10"] + fp["differ"] + \
    fp["evicted"] + fp["unknown"]
check(fp["resent"] == re and fp["first"] + re == rec["page"],
      "full pages: %r, %d records" % (fp, rec["page"]))
check(fp["bytes"] == rec["page"] * f["page_size"], "page bytes")
check(rec["eos"] == r["start"] + r["part"] + r["end"], "EOS per section")
check(rec["page"] == q["normal_pages"] and rec["zero"] == q["duplicate_pages"],
      "QEMU counted %d normal and %d zero pages" % (q["normal_pages"],
                                                    q["duplicate_pages"]))
e = f["estimates"]
for c in ("zstd-1", "zlib-1"):
    check(0 < e["codecs"][c] < size, "codec %s: %d" % (c, e["codecs"][c]))
    check(0 < e["page_stage"][c] <= e["codecs"][c] + 4096 * e["chunks"],
          "page stage %s" % c)
check(e["page_stage"]["residual_bytes"] ==
      size - e["page_stage"]["pages_replaced"] * f["page_size"], "residual")
del f["input"], p["input"]
check(f == p, "stdin and FILE reports differ")
for b in bad:
    print("inspect_qemu: " + b, file=sys.stderr)
print("inspect_qemu: %d bytes, %d page records (%d zero, %d full; %d "
      "exact repeats, %d within 1%%, %d within 10%%), %d passes; zstd-1 "
      "%d, zlib-1 %d, page stage + zstd-1 %d; QEMU dirty-sync-count %d" % (
          size, nrec, rec["zero"], rec["page"], fp["exact"], fp["delta1"],
          fp["delta10"], f["passes"], e["codecs"]["zstd-1"],
          e["codecs"]["zlib-1"], e["page_stage"]["zstd-1"],
          q["dirty_sync_count"]), file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# postcopy: the PACKAGED blob is stepped over, RAM goes on after it, and
# with no device section outside the blob the whole stream is understood
rm -f "$stream"
RECV_CMD=$(e2e_wrap recv "$MIGWIRE recv --listen 127.0.0.1:{port} --no-tls")
SEND_CMD=$(e2e_wrap send "tee $stream | $MIGWIRE send --to 127.0.0.1:{port} --no-tls")
e2e_migrate "${qemu_args[@]}" --mem 256 --ws 64 --rate 0 --max-bandwidth 32 \
	--postcopy-after 1.5 --postcopy-run-dst --no-compare >/dev/null
"$MIGWIRE" inspect --json --no-codecs "$stream" >"$e2e_logdir/postcopy.json" ||
	fail "inspect --json (postcopy) failed"
python3 - "$e2e_logdir/postcopy.json" "$(stat -c %s "$stream")" \
	"$e2e_logdir/report.json" <<'PY' || fail "inspect did not read the postcopy stream"
import json, sys
f = json.load(open(sys.argv[1]))
q = json.load(open(sys.argv[3]))
rec = f["records"]
ok = (f["bytes"] == int(sys.argv[2]) and f["opaque"] is None and f["complete"]
      and f["understood_bytes"] == f["bytes"]
      and f["commands"].get("PACKAGED") == 1
      and f["commands"].get("POSTCOPY_ADVISE") == 1
      and f["ram"]["end"] == 1
      and f["distinct_pages"] == f["ram"]["total"] // f["page_size"]
      and rec["page"] == q["normal_pages"]
      and rec["zero"] == q["duplicate_pages"])
print("inspect_qemu: postcopy: %d bytes, complete %s, opaque %r, commands "
      "%r, %d zero and %d full pages (QEMU: %d, %d), %d passes" % (
          f["bytes"], f["complete"], f["opaque"], f["commands"], rec["zero"],
          rec["page"], q["duplicate_pages"], q["normal_pages"], f["passes"]),
      file=sys.stderr)
sys.exit(0 if ok else 1)
PY

# a file that is not a stream: one line, status 1
head -c 4096 /dev/urandom >"$e2e_tmp/noise"
printf 'XXXX' | cat - "$e2e_tmp/noise" >"$e2e_tmp/noise2"
rc=0
"$MIGWIRE" inspect "$e2e_tmp/noise2" >/dev/null 2>"$e2e_logdir/noise.err" || rc=$?
[ $rc -eq 1 ] && grep -q "^migwire inspect: not a QEMU migration stream: first bytes 58 58 58 58" \
	"$e2e_logdir/noise.err" || fail "a non-stream gave status $rc: $(cat "$e2e_logdir/noise.err")"
say "PASS"
