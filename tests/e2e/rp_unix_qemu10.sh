#!/bin/bash
# SPDX-License-Identifier: MIT
# (j) Precopy with return-path on QEMU 10.0 in socket mode (unix sockets on
# both QEMUs): the destination's return-path messages travel back on the
# same stream. Memory identical, resumes, reverse bytes in the stats.
. "$(dirname "$0")/lib-socket.sh"
qemu10=$(e2e_qemu10)
e2e_socket_transport --channels 2 --compress zstd --no-tls -- --no-tls
e2e_socket_migrate --qemu "$qemu10" --mem 256 --ws 64 --caps return-path
e2e_check "kinds(ss) == ['main'] and ss[0]['rev'] > 0 and vs[0]['rev'] == ss[0]['rev']" \
	"no return-path bytes (rev) in the stream stats"
e2e_check "r['send_bg']['exit'] == 0 and r['recv_bg']['exit'] == 0" "migwire exit status"
