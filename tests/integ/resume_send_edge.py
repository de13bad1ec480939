#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Edge cases of the sender's resume (DESIGN invariant 7) that a real
receiver cannot be made to show on demand: a Python receiver (--no-tls,
tests/lib/mwwire.py) admits `migwire send`'s channels and then sends
exactly the frames each case needs.

Cases:
  stale_rev_data    the receiver moved stream 0's reverse direction from
      channel 1 to channel 0 (it thought channel 1 lost): reverse chunk 0
      came on channel 1, chunks 0 and 1 again with RESENT on channel 0,
      and then the first copy of chunk 1, without RESENT, still arrives on
      channel 1 (it was buffered there). send must drop it: exit 0, its
      stdout exactly chunks 0 and 1, once each.
  stale_rev_end     the same with the reverse END: END on channel 0, then
      its first copy without RESENT on channel 1 after a RESENT frame
      arrived; dropped (channel 1 confirms it), exit 0.
  redial_blackhole  --to GOOD,HOLE: channel 1's home path HOLE stops
      answering (a listener whose accept queue is full drops SYNs) and
      channel 1's connection ends, so the channel redials into HOLE, where
      its connect would wait for --timeout / 2 (30 s). The receiver then
      fails the session with an ERROR on channel 0: send must exit (1,
      naming the ERROR) long before that connect's deadline; the test
      allows 10 s of the 30.
  redial_ack        the same with a path that takes the connection and
      never answers the resume HELLO, and the session completing (ACK on
      channel 0) meanwhile: send must exit 0 well before that HELLO's wait
      times out (30 s; the test allows 10).

    resume_send_edge.py MIGWIRE DATAGEN MKCERTS [CASE...]
