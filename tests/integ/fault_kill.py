#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hardening 3.1: sender, receiver or one channel killed at random points.

A rate-capped transfer (4 channels, TLS mode, codec and kill point drawn
from a seeded RNG; MW_TEST_SEED replays a run) is interrupted by
  - kill -9 of `send`          -> recv exits 1 with one line;
  - kill -9 of `recv`          -> send exits 1 with one line;
    (both with --reconnect-timeout 0: a peer that died is not waited for;
    by default the survivor waits that long for its channels to be
    resumed, fault_link's giveup case);
  - one channel's TCP connection dropped by a proxy in the middle
    (FIN both ways, RST both ways, or RST to the receiver while the
    sender's end stays open and silent) -> the channel is resumed: both
    exit 0, byte-exact, one lost and one resumed line each.
Every iteration: after a kill recv's output is a strict prefix of the input
(recv never exits 0), both sides end within a bound, and the survivors'
peak RSS stays within --window + 64 MiB.

    fault_kill.py MIGWIRE DATAGEN MKCERTS [ITERATIONS]   (default 3 each)
"""
import os
import random
import signal
import time

import faultlib as fl
import mwtest
from mwtest import MiB, fail, log

SIZE = 48 * MiB
RATE = '24M'      # --max-bandwidth: the transfer lasts ~2 s
DURATION = 2.0
WINDOW = 8 * MiB  # the default


def modes(env, rng):
    m = rng.choice(['x509', 'psk', 'none'])
    return m, mwtest.tls_args(m, env), rng.choice(['zstd', 'zlib', 'none'])


def start(env, inp, tls, codec, to_port=None, extra=()):
    recv, port = env.recv(tls + ['--wait', '5', '--timeout', '5', *extra])
    send = env.send(to_port(port) if to_port else port,
                    tls + ['--channels', '4', '--compress', codec,
                           '--max-bandwidth', RATE, '--timeout', '5',
                           *extra], stdin_path=inp)
    return recv, send


def check_memory(rp, *procs):
    for p in procs:
        if rp.mib(p) * MiB > WINDOW + fl.SLACK:
            fail(f'{p.name} peak RSS {rp.mib(p):.1f} MiB > window + 64 MiB')


def kill_process(env, rng, data, inp, victim, it):
    mode, tls, codec = modes(env, rng)
    when = rng.uniform(0.0, DURATION * 0.8)
    recv, send = start(env, inp, tls, codec,
                       extra=('--reconnect-timeout', '0'))
    target, peer = (send, recv) if victim == 'send' else (recv, send)
    rp = fl.Reaper(send, recv)
    t0 = time.monotonic()
    while time.monotonic() - t0 < when:
        rp.sample()
        time.sleep(0.01)
    got = os.path.getsize(recv.out)
    target.signal(signal.SIGKILL)
    tk = time.monotonic()
    rp.wait(20, f'kill -9 {victim}')
    dt = rp.t_exit[id(peer)] - tk
    log(f'  [{it}] {mode}/{codec}: kill -9 {victim} at {when:.2f} s '
        f'({got} B out): {peer.name} exit {peer.rc} after {dt:.2f} s')
    fl.show(peer)
    if target.rc != -signal.SIGKILL:
        fail(f'{victim} exited {target.rc} before the kill '
             f'(transfer too fast?): {target.stderr().strip()}')
    # killed while its channels joined, the ones recv had not admitted yet
    # are lost connections (a -v line each), and if none was admitted it
    # waits for a sender until --wait: one line either way
    fl.clean_failure(peer)
    n = fl.check_prefix(recv.out, data)
    check_memory(rp, peer)
    return n


def kill_channel(env, rng, data, inp, how, it):
    mode, tls, codec = modes(env, rng)
    idx = rng.randrange(4)
    at = rng.randrange(16 << 10, 2 * MiB)
    px = None
    try:
        def via(port):
            nonlocal px
            px = fl.Proxy(port)
            px.kill_at(idx, at, how)
            return px.port
        recv, send = start(env, inp, tls, codec, via)
        rp = fl.Reaper(send, recv)
        rp.wait(25, f'channel {idx} {how}')
        ev = '; '.join(t for _, t in px.events) or 'nothing'
        log(f'  [{it}] {mode}/{codec}: {how} connection {idx} at {at} B: '
            f'send exit {send.rc}, recv exit {recv.rc}; proxy: {ev}')
        fl.show(send)
        fl.show(recv)
        if not px.killed.is_set():
            fail(f'the proxy never reached {at} B on connection {idx}')
        fl.check_resumed_run(send, recv, data, 1,
                             f'channel {idx} {how} at {at} B')
        check_memory(rp, send, recv)
    finally:
        if px:
            px.close()


def run():
    env = mwtest.Env('fault_kill')
    iters = int(env.args[0]) if env.args else 3
    rng = random.Random(fl.seed())
    inp = env.make_input('random', SIZE, seed=rng.randrange(1 << 30))
    with open(inp, 'rb') as f:
        data = f.read()
    t00 = time.monotonic()
    for victim in ('send', 'recv'):
        log(f'--- kill -9 {victim}')
        for it in range(iters):
            kill_process(env, rng, data, inp, victim, it)
            env.cleanup_procs()
    log('--- one channel killed (FIN / RST / RST towards the receiver): '
        'resumed')
    for it, how in enumerate(['fin', 'rst', 'rst-recv'] *
                             max(1, iters // 3)):
        kill_channel(env, rng, data, inp, how, it)
        env.cleanup_procs()
    log(f'PASS ({time.monotonic() - t00:.1f} s)')


if __name__ == '__main__':
    mwtest.main(run)
