# SPDX-License-Identifier: MIT
"""migwire's wire format (docs/protocol.md) for the Python test clients
that forge frames: one place for the protocol version, the frame header,
HELLO / HELLO_OK and the HMAC proofs of the join token and of a resume.
Python standard library only.

The proofs are HMAC-SHA256(key, DOMAIN | mode | binding | nonce | HELLO)
(transport/join.c, tls/tls_join.c): mode 1 with TLS and the binding the
connection's TLS exporter, which Python's ssl module cannot export, so a
Python client can make a valid proof only without TLS (mode 0, 32 zero
bytes); under TLS its proofs are wrong by construction, which is what the
tests of refused proofs need.
"""
import hashlib
import hmac
import struct

PROTO = 3            # MW_PROTO_VERSION
HDR = 40             # MW_FRAME_HDR_LEN
HELLO_LEN = 64
HELLO_OK_LEN = 56    # 24 + the 32-byte resume secret
SECRET_LEN = 32

FT = {'HELLO': 1, 'HELLO_OK': 2, 'DATA': 3, 'END': 4, 'ACK': 5, 'ERROR': 6,
      'OPEN': 7, 'WINDOW': 8, 'CLOSE': 9, 'PROBE': 10, 'PROBE_OK': 11,
      'CHALLENGE': 12, 'JOIN': 13, 'PING': 14, 'CONFIRM': 15}
NAMES = {v: k for k, v in FT.items()}

HELLO_F_TOKEN, HELLO_F_PAGES, HELLO_F_RESUME = 0x01, 0x02, 0x04
F_RAW, F_PAGES, F_RESENT = 0x0001, 0x0002, 0x0004

JOIN_DOMAIN = b'migwire join v2\0'
RESUME_DOMAIN = b'migwire resume v3\0'
RESUME_KEY_DOMAIN = b'migwire resume key v3\0'


def frame(ftype, payload=b'', codec=0, flags=0, stream=0, raw_len=0, seq=0,
          csum=0):
    return struct.pack('>HBBHHIIIIQQ', 0x4d57, ftype, codec, flags, 0,
                       stream, raw_len, len(payload), 0, seq, csum) + payload


def hello(session, index, count, codec=0, flags=0, chunk=64 << 10,
          window=32, version=PROTO, slots=0):
    """A HELLO payload (64 bytes)."""
    return (b'MIGWIRE\0' +
            struct.pack('>HHHBB', version, index, count, codec, flags) +
            session + struct.pack('>II', chunk, window) + bytes(20) +
            struct.pack('>I', slots))


def parse_hello(p):
    ver, idx, count, codec, flags = struct.unpack('>HHHBB', p[8:16])
    return {'version': ver, 'index': idx, 'count': count, 'codec': codec,
            'flags': flags, 'session': p[16:32]}


def hello_ok(index, session, secret, window=32, version=PROTO):
    """A HELLO_OK payload (56 bytes)."""
    return struct.pack('>HHI', version, index, window) + session + secret


def parse_hello_ok(p):
    ver, idx, window = struct.unpack('>HHI', p[:8])
    return {'version': ver, 'index': idx, 'window': window,
            'session': p[8:24], 'secret': p[24:56]}


def proof(key, domain, nonce, hello_payload, binding=None):
    """HMAC of the join / resume exchange; binding None: no TLS."""
    mode = b'\1' if binding is not None else b'\0'
    msg = domain + mode + (binding or bytes(32)) + nonce + hello_payload
    return hmac.new(key, msg, hashlib.sha256).digest()


def resume_key(secret, token=None):
    """The key of the resume proof: the secret R of HELLO_OK, or with a
    join token HMAC-SHA256(token, "migwire resume key v3\\0" | R)."""
    if not token:
        return secret
    return hmac.new(token, RESUME_KEY_DOMAIN + secret,
                    hashlib.sha256).digest()


def split_frames(buf):
    """([(type, header, payload)], rest) of the whole frames in buf."""
    out = []
    while len(buf) >= HDR:
        wl = struct.unpack('>I', buf[16:20])[0]
        if len(buf) < HDR + wl:
            break
        out.append((buf[2], buf[:HDR], buf[HDR:HDR + wl]))
        buf = buf[HDR + wl:]
    return out, buf


def recv_exact(s, n):
    """n bytes from socket s, or fewer if it reaches EOF first."""
    b = b''
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            break
        b += c
    return b


def read_frame(sock):
    """(type, payload) of the next frame on a blocking socket, or
    (None, b'') at EOF or on an error."""
    try:
        h = recv_exact(sock, HDR)
        if len(h) < HDR:
            return None, b''
        wl = struct.unpack('>I', h[16:20])[0]
        return h[2], recv_exact(sock, wl) if wl else b''
    except OSError:
        return None, b''
