#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Who seals and opens the TLS records (tls/tls_rec.c).

migwire seals and opens TLS 1.3 records itself after libssl's handshake;
MIGWIRE_TLS_RECORDS=openssl leaves them to libssl. The wire is the same,
so each side may choose on its own. Byte-exact zstd round trips over 3
channels, 24 MiB realistic input, for x509 and PSK, with the two sides
choosing differently both ways (own/own is in roundtrip.py; KeyUpdate and
rekeying are in the unit tests). And MIGWIRE_TLS_RECORDS=bogus is a usage
error (exit 2, one line naming the variable) on either side, and
--print-config names the choice.

    tls_records.py MIGWIRE DATAGEN MKCERTS
"""
import os
import subprocess
import time

import mwtest
from mwtest import MiB, fail, log


def records_env(choice):
    e = dict(os.environ)
    e.pop('MIGWIRE_TLS_RECORDS', None)
    if choice:
        e['MIGWIRE_TLS_RECORDS'] = choice
    return e


def round_trip(env, mode, inp, want, send_rec, recv_rec):
    tls = mwtest.tls_args(mode, env)
    what = f'{mode} send={send_rec or "own"} recv={recv_rec or "own"}'
    t0 = time.monotonic()
    recv, port = env.recv(tls + ['--timeout', '20'],
                          env=records_env(recv_rec))
    send = env.send(port, tls + ['--channels', '3', '--compress', 'zstd',
                                 '--timeout', '20'],
                    stdin_path=inp, env=records_env(send_rec))
    mwtest.wait_pair(what, send, recv, 90)
    dt = time.monotonic() - t0
    if mwtest.sha256_file(recv.out) != want or \
            os.path.getsize(recv.out) != os.path.getsize(inp):
        fail(f'{what}: output differs from the input')
    for p in (send, recv):
        if p.stderr().strip():
            fail(f'{what}: {p.name} said: {p.stderr().strip()}')
    log(f'ok  {what:<32} {os.path.getsize(inp) >> 20} MiB {dt:5.2f} s')


def bogus(env):
    tls = mwtest.tls_args('psk', env)
    port = mwtest.free_port()
    for side, args in (('send', ['send', '--to', f'127.0.0.1:{port}']),
                       ('recv', ['recv', '--listen', f'127.0.0.1:{port}'])):
        r = subprocess.run([env.mw, *args, *tls], env=records_env('bogus'),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=20)
        rc = r.returncode
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        if rc != 2 or len(lines) != 1 or 'MIGWIRE_TLS_RECORDS' not in lines[0]:
            fail(f'{side} with MIGWIRE_TLS_RECORDS=bogus: exit {rc} (want 2 '
                 f'and one line naming the variable): {lines}')
        log(f'ok  {side} MIGWIRE_TLS_RECORDS=bogus: exit 2: {lines[0]}')


def print_config(env):
    tls = mwtest.tls_args('psk', env)
    for choice, want in ((None, 'own'), ('openssl', 'openssl')):
        r = subprocess.run([env.mw, 'send', '--to', '127.0.0.1:1', *tls,
                            '--print-config'], env=records_env(choice),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=20)
        if r.returncode or f'tls-records={want}' not in r.stdout.split():
            fail(f'--print-config with MIGWIRE_TLS_RECORDS={choice}: exit '
                 f'{r.returncode}, want tls-records={want}: {r.stdout}')
    log('ok  --print-config shows tls-records=own / openssl')


def run():
    env = mwtest.Env('tls_records')
    print_config(env)
    inp = env.make_input('realistic', 24 * MiB, seed=17)
    want = mwtest.sha256_file(inp)
    for mode in ('x509', 'psk'):
        round_trip(env, mode, inp, want, 'openssl', None)
        round_trip(env, mode, inp, want, None, 'openssl')
    bogus(env)
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
