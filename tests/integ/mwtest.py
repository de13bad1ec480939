# SPDX-License-Identifier: MIT
"""Shared helpers of the loopback integration tests (python3 stdlib only).

Every test script is run by CTest as
    script.py MIGWIRE DATAGEN MKCERTS
(DATAGEN may be "-" when bench/mw-datagen is not built: realistic inputs then
come from /usr/bin files). The run's Env, its Procs, free ports and the
/proc-based listening checks live in tests/lib/mwproc.py, shared with the
other harnesses; this module re-exports them, so a test reads mwtest.Env,
mwtest.free_port, ..., and adds what only these tests need: stream
collectors, exact reads, pipes with data in them, and the checks on how
migwire failed.
"""
import fcntl
import hashlib
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import termios
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'lib'))
from mwproc import (Env, Proc, TestFailure, fail, free_port,  # noqa: E402
                    is_listening, lines_of, log, read_text, tcp_conn_exists,
                    unix_listening)
from mwwire import recv_exact  # noqa: E402

__all__ = [
    # from mwproc
    'Env', 'Proc', 'TestFailure', 'fail', 'free_port', 'is_listening',
    'lines_of', 'log', 'read_text', 'tcp_conn_exists', 'unix_listening',
    # the integration tests' own
    'MiB', 'Xfail', 'sha256_file', 'recv_exact', 'pipe_holding', 'unread',
    'Collect', 'wait_pair', 'tls_args', 'main', 'has_keywords', 'one_line',
    'final_stats', 'tls_client', 'openssl', 'issue_client',
]

MiB = 1 << 20


class Xfail(Exception):
    """A check that fails because of a known migwire bug (reported)."""


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def pipe_holding(data):
    """A pipe (r, w) with data already in it (len(data) <= 64 KiB, the
    default pipe capacity, so the write cannot block)."""
    r, w = os.pipe()
    if data:
        os.write(w, data)
    return r, w


def unread(fd):
    """Bytes queued for reading on a pipe or socket (FIONREAD)."""
    b = fcntl.ioctl(fd, termios.FIONREAD, struct.pack('i', 0))
    return struct.unpack('i', b)[0]


class Collect(threading.Thread):
    """Reads a file object, descriptor or socket to EOF in the background.
    data: what arrived so far; err: the exception that ended it, if any.
    join_data(timeout) waits for EOF and returns the bytes."""

    def __init__(self, src, name='collect'):
        super().__init__(daemon=True, name=name)
        self.src = src
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.err = None
        self.start()

    def _read(self):
        if isinstance(self.src, socket.socket):
            return self.src.recv(1 << 16)
        if isinstance(self.src, int):
            return os.read(self.src, 1 << 16)
        return self.src.read1(1 << 16)

    def run(self):
        try:
            while True:
                b = self._read()
                if not b:
                    break
                with self.lock:
                    self.buf += b
        except Exception as e:  # noqa: BLE001 (the caller checks err)
            self.err = e

    @property
    def data(self):
        with self.lock:
            return bytes(self.buf)

    def join_data(self, timeout, what='the reader'):
        self.join(timeout)
        if self.is_alive():
            fail(f'{what} saw no EOF within {timeout} s '
                 f'({len(self.data)} B so far)')
        return self.data


def wait_pair(what, send, recv, send_timeout=60):
    """Waits for a send and its recv; both must exit 0, else fails with
    what each said."""
    src = send.wait(send_timeout)
    rrc = recv.wait(30 if src == 0 else 40)
    if src != 0 or rrc != 0:
        fail(f'{what}: send exit {src}, recv exit {rrc}\n'
             f'  send: {send.stderr().strip()}\n'
             f'  recv: {recv.stderr().strip()}')


def tls_args(mode, env):
    """Arguments for one TLS mode, the same on both sides."""
    if mode == 'x509':
        return ['--tls-creds', env.pki()]
    if mode == 'psk':
        if not hasattr(env, '_psk_file'):
            env._psk_file = env.psk()
        return ['--tls-psk', env._psk_file]
    if mode == 'none':
        return ['--no-tls']
    fail(f'unknown TLS mode {mode}')


def main(fn):
    """Runs fn() and turns TestFailure into exit 1 with a clear line."""
    try:
        fn()
    except TestFailure as e:
        log(f'FAIL: {e}')
        sys.exit(1)
    except SystemExit:
        raise
    except BaseException:
        import traceback
        traceback.print_exc()
        sys.exit(1)


def has_keywords(text, *words):
    t = text.lower()
    return all(w.lower() in t for w in words)


def one_line(proc):
    """The failing side's stderr must be exactly one line; returns it."""
    ls = proc.err_lines()
    if len(ls) != 1:
        fail(f'{proc.name}: expected one line on stderr, got {len(ls)}:\n    '
             + '\n    '.join(ls))
    return ls[0]



def final_stats(path):
    """The last line of a --stats-file, which must be the final one."""
    rows = [json.loads(x) for x in lines_of(path)]
    if not rows or not rows[-1].get('final'):
        fail(f'{path}: no final stats line')
    return rows[-1]


def tls_client(port, creds, server_hostname='127.0.0.1', timeout=8):
    """A TLS 1.3 connection to 127.0.0.1:port presenting the client
    certificate of creds (a directory in QEMU's layout, env.pki())."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(os.path.join(creds, 'ca-cert.pem'))
    ctx.load_cert_chain(os.path.join(creds, 'client-cert.pem'),
                        os.path.join(creds, 'client-key.pem'))
    raw = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname=server_hostname)


def openssl(*args, cwd=None):
    r = subprocess.run(['openssl', *args], capture_output=True, text=True,
                       cwd=cwd)
    if r.returncode != 0:
        fail(f'openssl {" ".join(args)}: {r.stderr.strip()}')
    return r.stdout


def issue_client(env, pki, name, subj):
    """A creds directory whose client certificate (subject subj) is issued
    by pki's CA; returns it."""
    d = env.path(name)
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(pki, 'ca-cert.pem'), d)
    ext = os.path.join(d, 'ext.cnf')
    with open(ext, 'w') as f:
        f.write('[c]\nbasicConstraints = critical, CA:FALSE\n'
                'keyUsage = critical, digitalSignature, keyEncipherment\n'
                'extendedKeyUsage = clientAuth\n')
    key, csr = os.path.join(d, 'client-key.pem'), os.path.join(d, 'c.csr')
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt',
            'ec_paramgen_curve:P-256', '-out', key)
    openssl('req', '-new', '-key', key, '-subj', subj, '-out', csr)
    openssl('x509', '-req', '-in', csr, '-days', '30', '-CA',
            os.path.join(pki, 'ca-cert.pem'), '-CAkey',
            os.path.join(pki, 'ca-key.pem'), '-set_serial',
            '0x' + os.urandom(8).hex(), '-extfile', ext, '-extensions', 'c',
            '-sha256', '-out', os.path.join(d, 'client-cert.pem'))
    return d
