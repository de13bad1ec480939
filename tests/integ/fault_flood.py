#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hardening 4: 1,000 garbage or half-open connections to recv's port.

A python thread opens 1,000 connections to the receiver's port, each one of
(seeded; MW_TEST_SEED replays): random bytes then close, an HTTP request,
a truncated TLS ClientHello, a TCP RST right after connecting, or nothing at
all (kept open, up to 200 at once, until the flood ends). recv's fd count
(/proc/PID/fd) and VmHWM are sampled every 20 ms.

during: TLS x509 transfer over 4 channels, 64 MiB at 16 MiB/s, with the
  flood (paced over ~4 s, no silent connections) running from before the
  sender starts until the transfer is under way: the transfer must be
  byte-exact (both exit 0).
before: recv --wait 30 --timeout 5; the whole flood runs before any
  sender; then a legitimate sender must get in and be byte-exact. Then a
  second receiver, with 64 silent connections held open while the sender
  connects, released after 3 s (< --timeout 5): the sender should get in;
  today it fails at once with one line (XFAIL, HELD_BUG).
Always: recv's fd count stays within baseline + FD_SLACK (4 channels, at
most 64 connections authenticating), its VmHWM within --window + 64 MiB, recv
never exits early.

    fault_flood.py MIGWIRE DATAGEN MKCERTS during|before
"""
import os
import random
import signal
import socket
import struct
import threading
import time

import faultlib as fl
import mwtest
from mwtest import MiB, fail, log

N = 1000
# Known limitation (reported): recv closes a connection at once when 64 are
# authenticating; `send` retries only 3 times within 1.8 s, so 64 idle
# connections from an address --allow-from admits make a real sender fail
# ("connection closed by peer"), and recv waits on until --wait.
HELD_BUG = '64 silent connections turn the real sender away; send does ' \
    'not retry within --timeout'
FD_SLACK = 160  # recv authenticates at most 64 connections at once, 2 fds each
SILENT_MAX = 200


class Flood(threading.Thread):
    def __init__(self, port, rng, n=N, kinds=None, hold=0.0, pace=0.0):
        super().__init__(daemon=True)
        self.port, self.rng, self.n, self.pace = port, rng, n, pace
        self.kinds = kinds or ['garbage', 'http', 'tls-half', 'rst',
                               'silent']
        self.hold = hold
        self.count = {}
        self.silent = []
        self.done = threading.Event()
        self.stop = False

    def _one(self, kind):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(('127.0.0.1', self.port))
        except ConnectionRefusedError:
            s.close()
            return 'refused'
        except OSError:
            s.close()
            return 'connect-error'
        try:
            if kind == 'garbage':
                s.sendall(os.urandom(self.rng.randrange(1, 4096)))
            elif kind == 'http':
                s.sendall(b'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
            elif kind == 'tls-half':
                # a TLS 1.3 ClientHello record header promising 512 bytes,
                # then only part of it
                s.sendall(b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' +
                          os.urandom(40))
            elif kind == 'rst':
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack('ii', 1, 0))
            elif kind == 'silent':
                self.silent.append(s)
                if len(self.silent) > SILENT_MAX:
                    self.silent.pop(0).close()
                return kind
        except OSError:
            pass
        s.close()
        return kind

    def run(self):
        for _ in range(self.n):
            if self.stop:
                break
            r = self._one(self.rng.choice(self.kinds))
            self.count[r] = self.count.get(r, 0) + 1
            if self.pace:
                time.sleep(self.pace)
        if self.hold:
            time.sleep(self.hold)
        for s in self.silent:
            s.close()
        self.silent = []
        self.t_end = time.monotonic()
        self.done.set()


class Watch(threading.Thread):
    """Samples recv's fd count and VmHWM every 20 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.base = fl.fd_count(pid)
        self.fds = self.base
        self.hwm = 0
        self.stop = False

    def run(self):
        while not self.stop:
            n = fl.fd_count(self.pid)
            if n < 0:
                break
            self.fds = max(self.fds, n)
            self.hwm = max(self.hwm, fl.status_kb(self.pid, 'VmHWM'))
            time.sleep(0.02)


def check_bounds(w, what):
    log(f'  {what}: recv fds baseline {w.base}, max {w.fds} '
        f'(+{w.fds - w.base}); VmHWM {w.hwm / 1024:.1f} MiB')
    if w.fds - w.base > FD_SLACK:
        fail(f'{what}: recv fd count rose by {w.fds - w.base} '
             f'(> {FD_SLACK})')
    if w.hwm * 1024 > 8 * MiB + fl.SLACK:
        fail(f'{what}: recv VmHWM {w.hwm / 1024:.1f} MiB > window + 64 MiB')


