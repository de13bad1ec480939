#!/bin/bash
# SPDX-License-Identifier: MIT
# (ac) Socket mode (send --listen / recv --connect) with the return path, on
# QEMU 10.0, TLS + zstd, 2 channels, --pages auto on both sides, a busy
# guest changing a few bytes per dirtied page (mw.dirty=bytes): the main
# connection is the one page-encoded stream, memory is identical, the guest
# resumes, and re-sent pages went as references or deltas.
. "$(dirname "$0")/lib-socket.sh"
qemu10=$(e2e_qemu10)
e2e_socket_transport --channels 2 --compress zstd --pages auto -v \
	--tls-creds @PKI@ --tls-hostname localhost -- --pages auto --tls-creds @PKI@
e2e_socket_migrate --qemu "$qemu10" --mem 256 --ws 64 --rate 40 \
	--append "mw.dirty=bytes" --caps return-path,auto-converge \
	--max-bandwidth 60 --migrate-timeout 300
e2e_check "kinds(ss) == ['main'] and ss[0]['rev'] > 0" "not one main stream with a return path"
e2e_check "r['send_bg']['exit'] == 0 and r['recv_bg']['exit'] == 0" "migwire exit status"
e2e_pages_check 1
