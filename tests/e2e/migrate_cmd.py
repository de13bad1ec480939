#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""e2e: `migwire migrate` runs the whole migration of the test guest.

    migrate_cmd.py MIGWIRE QEMU [mw-migrate options...]

The harness of tools/mw-migrate (tests/lib/mwqemu) boots the source guest,
starts the destination with -incoming exec:"MIGWIRE recv --no-tls", and
afterwards compares guest RAM (pmemsave, both sides paused) and resumes
the destination; only the migrate phase is replaced: instead of the
harness's own QMP, `MIGWIRE migrate --qmp SRC --to 127.0.0.1:PORT --no-tls
--max-downtime 300 ...` runs it against a second QMP monitor of the
source. Its exit status must be 0, its last line "completed ...", its
progress and dirty rate lines present, and QEMU must agree it completed;
QEMU's parameters afterwards are what migrate set (with --json:
avail-switchover-bandwidth is the measured value it reports).
Exit 0 pass, 1 fail, 77 skip. Options after QEMU go to the harness
(e.g. --rate 20 for a busy guest); MW_MIGRATE_ARGS adds migrate options;
MW_MIGRATE_EXPECT lists, '|'-separated, texts its output must hold;
MW_MIGRATE_TLS=1: X.509 TLS on both sides (tools/mw-mkcerts) instead of
--no-tls. Socket mode: harness options --dst-uri and --recv-bg (where
@TLS@ stands for the TLS options), and MW_MIGRATE_ARGS with --listen
unix:{tmp}/... (the harness's {tmp} is substituted).
"""
import importlib.machinery
import importlib.util
import json
import os
import shlex
import subprocess
import sys

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(SRC, 'tests', 'lib'))
from mwqemu import Fail, Skip, log  # noqa: E402
from mwqemu.run import Run  # noqa: E402


def load_cli():
    """tools/mw-migrate (no .py) as a module: its parse_args and main."""
    path = os.path.join(SRC, 'tools', 'mw-migrate')
    loader = importlib.machinery.SourceFileLoader('mw_migrate_cli', path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


class CmdRun(Run):
    """A harness run whose migrate phase is `migwire migrate`
    (mw-migrate --migrate-cmd), with the checks of its output."""

    expect = []

    def migrate(self, src, dst, hooks):
        info = super().migrate(src, dst, hooks)
        rep = self.report['migrate_cmd']
        lines, rc = rep['lines'], rep['exit']
        if '--json' in self.a.migrate_cmd:
            try:
                j = json.loads(rep.pop('stdout'))
            except ValueError:
                raise Fail('--json: not one JSON object: %r' % rep)
            rep['json'] = j
            if j.get('status') != 'completed' or not j.get('wire_bytes'):
                raise Fail('--json report: %r' % j)
        with open(os.path.join(self.logdir, 'migrate.log')) as f:
            every = [l.rstrip('\n') for l in f if l.strip()]
        for want in self.expect:
            if not any(want in l for l in every):
                raise Fail('no line says %r' % want)
        if self.a.expect != 'completed':
            # --timeout-action cancel: exit 1, the VM stays on the source
            # (the harness then checks that it runs on)
            if rc != 1 or not lines or 'keeps running' not in lines[-1]:
                raise Fail('want exit 1 and "keeps running" last, got exit '
                           '%d: %r' % (rc, lines[-1:]))
            return info
        if rc != 0:
            raise Fail('migwire migrate exited %d' % rc)
        if not lines or 'migrate: completed in' not in lines[-1]:
            raise Fail('the last line is not the completed result: %r'
                       % (lines[-1:],))
        if not any('% of RAM' in l for l in every):
            raise Fail('no progress line')
        if not any('dirty rate' in l for l in every):
            raise Fail('no dirty rate line')
        if info.get('status') != 'completed':
            raise Fail('exit 0 but QEMU reports %s' % info.get('status'))
        self.check_params(src)
        return info

    def check_params(self, src):
        """What migrate told QEMU: downtime-limit, its own cap lifted, and
        (QEMU >= 8.2) avail-switchover-bandwidth: what send measured it
        took from QEMU per second (--json's switchover_bandwidth_Bps), and
        not the --max-bandwidth set first; without a measurement,
        --max-bandwidth. Without --json the value is not known here: a
        migration long enough to be measured replaced --max-bandwidth."""
        p = src.qmp.cmd('query-migrate-parameters')
        want = {'downtime-limit': 300, 'max-bandwidth': 64 << 30}
        extra = shlex.split(self.a.migrate_cmd)
        first = None
        if '--max-bandwidth' in extra:
            v = extra[extra.index('--max-bandwidth') + 1]
            first = int(v[:-1]) << 20  # "NM"
        measured = (self.report['migrate_cmd'].get('json') or {}).get(
            'switchover_bandwidth_Bps')
        if 'avail-switchover-bandwidth' in p:
            if measured:
                if measured == first:
                    raise Fail('switchover bandwidth "measured" as the '
                               '--max-bandwidth set first: %d' % first)
                want['avail-switchover-bandwidth'] = measured
            elif first and '--json' in extra:
                want['avail-switchover-bandwidth'] = first
        elif measured:
            raise Fail('switchover bandwidth %d reported, but this QEMU '
                       'has no such parameter' % measured)
        got = {k: p.get(k) for k in want}
        self.report['migrate_cmd']['params'] = got
        if got != want:
            raise Fail('QEMU parameters %r, want %r' % (got, want))


def main():
    if len(sys.argv) < 3:
        sys.stderr.write('usage: migrate_cmd.py MIGWIRE QEMU [options]\n')
        return 2
    mw, qemu = os.path.abspath(sys.argv[1]), sys.argv[2]
    if not os.access(mw, os.X_OK):
        log('no migwire binary at %s' % mw)
        return 77
    cli = load_cli()
    name = os.environ.get('MW_E2E_NAME', 'migrate_cmd')
    logdir = os.path.join(os.environ.get('MW_E2E_LOGDIR',
                                         os.path.join(SRC, 'build',
                                                      'e2e-logs')), name)
    os.makedirs(logdir, exist_ok=True)
    tls = '--no-tls'
    if os.environ.get('MW_MIGRATE_TLS'):
        pki = os.path.join(logdir, 'pki')
        try:
            subprocess.run([os.path.join(SRC, 'tools', 'mw-mkcerts'), pki],
                           check=True, stdout=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError) as e:
            log('FAIL: mw-mkcerts: %s' % e)
            return 1
        tls = '--tls-creds ' + shlex.quote(pki)
    a = cli.parse_args(['--qemu', qemu, '--accel',
                        os.environ.get('MW_ACCEL', 'tcg'), '--log-dir',
                        logdir, '--recv-cmd',
                        '%s recv --listen 127.0.0.1:{port} %s' % (mw, tls)]
                       + [x.replace('@TLS@', tls) for x in sys.argv[3:]])
    try:
        out = subprocess.run([os.path.join(SRC, 'tools', 'mkvm')],
                             check=True, stdout=subprocess.PIPE
                             ).stdout.decode().split()
    except (OSError, subprocess.CalledProcessError) as e:
        log('SKIP: tools/mkvm failed: %s' % e)
        return 77
    a.kernel, a.initrd = out[0], out[1]
    extra = shlex.split(os.environ.get('MW_MIGRATE_ARGS', ''))
    a.migrate_cmd = ' '.join(map(shlex.quote, [
        mw, 'migrate', '--qmp', '{op_qmp}', '--to', '127.0.0.1:{port}',
        *shlex.split(tls), '--max-downtime', '300', *extra]))
    CmdRun.expect = [e for e in os.environ.get('MW_MIGRATE_EXPECT',
                                               '').split('|') if e]
    r = CmdRun(a)
    rc = 0
    try:
        r.run()
        r.report['result'] = 'pass'
    except Fail as e:
        log('FAIL: %s' % e)
        r.report['result'], r.report['reason'] = 'fail', str(e)
        rc = 1
    except Skip as e:
        log('SKIP: %s' % e)
        rc = 77
    finally:
        r.cleanup()
    print(json.dumps(r.report, indent=1, sort_keys=True))
    return rc


if __name__ == '__main__':
    sys.exit(main())
