#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""--join-token: the per-migration secret every channel proves it holds.

Real send/recv pairs: the same token on both sides carries the stream
byte-exact (x509 TLS, 4 channels: the proof bound to each connection's TLS
exporter; and --no-tls, bound to the receiver's nonce). A sender with
another token, with none, or a receiver with none is refused: the sender
exits 1 with one line, recv logs one line per refused connection naming
the peer's address, writes nothing, and the real sender then gets through
the same recv. A plaintext python client speaks the exchange itself: its
proof over the receiver's nonce is admitted; the second channel of that
session without the token, with a wrong tag, or replaying the first
channel's tag (another nonce) is refused; a HELLO of the previous
version gets a line naming both versions. A probe (send --probe, and a
raw PROBE) gets PROBE_OK only with the token's proof, else the same ERROR
as a HELLO.
recv --no-tls on a non-loopback address refuses to
start without a token (one line), and starts with one; token files that
are short or missing are usage errors, one readable by others is warned
about.

    join_token.py MIGWIRE DATAGEN MKCERTS [CASE...]
"""
import base64
import hashlib
import hmac
import os
import socket
import struct
import subprocess
import time

import faultlib as fl
import mwtest
from mwtest import MiB, fail, log
from mwwire import PROTO  # noqa: E402 (tests/lib, on the path)

HDR = 40
FT_HELLO, FT_HELLO_OK, FT_ERROR, FT_CHALLENGE, FT_JOIN = 1, 2, 6, 12, 13
FT_PROBE, FT_PROBE_OK = 10, 11
F_TOKEN = 1
LIMITS = ['--timeout', '10']


def token_file(env, name, data=None, mode=0o600):
    p = env.path(name)
    with open(p, 'wb') as f:
        f.write(data if data is not None else
                base64.b64encode(os.urandom(32)) + b'\n')
    os.chmod(p, mode)
    return p


def token_of(path):
    with open(path, 'rb') as f:
        return f.read().rstrip(b' \t\r\n')


def frame(ftype, payload=b''):
    return struct.pack('>HBBHHIIIIQQ', 0x4d57, ftype, 0, 0, 0, 0, 0,
                       len(payload), 0, 0, 0) + payload


def hello_payload(session, index, count, flags, version=PROTO):
    p = b'MIGWIRE\0' + struct.pack('>HHHBB', version, index, count, 0, flags)
    return p + session + struct.pack('>II', 64 << 10, 32) + bytes(24)


def tag(token, nonce, hello):
    # transport/join.c without TLS: domain with its NUL, mode 0, 32 zero
    # bytes where TLS puts the exporter value, nonce, HELLO
    msg = b'migwire join v2\0' + b'\0' + bytes(32) + nonce + hello
    return hmac.new(token, msg, hashlib.sha256).digest()


def read_frame(s):
    h = mwtest.recv_exact(s, HDR)
    if len(h) < HDR:
        return None, b''
    wl = struct.unpack('>I', h[16:20])[0]
    return h[2], mwtest.recv_exact(s, wl) if wl else b''


class Chan:
    """A plaintext channel: HELLO, then whatever the receiver asks."""

    def __init__(self, port, session, index, count=2, flags=F_TOKEN,
                 version=PROTO):
        self.s = socket.create_connection(('127.0.0.1', port), timeout=8)
        self.hello = hello_payload(session, index, count, flags, version)
        self.s.sendall(frame(FT_HELLO, self.hello))

    def answer(self, proof):
        """Reads the CHALLENGE, sends proof(nonce); returns (type, payload)
        of the receiver's answer, or (None, b'') when it closed."""
        try:
            t, nonce = read_frame(self.s)
            if t != FT_CHALLENGE:
                return t, nonce
            self.nonce = nonce
            self.s.sendall(frame(FT_JOIN, proof(nonce)))
            return read_frame(self.s)
        except (OSError, mwtest.TestFailure):
            return None, b''

    def close(self):
        self.s.close()


def check_refused_send(send, words, what):
    rc = send.wait(20)
    if rc != 1:
        fail(f'{what}: send exited {rc}: {send.stderr().strip()}')
    line = fl.clean_failure(send, *words)
    log(f'  send: {line}')


def check_recv_lines(recv, words, what):
    dl = time.monotonic() + 10
    while time.monotonic() < dl:
        lines = [ln for ln in recv.err_lines() if 'rejected' in ln]
        if any(mwtest.has_keywords(ln, *words) for ln in lines):
            break
        time.sleep(0.05)
    # one line per refused connection, each naming the peer; the sender
    # cuts its other channels once one is refused, so only one line need
    # give the reason (the rest may say the peer reset)
    named = [ln for ln in lines if mwtest.has_keywords(ln, *words)]
    if not named or any('127.0.0.1:' not in ln for ln in lines):
        fail(f'{what}: recv lines lack the peer or {words}: {lines}')
    log(f'  recv: {named[0]}')
    if os.path.getsize(recv.out):
        fail(f'{what}: recv wrote {os.path.getsize(recv.out)} B')


def run():
    env = mwtest.Env('join_token')
    pki = env.pki()
    x = ['--tls-creds', pki]
    sx = x + ['--tls-hostname', 'localhost']
    inp = env.make_input('realistic', 6 * MiB, seed=7)
    ta, tb = token_file(env, 'token-a'), token_file(env, 'token-b')

    def pair(rargs, sargs, what):
        recv, port = env.recv(rargs + LIMITS + ['--wait', '20'])
        send = env.send(port, sargs + LIMITS + ['--channels', '4'],
                        stdin_path=inp)
        mwtest.wait_pair(what, send, recv)
        fl.check_exact(recv.out, inp)
        log(f'  {what}: byte-exact')

    def ok_tls():
        pair(x + ['--join-token', ta], sx + ['--join-token', ta],
             'x509 + token')

    def ok_notls():
        pair(['--no-tls', '--join-token', ta],
             ['--no-tls', '--join-token', ta], 'no TLS + token')

    def refused(rtok, stok, words, what, tls=True):
        rargs = (x if tls else ['--no-tls']) + LIMITS + ['--wait', '30']
        sargs = (sx if tls else ['--no-tls']) + LIMITS
        recv, port = env.recv(rargs + (['--join-token', rtok] if rtok
                                       else []))
        bad = env.send(port, sargs + (['--join-token', stok] if stok
                                      else []), stdin_path=inp)
        check_refused_send(bad, words, what)
        check_recv_lines(recv, words, what)
        # nothing was injected: the real sender's stream comes out whole
        good = env.send(port, sargs + (['--join-token', rtok] if rtok
                                       else []), stdin_path=inp)
        mwtest.wait_pair(f'{what}, then the real sender', good, recv)
        fl.check_exact(recv.out, inp)

    def mismatch():
        refused(ta, tb, ('join token mismatch',), 'another token')

    def mismatch_notls():
        refused(ta, tb, ('join token mismatch',), 'another token, no TLS',
                tls=False)

    def sender_without():
        refused(ta, None, ('no join token', '--join-token'),
                'sender without a token')

    def receiver_without():
        recv, port = env.recv(x + LIMITS + ['--wait', '30'])
        bad = env.send(port, sx + LIMITS + ['--join-token', ta],
                       stdin_path=inp)
        words = ('join token', 'receiver none')
        check_refused_send(bad, words, 'receiver without a token')
        check_recv_lines(recv, words, 'receiver without a token')

    def every_channel():
        tok = token_of(ta)
        recv, port = env.recv(['--no-tls', '--join-token', ta] + LIMITS +
                              ['--wait', '30'])
        sess = os.urandom(16)
        c0 = Chan(port, sess, 0)
        t, p = c0.answer(lambda n: tag(tok, n, c0.hello))
        if t != FT_HELLO_OK:
            fail(f'channel 0 with the right proof: got type {t} {p!r}')
        log('  channel 0, right proof: HELLO_OK')
        cases = [
            ('no token', dict(flags=0), None, 'no join token'),
            ('wrong tag', {}, lambda c: lambda n: bytes(32), 'mismatch'),
            # the proof channel 0 gave, for its own nonce, replayed here
            ('replayed tag', {}, lambda c: lambda n: tag(tok, c0.nonce,
                                                         c.hello),
             'mismatch'),
        ]
        for what, kw, proof, word in cases:
            c1 = Chan(port, sess, 1, **kw)
            if proof is None:
                try:
                    t, p = read_frame(c1.s)
                except (OSError, mwtest.TestFailure):
                    t, p = None, b''
            else:
                t, p = c1.answer(proof(c1))
            c1.close()
            txt = p.decode('utf-8', 'replace')
            log(f'  channel 1, {what}: type {t} "{txt}"')
            if t != FT_ERROR or word not in txt:
                fail(f'channel 1 with {what}: want ERROR "{word}", got '
                     f'type {t} "{txt}"')
        c0.close()
        if os.path.getsize(recv.out):
            fail('recv wrote bytes')

    def old_version():
        recv, port = env.recv(['--no-tls', '--join-token', ta] + LIMITS +
                              ['--wait', '30'])
        c = Chan(port, os.urandom(16), 0, count=1, flags=0,
                 version=PROTO - 1)
        try:
            t, p = read_frame(c.s)
        finally:
            c.close()
        txt = p.decode('utf-8', 'replace')
        log(f'  version-{PROTO - 1} HELLO: type {t} "{txt}"')
        if t != FT_ERROR or f'version {PROTO - 1}' not in txt or \
                f'speaks {PROTO}' not in txt:
            fail(f'a version-{PROTO - 1} HELLO got type {t} "{txt}"')

    def non_loopback():
        port = mwtest.free_port()
        rc, err = env.run_cli(['recv', '--listen', f'0.0.0.0:{port}',
                               '--no-tls'])
        lines = err.strip().splitlines()
        log(f'  0.0.0.0 --no-tls: exit {rc}: {err.strip()}')
        if rc != 2 or len(lines) != 1 or '--join-token' not in lines[0] \
                or 'loopback' not in lines[0]:
            fail(f'recv --no-tls on 0.0.0.0 without a token: exit {rc}: '
                 f'{err.strip()}')
        # with a token it starts (and a sender with it gets through)
        recv, port = env.recv(['--no-tls', '--join-token', ta] + LIMITS +
                              ['--wait', '20'], host='0.0.0.0')
        send = env.send(port, ['--no-tls', '--join-token', ta] + LIMITS,
                        stdin_path=inp)
        mwtest.wait_pair('0.0.0.0 with a token', send, recv)
        fl.check_exact(recv.out, inp)

    def probes():
        """A PROBE proves the token as a HELLO does: a stranger learns
        nothing (not BUSY, not the limits) without it."""
        tok = token_of(ta)
        recv, port = env.recv(['--no-tls', '--join-token', ta] + LIMITS +
                              ['--wait', '30'])

        def run_probe(*args):
            r = subprocess.run([env.mw, 'send', '--to', f'127.0.0.1:{port}',
                                '--no-tls', '--probe', *args],
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=30)
            log(f'  send --probe {" ".join(args)}: exit {r.returncode}: '
                f'{(r.stdout + r.stderr).strip()}')
            return r
        r = run_probe('--join-token', ta)
        if r.returncode != 0 or 'ready' not in r.stdout:
            fail(f'probe with the token: exit {r.returncode}: {r.stderr}')
        for args, word in (((), 'no join token'),
                           (('--join-token', tb), 'mismatch')):
            r = run_probe(*args)
            lines = r.stderr.strip().splitlines()
            if r.returncode != 1 or len(lines) != 1 or word not in lines[0]:
                fail(f'probe {args}: want exit 1 and "{word}", got exit '
                     f'{r.returncode}: {r.stderr}')
        # on the wire: PROBE without the flag gets only the ERROR a HELLO
        # without it gets; with the flag, the CHALLENGE, then PROBE_OK
        for flags, proof, want in ((0, None, FT_ERROR),
                                   (F_TOKEN, lambda n, p: bytes(32),
                                    FT_ERROR),
                                   (F_TOKEN, lambda n, p: tag(tok, n, p),
                                    FT_PROBE_OK)):
            pr = b'MIGWIRE\0' + struct.pack('>HB', PROTO, flags) + bytes(5)
            s = socket.create_connection(('127.0.0.1', port), timeout=8)
            try:
                s.sendall(frame(FT_PROBE, pr))
                t, p = read_frame(s)
                if proof and t == FT_CHALLENGE:
                    s.sendall(frame(FT_JOIN, proof(p, pr)))
                    t, p = read_frame(s)
            finally:
                s.close()
            log(f'  raw PROBE flags {flags}: type {t} '
                f'{p.decode("utf-8", "replace") if t == FT_ERROR else ""}')
            if t != want:
                fail(f'raw PROBE flags {flags}: type {t}, want {want}')
        # refused probes neither fix nor consume the session
        send = env.send(port, ['--no-tls', '--join-token', ta] + LIMITS,
                        stdin_path=inp)
        mwtest.wait_pair('after the probes', send, recv)
        fl.check_exact(recv.out, inp)

    def token_files():
        short = token_file(env, 'token-short', b'0123456789\n')
        port = mwtest.free_port()
        for path, words in ((short, ('16 to', '/dev/urandom')),
                            (env.path('no-such-token'),
                             ('no such file',))):
            rc, err = env.run_cli(['recv', '--listen', f'127.0.0.1:{port}',
                                   '--no-tls', '--join-token', path])
            lines = err.strip().splitlines()
            log(f'  {os.path.basename(path)}: exit {rc}: {err.strip()}')
            if rc != 2 or len(lines) != 1 or \
                    not mwtest.has_keywords(lines[0], *words):
                fail(f'--join-token {path}: exit {rc}: {err.strip()}')
        loose = token_file(env, 'token-loose', token_of(ta), mode=0o644)
        r = subprocess.run([env.mw, 'send', '--to', '127.0.0.1:1',
                            '--no-tls', '--join-token', loose,
                            '--print-config'], capture_output=True,
                           text=True, timeout=10)
        log(f'  0644 token: exit {r.returncode}: {r.stderr.strip()}')
        if r.returncode != 0 or 'chmod 600' not in r.stderr or \
                'join-token=' not in r.stdout:
            fail(f'a 0644 token file: exit {r.returncode}: {r.stderr}')

    cases = [('ok_tls', ok_tls), ('ok_notls', ok_notls),
             ('mismatch', mismatch), ('mismatch_notls', mismatch_notls),
             ('sender_without', sender_without),
             ('receiver_without', receiver_without),
             ('every_channel', every_channel), ('old_version', old_version),
             ('non_loopback', non_loopback), ('probes', probes),
             ('token_files', token_files)]
    fl.run_named(env, cases)


if __name__ == '__main__':
    mwtest.main(run)
