#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""integ/progress: progress a person reads, and rates from the first chunk.

  lines:     --progress=1 with stderr a file: one plain line a second per
             side (bytes, MiB/s and Gbit/s, channels, time), then the
             byte-exact result;
  first:     recv waits 2 s for its sender; its -v summary times the
             transfer from the first chunk, not from start-up;
  terminal:  under a pseudo-terminal (script(1)) progress is on by default
             and rewrites one line in place ("\\r" + erase); --progress=0
             turns it off; --print-config says which.
"""
import re
import shutil
import subprocess
import time

import mwtest
from mwtest import MiB, fail, log


def lines_with(proc, word):
    return [l for l in proc.err_lines() if word in l]


def plain_lines(env, inp):
    recv, port = env.recv(['--no-tls', '--no-return-path', '--progress=1'])
    send = env.send(port, ['--no-tls', '--max-bandwidth', '4M',
                           '--progress=1'], stdin_path=inp)
    mwtest.wait_pair('progress', send, recv)
    for p in (send, recv):
        got = lines_with(p, 'channels, ')
        for l in got:
            log(f'    {p.name}: {l}')
        if len(got) < 2:
            fail(f'{p.name}: {len(got)} progress lines in a ~3 s transfer, '
                 f'want at least 2')
        for l in got:
            if not re.search(r'MiB/s.*\(\d+\.\d+ Gbit/s\).* \d+/\d+ channels,'
                             r' \d+:\d\d$', l):
                fail(f'{p.name}: progress line lacks a field: {l}')
    with open(inp, 'rb') as a, open(recv.out, 'rb') as b:
        if a.read() != b.read():
            fail('output differs from input')


def first_chunk(env, inp):
    recv, port = env.recv(['--no-tls', '--no-return-path', '-v'])
    time.sleep(2.0)
    send = env.send(port, ['--no-tls', '--max-bandwidth', '8M'],
                    stdin_path=inp)
    mwtest.wait_pair('first chunk', send, recv)
    line = next(iter(lines_with(recv, ' bytes in ')), '')
    log(f'    recv: {line}')
    m = re.search(r' bytes in (\d+\.\d+) s', line)
    if not m:
        fail(f'no summary line: {recv.err_lines()}')
    # 12 MiB at 8 MiB/s: about 1.5 s of transfer after 2 s of waiting
    if float(m.group(1)) > 2.8:
        fail(f'recv counts its wait for the sender: {line}')


def terminal(env, inp):
    script = shutil.which('script')
    if not script:
        log('    terminal: script(1) missing, not checked')
        return
    for extra, want in (([], True), (['--progress=0'], False)):
        recv, port = env.recv(['--no-tls', '--no-return-path'])
        cmd = (f'{env.mw} send --to 127.0.0.1:{port} --no-tls '
               f'--max-bandwidth 8M {" ".join(extra)} < {inp}')
        r = subprocess.run([script, '-qfec', cmd, '/dev/null'],
                           capture_output=True, timeout=60)
        recv.wait(30)
        out = r.stdout.decode('utf-8', 'replace')
        shown = '\r\x1b[Kmigwire send: read ' in out
        log(f'    terminal {extra or "(default)"}: exit {r.returncode}, '
            f'progress {"shown" if shown else "not shown"}')
        if r.returncode != 0 or shown != want:
            fail(f'terminal {extra}: exit {r.returncode}, progress shown '
                 f'{shown}, want {want}: {out[-300:]!r}')
    r = subprocess.run([env.mw, 'send', '--to', '127.0.0.1:9', '--no-tls',
                        '--print-config'], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True, timeout=10)
    if 'progress=off' not in r.stdout.splitlines():
        fail(f'--print-config without a terminal: {r.stdout}')


def run():
    env = mwtest.Env('progress')
    inp = env.make_input('random', 12 * MiB)
    plain_lines(env, inp)
    first_chunk(env, inp)
    terminal(env, inp)
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
