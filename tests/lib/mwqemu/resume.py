# SPDX-License-Identifier: MIT
"""Resume phase: 'cont' the destination and wait for a heartbeat newer than
the source's last one; with --verify-heartbeats, check every heartbeat's
checksum on both sides against a host model of the idle guest.
"""

import os
import shutil
import subprocess
import time

from . import TOOLS, Fail, Skip, log


# The idle test guest (mw.rate=0) never writes its working set after the
# fill, so each heartbeat's checksum is a function of the counter alone. This
# host program rebuilds the working set with the guest's own code and prints
# the expected checksum of every counter asked for.
HB_MODEL_C = r"""
#define main mw_guest_main
#include "%(init)s"
#undef main
int main(int argc, char **argv)
{
	unsigned long ws_mib = strtoul(argv[1], NULL, 10);
	uint64_t seed = strtoull(argv[2], NULL, 10);
	size_t npages = (size_t)ws_mib * (1024 * 1024 / PAGE);
	uint8_t *ws = malloc(npages * PAGE);
	char line[64];

	if (!ws)
		return 1;
	rng_state = seed ? seed : 1;
	for (size_t i = 0; i < npages; i++)
		fill_page(ws + i * PAGE, i);
	while (fgets(line, sizeof(line), stdin)) {
		uint64_t counter = strtoull(line, NULL, 10);
		uint64_t h = 0xcbf29ce484222325ULL;
		size_t sample = (size_t)((16 * (counter - 1) %% npages) * 7919 %% npages);

		h = fnv1a(h, (const uint8_t *)&counter, sizeof(counter));
		for (int k = 0; k < 16; k++) {
			h = fnv1a(h, ws + sample * PAGE, 256);
			sample = (sample + 7919) %% npages;
		}
		printf("%%llu %%016llx\n", (unsigned long long)counter,
		       (unsigned long long)h);
	}
	return 0;
}
"""


def expected_heartbeats(tmp, ws_mib, counters):
    """{counter: checksum} of the idle guest, or None without a compiler."""
    init = os.path.join(TOOLS, "guest", "mw-guest-init.c")
    if not shutil.which("gcc") or not os.path.exists(init):
        return None
    src = os.path.join(tmp, "hb-model.c")
    exe = os.path.join(tmp, "hb-model")
    with open(src, "w") as f:
        f.write(HB_MODEL_C % {"init": init})
    r = subprocess.run(["gcc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-w", "-o", exe, src],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        log("heartbeat model did not build: %s" % r.stdout.decode(errors="replace")[-300:])
        return None
    r = subprocess.run([exe, str(ws_mib), "1"], input="".join(
        "%d\n" % c for c in counters).encode(), stdout=subprocess.PIPE, check=True)
    out = {}
    for line in r.stdout.decode().split("\n"):
        if line:
            c, h = line.split()
            out[int(c)] = h
    return out


class Resume:
    """The destination resumed, its heartbeats checked (a mixin of Run)."""

    def resume(self, src, dst):
        t = time.monotonic()
        last = src.last_heartbeat()
        if dst.status() == "running":
            # Already running (postcopy with --postcopy-run-dst): it must go
            # on past both the source's last and its own latest heartbeat.
            last = max(last or 0, dst.last_heartbeat() or 0)
        else:
            dst.qmp.cmd("cont")
        hb = dst.wait_heartbeat_above(last, self.a.resume_timeout)
        self.report["phases"]["resume_s"] = round(time.monotonic() - t, 2)
        self.report["source_last_heartbeat"] = last
        self.report["dest_heartbeat"] = hb
        if hb is None:
            raise Fail("destination printed no heartbeat above %s within %ds after cont; see %s"
                       % (last, self.a.resume_timeout, dst.serial))
        log("destination resumed: heartbeat %d > source's last %s" % (hb, last))

    def verify_heartbeats(self, src, dst):
        """Idle guest: every heartbeat checksum (source before, destination
        after the migration) must match the model: proves the sampled
        working-set pages arrived intact even where memory cannot be
        compared (postcopy with the destination running)."""
        if self.a.rate != 0 or "mw.seed" in (self.a.append or ""):
            raise Fail("--verify-heartbeats needs an idle guest (--rate 0) and the default seed")
        time.sleep(1.0)  # a few more lines on the destination
        seen = {"src": src.heartbeats(), "dst": dst.heartbeats()}
        counters = sorted({c for v in seen.values() for c, _ in v})
        want = expected_heartbeats(self.tmp, self.a.ws, counters)
        if want is None:
            raise Skip("gcc is needed for --verify-heartbeats")
        res = {}
        for side, hbs in seen.items():
            bad = [c for c, h in hbs if want.get(c) != h]
            res[side] = {"checked": len(hbs), "bad": len(bad), "first_bad": bad[:5]}
        self.report["heartbeat_checksums"] = res
        log("heartbeat checksums: source %d/%d, destination %d/%d match the model"
            % (res["src"]["checked"] - res["src"]["bad"], res["src"]["checked"],
               res["dst"]["checked"] - res["dst"]["bad"], res["dst"]["checked"]))
        if res["src"]["bad"] or res["dst"]["bad"] or not res["dst"]["checked"]:
            raise Fail("heartbeat checksums differ from the idle guest's model: %s" % res)
