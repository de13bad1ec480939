#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Only the expected source: --tls-authz, --allow-from, ca-crl.pem.

A certificate from the cluster's CA is not enough to become the source of a
migration. The test PKI comes from tools/mw-mkcerts; the openssl command
line then issues a second client certificate from the same CA
("CN=intruder,O=Example Org,C=GB") and revokes certificates with a CRL
made by `openssl ca -gencrl` over a throw-away index. Cases:
  authz_ok          recv --tls-authz names the client's DN: byte-exact,
                    and -v logs the admitted client's identity per channel.
  authz_intruder    the intruder (valid certificate, same CA) first: send
                    exits 1 naming the refusal, recv logs one line
                    "rejected connection from ADDR: client 'CN=intruder,..'
                    is not authorized (--tls-authz)" per channel and writes
                    nothing; then the real sender gets through byte-exact.
  authz_second_identity  two authorized DNs: once the first defined the
                    session, a channel of the second is refused.
  authz_file        the DN in --tls-authz-file (comments, blank lines).
  authz_psk         PSK: the identity is what --tls-authz names; a second
                    identity of the same keys.psk is refused. A key shorter
                    than 16 bytes gets a warning naming its identity.
  authz_send        send --tls-authz: a receiver certificate of another DN
                    is refused by the sender; the right DN passes.
  allow_from        recv --allow-from 127.0.0.1/32: a connection from
                    127.0.0.2 is closed at accept with one line, and the
                    sender from 127.0.0.1 gets through.
  revoked_client    ca-crl.pem on recv revokes the intruder: refused with a
                    line saying "revoked"; the valid client still works.
  help              --help names the options and says what --timeout
                    bounds (setup and the TCP user timeout only).
  revoked_server    ca-crl.pem on send revokes the server certificate: send
                    exits 1 saying "revoked".

    admission.py MIGWIRE DATAGEN MKCERTS
"""
import os
import shutil
import socket
import ssl
import struct
import subprocess
import time

import faultlib as fl
import mwtest
from mwtest import fail, log
from mwwire import PROTO  # noqa: E402 (tests/lib, on the path)

LIMITS = ['--timeout', '10']
CLIENT_DN = 'CN=migwire client vm'
INTRUDER_DN = 'CN=intruder,O=Example Org,C=GB'


openssl = mwtest.openssl
issue_client = mwtest.issue_client


def make_crl(env, pki, revoke, out_dir):
    """Writes out_dir/ca-crl.pem, issued by pki's CA, revoking the
    certificate files in revoke (an index made for the purpose)."""
    work = env.path('ca-' + os.path.basename(out_dir))
    os.makedirs(work, exist_ok=True)
    open(os.path.join(work, 'index.txt'), 'w').close()
    with open(os.path.join(work, 'crlnumber'), 'w') as f:
        f.write('01\n')
    cnf = os.path.join(work, 'ca.cnf')
    with open(cnf, 'w') as f:
        f.write('[ca]\ndefault_ca = c\n[c]\n'
                f'database = {work}/index.txt\n'
                f'crlnumber = {work}/crlnumber\n'
                'default_md = sha256\ndefault_crl_days = 30\n')
    ca = ['-config', cnf, '-keyfile', os.path.join(pki, 'ca-key.pem'),
          '-cert', os.path.join(pki, 'ca-cert.pem')]
    for cert in revoke:
        openssl('ca', *ca, '-revoke', cert)
    openssl('ca', *ca, '-gencrl', '-out', os.path.join(out_dir,
                                                        'ca-crl.pem'))


def copy_creds(env, src, name):
    d = env.path(name)
    shutil.copytree(src, d)
    return d


def hello_frame(session, index, count, chunk=64 << 10):
    """A HELLO frame (docs/protocol.md), codec none."""
    p = b'MIGWIRE\0' + struct.pack('>HHHBB', PROTO, index, count, 0, 0)
    p += session + struct.pack('>II', chunk, 32) + bytes(24)
    return struct.pack('>HBBHHIIIIQQ', 0x4d57, 1, 0, 0, 0, 0, 0, len(p), 0,
                       0, 0) + p


def raw_channel(port, creds, session, index, count=2):
    """A TLS client with creds' client certificate that sends a HELLO;
    returns (socket, type of the first frame back or None)."""
    s = mwtest.tls_client(port, creds, server_hostname='localhost')
    s.sendall(hello_frame(session, index, count))
    try:
        hdr = mwtest.recv_exact(s, 40)
    except (OSError, ssl.SSLError):
        hdr = b''
    return s, hdr[2] if len(hdr) == 40 else None


def lines_once(recv, word, timeout=5):
    """recv's stderr lines holding word, once one is there (or timeout)."""
    t = time.monotonic() + timeout
    while time.monotonic() < t and word not in recv.stderr():
        time.sleep(0.05)
    return [ln for ln in recv.err_lines() if word in ln]


