#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Signals end both sides cleanly (invariant 6).

A transfer is slowed with --max-bandwidth so that it is surely under way;
then SIGTERM goes to send (or SIGINT to recv). The signalled side exits 1
with one line that says "interrupted"; the peer exits non-zero with one
line; recv's output is a prefix of the input and not all of it.

    signals.py MIGWIRE DATAGEN MKCERTS
"""
import os
import signal
import time

import mwtest
from mwtest import MiB, fail, has_keywords, log


def one(env, inp, tls, victim, sig, xfail=None):
    recv, port = env.recv(tls + ['--timeout', '10'])
    send = env.send(port, tls + ['--channels', '2', '--compress', 'zstd',
                                 '--max-bandwidth', '4M', '--timeout', '10'],
                    stdin_path=inp)
    dl = time.monotonic() + 15
    while os.path.getsize(recv.out) < 1 * MiB and time.monotonic() < dl:
        if send.poll() is not None or recv.poll() is not None:
            break
        time.sleep(0.02)
    if send.poll() is not None or recv.poll() is not None:
        fail(f'transfer ended before the signal: send {send.poll()}, '
             f'recv {recv.poll()}: {send.stderr()} {recv.stderr()}')
    target, peer = (send, recv) if victim == 'send' else (recv, send)
    t0 = time.monotonic()
    target.signal(sig)
    trc = target.wait(15)
    prc = peer.wait(30)
    dt = time.monotonic() - t0
    name = signal.Signals(sig).name
    log(f'{name} to {victim}: {target.name} exit {trc}, {peer.name} exit '
        f'{prc}, both ended {dt:.2f} s after the signal')
    for p in (target, peer):
        for line in p.err_lines():
            log(f'    {p.name}: {line}')
    if trc != 1:
        fail(f'{target.name} exited {trc} after {name}, want 1')
    line = mwtest.one_line(target)
    if not has_keywords(line, 'interrupted'):
        fail(f'{target.name} line lacks "interrupted": {line}')
    if prc == 0:
        fail(f'{peer.name} exited 0 after its peer was interrupted')
    pline = mwtest.one_line(peer)
    with open(inp, 'rb') as f:
        data = f.read()
    with open(recv.out, 'rb') as f:
        out = f.read()
    if len(out) >= len(data) or out != data[:len(out)]:
        fail(f'recv output ({len(out)} B) is not a strict prefix of the '
             f'input ({len(data)} B)')
    # the peer names the cause (the ERROR frame reached it intact)
    if not has_keywords(pline, 'interrupted'):
        msg = f'{peer.name} does not name the cause: {pline}'
        if xfail:
            raise mwtest.Xfail(f'{msg} [{xfail}]')
        fail(msg)


def run():
    env = mwtest.Env('signals')
    inp = env.make_input('random', 32 * MiB)
    tls = ['--tls-creds', env.pki()]
    cases = [
        # once a known bug: send's ERROR frame after an interrupted TLS
        # channel failed the record MAC at recv; no longer seen in any run
        # since our own TLS records (6 of 6 here), so it fails the test now
        (tls, 'send', signal.SIGTERM, None),
        (tls, 'recv', signal.SIGINT, None),
        (['--no-tls'], 'send', signal.SIGINT, None),
        (['--no-tls'], 'recv', signal.SIGTERM, None),
        # a dropped ssh session: handled as SIGTERM, not a silent 129
        (['--no-tls'], 'send', signal.SIGHUP, None),
    ]
    xfail, xpass = 0, []
    for args, victim, sig, xf in cases:
        try:
            one(env, inp, args, victim, sig, xf)
            if xf:
                # a race may hide the bug once: report, do not fail
                xpass.append(xf)
                log(f'XPASS: {xf}: fixed? then remove the XFAIL mark')
        except mwtest.Xfail as e:
            xfail += 1
            log(f'XFAIL: {e} (known migwire bug)')
    log(f'PASS ({xfail} xfail, {len(xpass)} xpass)')


if __name__ == '__main__':
    mwtest.main(run)
