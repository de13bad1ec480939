#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Byte-exact round trips over loopback for one TLS mode:
channels {1,2,4,8} x codec {none,zlib,zstd} x input {random, zero, realistic,
empty}. Each combination: recv and send both exit 0, recv's stdout is
exactly the input (sha256 and size), send's stdout (the return path) is
empty. One line per combination; the first mismatch ends the test.

    roundtrip.py MIGWIRE DATAGEN MKCERTS {x509|psk|none} [--quick]
"""
import os
import socket
import time

import mwtest
from mwtest import MiB, fail, log

CHANNELS = (1, 2, 4, 8)
CODECS = ('none', 'zlib', 'zstd')
INPUTS = (('random', 4 * MiB), ('zero', 4 * MiB), ('realistic', 8 * MiB),
          ('empty', 0))


def one(env, mode, codec, ch, kind, path, size, want, host='127.0.0.1'):
    tls = mwtest.tls_args(mode, env)
    t0 = time.monotonic()
    recv, port = env.recv(tls + ['--timeout', '20'], host=host)
    send = env.send(port, tls + ['--channels', str(ch), '--compress', codec,
                                 '--timeout', '20'], stdin_path=path,
                    host=host)
    what = f'tls={mode} codec={codec} channels={ch} input={kind}'
    if host != '127.0.0.1':
        what += f' via {host}'
    mwtest.wait_pair(what, send, recv, 60)
    dt = time.monotonic() - t0
    got = mwtest.sha256_file(recv.out)
    n = os.path.getsize(recv.out)
    if n != size or got != want:
        fail(f'{what}: output differs from input: {n} bytes sha256 {got}, '
             f'want {size} bytes sha256 {want} (MW_KEEP_TMP=1 keeps {recv.out})')
    back = os.path.getsize(send.out)
    if back:
        fail(f'{what}: send wrote {back} bytes to its stdout (return path)')
    log(f'ok  {what:<55} {size:>8} B  {dt:5.2f} s  sha256 {got[:16]}')


def run():
    env = mwtest.Env('roundtrip')
    if not env.args or env.args[0] not in ('x509', 'psk', 'none'):
        fail('need a TLS mode: x509 | psk | none')
    mode = env.args[0]
    quick = '--quick' in env.args
    inputs = []
    for kind, size in INPUTS:
        p = env.make_input(kind, size, seed=7)
        inputs.append((kind, p, size, mwtest.sha256_file(p)))
    src = 'mw-datagen' if env.dg else '/usr/bin files (no mw-datagen)'
    log(f'roundtrip tls={mode}: realistic input from {src}')
    t0 = time.monotonic()
    n = 0
    for codec in CODECS:
        for ch in CHANNELS:
            if quick and ch not in (1, 4):
                continue
            for kind, p, size, want in inputs:
                one(env, mode, codec, ch, kind, p, size, want)
                n += 1
    try:
        mwtest.free_port(socket.AF_INET6, '::1')
    except OSError:
        log('(no ::1 here: IPv6 round trip skipped)')
    else:
        kind, p, size, want = inputs[2]
        one(env, mode, 'zstd', 2, kind, p, size, want, host='::1')
        n += 1
    log(f'PASS: {n} round trips, tls={mode}, {time.monotonic() - t0:.1f} s')


if __name__ == '__main__':
    mwtest.main(run)
