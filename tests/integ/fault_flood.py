#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hardening 4: 1,000 garbage or half-open connections to recv's port.

A python thread opens 1,000 connections to the receiver's port, each one of
(seeded; MW_TEST_SEED replays): random bytes then close, an HTTP request,
a truncated TLS ClientHello, a TCP RST right after connecting, or nothing at
all (kept open, up to 200 at once, until the flood ends). recv's fd count
(/proc/PID/fd) and VmHWM are sampled every 20 ms.

during: TLS x509 transfer over 4 channels, 64 MiB at 16 MiB/s, with the
  flood (paced over ~4 s) running from before the sender starts until the
  transfer is under way: the transfer must be byte-exact (both exit 0).
before: recv --wait 30 --timeout 5; the whole flood runs before any
  sender; then a legitimate sender must get in and be byte-exact. Then a
  second receiver, with 64 silent connections from the sender's own
  address held open while the sender connects, released only after 3 s:
  the sender must get in at once (they hold recv's places for
  unauthenticated connections, and an address that holds MAX_PER_ADDR of
  them gives up its idlest; this used to turn the sender away).
wide (label slow): the flood of the issue, from 200 other addresses
  (127.0.0.2-201, each socket bound to its source before connect): 1,000
  connections, idle or half a ClientHello held open until the end, random
  bytes held open, HTTP, RST; 500 before the sender starts, 500 while it
  joins. 64 MiB through TLS, 4 channels, --window 16M: byte-exact, recv's
  VmHWM within --window + 64 MiB, its stderr a few rate-limited lines.
emfile: recv started with RLIMIT_NOFILE 64 (-v), idle connections from 10
  other addresses opened without pause (up to 600 held open): accept()
  runs out of descriptors. recv must not spin (its CPU time over 2 s of
  that stays below a quarter of it), say so in one -v line, and a sender
  that comes while the last 600 are held gets in.
Always: recv's fd count stays within baseline + FD_SLACK, its VmHWM within
--window + 64 MiB, recv never exits early.

    fault_flood.py MIGWIRE DATAGEN MKCERTS during|before|wide|emfile
"""
import os
import random
import resource
import signal
import socket
import struct
import threading
import time

import faultlib as fl
import mwtest
from mwtest import MiB, fail, log

N = 1000
# recv keeps at most 64 unauthenticated connections, and evicted ones until
# their thread has left (MAX_LIVE: 64 channels + 2 x 64), 2 fds each
FD_SLACK = 2 * (64 + 2 * 64)
SILENT_MAX = 200
HOLD = ('silent', 'tls-half-hold', 'garbage-hold')


def raise_nofile(want):
    """The flood holds up to `want` sockets: raise our soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (min(want, hard), hard))


class Flood(threading.Thread):
    def __init__(self, port, rng, n=N, kinds=None, hold=0.0, pace=0.0,
                 srcs=None, keep=SILENT_MAX, release=None):
        """srcs: source addresses to bind, in turn (None: the kernel's
        choice, 127.0.0.1); keep: how many held connections stay open at
        once; release: an Event the held ones wait for (else hold s)."""
        super().__init__(daemon=True)
        self.port, self.rng, self.n, self.pace = port, rng, n, pace
        self.kinds = kinds or ['garbage', 'http', 'tls-half', 'rst',
                               'silent']
        self.hold, self.srcs, self.keep = hold, srcs, keep
        self.release = release
        self.count = {}
        self.silent = []
        self.done = threading.Event()
        self.stop = False
        self.i = 0

    def _one(self, kind):
        s = socket.socket()
        s.settimeout(2)
        try:
            if self.srcs:
                s.bind((self.srcs[self.i % len(self.srcs)], 0))
            self.i += 1
            s.connect(('127.0.0.1', self.port))
        except ConnectionRefusedError:
            s.close()
            return 'refused'
        except OSError:
            s.close()
            return 'connect-error'
        try:
            if kind.startswith('garbage'):
                s.sendall(os.urandom(self.rng.randrange(1, 4096)))
            elif kind == 'http':
                s.sendall(b'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
            elif kind.startswith('tls-half'):
                # a TLS 1.3 ClientHello record header promising 512 bytes,
                # then only part of it
                s.sendall(b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' +
                          os.urandom(40))
            elif kind == 'rst':
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack('ii', 1, 0))
            if kind in HOLD:
                self.silent.append(s)
                if len(self.silent) > self.keep:
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
        if self.release:
            self.release.wait(120)
        elif self.hold:
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


def check_bounds(w, what, window=8 * MiB):
    log(f'  {what}: recv fds baseline {w.base}, max {w.fds} '
        f'(+{w.fds - w.base}); VmHWM {w.hwm / 1024:.1f} MiB')
    if w.fds - w.base > FD_SLACK:
        fail(f'{what}: recv fd count rose by {w.fds - w.base} '
             f'(> {FD_SLACK})')
    if w.hwm * 1024 > window + fl.SLACK:
        fail(f'{what}: recv VmHWM {w.hwm / 1024:.1f} MiB > --window '
             f'{window >> 20} MiB + {fl.SLACK >> 20} MiB')


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
    fd = Flood(port, rng, pace=0.003)
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

    # silent connections from the sender's own address hold recv's places
    # for unauthenticated connections while the real sender connects: it
    # must get in while they are held
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
    check_bounds(w, 'held')
    expect_ok(send, recv, inp, 'sender while 64 silent connections are held')


