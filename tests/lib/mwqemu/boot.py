# SPDX-License-Identifier: MIT
"""Boot phase: the QEMU command line of either side, starting a QEMU, booting
the source until the guest prints heartbeats (with --accel auto: KVM, else
TCG), and the migration capabilities and parameters both sides get.
"""

import os
import re
import time

from . import Fail, log
from .guest import Guest, netns_prefix


def kv_params(kvs):
    """K=V strings as QMP arguments: integers and booleans typed."""
    out = {}
    for kv in kvs:
        k, v = kv.split("=", 1)
        out[k] = int(v) if re.fullmatch(r"-?\d+", v) else (
            v == "true" if v in ("true", "false") else v)
    return out


class Boot:
    """Starting QEMUs and setting them up for migration (a mixin of Run)."""

    def qemu_argv(self, side, accel):
        a = self.a
        qemu = a.dst_qemu if side == "dst" and a.dst_qemu else a.qemu
        cpu = a.cpu or ("max" if accel == "tcg" else "host")
        accel_opt = "tcg,thread=multi" if accel == "tcg" else "kvm"
        prealloc = "on" if side == "dst" and not a.no_prealloc else "off"
        append = "console=ttyS0 panic=-1 mw.ws=%d mw.rate=%d mw.pattern=%s" % (
            a.ws, a.rate, a.pattern)
        if a.append:
            append += " " + a.append
        argv = [qemu, "-name", "mw-%s,debug-threads=on" % side, "-machine", "pc,memory-backend=pc.ram",
                "-accel", accel_opt, "-cpu", cpu, "-smp", str(a.smp),
                "-m", "%dM" % a.mem,
                "-object", "memory-backend-ram,id=pc.ram,size=%dM,prealloc=%s"
                % (a.mem, prealloc),
                "-nodefaults", "-display", "none", "-no-user-config",
                "-kernel", a.kernel, "-initrd", a.initrd, "-append", append]
        disk = self.disk_path(side)
        if disk:
            argv += ["-drive", "file=%s,format=raw,if=%s,cache=none,aio=threads,id=disk0"
                     % (disk, a.disk_if)]
        if a.qemu_tls:
            argv += ["-object", "tls-creds-x509,id=mwtls0,dir=%s,endpoint=%s"
                     % (a.qemu_tls, "server" if side == "dst" else "client")]
        if side == "src" and a.migrate_cmd:
            # QMP takes one client per monitor: a second one for the tool
            argv += ["-qmp", "unix:%s,server=on,wait=off" % self.op_sock()]
        if side == "dst":
            argv += ["-S", "-incoming", "defer"]
        return netns_prefix(a.dst_netns if side == "dst" else a.src_netns) + argv

    def disk_path(self, side):
        if not self.a.disk:
            return None
        return self.a.disk if side == "src" else os.path.join(self.tmp, "dst-disk.img")

    def start(self, side, accel):
        g = Guest(side, self.qemu_argv(side, accel), self.tmp, self.logdir)
        self.guests.append(g)  # only once it is up: Guest cleans up after itself
        if self.a.pin_vcpu is not None:
            # before the destination's exec: receiver starts, which places
            # itself off the vCPUs it finds pinned
            log("%s: vCPU threads %s pinned to CPU %d%s"
                % (side, g.pin_vcpus(self.a.pin_vcpu, self.a.emulator_pin),
                   self.a.pin_vcpu, ", the other threads off it"
                   if self.a.emulator_pin else ""))
        return g

    def boot_source(self):
        a = self.a
        t = time.monotonic()
        accel = self.accel
        if accel == "auto":
            accel = "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"
        try:
            src = self.start("src", accel)
        except Fail as e:
            if self.accel != "auto" or accel != "kvm":
                raise
            log("%s; falling back to TCG" % e)
            accel = "tcg"
            src = self.start("src", accel)
        wait = a.boot_timeout
        if self.accel == "auto" and accel == "kvm":
            wait = a.kvm_probe
        hb = src.wait_heartbeat_above(None, wait)
        if hb is None and self.accel == "auto" and accel == "kvm":
            log("no heartbeat under KVM within %ds; falling back to TCG" % wait)
            src.stop()
            self.guests.remove(src)
            accel = "tcg"
            src = self.start("src", accel)
            hb = src.wait_heartbeat_above(None, a.boot_timeout)
        if hb is None:
            raise Fail("source guest printed no heartbeat within %ds; see %s"
                       % (a.boot_timeout, src.serial))
        self.accel = accel
        self.report["accel"] = accel
        self.report["qemu_version"] = src.qmp.version
        self.report["phases"]["boot_s"] = round(time.monotonic() - t, 2)
        log("source up under %s (QEMU %d.%d.%d), heartbeat %d after %.1fs"
            % (accel, src.qmp.version["major"], src.qmp.version["minor"],
               src.qmp.version["micro"], hb, time.monotonic() - t))
        return src

    def caps(self):
        caps = ["events"] + [c for c in self.a.caps.split(",") if c]
        if self.a.multifd and "multifd" not in caps:
            caps.append("multifd")
        if self.a.postcopy_after is not None and "postcopy-ram" not in caps:
            caps.append("postcopy-ram")
        return caps

    def both_params(self):
        """Parameters both sides need (multifd-channels must match)."""
        p = {"multifd-channels": self.a.multifd} if self.a.multifd else {}
        if self.a.qemu_tls:
            p["tls-creds"] = "mwtls0"
        p.update(kv_params(self.a.param_both))
        return p

    def set_caps(self, g):
        g.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": c, "state": True} for c in self.caps()])
        if self.both_params():
            g.qmp.cmd("migrate-set-parameters", **self.both_params())

    def set_source_params(self, src):
        a = self.a
        self.set_caps(src)
        params = {"max-bandwidth": int(a.max_bandwidth * 1048576),
                  "downtime-limit": a.downtime_limit}
        if a.qemu_tls:
            params["tls-hostname"] = a.qemu_tls_hostname
        params.update(kv_params(a.param))
        src.qmp.cmd("migrate-set-parameters", **params)
