#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hardening 3.2: one channel reset (TCP RST) mid-stream.

A proxy (faultlib.Proxy) relays the 4 channels of a rate-capped transfer
and resets one of them after a seeded random number of bytes (MW_TEST_SEED
replays a run): during the TLS handshake / HELLO, early, in the middle and
late in the stream; RST both ways, RST to the receiver only (the sender's
end stays open and silent), and RST to the sender only. Each TLS mode.
Since protocol 3 a channel lost after its HELLO_OK is resumed: the
transfer must complete byte-exact, exit 0 on both sides, each side saying
one `channel N lost` and one `channel N resumed` line (fault_resume checks
the counters). A reset before the receiver answered the channel's HELLO:
send dials that channel again and the transfer must complete byte-exact,
or both sides fail as below. With --reconnect-timeout 0 (one case per
mode) a reset fails the session as before protocol 3: both sides exit 1
with one stderr line that names the cause (reset or closed, possibly as
the peer's reason), within a bound, and recv's output is a strict prefix
of the input.

    fault_reset.py MIGWIRE DATAGEN MKCERTS
"""
import random
import time

import faultlib as fl
import mwtest
from mwtest import MiB, fail, log

SIZE = 48 * MiB
WORDS = ('reset', 'closed')

# (where, lowest byte, highest byte) towards the receiver on the connection
POINTS = [('handshake', 1, 300), ('early', 64 << 10, 1 * MiB),
          ('middle', 3 * MiB, 5 * MiB), ('late', 6 * MiB, 8 * MiB)]


def one(env, rng, data, inp, mode, how, where, lo, hi, any_conn=False,
        once=False):
    tls = mwtest.tls_args(mode, env)
    if once:
        tls = tls + ['--reconnect-timeout', '0']
    codec = rng.choice(['zstd', 'zlib', 'none'])
    # late: whichever connection gets there first (the channels' shares of
    # the stream differ)
    idx = None if where == 'late' or any_conn else rng.randrange(4)
    retry = False
    at = rng.randrange(lo, hi)
    recv, port = env.recv(tls + ['--wait', '5', '--timeout', '5'])
    px = fl.Proxy(port)
    try:
        px.kill_at(idx, at, how)
        send = env.send(px.port, tls + ['--channels', '4', '--compress',
                                        codec, '--max-bandwidth', '24M',
                                        '--timeout', '5'], stdin_path=inp)
        rp = fl.Reaper(send, recv)
        t0 = time.monotonic()
        rp.wait(25, f'{how} {where}')
        dt = max(rp.t_exit.values()) - t0
        tk = px.events[0][0] - t0 if px.killed.is_set() else -1
        log(f'  {mode}/{codec} {how} {where}: connection '
            f'{"first" if idx is None else idx} at {at} B '
            f'(t={tk:.2f} s); both ended at t={dt:.2f} s: send {send.rc}, '
            f'recv {recv.rc}')
        fl.show(send)
        fl.show(recv)
        if not px.killed.is_set():
            ups = {i: c.up for i, c in px.conns.items()}
            if idx is None:
                fail(f'the proxy never reached {at} B on any connection: '
                     f'{ups}')
            # free channels take the next chunk, so under load one may
            # carry next to nothing: then the run must have completed,
            # and the reset goes to whichever connection gets there first
            with open(recv.out, 'rb') as f:
                got = f.read()
            if send.rc != 0 or recv.rc != 0 or got != data:
                fail(f'connection {idx} never reached {at} B ({ups}), yet '
                     f'send exit {send.rc}, recv exit {recv.rc}, '
                     f'{len(got)} B of {len(data)}')
            log(f'  connection {idx} carried too little ({ups}); again '
                'with the first connection to get there')
            retry = True
            return
        if where == 'handshake' and send.rc == 0:
            # cut before the receiver answered its HELLO: send dials the
            # channel again (a receiver that evicts unauthenticated
            # connections under a flood looks the same), and recv logs the
            # lost connection at -v only, so the transfer completes
            with open(recv.out, 'rb') as f:
                got = f.read()
            if recv.rc != 0 or got != data:
                fail('send succeeded after a retried channel, but recv '
                     f'exit {recv.rc} with {len(got)} bytes')
            log('  the sender retried the reset channel and completed')
            return
        if where != 'handshake' and not once:
            # lost after HELLO_OK: resumed
            fl.check_resumed_run(send, recv, data, 1, f'{how} {where}')
            return
        fl.check_prefix(recv.out, data)
        fl.clean_failure(send, any_of=WORDS)
        fl.clean_failure(recv, any_of=WORDS)
        if dt - tk > 4:
            fail(f'the sides took {dt - tk:.1f} s to end after the reset')
    finally:
        px.close()
        env.cleanup_procs()
        if retry:
            one(env, rng, data, inp, mode, how, where, lo, hi, True, once)


def run():
    env = mwtest.Env('fault_reset')
    rng = random.Random(fl.seed())
    inp = env.make_input('random', SIZE, seed=rng.randrange(1 << 30))
    with open(inp, 'rb') as f:
        data = f.read()
    hows = ['rst', 'rst', 'rst-recv', 'rst-send']
    cases = []
    n = 0
    for mode in ('x509', 'psk', 'none'):
        for where, lo, hi in POINTS:
            how = hows[n % len(hows)]
            n += 1
            cases.append((f'{mode} {how} {where}',
                          lambda a=(mode, how, where, lo, hi):
                          one(env, rng, data, inp, *a)))
        # without resume: a reset fails the session
        cases.append((f'{mode} rst middle, --reconnect-timeout 0',
                      lambda a=(mode, 'rst', 'middle', 3 * MiB, 5 * MiB):
                      one(env, rng, data, inp, *a, once=True)))
    fl.run_cases(env, cases)
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
