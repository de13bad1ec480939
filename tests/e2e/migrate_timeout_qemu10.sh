#!/bin/bash
# SPDX-License-Identifier: MIT
# (t) migwire migrate --timeout 2 with a guest that dirties faster than
# --max-bandwidth 20M carries: the VM is paused at 2 s, as virsh migrate
# --timeout does, and the migration completes; QEMU 10.0, RAM identical.
# The cap holds the migration active for seconds (2 s before the pause,
# then a 160 MiB working set at 20 MiB/s on the wire): migrate measures what send takes
# from QEMU, puts it in avail-switchover-bandwidth ("(measured)" on the
# progress line) and QEMU has that value at the end, not the 20M set
# first (--json's switchover_bandwidth_Bps; migrate_cmd.py); and after 2 s of
# the first pass it predicts convergence from that measured rate.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-migrate.sh"
q10=$(e2e_qemu10)
e2e_migrate_cmd "$q10" "--max-bandwidth 20M --timeout 2 --json" \
	"pausing the VM|paused by --timeout for the last|(measured)|what migwire carries (measured)" \
	--mem 384 --ws 160 --rate 30
