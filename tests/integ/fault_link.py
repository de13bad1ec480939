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
outage: --timeout 5 --reconnect-timeout 0 on both sides (no resume, as
  before protocol 3); after ~1.5 s the link goes down and stays down. Both
  sides must exit 1 with one line, within 5 s + 15 s after the link went
  down; recv's output is a strict prefix of the input.
long: --timeout 5 (the TCP user timeout) on both sides, the link down for
  10 s, twice that: the channels are lost and resumed once the link is
  back. Byte-exact, exit 0; send's --stats-file counts reconnects, recv's
  as many resumes, and each side printed one lost and one resumed line per
  reconnect and nothing else.
giveup: --timeout 3 --reconnect-timeout 6, the link down for good after
  ~1.5 s: each side exits 1 with a last line naming --reconnect-timeout,
  its other lines only `channel N lost` ones, between 6 s (the reconnect
  timeout) and 3 + 6 + 2.5 s after the link went down (the loss is found
  within --timeout, then the give-up comes within a second or two).

Needs root (ip netns); skips (exit 0, "SKIP") without it.

    fault_link.py MIGWIRE DATAGEN MKCERTS blip|outage|long|giveup
"""
import atexit
import os
import re
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


def start(env, net, inp, timeout, extra=()):
    tls = ['--tls-creds', env.pki('pki-link', ['--ip', RIP])]
    rerr, rout = env.path('recv.err'), env.path('recv.out')
    targs = ['--timeout', str(timeout)] if timeout else []
    targs += [*extra]
    rargv = ['ip', 'netns', 'exec', net.rns, env.mw, 'recv', '--listen',
             f'{RIP}:{PORT}', *tls, *targs, '--wait', '10',
             '--stats-file', env.path('recv.stats')]
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
             'zstd', '--max-bandwidth', '20M', '--stats-file',
             env.path('send.stats')]
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


def down_for(env, net, secs, timeout):
    """150 MiB at 20 MiB/s whose link goes down for secs after 2 s, then
    up: both sides must exit 0, byte-exact. Returns (send, recv, rp)."""
    size = 150 * MiB
    inp = env.make_input('random', size)
    send, recv = start(env, net, inp, timeout)
    rp = fl.Reaper(send, recv)
    t0 = time.monotonic()
    fl.running_for(rp, 2, 'the link went down')
    before = progress(env, recv)
    net.link(False)
    td = time.monotonic()
    fl.running_for(rp, secs, f'the link came back ({secs} s)')
    during = progress(env, recv)
    net.link(True)
    tu = time.monotonic()
    fl.wait_for(lambda: rp.poll() or progress(env, recv) > during + MiB, 15,
                'the transfer to resume after the link came back')
    resumed = time.monotonic() - tu
    rp.wait(60, 'transfer after the link came back')
    dt = time.monotonic() - t0
    log(f'  link down at {td - t0:.1f} s ({before >> 20} MiB written), up '
        f'{secs} s later ({during >> 20} MiB); data flowed again '
        f'{resumed:.1f} s after; {size >> 20} MiB in {dt:.1f} s: send '
        f'{send.rc}, recv {recv.rc}')
    fl.show(send)
    fl.show(recv)
    if send.rc != 0 or recv.rc != 0:
        fail(f'the session did not survive a {secs} s link outage '
             f'(--timeout {timeout or 30}): send {send.rc}, recv {recv.rc}')
    fl.check_exact(recv.out, inp)
    return send, recv, rp


def blip(env, net):
    send, recv, rp = down_for(env, net, 3, None)
    for p in (send, recv):
        if rp.mib(p) * MiB > 8 * MiB + fl.SLACK:
            fail(f'{p.name} VmHWM {rp.mib(p):.1f} MiB > window + 64 MiB')


def down_for_good(env, net, uto, rto):
    """150 MiB with --timeout uto --reconnect-timeout rto whose link goes
    down for good after 1.5 s; both sides must end, each with its lines,
    and recv's output must be a strict prefix of the input. Returns the
    seconds from the link going down to each side's exit (send, recv)."""
    inp = env.make_input('random', 150 * MiB)
    with open(inp, 'rb') as f:
        data = f.read()
    send, recv = start(env, net, inp, uto, ['--reconnect-timeout', str(rto)])
    rp = fl.Reaper(send, recv)
    fl.running_for(rp, 1.5, 'the link went down')
    net.link(False)
    td = time.monotonic()
    rp.wait(60, 'both sides after the link went down for good')
    ts, tr = rp.t_exit[id(send)] - td, rp.t_exit[id(recv)] - td
    log(f'  link down for good (--timeout {uto} --reconnect-timeout {rto}): '
        f'send exit {send.rc} after {ts:.1f} s, recv exit {recv.rc} after '
        f'{tr:.1f} s')
    fl.show(send)
    fl.show(recv)
    fl.check_prefix(recv.out, data)
    return send, recv, ts, tr


def outage(env, net):
    send, recv, ts, tr = down_for_good(env, net, 5, 0)
    fl.clean_failure(send)
    fl.clean_failure(recv)
    if max(ts, tr) > 20:
        fail(f'a side took {max(ts, tr):.1f} s to give up (--timeout 5)')


def long_outage(env, net):
    send, recv, rp = down_for(env, net, 10, 5)
    sst = mwtest.final_stats(env.path('send.stats'))
    rst = mwtest.final_stats(env.path('recv.stats'))
    n = sst.get('reconnects')
    log(f'  send: reconnects {n}, resent {sst.get("resent_chunks")} '
        f'chunks, paused {sst.get("paused_s")} s; recv: resumes '
        f'{rst.get("resumes")}')
    if not n or rst.get('resumes') != n:
        fail(f'send counted {n} reconnects, recv {rst.get("resumes")} '
             'resumes')
    fl.resumed_lines(send, n, 'send')
    fl.resumed_lines(recv, n, 'recv')


def giveup(env, net):
    uto, rto = 3, 6
    send, recv, ts, tr = down_for_good(env, net, uto, rto)
    for p, t in ((send, ts), (recv, tr)):
        ls = p.err_lines()
        if p.rc != 1 or not ls:
            fail(f'{p.name} exit {p.rc}, want 1 with a line: {ls}')
        if 'reconnect-timeout' not in ls[-1] or \
                any(' lost (' not in x for x in ls[:-1]):
            fail(f'{p.name}: want lost lines and a last line naming '
                 f'--reconnect-timeout: {ls}')
        if not rto - 0.5 <= t <= uto + rto + 2.5:
            fail(f'{p.name} gave up {t:.1f} s after the link went down '
                 f'(--timeout {uto}, --reconnect-timeout {rto})')


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
        {'blip': blip, 'outage': outage, 'long': long_outage,
         'giveup': giveup}[what](env, net)
    finally:
        env.cleanup_procs()
        net.remove()
    log(f'PASS ({time.monotonic() - t0:.1f} s)')


if __name__ == '__main__':
    mwtest.main(run)
