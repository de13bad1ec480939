#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A 1 GiB stream with bounded memory (invariant 2).

mw-datagen writes 1 GiB of realistic guest RAM straight into `send`'s stdin
(nothing is stored on disk); recv's stdout goes straight into sha256sum. The
digest must equal the sha256 of a second, identical generation. TLS x509,
zstd, 2 channels. Peak RSS of both sides (ru_maxrss from wait4, cross-checked
against VmHWM polled from /proc) must stay within --window + 64 MiB; the run
is made with the default window (32M) and with --window 16M to show that the
bound follows the option.

    big.py MIGWIRE DATAGEN MKCERTS [SIZE]     (SIZE default 1G)
"""
import os
import subprocess
import time

import mwtest
from faultlib import status_kb
from mwtest import MiB, fail, log

SLACK = 64 * MiB
SEED = 11


def parse_size(s):
    mul = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
    return int(s[:-1]) * mul[s[-1].upper()] if s[-1].upper() in mul else int(s)


def run_one(env, size, window):
    tls = ['--tls-creds', env.pki()]
    wargs = ['--window', f'{window >> 20}M'] if window else []
    window = window or 32 * MiB
    limit = window + SLACK
    recv, port = env.recv(tls + wargs + ['--timeout', '60', '-v'],
                          out=subprocess.PIPE)
    rp, rerr = recv.p, recv.err
    hp = env.popen(['sha256sum'], stdin=rp.stdout, stdout=subprocess.PIPE)
    rp.stdout.close()

    serr = env.path(f'send-{window >> 20}.err')
    sout = env.path(f'send-{window >> 20}.out')
    gp = env.popen(env.datagen_argv(size, SEED), stdout=subprocess.PIPE)
    sargv = [env.mw, 'send', '--to', f'127.0.0.1:{port}', *tls, *wargs,
             '--channels', '2', '--compress', 'zstd', '--timeout', '60', '-v']
    with open(serr, 'wb') as fe, open(sout, 'wb') as fo:
        sp = env.popen(sargv, stdin=gp.stdout, stdout=fo, stderr=fe)
    gp.stdout.close()

    t0 = time.monotonic()
    hwm = {'send': 0, 'recv': 0}
    maxrss = {}
    rcs = {}
    live = {'send': sp, 'recv': rp}
    while live:
        if time.monotonic() - t0 > 200:
            fail(f'transfer did not finish in 200 s (still running: '
                 f'{", ".join(live)})')
        for name, p in list(live.items()):
            hwm[name] = max(hwm[name], status_kb(p.pid, 'VmHWM'),
                            status_kb(p.pid, 'VmRSS'))
            pid, st, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                p.returncode = os.waitstatus_to_exitcode(st)
                rcs[name] = p.returncode
                maxrss[name] = ru.ru_maxrss  # KiB
                del live[name]
        time.sleep(0.1)
    dt = time.monotonic() - t0
    gp.wait(30)
    digest = hp.communicate(timeout=60)[0].decode().split()[0]

    for name, err in (('send', serr), ('recv', rerr)):
        log(f'  {name} stderr: {mwtest.read_text(err).strip()}')
    if rcs['send'] != 0 or rcs['recv'] != 0:
        fail(f'window {window >> 20}M: send exit {rcs["send"]}, '
             f'recv exit {rcs["recv"]}')
    if os.path.getsize(sout):
        fail('send wrote bytes to its stdout (return path)')
    return digest, dt, maxrss, hwm, limit


def run():
    env = mwtest.Env('big')
    if not env.dg:
        fail('needs mw-datagen (bench/)')
    size = parse_size(env.args[0]) if env.args else 1 << 30
    log(f'big: {size} bytes (seed {SEED}), TLS x509, zstd, 2 channels')
    results = []
    for window in (0, 16 * MiB):
        digest, dt, maxrss, hwm, limit = run_one(env, size, window)
        results.append((window or 32 * MiB, digest, dt, maxrss, hwm, limit))
        log(f'window {(window or 32 * MiB) >> 20:>2}M: {size} B in {dt:.1f} s '
            f'({size / dt / 1e6:.0f} MB/s); peak RSS send '
            f'{maxrss["send"] / 1024:.1f} MiB (VmHWM seen '
            f'{hwm["send"] / 1024:.1f}), recv {maxrss["recv"] / 1024:.1f} '
            f'MiB (VmHWM seen {hwm["recv"] / 1024:.1f}); limit '
            f'{limit >> 20} MiB; sha256 {digest[:16]}')

    # the reference: a second, identical generation
    t0 = time.monotonic()
    gp = env.popen(env.datagen_argv(size, SEED), stdout=subprocess.PIPE)
    hp = env.popen(['sha256sum'], stdin=gp.stdout, stdout=subprocess.PIPE)
    gp.stdout.close()
    ref = hp.communicate(timeout=120)[0].decode().split()[0]
    if gp.wait(30) != 0:
        fail('mw-datagen failed')
    log(f'reference: sha256 {ref[:16]} ({time.monotonic() - t0:.1f} s)')

    for window, digest, dt, maxrss, hwm, limit in results:
        if digest != ref:
            fail(f'window {window >> 20}M: output sha256 {digest} != input '
                 f'sha256 {ref}')
        for side in ('send', 'recv'):
            peak = max(maxrss[side] * 1024, hwm[side] * 1024)
            if peak > limit:
                fail(f'window {window >> 20}M: {side} peak RSS '
                     f'{peak / MiB:.1f} MiB > window + 64 MiB = '
                     f'{limit >> 20} MiB')
    log('PASS: byte-exact, memory within --window + 64 MiB on both sides')


if __name__ == '__main__':
    mwtest.main(run)
