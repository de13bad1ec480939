#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""integ/migrate_cli: `migwire migrate` refuses what it cannot do, before
anything changes, with one line that says what to fix; and it cancels
cleanly.

Real QEMU (Debian's 7.2, TCG, 64 MiB, no guest: the firmware idles), no
destination QEMU needed:
  usage:      no --to, an abbreviated option, --postcopy-after not before
              --timeout, a bad send option (send's own check) -> exit 2
  no QMP:     "cannot connect to QMP at PATH: ..." -> exit 1
  -S:         "the VM is not running (status 'prelaunch') ..." -> exit 1
  busy:       a migration already active (to exec:sleep, which never reads)
              -> exit 1, and that migration is left alone
  no recv:    nothing listens at --to: the preflight's probe (send
              --probe) says so in one line, exit 1, no migration started
  no listen:  socket mode, send cannot listen at --listen unix:PATH: one
              line, exit 1, QEMU's migration state and settings unchanged
  send fails: socket mode, QEMU completes, then the receiver (our own,
              which never acknowledges) fails: exit 1, one line, and the
              --json report (status completed, send_error)
  token:      a receiver with --join-token: without it the preflight's
              probe is refused (one line, nothing changed); with it the
              migration completes
  Ctrl-C:     the receiver answers the probe but never a HELLO (a
              listener of our own), SIGINT -> migrate_cancel, exit 1, the
              VM runs
  --timeout:  the same receiver, --timeout 1 pauses the VM; SIGINT then
              cancels and resumes it; --timeout-action cancel cancels
Skips (77) without qemu-system-x86_64.
"""
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import mwtest  # puts tests/lib on sys.path
from mwtest import fail, log
from mwwire import PROTO  # noqa: E402 (tests/lib, on the path)
from mwproc import descendants, kill_pids, terminate
from mwqemu.qmp import QMP


def start_qemu(env, name, paused=False):
    sock = env.path(f'{name}.qmp')
    argv = ['qemu-system-x86_64', '-machine', 'q35', '-accel', 'tcg',
            '-m', '64', '-display', 'none', '-nodefaults',
            '-qmp', f'unix:{sock},server=on,wait=off',
            # a second monitor for migwire migrate; this test keeps the first
            '-qmp', f'unix:{sock}.mw,server=on,wait=off']
    if paused:
        argv.append('-S')
    p = env.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL)
    q = QMP(sock, name, timeout=30, alive=lambda: p.poll() is None)
    return p, q, sock + '.mw'


def migrate(env, *args, timeout=60, out=None):
    r = subprocess.run([env.mw, 'migrate', *args], capture_output=True,
                       text=True, timeout=timeout)
    if out is not None:
        out.append(r.stdout)
    return r.returncode, r.stderr.strip()


def expect(what, got, rc, *words):
    code, err = got
    lines = err.splitlines()
    log(f'    {what}: exit {code}: {lines[-1] if lines else ""}')
    if code != rc:
        fail(f'{what}: exit {code}, want {rc}; stderr:\n{err}')
    if not lines or not mwtest.has_keywords(lines[-1], *words):
        fail(f'{what}: the last line does not say {words}: {err!r}')


def wait_status(q, want, secs=20):
    dl = time.monotonic() + secs
    st = None
    while time.monotonic() < dl:
        st = q.cmd('query-migrate').get('status')
        if st in want:
            return st
        time.sleep(0.1)
    fail(f'migration status {st}, want one of {want}')


class Listener(threading.Thread):
    """A receiver of our own on a loopback port (a subclass starts it)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.lsock = socket.socket()
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]


class Silent(Listener):
    """A plaintext receiver that answers the preflight's PROBE and then
    never answers a HELLO: send waits in its handshake, QEMU's pipe fills
    and the migration stays active (a real recv would take the idle
    guest's few MiB into its buffers, and QEMU would complete)."""

    def __init__(self):
        super().__init__()
        self.held = []
        self.start()

    def run(self):
        # PROBE_OK: version 2, exec: mode, 64 channels, 16 MiB chunks,
        # an 8 MiB window
        ok = struct.pack('>HBBHHIQ', 2, 0, 0, 0, 64, 16 << 20,
                         8 << 20) + bytes(12)
        hdr = struct.pack('>HBBHHIIIIQQ', 0x4d57, 11, 0, 0, 0, 0, 0,
                          len(ok), 0, 0, 0)
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.held.append(c)
            try:
                first = mwtest.recv_exact(c, 40)
                if first[2] == 10:  # PROBE
                    mwtest.recv_exact(c, 16)
                    c.sendall(hdr + ok)
                    c.close()
            except OSError:
                pass

    def close(self):
        self.lsock.close()
        for c in self.held:
            c.close()


