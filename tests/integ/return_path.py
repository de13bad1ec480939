#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""recv's return-path relay in exec: mode, and --no-return-path.

Under QEMU's exec: URI recv's stdin is where the destination QEMU writes its
return path (SHUT, PONG, page requests) and send's stdout is where the source
QEMU reads it. recv relays its stdin only when stdin and stdout are both
pipes or sockets (docs/usage.md, migwire.1; tools/migwire.c decides on
stdout, transport/recv.c on stdin), and never with --no-return-path. A
relayed reverse direction ends when recv's stdin reaches EOF, and the
session ends only when every stream ended both ways: so with the relay on,
both sides keep running after the forward output is complete until the test
closes recv's stdin.

Every case sends the same 200 KiB through 64 KiB chunks and checks that
recv's output is byte-exact and that both sides exit 0:
  relay_pipes   stdin and stdout pipes (TLS PSK): send's stdout gets exactly
                the bytes written into recv's stdin, both before the forward
                output completed and after; the sides wait for that EOF.
  relay_socket  stdin and stdout one end of a socketpair: the same.
  no_rp_flag    --no-return-path, stdin a pipe holding bytes whose write end
                stays open: send's stdout stays empty, the bytes are still in
                the pipe afterwards (recv never read, never waited on it).
  stdin_file    stdin a regular file: no relay; its offset is still 0.
  stdin_null    stdin /dev/null: no relay.
  stdout_file   stdout a regular file, stdin a pipe with an open writer: no
                relay (a receiver writing to a file is not under QEMU).
Every wait is bounded (20 s a case; migwire runs with --timeout/--wait 10).

    return_path.py MIGWIRE DATAGEN MKCERTS
"""
import os
import random
import socket
import subprocess
import time

import faultlib as fl
import mwtest
from mwtest import fail, log

SIZE = 200 << 10
LIMITS = ['--timeout', '10']


class Case:
    """One exec: session: recv started with the given stdin/stdout, send
    reading the shared input. Checks exits, the forward bytes and what came
    back on send's stdout."""

    def __init__(self, env, data, inp, tls, stdin, out=None, extra=()):
        self.env, self.data = env, data
        self.recv, port = env.recv(tls + LIMITS + ['--wait', '10', *extra],
                                   stdin=stdin, out=out)
        self.fwd = None  # a Collect of the forward output, or recv.out
        if out == subprocess.PIPE:
            self.fwd = mwtest.Collect(self.recv.p.stdout, 'recv-stdout')
        self.send = env.send(port, tls + LIMITS + ['--chunk-size', '64K'],
                             stdin_path=inp)

    def back(self):
        """What send wrote to its stdout (the relayed return path)."""
        with open(self.send.out, 'rb') as f:
            return f.read()

    def forward_done(self, got):
        if got != self.data:
            fail(f'recv output: {len(got)} B, not the {len(self.data)} B '
                 'of the input')

    def finish(self, want_back):
        fl.Reaper(self.send, self.recv).wait(20, 'the session')
        if self.send.rc != 0 or self.recv.rc != 0:
            fail(f'send exit {self.send.rc}, recv exit {self.recv.rc}\n'
                 f'  send: {self.send.stderr().strip()}\n'
                 f'  recv: {self.recv.stderr().strip()}')
        if self.fwd:
            self.forward_done(self.fwd.join_data(10, "recv's stdout"))
        else:
            with open(self.recv.out, 'rb') as f:
                self.forward_done(f.read())
        got = self.back()
        if got != want_back:
            fail(f"send's stdout: {len(got)} B, want the {len(want_back)} B "
                 "written into recv's stdin" if want_back else
                 f"send's stdout got {len(got)} B with the relay off")

    def still_running(self, secs, why):
        """Both sides must still run secs seconds from now."""
        time.sleep(secs)
        for p in (self.send, self.recv):
            if p.poll() is not None:
                fail(f'{p.name} exited {p.rc} {why}: '
                     f'{p.stderr().strip()}')


def relay_pipes(env, data, inp, rev):
    a, b = rev[:3000], rev[3000:]
    r, w = mwtest.pipe_holding(a)
    try:
        c = Case(env, data, inp, mwtest.tls_args('psk', env), r,
                 subprocess.PIPE, extra=['-v'])
        c.forward_done(c.fwd.join_data(20, "recv's stdout"))
        fl.wait_for(lambda: len(c.back()) >= len(a), 10,
                    f"the first {len(a)} reverse bytes on send's stdout")
        c.still_running(0.5, "with recv's stdin still open")
        # -v says what holds the session, and how to let it go
        fl.wait_for(lambda: any('--no-return-path' in ln and 'EOF on stdin'
                                in ln for ln in c.recv.err_lines()), 10,
                    "recv's -v hint that only stdin holds the session")
        if not any('return path: relaying stdin' in ln
                   for ln in c.recv.err_lines()):
            fail(f'recv -v does not say it relays stdin: '
                 f'{c.recv.stderr().strip()}')
        os.write(w, b)
        os.close(w)
        w = -1
        c.finish(rev)
        if mwtest.unread(r):
            fail(f"{mwtest.unread(r)} B left unread in recv's stdin")
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def relay_socket(env, data, inp, rev):
    mine, theirs = socket.socketpair()
    with mine:
        with theirs:
            c = Case(env, data, inp, ['--no-tls'], theirs.fileno(),
                     theirs.fileno())
        c.fwd = mwtest.Collect(mine, 'recv-socket')
        mine.sendall(rev)
        mine.shutdown(socket.SHUT_WR)
        c.finish(rev)


def no_rp_flag(env, data, inp, rev):
    r, w = mwtest.pipe_holding(rev)
    try:
        c = Case(env, data, inp, ['--no-tls'], r, subprocess.PIPE,
                 extra=['--no-return-path'])
        c.finish(b'')
        check_untouched(r, rev)
    finally:
        os.close(r)
        os.close(w)


def check_untouched(r, rev):
    """The pipe still holds exactly rev: nobody read from it."""
    n = mwtest.unread(r)
    if n != len(rev) or os.read(r, n) != rev:
        fail(f"recv read from its stdin: {n} of {len(rev)} B left")


def stdin_file(env, data, inp, rev):
    p = env.path('recv-stdin')
    with open(p, 'wb') as f:
        f.write(rev)
    fd = os.open(p, os.O_RDONLY)
    try:
        c = Case(env, data, inp, ['--no-tls'], fd, subprocess.PIPE)
        c.finish(b'')
        # the child's stdin shares this open file (and its offset)
        if os.lseek(fd, 0, os.SEEK_CUR) != 0:
            fail("recv read from a regular file on its stdin")
    finally:
        os.close(fd)


def stdin_null(env, data, inp, rev):
    Case(env, data, inp, ['--no-tls'], subprocess.DEVNULL,
         subprocess.PIPE).finish(b'')


def stdout_file(env, data, inp, rev):
    r, w = mwtest.pipe_holding(rev)
    try:
        Case(env, data, inp, ['--no-tls'], r).finish(b'')
        check_untouched(r, rev)
    finally:
        os.close(r)
        os.close(w)


def run():
    env = mwtest.Env('return_path')
    rng = random.Random(fl.seed())
    inp = env.make_input('random', SIZE)
    with open(inp, 'rb') as f:
        data = f.read()
    rev = rng.randbytes(5000)
    cases = [(fn.__name__, lambda fn=fn: fn(env, data, inp, rev))
             for fn in (relay_pipes, relay_socket, no_rp_flag, stdin_file,
                        stdin_null, stdout_file)]
    fl.run_cases(env, cases)
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
