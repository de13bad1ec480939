#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Channels that are lost mid-session reconnect and resume (DESIGN
invariant 7, docs/reliability.md).

A proxy (faultlib.Proxy) relays a rate-capped transfer of 4 channels and
breaks them after a seeded random number of bytes (MW_TEST_SEED replays a
run). Every case must end byte-exact with exit 0 on both sides, and:
- send's --stats-file counts the resumes: reconnects equals the channels
  the proxy broke, resent_chunks is at least that (the chunk the break cut
  in half was not written, so it went again; only 1 when all are reset at
  once: the others may have had every chunk confirmed), resent_bytes at
  least as many bytes; recv's counts the same resumes and no more
  dropped duplicates than the chunks resent;
- each side prints, at default verbosity, exactly one `channel N lost
  (CAUSE)` and one `channel N resumed` line per broken channel and
  nothing else.
Cases:
  reset_x509, reset_psk, reset_token   one channel reset (RST both ways)
      in each TLS mode (--no-tls with --join-token);
  fin_x509          FIN without CLOSE; rst_recv_psk: RST to the receiver
      only, the sender's end stays open and silent (--timeout 3);
  reset_all         every channel reset at once (reconnects 4);
  blackhole         one channel stops forwarding both ways while both
      kernels ACK (TCP's own timeout never fires), --timeout 3: the
      heartbeat finds it, it resumes;
  return_path       exec: mode with the return path relayed (recv's stdin
      and stdout a socketpair): 8 MiB go back at about 4 MiB/s while every
      channel is reset at once; send's stdout gets exactly those bytes;
  socket_mode       send --listen / recv --connect with 3 QEMU connections
      (their OPEN frames on channel 0), both channels reset at once
      mid-way: each stream byte-exact at the destination;
  multipath         two paths (two proxies to one recv, --to A --to B):
      path B resets its 2 channels and stays down; they resume over
      path A (reconnects 2, counted on path A; every channel on path A at
      the end; path B's bytes at least what its proxy carried);
  hostile_token     --no-tls + --join-token, the proxy reads the real
      session's HELLO, HELLO_OK (its resume secret) and a real resume;
      a client straight to recv then tries a resume for an unknown
      session, one with a wrong secret, and the real resume replayed
      (HELLO and JOIN as recorded, the receiver's nonce is new): each gets
      one ERROR line saying why, recv logs one line each, and the
      transfer stays byte-exact with only the real resumes counted. A
      last client makes the right proof from the sniffed secret (without
      TLS an on-path reader can: docs/protocol.md): HELLO_OK with the same
      secret, which shows the refusals above were for the reason given;
      the real sender takes its channel back and completes. Once the
      session ended, the same right proof finds no listener.
  hostile_x509      a TLS client with the test PKI's valid client
      certificate opens a 1-channel session itself (HELLO_OK: its secret)
      and then tries resumes of it: with a wrong secret, with the right
      secret but no TLS exporter binding, and one for an unknown session;
      each refused with its line while the first connection stays
      admitted (it keeps getting PINGs), recv writes nothing.
  periodic_1g       (slow) 1 GiB of realistic guest RAM, x509, zstd: a
      channel is reset every 8 MiB on the wire for the whole transfer
      (none once the input has all gone into send's stdin); sha256 equal
      to the input's, each reset answered by one dial and counted as one
      reconnect (and one resume by recv) but for those after the last
      dial (at most one per channel: the session may have completed
      before the sender noticed them), both sides' VmHWM within --window
      + 64 MiB.

    fault_resume.py MIGWIRE DATAGEN MKCERTS [CASE...]
"""
import os
import random
import re
import socket
import struct
import subprocess
import threading
import time

import faultlib as fl
import mwtest
from memory_budget import Drain
from mwtest import MiB, fail, log
import mwwire as w  # tests/lib, on the path through mwtest

SIZE = 64 * MiB


def counter(st, side, *names):
    for n in names:
        if n in st:
            return st[n]
    fail(f'{side} stats lack {"/".join(names)}: keys {sorted(st)}')


def check_resumed(send, recv, sst, rst, n, what, recv_n=None, resent=None):
    """The counters of n broken channels; recv_n: the resumes recv must
    count when they differ from send's reconnects; resent: the chunks at
    least resent (default n: a channel the proxy cut at a byte offset had
    a chunk cut in half; one merely reset at the same time as another may
    have had everything confirmed)."""
    rc = counter(sst, 'send', 'reconnects')
    chunks = counter(sst, 'send', 'resent_chunks')
    nbytes = counter(sst, 'send', 'resent_bytes')
    resumes = counter(rst, 'recv', 'resumes', 'reconnects')
    dup = counter(rst, 'recv', 'dup_chunks', 'dup_dropped_chunks')
    log(f'  {what}: send reconnects {rc}, resent {chunks} chunks / '
        f'{nbytes} B, paused {sst.get("paused_s", "-")} s; recv resumes '
        f'{resumes}, duplicates dropped {dup}')
    if rc != n:
        fail(f'{what}: send counted {rc} reconnects for {n} broken '
             'channel(s)')
    if resumes != (rc if recv_n is None else recv_n):
        fail(f'{what}: recv counted {resumes} resumes, send {rc}')
    if chunks < (n if resent is None else resent) or nbytes < chunks:
        fail(f'{what}: {chunks} chunks ({nbytes} B) resent after {n} '
             'broken channel(s): the chunk a break cut was not resent?')
    if dup > chunks:
        fail(f'{what}: recv dropped {dup} duplicates, send resent only '
             f'{chunks}')


def tls_for(env, mode):
    if mode == 'token':
        tok = env.path('token')
        if not os.path.exists(tok):
            with open(tok, 'wb') as f:
                f.write(os.urandom(32).hex().encode() + b'\n')
            os.chmod(tok, 0o600)
        return ['--no-tls', '--join-token', tok]
    return mwtest.tls_args(mode, env)


def transfer(env, inp, mode, arm, what, timeout=5, channels=4,
             stdin=None, record=False, during=None):
    """recv <- proxy <- send with the stats files; arm(px) plans the
    faults; during(px, recv) runs while they go. Returns (send, recv,
    send stats, recv stats, proxy)."""
    tls = tls_for(env, mode)
    sstats, rstats = env.path(f'{what}.send.stats'), \
        env.path(f'{what}.recv.stats')
    lim = ['--timeout', str(timeout)]
    recv, port = env.recv(tls + lim + ['--wait', '10', '--stats-file',
                                       rstats])
    px = fl.Proxy(port, record=record)
    try:
        arm(px)
        send = env.send(px.port, tls + lim + [
            '--channels', str(channels), '--compress', 'zstd',
            '--max-bandwidth', '32M', '--stats-file', sstats],
            stdin_path=None if stdin else inp, stdin=stdin)
        if during:
            during(px, recv, port)
        rp = fl.Reaper(send, recv)
        rp.wait(90, what)
        ev = [t for _, t in px.events]
        log(f'  proxy: {"; ".join(ev[:8]) or "nothing"}'
            f'{f" (and {len(ev) - 8} more)" if len(ev) > 8 else ""}')
        fl.show(send)
        fl.show(recv)
        if send.rc != 0 or recv.rc != 0:
            fail(f'{what}: send exit {send.rc}, recv exit {recv.rc}')
        if not px.kills:
            fail(f'{what}: the proxy broke nothing ({px.total_up} B up)')
        fl.check_exact(recv.out, inp)
        return (send, recv, mwtest.final_stats(sstats),
                mwtest.final_stats(rstats), px)
    finally:
        px.close()


def all_resumed(send, recv, kills, n, sst, rst, what, resent=None):
    """The proxy broke n connections (kills), each a channel resumed:
    the counters (check_resumed) and each side's lines."""
    if len(kills) != n:
        fail(f'{what}: the proxy broke {kills}, want {n} connection(s)')
    check_resumed(send, recv, sst, rst, n, what, resent=resent)
    fl.resumed_lines(send, n, what)
    fl.resumed_lines(recv, n, what)


def broken(env, inp, mode, arm, n, what, timeout=5, resent=None):
    """A transfer where arm(px) breaks n channels: all resumed."""
    send, recv, sst, rst, px = transfer(env, inp, mode, arm, what,
                                        timeout=timeout)
    all_resumed(send, recv, px.kills, n, sst, rst, what, resent)


def one_channel(env, rng, inp, mode, how, timeout=5):
    at = rng.randrange(1 * MiB, 12 * MiB)
    broken(env, inp, mode, lambda px: px.kill_at(None, at, how), 1,
           f'{mode} {how} at {at} B', timeout)


def reset_all(env, rng, inp):
    at = rng.randrange(4 * MiB, 24 * MiB)
    broken(env, inp, 'psk', lambda px: px.kill_all_at(at, 'rst'), 4,
           f'all channels reset at {at} B in total', resent=1)


def blackhole(env, rng, inp):
    at = rng.randrange(1 * MiB, 8 * MiB)
    broken(env, inp, 'x509', lambda px: px.kill_at(None, at, 'hole'), 1,
           f'one channel black-holed at {at} B (--timeout 3)', 3)


def return_path(env, rng, inp):
    rev = os.urandom(8 * MiB)
    at = rng.randrange(8 * MiB, 24 * MiB)
    what = f'return path, all channels reset at {at} B in total'
    tls = tls_for(env, 'x509')
    lim = ['--timeout', '5']
    sstats, rstats = env.path('rp.send.stats'), env.path('rp.recv.stats')
    # recv's stdin and stdout: one end of a socketpair (exec: mode with
    # the relay on), the test holds the other
    mine, theirs = socket.socketpair()
    with theirs:
        recv, port = env.recv(tls + lim + ['--wait', '10', '--stats-file',
                                           rstats], stdin=theirs.fileno(),
                              out=theirs.fileno())
    fwd = mwtest.Collect(mine, 'recv-output')

    def feed():  # about 4 MiB/s back, while the forward 64 MiB go
        try:
            for i in range(0, len(rev), 256 << 10):
                mine.sendall(rev[i:i + (256 << 10)])
                time.sleep(0.06)
            mine.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    px = fl.Proxy(port)
    try:
        px.kill_all_at(at, 'rst')
        send = env.send(px.port, tls + lim + [
            '--channels', '4', '--compress', 'zstd', '--max-bandwidth',
            '32M', '--stats-file', sstats], stdin_path=inp)
        th = threading.Thread(target=feed, daemon=True)
        th.start()
        fl.Reaper(send, recv).wait(90, what)
        th.join(5)
    finally:
        px.close()
    got = fwd.join_data(10, "recv's output")
    mine.close()
    fl.show(send)
    fl.show(recv)
    with open(send.out, 'rb') as f:
        back = f.read()
    with open(inp, 'rb') as f:
        data = f.read()
    log(f'  {what}: send exit {send.rc}, recv exit {recv.rc}; forward '
        f'{len(got)} B, back {len(back)} B of {len(rev)}')
    if send.rc != 0 or recv.rc != 0 or got != data or back != rev:
        fail(f'{what}: send exit {send.rc}, recv exit {recv.rc}, forward '
             f'{"exact" if got == data else "differs"}, return path '
             f'{"exact" if back == rev else "differs"}')
    all_resumed(send, recv, px.kills, 4, mwtest.final_stats(sstats),
                mwtest.final_stats(rstats), what, resent=1)


def socket_mode(env, rng, inp):
    """send --listen / recv --connect: 3 QEMU connections (streams; their
    OPEN frames went on channel 0) carry 8 MiB each, and every channel is
    reset at once mid-way: each stream byte-exact at the destination."""
    data = [b'QEVM' + struct.pack('>I', 3) + os.urandom(8 * MiB)] + \
        [os.urandom(8 * MiB) for _ in range(2)]
    at = rng.randrange(2 * MiB, 12 * MiB)
    what = f'socket mode, 3 streams, all channels reset at {at} B in total'
    src, dst = env.path('src.sock'), env.path('dst.sock')
    drain = Drain(dst, keep=True)
    tls = tls_for(env, 'x509') + ['--timeout', '5']
    sstats, rstats = env.path('sm.send.stats'), env.path('sm.recv.stats')
    recv, port = env.recv(tls + ['--wait', '10', '--connect', f'unix:{dst}',
                                 '--stats-file', rstats])
    px = fl.Proxy(port)
    try:
        px.kill_all_at(at, 'rst')
        send = env.send(px.port, tls + [
            '--listen', f'unix:{src}', '--channels', '2', '--compress',
            'zstd', '--max-bandwidth', '16M', '--stats-file', sstats],
            stdin=subprocess.DEVNULL)
        fl.wait_for(lambda: mwtest.unix_listening(src), 10, 'send to listen')
        conns = []
        for _ in data:  # stream ids in connection order
            c = socket.socket(socket.AF_UNIX)
            c.settimeout(30)
            c.connect(src)
            conns.append(c)
            time.sleep(0.2)

        def source(c, b):
            try:
                c.sendall(b)
                c.shutdown(socket.SHUT_WR)
                while c.recv(65536):
                    pass
            except OSError:
                pass
            c.close()
        for c, b in zip(conns, data):
            threading.Thread(target=source, args=(c, b), daemon=True).start()
        fl.Reaper(send, recv).wait(90, what)
    finally:
        px.close()
        drain.close()
    fl.show(send)
    fl.show(recv)
    got = [drain.got.get(i, b'') for i in range(len(data))]
    log(f'  {what}: send exit {send.rc}, recv exit {recv.rc}; streams '
        f'{[len(g) for g in got]} B')
    if send.rc != 0 or recv.rc != 0 or got != data:
        same = ['exact' if g == d else 'differs' for g, d in zip(got, data)]
        fail(f'{what}: send exit {send.rc}, recv exit {recv.rc}, streams '
             f'{same}')
    all_resumed(send, recv, px.kills, 2, mwtest.final_stats(sstats),
                mwtest.final_stats(rstats), what, resent=1)


def multipath(env, rng, inp):
    """Two paths (two proxies to the same recv, `--to A,B` in effect):
    path B resets its channels (1 and 3, home path i % 2) and then stays
    down (nothing listens there any more): they resume over path A."""
    at = rng.randrange(4 * MiB, 12 * MiB)
    what = f'path B reset at {at} B and gone for good'
    tls = tls_for(env, 'x509') + ['--timeout', '5']
    sstats, rstats = env.path('mp.send.stats'), env.path('mp.recv.stats')
    recv, port = env.recv(tls + ['--wait', '10', '--stats-file', rstats])
    pa, pb = fl.Proxy(port), fl.Proxy(port)
    try:
        pb.kill_all_at(at, 'rst')
        send = env.send(pa.port, tls + [
            '--to', f'127.0.0.1:{pb.port}', '--channels', '4',
            '--compress', 'zstd', '--max-bandwidth', '32M', '--stats-file',
            sstats], stdin_path=inp)
        if not pb.killed.wait(30):
            fail(f'{what}: path B never carried {at} B')
        b_up = sum(c.up for c in pb.conns.values())
        b_kills = list(pb.kills)
        pb.close()
        fl.Reaper(send, recv).wait(90, what)
    finally:
        pa.close()
        pb.close()
    fl.show(send)
    fl.show(recv)
    if send.rc != 0 or recv.rc != 0:
        fail(f'{what}: send exit {send.rc}, recv exit {recv.rc}')
    fl.check_exact(recv.out, inp)
    sst, rst = mwtest.final_stats(sstats), mwtest.final_stats(rstats)
    paths = {p['id']: p for p in counter(sst, 'send', 'paths')}
    homes = [c.get('path') for c in counter(sst, 'send', 'channels')]
    log(f'  {what}: path A {pa.naccept} connections, B {pb.naccept} '
        f'({b_up} B up); paths {list(paths.values())}; channels on paths '
        f'{homes}')
    if pb.naccept != 2 or pa.naccept != 4:
        fail(f'{what}: want channels 1 and 3 on path B, then both resumed '
             f'on A: B accepted {pb.naccept}, A {pa.naccept}')
    all_resumed(send, recv, b_kills, 2, sst, rst, what, resent=1)
    if homes != [0, 0, 0, 0] or paths[0]['reconnects'] != 2 or \
            paths[1]['reconnects'] != 0 or paths[1]['bytes'] < b_up:
        fail(f'{what}: per-path figures do not say the channels moved to '
             f'path A: {list(paths.values())}, channels on paths {homes} '
             f'(path B carried {b_up} B)')


# ---- hostile resumes ----

def attempt(port, hello_payload, answer, creds=None):
    """A connection straight to recv (TLS with creds' client certificate
    if given): HELLO, then answer(nonce) to a CHALLENGE. Returns
    [(type, payload)] of what came back until close."""
    s = mwtest.tls_client(port, creds) if creds else \
        socket.create_connection(('127.0.0.1', port), timeout=8)
    got = []
    try:
        s.sendall(w.frame(w.FT['HELLO'], hello_payload))
        while True:
            t, p = w.read_frame(s)
            if t is None:
                break
            got.append((t, p))
            if t == w.FT['CHALLENGE']:
                s.sendall(w.frame(w.FT['JOIN'], answer(p)))
            elif t != w.FT['PING']:
                break
    finally:
        s.close()
    return got


def error_of(got, words, what):
    errs = [p.decode('utf-8', 'replace') for t, p in got
            if t == w.FT['ERROR']]
    kinds = [w.NAMES.get(t, t) for t, _ in got]
    if any(t == w.FT['HELLO_OK'] for t, _ in got) or not errs:
        fail(f'{what}: the receiver answered {kinds}, want an ERROR')
    if not mwtest.has_keywords(errs[0], *words):
        fail(f'{what}: ERROR "{errs[0]}" lacks {words}')
    log(f'  {what}: {" ".join(kinds)} "{errs[0]}"')
    return errs[0]


def sniff(px):
    """From the proxy's plaintext records: the session's first HELLO,
    its HELLO_OK (the secret) and a completed resume (HELLO, JOIN)."""
    first, ok, resume = None, None, None
    for i in sorted(px.conns):
        cn = px.conns[i]
        up, _ = w.split_frames(bytes(cn.rec_up))
        down, _ = w.split_frames(bytes(cn.rec_down))
        hellos = [p for t, _, p in up if t == w.FT['HELLO']]
        oks = [p for t, _, p in down if t == w.FT['HELLO_OK']]
        if not hellos or not oks:
            continue
        h = w.parse_hello(hellos[0])
        if not h['flags'] & w.HELLO_F_RESUME:
            first, ok = first or hellos[0], ok or w.parse_hello_ok(oks[0])
        elif resume is None:
            joins = [p for t, _, p in up if t == w.FT['JOIN']]
            if joins:
                resume = (hellos[0], joins[0])
    return first, ok, resume


def hostile_token(env, rng, inp):
    # a source that pauses after 4 MiB keeps the session live meanwhile
    feed = subprocess.Popen(
        ['sh', '-c', f'head -c {4 * MiB} "{inp}"; sleep 6; '
         f'tail -c +{4 * MiB + 1} "{inp}"'], stdout=subprocess.PIPE)
    at = rng.randrange(256 << 10, 1 * MiB)
    seen = {}

    def during(px, recv, port):
        fl.wait_for(lambda: sniff(px)[2] is not None, 20,
                    'the real sender to resume the reset channel')
        first, ok, (rh, rj) = sniff(px)
        h = w.parse_hello(first)
        log(f'  sniffed session {h["session"].hex()}, secret '
            f'{ok["secret"].hex()[:16]}..., a resume of channel '
            f'{w.parse_hello(rh)["index"]}')
        if ok['secret'] == bytes(32):
            fail('HELLO_OK carries an all-zero resume secret')
        flags = h['flags'] | w.HELLO_F_RESUME

        def rhello(session, index):
            return first[:10] + struct.pack('>H', index) + first[12:15] + \
                bytes([flags]) + session + first[32:]
        bad = lambda nonce: os.urandom(32)  # noqa: E731
        error_of(attempt(port, rhello(os.urandom(16), 0), bad),
                 ('no session to resume',), 'resume of an unknown session')
        hl = rhello(h['session'], 1)
        error_of(attempt(port, hl, lambda n: w.proof(
            os.urandom(32), w.RESUME_DOMAIN, n, hl)),
            ('resume proof mismatch',), 'resume with a wrong secret')
        error_of(attempt(port, rh, lambda n: rj),
                 ('resume proof mismatch',), 'a recorded resume replayed')
        # the sniffed secret alone is not the key with a join token
        hl0 = rhello(h['session'], 0)
        error_of(attempt(port, hl0, lambda n: w.proof(
            ok['secret'], w.RESUME_DOMAIN, n, hl0)),
            ('resume proof mismatch',),
            'resume keyed with the sniffed secret, without the token')
        # control: the right proof over the receiver's nonce
        with open(env.path('token'), 'rb') as f:
            key = w.resume_key(ok['secret'], f.read().rstrip(b' \t\r\n'))
        got = attempt(port, hl0, lambda n: w.proof(
            key, w.RESUME_DOMAIN, n, hl0))
        oks = [w.parse_hello_ok(p) for t, p in got
               if t == w.FT['HELLO_OK']]
        if not oks or oks[0]['secret'] != ok['secret'] or \
                oks[0]['session'] != h['session']:
            fail('the right resume proof got '
                 f'{[w.NAMES.get(t, t) for t, _ in got]}: the refusals '
                 'above may be for another reason than the one tested')
        log('  control: the right proof gets HELLO_OK with the same secret')
        seen['resume'] = (port, hl0, lambda n: w.proof(
            key, w.RESUME_DOMAIN, n, hl0))

    send, recv, sst, rst, px = transfer(
        env, inp, 'token', lambda px: px.kill_at(None, at, 'rst'),
        'hostile resumes', channels=2, stdin=feed.stdout, record=True,
        during=during, timeout=10)
    feed.stdout.close()
    feed.wait(10)
    # send: the proxy's reset and the channel the control took over;
    # recv: those and the control's own
    check_resumed(send, recv, sst, rst, 2, 'hostile resumes', recv_n=3,
                  resent=1)
    rl = recv.err_lines()
    for words in (('no session to resume',), ('resume proof mismatch',)):
        if not any(mwtest.has_keywords(x, *words) and '127.0.0.1:' in x
                   for x in rl):
            fail(f'recv has no line naming the peer and {words}')
    if len([x for x in rl if 'resume proof mismatch' in x]) != 3:
        fail('recv should log one line per refused proof (3)')
    # the session over, even the right proof finds nobody to ask
    try:
        got = attempt(*seen['resume'])
        fail(f'a resume after the session ended got {got}')
    except ConnectionRefusedError:
        log('  a resume after the session ended: connection refused')


def hostile_x509(env, rng, inp):
    pki = env.pki()
    recv, port = env.recv(['--tls-creds', pki, '--wait', '20',
                           '--timeout', '20'])
    s = mwtest.tls_client(port, pki)
    try:
        session = os.urandom(16)
        s.sendall(w.frame(w.FT['HELLO'], w.hello(session, 0, 1)))
        t, p = w.read_frame(s)
        if t != w.FT['HELLO_OK']:
            fail(f'the session\'s own HELLO got {w.NAMES.get(t, t)} '
                 f'"{p[:200]!r}"')
        ok = w.parse_hello_ok(p)
        log(f'  session {session.hex()} admitted, secret '
            f'{ok["secret"].hex()[:16]}...')
        hl = w.hello(session, 0, 1, flags=w.HELLO_F_RESUME)
        error_of(attempt(port, hl, lambda n: w.proof(
            os.urandom(32), w.RESUME_DOMAIN, n, hl, binding=bytes(32)),
            pki), ('resume proof mismatch',),
            'valid certificate, wrong secret')
        error_of(attempt(port, hl, lambda n: w.proof(
            ok['secret'], w.RESUME_DOMAIN, n, hl, binding=bytes(32)),
            pki), ('resume proof mismatch',),
            'the right secret without the connection\'s exporter')
        other = w.hello(os.urandom(16), 0, 1, flags=w.HELLO_F_RESUME)
        error_of(attempt(port, other, lambda n: os.urandom(32), pki),
                 ('no session to resume',), 'resume of an unknown session')
        # the session's connection is still admitted: PINGs keep coming
        s.settimeout(5)
        t, _ = w.read_frame(s)
        if t != w.FT['PING']:
            fail(f'the session\'s channel got {w.NAMES.get(t, t)} after '
                 'the refused resumes, want a PING (it was disturbed)')
        log('  the session\'s own channel still gets PINGs')
    finally:
        s.close()
        fl.show(recv)
    if os.path.getsize(recv.out):
        fail('recv wrote bytes')
    rl = recv.err_lines()
    if len([x for x in rl if 'resume proof mismatch' in x]) != 2 or \
            not any('no session to resume' in x for x in rl):
        fail('recv should log each refused resume: ' + ' | '.join(rl))


# ---- a reset every 8 MiB for 1 GiB ----

def per_channel_lines(send):
    """(lost, resumed, still lost at the end) from send's lines; fails
    when a channel's loss other than its last has no resumed line after
    it, or a resumed line follows no loss."""
    state, lost, resumed = {}, 0, 0
    for ln in send.err_lines():
        m = re.search(r'channel (\d+) (lost|resumed)', ln)
        if not m:
            continue
        ch, what = int(m.group(1)), m.group(2)
        if what == 'lost':
            if state.get(ch):
                fail(f'send: channel {ch} lost twice without a resume: '
                     f'{ln}')
            state[ch], lost = True, lost + 1
        else:
            if not state.get(ch):
                fail(f'send: channel {ch} resumed without a loss: {ln}')
            state[ch], resumed = False, resumed + 1
    return lost, resumed, sum(1 for v in state.values() if v)


def periodic(env, size=1 << 30, every=8 * MiB):
    if not env.dg:
        fail('needs mw-datagen (bench/)')
    tls = ['--tls-creds', env.pki()]
    sstats, rstats = env.path('p.send.stats'), env.path('p.recv.stats')
    recv, port = env.recv(tls + ['--timeout', '30', '--stats-file', rstats],
                          out=subprocess.PIPE)
    hp = env.popen(['sha256sum'], stdin=recv.p.stdout,
                   stdout=subprocess.PIPE)
    recv.p.stdout.close()
    px = fl.Proxy(port)
    px.kill_every(every, 'rst')
    gp = env.popen(env.datagen_argv(size, 11), stdout=subprocess.PIPE)
    try:
        send = env.send(px.port, tls + ['--channels', '4', '--compress',
                                        'zstd', '--timeout', '30',
                                        '--stats-file', sstats],
                        stdin=gp.stdout)
        gp.stdout.close()
        rp = fl.Reaper(send, recv)
        t0 = time.monotonic()
        while not rp.poll():
            # no reset once the whole input is in send's stdin: a reset
            # after the ACK (the session complete) would go unnoticed
            if gp.poll() is not None:
                px.kill_every(None)
            if time.monotonic() - t0 > 700:
                rp.wait(0, '1 GiB with a reset every 8 MiB')  # fails
            time.sleep(0.05)
        dt = time.monotonic() - t0
        kills = list(px.kills)
        dials = px.naccept - 4
        # resets after the sender's last dial: the session may have
        # completed (ACK received) before it noticed them
        late = sum(1 for t in px.kill_t if t > px.accept_t[-1])
        wire = px.total_up
    finally:
        px.close()
    digest = hp.communicate(timeout=60)[0].decode().split()[0]
    fl.show(send)
    fl.show(recv)
    if send.rc != 0 or recv.rc != 0:
        fail(f'send exit {send.rc}, recv exit {recv.rc}')
    ref = subprocess.run(f'"{env.dg}" --size {size} --seed 11 | sha256sum',
                         shell=True, capture_output=True, text=True,
                         timeout=300).stdout.split()[0]
    sst, rst = mwtest.final_stats(sstats), mwtest.final_stats(rstats)
    log(f'  {size >> 20} MiB ({wire >> 20} MiB on the wire) in {dt:.1f} s, '
        f'{len(kills)} resets; VmHWM send {rp.mib(send):.1f} MiB, recv '
        f'{rp.mib(recv):.1f} MiB')
    if digest != ref:
        fail(f'output sha256 {digest} != input sha256 {ref}')
    if len(kills) < wire // every - 1:
        fail(f'only {len(kills)} resets over {wire} B')
    lost, resumed, open_ = per_channel_lines(send)
    log(f'  {dials} dials after the first 4 connections; send: {lost} lost, '
        f'{resumed} resumed, {open_} lost at the end ({late} reset(s) after '
        'the last dial)')
    # every reset before the end is a lost line answered by a resumed one;
    # a channel's last loss may go unanswered only because the ACK came
    # (on another channel) while it waited to redial: at most one a
    # channel. A reset after the ACK, or a second one on a connection
    # already lost, is no line.
    if lost > len(kills) or lost < len(kills) - late - 4 or open_ > 4 or \
            resumed != lost - open_:
        fail(f'{len(kills)} resets, but send says {lost} lost and {resumed} '
             f'resumed ({open_} channels lost at the end)')
    check_resumed(send, recv, sst, rst, resumed, 'periodic resets')
    for p in (send, recv):
        if rp.mib(p) * MiB > 32 * MiB + fl.SLACK:
            fail(f'{p.name} VmHWM {rp.mib(p):.1f} MiB > --window 32 MiB + '
                 f'{fl.SLACK >> 20} MiB')


def run():
    env = mwtest.Env('fault_resume')
    rng = random.Random(fl.seed())
    inp = env.make_input('random', SIZE, seed=rng.randrange(1 << 30))
    cases = [
        ('reset_x509', lambda: one_channel(env, rng, inp, 'x509', 'rst')),
        ('reset_psk', lambda: one_channel(env, rng, inp, 'psk', 'rst')),
        ('reset_token', lambda: one_channel(env, rng, inp, 'token', 'rst')),
        ('fin_x509', lambda: one_channel(env, rng, inp, 'x509', 'fin')),
        ('rst_recv_psk', lambda: one_channel(env, rng, inp, 'psk',
                                             'rst-recv', timeout=3)),
        ('reset_all', lambda: reset_all(env, rng, inp)),
        ('blackhole', lambda: blackhole(env, rng, inp)),
        ('return_path', lambda: return_path(env, rng, inp)),
        ('socket_mode', lambda: socket_mode(env, rng, inp)),
        ('multipath', lambda: multipath(env, rng, inp)),
        ('hostile_token', lambda: hostile_token(env, rng, inp)),
        ('hostile_x509', lambda: hostile_x509(env, rng, inp)),
        ('periodic_1g', lambda: periodic(env)),
    ]
    if not env.args:
        cases = [c for c in cases if c[0] != 'periodic_1g']
    fl.run_named(env, cases)


if __name__ == '__main__':
    mwtest.main(run)
