#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Socket mode: an NBD server that closes before the client's NBD_CMD_DISC.

libvirt stops the destination's NBD server as soon as the source's block job
ends, so the client's final disconnect request (NBD_CMD_DISC) may meet a
closed socket. recv forgives exactly that: when writing to the destination
fails with EPIPE / ECONNRESET on a stream sniffed as NBD (its server's first
bytes are "NBDMAGIC") and the unwritten bytes are exactly one DISC request,
the stream ends normally. Any other unwritten bytes fail the session with one
line naming the stream and the closed input (transport/recv.c nbd_is_disc,
writer_main).

Python plays both QEMUs: a fake source connects to `send --listen` (one
endpoint for the main migration stream, one for NBD, as libvirt pairs them),
a fake destination listens where `recv --connect` goes. The main stream is
"QEVM" + version 3 + EOF (send ends a socket-mode session only once a main
migration stream was carried), opened first so that it is stream 0 and NBD
is stream 1.

Determinism: the destination reads every byte the client sent so far (the
greeting is answered, one NBD_CMD_WRITE is read in full and acknowledged)
and only then closes; only after that close does the fake client send its
tail (the DISC, or other bytes), so the tail reaches a socket that is
already dead and no kernel buffer can absorb it:
  - unix socket: a write to a unix stream socket whose peer is closed fails
    with EPIPE at once (the kernel checks the peer on every write);
  - TCP: the destination closes with an RST (SO_LINGER 0) and the test waits
    until the connection has left /proc/net/tcp, i.e. recv's socket has
    processed the RST; its next write then fails (ECONNRESET, or EPIPE when
    the reverse reader consumed the error first). A FIN alone would not do:
    the first write after a FIN succeeds.
The tail is written by a separate send() after the destination's close, so
the sender reads it into a chunk of its own: the DISC is the whole unwritten
part of the write that fails. (A DISC at the end of a chunk whose first part
was written before the close cannot be made deterministic: the kernel's
socket buffers take the whole write or block; it is not tested.)

Cases (each bounded: 20 s for the session, 10 s per socket operation):
  disc_unix, disc_ext_unix, disc_tcp_rst: the tail is one DISC (compact,
    extended header, TCP with RST): both sides exit 0, recv says (-v) that
    it dropped the DISC, the client sees its reply and then EOF.
  write_unix, write_tcp_rst: the tail is an NBD_CMD_WRITE and then the
    DISC: both sides exit 1 with one line naming stream 1 and the closed
    input.
  not_nbd_unix: the same DISC tail on a stream whose server never said
    NBDMAGIC: not forgiven, both exit 1.

    nbd_disc.py MIGWIRE DATAGEN MKCERTS
"""
import socket
import struct
import subprocess

import faultlib as fl
import mwtest
from mwtest import fail, log

IO_TIMEOUT = 10
# newstyle server greeting: NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE | NO_ZEROES
GREETING = b'NBDMAGIC' + b'IHAVEOPT' + struct.pack('>H', 3)
CLIENT_FLAGS = struct.pack('>I', 3)
CMD_WRITE, CMD_DISC = 1, 2
# QEMU's main channel: magic, version 3, then QEMU_VM_EOF
MAIN = b'QEVM' + struct.pack('>I', 3) + b'\x00'


def nbd_req(typ, cookie, offset=0, data=b'', ext=False):
    """An NBD request: compact 28-byte header (magic 0x25609513) or the
    extended 32-byte one (0x21e41c71, be64 length), then data."""
    if ext:
        return struct.pack('>IHHQQQ', 0x21e41c71, 0, typ, cookie, offset,
                           len(data)) + data
    return struct.pack('>IHHQQI', 0x25609513, 0, typ, cookie, offset,
                       len(data)) + data


def nbd_reply(cookie):
    """A simple reply, no error."""
    return struct.pack('>IIQ', 0x67446698, 0, cookie)


class Listener:
    """The fake destination QEMU's listening socket (unix or TCP)."""

    def __init__(self, env, name, tcp=False):
        if tcp:
            self.s = socket.socket()
            self.s.bind(('127.0.0.1', 0))
            self.ep = f'tcp:127.0.0.1:{self.s.getsockname()[1]}'
        else:
            path = env.path(name)
            self.s = socket.socket(socket.AF_UNIX)
            self.s.bind(path)
            self.ep = f'unix:{path}'
        self.tcp = tcp
        self.s.listen(4)
        self.s.settimeout(IO_TIMEOUT)

    def accept(self, what):
        try:
            c, _ = self.s.accept()
        except socket.timeout:
            fail(f'recv did not connect to the {what} within {IO_TIMEOUT} s')
        c.settimeout(IO_TIMEOUT)
        return c


