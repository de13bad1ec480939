#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Edges of channel resume on the receiver, with a Python sender that
speaks the protocol itself (docs/protocol.md, "Resume"), so the moment of
each break is exact rather than a proxy's guess.

  ack_unread      --no-tls --join-token, one channel: an empty stream,
                  END, CLOSE; the ACK arrives but the sender resets the
                  connection without reading it. recv must not take "ACK
                  sent" for "ACK received": it waits, and a resume (its
                  proof keyed with HMAC(token, "migwire resume key v3\\0" |
                  R), not R) gets HELLO_OK with the same secret and the
                  ACK; the sender then closes and recv exits 0.
  ack_unknown     the same break, no resume: recv exits non-zero after
                  --reconnect-timeout with one line saying the stream was
                  delivered but the sender's confirmation is unknown.
  other_identity  x509, two authorized client DNs: once the first defined
                  the session, a TLS connection of the second is refused
                  with an ERROR right after its handshake, before (and
                  without) any HELLO, so such peers cannot sit on the
                  connection table.

    resume_edge.py MIGWIRE DATAGEN MKCERTS [CASE...]
"""
import os
import socket
import ssl
import struct
import sys

import mwtest
from mwtest import fail, log
import mwwire as w  # tests/lib, on the path

LIMITS = ['--timeout', '10']


def token_file(env):
    p = env.path('token')
    if not os.path.exists(p):
        with open(p, 'wb') as f:
            f.write(os.urandom(32).hex().encode() + b'\n')
        os.chmod(p, 0o600)
    with open(p, 'rb') as f:
        return p, f.read().rstrip(b' \t\r\n')


def expect(s, ftype, what):
    t, p = w.read_frame(s)
    if t != w.FT[ftype]:
        fail(f'{what}: got {w.NAMES.get(t, t)} {p[:200]!r}, want {ftype}')
    return p


def first_channel(port, token, session):
    """HELLO with the token's proof; returns (socket, HELLO_OK fields)."""
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    hl = w.hello(session, 0, 1, flags=w.HELLO_F_TOKEN)
    s.sendall(w.frame(w.FT['HELLO'], hl))
    nonce = expect(s, 'CHALLENGE', 'first HELLO')
    s.sendall(w.frame(w.FT['JOIN'], w.proof(token, w.JOIN_DOMAIN, nonce,
                                             hl)))
    return s, w.parse_hello_ok(expect(s, 'HELLO_OK', 'join proof'))


def complete_then_reset(s):
    """An empty stream 0, its END and the CLOSE; waits (peeking, reading
    nothing) until the ACK is in the socket, then resets the connection
    with it unread."""
    s.sendall(w.frame(w.FT['END'], struct.pack('>QQ', 0, 0)) +
              w.frame(w.FT['CLOSE'], struct.pack('>IIQQ', 1, 0, 0, 0)))
    while True:
        buf = s.recv(1 << 16, socket.MSG_PEEK)
        frames, _ = w.split_frames(buf)
        if not buf or any(t == w.FT['ACK'] for t, _, _ in frames):
            break
        if any(t == w.FT['ERROR'] for t, _, _ in frames):
            fail(f'recv refused the session: {frames}')
    if not buf:
        fail('recv closed before the ACK')
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                 struct.pack('ii', 1, 0))
    s.close()
    log('  ACK in the socket, connection reset with it unread')


