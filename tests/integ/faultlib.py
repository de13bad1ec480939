# SPDX-License-Identifier: MIT
"""Helpers of the fault tests (tests/integ/fault_*.py), on top of mwtest.

- seed(): the run's random seed (MW_TEST_SEED, else random), printed.
- Proxy: a one-thread, non-blocking TCP relay on 127.0.0.1 that stands
  between `send` and `recv`; it numbers connections in accept order, counts
  the bytes of each, and can reset (RST) or close (FIN) one connection at a
  byte offset, all of them at once, one every N bytes, or turn away the
  Nth connection attempt; it can keep the first bytes of each connection.
- Reaper: waits for several processes with one bound, sampling VmHWM,
  VmRSS and the fd count of each while they run.
- Checks of the DESIGN invariants: clean failure (exit 1, one line) and
  "the output is a prefix of the input"; after lost channels were
  resumed, the lost / resumed lines and a byte-exact run
  (resumed_lines, check_resumed_run); run_cases() with XFAIL/XPASS.
"""
import os
import random
import re
import selectors
import socket
import struct
import threading
import time

import mwtest
from mwtest import MiB, fail, log

# RSS allowed beyond --window; sanitizer runtimes (tools/sanitize sets
# ASAN_OPTIONS / TSAN_OPTIONS) keep shadow memory and quarantines on top
SLACK = 64 * MiB * (4 if (os.environ.get('ASAN_OPTIONS') or
                           os.environ.get('TSAN_OPTIONS')) else 1)


def seed():
    s = os.environ.get('MW_TEST_SEED')
    s = int(s) if s else random.SystemRandom().randrange(1, 1 << 31)
    log(f'seed {s} (rerun with MW_TEST_SEED={s})')
    return s


def status_kb(pid, key):
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fd_count(pid):
    try:
        return len(os.listdir(f'/proc/{pid}/fd'))
    except OSError:
        return -1


class Reaper:
    """Waits for mwtest.Procs (or Popens) under one deadline. For each:
    hwm (KiB, max of VmHWM/VmRSS polled every 50 ms; VmHWM is monotone,
    so only a peak in the last poll interval could be missed), fds (max
    seen), rc, and t_exit (monotonic)."""

    def __init__(self, *procs):
        self.procs = list(procs)
        self.hwm = {id(p): 0 for p in self.procs}
        self.fds = {id(p): 0 for p in self.procs}
        self.t_exit = {}

    @staticmethod
    def _popen(p):
        return p.p if hasattr(p, 'p') else p

    def sample(self):
        for p in self.procs:
            pp = self._popen(p)
            if pp.returncode is None:
                self.hwm[id(p)] = max(self.hwm[id(p)],
                                      status_kb(pp.pid, 'VmHWM'),
                                      status_kb(pp.pid, 'VmRSS'))
                self.fds[id(p)] = max(self.fds[id(p)], fd_count(pp.pid))

    def poll(self):
        """Samples, reaps what exited; True when all have exited."""
        self.sample()
        for p in self.procs:
            pp = self._popen(p)
            if pp.returncode is not None:
                continue
            pid, st, ru = os.wait4(pp.pid, os.WNOHANG)
            if pid == pp.pid:
                pp.returncode = os.waitstatus_to_exitcode(st)
                # not ru_maxrss: it keeps the high-water mark of the
                # forked python child from before exec
                self.t_exit[id(p)] = time.monotonic()
        return all(self._popen(p).returncode is not None for p in self.procs)

    def wait(self, timeout, what='processes'):
        dl = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() > dl:
                live = [getattr(p, 'name', str(self._popen(p).pid))
                        for p in self.procs
                        if self._popen(p).returncode is None]
                for p in self.procs:
                    pp = self._popen(p)
                    if pp.returncode is None:
                        pp.kill()
                        pp.wait()
                msg = f'{what}: {", ".join(live)} still running after ' \
                      f'{timeout} s (killed)'
                for p in self.procs:
                    if hasattr(p, 'stderr'):
                        msg += f'\n  {p.name}: {p.stderr().strip()}'
                fail(msg)
            time.sleep(0.05)
        return [self._popen(p).returncode for p in self.procs]

    def mib(self, p):
        return self.hwm[id(p)] / 1024