def interrupted(env, q, qemu_pid, sock, extra, before_sigint, sigint=True):
    """migrate to a receiver that never answers a HELLO, SIGINT it (if
    sigint) after before_sigint() says so; returns (exit status, stderr)."""
    silent = Silent()
    port = silent.port
    errf = env.path('interrupt.err')
    with open(errf, 'w') as ef:
        p = subprocess.Popen([env.mw, 'migrate', '--qmp', sock, '--to',
                              f'127.0.0.1:{port}', '--no-tls',
                              '--dirty-rate-check', '0', *extra],
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=ef)
    env.procs.append(p)
    wait_status(q, ('active',))
    before_sigint()
    if sigint:
        p.send_signal(signal.SIGINT)
    wait_status(q, ('cancelling', 'cancelled'))
    # the send in its handshake would hold QEMU 7.2 in 'cancelling' until
    # its own --timeout (30 s): end it, as its handshake timeout would
    kill_pids(descendants(qemu_pid), signal.SIGKILL)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        fail('migwire migrate did not end within 30 s of SIGINT')
    silent.close()
    return rc, open(errf).read().strip()


class Taker(Listener):
    """A plaintext receiver for socket mode (one --connect endpoint) that
    admits every channel (HELLO_OK with a credit no send window reaches),
    takes every frame and acknowledges none; fail(msg) sends ERROR on
    each channel, as a receiver whose destination went away does."""

    def __init__(self):
        super().__init__()
        self.chans = []
        self.lock = threading.Lock()
        self.start()

    @staticmethod
    def frame(ftype, payload):
        return struct.pack('>HBBHHIIIIQQ', 0x4d57, ftype, 0, 0, 0, 0, 0,
                           len(payload), 0, 0, 0) + payload

    def serve(self, c):
        try:
            first = mwtest.recv_exact(c, 40)
            body = mwtest.recv_exact(c, struct.unpack('>I', first[16:20])[0])
            if first[2] == 10:  # PROBE: 1 endpoint, 64 channels, 16 MiB
                c.sendall(self.frame(11, struct.pack(
                    '>HBBHHIQ', PROTO, 0, 0, 1, 64, 16 << 20, 1 << 30) +
                    bytes(12)))
                c.close()
                return
            # HELLO_OK: version, channel index, credit, session id echo
            c.sendall(self.frame(2, struct.pack(
                '>HHI', PROTO, struct.unpack('>H', body[10:12])[0], 1 << 20) +
                body[16:32] + hashlib.sha256(body[16:32]).digest()))
            with self.lock:
                self.chans.append(c)
            while c.recv(1 << 16):
                pass
        except OSError:
            pass

    def run(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def fail(self, msg):
        with self.lock:
            for c in self.chans:
                try:
                    c.sendall(self.frame(6, msg.encode()))
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.lsock.close()


def completed_send_failed(env, q, sock):
    """Socket mode, QEMU completes but send does not: a receiver that takes
    the idle guest's few MiB and acknowledges nothing, then, once QEMU says
    completed, fails. migrate: exit 1, the line, and --json's report with
    QEMU's status and send's failure."""
    taker = Taker()
    out = env.path('sockfail.json')
    errf = env.path('sockfail.err')
    with open(out, 'w') as of, open(errf, 'w') as ef:
        p = subprocess.Popen([env.mw, 'migrate', '--qmp', sock, '--to',
                              f'127.0.0.1:{taker.port}', '--no-tls',
                              '--dirty-rate-check', '0', '--json',
                              '--window', '64M', '--listen',
                              'unix:' + env.path('src.sock')],
                             stdin=subprocess.DEVNULL, stdout=of, stderr=ef)
    env.procs.append(p)
    wait_status(q, ('completed',), secs=60)
    taker.fail('the destination went away')
    try:
        rc = p.wait(timeout=90)
    except subprocess.TimeoutExpired:
        fail('socket mode: migrate did not end after send failed')
    got = rc, open(errf).read().strip()
    expect('completed, send failed', got, 1, 'QEMU completed',
           'migwire send failed', 'the destination went away')
    try:
        rep = json.loads(open(out).read())
    except ValueError:
        fail(f'completed, send failed: no --json report: '
             f'{open(out).read()!r}')
    if rep.get('status') != 'completed' or \
            'the destination went away' not in (rep.get('send_error') or ''):
        fail(f'completed, send failed: report {rep!r}')
    log(f'    --json: status {rep["status"]}, send_error '
        f'{rep["send_error"]!r}')


def join_token(env, q, sock):
    """--join-token through migrate: its preflight's probe proves the
    token (a receiver with one answers no probe without it), and the
    migration with it completes into recv's output."""
    tok = env.path('token')
    with open(tok, 'wb') as f:
        f.write(base64.b64encode(os.urandom(32)) + b'\n')
    os.chmod(tok, 0o600)
    recv, rport = env.recv(['--no-tls', '--join-token', tok])
    before = q.cmd('query-migrate')
    got = migrate(env, '--qmp', sock, '--to', f'127.0.0.1:{rport}',
                  '--no-tls', '--dirty-rate-check', '0')
    expect('no token', got, 1, 'no join token', 'nothing was changed')
    if q.cmd('query-migrate') != before:
        fail('no token: a migration was started')
    got = migrate(env, '--qmp', sock, '--to', f'127.0.0.1:{rport}',
                  '--no-tls', '--dirty-rate-check', '0', '--join-token', tok)
    expect('with the token', got, 0, 'completed')
    if recv.wait(30) != 0 or not os.path.getsize(recv.out):
        fail(f'with the token: recv: {recv.stderr().strip()}')


def final_stats(path):
    with open(path) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    if not lines or not lines[-1].get('final'):
        fail(f'{path}: no final stats line')
    return lines[-1]


def pages(env):
    """--pages and --page-cache reach send through migrate: send's final
    stats line carries the page stage's counters (it saw the VM's RAM
    pages) with them and none without; the receiver runs --pages auto,
    which accepts either sender."""
    qemu, q, sock = start_qemu(env, 'pages')
    got = migrate(env, '--qmp', sock, '--to', '127.0.0.1:9', '--no-tls',
                  '--pages', 'sometimes')
    expect('bad --pages', got, 2, 'send refuses')
    if '--pages' not in got[1]:
        fail(f'--pages sometimes was not passed to send: {got[1]!r}')
    for on in (True, False):
        if on is False:  # the first migration stopped the VM
            q.close()
            terminate(qemu)
            qemu, q, sock = start_qemu(env, 'nopages')
        recv, rport = env.recv(['--no-tls', '--pages', 'auto',
                                '--page-cache', '8M'])
        stats = env.path(f'pages-{on}.json')
        extra = ['--pages', 'auto', '--page-cache', '8M'] if on else []
        got = migrate(env, '--qmp', sock, '--to', f'127.0.0.1:{rport}',
                      '--no-tls', '--dirty-rate-check', '0',
                      '--stats-file', stats, *extra)
        expect(f'pages {on}', got, 0, 'completed')
        if recv.wait(30) != 0 or not os.path.getsize(recv.out):
            fail(f'pages {on}: recv: {recv.stderr().strip()}')
        st = final_stats(stats)
        pg = st.get('pages')
        if not on:
            if pg is not None:
                fail(f'--pages off, yet the stats have pages: {pg}')
            continue
        if not pg or pg['full'] == 0 or pg['chunks'] == 0:
            fail(f'--pages auto: no page-stage counters: {st}')
        # a page of a chunk left as it is (the first) counts in full
        # only; one split by a chunk edge in straddle only
        if pg['ref'] + pg['delta'] + pg['literal'] > pg['full']:
            fail(f'--pages auto: more kinds than pages: {pg}')
        if pg['saved_bytes'] != pg['in_bytes'] - pg['out_bytes']:
            fail(f'--pages auto: saved_bytes is not in - out: {pg}')
        log(f'    pages: {pg}')
    q.close()
    terminate(qemu)


def run():
    env = mwtest.Env('migrate_cli')
    if not shutil.which('qemu-system-x86_64'):
        log('SKIP: needs qemu-system-x86_64')
        sys.exit(77)
    to = '127.0.0.1:9'

    expect('no --to', migrate(env, '--qmp', env.path('x')), 2, '--to')
    expect('abbreviated', migrate(env, '--qm', 'x', '--to', to), 2,
           'did you mean --qmp')
    expect('postcopy-after >= timeout',
           migrate(env, '--qmp', 'x', '--to', to, '--timeout', '5',
                   '--postcopy-after', '5'), 2, 'not before --timeout')
    expect('no QMP', migrate(env, '--qmp', env.path('none.sock'),
                             '--to', to), 1, 'cannot connect to QMP at',
           'none.sock')

    qemu, q, sock = start_qemu(env, 'paused', paused=True)
    expect('-S', migrate(env, '--qmp', sock, '--to', to, '--no-tls'), 1,
           'not running', 'prelaunch', 'cont')
    q.close()
    terminate(qemu)

    qemu, q, sock = start_qemu(env, 'src')
    expect('bad send option', migrate(env, '--qmp', sock, '--to', to,
                                      '--channels', '99'), 2,
           'send refuses')
    got = migrate(env, '--qmp', sock, '--to', to, '--no-tls',
                  '--cpu-budget', '0')
    expect('bad --cpu-budget', got, 2, 'send refuses')
    if 'send refuses these options: --cpu-budget:' not in got[1]:
        fail(f'--cpu-budget 0 was not passed to send: {got[1]!r}')
    # a migration under way: exec:sleep never reads, so it stays active
    q.cmd('migrate', uri='exec:sleep 60')
    wait_status(q, ('active',))
    expect('busy', migrate(env, '--qmp', sock, '--to', to, '--no-tls'), 1,
           'already active', 'migrate_cancel')
    if q.cmd('query-migrate').get('status') != 'active':
        fail('the active migration was disturbed')
    q.cmd('migrate_cancel')
    # QEMU 7.2 cancels an exec: migration once its command exits
    kill_pids(descendants(qemu.pid), signal.SIGKILL)
    wait_status(q, ('cancelled',))

    # no receiver at all: the preflight's probe says so in one line, and
    # no migration starts
    before = q.cmd('query-migrate')
    got = migrate(env, '--qmp', sock, '--to',
                  f'127.0.0.1:{mwtest.free_port()}', '--no-tls',
                  '--dirty-rate-check', '0', '--json')
    expect('no receiver', got, 1, 'connection refused', 'no migwire recv',
           'nothing was changed')
    if len(got[1].splitlines()) != 1:
        fail(f'no receiver: more than one line: {got[1]!r}')
    if q.cmd('query-migrate') != before:
        fail('no receiver: a migration was started')
    if q.cmd('query-status')['status'] != 'running':
        fail('the source VM is not running after a refused preflight')

    # socket mode, where send cannot listen: one line, QEMU untouched
    recv, rport = env.recv(['--no-tls', '--connect',
                            'unix:' + env.path('dst.sock')])
    before = [q.cmd(c) for c in ('query-migrate', 'query-migrate-parameters',
                                 'query-migrate-capabilities')]
    got = migrate(env, '--qmp', sock, '--to', f'127.0.0.1:{rport}',
                  '--no-tls', '--dirty-rate-check', '0', '--listen',
                  'unix:' + env.path('no', 'such', 'dir.sock'))
    expect('send cannot listen', got, 1, 'did not listen', 'dir.sock')
    if len(got[1].splitlines()) != 2 or 'ready' not in got[1]:
        fail(f'send cannot listen: want the probe\'s line and one more: '
             f'{got[1]!r}')
    if [q.cmd(c) for c in ('query-migrate', 'query-migrate-parameters',
                           'query-migrate-capabilities')] != before:
        fail('send cannot listen: QEMU was changed')
    recv.signal(signal.SIGTERM)
    recv.wait()

    # a receiver that answers the probe and then never answers a HELLO:
    # send waits in its handshake and the migration stays active until we
    # interrupt it
    got = interrupted(env, q, qemu.pid, sock, [], lambda: time.sleep(1))
    expect('SIGINT', got, 1, 'cancelled', 'keeps running')
    if q.cmd('query-status')['status'] != 'running':
        fail('the source VM is not running after SIGINT')

    def paused():
        dl = time.monotonic() + 20
        while q.cmd('query-status')['status'] != 'paused':
            if time.monotonic() > dl:
                fail('--timeout 1 did not pause the VM')
            time.sleep(0.1)
    got = interrupted(env, q, qemu.pid, sock, ['--timeout', '1'], paused)
    expect('--timeout then SIGINT', got, 1, 'cancelled', 'keeps running')
    if 'pausing the VM' not in got[1] or 'resumed' not in got[1]:
        fail(f'--timeout: no pause/resume lines: {got[1]!r}')
    if q.cmd('query-status')['status'] != 'running':
        fail('the source VM is not running after --timeout and SIGINT')
    got = interrupted(env, q, qemu.pid, sock,
                      ['--timeout', '1', '--timeout-action', 'cancel'],
                      lambda: None, sigint=False)
    expect('--timeout-action cancel', got, 1, 'cancelled', 'keeps running')
    if '--timeout 1 s: cancelling the migration' not in got[1]:
        fail(f'--timeout-action cancel: no line says so: {got[1]!r}')
    if q.cmd('query-status')['status'] != 'running':
        fail('the source VM is not running after --timeout-action cancel')
    q.close()
    terminate(qemu)
    qemu, q, sock = start_qemu(env, 'sockfail')
    completed_send_failed(env, q, sock)
    q.close()
    terminate(qemu)
    qemu, q, sock = start_qemu(env, 'token')
    join_token(env, q, sock)
    q.close()
    terminate(qemu)
    pages(env)
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