"""
import os
import queue
import socket
import struct
import subprocess
import threading
import time

import mwtest
from mwtest import fail, log
import mwwire as w  # tests/lib, on the path through mwtest
from mwproc import _pid_sockets  # the inodes of a process's sockets

REV = 0x80000000  # MW_STREAM_REVERSE
SECRET = os.urandom(w.SECRET_LEN)
HEAD = b'QEVM' + struct.pack('>I', 3)  # a main stream for send's sniffer


def xxh3_fn():
    import ctypes
    try:
        f = ctypes.CDLL('libxxhash.so.0').XXH3_64bits
    except (OSError, AttributeError):
        return None
    f.restype = ctypes.c_uint64
    f.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lambda b: f(b, len(b))


XXH3 = xxh3_fn()


class Chan:
    """One admitted channel of the fake receiver: a reader thread puts
    every frame (type, header, payload) on q; wait_for keeps those it
    passed over in seen (a CLOSE may come before an awaited CONFIRM)."""

    def __init__(self, sock, index):
        self.sock, self.index, self.q = sock, index, queue.Queue()
        self.seen = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                h = w.recv_exact(self.sock, w.HDR)
                if len(h) < w.HDR:
                    break
                wl = struct.unpack('>I', h[16:20])[0]
                p = w.recv_exact(self.sock, wl) if wl else b''
            except OSError:
                break
            self.q.put((h[2], h, p))
        self.q.put((None, b'', b''))

    def send(self, data):
        with self.lock:
            self.sock.sendall(data)

    def wait_for(self, pred, what, timeout=10, must=True):
        """The first frame, passed over before or new, for which
        pred(type, hdr, payload) is true. Fails at EOF or after timeout
        (returns None then if not must)."""
        for i, f in enumerate(self.seen):
            if pred(*f):
                return self.seen.pop(i)
        dl = time.monotonic() + timeout
        while True:
            try:
                t, h, p = self.q.get(timeout=max(0.01, dl - time.monotonic()))
            except queue.Empty:
                if not must:
                    return None
                fail(f'channel {self.index}: no {what} within {timeout} s')
            if t is None:
                fail(f'channel {self.index}: EOF before {what}')
            if pred(t, h, p):
                return t, h, p
            self.seen.append((t, h, p))


def admit(lst):
    """Accepts one channel on listener lst: HELLO, HELLO_OK. Returns
    Chan."""
    s, _ = lst.accept()
    s.settimeout(None)
    h = w.recv_exact(s, w.HDR)
    if len(h) < w.HDR or h[2] != w.FT['HELLO']:
        fail('expected a HELLO from send')
    p = w.recv_exact(s, w.HELLO_LEN)
    hl = w.parse_hello(p)
    if hl['flags'] & w.HELLO_F_RESUME:
        fail('a first HELLO with RESUME')
    s.sendall(w.frame(w.FT['HELLO_OK'],
                      w.hello_ok(hl['index'], hl['session'], SECRET)))
    return Chan(s, hl['index'])


def listener(backlog=8):
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(('127.0.0.1', 0))
    lst.listen(backlog)
    lst.settimeout(15)
    return lst


def rev_data(seq, payload, resent=False):
    return w.frame(w.FT['DATA'], payload, flags=w.F_RAW |
                   (w.F_RESENT if resent else 0), stream=REV,
                   raw_len=len(payload), seq=seq, csum=XXH3(payload))


def rev_end(nbytes, chunks, resent=False):
    return w.frame(w.FT['END'], struct.pack('>QQ', nbytes, chunks),
                   flags=w.F_RESENT if resent else 0, stream=REV)


def is_confirm(seq):
    return lambda t, h, p: (t == w.FT['CONFIRM'] and
                            struct.unpack('>I', h[8:12])[0] == REV and
                            struct.unpack('>Q', h[24:32])[0] == seq)


def wait_size(path, n, proc, timeout=10):
    dl = time.monotonic() + timeout
    while os.path.getsize(path) < n:
        if proc.poll() is not None:
            fail(f'send exited {proc.rc} before writing {n} reverse bytes: '
                 f'{proc.stderr().strip()}')
        if time.monotonic() > dl:
            fail(f'send wrote {os.path.getsize(path)} of {n} reverse bytes '
                 f'in {timeout} s')
        time.sleep(0.01)


def stale_rev(env, end_case):
    """stale_rev_data (end_case False) and stale_rev_end (True)."""
    name = 'stale_rev_end' if end_case else 'stale_rev_data'
    if XXH3 is None:
        log(f'  {name}: libxxhash not loadable through ctypes, skipped')
        return
    lst = listener()
    port = lst.getsockname()[1]
    inp = env.path(f'{name}.in')
    with open(inp, 'wb') as f:
        f.write(HEAD + os.urandom(4000))
    send = env.send(port, ['--no-tls', '--channels', '2', '--compress',
                           'none', '--timeout', '10',
                           '--reconnect-timeout', '30'], stdin_path=inp)
    chans = {}
    for _ in range(2):
        c = admit(lst)
        chans[c.index] = c
    c0, c1 = chans[0], chans[1]
    a, b = os.urandom(300), os.urandom(500)
    # as a receiver does, the reverse direction only after the stream's
    # first forward chunk (send has the stream then)
    dl = time.monotonic() + 10
    while not any(c.wait_for(lambda t, h, p: t == w.FT['DATA'], 'DATA',
                             0.05, must=False) for c in (c0, c1)):
        if time.monotonic() > dl:
            fail(f'{name}: no forward DATA within 10 s')
    # reverse chunk 0 on channel 1, its first carrier, which confirms it
    c1.send(rev_data(0, a))
    wait_size(send.out, len(a), send)
    c1.wait_for(is_confirm(1), 'CONFIRM of chunk 0')
    # the receiver moved the direction to channel 0: all again, RESENT
    c0.send(rev_data(0, a, resent=True) + rev_data(1, b, resent=True))
    wait_size(send.out, len(a) + len(b), send)
    if not end_case:
        # the first copy of chunk 1, buffered on channel 1, comes late
        c1.send(rev_data(1, b))
        c1.wait_for(is_confirm(2), 'CONFIRM of the late chunk 1')
        c0.send(rev_end(len(a) + len(b), 2))
        c0.wait_for(is_confirm(3), 'CONFIRM of the reverse END')
    else:
        c0.send(rev_end(len(a) + len(b), 2))
        c0.wait_for(is_confirm(3), 'CONFIRM of the reverse END')
        # its first copy, without RESENT, late on channel 1
        c1.send(rev_end(len(a) + len(b), 2))
        c1.wait_for(is_confirm(3), 'CONFIRM of the late END')
    # forward: the END went on either channel; CLOSE on channel 0
    t, h, p = c0.wait_for(lambda t, h, p: t == w.FT['CLOSE'], 'CLOSE')
    nbytes, chunks = struct.unpack('>QQ', p[8:24])
    c0.send(w.frame(w.FT['ACK'], struct.pack('>QQ', nbytes, chunks)))
    rc = send.wait(20)
    if rc != 0:
        fail(f'{name}: send exit {rc}: {send.stderr().strip()}')
    with open(send.out, 'rb') as f:
        got = f.read()
    if got != a + b:
        fail(f'{name}: send wrote {len(got)} reverse bytes, want the '
             f'{len(a) + len(b)} of chunks 0 and 1 once')
    if nbytes != os.path.getsize(inp):
        fail(f'{name}: CLOSE counts {nbytes} bytes, input has '
             f'{os.path.getsize(inp)}')
    for c in (c0, c1):
        c.sock.close()
    lst.close()
    log(f'  {name}: late first copy dropped, exit 0, reverse bytes exact')


def conn_to(pid, port, state):
    """Has process pid a socket in TCP state (/proc/net/tcp: '01'
    ESTABLISHED, '02' SYN_SENT) towards 127.0.0.1:port (not the test's
    own)?"""
    mine = _pid_sockets(pid)
    want = f'0100007F:{port:04X}'
    with open('/proc/net/tcp') as f:
        for line in f.readlines()[1:]:
            col = line.split()
            if col[2] == want and col[3] == state and col[9] in mine:
                return True
    return False


def wait_conn(proc, port, state, what):
    dl = time.monotonic() + 10
    while not conn_to(proc.pid, port, state):
        if proc.poll() is not None:
            fail(f'send exited {proc.rc}: {proc.stderr().strip()}')
        if time.monotonic() > dl:
            fail(f'send did not {what} within 10 s: '
                 f'{proc.stderr().strip()}')
        time.sleep(0.02)


def redial_blackhole(env):
    good, hole = listener(), listener(backlog=0)
    pg, ph = good.getsockname()[1], hole.getsockname()[1]
    rfd, wfd = os.pipe()  # send's input: open, empty
    try:
        proc = env.send(pg, ['--to', f'127.0.0.1:{ph}', '--no-tls',
                             '--channels', '2', '--timeout', '60',
                             '--reconnect-timeout', '120'], stdin=rfd)
    finally:
        os.close(rfd)
    c0 = admit(good)   # channel 0: home path GOOD
    c1 = admit(hole)   # channel 1: home path HOLE
    if (c0.index, c1.index) != (0, 1):
        fail(f'channels {c0.index}, {c1.index} on GOOD, HOLE: want 0, 1')
    # HOLE stops answering: one connection fills its accept queue (backlog
    # 0), the kernel then drops SYNs
    fillers = []
    for _ in range(2):
        f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        f.setblocking(False)
        f.connect_ex(('127.0.0.1', ph))
        fillers.append(f)
    time.sleep(0.2)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(('127.0.0.1', ph))
        fail('the HOLE listener still completes connections')
    except socket.timeout:
        pass
    finally:
        probe.close()
    # channel 1's connection ends: send redials it into HOLE
    c1.sock.shutdown(socket.SHUT_RDWR)
    c1.sock.close()
    wait_conn(proc, ph, '02', 'redial channel 1 into HOLE')
    if 'channel 1 lost' not in proc.stderr():
        fail(f'no "channel 1 lost" line: {proc.stderr().strip()}')
    # the receiver fails the session: send ends now, not at the
    # redial's connect deadline (30 s away)
    t0 = time.monotonic()
    c0.send(w.frame(w.FT['ERROR'], b'test: session failed on purpose'))
    try:
        rc = proc.p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.p.kill()
        proc.p.wait()
        fail('send still ran 10 s after the receiver failed the session '
             '(its channel 1 waits in a connect to a black hole)')
    took = time.monotonic() - t0
    if rc == 0 or 'failed on purpose' not in proc.stderr():
        fail(f'send exit {rc}, want 1 naming the ERROR: '
             f'{proc.stderr().strip()}')
    os.close(wfd)
    for s in fillers + [c0.sock, good, hole]:
        s.close()
    log(f'  redial_blackhole: send exited {rc} {took:.1f} s after the '
        'ERROR, channel 1 was connecting into the black hole')


def redial_ack(env):
    """The session completes (ACK on channel 0) while channel 1 redials
    into a path that takes the connection and never answers its HELLO:
    send exits 0 at once, not when that HELLO's wait times out (30 s)."""
    good, mute = listener(), listener()
    pg, pm = good.getsockname()[1], mute.getsockname()[1]
    inp = env.path('redial_ack.in')
    with open(inp, 'wb') as f:
        f.write(HEAD + os.urandom(4000))
    proc = env.send(pg, ['--to', f'127.0.0.1:{pm}', '--no-tls',
                         '--channels', '2', '--compress', 'none',
                         '--timeout', '60', '--reconnect-timeout', '120'],
                    stdin_path=inp)
    c0, c1 = admit(good), admit(mute)
    if (c0.index, c1.index) != (0, 1):
        fail(f'channels {c0.index}, {c1.index} on GOOD, MUTE: want 0, 1')
    dl = time.monotonic() + 10
    while not any(c.wait_for(lambda t, h, p: t == w.FT['DATA'], 'DATA',
                             0.05, must=False) for c in (c0, c1)):
        if time.monotonic() > dl:
            fail('redial_ack: no forward DATA within 10 s')
    # channel 1's connection ends; its redial to MUTE connects (the
    # kernel completes it: MUTE is listening) and waits for HELLO_OK
    c1.sock.shutdown(socket.SHUT_RDWR)
    c1.sock.close()
    wait_conn(proc, pm, '01', 'redial channel 1 into MUTE')
    # the empty reverse direction ends; CLOSE; ACK
    c0.send(rev_end(0, 0))
    t, h, p = c0.wait_for(lambda t, h, p: t == w.FT['CLOSE'], 'CLOSE')
    nbytes, chunks = struct.unpack('>QQ', p[8:24])
    t0 = time.monotonic()
    c0.send(w.frame(w.FT['ACK'], struct.pack('>QQ', nbytes, chunks)))
    try:
        rc = proc.p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.p.kill()
        proc.p.wait()
        fail('send still ran 10 s after the ACK (its channel 1 waits for '
             'a HELLO_OK from a path that never answers)')
    if rc != 0:
        fail(f'redial_ack: send exit {rc}: {proc.stderr().strip()}')
    took = time.monotonic() - t0
    for s in (c0.sock, good, mute):
        s.close()
    log(f'  redial_ack: send exited 0 {took:.1f} s after the ACK, channel 1 '
        'was waiting for its HELLO_OK')


CASES = {
    'stale_rev_data': lambda env: stale_rev(env, False),
    'stale_rev_end': lambda env: stale_rev(env, True),
    'redial_blackhole': redial_blackhole,
    'redial_ack': redial_ack,
}


def run():
    env = mwtest.Env('resume_send_edge')
    names = env.args or list(CASES)
    for n in names:
        if n not in CASES:
            fail(f'unknown case {n}; cases: {" ".join(CASES)}')
        log(f'case {n}')
        CASES[n](env)
    log('resume_send_edge: all passed')


if __name__ == '__main__':
    mwtest.main(run)
