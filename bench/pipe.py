#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/pipe.py: migwire send -> recv over loopback, against references
measured in the same run.

Generates one mw-datagen corpus (default mix) in a temporary directory,
checks that each migwire configuration delivers it byte for byte, then
repeats, interleaved and in a rotating order, REPS times:

  ref              bench_ref: in-memory codec, AES-GCM seal+open of the
                   compressed bytes, loopback TCP relay of them
  mw_tls_zstd      migwire, TLS (x509), zstd, --channels 2   (T1, T2, T4)
  mw_tls_zstd_stats  the same with --stats-file on both sides (per-stage
                   CPU)
  mw_tls_zstd_adapt  the same as mw_tls_zstd with send --adaptive
                   (T1_adapt, T2_adapt: for information, the targets are
                   on mw_tls_zstd, which compresses every chunk)
  mw_tls_zstd_libssl  the same as mw_tls_zstd with MIGWIRE_TLS_RECORDS=
                   openssl on both sides: libssl seals and opens the
                   records (T1_libssl, T2_libssl: for information)
  mw_plain         migwire --no-tls --compress none --channels 1 (T3, T4)
  socat            socat -u relay, default options                   (T3)
  socat_b256k      socat -u -b 262144                                 (T3)

Every migwire/socat pair is timed from the sender's start until both
processes have exited; CPU seconds and VmHWM (ru_maxrss) come from wait4()
of each process. Ratios are taken within one repetition, then the median
over repetitions is reported. Prints one JSON line per configuration and
per target on stdout, and a short table on stderr.

--sweep runs the chunk-size x window grid with TLS+zstd instead.
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lib'))
from mwproc import free_port, tcp_listening  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30