def others(n, first=2):
    """n loopback source addresses other than the sender's 127.0.0.1"""
    return [f'127.0.0.{first + i}' for i in range(n)]


def wide(env, rng):
    tls = ['--tls-creds', env.pki()]
    window = 16 * MiB
    raise_nofile(2 * N + 256)
    inp = env.make_input('random', 64 * MiB)
    recv, port = env.recv(tls + ['--wait', '60', '--timeout', '10',
                                 '--window', f'{window >> 20}M'])
    w = Watch(recv.pid)
    w.start()
    release = threading.Event()
    kinds = ['silent', 'tls-half-hold', 'garbage-hold', 'http', 'rst']
    srcs = others(200)
    t0 = time.monotonic()
    before = Flood(port, rng, n=N // 2, kinds=kinds, srcs=srcs[:100],
                   keep=N, release=release)
    before.start()
    while len(before.count) == 0 or sum(before.count.values()) < N // 2:
        if time.monotonic() - t0 > 60:
            fail(f'the first {N // 2} connections took over 60 s')
        time.sleep(0.05)
    log(f'  {N // 2} connections from 100 addresses before the sender, '
        f'{len(before.silent)} held open: {before.count}')
    if recv.poll() is not None:
        fail(f'recv exited {recv.rc} during the flood: {recv.stderr()}')
    # the other half while the sender joins (recv stops listening once
    # all its channels are in; later ones are refused by the kernel)
    during = Flood(port, rng, n=N // 2, kinds=kinds, srcs=srcs[100:],
                   keep=N, release=release, pace=0.004)
    during.start()
    t1 = time.monotonic()
    send = env.send(port, tls + ['--channels', '4', '--compress', 'zstd',
                                 '--max-bandwidth', '32M', '--timeout',
                                 '20'], stdin_path=inp)
    rp = fl.Reaper(send, recv)
    rp.wait(90, 'transfer under a flood from 200 addresses')
    dt = time.monotonic() - t1
    release.set()
    before.join(30)
    during.join(30)
    w.stop = True
    w.join(5)
    log(f'  64 MiB in {dt:.1f} s; while it joined: {during.count}')
    expect_ok(send, recv, inp, 'transfer under the flood')
    lines = recv.err_lines()
    log(f'  recv printed {len(lines)} lines in {time.monotonic() - t0:.0f} s'
        + (f', e.g. {lines[0]}' if lines else ''))
    # WARN lines are a burst of 8, then one a second
    if len(lines) > 8 + (time.monotonic() - t0) + 2:
        fail(f'recv printed {len(lines)} lines: the flood floods the log')
    check_bounds(w, 'wide', window)


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        st = f.read().rsplit(')', 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf('SC_CLK_TCK')


def emfile(env, rng):
    tls = ['--tls-creds', env.pki()]
    inp = env.make_input('random', 16 * MiB)
    raise_nofile(1024)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:  # recv inherits the limit
        recv, port = env.recv(tls + ['-v', '--wait', '60', '--timeout',
                                     '10'])
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    w = Watch(recv.pid)
    w.start()
    release = threading.Event()
    fd = Flood(port, rng, n=1 << 20, kinds=['silent'], srcs=others(10),
               keep=600, release=release)
    fd.start()
    dl = time.monotonic() + 30
    while sum(fd.count.values()) < 200 and time.monotonic() < dl:
        time.sleep(0.05)
    c0, t0 = cpu_seconds(recv.pid), time.monotonic()
    time.sleep(2)
    cpu, wall = cpu_seconds(recv.pid) - c0, time.monotonic() - t0
    fd.stop = True  # no new ones; the last 600 stay open
    log(f'  idle connections from 10 addresses: {fd.count}; recv used '
        f'{cpu:.2f} s of CPU in {wall:.1f} s while out of descriptors')
    starved = [ln for ln in recv.err_lines() if 'accept:' in ln]
    if not starved or 'Too many open files' not in starved[0]:
        fail(f'recv -v did not say accept() ran out of descriptors: '
             f'{recv.stderr().strip()[-2000:]}')
    if cpu > wall / 4:
        fail(f'recv spins while out of descriptors: {cpu:.2f} s of CPU '
             f'in {wall:.1f} s')
    send = transfer(env, port, tls, inp, rate='64M')
    rp = fl.Reaper(send, recv)
    rp.wait(60, 'sender while recv is out of descriptors')
    release.set()
    fd.join(30)
    w.stop = True
    w.join(5)
    log(f'  recv: {starved[0]}')
    starved = [ln for ln in recv.err_lines() if 'accept:' in ln]
    if len(starved) != 1:
        fail(f'recv said {len(starved)} times that accept() failed')
    expect_ok(send, recv, inp, 'sender while recv is out of descriptors')
    check_bounds(w, 'emfile')


def run():
    env = mwtest.Env('fault_flood')
    what = env.args[0] if env.args else 'during'
    rng = random.Random(fl.seed())
    t0 = time.monotonic()
    {'during': during, 'before': before, 'wide': wide,
     'emfile': emfile}[what](env, rng)
    log(f'PASS ({time.monotonic() - t0:.1f} s)')


if __name__ == '__main__':
    mwtest.main(run)
