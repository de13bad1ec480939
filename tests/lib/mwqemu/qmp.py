# SPDX-License-Identifier: MIT
"""A minimal QMP client (QEMU Machine Protocol over a unix socket): one
request at a time, a reader thread that files replies by id and keeps every
event with its QEMU timestamp, so that a phase can wait for an event that
arrived before it asked."""

import json
import queue
import socket
import threading
import time

from . import Fail


class QMP:
    """Minimal QMP client: a reader thread files replies by id and keeps
    every event with its QEMU timestamp."""

    def __init__(self, path, name, timeout=30.0, alive=lambda: True):
        self.name = name
        self.sock = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                self.sock = s
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline or not alive():
                    raise Fail("%s: cannot connect to QMP at %s" % (name, path))
                time.sleep(0.05)
        self.file = self.sock.makefile("rb")
        self.replies = queue.Queue()
        self.events = []
        self.ev_cond = threading.Condition()
        self.closed = False
        self.next_id = 0
        greeting = json.loads(self.file.readline())
        self.version = greeting["QMP"]["version"]["qemu"]
        threading.Thread(target=self._reader, daemon=True,
                         name="qmp-" + name).start()
        self.cmd("qmp_capabilities")

    def _reader(self):
        try:
            for line in self.file:
                msg = json.loads(line)
                if "event" in msg:
                    ts = msg.get("timestamp", {})
                    msg["t"] = ts.get("seconds", 0) + ts.get("microseconds", 0) / 1e6
                    with self.ev_cond:
                        self.events.append(msg)
                        self.ev_cond.notify_all()
                else:
                    self.replies.put(msg)
        except (OSError, ValueError):
            pass
        self.closed = True
        self.replies.put(None)
        with self.ev_cond:
            self.ev_cond.notify_all()

    def cmd(self, execute, timeout=60.0, **args):
        self.next_id += 1
        req = {"execute": execute, "id": self.next_id}
        if args:
            req["arguments"] = args
        try:
            self.sock.sendall(json.dumps(req).encode() + b"\n")
        except OSError as e:
            raise Fail("%s: QMP %s: %s" % (self.name, execute, e))
        while True:
            try:
                r = self.replies.get(timeout=timeout)
            except queue.Empty:
                raise Fail("%s: QMP %s timed out" % (self.name, execute))
            if r is None:
                raise Fail("%s: QMP connection closed during %s" % (self.name, execute))
            if r.get("id") != self.next_id:
                continue
            if "error" in r:
                raise Fail("%s: QMP %s: %s" % (self.name, execute, r["error"].get("desc")))
            return r.get("return")

    def find_event(self, pred):
        with self.ev_cond:
            for e in self.events:
                if pred(e):
                    return e
        return None

    def wait_event(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.ev_cond:
            while True:
                for e in self.events:
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self.ev_cond.wait(left)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def migration_event(status):
    return lambda e: e["event"] == "MIGRATION" and e["data"]["status"] == status