def parse_size(s):
    mult = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
    s = s.strip().upper().removesuffix('IB').removesuffix('B')
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def fmt_size(n):
    for unit, m in (('G', GIB), ('M', MIB), ('K', 1 << 10)):
        if n % m == 0:
            return '%d%s' % (n // m, unit)
    return str(n)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def git_sha():
    if os.environ.get('MW_GIT_SHA'):
        return os.environ['MW_GIT_SHA']
    try:
        return subprocess.run(['git', '-C', ROOT, 'rev-parse', '--short',
                               'HEAD'], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


class RunError(Exception):
    pass


TIME = '/usr/bin/time' if os.access('/usr/bin/time', os.X_OK) else None


def hwm_sampler(pids, hwm, stop):
    """Without /usr/bin/time: VmHWM of each pid from /proc, sampled until
    it exits (it is a high-water mark, so only a rise after the last
    sample can be missed)."""
    while not stop.is_set():
        for pid in pids:
            try:
                with open('/proc/%d/status' % pid) as f:
                    for line in f:
                        if line.startswith('VmHWM:'):
                            kb = int(line.split()[1])
                            hwm[pid] = max(hwm.get(pid, 0), kb * 1024)
            except (OSError, ValueError):
                pass
        stop.wait(0.02)


def run_pair(recv_argv, send_argv, port, corpus, out_path, timeout, tmp,
             env=None):
    """Starts the receiver, waits until it listens, starts the sender on
    the corpus, reaps both with wait4. Returns wall seconds (sender start
    to the last exit) and per side CPU seconds (wait4) and VmHWM.

    VmHWM: wait4's ru_maxrss would include this Python process's resident
    set (signal->maxrss keeps the pre-exec peak of the forked child), so
    each side runs under /usr/bin/time -f %M, whose own child is forked
    from a small process."""
    hwm_files = {}
    if TIME:
        for side in ('send', 'recv'):
            hwm_files[side] = os.path.join(tmp, side + '.hwm')
        recv_argv = [TIME, '-f', '%M', '-o', hwm_files['recv']] + recv_argv
        send_argv = [TIME, '-f', '%M', '-o', hwm_files['send']] + send_argv
    with open(out_path, 'wb') as rout, tempfile.TemporaryFile() as rerr, \
            tempfile.TemporaryFile() as serr, open(corpus, 'rb') as fin:
        recv = subprocess.Popen(recv_argv, stdin=subprocess.DEVNULL, env=env,
                                stdout=rout, stderr=rerr,
                                start_new_session=True)
        deadline = time.monotonic() + 10
        while not tcp_listening(port):
            if recv.poll() is not None or time.monotonic() > deadline:
                os.killpg(recv.pid, 9)
                recv.wait()
                rerr.seek(0)
                raise RunError('receiver did not listen: %s' %
                               rerr.read().decode(errors='replace'))
            time.sleep(0.002)
        t0 = time.monotonic()
        send = subprocess.Popen(send_argv, stdin=fin, env=env,
                                stdout=subprocess.DEVNULL, stderr=serr,
                                start_new_session=True)
        procs = {recv.pid: recv, send.pid: send}
        done, hwm = {}, {}
        finished = threading.Event()

        def watchdog():
            # Kills both if the pair hangs; wait4 below then returns.
            if not finished.wait(timeout):
                for p in procs.values():
                    if p.pid not in done:
                        try:
                            os.killpg(p.pid, 9)
                        except OSError:
                            pass
        threading.Thread(target=watchdog, daemon=True).start()
        if not TIME:
            threading.Thread(target=hwm_sampler, daemon=True,
                             args=(list(procs), hwm, finished)).start()
        while len(done) < 2:
            pid, status, ru = os.wait4(-1, 0)
            if pid in procs:
                done[pid] = (time.monotonic() - t0,
                             os.waitstatus_to_exitcode(status), ru)
                procs[pid].returncode = done[pid][1]
        finished.set()
        res = {}
        for side, p, err in (('send', send, serr), ('recv', recv, rerr)):
            wall, code, ru = done[p.pid]
            if code != 0:
                err.seek(0)
                raise RunError('%s exited %d: %s' % (
                    side, code, err.read().decode(errors='replace').strip()))
            if TIME:
                with open(hwm_files[side]) as f:
                    peak = int(f.read().split()[-1]) * 1024
            else:
                peak = hwm.get(p.pid, 0)
            res[side] = {'cpu_s': ru.ru_utime + ru.ru_stime,
                         'user_s': ru.ru_utime, 'sys_s': ru.ru_stime,
                         'hwm': peak, 'end_s': wall}
        res['wall_s'] = max(res['send']['end_s'], res['recv']['end_s'])
        return res


class Bench:
    def __init__(self, a):
        self.a = a
        self.build = a.build_dir
        self.migwire = os.path.join(self.build, 'tools', 'migwire')
        self.datagen = os.path.join(self.build, 'bench', 'mw-datagen')
        self.bench_ref = os.path.join(self.build, 'bench', 'bench_ref')
        for p in (self.migwire, self.datagen, self.bench_ref):
            if not os.access(p, os.X_OK):
                sys.exit('pipe.py: %s is missing; build first' % p)
        self.socat = shutil.which('socat')
        self.tmp = tempfile.mkdtemp(prefix='mw-pipe-', dir=a.tmp_dir)
        self.corpus = os.path.join(self.tmp, 'corpus')
        self.certs = os.path.join(self.tmp, 'pki')
        self.sha = git_sha()
        self.threads = min(os.cpu_count() or 1, 8)  # migwire's default

    def setup(self):
        log('# corpus %s (mw-datagen default mix, seed %d) in %s' %
            (fmt_size(self.a.size), self.a.seed, self.tmp))
        with open(self.corpus, 'wb') as f:
            subprocess.run([self.datagen, '--size', str(self.a.size),
                            '--seed', str(self.a.seed)], stdout=f,
                           check=True)
        subprocess.run([os.path.join(ROOT, 'tools', 'mw-mkcerts'),
                        self.certs, '--hostname', 'localhost', '--ip',
                        '127.0.0.1'], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        h = hashlib.sha256()
        with open(self.corpus, 'rb') as f:
            for blk in iter(lambda: f.read(4 * MIB), b''):
                h.update(blk)
        self.corpus_sha = h.hexdigest()

    def cleanup(self):
        if not self.a.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- one configuration ----

    def mw_argv(self, port, tls, codec, channels, chunk, window, stats,
                adaptive=False):
        common = (['--tls-creds', self.certs] if tls else ['--no-tls'])
        if window:
            common += ['--window', str(window)]
        recv = [self.migwire, 'recv', '--listen', '127.0.0.1:%d' % port,
                '-q'] + common
        send = [self.migwire, 'send', '--to', '127.0.0.1:%d' % port, '-q',
                '--channels', str(channels), '--compress', codec,
                '--chunk-size', str(chunk)] + common
        if codec != 'none':
            send += ['--compress-level', str(self.a.level)]
        if adaptive:
            send += ['--adaptive']
        if stats:
            recv += ['--stats-file', os.path.join(self.tmp, 'recv.stats')]
            send += ['--stats-file', os.path.join(self.tmp, 'send.stats')]
        return recv, send

    def run_mw(self, tls, codec, channels, chunk, window, stats=False,
               out=os.devnull, adaptive=False, records=None):
        env = dict(os.environ, MIGWIRE_TLS_RECORDS=records) if records \
            else None
        for f in ('recv.stats', 'send.stats'):
            try:
                os.unlink(os.path.join(self.tmp, f))
            except FileNotFoundError:
                pass
        for attempt in range(3):
            port = free_port()
            recv, send = self.mw_argv(port, tls, codec, channels, chunk,
                                      window, stats, adaptive)
            try:
                res = run_pair(recv, send, port, self.corpus, out,
                               self.a.timeout, self.tmp, env)
                break
            except RunError as e:
                # a port taken between free_port() and bind: try another
                if 'in use' not in str(e) or attempt == 2:
                    raise
        res['window'] = window or 32 * MIB
        if stats:
            for side in ('send', 'recv'):
                with open(os.path.join(self.tmp, side + '.stats')) as f:
                    last = [json.loads(x) for x in f if x.strip()][-1]
                res[side]['stage_cpu_s'] = last.get('cpu_s')
                res[side]['chan_cpu_s'] = [c.get('cpu_s')
                                           for c in last.get('channels', [])]
                res[side]['bytes_wire'] = last.get('bytes_wire')
        return res

    def run_socat(self, bufsize):
        b = ['-b', str(bufsize)] if bufsize else []
        port = free_port()
        recv = [self.socat, '-u'] + b + [
            'TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr' % port, 'STDOUT']
        send = [self.socat, '-u'] + b + ['STDIN', 'TCP:127.0.0.1:%d' % port]
        res = run_pair(recv, send, port, self.corpus, os.devnull,
                       self.a.timeout, self.tmp)
        res['window'] = None
        return res

    def run_ref(self, chunk):
        argv = [self.bench_ref, '--input', self.corpus, '--compress', 'zstd',
                '--compress-level', str(self.a.level), '--chunk-size',
                str(chunk), '--threads', str(self.threads), '--cipher',
                self.a.cipher, '--runs', '1']
        env = dict(os.environ, MW_GIT_SHA=self.sha)
        out = subprocess.run(argv, capture_output=True, text=True, env=env,
                             timeout=self.a.timeout)
        if out.returncode:
            raise RunError('bench_ref: ' + out.stderr.strip())
        return json.loads(out.stdout.strip().splitlines()[-1])

    def check(self, name, tls, codec, channels):
        """One untimed run into a file, compared with the corpus."""
        out = os.path.join(self.tmp, 'out')
        self.run_mw(tls, codec, channels, self.a.chunk_size, self.a.window,
                    out=out)
        h = hashlib.sha256()
        with open(out, 'rb') as f:
            for blk in iter(lambda: f.read(4 * MIB), b''):
                h.update(blk)
        os.unlink(out)
        if h.hexdigest() != self.corpus_sha:
            raise RunError('%s: output differs from the input' % name)
        log('# %s: round trip byte-exact' % name)


def median(xs):
    return statistics.median(xs) if xs else None


def rnd(x, n=4):
    return None if x is None else round(x, n)


def summarize(name, runs, size, extra):
    """One JSON object for a configuration's repetitions."""
    mbps = [size / 1e6 / r['wall_s'] for r in runs]
    cpu = [r['send']['cpu_s'] + r['recv']['cpu_s'] for r in runs]
    o = {'bench': 'pipe', 'config': name}
    o.update(extra)
    o.update({
        'reps': len(runs),
        'wall_s_median': rnd(median([r['wall_s'] for r in runs])),
        'wall_s_best': rnd(min(r['wall_s'] for r in runs)),
        'mbps_median': rnd(median(mbps), 1), 'mbps_best': rnd(max(mbps), 1),
        'cpu_s_median': rnd(median(cpu)),
        'cpu_s_per_gib_median': rnd(median(cpu) * GIB / size),
        'send_cpu_s_median': rnd(median([r['send']['cpu_s'] for r in runs])),
        'recv_cpu_s_median': rnd(median([r['recv']['cpu_s'] for r in runs])),
        'send_hwm_mib_max': rnd(max(r['send']['hwm'] for r in runs) / MIB,
                                1),
        'recv_hwm_mib_max': rnd(max(r['recv']['hwm'] for r in runs) / MIB,
                                1),
    })
    if runs and 'stage_cpu_s' in runs[0]['send']:
        for side in ('send', 'recv'):
            stages = runs[0][side]['stage_cpu_s'] or {}
            o[side + '_stage_cpu_s_median'] = {
                k: rnd(median([r[side]['stage_cpu_s'][k] for r in runs]))
                for k in stages}
            o[side + '_chan_cpu_s_median'] = rnd(median(
                [sum(r[side]['chan_cpu_s']) for r in runs]))
    return o


def ref_summary(refs, size):
    keys = ('codec_mbps', 'comp_wall_s', 'comp_cpu_s', 'decomp_wall_s',
            'decomp_cpu_s', 'seal_cpu_s', 'open_cpu_s', 'relay_cpu_s',
            'relay_wall_s', 'xxh3_cpu_s', 'unavoidable_cpu_s')
    o = {'bench': 'pipe', 'config': 'ref', 'reps': len(refs),
         'codec': refs[0]['codec'], 'level': refs[0]['level'],
         'chunk': refs[0]['chunk'], 'threads': refs[0]['threads'],
         'cipher': refs[0]['cipher'], 'ratio': refs[0]['ratio']}
    for k in keys:
        o[k + '_median'] = rnd(median([r[k] for r in refs]))
    o['codec_mbps_best'] = max(r['codec_mbps'] for r in refs)
    o['unavoidable_cpu_s_per_gib_median'] = rnd(
        o['unavoidable_cpu_s_median'] * GIB / size)
    return o


def target_line(tid, what, ratios, limit, better, extra=None):
    m = median(ratios)
    met = m is not None and (m >= limit if better == 'higher' else
                             m <= limit)
    o = {'bench': 'pipe', 'target': tid, 'what': what,
         'ratio_median': rnd(m), 'ratio_best': rnd(
             (max if better == 'higher' else min)(ratios)) if ratios
         else None,
         'ratios': [rnd(x) for x in ratios], 'limit': limit,
         'better': better, 'met': met}
    if extra:
        o.update(extra)
    return o


def main_run(b, a):
    size = a.size
    configs = ['ref', 'mw_tls_zstd', 'mw_tls_zstd_stats', 'mw_tls_zstd_adapt',
               'mw_tls_zstd_libssl', 'mw_plain']
    if b.socat:
        configs += ['socat', 'socat_b256k']
    else:
        log('# socat not found: T3 is not measured')
    b.check('mw_tls_zstd', True, 'zstd', a.channels)
    b.check('mw_plain', False, 'none', 1)
    runs = {c: [] for c in configs}
    for rep in range(a.reps):
        k = rep % len(configs)
        order = configs[k:] + configs[:k]
        for c in order:
            if c == 'ref':
                r = b.run_ref(a.chunk_size)
            elif c == 'mw_tls_zstd':
                r = b.run_mw(True, 'zstd', a.channels, a.chunk_size,
                             a.window)
            elif c == 'mw_tls_zstd_stats':
                r = b.run_mw(True, 'zstd', a.channels, a.chunk_size,
                             a.window, stats=True)
            elif c == 'mw_tls_zstd_adapt':
                r = b.run_mw(True, 'zstd', a.channels, a.chunk_size,
                             a.window, adaptive=True)
            elif c == 'mw_tls_zstd_libssl':
                r = b.run_mw(True, 'zstd', a.channels, a.chunk_size,
                             a.window, records='openssl')
            elif c == 'mw_plain':
                r = b.run_mw(False, 'none', 1, a.chunk_size, a.window)
            elif c == 'socat':
                r = b.run_socat(0)
            else:
                r = b.run_socat(262144)
            runs[c].append(r)
        log('# rep %d/%d done' % (rep + 1, a.reps))

    base = {'sha': b.sha, 'kernel': platform.release(), 'size': size,
            'seed': a.seed}
    lines = [dict(base, bench='pipe', config='machine', cpus=os.cpu_count(),
                  cpu_model=cpu_model(), socat=bool(b.socat))]
    lines.append(dict(base, **ref_summary(runs['ref'], size)))
    mw_extra = {'tls': 'x509', 'codec': 'zstd', 'level': a.level,
                'channels': a.channels, 'chunk': a.chunk_size,
                'window': a.window or 32 * MIB}
    for c in configs[1:]:
        ex = dict(base)
        if c.startswith('mw_tls'):
            ex.update(mw_extra)
        elif c == 'mw_plain':
            ex.update(tls='none', codec='none', channels=1,
                      chunk=a.chunk_size, window=a.window or 32 * MIB)
        else:
            ex.update(buffer=262144 if c == 'socat_b256k' else 8192)
        lines.append(summarize(c, runs[c], size, ex))

    refs = runs['ref']
    for c in ('mw_tls_zstd', 'mw_tls_zstd_stats', 'mw_tls_zstd_adapt',
              'mw_tls_zstd_libssl'):
        t1 = [size / 1e6 / r['wall_s'] / ref['codec_mbps']
              for r, ref in zip(runs[c], refs)]
        t2 = [(r['send']['cpu_s'] + r['recv']['cpu_s']) /
              ref['unavoidable_cpu_s'] for r, ref in zip(runs[c], refs)]
        sfx = c[len('mw_tls_zstd'):]
        lines.append(target_line('T1' + sfx, c + ' throughput / bare codec '
                                 'rate (compress+decompress wall)', t1, 0.55,
                                 'higher'))
        lines.append(target_line('T2' + sfx, c + ' CPU (both sides) / '
                                 'unavoidable CPU (codec + AES-GCM + relay)',
                                 t2, 1.3, 'lower'))
    if b.socat:
        for c in ('socat', 'socat_b256k'):
            t3 = [b.a.size / r['wall_s'] / (b.a.size / s['wall_s'])
                  for r, s in zip(runs['mw_plain'], runs[c])]
            lines.append(target_line('T3_' + c, 'mw_plain throughput / ' + c
                                     + ' throughput', t3, 1.0, 'higher'))
    for c in ('mw_tls_zstd', 'mw_tls_zstd_stats', 'mw_tls_zstd_adapt',
              'mw_tls_zstd_libssl', 'mw_plain'):
        win = a.window or 32 * MIB
        hwm = [max(r['send']['hwm'], r['recv']['hwm']) for r in runs[c]]
        lines.append(target_line(
            'T4_' + c, 'max VmHWM of either side / (window + 64 MiB)',
            [h / (win + 64 * MIB) for h in hwm], 1.0, 'lower',
            {'hwm_mib_max': rnd(max(hwm) / MIB, 1),
             'window_mib': win // MIB}))
    for o in lines:
        print(json.dumps(o), flush=True)

    log('')
    log('%-18s %9s %9s %10s %9s %9s' % ('config', 'MB/s med', 'MB/s best',
                                         'CPU s/GiB', 'send MiB',
                                         'recv MiB'))
    for o in lines[2:]:
        if 'config' not in o:
            continue
        log('%-18s %9.1f %9.1f %10.2f %9.1f %9.1f' % (
            o['config'], o['mbps_median'], o['mbps_best'],
            o['cpu_s_per_gib_median'], o['send_hwm_mib_max'],
            o['recv_hwm_mib_max']))
    ref = lines[1]
    log('%-18s %9.1f %9.1f %10.2f   (bare codec rate; unavoidable CPU)' % (
        'ref', ref['codec_mbps_median'], ref['codec_mbps_best'],
        ref['unavoidable_cpu_s_per_gib_median']))
    for o in lines:
        if 'target' in o:
            log('%-26s ratio %6.3f (limit %s %.2f) %s' % (
                o['target'], o['ratio_median'],
                '>=' if o['better'] == 'higher' else '<=', o['limit'],
                'met' if o['met'] else 'MISSED'))


def sweep_run(b, a):
    chunks = [parse_size(x) for x in a.chunks.split(',')]
    windows = [parse_size(x) for x in a.windows.split(',')]
    grid = [(c, w) for c in chunks for w in windows]
    dflt = (256 << 10, 32 * MIB)
    if dflt not in grid:
        grid.append(dflt)
    b.check('mw_tls_zstd', True, 'zstd', a.channels)
    runs = {g: [] for g in grid}
    for rep in range(a.reps):
        k = rep % len(grid)
        for g in grid[k:] + grid[:k]:
            runs[g].append(b.run_mw(True, 'zstd', a.channels, g[0], g[1],
                                    stats=a.stats))
        log('# sweep rep %d/%d done' % (rep + 1, a.reps))
    d = runs[dflt]
    rows = []
    for g in grid:
        o = summarize('sweep', runs[g], a.size, {
            'sha': b.sha, 'size': a.size, 'tls': 'x509', 'codec': 'zstd',
            'level': a.level, 'channels': a.channels, 'chunk': g[0],
            'window': g[1], 'stats_file': a.stats})
        o['mbps_vs_default_median'] = rnd(median(
            [dr['wall_s'] / r['wall_s'] for r, dr in zip(runs[g], d)]))
        o['cpu_vs_default_median'] = rnd(median(
            [(r['send']['cpu_s'] + r['recv']['cpu_s']) /
             (dr['send']['cpu_s'] + dr['recv']['cpu_s'])
             for r, dr in zip(runs[g], d)]))
        o['hwm_within_window_plus_64m'] = (
            max(o['send_hwm_mib_max'], o['recv_hwm_mib_max']) <=
            g[1] / MIB + 64)
        rows.append(o)
        print(json.dumps(o), flush=True)
    log('')
    log('%6s %6s %9s %8s %8s %9s %9s' % ('chunk', 'window', 'MB/s med',
                                         'vs dflt', 'CPU rel', 'send MiB',
                                         'recv MiB'))
    for o in rows:
        log('%6s %6s %9.1f %8.3f %8.3f %9.1f %9.1f' % (
            fmt_size(o['chunk']), fmt_size(o['window']), o['mbps_median'],
            o['mbps_vs_default_median'], o['cpu_vs_default_median'],
            o['send_hwm_mib_max'], o['recv_hwm_mib_max']))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--build-dir', default=os.path.join(ROOT, 'build'))
    p.add_argument('--size', type=parse_size, default=512 * MIB,
                   help='corpus bytes (default 512M)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--reps', type=int, default=5,
                   help='interleaved repetitions (default 5)')
    p.add_argument('--level', type=int, default=1, help='zstd level')
    p.add_argument('--channels', type=int, default=2)
    p.add_argument('--chunk-size', type=parse_size, default=256 << 10)
    p.add_argument('--window', type=parse_size, default=0,
                   help="migwire --window (default: migwire's, 32M)")
    p.add_argument('--cipher', default='aes-256-gcm',
                   help='bench_ref cipher (X.509 TLS negotiates '
                   'TLS_AES_256_GCM_SHA384)')
    p.add_argument('--sweep', action='store_true',
                   help='chunk-size x window grid instead')
    p.add_argument('--chunks', default='64K,128K,256K,512K,1M')
    p.add_argument('--windows', default='8M,16M,32M,64M')
    p.add_argument('--stats', action='store_true',
                   help='sweep: pass --stats-file to migwire')
    p.add_argument('--smoke', action='store_true',
                   help='tiny corpus, one repetition (CTest bench-smoke)')
    p.add_argument('--timeout', type=float, default=300)
    p.add_argument('--tmp-dir', default=None)
    p.add_argument('--keep', action='store_true',
                   help='keep the temporary directory')
    a = p.parse_args()
    if a.smoke:
        a.size, a.reps, a.timeout = 8 * MIB, 1, 40
        a.chunks, a.windows = '64K,256K', '8M'
    b = Bench(a)
    try:
        b.setup()
        if a.sweep:
            sweep_run(b, a)
        else:
            main_run(b, a)
    except (RunError, subprocess.CalledProcessError,
            subprocess.TimeoutExpired) as e:
        log('pipe.py: %s' % e)
        return 1
    finally:
        b.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
