#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""--max-bandwidth caps the wire rate over all channels, and uses the cap.

`send --max-bandwidth 20M --compress none --no-tls` of random input over 1
and over 4 channels. From the sender's --stats-file (cumulative bytes_wire
and elapsed_s, one line a second and a final one): over every window of at
least 2 s the wire rate is <= 1.05 x cap, and the average over the whole run
is >= 0.8 x cap. The output must still be byte-exact. As a second opinion,
the growth of recv's output file is sampled every 0.1 s and printed.

    bwcap.py MIGWIRE DATAGEN MKCERTS [CAP_MIB [SIZE_MIB]]
"""
import json
import os
import time

import mwtest
from mwtest import MiB, fail, log

TOL_HI = 1.05
TOL_LO = 0.80
WIN = 2.0


def windows(samples, win):
    """(t0, t1, rate) for every sample and the first one >= win later."""
    out = []
    for i, (t0, b0) in enumerate(samples):
        for t1, b1 in samples[i + 1:]:
            if t1 - t0 >= win:
                out.append((t0, t1, (b1 - b0) / (t1 - t0)))
                break
    return out


def run_one(env, inp, size, cap, ch):
    stats = env.path(f'send-{ch}.stats')
    recv, port = env.recv(['--no-tls', '--timeout', '20'])
    send = env.send(port, ['--no-tls', '--channels', str(ch), '--compress',
                           'none', '--max-bandwidth', f'{cap // MiB}M',
                           '--stats-file', stats, '--timeout', '20'],
                    stdin_path=inp)
    own = []
    t0 = time.monotonic()
    while send.poll() is None and time.monotonic() - t0 < 120:
        own.append((time.monotonic() - t0, os.path.getsize(recv.out)))
        time.sleep(0.1)
    src, rrc = send.wait(30), recv.wait(30)
    own.append((time.monotonic() - t0, os.path.getsize(recv.out)))
    if src != 0 or rrc != 0:
        fail(f'{ch} channels: send {src}, recv {rrc}\n'
             f'  send: {send.stderr().strip()}\n'
             f'  recv: {recv.stderr().strip()}')
    if mwtest.sha256_file(recv.out) != mwtest.sha256_file(inp):
        fail(f'{ch} channels: output is not the input')
    os.unlink(recv.out)

    samples = [(0.0, 0)]
    final = None
    with open(stats) as f:
        for line in f:
            d = json.loads(line)
            if d.get('side') != 'send':
                continue
            samples.append((float(d['elapsed_s']), int(d['bytes_wire'])))
            if d.get('final'):
                final = d
    if final is None:
        fail(f'{ch} channels: no final line in {stats}')
    samples.sort()
    ws = windows(samples, WIN)
    if not ws:
        fail(f'{ch} channels: the run was shorter than {WIN} s '
             f'({samples[-1][0]:.2f} s): nothing to check')
    worst = max(ws, key=lambda w: w[2])
    avg = final['bytes_wire'] / float(final['elapsed_s'])
    ows = windows(own, WIN)
    oworst = max(w[2] for w in ows) if ows else 0
    log(f'{ch} channel(s): {final["bytes_wire"]} wire bytes in '
        f'{float(final["elapsed_s"]):.2f} s: average {avg / MiB:.2f} MiB/s '
        f'({avg / cap:.3f} x cap), worst {WIN:.0f}-s window '
        f'{worst[2] / MiB:.2f} MiB/s ({worst[2] / cap:.3f} x cap) at '
        f'{worst[0]:.1f}-{worst[1]:.1f} s; {len(ws)} windows from '
        f'{len(samples)} stats samples; recv output sampler worst '
        f'{oworst / MiB:.2f} MiB/s')
    for a, b, r in ws:
        log(f'    {a:5.2f}-{b:5.2f} s  {r / MiB:6.2f} MiB/s')
    if worst[2] > TOL_HI * cap:
        fail(f'{ch} channels: {worst[2] / MiB:.2f} MiB/s over '
             f'{worst[0]:.2f}-{worst[1]:.2f} s exceeds {TOL_HI} x '
             f'{cap // MiB} MiB/s')
    if avg < TOL_LO * cap:
        fail(f'{ch} channels: average {avg / MiB:.2f} MiB/s is below '
             f'{TOL_LO} x {cap // MiB} MiB/s: the cap is under-used')


def run():
    env = mwtest.Env('bwcap')
    cap = int(env.args[0]) * MiB if env.args else 20 * MiB
    size = int(env.args[1]) * MiB if len(env.args) > 1 else 96 * MiB
    inp = env.make_input('random', size)
    log(f'bwcap: {size // MiB} MiB random, --max-bandwidth {cap // MiB}M '
        f'(= {cap} B/s), --no-tls, no compression')
    for ch in (1, 4):
        run_one(env, inp, size, cap, ch)
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
