#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""integ/cpu_budget: --cpu-budget holds a side's CPU use, measured from
outside.

A TLS + zstd (level 3) transfer of realistic data, first without a budget:
what each side uses then (rusage of the exited process, all threads, user +
system, over its wall time from start to exit) decides the budgets, half of
that, so that the budget has to bite. Then once with `send --cpu-budget`
and once with `recv --cpu-budget`: the output must be byte-exact, the
budgeted side's CPU over its whole wall time at most 1.1 x the budget, its
final stats line must say that intake waited (paced_s > 0) and report the
budget. --print-config shows the pools shrunk to ceil(budget). The CPU time
comes from the kernel (wait4), not from migwire's own report; no wall-clock
time is asserted.

Then bad values: 0, negative, garbage, exponents, nan, below 0.1, more than
the CPUs this process may use, more workers than the budget, and a budget
above an explicit --cpus list: each one line, exit 2.
"""
import json
import os
import subprocess
import time

import mwtest
from mwtest import MiB, fail, log

SIZE = 384 * MiB


def rusage_wait(proc, timeout=180):
    """Reaps proc with wait4: (exit code, CPU seconds, wall seconds from its
    start). Popen keeps the exit code for the later wait()."""
    dl = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > dl:
            proc.p.kill()
            fail(f'{proc.name} did not exit within {timeout} s: '
                 f'{proc.stderr().strip()}')
        time.sleep(0.01)
    wall = time.monotonic() - proc.t0
    proc.p.returncode = os.waitstatus_to_exitcode(status)
    return proc.p.returncode, ru.ru_utime + ru.ru_stime, wall


def final_stats(path):
    with open(path) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    if not lines or not lines[-1].get('final'):
        fail(f'{path}: no final stats line')
    return lines[-1]


def transfer(env, inp, want, tag, send_extra=(), recv_extra=()):
    tls = ['--tls-creds', env.pki()]
    rstats, sstats = env.path(f'{tag}-recv.json'), env.path(f'{tag}-send.json')
    recv, port = env.recv(tls + ['--stats-file', rstats, *recv_extra])
    recv.t0 = time.monotonic()  # its wall time: from here, as send's
    send = env.send(port, tls + ['--compress', 'zstd', '--compress-level',
                                 '3', '--channels', '2', '--stats-file',
                                 sstats, *send_extra], stdin_path=inp)
    src, scpu, swall = rusage_wait(send)
    rrc, rcpu, rwall = rusage_wait(recv)
    if src or rrc:
        fail(f'{tag}: send exit {src}, recv exit {rrc}: '
             f'{send.stderr().strip()} {recv.stderr().strip()}')
    if mwtest.sha256_file(recv.out) != want:
        fail(f'{tag}: the output differs from the input')
    res = {'send': (scpu, swall, final_stats(sstats)),
           'recv': (rcpu, rwall, final_stats(rstats))}
    log(f'  {tag}: send {scpu:.2f} CPU s / {swall:.2f} s = '
        f'{scpu / swall:.2f} cores; recv {rcpu:.2f} / {rwall:.2f} s = '
        f'{rcpu / rwall:.2f} cores')
    return res


def budget_for(cores):
    """Half of what the side used unbudgeted, in tenths, at least 0.1."""
    return max(0.1, int(cores / 2 * 10) / 10)


def check_budget(env, side, used, inp, want):
    b = budget_for(used)
    if used < 1.3 * b:
        fail(f'{side} used only {used:.2f} cores without a budget: a '
             f'budget of {b} would not have to hold anything back')
    extra = ['--cpu-budget', str(b)]
    res = transfer(env, inp, want, f'{side}-budget',
                   send_extra=extra if side == 'send' else (),
                   recv_extra=extra if side == 'recv' else ())
    cpu, wall, st = res[side]
    cores = cpu / wall
    log(f'{side} --cpu-budget {b}: {cores:.3f} cores (unbudgeted '
        f'{used:.2f}); stats: cores {st.get("cores")}, paced '
        f'{st.get("paced_s")} s')
    if cores > 1.1 * b:
        fail(f'{side} --cpu-budget {b}: used {cpu:.2f} CPU s in {wall:.2f} s '
             f'= {cores:.3f} cores, more than 1.1 x the budget')
    if st.get('cpu_budget') != b or not st.get('paced_s'):
        fail(f'{side} stats do not report the budget and the pacing: '
             f'cpu_budget={st.get("cpu_budget")} paced_s={st.get("paced_s")}')


def check_pool(env):
    """ceil(budget) codec workers by default, shown by --print-config."""
    for side, key, addr in (('send', 'compress-threads', '--to'),
                            ('recv', 'decompress-threads', '--listen')):
        rc, out = cfg(env, [side, addr, '127.0.0.1:9', '--no-tls',
                            '--cpu-budget', '0.5'])
        if rc or f'{key}=1' not in out or 'cpu-budget=0.5' not in out:
            fail(f'{side} --cpu-budget 0.5 --print-config: exit {rc}:\n{out}')


def cfg(env, args):
    r = subprocess.run([env.mw, *args, '--print-config'], capture_output=True,
                       text=True, timeout=20)
    return r.returncode, r.stdout + r.stderr


def check_bad(env):
    ncpu = len(os.sched_getaffinity(0))
    bad = ['0', '-1', '-0.5', 'abc', '', '1e0', 'nan', 'inf', '0x1', '0.05',
           '1.', '.5x', str(ncpu + 1), '1,5']
    for v in bad:
        for side, addr in (('send', '--to'), ('recv', '--listen')):
            rc, err = env.run_cli([side, addr, '127.0.0.1:9', '--no-tls',
                                   '--cpu-budget', v, '--print-config'])
            lines = [l for l in err.splitlines() if l.strip()]
            if rc != 2 or len(lines) != 1 or '--cpu-budget' not in lines[0] \
                    or 'number of cores' not in lines[0]:
                fail(f'{side} --cpu-budget {v!r}: exit {rc}, want 2 and one '
                     f'line: {err!r}')
    rc, err = env.run_cli(['send', '--to', '127.0.0.1:9', '--no-tls',
                           '--cpu-budget', '1', '--compress-threads', '2',
                           '--print-config'])
    if rc != 2 or 'at most 1' not in err or len(err.strip().splitlines()) != 1:
        fail(f'--compress-threads 2 --cpu-budget 1: exit {rc}: {err!r}')
    if ncpu >= 2:
        rc, err = env.run_cli(['recv', '--listen', '127.0.0.1:9', '--no-tls',
                               '--cpu-budget', '1.5', '--cpus', '0',
                               '--print-config'])
        if rc != 2 or 'more than the 1 CPUs of --cpus' not in err:
            fail(f'--cpu-budget 1.5 --cpus 0: exit {rc}: {err!r}')
    log(f'bad values: {len(bad)} x 2 sides and 2 combinations refused')


def run():
    env = mwtest.Env('cpu_budget')
    check_bad(env)
    check_pool(env)
    inp = env.make_input('realistic', SIZE, seed=5)
    want = mwtest.sha256_file(inp)
    base = transfer(env, inp, want, 'unbudgeted')
    for side in ('send', 'recv'):
        cpu, wall, _ = base[side]
        check_budget(env, side, cpu / wall, inp, want)
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
