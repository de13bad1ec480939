#!/bin/bash
# SPDX-License-Identifier: MIT
# (af) The link goes down for good in the middle of a migration (QEMU 10.0,
# busy guest, TLS + zstd, 2 channels, --timeout 5 --reconnect-timeout 10):
# the channels are lost, not resumed within --reconnect-timeout, and each side
# gives up with its line (send: "not resumed within --reconnect-timeout",
# recv: "not resumed (--reconnect-timeout)"); the migration fails, the source
# VM keeps running. The link comes back once the sender has exited, and a
# second migration succeeds, memory identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-netns.sh"
e2e_netns_migwire --timeout 5 --reconnect-timeout 10
# down; up again when the source QEMU's exec: child (send) has gone, at most
# 120 s later
outage="$(e2e_link_cmd down); (i=0; while pgrep -P \$MW_SRC_PID >/dev/null && [ \$i -lt 600 ]; do sleep 0.2; i=\$((i + 1)); done; $(e2e_link_cmd up)) >/dev/null 2>&1 &"
e2e_migrate "${E2E_BUSY[@]}" --on-progress 40M "$outage" --expect failed \
	--retry
cat "$e2e_logdir/link.log" >&2
grep -h 'not resumed' "$e2e_logdir/src-qemu.log" | head -n1 | grep -q 'reconnect-timeout' ||
	fail "send did not say it gave up at --reconnect-timeout (src-qemu.log)"
grep -h 'not resumed' "$e2e_logdir/dst-qemu.log" | head -n1 | grep -q 'reconnect-timeout' ||
	fail "recv did not say it gave up at --reconnect-timeout (dst-qemu.log)"
grep -h 'not resumed' "$e2e_logdir/src-qemu.log" "$e2e_logdir/dst-qemu.log" >&2
e2e_figures