def expect_ok(send, recv, inp, what):
    log(f'  {what}: send {send.rc}, recv {recv.rc}')
    fl.show(send)
    if send.rc != 0 or recv.rc != 0:
        fl.show(recv)
        fail(f'{what}: send exit {send.rc}, recv exit {recv.rc}')
    fl.check_exact(recv.out, inp)


def transfer(env, port, tls, inp, rate='32M'):
    send = env.send(port, tls + ['--channels', '4', '--compress', 'zstd',
                                 '--max-bandwidth', rate, '--timeout', '10'],
                    stdin_path=inp)
    return send


def during(env, rng):
    tls = ['--tls-creds', env.pki()]
    inp = env.make_input('random', 64 * MiB)
    recv, port = env.recv(tls + ['--timeout', '5'])
    w = Watch(recv.pid)
    w.start()
    # silent connections are left out here: 64 of them turn the sender away
    # (HELD_BUG, checked by `before`); these close at once
    fd = Flood(port, rng, kinds=['garbage', 'http', 'tls-half', 'rst'],
               pace=0.003)
    fd.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    send = transfer(env, port, tls, inp, rate='16M')
    rp = fl.Reaper(send, recv)
    rp.wait(60, 'transfer under a connection flood')
    dt = time.monotonic() - t0
    fd.join(30)
    w.stop = True
    w.join(5)
    log(f'  64 MiB in {dt:.1f} s, the flood ended '
        f'{fd.t_end - t0:.1f} s after the sender started')
    log(f'  flood outcomes {fd.count}')
    expect_ok(send, recv, inp, 'transfer during the flood')
    rej = sum('rejected' in l.lower() for l in recv.err_lines())
    log(f'  recv logged {rej} rejected connections, '
        f'{len(recv.err_lines()) - rej} other lines')
    check_bounds(w, 'during')


def before(env, rng):
    tls = ['--tls-creds', env.pki()]
    inp = env.make_input('random', 16 * MiB)
    recv, port = env.recv(tls + ['--wait', '30', '--timeout', '5'])
    w = Watch(recv.pid)
    w.start()
    t0 = time.monotonic()
    fd = Flood(port, rng)
    fd.start()
    fd.join(60)
    if not fd.done.is_set():
        fail('the flood did not finish in 60 s')
    log(f'  flood of {N} in {time.monotonic() - t0:.1f} s: {fd.count}')
    if recv.poll() is not None:
        fail(f'recv exited {recv.rc} during the flood: {recv.stderr()}')
    send = transfer(env, port, tls, inp, rate='64M')
    rp = fl.Reaper(send, recv)
    rp.wait(40, 'sender after the flood')
    w.stop = True
    w.join(5)
    expect_ok(send, recv, inp, 'sender after the flood')
    check_bounds(w, 'before')
    env.cleanup_procs()

    # silent connections hold recv's authentication slots while the real
    # sender connects: it must get in once --timeout drops them
    recv, port = env.recv(tls + ['--wait', '30', '--timeout', '5'])
    w = Watch(recv.pid)
    w.start()
    hold = Flood(port, rng, n=64, kinds=['silent'], hold=3.0)
    hold.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    send = transfer(env, port, tls, inp, rate='64M')
    fl.Reaper(send).wait(30, 'sender while 64 silent connections are held')
    ts = time.monotonic() - t0
    if send.rc != 0:
        recv.signal(signal.SIGTERM)  # do not sit out its --wait 30
    rp = fl.Reaper(recv)
    rp.wait(30, 'recv after the sender')
    hold.join(10)
    w.stop = True
    w.join(5)
    log(f'  sender while 64 silent connections held recv (released after '
        f'3 s): send exit {send.rc} after {ts:.1f} s, recv {recv.rc}')
    fl.show(send)
    check_bounds(w, 'held')
    if send.rc == 0 and recv.rc == 0:
        fl.check_exact(recv.out, inp)
        fail(f'XPASS: the sender got in while silent connections held the '
             f'authentication slots: remove the mark [{HELD_BUG}]')
    fl.clean_failure(send)
    raise mwtest.Xfail(f'send exit {send.rc} after {ts:.1f} s: '
                       f'{send.stderr().strip()} [{HELD_BUG}]')


def run():
    env = mwtest.Env('fault_flood')
    what = env.args[0] if env.args else 'during'
    rng = random.Random(fl.seed())
    t0 = time.monotonic()
    try:
        {'during': during, 'before': before}[what](env, rng)
    except mwtest.Xfail as e:
        log(f'XFAIL: {e} (known migwire limitation)')
    log(f'PASS ({time.monotonic() - t0:.1f} s)')


if __name__ == '__main__':
    mwtest.main(run)
