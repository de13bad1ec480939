#!/bin/bash
# SPDX-License-Identifier: MIT
# (k) Postcopy through migwire (socket mode, QEMU 10.0): postcopy-ram on both
# sides, migrate-start-postcopy after ~1.5 s of precopy (max-bandwidth 32 MiB/s
# keeps precopy from finishing first), the destination is resumed as soon as
# it is in postcopy-active (libvirt's order), so its page faults become
# requests on the return path that migwire carries back to the source.
# A byte compare of guest memory is meaningless here (the destination ran on
# after the switch while the source stayed paused), so the guest is idle and
# every heartbeat checksum on both sides, each over 16 sampled working-set
# pages, is checked against a host model of the working set
# (--verify-heartbeats): faulted-in pages arrived intact and the guest runs on.
# postcopy_qemu72 runs this on QEMU 7.2 (E2E_QEMU=7.2).
. "$(dirname "$0")/lib-socket.sh"
qemu=()
[ "${E2E_QEMU:-}" = 7.2 ] || qemu=(--qemu "$(e2e_qemu10)")
e2e_socket_transport --channels 2 --compress zstd --no-tls -- --no-tls
e2e_socket_migrate "${qemu[@]}" --mem 256 --ws 64 --rate 0 --max-bandwidth 32 \
	--postcopy-after 1.5 --postcopy-run-dst --verify-heartbeats
e2e_check "m['postcopy'].get('start_s') is not None and m['postcopy'].get('dst_cont_s') is not None" \
	"the migration never switched to postcopy"
e2e_check "kinds(ss) == ['main'] and ss[0]['rev'] > 0" "no return-path bytes in the stats"
e2e_check "r['send_bg']['exit'] == 0 and r['recv_bg']['exit'] == 0" "migwire exit status"
say "postcopy page requests: $(e2e_report postcopy)"
