#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""--io: the channels' I/O engine (transport/ring.h).

Byte-exact TLS (x509) + zstd round trips over 2 channels:
  poll/poll    both sides --io poll
  uring/poll   sender --io uring, receiver --io poll (skipped when this
               kernel refuses io_uring)
  seccomp      both sides with the default --io auto under a seccomp filter
               that fails io_uring_setup with EPERM, as Docker's default
               profile does: each side warns once and falls back to poll
and the failures: --io uring under that filter exits 1 with one line that
names --io poll; --io bogus is a usage error (exit 2). Each side's
--stats-file must name the engine it used ("io": "poll" / "uring").

    io_engine.py MIGWIRE DATAGEN MKCERTS
    io_engine.py --deny-io-uring PROGRAM ARGS...   (the seccomp wrapper)
"""
import ctypes
import errno
import json
import os
import platform
import stat
import struct
import subprocess
import sys
import time

import mwtest
from mwtest import MiB, fail, log

# AUDIT_ARCH_* of the machines whose io_uring_setup is syscall 425
ARCH = {'x86_64': 0xC000003E, 'aarch64': 0xC00000B7}
NR_IO_URING_SETUP = 425


def deny_io_uring_exec(argv):
    """Installs a seccomp filter failing io_uring_setup with EPERM (what
    Docker's default profile does), then execs argv."""
    def ins(code, jt, jf, k):
        return struct.pack('HBBI', code, jt, jf, k)
    prog = b''.join([
        ins(0x20, 0, 0, 4),                       # A = seccomp_data.arch
        ins(0x15, 0, 3, ARCH[platform.machine()]),  # other arch: allow
        ins(0x20, 0, 0, 0),                       # A = seccomp_data.nr
        ins(0x15, 0, 1, NR_IO_URING_SETUP),
        ins(0x06, 0, 0, 0x00050000 | errno.EPERM),  # SECCOMP_RET_ERRNO
        ins(0x06, 0, 0, 0x7fff0000),              # SECCOMP_RET_ALLOW
    ])

    class Fprog(ctypes.Structure):
        _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_void_p)]
    buf = ctypes.create_string_buffer(prog)
    fp = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p,
                           ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(38, 1, None, 0, 0):          # PR_SET_NO_NEW_PRIVS
        sys.exit(f'prctl(NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}')
    if libc.prctl(22, 2, ctypes.byref(fp), 0, 0):  # PR_SET_SECCOMP, FILTER
        sys.exit(f'prctl(SECCOMP): {os.strerror(ctypes.get_errno())}')
    os.execv(argv[0], argv)


def engine(stats_path):
    """The "io" of the final line of a --stats-file."""
    try:
        with open(stats_path) as f:
            lines = [json.loads(x) for x in f if x.strip()]
    except (OSError, ValueError) as e:
        fail(f'{stats_path}: {e}')
    final = [x for x in lines if x.get('final')]
    if not final:
        fail(f'{stats_path}: no final stats line')
    return final[-1].get('io')


def warnings_of(proc):
    return [l for l in proc.err_lines() if 'io_uring' in l]


def round_trip(env, what, inp, want, send_io, recv_io, expect_io,
               warn=False):
    tls = mwtest.tls_args('x509', env)
    tag = what.replace('/', '-')
    sst, rst = env.path(f'{tag}.send.stats'), env.path(f'{tag}.recv.stats')
    t0 = time.monotonic()
    recv, port = env.recv(tls + recv_io + ['--timeout', '20',
                                           '--stats-file', rst])
    send = env.send(port, tls + send_io + ['--channels', '2', '--compress',
                                           'zstd', '--timeout', '20',
                                           '--stats-file', sst],
                    stdin_path=inp)
    mwtest.wait_pair(what, send, recv, 90)
    dt = time.monotonic() - t0
    got = mwtest.sha256_file(recv.out)
    if got != want or os.path.getsize(recv.out) != os.path.getsize(inp):
        fail(f'{what}: output differs from the input')
    for p, st, io in ((send, sst, expect_io[0]), (recv, rst, expect_io[1])):
        e = engine(st)
        if e != io:
            fail(f'{what}: {p.name} ran io "{e}", want "{io}"')
        ws = warnings_of(p)
        if warn and (len(ws) != 1 or 'poll' not in ws[0]):
            fail(f'{what}: {p.name}: want one io_uring fallback warning '
                 f'naming poll, got: {p.stderr().strip()}')
        if not warn and p.stderr().strip():
            fail(f'{what}: {p.name} said: {p.stderr().strip()}')
    log(f'ok  {what:<10} send io {expect_io[0]:<5} recv io '
        f'{expect_io[1]:<5} {os.path.getsize(inp) >> 20} MiB {dt:5.2f} s'
        + (f'  warning: {warnings_of(send)[0]}' if warn else ''))