def show(proc, tag=None):
    for line in proc.err_lines():
        log(f'    {tag or proc.name}: {line}')


def clean_failure(proc, *words, any_of=()):
    """proc exited 1 with exactly one stderr line holding all `words` and
    at least one of `any_of` (case-insensitive). Returns the line."""
    rc = proc.rc
    if rc == 0:
        fail(f'{proc.name} exited 0 after a fault: '
             f'{proc.stderr().strip()}')
    if rc != 1:
        fail(f'{proc.name} exited {rc}, want 1: {proc.stderr().strip()}')
    line = mwtest.one_line(proc)
    if words and not mwtest.has_keywords(line, *words):
        fail(f'{proc.name}: line lacks {words}: {line}')
    if any_of and not any(w.lower() in line.lower() for w in any_of):
        fail(f'{proc.name}: line names none of {any_of}: {line}')
    return line


def check_prefix(out_path, data, strict=True):
    """recv's output is a prefix of data (a strict one when strict)."""
    with open(out_path, 'rb') as f:
        out = f.read()
    if out != data[:len(out)]:
        i = next((k for k in range(len(out)) if out[k] != data[k]),
                 len(data))
        fail(f'recv output ({len(out)} B) is not a prefix of the input '
             f'(first difference at byte {i})')
    if strict and len(out) >= len(data):
        fail(f'recv wrote all {len(data)} bytes of a failed transfer')
    return len(out)


LOST_LINE = re.compile(r'channel (\d+) lost \(')
RESUMED_LINE = re.compile(r'channel (\d+) resumed')


def resumed_lines(proc, n, what=''):
    """proc's stderr is exactly n `channel N lost (CAUSE)` lines and n
    `channel N resumed` lines, for the same channels, and nothing else
    (what a side says at the default level about n lost channels)."""
    ls = proc.err_lines()
    lost = [m.group(1) for m in map(LOST_LINE.search, ls) if m]
    back = [m.group(1) for m in map(RESUMED_LINE.search, ls) if m]
    if len(lost) != n or sorted(lost) != sorted(back) or \
            len(ls) != 2 * n:
        fail(f'{what}: {proc.name} should print {n} lost and {n} resumed '
             f'line(s) and nothing else, printed:\n    ' +
             '\n    '.join(ls))


def check_resumed_run(send, recv, data, n, what=''):
    """After n channels were lost: both sides exit 0, recv wrote exactly
    data, each side printed its lost and resumed lines (resumed_lines)."""
    with open(recv.out, 'rb') as f:
        got = f.read()
    if send.rc != 0 or recv.rc != 0 or got != data:
        fail(f'{what}: not resumed: send exit {send.rc}, recv exit '
             f'{recv.rc}, {len(got)} B written of {len(data)}')
    resumed_lines(send, n, what)
    resumed_lines(recv, n, what)


def check_exact(out_path, in_path):
    if mwtest.sha256_file(out_path) != mwtest.sha256_file(in_path):
        fail(f'output differs from input ({os.path.getsize(out_path)} vs '
             f'{os.path.getsize(in_path)} B)')


def run_cases(env, cases, known=None, racy=()):
    """Runs (name, fn) cases, each followed by env.cleanup_procs().
    fn may raise mwtest.Xfail (a known bug seen). known: name -> reason of
    a deterministic known bug: a failure counts as XFAIL, a pass as XPASS,
    which fails (remove the mark). racy: names whose known bug is a race:
    a pass only logs XPASS. Fails when any case failed."""
    known = known or {}
    t0 = time.monotonic()
    failed, xfail = [], 0
    for name, fn in cases:
        log(f'--- {name}')
        t1 = time.monotonic()
        try:
            fn()
            if name in known:
                log(f'XPASS {name}: fixed? remove the mark [{known[name]}]')
                failed.append(name)
            elif name in racy:
                log(f'XPASS {name} (the known bug is a race)')
            else:
                log(f'ok  {name} ({time.monotonic() - t1:.1f} s)')
        except mwtest.Xfail as e:
            xfail += 1
            log(f'XFAIL {name}: {e} (known migwire bug)')
        except mwtest.TestFailure as e:
            if name in known:
                xfail += 1
                log(f'XFAIL {name}: {e} [{known[name]}] (known migwire bug)')
            else:
                failed.append(name)
                log(f'FAIL {name}: {e}')
        env.cleanup_procs()
    log(f'{len(cases)} cases, {len(failed)} failed, {xfail} xfail '
        f'({time.monotonic() - t0:.1f} s)')
    if failed:
        fail(', '.join(failed))


