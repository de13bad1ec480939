#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hardening 3.8: every wait is bounded by --wait / --timeout.

- recv --wait 3 and no sender: exit 1 within 4 s, one line saying no sender
  connected.
- a "receiver" that accepts TCP and then says nothing (a python listener):
  send --timeout 3 exits 1 within 5 s with one line (TLS: the handshake is
  never answered; --no-tls: HELLO is never answered).
- nothing listens at all: send exits 1 at once with one line.
- only some channels join (a proxy between send and recv, 4 channels):
  the 2nd connection is accepted by the proxy and never forwarded (a black
  hole). recv --timeout 3, send --timeout 6: recv exits 1 within 4.5 s
  saying 3 of 4 channels joined, send exits 1 soon after with that
  reason. Both --timeout 3: both exit 1 within 5.5 s (send once hung
  there for good). Or the 2nd connection is reset at once: send dials
  that channel again (a receiver shedding a flood of idle connections
  looks the same) and the transfer completes byte-exact, or both exit 1
  with one line promptly.
recv never writes a byte in these cases.

    fault_timeouts.py MIGWIRE DATAGEN MKCERTS
"""
import signal
import socket
import time

import faultlib as fl
import mwtest
from mwtest import MiB, fail, log



def no_sender(env):
    t0 = time.monotonic()
    recv, port = env.recv(['--no-tls', '--wait', '3'])
    fl.Reaper(recv).wait(15, 'recv --wait 3')
    dt = time.monotonic() - t0
    log(f'  recv --wait 3, no sender: exit {recv.rc} after {dt:.1f} s')
    fl.show(recv)
    fl.clean_failure(recv, 'no sender')
    if dt > 4.5:
        fail(f'recv --wait 3 took {dt:.1f} s')
    if mwtest.os.path.getsize(recv.out):
        fail('recv wrote bytes')


def silent_receiver(env, tls, mode):
    ls = socket.socket()
    ls.bind(('127.0.0.1', 0))
    ls.listen(64)
    port = ls.getsockname()[1]
    inp = env.make_input('random', 4 * MiB)
    try:
        t0 = time.monotonic()
        send = env.send(port, tls + ['--channels', '2', '--timeout', '3'],
                        stdin_path=inp)
        fl.Reaper(send).wait(20, f'send to a silent receiver ({mode})')
        dt = time.monotonic() - t0
    finally:
        ls.close()
    log(f'  send --timeout 3 to a silent listener ({mode}): exit {send.rc} '
        f'after {dt:.1f} s')
    fl.show(send)
    line = fl.clean_failure(send)
    if not any(w in line.lower() for w in ('timed out', 'timeout',
                                           'no answer', 'silent')):
        fail(f'send line does not say it timed out: {line}')
    if dt > 5.5:
        fail(f'send --timeout 3 took {dt:.1f} s')


def nobody_listens(env):
    port = mwtest.free_port()
    inp = env.make_input('random', 4 * MiB)
    t0 = time.monotonic()
    send = env.send(port, ['--no-tls', '--timeout', '3'], stdin_path=inp)
    fl.Reaper(send).wait(20, 'send to a closed port')
    dt = time.monotonic() - t0
    log(f'  send to a port nobody listens on: exit {send.rc} after '
        f'{dt:.1f} s')
    fl.show(send)
    fl.clean_failure(send, any_of=('refused',))


def partial_join(env, tls, mode, how, rto=3, sto=3):
    """recv --timeout rto, send --timeout sto, the 2nd connection of 4 held
    silent (blackhole) or reset at once (refuse) by a proxy."""
    inp = env.make_input('random', 4 * MiB)
    recv, port = env.recv(tls + ['--timeout', str(rto), '--wait', '5'])
    px = fl.Proxy(port, **{how: {1}})
    try:
        t0 = time.monotonic()
        send = env.send(px.port, tls + ['--channels', '4', '--timeout',
                                        str(sto)], stdin_path=inp)
        rp = fl.Reaper(send, recv)
        dl = time.monotonic() + max(rto, sto) + 6
        while not rp.poll() and time.monotonic() < dl:
            time.sleep(0.05)
        if recv.poll() is None:
            rp.wait(0.1, f'partial join ({mode}, {how})')  # fails
        if send.poll() is None:
            send.signal(signal.SIGTERM)
            time.sleep(1)
            term = send.poll()
            if term is None:
                send.p.kill()
            rp.wait(5, 'send after SIGKILL')
            fail(f'send still running {max(rto, sto) + 6} s after the start '
                 f'with --timeout {sto} (SIGTERM '
                 f'{"ignored" if term is None else "ended it"}), stderr '
                 f'"{send.stderr().strip()}"; recv: {recv.stderr().strip()}')
        ts = rp.t_exit[id(send)] - t0
        tr = rp.t_exit[id(recv)] - t0
    finally:
        px.close()
    log(f'  {mode}, recv --timeout {rto}, send --timeout {sto}, 2nd '
        f'connection {how}: send exit {send.rc} after {ts:.1f} s, recv exit '
        f'{recv.rc} after {tr:.1f} s; proxy: '
        f'{"; ".join(t for _, t in px.events)}')
    fl.show(send)
    fl.show(recv)
    if how == 'refuse' and send.rc == 0:
        # a connection reset before the receiver said a word is retried
        # by send (a receiver shedding a flood looks the same)
        with open(inp, 'rb') as a, open(recv.out, 'rb') as b:
            if recv.rc != 0 or a.read() != b.read():
                fail(f'send succeeded after a retry, recv exit {recv.rc}')
        log('  the sender retried the refused channel and completed')
        return
    if mwtest.os.path.getsize(recv.out):
        fail('recv wrote bytes before all channels joined')
    sl = fl.clean_failure(send)
    rl = fl.clean_failure(recv)
    if how == 'blackhole' and not any(w in rl for w in ('of 4 channels '
                                                        'joined',
                                                        'sender failed')):
        fail(f'recv names neither the join nor the sender: {rl}')
    if tr > min(rto, sto) + 1.5:
        fail(f'recv took {tr:.1f} s (--timeout {rto}, sender {sto})')
    if ts > min(rto, sto) + 2.5:
        fail(f'send took {ts:.1f} s to exit (--timeout {sto}); recv '
             f'had failed after {tr:.1f} s and said so: {sl}')
    if sto > rto and 'of 4 channels joined' not in sl:
        fail(f'send does not carry the receiver\'s reason: {sl}')


def run():
    env = mwtest.Env('fault_timeouts')
    cases = [
        ('no_sender', lambda: no_sender(env)),
        ('silent_receiver_x509', lambda: silent_receiver(
            env, mwtest.tls_args('x509', env), 'x509')),
        ('silent_receiver_plain', lambda: silent_receiver(
            env, ['--no-tls'], 'no-tls')),
        ('nobody_listens', lambda: nobody_listens(env)),
        ('partial_join_recv_first_x509', lambda: partial_join(
            env, mwtest.tls_args('x509', env), 'x509', 'blackhole', 3, 6)),
        ('partial_join_recv_first_plain', lambda: partial_join(
            env, ['--no-tls'], 'no-tls', 'blackhole', 3, 6)),
        ('partial_join_blackhole_x509', lambda: partial_join(
            env, mwtest.tls_args('x509', env), 'x509', 'blackhole')),
        ('partial_join_refused_psk', lambda: partial_join(
            env, mwtest.tls_args('psk', env), 'psk', 'refuse')),
    ]
    fl.run_cases(env, cases)
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
