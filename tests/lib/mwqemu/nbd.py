# SPDX-License-Identifier: MIT
"""NBD storage copy, libvirt's --copy-storage-all: the destination exports
an empty same-size disk (nbd-server-start + block-export-add), the source
mirrors its disk to an nbd node through the transport (blockdev-mirror
sync=full), RAM migrates once the job is READY, then block-job-cancel leaves
the target a point-in-time copy.
"""

import time

from . import Fail, log, mib


class Nbd:
    """Both halves of the NBD disk copy (a mixin of Run)."""

    def nbd_sock(self, side):
        return self.subst(self.a.nbd_dst_sock if side == "dst" else self.a.nbd_src_sock)

    def nbd_addr(self, side):
        """QMP SocketAddress of an NBD endpoint: a unix socket path, or
        tcp:HOST:PORT (QEMU's own NBD over the network, no transport
        between: with --qemu-tls both ends use TLS)."""
        s = self.nbd_sock(side)
        if s.startswith("tcp:"):
            host, port = s[4:].rsplit(":", 1)
            return {"type": "inet", "host": host, "port": port}
        return {"type": "unix", "path": s}

    def nbd_tls(self, side):
        """tls-creds (and the client's tls-hostname) for a tcp: endpoint
        with --qemu-tls; nothing for a unix one (the transport encrypts)."""
        if not (self.a.qemu_tls and self.nbd_sock(side).startswith("tcp:")):
            return {}
        if side == "dst":
            return {"tls-creds": "mwtls0"}
        return {"tls-creds": "mwtls0", "tls-hostname": self.a.qemu_tls_hostname}

    def nbd_dest_start(self, dst):
        """Destination half of libvirt's copy-storage: NBD server on a unix
        socket, the (empty) disk exported writable."""
        node = None
        for b in dst.qmp.cmd("query-block"):
            if b.get("device") == "disk0" and b.get("inserted"):
                node = b["inserted"]["node-name"]
        if not node:
            raise Fail("destination has no disk0 to export")
        addr = self.nbd_addr("dst")
        dst.qmp.cmd("nbd-server-start", addr={"type": addr.pop("type"), "data": addr},
                    **self.nbd_tls("dst"))
        try:
            dst.qmp.cmd("block-export-add", type="nbd", id="mig-export",
                        **{"node-name": node, "name": "disk0", "writable": True})
            self.report["nbd_export_cmd"] = "block-export-add"
        except Fail as e:
            if "not found" not in str(e).lower():
                raise
            dst.qmp.cmd("nbd-server-add", device="disk0", name="disk0", writable=True)
            self.report["nbd_export_cmd"] = "nbd-server-add"
        log("destination: NBD export disk0 (node %s) on %s%s" % (
            node, self.nbd_sock("dst"), " with TLS" if self.nbd_tls("dst") else ""))

    def nbd_source_mirror(self, src):
        """Source half: nbd node to the transport's NBD endpoint, mirror
        sync=full, wait for READY."""
        t = time.monotonic()
        src.qmp.cmd("blockdev-add", driver="nbd", export="disk0", **{
            "node-name": "mig-nbd", "server": self.nbd_addr("src")},
            **self.nbd_tls("src"))
        src.qmp.cmd("blockdev-mirror", device="disk0", target="mig-nbd", sync="full",
                    **{"job-id": "mig-mirror"})
        self.nbd_state = "mirroring"
        ev = src.qmp.wait_event(lambda e: e["event"] in (
            "BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED",
            "BLOCK_JOB_ERROR") and e["data"].get("device") == "mig-mirror",
            self.a.nbd_timeout)
        if ev is None or ev["event"] != "BLOCK_JOB_READY":
            raise Fail("block mirror to NBD did not become ready: %s"
                       % (ev and ev.get("data")))
        self.report["nbd_mirror_ready_s"] = round(time.monotonic() - t, 2)
        log("source: mirror to NBD ready after %.1fs (%s)"
            % (time.monotonic() - t, mib(ev["data"].get("len"))))

    def nbd_source_finish(self, src):
        """After the migration completed: end the mirror the way libvirt
        does (block-job-cancel on a READY job = COMPLETED, the target keeps
        the point-in-time copy), then drop the NBD client node."""
        src.qmp.cmd("block-job-cancel", device="mig-mirror")
        ev = src.qmp.wait_event(lambda e: e["event"] in (
            "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED")
            and e["data"].get("device") == "mig-mirror", self.a.nbd_timeout)
        if ev is None:
            raise Fail("mirror job did not end after block-job-cancel")
        self.report["nbd_mirror_end"] = {"event": ev["event"],
                                         "error": ev["data"].get("error"),
                                         "offset": ev["data"].get("offset"),
                                         "len": ev["data"].get("len")}
        if ev["data"].get("error"):
            raise Fail("mirror job ended with an error: %s" % ev["data"]["error"])
        src.qmp.cmd("blockdev-del", **{"node-name": "mig-nbd"})
        self.nbd_state = None
        log("source: mirror ended (%s), NBD node removed" % ev["event"])

    def nbd_source_abort(self, src):
        """After a failed migration: cancel the mirror, drop the node."""
        if getattr(self, "nbd_state", None) is None:
            return
        try:
            src.qmp.cmd("block-job-cancel", device="mig-mirror", force=True)
            src.qmp.wait_event(lambda e: e["event"] in (
                "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED")
                and e["data"].get("device") == "mig-mirror", 30)
        except Fail as e:
            log("abort mirror: %s" % e)
        try:
            src.qmp.cmd("blockdev-del", **{"node-name": "mig-nbd"})
        except Fail as e:
            log("abort NBD node: %s" % e)
        self.nbd_state = None
