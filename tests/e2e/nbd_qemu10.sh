#!/bin/bash
# SPDX-License-Identifier: MIT
# (l) Storage copy the way libvirt's --copy-storage-all does it, QEMU 10.0:
# the destination exports an empty same-size disk over NBD (unix socket),
# the source mirrors its disk (blockdev-mirror sync=full) to an NBD node
# whose connection migwire carries as a second stream, RAM migrates once the
# mirror is ready, then block-job-cancel, blockdev-del, nbd-server-stop.
# Memory and disk identical, the destination resumes, stats show both streams.
. "$(dirname "$0")/lib-socket.sh"
qemu=${E2E_NBD_QEMU:-$(e2e_qemu10)}
img=$e2e_tmp/disk.img
truncate -s 64M "$img"
head -c 16M /dev/urandom | dd of="$img" bs=1M seek=4 conv=notrunc status=none
echo "migwire e2e nbd marker $$" | dd of="$img" bs=1M seek=40 conv=notrunc status=none
head -c 1M /dev/urandom | dd of="$img" bs=1M seek=63 conv=notrunc status=none
e2e_socket_transport --nbd --channels 2 --compress zstd --no-tls -- --no-tls
e2e_socket_migrate --qemu "$qemu" --mem 256 --ws 64 --disk "$img"
[ "$(e2e_report disk_identical)" = true ] || fail "destination disk differs"
e2e_check "kinds(ss) == ['main', 'nbd'] and kinds(vs) == ['main', 'nbd']" \
	"stats do not show a main and an nbd stream"
e2e_check "[x for x in ss if x['kind'] == 'nbd'][0]['fwd'] >= 17 << 20 and [x for x in ss if x['kind'] == 'nbd'][0]['rev'] > 0" \
	"the nbd stream did not carry the disk's data and replies"
e2e_check "r['send_bg']['exit'] == 0 and r['recv_bg']['exit'] == 0" "migwire exit status"