def then_real(env, inp, recv, port, creds, what):
    """The real sender (x509 client of creds) through the same recv."""
    send = env.send(port, ['--tls-creds', creds] + LIMITS, stdin_path=inp)
    mwtest.wait_pair(what, send, recv)
    fl.check_exact(recv.out, inp)


def transfer(env, inp, rargs, sargs, what, send_host='127.0.0.1'):
    recv, port = env.recv(rargs + LIMITS + ['--wait', '10'])
    send = env.send(port, sargs + LIMITS, stdin_path=inp, host=send_host)
    mwtest.wait_pair(what, send, recv)
    fl.check_exact(recv.out, inp)
    return recv


def refused(env, inp, rargs, sargs, words, what):
    """A sender that must be refused, then the real one (x509 client of
    pki) through the same recv. Returns recv's lines of the refusal."""
    recv, port = env.recv(rargs + LIMITS + ['--wait', '20'])
    bad = env.send(port, sargs + LIMITS, stdin_path=inp)
    rc = bad.wait(20)
    if rc != 1:
        fail(f'{what}: the refused sender exited {rc}: '
             f'{bad.stderr().strip()}')
    if os.path.getsize(recv.out):
        fail(f'{what}: recv wrote {os.path.getsize(recv.out)} B for a '
             f'refused sender')
    # recv logs the refusal after it answered: the sender may be gone first
    dl = time.monotonic() + 10
    while time.monotonic() < dl and not any(
            mwtest.has_keywords(ln, *words) for ln in recv.err_lines()):
        time.sleep(0.05)
    lines = [ln for ln in recv.err_lines() if 'rejected connection' in ln]
    # the refused sender gives up after its first refusal, so its other
    # channels may close before their own verdict ("closed by peer")
    named = [ln for ln in lines if mwtest.has_keywords(ln, *words)]
    others = [ln for ln in lines
              if ln not in named and 'closed by peer' not in ln]
    if not named or others:
        fail(f'{what}: recv did not refuse with {words}: '
             f'{recv.stderr().strip()}')
    lines = named
    log(f'  recv: {lines[0]}')
    log(f'  send: {bad.stderr().strip()}')
    return recv, port, lines


