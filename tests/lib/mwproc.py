# SPDX-License-Identifier: MIT
"""Process and port helpers shared by every Python harness (python3 stdlib
only): the integration tests (tests/integ/mwtest.py), bench/pipe.py,
tests/fuzz/net_replay.py and the QEMU driver (tests/lib/mwqemu, behind
tools/mw-migrate). Users put this directory on sys.path, relative to their
own file, and import from here; nothing here is written twice.

Ports: a free 127.0.0.1 port is picked by binding port 0; a listener is
"up" when /proc/net/tcp shows the port LISTENing (no probe connection,
which migwire recv would count as a bad client). is_listening() also asks
that the socket belong to a given process or one of its descendants.

Processes: an Env (the integration tests' run) owns a private temp
directory and every process it starts; at exit (normal, exception,
SIGTERM/SIGINT) it kills what is still running, by PID, and removes the
directory. The QEMU driver uses the lower-level helpers (descendants,
proc_start, kill_pids, die_with_parent) on processes QEMU starts itself.
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


class TestFailure(Exception):
    pass


def fail(msg):
    raise TestFailure(msg)


def log(msg):
    print(msg, flush=True)


def read_text(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except FileNotFoundError:
        return ''


def lines_of(path):
    return [l for l in read_text(path).splitlines() if l.strip()]


# ---------------------------------------------------------------- ports

def free_port(family=socket.AF_INET, host='127.0.0.1'):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tcp_rows(net='/proc/net'):
    """(local port, remote port, state, inode) of every TCP socket in
    NET/tcp and tcp6 (state in hex, '0A' = LISTEN). net may be
    /proc/PID/net: the tables of that process's network namespace."""
    for table in (net + '/tcp', net + '/tcp6'):
        try:
            with open(table) as f:
                next(f)
                for row in f:
                    c = row.split()
                    yield (int(c[1].rsplit(':', 1)[1], 16),
                           int(c[2].rsplit(':', 1)[1], 16), c[3], c[9])
        except OSError:
            pass


def _listen_inodes(port):
    """Socket inodes in LISTEN state on the given local port."""
    return {ino for lp, _, st, ino in _tcp_rows() if st == '0A' and lp == port}


def tcp_listening(port, pid=None):
    """Is anything listening on TCP port? With pid: in that process's
    network namespace (/proc/PID/net), for a process under ip netns exec."""
    net = '/proc/%d/net' % pid if pid else '/proc/net'
    return any(st == '0A' and lp == port for lp, _, st, _ in _tcp_rows(net))


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


def is_listening(pid, port):
    """True when port LISTENs on a socket of pid (or of a descendant of
    it: a wrapper script around migwire)."""
    ino = _listen_inodes(port)
    if not ino:
        return False
    if ino & _pid_sockets(pid):
        return True
    return any(ino & _pid_sockets(p) for p in descendants(pid))


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


# ------------------------------------------------------------ processes

def _stat_fields(path):
    """The fields of a /proc stat file after the command name (which may
    hold spaces and parentheses): [0] is the state, [1] the parent PID."""
    with open(path, 'rb') as f:
        st = f.read()
    return st[st.rindex(b')') + 2:].split()


def descendants(pid):
    """PIDs of all live descendants of pid, not pid itself. Scans every
    /proc/N/stat for its parent: /proc/PID/task/TID/children would miss
    children forked by another thread (QEMU's exec: commands)."""
    parent = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            parent[int(d)] = int(_stat_fields('/proc/%s/stat' % d)[1])
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c, pp in parent.items():
            if pp == p:
                out.append(c)
                todo.append(c)
    return out


def proc_start(pid):
    """Start time of pid (to avoid signalling a recycled PID), or None."""
    try:
        return int(_stat_fields('/proc/%d/stat' % pid)[19])
    except (OSError, ValueError, IndexError):
        return None


def kill_pids(pids, sig):
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass



def terminate(popen, grace=5):
    """SIGTERM, then SIGKILL if popen has not exited after grace seconds;
    reaps it either way."""
    popen.terminate()
    try:
        popen.wait(grace)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()

try:
    import ctypes
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (ImportError, OSError, AttributeError):
    _prctl = None


def die_with_parent():
    """Popen preexec_fn: if this Python process is SIGKILLed (a ctest
    timeout), the kernel kills the child too (PR_SET_PDEATHSIG); a QEMU
    killed that way takes its exec: commands' input and output with it,
    so nothing we started outlives us."""
    if _prctl:
        _prctl(1, signal.SIGKILL, 0, 0, 0)


def proc_cpu(pid):
    """CPU seconds of a process: (all threads incl. exited ones, its vCPU
    threads, named 'CPU N/KVM' or 'CPU N/TCG'); None if gone."""
    tick = os.sysconf('SC_CLK_TCK')

    def st(path):
        f = _stat_fields(path)
        return (int(f[11]) + int(f[12])) / tick
    try:
        total = st('/proc/%d/stat' % pid)
        vcpu = 0.0
        for tid in os.listdir('/proc/%d/task' % pid):
            try:
                with open('/proc/%d/task/%s/comm' % (pid, tid)) as f:
                    comm = f.read().strip()
                if comm.startswith('CPU ') and '/' in comm:
                    vcpu += st('/proc/%d/task/%s/stat' % (pid, tid))
            except OSError:
                pass
        return total, vcpu
    except OSError:
        return None


# ---------------------------------------------------------- test runs

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
