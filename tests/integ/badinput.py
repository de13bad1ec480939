#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Bad peers, bad credentials, bad input, bad options (invariants 1, 5, 6).

Every case ends with a non-zero status and a clear one-line message on the
failing side, and the receiver never reports completion: it exits non-zero
(bounded by --wait / --timeout) and writes no byte that was not sent by the
real sender. Where a hostile connection is merely turned away, the real
transfer that follows must still be byte-exact. Each case prints the lines
it got; message checks are loose, case-insensitive keywords.

    badinput.py MIGWIRE DATAGEN MKCERTS [CASE...]
"""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import faultlib as fl
import mwtest
from mwtest import MiB, fail, has_keywords, log
from mwwire import PROTO  # noqa: E402 (tests/lib, on the path)

HDR = 40
HELLO_LEN = 64
FT_HELLO, FT_HELLO_OK, FT_DATA, FT_END, FT_ACK, FT_ERROR = 1, 2, 3, 4, 5, 6

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def frame(ftype, payload=b'', codec=0, flags=0, raw_len=0, seq=0, csum=0):
    return struct.pack('>HBBHHIIIIQQ', 0x4d57, ftype, codec, flags, 0, 0,
                       raw_len, len(payload), 0, seq, csum) + payload


def hello(index, count, session, codec=2, chunk=256 << 10, window=128,
          version=PROTO):
    p = b'MIGWIRE\0' + struct.pack('>HHHBB', version, index, count, codec, 0)
    p += session + struct.pack('>II', chunk, window) + bytes(24)
    assert len(p) == HELLO_LEN
    return frame(FT_HELLO, p)


def parse_hello(b):
    """(index, count, codec, session, chunk, window) of header+HELLO bytes."""
    p = b[HDR:HDR + HELLO_LEN]
    ver, idx, cnt, codec, _ = struct.unpack('>HHHBB', p[8:16])
    chunk, window = struct.unpack('>II', p[32:40])
    return idx, cnt, codec, p[16:32], chunk, window


def read_reply(s, timeout=8):
    """Reads what the receiver answers until it closes; returns
    (list of (type, payload), closed)."""
    s.settimeout(timeout)
    frames, buf = [], b''
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            buf += c
    except socket.timeout:
        return frames, False
    except ConnectionResetError:
        pass
    while len(buf) >= HDR:
        t = buf[2]
        wl = struct.unpack('>I', buf[16:20])[0]
        frames.append((t, buf[HDR:HDR + wl]))
        buf = buf[HDR + wl:]
    return frames, True


def show(proc, tag=None):
    for line in proc.err_lines():
        log(f'    {tag or proc.name}: {line}')


def expect_line(proc, *words):
    line = mwtest.one_line(proc)
    if not has_keywords(line, *words):
        fail(f'{proc.name}: line lacks {words}: {line}')
    return line


def expect_no_completion(recv):
    """The receiver ended without completing: non-zero, nothing written."""
    if recv.rc == 0:
        fail('recv exited 0: it reported a completed session')
    n = os.path.getsize(recv.out)
    if n:
        fail(f'recv wrote {n} bytes')


def expect_roundtrip(env, send, recv, inp):
    src, rrc = send.wait(60), recv.wait(60)
    if src != 0 or rrc != 0:
        fail(f'real transfer failed: send {src}, recv {rrc}\n'
             f'  send: {send.stderr().strip()}\n  recv: {recv.stderr().strip()}')
    if mwtest.sha256_file(recv.out) != mwtest.sha256_file(inp):
        fail('real transfer is not byte-exact')


# ---- credentials: the handshake must fail, the receiver must not complete

def auth_case(env, rargs, sargs, send_words, recv_words=()):
    inp = env.make_input('random', 1 * MiB)
    recv, port = env.recv(rargs + ['--wait', '2', '--timeout', '2'])
    send = env.send(port, sargs + ['--timeout', '5'], stdin_path=inp)
    src = send.wait(30)
    recv.wait(30)
    show(send)
    show(recv)
    if src == 0:
        fail('send exited 0')
    if src != 1:
        fail(f'send exited {src}, want 1')
    expect_line(send, *send_words)
    expect_no_completion(recv)
    for w in recv_words:
        if not has_keywords(recv.stderr(), w):
            fail(f'recv stderr lacks "{w}"')


@case
def wrong_ca(env):
    other = env.pki('pki-other')
    auth_case(env, ['--tls-creds', env.pki()], ['--tls-creds', other],
              ('certificate',), ('unknown ca',))


@case
def wrong_hostname(env):
    d = env.pki()
    auth_case(env, ['--tls-creds', d],
              ['--tls-creds', d, '--tls-hostname', 'wrong.example'],
              ('wrong.example', 'certificate names: DNS:localhost',
               '--tls-hostname'))


@case
def client_without_certificate(env):
    d = env.pki()
    only = env.path('only-ca')
    os.makedirs(only, exist_ok=True)
    shutil.copy(os.path.join(d, 'ca-cert.pem'), only)
    auth_case(env, ['--tls-creds', d], ['--tls-creds', only],
              ('client-cert.pem',))


@case
def plaintext_client_to_tls_receiver(env):
    # recv names the mismatch: the first bytes are a plaintext migwire frame
    auth_case(env, ['--tls-creds', env.pki()], ['--no-tls'], ('tls',),
              ('not speaking tls', 'runs --no-tls', 'same tls mode'))


@case
def tls_client_to_plaintext_receiver(env):
    auth_case(env, ['--no-tls'], ['--tls-creds', env.pki()],
              ('runs --no-tls', 'same tls mode'), ('no-tls',))


@case
def wrong_psk_key(env):
    a = env.psk('psk-a')
    b = env.psk('psk-b')
    auth_case(env, ['--tls-psk', a], ['--tls-psk', b], ('psk',),
              ('differs',))


@case
def unknown_psk_identity(env):
    a = env.psk('psk-a2')
    c = env.psk('psk-other', identity='mallory')
    auth_case(env, ['--tls-psk', a],
              ['--tls-psk', c, '--tls-psk-identity', 'mallory'],
              ('psk',), ('unknown psk identity',))


@case
def psk_identity_missing_from_senders_file(env):
    a = env.psk('psk-a3')
    auth_case(env, ['--tls-psk', a],
              ['--tls-psk', a, '--tls-psk-identity', 'nobody'],
              ('nobody',))


# ---- hostile connections to the listening port, then a real transfer

def garbage_then_real(env, tls):
    inp = env.make_input('realistic', 4 * MiB, seed=3)
    recv, port = env.recv(tls + ['--timeout', '3'])
    bad = [
        ('random bytes', os.urandom(4096)),
        ('HTTP request', b'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n'
         b'User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n'),
        ('DATA before HELLO', frame(FT_DATA, b'x' * 16, flags=1, raw_len=16)),
        ('HELLO of a future version', hello(0, 1, os.urandom(16),
                                            version=PROTO + 1)),
        ('HELLO of the previous version (an old sender)',
         hello(0, 1, os.urandom(16), version=PROTO - 1)),
        ('HELLO with 0 channels', hello(0, 0, os.urandom(16))),
        ('half a header', frame(FT_HELLO)[:20]),
    ]
    for what, data in bad:
        with socket.create_connection(('127.0.0.1', port), timeout=5) as s:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                frames, closed = read_reply(s, timeout=8)
            except (ConnectionResetError, BrokenPipeError):
                frames, closed = [], True
            except OSError:  # ENOTCONN: refused (reset) before our FIN
                frames, closed = [], True
            txt = '; '.join(f'{mwtest_ft(t)} "{p.decode("utf-8", "replace")}"'
                            for t, p in frames) or 'nothing'
            log(f'    {what}: closed={closed}, answered {txt}')
            if not closed:
                fail(f'{what}: receiver kept the connection open 8 s '
                     f'(--timeout 3)')
            if any(t in (FT_HELLO_OK, FT_ACK) for t, _ in frames):
                fail(f'{what}: receiver accepted it')
            # a peer of the previous protocol learns why, not just a close
            if '--no-tls' in tls and 'old sender' in what and \
                    f'protocol version {PROTO - 1} not supported' \
                    not in txt:
                fail(f'{what}: want an ERROR naming version {PROTO - 1}, '
                     f'got {txt}')
    # an idle connection stays open during the real transfer
    idle = socket.create_connection(('127.0.0.1', port), timeout=5)
    try:
        if recv.poll() is not None:
            fail(f'recv exited {recv.rc} after garbage connections')
        send = env.send(port, tls + ['--channels', '4', '--compress',
                                     'zstd'], stdin_path=inp)
        expect_roundtrip(env, send, recv, inp)
    finally:
        idle.close()
    show(recv)
    if len([l for l in recv.err_lines() if 'reject' in l.lower()]) < 4:
        fail('recv did not report the rejected connections')


def mwtest_ft(t):
    return {1: 'HELLO', 2: 'HELLO_OK', 3: 'DATA', 4: 'END', 5: 'ACK',
            6: 'ERROR'}.get(t, f'type{t}')


@case
def garbage_to_plaintext_port(env):
    garbage_then_real(env, ['--no-tls'])


@case
def garbage_to_tls_port(env):
    garbage_then_real(env, ['--tls-creds', env.pki()])


# ---- a channel of another session joins while the real one is joining

class Proxy:
    """Relays the sender's channels to the receiver but holds back the
    channel whose index is `hold` until release() (after reading its HELLO),
    so that the test can act while the session waits for it."""

    def __init__(self, rport, hold):
        self.rport, self.hold = rport, hold
        self.ls = socket.socket()
        self.ls.bind(('127.0.0.1', 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.held = None
        self.hellos = []
        self.ok = threading.Event()      # a HELLO_OK came back
        self.got_held = threading.Event()
        self.socks = [self.ls]
        threading.Thread(target=self._accept, daemon=True).start()

    def _pipe(self, a, b, ev=None):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if ev is not None:
                    ev.set()
                b.sendall(d)
        except OSError:
            pass
        for s in (b,):
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _relay(self, c, first):
        u = socket.create_connection(('127.0.0.1', self.rport))
        self.socks.append(u)
        u.sendall(first)
        threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
        threading.Thread(target=self._pipe, args=(u, c, self.ok),
                         daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.socks.append(c)
            first = mwtest.recv_exact(c, HDR + HELLO_LEN)
            h = parse_hello(first)
            self.hellos.append(h)
            if h[0] == self.hold:
                self.held = (c, first)
                self.got_held.set()
            else:
                self._relay(c, first)

    def release(self):
        self._relay(*self.held)

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


def impostor(port, hello_bytes):
    """Connects, sends a HELLO, returns (refused, frames, closed)."""
    try:
        s = socket.create_connection(('127.0.0.1', port), timeout=5)
    except ConnectionRefusedError:
        return True, [], True
    with s:
        try:
            s.sendall(hello_bytes)
            frames, closed = read_reply(s)
        except (ConnectionResetError, BrokenPipeError):
            frames, closed = [], True
    return False, frames, closed


@case
def late_channel_of_another_session(env):
    inp = env.make_input('realistic', 8 * MiB, seed=5)
    recv, port = env.recv(['--no-tls', '--timeout', '10'])
    px = Proxy(port, hold=1)
    try:
        send = env.send(px.port, ['--no-tls', '--channels', '2',
                                  '--compress', 'zstd', '--max-bandwidth',
                                  '8M', '--timeout', '20'], stdin_path=inp)
        if not px.got_held.wait(10) or not px.ok.wait(10):
            fail('the sender did not open its channels through the proxy')
        idx, cnt, codec, sess, chunk, win = parse_hello(px.held[1])
        # 1. another session id, otherwise a perfect HELLO for channel 1
        other = bytes(b ^ 0x5a for b in sess)
        refused, frames, closed = impostor(port, hello(1, cnt, other, codec,
                                                       chunk, win))
        txt = [p.decode('utf-8', 'replace') for t, p in frames
               if t == FT_ERROR]
        log(f'    impostor (other session id, before all joined): '
            f'refused={refused} closed={closed} ERROR={txt}')
        if refused or not closed:
            fail('impostor: expected a rejection and a close')
        if any(t == FT_HELLO_OK for t, _ in frames):
            fail('impostor of another session was admitted')
        if not has_keywords(recv.stderr(), 'another session'):
            fail('recv stderr lacks "another session"')
        # 2. the right session id but channel 0 again
        refused, frames, closed = impostor(port, hello(0, cnt, sess, codec,
                                                       chunk, win))
        txt = [p.decode('utf-8', 'replace') for t, p in frames
               if t == FT_ERROR]
        log(f'    impostor (channel 0 twice): refused={refused} '
            f'closed={closed} ERROR={txt}')
        if any(t == FT_HELLO_OK for t, _ in frames):
            fail('a second channel 0 was admitted')
        px.release()
        # 3. mid-transfer: all joined, the receiver no longer listens
        dl = time.monotonic() + 10
        while os.path.getsize(recv.out) == 0 and time.monotonic() < dl:
            time.sleep(0.02)
        if recv.poll() is not None:
            fail(f'recv ended early ({recv.rc}): {recv.stderr().strip()}')
        refused, frames, closed = impostor(port, hello(1, cnt, other, codec,
                                                       chunk, win))
        log(f'    impostor (other session id, mid-transfer at '
            f'{os.path.getsize(recv.out)} B): refused={refused} '
            f'closed={closed} frames={[mwtest_ft(t) for t, _ in frames]}')
        if any(t == FT_HELLO_OK for t, _ in frames):
            fail('mid-transfer impostor was admitted')
        expect_roundtrip(env, send, recv, inp)
        show(recv)
    finally:
        px.close()


# ---- the sender dies mid-stream

@case
def truncated_input(env):
    inp = env.make_input('random', 8 * MiB, seed=9)
    d = env.pki()
    # a killed sender's channels are lost: not waited for here
    recv, port = env.recv(['--tls-creds', d, '--timeout', '5',
                           '--reconnect-timeout', '0'])
    r, w = os.pipe()
    send = env.send(port, ['--tls-creds', d, '--channels', '2', '--compress',
                           'zstd'], stdin=r)
    os.close(r)
    with open(inp, 'rb') as f:
        data = f.read()
    fed = 3 * MiB
    off = 0
    while off < fed:
        off += os.write(w, data[off:fed])
    dl = time.monotonic() + 10
    while os.path.getsize(recv.out) < 1 * MiB and time.monotonic() < dl:
        time.sleep(0.02)
    send.signal(signal.SIGKILL)
    send.wait(10)
    os.close(w)
    rrc = recv.wait(30)
    show(recv)
    if rrc == 0:
        fail('recv exited 0 after its sender was killed')
    expect_line(recv, 'closed', 'before', 'end')
    with open(recv.out, 'rb') as f:
        out = f.read()
    log(f'    fed {fed} of {len(data)} bytes, recv wrote {len(out)}')
    if len(out) >= len(data):
        fail('recv wrote the whole input')
    if out != data[:len(out)]:
        fail('recv output is not a prefix of the input')


# ---- usage errors: exit 2, one line

USAGE = [
    ('unknown codec', ['send', '--to', '127.0.0.1:9', '--no-tls',
                       '--compress', 'lz4'], ('lz4',)),
    ('--channels 0', ['send', '--to', '127.0.0.1:9', '--no-tls',
                      '--channels', '0'], ('channels',)),
    ('--channels 65', ['send', '--to', '127.0.0.1:9', '--no-tls',
                       '--channels', '65'], ('channels',)),
    ('missing --to', ['send', '--no-tls'], ('--to',)),
    ('missing --listen', ['recv', '--no-tls'], ('--listen',)),
    ('--no-tls and --tls-creds', ['send', '--to', '127.0.0.1:9', '--no-tls',
                                  '--tls-creds', '/nonexistent'],
     ('no-tls', 'tls-creds')),
    ('--no-tls and --tls-psk (recv)', ['recv', '--listen', '127.0.0.1:9',
                                       '--no-tls', '--tls-psk', '/x'],
     ('no-tls', 'tls-psk')),
    ('no TLS choice', ['send', '--to', '127.0.0.1:9'], ('no-tls',)),
    ('bad --cpus 3-1', ['send', '--to', '127.0.0.1:9', '--no-tls',
                        '--cpus', '3-1'], ('cpus',)),
    ('bad --cpus 1,,2', ['recv', '--listen', '127.0.0.1:9', '--no-tls',
                         '--cpus', '1,,2'], ('cpus',)),
    ('bad size --window 12Q', ['send', '--to', '127.0.0.1:9', '--no-tls',
                               '--window', '12Q'], ('window',)),
    ('bad size --chunk-size 1K', ['send', '--to', '127.0.0.1:9', '--no-tls',
                                  '--chunk-size', '1K'], ('chunk',)),
    ('bad size --max-bandwidth -5', ['send', '--to', '127.0.0.1:9',
                                     '--no-tls', '--max-bandwidth', '-5'],
     ('bandwidth',)),
    ('port 0', ['recv', '--listen', '127.0.0.1:0', '--no-tls'], ('port',)),
    ('bare IPv6', ['send', '--to', '::1:4444', '--no-tls'], ('::1',)),
    ('unknown command', ['bogus'], ('bogus',)),
    # options that would have no effect are refused, not ignored
    ('--tls-hostname with --no-tls', ['send', '--to', '127.0.0.1:9',
                                      '--no-tls', '--tls-hostname', 'x'],
     ('migwire send:', '--tls-hostname', 'no effect')),
    ('--tls-psk-identity without --tls-psk',
     ['send', '--to', '127.0.0.1:9', '--no-tls', '--tls-psk-identity', 'q'],
     ('--tls-psk-identity', 'no effect')),
    ('a level with --compress none', ['send', '--to', '127.0.0.1:9',
                                      '--no-tls', '--compress', 'none',
                                      '--compress-level', '3'],
     ('--compress-level', 'no effect', 'none')),
    ('--cpu-budget 0', ['send', '--to', '127.0.0.1:9', '--no-tls',
                        '--cpu-budget', '0'],
     ('migwire send:', '--cpu-budget', "'0' is not a number of cores")),
    ('--cpu-budget 1e9', ['recv', '--listen', '127.0.0.1:9', '--no-tls',
                          '--cpu-budget', '1e9'],
     ('migwire recv:', '--cpu-budget', 'number of cores in 0.1..')),
    ('--cpus not online', ['recv', '--listen', '127.0.0.1:9', '--no-tls',
                           '--cpus', '1000'],
     ('migwire recv:', 'CPU 1000 is not online', 'online: 0')),
    ('--output a path', ['recv', '--listen', '127.0.0.1:9', '--no-tls',
                         '--output', '/tmp/out.bin'],
     ('--output', 'fd:N', '> FILE')),
    # sizes and rates: bytes with K = KiB; bits only when said (Mbit)
    ('lowercase b in a size', ['send', '--to', '127.0.0.1:9', '--no-tls',
                               '--window', '8Mb'],
     ('migwire send:', '--window', 'lowercase b means bits')),
    ('ambiguous rate 1Gb', ['send', '--to', '127.0.0.1:9', '--no-tls',
                            '--max-bandwidth', '1Gb'],
     ('migwire send:', '--max-bandwidth', 'ambiguous', 'Gbit')),
    ('--window beyond half the RAM', ['recv', '--listen', '127.0.0.1:9',
                                      '--no-tls', '--window', '1T'],
     ('migwire recv:', '--window', "half of this host's memory")),
    ('option named as typed', ['recv', '--listen', '127.0.0.1:9',
                               '--no-tls', '--decompress-threads', '0'],
     ('migwire recv:', '--decompress-threads')),
    ('no prefix abbreviation', ['send', '--to', '127.0.0.1:9', '--no-tls',
                                '--chan', '4'],
     ('migwire send:', "unknown option '--chan'", '--channels')),
    ('no prefix abbreviation in bench', ['bench', '--compress-lev', '1'],
     ('migwire bench:', "unknown option '--compress-lev'",
      '--compress-level')),
    ('bench takes send\'s option names', ['bench', '--level', '1'],
     ('migwire bench:', "unknown option '--level'")),
    ('--no-return-path with --connect', ['recv', '--listen', '127.0.0.1:9',
                                         '--no-tls', '--connect',
                                         'unix:/tmp/x.sock',
                                         '--no-return-path'],
     ('no-return-path', 'exec')),
]


@case
def usage_errors(env):
    bad = []
    for what, argv, words in USAGE:
        rc, err = env.run_cli(argv)
        lines = [l for l in err.splitlines() if l.strip()]
        log(f'    {what}: exit {rc}: {" | ".join(lines)}')
        if rc != 2:
            bad.append(f'{what}: exit {rc}, want 2')
        elif len(lines) != 1:
            bad.append(f'{what}: {len(lines)} lines on stderr, want 1')
        elif not all(w.lower() in lines[0].lower() for w in words):
            if what == 'port 0' and 'host:port' in lines[0].lower():
                continue
            bad.append(f'{what}: line lacks {words}')
    if bad:
        fail('; '.join(bad))


@case
def output_that_is_not_qemu(env):
    # a write error on a plain file or device names "the output", not "the
    # destination QEMU" (that is for the pipe or socket QEMU reads)
    inp = env.make_input('random', 1024 * 1024)
    with open('/dev/full', 'wb') as full:
        recv, port = env.recv(['--no-tls', '--no-return-path'], out=full.fileno())
    send = env.send(port, ['--no-tls'], stdin_path=inp)
    send.wait(30)
    recv.wait(30)
    line = (recv.err_lines() or [''])[-1]
    log(f'    recv > /dev/full: exit {recv.rc}: {line}')
    if recv.rc != 1 or 'write to the output: No space left' not in line:
        fail(f'recv > /dev/full: exit {recv.rc}: {line}')


@case
def send_waits_for_receiver(env):
    # send --wait: the two sides may start in either order
    inp = env.make_input('random', 1024 * 1024)
    port = mwtest.free_port()
    send = env.send(port, ['--no-tls', '--wait', '15'], stdin_path=inp)
    time.sleep(1.5)
    if send.poll() is not None:
        fail(f'send --wait 15 gave up at once: {send.stderr().strip()}')
    # not waiting to see it listen: the waiting sender may be in and done
    # (recv exit 0) before a poll of /proc would see the socket
    recv, _ = env.recv(['--no-tls', '--no-return-path'], port=port,
                       wait_up=False)
    mwtest.wait_pair('send started first', send, recv)
    with open(inp, 'rb') as a, open(recv.out, 'rb') as b:
        if a.read() != b.read():
            fail('output differs from input')
    # without --wait it fails at once, as before
    rc, err = env.run_cli(['send', '--to', f'127.0.0.1:{port}', '--no-tls'])
    if rc != 1 or 'Connection refused' not in err:
        fail(f'send without --wait: exit {rc}: {err}')


@case
def admitted_then_reset(env):
    # a sender killed right after its HELLO: recv admits the channel (the
    # HELLO was read before the RST), then fails to send HELLO_OK. The
    # channel counts as joined, so with one channel the listener is done:
    # recv must fail the session with one line, not wait for nothing
    # (it used to, forever, whatever its --wait and --timeout)
    recv, port = env.recv(['--no-tls', '--wait', '30', '--timeout', '30'])
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.sendall(hello(0, 1, os.urandom(16)))
    s.close()  # RST, right behind the HELLO
    fl.Reaper(recv).wait(10, 'recv after an admitted channel was reset')
    line = fl.clean_failure(recv)
    log(f'    recv: {line}')
    if 'channel 0' not in line:
        fail(f'recv does not name the channel: {line}')
    if os.path.getsize(recv.out):
        fail('recv wrote bytes')


@case
def wait_expiry_counts_rejections(env):
    # recv keeps waiting after rejecting a peer (a corrected sender gets
    # in); when --wait runs out it says how many it turned away and why
    inp = env.make_input('random', 64 * 1024)
    recv, port = env.recv(['--tls-creds', env.pki(), '--wait', '2'])
    send = env.send(port, ['--no-tls'], stdin_path=inp)
    send.wait(30)
    recv.wait(30)
    last = (recv.err_lines() or [''])[-1]
    log(f'    recv: {last}')
    if recv.rc != 1 or not re.search(
            r'no sender authenticated within 2 s \(\d+ connections? '
            r'rejected; last: .*runs --no-tls', last):
        fail(f'recv exit {recv.rc}: {last}')


@case
def window_allocation_names_the_option(env):
    # an allocation failure says which option asked for the memory
    if 'ASAN_OPTIONS' in os.environ or 'TSAN_OPTIONS' in os.environ:
        log('    not under a sanitizer: its shadow memory needs the '
            'address space this case takes away')
        return
    import resource

    def small_as():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))
    r = subprocess.run([env.mw, 'send', '--to', '127.0.0.1:9', '--no-tls',
                        '--window', '2G'], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30,
                       preexec_fn=small_as)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    log(f'    --window 2G under a 1.5 GiB address space: exit '
        f'{r.returncode}: {lines}')
    if r.returncode != 1 or len(lines) != 1 or '--window' not in lines[0]:
        fail(f'exit {r.returncode}, want 1 and one line naming --window: '
             f'{lines}')


@case
def stats_file_unwritable(env):
    # one line naming the file, exit 1, on both sides; under ASan this also
    # proves the failed open frees what it allocated (LeakSanitizer would
    # change the exit status and add lines)
    path = os.path.join(env.tmp, 'no-such-dir', 'stats.json')
    for argv in (['send', '--to', '127.0.0.1:9', '--no-tls'],
                 ['recv', '--listen', '127.0.0.1:9', '--no-tls']):
        rc, err = env.run_cli(argv + ['--stats-file', path])
        lines = [l for l in err.splitlines() if l.strip()]
        log(f'    {argv[0]} --stats-file {path}: exit {rc}: '
            f'{" | ".join(lines)}')
        if rc != 1 or len(lines) != 1 or path not in lines[0]:
            fail(f'{argv[0]}: exit {rc}, want 1 and one line naming {path}')


@case
def units_in_summary_and_stats(env):
    # rates are MiB/s with Gbit/s beside; stats-file keys say their unit;
    # the receiver takes tcp:HOST:PORT as the sender's endpoints write it
    inp = env.make_input('random', 2 * 1024 * 1024)
    stats = os.path.join(env.tmp, 'units.json')
    recv, port = env.recv(['--no-tls', '--no-return-path', '-v'])
    send = env.send(port, ['--no-tls', '-v', '--stats-file', stats],
                    stdin_path=inp)
    mwtest.wait_pair('units', send, recv)
    for p in (send, recv):
        line = [l for l in p.err_lines() if ' bytes in ' in l]
        log(f'    {p.name}: {line}')
        if not line or 'MiB/s' not in line[0] or 'Gbit/s' not in line[0]:
            fail(f'{p.name} summary lacks MiB/s and Gbit/s: {line}')
    with open(stats) as f:
        last = f.read().splitlines()[-1]
    for key in ('"rate_in_MiBps"', '"rate_wire_MiBps"', '"rate_wire_Gbitps"'):
        if key not in last:
            fail(f'stats file lacks {key}: {last}')
    # with TLS each side says what its wire bytes count
    psk = ['--tls-psk', env.psk('psk-units')]
    recv, port2 = env.recv(psk + ['--no-return-path', '-v'])
    send = env.send(port2, psk + ['-v'], stdin_path=inp)
    mwtest.wait_pair('units with TLS', send, recv)
    for p, note in ((send, 'on the wire incl. TLS'),
                    (recv, 'on the wire excl. TLS')):
        if not any(note in ln for ln in p.err_lines()):
            fail(f'{p.name} summary lacks "{note}": {p.err_lines()}')
    rc, err = env.run_cli(['recv', '--listen', f'tcp:127.0.0.1:{port}',
                           '--no-tls', '--print-config'])
    if rc != 0:
        fail(f'recv --listen tcp:127.0.0.1:{port}: exit {rc}: {err}')


@case
def unix_listen_path_not_a_socket(env):
    path = os.path.join(env.tmp, 'regular-file')
    with open(path, 'w') as f:
        f.write('not a socket')
    rc, err = env.run_cli(['send', '--to', '127.0.0.1:9', '--no-tls',
                           '--listen', f'unix:{path}'])
    log(f'    exit {rc}: {err.strip()}')
    if rc != 1 or 'exists and is not a socket' not in err:
        fail(f'exit {rc}, want 1 and "exists and is not a socket": {err}')
    if not os.path.isfile(path):
        fail('the regular file was removed')


@case
def print_config_validates(env):
    # --print-config fails where a run would, and names every setting
    rc, err = env.run_cli(['send', '--to', '127.0.0.1:9', '--tls-creds',
                           '/nonexistent', '--print-config'])
    lines = [l for l in err.splitlines() if l.strip()]
    if rc != 1 or len(lines) != 1 or '/nonexistent' not in lines[0]:
        fail(f'--print-config with missing credentials: exit {rc}: {lines}')
    r = subprocess.run([env.mw, 'send', '--to', '127.0.0.1:9', '--no-tls',
                        '--listen', 'unix:/tmp/x.sock', '--cpus', '0',
                        '--stats-file', '/tmp/s.json', '--print-config'],
                       capture_output=True, text=True, timeout=10)
    keys = dict(l.split('=', 1) for l in r.stdout.splitlines() if '=' in l)
    want = {'listen': 'unix:/tmp/x.sock', 'cpus': '0',
            'stats-file': '/tmp/s.json', 'compress-threads': None}
    for k, v in want.items():
        if k not in keys or (v is not None and keys[k] != v):
            fail(f'--print-config lacks {k}={v or "..."}: {r.stdout}')
    r = subprocess.run([env.mw, 'recv', '--listen', '127.0.0.1:9',
                        '--tls-psk', env.psk(), '--print-config'],
                       capture_output=True, text=True, timeout=10)
    for k in ('tls-psk=', 'decompress-threads=', 'wait=0', 'output=stdout'):
        if k not in r.stdout:
            fail(f'recv --print-config lacks {k}: {r.stdout}')


@case
def stream_descriptors_checked_at_start(env):
    # a closed or read-only stdout, or a closed stdin, fails at start with
    # one line instead of after the sender connected ("Bad file descriptor")
    ro = os.path.join(env.tmp, 'ro.txt')
    with open(ro, 'w') as f:
        f.write('x')
    recv = [env.mw, 'recv', '--listen', '127.0.0.1:9', '--no-tls']
    send = [env.mw, 'send', '--to', '127.0.0.1:9', '--no-tls']
    with open(ro, 'rb') as fin:
        for what, argv, kw, want in (
                ('recv stdout read-only', recv, {'stdout': fin}, 'read-only'),
                ('recv stdout closed', recv, {'stdout': None,
                                              'close_out': True}, 'closed'),
                ('send stdin closed', send, {'stdin': None,
                                             'close_in': True}, 'closed')):
            pre = None
            if kw.pop('close_out', False):
                def pre():
                    os.close(1)
            if kw.pop('close_in', False):
                def pre():
                    os.close(0)
            kw.setdefault('stdin', subprocess.DEVNULL)
            r = subprocess.run(argv, stderr=subprocess.PIPE, text=True,
                               timeout=10, preexec_fn=pre, **kw)
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            log(f'    {what}: exit {r.returncode}: {lines}')
            if r.returncode != 2 or len(lines) != 1 or want not in lines[0]:
                fail(f'{what}: exit {r.returncode}, want 2 and one line '
                     f'saying "{want}": {lines}')


@case
def help_and_version(env):
    # per-side --help fits 80 columns and explains units; --version works
    # after the side too
    for side in ('send', 'recv'):
        r = subprocess.run([env.mw, side, '--help'], capture_output=True,
                           text=True, timeout=10)
        wide = [l for l in r.stdout.splitlines() if len(l) > 80]
        if r.returncode != 0 or wide:
            fail(f'{side} --help: exit {r.returncode}, {len(wide)} lines '
                 f'over 80 columns: {wide[:1]}')
        if 'Mbit' not in r.stdout or 'K = KiB' not in r.stdout:
            fail(f'{side} --help does not state the units')
        listen = [l for l in r.stdout.splitlines() if '--listen' in l]
        if side == 'recv' and any('unix:' in l for l in listen):
            fail(f'recv --help shows send\'s --listen: {listen}')
        r = subprocess.run([env.mw, side, '--version'],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0 or not r.stdout.startswith('migwire '):
            fail(f'{side} --version: exit {r.returncode}: {r.stderr}')
    r = subprocess.run([env.mw, 'send', '--to', '127.0.0.1:9',
                        '--no-tls', '--max-bandwidth', '1Gbit',
                        '--print-config'], capture_output=True, text=True,
                       timeout=10)
    if 'max-bandwidth=125000000' not in r.stdout:
        fail(f'--max-bandwidth 1Gbit is not 125000000 bytes/s: {r.stdout}')


@case
def usage_unknown_option(env):
    # one line of our own, not getopt's message plus a hint
    rc, err = env.run_cli(['send', '--to', '127.0.0.1:9', '--no-tls',
                           '--bogus'])
    lines = [l for l in err.splitlines() if l.strip()]
    log(f'    --bogus: exit {rc}: {" | ".join(lines)}')
    if rc != 2:
        fail(f'exit {rc}, want 2')
    if not any('bogus' in l for l in lines):
        fail('no line names --bogus')
    if len(lines) != 1:
        fail(f'{len(lines)} lines on stderr for an unknown option')


def run():
    env = mwtest.Env('badinput')
    want = set(env.args)
    names = [c.__name__ for c in CASES]
    unknown = want - set(names)
    if unknown:
        fail(f'unknown case(s) {sorted(unknown)}; cases: {names}')
    fl.run_cases(env, [(c.__name__, lambda c=c: c(env)) for c in CASES
                       if not want or c.__name__ in want])
    log('PASS')

if __name__ == '__main__':
    mwtest.main(run)
