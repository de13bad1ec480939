#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hardening 3.6: an authenticated peer that sends forged frames.

tests/fuzz/net_replay.py replays hostile plaintext streams; this is the
authenticated variant. A python client (ssl module, TLS 1.3, the client
certificate of the test PKI from tools/mw-mkcerts) completes the handshake
with a real `migwire recv --tls-creds`, sends a valid HELLO (1 channel),
reads HELLO_OK, then sends one hostile frame. Cases: wire_len / raw_len
beyond the chunk size, DATA of stream 70, DATA beyond the stream window
granted in HELLO_OK, reverse-direction frames (DATA with bit 31, and the
receiver's own WINDOW / ACK / HELLO_OK types), an unknown frame type,
non-zero reserved fields, a second HELLO, END with impossible totals,
CLOSE before any stream, an oversized ERROR, an ERROR whose text holds
control bytes (printed escaped and cut). Each must end recv with exit 1
and exactly one stderr line naming the violation, within 8 s, having
written nothing. When libxxhash can be loaded through ctypes, an honest
control (one valid chunk, END, CLOSE) must come through byte-exact with
exit 0 and an ACK, which shows the client speaks the protocol.

    fault_tls_hostile.py MIGWIRE DATAGEN MKCERTS [CASE...]
"""
import ctypes
import os
import socket
import ssl
import struct
import time

import faultlib as fl
import mwtest
from mwtest import fail, has_keywords, log
from mwwire import PROTO  # noqa: E402 (tests/lib, on the path)

HDR = 40
(FT_HELLO, FT_HELLO_OK, FT_DATA, FT_END, FT_ACK, FT_ERROR, FT_OPEN,
 FT_WINDOW, FT_CLOSE) = range(1, 10)
F_RAW = 1
REVERSE = 1 << 31
CHUNK = 64 << 10
NAMES = {1: 'HELLO', 2: 'HELLO_OK', 3: 'DATA', 4: 'END', 5: 'ACK',
         6: 'ERROR', 7: 'OPEN', 8: 'WINDOW', 9: 'CLOSE'}


def frame(ftype, payload=b'', codec=0, flags=0, stream=0, raw_len=0,
          seq=0, csum=0, wire_len=None, res1=0, res2=0, magic=0x4d57):
    wl = len(payload) if wire_len is None else wire_len
    return struct.pack('>HBBHHIIIIQQ', magic, ftype, codec, flags, res1,
                       stream, raw_len, wl, res2, seq, csum) + payload


def hello(session, index=0, count=1, codec=0, chunk=CHUNK, window=32):
    p = b'MIGWIRE\0' + struct.pack('>HHHBB', PROTO, index, count, codec,
                                         0)
    p += session + struct.pack('>II', chunk, window) + bytes(24)
    return frame(FT_HELLO, p)


def end(total_bytes, chunks, stream=0):
    return frame(FT_END, struct.pack('>QQ', total_bytes, chunks),
                 stream=stream)


def close(streams, total_bytes, chunks):
    return frame(FT_CLOSE, struct.pack('>IIQQ', streams, 0, total_bytes,
                                       chunks))


_xxh3 = None


def xxh3(b):
    global _xxh3
    if _xxh3 is None:
        try:
            lib = ctypes.CDLL('libxxhash.so.0')
            f = lib.XXH3_64bits
            f.restype = ctypes.c_uint64
            f.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
            _xxh3 = f
        except (OSError, AttributeError):
            _xxh3 = False
    return _xxh3(b, len(b)) if _xxh3 else None


def data(seq, payload, stream=0, **kw):
    return frame(FT_DATA, payload, flags=F_RAW, stream=stream,
                 raw_len=len(payload), seq=seq, csum=xxh3(payload) or 0,
                 **kw)


# the valid chunk some cases send first (end_fewer_chunks_than_sent: two):
# recv may write them (verified, in order), nothing else
VALID = bytes(range(100))

# an ERROR text with an escape sequence, a forged second line, a NUL, a
# backslash and 1000 more bytes: the line must show it escaped and cut
EVIL = (b'evil\x1b[31mred\x1b[0m\r\nmigwire recv: forged line\x00 \\ tail'
        + b'A' * 600)
EVIL_SHOWN = ('evil\\x1b[31mred\\x1b[0m\\x0d\\x0amigwire recv: forged '
              'line\\x00 \\\\ tail', 'AAA...')

# name -> (builder(window) -> bytes after HELLO_OK, keywords of recv's line)
CASES = {
    'wire_len_huge': (lambda w: frame(FT_DATA, flags=F_RAW, raw_len=CHUNK,
                                      wire_len=0x7fffffff), ()),
    'wire_len_chunk_plus_1': (lambda w: frame(FT_DATA, b'x' * (CHUNK + 1),
                                              flags=F_RAW, raw_len=CHUNK),
                              ()),
    'raw_len_beyond_chunk': (lambda w: frame(FT_DATA, b'x' * 16, codec=0,
                                             raw_len=CHUNK + 1,
                                             wire_len=16), ()),
    'stream_70': (lambda w: data(0, b'y' * 100, stream=70), ('70',)),
    'beyond_window': (lambda w: data(w, b'z' * 100), ()),
    'far_beyond_window': (lambda w: data(1 << 40, b'z' * 100), ()),
    'reverse_data': (lambda w: data(0, b'r' * 100, stream=REVERSE),
                     ('reverse',)),
    'window_from_sender': (lambda w: frame(FT_WINDOW, seq=1 << 30), ()),
    'ack_from_sender': (lambda w: frame(FT_ACK, struct.pack('>QQ', 0, 0)),
                        ()),
    'hello_ok_from_sender': (lambda w: frame(FT_HELLO_OK, bytes(56)), ()),
    'second_hello': (lambda w: hello(os.urandom(16)), ()),
    'unknown_type_66': (lambda w: frame(66, b'q' * 8), ()),
    'bad_magic': (lambda w: frame(FT_DATA, b'q' * 8, magic=0x4e57), ()),
    'reserved_nonzero': (lambda w: data(0, b'q' * 8, res2=7), ()),
    'end_bytes_without_chunks': (lambda w: end(5, 0) + close(1, 5, 0), ()),
    # a valid chunk first: recv may write it before the END arrives
    'end_bytes_beyond_chunks': (lambda w: data(0, VALID) +
                                end(1 << 40, 1) + close(1, 1 << 40, 1),
                                ()),
    'open_stream_5_under_exec': (lambda w: frame(
        FT_OPEN, struct.pack('>HB5x', 0, 3), stream=5), ()),
    'end_fewer_chunks_than_sent': (lambda w: data(0, VALID) +
                                   data(1, VALID) + end(100, 1), ()),
    'end_twice': (lambda w: data(0, VALID) + end(100, 1) + end(100, 1), ()),
    'close_before_any_stream': (lambda w: close(0, 0, 0), ('0 streams',)),
    'close_totals_lie': (lambda w: data(0, VALID) + end(100, 1) +
                         close(1, 200, 2), ()),
    'error_oversized': (lambda w: frame(FT_ERROR, b'E' * 4096), ()),
    # the peer's text reaches stderr escaped: no terminal escape, no
    # second line, no NUL, and cut to a bounded length
    'error_control_chars': (lambda w: frame(FT_ERROR, EVIL), EVIL_SHOWN),
}

class Client:
    def __init__(self, env, port, pki):
        self.s = mwtest.tls_client(port, pki)
        self.buf = b''

    def send(self, b):
        self.s.sendall(b)

    def frames(self, timeout=8, until=None):
        """Reads frames until the peer closes, `until` type arrives, or
        timeout; returns (frames, closed)."""
        out = []
        dl = time.monotonic() + timeout
        while True:
            while len(self.buf) >= HDR:
                wl = struct.unpack('>I', self.buf[16:20])[0]
                if len(self.buf) < HDR + wl:
                    break
                out.append((self.buf[2], self.buf[:HDR],
                            self.buf[HDR:HDR + wl]))
                self.buf = self.buf[HDR + wl:]
                if until is not None and out[-1][0] == until:
                    return out, False
            left = dl - time.monotonic()
            if left <= 0:
                return out, False
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return out, False
            except (OSError, ssl.SSLError):
                return out, True
            if not d:
                return out, True
            self.buf += d

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def describe(frames):
    return '; '.join(NAMES.get(t, f'type{t}') +
                     (f' "{p.decode("utf-8", "replace")}"'
                      if t == FT_ERROR else '') for t, _, p in frames) \
        or 'nothing'


def session(env, pki, script):
    """recv + client: HELLO, HELLO_OK, then script(window) bytes. Returns
    (recv, window, frames after, closed)."""
    recv, port = env.recv(['--tls-creds', pki, '--wait', '5', '--timeout',
                           '5', '--window', '2M'])
    c = Client(env, port, pki)
    try:
        sess = os.urandom(16)
        c.send(hello(sess))
        fr, closed = c.frames(until=FT_HELLO_OK)
        if not fr or fr[-1][0] != FT_HELLO_OK:
            fail(f'no HELLO_OK: got {describe(fr)} (closed={closed}): '
                 f'{recv.stderr().strip()}')
        p = fr[-1][2]
        ver, idx, window = struct.unpack('>HHI', p[:8])
        if p[8:24] != sess:
            fail('HELLO_OK does not echo the session id')
        try:
            c.send(script(window))
        except (OSError, ssl.SSLError):
            pass  # the receiver may close before taking it all
        fr, closed = c.frames(timeout=8, until=FT_ACK)
    finally:
        c.close()
    return recv, window, fr, closed


def hostile(env, pki, name):
    build, words = CASES[name]
    t0 = time.monotonic()
    recv, window, fr, closed = session(env, pki, build)
    rc = recv.wait(10)
    dt = time.monotonic() - t0
    n = os.path.getsize(recv.out)
    log(f'  {name}: window {window}; recv answered {describe(fr)}; exit '
        f'{rc} after {dt:.1f} s, wrote {n} B')
    fl.show(recv)
    if rc == 0 or any(t == FT_ACK for t, _, _ in fr):
        fail(f'{name}: recv completed the session (exit {rc})')
    with open(recv.out, 'rb') as f:
        out = f.read()
    # what recv may have written before it saw the fault: the valid chunks
    # of the script, in order (end_fewer_chunks_than_sent has two, and a
    # slow run writes both before the END arrives)
    allowed = VALID * build(window).count(VALID)
    if out and out != allowed[:n]:
        fail(f'{name}: recv wrote {n} B that are not the valid chunks')
    line = fl.clean_failure(recv, *words)
    if any(ord(ch) < 0x20 or ord(ch) > 0x7e for ch in line):
        fail(f'{name}: the line holds control bytes: {line!r}')
    if len(line) > 512:
        fail(f'{name}: the line is {len(line)} characters long')
    if has_keywords(line, 'no sender') or has_keywords(line, 'timed out'):
        fail(f'{name}: recv gave up on a timeout instead of naming the '
             f'violation: {line}')
    return line


def control(env, pki):
    payload = os.urandom(1000)
    if xxh3(payload) is None:
        log('  control: libxxhash not loadable through ctypes, skipped')
        return
    recv, window, fr, closed = session(
        env, pki, lambda w: data(0, payload) + end(1000, 1) +
        close(1, 1000, 1))
    rc = recv.wait(10)
    log(f'  control (one valid chunk, END, CLOSE): recv answered '
        f'{describe(fr)}; exit {rc}')
    fl.show(recv)
    if rc != 0 or not any(t == FT_ACK for t, _, _ in fr):
        fail(f'the honest control failed (exit {rc}): the client is wrong')
    with open(recv.out, 'rb') as f:
        if f.read() != payload:
            fail('the honest control is not byte-exact')


def run():
    env = mwtest.Env('fault_tls_hostile')
    pki = env.pki()
    want = env.args or list(CASES)
    bad = set(want) - set(CASES) - {'control'}
    if bad:
        fail(f'unknown case(s) {sorted(bad)}; cases: {list(CASES)}')
    cases = [(n, lambda n=n: hostile(env, pki, n)) for n in want
             if n != 'control']
    if not env.args or 'control' in want:
        cases.insert(0, ('control', lambda: control(env, pki)))
    fl.run_cases(env, cases)
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