def main():
    env = mwtest.Env('admission')
    pki = env.pki()
    inp = env.make_input('realistic', 3 << 20)
    intr = issue_client(env, pki, 'intruder', '/C=GB/O=Example Org/CN=intruder')
    x = ['--tls-creds', pki]

    def authz_ok():
        recv = transfer(env, inp, x + ['--tls-authz', CLIENT_DN, '-v'], x,
                        'authorized client')
        adm = [ln for ln in recv.err_lines() if 'admitted' in ln]
        if len(adm) != 2 or not all(f"client '{CLIENT_DN}'" in ln
                                    for ln in adm):
            fail(f'-v does not log the client identity of both channels: '
                 f'{recv.stderr().strip()}')

    def authz_intruder():
        recv, port, lines = refused(
            env, inp, x + ['--tls-authz', CLIENT_DN],
            ['--tls-creds', intr, '--tls-hostname', 'localhost'],
            ('rejected connection from 127.0.0.1:',
             f"client '{INTRUDER_DN}' is not authorized (--tls-authz)"),
            'intruder')
        # the second channel's line may come a moment after the first
        dl = time.monotonic() + 5
        while len(lines) < 2 and time.monotonic() < dl:
            time.sleep(0.05)
            lines = [ln for ln in recv.err_lines()
                     if 'rejected connection' in ln and
                     INTRUDER_DN in ln]
        if len(lines) != 2:
            fail(f'want one line per channel, got {lines}')
        then_real(env, inp, recv, port, pki,
                  'the real sender after the intruder')

    def authz_second_identity():
        # both DNs are authorized, but the session belongs to the first
        recv, port = env.recv(x + LIMITS + ['--wait', '10', '--tls-authz',
                                            CLIENT_DN, '--tls-authz',
                                            INTRUDER_DN])
        sess = os.urandom(16)
        a, ta = raw_channel(port, pki, sess, 0)
        b, tb = raw_channel(port, intr, sess, 1)
        a.close()
        b.close()
        if ta != 2 or tb == 2:
            fail(f'want HELLO_OK for the first identity only, got frame '
                 f'types {ta} and {tb}: {recv.stderr().strip()}')
        lines = lines_once(recv, 'rejected')
        if not lines or f"client '{INTRUDER_DN}' is not the session's " \
                f"source ('{CLIENT_DN}')" not in lines[0]:
            fail(f'no refusal of the second identity: '
                 f'{recv.stderr().strip()}')
        log(f'  recv: {lines[0]}')

    def authz_file():
        f = env.path('authz.txt')
        with open(f, 'w') as fh:
            fh.write(f'# the source hosts\n\nCN=someone else\n'
                     f'  {CLIENT_DN}  \n')
        transfer(env, inp, x + ['--tls-authz-file', f], x, 'authz file')
        with open(f, 'w') as fh:
            fh.write('# nobody\nCN=someone else\n')
        recv, port, _ = refused(env, inp, x + ['--tls-authz-file', f], x,
                                (f"client '{CLIENT_DN}' is not authorized",),
                                'authz file without the client')

    def authz_psk():
        keys = env.path('keys.psk')
        with open(keys, 'w') as fh:
            fh.write('src:' + os.urandom(32).hex() + '\n')
            fh.write('other:' + os.urandom(32).hex() + '\n')
            fh.write('weak:' + os.urandom(8).hex() + '\n')
        p = ['--tls-psk', keys]
        transfer(env, inp, p + ['--tls-authz', 'src'],
                 p + ['--tls-psk-identity', 'src'], 'psk identity')
        recv, port, _ = refused(
            env, inp, p + ['--tls-authz', 'src'],
            p + ['--tls-psk-identity', 'other'],
            ("client 'other' is not authorized (--tls-authz)",),
            'psk other identity')
        warn = [ln for ln in recv.err_lines() if "identity 'weak'" in ln]
        if not warn or 'only 8 bytes' not in warn[0]:
            fail(f'no warning for the 8-byte key: {recv.stderr().strip()}')
        log(f'  recv: {warn[0]}')

    def authz_send():
        recv, port = env.recv(x + LIMITS + ['--wait', '10'])
        send = env.send(port, x + LIMITS + ['--tls-authz', 'CN=elsewhere'],
                        stdin_path=inp)
        rc = send.wait(20)
        line = fl.clean_failure(send, "receiver 'CN=localhost' is not "
                                "authorized (--tls-authz)")
        log(f'  send: {line} (exit {rc})')
        recv.signal(15)
        recv.wait(10)
        transfer(env, inp, x, x + ['--tls-authz', 'CN=localhost'],
                 'send --tls-authz of the receiver')

    def allow_from():
        recv, port = env.recv(x + LIMITS + ['--wait', '10', '--allow-from',
                                            '127.0.0.1/32', '--allow-from',
                                            '::1/128'])
        s = socket.socket()
        s.bind(('127.0.0.2', 0))
        s.settimeout(5)
        s.connect(('127.0.0.1', port))
        try:
            got = s.recv(1)
        except ConnectionResetError:
            got = b''
        s.close()
        if got:
            fail('recv sent bytes to a refused address')
        lines = lines_once(recv, 'allow-from')
        if len(lines) != 1 or 'rejected connection from 127.0.0.2:' \
                not in lines[0]:
            fail(f'want one refusal line for 127.0.0.2: '
                 f'{recv.stderr().strip()}')
        log(f'  recv: {lines[0]}')
        then_real(env, inp, recv, port, pki, 'sender from an allowed address')

    def revoked_client():
        rdir = copy_creds(env, pki, 'pki-crl-recv')
        make_crl(env, pki, [os.path.join(intr, 'client-cert.pem')], rdir)
        recv, port, lines = refused(
            env, inp, ['--tls-creds', rdir],
            ['--tls-creds', intr, '--tls-hostname', 'localhost'],
            ('revoked', 'ca-crl.pem'), 'revoked client')
        then_real(env, inp, recv, port, pki, 'a valid client next to a CRL')

    def revoked_server():
        sdir = copy_creds(env, pki, 'pki-crl-send')
        make_crl(env, pki, [os.path.join(pki, 'server-cert.pem')], sdir)
        recv, port = env.recv(x + LIMITS + ['--wait', '10'])
        send = env.send(port, ['--tls-creds', sdir] + LIMITS,
                        stdin_path=inp)
        send.wait(20)
        line = fl.clean_failure(send, 'revoked', "'CN=localhost'")
        log(f'  send: {line}')
        if os.path.getsize(recv.out):
            fail('recv wrote bytes from a sender that refused it')

    def help_text():
        # --help names the new options and says what --timeout bounds
        for side, words in (('recv', ('--tls-authz ID', '--tls-authz-file',
                                      '--allow-from CIDR')),
                            ('send', ('--tls-authz DN',))):
            r = subprocess.run([env.mw, side, '--help'], capture_output=True,
                               text=True, timeout=10)
            text = ' '.join(r.stdout.split())
            for w in words + ('a channel that hears nothing from its '
                              'peer for SECS fails', 'does not bound the '
                              'migration'):
                if w not in text:
                    fail(f'{side} --help lacks "{w}"')

    cases = [('help', help_text), ('authz_ok', authz_ok), ('authz_intruder', authz_intruder),
             ('authz_second_identity', authz_second_identity),
             ('authz_file', authz_file), ('authz_psk', authz_psk),
             ('authz_send', authz_send), ('allow_from', allow_from),
             ('revoked_client', revoked_client),
             ('revoked_server', revoked_server)]
    want = env.args
    fl.run_cases(env, [c for c in cases if not want or c[0] in want])


mwtest.main(main)
