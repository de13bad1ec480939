#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""e2e: `migwire migrate` refuses before it touches QEMU when the receiver
would not take the session (its preflight runs `send --probe`: a PROBE the
receiver answers without starting its session).

    migrate_preflight.py MIGWIRE QEMU LOGDIR

A source QEMU (TCG, 64 MiB, the firmware idling: nothing here needs a
guest) and, in turn:
  missing:  nothing listens at --to
  authz:    a real `migwire recv --tls-creds ... --tls-authz 'CN=someone
            else'`: the receiver refuses this source's certificate
  CA:       the same receiver, the source with another CA's credentials
Each time migrate must exit 1 with exactly one line on stderr naming the
cause, QEMU's query-migrate must still be empty (no migration started, no
capability or parameter touched) and the VM running. The receiver must
still wait for its sender afterwards: a refused probe takes nothing from
its session. Exit 0 pass, 1 fail, 77 skip.
"""
import os
import socket
import subprocess
import sys
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(SRC, 'tests', 'lib'))
from mwqemu import Fail, log  # noqa: E402
from mwqemu.qmp import QMP  # noqa: E402
from mwproc import terminate  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def mkcerts(d):
    subprocess.run([os.path.join(SRC, 'tools', 'mw-mkcerts'), d],
                   check=True, stdout=subprocess.DEVNULL)
    return d


class Test:
    def __init__(self, mw, qemu, logdir):
        self.mw, self.qemu, self.logdir = mw, qemu, logdir
        self.procs = []

    def start_qemu(self):
        sock = os.path.join(self.logdir, 'src.qmp')
        argv = [self.qemu, '-machine', 'q35', '-accel', 'tcg', '-m', '64',
                '-display', 'none', '-nodefaults',
                '-qmp', 'unix:%s,server=on,wait=off' % sock,
                '-qmp', 'unix:%s.mw,server=on,wait=off' % sock]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.logdir,
                                                      'qemu.log'), 'w'))
        self.procs.append(p)
        q = QMP(sock, 'src', timeout=30, alive=lambda: p.poll() is None)
        return q, sock + '.mw'

    def migrate(self, what, q, sock, port, tls, *words):
        before = (q.cmd('query-migrate'), q.cmd('query-migrate-parameters'))
        r = subprocess.run([self.mw, 'migrate', '--qmp', sock, '--to',
                            '127.0.0.1:%d' % port, *tls,
                            '--max-downtime', '100', '--auto-converge'],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=120)
        lines = r.stderr.strip().splitlines()
        log('%s: exit %d: %s' % (what, r.returncode, r.stderr.strip()))
        if r.returncode != 1 or len(lines) != 1:
            raise Fail('%s: want exit 1 and one line, got exit %d:\n%s'
                       % (what, r.returncode, r.stderr))
        if not all(w in lines[0] for w in words):
            raise Fail('%s: the line does not say %r' % (what, words))
        after = (q.cmd('query-migrate'), q.cmd('query-migrate-parameters'))
        if after != before:
            raise Fail('%s: QEMU changed: %r -> %r' % (what, before, after))
        if q.cmd('query-status')['status'] != 'running':
            raise Fail('%s: the source VM is not running' % what)

    def run(self):
        pki = mkcerts(os.path.join(self.logdir, 'pki'))
        other = mkcerts(os.path.join(self.logdir, 'other'))
        q, sock = self.start_qemu()
        self.migrate('missing', q, sock, free_port(), ['--no-tls'],
                     'refused', 'nothing was changed')
        port = free_port()
        errf = os.path.join(self.logdir, 'recv.err')
        recv = subprocess.Popen([self.mw, 'recv', '--listen',
                                 '127.0.0.1:%d' % port, '--tls-creds', pki,
                                 '--tls-authz', 'CN=someone else', '-v'],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL,
                                stderr=open(errf, 'w'))
        self.procs.append(recv)
        dl = time.monotonic() + 15
        while 'listening' not in open(errf).read():
            if time.monotonic() > dl or recv.poll() is not None:
                raise Fail('recv did not start: %s' % open(errf).read())
            time.sleep(0.05)
        self.migrate('authz', q, sock, port, ['--tls-creds', pki],
                     'not authorized', '--tls-authz')
        self.migrate('CA', q, sock, port, ['--tls-creds', other],
                     'not signed')
        if recv.poll() is not None:
            raise Fail('recv ended after refusing the probes: %s'
                       % open(errf).read())
        q.close()


def main():
    if len(sys.argv) != 4:
        sys.stderr.write('usage: migrate_preflight.py MIGWIRE QEMU LOGDIR\n')
        return 2
    mw, qemu, logdir = sys.argv[1:]
    t = Test(os.path.abspath(mw), qemu, logdir)
    try:
        t.run()
    except Fail as e:
        log('FAIL: %s' % e)
        return 1
    finally:
        for p in t.procs:
            terminate(p)
    log('PASS')
    return 0


if __name__ == '__main__':
    sys.exit(main())
