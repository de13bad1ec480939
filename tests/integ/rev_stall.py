#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A source QEMU that stops reading its return path stalls only that
stream's reverse writer, never the channel that carries the stream.

exec: mode, one channel, no TLS. recv's stdin is a pipe the test fills
with 1 MiB of "return path" bytes (then closes), its stdout a pipe the
test drains; send reads 8 MiB of input through a 1 MiB window, and its
stdout (where the source QEMU would read the return path) is a pipe that
nobody reads, so it is full after 64 KiB. The forward direction needs
credit (WINDOW frames) on that same channel all along: it must still
deliver every byte, byte-exact. Then, --timeout seconds after the last
byte the reverse writer got into the pipe, send must fail with one line
naming stream 0 and its return path, and recv with one line too.
Without the per-stream writer the channel blocks in its write to the
full pipe, no credit is read, and recv gets about one window.

    rev_stall.py MIGWIRE DATAGEN MKCERTS
"""
import os
import subprocess
import threading

import faultlib as fl
import mwtest
from mwtest import MiB, fail, log

TIMEOUT = 10


def run():
    env = mwtest.Env('rev_stall')
    inp = env.make_input('realistic', 8 * MiB, seed=13)
    with open(inp, 'rb') as f:
        data = f.read()
    rr, rw = os.pipe()  # recv's stdin: the destination's return path
    recv, port = env.recv(['--no-tls', '--wait', '20', '--timeout',
                           str(TIMEOUT)], stdin=rr, out=subprocess.PIPE)
    os.close(rr)
    fwd = mwtest.Collect(recv.p.stdout, 'recv-stdout')

    def feed():
        try:
            os.write(rw, os.urandom(1 * MiB))
        except OSError:
            pass
        os.close(rw)

    threading.Thread(target=feed, daemon=True).start()
    sr, sw = os.pipe()  # send's stdout: never read
    try:
        send = env.send(port, ['--no-tls', '--channels', '1', '--window',
                               '1M', '--chunk-size', '64K', '--timeout',
                               str(TIMEOUT)], stdin_path=inp, out=sw)
        # (env.send opened sw as send's stdout and closed our copy)
        rc = send.wait(TIMEOUT + 40)
        held = mwtest.unread(sr)
    finally:
        os.close(sr)
    rrc = recv.wait(30)
    got = fwd.join_data(30, 'recv stdout')
    log(f'send exit {rc} ({held} B sat unread in its stdout), recv exit '
        f'{rrc}, forward {len(got)} of {len(data)} B')
    fl.show(send)
    fl.show(recv)
    if got != data:
        fail(f'the forward direction stopped at {len(got)} of {len(data)} '
             f'B: the stalled return path held the channel')
    line = fl.clean_failure(send, 'stream 0', 'return path',
                            f'{TIMEOUT} s')
    log(f'  send: {line}')
    fl.clean_failure(recv, 'stream 0', 'return path')
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
