#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""send --adaptive: chunks go raw only while the codec is behind.

Two TLS (x509) + zstd round trips of a realistic 32 MiB input on 2 channels,
byte-exact, checked through the sender's final --stats-file line:

  codec behind   zstd level 19 on 1 worker over loopback: the channels
                 are far faster than the codec, so most chunks must go raw
                 (chunks_adaptive >= half of the chunks) and the wire must
                 carry about the input (bytes_wire >= 0.8 x input);
  network behind zstd level 1 on 2 workers, --max-bandwidth 12M: the codec
                 is far ahead of the link, so almost every chunk must be
                 compressed (chunks_adaptive <= 10 % of the chunks) and the
                 ratio must stay near that of the same input without
                 --adaptive (wire bytes <= 1.1 x).

And --adaptive with --compress none is a usage error (exit 2, one line).

    adaptive.py MIGWIRE DATAGEN MKCERTS
"""
import os

import mwtest
from mwtest import MiB, fail, log

SIZE = 32 * MiB


def trip(env, inp, want, name, extra):
    tls = mwtest.tls_args('x509', env)
    stats = env.path(f'send-{name}.stats')
    recv, port = env.recv(tls + ['--timeout', '30'])
    send = env.send(port, tls + ['--channels', '2', '--compress', 'zstd',
                                 '--stats-file', stats, '--timeout', '30'] +
                    extra, stdin_path=inp)
    mwtest.wait_pair(name, send, recv, 120)
    if mwtest.sha256_file(recv.out) != want:
        fail(f'{name}: output differs from input')
    os.unlink(recv.out)
    st = mwtest.final_stats(stats)
    log(f'{name:<26} chunks {st["chunks"]:>4}  raw by --adaptive '
        f'{st.get("chunks_adaptive", "-"):>4}  wire {st["bytes_wire"]:>9} B  '
        f'{st["elapsed_s"]:.2f} s')
    return st


def run():
    env = mwtest.Env('adaptive')
    inp = env.make_input('realistic', SIZE, seed=11)
    want = mwtest.sha256_file(inp)

    st = trip(env, inp, want, 'codec behind',
              ['--adaptive', '--compress-level', '19',
               '--compress-threads', '1'])
    if 'chunks_adaptive' not in st:
        fail('codec behind: stats lack chunks_adaptive')
    if st['chunks_adaptive'] * 2 < st['chunks']:
        fail(f'codec behind: only {st["chunks_adaptive"]} of {st["chunks"]} '
             'chunks went raw although the codec was the bottleneck')
    if st['bytes_wire'] < 0.8 * SIZE:
        fail(f'codec behind: {st["bytes_wire"]} wire bytes for {SIZE} '
             'input bytes: the chunks were compressed anyway')

    cap = ['--max-bandwidth', '12M', '--compress-threads', '2']
    base = trip(env, inp, want, 'network behind, plain', cap)
    if 'chunks_adaptive' in base:
        fail('without --adaptive the stats must not report chunks_adaptive')
    st = trip(env, inp, want, 'network behind, adaptive', cap + ['--adaptive'])
    if st['chunks_adaptive'] * 10 > st['chunks']:
        fail(f'network behind: {st["chunks_adaptive"]} of {st["chunks"]} '
             'chunks went raw although the link was the bottleneck')
    if st['bytes_wire'] > 1.1 * base['bytes_wire']:
        fail(f'network behind: {st["bytes_wire"]} wire bytes with '
             f'--adaptive against {base["bytes_wire"]} without')

    rc, err = env.run_cli(['send', '--to', '127.0.0.1:1', '--no-tls',
                                '--compress', 'none', '--adaptive'])
    if rc != 2 or 'adaptive' not in err or len(err.strip().splitlines()) != 1:
        fail(f'--adaptive --compress none: exit {rc}, stderr {err!r}; '
             'want exit 2 and one line naming --adaptive')
    log('ok  --adaptive --compress none is refused: ' + err.strip())


mwtest.main(run)