def ack_unread(env):
    tok_path, token = token_file(env)
    recv, port = env.recv(['--no-tls', '--join-token', tok_path,
                           '--reconnect-timeout', '30'] + LIMITS)
    session = os.urandom(16)
    s, ok = first_channel(port, token, session)
    complete_then_reset(s)
    hl = w.hello(session, 0, 1, flags=w.HELLO_F_TOKEN | w.HELLO_F_RESUME)
    try:
        s = socket.create_connection(('127.0.0.1', port), timeout=10)
    except ConnectionRefusedError:
        recv.wait(10)
        fail('recv was gone after the ACK reset (it took the ACK for '
             f'received): exit {recv.rc}: {recv.stderr().strip()}')
    got = []
    try:
        s.sendall(w.frame(w.FT['HELLO'], hl))
        nonce = expect(s, 'CHALLENGE', 'resuming HELLO')
        key = w.resume_key(ok['secret'], token)
        s.sendall(w.frame(w.FT['JOIN'], w.proof(key, w.RESUME_DOMAIN,
                                                 nonce, hl)))
        while True:
            t, p = w.read_frame(s)
            if t is None:
                break
            got.append((t, p))
            if t in (w.FT['ACK'], w.FT['ERROR']):
                break
    finally:
        s.close()  # clean: the sender has its ACK
    kinds = [w.NAMES.get(t, t) for t, _ in got]
    oks = [w.parse_hello_ok(p) for t, p in got if t == w.FT['HELLO_OK']]
    if not oks or oks[0]['secret'] != ok['secret'] or \
            w.FT['ACK'] not in [t for t, _ in got]:
        fail(f'the resume after the unread ACK got {kinds} '
             f'{[p[:200] for t, p in got if t == w.FT["ERROR"]]}, want '
             f'HELLO_OK (same secret) and the ACK; recv: '
             f'{recv.stderr().strip()}')
    log(f'  resume got {" ".join(kinds)}')
    rc = recv.wait(20)
    if rc != 0:
        fail(f'recv exited {rc}: {recv.stderr().strip()}')
    lines = recv.err_lines()
    if not any('channel 0 resumed' in ln for ln in lines):
        fail(f'recv has no "channel 0 resumed" line: {lines}')
    log('  recv exit 0 after the sender closed cleanly')


def ack_unknown(env):
    tok_path, token = token_file(env)
    recv, port = env.recv(['--no-tls', '--join-token', tok_path,
                           '--reconnect-timeout', '2'] + LIMITS)
    s, _ = first_channel(port, token, os.urandom(16))
    complete_then_reset(s)
    rc = recv.wait(30)
    err = recv.stderr().strip()
    if rc == 0 or not mwtest.has_keywords(
            err, 'delivered', "sender's confirmation is unknown",
            '--reconnect-timeout'):
        fail(f'recv exited {rc} without saying the confirmation is '
             f'unknown: {err}')
    log(f'  recv exit {rc}: '
        f'{[ln for ln in recv.err_lines() if "confirmation" in ln][0]}')


def other_identity(env):
    pki = env.pki()
    intr = mwtest.issue_client(env, pki, 'intruder',
                               '/C=GB/O=Example Org/CN=intruder')
    recv, port = env.recv(['--tls-creds', pki, '--wait', '20',
                           '--tls-authz', 'CN=migwire client vm',
                           '--tls-authz', 'CN=intruder,O=Example Org,C=GB'] +
                          LIMITS)
    # channel 0 of 2 defines the session, which then waits for channel 1
    a = mwtest.tls_client(port, pki, server_hostname='localhost')
    b = None
    try:
        a.sendall(w.frame(w.FT['HELLO'], w.hello(os.urandom(16), 0, 2)))
        expect(a, 'HELLO_OK', "the session's first channel")
        b = mwtest.tls_client(port, intr, server_hostname='localhost')
        b.settimeout(4)  # the receiver answers at once, or not at all
        try:
            t, p = w.read_frame(b)
        except (OSError, ssl.SSLError):
            t, p = None, b''
        if t != w.FT['ERROR'] or b"is not the session's source" not in p:
            fail(f'a connection of another identity that sends nothing got '
                 f'{w.NAMES.get(t, t)} {p[:200]!r}, want an ERROR at once')
        log(f'  other identity, no HELLO: ERROR "{p.decode()}"')
    finally:
        a.close()
        if b:
            b.close()
        recv.signal(15)
        recv.wait(20)


CASES = {'ack_unread': ack_unread, 'ack_unknown': ack_unknown,
         'other_identity': other_identity}


def run():
    env = mwtest.Env('resume_edge')
    want = sys.argv[4:] or list(CASES)
    for name in want:
        log(f'case {name}')
        CASES[name](env)
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