def uring_ok(env):
    """Whether this kernel lets migwire set up io_uring: the engine is
    chosen before connecting, so a send to a closed port tells."""
    port = mwtest.free_port()
    rc, err = env.run_cli(['send', '--to', f'127.0.0.1:{port}', '--no-tls',
                           '--io', 'uring', '--timeout', '2'], timeout=20)
    return 'io_uring setup' not in err, err.strip()


def wrapper(env):
    """A migwire that runs under the io_uring-denying seccomp filter."""
    w = env.path('mw-noiouring')
    with open(w, 'w') as f:
        f.write('#!/bin/sh\nexec "%s" "%s" --deny-io-uring "%s" "$@"\n'
                % (sys.executable, os.path.abspath(__file__), env.mw))
    os.chmod(w, os.stat(w).st_mode | stat.S_IXUSR)
    return w


def run():
    env = mwtest.Env('io_engine')
    inp = env.make_input('realistic', 16 * MiB, seed=11)
    want = mwtest.sha256_file(inp)

    rc, err = env.run_cli(['send', '--to', '127.0.0.1:1', '--no-tls',
                           '--io', 'epoll'])
    if rc != 2 or '--io' not in err:
        fail(f'--io epoll: exit {rc} (want 2): {err.strip()}')
    r = subprocess.run([env.mw, 'recv', '--listen', '127.0.0.1:1',
                        '--no-tls', '--io', 'poll', '--print-config'],
                       capture_output=True, text=True, timeout=10)
    if r.returncode != 0 or 'io=poll' not in r.stdout.splitlines():
        fail(f'--print-config: exit {r.returncode}: {r.stdout}{r.stderr}')
    log('ok  --io epoll is a usage error; --print-config shows the choice')

    round_trip(env, 'poll/poll', inp, want, ['--io', 'poll'],
               ['--io', 'poll'], ('poll', 'poll'))

    have_uring, why = uring_ok(env)
    if have_uring:
        round_trip(env, 'uring/poll', inp, want, ['--io', 'uring'],
                   ['--io', 'poll'], ('uring', 'poll'))
    else:
        log(f'(io_uring refused here: uring/poll skipped: {why})')

    if platform.machine() not in ARCH:
        log(f'(no seccomp case on {platform.machine()})')
        return
    real = env.mw
    env.mw = wrapper(env)
    try:
        round_trip(env, 'seccomp', inp, want, [], [], ('poll', 'poll'),
                   warn=True)
        port = mwtest.free_port()
        rc, err = env.run_cli(['recv', '--listen', f'127.0.0.1:{port}',
                               '--no-tls', '--io', 'uring', '--wait', '5'],
                              timeout=20)
    finally:
        env.mw = real
    lines = [l for l in err.splitlines() if l.strip()]
    if rc != 1 or len(lines) != 1 or '--io poll' not in lines[0]:
        fail(f'--io uring without io_uring: exit {rc} (want 1 and one '
             f'line naming --io poll): {err.strip()}')
    log(f'ok  --io uring without io_uring: exit 1: {lines[0]}')
    log('PASS')


if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == '--deny-io-uring':
        deny_io_uring_exec(sys.argv[2:])
    mwtest.main(run)
