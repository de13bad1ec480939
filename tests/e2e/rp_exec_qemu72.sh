#!/bin/bash
# SPDX-License-Identifier: MIT
# (h) Precopy with the return-path capability on QEMU 7.2 over exec:: migwire
# relays the destination's return path (its stdin) back to the source
# (send's stdout). The source then completes only after the destination's
# SHUT came back. Memory identical, resumes, stats show reverse bytes.
# rp_exec_qemu10 runs this with E2E_RP_QEMU10=1.
. "$(dirname "$0")/lib-socket.sh"
qemu_args=()
[ -n "${E2E_RP_QEMU10:-}" ] && qemu_args=(--qemu "$(e2e_qemu10)")
e2e_transport --channels 2 --compress zstd --no-tls -- --no-tls
e2e_migrate "${qemu_args[@]}" --mem 256 --ws 64 --caps return-path
e2e_check "len(ss) == 1 and ss[0]['kind'] == 'exec' and ss[0]['rev'] > 0 and vs[0]['rev'] == ss[0]['rev']" \
	"no return-path bytes (rev) in the stream stats"
rc=$(e2e_exit_status send)
[ "$rc" = 0 ] || fail "send exited '$rc'"
