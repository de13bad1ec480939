#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Worker threads are named and --cpus pins them.

A slow transfer (--max-bandwidth) with --cpus 0 on both sides: while it
runs, /proc/PID/task/*/comm and .../status Cpus_allowed_list must show the
named pipeline threads (send: mw-read, mw-tx0.., mw-zstd0..; recv: mw-rx0..,
mw-unzstd0.., mw-write), every mw-* thread allowed on CPU 0 only, and no
other thread than the main one. A second run without --cpus (when the kernel
isolates no CPU) leaves the workers on every CPU this test may use. Then an
idle receiver (waiting for a sender that never comes) must not burn CPU.

    cpus.py MIGWIRE DATAGEN MKCERTS
"""
import os
import time

import mwtest
from mwtest import MiB, fail, log

WANT = {
    'send': ('mw-read', 'mw-tx0', 'mw-tx1', 'mw-zstd0'),
    'recv': ('mw-rx0', 'mw-rx1', 'mw-write', 'mw-unzstd0'),
}


def threads(pid):
    out = []
    for tid in sorted(os.listdir(f'/proc/{pid}/task'), key=int):
        try:
            with open(f'/proc/{pid}/task/{tid}/comm') as f:
                comm = f.read().strip()
            cpus = ''
            with open(f'/proc/{pid}/task/{tid}/status') as f:
                for line in f:
                    if line.startswith('Cpus_allowed_list:'):
                        cpus = line.split()[1]
        except OSError:
            continue  # thread ended meanwhile
        out.append((int(tid), comm, cpus))
    return out


def expand(lst):
    s = set()
    for part in lst.split(','):
        a, _, b = part.partition('-')
        s.update(range(int(a), int(b or a) + 1))
    return s


def run_one(env, inp, pin):
    tls = ['--tls-creds', env.pki()]
    extra = ['--cpus', pin] if pin else []
    recv, port = env.recv(tls + extra + ['--timeout', '20'])
    # a pipe kept open: the reader thread stays alive, waiting for more
    r, wfd = os.pipe()
    send = env.send(port, tls + extra + ['--channels', '2', '--compress',
                                         'zstd', '--max-bandwidth', '4M'],
                    stdin=r)
    os.close(r)
    with open(inp, 'rb') as f:
        data = f.read()
    off = 0
    while off < len(data):
        off += os.write(wfd, data[off:])
    dl = time.monotonic() + 15
    while os.path.getsize(recv.out) < 256 << 10 and time.monotonic() < dl:
        time.sleep(0.02)
    if send.poll() is not None or recv.poll() is not None:
        fail(f'transfer ended before the threads were looked at: '
             f'{send.stderr()} {recv.stderr()}')
    seen = {}
    for p in (send, recv):
        seen[p.name] = threads(p.pid)
    mine = os.sched_getaffinity(0)
    problems = []
    for side, ths in seen.items():
        pid = send.pid if side == 'send' else recv.pid
        log(f'{side} (--cpus {pin or "unset"}): ' + ', '.join(
            f'{c}[{a}]' for _, c, a in ths))
        names = {c for _, c, _ in ths}
        for w in WANT[side]:
            if w not in names:
                problems.append(f'{side}: no thread named {w}')
        for tid, comm, cpus in ths:
            if tid == pid:
                continue  # the main (control) thread: reported above
            if not comm.startswith('mw-'):
                problems.append(f'{side}: thread {tid} is not named mw-*: '
                                f'{comm}')
                continue
            allowed = expand(cpus)
            if pin and allowed != expand(pin):
                problems.append(f'{side}: {comm} allowed on {cpus}, want '
                                f'{pin}')
            if not pin and allowed != mine:
                problems.append(f'{side}: {comm} allowed on {cpus} without '
                                f'--cpus, want all of {sorted(mine)}')
    send.signal(15)
    send.wait(15)
    recv.wait(15)
    os.close(wfd)
    if problems:
        fail('; '.join(problems))


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        st = f.read().rsplit(')', 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf('SC_CLK_TCK')


def run():
    env = mwtest.Env('cpus')
    inp = env.make_input('random', 2 * MiB)
    if not os.path.exists('/proc/self/task'):
        log('SKIP: no /proc')
        raise SystemExit(77)
    run_one(env, inp, '0')
    iso = mwtest.read_text('/sys/devices/system/cpu/isolated').strip()
    if iso:
        log(f'default placement not checked: the kernel isolates {iso}')
    else:
        run_one(env, inp, None)

    # an idle receiver: 2.5 s of waiting for a sender should cost ~0 CPU
    recv, port = env.recv(['--no-tls', '--wait', '4'])
    time.sleep(2.5)
    used = cpu_seconds(recv.pid)
    recv.signal(15)
    recv.wait(10)
    log(f'idle recv: {used:.2f} CPU s in 2.5 s of waiting for a sender')
    # once a known bug (the control loop spun without --stats-file); fixed
    if used > 0.5:
        fail(f'idle recv burnt {used:.2f} CPU s in 2.5 s')
    log('PASS')


def main():
    run()


if __name__ == '__main__':
    mwtest.main(main)
