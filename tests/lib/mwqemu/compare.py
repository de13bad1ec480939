# SPDX-License-Identifier: MIT
"""Compare phase: with both sides paused, pmemsave all guest RAM on both and
compare it byte for byte, page by page (and the disk images with --disk).
"""

import os
import time

from . import log

PAGE = 4096


def ram_ranges(mem_mib):
    """Guest-physical ranges of RAM on the i440fx 'pc' machine."""
    size = mem_mib << 20
    if size < 0xe0000000:
        return [(0, size)]
    low = 0xc0000000
    return [(0, low), (1 << 32, size - low)]


def compare_files(a, b, chunk=1 << 20):
    """Return (identical, differing_pages, first_offsets)."""
    diff, first = 0, []
    with open(a, "rb") as fa, open(b, "rb") as fb:
        off = 0
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if not x and not y:
                break
            if x != y:
                for p in range(0, max(len(x), len(y)), PAGE):
                    if x[p:p + PAGE] != y[p:p + PAGE]:
                        diff += 1
                        if len(first) < 8:
                            first.append(hex(off + p))
            off += chunk
    return diff == 0, diff, first


class Compare:
    """Guest memory and disks of both sides compared (a mixin of Run)."""

    def compare(self, src, dst):
        t = time.monotonic()
        res = {}
        for side, g in (("src", src), ("dst", dst)):
            path = os.path.join(self.tmp, side + ".mem")
            with open(path, "wb"):
                pass
            for i, (base, size) in enumerate(ram_ranges(self.a.mem)):
                part = path if i == 0 else "%s.%d" % (path, i)
                g.qmp.cmd("pmemsave", val=base, size=size, filename=part, timeout=300)
        total_diff, first = 0, []
        for i, _ in enumerate(ram_ranges(self.a.mem)):
            sfx = "" if i == 0 else ".%d" % i
            same, diff, f = compare_files(os.path.join(self.tmp, "src.mem" + sfx),
                                          os.path.join(self.tmp, "dst.mem" + sfx))
            total_diff += diff
            first += f
        res["memory_identical"] = total_diff == 0
        res["differing_pages"] = total_diff
        if first:
            res["first_differing_addresses"] = first[:8]
        for side in ("src", "dst"):
            for fn in os.listdir(self.tmp):
                if fn.startswith(side + ".mem"):
                    os.unlink(os.path.join(self.tmp, fn))
        if self.a.disk:
            same, diff, f = compare_files(self.disk_path("src"), self.disk_path("dst"))
            res["disk_identical"] = same
            res["disk_differing_blocks"] = diff
        self.report["phases"]["compare_s"] = round(time.monotonic() - t, 2)
        log("memory %s (%d differing pages)%s"
            % ("identical" if res["memory_identical"] else "DIFFERS", total_diff,
               "" if not self.a.disk else
               "; disk %s" % ("identical" if res["disk_identical"] else "DIFFERS")))
        return res
