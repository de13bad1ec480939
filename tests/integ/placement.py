#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""integ/placement: migwire keeps its threads off the VM's vCPUs by itself.

A real QEMU (Debian's 7.2, TCG, 2 vCPUs, -S: nothing runs, the vCPU threads
exist) with -name ...,debug-threads=on as libvirt starts it. Its vCPU
threads are pinned with sched_setaffinity to the last online CPU, as an
operator with dedicated CPUs would (taskset). Then:

  exec:     QEMU itself runs `migwire recv` (migrate-incoming exec:...):
            recv finds QEMU among its parents and logs, at -v, that it
            placed its threads on the other CPUs, and every thread of it
            (the main one included) may run only there; with the kernel's
            autogroup on, it left QEMU's session (setsid), so its load
            does not take the VM's scheduler weight from the vCPUs;
  socket:   `--qemu-pid PID --print-config` shows cpus= without the vCPUs'
            CPU and placement= saying why;
  shared:   vCPUs unpinned: no CPU is left, migwire says so and shares;
  --cpus:   an explicit list wins;
  no names: a QEMU without debug-threads=on gets a line saying how to fix
            it, and --qemu-pid of a process that is not QEMU is refused.
Skips (77) on a host with fewer than 2 online CPUs or without QEMU.
"""
import os
import shutil
import subprocess
import sys
import time

import mwtest  # puts tests/lib on sys.path
from mwtest import fail, log, read_text
from mwproc import descendants, terminate
from mwqemu.qmp import QMP


def start_qemu(env, name, named=True):
    sock = os.path.join(env.tmp, f'{name}.qmp')
    argv = ['qemu-system-x86_64']
    if named:
        argv += ['-name', f'{name},debug-threads=on']
    argv += ['-machine', 'q35', '-accel', 'tcg,thread=multi', '-cpu', 'max',
             '-smp', '2', '-m', '64', '-display', 'none', '-nodefaults',
             '-S', '-incoming', 'defer', '-qmp', f'unix:{sock},server,nowait']
    p = env.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL)
    q = QMP(sock, name, timeout=30, alive=lambda: p.poll() is None)
    return p, q


def threads_on(pid):
    """comm -> the CPUs each thread of pid may run on (Cpus_allowed_list)."""
    out = {}
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            comm = read_text(f'/proc/{pid}/task/{tid}/comm').strip()
            for line in mwtest.lines_of(f'/proc/{pid}/task/{tid}/status'):
                if line.startswith('Cpus_allowed_list:'):
                    out[f'{comm}/{tid}'] = parse_list(line.split()[1])
        except OSError:
            continue  # ended meanwhile
    return out


def parse_list(s):
    cpus = []
    for part in s.split(','):
        a, _, b = part.partition('-')
        cpus += range(int(a), int(b or a) + 1)
    return cpus


def vcpu_tids(q):
    return [c['thread-id'] for c in q.cmd('query-cpus-fast')]


def config(env, args):
    r = subprocess.run([env.mw, *args, '--print-config'],
                       capture_output=True, text=True, timeout=20)
    keys = dict(l.split('=', 1) for l in r.stdout.splitlines() if '=' in l)
    return r.returncode, keys, r.stderr.strip()


def run():
    env = mwtest.Env('placement')
    online = sorted(os.sched_getaffinity(0))
    if len(online) < 2 or not shutil.which('qemu-system-x86_64'):
        log('SKIP: needs 2 CPUs and qemu-system-x86_64')
        sys.exit(77)
    vcpu_cpu, other = online[-1], online[:-1]
    other_s = ','.join(map(str, other)) if len(other) > 1 else str(other[0])
    qemu, q = start_qemu(env, 'placement')
    tids = vcpu_tids(q)
    for t in tids:
        os.sched_setaffinity(t, {vcpu_cpu})
    log(f'QEMU pid {qemu.pid}: vCPU threads {tids} pinned to CPU {vcpu_cpu}')

    # exec: QEMU starts recv; recv finds QEMU among its parents
    errlog = os.path.join(env.tmp, 'recv-exec.err')
    port = mwtest.free_port()
    uri = (f'exec:{env.mw} recv --listen 127.0.0.1:{port} --no-tls -v '
           f'--wait 5 2>{errlog}')
    q.cmd('migrate-incoming', uri=uri)
    line, dl = '', time.monotonic() + 20
    while time.monotonic() < dl and not line:
        time.sleep(0.1)
        if os.path.exists(errlog):
            line = next((l for l in mwtest.lines_of(errlog)
                         if 'placement:' in l), '')
    log(f'    exec: {line}')
    want = f'QEMU pid {qemu.pid}: 2 vCPU threads on CPUs {vcpu_cpu}; ' \
           f'migwire on {other_s}'
    if want not in line:
        fail(f'exec: recv did not place itself off the vCPUs: want '
             f'"{want}" in "{line}"')
    recv = [p for p in descendants(qemu.pid) if read_text(
        f'/proc/{p}/comm').strip() == 'migwire']
    if not recv:
        fail('exec: no migwire process under QEMU')
    # out of the VM's scheduler group: a session of its own
    if read_text('/proc/sys/kernel/sched_autogroup_enabled').strip() == '1':
        if os.getsid(recv[0]) != recv[0] or 'session of its own' not in line:
            fail(f'exec: recv shares QEMU\'s session {os.getsid(qemu.pid)}'
                 f' (its own: {os.getsid(recv[0])}): {line}')
        log(f'    exec: recv in a session of its own ({recv[0]})')
    on = threads_on(recv[0])
    log(f'    exec: recv threads {on}')
    if not on or any(set(c) & {vcpu_cpu} for c in on.values()):
        fail(f'exec: recv threads may run on the vCPUs\' CPU {vcpu_cpu}: {on}')

    # socket mode: --qemu-pid
    rc, keys, err = config(env, ['send', '--to', '127.0.0.1:9', '--no-tls',
                                 '--qemu-pid', str(qemu.pid)])
    log(f'    --qemu-pid: cpus={keys.get("cpus")} '
        f'placement={keys.get("placement")}')
    if rc != 0 or keys.get('cpus') != other_s or \
            want not in keys.get('placement', ''):
        fail(f'--qemu-pid: exit {rc}, cpus={keys.get("cpus")}, want '
             f'{other_s}: {keys.get("placement")} {err}')

    # an explicit --cpus wins
    rc, keys, _ = config(env, ['recv', '--listen', '127.0.0.1:9', '--no-tls',
                               '--qemu-pid', str(qemu.pid), '--cpus',
                               str(vcpu_cpu)])
    if keys.get('cpus') != str(vcpu_cpu) or keys.get('placement') != '--cpus':
        fail(f'--cpus did not win: {keys}')

    # vCPUs unpinned: nothing left to avoid; say so and share
    for t in tids:
        os.sched_setaffinity(t, set(online))
    rc, keys, _ = config(env, ['send', '--to', '127.0.0.1:9', '--no-tls',
                               '--qemu-pid', str(qemu.pid)])
    log(f'    unpinned: cpus={keys.get("cpus")} '
        f'placement={keys.get("placement")}')
    if 'sharing them' not in keys.get('placement', ''):
        fail(f'unpinned vCPUs: placement does not say it shares: {keys}')
    q.close()
    terminate(qemu)

    # a QEMU that does not name its threads, and a pid that is not QEMU
    qemu2, q2 = start_qemu(env, 'unnamed', named=False)
    rc, _, err = config(env, ['send', '--to', '127.0.0.1:9', '--no-tls',
                              '--qemu-pid', str(qemu2.pid)])
    log(f'    unnamed: exit {rc}: {err}')
    if rc != 2 or 'debug-threads=on' not in err:
        fail(f'unnamed threads: exit {rc}, want 2 and the fix: {err}')
    q2.close()
    terminate(qemu2)
    rc, _, err = config(env, ['send', '--to', '127.0.0.1:9', '--no-tls',
                              '--qemu-pid', str(os.getpid())])
    if rc != 2 or 'is not a QEMU process' not in err:
        fail(f'--qemu-pid of python: exit {rc}: {err}')
    log('PASS')


if __name__ == '__main__':
    mwtest.main(run)
