#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One memory budget: recv's chunk memory stays within --window.

The chunk size and the number of streams come from the sender; before the
budget an authenticated peer that announced 16 MiB chunks and opened many
streams pinned 4 slots x 16 MiB per stream (about 8 GiB for 64 streams).
An authenticated python client (fault_tls_hostile's frames, the test PKI's
client certificate) talks to a real `migwire recv --tls-creds`:
  refuse_hello   HELLO with 16 MiB chunks against --window 8M: refused with
                 one line naming the chunk size, the --window it needs and
                 the one it has (ERROR to the peer, the line in recv's log);
                 recv writes nothing.
  many_streams   socket mode (--connect to a unix socket this test drains),
                 --window 64M, 16 MiB raw chunks: the client OPENs streams
                 0..63 and sends two full chunks on each. recv must refuse
                 the stream that does not fit the budget (one line naming
                 --window) and its VmHWM, polled while it runs, must stay
                 within --window + FIXED. Without the budget every stream
                 took slots, so VmHWM grew by 32 MiB a stream.
  honest_streams a real sender in socket mode, 4 streams of 6 MiB through
                 --window 64M: each starts with HELLO_OK's credit and grows
                 to its share of the budget: byte-exact, exit 0.
FIXED (64 MiB) is the documented allowance beyond --window (threads,
per-channel buffers, the decompress pool; docs/operations.md).

    memory_budget.py MIGWIRE DATAGEN MKCERTS [CASE...]
"""
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import faultlib as fl
import fault_tls_hostile as fh
import mwtest
from mwtest import fail, log

MiB = 1 << 20
CHUNK = 16 * MiB
FIXED = 64 * MiB
STREAMS = 64


def open_frame(stream, ep=0, kind=3):
    return fh.frame(fh.FT_OPEN, struct.pack('>HB5x', ep, kind),
                    stream=stream)


class Drain:
    """A unix socket that accepts every connection and reads it to EOF
    (then closes it): the destination QEMU of socket mode. got[i] holds
    what the i-th connection carried when keep is set."""

    def __init__(self, path, keep=False):
        self.keep, self.got, self.n = keep, {}, 0
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.bind(path)
        self.s.listen(128)
        self.s.settimeout(0.2)
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _read(self, c, i):
        buf = []
        while True:
            try:
                b = c.recv(1 << 20)
            except OSError:
                break
            if not b:
                break
            if self.keep:
                buf.append(b)
        self.got[i] = b''.join(buf)
        c.close()

    def _run(self):
        while not self.stop:
            try:
                c, _ = self.s.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            threading.Thread(target=self._read, args=(c, self.n),
                             daemon=True).start()
            self.n += 1

    def close(self):
        self.stop = True
        self.t.join(5)
        self.s.close()


def refuse_hello(env, pki):
    recv, port = env.recv(['--tls-creds', pki, '--wait', '3', '--timeout',
                           '5', '--window', '8M'])
    c = fh.Client(env, port, pki)
    try:
        c.send(fh.hello(os.urandom(16), chunk=CHUNK))
        fr, _ = c.frames(timeout=8, until=fh.FT_ERROR)
    finally:
        c.close()
    rc = recv.wait(15)
    err = [p.decode('utf-8', 'replace') for t, _, p in fr
           if t == fh.FT_ERROR]
    want = 'chunk size 16 MiB needs at least 32 MiB of --window on the ' \
        'receiver (have 8 MiB)'
    if not err or want not in err[0]:
        fail(f'want ERROR "{want}", got {fh.describe(fr)}')
    lines = [ln for ln in recv.err_lines() if 'rejected connection' in ln]
    if len(lines) != 1 or want not in lines[0]:
        fail(f'recv does not log the refusal once: {recv.stderr().strip()}')
    if os.path.getsize(recv.out):
        fail('recv wrote bytes for a refused HELLO')
    log(f'  recv: {lines[0]} (exit {rc})')


def many_streams(env, pki):
    if fh.xxh3(b'x') is None:
        log('  libxxhash not loadable through ctypes: skipped')
        return
    # ThreadSanitizer's shadow memory alone is over the bound (about 220
    # MiB here): VmHWM cannot speak of our budget in such a build
    with open(env.mw, 'rb') as f:
        if b'__tsan_init' in f.read():
            log('  a ThreadSanitizer build: VmHWM bound not checked, skipped')
            return
    window = 64 * MiB
    sock = env.path('dst.sock')
    drain = Drain(sock)
    recv, port = env.recv(['--tls-creds', pki, '--wait', '10', '--timeout',
                           '10', '--window', f'{window >> 20}M',
                           '--connect', f'unix:{sock}'])
    reaper = fl.Reaper(recv)
    c = fh.Client(env, port, pki)
    sent = 0
    payload = os.urandom(CHUNK)
    dframe = [fh.data(seq, payload) for seq in range(2)]
    try:
        c.send(fh.hello(os.urandom(16), chunk=CHUNK))
        fr, _ = c.frames(until=fh.FT_HELLO_OK)
        if not fr or fr[-1][0] != fh.FT_HELLO_OK:
            fail(f'no HELLO_OK: {fh.describe(fr)}: {recv.stderr().strip()}')
        credit = struct.unpack('>HHI', fr[-1][2][:8])[2]
        log(f'  HELLO_OK: {credit} slots per stream')
        for st in range(STREAMS):
            reaper.sample()
            # over the bound already: no need to pin more of this host
            if recv.poll() is not None or \
                    reaper.mib(recv) * MiB > window + FIXED:
                break
            try:
                c.send(open_frame(st))
                for seq in range(min(2, credit)):
                    d = bytearray(dframe[seq])
                    struct.pack_into('>I', d, 8, st)  # the stream field
                    c.send(bytes(d))
                sent = st + 1
            except (OSError, ssl.SSLError):
                break
        c.frames(timeout=3)
    finally:
        c.close()
    if reaper.mib(recv) * MiB > window + FIXED:
        recv.signal(15)
    reaper.wait(20, 'recv after the flood of streams')
    drain.close()
    hwm = reaper.mib(recv)
    log(f'  sent chunks on {sent} streams; recv exit {recv.rc}, VmHWM '
        f'{hwm:.0f} MiB (bound {(window + FIXED) >> 20} MiB)')
    if hwm * MiB > window + FIXED:
        fail(f'recv VmHWM {hwm:.0f} MiB is over --window + '
             f'{FIXED >> 20} MiB')
    line = fl.clean_failure(recv, 'stream', '--window')
    log(f'  recv: {line}')


def honest_streams(env, pki):
    """Socket mode with a real sender: 4 streams (a main one, 3 more)
    through --window 64M with 64 KiB chunks. Each stream starts with the
    credit of HELLO_OK and grows to the slots the budget gave it through
    WINDOW frames: byte-exact, both exit 0."""
    size = 6 * MiB
    data = [b'QEVM' + struct.pack('>I', 3) + os.urandom(size)] + \
        [os.urandom(size) for _ in range(3)]
    src, dst = env.path('src.sock'), env.path('dst2.sock')
    drain = Drain(dst, keep=True)
    x = ['--tls-creds', pki, '--timeout', '10']
    recv, port = env.recv(x + ['--wait', '10', '--window', '64M',
                               '--connect', f'unix:{dst}'])
    send = env.send(port, x + ['--listen', f'unix:{src}', '--chunk-size',
                               '64K', '--compress', 'none'],
                    stdin=subprocess.DEVNULL)
    fl.wait_for(lambda: mwtest.unix_listening(src), 10, 'send to listen')

    conns = []
    for i in range(4):  # all connected before any ends: one session
        c = socket.socket(socket.AF_UNIX)
        c.settimeout(20)
        c.connect(src)
        conns.append(c)
        time.sleep(0.2)  # stream ids in connection order

    def source(i):
        c = conns[i]
        c.sendall(data[i])
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass
        c.close()
    for i in range(4):
        threading.Thread(target=source, args=(i,), daemon=True).start()
    fl.Reaper(send, recv).wait(40, 'the session')
    drain.close()
    if send.rc != 0 or recv.rc != 0:
        fail(f'send exit {send.rc}, recv exit {recv.rc}\n'
             f'  send: {send.stderr().strip()}\n'
             f'  recv: {recv.stderr().strip()}')
    for i in range(4):
        if drain.got.get(i) != data[i]:
            fail(f'stream {i}: the destination got '
                 f'{len(drain.got.get(i, b""))} B, not the {len(data[i])} '
                 f'B sent')
    log('  4 streams byte-exact')


def run():
    env = mwtest.Env('memory_budget')
    pki = env.pki()
    cases = {'refuse_hello': refuse_hello, 'many_streams': many_streams,
             'honest_streams': honest_streams}
    want = env.args or list(cases)
    fl.run_cases(env, [(n, lambda n=n: cases[n](env, pki)) for n in want])
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