def run_named(env, cases):
    """run_cases() on the cases the command line names (all without
    names), then PASS."""
    want = env.args
    bad = set(want) - {n for n, _ in cases}
    if bad:
        fail(f'unknown case(s) {sorted(bad)}; cases: {[n for n, _ in cases]}')
    run_cases(env, [c for c in cases if not want or c[0] in want])
    log('PASS')


def running_for(rp, secs, what):
    """Lets the Reaper's processes run secs seconds (sampling); fails if
    they end before."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < secs:
        if rp.poll():
            fail(f'ended before {what}: ' + '; '.join(
                f'{getattr(p, "name", "?")} exit {Reaper._popen(p).returncode}'
                f' {p.stderr().strip() if hasattr(p, "stderr") else ""}'
                for p in rp.procs))
        time.sleep(0.05)


def wait_for(cond, timeout, what):
    dl = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > dl:
            fail(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.01)


# ---- the proxy ----

BUF_MAX = 1 << 20  # bytes buffered per direction before reading stops


class _Conn:
    def __init__(self, idx, c, u):
        self.idx, self.c, self.u = idx, c, u
        self.buf = {c: bytearray(), u: bytearray()}  # bytes to write TO sock
        self.eof = {c: False, u: False}  # peer of sock sent FIN
        self.wclosed = {c: False, u: False}
        self.up = 0    # client -> receiver bytes forwarded
        self.down = 0  # receiver -> client
        self.dead = False
        self.how = None
        self.rec_up = bytearray()
        self.rec_down = bytearray()

    def other(self, s):
        return self.u if s is self.c else self.c


def _rst(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack('ii', 1, 0))
    except OSError:
        pass
    s.close()


class Proxy:
    """Relays 127.0.0.1:self.port to 127.0.0.1:target. Connections are
    numbered 0, 1, ... in accept order (a sender opens its channels in
    index order, but with TLS the proxy cannot read the index).

    refuse: accept indexes to turn away with an RST at once (no upstream).
    blackhole: accept indexes to accept and then ignore (no upstream).
    kill_at(idx, nbytes, how): when connection idx (None: the first one)
    has forwarded nbytes towards the receiver, `how` = 'rst' (RST both
    ways), 'fin' (FIN both ways, later bytes discarded), 'rst-recv' (RST to
    the receiver only; the sender's side stays open and silent: a black
    hole), 'rst-send' (the other way round), 'hole' (both sides stay
    open; what they send is read and dropped, nothing is forwarded: a path
    that black-holes while both kernels still ACK).
    kill_every(nbytes, how, min_up): each time the bytes forwarded towards
    the receiver over all connections pass another nbytes, `how` the
    connection that carried them (once it has forwarded min_up bytes
    itself: a resume's handshake is left alone).
    kill_all_at(nbytes, how): every live connection at once, when the
    total forwarded towards the receiver reaches nbytes.
    record: keep each connection's first RECORD bytes both ways
    (rec_up / rec_down of conns[idx]), to read a plaintext exchange.
    kills: the connections killed, in order (accept indexes); kill_t
    and accept_t: when each kill and each accept happened."""

    RECORD = 8192

    def __init__(self, target, refuse=(), blackhole=(), record=False):
        self.target = target
        self.refuse = set(refuse)
        self.blackhole = set(blackhole)
        self.held = []
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(('127.0.0.1', 0))
        self.ls.listen(128)
        self.ls.setblocking(False)
        self.port = self.ls.getsockname()[1]
        self.conns = {}  # accept index -> _Conn
        self.naccept = 0
        self.refused = []
        self.plans = {}  # idx -> (nbytes, how)
        self.every = None  # (nbytes, how, min_up)
        self.next_every = 0
        self.all_at = None  # (nbytes, how)
        self.total_up = 0
        self.kills = []
        self.kill_t = []  # monotonic time of each kill
        self.accept_t = []  # monotonic time of each accept
        self.record = record
        self.events = []  # (monotonic, text)
        self.killed = threading.Event()
        self.lock = threading.Lock()
        self.stop = False
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.ls, selectors.EVENT_READ, None)
        self.th = threading.Thread(target=self._loop, daemon=True)
        self.th.start()

    def kill_at(self, idx, nbytes, how):
        with self.lock:
            self.plans[idx] = (nbytes, how)

    def kill_every(self, nbytes, how='rst', min_up=256 << 10):
        """nbytes None: no more."""
        with self.lock:
            self.every = (nbytes, how, min_up) if nbytes else None
            self.next_every = self.total_up + (nbytes or 0)

    def kill_all_at(self, nbytes, how='rst'):
        with self.lock:
            self.all_at = (nbytes, how)

    def bytes_up(self, idx):
        with self.lock:
            return self.conns[idx].up if idx in self.conns else 0

    def close(self):
        """Stops relaying and closes every socket (nothing listens on
        self.port afterwards); again: nothing."""
        if self.stop:
            return
        self.stop = True
        self.th.join(5)
        for k in list(self.sel.get_map().values()):
            try:
                k.fileobj.close()
            except OSError:
                pass
        self.sel.close()
        for s in self.held:
            s.close()
        with self.lock:
            for cn in self.conns.values():
                for s in (cn.c, cn.u):
                    try:
                        s.close()
                    except OSError:
                        pass

    # -- loop thread --

    def _note(self, text):
        self.events.append((time.monotonic(), text))

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except (BlockingIOError, InterruptedError):
                return
            n = self.naccept
            self.naccept += 1
            self.accept_t.append(time.monotonic())
            if n in self.refuse:
                _rst(c)
                self.refused.append(n)
                self._note(f'connection {n} turned away (RST)')
                continue
            if n in self.blackhole:
                self.held.append(c)  # accepted, never read nor answered
                self._note(f'connection {n} held silent')
                continue
            try:
                u = socket.create_connection(('127.0.0.1', self.target),
                                             timeout=5)
            except OSError as e:
                _rst(c)
                self._note(f'connection {n}: upstream connect failed: {e}')
                continue
            for s in (c, u):
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            cn = _Conn(n, c, u)
            with self.lock:
                self.conns[n] = cn
            self.sel.register(c, selectors.EVENT_READ, cn)
            self.sel.register(u, selectors.EVENT_READ, cn)

    def _unreg(self, s):
        try:
            self.sel.unregister(s)
        except (KeyError, ValueError):
            pass

    def _kill(self, cn, how):
        cn.dead, cn.how = True, how
        with self.lock:
            # a plan for "the first connection" is used up
            self.plans.pop(None, None)
            self.kills.append(cn.idx)
            self.kill_t.append(time.monotonic())
        if how in ('fin', 'hole'):
            # 'fin', a clean close both ways: FIN, then read and discard
            # whatever still comes (closing with unread bytes would send
            # an RST); 'hole' only reads and discards
            for s in (cn.c, cn.u):
                try:
                    if how == 'fin':
                        s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                self._unreg(s)
                self.sel.register(s, selectors.EVENT_READ, ('discard', s))
        else:
            # 'rst-recv' / 'rst-send': the other side stays open, unserved
            self._unreg(cn.u)
            self._unreg(cn.c)
            if how in ('rst', 'rst-recv'):
                _rst(cn.u)
            if how in ('rst', 'rst-send'):
                _rst(cn.c)
        self._note(f'connection {cn.idx} killed ({how}) after {cn.up} B up, '
                   f'{cn.down} B down')
        self.killed.set()

    def _discard(self, s):
        try:
            d = s.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            d = b''
        if not d:
            self._unreg(s)
            s.close()

    def _drop(self, cn, why):
        if cn.dead:
            return
        cn.dead = True
        for s in (cn.c, cn.u):
            self._unreg(s)
            _rst(s)
        self._note(f'connection {cn.idx} dropped: {why}')

    def _update(self, cn):
        for s in (cn.c, cn.u):
            if cn.dead or s.fileno() < 0:
                continue
            o = cn.other(s)
            ev = 0
            if not cn.eof[s] and len(cn.buf[o]) < BUF_MAX:
                ev |= selectors.EVENT_READ
            if cn.buf[s]:
                ev |= selectors.EVENT_WRITE
            try:
                if ev:
                    self.sel.modify(s, ev, cn)
                else:
                    self._unreg(s)
            except KeyError:
                if ev:
                    self.sel.register(s, ev, cn)

    def _io(self, cn, s, mask):
        o = cn.other(s)
        if mask & selectors.EVENT_READ:
            try:
                d = s.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                d = None
            except OSError as e:
                self._drop(cn, f'read: {e}')
                return
            if d == b'':
                cn.eof[s] = True
                if not cn.buf[o] and not cn.wclosed[o]:
                    try:
                        o.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    cn.wclosed[o] = True
            elif d:
                plan, everyone = None, None
                with self.lock:
                    if s is cn.c:
                        plan = self.plans.get(cn.idx) or \
                            self.plans.get(None)
                        if plan and cn.up + len(d) >= plan[0]:
                            d = d[:max(0, plan[0] - cn.up)]
                        else:
                            plan = None
                        ev = self.every
                        if not plan and ev and \
                                self.total_up + len(d) >= self.next_every \
                                and cn.up + len(d) >= ev[2]:
                            cut = max(self.next_every - self.total_up,
                                      ev[2] - cn.up, 0)
                            d = d[:cut]
                            plan = (None, ev[1])
                            self.next_every = self.total_up + cut + ev[0]
                        al = self.all_at
                        if not plan and al and \
                                self.total_up + len(d) >= al[0]:
                            d = d[:max(0, al[0] - self.total_up)]
                            everyone, self.all_at = al[1], None
                        cn.up += len(d)
                        self.total_up += len(d)
                        if self.record and len(cn.rec_up) < self.RECORD:
                            cn.rec_up += d[:self.RECORD - len(cn.rec_up)]
                    else:
                        cn.down += len(d)
                        if self.record and len(cn.rec_down) < self.RECORD:
                            cn.rec_down += d[:self.RECORD -
                                             len(cn.rec_down)]
                cn.buf[o] += d
                if plan:
                    self._flush(cn, o)
                    self._kill(cn, plan[1])
                    return
                if everyone:
                    self._flush(cn, o)
                    with self.lock:
                        todo = [c for c in self.conns.values()
                                if not c.dead]
                    for c in todo:
                        self._kill(c, everyone)
                    return
        if mask & selectors.EVENT_WRITE:
            self._flush(cn, s)
        if cn.eof[o] and not cn.buf[s] and not cn.wclosed[s]:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            cn.wclosed[s] = True
        if cn.eof[cn.c] and cn.eof[cn.u] and not cn.buf[cn.c] and \
                not cn.buf[cn.u]:
            cn.dead = True
            for x in (cn.c, cn.u):
                self._unreg(x)
                x.close()

    def _flush(self, cn, s):
        b = cn.buf[s]
        while b:
            try:
                n = s.send(b)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._drop(cn, f'write: {e}')
                return
            del b[:n]

    def _loop(self):
        while not self.stop:
            for key, mask in self.sel.select(0.1):
                cn = key.data
                if cn is None:
                    self._accept()
                elif isinstance(cn, tuple):
                    self._discard(cn[1])
                elif not cn.dead:
                    self._io(cn, key.fileobj, mask)
                    if not cn.dead:
                        self._update(cn)
            # apply plans whose threshold was already passed
            with self.lock:
                due = []
                for cn in self.conns.values():
                    plan = self.plans.get(cn.idx) or self.plans.get(None)
                    if not cn.dead and plan and cn.up >= plan[0]:
                        due.append((cn, plan[1]))
            for cn, how in due[:1]:
                self._kill(cn, how)
