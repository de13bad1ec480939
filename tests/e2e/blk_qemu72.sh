#!/bin/bash
# SPDX-License-Identifier: MIT
# (d) QEMU 7.2 block migration ("blk": true) through migwire: a disk image
# carrying data reaches an empty same-size image on the destination intact.
. "$(dirname "$0")/lib.sh"
img=$e2e_tmp/disk.img
truncate -s 64M "$img"
# Random data, a text marker and a tail block; the rest stays sparse zeros.
head -c 16M /dev/urandom | dd of="$img" bs=1M seek=4 conv=notrunc status=none
echo "migwire e2e block marker $$" | dd of="$img" bs=1M seek=40 conv=notrunc status=none
head -c 1M /dev/urandom | dd of="$img" bs=1M seek=63 conv=notrunc status=none
e2e_transport --channels 2 --compress zstd --no-tls -- --no-tls
e2e_migrate --mem 256 --ws 32 --disk "$img" --blk
[ "$(e2e_report disk_identical)" = true ] || fail "destination disk differs"
