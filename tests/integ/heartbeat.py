#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Heartbeat: a silent authenticated peer is detected, a quiet live one is
not; and a hostile receiver's ERROR text reaches send's line escaped.

Every admitted channel sends a PING after a second without sending
anything, and fails when it has received nothing for --timeout seconds
(docs/protocol.md). Cases:
- silent_sender: a python TLS client (the test PKI's client certificate)
  sends HELLO, gets HELLO_OK and then sends nothing while reading. recv
  --timeout 3 must end with exit 1 and one line saying the peer is silent,
  having written nothing; the client must have seen PING frames.
- silent_receiver: a plaintext python receiver answers each HELLO with
  HELLO_OK and then only reads. send --timeout 3 must end the same way.
- blackhole: a real send/recv pair through the fault proxy, which after
  1 MiB stops forwarding both ways while both TCP connections stay up
  (the kernels ACK, so TCP's own timeout never fires). Both sides must
  end with exit 1 and one line; recv's output is a prefix of the input.
  These three run with --reconnect-timeout 0: by default a silent
  channel is lost and resumed instead (fault_resume's blackhole).
- quiet_input: the source pauses for twice --timeout mid-stream; the
  heartbeat keeps the session alive and it completes byte-exact.
- error_escaped: the python receiver answers HELLO with an ERROR holding
  an escape sequence, a newline and a NUL: send's one line shows them
  escaped.
Each failing side must be done well within the 40 s the test waits.

    heartbeat.py MIGWIRE DATAGEN MKCERTS [CASE...]
"""
import hashlib
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import faultlib as fl
import mwtest
from mwtest import MiB, fail, log
from mwwire import PROTO, split_frames  # noqa: E402 (tests/lib)

HDR = 40
FT_HELLO, FT_HELLO_OK, FT_ERROR, FT_PING = 1, 2, 6, 14
TIMEOUT = 3
WAIT = 40  # generous: a bound on the test, not a timing assertion


def frame(ftype, payload=b''):
    return struct.pack('>HBBHHIIIIQQ', 0x4d57, ftype, 0, 0, 0, 0, 0,
                       len(payload), 0, 0, 0) + payload


def hello(session):
    p = b'MIGWIRE\0' + struct.pack('>HHHBB', PROTO, 0, 1, 0, 0)
    return frame(FT_HELLO, p + session +
                 struct.pack('>II', 64 << 10, 32) + bytes(24))


def hello_ok(index, session):
    # the resume secret: one per session, as a receiver's
    return frame(FT_HELLO_OK, struct.pack('>HHI', PROTO, index, 32) +
                 session + hashlib.sha256(session).digest())


def one_line_exit1(proc, words, what):
    rc = proc.wait(WAIT)
    if rc != 1:
        fail(f'{what}: {proc.name} exited {rc}: {proc.stderr().strip()}')
    line = fl.clean_failure(proc, *words)
    log(f'  {proc.name}: {line}')
    return line


class FakeReceiver:
    """A plaintext listener that reads each channel's HELLO and answers
    with answer(index, session) bytes, then only reads (never writes)."""

    def __init__(self, answer):
        self.ls = socket.socket()
        self.ls.bind(('127.0.0.1', 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.answer = answer
        self.socks = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.socks.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        try:
            b = mwtest.recv_exact(c, HDR + 64)
            if len(b) < HDR + 64:
                return
            index = struct.unpack('>H', b[HDR + 10:HDR + 12])[0]
            c.sendall(self.answer(index, b[HDR + 16:HDR + 32]))
            while not self.stop and c.recv(1 << 16):
                pass
        except OSError:
            pass

    def close(self):
        self.stop = True
        self.ls.close()
        for s in self.socks:
            s.close()


def run():
    env = mwtest.Env('heartbeat')
    pki = env.pki()
    t = ['--timeout', str(TIMEOUT)]
    # a silent channel is "lost" and would wait to be resumed
    # (fault_resume); these cases check the heartbeat that finds it
    once = ['--reconnect-timeout', '0']
    inp = env.make_input('realistic', 24 * MiB, seed=11)

    def silent_sender():
        recv, port = env.recv(['--tls-creds', pki, '--wait', '10'] + t +
                              once)
        s = mwtest.tls_client(port, pki, timeout=WAIT)
        types, buf = [], b''
        try:
            s.sendall(hello(os.urandom(16)))
            # read (and say nothing) until recv gives up on us
            while True:
                try:
                    d = s.recv(65536)
                except (OSError, ssl.SSLError):
                    break
                if not d:
                    break
                got, buf = split_frames(buf + d)
                types += [t for t, _, _ in got]
        finally:
            s.close()
        line = one_line_exit1(recv, ('silent', f'{TIMEOUT} s'),
                              'a silent sender')
        log(f'  the client got {types.count(FT_PING)} PING(s), frames '
            f'{types}')
        if FT_HELLO_OK not in types or FT_PING not in types:
            fail(f'recv sent {types}: want HELLO_OK and PINGs')
        if os.path.getsize(recv.out):
            fail('recv wrote bytes of a silent sender')
        return line

    def silent_receiver():
        fr = FakeReceiver(hello_ok)
        try:
            send = env.send(fr.port, ['--no-tls', '--channels', '2',
                                      '--compress', 'none'] + t + once,
                            stdin_path=inp)
            one_line_exit1(send, ('silent', f'{TIMEOUT} s'),
                           'a silent receiver')
        finally:
            fr.close()

    def blackhole():
        recv, port = env.recv(['--no-tls', '--wait', '10'] + t + once)
        px = fl.Proxy(port)
        px.kill_at(None, 1 * MiB, 'hole')
        try:
            # a slow source keeps the session going past the hole
            feed = subprocess.Popen(
                ['sh', '-c', f'head -c 4194304 "{inp}"; sleep 30; '
                 f'cat "{inp}"'], stdout=subprocess.PIPE)
            send = env.send(px.port, ['--no-tls', '--channels', '1',
                                      '--compress', 'none'] + t + once,
                            stdin=feed.stdout)
            feed.stdout.close()
            if not px.killed.wait(WAIT):
                fail('the proxy never reached 1 MiB')
            one_line_exit1(recv, ('silent',), 'a black hole (recv)')
            one_line_exit1(send, ('silent',), 'a black hole (send)')
            feed.kill()
            feed.wait()
            with open(inp, 'rb') as f:
                fl.check_prefix(recv.out, f.read())
        finally:
            px.close()

    def quiet_input():
        recv, port = env.recv(['--no-tls', '--wait', '10'] + t)
        pause = 2 * TIMEOUT
        feed = subprocess.Popen(
            ['sh', '-c', f'head -c 1048576 "{inp}"; sleep {pause}; '
             f'tail -c +1048577 "{inp}"'], stdout=subprocess.PIPE)
        send = env.send(port, ['--no-tls', '--channels', '2'] + t,
                        stdin=feed.stdout)
        feed.stdout.close()
        mwtest.wait_pair(f'a source quiet for {pause} s', send, recv)
        feed.wait()
        fl.check_exact(recv.out, inp)
        log(f'  a {pause} s pause with --timeout {TIMEOUT}: byte-exact')

    def error_escaped():
        evil = b'bad\x1b]0;pwned\x07\x1b[2J\r\nmigwire send: fake\x00!'
        fr = FakeReceiver(lambda i, s: frame(FT_ERROR, evil))
        try:
            send = env.send(fr.port, ['--no-tls'] + t, stdin_path=inp)
            line = one_line_exit1(
                send, ('refused', 'bad\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x0a'
                       'migwire send: fake\\x00!'), 'an ERROR with escapes')
            if any(ord(ch) < 0x20 or ord(ch) > 0x7e for ch in line):
                fail(f'send printed control bytes: {line!r}')
        finally:
            fr.close()

    cases = [('silent_sender', silent_sender),
             ('silent_receiver', silent_receiver), ('blackhole', blackhole),
             ('quiet_input', quiet_input), ('error_escaped', error_escaped)]
    fl.run_named(env, cases)


if __name__ == '__main__':
    mwtest.main(run)