def connect_unix(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(IO_TIMEOUT)
    s.connect(path)
    return s


def expect(s, want, what):
    got = mwtest.recv_exact(s, len(want))
    if got != want:
        fail(f'{what}: got {len(got)} B {got[:32]!r}..., want {len(want)} B')


def close_dead(c, tcp):
    """Closes the destination's NBD connection so that recv's next write
    to it fails (see the module docstring)."""
    if not tcp:
        c.close()
        return
    mine, peer = c.getsockname()[1], c.getpeername()[1]
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    c.close()
    fl.wait_for(lambda: not mwtest.tcp_conn_exists(mine, peer), 5,
                "recv's NBD connection to process the RST")


def session(env, name, tail, ok, tcp=False, greet=True):
    """One session (socket files named after the case); tail: the client's
    bytes after the server closed; ok: whether both sides must succeed."""
    socks = []
    try:
        dmain = Listener(env, f'{name}-dst-main.sock')
        dnbd = Listener(env, f'{name}-dst-nbd.sock', tcp)
        socks += [dmain.s, dnbd.s]
        smain = env.path(f'{name}-src-main.sock')
        snbd = env.path(f'{name}-src-nbd.sock')
        common = ['--no-tls', '--timeout', '10']
        recv, port = env.recv(common + ['--wait', '10', '--connect', dmain.ep,
                                        '--connect', dnbd.ep] +
                              (['-v'] if ok else []))
        send = env.send(port, common + ['--listen', f'unix:{smain}',
                                        '--listen', f'unix:{snbd}'],
                        stdin=subprocess.DEVNULL)
        fl.wait_for(lambda: mwtest.unix_listening(smain) and
                    mwtest.unix_listening(snbd), 10, 'send to listen')
        # the main migration stream first: stream 0
        qm = connect_unix(smain)
        socks.append(qm)
        qm.sendall(MAIN)
        dm = dmain.accept('main endpoint')
        socks.append(dm)
        expect(dm, MAIN, 'main stream at the destination')
        # NBD (stream 1): the server speaks first; the client waits for it
        qn = connect_unix(snbd)
        socks.append(qn)
        dn = dnbd.accept('NBD endpoint')
        socks.append(dn)
        if greet:
            dn.sendall(GREETING)
            expect(qn, GREETING, 'NBD greeting at the client')
        head = CLIENT_FLAGS + nbd_req(CMD_WRITE, 1, 0, bytes(range(256)) * 16)
        qn.sendall(head)
        expect(dn, head, 'NBD requests at the server')
        dn.sendall(nbd_reply(1))
        expect(qn, nbd_reply(1), 'NBD reply at the client')
        close_dead(dn, tcp)
        qn.sendall(tail)
        qn.shutdown(socket.SHUT_WR)
        if ok:
            # the server's close reaches the client as EOF (reverse END)
            rest = mwtest.Collect(qn, 'nbd-client').join_data(
                IO_TIMEOUT, 'the NBD client')
            if rest:
                fail(f'the NBD client got {len(rest)} B after the reply')
            # then the main stream ends both ways, as QEMU's does
            qm.shutdown(socket.SHUT_WR)
            rest = mwtest.Collect(dm, 'dst-main').join_data(
                IO_TIMEOUT, 'the destination main stream')
            if rest:
                fail(f'the main stream carried {len(rest)} B too many')
            dm.close()
            mwtest.Collect(qm, 'src-main').join_data(IO_TIMEOUT,
                                                     'the source main stream')
        fl.Reaper(send, recv).wait(20, 'the session')
        if ok:
            if send.rc != 0 or recv.rc != 0:
                fail(f'send exit {send.rc}, recv exit {recv.rc}\n'
                     f'  send: {send.stderr().strip()}\n'
                     f'  recv: {recv.stderr().strip()}')
            if 'dropped it' not in recv.stderr():
                fail('recv did not report the dropped NBD_CMD_DISC: the '
                     'forgiving path was not taken:\n  '
                     + recv.stderr().strip())
            log('  both exit 0; recv: ' + next(
                l for l in recv.err_lines() if 'dropped it' in l))
        else:
            fl.show(recv)
            fl.show(send)
            fl.clean_failure(recv, 'stream 1', any_of=('closed its input',))
            fl.clean_failure(send, 'stream 1', any_of=('closed its input',))
    finally:
        for s in socks:
            s.close()


def run():
    env = mwtest.Env('nbd_disc')
    disc = nbd_req(CMD_DISC, 2)
    write_disc = nbd_req(CMD_WRITE, 2, 4096, bytes(4096)) + nbd_req(CMD_DISC,
                                                                     3)
    cases = [
        ('disc_unix', dict(tail=disc, ok=True)),
        ('disc_ext_unix', dict(tail=nbd_req(CMD_DISC, 2, ext=True), ok=True)),
        ('disc_tcp_rst', dict(tail=disc, ok=True, tcp=True)),
        ('write_unix', dict(tail=write_disc, ok=False)),
        ('write_tcp_rst', dict(tail=write_disc, ok=False, tcp=True)),
        ('not_nbd_unix', dict(tail=disc, ok=False, greet=False)),
    ]
    cases = [(n, lambda n=n, kw=kw: session(env, n, **kw)) for n, kw in cases]
    fl.run_cases(env, cases)
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
