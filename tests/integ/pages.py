#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""--pages over loopback with a QEMU-like stream written here (header, a
"ram" section, six iterations that re-send pages unchanged, changed in a
few places, or changed whole; then EOF):

- both sides --pages auto, TLS + zstd and --no-tls + codec none, 1 and 3
  channels: recv's output is exactly the input, and send -v says pages
  went as references and deltas;
- a damaged receiver cache (MIGWIRE_TEST_FLIP_PAGE_CACHE=1, the decoder's
  test hook) fails the chunk's check: recv exits non-zero with one line
  naming the checksum, send fails too, and what recv wrote is a prefix of
  the input (nothing unverified);
- mismatched settings are refused with one clear line: recv --pages off,
  a different --page-cache; and bad values of both options.

    pages.py MIGWIRE DATAGEN MKCERTS
"""
import os
import random
import re
import signal
import struct

import mwtest
from mwtest import fail, log

PS = 4096
NPAGES = 3000  # 12 MiB of "guest RAM"


def stream(path, seed=5):
    rnd = random.Random(seed)
    mem = [bytearray(rnd.randbytes(PS)) for _ in range(NPAGES)]
    out = bytearray()
    out += struct.pack('>II', 0x5145564d, 3)
    out += b'\x07' + struct.pack('>I', 13) + b'pc-i440fx-7.2'
    out += b'\x01' + struct.pack('>I', 2) + b'\x03ram' + struct.pack('>II', 0, 4)
    out += struct.pack('>Q', NPAGES * PS | 0x04) + b'\x06pc.ram'
    out += struct.pack('>Q', NPAGES * PS)
    out += struct.pack('>Q', 0x10) + b'\x7e' + struct.pack('>I', 2)
    for it in range(6):
        out += b'\x02' + struct.pack('>I', 2)
        first = True
        for i in range(NPAGES):
            if it and rnd.random() < 0.5:
                continue
            if it:
                k = rnd.random()
                if k < 0.4:  # a few bytes, at a few places
                    for _ in range(rnd.randint(1, 3)):
                        n = rnd.randint(16, 256)
                        o = rnd.randrange(PS - n)
                        mem[i][o:o + n] = rnd.randbytes(n)
                elif k < 0.6:
                    mem[i][:] = rnd.randbytes(PS)
            out += struct.pack('>Q', i * PS | 0x08 | (0 if first else 0x20))
            if first:
                out += b'\x06pc.ram'
            first = False
            out += mem[i]
        out += struct.pack('>Q', 0x10) + b'\x7e' + struct.pack('>I', 2)
    out += b'\x00'
    with open(path, 'wb') as f:
        f.write(out)
    return len(out)


def roundtrip(env, path, size, want, tls, codec, ch):
    what = f'pages auto, {tls[0]}, {codec}, {ch} channels'
    recv, port = env.recv(tls + ['--pages', 'auto', '--timeout', '20'])
    send = env.send(port, tls + ['--pages', 'auto', '--compress', codec,
                                 '--channels', str(ch), '--timeout', '20',
                                 '-v'], stdin_path=path)
    mwtest.wait_pair(what, send, recv, 60)
    got = mwtest.sha256_file(recv.out)
    if os.path.getsize(recv.out) != size or got != want:
        fail(f'{what}: output differs from input')
    said = [ln for ln in send.err_lines() if '--pages' in ln]
    if not said:
        fail(f'{what}: send -v said nothing about --pages:\n'
             + send.stderr())
    m = re.search(r'(\d+) sent as references, (\d+) as deltas', said[0])
    refs, deltas = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if refs == 0 or deltas == 0:
        fail(f'{what}: expected references and deltas: {said[0]}')
    log(f'ok  {what}: {said[0].split("--pages: ")[1]}')


def corrupt_cache(env, path, data):
    what = 'damaged receiver cache'
    tls = ['--no-tls']
    recv, port = env.recv(tls + ['--pages', 'auto', '--timeout', '20'],
                          env=dict(os.environ,
                                   MIGWIRE_TEST_FLIP_PAGE_CACHE='1'))
    send = env.send(port, tls + ['--pages', 'auto', '--timeout', '20'],
                    stdin_path=path)
    src, rrc = send.wait(60), recv.wait(60)
    if src == 0 or rrc == 0:
        fail(f'{what}: send exit {src}, recv exit {rrc}: must both fail')
    line = mwtest.one_line(recv)
    if not mwtest.has_keywords(line, 'fail their checksum', 'nothing'):
        fail(f'{what}: recv said: {line}')
    with open(recv.out, 'rb') as f:
        got = f.read()
    if not got or data[:len(got)] != got:
        fail(f'{what}: recv wrote {len(got)} bytes that are not a prefix '
             'of the input')
    log(f'ok  {what}: recv exit {rrc} after {len(got)} good bytes: {line}')


def refused(env, path, recv_args, send_args, words):
    recv, port = env.recv(['--no-tls', '--timeout', '10'] + recv_args)
    send = env.send(port, ['--no-tls', '--timeout', '10'] + send_args,
                    stdin_path=path)
    # a receiver turns the connection away and stays for the right sender
    src = send.wait(60)
    recv.signal(signal.SIGTERM)
    rrc = recv.wait(30)
    text = send.stderr() + recv.stderr()
    if src == 0 or not mwtest.has_keywords(send.stderr(), *words):
        fail(f'recv {recv_args} send {send_args}: send exit {src}, recv '
             f'exit {rrc}, want a line with {words}:\n{text}')
    log(f'ok  refused: recv {recv_args} / send {send_args}')


def bad_values(env):
    for args, words in ((['--pages', 'on'], ('--pages', 'auto nor off')),
                        (['--page-cache', '100'], ('--page-cache', '1M')),
                        (['--page-cache', '1000001'], ('multiple of 4K',))):
        rc, err = env.run_cli(['send', '--to', '127.0.0.1:1', '--no-tls',
                               *args])
        lines = err.strip().splitlines()
        if rc != 2 or len(lines) != 1 or not mwtest.has_keywords(err,
                                                                 *words):
            fail(f'send {args}: exit {rc}, want 2 and one line with '
                 f'{words}: {err}')
    log('ok  bad --pages / --page-cache values: one line, exit 2')


def run():
    env = mwtest.Env('pages')
    path = env.path('stream.bin')
    size = stream(path)
    with open(path, 'rb') as f:
        data = f.read()
    want = mwtest.sha256_file(path)
    roundtrip(env, path, size, want, ['--tls-creds', env.pki()], 'zstd', 3)
    roundtrip(env, path, size, want, ['--no-tls'], 'none', 1)
    corrupt_cache(env, path, data)
    refused(env, path, ['--pages', 'off'], ['--pages', 'auto'],
            ('--pages auto', '--pages off'))
    refused(env, path, ['--pages', 'auto', '--page-cache', '32M'],
            ['--pages', 'auto'], ('--page-cache', 'equal'))
    bad_values(env)
    log('PASS: pages')


if __name__ == '__main__':
    mwtest.main(run)
