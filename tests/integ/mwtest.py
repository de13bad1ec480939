# SPDX-License-Identifier: MIT
"""Shared helpers of the loopback integration tests (python3 stdlib only).

Every test script is run by CTest as
    script.py MIGWIRE DATAGEN MKCERTS
(DATAGEN may be "-" when bench/mw-datagen is not built: realistic inputs then
come from /usr/bin files). An Env owns a private temp directory and every
process it starts; at exit (normal, exception, SIGTERM/SIGINT) it kills what
is still running, by PID, and removes the directory.

Ports: a free 127.0.0.1 port is picked by binding port 0; the receiver is
"up" when /proc/net/tcp shows that port LISTENing on a socket that belongs
to the receiver's PID (no probe connection, which a receiver would count as
a bad client). A receiver that lost the port race is restarted on another.
"""
import atexit
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

MiB = 1 << 20


class TestFailure(Exception):
    pass


class Xfail(Exception):
    """A check that fails because of a known migwire bug (reported)."""


def fail(msg):
    raise TestFailure(msg)


def log(msg):
    print(msg, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def read_text(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except FileNotFoundError:
        return ''


def lines_of(path):
    return [l for l in read_text(path).splitlines() if l.strip()]


def free_port(family=socket.AF_INET, host='127.0.0.1'):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tcp_rows():
    """(local port, remote port, state, inode) of every TCP socket in
    /proc/net/tcp and tcp6 (state in hex, '0A' = LISTEN)."""
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as f:
                next(f)
                for row in f:
                    c = row.split()
                    yield (int(c[1].rsplit(':', 1)[1], 16),
                           int(c[2].rsplit(':', 1)[1], 16), c[3], c[9])
        except FileNotFoundError:
            pass


def _listen_inodes(port):
    """Socket inodes in LISTEN state on the given local port."""
    return {ino for lp, _, st, ino in _tcp_rows() if st == '0A' and lp == port}


def _pid_sockets(pid):
    out = set()
    try:
        for fd in os.listdir(f'/proc/{pid}/fd'):
            try:
                t = os.readlink(f'/proc/{pid}/fd/{fd}')
            except OSError:
                continue
            if t.startswith('socket:['):
                out.add(t[8:-1])
    except OSError:
        pass
    return out


def _descendants(pid):
    out, todo = [pid], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f'/proc/{p}/task/{p}/children') as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def is_listening(pid, port):
    """True when port LISTENs on a socket of pid (or of a child of it: a
    wrapper script around migwire)."""
    ino = _listen_inodes(port)
    if not ino:
        return False
    return any(ino & _pid_sockets(p) for p in _descendants(pid))


def unix_listening(path):
    """True when a unix stream socket bound to path LISTENs (from
    /proc/net/unix: no probe connection, which a sender would take for a
    QEMU connection)."""
    try:
        with open('/proc/net/unix') as f:
            next(f)
            for row in f:
                c = row.split()
                # Flags __SO_ACCEPTCON (0x10000) marks a listening socket
                if len(c) >= 8 and c[7] == path and int(c[3], 16) & 0x10000:
                    return True
    except FileNotFoundError:
        pass
    return False


def tcp_conn_exists(port_a, port_b):
    """True while /proc/net/tcp lists a socket between these two local
    ports (either end). A socket that received an RST leaves the table."""
    return any({lp, rp} == {port_a, port_b} for lp, rp, _, _ in _tcp_rows())


def recv_exact(s, n):
    """n bytes from socket s, or fewer if it reaches EOF first."""
    b = b''
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            break
        b += c
    return b


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


class Proc:
    """A started process with its stderr (and optionally stdout) in files."""

    def __init__(self, env, name, argv, popen, err, out=None):
        self.env, self.name, self.argv, self.p = env, name, argv, popen
        self.err, self.out = err, out
        self.pid = popen.pid
        self.t0 = time.monotonic()

    def wait(self, timeout=60):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            fail(f'{self.name} did not exit within {timeout} s: '
                 f'{" ".join(self.argv)}\n  stderr: {self.stderr().strip()}')

    def poll(self):
        return self.p.poll()

    def stderr(self):
        return read_text(self.err)

    def err_lines(self):
        return lines_of(self.err)

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.pid, sig)

    @property
    def rc(self):
        return self.p.returncode


