#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hardening 3.5: the link goes down and comes back (or does not).

Two network namespaces made by this test (mwf<PID>r, mwf<PID>s) joined by
a veth pair: recv listens on 198.18.0.1/30 in one, send reaches it from
198.18.0.2/30 in the other. TLS x509 (a certificate for 198.18.0.1), zstd,
4 channels, --max-bandwidth 20M. Both namespaces are removed at the end,
also on failure or a signal.

blip: 150 MiB; after ~2 s the sender's veth goes down for 3 s, then up.
  TCP retransmits; the session must survive (--timeout 30, the default
  TCP user timeout) and the output must be byte-exact.
outage: --timeout 5 on both sides; after ~1.5 s the link goes down and
  stays down. Both sides must exit 1 with one line, within 5 s + 15 s
  after the link went down; recv's output is a strict prefix of the input.

Needs root (ip netns); skips (exit 0, "SKIP") without it.

    fault_link.py MIGWIRE DATAGEN MKCERTS blip|outage
"""
import atexit
import os
import subprocess
import time

import faultlib as fl
import mwtest
from mwtest import MiB, fail, log

RIP, SIP = '198.18.0.1', '198.18.0.2'
PORT = 4444


def sh(*argv, check=True):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if check and r.returncode:
        fail(f'{" ".join(argv)}: {r.stderr.strip()}')
    return r


class Net:
    """The two namespaces and the veth pair between them."""

    def __init__(self):
        tag = f'mwf{os.getpid()}'
        self.rns, self.sns = tag + 'r', tag + 's'
        self.rdev, self.sdev = tag + 'r', tag + 's'  # <= 15 characters
        self.made = []
        atexit.register(self.remove)
        self._stale()
        for ns in (self.rns, self.sns):
            sh('ip', 'netns', 'add', ns)
            self.made.append(ns)
            sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
        sh('ip', 'link', 'add', self.rdev, 'netns', self.rns, 'type', 'veth',
           'peer', 'name', self.sdev, 'netns', self.sns)
        sh('ip', '-n', self.rns, 'addr', 'add', f'{RIP}/30', 'dev', self.rdev)
        sh('ip', '-n', self.sns, 'addr', 'add', f'{SIP}/30', 'dev', self.sdev)
        for ns, dev in ((self.rns, self.rdev), (self.sns, self.sdev)):
            sh('ip', '-n', ns, 'link', 'set', dev, 'up')
        log(f'  namespaces {self.rns} ({RIP}, recv) and {self.sns} ({SIP}, '
            f'send), veth {self.rdev}-{self.sdev}')

    @staticmethod
    def _stale():
        """Removes namespaces left by an earlier run of this test whose
        process is gone (mwf<PID>r/s, the PID dead)."""
        r = sh('ip', 'netns', 'list', check=False)
        for row in r.stdout.splitlines():
            name = row.split()[0] if row.split() else ''
            if name.startswith('mwf') and name[-1] in 'rs' and \
                    name[3:-1].isdigit():
                pid = int(name[3:-1])
                if pid != os.getpid() and not os.path.exists(f'/proc/{pid}'):
                    sh('ip', 'netns', 'del', name, check=False)

    def link(self, up):
        sh('ip', '-n', self.sns, 'link', 'set', self.sdev,
           'up' if up else 'down')

    def remove(self):
        for ns in self.made:
            sh('ip', 'netns', 'del', ns, check=False)
        self.made = []


def start(env, net, inp, timeout):
    tls = ['--tls-creds', env.pki('pki-link', ['--ip', RIP])]
    rerr, rout = env.path('recv.err'), env.path('recv.out')
    targs = ['--timeout', str(timeout)] if timeout else []
    rargv = ['ip', 'netns', 'exec', net.rns, env.mw, 'recv', '--listen',
             f'{RIP}:{PORT}', *tls, *targs, '--wait', '10']
    with open(rerr, 'wb') as fe, open(rout, 'wb') as fo:
        rp = env.popen(rargv, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
    recv = mwtest.Proc(env, 'recv', rargv, rp, rerr, rout)
    # `ip netns exec` execs migwire in place: the PID is the receiver's
    fl.wait_for(lambda: rp.poll() is not None or mwtest.is_listening(
        rp.pid, PORT) or _listening_in(rp.pid, PORT), 15, 'recv to listen')
    if rp.poll() is not None:
        fail(f'recv exited {rp.returncode}: {recv.stderr().strip()}')
    serr, sout = env.path('send.err'), env.path('send.out')
    sargv = ['ip', 'netns', 'exec', net.sns, env.mw, 'send', '--to',
             f'{RIP}:{PORT}', *tls, *targs, '--channels', '4', '--compress',
             'zstd', '--max-bandwidth', '20M']
    with open(serr, 'wb') as fe, open(sout, 'wb') as fo, \
            open(inp, 'rb') as fi:
        sp = env.popen(sargv, stdin=fi, stdout=fo, stderr=fe)
    return mwtest.Proc(env, 'send', sargv, sp, serr, sout), recv


def _listening_in(pid, port):
    """LISTEN on port in the network namespace of pid."""
    try:
        with open(f'/proc/{pid}/net/tcp') as f:
            next(f)
            return any(c[3] == '0A' and int(c[1].rsplit(':', 1)[1], 16) ==
                       port for c in (row.split() for row in f))
    except OSError:
        return False


def progress(env, recv):
    return os.path.getsize(recv.out)


def blip(env, net):
    size = 150 * MiB
    inp = env.make_input('random', size)
    send, recv = start(env, net, inp, None)
    rp = fl.Reaper(send, recv)
    t0 = time.monotonic()
    fl.running_for(rp, 2, 'the link went down')
    before = progress(env, recv)
    net.link(False)
    td = time.monotonic()
    while time.monotonic() - td < 3:
        rp.sample()
        time.sleep(0.05)
    during = progress(env, recv)
    net.link(True)
    tu = time.monotonic()
    fl.wait_for(lambda: rp.poll() or progress(env, recv) > during + MiB, 15,
                'the transfer to resume after the link came back')
    resumed = time.monotonic() - tu
    rp.wait(60, 'transfer after the link came back')
    dt = time.monotonic() - t0
    log(f'  link down at {td - t0:.1f} s ({before >> 20} MiB written), up '
        f'3 s later ({during >> 20} MiB); data flowed again '
        f'{resumed:.1f} s after; {size >> 20} MiB in {dt:.1f} s: send '
        f'{send.rc}, recv {recv.rc}')
    fl.show(send)
    fl.show(recv)
    if send.rc != 0 or recv.rc != 0:
        fail(f'the session did not survive a 3 s link outage: send '
             f'{send.rc}, recv {recv.rc}')
    fl.check_exact(recv.out, inp)
    for p in (send, recv):
        if rp.mib(p) * MiB > 8 * MiB + fl.SLACK:
            fail(f'{p.name} VmHWM {rp.mib(p):.1f} MiB > window + 64 MiB')


def outage(env, net):
    size = 150 * MiB
    inp = env.make_input('random', size)
    with open(inp, 'rb') as f:
        data = f.read()
    send, recv = start(env, net, inp, 5)
    rp = fl.Reaper(send, recv)
    t0 = time.monotonic()
    fl.running_for(rp, 1.5, 'the link went down')
    net.link(False)
    td = time.monotonic()
    rp.wait(40, 'both sides after the link went down for good')
    ts, tr = rp.t_exit[id(send)] - td, rp.t_exit[id(recv)] - td
    log(f'  link down at {td - t0:.1f} s for good (--timeout 5): send exit '
        f'{send.rc} after {ts:.1f} s, recv exit {recv.rc} after {tr:.1f} s')
    fl.show(send)
    fl.show(recv)
    fl.clean_failure(send)
    fl.clean_failure(recv)
    fl.check_prefix(recv.out, data)
    if max(ts, tr) > 20:
        fail(f'a side took {max(ts, tr):.1f} s to give up (--timeout 5)')


def run():
    env = mwtest.Env('fault_link')
    what = env.args[0] if env.args else 'blip'
    if os.geteuid() != 0 or subprocess.run(
            ['ip', 'netns', 'list'], capture_output=True).returncode:
        log('SKIP: needs root and ip netns')
        return
    t0 = time.monotonic()
    net = Net()
    try:
        {'blip': blip, 'outage': outage}[what](env, net)
    finally:
        env.cleanup_procs()
        net.remove()
    log(f'PASS ({time.monotonic() - t0:.1f} s)')


if __name__ == '__main__':
    mwtest.main(run)
