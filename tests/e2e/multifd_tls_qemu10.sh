#!/bin/bash
# SPDX-License-Identifier: MIT
# (g) QEMU 10.0 multifd, 4 channels (no QEMU compression or TLS), migrating
# to a unix socket where migwire send accepts all 5 connections and carries
# them over 2 wire channels with mutual X.509 TLS and zstd; migwire recv
# opens them to the destination's unix socket, main first. Memory identical,
# the destination resumes, both sides' stats show 1 main + 4 multifd streams.
# multifd_tls_qemu72 runs this on QEMU 7.2 (E2E_QEMU=7.2), whose destination
# takes the first connection it accepts as the main channel.
. "$(dirname "$0")/lib-socket.sh"
qemu=()
[ "${E2E_QEMU:-}" = 7.2 ] || qemu=(--qemu "$(e2e_qemu10)")
e2e_socket_transport --channels 2 --compress zstd --tls-creds @PKI@ \
	--tls-hostname localhost -- --tls-creds @PKI@
e2e_socket_migrate "${qemu[@]}" --mem 256 --ws 64 --multifd 4
want='["main", "multifd", "multifd", "multifd", "multifd"]'
e2e_check "kinds(ss) == $want and kinds(vs) == $want" \
	"send/recv stats do not show 1 main + 4 multifd streams"
e2e_check "all(x['fwd'] > 0 for x in ss) and len(s['channels']) == 2" \
	"a stream carried nothing or the session did not use 2 wire channels"
e2e_check "r['send_bg']['exit'] == 0 and r['recv_bg']['exit'] == 0" "migwire exit status"
