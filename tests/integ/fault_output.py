#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hardening 3.3 / 3.4: the receiver's output closes early, or drains slowly.

closed: recv's stdout is a pipe whose reader (the destination QEMU) exits
  after N bytes (N seeded, 0 included; MW_TEST_SEED replays). recv must exit
  1 with one line saying the destination closed its input; send must exit 1
  with one line carrying the receiver's reason; what the reader got is a
  prefix of the input. Each TLS mode.
slow: recv's stdout is drained at 5 MiB/s by a reader that sleeps. A
  producer writes into send's stdin as fast as send takes it. Every 50 ms:
  the producer's lead over the reader stays below send's --window + recv's
  --window + 4 MiB (pipes, a partial chunk), i.e. the producer is
  back-pressured to the drain rate (its rate once the pipeline is full is
  at most 1.5 x the drain's); both sides' VmHWM stays within --window +
  64 MiB; the output is byte-exact. 48 MiB with the default window at
  5 MiB/s, 96 MiB with --window 32M at 10 MiB/s.

    fault_output.py MIGWIRE DATAGEN MKCERTS closed|slow
"""
import hashlib
import os
import random
import subprocess
import threading
import time

import faultlib as fl
import mwtest
from mwtest import MiB, fail, log


def closed_one(env, rng, data, inp, mode, n):
    tls = mwtest.tls_args(mode, env)
    codec = rng.choice(['zstd', 'zlib', 'none'])
    got = env.path(f'head-{mode}-{n}')
    recv, port = env.recv(tls + ['--timeout', '5', '--wait', '5'],
                          out=subprocess.PIPE)
    with open(got, 'wb') as fo:
        head = env.popen(['head', '-c', str(n)], stdin=recv.p.stdout,
                         stdout=fo)
    recv.p.stdout.close()
    send = env.send(port, tls + ['--channels', '4', '--compress', codec,
                                 '--timeout', '5'], stdin_path=inp)
    rp = fl.Reaper(send, recv, head)
    t0 = time.monotonic()
    rp.wait(30, f'reader exits after {n} B')
    log(f'  {mode}/{codec}: reader exits after {n} B: send {send.rc}, '
        f'recv {recv.rc}, both ended within '
        f'{max(rp.t_exit.values()) - t0:.2f} s')
    fl.show(send)
    fl.show(recv)
    rl = fl.clean_failure(recv, any_of=('closed its input',))
    sl = fl.clean_failure(send, 'receiver', any_of=('closed its input',))
    fl.check_prefix(got, data)
    if os.path.getsize(got) != n:
        fail(f'the reader got {os.path.getsize(got)} B, not {n}')
    return rl, sl


def closed(env, rng):
    size = 32 * MiB
    inp = env.make_input('realistic', size, seed=rng.randrange(1 << 30))
    with open(inp, 'rb') as f:
        data = f.read()
    points = [0, rng.randrange(1, 1 << 20), rng.randrange(1 << 20, size // 2)]
    for mode, n in zip(('x509', 'psk', 'none'), points):
        closed_one(env, rng, data, inp, mode, n)
        env.cleanup_procs()
    # the reader gives up before the first byte of a TLS session
    closed_one(env, rng, data, inp, 'x509', rng.choice(points))


class Drain(threading.Thread):
    """Reads a pipe at `rate` bytes/s, hashing; records (t, total)."""

    def __init__(self, f, rate):
        super().__init__(daemon=True)
        self.f, self.rate = f, rate
        self.total = 0
        self.h = hashlib.sha256()
        self.err = None

    def run(self):
        t0 = time.monotonic()
        try:
            while True:
                b = self.f.read1(64 << 10)
                if not b:
                    break
                self.h.update(b)
                self.total += len(b)
                ahead = self.total / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.err = e


class Produce(threading.Thread):
    """Writes data into fd as fast as the reader takes it."""

    def __init__(self, fd, data):
        super().__init__(daemon=True)
        self.fd, self.data = fd, memoryview(data)
        self.total = 0
        self.err = None

    def run(self):
        try:
            while self.total < len(self.data):
                self.total += os.write(self.fd, self.data[self.total:
                                                          self.total +
                                                          (64 << 10)])
        except OSError as e:
            self.err = e
        finally:
            os.close(self.fd)


def slow_one(env, data, mode, window, rate):
    tls = mwtest.tls_args(mode, env)
    wargs = ['--window', f'{window >> 20}M'] if window else []
    window = window or 8 * MiB
    recv, port = env.recv(tls + wargs + ['--timeout', '10'],
                          out=subprocess.PIPE)
    r, w = os.pipe()
    send = env.send(port, tls + wargs + ['--channels', '4', '--compress',
                                         'zstd', '--timeout', '10'],
                    stdin=r)
    os.close(r)
    drain = Drain(recv.p.stdout, rate)
    prod = Produce(w, data)
    rp = fl.Reaper(send, recv)
    t0 = time.monotonic()
    drain.start()
    prod.start()
    bound = 2 * window + 4 * MiB
    worst, samples = 0, []
    limit = len(data) / rate + 30
    while not rp.poll():
        lead = prod.total - drain.total
        worst = max(worst, lead)
        samples.append((time.monotonic() - t0, prod.total, drain.total))
        if time.monotonic() - t0 > limit:
            rp.wait(0.1, 'slow drain')
        time.sleep(0.05)
    dt = time.monotonic() - t0
    prod.join(5)
    drain.join(5)
    fl.show(send)
    fl.show(recv)
    # the producer's rate while the drain runs: from the moment the
    # pipeline is full to the moment the producer is done
    full = next((s for s in samples if s[1] >= bound / 2), samples[0])
    done = next((s for s in samples if s[1] >= len(data)), samples[-1])
    prate = (done[1] - full[1]) / max(done[0] - full[0], 1e-3)
    log(f'  {mode}, window {window >> 20}M, drain {rate / MiB:.0f} MiB/s: '
        f'{len(data) >> 20} MiB in {dt:.1f} s; producer {prate / MiB:.1f} '
        f'MiB/s after the pipeline filled; largest lead {worst / MiB:.1f} '
        f'MiB (bound {bound / MiB:.0f}); VmHWM send {rp.mib(send):.1f} MiB, '
        f'recv {rp.mib(recv):.1f} MiB (limit {(window + fl.SLACK) >> 20})')
    if send.rc != 0 or recv.rc != 0:
        fail(f'send exit {send.rc}, recv exit {recv.rc}')
    if prod.err or drain.err:
        fail(f'producer: {prod.err}, drain: {drain.err}')
    if drain.h.hexdigest() != hashlib.sha256(data).hexdigest() or \
            drain.total != len(data):
        fail(f'output is not byte-exact ({drain.total} of {len(data)} B)')
    if worst > bound:
        fail(f'the producer ran {worst / MiB:.1f} MiB ahead of the reader: '
             f'more than both windows + 4 MiB ({bound / MiB:.0f} MiB)')
    if prate > 1.5 * rate:
        fail(f'the producer wrote at {prate / MiB:.1f} MiB/s against a '
             f'{rate / MiB:.0f} MiB/s drain: no back-pressure')
    for p in (send, recv):
        if rp.mib(p) * MiB > window + fl.SLACK:
            fail(f'{p.name} VmHWM {rp.mib(p):.1f} MiB > window + 64 MiB')


def slow(env, rng):
    data = os.urandom(96 * MiB)
    slow_one(env, memoryview(data)[:48 * MiB], 'x509', 0, 5 * MiB)
    env.cleanup_procs()
    # more data than both windows hold, so that back-pressure shows
    slow_one(env, data, 'psk', 32 * MiB, 10 * MiB)


def run():
    env = mwtest.Env('fault_output')
    what = env.args[0] if env.args else 'closed'
    rng = random.Random(fl.seed())
    t0 = time.monotonic()
    {'closed': closed, 'slow': slow}[what](env, rng)
    log(f'PASS ({time.monotonic() - t0:.1f} s)')


if __name__ == '__main__':
    mwtest.main(run)
