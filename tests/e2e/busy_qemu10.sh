#!/bin/bash
# SPDX-License-Identifier: MIT
# (b) Busy guest (about 100 MiB/s of dirtying) on QEMU 10.0 through migwire
# with TLS, zlib and 2 channels: converges, memory identical, resumes.
# Memory identity of busy guests is only tested on 10.0: 7.2 under TCG loses
# dirty pages (see DESIGN.md, "QEMU versions").
. "$(dirname "$0")/lib.sh"
qemu10=$(e2e_qemu10)
e2e_transport --channels 2 --compress zlib --compress-level 1 --tls-creds @PKI@ \
	--tls-hostname localhost -- --tls-creds @PKI@
e2e_migrate --qemu "$qemu10" --mem 256 --ws 64 --rate 100 --migrate-timeout 300