class Env:
    def __init__(self, name):
        if len(sys.argv) < 4:
            sys.stderr.write(f'usage: {sys.argv[0]} MIGWIRE DATAGEN MKCERTS\n')
            sys.exit(2)
        self.mw = os.path.abspath(sys.argv[1])
        self.dg = None if sys.argv[2] in ('-', '') else os.path.abspath(sys.argv[2])
        self.mkcerts = os.path.abspath(sys.argv[3])
        self.args = sys.argv[4:]
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix=f'mw-integ-{name}-')
        self.procs = []
        self.ncall = 0
        self._pki = {}
        atexit.register(self.cleanup)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, self._on_signal)
        if not os.access(self.mw, os.X_OK):
            sys.stderr.write(f'{name}: {self.mw} is not executable\n')
            sys.exit(1)

    def _on_signal(self, sig, frame):
        raise SystemExit(128 + sig)

    def cleanup_procs(self):
        """Kills (by PID) whatever this Env started that still runs."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.kill()
                except OSError:
                    pass
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        self.procs = []

    def cleanup(self):
        self.cleanup_procs()
        if os.environ.get('MW_KEEP_TMP'):
            log(f'(kept {self.tmp})')
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def _next(self, tag):
        self.ncall += 1
        return self.path(f'{self.ncall:03d}-{tag}')

    def popen(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    # ---- inputs and credentials ----

    def pki(self, name='pki', extra=()):
        """An X.509 directory in QEMU's layout (a new CA for every name)."""
        if name not in self._pki:
            d = self.path(name)
            r = subprocess.run([self.mkcerts, d, *extra], capture_output=True,
                               text=True)
            if r.returncode != 0:
                fail(f'mw-mkcerts {d} failed: {r.stderr.strip()}')
            self._pki[name] = d
        return self._pki[name]

    def psk(self, name='psk', identity=None):
        """A directory with keys.psk; returns the file path."""
        d = self.path(name)
        argv = [self.mkcerts, '--psk', d]
        if identity:
            argv += ['--identity', identity]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            fail(f'mw-mkcerts --psk {d} failed: {r.stderr.strip()}')
        return os.path.join(d, 'keys.psk')

    def datagen_argv(self, size, seed):
        return [self.dg, '--size', str(size), '--seed', str(seed)]

    def make_input(self, kind, size, seed=1):
        """random | zero | realistic | empty, written to a file once."""
        p = self.path(f'in-{kind}-{size}-{seed}')
        if os.path.exists(p):
            return p
        with open(p, 'wb') as f:
            if kind == 'empty':
                pass
            elif kind == 'zero':
                f.write(bytes(size))
            elif kind == 'random':
                f.write(os.urandom(size))
            elif kind == 'realistic' and self.dg:
                subprocess.run(self.datagen_argv(size, seed), stdout=f,
                               check=True)
            elif kind == 'realistic':
                # fallback: program files mixed with zero pages
                left = size
                for fn in sorted(os.listdir('/usr/bin')):
                    if left <= 0:
                        break
                    fp = os.path.join('/usr/bin', fn)
                    if not os.path.isfile(fp):
                        continue
                    with open(fp, 'rb') as src:
                        b = src.read(min(left, 256 << 10))
                    f.write(b)
                    left -= len(b)
                    z = min(left, 64 << 10)
                    f.write(bytes(z))
                    left -= z
            else:
                fail(f'unknown input kind {kind}')
        return p

    # ---- processes ----

    def recv(self, args, out=None, port=None, host='127.0.0.1', wait_up=True,
             tries=5, stdin=subprocess.DEVNULL, env=None):
        """Starts `migwire recv --listen host:PORT args`, waits until it
        listens. out: a path for its stdout (default: a new temp file),
        subprocess.PIPE (then read proc.p.stdout) or a descriptor. stdin:
        anything Popen takes. Returns (Proc, port)."""
        for _ in range(tries):
            pt = port or free_port(socket.AF_INET6 if ':' in host else
                                   socket.AF_INET, host)
            hp = f'[{host}]:{pt}' if ':' in host else f'{host}:{pt}'
            err = self._next('recv.err')
            o = out or self._next('recv.out')
            argv = [self.mw, 'recv', '--listen', hp, *args]
            with open(err, 'wb') as fe:
                if isinstance(o, int):  # subprocess.PIPE or an fd
                    p = self.popen(argv, stdin=stdin, stdout=o, stderr=fe,
                                   env=env)
                else:
                    with open(o, 'wb') as fo:
                        p = self.popen(argv, stdin=stdin, stdout=fo,
                                       stderr=fe, env=env)
            pr = Proc(self, 'recv', argv, p, err, o)
            pr.port = pt
            if not wait_up:
                return pr, pt
            dl = time.monotonic() + 15
            while time.monotonic() < dl:
                if p.poll() is not None:
                    break
                if is_listening(p.pid, pt):
                    return pr, pt
                time.sleep(0.01)
            if p.poll() is None:
                p.kill()
                p.wait()
                fail(f'recv did not listen on {hp} within 15 s')
            if o == subprocess.PIPE:
                p.stdout.close()
            if port or 'in use' not in pr.stderr().lower():
                fail(f'recv exited {p.returncode} before listening: '
                     f'{pr.stderr().strip()}')
        fail('could not find a free port for recv')

    def send(self, port, args, stdin=None, stdin_path=None, host='127.0.0.1',
             out=None, env=None):
        """Starts `migwire send --to host:port args` reading stdin_path
        (or the given stdin file object / pipe). Returns Proc."""
        hp = f'[{host}]:{port}' if ':' in host else f'{host}:{port}'
        err = self._next('send.err')
        o = out or self._next('send.out')
        argv = [self.mw, 'send', '--to', hp, *args]
        with open(o, 'wb') as fo, open(err, 'wb') as fe:
            if stdin_path is not None:
                with open(stdin_path, 'rb') as fi:
                    p = self.popen(argv, stdin=fi, stdout=fo, stderr=fe,
                                   env=env)
            else:
                p = self.popen(argv, stdin=stdin, stdout=fo, stderr=fe,
                               env=env)
        return Proc(self, 'send', argv, p, err, o)

    def run_cli(self, args, timeout=10):
        """Runs migwire with args to completion; returns (rc, stderr)."""
        r = subprocess.run([self.mw, *args], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
        return r.returncode, r.stderr.decode('utf-8', 'replace')


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

