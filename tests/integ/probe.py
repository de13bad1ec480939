#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""integ/probe: `migwire send --probe` (PROBE / PROBE_OK, docs/protocol.md)
says whether a receiver would take this sender's session, without starting
one.

One X.509 receiver with --tls-authz for the sender's certificate, probed:
  ready:       exit 0, one line on stdout naming the receiver's DN
  wrong CA:    another CA's credentials -> exit 1, one line, 'not signed'
  authz:       a second receiver that authorizes someone else -> exit 1,
               'not authorized (--tls-authz)'
  --no-tls:    against the TLS receiver -> exit 1, one line
  endpoints:   --listen unix:... against an exec: receiver -> exit 1
  window:      --chunk-size 16M against its 8 MiB --window -> exit 1
  missing:     nothing listening -> exit 1, 'refused'
  escaped:     a fake receiver answers the PROBE with an ERROR holding
               terminal escapes and a forged line -> one inert line
Then the real session still works after all those probes (a probe neither
fixes nor consumes the session, and is not counted as a rejected sender),
and a probe during the session says 'already serves a session'.
"""
import os
import socket
import struct
import subprocess
import threading

import mwtest
from mwtest import fail, log
from mwwire import PROTO  # noqa: E402 (tests/lib, on the path)


def probe(env, port, *args):
    r = subprocess.run([env.mw, 'send', '--to', f'127.0.0.1:{port}',
                        '--probe', *args], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


def refused(what, got, *words):
    rc, out, err = got
    lines = err.splitlines()
    log(f'    {what}: exit {rc}: {err}')
    if rc != 1 or len(lines) != 1 or out:
        fail(f'{what}: want exit 1 and one line, got exit {rc}:\n{err}\n'
             f'stdout: {out!r}')
    if not mwtest.has_keywords(lines[0], *words):
        fail(f'{what}: the line does not say {words}: {lines[0]!r}')


def run():
    env = mwtest.Env('probe')
    pki = env.pki()
    other = env.pki('other')  # another CA
    creds = ['--tls-creds', pki]
    dn = subprocess.run(['openssl', 'x509', '-noout', '-subject',
                         '-nameopt', 'RFC2253', '-in',
                         os.path.join(pki, 'client-cert.pem')],
                        capture_output=True, text=True,
                        check=True).stdout.strip().split('=', 1)[1]
    recv, port = env.recv([*creds, '--tls-authz', dn, '-v'])

    rc, out, err = probe(env, port, *creds)
    log(f'    ready: exit {rc}: {out}')
    if rc != 0 or 'ready' not in out or 'CN=localhost' not in out or err:
        fail(f'ready: exit {rc}, stdout {out!r}, stderr {err!r}')
    refused('wrong CA', probe(env, port, '--tls-creds', other), 'not signed')
    refused('--no-tls', probe(env, port, '--no-tls'), 'not speaking TLS', 'same TLS mode')
    refused('endpoints', probe(env, port, *creds, '--listen',
                               'unix:' + env.path('q.sock')),
            '--connect', '--listen')
    refused('window', probe(env, port, *creds, '--chunk-size', '16M'),
            '--window', '--chunk-size')
    lone, lport = env.recv([*creds, '--tls-authz', 'CN=someone else'])
    refused('authz', probe(env, lport, *creds), 'not authorized',
            '--tls-authz')
    lone.signal(15)
    lone.wait()
    refused('missing', probe(env, mwtest.free_port(), *creds), 'refused')

    # the session after the probes: a probe did not fix or take it
    data = env.make_input('random', 3 * mwtest.MiB)
    send = env.send(port, creds, stdin_path=data)
    mwtest.wait_pair('session after probes', send, recv)
    if mwtest.sha256_file(recv.out) != mwtest.sha256_file(data):
        fail('the output differs from the input')
    err = recv.stderr()
    # ready, endpoints and window were answered; the others refused at TLS
    if err.count('answered a probe') != 3:
        fail(f'recv should have answered 3 probes:\n{err}')

    # busy: channel 0 of a 2-channel session has joined (a plaintext HELLO
    # by hand), so the receiver still listens and a prober learns that
    # a session runs there
    busy, bport = env.recv(['--no-tls'])
    s = socket.create_connection(('127.0.0.1', bport))
    hello = (b'MIGWIRE\0' + struct.pack('>HHHBB', PROTO, 0, 2, 0, 0) +
             os.urandom(16) + struct.pack('>II', 256 << 10, 16) + bytes(24))
    s.sendall(struct.pack('>HBBHHIIIIQQ', 0x4d57, 1, 0, 0, 0, 0, 0,
                          len(hello), 0, 0, 0) + hello)
    hdr = mwtest.recv_exact(s, 40)
    if hdr[2] != 2:
        fail(f'the hand-made HELLO got frame type {hdr[2]}, not HELLO_OK')
    refused('busy', probe(env, bport, '--no-tls'), 'already serves')
    # a PROBE of another version, or with reserved bytes set, is refused
    # with an ERROR that says so (a version-1 probe: the version's name)
    for payload, words in ((b'MIGWIRE\0' + struct.pack('>H', 1) + bytes(6),
                            'protocol version 1 not supported'),
                           (b'MIGWIRE\0' + struct.pack('>H', PROTO) + bytes(5)
                            + b'\x07', 'malformed PROBE')):
        c = socket.create_connection(('127.0.0.1', bport))
        c.sendall(struct.pack('>HBBHHIIIIQQ', 0x4d57, 10, 0, 0, 0, 0, 0,
                              len(payload), 0, 0, 0) + payload)
        hdr = mwtest.recv_exact(c, 40)
        text = mwtest.recv_exact(c, struct.unpack('>I', hdr[16:20])[0])
        c.close()
        log(f'    bad probe: frame {hdr[2]}: {text.decode()}')
        if hdr[2] != 6 or words not in text.decode():
            fail(f'bad probe: frame type {hdr[2]}, {text!r}; want ERROR '
                 f'saying {words!r}')
    s.close()
    busy.signal(15)
    busy.wait()
    escaped_error(env)
    log('PASS')


def escaped_error(env):
    """The receiver's ERROR text reaches the operator's terminal (and
    migwire migrate's failure line): escaped, on one line."""
    evil = b'no\x1b]0;pwned\x07\x1b[2J\r\nmigwire send: fake\x00!'
    ls = socket.socket()
    ls.bind(('127.0.0.1', 0))
    ls.listen(1)

    def answer():
        c, _ = ls.accept()
        mwtest.recv_exact(c, 40 + 16)  # header + PROBE
        c.sendall(struct.pack('>HBBHHIIIIQQ', 0x4d57, 6, 0, 0, 0, 0, 0,
                              len(evil), 0, 0, 0) + evil)
        c.close()

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    rc, out, err = probe(env, ls.getsockname()[1], '--no-tls')
    t.join(10)
    ls.close()
    log(f'    escaped: exit {rc}: {err}')
    if rc != 1 or len(err.splitlines()) != 1 or out:
        fail(f'escaped: want exit 1 and one line, got exit {rc}: {err!r}')
    if 'no\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x0amigwire send: fake' \
            not in err or any(ord(ch) < 0x20 or ord(ch) > 0x7e for ch in err):
        fail(f'escaped: the receiver text is not escaped: {err!r}')


if __name__ == '__main__':
    mwtest.main(run)
